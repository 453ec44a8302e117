/*
 * machine.c - the console machine; see machine.h.
 *
 * Owns: guest RAM (one page-aligned anonymous mapping, handed to Unicorn
 * with uc_mem_map_ptr), the RAM helpers, the DevHost the devices get, the
 * device wiring (PIC, PIT, IDE, GPU, gamepad, system controller, debug
 * console), the vCPU thread and its loop, run-state transitions and
 * events, frames and the frame hash.
 *
 * The vCPU loop, one step at a time:
 *   1. wait until every disk request due by now has finished on the host
 *      (a late host I/O holds the virtual clock; the wait gives way to
 *      stop and to calls from the main loop);
 *   2. run the due timers (PIT, vblank, disk completions), in deadline
 *      order;
 *   3. act on what devices asked for (power off, reset, an io-error stop,
 *      the frame to stop at);
 *   4. deliver one external interrupt if IF allows and the PIC has one;
 *   5. halted: jump the clock to the next deadline (or sleep until the
 *      main loop wants something); else run a slice of at most
 *      MACHINE_SLICE_BLOCKS, ending at the next deadline at the latest.
 * With real-time pacing (cfg.realtime, machine.h) a step first sleeps
 * until host time reaches the virtual now (a slice may have run ahead),
 * and a halted guest sleeps until host time reaches the next deadline
 * before the clock jumps there; both sleeps are the idle sleep's, with
 * a timeout, so they give way to stop and calls at once.  "Host time"
 * is counted from a base re-taken each time the vCPU leaves parked, so
 * a stop (user, save state, -S) never becomes debt to catch up.
 * Between steps it runs queued calls and parks when asked to stop.  A
 * stop (or a call) preempts the running slice before its next
 * translation block (cpu_preempt), and the rest of that slice runs when
 * the vCPU goes on, before anything else: timers, interrupts and device
 * requests are only looked at where slices really end, so preemption is
 * invisible to the guest.  A stopped machine may thus be inside a slice
 * (slice_pending; the limit lives in the CPU): a save state must carry
 * both.
 *
 * Invariants: only the vCPU thread touches devices, the CPU and the
 * virtual clock (the main loop does so only while the vCPU is parked, and
 * then through machine_run_on_vcpu); fields marked "lock" are shared with
 * the main loop under m->lock; events and run-state changes happen on
 * the main loop (bottom halves), never on the vCPU thread; the block
 * layer is only called on the main loop.  Guest-visible behaviour
 * depends on the virtual clock only.
 *
 * Callers: tools/xblk-system.c, monitor/host/, tests.
 */
#include "hw/xbox/machine.h"
#include "hw/devio.h"
#include "hw/xbox/machine-media.h"
#include "hw/xbox/machine-vmstate.h"
#include "hw/runstate.h"
#include "hw/xbox/cpu.h"
#include "hw/xbox/gamepad.h"
#include "hw/xbox/loader.h"
#include "hw/xbox/pic.h"
#include "hw/xbox/pit.h"
#include "hw/xbox/smc.h"
#include "hw/xbox/vclock.h"
#include "hw/xbox/machine-savestate.h"
#include "hw/xbox/vcpu-priority.h"
#include "hw/error.h"
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

typedef enum {
    EV_FRAME_STOP,
    EV_PANIC,
    EV_IO_ERROR,
    EV_POWER_OFF,
    EV_FRAMES_DONE,
    EV_GUEST_RESET,
} MachineEventKind;

/* Something the vCPU thread reports to the main loop. */
typedef struct MachineEvent {
    XboxMachine *m;
    MachineEventKind kind;
    char *msg;                  /* EV_PANIC */
    char *dev, *node;           /* EV_IO_ERROR */
    bool is_write, stop;
    int ret;
    const char *action;         /* EV_IO_ERROR: QMP's BlockErrorAction */
} MachineEvent;

/* A disk request between DevHostOps.submit and its completion. */
typedef struct MachineIO {
    XboxMachine *m;
    DevIORequest *req;
    VTimer timer;               /* at req->deadline_ns */
    bool done;                  /* lock: host I/O finished */
    int ret;
} MachineIO;

typedef struct MachineCall {
    MachineCallFn *fn;
    void *opaque;
    bool done;
} MachineCall;

struct XboxMachine {
    MachineConfig cfg;
    /* A front end's frame hook (machine_set_frame_hook), vCPU thread. */
    MachineFrameFn *frame_fn;
    void *frame_opaque;
    XblkEngine *engine;         /* the loop, disks and save states */
    bool own_engine;            /* made by machine_new, freed with it */
    uint8_t *ram;
    uint64_t ram_size;
    DevHost host;
    XboxCpu *cpu;
    VClock *vc;
    PicPair *pic;
    Pit *pit;
    IDEController *ide;
    XboxGPU *gpu;
    Gamepad *pad;
    Smc *smc;
    MachineMedia *media;        /* drives as the monitor sees them */
    LoaderImage *image;
    uint16_t irq_levels;        /* as last set, to skip no-op changes */
    MachineVMState st;          /* save states: the machine's own section
                                 * (copied from / to the fields below by
                                 * the vCPU thread around a save / load) */

    /* vCPU thread only */
    VTimer vblank;
    int64_t vblank_base;        /* clock at power-on or reset */
    uint64_t frame;
    bool halted;
    bool slice_pending;         /* a preempted slice is not over */
    bool power_off_req, reset_req;
    bool frame_stop_hit, frames_done;
    /* Real-time pacing: virtual time pace_base_vns is due at host time
     * pace_base_us (g_get_monotonic_time), the rest follows at 1 ns per
     * ns.  pace_rebase: take a new base before the next paced step. */
    bool pace_rebase;
    int64_t pace_base_us;
    int64_t pace_base_vns;
    int64_t parked_at_us;       /* when the vCPU last parked (paced) */

    GThread *thread;
    GMutex lock;
    GCond cond;
    /* lock */
    bool want_run, parked, quit, dead;
    uint64_t run_epoch;         /* times the vCPU went from parked to running */
    GQueue calls;               /* MachineCall * */
    GQueue ios;                 /* MachineIO * */
    unsigned io_host_pending;   /* submitted, host I/O not finished */
    unsigned events_pending;    /* bottom halves not run yet */
    uint64_t frame_pub;         /* frame, for the main loop */
    uint64_t frame_stop_at;     /* 0: none */
    bool guest_shut_down;
    /* Quiescing for save states (machine_quiesce_*): quiesce_req asks the
     * vCPU to park at the first step boundary with no disk request
     * outstanding; quiesced says it did (at quiesce_park_ns). */
    bool quiesce_req, quiesced, quiesce_want_run;
    int64_t quiesce_park_ns;
    void (*quiesce_notify)(void *opaque);   /* when quiesced (any thread) */
    void *quiesce_notify_opaque;
    /* Host time between vblanks (machine_frame_times): a user stop opens
     * a gap that is not counted; a save's or load's pause is. */
    int64_t frame_host_prev_us;     /* 0: gap */
    /* Host time a paced machine slept for host time to catch up since
     * the last vblank (vCPU thread): not part of a frame's time. */
    int64_t frame_paced_sleep_us;
    MachineFrameTimes frame_times;
};

static XboxMachine *current_machine;

/* ---- configuration ---- */

bool machine_parse_ram_size(const char *s, uint64_t *bytes, GError **errp)
{
    char *end;
    errno = 0;
    guint64 n = g_ascii_strtoull(s, &end, 10);
    uint64_t mult = 1ull << 20;
    if (end == s || errno) {
        goto bad;
    }
    if (!g_ascii_strcasecmp(end, "G") || !g_ascii_strcasecmp(end, "GiB")) {
        mult = 1ull << 30;
    } else if (*end && g_ascii_strcasecmp(end, "M") &&
               g_ascii_strcasecmp(end, "MiB")) {
        goto bad;
    }
    if (n > (1ull << 34) || (n * mult != MACHINE_RAM_64M &&
                             n * mult != MACHINE_RAM_128M)) {
        hw_error_set(errp, "the xbox machine has 64 or 128 MiB of RAM, not "
                   "'%s'", s);
        return false;
    }
    *bytes = n * mult;
    return true;
bad:
    hw_error_set(errp, "'%s' is not a size (use 64 or 128, in MiB)", s);
    return false;
}

static void drive_config_clear(MachineDriveConfig *d)
{
    xblk_disk_close(d->disk);
    g_free(d->id);
    g_free(d->qdev);
    g_free(d->node_name);
    g_free(d->model);
    g_free(d->serial);
    *d = (MachineDriveConfig){ 0 };
}

void machine_config_clear(MachineConfig *cfg)
{
    g_free(cfg->hdd_password);
    g_free(cfg->kernel_path);
    g_free(cfg->input_script);
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        drive_config_clear(&cfg->drives[i]);
    }
    *cfg = (MachineConfig){ 0 };
}

static void hdd_key(const MachineConfig *cfg, uint8_t key[32])
{
    memset(key, 0, 32);
    if (cfg->hdd_password) {
        memcpy(key, cfg->hdd_password, MIN(strlen(cfg->hdd_password), 32));
    }
}

/* ---- guest RAM ---- */

static bool ram_in_range(const XboxMachine *m, uint64_t gpa, uint64_t len)
{
    return gpa <= m->ram_size && len <= m->ram_size - gpa;
}

void *machine_ram_map_write(XboxMachine *m, uint64_t gpa, uint64_t len)
{
    if (!ram_in_range(m, gpa, len)) {
        return NULL;
    }
    /* Save-state capture: pages a RAM snapshot still protects are saved
     * and made writable first (one atomic load when none is active).  The
     * caller writes through the pointer before the next pause. */
    xblk_ram_prepare_write(NULL, m->ram + gpa, len);
    return m->ram + gpa;
}

bool machine_ram_write(XboxMachine *m, uint64_t gpa, const void *buf,
                       uint64_t len)
{
    void *p = machine_ram_map_write(m, gpa, len);
    if (!p) {
        return false;
    }
    memcpy(p, buf, len);
    return true;
}

const void *machine_ram_map_read(XboxMachine *m, uint64_t gpa, uint64_t len)
{
    return ram_in_range(m, gpa, len) ? m->ram + gpa : NULL;
}

bool machine_ram_read(XboxMachine *m, uint64_t gpa, void *buf, uint64_t len)
{
    const void *p = machine_ram_map_read(m, gpa, len);
    if (!p) {
        return false;
    }
    memcpy(buf, p, len);
    return true;
}

static bool ram_write_cb(void *opaque, uint64_t gpa, const void *buf,
                         uint64_t len)
{
    return machine_ram_write(opaque, gpa, buf, len);
}

static void ram_clear(XboxMachine *m)
{
    memset(machine_ram_map_write(m, 0, m->ram_size), 0, m->ram_size);
}

uint64_t machine_ram_size(XboxMachine *m)
{
    return m->ram_size;
}

/* ---- events to the main loop ---- */

/* The host's event hooks (process-wide, as QMP's events are). */
static MachineEventOps event_ops;
static void *event_opaque;

void machine_set_event_ops(const MachineEventOps *ops, void *opaque)
{
    event_ops = ops ? *ops : (MachineEventOps){ 0 };
    event_opaque = opaque;
}

void machine_event_tray_moved(const char *dev, const char *qdev, bool open)
{
    if (event_ops.tray_moved) {
        event_ops.tray_moved(event_opaque, dev, qdev, open);
    }
}

static void stop_vm(XblkRunState st)
{
    bool was_running = runstate_is_running();
    runstate_set(st);
    if (was_running && event_ops.stop) {
        event_ops.stop(event_opaque);
    }
}

static void report_io_error(MachineEvent *ev)
{
    if (event_ops.block_io_error) {
        event_ops.block_io_error(event_opaque, ev->dev, ev->node,
                                 ev->is_write, ev->action, ev->ret);
    }
    if (ev->stop) {
        stop_vm(XBLK_RUN_STATE_IO_ERROR);
    }
}

static void event_bh(void *opaque)
{
    MachineEvent *ev = opaque;
    XboxMachine *m = ev->m;
    switch (ev->kind) {
    case EV_FRAME_STOP:
        stop_vm(XBLK_RUN_STATE_PAUSED);
        break;
    case EV_PANIC:
        g_printerr("%s: guest panicked: %s\n", g_get_prgname(), ev->msg);
        if (event_ops.guest_panicked) {
            event_ops.guest_panicked(event_opaque);
        }
        stop_vm(XBLK_RUN_STATE_GUEST_PANICKED);
        break;
    case EV_IO_ERROR:
        report_io_error(ev);
        break;
    case EV_POWER_OFF:
        if (event_ops.shutdown) {
            event_ops.shutdown(event_opaque, true);
        }
        g_mutex_lock(&m->lock);
        m->guest_shut_down = true;
        g_mutex_unlock(&m->lock);
        runstate_set(XBLK_RUN_STATE_SHUTDOWN);
        runstate_request_shutdown(SHUTDOWN_HOST_SIGNAL);
        break;
    case EV_FRAMES_DONE:
        runstate_request_shutdown(SHUTDOWN_HOST_SIGNAL);
        break;
    case EV_GUEST_RESET:
        if (event_ops.reset) {
            event_ops.reset(event_opaque, true);
        }
        break;
    }
    g_free(ev->msg);
    g_free(ev->dev);
    g_free(ev->node);
    g_free(ev);
    g_mutex_lock(&m->lock);
    m->events_pending--;
    g_cond_broadcast(&m->cond);
    g_mutex_unlock(&m->lock);
}

static MachineEvent *event_new(XboxMachine *m, MachineEventKind kind)
{
    MachineEvent *ev = g_new0(MachineEvent, 1);
    ev->m = m;
    ev->kind = kind;
    return ev;
}

static void post_event(XboxMachine *m, MachineEvent *ev)
{
    g_mutex_lock(&m->lock);
    m->events_pending++;
    g_mutex_unlock(&m->lock);
    xblk_engine_call(m->engine, event_bh, ev);
}

/* The vCPU stops itself (it parks after the current step). */
static void self_stop(XboxMachine *m, MachineEvent *ev, bool dead)
{
    g_mutex_lock(&m->lock);
    m->want_run = false;
    m->quiesce_want_run = false;    /* a quiesce must not undo it */
    m->dead |= dead;
    g_mutex_unlock(&m->lock);
    post_event(m, ev);
}

static void panic_stop(XboxMachine *m, const char *msg)
{
    MachineEvent *ev = event_new(m, EV_PANIC);
    ev->msg = g_strdup(msg);
    self_stop(m, ev, false);
}

/* ---- DevHost ---- */

static XboxMachine *host_machine(DevHost *h)
{
    return (XboxMachine *)((char *)h - offsetof(XboxMachine, host));
}

static void host_set_irq(DevHost *h, int irq, bool level)
{
    XboxMachine *m = host_machine(h);
    uint16_t bit = 1u << irq;
    g_assert(irq >= 0 && irq < 16);
    if (!!(m->irq_levels & bit) == level) {
        return;
    }
    m->irq_levels = level ? (m->irq_levels | bit) : (m->irq_levels & ~bit);
    pic_set_irq(m->pic, irq, level);
    cpu_request_exit(m->cpu);   /* take it at the next block boundary */
}

static bool host_ram_read(DevHost *h, uint64_t gpa, void *buf, uint64_t len)
{
    return machine_ram_read(host_machine(h), gpa, buf, len);
}

static bool host_ram_write(DevHost *h, uint64_t gpa, const void *buf,
                           uint64_t len)
{
    return machine_ram_write(host_machine(h), gpa, buf, len);
}

static void *host_map_write(DevHost *h, uint64_t gpa, uint64_t len)
{
    return machine_ram_map_write(host_machine(h), gpa, len);
}

static const void *host_map_read(DevHost *h, uint64_t gpa, uint64_t len)
{
    return machine_ram_map_read(host_machine(h), gpa, len);
}

static int64_t host_clock(DevHost *h)
{
    return vclock_now(host_machine(h)->vc);
}

int64_t machine_clock_ns(XboxMachine *m)
{
    return vclock_now(m->vc);
}

/* Main loop: the host side of a request finished. */
static void io_done_cb(void *opaque, int ret)
{
    MachineIO *io = opaque;
    XboxMachine *m = io->m;
    g_mutex_lock(&m->lock);
    io->ret = ret;
    io->done = true;
    m->io_host_pending--;
    g_cond_broadcast(&m->cond);
    g_mutex_unlock(&m->lock);
}

/* A request the disk refused at once fails as the block layer would
 * have failed it. */
static int refused_errno(const DevIORequest *req)
{
    if (!machine_disk_has_medium(req->disk)) {
        return -ENOMEDIUM;
    }
    if (req->op == DEVIO_WRITE && xblk_disk_read_only(req->disk)) {
        return -EPERM;
    }
    return -EIO;
}

/* Main loop: start the host side (the vCPU thread never calls the
 * engine).  The bounce buffer belongs to the device until completion. */
static void io_start_bh(void *opaque)
{
    MachineIO *io = opaque;
    DevIORequest *req = io->req;
    bool started = false;
    switch (req->op) {
    case DEVIO_READ:
        started = xblk_disk_read(req->disk, req->offset, req->buf, req->len,
                                 io_done_cb, io, NULL);
        break;
    case DEVIO_WRITE:
        started = xblk_disk_write(req->disk, req->offset, req->buf,
                                  req->len, io_done_cb, io, NULL);
        break;
    case DEVIO_FLUSH:
        started = xblk_disk_flush(req->disk, io_done_cb, io, NULL);
        break;
    }
    if (!started) {
        io_done_cb(io, refused_errno(req));
    }
}

bool machine_disk_has_medium(XblkDisk *disk)
{
    return disk && xblk_disk_length(disk, NULL) >= 0;
}

/* vCPU thread, at the deadline (the host I/O is done: see
 * wait_due_io). */
static void io_deliver(void *opaque)
{
    MachineIO *io = opaque;
    XboxMachine *m = io->m;
    DevIORequest *req = io->req;
    g_mutex_lock(&m->lock);
    g_assert(io->done);
    g_queue_remove(&m->ios, io);
    int ret = io->ret;
    g_mutex_unlock(&m->lock);
    g_free(io);
    req->ret = ret;
    req->complete(req, ret);
}

static void host_submit(DevHost *h, DevIORequest *req)
{
    XboxMachine *m = host_machine(h);
    MachineIO *io = g_new0(MachineIO, 1);
    g_assert(req->latency_ns >= 0 && req->complete && req->disk);
    io->m = m;
    io->req = req;
    req->deadline_ns = vclock_now(m->vc) + req->latency_ns;
    vtimer_init(&io->timer, m->vc, io_deliver, io);
    g_mutex_lock(&m->lock);
    g_queue_push_tail(&m->ios, io);
    m->io_host_pending++;
    g_mutex_unlock(&m->lock);
    vtimer_mod(&io->timer, req->deadline_ns);
    xblk_engine_call(m->engine, io_start_bh, io);
}

static void host_io_error(XboxMachine *m, const char *dev, const char *node,
                          bool is_write, int ret, const char *action)
{
    MachineEvent *ev = event_new(m, EV_IO_ERROR);
    ev->dev = g_strdup(dev ? dev : "");
    ev->node = g_strdup(node);
    ev->is_write = is_write;
    ev->ret = ret;
    ev->action = action;
    ev->stop = !strcmp(action, "stop");
    post_event(m, ev);
}

static void host_io_error_stop(DevHost *h, const char *dev, const char *node,
                               bool is_write, int ret)
{
    XboxMachine *m = host_machine(h);
    machine_media_io_error(m->media, dev, ret);
    /* Park at the end of this block; the event sets the run state. */
    g_mutex_lock(&m->lock);
    m->want_run = false;
    m->quiesce_want_run = false;
    g_mutex_unlock(&m->lock);
    cpu_request_exit(m->cpu);
    host_io_error(m, dev, node, is_write, ret, "stop");
}

static void host_io_error_event(DevHost *h, const char *dev,
                                const char *node, bool is_write, int ret,
                                const char *action)
{
    /* The IDE model names only QMP's actions; anything else reports. */
    static const char *const known[] = { "ignore", "report", "stop" };
    const char *a = "report";
    for (size_t i = 0; i < G_N_ELEMENTS(known); i++) {
        if (action && !strcmp(action, known[i])) {
            a = known[i];
        }
    }
    host_io_error(host_machine(h), dev, node, is_write, ret, a);
}

static void host_tray_moved(DevHost *h, const char *dev, bool open)
{
    XboxMachine *m = host_machine(h);
    if (m->media) {
        machine_media_tray_moved(m->media, dev, open);
    }
}

static const DevHostOps machine_host_ops = {
    .set_irq = host_set_irq,
    .ram_read = host_ram_read,
    .ram_write = host_ram_write,
    .ram_map_write = host_map_write,
    .ram_map_read = host_map_read,
    .clock_ns = host_clock,
    .submit = host_submit,
    .io_error_stop = host_io_error_stop,
    .io_error_event = host_io_error_event,
    .tray_moved = host_tray_moved,
};

/* ---- device wiring ---- */

static uint32_t pic_port_read(void *opaque, uint32_t port, unsigned size)
{
    XboxMachine *m = opaque;
    uint32_t v = pic_ioport_read(m->pic, port, size);
    cpu_request_exit(m->cpu);   /* a poll read acknowledges */
    return v;
}

static void pic_port_write(void *opaque, uint32_t port, uint32_t val,
                           unsigned size)
{
    XboxMachine *m = opaque;
    pic_ioport_write(m->pic, port, val, size);
    cpu_request_exit(m->cpu);   /* a mask or EOI may let one through */
}

static uint32_t ide_port_read(void *opaque, uint32_t port, unsigned size)
{
    return ide_ioport_read(opaque, port, size);
}

static void ide_port_write(void *opaque, uint32_t port, uint32_t val,
                           unsigned size)
{
    ide_ioport_write(opaque, port, val, size);
}

static void pit_out(void *opaque, bool level)
{
    XboxMachine *m = opaque;
    host_set_irq(&m->host, PIT_IRQ, level);
}

static void smc_power(void *opaque, SmcPowerRequest req)
{
    XboxMachine *m = opaque;
    if (req == SMC_POWER_OFF) {
        m->power_off_req = true;
    } else {
        m->reset_req = true;
    }
    cpu_request_exit(m->cpu);
}

static void register_ide_ports(XboxMachine *m)
{
    uint32_t start = 0;
    bool in_run = false;
    for (uint32_t p = 0; p <= 0x10000; p++) {
        bool claimed = p < 0x10000 && ide_claims_port(p);
        if (claimed && !in_run) {
            start = p;
            in_run = true;
        } else if (!claimed && in_run) {
            cpu_register_ports(m->cpu, start, p - start, ide_port_read,
                               ide_port_write, m->ide);
            in_run = false;
        }
    }
}

static bool wire_devices(XboxMachine *m, GError **errp)
{
    cpu_register_ports(m->cpu, PIC_MASTER_PORT, 2, pic_port_read,
                       pic_port_write, m);
    cpu_register_ports(m->cpu, PIC_SLAVE_PORT, 2, pic_port_read,
                       pic_port_write, m);
    cpu_register_ports(m->cpu, PIT_PORT_BASE, 4, pit_ioport_read,
                       pit_ioport_write, m->pit);
    register_ide_ports(m);
    cpu_register_ports(m->cpu, GAMEPAD_PORT_BASE, GAMEPAD_PORT_SIZE,
                       gamepad_ioport_read, gamepad_ioport_write, m->pad);
    cpu_register_ports(m->cpu, SMC_PORT_BASE, SMC_PORT_SIZE,
                       smc_ioport_read, smc_ioport_write, m->smc);
    cpu_register_ports(m->cpu, DEBUGCON_PORT, 1, smc_ioport_read,
                       smc_ioport_write, m->smc);
    return cpu_register_mmio(m->cpu, GPU_MMIO_BASE, GPU_MMIO_SIZE,
                             gpu_mmio_read, gpu_mmio_write, m->gpu, errp);
}

static bool attach_drives(XboxMachine *m, GError **errp)
{
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MachineDriveConfig *d = &m->cfg.drives[i];
        if (d->kind == IDE_DRIVE_NONE) {
            continue;
        }
        /* The controller holds the backend only with a medium in it
         * (machine-media.h). */
        IDEDriveConfig c = {
            .kind = d->kind, .disk = machine_disk_has_medium(d->disk) ? d->disk
                                                                 : NULL,
            .id = d->id,
            .node_name = d->node_name, .model = d->model,
            .serial = d->serial, .locked = d->locked,
            .werror = d->werror, .rerror = d->rerror,
        };
        hdd_key(&m->cfg, c.password);
        if (!ide_attach(m->ide, i, &c, errp)) {
            g_prefix_error(errp, "drive %s (bus %d, unit %d): ",
                          d->id ? d->id : "?", i / 2, i % 2);
            return false;
        }
    }
    return true;
}

/* ---- frames ---- */

static void vblank_arm(XboxMachine *m)
{
    vtimer_mod(&m->vblank,
               m->vblank_base + (int64_t)(m->frame + 1) * GPU_VBLANK_NS);
}

static void frame_time_account_locked(XboxMachine *m)
{
    int64_t now = g_get_monotonic_time();
    int64_t slept = m->frame_paced_sleep_us;
    m->frame_paced_sleep_us = 0;
    if (m->frame_host_prev_us) {
        int64_t d = now - m->frame_host_prev_us - slept;
        m->frame_times.frames++;
        m->frame_times.max_us = MAX(m->frame_times.max_us, d);
        m->frame_times.over_budget += d > MACHINE_FRAME_BUDGET_US;
    }
    m->frame_host_prev_us = now;
}

void machine_frame_times(XboxMachine *m, MachineFrameTimes *out)
{
    g_mutex_lock(&m->lock);
    *out = m->frame_times;
    memset(&m->frame_times, 0, sizeof(m->frame_times));
    g_mutex_unlock(&m->lock);
}

static void vblank_cb(void *opaque)
{
    XboxMachine *m = opaque;
    gpu_vblank(m->gpu);
    m->frame++;
    gamepad_vblank(m->pad, m->frame);
    vblank_arm(m);
    g_mutex_lock(&m->lock);
    m->frame_pub = m->frame;
    frame_time_account_locked(m);
    if (m->frame_stop_at && m->frame >= m->frame_stop_at) {
        m->frame_stop_at = 0;
        m->frame_stop_hit = true;
    }
    g_mutex_unlock(&m->lock);
    if (m->frame_fn) {
        m->frame_fn(m->frame_opaque, m, m->frame);
    }
    if (m->cfg.frames_limit && m->frame >= m->cfg.frames_limit) {
        m->frames_done = true;
    }
}

void machine_set_frame_hook(XboxMachine *m, MachineFrameFn *fn,
                            void *opaque)
{
    m->frame_fn = fn;
    m->frame_opaque = opaque;
}

bool machine_read_screen(XboxMachine *m, uint32_t *dst, GError **errp)
{
    return gpu_read_scanout(m->gpu, dst, errp);
}

void machine_set_input(XboxMachine *m, const GamepadState *st)
{
    gamepad_set_host_state(m->pad, st);
}

void machine_get_input(XboxMachine *m, GamepadState *out)
{
    gamepad_get_host_state(m->pad, out);
}

uint64_t machine_frame(XboxMachine *m)
{
    g_mutex_lock(&m->lock);
    uint64_t f = m->frame_pub;
    g_mutex_unlock(&m->lock);
    return f;
}

bool machine_frame_stop_at(XboxMachine *m, uint64_t frame, GError **errp)
{
    bool ok;
    g_mutex_lock(&m->lock);
    ok = frame > m->frame_pub;
    if (ok) {
        m->frame_stop_at = frame;
    } else {
        hw_error_set(errp, "frame %" G_GUINT64_FORMAT " has already ended "
                   "(the machine is at frame %" G_GUINT64_FORMAT ")", frame,
                   m->frame_pub);
    }
    g_mutex_unlock(&m->lock);
    return ok;
}

typedef struct HashCall {
    char *hex;
} HashCall;

struct MachineHash {
    XXH3_state_t *st;
};

MachineHash *machine_hash_new(void)
{
    MachineHash *h = g_new0(MachineHash, 1);
    h->st = XXH3_createState();
    XXH3_128bits_reset(h->st);
    return h;
}

void machine_hash_update(MachineHash *h, const void *buf, size_t len)
{
    XXH3_128bits_update(h->st, buf, len);
}

char *machine_hash_finish(MachineHash *h, const GByteArray *regs)
{
    XXH128_canonical_t canon;
    XXH3_128bits_update(h->st, regs->data, regs->len);
    XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(h->st));
    XXH3_freeState(h->st);
    g_free(h);
    GString *s = g_string_sized_new(32);
    for (size_t i = 0; i < sizeof(canon.digest); i++) {
        g_string_append_printf(s, "%02x", canon.digest[i]);
    }
    return g_string_free(s, FALSE);
}

static void hash_on_vcpu(XboxMachine *m, void *opaque)
{
    HashCall *hc = opaque;
    g_autoptr(GByteArray) regs = cpu_register_image(m->cpu);
    MachineHash *h = machine_hash_new();
    machine_hash_update(h, m->ram, m->ram_size);
    hc->hex = machine_hash_finish(h, regs);
}

bool machine_is_parked(XboxMachine *m)
{
    g_mutex_lock(&m->lock);
    bool parked = m->parked && !m->want_run;
    g_mutex_unlock(&m->lock);
    return parked;
}

char *machine_frame_hash(XboxMachine *m, GError **errp)
{
    HashCall hc = { NULL };
    if (!machine_is_parked(m)) {
        hw_error_set(errp, "the machine is running: stop it first");
        return NULL;
    }
    machine_run_on_vcpu(m, hash_on_vcpu, &hc);
    return hc.hex;
}

/* ---- reset ---- */

/* Power-on state of everything, program loaded again (vCPU thread). */
static bool do_reset(XboxMachine *m, GError **errp)
{
    pic_reset(m->pic);
    m->irq_levels = 0;
    pit_reset(m->pit);
    ide_reset(m->ide);
    gpu_reset(m->gpu);
    smc_reset(m->smc);
    m->frame = 0;
    gamepad_vblank(m->pad, 0);
    m->vblank_base = vclock_now(m->vc);
    vblank_arm(m);
    g_mutex_lock(&m->lock);
    m->frame_pub = 0;           /* a pending frame stop counts anew */
    g_mutex_unlock(&m->lock);
    m->halted = false;
    m->slice_pending = false;
    m->power_off_req = m->reset_req = false;
    m->frame_stop_hit = m->frames_done = false;
    ram_clear(m);
    return cpu_reset_engine(m->cpu, errp) &&
           loader_boot(m->image, m->cpu, ram_write_cb, m, errp);
}

static void reset_on_vcpu(XboxMachine *m, void *opaque)
{
    GError *err = NULL;
    if (!do_reset(m, &err)) {
        panic_stop(m, err->message);
        g_error_free(err);
    }
}

void machine_system_reset(XboxMachine *m)
{
    machine_run_on_vcpu(m, reset_on_vcpu, NULL);
    if (event_ops.reset) {
        event_ops.reset(event_opaque, false);
    }
    XblkRunState st = runstate_get();
    if (st != XBLK_RUN_STATE_RUNNING && st != XBLK_RUN_STATE_INMIGRATE &&
        st != XBLK_RUN_STATE_FINISH_MIGRATE) {
        runstate_set(XBLK_RUN_STATE_PRELAUNCH);
    }
}

/* ---- the vCPU loop ---- */

static bool late_io_locked(XboxMachine *m, int64_t now)
{
    for (GList *l = m->ios.head; l; l = l->next) {
        MachineIO *io = l->data;
        if (!io->done && io->req->deadline_ns <= now) {
            return true;
        }
    }
    return false;
}

/* Holds the clock until the host side of every due request is done;
 * false if the main loop wants the thread first (stop, a call). */
static bool wait_due_io(XboxMachine *m)
{
    int64_t now = vclock_now(m->vc);
    bool ok = true;
    g_mutex_lock(&m->lock);
    while (late_io_locked(m, now)) {
        if (!m->want_run || m->quit || !g_queue_is_empty(&m->calls)) {
            ok = false;
            break;
        }
        g_cond_wait(&m->cond, &m->lock);
    }
    g_mutex_unlock(&m->lock);
    return ok;
}

/* What devices asked for during the slice or the timers; true if the
 * machine stopped itself. */
static bool handle_requests(XboxMachine *m)
{
    if (m->power_off_req) {
        m->power_off_req = false;
        self_stop(m, event_new(m, EV_POWER_OFF), true);
        return true;
    }
    if (m->reset_req) {
        m->reset_req = false;
        reset_on_vcpu(m, NULL);
        post_event(m, event_new(m, EV_GUEST_RESET));
    }
    if (m->frames_done) {
        m->frames_done = false;
        self_stop(m, event_new(m, EV_FRAMES_DONE), true);
        return true;
    }
    if (m->frame_stop_hit) {
        m->frame_stop_hit = false;
        self_stop(m, event_new(m, EV_FRAME_STOP), false);
        return true;
    }
    return false;
}

/* One external interrupt, if IF allows; false on a guest panic. */
static bool deliver_interrupt(XboxMachine *m)
{
    if (!pic_has_interrupt(m->pic) || !cpu_interrupts_enabled(m->cpu)) {
        return true;
    }
    uint8_t vector = pic_acknowledge(m->pic);
    GError *err = NULL;
    if (!cpu_deliver_interrupt(m->cpu, vector, &err)) {
        g_autofree char *msg = g_strdup_printf("external interrupt, vector "
                                               "%u: %s", vector,
                                               err->message);
        g_error_free(err);
        panic_stop(m, msg);
        return false;
    }
    m->halted = false;
    return true;
}

/* No disk request between submission and delivery (vCPU thread, or the
 * main loop while no vCPU thread runs). */
static bool quiescent_locked(XboxMachine *m)
{
    return g_queue_is_empty(&m->ios) && ide_in_flight(m->ide) == 0;
}

/* The main loop wants the vCPU thread: a stop, quit, a queued call, or a
 * quiesce that can park now (one waiting for disk requests lets the
 * thread sleep on: they complete at deadlines it is waiting for). */
static bool vcpu_wanted_locked(XboxMachine *m)
{
    return !m->want_run || m->quit || !g_queue_is_empty(&m->calls) ||
           (m->quiesce_req && quiescent_locked(m));
}

#define SLEEP_FOREVER INT64_MAX

/* Sleeps until the main loop wants the thread or host monotonic time
 * (g_get_monotonic_time) reaches until_us; true in the latter case. */
static bool vcpu_sleep_until(XboxMachine *m, int64_t until_us)
{
    bool reached = false;
    g_mutex_lock(&m->lock);
    while (!vcpu_wanted_locked(m)) {
        if (until_us == SLEEP_FOREVER) {
            g_cond_wait(&m->cond, &m->lock);
        } else if (g_get_monotonic_time() >= until_us) {
            reached = true;
            break;
        } else {
            g_cond_wait_until(&m->cond, &m->lock, until_us);
        }
    }
    g_mutex_unlock(&m->lock);
    return reached;
}

/* Nothing can wake the guest but the main loop. */
static void idle_wait(XboxMachine *m)
{
    vcpu_sleep_until(m, SLEEP_FOREVER);
    /* Real-time pacing: waiting for the main loop is no debt. */
    m->pace_rebase = true;
}

/* ---- real-time pacing (cfg.realtime; machine.h) ---- */

static void pace_set_base(XboxMachine *m)
{
    m->pace_base_us = g_get_monotonic_time();
    m->pace_base_vns = vclock_now(m->vc);
    m->pace_rebase = false;
}

/* Host time (g_get_monotonic_time) at which virtual time t is due. */
static int64_t pace_due_us(const XboxMachine *m, int64_t t)
{
    return m->pace_base_us + (t - m->pace_base_vns + 999) / 1000;
}

/* Behind host time by more than the cap: drop the excess by moving the
 * base forward, so that catching up never races through more than
 * MACHINE_PACE_MAX_DEBT_US worth of frames. */
static void pace_cap_debt(XboxMachine *m, int64_t now_us)
{
    int64_t behind_us = now_us - pace_due_us(m, vclock_now(m->vc));
    if (behind_us > MACHINE_PACE_MAX_DEBT_US) {
        m->pace_base_us += behind_us - MACHINE_PACE_MAX_DEBT_US;
    }
}

/* Sleeps until host time reaches virtual time t (at once if it already
 * did: a machine behind catches up without sleeping); false if the main
 * loop wanted the thread first.  Unpaced machines never sleep here. */
static bool pace_to(XboxMachine *m, int64_t t)
{
    if (!m->cfg.realtime) {
        return true;
    }
    if (m->pace_rebase) {
        pace_set_base(m);
    }
    int64_t now_us = g_get_monotonic_time();
    pace_cap_debt(m, now_us);
    int64_t due_us = pace_due_us(m, t);
    if (now_us >= due_us) {
        return true;
    }
    bool reached = vcpu_sleep_until(m, due_us);
    m->frame_paced_sleep_us += g_get_monotonic_time() - now_us;
    return reached;
}

static uint64_t slice_budget(XboxMachine *m)
{
    uint64_t budget = MACHINE_SLICE_BLOCKS;
    int64_t now = vclock_now(m->vc), next = vclock_next_deadline(m->vc);
    if (pic_has_interrupt(m->pic)) {
        /* Not delivered: IF is clear (wait a short slice for sti), or
         * the sti shadow (take it after one block). */
        budget = cpu_interrupts_flag(m->cpu) ? 1
                                             : MACHINE_MASKED_SLICE_BLOCKS;
    }
    if (next != VCLOCK_NEVER) {
        int64_t blocks = (next - now + MACHINE_NS_PER_BLOCK - 1) /
                         MACHINE_NS_PER_BLOCK;
        budget = MIN(budget, (uint64_t)MAX(blocks, 1));
    }
    return budget;
}

/* A timer armed during a slice (or between the parts of a preempted
 * one) may be due before the slice ends. */
static void deadline_changed(void *opaque, int64_t deadline)
{
    XboxMachine *m = opaque;
    if (!m->cpu || (!cpu_in_slice(m->cpu) && !m->slice_pending)) {
        return;
    }
    int64_t now = vclock_now(m->vc);
    int64_t blocks = deadline <= now ? 0 :
        (deadline - now + MACHINE_NS_PER_BLOCK - 1) / MACHINE_NS_PER_BLOCK;
    cpu_limit_slice(m->cpu, *cpu_block_counter(m->cpu) + blocks);
}

/* After a slice (or a part of one). */
static void slice_done(XboxMachine *m, CpuExit exit)
{
    m->slice_pending = exit == CPU_EXIT_PREEMPTED;
    switch (exit) {
    case CPU_EXIT_PREEMPTED:
        return;                 /* nothing happens between the parts */
    case CPU_EXIT_HLT:
        m->halted = true;
        break;
    case CPU_EXIT_PANIC:
        panic_stop(m, cpu_panic_message(m->cpu));
        return;
    default:
        break;
    }
    handle_requests(m);
}

/* The guest waits for an interrupt: the clock jumps to the next
 * deadline (once host time reached it, when paced). */
static void halt_step(XboxMachine *m)
{
    int64_t next = vclock_next_deadline(m->vc);
    if (next == VCLOCK_NEVER) {
        idle_wait(m);
    } else if (pace_to(m, next)) {
        vclock_warp_to(m->vc, next);
    }
}

static void vcpu_step(XboxMachine *m)
{
    if (m->slice_pending) {
        slice_done(m, cpu_resume_slice(m->cpu));
        return;
    }
    /* Paced: nothing happens at a virtual instant before its host time
     * (the last slice may have run ahead). */
    if (!pace_to(m, vclock_now(m->vc)) || !wait_due_io(m)) {
        return;
    }
    vclock_run_due(m->vc);
    if (vclock_next_deadline(m->vc) <= vclock_now(m->vc)) {
        return;                 /* a completion started a request due now */
    }
    if (handle_requests(m) || !deliver_interrupt(m)) {
        return;
    }
    if (m->halted) {
        halt_step(m);
        return;
    }
    slice_done(m, cpu_run(m->cpu, slice_budget(m)));
}

/* Paced: time spent parked is no debt, and no credit either.  The base
 * moves forward by the time parked, so a guest parked half-way through
 * a halt's wait for the next vblank (a save's pause lands there most of
 * the time) waits only the rest of it afterwards - a fresh base would
 * make it wait the whole frame again and show the next picture late.
 * Whatever changed virtual time meanwhile (a load) asks for a new base
 * (pace_rebase), which wins. */
static void pace_park_shift(XboxMachine *m, bool parked)
{
    int64_t now_us = g_get_monotonic_time();
    if (parked) {
        m->parked_at_us = now_us;
    } else if (m->pace_base_us && m->parked_at_us) {
        m->pace_base_us += now_us - m->parked_at_us;
    } else {
        m->pace_rebase = true;
    }
}

static void set_parked_locked(XboxMachine *m, bool parked)
{
    if (m->parked != parked) {
        m->parked = parked;
        m->run_epoch += !parked;
        pace_park_shift(m, parked);
        g_cond_broadcast(&m->cond);
    }
}

/* Runs the queued calls; true if there were any. */
static bool run_calls_locked(XboxMachine *m)
{
    bool any = false;
    MachineCall *c;
    while ((c = g_queue_pop_head(&m->calls))) {
        g_mutex_unlock(&m->lock);
        c->fn(m, c->opaque);
        g_mutex_lock(&m->lock);
        c->done = true;
        g_cond_broadcast(&m->cond);
        any = true;
    }
    return any;
}

/* Paced: the rest of the process yields to the vCPU (vcpu-priority.h),
 * once per process (a later vCPU thread finds the others lowered). */
static void vcpu_prefer_paced(XboxMachine *m)
{
    static atomic_bool done;
    if (m->cfg.realtime && !atomic_exchange(&done, true)) {
        vcpu_priority_prefer_self(VCPU_PRIORITY_NICE_STEPS);
    }
}

static gpointer vcpu_thread(gpointer opaque)
{
    XboxMachine *m = opaque;
    vcpu_prefer_paced(m);
    g_mutex_lock(&m->lock);
    while (!m->quit) {
        if (run_calls_locked(m)) {
            continue;
        }
        if (m->quiesce_req && quiescent_locked(m)) {
            /* A step boundary with nothing outstanding: park here (a
             * preempted slice goes on after the resume, invisibly). */
            m->quiesce_req = false;
            m->quiesced = true;
            m->want_run = false;
            m->quiesce_park_ns = g_get_monotonic_time() * 1000;
            /* The pause runs from here: tell its waiter at once. */
            if (m->quiesce_notify) {
                m->quiesce_notify(m->quiesce_notify_opaque);
            }
        }
        if (!m->want_run || m->dead) {
            set_parked_locked(m, true);
            g_cond_wait(&m->cond, &m->lock);
            continue;
        }
        set_parked_locked(m, false);
        cpu_clear_preempt(m->cpu);  /* under the lock: see set_want_run */
        g_mutex_unlock(&m->lock);
        vcpu_step(m);
        g_mutex_lock(&m->lock);
    }
    set_parked_locked(m, true);
    g_mutex_unlock(&m->lock);
    return NULL;
}

/* ---- main loop entry points ---- */

void machine_run_on_vcpu(XboxMachine *m, MachineCallFn *fn, void *opaque)
{
    MachineCall c = { fn, opaque, false };
    if (!m->thread || g_thread_self() == m->thread) {
        fn(m, opaque);
        return;
    }
    g_mutex_lock(&m->lock);
    g_queue_push_tail(&m->calls, &c);
    cpu_preempt(m->cpu);        /* at the next block, not the slice's end */
    g_cond_broadcast(&m->cond);
    while (!c.done) {
        g_cond_wait(&m->cond, &m->lock);
    }
    g_mutex_unlock(&m->lock);
}

/* Stopping preempts the running slice: the vCPU parks before its next
 * translation block.  The request and want_run change under the lock,
 * and the vCPU clears the request under it when it decides to run, so a
 * stop is never lost. */
static void set_want_run(XboxMachine *m, bool run)
{
    g_mutex_lock(&m->lock);
    if (m->quiesced) {
        /* Parked for a save or load: the change applies at its end. */
        m->quiesce_want_run = run && !m->dead;
        g_mutex_unlock(&m->lock);
        return;
    }
    if (m->quiesce_req) {
        m->quiesce_want_run = run && !m->dead;
        if (run) {
            g_mutex_unlock(&m->lock);
            return;             /* it runs (to quiesce) anyway */
        }
    }
    bool starting = run && !m->want_run && !m->dead && m->parked;
    uint64_t epoch = m->run_epoch;
    m->want_run = run && !m->dead;
    if (!run) {
        m->frame_host_prev_us = 0;  /* a stop is not a slow frame */
    }
    if (!run) {
        cpu_preempt(m->cpu);
    }
    g_cond_broadcast(&m->cond);
    while (!run && m->thread && !m->parked) {
        g_cond_wait(&m->cond, &m->lock);
    }
    /* Resuming returns once the vCPU runs (or stopped again itself). */
    while (starting && m->thread && m->want_run && !m->quit &&
           m->run_epoch == epoch) {
        g_cond_wait(&m->cond, &m->lock);
    }
    g_mutex_unlock(&m->lock);
}

void machine_pause(XboxMachine *m)
{
    set_want_run(m, false);
}

static void ide_resume_on_vcpu(XboxMachine *m, void *opaque)
{
    ide_resume(m->ide);
}

void machine_resume(XboxMachine *m)
{
    machine_media_iostatus_reset(m->media);     /* QEMU's cont */
    machine_run_on_vcpu(m, ide_resume_on_vcpu, NULL);
    set_want_run(m, true);
}

bool machine_guest_shut_down(XboxMachine *m)
{
    g_mutex_lock(&m->lock);
    bool v = m->guest_shut_down;
    g_mutex_unlock(&m->lock);
    return v;
}

IDEController *machine_ide(XboxMachine *m)
{
    return m->ide;
}

MachineMedia *machine_media(XboxMachine *m)
{
    return m->media;
}

DevHost *machine_devhost(XboxMachine *m)
{
    return &m->host;
}

void machine_register_ports(XboxMachine *m, uint32_t base, uint32_t count,
                            DevReadFn *read, DevWriteFn *write,
                            void *opaque)
{
    g_assert(!m->thread);
    cpu_register_ports(m->cpu, base, count, read, write, opaque);
}

XboxGPU *machine_gpu(XboxMachine *m)
{
    return m->gpu;
}

XboxMachine *machine_current(void)
{
    return current_machine;
}

static void runstate_hook(bool running, void *opaque)
{
    XboxMachine *m = current_machine;
    if (!m) {
        return;
    }
    if (running) {
        machine_resume(m);
    } else {
        machine_pause(m);
    }
}

/* ---- life cycle ---- */

static bool ram_alloc(XboxMachine *m, GError **errp)
{
    void *p = mmap(NULL, m->ram_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        hw_error_set_errno(errp, errno, "cannot map %" G_GUINT64_FORMAT
                         " MiB of guest RAM", m->ram_size >> 20);
        return false;
    }
    m->ram = p;
    /* Huge pages where the kernel has them: the save's write-protection
     * then changes one entry per 2 MiB instead of per 4 KiB, which keeps
     * it out of the pause's budget (ram-snapshot.h). */
    madvise(p, m->ram_size, MADV_HUGEPAGE);
    return true;
}

static bool create_devices(XboxMachine *m, GError **errp)
{
    CpuConfig cc = { m->ram, m->ram_size, ram_write_cb, m };
    uint8_t key[32];
    hdd_key(&m->cfg, key);
    m->host.ops = &machine_host_ops;
    m->vc = vclock_new();
    m->cpu = cpu_new(&cc, errp);
    if (!m->cpu) {
        return false;
    }
    vclock_attach_counter(m->vc, cpu_block_counter(m->cpu),
                          MACHINE_NS_PER_BLOCK);
    vclock_set_deadline_notify(m->vc, deadline_changed, m);
    vtimer_init(&m->vblank, m->vc, vblank_cb, m);
    m->pic = pic_new();
    m->pit = pit_new(m->vc, pit_out, m);
    m->ide = ide_controller_new(&m->host);
    m->gpu = gpu_new(&m->host);
    m->pad = gamepad_new();
    m->smc = smc_new(m->ram_size, m->cfg.seed, key, m->cfg.debugcon,
                     smc_power, m);
    if (m->cfg.input_script &&
        !gamepad_load_script(m->pad, m->cfg.input_script, errp)) {
        g_prefix_error(errp, "-input-script %s: ", m->cfg.input_script);
        return false;
    }
    if (!wire_devices(m, errp) || !attach_drives(m, errp)) {
        return false;
    }
    m->media = machine_media_new(m, m->cfg.drives);
    m->st.vc = m->vc;
    m->st.vblank = &m->vblank;
    return true;
}

static bool config_check(const MachineConfig *cfg, GError **errp)
{
    if (cfg->ram_size != MACHINE_RAM_64M &&
        cfg->ram_size != MACHINE_RAM_128M) {
        hw_error_set(errp, "the xbox machine has 64 or 128 MiB of RAM, not %"
                   G_GUINT64_FORMAT " bytes", cfg->ram_size);
        return false;
    }
    if (cfg->hdd_password && strlen(cfg->hdd_password) > 32) {
        hw_error_set(errp, "hdd-password is longer than 32 bytes");
        return false;
    }
    if (!cfg->kernel_path) {
        hw_error_set(errp, "no program to run (-kernel)");
        return false;
    }
    return true;
}

/* The host's engine, or one of our own on the default GMainContext. */
static bool engine_open(XboxMachine *m, GError **errp)
{
    XblkError *err = NULL;
    m->engine = m->cfg.engine;
    if (!m->engine) {
        XblkEngineOptions opts = {
            .size = sizeof(opts), .glib_context = g_main_context_default(),
        };
        m->engine = xblk_engine_new(&opts, &err);
        m->own_engine = m->engine != NULL;
    }
    if (!m->engine) {
        hw_error_set(errp, "%s", xblk_error_message(err));
        xblk_error_free(err);
        return false;
    }
    runstate_set_loop_context(xblk_engine_glib_context(m->engine));
    return true;
}

XblkEngine *machine_engine(XboxMachine *m)
{
    return m->engine;
}

/* One iteration of the engine's loop (blocking: wait for an event). */
static void loop_iterate(XboxMachine *m, bool blocking)
{
    g_main_context_iteration(xblk_engine_glib_context(m->engine), blocking);
}

XboxMachine *machine_new(MachineConfig *cfg, GError **errp)
{
    if (!config_check(cfg, errp)) {
        return NULL;
    }
    XboxMachine *m = g_new0(XboxMachine, 1);
    m->cfg = *cfg;
    *cfg = (MachineConfig){ 0 };
    m->ram_size = m->cfg.ram_size;
    m->parked = true;
    g_mutex_init(&m->lock);
    g_cond_init(&m->cond);
    g_queue_init(&m->calls);
    g_queue_init(&m->ios);
    if (!engine_open(m, errp)) {
        machine_free(m);
        return NULL;
    }
    m->image = loader_open(m->cfg.kernel_path, m->ram_size, errp);
    if (!m->image || !ram_alloc(m, errp) || !create_devices(m, errp) ||
        !do_reset(m, errp) || !machine_savestate_attach(m, errp)) {
        machine_free(m);
        return NULL;
    }
    return m;
}

void machine_start(XboxMachine *m)
{
    static bool hooked;
    g_assert(!m->thread);
    if (!hooked) {
        runstate_add_hook(runstate_hook, NULL);
        hooked = true;
    }
    current_machine = m;
    m->want_run = runstate_is_running();
    m->thread = g_thread_new("vcpu", vcpu_thread, m);
}

static bool machine_busy(XboxMachine *m)
{
    g_mutex_lock(&m->lock);
    bool busy = m->io_host_pending || m->events_pending;
    g_mutex_unlock(&m->lock);
    return busy;
}

static void free_devices(XboxMachine *m)
{
    MachineIO *io;
    /* The controller goes first: requests it still has in flight then
     * complete into nothing (ide.h), which frees them. */
    ide_controller_free(m->ide);
    m->ide = NULL;
    while ((io = g_queue_pop_head(&m->ios))) {
        DevIORequest *req = io->req;
        vtimer_del(&io->timer);
        g_free(io);
        req->complete(req, -ECANCELED);
    }
    if (m->vc) {
        vtimer_del(&m->vblank);
    }
    gpu_free(m->gpu);
    gamepad_free(m->pad);
    smc_free(m->smc);
    pit_free(m->pit);
    pic_free(m->pic);
    cpu_free(m->cpu);
    vclock_free(m->vc);
}

void machine_free(XboxMachine *m)
{
    if (!m) {
        return;
    }
    machine_savestate_detach(m);
    if (m->thread) {
        g_mutex_lock(&m->lock);
        m->quit = true;
        g_cond_broadcast(&m->cond);
        g_mutex_unlock(&m->lock);
        g_thread_join(m->thread);
        m->thread = NULL;
    }
    if (current_machine == m) {
        current_machine = NULL;
    }
    while (m->engine && machine_busy(m)) {
        loop_iterate(m, true);
    }
    machine_media_free(m->media);
    m->media = NULL;
    free_devices(m);
    loader_image_free(m->image);
    if (m->ram) {
        munmap(m->ram, m->ram_size);
    }
    if (m->cfg.debugcon) {
        fflush(m->cfg.debugcon);
    }
    if (m->own_engine) {
        xblk_engine_free(m->engine);
    }
    machine_config_clear(&m->cfg);
    g_queue_clear(&m->calls);
    g_mutex_clear(&m->lock);
    g_cond_clear(&m->cond);
    g_free(m);
}

/* ---- save states (hw/xbox/machine-savestate.c) ---- */

void machine_quiesce_request(XboxMachine *m)
{
    g_mutex_lock(&m->lock);
    g_assert(!m->quiesce_req && !m->quiesced);
    m->quiesce_want_run = m->want_run;
    if (!m->thread) {
        /* Nothing runs the guest: it is quiescent now or never. */
        m->quiesced = quiescent_locked(m);
        m->quiesce_req = !m->quiesced;
        m->quiesce_park_ns = g_get_monotonic_time() * 1000;
        if (m->quiesced && m->quiesce_notify) {
            m->quiesce_notify(m->quiesce_notify_opaque);
        }
    } else {
        m->quiesce_req = true;
        /* Run until the requests are delivered, even if stopped. */
        m->want_run = !m->dead;
        cpu_preempt(m->cpu);    /* look at it after the current block */
        g_cond_broadcast(&m->cond);
    }
    g_mutex_unlock(&m->lock);
}

int machine_quiesce_poll(XboxMachine *m, GError **errp)
{
    int ret = 0;
    g_mutex_lock(&m->lock);
    if (m->quiesced && (m->parked || !m->thread)) {
        ret = 1;
    } else if (m->dead || m->quit || (!m->thread && m->quiesce_req)) {
        hw_error_set(errp, "the machine %s", m->dead ? "has stopped for good "
                   "(guest shut down or finished)" : "has requests in "
                   "flight and no vCPU to complete them");
        ret = -1;
    } else if (m->quiesce_req && !m->want_run && m->parked) {
        hw_error_set(errp, "the machine stopped before its disk requests "
                   "completed");
        ret = -1;
    }
    if (ret < 0) {
        m->quiesce_req = false;
        m->quiesced = false;
    }
    g_mutex_unlock(&m->lock);
    return ret;
}

bool machine_quiesce(XboxMachine *m, GError **errp)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    machine_quiesce_request(m);
    for (;;) {
        int r = machine_quiesce_poll(m, errp);
        if (r > 0) {
            return true;
        }
        if (r < 0) {
            machine_quiesce_end(m);
            return false;
        }
        if (g_get_monotonic_time() > deadline) {
            machine_quiesce_cancel(m);
            hw_error_set(errp, "the guest's disk requests did not complete "
                       "in 10 s");
            return false;
        }
        /* Not from a coroutine or a callback of the loop: a nested
         * iteration could not run the rest of the batch that entered us,
         * where a guest disk completion may wait. */
        if (!g_main_context_iteration(xblk_engine_glib_context(m->engine),
                                      FALSE)) {
            g_usleep(50);
        }
    }
}

int64_t machine_quiesce_park_ns(XboxMachine *m)
{
    g_mutex_lock(&m->lock);
    int64_t ns = m->quiesce_park_ns;
    g_mutex_unlock(&m->lock);
    return ns;
}

void machine_quiesce_end(XboxMachine *m)
{
    g_mutex_lock(&m->lock);
    m->quiesce_req = false;
    m->quiesced = false;
    m->want_run = m->quiesce_want_run && !m->dead;
    g_cond_broadcast(&m->cond);
    g_mutex_unlock(&m->lock);
}

void machine_quiesce_cancel(XboxMachine *m)
{
    machine_quiesce_end(m);
}

void machine_set_quiesce_notify(XboxMachine *m, void (*fn)(void *opaque),
                                void *opaque)
{
    g_mutex_lock(&m->lock);
    m->quiesce_notify = fn;
    m->quiesce_notify_opaque = opaque;
    g_mutex_unlock(&m->lock);
}

void *machine_ram_host(XboxMachine *m)
{
    return m->ram;
}

/* The machine's saved fields into its section's struct and back (vCPU
 * thread). */
static void machine_state_to_st(XboxMachine *m)
{
    m->st.frame = m->frame;
    m->st.vblank_base = m->vblank_base;
    m->st.halted = m->halted;
    m->st.slice_pending = m->slice_pending;
    m->st.power_off_req = m->power_off_req;
    m->st.reset_req = m->reset_req;
    m->st.irq_levels = m->irq_levels;
}

static void machine_state_from_st(XboxMachine *m)
{
    m->frame = m->st.frame;
    m->vblank_base = m->st.vblank_base;
    m->halted = m->st.halted;
    m->slice_pending = m->st.slice_pending;
    m->power_off_req = m->st.power_off_req;
    m->reset_req = m->st.reset_req;
    m->irq_levels = m->st.irq_levels;
}

guint machine_sections(XboxMachine *m, MachineSection *out)
{
    return machine_vmstate_sections(&(MachineDevices){
        .vc = m->vc, .machine = &m->st, .pic = m->pic, .pit = m->pit,
        .smc = m->smc, .pad = m->pad, .gpu = m->gpu, .ide = m->ide,
        .cpu = m->cpu,
    }, out);
}

void machine_capture(XboxMachine *m, MachineCapture *out)
{
    g_assert(g_queue_is_empty(&m->ios) && ide_in_flight(m->ide) == 0);
    machine_state_to_st(m);
    out->frame = m->frame;
    out->clock_ns = vclock_now(m->vc);
    out->regs = cpu_register_image(m->cpu);
    gpu_scanout(m->gpu, &out->scanout_base, &out->scanout_pitch);
}

void machine_load_begin(XboxMachine *m)
{
    g_assert(g_queue_is_empty(&m->ios) && ide_in_flight(m->ide) == 0);
    machine_state_to_st(m);     /* a refusal leaves these as they are */
}

/* The state's bytes of guest RAM [gpa, gpa + len) back into RAM. */
static bool reread_ram(XboxMachine *m, uint64_t gpa, uint64_t len,
                       MachineStateRamReadFn *read, void *opaque,
                       GError **errp)
{
    g_autofree uint8_t *buf = g_malloc(len);
    if (!read(opaque, gpa, buf, len, errp)) {
        return false;
    }
    memcpy(m->ram + gpa, buf, len);     /* parked: nothing protects RAM */
    return true;
}

/*
 * Loading the CPU's segment selectors (uc_reg_write) sets the accessed
 * bit of their descriptors in guest RAM, which the saved run may not have
 * had: the RAM the guest sees after a load must be the saved RAM, byte
 * for byte (rule 6).  So the descriptors are read again from the state
 * after the CPU section.  Only GDT descriptors with paging off are
 * located here; otherwise all RAM is read again (exact, slower).
 */
static bool restore_descriptors(XboxMachine *m, MachineStateRamReadFn *read,
                                void *opaque, GError **errp)
{
    CpuRegs regs;
    cpu_get_regs(m->cpu, &regs);
    const uint16_t sels[] = { regs.cs, regs.ss, regs.ds, regs.es, regs.fs,
                              regs.gs };
    bool all = regs.cr0 & 0x80000000u;
    for (size_t i = 0; i < G_N_ELEMENTS(sels) && !all; i++) {
        all = (sels[i] & ~3u) && (sels[i] & 4);     /* an LDT descriptor */
    }
    if (all) {
        const uint64_t step = 4 << 20;
        for (uint64_t gpa = 0; gpa < m->ram_size; gpa += step) {
            if (!reread_ram(m, gpa, MIN(step, m->ram_size - gpa), read,
                            opaque, errp)) {
                return false;
            }
        }
        return true;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(sels); i++) {
        uint64_t a = (uint64_t)regs.gdt_base + (sels[i] & ~7u);
        if ((sels[i] & ~3u) && a + 8 <= m->ram_size &&
            !reread_ram(m, a, 8, read, opaque, errp)) {
            return false;
        }
    }
    return true;
}

bool machine_load_end(XboxMachine *m, bool changed,
                      MachineStateRamReadFn *read, void *opaque,
                      GError **errp)
{
    if (!changed) {
        return true;
    }
    /* RAM was replaced: the vCPU's translated code is stale. */
    cpu_flush_translations(m->cpu, m->ram_size);
    /* Even a partial load (post_load refusing) leaves the machine's
     * section committed: take it over so that the fields agree. */
    machine_state_from_st(m);
    m->frame_stop_hit = m->frames_done = false;
    /* Paced: the loaded state's time goes on from the resume's host time
     * (the resume re-bases anyway: loads happen while parked). */
    m->pace_rebase = true;
    g_mutex_lock(&m->lock);
    m->frame_pub = m->frame;
    m->frame_stop_at = 0;       /* host-side stops are forgotten */
    g_mutex_unlock(&m->lock);
    return restore_descriptors(m, read, opaque, errp);
}
