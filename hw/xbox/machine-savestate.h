/*
 * machine-savestate.h - save states of the console machine: guest RAM,
 * every device and every writable disk captured at one instant (DESIGN
 * "Data flow of a save state"), stored as internal qcow2 snapshots with
 * the .xss stream (docs/savestate.md) in the VM state area of one disk.
 *
 * The machine as a host of libxblk's save states (include/xblk/
 * xblk-state.h, which documents the save, the load and their pause): its
 * RAM, its writable drives, parking its vCPU, its device sections, and
 * the menu's metadata (frame hash, disc, title, thumbnail).
 *
 * Main loop only; each call returns when it is over (the save when the
 * snapshot is durable and listed on every disk).  The guest is paused
 * only for the commit (rule 1).
 *
 * Disks: every drive with a medium that is not read-only takes part
 * (the DVD drive does not).  The VM state goes to vmstate_dev (a drive's
 * backend name) or, if NULL, to the first such drive that can hold one.
 */
#ifndef XBLK_HW_XBOX_MACHINE_SAVESTATE_H
#define XBLK_HW_XBOX_MACHINE_SAVESTATE_H

#include "hw/xbox/machine.h"
#include "migration/savestream.h"   /* XssMetadata (transitional) */
#include <xblk/xblk.h>

typedef struct MachineSaveStats {
    bool valid;
    char tag[256];
    int64_t guest_pause_ns;     /* vCPU parked .. running again */
    int64_t durable_ns;         /* call .. snapshot durable and listed */
    uint64_t vm_state_size;     /* bytes of the stream (compressed) */
    uint64_t raw_size;          /* the state before compression */
    uint64_t peak_cow_bytes;    /* copy-on-write memory at most at once */
    uint64_t frame;             /* frame at the save instant */
} MachineSaveStats;

typedef struct MachineLoadStats {
    bool valid;
    char tag[256];
    int64_t guest_pause_ns;     /* vCPU parked .. running again */
    int64_t total_ns;
    uint64_t frame;             /* frame the state was saved at */
} MachineLoadStats;

/* Progress of a save or load: done out of total (bytes of the stream). */
typedef void MachineStateProgressFn(void *opaque, uint64_t done,
                                    uint64_t total);

/* Optional arguments (NULL: every default). */
typedef struct MachineStateArgs {
    /* The disk that holds the VM state, by drive (backend) or node name.
     * NULL: the first writable disk that can hold one (save), the disk
     * whose snapshot has a VM state (load). */
    const char *vmstate;
    /* NULL-terminated drive or node names; NULL: every writable disk.
     * Given, they must be exactly the machine's writable disks. */
    char **devices;
    /* Save: a state of the same tag is deleted first (HMP savevm). */
    bool overwrite;
    MachineStateProgressFn *progress;
    /* Polled while it runs; true stops a save before its state is
     * durable (nothing is left) or a load before any change. */
    bool (*cancelled)(void *opaque);
    void *opaque;
} MachineStateArgs;

/* Binds the machine to the engine (machine_new does it): its RAM, its
 * device sections, its writable drives and the pause contract.  engine
 * NULL: the machine makes one on the default GMainContext and frees it
 * with itself. */
bool machine_savestate_attach(XboxMachine *m, GError **errp);
void machine_savestate_detach(XboxMachine *m);

/* Refuses a tag that already exists on one of the disks unless
 * overwrite (nothing is changed then), a machine without a writable disk
 * that can hold a VM state, a guest that has shut down. */
bool machine_save_state(XboxMachine *m, const char *tag,
                        const MachineStateArgs *args, GError **errp);
/* Refuses, with the machine and every disk unchanged, a tag missing on
 * one writable disk, a stream of another machine type or RAM size, or
 * one that does not check out against the machine's devices. */
bool machine_load_state(XboxMachine *m, const char *tag,
                        const MachineStateArgs *args, GError **errp);
/* Deletes the snapshot tag from every writable disk that has it (of
 * args->devices if given); a tag that is nowhere is no error (QEMU's
 * delvm and snapshot-delete). */
bool machine_delete_state(XboxMachine *m, const char *tag,
                          const MachineStateArgs *args, GError **errp);

/*
 * At start, before anything loads: removes every save state that a kill
 * or power loss left unfinished - a tag that some writable disks have and
 * others lack, with a machine clock and without a VM state on any (a save
 * lists its VM state's disk last).  One line per removal goes to report.
 * Returns how many states were removed, or -1 with *errp set.
 */
int machine_state_cleanup(XboxMachine *m, GString *report, GError **errp);

/* A state's metadata (frame, frame hash, disc path, title, thumbnail),
 * read from its VM state; false with *errp if it has none. */
bool machine_state_metadata(XboxMachine *m, const char *tag,
                            XssMetadata *out, GError **errp);

/* True while a save, load or delete runs (a second one is refused). */
bool machine_state_busy(void);

const MachineSaveStats *machine_last_save_stats(void);
const MachineLoadStats *machine_last_load_stats(void);

#endif
