/*
 * main-loop.h - the event loop (a GMainContext, GLib's default unless an
 * embedder chose one), bottom halves
 * and the worker pool that runs blocking syscalls off the loop.
 *
 * Bottom halves may be scheduled from any thread; they always run on the
 * loop's thread.  Worker functions run on pool threads and must touch only
 * their own arguments; their completion resumes the submitting coroutine
 * on the loop.
 */
#ifndef XBLK_UTIL_MAIN_LOOP_H
#define XBLK_UTIL_MAIN_LOOP_H

#include "util/coroutine.h"
#include <glib.h>
#include <glib-unix.h>
#include <stdbool.h>

/*
 * The GMainContext every engine source lives on: GLib's default, unless
 * an embedder chose its own with aio_set_context() before the engine
 * created anything (libxblk, include/xblk/).  The loop's thread is the
 * one that iterates it.
 */
GMainContext *aio_context(void);
/* false (nothing changed) once a source exists on another context. */
bool aio_set_context(GMainContext *ctx);
/* g_timeout_add, g_unix_fd_add and g_source_remove on aio_context(). */
guint aio_timeout_add(guint ms, GSourceFunc fn, gpointer data);
guint aio_fd_add(int fd, GIOCondition cond, GUnixFDSourceFunc fn,
                 gpointer data);
void aio_source_remove(guint id);

typedef void BHFunc(void *opaque);

/* Runs fn(opaque) once, soon, on the loop thread. Thread-safe. */
void aio_bh_schedule(BHFunc *fn, void *opaque);
/* One loop iteration; returns true if anything was dispatched. */
bool aio_poll(bool blocking);
#define AIO_POLL_WHILE(cond) do { while (cond) { aio_poll(true); } } while (0)

typedef int WorkerFunc(void *opaque);

/*
 * Runs fn(opaque) on a pool thread and yields until it is done; returns
 * fn's result.  The coroutine resumes on the loop thread.
 */
int coroutine_fn worker_pool_run(WorkerFunc *fn, void *opaque);
/* Number of submissions currently queued or running (for tests). */
unsigned worker_pool_busy(void);

#endif
