/*
 * fuzz-qmp.c - libFuzzer target: a QMP client's byte stream, split by
 * monitor/json-stream.c and each complete request dispatched through
 * monitor/qmp-dispatch.c with the engine's command table, without
 * sockets.
 *
 * Per input:
 *   1. the bytes go through one JsonStream in one piece and through a
 *      second one in 7-byte pieces (then json_stream_flush on both); the
 *      two must emit the same texts and errors - the splitter does not
 *      depend on how the bytes arrive (a violated invariant aborts);
 *   2. each text is parsed as the server parses it (qmp_parse_request:
 *      duplicate keys refused, integers in [2^63, 2^64) kept exact and
 *      marked, other integers beyond int64 read as reals) and dispatched
 *      with the negotiation state of a fresh client, each reply encoded
 *      as the server would send it.
 *
 * Commands: the engine's table (monitor_commands()) minus blockdev-add,
 * the one command that opens files by name with no node to start from.
 * The process has no block nodes, so every other command that could
 * create or write a file (snapshot-sync, drive-backup, transaction) is
 * refused at its node lookup, before any file name is used.
 * Nothing persists between inputs except counters (x-query-transaction-
 * stats), so runs are deterministic.
 *
 * The server's own id splicing (qmp-server.c's raw_member) is static to
 * the server and is not reached here.
 */
#include "fuzz-common.h"
#include "monitor/json-stream.h"
#include "monitor/monitor.h"

typedef struct Emitted {
    GPtrArray *items;           /* GString: "T<text>" or "E<error>" */
} Emitted;

static void emit(void *opaque, const char *text, size_t len,
                 const char *error)
{
    Emitted *e = opaque;
    GString *s = g_string_new(text ? "T" : "E");
    if (text) {
        g_string_append_len(s, text, len);
    } else {
        g_string_append(s, error ? error : "(null)");
    }
    g_ptr_array_add(e->items, s);
}

static QmpCommandList *cmds;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    cmds = monitor_commands();
    qmp_unregister_command(cmds, "blockdev-add");
    return 0;
}

static void free_item(gpointer p)
{
    g_string_free(p, TRUE);
}

static void dispatch(const GString *item, bool *negotiated)
{
    json_t *reply = NULL;
    if (item->str[0] == 'E') {
        reply = json_pack("{s:{s:s,s:s}}", "error", "class", "GenericError",
                          "desc", item->str + 1);
    } else {
        /* parsed as the server parses it (big unsigned integers too) */
        GPtrArray *big = NULL;
        char *error = NULL;
        json_t *req = qmp_parse_request(item->str + 1, item->len - 1, &big,
                                        &error);
        if (!req) {
            g_free(error);
            return;
        }
        bool negotiate = false;
        reply = qmp_dispatch(cmds, req, *negotiated, &negotiate);
        if (negotiate) {
            *negotiated = true;
        }
        qmp_request_free_big(big);
        json_decref(req);
    }
    if (reply) {
        char *s = json_dumps(reply, JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        free(s);
        json_decref(reply);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cmds) {
        LLVMFuzzerInitialize(NULL, NULL);
    }
    Emitted whole = { g_ptr_array_new_with_free_func(free_item) };
    Emitted parts = { g_ptr_array_new_with_free_func(free_item) };
    JsonStream a, b;
    json_stream_init(&a, emit, &whole);
    json_stream_init(&b, emit, &parts);
    json_stream_feed(&a, (const char *)data, size);
    for (size_t off = 0; off < size; off += 7) {
        json_stream_feed(&b, (const char *)data + off, MIN(7, size - off));
    }
    json_stream_flush(&a);
    json_stream_flush(&b);
    json_stream_destroy(&a);
    json_stream_destroy(&b);

    if (whole.items->len != parts.items->len) {
        fprintf(stderr, "json-stream: %u values in one piece, %u in "
                "7-byte pieces\n", whole.items->len, parts.items->len);
        abort();
    }
    for (guint i = 0; i < whole.items->len; i++) {
        const GString *x = whole.items->pdata[i], *y = parts.items->pdata[i];
        if (x->len != y->len || memcmp(x->str, y->str, x->len)) {
            fprintf(stderr, "json-stream: value %u differs:\n%s\n%s\n", i,
                    x->str, y->str);
            abort();
        }
    }

    bool negotiated = false;
    for (guint i = 0; i < whole.items->len; i++) {
        dispatch(whole.items->pdata[i], &negotiated);
    }
    g_ptr_array_free(whole.items, TRUE);
    g_ptr_array_free(parts.items, TRUE);
    return 0;
}
