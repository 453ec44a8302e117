/*
 * idt.h - the interrupt descriptor table and the dispatch of vectors to
 * C handlers.  CPU exceptions stop the guest with a message; PIC lines
 * call the handler registered for them, then get their EOI.
 */
#ifndef GUEST_IDT_H
#define GUEST_IDT_H

#include <stdint.h>

typedef void IrqHandler(void);

void idt_init(void);
void irq_register(int irq, IrqHandler *fn);
/* Called by the stubs in start.S. */
void vector_dispatch(uint32_t vector, const uint32_t *regs);
/* Stops the machine after a fatal error: prints why and powers off. */
void panic(const char *why) __attribute__((noreturn));

#endif
