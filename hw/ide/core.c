/*
 * core.c - the IDE controller's channels and the ATA hard disk.
 *
 * Owns: the controller object, the task-file and device-control registers
 * of both channels (with the 48-bit HOB FIFO), the PIO data port (16 and
 * 32 bits), interrupt lines 14/15, the ATA command set of the hard disk
 * (ATA/ATAPI-7: IDENTIFY, READ/WRITE SECTORS/MULTIPLE/DMA (EXT), READ
 * VERIFY, FLUSH CACHE, SET FEATURES, SET MULTIPLE, power management, EXECUTE
 * DEVICE DIAGNOSTIC and the SECURITY feature set), the ATA-level commands of
 * the ATAPI drive (PACKET, IDENTIFY PACKET DEVICE, DEVICE RESET...; the
 * packet commands themselves are atapi.c's), block requests and their error
 * policies.  Bus-master registers and the PRD walk are bmdma.c's.
 * Called by the machine through ide.h, on the device thread.
 *
 * Invariants:
 *   - A drive executes one command at a time.  Commands written while BSY
 *     is set are ignored (DEVICE RESET to an ATAPI drive excepted); a
 *     command written while DRQ is set abandons the transfer in progress.
 *   - Aborting a command (SRST, DEVICE RESET, hardware reset, a new
 *     command, a DMA stop) bumps the drive's generation: completions of
 *     requests it had in flight are dropped when they arrive.
 *   - INTRQ of a channel = INTRQ pending on the selected device and nIEN
 *     clear.  Reading Status (not Alternate Status) or writing Command
 *     clears the selected device's pending interrupt.
 *   - Guest values never index host memory: the data port only moves bytes
 *     inside io_buf, RAM is reached only through the DevHost.
 *
 * Timing (virtual time, deterministic): every block request completes
 *     latency = 20 us + bytes x 5 ns   (a 200 MB/s medium)
 * after it is submitted (flush: 20 us).  PIO commands issue one request
 * per DRQ block (1 sector, or the SET MULTIPLE count); DMA and READ VERIFY
 * split transfers into requests of at most 128 KiB, ATAPI PIO reads into
 * 64 KiB, ERASE UNIT into 1 MiB, each paying its own latency.  With the
 * write cache disabled a write command's last data request is followed by
 * a flush before the command completes.  Commands without media access
 * (IDENTIFY, SET FEATURES, ...) complete at once, within the port write.
 *
 * Choices where ATA-7 leaves room (documented for the machine contract):
 *   - SRST keeps SET FEATURES / SET MULTIPLE settings (as after SET
 *     FEATURES 66h); a hardware reset (ide_reset) restores the power-on
 *     defaults: write cache on, multiple mode 16, UDMA mode 5.
 *   - SET PASSWORD state survives ide_reset like a real drive's: a drive
 *     with a user password comes back locked, with 5 UNLOCK attempts.
 *     The factory master password is 32 spaces, revision code 0xFFFE.
 *   - Byte-wide accesses to the data port are ignored (read 0xFF); wider
 *     accesses to other registers are split into byte accesses of the
 *     consecutive ports.
 *   - A channel with no drive reads 0xFF everywhere; an absent selected
 *     device on a populated channel reads Status 0x00.  The data port
 *     reads all ones outside a data-in DRQ block.
 *   - A locked drive aborts READ/WRITE SECTORS/MULTIPLE/DMA (EXT), READ
 *     VERIFY (EXT), FLUSH CACHE (EXT), SET PASSWORD, DISABLE PASSWORD and
 *     FREEZE LOCK; it runs IDENTIFY, SET FEATURES, SET MULTIPLE, the power
 *     commands, UNLOCK and ERASE PREPARE/UNIT.  A frozen drive aborts SET
 *     PASSWORD, UNLOCK, ERASE PREPARE/UNIT and DISABLE PASSWORD.  The
 *     attempt counter counts failed UNLOCKs of a locked drive only.
 *   - After SLEEP a drive ignores commands until SRST, DEVICE RESET (ATAPI)
 *     or a hardware reset.  Standby timers are accepted and not run.
 *   - Read errors end the command with UNC (ATAPI: MEDIUM ERROR 11h),
 *     write and flush errors with ABRT, the task file holding the first
 *     LBA of the failed request.
 *   - One device of a channel owns the bus master at a time; a DMA command
 *     of the other device meanwhile is aborted.
 */
#include "hw/ide/internal.h"
#include "hw/error.h"
#include <errno.h>
#include <string.h>

/* ---- small helpers ---- */

static bool ide_present(const IDEDrive *d)
{
    return d->kind != IDE_DRIVE_NONE;
}

static uint8_t ide_ready_status(const IDEDrive *d)
{
    return d->kind == IDE_DRIVE_HD ? IDE_ST_DRDY | IDE_ST_DSC : IDE_ST_DRDY;
}

static int64_t ide_nb_sectors(IDEDrive *d)
{
    int64_t len = d->disk ? xblk_disk_length(d->disk, NULL) : 0;
    return len > 0 ? len / IDE_SECTOR_SIZE : 0;
}

int64_t ide_latency_ns(size_t bytes)
{
    return IDE_LATENCY_BASE_NS + (int64_t)bytes * IDE_LATENCY_NS_PER_BYTE;
}

/* ---- interrupts ---- */

void ide_update_irq(IDEChannel *ch)
{
    IDEDrive *d = &ch->drive[ch->unit];
    bool level = d->irq && !(ch->devctl & IDE_CTL_NIEN);
    if (level != ch->irq_level) {
        ch->irq_level = level;
        devhost_set_irq(ch->drive[0].ctrl->host, 14 + ch->index, level);
    }
}

/* The device asserts INTRQ.  The bus master's Interrupt bit follows every
 * device interrupt of the channel (SFF-8038i), also under nIEN, so a
 * polling driver sees DMA completion. */
void ide_set_irq(IDEDrive *d)
{
    IDEChannel *ch = ide_drive_channel(d);
    d->irq = true;
    ch->bm.status |= BM_ST_INT;
    ide_update_irq(ch);
}

static void ide_clear_irq(IDEDrive *d)
{
    d->irq = false;
    ide_update_irq(ide_drive_channel(d));
}

/* ---- requests ---- */

static void ide_request_complete(DevIORequest *io, int ret);

IDERequest *ide_request_new(IDEDrive *d, DevIOOp op, int64_t offset,
                            size_t len, IDERequestDone *done)
{
    IDERequest *r = g_new0(IDERequest, 1);
    r->ctrl = d->ctrl;
    r->drive = d;
    r->gen = d->gen;
    r->done = done;
    r->is_write = op != DEVIO_READ;
    r->io.disk = d->disk;
    r->io.op = op;
    r->io.offset = offset;
    r->io.len = len;
    /* Zeroed: ERASE UNIT writes it as is, and a read error under the
     * ignore policy hands the guest zeroes, never stale host memory. */
    r->io.buf = len ? g_malloc0(len) : NULL;
    r->io.complete = ide_request_complete;
    r->io.opaque = r;
    return r;
}

static void ide_request_free(IDERequest *r)
{
    if (r->ctrl) {
        r->ctrl->reqs = g_list_remove(r->ctrl->reqs, r);
    }
    g_free(r->io.buf);
    g_free(r);
}

void ide_request_submit(IDEDrive *d, IDERequest *r)
{
    IDEController *c = d->ctrl;
    g_assert(!r->submitted && r->io.disk);
    if (!g_list_find(c->reqs, r)) {
        c->reqs = g_list_prepend(c->reqs, r);
    }
    r->submitted = true;
    r->stopped = false;
    c->in_flight++;
    r->io.latency_ns = ide_latency_ns(r->io.len);
    devhost_submit(c->host, &r->io);
}

bool ide_request_failed(IDEDrive *d, IDERequest *r, int *ret)
{
    DevHost *h = ide_drive_host(d);
    IDEErrorAction a = r->is_write ? d->werror : d->rerror;
    if (a == IDE_ERROR_ACTION_ENOSPC) {
        a = *ret == -ENOSPC ? IDE_ERROR_ACTION_STOP : IDE_ERROR_ACTION_REPORT;
    }
    d->io_failed = true;
    switch (a) {
    case IDE_ERROR_ACTION_STOP:
        r->stopped = true;
        h->ops->io_error_stop(h, d->id, d->node_name, r->is_write, *ret);
        return true;
    case IDE_ERROR_ACTION_IGNORE:
        h->ops->io_error_event(h, d->id, d->node_name, r->is_write, *ret,
                               "ignore");
        if (r->io.buf) {
            memset(r->io.buf, 0, r->io.len);
        }
        *ret = 0;
        return false;
    default:
        h->ops->io_error_event(h, d->id, d->node_name, r->is_write, *ret,
                               "report");
        return false;
    }
}

static void ide_request_complete(DevIORequest *io, int ret)
{
    IDERequest *r = io->opaque;
    IDEController *c = r->ctrl;
    if (!c) {               /* the controller is gone */
        ide_request_free(r);
        return;
    }
    g_assert(r->submitted && c->in_flight > 0);
    r->submitted = false;
    c->in_flight--;
    IDEDrive *d = r->drive;
    if (r->gen != d->gen) { /* its command was aborted */
        ide_request_free(r);
        return;
    }
    if (ret < 0 && ide_request_failed(d, r, &ret)) {
        return;             /* held for ide_resume() */
    }
    if (ret == 0) {
        d->io_failed = false;
    }
    r->done(d, r, ret);
    ide_request_free(r);
}

/* Drops the drive's requests held by a stop policy (never in flight). */
static void ide_drop_stopped(IDEDrive *d)
{
    GList *l = d->ctrl->reqs;
    while (l) {
        GList *next = l->next;
        IDERequest *r = l->data;
        if (r->drive == d && r->stopped) {
            ide_request_free(r);
        }
        l = next;
    }
}

unsigned ide_in_flight(IDEController *c)
{
    return c->in_flight;
}

void ide_resume(IDEController *c)
{
    GList *held = NULL;
    for (GList *l = c->reqs; l; l = l->next) {
        IDERequest *r = l->data;
        if (r->stopped) {
            held = g_list_prepend(held, r);
        }
    }
    for (GList *l = held; l; l = l->next) {
        IDERequest *r = l->data;
        r->drive->io_failed = false;
        ide_request_submit(r->drive, r);
    }
    g_list_free(held);
}

/* ---- command state ---- */

/* Ends the command's transfer state (not its status). */
void ide_cmd_end(IDEDrive *d)
{
    IDEChannel *ch = ide_drive_channel(d);
    d->op = IDE_OP_NONE;
    d->xfer = IDE_XFER_NONE;
    d->dma_waiting = false;
    if (ch->dma_unit == d->unit) {
        ch->dma_unit = -1;
    }
}

/* Abandons the command in progress: its requests' completions will be
 * ignored and held ones are dropped. */
void ide_cancel(IDEDrive *d)
{
    d->gen++;
    ide_drop_stopped(d);
    ide_cmd_end(d);
    d->io_pos = d->io_end = d->io_total = 0;
}

static void ide_ok(IDEDrive *d)
{
    ide_cmd_end(d);
    d->error = 0;
    d->status = ide_ready_status(d);
    ide_set_irq(d);
}

void ide_error(IDEDrive *d, uint8_t err)
{
    ide_cmd_end(d);
    d->error = err;
    d->status = ide_ready_status(d) | IDE_ST_ERR;
    ide_set_irq(d);
}

static void ide_abort(IDEDrive *d)
{
    ide_error(d, IDE_ER_ABRT);
}

void ide_set_signature(IDEDrive *d)
{
    bool cd = d->kind == IDE_DRIVE_CD;
    d->nsector = d->sector = 1;
    d->lcyl = cd ? 0x14 : 0;
    d->hcyl = cd ? 0xEB : 0;
    d->hob_nsector = d->hob_sector = d->hob_lcyl = d->hob_hcyl = 0;
}

/* The state a reset leaves (SRST, DEVICE RESET, diagnostics). */
static void ide_reset_done(IDEDrive *d)
{
    ide_set_signature(d);
    d->select = 0;
    d->error = 0x01;        /* diagnostic code: no error */
    d->status = d->kind == IDE_DRIVE_HD ? IDE_ST_DRDY | IDE_ST_DSC : 0;
    d->power = IDE_POWER_ACTIVE;
    d->sec.erase_prepared = false;
    d->irq = false;
}

/* Power-on / hardware reset of one drive. */
static void ide_drive_power_on(IDEDrive *d)
{
    ide_cancel(d);
    ide_reset_done(d);
    d->feature = d->hob_feature = 0;
    d->write_cache = true;
    d->mult = d->kind == IDE_DRIVE_HD ? IDE_MAX_MULT : 0;
    d->pio_mode = 4;
    d->mwdma_mode = -1;
    d->udma_mode = 5;
    d->io_failed = false;
    d->sec.locked = d->sec.enabled;
    d->sec.frozen = false;
    d->sec.count_expired = false;
    d->sec.attempts = IDE_UNLOCK_ATTEMPTS;
    if (d->kind == IDE_DRIVE_CD) {
        atapi_reset(d, true);
    }
}

/* ---- LBA / CHS ---- */

#define IDE_HEADS 16
#define IDE_SPT   63

static bool ide_decode_lba(IDEDrive *d, bool ext, uint64_t *lba)
{
    d->chs = false;
    if (ext) {
        *lba = (uint64_t)d->hob_hcyl << 40 | (uint64_t)d->hob_lcyl << 32 |
               (uint64_t)d->hob_sector << 24 | (uint64_t)d->hcyl << 16 |
               (uint64_t)d->lcyl << 8 | d->sector;
        return true;
    }
    if (d->select & IDE_DEV_LBA) {
        *lba = (uint64_t)(d->select & 0x0F) << 24 | (uint64_t)d->hcyl << 16 |
               (uint64_t)d->lcyl << 8 | d->sector;
        return true;
    }
    unsigned cyl = d->hcyl << 8 | d->lcyl;
    unsigned head = d->select & 0x0F;
    if (d->sector == 0 || d->sector > IDE_SPT || head >= IDE_HEADS) {
        return false;
    }
    d->chs = true;
    *lba = ((uint64_t)cyl * IDE_HEADS + head) * IDE_SPT + d->sector - 1;
    return true;
}

/* Puts an address into the task file, in the form the command used. */
static void ide_set_lba_regs(IDEDrive *d, uint64_t lba)
{
    if (d->chs) {
        uint64_t cyl = lba / (IDE_HEADS * IDE_SPT);
        d->hcyl = cyl >> 8;
        d->lcyl = cyl;
        d->select = (d->select & 0xF0) | (lba / IDE_SPT) % IDE_HEADS;
        d->sector = lba % IDE_SPT + 1;
        return;
    }
    d->sector = lba;
    d->lcyl = lba >> 8;
    d->hcyl = lba >> 16;
    if (d->lba48) {
        d->hob_sector = lba >> 24;
        d->hob_lcyl = lba >> 32;
        d->hob_hcyl = lba >> 40;
    } else {
        d->select = (d->select & 0xF0) | ((lba >> 24) & 0x0F);
    }
}

/* ---- PIO helpers ---- */

/* Presents io_buf[0, total) to the host in DRQ blocks of block bytes. */
void ide_pio_in_start(IDEDrive *d, IDEOp op, uint32_t total, uint32_t block)
{
    g_assert(total <= IDE_IO_BUF_SIZE);
    d->op = op;
    d->xfer = IDE_XFER_PIO_IN;
    d->io_pos = 0;
    d->io_total = total;
    d->io_end = MIN(block, total);
    d->status = ide_ready_status(d) | IDE_ST_DRQ;
    ide_set_irq(d);
}

/* Asks the host for bytes through the data port (no interrupt: the
 * first DRQ block of a data-out command comes without one). */
static void ide_pio_out_start(IDEDrive *d, IDEOp op, uint32_t bytes)
{
    g_assert(bytes <= IDE_IO_BUF_SIZE);
    d->op = op;
    d->xfer = IDE_XFER_PIO_OUT;
    d->io_pos = 0;
    d->io_end = d->io_total = bytes;
    d->status = ide_ready_status(d) | IDE_ST_DRQ;
}

/* ---- IDENTIFY ---- */

void ide_ata_string(uint16_t *words, int first, int nwords, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    for (int i = 0; i < nwords * 2; i++) {
        uint8_t ch = (size_t)i < len ? (uint8_t)s[i] : ' ';
        if (ch < 0x20 || ch > 0x7E) {
            ch = ' ';
        }
        /* ATA strings: the first character sits in the high byte. */
        words[first + i / 2] |= i % 2 ? ch : ch << 8;
    }
}

/* Word 255: signature A5h and the checksum making all 512 bytes sum to 0;
 * then the words go to io_buf little-endian. */
void ide_identify_finish(uint16_t *w)
{
    uint8_t sum = 0xA5;
    w[255] = 0xA5;
    for (int i = 0; i < 255; i++) {
        sum += (w[i] & 0xFF) + (w[i] >> 8);
    }
    w[255] |= (uint16_t)(uint8_t)-sum << 8;
}

static void ide_put_words(IDEDrive *d, const uint16_t *w)
{
    for (int i = 0; i < 256; i++) {
        d->io_buf[2 * i] = w[i];
        d->io_buf[2 * i + 1] = w[i] >> 8;
    }
}

static uint16_t ide_security_word(IDEDrive *d)
{
    const IDESecurity *s = &d->sec;
    return 0x0001 | 0x0020 |                /* supported, enhanced erase */
           (s->enabled ? 0x0002 : 0) | (s->locked ? 0x0004 : 0) |
           (s->frozen ? 0x0008 : 0) | (s->count_expired ? 0x0010 : 0) |
           (s->maximum ? 0x0100 : 0);
}

/* Estimated ERASE UNIT time in 2-minute units (words 89 and 90). */
static uint16_t ide_erase_time(int64_t sectors)
{
    int64_t secs = sectors * IDE_SECTOR_SIZE /
                   (1000000000 / IDE_LATENCY_NS_PER_BYTE);
    return MIN(secs / 120 + 1, 254);
}

static void ide_dma_mode_words(IDEDrive *d, uint16_t *w)
{
    w[63] = 0x0007;
    if (d->mwdma_mode >= 0) {
        w[63] |= 0x0100 << d->mwdma_mode;
    }
    w[88] = 0x003F;
    if (d->udma_mode >= 0) {
        w[88] |= 0x0100 << d->udma_mode;
    }
}

static void ide_identify(IDEDrive *d)
{
    uint16_t w[256] = { 0 };
    int64_t nb = ide_nb_sectors(d);
    uint64_t cyl = MIN(nb / (IDE_HEADS * IDE_SPT), 16383);
    uint64_t lba28 = MIN(nb, 0x0FFFFFFF);

    w[0] = 0x0040;                              /* fixed ATA device */
    w[1] = cyl;
    w[3] = IDE_HEADS;
    w[6] = IDE_SPT;
    ide_ata_string(w, 10, 10, d->serial);
    ide_ata_string(w, 23, 4, d->firmware);
    ide_ata_string(w, 27, 20, d->model);
    w[47] = 0x8000 | IDE_MAX_MULT;
    w[49] = 0x0B00;                             /* LBA, DMA, IORDY */
    w[50] = 0x4000;
    w[53] = 0x0007;                             /* 54-58, 64-70, 88 */
    w[54] = cyl;
    w[55] = IDE_HEADS;
    w[56] = IDE_SPT;
    w[57] = (cyl * IDE_HEADS * IDE_SPT) & 0xFFFF;
    w[58] = (cyl * IDE_HEADS * IDE_SPT) >> 16;
    w[59] = 0x0100 | d->mult;                   /* valid; 0 = disabled */
    w[60] = lba28 & 0xFFFF;
    w[61] = lba28 >> 16;
    w[64] = 0x0003;                             /* PIO 3, 4 */
    w[65] = w[66] = w[67] = w[68] = 120;
    w[80] = 0x00F0;                             /* ATA-4 .. ATA/ATAPI-7 */
    w[82] = 0x0002 | 0x0008 | 0x0020;           /* security, PM, cache */
    w[83] = 0x4000 | 0x2000 | 0x1000 | 0x0400;  /* flush ext, flush, 48 */
    w[84] = 0x4000;
    w[85] = (d->sec.enabled ? 0x0002 : 0) | 0x0008 |
            (d->write_cache ? 0x0020 : 0);
    w[86] = 0x2000 | 0x1000 | 0x0400;
    w[87] = 0x4000;
    ide_dma_mode_words(d, w);
    w[89] = w[90] = ide_erase_time(nb);
    w[92] = d->sec.master_rev;
    w[93] = 0x6000 | (d->unit ? 0x0B00 : 0x000B);
    w[100] = nb;
    w[101] = nb >> 16;
    w[102] = nb >> 32;
    w[103] = nb >> 48;
    w[128] = ide_security_word(d);
    ide_identify_finish(w);
    ide_put_words(d, w);
    ide_pio_in_start(d, IDE_OP_IDENTIFY, 512, 512);
}

/* Used by atapi.c for IDENTIFY PACKET DEVICE's mode words. */
void atapi_identify_modes(IDEDrive *d, uint16_t *w)
{
    ide_dma_mode_words(d, w);
}

/* ---- reads ---- */

static void ide_read_done(IDEDrive *d, IDERequest *r, int ret);

static void ide_read_next(IDEDrive *d)
{
    uint32_t n = MIN(d->block, d->left);
    d->xfer = IDE_XFER_NONE;
    d->status = IDE_ST_BSY | IDE_ST_DRDY;
    IDERequest *r = ide_request_new(d, DEVIO_READ, d->lba * IDE_SECTOR_SIZE,
                                    n * IDE_SECTOR_SIZE, ide_read_done);
    r->arg = n;
    ide_request_submit(d, r);
}

static void ide_read_done(IDEDrive *d, IDERequest *r, int ret)
{
    uint32_t n = r->arg;
    if (ret < 0) {
        ide_set_lba_regs(d, d->lba);
        ide_error(d, IDE_ER_UNC);
        return;
    }
    memcpy(d->io_buf, r->io.buf, n * IDE_SECTOR_SIZE);
    d->lba += n;
    d->left -= n;
    ide_pio_in_start(d, IDE_OP_READ, n * IDE_SECTOR_SIZE,
                     n * IDE_SECTOR_SIZE);
}

/* The host has taken a whole DRQ block of a read. */
static void ide_read_block_done(IDEDrive *d)
{
    if (d->left) {
        ide_read_next(d);
        return;
    }
    /* The last block: done, without a further interrupt. */
    ide_set_lba_regs(d, d->lba - 1);
    ide_cmd_end(d);
    d->status = ide_ready_status(d);
}

/* ---- writes ---- */

static void ide_flush_done(IDEDrive *d, IDERequest *r, int ret)
{
    if (ret < 0) {
        ide_abort(d);
        return;
    }
    ide_ok(d);
}

static void ide_submit_flush(IDEDrive *d)
{
    d->status = IDE_ST_BSY | IDE_ST_DRDY;
    ide_request_submit(d, ide_request_new(d, DEVIO_FLUSH, 0, 0,
                                          ide_flush_done));
}

/* All data of a write command is written: write-through makes it durable
 * before the command completes. */
static void ide_write_cmd_done(IDEDrive *d)
{
    if (!d->write_cache) {
        ide_submit_flush(d);
        return;
    }
    ide_ok(d);
}

static void ide_write_done(IDEDrive *d, IDERequest *r, int ret);

static void ide_write_ask_block(IDEDrive *d)
{
    ide_pio_out_start(d, IDE_OP_WRITE,
                      MIN(d->block, d->left) * IDE_SECTOR_SIZE);
}

/* The host has filled a DRQ block of a write. */
static void ide_write_block_full(IDEDrive *d)
{
    uint32_t n = d->io_total / IDE_SECTOR_SIZE;
    d->xfer = IDE_XFER_NONE;
    d->status = IDE_ST_BSY | IDE_ST_DRDY;
    IDERequest *r = ide_request_new(d, DEVIO_WRITE, d->lba * IDE_SECTOR_SIZE,
                                    n * IDE_SECTOR_SIZE, ide_write_done);
    memcpy(r->io.buf, d->io_buf, n * IDE_SECTOR_SIZE);
    r->arg = n;
    ide_request_submit(d, r);
}

static void ide_write_done(IDEDrive *d, IDERequest *r, int ret)
{
    uint32_t n = r->arg;
    if (ret < 0) {
        ide_set_lba_regs(d, d->lba);
        ide_abort(d);
        return;
    }
    d->lba += n;
    d->left -= n;
    if (d->left) {
        ide_write_ask_block(d);
        ide_set_irq(d);
        return;
    }
    ide_set_lba_regs(d, d->lba - 1);
    ide_write_cmd_done(d);
}

/* ---- READ VERIFY ---- */

static void ide_verify_done(IDEDrive *d, IDERequest *r, int ret);

static void ide_verify_next(IDEDrive *d)
{
    uint32_t n = MIN(d->left, IDE_VERIFY_CHUNK / IDE_SECTOR_SIZE);
    d->status = IDE_ST_BSY | IDE_ST_DRDY;
    IDERequest *r = ide_request_new(d, DEVIO_READ, d->lba * IDE_SECTOR_SIZE,
                                    n * IDE_SECTOR_SIZE, ide_verify_done);
    r->arg = n;
    ide_request_submit(d, r);
}

static void ide_verify_done(IDEDrive *d, IDERequest *r, int ret)
{
    if (ret < 0) {
        ide_set_lba_regs(d, d->lba);
        ide_error(d, IDE_ER_UNC);
        return;
    }
    d->lba += r->arg;
    d->left -= r->arg;
    if (d->left) {
        ide_verify_next(d);
        return;
    }
    ide_set_lba_regs(d, d->lba - 1);
    ide_ok(d);
}

/* ---- DMA ---- */

/* The command wants the bus master; it starts when both the command and
 * the engine's Start bit are there, in either order. */
void ide_dma_request(IDEDrive *d)
{
    IDEChannel *ch = ide_drive_channel(d);
    if (ch->dma_unit >= 0 && ch->dma_unit != d->unit) {
        /* The other device owns the engine: refuse rather than mix. */
        if (d->kind == IDE_DRIVE_CD) {
            atapi_dma_abort(d);
        } else {
            ide_abort(d);
        }
        return;
    }
    ch->dma_unit = d->unit;
    d->xfer = IDE_XFER_DMA;
    d->dma_waiting = true;
    d->status = ide_ready_status(d) | IDE_ST_DRQ;
    if (ch->bm.cmd & BM_CMD_START) {
        ide_dma_kick(ch);
    }
}

/* The last byte has moved: the engine is released, so that clearing Start
 * from now on (say, during a write-through flush) aborts nothing. */
void ide_dma_done(IDEDrive *d)
{
    IDEChannel *ch = ide_drive_channel(d);
    ide_bmdma_end(ch, true);
    d->xfer = IDE_XFER_NONE;
    if (ch->dma_unit == d->unit) {
        ch->dma_unit = -1;
    }
}

/* A PRD or RAM problem: the bus master has set Error (ide_bmdma_*); the
 * device ends the command so the guest is never left waiting. */
void ide_dma_error(IDEDrive *d)
{
    ide_bmdma_end(ide_drive_channel(d), false);
    if (d->kind == IDE_DRIVE_CD) {
        atapi_dma_abort(d);
    } else {
        ide_abort(d);
    }
}

static void ide_dma_read_done(IDEDrive *d, IDERequest *r, int ret);
static void ide_dma_write_done(IDEDrive *d, IDERequest *r, int ret);

static void ide_dma_read_next(IDEDrive *d)
{
    uint32_t n = MIN(d->left, IDE_DMA_CHUNK / IDE_SECTOR_SIZE);
    IDERequest *r = ide_request_new(d, DEVIO_READ, d->lba * IDE_SECTOR_SIZE,
                                    n * IDE_SECTOR_SIZE, ide_dma_read_done);
    r->arg = n;
    ide_request_submit(d, r);
}

static void ide_dma_read_done(IDEDrive *d, IDERequest *r, int ret)
{
    IDEChannel *ch = ide_drive_channel(d);
    uint32_t n = r->arg;
    if (ret < 0) {
        ide_set_lba_regs(d, d->lba);
        ide_error(d, IDE_ER_UNC);
        return;
    }
    if (!ide_bmdma_to_ram(d->ctrl, ch, r->io.buf, n * IDE_SECTOR_SIZE)) {
        ide_dma_error(d);
        return;
    }
    d->lba += n;
    d->left -= n;
    if (d->left) {
        ide_dma_read_next(d);
        return;
    }
    ide_dma_done(d);
    ide_set_lba_regs(d, d->lba - 1);
    ide_ok(d);
}

/* Guest RAM is copied into the bounce buffer when the request starts. */
static void ide_dma_write_next(IDEDrive *d)
{
    IDEChannel *ch = ide_drive_channel(d);
    uint32_t n = MIN(d->left, IDE_DMA_CHUNK / IDE_SECTOR_SIZE);
    IDERequest *r = ide_request_new(d, DEVIO_WRITE, d->lba * IDE_SECTOR_SIZE,
                                    n * IDE_SECTOR_SIZE, ide_dma_write_done);
    r->arg = n;
    if (!ide_bmdma_from_ram(d->ctrl, ch, r->io.buf, n * IDE_SECTOR_SIZE)) {
        ide_request_free(r);
        ide_dma_error(d);
        return;
    }
    ide_request_submit(d, r);
}

static void ide_dma_write_done(IDEDrive *d, IDERequest *r, int ret)
{
    if (ret < 0) {
        ide_set_lba_regs(d, d->lba);
        ide_abort(d);
        return;
    }
    d->lba += r->arg;
    d->left -= r->arg;
    if (d->left) {
        ide_dma_write_next(d);
        return;
    }
    ide_dma_done(d);
    ide_set_lba_regs(d, d->lba - 1);
    ide_write_cmd_done(d);
}

void ide_dma_kick(IDEChannel *ch)
{
    if (ch->dma_unit < 0) {
        return;
    }
    IDEDrive *d = &ch->drive[ch->dma_unit];
    if (!d->dma_waiting) {
        return;
    }
    d->dma_waiting = false;
    d->status = IDE_ST_BSY | ide_ready_status(d);
    if (d->kind == IDE_DRIVE_CD) {
        atapi_dma_start(d);
        return;
    }
    bool to_ram = d->op == IDE_OP_READ;
    if (!ide_bmdma_begin(d->ctrl, ch, (uint64_t)d->left * IDE_SECTOR_SIZE,
                         to_ram)) {
        ide_dma_error(d);
        return;
    }
    if (to_ram) {
        ide_dma_read_next(d);
    } else {
        ide_dma_write_next(d);
    }
}

/* The guest cleared Start while a transfer was running: the command is
 * aborted (its data may be partly moved), as SFF-8038i allows. */
void ide_dma_stopped(IDEChannel *ch)
{
    if (ch->dma_unit < 0) {
        return;
    }
    IDEDrive *d = &ch->drive[ch->dma_unit];
    if (d->xfer != IDE_XFER_DMA || d->dma_waiting) {
        return;
    }
    ide_cancel(d);
    if (d->kind == IDE_DRIVE_CD) {
        atapi_dma_abort(d);
    } else {
        ide_abort(d);
    }
}

/* ---- read / write commands ---- */

typedef enum { RW_PIO, RW_MULT, RW_DMA, RW_VERIFY } IDERWMode;

typedef struct IDERWCmd {
    uint8_t cmd;
    bool ext, write;
    IDERWMode mode;
} IDERWCmd;

static const IDERWCmd ide_rw_cmds[] = {
    { ATA_READ_SECTORS, false, false, RW_PIO },
    { ATA_READ_SECTORS_NR, false, false, RW_PIO },
    { ATA_READ_SECTORS_EXT, true, false, RW_PIO },
    { ATA_WRITE_SECTORS, false, true, RW_PIO },
    { ATA_WRITE_SECTORS_NR, false, true, RW_PIO },
    { ATA_WRITE_SECTORS_EXT, true, true, RW_PIO },
    { ATA_READ_MULTIPLE, false, false, RW_MULT },
    { ATA_READ_MULTIPLE_EXT, true, false, RW_MULT },
    { ATA_WRITE_MULTIPLE, false, true, RW_MULT },
    { ATA_WRITE_MULTIPLE_EXT, true, true, RW_MULT },
    { ATA_READ_DMA, false, false, RW_DMA },
    { ATA_READ_DMA_NR, false, false, RW_DMA },
    { ATA_READ_DMA_EXT, true, false, RW_DMA },
    { ATA_WRITE_DMA, false, true, RW_DMA },
    { ATA_WRITE_DMA_NR, false, true, RW_DMA },
    { ATA_WRITE_DMA_EXT, true, true, RW_DMA },
    { ATA_READ_VERIFY, false, false, RW_VERIFY },
    { ATA_READ_VERIFY_NR, false, false, RW_VERIFY },
    { ATA_READ_VERIFY_EXT, true, false, RW_VERIFY },
};

static const IDERWCmd *ide_rw_lookup(uint8_t cmd)
{
    for (size_t i = 0; i < G_N_ELEMENTS(ide_rw_cmds); i++) {
        if (ide_rw_cmds[i].cmd == cmd) {
            return &ide_rw_cmds[i];
        }
    }
    return NULL;
}

static void ide_cmd_rw(IDEDrive *d, const IDERWCmd *rw)
{
    uint64_t lba;
    uint32_t count;
    if (d->sec.locked || (rw->mode == RW_MULT && !d->mult)) {
        ide_abort(d);
        return;
    }
    d->lba48 = rw->ext;
    if (!ide_decode_lba(d, rw->ext, &lba)) {
        ide_error(d, IDE_ER_IDNF);
        return;
    }
    if (rw->ext) {
        count = (d->hob_nsector << 8 | d->nsector) ?: 65536;
    } else {
        count = d->nsector ?: 256;
    }
    if (lba + count > (uint64_t)ide_nb_sectors(d)) {
        ide_error(d, IDE_ER_IDNF);
        return;
    }
    d->power = IDE_POWER_ACTIVE;
    d->lba = lba;
    d->left = count;
    d->block = rw->mode == RW_MULT ? d->mult : 1;
    d->op = rw->write ? IDE_OP_WRITE :
            rw->mode == RW_VERIFY ? IDE_OP_VERIFY : IDE_OP_READ;
    switch (rw->mode) {
    case RW_DMA:
        ide_dma_request(d);
        break;
    case RW_VERIFY:
        ide_verify_next(d);
        break;
    default:
        if (rw->write) {
            ide_write_ask_block(d);
        } else {
            ide_read_next(d);
        }
    }
}

static void ide_cmd_flush(IDEDrive *d)
{
    if (d->sec.locked) {
        ide_abort(d);
        return;
    }
    d->op = IDE_OP_FLUSH;
    ide_submit_flush(d);
}

/* ---- SET FEATURES, SET MULTIPLE, power ---- */

/* SET FEATURES 03h: the transfer mode in the sector count. */
uint8_t ide_xfer_mode_setting(IDEDrive *d, uint8_t count, bool *ok)
{
    uint8_t mode = count & 0x07;
    *ok = true;
    switch (count >> 3) {
    case 0:                 /* PIO default (with or without IORDY) */
        *ok = mode <= 1;
        break;
    case 1:                 /* PIO flow control mode */
        *ok = mode <= 4;
        if (*ok) {
            d->pio_mode = mode;
        }
        break;
    case 4:                 /* multiword DMA */
        *ok = mode <= 2;
        if (*ok) {
            d->mwdma_mode = mode;
            d->udma_mode = -1;
        }
        break;
    case 8:                 /* Ultra DMA */
        *ok = mode <= 5;
        if (*ok) {
            d->udma_mode = mode;
            d->mwdma_mode = -1;
        }
        break;
    default:
        *ok = false;
    }
    return mode;
}

static void ide_cmd_set_features(IDEDrive *d)
{
    bool ok = true;
    bool cd = d->kind == IDE_DRIVE_CD;
    switch (d->feature) {
    case 0x02:
        if (cd) {
            ok = false;
        } else {
            d->write_cache = true;
        }
        break;
    case 0x82:
        if (cd) {
            ok = false;
            break;
        }
        if (d->write_cache) {
            /* What the cache holds reaches the medium first. */
            d->write_cache = false;
            d->op = IDE_OP_FLUSH;
            ide_submit_flush(d);
            return;
        }
        break;
    case 0x03:
        ide_xfer_mode_setting(d, d->nsector, &ok);
        break;
    case 0x66:              /* keep settings over SRST: always so */
    case 0xCC:
        break;
    default:
        ok = false;
    }
    if (ok) {
        ide_ok(d);
    } else {
        ide_abort(d);
    }
}

static void ide_cmd_set_multiple(IDEDrive *d)
{
    unsigned n = d->nsector;
    if (n > IDE_MAX_MULT || (n & (n - 1))) {
        ide_abort(d);
        return;
    }
    d->mult = n;
    ide_ok(d);
}

/* Power commands, common to both kinds of drive. */
static bool ide_cmd_power(IDEDrive *d, uint8_t cmd)
{
    switch (cmd) {
    case ATA_STANDBY_IMMEDIATE:
    case ATA_STANDBY:
        d->power = IDE_POWER_STANDBY;
        break;
    case ATA_IDLE_IMMEDIATE:
    case ATA_IDLE:
        d->power = IDE_POWER_IDLE;
        break;
    case ATA_CHECK_POWER_MODE:
        d->nsector = d->power == IDE_POWER_STANDBY ? 0x00 :
                     d->power == IDE_POWER_IDLE ? 0x80 : 0xFF;
        break;
    case ATA_SLEEP:
        ide_ok(d);
        d->power = IDE_POWER_SLEEP;   /* from now on only a reset wakes */
        return true;
    default:
        return false;
    }
    ide_ok(d);
    return true;
}

/* ---- SECURITY ---- */

static bool ide_password_ok(IDEDrive *d, bool master, bool master_any_level,
                            const uint8_t *pw)
{
    if (master) {
        return (master_any_level || !d->sec.maximum) &&
               memcmp(pw, d->sec.master_pw, IDE_PASSWORD_LEN) == 0;
    }
    return d->sec.enabled &&
           memcmp(pw, d->sec.user_pw, IDE_PASSWORD_LEN) == 0;
}

static void ide_security_disable(IDEDrive *d)
{
    d->sec.enabled = false;
    d->sec.locked = false;
    d->sec.maximum = false;
    memset(d->sec.user_pw, 0, IDE_PASSWORD_LEN);
}

/* May the command start (before its data) in the current state? */
static bool ide_security_allowed(IDEDrive *d, uint8_t cmd, bool prepared)
{
    const IDESecurity *s = &d->sec;
    switch (cmd) {
    case ATA_SEC_SET_PASSWORD:
    case ATA_SEC_DISABLE_PASSWORD:
        return !s->locked && !s->frozen;
    case ATA_SEC_UNLOCK:
        return !s->frozen && !s->count_expired;
    case ATA_SEC_ERASE_PREPARE:
        return !s->frozen;
    case ATA_SEC_ERASE_UNIT:
        return !s->frozen && !s->count_expired && prepared;
    case ATA_SEC_FREEZE_LOCK:
        return !s->locked;
    }
    return false;
}

static void ide_erase_done(IDEDrive *d, IDERequest *r, int ret);

static void ide_erase_next(IDEDrive *d)
{
    int64_t len = xblk_disk_length(d->disk, NULL);
    if (d->erase_pos >= len) {
        ide_security_disable(d);
        ide_write_cmd_done(d);
        return;
    }
    size_t n = MIN(IDE_ERASE_CHUNK, len - d->erase_pos);
    d->status = IDE_ST_BSY | IDE_ST_DRDY;
    IDERequest *r = ide_request_new(d, DEVIO_WRITE, d->erase_pos, n,
                                    ide_erase_done);
    r->arg = n;
    ide_request_submit(d, r);
}

static void ide_erase_done(IDEDrive *d, IDERequest *r, int ret)
{
    if (ret < 0) {
        ide_abort(d);
        return;
    }
    d->erase_pos += r->arg;
    ide_erase_next(d);
}

static void ide_unlock_failed(IDEDrive *d)
{
    /* The counter only runs down on a locked drive (ATA-7 4.7). */
    if (d->sec.locked && d->sec.attempts > 0 && --d->sec.attempts == 0) {
        d->sec.count_expired = true;
    }
    ide_abort(d);
}

/* The 512 bytes of a SECURITY command have arrived. */
static void ide_security_data(IDEDrive *d)
{
    const uint8_t *b = d->io_buf;
    uint16_t ctl = b[0] | b[1] << 8;
    bool master = ctl & 1;
    const uint8_t *pw = b + 2;
    d->xfer = IDE_XFER_NONE;

    switch (d->cmd) {
    case ATA_SEC_SET_PASSWORD:
        if (master) {
            uint16_t rev = b[34] | b[35] << 8;
            memcpy(d->sec.master_pw, pw, IDE_PASSWORD_LEN);
            if (rev != 0xFFFF) {
                d->sec.master_rev = rev;
            }
        } else {
            memcpy(d->sec.user_pw, pw, IDE_PASSWORD_LEN);
            d->sec.enabled = true;
            d->sec.maximum = ctl & 0x0100;
        }
        ide_ok(d);
        break;
    case ATA_SEC_UNLOCK:
        if (!ide_password_ok(d, master, false, pw)) {
            ide_unlock_failed(d);
            break;
        }
        d->sec.locked = false;
        ide_ok(d);
        break;
    case ATA_SEC_DISABLE_PASSWORD:
        if (!ide_password_ok(d, master, false, pw)) {
            ide_abort(d);
            break;
        }
        ide_security_disable(d);
        ide_ok(d);
        break;
    case ATA_SEC_ERASE_UNIT:
        if (!ide_password_ok(d, master, true, pw)) {
            ide_abort(d);
            break;
        }
        d->op = IDE_OP_ERASE;
        d->erase_pos = 0;
        ide_erase_next(d);
        break;
    default:
        g_assert_not_reached();
    }
}

static void ide_cmd_security(IDEDrive *d, uint8_t cmd, bool prepared)
{
    if (!ide_security_allowed(d, cmd, prepared)) {
        ide_abort(d);
        return;
    }
    switch (cmd) {
    case ATA_SEC_ERASE_PREPARE:
        ide_ok(d);
        d->sec.erase_prepared = true;
        break;
    case ATA_SEC_FREEZE_LOCK:
        d->sec.frozen = true;
        ide_ok(d);
        break;
    default:
        ide_pio_out_start(d, IDE_OP_SECURITY, IDE_SECTOR_SIZE);
    }
}

/* ---- command dispatch ---- */

static void ide_exec_hd(IDEDrive *d, uint8_t cmd, bool prepared)
{
    const IDERWCmd *rw = ide_rw_lookup(cmd);
    if (rw) {
        ide_cmd_rw(d, rw);
        return;
    }
    if (ide_cmd_power(d, cmd)) {
        return;
    }
    switch (cmd) {
    case ATA_IDENTIFY:
        ide_identify(d);
        break;
    case ATA_FLUSH_CACHE:
    case ATA_FLUSH_CACHE_EXT:
        ide_cmd_flush(d);
        break;
    case ATA_SET_FEATURES:
        ide_cmd_set_features(d);
        break;
    case ATA_SET_MULTIPLE:
        ide_cmd_set_multiple(d);
        break;
    case ATA_SEC_SET_PASSWORD:
    case ATA_SEC_UNLOCK:
    case ATA_SEC_ERASE_PREPARE:
    case ATA_SEC_ERASE_UNIT:
    case ATA_SEC_FREEZE_LOCK:
    case ATA_SEC_DISABLE_PASSWORD:
        ide_cmd_security(d, cmd, prepared);
        break;
    default:
        ide_abort(d);
    }
}

static void ide_exec_cd(IDEDrive *d, uint8_t cmd)
{
    if (ide_cmd_power(d, cmd)) {
        return;
    }
    switch (cmd) {
    case ATA_PACKET:
        atapi_packet_cmd(d);
        break;
    case ATA_IDENTIFY_PACKET:
        atapi_identify(d);
        break;
    case ATA_IDENTIFY:
        /* A packet device aborts it and shows its signature. */
        ide_set_signature(d);
        ide_abort(d);
        break;
    case ATA_SET_FEATURES:
        ide_cmd_set_features(d);
        break;
    default:
        ide_abort(d);
    }
}

/* DEVICE RESET: a packet device resets even while BSY, no interrupt. */
static void ide_device_reset(IDEDrive *d)
{
    ide_cancel(d);
    ide_reset_done(d);
    d->select = d->unit ? IDE_DEV_DEV : 0;
    atapi_reset(d, false);
    ide_update_irq(ide_drive_channel(d));
}

/* EXECUTE DEVICE DIAGNOSTIC: both devices reset and show signatures;
 * device 0 reports (01h: both passed) and interrupts. */
static void ide_exec_diagnostic(IDEChannel *ch)
{
    for (int u = 0; u < 2; u++) {
        IDEDrive *d = &ch->drive[u];
        if (ide_present(d)) {
            ide_cancel(d);
            ide_reset_done(d);
            if (d->kind == IDE_DRIVE_CD) {
                atapi_reset(d, false);
            }
        }
    }
    ch->unit = 0;
    ide_set_irq(ide_present(&ch->drive[0]) ? &ch->drive[0] : &ch->drive[1]);
}

static void ide_exec_cmd(IDEChannel *ch, uint8_t cmd)
{
    IDEDrive *d = &ch->drive[ch->unit];
    if (ch->devctl & IDE_CTL_SRST) {
        return;
    }
    if (cmd == ATA_EXEC_DIAGNOSTIC &&
        (ide_present(&ch->drive[0]) || ide_present(&ch->drive[1])) &&
        !(ide_present(d) && (d->status & IDE_ST_BSY))) {
        ide_exec_diagnostic(ch);
        return;
    }
    if (!ide_present(d)) {
        return;
    }
    if (d->kind == IDE_DRIVE_CD && cmd == ATA_DEVICE_RESET) {
        ide_device_reset(d);
        return;
    }
    if ((d->status & IDE_ST_BSY) || d->power == IDE_POWER_SLEEP) {
        return;
    }
    if (d->op != IDE_OP_NONE || d->xfer != IDE_XFER_NONE) {
        ide_cancel(d);      /* written during DRQ: drop that transfer */
    }
    ide_clear_irq(d);
    bool prepared = d->sec.erase_prepared;
    d->sec.erase_prepared = false;
    d->cmd = cmd;
    d->error = 0;
    if (d->kind == IDE_DRIVE_CD) {
        ide_exec_cd(d, cmd);
    } else {
        ide_exec_hd(d, cmd, prepared);
    }
}

/* ---- data port ---- */

static void ide_pio_block_done(IDEDrive *d)
{
    switch (d->op) {
    case IDE_OP_READ:
        ide_read_block_done(d);
        break;
    case IDE_OP_WRITE:
        ide_write_block_full(d);
        break;
    case IDE_OP_IDENTIFY:
        ide_cmd_end(d);
        d->status = ide_ready_status(d);
        break;
    case IDE_OP_SECURITY:
        ide_security_data(d);
        break;
    case IDE_OP_PACKET:
        atapi_cdb_received(d);
        break;
    case IDE_OP_ATAPI_DATA:
    case IDE_OP_ATAPI_READ:
        atapi_pio_block_done(d);
        break;
    default:
        g_assert_not_reached();
    }
}

static uint32_t ide_data_read(IDEChannel *ch, unsigned size)
{
    IDEDrive *d = &ch->drive[ch->unit];
    uint32_t v = 0;
    if (!ide_present(d) || d->xfer != IDE_XFER_PIO_IN ||
        !(d->status & IDE_ST_DRQ)) {
        return size == 4 ? 0xFFFFFFFF : 0xFFFF;
    }
    g_assert(d->io_end <= d->io_total && d->io_total <= IDE_IO_BUF_SIZE);
    for (unsigned i = 0; i < size && d->io_pos < d->io_end; i++) {
        v |= (uint32_t)d->io_buf[d->io_pos++] << (8 * i);
    }
    if (d->io_pos >= d->io_end) {
        ide_pio_block_done(d);
    }
    return v;
}

static void ide_data_write(IDEChannel *ch, uint32_t val, unsigned size)
{
    IDEDrive *d = &ch->drive[ch->unit];
    if (!ide_present(d) || d->xfer != IDE_XFER_PIO_OUT ||
        !(d->status & IDE_ST_DRQ)) {
        return;
    }
    g_assert(d->io_end <= d->io_total && d->io_total <= IDE_IO_BUF_SIZE);
    for (unsigned i = 0; i < size && d->io_pos < d->io_end; i++) {
        d->io_buf[d->io_pos++] = val >> (8 * i);
    }
    if (d->io_pos >= d->io_end) {
        ide_pio_block_done(d);
    }
}

/* ---- task file and device control ---- */

static bool ide_channel_empty(const IDEChannel *ch)
{
    return !ide_present(&ch->drive[0]) && !ide_present(&ch->drive[1]);
}

static uint8_t ide_status_read(IDEChannel *ch, bool clear_irq)
{
    IDEDrive *d = &ch->drive[ch->unit];
    if (ide_channel_empty(ch)) {
        return 0xFF;
    }
    if (!ide_present(d)) {
        return 0x00;
    }
    if (clear_irq) {
        ide_clear_irq(d);
    }
    return d->status;
}

static uint8_t ide_tf_read(IDEChannel *ch, unsigned reg)
{
    IDEDrive *d = &ch->drive[ch->unit];
    bool hob = ch->devctl & IDE_CTL_HOB;
    if (ide_channel_empty(ch)) {
        return 0xFF;
    }
    switch (reg) {
    case 1:
        return d->error;
    case 2:
        return hob ? d->hob_nsector : d->nsector;
    case 3:
        return hob ? d->hob_sector : d->sector;
    case 4:
        return hob ? d->hob_lcyl : d->lcyl;
    case 5:
        return hob ? d->hob_hcyl : d->hcyl;
    case 6:
        return d->select;
    default:
        return ide_status_read(ch, true);
    }
}

/* Command block writes reach both devices; the 48-bit registers keep the
 * previous value for HOB reads. */
static void ide_tf_write(IDEChannel *ch, unsigned reg, uint8_t val)
{
    if (reg == 7) {
        ide_exec_cmd(ch, val);
        return;
    }
    ch->devctl &= ~IDE_CTL_HOB;
    for (int u = 0; u < 2; u++) {
        IDEDrive *d = &ch->drive[u];
        switch (reg) {
        case 1:
            d->hob_feature = d->feature;
            d->feature = val;
            break;
        case 2:
            d->hob_nsector = d->nsector;
            d->nsector = val;
            break;
        case 3:
            d->hob_sector = d->sector;
            d->sector = val;
            break;
        case 4:
            d->hob_lcyl = d->lcyl;
            d->lcyl = val;
            break;
        case 5:
            d->hob_hcyl = d->hcyl;
            d->hcyl = val;
            break;
        case 6:
            d->select = val;
            break;
        }
    }
    if (reg == 6) {
        ch->unit = (val & IDE_DEV_DEV) ? 1 : 0;
        ide_update_irq(ch);
    }
}

static void ide_devctl_write(IDEChannel *ch, uint8_t val)
{
    uint8_t old = ch->devctl;
    ch->devctl = val;
    for (int u = 0; u < 2; u++) {
        IDEDrive *d = &ch->drive[u];
        if (!ide_present(d)) {
            continue;
        }
        if (!(old & IDE_CTL_SRST) && (val & IDE_CTL_SRST)) {
            /* Reset asserted: abandon everything, stay busy. */
            ide_cancel(d);
            d->status = IDE_ST_BSY;
            d->irq = false;
        } else if ((old & IDE_CTL_SRST) && !(val & IDE_CTL_SRST)) {
            ide_reset_done(d);
            if (d->kind == IDE_DRIVE_CD) {
                atapi_reset(d, false);
            }
        }
    }
    if ((old & IDE_CTL_SRST) && !(val & IDE_CTL_SRST)) {
        ch->unit = 0;
    }
    ide_update_irq(ch);
}

/* ---- ports ---- */

/* Channel and register of a task-file port (8 = alt status / control). */
static int ide_port_decode(uint32_t port, unsigned *reg)
{
    if (port >= 0x1F0 && port <= 0x1F7) {
        *reg = port - 0x1F0;
        return 0;
    }
    if (port >= 0x170 && port <= 0x177) {
        *reg = port - 0x170;
        return 1;
    }
    if (port == 0x3F6 || port == 0x376) {
        *reg = 8;
        return port == 0x3F6 ? 0 : 1;
    }
    return -1;
}

static bool ide_bm_port(uint32_t port)
{
    return port >= 0xFF60 && port <= 0xFF6F;
}

bool ide_claims_port(uint32_t port)
{
    unsigned reg;
    return ide_port_decode(port, &reg) >= 0 || ide_bm_port(port);
}

static uint8_t ide_readb(IDEController *c, uint32_t port)
{
    unsigned reg;
    int chn = ide_port_decode(port, &reg);
    if (ide_bm_port(port)) {
        return ide_bmdma_readb(&c->ch[(port - 0xFF60) / 8], port & 7);
    }
    if (chn < 0 || reg == 0) {
        return 0xFF;        /* unclaimed, or a byte access to data */
    }
    if (reg == 8) {
        return ide_status_read(&c->ch[chn], false);
    }
    return ide_tf_read(&c->ch[chn], reg);
}

static void ide_writeb(IDEController *c, uint32_t port, uint8_t val)
{
    unsigned reg;
    int chn = ide_port_decode(port, &reg);
    if (ide_bm_port(port)) {
        ide_bmdma_writeb(c, &c->ch[(port - 0xFF60) / 8], port & 7, val);
        return;
    }
    if (chn < 0 || reg == 0) {
        return;
    }
    if (reg == 8) {
        ide_devctl_write(&c->ch[chn], val);
        return;
    }
    ide_tf_write(&c->ch[chn], reg, val);
}

static unsigned ide_clamp_size(unsigned size)
{
    return size == 0 ? 1 : MIN(size, 4);
}

uint32_t ide_ioport_read(IDEController *c, uint32_t port, unsigned size)
{
    unsigned reg;
    int chn = ide_port_decode(port, &reg);
    size = ide_clamp_size(size);
    if (chn >= 0 && reg == 0 && size >= 2) {
        return ide_data_read(&c->ch[chn], size == 4 ? 4 : 2);
    }
    uint32_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        v |= (uint32_t)ide_readb(c, port + i) << (8 * i);
    }
    return v;
}

void ide_ioport_write(IDEController *c, uint32_t port, uint32_t val,
                      unsigned size)
{
    unsigned reg;
    int chn = ide_port_decode(port, &reg);
    size = ide_clamp_size(size);
    if (chn >= 0 && reg == 0 && size >= 2) {
        ide_data_write(&c->ch[chn], val, size == 4 ? 4 : 2);
        return;
    }
    for (unsigned i = 0; i < size; i++) {
        ide_writeb(c, port + i, val >> (8 * i));
    }
}

/* ---- controller lifecycle ---- */

IDEController *ide_controller_new(DevHost *host)
{
    IDEController *c = g_new0(IDEController, 1);
    c->host = host;
    for (int i = 0; i < 2; i++) {
        IDEChannel *ch = &c->ch[i];
        ch->index = i;
        ch->dma_unit = -1;
        for (int u = 0; u < 2; u++) {
            ch->drive[u].ctrl = c;
            ch->drive[u].chan = i;
            ch->drive[u].unit = u;
        }
    }
    return c;
}

void ide_controller_free(IDEController *c)
{
    if (!c) {
        return;
    }
    /* Requests still in flight complete into nothing; held ones go. */
    for (GList *l = c->reqs; l; l = l->next) {
        IDERequest *r = l->data;
        r->ctrl = NULL;
        if (!r->submitted) {
            g_free(r->io.buf);
            g_free(r);
        }
    }
    g_list_free(c->reqs);
    for (int i = 0; i < 4; i++) {
        IDEDrive *d = &c->ch[i / 2].drive[i % 2];
        g_free(d->id);
        g_free(d->node_name);
    }
    g_free(c);
}

static void ide_copy_string(char *dst, size_t size, const char *src,
                            const char *dflt)
{
    g_strlcpy(dst, src ? src : dflt, size);
}

bool ide_attach(IDEController *c, int index, const IDEDriveConfig *cfg,
                GError **errp)
{
    if (index < 0 || index > 3) {
        hw_error_set(errp, "IDE index %d out of range (0-3)", index);
        return false;
    }
    IDEDrive *d = &c->ch[index / 2].drive[index % 2];
    if (ide_present(d)) {
        hw_error_set(errp, "IDE unit %d is already in use", index);
        return false;
    }
    if (cfg->kind != IDE_DRIVE_HD && cfg->kind != IDE_DRIVE_CD) {
        hw_error_set(errp, "IDE unit %d: no drive kind given", index);
        return false;
    }
    if (cfg->kind == IDE_DRIVE_HD &&
        (!cfg->disk || xblk_disk_length(cfg->disk, NULL) < 0)) {
        hw_error_set(errp, "IDE unit %d: a hard disk needs a medium", index);
        return false;
    }
    bool hd = cfg->kind == IDE_DRIVE_HD;
    g_autofree char *serial = g_strdup_printf("XBLK%04d", index);
    d->kind = cfg->kind;
    d->disk = cfg->disk;
    d->id = g_strdup(cfg->id ? cfg->id : "");
    d->node_name = g_strdup(cfg->node_name);
    ide_copy_string(d->model, sizeof(d->model), cfg->model,
                    hd ? "XBLK HARDDISK" : "XBLK DVD-ROM");
    ide_copy_string(d->serial, sizeof(d->serial), cfg->serial, serial);
    ide_copy_string(d->firmware, sizeof(d->firmware), cfg->firmware, "1.0");
    d->werror = cfg->werror;
    d->rerror = cfg->rerror;
    d->cfg_locked = hd && cfg->locked;
    memcpy(d->cfg_password, cfg->password, IDE_PASSWORD_LEN);
    memset(&d->sec, 0, sizeof(d->sec));
    memset(d->sec.master_pw, ' ', IDE_PASSWORD_LEN);
    d->sec.master_rev = 0xFFFE;
    if (d->cfg_locked) {
        d->sec.enabled = true;
        memcpy(d->sec.user_pw, cfg->password, IDE_PASSWORD_LEN);
    }
    if (!hd) {
        memset(&d->atapi, 0, sizeof(d->atapi));
    }
    ide_drive_power_on(d);
    ide_update_irq(&c->ch[index / 2]);
    return true;
}

void ide_reset(IDEController *c)
{
    for (int i = 0; i < 2; i++) {
        IDEChannel *ch = &c->ch[i];
        ch->devctl = 0;
        ch->unit = 0;
        ch->dma_unit = -1;
        ide_bmdma_reset(ch);
        for (int u = 0; u < 2; u++) {
            if (ide_present(&ch->drive[u])) {
                ide_drive_power_on(&ch->drive[u]);
            }
        }
        ide_update_irq(ch);
    }
}

bool ide_drive_info(IDEController *c, int index, IDEDriveInfo *out)
{
    if (index < 0 || index > 3) {
        return false;
    }
    IDEDrive *d = &c->ch[index / 2].drive[index % 2];
    if (!ide_present(d)) {
        return false;
    }
    *out = (IDEDriveInfo) {
        .kind = d->kind,
        .disk = d->disk,
        .tray_open = d->kind == IDE_DRIVE_CD && d->atapi.tray_open,
        .medium_locked = d->kind == IDE_DRIVE_CD && d->atapi.prevent,
        .security_locked = d->sec.locked,
        .write_cache = d->write_cache,
        .io_status_failed = d->io_failed,
    };
    return true;
}
