/*
 * ram-snapshot.h - copy-on-write capture of guest RAM for save states.
 *
 * A RamSnapshot freezes the content of one page-aligned RAM mapping at
 * the instant of ram_snapshot_begin() (called inside the pause, vCPU
 * stopped) without copying it: the region is write-protected, and the
 * first write to each page after that saves the page's original content
 * into a copy store first (guest stores through a SIGSEGV handler, host
 * writes through ram_snapshot_before_host_write()).  A streaming thread
 * meanwhile reads every page exactly once, as of the pause, with
 * ram_snapshot_next(), while the guest runs.  migration/ram-snapshot.c's
 * header comment documents the page states and the concurrency protocol.
 *
 * Threads: begin, next and end on the caller's threads (next on one
 * streaming thread at a time; end never concurrently with next);
 * before_host_write on any thread; the handler on whichever thread
 * faults.  Callers: the save-state code (migration/), the machine's RAM
 * helper (hw/xbox/machine.c), tests.
 */
#ifndef XBLK_MIGRATION_RAM_SNAPSHOT_H
#define XBLK_MIGRATION_RAM_SNAPSHOT_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Snapshots active at once (regions must not overlap). */
#define RAM_SNAPSHOT_MAX        4

typedef struct RamSnapshot RamSnapshot;

/* One page of the image, as of ram_snapshot_begin(). */
typedef struct RamSnapshotPage {
    uint64_t offset;            /* byte offset in the region */
    /* page_size bytes, or NULL when zero is set; valid until the next
     * ram_snapshot_next() or ram_snapshot_end() on this snapshot */
    const void *data;
    bool zero;                  /* every byte of the page was zero */
    bool from_copy;             /* written since the pause: came from the
                                 * copy store, not from RAM */
} RamSnapshotPage;

typedef struct RamSnapshotStats {
    uint64_t page_size;
    uint64_t pages;             /* pages in the region */
    uint64_t pages_streamed;    /* yielded by ram_snapshot_next() */
    uint64_t zero_pages;        /* of those, reported as zero */
    uint64_t copied_by_fault;   /* originals saved by the SIGSEGV handler */
    uint64_t copied_by_host;    /* ... by ram_snapshot_before_host_write() */
    uint64_t copied_zero;       /* of those, all zero: nothing stored */
    uint64_t read_races;        /* the reader's copy of a page was dropped
                                 * because a writer claimed it meanwhile */
    uint64_t peak_copy_bytes;   /* copy-store memory in use at most at once */
    uint64_t begin_ns;          /* spent inside ram_snapshot_begin() */
    uint64_t protect_ns;        /* from write-protection until the whole
                                 * region was writable again */
    bool complete;              /* every page was streamed */
} RamSnapshotStats;

/*
 * Installs the SIGSEGV handler (chaining to the one found) once per
 * process; ram_snapshot_begin() calls it too.  Call it early (at machine
 * start) to keep its one-off cost out of the first pause.
 */
bool ram_snapshot_init(GError **errp);

/*
 * Inside the pause (nothing writes to [ram, ram + size) during the
 * call): write-protects the region and returns the snapshot, whose image
 * is the region's content now.  ram and size must be page aligned.  Cost:
 * one mprotect plus O(1) set-up (mappings for the copy store and page
 * states are reserved, not touched; a few microseconds).  The mprotect
 * is the kernel write-protecting one page-table entry per resident page:
 * ~0.4-1.5 ms for 64 MiB of resident 4 KiB pages here, ~5-10 us where
 * RAM is on transparent huge pages.  Errors: alignment, an overlapping
 * active snapshot, RAM_SNAPSHOT_MAX reached, address space or the
 * kernel's mapping limit, the handler cannot be installed.
 */
RamSnapshot *ram_snapshot_begin(void *ram, size_t size, GError **errp);

/*
 * To call before any write by host code into guest RAM (DMA bounce copy,
 * GPU drawing, the loader, interrupt frames): for every page of
 * [host_addr, host_addr + len) that a snapshot still protects, saves its
 * original and makes it writable, exactly as the fault handler does.
 * The range may leave the region (only the overlap counts).  s NULL:
 * every active snapshot overlapping the range (the machine's form); the
 * fast path when none is active is one atomic load.  A pointer made
 * writable this way stays writable until the next ram_snapshot_begin(),
 * so the write must happen before the next pause.  Any thread.
 */
void ram_snapshot_before_host_write(RamSnapshot *s, void *host_addr,
                                    size_t len);

/* True while any snapshot is active (one atomic load). */
bool ram_snapshot_any_active(void);

/*
 * Streaming thread, while the guest runs: the next page of the image, in
 * ascending order, each exactly once; false when all were yielded.
 * Never blocks for longer than a concurrent writer needs to copy one
 * page.  Pages already yielded are released: copies freed, protection
 * lifted (per 2 MiB chunk).
 */
bool ram_snapshot_next(RamSnapshot *s, RamSnapshotPage *page);

size_t ram_snapshot_page_size(const RamSnapshot *s);
/* Pages yielded so far, out of stats.pages. */
uint64_t ram_snapshot_progress(const RamSnapshot *s);
/* A consistent-enough reading of the counters while it runs. */
void ram_snapshot_get_stats(const RamSnapshot *s, RamSnapshotStats *out);

/*
 * When streaming is done, or to cancel it at any point (guest running or
 * not): lifts any protection left, waits for handlers still using the
 * snapshot, frees everything.  stats (may be NULL) gets the final
 * counters.  Not concurrently with ram_snapshot_next() on s.
 */
void ram_snapshot_end(RamSnapshot *s, RamSnapshotStats *stats);

#endif
