/*
 * vmstate.c - field tables of the IDE controller's state (internal.h)
 * for save states, in libxblk's public form (XblkDeviceDesc,
 * <xblk/xblk-state.h>); see vmstate.h for the contract.  The hooks
 * report with xblk_error_set(): XBLK_ERROR_INVALID for a state that does
 * not check out, XBLK_ERROR_FAILED for a save this controller refuses.
 *
 * Owns: the tables of IDEController, IDEChannel, IDEBMDMA, IDEDrive,
 * IDESecurity and ATAPIState, and the checks that keep a loaded state
 * inside what core.c, atapi.c and bmdma.c assume (their asserts and
 * array indexes): io_pos <= io_end <= io_total <= the buffer, operations
 * that match the drive's kind and transfer phase, sector counts that
 * keep every buffer copy in bounds, addresses that keep every offset
 * computation from overflowing.  The encoding is the one the engine's
 * own tables had before the move to the public form (same fields,
 * order, widths, versions and ranges): older states load unchanged.
 *
 * Not saved: configuration (models, serials, backends, error policies,
 * the -drive password), the structural fields (ctrl, chan, unit, index)
 * and the request generation `gen`, which is not guest state: loading
 * moves every drive to a new generation so that requests the target
 * still has complete into nothing.
 */
#include "hw/ide/vmstate.h"
#include "hw/ide/internal.h"

/* LBA48 addresses 2^48 sectors; an ATAPI medium far less. */
#define IDE_SAVE_MAX_LBA        (1ull << 48)
#define ATAPI_SAVE_MAX_SECTORS  (1ull << 40)

static const XblkDeviceDesc ide_security_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "ide-security",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(IDESecurity),
    .fields = (const XblkField[]){
        XBLK_BOOL(IDESecurity, enabled),
        XBLK_BOOL(IDESecurity, locked),
        XBLK_BOOL(IDESecurity, frozen),
        XBLK_BOOL(IDESecurity, maximum),
        XBLK_BOOL(IDESecurity, count_expired),
        XBLK_BOOL(IDESecurity, erase_prepared),
        XBLK_U8(IDESecurity, attempts, XBLK_MAX(IDE_UNLOCK_ATTEMPTS)),
        XBLK_BUFFER(IDESecurity, user_pw),
        XBLK_BUFFER(IDESecurity, master_pw),
        XBLK_U16(IDESecurity, master_rev),
        XBLK_FIELDS_END
    },
};

static const XblkDeviceDesc atapi_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "atapi",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(ATAPIState),
    .fields = (const XblkField[]){
        XBLK_BOOL(ATAPIState, tray_open),
        XBLK_BOOL(ATAPIState, prevent),
        XBLK_BOOL(ATAPIState, unit_attention),
        XBLK_U8(ATAPIState, sense_key, XBLK_MAX(0xF)),
        XBLK_U8(ATAPIState, asc),
        XBLK_U8(ATAPIState, ascq),
        XBLK_U8(ATAPIState, event, XBLK_MAX(ATAPI_EV_MEDIA_REMOVAL)),
        XBLK_BUFFER(ATAPIState, cdb),
        XBLK_BOOL(ATAPIState, dma),
        XBLK_U16(ATAPIState, bcl),
        XBLK_U64(ATAPIState, lba, XBLK_MAX(ATAPI_SAVE_MAX_SECTORS)),
        XBLK_U64(ATAPIState, left, XBLK_MAX(ATAPI_SAVE_MAX_SECTORS)),
        XBLK_FIELDS_END
    },
};

static bool op_is_pio(IDEOp op)
{
    switch (op) {
    case IDE_OP_READ: case IDE_OP_WRITE: case IDE_OP_IDENTIFY:
    case IDE_OP_SECURITY: case IDE_OP_PACKET: case IDE_OP_ATAPI_DATA:
    case IDE_OP_ATAPI_READ:
        return true;
    default:
        return false;
    }
}

static bool op_fits_kind(IDEOp op, IDEDriveKind kind)
{
    switch (op) {
    case IDE_OP_NONE:
        return true;
    case IDE_OP_IDENTIFY:
        return kind != IDE_DRIVE_NONE;
    case IDE_OP_PACKET: case IDE_OP_ATAPI_DATA: case IDE_OP_ATAPI_READ:
        return kind == IDE_DRIVE_CD;
    default:
        return kind == IDE_DRIVE_HD;
    }
}

static bool ide_drive_check(const void *current, const void *scratch,
                            int version_id, XblkError **err)
{
    const IDEDrive *cur = current, *d = scratch;
    if (d->kind != cur->kind) {
        static const char *const kinds[] = { "no drive", "a hard disk",
                                             "a DVD drive" };
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "the state has %s at IDE position %d, this machine "
                       "%s", kinds[d->kind], cur->chan * 2 + cur->unit,
                       kinds[cur->kind]);
        return false;
    }
    if (!(d->io_pos <= d->io_end && d->io_end <= d->io_total &&
          d->io_total <= IDE_IO_BUF_SIZE)) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "transfer window %u/%u/%u outside the buffer",
                       d->io_pos, d->io_end, d->io_total);
        return false;
    }
    if (!op_fits_kind(d->op, d->kind) ||
        ((d->xfer == IDE_XFER_PIO_IN || d->xfer == IDE_XFER_PIO_OUT) &&
         !op_is_pio(d->op)) ||
        (d->kind == IDE_DRIVE_NONE && d->xfer != IDE_XFER_NONE)) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "operation %d with transfer %d is impossible on "
                       "this drive", d->op, d->xfer);
        return false;
    }
    if (d->dma_waiting &&
        (d->xfer != IDE_XFER_DMA ||
         !(d->op == IDE_OP_READ || d->op == IDE_OP_WRITE ||
           d->op == IDE_OP_ATAPI_DATA || d->op == IDE_OP_ATAPI_READ))) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "a DMA wait without a DMA command");
        return false;
    }
    if (d->op == IDE_OP_SECURITY &&
        d->cmd != ATA_SEC_SET_PASSWORD && d->cmd != ATA_SEC_UNLOCK &&
        d->cmd != ATA_SEC_ERASE_UNIT && d->cmd != ATA_SEC_DISABLE_PASSWORD) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "SECURITY data phase of command 0x%02x", d->cmd);
        return false;
    }
    if (d->op == IDE_OP_ATAPI_READ && !cur->disk) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "a DVD read in progress, but this drive has no medium");
        return false;
    }
    if (d->atapi.bcl & 1) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "odd ATAPI byte count limit %u", d->atapi.bcl);
        return false;
    }
    return true;
}

static const XblkDeviceDesc ide_drive_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "ide-drive",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(IDEDrive),
    .check = ide_drive_check,
    .fields = (const XblkField[]){
        XBLK_ENUM(IDEDrive, kind, XBLK_MAX(IDE_DRIVE_CD)),
        /* task file */
        XBLK_U8(IDEDrive, feature),
        XBLK_U8(IDEDrive, hob_feature),
        XBLK_U8(IDEDrive, nsector),
        XBLK_U8(IDEDrive, hob_nsector),
        XBLK_U8(IDEDrive, sector),
        XBLK_U8(IDEDrive, hob_sector),
        XBLK_U8(IDEDrive, lcyl),
        XBLK_U8(IDEDrive, hob_lcyl),
        XBLK_U8(IDEDrive, hcyl),
        XBLK_U8(IDEDrive, hob_hcyl),
        XBLK_U8(IDEDrive, select),
        XBLK_U8(IDEDrive, status),
        XBLK_U8(IDEDrive, error),
        XBLK_BOOL(IDEDrive, irq),
        /* the command in progress */
        XBLK_U8(IDEDrive, cmd),
        XBLK_ENUM(IDEDrive, op, XBLK_MAX(IDE_OP_ATAPI_READ)),
        XBLK_ENUM(IDEDrive, xfer, XBLK_MAX(IDE_XFER_DMA)),
        XBLK_BOOL(IDEDrive, lba48),
        XBLK_BOOL(IDEDrive, chs),
        XBLK_BOOL(IDEDrive, dma_waiting),
        XBLK_U64(IDEDrive, lba, XBLK_MAX(IDE_SAVE_MAX_LBA)),
        XBLK_U32(IDEDrive, left),
        XBLK_U32(IDEDrive, block, XBLK_MAX(IDE_MAX_MULT)),
        XBLK_U32(IDEDrive, io_pos, XBLK_MAX(IDE_IO_BUF_SIZE)),
        XBLK_U32(IDEDrive, io_end, XBLK_MAX(IDE_IO_BUF_SIZE)),
        XBLK_U32(IDEDrive, io_total, XBLK_MAX(IDE_IO_BUF_SIZE)),
        XBLK_I64(IDEDrive, erase_pos, XBLK_RANGE(0, 1ll << 62)),
        XBLK_VBUFFER(IDEDrive, io_buf, io_total),
        /* settings */
        XBLK_BOOL(IDEDrive, write_cache),
        XBLK_U8(IDEDrive, mult, XBLK_MAX(IDE_MAX_MULT)),
        XBLK_U8(IDEDrive, pio_mode, XBLK_MAX(4)),
        XBLK_I8(IDEDrive, mwdma_mode, XBLK_RANGE(-1, 2)),
        XBLK_I8(IDEDrive, udma_mode, XBLK_RANGE(-1, 5)),
        XBLK_ENUM(IDEDrive, power, XBLK_MAX(IDE_POWER_SLEEP)),
        XBLK_BOOL(IDEDrive, io_failed),
        XBLK_STRUCT(IDEDrive, sec, &ide_security_desc, IDESecurity),
        XBLK_STRUCT(IDEDrive, atapi, &atapi_desc, ATAPIState),
        XBLK_FIELDS_END
    },
};

static const XblkDeviceDesc ide_bmdma_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "ide-bmdma",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(IDEBMDMA),
    .fields = (const XblkField[]){
        XBLK_U8(IDEBMDMA, cmd),
        XBLK_U8(IDEBMDMA, status),
        XBLK_U32(IDEBMDMA, prd_addr),
        XBLK_U32(IDEBMDMA, cur_entry),
        XBLK_U32(IDEBMDMA, cur_off),
        XBLK_BOOL(IDEBMDMA, exhausted),
        XBLK_FIELDS_END
    },
};

static bool ide_channel_check(const void *current, const void *scratch,
                              int version_id, XblkError **err)
{
    const IDEChannel *ch = scratch;
    if (ch->dma_unit >= 0 && ch->drive[ch->dma_unit].kind == IDE_DRIVE_NONE) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "the bus master belongs to an empty position");
        return false;
    }
    return true;
}

static const XblkDeviceDesc ide_channel_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "ide-channel",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(IDEChannel),
    .check = ide_channel_check,
    .fields = (const XblkField[]){
        XBLK_U8(IDEChannel, devctl),
        XBLK_U8(IDEChannel, unit, XBLK_MAX(1)),
        XBLK_BOOL(IDEChannel, irq_level),
        XBLK_I8(IDEChannel, dma_unit, XBLK_RANGE(-1, 1)),
        XBLK_STRUCT(IDEChannel, bm, &ide_bmdma_desc, IDEBMDMA),
        XBLK_STRUCT_ARRAY(IDEChannel, drive, 2, &ide_drive_desc, IDEDrive),
        XBLK_FIELDS_END
    },
};

static bool ide_pre_save(void *opaque, XblkError **err)
{
    IDEController *c = opaque;
    /* The machine quiesces IDE before it saves: a request in flight is a
     * bug there, not something a state can carry. */
    g_assert(c->in_flight == 0);
    if (c->reqs) {
        xblk_error_set(err, XBLK_ERROR_FAILED,
                       "an IDE request is held by a werror/rerror=stop "
                       "policy: resume (cont) or reset before saving");
        return false;
    }
    return true;
}

/* Every drive moves to a new generation (completions of the target's
 * own requests are dropped) and held requests are freed. */
static bool ide_post_load(void *opaque, int version_id, XblkError **err)
{
    IDEController *c = opaque;
    GList *l = c->reqs;
    while (l) {
        GList *next = l->next;
        IDERequest *r = l->data;
        if (!r->submitted) {
            c->reqs = g_list_delete_link(c->reqs, l);
            g_free(r->io.buf);
            g_free(r);
        }
        l = next;
    }
    for (int i = 0; i < 4; i++) {
        c->ch[i / 2].drive[i % 2].gen++;
    }
    return true;
}

static const XblkDeviceDesc ide_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "ide",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(IDEController),
    .pre_save = ide_pre_save,
    .post_load = ide_post_load,
    .fields = (const XblkField[]){
        XBLK_STRUCT_ARRAY(IDEController, ch, 2, &ide_channel_desc,
                          IDEChannel),
        XBLK_FIELDS_END
    },
};

const XblkDeviceDesc *ide_vmstate(void)
{
    return &ide_desc;
}
