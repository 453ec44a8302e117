/*
 * txn-journal.h - internal snapshots over several images, whole or absent
 * even across a kill between two images' write-outs (DESIGN rules 2, 3).
 *
 * A transaction that creates internal snapshots on two or more image
 * files records, durably and before the first write-out, which snapshot
 * goes on which image: a small JSON record beside every image, named
 * ".IMAGE.xblk-txn" (IMAGE: the image file's name) in the image's folder,
 * each listing all of them.  Once every write-out succeeded (or the
 * transaction was rolled back) the records go.  A record found when an
 * image is opened read-write means the transaction was interrupted:
 * txn_journal_recover() looks at every image it names and either keeps
 * the snapshot (every image has it: only the records' removal was cut
 * short) or deletes it from the images that have it, then removes the
 * records.
 *
 * A delete of snapshots on two or more image files (a save state's or a
 * transaction's, migration/savestate.c) is recorded the same way, marked
 * "op": "delete" and naming each snapshot exactly (name, id, date,
 * machine clock): recovery finishes it, deleting each recorded snapshot
 * that is still there.  Images it names that this process has open are used as they
 * are; the others are opened for the moment (a record beside an image
 * another process holds stays, with a warning, until a later open).
 *
 * Main loop only (the block layer's thread).
 */
#ifndef XBLK_BLOCK_TXN_JOURNAL_H
#define XBLK_BLOCK_TXN_JOURNAL_H

#include "block/block.h"
#include "block/snapshot.h"
#include <glib.h>

typedef struct TxnJournal TxnJournal;

/* Records that snapshot names[i] is being created on the image of bs[i]
 * (i < n).  Fewer than two distinct image files: nothing to record,
 * NULL without an error.  NULL with *errp set if a record could not be
 * made durable (the transaction must not go on). */
TxnJournal *txn_journal_begin(BlockDriverState *const *bs,
                              const char *const *names, guint n,
                              GError **errp);
/* Records that snapshots sn[i] (matched by name, id, date and machine
 * clock) are being deleted from the image of bs[i] (i < n), durably and
 * before the first delete: recovery then FINISHES the delete (removes
 * each recorded snapshot still present; a newer snapshot that reuses a
 * name is never matched), a delete that had started is never undone.
 * Fewer than two distinct image files: NULL without an error.  NULL with
 * *errp set if a record could not be made durable, or if a record of an
 * unresolved transaction is still beside one of the images (the delete
 * must not go on). */
TxnJournal *txn_journal_begin_delete(BlockDriverState *const *bs,
                                     const BdrvSnapshotInfo *sn, guint n,
                                     GError **errp);
/* Removes the records (durably) and frees j; NULL is a no-op. */
void txn_journal_end(TxnJournal *j);
/* Frees j but leaves its records for recovery at the next open (a
 * delete that failed half-way); NULL is a no-op. */
void txn_journal_keep(TxnJournal *j);

/* Resolves an interrupted transaction recorded beside bs's image, if
 * any (see above).  Returns the number of snapshots deleted (0: none, or
 * kept), or -1 with *errp set when it could not be resolved (the records
 * then stay). */
int txn_journal_recover(BlockDriverState *bs, GError **errp);

#endif
