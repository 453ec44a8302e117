/*
 * storm.S - stores to every page of guest RAM from 3 MiB up, round after
 * round, as fast as the vCPU goes: the save-state test's guest for the
 * copy-on-write capture (every page it writes after the pause faults
 * once).  Round r stores r ^ address into the first word of each page;
 * the round count is at RES.  Needs 64 MiB of RAM.
 */
#include "lib.inc"
#define STORM_BASE 0x00300000
#define STORM_END  0x03F00000
        .text
        .globl  _start
_start:
        xorl    %ebx, %ebx
1:      movl    $STORM_BASE, %edi
2:      movl    %ebx, %eax
        xorl    %edi, %eax
        movl    %eax, (%edi)
        addl    $4096, %edi
        cmpl    $STORM_END, %edi
        jb      2b
        incl    %ebx
        movl    %ebx, RES
        jmp     1b
#include "libcode.inc"
