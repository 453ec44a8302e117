/*
 * poweroff.S - writes a marker and powers off through the system
 * controller (port 0xE018 = 1).
 */
#include "lib.inc"
        .text
        .globl  _start
_start:
        movl    $0x600D, RES
        movw    $0xE018, %dx
        movb    $1, %al
        outb    %al, %dx
        jmp     .
#include "libcode.inc"
