/*
 * cpubench.c - the vCPU benchmark guest: three loops of known size, each
 * between a "B" and an "E" marker (benchlib.h), then power-off.
 *
 *   alu    25,000,000 iterations of 64 register-only instructions
 *          (62 ALU operations, dec, jnz): one translation block of 64
 *          instructions per iteration, 1.6 G instructions in all.
 *   short  50,000,000 iterations of 4 instructions (add, rol, dec, jnz):
 *          one block of 4 instructions per iteration, 200 M instructions;
 *          shows what each executed block costs (the machine's block
 *          budget hook runs once per block).
 *   store  250,000 iterations of 16 aligned 32-bit stores to RAM plus
 *          add, and, dec, jnz: 4 M stores sweeping a 64 KiB buffer at
 *          0x00C00000 (16 pages) over and over.
 *
 * Parameters come from the seed (-machine xbox,seed=N):
 *   bits 0-15   scale in sixteenths: every count is multiplied by
 *               scale / 16 (0 means 16, the sizes above)
 *   bits 16-18  phases to run: bit 16 alu, 17 short, 18 store
 *               (0 means all three)
 * A count that does not fit the 32-bit loop counter fails the run ("X").
 * The guest prints the resulting counts on a "P" line, and each "B" line
 * carries its phase's total: instructions for alu and short, stores for
 * store.  Interrupts stay off the whole run (nothing but the loops runs).
 */
#include "benchlib.h"
#include "console.h"
#include <stdint.h>

#define ALU_ITERS       25000000ull
#define ALU_INSNS       64
#define SHORT_ITERS     50000000ull
#define SHORT_INSNS     4
#define STORE_ITERS     250000ull
#define STORES_PER_ITER 16
#define STORE_BUF       0x00C00000u     /* 64 KiB above every buffer of
                                           the reference layout.h */

#define PHASE_ALU       1u
#define PHASE_SHORT     2u
#define PHASE_STORE     4u

static void alu_loop(uint32_t iters)
{
    uint32_t a = 1, d = 2, s = 3, di = 4;
    __asm__ volatile(
        "1:\n\t"
        ".rept 15\n\t"
        "addl %%esi, %%eax\n\t"
        "xorl %%eax, %%edx\n\t"
        "roll $5, %%esi\n\t"
        "subl %%edx, %%edi\n\t"
        ".endr\n\t"
        "addl %%edi, %%eax\n\t"
        "xorl %%esi, %%edx\n\t"
        "decl %%ecx\n\t"
        "jnz 1b\n\t"
        : "+c"(iters), "+a"(a), "+d"(d), "+S"(s), "+D"(di)
        :
        : "cc");
}

static void short_loop(uint32_t iters)
{
    uint32_t a = 1, d = 2;
    __asm__ volatile(
        "1:\n\t"
        "addl %%edx, %%eax\n\t"
        "roll $3, %%edx\n\t"
        "decl %%ecx\n\t"
        "jnz 1b\n\t"
        : "+c"(iters), "+a"(a), "+d"(d)
        :
        : "cc");
}

static void store_loop(uint32_t iters)
{
    uint32_t off = 0, v = 0x5A5A5A5Au;
    __asm__ volatile(
        "1:\n\t"
        ".irp o, 0,4,8,12,16,20,24,28,32,36,40,44,48,52,56,60\n\t"
        "movl %%eax, %c[buf]+\\o(%%edi)\n\t"
        ".endr\n\t"
        "addl $64, %%edi\n\t"
        "andl $0xFFFF, %%edi\n\t"
        "decl %%ecx\n\t"
        "jnz 1b\n\t"
        : "+c"(iters), "+D"(off)
        : "a"(v), [buf] "i"(STORE_BUF)
        : "cc", "memory");
}

static uint32_t scaled(uint64_t base, uint32_t scale, const char *phase)
{
    uint64_t n = base * scale / 16;
    if (n == 0 || n > 0xFFFFFFFFull) {
        con_printf("cpubench: %s: %llu iterations do not fit the loop\n",
                   phase, (unsigned long long)n);
        bench_fail("scale out of range");
    }
    return (uint32_t)n;
}

int main(void)
{
    uint64_t seed = bench_start("cpubench");
    uint32_t scale = (uint32_t)(seed & 0xFFFF);
    uint32_t phases = (uint32_t)(seed >> 16) & 7;
    uint32_t alu = 0, shrt = 0, store = 0;
    if (!scale) {
        scale = 16;
    }
    if (!phases) {
        phases = PHASE_ALU | PHASE_SHORT | PHASE_STORE;
    }
    if (phases & PHASE_ALU) {
        alu = scaled(ALU_ITERS, scale, "alu");
    }
    if (phases & PHASE_SHORT) {
        shrt = scaled(SHORT_ITERS, scale, "short");
    }
    if (phases & PHASE_STORE) {
        store = scaled(STORE_ITERS, scale, "store");
    }
    con_printf("P alu_iters=%u alu_insns_per_iter=%u short_iters=%u "
               "short_insns_per_iter=%u store_iters=%u stores_per_iter=%u "
               "store_insns_per_iter=%u\n", alu, ALU_INSNS, shrt,
               SHORT_INSNS, store, STORES_PER_ITER, STORES_PER_ITER + 4);
    if (alu) {
        bench_begin("alu", (uint64_t)alu * ALU_INSNS, "instructions");
        alu_loop(alu);
        bench_end("alu");
    }
    if (shrt) {
        bench_begin("short", (uint64_t)shrt * SHORT_INSNS, "instructions");
        short_loop(shrt);
        bench_end("short");
    }
    if (store) {
        bench_begin("store", (uint64_t)store * STORES_PER_ITER, "stores");
        store_loop(store);
        bench_end("store");
    }
    bench_done();
}
