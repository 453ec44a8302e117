/*
 * pic.c - programs the 8259A pair (ports 0x20/0x21 master, 0xA0/0xA1
 * slave on master input 2): edge-triggered, cascaded, 8086 mode, vectors
 * 0x20-0x27 and 0x28-0x2F.  Owns the interrupt masks.
 */
#include "pic.h"
#include "io.h"
#include <stdint.h>

#define PIC1_CMD  0x20
#define PIC1_DATA 0x21
#define PIC2_CMD  0xA0
#define PIC2_DATA 0xA1

static uint16_t pic_mask = 0xFFFF;      /* bit set: line masked */

static void pic_write_masks(void)
{
    outb(PIC1_DATA, (uint8_t)pic_mask);
    outb(PIC2_DATA, (uint8_t)(pic_mask >> 8));
}

void pic_init(void)
{
    outb(PIC1_CMD, 0x11);               /* ICW1: edge, cascade, ICW4 */
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, PIC_VECTOR_BASE);   /* ICW2: vector base */
    outb(PIC2_DATA, PIC_VECTOR_BASE + 8);
    outb(PIC1_DATA, 0x04);              /* ICW3: slave on input 2 */
    outb(PIC2_DATA, 0x02);              /*       slave identity 2 */
    outb(PIC1_DATA, 0x01);              /* ICW4: 8086 mode, normal EOI */
    outb(PIC2_DATA, 0x01);
    /* Everything masked but the cascade line until a driver asks. */
    pic_mask = 0xFFFF & ~(1u << 2);
    pic_write_masks();
}

void pic_unmask(int irq)
{
    pic_mask &= (uint16_t)~(1u << irq);
    pic_write_masks();
}

void pic_eoi(int irq)
{
    if (irq >= 8) {
        outb(PIC2_CMD, 0x20);
    }
    outb(PIC1_CMD, 0x20);
}

bool pic_spurious(int irq)
{
    uint16_t cmd = irq >= 8 ? PIC2_CMD : PIC1_CMD;
    uint8_t isr;
    outb(cmd, 0x0B);                    /* OCW3: read ISR next */
    isr = inb(cmd);
    outb(cmd, 0x0A);                    /* back to reading IRR */
    return !(isr & (1u << (irq & 7)));
}
