/*
 * guest.c - the mini-host's guest: the step its vCPU runs, the records
 * it produces, its replay, and the device's field table (what a save
 * state stores of MiniDevice).  See guest.h for the invariants.
 *
 * Nothing here knows about threads: the host runs guest_step() on its
 * vCPU thread and guest_replay() on its loop thread, over memory it owns.
 */
#include "guest.h"

#include <string.h>

#define WORDS_PER_PAGE  (MINI_PAGE_SIZE / 8)
#define SCATTER_WORDS   8           /* random stores per step */

/* ---- the device's field table ---- */

static const XblkField record_fields[] = {
    XBLK_U64(MiniRecordDesc, seq),
    XBLK_U64(MiniRecordDesc, step),
    XBLK_U64(MiniRecordDesc, offset),
    XBLK_U64(MiniRecordDesc, sum),
    XBLK_FIELDS_END
};

/* A nested table: only ever used through XBLK_STRUCT_ARRAY. */
static const XblkDeviceDesc record_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "mini-record",
    .version = 1,
    .struct_size = sizeof(MiniRecordDesc),
    .fields = record_fields,
};

/* Every member the guest remembers; the macros check each width at
 * compile time.  XBLK_MAX: a state with a larger value is refused
 * before anything changes. */
const XblkField mini_device_fields[] = {
    XBLK_U64(MiniDevice, seed),
    XBLK_U64(MiniDevice, ram_pages),
    XBLK_U64(MiniDevice, disk_slots),
    XBLK_U32(MiniDevice, record_every, XBLK_MAX(1 << 20)),
    XBLK_U32_ARRAY(MiniDevice, histogram, MINI_HISTOGRAM),
    XBLK_U64(MiniDevice, prng),
    XBLK_U64(MiniDevice, step),
    XBLK_U64(MiniDevice, records),
    XBLK_U64(MiniDevice, next_offset),
    XBLK_U64(MiniDevice, fill_page),
    XBLK_BOOL(MiniDevice, wrapped),
    XBLK_STRUCT_ARRAY(MiniDevice, recent, MINI_RECENT, &record_desc,
                      MiniRecordDesc),
    XBLK_FIELDS_END
};

/*
 * Runs inside a load's pause, before anything changed: a state whose
 * geometry differs from this machine's, or whose cursors point outside
 * it, is refused (the engine then leaves the device and RAM as they are).
 */
bool mini_device_check(const void *current, const void *scratch,
                       int version, XblkError **err)
{
    const MiniDevice *cur = current, *st = scratch;

    (void)version;
    if (st->ram_pages != cur->ram_pages || st->disk_slots != cur->disk_slots) {
        xblk_error_set(err, XBLK_ERROR_INVALID, "mini-host: the state is of "
                       "%llu RAM pages and %llu disk slots, this machine "
                       "has %llu and %llu",
                       (unsigned long long)st->ram_pages,
                       (unsigned long long)st->disk_slots,
                       (unsigned long long)cur->ram_pages,
                       (unsigned long long)cur->disk_slots);
        return false;
    }
    if (st->prng == 0 || st->fill_page == 0 ||
        st->fill_page >= st->ram_pages ||
        st->next_offset % MINI_RECORD_SIZE ||
        st->next_offset / MINI_RECORD_SIZE >= st->disk_slots) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "mini-host: the state's cursors are out of range");
        return false;
    }
    return true;
}

/* ---- the guest ---- */

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

bool guest_power_on(MiniDevice *d, uint64_t seed, uint64_t ram_pages,
                    uint64_t disk_slots, uint32_t record_every)
{
    if (ram_pages < 2 || (record_every && disk_slots == 0)) {
        return false;
    }
    memset(d, 0, sizeof(*d));
    d->seed = seed;
    d->ram_pages = ram_pages;
    d->disk_slots = disk_slots;
    d->record_every = record_every;
    /* xorshift64 is stuck at 0; any other seed is a different run. */
    d->prng = seed ? seed : 0x9e3779b97f4a7c15ull;
    d->fill_page = 1;               /* page 0 is the mailbox */
    return true;
}

static void make_record(MiniDevice *d, uint64_t *rec, uint64_t *offset)
{
    MiniRecordDesc *r = &d->recent[d->records % MINI_RECENT];

    rec[0] = MINI_RECORD_MAGIC;
    rec[1] = d->records;
    rec[2] = d->step;
    for (unsigned i = 3; i < MINI_RECORD_SIZE / 8; i++) {
        rec[i] = xorshift64(&d->prng);
    }
    r->seq = d->records;
    r->step = d->step;
    r->offset = d->next_offset;
    r->sum = mini_hash(MINI_HASH_INIT, rec, MINI_RECORD_SIZE);
    *offset = d->next_offset;
    d->records++;
    d->next_offset += MINI_RECORD_SIZE;
    if (d->next_offset / MINI_RECORD_SIZE >= d->disk_slots) {
        d->next_offset = 0;
        d->wrapped = true;
    }
}

bool guest_step(MiniDevice *d, uint64_t *ram, void *rec, uint64_t *offset)
{
    uint64_t *page = ram + d->fill_page * WORDS_PER_PAGE;
    uint64_t guest_words = (d->ram_pages - 1) * WORDS_PER_PAGE;

    for (unsigned i = 0; i < WORDS_PER_PAGE; i++) {
        page[i] = xorshift64(&d->prng);
    }
    d->fill_page = d->fill_page + 1 < d->ram_pages ? d->fill_page + 1 : 1;
    for (unsigned i = 0; i < SCATTER_WORDS; i++) {
        uint64_t v = xorshift64(&d->prng);

        ram[WORDS_PER_PAGE + v % guest_words] ^= v;
        d->histogram[v >> 60]++;
    }
    d->step++;
    if (d->record_every == 0 || d->step % d->record_every) {
        return false;
    }
    make_record(d, rec, offset);
    return true;
}

uint64_t guest_disk_bytes(const MiniDevice *d)
{
    uint64_t slots = d->wrapped ? d->disk_slots : d->records;

    return slots * MINI_RECORD_SIZE;
}

void guest_replay(const MiniDevice *d, uint64_t *ram, uint8_t *disk,
                  MiniDevice *out)
{
    uint64_t rec[MINI_RECORD_SIZE / 8], offset;

    guest_power_on(out, d->seed, d->ram_pages, d->disk_slots,
                   d->record_every);
    memset(ram, 0, d->ram_pages * MINI_PAGE_SIZE);
    while (out->step < d->step) {
        if (guest_step(out, ram, rec, &offset)) {
            memcpy(disk + offset, rec, sizeof(rec));
        }
    }
    ram[0] = out->records;          /* every record completed */
}

/* ---- hashes ---- */

uint64_t mini_hash(uint64_t h, const void *buf, size_t len)
{
    const uint64_t *w = buf;

    for (size_t i = 0; i < len / 8; i++) {
        h ^= w[i] * 0x87c37b91114253d5ull;
        h = (h << 31 | h >> 33) * 0x4cf5ad432745937full;
    }
    return h;           /* no final mix: hashing in pieces chains */
}

/* Field by field: the engine restores fields, never the padding. */
uint64_t mini_device_hash(const MiniDevice *d)
{
    uint64_t v[] = { d->seed, d->ram_pages, d->disk_slots, d->record_every,
                     d->prng, d->step, d->records, d->next_offset,
                     d->fill_page, d->wrapped };
    uint64_t h = mini_hash(MINI_HASH_INIT, v, sizeof(v));

    for (unsigned i = 0; i < MINI_HISTOGRAM; i++) {
        uint64_t x = d->histogram[i];

        h = mini_hash(h, &x, 8);
    }
    return mini_hash(h, d->recent, sizeof(d->recent));
}

bool mini_device_equal(const MiniDevice *a, const MiniDevice *b)
{
    return mini_device_hash(a) == mini_device_hash(b);
}
