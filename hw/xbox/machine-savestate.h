/*
 * machine-savestate.h - save states of the console machine: guest RAM,
 * every device and every writable disk captured at one instant (DESIGN
 * "Data flow of a save state"), stored as internal qcow2 snapshots with
 * the .xss stream (docs/savestate.md) in the VM state area of one disk.
 *
 * Main loop only; each call returns when it is over (the save when the
 * snapshot is durable and listed on every disk).  The guest is paused
 * only for the commit (rule 1): see machine-savestate.c.
 *
 * Disks: every drive with a medium that is not read-only takes part
 * (the DVD drive does not).  The VM state goes to vmstate_dev (a drive's
 * backend name) or, if NULL, to the first such drive that can hold one.
 */
#ifndef XBLK_HW_XBOX_MACHINE_SAVESTATE_H
#define XBLK_HW_XBOX_MACHINE_SAVESTATE_H

#include "hw/xbox/machine.h"

typedef struct MachineSaveStats {
    bool valid;
    int64_t guest_pause_ns;     /* vCPU parked .. running again */
    int64_t durable_ns;         /* call .. snapshot durable and listed */
    uint64_t vm_state_size;     /* bytes of the stream */
    uint64_t frame;             /* frame at the save instant */
} MachineSaveStats;

typedef struct MachineLoadStats {
    bool valid;
    int64_t guest_pause_ns;     /* vCPU parked .. running again */
    int64_t total_ns;
    uint64_t frame;             /* frame the state was saved at */
} MachineLoadStats;

/* Refuses a tag that already exists on one of the disks (nothing is
 * changed then), a machine without a writable disk that can hold a VM
 * state, a guest that has shut down. */
bool machine_save_state(XboxMachine *m, const char *tag,
                        const char *vmstate_dev, GError **errp);
/* Refuses, with the machine and every disk unchanged, a tag missing on
 * one writable disk, a stream of another machine type or RAM size, or
 * one that does not check out against the machine's devices. */
bool machine_load_state(XboxMachine *m, const char *tag, GError **errp);
/* Deletes the snapshot tag from every writable disk that has it; fails
 * if none has. */
bool machine_delete_state(XboxMachine *m, const char *tag, GError **errp);

const MachineSaveStats *machine_last_save_stats(void);
const MachineLoadStats *machine_last_load_stats(void);

#endif
