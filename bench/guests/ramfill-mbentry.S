/*
 * ramfill-mbentry.S - entry of the Multiboot (version 1) flavour of the
 * RAM-filling guest (ramfill-mb.c), for qemu-system-x86_64 -kernel.
 *
 * The header comes first in .text.start, so guest.ld puts it at the
 * start of the first loadable segment (file offset 4096, inside the first
 * 8 KiB as Multiboot requires).  Flags: bit 0 (page-aligned modules) and
 * bit 1 (memory information in the boot information); bit 16 is clear,
 * so the loader takes the load addresses from the ELF program headers.
 *
 * The loader enters _start in 32-bit protected mode, paging and
 * interrupts off, EAX = 0x2BADB002, EBX = the boot information; the
 * stack is undefined.  _start loads its own flat GDT (code 0x08, data
 * 0x10), zeroes .bss, switches to its stack and calls
 * mb_main(magic, info).  The boot information lies past the image (QEMU
 * places it after the end of the last segment, .bss included), so
 * zeroing .bss keeps it.
 */
        .set    MB_MAGIC, 0x1BADB002
        .set    MB_FLAGS, 0x00000003

        .section .text.start, "ax"
        .align  4
mb_header:
        .long   MB_MAGIC
        .long   MB_FLAGS
        .long   -(MB_MAGIC + MB_FLAGS)

        .code32
        .globl  _start
_start:
        cli
        movl    %eax, %esi
        movl    %ebx, %ebp
        lgdt    mb_gdt_desc
        ljmp    $0x08, $1f
1:      movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %fs
        movw    %ax, %gs
        movw    %ax, %ss
        movl    $mb_stack_top, %esp
        cld
        movl    $__bss_start, %edi
        movl    $__bss_end, %ecx
        subl    %edi, %ecx
        shrl    $2, %ecx
        xorl    %eax, %eax
        rep stosl
        pushl   %ebp
        pushl   %esi
        call    mb_main
2:      cli
        hlt
        jmp     2b

        .section .rodata
        .align  8
mb_gdt:
        .quad   0
        .quad   0x00CF9A000000FFFF      /* 0x08: code, base 0, 4 GiB, 32-bit */
        .quad   0x00CF92000000FFFF      /* 0x10: data, base 0, 4 GiB */
mb_gdt_end:
        .align  4
        .word   0
mb_gdt_desc:
        .word   mb_gdt_end - mb_gdt - 1
        .long   mb_gdt

        /* The stack in .bss, not guest.ld's NOLOAD .stack: the loader
         * places the boot information past the last byte of the
         * segments' memory size, so it stays clear of the stack. */
        .bss
        .align  16
        .space  16384
mb_stack_top:

        .section .note.GNU-stack, "", @progbits
