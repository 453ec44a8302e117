/*
 * vmstate.c - field tables of the IDE controller's state (internal.h)
 * for save states; see vmstate.h for the contract.
 *
 * Owns: the descriptions of IDEController, IDEChannel, IDEBMDMA,
 * IDEDrive, IDESecurity and ATAPIState, and the checks that keep a
 * loaded state inside what core.c, atapi.c and bmdma.c assume (their
 * asserts and array indexes): io_pos <= io_end <= io_total <= the
 * buffer, operations that match the drive's kind and transfer phase,
 * sector counts that keep every buffer copy in bounds, addresses that
 * keep every offset computation from overflowing.
 *
 * Not saved: configuration (models, serials, backends, error policies,
 * the -drive password), the structural fields (ctrl, chan, unit, index)
 * and the request generation `gen`, which is not guest state: loading
 * moves every drive to a new generation so that requests the target
 * still has complete into nothing.
 */
#include "hw/ide/vmstate.h"
#include "hw/ide/internal.h"
#include "util/error.h"

/* LBA48 addresses 2^48 sectors; an ATAPI medium far less. */
#define IDE_SAVE_MAX_LBA        (1ull << 48)
#define ATAPI_SAVE_MAX_SECTORS  (1ull << 40)

static const VMStateDescription ide_security_vmsd = {
    .name = "ide-security",
    .version_id = 1,
    .minimum_version_id = 1,
    .size = sizeof(IDESecurity),
    .fields = (const VMStateField[]){
        VMS_BOOL(IDESecurity, enabled),
        VMS_BOOL(IDESecurity, locked),
        VMS_BOOL(IDESecurity, frozen),
        VMS_BOOL(IDESecurity, maximum),
        VMS_BOOL(IDESecurity, count_expired),
        VMS_BOOL(IDESecurity, erase_prepared),
        VMS_U8(IDESecurity, attempts, VMS_MAX(IDE_UNLOCK_ATTEMPTS)),
        VMS_BUFFER(IDESecurity, user_pw),
        VMS_BUFFER(IDESecurity, master_pw),
        VMS_U16(IDESecurity, master_rev),
        VMS_END
    },
};

static const VMStateDescription atapi_vmsd = {
    .name = "atapi",
    .version_id = 1,
    .minimum_version_id = 1,
    .size = sizeof(ATAPIState),
    .fields = (const VMStateField[]){
        VMS_BOOL(ATAPIState, tray_open),
        VMS_BOOL(ATAPIState, prevent),
        VMS_BOOL(ATAPIState, unit_attention),
        VMS_U8(ATAPIState, sense_key, VMS_MAX(0xF)),
        VMS_U8(ATAPIState, asc),
        VMS_U8(ATAPIState, ascq),
        VMS_U8(ATAPIState, event, VMS_MAX(ATAPI_EV_MEDIA_REMOVAL)),
        VMS_BUFFER(ATAPIState, cdb),
        VMS_BOOL(ATAPIState, dma),
        VMS_U16(ATAPIState, bcl),
        VMS_U64(ATAPIState, lba, VMS_MAX(ATAPI_SAVE_MAX_SECTORS)),
        VMS_U64(ATAPIState, left, VMS_MAX(ATAPI_SAVE_MAX_SECTORS)),
        VMS_END
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
                            int version_id, GError **errp)
{
    const IDEDrive *cur = current, *d = scratch;
    if (d->kind != cur->kind) {
        static const char *const kinds[] = { "no drive", "a hard disk",
                                             "a DVD drive" };
        error_setg(errp, "the state has %s at IDE position %d, this machine "
                   "%s", kinds[d->kind], cur->chan * 2 + cur->unit,
                   kinds[cur->kind]);
        return false;
    }
    if (!(d->io_pos <= d->io_end && d->io_end <= d->io_total &&
          d->io_total <= IDE_IO_BUF_SIZE)) {
        error_setg(errp, "transfer window %u/%u/%u outside the buffer",
                   d->io_pos, d->io_end, d->io_total);
        return false;
    }
    if (!op_fits_kind(d->op, d->kind) ||
        ((d->xfer == IDE_XFER_PIO_IN || d->xfer == IDE_XFER_PIO_OUT) &&
         !op_is_pio(d->op)) ||
        (d->kind == IDE_DRIVE_NONE && d->xfer != IDE_XFER_NONE)) {
        error_setg(errp, "operation %d with transfer %d is impossible on "
                   "this drive", d->op, d->xfer);
        return false;
    }
    if (d->dma_waiting &&
        (d->xfer != IDE_XFER_DMA ||
         !(d->op == IDE_OP_READ || d->op == IDE_OP_WRITE ||
           d->op == IDE_OP_ATAPI_DATA || d->op == IDE_OP_ATAPI_READ))) {
        error_setg(errp, "a DMA wait without a DMA command");
        return false;
    }
    if (d->op == IDE_OP_SECURITY &&
        d->cmd != ATA_SEC_SET_PASSWORD && d->cmd != ATA_SEC_UNLOCK &&
        d->cmd != ATA_SEC_ERASE_UNIT && d->cmd != ATA_SEC_DISABLE_PASSWORD) {
        error_setg(errp, "SECURITY data phase of command 0x%02x", d->cmd);
        return false;
    }
    if (d->op == IDE_OP_ATAPI_READ && !cur->blk) {
        error_setg(errp, "a DVD read in progress, but this drive has no "
                   "medium");
        return false;
    }
    if (d->atapi.bcl & 1) {
        error_setg(errp, "odd ATAPI byte count limit %u", d->atapi.bcl);
        return false;
    }
    return true;
}

static const VMStateDescription ide_drive_vmsd = {
    .name = "ide-drive",
    .version_id = 1,
    .minimum_version_id = 1,
    .size = sizeof(IDEDrive),
    .check = ide_drive_check,
    .fields = (const VMStateField[]){
        VMS_ENUM(IDEDrive, kind, VMS_MAX(IDE_DRIVE_CD)),
        /* task file */
        VMS_U8(IDEDrive, feature),
        VMS_U8(IDEDrive, hob_feature),
        VMS_U8(IDEDrive, nsector),
        VMS_U8(IDEDrive, hob_nsector),
        VMS_U8(IDEDrive, sector),
        VMS_U8(IDEDrive, hob_sector),
        VMS_U8(IDEDrive, lcyl),
        VMS_U8(IDEDrive, hob_lcyl),
        VMS_U8(IDEDrive, hcyl),
        VMS_U8(IDEDrive, hob_hcyl),
        VMS_U8(IDEDrive, select),
        VMS_U8(IDEDrive, status),
        VMS_U8(IDEDrive, error),
        VMS_BOOL(IDEDrive, irq),
        /* the command in progress */
        VMS_U8(IDEDrive, cmd),
        VMS_ENUM(IDEDrive, op, VMS_MAX(IDE_OP_ATAPI_READ)),
        VMS_ENUM(IDEDrive, xfer, VMS_MAX(IDE_XFER_DMA)),
        VMS_BOOL(IDEDrive, lba48),
        VMS_BOOL(IDEDrive, chs),
        VMS_BOOL(IDEDrive, dma_waiting),
        VMS_U64(IDEDrive, lba, VMS_MAX(IDE_SAVE_MAX_LBA)),
        VMS_U32(IDEDrive, left),
        VMS_U32(IDEDrive, block, VMS_MAX(IDE_MAX_MULT)),
        VMS_U32(IDEDrive, io_pos, VMS_MAX(IDE_IO_BUF_SIZE)),
        VMS_U32(IDEDrive, io_end, VMS_MAX(IDE_IO_BUF_SIZE)),
        VMS_U32(IDEDrive, io_total, VMS_MAX(IDE_IO_BUF_SIZE)),
        VMS_I64(IDEDrive, erase_pos, VMS_RANGE(0, 1ll << 62)),
        VMS_VBUFFER(IDEDrive, io_buf, io_total),
        /* settings */
        VMS_BOOL(IDEDrive, write_cache),
        VMS_U8(IDEDrive, mult, VMS_MAX(IDE_MAX_MULT)),
        VMS_U8(IDEDrive, pio_mode, VMS_MAX(4)),
        VMS_I8(IDEDrive, mwdma_mode, VMS_RANGE(-1, 2)),
        VMS_I8(IDEDrive, udma_mode, VMS_RANGE(-1, 5)),
        VMS_ENUM(IDEDrive, power, VMS_MAX(IDE_POWER_SLEEP)),
        VMS_BOOL(IDEDrive, io_failed),
        VMS_STRUCT(IDEDrive, sec, &ide_security_vmsd, IDESecurity),
        VMS_STRUCT(IDEDrive, atapi, &atapi_vmsd, ATAPIState),
        VMS_END
    },
};

static const VMStateDescription ide_bmdma_vmsd = {
    .name = "ide-bmdma",
    .version_id = 1,
    .minimum_version_id = 1,
    .size = sizeof(IDEBMDMA),
    .fields = (const VMStateField[]){
        VMS_U8(IDEBMDMA, cmd),
        VMS_U8(IDEBMDMA, status),
        VMS_U32(IDEBMDMA, prd_addr),
        VMS_U32(IDEBMDMA, cur_entry),
        VMS_U32(IDEBMDMA, cur_off),
        VMS_BOOL(IDEBMDMA, exhausted),
        VMS_END
    },
};

static bool ide_channel_check(const void *current, const void *scratch,
                              int version_id, GError **errp)
{
    const IDEChannel *ch = scratch;
    if (ch->dma_unit >= 0 && ch->drive[ch->dma_unit].kind == IDE_DRIVE_NONE) {
        error_setg(errp, "the bus master belongs to an empty position");
        return false;
    }
    return true;
}

static const VMStateDescription ide_channel_vmsd = {
    .name = "ide-channel",
    .version_id = 1,
    .minimum_version_id = 1,
    .size = sizeof(IDEChannel),
    .check = ide_channel_check,
    .fields = (const VMStateField[]){
        VMS_U8(IDEChannel, devctl),
        VMS_U8(IDEChannel, unit, VMS_MAX(1)),
        VMS_BOOL(IDEChannel, irq_level),
        VMS_I8(IDEChannel, dma_unit, VMS_RANGE(-1, 1)),
        VMS_STRUCT(IDEChannel, bm, &ide_bmdma_vmsd, IDEBMDMA),
        VMS_STRUCT_ARRAY(IDEChannel, drive, 2, &ide_drive_vmsd, IDEDrive),
        VMS_END
    },
};

static bool ide_pre_save(void *opaque, GError **errp)
{
    IDEController *c = opaque;
    /* The machine quiesces IDE before it saves: a request in flight is a
     * bug there, not something a state can carry. */
    g_assert(c->in_flight == 0);
    if (c->reqs) {
        error_setg(errp, "an IDE request is held by a werror/rerror=stop "
                   "policy: resume (cont) or reset before saving");
        return false;
    }
    return true;
}

/* Every drive moves to a new generation (completions of the target's
 * own requests are dropped) and held requests are freed. */
static bool ide_post_load(void *opaque, int version_id, GError **errp)
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

static const VMStateDescription ide_vmsd = {
    .name = "ide",
    .version_id = 1,
    .minimum_version_id = 1,
    .size = sizeof(IDEController),
    .pre_save = ide_pre_save,
    .post_load = ide_post_load,
    .fields = (const VMStateField[]){
        VMS_STRUCT_ARRAY(IDEController, ch, 2, &ide_channel_vmsd,
                         IDEChannel),
        VMS_END
    },
};

const VMStateDescription *ide_vmstate(void)
{
    return &ide_vmsd;
}
