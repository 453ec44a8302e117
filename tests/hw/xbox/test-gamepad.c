/*
 * test-gamepad.c - the gamepad (hw/xbox/gamepad.c) against
 * docs/machine.md, "Gamepad": the register layout at every access width,
 * -input-script parsing (good files, and bad ones whose errors must name
 * "file:line: what"), per-frame latching from the script or the host
 * state, and gamepad_set_host_state() racing the vblank from a thread.
 */
#include "hw/xbox/gamepad.h"
#include <glib/gstdio.h>
#include <string.h>

#define P GAMEPAD_PORT_BASE

static char *test_dir;

static char *write_script(const char *name, const char *text, gssize len)
{
    char *path = g_build_filename(test_dir, name, NULL);
    GError *err = NULL;
    g_assert_true(g_file_set_contents(path, text, len, &err));
    g_assert_no_error(err);
    return path;
}

static uint32_t rd(Gamepad *pad, uint32_t port, unsigned size)
{
    return gamepad_ioport_read(pad, port, size);
}

/* Asserts the registers show st (and the connected status). */
static void check_regs(Gamepad *pad, const GamepadState *st)
{
    g_assert_cmphex(rd(pad, P + 0, 2), ==, st->buttons);
    g_assert_cmphex(rd(pad, P + 2, 1), ==, st->left_trigger);
    g_assert_cmphex(rd(pad, P + 3, 1), ==, st->right_trigger);
    g_assert_cmphex(rd(pad, P + 4, 2), ==, (uint16_t)st->lx);
    g_assert_cmphex(rd(pad, P + 6, 2), ==, (uint16_t)st->ly);
    g_assert_cmphex(rd(pad, P + 8, 2), ==, (uint16_t)st->rx);
    g_assert_cmphex(rd(pad, P + 10, 2), ==, (uint16_t)st->ry);
    g_assert_cmphex(rd(pad, P + 12, 1), ==, 1);
}

static void test_registers(void)
{
    Gamepad *pad = gamepad_new();
    GamepadState zero = { 0 };
    GamepadState st = {
        .buttons = 0x2A5A, .left_trigger = 0x12, .right_trigger = 0xFE,
        .lx = -2, .ly = 0x1234, .rx = -32768, .ry = 32767,
    };

    check_regs(pad, &zero);
    gamepad_set_host_state(pad, &st);
    check_regs(pad, &zero);             /* only at vblank */
    gamepad_vblank(pad, 0);
    check_regs(pad, &st);

    /* Other widths: bytes little-endian, as consecutive ports. */
    g_assert_cmphex(rd(pad, P, 4), ==, 0xFE122A5A);
    g_assert_cmphex(rd(pad, P, 1), ==, 0x5A);
    g_assert_cmphex(rd(pad, P + 1, 1), ==, 0x2A);
    g_assert_cmphex(rd(pad, P + 4, 4), ==, 0x1234FFFE);
    g_assert_cmphex(rd(pad, P + 8, 4), ==, 0x7FFF8000);
    g_assert_cmphex(rd(pad, P + 5, 2), ==, 0x34FF);
    /* Status, then bytes with no register and ports past the window. */
    g_assert_cmphex(rd(pad, P + 12, 4), ==, 0xFFFFFF01);
    g_assert_cmphex(rd(pad, P + 13, 1), ==, 0xFF);
    g_assert_cmphex(rd(pad, P + 15, 2), ==, 0xFFFF);
    g_assert_cmphex(rd(pad, P + 16, 4), ==, 0xFFFFFFFF);
    g_assert_cmphex(rd(pad, P - 1, 2), ==, 0x5AFF);

    /* Writes change nothing. */
    for (uint32_t port = P; port < P + 16; port++) {
        gamepad_ioport_write(pad, port, 0, 1);
        gamepad_ioport_write(pad, port, 0, 4);
    }
    check_regs(pad, &st);
    gamepad_free(pad);
}

static void test_script(void)
{
    static const char text[] =
        "# FRAME BUTTONS [LT RT LX LY RX RY]\n"
        "\n"
        "5 -\n"
        "10 up+a          # trailing comment\n"
        "10 0x101 1 2 3 4 5 6\n"
        "   20\tSTART+Back 255 0 -32768 32767 -1 0\n"
        "30 x\r\n"
        "  # indented comment\n"
        "40 16383\n"
        "50 lthumb+rthumb+black+white+b+y+down+left+right+a+a 7\n"
        "60 right 0 255";
    g_autofree char *path = write_script("good.txt", text, -1);
    Gamepad *pad = gamepad_new();
    GError *err = NULL;
    GamepadState host = { .buttons = 0x3000, .lx = 99 };

    g_assert_true(gamepad_load_script(pad, path, &err));
    g_assert_no_error(err);
    gamepad_set_host_state(pad, &host);

    static const struct {
        uint64_t frame;
        GamepadState st;
    } want[] = {
        { 0, { 0x3000, 0, 0, 99, 0, 0, 0 } },       /* before the script */
        { 4, { 0x3000, 0, 0, 99, 0, 0, 0 } },
        { 5, { 0 } },
        { 9, { 0 } },
        { 10, { 0x101, 1, 2, 3, 4, 5, 6 } },        /* same frame: last */
        { 19, { 0x101, 1, 2, 3, 4, 5, 6 } },
        { 20, { 0x30, 255, 0, -32768, 32767, -1, 0 } },
        { 30, { 0x400 } },
        { 40, { 0x3FFF } },
        { 50, { 0x3BCE, 7 } },
        { 60, { 0x8, 0, 255 } },
        { G_MAXUINT64, { 0x8, 0, 255 } },
        /* Frames in any order (a loaded save state goes back). */
        { 12, { 0x101, 1, 2, 3, 4, 5, 6 } },
        { 2, { 0x3000, 0, 0, 99, 0, 0, 0 } },
        { 49, { 0x3FFF } },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(want); i++) {
        gamepad_vblank(pad, want[i].frame);
        check_regs(pad, &want[i].st);
    }

    /* A file of only comments: the host state drives every frame. */
    g_autofree char *empty = write_script("empty.txt", "# nothing\n\n", -1);
    g_assert_true(gamepad_load_script(pad, empty, &err));
    gamepad_vblank(pad, 1000);
    check_regs(pad, &host);
    gamepad_free(pad);
}

static void test_script_errors(void)
{
    static const struct {
        const char *text;
        unsigned line;
        const char *what;
    } bad[] = {
        { "0 a\n5 b\n3 x\n", 3, "goes back" },
        { "abc a", 1, "bad frame number 'abc'" },
        { "-1 a", 1, "bad frame number" },
        { "+1 a", 1, "bad frame number" },
        { "18446744073709551616 a", 1, "bad frame number" },
        { "# c\n0\n", 2, "expected FRAME BUTTONS" },
        { "0 a 1 2 3 4 5 6 7", 1, "more than 8 fields" },
        { "0 jump", 1, "unknown button 'jump'" },
        { "0 a++b", 1, "unknown button ''" },
        { "0 a+", 1, "unknown button" },
        { "0 +a", 1, "unknown button" },
        { "0 a-b", 1, "unknown button 'a-b'" },
        { "0 16384", 1, "bad button mask" },
        { "0 0x4000", 1, "bad button mask" },
        { "0 0x", 1, "bad button mask" },
        { "0 12ab", 1, "bad button mask" },
        { "0 a 256", 1, "bad left trigger '256'" },
        { "0 a 0 -1", 1, "bad right trigger" },
        { "0 a 0 0 32768", 1, "bad left stick X" },
        { "0 a 0 0 0 -32769", 1, "bad left stick Y" },
        { "0 a 0 0 0 0 1.5", 1, "bad right stick X" },
        { "0 a 0 0 0 0 0 x", 1, "bad right stick Y" },
        { "\n\n0 a b c", 3, "bad left trigger 'b'" },
        { "0 a\n1 b\0c\n", 2, "NUL byte" },
    };
    Gamepad *pad = gamepad_new();
    GError *err = NULL;
    g_autofree char *good = write_script("ok.txt", "0 a\n", -1);

    g_assert_true(gamepad_load_script(pad, good, &err));
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *name = g_strdup_printf("bad%u.txt", i);
        gssize len = i == G_N_ELEMENTS(bad) - 1 ? 10 : -1;
        g_autofree char *path = write_script(name, bad[i].text, len);
        g_autofree char *prefix = g_strdup_printf("%s:%u: ", path,
                                                  bad[i].line);
        g_assert_false(gamepad_load_script(pad, path, &err));
        g_assert_nonnull(err);
        if (!g_str_has_prefix(err->message, prefix) ||
            !strstr(err->message, bad[i].what)) {
            g_error("case %u: got \"%s\", want \"%s...%s\"", i,
                    err->message, prefix, bad[i].what);
        }
        g_clear_error(&err);
    }

    /* A missing file names its path. */
    g_autofree char *missing = g_build_filename(test_dir, "none.txt", NULL);
    g_assert_false(gamepad_load_script(pad, missing, &err));
    g_assert_nonnull(strstr(err->message, missing));
    g_clear_error(&err);

    /* Failed loads left the good script in place. */
    gamepad_vblank(pad, 3);
    g_assert_cmphex(rd(pad, P, 2), ==, 0x100);
    gamepad_free(pad);
}

/* ---- the host state from another thread ---- */

typedef struct Racer {
    Gamepad *pad;
    gint stop;
    unsigned sets;
} Racer;

/* States whose fields all derive from one counter, so a torn copy shows. */
static GamepadState racer_state(uint32_t i)
{
    return (GamepadState){
        .buttons = i & 0x3FFF, .left_trigger = i & 0xFF,
        .right_trigger = ~i & 0xFF, .lx = (int16_t)i, .ly = (int16_t)~i,
        .rx = (int16_t)(i >> 3), .ry = (int16_t)(i * 3),
    };
}

static gpointer racer_main(gpointer opaque)
{
    Racer *rc = opaque;
    for (uint32_t i = 1; !g_atomic_int_get(&rc->stop); i++) {
        GamepadState st = racer_state(i);
        gamepad_set_host_state(rc->pad, &st);
        rc->sets++;
    }
    return NULL;
}

static void test_host_thread(void)
{
    Racer rc = { .pad = gamepad_new() };
    GThread *t = g_thread_new("racer", racer_main, &rc);
    unsigned changes = 0;
    uint32_t last = 0;

    /* On a loaded host the racer may not run for a while: go on (up to
     * 10 s) until it changed the state at least once. */
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    for (uint64_t f = 0; changes < 1000 &&
         (f < 200000 || (!changes && g_get_monotonic_time() < deadline));
         f++) {
        if (f % 4096 == 4095) {
            g_thread_yield();
        }
        gamepad_vblank(rc.pad, f);
        /* lx and ly hold the low 16 bits of the counter twice. */
        uint32_t lo = rd(rc.pad, P + 4, 2);
        if (lo == last) {
            continue;
        }
        uint32_t hi = ~lo & 0xFFFF;
        g_assert_cmphex(rd(rc.pad, P + 6, 2), ==, hi);
        g_assert_cmphex(rd(rc.pad, P + 2, 1), ==, lo & 0xFF);
        g_assert_cmphex(rd(rc.pad, P + 3, 1), ==, ~lo & 0xFF);
        g_assert_cmphex(rd(rc.pad, P, 2), ==, lo & 0x3FFF);
        g_assert_cmphex(rd(rc.pad, P + 10, 2), ==, (lo * 3) & 0xFFFF);
        last = lo;
        changes++;
    }
    g_atomic_int_set(&rc.stop, 1);
    g_thread_join(t);
    g_assert_cmpuint(changes, >, 0);
    gamepad_free(rc.pad);
}

int main(int argc, char **argv)
{
    GError *err = NULL;
    int ret;

    g_test_init(&argc, &argv, NULL);
    test_dir = g_dir_make_tmp("xblk-gamepad-XXXXXX", &err);
    g_assert_no_error(err);
    g_test_add_func("/gamepad/registers", test_registers);
    g_test_add_func("/gamepad/script", test_script);
    g_test_add_func("/gamepad/script-errors", test_script_errors);
    g_test_add_func("/gamepad/host-thread", test_host_thread);
    ret = g_test_run();

    GDir *d = g_dir_open(test_dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(test_dir, name, NULL);
        g_unlink(p);
    }
    if (d) {
        g_dir_close(d);
    }
    g_rmdir(test_dir);
    g_free(test_dir);
    return ret;
}
