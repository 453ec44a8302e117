/*
 * ide.c - the primary IDE channel: ports 0x1F0-0x1F7 and 0x3F6, bus
 * master at 0xFF60, IRQ 14.  The interrupt handler reads the bus-master
 * status and the ATA status (which drops the drive's INTRQ, so the next
 * command's edge reaches the PIC), records both and sets a flag; the
 * drivers sleep on that flag with hlt.  Nothing here busy-waits for a
 * command's completion, so the guest's timing is the virtual clock's.
 */
#include "ide.h"
#include "console.h"
#include "gpu.h"
#include "idt.h"
#include "io.h"
#include "layout.h"

#define CMD_BASE    0x1F0
#define CTRL_PORT   0x3F6       /* read: alternate status; write: control */
#define BM_BASE     0xFF60
#define BM_CMD      (BM_BASE + 0)
#define BM_STATUS   (BM_BASE + 2)
#define BM_PRD      (BM_BASE + 4)

#define BM_CMD_START    0x01
#define BM_CMD_TO_MEM   0x08    /* the bus master writes RAM */

struct prd {
    uint32_t addr;
    uint32_t count;             /* bits 0-15 bytes (0: 64 KiB), bit 31 EOT */
};

static volatile bool irq_seen;
static volatile uint8_t irq_status, irq_bm_status;
static uint8_t bm_dir;

static void ide_irq(void)
{
    uint8_t bm = inb(BM_STATUS);
    irq_bm_status = bm;
    irq_status = inb(CMD_BASE + ATA_STATUS);    /* acknowledges INTRQ */
    /* Clear the latched interrupt bit; keep Error for the waiter's copy. */
    outb(BM_STATUS, BM_ST_IRQ | BM_ST_ERROR);
    irq_seen = true;
}

void ide_init(void)
{
    outb(CTRL_PORT, 0x00);      /* nIEN = 0: the drives may interrupt */
    outb(BM_CMD, 0);
    outb(BM_STATUS, BM_ST_IRQ | BM_ST_ERROR);
    irq_register(IDE0_IRQ, ide_irq);
}

uint16_t ide_port(int reg)
{
    return (uint16_t)(CMD_BASE + reg);
}

uint8_t ide_altstatus(void)
{
    return inb(CTRL_PORT);
}

void ide_select(int unit)
{
    outb(CMD_BASE + ATA_DEVICE, (uint8_t)(0xA0 | (unit & 1) << 4));
    /* The classic 400 ns settle: four alternate-status reads. */
    for (int i = 0; i < 4; i++) {
        (void)ide_altstatus();
    }
}

IdeProbe ide_probe(int unit)
{
    uint8_t st;
    ide_select(unit);
    st = ide_altstatus();
    if (st == 0xFF) {
        return IDE_PROBE_ABSENT;        /* nothing on the channel */
    }
    if (inb(CMD_BASE + ATA_LBA_MID) == 0x14 &&
        inb(CMD_BASE + ATA_LBA_HI) == 0xEB) {
        return IDE_PROBE_ATAPI;
    }
    /* A present ATA device is ready (DRDY) or still busy; status 0
     * without the PACKET signature is an empty position, which would
     * ignore any command (and cost a timeout). */
    return (st & (ST_BSY | ST_DRDY)) ? IDE_PROBE_ATA : IDE_PROBE_ABSENT;
}

uint8_t ide_poll_ready(bool want_drq)
{
    uint8_t st = ST_BSY;
    for (int i = 0; i < 100000; i++) {
        st = ide_altstatus();
        if (st == 0xFF) {
            return st;                  /* floating bus: nothing there */
        }
        if (st & ST_BSY) {
            continue;
        }
        if (!want_drq || (st & (ST_DRQ | ST_ERR | ST_DF))) {
            return st;
        }
    }
    return st | ST_BSY;
}

void ide_arm(void)
{
    irq_seen = false;
}

bool ide_done(void)
{
    return irq_seen;
}

void ide_completion(IdeCompletion *c)
{
    c->ok = irq_seen;
    c->status = irq_status;
    c->bm_status = irq_bm_status;
    c->error = (irq_status & ST_ERR) ? inb(CMD_BASE + ATA_ERROR) : 0;
}

void ide_wait(IdeCompletion *c, unsigned timeout_frames)
{
    uint32_t start = gpu_vblanks();
    cli();
    while (!irq_seen && gpu_vblanks() - start <= timeout_frames) {
        sti_hlt_cli();
    }
    sti();
    ide_completion(c);
    if (!c->ok) {
        c->status = ide_altstatus();
    }
}

bool ide_dma_setup(uint32_t addr, uint32_t len, bool to_memory)
{
    volatile struct prd *prd = (volatile struct prd *)PRD_ADDR;
    int n = 0;
    if (len == 0 || (len & 1) || (addr & 1)) {
        return false;
    }
    /* One entry per piece that stays inside a 64 KiB window. */
    while (len) {
        uint32_t room = 0x10000 - (addr & 0xFFFF);
        uint32_t chunk = len < room ? len : room;
        if (n == PRD_MAX) {
            return false;
        }
        prd[n].addr = addr;
        prd[n].count = chunk & 0xFFFF;  /* 64 KiB encodes as 0 */
        addr += chunk;
        len -= chunk;
        n++;
    }
    prd[n - 1].count |= 0x80000000u;
    bm_dir = to_memory ? BM_CMD_TO_MEM : 0;
    outb(BM_CMD, bm_dir);               /* stopped, direction set */
    outb(BM_STATUS, BM_ST_IRQ | BM_ST_ERROR);
    outl(BM_PRD, PRD_ADDR);
    return true;
}

void ide_dma_start(void)
{
    outb(BM_CMD, bm_dir | BM_CMD_START);
}

void ide_dma_stop(void)
{
    outb(BM_CMD, bm_dir);
}
