/*
 * test-commit.c - the commit job and the offline commit (block/commit.c)
 * on real qcow2 chains in a temporary folder: a non-active commit of the
 * middle of a 3-image chain while the guest writes to the top, an active
 * commit with guest writes during the copy and while ready, then the
 * pivot; a soft cancel of a ready active commit; a forced cancel; the
 * offline commit (into a middle layer and of the active layer); the
 * header of a read-only overlay; the on-error policies; every argument
 * error of block-commit; the job's filter node (QEMU 7.2's commit_top /
 * mirror_top, filter-node-name) in the graph while the job runs and gone
 * afterwards, and a name in use refused with nothing changed.  Each
 * scenario ends with the real `qemu-img
 * check`, `qemu-img info --backing-chain` and a qemu-img read of the
 * contents against a model.
 *
 * Chains opened as -drive opens them (img_open of the top) have
 * read-only backing nodes, which exercises the read-write swap of base;
 * the error cases use named nodes (as -blockdev makes them).
 */
#include "image-test.h"
#include "block/blkdebug.h"
#include "block/block-events.h"
#include "block/commit.h"
#include "block/dirty-bitmap.h"
#include "block/job-filter.h"
#include "util/error.h"

#define DISK (4 * 1024 * 1024)
#define CL (64 * 1024)
#define MAX_LAYERS 4

static GPtrArray *events;
static json_t *last_end;        /* data of the last COMPLETED/CANCELLED */

static void record_event(const char *name, json_t *data)
{
    if (!strcmp(name, "JOB_STATUS_CHANGE")) {
        g_ptr_array_add(events, g_strdup(json_string_value(
            json_object_get(data, "status"))));
    } else {
        g_ptr_array_add(events, g_strdup(name));
    }
    if (!strcmp(name, "BLOCK_JOB_COMPLETED") ||
        !strcmp(name, "BLOCK_JOB_CANCELLED")) {
        json_decref(last_end);
        last_end = json_incref(data);
    }
    json_decref(data);
}

static char *events_take(void)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < events->len; i++) {
        g_string_append_printf(s, "%s%s", i ? " " : "",
                               (char *)g_ptr_array_index(events, i));
    }
    g_ptr_array_set_size(events, 0);
    return g_string_free(s, FALSE);
}

/* ---- chains ---- */

static const char *const layer_names[MAX_LAYERS] = {
    "base.qcow2", "mid.qcow2", "upper.qcow2", "top.qcow2",
};

typedef struct Chain {
    int n;
    char *path[MAX_LAYERS];     /* 0: base ... n-1: top */
    Model *view[MAX_LAYERS];    /* what layer i shows (with its backings) */
} Chain;

/* Layer i writes half clusters at its own stride and zeroes a few areas
 * the layers below filled, so every layer hides some data below it. */
static void fill_layer(BlockBackend *blk, Model *m, int i)
{
    for (uint64_t k = 0; k < DISK / CL; k++) {
        if (k % (i + 2) == 0) {
            write_pattern(blk, m, k * CL + i * 4096, CL / 2, 10 + i);
        }
    }
    if (i > 0) {
        zero_both(blk, m, (7 + i) * CL, CL + 4096, 0);
    }
}

static void chain_create(Chain *c, int n)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    for (int i = 0; i < n; i++) {
        const char *name = i == n - 1 ? "top.qcow2" : layer_names[i];
        c->path[i] = test_path(name);
        g_autofree char *opts = i ? g_strdup_printf(
            "backing_file=%s,backing_fmt=qcow2", c->path[i - 1]) : NULL;
        img_create(c->path[i], DISK, opts);
        BlockBackend *blk = img_open(c->path[i]);
        c->view[i] = i ? model_copy(c->view[i - 1]) : model_new(DISK);
        fill_layer(blk, c->view[i], i);
        blk_unref(blk);
    }
}

static void chain_free(Chain *c)
{
    for (int i = 0; i < c->n; i++) {
        g_unlink(c->path[i]);
        g_free(c->path[i]);
        model_free(c->view[i]);
    }
}

/* The guest's disk: the top opened as -drive does (read-only backings). */
static BlockBackend *open_disk(Chain *c)
{
    BlockBackend *blk = img_open(c->path[c->n - 1]);
    blk_set_name(blk, "disk0");
    return blk;
}

/* Node i of the chain under blk (0: base). */
static BlockDriverState *layer(BlockBackend *blk, Chain *c, int i)
{
    BlockDriverState *bs = blk_bs(blk);
    for (int k = c->n - 1; k > i; k--) {
        bs = bdrv_backing_bs(bs);
    }
    return bs;
}

/* Images in `qemu-img info --backing-chain` of path (-U: the chain may
 * still be open here, holding QEMU's image locks). */
static int qemu_chain_length(const char *path, char **backing)
{
    char *argv[] = { "qemu-img", "info", "-U", "--backing-chain",
                     "--output=json", (char *)path, NULL };
    g_autofree char *out = NULL, *err = NULL;
    g_assert_cmpint(run_tool(argv, &out, &err), ==, 0);
    json_t *j = json_loads(out, 0, NULL);
    g_assert_true(json_is_array(j));
    int n = (int)json_array_size(j);
    if (backing) {
        json_t *b = json_object_get(json_array_get(j, 0), "backing-filename");
        *backing = b ? g_strdup(json_string_value(b)) : NULL;
    }
    json_decref(j);
    return n;
}

static CommitJob *start_commit(BlockCommitArgs *a)
{
    GError *err = NULL;
    g_ptr_array_set_size(events, 0);
    CommitJob *s = block_commit(a, &err);
    g_assert_no_error(err);
    g_assert_nonnull(s);
    return s;
}

/* Polls until the job is gone (auto-dismiss) or concluded. */
static void wait_job(const char *id)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    while (job_get(id) && job_get(id)->status != XBLK_JOB_STATUS_CONCLUDED) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        aio_poll(true);
    }
}

static void wait_status(const char *id, XblkJobStatus st)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    while (job_get(id)->status != st) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        aio_poll(true);
    }
}

/* How many nodes of the graph a job filter driver made. */
static int filter_nodes(void)
{
    int n = 0;
    for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
         bs = bdrv_next_node(bs)) {
        const char *drv = bdrv_get_format_name(bs);
        n += !strcmp(drv, "commit_top") || !strcmp(drv, "mirror_top");
    }
    return n;
}

static int node_count(void)
{
    int n = 0;
    for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
         bs = bdrv_next_node(bs)) {
        n++;
    }
    return n;
}

/* The filter a job put above bs: bs's only parent, reaching bs through
 * its backing edge, with QEMU's driver name. */
static BlockDriverState *filter_above(BlockDriverState *bs, const char *drv)
{
    g_assert_cmpuint(g_list_length(bs->parents), ==, 1);
    g_assert_null(bs->backends);
    BdrvChild *c = bs->parents->data;
    BlockDriverState *f = c->parent;
    g_assert_cmpstr(bdrv_get_format_name(f), ==, drv);
    g_assert_true(bdrv_backing_bs(f) == bs);
    g_assert_cmpstr(bdrv_get_filename(f), ==, bdrv_get_filename(bs));
    return f;
}

static uint32_t seed = 1000;

/* One guest write (or write-zeroes) at a random place. */
static void guest_write(BlockBackend *blk, Model *m)
{
    uint64_t off = (uint64_t)g_random_int_range(0, DISK / 4096) * 4096;
    uint64_t len = (uint64_t)g_random_int_range(1, 24) * 4096;
    len = MIN(len, DISK - off);
    if (seed % 5 == 0) {
        zero_both(blk, m, off, len, 0);
        seed++;
    } else {
        write_pattern(blk, m, off, len, seed++);
    }
}

static void assert_end_event(int64_t len, int64_t offset)
{
    g_assert_nonnull(last_end);
    g_assert_cmpstr(json_string_value(json_object_get(last_end, "type")), ==,
                    "commit");
    g_assert_cmpint(json_integer_value(json_object_get(last_end, "len")), ==,
                    len);
    g_assert_cmpint(json_integer_value(json_object_get(last_end, "offset")),
                    ==, offset);
}

/* ---- non-active commit ---- */

/* base <- mid <- top: mid goes into base while the guest writes to top;
 * top's header then names base and the chain has two images. */
static void test_non_active(void)
{
    Chain c;
    chain_create(&c, 3);
    Model *m = model_copy(c.view[2]);
    BlockBackend *blk = open_disk(&c);
    BlockDriverState *top = layer(blk, &c, 2), *mid = layer(blk, &c, 1);
    BlockDriverState *base = layer(blk, &c, 0);
    g_assert_true(bdrv_is_read_only(base));
    g_autofree char *base_name = g_strdup(bdrv_get_node_name(base));

    BlockCommitArgs a;
    block_commit_args_init(&a);
    a.device = "disk0";
    a.top = c.path[1];          /* by file name, as the chain names it */
    a.base = c.path[0];
    a.speed = 8 * 1024 * 1024;
    CommitJob *s = start_commit(&a);
    g_assert_false(commit_job_is_active(s));
    g_assert_true(job_get("disk0") == commit_job_job(s));
    BlockDriverState *wbase = commit_job_base(s);
    g_assert_false(bdrv_is_read_only(wbase));
    g_assert_cmpstr(bdrv_get_node_name(wbase), ==, base_name);
    g_assert_true(bdrv_backing_bs(mid) == wbase);
    /* An implicit commit_top between top and mid: the overlay reads
     * through it, it writes nothing. */
    BlockDriverState *f = filter_above(mid, "commit_top");
    g_assert_true(bdrv_backing_bs(top) == f);
    g_assert_true(bdrv_is_read_only(f));
    g_assert_true(bdrv_is_implicit_job_filter(f));
    g_assert_true(bdrv_get_node_name(f)[0] == '#');
    for (int i = 0; i < 20; i++) {
        guest_write(blk, m);
        aio_poll(false);
    }
    wait_job("disk0");
    g_assert_cmpint(filter_nodes(), ==, 0);
    g_autofree char *ev = events_take();
    g_assert_cmpstr(ev, ==, "created running waiting pending "
                    "BLOCK_JOB_COMPLETED concluded null");
    assert_end_event(DISK, DISK);

    BlockDriverState *nb = bdrv_backing_bs(top);
    g_assert_cmpstr(bdrv_get_node_name(nb), ==, base_name);
    g_assert_null(bdrv_backing_bs(nb));
    g_assert_cmpstr(bdrv_get_backing_filename(top), ==, c.path[0]);
    g_assert_cmpstr(bdrv_get_backing_format(top), ==, "qcow2");
    verify_model(blk, m);
    blk_unref(blk);

    for (int i = 0; i < 3; i++) {
        qemu_check(c.path[i], false);
    }
    g_autofree char *bf = NULL;
    g_assert_cmpint(qemu_chain_length(c.path[2], &bf), ==, 2);
    g_assert_cmpstr(bf, ==, c.path[0]);
    qemu_compare(c.path[2], NULL, m);
    qemu_compare(c.path[0], NULL, c.view[1]);   /* base + mid */
    model_free(m);
    chain_free(&c);
}

/* base <- mid <- upper <- top: committing mid rewrites the header of
 * upper, a read-only backing node, through a read-write instance. */
static void test_read_only_overlay(void)
{
    Chain c;
    chain_create(&c, 4);
    BlockBackend *blk = open_disk(&c);
    BlockDriverState *upper = layer(blk, &c, 2);
    g_assert_true(bdrv_is_read_only(upper));
    BlockCommitArgs a;
    block_commit_args_init(&a);
    a.device = "disk0";
    a.job_id = "c1";
    a.top_node = bdrv_get_node_name(layer(blk, &c, 1));
    a.backing_file = "base.qcow2";  /* relative to upper's folder */
    start_commit(&a);
    wait_job("c1");
    g_autofree char *ev = events_take();
    g_assert_nonnull(strstr(ev, "BLOCK_JOB_COMPLETED concluded null"));
    g_assert_cmpstr(bdrv_get_backing_filename(upper), ==, "base.qcow2");
    g_assert_true(bdrv_backing_bs(upper) == layer(blk, &c, 1));
    g_assert_true(bdrv_is_read_only(upper));
    verify_model(blk, c.view[3]);
    blk_unref(blk);
    for (int i = 0; i < 4; i++) {
        qemu_check(c.path[i], false);
    }
    g_autofree char *bf = NULL;
    g_assert_cmpint(qemu_chain_length(c.path[3], NULL), ==, 3);
    g_assert_cmpint(qemu_chain_length(c.path[2], &bf), ==, 2);
    g_assert_cmpstr(bf, ==, "base.qcow2");
    qemu_compare(c.path[3], NULL, c.view[3]);
    qemu_compare(c.path[2], NULL, c.view[2]);
    chain_free(&c);
}

/* ---- active commit ---- */

/* The whole chain into base while the guest writes, during the copy and
 * while ready (a pause in between); job-complete puts base in the
 * device's place. */
static void test_active_pivot(void)
{
    Chain c;
    chain_create(&c, 3);
    Model *m = model_copy(c.view[2]);
    BlockBackend *blk = open_disk(&c);
    BlockDriverState *top = layer(blk, &c, 2);
    g_autofree char *base_name = g_strdup(
        bdrv_get_node_name(layer(blk, &c, 0)));
    BlockCommitArgs a;
    block_commit_args_init(&a);
    a.device = "disk0";
    a.job_id = "act";
    a.speed = 4 * 1024 * 1024;  /* long enough to write meanwhile */
    a.filter_node_name = "ct";
    CommitJob *s = start_commit(&a);
    g_assert_true(commit_job_is_active(s));
    Job *job = commit_job_job(s);
    /* The device reaches top through the named mirror_top filter. */
    BlockDriverState *f = bdrv_find_node("ct");
    g_assert_true(blk_bs(blk) == f);
    g_assert_true(filter_above(top, "mirror_top") == f);
    g_assert_false(bdrv_is_read_only(f));
    g_assert_false(bdrv_is_implicit_job_filter(f));
    g_assert_true(bdrv_skip_implicit_filters(f) == f);
    GError *busy = NULL;
    g_assert_true(block_job_node_busy(f, &busy));
    g_assert_cmpstr(busy->message, ==, "Node 'ct' is busy: block device is "
                    "in use by block job: commit");
    g_clear_error(&busy);
    int during = 0;
    for (int i = 0; i < 40; i++) {
        if (job->status == XBLK_JOB_STATUS_RUNNING) {
            during++;
        }
        guest_write(blk, m);
        aio_poll(false);
    }
    g_assert_cmpint(during, >, 10);
    wait_status("act", XBLK_JOB_STATUS_READY);
    GError *err = NULL;
    job_user_pause(job, &err);
    g_assert_no_error(err);
    wait_status("act", XBLK_JOB_STATUS_STANDBY);
    for (int i = 0; i < 30; i++) {
        guest_write(blk, m);
    }
    job_user_resume(job, &err);
    g_assert_no_error(err);
    wait_status("act", XBLK_JOB_STATUS_READY);
    job_set_speed(job, 0, &err);
    g_assert_no_error(err);
    for (int i = 0; i < 30; i++) {
        guest_write(blk, m);
        aio_poll(false);
    }
    job_complete(job, &err);
    g_assert_no_error(err);
    guest_write(blk, m);        /* lands before or after the pivot */
    wait_job("act");
    g_autofree char *ev = events_take();
    g_assert_nonnull(strstr(ev, "created running ready BLOCK_JOB_READY "
                            "standby ready"));
    g_assert_true(g_str_has_suffix(ev, "waiting pending BLOCK_JOB_COMPLETED "
                                   "concluded null"));
    g_assert_nonnull(last_end);
    BlockDriverState *root = blk_bs(blk);
    g_assert_false(root == top);
    g_assert_null(bdrv_find_node("ct"));
    g_assert_cmpint(filter_nodes(), ==, 0);
    g_assert_null(root->parents);
    g_assert_cmpstr(bdrv_get_node_name(root), ==, base_name);
    g_assert_cmpstr(bdrv_get_filename(root), ==, c.path[0]);
    g_assert_null(bdrv_backing_bs(root));
    g_assert_null(root->dirty_bitmaps);
    verify_model(blk, m);
    for (int i = 0; i < 10; i++) {
        guest_write(blk, m);
    }
    verify_model(blk, m);
    blk_unref(blk);
    for (int i = 0; i < 3; i++) {
        qemu_check(c.path[i], false);
    }
    g_assert_cmpint(qemu_chain_length(c.path[0], NULL), ==, 1);
    qemu_compare(c.path[0], NULL, m);
    model_free(m);
    chain_free(&c);
}

/* block-job-cancel (soft) of a ready active commit: the device keeps
 * its top, the job reports completion. */
static void test_active_soft_cancel(void)
{
    Chain c;
    chain_create(&c, 3);
    Model *m = model_copy(c.view[2]);
    BlockBackend *blk = open_disk(&c);
    BlockDriverState *top = blk_bs(blk);
    BlockCommitArgs a;
    block_commit_args_init(&a);
    a.device = "disk0";
    a.base_node = bdrv_get_node_name(layer(blk, &c, 1));
    Job *job = commit_job_job(start_commit(&a));
    BlockDriverState *f = blk_bs(blk);
    g_assert_true(filter_above(top, "mirror_top") == f);
    g_assert_true(bdrv_skip_implicit_filters(f) == top);
    wait_status("disk0", XBLK_JOB_STATUS_READY);
    guest_write(blk, m);
    GError *err = NULL;
    job_user_cancel(job, false, &err);
    g_assert_no_error(err);
    wait_job("disk0");
    g_autofree char *ev = events_take();
    g_assert_true(g_str_has_suffix(ev, "ready BLOCK_JOB_READY waiting "
                                   "pending BLOCK_JOB_COMPLETED concluded "
                                   "null"));
    g_assert_true(blk_bs(blk) == top);
    g_assert_null(top->parents);
    g_assert_cmpint(filter_nodes(), ==, 0);
    g_assert_null(top->dirty_bitmaps);
    verify_model(blk, m);
    blk_unref(blk);
    for (int i = 0; i < 3; i++) {
        qemu_check(c.path[i], false);
    }
    g_assert_cmpint(qemu_chain_length(c.path[2], NULL), ==, 3);
    qemu_compare(c.path[2], NULL, m);
    model_free(m);
    chain_free(&c);
}

/* A forced cancel in the middle of a non-active commit changes no link
 * and no visible byte. */
static void test_cancel(void)
{
    Chain c;
    chain_create(&c, 3);
    BlockBackend *blk = open_disk(&c);
    BlockDriverState *top = blk_bs(blk), *mid = layer(blk, &c, 1);
    BlockCommitArgs a;
    block_commit_args_init(&a);
    a.device = "disk0";
    a.top_node = bdrv_get_node_name(mid);
    a.speed = 512 * 1024;
    Job *job = commit_job_job(start_commit(&a));
    while (job->progress_current == 0) {
        aio_poll(true);
    }
    GError *err = NULL;
    job_user_cancel(job, true, &err);
    g_assert_no_error(err);
    wait_job("disk0");
    g_autofree char *ev = events_take();
    g_assert_cmpstr(ev, ==, "created running aborting BLOCK_JOB_CANCELLED "
                    "concluded null");
    g_assert_cmpint(json_integer_value(json_object_get(last_end, "offset")),
                    <, DISK);
    g_assert_true(bdrv_backing_bs(top) == mid);
    g_assert_cmpuint(g_list_length(mid->parents), ==, 1);
    g_assert_cmpint(filter_nodes(), ==, 0);
    verify_model(blk, c.view[2]);
    blk_unref(blk);
    for (int i = 0; i < 3; i++) {
        qemu_check(c.path[i], false);
    }
    g_assert_cmpint(qemu_chain_length(c.path[2], NULL), ==, 3);
    qemu_compare(c.path[2], NULL, c.view[2]);
    qemu_compare(c.path[1], NULL, c.view[1]);
    chain_free(&c);
}

/* on-error: report fails the job, stop pauses it until resumed, ignore
 * retries; base sits on a fault-injection filter (named nodes). */
static void test_on_error(void)
{
    for (int policy = 0; policy < 3; policy++) {
        XblkOnError on = policy == 0 ? XBLK_ON_ERROR_REPORT
                       : policy == 1 ? XBLK_ON_ERROR_STOP
                                     : XBLK_ON_ERROR_IGNORE;
        Chain c;
        chain_create(&c, 2);
        BlockOpts *o = bopts_new();
        GError *err = NULL;
        g_assert_true(bopts_parse(o, "driver=qcow2,node-name=ebase,"
                                  "file.driver=blkdebug,"
                                  "file.file.driver=file", &err));
        bopts_set(o, "file.file.filename", c.path[0]);
        BlockDriverState *base = bdrv_open(NULL, o, BDRV_O_RDWR, &err);
        g_assert_no_error(err);
        BlkdebugRule r = { .ops = BLKDBG_OP_WRITE, .nth = 2, .offset = -1,
                           .err = EIO, .once = true };
        g_assert_true(blkdebug_add_rule(base->file->bs, &r));
        g_autofree char *ts = g_strdup_printf("driver=qcow2,node-name=etop,"
                                              "backing=ebase,file.driver=file,"
                                              "file.filename=%s", c.path[1]);
        BlockOpts *to = bopts_new();
        g_assert_true(bopts_parse(to, ts, &err));
        BlockDriverState *top = bdrv_open(NULL, to, BDRV_O_RDWR, &err);
        g_assert_no_error(err);
        CommitOptions co;
        commit_options_init(&co);
        co.on_error = on;
        co.job_flags = JOB_MANUAL_DISMISS;
        g_ptr_array_set_size(events, 0);
        CommitJob *s = commit_job_start("e1", top, top, base, &co, &err);
        g_assert_no_error(err);
        Job *job = commit_job_job(s);
        if (on == XBLK_ON_ERROR_STOP) {
            while (!job->paused) {
                aio_poll(true);
            }
            g_assert_cmpint(job->status, ==, XBLK_JOB_STATUS_PAUSED);
            job_user_resume(job, &err);
            g_assert_no_error(err);
        }
        if (on != XBLK_ON_ERROR_REPORT) {
            wait_status("e1", XBLK_JOB_STATUS_READY);
            job_complete(job, &err);
            g_assert_no_error(err);
        }
        wait_job("e1");
        g_autofree char *ev = events_take();
        g_assert_nonnull(strstr(ev, "BLOCK_JOB_ERROR"));
        if (on == XBLK_ON_ERROR_REPORT) {
            g_assert_cmpint(job->ret, ==, -EIO);
            g_assert_cmpstr(job_error_message(job), ==, g_strerror(EIO));
            g_assert_nonnull(strstr(ev, "aborting BLOCK_JOB_COMPLETED"));
        } else {
            g_assert_cmpint(job->ret, ==, 0);
            g_assert_nonnull(strstr(ev, "pending BLOCK_JOB_COMPLETED"));
        }
        job_dismiss(job, &err);
        g_assert_no_error(err);
        bdrv_unref(top);
        bdrv_unref(base);
        qemu_check(c.path[0], false);
        qemu_check(c.path[1], false);
        qemu_compare(c.path[1], NULL, c.view[1]);
        if (on != XBLK_ON_ERROR_REPORT) {
            qemu_compare(c.path[0], NULL, c.view[1]);
        }
        chain_free(&c);
    }
}

/* ---- offline ---- */

typedef struct Progress {
    int64_t last, total;
    int calls;
} Progress;

static void on_progress(void *opaque, int64_t done, int64_t total)
{
    Progress *p = opaque;
    g_assert_cmpint(done, >, p->last);
    p->last = done;
    p->total = total;
    p->calls++;
}

/* Offline: mid into base (top's header follows), then the active layer
 * into base (the device follows). */
static void test_offline(void)
{
    Chain c;
    chain_create(&c, 3);
    BlockBackend *blk = open_disk(&c);
    BlockDriverState *top = blk_bs(blk);
    g_autofree char *base_name = g_strdup(
        bdrv_get_node_name(layer(blk, &c, 0)));
    Progress p = { 0 };
    GError *err = NULL;
    int ret = bdrv_commit_offline(layer(blk, &c, 1), layer(blk, &c, 0), NULL,
                                  on_progress, &p, &err);
    g_assert_no_error(err);
    g_assert_cmpint(ret, ==, 0);
    g_assert_cmpint(p.last, ==, DISK);
    g_assert_cmpint(p.total, ==, DISK);
    g_assert_cmpint(p.calls, >=, DISK / (512 * 1024));
    BlockDriverState *base = bdrv_backing_bs(top);
    g_assert_cmpstr(bdrv_get_node_name(base), ==, base_name);
    g_assert_cmpstr(bdrv_get_backing_filename(top), ==, c.path[0]);
    verify_model(blk, c.view[2]);
    qemu_check(c.path[0], false);
    qemu_compare(c.path[0], NULL, c.view[1]);
    g_assert_cmpint(qemu_chain_length(c.path[2], NULL), ==, 2);

    Model *m = model_copy(c.view[2]);
    guest_write(blk, m);
    ret = bdrv_commit_offline(top, base, NULL, NULL, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpint(ret, ==, 0);
    g_assert_true(blk_bs(blk) == base);
    verify_model(blk, m);
    blk_unref(blk);
    for (int i = 0; i < 3; i++) {
        qemu_check(c.path[i], false);
    }
    qemu_compare(c.path[0], NULL, m);
    g_assert_cmpint(qemu_chain_length(c.path[0], NULL), ==, 1);
    model_free(m);
    chain_free(&c);
}

/* ---- errors ---- */

static BlockDriverState *open_named(const char *path, const char *name,
                                    const char *backing)
{
    g_autofree char *s = g_strdup_printf("driver=qcow2,node-name=%s,"
                                         "backing=%s,file.driver=file",
                                         name, backing);
    BlockOpts *o = bopts_new();
    GError *err = NULL;
    g_assert_true(bopts_parse(o, s, &err));
    bopts_set(o, "file.filename", path);
    BlockDriverState *bs = bdrv_open(NULL, o, BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    return bs;
}

typedef struct ErrCase {
    const char *device, *top_node, *top, *base_node, *base, *backing_file;
    const char *job_id;
    const char *filter_node_name;
    const char *want;
} ErrCase;

static void expect_commit_error(const ErrCase *e)
{
    BlockCommitArgs a;
    block_commit_args_init(&a);
    a.device = e->device;
    a.top_node = e->top_node;
    a.top = e->top;
    a.base_node = e->base_node;
    a.base = e->base;
    a.backing_file = e->backing_file;
    a.job_id = e->job_id;
    a.filter_node_name = e->filter_node_name;
    int nodes = node_count();
    Job *jobs = job_next(NULL);
    GError *err = NULL;
    g_assert_null(block_commit(&a, &err));
    /* A refusal changes nothing: no new job, no new node. */
    g_assert_true(job_next(NULL) == jobs);
    g_assert_cmpint(node_count(), ==, nodes);
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, e->want);
    g_error_free(err);
}

static void test_errors(void)
{
    Chain c;
    chain_create(&c, 3);
    g_autofree char *lone_path = test_path("lone.qcow2");
    img_create(lone_path, DISK, NULL);
    BlockDriverState *base = open_named(c.path[0], "cbase", "");
    BlockDriverState *mid = open_named(c.path[1], "cmid", "cbase");
    BlockDriverState *top = open_named(c.path[2], "ctop", "cmid");
    BlockDriverState *lone = open_named(lone_path, "lone", "");
    BlockBackend *blk = blk_new();
    blk_insert_bs(blk, top);
    blk_set_name(blk, "disk0");

    const ErrCase cases[] = {
        { .device = "nope", .want = "Device 'nope' not found" },
        { .device = "cmid", .want = "Need a root block node" },
        { .device = "disk0", .top_node = "cmid", .top = "x",
          .want = "'top-node' and 'top' are mutually exclusive" },
        { .device = "disk0", .top_node = "zz",
          .want = "Cannot find device='' nor node-name='zz'" },
        { .device = "disk0", .top_node = "lone",
          .want = "'lone' is not in this backing file chain" },
        { .device = "disk0", .top = "/no/such.qcow2",
          .want = "Top image file /no/such.qcow2 not found" },
        { .device = "disk0", .base_node = "cbase", .base = "x",
          .want = "'base-node' and 'base' are mutually exclusive" },
        { .device = "disk0", .base_node = "zz",
          .want = "Cannot find device='' nor node-name='zz'" },
        { .device = "disk0", .top_node = "cmid", .base_node = "ctop",
          .want = "'ctop' is not in this backing file chain" },
        { .device = "disk0", .base = "/no/such.qcow2",
          .want = "Can't find '/no/such.qcow2' in the backing chain" },
        { .device = "disk0", .top_node = "cmid", .base_node = "cmid",
          .want = "cannot commit an image into itself" },
        { .device = "lone", .want = "cannot commit an image into itself" },
        { .device = "disk0", .backing_file = "b.qcow2",
          .want = "'backing-file' specified, but 'top' is the active "
                  "layer" },
        { .device = "disk0", .job_id = "1j", .want = "Invalid job ID '1j'" },
        /* filter-node-name: QEMU 7.2's texts, active and not. */
        { .device = "disk0", .filter_node_name = "cmid",
          .want = "Duplicate nodes with node-name='cmid'" },
        { .device = "disk0", .top_node = "cmid", .filter_node_name = "ctop",
          .want = "Duplicate nodes with node-name='ctop'" },
        { .device = "disk0", .filter_node_name = "disk0",
          .want = "node-name=disk0 is conflicting with a device id" },
        { .device = "disk0", .top_node = "cmid", .filter_node_name = "1f",
          .want = "Invalid node-name: '1f'" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        expect_commit_error(&cases[i]);
    }
    /* libvirt tells "no such device" by the class. */
    BlockCommitArgs a;
    block_commit_args_init(&a);
    a.device = "nope";
    GError *err = NULL;
    block_commit(&a, &err);
    g_assert_error(err, XBLK_ERROR, ERROR_CLASS_DEVICE_NOT_FOUND);
    g_clear_error(&err);

    /* The C API's own check. */
    CommitOptions co;
    commit_options_init(&co);
    g_assert_null(commit_job_start("j", top, mid, mid, &co, &err));
    g_assert_cmpstr(err->message, ==, "Invalid files for merge: top and "
                    "base are the same");
    g_clear_error(&err);
    g_assert_null(commit_job_start("j", top, lone, base, &co, &err));
    g_assert_cmpstr(err->message, ==, "'lone' is not in this backing file "
                    "chain");
    g_clear_error(&err);
    g_assert_cmpint(bdrv_commit_offline(base, mid, NULL, NULL, NULL, &err),
                    ==, -EINVAL);
    g_assert_cmpstr(err->message, ==, "'cmid' is not in this backing file "
                    "chain");
    g_clear_error(&err);

    /* A job already on the chain. */
    a.device = "disk0";
    a.top_node = "cmid";
    a.speed = 64 * 1024;
    Job *job = commit_job_job(start_commit(&a));
    const ErrCase busy[] = {
        { .device = "disk0", .job_id = "j2",
          .want = "Node 'ctop' is busy: block device is in use by block "
                  "job: commit" },
    };
    expect_commit_error(&busy[0]);
    g_assert_cmpint(bdrv_commit_offline(mid, base, NULL, NULL, NULL, &err),
                    ==, -EINVAL);
    g_assert_cmpstr(err->message, ==, "Node 'cmid' is busy: block device is "
                    "in use by block job: commit");
    g_clear_error(&err);
    g_assert_cmpint(job_cancel_sync(job, true), ==, -ECANCELED);
    g_assert_true(bdrv_backing_bs(top) == mid);
    g_assert_cmpint(filter_nodes(), ==, 0);
    g_free(events_take());

    blk_unref(blk);
    bdrv_unref(top);
    bdrv_unref(mid);
    bdrv_unref(base);
    bdrv_unref(lone);
    for (int i = 0; i < 3; i++) {
        qemu_check(c.path[i], false);
    }
    qemu_compare(c.path[2], NULL, c.view[2]);
    g_unlink(lone_path);
    chain_free(&c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir_setup_in_memory();
    events = g_ptr_array_new_with_free_func(g_free);
    block_event_set_sink(record_event);
    g_test_add_func("/commit/non-active", test_non_active);
    g_test_add_func("/commit/read-only-overlay", test_read_only_overlay);
    g_test_add_func("/commit/active-pivot", test_active_pivot);
    g_test_add_func("/commit/active-soft-cancel", test_active_soft_cancel);
    g_test_add_func("/commit/cancel", test_cancel);
    g_test_add_func("/commit/on-error", test_on_error);
    g_test_add_func("/commit/offline", test_offline);
    g_test_add_func("/commit/errors", test_errors);
    int ret = g_test_run();
    json_decref(last_end);
    g_ptr_array_free(events, TRUE);
    test_dir_cleanup();
    return ret;
}
