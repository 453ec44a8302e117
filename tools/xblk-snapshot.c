/*
 * xblk-snapshot - virsh's domain-snapshot commands for one xblk machine.
 *
 * Owns the command line only: virsh's verbs (snapshot-create ...
 * snapshot-delete) with virsh's option names, argument forms, messages
 * and output formats, plus `validate FILE`, which checks a document
 * locally with the engine's parser.  Every other verb runs the
 * x-xblk-snapshot-* commands that snapshot/domain-json.h defines, either
 * over QMP (-c unix:PATH, a running xblk-system) or in this process on a
 * stopped machine's catalog (--offline DIR, dsnap_json_call()): both
 * paths send the same JSON and format the same replies, so the engine
 * alone decides what is allowed.
 *
 * Output follows virsh: a failure is one or more "error: ..." lines on
 * stderr and exit status 1; "extra" output (confirmations, the table
 * header, the blank line that ends every command) is left out with -q,
 * as virsh -q does.
 */
#include "snapshot/domain-json.h"
#include "snapshot/domainsnapshot.h"
#include "util/error.h"
#include "util/version.h"
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netdb.h>
#include <unistd.h>

/* Bounds what a misbehaving monitor can make us buffer (DESIGN rule 5). */
#define SNAP_QMP_MAX_MESSAGE (64 * 1024 * 1024)

/* ---- output, as virsh prints it ---- */

static bool snap_quiet;

/* virsh's vshPrintExtra: output that -q suppresses. */
static void G_GNUC_PRINTF(1, 2) snap_extra(const char *fmt, ...)
{
    if (snap_quiet) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* "error: MESSAGE" on stderr; stdout is flushed first so that 2>&1
 * keeps the order in which things happened. */
static void G_GNUC_PRINTF(1, 2) snap_error(const char *fmt, ...)
{
    fflush(stdout);
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "error: %s\n", msg);
    fflush(stderr);
}

static void snap_error_free(GError *err)
{
    snap_error("%s", err->message);
    g_error_free(err);
}

/* ---- command-line model: virsh's option kinds ---- */

typedef enum {
    OPT_BOOL,                   /* --flag */
    OPT_STRING,                 /* --opt VALUE, --opt=VALUE */
    OPT_ARGV,                   /* repeatable string */
} SnapOptType;

enum {
    OPT_POSITIONAL = 1 << 0,    /* may also be given without its --name */
    OPT_REQUIRED = 1 << 1,
};

typedef struct SnapOptDef {
    const char *name;
    SnapOptType type;
    unsigned flags;
    const char *help;
} SnapOptDef;

#define SNAP_MAX_OPTS 24

typedef struct SnapVerb SnapVerb;

/* One verb's parsed options, indexed like its SnapOptDef table. */
typedef struct SnapArgs {
    const SnapVerb *verb;
    bool present[SNAP_MAX_OPTS];
    char *value[SNAP_MAX_OPTS];         /* last value (owned) */
    GPtrArray *argv[SNAP_MAX_OPTS];     /* OPT_ARGV values (owned) */
} SnapArgs;

/* Where the commands go: a QMP socket or an offline catalog. */
typedef struct SnapConn {
    const char *uri;            /* -c */
    const char *offline_dir;    /* --offline */
    bool open;
    int fd;
    GByteArray *rbuf;
    DsnapDomain *domain;
} SnapConn;

typedef bool SnapVerbFn(SnapConn *c, SnapArgs *a);

struct SnapVerb {
    const char *name;
    SnapVerbFn *run;
    const SnapOptDef *opts;
    const char *synopsis;       /* what follows the verb in the usage */
    const char *summary;        /* one line for the overall help */
    const char *description;
};

static int snap_opt_index(const SnapVerb *v, const char *name)
{
    for (int i = 0; v->opts[i].name; i++) {
        if (!strcmp(v->opts[i].name, name)) {
            return i;
        }
    }
    return -1;
}

static bool snap_has(const SnapArgs *a, const char *name)
{
    int i = snap_opt_index(a->verb, name);
    g_assert(i >= 0);
    return a->present[i];
}

static const char *snap_str(const SnapArgs *a, const char *name)
{
    int i = snap_opt_index(a->verb, name);
    g_assert(i >= 0);
    return a->value[i];
}

static GPtrArray *snap_argv(const SnapArgs *a, const char *name)
{
    int i = snap_opt_index(a->verb, name);
    g_assert(i >= 0);
    return a->argv[i];
}

static void snap_args_clear(SnapArgs *a)
{
    for (int i = 0; i < SNAP_MAX_OPTS; i++) {
        g_free(a->value[i]);
        if (a->argv[i]) {
            g_ptr_array_unref(a->argv[i]);
        }
    }
}

static bool snap_assign(SnapArgs *a, int idx, const char *val)
{
    const SnapOptDef *d = &a->verb->opts[idx];
    if (!*val) {
        snap_error("Failed to get option '%s': Option argument is empty",
                   d->name);
        return false;
    }
    a->present[idx] = true;
    g_free(a->value[idx]);
    a->value[idx] = g_strdup(val);
    if (d->type == OPT_ARGV) {
        if (!a->argv[idx]) {
            a->argv[idx] = g_ptr_array_new_with_free_func(g_free);
        }
        g_ptr_array_add(a->argv[idx], g_strdup(val));
    }
    return true;
}

/* A bare word fills the first positional option not yet given. */
static bool snap_assign_positional(SnapArgs *a, const char *val)
{
    const SnapOptDef *opts = a->verb->opts;
    for (int i = 0; opts[i].name; i++) {
        if ((opts[i].flags & OPT_POSITIONAL) &&
            (!a->present[i] || opts[i].type == OPT_ARGV)) {
            return snap_assign(a, i, val);
        }
    }
    snap_error("unexpected data '%s'", val);
    return false;
}

/* One "--name[=value]" token (and the value after it); *i advances. */
static bool snap_parse_option(SnapArgs *a, int argc, char **argv, int *i,
                              bool *help)
{
    g_autofree char *name = g_strdup(argv[*i] + 2);
    char *eq = strchr(name, '=');
    const char *val = NULL;
    if (eq) {
        *eq = '\0';
        val = eq + 1;
    }
    if (!strcmp(name, "help")) {
        *help = true;
        return true;
    }
    int idx = snap_opt_index(a->verb, name);
    if (idx < 0) {
        snap_error("command '%s' doesn't support option --%s",
                   a->verb->name, name);
        return false;
    }
    const SnapOptDef *d = &a->verb->opts[idx];
    if (a->present[idx] && d->type != OPT_ARGV) {
        snap_error("option --%s already seen", d->name);
        return false;
    }
    if (d->type == OPT_BOOL) {
        if (val) {
            snap_error("invalid '=' after option --%s", d->name);
            return false;
        }
        a->present[idx] = true;
        return true;
    }
    if (!val) {
        if (*i + 1 >= argc) {
            snap_error("expected syntax: --%s <string>", d->name);
            return false;
        }
        val = argv[++*i];
    }
    return snap_assign(a, idx, val);
}

static bool snap_check_required(const SnapArgs *a)
{
    const SnapOptDef *opts = a->verb->opts;
    for (int i = 0; opts[i].name; i++) {
        if ((opts[i].flags & OPT_REQUIRED) && !a->present[i]) {
            if (opts[i].flags & OPT_POSITIONAL) {
                snap_error("command '%s' requires <%s> option",
                           a->verb->name, opts[i].name);
            } else {
                snap_error("command '%s' requires --%s option",
                           a->verb->name, opts[i].name);
            }
            return false;
        }
    }
    return true;
}

/* virsh's grammar: --opt, --opt VALUE, --opt=VALUE, bare words for the
 * positional options in order, "--" ends the options. */
static bool snap_args_parse(SnapArgs *a, int argc, char **argv, bool *help)
{
    bool words_only = false;
    for (int i = 0; i < argc; i++) {
        const char *tk = argv[i];
        if (words_only || strncmp(tk, "--", 2) != 0) {
            if (!snap_assign_positional(a, tk)) {
                return false;
            }
        } else if (!strcmp(tk, "--")) {
            words_only = true;
        } else if (!snap_parse_option(a, argc, argv, &i, help)) {
            return false;
        }
    }
    return *help || snap_check_required(a);
}

/* virsh's VSH_EXCLUSIVE_OPTIONS. */
static bool snap_exclusive(const SnapArgs *a, const char *x, const char *y)
{
    if (snap_has(a, x) && snap_has(a, y)) {
        snap_error("Options --%s and --%s are mutually exclusive", x, y);
        return false;
    }
    return true;
}

/* ---- QMP client ---- */

static int snap_dial_unix(const char *path, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "invalid socket path '%s'", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        error_setg_errno(errp, errno, "Failed to connect socket to '%s'",
                         path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* addr is "HOST:PORT" (the last colon splits, for "::1:4444"). */
static int snap_dial_tcp(const char *addr, GError **errp)
{
    g_autofree char *host = g_strdup(addr);
    char *port = strrchr(host, ':');
    if (!port || port == host || !port[1]) {
        error_setg(errp, "expected tcp:HOST:PORT, got 'tcp:%s'", addr);
        return -1;
    }
    *port++ = '\0';
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc) {
        error_setg(errp, "Unable to resolve address '%s' service '%s': %s",
                   host, port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, saved, "unable to connect to server at "
                         "'%s:%s'", host, port);
    }
    return fd;
}

/* "unix:PATH" or "tcp:HOST:PORT": the monitor's two transports. */
static int snap_qmp_dial(const char *uri, GError **errp)
{
    if (g_str_has_prefix(uri, "unix:")) {
        return snap_dial_unix(uri + 5, errp);
    }
    if (g_str_has_prefix(uri, "tcp:")) {
        return snap_dial_tcp(uri + 4, errp);
    }
    error_setg(errp, "unsupported connection URI '%s' (expected "
               "unix:PATH or tcp:HOST:PORT)", uri);
    return -1;
}

static bool snap_qmp_send(SnapConn *c, json_t *msg, GError **errp)
{
    g_autofree char *text = json_dumps(msg, JSON_COMPACT);
    g_autofree char *line = g_strconcat(text, "\n", NULL);
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t n = write(c->fd, line + off, len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "Cannot write data");
            return false;
        }
        off += n;
    }
    return true;
}

/* The buffer's first JSON value, or NULL when more bytes are needed.  A
 * decode error counts as "need more" until a newline follows it: a read
 * may end inside a \u escape or a UTF-8 sequence, and a JSON text never
 * holds a raw newline inside a string. */
static json_t *snap_qmp_take(SnapConn *c, bool *bad, GError **errp)
{
    json_error_t je;
    json_t *v = json_loadb((const char *)c->rbuf->data, c->rbuf->len,
                           JSON_DISABLE_EOF_CHECK, &je);
    if (v) {
        g_byte_array_remove_range(c->rbuf, 0, je.position);
        return v;
    }
    size_t pos = MIN((size_t)MAX(je.position, 0), c->rbuf->len);
    /* An empty buffer may have no storage at all (data NULL). */
    if (json_error_code(&je) != json_error_premature_end_of_input &&
        pos < c->rbuf->len &&
        memchr(c->rbuf->data + pos, '\n', c->rbuf->len - pos)) {
        error_setg(errp, "invalid JSON from the monitor: %s", je.text);
        *bad = true;
    }
    return NULL;
}

/* Next message (an object) from the monitor. */
static json_t *snap_qmp_read(SnapConn *c, GError **errp)
{
    for (;;) {
        bool bad = false;
        json_t *v = snap_qmp_take(c, &bad, errp);
        if (bad) {
            return NULL;
        }
        if (v && json_is_object(v)) {
            return v;
        }
        if (v) {
            json_decref(v);
            error_setg(errp, "invalid message from the monitor: not an "
                       "object");
            return NULL;
        }
        if (c->rbuf->len > SNAP_QMP_MAX_MESSAGE) {
            error_setg(errp, "message from the monitor exceeds %d bytes",
                       SNAP_QMP_MAX_MESSAGE);
            return NULL;
        }
        guint8 chunk[65536];
        ssize_t n = read(c->fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "Cannot recv data");
            return NULL;
        }
        if (n == 0) {
            error_setg(errp, "End of file while reading data: the monitor "
                       "closed the connection");
            return NULL;
        }
        g_byte_array_append(c->rbuf, chunk, n);
    }
}

/* The reply to the command just sent: events are skipped; "return"
 * is handed back, "error" becomes *errp with the monitor's desc. */
static json_t *snap_qmp_reply(SnapConn *c, GError **errp)
{
    for (;;) {
        json_t *m = snap_qmp_read(c, errp);
        if (!m) {
            return NULL;
        }
        if (json_object_get(m, "event")) {
            json_decref(m);
            continue;
        }
        json_t *ret = json_object_get(m, "return");
        json_t *err = json_object_get(m, "error");
        const char *desc = json_string_value(json_object_get(err, "desc"));
        if (ret) {
            json_incref(ret);
        } else if (desc) {
            error_setg(errp, "%s", desc);
        } else {
            error_setg(errp, "invalid reply from the monitor");
        }
        json_decref(m);
        return ret;
    }
}

static bool snap_qmp_open(SnapConn *c, GError **errp)
{
    c->fd = snap_qmp_dial(c->uri, errp);
    if (c->fd < 0) {
        return false;
    }
    c->rbuf = g_byte_array_new();
    json_t *greeting = snap_qmp_read(c, errp);
    if (!greeting) {
        return false;
    }
    bool is_qmp = json_object_get(greeting, "QMP") != NULL;
    json_decref(greeting);
    if (!is_qmp) {
        error_setg(errp, "'%s' is not a QMP monitor (no greeting)", c->uri);
        return false;
    }
    json_t *req = json_pack("{s:s}", "execute", "qmp_capabilities");
    bool ok = snap_qmp_send(c, req, errp);
    json_decref(req);
    json_t *ret = ok ? snap_qmp_reply(c, errp) : NULL;
    json_decref(ret);
    return ret != NULL;
}

/* ---- the connection: QMP or the offline catalog ---- */

static bool snap_offline_open(SnapConn *c, GError **errp)
{
    g_autoptr(GString) report = g_string_new(NULL);
    c->domain = dsnap_domain_open_offline(c->offline_dir, report, errp);
    /* Repairs of what a kill interrupted: worth knowing, not failures. */
    g_auto(GStrv) lines = g_strsplit(report->str, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        if (*lines[i]) {
            fprintf(stderr, "xblk-snapshot: %s\n", lines[i]);
        }
    }
    return c->domain != NULL;
}

static bool snap_conn_open(SnapConn *c, GError **errp)
{
    if (c->open) {
        return true;
    }
    if (!c->uri && !c->offline_dir) {
        /* virsh would fall back on a default URI; xblk has none. */
        error_setg(errp, "no machine given: use -c unix:PATH (a running "
                   "xblk-system's QMP socket) or --offline DIR");
        return false;
    }
    GError *err = NULL;
    c->open = c->uri ? snap_qmp_open(c, &err) : snap_offline_open(c, &err);
    if (!c->open) {
        /* virsh's two lines for a connection that fails. */
        snap_error("failed to connect to the hypervisor");
        g_propagate_error(errp, err);
    }
    return c->open;
}

static void snap_conn_close(SnapConn *c)
{
    if (c->rbuf) {
        g_byte_array_unref(c->rbuf);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    if (c->domain) {
        dsnap_domain_free(c->domain);
    }
}

/* Runs command name with args (taken); the reply's "return" value, or
 * NULL with *errp set (the engine's or the monitor's message). */
static json_t *snap_call(SnapConn *c, const char *name, json_t *args,
                         GError **errp)
{
    json_t *ret = NULL;
    if (!snap_conn_open(c, errp)) {
        json_decref(args);
        return NULL;
    }
    if (c->uri) {
        json_t *req = json_pack("{s:s, s:o}", "execute", name,
                                "arguments", args);
        if (snap_qmp_send(c, req, errp)) {
            ret = snap_qmp_reply(c, errp);
        }
        json_decref(req);
        return ret;
    }
    if (!dsnap_json_call(c->domain, name, args, &ret, errp)) {
        ret = NULL;
    }
    json_decref(args);
    return ret;
}

/* As snap_call, printing the error; for the many verbs that need no
 * more than virsh's one "error:" line. */
static json_t *snap_call_report(SnapConn *c, const char *name, json_t *args)
{
    GError *err = NULL;
    json_t *ret = snap_call(c, name, args, &err);
    if (!ret) {
        snap_error_free(err);
    }
    return ret;
}

/* Sets key to true when the option is given: only the flags the user
 * asked for go on the wire. */
static void snap_flag(json_t *args, const SnapArgs *a, const char *opt,
                      const char *key)
{
    if (snap_has(a, opt)) {
        json_object_set_new(args, key ? key : opt, json_true());
    }
}

static const char *snap_reply_str(json_t *reply, const char *key)
{
    return json_string_value(json_object_get(reply, key));
}

/* ---- snapshot lookup: virsh's {NAME | --current} ---- */

/* The current snapshot's name (new string); NULL, nothing printed, when
 * there is none; NULL with the error printed on failure (*failed). */
static char *snap_current_name(SnapConn *c, bool *failed)
{
    json_t *ret = snap_call_report(c, "x-xblk-snapshot-current",
                                   json_object());
    *failed = !ret;
    char *name = g_strdup(snap_reply_str(ret, "name"));
    json_decref(ret);
    return name;
}

/* The snapshot a verb is about: option arg's value or, with --current,
 * the current snapshot.  exclusive: both given is an error, else the
 * name wins (snapshot-edit keeps --current for "and make it current"). */
static char *snap_lookup(SnapConn *c, const SnapArgs *a, const char *arg,
                         bool exclusive)
{
    const char *name = snap_str(a, arg);
    bool current = snap_has(a, "current");
    if (exclusive && current && name) {
        snap_error("--%s and --current are mutually exclusive", arg);
        return NULL;
    }
    if (name) {
        return g_strdup(name);
    }
    if (!current) {
        snap_error("--%s or --current is required", arg);
        return NULL;
    }
    bool failed;
    char *cur = snap_current_name(c, &failed);
    if (!cur && !failed) {
        snap_error("Domain snapshot not found: the domain does not have a "
                   "current snapshot");
    }
    return cur;
}

/* ---- snapshot-create, snapshot-create-as ---- */

static bool snap_create_send(SnapConn *c, const SnapArgs *a, const char *xml,
                             const char *from)
{
    json_t *args = json_pack("{s:s}", "xml", xml);
    snap_flag(args, a, "disk-only", NULL);
    snap_flag(args, a, "no-metadata", NULL);
    snap_flag(args, a, "validate", NULL);
    if (snap_opt_index(a->verb, "redefine") >= 0) {
        snap_flag(args, a, "redefine", NULL);
        snap_flag(args, a, "current", NULL);
    }
    json_t *ret = snap_call_report(c, "x-xblk-snapshot-create", args);
    if (!ret) {
        return false;
    }
    const char *name = snap_reply_str(ret, "name");
    if (from) {
        snap_extra("Domain snapshot %s created from '%s'", name, from);
    } else {
        snap_extra("Domain snapshot %s created", name);
    }
    json_decref(ret);
    return true;
}

/* At most DSNAP_MAX_DOC_SIZE bytes of path, reading no further (a FIFO
 * or a huge file must not make us buffer it all); errors as virsh's. */
static char *snap_read_doc(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snap_error("Failed to open file '%s': %s", path, g_strerror(errno));
        return NULL;
    }
    g_autoptr(GString) buf = g_string_new(NULL);
    char chunk[65536];
    ssize_t n = 0;
    while (buf->len <= DSNAP_MAX_DOC_SIZE &&
           ((n = read(fd, chunk, sizeof(chunk))) > 0 ||
            (n < 0 && errno == EINTR))) {
        g_string_append_len(buf, chunk, MAX(n, 0));
    }
    int saved = errno;
    close(fd);
    if (n < 0) {
        snap_error("Failed to read file '%s': %s", path, g_strerror(saved));
        return NULL;
    }
    if (buf->len > DSNAP_MAX_DOC_SIZE || strlen(buf->str) != buf->len) {
        snap_error("file '%s' is not a snapshot document (more than %d "
                   "bytes, or NUL bytes)", path, DSNAP_MAX_DOC_SIZE);
        return NULL;
    }
    return g_string_free(g_steal_pointer(&buf), FALSE);
}

static bool snap_cmd_create(SnapConn *c, SnapArgs *a)
{
    const char *file = snap_str(a, "xmlfile");
    g_autofree char *xml = file ? snap_read_doc(file)
                                : g_strdup("<domainsnapshot/>");
    return xml && snap_create_send(c, a, xml, file);
}

/* XML's five entities; every value goes through here, attribute or text. */
static void snap_xml_escaped(GString *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': g_string_append(out, "&lt;"); break;
        case '>': g_string_append(out, "&gt;"); break;
        case '&': g_string_append(out, "&amp;"); break;
        case '\'': g_string_append(out, "&apos;"); break;
        case '"': g_string_append(out, "&quot;"); break;
        default: g_string_append_c(out, *s); break;
        }
    }
}

static void snap_xml_attr(GString *out, const char *name, const char *value)
{
    if (value) {
        g_string_append_printf(out, " %s='", name);
        snap_xml_escaped(out, value);
        g_string_append_c(out, '\'');
    }
}

static void snap_xml_elem(GString *out, const char *indent, const char *name,
                          const char *text)
{
    if (text) {
        g_string_append_printf(out, "%s<%s>", indent, name);
        snap_xml_escaped(out, text);
        g_string_append_printf(out, "</%s>\n", name);
    }
}

/* virsh's spec lists: comma-separated, ",," stands for a literal comma. */
static GPtrArray *snap_split_spec(const char *spec)
{
    GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);
    for (const char *p = spec; *p; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',') {
            g_ptr_array_add(parts, g_string_free(cur, FALSE));
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    g_ptr_array_add(parts, g_string_free(cur, FALSE));
    return parts;
}

/* "KEY=" prefix of part, for a key not yet seen: the value, else NULL. */
static const char *snap_spec_key(const char *part, const char *key,
                                 const char *seen)
{
    size_t n = strlen(key);
    if (!seen && !strncmp(part, key, n) && part[n] == '=') {
        return part + n + 1;
    }
    return NULL;
}

/* --memspec [file=]PATH[,snapshot=TYPE] -> <memory .../>. */
static bool snap_memspec_xml(GString *out, const char *spec)
{
    g_autoptr(GPtrArray) parts = snap_split_spec(spec);
    const char *snapshot = NULL, *file = NULL, *v;
    for (guint i = 0; i < parts->len; i++) {
        const char *p = g_ptr_array_index(parts, i);
        if ((v = snap_spec_key(p, "snapshot", snapshot))) {
            snapshot = v;
        } else if ((v = snap_spec_key(p, "file", file))) {
            file = v;
        } else if (!file && p[0] == '/') {
            file = p;
        } else {
            snap_error("unable to parse memspec: %s", spec);
            return false;
        }
    }
    g_string_append(out, "  <memory");
    snap_xml_attr(out, "snapshot", snapshot);
    snap_xml_attr(out, "file", file);
    g_string_append(out, "/>\n");
    return true;
}

typedef struct SnapDiskSpec {
    const char *name, *snapshot, *driver, *stype, *file;
} SnapDiskSpec;

static bool snap_diskspec_parse(GPtrArray *parts, SnapDiskSpec *d)
{
    d->name = g_ptr_array_index(parts, 0);
    for (guint i = 1; i < parts->len; i++) {
        const char *p = g_ptr_array_index(parts, i), *v;
        if ((v = snap_spec_key(p, "snapshot", d->snapshot))) {
            d->snapshot = v;
        } else if ((v = snap_spec_key(p, "driver", d->driver))) {
            d->driver = v;
        } else if ((v = snap_spec_key(p, "stype", d->stype))) {
            d->stype = v;
        } else if ((v = snap_spec_key(p, "file", d->file))) {
            d->file = v;
        } else {
            return false;
        }
    }
    if (d->stype && strcmp(d->stype, "file") && strcmp(d->stype, "block")) {
        snap_error("Unknown storage type: '%s'", d->stype);
        return false;
    }
    return true;
}

/* --diskspec DISK[,snapshot=TYPE][,driver=TYPE][,stype=TYPE][,file=PATH]
 * -> one <disk> of <disks>. */
static bool snap_diskspec_xml(GString *out, const char *spec)
{
    g_autoptr(GPtrArray) parts = snap_split_spec(spec);
    SnapDiskSpec d = { 0 };
    if (!snap_diskspec_parse(parts, &d)) {
        snap_error("unable to parse diskspec: %s", spec);
        return false;
    }
    g_string_append(out, "    <disk");
    snap_xml_attr(out, "name", d.name);
    snap_xml_attr(out, "snapshot", d.snapshot);
    snap_xml_attr(out, "type", d.stype);
    if (!d.driver && !d.file) {
        g_string_append(out, "/>\n");
        return true;
    }
    g_string_append(out, ">\n");
    if (d.driver) {
        g_string_append(out, "      <driver");
        snap_xml_attr(out, "type", d.driver);
        g_string_append(out, "/>\n");
    }
    if (d.file) {
        g_string_append(out, "      <source");
        bool block = d.stype && !strcmp(d.stype, "block");
        snap_xml_attr(out, block ? "dev" : "file", d.file);
        g_string_append(out, "/>\n");
    }
    g_string_append(out, "    </disk>\n");
    return true;
}

/* The document snapshot-create-as describes, laid out as virsh lays it
 * out (only what was given; no defaults filled in: the engine does). */
static char *snap_create_as_xml(const SnapArgs *a)
{
    g_autoptr(GString) out = g_string_new("<domainsnapshot>\n");
    snap_xml_elem(out, "  ", "name", snap_str(a, "name"));
    snap_xml_elem(out, "  ", "description", snap_str(a, "description"));
    const char *memspec = snap_str(a, "memspec");
    if (memspec && !snap_memspec_xml(out, memspec)) {
        return NULL;
    }
    GPtrArray *disks = snap_argv(a, "diskspec");
    if (disks) {
        g_string_append(out, "  <disks>\n");
        for (guint i = 0; i < disks->len; i++) {
            if (!snap_diskspec_xml(out, g_ptr_array_index(disks, i))) {
                return NULL;
            }
        }
        g_string_append(out, "  </disks>\n");
    }
    g_string_append(out, "</domainsnapshot>\n");
    return g_string_free(g_steal_pointer(&out), FALSE);
}

static bool snap_cmd_create_as(SnapConn *c, SnapArgs *a)
{
    g_autofree char *xml = snap_create_as_xml(a);
    if (!xml) {
        return false;
    }
    if (snap_has(a, "print-xml")) {
        printf("%s\n", xml);
        return true;
    }
    return snap_create_send(c, a, xml, NULL);
}

/* ---- snapshot-list ---- */

/* Terminal columns a cell takes; control bytes are shown as \xHH (as
 * virsh's tables do) so that a name cannot move the cursor. */
static char *snap_cell(const char *s, size_t *width)
{
    GString *out = g_string_new(NULL);
    *width = 0;
    const char *p = s;
    while (*p) {
        gunichar ch = g_utf8_get_char_validated(p, -1);
        if (ch == (gunichar)-1 || ch == (gunichar)-2) {
            g_string_append_printf(out, "\\x%02x", (guint8)*p++);
            *width += 4;
            continue;
        }
        const char *next = g_utf8_next_char(p);
        if (g_unichar_iscntrl(ch)) {
            for (; p < next; p++) {
                g_string_append_printf(out, "\\x%02x", (guint8)*p);
                *width += 4;
            }
            continue;
        }
        g_string_append_len(out, p, next - p);
        *width += g_unichar_iszerowidth(ch) ? 0 : g_unichar_iswide(ch) ? 2 : 1;
        p = next;
    }
    return g_string_free(out, FALSE);
}

typedef struct SnapTable {
    guint ncols;
    GPtrArray *cells;           /* row-major, owned, already encoded */
    GArray *widths;             /* size_t per cell */
} SnapTable;

static void snap_table_add(SnapTable *t, const char *s)
{
    size_t w;
    g_ptr_array_add(t->cells, snap_cell(s ? s : "", &w));
    g_array_append_val(t->widths, w);
}

static void snap_table_row(const SnapTable *t, guint row,
                           const size_t *maxw)
{
    for (guint j = 0; j < t->ncols; j++) {
        guint k = row * t->ncols + j;
        printf(" %s", (const char *)g_ptr_array_index(t->cells, k));
        if (j + 1 < t->ncols) {
            size_t pad = maxw[j] - g_array_index(t->widths, size_t, k) + 2;
            printf("%*s", (int)pad, "");
        }
    }
    printf("\n");
}

/* virsh's table: every column as wide as its widest cell plus three
 * columns of space, a dashed rule under the header (both -q'd). */
static void snap_table_print(const SnapTable *t)
{
    size_t maxw[8] = { 0 };
    guint rows = t->cells->len / t->ncols;
    for (guint k = 0; k < t->cells->len; k++) {
        maxw[k % t->ncols] = MAX(maxw[k % t->ncols],
                                 g_array_index(t->widths, size_t, k));
    }
    if (!snap_quiet) {
        snap_table_row(t, 0, maxw);
        for (guint j = 0; j < t->ncols; j++) {
            for (size_t n = 0; n < maxw[j] + 3; n++) {
                putchar('-');
            }
        }
        putchar('\n');
    }
    for (guint r = 1; r < rows; r++) {
        snap_table_row(t, r, maxw);
    }
}

/* virsh sorts listings by name, ignoring ASCII case. */
static gint snap_by_name(gconstpointer x, gconstpointer y)
{
    const char *a = json_string_value(json_object_get(*(json_t **)x, "name"));
    const char *b = json_string_value(json_object_get(*(json_t **)y, "name"));
    a = a ? a : "";
    b = b ? b : "";
    int r = g_ascii_strcasecmp(a, b);
    return r ? r : strcmp(a, b);
}

/* "YYYY-MM-DD HH:MM:SS +ZZZZ" in local time, as virsh shows it. */
static char *snap_time(json_t *info)
{
    json_t *t = json_object_get(info, "creation-time");
    g_autoptr(GDateTime) dt =
        g_date_time_new_from_unix_local(json_integer_value(t));
    return dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S %z")
              : g_strdup("-");
}

static void snap_list_table(GPtrArray *snaps, bool parent)
{
    SnapTable t = {
        .ncols = parent ? 4 : 3,
        .cells = g_ptr_array_new_with_free_func(g_free),
        .widths = g_array_new(FALSE, FALSE, sizeof(size_t)),
    };
    snap_table_add(&t, "Name");
    snap_table_add(&t, "Creation Time");
    snap_table_add(&t, "State");
    if (parent) {
        snap_table_add(&t, "Parent");
    }
    for (guint i = 0; i < snaps->len; i++) {
        json_t *s = g_ptr_array_index(snaps, i);
        g_autofree char *when = snap_time(s);
        snap_table_add(&t, snap_reply_str(s, "name"));
        snap_table_add(&t, when);
        snap_table_add(&t, snap_reply_str(s, "state"));
        if (parent) {
            snap_table_add(&t, snap_reply_str(s, "parent"));
        }
    }
    snap_table_print(&t);
    g_ptr_array_unref(t.cells);
    g_array_unref(t.widths);
}

static bool snap_list_check(const SnapArgs *a)
{
    static const char *const pairs[][2] = {
        { "tree", "name" }, { "parent", "roots" }, { "parent", "tree" },
        { "roots", "tree" }, { "roots", "from" }, { "roots", "current" },
    };
    static const char *const filters[] = {
        "leaves", "no-leaves", "inactive", "active", "disk-only",
        "internal", "external",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(pairs); i++) {
        if (!snap_exclusive(a, pairs[i][0], pairs[i][1])) {
            return false;
        }
    }
    for (size_t i = 0; i < G_N_ELEMENTS(filters); i++) {
        if (snap_has(a, "tree") && snap_has(a, filters[i])) {
            snap_error("--%s and --tree are mutually exclusive", filters[i]);
            return false;
        }
    }
    if (snap_has(a, "descendants") && !snap_has(a, "from") &&
        !snap_has(a, "current")) {
        snap_error("--descendants requires either --from or --current");
        return false;
    }
    if (snap_has(a, "from") && snap_has(a, "current")) {
        snap_error("--from and --current are mutually exclusive");
        return false;
    }
    return true;
}

static json_t *snap_list_args(const SnapArgs *a)
{
    static const char *const flags[] = {
        "roots", "leaves", "no-leaves", "current", "internal", "external",
        "disk-only", "active", "inactive", "descendants", "tree",
    };
    json_t *args = json_object();
    for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
        snap_flag(args, a, flags[i], NULL);
    }
    if (snap_str(a, "from")) {
        json_object_set_new(args, "from", json_string(snap_str(a, "from")));
    }
    return args;
}

static bool snap_cmd_list(SnapConn *c, SnapArgs *a)
{
    if (!snap_list_check(a)) {
        return false;
    }
    json_t *ret = snap_call_report(c, "x-xblk-snapshot-list",
                                   snap_list_args(a));
    if (!ret) {
        return false;
    }
    if (snap_has(a, "tree")) {
        const char *tree = snap_reply_str(ret, "tree");
        fputs(tree ? tree : "", stdout);
        json_decref(ret);
        return true;
    }
    json_t *arr = json_object_get(ret, "snapshots");
    g_autoptr(GPtrArray) snaps = g_ptr_array_new();
    for (size_t i = 0; i < json_array_size(arr); i++) {
        g_ptr_array_add(snaps, json_array_get(arr, i));
    }
    g_ptr_array_sort(snaps, snap_by_name);
    if (snap_has(a, "name")) {
        for (guint i = 0; i < snaps->len; i++) {
            printf("%s\n", snap_reply_str(g_ptr_array_index(snaps, i),
                                          "name"));
        }
    } else {
        snap_list_table(snaps, snap_has(a, "parent"));
    }
    json_decref(ret);
    return true;
}

/* ---- snapshot-dumpxml, snapshot-info, snapshot-current, -parent ---- */

static char *snap_dumpxml(SnapConn *c, const char *name)
{
    json_t *ret = snap_call_report(c, "x-xblk-snapshot-dumpxml",
                                   json_pack("{s:s}", "name", name));
    char *xml = g_strdup(snap_reply_str(ret, "xml"));
    if (ret && !xml) {
        snap_error("invalid reply: no xml");
    }
    json_decref(ret);
    return xml;
}

static bool snap_cmd_dumpxml(SnapConn *c, SnapArgs *a)
{
    g_autofree char *xml = snap_dumpxml(c, snap_str(a, "snapshotname"));
    if (xml) {
        fputs(xml, stdout);
    }
    return xml != NULL;
}

/* The machine's name for "Domain:": the <domain> the snapshot recorded. */
static char *snap_domain_name(SnapConn *c, const char *snapshot)
{
    g_autofree char *xml = snap_dumpxml(c, snapshot);
    if (!xml) {
        return NULL;
    }
    g_autoptr(DomainSnapshotDef) def =
        dsnap_parse_string(xml, strlen(xml), NULL);
    return g_strdup(def && def->domain && def->domain->name ?
                    def->domain->name : "-");
}

static void snap_info_line(const char *label, const char *value)
{
    printf("%-15s %s\n", label, value);
}

static void snap_info_print(json_t *info, const char *domain)
{
    const char *parent = snap_reply_str(info, "parent");
    const char *location = snap_reply_str(info, "location");
    g_autofree char *children = g_strdup_printf("%" JSON_INTEGER_FORMAT,
        json_integer_value(json_object_get(info, "children")));
    g_autofree char *descendants = g_strdup_printf("%" JSON_INTEGER_FORMAT,
        json_integer_value(json_object_get(info, "descendants")));
    snap_info_line("Name:", snap_reply_str(info, "name"));
    snap_info_line("Domain:", domain);
    snap_info_line("Current:",
                   json_is_true(json_object_get(info, "current")) ? "yes"
                                                                  : "no");
    snap_info_line("State:", snap_reply_str(info, "state"));
    /* virsh knows two locations: external when memory or a disk is. */
    snap_info_line("Location:", location && !strcmp(location, "external") ?
                   "external" : "internal");
    snap_info_line("Parent:", parent ? parent : "-");
    snap_info_line("Children:", children);
    snap_info_line("Descendants:", descendants);
    /* Snapshots without metadata are never listed, so never looked up. */
    snap_info_line("Metadata:", "yes");
}

static bool snap_cmd_info(SnapConn *c, SnapArgs *a)
{
    g_autofree char *name = snap_lookup(c, a, "snapshotname", true);
    if (!name) {
        return false;
    }
    json_t *info = snap_call_report(c, "x-xblk-snapshot-info",
                                    json_pack("{s:s}", "name", name));
    if (!info) {
        return false;
    }
    g_autofree char *domain = snap_domain_name(c, name);
    if (domain) {
        snap_info_print(info, domain);
    }
    json_decref(info);
    return domain != NULL;
}

static bool snap_set_current(SnapConn *c, const char *name)
{
    json_t *ret = snap_call_report(c, "x-xblk-snapshot-current",
                                   json_pack("{s:s}", "name", name));
    json_decref(ret);
    return ret != NULL;
}

static bool snap_cmd_current(SnapConn *c, SnapArgs *a)
{
    const char *set = snap_str(a, "snapshotname");
    if (!snap_exclusive(a, "name", "snapshotname")) {
        return false;
    }
    if (set) {
        if (!snap_set_current(c, set)) {
            return false;
        }
        snap_extra("Snapshot %s set as current", set);
        return true;
    }
    bool failed;
    g_autofree char *cur = snap_current_name(c, &failed);
    if (!cur) {
        if (!failed) {
            snap_error("domain has no current snapshot");
        }
        return false;
    }
    if (snap_has(a, "name")) {
        fputs(cur, stdout);
        return true;
    }
    g_autofree char *xml = snap_dumpxml(c, cur);
    if (xml) {
        fputs(xml, stdout);
    }
    return xml != NULL;
}

static bool snap_cmd_parent(SnapConn *c, SnapArgs *a)
{
    g_autofree char *name = snap_lookup(c, a, "snapshotname", true);
    if (!name) {
        return false;
    }
    json_t *ret = snap_call_report(c, "x-xblk-snapshot-parent",
                                   json_pack("{s:s}", "name", name));
    if (!ret) {
        return false;
    }
    const char *parent = snap_reply_str(ret, "parent");
    if (parent) {
        fputs(parent, stdout);
    } else {
        snap_error("snapshot '%s' has no parent", name);
    }
    json_decref(ret);
    return parent != NULL;
}

/* ---- snapshot-edit ---- */

/* $VISUAL, else $EDITOR, else vi, run by the shell as virsh does (so
 * "emacs -nw" works) on the temporary file. */
static bool snap_run_editor(const char *path, GError **errp)
{
    const char *editor = g_getenv("VISUAL");
    if (!editor || !*editor) {
        editor = g_getenv("EDITOR");
    }
    if (!editor || !*editor) {
        editor = "vi";
    }
    g_autofree char *quoted = g_shell_quote(path);
    g_autofree char *cmdline = g_strdup_printf("%s %s", editor, quoted);
    char *argv[] = { "/bin/sh", "-c", cmdline, NULL };
    int status;
    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_CHILD_INHERITS_STDIN,
                      NULL, NULL, NULL, NULL, &status, errp)) {
        return false;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        error_setg(errp, "%s: editor failed (%s %d)", editor,
                   WIFEXITED(status) ? "exit status" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status)
                                     : WTERMSIG(status));
        return false;
    }
    return true;
}

/* Writes xml to a temporary file, lets the user edit it and returns
 * what the file holds afterwards; the file is always removed. */
static char *snap_edit_text(const char *xml, GError **errp)
{
    g_autofree char *path = NULL;
    int fd = g_file_open_tmp("xblk-snapshotXXXXXX.xml", &path, errp);
    if (fd < 0) {
        return NULL;
    }
    close(fd);
    char *edited = NULL;
    gsize len = 0;
    if (g_file_set_contents(path, xml, -1, errp) &&
        snap_run_editor(path, errp) &&
        g_file_get_contents(path, &edited, &len, errp) &&
        (len > DSNAP_MAX_DOC_SIZE || strlen(edited) != len)) {
        error_setg(errp, "edited document is larger than %d bytes or holds "
                   "NUL bytes", DSNAP_MAX_DOC_SIZE);
        g_clear_pointer(&edited, g_free);
    }
    unlink(path);
    return edited;
}

/* The name the edited document gives (NULL: none); false when it does
 * not parse, so nothing is sent. */
static bool snap_edited_name(const char *xml, char **name, GError **errp)
{
    g_autoptr(DomainSnapshotDef) def =
        dsnap_parse_string(xml, strlen(xml), errp);
    if (!def) {
        return false;
    }
    *name = g_strdup(def->name);
    return true;
}

static bool snap_edit_send(SnapConn *c, const SnapArgs *a, const char *name,
                           const char *edited)
{
    GError *err = NULL;
    g_autofree char *new_name = NULL;
    if (!snap_edited_name(edited, &new_name, &err)) {
        snap_error_free(err);
        return false;
    }
    if (new_name && strcmp(new_name, name) && !snap_has(a, "rename")) {
        snap_error("Must use --rename to change %s to %s", name, new_name);
        return false;
    }
    json_t *ret = snap_call_report(c, "x-xblk-snapshot-edit",
                                   json_pack("{s:s, s:s}", "name", name,
                                             "xml", edited));
    if (!ret) {
        return false;
    }
    const char *now = snap_reply_str(ret, "name");
    bool ok = true;
    if (snap_has(a, "current") && snap_str(a, "snapshotname")) {
        ok = snap_set_current(c, now ? now : name);
    }
    /* virsh confirms an edit; a rename it carries out silently. */
    if (ok && (!now || !strcmp(now, name))) {
        snap_extra("Snapshot %s edited.\n", name);
    }
    json_decref(ret);
    return ok;
}

static bool snap_cmd_edit(SnapConn *c, SnapArgs *a)
{
    g_autofree char *name = snap_lookup(c, a, "snapshotname", false);
    if (!name) {
        return false;
    }
    g_autofree char *xml = snap_dumpxml(c, name);
    if (!xml) {
        return false;
    }
    GError *err = NULL;
    g_autofree char *edited = snap_edit_text(xml, &err);
    bool ok;
    if (!edited) {
        snap_error_free(err);
        ok = false;
    } else if (!strcmp(edited, xml) &&
               !(snap_has(a, "current") && snap_str(a, "snapshotname"))) {
        snap_extra("Snapshot %s XML configuration not changed.\n", name);
        return true;
    } else {
        ok = snap_edit_send(c, a, name, edited);
    }
    if (!ok) {
        snap_error("Failed to update %s", name);
    }
    return ok;
}

/* ---- snapshot-revert, snapshot-delete ---- */

static bool snap_cmd_revert(SnapConn *c, SnapArgs *a)
{
    g_autofree char *name = snap_lookup(c, a, "snapshotname", true);
    if (!name) {
        return false;
    }
    json_t *args = json_pack("{s:s}", "name", name);
    snap_flag(args, a, "running", NULL);
    snap_flag(args, a, "paused", NULL);
    snap_flag(args, a, "force", NULL);
    GError *err = NULL;
    json_t *ret = snap_call(c, "x-xblk-snapshot-revert", args, &err);
    if (!ret) {
        /* virsh names the snapshot first, then gives the reason. */
        snap_error("Failed to revert snapshot %s", name);
        snap_error_free(err);
        return false;
    }
    json_decref(ret);
    snap_extra("Domain snapshot %s reverted\n", name);
    return true;
}

static bool snap_cmd_delete(SnapConn *c, SnapArgs *a)
{
    g_autofree char *name = snap_lookup(c, a, "snapshotname", true);
    if (!name) {
        return false;
    }
    json_t *args = json_pack("{s:s}", "name", name);
    snap_flag(args, a, "children", NULL);
    snap_flag(args, a, "children-only", NULL);
    snap_flag(args, a, "metadata", NULL);
    GError *err = NULL;
    json_t *ret = snap_call(c, "x-xblk-snapshot-delete", args, &err);
    if (!ret) {
        snap_error("Failed to delete snapshot %s", name);
        snap_error_free(err);
        return false;
    }
    json_decref(ret);
    if (snap_has(a, "children-only")) {
        snap_extra("Domain snapshot %s children deleted\n", name);
    } else {
        snap_extra("Domain snapshot %s deleted\n", name);
    }
    return true;
}

/* ---- the verbs ---- */

#define OPT_SNAPSHOTNAME(help) \
    { "snapshotname", OPT_STRING, OPT_POSITIONAL, help }
#define OPT_CURRENT(help) { "current", OPT_BOOL, 0, help }

static const SnapOptDef snap_create_opts[] = {
    { "xmlfile", OPT_STRING, OPT_POSITIONAL,
      "file holding the <domainsnapshot> document (default: an empty one)" },
    { "redefine", OPT_BOOL, 0,
      "record the metadata of a snapshot taken before (dumpxml output)" },
    OPT_CURRENT("with --redefine, make it the current snapshot"),
    { "no-metadata", OPT_BOOL, 0, "take the snapshot but do not list it" },
    { "disk-only", OPT_BOOL, 0, "disks only, no memory state" },
    { "validate", OPT_BOOL, 0, "check the document against libvirt's schema" },
    { "atomic", OPT_BOOL, 0, "all disks or none (always so here)" },
    { NULL },
};

static const SnapOptDef snap_create_as_opts[] = {
    { "name", OPT_STRING, OPT_POSITIONAL,
      "snapshot name (default: the creation time)" },
    { "description", OPT_STRING, OPT_POSITIONAL, "free text kept with it" },
    { "print-xml", OPT_BOOL, 0, "print the document instead of creating" },
    { "no-metadata", OPT_BOOL, 0, "take the snapshot but do not list it" },
    { "disk-only", OPT_BOOL, 0, "disks only, no memory state" },
    { "validate", OPT_BOOL, 0, "check the document against libvirt's schema" },
    { "atomic", OPT_BOOL, 0, "all disks or none (always so here)" },
    { "memspec", OPT_STRING, 0,
      "memory: [file=]PATH[,snapshot=TYPE]" },
    { "diskspec", OPT_ARGV, OPT_POSITIONAL,
      "disk: DISK[,snapshot=TYPE][,driver=TYPE][,stype=TYPE][,file=PATH]" },
    { NULL },
};

static const SnapOptDef snap_list_opts[] = {
    { "parent", OPT_BOOL, 0, "add a column with each parent" },
    { "roots", OPT_BOOL, 0, "only snapshots without a parent" },
    { "leaves", OPT_BOOL, 0, "only snapshots without children" },
    { "no-leaves", OPT_BOOL, 0, "only snapshots with children" },
    { "inactive", OPT_BOOL, 0, "only those taken while shut off" },
    { "active", OPT_BOOL, 0, "only those taken running, with memory" },
    { "disk-only", OPT_BOOL, 0, "only disk-only snapshots" },
    { "internal", OPT_BOOL, 0, "only snapshots kept inside the images" },
    { "external", OPT_BOOL, 0, "only snapshots with external files" },
    { "tree", OPT_BOOL, 0, "draw the snapshots as a tree of names" },
    { "from", OPT_STRING, OPT_POSITIONAL, "only the children of this one" },
    OPT_CURRENT("only the children of the current snapshot"),
    { "descendants", OPT_BOOL, 0,
      "with --from or --current, everything below, not just children" },
    { "name", OPT_BOOL, 0, "names only, one a line" },
    { NULL },
};

static const SnapOptDef snap_dumpxml_opts[] = {
    { "snapshotname", OPT_STRING, OPT_POSITIONAL | OPT_REQUIRED,
      "the snapshot" },
    { NULL },
};

static const SnapOptDef snap_info_opts[] = {
    OPT_SNAPSHOTNAME("the snapshot"),
    OPT_CURRENT("the current snapshot"),
    { NULL },
};

static const SnapOptDef snap_current_opts[] = {
    { "name", OPT_BOOL, 0, "print the name rather than the document" },
    { "snapshotname", OPT_STRING, OPT_POSITIONAL,
      "make this snapshot the current one" },
    { NULL },
};

static const SnapOptDef snap_parent_opts[] = {
    OPT_SNAPSHOTNAME("the snapshot whose parent to print"),
    OPT_CURRENT("the current snapshot's parent"),
    { NULL },
};

static const SnapOptDef snap_edit_opts[] = {
    OPT_SNAPSHOTNAME("the snapshot"),
    OPT_CURRENT("edit the current snapshot; with a name, also make it "
                "current"),
    { "rename", OPT_BOOL, 0, "allow a new <name>" },
    { NULL },
};

static const SnapOptDef snap_revert_opts[] = {
    OPT_SNAPSHOTNAME("the snapshot"),
    OPT_CURRENT("the current snapshot"),
    { "running", OPT_BOOL, 0, "run the machine afterwards" },
    { "paused", OPT_BOOL, 0, "leave the machine paused afterwards" },
    { "force", OPT_BOOL, 0, "go ahead with a risky revert" },
    { NULL },
};

static const SnapOptDef snap_delete_opts[] = {
    OPT_SNAPSHOTNAME("the snapshot"),
    OPT_CURRENT("the current snapshot"),
    { "children", OPT_BOOL, 0, "its descendants too" },
    { "children-only", OPT_BOOL, 0, "its descendants, but not itself" },
    { "metadata", OPT_BOOL, 0,
      "forget the snapshot but keep its data in the images" },
    { NULL },
};

static const SnapVerb snap_verbs[] = {
    { "snapshot-create", snap_cmd_create, snap_create_opts,
      "[FILE] [--redefine [--current]] [--no-metadata] [--disk-only] "
      "[--validate] [--atomic]",
      "create a snapshot from a <domainsnapshot> document",
      "Takes a snapshot as FILE describes it (name, description, memory and\n"
      "disks; libvirt's format) or, without FILE, with everything chosen by\n"
      "the machine.  With --redefine, FILE is a document that snapshot-dumpxml\n"
      "printed and only the metadata is recorded." },
    { "snapshot-create-as", snap_cmd_create_as, snap_create_as_opts,
      "[--name NAME] [--description TEXT] [--print-xml] [--no-metadata]\n"
      "       [--disk-only] [--validate] [--atomic]\n"
      "       [--memspec [file=]PATH[,snapshot=TYPE]]\n"
      "       [--diskspec DISK[,snapshot=TYPE][,driver=TYPE][,file=PATH]]...",
      "create a snapshot described by options",
      "Builds the <domainsnapshot> document from the options and takes the\n"
      "snapshot (or only prints the document, with --print-xml).  TYPE is\n"
      "no, internal or external; in a spec a literal comma is written \",,\".\n"
      "NAME, TEXT and then DISK specs may also be given without their option\n"
      "names, in that order." },
    { "snapshot-list", snap_cmd_list, snap_list_opts,
      "[--parent | --roots | --tree | --name] [--leaves] [--no-leaves]\n"
      "       [--inactive] [--active] [--disk-only] [--internal] [--external]\n"
      "       [{[--from] NAME | --current} [--descendants]]",
      "list the snapshots",
      "Shows the snapshots sorted by name with their creation time (local\n"
      "time) and the machine's state then; filters within a group are\n"
      "alternatives, groups must all match." },
    { "snapshot-dumpxml", snap_cmd_dumpxml, snap_dumpxml_opts, "NAME",
      "print a snapshot's document",
      "Prints the <domainsnapshot> document of snapshot NAME." },
    { "snapshot-info", snap_cmd_info, snap_info_opts, "{NAME | --current}",
      "show facts about a snapshot",
      "Shows a snapshot's state, location, place in the tree and whether it\n"
      "is the current one." },
    { "snapshot-current", snap_cmd_current, snap_current_opts,
      "[--name] [NAME]",
      "show or set the current snapshot",
      "Without NAME prints the current snapshot's document (its name with\n"
      "--name); with NAME makes that snapshot the current one." },
    { "snapshot-parent", snap_cmd_parent, snap_parent_opts,
      "{NAME | --current}",
      "print a snapshot's parent",
      "Prints the name of the snapshot's parent; a root has none." },
    { "snapshot-edit", snap_cmd_edit, snap_edit_opts,
      "{NAME | --current} [--rename]",
      "edit a snapshot's document",
      "Opens the snapshot's document in $VISUAL or $EDITOR (vi by default)\n"
      "and stores what changed; only the name (with --rename) and the\n"
      "description may change." },
    { "snapshot-revert", snap_cmd_revert, snap_revert_opts,
      "{NAME | --current} [--running | --paused] [--force]",
      "bring the machine back to a snapshot",
      "Reverts disks (and memory, when the snapshot has it) to the snapshot;\n"
      "the machine then runs or stays paused as it was, unless --running or\n"
      "--paused says otherwise." },
    { "snapshot-delete", snap_cmd_delete, snap_delete_opts,
      "{NAME | --current} [--children | --children-only] [--metadata]",
      "delete a snapshot",
      "Deletes the snapshot (its children move up to its parent), or with\n"
      "--children it and everything below it, or with --children-only just\n"
      "everything below it." },
};

static const SnapVerb *snap_verb_find(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(snap_verbs); i++) {
        if (!strcmp(snap_verbs[i].name, name)) {
            return &snap_verbs[i];
        }
    }
    return NULL;
}

static void snap_verb_help(const SnapVerb *v)
{
    printf("Usage: xblk-snapshot [-c URI | --offline DIR] %s %s\n\n%s\n",
           v->name, v->synopsis, v->description);
    printf("\nOptions:\n");
    for (const SnapOptDef *o = v->opts; o->name; o++) {
        g_autofree char *form = g_strdup_printf(
            "%s--%s%s%s", (o->flags & OPT_POSITIONAL) ? "[" : "", o->name,
            (o->flags & OPT_POSITIONAL) ? "]" : "",
            o->type == OPT_BOOL ? "" :
            o->type == OPT_ARGV ? " <string>..." : " <string>");
        printf("  %-28s %s\n", form, o->help);
    }
    printf("  %-28s %s\n", "--help", "display this help and exit");
}

static void snap_help(void)
{
    printf(
"Usage: xblk-snapshot [-c URI | --offline DIR] [-q] COMMAND [OPTIONS]...\n"
"Domain snapshots of one xblk machine, with virsh's snapshot commands\n"
"\n"
"Commands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(snap_verbs); i++) {
        printf("  %-20s %s\n", snap_verbs[i].name, snap_verbs[i].summary);
    }
    printf(
"  validate FILE        check the domainsnapshot XML document FILE and\n"
"                       print it as xblk writes it back (defaults filled\n"
"                       in); exit 1 with the reason when it is invalid\n"
"\n"
"Options:\n"
"  -c, --connect URI    the machine's QMP monitor: unix:PATH or\n"
"                       tcp:HOST:PORT (xblk-system -qmp ...)\n"
"      --offline DIR    work on a stopped machine's snapshot catalog DIR\n"
"  -q, --quiet          leave out confirmations, table headers and the\n"
"                       blank line that ends each command's output\n"
"  -h, --help           display this help and exit\n"
"  -V, --version        output version information and exit\n"
"\n"
"Run 'xblk-snapshot COMMAND --help' for a command's own help.\n");
}

/* Parses and runs one verb; virsh's exit status (0 or 1). */
static int snap_run_verb(SnapConn *c, const SnapVerb *v, int argc,
                         char **argv)
{
    SnapArgs a = { .verb = v };
    bool help = false;
    int status = 1;
    if (!snap_args_parse(&a, argc, argv, &help)) {
        goto out;
    }
    if (help) {
        snap_verb_help(v);
        status = 0;
        goto out;
    }
    status = v->run(c, &a) ? 0 : 1;
    /* virsh ends every command it ran, failed or not, with a newline. */
    snap_extra("\n");
out:
    snap_args_clear(&a);
    return status;
}

/* ---- validate (unchanged: getopt and "xblk-snapshot:" messages) ---- */

static void snap_validate_help(void)
{
    printf(
"Usage: xblk-snapshot validate FILE\n"
"\n"
"Parses FILE as libvirt's <domainsnapshot> XML (at most %d bytes, no\n"
"DOCTYPE or entities, nothing fetched) and checks names, modes, paths and\n"
"disks.  On success prints the document as xblk writes it and exits 0;\n"
"otherwise prints the reason on standard error and exits 1.\n",
           DSNAP_MAX_DOC_SIZE);
}

static int snap_cmd_validate(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            snap_validate_help();
            return 0;
        }
        fprintf(stderr, "Try 'xblk-snapshot validate --help' for more "
                "information\n");
        return 1;
    }
    if (argc - optind != 1) {
        error_report("validate expects exactly one FILE");
        fprintf(stderr, "Try 'xblk-snapshot validate --help' for more "
                "information\n");
        return 1;
    }
    GError *err = NULL;
    g_autoptr(DomainSnapshotDef) def = dsnap_parse_file(argv[optind], &err);
    if (!def) {
        error_report_err(err);
        return 1;
    }
    dsnap_def_fill_defaults(def, g_get_real_time() / G_USEC_PER_SEC);
    g_autofree char *xml = dsnap_format(def);
    fputs(xml, stdout);
    return 0;
}

/* ---- main ---- */

static void snap_try_help(void)
{
    fprintf(stderr, "Try 'xblk-snapshot --help' for more information\n");
}

/* Global options, up to the command; -1 to go on, else an exit status. */
static int snap_parse_global(int argc, char **argv, SnapConn *c)
{
    static const struct option longopts[] = {
        { "connect", required_argument, NULL, 'c' },
        { "offline", required_argument, NULL, 'O' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int ch;
    /* "+": stop at the command, whose options are its own; ":" and
     * opterr = 0: our messages, naming the program as every other. */
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+:c:qhV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': c->uri = optarg; break;
        case 'O': c->offline_dir = optarg; break;
        case 'q': snap_quiet = true; break;
        case 'h': snap_help(); return 0;
        case 'V':
            printf("xblk-snapshot version " XBLK_VERSION_STRING "\n");
            return 0;
        case ':':
            error_report("option '%s' requires an argument",
                         argv[optind - 1]);
            snap_try_help();
            return 1;
        default:
            error_report("unrecognized option '%s'", argv[optind - 1]);
            snap_try_help();
            return 1;
        }
    }
    if (c->uri && c->offline_dir) {
        snap_error("Options --connect and --offline are mutually exclusive");
        return 1;
    }
    if (optind >= argc) {
        error_report("Not enough arguments");
        snap_try_help();
        return 1;
    }
    return -1;
}

int main(int argc, char **argv)
{
    g_set_prgname("xblk-snapshot");
    SnapConn conn = { .fd = -1 };
    int status = snap_parse_global(argc, argv, &conn);
    if (status >= 0) {
        return status;
    }
    const char *cmd = argv[optind];
    if (!strcmp(cmd, "validate")) {
        int first = optind;
        optind = 0;
        return snap_cmd_validate(argc - first, argv + first);
    }
    const SnapVerb *v = snap_verb_find(cmd);
    if (!v) {
        snap_error("unknown command: '%s'", cmd);
        return 1;
    }
    status = snap_run_verb(&conn, v, argc - optind - 1, argv + optind + 1);
    snap_conn_close(&conn);
    return status;
}
