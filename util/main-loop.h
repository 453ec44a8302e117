/*
 * main-loop.h - the event loop (GLib's default GMainContext), bottom halves
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
#include <stdbool.h>

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
