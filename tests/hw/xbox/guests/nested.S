/*
 * nested.S - the PIC's priorities, masks and EOIs with interrupts the
 * harness raises on request (PORT_RAISE / PORT_LOWER).  Every step logs
 * a byte; the expected log is
 *   A0 15 13 25 35 17 45 A1  A2 14 A3  1A A4
 * IRQ5's handler re-enables interrupts: IRQ3 (higher priority) nests,
 * IRQ7 (lower) waits for IRQ5's EOI; a masked IRQ4 waits for its unmask;
 * IRQ10 arrives through the slave (two EOIs).  RES+0x08: ISR after all.
 */
#include "lib.inc"
        .text
        .globl  _start
_start:
        call    log_init
        call    pic_init
        SET_GATE 0x23, h3
        SET_GATE 0x24, h4
        SET_GATE 0x25, h5
        SET_GATE 0x27, h7
        SET_GATE 0x2A, h10
        call    load_idt
        movb    $0x43, %al              /* unmask 2, 3, 4, 5, 7 */
        outb    %al, $0x21
        movb    $0xFB, %al              /* unmask slave input 2 (IRQ10) */
        outb    %al, $0xA1
        sti
        LOG     0xA0
        RAISE   5
        jmp     1f
1:      LOG     0xA1
        inb     $0x21, %al
        orb     $0x10, %al              /* mask IRQ4 */
        outb    %al, $0x21
        RAISE   4
        jmp     2f
2:      LOG     0xA2
        inb     $0x21, %al
        andb    $0xEF, %al              /* unmask IRQ4 */
        outb    %al, $0x21
        jmp     3f
3:      LOG     0xA3
        RAISE   10
        jmp     4f
4:      LOG     0xA4
        movb    $0x0B, %al              /* OCW3: read ISR */
        outb    %al, $0x20
        inb     $0x20, %al
        movb    %al, RES + 0x08
        movl    $0x600D, RES
        cli
        hlt

h5:     pushl   %eax
        LOG     0x15
        LOWER   5
        sti
        RAISE   3
        jmp     1f
1:      LOG     0x25
        RAISE   7
        jmp     2f
2:      LOG     0x35
        cli
        movb    $0x20, %al              /* EOI: the highest in service, 5 */
        outb    %al, $0x20
        sti
        jmp     3f
3:      LOG     0x45
        popl    %eax
        iret

h3:     pushl   %eax
        LOG     0x13
        LOWER   3
        movb    $0x63, %al              /* specific EOI for 3 */
        outb    %al, $0x20
        popl    %eax
        iret

h7:     pushl   %eax
        LOG     0x17
        LOWER   7
        movb    $0x20, %al
        outb    %al, $0x20
        popl    %eax
        iret

h4:     pushl   %eax
        LOG     0x14
        LOWER   4
        movb    $0x20, %al
        outb    %al, $0x20
        popl    %eax
        iret

h10:    pushl   %eax
        LOG     0x1A
        LOWER   10
        movb    $0x20, %al
        outb    %al, $0xA0
        outb    %al, $0x20
        popl    %eax
        iret
#include "libcode.inc"
