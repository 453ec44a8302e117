/*
 * gpu.c - drives the GPU at 0xFD000000.  Commands go into a ring in guest
 * RAM (PB_ADDR, PB_BYTES); the GPU runs them at each vblank and moves GET.
 * The writer keeps one word free so PUT == GET always means empty, and
 * never lets a command straddle the ring's end (it pads with NOPs), so the
 * ring's wrap needs nothing from the GPU but NOP.  When the ring is full
 * the writer publishes what it has and sleeps (hlt) until a vblank frees
 * space: the GPU only consumes at vblank.
 */
#include "gpu.h"
#include "console.h"
#include "idt.h"
#include "io.h"
#include "layout.h"

#define REG_ID          0x000
#define REG_INTR_STATUS 0x004
#define REG_INTR_ENABLE 0x008
#define REG_ERROR       0x00C
#define REG_SCANOUT     0x010
#define REG_PITCH       0x014
#define REG_FRAME       0x020
#define REG_PB_BASE     0x030
#define REG_PB_SIZE     0x034
#define REG_PB_PUT      0x038
#define REG_PB_GET      0x03C

#define GPU_ID          0x31474258u     /* "XBG1" */
#define INTR_VBLANK     1u
#define INTR_NOTIFY     2u
#define INTR_ERROR      4u


static volatile uint32_t vblanks;
static volatile uint32_t error_code;
static uint32_t put;                    /* the writer's offset */

static uint32_t reg_read(uint32_t off)
{
    return *(volatile uint32_t *)(GPU_BASE + off);
}

static void reg_write(uint32_t off, uint32_t v)
{
    *(volatile uint32_t *)(GPU_BASE + off) = v;
}

static void gpu_irq(void)
{
    uint32_t st = reg_read(REG_INTR_STATUS);
    reg_write(REG_INTR_STATUS, st);     /* write 1 to clear */
    if (st & INTR_ERROR) {
        if (!error_code) {
            error_code = reg_read(REG_ERROR);
        }
        reg_write(REG_ERROR, 0);
    }
    if (st & INTR_VBLANK) {
        vblanks++;
    }
}

bool gpu_init(void)
{
    uint32_t id = reg_read(REG_ID);
    if (id != GPU_ID) {
        con_printf("xboxguest: gpu: bad ID %08x\n", id);
        return false;
    }
    reg_write(REG_INTR_ENABLE, 0);
    reg_write(REG_PB_BASE, PB_ADDR);
    reg_write(REG_PB_SIZE, PB_BYTES);
    reg_write(REG_PB_GET, 0);
    reg_write(REG_PB_PUT, 0);
    put = 0;
    reg_write(REG_PITCH, SCREEN_PITCH);
    reg_write(REG_SCANOUT, FB0_ADDR);
    reg_write(REG_ERROR, 0);
    reg_write(REG_INTR_STATUS, INTR_VBLANK | INTR_NOTIFY | INTR_ERROR);
    irq_register(GPU_IRQ, gpu_irq);
    reg_write(REG_INTR_ENABLE, INTR_VBLANK | INTR_ERROR);
    /* RAM may hold an older picture after a reset: show black until the
     * first frame is drawn. */
    gpu_set_target(FB0_ADDR, SCREEN_PITCH);
    gpu_clear(0);
    gpu_set_target(FB1_ADDR, SCREEN_PITCH);
    gpu_clear(0);
    gpu_kick();
    return true;
}

uint32_t gpu_vblanks(void)
{
    return vblanks;
}

uint32_t gpu_take_error(void)
{
    uint32_t e;
    cli();
    e = error_code;
    error_code = 0;
    sti();
    return e;
}

uint32_t gpu_frame_reg(void)
{
    return reg_read(REG_FRAME);
}

void gpu_kick(void)
{
    reg_write(REG_PB_PUT, put);
}

/* Bytes the writer may still use without catching up with GET. */
static uint32_t ring_free(void)
{
    uint32_t get = reg_read(REG_PB_GET);
    return (get + PB_BYTES - put - 4) % PB_BYTES;
}

static void wait_vblank_once(void)
{
    uint32_t v = vblanks;
    cli();
    while (vblanks == v) {
        sti_hlt_cli();
    }
    sti();
}

/* Makes room for a command of n words, contiguous before the ring end. */
static void reserve(uint32_t words)
{
    uint32_t bytes = words * 4;
    uint32_t tail = PB_BYTES - put;
    if (tail < bytes) {
        /* Pad to the end with NOPs so the command starts at offset 0. */
        while (ring_free() < tail) {
            gpu_kick();
            wait_vblank_once();
        }
        for (; put < PB_BYTES; put += 4) {
            *(volatile uint32_t *)(PB_ADDR + put) = GPU_OP_NOP;
        }
        put = 0;
    }
    while (ring_free() < bytes) {
        gpu_kick();
        wait_vblank_once();
    }
}

volatile uint32_t *gpu_cmd(uint32_t op, uint32_t argc)
{
    volatile uint32_t *p;
    reserve(argc + 1);
    p = (volatile uint32_t *)(PB_ADDR + put);
    p[0] = op | argc << 16;
    put += (argc + 1) * 4;      /* reserve() kept this below the end */
    if (put == PB_BYTES) {
        put = 0;
    }
    return p + 1;
}

void gpu_sync(void)
{
    gpu_kick();
    while (reg_read(REG_PB_GET) != put) {
        wait_vblank_once();
    }
}
