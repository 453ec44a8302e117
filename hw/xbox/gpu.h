/*
 * gpu.h - the push-buffer GPU (docs/machine.md, "GPU"): MMIO registers at
 * 0xFD000000, a ring of commands in guest RAM consumed at each vblank, a
 * 640x480 XRGB8888 framebuffer in guest RAM.  Runs on the device thread.
 */
#ifndef XBLK_HW_XBOX_GPU_H
#define XBLK_HW_XBOX_GPU_H

#include "hw/devio.h"
#include <xblk/xblk.h>
#include <glib.h>
#include <stdbool.h>

#define GPU_MMIO_BASE   0xFD000000u
#define GPU_MMIO_SIZE   0x1000u
#define GPU_IRQ         3
#define GPU_WIDTH       640
#define GPU_HEIGHT      480
#define GPU_VBLANK_NS   16666667LL

typedef struct XboxGPU XboxGPU;

XboxGPU *gpu_new(DevHost *host);
void gpu_free(XboxGPU *gpu);
void gpu_reset(XboxGPU *gpu);
uint32_t gpu_mmio_read(void *gpu, uint32_t offset, unsigned size);
void gpu_mmio_write(void *gpu, uint32_t offset, uint32_t val, unsigned size);
/* One vblank: run pending commands, latch the flip, FRAME += 1, VBLANK. */
void gpu_vblank(XboxGPU *gpu);
uint64_t gpu_frame(const XboxGPU *gpu);
/* The framebuffer shown now (guest physical base and pitch). */
void gpu_scanout(const XboxGPU *gpu, uint32_t *base, uint32_t *pitch);
/* Copies the 640x480 picture shown now into dst (640 * 480 pixels,
 * XRGB8888 in host order, row after row); false with *errp set if the
 * scanout does not lie inside guest RAM. */
bool gpu_read_scanout(XboxGPU *gpu, uint32_t *dst, GError **errp);
/* Save states (opaque: the XboxGPU): the whole register file, the
 * render target and the scanout latch.  Nothing is trusted on use, so
 * any values load. */
const XblkDeviceDesc *gpu_vmstate(void);

#endif
