/*
 * qmp-commit.c - QMP block-commit: turns the generated arguments into
 * BlockCommitArgs with QEMU 7.2's defaults and hands them to
 * block_commit() (block/commit.h), which owns the lookups, the checks,
 * their error texts and the job.  The reply is {} once the job runs;
 * everything after that reaches the client as job events.
 */
#include "block/commit.h"
#include "qapi/engine-qapi-commands.h"
#include "util/error.h"

void qmp_block_commit(bool has_job_id, const char *job_id,
                      const char *device,
                      bool has_base_node, const char *base_node,
                      bool has_base, const char *base,
                      bool has_top_node, const char *top_node,
                      bool has_top, const char *top,
                      bool has_backing_file, const char *backing_file,
                      bool has_speed, int64_t speed,
                      bool has_on_error, BlockdevOnError on_error,
                      bool has_filter_node_name,
                      const char *filter_node_name,
                      bool has_auto_finalize, bool auto_finalize,
                      bool has_auto_dismiss, bool auto_dismiss,
                      GError **errp)
{
    BlockCommitArgs a;
    block_commit_args_init(&a);
    a.job_id = has_job_id ? job_id : NULL;
    a.device = device;
    a.base_node = has_base_node ? base_node : NULL;
    a.base = has_base ? base : NULL;
    a.top_node = has_top_node ? top_node : NULL;
    a.top = has_top ? top : NULL;
    a.backing_file = has_backing_file ? backing_file : NULL;
    a.filter_node_name = has_filter_node_name ? filter_node_name : NULL;
    a.speed = has_speed ? speed : 0;
    if (has_on_error) {
        /* BlockdevOnError and XblkOnError share the schema's order. */
        a.on_error = (XblkOnError)on_error;
    }
    if (has_auto_finalize) {
        a.auto_finalize = auto_finalize;
    }
    if (has_auto_dismiss) {
        a.auto_dismiss = auto_dismiss;
    }
    block_commit(&a, errp);
}
