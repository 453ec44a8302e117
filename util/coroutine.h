/*
 * coroutine.h - cooperative coroutines, mutexes and wait queues.
 *
 * Block drivers are written as coroutines: straight-line code that yields
 * while a worker thread performs a blocking syscall.  All coroutines run on
 * the thread that owns the main loop; none may be entered from another
 * thread (use aio_bh_schedule() to get onto the loop first).
 *
 * Invariants: a coroutine is either running (it is co_self() or a caller
 * of it), suspended in co_yield(), or finished and back in the pool.
 * co_enter() of a running coroutine is a bug and aborts.
 */
#ifndef XBLK_UTIL_COROUTINE_H
#define XBLK_UTIL_COROUTINE_H

#include <glib.h>
#include <stdbool.h>

/* Marks functions that may yield: call them only from coroutine context. */
#define coroutine_fn

typedef struct Coroutine Coroutine;
typedef void CoroutineEntry(void *opaque);

Coroutine *co_create(CoroutineEntry *entry, void *opaque);
/* Starts or resumes co; returns when co yields or finishes. */
void co_enter(Coroutine *co);
/* Resumes co from a bottom half of the main loop (safe from any context). */
void co_wake(Coroutine *co);
void coroutine_fn co_yield(void);
Coroutine *co_self(void);
bool co_in_coroutine(void);
/* Yields now and resumes at the next main-loop iteration. */
void coroutine_fn co_yield_to_loop(void);

/* Wait queue: coroutines parked until someone restarts them. */
typedef struct CoQueue {
    GQueue waiters;
} CoQueue;

typedef struct CoMutex {
    Coroutine *holder;
    unsigned waiting;
    CoQueue queue;
} CoMutex;

void co_queue_init(CoQueue *q);
/* Parks the caller; mutex (optional) is released while parked and retaken. */
void coroutine_fn co_queue_wait(CoQueue *q, CoMutex *mutex);
bool co_queue_next(CoQueue *q);
void co_queue_restart_all(CoQueue *q);
bool co_queue_empty(const CoQueue *q);

void co_mutex_init(CoMutex *m);
void coroutine_fn co_mutex_lock(CoMutex *m);
void coroutine_fn co_mutex_unlock(CoMutex *m);

/*
 * Runs entry(opaque) in a new coroutine and, when called outside one, polls
 * the main loop until it finishes.  Inside a coroutine it just calls entry.
 */
void co_run_sync(CoroutineEntry *entry, void *opaque);

#endif
