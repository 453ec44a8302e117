/*
 * render.c - the drawing, all by push-buffer commands (the GPU does the
 * pixel work; the CPU writes ~10 words per sprite).  Double buffered:
 * frames alternate between FB0 and FB1; the GPU runs a frame's commands
 * and latches its FLIP at the same vblank, so the buffer drawn into is
 * never the one being shown.  Without a sprite sheet, sprites become
 * filled boxes and digits seven-segment bars.
 */
#include "render.h"
#include "gpu.h"
#include "layout.h"

#define FLOOR_COLOUR 0x00202838u
#define HUD_COLOUR   0x00F0F0F0u

static const uint32_t box_colours[NUM_SPRITES] = {
    [1] = 0x00806040, [2] = 0x00705030, [3] = 0x00607080,
    [4] = 0x00508050, [5] = 0x00905050, [6] = 0x00707070,
    [7] = 0x00404090, [SPR_PLAYER] = 0x0030C0F0,
    [SPR_PLAYER + 1] = 0x0030A0E0, [SPR_ENEMY] = 0x00F04040,
    [SPR_ENEMY + 1] = 0x00D03030, [SPR_GEM] = 0x00F0E040,
    [SPR_DISK] = 0x0040F040,
};

static int back;                        /* 0: draw into FB0, 1: FB1 */

/* Draws sprite n with its top-left at (x, y).  Actors never leave the
 * walled level and the HUD sits inside the screen, so a sprite that would
 * not fit is skipped instead of clipped (fewer live values, fewer spills:
 * stack stores cost as much as any other). */
static void sprite(const Assets *a, int n, int x, int y)
{
    const SpriteRect *r = &a->spr[n];
    int w = a->have_sheet ? r->w : TILE, h = a->have_sheet ? r->h : TILE;
    if (x < 0 || y < 0 || x + w > SCREEN_W || y + h > SCREEN_H || !w ||
        !h) {
        return;
    }
    if (a->have_sheet) {
        gpu_blit(a->sheet_addr, a->sheet_pitch, r->x, r->y, w, h, x, y,
                 BLIT_KEY, a->key);
    } else {
        gpu_fill(x, y, w, h, box_colours[n]);
    }
}

/* Seven-segment digit in a 12x16 box: a-g as bits 0-6. */
static void seg_digit(int d, int x, int y)
{
    static const uint8_t segs[10] = {
        0x3F, 0x06, 0x5B, 0x4F, 0x66, 0x6D, 0x7D, 0x07, 0x7F, 0x6F,
    };
    static const uint8_t rect[7][4] = {
        { 2, 0, 8, 2 }, { 10, 1, 2, 7 }, { 10, 8, 2, 7 }, { 2, 14, 8, 2 },
        { 0, 8, 2, 7 }, { 0, 1, 2, 7 }, { 2, 7, 8, 2 },
    };
    for (int s = 0; s < 7; s++) {
        if (segs[d] & (1u << s)) {
            gpu_fill(x + rect[s][0], y + rect[s][1], rect[s][2], rect[s][3],
                     HUD_COLOUR);
        }
    }
}

/* v right-aligned in digits places ending at x_end. */
static void number(const Assets *a, uint32_t v, int digits, int x_end, int y)
{
    for (int i = 1; i <= digits; i++) {
        int d = (int)(v % 10);
        int x = x_end - i * 14;
        if (a->have_sheet) {
            sprite(a, SPR_DIGIT0 + d, x, y);
        } else {
            seg_digit(d, x, y);
        }
        v /= 10;
    }
}

void render_background(const Assets *a)
{
    gpu_set_target(BG_ADDR, SCREEN_PITCH);
    gpu_clear(FLOOR_COLOUR);
    for (int y = 0; y < LEVEL_H; y++) {
        for (int x = 0; x < LEVEL_W; x++) {
            int t = a->tiles[y][x];
            /* Floor tiles only with a sheet: boxes need no floor. */
            if (t || a->have_sheet) {
                sprite(a, SPR_TILE0 + t, x * TILE, y * TILE);
            }
        }
    }
    gpu_kick();
}

static void actor(const Assets *a, int n, const Ent *e, uint32_t frame)
{
    int anim = (frame >> 3) & 1;        /* two frames, 8 vblanks each */
    /* The 12 px box sits in the middle of a 16 px sprite. */
    sprite(a, n + anim, e->x / FIX - 2, e->y / FIX - 2);
}

void render_frame(const Assets *a, const GameState *g, bool saving)
{
    uint32_t fb = back ? FB1_ADDR : FB0_ADDR;
    gpu_set_target(fb, SCREEN_PITCH);
    gpu_blit(BG_ADDR, SCREEN_PITCH, 0, 0, SCREEN_W, SCREEN_H, 0, 0, 0, 0);
    for (uint32_t i = 0; i < g->n_gems; i++) {
        sprite(a, SPR_GEM, g->gems[i].x / FIX - 2, g->gems[i].y / FIX - 2);
    }
    for (uint32_t i = 0; i < g->n_enemies; i++) {
        actor(a, SPR_ENEMY, &g->enemies[i], g->frame + i);
    }
    actor(a, SPR_PLAYER, &g->player, g->frame);
    /* The HUD sits on the top wall row: score left, wave right. */
    number(a, g->score, 6, 4 + 6 * 14, 0);
    number(a, g->wave, 2, SCREEN_W - 4, 0);
    if (saving) {
        sprite(a, SPR_DISK, SCREEN_W / 2 - 8, 0);
    }
    gpu_flip(fb);
    gpu_notify(g->frame);
    gpu_kick();
    back ^= 1;
}
