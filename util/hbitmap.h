/*
 * hbitmap.h - a hierarchical bitmap over a byte range with a granularity.
 *
 * An HBitmap covers `size` bytes (of a disk, say); bit i stands for bytes
 * [i << g, (i + 1) << g) where g is the granularity in bits.  All offsets
 * and lengths in this API are bytes: a range marks every bit it touches.
 *
 * Level 0 holds the bits; every level above holds one bit per 64-bit word
 * of the level below, set iff that word is non-zero, so finding the next
 * set bit skips empty regions 64x faster per level.  The number of set
 * bits is kept up to date, so count is O(1).
 *
 * Serialization uses the qcow2 bitmap data order: bit i of the bitmap is
 * bit (i % 8) (least significant first) of byte i / 8.
 *
 * Not thread-safe: callers serialize (the main loop owns all bitmaps).
 */
#ifndef XBLK_UTIL_HBITMAP_H
#define XBLK_UTIL_HBITMAP_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct HBitmap HBitmap;

HBitmap *hbitmap_alloc(uint64_t size, int granularity_bits);
void hbitmap_free(HBitmap *hb);
/* A new bitmap with the same size, granularity and bits. */
HBitmap *hbitmap_copy(const HBitmap *hb);

uint64_t hbitmap_size(const HBitmap *hb);
int hbitmap_granularity(const HBitmap *hb);     /* in bits (log2) */

/* Marks / clears every bit touching [start, start + count). */
void hbitmap_set(HBitmap *hb, uint64_t start, uint64_t count);
void hbitmap_reset(HBitmap *hb, uint64_t start, uint64_t count);
void hbitmap_reset_all(HBitmap *hb);
bool hbitmap_get(const HBitmap *hb, uint64_t offset);
/* Bytes covered by set bits (set bits << granularity, not clipped). */
uint64_t hbitmap_count(const HBitmap *hb);
bool hbitmap_is_empty(const HBitmap *hb);

/*
 * First byte offset >= start (and < start + count; count may be
 * UINT64_MAX) whose bit is set / clear, or -1.  The result is start
 * itself or the start of a granularity chunk.
 */
int64_t hbitmap_next_dirty(const HBitmap *hb, uint64_t start, uint64_t count);
int64_t hbitmap_next_zero(const HBitmap *hb, uint64_t start, uint64_t count);
/*
 * The first dirty extent intersecting [start, end), clipped to it and to
 * max_len bytes: true with *area_start and *area_len set, or false.
 */
bool hbitmap_next_dirty_area(const HBitmap *hb, uint64_t start, uint64_t end,
                             uint64_t max_len, uint64_t *area_start,
                             uint64_t *area_len);

/* dst |= src.  Sizes must match (false otherwise, dst untouched); the
 * granularities may differ (dst marks every chunk a src bit touches). */
bool hbitmap_can_merge(const HBitmap *dst, const HBitmap *src);
bool hbitmap_merge(HBitmap *dst, const HBitmap *src);

/* Changes the covered size; bits beyond a shrunk end are dropped, a grown
 * area starts clear. */
void hbitmap_truncate(HBitmap *hb, uint64_t size);

/* ---- serialization (qcow2 bitmap data) ---- */

/* Bytes of serialized bitmap data: ceil(bits / 8). */
uint64_t hbitmap_data_size(const HBitmap *hb);
/* Copies data bytes [off, off + len) to buf; bytes past the end are 0. */
void hbitmap_serialize_part(const HBitmap *hb, uint8_t *buf, uint64_t off,
                            uint64_t len);
/* Overwrites the bits of data bytes [off, off + len) from buf; bits past
 * the bitmap's end are ignored. */
void hbitmap_deserialize_part(HBitmap *hb, const uint8_t *buf, uint64_t off,
                              uint64_t len);
/* Sets all the bits of data bytes [off, off + len) (qcow2 "all ones"). */
void hbitmap_deserialize_ones(HBitmap *hb, uint64_t off, uint64_t len);
/* Whether data bytes [off, off + len) are all zero. */
bool hbitmap_is_zero_part(const HBitmap *hb, uint64_t off, uint64_t len);

#endif
