/*
 * helper-kill-writer.c - the child process of tests/block/test-kill.py.
 *
 * Opens a qcow2 image read-write and loops forever issuing a seeded random
 * mix of requests: writes of random sizes and offsets (partial-cluster,
 * multi-cluster, beyond existing allocations), compressed writes,
 * write-zeroes, discards, flushes, internal snapshot create, revert and
 * delete,
 * and phases with several writes in flight at once (blk_aio_pwritev).
 * The test SIGKILLs it at a random instant and checks what survived.
 *
 * Every 512-byte sector a write puts down is 32 copies of the 16-byte
 * record { "XKW1", u32 seq, u64 byte offset } (little endian), so a reader
 * can tell which request last wrote each sector.  Requests are issued on
 * 512-byte boundaries; discards cover whole clusters.
 *
 * Progress goes to stdout, one write(2) per line (line buffered), always
 * printed BEFORE the request is issued or AFTER it is acknowledged:
 *   W seq off len      write about to be issued (also in aio phases)
 *   C seq off len      compressed write about to be issued
 *   Z seq off len      write-zeroes about to be issued
 *   T seq off len      discard about to be issued
 *   F seq              flush acknowledged: every request <= seq is durable
 *                      (nothing is in flight when a flush starts)
 *   s name seq         snapshot creation starts (all requests <= seq done)
 *   S name             snapshot created
 *   E name             snapshot creation failed (only with -f)
 *   d name / D name    snapshot deletion starts / done
 *   a name / A name    revert to a snapshot starts / done: from A on the
 *                      disk durably holds the snapshot's content
 *   e name             revert failed, the disk is unchanged (only with -f)
 * Any unexpected error is reported on stderr and exits with status 1, so
 * the test can tell an early exit from its own kill.
 *
 * Usage: helper-kill-writer [-s seed] [-c cluster_size] [-q first_seq]
 *                           [-p prefix] [-f] [-n] [-m max_ops] [-P writes]
 *                           IMAGE
 *   -q  sequence numbers start after first_seq (runs on the same image)
 *   -p  prefix of snapshot names (unique per run on the same image)
 *   -f  snapshot creation and revert may fail (narrow refcounts: -ERANGE)
 *   -n  no snapshots
 *   -m  stop after about max_ops operations, close the image and print
 *       "F seq" (a deterministic run for reproducing failures)
 *   -P  simulate a power loss after that many writes to the image file
 *       (see the powercut filter below): prints "P n", exits with 99
 * Snapshots already in the image are adopted: they may be deleted too.
 */
#include "block/block-backend.h"
#include "block/block_int.h"
#include "block/snapshot.h"
#include "util/cutils.h"
#include "util/main-loop.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SECTOR 512
#define MAX_SNAPSHOTS 4
#define MAX_AIO 8

static uint64_t rng_state;
static BlockBackend *blk;
static uint64_t disk_size, cluster_size;
static uint64_t seq;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static void die(const char *what, int ret, GError *err)
{
    fprintf(stderr, "helper-kill-writer: %s failed: %s (%d)\n", what,
            err ? err->message : strerror(ret < 0 ? -ret : ret), ret);
    exit(1);
}

static void fill_payload(uint8_t *buf, uint64_t off, uint64_t len,
                         uint64_t sq)
{
    for (uint64_t s = 0; s < len; s += SECTOR) {
        uint8_t rec[16];
        uint64_t o = off + s;
        memcpy(rec, "XKW1", 4);
        for (int i = 0; i < 4; i++) {
            rec[4 + i] = (uint8_t)(sq >> (8 * i));
        }
        for (int i = 0; i < 8; i++) {
            rec[8 + i] = (uint8_t)(o >> (8 * i));
        }
        for (int r = 0; r < SECTOR / 16; r++) {
            memcpy(buf + s + r * 16, rec, 16);
        }
    }
}

/* A random 512-aligned range: mostly small (inside one cluster), often a
 * few clusters, sometimes a large run.  Clamped to the disk. */
static void pick_range(uint64_t *off, uint64_t *len)
{
    uint64_t sectors = disk_size / SECTOR;
    uint64_t cs_sectors = cluster_size / SECTOR;
    uint64_t n;
    switch (rnd_below(4)) {
    case 0:   /* within one cluster, possibly partial */
        n = 1 + rnd_below(cs_sectors);
        break;
    case 1:   /* one to four clusters, unaligned */
        n = 1 + rnd_below(4 * cs_sectors);
        break;
    case 2:   /* aligned whole clusters */
        n = cs_sectors * (1 + rnd_below(3));
        break;
    default:  /* up to 256 KiB, ignoring clusters */
        n = 1 + rnd_below(512);
        break;
    }
    n = MIN(n, MIN(sectors, (1024 * 1024) / SECTOR));
    uint64_t start;
    if (rnd_below(8) == 0) {
        start = sectors - n;          /* the very end of the disk */
    } else {
        start = rnd_below(sectors - n + 1);
    }
    if (rnd_below(2) == 0 && n < cs_sectors * 4) {
        /* Start on a cluster boundary half of the time. */
        start -= start % cs_sectors;
    }
    *off = start * SECTOR;
    *len = n * SECTOR;
}

/* Whole clusters, for discards and compressed writes. */
static void pick_cluster_range(uint64_t *off, uint64_t *len, uint64_t max)
{
    uint64_t clusters = disk_size / cluster_size;
    uint64_t n = 1 + rnd_below(MIN(max, clusters));
    uint64_t start = rnd_below(clusters - n + 1);
    *off = start * cluster_size;
    *len = n * cluster_size;
}

static void do_write(uint64_t off, uint64_t len, bool compressed)
{
    uint8_t *buf = g_malloc(len);
    seq++;
    fill_payload(buf, off, len, seq);
    printf("%c %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
           compressed ? 'C' : 'W', seq, off, len);
    int ret = blk_pwrite(blk, off, len, buf,
                         compressed ? BDRV_REQ_WRITE_COMPRESSED : 0);
    g_free(buf);
    if (ret < 0) {
        die(compressed ? "compressed write" : "write", ret, NULL);
    }
}

typedef struct AioReq {
    IOVector qiov;
    uint8_t *buf;
    int *pending;
} AioReq;

static void aio_done(void *opaque, int ret)
{
    AioReq *r = opaque;
    if (ret < 0) {
        die("aio write", ret, NULL);
    }
    (*r->pending)--;
    g_free(r->buf);
    g_free(r);
}

/* Several writes in flight: sector-disjoint, but often in the same
 * clusters, so allocations race and must wait for each other. */
static void aio_phase(void)
{
    int n = 2 + (int)rnd_below(MAX_AIO - 1);
    int pending = 0;
    uint64_t used_off[MAX_AIO], used_len[MAX_AIO];
    int nused = 0;
    uint64_t base, blen;
    pick_range(&base, &blen);
    for (int i = 0; i < n; i++) {
        uint64_t off, len;
        if (rnd_below(2)) {
            /* near the first request: same or neighbouring clusters */
            uint64_t span = 4 * cluster_size;
            uint64_t lo = base > span ? base - span : 0;
            off = lo + rnd_below(MIN(disk_size - lo, 2 * span) / SECTOR) *
                       SECTOR;
            len = SECTOR * (1 + rnd_below(MAX(cluster_size / SECTOR, 8)));
            len = MIN(len, disk_size - off);
        } else {
            pick_range(&off, &len);
        }
        bool overlap = false;
        for (int j = 0; j < nused; j++) {
            if (off < used_off[j] + used_len[j] && used_off[j] < off + len) {
                overlap = true;
            }
        }
        if (overlap || len == 0) {
            continue;
        }
        used_off[nused] = off;
        used_len[nused] = len;
        nused++;
        AioReq *r = g_new0(AioReq, 1);
        r->buf = g_malloc(len);
        r->pending = &pending;
        seq++;
        fill_payload(r->buf, off, len, seq);
        iovec_init_buf(&r->qiov, r->buf, len);
        printf("W %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", seq, off, len);
        pending++;
        blk_aio_pwritev(blk, off, &r->qiov, 0, aio_done, r);
    }
    while (pending > 0) {
        aio_poll(true);
    }
}

/*
 * ---- power loss: the "powercut" filter between qcow2 and its file ----
 *
 * It journals every write that no flush has yet made durable, with the
 * sectors it overwrote.  When the cut comes (after the Nth write), it
 * holds new writes, waits for those in flight, and rewrites each sector
 * touched since the last completed flush to one of its versions (what
 * the last flush left, or what any later write put there, chosen by the
 * seed): what a disk with a volatile cache may hold after losing power.
 * Then the process exits with status 99 at once.
 */
#define POWERCUT_EXIT 99

typedef struct PcWrite {
    uint64_t offset;        /* sector-aligned extent */
    uint64_t bytes;
    uint8_t *pre;           /* its content before the write */
} PcWrite;

typedef struct PcState {
    GArray *journal;        /* of PcWrite, oldest first */
    uint64_t writes;
    unsigned in_flight;
    bool cutting;
    CoQueue held;           /* writes after the cut: never issued */
} PcState;

static uint64_t powercut_after;     /* 0: never */

static void pc_drop(PcState *s, guint n)
{
    for (guint i = 0; i < n; i++) {
        g_free(g_array_index(s->journal, PcWrite, i).pre);
    }
    g_array_remove_range(s->journal, 0, n);
}

static int coroutine_fn pc_open(BlockDriverState *bs, BlockOpts *opts,
                                int flags, GError **errp)
{
    PcState *s = bs->opaque;
    s->journal = g_array_new(FALSE, FALSE, sizeof(PcWrite));
    co_queue_init(&s->held);
    bs->request_alignment = bs->file->bs->request_alignment;
    bs->buf_alignment = bs->file->bs->buf_alignment;
    return 0;
}

static void coroutine_fn pc_close(BlockDriverState *bs)
{
    PcState *s = bs->opaque;
    pc_drop(s, s->journal->len);
    g_array_free(s->journal, TRUE);
}

static int coroutine_fn pc_co_preadv(BlockDriverState *bs, int64_t offset,
                                     int64_t bytes, IOVector *qiov,
                                     BdrvRequestFlags flags)
{
    return bdrv_co_preadv(bs->file->bs, offset, bytes, qiov, flags);
}

static void coroutine_fn pc_cut(BlockDriverState *bs)
{
    PcState *s = bs->opaque;
    GHashTable *done = g_hash_table_new(g_int64_hash, g_int64_equal);
    int fd = open(bs->file->bs->filename, O_WRONLY);
    if (fd < 0) {
        die("powercut open", -errno, NULL);
    }
    /* For each sector: the journal entries touching it, oldest first;
     * version k < m is entry k's pre-image, version m what is there. */
    for (guint i = 0; i < s->journal->len; i++) {
        PcWrite *w = &g_array_index(s->journal, PcWrite, i);
        for (uint64_t sec = w->offset; sec < w->offset + w->bytes;
             sec += SECTOR) {
            if (g_hash_table_contains(done, &sec)) {
                continue;
            }
            uint64_t *key = g_new(uint64_t, 1);
            *key = sec;
            g_hash_table_add(done, key);
            GPtrArray *versions = g_ptr_array_new();
            for (guint j = i; j < s->journal->len; j++) {
                PcWrite *v = &g_array_index(s->journal, PcWrite, j);
                if (sec >= v->offset && sec < v->offset + v->bytes) {
                    g_ptr_array_add(versions, v->pre + (sec - v->offset));
                }
            }
            uint64_t k = rnd_below(versions->len + 1);
            if (k < versions->len &&
                pwrite(fd, versions->pdata[k], SECTOR, sec) != SECTOR) {
                die("powercut write", -errno, NULL);
            }
            g_ptr_array_free(versions, TRUE);
        }
    }
    printf("P %" PRIu64 "\n", s->writes);
    _exit(POWERCUT_EXIT);
}

static int coroutine_fn pc_co_pwritev(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, IOVector *qiov,
                                      BdrvRequestFlags flags)
{
    PcState *s = bs->opaque;
    while (s->cutting) {
        co_queue_wait(&s->held, NULL);
    }
    PcWrite w;
    w.offset = offset - offset % SECTOR;
    w.bytes = ROUND_UP((uint64_t)offset + bytes, SECTOR) - w.offset;
    w.pre = g_malloc(w.bytes);
    int ret = bdrv_co_pread(bs->file->bs, w.offset, w.bytes, w.pre, 0);
    if (ret < 0) {
        g_free(w.pre);
        return ret;
    }
    g_array_append_val(s->journal, w);
    s->in_flight++;
    ret = bdrv_co_pwritev(bs->file->bs, offset, bytes, qiov, flags);
    s->in_flight--;
    if (powercut_after && ++s->writes >= powercut_after && !s->cutting) {
        s->cutting = true;
        while (s->in_flight > 0) {
            co_yield_to_loop();
        }
        pc_cut(bs);
    }
    return ret;
}

static int coroutine_fn pc_co_flush(BlockDriverState *bs)
{
    PcState *s = bs->opaque;
    /* What was written before the flush is durable once it completes -
     * unless the power went first. */
    while (s->cutting) {
        co_queue_wait(&s->held, NULL);
    }
    guint n = s->journal->len;
    int ret = bdrv_co_flush(bs->file->bs);
    while (s->cutting) {
        co_queue_wait(&s->held, NULL);
    }
    if (ret >= 0) {
        pc_drop(s, n);
    }
    return ret;
}

static int coroutine_fn pc_co_truncate(BlockDriverState *bs, int64_t offset,
                                       bool exact, PreallocMode prealloc,
                                       GError **errp)
{
    return bdrv_co_truncate(bs->file->bs, offset, exact, prealloc, errp);
}

static const BlockDriver bdrv_powercut = {
    .format_name = "powercut",
    .instance_size = sizeof(PcState),
    .is_filter = true,
    .open = pc_open,
    .close = pc_close,
    .co_preadv = pc_co_preadv,
    .co_pwritev = pc_co_pwritev,
    .co_flush_to_os = pc_co_flush,
    .co_truncate = pc_co_truncate,
};

static char *snapshots[MAX_SNAPSHOTS];
static int nb_snapshots;
static int snap_counter;
static const char *snap_prefix = "";

/* Takes over (up to MAX_SNAPSHOTS of) the snapshots already present. */
static void adopt_snapshots(void)
{
    BdrvSnapshotInfo *list;
    int n = bdrv_snapshot_list(blk_bs(blk), &list);
    if (n < 0) {
        die("snapshot list", n, NULL);
    }
    for (int i = 0; i < n && nb_snapshots < MAX_SNAPSHOTS; i++) {
        snapshots[nb_snapshots++] = g_strdup(list[i].name);
    }
    bdrv_snapshot_list_free(list, n);
}

static void snapshot_create(bool may_fail)
{
    char name[32];
    snprintf(name, sizeof(name), "%.16ssn%d", snap_prefix, ++snap_counter);
    BdrvSnapshotInfo sn = { .name = name, .date_sec = (uint32_t)time(NULL),
                            .icount = BDRV_SNAPSHOT_NO_ICOUNT };
    GError *err = NULL;
    printf("s %s %" PRIu64 "\n", name, seq);
    int ret = bdrv_snapshot_create(blk_bs(blk), &sn, &err);
    if (ret < 0) {
        if (!may_fail) {
            die("snapshot create", ret, err);
        }
        g_clear_error(&err);
        printf("E %s\n", name);
        return;
    }
    printf("S %s\n", name);
    snapshots[nb_snapshots++] = g_strdup(name);
}

/* Reverts the disk to a snapshot.  Nothing is in flight, so once it
 * returns the disk durably holds the snapshot's content. */
static void snapshot_apply(bool may_fail)
{
    char *name = snapshots[rnd_below(nb_snapshots)];
    GError *err = NULL;
    printf("a %s\n", name);
    int ret = bdrv_snapshot_apply(blk_bs(blk), name, &err);
    if (ret < 0) {
        if (!may_fail) {
            die("snapshot apply", ret, err);
        }
        g_clear_error(&err);
        printf("e %s\n", name);
        return;
    }
    printf("A %s\n", name);
}

static void snapshot_delete(void)
{
    int i = (int)rnd_below(nb_snapshots);
    char *name = snapshots[i];
    GError *err = NULL;
    printf("d %s\n", name);
    int ret = bdrv_snapshot_delete(blk_bs(blk), NULL, name, &err);
    if (ret < 0) {
        die("snapshot delete", ret, err);
    }
    printf("D %s\n", name);
    g_free(name);
    snapshots[i] = snapshots[--nb_snapshots];
}

int main(int argc, char **argv)
{
    uint64_t seed = 1;
    bool snap_may_fail = false, no_snapshots = false;
    uint64_t max_ops = 0, ops = 0;
    int c;
    cluster_size = 65536;
    while ((c = getopt(argc, argv, "s:c:q:p:m:P:fn")) != -1) {
        switch (c) {
        case 's': seed = strtoull(optarg, NULL, 0); break;
        case 'c': cluster_size = strtoull(optarg, NULL, 0); break;
        case 'q': seq = strtoull(optarg, NULL, 0); break;
        case 'p': snap_prefix = optarg; break;
        case 'm': max_ops = strtoull(optarg, NULL, 0); break;
        case 'P': powercut_after = strtoull(optarg, NULL, 0); break;
        case 'f': snap_may_fail = true; break;
        case 'n': no_snapshots = true; break;
        default:
            goto usage;
        }
    }
    if (optind + 1 != argc || cluster_size < SECTOR ||
        (cluster_size & (cluster_size - 1))) {
        goto usage;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;

    GError *err = NULL;
    BlockOpts *opts = NULL;
    if (powercut_after) {
        bdrv_register(&bdrv_powercut);
        opts = bopts_new();
        bopts_set(opts, "driver", "qcow2");
        bopts_set(opts, "file.driver", "powercut");
        bopts_set(opts, "file.file.filename", argv[optind]);
    }
    blk = blk_new_open(powercut_after ? NULL : argv[optind], opts,
                       BDRV_O_RDWR | BDRV_O_UNMAP, &err);
    if (!blk) {
        die("open", -EIO, err);
    }
    int64_t len = blk_getlength(blk);
    if (len < 0) {
        die("getlength", (int)len, NULL);
    }
    disk_size = (uint64_t)len;
    if (disk_size < 4 * cluster_size || disk_size % cluster_size) {
        fprintf(stderr, "helper-kill-writer: disk must hold >= 4 whole "
                "clusters\n");
        return 2;
    }
    if (!no_snapshots) {
        adopt_snapshots();
    }
    printf("R %" PRIu64 "\n", disk_size);

    for (;; ops++) {
        uint64_t r = rnd_below(1000), off, l;
        if (max_ops && ops >= max_ops) {
            blk_unref(blk);
            printf("F %" PRIu64 "\n", seq);
            return 0;
        }
        int ret;
        if (r < 550) {
            pick_range(&off, &l);
            do_write(off, l, false);
        } else if (r < 650) {
            aio_phase();
        } else if (r < 690) {
            pick_cluster_range(&off, &l, 2);
            do_write(off, l, true);
        } else if (r < 740) {
            pick_range(&off, &l);
            seq++;
            printf("Z %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", seq, off, l);
            ret = blk_pwrite_zeroes(blk, off, l,
                                    rnd_below(2) ? BDRV_REQ_MAY_UNMAP : 0);
            if (ret < 0) {
                die("write-zeroes", ret, NULL);
            }
        } else if (r < 790) {
            pick_cluster_range(&off, &l, 4);
            seq++;
            printf("T %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", seq, off, l);
            ret = blk_pdiscard(blk, off, l);
            if (ret < 0) {
                die("discard", ret, NULL);
            }
        } else if (r < 940) {
            ret = blk_flush(blk);
            if (ret < 0) {
                die("flush", ret, NULL);
            }
            printf("F %" PRIu64 "\n", seq);
        } else if (no_snapshots) {
            continue;
        } else if (r < 975 && nb_snapshots < MAX_SNAPSHOTS) {
            snapshot_create(snap_may_fail);
        } else if (r < 985 && nb_snapshots > 0) {
            snapshot_apply(snap_may_fail);
        } else if (nb_snapshots > 0) {
            snapshot_delete();
        }
    }
    return 0;

usage:
    fprintf(stderr, "usage: %s [-s seed] [-c cluster_size] [-q first_seq] "
            "[-p prefix] [-f] [-n] [-m max_ops] [-P writes] IMAGE\n", argv[0]);
    return 2;
}
