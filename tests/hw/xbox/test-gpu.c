/*
 * test-gpu.c - the push-buffer GPU (hw/xbox/gpu.c) against
 * docs/machine.md, "GPU", on the test DevHost (tests/hw/devhost-test.h).
 *
 * Every case keeps a model of the whole guest RAM: the test writes the
 * push buffer and textures into both, draws the expected pixels into the
 * model with a naive per-pixel reference, and after each vblank compares
 * all of RAM with the model.  So each command's pixels are checked
 * exactly, and so is "nothing else was touched" (erroneous commands,
 * rectangles at the edges, overlapping blits).  The fuzz case feeds
 * random and half-valid command streams and checks RAM outside the only
 * targets it can select stays as it was; under ASan it also proves no
 * access leaves the RAM buffer.
 */
#include "hw/xbox/gpu.h"
#include "tests/hw/devhost-test.h"
#include <string.h>

#define MiB (1u << 20)
#define RAM_SIZE (8 * MiB)
#define PB_BASE 0x10000u
#define TARGET_A 0x200000u
#define TARGET_B 0x400000u
#define TEX 0x600000u
#define PITCH 2560u
#define SURFACE_BYTES (PITCH * 480u)

/* Register offsets and commands (docs/machine.md). */
enum {
    R_ID = 0x00, R_STATUS = 0x04, R_ENABLE = 0x08, R_ERROR = 0x0C,
    R_SCAN_BASE = 0x10, R_SCAN_PITCH = 0x14, R_WIDTH = 0x18,
    R_HEIGHT = 0x1C, R_FRAME = 0x20, R_PB_BASE = 0x30, R_PB_SIZE = 0x34,
    R_PUT = 0x38, R_GET = 0x3C, R_NOTIFY = 0x40,
};
enum {
    OP_NOP, OP_SET_TARGET, OP_CLEAR, OP_FILL_RECT, OP_BLIT, OP_FLIP,
    OP_NOTIFY,
};
enum { I_VBLANK = 1, I_NOTIFY = 2, I_ERROR = 4 };

typedef struct Env {
    TestHost *th;
    XboxGPU *gpu;
    uint8_t *model;             /* what all of RAM must hold */
    uint32_t pb_base, pb_size;
    uint32_t cursor;            /* where the CPU writes the next word */
} Env;

/* ---- setup ---- */

static void env_init_ram(Env *e, uint64_t ram_size)
{
    *e = (Env){ 0 };
    e->th = test_host_new(ram_size);
    e->gpu = gpu_new(&e->th->host);
    e->model = g_malloc0(ram_size);
}

/* A GPU with a 4 KiB push buffer at PB_BASE and target A selected. */
static void env_init_pb(Env *e, uint32_t pb_size);

static void env_free(Env *e)
{
    gpu_free(e->gpu);
    test_host_free(e->th);
    g_free(e->model);
}

static uint32_t rd(Env *e, uint32_t off)
{
    return gpu_mmio_read(e->gpu, off, 4);
}

static void wr(Env *e, uint32_t off, uint32_t val)
{
    gpu_mmio_write(e->gpu, off, val, 4);
}

/* A word written by the "CPU": into RAM and into the model. */
static void poke32(Env *e, uint64_t gpa, uint32_t v)
{
    uint32_t le = GUINT32_TO_LE(v);
    g_assert_cmpuint(gpa + 4, <=, e->th->ram_size);
    memcpy(e->th->ram + gpa, &le, 4);
    memcpy(e->model + gpa, &le, 4);
}

static uint32_t model32(Env *e, uint64_t gpa)
{
    uint32_t v;
    memcpy(&v, e->model + gpa, 4);
    return GUINT32_FROM_LE(v);
}

static void model_put32(Env *e, uint64_t gpa, uint32_t v)
{
    uint32_t le = GUINT32_TO_LE(v);
    memcpy(e->model + gpa, &le, 4);
}

/* Compares all of RAM with the model, naming the first difference. */
static void check_ram(Env *e)
{
    if (memcmp(e->th->ram, e->model, e->th->ram_size) == 0) {
        return;
    }
    for (uint64_t i = 0; i < e->th->ram_size; i++) {
        if (e->th->ram[i] != e->model[i]) {
            g_error("RAM differs from the model at 0x%" G_GINT64_MODIFIER
                    "x: 0x%02x, expected 0x%02x", i, e->th->ram[i],
                    e->model[i]);
        }
    }
}

/* ---- the push buffer, as a guest driver writes it ---- */

static void pb_setup(Env *e, uint32_t base, uint32_t size, uint32_t start)
{
    e->pb_base = base;
    e->pb_size = size;
    e->cursor = start;
    wr(e, R_PB_BASE, base);
    wr(e, R_PB_SIZE, size);
    wr(e, R_GET, start);
    wr(e, R_PUT, start);
}

static void pb_word(Env *e, uint32_t w)
{
    poke32(e, e->pb_base + e->cursor, w);
    e->cursor = (e->cursor + 4) % e->pb_size;
}

static void emit(Env *e, uint32_t op, unsigned n, const uint32_t *args)
{
    pb_word(e, op | n << 16);
    for (unsigned i = 0; i < n; i++) {
        pb_word(e, args[i]);
    }
}

#define CMD(e, op, ...) \
    emit((e), (op), G_N_ELEMENTS(((uint32_t[]){ __VA_ARGS__ })), \
         (uint32_t[]){ __VA_ARGS__ })

static void kick(Env *e)
{
    wr(e, R_PUT, e->cursor);
}

/* Moves PUT to the cursor and runs one vblank. */
static void frame(Env *e)
{
    kick(e);
    gpu_vblank(e->gpu);
}

static void env_init_pb(Env *e, uint32_t pb_size)
{
    env_init_ram(e, RAM_SIZE);
    pb_setup(e, PB_BASE, pb_size, 0);
    CMD(e, OP_SET_TARGET, TARGET_A, PITCH);
    frame(e);
    g_assert_cmpuint(rd(e, R_ERROR), ==, 0);
    wr(e, R_STATUS, 7);
}

/* Asserts the error register and interrupt bit, then clears both. */
static void expect_error(Env *e, uint32_t code)
{
    g_assert_cmpuint(rd(e, R_ERROR), ==, code);
    g_assert_cmpuint(rd(e, R_STATUS) & I_ERROR, ==, code ? I_ERROR : 0);
    wr(e, R_ERROR, 0);
    wr(e, R_STATUS, I_ERROR);
}

/* ---- the reference drawing (naive, per pixel, on the model) ---- */

static void model_fill(Env *e, uint32_t tbase, uint32_t tpitch, uint32_t x,
                       uint32_t y, uint32_t w, uint32_t h, uint32_t c)
{
    for (uint32_t j = 0; j < h; j++) {
        for (uint32_t i = 0; i < w; i++) {
            model_put32(e, tbase + (uint64_t)(y + j) * tpitch +
                        (uint64_t)(x + i) * 4, c);
        }
    }
}

/* Reads every source pixel before writing any: the result the GPU must
 * give for overlapping blits within one surface. */
static void model_blit(Env *e, uint32_t sbase, uint32_t spitch, uint32_t sx,
                       uint32_t sy, uint32_t w, uint32_t h, uint32_t tbase,
                       uint32_t tpitch, uint32_t dx, uint32_t dy, bool keyed,
                       uint32_t key)
{
    g_autofree uint32_t *tmp = g_new(uint32_t, (size_t)w * h + 1);
    for (uint32_t j = 0; j < h; j++) {
        for (uint32_t i = 0; i < w; i++) {
            tmp[j * w + i] = model32(e, sbase + (uint64_t)(sy + j) * spitch +
                                     (uint64_t)(sx + i) * 4);
        }
    }
    for (uint32_t j = 0; j < h; j++) {
        for (uint32_t i = 0; i < w; i++) {
            uint32_t p = tmp[j * w + i];
            if (keyed && ((p ^ key) & 0xFFFFFF) == 0) {
                continue;
            }
            model_put32(e, tbase + (uint64_t)(dy + j) * tpitch +
                        (uint64_t)(dx + i) * 4, p);
        }
    }
}

/* A texture of pseudo-random pixels written by the CPU. */
static void fill_texture(Env *e, uint32_t base, uint32_t bytes,
                         uint32_t seed)
{
    GRand *r = g_rand_new_with_seed(seed);
    for (uint32_t off = 0; off < bytes; off += 4) {
        poke32(e, base + off, g_rand_int(r));
    }
    g_rand_free(r);
}

/* ---- registers ---- */

static void test_registers(void)
{
    Env e;
    env_init_ram(&e, RAM_SIZE);
    g_assert_cmphex(rd(&e, R_ID), ==, 0x31474258);
    g_assert_cmpuint(rd(&e, R_WIDTH), ==, 640);
    g_assert_cmpuint(rd(&e, R_HEIGHT), ==, 480);
    g_assert_cmpuint(rd(&e, R_FRAME), ==, 0);
    g_assert_cmpuint(rd(&e, R_STATUS), ==, 0);
    g_assert_cmpuint(rd(&e, R_ERROR), ==, 0);
    g_assert_cmpuint(rd(&e, R_SCAN_BASE), ==, 0);
    g_assert_cmpuint(rd(&e, R_SCAN_PITCH), ==, 2560);
    g_assert_cmpuint(rd(&e, R_NOTIFY), ==, 0);

    /* Read-only registers ignore writes. */
    wr(&e, R_ID, 1);
    wr(&e, R_WIDTH, 1);
    wr(&e, R_FRAME, 99);
    wr(&e, R_NOTIFY, 5);
    g_assert_cmphex(rd(&e, R_ID), ==, 0x31474258);
    g_assert_cmpuint(rd(&e, R_WIDTH), ==, 640);
    g_assert_cmpuint(rd(&e, R_FRAME), ==, 0);
    g_assert_cmpuint(rd(&e, R_NOTIFY), ==, 0);

    /* Read-write registers keep what was written. */
    uint32_t rw[] = { R_SCAN_BASE, R_SCAN_PITCH, R_PB_BASE, R_PB_SIZE,
                      R_PUT, R_GET };
    for (unsigned i = 0; i < G_N_ELEMENTS(rw); i++) {
        wr(&e, rw[i], 0x1000 + i * 4);
        g_assert_cmphex(rd(&e, rw[i]), ==, 0x1000 + i * 4);
    }
    wr(&e, R_ENABLE, 0xFFFFFFFF);
    g_assert_cmphex(rd(&e, R_ENABLE), ==, 7);

    /* Unassigned offsets, odd sizes and unaligned accesses: open bus. */
    g_assert_cmphex(rd(&e, 0x024), ==, 0xFFFFFFFF);
    g_assert_cmphex(rd(&e, 0xFFC), ==, 0xFFFFFFFF);
    g_assert_cmphex(rd(&e, 0x1000), ==, 0xFFFFFFFF);
    g_assert_cmphex(gpu_mmio_read(e.gpu, R_ID, 2), ==, 0xFFFF);
    g_assert_cmphex(gpu_mmio_read(e.gpu, R_ID, 1), ==, 0xFF);
    g_assert_cmphex(gpu_mmio_read(e.gpu, R_ID + 1, 4), ==, 0xFFFFFFFF);
    gpu_mmio_write(e.gpu, R_SCAN_BASE, 0xAB, 1);
    gpu_mmio_write(e.gpu, R_SCAN_BASE + 2, 0xAB, 4);
    gpu_mmio_write(e.gpu, 0x2000, 0xAB, 4);
    g_assert_cmphex(rd(&e, R_SCAN_BASE), ==, 0x1000);

    /* Reset restores the power-on values and lowers the line. */
    gpu_vblank(e.gpu);
    g_assert_true(e.th->irq_level[GPU_IRQ]);
    gpu_reset(e.gpu);
    g_assert_false(e.th->irq_level[GPU_IRQ]);
    g_assert_cmpuint(rd(&e, R_ENABLE), ==, 0);
    g_assert_cmpuint(rd(&e, R_PB_SIZE), ==, 0);
    g_assert_cmpuint(gpu_frame(e.gpu), ==, 0);
    check_ram(&e);
    env_free(&e);
}

/* Interrupt bits, write-1-to-clear and the level of IRQ 3. */
static void test_interrupts(void)
{
    Env e;
    env_init_ram(&e, RAM_SIZE);
    gpu_vblank(e.gpu);
    g_assert_cmpuint(rd(&e, R_STATUS), ==, I_VBLANK);
    g_assert_cmpuint(rd(&e, R_FRAME), ==, 1);
    g_assert_false(e.th->irq_level[GPU_IRQ]);       /* not enabled */

    wr(&e, R_ENABLE, I_VBLANK);
    g_assert_true(e.th->irq_level[GPU_IRQ]);        /* pending: now up */
    wr(&e, R_STATUS, I_NOTIFY);                     /* other bit: stays */
    g_assert_true(e.th->irq_level[GPU_IRQ]);
    wr(&e, R_STATUS, I_VBLANK);
    g_assert_cmpuint(rd(&e, R_STATUS), ==, 0);
    g_assert_false(e.th->irq_level[GPU_IRQ]);

    unsigned edges = e.th->irq_raised[GPU_IRQ];
    for (int i = 0; i < 3; i++) {
        gpu_vblank(e.gpu);
        g_assert_true(e.th->irq_level[GPU_IRQ]);
        wr(&e, R_STATUS, I_VBLANK);
        g_assert_false(e.th->irq_level[GPU_IRQ]);
    }
    g_assert_cmpuint(e.th->irq_raised[GPU_IRQ], ==, edges + 3);
    g_assert_cmpuint(gpu_frame(e.gpu), ==, 4);

    /* Disabling masks the line without clearing the status. */
    gpu_vblank(e.gpu);
    wr(&e, R_ENABLE, 0);
    g_assert_false(e.th->irq_level[GPU_IRQ]);
    g_assert_cmpuint(rd(&e, R_STATUS), ==, I_VBLANK);
    env_free(&e);
}

/* ---- commands ---- */

static void test_clear(void)
{
    Env e;
    env_init_pb(&e, 4096);
    CMD(&e, OP_CLEAR, 0x00123456);
    /* Nothing runs before the vblank. */
    kick(&e);
    g_assert_cmpuint(e.th->ram[TARGET_A], ==, 0);
    frame(&e);
    model_fill(&e, TARGET_A, PITCH, 0, 0, 640, 480, 0x00123456);
    check_ram(&e);
    g_assert_cmpuint(rd(&e, R_GET), ==, rd(&e, R_PUT));

    /* A wider pitch leaves the gaps between rows alone. */
    CMD(&e, OP_SET_TARGET, TARGET_B, 4096);
    CMD(&e, OP_CLEAR, 0xFF00FF00);
    frame(&e);
    model_fill(&e, TARGET_B, 4096, 0, 0, 640, 480, 0xFF00FF00);
    check_ram(&e);
    g_assert_cmpuint(rd(&e, R_ERROR), ==, 0);
    env_free(&e);
}

static void test_fill_rect(void)
{
    static const uint32_t r[][4] = {
        { 0, 0, 1, 1 }, { 639, 0, 1, 1 }, { 0, 479, 1, 1 },
        { 639, 479, 1, 1 }, { 10, 20, 100, 50 }, { 600, 400, 40, 80 },
        { 0, 0, 640, 480 }, { 5, 7, 635, 1 }, { 3, 0, 1, 480 },
        { 640, 480, 0, 0 }, { 100, 100, 0, 5 }, { 100, 100, 5, 0 },
    };
    Env e;
    env_init_pb(&e, 4096);
    for (unsigned i = 0; i < G_N_ELEMENTS(r); i++) {
        uint32_t c = 0x01010101u * (i + 1) ^ 0x00F0F0F0;
        CMD(&e, OP_FILL_RECT, r[i][0], r[i][1], r[i][2], r[i][3], c);
        frame(&e);
        model_fill(&e, TARGET_A, PITCH, r[i][0], r[i][1], r[i][2], r[i][3],
                   c);
        check_ram(&e);
        g_assert_cmpuint(rd(&e, R_ERROR), ==, 0);
    }
    /* Several in one push, on a target with an odd (unaligned) base. */
    CMD(&e, OP_SET_TARGET, TARGET_B + 2, 2564);
    CMD(&e, OP_FILL_RECT, 1, 2, 3, 4, 0xAABBCCDD);
    CMD(&e, OP_FILL_RECT, 2, 3, 300, 200, 0x11223344);
    frame(&e);
    model_fill(&e, TARGET_B + 2, 2564, 1, 2, 3, 4, 0xAABBCCDD);
    model_fill(&e, TARGET_B + 2, 2564, 2, 3, 300, 200, 0x11223344);
    check_ram(&e);
    g_assert_cmpuint(rd(&e, R_ERROR), ==, 0);
    env_free(&e);
}

static void test_blit(void)
{
    Env e;
    env_init_pb(&e, 4096);
    fill_texture(&e, TEX, 512 * 1024, 7);
    fill_texture(&e, TARGET_A, SURFACE_BYTES, 8);

    /* Plain copies from a texture of another pitch, and of pitch 0. */
    CMD(&e, OP_BLIT, TEX, 1024, 3, 5, 200, 100, 10, 20, 0, 0);
    CMD(&e, OP_BLIT, TEX + 4, 0, 0, 0, 64, 32, 576, 0, 0, 0);
    CMD(&e, OP_BLIT, TEX, 4, 0, 0, 1, 480, 639, 0, 0, 0);
    CMD(&e, OP_BLIT, TEX + 1, 2560, 0, 0, 640, 1, 0, 479, 0, 0);
    frame(&e);
    model_blit(&e, TEX, 1024, 3, 5, 200, 100, TARGET_A, PITCH, 10, 20,
               false, 0);
    model_blit(&e, TEX + 4, 0, 0, 0, 64, 32, TARGET_A, PITCH, 576, 0,
               false, 0);
    model_blit(&e, TEX, 4, 0, 0, 1, 480, TARGET_A, PITCH, 639, 0, false, 0);
    model_blit(&e, TEX + 1, 2560, 0, 0, 640, 1, TARGET_A, PITCH, 0, 479,
               false, 0);
    check_ram(&e);

    /* Overlapping blits within the target, in every direction. */
    static const uint32_t ov[][6] = {
        /* sx, sy, w, h, dx, dy */
        { 0, 0, 300, 200, 5, 3 }, { 5, 3, 300, 200, 0, 0 },
        { 10, 10, 100, 100, 10, 11 }, { 10, 11, 100, 100, 10, 10 },
        { 10, 10, 100, 100, 11, 10 }, { 11, 10, 100, 100, 10, 10 },
        { 0, 0, 640, 480, 0, 0 }, { 0, 1, 640, 479, 0, 0 },
        { 0, 0, 640, 479, 0, 1 },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(ov); i++) {
        CMD(&e, OP_BLIT, TARGET_A, PITCH, ov[i][0], ov[i][1], ov[i][2],
            ov[i][3], ov[i][4], ov[i][5], 0, 0);
        frame(&e);
        model_blit(&e, TARGET_A, PITCH, ov[i][0], ov[i][1], ov[i][2],
                   ov[i][3], TARGET_A, PITCH, ov[i][4], ov[i][5], false, 0);
        check_ram(&e);
    }
    g_assert_cmpuint(rd(&e, R_ERROR), ==, 0);
    env_free(&e);
}

static void test_blit_colour_key(void)
{
    Env e;
    env_init_pb(&e, 4096);
    CMD(&e, OP_CLEAR, 0x00808080);
    frame(&e);
    model_fill(&e, TARGET_A, PITCH, 0, 0, 640, 480, 0x00808080);

    /* A 16x16 sprite: a checkerboard of the key (with varying X bytes,
     * which the key ignores) and colours, one pixel an off-by-one blue. */
    const uint32_t key = 0x00FF00FF;
    for (uint32_t y = 0; y < 16; y++) {
        for (uint32_t x = 0; x < 16; x++) {
            uint32_t p = (x + y) & 1 ? (key | (x << 24))
                                     : 0x01000000u * y + 0x10203 * x;
            poke32(&e, TEX + y * 64 + x * 4, p);
        }
    }
    poke32(&e, TEX + 5 * 64, 0x00FF00FE);
    CMD(&e, OP_BLIT, TEX, 64, 0, 0, 16, 16, 100, 50, 1, key);
    /* Flag bits other than bit 0 change nothing; bit 0 clear: no key. */
    CMD(&e, OP_BLIT, TEX, 64, 0, 0, 16, 16, 200, 50, 0xFFFFFFFF,
        key | 0xAB000000);
    CMD(&e, OP_BLIT, TEX, 64, 0, 0, 16, 16, 300, 50, 0xFFFFFFFE, key);
    frame(&e);
    model_blit(&e, TEX, 64, 0, 0, 16, 16, TARGET_A, PITCH, 100, 50, true,
               key);
    model_blit(&e, TEX, 64, 0, 0, 16, 16, TARGET_A, PITCH, 200, 50, true,
               key);
    model_blit(&e, TEX, 64, 0, 0, 16, 16, TARGET_A, PITCH, 300, 50, false,
               0);
    check_ram(&e);
    /* Spot checks independent of the model. */
    g_assert_cmphex(model32(&e, TARGET_A + 50 * PITCH + 101 * 4), ==,
                    0x00808080);
    g_assert_cmphex(model32(&e, TARGET_A + 55 * PITCH + 100 * 4), ==,
                    0x00FF00FE);

    /* A keyed blit overlapping itself. */
    fill_texture(&e, TARGET_B, SURFACE_BYTES, 3);
    for (uint32_t i = 0; i < 2000; i++) {
        poke32(&e, TARGET_B + (i * 7919u) % (SURFACE_BYTES / 4) * 4, key);
    }
    CMD(&e, OP_SET_TARGET, TARGET_B, PITCH);
    CMD(&e, OP_BLIT, TARGET_B, PITCH, 0, 0, 600, 400, 3, 2, 1, key);
    CMD(&e, OP_BLIT, TARGET_B, PITCH, 7, 9, 600, 400, 0, 0, 1, key);
    frame(&e);
    model_blit(&e, TARGET_B, PITCH, 0, 0, 600, 400, TARGET_B, PITCH, 3, 2,
               true, key);
    model_blit(&e, TARGET_B, PITCH, 7, 9, 600, 400, TARGET_B, PITCH, 0, 0,
               true, key);
    check_ram(&e);
    /* ... and within the same rows (source and destination row overlap),
     * with widths that are not a multiple of four pixels. */
    CMD(&e, OP_BLIT, TARGET_B, PITCH, 0, 100, 601, 50, 5, 100, 1, key);
    CMD(&e, OP_BLIT, TARGET_B, PITCH, 5, 200, 603, 50, 0, 200, 1, key);
    CMD(&e, OP_BLIT, TARGET_B, PITCH, 1, 300, 3, 50, 2, 300, 1, key);
    frame(&e);
    model_blit(&e, TARGET_B, PITCH, 0, 100, 601, 50, TARGET_B, PITCH, 5, 100,
               true, key);
    model_blit(&e, TARGET_B, PITCH, 5, 200, 603, 50, TARGET_B, PITCH, 0, 200,
               true, key);
    model_blit(&e, TARGET_B, PITCH, 1, 300, 3, 50, TARGET_B, PITCH, 2, 300,
               true, key);
    check_ram(&e);
    g_assert_cmpuint(rd(&e, R_ERROR), ==, 0);
    env_free(&e);
}

/* Commands straddle the end of the ring at every phase: a 60-byte ring
 * (15 words, not a power of two) and one command per frame. */
static void test_ring_wrap(void)
{
    Env e;
    env_init_pb(&e, 4096);
    fill_texture(&e, TEX, 64 * 1024, 11);
    pb_setup(&e, PB_BASE + 8192, 60, 52);
    for (uint32_t i = 0; i < 60; i++) {
        uint32_t x = i * 7 % 600, y = i * 13 % 400, c = 0x00010203 * i;
        switch (i % 4) {
        case 0:
            CMD(&e, OP_FILL_RECT, x, y, 30, 20, c);
            model_fill(&e, TARGET_A, PITCH, x, y, 30, 20, c);
            break;
        case 1:
            CMD(&e, OP_BLIT, TEX, 256, i, 0, 40, 30, x, y, i / 4 & 1, c);
            model_blit(&e, TEX, 256, i, 0, 40, 30, TARGET_A, PITCH, x, y,
                       i / 4 & 1, c);
            break;
        case 2:
            CMD(&e, OP_NOTIFY, i);
            emit(&e, OP_NOP, 0, NULL);
            break;
        default:
            CMD(&e, OP_CLEAR, c);
            model_fill(&e, TARGET_A, PITCH, 0, 0, 640, 480, c);
            break;
        }
        frame(&e);
        check_ram(&e);
        g_assert_cmpuint(rd(&e, R_GET), ==, e.cursor);
        g_assert_cmpuint(rd(&e, R_ERROR), ==, 0);
    }
    /* A full ring: 14 words pending (PUT one word behind GET). */
    uint32_t start = rd(&e, R_GET);
    CMD(&e, OP_FILL_RECT, 1, 1, 2, 2, 0x77);
    CMD(&e, OP_FILL_RECT, 5, 5, 2, 2, 0x88);
    emit(&e, OP_NOP, 0, NULL);
    emit(&e, OP_NOP, 0, NULL);
    g_assert_cmpuint(e.cursor, ==, (start + 56) % 60);
    frame(&e);
    model_fill(&e, TARGET_A, PITCH, 1, 1, 2, 2, 0x77);
    model_fill(&e, TARGET_A, PITCH, 5, 5, 2, 2, 0x88);
    check_ram(&e);
    g_assert_cmpuint(rd(&e, R_GET), ==, e.cursor);
    g_assert_cmpuint(rd(&e, R_ERROR), ==, 0);
    env_free(&e);
}

/* A command whose arguments are not all before PUT waits, untouched. */
static void test_partial_command(void)
{
    Env e;
    env_init_pb(&e, 4096);
    uint32_t hdr_at = e.cursor;
    CMD(&e, OP_FILL_RECT, 10, 10, 20, 20, 0x00ABCDEF);
    uint32_t end = e.cursor;
    wr(&e, R_PUT, hdr_at + 12);         /* header and two arguments */
    gpu_vblank(e.gpu);
    check_ram(&e);
    g_assert_cmpuint(rd(&e, R_GET), ==, hdr_at);
    g_assert_cmpuint(rd(&e, R_ERROR), ==, 0);
    wr(&e, R_PUT, end);
    gpu_vblank(e.gpu);
    model_fill(&e, TARGET_A, PITCH, 10, 10, 20, 20, 0x00ABCDEF);
    check_ram(&e);
    g_assert_cmpuint(rd(&e, R_GET), ==, end);
    env_free(&e);
}

/* FLIP and SCANOUT_BASE take effect at the vblank, not before. */
static void test_flip(void)
{
    Env e;
    uint32_t base, pitch;
    g_autofree uint32_t *pic = g_new(uint32_t, 640 * 480);
    GError *err = NULL;

    env_init_pb(&e, 4096);
    gpu_scanout(e.gpu, &base, &pitch);
    g_assert_cmphex(base, ==, 0);
    g_assert_cmpuint(pitch, ==, 2560);

    /* Drawn and flipped in one push: shown after this vblank. */
    fill_texture(&e, TEX, 64 * 1024, 5);
    CMD(&e, OP_CLEAR, 0x00112233);
    CMD(&e, OP_BLIT, TEX, 512, 0, 0, 128, 128, 256, 176, 0, 0);
    CMD(&e, OP_FLIP, TARGET_A);
    kick(&e);
    gpu_scanout(e.gpu, &base, &pitch);
    g_assert_cmphex(base, ==, 0);
    g_assert_cmphex(rd(&e, R_SCAN_BASE), ==, 0);
    gpu_vblank(e.gpu);
    model_fill(&e, TARGET_A, PITCH, 0, 0, 640, 480, 0x00112233);
    model_blit(&e, TEX, 512, 0, 0, 128, 128, TARGET_A, PITCH, 256, 176,
               false, 0);
    check_ram(&e);
    gpu_scanout(e.gpu, &base, &pitch);
    g_assert_cmphex(base, ==, TARGET_A);
    g_assert_cmphex(rd(&e, R_SCAN_BASE), ==, TARGET_A);
    g_assert_true(gpu_read_scanout(e.gpu, pic, &err));
    g_assert_no_error(err);
    for (uint32_t y = 0; y < 480; y++) {
        for (uint32_t x = 0; x < 640; x++) {
            g_assert_cmphex(pic[y * 640 + x], ==,
                            model32(&e, TARGET_A + y * PITCH + x * 4));
        }
    }

    /* Register writes: latched at the next vblank, pitch with base. */
    wr(&e, R_SCAN_PITCH, 4096);
    wr(&e, R_SCAN_BASE, TARGET_B);
    gpu_scanout(e.gpu, &base, &pitch);
    g_assert_cmphex(base, ==, TARGET_A);
    g_assert_cmpuint(pitch, ==, 2560);
    gpu_vblank(e.gpu);
    gpu_scanout(e.gpu, &base, &pitch);
    g_assert_cmphex(base, ==, TARGET_B);
    g_assert_cmpuint(pitch, ==, 4096);
    g_assert_true(gpu_read_scanout(e.gpu, pic, &err));
    g_assert_cmphex(pic[639 + 479 * 640], ==,
                    model32(&e, TARGET_B + 479 * 4096 + 639 * 4));

    /* Two flips in one vblank: the last one wins. */
    CMD(&e, OP_FLIP, TARGET_A);
    CMD(&e, OP_FLIP, TEX);
    frame(&e);
    gpu_scanout(e.gpu, &base, &pitch);
    g_assert_cmphex(base, ==, TEX);
    g_assert_cmpuint(rd(&e, R_ERROR), ==, 0);
    check_ram(&e);
    env_free(&e);
}

static void test_notify(void)
{
    Env e;
    env_init_pb(&e, 4096);
    CMD(&e, OP_NOTIFY, 0xDEADBEEF);
    kick(&e);
    g_assert_cmphex(rd(&e, R_NOTIFY), ==, 0);
    gpu_vblank(e.gpu);
    g_assert_cmphex(rd(&e, R_NOTIFY), ==, 0xDEADBEEF);
    g_assert_cmpuint(rd(&e, R_STATUS), ==, I_NOTIFY | I_VBLANK);
    g_assert_false(e.th->irq_level[GPU_IRQ]);

    wr(&e, R_STATUS, 7);
    wr(&e, R_ENABLE, I_NOTIFY);
    /* Several: the last value stays. */
    CMD(&e, OP_NOTIFY, 1);
    CMD(&e, OP_NOTIFY, 2);
    frame(&e);
    g_assert_cmpuint(rd(&e, R_NOTIFY), ==, 2);
    g_assert_true(e.th->irq_level[GPU_IRQ]);
    wr(&e, R_STATUS, I_VBLANK);
    g_assert_true(e.th->irq_level[GPU_IRQ]);
    wr(&e, R_STATUS, I_NOTIFY);
    g_assert_false(e.th->irq_level[GPU_IRQ]);
    /* A frame without NOTIFY does not raise it. */
    frame(&e);
    g_assert_false(e.th->irq_level[GPU_IRQ]);
    g_assert_cmpuint(rd(&e, R_NOTIFY), ==, 2);
    check_ram(&e);
    env_free(&e);
}

/* ---- errors ---- */

/* Error 1: unknown opcodes, wrong counts, reserved header bits.  Each
 * bad command is skipped with its claimed arguments; the next command
 * runs; ERROR keeps the first code. */
static void test_error_command(void)
{
    Env e;
    env_init_pb(&e, 4096);
    wr(&e, R_ENABLE, I_ERROR);
    static const uint32_t bad[] = {
        0x00000007, 0x000100FF, 0x00020002, 0x00000002, 0x00040004,
        0x000B0004, 0x00000100, 0x01000000, 0x80010002, 0x00010602,
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        unsigned n = (bad[i] >> 16) & 0xFF;
        pb_word(&e, bad[i]);
        for (unsigned j = 0; j < n; j++) {
            /* Arguments that would be valid commands if parsed. */
            pb_word(&e, 0x00010002);
        }
        CMD(&e, OP_FILL_RECT, i, i, 1, 1, 0x00AA0000 + i);
        frame(&e);
        model_fill(&e, TARGET_A, PITCH, i, i, 1, 1, 0x00AA0000 + i);
        check_ram(&e);
        g_assert_true(e.th->irq_level[GPU_IRQ]);
        expect_error(&e, 1);
        g_assert_false(e.th->irq_level[GPU_IRQ]);
        g_assert_cmpuint(rd(&e, R_GET), ==, e.cursor);
    }

    /* A count running past PUT: skipped up to PUT, nothing more. */
    pb_word(&e, 0x00FF0002);
    pb_word(&e, 0x00010002);
    pb_word(&e, 0x00FF00FF);
    frame(&e);
    check_ram(&e);
    expect_error(&e, 1);
    g_assert_cmpuint(rd(&e, R_GET), ==, e.cursor);

    /* The first code stays latched until cleared. */
    CMD(&e, OP_FILL_RECT, 0, 0, 641, 1, 0);
    pb_word(&e, 0x99);
    frame(&e);
    g_assert_cmpuint(rd(&e, R_ERROR), ==, 2);
    pb_word(&e, 0x99);
    frame(&e);
    g_assert_cmpuint(rd(&e, R_ERROR), ==, 2);
    expect_error(&e, 2);
    frame(&e);
    expect_error(&e, 0);
    check_ram(&e);
    env_free(&e);
}

/* Error 2: rectangles outside the target, negative and huge sizes and
 * coordinates whose 32-bit sums would wrap. */
static void test_error_rect(void)
{
    static const uint32_t r[][4] = {
        { 600, 0, 41, 1 }, { 0, 479, 1, 2 }, { 640, 0, 1, 1 },
        { 0, 480, 1, 1 }, { 641, 0, 0, 0 }, { 0, 481, 0, 0 },
        { 0, 0, 0xFFFFFFFF, 1 }, { 0, 0, 1, 0xFFFFFFFF },
        { 0xFFFFFFFF, 0, 2, 1 }, { 0, 0xFFFFFFFF, 1, 2 },
        { 0xFFFFFFFF, 0xFFFFFFFF, 1, 1 }, { 0x80000000, 0, 0x80000001, 1 },
        { 0, 0, 0x40000001, 1 }, { 0, 0, 641, 480 }, { 0, 0, 640, 481 },
    };
    Env e;
    env_init_pb(&e, 4096);
    fill_texture(&e, TEX, 4096, 1);
    for (unsigned i = 0; i < G_N_ELEMENTS(r); i++) {
        CMD(&e, OP_FILL_RECT, r[i][0], r[i][1], r[i][2], r[i][3], 0x55);
        frame(&e);
        check_ram(&e);
        expect_error(&e, 2);
        /* The same destination for a blit, from a valid source. */
        CMD(&e, OP_BLIT, TEX, 0, 0, 0, r[i][2], r[i][3], r[i][0], r[i][1],
            0, 0);
        frame(&e);
        check_ram(&e);
        expect_error(&e, 2);
    }
    env_free(&e);
}

/* Error 3: blit sources outside RAM, including 64-bit overflow. */
static void test_error_source(void)
{
    static const uint32_t s[][6] = {
        /* base, pitch, sx, sy, w, h */
        { RAM_SIZE - 4, 4, 0, 0, 2, 1 },
        { RAM_SIZE - 8, 0, 0, 0, 4, 4 },
        { RAM_SIZE, 0, 0, 0, 1, 1 },
        { 0xFFFFFFFF, 0, 0, 0, 1, 1 },
        { 0xFFFFFFFC, 0, 0, 0, 1, 1 },
        { 0, 0x10000, 0, 128, 1, 1 },
        { 0, 0x10000, 0, 127, 1, 2 },
        { 0, 0xFFFFFFFF, 0, 0, 1, 2 },
        { 0, 0, 0x200000, 0, 1, 1 },
        { 0, 0, 0xFFFFFFFF, 0, 1, 1 },
        { 0, 0xFFFFFFFF, 0, 0xFFFFFFFF, 1, 1 },
        { 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 640, 480 },
        { 0, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFE, 1, 2 },
    };
    Env e;
    env_init_pb(&e, 4096);
    for (unsigned i = 0; i < G_N_ELEMENTS(s); i++) {
        CMD(&e, OP_BLIT, s[i][0], s[i][1], s[i][2], s[i][3], s[i][4],
            s[i][5], 0, 0, i & 1, 0);
        frame(&e);
        check_ram(&e);
        expect_error(&e, 3);
    }
    /* The last word of RAM is a valid source. */
    poke32(&e, RAM_SIZE - 4, 0x00C0FFEE);
    CMD(&e, OP_BLIT, RAM_SIZE - 4, 4, 0, 0, 1, 1, 9, 9, 0, 0);
    frame(&e);
    model_put32(&e, TARGET_A + 9 * PITCH + 36, 0x00C0FFEE);
    check_ram(&e);
    expect_error(&e, 0);
    env_free(&e);
}

/* Error 4: targets and scanouts outside RAM or with a short pitch, and
 * drawing before any SET_TARGET. */
static void test_error_target(void)
{
    static const uint32_t t[][2] = {
        { RAM_SIZE - SURFACE_BYTES + 4, PITCH },
        { RAM_SIZE - SURFACE_BYTES, PITCH + 4 },
        { RAM_SIZE, PITCH }, { 0xFFFFFFFF, PITCH },
        { 0, 2556 }, { 0, 0 }, { 0, 0xFFFFFFFF }, { 0, 0x8000 },
        { 0xFFFFF000, 0xFFFFFFFF },
    };
    Env e;
    uint32_t base, pitch;

    /* No target yet. */
    env_init_ram(&e, RAM_SIZE);
    pb_setup(&e, PB_BASE, 4096, 0);
    CMD(&e, OP_CLEAR, 1);
    frame(&e);
    expect_error(&e, 4);
    CMD(&e, OP_FILL_RECT, 0, 0, 1, 1, 1);
    frame(&e);
    expect_error(&e, 4);
    CMD(&e, OP_BLIT, TEX, 4, 0, 0, 1, 1, 0, 0, 0, 0);
    frame(&e);
    expect_error(&e, 4);
    check_ram(&e);

    /* The last surface that fits is accepted. */
    CMD(&e, OP_SET_TARGET, RAM_SIZE - SURFACE_BYTES, PITCH);
    CMD(&e, OP_FILL_RECT, 639, 479, 1, 1, 0x00ABCDEF);
    frame(&e);
    model_put32(&e, RAM_SIZE - 4, 0x00ABCDEF);
    check_ram(&e);
    expect_error(&e, 0);

    for (unsigned i = 0; i < G_N_ELEMENTS(t); i++) {
        /* A bad SET_TARGET is skipped: the previous target stays. */
        CMD(&e, OP_SET_TARGET, t[i][0], t[i][1]);
        CMD(&e, OP_FILL_RECT, 0, 0, 1, 1, i);
        frame(&e);
        model_put32(&e, RAM_SIZE - SURFACE_BYTES, i);
        check_ram(&e);
        expect_error(&e, 4);
    }

    /* A FLIP outside RAM is skipped: SCANOUT_BASE and the picture stay. */
    static const uint32_t bad_flip[] = {
        RAM_SIZE - SURFACE_BYTES + 4, RAM_SIZE, 0xFFFFFFFF, 0xFFFFF000,
        0x80000000,
    };
    CMD(&e, OP_FLIP, TARGET_A);
    frame(&e);
    expect_error(&e, 0);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_flip); i++) {
        CMD(&e, OP_FLIP, bad_flip[i]);
        frame(&e);
        expect_error(&e, 4);
        g_assert_cmphex(rd(&e, R_SCAN_BASE), ==, TARGET_A);
        gpu_scanout(e.gpu, &base, &pitch);
        g_assert_cmphex(base, ==, TARGET_A);
    }
    /* ... and so is one the current SCANOUT_PITCH makes too long. */
    wr(&e, R_SCAN_PITCH, 0x8000);
    CMD(&e, OP_FLIP, 0);
    frame(&e);
    expect_error(&e, 4);
    g_assert_cmphex(rd(&e, R_SCAN_BASE), ==, TARGET_A);

    /* Scanout registers outside RAM or with a short pitch: error 4 at
     * each vblank until repaired, and the picture stays. */
    for (unsigned i = 0; i < G_N_ELEMENTS(t); i++) {
        wr(&e, R_SCAN_BASE, t[i][0]);
        wr(&e, R_SCAN_PITCH, t[i][1]);
        for (int f = 0; f < 2; f++) {
            gpu_vblank(e.gpu);
            expect_error(&e, 4);
            gpu_scanout(e.gpu, &base, &pitch);
            g_assert_cmphex(base, ==, TARGET_A);
            g_assert_cmpuint(pitch, ==, PITCH);
        }
        wr(&e, R_SCAN_BASE, TARGET_A);
        wr(&e, R_SCAN_PITCH, PITCH);
        gpu_vblank(e.gpu);
        expect_error(&e, 0);
    }
    check_ram(&e);
    env_free(&e);

    /* A RAM too small for the default scanout: reading it fails. */
    env_init_ram(&e, 1 * MiB);
    g_autofree uint32_t *pic = g_new(uint32_t, 640 * 480);
    GError *err = NULL;
    g_assert_false(gpu_read_scanout(e.gpu, pic, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "outside guest RAM"));
    g_error_free(err);
    env_free(&e);
}

/* Error 5: the push buffer, PUT and GET. */
static void test_error_pushbuf(void)
{
    static const uint32_t p[][4] = {
        /* base, size, get, put */
        { PB_BASE, 4096, 0, 4096 },
        { PB_BASE, 4096, 0, 4100 },
        { PB_BASE, 4096, 0, 0xFFFFFFFC },
        { PB_BASE, 4096, 0, 2 },
        { PB_BASE, 4096, 0, 7 },
        { PB_BASE, 4096, 4096, 0 },
        { PB_BASE, 4096, 1, 0 },
        { PB_BASE, 0, 0, 4 },
        { PB_BASE, 4098, 0, 4 },
        { PB_BASE, (1 << 20) + 4, 0, 4 },
        { PB_BASE, 0xFFFFFFFC, 0, 4 },
        { PB_BASE + 2, 4096, 0, 4 },
        { RAM_SIZE - 2048, 4096, 0, 4 },
        { RAM_SIZE, 4096, 0, 4 },
        { 0xFFFFF000, 4096, 0, 4 },
    };
    Env e;
    env_init_pb(&e, 4096);
    wr(&e, R_ENABLE, I_ERROR);
    for (unsigned i = 0; i < G_N_ELEMENTS(p); i++) {
        /* Valid-looking commands wherever the GPU might look. */
        for (uint32_t off = 0; off < 4096; off += 8) {
            poke32(&e, PB_BASE + off, 0x00010002);
            poke32(&e, PB_BASE + off + 4, 0x00FFFFFF);
        }
        wr(&e, R_PB_BASE, p[i][0]);
        wr(&e, R_PB_SIZE, p[i][1]);
        wr(&e, R_GET, p[i][2]);
        wr(&e, R_PUT, p[i][3]);
        gpu_vblank(e.gpu);
        check_ram(&e);
        g_assert_true(e.th->irq_level[GPU_IRQ]);
        expect_error(&e, 5);
        g_assert_cmpuint(rd(&e, R_GET), ==, p[i][2]);
        /* It persists until the CPU repairs the registers. */
        gpu_vblank(e.gpu);
        expect_error(&e, 5);
    }
    /* PUT == GET is idle whatever the rest says. */
    wr(&e, R_PB_SIZE, 0);
    wr(&e, R_GET, 12);
    wr(&e, R_PUT, 12);
    gpu_vblank(e.gpu);
    expect_error(&e, 0);
    /* Repaired: runs again. */
    pb_setup(&e, PB_BASE, 4096, 0);
    CMD(&e, OP_FILL_RECT, 1, 2, 3, 4, 0x00010203);
    frame(&e);
    model_fill(&e, TARGET_A, PITCH, 1, 2, 3, 4, 0x00010203);
    check_ram(&e);
    expect_error(&e, 0);
    env_free(&e);
}

/* Error 6: more than 65,536 commands in one vblank.  65,536 run; the
 * rest waits for the next vblank. */
static void test_error_runaway(void)
{
    Env e;
    env_init_pb(&e, 4096);
    pb_setup(&e, PB_BASE, 1 << 20, 0);
    for (unsigned i = 0; i < 65536 - 1; i++) {
        emit(&e, OP_NOP, 0, NULL);
    }
    CMD(&e, OP_FILL_RECT, 0, 0, 1, 1, 0x11);
    frame(&e);
    model_put32(&e, TARGET_A, 0x11);
    check_ram(&e);
    expect_error(&e, 0);                    /* exactly 65,536: fine */
    g_assert_cmpuint(rd(&e, R_GET), ==, e.cursor);

    uint32_t start = e.cursor;
    for (unsigned i = 0; i < 65536; i++) {
        emit(&e, OP_NOP, 0, NULL);
    }
    CMD(&e, OP_FILL_RECT, 0, 0, 1, 1, 0x22);    /* the 65,537th */
    CMD(&e, OP_FILL_RECT, 1, 0, 1, 1, 0x33);
    frame(&e);
    check_ram(&e);
    expect_error(&e, 6);
    g_assert_cmpuint(rd(&e, R_GET), ==, (start + 65536 * 4) % (1 << 20));
    gpu_vblank(e.gpu);
    model_put32(&e, TARGET_A, 0x22);
    model_put32(&e, TARGET_A + 4, 0x33);
    check_ram(&e);
    expect_error(&e, 0);
    g_assert_cmpuint(rd(&e, R_GET), ==, e.cursor);

    /* A ring full of garbage headers (PUT just behind GET): bounded. */
    for (uint32_t off = 0; off < (1 << 20); off += 4) {
        poke32(&e, PB_BASE + off, 0x0000FF00 | (off & 0xFF));
    }
    wr(&e, R_GET, 0);
    wr(&e, R_PUT, (1 << 20) - 4);
    gpu_vblank(e.gpu);
    check_ram(&e);
    g_assert_cmpuint(rd(&e, R_ERROR), ==, 1);
    g_assert_cmpuint(rd(&e, R_GET), ==, 65536 * 4);
    for (int i = 0; i < 3; i++) {
        gpu_vblank(e.gpu);
    }
    g_assert_cmpuint(rd(&e, R_GET), ==, (1 << 20) - 4);
    check_ram(&e);
    env_free(&e);
}

/* ---- fuzz ---- */

static uint32_t fuzz_value(GRand *r, Env *e)
{
    static const uint32_t v[] = {
        0, 1, 2, 3, 4, 100, 479, 480, 481, 639, 640, 641, 2560, 4096,
        0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFC,
        RAM_SIZE, RAM_SIZE - 4, TEX, TARGET_A, PB_BASE, 0x10000,
    };
    switch (g_rand_int_range(r, 0, 4)) {
    case 0:
        return g_rand_int(r);
    case 1:
        return g_rand_int_range(r, 0, 700);
    default:
        return v[g_rand_int_range(r, 0, G_N_ELEMENTS(v))];
    }
}

/* One command; SET_TARGET only ever selects A or B (or junk that no RAM
 * holds), so the GPU may draw only there. */
static void fuzz_command(GRand *r, Env *e, bool wild)
{
    static const uint32_t counts[] = { 0, 2, 1, 5, 10, 1, 1 };
    static const uint32_t junk_targets[][2] = {
        { RAM_SIZE, PITCH }, { TARGET_A, 100 }, { 0xFFFFFFFF, 0xFFFFFFFF },
        { RAM_SIZE - 4096, PITCH }, { TARGET_B, 0 },
    };
    uint32_t op = g_rand_int_range(r, 0, wild ? 9 : 7);
    uint32_t n, a[12];

    if (op == OP_SET_TARGET) {
        switch (g_rand_int_range(r, 0, 3)) {
        case 0:
            CMD(e, OP_SET_TARGET, TARGET_A, PITCH);
            break;
        case 1:
            CMD(e, OP_SET_TARGET, TARGET_B, 4096);
            break;
        default: {
            const uint32_t *j = junk_targets[g_rand_int_range(r, 0, 5)];
            CMD(e, OP_SET_TARGET, j[0], j[1]);
        }
        }
        return;
    }
    if (op >= G_N_ELEMENTS(counts)) {
        /* Raw garbage, never a SET_TARGET header. */
        uint32_t w = g_rand_int(r);
        if (w == 0x00020001) {
            w = 0;
        }
        pb_word(e, w);
        return;
    }
    n = counts[op];
    if (wild && g_rand_int_range(r, 0, 16) == 0) {
        n = g_rand_int_range(r, 0, 12);         /* a wrong count */
    }
    for (uint32_t i = 0; i < n; i++) {
        /* Tame streams: mostly coordinates that fit, some that do not. */
        a[i] = wild || g_rand_int_range(r, 0, 25) == 0
               ? fuzz_value(r, e) : (uint32_t)g_rand_int_range(r, 0, 240);
        if (a[i] == 0x00020001) {
            a[i] = 0;
        }
    }
    emit(e, op, n, a);
}

static void test_fuzz(void)
{
    Env e;
    GRand *r = g_rand_new_with_seed(20240601);
    env_init_pb(&e, 4096);
    pb_setup(&e, PB_BASE, 8192, 0);
    fill_texture(&e, TEX, 256 * 1024, 2);
    g_autofree uint8_t *before = g_memdup2(e.th->ram, RAM_SIZE);
    g_autofree uint32_t *pic = g_new(uint32_t, 640 * 480);
    unsigned seen[7] = { 0 };

    for (int f = 0; f < 400; f++) {
        bool wild = g_rand_boolean(r);
        unsigned ncmd = g_rand_int_range(r, 1, wild ? 40 : 8);
        for (unsigned i = 0; i < ncmd; i++) {
            fuzz_command(r, &e, wild);
        }
        if (g_rand_int_range(r, 0, 20) == 0) {
            /* A PUT or GET outside the ring for a frame, then repaired.
             * (Never a valid one: the GPU would parse stale words.) */
            uint32_t v = fuzz_value(r, &e);
            if (v < 8192 && v % 4 == 0) {
                v |= 2;
            }
            wr(&e, g_rand_boolean(r) ? R_PUT : R_GET, v);
            gpu_vblank(e.gpu);
            g_assert_cmpuint(rd(&e, R_ERROR), ==, 5);
            pb_setup(&e, PB_BASE, 8192, e.cursor);
        }
        if (g_rand_int_range(r, 0, 20) == 0) {
            wr(&e, R_SCAN_BASE, fuzz_value(r, &e));
            wr(&e, R_SCAN_PITCH, fuzz_value(r, &e));
        }
        frame(&e);
        uint32_t err = rd(&e, R_ERROR);
        g_assert_cmpuint(err, <=, 6);
        seen[err]++;
        g_assert_cmpuint(rd(&e, R_GET) % 4, ==, 0);
        g_assert_cmpuint(rd(&e, R_GET), <, 8192);
        g_assert_true(gpu_read_scanout(e.gpu, pic, NULL));
        wr(&e, R_ERROR, 0);
        wr(&e, R_STATUS, 7);
        if (g_rand_int_range(r, 0, 4) == 0) {
            /* Back to a sane scanout (else error 4 every frame). */
            wr(&e, R_SCAN_BASE, TARGET_A);
            wr(&e, R_SCAN_PITCH, PITCH);
        }
        /* Skip what the GPU did not consume (a partial command). */
        pb_setup(&e, PB_BASE, 8192, e.cursor);
    }
    /* The stream reached every kind of outcome but a runaway (its frames
     * are too short), and drew. */
    if (g_test_verbose()) {
        g_test_message("first error per frame: none %u, 1: %u, 2: %u, 3: %u, "
                       "4: %u, 5: %u", seen[0], seen[1], seen[2], seen[3],
                       seen[4], seen[5]);
    }
    for (int i = 0; i <= 5; i++) {
        g_assert_cmpuint(seen[i], >, 0);
    }
    g_assert_true(memcmp(e.th->ram + TARGET_A, before + TARGET_A,
                         SURFACE_BYTES) != 0);
    g_assert_true(memcmp(e.th->ram + TARGET_B, before + TARGET_B,
                         SURFACE_BYTES) != 0);
    /* Outside the two targets RAM is what the CPU wrote. */
    for (uint64_t i = 0; i < RAM_SIZE; i++) {
        bool in_a = i >= TARGET_A && i < TARGET_A + SURFACE_BYTES;
        bool in_b = i >= TARGET_B && i < TARGET_B + 4096 * 480;
        bool in_pb = i >= PB_BASE && i < PB_BASE + 8192;
        if (!in_a && !in_b && !in_pb && e.th->ram[i] != before[i]) {
            g_error("fuzz: RAM changed at 0x%" G_GINT64_MODIFIER "x", i);
        }
    }
    g_rand_free(r);
    env_free(&e);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/gpu/registers", test_registers);
    g_test_add_func("/gpu/interrupts", test_interrupts);
    g_test_add_func("/gpu/clear", test_clear);
    g_test_add_func("/gpu/fill-rect", test_fill_rect);
    g_test_add_func("/gpu/blit", test_blit);
    g_test_add_func("/gpu/blit-colour-key", test_blit_colour_key);
    g_test_add_func("/gpu/ring-wrap", test_ring_wrap);
    g_test_add_func("/gpu/partial-command", test_partial_command);
    g_test_add_func("/gpu/flip", test_flip);
    g_test_add_func("/gpu/notify", test_notify);
    g_test_add_func("/gpu/error/command", test_error_command);
    g_test_add_func("/gpu/error/rect", test_error_rect);
    g_test_add_func("/gpu/error/source", test_error_source);
    g_test_add_func("/gpu/error/target", test_error_target);
    g_test_add_func("/gpu/error/pushbuf", test_error_pushbuf);
    g_test_add_func("/gpu/error/runaway", test_error_runaway);
    g_test_add_func("/gpu/fuzz", test_fuzz);
    return g_test_run();
}
