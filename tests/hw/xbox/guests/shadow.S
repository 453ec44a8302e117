/*
 * shadow.S - sti ends a translation block; the block after it runs in
 * the sti shadow (no interrupt may be taken before it).  sti; nop; hlt.
 */
#include "lib.inc"
        .text
        .globl  _start
_start:
        sti
        nop
        hlt
        cli
        hlt
#include "libcode.inc"
