/*
 * test-vclock.c - the virtual clock and its timers (hw/xbox/vclock.c):
 * deadline order with ties in arm order, re-arming and deleting, the
 * block counter as time base, warps that never go back, the deadline
 * notification, and that a timer armed due "now" by a callback waits for
 * the next vclock_run_due().
 */
#include "hw/xbox/vclock.h"
#include <glib.h>

static GString *order;

static void fire(void *opaque)
{
    g_string_append_c(order, *(char *)opaque);
}

static void test_order(void)
{
    VClock *vc = vclock_new();
    VTimer t[4];
    static char names[] = "abcd";
    order = g_string_new("");
    for (int i = 0; i < 4; i++) {
        vtimer_init(&t[i], vc, fire, &names[i]);
    }
    vtimer_mod(&t[0], 300);
    vtimer_mod(&t[1], 100);
    vtimer_mod(&t[2], 300);     /* tie with a: armed later, runs later */
    vtimer_mod(&t[3], 200);
    g_assert_cmpint(vclock_next_deadline(vc), ==, 100);
    vtimer_mod(&t[1], 400);     /* re-armed: moves */
    vtimer_del(&t[3]);
    g_assert_false(vtimer_pending(&t[3]));
    g_assert_cmpuint(vclock_run_due(vc), ==, 0);
    vclock_warp_to(vc, 350);
    g_assert_cmpuint(vclock_run_due(vc), ==, 2);
    g_assert_cmpstr(order->str, ==, "ac");
    vclock_warp_to(vc, 10);     /* never backwards */
    g_assert_cmpint(vclock_now(vc), ==, 350);
    vclock_warp_to(vc, 1000);
    vclock_run_due(vc);
    g_assert_cmpstr(order->str, ==, "acb");
    g_assert_cmpint(vclock_next_deadline(vc), ==, VCLOCK_NEVER);
    g_string_free(order, TRUE);
    vclock_free(vc);
}

static void test_counter(void)
{
    VClock *vc = vclock_new();
    uint64_t blocks = 0;
    vclock_warp_to(vc, 500);
    vclock_attach_counter(vc, &blocks, 10);
    g_assert_cmpint(vclock_now(vc), ==, 500);   /* attaching keeps time */
    blocks = 7;
    g_assert_cmpint(vclock_now(vc), ==, 570);
    vclock_warp_to(vc, 1000);
    blocks = 8;
    g_assert_cmpint(vclock_now(vc), ==, 1010);
    vclock_free(vc);
}

static int64_t notified = -1;

static void on_deadline(void *opaque, int64_t deadline)
{
    notified = deadline;
}

static VTimer chained;

static void arm_now(void *opaque)
{
    VClock *vc = opaque;
    g_string_append_c(order, 'x');
    vtimer_mod(&chained, vclock_now(vc));
}

static void test_armed_during_run(void)
{
    VClock *vc = vclock_new();
    VTimer t;
    static char y = 'y';
    order = g_string_new("");
    vclock_set_deadline_notify(vc, on_deadline, NULL);
    vtimer_init(&t, vc, arm_now, vc);
    vtimer_init(&chained, vc, fire, &y);
    vtimer_mod(&t, 50);
    g_assert_cmpint(notified, ==, 50);          /* a new earliest */
    vclock_warp_to(vc, 60);
    g_assert_cmpuint(vclock_run_due(vc), ==, 1);
    g_assert_cmpstr(order->str, ==, "x");
    g_assert_cmpint(vclock_next_deadline(vc), ==, 60);
    g_assert_cmpuint(vclock_run_due(vc), ==, 1);
    g_assert_cmpstr(order->str, ==, "xy");
    g_string_free(order, TRUE);
    vclock_free(vc);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vclock/order", test_order);
    g_test_add_func("/vclock/counter", test_counter);
    g_test_add_func("/vclock/armed-during-run", test_armed_during_run);
    return g_test_run();
}
