/*
 * engine.c - the engine handle (include/xblk/xblk-engine.h): binds the
 * engine's loop (util/main-loop.h) to the host's GMainContext, or to one
 * of its own that the host drives through a descriptor.
 *
 * Own context: the engine acquires it on the creating thread and keeps
 * an epoll descriptor whose set mirrors the context's poll descriptors.
 * xblk_engine_dispatch() runs whole GLib cycles (prepare, query, check,
 * dispatch, never a cycle left half done, so the engine's own waits may
 * iterate the context between two dispatches) and after the last one
 * brings the epoll set and the timeout up to date.  Level-triggered, so
 * a descriptor with unread input keeps the host waking.  A source's
 * prepare may do work the host's wait depends on (the io_uring source
 * submits queued requests there), so the host runs xblk_engine_prepare()
 * - a dispatch - right before each wait.
 *
 * Invariants: at most one engine exists; its context is aio_context().
 * The own context is made once per process and kept, because the loop's
 * sources stay on the context they were first attached to.
 */
#include "api/internal.h"
#include "util/main-loop.h"
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static XblkEngine *the_engine;
static GMainContext *own_context;

XblkEngine *xblk_api_engine(void)
{
    return the_engine;
}

static bool engine_bind(XblkEngine *e, GMainContext *host_ctx,
                        XblkError **err)
{
    if (!host_ctx) {
        if (!own_context) {
            own_context = g_main_context_new();
        }
        host_ctx = own_context;
        e->own_context = true;
    }
    if (!aio_set_context(host_ctx)) {
        xblk_api_error(err, XBLK_ERROR_BUSY,
                       "the engine's loop already runs on another "
                       "GMainContext (one per process)");
        return false;
    }
    if (e->own_context && !g_main_context_acquire(host_ctx)) {
        xblk_api_error(err, XBLK_ERROR_BUSY,
                       "the engine's context is owned by another thread");
        return false;
    }
    e->ctx = g_main_context_ref(host_ctx);
    return true;
}

XblkEngine *xblk_engine_new(const XblkEngineOptions *opts, XblkError **err)
{
    if (the_engine) {
        xblk_api_error(err, XBLK_ERROR_BUSY,
                       "an engine already exists in this process");
        return NULL;
    }
    if (opts && opts->size < offsetof(XblkEngineOptions, glib_context) +
                             sizeof(opts->glib_context)) {
        xblk_api_error(err, XBLK_ERROR_INVALID,
                       "XblkEngineOptions.size %zu is too small",
                       opts->size);
        return NULL;
    }
    XblkEngine *e = g_new0(XblkEngine, 1);
    e->epfd = -1;
    e->timeout_ms = -1;
    if (!engine_bind(e, opts ? opts->glib_context : NULL, err)) {
        g_free(e);
        return NULL;
    }
    if (e->own_context) {
        e->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (e->epfd < 0) {
            xblk_api_error(err, XBLK_ERROR_FAILED, "epoll_create1: %s",
                           g_strerror(errno));
            g_main_context_release(e->ctx);
            g_main_context_unref(e->ctx);
            g_free(e);
            return NULL;
        }
    }
    the_engine = e;
    return e;
}

void xblk_engine_free(XblkEngine *e)
{
    if (!e) {
        return;
    }
    g_assert(e == the_engine);
    xblk_api_monitor_free_all();
    xblk_api_state_free(e);
    while (e->disks) {
        xblk_disk_close(e->disks->data);
    }
    if (e->own_context) {
        close(e->epfd);
        g_main_context_release(e->ctx);
    }
    g_main_context_unref(e->ctx);
    g_free(e->fds);
    g_free(e);
    the_engine = NULL;
}

void xblk_engine_call(XblkEngine *e, void (*fn)(void *arg), void *arg)
{
    g_assert(e && e == the_engine);
    aio_bh_schedule(fn, arg);
}

void *xblk_engine_glib_context(XblkEngine *e)
{
    return e ? e->ctx : NULL;
}

/* ---- own context: descriptor and dispatch ---- */

static uint32_t epoll_events_of(gushort glib)
{
    return (glib & G_IO_IN ? EPOLLIN : 0) | (glib & G_IO_OUT ? EPOLLOUT : 0) |
           (glib & G_IO_PRI ? EPOLLPRI : 0);
}

/* Makes the epoll set equal the context's current poll descriptors. */
static void engine_sync_epoll(XblkEngine *e, GPollFD *now, int n)
{
    for (int i = 0; i < e->nfds; i++) {
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, e->fds[i].fd, NULL);
    }
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = { .events = epoll_events_of(now[i].events),
                                  .data.fd = now[i].fd };
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, now[i].fd, &ev) < 0 &&
            errno == EEXIST) {
            epoll_ctl(e->epfd, EPOLL_CTL_MOD, now[i].fd, &ev);
        }
    }
    if (n > e->fds_alloc) {
        e->fds = g_renew(GPollFD, e->fds, n);
        e->fds_alloc = n;
    }
    memcpy(e->fds, now, n * sizeof(GPollFD));
    e->nfds = n;
}

/* One whole GLib cycle without waiting; true if anything was ready.  The
 * descriptors and timeout of its query become the host's. */
static bool engine_cycle(XblkEngine *e, GPollFD **fds, int *n, int *alloc)
{
    gint prio, timeout;
    g_main_context_prepare(e->ctx, &prio);
    for (;;) {
        int got = g_main_context_query(e->ctx, prio, &timeout, *fds, *alloc);
        if (got <= *alloc) {
            *n = got;
            break;
        }
        *fds = g_renew(GPollFD, *fds, got);
        *alloc = got;
    }
    g_poll(*fds, *n, 0);
    e->timeout_ms = timeout;
    if (g_main_context_check(e->ctx, prio, *fds, *n)) {
        g_main_context_dispatch(e->ctx);
        return true;
    }
    return false;
}

int xblk_engine_fd(XblkEngine *e)
{
    return e && e->own_context ? e->epfd : -1;
}

/* The last cycle of a dispatch ran its sources' prepare - which hands
 * queued I/O to the kernel - and left the set and timeout current. */
int xblk_engine_prepare(XblkEngine *e)
{
    int ran = xblk_engine_dispatch(e);
    if (ran < 0) {
        return -1;
    }
    /* Callbacks ran: the host's state changed, let it look before it
     * sleeps. */
    return ran > 0 ? 0 : e->timeout_ms;
}

int xblk_engine_dispatch(XblkEngine *e)
{
    if (!e || !e->own_context) {
        return -1;
    }
    int alloc = 16, n = 0, cycles = 0;
    GPollFD *fds = g_new(GPollFD, alloc);
    /* Bounded: a source that is always ready must not starve the host. */
    while (cycles < 64 && engine_cycle(e, &fds, &n, &alloc)) {
        cycles++;
    }
    if (cycles == 64) {
        e->timeout_ms = 0;          /* more is ready: come back at once */
    }
    engine_sync_epoll(e, fds, n);
    g_free(fds);
    return cycles;
}
