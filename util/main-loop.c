/*
 * main-loop.c - bottom halves as a GSource on the default GMainContext and a
 * worker pool on GThreadPool.  Completions travel back as bottom halves.
 */
#include "util/main-loop.h"

typedef struct BH {
    BHFunc *fn;
    void *opaque;
} BH;

typedef struct BHSource {
    GSource source;
    GMutex lock;
    GArray *pending;     /* of BH, protected by lock */
} BHSource;

static BHSource *bh_source;
static GOnce bh_once = G_ONCE_INIT;

static gboolean bh_prepare(GSource *source, gint *timeout)
{
    BHSource *s = (BHSource *)source;
    g_mutex_lock(&s->lock);
    gboolean ready = s->pending->len > 0;
    g_mutex_unlock(&s->lock);
    *timeout = -1;
    return ready;
}

static gboolean bh_check(GSource *source)
{
    gint t;
    return bh_prepare(source, &t);
}

static gboolean bh_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    BHSource *s = (BHSource *)source;
    g_mutex_lock(&s->lock);
    GArray *batch = s->pending;
    s->pending = g_array_new(FALSE, FALSE, sizeof(BH));
    g_mutex_unlock(&s->lock);
    for (guint i = 0; i < batch->len; i++) {
        BH *bh = &g_array_index(batch, BH, i);
        bh->fn(bh->opaque);
    }
    g_array_free(batch, TRUE);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs bh_funcs = {
    .prepare = bh_prepare,
    .check = bh_check,
    .dispatch = bh_dispatch,
};

static gpointer bh_init(gpointer unused)
{
    BHSource *s = (BHSource *)g_source_new(&bh_funcs, sizeof(BHSource));
    g_mutex_init(&s->lock);
    s->pending = g_array_new(FALSE, FALSE, sizeof(BH));
    g_source_set_priority(&s->source, G_PRIORITY_HIGH);
    /* Sync wrappers poll the loop from inside BH callbacks. */
    g_source_set_can_recurse(&s->source, TRUE);
    g_source_attach(&s->source, NULL);
    bh_source = s;
    return NULL;
}

void aio_bh_schedule(BHFunc *fn, void *opaque)
{
    g_once(&bh_once, bh_init, NULL);
    BH bh = { fn, opaque };
    g_mutex_lock(&bh_source->lock);
    g_array_append_val(bh_source->pending, bh);
    g_mutex_unlock(&bh_source->lock);
    g_main_context_wakeup(NULL);
}

bool aio_poll(bool blocking)
{
    g_once(&bh_once, bh_init, NULL);
    return g_main_context_iteration(NULL, blocking);
}

/* ---- worker pool ---- */

#define WORKER_MAX_THREADS 64

typedef struct WorkItem {
    WorkerFunc *fn;
    void *opaque;
    int ret;
    Coroutine *co;
} WorkItem;

static GThreadPool *worker_pool;
static gint worker_busy;

static void worker_complete_bh(void *opaque)
{
    WorkItem *w = opaque;
    g_atomic_int_dec_and_test(&worker_busy);
    co_enter(w->co);
}

static void worker_thread(gpointer data, gpointer unused)
{
    WorkItem *w = data;
    w->ret = w->fn(w->opaque);
    aio_bh_schedule(worker_complete_bh, w);
}

int coroutine_fn worker_pool_run(WorkerFunc *fn, void *opaque)
{
    g_assert(co_in_coroutine());
    if (!worker_pool) {
        worker_pool = g_thread_pool_new(worker_thread, NULL,
                                        WORKER_MAX_THREADS, FALSE, NULL);
        /* Idle threads linger so that bursts do not pay thread creation. */
        g_thread_pool_set_max_idle_time(10000);
    }
    WorkItem w = { fn, opaque, 0, co_self() };
    g_atomic_int_inc(&worker_busy);
    g_thread_pool_push(worker_pool, &w, NULL);
    co_yield();
    return w.ret;
}

unsigned worker_pool_busy(void)
{
    return (unsigned)g_atomic_int_get(&worker_busy);
}
