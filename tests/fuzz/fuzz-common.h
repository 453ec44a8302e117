/*
 * fuzz-common.h - what the libFuzzer targets in tests/fuzz/ share: a
 * private scratch folder per process (under /dev/shm when it exists, else
 * the system's temporary folder) that every file a target writes goes
 * into, removed again at exit, and small helpers to write an input there.
 *
 * Invariants: a target writes nowhere else; the folder is made once (in
 * LLVMFuzzerInitialize or on first use) and emptied by the target itself
 * after each input, so a run of millions of inputs leaves nothing behind.
 *
 * Header-only (static functions); each fuzz-<target>.c includes it once,
 * for both the libFuzzer build (make fuzz) and the replay build
 * (tests/fuzz/replay-main.c, built by make all).
 */
#ifndef XBLK_TESTS_FUZZ_FUZZ_COMMON_H
#define XBLK_TESTS_FUZZ_FUZZ_COMMON_H

#include <glib.h>
#include <glib/gstdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char *fuzz_dir;

static void fuzz_dir_remove(void)
{
    if (!fuzz_dir) {
        return;
    }
    GDir *d = g_dir_open(fuzz_dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(fuzz_dir, name, NULL);
        g_unlink(p);
    }
    if (d) {
        g_dir_close(d);
    }
    g_rmdir(fuzz_dir);
    g_clear_pointer(&fuzz_dir, g_free);
}

/* The process's scratch folder (made on first call, removed at exit). */
static inline const char *fuzz_tmpdir(void)
{
    if (!fuzz_dir) {
        char shm[] = "/dev/shm/xblk-fuzz-XXXXXX";
        if (g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) && g_mkdtemp(shm)) {
            fuzz_dir = g_strdup(shm);
        } else {
            GError *err = NULL;
            fuzz_dir = g_dir_make_tmp("xblk-fuzz-XXXXXX", &err);
            if (!fuzz_dir) {
                g_error("fuzz: no scratch folder: %s", err->message);
            }
        }
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir;
}

/* A path in the scratch folder (caller frees). */
static inline char *fuzz_path(const char *name)
{
    return g_build_filename(fuzz_tmpdir(), name, NULL);
}

/* Writes data to path (replacing it); aborts if that fails. */
static inline void fuzz_write_file(const char *path, const uint8_t *data,
                                   size_t size)
{
    GError *err = NULL;
    if (!g_file_set_contents(path, (const char *)data, size, &err)) {
        g_error("fuzz: %s", err->message);
    }
}

static inline uint32_t fuzz_le32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
