/*
 * mini-host.c - a host that embeds libxblk without being the console
 * machine: its guest (guest.c) runs on a vCPU thread over an mmap'd RAM
 * and one device, writes records to one qcow2 disk, and takes save
 * states through <xblk/xblk.h>.  This file owns the machine side: the
 * engine, RAM, the device's registration, the disk, the vCPU thread, the
 * pause contract and the loop; commands.c owns stdin, signals and the
 * answers.  README.md walks through it.
 *
 * Invariants:
 *   - every libxblk call is made on the loop thread (main), except
 *     xblk_host_paused(), which whichever thread completes the pause
 *     condition makes (the vCPU when it parks last, the loop otherwise);
 *   - the vCPU parks only at a step boundary, and a record it made is in
 *     the queue before it parks: at xblk_host_paused() the queue is empty
 *     and no record write is in flight, so RAM, the device and the disk
 *     agree (every record the device counts is on the disk, and the
 *     mailbox says so);
 *   - between xblk_host_paused() and ops->resume() the loop submits no
 *     request and nothing touches RAM or the device.
 */
#define _GNU_SOURCE
#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_STEP     65104   /* guest clock: 256 steps a 60 Hz frame */
#define DEFAULT_RATE    15360   /* steps/s: 256 pages a frame at 60 Hz */
#define PACE_SLACK_NS   1000000 /* run up to 1 ms ahead before sleeping */
#define SPIN_NS         2000000 /* spin through an engine pause this long */

static int sig_pipe[2] = { -1, -1 };

int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the vCPU thread ---- */

/* Under lock; any thread.  Wakes the loop thread unless a byte waits. */
static void wake_loop(Host *h)
{
    if (!h->wake_pending) {
        h->wake_pending = true;
        if (write(h->wake_wr, "w", 1) < 0) {
            /* the pipe is full: the loop wakes anyway */
        }
    }
}

static bool vcpu_may_run(Host *h)
{
    return !h->quit && !h->engine_pause && h->budget != 0;
}

/*
 * Under lock.  True when the engine's pause is complete (vCPU parked,
 * nothing queued or in flight): the caller then calls xblk_host_paused()
 * once it has dropped the lock (the engine may call back into us).
 */
static bool pause_complete(Host *h)
{
    if (!h->pause_pending || !h->parked || h->queue || h->in_flight) {
        return false;
    }
    h->pause_pending = false;
    h->host_paused = true;
    h->paused_ns = now_ns();
    return true;
}

/*
 * Under lock, parked: an engine pause lasts well under a millisecond, so
 * the vCPU waits for its end spinning on the flag (yielding its CPU to
 * whoever else wants it), for at most SPIN_NS.  resume() then wakes
 * nobody.  With a futex wake-up there, the kernel often ran the woken
 * vCPU on the loop thread's CPU, and on a busy machine the loop thread -
 * which still has the engine's work to finish, its pause figure
 * included - waited milliseconds for its CPU back: the engine reported
 * pauses of ~4 ms that the guest had not seen (~0.1 ms).
 */
static void vcpu_spin(Host *h)
{
    int64_t end = now_ns() + SPIN_NS;

    pthread_mutex_unlock(&h->lock);
    while (atomic_load(&h->engine_pause) && now_ns() < end) {
        sched_yield();          /* the loop thread may need this CPU */
    }
    pthread_mutex_lock(&h->lock);
}

/* Under lock: waits at a step boundary until the vCPU may run again. */
static void vcpu_park(Host *h)
{
    h->parked = true;
    h->parked_ns = now_ns();
    wake_loop(h);
    if (pause_complete(h)) {
        pthread_mutex_unlock(&h->lock);
        xblk_host_paused(h->engine);        /* any thread may */
        pthread_mutex_lock(&h->lock);
    }
    if (h->engine_pause && h->budget != 0 && !h->quit) {
        vcpu_spin(h);
    }
    while (!vcpu_may_run(h) && !h->quit) {  /* quit: the thread ends */
        h->sleeping = true;
        pthread_cond_wait(&h->cond, &h->lock);
        h->sleeping = false;
    }
    h->parked = false;
    if (h->stop_open) {         /* the guest's stop ends when it runs */
        h->stop_ns = now_ns() - h->parked_ns;
        h->stop_open = false;
    }
}

/* Under lock: sleeps while the vCPU is ahead of its rate; true if it
 * waited (the caller looks at everything again). */
static bool vcpu_pace(Host *h, int64_t t0, uint64_t steps)
{
    int64_t due, now;
    struct timespec ts;

    if (h->rate == 0) {
        return false;
    }
    /* whole seconds first: steps * 1e9 would overflow within hours */
    due = t0 + (int64_t)(steps / h->rate * 1000000000ull +
                         steps % h->rate * 1000000000ull / h->rate);
    now = now_ns();
    if (due - now < PACE_SLACK_NS) {
        return false;
    }
    ts.tv_sec = due / 1000000000;
    ts.tv_nsec = due % 1000000000;
    pthread_cond_timedwait(&h->cond, &h->lock, &ts);
    return true;
}

/* Under lock: hands a record to the loop thread. */
static void vcpu_enqueue(Host *h, const uint64_t *data, uint64_t offset)
{
    Record *r = malloc(sizeof(*r));

    if (!r) {
        abort();                /* a guest cannot lose a record */
    }
    r->next = NULL;
    r->host = h;
    r->offset = offset;
    memcpy(r->data, data, sizeof(r->data));
    *h->queue_tail = r;
    h->queue_tail = &r->next;
    h->queued++;
    wake_loop(h);
}

static void *vcpu_main(void *opaque)
{
    Host *h = opaque;
    uint64_t rec[MINI_RECORD_SIZE / 8], offset;
    int64_t t0 = now_ns();
    uint64_t paced = 0;         /* steps since t0 */

    pthread_mutex_lock(&h->lock);
    while (!h->quit) {
        if (!vcpu_may_run(h)) {
            vcpu_park(h);
            t0 = now_ns();      /* a parked guest does not catch up */
            paced = 0;
            continue;
        }
        if (h->queued + h->in_flight >= HOST_QUEUE_MAX) {
            pthread_cond_wait(&h->cond, &h->lock);  /* the disk is behind */
            continue;
        }
        if (vcpu_pace(h, t0, paced)) {
            continue;
        }
        pthread_mutex_unlock(&h->lock);
        bool made = guest_step(&h->dev, h->ram, rec, &offset);
        pthread_mutex_lock(&h->lock);
        if (made) {
            vcpu_enqueue(h, rec, offset);
        }
        h->steps = h->dev.step;
        h->made = h->dev.records;
        paced++;
        if (h->budget > 0 && --h->budget == 0) {
            wake_loop(h);
        }
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

void host_set_budget(Host *h, int64_t budget)
{
    pthread_mutex_lock(&h->lock);
    h->budget = budget;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

bool host_stopped(Host *h)
{
    bool stopped;

    pthread_mutex_lock(&h->lock);
    stopped = h->budget == 0 && h->parked && !h->queue && !h->in_flight;
    pthread_mutex_unlock(&h->lock);
    return stopped;
}

/* ---- the disk: records ---- */

/* Loop thread: the record's request is over.  The mailbox in guest RAM
 * counts it (a host-side write into guest RAM, so through
 * xblk_ram_write: a save may be streaming RAM, its pages protected). */
static void record_finish(Host *h, Record *r)
{
    h->records_done++;
    xblk_ram_write(h->engine, h->ram, &h->records_done,
                   sizeof(h->records_done));
    free(r);
    pthread_mutex_lock(&h->lock);
    h->in_flight--;
    pthread_cond_broadcast(&h->cond);       /* room in the queue */
    pthread_mutex_unlock(&h->lock);
}

/* The completion, on the loop thread (never inside xblk_disk_write). */
static void record_written(void *opaque, int ret)
{
    Record *r = opaque;
    Host *h = r->host;

    if (ret < 0) {
        h->write_errors++;
        reply("event disk-error offset=%llu errno=%d",
              (unsigned long long)r->offset, -ret);
    }
    record_finish(h, r);
    host_kick(h);
}

static void record_submit(Host *h, Record *r)
{
    XblkError *err = NULL;

    if (xblk_disk_write(h->disk, r->offset, r->data, sizeof(r->data),
                        record_written, r, &err)) {
        return;
    }
    /* Only a bad argument fails here: a bug, not the disk. */
    reply("event disk-error offset=%llu %s", (unsigned long long)r->offset,
          xblk_error_message(err));
    xblk_error_free(err);
    h->write_errors++;
    record_finish(h, r);
}

/*
 * Loop thread: submits the queued records (unless the engine holds the
 * pause), completes the engine's pause when its time has come, and lets
 * commands.c answer what it owes.  Called after every loop turn, every
 * completion and from ops->pause().
 */
void host_kick(Host *h)
{
    Record *list = NULL;
    bool paused_now;

    pthread_mutex_lock(&h->lock);
    if (!h->host_paused && h->queue) {
        list = h->queue;
        h->queue = NULL;
        h->queue_tail = &h->queue;
        h->in_flight += h->queued;      /* before the lock drops: the vCPU
                                         * must never see them nowhere */
        h->queued = 0;
    }
    pthread_mutex_unlock(&h->lock);
    while (list) {
        Record *next = list->next;

        record_submit(h, list);
        list = next;
    }
    pthread_mutex_lock(&h->lock);
    paused_now = pause_complete(h);
    pthread_mutex_unlock(&h->lock);
    if (paused_now) {
        xblk_host_paused(h->engine);
    }
    cmd_kick(h);
}

/* ---- the pause contract (XblkHostOps) ---- */

static void ops_pause(void *opaque)
{
    Host *h = opaque;

    pthread_mutex_lock(&h->lock);
    h->engine_pause = true;
    h->pause_pending = true;
    h->stop_ns = -1;
    h->drain_ns = -1;
    h->stop_open = false;
    h->pauses++;
    pthread_cond_broadcast(&h->cond);   /* out of a pacing sleep */
    pthread_mutex_unlock(&h->lock);
    host_kick(h);                       /* parked already: paused at once */
}

static void ops_resume(void *opaque)
{
    Host *h = opaque;

    pthread_mutex_lock(&h->lock);
    /* The guest's stop, as this host sees it: from the vCPU's park to
     * here, until the vCPU itself says when it ran again (when the user
     * had stopped it, the pause cost it nothing: -1). */
    if (h->parked && h->budget != 0) {
        h->stop_ns = now_ns() - h->parked_ns;
        h->drain_ns = h->paused_ns - h->parked_ns;
        h->stop_open = true;
    }
    h->engine_pause = false;            /* a spinning vCPU goes on */
    h->pause_pending = false;
    h->host_paused = false;
    if (h->sleeping) {
        pthread_cond_broadcast(&h->cond);
    }
    pthread_mutex_unlock(&h->lock);
}

/* Inside the pause of a save: what the state records of the instant. */
static void ops_capture(void *opaque, XblkStateCapture *c)
{
    Host *h = opaque;

    c->frame = h->dev.step;
    c->clock_ns = (int64_t)h->dev.step * NS_PER_STEP;
    /* Members past the engine's `size` do not exist (ABI policy). */
    if (c->size >= offsetof(XblkStateCapture, title) + sizeof(c->title)) {
        c->title = "mini-host";
    }
    h->save_hash = MINI_HASH_INIT;      /* the streaming starts after */
    h->save_next = 0;
    h->save_hash_ok = true;
}

/* The streaming thread, while the guest runs on: RAM as it was at the
 * pause, in order.  Only our own hash is touched here. */
static void ops_save_page(void *opaque, uint64_t offset, const void *page,
                          size_t len)
{
    Host *h = opaque;

    if (offset != h->save_next || len % 8) {
        h->save_hash_ok = false;        /* not the order promised */
    }
    h->save_hash = mini_hash(h->save_hash, page, len);
    h->save_next = offset + len;
}

/* The streaming thread, once all RAM went by: the frame hash is the
 * hash `checksum` prints for RAM, so a state can be matched with it. */
static void ops_save_finish(void *opaque, XblkStateCapture *c)
{
    Host *h = opaque;

    if (h->save_next != h->ram_size) {
        h->save_hash_ok = false;
    }
    if (c->size >= offsetof(XblkStateCapture, frame_hash) +
        sizeof(c->frame_hash)) {
        if (h->save_hash_ok) {
            snprintf(h->frame_hash, sizeof(h->frame_hash), "%016llx",
                     (unsigned long long)h->save_hash);
        } else {
            snprintf(h->frame_hash, sizeof(h->frame_hash), "bad-pages");
        }
        c->frame_hash = h->frame_hash;
    }
}

/* The device hook after a load: host state derived from the device
 * follows it (every record of the loaded instant was on the disk). */
static bool device_post_load(void *opaque, int version, XblkError **err)
{
    Host *h = (Host *)((char *)opaque - offsetof(Host, dev));

    (void)version;
    (void)err;
    h->records_done = h->dev.records;
    h->loaded_step = h->dev.step;
    pthread_mutex_lock(&h->lock);
    h->steps = h->dev.step;
    h->made = h->dev.records;
    pthread_mutex_unlock(&h->lock);
    return true;
}

/* ---- setup ---- */

typedef struct Options {
    uint64_t ram_mib, seed, rate;
    uint32_t record_every;
    bool stopped, small_pages;
    const char *image, *blockdev, *node_name;
} Options;

static void usage(FILE *f)
{
    fputs(
"NAME\n"
"    mini-host - a tiny emulator that embeds libxblk: guest RAM, one\n"
"    device and a qcow2 disk, with save states driven from stdin\n"
"\n"
"SYNOPSIS\n"
"    mini-host [OPTIONS] IMAGE.qcow2\n"
"    mini-host [OPTIONS] --blockdev OPTIONS\n"
"\n"
"DESCRIPTION\n"
"    A vCPU thread loops over guest RAM: each step overwrites the next\n"
"    page with xorshift64 output and scatters 8 words; every N steps it\n"
"    makes a 4 KiB record that the host writes to the disk at the next\n"
"    offset (wrapping at its end).  The guest is deterministic from its\n"
"    seed.  Save states hold RAM, the device and the disk (a qcow2\n"
"    internal snapshot with the VM state, as `qemu-img snapshot -l` lists\n"
"    it).  The program prints `ok ready ...` once set up, then answers\n"
"    each command line with exactly one line.  Lines run one at a time:\n"
"    a command answered later (save, load, delete, stop, run, checksum,\n"
"    verify) holds the next line until its answer, unless it ends with\n"
"    ` &`, which lets the next line run at once (two operations then\n"
"    overlap, as in a shell).\n"
"\n"
"OPTIONS\n"
"    --ram-mib N        guest RAM in MiB (default 64)\n"
"    --seed N           the guest's seed (default 1)\n"
"    --rate N           steps per second (default 15360: 256 pages per\n"
"                       60 Hz frame); 0 runs as fast as the disk allows\n"
"    --record-every N   steps per disk record (default 16; 0: none)\n"
"    --stopped          start with the guest stopped (see `cont`)\n"
"    --no-huge-pages    leave guest RAM on 4 KiB pages (no MADV_HUGEPAGE:\n"
"                       a save's write-protection then costs the pause\n"
"                       one page-table entry per 4 KiB)\n"
"    --blockdev OPTS    the disk's -blockdev options instead of IMAGE\n"
"    --node-name NAME   the disk's node name with IMAGE (default hd0)\n"
"    --help             this text\n"
"\n"
"COMMANDS (stdin, one per line; a last word & runs it in the background)\n"
"    save NAME [overwrite]   save the state NAME (while the guest runs or\n"
"                            not); overwrite replaces one of that name\n"
"    load NAME               load it (the guest goes on from there if it\n"
"                            was running)\n"
"    delete NAME             delete it (a missing name is no error)\n"
"    stop                    park the guest; answered once every record\n"
"                            it made is on the disk\n"
"    cont                    let it run\n"
"    run N                   let it run N more steps, then park (answered\n"
"                            then, as stop)\n"
"    checksum                guest stopped: hashes of all RAM, of the\n"
"                            device and of the disk's records, read back\n"
"    verify                  guest stopped: replays the guest from its\n"
"                            seed to its step and compares RAM, device and\n"
"                            disk with the replay\n"
"    info NAME               what the state says of itself: its frame\n"
"                            and frame hash (the RAM hash `checksum`\n"
"                            prints, as of the save)\n"
"    stats                   counters\n"
"    quit                    waits for a running save, load or delete,\n"
"                            then exits (as does the end of stdin)\n"
"\n"
"SIGNALS\n"
"    SIGUSR1 saves the state \"quick\" (overwriting it), SIGUSR2 loads it;\n"
"    SIGINT and SIGTERM quit.  Their answers are the commands'.\n"
"\n"
"OUTPUT\n"
"    ok CMD [NAME] key=value...    success; save and load also report\n"
"                                  frame, pause_us (the engine's: host\n"
"                                  paused .. resumed), guest_stop_us (the\n"
"                                  vCPU's: parked .. running again; -1 if\n"
"                                  it was stopped), drain_us (parked ..\n"
"                                  its disk writes done), total_ms; save\n"
"                                  size (VM state bytes)\n"
"    error CMD [NAME] CODE text    failure; CODE is the XblkErrorCode\n"
"                                  (BUSY, NOT_FOUND, EXISTS, INVALID...)\n"
"                                  or MISMATCH (verify)\n"
"    event ...                     unsolicited (a disk write failed)\n"
"    Answers of background commands (`&`, signals) may come after\n"
"    later ones; each repeats its command and name.\n"
"\n"
"EXIT STATUS\n"
"    0 after quit, 1 when setting up failed, 2 on bad usage.\n"
"\n"
"EXAMPLE\n"
"    qemu-img create -f qcow2 hd.qcow2 64M\n"
"    printf 'run 5000\\nsave a\\nrun 5000\\nload a\\nverify\\n' |\n"
"        mini-host --stopped --rate 0 hd.qcow2\n", f);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;

    errno = 0;
    *out = strtoull(s, &end, 0);
    return !errno && end != s && !*end && *s != '-';
}

/* 0: parsed; otherwise the exit status. */
static int parse_options(int argc, char **argv, Options *o)
{
    static const struct option longs[] = {
        { "ram-mib", required_argument, NULL, 'm' },
        { "seed", required_argument, NULL, 's' },
        { "rate", required_argument, NULL, 'r' },
        { "record-every", required_argument, NULL, 'e' },
        { "stopped", no_argument, NULL, 'S' },
        { "no-huge-pages", no_argument, NULL, 'H' },
        { "blockdev", required_argument, NULL, 'b' },
        { "node-name", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    uint64_t every = 16;
    int c;

    *o = (Options){ .ram_mib = 64, .seed = 1, .rate = DEFAULT_RATE,
                    .node_name = "hd0" };
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        bool ok = true;

        switch (c) {
        case 'm': ok = parse_u64(optarg, &o->ram_mib) && o->ram_mib &&
                       o->ram_mib <= (1 << 20); break;
        case 's': ok = parse_u64(optarg, &o->seed); break;
        case 'r': ok = parse_u64(optarg, &o->rate); break;
        case 'e': ok = parse_u64(optarg, &every) && every <= (1 << 20);
                  break;
        case 'S': o->stopped = true; break;
        case 'H': o->small_pages = true; break;
        case 'b': o->blockdev = optarg; break;
        case 'n': o->node_name = optarg; break;
        case 'h': usage(stdout); return -1;
        default: ok = false;
        }
        if (!ok) {
            fprintf(stderr, "mini-host: bad option (see --help)\n");
            return 2;
        }
    }
    o->record_every = (uint32_t)every;
    o->image = optind < argc ? argv[optind] : NULL;
    if (!o->image == !o->blockdev || optind + !!o->image != argc) {
        fprintf(stderr, "usage: mini-host [OPTIONS] IMAGE.qcow2 "
                "(see --help)\n");
        return 2;
    }
    return 0;
}

static int fail(XblkError *err, const char *what)
{
    fprintf(stderr, "mini-host: %s: %s\n", what,
            err ? xblk_error_message(err) : strerror(errno));
    xblk_error_free(err);
    return 1;
}

/* The -blockdev options of IMAGE: a comma in a value is doubled. */
static char *blockdev_options(const Options *o)
{
    size_t n = strlen(o->image) * 2 + strlen(o->node_name) + 64;
    char *s = malloc(n), *p;

    if (!s) {
        return NULL;
    }
    p = s + sprintf(s, "driver=qcow2,node-name=%s,file.driver=file,"
                    "file.filename=", o->node_name);
    for (const char *q = o->image; *q; q++) {
        *p++ = *q;
        if (*q == ',') {
            *p++ = ',';
        }
    }
    *p = '\0';
    return s;
}

static int open_disk(Host *h, const Options *o, uint64_t *slots)
{
    XblkError *err = NULL;
    char *opts = o->blockdev ? strdup(o->blockdev) : blockdev_options(o);
    int64_t len;

    h->disk = opts ? xblk_disk_open(h->engine, opts, &err) : NULL;
    free(opts);
    if (!h->disk) {
        return fail(err, "opening the disk");
    }
    len = xblk_disk_length(h->disk, &err);
    if (len < 0) {
        return fail(err, "the disk's length");
    }
    *slots = (uint64_t)len / MINI_RECORD_SIZE;
    return 0;
}

/* RAM, the device and the host, handed to the engine. */
static int register_machine(Host *h, const Options *o, uint64_t slots)
{
    XblkError *err = NULL;
    XblkHostOps ops = {
        .size = sizeof(ops), .machine_type = "mini-host",
        .pause = ops_pause, .resume = ops_resume, .capture = ops_capture,
        .save_page = ops_save_page, .save_finish = ops_save_finish,
        .opaque = h,
    };

    if (!guest_power_on(&h->dev, o->seed, h->ram_size / MINI_PAGE_SIZE,
                        slots, o->record_every)) {
        fprintf(stderr, "mini-host: the disk holds no record\n");
        return 1;
    }
    if (!xblk_ram_add(h->engine, "ram", h->ram, h->ram_size, &err)) {
        return fail(err, "adding RAM");
    }
    h->desc = (XblkDeviceDesc){
        .size = sizeof(XblkDeviceDesc), .field_size = sizeof(XblkField),
        .name = "mini-device", .version = 1,
        .struct_size = sizeof(MiniDevice), .fields = mini_device_fields,
        .check = mini_device_check, .post_load = device_post_load,
    };
    if (!xblk_device_add(h->engine, &h->desc, 0, &h->dev, &err)) {
        return fail(err, "adding the device");
    }
    if (!xblk_engine_set_host(h->engine, &ops, &err)) {
        return fail(err, "binding the host");
    }
    return 0;
}

static void report_cleanup(void *opaque, const char *line)
{
    (void)opaque;
    reply("event cleanup %s", line);
}

/* A state a kill left half-written is removed before anything loads. */
static int clean_up_states(Host *h)
{
    XblkError *err = NULL;

    if (xblk_state_cleanup(h->engine, report_cleanup, NULL, &err) < 0) {
        return fail(err, "cleaning up unfinished states");
    }
    return 0;
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;

    if (write(sig_pipe[1], &c, 1) < 0) {
        /* full: an earlier signal is still unread */
    }
    errno = saved;
}

static int setup_signals(void)
{
    static const int sigs[] = { SIGUSR1, SIGUSR2, SIGINT, SIGTERM };
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };

    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        return -1;
    }
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int setup_host(Host *h, const Options *o)
{
    pthread_condattr_t ca;
    int wake[2];

    memset(h, 0, sizeof(*h));
    h->ram_size = o->ram_mib << 20;
    h->rate = o->rate;
    h->budget = o->stopped ? 0 : -1;
    h->queue_tail = &h->queue;
    h->stop_ns = -1;
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    /* Memory of its own, so that a load moves the loaded RAM in. */
    h->ram = mmap(NULL, h->ram_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (h->ram == MAP_FAILED || pipe2(wake, O_NONBLOCK | O_CLOEXEC) < 0 ||
        setup_signals() < 0) {
        return fail(NULL, "setting up");
    }
    /* Transparent huge pages where the kernel gives them on request: the
     * save write-protects RAM inside the pause, one page-table entry per
     * page, so 2 MiB pages keep that out of the pause's budget. */
    if (!o->small_pages) {
        madvise(h->ram, h->ram_size, MADV_HUGEPAGE);
    }
    h->wake_rd = wake[0];
    h->wake_wr = wake[1];
    return 0;
}

/* ---- the loop ---- */

static void drain_fd(int fd)
{
    char buf[64];

    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

/* Empty the pipe first, then allow the next byte: the other order loses
 * a wake-up written in between (read here, flag then still set). */
static void on_wake(Host *h)
{
    drain_fd(h->wake_rd);
    pthread_mutex_lock(&h->lock);
    h->wake_pending = false;
    pthread_mutex_unlock(&h->lock);
}

static void on_signals(Host *h)
{
    unsigned char sigs[16];
    ssize_t n;

    while ((n = read(sig_pipe[0], sigs, sizeof(sigs))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            cmd_signal(h, sigs[i]);
        }
    }
}

/* stdin as read so far: whole lines wait here while a command holds. */
static char in_buf[4096];
static size_t in_len;

static bool line_ready(void)
{
    return memchr(in_buf, '\n', in_len) != NULL;
}

/* Reads what stdin has.  False at its end (a last line without its
 * newline still counts). */
static bool read_stdin(void)
{
    ssize_t n = read(STDIN_FILENO, in_buf + in_len, sizeof(in_buf) - in_len);

    if (n < 0) {
        return errno == EINTR || errno == EAGAIN;
    }
    if (n == 0) {
        if (in_len && in_len < sizeof(in_buf) && !line_ready()) {
            in_buf[in_len++] = '\n';
        }
        return false;
    }
    in_len += (size_t)n;
    if (in_len == sizeof(in_buf) && !line_ready()) {
        reply("error line INVALID longer than %zu bytes", sizeof(in_buf));
        in_len = 0;
    }
    return true;
}

/* Runs the buffered lines in order until one holds the next (it answers
 * later; `&` lets the next go at once) or quit came. */
static void run_lines(Host *h)
{
    char line[sizeof(in_buf)];
    char *nl;

    while (!cmd_holding() && !h->quitting &&
           (nl = memchr(in_buf, '\n', in_len))) {
        size_t n = (size_t)(nl - in_buf);

        memcpy(line, in_buf, n);
        line[n] = '\0';
        in_len -= n + 1;
        memmove(in_buf, nl + 1, in_len);
        cmd_line(h, line);
    }
}

/*
 * The loop of a host without GLib: prepare right before each wait, wait
 * on the engine's descriptor and our own, dispatch.  prepare returning 0
 * means callbacks ran: we still look at our descriptors (without
 * waiting), so that a busy engine never starves stdin.  stdin is read
 * only when no line waits, so a held command keeps the rest in the pipe.
 */
static void run_loop(Host *h)
{
    bool stdin_open = true;

    while (!(h->quitting && cmd_idle(h) && !xblk_state_busy(h->engine))) {
        bool want = stdin_open && !h->quitting && !line_ready();
        struct pollfd p[] = {
            { xblk_engine_fd(h->engine), POLLIN, 0 },
            { h->wake_rd, POLLIN, 0 },
            { sig_pipe[0], POLLIN, 0 },
            { want ? STDIN_FILENO : -1, POLLIN, 0 },
        };
        int timeout = xblk_engine_prepare(h->engine);

        if (poll(p, 4, timeout) < 0 && errno != EINTR) {
            perror("mini-host: poll");
            break;
        }
        if (p[1].revents) {
            on_wake(h);
        }
        if (p[2].revents) {
            on_signals(h);
        }
        if (p[3].revents && !read_stdin()) {
            stdin_open = false;
        }
        xblk_engine_dispatch(h->engine);
        host_kick(h);
        run_lines(h);
        if (!stdin_open && !line_ready() && !cmd_holding()) {
            h->quitting = true;         /* the end of stdin is a quit */
        }
    }
}

/* Stops the vCPU for good, writes what it made, closes everything. */
static void shut_down(Host *h)
{
    pthread_mutex_lock(&h->lock);
    h->quit = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->vcpu, NULL);
    host_kick(h);
    xblk_disk_drain(h->disk);
    reply("ok quit step=%llu records=%llu", (unsigned long long)h->dev.step,
          (unsigned long long)h->dev.records);
    xblk_disk_close(h->disk);
    xblk_engine_free(h->engine);
    munmap(h->ram, h->ram_size);
}

int main(int argc, char **argv)
{
    static Host host;
    Host *h = &host;
    XblkError *err = NULL;
    Options o;
    uint64_t slots = 0;
    int ret = parse_options(argc, argv, &o);

    if (ret) {
        return ret < 0 ? 0 : ret;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if ((ret = setup_host(h, &o))) {
        return ret;
    }
    h->engine = xblk_engine_new(NULL, &err);   /* its own context: no GLib */
    if (!h->engine) {
        return fail(err, "creating the engine");
    }
    if ((ret = open_disk(h, &o, &slots)) ||
        (ret = register_machine(h, &o, slots)) ||
        (ret = clean_up_states(h))) {
        xblk_engine_free(h->engine);
        return ret;
    }
    if (pthread_create(&h->vcpu, NULL, vcpu_main, h)) {
        return fail(NULL, "starting the vCPU");
    }
    reply("ok ready version=%s ram_mib=%llu disk=%s slots=%llu rate=%llu "
          "running=%d", xblk_version_string(),
          (unsigned long long)o.ram_mib, xblk_disk_name(h->disk),
          (unsigned long long)slots, (unsigned long long)o.rate,
          !o.stopped);
    run_loop(h);
    shut_down(h);
    return 0;
}
