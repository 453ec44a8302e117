/*
 * file-posix.c - the `file` protocol driver: a host file accessed with
 * preadv/pwritev/fdatasync/fallocate on the worker pool.
 *
 * With cache.direct=on the file is opened O_DIRECT; requests that are not
 * aligned to the probed sector size (offset, length or buffer) go through
 * an aligned bounce buffer, writes as read-modify-write under rmw_lock.
 * Reads past the end of the file return zeroes, as a sparse file would.
 *
 * Without O_DIRECT a read is first tried on the loop thread with
 * preadv2(RWF_NOWAIT), which the kernel completes only from the page
 * cache and refuses (EAGAIN) whenever it would have to wait for the disk;
 * what it could not read goes to the worker pool.  A cached read thus
 * costs no thread round trip, and the loop still never blocks on I/O.
 *
 * With aio=io_uring (the default when built with liburing) reads, writes,
 * flushes and zero/discard fallocates go to the process's io_uring
 * (util/aio-uring.c) instead of the worker pool; the pool remains the
 * fallback when the ring cannot be set up or refuses an operation.
 * Direct reads and writes go to the pool too once more than
 * FILE_RING_DIRECT_DEPTH of them are in flight: the ring submits from the
 * loop thread alone, so every request's trip to the device (a doorbell,
 * on a virtual disk an exit to the hypervisor) is paid one after another
 * on one CPU, while the pool's threads pay them in parallel on every CPU.
 * Measured here (bench/run-bench, 2 CPUs, virtio disk): at queue depth 32
 * the pool did 3-8 % more IOPS than the ring, at depth 1 the ring 30-40 %
 * more than the pool, with half the CPU time.
 *
 * Write-behind: without O_DIRECT or cache.no-flush (whose users never
 * wait for the disk: qemu-img convert's default "unsafe" output), once
 * FILE_WRITE_BEHIND_BYTES have been
 * written since the last kick, a worker starts write-out of the span they
 * touched (sync_file_range(SYNC_FILE_RANGE_WRITE), no waiting).  The disk
 * then works while we keep writing, and a later flush -- the one a
 * snapshot's write-out or close has to wait for -- finds little left to
 * do.  It changes no data and no ordering: only flushes make data
 * durable, as before.  At most one kick runs at a time; it counts in the
 * node's in_flight so that a drain or close waits for it.
 *
 * Reservation ahead of the end (O_DIRECT only): a direct write that
 * extends a file makes the kernel take the inode lock exclusively (ext4,
 * XFS), so concurrent appending writes -- a fresh image filling up, each
 * new cluster landing at the end -- serialize on that lock, spin on it,
 * and io_uring hands each one to a kernel worker.  Before such a write the
 * driver extends the file ahead with fallocate (unwritten extents, a few
 * MiB at a time), so the writes that follow are overwrites inside the
 * file, which the kernel runs under a shared lock and submits inline.
 * `size` stays the logical length (the end of what was written); the
 * reserved tail reads as zeroes, lies past every qcow2 structure (refcount
 * zero: not a leak) and is cut off again at close.  Invariant:
 * size <= reserved_end, and reserved_end is the file's real length
 * whenever reserved_end > size.
 *
 * Image locking (locking=auto|on|off), interoperable with QEMU: the
 * permissions of the node (block_int.h, BLK_PERM_*) become shared OFD
 * locks (F_OFD_SETLK, F_RDLCK) on single bytes of the file: byte
 * FILE_LOCK_PERM_BASE + i while the node holds permission bit i, byte
 * FILE_LOCK_SHARED_BASE + i while it does not let others have bit i.
 * Another process conflicts when it holds a byte we would need free:
 * taking bit i needs 200+i free, refusing to share bit i needs 100+i
 * free.  Locks are first added, then checked (F_OFD_GETLK with a write
 * lock finds anybody else's read lock), so two processes racing to open
 * cannot both miss each other; a failed check puts back what was held.
 * locking=auto is on (Linux has OFD locks); off takes and checks nothing.
 *
 * Within one process all nodes on the same file (dev/inode) share one
 * lock holder: one open file description of its own (never given to
 * io_uring, whose asynchronous teardown would keep the locks alive after
 * the process died) holds the union of what they take and refuse, so the
 * process's own
 * instances of an image (a backing file opened twice, commit's
 * read-write instance beside the read-only one) never conflict with each
 * other; consistency inside the process is the block graph's business.
 * Invariant: holder->held is exactly the set of bytes locked on
 * holder->fd, and it covers the union of its users' perm/shared.
 */
#include "block/block_int.h"
#include "util/cutils.h"
#include "util/aio-uring.h"
#include "util/main-loop.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct FileState {
    int fd;
    int64_t size;           /* cached file length, updated on our writes */
    bool direct;
    bool use_uring;         /* aio=io_uring and the ring is usable */
    CoMutex rmw_lock;
    /* Flushes with nothing written since the last one are skipped:
     * write_gen counts completed modifications (it starts at 1, so the
     * first flush after open always reaches the disk), flushed_gen is the
     * write_gen the last successful fdatasync covered. */
    uint64_t write_gen, flushed_gen;
    /* Write-behind: span and amount written since the last kick. */
    int64_t wb_lo, wb_hi, wb_pending;
    bool wb_running;
    /* Reservation ahead of the end: the file's real length, and whether
     * fallocate works here (cleared on the first refusal). */
    int64_t reserved_end;
    bool can_reserve;
    CoMutex reserve_lock;
    /* Direct reads and writes submitted and not completed. */
    unsigned direct_rw_in_flight;
    /* Image locking: the process's holder for this file (NULL with
     * locking=off), and what this node takes and refuses to share. */
    struct FileLockHolder *lock;
    uint64_t lock_perm, lock_unshared;
} FileState;

#define FILE_WRITE_BEHIND_BYTES (1 << 20)
/* Extend by an eighth of the file, at least this and at most 64 MiB: few
 * fallocate calls for a large fill, little left over for a small one. */
#define FILE_RESERVE_MIN (4 << 20)
#define FILE_RESERVE_MAX (64 << 20)
/* Direct transfers in flight up to which they go to the ring. */
#define FILE_RING_DIRECT_DEPTH 4

typedef enum { FILE_READ, FILE_WRITE, FILE_FLUSH, FILE_ZERO, FILE_DISCARD,
               FILE_TRUNCATE, FILE_FALLOC, FILE_RESERVE,
               FILE_WRITE_BEHIND } FileOp;

typedef struct FileReq {
    FileOp op;
    int fd;
    int64_t offset, bytes;
    struct iovec *iov;
    int niov;
    bool unmap;
} FileReq;

/* Drops the first n transferred bytes from a (private) iovec array. */
static void file_iov_advance(struct iovec **iov, int *niov, size_t n)
{
    while (n > 0 && *niov > 0) {
        if (n >= (*iov)->iov_len) {
            n -= (*iov)->iov_len;
            (*iov)++;
            (*niov)--;
        } else {
            (*iov)->iov_base = (char *)(*iov)->iov_base + n;
            (*iov)->iov_len -= n;
            n = 0;
        }
    }
}

/* A transfer of 0 bytes: a write cannot go on (no space), a read hit the
 * end of the file and the rest reads as zeroes. */
static int file_rw_at_eof(FileOp op, struct iovec *iov, int niov)
{
    if (op == FILE_WRITE) {
        return -ENOSPC;
    }
    for (int i = 0; i < niov; i++) {
        memset(iov[i].iov_base, 0, iov[i].iov_len);
    }
    return 0;
}

static int file_do_rw(FileReq *r)
{
    int64_t done = 0;
    struct iovec *iov = r->iov;
    int niov = r->niov;
    struct iovec local[64];
    if (niov > 64) {
        niov = 64;   /* handled by the caller splitting; defensive */
    }
    memcpy(local, iov, niov * sizeof(struct iovec));
    iov = local;
    while (done < r->bytes) {
        ssize_t n = r->op == FILE_READ
                    ? preadv(r->fd, iov, niov, r->offset + done)
                    : pwritev(r->fd, iov, niov, r->offset + done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return file_rw_at_eof(r->op, iov, niov);
        }
        done += n;
        file_iov_advance(&iov, &niov, n);
    }
    return 0;
}

static int file_worker(void *opaque)
{
    FileReq *r = opaque;
    switch (r->op) {
    case FILE_READ:
    case FILE_WRITE:
        return file_do_rw(r);
    case FILE_FLUSH:
        return fdatasync(r->fd) < 0 ? -errno : 0;
    case FILE_ZERO: {
        int mode = r->unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                            : FALLOC_FL_ZERO_RANGE;
        if (fallocate(r->fd, mode, r->offset, r->bytes) == 0) {
            return 0;
        }
        if (r->unmap && (errno == EOPNOTSUPP || errno == ENOSYS)) {
            if (fallocate(r->fd, FALLOC_FL_ZERO_RANGE, r->offset,
                          r->bytes) == 0) {
                return 0;
            }
        }
        return errno == EOPNOTSUPP || errno == ENOSYS ? -ENOTSUP : -errno;
    }
    case FILE_DISCARD:
        if (fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      r->offset, r->bytes) == 0) {
            return 0;
        }
        return errno == EOPNOTSUPP || errno == ENOSYS ? -ENOTSUP : -errno;
    case FILE_TRUNCATE:
        return ftruncate(r->fd, r->offset) < 0 ? -errno : 0;
    case FILE_FALLOC: {
        int ret = posix_fallocate(r->fd, r->offset, r->bytes);
        return -ret;
    }
    case FILE_RESERVE:
        /* Unlike posix_fallocate, never falls back to writing zeroes. */
        return fallocate(r->fd, 0, r->offset, r->bytes) < 0 ? -errno : 0;
    case FILE_WRITE_BEHIND:
        return sync_file_range(r->fd, r->offset, r->bytes,
                               SYNC_FILE_RANGE_WRITE) < 0 ? -errno : 0;
    }
    return -EINVAL;
}

/* The read/write loop of file_do_rw on the ring: short transfers are
 * resubmitted for the rest, a read at EOF zero-fills. */
static int coroutine_fn file_uring_rw(FileReq *r)
{
    struct iovec local[64];
    int niov = MIN(r->niov, 64);
    struct iovec *iov = local;
    int64_t done = 0;
    memcpy(local, r->iov, niov * sizeof(struct iovec));
    while (done < r->bytes) {
        int n = aio_uring_rw(r->fd, r->op == FILE_WRITE, iov, niov,
                             r->offset + done);
        if (n < 0) {
            if (n == -EINTR || n == -EAGAIN) {
                continue;
            }
            if (done == 0 && (n == -EINVAL || n == -EOPNOTSUPP)) {
                return 1;  /* let the worker pool try */
            }
            return n;
        }
        if (n == 0) {
            return file_rw_at_eof(r->op, iov, niov);
        }
        done += n;
        file_iov_advance(&iov, &niov, n);
    }
    return 0;
}

/* Returns 1 when the ring cannot do r, the result otherwise. */
static int coroutine_fn file_uring_submit(FileReq *r)
{
    int ret;
    switch (r->op) {
    case FILE_READ:
    case FILE_WRITE:
        return file_uring_rw(r);
    case FILE_FLUSH:
        ret = aio_uring_fdatasync(r->fd);
        break;
    case FILE_ZERO:
        if (r->unmap) {
            return 1;   /* the worker knows the fallbacks */
        }
        ret = aio_uring_fallocate(r->fd, FALLOC_FL_ZERO_RANGE, r->offset,
                                  r->bytes);
        break;
    case FILE_DISCARD:
        ret = aio_uring_fallocate(r->fd,
                                  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                  r->offset, r->bytes);
        break;
    default:
        return 1;
    }
    if (ret == -EINVAL || ret == -EOPNOTSUPP || ret == -ENOSYS) {
        return 1;
    }
    return ret;
}

/* The ring, or the pool (see the header: direct transfers in parallel). */
static bool file_on_ring(FileState *s, FileReq *r)
{
    if (!s->use_uring || !aio_uring_available()) {
        return false;
    }
    return !(s->direct && (r->op == FILE_READ || r->op == FILE_WRITE) &&
             s->direct_rw_in_flight > FILE_RING_DIRECT_DEPTH);
}

static int coroutine_fn file_submit_op(FileState *s, FileReq *r)
{
    bool direct_rw = s->direct && (r->op == FILE_READ ||
                                   r->op == FILE_WRITE);
    int ret = 1;
    s->direct_rw_in_flight += direct_rw;
    if (file_on_ring(s, r)) {
        ret = file_uring_submit(r);
    }
    if (ret > 0) {
        ret = worker_pool_run(file_worker, r);
    }
    s->direct_rw_in_flight -= direct_rw;
    return ret;
}

static int coroutine_fn file_submit(FileState *s, FileReq *r)
{
    int ret = file_submit_op(s, r);
    /* Counted on completion (failed ones too: they may have changed
     * something): a flush covers only what completed before it. */
    if (r->op != FILE_READ && r->op != FILE_FLUSH) {
        s->write_gen++;
    }
    return ret;
}

/* Reads what the page cache holds of r without blocking and advances r
 * past it (r->iov must be a private copy).  Returns true if r is done. */
static bool file_read_nowait(FileReq *r)
{
#ifdef RWF_NOWAIT
    ssize_t n = preadv2(r->fd, r->iov, r->niov, r->offset, RWF_NOWAIT);
    if (n <= 0) {
        return false;     /* EAGAIN, unsupported, or at EOF: the worker */
    }
    if (n >= r->bytes) {
        return true;
    }
    r->offset += n;
    r->bytes -= n;
    file_iov_advance(&r->iov, &r->niov, n);
#endif
    return false;
}

static bool file_qiov_aligned(BlockDriverState *bs, int64_t offset,
                              int64_t bytes, IOVector *qiov)
{
    uint32_t a = bs->request_alignment;
    if ((offset | bytes) & (a - 1)) {
        return false;
    }
    for (int i = 0; i < qiov->niov; i++) {
        if (((uintptr_t)qiov->iov[i].iov_base | qiov->iov[i].iov_len) &
            (bs->buf_alignment - 1)) {
            return false;
        }
    }
    return true;
}

static int coroutine_fn file_rw_aligned(BlockDriverState *bs, FileOp op,
                                        int64_t offset, int64_t bytes,
                                        IOVector *qiov)
{
    FileState *s = bs->opaque;
    /* Split long vectors so that the worker's local copy suffices. */
    int i = 0;
    int64_t off = offset;
    while (i < qiov->niov) {
        int n = MIN(qiov->niov - i, 64);
        int64_t len = 0;
        for (int j = 0; j < n; j++) {
            len += qiov->iov[i + j].iov_len;
        }
        FileReq r = { .op = op, .fd = s->fd, .offset = off, .bytes = len,
                      .iov = &qiov->iov[i], .niov = n };
        struct iovec local[64];
        int ret = 0;
        if (op == FILE_READ && !s->direct) {
            memcpy(local, r.iov, n * sizeof(struct iovec));
            r.iov = local;
            if (file_read_nowait(&r)) {
                r.bytes = 0;
            }
        }
        if (r.bytes > 0) {
            ret = file_submit(s, &r);
        }
        if (ret < 0) {
            return ret;
        }
        i += n;
        off += len;
    }
    (void)bytes;
    return 0;
}

static int coroutine_fn file_rw_bounce(BlockDriverState *bs, FileOp op,
                                       int64_t offset, int64_t bytes,
                                       IOVector *qiov)
{
    FileState *s = bs->opaque;
    uint32_t a = bs->request_alignment;
    int64_t start = ROUND_DOWN(offset, (int64_t)a);
    int64_t end = ROUND_UP(offset + bytes, (int64_t)a);
    uint8_t *buf = bdrv_blockalign(bs, end - start);
    IOVector bq;
    iovec_init_buf(&bq, buf, end - start);
    int ret;
    if (op == FILE_WRITE) {
        co_mutex_lock(&s->rmw_lock);
    }
    ret = file_rw_aligned(bs, FILE_READ, start, end - start, &bq);
    if (ret >= 0 && op == FILE_READ) {
        iovec_from_buf(qiov, 0, buf + (offset - start), bytes);
    } else if (ret >= 0) {
        iovec_to_buf(qiov, 0, buf + (offset - start), bytes);
        ret = file_rw_aligned(bs, FILE_WRITE, start, end - start, &bq);
    }
    if (op == FILE_WRITE) {
        co_mutex_unlock(&s->rmw_lock);
    }
    bdrv_vfree(buf);
    return ret;
}

static int coroutine_fn file_co_preadv(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, IOVector *qiov,
                                       BdrvRequestFlags flags)
{
    if (!file_qiov_aligned(bs, offset, bytes, qiov)) {
        return file_rw_bounce(bs, FILE_READ, offset, bytes, qiov);
    }
    return file_rw_aligned(bs, FILE_READ, offset, bytes, qiov);
}

static void file_note_end(BlockDriverState *bs, int64_t end)
{
    FileState *s = bs->opaque;
    if (end > s->size) {
        s->size = end;
    }
}

static void coroutine_fn file_write_behind_co(void *opaque)
{
    BlockDriverState *bs = opaque;
    FileState *s = bs->opaque;
    FileReq r = { .op = FILE_WRITE_BEHIND, .fd = s->fd };
    do {
        r.offset = s->wb_lo;
        r.bytes = s->wb_hi - s->wb_lo;
        s->wb_lo = INT64_MAX;
    s->write_gen = 1;
        s->wb_hi = s->wb_pending = 0;
        /* Only a hint: an error here changes nothing and is not reported;
         * the next flush reports what really failed. */
        worker_pool_run(file_worker, &r);
    } while (s->wb_pending >= FILE_WRITE_BEHIND_BYTES);
    s->wb_running = false;
    bdrv_dec_in_flight(bs);
}

/* Called inside a write request (so in_flight > 0 while we add to it). */
static void coroutine_fn file_write_behind_note(BlockDriverState *bs,
                                                int64_t offset, int64_t bytes)
{
    FileState *s = bs->opaque;
    if (s->direct || (bs->open_flags & BDRV_O_NO_FLUSH)) {
        return;     /* no flush will come (cache.no-flush) to wait less for */
    }
    s->wb_lo = MIN(s->wb_lo, offset);
    s->wb_hi = MAX(s->wb_hi, offset + bytes);
    s->wb_pending += bytes;
    if (s->wb_pending >= FILE_WRITE_BEHIND_BYTES && !s->wb_running) {
        s->wb_running = true;
        bdrv_inc_in_flight(bs);
        co_enter(co_create(file_write_behind_co, bs));
    }
}

/* Makes sure a direct write ending at end lands inside the file (see the
 * header: reservation ahead of the end).  Failure only costs speed. */
static void coroutine_fn file_reserve_for(BlockDriverState *bs, int64_t end)
{
    FileState *s = bs->opaque;
    if (!s->direct || !s->can_reserve || end <= s->reserved_end) {
        return;
    }
    co_mutex_lock(&s->reserve_lock);
    if (end > s->reserved_end && s->can_reserve) {
        int64_t ahead = MIN(MAX(s->size / 8, FILE_RESERVE_MIN),
                            FILE_RESERVE_MAX);
        int64_t start = MAX(s->reserved_end, s->size);
        int64_t target = ROUND_UP(end + ahead, (int64_t)FILE_RESERVE_MIN);
        FileReq r = { .op = FILE_RESERVE, .fd = s->fd, .offset = start,
                      .bytes = target - start };
        if (worker_pool_run(file_worker, &r) == 0) {
            s->reserved_end = target;
        } else {
            s->can_reserve = false;
        }
    }
    co_mutex_unlock(&s->reserve_lock);
}

static int coroutine_fn file_co_pwritev(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, IOVector *qiov,
                                        BdrvRequestFlags flags)
{
    int ret;
    file_reserve_for(bs, offset + bytes);
    if (!file_qiov_aligned(bs, offset, bytes, qiov)) {
        ret = file_rw_bounce(bs, FILE_WRITE, offset, bytes, qiov);
    } else {
        ret = file_rw_aligned(bs, FILE_WRITE, offset, bytes, qiov);
    }
    if (ret >= 0) {
        file_note_end(bs, offset + bytes);
        file_write_behind_note(bs, offset, bytes);
    }
    return ret;
}

static int coroutine_fn file_co_pwrite_zeroes(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              BdrvRequestFlags flags)
{
    FileState *s = bs->opaque;
    uint32_t a = bs->request_alignment;
    if ((offset | bytes) & (a - 1)) {
        return -ENOTSUP;
    }
    FileReq r = { .op = FILE_ZERO, .fd = s->fd, .offset = offset,
                  .bytes = bytes, .unmap = !!(flags & BDRV_REQ_MAY_UNMAP) };
    /* Punching past the end does not extend the file; zero-range does. */
    if (r.unmap && offset + bytes > s->size) {
        r.unmap = false;
    }
    int ret = file_submit(s, &r);
    if (ret >= 0) {
        file_note_end(bs, offset + bytes);
    }
    return ret;
}

static int coroutine_fn file_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes)
{
    FileState *s = bs->opaque;
    FileReq r = { .op = FILE_DISCARD, .fd = s->fd, .offset = offset,
                  .bytes = bytes };
    return file_submit(s, &r);
}

static int coroutine_fn file_co_flush_to_disk(BlockDriverState *bs)
{
    FileState *s = bs->opaque;
    uint64_t gen = s->write_gen;
    if (gen == s->flushed_gen) {
        return 0;
    }
    FileReq r = { .op = FILE_FLUSH, .fd = s->fd };
    int ret = file_submit(s, &r);
    if (ret == 0 && gen > s->flushed_gen) {
        s->flushed_gen = gen;
    }
    return ret;
}

static int coroutine_fn file_co_block_status(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             int64_t *pnum, int64_t *map,
                                             BlockDriverState **file)
{
    FileState *s = bs->opaque;
    *map = offset;
    *file = bs;
    off_t data = lseek(s->fd, offset, SEEK_DATA);
    if (data < 0) {
        /* ENXIO: no data after offset, the rest is a hole. */
        *pnum = bytes;
        return errno == ENXIO ? BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID
                              : BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    if (data > offset) {
        *pnum = MIN(bytes, data - offset);
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID;
    }
    off_t hole = lseek(s->fd, offset, SEEK_HOLE);
    if (hole < 0 || hole <= offset) {
        *pnum = bytes;
    } else {
        *pnum = MIN(bytes, hole - offset);
    }
    return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
}

static int coroutine_fn file_co_truncate(BlockDriverState *bs, int64_t offset,
                                         bool exact, PreallocMode prealloc,
                                         GError **errp)
{
    FileState *s = bs->opaque;
    int64_t old = s->size;
    if (!exact && offset <= old) {
        return 0;
    }
    FileReq r = { .op = FILE_TRUNCATE, .fd = s->fd, .offset = offset };
    int ret = file_submit(s, &r);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to resize file");
        return ret;
    }
    s->size = offset;
    s->reserved_end = offset;
    if (offset > old && prealloc == PREALLOC_MODE_FALLOC) {
        FileReq f = { .op = FILE_FALLOC, .fd = s->fd, .offset = old,
                      .bytes = offset - old };
        ret = file_submit(s, &f);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not preallocate data");
        }
    } else if (offset > old && prealloc == PREALLOC_MODE_FULL) {
        size_t chunk = 1 << 20;
        void *buf = bdrv_blockalign(bs, chunk);
        memset(buf, 0, chunk);
        for (int64_t o = old; o < offset && ret >= 0; o += chunk) {
            IOVector q;
            int64_t n = MIN((int64_t)chunk, offset - o);
            iovec_init_buf(&q, buf, n);
            ret = file_rw_aligned(bs, FILE_WRITE, o, n, &q);
        }
        bdrv_vfree(buf);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not write zeroes for "
                             "preallocation");
        }
    }
    return ret;
}

static int64_t file_get_length(BlockDriverState *bs)
{
    FileState *s = bs->opaque;
    return s->size;
}

static int64_t file_get_allocated_file_size(BlockDriverState *bs)
{
    FileState *s = bs->opaque;
    struct stat st;
    if (fstat(s->fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

static void file_probe_alignment(BlockDriverState *bs)
{
    FileState *s = bs->opaque;
    static const uint32_t sizes[] = { 512, 1024, 2048, 4096 };
    void *buf = bdrv_blockalign(NULL, 4096);
    bs->request_alignment = 4096;
    for (int i = 0; i < 4; i++) {
        if (pread(s->fd, buf, sizes[i], 0) >= 0 || errno != EINVAL) {
            bs->request_alignment = sizes[i];
            break;
        }
    }
    bs->buf_alignment = MAX(bs->request_alignment, 512);
    bdrv_vfree(buf);
}

/* ---- image locking (see the header) ---- */

#define FILE_LOCK_PERM_BASE   100
#define FILE_LOCK_SHARED_BASE 200

typedef struct FileLockHolder {
    dev_t dev;
    ino_t ino;
    int fd;                 /* our own open of the file: one OFD */
    uint64_t held_perm;     /* bytes 100+i locked on fd */
    uint64_t held_unshared; /* bytes 200+i locked on fd */
    GList *users;           /* FileState* */
} FileLockHolder;

static GList *file_lock_holders;

static int file_lock_op(int fd, short type, int cmd, off_t byte,
                        short *found)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
                        .l_start = byte, .l_len = 1 };
    int ret;
    do {
        ret = fcntl(fd, cmd, &fl);
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        return -errno;
    }
    if (found) {
        *found = fl.l_type;
    }
    return 0;
}

/* Locks exactly the bytes of perm/unshared on h->fd, adding and
 * releasing what differs from h->held_*.  Releasing never fails. */
static int file_lock_apply(FileLockHolder *h, uint64_t perm,
                           uint64_t unshared, GError **errp)
{
    for (int i = 0; i < BLK_PERM_COUNT; i++) {
        for (int k = 0; k < 2; k++) {
            uint64_t *held = k ? &h->held_unshared : &h->held_perm;
            bool want = ((k ? unshared : perm) >> i) & 1;
            bool have = (*held >> i) & 1;
            off_t byte = (k ? FILE_LOCK_SHARED_BASE : FILE_LOCK_PERM_BASE) + i;
            if (want == have) {
                continue;
            }
            int ret = file_lock_op(h->fd, want ? F_RDLCK : F_UNLCK,
                                   F_OFD_SETLK, byte, NULL);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Failed to lock byte %d",
                                 (int)byte);
                return ret;
            }
            *held ^= 1ull << i;
        }
    }
    return 0;
}

/* Whether any other open file description holds a lock on byte. */
static int file_lock_test(FileLockHolder *h, off_t byte, bool *busy)
{
    short type = F_UNLCK;
    int ret = file_lock_op(h->fd, F_WRLCK, F_OFD_GETLK, byte, &type);
    *busy = ret == 0 && type != F_UNLCK;
    return ret;
}

/* Checks what one node asks for against other processes, in QEMU's
 * order and words: first the permissions it takes, then the ones it
 * refuses to share. */
static int file_lock_check(const char *filename, FileLockHolder *h,
                           uint64_t perm, uint64_t unshared, GError **errp)
{
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < BLK_PERM_COUNT; i++) {
            if (!(((k ? unshared : perm) >> i) & 1)) {
                continue;
            }
            off_t byte = (k ? FILE_LOCK_PERM_BASE : FILE_LOCK_SHARED_BASE) + i;
            bool busy;
            int ret = file_lock_test(h, byte, &busy);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Failed to check lock byte %d",
                                 (int)byte);
                return ret;
            }
            if (busy) {
                error_setg(errp, "Failed to get %s\"%s\" lock\n"
                           "Is another process using the image [%s]?",
                           k ? "shared " : "", bdrv_perm_name(i),
                           filename);
                return -EAGAIN;
            }
        }
    }
    return 0;
}

static void file_lock_union(FileLockHolder *h, uint64_t *perm,
                            uint64_t *unshared)
{
    *perm = *unshared = 0;
    for (GList *l = h->users; l; l = l->next) {
        FileState *u = l->data;
        *perm |= u->lock_perm;
        *unshared |= u->lock_unshared;
    }
}

/* Joins (or creates) the process's holder for s->fd's file. */
static int file_lock_attach(FileState *s, const char *filename,
                            GError **errp)
{
    struct stat st;
    if (fstat(s->fd, &st) < 0) {
        int err = errno;
        error_setg_errno(errp, err, "Could not stat '%s'", filename);
        return -err;
    }
    FileLockHolder *h = NULL;
    for (GList *l = file_lock_holders; l; l = l->next) {
        FileLockHolder *c = l->data;
        if (c->dev == st.st_dev && c->ino == st.st_ino) {
            h = c;
            break;
        }
    }
    if (!h) {
        /* A new open file description, not a dup: io_uring keeps
         * references to the data descriptor's file after a process dies
         * (its teardown is asynchronous), and the locks would outlive the
         * process with it.  /proc/self/fd reaches the same inode even if
         * the name has changed since. */
        g_autofree char *self = g_strdup_printf("/proc/self/fd/%d", s->fd);
        int fd = open(self, O_RDONLY | O_CLOEXEC);
        struct stat lst;
        if (fd < 0) {
            fd = open(filename, O_RDONLY | O_CLOEXEC);
        }
        if (fd >= 0 && (fstat(fd, &lst) < 0 || lst.st_dev != st.st_dev ||
                        lst.st_ino != st.st_ino)) {
            close(fd);
            fd = -1;
            errno = ESTALE;
        }
        if (fd < 0) {
            int err = errno;
            error_setg_errno(errp, err, "Could not open '%s' for locking",
                             filename);
            return -err;
        }
        h = g_new0(FileLockHolder, 1);
        h->dev = st.st_dev;
        h->ino = st.st_ino;
        h->fd = fd;
        file_lock_holders = g_list_prepend(file_lock_holders, h);
    }
    s->lock_perm = s->lock_unshared = 0;
    h->users = g_list_prepend(h->users, s);
    s->lock = h;
    return 0;
}

static void file_lock_detach(FileState *s)
{
    FileLockHolder *h = s->lock;
    if (!h) {
        return;
    }
    s->lock = NULL;
    h->users = g_list_remove(h->users, s);
    if (!h->users) {
        file_lock_holders = g_list_remove(file_lock_holders, h);
        close(h->fd);           /* drops every lock of the OFD */
        g_free(h);
        return;
    }
    uint64_t perm, unshared;
    file_lock_union(h, &perm, &unshared);
    file_lock_apply(h, perm, unshared, NULL);
}

static int file_lock_set(FileState *s, const char *filename, uint64_t perm,
                         uint64_t shared, GError **errp)
{
    FileLockHolder *h = s->lock;
    uint64_t unshared = ~shared & BLK_PERM_ALL;
    perm &= BLK_PERM_ALL;
    if (!h) {
        return 0;               /* locking=off */
    }
    uint64_t old_perm = s->lock_perm, old_unshared = s->lock_unshared;
    uint64_t u_perm, u_unshared;
    /* Lock first, then look for others: see the header. */
    s->lock_perm |= perm;
    s->lock_unshared |= unshared;
    file_lock_union(h, &u_perm, &u_unshared);
    int ret = file_lock_apply(h, u_perm, u_unshared, errp);
    if (ret == 0) {
        ret = file_lock_check(filename, h, perm, unshared, errp);
    }
    if (ret < 0) {
        s->lock_perm = old_perm;
        s->lock_unshared = old_unshared;
    } else {
        s->lock_perm = perm;
        s->lock_unshared = unshared;
    }
    file_lock_union(h, &u_perm, &u_unshared);
    file_lock_apply(h, u_perm, u_unshared, NULL);
    return ret;
}

static int file_set_perm(BlockDriverState *bs, uint64_t perm,
                         uint64_t shared, GError **errp)
{
    return file_lock_set(bs->opaque, bs->filename, perm, shared, errp);
}

static int coroutine_fn file_open(BlockDriverState *bs, BlockOpts *opts,
                                  int flags, GError **errp)
{
    FileState *s = bs->opaque;
    char *aio = bopts_take(opts, "aio");
    if (!aio || !strcmp(aio, "io_uring")) {
        s->use_uring = true;
    } else if (strcmp(aio, "threads") && strcmp(aio, "native")) {
        error_setg(errp, "Parameter 'aio' does not accept value '%s'", aio);
        g_free(aio);
        return -EINVAL;
    }
    g_free(aio);
    g_autofree char *locking = bopts_take(opts, "locking");
    bool use_lock = true;       /* auto: Linux has OFD locks */
    if (locking && !strcmp(locking, "off")) {
        use_lock = false;
    } else if (locking && strcmp(locking, "on") && strcmp(locking, "auto")) {
        error_setg(errp, "Parameter 'locking' does not accept value '%s'",
                   locking);
        return -EINVAL;
    }
    int oflags = O_CLOEXEC | ((flags & BDRV_O_RDWR) ? O_RDWR : O_RDONLY);
    if (flags & BDRV_O_NOCACHE) {
        oflags |= O_DIRECT;
    }
    co_mutex_init(&s->rmw_lock);
    s->fd = open(bs->filename, oflags);
    if (s->fd < 0) {
        int err = errno;
        error_setg_errno(errp, err, "Could not open '%s'", bs->filename);
        return -err;
    }
    struct stat st;
    if (fstat(s->fd, &st) < 0) {
        int err = errno;
        error_setg_errno(errp, err, "Could not stat '%s'", bs->filename);
        close(s->fd);
        s->fd = -1;
        return -err;
    }
    if (S_ISDIR(st.st_mode)) {
        error_setg(errp, "'%s' is a directory", bs->filename);
        close(s->fd);
        s->fd = -1;
        return -EISDIR;
    }
    if (use_lock) {
        int ret = file_lock_attach(s, bs->filename, errp);
        if (ret < 0) {
            close(s->fd);
            s->fd = -1;
            return ret;
        }
    }
    s->size = st.st_size;
    s->reserved_end = st.st_size;
    s->can_reserve = (flags & BDRV_O_RDWR) && S_ISREG(st.st_mode);
    co_mutex_init(&s->reserve_lock);
    s->direct = flags & BDRV_O_NOCACHE;
    s->wb_lo = INT64_MAX;
    if (s->direct) {
        file_probe_alignment(bs);
    }
    return 0;
}

static void coroutine_fn file_close(BlockDriverState *bs)
{
    FileState *s = bs->opaque;
    if (s->fd >= 0 && s->reserved_end > s->size) {
        /* Give back the unused reservation; a failure leaves a longer
         * file that reads as zeroes past the end, which is harmless. */
        int unused = ftruncate(s->fd, s->size);
        (void)unused;
    }
    file_lock_detach(s);
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

static const char *const file_create_opts[] = {
    "size", "preallocation", "nocow", NULL
};

static int coroutine_fn file_create(const char *filename, BlockOpts *opts,
                                    GError **errp)
{
    uint64_t size = 0;
    PreallocMode prealloc = PREALLOC_MODE_OFF;
    const char *v = bopts_get(opts, "size");
    if (v && !parse_size(v, 1, &size)) {
        error_setg(errp, "Invalid size '%s'", v);
        return -EINVAL;
    }
    v = bopts_get(opts, "preallocation");
    if (v && (!prealloc_mode_parse(v, &prealloc) ||
              prealloc == PREALLOC_MODE_METADATA)) {
        error_setg(errp, "Invalid preallocation mode: '%s'", v);
        return -EINVAL;
    }
    /* As QEMU: nobody else may write or resize the file we are about to
     * empty, so lock (write and resize, not sharing resize) before
     * truncating it. */
    FileState lk = { .fd = open(filename, O_RDWR | O_CREAT | O_CLOEXEC,
                                0644) };
    if (lk.fd < 0) {
        int err = errno;
        error_setg_errno(errp, err, "Could not create '%s'", filename);
        return -err;
    }
    int ret = file_lock_attach(&lk, filename, errp);
    if (ret == 0) {
        ret = file_lock_set(&lk, filename,
                            BLK_PERM_WRITE | BLK_PERM_RESIZE,
                            BLK_PERM_ALL & ~BLK_PERM_RESIZE, errp);
    }
    if (ret == 0 && ftruncate(lk.fd, 0) < 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Could not resize file");
    }
    BlockDriverState *bs = NULL;
    if (ret == 0) {
        BlockOpts *o = bopts_new();
        bopts_set(o, "driver", "file");
        bs = bdrv_open(filename, o, BDRV_O_RDWR, errp);
        ret = bs ? bdrv_co_truncate(bs, size, true, prealloc, errp) : -EIO;
    }
    bdrv_unref(bs);
    file_lock_detach(&lk);
    close(lk.fd);
    return ret;
}

const BlockDriver bdrv_file = {
    .format_name = "file",
    .instance_size = sizeof(FileState),
    .is_protocol = true,
    .open = file_open,
    .close = file_close,
    .create = file_create,
    .create_opts = file_create_opts,
    .co_preadv = file_co_preadv,
    .co_pwritev = file_co_pwritev,
    .co_pwrite_zeroes = file_co_pwrite_zeroes,
    .co_pdiscard = file_co_pdiscard,
    .co_flush_to_disk = file_co_flush_to_disk,
    .co_block_status = file_co_block_status,
    .co_truncate = file_co_truncate,
    .get_length = file_get_length,
    .get_allocated_file_size = file_get_allocated_file_size,
    .set_perm = file_set_perm,
};
