/*
 * qmp-server.c - QMP over unix and TCP sockets on the main loop.
 *
 * Each client has a JsonStream splitting its input, a queue of parsed
 * requests and an output buffer.  In-band requests run one at a time
 * from a bottom half (never nested inside another command that polls the
 * loop), so commands never see each other half-done.  Out-of-band ones
 * (QEMU's rule: "exec-oob" without "execute") run the moment they are
 * read - also while an in-band command polls the loop - so their reply
 * may overtake earlier replies, as QEMU's spec allows.
 *
 * Bounds (docs/qmp.md), so that no client can stall the others or grow
 * memory without limit:
 *   - at most QMP_MAX_CLIENTS connections; one more gets a QMP error and
 *     is closed;
 *   - QEMU's JSON limits (json-stream.h), refused with QEMU's errors;
 *   - QEMU's request queue: reading a client pauses while 8 of its
 *     requests wait (1 without 'oob'), so a command flood waits in the
 *     socket, not in memory;
 *   - a client that stops reading has its input paused once 8 MiB of
 *     output wait, and is dropped beyond 64 MiB - or beyond 1 MiB while
 *     all clients together hold more than 256 MiB (an event flood to
 *     many silent clients).  Nobody else notices either.
 *
 * Addresses: unix sockets are created 0600; TCP binds the host the spec
 * names (with a warning if it is not loopback: there is no
 * authentication) and 127.0.0.1 when it names none.
 *
 * Every source lives on the engine's context (aio_context()): the loop an
 * embedder drives runs the monitor too.  The command table is
 * monitor_commands() (qmp-cmds.c).
 */
#include "monitor/json-stream.h"
#include "monitor/monitor.h"
#include "qapi/engine-qapi-commands.h"
#include "qapi/qapi-builtin-visit.h"
#include "util/error.h"
#include "util/main-loop.h"
#include "util/version.h"
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define QMP_OUT_PAUSE (8u << 20)
#define QMP_OUT_DROP (64u << 20)
#define QMP_OUT_TOTAL (256u << 20)
#define QMP_OUT_DROP_CROWDED (1u << 20)
#define QMP_MAX_CLIENTS 64
#define QMP_REQ_QUEUE_LEN_MAX 8      /* QEMU's */
#define QMP_DISPATCH_SLICE_US 2000   /* then the loop polls again */

typedef struct QmpListener {
    int fd;
    guint watch;
    char *unix_path;
} QmpListener;

typedef struct QmpClient {
    int fd;
    guint in_watch;
    guint out_watch;
    JsonStream stream;
    GQueue requests;         /* of QueuedRequest* */
    GString *out;
    bool negotiated;
    bool oob;                /* negotiated with "enable": ["oob"] */
    bool closing;
} QmpClient;

typedef struct QueuedRequest {
    json_t *req;             /* NULL: refused, the desc in error */
    char *raw_id;            /* the "id" member as the client wrote it */
    GPtrArray *big;          /* big unsigned integers marked in req */
    char *error;
} QueuedRequest;

static GPtrArray *listeners;
static GList *clients;
/* Closed clients: a dispatch in progress may still hold one, so they are
 * freed once none runs (from a bottom half, at the end of a dispatch, or
 * by monitor_cleanup - which must leave nothing behind for an embedder
 * that frees the engine right after). */
static GList *zombies;
static bool dispatching;
static bool dispatch_scheduled;
static bool cleaning_up;
static size_t total_out;     /* output waiting, all clients together */

static void client_free(gpointer p)
{
    QmpClient *c = p;
    json_stream_destroy(&c->stream);
    g_free(c);
}

static void free_zombies(void *opaque)
{
    if (!dispatching) {
        g_list_free_full(zombies, client_free);
        zombies = NULL;
    }
}

unsigned monitor_client_count(void)
{
    return g_list_length(clients);
}

/* ---- output ---- */

static void client_close(QmpClient *c);
static gboolean client_readable(gint fd, GIOCondition cond, gpointer opaque);

static void client_update_input(QmpClient *c)
{
    if (c->fd < 0) {
        return;
    }
    guint queue_max = c->oob ? QMP_REQ_QUEUE_LEN_MAX : 1;
    bool want = !c->closing && c->out->len < QMP_OUT_PAUSE &&
                g_queue_get_length(&c->requests) < queue_max;
    if (want && !c->in_watch) {
        c->in_watch = aio_fd_add(c->fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                    client_readable, c);
    } else if (!want && c->in_watch) {
        aio_source_remove(c->in_watch);
        c->in_watch = 0;
    }
}

static bool client_flush(QmpClient *c)
{
    while (c->out->len > 0) {
        ssize_t n = send(c->fd, c->out->str, c->out->len,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return true;
            }
            return false;     /* peer gone */
        }
        g_string_erase(c->out, 0, n);
        total_out -= n;
    }
    return true;
}

static gboolean client_writable(gint fd, GIOCondition cond, gpointer opaque)
{
    QmpClient *c = opaque;
    if (!client_flush(c)) {
        c->out_watch = 0;
        client_close(c);
        return G_SOURCE_REMOVE;
    }
    client_update_input(c);
    if (c->out->len == 0) {
        c->out_watch = 0;
        if (c->closing) {
            client_close(c);
        }
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void client_send_text(QmpClient *c, const char *text)
{
    if (c->fd < 0) {
        return;
    }
    size_t before = c->out->len;
    g_string_append(c->out, text);
    g_string_append(c->out, "\r\n");
    total_out += c->out->len - before;
    if (c->out->len > QMP_OUT_DROP ||
        (total_out > QMP_OUT_TOTAL && c->out->len > QMP_OUT_DROP_CROWDED)) {
        client_close(c);      /* never reads: cut it loose */
        return;
    }
    if (!client_flush(c)) {
        client_close(c);
        return;
    }
    if (c->out->len > 0 && !c->out_watch) {
        c->out_watch = aio_fd_add(c->fd, G_IO_OUT, client_writable, c);
    }
    client_update_input(c);
}

static void client_send_json(QmpClient *c, json_t *j, const char *raw_id)
{
    char *s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (raw_id) {
        /* Splice the id back exactly as the client wrote it. */
        size_t len = strlen(s);
        g_autofree char *t = g_strdup_printf("%.*s, \"id\": %s}",
                                             (int)(len - 1), s, raw_id);
        client_send_text(c, t);
    } else {
        client_send_text(c, s);
    }
    free(s);
}

/* ---- input ---- */

/* Finds the raw text of the top-level member `key` of an object text. */
static char *raw_member(const char *t, size_t len, const char *key)
{
    int depth = 0;
    size_t klen = strlen(key);
    bool expect_key = false;
    for (size_t i = 0; i < len; i++) {
        char ch = t[i];
        if (ch == '"') {
            size_t start = i++;
            for (; i < len && t[i] != '"'; i++) {
                if (t[i] == '\\') {
                    i++;
                }
            }
            if (depth == 1 && expect_key && i - start - 1 == klen &&
                !strncmp(t + start + 1, key, klen)) {
                size_t j = i + 1;
                while (j < len && g_ascii_isspace(t[j])) {
                    j++;
                }
                if (j >= len || t[j] != ':') {
                    continue;
                }
                j++;
                while (j < len && g_ascii_isspace(t[j])) {
                    j++;
                }
                size_t vstart = j;
                int d = 0;
                bool str = false;
                for (; j < len; j++) {
                    if (str) {
                        if (t[j] == '\\') {
                            j++;
                        } else if (t[j] == '"') {
                            str = false;
                        }
                        continue;
                    }
                    if (t[j] == '"') {
                        str = true;
                    } else if (t[j] == '{' || t[j] == '[') {
                        d++;
                    } else if (t[j] == '}' || t[j] == ']') {
                        if (d == 0) {
                            break;
                        }
                        d--;
                    } else if (t[j] == ',' && d == 0) {
                        break;
                    }
                }
                size_t vend = j;
                while (vend > vstart && g_ascii_isspace(t[vend - 1])) {
                    vend--;
                }
                return g_strndup(t + vstart, vend - vstart);
            }
            expect_key = false;
            continue;
        }
        if (ch == '{') {
            depth++;
            expect_key = depth == 1;
        } else if (ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            depth--;
        } else if (ch == ',' && depth == 1) {
            expect_key = true;
        }
    }
    return NULL;
}

/* The marker of a big unsigned integer while jansson parses: a string no
 * client can guess (a per-process nonce after a control character). */
static const char *big_marker(void)
{
    static char marker[48];
    if (!marker[0]) {
        g_snprintf(marker, sizeof(marker), "\001xblk-u64-%08x%08x:",
                   g_random_int(), g_random_int());
    }
    return marker;
}

/* Rewrites the integers jansson cannot hold: 2^63 .. 2^64-1 into marker
 * strings, the others (beyond uint64, below int64) into reals. */
static GString *rewrite_big_integers(const char *t, size_t len)
{
    GString *out = g_string_sized_new(len + 64);
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char ch = t[i];
        if (in_str) {
            g_string_append_c(out, ch);
            if (ch == '\\' && i + 1 < len) {
                g_string_append_c(out, t[++i]);
            } else if (ch == '"') {
                in_str = false;
            }
            continue;
        }
        if (ch == '"') {
            in_str = true;
            g_string_append_c(out, ch);
            continue;
        }
        if (ch != '-' && !g_ascii_isdigit(ch)) {
            g_string_append_c(out, ch);
            continue;
        }
        size_t j = i + 1;
        bool integer = true;
        while (j < len && (g_ascii_isalnum(t[j]) || t[j] == '.' ||
                           t[j] == '+' || t[j] == '-')) {
            if (!g_ascii_isdigit(t[j])) {
                integer = false;
            }
            j++;
        }
        g_autofree char *tok = g_strndup(t + i, j - i);
        bool digits = integer && (tok[0] != '-' || tok[1]);
        if (digits) {
            errno = 0;
            (void)g_ascii_strtoll(tok, NULL, 10);
            if (errno == ERANGE) {
                errno = 0;
                guint64 u = g_ascii_strtoull(tok, NULL, 10);
                if (tok[0] != '-' && errno != ERANGE) {
                    g_string_append_printf(out, "\"\\u0001%s%" G_GUINT64_FORMAT
                                           "\"", big_marker() + 1, u);
                } else {
                    g_string_append_printf(out, "%s.0", tok);
                }
                i = j - 1;
                continue;
            }
        }
        g_string_append(out, tok);
        i = j - 1;
    }
    return out;
}

/* Replaces the marker strings under j by marked integers; returns the
 * replacement for j itself, or NULL. */
static json_t *unmark_tree(json_t *j, GPtrArray *big)
{
    const char *m = big_marker();
    if (json_is_string(j)) {
        const char *v = json_string_value(j);
        if (g_str_has_prefix(v, m)) {
            guint64 u = g_ascii_strtoull(v + strlen(m), NULL, 10);
            json_t *n = json_integer((json_int_t)u);
            qapi_json_mark_big_uint(n);
            g_ptr_array_add(big, n);
            return n;
        }
    } else if (json_is_object(j)) {
        const char *key;
        json_t *v;
        json_object_foreach(j, key, v) {
            json_t *n = unmark_tree(v, big);
            if (n) {
                json_object_set_new(j, key, n);
            }
        }
    } else if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            json_t *n = unmark_tree(json_array_get(j, i), big);
            if (n) {
                json_array_set_new(j, i, n);
            }
        }
    }
    return NULL;
}

void qmp_request_free_big(GPtrArray *big)
{
    if (big) {
        for (guint i = 0; i < big->len; i++) {
            qapi_json_unmark_big_uint(big->pdata[i]);
        }
        g_ptr_array_free(big, TRUE);
    }
}

json_t *qmp_parse_request(const char *text, size_t len, GPtrArray **big,
                          char **error)
{
    json_error_t je;
    size_t flags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES;
    *big = NULL;
    json_t *j = json_loadb(text, len, flags, &je);
    if (!j && strstr(je.text, "too big")) {
        /* Integers beyond int64 (an id, a uint64 size): as QEMU reads
         * them - exact up to 2^64-1, reals beyond. */
        g_autoptr(GString) t = rewrite_big_integers(text, len);
        j = json_loadb(t->str, t->len, flags, &je);
        if (j) {
            *big = g_ptr_array_new();
            json_t *n = unmark_tree(j, *big);
            if (n) {
                /* the whole text was one big integer: n is ours alone */
                json_decref(j);
                j = n;
            }
        }
    }
    if (!j) {
        *error = g_strdup_printf("JSON parse error, %s",
                                 strstr(je.text, "duplicate object key")
                                 ? "duplicate key" : je.text);
    }
    return j;
}

static void error_to_client(QmpClient *c, const char *msg)
{
    json_t *e = json_pack("{s:{s:s,s:s}}", "error", "class", "GenericError",
                          "desc", msg);
    client_send_json(c, e, NULL);
    json_decref(e);
}

/* Whether a successful qmp_capabilities switched 'oob' on. */
static bool enables_oob(json_t *req)
{
    json_t *en = json_object_get(json_object_get(req, "arguments"),
                                 "enable");
    size_t i;
    json_t *v;
    json_array_foreach(en, i, v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), "oob")) {
            return true;
        }
    }
    return false;
}

static void process_request(QmpClient *c, QueuedRequest *r)
{
    if (!r->req) {
        error_to_client(c, r->error);
        return;
    }
    bool negotiate = false;
    json_t *reply = qmp_dispatch_oob(monitor_commands(), r->req,
                                     c->negotiated, c->oob, &negotiate);
    if (negotiate) {
        c->negotiated = true;
        c->oob = enables_oob(r->req);
    }
    if (reply) {
        client_send_json(c, reply, r->raw_id);
        json_decref(reply);
    }
}

static void queued_free(QueuedRequest *r)
{
    qmp_request_free_big(r->big);
    json_decref(r->req);
    g_free(r->raw_id);
    g_free(r->error);
    g_free(r);
}

static QueuedRequest *queued_new(const char *text, size_t len,
                                 const char *error)
{
    QueuedRequest *r = g_new0(QueuedRequest, 1);
    if (!text) {
        /* QEMU reports its limits bare, other splitter errors as parse
         * errors. */
        r->error = g_str_has_suffix(error, "limit exceeded")
                   ? g_strdup(error)
                   : g_strdup_printf("JSON parse error, %s", error);
        return r;
    }
    r->req = qmp_parse_request(text, len, &r->big, &r->error);
    if (json_is_object(r->req) && json_object_get(r->req, "id")) {
        r->raw_id = raw_member(text, len, "id");
    }
    return r;
}

/* QEMU's test: "exec-oob" and no "execute". */
static bool is_oob(json_t *req)
{
    return json_is_object(req) && json_object_get(req, "exec-oob") &&
           !json_object_get(req, "execute");
}

static void dispatch_bh(void *opaque);

static void schedule_dispatch(void)
{
    if (!dispatch_scheduled) {
        dispatch_scheduled = true;
        aio_bh_schedule(dispatch_bh, NULL);
    }
}

static gboolean dispatch_timeout(gpointer opaque)
{
    dispatch_bh(opaque);
    return G_SOURCE_REMOVE;
}

/*
 * The rest of a flood, after the sources of default priority had their
 * turn.  A bottom half would not do: bottom halves run at
 * G_PRIORITY_HIGH, and GLib dispatches nothing of lower priority while
 * a higher one is ready, so a dispatch that rescheduled itself as one
 * kept the other clients' sockets and the machine's timers waiting for
 * as long as the flood lasted.
 */
static void schedule_dispatch_yielding(void)
{
    if (!dispatch_scheduled) {
        dispatch_scheduled = true;
        aio_timeout_add(0, dispatch_timeout, NULL);
    }
}

/* Runs queued requests, one client request at a time, round-robin, for
 * at most QMP_DISPATCH_SLICE_US before the loop gets a turn. */
static void dispatch_bh(void *opaque)
{
    dispatch_scheduled = false;
    if (dispatching) {
        return;              /* the outer invocation picks them up */
    }
    dispatching = true;
    bool progress = true;
    gint64 start = g_get_monotonic_time();
    while (progress) {
        if (g_get_monotonic_time() - start > QMP_DISPATCH_SLICE_US) {
            /* a flood: let the loop poll (guest I/O completions, timers,
             * other sockets) before the rest */
            schedule_dispatch_yielding();
            break;
        }
        progress = false;
        GList *snapshot = g_list_copy(clients);
        for (GList *l = snapshot; l; l = l->next) {
            QmpClient *c = l->data;
            if (!g_list_find(clients, c) || c->closing) {
                continue;
            }
            QueuedRequest *r = g_queue_pop_head(&c->requests);
            if (r) {
                client_update_input(c);     /* room in the queue again */
                process_request(c, r);
                queued_free(r);
                progress = true;
            }
        }
        g_list_free(snapshot);
    }
    dispatching = false;
    free_zombies(NULL);
}

static void stream_emit(void *opaque, const char *text, size_t len,
                        const char *error)
{
    QmpClient *c = opaque;
    if (c->fd < 0) {
        return;              /* closed by an earlier value of this read */
    }
    QueuedRequest *r = queued_new(text, len, error);
    if (is_oob(r->req)) {
        process_request(c, r);      /* now, even inside another command */
        queued_free(r);
        return;
    }
    g_queue_push_tail(&c->requests, r);
    schedule_dispatch();
}

static gboolean client_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    QmpClient *c = opaque;
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        c->in_watch = 0;
        client_close(c);
        return G_SOURCE_REMOVE;
    }
    json_stream_feed(&c->stream, buf, n);
    if (c->fd < 0) {
        return G_SOURCE_REMOVE;     /* closed meanwhile (c is a zombie) */
    }
    client_update_input(c);         /* a full queue pauses reading */
    return c->in_watch ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static json_t *greeting(void)
{
    return json_pack("{s:{s:{s:{s:i,s:i,s:i},s:s},s:[s]}}", "QMP", "version",
                     "qemu", "micro", 0, "minor", 2, "major", 7, "package",
                     "xblk " XBLK_VERSION_STRING, "capabilities", "oob");
}

static void client_close(QmpClient *c)
{
    if (c->fd < 0) {
        return;
    }
    if (c->in_watch) {
        aio_source_remove(c->in_watch);
        c->in_watch = 0;
    }
    if (c->out_watch) {
        aio_source_remove(c->out_watch);
        c->out_watch = 0;
    }
    close(c->fd);
    c->fd = -1;
    clients = g_list_remove(clients, c);
    /* the stream may be feeding right now: freed with the zombie */
    QueuedRequest *r;
    while ((r = g_queue_pop_head(&c->requests))) {
        queued_free(r);
    }
    total_out -= c->out->len;
    g_string_free(c->out, TRUE);
    c->out = NULL;
    zombies = g_list_prepend(zombies, c);
    if (!cleaning_up) {
        aio_bh_schedule(free_zombies, NULL);
    }
}

static gboolean listener_accept(gint fd, GIOCondition cond, gpointer opaque)
{
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd < 0) {
        return G_SOURCE_CONTINUE;
    }
    if (g_list_length(clients) >= QMP_MAX_CLIENTS) {
        /* refused with a QMP error in place of the greeting */
        static const char msg[] = "{\"error\": {\"class\": \"GenericError\", "
            "\"desc\": \"too many QMP clients (at most 64)\"}}\r\n";
        G_STATIC_ASSERT(QMP_MAX_CLIENTS == 64);
        ssize_t n = send(cfd, msg, sizeof(msg) - 1,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
        close(cfd);
        return G_SOURCE_CONTINUE;
    }
    QmpClient *c = g_new0(QmpClient, 1);
    c->fd = cfd;
    c->out = g_string_new(NULL);
    g_queue_init(&c->requests);
    json_stream_init(&c->stream, stream_emit, c);
    clients = g_list_append(clients, c);
    json_t *g = greeting();
    client_send_json(c, g, NULL);
    json_decref(g);
    client_update_input(c);
    return G_SOURCE_CONTINUE;
}

void qapi_event_emit(const char *event_name, json_t *data)
{
    gint64 now = g_get_real_time();
    json_t *ev = json_object();
    json_object_set_new(ev, "timestamp",
                        json_pack("{s:I,s:I}", "seconds",
                                  (json_int_t)(now / G_USEC_PER_SEC),
                                  "microseconds",
                                  (json_int_t)(now % G_USEC_PER_SEC)));
    json_object_set_new(ev, "event", json_string(event_name));
    if (data) {
        json_object_set_new(ev, "data", data);
    }
    GList *snapshot = g_list_copy(clients);
    for (GList *l = snapshot; l; l = l->next) {
        QmpClient *c = l->data;
        if (g_list_find(clients, c) && c->negotiated) {
            client_send_json(c, ev, NULL);
        }
    }
    g_list_free(snapshot);
    json_decref(ev);
}

/* ---- yank: QEMU's out-of-band commands ---- */

/* xblk has nothing to yank (no NBD nodes, socket chardevs or migration
 * stream): the list is empty and every named instance is unknown.  They
 * matter as the commands a client may send out of band. */
YankInstanceList *qmp_query_yank(GError **errp)
{
    return NULL;
}

void qmp_yank(YankInstanceList *instances, GError **errp)
{
    if (instances) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Instance not found");
    }
}

/* ---- listening ---- */

static bool parse_spec_opts(char **parts, bool *wait, GError **errp)
{
    *wait = true;
    bool server = false;
    for (int i = 1; parts[i]; i++) {
        if (!strcmp(parts[i], "server") || !strcmp(parts[i], "server=on")) {
            server = true;
        } else if (!strcmp(parts[i], "server=off")) {
            server = false;
        } else if (!strcmp(parts[i], "wait=off") ||
                   !strcmp(parts[i], "nowait")) {
            *wait = false;
        } else if (!strcmp(parts[i], "wait=on") || !strcmp(parts[i], "wait")) {
            *wait = true;
        } else {
            error_setg(errp, "Invalid parameter '%s'", parts[i]);
            return false;
        }
    }
    if (!server) {
        error_setg(errp, "QMP sockets must be servers here (server=on)");
        return false;
    }
    return true;
}

static int listen_unix(const char *path, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);        /* a stale socket from an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    mode_t old = umask(0177);     /* created 0600: only the owner connects */
    int ret = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (ret < 0 || listen(fd, QMP_MAX_CLIENTS) < 0) {
        error_setg_errno(errp, errno, "Failed to bind socket to %s", path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        /* ::ffff:127.x.y.z reaches the IPv4 loopback only */
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127);
    }
    return false;
}

/*
 * TCP binds the host the spec names - any address of this machine,
 * 0.0.0.0 and :: included, as QEMU does - and 127.0.0.1 when the host
 * part is empty ("tcp::4444"), where QEMU would bind every address: the
 * monitor has no authentication, so reaching beyond this machine must
 * be asked for explicitly (issue 14), and then earns a warning.
 * *bad_spec stays true for an address that can never work here: a spec
 * that does not parse or resolve, or a host that is not one of this
 * machine's addresses (EADDRNOTAVAIL).
 */
static int listen_tcp(const char *hostport, bool *bad_spec, GError **errp)
{
    const char *colon = strrchr(hostport, ':');
    if (!colon) {
        error_setg(errp, "TCP address '%s' lacks a port", hostport);
        return -1;
    }
    g_autofree char *host = g_strndup(hostport, colon - hostport);
    size_t hlen = strlen(host);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = 0;
    }
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE }, *res;
    int gai = getaddrinfo(*host ? host : "127.0.0.1", colon + 1, &hints, &res);
    if (gai) {
        error_setg(errp, "address resolution failed for %s: %s", hostport,
                   gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    0);
    int one = 1, zero = 0;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (fd >= 0 && res->ai_family == AF_INET6) {
        /* "[::]" takes IPv4 too, whatever the host's bindv6only says */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
        listen(fd, QMP_MAX_CLIENTS) < 0) {
        int err = errno;
        *bad_spec = err == EADDRNOTAVAIL;
        error_setg_errno(errp, err, "Failed to bind socket to %s",
                         hostport);
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(res);
        return -1;
    }
    *bad_spec = false;
    if (!is_loopback(res->ai_addr)) {
        char addr[NI_MAXHOST] = "?";
        getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof(addr), NULL,
                    0, NI_NUMERICHOST);
        g_autofree char *where = strcmp(host, addr) ?
            g_strdup_printf("%s (%s)", host, addr) : g_strdup(addr);
        warn_report("QMP listens on %s port %s, which is not a loopback "
                    "address: the monitor has no authentication, anyone "
                    "who can reach it controls the machine", where,
                    colon + 1);
    }
    freeaddrinfo(res);
    return fd;
}

bool monitor_add_qmp(const char *spec, GError **errp)
{
    bool bad_spec;
    return monitor_listen(spec, &bad_spec, errp);
}

bool monitor_listen(const char *spec, bool *bad_spec, GError **errp)
{
    *bad_spec = true;
    if (!spec || !*spec) {
        error_setg(errp, "QMP address is empty");
        return false;
    }
    g_auto(GStrv) parts = g_strsplit(spec, ",", -1);
    bool wait;
    if (!parse_spec_opts(parts, &wait, errp)) {
        return false;
    }
    QmpListener *l = g_new0(QmpListener, 1);
    if (!strcmp(parts[0], "unix:")) {
        error_setg(errp, "UNIX socket path is empty");
        l->fd = -1;
    } else if (g_str_has_prefix(parts[0], "unix:")) {
        l->unix_path = g_strdup(parts[0] + 5);
        *bad_spec = strlen(l->unix_path) >= sizeof(((struct sockaddr_un *)
                                                     NULL)->sun_path);
        l->fd = listen_unix(l->unix_path, errp);
    } else if (g_str_has_prefix(parts[0], "tcp:")) {
        l->fd = listen_tcp(parts[0] + 4, bad_spec, errp);
    } else {
        error_setg(errp, "QMP address '%s' must start with unix: or tcp:",
                   parts[0]);
        l->fd = -1;
    }
    if (l->fd < 0) {
        g_free(l->unix_path);
        g_free(l);
        return false;
    }
    l->watch = aio_fd_add(l->fd, G_IO_IN, listener_accept, l);
    if (!listeners) {
        listeners = g_ptr_array_new();
    }
    g_ptr_array_add(listeners, l);
    if (wait) {
        AIO_POLL_WHILE(monitor_client_count() == 0);
    }
    return true;
}

void monitor_flush_all(void)
{
    for (int i = 0; i < 1000; i++) {
        bool pending = false;
        for (GList *l = clients; l; l = l->next) {
            QmpClient *c = l->data;
            pending |= c->out->len > 0;
        }
        if (!pending) {
            return;
        }
        aio_poll(false);
        g_usleep(1000);
    }
}

void monitor_cleanup(void)
{
    monitor_flush_all();
    cleaning_up = true;
    while (clients) {
        client_close(clients->data);
    }
    free_zombies(NULL);
    cleaning_up = false;
    for (guint i = 0; listeners && i < listeners->len; i++) {
        QmpListener *l = g_ptr_array_index(listeners, i);
        aio_source_remove(l->watch);
        close(l->fd);
        if (l->unix_path) {
            unlink(l->unix_path);
            g_free(l->unix_path);
        }
        g_free(l);
    }
    if (listeners) {
        g_ptr_array_free(listeners, TRUE);
        listeners = NULL;
    }
}
