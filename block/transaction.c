/*
 * transaction.c - runs the phases of a transaction (see transaction.h)
 * and keeps the cost of the last one for x-query-transaction-stats.
 *
 * Invariants: commit runs only after every prepare succeeded, all commits
 * run inside one drained section, and nothing between the first
 * drained_begin and the last drained_end may yield except the drain's
 * own wait for in-flight requests.
 */
#include "block/transaction.h"
#include "block/block_int.h"
#include "block/job.h"
#include "block/txn-journal.h"
#include "util/cutils.h"
#include "util/error.h"
#include <errno.h>

typedef struct TxnAction {
    const TxnActionDriver *drv;
    void *opaque;
    bool prepared;
    bool finished;              /* its finish succeeded */
    int64_t commit_ns;
} TxnAction;

struct Transaction {
    TxnCompletionMode mode;
    JobTxn *job_txn;            /* grouped: created by txn_job_txn() */
    GArray *actions;            /* TxnAction */
    int ret;
    GError **errp;
    TxnJournal *journal;        /* internal snapshots on several images */
};

static TxnStats txn_stats;

Transaction *txn_new(TxnCompletionMode mode)
{
    Transaction *t = g_new0(Transaction, 1);
    t->mode = mode;
    t->actions = g_array_new(FALSE, TRUE, sizeof(TxnAction));
    return t;
}

TxnCompletionMode txn_completion_mode(const Transaction *t)
{
    return t->mode;
}

JobTxn *txn_job_txn(Transaction *t)
{
    if (t->mode != TXN_COMPLETION_GROUPED) {
        return NULL;
    }
    if (!t->job_txn) {
        t->job_txn = job_txn_new();
    }
    return t->job_txn;
}

void txn_add(Transaction *t, const TxnActionDriver *drv, void *opaque)
{
    TxnAction a = { .drv = drv, .opaque = opaque };
    g_array_append_val(t->actions, a);
}

static TxnAction *txn_action(Transaction *t, guint i)
{
    return &g_array_index(t->actions, TxnAction, i);
}

/*
 * Steps of several actions side by side: each runs in its own coroutine,
 * the caller waits for all; the error of the first failing action in
 * transaction order is the one returned.
 */
typedef int coroutine_fn TxnStepFn(Transaction *t, TxnAction *a,
                                   GError **errp);

typedef struct TxnStepCo {
    Transaction *t;
    TxnAction *a;
    TxnStepFn *fn;
    int ret;
    GError *err;
    unsigned *pending;
    Coroutine *waiter;
} TxnStepCo;

static void coroutine_fn txn_step_entry(void *opaque)
{
    TxnStepCo *c = opaque;
    c->ret = c->fn(c->t, c->a, &c->err);
    if (--*c->pending == 0) {
        co_wake(c->waiter);
    }
}

static int coroutine_fn txn_steps_side_by_side(Transaction *t, guint first,
                                               guint end, TxnStepFn *fn,
                                               GError **errp)
{
    guint n = end - first;
    g_autofree TxnStepCo *cs = g_new0(TxnStepCo, n);
    unsigned pending = n + 1;   /* +1: ours, dropped after spawning */
    for (guint i = 0; i < n; i++) {
        cs[i] = (TxnStepCo){ .t = t, .a = txn_action(t, first + i),
                             .fn = fn, .pending = &pending,
                             .waiter = co_self() };
        co_enter(co_create(txn_step_entry, &cs[i]));
    }
    if (--pending > 0) {
        co_yield();
    }
    g_assert(pending == 0);
    int ret = 0;
    for (guint i = 0; i < n; i++) {
        if (cs[i].ret < 0 && ret == 0) {
            ret = cs[i].ret;
            g_propagate_error(errp, cs[i].err);
            cs[i].err = NULL;
        }
        g_clear_error(&cs[i].err);
    }
    return ret;
}

static int coroutine_fn txn_prepare_step(Transaction *t, TxnAction *a,
                                         GError **errp)
{
    int ret = a->drv->prepare(a->opaque, t, errp);
    a->prepared = ret >= 0;
    return ret;
}

static int coroutine_fn txn_prepare_all(Transaction *t, GError **errp)
{
    for (guint i = 0; i < t->actions->len; i++) {
        TxnAction *a = txn_action(t, i);
        if (t->mode == TXN_COMPLETION_GROUPED && !a->drv->supports_grouped) {
            error_setg(errp, "Action '%s' does not support Transaction "
                       "property completion-mode = grouped", a->drv->type);
            return -ENOTSUP;
        }
    }
    for (guint i = 0; i < t->actions->len;) {
        guint end = i + 1;
        if (txn_action(t, i)->drv->parallel_prepare) {
            while (end < t->actions->len &&
                   txn_action(t, end)->drv->parallel_prepare) {
                end++;
            }
        }
        int ret = txn_steps_side_by_side(t, i, end, txn_prepare_step, errp);
        if (ret < 0) {
            g_assert(!errp || *errp);
            return ret;
        }
        i = end;
    }
    return 0;
}

/* Before the commit: records the internal snapshots the actions create,
 * if they span several images (txn-journal.h). */
static int txn_journal_prepared(Transaction *t, GError **errp)
{
    g_autoptr(GPtrArray) nodes = g_ptr_array_new();
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    for (guint i = 0; i < t->actions->len; i++) {
        TxnAction *a = txn_action(t, i);
        BlockDriverState *bs;
        const char *name;
        if (a->drv->journal && a->drv->journal(a->opaque, &bs, &name)) {
            g_ptr_array_add(nodes, bs);
            g_ptr_array_add(names, (gpointer)name);
        }
    }
    if (nodes->len < 2) {
        return 0;
    }
    GError *err = NULL;
    t->journal = txn_journal_begin((BlockDriverState *const *)nodes->pdata,
                                   (const char *const *)names->pdata,
                                   nodes->len, &err);
    if (err) {
        g_propagate_error(errp, err);
        return -EIO;
    }
    return 0;
}

static void coroutine_fn txn_abort_prepared(Transaction *t)
{
    for (guint i = t->actions->len; i-- > 0;) {
        TxnAction *a = txn_action(t, i);
        if (a->prepared) {
            a->drv->abort(a->opaque);
        }
    }
}

static void txn_add_unique(GPtrArray *all, GPtrArray *more)
{
    for (guint i = 0; i < more->len; i++) {
        gpointer bs = g_ptr_array_index(more, i);
        if (!g_ptr_array_find(all, bs, NULL)) {
            g_ptr_array_add(all, bs);
        }
    }
}

/* The drained section: every commit, nothing else. */
static void coroutine_fn txn_commit_all(Transaction *t)
{
    g_autoptr(GPtrArray) nodes = g_ptr_array_new();
    for (guint i = 0; i < t->actions->len; i++) {
        TxnAction *a = txn_action(t, i);
        if (a->drv->add_nodes) {
            g_autoptr(GPtrArray) mine = g_ptr_array_new();
            a->drv->add_nodes(a->opaque, mine);
            txn_add_unique(nodes, mine);
        }
    }
    int64_t start = get_clock_ns();
    for (guint i = 0; i < nodes->len; i++) {
        bdrv_drained_begin(g_ptr_array_index(nodes, i));
    }
    for (guint i = 0; i < t->actions->len; i++) {
        TxnAction *a = txn_action(t, i);
        int64_t c0 = get_clock_ns();
        a->drv->commit(a->opaque);
        a->commit_ns = get_clock_ns() - c0;
    }
    for (guint i = nodes->len; i-- > 0;) {
        bdrv_drained_end(g_ptr_array_index(nodes, i));
    }
    txn_stats.drained_ns = get_clock_ns() - start;
}

static int coroutine_fn txn_finish_step(Transaction *t, TxnAction *a,
                                        GError **errp)
{
    if (!a->drv->finish) {
        /* Nothing to write out: committed is done, so its undo must run
         * too when another action's finish fails (rule 3). */
        a->finished = true;
        return 0;
    }
    int ret = a->drv->finish(a->opaque, errp);
    a->finished = ret >= 0;
    return ret;
}

/* The write-outs of different actions are independent (each waits on its
 * own disk's flushes), so they all run side by side. */
static int coroutine_fn txn_finish_all(Transaction *t, GError **errp)
{
    int ret = txn_steps_side_by_side(t, 0, t->actions->len,
                                     txn_finish_step, errp);
    if (ret < 0) {
        for (guint i = t->actions->len; i-- > 0;) {
            TxnAction *a = txn_action(t, i);
            if (a->finished && a->drv->undo) {
                a->drv->undo(a->opaque);
            }
        }
    }
    return ret;
}

static void txn_record_actions(Transaction *t)
{
    g_free(txn_stats.actions);
    txn_stats.n_actions = t->actions->len;
    txn_stats.actions = g_new0(TxnActionStats, t->actions->len);
    for (guint i = 0; i < t->actions->len; i++) {
        txn_stats.actions[i].type = txn_action(t, i)->drv->type;
        txn_stats.actions[i].commit_ns = txn_action(t, i)->commit_ns;
    }
}

static void coroutine_fn txn_co_run(void *opaque)
{
    Transaction *t = opaque;
    int64_t t0 = get_clock_ns();
    txn_stats.valid = true;
    txn_stats.committed = false;
    txn_stats.drained_ns = txn_stats.finish_ns = 0;

    t->ret = txn_prepare_all(t, t->errp);
    if (t->ret >= 0) {
        t->ret = txn_journal_prepared(t, t->errp);
    }
    int64_t t1 = get_clock_ns();
    txn_stats.prepare_ns = t1 - t0;
    if (t->ret < 0) {
        txn_abort_prepared(t);
    } else {
        txn_commit_all(t);
        txn_stats.committed = true;
        int64_t t2 = get_clock_ns();
        t->ret = txn_finish_all(t, t->errp);
        txn_stats.finish_ns = get_clock_ns() - t2;
    }
    /* Every image holds its snapshot, or none does (rolled back). */
    txn_journal_end(g_steal_pointer(&t->journal));
    txn_record_actions(t);
    for (guint i = 0; i < t->actions->len; i++) {
        TxnAction *a = txn_action(t, i);
        if (a->drv->clean) {
            a->drv->clean(a->opaque);
        }
    }
    txn_stats.total_ns = get_clock_ns() - t0;
}

int txn_run(Transaction *t, GError **errp)
{
    t->errp = errp;
    co_run_sync(txn_co_run, t);
    int ret = t->ret;
    job_txn_unref(t->job_txn);
    g_array_free(t->actions, TRUE);
    g_free(t);
    return ret;
}

int txn_run_single(const TxnActionDriver *drv, void *opaque, GError **errp)
{
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add(t, drv, opaque);
    return txn_run(t, errp);
}

const TxnStats *txn_last_stats(void)
{
    return &txn_stats;
}
