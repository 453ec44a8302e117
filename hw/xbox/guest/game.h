/*
 * game.h - the simulation: a player steered by the pad collects gems on a
 * walled 40x30 tile level while enemies bounce around.  When the pad has
 * been idle for DEMO_AFTER frames an autopilot plays (demo mode), so a
 * run without input still makes progress.  The whole state
 * is one plain struct (saved and restored as it is); a step depends only
 * on the state, the level and the pad, so runs are deterministic.
 */
#ifndef GUEST_GAME_H
#define GUEST_GAME_H

#include "assets.h"
#include "rng.h"
#include <stdbool.h>
#include <stdint.h>

#define MAX_ENEMIES 12
#define MAX_GEMS    6
#define FIX         256         /* positions in 1/256 pixel */
#define DEMO_AFTER  120         /* idle pad frames before the autopilot */

/* Pad bits (docs/machine.md, "Gamepad"). */
#define PAD_UP      (1u << 0)
#define PAD_DOWN    (1u << 1)
#define PAD_LEFT    (1u << 2)
#define PAD_RIGHT   (1u << 3)
#define PAD_START   (1u << 4)
#define PAD_BACK    (1u << 5)
#define PAD_A       (1u << 8)

typedef struct Pad {
    uint16_t buttons;
    int16_t lx, ly;
} Pad;

typedef struct Ent {
    int32_t x, y;               /* top-left, 1/256 px */
    int32_t vx, vy;             /* 1/256 px per frame */
} Ent;

typedef struct GameState {
    uint32_t frame;             /* simulation steps so far */
    Rng rng;
    uint32_t score, gems_taken, hits, wave;
    uint32_t n_enemies, n_gems;
    uint32_t paused;
    uint32_t prev_buttons;      /* for button edges */
    uint32_t level_hash;        /* the level this state was played on */
    uint32_t idle_frames;       /* frames since the pad last moved */
    uint32_t wander;            /* autopilot: frames left on a detour */
    int32_t wander_dx, wander_dy;
    int32_t best_dist;          /* autopilot: closest it got to a gem */
    uint32_t stall;             /* autopilot: frames without getting closer */
    Ent player;
    Ent enemies[MAX_ENEMIES];
    Ent gems[MAX_GEMS];
} GameState;

void game_init(GameState *g, const Assets *a, uint64_t seed);
/* Adopts a saved state; if it was played on another level, keeps the
 * progress (score, counters, PRNG) and places the actors afresh. */
void game_restore(GameState *g, const GameState *saved, const Assets *a);
void game_read_pad(Pad *p);
/* One frame.  Returns true when BACK was pressed (power off request). */
bool game_step(GameState *g, const Assets *a, const Pad *p);

#endif
