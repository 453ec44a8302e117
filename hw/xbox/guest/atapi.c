/*
 * atapi.c - the ATAPI driver.  A PACKET command goes:
 *   features (bit 0: DMA), byte count limit, command 0xA0;
 *   wait for the drive to ask for the packet (BSY clear, DRQ set: this
 *     drive raises no interrupt for it, so a bounded poll; it takes no
 *     virtual time either way);
 *   write the 12-byte CDB as 6 words;
 *   DMA: start the bus master, sleep until the interrupt;
 *   PIO: each interrupt with DRQ announces a block (byte count in the
 *     cylinder registers), the last interrupt has DRQ clear.
 * CHECK CONDITION (status ERR) carries the sense key in the error
 * register's high nibble; REQUEST SENSE gives ASC/ASCQ.
 */
#include "atapi.h"
#include "ata.h"
#include "console.h"
#include "gpu.h"
#include "ide.h"
#include "io.h"
#include "layout.h"
#include "lib.h"

#define CMD_PACKET          0xA0
#define CMD_IDENTIFY_PACKET 0xA1

#define SCSI_TEST_UNIT_READY 0x00
#define SCSI_REQUEST_SENSE   0x03
#define SCSI_READ_CAPACITY   0x25
#define SCSI_READ10          0x28

#define SENSE_NOT_READY      0x2
#define SENSE_UNIT_ATTENTION 0x6

#define CHUNK_BLOCKS 32                 /* 64 KiB per READ(10) */

/* Result of one packet command. */
typedef struct PacketResult {
    bool ok;            /* completed without CHECK CONDITION */
    bool timeout;
    uint8_t sense_key;  /* when !ok */
    uint32_t bytes;     /* PIO bytes stored */
} PacketResult;

bool atapi_identify(int unit, AtapiDrive *d)
{
    static uint16_t id[256];
    IdeCompletion c;
    memset(d, 0, sizeof(*d));
    ide_select(unit);
    if (ide_poll_ready(false) & ST_BSY) {
        return false;
    }
    ide_arm();
    outb(ide_port(ATA_COMMAND), CMD_IDENTIFY_PACKET);
    ide_wait(&c, IDE_TIMEOUT_FRAMES);
    if (!c.ok || (c.status & ST_ERR) || !(c.status & ST_DRQ)) {
        return false;
    }
    for (int i = 0; i < 256; i++) {
        id[i] = inw(ide_port(ATA_DATA));
    }
    d->unit = unit;
    d->present = true;
    d->type = (id[0] >> 8) & 0x1F;
    ata_id_string(id, 27, 20, d->model);
    ata_id_string(id, 10, 10, d->serial);
    ata_id_string(id, 23, 4, d->firmware);
    return true;
}

/* Reads one PIO block announced by the drive into buf (up to room bytes;
 * any excess is drained so the drive can go on). */
static uint32_t pio_block(uint8_t *buf, uint32_t room)
{
    uint32_t n = inb(ide_port(ATA_LBA_MID)) |
                 (uint32_t)inb(ide_port(ATA_LBA_HI)) << 8;
    uint32_t got = 0;
    for (uint32_t i = 0; i < n; i += 2) {
        uint16_t w = inw(ide_port(ATA_DATA));
        if (got + 2 <= room) {
            buf[got] = (uint8_t)w;
            buf[got + 1] = (uint8_t)(w >> 8);
            got += 2;
        }
    }
    return got;
}

/* The command phase: task file, PACKET, the drive's request for the CDB
 * (BSY clear, DRQ set), the CDB itself.  False if the drive refused. */
static bool send_packet(AtapiDrive *d, const uint8_t cdb[12], uint32_t len,
                        bool dma, PacketResult *r)
{
    uint16_t limit = len > 0xFFFE ? 0xFFFE : (uint16_t)len;
    uint8_t st;
    ide_select(d->unit);
    if (ide_poll_ready(false) & ST_BSY) {
        r->timeout = true;
        return false;
    }
    outb(ide_port(ATA_FEATURES), dma ? 1 : 0);
    outb(ide_port(ATA_LBA_MID), (uint8_t)limit);
    outb(ide_port(ATA_LBA_HI), (uint8_t)(limit >> 8));
    ide_arm();
    outb(ide_port(ATA_COMMAND), CMD_PACKET);
    st = ide_poll_ready(true);
    if ((st & (ST_BSY | ST_ERR)) || !(st & ST_DRQ)) {
        r->timeout = (st & ST_BSY) != 0;
        r->sense_key = (st & ST_ERR) ? inb(ide_port(ATA_ERROR)) >> 4 : 0;
        return false;
    }
    /* An interrupt for the packet request (a DRQ-interrupt drive) must
     * not count as the completion. */
    ide_arm();
    for (int i = 0; i < 6; i++) {
        outw(ide_port(ATA_DATA), (uint16_t)(cdb[2 * i] | cdb[2 * i + 1] << 8));
    }
    return true;
}

/* The data and status phases: sleeps on the interrupts; in PIO each one
 * with DRQ set announces a block, the one without ends the command. */
static void finish_packet(uint32_t addr, uint32_t len, bool dma,
                          PacketResult *r)
{
    IdeCompletion c;
    for (;;) {
        ide_wait(&c, IDE_TIMEOUT_FRAMES);
        if (!c.ok) {
            r->timeout = true;
            break;
        }
        if (dma || !(c.status & ST_DRQ)) {
            break;
        }
        /* Re-arm before reading: the last word may end the command. */
        ide_arm();
        r->bytes += pio_block((uint8_t *)addr + r->bytes, len - r->bytes);
    }
    if (dma) {
        ide_dma_stop();
    }
    if (r->timeout) {
        return;
    }
    if (c.status & ST_ERR) {
        r->sense_key = c.error >> 4;
    } else if (dma && (c.bm_status & BM_ST_ERROR)) {
        con_printf("xboxguest: dvd: DMA error (dma status %02x)\n",
                   c.bm_status);
    } else {
        r->ok = true;
    }
}

/*
 * One PACKET command.  dma: transfer len bytes into addr by DMA; else PIO
 * data-in into addr (len bytes at most; len 0: no data).
 */
static PacketResult packet(AtapiDrive *d, const uint8_t cdb[12],
                           uint32_t addr, uint32_t len, bool dma)
{
    PacketResult r = { 0 };
    if (dma && !ide_dma_setup(addr, len, true)) {
        r.timeout = true;
        return r;
    }
    if (!send_packet(d, cdb, len, dma, &r)) {
        return r;
    }
    if (dma) {
        ide_dma_start();
    }
    finish_packet(addr, len, dma, &r);
    return r;
}

static void cdb_clear(uint8_t cdb[12], uint8_t op)
{
    memset(cdb, 0, 12);
    cdb[0] = op;
}

/* REQUEST SENSE by PIO; asc/ascq of the pending condition. */
static bool request_sense(AtapiDrive *d, uint8_t *key, uint8_t *asc,
                          uint8_t *ascq)
{
    static uint8_t sense[18];
    uint8_t cdb[12];
    PacketResult r;
    cdb_clear(cdb, SCSI_REQUEST_SENSE);
    cdb[4] = sizeof(sense);
    memset(sense, 0, sizeof(sense));
    r = packet(d, cdb, (uint32_t)sense, sizeof(sense), false);
    if (!r.ok || r.bytes < 14) {
        return false;
    }
    *key = sense[2] & 0x0F;
    *asc = sense[12];
    *ascq = sense[13];
    return true;
}

static bool read_capacity(AtapiDrive *d)
{
    static uint8_t cap[8];
    uint8_t cdb[12];
    PacketResult r;
    cdb_clear(cdb, SCSI_READ_CAPACITY);
    r = packet(d, cdb, (uint32_t)cap, sizeof(cap), false);
    if (!r.ok || r.bytes < 8) {
        return false;
    }
    d->blocks = get_be32(cap) + 1;
    d->block_size = get_be32(cap + 4);
    return true;
}

/* Sleeps for n frames of virtual time (the drive spinning up). */
static void wait_frames(unsigned n)
{
    uint32_t start = gpu_vblanks();
    cli();
    while (gpu_vblanks() - start < n) {
        sti_hlt_cli();
    }
    sti();
}

bool atapi_wait_ready(AtapiDrive *d)
{
    uint8_t cdb[12];
    for (int tries = 0; tries < 20; tries++) {
        uint8_t key = 0, asc = 0, ascq = 0;
        PacketResult r;
        cdb_clear(cdb, SCSI_TEST_UNIT_READY);
        r = packet(d, cdb, 0, 0, false);
        if (r.ok) {
            d->has_medium = read_capacity(d);
            if (d->has_medium && d->block_size != 2048) {
                con_printf("xboxguest: dvd: block size %u, expected 2048\n",
                           d->block_size);
                d->has_medium = false;
            }
            return d->has_medium;
        }
        if (r.timeout || !request_sense(d, &key, &asc, &ascq)) {
            con_printf("xboxguest: dvd: no answer to TEST UNIT READY\n");
            return false;
        }
        con_printf("xboxguest: dvd: sense %x/%02x/%02x\n", key, asc, ascq);
        if (key == SENSE_UNIT_ATTENTION) {
            continue;           /* medium changed / reset: ask again */
        }
        if (key == SENSE_NOT_READY && asc == 0x3A) {
            con_printf("xboxguest: dvd: no medium\n");
            return false;
        }
        if (key == SENSE_NOT_READY) {
            wait_frames(30);    /* becoming ready */
            continue;
        }
        return false;
    }
    return false;
}

bool atapi_read(AtapiDrive *d, uint32_t lba, uint32_t count, uint32_t addr)
{
    uint8_t cdb[12];
    while (count) {
        uint32_t n = count < CHUNK_BLOCKS ? count : CHUNK_BLOCKS;
        PacketResult r;
        cdb_clear(cdb, SCSI_READ10);
        cdb[2] = (uint8_t)(lba >> 24);
        cdb[3] = (uint8_t)(lba >> 16);
        cdb[4] = (uint8_t)(lba >> 8);
        cdb[5] = (uint8_t)lba;
        cdb[7] = (uint8_t)(n >> 8);
        cdb[8] = (uint8_t)n;
        r = packet(d, cdb, addr, n * 2048, true);
        if (!r.ok) {
            con_printf("xboxguest: dvd: READ(10) lba %u count %u failed "
                       "(sense key %x%s)\n", lba, n, r.sense_key,
                       r.timeout ? ", timeout" : "");
            return false;
        }
        lba += n;
        count -= n;
        addr += n * 2048;
    }
    return true;
}
