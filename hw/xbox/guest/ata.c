/*
 * ata.c - the ATA disk driver.  The command protocols follow ATA/ATAPI-7:
 *   PIO data-in (IDENTIFY): command, interrupt with DRQ, read 256 words.
 *   PIO data-out (SECURITY UNLOCK): command, poll for DRQ (ATA raises no
 *     interrupt before the first block), write 256 words, interrupt.
 *   DMA: PRD table and direction, task file, command, start the bus
 *     master, interrupt, stop the bus master, check both statuses.
 *   Non-data (FLUSH CACHE): command, interrupt.
 * The channel is given back idle after each command.
 */
#include "ata.h"
#include "console.h"
#include "io.h"
#include "layout.h"
#include "lib.h"
#include "sysctl.h"

#define CMD_READ_DMA        0xC8
#define CMD_READ_DMA_EXT    0x25
#define CMD_WRITE_DMA       0xCA
#define CMD_WRITE_DMA_EXT   0x35
#define CMD_FLUSH           0xE7
#define CMD_FLUSH_EXT       0xEA
#define CMD_IDENTIFY        0xEC
#define CMD_SEC_UNLOCK      0xF2

static uint8_t dev_bits(int unit)
{
    return (uint8_t)(0xA0 | (unit & 1) << 4);
}

void ata_id_string(const uint16_t *id, int word, int nwords, char *out)
{
    int n = 0;
    for (int i = 0; i < nwords; i++) {
        out[n++] = (char)(id[word + i] >> 8);
        out[n++] = (char)id[word + i];
    }
    out[n] = 0;
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == 0)) {
        out[--n] = 0;
    }
    for (int i = 0; i < n; i++) {
        if (out[i] < 0x20 || out[i] > 0x7E) {
            out[i] = '?';
        }
    }
}

/* Reads 256 data words into buf (PIO data-in). */
static void pio_read_block(uint16_t *buf)
{
    for (int i = 0; i < 256; i++) {
        buf[i] = inw(ide_port(ATA_DATA));
    }
}

static void parse_identify(AtaDisk *d, const uint16_t *id)
{
    uint16_t sec = id[128];
    d->present = true;
    d->lba48 = (id[83] & (1u << 10)) != 0;
    if (d->lba48) {
        d->sectors = (uint64_t)id[100] | (uint64_t)id[101] << 16 |
                     (uint64_t)id[102] << 32 | (uint64_t)id[103] << 48;
    } else {
        d->sectors = (uint32_t)id[60] | (uint32_t)id[61] << 16;
    }
    /* Word 128 is meaningful only when word 82 says SECURITY exists. */
    d->security_supported = (id[82] & (1u << 1)) && (sec & 1);
    d->security_enabled = d->security_supported && (sec & (1u << 1));
    d->security_locked = d->security_supported && (sec & (1u << 2));
    d->security_frozen = d->security_supported && (sec & (1u << 3));
    d->security_expired = d->security_supported && (sec & (1u << 4));
    ata_id_string(id, 27, 20, d->model);
    ata_id_string(id, 10, 10, d->serial);
    ata_id_string(id, 23, 4, d->firmware);
}

bool ata_identify(int unit, AtaDisk *d, bool *atapi)
{
    static uint16_t id[256];
    IdeCompletion c;
    uint8_t st;
    memset(d, 0, sizeof(*d));
    *atapi = false;
    ide_select(unit);
    st = ide_altstatus();
    if (st == 0xFF) {
        return false;                   /* nothing on the bus */
    }
    if (ide_poll_ready(false) & ST_BSY) {
        return false;
    }
    ide_arm();
    outb(ide_port(ATA_COMMAND), CMD_IDENTIFY);
    ide_wait(&c, IDE_TIMEOUT_FRAMES);
    if (!c.ok) {
        return false;
    }
    if (c.status & ST_ERR) {
        /* A PACKET device aborts IDENTIFY DEVICE and leaves its
         * signature in the cylinder registers. */
        *atapi = inb(ide_port(ATA_LBA_MID)) == 0x14 &&
                 inb(ide_port(ATA_LBA_HI)) == 0xEB;
        return false;
    }
    if (!(c.status & ST_DRQ)) {
        return false;
    }
    pio_read_block(id);
    d->unit = unit;
    parse_identify(d, id);
    return true;
}

/* SECURITY UNLOCK: a 512-byte block, word 0 bit 0 = 0 (user password),
 * words 1-16 the 32-byte password. */
static bool send_unlock(int unit)
{
    static uint16_t block[256];
    uint8_t key[32];
    IdeCompletion c;
    uint8_t st;
    memset(block, 0, sizeof(block));
    sysctl_hdd_key(key);
    for (int i = 0; i < 16; i++) {
        block[1 + i] = (uint16_t)(key[2 * i] | key[2 * i + 1] << 8);
    }
    ide_select(unit);
    ide_arm();
    outb(ide_port(ATA_COMMAND), CMD_SEC_UNLOCK);
    st = ide_poll_ready(true);
    if ((st & (ST_BSY | ST_ERR | ST_DF)) || !(st & ST_DRQ)) {
        con_printf("xboxguest: hdd: SECURITY UNLOCK refused (status %02x)\n",
                   st);
        return false;
    }
    for (int i = 0; i < 256; i++) {
        outw(ide_port(ATA_DATA), block[i]);
    }
    ide_wait(&c, IDE_TIMEOUT_FRAMES);
    if (!c.ok || (c.status & (ST_ERR | ST_DF))) {
        con_printf("xboxguest: hdd: SECURITY UNLOCK failed (status %02x "
                   "error %02x)\n", c.status, c.error);
        return false;
    }
    return true;
}

bool ata_unlock(int unit, AtaDisk *d)
{
    bool atapi;
    if (!d->security_supported || !d->security_locked) {
        con_printf("xboxguest: hdd: not locked (security %s)\n",
                   !d->security_supported ? "not supported"
                   : d->security_enabled ? "enabled" : "disabled");
        return true;
    }
    if (d->security_expired) {
        con_printf("xboxguest: hdd: locked, unlock attempts exhausted\n");
        return false;
    }
    if (!send_unlock(unit)) {
        return false;
    }
    /* Trust the drive's own word that it is unlocked now. */
    if (!ata_identify(unit, d, &atapi) || d->security_locked) {
        con_printf("xboxguest: hdd: still locked after UNLOCK\n");
        return false;
    }
    con_printf("xboxguest: hdd: unlocked\n");
    return true;
}

/* Task file for an LBA command: LBA48 writes the high bytes first (the
 * registers are two-deep FIFOs), LBA28 puts LBA bits 24-27 in DEVICE. */
static void set_taskfile(AtaDisk *d, uint64_t lba, uint32_t count)
{
    uint16_t p = ide_port(0);
    if (d->lba48) {
        outb(p + ATA_FEATURES, 0);
        outb(p + ATA_NSECT, (uint8_t)(count >> 8));
        outb(p + ATA_LBA_LO, (uint8_t)(lba >> 24));
        outb(p + ATA_LBA_MID, (uint8_t)(lba >> 32));
        outb(p + ATA_LBA_HI, (uint8_t)(lba >> 40));
        outb(p + ATA_FEATURES, 0);
        outb(p + ATA_NSECT, (uint8_t)count);
        outb(p + ATA_LBA_LO, (uint8_t)lba);
        outb(p + ATA_LBA_MID, (uint8_t)(lba >> 8));
        outb(p + ATA_LBA_HI, (uint8_t)(lba >> 16));
        outb(p + ATA_DEVICE, (uint8_t)(0x40 | dev_bits(d->unit)));
    } else {
        outb(p + ATA_FEATURES, 0);
        outb(p + ATA_NSECT, (uint8_t)count);    /* 256 encodes as 0 */
        outb(p + ATA_LBA_LO, (uint8_t)lba);
        outb(p + ATA_LBA_MID, (uint8_t)(lba >> 8));
        outb(p + ATA_LBA_HI, (uint8_t)(lba >> 16));
        outb(p + ATA_DEVICE, (uint8_t)(0x40 | dev_bits(d->unit) |
                                       ((lba >> 24) & 0x0F)));
    }
}

static bool start_dma(AtaDisk *d, bool write, uint64_t lba, uint32_t count,
                      uint32_t addr)
{
    uint8_t cmd;
    if (!d->present || count == 0 || count > 128 || lba + count > d->sectors
        || (!d->lba48 && lba + count > (1u << 28))) {
        return false;
    }
    if (!ide_dma_setup(addr, count * 512, !write)) {
        return false;
    }
    ide_select(d->unit);
    if (ide_poll_ready(false) & ST_BSY) {
        return false;
    }
    set_taskfile(d, lba, count);
    if (write) {
        cmd = d->lba48 ? CMD_WRITE_DMA_EXT : CMD_WRITE_DMA;
    } else {
        cmd = d->lba48 ? CMD_READ_DMA_EXT : CMD_READ_DMA;
    }
    ide_arm();
    outb(ide_port(ATA_COMMAND), cmd);
    ide_dma_start();
    return true;
}

bool ata_finish(const char *what)
{
    IdeCompletion c;
    ide_completion(&c);
    ide_dma_stop();
    if (!c.ok || (c.status & (ST_ERR | ST_DF | ST_DRQ | ST_BSY)) ||
        (c.bm_status & BM_ST_ERROR)) {
        con_printf("xboxguest: hdd: %s failed: status %02x error %02x "
                   "dma %02x\n", what, c.status, c.error, c.bm_status);
        return false;
    }
    return true;
}

/* Waits for the armed command, then checks it. */
static bool wait_finish(const char *what)
{
    IdeCompletion c;
    ide_wait(&c, IDE_TIMEOUT_FRAMES);
    if (!c.ok) {
        ide_dma_stop();
        con_printf("xboxguest: hdd: %s timed out (status %02x)\n", what,
                   c.status);
        return false;
    }
    return ata_finish(what);
}

bool ata_read(AtaDisk *d, uint64_t lba, uint32_t count, uint32_t addr)
{
    if (!start_dma(d, false, lba, count, addr)) {
        return false;
    }
    return wait_finish("READ DMA");
}

bool ata_write(AtaDisk *d, uint64_t lba, uint32_t count, uint32_t addr)
{
    if (!start_dma(d, true, lba, count, addr)) {
        return false;
    }
    return wait_finish("WRITE DMA");
}

bool ata_start_write(AtaDisk *d, uint64_t lba, uint32_t count,
                     uint32_t addr)
{
    return start_dma(d, true, lba, count, addr);
}

bool ata_start_flush(AtaDisk *d)
{
    if (!d->present) {
        return false;
    }
    ide_select(d->unit);
    if (ide_poll_ready(false) & ST_BSY) {
        return false;
    }
    outb(ide_port(ATA_DEVICE), dev_bits(d->unit));
    ide_arm();
    outb(ide_port(ATA_COMMAND), d->lba48 ? CMD_FLUSH_EXT : CMD_FLUSH);
    return true;
}

bool ata_flush(AtaDisk *d)
{
    if (!ata_start_flush(d)) {
        return false;
    }
    return wait_finish("FLUSH CACHE");
}
