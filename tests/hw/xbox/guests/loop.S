/*
 * loop.S - one translation block per iteration: after N executed blocks
 * EAX (and RES) equal N.  Used for the block budget and determinism.
 */
#include "lib.inc"
        .text
        .globl  _start
_start:
        xorl    %eax, %eax
1:      incl    %eax
        movl    %eax, RES
        jmp     1b
#include "libcode.inc"
