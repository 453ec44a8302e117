/*
 * assets.c - loads the sprite sheet and the level.
 *
 * A disc made by mkdisc.py has a header in sector 0 (see README.md):
 * magic "XBLKDSC1", the sheet's and the level's sector and size, the
 * sheet's geometry and colour key, the sprite rectangles, and an FNV-1a
 * checksum in its last 4 bytes.  The sheet is DMA'd straight to
 * SHEET_ADDR and blitted from there.  Any other readable disc is used as
 * it is: its first 256 KiB are a 256x256 sheet on a 16x16 grid, the next
 * 2 KiB become the level's walls.
 */
#include "assets.h"
#include "console.h"
#include "layout.h"
#include "lib.h"
#include "rng.h"

#define HDR_MAGIC       "XBLKDSC1"
#define LVL_MAGIC       "XLVL"
#define RAW_SHEET_DIM   256
#define RAW_SHEET_BYTES (RAW_SHEET_DIM * RAW_SHEET_DIM * 4)
#define DEFAULT_KEY     0x00FF00FFu

/* Header field offsets. */
enum {
    H_MAGIC = 0, H_VERSION = 8, H_HDR_BYTES = 12, H_SHEET_LBA = 16,
    H_SHEET_BYTES = 20, H_SHEET_W = 24, H_SHEET_H = 28, H_SHEET_PITCH = 32,
    H_KEY = 36, H_LEVEL_LBA = 40, H_LEVEL_BYTES = 44, H_NSPRITES = 48,
    H_SPRITES = 64, H_CHECKSUM = 2044,
};

/* Level field offsets. */
enum {
    L_MAGIC = 0, L_W = 4, L_H = 6, L_TILE_W = 8, L_TILE_H = 10,
    L_SPAWN_X = 12, L_SPAWN_Y = 14, L_ENEMIES = 16, L_GEMS = 18,
    L_TILES = 24,
};

static void default_sprites(Assets *a)
{
    for (int i = 0; i < NUM_SPRITES; i++) {
        a->spr[i].x = (uint16_t)(i % 16 * 16);
        a->spr[i].y = (uint16_t)(i / 16 * 16);
        a->spr[i].w = 16;
        a->spr[i].h = 16;
    }
}

/* Walls all round, so nothing ever leaves the screen. */
static void add_border(Assets *a)
{
    for (int x = 0; x < LEVEL_W; x++) {
        a->tiles[0][x] = a->tiles[0][x] ? a->tiles[0][x] : 1;
        a->tiles[LEVEL_H - 1][x] =
            a->tiles[LEVEL_H - 1][x] ? a->tiles[LEVEL_H - 1][x] : 1;
    }
    for (int y = 0; y < LEVEL_H; y++) {
        a->tiles[y][0] = a->tiles[y][0] ? a->tiles[y][0] : 1;
        a->tiles[y][LEVEL_W - 1] =
            a->tiles[y][LEVEL_W - 1] ? a->tiles[y][LEVEL_W - 1] : 1;
    }
}

/* The spawn tile must be free and inside the border. */
static void fix_spawn(Assets *a)
{
    if (a->spawn_x < 1 || a->spawn_x >= LEVEL_W - 1) {
        a->spawn_x = LEVEL_W / 2;
    }
    if (a->spawn_y < 1 || a->spawn_y >= LEVEL_H - 1) {
        a->spawn_y = LEVEL_H / 2;
    }
    a->tiles[a->spawn_y][a->spawn_x] = 0;
}

static void finish_level(Assets *a)
{
    add_border(a);
    fix_spawn(a);
    if (a->enemies == 0 || a->enemies > 8) {
        a->enemies = 6;
    }
    if (a->gems == 0 || a->gems > 6) {
        a->gems = 4;
    }
    a->level_hash = fnv1a(a->tiles, sizeof(a->tiles));
}

/* Raw level bytes: a byte below 24 makes a wall (about one tile in ten). */
static void level_from_bytes(Assets *a, const uint8_t *b, uint32_t n)
{
    for (int y = 0; y < LEVEL_H; y++) {
        for (int x = 0; x < LEVEL_W; x++) {
            uint32_t i = (uint32_t)(y * LEVEL_W + x);
            uint8_t v = i < n ? b[i] : 0xFF;
            a->tiles[y][x] = v < 24 ? (uint8_t)(1 + v % 7) : 0;
        }
    }
    a->spawn_x = a->spawn_y = 0;
    a->enemies = a->gems = 0;
    finish_level(a);
}

static bool parse_level(Assets *a, const uint8_t *b, uint32_t n)
{
    uint32_t w, h;
    if (n < L_TILES || memcmp(b + L_MAGIC, LVL_MAGIC, 4) != 0) {
        return false;
    }
    w = get_le16(b + L_W);
    h = get_le16(b + L_H);
    if (w == 0 || h == 0 || L_TILES + w * h > n ||
        get_le16(b + L_TILE_W) != TILE || get_le16(b + L_TILE_H) != TILE) {
        return false;
    }
    /* Other sizes are clipped to (or padded out to) the screen. */
    for (uint32_t y = 0; y < LEVEL_H; y++) {
        for (uint32_t x = 0; x < LEVEL_W; x++) {
            uint8_t t = (x < w && y < h) ? b[L_TILES + y * w + x] : 0;
            a->tiles[y][x] = t & 7;
        }
    }
    a->spawn_x = (uint8_t)get_le16(b + L_SPAWN_X);
    a->spawn_y = (uint8_t)get_le16(b + L_SPAWN_Y);
    a->enemies = (uint8_t)get_le16(b + L_ENEMIES);
    a->gems = (uint8_t)get_le16(b + L_GEMS);
    finish_level(a);
    return true;
}

/* Checks the header; false means "not our disc". */
static bool header_valid(const uint8_t *h, uint32_t blocks)
{
    uint32_t w = get_le32(h + H_SHEET_W), ht = get_le32(h + H_SHEET_H);
    uint32_t pitch = get_le32(h + H_SHEET_PITCH);
    uint32_t bytes = get_le32(h + H_SHEET_BYTES);
    uint32_t lbytes = get_le32(h + H_LEVEL_BYTES);
    uint32_t slba = get_le32(h + H_SHEET_LBA), llba = get_le32(h + H_LEVEL_LBA);
    if (memcmp(h + H_MAGIC, HDR_MAGIC, 8) != 0 ||
        get_le32(h + H_VERSION) != 1 ||
        fnv1a(h, H_CHECKSUM) != get_le32(h + H_CHECKSUM)) {
        return false;
    }
    if (w == 0 || ht == 0 || w > 1024 || ht > 1024 || pitch < w * 4 ||
        pitch % 4 || bytes > SHEET_MAX || pitch * (ht - 1) + w * 4 > bytes ||
        lbytes > LEVEL_MAX || get_le32(h + H_NSPRITES) > NUM_SPRITES) {
        return false;
    }
    return slba + (bytes + 2047) / 2048 <= blocks &&
           llba + (lbytes + 2047) / 2048 <= blocks;
}

/* Sprite rectangles from the header; ones outside the sheet are emptied. */
static void header_sprites(Assets *a, const uint8_t *h)
{
    uint32_t n = get_le32(h + H_NSPRITES);
    default_sprites(a);
    for (uint32_t i = 0; i < NUM_SPRITES; i++) {
        const uint8_t *e = h + H_SPRITES + i * 8;
        SpriteRect r = { 0, 0, 0, 0 };
        if (i < n) {
            r.x = get_le16(e);
            r.y = get_le16(e + 2);
            r.w = get_le16(e + 4);
            r.h = get_le16(e + 6);
        }
        if (r.w > 64 || r.h > 64 || r.x + r.w > a->sheet_w ||
            r.y + r.h > a->sheet_h) {
            r.w = r.h = 0;
        }
        a->spr[i] = r;
    }
}

static bool load_formatted(Assets *a, AtapiDrive *d, const uint8_t *h)
{
    uint32_t bytes = get_le32(h + H_SHEET_BYTES);
    uint32_t lbytes = get_le32(h + H_LEVEL_BYTES);
    a->sheet_w = get_le32(h + H_SHEET_W);
    a->sheet_h = get_le32(h + H_SHEET_H);
    a->sheet_pitch = get_le32(h + H_SHEET_PITCH);
    a->key = get_le32(h + H_KEY);
    header_sprites(a, h);
    if (!atapi_read(d, get_le32(h + H_SHEET_LBA), (bytes + 2047) / 2048,
                    SHEET_ADDR) ||
        !atapi_read(d, get_le32(h + H_LEVEL_LBA), (lbytes + 2047) / 2048,
                    LEVEL_ADDR)) {
        return false;
    }
    if (!parse_level(a, (const uint8_t *)LEVEL_ADDR, lbytes)) {
        con_printf("xboxguest: disc: level data invalid, using raw bytes\n");
        level_from_bytes(a, (const uint8_t *)LEVEL_ADDR, lbytes);
    }
    con_printf("xboxguest: disc: sprite sheet %ux%u (%u bytes at sector "
               "%u), level %u bytes at sector %u\n", a->sheet_w, a->sheet_h,
               bytes, get_le32(h + H_SHEET_LBA), lbytes,
               get_le32(h + H_LEVEL_LBA));
    return true;
}

static bool load_raw(Assets *a, AtapiDrive *d)
{
    uint32_t sheet_blocks = RAW_SHEET_BYTES / 2048;
    uint32_t n = d->blocks < sheet_blocks ? d->blocks : sheet_blocks;
    a->sheet_w = a->sheet_h = RAW_SHEET_DIM;
    a->sheet_pitch = RAW_SHEET_DIM * 4;
    a->key = DEFAULT_KEY;
    default_sprites(a);
    /* A short disc leaves the rest of the sheet black, not stale. */
    if (n < sheet_blocks) {
        memset((void *)(SHEET_ADDR + n * 2048), 0,
               (sheet_blocks - n) * 2048);
    }
    if (!atapi_read(d, 0, n, SHEET_ADDR)) {
        return false;
    }
    if (d->blocks > sheet_blocks) {
        if (!atapi_read(d, sheet_blocks, 1, LEVEL_ADDR)) {
            return false;
        }
        level_from_bytes(a, (const uint8_t *)LEVEL_ADDR, 2048);
    } else {
        level_from_bytes(a, (const uint8_t *)SHEET_ADDR, n * 2048);
    }
    con_printf("xboxguest: disc: no XBLKDSC1 header, using its raw bytes "
               "(%u sectors)\n", d->blocks);
    return true;
}

bool assets_from_disc(Assets *a, AtapiDrive *d)
{
    const uint8_t *h = (const uint8_t *)SCRATCH_ADDR;
    memset(a, 0, sizeof(*a));
    a->sheet_addr = SHEET_ADDR;
    if (!atapi_read(d, 0, 1, SCRATCH_ADDR)) {
        return false;
    }
    a->from_header = header_valid(h, d->blocks);
    if (a->from_header ? !load_formatted(a, d, h) : !load_raw(a, d)) {
        return false;
    }
    a->have_sheet = true;
    return true;
}

void assets_generate(Assets *a, uint64_t seed)
{
    Rng r;
    memset(a, 0, sizeof(*a));
    rng_seed(&r, seed ^ 0x4C4556454Cull);
    default_sprites(a);
    for (int y = 0; y < LEVEL_H; y++) {
        for (int x = 0; x < LEVEL_W; x++) {
            a->tiles[y][x] = rng_below(&r, 100) < 8
                                 ? (uint8_t)(1 + rng_below(&r, 7)) : 0;
        }
    }
    finish_level(a);
}
