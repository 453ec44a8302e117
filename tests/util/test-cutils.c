/*
 * test-cutils.c - unit tests of util/cutils.c (parse_size, size_to_str,
 * byte-order helpers) and util/iov.c (IOVector building, slicing, copying,
 * zero detection).
 */
#include "util/cutils.h"
#include "util/iov.h"
#include <glib.h>
#include <string.h>

/* ---- parse_size ---- */

static void assert_size(const char *s, uint64_t mult, uint64_t want)
{
    uint64_t v = 0xdeadbeef;
    if (!parse_size(s, mult, &v)) {
        g_error("parse_size(\"%s\") failed, expected %" G_GUINT64_FORMAT,
                s, want);
    }
    g_assert_cmpuint(v, ==, want);
}

static void assert_bad_size(const char *s, uint64_t mult)
{
    uint64_t v = 0x1234;
    if (parse_size(s, mult, &v)) {
        g_error("parse_size(\"%s\") accepted, gave %" G_GUINT64_FORMAT, s, v);
    }
}

static void test_parse_size_suffixes(void)
{
    assert_size("0", 1, 0);
    assert_size("512", 1, 512);
    assert_size("100b", 1, 100);
    assert_size("100B", 1, 100);
    assert_size("64k", 1, 64 << 10);
    assert_size("64K", 1, 64 << 10);
    assert_size("1M", 1, 1 << 20);
    assert_size("1m", 1, 1 << 20);
    assert_size("2G", 1, 2ULL << 30);
    assert_size("3T", 1, 3ULL << 40);
    assert_size("1P", 1, 1ULL << 50);
    assert_size("15E", 1, 15ULL << 60);
    /* Leading zeroes are decimal, as qemu-img reads them; 0x is hex. */
    assert_size("010", 1, 10);
    assert_size("0x10", 1, 16);
}

static void test_parse_size_default_suffix(void)
{
    assert_size("4", 1024, 4096);
    assert_size("4", 1 << 20, 4 << 20);
    assert_size("4b", 1 << 20, 4);       /* explicit unit wins */
    assert_size("4k", 1 << 20, 4096);
}

static void test_parse_size_fractions(void)
{
    assert_size("1.5M", 1, 3 << 19);
    assert_size("0.5k", 1, 512);
    assert_size("1.25G", 1, 5ULL << 28);
    assert_size("2.0k", 1, 2048);
    assert_size("1.5", 1024, 1536);
    /* A fraction that does not land on a whole byte is refused. */
    assert_bad_size("1.3k", 1);
    assert_bad_size("0.5", 1);
    assert_bad_size("1.5b", 1);
}

static void test_parse_size_overflow(void)
{
    assert_size("18446744073709551615", 1, UINT64_MAX);
    assert_bad_size("18446744073709551616", 1);
    assert_bad_size("16E", 1);
    assert_size("17179869183G", 1, 17179869183ULL << 30);
    assert_bad_size("17179869184G", 1);
    assert_bad_size("16777216T", 1);
    assert_bad_size("16.5E", 1);
    assert_bad_size("99999999999999999999999k", 1);
    assert_bad_size("18446744073709551615", 2);
}

static void test_parse_size_garbage(void)
{
    assert_bad_size(NULL, 1);
    assert_bad_size("", 1);
    assert_bad_size("-1", 1);
    assert_bad_size("-1k", 1);
    /* strtoull would negate after leading blanks: still negative. */
    assert_bad_size(" -1", 1);
    assert_bad_size("\t-5k", 1);
    assert_bad_size("abc", 1);
    assert_bad_size("k", 1);
    assert_bad_size("12x", 1);
    assert_bad_size("1kk", 1);
    assert_bad_size("1k ", 1);
    assert_bad_size("1 k", 1);
    assert_bad_size("1.5.5M", 1);
    assert_bad_size("1Q", 1);
    assert_bad_size(".", 1);
}

/* ---- size_to_str ---- */

static void assert_str(uint64_t v, const char *want)
{
    g_autofree char *s = size_to_str(v);
    g_assert_cmpstr(s, ==, want);
}

static void test_size_to_str(void)
{
    assert_str(0, "0 B");
    assert_str(1, "1 B");
    assert_str(512, "512 B");
    assert_str(999, "999 B");
    assert_str(1000, "0.977 KiB");
    assert_str(1024, "1 KiB");
    assert_str(1536, "1.5 KiB");
    assert_str(196 * 1024, "196 KiB");
    assert_str(1 << 20, "1 MiB");
    assert_str(10ULL << 30, "10 GiB");
    assert_str(64ULL << 30, "64 GiB");
    assert_str(3ULL << 39, "1.5 TiB");
    assert_str(UINT64_MAX, "16 EiB");
    /* Three significant digits. */
    assert_str(1234567, "1.18 MiB");
}

static void test_byte_order(void)
{
    uint8_t b[8];
    be16_write(b, 0x1234);
    g_assert_cmpint(b[0], ==, 0x12);
    g_assert_cmpint(b[1], ==, 0x34);
    g_assert_cmpuint(be16_read(b), ==, 0x1234);
    be32_write(b, 0xa1b2c3d4);
    g_assert_cmpint(b[0], ==, 0xa1);
    g_assert_cmpint(b[3], ==, 0xd4);
    g_assert_cmpuint(be32_read(b), ==, 0xa1b2c3d4);
    be64_write(b, 0x0102030405060708ULL);
    for (int i = 0; i < 8; i++) {
        g_assert_cmpint(b[i], ==, i + 1);
    }
    g_assert_cmpuint(be64_read(b), ==, 0x0102030405060708ULL);
    g_assert_cmpuint(ROUND_UP(513, 512), ==, 1024);
    g_assert_cmpuint(ROUND_DOWN(1023, 512), ==, 512);
    g_assert_cmpuint(DIV_ROUND_UP(1025, 512), ==, 3);
    g_assert_true(IS_ALIGNED(4096, 512));
    g_assert_false(IS_ALIGNED(4097, 512));
}

/* ---- IOVector ---- */

static void fill(uint8_t *buf, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(seed + i * 7);
    }
}

/* Builds an IOVector over pieces of sizes[] cut from one buffer with gaps,
 * so that no two pieces merge. */
static void build_vector(IOVector *v, uint8_t *backing, const size_t *sizes,
                         int n)
{
    size_t pos = 0;
    iovec_init(v, 1);    /* small hint: forces the array to grow */
    for (int i = 0; i < n; i++) {
        iovec_add(v, backing + pos, sizes[i]);
        pos += sizes[i] + 1;
    }
}

static void test_iov_add_merges(void)
{
    uint8_t buf[100];
    IOVector v;
    iovec_init(&v, 2);
    iovec_add(&v, buf, 10);
    iovec_add(&v, buf + 10, 20);     /* adjacent: merged */
    g_assert_cmpint(v.niov, ==, 1);
    g_assert_cmpuint(v.iov[0].iov_len, ==, 30);
    iovec_add(&v, buf + 40, 5);      /* gap: new entry */
    iovec_add(&v, buf + 60, 0);      /* empty: ignored */
    g_assert_cmpint(v.niov, ==, 2);
    g_assert_cmpuint(v.size, ==, 35);
    for (int i = 0; i < 10; i++) {
        iovec_add(&v, buf + 50 + 2 * i, 1);
    }
    g_assert_cmpint(v.niov, ==, 12);
    g_assert_cmpuint(v.size, ==, 45);
    size_t sum = 0;
    for (int i = 0; i < v.niov; i++) {
        sum += v.iov[i].iov_len;
    }
    g_assert_cmpuint(sum, ==, v.size);
    iovec_reset(&v);
    g_assert_cmpint(v.niov, ==, 0);
    g_assert_cmpuint(v.size, ==, 0);
    iovec_destroy(&v);
}

static void test_iov_init_buf(void)
{
    uint8_t buf[64], out[64];
    IOVector v;
    fill(buf, sizeof(buf), 3);
    iovec_init_buf(&v, buf, sizeof(buf));
    g_assert_cmpint(v.niov, ==, 1);
    g_assert_cmpuint(v.size, ==, 64);
    g_assert_cmpuint(iovec_to_buf(&v, 0, out, 64), ==, 64);
    g_assert_cmpmem(buf, 64, out, 64);
    iovec_destroy(&v);      /* no-op for the local form */
}

static void test_iov_copy_across_entries(void)
{
    static const size_t sizes[] = { 3, 1, 17, 8, 64, 5 };
    uint8_t backing[128], src[98], out[98];
    IOVector v;
    memset(backing, 0xee, sizeof(backing));
    build_vector(&v, backing, sizes, G_N_ELEMENTS(sizes));
    g_assert_cmpuint(v.size, ==, 98);
    fill(src, sizeof(src), 11);
    /* Every (offset, length) pair, in and out. */
    for (size_t off = 0; off <= v.size; off++) {
        for (size_t len = 0; off + len <= v.size; len += 7) {
            iovec_memset(&v, 0, 0, v.size);
            g_assert_cmpuint(iovec_from_buf(&v, off, src, len), ==, len);
            memset(out, 0x55, sizeof(out));
            g_assert_cmpuint(iovec_to_buf(&v, 0, out, v.size), ==, v.size);
            for (size_t i = 0; i < v.size; i++) {
                uint8_t want = i >= off && i < off + len ? src[i - off] : 0;
                g_assert_cmpint(out[i], ==, want);
            }
        }
    }
    /* The gaps between pieces were never touched. */
    g_assert_cmpint(backing[3], ==, 0xee);
    g_assert_cmpint(backing[5], ==, 0xee);
    /* Copies stop at the end of the vector. */
    g_assert_cmpuint(iovec_to_buf(&v, 90, out, 50), ==, 8);
    g_assert_cmpuint(iovec_from_buf(&v, 95, src, 50), ==, 3);
    g_assert_cmpuint(iovec_to_buf(&v, 98, out, 5), ==, 0);
    iovec_destroy(&v);
}

static void test_iov_concat(void)
{
    static const size_t sizes[] = { 10, 20, 30, 40 };
    uint8_t backing[110], flat[100], out[100];
    IOVector v;
    build_vector(&v, backing, sizes, G_N_ELEMENTS(sizes));
    fill(flat, sizeof(flat), 1);
    iovec_from_buf(&v, 0, flat, 100);
    for (size_t off = 0; off < 100; off += 3) {
        for (size_t len = 0; off + len <= 100; len += 11) {
            IOVector sub;
            iovec_init(&sub, 1);
            iovec_concat(&sub, &v, off, len);
            g_assert_cmpuint(sub.size, ==, len);
            g_assert_cmpuint(iovec_to_buf(&sub, 0, out, len), ==, len);
            g_assert_cmpmem(out, len, flat + off, len);
            iovec_destroy(&sub);
        }
    }
    /* Slices alias the original memory: writes show through. */
    IOVector sub;
    iovec_init(&sub, 1);
    iovec_concat(&sub, &v, 25, 10);
    iovec_memset(&sub, 0, 0xab, 10);
    iovec_to_buf(&v, 0, out, 100);
    for (int i = 0; i < 100; i++) {
        g_assert_cmpint(out[i], ==, i >= 25 && i < 35 ? 0xab : flat[i]);
    }
    iovec_destroy(&sub);
    iovec_destroy(&v);
}

static void test_iov_memset_and_zero(void)
{
    static const size_t sizes[] = { 7, 9, 33, 1, 50 };
    uint8_t backing[110], out[100];
    IOVector v;
    build_vector(&v, backing, sizes, G_N_ELEMENTS(sizes));
    iovec_memset(&v, 0, 0, v.size);
    g_assert_true(iovec_is_zero(&v, 0, v.size));
    for (size_t pos = 0; pos < v.size; pos++) {
        iovec_memset(&v, pos, 1, 1);
        g_assert_false(iovec_is_zero(&v, 0, v.size));
        g_assert_true(iovec_is_zero(&v, 0, pos));
        g_assert_true(iovec_is_zero(&v, pos + 1, v.size - pos - 1));
        g_assert_false(iovec_is_zero(&v, pos, 1));
        iovec_memset(&v, pos, 0, 1);
    }
    iovec_memset(&v, 5, 0x77, 40);
    iovec_to_buf(&v, 0, out, v.size);
    for (size_t i = 0; i < v.size; i++) {
        g_assert_cmpint(out[i], ==, i >= 5 && i < 45 ? 0x77 : 0);
    }
    iovec_destroy(&v);
}

static void test_buffer_is_zero(void)
{
    uint8_t *buf = g_malloc0(300);
    /* Every start alignment, every length, a single set byte anywhere. */
    for (size_t start = 0; start < 16; start++) {
        for (size_t len = 0; start + len <= 300; len += (len < 70 ? 1 : 37)) {
            g_assert_true(buffer_is_zero(buf + start, len));
            for (size_t p = 0; p < len; p++) {
                buf[start + p] = 0x80;
                g_assert_false(buffer_is_zero(buf + start, len));
                buf[start + p] = 0;
            }
            /* Bytes just outside the range do not count. */
            if (start > 0) {
                buf[start - 1] = 1;
            }
            if (start + len < 300) {
                buf[start + len] = 1;
            }
            g_assert_true(buffer_is_zero(buf + start, len));
            memset(buf, 0, 300);
        }
    }
    g_free(buf);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cutils/parse-size/suffixes", test_parse_size_suffixes);
    g_test_add_func("/cutils/parse-size/default-suffix",
                    test_parse_size_default_suffix);
    g_test_add_func("/cutils/parse-size/fractions", test_parse_size_fractions);
    g_test_add_func("/cutils/parse-size/overflow", test_parse_size_overflow);
    g_test_add_func("/cutils/parse-size/garbage", test_parse_size_garbage);
    g_test_add_func("/cutils/size-to-str", test_size_to_str);
    g_test_add_func("/cutils/byte-order", test_byte_order);
    g_test_add_func("/iov/add-merges", test_iov_add_merges);
    g_test_add_func("/iov/init-buf", test_iov_init_buf);
    g_test_add_func("/iov/copy-across-entries", test_iov_copy_across_entries);
    g_test_add_func("/iov/concat", test_iov_concat);
    g_test_add_func("/iov/memset-zero", test_iov_memset_and_zero);
    g_test_add_func("/iov/buffer-is-zero", test_buffer_is_zero);
    return g_test_run();
}
