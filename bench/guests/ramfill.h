/*
 * ramfill.h - what both flavours of the RAM-filling guest share (see
 * ramfill.c for the xblk machine, ramfill-mb.c for a Multiboot loader
 * such as qemu-system-x86_64 -kernel): the range they fill, the PRNG and
 * the fill loop.
 *
 * Both fill [RAMFILL_BASE, RAM end) with xorshift64 (Marsaglia's 13, 7,
 * 17 triple) started from ramfill_state(seed), 8 bytes per step in
 * ascending order, so the same seed and RAM size give the same bytes in
 * either flavour.  The program sits in the MiB below RAMFILL_BASE.
 */
#ifndef BENCH_GUEST_RAMFILL_H
#define BENCH_GUEST_RAMFILL_H

#include <stdint.h>

#define RAMFILL_BASE    0x00200000u     /* 2 MiB */

/* The PRNG's first state for a seed (never 0). */
static inline uint64_t ramfill_state(uint32_t seed)
{
    uint64_t s = 0x9E3779B97F4A7C15ull ^ seed;
    return s ? s : 1;
}

/* One xorshift64 step (for the few stores the host code makes). */
static inline uint64_t ramfill_next(uint64_t x)
{
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* Fills [base, end) (both 8-byte aligned) with the PRNG's output from
 * *state on and leaves the next state in *state.  The loop keeps the
 * state in an MMX register and stores 8 bytes at a time: on Unicorn 2.0.1
 * every guest store costs ~400 ns whatever its width, so 8-byte stores
 * halve the fill time against 32-bit ones.  Clears CR0.EM and CR0.TS
 * first, and leaves the FPU empty (emms). */
void ramfill_fill(uint32_t base, uint32_t end, uint64_t *state);

/* The end of the program image (guest.ld). */
extern char __image_end[];

#endif
