/*
 * guest.h - the mini-host's guest machine: one device (MiniDevice) and
 * the work of its "vCPU", a step that mutates guest RAM and now and then
 * produces a record for the disk.  Pure computation, no threads and no
 * libxblk calls besides the device's field table (guest.c).
 *
 * Invariants:
 *   - the guest is deterministic: its RAM, device and records after N
 *     steps are a function of (seed, RAM size, disk slots, record period,
 *     N) alone, so guest_replay() can rebuild any instant and a loaded
 *     state can be checked against it;
 *   - everything the guest remembers lives in MiniDevice or guest RAM
 *     (the PRNG too): a save state of both is the whole machine;
 *   - RAM page 0 is the mailbox: the host writes the number of records
 *     the disk has completed into its first word (as a DMA engine would
 *     report completions); the guest's own stores never touch page 0.
 */
#ifndef MINI_GUEST_H
#define MINI_GUEST_H

#include <xblk/xblk.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MINI_PAGE_SIZE      4096u
#define MINI_RECORD_SIZE    4096u       /* bytes of one disk record */
#define MINI_RECENT         4           /* records the device remembers */
#define MINI_HISTOGRAM      16
#define MINI_RECORD_MAGIC   0x314345524e494d4dull   /* "MMINREC1" */

/* One record as the device remembers it (a nested struct of the table). */
typedef struct MiniRecordDesc {
    uint64_t seq;               /* the record's index, from 0 */
    uint64_t step;              /* the step that produced it */
    uint64_t offset;            /* where it went on the disk */
    uint64_t sum;               /* mini_hash of its bytes */
} MiniRecordDesc;

typedef struct MiniDevice {
    /* Configuration, fixed at power-on; a load must not change it. */
    uint64_t seed;
    uint64_t ram_pages;         /* guest RAM in pages, mailbox included */
    uint64_t disk_slots;        /* records the disk holds before wrapping */
    uint32_t record_every;      /* steps per record (0: no records) */
    /* State. */
    uint32_t histogram[MINI_HISTOGRAM];     /* top nibble of scatter values */
    uint64_t prng;              /* xorshift64 state, never 0 */
    uint64_t step;              /* steps executed */
    uint64_t records;           /* records produced */
    uint64_t next_offset;       /* disk offset of the next record */
    uint64_t fill_page;         /* next page the fill overwrites (from 1) */
    bool wrapped;               /* records have wrapped around the disk */
    MiniRecordDesc recent[MINI_RECENT];     /* ring: record seq % RECENT */
} MiniDevice;

/* The device's field table (the host's XblkDeviceDesc points at it) and
 * its check hook: a state of another geometry, or with cursors outside
 * it, is refused before anything changes. */
extern const XblkField mini_device_fields[];
bool mini_device_check(const void *current, const void *scratch,
                       int version, XblkError **err);

/* Power-on state; false when the geometry is unusable. */
bool guest_power_on(MiniDevice *d, uint64_t seed, uint64_t ram_pages,
                    uint64_t disk_slots, uint32_t record_every);

/*
 * One step: overwrites the next fill page with PRNG output, scatters a
 * few PRNG words over RAM, and every record_every steps fills rec
 * (MINI_RECORD_SIZE bytes) and returns true; *offset is where it goes.
 * ram is the whole guest RAM (ram_pages pages).
 */
bool guest_step(MiniDevice *d, uint64_t *ram, void *rec, uint64_t *offset);

/* Bytes of the disk that hold records so far (from offset 0). */
uint64_t guest_disk_bytes(const MiniDevice *d);

/*
 * The machine as it must be after d->step steps from power-on: fills
 * ram (ram_pages pages, zeroed here), disk (guest_disk_bytes(d) bytes)
 * and *out, with the mailbox as the host leaves it at a pause.
 */
void guest_replay(const MiniDevice *d, uint64_t *ram, uint8_t *disk,
                  MiniDevice *out);

/* 64-bit hash of len bytes (len a multiple of 8), chained from h. */
uint64_t mini_hash(uint64_t h, const void *buf, size_t len);
#define MINI_HASH_INIT 0x6a09e667f3bcc909ull
/* Hash of the device's fields (not its padding). */
uint64_t mini_device_hash(const MiniDevice *d);
bool mini_device_equal(const MiniDevice *a, const MiniDevice *b);

#endif
