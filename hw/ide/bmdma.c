/*
 * bmdma.c - bus-master DMA of the two IDE channels (SFF-8038i / PIIX):
 * the command, status and PRD table address registers at 0xFF60 (primary)
 * and 0xFF68 (secondary), and the PRD table walk that moves data between
 * a device's bounce buffer and guest RAM.
 *
 * Owns: IDEBMDMA of each channel.  core.c and atapi.c call begin / to_ram
 * / from_ram / end for a transfer; writing Start here kicks a device that
 * waits for the engine (ide_dma_kick) or aborts one that is transferring
 * (ide_dma_stopped).  Runs on the device thread.
 *
 * Registers (offsets from the channel's base):
 *   +0 command: bit 0 Start/Stop, bit 3 direction (1: the bus master
 *      writes memory, i.e. device-to-RAM reads).  The direction is
 *      latched only while stopped.
 *   +2 status: bit 0 Active (RO), bit 1 Error and bit 2 Interrupt (write 1
 *      to clear), bits 5/6 drive 0/1 DMA capable (RW), bit 7 simplex (0).
 *   +4 PRD table address (32 bits; bits 1:0 read as 0: the table is
 *      always 4-byte aligned).
 *
 * The PRD table: 8-byte entries { u32 address, u16 count (0 = 64 KiB),
 * u16 flags with bit 15 = EOT }.  What counts as malformed, and what then
 * happens (SFF-8038i leaves it undefined; this is our contract):
 *   - a table entry outside RAM, or the table running past the 64 KiB
 *     page its start lies in (so at most 8192 entries are ever read),
 *   - an odd region address or odd byte count,
 *   - a region crossing a 64 KiB boundary, or lying partly outside RAM,
 *   - a table shorter than the transfer (EOT before the last byte),
 *   - the direction bit not matching the command.
 * Each sets Error and Interrupt and clears Active; the device ends its
 * command with an error and an interrupt.  The whole table is checked when
 * the transfer starts, before any request is made, so a malformed table
 * touches neither RAM nor the image.  A table longer than the transfer is
 * not an error: the data ends early, Active stays set and Interrupt is set
 * (SFF-8038i: "PRD larger than the transfer").  A table the guest rewrites
 * while the transfer runs is walked again chunk by chunk; a bad entry
 * found then ends the transfer the same way (earlier chunks stay done).
 *
 * Invariant: RAM is reached only through devhost_ram_read/ram_write (and
 * devhost_ram_map_read to range-check without copying); no guest value is
 * used as a host address.
 */
#include "hw/ide/internal.h"
#include <string.h>

#define BM_PAGE_MASK 0xFFFF0000u

typedef struct BMPrd {
    uint32_t addr;
    uint32_t len;
    bool eot;
} BMPrd;

/* ---- registers ---- */

void ide_bmdma_reset(IDEChannel *ch)
{
    ch->bm.cmd = 0;
    ch->bm.status = 0;
    ch->bm.prd_addr = 0;
    ch->bm.cur_entry = 0;
    ch->bm.cur_off = 0;
    ch->bm.exhausted = false;
}

uint8_t ide_bmdma_readb(IDEChannel *ch, unsigned off)
{
    switch (off) {
    case 0:
        return ch->bm.cmd;
    case 2:
        return ch->bm.status;
    case 4: case 5: case 6: case 7:
        return ch->bm.prd_addr >> (8 * (off - 4));
    default:
        return 0;
    }
}

static void bmdma_write_cmd(IDEChannel *ch, uint8_t val)
{
    IDEBMDMA *bm = &ch->bm;
    bool was = bm->cmd & BM_CMD_START;
    bool start = val & BM_CMD_START;
    if (was) {
        /* Direction may not change while running. */
        val = (val & ~BM_CMD_TO_RAM) | (bm->cmd & BM_CMD_TO_RAM);
    }
    bm->cmd = val & (BM_CMD_START | BM_CMD_TO_RAM);
    if (!was && start) {
        bm->status |= BM_ST_ACTIVE;
        ide_dma_kick(ch);
    } else if (was && !start) {
        bm->status &= ~BM_ST_ACTIVE;
        ide_dma_stopped(ch);
    }
}

void ide_bmdma_writeb(IDEController *c, IDEChannel *ch, unsigned off,
                      uint8_t val)
{
    IDEBMDMA *bm = &ch->bm;
    switch (off) {
    case 0:
        bmdma_write_cmd(ch, val);
        break;
    case 2:
        bm->status = (bm->status & ~(BM_ST_DRV0_DMA | BM_ST_DRV1_DMA)) |
                     (val & (BM_ST_DRV0_DMA | BM_ST_DRV1_DMA));
        bm->status &= ~(val & (BM_ST_ERROR | BM_ST_INT));
        break;
    case 4: case 5: case 6: case 7: {
        unsigned shift = 8 * (off - 4);
        bm->prd_addr = (bm->prd_addr & ~(0xFFu << shift)) |
                       (uint32_t)val << shift;
        bm->prd_addr &= ~3u;
        break;
    }
    default:
        break;
    }
}

/* ---- PRD walk ---- */

static bool bmdma_in_ram(IDEController *c, uint64_t addr, uint64_t len)
{
    return devhost_ram_map_read(c->host, addr, len) != NULL;
}

/* Loads and checks the entry at addr.  False if it is malformed. */
static bool bmdma_load(IDEController *c, IDEChannel *ch, uint32_t addr,
                       BMPrd *prd)
{
    uint8_t e[8];
    uint32_t page = ch->bm.prd_addr & BM_PAGE_MASK;
    if ((addr & BM_PAGE_MASK) != page ||
        ((addr + 7) & BM_PAGE_MASK) != page ||
        !devhost_ram_read(c->host, addr, e, sizeof(e))) {
        return false;
    }
    uint32_t count = e[4] | e[5] << 8;
    prd->addr = e[0] | e[1] << 8 | e[2] << 16 | (uint32_t)e[3] << 24;
    prd->len = count ? count : 0x10000;
    prd->eot = e[7] & 0x80;
    if ((prd->addr & 1) || (prd->len & 1) ||
        (prd->addr & 0xFFFF) + prd->len > 0x10000) {
        return false;
    }
    return bmdma_in_ram(c, prd->addr, prd->len);
}

/* Sets the error state of a failed transfer (idempotent). */
static void bmdma_fail(IDEChannel *ch)
{
    ch->bm.status |= BM_ST_ERROR | BM_ST_INT;
    ch->bm.status &= ~BM_ST_ACTIVE;
}

bool ide_bmdma_begin(IDEController *c, IDEChannel *ch, uint64_t bytes,
                     bool to_ram)
{
    IDEBMDMA *bm = &ch->bm;
    uint32_t entry = bm->prd_addr;
    uint64_t left = bytes;
    BMPrd prd;

    bm->cur_entry = bm->prd_addr;
    bm->cur_off = 0;
    bm->exhausted = false;
    if (!!(bm->cmd & BM_CMD_TO_RAM) != to_ram) {
        bmdma_fail(ch);
        return false;
    }
    /* Check every entry the transfer will use; the 64 KiB page rule of
     * bmdma_load bounds the walk. */
    while (left) {
        if (!bmdma_load(c, ch, entry, &prd)) {
            bmdma_fail(ch);
            return false;
        }
        left -= MIN(left, prd.len);
        if (left && prd.eot) {
            bmdma_fail(ch);     /* table shorter than the transfer */
            return false;
        }
        entry += 8;
    }
    return true;
}

/* Moves len bytes between buf and the regions at the cursor. */
static bool bmdma_copy(IDEController *c, IDEChannel *ch, uint8_t *buf,
                       size_t len, bool to_ram)
{
    IDEBMDMA *bm = &ch->bm;
    BMPrd prd;
    while (len) {
        if (bm->exhausted || !bmdma_load(c, ch, bm->cur_entry, &prd) ||
            bm->cur_off >= prd.len) {
            bmdma_fail(ch);
            return false;
        }
        size_t n = MIN(len, prd.len - bm->cur_off);
        uint64_t gpa = (uint64_t)prd.addr + bm->cur_off;
        bool ok = to_ram ? devhost_ram_write(c->host, gpa, buf, n)
                         : devhost_ram_read(c->host, gpa, buf, n);
        if (!ok) {
            bmdma_fail(ch);
            return false;
        }
        buf += n;
        len -= n;
        bm->cur_off += n;
        if (bm->cur_off == prd.len) {
            bm->exhausted = prd.eot;
            bm->cur_entry += 8;
            bm->cur_off = 0;
        }
    }
    return true;
}

bool ide_bmdma_to_ram(IDEController *c, IDEChannel *ch, const void *buf,
                      size_t len)
{
    return bmdma_copy(c, ch, (uint8_t *)buf, len, true);
}

bool ide_bmdma_from_ram(IDEController *c, IDEChannel *ch, void *buf,
                        size_t len)
{
    return bmdma_copy(c, ch, buf, len, false);
}

void ide_bmdma_end(IDEChannel *ch, bool ok)
{
    if (!ok) {
        bmdma_fail(ch);
        return;
    }
    /* Active clears only when the transfer used up the table exactly. */
    if (ch->bm.exhausted) {
        ch->bm.status &= ~BM_ST_ACTIVE;
    }
    ch->bm.status |= BM_ST_INT;
}
