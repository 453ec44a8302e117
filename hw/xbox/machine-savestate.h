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
    /* For the host's waits (monitor/host/machine-state.c): polled while
     * it runs; true stops a save before its state is durable (nothing is
     * left) or a load before any change. */
    bool (*cancelled)(void *opaque);
    void *opaque;               /* progress's and cancelled's */
    /* Save: the disc inserted and its title, for the menu (the host
     * reads them before: no disk read inside the pause). */
    const char *disc_path, *title;
} MachineStateArgs;

/* Binds the machine to the engine (machine_new does it): its RAM, its
 * device sections, its writable drives and the pause contract.  engine
 * NULL: the machine makes one on the default GMainContext and frees it
 * with itself. */
bool machine_savestate_attach(XboxMachine *m, GError **errp);
void machine_savestate_detach(XboxMachine *m);

/*
 * Starts a save, load or delete of the state tag (xblk-state.h says what
 * each refuses and guarantees); done(opaque, ...) runs on the main loop
 * when it is over, never inside this call.  Refused at once (false,
 * *errp): a save of a guest that shut down, an operation while one runs,
 * what libxblk refuses before starting.  args may be NULL.
 */
typedef void MachineStateDoneFn(void *opaque, const XblkError *err,
                                const XblkStateStats *stats);
bool machine_state_start(XboxMachine *m, XblkStateOp op, const char *tag,
                         const MachineStateArgs *args,
                         MachineStateDoneFn *done, void *opaque,
                         GError **errp);

/* True while a save, load or delete runs (a second one is refused). */
bool machine_state_busy(void);

/* The figures of the last successful save and load. */
const MachineSaveStats *machine_last_save_stats(void);
const MachineLoadStats *machine_last_load_stats(void);

#endif
