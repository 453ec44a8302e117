/*
 * pic.h - the 8259A pair: remapped to vectors 0x20-0x2F, every line
 * masked except the ones the guest handles.
 */
#ifndef GUEST_PIC_H
#define GUEST_PIC_H

#include <stdbool.h>

#define PIC_VECTOR_BASE 0x20

void pic_init(void);
void pic_unmask(int irq);
/* End of interrupt for irq (both chips for a slave line). */
void pic_eoi(int irq);
/* True when irq (7 or 15) is not in service: a spurious request. */
bool pic_spurious(int irq);

#endif
