/*
 * machine-state.h - the console machine's save states as the host program
 * uses them: synchronous calls over the machine's asynchronous ones
 * (hw/xbox/machine-savestate.h) for the QMP jobs, HMP, -loadvm and tests,
 * with the engine-side knowledge the machine layer does not have: its
 * drives as the engine's disks, the disc's title, a state's metadata.
 *
 * Main loop only.  From a coroutine (a QMP job) a call yields until the
 * operation is over; otherwise it iterates the loop.  Each returns when
 * it is over (a save when the snapshot is durable and listed on every
 * disk).
 */
#ifndef XBLK_MONITOR_HOST_MACHINE_STATE_H
#define XBLK_MONITOR_HOST_MACHINE_STATE_H

#include "hw/xbox/machine-savestate.h"
#include "migration/savestream.h"

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
 * args->devices if given); a tag that is nowhere is no error. */
bool machine_delete_state(XboxMachine *m, const char *tag,
                          const MachineStateArgs *args, GError **errp);

/* At start, before anything loads: removes every save state that a kill
 * left unfinished; one line per removal goes to report.  Returns how many
 * were removed, or -1 with *errp set. */
int machine_state_cleanup(XboxMachine *m, GString *report, GError **errp);

/* A state's metadata (frame, frame hash, disc path, title, thumbnail),
 * read from its VM state; false with *errp if it has none. */
bool machine_state_metadata(XboxMachine *m, const char *tag,
                            XssMetadata *out, GError **errp);

#endif
