/*
 * ramfill-fill.c - the fill loop of the RAM-filling guest (ramfill.h),
 * linked into both flavours.  Uses no device: the xblk machine and a PC
 * run it alike.
 */
#include "ramfill.h"

void ramfill_fill(uint32_t base, uint32_t end, uint64_t *state)
{
    uint32_t cr0;
    __asm__ volatile("movl %%cr0, %0" : "=r"(cr0));
    cr0 &= ~(1u << 2 | 1u << 3);        /* EM, TS: MMX may run */
    __asm__ volatile("movl %0, %%cr0" : : "r"(cr0) : "memory");
    if (base >= end) {
        return;
    }
    __asm__ volatile(
        "movq (%[st]), %%mm0\n\t"
        "1:\n\t"
        "movq %%mm0, %%mm1\n\t"
        "psllq $13, %%mm1\n\t"
        "pxor %%mm1, %%mm0\n\t"
        "movq %%mm0, %%mm1\n\t"
        "psrlq $7, %%mm1\n\t"
        "pxor %%mm1, %%mm0\n\t"
        "movq %%mm0, %%mm1\n\t"
        "psllq $17, %%mm1\n\t"
        "pxor %%mm1, %%mm0\n\t"
        "movq %%mm0, (%[p])\n\t"
        "addl $8, %[p]\n\t"
        "cmpl %[end], %[p]\n\t"
        "jb 1b\n\t"
        "movq %%mm0, (%[st])\n\t"
        "emms\n\t"
        : [p] "+r"(base)
        : [end] "r"(end), [st] "r"(state)
        : "cc", "memory");
}
