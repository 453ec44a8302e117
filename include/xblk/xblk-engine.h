/*
 * xblk-engine.h - the engine: libxblk's event loop inside the host's.
 * Include <xblk/xblk.h>, not this file.
 *
 * The engine runs on one thread, the host's loop thread, in one of two
 * ways chosen at creation:
 *
 *   - GLib hosts hand it their GMainContext (XblkEngineOptions.
 *     glib_context) and iterate that context as they always do; the
 *     engine's sources (disk completions, timers, monitor sockets) live
 *     on it.
 *   - Other hosts let the engine make its own context and drive it
 *     through one file descriptor, in a loop of three calls:
 *         timeout = xblk_engine_prepare(engine);
 *         wait until xblk_engine_fd(engine) is readable or timeout ms
 *             have passed (poll, epoll, select, the host's own loop);
 *         xblk_engine_dispatch(engine);
 *     prepare must come right before each wait: the engine's calls made
 *     since the last dispatch may have queued work that only prepare
 *     hands to the kernel.
 *
 * Threads: every function of the engine and of the objects it owns
 * (disks, snapshots) is called on the loop thread - the thread that
 * created the engine - unless its comment says otherwise.  Completion
 * callbacks run on that thread too, from the host's iteration of the
 * context or from xblk_engine_prepare() / xblk_engine_dispatch(), never
 * from inside the call that started the operation.  Calls that finish
 * work synchronously (opening a disk, a snapshot transaction) iterate the
 * context themselves while they wait, so other completions may run
 * inside them.
 *
 * One engine per process: the disks' node names and the image locks are
 * process-wide.
 */
#ifndef XBLK_ENGINE_H
#define XBLK_ENGINE_H

#include "xblk-common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct XblkEngine XblkEngine;

typedef struct XblkEngineOptions {
    size_t size;                /* sizeof(XblkEngineOptions) */
    /* A GMainContext * that the host iterates on the calling thread, or
     * NULL: the engine makes its own, driven by xblk_engine_fd() and
     * xblk_engine_dispatch(). */
    void *glib_context;
} XblkEngineOptions;

/* opts may be NULL (the defaults: an own context).  Fails with
 * XBLK_ERROR_BUSY while another engine exists in the process. */
XBLK_API XblkEngine *xblk_engine_new(const XblkEngineOptions *opts,
                                     XblkError **err);
/* Waits for every disk's requests, closes every disk the host did not
 * close, and frees the engine.  NULL is accepted. */
XBLK_API void xblk_engine_free(XblkEngine *engine);

/*
 * Own context only (glib_context NULL; otherwise these return -1 and do
 * nothing).  xblk_engine_fd: a descriptor that becomes readable when the
 * engine has work; the same for the engine's life.
 * xblk_engine_prepare: submits queued work, runs what is already ready,
 * and returns the longest the host may wait before the next dispatch
 * (-1: until the descriptor is readable; 0: callbacks ran or more is
 * ready - look at your own state, then prepare again).
 * xblk_engine_dispatch: runs what is ready, never blocks, and returns
 * how many rounds of ready work it ran (0: nothing was ready), or -1.
 * Both stop after a bounded number of rounds so that the host is never
 * starved (prepare then returns 0).
 */
XBLK_API int xblk_engine_fd(XblkEngine *engine);
/* Any thread: fn(arg) runs on the loop thread soon (never inside this
 * call), calls in the order they were made - how a host's vCPU or
 * device thread hands work to the loop. */
XBLK_API void xblk_engine_call(XblkEngine *engine, void (*fn)(void *arg),
                               void *arg);
/* The GMainContext * the engine runs on (the host's, or its own), for
 * hosts that attach GLib sources of their own beside it. */
XBLK_API void *xblk_engine_glib_context(XblkEngine *engine);
XBLK_API int xblk_engine_prepare(XblkEngine *engine);
XBLK_API int xblk_engine_dispatch(XblkEngine *engine);

#ifdef __cplusplus
}
#endif

#endif
