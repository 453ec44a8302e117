/*
 * idt.c - builds the 256-entry IDT (32-bit interrupt gates, selector
 * 0x08) from the stubs in start.S and dispatches vectors: 0-31 are CPU
 * exceptions (fatal), 0x20-0x2F the PIC's lines (handler, then EOI),
 * anything else is unexpected (fatal).  Interrupt gates clear IF, so
 * handlers never nest.
 */
#include "idt.h"
#include "console.h"
#include "io.h"
#include "pic.h"
#include "sysctl.h"

struct idt_gate {
    uint16_t off_lo;
    uint16_t sel;
    uint8_t zero;
    uint8_t type;       /* 0x8E: present, ring 0, 32-bit interrupt gate */
    uint16_t off_hi;
} __attribute__((packed));

struct idt_ptr {
    uint16_t limit;
    uint32_t base;
} __attribute__((packed));

#define DECL_STUBS(a, b, c, d, e, f, g, h)                              \
    extern void vstub_##a(void), vstub_##b(void), vstub_##c(void),      \
        vstub_##d(void), vstub_##e(void), vstub_##f(void),              \
        vstub_##g(void), vstub_##h(void);
DECL_STUBS(0, 1, 2, 3, 4, 5, 6, 7)
DECL_STUBS(8, 9, 10, 11, 12, 13, 14, 15)
DECL_STUBS(16, 17, 18, 19, 20, 21, 22, 23)
DECL_STUBS(24, 25, 26, 27, 28, 29, 30, 31)
DECL_STUBS(32, 33, 34, 35, 36, 37, 38, 39)
DECL_STUBS(40, 41, 42, 43, 44, 45, 46, 47)
extern void vstub_255(void);

static void (*const stubs[48])(void) = {
    vstub_0, vstub_1, vstub_2, vstub_3, vstub_4, vstub_5, vstub_6,
    vstub_7, vstub_8, vstub_9, vstub_10, vstub_11, vstub_12, vstub_13,
    vstub_14, vstub_15, vstub_16, vstub_17, vstub_18, vstub_19, vstub_20,
    vstub_21, vstub_22, vstub_23, vstub_24, vstub_25, vstub_26, vstub_27,
    vstub_28, vstub_29, vstub_30, vstub_31, vstub_32, vstub_33, vstub_34,
    vstub_35, vstub_36, vstub_37, vstub_38, vstub_39, vstub_40, vstub_41,
    vstub_42, vstub_43, vstub_44, vstub_45, vstub_46, vstub_47,
};

static struct idt_gate idt[256];
static IrqHandler *irq_handlers[16];

static const char *const exception_names[32] = {
    "divide error", "debug", "NMI", "breakpoint", "overflow",
    "bound range", "invalid opcode", "device not available",
    "double fault", "coprocessor overrun", "invalid TSS",
    "segment not present", "stack fault", "general protection",
    "page fault", "reserved", "x87 error", "alignment check",
    "machine check", "SIMD error",
};

static void set_gate(int vec, void (*fn)(void))
{
    uint32_t off = (uint32_t)fn;
    idt[vec].off_lo = (uint16_t)off;
    idt[vec].sel = 0x08;
    idt[vec].zero = 0;
    idt[vec].type = 0x8E;
    idt[vec].off_hi = (uint16_t)(off >> 16);
}

void idt_init(void)
{
    struct idt_ptr ptr;
    for (int v = 0; v < 256; v++) {
        set_gate(v, v < 48 ? stubs[v] : vstub_255);
    }
    ptr.limit = sizeof(idt) - 1;
    ptr.base = (uint32_t)idt;
    __asm__ volatile("lidt %0" : : "m"(ptr));
}

void irq_register(int irq, IrqHandler *fn)
{
    irq_handlers[irq] = fn;
    pic_unmask(irq);
}

void panic(const char *why)
{
    cli();
    con_printf("xboxguest: PANIC: %s\n", why);
    sysctl_power_off();
}

/* regs: the pushal frame (edi first), then the vector, then what the CPU
 * pushed (eip, cs, eflags, or an error code first for some exceptions). */
static void __attribute__((noreturn))
exception(uint32_t vector, const uint32_t *regs)
{
    const char *name = vector < 32 && exception_names[vector]
                           ? exception_names[vector] : "unexpected vector";
    con_printf("xboxguest: PANIC: exception %u (%s), stack %08x %08x %08x "
               "%08x, eax=%08x esp=%08x\n", vector, name, regs[9], regs[10],
               regs[11], regs[12], regs[7], regs[3]);
    sysctl_power_off();
}

void vector_dispatch(uint32_t vector, const uint32_t *regs)
{
    int irq;
    if (vector < PIC_VECTOR_BASE || vector >= PIC_VECTOR_BASE + 16) {
        exception(vector, regs);
    }
    irq = (int)vector - PIC_VECTOR_BASE;
    if ((irq == 7 || irq == 15) && pic_spurious(irq)) {
        /* A spurious slave request still took the master's cascade. */
        if (irq == 15) {
            pic_eoi(0);
        }
        return;
    }
    if (irq_handlers[irq]) {
        irq_handlers[irq]();
    }
    pic_eoi(irq);
}
