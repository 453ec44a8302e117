/*
 * img-common.h - helpers shared by xblk-img and xblk-io: cache mode
 * parsing, opening images as a qemu-img user expects, and the error
 * reporting convention "<prog>: <message>".
 */
#ifndef XBLK_TOOLS_IMG_COMMON_H
#define XBLK_TOOLS_IMG_COMMON_H

#include "block/block-backend.h"
#include "block/block_int.h"
#include <stdbool.h>

/* Maps -t none|writeback|writethrough|unsafe|directsync to open flags
 * and the backend's write-cache setting. */
bool img_parse_cache_mode(const char *mode, int *flags, bool *writethrough);

/* Opens filename as fmt (NULL: probe) with an optional "-o"-style
 * option string; reports "Could not open '<f>': ..." itself. */
BlockBackend *img_open(const char *filename, const char *fmt,
                       const char *opts, int flags, bool writethrough,
                       bool quiet);
/* Parses sizes like "1G", "512", "64k"; false (and reports) on error. */
bool img_parse_size(const char *s, uint64_t *out);

#endif
