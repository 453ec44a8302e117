/*
 * gpu.c - the push-buffer GPU (docs/machine.md, "GPU"): MMIO registers at
 * 0xFD000000, a ring of commands in guest RAM executed at each vblank,
 * drawing into 640x480 XRGB8888 surfaces in guest RAM, IRQ 3.
 *
 * Owns: the register file, the render target, the scanout latch and the
 * command interpreter.  The machine calls gpu_mmio_read/write for guest
 * accesses and gpu_vblank() once per frame, all on the device thread; the
 * front end reads the picture through gpu_read_scanout().
 *
 * Invariants:
 * - XboxGPU is a plain struct of integers (plus the DevHost), so save
 *   states can describe it with a field table.  Nothing in it is trusted
 *   when used: every surface is re-validated before a pixel is touched,
 *   so a corrupt restored state cannot reach host memory either.
 * - Pixels are read and written only through devhost_ram_map_read/write,
 *   one rectangle row at a time, after the whole rectangle was checked to
 *   lie inside guest RAM (computed in 64 bits with overflow checks).  An
 *   erroneous command touches nothing: every check runs before the first
 *   write.
 * - Guest RAM is one range from address 0 (docs/machine.md, "Memory
 *   map"), so a rectangle is inside RAM iff the span from its first byte
 *   to its last is; one map_read of that span is the check.
 * - The IRQ line always equals (INTR_STATUS & INTR_ENABLE) != 0 after any
 *   register write and after each vblank.
 * - Work per vblank is bounded: at most GPU_MAX_CMDS commands, each at
 *   most one 640x480 rectangle.
 */
#include "hw/xbox/gpu.h"
#include "hw/error.h"
#include <glib.h>
#include <inttypes.h>
#include <string.h>

#define GPU_ID              0x31474258u     /* "XBG1" */

#define GPU_REG_ID          0x000
#define GPU_REG_INTR_STATUS 0x004
#define GPU_REG_INTR_ENABLE 0x008
#define GPU_REG_ERROR       0x00C
#define GPU_REG_SCAN_BASE   0x010
#define GPU_REG_SCAN_PITCH  0x014
#define GPU_REG_WIDTH       0x018
#define GPU_REG_HEIGHT      0x01C
#define GPU_REG_FRAME       0x020
#define GPU_REG_PB_BASE     0x030
#define GPU_REG_PB_SIZE     0x034
#define GPU_REG_PB_PUT      0x038
#define GPU_REG_PB_GET      0x03C
#define GPU_REG_NOTIFY      0x040

#define GPU_INTR_VBLANK     0x1u
#define GPU_INTR_NOTIFY     0x2u
#define GPU_INTR_ERROR      0x4u
#define GPU_INTR_ALL        0x7u

#define GPU_ROW_BYTES       (GPU_WIDTH * 4u)    /* also the minimum pitch */
#define GPU_PB_MAX_SIZE     (1u << 20)
#define GPU_MAX_CMDS        65536u
#define GPU_HDR_RESERVED    0xFF00FF00u         /* header bits that must be 0 */
#define GPU_MAX_ARGS        255u
#define GPU_KEY_MASK        0x00FFFFFFu         /* the X byte is not colour */
#define GPU_BLIT_KEYED      0x1u

typedef enum {
    GPU_ERR_NONE = 0,
    GPU_ERR_COMMAND = 1,    /* unknown opcode or bad count */
    GPU_ERR_RECT = 2,       /* rectangle outside the target */
    GPU_ERR_SOURCE = 3,     /* blit source outside RAM */
    GPU_ERR_TARGET = 4,     /* target or scanout outside RAM */
    GPU_ERR_PUSHBUF = 5,    /* push buffer, PUT or GET invalid */
    GPU_ERR_RUNAWAY = 6,    /* more than GPU_MAX_CMDS in one vblank */
} GpuError;

struct XboxGPU {
    DevHost *host;
    uint32_t intr_status;
    uint32_t intr_enable;
    uint32_t error;             /* GpuError of the first error, or 0 */
    uint32_t scanout_base;      /* register: shown from the next vblank */
    uint32_t scanout_pitch;
    uint32_t shown_base;        /* latched at vblank: on screen now */
    uint32_t shown_pitch;
    uint64_t frame;
    uint32_t pb_base;
    uint32_t pb_size;
    uint32_t pb_put;
    uint32_t pb_get;
    uint32_t notify_value;
    uint32_t target_base;
    uint32_t target_pitch;      /* 0: no SET_TARGET yet */
};

/* ---- interrupts and errors ---- */

static void gpu_update_irq(XboxGPU *gpu)
{
    devhost_set_irq(gpu->host, GPU_IRQ,
                    (gpu->intr_status & gpu->intr_enable) != 0);
}

/* ERROR keeps the first code until the guest clears it; the interrupt
 * bit is raised for every error.  The line follows at the caller's next
 * gpu_update_irq(). */
static void gpu_raise_error(XboxGPU *gpu, GpuError code)
{
    if (gpu->error == GPU_ERR_NONE) {
        gpu->error = code;
    }
    gpu->intr_status |= GPU_INTR_ERROR;
}

/* ---- surfaces in guest RAM ---- */

/* base + row * pitch + col_bytes; false if it overflows 64 bits. */
static bool gpu_addr(uint64_t base, uint64_t row, uint64_t pitch,
                     uint64_t col_bytes, uint64_t *out)
{
    uint64_t t;
    return !__builtin_mul_overflow(row, pitch, &t) &&
           !__builtin_add_overflow(t, base, &t) &&
           !__builtin_add_overflow(t, col_bytes, out);
}

/*
 * Whether the w x h rectangle at (x, y) of the surface (base, pitch) lies
 * in guest RAM: its first row starts at *first.  w and h must be > 0.
 * Checks the span from the first byte of the first row to the last byte
 * of the last row, which is inside RAM iff every row is (RAM is one range
 * from 0).  map_read has no side effect on RAM protection.
 */
static bool gpu_rect_in_ram(XboxGPU *gpu, uint64_t base, uint64_t pitch,
                            uint64_t x, uint64_t y, uint64_t w, uint64_t h,
                            uint64_t *first)
{
    uint64_t start, end;
    if (!gpu_addr(base, y, pitch, x * 4, &start) ||
        !gpu_addr(base, y + h - 1, pitch, (x + w) * 4, &end)) {
        return false;
    }
    *first = start;
    return devhost_ram_map_read(gpu->host, start, end - start) != NULL;
}

/* A 640x480 surface (target or scanout) that lies wholly in RAM. */
static bool gpu_surface_ok(XboxGPU *gpu, uint32_t base, uint32_t pitch)
{
    uint64_t first;
    return pitch >= GPU_ROW_BYTES &&
           gpu_rect_in_ram(gpu, base, pitch, 0, 0, GPU_WIDTH, GPU_HEIGHT,
                           &first);
}

/* The rectangle lies inside the 640x480 target (64-bit sums: no wrap). */
static bool gpu_rect_in_target(uint32_t x, uint32_t y, uint32_t w,
                               uint32_t h)
{
    return (uint64_t)x + w <= GPU_WIDTH && (uint64_t)y + h <= GPU_HEIGHT;
}

/* ---- drawing (rectangles already validated) ---- */

/*
 * Announces the writes to h rows of n bytes, pitch apart, from gpa: one
 * map_write over the whole span before the rows' own.  While a save
 * state captures RAM, the first write to each page copies it aside and
 * lifts its protection; one call does that for all of the rows' pages in
 * one run (one mprotect), where a call per row took one each: ~2 ms of a
 * full-screen frame after every save.  A span outside RAM is left to the
 * rows, which fail one by one as before.
 */
static void gpu_prepare_rows(XboxGPU *gpu, uint64_t gpa, uint64_t pitch,
                             size_t n, uint32_t h)
{
    if (h > 1 && pitch <= UINT32_MAX) {
        devhost_ram_map_write(gpu->host, gpa, (h - 1) * pitch + n);
    }
}

/* Fills h rows of w pixels (w <= 640) starting at gpa. */
static bool gpu_fill_rows(XboxGPU *gpu, uint64_t gpa, uint64_t pitch,
                          uint32_t w, uint32_t h, uint32_t colour)
{
    uint32_t row[GPU_WIDTH];
    size_t n = (size_t)w * 4;
    uint32_t le = GUINT32_TO_LE(colour);

    gpu_prepare_rows(gpu, gpa, pitch, n, h);
    for (uint32_t i = 0; i < w; i++) {
        row[i] = le;
    }
    for (uint32_t r = 0; r < h; r++) {
        void *d = devhost_ram_map_write(gpu->host, gpa + r * pitch, n);
        if (!d) {
            return false;
        }
        memcpy(d, row, n);
    }
    return true;
}

/* Four pixels at once (GCC/Clang vector extension): -O2 does not
 * vectorize the per-pixel loop by itself, and keyed sprites are the
 * common blit. */
typedef uint32_t GpuPix4 __attribute__((vector_size(16)));

/* Source pixel p where it is not the key, else the destination's. */
static inline uint32_t gpu_key_pick(uint32_t p, uint32_t old, uint32_t key,
                                    uint32_t mask)
{
    return ((p ^ key) & mask) ? p : old;
}

/*
 * One keyed row: source pixels whose colour equals the key's are not
 * copied.  A source row overlapping its destination row is copied aside
 * first.  Compares in guest (little-endian) byte order, so no per-pixel
 * byte swap; kept pixels are stored back unchanged.
 */
static void gpu_key_row(uint8_t *d, const uint8_t *s, uint32_t w,
                        uint32_t key)
{
    uint32_t tmp[GPU_WIDTH];
    size_t n = (size_t)w * 4, i = 0;
    uint32_t key_le = GUINT32_TO_LE(key);
    uint32_t mask_le = GUINT32_TO_LE(GPU_KEY_MASK);
    GpuPix4 key4 = { key_le, key_le, key_le, key_le };
    GpuPix4 mask4 = { mask_le, mask_le, mask_le, mask_le };

    if (s < d + n && d < s + n) {
        memcpy(tmp, s, n);
        s = (const uint8_t *)tmp;
    }
    for (; i + 4 <= w; i += 4) {
        GpuPix4 sv, dv, keep;
        memcpy(&sv, s + 4 * i, sizeof(sv));
        memcpy(&dv, d + 4 * i, sizeof(dv));
        keep = (GpuPix4)(((sv ^ key4) & mask4) == 0);   /* lanes: ~0 or 0 */
        dv = (sv & ~keep) | (dv & keep);
        memcpy(d + 4 * i, &dv, sizeof(dv));
    }
    for (; i < w; i++) {
        uint32_t sp, dp;
        memcpy(&sp, s + 4 * i, 4);
        memcpy(&dp, d + 4 * i, 4);
        dp = gpu_key_pick(sp, dp, key_le, mask_le);
        memcpy(d + 4 * i, &dp, 4);
    }
}

/*
 * Copies h rows of w pixels.  Rows run bottom-up when the destination lies
 * above the source in memory, and each row is copied as by memmove, so an
 * overlapping blit within one surface (same pitch) reads every source
 * pixel before it is overwritten.
 */
static bool gpu_blit_rows(XboxGPU *gpu, uint64_t src, uint64_t spitch,
                          uint64_t dst, uint64_t dpitch, uint32_t w,
                          uint32_t h, bool keyed, uint32_t key)
{
    size_t n = (size_t)w * 4;
    bool bottom_up = dst > src;

    gpu_prepare_rows(gpu, dst, dpitch, n, h);
    for (uint32_t i = 0; i < h; i++) {
        uint32_t r = bottom_up ? h - 1 - i : i;
        const uint8_t *s = devhost_ram_map_read(gpu->host, src + r * spitch,
                                                n);
        uint8_t *d = devhost_ram_map_write(gpu->host, dst + r * dpitch, n);
        if (!s || !d) {
            return false;
        }
        if (keyed) {
            gpu_key_row(d, s, w, key);
        } else {
            memmove(d, s, n);
        }
    }
    return true;
}

/* ---- commands ---- */

typedef void GpuCmdFn(XboxGPU *gpu, const uint32_t *a);

/* Whether a valid target is set (re-checked each time: the state may come
 * from a save state). */
static bool gpu_target_ok(XboxGPU *gpu)
{
    return gpu_surface_ok(gpu, gpu->target_base, gpu->target_pitch);
}

static void gpu_cmd_nop(XboxGPU *gpu, const uint32_t *a)
{
}

/* SET_TARGET base, pitch */
static void gpu_cmd_set_target(XboxGPU *gpu, const uint32_t *a)
{
    if (!gpu_surface_ok(gpu, a[0], a[1])) {
        gpu_raise_error(gpu, GPU_ERR_TARGET);
        return;
    }
    gpu->target_base = a[0];
    gpu->target_pitch = a[1];
}

/* Fills a rectangle of the target, checked in the documented order:
 * target (4), then rectangle (2). */
static void gpu_fill(XboxGPU *gpu, uint32_t x, uint32_t y, uint32_t w,
                     uint32_t h, uint32_t colour)
{
    if (!gpu_target_ok(gpu)) {
        gpu_raise_error(gpu, GPU_ERR_TARGET);
        return;
    }
    if (!gpu_rect_in_target(x, y, w, h)) {
        gpu_raise_error(gpu, GPU_ERR_RECT);
        return;
    }
    uint64_t gpa = gpu->target_base + (uint64_t)y * gpu->target_pitch +
                   (uint64_t)x * 4;
    /* The target was checked whole, so mapping a row cannot fail; if a
     * host ever refuses one, report it rather than draw half silently. */
    if (w && h &&
        !gpu_fill_rows(gpu, gpa, gpu->target_pitch, w, h, colour)) {
        gpu_raise_error(gpu, GPU_ERR_TARGET);
    }
}

/* CLEAR colour */
static void gpu_cmd_clear(XboxGPU *gpu, const uint32_t *a)
{
    gpu_fill(gpu, 0, 0, GPU_WIDTH, GPU_HEIGHT, a[0]);
}

/* FILL_RECT x, y, w, h, colour */
static void gpu_cmd_fill_rect(XboxGPU *gpu, const uint32_t *a)
{
    gpu_fill(gpu, a[0], a[1], a[2], a[3], a[4]);
}

/* BLIT src base, src pitch, sx, sy, w, h, dx, dy, flags, key.  The source
 * is any memory: no size limit, any pitch (0 repeats one row); only its
 * rows must lie in RAM.  Flag bits other than bit 0 are ignored. */
static void gpu_cmd_blit(XboxGPU *gpu, const uint32_t *a)
{
    uint32_t sbase = a[0], spitch = a[1], sx = a[2], sy = a[3];
    uint32_t w = a[4], h = a[5], dx = a[6], dy = a[7];
    uint64_t dst, src;

    if (!gpu_target_ok(gpu)) {
        gpu_raise_error(gpu, GPU_ERR_TARGET);
        return;
    }
    if (!gpu_rect_in_target(dx, dy, w, h)) {
        gpu_raise_error(gpu, GPU_ERR_RECT);
        return;
    }
    if (!w || !h) {
        return;
    }
    if (!gpu_rect_in_ram(gpu, sbase, spitch, sx, sy, w, h, &src)) {
        gpu_raise_error(gpu, GPU_ERR_SOURCE);
        return;
    }
    dst = gpu->target_base + (uint64_t)dy * gpu->target_pitch +
          (uint64_t)dx * 4;
    if (!gpu_blit_rows(gpu, src, spitch, dst, gpu->target_pitch, w, h,
                       a[8] & GPU_BLIT_KEYED, a[9])) {
        gpu_raise_error(gpu, GPU_ERR_TARGET);
    }
}

/* FLIP base: the next vblank shows base with the current SCANOUT_PITCH. */
static void gpu_cmd_flip(XboxGPU *gpu, const uint32_t *a)
{
    if (!gpu_surface_ok(gpu, a[0], gpu->scanout_pitch)) {
        gpu_raise_error(gpu, GPU_ERR_TARGET);
        return;
    }
    gpu->scanout_base = a[0];
}

/* NOTIFY value */
static void gpu_cmd_notify(XboxGPU *gpu, const uint32_t *a)
{
    gpu->notify_value = a[0];
    gpu->intr_status |= GPU_INTR_NOTIFY;
}

static const struct {
    unsigned count;
    GpuCmdFn *fn;
} gpu_cmds[] = {
    [0x00] = { 0, gpu_cmd_nop },
    [0x01] = { 2, gpu_cmd_set_target },
    [0x02] = { 1, gpu_cmd_clear },
    [0x03] = { 5, gpu_cmd_fill_rect },
    [0x04] = { 10, gpu_cmd_blit },
    [0x05] = { 1, gpu_cmd_flip },
    [0x06] = { 1, gpu_cmd_notify },
};

/* ---- the push buffer ring ---- */

/* The ring, mapped for reading, or NULL (error 5) if PB_BASE, PB_SIZE,
 * PUT or GET is invalid. */
static const uint8_t *gpu_ring_map(XboxGPU *gpu)
{
    uint32_t size = gpu->pb_size;
    if ((gpu->pb_base & 3) || (size & 3) || size == 0 ||
        size > GPU_PB_MAX_SIZE || gpu->pb_put >= size ||
        (gpu->pb_put & 3) || gpu->pb_get >= size || (gpu->pb_get & 3)) {
        return NULL;
    }
    return devhost_ram_map_read(gpu->host, gpu->pb_base, size);
}

static uint32_t gpu_ring_word(const uint8_t *ring, uint32_t off)
{
    uint32_t v;
    memcpy(&v, ring + off, 4);
    return GUINT32_FROM_LE(v);
}

/* Offset nwords words after off, wrapping at PB_SIZE. */
static uint32_t gpu_ring_advance(const XboxGPU *gpu, uint32_t off,
                                 uint32_t nwords)
{
    return (uint32_t)(((uint64_t)off + 4ull * nwords) % gpu->pb_size);
}

/*
 * Runs the commands between GET and PUT.  A well-formed command whose
 * arguments are not all before PUT yet waits for a later vblank.  A bad
 * header (unknown opcode, wrong count, reserved bits set) is error 1 and
 * is skipped with the arguments its count claims, but never past PUT.
 */
static void gpu_run_ring(XboxGPU *gpu)
{
    const uint8_t *ring;
    uint32_t get = gpu->pb_get, put = gpu->pb_put, size = gpu->pb_size;
    uint32_t args[GPU_MAX_ARGS];
    unsigned ncmds = 0;

    if (put == get) {
        return;
    }
    ring = gpu_ring_map(gpu);
    if (!ring) {
        gpu_raise_error(gpu, GPU_ERR_PUSHBUF);
        return;
    }
    while (get != put) {
        uint32_t avail = ((uint64_t)put + size - get) % size / 4 - 1;
        uint32_t hdr = gpu_ring_word(ring, get);
        unsigned op = hdr & 0xFF, count = (hdr >> 16) & 0xFF;
        bool ok = op < G_N_ELEMENTS(gpu_cmds) &&
                  !(hdr & GPU_HDR_RESERVED) && count == gpu_cmds[op].count;

        if (ok && count > avail) {
            break;
        }
        if (ncmds == GPU_MAX_CMDS) {
            gpu_raise_error(gpu, GPU_ERR_RUNAWAY);
            break;
        }
        ncmds++;
        count = MIN(count, avail);
        for (uint32_t i = 0; i < count; i++) {
            args[i] = gpu_ring_word(ring, gpu_ring_advance(gpu, get, 1 + i));
        }
        get = gpu_ring_advance(gpu, get, 1 + count);
        if (ok) {
            gpu_cmds[op].fn(gpu, args);
        } else {
            gpu_raise_error(gpu, GPU_ERR_COMMAND);
        }
    }
    gpu->pb_get = get;
}

/* Shows SCANOUT_BASE/PITCH from now on, if they describe a surface in
 * RAM; otherwise error 4 and the old picture stays. */
static void gpu_latch_scanout(XboxGPU *gpu)
{
    if (gpu->scanout_base == gpu->shown_base &&
        gpu->scanout_pitch == gpu->shown_pitch) {
        return;
    }
    if (!gpu_surface_ok(gpu, gpu->scanout_base, gpu->scanout_pitch)) {
        gpu_raise_error(gpu, GPU_ERR_TARGET);
        return;
    }
    gpu->shown_base = gpu->scanout_base;
    gpu->shown_pitch = gpu->scanout_pitch;
}

/* ---- the public interface ---- */

XboxGPU *gpu_new(DevHost *host)
{
    XboxGPU *gpu = g_new0(XboxGPU, 1);
    gpu->host = host;
    gpu_reset(gpu);
    return gpu;
}

void gpu_free(XboxGPU *gpu)
{
    g_free(gpu);
}

void gpu_reset(XboxGPU *gpu)
{
    DevHost *host = gpu->host;
    *gpu = (XboxGPU){ .host = host };
    gpu->scanout_pitch = GPU_ROW_BYTES;
    gpu->shown_pitch = GPU_ROW_BYTES;
    gpu_update_irq(gpu);
}

void gpu_vblank(XboxGPU *gpu)
{
    gpu_run_ring(gpu);
    gpu_latch_scanout(gpu);
    gpu->frame++;
    gpu->intr_status |= GPU_INTR_VBLANK;
    gpu_update_irq(gpu);
}

uint64_t gpu_frame(const XboxGPU *gpu)
{
    return gpu->frame;
}

void gpu_scanout(const XboxGPU *gpu, uint32_t *base, uint32_t *pitch)
{
    *base = gpu->shown_base;
    *pitch = gpu->shown_pitch;
}

bool gpu_read_scanout(XboxGPU *gpu, uint32_t *dst, GError **errp)
{
    uint32_t base = gpu->shown_base, pitch = gpu->shown_pitch;

    if (pitch < GPU_ROW_BYTES) {
        hw_error_set(errp, "GPU scanout pitch %" PRIu32 " is below %u bytes",
                     pitch, GPU_ROW_BYTES);
        return false;
    }
    if (!gpu_surface_ok(gpu, base, pitch)) {
        hw_error_set(errp, "GPU scanout at 0x%08" PRIx32 " (pitch %" PRIu32
                     "): the 640x480 picture lies outside guest RAM",
                     base, pitch);
        return false;
    }
    for (uint32_t y = 0; y < GPU_HEIGHT; y++) {
        const void *s = devhost_ram_map_read(gpu->host,
                                             base + (uint64_t)y * pitch,
                                             GPU_ROW_BYTES);
        if (!s) {
            hw_error_set(errp, "GPU scanout row %" PRIu32 " is outside guest "
                         "RAM", y);
            return false;
        }
        memcpy(dst + (size_t)y * GPU_WIDTH, s, GPU_ROW_BYTES);
    }
    if (G_BYTE_ORDER != G_LITTLE_ENDIAN) {
        for (size_t i = 0; i < (size_t)GPU_WIDTH * GPU_HEIGHT; i++) {
            dst[i] = GUINT32_FROM_LE(dst[i]);
        }
    }
    return true;
}

static uint32_t gpu_reg_read(XboxGPU *gpu, uint32_t offset)
{
    switch (offset) {
    case GPU_REG_ID:            return GPU_ID;
    case GPU_REG_INTR_STATUS:   return gpu->intr_status;
    case GPU_REG_INTR_ENABLE:   return gpu->intr_enable;
    case GPU_REG_ERROR:         return gpu->error;
    case GPU_REG_SCAN_BASE:     return gpu->scanout_base;
    case GPU_REG_SCAN_PITCH:    return gpu->scanout_pitch;
    case GPU_REG_WIDTH:         return GPU_WIDTH;
    case GPU_REG_HEIGHT:        return GPU_HEIGHT;
    case GPU_REG_FRAME:         return (uint32_t)gpu->frame;
    case GPU_REG_PB_BASE:       return gpu->pb_base;
    case GPU_REG_PB_SIZE:       return gpu->pb_size;
    case GPU_REG_PB_PUT:        return gpu->pb_put;
    case GPU_REG_PB_GET:        return gpu->pb_get;
    case GPU_REG_NOTIFY:        return gpu->notify_value;
    default:                    return 0xFFFFFFFFu;
    }
}

/* Registers are 32 bits wide and answer aligned 32-bit accesses only;
 * anything else reads as all ones (open bus) and writes are ignored. */
uint32_t gpu_mmio_read(void *opaque, uint32_t offset, unsigned size)
{
    if (size != 4 || (offset & 3) || offset >= GPU_MMIO_SIZE) {
        return size >= 4 ? 0xFFFFFFFFu : (1u << (8 * size)) - 1;
    }
    return gpu_reg_read(opaque, offset);
}

void gpu_mmio_write(void *opaque, uint32_t offset, uint32_t val,
                    unsigned size)
{
    XboxGPU *gpu = opaque;

    if (size != 4 || (offset & 3) || offset >= GPU_MMIO_SIZE) {
        return;
    }
    switch (offset) {
    case GPU_REG_INTR_STATUS:   gpu->intr_status &= ~val; break;
    case GPU_REG_INTR_ENABLE:   gpu->intr_enable = val & GPU_INTR_ALL; break;
    case GPU_REG_ERROR:         gpu->error = GPU_ERR_NONE; break;
    case GPU_REG_SCAN_BASE:     gpu->scanout_base = val; break;
    case GPU_REG_SCAN_PITCH:    gpu->scanout_pitch = val; break;
    /* Checked when the GPU next runs: the CPU may pass through invalid
     * combinations while it writes them one by one. */
    case GPU_REG_PB_BASE:       gpu->pb_base = val; break;
    case GPU_REG_PB_SIZE:       gpu->pb_size = val; break;
    case GPU_REG_PB_PUT:        gpu->pb_put = val; break;
    case GPU_REG_PB_GET:        gpu->pb_get = val; break;
    default:                    return;     /* read-only or unassigned */
    }
    gpu_update_irq(gpu);
}

/* ---- save states ---- */

static const XblkDeviceDesc gpu_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "gpu",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(XboxGPU),
    .fields = (const XblkField[]){
        XBLK_U32(XboxGPU, intr_status, XBLK_MAX(GPU_INTR_ALL)),
        XBLK_U32(XboxGPU, intr_enable, XBLK_MAX(GPU_INTR_ALL)),
        XBLK_U32(XboxGPU, error, XBLK_MAX(GPU_ERR_RUNAWAY)),
        XBLK_U32(XboxGPU, scanout_base),
        XBLK_U32(XboxGPU, scanout_pitch),
        XBLK_U32(XboxGPU, shown_base),
        XBLK_U32(XboxGPU, shown_pitch),
        XBLK_U64(XboxGPU, frame),
        XBLK_U32(XboxGPU, pb_base),
        XBLK_U32(XboxGPU, pb_size),
        XBLK_U32(XboxGPU, pb_put),
        XBLK_U32(XboxGPU, pb_get),
        XBLK_U32(XboxGPU, notify_value),
        XBLK_U32(XboxGPU, target_base),
        XBLK_U32(XboxGPU, target_pitch),
        XBLK_FIELDS_END
    },
};

const XblkDeviceDesc *gpu_vmstate(void)
{
    return &gpu_desc;
}
