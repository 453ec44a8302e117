/*
 * fuzz-qcow2.c - libFuzzer target: an arbitrary file opened as a qcow2
 * image through the block layer, then checked and read.
 *
 * Per input, in the process's scratch folder (fuzz-common.h):
 *   1. the bytes become img.qcow2;
 *   2. it is opened read-only without its backing chain (a backing file
 *      name in the input is never followed: nothing outside the scratch
 *      folder is opened) and read: the first clusters, a spread of
 *      offsets over the virtual size, block status over the start, each
 *      snapshot's listing and the first bytes of its VM state, the active
 *      VM state area, the dirty bitmaps' first dirty areas;
 *   3. it is opened again for check (BDRV_O_CHECK, read-only) and
 *      bdrv_check() runs in report mode (qemu-img check without -r);
 *   4. a copy, repair.qcow2, is opened read-write for check and repaired
 *      (-r all), then checked again: the repair writes only that copy.
 * Everything opened is closed and both files removed before returning,
 * so iterations are independent (libFuzzer's -detect_leaks holds).
 *
 * Bad input must give an error, never a crash, an assertion, undefined
 * behaviour or a leak (DESIGN.md rule 5).  Reads and walks are bounded so
 * that an image claiming exabytes stays fast.
 */
#include "fuzz-common.h"
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/dirty-bitmap.h"
#include "block/snapshot.h"
#include "block/vmstate.h"

#define READ_LEN 4096
#define MAX_SNAPSHOTS 4
#define MAX_STATUS_STEPS 64

static char *img_path, *repair_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    img_path = fuzz_path("img.qcow2");
    repair_path = fuzz_path("repair.qcow2");
    return 0;
}

static BlockBackend *open_image(const char *path, int flags)
{
    BlockOpts *o = bopts_new();
    bopts_set(o, "driver", "qcow2");
    GError *err = NULL;
    BlockBackend *blk = blk_new_open(path, o, flags | BDRV_O_NO_BACKING,
                                     &err);
    g_clear_error(&err);
    return blk;
}

static void read_some(BlockBackend *blk, uint8_t *buf)
{
    int64_t len = blk_getlength(blk);
    if (len <= 0) {
        return;
    }
    /* The first 16 KiB, then 8 offsets spread over the disk. */
    for (int64_t off = 0; off < MIN(len, 4 * READ_LEN); off += READ_LEN) {
        blk_pread(blk, off, MIN(READ_LEN, len - off), buf);
    }
    for (int i = 1; i <= 8; i++) {
        int64_t off = (int64_t)((uint64_t)len / 9 * i) & ~(int64_t)511;
        if (off < len) {
            blk_pread(blk, off, MIN(READ_LEN, len - off), buf);
        }
    }
    BlockDriverState *bs = blk_bs(blk);
    int64_t off = 0;
    for (int i = 0; i < MAX_STATUS_STEPS && off < len; i++) {
        int64_t pnum = 0, map = 0;
        BlockDriverState *file = NULL;
        int ret = bdrv_block_status(bs, off, len - off, &pnum, &map, &file);
        if (ret < 0 || pnum <= 0) {
            break;
        }
        off += pnum;
    }
}

static void read_snapshots(BlockDriverState *bs, uint8_t *buf)
{
    BdrvSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(bs, &list);
    for (int i = 0; i < n && i < MAX_SNAPSHOTS; i++) {
        BdrvSnapshotInfo sn = { 0 };
        if (bdrv_snapshot_find(bs, list[i].name, &sn)) {
            bdrv_snapshot_info_clear(&sn);
        }
        if (list[i].vm_state_size) {
            GError *err = NULL;
            bdrv_snapshot_load_vmstate(bs, list[i].id_str, buf, 0,
                                       MIN(list[i].vm_state_size, READ_LEN),
                                       &err);
            g_clear_error(&err);
        }
    }
    if (n > 0) {
        bdrv_snapshot_list_free(list, n);
    }
    if (bdrv_can_save_vmstate(bs)) {
        GError *err = NULL;
        bdrv_load_vmstate(bs, buf, 0, 512, &err);
        g_clear_error(&err);
    }
}

static void read_bitmaps(BlockDriverState *bs)
{
    int n = 0;
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_next(bs, NULL);
         bm && n < 8; bm = bdrv_dirty_bitmap_next(bs, bm), n++) {
        uint64_t size = bdrv_dirty_bitmap_size(bm), start = 0, alen = 0;
        bdrv_dirty_bitmap_count(bm);
        bdrv_dirty_bitmap_next_dirty_area(bm, 0, size, 1 << 20, &start,
                                          &alen);
    }
}

static void check(const char *path, int flags, BdrvCheckMode fix)
{
    BlockBackend *blk = open_image(path, flags | BDRV_O_CHECK);
    if (!blk) {
        return;
    }
    BdrvCheckResult res;
    bdrv_check(blk_bs(blk), &res, fix);
    bdrv_check_result_clear(&res);
    if (fix) {
        bdrv_check(blk_bs(blk), &res, 0);
        bdrv_check_result_clear(&res);
    }
    blk_unref(blk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!img_path) {
        LLVMFuzzerInitialize(NULL, NULL);
    }
    static uint8_t buf[READ_LEN];
    fuzz_write_file(img_path, data, size);

    BlockBackend *blk = open_image(img_path, 0);
    if (blk) {
        read_some(blk, buf);
        read_snapshots(blk_bs(blk), buf);
        read_bitmaps(blk_bs(blk));
        blk_unref(blk);
    }

    check(img_path, 0, 0);

    fuzz_write_file(repair_path, data, size);
    check(repair_path, BDRV_O_RDWR, BDRV_FIX_LEAKS | BDRV_FIX_ERRORS);

    g_unlink(img_path);
    g_unlink(repair_path);
    return 0;
}
