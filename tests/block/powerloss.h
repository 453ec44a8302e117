/*
 * powerloss.h - simulated power failure for the crash-consistency tests
 * (DESIGN rule 2: every fsync the durability order needs is there).
 *
 * One power supply (`power`) feeds everything a test watches, so the
 * power fails for all of it at the same instant:
 *
 *  - block I/O: a test-only filter driver, "powerloss", sits under each
 *    image (qcow2 -> powerloss -> file).  Writes it receives stay in a
 *    volatile list (reads see them) until a flush applies them to the
 *    file below, as a disk's write cache would.
 *  - small metadata files (transaction records, the snapshot catalog):
 *    a simulated volatile file system installed under util/durable-io.h.
 *    Changes happen on the real files at once (so every reader, which
 *    does not go through the seam, sees what the process would see), and
 *    are also recorded: a file's data is durable once the file is
 *    fsynced; a create, rename or unlink is durable once its folder is
 *    fsynced (POSIX promises nothing more).
 *
 * Every block write or flush and every create, write, fsync, rename or
 * unlink of a metadata file is an event, counted across all of them.  At
 * the fail_at-th event the power fails: that request and all later ones
 * fail with EIO (the software runs on, as if already dead).  power_cut()
 * then decides what survived: of each cache's volatile writes and each
 * metadata file's unsynced changes, none, all, or a random subset (a disk
 * and a file system may persist in any order); the real files are set to
 * that.  The test then closes what it had open, power_reset()s, reopens
 * and checks.
 *
 * Crash points and subsets: power_sweep() runs a case once without a
 * failure to count its events, then fails the power at each event in
 * turn, and once more just after the operation returned (what it
 * reported done must survive), and at each tries "nothing survived",
 * "everything survived" and some random subsets (more with XBLK_LONG=1).  The random subsets derive
 * from one seed, printed; XBLK_SEED=N replays it.  Checks report through
 * power_failf() (counted, the sweep goes on) and the sweep prints the
 * counts and asserts no failure at the end.
 */
#ifndef XBLK_TESTS_BLOCK_POWERLOSS_H
#define XBLK_TESTS_BLOCK_POWERLOSS_H

#include "image-test.h"
#include "util/durable-io.h"
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the power supply ---- */

typedef struct PowerSupply {
    uint64_t events;        /* events seen since power_reset() */
    uint64_t fail_at;       /* the event at which it fails; 0: never */
    bool dead;
    GPtrArray *nodes;       /* open powerloss nodes (BlockDriverState *) */
} PowerSupply;

static PowerSupply power;

/* Counts an event; true when the power is (now) off. */
static inline bool power_event(void)
{
    if (!power.dead) {
        power.events++;
        if (power.fail_at && power.events >= power.fail_at) {
            power.dead = true;
        }
    }
    return power.dead;
}

/* Results count only while the power is on; after it failed the
 * software may see any error. */
static inline void power_check_ok(int ret)
{
    if (!power.dead) {
        g_assert_cmpint(ret, ==, 0);
    }
}

static inline void power_check_err(int ret, GError *err)
{
    if (!power.dead) {
        g_assert_no_error(err);
    }
    g_clear_error(&err);
    power_check_ok(ret);
}

/* ---- the powerloss filter ---- */

typedef struct VolatileWrite {
    uint64_t offset;
    uint64_t len;
    uint8_t *data;
} VolatileWrite;

typedef struct PowerState {
    GArray *cache;          /* of VolatileWrite, oldest first */
} PowerState;

static int coroutine_fn pl_open(BlockDriverState *bs, BlockOpts *opts,
                                int flags, GError **errp)
{
    PowerState *s = bs->opaque;
    s->cache = g_array_new(FALSE, FALSE, sizeof(VolatileWrite));
    bs->request_alignment = bs->file->bs->request_alignment;
    if (!power.nodes) {
        power.nodes = g_ptr_array_new();
    }
    g_ptr_array_add(power.nodes, bs);
    return 0;
}

static void pl_cache_clear(PowerState *s)
{
    for (guint i = 0; i < s->cache->len; i++) {
        g_free(g_array_index(s->cache, VolatileWrite, i).data);
    }
    g_array_set_size(s->cache, 0);
}

static void coroutine_fn pl_close(BlockDriverState *bs)
{
    PowerState *s = bs->opaque;
    pl_cache_clear(s);
    g_array_free(s->cache, TRUE);
    g_ptr_array_remove(power.nodes, bs);
}

static int coroutine_fn pl_preadv(BlockDriverState *bs, int64_t offset,
                                  int64_t bytes, IOVector *qiov,
                                  BdrvRequestFlags flags)
{
    PowerState *s = bs->opaque;
    if (power.dead) {
        return -EIO;
    }
    int64_t flen = bdrv_getlength(bs->file->bs);
    int64_t n = MAX(0, MIN(bytes, flen - offset));
    iovec_memset(qiov, 0, 0, bytes);
    if (n > 0) {
        IOVector sub;
        iovec_init(&sub, qiov->niov);
        iovec_concat(&sub, qiov, 0, n);
        int ret = bdrv_co_preadv(bs->file->bs, offset, n, &sub, 0);
        iovec_destroy(&sub);
        if (ret < 0) {
            return ret;
        }
    }
    for (guint i = 0; i < s->cache->len; i++) {
        VolatileWrite *w = &g_array_index(s->cache, VolatileWrite, i);
        uint64_t a = MAX((uint64_t)offset, w->offset);
        uint64_t b = MIN((uint64_t)(offset + bytes), w->offset + w->len);
        if (a < b) {
            iovec_from_buf(qiov, a - offset, w->data + (a - w->offset), b - a);
        }
    }
    return 0;
}

static void pl_cache_add(PowerState *s, uint64_t offset, uint64_t len,
                         uint8_t *data)
{
    VolatileWrite w = { offset, len, data };
    g_array_append_val(s->cache, w);
}

static int coroutine_fn pl_pwritev(BlockDriverState *bs, int64_t offset,
                                   int64_t bytes, IOVector *qiov,
                                   BdrvRequestFlags flags)
{
    PowerState *s = bs->opaque;
    if (power_event()) {
        return -EIO;
    }
    uint8_t *data = g_malloc(bytes);
    iovec_to_buf(qiov, 0, data, bytes);
    pl_cache_add(s, offset, bytes, data);
    return 0;
}

static int coroutine_fn pl_pwrite_zeroes(BlockDriverState *bs,
                                         int64_t offset, int64_t bytes,
                                         BdrvRequestFlags flags)
{
    PowerState *s = bs->opaque;
    if (power_event()) {
        return -EIO;
    }
    pl_cache_add(s, offset, bytes, g_malloc0(bytes));
    return 0;
}

/* Moves the volatile writes selected by keep (all when NULL) to the file,
 * in order, and forgets the rest. */
static int coroutine_fn pl_cache_persist(BlockDriverState *bs, GRand *keep)
{
    PowerState *s = bs->opaque;
    int ret = 0;
    for (guint i = 0; i < s->cache->len && ret >= 0; i++) {
        VolatileWrite *w = &g_array_index(s->cache, VolatileWrite, i);
        if (!keep || g_rand_boolean(keep)) {
            ret = bdrv_co_pwrite(bs->file->bs, w->offset, w->len, w->data, 0);
        }
    }
    pl_cache_clear(s);
    return ret;
}

static int coroutine_fn pl_flush(BlockDriverState *bs)
{
    if (power_event()) {
        return -EIO;
    }
    return pl_cache_persist(bs, NULL);
}

static int64_t pl_get_length(BlockDriverState *bs)
{
    PowerState *s = bs->opaque;
    int64_t len = bdrv_getlength(bs->file->bs);
    for (guint i = 0; s->cache && i < s->cache->len; i++) {
        VolatileWrite *w = &g_array_index(s->cache, VolatileWrite, i);
        len = MAX(len, (int64_t)(w->offset + w->len));
    }
    return len;
}

static int coroutine_fn pl_truncate(BlockDriverState *bs, int64_t offset,
                                    bool exact, PreallocMode prealloc,
                                    GError **errp)
{
    if (power.dead) {
        return -EIO;
    }
    if (offset <= pl_get_length(bs)) {
        return 0;               /* growing only: later writes extend it */
    }
    return bdrv_co_truncate(bs->file->bs, offset, exact, prealloc, errp);
}

static int coroutine_fn pl_pdiscard(BlockDriverState *bs, int64_t offset,
                                    int64_t bytes)
{
    return 0;                   /* a hint: keeping the data is correct */
}

static const BlockDriver bdrv_powerloss = {
    .format_name = "powerloss",
    .instance_size = sizeof(PowerState),
    .is_filter = true,
    .open = pl_open,
    .close = pl_close,
    .co_preadv = pl_preadv,
    .co_pwritev = pl_pwritev,
    .co_pwrite_zeroes = pl_pwrite_zeroes,
    .co_pdiscard = pl_pdiscard,
    .co_flush_to_os = pl_flush,
    .co_truncate = pl_truncate,
    .get_length = pl_get_length,
};

/* Options of a qcow2 node over powerloss over path; more ("k=v,...")
 * may be NULL.  cache.no-flush: the real file under the cache needs no
 * fdatasync (the cache is the disk here). */
static inline BlockOpts *pl_opts(const char *path, const char *more)
{
    BlockOpts *o = bopts_new();
    GError *err = NULL;
    if (more) {
        g_assert_true(bopts_parse(o, more, &err));
    }
    bopts_set(o, "driver", "qcow2");
    bopts_set(o, "discard", "unmap");
    bopts_set(o, "file.driver", "powerloss");
    bopts_set(o, "file.file.filename", path);
    bopts_set(o, "cache.no-flush", "on");
    return o;
}

typedef struct PersistCo {
    BlockDriverState *bs;
    GRand *keep;
} PersistCo;

static void coroutine_fn pl_persist_entry(void *opaque)
{
    PersistCo *p = opaque;
    g_assert_cmpint(pl_cache_persist(p->bs, p->keep), ==, 0);
}

/* ---- the volatile file system under util/durable-io.h ---- */

typedef enum { VFS_WRITE, VFS_TRUNCATE } VfsDataKind;

/* A change of a file's data not yet fsynced. */
typedef struct VfsDataOp {
    VfsDataKind kind;
    uint64_t off;           /* write: where; truncate: the new length */
    GBytes *data;           /* write */
} VfsDataOp;

typedef struct VfsInode {
    GByteArray *durable;    /* the data a crash keeps for sure */
    GArray *pending;        /* VfsDataOp, oldest first */
} VfsInode;

typedef enum { VFS_CREATE, VFS_RENAME, VFS_UNLINK } VfsDirKind;

/* A change of a folder not yet fsynced (paths absolute, one folder). */
typedef struct VfsDirOp {
    VfsDirKind kind;
    char *dir;
    char *from, *to;        /* create: to; unlink: from */
    VfsInode *ino;          /* create, rename: the file named to */
} VfsDirOp;

typedef struct Vfs {
    GPtrArray *inodes;      /* every VfsInode (owned) */
    GHashTable *known;      /* paths seen: their state before is durable */
    GHashTable *cur;        /* path -> VfsInode: what the process sees */
    GHashTable *durable;    /* path -> VfsInode: what a crash keeps */
    GArray *dir_ops;        /* VfsDirOp, oldest first */
    GHashTable *fds;        /* fd -> VfsInode of files opened to write */
} Vfs;

static Vfs vfs;

static void vfs_inode_free(gpointer p)
{
    VfsInode *ino = p;
    for (guint i = 0; i < ino->pending->len; i++) {
        VfsDataOp *op = &g_array_index(ino->pending, VfsDataOp, i);
        if (op->data) {
            g_bytes_unref(op->data);
        }
    }
    g_array_free(ino->pending, TRUE);
    g_byte_array_unref(ino->durable);
    g_free(ino);
}

static VfsInode *vfs_inode_new(const void *data, size_t len)
{
    VfsInode *ino = g_new0(VfsInode, 1);
    ino->durable = g_byte_array_new();
    g_byte_array_append(ino->durable, data, len);
    ino->pending = g_array_new(FALSE, FALSE, sizeof(VfsDataOp));
    g_ptr_array_add(vfs.inodes, ino);
    return ino;
}

static void vfs_dir_ops_clear(void)
{
    for (guint i = 0; vfs.dir_ops && i < vfs.dir_ops->len; i++) {
        VfsDirOp *op = &g_array_index(vfs.dir_ops, VfsDirOp, i);
        g_free(op->dir);
        g_free(op->from);
        g_free(op->to);
    }
    if (vfs.dir_ops) {
        g_array_set_size(vfs.dir_ops, 0);
    }
}

static void vfs_clear(void)
{
    vfs_dir_ops_clear();
    g_clear_pointer(&vfs.dir_ops, g_array_unref);
    g_clear_pointer(&vfs.known, g_hash_table_unref);
    g_clear_pointer(&vfs.cur, g_hash_table_unref);
    g_clear_pointer(&vfs.durable, g_hash_table_unref);
    g_clear_pointer(&vfs.fds, g_hash_table_unref);
    g_clear_pointer(&vfs.inodes, g_ptr_array_unref);
}

static void vfs_init(void)
{
    vfs_clear();
    vfs.inodes = g_ptr_array_new_with_free_func(vfs_inode_free);
    vfs.known = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    vfs.cur = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    vfs.durable = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        NULL);
    vfs.dir_ops = g_array_new(FALSE, FALSE, sizeof(VfsDirOp));
    vfs.fds = g_hash_table_new(NULL, NULL);
}

/* The folder a descriptor names (absolute), or NULL. */
static char *vfs_fd_path(int fd)
{
    g_autofree char *link = g_strdup_printf("/proc/self/fd/%d", fd);
    return g_file_read_link(link, NULL);
}

/* dirfd + path as one absolute path whose folder part is canonical, so
 * the same file always has the same key. */
static char *vfs_path(int dirfd, const char *path)
{
    g_autofree char *full = NULL;
    if (g_path_is_absolute(path)) {
        full = g_strdup(path);
    } else if (dirfd == AT_FDCWD) {
        full = g_canonicalize_filename(path, NULL);
    } else {
        g_autofree char *dir = vfs_fd_path(dirfd);
        g_assert_nonnull(dir);
        full = g_build_filename(dir, path, NULL);
    }
    g_autofree char *dir = g_path_get_dirname(full);
    g_autofree char *base = g_path_get_basename(full);
    char *real = realpath(dir, NULL);
    char *ret = g_build_filename(real ? real : dir, base, NULL);
    free(real);
    return ret;
}

/* First sight of path: what is there now was made durable before the
 * simulation started (the tests sync their setup). */
static void vfs_track(const char *path)
{
    if (g_hash_table_contains(vfs.known, path)) {
        return;
    }
    g_hash_table_add(vfs.known, g_strdup(path));
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        g_autofree char *data = NULL;
        gsize len = 0;
        g_assert_true(g_file_get_contents(path, &data, &len, NULL));
        VfsInode *ino = vfs_inode_new(data, len);
        g_hash_table_insert(vfs.cur, g_strdup(path), ino);
        g_hash_table_insert(vfs.durable, g_strdup(path), ino);
    }
}

static void vfs_dir_op(VfsDirKind kind, const char *from, const char *to,
                       VfsInode *ino)
{
    VfsDirOp op = {
        .kind = kind,
        .dir = g_path_get_dirname(from ? from : to),
        .from = g_strdup(from),
        .to = g_strdup(to),
        .ino = ino,
    };
    g_array_append_val(vfs.dir_ops, op);
}

static void vfs_dir_apply(GHashTable *names, const VfsDirOp *op)
{
    switch (op->kind) {
    case VFS_CREATE:
        g_hash_table_insert(names, g_strdup(op->to), op->ino);
        break;
    case VFS_RENAME:
        if (g_hash_table_lookup(names, op->from) == op->ino) {
            g_hash_table_remove(names, op->from);
        }
        g_hash_table_insert(names, g_strdup(op->to), op->ino);
        break;
    case VFS_UNLINK:
        g_hash_table_remove(names, op->from);
        break;
    }
}

static void vfs_data_apply(GByteArray *b, const VfsDataOp *op)
{
    if (op->kind == VFS_TRUNCATE) {
        g_byte_array_set_size(b, op->off);
        return;
    }
    gsize len;
    const uint8_t *d = g_bytes_get_data(op->data, &len);
    if (b->len < op->off + len) {
        guint old = b->len;
        g_byte_array_set_size(b, op->off + len);
        memset(b->data + old, 0, b->len - old);
    }
    memcpy(b->data + op->off, d, len);
}

static void vfs_data_op(VfsInode *ino, VfsDataKind kind, uint64_t off,
                        const void *data, size_t len)
{
    VfsDataOp op = { kind, off, data ? g_bytes_new(data, len) : NULL };
    g_array_append_val(ino->pending, op);
}

static int vfs_openat(int dirfd, const char *name, int flags, mode_t mode)
{
    bool changes = flags & (O_CREAT | O_TRUNC);
    if (changes ? power_event() : power.dead) {
        errno = EIO;
        return -1;
    }
    bool to_file = !(flags & O_DIRECTORY) && (flags & O_ACCMODE) != O_RDONLY;
    g_autofree char *path = to_file ? vfs_path(dirfd, name) : NULL;
    if (path) {
        vfs_track(path);
    }
    int fd = openat(dirfd, name, flags, mode);
    if (fd < 0 || !path) {
        return fd;
    }
    VfsInode *ino = g_hash_table_lookup(vfs.cur, path);
    if (!ino) {
        g_assert_true(flags & O_CREAT);
        ino = vfs_inode_new(NULL, 0);
        g_hash_table_insert(vfs.cur, g_strdup(path), ino);
        vfs_dir_op(VFS_CREATE, NULL, path, ino);
    } else if (flags & O_TRUNC) {
        vfs_data_op(ino, VFS_TRUNCATE, 0, NULL, 0);
    }
    g_hash_table_insert(vfs.fds, GINT_TO_POINTER(fd), ino);
    return fd;
}

static ssize_t vfs_write(int fd, const void *buf, size_t len)
{
    if (power_event()) {
        errno = EIO;
        return -1;
    }
    off_t off = lseek(fd, 0, SEEK_CUR);
    ssize_t n = write(fd, buf, len);
    VfsInode *ino = g_hash_table_lookup(vfs.fds, GINT_TO_POINTER(fd));
    if (n > 0 && ino) {
        g_assert_cmpint(off, >=, 0);
        vfs_data_op(ino, VFS_WRITE, off, buf, n);
    }
    return n;
}

static int vfs_fsync(int fd)
{
    if (power_event()) {
        errno = EIO;
        return -1;
    }
    struct stat st;
    if (fsync(fd) < 0 || fstat(fd, &st) < 0) {
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        /* The folder's pending creates, renames and unlinks, in order. */
        g_autofree char *link = vfs_fd_path(fd);
        char *dir = link ? realpath(link, NULL) : NULL;
        g_assert_nonnull(dir);
        GArray *rest = g_array_new(FALSE, FALSE, sizeof(VfsDirOp));
        for (guint i = 0; i < vfs.dir_ops->len; i++) {
            VfsDirOp *op = &g_array_index(vfs.dir_ops, VfsDirOp, i);
            if (!strcmp(op->dir, dir)) {
                vfs_dir_apply(vfs.durable, op);
                g_free(op->dir);
                g_free(op->from);
                g_free(op->to);
            } else {
                g_array_append_val(rest, *op);
            }
        }
        g_array_unref(vfs.dir_ops);
        vfs.dir_ops = rest;
        free(dir);
        return 0;
    }
    VfsInode *ino = g_hash_table_lookup(vfs.fds, GINT_TO_POINTER(fd));
    if (ino) {
        for (guint i = 0; i < ino->pending->len; i++) {
            VfsDataOp *op = &g_array_index(ino->pending, VfsDataOp, i);
            vfs_data_apply(ino->durable, op);
            if (op->data) {
                g_bytes_unref(op->data);
            }
        }
        g_array_set_size(ino->pending, 0);
    }
    return 0;
}

/* Not an event: closing persists nothing.  Always releases the fd. */
static int vfs_close(int fd)
{
    g_hash_table_remove(vfs.fds, GINT_TO_POINTER(fd));
    int ret = close(fd);
    return power.dead ? 0 : ret;
}

static int vfs_renameat(int olddirfd, const char *oldpath, int newdirfd,
                        const char *newpath)
{
    if (power_event()) {
        errno = EIO;
        return -1;
    }
    g_autofree char *from = vfs_path(olddirfd, oldpath);
    g_autofree char *to = vfs_path(newdirfd, newpath);
    g_autofree char *d1 = g_path_get_dirname(from);
    g_autofree char *d2 = g_path_get_dirname(to);
    g_assert_cmpstr(d1, ==, d2);    /* the model keeps one folder per op */
    vfs_track(from);
    vfs_track(to);
    if (renameat(olddirfd, oldpath, newdirfd, newpath) < 0) {
        return -1;
    }
    VfsInode *ino = g_hash_table_lookup(vfs.cur, from);
    g_assert_nonnull(ino);
    g_hash_table_remove(vfs.cur, from);
    g_hash_table_insert(vfs.cur, g_strdup(to), ino);
    vfs_dir_op(VFS_RENAME, from, to, ino);
    return 0;
}

static int vfs_unlinkat(int dirfd, const char *name, int flags)
{
    if (power_event()) {
        errno = EIO;
        return -1;
    }
    g_autofree char *path = vfs_path(dirfd, name);
    vfs_track(path);
    if (unlinkat(dirfd, name, flags) < 0) {
        return -1;
    }
    g_hash_table_remove(vfs.cur, path);
    vfs_dir_op(VFS_UNLINK, path, NULL, NULL);
    return 0;
}

static const DurableIoOps vfs_ops = {
    .openat = vfs_openat,
    .write = vfs_write,
    .fsync = vfs_fsync,
    .close = vfs_close,
    .renameat = vfs_renameat,
    .unlinkat = vfs_unlinkat,
};

/* Sets the real files to what survives the crash: the durable names and
 * data, plus the unsynced changes keep selects (none when NULL).  A
 * kept change of a folder is applied in order, whether or not earlier
 * ones were kept (a file system may persist them in any order); each
 * file gets its durable data plus a subset of its unsynced changes. */
static void vfs_crash(GRand *keep)
{
    g_autoptr(GHashTable) names = g_hash_table_new_full(g_str_hash,
                                                        g_str_equal, g_free,
                                                        NULL);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, vfs.durable);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        g_hash_table_insert(names, g_strdup(k), v);
    }
    for (guint i = 0; i < vfs.dir_ops->len; i++) {
        if (keep && g_rand_boolean(keep)) {
            vfs_dir_apply(names, &g_array_index(vfs.dir_ops, VfsDirOp, i));
        }
    }
    g_autoptr(GHashTable) data = g_hash_table_new_full(
        NULL, NULL, NULL, (GDestroyNotify)g_byte_array_unref);
    for (guint i = 0; i < vfs.inodes->len; i++) {
        VfsInode *ino = g_ptr_array_index(vfs.inodes, i);
        GByteArray *b = g_byte_array_new();
        g_byte_array_append(b, ino->durable->data, ino->durable->len);
        for (guint j = 0; j < ino->pending->len; j++) {
            if (keep && g_rand_boolean(keep)) {
                vfs_data_apply(b, &g_array_index(ino->pending, VfsDataOp, j));
            }
        }
        g_hash_table_insert(data, ino, b);
    }
    g_hash_table_iter_init(&it, vfs.known);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        const char *path = k;
        if (unlink(path) < 0) {
            g_assert_cmpint(errno, ==, ENOENT);
        }
        VfsInode *ino = g_hash_table_lookup(names, path);
        if (ino) {
            GByteArray *b = g_hash_table_lookup(data, ino);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                          0600);
            g_assert_cmpint(fd, >=, 0);
            g_assert_cmpint(write(fd, b->data, b->len), ==, (ssize_t)b->len);
            close(fd);
        }
    }
}

/* ---- the whole supply ---- */

/* Starts a run: the power is on, no event seen, the power fails at event
 * fail_at (0: never); metadata files go through the simulation when
 * with_fs. */
static inline void power_start(uint64_t fail_at, bool with_fs)
{
    power.events = 0;
    power.fail_at = fail_at;
    power.dead = false;
    if (with_fs) {
        vfs_init();
        durable_io_set_ops(&vfs_ops);
    }
}

/* The power fails now (if it has not already).  What survives: subset 0,
 * nothing that was volatile; 1, all of it; otherwise a random selection
 * seeded by subset.  The software's later requests keep failing until
 * power_reset(). */
static inline void power_cut(uint64_t subset)
{
    GRand *keep = subset > 1 ? g_rand_new_with_seed((guint32)(subset ^
                                                    (subset >> 32)))
                             : NULL;
    for (guint i = 0; power.nodes && i < power.nodes->len; i++) {
        BlockDriverState *bs = g_ptr_array_index(power.nodes, i);
        if (subset == 0) {
            pl_cache_clear(bs->opaque);
        } else {
            PersistCo p = { bs, keep };
            co_run_sync(pl_persist_entry, &p);
        }
    }
    if (vfs.inodes) {
        if (subset == 1) {
            /* Everything: the real files are already the process's view. */
        } else {
            vfs_crash(keep);
        }
    }
    if (keep) {
        g_rand_free(keep);
    }
    power.dead = true;
}

/* After the software closed what it had open: the power is back, real
 * I/O again, for reopening and checking. */
static inline void power_reset(void)
{
    durable_io_set_ops(NULL);
    vfs_clear();
    power.dead = false;
    power.fail_at = 0;
    power.events = 0;
}

/* ---- sweeps and counts ---- */

typedef struct PowerStats {
    uint64_t crash_points;
    uint64_t subsets;
    uint64_t failures;
} PowerStats;

static PowerStats power_stats;
static char power_where[256];   /* the run being checked, for messages */

/* A failed check: printed, counted; the sweep goes on.  Returns false. */
static inline bool power_failf(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static inline bool power_failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    printf("# FAIL %s: %s\n", power_where, msg);
    fflush(stdout);
    power_stats.failures++;
    return false;
}

/* bdrv_check of an open node: no corruption (leaks allowed). */
static inline bool power_check_node(BlockDriverState *bs, const char *what)
{
    BdrvCheckResult res = { .log = g_string_new(NULL) };
    int ret = bdrv_check(bs, &res, 0);
    bool ok = ret >= 0 && !res.corruptions && !res.check_errors;
    if (!ok) {
        power_failf("bdrv_check of %s: ret %d, %d corruptions, %d check "
                    "errors:\n%s", what, ret, res.corruptions,
                    res.check_errors, res.log->str);
    }
    bdrv_check_result_clear(&res);
    return ok;
}

/* The real `qemu-img check` of a closed image: no corruption (leaks
 * allowed). */
static inline bool power_qemu_check(const char *path)
{
    char *argv[] = { "qemu-img", "check", "-U", "--output=json",
                     (char *)path, NULL };
    g_autofree char *out = NULL, *err = NULL;
    int status = run_tool(argv, &out, &err);
    json_t *j = json_loads(out, 0, NULL);
    bool ok = j && status != 1 && status != 2 && status != 63 &&
              !json_integer_value(json_object_get(j, "corruptions")) &&
              !json_integer_value(json_object_get(j, "check-errors"));
    json_decref(j);
    if (!ok) {
        power_failf("qemu-img check %s: status %d\n%s%s", path, status, out,
                    err);
    }
    return ok;
}

/* The guest's view through blk is m. */
static inline bool power_check_model(BlockBackend *blk, const Model *m,
                                     const char *what)
{
    if (blk_getlength(blk) != (int64_t)m->size) {
        return power_failf("%s: length %" G_GINT64_FORMAT ", expected %"
                           G_GUINT64_FORMAT, what, blk_getlength(blk),
                           m->size);
    }
    g_autofree uint8_t *buf = g_malloc(m->size);
    if (blk_pread(blk, 0, m->size, buf) < 0) {
        return power_failf("%s: read failed", what);
    }
    for (uint64_t i = 0; i < m->size; i++) {
        if (buf[i] != m->data[i]) {
            return power_failf("%s: byte at guest offset %" G_GUINT64_FORMAT
                               " is %#x, expected %#x", what, i, buf[i],
                               m->data[i]);
        }
    }
    return true;
}

/* The base seed of the random subsets: XBLK_SEED or a fresh one, printed
 * once. */
static inline uint64_t power_seed(void)
{
    static uint64_t seed;
    static bool have;
    if (!have) {
        const char *env = g_getenv("XBLK_SEED");
        seed = env ? g_ascii_strtoull(env, NULL, 10)
                   : (uint64_t)g_random_int() << 16 ^ g_random_int();
        printf("# powerloss seed %" G_GUINT64_FORMAT " (XBLK_SEED=%"
               G_GUINT64_FORMAT " to replay)\n", seed, seed);
        have = true;
    }
    return seed;
}

/* Random subsets tried per crash point besides none and all. */
static inline unsigned power_random_subsets(unsigned normal, unsigned lng)
{
    const char *l = g_getenv("XBLK_LONG");
    return l && *l && strcmp(l, "0") ? lng : normal;
}

/* The subset value (for power_cut) of random subset k at crash point n of
 * the case named name: >1, derived from the base seed. */
static inline uint64_t power_subset_seed(const char *name, uint64_t n,
                                         unsigned k)
{
    uint64_t x = power_seed() ^ g_str_hash(name) * 0x9e3779b97f4a7c15ULL;
    x ^= (n + 1) * 0xbf58476d1ce4e5b9ULL + k * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x < 2 ? x + 2 : x;
}

/* One run of a case: power fails at event fail_at (0: never) and subset
 * decides what survives; returns the events the operation issued (with
 * fail_at 0) or anything (otherwise). */
typedef uint64_t PowerRunFn(const void *c, uint64_t fail_at,
                            uint64_t subset);

/* Runs c once to count its events, then fails the power at each of them
 * with none, all and `randoms` random subsets surviving. */
static inline void power_sweep(const char *name, const void *c,
                               PowerRunFn *run, unsigned randoms)
{
    PowerStats before = power_stats;
    snprintf(power_where, sizeof(power_where), "%s without a failure",
             name);
    uint64_t n_events = run(c, 0, 0);
    g_assert_cmpuint(n_events, >, 0);
    /* n_events + 1: the power fails just after the operation returned,
     * which must then have made its result durable. */
    for (uint64_t n = 1; n <= n_events + 1; n++) {
        power_stats.crash_points++;
        for (unsigned k = 0; k < 2 + randoms; k++) {
            uint64_t subset = k < 2 ? k : power_subset_seed(name, n, k);
            snprintf(power_where, sizeof(power_where),
                     "%s, power fails at event %" G_GUINT64_FORMAT "/%"
                     G_GUINT64_FORMAT "%s, subset %" G_GUINT64_FORMAT, name,
                     n, n_events, n > n_events ? " (after it)" : "", subset);
            run(c, n, subset);
            power_stats.subsets++;
        }
    }
    printf("# %s: %" G_GUINT64_FORMAT " events, %" G_GUINT64_FORMAT
           " crash points, %" G_GUINT64_FORMAT " subsets tried, %"
           G_GUINT64_FORMAT " failures\n", name, n_events,
           power_stats.crash_points - before.crash_points,
           power_stats.subsets - before.subsets,
           power_stats.failures - before.failures);
    fflush(stdout);
    g_assert_cmpuint(power_stats.failures, ==, before.failures);
}

/* The totals, at the end of a test program; fails it on any failure. */
static inline void power_report(const char *prog)
{
    printf("# %s totals: %" G_GUINT64_FORMAT " crash points, %"
           G_GUINT64_FORMAT " subsets tried, %" G_GUINT64_FORMAT
           " failures\n", prog, power_stats.crash_points, power_stats.subsets,
           power_stats.failures);
    fflush(stdout);
}

#endif
