/*
 * commit.h - merging the upper layers of a backing chain into a lower
 * one: QEMU 7.2's "commit" block job (QMP block-commit, job type
 * "commit") and an offline merge, for the monitor and for the domain
 * snapshot code (snapshot/), which merges an external snapshot's overlay
 * into its backing file.
 *
 * Words: a chain  root -> ... -> overlay -> top -> ... -> base -> ...
 * (each arrow a `backing` edge).  Committing copies every area that a
 * layer from top down to just above base allocates into base, then drops
 * those layers from the graph:
 *  - non-active commit (top != root): the job ends by itself; the
 *    overlay's header names base as its backing file (made durable) and
 *    the overlay's backing edge goes to base.
 *  - active commit (top == root): the guest keeps writing to top; a
 *    dirty bitmap on top sends those writes to base too.  Once everything
 *    is copied the job is "ready" (BLOCK_JOB_READY) and keeps base in
 *    sync; job-complete pivots: drained, every parent and device of top
 *    moves to base.  A soft cancel (block-job-cancel) of a ready job ends
 *    it without the pivot (BLOCK_JOB_COMPLETED; top unchanged).
 * Filter node (QEMU 7.2's, block/job-filter.h): while the job runs a
 * filter sits above top and every parent and device of top reaches top
 * through it -- "mirror_top" for an active commit (QEMU runs those as a
 * mirror job), "commit_top" (read-only) otherwise.  It is named
 * CommitOptions.filter_node_name (block-commit's filter-node-name), so
 * query-named-block-nodes lists it with that "drv" and query-block shows
 * it as the device's node during an active commit, or is an implicit
 * "#blockNNN" without one.  Other jobs find it busy, blockdev-del
 * refuses it, and it leaves the graph when the job ends: before the
 * layers are dropped or the device pivots to base, and on cancel or
 * failure (top is then where it was).
 * A filter_node_name in use fails before anything changes, with QEMU's
 * "Duplicate nodes with node-name='X'" (or "Invalid node-name: 'X'",
 * "node-name=X is conflicting with a device id").
 * Durability (DESIGN rule 2): base is flushed before the chain changes;
 * the overlay's new backing file name is written and synced before its
 * backing edge moves.  A crash at any point leaves a chain that reads as
 * before (base only gains data the layers above it hide).
 *
 * Read-only nodes: a read-only base (a backing file opened by -drive) is
 * replaced in the graph by a read-write instance of the same image that
 * also takes over its node name; references a caller holds to the old
 * node keep it alive, out of the graph, so use the node the job reports
 * (commit_job_base()); in-memory dirty bitmaps of the old node stay with
 * it (persistent ones are loaded again from the image).  The header of
 * a read-only overlay is rewritten
 * through a short-lived read-write instance.  Nodes added read-only with
 * blockdev-add are refused: the monitor owns them.
 *
 * Everything here runs on the main loop thread.
 */
#ifndef XBLK_BLOCK_COMMIT_H
#define XBLK_BLOCK_COMMIT_H

#include "block/blockjob.h"

/* Progress of an offline commit: done of total bytes scanned. */
typedef void CommitProgressFn(void *opaque, int64_t done, int64_t total);

typedef struct CommitOptions {
    /* Non-active commit only: the name written into the overlay's header
     * (NULL: base's file name, made absolute). */
    const char *backing_file;
    int64_t speed;              /* bytes per second, 0: unlimited */
    XblkOnError on_error;       /* reads of top and writes to base */
    int job_flags;              /* JOB_MANUAL_FINALIZE / _DISMISS */
    /* Optional: called once at finalization with the job's final ret
     * (0: committed; for an active commit, pivoted unless soft-cancelled;
     * negative errno otherwise). */
    void (*cb)(void *opaque, int ret);
    void *cb_opaque;
    /* The filter node's name (NULL: an implicit "#blockNNN"). */
    const char *filter_node_name;
} CommitOptions;

void commit_options_init(CommitOptions *o);

typedef struct CommitJob CommitJob;

/*
 * Creates and starts a commit job merging top .. (the layer above base)
 * into base.  root is the top of the chain (the device's node); the job
 * is "active" when top == root.  job_id NULL takes the device name of
 * root.  Errors (QEMU's texts): top == base "Invalid files for merge: top
 * and base are the same"; top not under root or base not under top
 * "'NODE' is not in this backing file chain"; backing_file with an
 * active commit; a node already used by a block job; a filter_node_name
 * that cannot name a new node; a read-only base that cannot be made
 * writable; bad job ID or speed.  On success the filter is in the graph.
 */
CommitJob *commit_job_start(const char *job_id, BlockDriverState *root,
                            BlockDriverState *top, BlockDriverState *base,
                            const CommitOptions *o, GError **errp);
Job *commit_job_job(CommitJob *s);
bool commit_job_is_active(const CommitJob *s);
/* The (writable) base node the job copies into. */
BlockDriverState *commit_job_base(const CommitJob *s);

/*
 * Offline commit: the same merge without a job, synchronously (polling
 * the main loop), with top drained throughout.  Afterwards the layers
 * from top down to just above base are out of the chain: the overlay
 * above top (a parent whose backing node is top), if any, gets base as
 * its backing node and backing file (backing_file, or base's name);
 * otherwise every device and parent of top moves to base.  progress may
 * be NULL.  Returns 0 or a negative errno with *errp set.
 */
int bdrv_commit_offline(BlockDriverState *top, BlockDriverState *base,
                        const char *backing_file,
                        CommitProgressFn *progress, void *opaque,
                        GError **errp);

/*
 * QMP block-commit's arguments (NULL / false: absent) and the command
 * itself: QEMU 7.2's lookups, checks and error texts, then
 * commit_job_start().  filter_node_name names the job's filter node
 * (see the top of this file).
 */
typedef struct BlockCommitArgs {
    const char *job_id;
    const char *device;
    const char *base_node, *base;
    const char *top_node, *top;
    const char *backing_file;
    const char *filter_node_name;
    int64_t speed;
    XblkOnError on_error;
    bool auto_finalize, auto_dismiss;
} BlockCommitArgs;

void block_commit_args_init(BlockCommitArgs *a);
CommitJob *block_commit(const BlockCommitArgs *a, GError **errp);

#endif
