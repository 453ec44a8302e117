/*
 * coroutine.c - coroutines on ucontext for start-up and sigsetjmp/siglongjmp
 * (without signal-mask saving) for switches, so a switch costs no syscall.
 * Stacks are mmap'd with a guard page and recycled through a small pool.
 * Under AddressSanitizer every switch is announced with the fiber API.
 */
#undef _FORTIFY_SOURCE  /* longjmp between stacks trips __longjmp_chk */
#include "util/coroutine.h"
#include "util/main-loop.h"
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define CO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CO_ASAN 1
#endif
#endif

#ifdef CO_ASAN
#include <dlfcn.h>
/* ASan's swapcontext interceptor warns on every process start; we
 * announce the switches ourselves, so call libc's directly. */
static int co_swapcontext(ucontext_t *from, const ucontext_t *to)
{
    static int (*real)(ucontext_t *, const ucontext_t *);
    if (!real) {
        void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
        real = libc ? dlsym(libc, "swapcontext") : NULL;
        if (!real) {
            real = swapcontext;
        }
    }
    return real(from, to);
}
#else
#define co_swapcontext swapcontext
#endif

#ifdef CO_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
                                    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old,
                                     size_t *size_old);
#endif

#define CO_STACK_SIZE (1u << 20)
#define CO_POOL_MAX 128

typedef enum { CO_YIELD = 1, CO_TERMINATE = 2, CO_ENTER = 3 } CoAction;

struct Coroutine {
    CoroutineEntry *entry;
    void *opaque;
    Coroutine *caller;        /* who entered us; NULL when suspended */
    sigjmp_buf env;
    void *stack;
    size_t stack_size;
    bool scheduled;           /* a co_wake() is pending */
#ifdef CO_ASAN
    void *fake_stack;
#endif
};

/* The "leader" stands for the thread's own stack. */
static __thread Coroutine co_leader;
static __thread Coroutine *co_current;
static __thread GQueue co_pool = G_QUEUE_INIT;

#ifdef CO_ASAN
static __thread const void *leader_stack_bottom;
static __thread size_t leader_stack_size;
#endif
static __thread Coroutine *co_switch_from;   /* for ASan bookkeeping */

static void co_start_switch(Coroutine *from, Coroutine *to, CoAction action)
{
    co_switch_from = from;
#ifdef CO_ASAN
    const void *bottom = to == &co_leader ? leader_stack_bottom : to->stack;
    size_t size = to == &co_leader ? leader_stack_size : to->stack_size;
    __sanitizer_start_switch_fiber(action == CO_TERMINATE ? NULL
                                   : &from->fake_stack, bottom, size);
#else
    (void)from; (void)to; (void)action;
#endif
}

static void co_finish_switch(Coroutine *self)
{
#ifdef CO_ASAN
    const void *bottom_old;
    size_t size_old;
    __sanitizer_finish_switch_fiber(self->fake_stack, &bottom_old, &size_old);
    if (co_switch_from == &co_leader && !leader_stack_bottom) {
        leader_stack_bottom = bottom_old;
        leader_stack_size = size_old;
    }
#else
    (void)self;
#endif
}

static int co_switch(Coroutine *from, Coroutine *to, CoAction action)
{
    co_current = to;
    int ret = sigsetjmp(from->env, 0);
    if (ret == 0) {
        co_start_switch(from, to, action);
        siglongjmp(to->env, action);
    }
    co_finish_switch(from);
    return ret;
}

static void co_trampoline(int lo, int hi)
{
    Coroutine *self = (Coroutine *)(((uintptr_t)(unsigned)hi << 32) |
                                    (uintptr_t)(unsigned)lo);
    co_finish_switch(self);
    /* Hand control back to co_create(); the first real entry lands here. */
    if (!sigsetjmp(self->env, 0)) {
        co_start_switch(self, co_current ? co_current : &co_leader, CO_YIELD);
        siglongjmp(*(sigjmp_buf *)self->opaque, 1);
    }
    co_finish_switch(self);
    for (;;) {
        self->entry(self->opaque);
        Coroutine *to = self->caller;
        self->caller = NULL;
        co_switch(self, to, CO_TERMINATE);
    }
}

static Coroutine *co_alloc(void)
{
    Coroutine *co = g_new0(Coroutine, 1);
    long page = sysconf(_SC_PAGESIZE);
    co->stack_size = CO_STACK_SIZE;
    co->stack = mmap(NULL, co->stack_size + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (co->stack == MAP_FAILED) {
        g_error("coroutine: cannot map stack");
    }
    mprotect(co->stack, page, PROT_NONE);   /* guard page below the stack */
    co->stack = (char *)co->stack + page;

    ucontext_t uc, old_uc;
    sigjmp_buf old_env;
    getcontext(&uc);
    uc.uc_link = NULL;
    uc.uc_stack.ss_sp = co->stack;
    uc.uc_stack.ss_size = co->stack_size;
    uintptr_t p = (uintptr_t)co;
    co->opaque = &old_env;
    makecontext(&uc, (void (*)(void))co_trampoline, 2,
                (int)(uint32_t)p, (int)(uint32_t)(p >> 32));
    if (!sigsetjmp(old_env, 0)) {
        Coroutine *self = co_current ? co_current : &co_leader;
        co_start_switch(self, co, CO_ENTER);
        co_swapcontext(&old_uc, &uc);
    }
    co_finish_switch(co_current ? co_current : &co_leader);
    return co;
}

Coroutine *co_create(CoroutineEntry *entry, void *opaque)
{
    Coroutine *co = g_queue_pop_head(&co_pool);
    if (!co) {
        Coroutine *saved = co_current;
        co = co_alloc();
        co_current = saved;
    }
    co->entry = entry;
    co->opaque = opaque;
    co->caller = NULL;
    co->scheduled = false;
    return co;
}

static void co_release(Coroutine *co)
{
    if (g_queue_get_length(&co_pool) < CO_POOL_MAX) {
        g_queue_push_head(&co_pool, co);
        return;
    }
    long page = sysconf(_SC_PAGESIZE);
    munmap((char *)co->stack - page, co->stack_size + page);
    g_free(co);
}

Coroutine *co_self(void)
{
    return co_current;
}

bool co_in_coroutine(void)
{
    return co_current != NULL;
}

void co_enter(Coroutine *co)
{
    Coroutine *self = co_current ? co_current : &co_leader;
    if (co->caller) {
        g_error("coroutine: re-entering a running coroutine");
    }
    co->caller = self;
    int ret = co_switch(self, co, CO_ENTER);
    co_current = self == &co_leader ? NULL : self;
    if (ret == CO_TERMINATE) {
        co_release(co);
    }
}

void coroutine_fn co_yield(void)
{
    Coroutine *self = co_current;
    g_assert(self);
    Coroutine *to = self->caller;
    self->caller = NULL;
    co_switch(self, to, CO_YIELD);
}

static void co_wake_bh(void *opaque)
{
    Coroutine *co = opaque;
    co->scheduled = false;
    co_enter(co);
}

void co_wake(Coroutine *co)
{
    g_assert(!co->scheduled);
    co->scheduled = true;
    aio_bh_schedule(co_wake_bh, co);
}

void coroutine_fn co_yield_to_loop(void)
{
    co_wake(co_self());
    co_yield();
}

/* ---- wait queues and mutexes ---- */

void co_queue_init(CoQueue *q)
{
    g_queue_init(&q->waiters);
}

void coroutine_fn co_queue_wait(CoQueue *q, CoMutex *mutex)
{
    g_queue_push_tail(&q->waiters, co_self());
    if (mutex) {
        co_mutex_unlock(mutex);
    }
    co_yield();
    if (mutex) {
        co_mutex_lock(mutex);
    }
}

bool co_queue_next(CoQueue *q)
{
    Coroutine *co = g_queue_pop_head(&q->waiters);
    if (!co) {
        return false;
    }
    co_wake(co);
    return true;
}

void co_queue_restart_all(CoQueue *q)
{
    while (co_queue_next(q)) {
    }
}

bool co_queue_empty(const CoQueue *q)
{
    return g_queue_is_empty((GQueue *)&q->waiters);
}

void co_mutex_init(CoMutex *m)
{
    m->holder = NULL;
    m->waiting = 0;
    co_queue_init(&m->queue);
}

void coroutine_fn co_mutex_lock(CoMutex *m)
{
    Coroutine *self = co_self();
    g_assert(self && m->holder != self);
    while (m->holder) {
        m->waiting++;
        g_queue_push_tail(&m->queue.waiters, self);
        co_yield();
        m->waiting--;
        if (m->holder == self) {
            return;     /* ownership handed over by unlock */
        }
    }
    m->holder = self;
}

void coroutine_fn co_mutex_unlock(CoMutex *m)
{
    g_assert(m->holder == co_self());
    Coroutine *next = g_queue_pop_head(&m->queue.waiters);
    m->holder = next;   /* direct hand-off keeps the order fair */
    if (next) {
        co_wake(next);
    }
}

typedef struct {
    CoroutineEntry *entry;
    void *opaque;
    bool done;
} CoSync;

static void co_sync_entry(void *opaque)
{
    CoSync *s = opaque;
    s->entry(s->opaque);
    s->done = true;
}

void co_run_sync(CoroutineEntry *entry, void *opaque)
{
    if (co_in_coroutine()) {
        entry(opaque);
        return;
    }
    CoSync s = { entry, opaque, false };
    co_enter(co_create(co_sync_entry, &s));
    while (!s.done) {
        aio_poll(true);
    }
}
