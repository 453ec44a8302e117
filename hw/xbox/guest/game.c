/*
 * game.c - the simulation step.  Integer arithmetic only (positions in
 * 1/256 px), every random choice from the state's own PRNG, so a step is
 * a pure function of (state, level, pad).  Few stores per frame: each
 * actor's fields are written once per step.
 */
#include "game.h"
#include "io.h"
#include "layout.h"
#include "lib.h"

#define ACTOR       12          /* hit box side in pixels (sprite is 16) */
#define PLAYER_SPD  (2 * FIX)
#define STICK_DEAD  8000
#define STALL_MAX   90          /* autopilot frames without progress */
#define FAR         0x7FFFFFFF

static bool solid_at(const Assets *a, int px, int py)
{
    int tx = px / TILE, ty = py / TILE;
    if (px < 0 || py < 0 || tx >= LEVEL_W || ty >= LEVEL_H) {
        return true;
    }
    return a->tiles[ty][tx] != 0;
}

/* Does an ACTOR-sized box at (x, y) (1/256 px) touch a wall? */
static bool box_hits_wall(const Assets *a, int32_t x, int32_t y)
{
    int x0 = x / FIX, y0 = y / FIX;
    int x1 = x0 + ACTOR - 1, y1 = y0 + ACTOR - 1;
    return solid_at(a, x0, y0) || solid_at(a, x1, y0) ||
           solid_at(a, x0, y1) || solid_at(a, x1, y1);
}

static bool boxes_touch(const Ent *p, const Ent *q)
{
    int32_t dx = p->x - q->x, dy = p->y - q->y;
    int32_t lim = ACTOR * FIX;
    return dx > -lim && dx < lim && dy > -lim && dy < lim;
}

/* Actors stand centred in a tile. */
static void place_on_tile(Ent *e, int tx, int ty)
{
    e->x = (tx * TILE + (TILE - ACTOR) / 2) * FIX;
    e->y = (ty * TILE + (TILE - ACTOR) / 2) * FIX;
}

/* A free tile at least 4 tiles from the player (bounded tries). */
static void place_random(GameState *g, const Assets *a, Ent *e)
{
    int px = g->player.x / FIX / TILE, py = g->player.y / FIX / TILE;
    int tx = a->spawn_x, ty = a->spawn_y;
    for (int i = 0; i < 64; i++) {
        int x = 1 + (int)rng_below(&g->rng, LEVEL_W - 2);
        int y = 1 + (int)rng_below(&g->rng, LEVEL_H - 2);
        int dx = x - px, dy = y - py;
        if (!a->tiles[y][x] && dx * dx + dy * dy >= 16) {
            tx = x;
            ty = y;
            break;
        }
    }
    place_on_tile(e, tx, ty);
}

/* A speed of 0.5 to 2 px per frame with a random sign. */
static int32_t random_speed(GameState *g)
{
    int32_t v = (int32_t)(FIX / 2 + rng_below(&g->rng, FIX * 3 / 2));
    return rng_below(&g->rng, 2) ? v : -v;
}

static void spawn_enemy(GameState *g, const Assets *a, Ent *e)
{
    place_random(g, a, e);
    e->vx = random_speed(g);
    e->vy = random_speed(g);
}

static void place_actors(GameState *g, const Assets *a)
{
    place_on_tile(&g->player, a->spawn_x, a->spawn_y);
    g->player.vx = g->player.vy = 0;
    for (uint32_t i = 0; i < g->n_enemies; i++) {
        spawn_enemy(g, a, &g->enemies[i]);
    }
    for (uint32_t i = 0; i < g->n_gems; i++) {
        place_random(g, a, &g->gems[i]);
        g->gems[i].vx = g->gems[i].vy = 0;
    }
}

void game_init(GameState *g, const Assets *a, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    rng_seed(&g->rng, seed);
    g->wave = 1;
    g->best_dist = FAR;
    g->n_enemies = a->enemies;
    g->n_gems = a->gems;
    g->level_hash = a->level_hash;
    place_actors(g, a);
}

void game_restore(GameState *g, const GameState *saved, const Assets *a)
{
    *g = *saved;
    if (g->n_enemies > MAX_ENEMIES || g->n_gems > MAX_GEMS) {
        g->n_enemies = a->enemies;
        g->n_gems = a->gems;
        g->level_hash = 0;
    }
    if (g->level_hash != a->level_hash) {
        g->level_hash = a->level_hash;
        place_actors(g, a);
    }
}

void game_read_pad(Pad *p)
{
    bool connected = inb(PORT_PAD + 0x0C) & 1;
    p->buttons = connected ? inw(PORT_PAD + 0x00) : 0;
    p->lx = connected ? (int16_t)inw(PORT_PAD + 0x04) : 0;
    p->ly = connected ? (int16_t)inw(PORT_PAD + 0x06) : 0;
}

/* Moves e by (dx, dy) one axis at a time; returns which axes hit a wall
 * (bit 0: x, bit 1: y) and leaves e where it last fitted. */
static int move_actor(const Assets *a, Ent *e, int32_t dx, int32_t dy)
{
    int hit = 0;
    int32_t x = e->x, y = e->y;
    if (dx && !box_hits_wall(a, x + dx, y)) {
        x += dx;
    } else if (dx) {
        hit |= 1;
    }
    if (dy && !box_hits_wall(a, x, y + dy)) {
        y += dy;
    } else if (dy) {
        hit |= 2;
    }
    e->x = x;
    e->y = y;
    return hit;
}

/* Pad to a velocity: the d-pad, else the left stick (Y up is positive). */
static void player_velocity(const Pad *p, int32_t *dx, int32_t *dy)
{
    int32_t spd = (p->buttons & PAD_A) ? 2 * PLAYER_SPD : PLAYER_SPD;
    *dx = *dy = 0;
    if (p->buttons & PAD_LEFT) {
        *dx = -spd;
    } else if (p->buttons & PAD_RIGHT) {
        *dx = spd;
    } else if (p->lx > STICK_DEAD || p->lx < -STICK_DEAD) {
        *dx = p->lx * spd / 32768;
    }
    if (p->buttons & PAD_UP) {
        *dy = -spd;
    } else if (p->buttons & PAD_DOWN) {
        *dy = spd;
    } else if (p->ly > STICK_DEAD || p->ly < -STICK_DEAD) {
        *dy = -p->ly * spd / 32768;
    }
}

static int32_t toward(int32_t from, int32_t to, int32_t spd)
{
    int32_t d = to - from;
    return d > FIX ? spd : d < -FIX ? -spd : 0;
}

static void start_detour(GameState *g, uint32_t min_frames)
{
    static const int8_t dirs[8][2] = {
        { 1, 0 }, { -1, 0 }, { 0, 1 }, { 0, -1 },
        { 1, 1 }, { 1, -1 }, { -1, 1 }, { -1, -1 },
    };
    uint32_t d = rng_below(&g->rng, 8);
    g->wander = min_frames + rng_below(&g->rng, 40);
    g->wander_dx = dirs[d][0] * PLAYER_SPD;
    g->wander_dy = dirs[d][1] * PLAYER_SPD;
    g->best_dist = FAR;
    g->stall = 0;
}

/* Demo mode: head for the nearest gem.  A wall in the way (no move at
 * all: see step_player) or a long time without getting closer (walking
 * along a wall) sends the player on a random detour.  Every choice comes
 * from the state. */
static void autopilot(GameState *g, int32_t *dx, int32_t *dy)
{
    const Ent *p = &g->player, *best = NULL;
    int32_t best_d = 0;
    if (g->wander) {
        g->wander--;
        *dx = g->wander_dx;
        *dy = g->wander_dy;
        return;
    }
    for (uint32_t i = 0; i < g->n_gems; i++) {
        const Ent *q = &g->gems[i];
        int32_t d = (q->x > p->x ? q->x - p->x : p->x - q->x) +
                    (q->y > p->y ? q->y - p->y : p->y - q->y);
        if (!best || d < best_d) {
            best = q;
            best_d = d;
        }
    }
    if (best && best_d < g->best_dist) {
        g->best_dist = best_d;
        g->stall = 0;
    } else if (++g->stall > STALL_MAX) {
        start_detour(g, 60);
    }
    *dx = best ? toward(p->x, best->x, PLAYER_SPD) : 0;
    *dy = best ? toward(p->y, best->y, PLAYER_SPD) : 0;
}

/* Moves the player by the pad, or by the autopilot once the pad idles. */
static void step_player(GameState *g, const Assets *a, const Pad *p)
{
    int32_t dx, dy, x0 = g->player.x, y0 = g->player.y;
    bool demo;
    player_velocity(p, &dx, &dy);
    if (dx || dy || (p->buttons & ~(PAD_START | PAD_BACK))) {
        g->idle_frames = 0;
        g->wander = 0;
    } else if (g->idle_frames < DEMO_AFTER) {
        g->idle_frames++;
    }
    demo = g->idle_frames >= DEMO_AFTER;
    if (demo) {
        autopilot(g, &dx, &dy);
    }
    move_actor(a, &g->player, dx, dy);
    if (demo && (dx || dy) && g->player.x == x0 && g->player.y == y0) {
        start_detour(g, 20);
    }
}

static void step_enemies(GameState *g, const Assets *a)
{
    for (uint32_t i = 0; i < g->n_enemies; i++) {
        Ent *e = &g->enemies[i];
        int hit = move_actor(a, e, e->vx, e->vy);
        if (hit & 1) {
            e->vx = -e->vx;
        }
        if (hit & 2) {
            e->vy = -e->vy;
        }
    }
}

/* Gems and enemies against the player. */
static void step_contacts(GameState *g, const Assets *a)
{
    for (uint32_t i = 0; i < g->n_gems; i++) {
        if (boxes_touch(&g->player, &g->gems[i])) {
            g->score += 10;
            g->gems_taken++;
            g->best_dist = FAR;         /* the autopilot's target moved */
            place_random(g, a, &g->gems[i]);
            /* Every 10 gems a new wave brings one more enemy. */
            if (g->gems_taken % 10 == 0) {
                g->wave++;
                if (g->n_enemies < MAX_ENEMIES) {
                    spawn_enemy(g, a, &g->enemies[g->n_enemies++]);
                }
            }
        }
    }
    for (uint32_t i = 0; i < g->n_enemies; i++) {
        if (boxes_touch(&g->player, &g->enemies[i])) {
            g->hits++;
            g->score = g->score >= 5 ? g->score - 5 : 0;
            place_on_tile(&g->player, a->spawn_x, a->spawn_y);
            break;
        }
    }
}

bool game_step(GameState *g, const Assets *a, const Pad *p)
{
    uint32_t pressed = p->buttons & ~g->prev_buttons;
    g->prev_buttons = p->buttons;
    if (pressed & PAD_BACK) {
        return true;
    }
    if (pressed & PAD_START) {
        g->paused ^= 1;
    }
    g->frame++;
    if (g->paused) {
        return false;
    }
    step_player(g, a, p);
    step_enemies(g, a);
    step_contacts(g, a);
    return false;
}
