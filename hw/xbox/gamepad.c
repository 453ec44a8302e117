/*
 * gamepad.c - the gamepad registers at 0xC000-0xC00F (docs/machine.md,
 * "Gamepad") and -input-script.
 *
 * Owns: the state the guest reads (latched once per vblank), the live host
 * state the UI sets from any thread, and the parsed input script.
 * Called by the machine: gamepad_vblank() and the port handlers on the
 * device thread, gamepad_set_host_state() from any thread.
 *
 * Invariants:
 * - The guest-visible registers change only in gamepad_vblank(), so input
 *   is a pure function of the frame number (and, without a script line for
 *   that frame, of the host state latched then): deterministic per frame.
 * - With a script, frame F shows the last script line whose FRAME <= F
 *   (lines are sorted: frames never decrease), found by binary search, so
 *   any frame order works (a loaded save state goes back in time).
 * - host is the only field shared between threads; host_lock guards it.
 */
#include "hw/xbox/gamepad.h"
#include "hw/error.h"
#include <string.h>

#define GAMEPAD_STATUS_CONNECTED 0x01
#define GAMEPAD_BUTTON_MASK      0x3FFFu    /* bits 0..13 are defined */
#define GAMEPAD_MAX_FIELDS       8          /* FRAME BUTTONS + 6 axes */

typedef struct GamepadLine {
    uint64_t frame;
    GamepadState st;
} GamepadLine;

struct Gamepad {
    GMutex host_lock;
    GamepadState host;          /* guarded by host_lock */
    GArray *script;             /* GamepadLine, frames non-decreasing */
    GamepadState latched;       /* what the registers show this frame */
};

static const char *const gamepad_button_names[] = {
    "up", "down", "left", "right", "start", "back", "lthumb", "rthumb",
    "a", "b", "x", "y", "black", "white",
};

Gamepad *gamepad_new(void)
{
    Gamepad *pad = g_new0(Gamepad, 1);
    g_mutex_init(&pad->host_lock);
    pad->script = g_array_new(FALSE, FALSE, sizeof(GamepadLine));
    return pad;
}

void gamepad_free(Gamepad *pad)
{
    if (!pad) {
        return;
    }
    g_array_unref(pad->script);
    g_mutex_clear(&pad->host_lock);
    g_free(pad);
}

/* ---- the script parser ---- */

typedef struct GamepadParse {
    const char *path;
    unsigned line;
    GError **errp;
} GamepadParse;

static bool G_GNUC_PRINTF(2, 3) gamepad_parse_fail(GamepadParse *ps,
                                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    hw_error_set(ps->errp, "%s:%u: %s", ps->path, ps->line, what);
    return false;
}

/* Unsigned number in decimal or 0x-prefixed hex, at most max. */
static bool gamepad_parse_uint(const char *tok, uint64_t max, uint64_t *out)
{
    unsigned base = 10;
    if (tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'X')) {
        tok += 2;
        base = 16;
    }
    /* g_ascii_string_to_unsigned rejects signs, spaces and empty input. */
    return g_ascii_string_to_unsigned(tok, base, 0, max, out, NULL);
}

static int gamepad_button_bit(const char *name)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(gamepad_button_names); i++) {
        if (!g_ascii_strcasecmp(name, gamepad_button_names[i])) {
            return i;
        }
    }
    return -1;
}

/* BUTTONS: "-", a number, or names joined by '+'. */
static bool gamepad_parse_buttons(GamepadParse *ps, const char *tok,
                                  uint16_t *out)
{
    uint64_t num;
    if (!strcmp(tok, "-")) {
        *out = 0;
        return true;
    }
    if (g_ascii_isdigit(tok[0])) {
        if (!gamepad_parse_uint(tok, GAMEPAD_BUTTON_MASK, &num)) {
            return gamepad_parse_fail(ps, "bad button mask '%s' (a number "
                                      "0..0x3FFF)", tok);
        }
        *out = (uint16_t)num;
        return true;
    }
    g_auto(GStrv) names = g_strsplit(tok, "+", -1);
    uint16_t bits = 0;
    for (char **n = names; *n; n++) {
        int bit = gamepad_button_bit(*n);
        if (bit < 0) {
            return gamepad_parse_fail(ps, "unknown button '%s' in '%s'",
                                      *n, tok);
        }
        bits |= 1u << bit;
    }
    *out = bits;
    return true;
}

static bool gamepad_parse_axis(GamepadParse *ps, const char *tok,
                               const char *what, int64_t min, int64_t max,
                               int64_t *out)
{
    if (!g_ascii_string_to_signed(tok, 10, min, max, out, NULL)) {
        return gamepad_parse_fail(ps, "bad %s '%s' (%" G_GINT64_FORMAT
                                  "..%" G_GINT64_FORMAT ")",
                                  what, tok, min, max);
    }
    return true;
}

/* The optional LT RT LX LY RX RY fields; missing ones stay 0 (released,
 * centred). */
static bool gamepad_parse_axes(GamepadParse *ps, char **f, unsigned n,
                               GamepadState *st)
{
    static const char *const what[] = {
        "left trigger", "right trigger", "left stick X", "left stick Y",
        "right stick X", "right stick Y",
    };
    int64_t v[6] = { 0 };
    for (unsigned i = 0; i < n; i++) {
        bool trigger = i < 2;
        if (!gamepad_parse_axis(ps, f[i], what[i], trigger ? 0 : -32768,
                                trigger ? 255 : 32767, &v[i])) {
            return false;
        }
    }
    st->left_trigger = v[0];
    st->right_trigger = v[1];
    st->lx = v[2];
    st->ly = v[3];
    st->rx = v[4];
    st->ry = v[5];
    return true;
}

/* Splits a line (comment already cut) into at most max+1 fields. */
static unsigned gamepad_fields(char *line, char **f, unsigned max)
{
    unsigned n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r\v\f", &save); t;
         t = strtok_r(NULL, " \t\r\v\f", &save)) {
        if (n == max) {
            return max + 1;
        }
        f[n++] = t;
    }
    return n;
}

/* One line of the script; *have is false for blank and comment lines. */
static bool gamepad_parse_line(GamepadParse *ps, char *line,
                               const GArray *script, GamepadLine *out,
                               bool *have)
{
    char *f[GAMEPAD_MAX_FIELDS];
    char *hash = strchr(line, '#');
    if (hash) {
        *hash = '\0';
    }
    unsigned n = gamepad_fields(line, f, GAMEPAD_MAX_FIELDS);
    *have = n > 0;
    if (n == 0) {
        return true;
    }
    if (n < 2 || n > GAMEPAD_MAX_FIELDS) {
        return gamepad_parse_fail(ps, "expected FRAME BUTTONS "
                                  "[LT RT LX LY RX RY], found %s%u fields",
                                  n > GAMEPAD_MAX_FIELDS ? "more than " : "",
                                  MIN(n, GAMEPAD_MAX_FIELDS));
    }
    *out = (GamepadLine){ 0 };
    if (!gamepad_parse_uint(f[0], G_MAXUINT64, &out->frame)) {
        return gamepad_parse_fail(ps, "bad frame number '%s'", f[0]);
    }
    if (script->len) {
        uint64_t prev = g_array_index(script, GamepadLine,
                                      script->len - 1).frame;
        if (out->frame < prev) {
            return gamepad_parse_fail(ps, "frame %" G_GUINT64_FORMAT
                                      " goes back (previous line: frame %"
                                      G_GUINT64_FORMAT ")", out->frame, prev);
        }
    }
    return gamepad_parse_buttons(ps, f[1], &out->st.buttons) &&
           gamepad_parse_axes(ps, f + 2, n - 2, &out->st);
}

static bool gamepad_parse_text(GamepadParse *ps, char *text, size_t len,
                               GArray *script)
{
    char *p = text, *end = text + len;
    for (ps->line = 1; p < end; ps->line++) {
        char *nl = memchr(p, '\n', end - p);
        char *eol = nl ? nl : end;
        if (memchr(p, '\0', eol - p)) {
            return gamepad_parse_fail(ps, "NUL byte in line");
        }
        *eol = '\0';
        GamepadLine gl;
        bool have;
        if (!gamepad_parse_line(ps, p, script, &gl, &have)) {
            return false;
        }
        if (have) {
            g_array_append_val(script, gl);
        }
        p = eol + 1;
    }
    return true;
}

bool gamepad_load_script(Gamepad *pad, const char *path, GError **errp)
{
    g_autofree char *text = NULL;
    gsize len = 0;
    GError *err = NULL;

    if (!g_file_get_contents(path, &text, &len, &err)) {
        hw_error_set(errp, "%s", err->message);
        g_error_free(err);
        return false;
    }
    GamepadParse ps = { .path = path, .errp = errp };
    GArray *script = g_array_new(FALSE, FALSE, sizeof(GamepadLine));
    if (!gamepad_parse_text(&ps, text, len, script)) {
        g_array_unref(script);
        return false;
    }
    /* Replace the old script only once the new one parsed completely. */
    g_array_unref(pad->script);
    pad->script = script;
    return true;
}

/* ---- per-frame latching ---- */

void gamepad_set_host_state(Gamepad *pad, const GamepadState *st)
{
    g_mutex_lock(&pad->host_lock);
    pad->host = *st;
    g_mutex_unlock(&pad->host_lock);
}

void gamepad_get_host_state(Gamepad *pad, GamepadState *out)
{
    g_mutex_lock(&pad->host_lock);
    *out = pad->host;
    g_mutex_unlock(&pad->host_lock);
}

/* Index + 1 of the last script line with FRAME <= frame, 0 if none. */
static guint gamepad_script_find(const GArray *script, uint64_t frame)
{
    guint lo = 0, hi = script->len;
    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        if (g_array_index(script, GamepadLine, mid).frame <= frame) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

void gamepad_vblank(Gamepad *pad, uint64_t frame)
{
    guint i = gamepad_script_find(pad->script, frame);
    if (i > 0) {
        pad->latched = g_array_index(pad->script, GamepadLine, i - 1).st;
        return;
    }
    g_mutex_lock(&pad->host_lock);
    pad->latched = pad->host;
    g_mutex_unlock(&pad->host_lock);
}

/* ---- registers ---- */

/* The 16-byte register window as the guest sees it; -1 for bytes with no
 * register (they read as ones, as unclaimed ports do). */
static int gamepad_reg_byte(const GamepadState *s, unsigned off)
{
    switch (off) {
    case 0x0: return s->buttons & 0xFF;
    case 0x1: return s->buttons >> 8;
    case 0x2: return s->left_trigger;
    case 0x3: return s->right_trigger;
    case 0x4: return (uint16_t)s->lx & 0xFF;
    case 0x5: return (uint16_t)s->lx >> 8;
    case 0x6: return (uint16_t)s->ly & 0xFF;
    case 0x7: return (uint16_t)s->ly >> 8;
    case 0x8: return (uint16_t)s->rx & 0xFF;
    case 0x9: return (uint16_t)s->rx >> 8;
    case 0xA: return (uint16_t)s->ry & 0xFF;
    case 0xB: return (uint16_t)s->ry >> 8;
    case 0xC: return GAMEPAD_STATUS_CONNECTED;
    default:  return -1;
    }
}

uint32_t gamepad_ioport_read(void *opaque, uint32_t port, unsigned size)
{
    Gamepad *pad = opaque;
    uint32_t val = 0;

    /* Any width at any port: bytes little-endian, as x86 port I/O reads
     * consecutive ports. */
    for (unsigned i = 0; i < size && i < 4; i++) {
        uint32_t p = port + i;
        int b = -1;
        if (p >= GAMEPAD_PORT_BASE && p < GAMEPAD_PORT_BASE +
            GAMEPAD_PORT_SIZE) {
            b = gamepad_reg_byte(&pad->latched, p - GAMEPAD_PORT_BASE);
        }
        val |= (uint32_t)(b < 0 ? 0xFF : b) << (8 * i);
    }
    return val;
}

void gamepad_ioport_write(void *opaque, uint32_t port, uint32_t val,
                          unsigned size)
{
    /* All registers are read-only. */
}

/* ---- save states ---- */

static const XblkDeviceDesc gamepad_state_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "gamepad-state",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(GamepadState),
    .fields = (const XblkField[]){
        XBLK_U16(GamepadState, buttons, XBLK_MAX(GAMEPAD_BUTTON_MASK)),
        XBLK_U8(GamepadState, left_trigger),
        XBLK_U8(GamepadState, right_trigger),
        XBLK_I16(GamepadState, lx),
        XBLK_I16(GamepadState, ly),
        XBLK_I16(GamepadState, rx),
        XBLK_I16(GamepadState, ry),
        XBLK_FIELDS_END
    },
};

static const XblkDeviceDesc gamepad_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "gamepad",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(Gamepad),
    .fields = (const XblkField[]){
        XBLK_STRUCT(Gamepad, latched, &gamepad_state_desc, GamepadState),
        XBLK_FIELDS_END
    },
};

const XblkDeviceDesc *gamepad_vmstate(void)
{
    return &gamepad_desc;
}
