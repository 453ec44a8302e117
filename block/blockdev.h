/*
 * blockdev.h - nodes the user creates by name (-blockdev, blockdev-add)
 * and removes (blockdev-del), as QEMU's blockdev layer does: options come
 * as JSON or "key=value,..." text and are flattened to BlockOpts; the
 * monitor owns one reference to each such root node.
 */
#ifndef XBLK_BLOCK_BLOCKDEV_H
#define XBLK_BLOCK_BLOCKDEV_H

#include "block/block.h"
#include <jansson.h>

/* Flattens {"file": {"filename": "x"}} into file.filename=x; booleans
 * become on/off, null becomes "" (backing: null). */
bool bopts_from_json(BlockOpts *o, const char *prefix, json_t *j,
                     GError **errp);
/* Parses a -blockdev argument: JSON if it starts with '{', else dotted
 * key=value pairs. */
BlockOpts *blockdev_parse_arg(const char *arg, GError **errp);

/* Opens a new named root node; takes opts. */
BlockDriverState *blockdev_add(BlockOpts *opts, GError **errp);
bool blockdev_del(const char *node_name, GError **errp);
bool blockdev_is_monitor_owned(BlockDriverState *bs);
/* Flushes and closes every monitor-owned node (clean shutdown). */
void blockdev_close_all(void);

#endif
