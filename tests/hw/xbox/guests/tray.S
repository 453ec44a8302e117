/*
 * tray.S - drives the DVD drive's tray (primary channel, unit 1) with
 * ATAPI packets, for the removable-media tests of the monitor
 * (tests/monitor/test-qmp-ide.py):
 *   1. PREVENT ALLOW MEDIUM REMOVAL (lock), then prints "L" (or "l" if the
 *      packet failed) on the debug console;
 *   2. once the gamepad's A button is down: allow, START STOP UNIT with
 *      LoEj (the tray opens), prints "E" / "e";
 *   3. once B is down: START STOP UNIT load (the tray closes), TEST UNIT
 *      READY (which reports the medium change), lock again, prints "K" /
 *      "k";
 * then halts with interrupts off (frames go on).  Polled PIO, nIEN set.
 */
#include "lib.inc"
#define ATA_DATA    0x1F0
#define ATA_FEAT    0x1F1
#define ATA_BCL     0x1F4
#define ATA_BCH     0x1F5
#define ATA_DEV     0x1F6
#define ATA_CMD     0x1F7
#define ATA_CTL     0x3F6
#define DEBUGCON    0xE9
#define PAD_BUTTONS_HI 0xC001   /* bit 0: A, bit 1: B */

        .macro SAY ok, bad
        testb   $0x01, %al      /* ERR */
        movb    $\ok, %al
        jz      1f
        movb    $\bad, %al
1:      outb    %al, $DEBUGCON
        movb    $'\n', %al
        outb    %al, $DEBUGCON
        .endm

        .macro WAIT_BUTTON bit
        movw    $PAD_BUTTONS_HI, %dx
1:      inb     %dx, %al
        testb   $\bit, %al
        jz      1b
        .endm

        .text
        .globl  _start
_start:
        movw    $ATA_CTL, %dx
        movb    $0x02, %al      /* nIEN */
        outb    %al, %dx

        movl    $cdb_lock, %esi
        call    packet
        SAY     'L', 'l'

        WAIT_BUTTON 0x01
        movl    $cdb_allow, %esi
        call    packet
        movl    $cdb_eject, %esi
        call    packet
        SAY     'E', 'e'

        WAIT_BUTTON 0x02
        movl    $cdb_load, %esi
        call    packet
        movl    $cdb_tur, %esi  /* takes the UNIT ATTENTION of the load */
        call    packet
        movl    $cdb_lock, %esi
        call    packet
        SAY     'K', 'k'
2:      hlt
        jmp     2b

/* Sends the 12-byte packet at esi to unit 1 (no data phase); returns the
 * final status in al. */
packet:
        movw    $ATA_DEV, %dx
        movb    $0xB0, %al
        outb    %al, %dx
        movw    $ATA_CMD, %dx
1:      inb     %dx, %al
        testb   $0x80, %al      /* BSY */
        jnz     1b
        movw    $ATA_FEAT, %dx
        xorb    %al, %al        /* PIO */
        outb    %al, %dx
        movw    $ATA_BCL, %dx
        outb    %al, %dx
        movw    $ATA_BCH, %dx
        movb    $0x08, %al
        outb    %al, %dx
        movw    $ATA_CMD, %dx
        movb    $0xA0, %al      /* PACKET */
        outb    %al, %dx
2:      inb     %dx, %al
        testb   $0x80, %al
        jnz     2b
        testb   $0x08, %al      /* DRQ: the packet phase */
        jz      4f
        movw    $ATA_DATA, %dx
        movl    $6, %ecx
        cld
        rep outsw
        movw    $ATA_CMD, %dx
3:      inb     %dx, %al
        testb   $0x80, %al
        jnz     3b
4:      ret

        .data
cdb_lock:
        .byte   0x1E, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0
cdb_allow:
        .byte   0x1E, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
cdb_eject:
        .byte   0x1B, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0
cdb_load:
        .byte   0x1B, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0
cdb_tur:
        .byte   0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
#include "libcode.inc"
