/*
 * machine.h - the console machine (-machine xbox, docs/machine.md): guest
 * RAM, the device wiring, the vCPU thread, run states and frames.
 *
 * Threads.  The machine's devices, the CPU and the virtual clock belong
 * to the vCPU thread.  The functions below marked "main loop" are called
 * from the main loop's thread (QMP, the host program); they talk to the
 * vCPU thread under the machine's lock and wait for it where stated.  The
 * RAM helpers may be called from the vCPU thread (devices) or from the
 * main loop while the vCPU is parked.
 *
 * Run states follow hw/runstate.c: machine_start() hooks the vCPU to
 * running <-> stopped changes, so QMP stop/cont (and -S) park and resume
 * it.  The machine stops itself at a requested frame (paused), on a guest
 * panic (guest-panicked, GUEST_PANICKED), on a werror/rerror=stop disk
 * error (io-error, BLOCK_IO_ERROR), and shuts down on the guest's power
 * off (SHUTDOWN, reason guest-shutdown); the state changes and events are
 * made on the main loop.
 *
 * The drives as the monitor sees them (names, device paths, tray, media
 * changes, DEVICE_TRAY_MOVED) are hw/xbox/machine-media.h's.
 */
#ifndef XBLK_HW_XBOX_MACHINE_H
#define XBLK_HW_XBOX_MACHINE_H

#include "hw/ide/ide.h"
#include "hw/xbox/gamepad.h"
#include "hw/xbox/gpu.h"
#include "hw/xbox/machine-vmstate.h"
#include <xblk/xblk.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define MACHINE_RAM_64M         (64ull << 20)
#define MACHINE_RAM_128M        (128ull << 20)
#define MACHINE_NS_PER_BLOCK    10
/* Slice budget in translation blocks (100 us of virtual time), and the
 * shorter one while an interrupt waits for IF (so that it is taken soon
 * after sti). */
#define MACHINE_SLICE_BLOCKS        10000
#define MACHINE_MASKED_SLICE_BLOCKS 1000
#define MACHINE_IDE_DRIVES      4

typedef struct XboxMachine XboxMachine;

typedef struct MachineDriveConfig {
    IDEDriveKind kind;          /* IDE_DRIVE_NONE: the slot is empty */
    XblkDisk *disk;             /* the machine takes it (and closes it);
                                 * a CD drive without a medium has one
                                 * without a medium (or NULL: not
                                 * listed) */
    char *id;                   /* device name, e.g. "ide0-hd0" */
    char *qdev;                 /* device path or -device id; NULL: the
                                 * machine's /machine/unattached/device[N]
                                 * (hw/xbox/machine-media.h) */
    int open_flags;             /* the host's flags of the medium (-drive's
                                 * BDRV_O_*), kept for media changes */
    char *node_name;            /* or NULL */
    char *model, *serial;       /* or NULL: defaults */
    bool locked;                /* HD: SECURITY locked with hdd-password */
    IDEErrorAction werror, rerror;
} MachineDriveConfig;

typedef struct MachineConfig {
    uint64_t ram_size;          /* MACHINE_RAM_64M or MACHINE_RAM_128M */
    uint64_t seed;
    char *hdd_password;         /* up to 32 bytes, or NULL */
    char *kernel_path;          /* flat binary or ELF32 */
    char *input_script;         /* or NULL */
    FILE *debugcon;             /* or NULL; the machine does not close it */
    MachineDriveConfig drives[MACHINE_IDE_DRIVES];  /* index = bus*2+unit */
    uint64_t frames_limit;      /* quit after this frame; 0: never */
    bool realtime;              /* pace the virtual clock to host time
                                 * (-machine xbox,realtime=on; see below) */
    /* The engine for save states (borrowed), or NULL: the machine makes
     * one on the default GMainContext (machine-savestate.h). */
    struct XblkEngine *engine;
} MachineConfig;

/*
 * Real-time pacing (MachineConfig.realtime; off by default: the machine
 * then runs as fast as the host allows).  Virtual time is tied to host
 * monotonic time from a base taken whenever the vCPU starts running
 * (machine_start, cont, the end of a save's or load's pause): the vCPU
 * never runs a step at a virtual instant that host time has not reached
 * since the base, so frames come at 60 Hz of host time.  It sleeps
 * instead (where it would jump the clock to the next deadline, and
 * after a slice that ran ahead), giving way at once to stops and calls.
 * A machine that fell behind (host hiccup, late disk request) runs
 * without sleeping until it caught up, owing at most
 * MACHINE_PACE_MAX_DEBT_US: beyond that the excess is dropped (the base
 * moves forward), so a long hiccup costs at most a 6-frame burst.
 * Guest-visible behaviour is unchanged: pacing only adds host sleeps.
 */
#define MACHINE_PACE_MAX_DEBT_US    100000

/* "64", "128", with an optional M/MiB/G suffix; other sizes refused. */
bool machine_parse_ram_size(const char *s, uint64_t *bytes, GError **errp);
/* Frees the strings and drops the backends of cfg (not cfg itself). */
void machine_config_clear(MachineConfig *cfg);

/* Builds the machine (main loop): RAM, devices, program loaded; the vCPU
 * thread does not run yet.  Takes the drives' backends and strings (cfg
 * is left empty).  Errors: RAM size, unreadable or invalid program,
 * input script, drive attachment. */
XboxMachine *machine_new(MachineConfig *cfg, GError **errp);
/* Starts the vCPU thread and hooks it to the run state; it runs now if
 * the run state is "running" (not with -S). */
void machine_start(XboxMachine *m);
/* A drive's disk holds a medium (false for NULL). */
bool machine_disk_has_medium(XblkDisk *disk);
/* The engine the machine runs on (MachineConfig.engine or its own). */
XblkEngine *machine_engine(XboxMachine *m);

/* What the machine reports to its host (xblk-system turns them into
 * QMP events); each may be NULL.  Main loop.  action is QMP's
 * BlockErrorAction ("ignore", "report", "stop"); ret is -errno. */
typedef struct MachineEventOps {
    void (*stop)(void *opaque);
    void (*block_io_error)(void *opaque, const char *dev, const char *node,
                           bool is_write, const char *action, int ret);
    void (*guest_panicked)(void *opaque);
    void (*shutdown)(void *opaque, bool guest);
    void (*reset)(void *opaque, bool guest);
    /* A drive's tray moved (dev: its -drive id, qdev: its device path). */
    void (*tray_moved)(void *opaque, const char *dev, const char *qdev,
                       bool open);
} MachineEventOps;
/* Process-wide, as QMP's events are; ops is copied (NULL: none). */
void machine_set_event_ops(const MachineEventOps *ops, void *opaque);
/* For machine-media.c: reports a tray movement through the hooks. */
void machine_event_tray_moved(const char *dev, const char *qdev, bool open);
/* Stops and joins the vCPU thread, waits for host I/O in flight, frees
 * everything (main loop). */
void machine_free(XboxMachine *m);
/* The machine the run-state hook and QMP act on, or NULL. */
XboxMachine *machine_current(void);

/* ---- main loop entry points ---- */

/* Parks the vCPU at the end of its current slice; returns once it is
 * parked.  No run-state change (the hook calls these). */
void machine_pause(XboxMachine *m);
/* Lets it run again (first calls ide_resume() on the vCPU thread);
 * returns once the vCPU runs. */
void machine_resume(XboxMachine *m);
/* system_reset: reset on the vCPU thread, RESET event, and a stopped
 * machine goes to prelaunch, as QEMU. */
void machine_system_reset(XboxMachine *m);
/* Vblanks since power-on or the last reset. */
uint64_t machine_frame(XboxMachine *m);
/* Stops (paused, STOP) right after the vblank that ends frame (frames
 * count from 0 again after a reset; a pending stop then applies to the
 * new count).  Fails unless frame is ahead of the current one. */
bool machine_frame_stop_at(XboxMachine *m, uint64_t frame, GError **errp);
/* Frame times: host time between consecutive vblanks while the machine
 * runs, less the time a paced machine (realtime=on) slept for host time
 * to catch up - the time the machine needed for the frame.  A user stop
 * is left out, a save's or load's pause is not.  A frame over the budget
 * is one a player at 60 Hz sees late. */
#define MACHINE_FRAME_BUDGET_US 16667
typedef struct MachineFrameTimes {
    uint64_t frames;            /* intervals measured */
    int64_t max_us;
    uint64_t over_budget;       /* intervals above MACHINE_FRAME_BUDGET_US */
} MachineFrameTimes;
/* The figures since the previous call, which resets them.  Any thread. */
void machine_frame_times(XboxMachine *m, MachineFrameTimes *out);
/*
 * A front end (ui/) sees the machine through these three: the frame hook
 * runs on the vCPU thread right after each vblank (frame: its number) and
 * must return quickly - read the picture with machine_read_screen (the
 * GPU_WIDTH x GPU_HEIGHT XRGB8888 scanout into dst), copy, signal.  Set
 * it before machine_start().  machine_set_input: the player's gamepad,
 * any thread, latched at the next vblank.
 */
typedef void MachineFrameFn(void *opaque, XboxMachine *m, uint64_t frame);
void machine_set_frame_hook(XboxMachine *m, MachineFrameFn *fn,
                            void *opaque);
bool machine_read_screen(XboxMachine *m, uint32_t *dst, GError **errp);
void machine_set_input(XboxMachine *m, const GamepadState *st);
/* The player's gamepad as last set (what the next vblank latches). */
void machine_get_input(XboxMachine *m, GamepadState *out);

/* Hex XXH3-128 of RAM and the registers; the vCPU must be parked. */
char *machine_frame_hash(XboxMachine *m, GError **errp);
bool machine_is_parked(XboxMachine *m);
/* Runs fn(m, opaque) on the vCPU thread between slices (even when
 * parked) and waits for it.  Media control and queries go this way. */
typedef void MachineCallFn(XboxMachine *m, void *opaque);
void machine_run_on_vcpu(XboxMachine *m, MachineCallFn *fn, void *opaque);
/* True once the guest powered off (SHUTDOWN already announced). */
bool machine_guest_shut_down(XboxMachine *m);

/* ---- for functions run on the vCPU thread, and tests ---- */

IDEController *machine_ide(XboxMachine *m);
/* The DevHost the devices use (its set_irq drives the PIC lines). */
DevHost *machine_devhost(XboxMachine *m);
/* Adds a port range (tests, later devices); before machine_start(). */
void machine_register_ports(XboxMachine *m, uint32_t base, uint32_t count,
                            DevReadFn *read, DevWriteFn *write,
                            void *opaque);
XboxGPU *machine_gpu(XboxMachine *m);
int64_t machine_clock_ns(XboxMachine *m);
uint64_t machine_ram_size(XboxMachine *m);

/*
 * THE helper for host-side writes into guest RAM (disk DMA, the GPU,
 * loading programs, interrupt frames).  Bounds checked: false (nothing
 * written) unless [gpa, gpa + len) lies inside RAM.  It is the one place
 * that will make write-protected (copy-on-write) pages writable first;
 * no syscall ever writes into guest RAM.
 */
bool machine_ram_write(XboxMachine *m, uint64_t gpa, const void *buf,
                       uint64_t len);
/* A writable host pointer to [gpa, gpa + len), through the same rule, or
 * NULL if the range leaves RAM. */
void *machine_ram_map_write(XboxMachine *m, uint64_t gpa, uint64_t len);
bool machine_ram_read(XboxMachine *m, uint64_t gpa, void *buf, uint64_t len);
const void *machine_ram_map_read(XboxMachine *m, uint64_t gpa, uint64_t len);


/* ---- save states (hw/xbox/machine-savestate.c) ----
 *
 * Quiescing parks the vCPU at the first step boundary at which no disk
 * request is outstanding (the machine's I/O list empty and
 * ide_in_flight() == 0): if requests are outstanding the vCPU runs on
 * (also when it was stopped) until they are delivered at their virtual
 * deadlines.  Parking is invisible to the guest (a preempted slice goes
 * on after it), so a run with a save or load attempt shows the guest
 * exactly what a run without one does. */
/* Main loop.  request; poll until 1 (parked, quiescent) or -1 (*errp
 * set: the machine shut down or was stopped meanwhile; the request is
 * over); end lets the vCPU run again if it ran at the request (also after
 * -1 and to cancel).  machine_quiesce: the three, polling the main loop
 * (from a coroutine: yielding to it), bounded to 10 s; on failure nothing
 * is left to end. */
void machine_quiesce_request(XboxMachine *m);
int machine_quiesce_poll(XboxMachine *m, GError **errp);
void machine_quiesce_end(XboxMachine *m);
void machine_quiesce_cancel(XboxMachine *m);
bool machine_quiesce(XboxMachine *m, GError **errp);
/* When the vCPU parked for the last quiesce (g_get_monotonic_time in ns). */
int64_t machine_quiesce_park_ns(XboxMachine *m);
/* fn(opaque) runs the moment a quiesce request is met (on the vCPU
 * thread, or in machine_quiesce_request when nothing runs the guest),
 * with the machine's lock held: it must only signal. */
void machine_set_quiesce_notify(XboxMachine *m, void (*fn)(void *opaque),
                                void *opaque);
/* Guest RAM's host address (machine_ram_size bytes, page aligned): the
 * save states capture and replace it while the vCPU is parked. */
void *machine_ram_host(XboxMachine *m);
/* The machine's device sections in load order (machine-vmstate.h). */
guint machine_sections(XboxMachine *m, MachineSection *out);
/* What a save captures besides the device sections. */
typedef struct MachineCapture {
    uint64_t frame;
    int64_t clock_ns;
    GByteArray *regs;           /* register image for the frame hash */
    uint32_t scanout_base;      /* the picture shown (gpu_scanout): its */
    uint32_t scanout_pitch;     /* pixels are in the RAM captured with it */
} MachineCapture;
/* Quiesced, on the vCPU thread (machine_run_on_vcpu): the machine's own
 * fields into its section, and the frame, virtual clock, registers and
 * scanout of the instant. */
void machine_capture(XboxMachine *m, MachineCapture *out);
/* Quiesced, vCPU thread, around a load's RAM and device loads: begin
 * before anything changes; end after (changed: RAM was replaced) takes
 * over the loaded frame, forgets host-side frame stops, drops the
 * vCPU's translated code and puts back the descriptor bytes the CPU
 * load set accessed, read from the state with read. */
typedef bool MachineStateRamReadFn(void *opaque, uint64_t gpa, void *buf,
                                   size_t len, GError **errp);
void machine_load_begin(XboxMachine *m);
bool machine_load_end(XboxMachine *m, bool changed,
                      MachineStateRamReadFn *read, void *opaque,
                      GError **errp);
/* The frame hash (x-query-frame's) computed piecewise: every byte of RAM
 * in address order, then finish with the registers of the same instant
 * (frees h).  Any thread. */
typedef struct MachineHash MachineHash;
MachineHash *machine_hash_new(void);
void machine_hash_update(MachineHash *h, const void *buf, size_t len);
char *machine_hash_finish(MachineHash *h, const GByteArray *regs);

#endif
