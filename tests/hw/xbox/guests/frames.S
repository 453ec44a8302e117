/*
 * frames.S - deterministic busy work perturbed by timer interrupts: a
 * linear congruential generator fills RAM from 0x300000 on, the PIT
 * (mode 2, count 5000) interrupts it and its handler mixes the tick count
 * into the generator, and the program sleeps in hlt between bursts.  Its
 * RAM at any frame depends on exactly where every interrupt landed.
 *
 * RES+0x00 ticks   RES+0x04 bursts   RES+0x08 write offset
 */
#include "lib.inc"
        .text
        .globl  _start
_start:
        call    pic_init
        SET_GATE 0x20, h_timer
        call    load_idt
        movb    $0x34, %al
        outb    %al, $0x43
        movw    $5000, %ax
        outb    %al, $0x40
        movb    %ah, %al
        outb    %al, $0x40
        movb    $0xFA, %al              /* unmask IRQ0 and the cascade */
        outb    %al, $0x21
        movl    $1, %esi
        sti
outer:  movl    $3000, %ecx
        movl    RES + 0x08, %edi
1:      imull   $1103515245, %esi, %esi
        addl    $12345, %esi
        movl    %edi, %eax
        andl    $0xFFFFC, %eax
        movl    %esi, 0x300000(%eax)
        addl    $4, %edi
        decl    %ecx
        jnz     1b
        movl    %edi, RES + 0x08
        incl    RES + 0x04
        hlt
        jmp     outer

h_timer:
        pushl   %eax
        incl    RES
        addl    RES, %esi
        movb    $0x20, %al
        outb    %al, $0x20
        popl    %eax
        iret
#include "libcode.inc"
