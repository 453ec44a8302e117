/*
 * hbitmap.c - hierarchical bitmaps (see hbitmap.h).
 *
 * Invariants: level k + 1 bit w is set iff level k word w is non-zero;
 * bits of level 0 at or beyond nbits are always clear; `count` is the
 * number of set level-0 bits.  Set/reset update the levels above only
 * for the words they touched; bulk operations (merge, truncate,
 * deserialize) rebuild the levels above from level 0.
 */
#include "util/hbitmap.h"
#include <string.h>

#define HB_MAX_LEVELS 12

struct HBitmap {
    uint64_t size;              /* bytes covered */
    int gran;                   /* granularity bits */
    uint64_t count;             /* set bits in level 0 */
    int nlevels;
    uint64_t nbits[HB_MAX_LEVELS];
    uint64_t *lv[HB_MAX_LEVELS];
};

static uint64_t words_for(uint64_t bits)
{
    return (bits + 63) / 64;
}

static void hb_layout(HBitmap *hb)
{
    uint64_t bits = hb->size ? ((hb->size - 1) >> hb->gran) + 1 : 0;
    hb->nlevels = 0;
    do {
        hb->nbits[hb->nlevels] = bits;
        hb->lv[hb->nlevels] = g_new0(uint64_t, MAX(words_for(bits), 1));
        hb->nlevels++;
        bits = words_for(bits);
    } while (bits > 1 && hb->nlevels < HB_MAX_LEVELS);
}

static void hb_free_levels(HBitmap *hb)
{
    for (int i = 0; i < hb->nlevels; i++) {
        g_free(hb->lv[i]);
        hb->lv[i] = NULL;
    }
}

/* Recomputes every level above 0 and the count. */
static void hb_rebuild(HBitmap *hb)
{
    uint64_t n = 0;
    uint64_t w0 = words_for(hb->nbits[0]);
    for (uint64_t w = 0; w < w0; w++) {
        n += __builtin_popcountll(hb->lv[0][w]);
    }
    hb->count = n;
    for (int k = 1; k < hb->nlevels; k++) {
        memset(hb->lv[k], 0, MAX(words_for(hb->nbits[k]), 1) * 8);
        for (uint64_t w = 0; w < hb->nbits[k]; w++) {
            if (hb->lv[k - 1][w]) {
                hb->lv[k][w / 64] |= 1ULL << (w % 64);
            }
        }
    }
}

HBitmap *hbitmap_alloc(uint64_t size, int granularity_bits)
{
    g_assert(granularity_bits >= 0 && granularity_bits < 64);
    HBitmap *hb = g_new0(HBitmap, 1);
    hb->size = size;
    hb->gran = granularity_bits;
    hb_layout(hb);
    return hb;
}

void hbitmap_free(HBitmap *hb)
{
    if (hb) {
        hb_free_levels(hb);
        g_free(hb);
    }
}

HBitmap *hbitmap_copy(const HBitmap *hb)
{
    HBitmap *c = hbitmap_alloc(hb->size, hb->gran);
    for (int k = 0; k < hb->nlevels; k++) {
        memcpy(c->lv[k], hb->lv[k], MAX(words_for(hb->nbits[k]), 1) * 8);
    }
    c->count = hb->count;
    return c;
}

uint64_t hbitmap_size(const HBitmap *hb)
{
    return hb->size;
}

int hbitmap_granularity(const HBitmap *hb)
{
    return hb->gran;
}

/* The bit range [*first, *last] a byte range touches; false if none. */
static bool hb_bit_range(const HBitmap *hb, uint64_t start, uint64_t count,
                         uint64_t *first, uint64_t *last)
{
    if (count == 0 || start >= hb->size) {
        return false;
    }
    uint64_t end = count > hb->size - start ? hb->size : start + count;
    *first = start >> hb->gran;
    *last = (end - 1) >> hb->gran;
    return true;
}

/* Sets bits [first, last] of level k; returns how many were newly set. */
static uint64_t hb_set_bits(uint64_t *words, uint64_t first, uint64_t last)
{
    uint64_t added = 0;
    for (uint64_t w = first / 64; w <= last / 64; w++) {
        uint64_t lo = w == first / 64 ? first % 64 : 0;
        uint64_t hi = w == last / 64 ? last % 64 : 63;
        uint64_t mask = (~0ULL >> (63 - hi)) & (~0ULL << lo);
        added += __builtin_popcountll(mask & ~words[w]);
        words[w] |= mask;
    }
    return added;
}

static uint64_t hb_clear_bits(uint64_t *words, uint64_t first, uint64_t last)
{
    uint64_t removed = 0;
    for (uint64_t w = first / 64; w <= last / 64; w++) {
        uint64_t lo = w == first / 64 ? first % 64 : 0;
        uint64_t hi = w == last / 64 ? last % 64 : 63;
        uint64_t mask = (~0ULL >> (63 - hi)) & (~0ULL << lo);
        removed += __builtin_popcountll(mask & words[w]);
        words[w] &= ~mask;
    }
    return removed;
}

void hbitmap_set(HBitmap *hb, uint64_t start, uint64_t count)
{
    uint64_t first, last;
    if (!hb_bit_range(hb, start, count, &first, &last)) {
        return;
    }
    hb->count += hb_set_bits(hb->lv[0], first, last);
    /* Every word touched is now non-zero: mark it above. */
    for (int k = 1; k < hb->nlevels; k++) {
        first /= 64;
        last /= 64;
        hb_set_bits(hb->lv[k], first, last);
    }
}

void hbitmap_reset(HBitmap *hb, uint64_t start, uint64_t count)
{
    uint64_t first, last;
    if (!hb_bit_range(hb, start, count, &first, &last)) {
        return;
    }
    hb->count -= hb_clear_bits(hb->lv[0], first, last);
    /* Only words that became empty lose their bit above. */
    for (int k = 1; k < hb->nlevels; k++) {
        first /= 64;
        last /= 64;
        for (uint64_t w = first; w <= last; w++) {
            if (!hb->lv[k - 1][w]) {
                hb->lv[k][w / 64] &= ~(1ULL << (w % 64));
            }
        }
    }
}

void hbitmap_reset_all(HBitmap *hb)
{
    for (int k = 0; k < hb->nlevels; k++) {
        memset(hb->lv[k], 0, MAX(words_for(hb->nbits[k]), 1) * 8);
    }
    hb->count = 0;
}

bool hbitmap_get(const HBitmap *hb, uint64_t offset)
{
    if (offset >= hb->size) {
        return false;
    }
    uint64_t bit = offset >> hb->gran;
    return hb->lv[0][bit / 64] >> (bit % 64) & 1;
}

uint64_t hbitmap_count(const HBitmap *hb)
{
    return hb->count << hb->gran;
}

bool hbitmap_is_empty(const HBitmap *hb)
{
    return hb->count == 0;
}

/* First set bit >= i at level k, or -1. */
static int64_t hb_find_next(const HBitmap *hb, int k, uint64_t i)
{
    while (i < hb->nbits[k]) {
        uint64_t w = i / 64;
        uint64_t word = hb->lv[k][w] & (~0ULL << (i % 64));
        if (word) {
            return (int64_t)(w * 64 + __builtin_ctzll(word));
        }
        if (k + 1 < hb->nlevels) {
            int64_t nw = hb_find_next(hb, k + 1, w + 1);
            if (nw < 0) {
                return -1;
            }
            i = (uint64_t)nw * 64;
        } else {
            i = (w + 1) * 64;
        }
    }
    return -1;
}

static uint64_t hb_range_end(const HBitmap *hb, uint64_t start, uint64_t count)
{
    return count > hb->size - start ? hb->size : start + count;
}

int64_t hbitmap_next_dirty(const HBitmap *hb, uint64_t start, uint64_t count)
{
    if (start >= hb->size || count == 0) {
        return -1;
    }
    uint64_t end = hb_range_end(hb, start, count);
    int64_t bit = hb_find_next(hb, 0, start >> hb->gran);
    if (bit < 0) {
        return -1;
    }
    uint64_t off = MAX(start, (uint64_t)bit << hb->gran);
    return off < end ? (int64_t)off : -1;
}

int64_t hbitmap_next_zero(const HBitmap *hb, uint64_t start, uint64_t count)
{
    if (start >= hb->size || count == 0) {
        return -1;
    }
    uint64_t end = hb_range_end(hb, start, count);
    uint64_t i = start >> hb->gran;
    uint64_t last = (end - 1) >> hb->gran;
    while (i <= last) {
        uint64_t word = ~hb->lv[0][i / 64] & (~0ULL << (i % 64));
        if (word) {
            uint64_t bit = (i / 64) * 64 + __builtin_ctzll(word);
            if (bit > last) {
                return -1;
            }
            return (int64_t)MAX(start, bit << hb->gran);
        }
        i = (i / 64 + 1) * 64;
    }
    return -1;
}

bool hbitmap_next_dirty_area(const HBitmap *hb, uint64_t start, uint64_t end,
                             uint64_t max_len, uint64_t *area_start,
                             uint64_t *area_len)
{
    end = MIN(end, hb->size);
    if (start >= end || max_len == 0) {
        return false;
    }
    int64_t s = hbitmap_next_dirty(hb, start, end - start);
    if (s < 0) {
        return false;
    }
    uint64_t lim = MIN(end, (uint64_t)s + MIN(max_len, end - (uint64_t)s));
    int64_t z = hbitmap_next_zero(hb, s, lim - s);
    *area_start = s;
    *area_len = (z < 0 ? lim : (uint64_t)z) - s;
    return true;
}

bool hbitmap_can_merge(const HBitmap *dst, const HBitmap *src)
{
    return dst->size == src->size;
}

bool hbitmap_merge(HBitmap *dst, const HBitmap *src)
{
    if (!hbitmap_can_merge(dst, src)) {
        return false;
    }
    if (dst->gran == src->gran) {
        uint64_t n = words_for(dst->nbits[0]);
        for (uint64_t w = 0; w < n; w++) {
            dst->lv[0][w] |= src->lv[0][w];
        }
        hb_rebuild(dst);
        return true;
    }
    uint64_t s, len, pos = 0;
    while (hbitmap_next_dirty_area(src, pos, src->size, UINT64_MAX, &s,
                                   &len)) {
        hbitmap_set(dst, s, len);
        pos = s + len;
    }
    return true;
}

void hbitmap_truncate(HBitmap *hb, uint64_t size)
{
    HBitmap *n = hbitmap_alloc(size, hb->gran);
    uint64_t keep = MIN(words_for(hb->nbits[0]), words_for(n->nbits[0]));
    memcpy(n->lv[0], hb->lv[0], keep * 8);
    /* Clear the bits beyond the new last bit (shrink). */
    uint64_t nb = n->nbits[0];
    if (nb % 64 && nb / 64 < keep) {
        n->lv[0][nb / 64] &= ~(~0ULL << (nb % 64));
    }
    hb_free_levels(hb);
    *hb = *n;
    g_free(n);
    hb_rebuild(hb);
}

/* ---- serialization ---- */

uint64_t hbitmap_data_size(const HBitmap *hb)
{
    return (hb->nbits[0] + 7) / 8;
}

static uint8_t hb_data_byte(const HBitmap *hb, uint64_t i)
{
    if (i >= hbitmap_data_size(hb)) {
        return 0;
    }
    return (uint8_t)(hb->lv[0][i / 8] >> ((i % 8) * 8));
}

void hbitmap_serialize_part(const HBitmap *hb, uint8_t *buf, uint64_t off,
                            uint64_t len)
{
    for (uint64_t i = 0; i < len; i++) {
        buf[i] = hb_data_byte(hb, off + i);
    }
}

static void hb_put_data_byte(HBitmap *hb, uint64_t i, uint8_t v)
{
    uint64_t *w = &hb->lv[0][i / 8];
    unsigned shift = (i % 8) * 8;
    *w = (*w & ~(0xffULL << shift)) | (uint64_t)v << shift;
}

/* Clears bits at or beyond nbits in the last word (after raw writes). */
static void hb_trim_tail(HBitmap *hb)
{
    uint64_t nb = hb->nbits[0];
    if (nb % 64) {
        hb->lv[0][nb / 64] &= ~(~0ULL << (nb % 64));
    }
}

void hbitmap_deserialize_part(HBitmap *hb, const uint8_t *buf, uint64_t off,
                              uint64_t len)
{
    uint64_t dsize = hbitmap_data_size(hb);
    for (uint64_t i = 0; i < len && off + i < dsize; i++) {
        hb_put_data_byte(hb, off + i, buf[i]);
    }
    hb_trim_tail(hb);
    hb_rebuild(hb);
}

void hbitmap_deserialize_ones(HBitmap *hb, uint64_t off, uint64_t len)
{
    uint64_t dsize = hbitmap_data_size(hb);
    for (uint64_t i = 0; i < len && off + i < dsize; i++) {
        hb_put_data_byte(hb, off + i, 0xff);
    }
    hb_trim_tail(hb);
    hb_rebuild(hb);
}

bool hbitmap_is_zero_part(const HBitmap *hb, uint64_t off, uint64_t len)
{
    uint64_t dsize = hbitmap_data_size(hb);
    if (off >= dsize || len == 0) {
        return true;
    }
    len = MIN(len, dsize - off);
    /* Bit offsets of the part; look it up with the summary levels. */
    int64_t bit = hb_find_next(hb, 0, off * 8);
    return bit < 0 || (uint64_t)bit >= (off + len) * 8;
}
