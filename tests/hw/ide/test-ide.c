/*
 * test-ide.c - the ATA hard disk of the IDE controller, driven through its
 * registers on a TestHost with real qcow2 images: IDENTIFY, PIO reads and
 * writes (single, multiple, EXT, CHS, 16/32-bit data port), READ VERIFY,
 * FLUSH CACHE, SET FEATURES (write cache, transfer mode), power commands,
 * EXECUTE DEVICE DIAGNOSTIC, unsupported commands, range errors, commands
 * while BSY, SRST mid-transfer, interrupts (nIEN, Status vs Alternate
 * Status, device selection), the rerror/werror policies through blkdebug
 * and the SECURITY feature set with its attempt counter.  Images are
 * checked afterwards with `qemu-img check` and compared with a model via
 * `qemu-img convert` / `qemu-io`.
 */
#include "ide-test.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define HD_SIZE (4 * MiB)
#define HD_SECTORS (HD_SIZE / 512)
#define SEED 77

typedef struct HD {
    IDETest *t;
    char *path;
    XblkDisk *disk;
    BlockDriverState *dbg;      /* blkdebug filter, or NULL */
    Model *m;
} HD;

typedef struct HDOpts {
    uint64_t size;
    bool blkdebug;
    IDEErrorAction werror, rerror;
    bool locked;
    const char *password;
    const char *model, *serial, *firmware;
} HDOpts;

static void pw_fill(uint8_t *dst, const char *pw)
{
    memset(dst, 0, 32);
    memcpy(dst, pw, MIN(strlen(pw), 32));
}

static HD *hd_open(const char *name, const HDOpts *o)
{
    HD *h = g_new0(HD, 1);
    uint64_t size = o && o->size ? o->size : HD_SIZE;
    h->path = test_path(name);
    h->m = model_new(MIN(size, 64 * MiB));
    bool dbg = o && o->blkdebug;
    h->disk = qcow2_image(h->path, "hd0", dbg ? "hd0-dbg" : NULL, size,
                          MIN(size, HD_SIZE), SEED, h->m);
    if (dbg) {
        h->dbg = blkdebug_node("hd0-dbg");
    }
    h->t = idet_new(1 * MiB);
    IDEDriveConfig c = idet_config(IDE_DRIVE_HD, h->disk, "ide0-hd0");
    if (o) {
        c.werror = o->werror;
        c.rerror = o->rerror;
        c.locked = o->locked;
        c.model = o->model;
        c.serial = o->serial;
        c.firmware = o->firmware;
        if (o->password) {
            pw_fill(c.password, o->password);
        }
    }
    idet_attach(h->t, 0, &c);
    return h;
}

/* Frees everything; checks the image and compares it with the model. */
static void hd_close(HD *h, bool compare)
{
    idet_free(h->t);
    xblk_disk_close(h->disk);
    qemu_check(h->path, false);
    if (compare) {
        qemu_compare(h->path, NULL, h->m);
    }
    g_unlink(h->path);
    g_free(h->path);
    model_free(h->m);
    g_free(h);
}

static unsigned irqs(IDETest *t)
{
    return t->th->irq_raised[IRQ_PRI];
}

static void read_sector_check(HD *h, uint64_t lba)
{
    uint8_t buf[512];
    pio_read(h->t, PRI, buf, 512);
    assert_same_bytes(buf, h->m->data + lba * 512, 512, lba * 512, "PIO");
}

/* ---- IDENTIFY ---- */

static void check_checksum(const uint16_t *w)
{
    uint8_t sum = 0;
    for (int i = 0; i < 256; i++) {
        sum += (w[i] & 0xFF) + (w[i] >> 8);
    }
    g_assert_cmpuint(sum, ==, 0);
    g_assert_cmphex(w[255] & 0xFF, ==, 0xA5);
}

static void test_identify(void)
{
    HDOpts o = { .model = "Test Model 123", .serial = "SER123",
                 .firmware = "FW1", .werror = IDE_ERROR_ACTION_ENOSPC };
    HD *h = hd_open("identify.qcow2", &o);
    uint16_t w[256];
    unsigned before = irqs(h->t);
    ata_identify(h->t, PRI, 0, 0xEC, w);
    g_assert_cmpuint(irqs(h->t), ==, before + 1);
    g_assert_cmphex(ata_status(h->t, PRI), ==, ST_OK);
    g_assert_cmphex(w[0], ==, 0x0040);
    /* ATA strings: first character in the high byte of each word. */
    g_assert_cmphex(w[27], ==, 'T' << 8 | 'e');
    g_autofree char *model = ata_string(w, 27, 20);
    g_autofree char *serial = ata_string(w, 10, 10);
    g_autofree char *fw = ata_string(w, 23, 4);
    g_assert_cmpstr(model, ==, "Test Model 123");
    g_assert_cmpstr(serial, ==, "SER123");
    g_assert_cmpstr(fw, ==, "FW1");
    g_assert_cmpuint(w[60] | (uint32_t)w[61] << 16, ==, HD_SECTORS);
    g_assert_cmpuint(w[100] | (uint64_t)w[101] << 16, ==, HD_SECTORS);
    g_assert_cmpuint(w[102] | w[103], ==, 0);
    g_assert_cmphex(w[47], ==, 0x8010);
    g_assert_cmphex(w[59], ==, 0x0110);
    g_assert_cmphex(w[49] & 0x0300, ==, 0x0300);
    g_assert_cmphex(w[83] & 0x7400, ==, 0x7400);    /* 48-bit, flushes */
    g_assert_cmphex(w[86] & 0x3400, ==, 0x3400);
    g_assert_cmphex(w[82] & 0x002A, ==, 0x002A);    /* sec, PM, cache */
    g_assert_cmphex(w[85] & 0x0022, ==, 0x0020);    /* cache on, sec off */
    g_assert_cmphex(w[88], ==, 0x203F);             /* UDMA5 selected */
    g_assert_cmphex(w[128], ==, 0x0021);
    check_checksum(w);
    hd_close(h, true);
}

static void test_identify_defaults(void)
{
    HD *h = hd_open("identify-d.qcow2", NULL);
    uint16_t w[256];
    ata_identify(h->t, PRI, 0, 0xEC, w);
    g_autofree char *model = ata_string(w, 27, 20);
    g_assert_cmpstr(model, ==, "XBLK HARDDISK");
    hd_close(h, false);
}

/* A disk beyond LBA28: words 60-61 saturate, 100-103 hold the size. */
static void test_identify_lba48(void)
{
    HDOpts o = { .size = 200 * GiB };
    HD *h = hd_open("big.qcow2", &o);
    uint16_t w[256];
    ata_identify(h->t, PRI, 0, 0xEC, w);
    g_assert_cmphex(w[60] | (uint32_t)w[61] << 16, ==, 0x0FFFFFFF);
    uint64_t nb = w[100] | (uint64_t)w[101] << 16 | (uint64_t)w[102] << 32 |
                  (uint64_t)w[103] << 48;
    g_assert_cmpuint(nb, ==, 200 * GiB / 512);
    g_assert_cmpuint(w[1], ==, 16383);
    check_checksum(w);
    hd_close(h, false);
}

/* ---- PIO ---- */

static void test_pio_read(void)
{
    HD *h = hd_open("pio-read.qcow2", NULL);
    IDETest *t = h->t;
    unsigned before = irqs(t);
    ata_regs28(t, PRI, 0, 100, 3);
    ata_cmd(t, PRI, 0x20);
    g_assert_cmphex(inb(t, PRI_CTL) & ST_BSY, ==, ST_BSY);
    for (int i = 0; i < 3; i++) {
        idet_run(t);
        g_assert_true(t->th->irq_level[IRQ_PRI]);
        /* Alternate Status leaves INTRQ alone; Status clears it. */
        g_assert_cmphex(inb(t, PRI_CTL), ==, ST_OK | ST_DRQ);
        g_assert_true(t->th->irq_level[IRQ_PRI]);
        g_assert_cmphex(ata_status(t, PRI), ==, ST_OK | ST_DRQ);
        g_assert_false(t->th->irq_level[IRQ_PRI]);
        read_sector_check(h, 100 + i);
    }
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    g_assert_cmpuint(irqs(t), ==, before + 3);
    g_assert_cmpuint(inb(t, PRI + 3), ==, 102);    /* last sector read */
    /* The data port is quiet afterwards. */
    g_assert_cmphex(inw(t, PRI), ==, 0xFFFF);
    hd_close(h, false);
}

static void pio_write_sectors(HD *h, uint8_t cmd, uint64_t lba,
                              unsigned count, unsigned block, uint32_t seed,
                              bool ext)
{
    IDETest *t = h->t;
    unsigned before = irqs(t);
    if (ext) {
        ata_regs48(t, PRI, 0, lba, count);
    } else {
        ata_regs28(t, PRI, 0, lba, count);
    }
    ata_cmd(t, PRI, cmd);
    /* The first block is asked for without an interrupt. */
    g_assert_cmphex(inb(t, PRI_CTL), ==, ST_OK | ST_DRQ);
    g_assert_cmpuint(irqs(t), ==, before);
    for (unsigned done = 0; done < count; done += block) {
        unsigned n = MIN(block, count - done);
        uint8_t *buf = g_malloc(n * 512);
        pattern_fill(buf, n * 512, seed, (lba + done) * 512);
        if (lba + done + n <= h->m->size / 512) {
            memcpy(h->m->data + (lba + done) * 512, buf, n * 512);
        }
        pio_write(t, PRI, buf, n * 512);
        g_free(buf);
        g_assert_cmphex(inb(t, PRI_CTL), ==, ST_BSY | ST_DRDY);
        idet_run(t);
        uint8_t want = done + n < count ? ST_OK | ST_DRQ : ST_OK;
        g_assert_cmphex(ata_status(t, PRI), ==, want);
    }
    g_assert_cmpuint(irqs(t), ==, before + (count + block - 1) / block);
}

static void test_pio_write(void)
{
    HD *h = hd_open("pio-write.qcow2", NULL);
    pio_write_sectors(h, 0x30, 200, 4, 1, 1, false);
    pio_write_sectors(h, 0x31, 8191, 1, 1, 2, false);   /* last sector */
    g_assert_cmpuint(inb(h->t, PRI + 3), ==, 0xFF);
    hd_close(h, true);
}

static void test_pio_32bit(void)
{
    HD *h = hd_open("pio-32.qcow2", NULL);
    IDETest *t = h->t;
    uint8_t buf[512], back[512];
    pattern_fill(buf, 512, 9, 0);
    ata_regs28(t, PRI, 0, 7, 1);
    ata_cmd(t, PRI, 0x30);
    for (int i = 0; i < 512; i += 4) {
        outl(t, PRI, buf[i] | buf[i + 1] << 8 | buf[i + 2] << 16 |
                     (uint32_t)buf[i + 3] << 24);
    }
    assert_st(t, PRI, ST_OK, 0);
    memcpy(h->m->data + 7 * 512, buf, 512);
    ata_regs28(t, PRI, 0, 7, 1);
    ata_cmd(t, PRI, 0x20);
    idet_run(t);
    for (int i = 0; i < 512; i += 4) {
        uint32_t v = inl(t, PRI);
        memcpy(back + i, &v, 4);
    }
    g_assert_cmpmem(back, 512, buf, 512);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    /* Byte-wide data port accesses do nothing. */
    ata_regs28(t, PRI, 0, 7, 1);
    ata_cmd(t, PRI, 0x20);
    idet_run(t);
    g_assert_cmphex(inb(t, PRI), ==, 0xFF);
    outb(t, PRI, 0x12);
    read_sector_check(h, 7);
    hd_close(h, true);
}

static void test_pio_ext(void)
{
    HDOpts o = { .size = 200 * GiB };
    HD *h = hd_open("pio-ext.qcow2", &o);
    IDETest *t = h->t;
    uint64_t lba = 0x12345678;      /* beyond LBA28 */
    uint8_t buf[3 * 512], back[3 * 512];
    pattern_fill(buf, sizeof(buf), 5, lba * 512);
    ata_regs48(t, PRI, 0, lba, 3);
    /* HOB reads give the previous (high) bytes. */
    outb(t, PRI_CTL, 0x80);
    g_assert_cmphex(inb(t, PRI + 3), ==, 0x12);
    g_assert_cmphex(inb(t, PRI + 2), ==, 0x00);
    outb(t, PRI_CTL, 0x00);
    g_assert_cmphex(inb(t, PRI + 3), ==, 0x78);
    ata_cmd(t, PRI, 0x34);
    for (int i = 0; i < 3; i++) {
        pio_write(t, PRI, buf + i * 512, 512);
        idet_run(t);
        ata_status(t, PRI);
    }
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    g_assert_cmpint(disk_pread(h->disk, lba * 512, back, sizeof(back)), ==,
                    0);
    g_assert_cmpmem(back, sizeof(back), buf, sizeof(buf));
    ata_regs48(t, PRI, 0, lba, 3);
    ata_cmd(t, PRI, 0x24);
    for (int i = 0; i < 3; i++) {
        idet_run(t);
        g_assert_cmphex(ata_status(t, PRI), ==, ST_OK | ST_DRQ);
        pio_read(t, PRI, back + i * 512, 512);
    }
    g_assert_cmpmem(back, sizeof(back), buf, sizeof(buf));
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    /* The last LBA read, high bytes through HOB. */
    outb(t, PRI_CTL, 0x80);
    g_assert_cmphex(inb(t, PRI + 3), ==, 0x12);
    outb(t, PRI_CTL, 0x00);
    g_assert_cmphex(inb(t, PRI + 3), ==, 0x7A);
    hd_close(h, false);
}

static void test_pio_multiple(void)
{
    HD *h = hd_open("pio-mult.qcow2", NULL);
    IDETest *t = h->t;
    uint16_t w[256];
    /* Invalid counts abort and leave the setting alone. */
    for (int bad = 0; bad < 3; bad++) {
        static const uint8_t counts[] = { 3, 32, 6 };
        ata_regs28(t, PRI, 0, 0, counts[bad]);
        ata_cmd(t, PRI, 0xC6);
        assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    }
    ata_regs28(t, PRI, 0, 0, 4);
    ata_cmd(t, PRI, 0xC6);
    assert_st(t, PRI, ST_OK, 0);
    ata_identify(t, PRI, 0, 0xEC, w);
    g_assert_cmphex(w[59], ==, 0x0104);
    /* 10 sectors in blocks of 4, 4, 2: three interrupts. */
    unsigned before = irqs(t);
    ata_regs28(t, PRI, 0, 40, 10);
    ata_cmd(t, PRI, 0xC4);
    for (int blk = 0; blk < 3; blk++) {
        idet_run(t);
        g_assert_cmphex(ata_status(t, PRI), ==, ST_OK | ST_DRQ);
        for (int s = 0; s < (blk < 2 ? 4 : 2); s++) {
            read_sector_check(h, 40 + blk * 4 + s);
            if (s < (blk < 2 ? 3 : 1)) {
                g_assert_cmphex(inb(t, PRI_CTL), ==, ST_OK | ST_DRQ);
            }
        }
    }
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    g_assert_cmpuint(irqs(t), ==, before + 3);
    pio_write_sectors(h, 0xC5, 60, 10, 4, 3, false);
    pio_write_sectors(h, 0x39, 80, 5, 4, 4, true);
    /* READ MULTIPLE EXT too. */
    ata_regs48(t, PRI, 0, 80, 5);
    ata_cmd(t, PRI, 0x29);
    for (int blk = 0; blk < 2; blk++) {
        idet_run(t);
        g_assert_cmphex(ata_status(t, PRI), ==, ST_OK | ST_DRQ);
        for (int s = 0; s < (blk ? 1 : 4); s++) {
            read_sector_check(h, 80 + blk * 4 + s);
        }
    }
    /* Multiple mode disabled: READ/WRITE MULTIPLE abort. */
    ata_regs28(t, PRI, 0, 0, 0);
    ata_cmd(t, PRI, 0xC6);
    assert_st(t, PRI, ST_OK, 0);
    ata_identify(t, PRI, 0, 0xEC, w);
    g_assert_cmphex(w[59], ==, 0x0100);
    ata_regs28(t, PRI, 0, 0, 1);
    ata_cmd(t, PRI, 0xC4);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    ata_cmd(t, PRI, 0xC5);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    /* A hardware reset restores the default (16). */
    ide_reset(t->c);
    ata_identify(t, PRI, 0, 0xEC, w);
    g_assert_cmphex(w[59], ==, 0x0110);
    hd_close(h, true);
}

/* CHS addressing with the default geometry (16 heads, 63 sectors). */
static void test_chs(void)
{
    HD *h = hd_open("chs.qcow2", NULL);
    IDETest *t = h->t;
    /* C=2 H=3 S=5 -> LBA (2*16+3)*63+4 = 2209 */
    outb(t, PRI + 6, 0xA0 | 3);
    outb(t, PRI + 2, 1);
    outb(t, PRI + 3, 5);
    outb(t, PRI + 4, 2);
    outb(t, PRI + 5, 0);
    ata_cmd(t, PRI, 0x20);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK | ST_DRQ);
    read_sector_check(h, 2209);
    /* Sector 0 does not exist in CHS. */
    outb(t, PRI + 3, 0);
    ata_cmd(t, PRI, 0x20);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_IDNF);
    hd_close(h, false);
}

static void test_verify(void)
{
    HD *h = hd_open("verify.qcow2", NULL);
    IDETest *t = h->t;
    unsigned before = irqs(t);
    unsigned io = t->th->io_submitted;
    ata_regs28(t, PRI, 0, 0, 0);            /* 256 sectors */
    ata_cmd(t, PRI, 0x40);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_cmpuint(irqs(t), ==, before + 1);
    g_assert_cmpuint(t->th->io_submitted, >, io);
    ata_regs48(t, PRI, 0, HD_SECTORS - 300, 300);
    ata_cmd(t, PRI, 0x42);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_cmphex(inw(t, PRI), ==, 0xFFFF);   /* no data phase */
    ata_regs48(t, PRI, 0, HD_SECTORS - 300, 301);
    ata_cmd(t, PRI, 0x42);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_IDNF);
    hd_close(h, false);
}

/* Every read/write command past the end of the medium: IDNF. */
static void test_idnf(void)
{
    static const uint8_t cmds28[] = { 0x20, 0x30, 0xC4, 0xC5, 0xC8, 0xCA,
                                      0x40 };
    static const uint8_t cmds48[] = { 0x24, 0x34, 0x29, 0x39, 0x25, 0x35,
                                      0x42 };
    HD *h = hd_open("idnf.qcow2", NULL);
    IDETest *t = h->t;
    for (size_t i = 0; i < G_N_ELEMENTS(cmds28); i++) {
        ata_regs28(t, PRI, 0, HD_SECTORS - 1, 2);
        ata_cmd(t, PRI, cmds28[i]);
        assert_st(t, PRI, ST_OK | ST_ERR, ER_IDNF);
        ata_regs28(t, PRI, 0, HD_SECTORS - 100, 0);     /* 256 */
        ata_cmd(t, PRI, cmds28[i]);
        assert_st(t, PRI, ST_OK | ST_ERR, ER_IDNF);
        ata_regs28(t, PRI, 0, 0x0FFFFFFF, 1);
        ata_cmd(t, PRI, cmds28[i]);
        assert_st(t, PRI, ST_OK | ST_ERR, ER_IDNF);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(cmds48); i++) {
        ata_regs48(t, PRI, 0, 1ULL << 40, 1);
        ata_cmd(t, PRI, cmds48[i]);
        assert_st(t, PRI, ST_OK | ST_ERR, ER_IDNF);
        ata_regs48(t, PRI, 0, 0xFFFFFFFFFFFFULL, 0);    /* 65536 */
        ata_cmd(t, PRI, cmds48[i]);
        assert_st(t, PRI, ST_OK | ST_ERR, ER_IDNF);
        ata_regs48(t, PRI, 0, 0, 0);                    /* 32 MiB > 4 */
        ata_cmd(t, PRI, cmds48[i]);
        assert_st(t, PRI, ST_OK | ST_ERR, ER_IDNF);
    }
    g_assert_cmpuint(t->th->io_submitted, ==, 0);
    /* Up to the very end is fine. */
    ata_regs28(t, PRI, 0, HD_SECTORS - 2, 2);
    ata_cmd(t, PRI, 0x40);
    assert_st(t, PRI, ST_OK, 0);
    hd_close(h, true);
}

static void test_flush(void)
{
    HD *h = hd_open("flush.qcow2", NULL);
    IDETest *t = h->t;
    unsigned io = t->th->io_submitted;
    ata_select(t, PRI, 0);
    ata_cmd(t, PRI, 0xE7);
    g_assert_cmphex(inb(t, PRI_CTL), ==, ST_BSY | ST_DRDY);
    assert_st(t, PRI, ST_OK, 0);
    ata_cmd(t, PRI, 0xEA);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_cmpuint(t->th->io_submitted, ==, io + 2);
    hd_close(h, false);
}

static void test_write_cache(void)
{
    HD *h = hd_open("wcache.qcow2", NULL);
    IDETest *t = h->t;
    IDEDriveInfo info;
    uint16_t w[256];
    g_assert_true(ide_drive_info(t->c, 0, &info));
    g_assert_true(info.write_cache);
    /* Disabling flushes what the cache holds. */
    unsigned io = t->th->io_submitted;
    ata_select(t, PRI, 0);
    ata_feature(t, PRI, 0x82);
    ata_cmd(t, PRI, 0xEF);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_cmpuint(t->th->io_submitted, ==, io + 1);
    g_assert_true(ide_drive_info(t->c, 0, &info));
    g_assert_false(info.write_cache);
    ata_identify(t, PRI, 0, 0xEC, w);
    g_assert_cmphex(w[85] & 0x20, ==, 0);
    g_assert_cmphex(w[82] & 0x20, ==, 0x20);
    /* Write-through: the write and a flush before the completion. */
    io = t->th->io_submitted;
    pio_write_sectors(h, 0x30, 10, 1, 1, 11, false);
    g_assert_cmpuint(t->th->io_submitted, ==, io + 2);
    /* Enabled again: a write is one request. */
    ata_feature(t, PRI, 0x02);
    ata_cmd(t, PRI, 0xEF);
    assert_st(t, PRI, ST_OK, 0);
    io = t->th->io_submitted;
    pio_write_sectors(h, 0x30, 11, 1, 1, 12, false);
    g_assert_cmpuint(t->th->io_submitted, ==, io + 1);
    ata_identify(t, PRI, 0, 0xEC, w);
    g_assert_cmphex(w[85] & 0x20, ==, 0x20);
    hd_close(h, true);
}

static void test_set_features(void)
{
    HD *h = hd_open("features.qcow2", NULL);
    IDETest *t = h->t;
    uint16_t w[256];
    static const struct { uint8_t mode; bool ok; uint16_t w63, w88; } m[] = {
        { 0x42, true, 0x0007, 0x043F },     /* UDMA 2 */
        { 0x22, true, 0x0407, 0x003F },     /* MWDMA 2 */
        { 0x0C, true, 0x0407, 0x003F },     /* PIO 4 keeps DMA mode */
        { 0x00, true, 0x0407, 0x003F },
        { 0x46, false, 0x0407, 0x003F },    /* no UDMA 6 */
        { 0x23, false, 0x0407, 0x003F },
        { 0x0D, false, 0x0407, 0x003F },
        { 0x10, false, 0x0407, 0x003F },
        { 0x45, true, 0x0007, 0x203F },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(m); i++) {
        ata_select(t, PRI, 0);
        ata_feature(t, PRI, 0x03);
        outb(t, PRI + 2, m[i].mode);
        ata_cmd(t, PRI, 0xEF);
        if (m[i].ok) {
            assert_st(t, PRI, ST_OK, 0);
        } else {
            assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
        }
        ata_identify(t, PRI, 0, 0xEC, w);
        g_assert_cmphex(w[63], ==, m[i].w63);
        g_assert_cmphex(w[88], ==, m[i].w88);
    }
    static const uint8_t bad[] = { 0x00, 0x55, 0xAA, 0x05, 0xFF };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ata_feature(t, PRI, bad[i]);
        ata_cmd(t, PRI, 0xEF);
        assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    }
    ata_feature(t, PRI, 0x66);
    ata_cmd(t, PRI, 0xEF);
    assert_st(t, PRI, ST_OK, 0);
    hd_close(h, false);
}

static uint8_t check_power_mode(IDETest *t)
{
    ata_select(t, PRI, 0);
    outb(t, PRI + 2, 0x55);
    ata_cmd(t, PRI, 0xE5);
    assert_st(t, PRI, ST_OK, 0);
    return inb(t, PRI + 2);
}

static void test_power(void)
{
    HD *h = hd_open("power.qcow2", NULL);
    IDETest *t = h->t;
    g_assert_cmphex(check_power_mode(t), ==, 0xFF);
    ata_cmd(t, PRI, 0xE0);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_cmphex(check_power_mode(t), ==, 0x00);
    ata_cmd(t, PRI, 0xE1);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_cmphex(check_power_mode(t), ==, 0x80);
    outb(t, PRI + 2, 10);
    ata_cmd(t, PRI, 0xE2);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_cmphex(check_power_mode(t), ==, 0x00);
    /* A media access spins the drive up. */
    ata_regs28(t, PRI, 0, 0, 1);
    ata_cmd(t, PRI, 0x40);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_cmphex(check_power_mode(t), ==, 0xFF);
    ata_cmd(t, PRI, 0xE3);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_cmphex(check_power_mode(t), ==, 0x80);
    /* SLEEP: only a reset wakes the drive; commands are ignored. */
    unsigned before = irqs(t);
    ata_cmd(t, PRI, 0xE6);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_cmpuint(irqs(t), ==, before + 1);
    ata_cmd(t, PRI, 0xEC);
    idet_run(t);
    g_assert_cmpuint(irqs(t), ==, before + 1);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    outb(t, PRI_CTL, 0x04);
    outb(t, PRI_CTL, 0x00);
    g_assert_cmphex(check_power_mode(t), ==, 0xFF);
    hd_close(h, false);
}

static void test_unsupported(void)
{
    static const uint8_t cmds[] = { 0x00, 0x08, 0x10, 0x27, 0x91, 0xA0,
                                    0xA1, 0xB0, 0xE4, 0xE8, 0xF8, 0xF9,
                                    0xFF, 0x70, 0x94 };
    HD *h = hd_open("unsupported.qcow2", NULL);
    IDETest *t = h->t;
    for (size_t i = 0; i < G_N_ELEMENTS(cmds); i++) {
        unsigned before = irqs(t);
        ata_select(t, PRI, 0);
        ata_cmd(t, PRI, cmds[i]);
        assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
        g_assert_cmpuint(irqs(t), ==, before + 1);
    }
    g_assert_cmpuint(t->th->io_submitted, ==, 0);
    hd_close(h, false);
}

static void check_ata_signature(IDETest *t, uint32_t base)
{
    g_assert_cmphex(inb(t, base + 2), ==, 1);
    g_assert_cmphex(inb(t, base + 3), ==, 1);
    g_assert_cmphex(inb(t, base + 4), ==, 0);
    g_assert_cmphex(inb(t, base + 5), ==, 0);
}

static void test_diagnostic(void)
{
    HD *h = hd_open("diag.qcow2", NULL);
    IDETest *t = h->t;
    unsigned before = irqs(t);
    ata_regs28(t, PRI, 0, 0x123456, 9);
    ata_cmd(t, PRI, 0x90);
    g_assert_cmpuint(irqs(t), ==, before + 1);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    g_assert_cmphex(ata_error(t, PRI), ==, 0x01);
    check_ata_signature(t, PRI);
    g_assert_cmphex(inb(t, PRI + 6) & 0x10, ==, 0);
    /* Issued with the absent slave selected: device 0 answers. */
    ata_select(t, PRI, 1);
    ata_cmd(t, PRI, 0x90);
    g_assert_cmpuint(irqs(t), ==, before + 2);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    g_assert_cmphex(ata_error(t, PRI), ==, 0x01);
    hd_close(h, false);
}

/* ---- BSY, SRST, interrupts ---- */

static void test_command_while_busy(void)
{
    HD *h = hd_open("busy.qcow2", NULL);
    IDETest *t = h->t;
    ata_regs28(t, PRI, 0, 5, 1);
    ata_cmd(t, PRI, 0x20);
    g_assert_cmphex(inb(t, PRI_CTL), ==, ST_BSY | ST_DRDY);
    ata_cmd(t, PRI, 0xEC);          /* ignored: BSY */
    ata_cmd(t, PRI, 0x30);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK | ST_DRQ);
    read_sector_check(h, 5);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    /* Written during DRQ: the old transfer is dropped. */
    ata_cmd(t, PRI, 0xEC);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK | ST_DRQ);
    ata_regs28(t, PRI, 0, 6, 1);
    ata_cmd(t, PRI, 0x20);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK | ST_DRQ);
    read_sector_check(h, 6);
    hd_close(h, false);
}

static void srst(IDETest *t, uint32_t ctl)
{
    outb(t, ctl, 0x04);
    g_assert_cmphex(inb(t, ctl) & ST_BSY, ==, ST_BSY);
    outb(t, ctl, 0x00);
}

static void test_srst_mid_transfer(void)
{
    HD *h = hd_open("srst.qcow2", NULL);
    IDETest *t = h->t;
    uint8_t buf[512];

    /* A write whose first sector is in flight. */
    ata_regs28(t, PRI, 0, 300, 4);
    ata_cmd(t, PRI, 0x30);
    pattern_fill(buf, 512, 21, 300 * 512);
    pio_write(t, PRI, buf, 512);
    g_assert_cmpuint(ide_in_flight(t->c), ==, 1);
    unsigned before = irqs(t);
    srst(t, PRI_CTL);
    g_assert_cmphex(inb(t, PRI_CTL), ==, ST_OK);
    g_assert_cmphex(ata_error(t, PRI), ==, 0x01);
    check_ata_signature(t, PRI);
    idet_run(t);            /* the late completion changes nothing */
    g_assert_cmpuint(ide_in_flight(t->c), ==, 0);
    g_assert_cmpuint(irqs(t), ==, before);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    g_assert_cmphex(inw(t, PRI), ==, 0xFFFF);
    /* The submitted sector reached the disk; the rest did not. */
    memcpy(h->m->data + 300 * 512, buf, 512);

    /* A read in flight. */
    ata_regs28(t, PRI, 0, 20, 2);
    ata_cmd(t, PRI, 0x20);
    srst(t, PRI_CTL);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    g_assert_cmpuint(irqs(t), ==, before);

    /* During a data-in DRQ block. */
    ata_regs28(t, PRI, 0, 20, 2);
    ata_cmd(t, PRI, 0x20);
    idet_run(t);
    inw(t, PRI);
    srst(t, PRI_CTL);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    g_assert_cmphex(inw(t, PRI), ==, 0xFFFF);

    /* During a data-out DRQ block: half a sector written, then SRST. */
    ata_regs28(t, PRI, 0, 400, 1);
    ata_cmd(t, PRI, 0x30);
    pio_write(t, PRI, buf, 256);
    srst(t, PRI_CTL);
    outw(t, PRI, 0x1234);
    idet_run(t);
    g_assert_cmpuint(t->th->io_submitted, ==, 3);
    /* Commands while SRST is held are ignored. */
    outb(t, PRI_CTL, 0x04);
    ata_cmd(t, PRI, 0xEC);
    outb(t, PRI_CTL, 0x00);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    /* The drive works normally afterwards. */
    ata_regs28(t, PRI, 0, 301, 1);
    ata_cmd(t, PRI, 0x20);
    idet_run(t);
    read_sector_check(h, 301);
    hd_close(h, true);
}

static void test_hw_reset_mid_transfer(void)
{
    HD *h = hd_open("hwreset.qcow2", NULL);
    IDETest *t = h->t;
    ata_regs28(t, PRI, 0, 20, 2);
    ata_cmd(t, PRI, 0x20);
    unsigned before = irqs(t);
    ide_reset(t->c);
    g_assert_false(t->th->irq_level[IRQ_PRI]);
    idet_run(t);
    g_assert_cmpuint(irqs(t), ==, before);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    g_assert_cmphex(ata_error(t, PRI), ==, 0x01);
    hd_close(h, false);
}

static void test_irq(void)
{
    HD *h = hd_open("irq.qcow2", NULL);
    IDETest *t = h->t;
    /* nIEN masks the line while the device keeps INTRQ pending. */
    outb(t, PRI_CTL, 0x02);
    ata_select(t, PRI, 0);
    ata_cmd(t, PRI, 0xE5);
    g_assert_false(t->th->irq_level[IRQ_PRI]);
    g_assert_cmphex(bm_status(t, BM_PRI) & BM_INT, ==, BM_INT);
    outb(t, PRI_CTL, 0x00);
    g_assert_true(t->th->irq_level[IRQ_PRI]);
    /* Selecting the absent slave: its status reads 0, the line drops. */
    ata_select(t, PRI, 1);
    g_assert_false(t->th->irq_level[IRQ_PRI]);
    g_assert_cmphex(ata_status(t, PRI), ==, 0x00);
    g_assert_cmphex(inb(t, PRI_CTL), ==, 0x00);
    ata_select(t, PRI, 0);
    g_assert_true(t->th->irq_level[IRQ_PRI]);
    /* Writing a command clears the pending interrupt. */
    ata_regs28(t, PRI, 0, 0, 1);
    ata_cmd(t, PRI, 0x20);
    g_assert_false(t->th->irq_level[IRQ_PRI]);
    idet_run(t);
    g_assert_true(t->th->irq_level[IRQ_PRI]);
    ata_status(t, PRI);
    g_assert_false(t->th->irq_level[IRQ_PRI]);
    /* The empty secondary channel floats. */
    g_assert_cmphex(inb(t, SEC + 7), ==, 0xFF);
    g_assert_cmphex(inb(t, SEC + 2), ==, 0xFF);
    g_assert_cmphex(inb(t, SEC_CTL), ==, 0xFF);
    ata_cmd(t, SEC, 0xEC);
    g_assert_cmpuint(t->th->irq_raised[IRQ_SEC], ==, 0);
    /* Ports the controller does not own. */
    g_assert_false(ide_claims_port(0x1F8));
    g_assert_false(ide_claims_port(0x3F7));
    g_assert_true(ide_claims_port(0x376));
    g_assert_true(ide_claims_port(0xFF6F));
    g_assert_false(ide_claims_port(0xFF70));
    g_assert_cmphex(ide_ioport_read(t->c, 0x1F8, 1), ==, 0xFF);
    hd_close(h, false);
}

/* Wide accesses to byte registers split into consecutive ports. */
static void test_wide_register_access(void)
{
    HD *h = hd_open("wide.qcow2", NULL);
    IDETest *t = h->t;
    outw(t, PRI + 2, 0x0201);      /* count 1, LBA low 2 */
    g_assert_cmphex(inb(t, PRI + 2), ==, 1);
    g_assert_cmphex(inb(t, PRI + 3), ==, 2);
    outl(t, PRI + 4, 0x00A00000);  /* mid 0, high 0, device A0, cmd 0 */
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);   /* NOP aborts */
    g_assert_cmphex(inw(t, PRI + 2), ==, 0x0201);
    hd_close(h, false);
}

/* ---- error policies ---- */

static HD *hd_faulty(const char *name, IDEErrorAction werror,
                     IDEErrorAction rerror)
{
    HDOpts o = { .blkdebug = true, .werror = werror, .rerror = rerror };
    return hd_open(name, &o);
}

static void test_rerror_report(void)
{
    HD *h = hd_faulty("rerror.qcow2", IDE_ERROR_ACTION_ENOSPC,
                      IDE_ERROR_ACTION_REPORT);
    IDETest *t = h->t;
    IDEDriveInfo info;
    blkdebug_fail(h->dbg, BLKDBG_OP_READ, EIO, false);
    ata_regs28(t, PRI, 0, 10, 2);
    ata_cmd(t, PRI, 0x20);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_UNC);
    g_assert_cmpuint(inb(t, PRI + 3), ==, 10);    /* where it failed */
    g_assert_cmpuint(t->th->error_events, ==, 1);
    g_assert_cmpstr(t->th->last_error_action, ==, "report");
    g_assert_true(ide_drive_info(t->c, 0, &info));
    g_assert_true(info.io_status_failed);
    ata_regs28(t, PRI, 0, 10, 2);
    ata_cmd(t, PRI, 0x40);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_UNC);
    g_assert_cmpuint(t->th->stop_requests, ==, 0);
    blkdebug_clear_rules(h->dbg);
    ata_cmd(t, PRI, 0x40);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_true(ide_drive_info(t->c, 0, &info));
    g_assert_false(info.io_status_failed);
    hd_close(h, false);
}

static void test_rerror_ignore(void)
{
    HD *h = hd_faulty("rignore.qcow2", IDE_ERROR_ACTION_ENOSPC,
                      IDE_ERROR_ACTION_IGNORE);
    IDETest *t = h->t;
    uint8_t buf[512], zero[512] = { 0 };
    blkdebug_fail(h->dbg, BLKDBG_OP_READ, EIO, false);
    ata_regs28(t, PRI, 0, 10, 1);
    ata_cmd(t, PRI, 0x20);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK | ST_DRQ);
    pio_read(t, PRI, buf, 512);
    g_assert_cmpmem(buf, 512, zero, 512);
    g_assert_cmpstr(t->th->last_error_action, ==, "ignore");
    hd_close(h, false);
}

static void test_werror_report(void)
{
    HD *h = hd_faulty("werror.qcow2", IDE_ERROR_ACTION_ENOSPC,
                      IDE_ERROR_ACTION_REPORT);
    IDETest *t = h->t;
    uint8_t buf[512] = { 1 };
    blkdebug_fail(h->dbg, BLKDBG_OP_WRITE, EIO, false);
    ata_regs28(t, PRI, 0, 10, 1);
    ata_cmd(t, PRI, 0x30);
    pio_write(t, PRI, buf, 512);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    g_assert_cmpstr(t->th->last_error_action, ==, "report");
    g_assert_cmpuint(t->th->stop_requests, ==, 0);
    blkdebug_clear_rules(h->dbg);
    blkdebug_fail(h->dbg, BLKDBG_OP_FLUSH, EIO, false);
    ata_cmd(t, PRI, 0xE7);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    blkdebug_clear_rules(h->dbg);
    hd_close(h, true);
}

/* werror=stop (and enospc with ENOSPC): the machine stops, the request
 * waits, ide_resume() retries it. */
static void werror_stop_case(IDEErrorAction action, int err)
{
    HD *h = hd_faulty("wstop.qcow2", action, IDE_ERROR_ACTION_REPORT);
    IDETest *t = h->t;
    uint8_t buf[512];
    pattern_fill(buf, 512, 31, 12 * 512);
    blkdebug_fail(h->dbg, BLKDBG_OP_WRITE, err, true);
    ata_regs28(t, PRI, 0, 12, 1);
    ata_cmd(t, PRI, 0x30);
    pio_write(t, PRI, buf, 512);
    idet_run(t);
    g_assert_cmpuint(t->th->stop_requests, ==, 1);
    g_assert_cmpuint(ide_in_flight(t->c), ==, 0);
    g_assert_cmphex(inb(t, PRI_CTL), ==, ST_BSY | ST_DRDY);
    IDEDriveInfo info;
    g_assert_true(ide_drive_info(t->c, 0, &info));
    g_assert_true(info.io_status_failed);
    ide_resume(t->c);
    g_assert_cmpuint(ide_in_flight(t->c), ==, 1);
    assert_st(t, PRI, ST_OK, 0);
    memcpy(h->m->data + 12 * 512, buf, 512);
    /* A hardware reset drops a held request. */
    blkdebug_fail(h->dbg, BLKDBG_OP_WRITE, err, true);
    ata_cmd(t, PRI, 0x30);
    pio_write(t, PRI, buf, 512);
    idet_run(t);
    g_assert_cmpuint(t->th->stop_requests, ==, 2);
    ide_reset(t->c);
    ide_resume(t->c);
    g_assert_cmpuint(ide_in_flight(t->c), ==, 0);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    hd_close(h, true);
}

static void test_werror_stop(void)
{
    werror_stop_case(IDE_ERROR_ACTION_STOP, EIO);
}

static void test_werror_enospc(void)
{
    werror_stop_case(IDE_ERROR_ACTION_ENOSPC, ENOSPC);
}

static void test_rerror_stop(void)
{
    HD *h = hd_faulty("rstop.qcow2", IDE_ERROR_ACTION_REPORT,
                      IDE_ERROR_ACTION_STOP);
    IDETest *t = h->t;
    blkdebug_fail(h->dbg, BLKDBG_OP_READ, EIO, true);
    ata_regs28(t, PRI, 0, 33, 1);
    ata_cmd(t, PRI, 0x20);
    idet_run(t);
    g_assert_cmpuint(t->th->stop_requests, ==, 1);
    ide_resume(t->c);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK | ST_DRQ);
    read_sector_check(h, 33);
    hd_close(h, false);
}

/* ---- SECURITY ---- */

static uint8_t sec_cmd(IDETest *t, uint8_t cmd, uint16_t ctl, const char *pw,
                       uint16_t rev)
{
    uint8_t buf[512] = { 0 };
    buf[0] = ctl;
    buf[1] = ctl >> 8;
    pw_fill(buf + 2, pw);
    buf[34] = rev;
    buf[35] = rev >> 8;
    ata_select(t, PRI, 0);
    ata_cmd(t, PRI, cmd);
    if (!(inb(t, PRI_CTL) & ST_DRQ)) {
        idet_run(t);
        return ata_status(t, PRI);  /* refused before the data */
    }
    pio_write(t, PRI, buf, 512);
    idet_run(t);
    return ata_status(t, PRI);
}

static uint8_t sec_simple(IDETest *t, uint8_t cmd)
{
    ata_select(t, PRI, 0);
    ata_cmd(t, PRI, cmd);
    idet_run(t);
    return ata_status(t, PRI);
}

static uint16_t word(IDETest *t, int n)
{
    uint16_t w[256];
    ata_identify(t, PRI, 0, 0xEC, w);
    return w[n];
}

#define SEC_OK(t, cmd, ctl, pw) \
    g_assert_cmphex(sec_cmd(t, cmd, ctl, pw, 0xFFFF), ==, ST_OK)
#define SEC_ABRT(t, cmd, ctl, pw) do {                                    \
        g_assert_cmphex(sec_cmd(t, cmd, ctl, pw, 0xFFFF), ==,             \
                        ST_OK | ST_ERR);                                  \
        g_assert_cmphex(ata_error(t, PRI), ==, ER_ABRT);                  \
    } while (0)

/* The media commands a locked drive refuses; the others it runs. */
static void check_locked_behaviour(IDETest *t)
{
    static const uint8_t media[] = { 0x20, 0x24, 0x30, 0x34, 0xC4, 0xC5,
                                     0xC8, 0xCA, 0x25, 0x35, 0x40, 0x42,
                                     0xE7, 0xEA };
    for (size_t i = 0; i < G_N_ELEMENTS(media); i++) {
        ata_regs28(t, PRI, 0, 0, 1);
        ata_cmd(t, PRI, media[i]);
        assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    }
    g_assert_cmpuint(t->th->io_submitted, ==, 0);
    ata_feature(t, PRI, 0x03);
    outb(t, PRI + 2, 0x45);
    ata_cmd(t, PRI, 0xEF);
    assert_st(t, PRI, ST_OK, 0);
    g_assert_cmphex(check_power_mode(t), ==, 0xFF);
    SEC_ABRT(t, 0xF1, 0, "x");
    SEC_ABRT(t, 0xF6, 0, "x");
    g_assert_cmphex(sec_simple(t, 0xF5), ==, ST_OK | ST_ERR);
}

static void test_security_lock_cycle(void)
{
    HD *h = hd_open("sec.qcow2", NULL);
    IDETest *t = h->t;
    IDEDriveInfo info;
    g_assert_cmphex(word(t, 128), ==, 0x0021);
    g_assert_cmphex(word(t, 82) & 0x0002, ==, 0x0002);
    g_assert_cmphex(word(t, 85) & 0x0002, ==, 0);
    SEC_OK(t, 0xF1, 0x0000, "secret");
    g_assert_cmphex(word(t, 128), ==, 0x0023);   /* enabled, unlocked */
    g_assert_cmphex(word(t, 85) & 0x0002, ==, 0x0002);
    ide_reset(t->c);                            /* power cycle: locked */
    g_assert_cmphex(word(t, 128), ==, 0x0027);
    g_assert_true(ide_drive_info(t->c, 0, &info));
    g_assert_true(info.security_locked);
    check_locked_behaviour(t);
    /* Five wrong passwords use up the attempts... */
    for (int i = 0; i < 5; i++) {
        g_assert_cmphex(word(t, 128) & 0x0010, ==, 0);
        SEC_ABRT(t, 0xF2, 0, "guess");
    }
    g_assert_cmphex(word(t, 128), ==, 0x0037);
    /* ... and then even the right one is refused, as is ERASE UNIT. */
    SEC_ABRT(t, 0xF2, 0, "secret");
    g_assert_cmphex(sec_simple(t, 0xF3), ==, ST_OK);
    SEC_ABRT(t, 0xF4, 0, "secret");
    g_assert_cmphex(word(t, 128), ==, 0x0037);
    /* SRST does not reset the counter; a hardware reset does. */
    srst(t, PRI_CTL);
    SEC_ABRT(t, 0xF2, 0, "secret");
    ide_reset(t->c);
    g_assert_cmphex(word(t, 128), ==, 0x0027);
    SEC_ABRT(t, 0xF2, 0, "secre");
    SEC_OK(t, 0xF2, 0, "secret");
    g_assert_cmphex(word(t, 128), ==, 0x0023);
    g_assert_true(ide_drive_info(t->c, 0, &info));
    g_assert_false(info.security_locked);
    ata_regs28(t, PRI, 0, 3, 1);
    ata_cmd(t, PRI, 0x20);
    idet_run(t);
    read_sector_check(h, 3);
    /* Unlocked: wrong passwords do not count down any more. */
    for (int i = 0; i < 6; i++) {
        SEC_ABRT(t, 0xF2, 0, "nope");
    }
    g_assert_cmphex(word(t, 128), ==, 0x0023);
    /* DISABLE PASSWORD: wrong refused, right disables. */
    SEC_ABRT(t, 0xF6, 0, "wrong");
    SEC_OK(t, 0xF6, 0, "secret");
    g_assert_cmphex(word(t, 128), ==, 0x0021);
    ide_reset(t->c);
    g_assert_cmphex(word(t, 128), ==, 0x0021);
    hd_close(h, true);
}

static void test_security_config_locked(void)
{
    HDOpts o = { .locked = true, .password = "XBOXHDDKEY" };
    HD *h = hd_open("sec-cfg.qcow2", &o);
    IDETest *t = h->t;
    g_assert_cmphex(word(t, 128), ==, 0x0027);
    ata_regs28(t, PRI, 0, 0, 1);
    ata_cmd(t, PRI, 0x20);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    SEC_OK(t, 0xF2, 0, "XBOXHDDKEY");
    ata_cmd(t, PRI, 0x20);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK | ST_DRQ);
    read_sector_check(h, 0);
    hd_close(h, false);
}

static void test_security_master(void)
{
    HD *h = hd_open("sec-master.qcow2", NULL);
    IDETest *t = h->t;
    g_assert_cmphex(word(t, 92), ==, 0xFFFE);
    /* The factory master password (32 spaces) unlocks at level High. */
    SEC_OK(t, 0xF1, 0, "user1");
    ide_reset(t->c);
    SEC_OK(t, 0xF2, 1, "                                ");
    g_assert_cmphex(word(t, 128), ==, 0x0023);
    /* A new master password and its revision code. */
    g_assert_cmphex(sec_cmd(t, 0xF1, 1, "master", 0x0005), ==, ST_OK);
    g_assert_cmphex(word(t, 92), ==, 0x0005);
    g_assert_cmphex(word(t, 128), ==, 0x0023);   /* state unchanged */
    ide_reset(t->c);
    SEC_ABRT(t, 0xF2, 1, "                                ");
    SEC_OK(t, 0xF2, 1, "master");
    /* Level Maximum: the master password no longer unlocks... */
    SEC_OK(t, 0xF1, 0x0100, "user2");
    g_assert_cmphex(word(t, 128), ==, 0x0123);
    ide_reset(t->c);
    SEC_ABRT(t, 0xF2, 1, "master");
    SEC_ABRT(t, 0xF6, 0, "user2");              /* locked: refused */
    SEC_OK(t, 0xF2, 0, "user2");
    SEC_ABRT(t, 0xF6, 1, "master");             /* nor disables */
    /* ... but it still erases. */
    g_assert_cmphex(sec_simple(t, 0xF3), ==, ST_OK);
    SEC_OK(t, 0xF4, 1, "master");
    g_assert_cmphex(word(t, 128), ==, 0x0021);
    memset(h->m->data, 0, h->m->size);
    hd_close(h, true);
}

static void test_security_frozen(void)
{
    HD *h = hd_open("sec-frozen.qcow2", NULL);
    IDETest *t = h->t;
    SEC_OK(t, 0xF1, 0, "pw");
    g_assert_cmphex(sec_simple(t, 0xF5), ==, ST_OK);
    g_assert_cmphex(word(t, 128), ==, 0x002B);
    SEC_ABRT(t, 0xF1, 0, "other");
    SEC_ABRT(t, 0xF2, 0, "pw");
    SEC_ABRT(t, 0xF6, 0, "pw");
    g_assert_cmphex(sec_simple(t, 0xF3), ==, ST_OK | ST_ERR);
    SEC_ABRT(t, 0xF4, 0, "pw");
    g_assert_cmphex(sec_simple(t, 0xF5), ==, ST_OK);    /* again: fine */
    /* Frozen does not stop media access; a hardware reset unfreezes. */
    ata_regs28(t, PRI, 0, 0, 1);
    ata_cmd(t, PRI, 0x40);
    assert_st(t, PRI, ST_OK, 0);
    ide_reset(t->c);
    g_assert_cmphex(word(t, 128), ==, 0x0027);
    SEC_OK(t, 0xF2, 0, "pw");
    SEC_OK(t, 0xF6, 0, "pw");
    hd_close(h, true);
}

static void test_security_erase(void)
{
    HD *h = hd_open("sec-erase.qcow2", NULL);
    IDETest *t = h->t;
    SEC_OK(t, 0xF1, 0, "erase-me");
    /* ERASE UNIT needs ERASE PREPARE right before it. */
    SEC_ABRT(t, 0xF4, 0, "erase-me");
    g_assert_cmphex(sec_simple(t, 0xF3), ==, ST_OK);
    word(t, 0);
    SEC_ABRT(t, 0xF4, 0, "erase-me");
    g_assert_cmphex(sec_simple(t, 0xF3), ==, ST_OK);
    SEC_ABRT(t, 0xF4, 0, "wrong");
    g_assert_cmphex(sec_simple(t, 0xF3), ==, ST_OK);
    unsigned io = t->th->io_submitted;
    SEC_OK(t, 0xF4, 0x0002, "erase-me");        /* enhanced erase */
    g_assert_cmpuint(t->th->io_submitted - io, ==, HD_SIZE / (1 << 20));
    g_assert_cmphex(word(t, 128), ==, 0x0021);
    ide_reset(t->c);
    g_assert_cmphex(word(t, 128), ==, 0x0021);
    idet_free(h->t);
    h->t = idet_new(1 << 20);
    xblk_disk_close(h->disk);
    h->disk = NULL;
    qemu_check(h->path, false);
    qemu_io_read_pattern(h->path, "qcow2", 0, 0, HD_SIZE);
    h->disk = qcow2_disk_open(h->path, "hd0", NULL);
    memset(h->m->data, 0, h->m->size);
    hd_close(h, true);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir_setup_in_memory();
    idet_engine_start();
    g_test_add_func("/ide/identify/fields", test_identify);
    g_test_add_func("/ide/identify/defaults", test_identify_defaults);
    g_test_add_func("/ide/identify/lba48", test_identify_lba48);
    g_test_add_func("/ide/pio/read", test_pio_read);
    g_test_add_func("/ide/pio/write", test_pio_write);
    g_test_add_func("/ide/pio/32bit", test_pio_32bit);
    g_test_add_func("/ide/pio/ext", test_pio_ext);
    g_test_add_func("/ide/pio/multiple", test_pio_multiple);
    g_test_add_func("/ide/pio/chs", test_chs);
    g_test_add_func("/ide/verify", test_verify);
    g_test_add_func("/ide/idnf", test_idnf);
    g_test_add_func("/ide/flush", test_flush);
    g_test_add_func("/ide/write-cache", test_write_cache);
    g_test_add_func("/ide/set-features", test_set_features);
    g_test_add_func("/ide/power", test_power);
    g_test_add_func("/ide/unsupported", test_unsupported);
    g_test_add_func("/ide/diagnostic", test_diagnostic);
    g_test_add_func("/ide/busy", test_command_while_busy);
    g_test_add_func("/ide/srst-mid-transfer", test_srst_mid_transfer);
    g_test_add_func("/ide/hw-reset-mid-transfer",
                    test_hw_reset_mid_transfer);
    g_test_add_func("/ide/irq", test_irq);
    g_test_add_func("/ide/wide-register-access", test_wide_register_access);
    g_test_add_func("/ide/error/read-report", test_rerror_report);
    g_test_add_func("/ide/error/read-ignore", test_rerror_ignore);
    g_test_add_func("/ide/error/read-stop", test_rerror_stop);
    g_test_add_func("/ide/error/write-report", test_werror_report);
    g_test_add_func("/ide/error/write-stop", test_werror_stop);
    g_test_add_func("/ide/error/write-enospc", test_werror_enospc);
    g_test_add_func("/ide/security/lock-cycle", test_security_lock_cycle);
    g_test_add_func("/ide/security/config-locked",
                    test_security_config_locked);
    g_test_add_func("/ide/security/master", test_security_master);
    g_test_add_func("/ide/security/frozen", test_security_frozen);
    g_test_add_func("/ide/security/erase", test_security_erase);
    int ret = g_test_run();
    idet_engine_stop();
    test_dir_cleanup();
    return ret;
}
