/*
 * xblk-disk.h - disks: images opened by -blockdev options, asynchronous
 * reads, writes and flushes, drain.  Include <xblk/xblk.h>, not this
 * file.
 *
 * A disk is a node graph opened from options in the syntax of QEMU's
 * -blockdev (key=value pairs or a JSON object), e.g.
 *     "driver=qcow2,node-name=hd0,file.driver=file,file.filename=hd.qcow2"
 * Its name for other calls (snapshots, the monitor) is the node-name,
 * which the options must give.
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

#ifdef __cplusplus
}
#endif

#endif
