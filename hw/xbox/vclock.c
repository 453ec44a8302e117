/*
 * vclock.c - the virtual clock and its timers; see vclock.h.
 *
 * The timer list is a singly linked list sorted by (deadline, seq).  The
 * machine has a handful of timers (PIT, vblank, a few disk requests), so
 * a list beats anything cleverer.
 */
#include "hw/xbox/vclock.h"
#include <glib.h>

struct VClock {
    int64_t warp_ns;            /* offset added by warps */
    const uint64_t *blocks;     /* the vCPU's executed-block counter */
    int64_t ns_per_block;
    uint64_t next_seq;
    VTimer *timers;             /* sorted by (deadline, seq) */
    VClockDeadlineFn *notify;
    void *notify_opaque;
    /* Save states: the arm-order base of the timers restored by the
     * current load. */
    uint64_t restore_base;      /* 0: none yet */
};

VClock *vclock_new(void)
{
    return g_new0(VClock, 1);
}

void vclock_free(VClock *vc)
{
    if (!vc) {
        return;
    }
    while (vc->timers) {
        vtimer_del(vc->timers);
    }
    g_free(vc);
}

void vclock_attach_counter(VClock *vc, const uint64_t *blocks,
                           int64_t ns_per_block)
{
    int64_t now = vclock_now(vc);
    vc->blocks = blocks;
    vc->ns_per_block = ns_per_block;
    /* Keep the time where it was. */
    vc->warp_ns = 0;
    vc->warp_ns = now - vclock_now(vc);
}

void vclock_set_deadline_notify(VClock *vc, VClockDeadlineFn *fn,
                                void *opaque)
{
    vc->notify = fn;
    vc->notify_opaque = opaque;
}

int64_t vclock_now(const VClock *vc)
{
    int64_t t = vc->warp_ns;
    if (vc->blocks) {
        t += (int64_t)*vc->blocks * vc->ns_per_block;
    }
    return t;
}

void vclock_warp_to(VClock *vc, int64_t t)
{
    int64_t now = vclock_now(vc);
    if (t > now) {
        vc->warp_ns += t - now;
    }
}

void vtimer_init(VTimer *t, VClock *vc, VTimerFn *cb, void *opaque)
{
    *t = (VTimer){ .clock = vc, .cb = cb, .opaque = opaque };
}

static bool vtimer_before(const VTimer *a, const VTimer *b)
{
    return a->deadline_ns < b->deadline_ns ||
           (a->deadline_ns == b->deadline_ns && a->seq < b->seq);
}

static void vtimer_unlink(VTimer *t)
{
    VTimer **pp = &t->clock->timers;
    while (*pp != t) {
        g_assert(*pp);
        pp = &(*pp)->next;
    }
    *pp = t->next;
    t->next = NULL;
    t->armed = false;
}

void vtimer_del(VTimer *t)
{
    if (t->armed) {
        vtimer_unlink(t);
    }
}

void vtimer_mod(VTimer *t, int64_t deadline_ns)
{
    VClock *vc = t->clock;
    g_assert(vc && t->cb);
    vtimer_del(t);
    t->deadline_ns = deadline_ns;
    t->seq = vc->next_seq++;
    t->armed = true;
    VTimer **pp = &vc->timers;
    while (*pp && vtimer_before(*pp, t)) {
        pp = &(*pp)->next;
    }
    t->next = *pp;
    *pp = t;
    if (vc->timers == t && vc->notify) {
        vc->notify(vc->notify_opaque, deadline_ns);
    }
}

bool vtimer_pending(const VTimer *t)
{
    return t->armed;
}

int64_t vclock_next_deadline(const VClock *vc)
{
    return vc->timers ? vc->timers->deadline_ns : VCLOCK_NEVER;
}

unsigned vclock_run_due(VClock *vc)
{
    unsigned n = 0;
    uint64_t armed_before = vc->next_seq;
    /* A timer armed by a callback here is due at `now` at the earliest,
     * so it sorts after every timer armed before: stop at the first. */
    while (vc->timers && vc->timers->deadline_ns <= vclock_now(vc) &&
           vc->timers->seq < armed_before) {
        VTimer *t = vc->timers;
        vtimer_unlink(t);
        t->cb(t->opaque);
        n++;
    }
    return n;
}

/* ---- save states ---- */

const XblkDeviceDesc vtimer_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "vtimer",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(VTimerSave),
    .fields = (const XblkField[]){
        XBLK_BOOL(VTimerSave, armed),
        XBLK_I64(VTimerSave, deadline_rel,
                 XBLK_RANGE(-VTIMER_SAVE_MAX_REL, VTIMER_SAVE_MAX_REL)),
        XBLK_U64(VTimerSave, seq_rel, XBLK_MAX(VTIMER_SAVE_MAX_SEQ)),
        XBLK_FIELDS_END
    },
};

void vtimer_save(const VTimer *t, VTimerSave *s)
{
    VClock *vc = t->clock;
    *s = (VTimerSave){ 0 };
    if (!t->armed) {
        return;
    }
    int64_t rel = t->deadline_ns - vclock_now(vc);
    uint64_t seq_rel = vc->next_seq - t->seq;
    s->armed = true;
    s->deadline_rel = CLAMP(rel, -VTIMER_SAVE_MAX_REL, VTIMER_SAVE_MAX_REL);
    /* Only the order among the timers of one save matters; a timer armed
     * more than 2^40 arms ago sorts as the oldest. */
    s->seq_rel = MIN(seq_rel, (uint64_t)VTIMER_SAVE_MAX_SEQ);
}

/* Starts a new base for restored arm orders: after every seq in use. */
static void vclock_new_restore_base(VClock *vc)
{
    vc->restore_base = vc->next_seq + VTIMER_SAVE_MAX_SEQ + 1;
    vc->next_seq = vc->restore_base;
}

void vtimer_restore(VTimer *t, const VTimerSave *s)
{
    VClock *vc = t->clock;
    g_assert(vc && t->cb);
    vtimer_del(t);
    if (!s->armed) {
        return;
    }
    if (!vc->restore_base) {
        vclock_new_restore_base(vc);
    }
    t->deadline_ns = vclock_now(vc) + s->deadline_rel;
    t->seq = vc->restore_base - s->seq_rel;
    t->armed = true;
    VTimer **pp = &vc->timers;
    while (*pp && vtimer_before(*pp, t)) {
        pp = &(*pp)->next;
    }
    t->next = *pp;
    *pp = t;
}

static bool vclock_post_load(void *opaque, int version_id, XblkError **err)
{
    vclock_new_restore_base(opaque);
    return true;
}

/* Version 1 carries no fields: the target's time is kept (it never goes
 * backwards) and every timer is saved by its owner, relative to it.  The
 * section marks where a load starts restoring timers. */
static const XblkDeviceDesc vclock_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "vclock",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(VClock),
    .post_load = vclock_post_load,
    .fields = (const XblkField[]){
        XBLK_FIELDS_END
    },
};

const XblkDeviceDesc *vclock_vmstate(void)
{
    return &vclock_desc;
}
