/*
 * devhost-test.h - a DevHost (hw/devio.h) for device unit tests: guest RAM
 * is a plain buffer, interrupt lines are recorded, the virtual clock is a
 * variable the test moves, and block requests run on libxblk's disks
 * (include/xblk/xblk-disk.h: the request's XblkDisk) through the test
 * thread's own main loop - the GMainContext the test made the engine on
 * (TestHost.loop: GLib's default unless the test sets another, e.g.
 * xblk_engine_glib_context()).
 *
 * It keeps the machine's contract: a request completes at submit +
 * latency_ns, in deadline order, never before its host I/O is done, and
 * always on the calling (device) thread.  devhost_test_run() plays the
 * machine's vCPU waiting in hlt: it waits for the I/O, moves the clock to
 * the deadline and runs the completion.
 *
 * Header-only (static functions): each test program includes it once.
 */
#ifndef XBLK_TESTS_HW_DEVHOST_TEST_H
#define XBLK_TESTS_HW_DEVHOST_TEST_H

#include "hw/devio.h"
#include <errno.h>
#include <glib.h>
#include <string.h>

typedef struct TestHost {
    DevHost host;
    uint8_t *ram;
    uint64_t ram_size;
    int64_t clock_ns;
    bool irq_level[16];
    unsigned irq_raised[16];        /* rising edges seen per line */
    GQueue pending;                 /* DevIORequest *, host I/O running */
    GQueue done;                    /* host I/O finished, not delivered */
    unsigned io_submitted;
    unsigned stop_requests;         /* io_error_stop calls */
    unsigned error_events;          /* io_error_event calls */
    char last_error_action[16];
    unsigned tray_moves;            /* tray_moved calls */
    bool tray_open;                 /* as the last one said */
    char tray_dev[16];
    GMainContext *loop;             /* where the disks' completions run */
} TestHost;

typedef struct TestHostIO {
    TestHost *th;
    DevIORequest *req;
} TestHostIO;

static void th_set_irq(DevHost *h, int irq, bool level)
{
    TestHost *th = (TestHost *)h;
    g_assert(irq >= 0 && irq < 16);
    if (level && !th->irq_level[irq]) {
        th->irq_raised[irq]++;
    }
    th->irq_level[irq] = level;
}

static bool th_in_ram(TestHost *th, uint64_t gpa, uint64_t len)
{
    return gpa <= th->ram_size && len <= th->ram_size - gpa;
}

static bool th_ram_read(DevHost *h, uint64_t gpa, void *buf, uint64_t len)
{
    TestHost *th = (TestHost *)h;
    if (!th_in_ram(th, gpa, len)) {
        return false;
    }
    memcpy(buf, th->ram + gpa, len);
    return true;
}

static bool th_ram_write(DevHost *h, uint64_t gpa, const void *buf,
                         uint64_t len)
{
    TestHost *th = (TestHost *)h;
    if (!th_in_ram(th, gpa, len)) {
        return false;
    }
    memcpy(th->ram + gpa, buf, len);
    return true;
}

static void *th_map_write(DevHost *h, uint64_t gpa, uint64_t len)
{
    TestHost *th = (TestHost *)h;
    return th_in_ram(th, gpa, len) ? th->ram + gpa : NULL;
}

static const void *th_map_read(DevHost *h, uint64_t gpa, uint64_t len)
{
    return th_map_write(h, gpa, len);
}

static int64_t th_clock(DevHost *h)
{
    return ((TestHost *)h)->clock_ns;
}

static void th_io_done(void *opaque, int ret)
{
    TestHostIO *io = opaque;
    io->req->ret = ret;
    g_queue_remove(&io->th->pending, io->req);
    g_queue_push_tail(&io->th->done, io->req);
    g_free(io);
}

/* The errno the block layer gave a request the disk now refuses at
 * submission (xblk_disk_*() false): no medium, a write to a read-only
 * disk, anything else (a range past the end) EIO. */
static int th_refused_errno(DevIORequest *req)
{
    if (!req->disk || xblk_disk_length(req->disk, NULL) < 0) {
        return -ENOMEDIUM;
    }
    if (req->op == DEVIO_WRITE && xblk_disk_read_only(req->disk)) {
        return -EPERM;
    }
    return -EIO;
}

static void th_submit(DevHost *h, DevIORequest *req)
{
    TestHost *th = (TestHost *)h;
    TestHostIO *io = g_new0(TestHostIO, 1);
    XblkError *err = NULL;
    bool ok = false;
    g_assert(req->latency_ns >= 0);
    req->deadline_ns = th->clock_ns + req->latency_ns;
    io->th = th;
    io->req = req;
    th->io_submitted++;
    g_queue_push_tail(&th->pending, req);
    switch (req->op) {
    case DEVIO_READ:
        ok = xblk_disk_read(req->disk, req->offset, req->buf, req->len,
                            th_io_done, io, &err);
        break;
    case DEVIO_WRITE:
        ok = xblk_disk_write(req->disk, req->offset, req->buf, req->len,
                             th_io_done, io, &err);
        break;
    case DEVIO_FLUSH:
        ok = xblk_disk_flush(req->disk, th_io_done, io, &err);
        break;
    }
    if (!ok) {
        /* Refused: it still completes at its deadline, never inside
         * submit, with the error the block layer would have given. */
        xblk_error_free(err);
        g_queue_remove(&th->pending, req);
        req->ret = th_refused_errno(req);
        g_queue_push_tail(&th->done, req);
        g_free(io);
    }
}

static void th_io_error_stop(DevHost *h, const char *dev, const char *node,
                             bool is_write, int ret)
{
    TestHost *th = (TestHost *)h;
    th->stop_requests++;
    g_strlcpy(th->last_error_action, "stop", sizeof(th->last_error_action));
}

static void th_io_error_event(DevHost *h, const char *dev, const char *node,
                              bool is_write, int ret, const char *action)
{
    TestHost *th = (TestHost *)h;
    th->error_events++;
    g_strlcpy(th->last_error_action, action, sizeof(th->last_error_action));
}

static void th_tray_moved(DevHost *h, const char *dev, bool open)
{
    TestHost *th = (TestHost *)h;
    th->tray_moves++;
    th->tray_open = open;
    g_strlcpy(th->tray_dev, dev, sizeof(th->tray_dev));
}

static const DevHostOps test_host_ops = {
    .set_irq = th_set_irq,
    .ram_read = th_ram_read,
    .ram_write = th_ram_write,
    .ram_map_write = th_map_write,
    .ram_map_read = th_map_read,
    .clock_ns = th_clock,
    .submit = th_submit,
    .io_error_stop = th_io_error_stop,
    .io_error_event = th_io_error_event,
    .tray_moved = th_tray_moved,
};

static inline TestHost *test_host_new(uint64_t ram_size)
{
    TestHost *th = g_new0(TestHost, 1);
    th->host.ops = &test_host_ops;
    th->ram = g_malloc0(ram_size);
    th->ram_size = ram_size;
    g_queue_init(&th->pending);
    g_queue_init(&th->done);
    th->loop = g_main_context_default();
    return th;
}

static inline void test_host_free(TestHost *th)
{
    g_assert(g_queue_is_empty(&th->pending));
    g_queue_clear(&th->done);
    g_free(th->ram);
    g_free(th);
}

static gint th_by_deadline(gconstpointer a, gconstpointer b, gpointer u)
{
    const DevIORequest *x = a, *y = b;
    return x->deadline_ns < y->deadline_ns ? -1 :
           x->deadline_ns > y->deadline_ns;
}

/* Delivers the earliest outstanding request: waits for its host I/O,
 * moves the clock to its deadline (never backwards) and runs complete().
 * Returns false when nothing is outstanding. */
static inline bool test_host_step(TestHost *th)
{
    if (g_queue_is_empty(&th->pending) && g_queue_is_empty(&th->done)) {
        return false;
    }
    /* The earliest deadline may still be in flight: wait for all of it. */
    while (!g_queue_is_empty(&th->pending)) {
        g_main_context_iteration(th->loop, TRUE);
    }
    g_queue_sort(&th->done, th_by_deadline, NULL);
    DevIORequest *req = g_queue_pop_head(&th->done);
    if (req->deadline_ns > th->clock_ns) {
        th->clock_ns = req->deadline_ns;
    }
    req->complete(req, req->ret);
    return true;
}

/* Runs every outstanding request (and those their completions start). */
static inline void test_host_run(TestHost *th)
{
    while (test_host_step(th)) {
    }
}

static inline unsigned test_host_outstanding(TestHost *th)
{
    return g_queue_get_length(&th->pending) + g_queue_get_length(&th->done);
}

#endif
