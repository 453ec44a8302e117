/*
 * ide-test.h - shared helpers of the IDE controller tests (test-ide.c,
 * test-atapi.c, test-bmdma.c, test-ide-fuzz.c): a TestHost with the
 * controller on it, images in a temporary folder, port accessors, task-file
 * programming and status checks, PRD tables in guest RAM, and the real
 * qemu-img / qemu-io checks of images.
 *
 * Header-only (static functions); each test program includes it once.
 * Everything asserts: a helper that returns has succeeded.
 */
#ifndef XBLK_TESTS_HW_IDE_IDE_TEST_H
#define XBLK_TESTS_HW_IDE_IDE_TEST_H

#include "tests/hw/devhost-test.h"
#include "tests/block/image-test.h"
#include "block/blkdebug.h"
#include "hw/ide/ide.h"

#define PRI 0x1F0
#define PRI_CTL 0x3F6
#define SEC 0x170
#define SEC_CTL 0x376
#define BM_PRI 0xFF60
#define BM_SEC 0xFF68
#define IRQ_PRI 14
#define IRQ_SEC 15

/* Status / error bits as ATA-7 names them. */
#define ST_BSY  0x80
#define ST_DRDY 0x40
#define ST_DSC  0x10
#define ST_DRQ  0x08
#define ST_ERR  0x01
#define ST_OK   0x50           /* DRDY | DSC: an ATA command done */
#define ER_UNC  0x40
#define ER_IDNF 0x10
#define ER_ABRT 0x04

#define BM_ACTIVE 0x01
#define BM_ERROR  0x02
#define BM_INT    0x04

typedef struct IDETest {
    TestHost *th;
    IDEController *c;
} IDETest;

static inline IDETest *idet_new(uint64_t ram)
{
    IDETest *t = g_new0(IDETest, 1);
    t->th = test_host_new(ram);
    t->c = ide_controller_new(&t->th->host);
    return t;
}

static inline void idet_free(IDETest *t)
{
    test_host_run(t->th);
    ide_controller_free(t->c);
    test_host_free(t->th);
    g_free(t);
}

static inline IDEDriveConfig idet_config(IDEDriveKind kind, BlockBackend *blk,
                                         const char *id)
{
    return (IDEDriveConfig) {
        .kind = kind, .blk = blk, .id = id,
        .werror = IDE_ERROR_ACTION_ENOSPC,
        .rerror = IDE_ERROR_ACTION_REPORT,
    };
}

static inline void idet_attach(IDETest *t, int index, const IDEDriveConfig *c)
{
    GError *err = NULL;
    g_assert_true(ide_attach(t->c, index, c, &err));
    g_assert_no_error(err);
}

/* ---- ports ---- */

static inline void outb(IDETest *t, uint32_t port, uint8_t v)
{
    ide_ioport_write(t->c, port, v, 1);
}

static inline void outw(IDETest *t, uint32_t port, uint16_t v)
{
    ide_ioport_write(t->c, port, v, 2);
}

static inline void outl(IDETest *t, uint32_t port, uint32_t v)
{
    ide_ioport_write(t->c, port, v, 4);
}

static inline uint8_t inb(IDETest *t, uint32_t port)
{
    return ide_ioport_read(t->c, port, 1);
}

static inline uint16_t inw(IDETest *t, uint32_t port)
{
    return ide_ioport_read(t->c, port, 2);
}

static inline uint32_t inl(IDETest *t, uint32_t port)
{
    return ide_ioport_read(t->c, port, 4);
}

/* ---- task file ---- */

static inline void ata_select(IDETest *t, uint32_t base, int unit)
{
    outb(t, base + 6, 0xE0 | unit << 4);
}

static inline void ata_regs28(IDETest *t, uint32_t base, int unit,
                              uint32_t lba, uint8_t count)
{
    outb(t, base + 6, 0xE0 | unit << 4 | ((lba >> 24) & 0x0F));
    outb(t, base + 2, count);
    outb(t, base + 3, lba);
    outb(t, base + 4, lba >> 8);
    outb(t, base + 5, lba >> 16);
}

static inline void ata_regs48(IDETest *t, uint32_t base, int unit,
                              uint64_t lba, uint16_t count)
{
    outb(t, base + 6, 0x40 | unit << 4);
    outb(t, base + 2, count >> 8);
    outb(t, base + 3, lba >> 24);
    outb(t, base + 4, lba >> 32);
    outb(t, base + 5, lba >> 40);
    outb(t, base + 2, count);
    outb(t, base + 3, lba);
    outb(t, base + 4, lba >> 8);
    outb(t, base + 5, lba >> 16);
}

static inline void ata_cmd(IDETest *t, uint32_t base, uint8_t cmd)
{
    outb(t, base + 7, cmd);
}

static inline void ata_feature(IDETest *t, uint32_t base, uint8_t f)
{
    outb(t, base + 1, f);
}

static inline uint8_t ata_status(IDETest *t, uint32_t base)
{
    return inb(t, base + 7);
}

static inline uint8_t ata_error(IDETest *t, uint32_t base)
{
    return inb(t, base + 1);
}

static inline void idet_run(IDETest *t)
{
    test_host_run(t->th);
}

/* Runs to completion, then checks Status (clearing INTRQ) and Error. */
#define assert_st(t, base, st, err) do {                                  \
        idet_run(t);                                                      \
        uint8_t st_ = ata_status(t, base);                                \
        g_assert_cmphex(st_, ==, (st));                                   \
        if (st_ & ST_ERR) {                                               \
            g_assert_cmphex(ata_error(t, base), ==, (err));               \
        }                                                                 \
    } while (0)

static inline void pio_read(IDETest *t, uint32_t base, void *buf, size_t len)
{
    uint8_t *b = buf;
    for (size_t i = 0; i < len; i += 2) {
        uint16_t w = inw(t, base);
        b[i] = w;
        b[i + 1] = w >> 8;
    }
}

static inline void pio_write(IDETest *t, uint32_t base, const void *buf,
                             size_t len)
{
    const uint8_t *b = buf;
    for (size_t i = 0; i < len; i += 2) {
        outw(t, base, b[i] | b[i + 1] << 8);
    }
}

/* Reads IDENTIFY (DEVICE or PACKET) words of the selected unit. */
static inline void ata_identify(IDETest *t, uint32_t base, int unit,
                                uint8_t cmd, uint16_t *w)
{
    uint8_t b[512];
    ata_select(t, base, unit);
    ata_cmd(t, base, cmd);
    idet_run(t);
    g_assert_cmphex(ata_status(t, base) & (ST_DRQ | ST_ERR), ==, ST_DRQ);
    pio_read(t, base, b, 512);
    for (int i = 0; i < 256; i++) {
        w[i] = b[2 * i] | b[2 * i + 1] << 8;
    }
}

/* An ATA string of IDENTIFY data, spaces trimmed (caller frees). */
static inline char *ata_string(const uint16_t *w, int first, int n)
{
    char *s = g_malloc0(2 * n + 1);
    for (int i = 0; i < n; i++) {
        s[2 * i] = w[first + i] >> 8;
        s[2 * i + 1] = w[first + i];
    }
    return g_strchomp(s);
}

/* ---- bus master ---- */

/* A PRD entry at gpa in guest RAM. */
static inline void prd_put(IDETest *t, uint64_t gpa, uint32_t addr,
                           uint32_t count, bool eot)
{
    uint8_t e[8] = {
        addr, addr >> 8, addr >> 16, addr >> 24,
        count, count >> 8, 0, eot ? 0x80 : 0,
    };
    g_assert_true(gpa + 8 <= t->th->ram_size);
    memcpy(t->th->ram + gpa, e, 8);
}

static inline void bm_setup(IDETest *t, uint32_t bm, uint32_t table,
                            bool to_ram)
{
    outb(t, bm, to_ram ? 0x08 : 0x00);
    outb(t, bm + 2, BM_ERROR | BM_INT);
    outl(t, bm + 4, table);
}

static inline void bm_start(IDETest *t, uint32_t bm, bool to_ram)
{
    outb(t, bm, (to_ram ? 0x08 : 0x00) | 0x01);
}

static inline void bm_stop(IDETest *t, uint32_t bm)
{
    outb(t, bm, inb(t, bm) & ~0x01);
}

static inline uint8_t bm_status(IDETest *t, uint32_t bm)
{
    return inb(t, bm + 2);
}

/* ---- images ---- */

/* A raw image file of size bytes filled with the pattern of seed. */
static inline char *raw_image(const char *name, uint64_t size, uint32_t seed)
{
    char *path = test_path(name);
    uint8_t *data = g_malloc(size);
    pattern_fill(data, size, seed, 0);
    g_assert_true(g_file_set_contents(path, (char *)data, size, NULL));
    g_free(data);
    return path;
}

static inline BlockBackend *raw_open(const char *path, bool writable)
{
    BlockOpts *o = bopts_new();
    GError *err = NULL;
    bopts_set(o, "driver", "raw");
    BlockBackend *blk = blk_new_open(path, o, writable ? BDRV_O_RDWR : 0,
                                     &err);
    g_assert_no_error(err);
    return blk;
}

/* A qcow2 image with the pattern of seed in its first fill bytes; the
 * model m (if given) receives the same. */
static inline BlockBackend *qcow2_image(const char *path, uint64_t size,
                                        uint64_t fill, uint32_t seed,
                                        Model *m)
{
    img_create(path, size, NULL);
    BlockBackend *blk = img_open(path);
    for (uint64_t off = 0; off < fill; off += 1 << 20) {
        uint64_t n = MIN(1 << 20, fill - off);
        uint8_t *buf = g_malloc(n);
        pattern_fill(buf, n, seed, off);
        g_assert_cmpint(blk_pwrite(blk, off, n, buf, 0), ==, 0);
        if (m) {
            memcpy(m->data + off, buf, n);
        }
        g_free(buf);
    }
    return blk;
}

/* Opens a qcow2 image through a blkdebug filter; *dbg = the filter. */
static inline BlockBackend *qcow2_open_blkdebug(const char *path,
                                                BlockDriverState **dbg)
{
    g_autofree char *o = g_strdup_printf("file.driver=blkdebug,"
                                         "file.file.filename=%s", path);
    BlockBackend *blk = img_open_opts(path, o, NULL);
    *dbg = bdrv_file_bs(blk_bs(blk));
    g_assert_cmpstr(bdrv_get_format_name(*dbg), ==, "blkdebug");
    return blk;
}

static inline void blkdebug_fail(BlockDriverState *dbg, unsigned ops,
                                 int err, bool once)
{
    BlkdebugRule r = { .ops = ops, .nth = once ? 1 : 0, .offset = -1,
                       .err = err, .once = once };
    g_assert_true(blkdebug_add_rule(dbg, &r));
}

/* `qemu-io -c 'read -P pattern off len'` on a closed image. */
static inline void qemu_io_read_pattern(const char *path, const char *fmt,
                                        uint8_t pattern, uint64_t off,
                                        uint64_t len)
{
    g_autofree char *cmd = g_strdup_printf("read -P %u %" G_GUINT64_FORMAT
                                           " %" G_GUINT64_FORMAT,
                                           pattern, off, len);
    char *argv[] = { "qemu-io", "-f", (char *)fmt, "-c", cmd, (char *)path,
                     NULL };
    g_autofree char *out = NULL, *err = NULL;
    int status = run_tool(argv, &out, &err);
    if (status != 0 || strstr(out, "fail") || strstr(out, "mismatch")) {
        g_error("qemu-io %s on %s: status %d\n%s%s", cmd, path, status, out,
                err);
    }
}

#endif
