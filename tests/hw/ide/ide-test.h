/*
 * ide-test.h - shared helpers of the IDE controller tests (test-ide.c,
 * test-atapi.c, test-bmdma.c, test-ide-fuzz.c): a TestHost with the
 * controller on it, images in a temporary folder opened as libxblk disks
 * (XblkDisk, on the process's one XblkEngine), port accessors, task-file
 * programming and status checks, PRD tables in guest RAM, and the real
 * qemu-img / qemu-io checks of images.
 *
 * The engine runs on GLib's default context, the one the TestHost
 * iterates; a test program calls idet_engine_start() before its tests and
 * idet_engine_stop() after them.
 *
 * What the public API has no call for comes from the engine's own
 * headers: creating a qcow2 image (img_create, tests/block/image-test.h),
 * the blkdebug filter's run-time rules (block/blkdebug.h, on the node
 * found by its node-name) and bdrv_check on an open node (check_node).
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

static inline IDEDriveConfig idet_config(IDEDriveKind kind, XblkDisk *disk,
                                         const char *id)
{
    return (IDEDriveConfig) {
        .kind = kind, .disk = disk, .id = id,
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

/* ---- the engine and its disks ---- */

static XblkEngine *idet_engine;

/* The process's engine, on GLib's default context (TestHost.loop). */
static inline void idet_engine_start(void)
{
    XblkEngineOptions o = { .size = sizeof(o),
                            .glib_context = g_main_context_default() };
    XblkError *err = NULL;
    idet_engine = xblk_engine_new(&o, &err);
    if (!idet_engine) {
        g_error("xblk_engine_new: %s", xblk_error_message(err));
    }
}

static inline void idet_engine_stop(void)
{
    xblk_engine_free(idet_engine);
    idet_engine = NULL;
}

/* path as the value of a key=value option (commas doubled); caller frees. */
static inline char *opt_escape(const char *path)
{
    GString *s = g_string_new(NULL);
    for (const char *p = path; *p; p++) {
        g_string_append_c(s, *p);
        if (*p == ',') {
            g_string_append_c(s, ',');
        }
    }
    return g_string_free(s, FALSE);
}

/* xblk_disk_open() of -blockdev options (printf format). */
static inline XblkDisk *idet_disk_open(const char *fmt, ...)
    G_GNUC_PRINTF(1, 2);
static inline XblkDisk *idet_disk_open(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *opts = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    XblkError *err = NULL;
    XblkDisk *d = xblk_disk_open(idet_engine, opts, &err);
    if (!d) {
        g_error("xblk_disk_open(%s): %s", opts, xblk_error_message(err));
    }
    return d;
}

/* A raw image as disk node, read-only unless writable. */
static inline XblkDisk *raw_disk_open(const char *path, const char *node,
                                      bool writable)
{
    g_autofree char *p = opt_escape(path);
    return idet_disk_open("driver=raw,node-name=%s,read-only=%s,"
                          "file.driver=file,file.filename=%s",
                          node, writable ? "off" : "on", p);
}

/* A qcow2 image as disk node, read-write with discard=unmap; with dbg,
 * through a blkdebug filter named dbg. */
static inline XblkDisk *qcow2_disk_open(const char *path, const char *node,
                                        const char *dbg)
{
    g_autofree char *p = opt_escape(path);
    if (dbg) {
        return idet_disk_open("driver=qcow2,node-name=%s,discard=unmap,"
                              "file.driver=blkdebug,file.node-name=%s,"
                              "file.file.driver=file,file.file.filename=%s",
                              node, dbg, p);
    }
    return idet_disk_open("driver=qcow2,node-name=%s,discard=unmap,"
                          "file.driver=file,file.filename=%s", node, p);
}

typedef struct DiskSyncIO {
    bool done;
    int ret;
} DiskSyncIO;

static void disk_sync_done(void *opaque, int ret)
{
    DiskSyncIO *io = opaque;
    io->ret = ret;
    io->done = true;
}

/* A read or write of the disk, waited for (xblk_disk_drain); returns 0 or
 * the request's negative errno. */
static inline int disk_rw(XblkDisk *d, bool write, uint64_t off, void *buf,
                          size_t len)
{
    DiskSyncIO io = { 0 };
    XblkError *err = NULL;
    bool ok = write ? xblk_disk_write(d, off, buf, len, disk_sync_done, &io,
                                      &err)
                    : xblk_disk_read(d, off, buf, len, disk_sync_done, &io,
                                     &err);
    if (!ok) {
        g_error("xblk_disk_%s(%s): %s", write ? "write" : "read",
                xblk_disk_name(d), xblk_error_message(err));
    }
    xblk_disk_drain(d);
    g_assert_true(io.done);
    return io.ret;
}

static inline int disk_pread(XblkDisk *d, uint64_t off, void *buf,
                             size_t len)
{
    return disk_rw(d, false, off, buf, len);
}

static inline int disk_pwrite(XblkDisk *d, uint64_t off, const void *buf,
                              size_t len)
{
    return disk_rw(d, true, off, (void *)buf, len);
}

/* A new qcow2 image (the engine's image creation: the API has none)
 * opened as disk node (see qcow2_disk_open), with the pattern of seed in
 * its first fill bytes; the model m (if given) receives the same. */
static inline XblkDisk *qcow2_image(const char *path, const char *node,
                                    const char *dbg, uint64_t size,
                                    uint64_t fill, uint32_t seed, Model *m)
{
    img_create(path, size, NULL);
    XblkDisk *d = qcow2_disk_open(path, node, dbg);
    for (uint64_t off = 0; off < fill; off += 1 << 20) {
        uint64_t n = MIN(1 << 20, fill - off);
        uint8_t *buf = g_malloc(n);
        pattern_fill(buf, n, seed, off);
        g_assert_cmpint(disk_pwrite(d, off, buf, n), ==, 0);
        if (m) {
            memcpy(m->data + off, buf, n);
        }
        g_free(buf);
    }
    return d;
}

/* The blkdebug filter named dbg (qcow2_disk_open): its rules are changed
 * at run time through the engine (block/blkdebug.h). */
static inline BlockDriverState *blkdebug_node(const char *dbg)
{
    BlockDriverState *bs = bdrv_find_node(dbg);
    g_assert_nonnull(bs);
    g_assert_cmpstr(bdrv_get_format_name(bs), ==, "blkdebug");
    return bs;
}

/* bdrv_check on the disk's open root node (the API has no check). */
static inline void check_disk_node(XblkDisk *d, bool allow_leaks)
{
    BlockDriverState *bs = bdrv_find_node(xblk_disk_name(d));
    g_assert_nonnull(bs);
    check_node(bs, allow_leaks);
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
