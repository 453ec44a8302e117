/*
 * test-smc.c - the system controller and debug console (hw/xbox/smc.c)
 * against docs/machine.md, "System controller": the machine-info
 * registers at every width, the HDD key window, the power register's
 * callback, open-bus behaviour, and debug console bytes reaching the file
 * in order, flushed at each newline.
 */
#include "hw/xbox/smc.h"
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#define S SMC_PORT_BASE

typedef struct PowerLog {
    unsigned calls;
    SmcPowerRequest last;
} PowerLog;

static void power_cb(void *opaque, SmcPowerRequest req)
{
    PowerLog *log = opaque;
    log->calls++;
    log->last = req;
}

static const uint8_t test_key[32] = "my-hdd-password";   /* zero padded */

static uint32_t key_word(unsigned i)
{
    const uint8_t *p = test_key + 4 * i;
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static void test_info(void)
{
    PowerLog log = { 0 };
    Smc *smc = smc_new(128u << 20, 0x0123456789ABCDEFull, test_key, NULL,
                       power_cb, &log);

    g_assert_cmphex(smc_ioport_read(smc, S + 0x00, 4), ==, 0x4B4C4258);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x04, 4), ==, 128u << 20);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x08, 4), ==, 0x89ABCDEF);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x0C, 4), ==, 0x01234567);
    /* Narrow reads of read-only registers: their bytes, little-endian. */
    g_assert_cmphex(smc_ioport_read(smc, S + 0x00, 1), ==, 0x58);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x01, 1), ==, 0x42);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x02, 2), ==, 0x4B4C);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x0E, 2), ==, 0x0123);
    /* Crossing into the next register, write-only and unused ports,
     * ports outside the window: all ones. */
    g_assert_cmphex(smc_ioport_read(smc, S + 0x02, 4), ==, 0xFFFFFFFF);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x10, 4), ==, 0xFFFFFFFF);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x18, 1), ==, 0xFF);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x1C, 4), ==, 0xFFFFFFFF);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x20, 4), ==, 0xFFFFFFFF);
    g_assert_cmphex(smc_ioport_read(smc, S - 1, 2), ==, 0xFFFF);
    /* Writes to read-only registers change nothing. */
    for (uint32_t off = 0; off < 0x10; off++) {
        smc_ioport_write(smc, S + off, 0, 4);
    }
    g_assert_cmphex(smc_ioport_read(smc, S + 0x04, 4), ==, 128u << 20);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x08, 4), ==, 0x89ABCDEF);
    g_assert_cmpuint(log.calls, ==, 0);
    smc_free(smc);

    /* 64 MiB, seed 0, no key, no callback. */
    smc = smc_new(64u << 20, 0, NULL, NULL, NULL, NULL);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x04, 4), ==, 64u << 20);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x08, 4), ==, 0);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x14, 4), ==, 0);
    smc_ioport_write(smc, S + 0x18, SMC_POWER_OFF, 1);      /* dropped */
    smc_free(smc);
}

static void test_hdd_key(void)
{
    Smc *smc = smc_new(64u << 20, 1, test_key, NULL, NULL, NULL);

    /* Eight reads fetch the key; the ninth starts over. */
    for (unsigned round = 0; round < 2; round++) {
        for (unsigned i = 0; i < 8; i++) {
            g_assert_cmphex(smc_ioport_read(smc, S + 0x14, 4), ==,
                            key_word(i));
        }
    }
    g_assert_cmphex(key_word(0), ==, 0x682D796D);       /* "my-h" */
    g_assert_cmphex(key_word(7), ==, 0);
    /* The index register selects a word. */
    smc_ioport_write(smc, S + 0x10, 2, 4);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x14, 4), ==, key_word(2));
    g_assert_cmphex(smc_ioport_read(smc, S + 0x14, 4), ==, key_word(3));
    /* Out-of-range indexes wrap (never past the key). */
    smc_ioport_write(smc, S + 0x10, 9, 4);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x14, 4), ==, key_word(1));
    smc_ioport_write(smc, S + 0x10, 0xFFFFFFFF, 4);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x14, 4), ==, key_word(7));
    g_assert_cmphex(smc_ioport_read(smc, S + 0x14, 4), ==, key_word(0));
    /* Narrow reads of the key window do not advance the index. */
    smc_ioport_write(smc, S + 0x10, 1, 1);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x14, 1), ==, 0xFF);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x15, 2), ==, 0xFFFF);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x14, 4), ==, key_word(1));
    /* Reset: index 0. */
    smc_reset(smc);
    g_assert_cmphex(smc_ioport_read(smc, S + 0x14, 4), ==, key_word(0));
    smc_free(smc);
}

static void test_power(void)
{
    PowerLog log = { 0 };
    Smc *smc = smc_new(64u << 20, 0, test_key, NULL, power_cb, &log);

    smc_ioport_write(smc, S + 0x18, 1, 1);
    g_assert_cmpuint(log.calls, ==, 1);
    g_assert_cmpint(log.last, ==, SMC_POWER_OFF);
    smc_ioport_write(smc, S + 0x18, 2, 1);
    g_assert_cmpuint(log.calls, ==, 2);
    g_assert_cmpint(log.last, ==, SMC_POWER_RESET);
    /* Other values, other ports: nothing. */
    static const uint32_t other[] = { 0, 3, 0xFF, 0x80 };
    for (unsigned i = 0; i < G_N_ELEMENTS(other); i++) {
        smc_ioport_write(smc, S + 0x18, other[i], 1);
    }
    smc_ioport_write(smc, S + 0x19, 1, 1);
    smc_ioport_write(smc, S + 0x1C, 1, 1);
    smc_ioport_write(smc, S + 0x14, 1, 4);
    g_assert_cmpuint(log.calls, ==, 2);
    /* Wider writes use the low byte. */
    smc_ioport_write(smc, S + 0x18, 0x0103, 2);
    g_assert_cmpuint(log.calls, ==, 2);
    smc_ioport_write(smc, S + 0x18, 0x00000201, 4);
    g_assert_cmpuint(log.calls, ==, 3);
    g_assert_cmpint(log.last, ==, SMC_POWER_OFF);
    smc_free(smc);
}

static char *read_file(const char *path)
{
    char *text = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    return text;
}

static void test_debugcon(void)
{
    GError *err = NULL;
    g_autofree char *dir = g_dir_make_tmp("xblk-smc-XXXXXX", &err);
    g_assert_no_error(err);
    g_autofree char *path = g_build_filename(dir, "debugcon.txt", NULL);
    FILE *f = fopen(path, "w");
    g_assert_nonnull(f);
    Smc *smc = smc_new(64u << 20, 0, NULL, f, NULL, NULL);

    /* Reads answer 0xE9, as QEMU's isa-debugcon. */
    g_assert_cmphex(smc_ioport_read(smc, DEBUGCON_PORT, 1), ==, 0xE9);

    const char *msg = "hello";
    for (const char *p = msg; *p; p++) {
        smc_ioport_write(smc, DEBUGCON_PORT, (uint8_t)*p, 1);
    }
    /* Not flushed before the newline (a regular file is fully
     * buffered)... */
    g_autofree char *before = read_file(path);
    g_assert_cmpstr(before, ==, "");
    /* ... and flushed at it.  Wide writes send their low byte. */
    smc_ioport_write(smc, DEBUGCON_PORT, 0x1221, 2);
    smc_ioport_write(smc, DEBUGCON_PORT, '\n', 1);
    g_autofree char *after = read_file(path);
    g_assert_cmpstr(after, ==, "hello!\n");
    /* Any byte value passes through. */
    smc_ioport_write(smc, DEBUGCON_PORT, 0xFF, 1);
    smc_ioport_write(smc, DEBUGCON_PORT, 0x00, 1);
    smc_ioport_write(smc, DEBUGCON_PORT, '\n', 1);
    gsize len;
    g_autofree char *bin = NULL;
    g_assert_true(g_file_get_contents(path, &bin, &len, NULL));
    g_assert_cmpuint(len, ==, 10);
    g_assert_cmpmem(bin + 7, 3, "\xff\0\n", 3);
    smc_free(smc);
    fclose(f);
    g_unlink(path);
    g_rmdir(dir);

    /* Without a console the bytes are dropped. */
    smc = smc_new(64u << 20, 0, NULL, NULL, NULL, NULL);
    smc_ioport_write(smc, DEBUGCON_PORT, 'x', 1);
    smc_ioport_write(smc, DEBUGCON_PORT, '\n', 1);
    smc_free(smc);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/smc/info", test_info);
    g_test_add_func("/smc/hdd-key", test_hdd_key);
    g_test_add_func("/smc/power", test_power);
    g_test_add_func("/smc/debugcon", test_debugcon);
    return g_test_run();
}
