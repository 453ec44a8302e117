/*
 * assets.h - what the game draws with: the sprite sheet (in RAM at
 * SHEET_ADDR, as read from the disc), the sprite rectangles in it, and
 * the level's tile map.  Loaded from a disc made by mkdisc.py, taken raw
 * from any other readable disc, or generated from the seed without one.
 */
#ifndef GUEST_ASSETS_H
#define GUEST_ASSETS_H

#include "atapi.h"
#include <stdbool.h>
#include <stdint.h>

#define LEVEL_W     40          /* tiles: 40 x 30 of 16 x 16 = 640 x 480 */
#define LEVEL_H     30
#define TILE        16
#define NUM_SPRITES 32

/* Sprite numbers (the disc header's table is in this order). */
enum {
    SPR_TILE0 = 0,              /* 0-7: the look of tile values 0-7 */
    SPR_PLAYER = 8,             /* 8, 9: two animation frames */
    SPR_ENEMY = 10,             /* 10, 11 */
    SPR_GEM = 12,
    SPR_DISK = 13,              /* shown while a save is being written */
    SPR_DIGIT0 = 16,            /* 16-25: digits 0-9 */
};

typedef struct SpriteRect {
    uint16_t x, y, w, h;
} SpriteRect;

typedef struct Assets {
    bool have_sheet;            /* else sprites are drawn as filled boxes */
    bool from_header;           /* the disc had the XBLKDSC1 header */
    uint32_t sheet_addr, sheet_pitch, sheet_w, sheet_h, key;
    SpriteRect spr[NUM_SPRITES];
    uint8_t tiles[LEVEL_H][LEVEL_W];    /* 0: free, else a wall */
    uint8_t spawn_x, spawn_y;           /* the player's tile */
    uint8_t enemies, gems;              /* how many at the start */
    uint32_t level_hash;
} Assets;

/* Reads the assets from the disc in d (ready, with a medium). */
bool assets_from_disc(Assets *a, AtapiDrive *d);
/* No disc: no sheet, a level drawn from the seed. */
void assets_generate(Assets *a, uint64_t seed);

#endif
