/*
 * ramfill.c - the RAM-filling guest of bench/run-savestate-bench, xblk
 * flavour (-machine xbox; its Multiboot twin for QEMU is ramfill-mb.c).
 *
 * Fills all RAM from RAMFILL_BASE (2 MiB) to the end of RAM with
 * xorshift64 output (ramfill.h), so a save state holds that much
 * incompressible RAM, then runs frames for ever: each frame it sleeps
 * (hlt) until the GPU's vblank interrupt (IRQ 3) and then dirties a few
 * pages of the filled range (one 32-bit PRNG word each, pages visited
 * with an odd stride so every page comes round), so that a save's
 * completion, which streams RAM after the guest resumes, meets guest
 * writes to pages not yet streamed (copy-on-write).  The GPU gets no
 * commands (no push buffer is set up; PUT = GET = 0) and shows RAM from
 * address 0: only its vblank interrupt is used.
 *
 * The seed (-machine xbox,seed=N):
 *   bits 0-31   PRNG seed (ramfill_state())
 *   bits 32-47  pages dirtied per frame (0: 4)
 *   bit 48      dirty nothing (idle frames)
 *
 * Console lines (benchlib.h's markers):
 *   P ram=BYTES base=ADDR bytes=BYTES seed=N dirty_pages=N
 *   B fill BYTES bytes / E fill     around the fill
 *   R                               frames run from here on
 */
#include "benchlib.h"
#include "console.h"
#include "idt.h"
#include "io.h"
#include "layout.h"
#include "ramfill.h"
#include "sysctl.h"

#define REG_INTR_STATUS 0x004
#define REG_INTR_ENABLE 0x008
#define INTR_VBLANK     1u
#define DIRTY_DEFAULT   4u
#define PAGE            4096u
#define PAGE_STRIDE     7919u           /* odd: visits every page */

static volatile uint32_t vblanks;

static uint32_t gpu_reg(uint32_t off)
{
    return *(volatile uint32_t *)(GPU_BASE + off);
}

static void gpu_reg_write(uint32_t off, uint32_t v)
{
    *(volatile uint32_t *)(GPU_BASE + off) = v;
}

static void vblank_irq(void)
{
    uint32_t st = gpu_reg(REG_INTR_STATUS);
    gpu_reg_write(REG_INTR_STATUS, st);     /* write 1 to clear */
    if (st & INTR_VBLANK) {
        vblanks++;
    }
}

int main(void)
{
    uint64_t seed = bench_start("ramfill");
    uint32_t ram = sysctl_ram_size();
    uint32_t dirty = (uint32_t)(seed >> 32) & 0xFFFF;
    uint64_t state = ramfill_state((uint32_t)seed);
    uint32_t pages, page = 0, last;
    if (!dirty) {
        dirty = DIRTY_DEFAULT;
    }
    if (seed >> 48 & 1) {
        dirty = 0;
    }
    if ((uint32_t)__image_end > RAMFILL_BASE || ram <= RAMFILL_BASE) {
        bench_fail("the program or RAM does not fit the fill range");
    }
    pages = (ram - RAMFILL_BASE) / PAGE;
    con_printf("P ram=%u base=%u bytes=%u seed=%u dirty_pages=%u\n", ram,
               RAMFILL_BASE, ram - RAMFILL_BASE, (uint32_t)seed, dirty);
    bench_begin("fill", ram - RAMFILL_BASE, "bytes");
    ramfill_fill(RAMFILL_BASE, ram, &state);
    bench_end("fill");

    /* Frames: only the vblank interrupt of the GPU. */
    gpu_reg_write(REG_INTR_ENABLE, 0);
    gpu_reg_write(REG_INTR_STATUS, 7);
    irq_register(GPU_IRQ, vblank_irq);
    gpu_reg_write(REG_INTR_ENABLE, INTR_VBLANK);
    con_printf("R\n");
    last = vblanks;
    for (;;) {
        cli();
        while (vblanks == last) {
            sti_hlt_cli();
        }
        last = vblanks;
        sti();
        for (uint32_t i = 0; i < dirty; i++) {
            uint32_t off;
            state = ramfill_next(state);
            page = (page + PAGE_STRIDE) % pages;
            off = (uint32_t)(state >> 32) & (PAGE - 4);
            *(volatile uint32_t *)(RAMFILL_BASE + page * PAGE + off) =
                (uint32_t)state;
        }
    }
}
