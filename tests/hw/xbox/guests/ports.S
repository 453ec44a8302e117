/*
 * ports.S - port I/O and MMIO dispatch: OUT/IN of 8, 16 and 32 bits to
 * the harness port, an unclaimed port, rep insb, and MMIO accesses of
 * every size to the window at 0xFD000000; the values read go to RES.
 *
 * RES+0x00 in %eax from 0x80    RES+0x04 in %al from 0x3F8 (unclaimed)
 * RES+0x08 in %ax from 0x80     RES+0x0C MMIO dword read at +0x10
 * RES+0x10 MMIO word read at +0x4  RES+0x14 MMIO byte read at +0x9
 * RES+0x20.. rep insb from 0x82, 4 bytes
 */
#include "lib.inc"
        .text
        .globl  _start
_start:
        movl    $0x12345678, %eax
        outl    %eax, $PORT_TEST
        movb    $0xAB, %al
        outb    %al, $0x81
        movw    $0xBEEF, %ax
        outw    %ax, $PORT_TEST
        inl     $PORT_TEST, %eax
        movl    %eax, RES
        movw    $0x3F8, %dx
        inb     %dx, %al
        movb    %al, RES + 0x04
        inw     $PORT_TEST, %ax
        movw    %ax, RES + 0x08
        movl    $RES + 0x20, %edi
        movl    $4, %ecx
        movw    $0x82, %dx
        cld
        rep insb
        movl    $0xCAFEBABE, 0xFD000010
        movl    0xFD000010, %eax
        movl    %eax, RES + 0x0C
        movw    $0x1234, 0xFD000004
        movw    0xFD000004, %ax
        movw    %ax, RES + 0x10
        movb    $0x5A, 0xFD000009
        movb    0xFD000009, %al
        movb    %al, RES + 0x14
        hlt
        movl    $0x600D, RES + 0x18
        hlt
#include "libcode.inc"
