/*
 * test-machine.c - the console machine (hw/xbox/machine.c) with its real
 * vCPU thread, devices and virtual clock, running the guests of
 * tests/hw/xbox/guests/.  The test's thread is the main loop.
 *
 * Covers: PIT interrupts through the IDT with the CPU sleeping in hlt
 * (the clock jumps to deadlines), the PIC's nesting / masks / EOIs with
 * interrupts raised by a test port, frame stops, identical frame hashes
 * across runs (also when stopped and resumed at random host instants,
 * and after system_reset), stop taking effect within one slice, guest
 * panics, the DevHost disk path (completion at its virtual deadline even
 * when the host is late; io-error stop), run-on-vCPU calls, the RAM size
 * rules and guest power-off.
 */
#include "guest-path.h"
#include "api/internal.h"
#include "block/block-backend.h"
#include "hw/runstate.h"
#include "hw/xbox/machine.h"
#include "util/main-loop.h"
#include <string.h>
#include <unistd.h>

#define RES 0x200000u
#define LOG_BUF 0x200100u
#define LOG_PTR 0x2000F0u

static MachineConfig config_for(const char *guest)
{
    MachineConfig cfg = { 0 };
    cfg.ram_size = MACHINE_RAM_64M;
    cfg.seed = 42;
    cfg.kernel_path = test_guest_path(guest);
    return cfg;
}

static XboxMachine *machine_for(const char *guest)
{
    GError *err = NULL;
    MachineConfig cfg = config_for(guest);
    XboxMachine *m = machine_new(&cfg, &err);
    g_assert_no_error(err);
    return m;
}

static GHashTable *started;

static void start(XboxMachine *m)
{
    if (!started) {
        started = g_hash_table_new(NULL, NULL);
    }
    g_hash_table_add(started, m);
    runstate_set(XBLK_RUN_STATE_RUNNING);
    machine_start(m);
}

static bool machine_started(XboxMachine *m)
{
    return started && g_hash_table_contains(started, m);
}

static void machine_done(XboxMachine *m)
{
    if (started) {
        g_hash_table_remove(started, m);
    }
    machine_free(m);
}

/* Runs the main loop until cond or a 20 s timeout. */
static void loop_until(bool (*cond)(void *), void *opaque)
{
    gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
    while (!cond(opaque)) {
        if (g_get_monotonic_time() > deadline) {
            g_error("timed out waiting (run state %s)",
                    runstate_name(runstate_get()));
        }
        if (!aio_poll(false)) {
            g_usleep(200);
        }
    }
}

static bool stopped(void *opaque)
{
    return !runstate_is_running() && machine_is_parked(opaque);
}

static void wait_stopped(XboxMachine *m)
{
    loop_until(stopped, m);
}

static void cont(void)
{
    runstate_set(XBLK_RUN_STATE_RUNNING);
}

static uint32_t ram32(XboxMachine *m, uint32_t gpa)
{
    uint32_t v;
    g_assert_true(machine_ram_read(m, gpa, &v, 4));
    return v;
}

/* Stops at frame; a machine not started yet starts (after the stop is
 * set: a fast guest may pass a few frames in microseconds). */
static void run_to_frame(XboxMachine *m, uint64_t frame)
{
    GError *err = NULL;
    g_assert_true(machine_frame_stop_at(m, frame, &err));
    g_assert_no_error(err);
    if (!machine_started(m)) {
        start(m);
    } else if (!runstate_is_running()) {
        cont();
    }
    wait_stopped(m);
    g_assert_cmpint(runstate_get(), ==, XBLK_RUN_STATE_PAUSED);
    g_assert_cmpuint(machine_frame(m), ==, frame);
}

typedef struct ClockCall {
    int64_t ns;
} ClockCall;

static void clock_on_vcpu(XboxMachine *m, void *opaque)
{
    ((ClockCall *)opaque)->ns = machine_clock_ns(m);
}

static int64_t clock_of(XboxMachine *m)
{
    ClockCall c;
    machine_run_on_vcpu(m, clock_on_vcpu, &c);
    return c.ns;
}

static void test_ram_size(void)
{
    uint64_t b;
    GError *err = NULL;
    g_assert_true(machine_parse_ram_size("64", &b, &err));
    g_assert_cmpuint(b, ==, 64u << 20);
    g_assert_true(machine_parse_ram_size("128M", &b, &err));
    g_assert_cmpuint(b, ==, 128u << 20);
    g_assert_true(machine_parse_ram_size("64m", &b, &err));
    g_assert_true(machine_parse_ram_size("128MiB", &b, &err));
    static const char *bad[] = { "256", "0", "", "64K", "abc", "64MB x",
                                 "1G", "-64", "99999999999999999999" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(machine_parse_ram_size(bad[i], &b, &err));
        g_assert_nonnull(err);
        g_clear_error(&err);
    }
    MachineConfig cfg = config_for("loop.elf");
    cfg.ram_size = 96u << 20;
    g_assert_null(machine_new(&cfg, &err));
    g_assert_nonnull(strstr(err->message, "64 or 128 MiB"));
    g_clear_error(&err);
    machine_config_clear(&cfg);
    cfg = (MachineConfig){ .ram_size = MACHINE_RAM_64M,
                           .kernel_path = g_strdup("/nonexistent.elf") };
    g_assert_null(machine_new(&cfg, &err));
    g_assert_nonnull(strstr(err->message, "/nonexistent.elf"));
    g_clear_error(&err);
    machine_config_clear(&cfg);
}

/* PIT IRQ0 through the IDT, the CPU sleeping in hlt between ticks. */
static void test_timer(void)
{
    XboxMachine *m = machine_for("timer.elf");
    run_to_frame(m, 3);
    g_assert_cmphex(ram32(m, RES + 4), ==, 0xD0E);
    g_assert_cmpuint(ram32(m, RES), ==, 10);
    g_assert_cmpuint(ram32(m, RES + 8), ==, 10);   /* woke once per tick */
    /* Halted with IF clear: the clock jumps from vblank to vblank. */
    g_assert_cmpint(clock_of(m), ==, 3 * GPU_VBLANK_NS);
    machine_done(m);
}

static uint32_t irq_port_read(void *opaque, uint32_t port, unsigned size)
{
    return 0xFFFFFFFF;
}

static void irq_port_write(void *opaque, uint32_t port, uint32_t val,
                           unsigned size)
{
    devhost_set_irq(machine_devhost(opaque), val & 15, port == 0x90);
}

static void test_nested(void)
{
    XboxMachine *m = machine_for("nested.elf");
    machine_register_ports(m, 0x90, 2, irq_port_read, irq_port_write, m);
    run_to_frame(m, 1);
    g_assert_cmphex(ram32(m, RES), ==, 0x600D);
    static const uint8_t want[] = { 0xA0, 0x15, 0x13, 0x25, 0x35, 0x17,
                                    0x45, 0xA1, 0xA2, 0x14, 0xA3, 0x1A,
                                    0xA4 };
    uint32_t end = ram32(m, LOG_PTR);
    g_assert_cmpuint(end - LOG_BUF, ==, sizeof(want));
    uint8_t log[sizeof(want)];
    g_assert_true(machine_ram_read(m, LOG_BUF, log, sizeof(log)));
    g_assert_cmpmem(log, sizeof(log), want, sizeof(want));
    g_assert_cmphex(ram32(m, RES + 8) & 0xFF, ==, 0);  /* nothing in service */
    machine_done(m);
}

static char *hash_at(XboxMachine *m, uint64_t frame)
{
    GError *err = NULL;
    run_to_frame(m, frame);
    char *h = machine_frame_hash(m, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(strlen(h), ==, 32);
    return h;
}

typedef struct Noise {
    XboxMachine *m;
    unsigned pauses, calls;
} Noise;

static void nop_on_vcpu(XboxMachine *m, void *opaque)
{
}

/* Stops and calls at host instants unrelated to the guest: each one
 * preempts a slice somewhere in its middle. */
static bool pause_noise(void *opaque)
{
    Noise *n = opaque;
    if (stopped(n->m)) {
        return true;
    }
    g_usleep(g_random_int_range(0, 200));
    if (g_random_boolean()) {
        machine_run_on_vcpu(n->m, nop_on_vcpu, NULL);
        n->calls++;
    } else if (runstate_is_running()) {
        runstate_set(XBLK_RUN_STATE_PAUSED);
        n->pauses++;
        g_usleep(g_random_int_range(0, 100));
        if (machine_frame(n->m) < 20) {
            cont();
        }
    }
    return false;
}

/* Same program, same frame: same RAM and registers, whatever the host
 * did meanwhile. */
static void test_deterministic(void)
{
    XboxMachine *a = machine_for("frames.elf");
    g_autofree char *ha = hash_at(a, 20);
    g_assert_cmpuint(ram32(a, RES), >, 50);        /* timer ticks */
    g_assert_cmpuint(ram32(a, RES + 4), >, 50);    /* bursts */
    uint64_t ticks = ram32(a, RES);
    machine_done(a);

    XboxMachine *b = machine_for("frames.elf");
    GError *err = NULL;
    g_assert_true(machine_frame_stop_at(b, 20, &err));
    start(b);
    Noise noise = { b, 0, 0 };
    loop_until(pause_noise, &noise);
    g_test_message("%u stops and %u calls during the run", noise.pauses,
                   noise.calls);
    g_assert_cmpuint(noise.pauses + noise.calls, >, 0);
    if (machine_frame(b) < 20) {
        cont();
        wait_stopped(b);
    }
    g_autofree char *hb = machine_frame_hash(b, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(ha, ==, hb);
    g_assert_cmpuint(ram32(b, RES), ==, ticks);
    machine_done(b);

    XboxMachine *c = machine_for("frames.elf");
    g_autofree char *h7 = hash_at(c, 7);
    g_assert_cmpstr(h7, !=, ha);
    g_autofree char *hc = hash_at(c, 20);
    g_assert_cmpstr(ha, ==, hc);
    machine_done(c);
}

/* system_reset replays the power-on run exactly. */
static void test_reset(void)
{
    /* Paced at 60 Hz (deterministic all the same): after the reset while
     * running below, the test has 150 ms to ask for the stop at frame 9
     * rather than the microseconds an unthrottled guest leaves. */
    GError *err = NULL;
    MachineConfig cfg = config_for("frames.elf");
    cfg.realtime = true;
    XboxMachine *m = machine_new(&cfg, &err);
    g_assert_no_error(err);
    g_autofree char *h5 = hash_at(m, 5);
    g_autofree char *h9 = hash_at(m, 9);
    machine_system_reset(m);
    g_assert_cmpint(runstate_get(), ==, XBLK_RUN_STATE_PRELAUNCH);
    g_assert_cmpuint(machine_frame(m), ==, 0);
    g_autofree char *r5 = hash_at(m, 5);
    g_assert_cmpstr(h5, ==, r5);
    /* A reset while running keeps running. */
    cont();
    machine_system_reset(m);
    g_assert_true(runstate_is_running());
    g_autofree char *r9 = hash_at(m, 9);
    g_assert_cmpstr(h9, ==, r9);
    machine_done(m);
}

/* Stop parks the vCPU at the end of the current slice. */
static void test_stop_latency(void)
{
    XboxMachine *m = machine_for("loop.elf");
    start(m);
    double max_us = 0, sum_us = 0;
    const int rounds = 50;
    for (int i = 0; i < rounds; i++) {
        g_usleep(2000);
        gint64 t0 = g_get_monotonic_time();
        machine_pause(m);
        double us = g_get_monotonic_time() - t0;
        max_us = MAX(max_us, us);
        sum_us += us;
        g_assert_true(machine_is_parked(m));
        int64_t c0 = clock_of(m);
        g_usleep(1000);
        g_assert_cmpint(clock_of(m), ==, c0);       /* nothing runs */
        machine_resume(m);
    }
    g_test_message("stop-to-parked: mean %.1f us, max %.1f us",
                   sum_us / rounds, max_us);
    g_assert_cmpfloat(max_us, <, 500000);
    machine_done(m);
}

static void test_panic(void)
{
    XboxMachine *m = machine_for("exc.elf");
    start(m);
    wait_stopped(m);
    g_assert_cmpint(runstate_get(), ==, XBLK_RUN_STATE_GUEST_PANICKED);
    g_assert_cmphex(ram32(m, RES), ==, 0x600D);
    machine_done(m);
    m = machine_for("bad.elf");
    start(m);
    wait_stopped(m);
    g_assert_cmpint(runstate_get(), ==, XBLK_RUN_STATE_GUEST_PANICKED);
    g_assert_cmphex(ram32(m, RES), ==, 1);
    machine_done(m);
}

/* ---- the DevHost disk path ---- */

typedef struct IoTest {
    DevIORequest req;
    XboxMachine *m;
    int64_t submitted, completed;
    int ret;
    int chain;                  /* resubmit this many times, latency 0 */
    gint done;
} IoTest;

static void io_complete(DevIORequest *req, int ret)
{
    IoTest *t = req->opaque;
    if (t->chain > 0) {
        /* From the completion, on the vCPU thread: due at once. */
        t->chain--;
        t->req.latency_ns = 0;
        devhost_submit(machine_devhost(t->m), &t->req);
        return;
    }
    t->completed = machine_clock_ns(t->m);
    t->ret = ret;
    g_atomic_int_set(&t->done, 1);
}

static void submit_on_vcpu(XboxMachine *m, void *opaque)
{
    IoTest *t = opaque;
    t->submitted = machine_clock_ns(m);
    devhost_submit(machine_devhost(m), &t->req);
}

static bool io_done(void *opaque)
{
    return g_atomic_int_get(&((IoTest *)opaque)->done);
}

static void run_io(XboxMachine *m, IoTest *t)
{
    t->m = m;
    t->req.complete = io_complete;
    t->req.opaque = t;
    g_atomic_int_set(&t->done, 0);
    machine_run_on_vcpu(m, submit_on_vcpu, t);
    loop_until(io_done, t);
    /* The CPU sleeps in hlt: the clock goes exactly to the deadline,
     * and waits there for a late host request. */
    g_assert_cmpint(t->req.deadline_ns, ==, t->completed);
}

static void test_disk_io(void)
{
    g_autofree char *dir = g_dir_make_tmp("xblk-machine-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "disk.raw", NULL);
    uint8_t *pattern = g_malloc(65536);
    for (int i = 0; i < 65536; i++) {
        pattern[i] = i * 7 + (i >> 8);
    }
    g_assert(g_file_set_contents(path, (char *)pattern, 65536, NULL));
    GError *err = NULL;
    BlockOpts *o = bopts_new();
    bopts_set(o, "driver", "raw");
    BlockBackend *blk = blk_new_open(path, o, BDRV_O_RDWR, &err);
    g_assert_no_error(err);

    XboxMachine *m = machine_for("shadow.elf");     /* sleeps in hlt */
    XblkDisk *disk = xblk_api_disk_wrap(machine_engine(m), blk, "io-test");
    start(m);
    uint8_t *buf = g_malloc0(4096);
    IoTest t = { .req = { .disk = disk, .op = DEVIO_READ, .offset = 8192,
                          .buf = buf, .len = 4096,
                          .latency_ns = 5000000 } };
    run_io(m, &t);
    g_assert_cmpint(t.ret, ==, 0);
    g_assert_cmpint(t.completed, ==, t.submitted + 5000000);
    g_assert_cmpmem(buf, 4096, pattern + 8192, 4096);
    /* Completions that start the next request at once. */
    memset(buf, 0, 4096);
    t = (IoTest){ .req = { .disk = disk, .op = DEVIO_READ, .offset = 4096,
                           .buf = buf, .len = 4096, .latency_ns = 1000 },
                  .chain = 5 };
    run_io(m, &t);
    g_assert_cmpint(t.ret, ==, 0);
    g_assert_cmpint(t.completed, ==, t.submitted + 1000);
    g_assert_cmpmem(buf, 4096, pattern + 4096, 4096);
    /* Latency 0: the host is necessarily late; the clock holds. */
    memset(buf, 0xA5, 4096);
    t = (IoTest){ .req = { .disk = disk, .op = DEVIO_WRITE, .offset = 0,
                           .buf = buf, .len = 4096, .latency_ns = 0 } };
    run_io(m, &t);
    g_assert_cmpint(t.ret, ==, 0);
    g_assert_cmpint(t.completed, ==, t.submitted);
    t = (IoTest){ .req = { .disk = disk, .op = DEVIO_FLUSH,
                           .latency_ns = 1000 } };
    run_io(m, &t);
    g_assert_cmpint(t.ret, ==, 0);
    /* Beyond the end: the error comes back at the deadline. */
    t = (IoTest){ .req = { .disk = disk, .op = DEVIO_READ, .offset = 1 << 30,
                           .buf = buf, .len = 4096, .latency_ns = 100 } };
    run_io(m, &t);
    g_assert_cmpint(t.ret, <, 0);
    xblk_disk_close(disk);
    machine_done(m);
    uint8_t check[4096];
    g_assert_cmpint(blk_pread(blk, 0, 4096, check), ==, 0);
    g_assert_cmphex(check[0], ==, 0xA5);
    g_assert_cmphex(check[4095], ==, 0xA5);
    blk_unref(blk);
    g_free(buf);
    g_free(pattern);
    unlink(path);
    rmdir(dir);
}

static void io_stop_on_vcpu(XboxMachine *m, void *opaque)
{
    DevHost *h = machine_devhost(m);
    h->ops->io_error_stop(h, "ide0-hd0", "disk0", true, -EIO);
}

static void test_io_error_stop(void)
{
    XboxMachine *m = machine_for("loop.elf");
    start(m);
    machine_run_on_vcpu(m, io_stop_on_vcpu, NULL);
    wait_stopped(m);
    g_assert_cmpint(runstate_get(), ==, XBLK_RUN_STATE_IO_ERROR);
    int64_t c0 = clock_of(m);
    cont();                             /* retries (ide_resume) and runs */
    g_usleep(20000);
    g_assert_cmpint(clock_of(m), >, c0);
    machine_done(m);
}

typedef struct Count {
    int calls;
} Count;

static void count_on_vcpu(XboxMachine *m, void *opaque)
{
    ((Count *)opaque)->calls++;
}

static void test_run_on_vcpu(void)
{
    XboxMachine *m = machine_for("loop.elf");
    Count c = { 0 };
    machine_run_on_vcpu(m, count_on_vcpu, &c);      /* before start */
    start(m);
    for (int i = 0; i < 100; i++) {
        machine_run_on_vcpu(m, count_on_vcpu, &c);  /* running */
    }
    machine_pause(m);
    machine_run_on_vcpu(m, count_on_vcpu, &c);      /* parked */
    g_assert_cmpint(c.calls, ==, 102);
    GError *err = NULL;
    g_assert_false(machine_frame_stop_at(m, 0, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    machine_resume(m);
    g_assert_null(machine_frame_hash(m, &err));     /* running */
    g_assert_nonnull(err);
    g_clear_error(&err);
    machine_done(m);
}

/* Must run last: a guest power-off asks the program to shut down. */
static void test_poweroff(void)
{
    XboxMachine *m = machine_for("poweroff.elf");
    start(m);
    wait_stopped(m);
    g_assert_true(machine_guest_shut_down(m));
    g_assert_cmpint(runstate_get(), ==, XBLK_RUN_STATE_SHUTDOWN);
    g_assert_cmpint(runstate_shutdown_requested(), !=, SHUTDOWN_NONE);
    g_assert_cmphex(ram32(m, RES), ==, 0x600D);
    machine_done(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/machine/ram-size", test_ram_size);
    g_test_add_func("/machine/timer", test_timer);
    g_test_add_func("/machine/nested", test_nested);
    g_test_add_func("/machine/deterministic", test_deterministic);
    g_test_add_func("/machine/reset", test_reset);
    g_test_add_func("/machine/stop-latency", test_stop_latency);
    g_test_add_func("/machine/panic", test_panic);
    g_test_add_func("/machine/disk-io", test_disk_io);
    g_test_add_func("/machine/io-error-stop", test_io_error_stop);
    g_test_add_func("/machine/run-on-vcpu", test_run_on_vcpu);
    g_test_add_func("/machine/poweroff", test_poweroff);
    return g_test_run();
}
