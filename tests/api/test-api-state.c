/*
 * test-api-state.c - save states through the public API as a host sees
 * them (<xblk/xblk.h>, libxblk.so): guest RAM regions, device field
 * tables, the pause contract, save/load/delete with callbacks; real qcow2
 * files, checked with the real qemu-img.
 *
 *   - a save and a load with a guest thread that keeps writing RAM while
 *     the save streams it: after the load, RAM equals RAM at the pause
 *     byte for byte (a checksum taken inside the pause), the device
 *     struct equals it, the disk is reverted; qemu-img lists the state
 *     with a VM state size and checks the image clean;
 *   - two RAM regions (the copy path of a load);
 *   - device tables: version 1 state loaded by a version 2 table
 *     (version_added keeps the live value, load_old runs), the host's
 *     check hook refusing a load (nothing changes), post_load;
 *   - bad input, each a clear XblkError that changes nothing: NULL
 *     handles, misaligned and overlapping RAM, too many regions, a field
 *     past its struct, a wrong element size, an unknown type, a nested
 *     table of another size, a table containing itself, a duplicate
 *     device, a save while one runs, a load of a missing state, a host
 *     that never pauses (the operation fails after 10 s would be too
 *     slow here: only the missing-host refusal is tested).
 */
#include <xblk/xblk.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define MiB (1024 * 1024)
#define RAM_SIZE (8 * MiB)

static char *tmpdir;

/* ---- helpers ---- */

static char *run(const char *cmdline, int *status)
{
    char *out = NULL, *err = NULL;
    GError *gerr = NULL;
    int st = 0;
    g_assert_true(g_spawn_command_line_sync(cmdline, &out, &err, &st,
                                            &gerr));
    g_assert_no_error(gerr);
    *status = g_spawn_check_wait_status(st, NULL) ? 0 : 1;
    g_free(err);
    return out;
}

static char *new_image(const char *name)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    g_unlink(path);
    g_autofree char *cmd = g_strdup_printf("qemu-img create -q -f qcow2 %s "
                                           "64M", path);
    int st;
    g_free(run(cmd, &st));
    g_assert_cmpint(st, ==, 0);
    return path;
}

static void *map_ram(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(p != MAP_FAILED);
    return p;
}

static void expect_error(XblkError *err, XblkErrorCode code,
                         const char *part)
{
    g_assert_nonnull(err);
    if (xblk_error_code(err) != code || !strstr(xblk_error_message(err),
                                                part)) {
        g_error("expected code %d with '%s', got %d: %s", code, part,
                xblk_error_code(err), xblk_error_message(err));
    }
    xblk_error_free(err);
}

/* Own context, as a host without GLib drives it, until *flag. */
static void pump_until(XblkEngine *e, const bool *flag)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    while (!*flag) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        int t = xblk_engine_prepare(e);
        if (t == 0) {
            continue;
        }
        struct pollfd p = { .fd = xblk_engine_fd(e), .events = POLLIN };
        poll(&p, 1, t < 0 || t > 10 ? 10 : t);
        xblk_engine_dispatch(e);
    }
}

/* ---- the host: a guest thread, a device, the pause contract ---- */

typedef struct Inner {
    uint16_t a;
    uint8_t b[3];
} Inner;

typedef struct Dev {
    uint64_t prng;
    uint32_t steps;
    int32_t delta;
    bool flag;
    uint32_t blob_len;
    uint8_t blob[16];
    Inner inner[2];
    uint32_t added_in_v2;       /* version 2 of the table */
    uint32_t post_loads;        /* not saved: counts post_load calls */
} Dev;

static const XblkField inner_fields[] = {
    XBLK_U16(Inner, a),
    XBLK_U8_ARRAY(Inner, b, 3),
    XBLK_FIELDS_END,
};

static const XblkDeviceDesc inner_desc = {
    .size = sizeof(XblkDeviceDesc), .field_size = sizeof(XblkField),
    .name = "inner", .version = 1, .struct_size = sizeof(Inner),
    .fields = inner_fields,
};

static bool dev_post_load(void *opaque, int version, XblkError **err)
{
    ((Dev *)opaque)->post_loads++;
    return true;
}

static bool refuse_check;

static bool dev_check(const void *cur, const void *scratch, int version,
                      XblkError **err)
{
    if (refuse_check) {
        xblk_error_set(err, XBLK_ERROR_INVALID, "the host refuses step %u",
                       ((const Dev *)scratch)->steps);
        return false;
    }
    return true;
}

static int load_old_calls;

static bool dev_load_old(void *scratch, int version, XblkError **err)
{
    load_old_calls++;
    ((Dev *)scratch)->added_in_v2 = 1000 + version;
    return true;
}

#define DEV_FIELDS_V1 \
    XBLK_U64(Dev, prng), \
    XBLK_U32(Dev, steps), \
    XBLK_I32(Dev, delta, XBLK_RANGE(-100, 100)), \
    XBLK_BOOL(Dev, flag), \
    XBLK_U32(Dev, blob_len, XBLK_MAX(16)), \
    XBLK_VBUFFER(Dev, blob, blob_len), \
    XBLK_STRUCT_ARRAY(Dev, inner, 2, &inner_desc, Inner)

static const XblkField dev_fields_v1[] = { DEV_FIELDS_V1, XBLK_FIELDS_END };
static const XblkField dev_fields_v2[] = {
    DEV_FIELDS_V1,
    XBLK_U32(Dev, added_in_v2, XBLK_SINCE(2)),
    XBLK_FIELDS_END,
};

static const XblkDeviceDesc dev_desc_v1 = {
    .size = sizeof(XblkDeviceDesc), .field_size = sizeof(XblkField),
    .name = "testdev", .version = 1, .struct_size = sizeof(Dev),
    .fields = dev_fields_v1, .post_load = dev_post_load,
    .check = dev_check,
};

static const XblkDeviceDesc dev_desc_v2 = {
    .size = sizeof(XblkDeviceDesc), .field_size = sizeof(XblkField),
    .name = "testdev", .version = 2, .minimum_version = 1,
    .struct_size = sizeof(Dev), .fields = dev_fields_v2,
    .post_load = dev_post_load, .load_old = dev_load_old,
    .check = dev_check,
};

typedef struct Host {
    XblkEngine *e;
    uint8_t *ram;
    size_t ram_size;
    Dev dev;
    GThread *thread;
    atomic_bool stop_thread;
    atomic_bool pause_req;
    atomic_bool parked;
    atomic_uint pauses, resumes;
    char ram_sum_at_pause[65];
    Dev dev_at_pause;
    /* The streaming hooks: a SHA-256 over the pages as they stream. */
    GChecksum *stream_sum;
    uint64_t next_offset;
    bool pages_in_order;
    char streamed_sum[65];
    /* run_paused: how many calls, and load_begin/end seen. */
    atomic_uint run_paused_calls;
    unsigned load_begins, load_ends;
    bool last_load_changed;
} Host;

/* The guest: xorshift64 into RAM, one 8-byte store at a time, until
 * asked to park (at a step boundary). */
static gpointer guest_thread(gpointer opaque)
{
    Host *h = opaque;
    while (!atomic_load(&h->stop_thread)) {
        if (atomic_load(&h->pause_req)) {
            if (!atomic_exchange(&h->parked, true)) {
                xblk_host_paused(h->e);
            }
            g_usleep(100);
            continue;
        }
        for (int i = 0; i < 64; i++) {
            uint64_t x = h->dev.prng;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            h->dev.prng = x;
            size_t off = (x % (h->ram_size / 8)) * 8;
            memcpy(h->ram + off, &x, 8);
        }
        h->dev.steps++;
    }
    return NULL;
}

static void host_pause(void *opaque)
{
    Host *h = opaque;
    atomic_fetch_add(&h->pauses, 1);
    if (!h->thread) {
        xblk_host_paused(h->e);     /* nothing runs: paused now */
        return;
    }
    atomic_store(&h->pause_req, true);
}

static void host_resume(void *opaque)
{
    Host *h = opaque;
    atomic_fetch_add(&h->resumes, 1);
    atomic_store(&h->parked, false);
    atomic_store(&h->pause_req, false);
}

static char *ram_sum(const Host *h)
{
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, h->ram,
                                       h->ram_size);
}

static void host_capture(void *opaque, XblkStateCapture *c)
{
    Host *h = opaque;
    g_assert_cmpuint(c->size, >=, sizeof(*c));
    g_autofree char *sum = ram_sum(h);
    g_strlcpy(h->ram_sum_at_pause, sum, sizeof(h->ram_sum_at_pause));
    h->dev_at_pause = h->dev;
    c->frame = h->dev.steps;
    c->clock_ns = (int64_t)h->dev.steps * 1000;
    c->title = "api test";
}

static void host_run_paused(void *opaque, XblkHostFn *fn, void *arg)
{
    Host *h = opaque;
    g_assert_true(!h->thread || atomic_load(&h->parked));
    atomic_fetch_add(&h->run_paused_calls, 1);
    fn(arg);
}

/* Streaming thread. */
static void host_save_page(void *opaque, uint64_t offset, const void *page,
                           size_t len)
{
    Host *h = opaque;
    if (!h->stream_sum) {
        h->stream_sum = g_checksum_new(G_CHECKSUM_SHA256);
        h->next_offset = 0;
        h->pages_in_order = true;
    }
    h->pages_in_order &= offset == h->next_offset;
    h->next_offset = offset + len;
    g_checksum_update(h->stream_sum, page, len);
}

static void host_save_finish(void *opaque, XblkStateCapture *c)
{
    Host *h = opaque;
    g_assert_nonnull(h->stream_sum);
    g_strlcpy(h->streamed_sum, g_checksum_get_string(h->stream_sum),
              sizeof(h->streamed_sum));
    g_clear_pointer(&h->stream_sum, g_checksum_free);
    c->frame_hash = h->streamed_sum;
}

static void host_load_begin(void *opaque)
{
    ((Host *)opaque)->load_begins++;
}

static bool host_load_end(void *opaque, bool changed, XblkError **err)
{
    Host *h = opaque;
    h->load_ends++;
    h->last_load_changed = changed;
    /* The loaded state's RAM is readable here, and only here. */
    uint8_t first[16];
    g_assert_true(xblk_state_read_ram(h->e, 0, first, sizeof(first),
                                      NULL));
    g_assert_true(memcmp(first, h->ram, sizeof(first)) == 0 || !changed);
    g_assert_false(xblk_state_read_ram(h->e, (uint64_t)1 << 40, first,
                                       sizeof(first), NULL));
    return true;
}

static void host_init(Host *h, const XblkDeviceDesc *desc)
{
    XblkError *err = NULL;
    memset(h, 0, sizeof(*h));
    h->e = xblk_engine_new(NULL, &err);
    g_assert_null(err);
    h->ram_size = RAM_SIZE;
    h->ram = map_ram(h->ram_size);
    h->dev.prng = 88172645463325252ull;
    h->dev.delta = -5;
    h->dev.blob_len = 3;
    memcpy(h->dev.blob, "abc", 3);
    h->dev.inner[1].a = 77;
    g_assert_true(xblk_ram_add(h->e, "ram", h->ram, h->ram_size, &err));
    g_assert_true(xblk_device_add(h->e, desc, 0, &h->dev, &err));
    XblkHostOps ops = {
        .size = sizeof(ops), .machine_type = "api-test",
        .pause = host_pause, .resume = host_resume,
        .capture = host_capture, .run_paused = host_run_paused,
        .save_page = host_save_page, .save_finish = host_save_finish,
        .load_begin = host_load_begin, .load_end = host_load_end,
        .opaque = h,
    };
    g_assert_true(xblk_engine_set_host(h->e, &ops, &err));
    g_assert_null(err);
}

static void host_start_guest(Host *h)
{
    atomic_store(&h->stop_thread, false);
    h->thread = g_thread_new("guest", guest_thread, h);
}

static void host_stop_guest(Host *h)
{
    if (h->thread) {
        atomic_store(&h->stop_thread, true);
        g_thread_join(h->thread);
        h->thread = NULL;
    }
}

static void host_fini(Host *h)
{
    host_stop_guest(h);
    xblk_engine_free(h->e);
    munmap(h->ram, h->ram_size);
}

/* ---- running operations ---- */

typedef struct Op {
    bool done;
    XblkErrorCode code;         /* 0: success */
    char *message;
    XblkStateStats stats;
    bool in_call;
    uint64_t progress_calls;
} Op;

static void op_done(void *opaque, const XblkError *err,
                    const XblkStateStats *stats)
{
    Op *o = opaque;
    g_assert_false(o->in_call);
    g_assert_false(o->done);
    o->done = true;
    o->code = err ? xblk_error_code(err) : 0;
    o->message = err ? g_strdup(xblk_error_message(err)) : NULL;
    o->stats = *stats;
}

static void op_progress(void *opaque, uint64_t done, uint64_t total)
{
    ((Op *)opaque)->progress_calls++;
}

static void op_clear(Op *o)
{
    g_free(o->message);
    memset(o, 0, sizeof(*o));
}

/* Runs one operation to its end; returns its error code (0: success). */
static XblkErrorCode run_op(Host *h, XblkStateOp kind, const char *name,
                            Op *o)
{
    XblkError *err = NULL;
    XblkStateOptions opts = { .size = sizeof(opts), .progress = op_progress };
    op_clear(o);
    o->in_call = true;
    bool started =
        kind == XBLK_STATE_SAVE ? xblk_state_save(h->e, name, &opts, op_done,
                                                  o, &err) :
        kind == XBLK_STATE_LOAD ? xblk_state_load(h->e, name, &opts, op_done,
                                                  o, &err) :
        xblk_state_delete(h->e, name, NULL, op_done, o, &err);
    o->in_call = false;
    g_assert_null(err);
    g_assert_true(started);
    g_assert_false(o->done);
    pump_until(h->e, &o->done);
    return o->code;
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
    return d;
}

typedef struct Io {
    bool done;
    int ret;
} Io;

static void io_done(void *opaque, int ret)
{
    Io *io = opaque;
    io->ret = ret;
    io->done = true;
}

static void disk_rw(XblkEngine *e, XblkDisk *d, bool write, uint64_t off,
                    void *buf, size_t len)
{
    XblkError *err = NULL;
    Io io = { 0 };
    bool ok = write ? xblk_disk_write(d, off, buf, len, io_done, &io, &err)
                    : xblk_disk_read(d, off, buf, len, io_done, &io, &err);
    g_assert_null(err);
    g_assert_true(ok);
    pump_until(e, &io.done);
    g_assert_cmpint(io.ret, ==, 0);
}

/* ---- tests ---- */

/* A save while the guest writes RAM, a load, everything as at the
 * pause; qemu-img agrees. */
static void test_save_load_running(void)
{
    Host h;
    host_init(&h, &dev_desc_v1);
    g_autofree char *img = new_image("run.qcow2");
    XblkDisk *d = open_disk(h.e, "hd0", img);
    uint8_t sector[512];
    memset(sector, 0xa1, sizeof(sector));
    disk_rw(h.e, d, true, 0, sector, sizeof(sector));

    host_start_guest(&h);
    g_usleep(20000);
    Op o = { 0 };
    g_assert_cmpint(run_op(&h, XBLK_STATE_SAVE, "s1", &o), ==, 0);
    g_assert_cmpuint(o.stats.op, ==, XBLK_STATE_SAVE);
    g_assert_cmpint(o.stats.pause_ns, >, 0);
    g_assert_cmpint(o.stats.total_ns, >=, o.stats.pause_ns);
    g_assert_cmpuint(o.stats.vm_state_size, >, 0);
    g_assert_cmpuint(o.stats.frame, ==, h.dev_at_pause.steps);
    g_assert_cmpuint(o.progress_calls, >, 0);
    g_assert_cmpuint(h.pauses, ==, 1);
    g_assert_cmpuint(h.resumes, ==, 1);
    char sum_at_save[65];
    memcpy(sum_at_save, h.ram_sum_at_pause, sizeof(sum_at_save));
    /* The streamed pages are RAM as of the pause, though the guest wrote
     * on meanwhile; the menu's view of the state has what the host put
     * in. */
    g_assert_true(h.pages_in_order);
    g_assert_cmpuint(h.next_offset, ==, RAM_SIZE);
    g_assert_cmpstr(h.streamed_sum, ==, sum_at_save);
    g_assert_cmpuint(h.run_paused_calls, ==, 1);
    XblkError *err = NULL;
    XblkStateInfo *info = xblk_state_info(h.e, "s1", &err);
    g_assert_null(err);
    g_assert_cmpuint(info->frame, ==, h.dev_at_pause.steps);
    g_assert_cmpstr(info->title, ==, "api test");
    g_assert_cmpstr(info->frame_hash, ==, sum_at_save);
    xblk_state_info_free(info);
    g_assert_null(xblk_state_info(h.e, "nope", &err));
    expect_error(err, XBLK_ERROR_NOT_FOUND, "no VM state"), err = NULL;
    Dev dev_at_save = h.dev_at_pause;

    /* More guest work and a disk write: all of it must go. */
    g_usleep(20000);
    memset(sector, 0xb2, sizeof(sector));
    disk_rw(h.e, d, true, 0, sector, sizeof(sector));
    host_stop_guest(&h);
    g_autofree char *sum_later = ram_sum(&h);
    g_assert_cmpstr(sum_later, !=, sum_at_save);

    g_assert_cmpint(run_op(&h, XBLK_STATE_LOAD, "s1", &o), ==, 0);
    g_assert_cmpuint(h.load_begins, ==, 1);
    g_assert_cmpuint(h.load_ends, ==, 1);
    g_assert_true(h.last_load_changed);
    g_assert_cmpuint(h.run_paused_calls, ==, 3);   /* check, load */
    uint8_t b;
    g_assert_false(xblk_state_read_ram(h.e, 0, &b, 1, &err));
    expect_error(err, XBLK_ERROR_INVALID, "inside load_end"), err = NULL;
    g_autofree char *sum_loaded = ram_sum(&h);
    g_assert_cmpstr(sum_loaded, ==, sum_at_save);
    g_assert_cmpuint(h.dev.post_loads, ==, 1);
    h.dev.post_loads = 0;
    g_assert_true(memcmp(&h.dev, &dev_at_save, sizeof(Dev)) == 0);
    g_assert_cmpuint(o.stats.frame, ==, dev_at_save.steps);
    disk_rw(h.e, d, false, 0, sector, sizeof(sector));
    g_assert_cmpuint(sector[0], ==, 0xa1);
    g_assert_cmpuint(sector[511], ==, 0xa1);

    /* The guest runs on from the loaded state. */
    host_start_guest(&h);
    g_usleep(10000);
    host_stop_guest(&h);
    g_assert_cmpuint(h.dev.steps, >, dev_at_save.steps);

    xblk_disk_close(d);
    int st;
    g_autofree char *cmd = g_strdup_printf("qemu-img snapshot -l %s", img);
    g_autofree char *list = run(cmd, &st);
    g_assert_cmpint(st, ==, 0);
    g_assert_nonnull(strstr(list, "s1"));
    g_autofree char *chk = g_strdup_printf("qemu-img check -q %s", img);
    g_free(run(chk, &st));
    g_assert_cmpint(st, ==, 0);
    op_clear(&o);
    host_fini(&h);
}

/* Two regions: the state is their concatenation; the load copies. */
static void test_two_regions(void)
{
    Host h;
    host_init(&h, &dev_desc_v1);
    XblkError *err = NULL;
    size_t size2 = 2 * MiB;
    uint8_t *ram2 = map_ram(size2);
    g_assert_true(xblk_ram_add(h.e, "vram", ram2, size2, &err));
    g_autofree char *img = new_image("two.qcow2");
    XblkDisk *d = open_disk(h.e, "hd0", img);
    memset(h.ram, 0x11, 4096);
    memset(ram2 + size2 - 4096, 0x22, 4096);
    Op o = { 0 };
    g_assert_cmpint(run_op(&h, XBLK_STATE_SAVE, "two", &o), ==, 0);
    memset(h.ram, 0x33, 4096);
    memset(ram2 + size2 - 4096, 0x44, 4096);
    /* The host-side write helper: inside a region only. */
    uint8_t x = 0x55;
    g_assert_true(xblk_ram_write(h.e, ram2 + 5, &x, 1));
    uint8_t two[2] = { 0x66, 0x66 };
    g_assert_false(xblk_ram_write(h.e, ram2 + size2 - 1, two, 2));
    g_assert_false(xblk_ram_write(h.e, &x, two, 1));
    g_assert_cmpint(run_op(&h, XBLK_STATE_LOAD, "two", &o), ==, 0);
    g_assert_cmpuint(h.ram[0], ==, 0x11);
    g_assert_cmpuint(ram2[size2 - 1], ==, 0x22);
    g_assert_cmpuint(ram2[5], ==, 0);
    g_assert_cmpint(run_op(&h, XBLK_STATE_DELETE, "two", &o), ==, 0);
    g_assert_cmpint(run_op(&h, XBLK_STATE_LOAD, "two", &o), !=, 0);
    g_assert_nonnull(strstr(o.message, "does not exist"));
    op_clear(&o);
    xblk_disk_close(d);
    host_fini(&h);
    munmap(ram2, size2);
}

/* A version 1 state into a version 2 table; the host's check refusing. */
static void test_versions_and_check(void)
{
    Host h;
    host_init(&h, &dev_desc_v1);
    g_autofree char *img = new_image("ver.qcow2");
    XblkDisk *d = open_disk(h.e, "hd0", img);
    h.dev.steps = 41;
    Op o = { 0 };
    g_assert_cmpint(run_op(&h, XBLK_STATE_SAVE, "v1", &o), ==, 0);
    xblk_disk_close(d);
    host_fini(&h);

    /* A new host (a later release of it): table version 2. */
    host_init(&h, &dev_desc_v2);
    d = open_disk(h.e, "hd0", img);
    h.dev.steps = 7;
    memset(h.ram, 0x5a, 4096);
    refuse_check = true;
    /* The hook's own code comes back with its message. */
    g_assert_cmpint(run_op(&h, XBLK_STATE_LOAD, "v1", &o), ==,
                    XBLK_ERROR_INVALID);
    g_assert_nonnull(strstr(o.message, "the host refuses step 41"));
    refuse_check = false;
    g_assert_cmpuint(h.dev.steps, ==, 7);       /* nothing changed */
    g_assert_cmpuint(h.ram[0], ==, 0x5a);
    g_assert_cmpuint(h.dev.post_loads, ==, 0);

    load_old_calls = 0;
    g_assert_cmpint(run_op(&h, XBLK_STATE_LOAD, "v1", &o), ==, 0);
    g_assert_cmpuint(h.dev.steps, ==, 41);
    g_assert_cmpint(load_old_calls, ==, 1);
    g_assert_cmpuint(h.dev.added_in_v2, ==, 1001);
    g_assert_cmpuint(h.ram[0], ==, 0);
    g_assert_cmpuint(h.dev.post_loads, ==, 1);
    op_clear(&o);
    xblk_disk_close(d);
    host_fini(&h);

    /* A state of another machine type is refused. */
    XblkError *err = NULL;
    host_init(&h, &dev_desc_v1);
    d = open_disk(h.e, "hd0", img);
    XblkHostOps ops = {
        .size = sizeof(ops), .machine_type = "another-machine",
        .pause = host_pause, .resume = host_resume, .opaque = &h,
    };
    g_assert_true(xblk_engine_set_host(h.e, &ops, &err));
    h.dev.steps = 3;
    g_assert_cmpint(run_op(&h, XBLK_STATE_LOAD, "v1", &o), !=, 0);
    g_assert_nonnull(strstr(o.message, "api-test"));
    g_assert_cmpuint(h.dev.steps, ==, 3);
    op_clear(&o);
    xblk_disk_close(d);
    host_fini(&h);
}

static const XblkField past_fields[] = {
    XBLK_U64(Dev, prng),
    { .name = "past", .type = XBLK_FIELD_U32, .offset = sizeof(Dev) - 2,
      .count = 1, .elem_size = 4 },
    XBLK_FIELDS_END,
};
static const XblkField width_fields[] = {
    { .name = "steps", .type = XBLK_FIELD_U32,
      .offset = offsetof(Dev, steps), .count = 1, .elem_size = 2 },
    XBLK_FIELDS_END,
};
static const XblkField type_fields[] = {
    { .name = "steps", .type = (XblkFieldType)99,
      .offset = offsetof(Dev, steps), .count = 1, .elem_size = 4 },
    XBLK_FIELDS_END,
};
static const XblkField nested_fields[] = {
    { .name = "inner", .type = XBLK_FIELD_STRUCT,
      .offset = offsetof(Dev, inner), .count = 1, .elem_size = 3,
      .desc = &inner_desc },
    XBLK_FIELDS_END,
};
static const XblkField old_fields[] = {
    { .name = "notpast", .type = XBLK_FIELD_U32, .offset = 1024,
      .count = 1, .elem_size = 4, .version_removed = 1 },
    XBLK_FIELDS_END,
};
static const XblkDeviceDesc loop_desc;
static const XblkField loop_fields[] = {
    { .name = "self", .type = XBLK_FIELD_STRUCT, .offset = 0, .count = 1,
      .elem_size = sizeof(Dev), .desc = &loop_desc },
    XBLK_FIELDS_END,
};
static const XblkDeviceDesc loop_desc = {
    .size = sizeof(XblkDeviceDesc), .field_size = sizeof(XblkField),
    .name = "loop", .version = 1, .struct_size = sizeof(Dev),
    .fields = loop_fields,
};

static XblkDeviceDesc bad_desc(const char *name, const XblkField *fields)
{
    XblkDeviceDesc d = {
        .size = sizeof(XblkDeviceDesc), .field_size = sizeof(XblkField),
        .name = name, .version = 1, .struct_size = sizeof(Dev),
        .fields = fields,
    };
    return d;
}

static void test_bad_input(void)
{
    XblkError *err = NULL;
    Op o = { 0 };
    uint8_t *spare = map_ram(4 * MiB);

    /* NULL handles. */
    g_assert_false(xblk_ram_add(NULL, "r", spare, MiB, &err));
    expect_error(err, XBLK_ERROR_INVALID, "engine"), err = NULL;
    g_assert_false(xblk_state_save(NULL, "x", NULL, op_done, &o, &err));
    expect_error(err, XBLK_ERROR_INVALID, "engine"), err = NULL;
    g_assert_false(xblk_device_add(NULL, &dev_desc_v1, 0, &o, &err));
    expect_error(err, XBLK_ERROR_INVALID, "engine"), err = NULL;
    xblk_host_paused(NULL);
    g_assert_false(xblk_state_busy(NULL));

    XblkEngine *e = xblk_engine_new(NULL, &err);
    g_assert_null(err);
    /* No host, no RAM. */
    g_assert_false(xblk_state_save(e, "x", NULL, op_done, &o, &err));
    expect_error(err, XBLK_ERROR_INVALID, "no host"), err = NULL;
    g_assert_false(xblk_engine_set_host(e, NULL, &err));
    expect_error(err, XBLK_ERROR_INVALID, "XblkHostOps"), err = NULL;
    XblkHostOps ops = { .size = sizeof(ops), .machine_type = "t",
                        .pause = host_pause };
    g_assert_false(xblk_engine_set_host(e, &ops, &err));
    expect_error(err, XBLK_ERROR_INVALID, "resume"), err = NULL;
    xblk_engine_free(e);

    Host h;
    host_init(&h, &dev_desc_v1);
    e = h.e;
    /* RAM: misaligned, overlapping, duplicate name, too many. */
    g_assert_false(xblk_ram_add(e, "r", spare + 1, MiB, &err));
    expect_error(err, XBLK_ERROR_INVALID, "page size"), err = NULL;
    g_assert_false(xblk_ram_add(e, "r", spare, 1000, &err));
    expect_error(err, XBLK_ERROR_INVALID, "page size"), err = NULL;
    g_assert_false(xblk_ram_add(e, "r", h.ram + MiB, MiB, &err));
    expect_error(err, XBLK_ERROR_INVALID, "overlaps region 'ram'");
    err = NULL;
    g_assert_false(xblk_ram_add(e, "ram", spare, MiB, &err));
    expect_error(err, XBLK_ERROR_INVALID, "exists"), err = NULL;
    g_assert_false(xblk_ram_add(e, NULL, spare, MiB, &err));
    expect_error(err, XBLK_ERROR_INVALID, "name"), err = NULL;
    for (int i = 0; i < 3; i++) {
        g_autofree char *n = g_strdup_printf("r%d", i);
        g_assert_true(xblk_ram_add(e, n, spare + i * MiB, MiB, &err));
    }
    g_assert_false(xblk_ram_add(e, "r3", spare + 3 * MiB, MiB, &err));
    expect_error(err, XBLK_ERROR_INVALID, "at most 4"), err = NULL;

    /* Tables. */
    Dev other;
    XblkDeviceDesc d = bad_desc("past", past_fields);
    g_assert_false(xblk_device_add(e, &d, 0, &other, &err));
    expect_error(err, XBLK_ERROR_INVALID, "runs past its struct");
    err = NULL;
    d = bad_desc("width", width_fields);
    g_assert_false(xblk_device_add(e, &d, 0, &other, &err));
    expect_error(err, XBLK_ERROR_INVALID, "does not fit its type");
    err = NULL;
    d = bad_desc("type", type_fields);
    g_assert_false(xblk_device_add(e, &d, 0, &other, &err));
    expect_error(err, XBLK_ERROR_INVALID, "unknown type"), err = NULL;
    d = bad_desc("old", old_fields);
    d.old_size = 16;
    g_assert_false(xblk_device_add(e, &d, 0, &other, &err));
    expect_error(err, XBLK_ERROR_INVALID, "runs past"), err = NULL;
    d = bad_desc("nested", nested_fields);
    g_assert_false(xblk_device_add(e, &d, 0, &other, &err));
    expect_error(err, XBLK_ERROR_INVALID, "another size"), err = NULL;
    g_assert_false(xblk_device_add(e, &loop_desc, 0, &other, &err));
    expect_error(err, XBLK_ERROR_INVALID, "nest deeper"), err = NULL;
    d = bad_desc("small", dev_fields_v1);
    d.size = 8;
    g_assert_false(xblk_device_add(e, &d, 0, &other, &err));
    expect_error(err, XBLK_ERROR_INVALID, "too small"), err = NULL;
    d = bad_desc("nover", dev_fields_v1);
    d.version = 0;
    g_assert_false(xblk_device_add(e, &d, 0, &other, &err));
    expect_error(err, XBLK_ERROR_INVALID, "version"), err = NULL;
    g_assert_false(xblk_device_add(e, &dev_desc_v1, 0, &other, &err));
    expect_error(err, XBLK_ERROR_EXISTS, "exists"), err = NULL;

    /* None of that changed what a state holds: a save and a load work,
     * with the one device. */
    g_autofree char *img = new_image("bad.qcow2");
    XblkDisk *disk = open_disk(e, "hd0", img);
    h.dev.steps = 9;
    g_assert_cmpint(run_op(&h, XBLK_STATE_SAVE, "ok", &o), ==, 0);

    /* A save while one runs; a bad name; a missing state. */
    Op o2 = { 0 };
    o.done = false;
    g_assert_true(xblk_state_save(e, "second", NULL, op_done, &o, &err));
    g_assert_true(xblk_state_busy(e));
    g_assert_false(xblk_state_save(e, "third", NULL, op_done, &o2, &err));
    expect_error(err, XBLK_ERROR_BUSY, "in progress"), err = NULL;
    g_assert_false(xblk_state_load(e, "ok", NULL, op_done, &o2, &err));
    expect_error(err, XBLK_ERROR_BUSY, "in progress"), err = NULL;
    g_assert_false(xblk_ram_add(e, "late", spare, MiB, &err));
    expect_error(err, XBLK_ERROR_BUSY, "in progress"), err = NULL;
    pump_until(e, &o.done);
    g_assert_cmpint(o.code, ==, 0);
    g_assert_false(o2.done);
    g_assert_false(xblk_state_save(e, "", NULL, op_done, &o2, &err));
    expect_error(err, XBLK_ERROR_INVALID, "needs a tag"), err = NULL;
    g_assert_false(xblk_state_save(e, "x", NULL, NULL, NULL, &err));
    expect_error(err, XBLK_ERROR_INVALID, "callback"), err = NULL;
    g_assert_cmpint(run_op(&h, XBLK_STATE_SAVE, "ok", &o), ==,
                    XBLK_ERROR_EXISTS);
    h.dev.steps = 10;
    g_assert_cmpint(run_op(&h, XBLK_STATE_LOAD, "missing", &o), !=, 0);
    g_assert_nonnull(strstr(o.message, "does not exist"));
    g_assert_cmpuint(h.dev.steps, ==, 10);
    g_assert_cmpint(run_op(&h, XBLK_STATE_LOAD, "ok", &o), ==, 0);
    g_assert_cmpuint(h.dev.steps, ==, 9);

    /* Cancelled before durable: nothing on the disk. */
    g_assert_false(xblk_state_cancel(e));
    op_clear(&o);
    g_assert_true(xblk_state_save(e, "cancelled", NULL, op_done, &o, &err));
    g_assert_true(xblk_state_cancel(e));
    pump_until(e, &o.done);
    g_assert_cmpint(o.code, !=, 0);
    g_assert_nonnull(strstr(o.message, "cancelled"));
    int st;
    g_autofree char *cmd = g_strdup_printf("qemu-img snapshot -l -U %s",
                                           img);
    g_autofree char *list = run(cmd, &st);
    g_assert_null(strstr(list, "cancelled"));
    g_assert_nonnull(strstr(list, "second"));
    /* Nothing unfinished to clean up. */
    g_assert_cmpint(xblk_state_cleanup(e, NULL, NULL, &err), ==, 0);
    g_assert_null(err);
    op_clear(&o);
    op_clear(&o2);
    xblk_disk_close(disk);
    host_fini(&h);
    munmap(spare, 4 * MiB);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_autofree char *dir = g_dir_make_tmp("xblk-api-state-XXXXXX", NULL);
    tmpdir = dir;
    g_test_add_func("/api/state/save-load-running", test_save_load_running);
    g_test_add_func("/api/state/two-regions", test_two_regions);
    g_test_add_func("/api/state/versions-and-check",
                    test_versions_and_check);
    g_test_add_func("/api/state/bad-input", test_bad_input);
    int r = g_test_run();
    g_autofree char *rm = g_strdup_printf("rm -rf %s", dir);
    int st;
    g_free(run(rm, &st));
    return r;
}
