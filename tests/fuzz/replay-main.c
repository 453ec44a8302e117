/*
 * replay-main.c - the main() of the replay builds of the fuzz targets
 * (build/tests/fuzz/replay-<target>): runs LLVMFuzzerTestOneInput once
 * over every file named on the command line, and over every regular file
 * of every folder named (one level, in name order), the way a libFuzzer
 * binary replays a corpus without fuzzing.  Built with the normal
 * compiler and flags, so `make check` (tests/fuzz/test-fuzz-corpus.py)
 * replays every seed and every past crash, and `make check-asan` does
 * it under ASan/UBSan.
 *
 * Exit status 0 when every input ran; a crash or an assertion in the
 * target ends the process as it would under libFuzzer.  The name of the
 * input being run goes to stderr first (with -v), so a failure names it.
 */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static bool verbose;
static unsigned replayed;

static void run_file(const char *path)
{
    gchar *data = NULL;
    gsize len = 0;
    GError *err = NULL;
    if (!g_file_get_contents(path, &data, &len, &err)) {
        fprintf(stderr, "replay: %s\n", err->message);
        exit(2);
    }
    if (verbose) {
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, (size_t)len);
    }
    /* A copy of exactly len bytes, so ASan sees reads past the end. */
    uint8_t *copy = g_memdup2(data, len ? len : 1);
    g_free(data);
    LLVMFuzzerTestOneInput(copy, len);
    g_free(copy);
    replayed++;
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_dir(const char *dir)
{
    GError *err = NULL;
    GDir *d = g_dir_open(dir, 0, &err);
    if (!d) {
        fprintf(stderr, "replay: %s\n", err->message);
        exit(2);
    }
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    const char *n;
    while ((n = g_dir_read_name(d))) {
        char *p = g_build_filename(dir, n, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_REGULAR)) {
            g_ptr_array_add(names, p);
        } else {
            g_free(p);
        }
    }
    g_dir_close(d);
    g_ptr_array_sort(names, cmp_names);
    for (guint i = 0; i < names->len; i++) {
        run_file(names->pdata[i]);
    }
    g_ptr_array_free(names, TRUE);
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    int first = 1;
    if (argc > 1 && !strcmp(argv[1], "-v")) {
        verbose = true;
        first = 2;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: %s [-v] FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = first; i < argc; i++) {
        if (g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
            run_dir(argv[i]);
        } else {
            run_file(argv[i]);
        }
    }
    printf("replayed %u inputs\n", replayed);
    return 0;
}
