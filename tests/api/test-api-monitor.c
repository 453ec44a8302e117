/*
 * test-api-monitor.c - the QMP monitor of libxblk as a host sees it
 * (include/xblk/xblk-monitor.h, linked against libxblk.so only; GLib for
 * GTest, jansson to read the replies as any client would).
 *
 * The engine runs on its own context, driven by the test the way a
 * non-GLib host drives it (prepare, poll the engine's descriptor, then
 * dispatch); the client is the test too, on a real unix socket in a
 * temporary folder, read without blocking between loop turns:
 *
 *   - the greeting, negotiation (and the error before it), ids echoed;
 *   - the engine's commands: query-version, blockdev-add of a qcow2 made
 *     by qemu-img, query-named-block-nodes, a backup job whose events
 *     reach the client, blockdev-del;
 *   - a host command with a schema: success, every argument check with
 *     QEMU's text and the handler not called, the handler's own errors
 *     (GenericError, DeviceNotFound), a reply that breaks the schema, a
 *     command without arguments or return value, a handler removing its
 *     own command;
 *   - query-commands and query-qmp-schema list the host commands (the
 *     schema entry as the definition says, every type resolvable) and
 *     none of the emulator's machine commands;
 *   - host events, to negotiated clients only; bad events refused;
 *   - bad definitions refused with their code and message, nothing
 *     changed; bad listen specs; one monitor per engine; a second
 *     monitor after the first is freed starts clean.
 */
#include <xblk/xblk.h>
#include <xblk/xblk-monitor.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char *tmpdir;

/* ---- the host: engine and monitor ---- */

typedef struct Host {
    XblkEngine *engine;
    XblkMonitor *mon;
    char *sock;
} Host;

static void host_start(Host *h)
{
    XblkError *err = NULL;
    h->engine = xblk_engine_new(NULL, &err);
    g_assert_null(err);
    h->mon = xblk_monitor_new(h->engine, &err);
    g_assert_null(err);
    g_assert_nonnull(h->mon);
    h->sock = g_build_filename(tmpdir, "qmp.sock", NULL);
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off",
                                            h->sock);
    g_assert_true(xblk_monitor_listen(h->mon, spec, &err));
    g_assert_null(err);
    g_assert_true(g_file_test(h->sock, G_FILE_TEST_EXISTS));
}

static void host_stop(Host *h)
{
    xblk_monitor_free(h->mon);
    /* The socket file goes with the monitor. */
    g_assert_false(g_file_test(h->sock, G_FILE_TEST_EXISTS));
    xblk_engine_free(h->engine);
    g_free(h->sock);
}

/* One turn of the host's loop; also wakes when fd (the client) has
 * input. */
static void host_turn(Host *h, int fd, int max_ms)
{
    int t = xblk_engine_prepare(h->engine);
    if (t == 0) {
        return;                 /* callbacks ran: look again */
    }
    struct pollfd p[2] = {
        { .fd = xblk_engine_fd(h->engine), .events = POLLIN },
        { .fd = fd, .events = POLLIN },
    };
    poll(p, fd >= 0 ? 2 : 1, t < 0 || t > max_ms ? max_ms : t);
    g_assert_cmpint(xblk_engine_dispatch(h->engine), >=, 0);
}

/* ---- the client ---- */

typedef struct Client {
    Host *h;
    int fd;
    GString *in;
    GQueue events;              /* of json_t *, in arrival order */
} Client;

static void client_open(Client *c, Host *h)
{
    c->h = h;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(c->fd, >=, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_assert_cmpuint(strlen(h->sock), <, sizeof(sa.sun_path));
    strcpy(sa.sun_path, h->sock);
    /* A listening unix socket accepts into its backlog at once. */
    g_assert_cmpint(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), ==,
                    0);
    g_assert_cmpint(fcntl(c->fd, F_SETFL, O_NONBLOCK), ==, 0);
    c->in = g_string_new(NULL);
    g_queue_init(&c->events);
}

static void client_close(Client *c)
{
    close(c->fd);
    g_string_free(c->in, TRUE);
    g_queue_clear_full(&c->events, (GDestroyNotify)json_decref);
}

/* The next message (one JSON object per line), running the host's loop
 * while none is complete.  NULL if none came within ms. */
static json_t *client_recv_within(Client *c, int ms)
{
    gint64 deadline = g_get_monotonic_time() + ms * 1000;
    for (;;) {
        char *nl = memchr(c->in->str, '\n', c->in->len);
        if (nl) {
            size_t n = nl - c->in->str + 1;
            json_error_t je;
            json_t *j = json_loadb(c->in->str, n, 0, &je);
            if (!j) {
                g_error("bad JSON from the monitor: %s: %.*s", je.text,
                        (int)n, c->in->str);
            }
            g_string_erase(c->in, 0, n);
            return j;
        }
        if (g_get_monotonic_time() > deadline) {
            return NULL;
        }
        host_turn(c->h, c->fd, 20);
        char buf[65536];
        ssize_t r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r > 0) {
            g_string_append_len(c->in, buf, r);
        } else if (r == 0) {
            g_error("the monitor closed the connection");
        } else {
            g_assert_true(errno == EAGAIN || errno == EINTR);
        }
    }
}

static json_t *client_recv(Client *c)
{
    json_t *j = client_recv_within(c, 10000);
    g_assert_nonnull(j);
    return j;
}

static void client_send(Client *c, const char *text)
{
    g_autofree char *line = g_strdup_printf("%s\n", text);
    g_assert_cmpint(send(c->fd, line, strlen(line), MSG_NOSIGNAL), ==,
                    (ssize_t)strlen(line));
}

/* Sends a request and returns its reply; events that arrive first are
 * queued. */
static json_t *client_cmd(Client *c, const char *text)
{
    client_send(c, text);
    for (;;) {
        json_t *j = client_recv(c);
        if (json_object_get(j, "event")) {
            g_queue_push_tail(&c->events, j);
            continue;
        }
        return j;
    }
}

/* A queued or new event called name (the others stay queued). */
static json_t *client_event(Client *c, const char *name)
{
    for (;;) {
        for (GList *l = c->events.head; l; l = l->next) {
            const char *n = json_string_value(json_object_get(l->data,
                                                              "event"));
            if (!strcmp(n, name)) {
                json_t *j = l->data;
                g_queue_delete_link(&c->events, l);
                return j;
            }
        }
        json_t *j = client_recv(c);
        g_assert_nonnull(json_object_get(j, "event"));
        g_queue_push_tail(&c->events, j);
    }
}

static void client_negotiate(Client *c)
{
    json_t *g = client_recv(c);
    g_assert_nonnull(json_object_get(g, "QMP"));
    json_decref(g);
    /* with 'oob': "exec-oob" is refused without it, as in QEMU */
    json_t *r = client_cmd(c, "{\"execute\": \"qmp_capabilities\", "
                           "\"arguments\": {\"enable\": [\"oob\"]}}");
    g_assert_true(json_is_object(json_object_get(r, "return")));
    g_assert_cmpuint(json_object_size(json_object_get(r, "return")), ==, 0);
    json_decref(r);
}

/* The "return" member of a reply (asserting it has one); borrowed from
 * reply. */
static json_t *ret_of(json_t *reply)
{
    json_t *r = json_object_get(reply, "return");
    if (!r) {
        g_autofree char *s = json_dumps(reply, 0);
        g_error("expected a return, got %s", s);
    }
    return r;
}

static void assert_error(json_t *reply, const char *cls, const char *desc)
{
    json_t *e = json_object_get(reply, "error");
    if (!e) {
        g_autofree char *s = json_dumps(reply, 0);
        g_error("expected an error, got %s", s);
    }
    g_assert_cmpstr(json_string_value(json_object_get(e, "class")), ==, cls);
    g_assert_cmpstr(json_string_value(json_object_get(e, "desc")), ==, desc);
    json_decref(reply);
}

static char *new_image(const char *name, const char *size)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    g_unlink(path);
    g_autofree char *cmd = g_strdup_printf("qemu-img create -q -f qcow2 %s "
                                           "%s", path, size);
    int status;
    GError *gerr = NULL;
    g_assert_true(g_spawn_command_line_sync(cmd, NULL, NULL, &status,
                                            &gerr));
    g_assert_no_error(gerr);
    g_assert_true(g_spawn_check_wait_status(status, NULL));
    return path;
}

static bool has_command(Client *c, const char *name)
{
    json_t *r = client_cmd(c, "{\"execute\": \"query-commands\"}");
    bool found = false;
    size_t i;
    json_t *e;
    json_array_foreach(ret_of(r), i, e) {
        found |= !strcmp(json_string_value(json_object_get(e, "name")),
                         name);
    }
    json_decref(r);
    return found;
}

static size_t command_count(Client *c)
{
    json_t *r = client_cmd(c, "{\"execute\": \"query-commands\"}");
    size_t n = json_array_size(ret_of(r));
    json_decref(r);
    return n;
}

/* ---- host commands of the tests ---- */

typedef struct Ping {
    int calls;
    char *last_args;
    bool break_schema;          /* reply {"pong": "no"} */
    bool bad_json;
} Ping;

/* x-host-ping: pong = count + 1, label echoed; negative counts fail. */
static char *ping_handler(const char *args_json, void *opaque,
                          XblkError **err)
{
    Ping *p = opaque;
    p->calls++;
    g_free(p->last_args);
    p->last_args = g_strdup(args_json);
    json_t *a = json_loads(args_json, 0, NULL);
    g_assert_nonnull(a);
    json_int_t count = json_integer_value(json_object_get(a, "count"));
    const char *label = json_string_value(json_object_get(a, "label"));
    char *out = NULL;
    if (count == -1) {
        xblk_error_set(err, XBLK_ERROR_INVALID, "count %d is negative",
                       (int)count);
    } else if (count == -2) {
        xblk_error_set(err, XBLK_ERROR_NOT_FOUND, "Device 'nope' not found");
    } else if (p->break_schema) {
        out = strdup("{\"pong\": \"no\"}");
    } else if (p->bad_json) {
        out = strdup("{\"pong\": ");
    } else {
        json_t *r = json_pack("{s:I}", "pong", count + 1);
        if (label) {
            json_object_set_new(r, "label", json_string(label));
        }
        out = json_dumps(r, JSON_COMPACT);      /* malloc()ed */
        json_decref(r);
    }
    json_decref(a);
    return out;
}

static const char ping_def[] =
    "{\"command\": \"x-host-ping\","
    " \"data\": {\"count\": \"int\", \"*label\": \"str\"},"
    " \"returns\": {\"pong\": \"int\", \"*label\": \"str\"},"
    " \"features\": [\"unstable\"]}";

static int nop_calls;

static char *nop_handler(const char *args_json, void *opaque,
                         XblkError **err)
{
    g_assert_cmpstr(args_json, ==, "{}");
    nop_calls++;
    return NULL;                /* no "returns": the reply is {} */
}

static char *never_handler(const char *args_json, void *opaque,
                           XblkError **err)
{
    g_assert_not_reached();
}

static int list_calls;

static char *list_handler(const char *args_json, void *opaque,
                          XblkError **err)
{
    list_calls++;
    return strdup("[{\"name\": \"a\", \"size\": 1}]");
}

static char *self_remove_handler(const char *args_json, void *opaque,
                                 XblkError **err)
{
    Host *h = opaque;
    g_assert_true(xblk_monitor_remove_command(h->mon, "x-host-once", NULL));
    return strdup("[1, 2]");
}

/* ---- tests ---- */

static void test_protocol_and_engine_commands(void)
{
    Host h;
    host_start(&h);
    Client c;
    client_open(&c, &h);
    json_t *g = client_recv(&c);
    json_t *ver = json_object_get(json_object_get(g, "QMP"), "version");
    g_assert_cmpint(json_integer_value(json_object_get(
        json_object_get(ver, "qemu"), "major")), ==, 7);
    g_assert_cmpstr(json_string_value(json_array_get(json_object_get(
        json_object_get(g, "QMP"), "capabilities"), 0)), ==, "oob");
    json_decref(g);
    g_assert_cmpuint(xblk_monitor_client_count(h.mon), ==, 1);

    /* Nothing before negotiation. */
    assert_error(client_cmd(&c, "{\"execute\": \"query-version\"}"),
                 "CommandNotFound", "Expecting capabilities negotiation "
                 "with 'qmp_capabilities'");
    json_t *r = client_cmd(&c, "{\"execute\": \"qmp_capabilities\"}");
    ret_of(r);
    json_decref(r);

    /* The id comes back as the client wrote it. */
    r = client_cmd(&c, "{\"execute\": \"query-version\", \"id\": 42}");
    g_assert_cmpint(json_integer_value(json_object_get(r, "id")), ==, 42);
    const char *pkg = json_string_value(json_object_get(ret_of(r),
                                                        "package"));
    g_autofree char *want = g_strdup_printf("xblk %s",
                                            xblk_version_string());
    g_assert_cmpstr(pkg, ==, want);
    json_decref(r);

    /* The emulator's machine commands are not the engine's. */
    assert_error(client_cmd(&c, "{\"execute\": \"stop\"}"), "CommandNotFound",
                 "The command stop has not been found");
    g_assert_false(has_command(&c, "quit"));
    g_assert_false(has_command(&c, "human-monitor-command"));

    /* blockdev-add, the node listed, then a backup job between two. */
    g_autofree char *src = new_image("src.qcow2", "16M");
    g_autofree char *dst = new_image("dst.qcow2", "16M");
    g_autofree char *add = g_strdup_printf(
        "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": "
        "\"qcow2\", \"node-name\": \"src\", \"file\": {\"driver\": \"file\","
        " \"filename\": \"%s\"}}}", src);
    r = client_cmd(&c, add);
    g_assert_cmpuint(json_object_size(ret_of(r)), ==, 0);
    json_decref(r);
    /* The same node name twice is refused. */
    r = client_cmd(&c, add);
    g_assert_nonnull(json_object_get(r, "error"));
    json_decref(r);
    g_free(add);
    add = g_strdup_printf(
        "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": "
        "\"qcow2\", \"node-name\": \"dst\", \"file\": {\"driver\": \"file\","
        " \"filename\": \"%s\"}}}", dst);
    r = client_cmd(&c, add);
    ret_of(r);
    json_decref(r);
    r = client_cmd(&c, "{\"execute\": \"query-named-block-nodes\", "
                   "\"arguments\": {\"flat\": true}}");
    bool seen = false;
    size_t i;
    json_t *n;
    json_array_foreach(ret_of(r), i, n) {
        if (!strcmp(json_string_value(json_object_get(n, "node-name")),
                    "src")) {
            seen = true;
            g_assert_cmpstr(json_string_value(json_object_get(n, "drv")),
                            ==, "qcow2");
            g_assert_cmpstr(json_string_value(json_object_get(n, "file")),
                            ==, src);
            g_assert_cmpint(json_integer_value(json_object_get(
                json_object_get(n, "image"), "virtual-size")), ==,
                16 * 1024 * 1024);
        }
    }
    g_assert_true(seen);
    json_decref(r);

    /* The engine's job events reach the client. */
    r = client_cmd(&c, "{\"execute\": \"blockdev-backup\", \"arguments\": "
                   "{\"job-id\": \"j0\", \"device\": \"src\", \"target\": "
                   "\"dst\", \"sync\": \"full\"}}");
    ret_of(r);
    json_decref(r);
    json_t *ev = client_event(&c, "BLOCK_JOB_COMPLETED");
    json_t *data = json_object_get(ev, "data");
    g_assert_cmpstr(json_string_value(json_object_get(data, "device")), ==,
                    "j0");
    g_assert_cmpstr(json_string_value(json_object_get(data, "type")), ==,
                    "backup");
    g_assert_nonnull(json_object_get(ev, "timestamp"));
    json_decref(ev);
    /* Dismissed on its own (auto-dismiss), as QEMU does. */
    for (;;) {
        ev = client_event(&c, "JOB_STATUS_CHANGE");
        bool gone = !strcmp(json_string_value(json_object_get(
            json_object_get(ev, "data"), "status")), "null");
        json_decref(ev);
        if (gone) {
            break;
        }
    }

    r = client_cmd(&c, "{\"execute\": \"blockdev-del\", \"arguments\": "
                   "{\"node-name\": \"src\"}}");
    ret_of(r);
    json_decref(r);
    r = client_cmd(&c, "{\"execute\": \"blockdev-del\", \"arguments\": "
                   "{\"node-name\": \"dst\"}}");
    ret_of(r);
    json_decref(r);
    r = client_cmd(&c, "{\"execute\": \"query-named-block-nodes\"}");
    g_assert_cmpuint(json_array_size(ret_of(r)), ==, 0);
    json_decref(r);

    client_close(&c);
    host_stop(&h);
}

static void test_host_command(void)
{
    Host h;
    host_start(&h);
    Ping ping = { 0 };
    XblkError *err = NULL;
    g_assert_true(xblk_monitor_add_command(h.mon, ping_def, ping_handler,
                                           &ping, &err));
    g_assert_null(err);
    Client c;
    client_open(&c, &h);
    client_negotiate(&c);

    json_t *r = client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                           "\"arguments\": {\"count\": 41, \"label\": "
                           "\"a\"}}");
    g_assert_cmpint(json_integer_value(json_object_get(ret_of(r), "pong")),
                    ==, 42);
    g_assert_cmpstr(json_string_value(json_object_get(ret_of(r), "label")),
                    ==, "a");
    json_decref(r);
    g_assert_cmpint(ping.calls, ==, 1);
    g_assert_cmpstr(ping.last_args, ==, "{\"count\":41,\"label\":\"a\"}");
    /* Optional members may be left out. */
    r = client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                   "\"arguments\": {\"count\": 1}}");
    g_assert_cmpint(json_integer_value(json_object_get(ret_of(r), "pong")),
                    ==, 2);
    g_assert_null(json_object_get(ret_of(r), "label"));
    json_decref(r);
    g_assert_cmpint(ping.calls, ==, 2);

    /* Every check runs before the handler, with QEMU's texts. */
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-ping\"}"),
                 "GenericError", "Parameter 'count' is missing");
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                            "\"arguments\": {\"label\": \"a\"}}"),
                 "GenericError", "Parameter 'count' is missing");
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                            "\"arguments\": {\"count\": 1, \"x\": 2}}"),
                 "GenericError", "Parameter 'x' is unexpected");
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                            "\"arguments\": {\"count\": \"1\"}}"),
                 "GenericError",
                 "Invalid parameter type for 'count', expected: integer");
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                            "\"arguments\": {\"count\": 1.5}}"),
                 "GenericError",
                 "Invalid parameter type for 'count', expected: integer");
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                            "\"arguments\": {\"count\": 1, \"label\": 7}}"),
                 "GenericError",
                 "Invalid parameter type for 'label', expected: string");
    g_assert_cmpint(ping.calls, ==, 2);

    /* The handler's own errors: the message, the class from the code. */
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                            "\"arguments\": {\"count\": -1}}"),
                 "GenericError", "count -1 is negative");
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                            "\"arguments\": {\"count\": -2}}"),
                 "DeviceNotFound", "Device 'nope' not found");
    g_assert_cmpint(ping.calls, ==, 4);

    /* A reply the schema does not allow never reaches the client. */
    ping.break_schema = true;
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                            "\"arguments\": {\"count\": 1}}"),
                 "GenericError", "command 'x-host-ping' returned a value "
                 "its definition does not allow: Invalid parameter type for "
                 "'return.pong', expected: integer");
    ping.break_schema = false;
    ping.bad_json = true;
    r = client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                   "\"arguments\": {\"count\": 1}}");
    json_t *e = json_object_get(r, "error");
    g_assert_cmpstr(json_string_value(json_object_get(e, "class")), ==,
                    "GenericError");
    g_assert_true(g_str_has_prefix(json_string_value(json_object_get(
        e, "desc")), "the command's reply is not valid JSON"));
    json_decref(r);
    ping.bad_json = false;

    /* No arguments, no return value. */
    g_assert_true(xblk_monitor_add_command(h.mon, "{\"command\": "
                                           "\"x-host-nop\"}", nop_handler,
                                           NULL, &err));
    r = client_cmd(&c, "{\"execute\": \"x-host-nop\"}");
    g_assert_true(json_is_object(ret_of(r)));
    g_assert_cmpuint(json_object_size(ret_of(r)), ==, 0);
    json_decref(r);
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-nop\", "
                            "\"arguments\": {\"a\": 1}}"),
                 "GenericError", "Parameter 'a' is unexpected");
    g_assert_cmpint(nop_calls, ==, 1);

    /* Nested types: arrays and objects, with the generated code's
     * paths in messages. */
    g_assert_true(xblk_monitor_add_command(
        h.mon, "{\"command\": \"x-host-nest\", \"data\": {\"l\": "
        "[\"uint8\"], \"*o\": {\"b\": \"bool\"}}, \"returns\": [\"int\"]}",
        never_handler, NULL, &err));
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-nest\", "
                            "\"arguments\": {\"l\": [1, \"2\"]}}"),
                 "GenericError",
                 "Invalid parameter type for 'l[1]', expected: integer");
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-nest\", "
                            "\"arguments\": {\"l\": [300]}}"),
                 "GenericError", "Parameter 'l[0]' expects uint8_t");
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-nest\", "
                            "\"arguments\": {\"l\": [], \"o\": {}}}"),
                 "GenericError", "Parameter 'o.b' is missing");
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-nest\", "
                            "\"arguments\": {\"l\": {}}}"),
                 "GenericError",
                 "Invalid parameter type for 'l', expected: array");

    /* A handler that removes its own command. */
    g_assert_true(xblk_monitor_add_command(
        h.mon, "{\"command\": \"x-host-once\", \"returns\": [\"int\"]}",
        self_remove_handler, &h, &err));
    r = client_cmd(&c, "{\"execute\": \"x-host-once\"}");
    g_assert_cmpuint(json_array_size(ret_of(r)), ==, 2);
    json_decref(r);
    assert_error(client_cmd(&c, "{\"execute\": \"x-host-once\"}"),
                 "CommandNotFound", "The command x-host-once has not been "
                 "found");
    g_assert_null(err);

    client_close(&c);
    host_stop(&h);
    g_free(ping.last_args);
}

/* The type an introspection name stands for. */
static json_t *schema_entry(json_t *schema, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(schema, i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "name")), name)) {
            return e;
        }
    }
    return NULL;
}

static json_t *schema_member(json_t *obj, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(obj, "members"), i, m) {
        if (!strcmp(json_string_value(json_object_get(m, "name")), name)) {
            return m;
        }
    }
    return NULL;
}

static void test_introspection(void)
{
    Host h;
    host_start(&h);
    Ping ping = { 0 };
    Client c;
    client_open(&c, &h);
    client_negotiate(&c);
    g_assert_false(has_command(&c, "x-host-ping"));
    json_t *before = client_cmd(&c, "{\"execute\": \"query-qmp-schema\"}");
    g_assert_null(schema_entry(ret_of(before), "x-host-ping"));

    g_assert_true(xblk_monitor_add_command(h.mon, ping_def, ping_handler,
                                           &ping, NULL));
    g_assert_true(xblk_monitor_add_command(
        h.mon, "{\"command\": \"x-host-list\", \"data\": {\"*names\": "
        "[\"str\"]}, \"returns\": [{\"name\": \"str\", \"size\": "
        "\"uint64\"}], \"allow-oob\": true}", list_handler, NULL, NULL));
    g_assert_true(has_command(&c, "x-host-ping"));
    g_assert_true(has_command(&c, "x-host-list"));
    g_assert_true(has_command(&c, "query-version"));

    json_t *r = client_cmd(&c, "{\"execute\": \"query-qmp-schema\"}");
    json_t *schema = ret_of(r);
    /* Two commands more, and the engine's entries as they were. */
    size_t i;
    json_t *e;
    json_array_foreach(ret_of(before), i, e) {
        json_t *now = schema_entry(schema,
                                   json_string_value(json_object_get(e,
                                                                     "name")));
        g_assert_nonnull(now);
        g_assert_true(json_equal(now, e));
    }
    json_t *cmd = schema_entry(schema, "x-host-ping");
    g_assert_nonnull(cmd);
    g_assert_cmpstr(json_string_value(json_object_get(cmd, "meta-type")),
                    ==, "command");
    g_assert_null(json_object_get(cmd, "allow-oob"));
    g_assert_cmpstr(json_string_value(json_array_get(json_object_get(
        cmd, "features"), 0)), ==, "unstable");
    json_t *args = schema_entry(schema, json_string_value(
        json_object_get(cmd, "arg-type")));
    g_assert_cmpstr(json_string_value(json_object_get(args, "meta-type")),
                    ==, "object");
    g_assert_cmpuint(json_array_size(json_object_get(args, "members")), ==,
                     2);
    json_t *count = schema_member(args, "count");
    g_assert_cmpstr(json_string_value(json_object_get(count, "type")), ==,
                    "int");
    g_assert_null(json_object_get(count, "default"));
    json_t *label = schema_member(args, "label");
    g_assert_cmpstr(json_string_value(json_object_get(label, "type")), ==,
                    "str");
    g_assert_true(json_is_null(json_object_get(label, "default")));
    json_t *ret = schema_entry(schema, json_string_value(
        json_object_get(cmd, "ret-type")));
    g_assert_nonnull(schema_member(ret, "pong"));
    /* Arguments and return value are distinct types. */
    g_assert_true(args != ret);

    json_t *list = schema_entry(schema, "x-host-list");
    g_assert_true(json_is_true(json_object_get(list, "allow-oob")));
    json_t *la = schema_entry(schema, json_string_value(
        json_object_get(list, "arg-type")));
    json_t *names = schema_member(la, "names");
    json_t *arr = schema_entry(schema, json_string_value(
        json_object_get(names, "type")));
    g_assert_cmpstr(json_string_value(json_object_get(arr, "meta-type")),
                    ==, "array");
    g_assert_cmpstr(json_string_value(json_object_get(arr, "element-type")),
                    ==, "str");
    json_t *lr = schema_entry(schema, json_string_value(
        json_object_get(list, "ret-type")));
    g_assert_cmpstr(json_string_value(json_object_get(lr, "meta-type")),
                    ==, "array");
    json_t *elem = schema_entry(schema, json_string_value(
        json_object_get(lr, "element-type")));
    g_assert_cmpstr(json_string_value(json_object_get(
        schema_member(elem, "size"), "type")), ==, "int");

    /* Every name is defined once and every type reference resolves; the
     * commands of the schema are exactly those of query-commands. */
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
    json_array_foreach(schema, i, e) {
        const char *n = json_string_value(json_object_get(e, "name"));
        g_assert_false(g_hash_table_contains(seen, n));
        g_hash_table_add(seen, (gpointer)n);
    }
    size_t ncmds = 0;
    json_array_foreach(schema, i, e) {
        const char *mt = json_string_value(json_object_get(e, "meta-type"));
        static const char *const refs[] = { "arg-type", "ret-type",
                                            "element-type" };
        for (size_t k = 0; k < G_N_ELEMENTS(refs); k++) {
            const char *t = json_string_value(json_object_get(e, refs[k]));
            g_assert_true(!t || g_hash_table_contains(seen, t));
        }
        size_t j;
        json_t *m;
        json_array_foreach(json_object_get(e, "members"), j, m) {
            const char *t = json_string_value(json_object_get(m, "type"));
            g_assert_true(!t || g_hash_table_contains(seen, t));
        }
        if (!strcmp(mt, "command")) {
            ncmds++;
            g_assert_true(has_command(&c, json_string_value(
                json_object_get(e, "name"))));
        }
    }
    g_assert_cmpuint(ncmds, ==, command_count(&c));
    g_hash_table_destroy(seen);
    json_decref(r);

    /* exec-oob only for the command that allows it. */
    r = client_cmd(&c, "{\"exec-oob\": \"x-host-list\"}");
    g_assert_cmpstr(json_string_value(json_object_get(json_array_get(
        ret_of(r), 0), "name")), ==, "a");
    g_assert_cmpint(list_calls, ==, 1);
    json_decref(r);
    assert_error(client_cmd(&c, "{\"exec-oob\": \"x-host-ping\", "
                            "\"arguments\": {\"count\": 1}}"),
                 "GenericError", "The command x-host-ping does not support "
                 "OOB");

    /* Removed: gone from both lists; the schema is the engine's again. */
    XblkError *err = NULL;
    g_assert_true(xblk_monitor_remove_command(h.mon, "x-host-ping", &err));
    g_assert_true(xblk_monitor_remove_command(h.mon, "x-host-list", &err));
    g_assert_false(xblk_monitor_remove_command(h.mon, "x-host-list", &err));
    g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_NOT_FOUND);
    xblk_error_free(err);
    err = NULL;
    g_assert_false(xblk_monitor_remove_command(h.mon, "query-version",
                                               &err));
    g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_NOT_FOUND);
    xblk_error_free(err);
    g_assert_true(has_command(&c, "query-version"));
    g_assert_false(has_command(&c, "x-host-ping"));
    r = client_cmd(&c, "{\"execute\": \"query-qmp-schema\"}");
    g_assert_true(json_equal(ret_of(r), ret_of(before)));
    json_decref(r);
    json_decref(before);

    client_close(&c);
    host_stop(&h);
    g_free(ping.last_args);
}

static void test_events(void)
{
    Host h;
    host_start(&h);
    Client c, quiet;
    client_open(&c, &h);
    client_negotiate(&c);
    client_open(&quiet, &h);
    json_t *g = client_recv(&quiet);        /* greeting; no negotiation */
    json_decref(g);

    XblkError *err = NULL;
    g_assert_true(xblk_monitor_emit_event(h.mon, "HOST_SAVED",
                                          "{\"slot\": 3, \"name\": \"x\"}",
                                          &err));
    g_assert_null(err);
    g_assert_true(xblk_monitor_emit_event(h.mon, "HOST_PAUSED", NULL, &err));
    json_t *ev = client_recv(&c);
    g_assert_cmpstr(json_string_value(json_object_get(ev, "event")), ==,
                    "HOST_SAVED");
    json_t *data = json_object_get(ev, "data");
    g_assert_cmpint(json_integer_value(json_object_get(data, "slot")), ==, 3);
    g_assert_cmpstr(json_string_value(json_object_get(data, "name")), ==,
                    "x");
    json_t *ts = json_object_get(ev, "timestamp");
    g_assert_cmpint(json_integer_value(json_object_get(ts, "seconds")), >,
                    1600000000);
    g_assert_true(json_is_integer(json_object_get(ts, "microseconds")));
    json_decref(ev);
    ev = client_recv(&c);
    g_assert_cmpstr(json_string_value(json_object_get(ev, "event")), ==,
                    "HOST_PAUSED");
    g_assert_null(json_object_get(ev, "data"));
    json_decref(ev);

    /* A client that has not negotiated gets no events: its next message
     * is the reply to its negotiation. */
    json_t *r = client_cmd(&quiet, "{\"execute\": \"qmp_capabilities\"}");
    ret_of(r);
    json_decref(r);
    g_assert_true(g_queue_is_empty(&quiet.events));

    /* Refused, and nobody gets anything. */
    static const struct {
        const char *name, *data;
        XblkErrorCode code;
        const char *msg;
    } bad[] = {
        { "host_saved", NULL, XBLK_ERROR_INVALID,
          "event name 'host_saved' should be ALL_CAPS" },
        { "", NULL, XBLK_ERROR_INVALID, "event name '' should be ALL_CAPS" },
        { NULL, NULL, XBLK_ERROR_INVALID, "event name '' should be ALL_CAPS" },
        { "JOB_STATUS_CHANGE", "{}", XBLK_ERROR_EXISTS,
          "event 'JOB_STATUS_CHANGE' is one of the engine's events" },
        { "HOST_X", "[1]", XBLK_ERROR_INVALID,
          "the data of event 'HOST_X' must be a JSON object" },
        { "HOST_X", "{", XBLK_ERROR_INVALID, NULL },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        err = NULL;
        g_assert_false(xblk_monitor_emit_event(h.mon, bad[i].name,
                                               bad[i].data, &err));
        g_assert_cmpint(xblk_error_code(err), ==, bad[i].code);
        if (bad[i].msg) {
            g_assert_cmpstr(xblk_error_message(err), ==, bad[i].msg);
        }
        xblk_error_free(err);
    }
    g_assert_null(client_recv_within(&c, 200));
    g_assert_false(xblk_monitor_emit_event(NULL, "HOST_X", NULL, NULL));

    client_close(&quiet);
    client_close(&c);
    host_stop(&h);
}

static void test_bad_definitions(void)
{
    Host h;
    host_start(&h);
    Ping ping = { 0 };
    g_assert_true(xblk_monitor_add_command(h.mon, ping_def, ping_handler,
                                           &ping, NULL));
    Client c;
    client_open(&c, &h);
    client_negotiate(&c);
    size_t ncmds = command_count(&c);
    json_t *schema = client_cmd(&c, "{\"execute\": \"query-qmp-schema\"}");

    static const struct {
        const char *def;
        XblkErrorCode code;
        const char *msg;            /* NULL: any text */
    } bad[] = {
        { NULL, XBLK_ERROR_INVALID, "the command definition is missing" },
        { "{\"command\": ", XBLK_ERROR_INVALID, NULL },
        { "[\"x-a\"]", XBLK_ERROR_INVALID,
          "a command definition must be a JSON object" },
        { "{\"data\": {}}", XBLK_ERROR_INVALID,
          "the definition lacks 'command' (the command's name)" },
        { "{\"command\": 7}", XBLK_ERROR_INVALID,
          "name of command must be a string" },
        { "{\"command\": \"X_Ping\"}", XBLK_ERROR_INVALID,
          "command name 'X_Ping' should use lowercase and '-'" },
        { "{\"command\": \"\"}", XBLK_ERROR_INVALID,
          "command name '' should use lowercase and '-'" },
        { "{\"command\": \"x-a\", \"boxed\": true}", XBLK_ERROR_INVALID,
          "command 'x-a' has unknown key 'boxed'" },
        { "{\"command\": \"x-a\", \"data\": \"Foo\"}", XBLK_ERROR_INVALID,
          "'data' of command 'x-a' must be an object of members" },
        { "{\"command\": \"x-a\", \"data\": {\"n\": \"integer\"}}",
          XBLK_ERROR_INVALID, "type of member 'n' of command 'x-a': unknown "
          "type 'integer' (a built-in type, [type] or an object of "
          "members)" },
        { "{\"command\": \"x-a\", \"data\": {\"Big\": \"int\"}}",
          XBLK_ERROR_INVALID, "member name 'Big' of command 'x-a' should "
          "use lowercase and '-'" },
        { "{\"command\": \"x-a\", \"data\": {\"n\": \"int\", \"*n\": "
          "\"str\"}}", XBLK_ERROR_INVALID,
          "member 'n' of command 'x-a' is defined twice" },
        { "{\"command\": \"x-a\", \"data\": {\"n\": [\"int\", \"str\"]}}",
          XBLK_ERROR_INVALID, "type of member 'n' of command 'x-a': an "
          "array type is a list of exactly one type that is not an array, "
          "as ['str']" },
        { "{\"command\": \"x-a\", \"returns\": [[\"int\"]]}",
          XBLK_ERROR_INVALID, "'returns' of command 'x-a': an array type "
          "is a list of exactly one type that is not an array, as "
          "['str']" },
        { "{\"command\": \"x-a\", \"returns\": 3}", XBLK_ERROR_INVALID,
          "'returns' of command 'x-a' must be a type name, [type] or an "
          "object of members" },
        { "{\"command\": \"x-a\", \"allow-oob\": false}", XBLK_ERROR_INVALID,
          "flag 'allow-oob' may only use true value" },
        { "{\"command\": \"x-a\", \"features\": \"deprecated\"}",
          XBLK_ERROR_INVALID, "'features' of command 'x-a' must be a list" },
        { "{\"command\": \"x-a\", \"features\": [\"a\", \"a\"]}",
          XBLK_ERROR_INVALID, "duplicate feature 'a' of command 'x-a'" },
        { "{\"command\": \"query-version\"}", XBLK_ERROR_EXISTS,
          "command 'query-version' is one of the engine's commands" },
        { "{\"command\": \"query-qmp-schema\"}", XBLK_ERROR_EXISTS,
          "command 'query-qmp-schema' is one of the engine's commands" },
        { "{\"command\": \"qmp_capabilities\"}", XBLK_ERROR_INVALID,
          "command name 'qmp_capabilities' should use lowercase and '-'" },
        { "{\"command\": \"blockdev-add\", \"data\": {\"x\": \"int\"}}",
          XBLK_ERROR_EXISTS,
          "command 'blockdev-add' is one of the engine's commands" },
        { "{\"command\": \"x-host-ping\"}", XBLK_ERROR_EXISTS,
          "command 'x-host-ping' is already defined" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        XblkError *err = NULL;
        g_assert_false(xblk_monitor_add_command(h.mon, bad[i].def,
                                                ping_handler, &ping, &err));
        g_assert_nonnull(err);
        g_assert_cmpint(xblk_error_code(err), ==, bad[i].code);
        if (bad[i].msg) {
            g_assert_cmpstr(xblk_error_message(err), ==, bad[i].msg);
        }
        xblk_error_free(err);
    }
    XblkError *err = NULL;
    g_assert_false(xblk_monitor_add_command(h.mon, "{\"command\": \"x-b\"}",
                                            NULL, NULL, &err));
    g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_INVALID);
    xblk_error_free(err);
    err = NULL;
    g_assert_false(xblk_monitor_add_command(NULL, "{\"command\": \"x-b\"}",
                                            ping_handler, NULL, &err));
    g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_INVALID);
    xblk_error_free(err);

    /* Nothing changed: the same commands, the same schema, and the first
     * x-host-ping still answers with its own handler. */
    g_assert_cmpuint(command_count(&c), ==, ncmds);
    g_assert_false(has_command(&c, "x-a"));
    json_t *now = client_cmd(&c, "{\"execute\": \"query-qmp-schema\"}");
    g_assert_true(json_equal(ret_of(now), ret_of(schema)));
    json_decref(now);
    json_decref(schema);
    json_t *r = client_cmd(&c, "{\"execute\": \"x-host-ping\", "
                           "\"arguments\": {\"count\": 9}}");
    g_assert_cmpint(json_integer_value(json_object_get(ret_of(r), "pong")),
                    ==, 10);
    json_decref(r);
    r = client_cmd(&c, "{\"execute\": \"query-version\"}");
    ret_of(r);
    json_decref(r);

    client_close(&c);
    host_stop(&h);
    g_free(ping.last_args);
}

static void test_lifecycle(void)
{
    Host h;
    host_start(&h);
    XblkError *err = NULL;

    /* One monitor per engine; none without the engine. */
    g_assert_null(xblk_monitor_new(h.engine, &err));
    g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_BUSY);
    xblk_error_free(err);
    err = NULL;
    g_assert_null(xblk_monitor_new(NULL, &err));
    g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_INVALID);
    xblk_error_free(err);

    /* Bad specs are the host's mistake; a missing folder is not. */
    static const char *const bad_specs[] = {
        "unix:/tmp/x.sock",                 /* not a server */
        "unix:/tmp/x.sock,server=on,bogus=1",
        "unix:,server=on",
        "fifo:/tmp/x,server=on",
        "tcp:127.0.0.1,server=on",          /* no port */
        "tcp:8.8.8.8:4444,server=on,wait=off",
        "",
        NULL,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad_specs); i++) {
        err = NULL;
        g_assert_false(xblk_monitor_listen(h.mon, bad_specs[i], &err));
        g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_INVALID);
        xblk_error_free(err);
    }
    g_autofree char *missing = g_strdup_printf(
        "unix:%s/no/such/dir/q.sock,server=on,wait=off", tmpdir);
    err = NULL;
    g_assert_false(xblk_monitor_listen(h.mon, missing, &err));
    g_assert_cmpint(xblk_error_code(err), ==, XBLK_ERROR_NOT_FOUND);
    xblk_error_free(err);

    /* A second socket, over loopback TCP. */
    int port = 20000 + getpid() % 20000;
    bool listening = false;
    for (int tries = 0; tries < 20 && !listening; tries++) {
        g_autofree char *tcp = g_strdup_printf(
            "tcp:127.0.0.1:%d,server=on,wait=off", ++port);
        err = NULL;
        listening = xblk_monitor_listen(h.mon, tcp, &err);
        xblk_error_free(err);       /* in use: the next port */
    }
    g_assert_true(listening);
    {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = { .sin_family = AF_INET,
                                   .sin_port = htons(port),
                                   .sin_addr.s_addr = htonl(0x7f000001) };
        g_assert_cmpint(connect(fd, (struct sockaddr *)&sin, sizeof(sin)),
                        ==, 0);
        g_assert_cmpint(fcntl(fd, F_SETFL, O_NONBLOCK), ==, 0);
        Client t = { .h = &h, .fd = fd, .in = g_string_new(NULL) };
        g_queue_init(&t.events);
        client_negotiate(&t);
        json_t *r = client_cmd(&t, "{\"execute\": \"query-version\"}");
        ret_of(r);
        json_decref(r);
        client_close(&t);
    }

    /* A client still connected when the monitor goes. */
    Ping ping = { 0 };
    g_assert_true(xblk_monitor_add_command(h.mon, ping_def, ping_handler,
                                           &ping, NULL));
    Client c;
    client_open(&c, &h);
    client_negotiate(&c);
    host_stop(&h);
    char b;
    g_assert_cmpint(recv(c.fd, &b, 1, MSG_DONTWAIT), ==, 0);   /* EOF */
    client_close(&c);

    /* A new engine and monitor start clean: no host commands. */
    host_start(&h);
    client_open(&c, &h);
    client_negotiate(&c);
    g_assert_false(has_command(&c, "x-host-ping"));
    g_assert_true(xblk_monitor_add_command(h.mon, ping_def, ping_handler,
                                           &ping, NULL));
    g_assert_true(has_command(&c, "x-host-ping"));
    client_close(&c);
    host_stop(&h);
    g_free(ping.last_args);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("test-api-monitor-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    g_test_add_func("/api/monitor/protocol-and-engine",
                    test_protocol_and_engine_commands);
    g_test_add_func("/api/monitor/host-command", test_host_command);
    g_test_add_func("/api/monitor/introspection", test_introspection);
    g_test_add_func("/api/monitor/events", test_events);
    g_test_add_func("/api/monitor/bad-definitions", test_bad_definitions);
    g_test_add_func("/api/monitor/lifecycle", test_lifecycle);
    int ret = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf %s", tmpdir);
    g_assert_true(g_spawn_command_line_sync(cmd, NULL, NULL, NULL, NULL));
    g_free(tmpdir);
    return ret;
}
