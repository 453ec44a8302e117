/*
 * pic.h - the 8259A interrupt controller pair of the console: master at
 * ports 0x20-0x21, slave at 0xA0-0xA1, the slave's INT output wired to the
 * master's input 2 (IRQs 8-15 arrive through it).
 *
 * Implemented from the 8259A data sheet: ICW1-ICW4, OCW1 (mask), OCW2
 * (non-specific / specific EOI, rotations, set priority), OCW3 (IRR/ISR
 * read, poll, special mask mode), automatic EOI, special fully nested mode
 * on the master, fully nested priority with rotation.  Inputs are edge
 * triggered (a rising edge latches IRR; a line that drops before it is
 * acknowledged withdraws its request, so the spurious IR7 of real parts is
 * not produced); ICW1's level-triggered mode makes IRR follow the lines.
 *
 * The CPU side uses pic_has_interrupt() (the INT pin) and
 * pic_acknowledge() (the INTA cycle), which returns the vector.
 *
 * Threads: device thread only.  Callers: machine.c (lines, INTA, ports),
 * tests.
 */
#ifndef XBLK_HW_XBOX_PIC_H
#define XBLK_HW_XBOX_PIC_H

#include <xblk/xblk.h>
#include <stdbool.h>
#include <stdint.h>

#define PIC_MASTER_PORT 0x20u
#define PIC_SLAVE_PORT  0xA0u
#define PIC_CASCADE_IRQ 2

typedef struct PicPair PicPair;

PicPair *pic_new(void);
void pic_free(PicPair *pic);
/* Power-on state: uninitialized chips with every input masked. */
void pic_reset(PicPair *pic);
/* Level of input irq (0-15; 8-15 are the slave's 0-7). */
void pic_set_irq(PicPair *pic, int irq, bool level);
/* The master's INT output: an unmasked request outranks what is in
 * service. */
bool pic_has_interrupt(const PicPair *pic);
/* The INTA cycle: moves the winning request to in-service (unless
 * automatic EOI) and returns its vector; with nothing pending, the
 * spurious vector (IR7 of the chip concerned) without side effects. */
uint8_t pic_acknowledge(PicPair *pic);

/* Ports 0x20, 0x21, 0xA0, 0xA1; DevReadFn/DevWriteFn shaped.  Accesses
 * wider than a byte act on the addressed port's byte. */
uint32_t pic_ioport_read(void *pic, uint32_t port, unsigned size);
void pic_ioport_write(void *pic, uint32_t port, uint32_t val, unsigned size);

/* Save states: the table of a PicPair (opaque: the PicPair). */
const XblkDeviceDesc *pic_vmstate(void);

#endif
