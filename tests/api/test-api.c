/*
 * test-api.c - libxblk as a host sees it: only <xblk/xblk.h>, linked
 * against libxblk.so (GLib serves GTest and the GLib-host case).  Real
 * qcow2 files, cross-checked with the real qemu-img and qemu-io:
 *
 *   - the version calls agree with the header;
 *   - an engine on its own context, driven by poll() on xblk_engine_fd()
 *     and xblk_engine_dispatch(); one engine per process; another after
 *     the first is freed;
 *   - an engine on the host's GMainContext, iterated by the host;
 *   - disks: asynchronous writes (completions never inside the call),
 *     flush, reads; qemu-img reads what was written;
 *   - snapshot transactions over two disks: internal snapshots listed by
 *     qemu-img, revert, delete; an external snapshot's overlay backed by
 *     the old image; a failing action leaves no snapshot on any disk;
 *   - dirty bitmaps: writes counted, clear, copy and merge back, list,
 *     remove; a persistent one in the qcow2 image after close and back
 *     with its bits on reopen (qemu-img sees it), inconsistent after a
 *     crash; raw, qcow2 v2 and read-only disks refuse persistent ones;
 *   - bad input: every refusal is an XblkError with its code, and
 *     nothing changes.
 */
#include <xblk/xblk.h>
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define MiB (1024 * 1024)

static char *tmpdir;

static char *tpath(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

static char *run(const char *cmdline, int *status)
{
    char *out = NULL, *err = NULL;
    GError *gerr = NULL;
    int st = 0;
    g_assert_true(g_spawn_command_line_sync(cmdline, &out, &err, &st,
                                            &gerr));
    g_assert_no_error(gerr);
    if (status) {
        *status = g_spawn_check_wait_status(st, NULL) ? 0 :
                  (WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    } else if (!g_spawn_check_wait_status(st, NULL)) {
        g_error("%s: %s%s", cmdline, out, err);
    }
    g_free(err);
    return out;
}

static char *new_image(const char *name, const char *size)
{
    char *path = tpath(name);
    g_unlink(path);
    g_autofree char *cmd = g_strdup_printf("qemu-img create -q -f qcow2 %s "
                                           "%s", path, size);
    g_free(run(cmd, NULL));
    return path;
}

static void qemu_img_check_clean(const char *path)
{
    int st;
    g_autofree char *cmd = g_strdup_printf("qemu-img check -q %s", path);
    g_autofree char *out = run(cmd, &st);
    g_assert_cmpint(st, ==, 0);
}

static XblkDisk *open_disk(XblkEngine *e, const char *node,
                           const char *path)
{
    XblkError *err = NULL;
    g_autofree char *opts = g_strdup_printf(
        "driver=qcow2,node-name=%s,file.driver=file,file.filename=%s",
        node, path);
    XblkDisk *d = xblk_disk_open(e, opts, &err);
    g_assert_null(err);
    g_assert_nonnull(d);
    return d;
}

/* ---- driving the engine ---- */

typedef struct Waiter {
    int pending;
    int failures;
    bool in_submit;             /* a completion inside the call: a bug */
} Waiter;

static void io_done(void *opaque, int ret)
{
    Waiter *w = opaque;
    g_assert_false(w->in_submit);
    w->failures += ret != 0;
    w->pending--;
}

/* Own context: prepare, poll the engine's descriptor, dispatch, as a
 * host without GLib would. */
static void pump_fd(XblkEngine *e, Waiter *w)
{
    int fd = xblk_engine_fd(e);
    g_assert_cmpint(fd, >=, 0);
    for (int i = 0; i < 100000 && w->pending > 0; i++) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int t = xblk_engine_prepare(e);
        if (t == 0) {
            continue;               /* callbacks ran: look again */
        }
        int r = poll(&p, 1, t < 0 ? 5000 : t);
        /* No timeout: the descriptor must say when work arrives (a
         * request left unsubmitted would leave the host asleep). */
        g_assert_cmpint(r, >=, t < 0 ? 1 : 0);
        g_assert_cmpint(xblk_engine_dispatch(e), >=, 0);
    }
    g_assert_cmpint(w->pending, ==, 0);
}

static void pump_glib(GMainContext *ctx, Waiter *w)
{
    for (int i = 0; i < 100000 && w->pending > 0; i++) {
        g_main_context_iteration(ctx, TRUE);
    }
    g_assert_cmpint(w->pending, ==, 0);
}

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}

/* Writes 4 patterned MiB at 0, 3, 7 and 100 MiB, flushes. */
static void write_patterns(XblkDisk *d, uint32_t seed, Waiter *w,
                           uint8_t **bufs)
{
    static const uint64_t at[4] = { 0, 3, 7, 100 };
    for (int i = 0; i < 4; i++) {
        bufs[i] = g_malloc(MiB);
        fill(bufs[i], MiB, seed + i);
        XblkError *err = NULL;
        w->in_submit = true;
        w->pending++;
        g_assert_true(xblk_disk_write(d, at[i] * MiB, bufs[i], MiB,
                                      io_done, w, &err));
        w->in_submit = false;
        g_assert_null(err);
    }
}

static void check_patterns(XblkDisk *d, uint32_t seed, Waiter *w,
                           void (*pump)(void *, Waiter *), void *ctx)
{
    static const uint64_t at[4] = { 0, 3, 7, 100 };
    uint8_t *got = g_malloc(4 * MiB), *want = g_malloc(MiB);
    for (int i = 0; i < 4; i++) {
        w->pending++;
        w->in_submit = true;
        g_assert_true(xblk_disk_read(d, at[i] * MiB, got + i * MiB, MiB,
                                     io_done, w, NULL));
        w->in_submit = false;
    }
    pump(ctx, w);
    g_assert_cmpint(w->failures, ==, 0);
    for (int i = 0; i < 4; i++) {
        fill(want, MiB, seed + i);
        g_assert_cmpmem(got + i * MiB, MiB, want, MiB);
    }
    g_free(got);
    g_free(want);
}

static void pump_fd_cb(void *e, Waiter *w)
{
    pump_fd(e, w);
}

static void pump_glib_cb(void *ctx, Waiter *w)
{
    pump_glib(ctx, w);
}

/* ---- tests ---- */

static void test_version(void)
{
    g_assert_cmpuint(xblk_version(), ==, XBLK_VERSION_NUMBER);
    g_autofree char *want = g_strdup_printf("%d.%d.%d", XBLK_VERSION_MAJOR,
                                            XBLK_VERSION_MINOR,
                                            XBLK_VERSION_MICRO);
    g_assert_cmpstr(xblk_version_string(), ==, want);
}

static void test_engine_own_context(void)
{
    XblkError *err = NULL;
    XblkEngine *e = xblk_engine_new(NULL, &err);
    g_assert_null(err);
    g_assert_nonnull(e);
    g_assert_null(xblk_engine_new(NULL, &err));
    g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_BUSY);
    g_test_message("second engine: %s", xblk_error_message(err));
    xblk_error_free(err);
    err = NULL;

    g_autofree char *path = new_image("own.qcow2", "256M");
    XblkDisk *d = open_disk(e, "own0", path);
    g_assert_cmpstr(xblk_disk_name(d), ==, "own0");
    g_assert_cmpint(xblk_disk_length(d, NULL), ==, 256 * MiB);
    g_assert_false(xblk_disk_read_only(d));

    Waiter w = { 0 };
    uint8_t *bufs[4];
    write_patterns(d, 7, &w, bufs);
    pump_fd(e, &w);
    w.pending++;
    g_assert_true(xblk_disk_flush(d, io_done, &w, NULL));
    pump_fd(e, &w);
    g_assert_cmpint(w.failures, ==, 0);
    check_patterns(d, 7, &w, pump_fd_cb, e);
    /* Nothing left to do: dispatch runs nothing and returns at once. */
    g_assert_cmpint(xblk_engine_dispatch(e), ==, 0);

    /* qemu-img, another program, reads the same bytes. */
    xblk_disk_close(d);
    g_autofree char *dd = tpath("own.raw");
    g_autofree char *cmd2 = g_strdup_printf(
        "qemu-img convert -f qcow2 -O raw %s %s", path, dd);
    g_free(run(cmd2, NULL));
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(dd, &data, &len, NULL));
    g_assert_cmpuint(len, ==, 256 * MiB);
    g_assert_cmpmem(data + 7 * MiB, MiB, bufs[2], MiB);
    g_assert_cmpmem(data + 100 * MiB, MiB, bufs[3], MiB);
    g_unlink(dd);
    qemu_img_check_clean(path);
    for (int i = 0; i < 4; i++) {
        g_free(bufs[i]);
    }
    xblk_engine_free(e);

    /* The next engine of the process (own context again) works. */
    e = xblk_engine_new(NULL, &err);
    g_assert_null(err);
    d = open_disk(e, "own1", path);
    check_patterns(d, 7, &w, pump_fd_cb, e);
    xblk_engine_free(e);            /* closes d */
}

static void test_engine_glib_host(void)
{
    /* The own context was bound first in this process, so a GLib host's
     * context is refused: one loop context per process. */
    GMainContext *ctx = g_main_context_new();
    XblkError *err = NULL;
    XblkEngineOptions o = { .size = sizeof(o), .glib_context = ctx };
    XblkEngine *e = xblk_engine_new(&o, &err);
    g_assert_null(e);
    g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_BUSY);
    xblk_error_free(err);
    g_main_context_unref(ctx);
}

/* A GLib host from the start: run in a child process of its own. */
static void test_engine_glib_host_child(void)
{
    if (g_test_subprocess()) {
        GMainContext *ctx = g_main_context_new();
        g_main_context_push_thread_default(ctx);
        XblkError *err = NULL;
        XblkEngineOptions o = { .size = sizeof(o), .glib_context = ctx };
        XblkEngine *e = xblk_engine_new(&o, &err);
        g_assert_null(err);
        g_assert_cmpint(xblk_engine_fd(e), ==, -1);
        g_autofree char *path = new_image("glib.qcow2", "128M");
        XblkDisk *d = open_disk(e, "g0", path);
        Waiter w = { 0 };
        uint8_t *bufs[4];
        write_patterns(d, 11, &w, bufs);
        pump_glib(ctx, &w);
        check_patterns(d, 11, &w, pump_glib_cb, ctx);
        for (int i = 0; i < 4; i++) {
            g_free(bufs[i]);
        }
        xblk_engine_free(e);
        qemu_img_check_clean(path);
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed();
}

static int count_snapshots(XblkDisk *d, const char *name)
{
    XblkSnapshotInfo info[16];
    for (int i = 0; i < 16; i++) {
        info[i].size = sizeof(info[i]);
    }
    int n = xblk_snapshot_list(d, info, 16, NULL);
    g_assert_cmpint(n, >=, 0);
    int hits = 0;
    for (int i = 0; i < n && i < 16; i++) {
        hits += !strcmp(info[i].name, name);
    }
    return hits;
}

static bool qemu_lists(const char *path, const char *name)
{
    /* -U: the engine may still have the image open (QEMU's locks). */
    g_autofree char *cmd = g_strdup_printf("qemu-img snapshot -l -U %s",
                                           path);
    g_autofree char *out = run(cmd, NULL);
    g_autofree char *needle = g_strdup_printf(" %s ", name);
    return strstr(out, needle) != NULL;
}

static void test_snapshots(void)
{
    XblkError *err = NULL;
    XblkEngine *e = xblk_engine_new(NULL, &err);
    g_assert_null(err);
    g_autofree char *pa = new_image("sa.qcow2", "256M");
    g_autofree char *pb = new_image("sb.qcow2", "256M");
    XblkDisk *a = open_disk(e, "sa", pa), *b = open_disk(e, "sb", pb);
    Waiter w = { 0 };
    uint8_t *ba[4], *bb[4];
    write_patterns(a, 100, &w, ba);
    write_patterns(b, 200, &w, bb);
    pump_fd(e, &w);

    XblkSnapshotAction both[2] = {
        { .size = sizeof(both[0]), .kind = XBLK_SNAPSHOT_INTERNAL,
          .disk = a, .name = "s1" },
        { .size = sizeof(both[1]), .kind = XBLK_SNAPSHOT_INTERNAL,
          .disk = b, .name = "s1" },
    };
    g_assert_true(xblk_snapshot_transaction(e, both, 2, &err));
    g_assert_null(err);
    g_assert_cmpint(count_snapshots(a, "s1"), ==, 1);
    g_assert_cmpint(count_snapshots(b, "s1"), ==, 1);
    g_assert_true(qemu_lists(pa, "s1"));
    g_assert_true(qemu_lists(pb, "s1"));

    /* All or nothing: "s1" exists on a, so b gets no "s2" either. */
    XblkSnapshotAction clash[2] = {
        { .size = sizeof(clash[0]), .kind = XBLK_SNAPSHOT_INTERNAL,
          .disk = b, .name = "s2" },
        { .size = sizeof(clash[1]), .kind = XBLK_SNAPSHOT_INTERNAL,
          .disk = a, .name = "s1" },
    };
    g_assert_false(xblk_snapshot_transaction(e, clash, 2, &err));
    g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_EXISTS);
    g_test_message("clash: %s", xblk_error_message(err));
    xblk_error_free(err);
    err = NULL;
    g_assert_cmpint(count_snapshots(b, "s2"), ==, 0);

    /* New data after the snapshot, then back to it. */
    uint8_t *later[4];
    write_patterns(a, 300, &w, later);
    pump_fd(e, &w);
    check_patterns(a, 300, &w, pump_fd_cb, e);
    g_assert_true(xblk_snapshot_revert(a, "s1", &err));
    g_assert_null(err);
    check_patterns(a, 100, &w, pump_fd_cb, e);

    /* An external snapshot of b: the overlay on top, b behind it. */
    g_autofree char *ov = tpath("sb-overlay.qcow2");
    g_unlink(ov);
    XblkSnapshotAction ext = { .size = sizeof(ext),
                               .kind = XBLK_SNAPSHOT_EXTERNAL, .disk = b,
                               .overlay_file = ov,
                               .overlay_node_name = "sb-top" };
    g_assert_true(xblk_snapshot_transaction(e, &ext, 1, &err));
    g_assert_null(err);
    g_assert_cmpstr(xblk_disk_name(b), ==, "sb-top");
    check_patterns(b, 200, &w, pump_fd_cb, e);
    g_assert_false(xblk_snapshot_transaction(e, &ext, 1, &err));
    g_test_message("node-name taken: %s", xblk_error_message(err));
    xblk_error_free(err);
    err = NULL;

    g_assert_true(xblk_snapshot_delete(a, "s1", &err));
    g_assert_null(err);
    g_assert_cmpint(count_snapshots(a, "s1"), ==, 0);
    g_assert_false(xblk_snapshot_delete(a, "s1", &err));
    g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_NOT_FOUND);
    xblk_error_free(err);
    err = NULL;
    for (int i = 0; i < 4; i++) {
        g_free(ba[i]);
        g_free(bb[i]);
        g_free(later[i]);
    }
    xblk_engine_free(e);
    g_assert_false(qemu_lists(pa, "s1"));
    g_assert_true(qemu_lists(pb, "s1"));
    g_autofree char *cmd = g_strdup_printf("qemu-img info %s", ov);
    g_autofree char *info = run(cmd, NULL);
    g_assert_nonnull(strstr(info, pb));         /* its backing file */
    qemu_img_check_clean(pa);
    qemu_img_check_clean(pb);
    qemu_img_check_clean(ov);
}

static void expect(XblkError **err, XblkErrorCode code)
{
    g_assert_nonnull(*err);
    g_assert_cmpint(xblk_error_code(*err), ==, code);
    g_assert_cmpstr(xblk_error_message(*err), !=, "");
    g_test_message("refused (%d): %s", code, xblk_error_message(*err));
    xblk_error_free(*err);
    *err = NULL;
}

static void test_bad_input(void)
{
    XblkError *err = NULL;
    uint8_t buf[512] = { 0 };
    /* Null handles. */
    g_assert_null(xblk_disk_open(NULL, "driver=null-co", &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_write(NULL, 0, buf, 512, io_done, NULL, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_snapshot_transaction(NULL, NULL, 0, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_cmpint(xblk_engine_fd(NULL), ==, -1);
    g_assert_cmpint(xblk_engine_dispatch(NULL), ==, -1);
    xblk_disk_close(NULL);
    xblk_engine_free(NULL);
    xblk_error_free(NULL);

    XblkEngineOptions small = { .size = 4 };
    g_assert_null(xblk_engine_new(&small, &err));
    expect(&err, XBLK_ERROR_INVALID);

    XblkEngine *e = xblk_engine_new(NULL, &err);
    g_assert_nonnull(e);
    g_autofree char *path = new_image("bad.qcow2", "64M");
    g_autofree char *garbage = tpath("garbage.qcow2");
    g_assert_true(g_file_set_contents(garbage, "QFI\xfbnot qcow2 at all",
                                      -1, NULL));
    /* Options: malformed, no node-name, unknown driver, damaged image. */
    g_assert_null(xblk_disk_open(e, "{\"driver\": ", &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_autofree char *nonode = g_strdup_printf(
        "driver=qcow2,file.driver=file,file.filename=%s", path);
    g_assert_null(xblk_disk_open(e, nonode, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_null(xblk_disk_open(e, "driver=nosuch,node-name=x", &err));
    expect(&err, XBLK_ERROR_FAILED);
    g_autofree char *bad = g_strdup_printf(
        "driver=qcow2,node-name=g,file.driver=file,file.filename=%s",
        garbage);
    g_assert_null(xblk_disk_open(e, bad, &err));
    expect(&err, XBLK_ERROR_FAILED);
    g_autofree char *missing = g_strdup_printf(
        "driver=qcow2,node-name=m,file.driver=file,file.filename=%s/none",
        tmpdir);
    g_assert_null(xblk_disk_open(e, missing, &err));
    expect(&err, XBLK_ERROR_NOT_FOUND);

    XblkDisk *d = open_disk(e, "bad0", path);
    g_autofree char *dup = g_strdup_printf(
        "driver=qcow2,node-name=bad0,file.driver=file,file.filename=%s",
        path);
    g_assert_null(xblk_disk_open(e, dup, &err));
    expect(&err, XBLK_ERROR_EXISTS);
    /* Requests: past the end, no callback, no buffer. */
    g_assert_false(xblk_disk_write(d, 64 * MiB - 256, buf, 512, io_done,
                                   NULL, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_read(d, UINT64_MAX - 10, buf, 512, io_done,
                                  NULL, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_write(d, 0, buf, 512, NULL, NULL, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_read(d, 0, NULL, 512, io_done, NULL, &err));
    expect(&err, XBLK_ERROR_INVALID);
    /* Snapshots: missing, nameless, a struct from the future's past. */
    g_assert_false(xblk_snapshot_revert(d, "nope", &err));
    expect(&err, XBLK_ERROR_NOT_FOUND);
    XblkSnapshotAction a = { .size = sizeof(a),
                             .kind = XBLK_SNAPSHOT_INTERNAL, .disk = d };
    g_assert_false(xblk_snapshot_transaction(e, &a, 1, &err));
    expect(&err, XBLK_ERROR_INVALID);
    a.name = "x";
    a.size = 8;
    g_assert_false(xblk_snapshot_transaction(e, &a, 1, &err));
    expect(&err, XBLK_ERROR_INVALID);
    a.size = sizeof(a);
    a.kind = (XblkSnapshotKind)9;
    g_assert_false(xblk_snapshot_transaction(e, &a, 1, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_cmpint(count_snapshots(d, "x"), ==, 0);
    /* Read-only. */
    xblk_disk_close(d);
    g_autofree char *ro = g_strdup_printf(
        "driver=qcow2,node-name=ro,read-only=on,file.driver=file,"
        "file.filename=%s", path);
    d = xblk_disk_open(e, ro, &err);
    g_assert_null(err);
    g_assert_true(xblk_disk_read_only(d));
    g_assert_false(xblk_disk_write(d, 0, buf, 512, io_done, NULL, &err));
    expect(&err, XBLK_ERROR_INVALID);
    xblk_engine_free(e);
    qemu_img_check_clean(path);
}

/* ---- dirty bitmaps ---- */

static int64_t dirty(XblkDisk *d, const char *name)
{
    XblkError *err = NULL;
    int64_t n = xblk_disk_bitmap_dirty_bytes(d, name, &err);
    g_assert_null(err);
    g_assert_cmpint(n, >=, 0);
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The disk's bitmap names, sorted, joined with ','. */
static char *bitmap_names(XblkDisk *d)
{
    XblkError *err = NULL;
    char **names = xblk_disk_bitmap_list(d, &err);
    g_assert_null(err);
    g_assert_nonnull(names);
    guint n = g_strv_length(names);
    const char **sorted = g_new0(const char *, n + 1);
    memcpy(sorted, names, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    char *joined = g_strjoinv(",", (char **)sorted);
    g_free(sorted);
    xblk_disk_bitmap_list_free(names);
    return joined;
}

static XblkBitmapInfo bitmap_info(XblkDisk *d, const char *name)
{
    XblkError *err = NULL;
    XblkBitmapInfo info = { .size = sizeof(info) };
    g_assert_true(xblk_disk_bitmap_info(d, name, &info, &err));
    g_assert_null(err);
    return info;
}

static void write_at(XblkEngine *e, XblkDisk *d, uint64_t offset,
                     size_t len)
{
    Waiter w = { 0 };
    uint8_t *buf = g_malloc0(len);
    w.pending++;
    g_assert_true(xblk_disk_write(d, offset, buf, len, io_done, &w, NULL));
    pump_fd(e, &w);
    g_assert_cmpint(w.failures, ==, 0);
    g_free(buf);
}

static bool qemu_info_has_bitmap(const char *path, const char *name)
{
    g_autofree char *cmd = g_strdup_printf("qemu-img info -U %s", path);
    g_autofree char *out = run(cmd, NULL);
    g_autofree char *needle = g_strdup_printf("name: %s\n", name);
    return strstr(out, needle) != NULL;
}

static void test_bitmaps(void)
{
    XblkError *err = NULL;
    XblkEngine *e = xblk_engine_new(NULL, &err);
    g_assert_null(err);
    g_autofree char *path = new_image("bm.qcow2", "256M");
    XblkDisk *d = open_disk(e, "bm0", path);
    g_assert_cmpstr(xblk_disk_filename(d), ==, path);
    g_autofree char *none = bitmap_names(d);
    g_assert_cmpstr(none, ==, "");

    /* Added empty and recording; persistent in qcow2 on request. */
    g_assert_true(xblk_disk_bitmap_add(d, "since", true, &err));
    g_assert_null(err);
    g_assert_true(xblk_disk_bitmap_add(d, "mem", false, &err));
    g_assert_null(err);
    XblkBitmapInfo info = bitmap_info(d, "since");
    g_assert_true(info.persistent);
    g_assert_true(info.recording);
    g_assert_false(info.busy);
    g_assert_false(info.inconsistent);
    g_assert_cmpuint(info.granularity, ==, 65536);   /* the cluster size */
    g_assert_false(bitmap_info(d, "mem").persistent);
    g_assert_cmpint(dirty(d, "since"), ==, 0);
    g_assert_false(xblk_disk_bitmap_add(d, "since", false, &err));
    expect(&err, XBLK_ERROR_EXISTS);

    /* Writes through the disk mark every recording bitmap. */
    Waiter w = { 0 };
    uint8_t *bufs[4];
    write_patterns(d, 3, &w, bufs);
    pump_fd(e, &w);
    g_assert_cmpint(w.failures, ==, 0);
    for (int i = 0; i < 4; i++) {
        g_free(bufs[i]);
    }
    g_assert_cmpint(dirty(d, "since"), ==, 4 * MiB);
    g_assert_cmpint(dirty(d, "mem"), ==, 4 * MiB);
    /* A partial granule counts whole. */
    write_at(e, d, 200 * MiB + 512, 512);
    g_assert_cmpint(dirty(d, "since"), ==, 4 * MiB + 65536);

    /* Copy (frozen), clear, merge back: the bits a load puts back. */
    g_assert_true(xblk_disk_bitmap_copy(d, "since", "keep", &err));
    g_assert_null(err);
    g_assert_false(bitmap_info(d, "keep").recording);
    g_assert_false(bitmap_info(d, "keep").persistent);
    g_assert_true(xblk_disk_bitmap_clear(d, "since", &err));
    g_assert_null(err);
    g_assert_cmpint(dirty(d, "since"), ==, 0);
    write_at(e, d, 150 * MiB, 65536);
    g_assert_cmpint(dirty(d, "since"), ==, 65536);
    g_assert_cmpint(dirty(d, "keep"), ==, 4 * MiB + 65536);
    g_assert_cmpint(dirty(d, "mem"), ==, 4 * MiB + 2 * 65536);
    g_assert_true(xblk_disk_bitmap_merge(d, "keep", "since", &err));
    g_assert_null(err);
    g_assert_cmpint(dirty(d, "since"), ==, 4 * MiB + 2 * 65536);
    g_assert_cmpint(dirty(d, "keep"), ==, 4 * MiB + 65536);
    g_assert_false(xblk_disk_bitmap_copy(d, "since", "mem", &err));
    expect(&err, XBLK_ERROR_EXISTS);
    g_assert_cmpint(dirty(d, "mem"), ==, 4 * MiB + 2 * 65536);
    g_autofree char *three = bitmap_names(d);
    g_assert_cmpstr(three, ==, "keep,mem,since");
    g_assert_true(xblk_disk_bitmap_remove(d, "keep", &err));
    g_assert_null(err);
    g_assert_cmpint(xblk_disk_bitmap_dirty_bytes(d, "keep", &err), ==, -1);
    expect(&err, XBLK_ERROR_NOT_FOUND);
    g_assert_false(xblk_disk_bitmap_remove(d, "keep", &err));
    expect(&err, XBLK_ERROR_NOT_FOUND);

    /* The persistent one is in the image after a clean close, with its
     * bits; the other lived in memory only. */
    xblk_disk_close(d);
    qemu_img_check_clean(path);
    g_assert_true(qemu_info_has_bitmap(path, "since"));
    g_assert_false(qemu_info_has_bitmap(path, "mem"));
    d = open_disk(e, "bm1", path);
    g_autofree char *kept = bitmap_names(d);
    g_assert_cmpstr(kept, ==, "since");
    info = bitmap_info(d, "since");
    g_assert_true(info.persistent);
    g_assert_true(info.recording);
    g_assert_false(info.inconsistent);
    g_assert_cmpint(dirty(d, "since"), ==, 4 * MiB + 2 * 65536);
    write_at(e, d, 180 * MiB, 65536);
    g_assert_cmpint(dirty(d, "since"), ==, 4 * MiB + 3 * 65536);

    /* A crash (the image copied while open: its bitmaps in use) brings
     * it back inconsistent: only remove works on it. */
    g_autofree char *crashed = tpath("bm-crashed.qcow2");
    g_autofree char *cp = g_strdup_printf("cp %s %s", path, crashed);
    g_free(run(cp, NULL));
    XblkDisk *c = open_disk(e, "bmc", crashed);
    info = bitmap_info(c, "since");
    g_assert_true(info.inconsistent);
    g_assert_cmpint(xblk_disk_bitmap_dirty_bytes(c, "since", &err), ==, -1);
    expect(&err, XBLK_ERROR_FAILED);
    g_assert_false(xblk_disk_bitmap_clear(c, "since", &err));
    expect(&err, XBLK_ERROR_FAILED);
    g_assert_false(xblk_disk_bitmap_copy(c, "since", "x", &err));
    expect(&err, XBLK_ERROR_FAILED);
    g_assert_true(xblk_disk_bitmap_add(c, "fresh", false, NULL));
    g_assert_false(xblk_disk_bitmap_merge(c, "since", "fresh", &err));
    expect(&err, XBLK_ERROR_FAILED);
    g_assert_true(xblk_disk_bitmap_remove(c, "since", &err));
    g_assert_null(err);
    xblk_disk_close(c);
    qemu_img_check_clean(crashed);
    g_assert_false(qemu_info_has_bitmap(crashed, "since"));

    /* Removed: gone from memory now, from the image at the close. */
    g_assert_true(xblk_disk_bitmap_remove(d, "since", &err));
    g_assert_null(err);
    g_autofree char *gone = bitmap_names(d);
    g_assert_cmpstr(gone, ==, "");
    xblk_disk_close(d);
    qemu_img_check_clean(path);
    g_assert_false(qemu_info_has_bitmap(path, "since"));
    d = open_disk(e, "bm2", path);
    g_autofree char *gone2 = bitmap_names(d);
    g_assert_cmpstr(gone2, ==, "");
    xblk_disk_close(d);

    /* Raw cannot store a bitmap: refused, nothing added; in memory it
     * works. */
    g_autofree char *raw = tpath("bm.raw");
    g_autofree char *mkraw = g_strdup_printf("qemu-img create -q -f raw %s "
                                             "64M", raw);
    g_free(run(mkraw, NULL));
    g_autofree char *ropts = g_strdup_printf(
        "driver=raw,node-name=bmraw,file.driver=file,file.filename=%s", raw);
    XblkDisk *r = xblk_disk_open(e, ropts, &err);
    g_assert_null(err);
    g_assert_cmpstr(xblk_disk_filename(r), ==, raw);
    g_assert_false(xblk_disk_bitmap_add(r, "p", true, &err));
    expect(&err, XBLK_ERROR_UNSUPPORTED);
    g_autofree char *rnone = bitmap_names(r);
    g_assert_cmpstr(rnone, ==, "");
    g_assert_true(xblk_disk_bitmap_add(r, "p", false, &err));
    g_assert_null(err);
    write_at(e, r, 0, 4096);
    g_assert_cmpint(dirty(r, "p"), ==, 65536);  /* raw: 64 KiB granules */
    xblk_disk_close(r);

    /* qcow2 version 2 cannot either. */
    g_autofree char *v2 = tpath("bm-v2.qcow2");
    g_autofree char *mkv2 = g_strdup_printf("qemu-img create -q -f qcow2 "
                                            "-o compat=0.10 %s 64M", v2);
    g_free(run(mkv2, NULL));
    d = open_disk(e, "bmv2", v2);
    g_assert_false(xblk_disk_bitmap_add(d, "p", true, &err));
    expect(&err, XBLK_ERROR_UNSUPPORTED);
    xblk_disk_close(d);

    /* Read-only: no persistent bitmap (it could not be stored). */
    g_autofree char *ro = g_strdup_printf(
        "driver=qcow2,node-name=bmro,read-only=on,file.driver=file,"
        "file.filename=%s", path);
    d = xblk_disk_open(e, ro, &err);
    g_assert_null(err);
    g_assert_false(xblk_disk_bitmap_add(d, "p", true, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_true(xblk_disk_bitmap_add(d, "p", false, &err));
    g_assert_null(err);
    xblk_engine_free(e);            /* closes d */
    qemu_img_check_clean(path);
}

static void test_bitmap_bad_input(void)
{
    XblkError *err = NULL;
    XblkBitmapInfo info = { .size = sizeof(info) };
    /* No disk. */
    g_assert_null(xblk_disk_filename(NULL));
    g_assert_false(xblk_disk_bitmap_add(NULL, "a", false, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_bitmap_remove(NULL, "a", &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_bitmap_clear(NULL, "a", &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_cmpint(xblk_disk_bitmap_dirty_bytes(NULL, "a", &err), ==, -1);
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_bitmap_copy(NULL, "a", "b", &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_bitmap_merge(NULL, "a", "b", &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_bitmap_info(NULL, "a", &info, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_null(xblk_disk_bitmap_list(NULL, &err));
    expect(&err, XBLK_ERROR_INVALID);
    xblk_disk_bitmap_list_free(NULL);

    XblkEngine *e = xblk_engine_new(NULL, &err);
    g_assert_nonnull(e);
    g_autofree char *path = new_image("bmbad.qcow2", "64M");
    XblkDisk *d = open_disk(e, "bmbad", path);
    g_assert_true(xblk_disk_bitmap_add(d, "ok", true, &err));
    g_assert_null(err);
    /* No name, an empty one, one too long. */
    g_assert_false(xblk_disk_bitmap_add(d, NULL, false, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_bitmap_add(d, "", true, &err));
    expect(&err, XBLK_ERROR_INVALID);
    char *longname = g_strnfill(1024, 'n');
    g_assert_false(xblk_disk_bitmap_add(d, longname, false, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_bitmap_copy(d, "ok", longname, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_free(longname);
    g_assert_false(xblk_disk_bitmap_remove(d, NULL, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_bitmap_clear(d, "", &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_cmpint(xblk_disk_bitmap_dirty_bytes(d, NULL, &err), ==, -1);
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_bitmap_copy(d, "ok", NULL, &err));
    expect(&err, XBLK_ERROR_INVALID);
    g_assert_false(xblk_disk_bitmap_merge(d, NULL, "ok", &err));
    expect(&err, XBLK_ERROR_INVALID);
    /* Unknown names. */
    g_assert_false(xblk_disk_bitmap_remove(d, "nope", &err));
    expect(&err, XBLK_ERROR_NOT_FOUND);
    g_assert_false(xblk_disk_bitmap_clear(d, "nope", &err));
    expect(&err, XBLK_ERROR_NOT_FOUND);
    g_assert_cmpint(xblk_disk_bitmap_dirty_bytes(d, "nope", &err), ==, -1);
    expect(&err, XBLK_ERROR_NOT_FOUND);
    g_assert_false(xblk_disk_bitmap_copy(d, "nope", "b", &err));
    expect(&err, XBLK_ERROR_NOT_FOUND);
    g_assert_false(xblk_disk_bitmap_merge(d, "nope", "ok", &err));
    expect(&err, XBLK_ERROR_NOT_FOUND);
    g_assert_false(xblk_disk_bitmap_merge(d, "ok", "nope", &err));
    expect(&err, XBLK_ERROR_NOT_FOUND);
    g_assert_false(xblk_disk_bitmap_info(d, "nope", &info, &err));
    expect(&err, XBLK_ERROR_NOT_FOUND);
    /* Info: no struct, one too small. */
    g_assert_false(xblk_disk_bitmap_info(d, "ok", NULL, &err));
    expect(&err, XBLK_ERROR_INVALID);
    info.size = 4;
    g_assert_false(xblk_disk_bitmap_info(d, "ok", &info, &err));
    expect(&err, XBLK_ERROR_INVALID);
    /* Nothing changed: one bitmap, empty; err NULL is accepted. */
    g_autofree char *names = bitmap_names(d);
    g_assert_cmpstr(names, ==, "ok");
    g_assert_cmpint(xblk_disk_bitmap_dirty_bytes(d, "ok", NULL), ==, 0);
    g_assert_false(xblk_disk_bitmap_add(d, "ok", false, NULL));
    xblk_engine_free(e);
    qemu_img_check_clean(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("xblk-api-XXXXXX", NULL);
    g_test_add_func("/api/version", test_version);
    g_test_add_func("/api/engine-glib-host", test_engine_glib_host_child);
    g_test_add_func("/api/engine-own-context", test_engine_own_context);
    g_test_add_func("/api/engine-glib-refused", test_engine_glib_host);
    g_test_add_func("/api/snapshots", test_snapshots);
    g_test_add_func("/api/bad-input", test_bad_input);
    g_test_add_func("/api/bitmaps", test_bitmaps);
    g_test_add_func("/api/bitmaps-bad-input", test_bitmap_bad_input);
    int ret = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf %s", tmpdir);
    g_free(run(cmd, NULL));
    return ret;
}
