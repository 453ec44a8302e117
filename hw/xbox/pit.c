/*
 * pit.c - the 8254; see pit.h.
 *
 * Each counter keeps the tick its count was loaded at (load_tick: the
 * count equals `initial` at that tick) and derives count and OUT at any
 * later tick T from e = T - load_tick and the period P (the count, 0
 * meaning 65536, or 10000 in BCD):
 *   mode 0: count P - e, OUT high once e >= P;
 *   mode 2: count P - e mod P, OUT low during the tick the count is 1;
 *   mode 3: OUT high for ceil(P/2) ticks then low for floor(P/2), the
 *           count going down by two in each half;
 *   mode 4: count P - e, OUT low during tick e = P only.
 * Ticks count from the last reset (base_ns), so that a machine reset
 * replays the timer exactly as a power-on does.
 * Invariants: mode is 0-5 (6 and 7 fold onto 2 and 3); a pending count
 * (modes 2, 3) is committed at pending_tick, the end of a period; `out`
 * of channel 0 is what the IRQ line was last told.
 */
#include "hw/xbox/pit.h"
#include <glib.h>

typedef struct PitCounter {
    uint8_t mode, rw;           /* rw: 1 LSB, 2 MSB, 3 LSB then MSB */
    bool bcd;
    bool write_msb_next, read_msb_next;
    uint8_t lsb_written;
    bool loaded;                /* a count was written after the control word */
    int64_t load_tick;
    uint32_t initial;           /* binary */
    bool pending;
    int64_t pending_tick;
    uint32_t pending_initial;
    bool count_latched, latch_msb_next;
    uint16_t latch;
    bool status_latched;
    uint8_t status;
    bool out;
    int64_t cycles_seen;
} PitCounter;

struct Pit {
    VClock *vc;
    int64_t base_ns;            /* time of the last reset: tick 0 */
    VTimer timer;               /* next change of channel 0's OUT */
    PitOutFn *out0;
    void *opaque;
    PitCounter ch[3];
    /* Save states: base_ns - now, and the timer (pre_save fills them,
     * post_load applies them). */
    int64_t base_rel;
    VTimerSave timer_save;
};

int64_t pit_ticks_at(int64_t ns)
{
    if (ns < 0) {
        return -1 - pit_ticks_at(-1 - ns);      /* floor */
    }
    return (int64_t)((unsigned __int128)ns * PIT_FREQ_HZ / 1000000000u);
}

int64_t pit_tick_start_ns(int64_t tick)
{
    unsigned __int128 x = (unsigned __int128)tick * 1000000000u;
    return (int64_t)((x + PIT_FREQ_HZ - 1) / PIT_FREQ_HZ);
}

static int64_t now_tick(Pit *pit)
{
    return pit_ticks_at(vclock_now(pit->vc) - pit->base_ns);
}

static uint32_t modulus(const PitCounter *c)
{
    return c->bcd ? 10000 : 65536;
}

static int64_t period(const PitCounter *c)
{
    int64_t p = c->initial ? c->initial : modulus(c);
    if ((c->mode == 2 || c->mode == 3) && p < 2) {
        p = 2;                  /* 1 is illegal in these modes */
    }
    return p;
}

static uint32_t bcd_to_bin(uint32_t v)
{
    return (v & 0xF) + ((v >> 4) & 0xF) * 10 + ((v >> 8) & 0xF) * 100 +
           ((v >> 12) & 0xF) * 1000;
}

static uint32_t bin_to_bcd(uint32_t v)
{
    return (v % 10) | ((v / 10 % 10) << 4) | ((v / 100 % 10) << 8) |
           ((v / 1000 % 10) << 12);
}

static void commit_pending(PitCounter *c, int64_t t)
{
    if (c->pending && t >= c->pending_tick) {
        c->load_tick = c->pending_tick;
        c->initial = c->pending_initial;
        c->pending = false;
        c->cycles_seen = 0;
    }
}

/* Count (binary, already reduced modulo the counter) and OUT at tick t. */
static void counter_state(const PitCounter *c, int64_t t, uint32_t *count,
                          bool *out)
{
    int64_t m = modulus(c), p = period(c), e = t - c->load_tick;
    if (!c->loaded || e < 0 || c->mode == 1 || c->mode == 5) {
        *count = c->initial % m;
        *out = c->mode != 0;
        return;
    }
    int64_t ph = e % p, h = (p + 1) / 2;
    switch (c->mode) {
    case 0:
        *count = (uint32_t)((((p - e) % m) + m) % m);
        *out = e >= p;
        break;
    case 2:
        *count = (uint32_t)((p - ph) % m);
        *out = ph != p - 1;
        break;
    case 3:
        *count = (uint32_t)(((p & ~1) - 2 * (ph < h ? ph : ph - h)) % m);
        *out = ph < h;
        break;
    default:                    /* 4 */
        *count = (uint32_t)((((p - e) % m) + m) % m);
        *out = e != p;
        break;
    }
}

/* The first tick after t at which OUT changes, or -1. */
static int64_t next_change(const PitCounter *c, int64_t t)
{
    if (!c->loaded || c->mode == 1 || c->mode == 5) {
        return -1;
    }
    int64_t p = period(c), h = (p + 1) / 2, load = c->load_tick;
    int64_t e = t - load;
    if (e < 0) {
        e = -1;                 /* not counting yet: as just before load */
    }
    int64_t ph = e >= 0 ? e % p : -1, base = e >= 0 ? t - ph : load;
    switch (c->mode) {
    case 0:
        return e < p ? load + p : -1;
    case 2:
        return ph < p - 1 ? base + p - 1 : base + p;
    case 3:
        return ph < h ? base + h : base + p;
    default:                    /* 4 */
        return e < p ? load + p : e == p ? load + p + 1 : -1;
    }
}

static void set_out0(Pit *pit, bool level)
{
    pit->ch[0].out = level;
    if (pit->out0) {
        pit->out0(pit->opaque, level);
    }
}

/* Brings channel 0's OUT line up to date and arms the next change. */
static void update_ch0(Pit *pit)
{
    PitCounter *c = &pit->ch[0];
    int64_t t = now_tick(pit);
    uint32_t count;
    bool out;
    commit_pending(c, t);
    counter_state(c, t, &count, &out);
    bool periodic = c->loaded && (c->mode == 2 || c->mode == 3) &&
                    t >= c->load_tick;
    int64_t cycles = periodic ? (t - c->load_tick) / period(c) : 0;
    if (periodic && out && c->out && cycles > c->cycles_seen) {
        set_out0(pit, false);   /* a whole low phase fell between updates */
    }
    c->cycles_seen = cycles;
    if (out != c->out) {
        set_out0(pit, out);
    }
    int64_t next = next_change(c, t);
    if (c->pending && (next < 0 || c->pending_tick < next)) {
        next = c->pending_tick;
    }
    if (next >= 0) {
        vtimer_mod(&pit->timer, pit->base_ns + pit_tick_start_ns(next));
    } else {
        vtimer_del(&pit->timer);
    }
}

static void pit_timer_cb(void *opaque)
{
    update_ch0(opaque);
}

static void counter_reset(PitCounter *c)
{
    *c = (PitCounter){ .rw = 3 };
}

Pit *pit_new(VClock *vc, PitOutFn *out0, void *opaque)
{
    Pit *pit = g_new0(Pit, 1);
    pit->vc = vc;
    pit->out0 = out0;
    pit->opaque = opaque;
    vtimer_init(&pit->timer, vc, pit_timer_cb, pit);
    pit_reset(pit);
    return pit;
}

void pit_free(Pit *pit)
{
    if (pit) {
        vtimer_del(&pit->timer);
        g_free(pit);
    }
}

void pit_reset(Pit *pit)
{
    vtimer_del(&pit->timer);
    pit->base_ns = vclock_now(pit->vc);
    for (int i = 0; i < 3; i++) {
        counter_reset(&pit->ch[i]);
    }
    set_out0(pit, false);
}

static void load_count(Pit *pit, PitCounter *c, uint32_t value)
{
    int64_t t = now_tick(pit);
    uint32_t bin = c->bcd ? bcd_to_bin(value) : value;
    commit_pending(c, t);
    if ((c->mode == 2 || c->mode == 3) && c->loaded && t >= c->load_tick) {
        int64_t p = period(c), k = (t - c->load_tick) / p + 1;
        c->pending = true;
        c->pending_tick = c->load_tick + k * p;
        c->pending_initial = bin;
        return;
    }
    c->loaded = true;
    c->pending = false;
    c->load_tick = t + 1;       /* the count loads on the next CLK */
    c->initial = bin;
    c->cycles_seen = 0;
}

static uint16_t current_count(Pit *pit, PitCounter *c)
{
    uint32_t count;
    bool out;
    int64_t t = now_tick(pit);
    commit_pending(c, t);
    counter_state(c, t, &count, &out);
    return c->bcd ? bin_to_bcd(count) : count;
}

static void latch_count(Pit *pit, PitCounter *c)
{
    if (!c->count_latched) {
        c->latch = current_count(pit, c);
        c->count_latched = true;
        c->latch_msb_next = false;
    }
}

static void latch_status(Pit *pit, PitCounter *c)
{
    if (c->status_latched) {
        return;
    }
    uint32_t count;
    bool out;
    int64_t t = now_tick(pit);
    commit_pending(c, t);
    counter_state(c, t, &count, &out);
    bool null_count = !c->loaded || t < c->load_tick || c->pending;
    c->status = (out << 7) | (null_count << 6) | (c->rw << 4) |
                (c->mode << 1) | c->bcd;
    c->status_latched = true;
}

static uint8_t read_counter(Pit *pit, PitCounter *c)
{
    if (c->status_latched) {
        c->status_latched = false;
        return c->status;
    }
    uint16_t v;
    bool msb;
    if (c->count_latched) {
        v = c->latch;
        msb = c->rw == 2 || (c->rw == 3 && c->latch_msb_next);
        c->latch_msb_next = c->rw == 3 && !msb;
        c->count_latched = c->latch_msb_next;
    } else {
        v = current_count(pit, c);
        msb = c->rw == 2 || (c->rw == 3 && c->read_msb_next);
        if (c->rw == 3) {
            c->read_msb_next = !c->read_msb_next;
        }
    }
    return msb ? v >> 8 : v & 0xFF;
}

static void write_counter(Pit *pit, PitCounter *c, uint8_t v)
{
    switch (c->rw) {
    case 1:
        load_count(pit, c, v);
        break;
    case 2:
        load_count(pit, c, (uint32_t)v << 8);
        break;
    default:
        if (!c->write_msb_next) {
            c->lsb_written = v;
            c->write_msb_next = true;
            if (c->mode == 0) {
                c->loaded = false;  /* the first byte stops the count */
            }
        } else {
            c->write_msb_next = false;
            load_count(pit, c, c->lsb_written | ((uint32_t)v << 8));
        }
        break;
    }
}

static void read_back(Pit *pit, uint8_t v)
{
    for (int i = 0; i < 3; i++) {
        if (!(v & (2u << i))) {
            continue;
        }
        if (!(v & 0x20)) {
            latch_count(pit, &pit->ch[i]);
        }
        if (!(v & 0x10)) {
            latch_status(pit, &pit->ch[i]);
        }
    }
}

static void write_control(Pit *pit, uint8_t v)
{
    int sc = v >> 6, rw = (v >> 4) & 3;
    if (sc == 3) {
        read_back(pit, v);
        return;
    }
    PitCounter *c = &pit->ch[sc];
    if (rw == 0) {
        latch_count(pit, c);
        return;
    }
    int mode = (v >> 1) & 7;
    bool out = c->out;          /* what the line was last told */
    counter_reset(c);
    c->mode = mode > 5 ? mode - 4 : mode;
    c->rw = rw;
    c->bcd = v & 1;
    c->out = out;
}

uint32_t pit_ioport_read(void *opaque, uint32_t port, unsigned size)
{
    Pit *pit = opaque;
    int idx = port - PIT_PORT_BASE;
    if (idx < 0 || idx > 2) {
        return 0xFF;            /* the control register cannot be read */
    }
    return read_counter(pit, &pit->ch[idx]);
}

void pit_ioport_write(void *opaque, uint32_t port, uint32_t val,
                      unsigned size)
{
    Pit *pit = opaque;
    int idx = port - PIT_PORT_BASE;
    if (idx == 3) {
        write_control(pit, val);
    } else if (idx >= 0 && idx < 3) {
        write_counter(pit, &pit->ch[idx], val);
    }
    update_ch0(pit);
}

/* ---- save states ---- */

/* Ticks are counted from base_ns; 2^48 ticks is ~7 years, small enough
 * that no tick or ns computation can overflow. */
#define PIT_SAVE_MAX_TICK (1ll << 48)

static bool pit_counter_check(const void *current, const void *scratch,
                              int version_id, XblkError **err)
{
    const PitCounter *c = scratch;
    if (c->bcd && (c->initial > 9999 || c->pending_initial > 9999)) {
        xblk_error_set(err, XBLK_ERROR_INVALID, "BCD count above 9999");
        return false;
    }
    return true;
}

static const XblkDeviceDesc pit_counter_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "i8254-counter",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(PitCounter),
    .check = pit_counter_check,
    .fields = (const XblkField[]){
        XBLK_U8(PitCounter, mode, XBLK_MAX(5)),
        XBLK_U8(PitCounter, rw, XBLK_RANGE(1, 3)),
        XBLK_BOOL(PitCounter, bcd),
        XBLK_BOOL(PitCounter, write_msb_next),
        XBLK_BOOL(PitCounter, read_msb_next),
        XBLK_U8(PitCounter, lsb_written),
        XBLK_BOOL(PitCounter, loaded),
        XBLK_I64(PitCounter, load_tick,
                 XBLK_RANGE(-PIT_SAVE_MAX_TICK, PIT_SAVE_MAX_TICK)),
        XBLK_U32(PitCounter, initial, XBLK_MAX(0xFFFF)),
        XBLK_BOOL(PitCounter, pending),
        XBLK_I64(PitCounter, pending_tick,
                 XBLK_RANGE(-PIT_SAVE_MAX_TICK, PIT_SAVE_MAX_TICK)),
        XBLK_U32(PitCounter, pending_initial, XBLK_MAX(0xFFFF)),
        XBLK_BOOL(PitCounter, count_latched),
        XBLK_BOOL(PitCounter, latch_msb_next),
        XBLK_U16(PitCounter, latch),
        XBLK_BOOL(PitCounter, status_latched),
        XBLK_U8(PitCounter, status),
        XBLK_BOOL(PitCounter, out),
        XBLK_I64(PitCounter, cycles_seen, XBLK_RANGE(0, PIT_SAVE_MAX_TICK)),
        XBLK_FIELDS_END
    },
};

static bool pit_pre_save(void *opaque, XblkError **err)
{
    Pit *pit = opaque;
    pit->base_rel = pit->base_ns - vclock_now(pit->vc);
    vtimer_save(&pit->timer, &pit->timer_save);
    return true;
}

static bool pit_post_load(void *opaque, int version_id, XblkError **err)
{
    Pit *pit = opaque;
    pit->base_ns = vclock_now(pit->vc) + pit->base_rel;
    vtimer_restore(&pit->timer, &pit->timer_save);
    return true;
}

static const XblkDeviceDesc pit_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "pit",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(Pit),
    .pre_save = pit_pre_save,
    .post_load = pit_post_load,
    .fields = (const XblkField[]){
        XBLK_I64(Pit, base_rel, XBLK_RANGE(-VTIMER_SAVE_MAX_REL, 0)),
        XBLK_STRUCT(Pit, timer_save, &vtimer_desc, VTimerSave),
        XBLK_STRUCT_ARRAY(Pit, ch, 3, &pit_counter_desc, PitCounter),
        XBLK_FIELDS_END
    },
};

const XblkDeviceDesc *pit_vmstate(void)
{
    return &pit_desc;
}
