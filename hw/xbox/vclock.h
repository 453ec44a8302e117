/*
 * vclock.h - the machine's virtual clock and its timers.
 *
 * Owns: the time the guest sees, in nanoseconds, and a deadline-ordered
 * list of timers (the PIT, vblank, disk completions).  Time advances only
 * with guest work: the vCPU's executed-block counter (attached with
 * vclock_attach_counter) adds ns_per_block per executed translation block,
 * and the machine warps the clock forward when the guest halts.  Nothing
 * here reads host time.
 *
 * Invariants: the clock never goes backwards; timers fire in deadline
 * order, and timers with equal deadlines in the order they were armed
 * (a sequence number breaks ties), so a run is reproducible.
 *
 * Threads: everything runs on the device thread (the vCPU thread in the
 * machine, the test's thread in unit tests).  Callers: machine.c, pit.c,
 * tests.
 */
#ifndef XBLK_HW_XBOX_VCLOCK_H
#define XBLK_HW_XBOX_VCLOCK_H

#include <xblk/xblk.h>
#include <stdbool.h>
#include <stdint.h>

#define VCLOCK_NEVER INT64_MAX

typedef struct VClock VClock;
typedef struct VTimer VTimer;
typedef void VTimerFn(void *opaque);
/* Called when the earliest deadline may have moved earlier (a timer was
 * armed mid-slice): the machine shortens the running slice. */
typedef void VClockDeadlineFn(void *opaque, int64_t deadline_ns);

struct VTimer {
    VClock *clock;
    VTimerFn *cb;
    void *opaque;
    int64_t deadline_ns;        /* valid while armed */
    uint64_t seq;               /* arm order, breaks ties */
    bool armed;
    VTimer *next;               /* the clock's sorted list */
};

VClock *vclock_new(void);
void vclock_free(VClock *vc);
/* The clock reads *blocks * ns_per_block on top of its warp offset.
 * blocks may be NULL (the clock then moves only by vclock_warp_to). */
void vclock_attach_counter(VClock *vc, const uint64_t *blocks,
                           int64_t ns_per_block);
void vclock_set_deadline_notify(VClock *vc, VClockDeadlineFn *fn,
                                void *opaque);
int64_t vclock_now(const VClock *vc);
/* Moves the clock forward to t (no-op if t <= now). */
void vclock_warp_to(VClock *vc, int64_t t);

void vtimer_init(VTimer *t, VClock *vc, VTimerFn *cb, void *opaque);
/* (Re)arms t at deadline_ns (a deadline in the past fires at the next
 * vclock_run_due). */
void vtimer_mod(VTimer *t, int64_t deadline_ns);
void vtimer_del(VTimer *t);
bool vtimer_pending(const VTimer *t);

/* Earliest armed deadline, VCLOCK_NEVER if none. */
int64_t vclock_next_deadline(const VClock *vc);
/* Runs every timer armed before the call whose deadline <= now, in
 * order.  Callbacks may arm timers; one they arm due now already runs at
 * the next call (vclock_next_deadline() <= now tells).  Returns the
 * count. */
unsigned vclock_run_due(VClock *vc);

/*
 * Save states (device tables, <xblk/xblk-state.h>).  Everything is
 * relative to the clock: a loaded state keeps the target clock's time
 * (which never goes backwards) and re-arms each timer at the same
 * distance from now.  A timer's owner keeps a VTimerSave next to its
 * VTimer, fills it in its pre_save (vtimer_save) and applies it in its
 * post_load (vtimer_restore); the arm order of timers restored in one
 * load is kept (it breaks ties between equal deadlines), after every
 * timer armed before the load.
 */
typedef struct VTimerSave {
    bool armed;
    int64_t deadline_rel;       /* deadline - now */
    uint64_t seq_rel;           /* arm order: the clock's next seq - seq */
} VTimerSave;

#define VTIMER_SAVE_MAX_REL (1ll << 60)     /* ~36 years of ns */
#define VTIMER_SAVE_MAX_SEQ (1ll << 40)

extern const XblkDeviceDesc vtimer_desc;        /* VTimerSave */
void vtimer_save(const VTimer *t, VTimerSave *s);
/* Arms (or deletes) t as s says, without the deadline notification. */
void vtimer_restore(VTimer *t, const VTimerSave *s);
/* The clock's own section (opaque: the VClock): starts a new arm-order
 * base for the timers restored after it; the target's time is kept. */
const XblkDeviceDesc *vclock_vmstate(void);

#endif
