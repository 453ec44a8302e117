/*
 * ide.h - the primary IDE channel as the drivers (ata.c, atapi.c) see it:
 * task-file access, device selection, the bus-master DMA engine and its
 * PRD table, and waiting for the channel's interrupt (IRQ 14) with hlt.
 *
 * Both drives share the channel, so one command runs at a time; the
 * caller that starts a command owns the channel until it has checked the
 * completion.
 */
#ifndef GUEST_IDE_H
#define GUEST_IDE_H

#include <stdbool.h>
#include <stdint.h>

/* Task-file registers (offsets from the command block base). */
#define ATA_DATA        0
#define ATA_ERROR       1       /* read */
#define ATA_FEATURES    1       /* write */
#define ATA_NSECT       2       /* ATAPI: interrupt reason */
#define ATA_LBA_LO      3
#define ATA_LBA_MID     4       /* ATAPI: byte count low */
#define ATA_LBA_HI      5       /* ATAPI: byte count high */
#define ATA_DEVICE      6
#define ATA_STATUS      7       /* read */
#define ATA_COMMAND     7       /* write */

#define ST_ERR  0x01            /* ATAPI: CHECK CONDITION */
#define ST_DRQ  0x08
#define ST_DF   0x20
#define ST_DRDY 0x40
#define ST_BSY  0x80

#define BM_ST_ACTIVE 0x01
#define BM_ST_ERROR  0x02
#define BM_ST_IRQ    0x04

/* Timeouts in frames of virtual time (vblanks): only a missing or dead
 * device can reach them. */
#define IDE_TIMEOUT_FRAMES 120

typedef struct IdeCompletion {
    bool ok;            /* interrupt seen in time */
    uint8_t status;     /* ATA status read by the interrupt handler */
    uint8_t error;      /* error register, when status has ERR */
    uint8_t bm_status;  /* bus-master status read by the handler */
} IdeCompletion;

/* What answers at a unit, judged from its status and the signature a
 * device leaves in the task file after reset (no command issued). */
typedef enum {
    IDE_PROBE_ABSENT,
    IDE_PROBE_ATA,              /* DRDY, or busy: IDENTIFY DEVICE decides */
    IDE_PROBE_ATAPI,            /* signature 14h/EBh */
} IdeProbe;

void ide_init(void);
IdeProbe ide_probe(int unit);
uint16_t ide_port(int reg);
void ide_select(int unit);
uint8_t ide_altstatus(void);
/* Bounded poll of the alternate status until BSY clears and, when
 * want_drq, DRQ sets (or ERR).  Only for the PIO/PACKET handshakes where
 * ATA gives no interrupt; returns the last status, BSY set on timeout. */
uint8_t ide_poll_ready(bool want_drq);

/* Arm the completion flag; call before writing the command register. */
void ide_arm(void);
/* Sleep (hlt) until the channel interrupts or timeout_frames vblanks
 * pass; fills *c from what the interrupt handler read. */
void ide_wait(IdeCompletion *c, unsigned timeout_frames);
/* Non-blocking: true once the armed command's interrupt came. */
bool ide_done(void);
/* The handler's readings of the last interrupt (after ide_done()). */
void ide_completion(IdeCompletion *c);

/* Bus master: build the PRD table for [addr, addr+len) and load it;
 * to_memory is the transfer direction (device to RAM). */
bool ide_dma_setup(uint32_t addr, uint32_t len, bool to_memory);
void ide_dma_start(void);
void ide_dma_stop(void);

#endif
