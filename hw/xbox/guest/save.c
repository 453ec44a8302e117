/*
 * save.c - the save area and the save records (README.md has the
 * layout).  A record is the first 512-byte sector of its 64 KiB slot:
 * magic, version, counter, slot, frame, seed, the game state and an
 * FNV-1a checksum over the rest.  The other 127 sectors carry a filler
 * stamped with the counter, so every save writes a whole 64 KiB cluster's
 * worth and qcow2 must allocate a new cluster for each slot the first
 * time round.  At boot the newest record (valid checksum, highest
 * counter) wins; torn or stale slots simply fail the check.
 *
 * A save is a small state machine driven from the frame loop: WRITE DMA
 * (EXT), then FLUSH CACHE (EXT), each completing with the channel
 * interrupt; SAVE_ADDR is not touched while it runs.
 */
#include "save.h"
#include "console.h"
#include "ide.h"
#include "io.h"
#include "layout.h"
#include "lib.h"

#define SAVE_MAGIC      0x56415358u     /* "XSAV" */
#define FILL_MAGIC      0x4C494658u     /* "XFIL" */
#define SAVE_VERSION    1
#define SLOTS_MAX       64
#define SLOT_SECTORS    128             /* 64 KiB */
#define STRIDE_SECTORS  2048            /* 1 MiB */
#define AREA_LBA        524288          /* 256 MiB */

typedef struct SaveRecord {
    uint32_t magic;
    uint32_t version;
    uint32_t counter;
    uint32_t slot;
    uint32_t frame;
    uint32_t seed_lo, seed_hi;
    uint32_t state_bytes;
    GameState state;
} SaveRecord;

_Static_assert(sizeof(SaveRecord) <= 508, "a save record fits a sector");

enum { IDLE, WRITING, FLUSHING };

static AtaDisk *disk;
static uint64_t area_lba;
static uint32_t slots;
static uint32_t counter;                /* the last save written */
static uint32_t phase = IDLE;
static uint64_t game_seed;

/* The filler: each sector is a deterministic pattern, written once. */
static void fill_payload(void)
{
    volatile uint32_t *w = (volatile uint32_t *)SAVE_ADDR;
    for (uint32_t i = 128; i < SLOT_SECTORS * 128; i++) {
        w[i] = i * 2654435761u;
    }
}

void save_init(AtaDisk *d, uint64_t seed)
{
    uint64_t n;
    game_seed = seed;
    disk = NULL;
    slots = 0;
    if (!d || !d->present) {
        con_printf("xboxguest: save: no hard disk, saving off\n");
        return;
    }
    /* Small disks: the upper half holds the area instead. */
    area_lba = AREA_LBA;
    if (d->sectors < area_lba + STRIDE_SECTORS) {
        area_lba = (d->sectors / 2) & ~(uint64_t)(STRIDE_SECTORS - 1);
    }
    n = d->sectors > area_lba ? d->sectors - area_lba : 0;
    slots = (uint32_t)(n >> 11);        /* whole strides */
    if (slots == 0 && n >= SLOT_SECTORS) {
        slots = 1;
    }
    if (slots > SLOTS_MAX) {
        slots = SLOTS_MAX;
    }
    if (slots == 0) {
        con_printf("xboxguest: save: disk too small, saving off\n");
        return;
    }
    disk = d;
    fill_payload();
    con_printf("xboxguest: save: %u slots of 64 KiB from sector %llu, "
               "stride 1 MiB\n", slots, (unsigned long long)area_lba);
}

static uint64_t slot_lba(uint32_t slot)
{
    return area_lba + (uint64_t)slot * STRIDE_SECTORS;
}

static bool record_valid(const SaveRecord *r, uint32_t slot)
{
    const uint8_t *b = (const uint8_t *)r;
    return r->magic == SAVE_MAGIC && r->version == SAVE_VERSION &&
           r->slot == slot && r->counter != 0 &&
           r->state_bytes == sizeof(GameState) &&
           fnv1a(b, 508) == get_le32(b + 508);
}

bool save_load_newest(GameState *out)
{
    const SaveRecord *r = (const SaveRecord *)SCRATCH_ADDR;
    uint32_t best = 0, best_slot = 0, best_frame = 0, valid = 0;
    for (uint32_t s = 0; disk && s < slots; s++) {
        if (!ata_read(disk, slot_lba(s), 1, SCRATCH_ADDR)) {
            con_printf("xboxguest: save: slot %u unreadable\n", s);
            continue;
        }
        if (!record_valid(r, s)) {
            continue;
        }
        valid++;
        if (r->counter > best) {
            best = r->counter;
            best_slot = s;
            best_frame = r->frame;
            *out = r->state;
        }
    }
    counter = best;
    if (!best) {
        con_printf("xboxguest: save: no valid save found, new game\n");
        return false;
    }
    con_printf("xboxguest: save: loaded save %u from slot %u (frame %u, "
               "score %u; %u valid slots)\n", best, best_slot, best_frame,
               out->score, valid);
    return true;
}

static void build_record(const GameState *g, uint32_t slot)
{
    SaveRecord *r = (SaveRecord *)SAVE_ADDR;
    uint8_t *b = (uint8_t *)SAVE_ADDR;
    volatile uint32_t *w = (volatile uint32_t *)SAVE_ADDR;
    memset(b, 0, 512);
    r->magic = SAVE_MAGIC;
    r->version = SAVE_VERSION;
    r->counter = counter;
    r->slot = slot;
    r->frame = g->frame;
    r->seed_lo = (uint32_t)game_seed;
    r->seed_hi = (uint32_t)(game_seed >> 32);
    r->state_bytes = sizeof(GameState);
    r->state = *g;
    w[127] = fnv1a(b, 508);
    /* Stamp each filler sector so this save's bytes are its own. */
    for (uint32_t s = 1; s < SLOT_SECTORS; s++) {
        w[s * 128 + 0] = FILL_MAGIC;
        w[s * 128 + 1] = counter;
        w[s * 128 + 2] = s;
    }
}

void save_tick(const GameState *g)
{
    uint32_t slot;
    if (!disk || phase != IDLE || g->frame % SAVE_INTERVAL != 0) {
        return;
    }
    counter++;
    slot = counter % slots;
    build_record(g, slot);
    if (!ata_start_write(disk, slot_lba(slot), SLOT_SECTORS, SAVE_ADDR)) {
        con_printf("xboxguest: save %u: could not start the write\n",
                   counter);
        counter--;
        return;
    }
    phase = WRITING;
}

void save_poll(void)
{
    const SaveRecord *r = (const SaveRecord *)SAVE_ADDR;
    if (phase == IDLE || !ide_done()) {
        return;
    }
    if (phase == WRITING) {
        if (ata_finish("WRITE DMA") && ata_start_flush(disk)) {
            phase = FLUSHING;
            return;
        }
    } else if (ata_finish("FLUSH CACHE")) {
        con_printf("xboxguest: save %u written (slot %u, frame %u, score "
                   "%u)\n", r->counter, r->slot, r->frame, r->state.score);
        phase = IDLE;
        return;
    }
    /* The next interval tries again with the same number. */
    con_printf("xboxguest: save %u failed\n", counter);
    counter--;
    phase = IDLE;
}

bool save_busy(void)
{
    return phase != IDLE;
}

bool save_indicator(const GameState *g)
{
    return phase != IDLE ||
           (disk && g->frame >= SAVE_INTERVAL && g->frame % SAVE_INTERVAL < 30);
}

void save_drain(void)
{
    while (phase != IDLE) {
        IdeCompletion c;
        ide_wait(&c, IDE_TIMEOUT_FRAMES);
        if (!c.ok) {
            con_printf("xboxguest: save %u: disk timed out\n", counter);
            phase = IDLE;
            return;
        }
        save_poll();
    }
}

uint32_t save_counter(void)
{
    return counter;
}
