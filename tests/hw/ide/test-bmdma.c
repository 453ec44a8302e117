/*
 * test-bmdma.c - bus-master DMA of the IDE controller: READ/WRITE DMA (EXT)
 * through PRD tables in guest RAM, the register file (command, status,
 * PRD address), start/stop ordering, 64 KiB entries, 32 MiB LBA48
 * transfers split into requests with deterministic virtual time, and
 * every malformed table this controller defines as an error (region
 * outside RAM, crossing 64 KiB, odd address or count, table outside RAM or
 * crossing its 64 KiB page, table shorter than the transfer, wrong
 * direction): each must set Error + Interrupt and end the command without
 * touching RAM or the image.  Also tables longer than the transfer,
 * stopping the engine and SRST mid-transfer, read errors, write-through,
 * two devices competing for one engine, a table rewritten mid-transfer.
 * Images are checked with `qemu-img check` and compared with the model.
 */
#include "ide-test.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define SEED 99
#define SENTINEL 0xEE
#define TABLE 0x1000

typedef struct DMA {
    IDETest *t;
    char *path;
    XblkDisk *disk;
    BlockDriverState *dbg;      /* blkdebug filter, or NULL */
    Model *m;
} DMA;

static DMA *dma_open(const char *name, uint64_t size, uint64_t ram,
                     bool blkdebug)
{
    DMA *d = g_new0(DMA, 1);
    d->path = test_path(name);
    d->m = model_new(size);
    d->disk = qcow2_image(d->path, "hd0", blkdebug ? "hd0-dbg" : NULL, size,
                          size, SEED, d->m);
    if (blkdebug) {
        d->dbg = blkdebug_node("hd0-dbg");
    }
    d->t = idet_new(ram);
    memset(d->t->th->ram, SENTINEL, ram);
    IDEDriveConfig c = idet_config(IDE_DRIVE_HD, d->disk, "ide0-hd0");
    idet_attach(d->t, 0, &c);
    return d;
}

static void dma_close(DMA *d)
{
    idet_free(d->t);
    xblk_disk_close(d->disk);
    qemu_check(d->path, false);
    qemu_compare(d->path, NULL, d->m);
    g_unlink(d->path);
    g_free(d->path);
    model_free(d->m);
    g_free(d);
}

static uint8_t *ram(DMA *d, uint64_t gpa)
{
    return d->t->th->ram + gpa;
}

static void assert_ram_sentinel(DMA *d, uint64_t gpa, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++) {
        if (ram(d, gpa)[i] != SENTINEL) {
            g_error("RAM at %#" G_GINT64_MODIFIER "x changed",
                    (gint64)(gpa + i));
        }
    }
}

static void dma_cmd(DMA *d, uint8_t cmd, uint64_t lba, uint32_t count)
{
    bool ext = cmd == 0x25 || cmd == 0x35;
    if (ext) {
        ata_regs48(d->t, PRI, 0, lba, count);
    } else {
        ata_regs28(d->t, PRI, 0, lba, count);
    }
    ata_cmd(d->t, PRI, cmd);
}

static bool is_read(uint8_t cmd)
{
    return cmd == 0xC8 || cmd == 0x25;
}

/* Command, then Start: the usual order. */
static void dma_go(DMA *d, uint8_t cmd, uint64_t lba, uint32_t count)
{
    bm_setup(d->t, BM_PRI, TABLE, is_read(cmd));
    dma_cmd(d, cmd, lba, count);
    g_assert_cmphex(inb(d->t, PRI_CTL) & (ST_BSY | ST_DRQ), ==, ST_DRQ);
    bm_start(d->t, BM_PRI, is_read(cmd));
    idet_run(d->t);
}

static void check_image_at(DMA *d, uint64_t gpa, uint64_t off, uint64_t len)
{
    assert_same_bytes(ram(d, gpa), d->m->data + off, len, off, "DMA read");
}

/* Fills guest RAM with the data a write will carry, into the model too. */
static void fill_for_write(DMA *d, uint64_t gpa, uint64_t off, uint64_t len,
                           uint32_t seed)
{
    pattern_fill(ram(d, gpa), len, seed, off);
    memcpy(d->m->data + off, ram(d, gpa), len);
}

/* ---- transfers ---- */

static void test_read(void)
{
    DMA *d = dma_open("read.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    prd_put(t, TABLE, 0x10000, 1536, false);
    prd_put(t, TABLE + 8, 0x20100, 2560, false);
    prd_put(t, TABLE + 16, 0x30000, 47104, true);
    unsigned irq = t->th->irq_raised[IRQ_PRI];
    dma_go(d, 0xC8, 10, 100);
    g_assert_cmpuint(t->th->irq_raised[IRQ_PRI], ==, irq + 1);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_INT);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    check_image_at(d, 0x10000, 10 * 512, 1536);
    check_image_at(d, 0x20100, 13 * 512, 2560);
    check_image_at(d, 0x30000, 18 * 512, 47104);
    assert_ram_sentinel(d, 0x10000 + 1536, 16);
    assert_ram_sentinel(d, 0x20100 - 16, 16);
    assert_ram_sentinel(d, 0x20100 + 2560, 16);
    assert_ram_sentinel(d, 0x30000 + 47104, 16);
    /* The engine is stopped by the guest; Interrupt is write-1-clear. */
    bm_stop(t, BM_PRI);
    outb(t, BM_PRI + 2, BM_INT);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, 0);
    dma_close(d);
}

static void test_write(void)
{
    DMA *d = dma_open("write.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    prd_put(t, TABLE, 0x10000, 4096, false);
    prd_put(t, TABLE + 8, 0x40000, 0, true);        /* 64 KiB */
    fill_for_write(d, 0x10000, 100 * 512, 4096, 5);
    fill_for_write(d, 0x40000, 108 * 512, 65536, 5);
    dma_go(d, 0xCA, 100, 8 + 128);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_INT);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    dma_close(d);
}

static void test_start_before_command(void)
{
    DMA *d = dma_open("order.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    prd_put(t, TABLE, 0x8000, 1024, true);
    bm_setup(t, BM_PRI, TABLE, true);
    bm_start(t, BM_PRI, true);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ACTIVE);
    dma_cmd(d, 0xC8, 50, 2);
    idet_run(t);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_INT);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    check_image_at(d, 0x8000, 50 * 512, 1024);
    /* The Start bit is still set; a new command starts at once. */
    outb(t, BM_PRI + 2, BM_INT);
    prd_put(t, TABLE, 0x9000, 512, true);
    dma_cmd(d, 0xC8, 60, 1);
    idet_run(t);
    check_image_at(d, 0x9000, 60 * 512, 512);
    dma_close(d);
}

/* A 32 MiB READ/WRITE DMA EXT: 256 requests of 128 KiB, each 20 us +
 * 5 ns per byte of virtual time, back to back. */
static void test_large_ext(void)
{
    const uint64_t len = 32 * MiB, data = 0x100000;
    DMA *d = dma_open("large.qcow2", 34 * MiB, 34 * MiB, false);
    IDETest *t = d->t;
    for (int i = 0; i < 512; i++) {
        prd_put(t, TABLE + 8 * i, data + i * 65536ULL, 0, i == 511);
    }
    int64_t start = t->th->clock_ns;
    unsigned io = t->th->io_submitted;
    dma_go(d, 0x25, 2048, 0);               /* count 0: 65536 sectors */
    g_assert_cmpuint(t->th->io_submitted - io, ==, 256);
    g_assert_cmpint(t->th->clock_ns - start, ==,
                    256 * (20000 + 131072 * 5));
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_INT);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    check_image_at(d, data, 2048 * 512, len);
    /* Last LBA read: 2048 + 65535. */
    g_assert_cmphex(inb(t, PRI + 3), ==, (2048 + 65535) & 0xFF);
    bm_stop(t, BM_PRI);
    fill_for_write(d, data, 1024 * 512, len, 6);
    dma_go(d, 0x35, 1024, 0);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_INT);
    dma_close(d);
}

/* SFF-8038i: a table longer than the transfer leaves Active set. */
static void test_table_longer(void)
{
    DMA *d = dma_open("longer.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    prd_put(t, TABLE, 0x10000, 1024, false);
    prd_put(t, TABLE + 8, 0x20000, 4096, true);
    dma_go(d, 0xC8, 0, 4);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ACTIVE | BM_INT);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    check_image_at(d, 0x10000, 0, 1024);
    check_image_at(d, 0x20000, 1024, 1024);
    assert_ram_sentinel(d, 0x20000 + 1024, 3072);
    bm_stop(t, BM_PRI);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_INT);
    /* Ending exactly at the end of a non-EOT entry: also "longer". */
    bm_setup(t, BM_PRI, TABLE, false);
    fill_for_write(d, 0x10000, 40 * 512, 1024, 8);
    dma_go(d, 0xCA, 40, 2);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ACTIVE | BM_INT);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    dma_close(d);
}

/* A malformed table: Error + Interrupt, Active clear, the command aborted,
 * nothing read from or written to the image, RAM untouched. */
static void expect_dma_error(DMA *d, uint8_t cmd, uint64_t lba,
                             uint32_t count, uint64_t watch, uint64_t wlen)
{
    IDETest *t = d->t;
    unsigned io = t->th->io_submitted;
    unsigned irq = t->th->irq_raised[IRQ_PRI];
    dma_go(d, cmd, lba, count);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ERROR | BM_INT);
    g_assert_cmpuint(t->th->irq_raised[IRQ_PRI], ==, irq + 1);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    g_assert_cmpuint(t->th->io_submitted, ==, io);
    if (wlen) {
        assert_ram_sentinel(d, watch, wlen);
    }
    bm_stop(t, BM_PRI);
    /* The drive is usable right after. */
    ata_regs28(t, PRI, 0, 0, 1);
    ata_cmd(t, PRI, 0x40);
    assert_st(t, PRI, ST_OK, 0);
}

static void test_table_shorter(void)
{
    DMA *d = dma_open("shorter.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    prd_put(t, TABLE, 0x10000, 1024, false);
    prd_put(t, TABLE + 8, 0x20000, 1024, true);
    expect_dma_error(d, 0xC8, 0, 5, 0x10000, 1024);
    assert_ram_sentinel(d, 0x20000, 1024);
    pattern_fill(ram(d, 0x10000), 1024, 3, 0);
    pattern_fill(ram(d, 0x20000), 1024, 3, 0);
    expect_dma_error(d, 0xCA, 0, 5, 0, 0);
    dma_close(d);
}

static void test_region_outside_ram(void)
{
    const uint64_t size = 1 * MiB;
    DMA *d = dma_open("outside.qcow2", 1 * MiB, size, false);
    IDETest *t = d->t;
    /* Straddling the end of RAM. */
    prd_put(t, TABLE, 0x10000, 512, false);
    prd_put(t, TABLE + 8, size - 512, 1024, true);
    expect_dma_error(d, 0xC8, 0, 3, 0x10000, 512);
    assert_ram_sentinel(d, size - 512, 512);
    expect_dma_error(d, 0xCA, 0, 3, 0, 0);
    /* Far beyond RAM. */
    prd_put(t, TABLE, 0xFFFF0000, 0, true);
    expect_dma_error(d, 0xC8, 0, 128, 0, 0);
    expect_dma_error(d, 0xCA, 0, 128, 0, 0);
    prd_put(t, TABLE, 0x80000000, 512, true);
    expect_dma_error(d, 0xC8, 0, 1, 0, 0);
    dma_close(d);
}

static void test_region_malformed(void)
{
    DMA *d = dma_open("malformed.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    /* Crossing a 64 KiB boundary. */
    prd_put(t, TABLE, 0x1FF00, 0x200, true);
    expect_dma_error(d, 0xC8, 0, 1, 0x1FF00, 0x200);
    expect_dma_error(d, 0xCA, 0, 1, 0, 0);
    /* Count 0 (64 KiB) must start on a 64 KiB boundary. */
    prd_put(t, TABLE, 0x20200, 0, true);
    expect_dma_error(d, 0xC8, 0, 128, 0x20200, 0x1000);
    /* Odd address, odd count. */
    prd_put(t, TABLE, 0x30001, 512, true);
    expect_dma_error(d, 0xC8, 0, 1, 0x30000, 0x400);
    prd_put(t, TABLE, 0x30000, 511, false);
    prd_put(t, TABLE + 8, 0x31000, 1, true);
    expect_dma_error(d, 0xC8, 0, 1, 0x30000, 0x1100);
    /* A bad entry after the transfer's end is never looked at. */
    prd_put(t, TABLE, 0x30000, 512, false);
    prd_put(t, TABLE + 8, 0x1FF00, 0x200, true);
    dma_go(d, 0xC8, 7, 1);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ACTIVE | BM_INT);
    check_image_at(d, 0x30000, 7 * 512, 512);
    dma_close(d);
}

static void test_table_malformed(void)
{
    const uint64_t size = 1 * MiB;
    DMA *d = dma_open("table.qcow2", 1 * MiB, size, false);
    IDETest *t = d->t;
    unsigned io = t->th->io_submitted;
    /* The table itself outside RAM. */
    bm_setup(t, BM_PRI, size, true);
    dma_cmd(d, 0xC8, 0, 1);
    bm_start(t, BM_PRI, true);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ERROR | BM_INT);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    bm_stop(t, BM_PRI);
    /* Its last entry half outside RAM. */
    bm_setup(t, BM_PRI, size - 4, true);
    dma_cmd(d, 0xC8, 0, 1);
    bm_start(t, BM_PRI, true);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ERROR | BM_INT);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    bm_stop(t, BM_PRI);
    /* Running past its 64 KiB page (no EOT before 0x20000). */
    for (uint64_t a = 0x1FFF0; a < 0x20000; a += 8) {
        prd_put(t, a, 0x40000 + (a - 0x1FFF0) * 64, 512, false);
    }
    prd_put(t, 0x20000, 0x50000, 512, true);
    bm_setup(t, BM_PRI, 0x1FFF0, true);
    dma_cmd(d, 0xC8, 0, 3);
    bm_start(t, BM_PRI, true);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ERROR | BM_INT);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    assert_ram_sentinel(d, 0x40000, 0x10000);
    bm_stop(t, BM_PRI);
    g_assert_cmpuint(t->th->io_submitted, ==, io);
    /* The address register drops bits 1:0: the table is always aligned. */
    prd_put(t, 0x2000, 0x60000, 512, true);
    bm_setup(t, BM_PRI, 0x2003, true);
    g_assert_cmphex(inl(t, BM_PRI + 4), ==, 0x2000);
    dma_cmd(d, 0xC8, 9, 1);
    bm_start(t, BM_PRI, true);
    idet_run(t);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_INT);
    check_image_at(d, 0x60000, 9 * 512, 512);
    dma_close(d);
}

static void test_direction_mismatch(void)
{
    DMA *d = dma_open("dir.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    prd_put(t, TABLE, 0x10000, 512, true);
    for (int i = 0; i < 2; i++) {
        uint8_t cmd = i ? 0xCA : 0xC8;
        bm_setup(t, BM_PRI, TABLE, !is_read(cmd));
        dma_cmd(d, cmd, 0, 1);
        bm_start(t, BM_PRI, !is_read(cmd));
        g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ERROR | BM_INT);
        assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
        assert_ram_sentinel(d, 0x10000, 512);
        bm_stop(t, BM_PRI);
    }
    g_assert_cmpuint(t->th->io_submitted, ==, 0);
    dma_close(d);
}

/* A table rewritten while the transfer runs is walked again per chunk. */
static void test_table_rewritten(void)
{
    DMA *d = dma_open("rewrite.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    prd_put(t, TABLE, 0x20000, 0, false);
    prd_put(t, TABLE + 8, 0x30000, 0, false);
    prd_put(t, TABLE + 16, 0x40000, 0, true);
    bm_setup(t, BM_PRI, TABLE, true);
    dma_cmd(d, 0x25, 0, 384);               /* 3 x 64 KiB: 2 requests */
    bm_start(t, BM_PRI, true);
    g_assert_true(test_host_step(t->th));   /* first 128 KiB */
    check_image_at(d, 0x20000, 0, 131072);
    prd_put(t, TABLE + 16, 0xFFFF0000, 0, true);
    idet_run(t);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ERROR | BM_INT);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    assert_ram_sentinel(d, 0x40000, 0x10000);
    dma_close(d);
}

/* ---- stopping ---- */

static void test_stop_mid_transfer(void)
{
    DMA *d = dma_open("stop.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    prd_put(t, TABLE, 0x20000, 0, false);
    prd_put(t, TABLE + 8, 0x30000, 0, false);
    prd_put(t, TABLE + 16, 0x40000, 0, false);
    prd_put(t, TABLE + 24, 0x50000, 0, true);
    bm_setup(t, BM_PRI, TABLE, true);
    dma_cmd(d, 0x25, 0, 512);               /* 256 KiB: 2 requests */
    bm_start(t, BM_PRI, true);
    g_assert_true(test_host_step(t->th));
    g_assert_cmpuint(ide_in_flight(t->c), ==, 1);
    unsigned irq = t->th->irq_raised[IRQ_PRI];
    bm_stop(t, BM_PRI);
    g_assert_cmpuint(t->th->irq_raised[IRQ_PRI], ==, irq + 1);
    g_assert_cmphex(bm_status(t, BM_PRI) & BM_ACTIVE, ==, 0);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    g_assert_cmpuint(ide_in_flight(t->c), ==, 0);
    check_image_at(d, 0x20000, 0, 131072);
    assert_ram_sentinel(d, 0x40000, 131072);   /* second chunk dropped */
    /* Writes: the first chunk is done when Start is cleared, the second
     * already submitted (it lands), a third would never start. */
    bm_setup(t, BM_PRI, TABLE, false);
    prd_put(t, TABLE + 24, 0x50000, 0, false);
    prd_put(t, TABLE + 32, 0x60000, 0, false);
    prd_put(t, TABLE + 40, 0x70000, 0, true);
    fill_for_write(d, 0x20000, 0, 4 * 65536, 4);
    pattern_fill(ram(d, 0x60000), 2 * 65536, 4, 4 * 65536);
    dma_cmd(d, 0x35, 0, 768);
    bm_start(t, BM_PRI, false);
    g_assert_true(test_host_step(t->th));
    g_assert_cmpuint(ide_in_flight(t->c), ==, 1);
    bm_stop(t, BM_PRI);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    g_assert_cmpuint(ide_in_flight(t->c), ==, 0);
    /* Stop after the end changes nothing. */
    prd_put(t, TABLE, 0x20000, 512, true);
    dma_go(d, 0xC8, 3, 1);
    bm_stop(t, BM_PRI);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    dma_close(d);
}

static void test_srst_mid_dma(void)
{
    DMA *d = dma_open("srst.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    prd_put(t, TABLE, 0x20000, 2048, true);
    unsigned irq = t->th->irq_raised[IRQ_PRI];
    bm_setup(t, BM_PRI, TABLE, true);
    dma_cmd(d, 0xC8, 0, 4);
    bm_start(t, BM_PRI, true);
    g_assert_cmpuint(ide_in_flight(t->c), ==, 1);
    outb(t, PRI_CTL, 0x04);
    outb(t, PRI_CTL, 0x00);
    idet_run(t);
    g_assert_cmpuint(t->th->irq_raised[IRQ_PRI], ==, irq);
    assert_ram_sentinel(d, 0x20000, 2048);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ACTIVE);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    bm_stop(t, BM_PRI);
    /* A DMA command waiting for the engine, then SRST: Start later does
     * nothing. */
    bm_setup(t, BM_PRI, TABLE, true);
    dma_cmd(d, 0xC8, 0, 4);
    outb(t, PRI_CTL, 0x04);
    outb(t, PRI_CTL, 0x00);
    bm_start(t, BM_PRI, true);
    idet_run(t);
    assert_ram_sentinel(d, 0x20000, 2048);
    g_assert_cmpuint(t->th->io_submitted, ==, 1);
    dma_close(d);
}

/* A new command while a DMA command waits for Start replaces it. */
static void test_command_while_waiting(void)
{
    DMA *d = dma_open("waiting.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    prd_put(t, TABLE, 0x20000, 512, true);
    bm_setup(t, BM_PRI, TABLE, true);
    dma_cmd(d, 0xC8, 0, 1);
    ata_cmd(t, PRI, 0xE5);
    assert_st(t, PRI, ST_OK, 0);
    bm_start(t, BM_PRI, true);
    idet_run(t);
    assert_ram_sentinel(d, 0x20000, 512);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ACTIVE | BM_INT);
    dma_close(d);
}

/* ---- errors, write-through ---- */

static void test_read_error(void)
{
    DMA *d = dma_open("rerr.qcow2", 1 * MiB, 1 * MiB, true);
    IDETest *t = d->t;
    blkdebug_fail(d->dbg, BLKDBG_OP_READ, EIO, false);
    prd_put(t, TABLE, 0x20000, 1024, true);
    dma_go(d, 0xC8, 20, 2);
    /* A device error, not a bus-master one. */
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ACTIVE | BM_INT);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_UNC);
    g_assert_cmpuint(inb(t, PRI + 3), ==, 20);
    assert_ram_sentinel(d, 0x20000, 1024);
    bm_stop(t, BM_PRI);
    blkdebug_clear_rules(d->dbg);
    blkdebug_fail(d->dbg, BLKDBG_OP_WRITE, EIO, false);
    bm_setup(t, BM_PRI, TABLE, false);
    dma_go(d, 0xCA, 20, 2);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    blkdebug_clear_rules(d->dbg);
    dma_close(d);
}

static void test_write_through(void)
{
    DMA *d = dma_open("wt.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    ata_select(t, PRI, 0);
    ata_feature(t, PRI, 0x82);
    ata_cmd(t, PRI, 0xEF);
    assert_st(t, PRI, ST_OK, 0);
    prd_put(t, TABLE, 0x20000, 0, false);
    prd_put(t, TABLE + 8, 0x30000, 0, false);
    prd_put(t, TABLE + 16, 0x40000, 0, true);
    fill_for_write(d, 0x20000, 0, 3 * 65536, 12);
    unsigned io = t->th->io_submitted;
    dma_go(d, 0x35, 0, 384);
    g_assert_cmpuint(t->th->io_submitted - io, ==, 3);  /* 2 + flush */
    assert_st(t, PRI, ST_OK, 0);
    /* Start cleared while the flush runs: the data is all moved, the
     * command completes normally. */
    fill_for_write(d, 0x20000, 512 * 512, 3 * 65536, 13);
    bm_setup(t, BM_PRI, TABLE, false);
    dma_cmd(d, 0x35, 512, 384);
    bm_start(t, BM_PRI, false);
    g_assert_true(test_host_step(t->th));
    g_assert_true(test_host_step(t->th));
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_INT);  /* table used up */
    g_assert_cmphex(inb(t, PRI_CTL) & ST_BSY, ==, ST_BSY);
    bm_stop(t, BM_PRI);
    assert_st(t, PRI, ST_OK, 0);
    dma_close(d);
}

/* ---- registers, second channel, two drives ---- */

static void test_registers(void)
{
    DMA *d = dma_open("regs.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    for (int c = 0; c < 2; c++) {
        uint32_t bm = c ? BM_SEC : BM_PRI;
        g_assert_cmphex(inb(t, bm), ==, 0);
        g_assert_cmphex(inb(t, bm + 2), ==, 0);
        outl(t, bm + 4, 0x12345677);
        g_assert_cmphex(inl(t, bm + 4), ==, 0x12345674);
        outb(t, bm + 5, 0xAB);
        g_assert_cmphex(inl(t, bm + 4), ==, 0x1234AB74);
        outw(t, bm + 6, 0xCDEF);
        g_assert_cmphex(inl(t, bm + 4), ==, 0xCDEFAB74);
        g_assert_cmphex(inb(t, bm + 1), ==, 0);
        g_assert_cmphex(inb(t, bm + 3), ==, 0);
        /* Drive DMA-capable bits are plain storage; bit 7 reads 0. */
        outb(t, bm + 2, 0xE0);
        g_assert_cmphex(inb(t, bm + 2), ==, 0x60);
        outb(t, bm + 2, 0x00);
        g_assert_cmphex(inb(t, bm + 2), ==, 0x00);
        /* Direction is latched while running. */
        outb(t, bm, 0x09);
        g_assert_cmphex(inb(t, bm + 2) & BM_ACTIVE, ==, BM_ACTIVE);
        outb(t, bm, 0x01);
        g_assert_cmphex(inb(t, bm), ==, 0x09);
        outb(t, bm, 0x00);
        g_assert_cmphex(inb(t, bm), ==, 0x08);
        g_assert_cmphex(inb(t, bm + 2) & BM_ACTIVE, ==, 0);
        outb(t, bm, 0xF6);          /* reserved bits ignored */
        g_assert_cmphex(inb(t, bm), ==, 0x00);
        outl(t, bm + 4, 0);
    }
    /* The channels' registers are separate. */
    outl(t, BM_PRI + 4, 0x1000);
    g_assert_cmphex(inl(t, BM_SEC + 4), ==, 0);
    /* Error and Interrupt are write-1-to-clear. */
    prd_put(t, TABLE, 0xFFFF0000, 512, true);
    dma_go(d, 0xC8, 0, 1);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ERROR | BM_INT);
    outb(t, BM_PRI + 2, BM_ERROR);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_INT);
    outb(t, BM_PRI + 2, BM_INT | 0x60);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, 0x60);
    bm_stop(t, BM_PRI);
    /* A hardware reset clears the engine. */
    ide_reset(t->c);
    g_assert_cmphex(inl(t, BM_PRI + 4), ==, 0);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, 0);
    dma_close(d);
}

/* Two disks on the secondary channel: its own ports, IRQ 15, and only one
 * device may hold the engine. */
static void test_secondary_two_drives(void)
{
    DMA *d = dma_open("sec0.qcow2", 1 * MiB, 1 * MiB, false);
    IDETest *t = d->t;
    g_autofree char *p1 = raw_image("sec1.raw", 1 * MiB, 7);
    XblkDisk *b1 = raw_disk_open(p1, "hd1", true);
    IDEDriveConfig c0 = idet_config(IDE_DRIVE_HD, d->disk, "ide1-hd0");
    IDEDriveConfig c1 = idet_config(IDE_DRIVE_HD, b1, "ide1-hd1");
    GError *err = NULL;
    g_assert_false(ide_attach(t->c, 0, &c0, &err));    /* in use */
    g_clear_error(&err);
    g_assert_false(ide_attach(t->c, 4, &c0, &err));
    g_clear_error(&err);
    idet_attach(t, 2, &c0);
    idet_attach(t, 3, &c1);
    prd_put(t, TABLE, 0x20000, 1024, true);
    bm_setup(t, BM_SEC, TABLE, true);
    ata_regs28(t, SEC, 1, 4, 2);
    ata_cmd(t, SEC, 0xC8);
    /* Device 0 asks too: refused while device 1 holds the engine. */
    ata_regs28(t, SEC, 0, 4, 2);
    ata_cmd(t, SEC, 0xC8);
    g_assert_cmphex(ata_status(t, SEC), ==, ST_OK | ST_ERR);
    g_assert_cmphex(ata_error(t, SEC), ==, ER_ABRT);
    ata_select(t, SEC, 1);
    bm_start(t, BM_SEC, true);
    idet_run(t);
    g_assert_cmpuint(t->th->irq_raised[IRQ_SEC], >=, 1);
    g_assert_cmphex(bm_status(t, BM_SEC), ==, BM_INT);
    g_assert_cmphex(ata_status(t, SEC), ==, ST_OK);
    uint8_t want[1024];
    pattern_fill(want, 1024, 7, 4 * 512);
    g_assert_cmpmem(ram(d, 0x20000), 1024, want, 1024);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, 0);
    g_assert_cmpuint(t->th->irq_raised[IRQ_PRI], ==, 0);
    idet_free(t);
    d->t = idet_new(1 << 20);
    xblk_disk_close(b1);
    g_unlink(p1);
    dma_close(d);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir_setup_in_memory();
    idet_engine_start();
    g_test_add_func("/bmdma/read", test_read);
    g_test_add_func("/bmdma/write", test_write);
    g_test_add_func("/bmdma/start-before-command",
                    test_start_before_command);
    g_test_add_func("/bmdma/large-ext", test_large_ext);
    g_test_add_func("/bmdma/table-longer", test_table_longer);
    g_test_add_func("/bmdma/table-shorter", test_table_shorter);
    g_test_add_func("/bmdma/region-outside-ram", test_region_outside_ram);
    g_test_add_func("/bmdma/region-malformed", test_region_malformed);
    g_test_add_func("/bmdma/table-malformed", test_table_malformed);
    g_test_add_func("/bmdma/direction-mismatch", test_direction_mismatch);
    g_test_add_func("/bmdma/table-rewritten", test_table_rewritten);
    g_test_add_func("/bmdma/stop-mid-transfer", test_stop_mid_transfer);
    g_test_add_func("/bmdma/srst-mid-dma", test_srst_mid_dma);
    g_test_add_func("/bmdma/command-while-waiting",
                    test_command_while_waiting);
    g_test_add_func("/bmdma/read-error", test_read_error);
    g_test_add_func("/bmdma/write-through", test_write_through);
    g_test_add_func("/bmdma/registers", test_registers);
    g_test_add_func("/bmdma/secondary-two-drives",
                    test_secondary_two_drives);
    int ret = g_test_run();
    idet_engine_stop();
    test_dir_cleanup();
    return ret;
}
