/*
 * test-qcow2.c - the qcow2 driver through the real block layer on real
 * temporary files: L2 allocation, copy-on-write of partial clusters,
 * discard and cluster reuse, zero clusters, backing chains, every cluster
 * size and refcount width (with refcount table growth), compressed
 * clusters (zlib and zstd), internal snapshots, resize, many requests in
 * flight (overlapping writes must look serialized per request) and
 * drained sections.
 *
 * Each scenario keeps a model of the guest disk, compares every read with
 * it, and ends with bdrv_check and the real `qemu-img check` (no
 * corruption, no leaks); most also compare qemu-img's view of the data.
 */
#include "image-test.h"
#include "util/cutils.h"

typedef struct {
    int unused;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    test_dir_setup();
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    test_dir_cleanup();
}

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)

/* Closes blk and runs every offline check, including qemu-img's view. */
static void finish_image(BlockBackend *blk, const char *path, const Model *m)
{
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    qemu_compare(path, NULL, m);
}

static int block_status_at(BlockBackend *blk, uint64_t off, int64_t *pnum)
{
    int64_t map;
    BlockDriverState *file;
    int ret = bdrv_block_status(blk_bs(blk), off, 1 * MiB, pnum, &map, &file);
    g_assert_cmpint(ret, >=, 0);
    return ret;
}

/* ---- L2 allocation ---- */

static void test_l2_allocation(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("l2.qcow2");
    const uint64_t size = 8 * MiB;
    img_create(path, size, "cluster_size=512");
    BlockBackend *blk = img_open(path);
    Model *m = model_new(size);
    /* With 512-byte clusters one L2 table maps 32 KiB: touch all 256. */
    for (uint64_t i = 0; i < 256; i++) {
        write_pattern(blk, m, i * 32 * KiB + (i * 1031) % 31000, 700, i);
    }
    write_pattern(blk, m, 10 * 32 * KiB - 1000, 70000, 999);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, m);
    g_assert_cmpuint(img_header_field(path, 36, 4), ==, 256);   /* l1_size */
    finish_image(blk, path, m);
    model_free(m);
}

/* ---- copy-on-write of partial clusters ---- */

static void write_partial_set(BlockBackend *blk, Model *m, uint32_t seed)
{
    write_pattern(blk, m, 1000, 3000, seed);
    write_pattern(blk, m, 64 * KiB - 100, 200, seed + 1);
    write_pattern(blk, m, 200000, 1, seed + 2);
    write_pattern(blk, m, 3 * 64 * KiB + 5, 2 * 64 * KiB, seed + 3);
    write_pattern(blk, m, 1500, 100, seed + 4);
}

static void test_cow_fresh_clusters(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("cow.qcow2");
    img_create(path, 4 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(4 * MiB);
    write_partial_set(blk, m, 1);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, m);
    /* Partial overwrites of allocated clusters happen in place. */
    write_partial_set(blk, m, 20);
    finish_image(blk, path, m);
    model_free(m);
}

static void test_cow_from_snapshot(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("cowsn.qcow2");
    img_create(path, 4 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(4 * MiB);
    write_pattern(blk, m, 0, 1 * MiB, 7);
    snapshot_create_ok(blk, "before");
    Model *before = model_copy(m);
    /* Clusters are shared with the snapshot: each write copies one. */
    write_partial_set(blk, m, 30);
    verify_model(blk, m);
    snapshot_apply_ok(blk, "before");
    verify_model(blk, before);
    snapshot_apply_ok(blk, "before");        /* twice: still the same */
    verify_model(blk, before);
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, before);
    qemu_compare(path, "before", before);
    write_partial_set(blk, before, 40);
    finish_image(blk, path, before);
    model_free(m);
    model_free(before);
}

/* Creates base (with data) and an overlay on it; returns the model. */
static Model *make_base_and_overlay(const char *base, const char *top,
                                    uint64_t base_size, uint64_t top_size,
                                    const char *top_opts)
{
    img_create(base, base_size, NULL);
    BlockBackend *b = img_open(base);
    Model *m = model_new(base_size);
    write_pattern(b, m, 0, base_size, 77);
    blk_unref(b);
    g_autofree char *opts = g_strdup_printf("backing_file=%s,backing_fmt=qcow2"
                                            "%s%s", base, top_opts ? "," : "",
                                            top_opts ? top_opts : "");
    img_create(top, top_size, opts);
    model_resize(m, top_size);
    return m;
}

static void test_cow_from_backing(Fixture *f, gconstpointer data)
{
    g_autofree char *base = test_path("base.qcow2");
    g_autofree char *top = test_path("top.qcow2");
    Model *m = make_base_and_overlay(base, top, 2 * MiB, 2 * MiB,
                                     "cluster_size=4096");
    BlockBackend *blk = img_open(top);
    verify_model(blk, m);
    write_partial_set(blk, m, 50);
    write_pattern(blk, m, 4096 + 10, 10, 51);
    verify_model(blk, m);
    blk = close_check_reopen(blk, top, false);
    verify_model(blk, m);
    finish_image(blk, top, m);
    qemu_check(base, false);
    model_free(m);
}

/* ---- discard and reuse ---- */

static void test_discard_reuse(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("discard.qcow2");
    img_create(path, 16 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(16 * MiB);
    write_pattern(blk, m, 0, 4 * MiB, 3);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    uint64_t len_full = file_size(path);

    g_assert_cmpint(blk_pdiscard(blk, 0, 4 * MiB), ==, 0);
    memset(m->data, 0, 4 * MiB);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    verify_range(blk, m, 0, 4 * MiB);
    int64_t pnum;
    g_assert_false(block_status_at(blk, 0, &pnum) & BDRV_BLOCK_ALLOCATED);
    check_blk(blk, false);

    /* The freed clusters are used again: the file does not grow. */
    write_pattern(blk, m, 8 * MiB, 4 * MiB, 4);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    g_assert_cmpuint(file_size(path), <=, len_full);

    /* Discard covers whole clusters only; the edges keep their data. */
    g_assert_cmpint(blk_pdiscard(blk, 8 * MiB + 1000, 200000), ==, 0);
    memset(m->data + 8 * MiB + 64 * KiB, 0, 128 * KiB);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, m);
    finish_image(blk, path, m);
    model_free(m);
}

/* ---- zero clusters ---- */

static void test_zero_clusters(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("zero.qcow2");
    img_create(path, 4 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(4 * MiB);
    int64_t pnum;
    write_pattern(blk, m, 0, 1 * MiB, 5);
    zero_both(blk, m, 64 * KiB, 128 * KiB, 0);
    g_assert_true(block_status_at(blk, 64 * KiB, &pnum) & BDRV_BLOCK_ZERO);
    g_assert_cmpint(pnum, >=, 128 * KiB);
    zero_both(blk, m, 512 * KiB, 256 * KiB, BDRV_REQ_MAY_UNMAP);
    zero_both(blk, m, 1000, 3000, 0);                /* unaligned: written */
    zero_both(blk, m, 2 * MiB, 64 * KiB, 0);         /* never allocated */
    /* COW into a zero cluster must not resurrect the old data. */
    write_pattern(blk, m, 64 * KiB + 100, 50, 6);
    write_pattern(blk, m, 600 * KiB - 10, 20, 7);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, m);
    finish_image(blk, path, m);
    model_free(m);
}

static void test_zero_over_backing(Fixture *f, gconstpointer data)
{
    g_autofree char *base = test_path("zb.qcow2");
    g_autofree char *top = test_path("zt.qcow2");
    Model *m = make_base_and_overlay(base, top, 1 * MiB, 1 * MiB, NULL);
    BlockBackend *blk = img_open(top);
    zero_both(blk, m, 0, 64 * KiB, 0);
    write_pattern(blk, m, 100, 10, 8);         /* COW from a zero cluster */
    zero_both(blk, m, 128 * KiB, 64 * KiB, BDRV_REQ_MAY_UNMAP);
    write_pattern(blk, m, 256 * KiB, 64 * KiB, 9);
    /* Discard in an overlay must not expose the backing file. */
    g_assert_cmpint(blk_pdiscard(blk, 256 * KiB, 128 * KiB), ==, 0);
    memset(m->data + 256 * KiB, 0, 128 * KiB);
    verify_model(blk, m);
    blk = close_check_reopen(blk, top, false);
    verify_model(blk, m);
    finish_image(blk, top, m);
    model_free(m);
}

/* ---- backing chain of depth 3 ---- */

static void test_backing_chain(Fixture *f, gconstpointer data)
{
    g_autofree char *base = test_path("c0.qcow2");
    g_autofree char *mid = test_path("c1.qcow2");
    g_autofree char *top = test_path("c2.qcow2");
    Model *m = make_base_and_overlay(base, mid, 1 * MiB, 2 * MiB,
                                     "cluster_size=4096");
    BlockBackend *blk = img_open(mid);
    write_pattern(blk, m, 256 * KiB, 512 * KiB, 10);
    write_pattern(blk, m, 1536 * KiB, 256 * KiB, 11);  /* beyond the base */
    write_pattern(blk, m, 1 * MiB - 100, 200, 12);     /* across its end */
    verify_model(blk, m);
    blk_unref(blk);

    g_autofree char *opts = g_strdup_printf("backing_file=%s,backing_fmt=qcow2"
                                            ",cluster_size=512", mid);
    img_create(top, 4 * MiB, opts);       /* larger than its backing */
    model_resize(m, 4 * MiB);
    blk = img_open(top);
    verify_model(blk, m);
    write_pattern(blk, m, 100, 10, 13);                 /* COW from base */
    write_pattern(blk, m, 300 * KiB + 7, 1000, 14);     /* COW from mid */
    write_pattern(blk, m, 2 * MiB - 300, 600, 15);      /* across mid's end */
    write_pattern(blk, m, 3 * MiB, 4096, 16);
    zero_both(blk, m, 512 * KiB, 4096, 0);
    verify_model(blk, m);
    blk = close_check_reopen(blk, top, false);
    verify_model(blk, m);
    finish_image(blk, top, m);
    qemu_check(mid, false);
    qemu_check(base, false);
    model_free(m);
}

/* ---- every cluster size ---- */

static void random_writes(BlockBackend *blk, Model *m, GRand *r, int n,
                          uint64_t max_len)
{
    for (int i = 0; i < n; i++) {
        uint64_t len = 1 + g_rand_int_range(r, 0, max_len);
        uint64_t off = g_rand_int_range(r, 0, m->size - len);
        write_pattern(blk, m, off, len, g_rand_int(r));
    }
}

static void exercise_cluster_size(uint64_t cs)
{
    g_autofree char *path = test_path("cs.qcow2");
    g_autofree char *opts = g_strdup_printf("cluster_size=%" G_GUINT64_FORMAT,
                                            cs);
    const uint64_t size = 8 * MiB;
    GRand *r = g_rand_new_with_seed(cs);
    img_create(path, size, opts);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(size);
    random_writes(blk, m, r, 24, 96 * KiB);
    snapshot_create_ok(blk, "s");
    random_writes(blk, m, r, 8, 32 * KiB);
    g_assert_cmpint(blk_pdiscard(blk, 0, 4 * MiB), ==, 0);
    memset(m->data, 0, 4 * MiB);
    uint8_t *buf = g_malloc(cs);
    compressible_fill(buf, cs, 3, 6 * MiB);
    write_both(blk, m, 6 * MiB, cs, buf, BDRV_REQ_WRITE_COMPRESSED);
    g_free(buf);
    zero_both(blk, m, 5 * MiB, MAX(cs, 64 * KiB), 0);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, m);
    snapshot_delete_ok(blk, "s");
    finish_image(blk, path, m);
    model_free(m);
    g_rand_free(r);
    g_unlink(path);
}

static void test_cluster_sizes(Fixture *f, gconstpointer data)
{
    for (uint64_t cs = 512; cs <= 2 * MiB; cs *= 2) {
        exercise_cluster_size(cs);
    }
}

/* ---- refcount widths ---- */

/* Takes snapshots with writes in between until one fails or `want`
 * succeed; returns how many succeeded.  models[i] is snapshot i's data. */
static int snapshot_until_full(BlockBackend *blk, Model *m, Model **models,
                               int want)
{
    int n = 0;
    for (; n < want; n++) {
        g_autofree char *name = g_strdup_printf("s%d", n);
        GError *err = NULL;
        if (snapshot_create(blk, name, &err) < 0) {
            g_assert_nonnull(err);
            g_error_free(err);
            break;
        }
        models[n] = model_copy(m);
        write_pattern(blk, m, n * 8 * KiB, 6 * KiB, 100 + n);
    }
    return n;
}

static void exercise_refcount_bits(int bits)
{
    g_autofree char *path = test_path("rc.qcow2");
    g_autofree char *opts = g_strdup_printf("refcount_bits=%d,"
                                            "cluster_size=4096", bits);
    Model *models[4] = { NULL };
    img_create(path, 2 * MiB, opts);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(2 * MiB);
    write_pattern(blk, m, 0, 256 * KiB, bits);
    int n = snapshot_until_full(blk, m, models, 4);
    /* A refcount of k + 1 (active + k snapshots) must fit the width. */
    int fit = bits >= 3 ? 4 : (1 << bits) - 2;
    g_assert_cmpint(n, ==, fit);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    for (int i = n - 1; i >= 0; i--) {
        g_autofree char *name = g_strdup_printf("s%d", i);
        snapshot_apply_ok(blk, name);
        verify_model(blk, models[i]);
        snapshot_delete_ok(blk, name);
        memcpy(m->data, models[i]->data, m->size);
        model_free(models[i]);
    }
    write_pattern(blk, m, 0, 64 * KiB, 5);
    finish_image(blk, path, m);
    model_free(m);
    g_unlink(path);
}

static void test_refcount_widths(Fixture *f, gconstpointer data)
{
    for (int bits = 1; bits <= 64; bits *= 2) {
        exercise_refcount_bits(bits);
    }
}

/* 64-bit refcounts in 512-byte clusters: one refcount block covers 32 KiB
 * and the first refcount table only 2 MiB of file, so writing 3 MiB
 * must grow the table (twice). */
static void test_refcount_table_growth_writes(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("grow.qcow2");
    img_create(path, 8 * MiB, "cluster_size=512,refcount_bits=64");
    g_assert_cmpuint(img_header_field(path, 56, 4), ==, 1);
    BlockBackend *blk = img_open_opts(path, "cache.no-flush=on", NULL);
    Model *m = model_new(8 * MiB);
    for (uint64_t off = 0; off < 3 * MiB; off += 64 * KiB) {
        write_pattern(blk, m, (off * 5) % (8 * MiB - 64 * KiB), 64 * KiB,
                      off);
    }
    check_blk(blk, false);
    blk_unref(blk);
    g_assert_cmpuint(img_header_field(path, 56, 4), >, 1);
    blk = img_open(path);
    verify_model(blk, m);
    finish_image(blk, path, m);
    model_free(m);
}

/* 512-byte clusters, 64-bit refcounts: a refcount block covers 64
 * clusters, as many as one L2 table maps, so a 32 KiB write into a
 * region whose L2 table exists allocates a whole range's worth of
 * clusters at once.  Preceded by 0..64 single-cluster writes, such
 * writes meet the end of the file at every offset within a range -
 * including the start of the last range the refcount table covers, where
 * exactly 64 free clusters lie before the table's end. */
static void test_refcount_range_sized_writes(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("range.qcow2");
    for (uint64_t lead = 0; lead < 65; lead++) {
        img_create(path, 10 * MiB, "cluster_size=512,refcount_bits=64");
        BlockBackend *blk = img_open_opts(path, "cache.no-flush=on", NULL);
        Model *m = model_new(10 * MiB);
        /* Zero clusters everywhere: every L2 table exists. */
        g_assert_cmpint(blk_pwrite_zeroes(blk, 0, 10 * MiB, 0), ==, 0);
        for (uint64_t i = 0; i < lead; i++) {
            write_pattern(blk, m, i * 32 * KiB, 512, i);
        }
        for (uint64_t off = 5 * MiB; off < 10 * MiB; off += 32 * KiB) {
            write_pattern(blk, m, off, 32 * KiB, off);
        }
        check_blk(blk, false);
        blk_unref(blk);
        qemu_check(path, false);
        blk = img_open(path);
        verify_model(blk, m);
        blk_unref(blk);
        model_free(m);
        g_unlink(path);
    }
}

/* 1-bit refcounts in 512-byte clusters: a refcount block covers 2 MiB and
 * the first table 128 MiB; metadata preallocation of 160 MiB makes about
 * 330000 allocations and grows the table. */
static void test_refcount_table_growth_1bit(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("grow1.qcow2");
    GError *err = NULL;
    img_create(path, 1 * MiB, "cluster_size=512,refcount_bits=1");
    BlockBackend *blk = img_open_opts(path, "cache.no-flush=on", NULL);
    g_assert_cmpint(blk_truncate(blk, 160 * MiB, false,
                                 PREALLOC_MODE_METADATA, &err), ==, 0);
    g_assert_no_error(err);
    Model *m = model_new(160 * MiB);
    write_pattern(blk, m, 150 * MiB + 3, 10000, 1);
    write_pattern(blk, m, 1000, 10000, 2);
    check_blk(blk, false);
    blk_unref(blk);
    g_assert_cmpuint(img_header_field(path, 56, 4), >, 1);
    qemu_check(path, false);
    blk = img_open(path);
    verify_range(blk, m, 150 * MiB, 1 * MiB);
    verify_range(blk, m, 0, 1 * MiB);
    int64_t pnum;
    g_assert_true(block_status_at(blk, 100 * MiB, &pnum) &
                  BDRV_BLOCK_ALLOCATED);
    blk_unref(blk);
    model_free(m);
}

/* 512-byte clusters with 64-bit refcounts: the refcount table grows at
 * 2 MiB and then at 4 MiB of file.  A snapshot apply whose copies of 256
 * L2 tables cross the 4 MiB mark grows it inside the shadow commit (the
 * fill sizes put the mark at different moments of the commit). */
static void apply_across_reftable_growth(uint64_t fill)
{
    g_autofree char *path = test_path("growsn.qcow2");
    img_create(path, 8 * MiB, "cluster_size=512,refcount_bits=64");
    BlockBackend *blk = img_open_opts(path, "cache.no-flush=on", NULL);
    Model *m = model_new(8 * MiB);
    for (uint64_t i = 0; i < 256; i++) {
        write_pattern(blk, m, i * 32 * KiB + 100, 512, 2 + i);
    }
    snapshot_create_ok(blk, "g0");
    Model *g0 = model_copy(m);
    write_pattern(blk, m, 0, fill, 1);
    snapshot_apply_ok(blk, "g0");
    verify_model(blk, g0);
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, g0);
    snapshot_delete_ok(blk, "g0");
    finish_image(blk, path, g0);
    model_free(g0);
    model_free(m);
    g_unlink(path);
}

static void test_refcount_table_growth_in_snapshots(Fixture *f,
                                                    gconstpointer data)
{
    for (uint64_t fill = 3350; fill <= 3550; fill += 50) {
        apply_across_reftable_growth(fill * KiB);
    }
}

/* ---- compressed clusters ---- */

static void write_compressed(BlockBackend *blk, Model *m, uint64_t off,
                             uint64_t len, uint32_t seed)
{
    uint8_t *buf = g_malloc(len);
    compressible_fill(buf, len, seed, off);
    write_both(blk, m, off, len, buf, BDRV_REQ_WRITE_COMPRESSED);
    g_free(buf);
}

static void compressed_edge_cases(BlockBackend *blk, Model *m)
{
    uint8_t *buf = g_malloc(64 * KiB);
    /* Incompressible data is stored uncompressed, still correct. */
    pattern_fill(buf, 64 * KiB, 9, 20 * 64 * KiB);
    write_both(blk, m, 20 * 64 * KiB, 64 * KiB, buf,
               BDRV_REQ_WRITE_COMPRESSED);
    /* Only whole clusters can be compressed. */
    g_assert_cmpint(blk_pwrite(blk, 100, 64 * KiB, buf,
                               BDRV_REQ_WRITE_COMPRESSED), ==, -EINVAL);
    g_free(buf);
}

static void exercise_compression(const char *type)
{
    g_autofree char *path = test_path("comp.qcow2");
    g_autofree char *opts = g_strdup_printf("compression_type=%s", type);
    img_create(path, 4 * MiB, opts);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(4 * MiB);
    write_compressed(blk, m, 0, 16 * 64 * KiB, 1);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    /* 16 clusters of compressible data take far less than 1 MiB. */
    g_assert_cmpuint(file_size(path), <, 512 * KiB);
    int64_t pnum;
    g_assert_true(block_status_at(blk, 0, &pnum) & BDRV_BLOCK_COMPRESSED);
    verify_model(blk, m);
    write_pattern(blk, m, 3 * 64 * KiB + 100, 1000, 2);  /* COW */
    write_compressed(blk, m, 5 * 64 * KiB, 64 * KiB, 3);  /* replace */
    g_assert_cmpint(blk_pdiscard(blk, 7 * 64 * KiB, 64 * KiB), ==, 0);
    memset(m->data + 7 * 64 * KiB, 0, 64 * KiB);
    compressed_edge_cases(blk, m);
    verify_model(blk, m);

    snapshot_create_ok(blk, "c");
    Model *snap = model_copy(m);
    write_compressed(blk, m, 1 * 64 * KiB, 64 * KiB, 4);
    write_pattern(blk, m, 2 * 64 * KiB, 10, 5);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    qemu_compare(path, "c", snap);
    snapshot_apply_ok(blk, "c");
    verify_model(blk, snap);
    snapshot_delete_ok(blk, "c");
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, snap);
    finish_image(blk, path, snap);
    model_free(m);
    model_free(snap);
}

static void test_compressed_zlib(Fixture *f, gconstpointer data)
{
    exercise_compression("zlib");
}

static void test_compressed_zstd(Fixture *f, gconstpointer data)
{
    exercise_compression("zstd");
}

/* Freed compressed clusters must be reusable without leaks. */
static void test_compressed_discard_all(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("compd.qcow2");
    img_create(path, 4 * MiB, "cluster_size=4096,compression_type=zstd");
    BlockBackend *blk = img_open(path);
    Model *m = model_new(4 * MiB);
    for (int round = 0; round < 3; round++) {
        write_compressed(blk, m, 0, 1 * MiB, round);
        g_assert_cmpint(blk_pdiscard(blk, 0, 512 * KiB), ==, 0);
        memset(m->data, 0, 512 * KiB);
        g_assert_cmpint(blk_flush(blk), ==, 0);
        verify_range(blk, m, 0, 1 * MiB);
    }
    finish_image(blk, path, m);
    model_free(m);
}

/* ---- version 2 images ---- */

/* compat=0.10 has no zero flag: zeroes are written as data, discard
 * leaves clusters unallocated, and snapshots still work. */
static void test_v2_image(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("v2.qcow2");
    img_create(path, 4 * MiB, "compat=0.10,cluster_size=4096");
    g_assert_cmpuint(img_header_field(path, 4, 4), ==, 2);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(4 * MiB);
    write_pattern(blk, m, 0, 1 * MiB, 1);
    zero_both(blk, m, 64 * KiB, 64 * KiB, 0);
    g_assert_cmpint(blk_pdiscard(blk, 256 * KiB, 64 * KiB), ==, 0);
    memset(m->data + 256 * KiB, 0, 64 * KiB);
    write_compressed(blk, m, 2 * MiB, 64 * KiB, 2);
    snapshot_create_ok(blk, "v2snap");
    Model *snap = model_copy(m);
    write_pattern(blk, m, 1000, 100 * KiB, 3);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    snapshot_apply_ok(blk, "v2snap");
    verify_model(blk, snap);
    g_assert_cmpuint(img_header_field(path, 4, 4), ==, 2);
    finish_image(blk, path, snap);
    model_free(m);
    model_free(snap);
}

/* ---- snapshots ---- */

/* Duplicate names and unknown snapshots are refused and change nothing. */
static void refused_snapshot_ops(BlockBackend *blk, const Model *m)
{
    GError *err = NULL;
    g_assert_cmpint(snapshot_create(blk, "one", &err), <, 0);
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_autofree char *names = snapshot_names(blk);
    g_assert_cmpstr(names, ==, "one,two");
    g_assert_cmpint(bdrv_snapshot_apply(blk_bs(blk), "nope", &err), <, 0);
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert_cmpint(bdrv_snapshot_delete(blk_bs(blk), NULL, "nope", &err),
                    <, 0);
    g_assert_nonnull(err);
    g_clear_error(&err);
    verify_model(blk, m);
}

static void test_snapshot_basic(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("snap.qcow2");
    img_create(path, 4 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(4 * MiB);
    write_pattern(blk, m, 0, 1 * MiB, 1);
    snapshot_create_ok(blk, "one");
    Model *one = model_copy(m);
    write_pattern(blk, m, 512 * KiB, 1 * MiB, 2);
    zero_both(blk, m, 0, 64 * KiB, 0);
    snapshot_create_ok(blk, "two");
    Model *two = model_copy(m);
    write_pattern(blk, m, 3 * MiB, 1000, 3);
    refused_snapshot_ops(blk, m);
    snapshot_apply_ok(blk, "one");
    verify_model(blk, one);
    snapshot_apply_ok(blk, "two");
    verify_model(blk, two);
    blk = close_check_reopen(blk, path, false);
    qemu_compare(path, "one", one);
    snapshot_delete_ok(blk, "one");
    g_autofree char *names = snapshot_names(blk);
    g_assert_cmpstr(names, ==, "two");
    verify_model(blk, two);
    blk = close_check_reopen(blk, path, false);
    snapshot_delete_ok(blk, "two");
    verify_model(blk, two);
    finish_image(blk, path, two);
    model_free(m);
    model_free(one);
    model_free(two);
}

/* Snapshot lookups by ID: ids are assigned 1, 2, ... */
static void test_snapshot_ids(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("ids.qcow2");
    img_create(path, 1 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(1 * MiB);
    snapshot_create_ok(blk, "a");
    write_pattern(blk, m, 0, 4096, 1);
    snapshot_create_ok(blk, "b");
    BdrvSnapshotInfo info = { 0 };
    g_assert_true(bdrv_snapshot_find(blk_bs(blk), "2", &info));
    g_assert_cmpstr(info.name, ==, "b");
    bdrv_snapshot_info_clear(&info);
    GError *err = NULL;
    g_assert_cmpint(bdrv_snapshot_delete(blk_bs(blk), "1", NULL, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_false(bdrv_snapshot_find(blk_bs(blk), "a", NULL));
    snapshot_create_ok(blk, "c");
    g_assert_true(bdrv_snapshot_find(blk_bs(blk), "3", &info));
    g_assert_cmpstr(info.name, ==, "c");
    bdrv_snapshot_info_clear(&info);
    finish_image(blk, path, m);
    model_free(m);
}

#define MANY_SNAPSHOTS 100

static void apply_and_verify(BlockBackend *blk, Model **models, int i)
{
    g_autofree char *name = g_strdup_printf("snap%d", i);
    snapshot_apply_ok(blk, name);
    verify_model(blk, models[i]);
}

/* Deletes in a scrambled order; survivors checked now and then. */
static void delete_scrambled(BlockBackend *blk, Model **models)
{
    for (int k = 0; k < MANY_SNAPSHOTS; k++) {
        int i = (k * 37) % MANY_SNAPSHOTS;
        g_autofree char *name = g_strdup_printf("snap%d", i);
        snapshot_delete_ok(blk, name);
        if (k % 25 == 24 && k + 1 < MANY_SNAPSHOTS) {
            apply_and_verify(blk, models, ((k + 1) * 37) % MANY_SNAPSHOTS);
        }
    }
    g_autofree char *names = snapshot_names(blk);
    g_assert_cmpstr(names, ==, "");
}

static void test_snapshot_many(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("many.qcow2");
    img_create(path, 4 * MiB, "cluster_size=4096");
    BlockBackend *blk = img_open_opts(path, "cache.no-flush=on", NULL);
    Model *m = model_new(4 * MiB);
    Model *models[MANY_SNAPSHOTS];
    GRand *r = g_rand_new_with_seed(42);
    for (int i = 0; i < MANY_SNAPSHOTS; i++) {
        random_writes(blk, m, r, 2, 16 * KiB);
        g_autofree char *name = g_strdup_printf("snap%d", i);
        snapshot_create_ok(blk, name);
        models[i] = model_copy(m);
    }
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    qemu_compare(path, "snap37", models[37]);
    blk = img_open_opts(path, "cache.no-flush=on", NULL);
    int order[] = { 50, 3, 99, 0 };
    for (guint i = 0; i < G_N_ELEMENTS(order); i++) {
        apply_and_verify(blk, models, order[i]);
    }
    delete_scrambled(blk, models);
    for (int i = 0; i < MANY_SNAPSHOTS; i++) {
        model_free(models[i]);
    }
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    g_rand_free(r);
    model_free(m);
}

/* A snapshot remembers the disk size; apply restores it. */
static void test_snapshot_and_resize(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("snrs.qcow2");
    GError *err = NULL;
    img_create(path, 8 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(8 * MiB);
    write_pattern(blk, m, 7 * MiB, 1 * MiB, 1);
    snapshot_create_ok(blk, "small");
    Model *small = model_copy(m);
    g_assert_cmpint(blk_truncate(blk, 16 * MiB, false, PREALLOC_MODE_OFF,
                                 &err), ==, 0);
    g_assert_no_error(err);
    model_resize(m, 16 * MiB);
    write_pattern(blk, m, 12 * MiB, 2 * MiB, 2);
    verify_model(blk, m);
    snapshot_apply_ok(blk, "small");
    g_assert_cmpint(blk_getlength(blk), ==, 8 * MiB);
    verify_model(blk, small);
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, small);
    finish_image(blk, path, small);
    model_free(m);
    model_free(small);
}

/* ---- resize ---- */

/* Resizes image and model; asserts the outcome. */
static void resize_both(BlockBackend *blk, Model *m, uint64_t size)
{
    GError *err = NULL;
    g_assert_cmpint(blk_truncate(blk, size, false, PREALLOC_MODE_OFF, &err),
                    ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(blk_getlength(blk), ==, size);
    model_resize(m, size);
}

/* Shrinking over allocated clusters is refused and changes nothing. */
static void shrink_refused(BlockBackend *blk, Model *m, uint64_t size)
{
    GError *err = NULL;
    g_assert_cmpint(blk_truncate(blk, size, false, PREALLOC_MODE_OFF, &err),
                    <, 0);
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert_cmpint(blk_getlength(blk), ==, m->size);
    verify_range(blk, m, m->size - 1 * MiB, 1 * MiB);
}

static void test_resize(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("resize.qcow2");
    img_create(path, 8 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(8 * MiB);
    write_pattern(blk, m, 8 * MiB - 4096, 4096, 1);
    resize_both(blk, m, 600 * MiB);
    write_pattern(blk, m, 599 * MiB, 1 * MiB, 2);   /* needs a longer L1 */
    verify_range(blk, m, 0, 16 * MiB);
    verify_range(blk, m, 590 * MiB, 10 * MiB);
    shrink_refused(blk, m, 300 * MiB);
    /* Once the tail is unused it can go. */
    g_assert_cmpint(blk_pdiscard(blk, 599 * MiB, 1 * MiB), ==, 0);
    resize_both(blk, m, 300 * MiB);
    uint8_t b[512] = { 0 };
    g_assert_cmpint(blk_pread(blk, 300 * MiB, 512, b), <, 0);
    g_assert_cmpint(blk_pwrite(blk, 300 * MiB - 256, 512, b, 0), <, 0);
    /* Growing again shows zeroes, not the old data. */
    resize_both(blk, m, 600 * MiB);
    verify_range(blk, m, 599 * MiB, 1 * MiB);
    blk = close_check_reopen(blk, path, false);
    g_assert_cmpint(blk_getlength(blk), ==, 600 * MiB);
    verify_range(blk, m, 0, 8 * MiB);
    verify_range(blk, m, 598 * MiB, 2 * MiB);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    model_free(m);
}

/* Growing with metadata preallocation allocates without data. */
static void test_resize_prealloc(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("prealloc.qcow2");
    GError *err = NULL;
    img_create(path, 1 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(1 * MiB);
    write_pattern(blk, m, 0, 1 * MiB, 1);
    g_assert_cmpint(blk_truncate(blk, 4 * MiB, false, PREALLOC_MODE_METADATA,
                                 &err), ==, 0);
    g_assert_no_error(err);
    model_resize(m, 4 * MiB);
    int64_t pnum;
    g_assert_true(block_status_at(blk, 3 * MiB, &pnum) & BDRV_BLOCK_ALLOCATED);
    verify_model(blk, m);
    write_pattern(blk, m, 2 * MiB + 5, 100, 2);
    finish_image(blk, path, m);
    model_free(m);
}

/* ---- many requests in flight ---- */

#define FILL_BYTE 0xee

typedef struct Batch {
    AioReq *reqs;
    int n;
    int completed;
} Batch;

/* n overlapping writes in [base, base + span), request i fills byte i+1. */
static Batch *batch_new(GRand *r, int n, uint64_t base, uint64_t span,
                        uint64_t max_len)
{
    Batch *b = g_new0(Batch, 1);
    b->n = n;
    b->reqs = g_new0(AioReq, n);
    for (int i = 0; i < n; i++) {
        AioReq *q = &b->reqs[i];
        q->len = 1 + g_rand_int_range(r, 0, max_len);
        q->off = base + g_rand_int_range(r, 0, span - q->len);
        q->id = i;
        q->buf = g_malloc(q->len);
        q->completed = &b->completed;
        memset(q->buf, i + 1, q->len);
        iovec_init_buf(&q->qiov, q->buf, q->len);
    }
    return b;
}

static void batch_free(Batch *b)
{
    for (int i = 0; i < b->n; i++) {
        g_free(b->reqs[i].buf);
    }
    g_free(b->reqs);
    g_free(b);
}

static void batch_submit_and_wait(BlockBackend *blk, Batch *b)
{
    for (int i = 0; i < b->n; i++) {
        blk_aio_pwritev(blk, b->reqs[i].off, &b->reqs[i].qiov, 0,
                        aio_req_cb, &b->reqs[i]);
    }
    g_assert_cmpuint(blk_in_flight(blk), >, 0);
    poll_until_count(&b->completed, b->n);
    for (int i = 0; i < b->n; i++) {
        g_assert_cmpint(b->reqs[i].ret, ==, 0);
    }
    g_assert_cmpuint(blk_in_flight(blk), ==, 0);
}

/* Is there an order of the requests that explains every byte?  Each byte
 * names its last writer w, so every other request covering it came
 * before w; the "came before" graph must be acyclic. */
static bool acyclic(const bool *before, int n)
{
    int *indeg = g_new0(int, n);
    bool *gone = g_new0(bool, n);
    for (int a = 0; a < n; a++) {
        for (int b = 0; b < n; b++) {
            indeg[b] += before[a * n + b];
        }
    }
    int removed = 0;
    for (bool progress = true; progress;) {
        progress = false;
        for (int a = 0; a < n; a++) {
            if (!gone[a] && indeg[a] == 0) {
                gone[a] = progress = true;
                removed++;
                for (int b = 0; b < n; b++) {
                    indeg[b] -= before[a * n + b];
                }
            }
        }
    }
    g_free(indeg);
    g_free(gone);
    return removed == n;
}

static void assert_serializable(const Batch *b, const uint8_t *got,
                                uint64_t base, uint64_t span)
{
    int n = b->n;
    bool *before = g_new0(bool, n * n);
    for (uint64_t i = 0; i < span; i++) {
        uint64_t off = base + i;
        int w = got[i] - 1;
        bool covered = false;
        for (int k = 0; k < n; k++) {
            const AioReq *q = &b->reqs[k];
            if (off < q->off || off >= q->off + q->len) {
                continue;
            }
            covered = true;
            if (k != w) {
                before[k * n + w] = true;
            }
        }
        if (!covered) {
            g_assert_cmpint(got[i], ==, FILL_BYTE);
            continue;
        }
        if (w < 0 || w >= n || off < b->reqs[w].off ||
            off >= b->reqs[w].off + b->reqs[w].len) {
            g_error("byte at %" G_GUINT64_FORMAT " is %#x: no request "
                    "covering it wrote that", off, got[i]);
        }
    }
    g_assert_true(acyclic(before, n));
    g_free(before);
}

/* Runs a batch over a region prefilled with FILL_BYTE (by the caller)
 * and folds the outcome into the model. */
static void overlap_round(BlockBackend *blk, Model *m, GRand *r,
                          uint64_t base, uint64_t span, uint64_t max_len)
{
    Batch *b = batch_new(r, 64, base, span, max_len);
    batch_submit_and_wait(blk, b);
    uint8_t *got = g_malloc(span);
    g_assert_cmpint(blk_pread(blk, base, span, got), ==, 0);
    assert_serializable(b, got, base, span);
    memcpy(m->data + base, got, span);
    g_free(got);
    batch_free(b);
}

static void fill_region(BlockBackend *blk, Model *m, uint64_t off,
                        uint64_t len)
{
    uint8_t *buf = g_malloc(len);
    memset(buf, FILL_BYTE, len);
    write_both(blk, m, off, len, buf, 0);
    g_free(buf);
}

/* Fresh clusters: allocating writes racing each other. */
static void test_qd_overlapping(Fixture *f, gconstpointer data)
{
    const char *opts = data;
    g_autofree char *path = test_path("qd.qcow2");
    g_autofree char *base_path = test_path("qdbase.qcow2");
    img_create(base_path, 4 * MiB, NULL);
    BlockBackend *blk = img_open(base_path);
    Model *m = model_new(4 * MiB);
    fill_region(blk, m, 2 * MiB, 2 * MiB);
    blk_unref(blk);
    g_autofree char *o = g_strdup_printf("%s,backing_file=%s,"
                                         "backing_fmt=qcow2", opts, base_path);
    img_create(path, 4 * MiB, o);
    blk = img_open(path);
    GRand *r = g_rand_new_with_seed(7);
    /* 1: unallocated clusters over backing data: allocating writes with
     * copy-on-write from the backing file, racing each other. */
    overlap_round(blk, m, r, 3 * MiB, 256 * KiB, 48 * KiB);
    /* 2: allocated clusters: in-place writes (and some allocating). */
    fill_region(blk, m, 0, 256 * KiB);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    overlap_round(blk, m, r, 0, 256 * KiB, 48 * KiB);
    /* 3: clusters shared with a snapshot: every write copies. */
    fill_region(blk, m, 1 * MiB, 256 * KiB);
    snapshot_create_ok(blk, "qd");
    overlap_round(blk, m, r, 1 * MiB, 256 * KiB, 48 * KiB);
    /* 4: allocating writes over backing data, racing inside a few
     * clusters (a single one with 64 KiB clusters). */
    overlap_round(blk, m, r, 2 * MiB + 512 * KiB, 64 * KiB, 6 * KiB);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, m);
    finish_image(blk, path, m);
    g_rand_free(r);
    model_free(m);
}

/* 256 disjoint writes, flushes, a read and discards in flight together. */
typedef struct {
    int completed;
    int failures;
} MixCount;

static void mix_cb(void *opaque, int ret)
{
    MixCount *c = opaque;
    c->completed++;
    c->failures += ret < 0;
}

static void test_qd_disjoint_mixed(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("mix.qcow2");
    img_create(path, 16 * MiB, "cluster_size=4096");
    BlockBackend *blk = img_open(path);
    Model *m = model_new(16 * MiB);
    write_pattern(blk, m, 8 * MiB, 1 * MiB, 99);
    write_pattern(blk, m, 12 * MiB, 1 * MiB, 98);
    enum { N = 256 };
    uint8_t *bufs = g_malloc(N * 20 * KiB);
    uint8_t *rbuf = g_malloc(1 * MiB);
    IOVector *q = g_new(IOVector, N + 1);
    MixCount c = { 0, 0 };
    for (int i = 0; i < N; i++) {
        uint64_t slot = (i * 97) % N;           /* scrambled order */
        uint64_t off = slot * 30 * KiB + 100;
        pattern_fill(bufs + i * 20 * KiB, 20 * KiB, i, off);
        memcpy(m->data + off, bufs + i * 20 * KiB, 20 * KiB);
        iovec_init_buf(&q[i], bufs + i * 20 * KiB, 20 * KiB);
        blk_aio_pwritev(blk, off, &q[i], 0, mix_cb, &c);
        if (i % 64 == 0) {
            blk_aio_flush(blk, mix_cb, &c);
        }
    }
    iovec_init_buf(&q[N], rbuf, 1 * MiB);
    blk_aio_preadv(blk, 8 * MiB, &q[N], 0, mix_cb, &c);
    for (int k = 0; k < 16; k++) {
        blk_aio_pdiscard(blk, 12 * MiB + k * 64 * KiB, 64 * KiB, mix_cb, &c);
    }
    memset(m->data + 12 * MiB, 0, 1 * MiB);
    g_assert_cmpuint(blk_in_flight(blk), >=, 32);
    poll_until_count(&c.completed, N + 4 + 1 + 16);
    g_assert_cmpint(c.failures, ==, 0);
    assert_same_bytes(rbuf, m->data + 8 * MiB, 1 * MiB, 8 * MiB, "aio read");
    verify_model(blk, m);
    finish_image(blk, path, m);
    g_free(bufs);
    g_free(rbuf);
    g_free(q);
    model_free(m);
}

/* ---- drain ---- */

static Batch *disjoint_batch(int n, uint64_t base, uint64_t stride)
{
    Batch *b = g_new0(Batch, 1);
    b->n = n;
    b->reqs = g_new0(AioReq, n);
    for (int i = 0; i < n; i++) {
        AioReq *q = &b->reqs[i];
        q->off = base + i * stride;
        q->len = stride / 2;
        q->buf = g_malloc(q->len);
        q->completed = &b->completed;
        pattern_fill(q->buf, q->len, 500 + i, q->off);
        iovec_init_buf(&q->qiov, q->buf, q->len);
    }
    return b;
}

static void batch_submit(BlockBackend *blk, Batch *b)
{
    for (int i = 0; i < b->n; i++) {
        blk_aio_pwritev(blk, b->reqs[i].off, &b->reqs[i].qiov, 0,
                        aio_req_cb, &b->reqs[i]);
    }
}

static void batch_into_model(const Batch *b, Model *m)
{
    for (int i = 0; i < b->n; i++) {
        g_assert_cmpint(b->reqs[i].ret, ==, 0);
        memcpy(m->data + b->reqs[i].off, b->reqs[i].buf, b->reqs[i].len);
    }
}

/* Spins the loop for a while, as a held request would need. */
static void spin_loop(int ms)
{
    gint64 end = g_get_monotonic_time() + ms * 1000;
    while (g_get_monotonic_time() < end) {
        aio_poll(false);
        g_usleep(500);
    }
}

static void test_drain(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("drain.qcow2");
    img_create(path, 8 * MiB, "cluster_size=4096");
    BlockBackend *blk = img_open(path);
    BlockDriverState *bs = blk_bs(blk);
    Model *m = model_new(8 * MiB);
    Batch *first = disjoint_batch(32, 0, 64 * KiB);
    batch_submit(blk, first);
    g_assert_cmpuint(bdrv_in_flight(bs), >, 0);
    g_assert_cmpint(first->completed, <, 32);

    bdrv_drained_begin(bs);
    /* Everything that was running has finished... */
    g_assert_cmpint(first->completed, ==, 32);
    g_assert_cmpuint(bdrv_in_flight(bs), ==, 0);
    batch_into_model(first, m);
    /* ...and new requests wait until the section ends. */
    Batch *held = disjoint_batch(8, 4 * MiB, 64 * KiB);
    batch_submit(blk, held);
    bdrv_drained_begin(bs);                 /* nested */
    bdrv_drained_end(bs);
    spin_loop(30);
    g_assert_cmpint(held->completed, ==, 0);
    g_assert_cmpuint(bdrv_in_flight(bs), ==, 0);
    uint8_t probe[512];
    g_assert_cmpint(bdrv_pread(bs, 4 * MiB, 512, probe), ==, 0);
    g_assert_true(buffer_is_zero(probe, 512));   /* not written yet */

    bdrv_drained_end(bs);
    poll_until_count(&held->completed, 8);
    batch_into_model(held, m);
    verify_model(blk, m);
    finish_image(blk, path, m);
    batch_free(first);
    batch_free(held);
    model_free(m);
}

/* Draining from inside a coroutine waits the same way. */
typedef struct {
    BlockDriverState *bs;
    Batch *b;
    int completed_at_drain;
    unsigned in_flight_at_drain;
} CoDrain;

static void co_drain_entry(void *opaque)
{
    CoDrain *d = opaque;
    bdrv_drained_begin(d->bs);
    d->completed_at_drain = d->b->completed;
    d->in_flight_at_drain = bdrv_in_flight(d->bs);
    bdrv_drained_end(d->bs);
}

static void test_drain_in_coroutine(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("codrain.qcow2");
    img_create(path, 8 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(8 * MiB);
    Batch *b = disjoint_batch(32, 0, 128 * KiB);
    batch_submit(blk, b);
    CoDrain d = { blk_bs(blk), b, -1, 99 };
    co_run_sync(co_drain_entry, &d);
    g_assert_cmpint(d.completed_at_drain, ==, 32);
    g_assert_cmpuint(d.in_flight_at_drain, ==, 0);
    batch_into_model(b, m);
    finish_image(blk, path, m);
    batch_free(b);
    model_free(m);
}

/* ---- snapshots with requests in flight ---- */

/* 64 allocating writes (each needing new L2 tables with 512-byte
 * clusters) are in flight when bdrv_snapshot_create starts: its prepare
 * races with them, its commit waits for them, so the snapshot holds
 * every one of them. */
static void test_snapshot_while_writing(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("busy.qcow2");
    img_create(path, 8 * MiB, "cluster_size=512");
    BlockBackend *blk = img_open(path);
    Model *m = model_new(8 * MiB);
    write_pattern(blk, m, 0, 64 * KiB, 1);
    Batch *b = disjoint_batch(64, 64 * KiB, 96 * KiB);
    batch_submit(blk, b);
    snapshot_create_ok(blk, "busy");
    poll_until_count(&b->completed, 64);
    batch_into_model(b, m);
    Model *snap = model_copy(m);
    write_pattern(blk, m, 0, 1 * MiB, 2);
    verify_model(blk, m);
    snapshot_apply_ok(blk, "busy");
    verify_model(blk, snap);
    finish_image(blk, path, snap);
    batch_free(b);
    model_free(m);
    model_free(snap);
}

/* Requests submitted before a snapshot is applied (or deleted) are part
 * of the state being left: none may land in the reverted one. */
static void test_apply_while_writing(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("applybusy.qcow2");
    img_create(path, 8 * MiB, "cluster_size=4096");
    BlockBackend *blk = img_open(path);
    Model *m = model_new(8 * MiB);
    write_pattern(blk, m, 0, 4 * MiB, 1);
    snapshot_create_ok(blk, "base");
    Model *base = model_copy(m);
    snapshot_create_ok(blk, "other");
    write_pattern(blk, m, 0, 4 * MiB, 2);     /* private clusters again */
    Batch *b = disjoint_batch(64, 0, 64 * KiB);   /* in-place writes */
    batch_submit(blk, b);
    snapshot_apply_ok(blk, "base");
    poll_until_count(&b->completed, 64);
    verify_model(blk, base);
    Batch *d = disjoint_batch(64, 4 * MiB, 64 * KiB);
    batch_submit(blk, d);
    snapshot_delete_ok(blk, "other");
    poll_until_count(&d->completed, 64);
    batch_into_model(d, base);
    verify_model(blk, base);
    finish_image(blk, path, base);
    batch_free(b);
    batch_free(d);
    model_free(m);
    model_free(base);
}

/* The pause model of a save state: prepare while the guest writes (and
 * flushes), commit while drained, then the guest writes again during
 * finish. */
typedef struct {
    BlockBackend *blk;
    Batch *before, *after;
} PauseCo;

static void coroutine_fn pause_entry(void *opaque)
{
    PauseCo *p = opaque;
    BlockDriverState *bs = blk_bs(p->blk);
    BdrvSnapshotInfo sn = { .name = "paused",
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    BdrvSnapshotCreate *st;
    GError *err = NULL;
    batch_submit(p->blk, p->before);        /* racing with prepare */
    g_assert_cmpint(bdrv_co_snapshot_create_prepare(bs, &sn, &st, &err), ==,
                    0);
    g_assert_no_error(err);
    /* The guest still runs between prepare and commit: it may flush. */
    g_assert_cmpint(blk_co_flush(p->blk), ==, 0);
    bdrv_drained_begin(bs);
    g_assert_cmpint(p->before->completed, ==, p->before->n);
    bdrv_snapshot_create_commit(bs, st);
    bdrv_drained_end(bs);
    batch_submit(p->blk, p->after);         /* racing with finish */
    g_assert_cmpint(bdrv_co_snapshot_create_finish(bs, st, &err), ==, 0);
    g_assert_no_error(err);
}

/* A resize while a snapshot is prepared or committed but not finished:
 * refused, or else the snapshot and the image stay whole. */
typedef struct {
    BlockBackend *blk;
    int ret_before_commit, ret_after_commit;
} ResizeCo;

static void coroutine_fn resize_entry(void *opaque)
{
    ResizeCo *r = opaque;
    BlockDriverState *bs = blk_bs(r->blk);
    BdrvSnapshotInfo sn = { .name = "sized",
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    BdrvSnapshotCreate *st;
    GError *err = NULL;
    g_assert_cmpint(bdrv_co_snapshot_create_prepare(bs, &sn, &st, &err), ==,
                    0);
    r->ret_before_commit = bdrv_co_truncate(bs, 64 * MiB, false,
                                            PREALLOC_MODE_OFF, NULL);
    bdrv_drained_begin(bs);
    bdrv_snapshot_create_commit(bs, st);
    bdrv_drained_end(bs);
    r->ret_after_commit = bdrv_co_truncate(bs, 128 * MiB, false,
                                           PREALLOC_MODE_OFF, NULL);
    g_assert_cmpint(bdrv_co_snapshot_create_finish(bs, st, &err), ==, 0);
    g_assert_no_error(err);
}

static void test_resize_during_snapshot(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("rsnap.qcow2");
    img_create(path, 4 * MiB, "cluster_size=512");
    BlockBackend *blk = img_open(path);
    Model *m = model_new(4 * MiB);
    write_pattern(blk, m, 0, 4 * MiB, 1);
    ResizeCo r = { blk, 1, 1 };
    co_run_sync(resize_entry, &r);
    Model *snap = model_copy(m);
    int64_t len = blk_getlength(blk);
    g_assert_true(len == 4 * MiB || len == 64 * MiB || len == 128 * MiB);
    model_resize(m, len);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    snapshot_apply_ok(blk, "sized");
    verify_model(blk, snap);
    finish_image(blk, path, snap);
    model_free(m);
    model_free(snap);
}

/* Between commit and finish the guest discards, zeroes and writes
 * compressed clusters over data the snapshot shares. */
typedef struct {
    BlockBackend *blk;
    Model *m;
    Model *snap;
} MixedPauseCo;

static void coroutine_fn pause_mixed_ops(MixedPauseCo *p)
{
    uint8_t *buf = g_malloc(64 * KiB);
    IOVector q;
    g_assert_cmpint(blk_co_pdiscard(p->blk, 128 * KiB, 128 * KiB), ==, 0);
    memset(p->m->data + 128 * KiB, 0, 128 * KiB);
    g_assert_cmpint(blk_co_pwrite_zeroes(p->blk, 512 * KiB, 64 * KiB, 0), ==,
                    0);
    memset(p->m->data + 512 * KiB, 0, 64 * KiB);
    compressible_fill(buf, 64 * KiB, 7, 1 * MiB);
    iovec_init_buf(&q, buf, 64 * KiB);
    g_assert_cmpint(blk_co_pwritev(p->blk, 1 * MiB, 64 * KiB, &q,
                                   BDRV_REQ_WRITE_COMPRESSED), ==, 0);
    memcpy(p->m->data + 1 * MiB, buf, 64 * KiB);
    g_free(buf);
}

static void coroutine_fn pause_mixed_entry(void *opaque)
{
    MixedPauseCo *p = opaque;
    BlockDriverState *bs = blk_bs(p->blk);
    BdrvSnapshotInfo sn = { .name = "mixed",
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    BdrvSnapshotCreate *st;
    GError *err = NULL;
    g_assert_cmpint(bdrv_co_snapshot_create_prepare(bs, &sn, &st, &err), ==,
                    0);
    bdrv_drained_begin(bs);
    bdrv_snapshot_create_commit(bs, st);
    bdrv_drained_end(bs);
    /* Other snapshot operations wait for this one. */
    g_assert_cmpint(bdrv_co_snapshot_create_prepare(bs, &sn, &st, &err), <,
                    0);
    g_clear_error(&err);
    pause_mixed_ops(p);
    g_assert_cmpint(bdrv_co_snapshot_create_finish(bs, st, &err), ==, 0);
    g_assert_no_error(err);
}

static void test_snapshot_pause_mixed(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("pausemix.qcow2");
    img_create(path, 4 * MiB, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(4 * MiB);
    write_pattern(blk, m, 0, 2 * MiB, 1);
    MixedPauseCo p = { blk, m, model_copy(m) };
    co_run_sync(pause_mixed_entry, &p);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, m);
    qemu_compare(path, "mixed", p.snap);
    snapshot_apply_ok(blk, "mixed");
    verify_model(blk, p.snap);
    finish_image(blk, path, p.snap);
    model_free(m);
    model_free(p.snap);
}

static void test_snapshot_pause_model(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("pause.qcow2");
    img_create(path, 8 * MiB, "cluster_size=4096");
    BlockBackend *blk = img_open(path);
    Model *m = model_new(8 * MiB);
    write_pattern(blk, m, 0, 2 * MiB, 1);
    /* "after" overlaps "before" (copy-on-write of shared clusters) and
     * reaches fresh clusters and L2 tables beyond 2 MiB. */
    PauseCo p = { blk, disjoint_batch(32, 100 * KiB, 96 * KiB),
                  disjoint_batch(48, 101 * KiB, 128 * KiB) };
    co_run_sync(pause_entry, &p);
    poll_until_count(&p.after->completed, p.after->n);
    batch_into_model(p.before, m);
    Model *snap = model_copy(m);
    batch_into_model(p.after, m);
    verify_model(blk, m);
    blk = close_check_reopen(blk, path, false);
    verify_model(blk, m);
    qemu_compare(path, "paused", snap);
    snapshot_apply_ok(blk, "paused");
    verify_model(blk, snap);
    finish_image(blk, path, snap);
    batch_free(p.before);
    batch_free(p.after);
    model_free(m);
    model_free(snap);
}

/* ---- concurrent chains of requests ---- */

/* Each chain issues random requests one after another inside its own
 * byte range; 32 chains run at once.  Ranges are not cluster aligned, so
 * neighbours share clusters and race to allocate, copy and free them;
 * snapshots are taken while they run. */
typedef struct Chain {
    BlockBackend *blk;
    Model *m;
    uint64_t base, len, cs;
    GRand *r;
    int *done;
} Chain;

static int coroutine_fn chain_write(Chain *c, uint64_t off, uint64_t len,
                                    const uint8_t *buf,
                                    BdrvRequestFlags flags)
{
    IOVector q;
    iovec_init_buf(&q, (void *)buf, len);
    memcpy(c->m->data + off, buf, len);
    return blk_co_pwritev(c->blk, off, len, &q, flags);
}

static void coroutine_fn chain_data(Chain *c, uint64_t off, uint64_t len)
{
    uint8_t *b = g_malloc(len);
    pattern_fill(b, len, g_rand_int(c->r), off);
    g_assert_cmpint(chain_write(c, off, len, b, 0), ==, 0);
    g_free(b);
}

/* A compressed write or a discard of one whole cluster of the range. */
static void coroutine_fn chain_cluster_op(Chain *c)
{
    uint64_t first = ROUND_UP(c->base, c->cs);
    uint64_t end = ROUND_DOWN(c->base + c->len, c->cs);
    if (end <= first) {
        return;
    }
    uint64_t a = first + c->cs * g_rand_int_range(c->r, 0,
                                                  (end - first) / c->cs);
    if (g_rand_boolean(c->r)) {
        g_assert_cmpint(blk_co_pdiscard(c->blk, a, c->cs), ==, 0);
        memset(c->m->data + a, 0, c->cs);
        return;
    }
    uint8_t *b = g_malloc(c->cs);
    compressible_fill(b, c->cs, g_rand_int(c->r), a);
    g_assert_cmpint(chain_write(c, a, c->cs, b, BDRV_REQ_WRITE_COMPRESSED),
                    ==, 0);
    g_free(b);
}

static void coroutine_fn chain_read(Chain *c, uint64_t off, uint64_t len)
{
    uint8_t *b = g_malloc(len);
    IOVector q;
    iovec_init_buf(&q, b, len);
    g_assert_cmpint(blk_co_preadv(c->blk, off, len, &q, 0), ==, 0);
    assert_same_bytes(b, c->m->data + off, len, off, "chain read");
    g_free(b);
}

static void coroutine_fn chain_step(Chain *c)
{
    int k = g_rand_int_range(c->r, 0, 100);
    uint64_t len = 1 + g_rand_int_range(c->r, 0, c->len);
    uint64_t off = c->base + g_rand_int_range(c->r, 0, c->len - len + 1);
    if (k < 55) {
        chain_data(c, off, len);
    } else if (k < 70) {
        g_assert_cmpint(blk_co_pwrite_zeroes(c->blk, off, len,
                                             BDRV_REQ_MAY_UNMAP), ==, 0);
        memset(c->m->data + off, 0, len);
    } else if (k < 80) {
        chain_cluster_op(c);
    } else if (k < 85) {
        g_assert_cmpint(blk_co_flush(c->blk), ==, 0);
    } else {
        chain_read(c, off, len);
    }
}

static void coroutine_fn chain_entry(void *opaque)
{
    Chain *c = opaque;
    for (int i = 0; i < 40; i++) {
        chain_step(c);
    }
    (*c->done)++;
}

static void run_chains(BlockBackend *blk, Model *m, uint64_t cs, GRand *r,
                       int round)
{
    enum { N = 32 };
    Chain c[N];
    int done = 0;
    uint64_t stride = m->size / N;
    for (int i = 0; i < N; i++) {
        uint64_t skew = g_rand_int_range(r, 0, 700);
        c[i] = (Chain){ blk, m, i * stride + skew, stride - 1400, cs,
                        g_rand_new_with_seed(round * 100 + i), &done };
        co_enter(co_create(chain_entry, &c[i]));
    }
    if (round % 2) {
        g_autofree char *name = g_strdup_printf("round%d", round);
        snapshot_create_ok(blk, name);
    }
    poll_until_count(&done, N);
    for (int i = 0; i < N; i++) {
        g_rand_free(c[i].r);
    }
}

static void test_concurrent_chains(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("chains.qcow2");
    uint64_t cs = 4096;
    img_create(path, 16 * MiB, "cluster_size=4096");
    BlockBackend *blk = img_open_opts(path, "cache.no-flush=on", NULL);
    Model *m = model_new(16 * MiB);
    GRand *r = g_rand_new_with_seed(1);
    for (int round = 0; round < 4; round++) {
        run_chains(blk, m, cs, r, round);
        verify_model(blk, m);
        check_blk(blk, false);
    }
    finish_image(blk, path, m);
    g_rand_free(r);
    model_free(m);
}

/* ---- random operations against the model ---- */

#define RR_SNAPSHOTS 8

typedef struct RandomRun {
    char *path;
    BlockBackend *blk;
    Model *m;
    GRand *r;
    uint64_t cs;
    Model *snap[RR_SNAPSHOTS];
    char name[RR_SNAPSHOTS][16];
    int nsn, next_id;
} RandomRun;

static uint64_t rr_len(RandomRun *rr, uint64_t max)
{
    return 1 + g_rand_int_range(rr->r, 0, max);
}

static uint64_t rr_off(RandomRun *rr, uint64_t len)
{
    return g_rand_int_range(rr->r, 0, rr->m->size - len);
}

static void rr_write(RandomRun *rr)
{
    uint64_t len = rr_len(rr, MIN(3 * rr->cs, 200000));
    uint64_t off = rr_off(rr, len);
    write_pattern(rr->blk, rr->m, off, len, g_rand_int(rr->r));
}

static void rr_compressed(RandomRun *rr)
{
    uint64_t n = rr_len(rr, 4);
    uint64_t off = rr->cs * g_rand_int_range(rr->r, 0,
                                             rr->m->size / rr->cs - n);
    uint8_t *buf = g_malloc(n * rr->cs);
    compressible_fill(buf, n * rr->cs, g_rand_int(rr->r), off);
    write_both(rr->blk, rr->m, off, n * rr->cs, buf,
               BDRV_REQ_WRITE_COMPRESSED);
    g_free(buf);
}

static void rr_zero(RandomRun *rr)
{
    uint64_t len = rr_len(rr, 4 * rr->cs);
    uint64_t off = rr_off(rr, len);
    zero_both(rr->blk, rr->m, off, len,
              g_rand_boolean(rr->r) ? BDRV_REQ_MAY_UNMAP : 0);
}

/* Discard drops whole clusters only (and the partial one at the end). */
static void rr_discard(RandomRun *rr)
{
    uint64_t len = rr_len(rr, 4 * rr->cs);
    uint64_t off = rr_off(rr, len);
    g_assert_cmpint(blk_pdiscard(rr->blk, off, len), ==, 0);
    uint64_t start = ROUND_UP(off, rr->cs);
    uint64_t end = off + len == rr->m->size ? rr->m->size
                                            : ROUND_DOWN(off + len, rr->cs);
    if (end > start) {
        memset(rr->m->data + start, 0, end - start);
    }
}

static void rr_snapshot_create(RandomRun *rr)
{
    GError *err = NULL;
    int i = rr->nsn;
    snprintf(rr->name[i], sizeof(rr->name[i]), "sn%d", rr->next_id++);
    g_assert_cmpint(snapshot_create(rr->blk, rr->name[i], &err), ==, 0);
    g_assert_no_error(err);
    rr->snap[i] = model_copy(rr->m);
    rr->nsn++;
}

static void rr_snapshot_apply(RandomRun *rr)
{
    int i = g_rand_int_range(rr->r, 0, rr->nsn);
    snapshot_apply_ok(rr->blk, rr->name[i]);
    model_free(rr->m);
    rr->m = model_copy(rr->snap[i]);
}

static void rr_snapshot_delete(RandomRun *rr)
{
    int i = g_rand_int_range(rr->r, 0, rr->nsn);
    snapshot_delete_ok(rr->blk, rr->name[i]);
    model_free(rr->snap[i]);
    rr->nsn--;
    rr->snap[i] = rr->snap[rr->nsn];
    memcpy(rr->name[i], rr->name[rr->nsn], sizeof(rr->name[i]));
}

static void rr_reopen(RandomRun *rr)
{
    check_blk(rr->blk, false);
    blk_unref(rr->blk);
    qemu_check(rr->path, false);
    rr->blk = img_open_opts(rr->path, "cache.no-flush=on", NULL);
    verify_model(rr->blk, rr->m);
}

static void rr_grow(RandomRun *rr)
{
    GError *err = NULL;
    uint64_t size = rr->m->size + rr->cs * rr_len(rr, 64);
    size = ROUND_UP(size, 512);
    g_assert_cmpint(blk_truncate(rr->blk, size, false, PREALLOC_MODE_OFF,
                                 &err), ==, 0);
    g_assert_no_error(err);
    model_resize(rr->m, size);
}

static void rr_read(RandomRun *rr)
{
    uint64_t len = rr_len(rr, 100000);
    verify_range(rr->blk, rr->m, rr_off(rr, len), len);
}

static void random_step(RandomRun *rr)
{
    int k = g_rand_int_range(rr->r, 0, 100);
    if (k < 40) {
        rr_write(rr);
    } else if (k < 50) {
        rr_compressed(rr);
    } else if (k < 58) {
        rr_zero(rr);
    } else if (k < 66) {
        rr_discard(rr);
    } else if (k < 72) {
        g_assert_cmpint(blk_flush(rr->blk), ==, 0);
    } else if (k < 77 && rr->nsn < RR_SNAPSHOTS) {
        rr_snapshot_create(rr);
    } else if (k < 81 && rr->nsn) {
        rr_snapshot_apply(rr);
    } else if (k < 85 && rr->nsn) {
        rr_snapshot_delete(rr);
    } else if (k < 88) {
        rr_reopen(rr);
    } else if (k < 90 && rr->m->size < 24 * MiB) {
        rr_grow(rr);
    } else {
        rr_read(rr);
    }
}

typedef struct {
    uint32_t seed;
    uint64_t cs;
    int steps;
} RandomCase;

/* Writes, compressed writes, zeroes, discards, flushes, snapshots,
 * reopen and growth in a seeded random order; the image must match the
 * model throughout and pass both checkers at every reopen.  (Seed 3 with
 * 4 KiB clusters packed a compressed chunk into a cluster a snapshot
 * apply had freed and reused.) */
static void test_random_ops(Fixture *f, gconstpointer data)
{
    const RandomCase *c = data;
    g_autofree char *opts = g_strdup_printf("cluster_size=%" G_GUINT64_FORMAT,
                                            c->cs);
    RandomRun rr = { .path = test_path("random.qcow2"), .cs = c->cs,
                     .m = model_new(8 * MiB),
                     .r = g_rand_new_with_seed(c->seed) };
    img_create(rr.path, 8 * MiB, opts);
    rr.blk = img_open_opts(rr.path, "cache.no-flush=on", NULL);
    for (int i = 0; i < c->steps; i++) {
        random_step(&rr);
    }
    verify_model(rr.blk, rr.m);
    finish_image(rr.blk, rr.path, rr.m);
    for (int i = 0; i < rr.nsn; i++) {
        model_free(rr.snap[i]);
    }
    model_free(rr.m);
    g_rand_free(rr.r);
    g_free(rr.path);
}

static const RandomCase random_cases[] = {
    { 3, 4096, 600 }, { 1, 512, 400 }, { 2, 65536, 400 },
    { 5, 2 * MiB, 60 },
};

static void add(const char *name, void (*fn)(Fixture *, gconstpointer),
                gconstpointer data)
{
    g_test_add(name, Fixture, data, fixture_setup, fn, fixture_teardown);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    add("/qcow2/l2-allocation", test_l2_allocation, NULL);
    add("/qcow2/cow/fresh", test_cow_fresh_clusters, NULL);
    add("/qcow2/cow/snapshot", test_cow_from_snapshot, NULL);
    add("/qcow2/cow/backing", test_cow_from_backing, NULL);
    add("/qcow2/discard-reuse", test_discard_reuse, NULL);
    add("/qcow2/zero/plain", test_zero_clusters, NULL);
    add("/qcow2/zero/over-backing", test_zero_over_backing, NULL);
    add("/qcow2/backing-chain", test_backing_chain, NULL);
    add("/qcow2/cluster-sizes", test_cluster_sizes, NULL);
    add("/qcow2/refcount/widths", test_refcount_widths, NULL);
    add("/qcow2/refcount/table-growth", test_refcount_table_growth_writes,
        NULL);
    add("/qcow2/refcount/range-sized-writes",
        test_refcount_range_sized_writes, NULL);
    add("/qcow2/refcount/table-growth-1bit", test_refcount_table_growth_1bit,
        NULL);
    add("/qcow2/refcount/table-growth-in-snapshots",
        test_refcount_table_growth_in_snapshots, NULL);
    add("/qcow2/compressed/zlib", test_compressed_zlib, NULL);
    add("/qcow2/compressed/zstd", test_compressed_zstd, NULL);
    add("/qcow2/compressed/discard", test_compressed_discard_all, NULL);
    add("/qcow2/v2", test_v2_image, NULL);
    add("/qcow2/snapshot/basic", test_snapshot_basic, NULL);
    add("/qcow2/snapshot/ids", test_snapshot_ids, NULL);
    add("/qcow2/snapshot/many", test_snapshot_many, NULL);
    add("/qcow2/snapshot/resize", test_snapshot_and_resize, NULL);
    add("/qcow2/resize/grow-shrink", test_resize, NULL);
    add("/qcow2/resize/prealloc", test_resize_prealloc, NULL);
    add("/qcow2/aio/overlap-64k", test_qd_overlapping, "cluster_size=65536");
    add("/qcow2/aio/overlap-4k", test_qd_overlapping, "cluster_size=4096");
    add("/qcow2/aio/overlap-512", test_qd_overlapping, "cluster_size=512");
    add("/qcow2/aio/disjoint-mixed", test_qd_disjoint_mixed, NULL);
    add("/qcow2/aio/concurrent-chains", test_concurrent_chains, NULL);
    add("/qcow2/drain/sections", test_drain, NULL);
    add("/qcow2/drain/coroutine", test_drain_in_coroutine, NULL);
    add("/qcow2/snapshot/while-writing", test_snapshot_while_writing, NULL);
    add("/qcow2/snapshot/pause-model", test_snapshot_pause_model, NULL);
    add("/qcow2/snapshot/pause-mixed", test_snapshot_pause_mixed, NULL);
    add("/qcow2/snapshot/resize-while-pending", test_resize_during_snapshot,
        NULL);
    add("/qcow2/snapshot/apply-while-writing", test_apply_while_writing,
        NULL);
    for (guint i = 0; i < G_N_ELEMENTS(random_cases); i++) {
        const RandomCase *c = &random_cases[i];
        g_autofree char *name = g_strdup_printf("/qcow2/random/%u-%"
                                                G_GUINT64_FORMAT, c->seed,
                                                c->cs);
        add(name, test_random_ops, c);
    }
    return g_test_run();
}
