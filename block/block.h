/*
 * block.h - the public face of the block layer: the node graph of
 * BlockDriverStates, opening and creating images, requests, drain.
 *
 * Graph: each node (BlockDriverState, "bs") has a driver, a node name that
 * is unique among all nodes, and up to two children: `file` (the protocol
 * or data node below a format) and `backing` (the image underneath).
 * Nodes are reference counted; a child edge holds one reference.
 *
 * Requests are coroutine_fn and return 0 or a negative errno.  Every
 * request counts in the node's in_flight while it runs.  Synchronous
 * wrappers (bdrv_pread, ...) may be called outside coroutines: they poll
 * the main loop until the request is done.
 *
 * Drain: bdrv_drained_begin(bs) quiesces bs and its subtree: requests
 * already running finish, new ones from backends wait until the matching
 * bdrv_drained_end().  Sections nest.
 */
#ifndef XBLK_BLOCK_BLOCK_H
#define XBLK_BLOCK_BLOCK_H

#include "util/coroutine.h"
#include "util/error.h"
#include "util/iov.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct BlockDriver BlockDriver;
typedef struct BlockDriverState BlockDriverState;
typedef struct BdrvChild BdrvChild;

/* Open flags */
enum {
    BDRV_O_RDWR       = 1 << 0,
    BDRV_O_NOCACHE    = 1 << 1,   /* cache.direct: O_DIRECT */
    BDRV_O_NO_FLUSH   = 1 << 2,   /* cache.no-flush */
    BDRV_O_UNMAP      = 1 << 3,   /* discard=unmap */
    BDRV_O_NO_BACKING = 1 << 4,   /* do not open the backing chain */
    BDRV_O_CHECK      = 1 << 5,   /* opened for check/repair: allow corrupt */
    BDRV_O_NO_IO      = 1 << 6,   /* metadata only (qemu-img info -U-like) */
    BDRV_O_FORCE_SHARE = 1 << 7,
};

/* Request flags */
typedef enum {
    BDRV_REQ_MAY_UNMAP   = 1 << 0,  /* write-zeroes may deallocate */
    BDRV_REQ_NO_FALLBACK = 1 << 1,  /* fail with -ENOTSUP instead of writing zeroes */
    BDRV_REQ_FUA         = 1 << 2,
    BDRV_REQ_WRITE_COMPRESSED = 1 << 3,
    BDRV_REQ_ZERO_WRITE  = 1 << 4,  /* internal: the payload is all zero */
} BdrvRequestFlags;

/* Block status flags */
enum {
    BDRV_BLOCK_DATA         = 1 << 0,
    BDRV_BLOCK_ZERO         = 1 << 1,
    BDRV_BLOCK_OFFSET_VALID = 1 << 2,
    BDRV_BLOCK_ALLOCATED    = 1 << 3,
    BDRV_BLOCK_COMPRESSED   = 1 << 4,
    BDRV_BLOCK_EOF          = 1 << 5,
};

typedef enum {
    PREALLOC_MODE_OFF,
    PREALLOC_MODE_METADATA,
    PREALLOC_MODE_FALLOC,
    PREALLOC_MODE_FULL,
} PreallocMode;

bool prealloc_mode_parse(const char *s, PreallocMode *out);
const char *prealloc_mode_name(PreallocMode m);

/*
 * Options: a flat table of string keys and values, dotted for children
 * ("file.filename", "backing.driver"), as QEMU flattens blockdev options.
 * A value of "" for "backing" means backing: null.
 */
typedef GHashTable BlockOpts;
BlockOpts *bopts_new(void);
void bopts_set(BlockOpts *o, const char *key, const char *value);
const char *bopts_get(BlockOpts *o, const char *key);
/* Removes key; returns its value (caller frees) or NULL. */
char *bopts_take(BlockOpts *o, const char *key);
/* Returns "yes"/"no" style booleans; sets errp on a bad value. */
bool bopts_take_bool(BlockOpts *o, const char *key, bool def, GError **errp);
/* Moves keys under "prefix." into a new table with the prefix removed. */
BlockOpts *bopts_extract(BlockOpts *o, const char *prefix);
bool bopts_has_prefix(BlockOpts *o, const char *prefix);
/* Parses "a=b,c=d" (",," escapes a comma) into o. */
bool bopts_parse(BlockOpts *o, const char *str, GError **errp);
void bopts_free(BlockOpts *o);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlockOpts, bopts_free)

/* ---- graph ---- */

BlockDriverState *bdrv_open(const char *filename, BlockOpts *opts, int flags,
                            GError **errp);
void bdrv_ref(BlockDriverState *bs);
void bdrv_unref(BlockDriverState *bs);
BlockDriverState *bdrv_find_node(const char *node_name);
/* Iterates over all nodes: start with NULL. */
BlockDriverState *bdrv_next_node(BlockDriverState *bs);

const char *bdrv_get_node_name(const BlockDriverState *bs);
const char *bdrv_get_format_name(const BlockDriverState *bs);
const char *bdrv_get_filename(const BlockDriverState *bs);
BlockDriverState *bdrv_file_bs(const BlockDriverState *bs);
BlockDriverState *bdrv_backing_bs(const BlockDriverState *bs);
bool bdrv_is_read_only(const BlockDriverState *bs);
int bdrv_get_flags(const BlockDriverState *bs);
/* Replaces bs's backing child (NULL removes it).  Takes a new reference. */
void bdrv_set_backing(BlockDriverState *bs, BlockDriverState *backing);
/*
 * Graph switch for external snapshots; in memory only, so callable inside
 * a drained section over both nodes (it neither yields nor fails).
 * bdrv_replace_node() moves every parent edge and every BlockBackend of
 * `from` to `to`; references owned by the monitor stay where they are, as
 * in QEMU.  bdrv_append() puts `overlay` (without backing) in the place
 * of `top` and makes `top` its backing node; bdrv_unappend() is its exact
 * inverse.  Callers hold a reference to both nodes throughout.
 */
void bdrv_replace_node(BlockDriverState *from, BlockDriverState *to);
void bdrv_append(BlockDriverState *overlay, BlockDriverState *top);
void bdrv_unappend(BlockDriverState *overlay, BlockDriverState *top);
/* Whether bs is in the subtree below (or equal to) root. */
bool bdrv_is_in_subtree(BlockDriverState *root, BlockDriverState *bs);
/* Whether name is a valid user node name (letter first, [A-Za-z0-9-_.+]). */
bool bdrv_node_name_valid(const char *name);
/* The backing file name recorded in the image header, if any. */
const char *bdrv_get_backing_filename(const BlockDriverState *bs);
const char *bdrv_get_backing_format(const BlockDriverState *bs);
/* Resolves a backing file name relative to bs's file name. */
char *bdrv_resolve_backing_path(const BlockDriverState *bs,
                                const char *backing);

/* ---- requests ---- */

int coroutine_fn bdrv_co_preadv(BlockDriverState *bs, int64_t offset,
                                int64_t bytes, IOVector *qiov,
                                BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwritev(BlockDriverState *bs, int64_t offset,
                                 int64_t bytes, IOVector *qiov,
                                 BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pread(BlockDriverState *bs, int64_t offset,
                               int64_t bytes, void *buf,
                               BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwrite(BlockDriverState *bs, int64_t offset,
                                int64_t bytes, const void *buf,
                                BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwrite_zeroes(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                  int64_t bytes);
int coroutine_fn bdrv_co_flush(BlockDriverState *bs);
/*
 * Status of [offset, offset+bytes): returns BDRV_BLOCK_* flags (or a
 * negative errno) and sets *pnum to the length that shares them.  *map is
 * the offset in *file when OFFSET_VALID is set.
 */
int coroutine_fn bdrv_co_block_status(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum,
                                      int64_t *map, BlockDriverState **file);
int coroutine_fn bdrv_co_truncate(BlockDriverState *bs, int64_t offset,
                                  bool exact, PreallocMode prealloc,
                                  GError **errp);
int64_t bdrv_getlength(BlockDriverState *bs);
/* Bytes the image occupies on its host file system (st_blocks). */
int64_t bdrv_get_allocated_file_size(BlockDriverState *bs);

/* Synchronous wrappers: usable in and out of coroutines. */
int bdrv_pread(BlockDriverState *bs, int64_t offset, int64_t bytes, void *buf);
int bdrv_pwrite(BlockDriverState *bs, int64_t offset, int64_t bytes,
                const void *buf);
int bdrv_pwrite_zeroes(BlockDriverState *bs, int64_t offset, int64_t bytes,
                       BdrvRequestFlags flags);
int bdrv_pdiscard(BlockDriverState *bs, int64_t offset, int64_t bytes);
int bdrv_flush(BlockDriverState *bs);
int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockDriverState **file);
/* Status through the backing chain: *depth is how many layers down. */
int bdrv_block_status_above(BlockDriverState *bs, int64_t offset,
                            int64_t bytes, int64_t *pnum, int64_t *map,
                            BlockDriverState **file, int *depth);
int bdrv_truncate(BlockDriverState *bs, int64_t offset, bool exact,
                  PreallocMode prealloc, GError **errp);

/* Deallocates everything in bs (qemu-img commit's emptying). */
int bdrv_make_empty(BlockDriverState *bs, GError **errp);

/* ---- drain ---- */

void bdrv_drained_begin(BlockDriverState *bs);
void bdrv_drained_end(BlockDriverState *bs);
unsigned bdrv_in_flight(const BlockDriverState *bs);
bool bdrv_is_quiesced(const BlockDriverState *bs);

/* ---- creation and information ---- */

/* Creates an image with the named format driver; opts uses -o names. */
int bdrv_create(const char *format, const char *filename, BlockOpts *opts,
                GError **errp);
/* Format probing on a file: "qcow2" or "raw". */
const char *bdrv_probe_format(const char *filename, GError **errp);
BlockDriver *bdrv_find_format(const char *name);
/* Calls fn for each registered format name. */
void bdrv_iterate_format(void (*fn)(const char *name, void *opaque),
                         void *opaque);

#endif
