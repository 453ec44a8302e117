/*
 * savestate.h - save, load and delete of whole-machine save states for
 * any host: guest RAM, device state and every writable disk captured at
 * one instant (DESIGN "Data flow of a save state"), stored as internal
 * qcow2 snapshots with the .xss stream (docs/savestate.md) in the VM
 * state area of one disk.
 *
 * Owns the coordination only: the stream is savestream.c's, the
 * copy-on-write RAM capture ram-snapshot.c's, the RAM load
 * ram-restore.c's, the snapshots the transaction core's.  What a machine
 * is - its RAM regions, its disks, how its threads stop, how its devices
 * are encoded - comes from the host through SavestateHostOps: the console
 * machine (hw/xbox/machine-savestate.c) and libxblk's public save-state
 * API (api/state.c) are the two hosts.
 *
 * Main loop only; each call returns when it is over (a save when the
 * snapshot is durable and listed on every disk); from a coroutine (a
 * job) the calls yield instead of polling the loop.  One save, load or
 * delete at a time in the process (savestate_busy()).
 */
#ifndef XBLK_MIGRATION_SAVESTATE_H
#define XBLK_MIGRATION_SAVESTATE_H

#include "block/block.h"
#include "migration/ram-restore.h"
#include "migration/savestream.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* Regions of guest RAM at most (RAM_SNAPSHOT_MAX captures at once). */
#define SAVESTATE_RAM_MAX       4

typedef struct SavestateDisk {
    const char *name;           /* the host's name for it (drive, node) */
    BlockDriverState *bs;
    struct BlockBackend *blk;   /* its backend, or NULL: a revert to an
                                 * external snapshot puts a new top here */
} SavestateDisk;

typedef struct SavestateRam {
    void *host;                 /* page aligned */
    uint64_t size;              /* a multiple of the page size */
} SavestateRam;

/* What the pause captured besides the device sections. */
typedef struct SavestateCapture {
    uint64_t frame;             /* the host's frame counter, or 0 */
    int64_t clock_ns;           /* the machine's clock: qemu-img's VM
                                 * CLOCK of every disk's snapshot */
} SavestateCapture;

/*
 * The host.  Every callback gets `opaque`; all run on the main loop but
 * save_page and save_metadata, which run on the save's producer thread
 * while the guest runs again.  Optional ones may be NULL.
 */
typedef struct SavestateHostOps {
    const char *machine_type;   /* in the stream header; checked on load */
    bool ram_huge_pages;        /* load: keep RAM on transparent huge pages */
    /* The RAM regions, in stream order (the stream's RAM is their
     * concatenation); returns how many (<= SAVESTATE_RAM_MAX). */
    guint (*ram_regions)(void *opaque, SavestateRam *out);
    /* Every disk the guest can write, in order (a GArray of
     * SavestateDisk, names and nodes borrowed from the host). */
    GArray *(*disks)(void *opaque);
    /* Optional: refuses a save (a guest that shut down). */
    bool (*can_save)(void *opaque, GError **errp);

    /* The pause contract.  pause_request asks every thread that touches
     * guest RAM or device state to park with no disk request in flight;
     * pause_poll then answers 1 (parked), 0 (not yet) or -1 (*errp set:
     * it never will; the request is over, nothing to resume); resume
     * lets them run again (also to give up a request that timed out).
     * park_ns (optional): when the threads parked, g_get_monotonic_time
     * in ns (default: when pause_poll said so). */
    void (*pause_request)(void *opaque);
    int (*pause_poll)(void *opaque, GError **errp);
    void (*resume)(void *opaque);
    int64_t (*park_ns)(void *opaque);

    /* Paused: every device section into w, and *cap filled. */
    bool (*capture)(void *opaque, XssWriter *w, SavestateCapture *cap,
                    GError **errp);
    /* Optional, producer thread: every page of RAM as of the pause, in
     * ascending stream offset (hashes, a thumbnail's pixels). */
    void (*save_page)(void *opaque, uint64_t offset, const void *page);
    /* Optional, producer thread, after the RAM: the metadata besides the
     * frame (md->frame is set; what the host puts in, the host frees
     * after the save returns - the coordinator clears nothing). */
    void (*save_metadata)(void *opaque, XssMetadata *md);

    /* Load, paused: load_check checks every device section of r against
     * the machine and changes nothing; load then loads RAM (moving rr's
     * prepared image in, ram_restore_commit) and the devices.  A refusal
     * before RAM changed must leave the machine as it was. */
    bool (*load_check)(void *opaque, XssReader *r, GError **errp);
    bool (*load)(void *opaque, XssReader *r, RamRestore *rr,
                 GError **errp);
} SavestateHostOps;

typedef struct SavestateHost {
    const SavestateHostOps *ops;
    void *opaque;
} SavestateHost;

typedef struct SavestateSaveStats {
    bool valid;
    char tag[256];
    int64_t guest_pause_ns;     /* parked .. running again */
    int64_t durable_ns;         /* call .. snapshot durable and listed */
    uint64_t vm_state_size;     /* bytes of the stream (compressed) */
    uint64_t raw_size;          /* the state before compression: the
                                 * stream's other records plus all RAM */
    uint64_t peak_cow_bytes;    /* copy-on-write memory at most at once */
    uint64_t frame;             /* frame at the save instant */
} SavestateSaveStats;

typedef struct SavestateLoadStats {
    bool valid;
    char tag[256];
    int64_t guest_pause_ns;     /* parked .. running again */
    int64_t total_ns;
    uint64_t frame;             /* frame the state was saved at */
} SavestateLoadStats;

/* Progress of a save or load: done out of total (bytes of the stream). */
typedef void SavestateProgressFn(void *opaque, uint64_t done,
                                 uint64_t total);

/* Optional arguments (NULL: every default). */
typedef struct SavestateArgs {
    /* The disk that holds the VM state, by the host's name or node name.
     * NULL: the first writable disk that can hold one (save), the disk
     * whose snapshot has a VM state (load). */
    const char *vmstate;
    /* NULL-terminated disk or node names; NULL: every writable disk.
     * Given, they must be exactly the host's writable disks: a save
     * state covers every disk the guest can write, or it would not be
     * one instant of the machine. */
    char **devices;
    /* Save: a state of the same tag is deleted first (HMP savevm, as
     * QEMU's); otherwise it is refused. */
    bool overwrite;
    SavestateProgressFn *progress;
    /* Polled on the main loop; true stops a save before its state is
     * durable (the partial snapshot is removed) or a load before any
     * change. */
    bool (*cancelled)(void *opaque);
    void *opaque;
} SavestateArgs;

/*
 * Snapshots of any shape (libvirt's domain snapshots, snapshot/): what
 * happens to memory and to each writable disk, all at one instant.
 *
 *   memory NONE       the disks' snapshots alone, in one transaction: its
 *                     drained section is the pause (the vCPU runs on).
 *   memory INTERNAL   the save state above: the VM state goes into the
 *                     internal snapshot `tag` of the vmstate disk; an
 *                     EXTERNAL vmstate disk keeps it in its old top, which
 *                     the new overlay freezes at the same instant.
 *   memory EXTERNAL   the same stream into memory_file (written as
 *                     memory_file.part, fsynced, renamed, folder fsynced).
 *
 * Disks: INTERNAL takes the qcow2 snapshot `tag`, EXTERNAL puts a new
 * qcow2 overlay on top (blockdev-snapshot-sync; the old top is its
 * backing file), SKIP leaves the disk alone (libvirt's no and manual).
 * Everything commits in one pause or nothing does (rules 1-3).
 */
typedef enum SavestateDiskMode {
    SAVESTATE_DISK_SKIP,
    SAVESTATE_DISK_INTERNAL,
    SAVESTATE_DISK_EXTERNAL,
} SavestateDiskMode;

typedef enum SavestateMemory {
    SAVESTATE_MEMORY_NONE,
    SAVESTATE_MEMORY_INTERNAL,
    SAVESTATE_MEMORY_EXTERNAL,
} SavestateMemory;

typedef struct SavestateDiskPlan {
    const char *name;           /* a writable disk, by the host's name */
    SavestateDiskMode mode;
    const char *file;           /* EXTERNAL snapshot: the new overlay (must
                                 * not exist); EXTERNAL revert: the image
                                 * the snapshot froze (the new overlay's
                                 * backing file) */
    const char *overlay;        /* EXTERNAL revert: the new overlay */
} SavestateDiskPlan;

typedef struct SavestatePlan {
    SavestateMemory memory;
    const char *memory_file;    /* EXTERNAL: absolute path */
    /* INTERNAL: the disk whose snapshot holds the VM state; NULL: the
     * first INTERNAL disk of disks, else the first EXTERNAL one. */
    const char *vmstate;
    /* Each writable disk at most once; one not listed is SKIP. */
    const SavestateDiskPlan *disks;
    guint n_disks;
} SavestatePlan;

/* Takes snapshot tag as the plan says.  Refuses a plan that takes
 * nothing, memory INTERNAL without a disk to hold it, a memory file or
 * overlay that exists, a disk that is not writable, a tag that exists on
 * a disk taking an internal snapshot.  The figures go to
 * savestate_last_save_stats() (guest_pause_ns: the drained section for
 * memory NONE). */
bool savestate_snapshot(const SavestateHost *h, const char *tag,
                        const SavestatePlan *plan, const SavestateArgs *args,
                        GError **errp);
/* Brings the machine back to snapshot tag in one pause: INTERNAL disks
 * revert to their snapshot tag (which must be on their active layer),
 * EXTERNAL ones get a new overlay `overlay` over `file`, memory comes
 * from the snapshot tag of the vmstate disk (INTERNAL: its active layer,
 * or for an EXTERNAL disk the frozen image) or from memory_file.  With
 * memory NONE only the disks change: the host must be stopped and reset
 * by the caller.  Everything is read and checked before the pause;
 * refused, nothing changed (new overlays are removed again). */
bool savestate_revert(const SavestateHost *h, const char *tag,
                      const SavestatePlan *plan, const SavestateArgs *args,
                      GError **errp);

/* Refuses a tag that already exists on one of the disks unless
 * overwrite (nothing is changed then), a host without a writable disk
 * that can hold a VM state, what can_save refuses. */
bool savestate_save(const SavestateHost *h, const char *tag,
                    const SavestateArgs *args, GError **errp);
/* Refuses, with the machine and every disk unchanged, a tag missing on
 * one writable disk, a stream of another machine type or RAM size, or
 * one that does not check out against the host's devices. */
bool savestate_load(const SavestateHost *h, const char *tag,
                    const SavestateArgs *args, GError **errp);
/* Deletes the snapshot tag from every writable disk that has it (of
 * args->devices if given); a tag that is nowhere is no error (QEMU's
 * delvm and snapshot-delete). */
bool savestate_delete(const SavestateHost *h, const char *tag,
                      const SavestateArgs *args, GError **errp);

/*
 * At start, before anything loads: removes every save state that a kill
 * or power loss left unfinished - a tag that some writable disks have and
 * others lack, with a machine clock and without a VM state on any (a save
 * lists its VM state's disk last).  One line per removal goes to report.
 * Returns how many states were removed, or -1 with *errp set.
 */
int savestate_cleanup(const SavestateHost *h, GString *report,
                      GError **errp);

/* A state's metadata (frame, frame hash, disc path, title, thumbnail),
 * read from its VM state without the RAM; false with *errp if it has
 * none. */
bool savestate_metadata(const SavestateHost *h, const char *tag,
                        XssMetadata *out, GError **errp);

/* True while a save, load or delete runs (a second one is refused). */
bool savestate_busy(void);

const SavestateSaveStats *savestate_last_save_stats(void);
const SavestateLoadStats *savestate_last_load_stats(void);

#endif
