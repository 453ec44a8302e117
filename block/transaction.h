/*
 * transaction.h - all-or-nothing groups of block actions (DESIGN rules
 * 1-3): the core behind QMP `transaction` and behind every standalone
 * command that is also a transaction action (run as a group of one).
 *
 * A transaction runs its actions in four phases:
 *
 *   prepare   each action in order (runs of parallel_prepare actions side
 *             by side).  May yield, do I/O and fail: create
 *             and open overlays, flush, allocate, build new metadata off
 *             to the side.  Nothing a guest or client can observe changes.
 *             If one fails, the prepared ones abort in reverse order and
 *             the transaction returns that first error.
 *   commit    inside ONE drained section over the union of the nodes all
 *             actions name: each action in order swaps in what prepare
 *             built (graph edges, in-memory metadata, bitmaps).  In memory
 *             only, cannot fail, cannot yield.  The time guest I/O is held
 *             (drained_begin of the first node to drained_end of the
 *             last) is recorded and readable over QMP.
 *   finish    after the drain has ended: each committed action's durable
 *             write-out (rule 2).  May yield and fail; every action's
 *             finish runs.  If any failed, the actions whose finish
 *             succeeded are undone in reverse order (e.g. an internal
 *             snapshot written on one disk is deleted again) and the first
 *             error is returned.
 *   clean     every action, whatever happened.
 *
 * Exactly one of commit and abort runs for each prepared action; an
 * action whose prepare failed gets neither (its prepare cleans up after
 * itself), but clean runs for all.
 */
#ifndef XBLK_BLOCK_TRANSACTION_H
#define XBLK_BLOCK_TRANSACTION_H

#include "block/block.h"
#include "block/job.h"
#include "util/coroutine.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct Transaction Transaction;

typedef struct TxnActionDriver {
    const char *type;           /* the QMP action name */
    /* Whether the action can join completion-mode "grouped". */
    bool supports_grouped;
    /* Whether prepare may overlap the prepares of neighbouring actions
     * that say so too: it neither creates anything a later action looks
     * up nor depends on an earlier action's prepare.  Such runs prepare
     * side by side (their I/O waits overlap); the outcome is the one of
     * running them in order: the first failure in order is reported and
     * every action that prepared is aborted. */
    bool parallel_prepare;
    int coroutine_fn (*prepare)(void *opaque, Transaction *txn,
                                GError **errp);
    /* Appends the nodes the commit must find quiesced (the action holds
     * references to them until clean). */
    void (*add_nodes)(void *opaque, GPtrArray *nodes);
    void (*commit)(void *opaque);
    void coroutine_fn (*abort)(void *opaque);
    /* Optional: durable write-out after the drain. */
    int coroutine_fn (*finish)(void *opaque, GError **errp);
    /* Optional: compensates a successful finish when another failed. */
    void coroutine_fn (*undo)(void *opaque);
    /* Optional: frees opaque and drops references; always runs. */
    void (*clean)(void *opaque);
    /* Optional, after a successful prepare: the internal snapshot the
     * action creates (its node and name), for the record that keeps a
     * snapshot over several images whole or absent (txn-journal.h);
     * false if it creates none. */
    bool (*journal)(void *opaque, BlockDriverState **bs, const char **name);
} TxnActionDriver;

typedef enum TxnCompletionMode {
    TXN_COMPLETION_INDIVIDUAL,
    TXN_COMPLETION_GROUPED,
} TxnCompletionMode;

Transaction *txn_new(TxnCompletionMode mode);
TxnCompletionMode txn_completion_mode(const Transaction *t);
/* The job group of a grouped transaction, created on first use: actions
 * that start jobs (backup) add them with job_txn_add_job() in prepare so
 * that they succeed or fail together.  NULL for completion-mode
 * individual.  The transaction drops its reference when it ends; the
 * jobs keep theirs. */
JobTxn *txn_job_txn(Transaction *t);
/* Queues an action; the transaction owns opaque from here on (clean). */
void txn_add(Transaction *t, const TxnActionDriver *drv, void *opaque);
/* Runs every phase and frees t.  From a coroutine or not (then it polls
 * the main loop until done).  Returns 0 or a negative errno with *errp. */
int txn_run(Transaction *t, GError **errp);
/* A transaction of the one action (standalone commands). */
int txn_run_single(const TxnActionDriver *drv, void *opaque, GError **errp);

/* What the last transaction cost, for x-query-transaction-stats. */
typedef struct TxnActionStats {
    const char *type;
    int64_t commit_ns;          /* this action's commit, inside the drain */
} TxnActionStats;

typedef struct TxnStats {
    bool valid;                 /* false until a transaction has run */
    bool committed;             /* false: it failed in prepare */
    int64_t prepare_ns;         /* all prepares */
    int64_t drained_ns;         /* guest I/O held: drain begin .. end */
    int64_t finish_ns;          /* durable write-out after the drain */
    int64_t total_ns;
    unsigned n_actions;
    TxnActionStats *actions;    /* n_actions entries */
} TxnStats;

const TxnStats *txn_last_stats(void);

#endif
