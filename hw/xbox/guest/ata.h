/*
 * ata.h - the ATA hard disk (primary master): IDENTIFY, SECURITY UNLOCK,
 * READ/WRITE DMA (EXT) and FLUSH CACHE (EXT).  Transfers go by bus-master
 * DMA; completion is the channel interrupt (ide.c).
 */
#ifndef GUEST_ATA_H
#define GUEST_ATA_H

#include "ide.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct AtaDisk {
    int unit;           /* 0 master, 1 slave */
    bool present;
    bool lba48;
    bool security_supported, security_enabled, security_locked;
    bool security_frozen, security_expired;
    uint64_t sectors;
    char model[41], serial[21], firmware[9];
} AtaDisk;

/* IDENTIFY DEVICE on unit; false if absent or not an ATA disk (atapi is
 * set when the device answered with the PACKET signature). */
bool ata_identify(int unit, AtaDisk *d, bool *atapi);
/* SECURITY UNLOCK with the system controller's key when the drive is
 * locked; true if the drive ends up unlocked (or had nothing to unlock). */
bool ata_unlock(int unit, AtaDisk *d);

/* Synchronous DMA transfer of count sectors (<= 128: 64 KiB) and flush. */
bool ata_read(AtaDisk *d, uint64_t lba, uint32_t count, uint32_t addr);
bool ata_write(AtaDisk *d, uint64_t lba, uint32_t count, uint32_t addr);
bool ata_flush(AtaDisk *d);

/* Asynchronous halves: start a command, then (once ide_done()) finish it
 * to learn whether it worked.  The channel stays busy in between. */
bool ata_start_write(AtaDisk *d, uint64_t lba, uint32_t count,
                     uint32_t addr);
bool ata_start_flush(AtaDisk *d);
bool ata_finish(const char *what);

/* Copies an IDENTIFY string (byte-swapped words) and trims it. */
void ata_id_string(const uint16_t *id, int word, int nwords, char *out);

#endif
