/*
 * job-filter.h - the filter nodes block jobs insert above their source
 * for the job's lifetime, as QEMU 7.2 does (its drivers' names are what
 * query-named-block-nodes shows as "drv"):
 *   JOB_FILTER_CBW         "copy-before-write": backup; every write,
 *                          write-zeroes and discard first calls the job's
 *                          before-write function (the copy), then goes on;
 *   JOB_FILTER_COMMIT_TOP  "commit_top": non-active commit, above top; a
 *                          read-only pass-through;
 *   JOB_FILTER_MIRROR_TOP  "mirror_top": active commit (QEMU runs it as a
 *                          mirror job), above the active layer; passes
 *                          everything through (the job's dirty bitmap on
 *                          the layer below sees the guest's writes).
 *
 * Graph: the filter reaches its child through a `backing` edge (as QEMU's
 * commit_top and mirror_top do), so every walk along backing chains
 * (query-block's backing_file_depth and backing-image, block status
 * through a chain, the commit and snapshot code) passes through it as
 * through a layer that allocates nothing; block.c's edge rule lets a
 * filter's backing edge pass permissions on unchanged, so the image locks
 * are the ones the child had without it.  Reads, writes, flushes, block
 * status, length, the VM state area and internal snapshots pass to the
 * child (QEMU's snapshot fallback through filters), so savevm and
 * transactions keep working on a disk that has a job filter on top.
 *
 * Life: job_filter_check_name() (QEMU's errors, before anything changes)
 * -> job_filter_new() (a node above child, not yet in the graph) ->
 * job_filter_insert() (every parent and backend of child moves to the
 * filter) -> job_filter_remove() (they move to whatever the filter's
 * child is by then, e.g. the base after an active commit's pivot, and
 * the filter lets go of its child).  job_filter_drop() ends a filter that
 * was never inserted.  The caller owns one reference throughout.
 *
 * A filter made without a name is "implicit" (QEMU's term: a "#blockNNN"
 * node the user did not ask for); QEMU hides implicit commit and mirror
 * filters in query-block (never copy-before-write), which
 * bdrv_skip_implicit_filters() gives the query code.
 *
 * Everything here runs on the main loop thread.
 */
#ifndef XBLK_BLOCK_JOB_FILTER_H
#define XBLK_BLOCK_JOB_FILTER_H

#include "block/block.h"

typedef enum JobFilterKind {
    JOB_FILTER_CBW,
    JOB_FILTER_COMMIT_TOP,
    JOB_FILTER_MIRROR_TOP,
    JOB_FILTER__MAX,
} JobFilterKind;

/* Called in coroutine context before a write-like request of
 * [offset, offset + bytes) reaches the child; a negative errno fails the
 * request before anything is written. */
typedef int coroutine_fn JobFilterBeforeWrite(void *opaque, int64_t offset,
                                              int64_t bytes);

/*
 * Whether name (NULL: an implicit filter, always fine) may name a new
 * node: QEMU's "Invalid node-name: 'X'", "node-name=X is conflicting with
 * a device id", "Duplicate nodes with node-name='X'", in its order.
 */
bool job_filter_check_name(const char *name, GError **errp);

/*
 * A filter of kind over child, named node_name (checked already; NULL:
 * "#blockNNN", implicit), with child as its backing node, not yet above
 * anything.  Read-only until inserted (a commit_top filter stays so).
 */
BlockDriverState *job_filter_new(JobFilterKind kind, const char *node_name,
                                 BlockDriverState *child);
/* Sets the copy-before-write function (JOB_FILTER_CBW). */
void job_filter_set_before_write(BlockDriverState *f,
                                 JobFilterBeforeWrite *fn, void *opaque);

/*
 * Puts f in place of its child: every parent edge (but f's own) and every
 * BlockBackend of the child moves to f.  job_filter_insert() drains f
 * (and so the child) around the switch; job_filter_insert_drained() is
 * for a caller that has f drained already (a transaction's commit: it
 * neither yields nor polls) -- requests that queued in a backend
 * meanwhile are let go when f's drained section ends.
 */
void job_filter_insert(BlockDriverState *f);
void job_filter_insert_drained(BlockDriverState *f);
/*
 * Takes f out again: its parents and backends move to its child (the
 * child it has now), it drops the child and becomes a childless,
 * read-only node that holds nothing until its last reference goes.
 * Drains f around the switch (nested in a section the caller holds, if
 * any).  No-op for a filter not inserted or already removed.
 */
void job_filter_remove(BlockDriverState *f);
/* Ends a filter made by job_filter_new() and never inserted. */
void job_filter_drop(BlockDriverState *f);

bool job_filter_is_inserted(const BlockDriverState *f);
/* Whether bs is a job filter made without a name. */
bool bdrv_is_implicit_job_filter(const BlockDriverState *bs);
/* bs, or the first node below it that is not an implicit commit or
 * mirror filter (what QEMU's query-block shows as "inserted"). */
BlockDriverState *bdrv_skip_implicit_filters(BlockDriverState *bs);

#endif
