/*
 * start.S - the guest's entry and its interrupt stubs.
 *
 * _start: loads the guest's own flat GDT (code 0x08, data 0x10), reloads
 * every segment register, zeroes .bss, switches to the guest's stack and
 * calls main().  Never returns.
 *
 * Stubs: one per CPU exception (0-31) and per PIC line (vectors
 * 0x20-0x2F), plus one for every other vector.  They save the general
 * registers, call the C dispatcher with the vector number, and return
 * with iret.  The C side (idt.c) sends the PIC its EOI.  The machine
 * pushes no error code for external interrupts; exception handlers never
 * return, so their stack layout does not matter.
 */
        .section .text.start, "ax"
        .code32
        .globl _start
_start:
        cli
        lgdt    gdt_desc
        ljmp    $0x08, $1f
1:      movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %fs
        movw    %ax, %gs
        movw    %ax, %ss
        movl    $stack_top, %esp
        /* .bss may hold stale bytes after a reset; zero it (it is small). */
        cld
        movl    $__bss_start, %edi
        movl    $__bss_end, %ecx
        subl    %edi, %ecx
        shrl    $2, %ecx
        xorl    %eax, %eax
        rep stosl
        call    main
        /* main does not return; if it does, stop here. */
2:      cli
        hlt
        jmp     2b

/* Vector stubs: push the vector, join the common path. */
        .text
        .macro  VSTUB n
        .globl  vstub_\n
vstub_\n:
        pushl   $\n
        jmp     vector_common
        .endm

        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        VSTUB   \n
        .endr
        .irp    n, 16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        VSTUB   \n
        .endr
        .irp    n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
        VSTUB   \n
        .endr
        /* Any other vector: reported as 255. */
        VSTUB   255

vector_common:
        pushal
        cld
        movl    32(%esp), %eax          /* the vector pushed by the stub */
        movl    %esp, %edx              /* the saved registers, for panics */
        pushl   %edx
        pushl   %eax
        call    vector_dispatch
        addl    $8, %esp
        popal
        addl    $4, %esp                /* drop the vector */
        iret

        .section .rodata
        .align  8
gdt:
        .quad   0                       /* null */
        .quad   0x00CF9A000000FFFF      /* 0x08: code, base 0, 4 GiB, 32-bit */
        .quad   0x00CF92000000FFFF      /* 0x10: data, base 0, 4 GiB */
gdt_end:
        .align  4
        .word   0
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt

        /* The stack: not in .bss, so start-up does not zero it. */
        .section .stack, "aw", @nobits
        .align  16
        .space  32768
stack_top:

        /* No executable stack. */
        .section .note.GNU-stack, "", @progbits
