/*
 * image-test.h - shared helpers of the block unit tests (test-qcow2.c,
 * test-blkdebug.c): temporary folders, creating and opening images,
 * deterministic data patterns, an in-memory model of the guest disk to
 * compare against, and the two consistency checks every scenario ends
 * with - bdrv_check() on the open node and the real `qemu-img check`.
 *
 * Everything here asserts: a helper that returns has succeeded.
 */
#ifndef XBLK_TESTS_BLOCK_IMAGE_TEST_H
#define XBLK_TESTS_BLOCK_IMAGE_TEST_H

#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/snapshot.h"
#include "block/vmstate.h"
#include "util/main-loop.h"
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>
#include <string.h>

/* ---- temporary folder ---- */

static char *test_dir;

static inline void test_dir_setup(void)
{
    GError *err = NULL;
    test_dir = g_dir_make_tmp("xblk-test-XXXXXX", &err);
    g_assert_no_error(err);
}

/* A folder in memory (/dev/shm) when the host's durability does not
 * matter to the test and many images are made: no real fdatasync. */
static inline void test_dir_setup_in_memory(void)
{
    char tmpl[] = "/dev/shm/xblk-test-XXXXXX";
    if (g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) && g_mkdtemp(tmpl)) {
        test_dir = g_strdup(tmpl);
        return;
    }
    test_dir_setup();
}

static inline void test_dir_cleanup(void)
{
    GDir *d = g_dir_open(test_dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(test_dir, name, NULL);
        g_unlink(p);
    }
    if (d) {
        g_dir_close(d);
    }
    g_rmdir(test_dir);
    g_clear_pointer(&test_dir, g_free);
}

/* A path in the test folder (caller frees). */
static inline char *test_path(const char *name)
{
    return g_build_filename(test_dir, name, NULL);
}

/* ---- images ---- */

/* Creates a qcow2 image; opts is "k=v,k=v" in qemu-img -o syntax. */
static inline void img_create(const char *path, uint64_t size,
                              const char *opts)
{
    g_autoptr(BlockOpts) o = bopts_new();
    GError *err = NULL;
    if (opts) {
        g_assert_true(bopts_parse(o, opts, &err));
        g_assert_no_error(err);
    }
    if (size) {
        g_autofree char *sz = g_strdup_printf("%" G_GUINT64_FORMAT, size);
        bopts_set(o, "size", sz);
    }
    int ret = bdrv_create("qcow2", path, o, &err);
    g_assert_no_error(err);
    g_assert_cmpint(ret, ==, 0);
}

/* Opens path read-write with discard=unmap plus extra "k=v,..." options;
 * returns NULL (with *errp set) only when errp is given. */
static inline BlockBackend *img_open_opts(const char *path, const char *extra,
                                          GError **errp)
{
    BlockOpts *o = bopts_new();
    GError *err = NULL;
    bopts_set(o, "discard", "unmap");
    if (extra) {
        g_assert_true(bopts_parse(o, extra, &err));
    }
    if (!bopts_get(o, "driver")) {
        bopts_set(o, "driver", "qcow2");
    }
    BlockBackend *blk = blk_new_open(path, o, BDRV_O_RDWR, &err);
    if (!blk && errp) {
        g_propagate_error(errp, err);
        return NULL;
    }
    g_assert_no_error(err);
    g_assert_nonnull(blk);
    return blk;
}

static inline BlockBackend *img_open(const char *path)
{
    return img_open_opts(path, NULL, NULL);
}

/* Reads a big-endian header field straight from the image file. */
static inline uint64_t img_header_field(const char *path, int offset,
                                        int bytes)
{
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    g_assert_cmpuint(len, >=, (gsize)(offset + bytes));
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v = v << 8 | (uint8_t)data[offset + i];
    }
    return v;
}

static inline uint64_t file_size(const char *path)
{
    GStatBuf st;
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    return st.st_size;
}

/* ---- data ---- */

/* A byte that depends on the seed and on the guest offset, so that data
 * in the wrong place or from the wrong write is caught. */
static inline uint8_t pattern_byte(uint32_t seed, uint64_t off)
{
    uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ULL ^
                 (uint64_t)seed * 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return (uint8_t)(x ^ (x >> 17));
}

static inline void pattern_fill(uint8_t *buf, uint64_t len, uint32_t seed,
                                uint64_t guest_off)
{
    for (uint64_t i = 0; i < len; i++) {
        buf[i] = pattern_byte(seed, guest_off + i);
    }
}

/* Highly compressible but still offset-dependent data. */
static inline void compressible_fill(uint8_t *buf, uint64_t len,
                                     uint32_t seed, uint64_t guest_off)
{
    for (uint64_t i = 0; i < len; i++) {
        uint64_t o = guest_off + i;
        buf[i] = (o % 512) < 8 ? pattern_byte(seed, o / 512) : (uint8_t)seed;
    }
}

/* ---- the model: what the guest disk must contain ---- */

typedef struct Model {
    uint8_t *data;
    uint64_t size;
} Model;

static inline Model *model_new(uint64_t size)
{
    Model *m = g_new0(Model, 1);
    m->data = g_malloc0(size);
    m->size = size;
    return m;
}

static inline void model_free(Model *m)
{
    if (m) {
        g_free(m->data);
        g_free(m);
    }
}

static inline Model *model_copy(const Model *m)
{
    Model *c = model_new(m->size);
    memcpy(c->data, m->data, m->size);
    return c;
}

static inline void model_resize(Model *m, uint64_t size)
{
    m->data = g_realloc(m->data, size);
    if (size > m->size) {
        memset(m->data + m->size, 0, size - m->size);
    }
    m->size = size;
}

/* Writes buf through blk and into the model; asserts success. */
static inline void write_both(BlockBackend *blk, Model *m, uint64_t off,
                              uint64_t len, const uint8_t *buf,
                              BdrvRequestFlags flags)
{
    int ret = blk_pwrite(blk, off, len, buf, flags);
    g_assert_cmpint(ret, ==, 0);
    memcpy(m->data + off, buf, len);
}

static inline void write_pattern(BlockBackend *blk, Model *m, uint64_t off,
                                 uint64_t len, uint32_t seed)
{
    uint8_t *buf = g_malloc(len);
    pattern_fill(buf, len, seed, off);
    write_both(blk, m, off, len, buf, 0);
    g_free(buf);
}

static inline void zero_both(BlockBackend *blk, Model *m, uint64_t off,
                             uint64_t len, BdrvRequestFlags flags)
{
    g_assert_cmpint(blk_pwrite_zeroes(blk, off, len, flags), ==, 0);
    memset(m->data + off, 0, len);
}

/* Finds the first differing byte, for a readable failure message. */
static inline void assert_same_bytes(const uint8_t *got, const uint8_t *want,
                                     uint64_t len, uint64_t base,
                                     const char *what)
{
    if (memcmp(got, want, len) == 0) {
        return;
    }
    for (uint64_t i = 0; i < len; i++) {
        if (got[i] != want[i]) {
            g_error("%s: byte at guest offset %" G_GUINT64_FORMAT " is %#x, "
                    "expected %#x", what, base + i, got[i], want[i]);
        }
    }
}

/* Reads the whole disk through blk and compares it with the model. */
static inline void verify_model(BlockBackend *blk, const Model *m)
{
    const uint64_t chunk = 1 << 20;
    g_assert_cmpint(blk_getlength(blk), ==, (int64_t)m->size);
    uint8_t *buf = g_malloc(chunk);
    for (uint64_t off = 0; off < m->size; off += chunk) {
        uint64_t n = MIN(chunk, m->size - off);
        memset(buf, 0xa5, n);
        g_assert_cmpint(blk_pread(blk, off, n, buf), ==, 0);
        assert_same_bytes(buf, m->data + off, n, off, "read back");
    }
    g_free(buf);
}

static inline void verify_range(BlockBackend *blk, const Model *m,
                                uint64_t off, uint64_t len)
{
    uint8_t *buf = g_malloc(len);
    g_assert_cmpint(blk_pread(blk, off, len, buf), ==, 0);
    assert_same_bytes(buf, m->data + off, len, off, "read back");
    g_free(buf);
}

/* ---- consistency checks ---- */

/* bdrv_check on the open node: no corruption, no check errors, and no
 * leaks unless allowed. */
static inline void check_node(BlockDriverState *bs, bool allow_leaks)
{
    BdrvCheckResult res = { .log = g_string_new(NULL) };
    int ret = bdrv_check(bs, &res, 0);
    if (ret < 0 || res.corruptions || res.check_errors ||
        (res.leaks && !allow_leaks)) {
        g_error("bdrv_check: ret %d, %d corruptions, %d leaks, %d check "
                "errors:\n%s", ret, res.corruptions, res.leaks,
                res.check_errors, res.log->str);
    }
    bdrv_check_result_clear(&res);
}

static inline void check_blk(BlockBackend *blk, bool allow_leaks)
{
    check_node(blk_bs(blk), allow_leaks);
}

/* Runs argv, returns the exit status and stdout (caller frees). */
static inline int run_tool(char **argv, char **out, char **err_out)
{
    GError *err = NULL;
    int status = 0;
    char *o = NULL, *e = NULL;
    gboolean ok = g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                               NULL, &o, &e, &status, &err);
    g_assert_no_error(err);
    g_assert_true(ok);
    if (out) {
        *out = o;
    } else {
        g_free(o);
    }
    if (err_out) {
        *err_out = e;
    } else {
        g_free(e);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The real `qemu-img check` on a closed image, or on one this process
 * still has open after flushing it (-U: it does not take QEMU's image
 * locks, which the open image holds). */
static inline void qemu_check(const char *path, bool allow_leaks)
{
    char *argv[] = { "qemu-img", "check", "-U", "--output=json",
                     (char *)path, NULL };
    g_autofree char *out = NULL, *err = NULL;
    int status = run_tool(argv, &out, &err);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    if (!j || status == 1 || status == 2 || status == 63 ||
        json_integer_value(json_object_get(j, "corruptions")) ||
        json_integer_value(json_object_get(j, "check-errors")) ||
        (!allow_leaks && (status == 3 ||
                          json_integer_value(json_object_get(j, "leaks"))))) {
        g_error("qemu-img check %s: status %d\n%s%s", path, status, out, err);
    }
    json_decref(j);
}

/* Compares the image's guest contents as qemu-img sees them (following
 * backing files; optionally a snapshot) with the model. */
static inline void qemu_compare(const char *path, const char *snapshot,
                                const Model *m)
{
    g_autofree char *raw = test_path("qemu-compare.raw");
    g_autofree char *sn = snapshot ? g_strdup_printf("snapshot.name=%s",
                                                     snapshot) : NULL;
    char *argv[12];
    int n = 0;
    argv[n++] = "qemu-img";
    argv[n++] = "convert";
    argv[n++] = "-U";           /* the image may still be open (locks) */
    argv[n++] = "-O";
    argv[n++] = "raw";
    if (sn) {
        argv[n++] = "-l";
        argv[n++] = sn;
    }
    argv[n++] = (char *)path;
    argv[n++] = raw;
    argv[n] = NULL;
    g_autofree char *out = NULL, *err = NULL;
    int status = run_tool(argv, &out, &err);
    if (status != 0) {
        g_error("qemu-img convert %s: status %d\n%s%s", path, status, out,
                err);
    }
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(raw, &data, &len, NULL));
    g_unlink(raw);
    g_assert_cmpuint(len, ==, m->size);
    assert_same_bytes((uint8_t *)data, m->data, len, 0, "qemu-img's view");
}

/* Closes blk, then checks the file with both checkers; reopens it. */
static inline BlockBackend *close_check_reopen(BlockBackend *blk,
                                               const char *path,
                                               bool allow_leaks)
{
    check_blk(blk, allow_leaks);
    blk_unref(blk);
    qemu_check(path, allow_leaks);
    return img_open(path);
}

/* ---- snapshots ---- */

static inline int snapshot_create(BlockBackend *blk, const char *name,
                                  GError **errp)
{
    BdrvSnapshotInfo sn = { .name = (char *)name,
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    return bdrv_snapshot_create(blk_bs(blk), &sn, errp);
}

static inline void snapshot_create_ok(BlockBackend *blk, const char *name)
{
    GError *err = NULL;
    int ret = snapshot_create(blk, name, &err);
    g_assert_no_error(err);
    g_assert_cmpint(ret, ==, 0);
}

static inline void snapshot_apply_ok(BlockBackend *blk, const char *name)
{
    GError *err = NULL;
    int ret = bdrv_snapshot_apply(blk_bs(blk), name, &err);
    g_assert_no_error(err);
    g_assert_cmpint(ret, ==, 0);
}

static inline void snapshot_delete_ok(BlockBackend *blk, const char *name)
{
    GError *err = NULL;
    int ret = bdrv_snapshot_delete(blk_bs(blk), NULL, name, &err);
    g_assert_no_error(err);
    g_assert_cmpint(ret, ==, 0);
}

/* Names of the snapshots, joined with ',' (caller frees). */
static inline char *snapshot_names(BlockBackend *blk)
{
    BdrvSnapshotInfo *list;
    int n = bdrv_snapshot_list(blk_bs(blk), &list);
    g_assert_cmpint(n, >=, 0);
    GString *s = g_string_new(NULL);
    for (int i = 0; i < n; i++) {
        g_string_append_printf(s, "%s%s", i ? "," : "", list[i].name);
    }
    bdrv_snapshot_list_free(list, n);
    return g_string_free(s, FALSE);
}

/* ---- asynchronous requests ---- */

typedef struct AioReq {
    IOVector qiov;
    uint8_t *buf;
    uint64_t off, len;
    int id;
    int ret;
    bool done;
    int *completed;
} AioReq;

static inline void aio_req_cb(void *opaque, int ret)
{
    AioReq *r = opaque;
    g_assert_false(r->done);
    r->ret = ret;
    r->done = true;
    (*r->completed)++;
}

/* Polls the loop until *counter reaches target (10 s limit). */
static inline void poll_until_count(const int *counter, int target)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (*counter < target) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        if (!aio_poll(false)) {
            g_usleep(50);
        }
    }
}

/* ---- VM state ---- */

/* Reads the active VM state (name NULL) or a snapshot's. */
static inline uint8_t *vm_load(BlockBackend *blk, const char *name, int64_t pos,
                        int64_t len)
{
    GError *err = NULL;
    uint8_t *buf = g_malloc(MAX(len, 1));
    memset(buf, 0xa5, len);
    int ret = name ? bdrv_snapshot_load_vmstate(blk_bs(blk), name, buf, pos,
                                                len, &err)
                   : bdrv_load_vmstate(blk_bs(blk), buf, pos, len, &err);
    g_assert_no_error(err);
    g_assert_cmpint(ret, ==, 0);
    return buf;
}

/* ---- real QEMU ---- */

/* Runs qemu-system-x86_64 on path with these HMP commands; returns each
 * command's reply text (NULL-terminated array, caller frees). */
static inline char **qemu_hmp(const char *path, const char *const *cmds)
{
    GString *in = g_string_new("{\"execute\":\"qmp_capabilities\"}\n");
    for (int i = 0; cmds[i]; i++) {
        g_string_append_printf(in, "{\"execute\":\"human-monitor-command\","
                               "\"arguments\":{\"command-line\":\"%s\"},"
                               "\"id\":%d}\n", cmds[i], i);
    }
    g_string_append(in, "{\"execute\":\"quit\"}\n");
    g_autofree char *input = test_path("qmp-in");
    g_assert_true(g_file_set_contents(input, in->str, -1, NULL));
    g_string_free(in, TRUE);
    g_autofree char *drive = g_strdup_printf("file=%s,format=qcow2,if=ide",
                                             path);
    g_autofree char *sh = g_strdup_printf(
        "timeout 120 qemu-system-x86_64 -M pc -m 16 -nodefaults "
        "-display none -S -drive '%s' -qmp stdio < '%s'", drive, input);
    char *argv[] = { "sh", "-c", sh, NULL };
    g_autofree char *out = NULL, *err = NULL;
    int status = run_tool(argv, &out, &err);
    if (status != 0) {
        g_error("qemu-system-x86_64: status %d\n%s%s", status, out, err);
    }
    int n = 0;
    while (cmds[n]) {
        n++;
    }
    char **replies = g_new0(char *, n + 1);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        json_t *j = json_loads(lines[i], 0, NULL);
        json_t *id = j ? json_object_get(j, "id") : NULL;
        if (json_is_integer(id) && json_integer_value(id) < n) {
            json_t *r = json_object_get(j, "return");
            replies[json_integer_value(id)] =
                g_strdup(json_is_string(r) ? json_string_value(r) : "?");
        }
        json_decref(j);
    }
    for (int i = 0; i < n; i++) {
        g_assert_nonnull(replies[i]);
    }
    return replies;
}

#endif
