/*
 * xblk-disk.h - disks: images opened by -blockdev options, asynchronous
 * reads, writes and flushes, drain, dirty bitmaps.  Include
 * <xblk/xblk.h>, not this file.
 *
 * A disk is a node graph opened from options in the syntax of QEMU's
 * -blockdev (key=value pairs or a JSON object), e.g.
 *     "driver=qcow2,node-name=hd0,file.driver=file,file.filename=hd.qcow2"
 * Its name for other calls (snapshots, the monitor) is the node-name,
 * which the options must give.
 *
 * A disk may carry dirty bitmaps (below): named records of the bytes
 * written since a point, kept in a qcow2 image across restarts.
 *
 * Requests complete through an XblkIoDone callback on the loop thread,
 * never inside the call that submitted them; the buffer must stay valid
 * and untouched until then.  Requests of one disk may complete in any
 * order; a flush covers every write completed before it was submitted.
 * Threads: as the engine (xblk-engine.h): the loop thread only.
 */
#ifndef XBLK_DISK_H
#define XBLK_DISK_H

#include "xblk-engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct XblkDisk XblkDisk;

/* ret: 0, or a negative errno (-EIO, -ENOSPC, -EINVAL, ...). */
typedef void XblkIoDone(void *opaque, int ret);

XBLK_API XblkDisk *xblk_disk_open(XblkEngine *engine, const char *options,
                                  XblkError **err);
/* Waits for the disk's requests, flushes and closes it.  NULL accepted. */
XBLK_API void xblk_disk_close(XblkDisk *disk);

/* The disk's name: its node-name (a host built into the tree may name
 * its disks otherwise); valid while the disk is open. */
XBLK_API const char *xblk_disk_name(const XblkDisk *disk);
/* The guest-visible size in bytes, or -1 with *err set. */
XBLK_API int64_t xblk_disk_length(XblkDisk *disk, XblkError **err);
XBLK_API bool xblk_disk_read_only(const XblkDisk *disk);

/* Submit; false (nothing submitted, done never called) with *err set for
 * a bad argument: NULL disk or buffer, a range past the end, a write to
 * a read-only disk. */
XBLK_API bool xblk_disk_read(XblkDisk *disk, uint64_t offset, void *buf,
                             size_t bytes, XblkIoDone *done, void *opaque,
                             XblkError **err);
XBLK_API bool xblk_disk_write(XblkDisk *disk, uint64_t offset,
                              const void *buf, size_t bytes,
                              XblkIoDone *done, void *opaque,
                              XblkError **err);
XBLK_API bool xblk_disk_flush(XblkDisk *disk, XblkIoDone *done,
                              void *opaque, XblkError **err);
/* Runs the loop until every request of the disk has completed (their
 * callbacks included). */
XBLK_API void xblk_disk_drain(XblkDisk *disk);

/* The file of the disk's medium (its active layer: the top overlay after
 * an external snapshot), as the options named it; NULL for NULL or a
 * disk without a medium (an empty drive of a host built into the tree).
 * Valid until the medium changes or the disk closes. */
XBLK_API const char *xblk_disk_filename(XblkDisk *disk);

/*
 * Dirty bitmaps: named records, on the disk's medium (its active layer),
 * of which bytes were written since the bitmap was added or last
 * cleared - a host's "what changed since" (a save state's rollback, an
 * incremental copy).  Every write, write-zeroes or discard of the disk
 * marks every recording bitmap, at the bitmap's granularity (the image's
 * cluster size clamped to 4..64 KiB; 64 KiB for an image without
 * clusters), so a count is rounded up to whole granules.  The same bitmaps are QMP's block-dirty-bitmap-* (node: the
 * medium's node-name).
 *
 * A persistent bitmap is stored in the image when the disk (or its
 * medium) closes cleanly, and is back, with its bits, when the image is
 * opened again.  After a crash it comes back "inconsistent": its count
 * is refused (XBLK_ERROR_FAILED) and only xblk_disk_bitmap_remove()
 * works on it.  Only qcow2 (version 3) images store bitmaps; a bitmap
 * that is not persistent lives in memory until it is removed or the
 * disk closes.
 *
 * None of these calls does I/O: they return at once.  Names are 1 to
 * 1023 bytes.  Errors common to all of them: XBLK_ERROR_INVALID for a
 * NULL disk, a NULL or empty name, a disk without a medium;
 * XBLK_ERROR_NOT_FOUND for a name the medium has no bitmap of;
 * XBLK_ERROR_BUSY for a bitmap an operation (a QMP backup job) holds.
 * Threads: the loop thread only, as the other disk calls.
 */

/* Adds a bitmap, empty and recording.  persistent: stored in the image;
 * an image that cannot store it (raw, qcow2 version 2, a full bitmap
 * directory) refuses with XBLK_ERROR_UNSUPPORTED and adds nothing - the
 * host may add it again with persistent false, to last this session.
 * XBLK_ERROR_EXISTS if the name is taken; XBLK_ERROR_INVALID for a name
 * that is too long, or persistent on a read-only disk. */
XBLK_API bool xblk_disk_bitmap_add(XblkDisk *disk, const char *name,
                                   bool persistent, XblkError **err);
/* Removes the bitmap from memory now, and a persistent one from the
 * image when it next closes cleanly.  An inconsistent bitmap may be
 * removed; one of a read-only image may not (XBLK_ERROR_INVALID). */
XBLK_API bool xblk_disk_bitmap_remove(XblkDisk *disk, const char *name,
                                      XblkError **err);
/* Clears every bit: the bitmap counts from now.  XBLK_ERROR_FAILED for an
 * inconsistent bitmap, XBLK_ERROR_INVALID for one of a read-only
 * image. */
XBLK_API bool xblk_disk_bitmap_clear(XblkDisk *disk, const char *name,
                                     XblkError **err);
/* Bytes marked dirty (a multiple of the granularity, at most the disk's
 * length), or -1 with *err set: XBLK_ERROR_FAILED for an inconsistent
 * bitmap. */
XBLK_API int64_t xblk_disk_bitmap_dirty_bytes(XblkDisk *disk,
                                              const char *name,
                                              XblkError **err);

/* A copy of the bits of from, as they are now, into a new bitmap to:
 * in memory only and not recording (its count stays as it is), with
 * from's granularity.  With xblk_disk_bitmap_merge() it keeps bits to
 * put back: copy, clear, and merge the copy back if what the clear was
 * for fails.  XBLK_ERROR_EXISTS if to is taken; XBLK_ERROR_FAILED if
 * from is inconsistent. */
XBLK_API bool xblk_disk_bitmap_copy(XblkDisk *disk, const char *from,
                                    const char *to, XblkError **err);
/* into |= from: every bit of from is set in into as well (from is
 * unchanged; either granularity).  XBLK_ERROR_FAILED if either is
 * inconsistent; XBLK_ERROR_INVALID if into is of a read-only image. */
XBLK_API bool xblk_disk_bitmap_merge(XblkDisk *disk, const char *from,
                                     const char *into, XblkError **err);

/* What xblk_disk_bitmap_info() reports. */
typedef struct XblkBitmapInfo {
    size_t size;                /* sizeof(XblkBitmapInfo), set by the
                                 * host */
    bool persistent;            /* stored in the image at its close */
    bool recording;             /* marks the disk's writes */
    bool busy;                  /* an operation holds it */
    bool inconsistent;          /* from an image not closed cleanly: its
                                 * bits cannot be trusted; remove it */
    uint32_t granularity;       /* bytes per bit */
} XblkBitmapInfo;

/* Fills *info for the bitmap; XBLK_ERROR_INVALID for a NULL info or a
 * size too small.  Works on busy and inconsistent bitmaps too. */
XBLK_API bool xblk_disk_bitmap_info(XblkDisk *disk, const char *name,
                                    XblkBitmapInfo *info, XblkError **err);

/* The names of the medium's bitmaps, in no defined order, as a
 * NULL-terminated array (just NULL when it has none) that the host frees
 * with xblk_disk_bitmap_list_free(); NULL with *err set (XBLK_ERROR_INVALID
 * for a NULL disk or a disk without a medium). */
XBLK_API char **xblk_disk_bitmap_list(XblkDisk *disk, XblkError **err);
/* Frees a list and its names; NULL accepted. */
XBLK_API void xblk_disk_bitmap_list_free(char **names);

#ifdef __cplusplus
}
#endif

#endif
