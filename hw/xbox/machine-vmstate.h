/*
 * machine-vmstate.h - the console machine's save-state sections: its own
 * state (MachineVMState: frame count, vblank timing, halt, the pending
 * slice, device requests, IRQ line levels) and the ordered list of every
 * device section (machine_vmstate_sections), which the machine hands to
 * libxblk with xblk_device_add() (include/xblk/xblk-state.h).
 *
 * Every table is a public XblkDeviceDesc: hw/ reaches the engine only
 * through include/xblk/.  The encoding is the one the engine's own
 * tables had (same fields, order, widths, versions, ranges), so states
 * saved before the move still load.
 *
 * machine.c keeps the fields of MachineVMState in one such struct (or
 * copies them in before a save and out after a load) and fills a
 * MachineDevices with its device pointers; see docs/savestate.md,
 * "What the machine does".
 *
 * Threads: like the devices, the vCPU thread (or the main loop while the
 * vCPU is parked, through machine_run_on_vcpu).
 */
#ifndef XBLK_HW_XBOX_MACHINE_VMSTATE_H
#define XBLK_HW_XBOX_MACHINE_VMSTATE_H

#include "hw/ide/ide.h"
#include "hw/xbox/cpu.h"
#include "hw/xbox/gamepad.h"
#include "hw/xbox/gpu.h"
#include "hw/xbox/pic.h"
#include "hw/xbox/pit.h"
#include "hw/xbox/smc.h"
#include "hw/xbox/vclock.h"
#include <xblk/xblk.h>

/* The machine type written into every state (XblkHostOps.machine_type;
 * the stream header's). */
#define MACHINE_VMSTATE_TYPE "xbox"

typedef struct MachineVMState {
    /* Guest-visible machine state (saved). */
    uint64_t frame;             /* vblanks since power-on or reset */
    int64_t vblank_base;        /* clock at power-on or reset (absolute;
                                 * saved relative to the clock) */
    bool halted;                /* the guest executed hlt */
    bool slice_pending;         /* a preempted slice is not over (its
                                 * rest is in the CPU section) */
    bool power_off_req, reset_req;  /* asked by the system controller
                                     * during that slice */
    uint16_t irq_levels;        /* levels of the PIC's 16 inputs */

    /* Links (not saved): the vblank timer and the clock. */
    VTimer *vblank;
    VClock *vc;

    /* Shadows (pre_save fills them, post_load applies them). */
    int64_t vblank_base_rel;
    VTimerSave vblank_save;
} MachineVMState;

/* Opaque: a MachineVMState whose vblank and vc are set. */
const XblkDeviceDesc *machine_vmstate(void);

typedef struct MachineDevices {
    VClock *vc;
    MachineVMState *machine;
    PicPair *pic;
    Pit *pit;
    Smc *smc;
    Gamepad *pad;
    XboxGPU *gpu;
    IDEController *ide;
    XboxCpu *cpu;
} MachineDevices;

/* One section: the table, its instance number, the object it describes. */
typedef struct MachineSection {
    const XblkDeviceDesc *desc;
    uint32_t instance;
    void *opaque;
} MachineSection;

/* Sections of the machine, at most (the size of machine_vmstate_sections'
 * array). */
#define MACHINE_SECTIONS_MAX 16

/*
 * Every section of the machine, in load order: vclock (a new timer
 * order base), machine, pic, pit, smc, gamepad, gpu, ide, and cpu last
 * (its selectors are checked against the GDT in RAM, so RAM must be in
 * place).  Every pointer of d must be set.  Fills out (an array of
 * MACHINE_SECTIONS_MAX) and returns the count.
 */
guint machine_vmstate_sections(const MachineDevices *d,
                               MachineSection *out);


#endif
