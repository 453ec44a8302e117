/*
 * test-pit.c - the 8254 (hw/xbox/pit.c) at register level on a virtual
 * clock moved by the test: OUT edges of channel 0 in modes 0, 2, 3 and 4
 * at the right ticks, LSB / MSB / LSB-then-MSB access, the counter latch,
 * the read-back command, BCD, a new count in mode 2, count 0 = 65536,
 * and that OUT drives its callback only on changes.
 */
#include "hw/xbox/pit.h"
#include "hw/xbox/vclock.h"
#include <glib.h>

typedef struct Edge {
    int64_t ns;
    bool level;
} Edge;

typedef struct T {
    VClock *vc;
    Pit *pit;
    GArray *edges;
} T;

static void on_out(void *opaque, bool level)
{
    T *t = opaque;
    Edge e = { vclock_now(t->vc), level };
    g_array_append_val(t->edges, e);
}

static T *t_new(void)
{
    T *t = g_new0(T, 1);
    t->vc = vclock_new();
    t->edges = g_array_new(FALSE, FALSE, sizeof(Edge));
    t->pit = pit_new(t->vc, on_out, t);
    g_array_set_size(t->edges, 0);      /* the reset's own report */
    return t;
}

static void t_free(T *t)
{
    pit_free(t->pit);
    vclock_free(t->vc);
    g_array_unref(t->edges);
    g_free(t);
}

static void out(T *t, uint32_t port, uint8_t v)
{
    pit_ioport_write(t->pit, port, v, 1);
}

static uint8_t in(T *t, uint32_t port)
{
    return pit_ioport_read(t->pit, port, 1);
}

static int64_t tick_ns(int64_t tick)
{
    return pit_tick_start_ns(tick);
}

/* Runs timers up to time `until`. */
static void advance(T *t, int64_t until)
{
    while (vclock_next_deadline(t->vc) <= until) {
        vclock_warp_to(t->vc, vclock_next_deadline(t->vc));
        vclock_run_due(t->vc);
    }
    vclock_warp_to(t->vc, until);
    vclock_run_due(t->vc);
}

static void load(T *t, uint8_t control, uint16_t count)
{
    out(t, 0x43, control);
    out(t, 0x40, count & 0xFF);
    out(t, 0x40, count >> 8);
}

static uint16_t latch_read(T *t)
{
    out(t, 0x43, 0x00);
    uint16_t lo = in(t, 0x40);
    return lo | (in(t, 0x40) << 8);
}

static Edge edge(T *t, guint i)
{
    g_assert_cmpuint(i, <, t->edges->len);
    return g_array_index(t->edges, Edge, i);
}

static void test_conversions(void)
{
    g_assert_cmpint(pit_ticks_at(0), ==, 0);
    g_assert_cmpint(pit_ticks_at(1000000000), ==, PIT_FREQ_HZ);
    for (int64_t k = 0; k < 5000; k += 7) {
        int64_t ns = tick_ns(k);
        g_assert_cmpint(pit_ticks_at(ns), ==, k);
        g_assert_cmpint(pit_ticks_at(ns - 1), ==, k - 1);
    }
}

static void test_mode2(void)
{
    T *t = t_new();
    load(t, 0x34, 1000);        /* ch 0, LSB then MSB, mode 2 */
    /* The control word sets OUT high: a rising edge at once. */
    g_assert_cmpuint(t->edges->len, ==, 1);
    g_assert_true(edge(t, 0).level);
    advance(t, tick_ns(5005));
    /* Count loaded at tick 1; OUT low during the tick the count is 1. */
    g_assert_cmpuint(t->edges->len, ==, 1 + 2 * 5);
    for (int k = 0; k < 5; k++) {
        Edge lo = edge(t, 1 + 2 * k), hi = edge(t, 2 + 2 * k);
        g_assert_false(lo.level);
        g_assert_cmpint(lo.ns, ==, tick_ns(1 + 1000 * k + 999));
        g_assert_true(hi.level);
        g_assert_cmpint(hi.ns, ==, tick_ns(1 + 1000 * (k + 1)));
    }
    /* The count at tick T is 1000 - (T - 1) mod 1000. */
    advance(t, tick_ns(5101));
    g_assert_cmpuint(latch_read(t), ==, 1000 - (5101 - 1) % 1000);
    t_free(t);
}

static void test_mode3(void)
{
    T *t = t_new();
    load(t, 0x36, 100);
    advance(t, tick_ns(301));
    /* high 50 ticks, low 50 */
    g_assert_cmpuint(t->edges->len, ==, 1 + 6);
    g_assert_cmpint(edge(t, 1).ns, ==, tick_ns(1 + 50));
    g_assert_false(edge(t, 1).level);
    g_assert_cmpint(edge(t, 2).ns, ==, tick_ns(1 + 100));
    g_assert_true(edge(t, 2).level);
    t_free(t);
    /* Odd count: high one tick longer. */
    t = t_new();
    load(t, 0x36, 101);
    advance(t, tick_ns(120));
    g_assert_cmpint(edge(t, 1).ns, ==, tick_ns(1 + 51));
    g_assert_cmpint(edge(t, 2).ns, ==, tick_ns(1 + 101));
    t_free(t);
}

static void test_mode0(void)
{
    T *t = t_new();
    load(t, 0x30, 500);
    g_assert_cmpuint(t->edges->len, ==, 0);     /* OUT stays low */
    advance(t, tick_ns(100000));
    g_assert_cmpuint(t->edges->len, ==, 1);     /* once, at terminal count */
    g_assert_true(edge(t, 0).level);
    g_assert_cmpint(edge(t, 0).ns, ==, tick_ns(501));
    /* The counter goes on wrapping. */
    g_assert_cmpuint(latch_read(t), ==, (uint16_t)(500 - (100000 - 1)));
    /* A new count: OUT low again until it runs out. */
    load(t, 0x30, 10);
    g_assert_cmpuint(t->edges->len, ==, 2);
    g_assert_false(edge(t, 1).level);
    advance(t, tick_ns(100020));
    g_assert_cmpint(edge(t, 2).ns, ==, tick_ns(100000 + 1 + 10));
    t_free(t);
}

static void test_mode0_first_byte_stops(void)
{
    T *t = t_new();
    load(t, 0x30, 50);
    out(t, 0x40, 0x20);                 /* LSB of a new count */
    advance(t, tick_ns(1000));
    g_assert_cmpuint(t->edges->len, ==, 0);
    out(t, 0x40, 0x00);                 /* MSB: 0x20 ticks from now */
    advance(t, tick_ns(2000));
    g_assert_cmpuint(t->edges->len, ==, 1);
    g_assert_cmpint(edge(t, 0).ns, ==, tick_ns(1000 + 1 + 0x20));
    t_free(t);
}

static void test_mode4(void)
{
    T *t = t_new();
    load(t, 0x38, 300);
    advance(t, tick_ns(5000));
    /* Mode 4 starts high (a rising edge), strobes low for one tick. */
    g_assert_cmpuint(t->edges->len, ==, 3);
    g_assert_cmpint(edge(t, 1).ns, ==, tick_ns(1 + 300));
    g_assert_false(edge(t, 1).level);
    g_assert_cmpint(edge(t, 2).ns, ==, tick_ns(1 + 301));
    g_assert_true(edge(t, 2).level);
    t_free(t);
}

static void test_byte_modes(void)
{
    T *t = t_new();
    out(t, 0x43, 0x14);                 /* LSB only, mode 2 */
    out(t, 0x40, 0x80);
    advance(t, tick_ns(1 + 128 * 3));
    g_assert_cmpint(edge(t, t->edges->len - 1).ns, ==, tick_ns(1 + 128 * 3));
    /* LSB-only reads return the low byte; MSB-only the high byte. */
    advance(t, tick_ns(1 + 128 * 3 + 28));
    g_assert_cmpuint(in(t, 0x40), ==, 100);
    out(t, 0x43, 0x24);                 /* MSB only, mode 2 */
    out(t, 0x40, 0x02);                 /* 0x200 */
    int64_t start = pit_ticks_at(vclock_now(t->vc)) + 1;
    advance(t, tick_ns(start + 0x100));
    g_assert_cmpuint(in(t, 0x40), ==, 0x01);
    t_free(t);
}

static void test_latch_and_readback(void)
{
    T *t = t_new();
    load(t, 0x34, 1000);
    advance(t, tick_ns(101));
    out(t, 0x43, 0x00);                 /* latch channel 0 */
    advance(t, tick_ns(500));
    g_assert_cmpuint(in(t, 0x40), ==, 900 & 0xFF);
    /* A second latch before the read completes is ignored. */
    out(t, 0x43, 0x00);
    g_assert_cmpuint(in(t, 0x40), ==, 900 >> 8);
    /* Released: live again (LSB then MSB). */
    uint16_t lo = in(t, 0x40);
    uint16_t live = lo | (in(t, 0x40) << 8);
    g_assert_cmpuint(live, ==, 1000 - 499);
    /* Read-back: status then count of channel 0. */
    out(t, 0x43, 0xC2);
    uint8_t status = in(t, 0x40);
    g_assert_cmphex(status, ==, 0x80 | 0x30 | (2 << 1));
    lo = in(t, 0x40);
    g_assert_cmpuint(lo | (in(t, 0x40) << 8), ==, 1000 - 499);
    /* Status only, right after a count was written: null count. */
    load(t, 0x34, 50);
    out(t, 0x43, 0xE2);
    g_assert_cmphex(in(t, 0x40) & 0x40, ==, 0x40);
    t_free(t);
}

static void test_bcd(void)
{
    T *t = t_new();
    load(t, 0x35, 0x1000);              /* BCD 1000 */
    advance(t, tick_ns(1 + 1000 * 2));
    g_assert_cmpint(edge(t, t->edges->len - 1).ns, ==, tick_ns(1 + 2000));
    advance(t, tick_ns(1 + 2000 + 1));
    g_assert_cmphex(latch_read(t), ==, 0x0999);
    t_free(t);
}

static void test_new_count_mode2(void)
{
    T *t = t_new();
    load(t, 0x34, 1000);
    advance(t, tick_ns(300));
    out(t, 0x40, 200 & 0xFF);           /* new count, same mode */
    out(t, 0x40, 200 >> 8);
    advance(t, tick_ns(1 + 1000 + 200 * 2));
    /* The current period (to tick 1001) ends first, then 200 each. */
    guint n = t->edges->len;
    g_assert_cmpint(edge(t, n - 1).ns, ==, tick_ns(1 + 1000 + 400));
    g_assert_cmpint(edge(t, n - 3).ns, ==, tick_ns(1 + 1000 + 200));
    g_assert_cmpint(edge(t, n - 5).ns, ==, tick_ns(1 + 1000));
    t_free(t);
}

static void test_count_zero(void)
{
    T *t = t_new();
    load(t, 0x34, 0);                   /* 65536 */
    advance(t, tick_ns(1 + 65536));
    g_assert_cmpint(edge(t, t->edges->len - 1).ns, ==, tick_ns(1 + 65536));
    g_assert_cmpuint(t->edges->len, ==, 3);
    t_free(t);
}

static void test_other_channels(void)
{
    T *t = t_new();
    out(t, 0x43, 0xB4);                 /* channel 2, mode 2 */
    out(t, 0x42, 100);
    out(t, 0x42, 0);
    advance(t, tick_ns(1000));
    g_assert_cmpuint(t->edges->len, ==, 0);
    out(t, 0x43, 0x80);                 /* latch channel 2 */
    uint16_t lo = in(t, 0x42);
    g_assert_cmpuint(lo | (in(t, 0x42) << 8), ==, 100 - (1000 - 1) % 100);
    g_assert_cmpuint(in(t, 0x43), ==, 0xFF);
    /* Modes 1 and 5 wait for a gate edge that never comes. */
    load(t, 0x32, 10);
    advance(t, tick_ns(5000));
    g_assert_cmpuint(latch_read(t), ==, 10);
    pit_reset(t->pit);
    g_assert_cmpint(vclock_next_deadline(t->vc), ==, VCLOCK_NEVER);
    t_free(t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pit/conversions", test_conversions);
    g_test_add_func("/pit/mode2", test_mode2);
    g_test_add_func("/pit/mode3", test_mode3);
    g_test_add_func("/pit/mode0", test_mode0);
    g_test_add_func("/pit/mode0-first-byte", test_mode0_first_byte_stops);
    g_test_add_func("/pit/mode4", test_mode4);
    g_test_add_func("/pit/byte-modes", test_byte_modes);
    g_test_add_func("/pit/latch-readback", test_latch_and_readback);
    g_test_add_func("/pit/bcd", test_bcd);
    g_test_add_func("/pit/new-count-mode2", test_new_count_mode2);
    g_test_add_func("/pit/count-zero", test_count_zero);
    g_test_add_func("/pit/other-channels", test_other_channels);
    return g_test_run();
}
