/*
 * test-vmstate.c - the VM state area (block/vmstate.h, block/qcow2-vmstate.c)
 * on real qcow2 files, checked against the real QEMU tools:
 *
 *   - a VM state written before a snapshot is captured by it: qemu-img
 *     lists VM SIZE / DATE / VM CLOCK / ICOUNT as recorded (and xblk-img
 *     prints the same bytes), the snapshot's VM state reads back without
 *     a revert and after one, the active layer gives it up, and the guest
 *     disk never changes (qemu-img compare against a copy);
 *   - interop both ways: a VM state saved by QEMU's savevm reads back with
 *     QEMU's stream header ("QEVM", version 3), and QEMU's loadvm accepts
 *     a VM state that xblk wrote into a snapshot of its own; the cluster
 *     holding an xblk VM state lies where qemu-io says the area begins;
 *   - delete frees the VM state (allocation back to before, no leaks),
 *     a deleted tag's VM state cannot be read, a delete waits for a read
 *     in progress;
 *   - copy-on-write against a snapshot that shares the area, resizes that
 *     move the area, discard, the transaction action, raw/file refusal and
 *     the blkdebug filter passing through;
 *   - damaged snapshot entries (vm_state_size or disk_size past the area)
 *     are refused with an error, not a crash;
 *   - 128 MiB+ states, and 64 MiB written at the speed of a plain file.
 *
 * Every scenario ends with bdrv_check and `qemu-img check` (no corruption,
 * no leaks).  The QEMU system emulator part is skipped when
 * qemu-system-x86_64 is not installed.
 */
#include "image-test.h"
#include "block/transaction.h"
#include "block/txn-snapshot.h"
#include "block/vmstate.h"
#include "util/cutils.h"
#include <fcntl.h>
#include <unistd.h>

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define RAW_OFFSET_MASK 0x00fffffffffffe00ULL   /* L1/L2 entry offsets */

typedef struct {
    int unused;
} Fixture;

static char *xblk_img_bin;      /* build/xblk-img next to this test */

static void fixture_setup(Fixture *f, gconstpointer data)
{
    test_dir_setup();
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    test_dir_cleanup();
}

/* ---- helpers ---- */

static void vm_save(BlockBackend *blk, const uint8_t *buf, int64_t pos,
                    int64_t len)
{
    GError *err = NULL;
    int ret = bdrv_save_vmstate(blk_bs(blk), buf, pos, len, &err);
    g_assert_no_error(err);
    g_assert_cmpint(ret, ==, 0);
}

static void vm_save_pattern(BlockBackend *blk, uint32_t seed, int64_t pos,
                            int64_t len)
{
    uint8_t *buf = g_malloc(len);
    pattern_fill(buf, len, seed, pos);
    vm_save(blk, buf, pos, len);
    g_free(buf);
}

static void assert_vm_pattern(BlockBackend *blk, const char *name,
                              uint32_t seed, int64_t pos, int64_t len)
{
    uint8_t *got = vm_load(blk, name, pos, len);
    uint8_t *want = g_malloc(MAX(len, 1));
    pattern_fill(want, len, seed, pos);
    assert_same_bytes(got, want, len, pos, name ? name : "active VM state");
    g_free(got);
    g_free(want);
}

static void assert_vm_zero(BlockBackend *blk, const char *name, int64_t pos,
                           int64_t len)
{
    uint8_t *got = vm_load(blk, name, pos, len);
    uint8_t *want = g_malloc0(MAX(len, 1));
    assert_same_bytes(got, want, len, pos, "VM state (zeroes)");
    g_free(got);
    g_free(want);
}

/* Expects a snapshot VM state read to fail with errno err. */
static char *vm_load_fails(BlockBackend *blk, const char *name, int64_t pos,
                           int64_t len, int err)
{
    GError *e = NULL;
    uint8_t *buf = g_malloc(MAX(len, 1));
    int ret = name ? bdrv_snapshot_load_vmstate(blk_bs(blk), name, buf, pos,
                                                len, &e)
                   : bdrv_load_vmstate(blk_bs(blk), buf, pos, len, &e);
    g_free(buf);
    g_assert_cmpint(ret, ==, -err);
    g_assert_nonnull(e);
    g_assert_cmpstr(e->message, !=, "");
    char *msg = g_strdup(e->message);
    g_error_free(e);
    return msg;
}

static void snapshot_create_vm(BlockBackend *blk, const char *name,
                               uint64_t vm_size, uint32_t date_sec,
                               uint32_t date_nsec, uint64_t clock,
                               uint64_t icount)
{
    BdrvSnapshotInfo sn = {
        .name = (char *)name, .vm_state_size = vm_size,
        .date_sec = date_sec, .date_nsec = date_nsec,
        .vm_clock_nsec = clock, .icount = icount,
    };
    GError *err = NULL;
    int ret = bdrv_snapshot_create(blk_bs(blk), &sn, &err);
    g_assert_no_error(err);
    g_assert_cmpint(ret, ==, 0);
}

static char *run_ok(char **argv)
{
    char *out = NULL, *err = NULL;
    int status = run_tool(argv, &out, &err);
    if (status != 0) {
        g_error("%s %s: status %d\n%s%s", argv[0], argv[1], status, out, err);
    }
    g_free(err);
    return out;
}

/* qemu-img info --output=json (caller decrefs). */
static json_t *qemu_info(const char *path)
{
    char *argv[] = { "qemu-img", "info", "--output=json", "-U", (char *)path,
                     NULL };
    g_autofree char *out = run_ok(argv);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    g_assert_nonnull(j);
    return j;
}

/* qemu-img's record of snapshot `name` (borrowed from *info). */
static json_t *qemu_snapshot(json_t *info, const char *name)
{
    json_t *arr = json_object_get(info, "snapshots");
    size_t i;
    json_t *sn;
    json_array_foreach(arr, i, sn) {
        if (!strcmp(json_string_value(json_object_get(sn, "name")), name)) {
            return sn;
        }
    }
    return NULL;
}

static int64_t jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    g_assert_nonnull(v);
    return json_integer_value(v);
}

/* qemu-img and xblk-img print the same snapshot table, byte for byte,
 * in `snapshot -l` and in `info`. */
static void compare_listings(const char *path)
{
    if (!g_file_test(xblk_img_bin, G_FILE_TEST_IS_EXECUTABLE)) {
        g_test_message("no %s: listing comparison skipped", xblk_img_bin);
        return;
    }
    char *q1[] = { "qemu-img", "snapshot", "-l", (char *)path, NULL };
    char *x1[] = { xblk_img_bin, "snapshot", "-l", (char *)path, NULL };
    g_autofree char *qo = run_ok(q1), *xo = run_ok(x1);
    g_assert_cmpstr(xo, ==, qo);
    char *q2[] = { "qemu-img", "info", (char *)path, NULL };
    char *x2[] = { xblk_img_bin, "info", (char *)path, NULL };
    g_autofree char *qi = run_ok(q2), *xi = run_ok(x2);
    const char *qs = strstr(qi, "Snapshot list:\n");
    const char *xs = strstr(xi, "Snapshot list:\n");
    g_assert_nonnull(qs);
    g_assert_nonnull(xs);
    const char *qe = strstr(qs, "Format specific information:");
    const char *xe = strstr(xs, "Format specific information:");
    g_assert_nonnull(qe);
    g_assert_nonnull(xe);
    g_autofree char *qsec = g_strndup(qs, qe - qs);
    g_autofree char *xsec = g_strndup(xs, xe - xs);
    g_assert_cmpstr(xsec, ==, qsec);
}

static void copy_file(const char *from, const char *to)
{
    g_autofree char *data = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(from, &data, &len, NULL));
    g_assert_true(g_file_set_contents(to, data, len, NULL));
}

/* `qemu-img compare`: the guest sees the same disk in both images. */
static void qemu_same_guest_disk(const char *a, const char *b)
{
    char *argv[] = { "qemu-img", "compare", "-f", "qcow2", "-F", "qcow2",
                     (char *)a, (char *)b, NULL };
    g_autofree char *out = run_ok(argv);
    g_assert_nonnull(strstr(out, "Images are identical"));
}

/* ---- reading the file the way QEMU lays it out ---- */

typedef struct RawSnap {
    uint64_t entry;             /* file offset of the table entry */
    uint64_t l1_off;
    uint32_t l1_size;
    uint64_t vm_state_size, disk_size;
} RawSnap;

static uint64_t be_at(const uint8_t *d, uint64_t off, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = v << 8 | d[off + i];
    }
    return v;
}

/* Finds snapshot `name` in the raw file. */
static bool raw_find_snapshot(const uint8_t *d, gsize len, const char *name,
                              RawSnap *out)
{
    uint32_t n = be_at(d, 60, 4);
    uint64_t p = be_at(d, 64, 8);
    for (uint32_t i = 0; i < n; i++) {
        g_assert_cmpuint(p + 40, <=, len);
        uint16_t id_len = be_at(d, p + 12, 2), name_len = be_at(d, p + 14, 2);
        uint32_t extra = be_at(d, p + 36, 4);
        const char *nm = (const char *)d + p + 40 + extra + id_len;
        if (name_len == strlen(name) && !memcmp(nm, name, name_len)) {
            out->entry = p;
            out->l1_off = be_at(d, p, 8);
            out->l1_size = be_at(d, p + 8, 4);
            out->vm_state_size = extra >= 8 ? be_at(d, p + 40, 8)
                                            : be_at(d, p + 32, 4);
            out->disk_size = extra >= 16 ? be_at(d, p + 48, 8)
                                         : be_at(d, 24, 8);
            return true;
        }
        p += ROUND_UP(40 + extra + id_len + name_len, 8);
    }
    return false;
}

/* The host offset of guest offset `off` through a snapshot's L1 table. */
static uint64_t raw_map(const uint8_t *d, const RawSnap *sn, uint64_t off)
{
    uint32_t cb = be_at(d, 20, 4);
    uint64_t l2_entries = (1ULL << cb) / 8;
    uint64_t l1i = off >> cb >> (cb - 3);
    g_assert_cmpuint(l1i, <, sn->l1_size);
    uint64_t l2 = be_at(d, sn->l1_off + l1i * 8, 8) & RAW_OFFSET_MASK;
    g_assert_cmpuint(l2, !=, 0);
    uint64_t e = be_at(d, l2 + ((off >> cb) % l2_entries) * 8, 8);
    g_assert_cmpuint(e & RAW_OFFSET_MASK, !=, 0);
    return (e & RAW_OFFSET_MASK) + (off & ((1ULL << cb) - 1));
}

/* Clusters with a nonzero refcount: what the image holds on to. */
static int64_t refcounted_clusters(const char *path)
{
    g_autofree char *raw = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &raw, &len, NULL));
    const uint8_t *d = (const uint8_t *)raw;
    uint32_t cb = be_at(d, 20, 4);
    uint64_t cs = 1ULL << cb;
    uint32_t order = be_at(d, 4, 4) >= 3 ? be_at(d, 96, 4) : 4;
    uint64_t rt = be_at(d, 48, 8), rt_clusters = be_at(d, 56, 4);
    uint64_t bits = 1ULL << order;
    int64_t n = 0;
    for (uint64_t i = 0; i < rt_clusters * cs / 8; i++) {
        uint64_t blk = be_at(d, rt + i * 8, 8) & ~511ULL;
        if (!blk) {
            continue;
        }
        g_assert_cmpuint(blk + cs, <=, len);
        for (uint64_t j = 0; j < cs * 8 / bits; j++) {
            uint64_t bit = j * bits;
            uint64_t v;
            if (bits >= 8) {
                v = be_at(d, blk + bit / 8, bits / 8);
            } else {
                v = (d[blk + bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
            }
            n += v != 0;
        }
    }
    return n;
}

/* qemu-io's "vm state offset" line: where QEMU says the area begins. */
static char *qemu_io_vm_state_offset(const char *path)
{
    char *argv[] = { "qemu-io", "-r", "-c", "info", (char *)path, NULL };
    g_autofree char *out = run_ok(argv);
    const char *p = strstr(out, "vm state offset: ");
    g_assert_nonnull(p);
    p += strlen("vm state offset: ");
    return g_strndup(p, strcspn(p, "\n"));
}

/* ---- the basic cycle ---- */

static void test_basic(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("basic.qcow2");
    g_autofree char *before = test_path("before.qcow2");
    const uint64_t size = 100 * MiB;
    const uint64_t vm_len = 3 * MiB + 123;
    img_create(path, size, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(size);
    write_pattern(blk, m, 0, 1 * MiB, 1);
    write_pattern(blk, m, size - 300 * KiB, 300 * KiB, 2);
    blk_unref(blk);
    copy_file(path, before);
    int64_t alloc_before = refcounted_clusters(path);
    blk = img_open(path);

    /* Never written: zeroes, even far out. */
    assert_vm_zero(blk, NULL, 0, 128 * KiB);
    assert_vm_zero(blk, NULL, 40 * MiB + 7, 1000);
    /* Written in unaligned pieces, then read back across them. */
    vm_save_pattern(blk, 7, 0, 100000);
    vm_save_pattern(blk, 7, 100000, 1 * MiB + 3);
    vm_save_pattern(blk, 7, 100000 + 1 * MiB + 3,
                    vm_len - 100000 - 1 * MiB - 3);
    assert_vm_pattern(blk, NULL, 7, 0, vm_len);
    assert_vm_pattern(blk, NULL, 7, 65535, 70000);
    assert_vm_zero(blk, NULL, vm_len, 64 * KiB);
    verify_model(blk, m);
    check_blk(blk, false);
    blk_unref(blk);
    /* Nothing the guest sees changed. */
    qemu_same_guest_disk(before, path);
    qemu_check(path, false);
    qemu_compare(path, NULL, m);
    blk = img_open(path);

    const uint32_t date = 1700000000, date_ns = 123456789;
    const uint64_t clock = 3723456789012ULL;    /* 01:02:03.456 */
    snapshot_create_vm(blk, "s1", vm_len, date, date_ns, clock, 987654321);
    /* The active layer gave its VM state to the snapshot. */
    assert_vm_zero(blk, NULL, 0, vm_len);
    assert_vm_pattern(blk, "s1", 7, 0, vm_len);
    assert_vm_pattern(blk, "1", 7, vm_len - 5000, 5000);   /* by ID */
    g_autofree char *m1 = vm_load_fails(blk, "s1", vm_len - 10, 11, EINVAL);
    g_assert_nonnull(strstr(m1, "s1"));
    g_autofree char *m2 = vm_load_fails(blk, "nosuch", 0, 1, ENOENT);
    Model *snap = model_copy(m);
    write_pattern(blk, m, 512 * KiB, 1 * MiB, 3);
    /* A new VM state in the active layer does not touch the snapshot's. */
    vm_save_pattern(blk, 8, 4096, 64 * KiB);
    assert_vm_pattern(blk, "s1", 7, 0, vm_len);
    g_assert_cmpint(bdrv_discard_vmstate(blk_bs(blk), NULL), ==, 0);
    assert_vm_zero(blk, NULL, 0, 128 * KiB);
    verify_model(blk, m);
    check_blk(blk, false);
    blk_unref(blk);

    qemu_check(path, false);
    qemu_compare(path, NULL, m);
    qemu_compare(path, "s1", snap);
    json_t *info = qemu_info(path);
    json_t *sn = qemu_snapshot(info, "s1");
    g_assert_nonnull(sn);
    g_assert_cmpint(jint(sn, "vm-state-size"), ==, vm_len);
    g_assert_cmpint(jint(sn, "date-sec"), ==, date);
    g_assert_cmpint(jint(sn, "date-nsec"), ==, date_ns);
    g_assert_cmpint(jint(sn, "vm-clock-sec"), ==, clock / 1000000000);
    g_assert_cmpint(jint(sn, "vm-clock-nsec"), ==, clock % 1000000000);
    g_assert_cmpint(jint(sn, "icount"), ==, 987654321);
    json_decref(info);
    /* The human listing as qemu-img prints it, and xblk-img the same. */
    char *argv[] = { "qemu-img", "snapshot", "-l", path, NULL };
    g_autofree char *list = run_ok(argv);
    g_autofree char *vm = size_to_str(vm_len);
    g_assert_cmpstr(vm, ==, "3 MiB");
    g_assert_nonnull(strstr(list, "s1"));
    g_assert_nonnull(strstr(list, " 3 MiB "));
    g_assert_nonnull(strstr(list, " 01:02:03.456 "));
    g_assert_nonnull(strstr(list, " 987654321\n"));
    compare_listings(path);

    /* After a revert the active layer maps the VM state again. */
    blk = img_open(path);
    snapshot_apply_ok(blk, "s1");
    verify_model(blk, snap);
    assert_vm_pattern(blk, NULL, 7, 0, vm_len);
    assert_vm_pattern(blk, "s1", 7, 0, vm_len);
    blk = close_check_reopen(blk, path, false);
    assert_vm_pattern(blk, NULL, 7, 0, vm_len);
    g_assert_cmpint(bdrv_discard_vmstate(blk_bs(blk), NULL), ==, 0);
    assert_vm_zero(blk, NULL, 0, vm_len);
    assert_vm_pattern(blk, "s1", 7, 0, vm_len);
    blk = close_check_reopen(blk, path, false);

    /* Delete: gone for good, and its clusters with it. */
    snapshot_delete_ok(blk, "s1");
    g_autofree char *m3 = vm_load_fails(blk, "s1", 0, 1, ENOENT);
    g_autofree char *m4 = vm_load_fails(blk, "1", 0, 1, ENOENT);
    verify_model(blk, snap);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    g_assert_cmpint(refcounted_clusters(path), <=, alloc_before + 1);
    model_free(m);
    model_free(snap);
}

/* ---- several snapshots, copy-on-write, listings ---- */

static void test_cow_and_listing(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("cow.qcow2");
    const uint64_t size = 1 * GiB + 300 * MiB;   /* area at 1.5 GiB */
    img_create(path, size, "cluster_size=65536");
    BlockBackend *blk = img_open(path);
    Model *m = model_new(size);
    write_pattern(blk, m, 1 * GiB, 2 * MiB, 1);

    /* A snapshot without VM state shares the area, as in QEMU: writing
     * the VM state afterwards copies on write. */
    vm_save_pattern(blk, 10, 0, 2 * MiB);
    snapshot_create_vm(blk, "plain", 0, 0, 0, 0, BDRV_SNAPSHOT_NO_ICOUNT);
    assert_vm_pattern(blk, NULL, 10, 0, 2 * MiB);
    g_free(vm_load_fails(blk, "plain", 0, 1, EINVAL));
    vm_save_pattern(blk, 11, 1 * MiB - 100, 200);      /* partial clusters */
    vm_save_pattern(blk, 12, 3 * MiB, 1 * MiB);
    uint8_t *want = g_malloc(4 * MiB);
    pattern_fill(want, 2 * MiB, 10, 0);
    pattern_fill(want + 1 * MiB - 100, 200, 11, 1 * MiB - 100);
    memset(want + 2 * MiB, 0, 1 * MiB);
    pattern_fill(want + 3 * MiB, 1 * MiB, 12, 3 * MiB);
    uint8_t *got = vm_load(blk, NULL, 0, 4 * MiB);
    assert_same_bytes(got, want, 4 * MiB, 0, "VM state after COW");
    g_free(got);
    check_blk(blk, false);

    /* Two snapshots with VM states of their own. */
    snapshot_create_vm(blk, "a", 4 * MiB, 1600000000, 5, 1000000, 0);
    vm_save_pattern(blk, 13, 0, 5 * MiB + 1);
    snapshot_create_vm(blk, "b", 5 * MiB + 1, 1600000100, 999999999,
                       360000ULL * 1000000000 + 7000000, 1ULL << 40);
    got = vm_load(blk, "a", 0, 4 * MiB);
    assert_same_bytes(got, want, 4 * MiB, 0, "snapshot a");
    g_free(got);
    assert_vm_pattern(blk, "b", 13, 0, 5 * MiB + 1);
    /* A size recorded but never written maps as zeroes. */
    snapshot_create_vm(blk, "big", 3 * GiB + 5, 1, 0, 59999999999ULL,
                       BDRV_SNAPSHOT_NO_ICOUNT);
    assert_vm_zero(blk, "big", 3 * GiB - 100, 105);
    /* Reverting to the plain snapshot brings its shared area back. */
    snapshot_apply_ok(blk, "plain");
    assert_vm_pattern(blk, NULL, 10, 0, 2 * MiB);
    g_assert_cmpint(bdrv_discard_vmstate(blk_bs(blk), NULL), ==, 0);
    g_free(want);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    compare_listings(path);
    json_t *info = qemu_info(path);
    g_assert_cmpint(jint(qemu_snapshot(info, "b"), "vm-state-size"), ==,
                    5 * MiB + 1);
    g_assert_cmpint(jint(qemu_snapshot(info, "big"), "vm-state-size"), ==,
                    3 * GiB + 5);
    json_decref(info);

    /* Deleting in any order keeps the others intact. */
    blk = img_open(path);
    snapshot_delete_ok(blk, "a");
    assert_vm_pattern(blk, "b", 13, 0, 5 * MiB + 1);
    snapshot_delete_ok(blk, "big");
    snapshot_delete_ok(blk, "plain");
    assert_vm_pattern(blk, "b", 13, 0, 5 * MiB + 1);
    snapshot_delete_ok(blk, "b");
    verify_range(blk, m, 1 * GiB, 2 * MiB);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    model_free(m);
}

/* The area never reads through to a backing file, not even one larger
 * than the overlay whose data lies where the overlay's area begins. */
static void test_backing(Fixture *f, gconstpointer data)
{
    g_autofree char *base = test_path("base.qcow2");
    g_autofree char *top = test_path("top.qcow2");
    img_create(base, 1 * GiB, NULL);
    BlockBackend *blk = img_open(base);
    Model *bm = model_new(1 * GiB);
    write_pattern(blk, bm, 512 * MiB, 1 * MiB, 90);    /* top's area */
    blk_unref(blk);
    g_autofree char *opts = g_strdup_printf("backing_file=%s,"
                                            "backing_fmt=qcow2", base);
    img_create(top, 100 * MiB, opts);
    blk = img_open(top);
    assert_vm_zero(blk, NULL, 0, 1 * MiB);
    /* Partial clusters: the copy-on-write around them is zeroes too. */
    vm_save_pattern(blk, 91, 1000, 3000);
    vm_save_pattern(blk, 92, 70000, 100);
    uint8_t *want = g_malloc0(256 * KiB);
    pattern_fill(want + 1000, 3000, 91, 1000);
    pattern_fill(want + 70000, 100, 92, 70000);
    uint8_t *got = vm_load(blk, NULL, 0, 256 * KiB);
    assert_same_bytes(got, want, 256 * KiB, 0, "VM state over a backing");
    g_free(got);
    snapshot_create_vm(blk, "s", 256 * KiB, 0, 0, 0, 0);
    got = vm_load(blk, "s", 0, 256 * KiB);
    assert_same_bytes(got, want, 256 * KiB, 0, "snapshot over a backing");
    g_free(got);
    g_free(want);
    Model *m = model_new(100 * MiB);
    memcpy(m->data, bm->data, 100 * MiB);
    verify_model(blk, m);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(top, false);
    qemu_compare(top, NULL, m);
    model_free(m);
    model_free(bm);
}

/* ---- QEMU interop ---- */

static void test_interop_qemu(Fixture *f, gconstpointer data)
{
    g_autofree char *qsys = g_find_program_in_path("qemu-system-x86_64");
    if (!qsys) {
        g_test_skip("qemu-system-x86_64 not installed");
        return;
    }
    g_autofree char *path = test_path("qemu.qcow2");
    const uint64_t size = 100 * MiB;
    img_create(path, size, NULL);
    BlockBackend *blk = img_open(path);
    Model *m = model_new(size);
    write_pattern(blk, m, 0, 256 * KiB, 5);
    blk_unref(blk);

    /* QEMU saves: xblk reads its stream header through the snapshot. */
    const char *save[] = { "savevm qemu1", NULL };
    g_auto(GStrv) r1 = qemu_hmp(path, save);
    g_assert_cmpstr(r1[0], ==, "");
    qemu_check(path, false);
    blk = img_open(path);
    BdrvSnapshotInfo sn;
    g_assert_true(bdrv_snapshot_find(blk_bs(blk), "qemu1", &sn));
    uint64_t len = sn.vm_state_size;
    bdrv_snapshot_info_clear(&sn);
    g_assert_cmpuint(len, >, 4096);
    uint8_t *stream = vm_load(blk, "qemu1", 0, len);
    static const uint8_t magic[8] = { 'Q', 'E', 'V', 'M', 0, 0, 0, 3 };
    g_assert_cmpmem(stream, 8, magic, 8);
    g_free(vm_load_fails(blk, "qemu1", len, 1, EINVAL));

    /* xblk saves QEMU's stream as a snapshot of its own: QEMU loads it,
     * so it is where QEMU looks for it. */
    vm_save(blk, stream, 0, len);
    snapshot_create_vm(blk, "xblk1", len, 1700000000, 0, 0,
                       BDRV_SNAPSHOT_NO_ICOUNT);
    assert_vm_zero(blk, NULL, 0, len);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    compare_listings(path);
    json_t *info = qemu_info(path);
    g_assert_cmpint(jint(qemu_snapshot(info, "xblk1"), "vm-state-size"), ==,
                    len);
    json_decref(info);
    const char *load[] = { "loadvm xblk1", NULL };
    g_auto(GStrv) r2 = qemu_hmp(path, load);
    g_assert_cmpstr(r2[0], ==, "");
    qemu_check(path, false);

    /* A recognisable pattern lands where qemu-io says the area begins. */
    blk = img_open(path);
    vm_save_pattern(blk, 21, 0, 256 * KiB);
    snapshot_create_vm(blk, "pattern", 256 * KiB, 1, 0, 0, 0);
    /* xblk deletes QEMU's snapshot: its clusters go, nothing leaks. */
    GError *err = NULL;
    g_assert_cmpint(bdrv_snapshot_delete(blk_bs(blk), NULL, "qemu1", &err),
                    ==, 0);
    g_assert_no_error(err);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    g_autofree char *where = qemu_io_vm_state_offset(path);
    g_assert_cmpstr(where, ==, "512 MiB");
    g_autofree char *raw = NULL;
    gsize raw_len;
    g_assert_true(g_file_get_contents(path, &raw, &raw_len, NULL));
    RawSnap rs;
    g_assert_true(raw_find_snapshot((uint8_t *)raw, raw_len, "pattern", &rs));
    g_assert_cmpuint(rs.vm_state_size, ==, 256 * KiB);
    uint8_t want[4096];
    for (uint64_t off = 0; off < 256 * KiB; off += 64 * KiB) {
        uint64_t host = raw_map((uint8_t *)raw, &rs, 512 * MiB + off);
        g_assert_cmpuint(host + sizeof(want), <=, raw_len);
        pattern_fill(want, sizeof(want), 21, off);
        g_assert_cmpmem(raw + host, sizeof(want), want, sizeof(want));
    }
    /* QEMU refuses the pattern (not a stream: the check above is not
     * vacuous) and still loads its own state through what xblk left. */
    const char *load2[] = { "loadvm pattern", "loadvm xblk1", "delvm pattern",
                            NULL };
    g_auto(GStrv) r3 = qemu_hmp(path, load2);
    g_test_message("loadvm pattern: %s", r3[0]);
    g_assert_cmpstr(r3[0], !=, "");
    g_assert_cmpstr(r3[1], ==, "");
    g_assert_cmpstr(r3[2], ==, "");
    qemu_check(path, false);
    qemu_compare(path, NULL, m);
    g_free(stream);
    model_free(m);
}

/* ---- delete frees, readers and deleters ---- */

typedef struct {
    BlockBackend *blk;
    uint8_t *buf;
    int64_t len;
    int ret;
    bool done;
} ReadCo;

static void coroutine_fn read_entry(void *opaque)
{
    ReadCo *r = opaque;
    IOVector q;
    iovec_init_buf(&q, r->buf, r->len);
    r->ret = bdrv_co_snapshot_readv_vmstate(blk_bs(r->blk), "s", &q, 0,
                                            NULL);
    r->done = true;
}

static void test_delete_frees(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("delete.qcow2");
    img_create(path, 64 * MiB, "cluster_size=4096");
    BlockBackend *blk = img_open(path);
    Model *m = model_new(64 * MiB);
    write_pattern(blk, m, 0, 4 * MiB, 1);
    blk_unref(blk);
    int64_t alloc0 = refcounted_clusters(path);
    int64_t file0 = file_size(path);

    for (int round = 0; round < 3; round++) {
        blk = img_open(path);
        vm_save_pattern(blk, 30 + round, 0, 12 * MiB + round);
        snapshot_create_vm(blk, "s", 12 * MiB + round, 2, 0, 0, 0);
        blk_unref(blk);
        qemu_check(path, false);
        g_assert_cmpint(refcounted_clusters(path), >=,
                        alloc0 + (12 * MiB) / 4096);
        /* The delete waits for a read of the VM state in progress (with
         * O_DIRECT the read cannot complete from the page cache at once). */
        blk = img_open_opts(path, "cache.direct=on", NULL);
        ReadCo r = { blk, g_malloc(12 * MiB + round), 12 * MiB + round };
        co_enter(co_create(read_entry, &r));
        g_assert_false(r.done);
        snapshot_delete_ok(blk, "s");
        g_assert_true(r.done);
        g_assert_cmpint(r.ret, ==, 0);
        uint8_t *want = g_malloc(r.len);
        pattern_fill(want, r.len, 30 + round, 0);
        assert_same_bytes(r.buf, want, r.len, 0, "read during delete");
        g_free(want);
        g_free(r.buf);
        g_free(vm_load_fails(blk, "s", 0, 1, ENOENT));
        verify_model(blk, m);
        check_blk(blk, false);
        blk_unref(blk);
        qemu_check(path, false);
        /* Back to what it was (new metadata copies may cost a cluster or
         * two; the VM state does not stay). */
        g_assert_cmpint(refcounted_clusters(path), <=, alloc0 + 4);
    }
    /* Freed clusters are reused: the file does not keep growing. */
    g_assert_cmpuint(file_size(path), <=, file0 + 16 * MiB);
    model_free(m);
}

/* ---- damaged entries ---- */

static void patch_be(const char *path, uint64_t off, uint64_t v, int n)
{
    uint8_t b[8];
    for (int i = 0; i < n; i++) {
        b[i] = v >> (8 * (n - 1 - i));
    }
    int fd = open(path, O_WRONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, b, n, off), ==, n);
    close(fd);
}

static RawSnap raw_snapshot(const char *path, const char *name)
{
    g_autofree char *raw = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &raw, &len, NULL));
    RawSnap rs;
    g_assert_true(raw_find_snapshot((uint8_t *)raw, len, name, &rs));
    return rs;
}

static void test_damaged(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("damaged.qcow2");
    g_autofree char *good = test_path("good.qcow2");
    img_create(path, 16 * MiB, "cluster_size=4096");
    BlockBackend *blk = img_open(path);
    vm_save_pattern(blk, 40, 0, 1 * MiB);
    snapshot_create_vm(blk, "s", 1 * MiB, 3, 0, 0, 0);
    /* Out-of-range requests on the active area. */
    GError *err = NULL;
    uint8_t b[16];
    g_assert_cmpint(bdrv_save_vmstate(blk_bs(blk), b, INT64_MAX - 4, 16,
                                      &err), ==, -EFBIG);
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert_cmpint(bdrv_save_vmstate(blk_bs(blk), b, -1, 16, &err), ==,
                    -EFBIG);
    g_clear_error(&err);
    g_assert_cmpint(bdrv_load_vmstate(blk_bs(blk), b, 1ULL << 60, 16, &err),
                    ==, -EFBIG);
    g_clear_error(&err);
    g_free(vm_load_fails(blk, "s", -5, 1, EINVAL));
    g_free(vm_load_fails(blk, "s", INT64_MAX, 1, EINVAL));
    blk_unref(blk);
    copy_file(path, good);
    RawSnap rs = raw_snapshot(path, "s");

    static const struct {
        const char *what;
        int off, width;
        uint64_t value;
    } damage[] = {
        { "vm_state_size_large", 40, 8, 1ULL << 40 },
        { "vm_state_size_large", 40, 8, UINT64_MAX },
        { "vm_state_size_large", 40, 8, 64ULL * 1024 * 1024 * 1024 * 1024 },
        { "disk_size", 48, 8, 1ULL << 62 },
        { "disk_size", 48, 8, UINT64_MAX - 511 },
        { "disk_size", 48, 8, 3ULL << 30 },
        { "l1_size", 8, 4, 0 },
    };
    for (guint i = 0; i < G_N_ELEMENTS(damage); i++) {
        copy_file(good, path);
        patch_be(path, rs.entry + damage[i].off, damage[i].value,
                 damage[i].width);
        if (damage[i].off == 40) {      /* the 32-bit copy too */
            patch_be(path, rs.entry + 32, MIN(damage[i].value, UINT32_MAX),
                     4);
        }
        GError *e = NULL;
        blk = img_open_opts(path, NULL, &e);
        if (!blk) {
            /* Refused at open is fine too: that is not a crash. */
            g_test_message("%s=%#" G_GINT64_MODIFIER "x: open refused: %s",
                           damage[i].what, damage[i].value, e->message);
            g_error_free(e);
            continue;
        }
        uint8_t buf[4096];
        int ret = bdrv_snapshot_load_vmstate(blk_bs(blk), "s", buf, 0,
                                             sizeof(buf), &e);
        g_test_message("%s=%#" G_GINT64_MODIFIER "x: %d %s", damage[i].what,
                       damage[i].value, ret, e ? e->message : "");
        g_assert_cmpint(ret, <, 0);
        g_assert_nonnull(e);
        g_assert_nonnull(strstr(e->message, "'s'"));
        g_clear_error(&e);
        /* Reading everything it claims fails the same way. */
        ret = bdrv_snapshot_load_vmstate(blk_bs(blk), "s", buf,
                                         (1ULL << 40) - 16, 16, &e);
        g_assert_cmpint(ret, <, 0);
        g_clear_error(&e);
        blk_unref(blk);
    }
    /* The undamaged image still reads back. */
    copy_file(good, path);
    blk = img_open(path);
    assert_vm_pattern(blk, "s", 40, 0, 1 * MiB);
    blk_unref(blk);
    qemu_check(path, false);
}

/* ---- resize, formats, filters, transactions ---- */

static void test_resize_moves_area(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("resize.qcow2");
    img_create(path, 6 * MiB, "cluster_size=4096");   /* area at 8 MiB */
    BlockBackend *blk = img_open(path);
    Model *m = model_new(6 * MiB);
    write_pattern(blk, m, 5 * MiB, 1 * MiB, 1);
    vm_save_pattern(blk, 50, 0, 3 * MiB);
    vm_save_pattern(blk, 51, 0, 64 * KiB);
    snapshot_create_vm(blk, "s", 3 * MiB, 0, 0, 0, 0);
    vm_save_pattern(blk, 52, 0, 3 * MiB);   /* stays in the active layer */
    /* Growing past the old area: the guest must not see the VM state. */
    GError *err = NULL;
    g_assert_cmpint(blk_truncate(blk, 12 * MiB, false, PREALLOC_MODE_OFF,
                                 &err), ==, 0);
    g_assert_no_error(err);
    model_resize(m, 12 * MiB);
    verify_model(blk, m);
    assert_vm_zero(blk, NULL, 0, 3 * MiB);
    /* The snapshot's area stays where its disk size puts it. */
    uint8_t *got = vm_load(blk, "s", 0, 3 * MiB);
    uint8_t *want = g_malloc(3 * MiB);
    pattern_fill(want, 3 * MiB, 50, 0);
    pattern_fill(want, 64 * KiB, 51, 0);
    assert_same_bytes(got, want, 3 * MiB, 0, "snapshot after resize");
    g_free(got);
    vm_save_pattern(blk, 53, 0, 1 * MiB);
    write_pattern(blk, m, 9 * MiB, 3 * MiB, 2);
    assert_vm_pattern(blk, NULL, 53, 0, 1 * MiB);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    qemu_compare(path, NULL, m);
    blk = img_open(path);
    snapshot_apply_ok(blk, "s");
    got = vm_load(blk, NULL, 0, 3 * MiB);
    assert_same_bytes(got, want, 3 * MiB, 0, "active after revert");
    g_free(got);
    g_free(want);
    g_assert_cmpint(blk_getlength(blk), ==, 6 * MiB);
    snapshot_delete_ok(blk, "s");
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    model_free(m);
}

static void test_formats(Fixture *f, gconstpointer data)
{
    g_autofree char *raw = test_path("disk.raw");
    g_autofree char *q = test_path("under.qcow2");
    g_assert_true(g_file_set_contents(raw, "", 0, NULL));
    g_assert_cmpint(truncate(raw, 1 * MiB), ==, 0);
    BlockBackend *blk = img_open_opts(raw, "driver=raw", NULL);
    uint8_t buf[512] = { 1 };
    GError *err = NULL;
    g_assert_false(bdrv_can_save_vmstate(blk_bs(blk)));
    g_assert_cmpint(bdrv_save_vmstate(blk_bs(blk), buf, 0, 512, &err), ==,
                    -ENOTSUP);
    g_assert_nonnull(strstr(err->message, "'raw'"));
    g_clear_error(&err);
    g_assert_cmpint(bdrv_load_vmstate(bdrv_file_bs(blk_bs(blk)), buf, 0, 512,
                                      &err), ==, -ENOTSUP);
    g_assert_nonnull(strstr(err->message, "'file'"));
    g_clear_error(&err);
    g_assert_cmpint(bdrv_snapshot_load_vmstate(blk_bs(blk), "x", buf, 0, 1,
                                               &err), ==, -ENOTSUP);
    g_clear_error(&err);
    g_assert_cmpint(blk_save_vmstate(blk, buf, 0, 512, &err), ==, -ENOTSUP);
    g_clear_error(&err);
    blk_unref(blk);

    /* blkdebug on top of qcow2 passes through. */
    img_create(q, 8 * MiB, "cluster_size=4096");
    g_autofree char *opts = g_strdup_printf(
        "driver=blkdebug,file.driver=qcow2,file.file.filename=%s", q);
    BlockOpts *o = bopts_new();
    g_assert_true(bopts_parse(o, opts, &err));
    g_assert_no_error(err);
    blk = blk_new_open(NULL, o, BDRV_O_RDWR, &err);
    g_assert_no_error(err);
    g_assert_true(bdrv_can_save_vmstate(blk_bs(blk)));
    uint8_t *pat = g_malloc(300 * KiB);
    pattern_fill(pat, 300 * KiB, 60, 0);
    g_assert_cmpint(blk_save_vmstate(blk, pat, 0, 300 * KiB, &err), ==, 0);
    g_assert_no_error(err);
    uint8_t *back = g_malloc(300 * KiB);
    g_assert_cmpint(blk_load_vmstate(blk, back, 0, 300 * KiB, &err), ==, 0);
    assert_same_bytes(back, pat, 300 * KiB, 0, "through blkdebug");
    BdrvSnapshotInfo sn = { .name = (char *)"s",
                            .vm_state_size = 300 * KiB };
    g_assert_cmpint(bdrv_snapshot_create(bdrv_file_bs(blk_bs(blk)), &sn,
                                         &err), ==, 0);
    memset(back, 0, 300 * KiB);
    g_assert_cmpint(bdrv_snapshot_load_vmstate(blk_bs(blk), "s", back, 0,
                                               300 * KiB, &err), ==, 0);
    g_assert_no_error(err);
    assert_same_bytes(back, pat, 300 * KiB, 0, "snapshot through blkdebug");
    g_free(pat);
    g_free(back);
    blk_unref(blk);
    qemu_check(q, false);

    /* Read-only nodes refuse writes and discards, still read. */
    o = bopts_new();
    bopts_set(o, "driver", "qcow2");
    blk = blk_new_open(q, o, 0, &err);
    g_assert_no_error(err);
    g_assert_cmpint(bdrv_save_vmstate(blk_bs(blk), buf, 0, 1, &err), ==,
                    -EACCES);
    g_clear_error(&err);
    g_assert_cmpint(bdrv_discard_vmstate(blk_bs(blk), &err), ==, -EACCES);
    g_clear_error(&err);
    assert_vm_zero(blk, NULL, 0, 4096);
    uint8_t *v = vm_load(blk, "s", 0, 4096);
    g_free(v);
    blk_unref(blk);
}

typedef struct {
    BlockDriverState *bs;
    BdrvSnapshotInfo *sn;
    BdrvSnapshotCreate *st;
    int ret;
} Prep;

static void coroutine_fn prep_entry(void *opaque)
{
    Prep *p = opaque;
    p->ret = bdrv_co_snapshot_create_prepare(p->bs, p->sn, &p->st, NULL);
}

static void coroutine_fn abort_entry(void *opaque)
{
    Prep *p = opaque;
    bdrv_co_snapshot_create_abort(p->bs, p->st);
}

static void test_transaction(Fixture *f, gconstpointer data)
{
    g_autofree char *p1 = test_path("t1.qcow2");
    g_autofree char *p2 = test_path("t2.qcow2");
    img_create(p1, 32 * MiB, NULL);
    img_create(p2, 32 * MiB, NULL);
    BlockBackend *b1 = img_open(p1), *b2 = img_open(p2);
    blk_set_name(b1, "vmdisk");
    blk_set_name(b2, "data");
    Model *m = model_new(32 * MiB);
    write_pattern(b1, m, 0, 1 * MiB, 1);
    /* As QEMU's savevm: the VM state goes to one disk, every disk gets a
     * snapshot with the same date and clock. */
    vm_save_pattern(b1, 70, 0, 2 * MiB + 17);
    BdrvSnapshotInfo with = { .name = (char *)"save1", .vm_state_size = 2 * MiB + 17,
                              .date_sec = 1234567890, .date_nsec = 42,
                              .vm_clock_nsec = 5 * 1000000000ULL,
                              .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    BdrvSnapshotInfo without = with;
    without.vm_state_size = 0;
    Transaction *t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_internal_vm(t, "vmdisk", &with);
    txn_add_snapshot_internal_vm(t, "data", &without);
    GError *err = NULL;
    g_assert_cmpint(txn_run(t, &err), ==, 0);
    g_assert_no_error(err);
    assert_vm_pattern(b1, "save1", 70, 0, 2 * MiB + 17);
    assert_vm_zero(b1, NULL, 0, 2 * MiB);
    BdrvSnapshotInfo got;
    g_assert_true(bdrv_snapshot_find(blk_bs(b2), "save1", &got));
    g_assert_cmpuint(got.vm_state_size, ==, 0);
    g_assert_cmpuint(got.date_sec, ==, 1234567890);
    g_assert_cmpuint(got.vm_clock_nsec, ==, 5 * 1000000000ULL);
    bdrv_snapshot_info_clear(&got);
    /* A failed transaction leaves the VM state where it was. */
    vm_save_pattern(b1, 71, 0, 64 * KiB);
    with.name = (char *)"save2";
    with.vm_state_size = 64 * KiB;
    t = txn_new(TXN_COMPLETION_INDIVIDUAL);
    txn_add_snapshot_internal_vm(t, "vmdisk", &with);
    txn_add_abort(t);
    g_assert_cmpint(txn_run(t, &err), <, 0);
    g_clear_error(&err);
    assert_vm_pattern(b1, NULL, 71, 0, 64 * KiB);
    g_assert_false(bdrv_snapshot_find(blk_bs(b1), "save2", NULL));
    /* Discard refuses while a creation is pending, then works. */
    BdrvSnapshotInfo sn3 = { .name = (char *)"save3",
                             .vm_state_size = 64 * KiB };
    Prep pr = { blk_bs(b1), &sn3, NULL, 0 };
    co_run_sync(prep_entry, &pr);
    g_assert_cmpint(pr.ret, ==, 0);
    g_assert_cmpint(bdrv_discard_vmstate(blk_bs(b1), &err), ==, -EBUSY);
    g_clear_error(&err);
    uint8_t big[16];
    g_assert_cmpint(bdrv_save_vmstate(blk_bs(b1), big, 3ULL << 30, 16, &err),
                    ==, -EBUSY);
    g_clear_error(&err);
    co_run_sync(abort_entry, &pr);
    g_assert_cmpint(bdrv_discard_vmstate(blk_bs(b1), &err), ==, 0);
    assert_vm_zero(b1, NULL, 0, 64 * KiB);
    check_blk(b1, false);
    check_blk(b2, false);
    blk_unref(b1);
    blk_unref(b2);
    qemu_check(p1, false);
    qemu_check(p2, false);
    qemu_compare(p1, "save1", m);
    compare_listings(p2);
    model_free(m);
}

/* ---- size and speed ---- */

static double now_s(void)
{
    return g_get_monotonic_time() / 1e6;
}

static void test_large(Fixture *f, gconstpointer data)
{
    g_autofree char *path = test_path("large.qcow2");
    g_autofree char *plain = test_path("plain.bin");
    const uint64_t big = 128 * MiB + 64 * KiB + 5;
    img_create(path, 256 * MiB, NULL);
    int64_t alloc0 = refcounted_clusters(path);
    uint8_t *buf = g_malloc(big);
    compressible_fill(buf, big, 80, 0);
    pattern_fill(buf, 64 * MiB, 81, 0);

    /* 64 MiB to a fresh image against the same bytes to a plain file,
     * both made durable. */
    int fd = open(plain, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    g_assert_cmpint(fd, >=, 0);
    double t0 = now_s();
    for (uint64_t done = 0; done < 64 * MiB;) {
        ssize_t n = write(fd, buf + done, 64 * MiB - done);
        g_assert_cmpint(n, >, 0);
        done += n;
    }
    g_assert_cmpint(fdatasync(fd), ==, 0);
    double t_plain = now_s() - t0;
    close(fd);
    g_unlink(plain);

    BlockBackend *blk = img_open(path);
    t0 = now_s();
    vm_save(blk, buf, 0, 64 * MiB);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    double t_vm = now_s() - t0;
    g_test_message("64 MiB: plain file %.3f s (%.0f MB/s), VM state %.3f s "
                   "(%.0f MB/s)", t_plain, 64 / t_plain, t_vm, 64 / t_vm);
    g_assert_cmpfloat(t_vm, <=, 3 * t_plain + 0.5);

    /* The rest, past 128 MiB, in one request; then back whole. */
    vm_save(blk, buf + 64 * MiB, 64 * MiB, big - 64 * MiB);
    snapshot_create_vm(blk, "big", big, 9, 0, 0, 0);
    uint8_t *got = vm_load(blk, "big", 0, big);
    assert_same_bytes(got, buf, big, 0, "128 MiB VM state");
    g_free(got);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    compare_listings(path);
    blk = img_open(path);
    snapshot_apply_ok(blk, "big");
    got = vm_load(blk, NULL, 0, big);
    assert_same_bytes(got, buf, big, 0, "128 MiB VM state after revert");
    g_free(got);
    snapshot_delete_ok(blk, "big");
    g_assert_cmpint(bdrv_discard_vmstate(blk_bs(blk), NULL), ==, 0);
    check_blk(blk, false);
    blk_unref(blk);
    qemu_check(path, false);
    g_assert_cmpint(refcounted_clusters(path), <=, alloc0 + 1);
    g_free(buf);
}

static void add(const char *name, void (*fn)(Fixture *, gconstpointer))
{
    g_test_add(name, Fixture, NULL, fixture_setup, fn, fixture_teardown);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_autofree char *dir = g_path_get_dirname(argv[0]);
    xblk_img_bin = g_build_filename(dir, "..", "..", "xblk-img", NULL);
    add("/vmstate/basic", test_basic);
    add("/vmstate/cow-and-listing", test_cow_and_listing);
    add("/vmstate/backing", test_backing);
    add("/vmstate/interop-qemu", test_interop_qemu);
    add("/vmstate/delete-frees", test_delete_frees);
    add("/vmstate/damaged", test_damaged);
    add("/vmstate/resize", test_resize_moves_area);
    add("/vmstate/formats", test_formats);
    add("/vmstate/transaction", test_transaction);
    add("/vmstate/large", test_large);
    int ret = g_test_run();
    g_free(xblk_img_bin);
    return ret;
}
