/*
 * test-hbitmap.c - util/hbitmap.c against a plain bool-per-chunk model:
 * set/reset/get, count, next dirty/zero, dirty areas, merge across
 * granularities, copy, truncate, and the qcow2 serialization order.
 */
#include "util/hbitmap.h"
#include <glib.h>
#include <string.h>

static void test_basic(void)
{
    HBitmap *hb = hbitmap_alloc(1 << 20, 16);       /* 16 chunks of 64K */
    g_assert_true(hbitmap_is_empty(hb));
    hbitmap_set(hb, 65535, 2);                      /* touches chunks 0, 1 */
    g_assert_true(hbitmap_get(hb, 0));
    g_assert_true(hbitmap_get(hb, 65536 + 100));
    g_assert_false(hbitmap_get(hb, 131072));
    g_assert_cmpuint(hbitmap_count(hb), ==, 131072);
    hbitmap_set(hb, 0, 1);                          /* already set */
    g_assert_cmpuint(hbitmap_count(hb), ==, 131072);
    hbitmap_reset(hb, 0, 1);                        /* clears chunk 0 */
    g_assert_cmpuint(hbitmap_count(hb), ==, 65536);
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, UINT64_MAX), ==, 65536);
    g_assert_cmpint(hbitmap_next_dirty(hb, 70000, UINT64_MAX), ==, 70000);
    g_assert_cmpint(hbitmap_next_dirty(hb, 131072, UINT64_MAX), ==, -1);
    g_assert_cmpint(hbitmap_next_zero(hb, 65536, UINT64_MAX), ==, 131072);
    g_assert_cmpint(hbitmap_next_zero(hb, 0, UINT64_MAX), ==, 0);
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, 65536), ==, -1);
    hbitmap_set(hb, 0, 1 << 20);
    g_assert_cmpint(hbitmap_next_zero(hb, 0, UINT64_MAX), ==, -1);
    hbitmap_reset_all(hb);
    g_assert_true(hbitmap_is_empty(hb));
    /* beyond the end: ignored */
    hbitmap_set(hb, 1 << 20, 4096);
    g_assert_true(hbitmap_is_empty(hb));
    hbitmap_free(hb);
}

/* Random operations on a big sparse bitmap versus a model. */
static void test_random_model(void)
{
    const uint64_t size = 3000000007ULL;           /* odd tail chunk */
    const int g = 12;
    const uint64_t nchunks = (size + 4095) >> g;
    GRand *r = g_rand_new_with_seed(42);
    HBitmap *hb = hbitmap_alloc(size, g);
    GHashTable *model = g_hash_table_new_full(g_int64_hash, g_int64_equal,
                                              g_free, NULL);
    GArray *keys = g_array_new(FALSE, FALSE, sizeof(gint64));
    for (int i = 0; i < 3000; i++) {
        uint64_t start = (uint64_t)(g_rand_double(r) * size);
        uint64_t len = g_rand_int_range(r, 1, 1 << 20);
        bool set = g_rand_int_range(r, 0, 3) != 0;
        (set ? hbitmap_set : hbitmap_reset)(hb, start, len);
        uint64_t end = MIN(size, start + len);
        for (uint64_t c = start >> g; c <= (end - 1) >> g; c++) {
            gint64 *k = g_new(gint64, 1);
            *k = c;
            if (set) {
                g_hash_table_replace(model, k, k);
            } else {
                g_hash_table_remove(model, k);
                g_free(k);
            }
        }
    }
    g_assert_cmpuint(hbitmap_count(hb), ==,
                     (uint64_t)g_hash_table_size(model) << g);
    /* Walk the dirty areas: every chunk in them is in the model. */
    uint64_t pos = 0, s, len, seen = 0;
    while (hbitmap_next_dirty_area(hb, pos, size, UINT64_MAX, &s, &len)) {
        for (uint64_t c = s >> g; c <= (s + len - 1) >> g; c++) {
            gint64 k = c;
            g_assert_true(g_hash_table_contains(model, &k));
            seen++;
        }
        gint64 before = (s >> g) - 1, after = (s + len) >> g;
        g_assert_false(s >> g && g_hash_table_contains(model, &before));
        g_assert_false((uint64_t)after < nchunks &&
                       g_hash_table_contains(model, &after));
        pos = s + len;
    }
    g_assert_cmpuint(seen, ==, g_hash_table_size(model));
    g_array_free(keys, TRUE);
    g_hash_table_destroy(model);
    hbitmap_free(hb);
    g_rand_free(r);
}

static void test_dirty_area_limits(void)
{
    HBitmap *hb = hbitmap_alloc(1 << 20, 9);
    uint64_t s, len;
    hbitmap_set(hb, 4096, 8192);
    g_assert_true(hbitmap_next_dirty_area(hb, 0, 1 << 20, 1000, &s, &len));
    g_assert_cmpuint(s, ==, 4096);
    g_assert_cmpuint(len, ==, 1000);
    g_assert_true(hbitmap_next_dirty_area(hb, 5000, 6000, UINT64_MAX, &s,
                                          &len));
    g_assert_cmpuint(s, ==, 5000);
    g_assert_cmpuint(len, ==, 1000);
    g_assert_false(hbitmap_next_dirty_area(hb, 12288, 1 << 20, UINT64_MAX,
                                           &s, &len));
    hbitmap_free(hb);
}

static void test_merge_copy(void)
{
    HBitmap *a = hbitmap_alloc(1 << 24, 16);
    HBitmap *b = hbitmap_alloc(1 << 24, 12);
    HBitmap *c = hbitmap_alloc(1 << 23, 16);
    hbitmap_set(a, 0, 1);
    hbitmap_set(b, 5 << 20, 4096);
    g_assert_false(hbitmap_merge(a, c));
    g_assert_true(hbitmap_merge(a, b));            /* coarser target */
    g_assert_cmpuint(hbitmap_count(a), ==, 2 * 65536);
    g_assert_true(hbitmap_get(a, (5 << 20) + 65535));
    g_assert_true(hbitmap_merge(b, a));            /* finer target */
    g_assert_cmpuint(hbitmap_count(b), ==, 2 * 65536);
    HBitmap *d = hbitmap_copy(a);
    hbitmap_reset_all(a);
    g_assert_cmpuint(hbitmap_count(d), ==, 2 * 65536);
    HBitmap *e = hbitmap_alloc(1 << 24, 16);
    hbitmap_set(e, 1 << 23, 1);
    g_assert_true(hbitmap_merge(d, e));            /* same granularity */
    g_assert_cmpuint(hbitmap_count(d), ==, 3 * 65536);
    g_assert_cmpint(hbitmap_next_dirty(d, 65536, UINT64_MAX), ==, 5 << 20);
    hbitmap_free(a);
    hbitmap_free(b);
    hbitmap_free(c);
    hbitmap_free(d);
    hbitmap_free(e);
}

static void test_truncate(void)
{
    HBitmap *hb = hbitmap_alloc(1 << 20, 9);
    hbitmap_set(hb, 0, 1 << 20);
    hbitmap_truncate(hb, 1000);                    /* 2 chunks remain */
    g_assert_cmpuint(hbitmap_count(hb), ==, 1024);
    hbitmap_truncate(hb, 1 << 21);                 /* grown: clear */
    g_assert_cmpuint(hbitmap_count(hb), ==, 1024);
    g_assert_false(hbitmap_get(hb, 1 << 20));
    g_assert_cmpint(hbitmap_next_dirty(hb, 1024, UINT64_MAX), ==, -1);
    hbitmap_set(hb, (1 << 21) - 1, 1);
    g_assert_cmpint(hbitmap_next_dirty(hb, 1024, UINT64_MAX), ==,
                    (1 << 21) - 512);
    hbitmap_free(hb);
}

static void test_serialize(void)
{
    /* 20 chunks of 512: 3 data bytes, the last has 4 valid bits. */
    HBitmap *hb = hbitmap_alloc(20 * 512, 9);
    g_assert_cmpuint(hbitmap_data_size(hb), ==, 3);
    hbitmap_set(hb, 0, 1);           /* bit 0 -> byte 0 bit 0 */
    hbitmap_set(hb, 9 * 512, 1);     /* bit 9 -> byte 1 bit 1 */
    hbitmap_set(hb, 19 * 512, 1);    /* bit 19 -> byte 2 bit 3 */
    uint8_t buf[4];
    hbitmap_serialize_part(hb, buf, 0, 4);
    g_assert_cmphex(buf[0], ==, 0x01);
    g_assert_cmphex(buf[1], ==, 0x02);
    g_assert_cmphex(buf[2], ==, 0x08);
    g_assert_cmphex(buf[3], ==, 0x00);
    g_assert_false(hbitmap_is_zero_part(hb, 1, 1));
    HBitmap *c = hbitmap_alloc(20 * 512, 9);
    hbitmap_deserialize_part(c, buf, 0, 3);
    g_assert_cmpuint(hbitmap_count(c), ==, 3 * 512);
    g_assert_true(hbitmap_get(c, 9 * 512));
    hbitmap_deserialize_ones(c, 2, 1);              /* only 4 bits valid */
    g_assert_cmpuint(hbitmap_count(c), ==, (2 + 4) * 512);
    uint8_t zero[1] = { 0 };
    hbitmap_deserialize_part(c, zero, 0, 1);
    g_assert_true(hbitmap_is_zero_part(c, 0, 1));
    g_assert_false(hbitmap_get(c, 0));
    hbitmap_free(hb);
    hbitmap_free(c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/hbitmap/basic", test_basic);
    g_test_add_func("/hbitmap/random-model", test_random_model);
    g_test_add_func("/hbitmap/dirty-area-limits", test_dirty_area_limits);
    g_test_add_func("/hbitmap/merge-copy", test_merge_copy);
    g_test_add_func("/hbitmap/truncate", test_truncate);
    g_test_add_func("/hbitmap/serialize", test_serialize);
    return g_test_run();
}
