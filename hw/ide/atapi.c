/*
 * atapi.c - the DVD drive: the PACKET protocol, IDENTIFY PACKET DEVICE,
 * the SCSI/MMC packet commands, sense data, the tray and the medium.
 *
 * Owns: ATAPIState of CD drives, the packet command table (TEST UNIT
 * READY, REQUEST SENSE, INQUIRY, READ CAPACITY, READ(10), READ(12), READ
 * TOC formats 0/1, MODE SENSE(10) pages 01h/0Dh/0Eh/2Ah/3Fh, GET
 * CONFIGURATION with the DVD-ROM profile, GET EVENT STATUS NOTIFICATION
 * (polled, media class), START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL) and
 * the media functions of ide.h.  core.c dispatches ATA commands here and
 * calls back when a DRQ block is done; the bus master runs through
 * core.c/bmdma.c.  Everything runs on the device thread.
 *
 * Invariants:
 *   - Replies are built in io_buf and cut to the CDB's allocation length;
 *     io_total never exceeds IDE_IO_BUF_SIZE.  PIO DRQ blocks are at most
 *     the byte count limit (the PACKET's LBA mid/high, made even; 0 reads
 *     as FFFEh); READ data goes through io_buf 64 KiB at a time.
 *   - A command that fails ends in the status phase with CHECK CONDITION:
 *     ERR set, the sense key in Error bits 7:4, sense data kept for
 *     REQUEST SENSE.  Any other command clears the sense data first.
 *   - The medium is readable only when a disk (XblkDisk) is inserted and the
 *     tray is closed.  Closing the tray on a medium (or inserting one into
 *     a closed, empty drive) raises UNIT ATTENTION 28h/00h, reported once
 *     to the next command other than INQUIRY, REQUEST SENSE, GET
 *     CONFIGURATION and GET EVENT STATUS NOTIFICATION.
 *   - Opening the tray or removing the medium aborts a READ in progress
 *     (NOT READY); the machine keeps the old disk alive until
 *     ide_in_flight() says its requests are done.
 *   - ide_cd_open_tray on a tray locked by PREVENT ALLOW MEDIUM REMOVAL,
 *     without force, leaves it closed and queues an eject request for the
 *     guest (QEMU's blockdev-open-tray); ide_cd_eject fails instead.  With
 *     force both unlock the tray first, as QEMU's forced eject request.
 *   - Every real movement of the tray, whoever makes it, is reported once
 *     through the DevHost's tray_moved (QEMU's DEVICE_TRAY_MOVED).
 */
#include "hw/ide/internal.h"
#include "hw/error.h"
#include <errno.h>
#include <string.h>

/* Big-endian fields of CDBs and replies (SCSI's byte order), by byte so
 * that any alignment works. */
static inline uint16_t ld_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t ld_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static inline void st_be16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static inline void st_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

/* Sense keys and the additional sense codes used here (SPC/MMC). */
enum {
    SENSE_NONE = 0x00,
    SENSE_NOT_READY = 0x02,
    SENSE_MEDIUM_ERROR = 0x03,
    SENSE_ILLEGAL_REQUEST = 0x05,
    SENSE_UNIT_ATTENTION = 0x06,
    SENSE_ABORTED_COMMAND = 0x0B,
};

enum {
    ASC_UNRECOVERED_READ = 0x11,
    ASC_INVALID_OPCODE = 0x20,
    ASC_LBA_OUT_OF_RANGE = 0x21,
    ASC_INVALID_FIELD = 0x24,
    ASC_MEDIUM_CHANGED = 0x28,
    ASC_SAVING_NOT_SUPPORTED = 0x39,
    ASC_MEDIUM_NOT_PRESENT = 0x3A,
    ASC_REMOVAL_PREVENTED = 0x53,
};

/* Packet command opcodes. */
enum {
    GPCMD_TEST_UNIT_READY = 0x00,
    GPCMD_REQUEST_SENSE = 0x03,
    GPCMD_INQUIRY = 0x12,
    GPCMD_START_STOP_UNIT = 0x1B,
    GPCMD_PREVENT_ALLOW = 0x1E,
    GPCMD_READ_CAPACITY = 0x25,
    GPCMD_READ_10 = 0x28,
    GPCMD_READ_TOC = 0x43,
    GPCMD_GET_CONFIGURATION = 0x46,
    GPCMD_GET_EVENT_STATUS = 0x4A,
    GPCMD_MODE_SENSE_10 = 0x5A,
    GPCMD_READ_12 = 0xA8,
};

#define ATAPI_PROFILE_DVD_ROM 0x0010
#define ATAPI_PROFILE_CD_ROM  0x0008

/* ---- medium ---- */

bool atapi_medium_present(IDEDrive *d)
{
    return d->disk && !d->atapi.tray_open;
}

int64_t atapi_nb_sectors(IDEDrive *d)
{
    int64_t len = d->disk ? xblk_disk_length(d->disk, NULL) : 0;
    return len > 0 ? len / ATAPI_SECTOR_SIZE : 0;
}

void atapi_reset(IDEDrive *d, bool power_on)
{
    ATAPIState *a = &d->atapi;
    a->sense_key = a->asc = a->ascq = 0;
    a->lba = a->left = 0;
    a->dma = false;
    if (power_on) {
        a->prevent = false;
        a->unit_attention = false;
        a->event = ATAPI_EV_NONE;
    }
}

/* ---- status phase ---- */

static void atapi_status_phase(IDEDrive *d, bool check)
{
    ide_cmd_end(d);
    d->nsector = ATAPI_IR_COD | ATAPI_IR_IO;
    d->status = IDE_ST_DRDY | (check ? IDE_ST_ERR : 0);
    d->error = check ? d->atapi.sense_key << 4 : 0;
    if (check && d->atapi.sense_key == SENSE_ABORTED_COMMAND) {
        d->error |= IDE_ER_ABRT;
    }
    ide_set_irq(d);
}

static void atapi_good(IDEDrive *d)
{
    atapi_status_phase(d, false);
}

static void atapi_check(IDEDrive *d, uint8_t key, uint8_t asc, uint8_t ascq)
{
    d->atapi.sense_key = key;
    d->atapi.asc = asc;
    d->atapi.ascq = ascq;
    atapi_status_phase(d, true);
}

static void atapi_invalid_field(IDEDrive *d)
{
    atapi_check(d, SENSE_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
}

static void atapi_not_ready(IDEDrive *d)
{
    atapi_check(d, SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT,
                d->atapi.tray_open ? 0x02 : 0x01);
}

void atapi_dma_abort(IDEDrive *d)
{
    atapi_check(d, SENSE_ABORTED_COMMAND, 0, 0);
}

/* ---- data phase ---- */

/* Next PIO DRQ block from io_buf: at most the byte count limit. */
static void atapi_pio_next_block(IDEDrive *d)
{
    uint32_t n = MIN(d->io_total - d->io_pos, d->atapi.bcl);
    d->xfer = IDE_XFER_PIO_IN;
    d->io_end = d->io_pos + n;
    d->lcyl = n;
    d->hcyl = n >> 8;
    d->nsector = ATAPI_IR_IO;
    d->status = IDE_ST_DRDY | IDE_ST_DRQ;
    ide_set_irq(d);
}

/* Sends the reply in io_buf[0, len), cut to the allocation length. */
static void atapi_reply(IDEDrive *d, uint32_t len, uint32_t alloc)
{
    len = MIN(len, alloc);
    g_assert(len <= IDE_IO_BUF_SIZE);
    if (len == 0) {
        atapi_good(d);
        return;
    }
    d->op = IDE_OP_ATAPI_DATA;
    d->io_pos = 0;
    d->io_total = len;
    if (d->atapi.dma) {
        ide_dma_request(d);
        return;
    }
    atapi_pio_next_block(d);
}

static void atapi_read_done(IDEDrive *d, IDERequest *r, int ret);

static void atapi_read_next(IDEDrive *d)
{
    ATAPIState *a = &d->atapi;
    uint32_t max = (a->dma ? IDE_DMA_CHUNK : IDE_IO_BUF_SIZE) /
                   ATAPI_SECTOR_SIZE;
    uint32_t n = MIN(a->left, max);
    d->status = IDE_ST_BSY | IDE_ST_DRDY;
    if (!a->dma) {
        d->xfer = IDE_XFER_NONE;
    }
    IDERequest *r = ide_request_new(d, DEVIO_READ,
                                    (int64_t)a->lba * ATAPI_SECTOR_SIZE,
                                    n * ATAPI_SECTOR_SIZE, atapi_read_done);
    r->arg = n;
    ide_request_submit(d, r);
}

static void atapi_read_done(IDEDrive *d, IDERequest *r, int ret)
{
    ATAPIState *a = &d->atapi;
    uint32_t n = r->arg;
    if (ret == -ENOMEDIUM) {
        atapi_not_ready(d);
        return;
    }
    if (ret < 0) {
        atapi_check(d, SENSE_MEDIUM_ERROR, ASC_UNRECOVERED_READ, 0);
        return;
    }
    a->lba += n;
    a->left -= n;
    if (a->dma) {
        IDEChannel *ch = ide_drive_channel(d);
        if (!ide_bmdma_to_ram(d->ctrl, ch, r->io.buf,
                              n * ATAPI_SECTOR_SIZE)) {
            ide_dma_error(d);
        } else if (a->left) {
            atapi_read_next(d);
        } else {
            ide_dma_done(d);
            atapi_good(d);
        }
        return;
    }
    memcpy(d->io_buf, r->io.buf, n * ATAPI_SECTOR_SIZE);
    d->io_pos = 0;
    d->io_total = n * ATAPI_SECTOR_SIZE;
    atapi_pio_next_block(d);
}

void atapi_pio_block_done(IDEDrive *d)
{
    if (d->io_pos < d->io_total) {
        atapi_pio_next_block(d);
    } else if (d->op == IDE_OP_ATAPI_READ && d->atapi.left) {
        atapi_read_next(d);
    } else {
        atapi_good(d);
    }
}

void atapi_dma_start(IDEDrive *d)
{
    IDEChannel *ch = ide_drive_channel(d);
    bool read = d->op == IDE_OP_ATAPI_READ;
    uint64_t total = read ? d->atapi.left * ATAPI_SECTOR_SIZE : d->io_total;
    if (!ide_bmdma_begin(d->ctrl, ch, total, true)) {
        ide_dma_error(d);
        return;
    }
    if (read) {
        atapi_read_next(d);
        return;
    }
    if (!ide_bmdma_to_ram(d->ctrl, ch, d->io_buf, d->io_total)) {
        ide_dma_error(d);
        return;
    }
    ide_dma_done(d);
    atapi_good(d);
}

/* ---- IDENTIFY PACKET DEVICE, PACKET ---- */

void atapi_identify(IDEDrive *d)
{
    uint16_t w[256] = { 0 };
    w[0] = 0x85C0;          /* ATAPI, CD/DVD, removable, 50 us DRQ, 12 */
    ide_ata_string(w, 10, 10, d->serial);
    ide_ata_string(w, 23, 4, d->firmware);
    ide_ata_string(w, 27, 20, d->model);
    w[49] = 0x0B00;         /* LBA, DMA, IORDY */
    w[53] = 0x0006;         /* words 64-70 and 88 valid */
    w[64] = 0x0003;
    w[65] = w[66] = w[67] = w[68] = 120;
    w[80] = 0x00F0;
    w[82] = 0x0010 | 0x0200;    /* PACKET, DEVICE RESET */
    w[83] = 0x4000;
    w[84] = 0x4000;
    w[85] = 0x0010 | 0x0200;
    w[87] = 0x4000;
    atapi_identify_modes(d, w);
    w[93] = 0x6000 | (d->unit ? 0x0B00 : 0x000B);
    ide_identify_finish(w);
    for (int i = 0; i < 256; i++) {
        d->io_buf[2 * i] = w[i];
        d->io_buf[2 * i + 1] = w[i] >> 8;
    }
    ide_pio_in_start(d, IDE_OP_IDENTIFY, 512, 512);
}

void atapi_packet_cmd(IDEDrive *d)
{
    ATAPIState *a = &d->atapi;
    if (d->feature & 0x02) {        /* overlapped: not supported */
        ide_error(d, IDE_ER_ABRT);
        return;
    }
    a->dma = d->feature & 0x01;
    a->bcl = (d->hcyl << 8 | d->lcyl) & ~1;
    if (!a->bcl) {
        a->bcl = 0xFFFE;
    }
    /* Ask for the 12-byte command packet (no interrupt: word 0 says the
     * drive sets DRQ within 50 us). */
    d->op = IDE_OP_PACKET;
    d->xfer = IDE_XFER_PIO_OUT;
    d->io_pos = 0;
    d->io_end = d->io_total = 12;
    d->nsector = ATAPI_IR_COD;
    d->status = IDE_ST_DRDY | IDE_ST_DRQ;
}

/* ---- packet commands ---- */

static void atapi_cmd_test_unit_ready(IDEDrive *d)
{
    atapi_good(d);
}

static void atapi_cmd_request_sense(IDEDrive *d)
{
    ATAPIState *a = &d->atapi;
    uint8_t *b = d->io_buf;
    if (a->sense_key == SENSE_NONE && a->unit_attention) {
        a->unit_attention = false;
        a->sense_key = SENSE_UNIT_ATTENTION;
        a->asc = ASC_MEDIUM_CHANGED;
        a->ascq = 0;
    }
    memset(b, 0, 18);
    b[0] = 0x70;            /* current error, fixed format */
    b[2] = a->sense_key;
    b[7] = 10;
    b[12] = a->asc;
    b[13] = a->ascq;
    a->sense_key = a->asc = a->ascq = 0;
    atapi_reply(d, 18, d->atapi.cdb[4]);
}

static void atapi_pad_copy(uint8_t *dst, const char *src, size_t len)
{
    size_t n = strlen(src);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = i < n ? (uint8_t)src[i] : ' ';
        dst[i] = c >= 0x20 && c <= 0x7E ? c : ' ';
    }
}

static void atapi_cmd_inquiry(IDEDrive *d)
{
    const uint8_t *cdb = d->atapi.cdb;
    uint8_t *b = d->io_buf;
    if ((cdb[1] & 0x01) || cdb[2]) {    /* no vital product data pages */
        atapi_invalid_field(d);
        return;
    }
    memset(b, 0, 36);
    b[0] = 0x05;            /* CD/DVD device */
    b[1] = 0x80;            /* removable */
    b[2] = 0x05;            /* SPC-3 */
    b[3] = 0x02;            /* response data format 2 */
    b[4] = 36 - 5;
    atapi_pad_copy(b + 8, "XBLK", 8);
    atapi_pad_copy(b + 16, d->model, 16);
    atapi_pad_copy(b + 32, d->firmware, 4);
    atapi_reply(d, 36, ld_be16(cdb + 3));
}

static void atapi_cmd_read_capacity(IDEDrive *d)
{
    int64_t nb = atapi_nb_sectors(d);
    st_be32(d->io_buf, nb ? MIN(nb - 1, 0xFFFFFFFF) : 0);
    st_be32(d->io_buf + 4, ATAPI_SECTOR_SIZE);
    atapi_reply(d, 8, 8);
}

static void atapi_read(IDEDrive *d, uint64_t lba, uint64_t count)
{
    ATAPIState *a = &d->atapi;
    if (lba + count > (uint64_t)atapi_nb_sectors(d)) {
        atapi_check(d, SENSE_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0);
        return;
    }
    if (count == 0) {
        atapi_good(d);
        return;
    }
    a->lba = lba;
    a->left = count;
    d->op = IDE_OP_ATAPI_READ;
    if (a->dma) {
        ide_dma_request(d);
        return;
    }
    atapi_read_next(d);
}

static void atapi_cmd_read_10(IDEDrive *d)
{
    const uint8_t *cdb = d->atapi.cdb;
    atapi_read(d, ld_be32(cdb + 2), ld_be16(cdb + 7));
}

static void atapi_cmd_read_12(IDEDrive *d)
{
    const uint8_t *cdb = d->atapi.cdb;
    atapi_read(d, ld_be32(cdb + 2), ld_be32(cdb + 6));
}

/* A TOC address, as LBA or as MSF (2 seconds of lead-in: +150). */
static void atapi_toc_addr(uint8_t *p, uint32_t lba, bool msf)
{
    if (!msf) {
        st_be32(p, lba);
        return;
    }
    lba += 150;
    p[0] = 0;
    p[1] = lba / (75 * 60);
    p[2] = (lba / 75) % 60;
    p[3] = lba % 75;
}

static uint32_t atapi_toc_track(uint8_t *p, uint8_t track, uint32_t lba,
                                bool msf)
{
    p[0] = 0;
    p[1] = 0x14;            /* ADR 1, data track */
    p[2] = track;
    p[3] = 0;
    atapi_toc_addr(p + 4, lba, msf);
    return 8;
}

static void atapi_cmd_read_toc(IDEDrive *d)
{
    const uint8_t *cdb = d->atapi.cdb;
    bool msf = cdb[1] & 0x02;
    uint8_t format = cdb[2] & 0x0F;
    uint8_t track = cdb[6];
    uint32_t leadout = MIN(atapi_nb_sectors(d), 0xFFFFFFFF);
    uint8_t *b = d->io_buf;
    uint32_t len = 4;
    if (format == 0 && (cdb[9] >> 6)) {
        format = cdb[9] >> 6;           /* the older place of the field */
    }
    switch (format) {
    case 0:
        if (track > 1 && track != 0xAA) {
            atapi_invalid_field(d);
            return;
        }
        if (track <= 1) {
            len += atapi_toc_track(b + len, 1, 0, msf);
        }
        len += atapi_toc_track(b + len, 0xAA, leadout, msf);
        break;
    case 1:                             /* session information */
        len += atapi_toc_track(b + len, 1, 0, msf);
        break;
    default:
        atapi_invalid_field(d);
        return;
    }
    st_be16(b, len - 2);
    b[2] = 1;               /* first track / session */
    b[3] = 1;               /* last */
    atapi_reply(d, len, ld_be16(cdb + 7));
}

/* ---- MODE SENSE(10) ---- */

static uint32_t atapi_mode_page(IDEDrive *d, uint8_t page, uint8_t *p)
{
    switch (page) {
    case 0x01:              /* read error recovery */
        memset(p, 0, 12);
        p[0] = 0x01;
        p[1] = 10;
        p[3] = 5;           /* read retry count */
        return 12;
    case 0x0D:              /* CD device parameters */
        memset(p, 0, 8);
        p[0] = 0x0D;
        p[1] = 6;
        p[5] = 60;          /* S units per M */
        p[7] = 75;          /* F units per S */
        return 8;
    case 0x0E:              /* CD audio control */
        memset(p, 0, 16);
        p[0] = 0x0E;
        p[1] = 14;
        p[2] = 0x04;        /* Immed */
        p[8] = 0x01;
        p[9] = 0xFF;
        p[10] = 0x02;
        p[11] = 0xFF;
        return 16;
    case 0x2A:              /* capabilities and mechanical status */
        memset(p, 0, 22);
        p[0] = 0x2A;
        p[1] = 20;
        p[2] = 0x0F;        /* reads CD-R, CD-RW, method 2, DVD-ROM */
        p[4] = 0x71;        /* audio play, mode 2 form 1/2, multisession */
        p[6] = 0x29 | (d->atapi.prevent ? 0x02 : 0);   /* tray, eject, lock */
        st_be16(p + 8, 2770);           /* max speed, kB/s (2x DVD) */
        st_be16(p + 10, 256);           /* volume levels */
        st_be16(p + 12, 512);           /* buffer, KiB */
        st_be16(p + 14, 2770);
        return 22;
    }
    return 0;
}

static void atapi_cmd_mode_sense(IDEDrive *d)
{
    static const uint8_t all[] = { 0x01, 0x0D, 0x0E, 0x2A };
    const uint8_t *cdb = d->atapi.cdb;
    uint8_t pc = cdb[2] >> 6, page = cdb[2] & 0x3F, sub = cdb[3];
    uint8_t *b = d->io_buf;
    uint32_t len = 8;
    if (pc == 3) {
        atapi_check(d, SENSE_ILLEGAL_REQUEST, ASC_SAVING_NOT_SUPPORTED, 0);
        return;
    }
    if (sub && !(page == 0x3F && sub == 0xFF)) {
        atapi_invalid_field(d);
        return;
    }
    memset(b, 0, 8);
    for (size_t i = 0; i < G_N_ELEMENTS(all); i++) {
        if (page != 0x3F && page != all[i]) {
            continue;
        }
        uint32_t n = atapi_mode_page(d, all[i], b + len);
        if (pc == 1) {      /* changeable values: none */
            memset(b + len + 2, 0, n - 2);
        }
        len += n;
    }
    if (len == 8) {
        atapi_invalid_field(d);
        return;
    }
    st_be16(b, len - 2);
    atapi_reply(d, len, ld_be16(cdb + 7));
}

/* ---- GET CONFIGURATION ---- */

static const uint16_t atapi_features[] = {
    0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x001F,
};

/* Writes feature code's descriptor at p; returns its length. */
static uint32_t atapi_feature(IDEDrive *d, uint16_t code, uint8_t *p,
                              bool *current)
{
    bool present = atapi_medium_present(d);
    uint32_t add;
    *current = true;
    st_be16(p, code);
    p[2] = 0x03;            /* persistent, current */
    switch (code) {
    case 0x0000:            /* profile list, highest first */
        add = 8;
        memset(p + 4, 0, add);
        st_be16(p + 4, ATAPI_PROFILE_DVD_ROM);
        p[6] = present;
        st_be16(p + 8, ATAPI_PROFILE_CD_ROM);
        break;
    case 0x0001:            /* core: ATAPI */
        add = 4;
        st_be32(p + 4, 2);
        break;
    case 0x0002:            /* morphing: operational change events */
        add = 4;
        p[2] = 0x07;        /* version 1 */
        memset(p + 4, 0, add);
        p[4] = 0x02;
        break;
    case 0x0003:            /* removable medium: tray, eject, lock */
        add = 4;
        memset(p + 4, 0, add);
        p[4] = 0x29;
        break;
    case 0x0010:            /* random readable */
        add = 8;
        *current = present;
        p[2] = present;
        memset(p + 4, 0, add);
        st_be32(p + 4, ATAPI_SECTOR_SIZE);
        st_be16(p + 8, 16);
        break;
    default:                /* 0x001F DVD read */
        add = 0;
        *current = present;
        p[2] = present;
        break;
    }
    p[3] = add;
    return 4 + add;
}

static void atapi_cmd_get_configuration(IDEDrive *d)
{
    const uint8_t *cdb = d->atapi.cdb;
    uint8_t rt = cdb[1] & 0x03;
    uint16_t start = ld_be16(cdb + 2);
    uint8_t *b = d->io_buf;
    uint32_t len = 8;
    if (rt == 3) {
        atapi_invalid_field(d);
        return;
    }
    memset(b, 0, 8);
    for (size_t i = 0; i < G_N_ELEMENTS(atapi_features); i++) {
        uint16_t code = atapi_features[i];
        bool current;
        if (code < start || (rt == 2 && code != start)) {
            continue;
        }
        uint32_t n = atapi_feature(d, code, b + len, &current);
        if (rt == 1 && !current) {
            continue;       /* written, but not kept */
        }
        len += n;
    }
    st_be32(b, len - 4);
    st_be16(b + 6, atapi_medium_present(d) ? ATAPI_PROFILE_DVD_ROM : 0);
    atapi_reply(d, len, ld_be16(cdb + 7));
}

/* ---- GET EVENT STATUS NOTIFICATION (polled, media class) ---- */

static void atapi_cmd_get_event_status(IDEDrive *d)
{
    const uint8_t *cdb = d->atapi.cdb;
    ATAPIState *a = &d->atapi;
    uint8_t *b = d->io_buf;
    uint32_t len;
    if (!(cdb[1] & 0x01)) { /* asynchronous notification: not offered */
        atapi_invalid_field(d);
        return;
    }
    memset(b, 0, 8);
    b[3] = 0x10;            /* supported: media class */
    if (cdb[4] & 0x10) {
        b[2] = 0x04;        /* media class */
        b[4] = a->event;
        b[5] = (a->tray_open ? 0x01 : 0) |
               (atapi_medium_present(d) ? 0x02 : 0);
        a->event = ATAPI_EV_NONE;
        len = 8;
    } else {
        b[2] = 0x80;        /* no event available of the asked classes */
        len = 4;
    }
    st_be16(b, len - 2);
    atapi_reply(d, len, ld_be16(cdb + 7));
}

/* ---- tray ---- */

static void atapi_tray_set(IDEDrive *d, bool open)
{
    ATAPIState *a = &d->atapi;
    if (open == a->tray_open) {
        return;
    }
    a->tray_open = open;
    DevHost *h = ide_drive_host(d);
    if (h->ops->tray_moved) {
        h->ops->tray_moved(h, d->id, open);
    }
    if (!d->disk) {
        return;
    }
    if (open) {
        a->event = ATAPI_EV_MEDIA_REMOVAL;
    } else {
        a->unit_attention = true;
        a->event = ATAPI_EV_NEW_MEDIA;
    }
}

static void atapi_cmd_start_stop(IDEDrive *d)
{
    uint8_t b4 = d->atapi.cdb[4];
    bool loej = b4 & 0x02, start = b4 & 0x01;
    if ((b4 >> 4) || !loej) {   /* power conditions, spindle: no-ops */
        atapi_good(d);
        return;
    }
    if (!start && d->atapi.prevent) {
        atapi_check(d, SENSE_ILLEGAL_REQUEST, ASC_REMOVAL_PREVENTED, 0x02);
        return;
    }
    atapi_tray_set(d, !start);
    atapi_good(d);
}

static void atapi_cmd_prevent_allow(IDEDrive *d)
{
    d->atapi.prevent = d->atapi.cdb[4] & 0x01;
    atapi_good(d);
}

/* ---- dispatch ---- */

enum {
    ATAPI_NEEDS_MEDIUM = 1 << 0,
    ATAPI_NO_UA = 1 << 1,      /* not held up by a unit attention */
};

typedef struct ATAPICmd {
    uint8_t opcode;
    unsigned flags;
    void (*fn)(IDEDrive *d);
} ATAPICmd;

static const ATAPICmd atapi_cmds[] = {
    { GPCMD_TEST_UNIT_READY, ATAPI_NEEDS_MEDIUM, atapi_cmd_test_unit_ready },
    { GPCMD_REQUEST_SENSE, ATAPI_NO_UA, atapi_cmd_request_sense },
    { GPCMD_INQUIRY, ATAPI_NO_UA, atapi_cmd_inquiry },
    { GPCMD_START_STOP_UNIT, 0, atapi_cmd_start_stop },
    { GPCMD_PREVENT_ALLOW, 0, atapi_cmd_prevent_allow },
    { GPCMD_READ_CAPACITY, ATAPI_NEEDS_MEDIUM, atapi_cmd_read_capacity },
    { GPCMD_READ_10, ATAPI_NEEDS_MEDIUM, atapi_cmd_read_10 },
    { GPCMD_READ_TOC, ATAPI_NEEDS_MEDIUM, atapi_cmd_read_toc },
    { GPCMD_GET_CONFIGURATION, ATAPI_NO_UA, atapi_cmd_get_configuration },
    { GPCMD_GET_EVENT_STATUS, ATAPI_NO_UA, atapi_cmd_get_event_status },
    { GPCMD_MODE_SENSE_10, 0, atapi_cmd_mode_sense },
    { GPCMD_READ_12, ATAPI_NEEDS_MEDIUM, atapi_cmd_read_12 },
};

void atapi_cdb_received(IDEDrive *d)
{
    ATAPIState *a = &d->atapi;
    const ATAPICmd *cmd = NULL;
    memcpy(a->cdb, d->io_buf, sizeof(a->cdb));
    d->xfer = IDE_XFER_NONE;
    d->op = IDE_OP_NONE;
    d->status = IDE_ST_BSY | IDE_ST_DRDY;
    for (size_t i = 0; i < G_N_ELEMENTS(atapi_cmds); i++) {
        if (atapi_cmds[i].opcode == a->cdb[0]) {
            cmd = &atapi_cmds[i];
        }
    }
    if (a->cdb[0] != GPCMD_REQUEST_SENSE) {
        a->sense_key = a->asc = a->ascq = 0;
    }
    if (!cmd) {
        atapi_check(d, SENSE_ILLEGAL_REQUEST, ASC_INVALID_OPCODE, 0);
        return;
    }
    if (a->unit_attention && !(cmd->flags & ATAPI_NO_UA)) {
        a->unit_attention = false;
        atapi_check(d, SENSE_UNIT_ATTENTION, ASC_MEDIUM_CHANGED, 0);
        return;
    }
    if ((cmd->flags & ATAPI_NEEDS_MEDIUM) && !atapi_medium_present(d)) {
        atapi_not_ready(d);
        return;
    }
    cmd->fn(d);
}

/* ---- media control (ide.h) ---- */

static IDEDrive *atapi_lookup(IDEController *c, int index, GError **errp)
{
    if (index < 0 || index > 3) {
        hw_error_set(errp, "IDE index %d out of range (0-3)", index);
        return NULL;
    }
    IDEDrive *d = &c->ch[index / 2].drive[index % 2];
    if (d->kind != IDE_DRIVE_CD) {
        hw_error_set(errp, "Device at IDE index %d is not a CD/DVD drive",
                     index);
        return NULL;
    }
    return d;
}

/* The medium goes away under a READ: end it with NOT READY. */
static void atapi_medium_gone(IDEDrive *d)
{
    if (d->op != IDE_OP_ATAPI_READ) {
        return;
    }
    ide_cancel(d);
    atapi_not_ready(d);
}

bool ide_cd_open_tray(IDEController *c, int index, bool force,
                      GError **errp)
{
    IDEDrive *d = atapi_lookup(c, index, errp);
    if (!d) {
        return false;
    }
    if (d->atapi.tray_open) {
        return true;
    }
    if (d->atapi.prevent && !force) {
        d->atapi.event = ATAPI_EV_EJECT_REQUEST;
        return true;
    }
    d->atapi.prevent = false;
    atapi_tray_set(d, true);
    atapi_medium_gone(d);
    return true;
}

bool ide_cd_close_tray(IDEController *c, int index, GError **errp)
{
    IDEDrive *d = atapi_lookup(c, index, errp);
    if (!d) {
        return false;
    }
    atapi_tray_set(d, false);
    return true;
}

bool ide_cd_eject(IDEController *c, int index, bool force, GError **errp)
{
    IDEDrive *d = atapi_lookup(c, index, errp);
    if (!d) {
        return false;
    }
    if (d->atapi.prevent && !force) {
        d->atapi.event = ATAPI_EV_EJECT_REQUEST;
        hw_error_set(errp, "Device '%s' is locked and force was not specified",
                     d->id);
        return false;
    }
    d->atapi.prevent = false;
    atapi_tray_set(d, true);
    atapi_medium_gone(d);
    d->disk = NULL;
    return true;
}

bool ide_cd_set_medium(IDEController *c, int index, XblkDisk *disk,
                       GError **errp)
{
    IDEDrive *d = atapi_lookup(c, index, errp);
    if (!d) {
        return false;
    }
    if (!d->atapi.tray_open && d->disk) {
        hw_error_set(errp, "Tray of device '%s' is not open", d->id);
        return false;
    }
    d->disk = disk;
    if (disk && !d->atapi.tray_open) {
        d->atapi.unit_attention = true;
        d->atapi.event = ATAPI_EV_NEW_MEDIA;
    }
    return true;
}
