/*
 * test-main-loop.c - the loop's GMainContext (util/main-loop.h): an
 * embedder's own context carries every engine source - bottom halves,
 * timeouts, fd watches, worker-pool completions - and GLib's default
 * context none of them; the context cannot change once sources exist on
 * another one.
 */
#include "util/main-loop.h"
#include <unistd.h>

static void bh_count(void *opaque)
{
    (*(int *)opaque)++;
}

static gboolean timeout_count(gpointer opaque)
{
    (*(int *)opaque)++;
    return G_SOURCE_REMOVE;
}

static gboolean fd_count(int fd, GIOCondition cond, gpointer opaque)
{
    char c;
    g_assert_cmpint(read(fd, &c, 1), ==, 1);
    (*(int *)opaque)++;
    return G_SOURCE_CONTINUE;
}

static int worker_answer(void *opaque)
{
    return 42;
}

static void coroutine_fn worker_co(void *opaque)
{
    *(int *)opaque = worker_pool_run(worker_answer, NULL);
}

/* Iterates ctx until *counter reaches want (a bounded number of times). */
static void iterate_until(GMainContext *ctx, int *counter, int want)
{
    for (int i = 0; i < 1000 && *counter < want; i++) {
        g_main_context_iteration(ctx, TRUE);
    }
    g_assert_cmpint(*counter, ==, want);
}

static void test_own_context(void)
{
    GMainContext *ctx = g_main_context_new();
    g_assert_true(aio_set_context(ctx));
    g_assert_true(aio_context() == ctx);

    int bhs = 0, timeouts = 0, reads = 0, answer = 0;
    aio_bh_schedule(bh_count, &bhs);
    aio_timeout_add(1, timeout_count, &timeouts);
    int p[2];
    g_assert_cmpint(pipe(p), ==, 0);
    guint watch = aio_fd_add(p[0], G_IO_IN, fd_count, &reads);
    g_assert_cmpint(write(p[1], "x", 1), ==, 1);

    /* GLib's default context carries none of it. */
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    g_assert_cmpint(bhs + timeouts + reads, ==, 0);

    iterate_until(ctx, &bhs, 1);
    iterate_until(ctx, &timeouts, 1);
    iterate_until(ctx, &reads, 1);
    /* aio_poll drives the same context, worker completions included. */
    Coroutine *co = co_create(worker_co, &answer);
    co_enter(co);
    AIO_POLL_WHILE(answer == 0);
    g_assert_cmpint(answer, ==, 42);

    aio_source_remove(watch);
    g_assert_cmpint(write(p[1], "y", 1), ==, 1);
    while (g_main_context_iteration(ctx, FALSE)) {
    }
    g_assert_cmpint(reads, ==, 1);
    close(p[0]);
    close(p[1]);

    /* In use: another context is refused, the same one accepted. */
    g_assert_false(aio_set_context(NULL));
    g_assert_true(aio_context() == ctx);
    g_assert_true(aio_set_context(ctx));
    g_main_context_unref(ctx);      /* the loop keeps its reference */
    aio_bh_schedule(bh_count, &bhs);
    AIO_POLL_WHILE(bhs < 2);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/main-loop/own-context", test_own_context);
    return g_test_run();
}
