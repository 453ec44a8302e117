/*
 * test-pic.c - the 8259A pair (hw/xbox/pic.c) at register level: the
 * initialization sequence, vectors, priority and nesting, masks, EOI
 * (non-specific, specific, rotating), automatic EOI, edge triggering,
 * the cascade, the poll command, special mask mode, special fully nested
 * mode, level-triggered mode and IRR/ISR reads through OCW3.
 */
#include "hw/xbox/pic.h"
#include <glib.h>

static void out(PicPair *p, uint32_t port, uint8_t v)
{
    pic_ioport_write(p, port, v, 1);
}

static uint8_t in(PicPair *p, uint32_t port)
{
    return pic_ioport_read(p, port, 1);
}

/* ICW1-4 for both chips: vectors 0x20 / 0x28, cascade on input 2,
 * icw4 as given (0x01: 8086 mode, 0x03: + automatic EOI). */
static PicPair *pic_setup(uint8_t icw1, uint8_t icw4_master,
                          uint8_t icw4_slave)
{
    PicPair *p = pic_new();
    out(p, 0x20, icw1);
    out(p, 0x21, 0x20);
    out(p, 0x21, 0x04);
    out(p, 0x21, icw4_master);
    out(p, 0xA0, icw1);
    out(p, 0xA1, 0x28);
    out(p, 0xA1, 0x02);
    out(p, 0xA1, icw4_slave);
    return p;
}

static PicPair *pic_std(void)
{
    return pic_setup(0x11, 0x01, 0x01);
}

static uint8_t read_isr(PicPair *p, uint32_t base)
{
    out(p, base, 0x0B);
    return in(p, base);
}

static uint8_t read_irr(PicPair *p, uint32_t base)
{
    out(p, base, 0x0A);
    return in(p, base);
}

/* A rising edge; the line stays high (a request must stay up until it
 * is acknowledged). */
static void pulse(PicPair *p, int irq)
{
    pic_set_irq(p, irq, false);
    pic_set_irq(p, irq, true);
}

static void test_power_on(void)
{
    PicPair *p = pic_new();
    pic_set_irq(p, 0, true);
    g_assert_false(pic_has_interrupt(p));       /* everything masked */
    g_assert_cmphex(in(p, 0x21), ==, 0xFF);
    pic_free(p);
}

static void test_init_and_vector(void)
{
    PicPair *p = pic_std();
    g_assert_cmphex(in(p, 0x21), ==, 0x00);     /* ICW1 clears the mask */
    g_assert_false(pic_has_interrupt(p));
    pic_set_irq(p, 3, true);
    g_assert_true(pic_has_interrupt(p));
    g_assert_cmphex(read_irr(p, 0x20), ==, 0x08);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x23);
    g_assert_cmphex(read_isr(p, 0x20), ==, 0x08);
    g_assert_cmphex(read_irr(p, 0x20), ==, 0x00);
    g_assert_false(pic_has_interrupt(p));
    out(p, 0x20, 0x20);                         /* non-specific EOI */
    g_assert_cmphex(read_isr(p, 0x20), ==, 0x00);
    /* The line stayed high: no new edge, no new request. */
    g_assert_false(pic_has_interrupt(p));
    pic_set_irq(p, 3, false);
    pic_set_irq(p, 3, true);
    g_assert_true(pic_has_interrupt(p));
    pic_free(p);
}

static void test_priority_nesting(void)
{
    PicPair *p = pic_std();
    pulse(p, 5);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x25);
    /* Lower priority waits while 5 is in service; higher nests. */
    pulse(p, 6);
    g_assert_false(pic_has_interrupt(p));
    pulse(p, 1);
    g_assert_true(pic_has_interrupt(p));
    g_assert_cmphex(pic_acknowledge(p), ==, 0x21);
    g_assert_cmphex(read_isr(p, 0x20), ==, 0x22);
    /* The non-specific EOI ends the highest in service: 1. */
    out(p, 0x20, 0x20);
    g_assert_cmphex(read_isr(p, 0x20), ==, 0x20);
    g_assert_false(pic_has_interrupt(p));
    out(p, 0x20, 0x20);
    g_assert_true(pic_has_interrupt(p));
    g_assert_cmphex(pic_acknowledge(p), ==, 0x26);
    /* Two requests at once: the higher priority first. */
    out(p, 0x20, 0x20);
    pulse(p, 7);
    pulse(p, 4);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x24);
    out(p, 0x20, 0x64);                         /* specific EOI for 4 */
    g_assert_cmphex(pic_acknowledge(p), ==, 0x27);
    g_assert_cmphex(read_isr(p, 0x20), ==, 0x80);
    out(p, 0x20, 0x63);                         /* specific EOI for 3 */
    g_assert_cmphex(read_isr(p, 0x20), ==, 0x80);
    pic_free(p);
}

static void test_masks(void)
{
    PicPair *p = pic_std();
    out(p, 0x21, 0x10);                         /* OCW1: mask 4 */
    g_assert_cmphex(in(p, 0x21), ==, 0x10);
    pulse(p, 4);
    g_assert_false(pic_has_interrupt(p));
    /* The request is latched; unmasking lets it through. */
    g_assert_cmphex(read_irr(p, 0x20), ==, 0x10);
    out(p, 0x21, 0x00);
    g_assert_true(pic_has_interrupt(p));
    g_assert_cmphex(pic_acknowledge(p), ==, 0x24);
    /* Masking the cascade input hides the slave. */
    out(p, 0x20, 0x20);
    out(p, 0x21, 0x04);
    pulse(p, 9);
    g_assert_false(pic_has_interrupt(p));
    out(p, 0x21, 0x00);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x29);
    pic_free(p);
}

static void test_edge_withdrawn(void)
{
    PicPair *p = pic_std();
    pic_set_irq(p, 6, true);
    g_assert_true(pic_has_interrupt(p));
    /* The data sheet wants the line up until INTA; a drop before it
     * withdraws the request (no spurious IR7 is modelled). */
    pic_set_irq(p, 6, false);
    g_assert_false(pic_has_interrupt(p));
    g_assert_cmphex(read_irr(p, 0x20), ==, 0x00);
    pic_set_irq(p, 6, true);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x26);
    out(p, 0x20, 0x20);
    /* Held high: one request only. */
    pic_set_irq(p, 6, true);
    g_assert_false(pic_has_interrupt(p));
    pic_free(p);
}

static void test_cascade(void)
{
    PicPair *p = pic_std();
    pic_set_irq(p, 10, true);
    g_assert_true(pic_has_interrupt(p));
    g_assert_cmphex(pic_acknowledge(p), ==, 0x2A);
    g_assert_cmphex(read_isr(p, 0x20), ==, 0x04);
    g_assert_cmphex(read_isr(p, 0xA0), ==, 0x04);
    /* Another slave request (higher priority inside the slave) is held
     * by the master's in-service cascade in fully nested mode. */
    pulse(p, 8);
    g_assert_false(pic_has_interrupt(p));
    out(p, 0xA0, 0x20);
    out(p, 0x20, 0x20);
    g_assert_true(pic_has_interrupt(p));
    g_assert_cmphex(pic_acknowledge(p), ==, 0x28);
    out(p, 0xA0, 0x20);
    out(p, 0x20, 0x20);
    /* Master input 1 outranks the cascade (2), 3 does not. */
    pulse(p, 11);
    pulse(p, 3);
    pulse(p, 1);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x21);
    out(p, 0x20, 0x20);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x2B);
    out(p, 0xA0, 0x20);
    out(p, 0x20, 0x20);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x23);
    pic_free(p);
}

static void test_sfnm(void)
{
    /* Special fully nested mode on the master: a higher slave request
     * gets through while a slave interrupt is in service. */
    PicPair *p = pic_setup(0x11, 0x11, 0x01);
    pulse(p, 12);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x2C);
    pulse(p, 9);
    g_assert_true(pic_has_interrupt(p));
    g_assert_cmphex(pic_acknowledge(p), ==, 0x29);
    /* But not a lower one. */
    pulse(p, 14);
    g_assert_false(pic_has_interrupt(p));
    pic_free(p);
}

static void test_rotation(void)
{
    PicPair *p = pic_std();
    pulse(p, 2 + 1);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x23);
    out(p, 0x20, 0xA0);         /* rotate on non-specific EOI: 3 lowest */
    pulse(p, 3);
    pulse(p, 5);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x25);  /* 4 is now highest */
    out(p, 0x20, 0x20);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x23);
    out(p, 0x20, 0x20);
    /* Set priority: 6 lowest, so 7 is highest. */
    out(p, 0x20, 0xC6);
    pulse(p, 0);
    pulse(p, 7);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x27);
    out(p, 0x20, 0xE7);         /* rotate on specific EOI 7: 0 highest */
    g_assert_cmphex(pic_acknowledge(p), ==, 0x20);
    pic_free(p);
}

static void test_aeoi(void)
{
    PicPair *p = pic_setup(0x11, 0x03, 0x03);
    pulse(p, 4);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x24);
    g_assert_cmphex(read_isr(p, 0x20), ==, 0x00);
    pulse(p, 6);
    g_assert_true(pic_has_interrupt(p));        /* nothing in service */
    pic_free(p);
}

static void test_poll(void)
{
    PicPair *p = pic_std();
    out(p, 0x21, 0xFF);                         /* polling needs no INT */
    out(p, 0x20, 0x0C);                         /* OCW3 poll */
    g_assert_cmphex(in(p, 0x20), ==, 0x00);     /* nothing */
    out(p, 0x21, 0x00);
    pulse(p, 5);
    out(p, 0x20, 0x0C);
    g_assert_cmphex(in(p, 0x20), ==, 0x85);
    g_assert_cmphex(read_isr(p, 0x20), ==, 0x20);  /* acts as INTA */
    pic_free(p);
}

static void test_special_mask(void)
{
    PicPair *p = pic_std();
    pulse(p, 2 + 1);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x23);
    pulse(p, 6);
    g_assert_false(pic_has_interrupt(p));
    /* The handler masks its own level and sets special mask mode:
     * lower levels get through. */
    out(p, 0x21, 0x08);
    out(p, 0x20, 0x68);
    g_assert_true(pic_has_interrupt(p));
    g_assert_cmphex(pic_acknowledge(p), ==, 0x26);
    out(p, 0x20, 0x48);                         /* reset special mask */
    pic_free(p);
}

static void test_level_mode(void)
{
    PicPair *p = pic_setup(0x19, 0x01, 0x01);   /* LTIM */
    pic_set_irq(p, 5, true);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x25);
    out(p, 0x20, 0x20);
    /* Still high: requests again without a new edge. */
    g_assert_true(pic_has_interrupt(p));
    pic_set_irq(p, 5, false);
    g_assert_false(pic_has_interrupt(p));
    pic_free(p);
}

static void test_spurious(void)
{
    PicPair *p = pic_std();
    g_assert_cmphex(pic_acknowledge(p), ==, 0x27);
    g_assert_cmphex(read_isr(p, 0x20), ==, 0x00);
    pic_free(p);
}

static void test_reinit(void)
{
    PicPair *p = pic_std();
    pic_set_irq(p, 4, true);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x24);
    /* ICW1 again: state cleared, new base, the held line needs a new
     * edge. */
    out(p, 0x20, 0x11);
    out(p, 0x21, 0x40);
    out(p, 0x21, 0x04);
    out(p, 0x21, 0x01);
    g_assert_cmphex(read_isr(p, 0x20), ==, 0x00);
    g_assert_false(pic_has_interrupt(p));
    pic_set_irq(p, 4, false);
    pic_set_irq(p, 4, true);
    g_assert_cmphex(pic_acknowledge(p), ==, 0x44);
    pic_reset(p);
    g_assert_cmphex(in(p, 0x21), ==, 0xFF);
    pic_free(p);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pic/power-on", test_power_on);
    g_test_add_func("/pic/init-and-vector", test_init_and_vector);
    g_test_add_func("/pic/priority-nesting", test_priority_nesting);
    g_test_add_func("/pic/masks", test_masks);
    g_test_add_func("/pic/edge-withdrawn", test_edge_withdrawn);
    g_test_add_func("/pic/cascade", test_cascade);
    g_test_add_func("/pic/sfnm", test_sfnm);
    g_test_add_func("/pic/rotation", test_rotation);
    g_test_add_func("/pic/aeoi", test_aeoi);
    g_test_add_func("/pic/poll", test_poll);
    g_test_add_func("/pic/special-mask", test_special_mask);
    g_test_add_func("/pic/level-mode", test_level_mode);
    g_test_add_func("/pic/spurious", test_spurious);
    g_test_add_func("/pic/reinit", test_reinit);
    return g_test_run();
}
