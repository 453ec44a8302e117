/*
 * json-stream.c - see json-stream.h.  A small state machine that knows
 * strings, escapes and bracket depth; everything else is jansson's job.
 * Feeding is byte by byte: how the bytes are split never changes what is
 * emitted (tests/fuzz/fuzz-qmp.c checks it).
 */
#include "monitor/json-stream.h"
#include <string.h>

void json_stream_init(JsonStream *js, JsonStreamFunc *emit, void *opaque)
{
    memset(js, 0, sizeof(*js));
    js->emit = emit;
    js->opaque = opaque;
    js->buf = g_string_new(NULL);
}

void json_stream_destroy(JsonStream *js)
{
    if (js->buf) {
        g_string_free(js->buf, TRUE);
        js->buf = NULL;
    }
}

static void reset(JsonStream *js)
{
    g_string_truncate(js->buf, 0);
    js->depth = 0;
    js->in_string = js->escape = js->in_scalar = false;
    js->tokens = 0;
    js->skipping = false;
}

static void emit_value(JsonStream *js)
{
    if (!js->skipping) {
        js->emit(js->opaque, js->buf->str, js->buf->len, NULL);
    }
    reset(js);
}

/* A limit was hit: one error now, then the rest of the value is read
 * (strings and brackets tracked, bytes dropped) without further errors. */
static void refuse_value(JsonStream *js, const char *msg)
{
    js->skipping = true;
    g_string_truncate(js->buf, 0);
    /* give back a huge buffer: a refused value holds no memory */
    if (js->buf->allocated_len > 65536) {
        g_string_free(js->buf, TRUE);
        js->buf = g_string_new(NULL);
    }
    js->emit(js->opaque, NULL, 0, msg);
}

static void emit_error(JsonStream *js, const char *msg)
{
    reset(js);
    js->emit(js->opaque, NULL, 0, msg);
}

static bool is_scalar_char(char c)
{
    return g_ascii_isalnum(c) || c == '-' || c == '+' || c == '.';
}

static void append(JsonStream *js, char c)
{
    if (js->skipping) {
        return;
    }
    if (js->buf->len >= JSON_STREAM_MAX_SIZE) {
        refuse_value(js, "JSON token size limit exceeded");
        return;
    }
    g_string_append_c(js->buf, c);
}

/* The text of a stray byte as QEMU reports it: the character itself,
 * U+FFFD for a byte that is not ASCII (jansson then escapes either). */
static void stray(JsonStream *js, unsigned char c)
{
    char msg[32];
    if (c >= 0x80) {
        g_snprintf(msg, sizeof(msg), "stray '\xef\xbf\xbd'");
    } else if (c == 0) {
        g_snprintf(msg, sizeof(msg), "stray '\\u0000'");
    } else {
        g_snprintf(msg, sizeof(msg), "stray '%c'", c);
    }
    emit_error(js, msg);
}

/* One byte inside a string. */
static void feed_string(JsonStream *js, char c)
{
    append(js, c);
    if (js->escape) {
        js->escape = false;
    } else if (c == '\\') {
        js->escape = true;
    } else if (c == '"') {
        js->in_string = false;
        if (js->depth == 0) {
            emit_value(js);
        }
    }
}

void json_stream_feed(JsonStream *js, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if ((unsigned char)c == 0xff) {
            stray(js, 0xff);      /* also ends any refused value */
            continue;
        }
        if (js->in_string) {
            feed_string(js, c);
            continue;
        }
        if (js->in_scalar) {
            if (is_scalar_char(c)) {
                append(js, c);
                continue;
            }
            emit_value(js);       /* a top-level number or keyword ended */
        }
        switch (c) {
        case ' ': case '\t': case '\r': case '\n':
            if (js->depth > 0) {
                append(js, c);
            }
            continue;
        case '"':
            js->in_string = true;
            js->tokens++;
            append(js, c);
            continue;
        case '{': case '[':
            if (++js->depth > JSON_STREAM_MAX_DEPTH && !js->skipping) {
                refuse_value(js, "JSON nesting depth limit exceeded");
                continue;
            }
            if (js->depth > (1 << 30)) {
                reset(js);        /* refused long ago: start afresh */
                continue;
            }
            js->tokens++;
            append(js, c);
            continue;
        case '}': case ']':
            if (js->depth == 0) {
                emit_error(js, "expecting value");
                continue;
            }
            js->tokens++;
            append(js, c);
            if (--js->depth == 0) {
                emit_value(js);
            }
            continue;
        default:
            break;
        }
        if (!is_scalar_char(c) && c != ',' && c != ':') {
            if (js->skipping && js->depth > 0) {
                continue;         /* inside a refused value: no more noise */
            }
            stray(js, (unsigned char)c);
            continue;
        }
        if (js->depth == 0) {
            if (c == ',' || c == ':') {
                emit_error(js, "expecting value");
                continue;
            }
            js->in_scalar = true;
        }
        js->tokens++;
        append(js, c);
        if (js->tokens > JSON_STREAM_MAX_TOKENS && !js->skipping) {
            refuse_value(js, "JSON token count limit exceeded");
        }
    }
}

void json_stream_flush(JsonStream *js)
{
    if (js->in_scalar) {
        emit_value(js);
    } else if (js->skipping) {
        reset(js);
    } else if (js->buf->len > 0) {
        emit_error(js, "unexpected end of input");
    }
}
