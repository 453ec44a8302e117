/*
 * exc.S - exceptions and int n through the IDT: int 0x30 on a trap gate
 * (IF stays set), #DE twice (no double fault), #GP with its error code,
 * #UD; the handlers log the vector, record the return address and step
 * over the faulting instruction.  Then int 0x31, whose gate is absent:
 * the machine must panic.
 *
 * RES+0x00 done marker 0x600D      RES+0x04 int 0x30 return EIP
 * RES+0x08 EFLAGS in the trap gate  RES+0x0C #DE return EIP (first)
 * RES+0x10 EFLAGS in the #DE gate   RES+0x14 #GP error code
 * RES+0x18 #GP return EIP           RES+0x1C #UD return EIP
 * RES+0x20.. the expected addresses: after_int, de1, gp1, ud1
 */
#include "lib.inc"
        .text
        .globl  _start
_start:
        call    log_init
        movl    $after_int, RES + 0x20
        movl    $de1, RES + 0x24
        movl    $gp1, RES + 0x28
        movl    $ud1, RES + 0x2C
        SET_GATE 0x00, h_de
        SET_GATE 0x06, h_ud
        SET_GATE 0x0D, h_gp
        SET_GATE 0x30, h_int, 0x8F
        call    load_idt
        sti
        int     $0x30
after_int:
        cli
        xorl    %edx, %edx
        movl    $1, %eax
        xorl    %ecx, %ecx
de1:    divl    %ecx
        divl    %ecx
        movw    $0x1230, %ax
gp1:    movw    %ax, %ds
ud1:    ud2
        movl    $0x600D, RES
        int     $0x31
        hlt

h_int:  movl    (%esp), %eax
        movl    %eax, RES + 0x04
        pushfl
        popl    %eax
        movl    %eax, RES + 0x08
        LOG     0x30
        iret

h_de:   cmpl    $0, RES + 0x0C
        jne     1f
        movl    (%esp), %eax
        movl    %eax, RES + 0x0C
        pushfl
        popl    %eax
        movl    %eax, RES + 0x10
1:      LOG     0x00
        addl    $2, (%esp)
        iret

h_gp:   popl    %eax
        movl    %eax, RES + 0x14
        movl    (%esp), %eax
        movl    %eax, RES + 0x18
        LOG     0x0D
        addl    $2, (%esp)
        iret

h_ud:   movl    (%esp), %eax
        movl    %eax, RES + 0x1C
        LOG     0x06
        addl    $2, (%esp)
        iret
#include "libcode.inc"
