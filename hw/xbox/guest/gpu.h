/*
 * gpu.h - the push-buffer GPU: the command ring writer (PUT/GET, waiting
 * for space), the command encoders, and the vblank interrupt (IRQ 3)
 * that paces the frame loop and the disk timeouts.
 */
#ifndef GUEST_GPU_H
#define GUEST_GPU_H

#include <stdbool.h>
#include <stdint.h>

#define BLIT_KEY 1u             /* BLIT flag: skip pixels equal to key */

bool gpu_init(void);
/* Vblank interrupts seen so far (counted by the IRQ 3 handler). */
uint32_t gpu_vblanks(void);
/* The first ERROR code latched since the last call (0: none). */
uint32_t gpu_take_error(void);
/* The GPU's FRAME register. */
uint32_t gpu_frame_reg(void);

/* Opcodes (docs/machine.md, "GPU"). */
#define GPU_OP_NOP          0x00
#define GPU_OP_SET_TARGET   0x01
#define GPU_OP_CLEAR        0x02
#define GPU_OP_FILL_RECT    0x03
#define GPU_OP_BLIT         0x04
#define GPU_OP_FLIP         0x05
#define GPU_OP_NOTIFY       0x06

/* Writes the header of a command with argc arguments into the ring and
 * returns where its arguments go (contiguous; the caller fills all of
 * them before the next gpu_cmd or gpu_kick). */
volatile uint32_t *gpu_cmd(uint32_t op, uint32_t argc);

/* The encoders are inline so a command costs the CPU its words and no
 * argument pushes (every store is slow on this vCPU). */
static inline void gpu_set_target(uint32_t base, uint32_t pitch)
{
    volatile uint32_t *a = gpu_cmd(GPU_OP_SET_TARGET, 2);
    a[0] = base;
    a[1] = pitch;
}

static inline void gpu_clear(uint32_t colour)
{
    gpu_cmd(GPU_OP_CLEAR, 1)[0] = colour;
}

static inline void gpu_fill(int x, int y, int w, int h, uint32_t colour)
{
    volatile uint32_t *a = gpu_cmd(GPU_OP_FILL_RECT, 5);
    a[0] = (uint32_t)x;
    a[1] = (uint32_t)y;
    a[2] = (uint32_t)w;
    a[3] = (uint32_t)h;
    a[4] = colour;
}

static inline void gpu_blit(uint32_t src, uint32_t src_pitch, int sx, int sy,
                            int w, int h, int dx, int dy, uint32_t flags,
                            uint32_t key)
{
    volatile uint32_t *a = gpu_cmd(GPU_OP_BLIT, 10);
    a[0] = src;
    a[1] = src_pitch;
    a[2] = (uint32_t)sx;
    a[3] = (uint32_t)sy;
    a[4] = (uint32_t)w;
    a[5] = (uint32_t)h;
    a[6] = (uint32_t)dx;
    a[7] = (uint32_t)dy;
    a[8] = flags;
    a[9] = key;
}

static inline void gpu_flip(uint32_t base)
{
    gpu_cmd(GPU_OP_FLIP, 1)[0] = base;
}

static inline void gpu_notify(uint32_t value)
{
    gpu_cmd(GPU_OP_NOTIFY, 1)[0] = value;
}

/* Publishes the commands written so far (moves PUT). */
void gpu_kick(void);
/* Sleeps until every published command has run (GET == PUT). */
void gpu_sync(void);

#endif
