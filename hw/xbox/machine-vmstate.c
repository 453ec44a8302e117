/*
 * machine-vmstate.c - the machine's own section (a public device table,
 * include/xblk/xblk-state.h) and the section list of the whole console;
 * see machine-vmstate.h.
 *
 * Invariants: every time is saved relative to the clock (vblank base,
 * the vblank timer), so a state loads into a machine whose clock reads
 * anything; loading drives no interrupt line and arms only the vblank
 * timer (devices re-arm their own).
 */
#include "hw/xbox/machine-vmstate.h"
#include "hw/ide/vmstate.h"
#include <string.h>

static bool machine_pre_save(void *opaque, XblkError **err)
{
    MachineVMState *m = opaque;
    g_assert(m->vc && m->vblank);
    m->vblank_base_rel = m->vblank_base - vclock_now(m->vc);
    vtimer_save(m->vblank, &m->vblank_save);
    return true;
}

static bool machine_post_load(void *opaque, int version_id, XblkError **err)
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
                          int version_id, XblkError **err)
{
    const MachineVMState *m = scratch;
    int64_t next = m->vblank_base_rel +
                   (int64_t)(m->frame + 1) * GPU_VBLANK_NS;
    if (next < -GPU_VBLANK_NS || next > GPU_VBLANK_NS ||
        (m->vblank_save.armed &&
         (m->vblank_save.deadline_rel < -GPU_VBLANK_NS ||
          m->vblank_save.deadline_rel > GPU_VBLANK_NS))) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "the vblank timing (frame %" G_GUINT64_FORMAT
                       ", base %" G_GINT64_FORMAT " ns from now) is "
                       "inconsistent", m->frame, m->vblank_base_rel);
        return false;
    }
    return true;
}

static const XblkDeviceDesc machine_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "machine",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(MachineVMState),
    .check = machine_check,
    .pre_save = machine_pre_save,
    .post_load = machine_post_load,
    .fields = (const XblkField[]){
        XBLK_U64(MachineVMState, frame, XBLK_MAX(MACHINE_SAVE_MAX_FRAME)),
        XBLK_I64(MachineVMState, vblank_base_rel,
                 XBLK_RANGE(-VTIMER_SAVE_MAX_REL, 0)),
        XBLK_STRUCT(MachineVMState, vblank_save, &vtimer_desc, VTimerSave),
        XBLK_BOOL(MachineVMState, halted),
        XBLK_BOOL(MachineVMState, slice_pending),
        XBLK_BOOL(MachineVMState, power_off_req),
        XBLK_BOOL(MachineVMState, reset_req),
        XBLK_U16(MachineVMState, irq_levels),
        XBLK_FIELDS_END
    },
};

const XblkDeviceDesc *machine_vmstate(void)
{
    return &machine_desc;
}

guint machine_vmstate_sections(const MachineDevices *d, MachineSection *out)
{
    g_assert(d->vc && d->machine && d->pic && d->pit && d->smc && d->pad &&
             d->gpu && d->ide && d->cpu);
    const MachineSection list[] = {
        { vclock_vmstate(), 0, d->vc },
        { machine_vmstate(), 0, d->machine },
        { pic_vmstate(), 0, d->pic },
        { pit_vmstate(), 0, d->pit },
        { smc_vmstate(), 0, d->smc },
        { gamepad_vmstate(), 0, d->pad },
        { gpu_vmstate(), 0, d->gpu },
        { ide_vmstate(), 0, d->ide },
        { cpu_vmstate(), 0, d->cpu },
    };
    G_STATIC_ASSERT(G_N_ELEMENTS(list) <= MACHINE_SECTIONS_MAX);
    memcpy(out, list, sizeof(list));
    return G_N_ELEMENTS(list);
}
