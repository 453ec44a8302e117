/*
 * test-file-reserve.c - the file driver's reservation ahead of the end
 * (block/file-posix.c): direct writes that extend a file find it already
 * extended by fallocate, the node still reports the logical length, the
 * reserved tail reads as zeroes, close cuts it off again, and an image
 * whose writer was killed with the tail in place is consistent for
 * qemu-img.
 */
#include "image-test.h"
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)

static BlockBackend *open_direct(const char *path, const char *driver)
{
    g_autofree char *opts = g_strdup_printf("driver=%s,cache.direct=on",
                                            driver);
    return img_open_opts(path, opts, NULL);
}

static void write_seq(BlockBackend *blk, Model *m, uint64_t from,
                      uint64_t len, uint32_t seed)
{
    for (uint64_t off = from; off < from + len; off += 64 * KiB) {
        write_pattern(blk, m, off, 64 * KiB, seed);
    }
}

/* A raw file filled by direct writes: reserved ahead while open, exact
 * after close, contents intact. */
static void test_raw_fill(void)
{
    test_dir_setup();
    g_autofree char *path = test_path("raw.img");
    g_assert_true(g_file_set_contents(path, "", 0, NULL));
    BlockBackend *blk = open_direct(path, "raw");
    blk_set_allow_beyond_eof(blk, true);    /* a raw file grows by writes */
    Model *m = model_new(8 * MiB);

    write_seq(blk, m, 0, 3 * MiB, 7);
    g_assert_cmpint(blk_getlength(blk), ==, 3 * MiB);
    /* The file itself runs ahead: the next writes land inside it. */
    g_assert_cmpuint(file_size(path), >, 3 * MiB);
    /* Past the logical end reads as zeroes (raw reads past EOF). */
    uint8_t *buf = g_malloc(64 * KiB);
    g_assert_cmpint(blk_pread(blk, 3 * MiB, 64 * KiB, buf), ==, 0);
    g_assert_true(buffer_is_zero(buf, 64 * KiB));
    g_free(buf);

    write_seq(blk, m, 3 * MiB, 5 * MiB, 8);
    g_assert_cmpint(blk_getlength(blk), ==, 8 * MiB);
    verify_model(blk, m);
    blk_unref(blk);
    g_assert_cmpuint(file_size(path), ==, 8 * MiB);

    blk = open_direct(path, "raw");
    verify_model(blk, m);
    blk_unref(blk);
    model_free(m);
    test_dir_cleanup();
}

/* A qcow2 filled through O_DIRECT ends exactly at qemu-img's "image end
 * offset", and qemu-img finds it clean. */
static void test_qcow2_fill(void)
{
    test_dir_setup();
    g_autofree char *path = test_path("fill.qcow2");
    img_create(path, 64 * MiB, NULL);
    BlockBackend *blk = open_direct(path, "qcow2");
    Model *m = model_new(64 * MiB);
    write_seq(blk, m, 0, 24 * MiB, 3);
    g_assert_cmpuint(file_size(path), >, 24 * MiB);
    verify_model(blk, m);
    blk_unref(blk);
    qemu_check(path, false);

    char *argv[] = { "qemu-img", "check", "--output=json", path, NULL };
    g_autofree char *out = NULL;
    g_assert_cmpint(run_tool(argv, &out, NULL), ==, 0);
    json_t *j = json_loads(out, 0, NULL);
    g_assert_nonnull(j);
    g_assert_cmpuint(json_integer_value(json_object_get(j,
                     "image-end-offset")), ==, file_size(path));
    json_decref(j);

    blk = open_direct(path, "qcow2");
    verify_model(blk, m);
    blk_unref(blk);
    model_free(m);
    test_dir_cleanup();
}

/* The writer of test_qcow2_kill, in a fresh process (this program run
 * with --writer PATH FD): a forked copy would share the parent's io_uring.
 * Fills 4 MiB, flushes, reports "F" on FD, then appends until killed. */
static int run_writer(const char *path, int fd)
{
    BlockBackend *blk = open_direct(path, "qcow2");
    Model *m = model_new(64 * MiB);
    write_seq(blk, m, 0, 4 * MiB, 11);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    g_assert_cmpint(write(fd, "F", 1), ==, 1);
    for (;;) {
        write_seq(blk, m, 4 * MiB, 32 * MiB, 12);
    }
    return 0;
}

/* SIGKILL while filling: the reserved tail stays behind, and the image
 * is still consistent (no corruption; leaks allowed) with every flushed
 * write in place. */
static void test_qcow2_kill(void)
{
    test_dir_setup();
    g_autofree char *path = test_path("kill.qcow2");
    img_create(path, 64 * MiB, NULL);
    int pfd[2];
    g_assert_cmpint(pipe(pfd), ==, 0);
    g_autofree char *fdarg = g_strdup_printf("%d", pfd[1]);
    char *argv[] = { "/proc/self/exe", "--writer", path, fdarg, NULL };
    GPid pid;
    GError *err = NULL;
    g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD |
                  G_SPAWN_LEAVE_DESCRIPTORS_OPEN, NULL, NULL, &pid, &err);
    g_assert_no_error(err);
    close(pfd[1]);
    char c;
    g_assert_cmpint(read(pfd[0], &c, 1), ==, 1);
    g_usleep(20000);
    kill(pid, SIGKILL);
    int status;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFSIGNALED(status));
    close(pfd[0]);

    qemu_check(path, true);
    BlockBackend *blk = img_open(path);
    uint8_t *want = g_malloc(4 * MiB), *buf = g_malloc(4 * MiB);
    pattern_fill(want, 4 * MiB, 11, 0);
    g_assert_cmpint(blk_pread(blk, 0, 4 * MiB, buf), ==, 0);
    assert_same_bytes(buf, want, 4 * MiB, 0, "flushed before the kill");
    g_free(want);
    g_free(buf);
    blk_unref(blk);
    test_dir_cleanup();
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--writer")) {
        return run_writer(argv[2], atoi(argv[3]));
    }
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/file/reserve/raw-fill", test_raw_fill);
    g_test_add_func("/file/reserve/qcow2-fill", test_qcow2_fill);
    g_test_add_func("/file/reserve/qcow2-kill", test_qcow2_kill);
    return g_test_run();
}
