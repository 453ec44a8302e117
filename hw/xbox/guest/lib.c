/*
 * lib.c - memory helpers and the checksum for the freestanding guest.
 * Simple loops: the guest only copies small records.
 */
#include "lib.h"

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    /* Word copies when both are aligned: a store costs the same at any
     * width, so this is four times cheaper for the vCPU. */
    if ((((uintptr_t)d | (uintptr_t)s) & 3) == 0) {
        for (; n >= 4; n -= 4, d += 4, s += 4) {
            *(uint32_t *)d = *(const uint32_t *)s;
        }
    }
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint32_t *d32 = dst;
    uint32_t word = (uint8_t)c * 0x01010101u;
    uint8_t *d;
    /* Word stores where possible: every store costs the vCPU the same. */
    if (((uintptr_t)dst & 3) == 0) {
        for (; n >= 4; n -= 4) {
            *d32++ = word;
        }
    }
    d = (uint8_t *)d32;
    while (n--) {
        *d++ = (uint8_t)c;
    }
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (; n; n--, x++, y++) {
        if (*x != *y) {
            return *x < *y ? -1 : 1;
        }
    }
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

uint32_t fnv1a(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t h = 2166136261u;
    while (len--) {
        h ^= *p++;
        h *= 16777619u;
    }
    return h;
}
