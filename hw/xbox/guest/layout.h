/*
 * layout.h - the reference guest's fixed memory map and the hardware
 * addresses it uses (docs/machine.md).  Big buffers live at fixed physical
 * addresses instead of .bss so that start-up does not spend RAM stores
 * zeroing them (each guest store is slow on this vCPU); DMA and the GPU
 * fill them.  Every DMA buffer starts on a 64 KiB boundary so one PRD
 * entry never crosses one.
 */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

/* The program image (code, data, .bss, stack) sits below 0x00400000. */
#define IMAGE_BASE      0x00100000u

#define PB_ADDR         0x00400000u     /* GPU push buffer ring */
#define PB_BYTES        0x00040000u     /* 256 KiB */
#define PRD_ADDR        0x00440000u     /* bus-master PRD table (4 KiB) */
#define PRD_MAX         64              /* entries */
#define SCRATCH_ADDR    0x00450000u     /* 64 KiB: sectors, sense data */
#define SAVE_ADDR       0x00460000u     /* 64 KiB: the save record */
#define LEVEL_ADDR      0x00470000u     /* 64 KiB: level data from disc */
#define LEVEL_MAX       0x00010000u
#define SHEET_ADDR      0x00480000u     /* sprite sheet from disc */
#define SHEET_MAX       0x00100000u     /* 1 MiB */
#define FB0_ADDR        0x00600000u     /* framebuffers, 640x480x4 */
#define FB1_ADDR        0x00800000u
#define BG_ADDR         0x00A00000u     /* the level drawn once */

#define SCREEN_W        640
#define SCREEN_H        480
#define SCREEN_PITCH    (SCREEN_W * 4)

/* Hardware. */
#define GPU_BASE        0xFD000000u
#define GPU_IRQ         3
#define IDE0_IRQ        14
#define PORT_DEBUGCON   0xE9
#define PORT_PAD        0xC000
#define PORT_SMC        0xE000

#endif
