/*
 * machine-vmstate.c - the machine's own section and the section list of
 * the whole console; see machine-vmstate.h.
 *
 * Invariants: every time is saved relative to the clock (vblank base,
 * the vblank timer), so a state loads into a machine whose clock reads
 * anything; loading drives no interrupt line and arms only the vblank
 * timer (devices re-arm their own).
 */
#include "hw/xbox/machine-vmstate.h"
#include "hw/ide/vmstate.h"
#include "util/error.h"

static bool machine_pre_save(void *opaque, GError **errp)
{
    MachineVMState *m = opaque;
    g_assert(m->vc && m->vblank);
    m->vblank_base_rel = m->vblank_base - vclock_now(m->vc);
    vtimer_save(m->vblank, &m->vblank_save);
    return true;
}

static bool machine_post_load(void *opaque, int version_id, GError **errp)
{
    MachineVMState *m = opaque;
    g_assert(m->vc && m->vblank);
    m->vblank_base = vclock_now(m->vc) + m->vblank_base_rel;
    vtimer_restore(m->vblank, &m->vblank_save);
    return true;
}

/* The vblank arithmetic (base + (frame + 1) * period) stays far from
 * overflowing: 2^36 frames is 36 years at 60 Hz. */
#define MACHINE_SAVE_MAX_FRAME (1ull << 36)

/* The next vblank is due at base + (frame + 1) periods, at most one
 * period from now (late by up to a period when saved before its timer
 * ran): anything else would make the machine replay a flood of missed
 * vblanks, or wait for ages. */
static bool machine_check(const void *current, const void *scratch,
                          int version_id, GError **errp)
{
    const MachineVMState *m = scratch;
    int64_t next = m->vblank_base_rel +
                   (int64_t)(m->frame + 1) * GPU_VBLANK_NS;
    if (next < -GPU_VBLANK_NS || next > GPU_VBLANK_NS ||
        (m->vblank_save.armed &&
         (m->vblank_save.deadline_rel < -GPU_VBLANK_NS ||
          m->vblank_save.deadline_rel > GPU_VBLANK_NS))) {
        error_setg(errp, "the vblank timing (frame %" G_GUINT64_FORMAT
                   ", base %" G_GINT64_FORMAT " ns from now) is "
                   "inconsistent", m->frame, m->vblank_base_rel);
        return false;
    }
    return true;
}

static const VMStateDescription machine_vmsd = {
    .name = "machine",
    .version_id = 1,
    .minimum_version_id = 1,
    .size = sizeof(MachineVMState),
    .check = machine_check,
    .pre_save = machine_pre_save,
    .post_load = machine_post_load,
    .fields = (const VMStateField[]){
        VMS_U64(MachineVMState, frame, VMS_MAX(MACHINE_SAVE_MAX_FRAME)),
        VMS_I64(MachineVMState, vblank_base_rel,
                VMS_RANGE(-VTIMER_SAVE_MAX_REL, 0)),
        VMS_STRUCT(MachineVMState, vblank_save, &vtimer_vmsd, VTimerSave),
        VMS_BOOL(MachineVMState, halted),
        VMS_BOOL(MachineVMState, slice_pending),
        VMS_BOOL(MachineVMState, power_off_req),
        VMS_BOOL(MachineVMState, reset_req),
        VMS_U16(MachineVMState, irq_levels),
        VMS_END
    },
};

const VMStateDescription *machine_vmstate(void)
{
    return &machine_vmsd;
}

VMStateSet *machine_vmstate_set(const MachineDevices *d)
{
    g_assert(d->vc && d->machine && d->pic && d->pit && d->smc && d->pad &&
             d->gpu && d->ide && d->cpu);
    VMStateSet *set = vmstate_set_new();
    vmstate_set_add(set, vclock_vmstate(), 0, d->vc);
    vmstate_set_add(set, machine_vmstate(), 0, d->machine);
    vmstate_set_add(set, pic_vmstate(), 0, d->pic);
    vmstate_set_add(set, pit_vmstate(), 0, d->pit);
    vmstate_set_add(set, smc_vmstate(), 0, d->smc);
    vmstate_set_add(set, gamepad_vmstate(), 0, d->pad);
    vmstate_set_add(set, gpu_vmstate(), 0, d->gpu);
    vmstate_set_add(set, ide_vmstate(), 0, d->ide);
    vmstate_set_add(set, cpu_vmstate(), 0, d->cpu);
    return set;
}
