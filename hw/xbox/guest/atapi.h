/*
 * atapi.h - the ATAPI DVD drive (primary slave): IDENTIFY PACKET DEVICE,
 * TEST UNIT READY / REQUEST SENSE (UNIT ATTENTION handling), READ
 * CAPACITY and READ(10) by DMA.  2048-byte sectors.
 */
#ifndef GUEST_ATAPI_H
#define GUEST_ATAPI_H

#include <stdbool.h>
#include <stdint.h>

typedef struct AtapiDrive {
    int unit;
    bool present;
    bool has_medium;
    uint8_t type;           /* IDENTIFY PACKET word 0 bits 8-12 (5: CD/DVD) */
    uint32_t blocks;        /* READ CAPACITY: last LBA + 1 */
    uint32_t block_size;
    char model[41], serial[21], firmware[9];
} AtapiDrive;

bool atapi_identify(int unit, AtapiDrive *d);
/* TEST UNIT READY until the medium is ready (consuming UNIT ATTENTION),
 * then READ CAPACITY.  False if there is no readable medium. */
bool atapi_wait_ready(AtapiDrive *d);
/* READ(10) of count 2048-byte blocks into addr by DMA (any count: split
 * into 64 KiB commands). */
bool atapi_read(AtapiDrive *d, uint32_t lba, uint32_t count, uint32_t addr);

#endif
