/*
 * json-stream.h - splits a QMP byte stream into complete JSON texts.
 *
 * Bytes are fed as they arrive; every time a top-level JSON value is
 * complete, the callback gets its text (not NUL-terminated) or, for bad
 * input, an error message in QEMU's words ("stray '@'", "JSON nesting
 * depth limit exceeded").  Parsing the text itself is left to jansson.
 *
 * Limits keep a hostile client from exhausting memory: nesting depth
 * 1024, message size 64 MiB, tokens per message 2 Mi (QEMU's values and
 * error texts: "JSON nesting depth limit exceeded", "JSON token size
 * limit exceeded", "JSON token count limit exceeded").  A value over a
 * limit is refused with one error as soon as the limit is crossed; the
 * rest of it is then read and dropped (brackets and strings still
 * tracked, nothing kept), so it costs no memory and no further errors.
 * (QEMU instead reports every token of the remainder.)  A 0xFF byte
 * (never valid in UTF-8) resets the splitter, which is how clients
 * resynchronize.
 */
#ifndef XBLK_MONITOR_JSON_STREAM_H
#define XBLK_MONITOR_JSON_STREAM_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

#define JSON_STREAM_MAX_DEPTH 1024
#define JSON_STREAM_MAX_SIZE (64u << 20)
#define JSON_STREAM_MAX_TOKENS (2u << 20)

/* text/len: a complete value; or text NULL and error set. */
typedef void JsonStreamFunc(void *opaque, const char *text, size_t len,
                            const char *error);

typedef struct JsonStream {
    JsonStreamFunc *emit;
    void *opaque;
    GString *buf;            /* the value being collected */
    int depth;
    bool in_string;
    bool escape;
    bool in_scalar;          /* inside a top-level number or keyword */
    size_t tokens;
    bool skipping;           /* refused: dropping until the value ends */
} JsonStream;

void json_stream_init(JsonStream *js, JsonStreamFunc *emit, void *opaque);
void json_stream_feed(JsonStream *js, const char *data, size_t len);
/* End of input: reports an incomplete value as an error. */
void json_stream_flush(JsonStream *js);
void json_stream_destroy(JsonStream *js);

#endif
