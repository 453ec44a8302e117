/*
 * ram-restore.h - loading guest RAM from a save state without copying it
 * inside the pause.
 *
 * Loading a state must stop the guest for at most a few milliseconds,
 * but decoding 64 MiB of RAM chunks takes tens of milliseconds and even
 * a memcpy of it most of ten.  So the load is split in two:
 *
 *   prepare   while the guest still runs, on a worker thread: decodes
 *             every RAM chunk of the stream into a new private anonymous
 *             mapping of exactly the RAM's size ("the image").  Zero
 *             pages are not written, so they stay unpopulated.
 *   commit    inside the pause: moves the image onto the guest RAM's
 *             address with mremap(), page tables and all, so the address
 *             Unicorn holds (uc_mem_map_ptr) stays the same.  Nothing is
 *             copied; at 64 MiB it costs ~50 us, against ~12 ms for a
 *             memcpy (figures in ram-restore.c).
 *   free      after the resume: unmaps what is left.  After a commit that
 *             is the guest's *old* RAM, which commit moved aside instead
 *             of unmapping (freeing 64 MiB of pages costs 3-6 ms, too much
 *             for the pause): call it off the main loop if you can.
 *
 * After a commit the region [ram, ram + ram_size) is one private
 * anonymous read-write mapping with MAP_NORESERVE, holding exactly the
 * stream's RAM; its zero pages are unpopulated.  The vCPU's translated
 * code and TLB must then be flushed by the caller (this module does not
 * know Unicorn).  A RamSnapshot begun afterwards works as on any RAM.
 *
 * Threads: prepare on any thread (it uses the reader, which must not be
 * used elsewhere meanwhile); commit on the thread holding the pause;
 * free and get_stats on any thread; never two calls on one RamRestore at
 * once.  No global state.  Callers: the save-state load (hw/xbox/ through
 * migration/), tests.
 */
#ifndef XBLK_MIGRATION_RAM_RESTORE_H
#define XBLK_MIGRATION_RAM_RESTORE_H

#include "migration/savestream.h"
#include <glib.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct RamRestore RamRestore;

/* After each chunk: bytes of guest RAM done out of total.  On the
 * preparing thread. */
typedef void RamRestoreProgressFn(void *opaque, uint64_t done,
                                  uint64_t total);

typedef struct RamRestoreOptions {
    RamRestoreProgressFn *progress;     /* or NULL */
    void *progress_opaque;
    /* Polled before each chunk; once true, prepare fails with "cancelled"
     * and leaves nothing behind.  Or NULL. */
    const atomic_bool *cancel;
    /*
     * MADV_HUGEPAGE on the image, so the guest RAM becomes a THP region
     * after the commit.  Faster to prepare and to free, but a 2 MiB page
     * with one non-zero 4 KiB page in it is resident as a whole, and the
     * RAM's flags then differ from a plain mmap (VmFlags "hg").  Off:
     * 4 KiB pages, zero pages not resident, flags as the machine's own
     * mapping.
     */
    bool huge_pages;
} RamRestoreOptions;

typedef struct RamRestoreStats {
    uint64_t ram_size;
    uint64_t pages;             /* 4 KiB pages of guest RAM */
    uint64_t zero_pages;        /* of those, not stored: left unpopulated */
    uint64_t chunks;
    bool huge_pages;            /* MADV_HUGEPAGE asked for and accepted */
    uint64_t decode_ns;         /* inside ram_restore_prepare() */
    uint64_t commit_ns;         /* inside a successful ram_restore_commit() */
    uint64_t check_ns;          /* of which: checking the target mapping */
    uint64_t move_ns;           /* of which: the two mremap() calls */
    bool maps_scanned;          /* the check read /proc/self/maps (no
                                 * PROCMAP_QUERY: Linux < 6.11) */
    bool committed;
} RamRestoreStats;

/*
 * Any thread: decodes every RAM chunk of r into a new mapping of
 * ram_size bytes (page aligned), copying only the pages the stream
 * stored.  Refuses (NULL, *errp set, nothing left mapped) a stream
 * without a RAM section or whose RAM size differs from ram_size, a chunk
 * the reader refuses (checksum, zstd, lengths) or that lies outside the
 * RAM or leaves a gap, a ram_size that is not a multiple of the host
 * page size, and a cancel.  Also reserves (PROT_NONE, no memory) the
 * address range commit parks the old RAM in, so that commit never has
 * to allocate.  opts may be NULL.  Guest RAM is not touched.
 */
RamRestore *ram_restore_prepare(XssReader *r, uint64_t ram_size,
                                const RamRestoreOptions *opts,
                                GError **errp);

/*
 * Inside the pause (nothing reads or writes [ram, ram + ram_size) during
 * the call, no other thread begins a RamSnapshot): replaces the guest
 * RAM at ram with the prepared image, keeping the address.  ram must be
 * page aligned and lie in one private, read-write, anonymous mapping
 * (checked: with PROCMAP_QUERY in a few microseconds from Linux 6.11,
 * else by reading /proc/self/maps, ~1 us per mapping below ram).  Cost
 * of the move: O(page-table pages) when ram and the image have the same
 * offset modulo 2 MiB (the image is 2 MiB aligned, as the kernel places
 * 64 MiB mappings), O(resident pages) otherwise; no page is copied or
 * freed.
 *
 * Refuses, with ram and rr unchanged (commit may be retried): a
 * misaligned or unsuitable ram, a RamSnapshot active anywhere
 * (ram_snapshot_any_active(): ram-snapshot.h cannot tell which region,
 * and swapping pages under a capture would corrupt it; let the capture
 * finish or end it first), an rr already committed.  If the kernel
 * refuses a move (needs Linux 5.7 for MREMAP_DONTUNMAP), ram is left
 * unchanged too, but rr can then only be freed.  Should the kernel fail
 * to move the old RAM back after a failed move in, the process aborts:
 * guest RAM would be gone.
 *
 * On success ram holds the stream's RAM, and rr holds the old RAM until
 * ram_restore_free().
 */
bool ram_restore_commit(RamRestore *rr, void *ram, GError **errp);

/*
 * The other way in, for RAM that commit cannot move (several regions, or
 * a target that is no anonymous mapping of its own): copies len bytes at
 * offset of the prepared image to dst, inside the pause.  Refused when
 * the image is gone (committed) or the range leaves it.
 */
bool ram_restore_copy(RamRestore *rr, uint64_t offset, void *dst,
                      uint64_t len, GError **errp);

void ram_restore_get_stats(const RamRestore *rr, RamRestoreStats *out);

/*
 * Unmaps whatever rr still holds: the image if not committed, the old
 * RAM if committed (O(its resident pages): outside the pause).  rr may
 * be NULL.
 */
void ram_restore_free(RamRestore *rr);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(RamRestore, ram_restore_free)

#endif
