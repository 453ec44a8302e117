/*
 * benchlib.c - start-up, markers and power-off of the benchmark guests
 * (see benchlib.h).  Start-up is the reference guest's: its _start
 * (hw/xbox/guest/start.S) zeroes .bss and calls main(); main() calls
 * bench_start() for the IDT and the PIC.  Markers go out with the
 * reference console driver; the machine flushes the debug console at each
 * newline, so a marker reaches the host right after its port writes.
 */
#include "benchlib.h"
#include "console.h"
#include "idt.h"
#include "io.h"
#include "pic.h"
#include "sysctl.h"

uint64_t bench_start(const char *name)
{
    uint64_t seed;
    idt_init();
    pic_init();
    if (!sysctl_present()) {
        bench_fail("no system controller");
    }
    seed = sysctl_seed();
    con_printf("%s: RAM %u MiB, seed 0x%llx\n", name,
               sysctl_ram_size() >> 20, (unsigned long long)seed);
    return seed;
}

void bench_begin(const char *phase, uint64_t n, const char *unit)
{
    con_printf("B %s %llu %s\n", phase, (unsigned long long)n, unit);
}

void bench_end(const char *phase)
{
    con_printf("E %s\n", phase);
}

void bench_fail(const char *why)
{
    con_printf("X %s\n", why);
    sysctl_power_off();
}

/* About 16 M one-block iterations (tens of ms of host time): the vCPU
 * thread stays alive a moment after the last marker, so the host can
 * still read its CPU time when that marker arrives. */
static void linger(void)
{
    uint32_t n = 1u << 24;
    __asm__ volatile("1: decl %0; jnz 1b" : "+r"(n) : : "cc");
}

void bench_done(void)
{
    linger();
    con_printf("D\n");
    sysctl_power_off();
}
