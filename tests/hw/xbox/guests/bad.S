/*
 * bad.S - reads memory that is neither RAM nor MMIO: a guest panic.
 */
#include "lib.inc"
        .text
        .globl  _start
_start:
        movl    $1, RES
        movl    0x50000000, %eax
        movl    $2, RES
        hlt
#include "libcode.inc"
