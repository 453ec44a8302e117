/*
 * blkdebug.h - run-time control of the fault-injection filter.
 *
 * Rules can be given as open options (inject.N.op, .nth, .offset, .length,
 * .errno, .once) or added later with blkdebug_add_rule().  A request fails
 * with -errno when it matches a rule: same operation kind, overlapping the
 * byte range (if one is set) and, for counted rules, being the nth match.
 */
#ifndef XBLK_BLOCK_BLKDEBUG_H
#define XBLK_BLOCK_BLKDEBUG_H

#include "block/block.h"

enum {
    BLKDBG_OP_READ    = 1 << 0,
    BLKDBG_OP_WRITE   = 1 << 1,
    BLKDBG_OP_FLUSH   = 1 << 2,
    BLKDBG_OP_DISCARD = 1 << 3,
    BLKDBG_OP_ZERO    = 1 << 4,
    BLKDBG_OP_ANY     = 0x1f,
};

typedef struct BlkdebugRule {
    unsigned ops;          /* BLKDBG_OP_* mask */
    uint64_t nth;          /* 0: every match; n: the nth match (1-based) */
    int64_t offset;        /* range start, or -1 for any offset */
    int64_t length;
    int err;               /* positive errno */
    bool once;             /* fire once; else keep failing after the nth */
} BlkdebugRule;

/* bs must be a blkdebug node.  Returns false if it is not. */
bool blkdebug_add_rule(BlockDriverState *bs, const BlkdebugRule *rule);
void blkdebug_clear_rules(BlockDriverState *bs);
/* Number of requests failed so far by injected errors. */
uint64_t blkdebug_injected(BlockDriverState *bs);

#endif
