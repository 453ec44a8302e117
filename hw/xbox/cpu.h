/*
 * cpu.h - the console's vCPU: one 32-bit x86 on Unicorn 2.0.1, running
 * in slices bounded by a translation-block budget, with port I/O and MMIO
 * dispatched to device handlers and interrupts delivered through the
 * guest's IDT by this module (Unicorn has no API for them).  cpu.c's
 * header comment documents the mechanism and the Unicorn behaviours it
 * relies on.
 *
 * Threads: every function runs on the vCPU (device) thread, except
 * cpu_preempt() and cpu_clear_preempt(), which any thread may call.
 * Callers: machine.c, loader.c (boot registers), tests.
 */
#ifndef XBLK_HW_XBOX_CPU_H
#define XBLK_HW_XBOX_CPU_H

#include "hw/devio.h"
#include <xblk/xblk.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct XboxCpu XboxCpu;

/* The Unicorn library's version at run time, e.g. "2.0.1" (any thread;
 * xblk-system -version prints it). */
const char *cpu_unicorn_version(void);

/* The machine's helper for host-side writes into guest RAM. */
typedef bool CpuRamWriteFn(void *opaque, uint64_t gpa, const void *buf,
                           uint64_t len);

typedef struct CpuConfig {
    void *ram;                  /* page-aligned host mapping of guest RAM */
    uint64_t ram_size;          /* multiple of 4 KiB, at guest address 0 */
    CpuRamWriteFn *ram_write;   /* used for the interrupt frame */
    void *ram_opaque;
} CpuConfig;

typedef enum {
    CPU_EXIT_BUDGET,            /* the block budget of the slice ran out */
    CPU_EXIT_REQUEST,           /* cpu_request_exit() during the slice */
    CPU_EXIT_EXCEPTION,         /* a CPU exception or int n was dispatched */
    CPU_EXIT_HLT,               /* hlt executed; EIP points after it */
    CPU_EXIT_PANIC,             /* the guest cannot go on: cpu_panic_message */
    CPU_EXIT_PREEMPTED,         /* cpu_preempt(): the slice is not over;
                                 * cpu_resume_slice() goes on with it */
} CpuExit;

typedef struct CpuRegs {
    uint32_t eax, ebx, ecx, edx, esi, edi, ebp, esp;
    uint32_t eip, eflags;
    uint16_t cs, ds, es, fs, gs, ss;
    uint32_t cr0, cr2, cr3, cr4;
    uint32_t gdt_base, gdt_limit, idt_base, idt_limit;
} CpuRegs;

typedef struct CpuStats {
    uint64_t slices;
    uint64_t exceptions;        /* CPU exceptions and int n dispatched */
    uint64_t interrupts;        /* external interrupts delivered */
    uint64_t port_accesses;
    uint64_t mmio_accesses;
} CpuStats;

#define CPU_EFLAGS_IF   0x200u

XboxCpu *cpu_new(const CpuConfig *cfg, GError **errp);
void cpu_free(XboxCpu *cpu);
/* Power-on state: a new Unicorn engine (registers, caches), the same
 * RAM, ports and MMIO windows.  The block counter keeps counting. */
bool cpu_reset_engine(XboxCpu *cpu, GError **errp);

/* Port range [base, base + count) (ports are 0-0xFFFF); unclaimed ports
 * read as all ones and ignore writes.  A later registration of a port
 * replaces the earlier one. */
void cpu_register_ports(XboxCpu *cpu, uint32_t base, uint32_t count,
                        DevReadFn *read, DevWriteFn *write, void *opaque);
/* MMIO window [base, base + size), page aligned, outside RAM. */
bool cpu_register_mmio(XboxCpu *cpu, uint64_t base, uint64_t size,
                       DevReadFn *read, DevWriteFn *write, void *opaque,
                       GError **errp);

/* Runs one slice of at most max_blocks (>= 1) translation blocks. */
CpuExit cpu_run(XboxCpu *cpu, uint64_t max_blocks);
/* Goes on with a slice that ended in CPU_EXIT_PREEMPTED, to the same
 * block limit: the blocks executed are those of an uninterrupted slice. */
CpuExit cpu_resume_slice(XboxCpu *cpu);
/* Any thread: the running slice (or the next one) stops before its next
 * block with CPU_EXIT_PREEMPTED, unless it ends for its own reasons
 * first.  Stays requested until cpu_clear_preempt(). */
void cpu_preempt(XboxCpu *cpu);
/* Drops every block translated from guest RAM [0, ram_size): after RAM
 * was replaced behind the vCPU's back (a save state's load), code must be
 * translated anew.  vCPU thread, outside a slice. */
void cpu_flush_translations(XboxCpu *cpu, uint64_t ram_size);
void cpu_clear_preempt(XboxCpu *cpu);
/* Executed translation blocks since cpu_new (the virtual clock's base). */
const uint64_t *cpu_block_counter(const XboxCpu *cpu);
/* During a slice (from a device handler), or between the parts of a
 * preempted one: end it once the block counter reaches `blocks`
 * (absolute); at the next block if it already has. */
void cpu_limit_slice(XboxCpu *cpu, uint64_t blocks);
/* During a slice: end it at the next translation block boundary. */
void cpu_request_exit(XboxCpu *cpu);
bool cpu_in_slice(const XboxCpu *cpu);
const char *cpu_panic_message(const XboxCpu *cpu);

/* EFLAGS.IF. */
bool cpu_interrupts_flag(XboxCpu *cpu);
/* IF is set and the previous instruction was not sti (its shadow). */
bool cpu_interrupts_enabled(XboxCpu *cpu);
/* Delivers external interrupt `vector` through the IDT (no error code).
 * False with *errp set if the gate is absent or malformed or the frame
 * does not fit; the CPU state is then unchanged. */
bool cpu_deliver_interrupt(XboxCpu *cpu, uint8_t vector, GError **errp);

void cpu_get_regs(XboxCpu *cpu, CpuRegs *r);
/* docs/machine.md reset state: GDTR, CS, the data segments, EIP, ESP,
 * EFLAGS = 0x2, general registers zero. */
bool cpu_set_boot_state(XboxCpu *cpu, uint32_t gdt_base, uint16_t gdt_limit,
                        uint16_t cs, uint16_t ds, uint32_t eip,
                        uint32_t esp, GError **errp);
/* Every architectural register the hash covers (general, EIP, EFLAGS,
 * segment selectors, CR0-4, GDTR/IDTR, x87 and SSE), as bytes. */
GByteArray *cpu_register_image(XboxCpu *cpu);
void cpu_get_stats(const XboxCpu *cpu, CpuStats *out);
/* Whether the probes found Unicorn's exception fields (see cpu.c): error
 * codes are exact and no spurious double faults occur.  After cpu_new. */
bool cpu_exception_fixup_available(void);

/*
 * Save states (opaque: the XboxCpu), through Unicorn's register API only
 * (never the uc_context blob, whose layout depends on the Unicorn build):
 * general registers, EIP, EFLAGS, segment selectors, CR0/2/3/4, DR0-7,
 * GDTR, IDTR, LDTR and TR (selector, base, limit, flags), the x87 state
 * (control, status with TOP, tag, FIP/FCS/FDP/FDS/FOP, the eight
 * physical registers), MXCSR and XMM0-7; plus the vCPU's own state: the
 * rest of a preempted slice (in blocks) and the last executed block (the
 * sti shadow).  Not carried: MSRs and the hidden parts of segment
 * registers, which Unicorn 2.0.1 does not expose in 32-bit mode: loading
 * a selector reloads base, limit and flags from the descriptor in guest
 * RAM, so the CPU section must be loaded after RAM (the machine's
 * section list puts it last), and a guest that changed a descriptor
 * without reloading its segment register gets the new one.  Loading
 * starts a fresh Unicorn engine (no translated code of the old RAM
 * survives) and the state must be taken between slices.  Every selector
 * is checked against the state's GDT/LDT in RAM before Unicorn sees it
 * (a descriptor fault inside uc_reg_write would crash the host); states
 * this machine cannot run (vm86, PAE, ring 3 stacks) are refused.
 */
const XblkDeviceDesc *cpu_vmstate(void);

#endif
