/*
 * rng.h - the deterministic PRNG (xorshift128) every random choice of the
 * game comes from.  Its state is part of the game state (saved and
 * restored), so a restored game continues the same sequence.  32-bit
 * arithmetic only: no libgcc helpers.
 */
#ifndef GUEST_RNG_H
#define GUEST_RNG_H

#include <stdint.h>

typedef struct Rng {
    uint32_t s[4];
} Rng;

/* splitmix32-style mixing of the 64-bit seed into a nonzero state. */
static inline void rng_seed(Rng *r, uint64_t seed)
{
    uint32_t x = (uint32_t)seed ^ 0x9E3779B9u;
    uint32_t y = (uint32_t)(seed >> 32) ^ 0x85EBCA6Bu;
    for (int i = 0; i < 4; i++) {
        x += 0x9E3779B9u + y;
        y ^= x << 7 | x >> 25;
        uint32_t z = x ^ y;
        z = (z ^ (z >> 16)) * 0x85EBCA6Bu;
        z = (z ^ (z >> 13)) * 0xC2B2AE35u;
        r->s[i] = z ^ (z >> 16);
    }
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) {
        r->s[0] = 1;
    }
}

static inline uint32_t rng_next(Rng *r)
{
    uint32_t t = r->s[3];
    uint32_t s = r->s[0];
    r->s[3] = r->s[2];
    r->s[2] = r->s[1];
    r->s[1] = s;
    t ^= t << 11;
    t ^= t >> 8;
    r->s[0] = t ^ s ^ (s >> 19);
    return r->s[0];
}

/* Uniform enough in [0, n): the high half of a 32x32 product. */
static inline uint32_t rng_below(Rng *r, uint32_t n)
{
    return (uint32_t)(((uint64_t)rng_next(r) * n) >> 32);
}

#endif
