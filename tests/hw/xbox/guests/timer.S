/*
 * timer.S - PIT channel 0 in mode 2 (count 1193, ~1 ms) on IRQ0, handled
 * through the IDT with an EOI; the main program sleeps in hlt between
 * ticks and stops (cli; hlt) after 10 of them.
 *
 * RES+0x00 ticks   RES+0x04 0xD0E when done   RES+0x08 wakeups from hlt
 */
#include "lib.inc"
        .text
        .globl  _start
_start:
        call    pic_init
        SET_GATE 0x20, h_timer
        call    load_idt
        movb    $0x34, %al              /* ch 0, LSB then MSB, mode 2 */
        outb    %al, $0x43
        movw    $1193, %ax
        outb    %al, $0x40
        movb    %ah, %al
        outb    %al, $0x40
        inb     $0x21, %al
        andb    $0xFE, %al              /* unmask IRQ0 */
        outb    %al, $0x21
        sti
1:      hlt
        incl    RES + 0x08
        cmpl    $10, RES
        jb      1b
        cli
        movl    $0xD0E, RES + 0x04
        hlt

h_timer:
        pushl   %eax
        incl    RES
        movb    $0x20, %al              /* non-specific EOI */
        outb    %al, $0x20
        popl    %eax
        iret
#include "libcode.inc"
