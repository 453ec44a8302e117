/*
 * commands.c - the mini-host's interface: the commands of stdin and the
 * signals, each answered with exactly one line on stdout (see --help):
 * save, load and delete through xblk_state_*, with their completion
 * callbacks; stop, cont and run on the vCPU's budget; checksum and
 * verify over guest RAM, the device and the disk read back.
 *
 * Invariants: loop thread only; every command gets one answer, now or,
 * for save/load/delete/stop/run/checksum/verify, when it finishes; a
 * command answered later holds the next line until then, unless it ends
 * with `&` (as a shell's background job: that is how two operations
 * overlap, and signals never hold); while a checksum reads the disk,
 * nothing that could change the machine starts (it would hash a disk of
 * another instant than its RAM).
 */
#define _GNU_SOURCE
#include "host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>

#define CHUNK           (1u << 20)  /* bytes per checksum read */
#define OWED_MAX        16

/* A member of an engine-filled struct exists only below its `size`. */
#define HAS(s, m)       ((s)->size >= offsetof(__typeof__(*(s)), m) + \
                         sizeof((s)->m))

struct Checksum {
    bool verify;
    bool fg;                    /* holds the next line */
    MiniDevice dev;             /* the device at the start */
    uint64_t ram_hash, disk_hash;
    uint64_t bytes, pos;        /* disk bytes to hash, hashed */
    uint8_t *buf;
};

/* A save, load or delete in progress. */
typedef struct Op {
    Host *h;
    const char *cmd;
    bool fg;                    /* holds the next line */
    uint64_t progress_calls, progress_done, progress_total;
    char name[];
} Op;

static struct {                     /* stop / run answers, in order */
    char text[32];
    bool fg;
} owed[OWED_MAX];
static unsigned owed_count;
static unsigned ops_running;        /* Ops whose done has not run */
static bool holding;                /* a foreground answer is owed */

void reply(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static const char *code_name(XblkErrorCode code)
{
    static const char *names[] = {
        [XBLK_ERROR_FAILED] = "FAILED", [XBLK_ERROR_INVALID] = "INVALID",
        [XBLK_ERROR_NOT_FOUND] = "NOT_FOUND", [XBLK_ERROR_EXISTS] = "EXISTS",
        [XBLK_ERROR_BUSY] = "BUSY", [XBLK_ERROR_IO] = "IO",
        [XBLK_ERROR_NO_SPACE] = "NO_SPACE",
        [XBLK_ERROR_UNSUPPORTED] = "UNSUPPORTED",
    };

    if ((unsigned)code < sizeof(names) / sizeof(names[0]) && names[code]) {
        return names[code];
    }
    return "FAILED";
}

static void reply_error(const char *cmd, const char *name,
                        const XblkError *err)
{
    reply("error %s%s%s %s %s", cmd, name ? " " : "", name ? name : "",
          code_name(xblk_error_code(err)), xblk_error_message(err));
}

/* Refuses a command that would change the machine during a checksum. */
static bool refuse_during_checksum(Host *h, const char *cmd,
                                   const char *name)
{
    if (!h->sum) {
        return false;
    }
    reply("error %s%s%s BUSY a checksum is running", cmd, name ? " " : "",
          name ? name : "");
    return true;
}

static long long us(int64_t ns)
{
    return ns < 0 ? -1 : (long long)(ns / 1000);
}

/* ---- save, load, delete ---- */

static void op_progress(void *opaque, uint64_t done, uint64_t total)
{
    Op *op = opaque;

    op->progress_calls++;
    op->progress_done = done;
    op->progress_total = total;
}

static void op_done(void *opaque, const XblkError *err,
                    const XblkStateStats *st)
{
    Op *op = opaque;
    Host *h = op->h;

    ops_running--;
    holding &= !op->fg;
    if (err) {
        h->failures++;
        reply_error(op->cmd, op->name, err);
    } else if (!strcmp(op->cmd, "delete")) {
        h->deletes++;
        reply("ok delete %s total_ms=%.3f", op->name, st->total_ns / 1e6);
    } else {
        bool save = !strcmp(op->cmd, "save");
        char extra[96];
        int64_t stop_ns, drain_ns;

        pthread_mutex_lock(&h->lock);
        stop_ns = h->stop_ns;
        drain_ns = h->drain_ns;
        pthread_mutex_unlock(&h->lock);

        h->last_pause_ns = st->pause_ns;
        save ? h->saves++ : h->loads++;
        if (save) {
            snprintf(extra, sizeof(extra), "size=%llu progress=%llu",
                     HAS(st, vm_state_size) ?
                     (unsigned long long)st->vm_state_size : 0ull,
                     (unsigned long long)op->progress_calls);
        } else {
            snprintf(extra, sizeof(extra), "step=%llu",
                     (unsigned long long)h->loaded_step);
        }
        reply("ok %s %s frame=%llu pause_us=%lld guest_stop_us=%lld "
              "drain_us=%lld pauses=%u total_ms=%.3f %s", op->cmd, op->name,
              HAS(st, frame) ? (unsigned long long)st->frame : 0ull,
              us(st->pause_ns), us(stop_ns), us(drain_ns), h->pauses,
              st->total_ns / 1e6, extra);
    }
    free(op);
}

static Op *op_new(Host *h, const char *cmd, const char *name, bool fg)
{
    Op *op = calloc(1, sizeof(*op) + strlen(name) + 1);

    if (op) {
        op->h = h;
        op->cmd = cmd;
        op->fg = fg;
        strcpy(op->name, name);
    }
    return op;
}

/* Starts a save/load/delete; the answer comes from op_done. */
static void op_start(Host *h, const char *cmd, const char *name,
                     bool overwrite, bool fg)
{
    XblkStateOptions opts = { .size = sizeof(opts), .overwrite = overwrite,
                              .progress = op_progress };
    XblkError *err = NULL;
    Op *op;
    bool ok;

    if (refuse_during_checksum(h, cmd, name)) {
        return;
    }
    if (!(op = op_new(h, cmd, name, fg))) {
        reply("error %s %s FAILED out of memory", cmd, name);
        return;
    }
    if (!xblk_state_busy(h->engine)) {
        h->pauses = 0;          /* a refused one leaves the running one's */
    }
    if (!strcmp(cmd, "save")) {
        ok = xblk_state_save(h->engine, name, &opts, op_done, op, &err);
    } else if (!strcmp(cmd, "load")) {
        ok = xblk_state_load(h->engine, name, &opts, op_done, op, &err);
    } else {
        ok = xblk_state_delete(h->engine, name, NULL, op_done, op, &err);
    }
    if (!ok) {                      /* refused: done will never run */
        h->failures++;
        reply_error(cmd, name, err);
        xblk_error_free(err);
        free(op);
        return;
    }
    ops_running++;
    holding |= fg;
}

/* ---- stop, cont, run ---- */

static void owe(const char *answer, bool fg)
{
    if (owed_count == OWED_MAX) {
        reply("error %s BUSY too many answers owed", answer);
        return;
    }
    snprintf(owed[owed_count].text, sizeof(owed[0].text), "%s", answer);
    owed[owed_count++].fg = fg;
    holding |= fg;
}

void cmd_kick(Host *h)
{
    if (!owed_count || !host_stopped(h)) {
        return;
    }
    for (unsigned i = 0; i < owed_count; i++) {
        reply("ok %s step=%llu records=%llu", owed[i].text,
              (unsigned long long)h->dev.step,
              (unsigned long long)h->dev.records);
        holding &= !owed[i].fg;
    }
    owed_count = 0;
}

static void cmd_run(Host *h, const char *arg, bool fg)
{
    char *end;
    long long n = arg ? strtoll(arg, &end, 0) : -1;
    char answer[32];

    if (!arg || *end || n < 0) {
        reply("error run INVALID expected: run N (steps, N >= 0)");
        return;
    }
    if (refuse_during_checksum(h, "run", NULL)) {
        return;
    }
    snprintf(answer, sizeof(answer), "run %lld", n);
    host_set_budget(h, n);
    owe(answer, fg);
}

/* ---- checksum, verify ---- */

static void sum_free(Host *h)
{
    holding &= !h->sum->fg;
    free(h->sum->buf);
    free(h->sum);
    h->sum = NULL;
}

/* The replay of the guest from its seed, compared with what was read. */
static void verify_finish(Host *h, Checksum *s)
{
    MiniDevice want;
    uint64_t *ram = mmap(NULL, h->ram_size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *disk = malloc(s->bytes ? s->bytes : 1);
    bool r, d, k;

    if (ram == MAP_FAILED || !disk) {
        reply("error verify FAILED out of memory for the replay");
    } else {
        guest_replay(&s->dev, ram, disk, &want);
        r = mini_hash(MINI_HASH_INIT, ram, h->ram_size) == s->ram_hash;
        d = mini_device_equal(&want, &s->dev);
        k = mini_hash(MINI_HASH_INIT, disk, s->bytes) == s->disk_hash;
        reply("%s verify %sstep=%llu ram=%s device=%s disk=%s",
              r && d && k ? "ok" : "error", r && d && k ? "" : "MISMATCH ",
              (unsigned long long)s->dev.step,
              r ? "match" : "differs", d ? "match" : "differs",
              k ? "match" : "differs");
    }
    if (ram != MAP_FAILED) {
        munmap(ram, h->ram_size);
    }
    free(disk);
}

static void sum_finish(Host *h)
{
    Checksum *s = h->sum;

    if (s->verify) {
        verify_finish(h, s);
    } else {
        reply("ok checksum step=%llu records=%llu ram=%016llx "
              "device=%016llx disk=%016llx disk_bytes=%llu",
              (unsigned long long)s->dev.step,
              (unsigned long long)s->dev.records,
              (unsigned long long)s->ram_hash,
              (unsigned long long)mini_device_hash(&s->dev),
              (unsigned long long)s->disk_hash,
              (unsigned long long)s->bytes);
    }
    sum_free(h);
}

static void sum_read_next(Host *h);

static void sum_read_done(void *opaque, int ret)
{
    Host *h = opaque;
    Checksum *s = h->sum;
    uint64_t n = s->bytes - s->pos < CHUNK ? s->bytes - s->pos : CHUNK;

    pthread_mutex_lock(&h->lock);
    h->in_flight--;
    pthread_mutex_unlock(&h->lock);
    if (ret < 0) {
        reply("error %s IO reading the disk at %llu: errno %d",
              s->verify ? "verify" : "checksum",
              (unsigned long long)s->pos, -ret);
        sum_free(h);
        return;
    }
    s->disk_hash = mini_hash(s->disk_hash, s->buf, n);
    s->pos += n;
    sum_read_next(h);
}

/* One chunk at a time, in order: the hash chains over the disk. */
static void sum_read_next(Host *h)
{
    Checksum *s = h->sum;
    uint64_t n = s->bytes - s->pos < CHUNK ? s->bytes - s->pos : CHUNK;
    XblkError *err = NULL;

    if (n == 0) {
        sum_finish(h);
        return;
    }
    pthread_mutex_lock(&h->lock);
    h->in_flight++;             /* a pause waits for our reads too */
    pthread_mutex_unlock(&h->lock);
    if (!xblk_disk_read(h->disk, s->pos, s->buf, n, sum_read_done, h,
                        &err)) {
        pthread_mutex_lock(&h->lock);
        h->in_flight--;
        pthread_mutex_unlock(&h->lock);
        reply_error(s->verify ? "verify" : "checksum", NULL, err);
        xblk_error_free(err);
        sum_free(h);
    }
}

static void cmd_checksum(Host *h, bool verify, bool fg)
{
    const char *cmd = verify ? "verify" : "checksum";
    Checksum *s;

    if (refuse_during_checksum(h, cmd, NULL)) {
        return;
    }
    if (xblk_state_busy(h->engine)) {
        reply("error %s BUSY a save, load or delete runs", cmd);
        return;
    }
    if (!host_stopped(h)) {
        reply("error %s BUSY the guest is running (stop it and wait for "
              "the answer)", cmd);
        return;
    }
    s = calloc(1, sizeof(*s));
    if (!s || !(s->buf = malloc(CHUNK))) {
        free(s);
        reply("error %s FAILED out of memory", cmd);
        return;
    }
    /* The guest is parked and nothing is in flight: RAM, the device and
     * the disk are of one instant until the reads are done. */
    s->verify = verify;
    s->fg = fg;
    holding |= fg;
    s->dev = h->dev;
    s->ram_hash = mini_hash(MINI_HASH_INIT, h->ram, h->ram_size);
    s->disk_hash = MINI_HASH_INIT;
    s->bytes = guest_disk_bytes(&s->dev);
    h->sum = s;
    sum_read_next(h);
}

/* ---- info, stats, dispatch ---- */

/* What a state says of itself, read without its RAM (synchronous). */
static void cmd_info(Host *h, const char *name)
{
    XblkError *err = NULL;
    XblkStateInfo *info = xblk_state_info(h->engine, name, &err);

    if (!info) {
        reply_error("info", name, err);
        xblk_error_free(err);
        return;
    }
    reply("ok info %s frame=%llu frame_hash=%s title=%s", name,
          (unsigned long long)info->frame,
          HAS(info, frame_hash) && info->frame_hash ? info->frame_hash : "-",
          HAS(info, title) && info->title ? info->title : "-");
    xblk_state_info_free(info);
}

static void cmd_stats(Host *h)
{
    uint64_t steps, made;
    int running;
    unsigned queued, in_flight;

    pthread_mutex_lock(&h->lock);
    steps = h->steps;
    made = h->made;
    running = h->budget != 0 && !h->engine_pause;
    queued = h->queued;
    in_flight = h->in_flight;
    pthread_mutex_unlock(&h->lock);
    reply("ok stats step=%llu records=%llu records_done=%llu running=%d "
          "queued=%u in_flight=%u saves=%llu loads=%llu deletes=%llu "
          "failures=%llu write_errors=%llu state_busy=%d last_pause_us=%lld "
          "ram_mib=%llu", (unsigned long long)steps,
          (unsigned long long)made, (unsigned long long)h->records_done,
          running, queued, in_flight, (unsigned long long)h->saves,
          (unsigned long long)h->loads, (unsigned long long)h->deletes,
          (unsigned long long)h->failures,
          (unsigned long long)h->write_errors,
          xblk_state_busy(h->engine), us(h->last_pause_ns),
          (unsigned long long)(h->ram_size >> 20));
}

static bool name_command(Host *h, const char *cmd, char *name, char *arg,
                         bool fg)
{
    bool overwrite = arg && !strcmp(arg, "overwrite");

    if (strcmp(cmd, "save") && strcmp(cmd, "load") && strcmp(cmd, "delete")) {
        return false;
    }
    if (!name || (arg && !(overwrite && !strcmp(cmd, "save")))) {
        reply("error %s INVALID expected: %s NAME%s", cmd, cmd,
              strcmp(cmd, "save") ? "" : " [overwrite]");
    } else {
        op_start(h, cmd, name, overwrite, fg);
    }
    return true;
}

/* Splits a line into its words (at most 3 count); a last word `&` is
 * dropped and makes the command a background one.  False: too many. */
static bool split(char *line, char *w[3], bool *fg)
{
    char *word[5] = { NULL }, *save = NULL;
    int n = 0;

    for (char *t = strtok_r(line, " \t\r", &save); t && n < 5;
         t = strtok_r(NULL, " \t\r", &save)) {
        word[n++] = t;
    }
    *fg = !(n > 0 && !strcmp(word[n - 1], "&"));
    n -= !*fg;
    for (int i = 0; i < 3; i++) {
        w[i] = i < n ? word[i] : NULL;
    }
    return n <= 3;
}

void cmd_line(Host *h, char *line)
{
    char *w[3];
    bool fg;

    if (!split(line, w, &fg)) {
        reply("error %s INVALID too many arguments (see --help)", w[0]);
        return;
    }
    char *cmd = w[0], *a1 = w[1], *a2 = w[2];

    if (!cmd || cmd[0] == '#') {
        return;                     /* blank lines and comments */
    }
    if (name_command(h, cmd, a1, a2, fg)) {
        return;
    } else if (!strcmp(cmd, "stop") && !a1) {
        host_set_budget(h, 0);
        owe("stop", fg);
    } else if (!strcmp(cmd, "cont") && !a1) {
        if (!refuse_during_checksum(h, "cont", NULL)) {
            host_set_budget(h, -1);
            reply("ok cont");
        }
    } else if (!strcmp(cmd, "run") && !a2) {
        cmd_run(h, a1, fg);
    } else if ((!strcmp(cmd, "checksum") || !strcmp(cmd, "verify")) && !a1) {
        cmd_checksum(h, cmd[0] == 'v', fg);
    } else if (!strcmp(cmd, "info") && a1 && !a2) {
        cmd_info(h, a1);
    } else if (!strcmp(cmd, "stats") && !a1) {
        cmd_stats(h);
    } else if (!strcmp(cmd, "quit") && !a1) {
        h->quitting = true;         /* answered once everything is over */
    } else {
        reply("error %s INVALID unknown command or arguments (see --help)",
              cmd);
    }
}

void cmd_signal(Host *h, int sig)
{
    if (sig == SIGUSR1) {
        op_start(h, "save", "quick", true, false);
    } else if (sig == SIGUSR2) {
        op_start(h, "load", "quick", false, false);
    } else {
        h->quitting = true;
    }
}

bool cmd_idle(Host *h)
{
    return !h->sum && !ops_running;
}

bool cmd_holding(void)
{
    return holding;
}
