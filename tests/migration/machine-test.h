/*
 * machine-test.h - a console built from the real device objects, for the
 * save-state tests: every device made through its public constructor on
 * a TestHost (tests/hw/devhost-test.h), a VClock, a vCPU on page-aligned
 * RAM running a small hand-assembled program, a hard disk and a DVD drive
 * on raw images, and a MachineVMState with a vblank timer; plus
 *   - tm_scenario(): drives every device into a busy, deterministic state
 *     (a PIO transfer half read, security enabled, PIT counting, timers
 *     armed, an interrupt in service, FPU/SSE registers loaded...);
 *   - tm_exercise(): the same operations on any machine, logging what the
 *     guest would observe, so a loaded machine can be compared with the
 *     one it was saved from.
 *
 * The devices' tables are libxblk's public ones (XblkDeviceDesc);
 * tm_vmsd() gives the engine's form of one (xblk_api_device_vmsd, as
 * xblk_device_add registers it), for the tests that drive the engine's
 * encoder and stream directly.
 *
 * Header-only (static functions); each test program includes it once and
 * calls test_dir_setup_in_memory() first.
 */
#ifndef XBLK_TESTS_MIGRATION_MACHINE_TEST_H
#define XBLK_TESTS_MIGRATION_MACHINE_TEST_H

#include "tests/hw/ide/ide-test.h"
#include "hw/ide/vmstate.h"
#include "hw/xbox/machine-vmstate.h"
#include "api/internal.h"
#include "migration/savestream.h"
#include <stdlib.h>
#include <xxhash.h>

#define TM_RAM          (4u << 20)
#define TM_GDT          0x500u
#define TM_CODE         0x1000u
#define TM_DATA         0x2000u
#define TM_COUNTER      0x3000u
#define TM_PB           0x10000u        /* GPU push buffer */
#define TM_FB           0x100000u       /* GPU render target */
#define TM_STACK        0x9F000u
#define TM_HD_SIZE      (4u << 20)
#define TM_CD_SIZE      (2u << 20)

typedef struct TestMachine {
    TestHost *th;               /* RAM (page aligned), IRQ lines, disks */
    VClock *vc;
    XboxCpu *cpu;
    PicPair *pic;
    Pit *pit;
    Smc *smc;
    Gamepad *pad;
    XboxGPU *gpu;
    IDEController *ide;
    XblkDisk *hd, *cd;
    char *hd_path, *cd_path;
    MachineVMState ms;
    VTimer vblank;
    unsigned vblanks;           /* vblank timer callbacks */
    unsigned power_requests;
    VMStateSet *set;
} TestMachine;

/* The engine's form of a device table (converted once per process). */
static inline const VMStateDescription *tm_vmsd(const XblkDeviceDesc *desc)
{
    XblkError *err = NULL;
    const VMStateDescription *vmsd = xblk_api_device_vmsd(desc, &err);
    if (!vmsd) {
        g_error("device table '%s' refused: %s", desc->name,
                xblk_error_message(err));
    }
    return vmsd;
}

static inline bool tm_ram_write(void *opaque, uint64_t gpa, const void *buf,
                                uint64_t len)
{
    TestMachine *tm = opaque;
    if (gpa > tm->th->ram_size || len > tm->th->ram_size - gpa) {
        return false;
    }
    memcpy(tm->th->ram + gpa, buf, len);
    return true;
}

static inline void tm_pit_out(void *opaque, bool level)
{
    TestMachine *tm = opaque;
    pic_set_irq(tm->pic, PIT_IRQ, level);
}

static inline void tm_power(void *opaque, SmcPowerRequest req)
{
    ((TestMachine *)opaque)->power_requests++;
}

static inline void tm_vblank_cb(void *opaque)
{
    TestMachine *tm = opaque;
    tm->vblanks++;
    tm->ms.frame++;
    vtimer_mod(&tm->vblank, tm->ms.vblank_base +
               (int64_t)(tm->ms.frame + 1) * GPU_VBLANK_NS);
}

/* A machine whose disks are fresh copies (name-tagged) of the same
 * images; clock_ns: where its virtual clock starts. */
static inline TestMachine *tm_new(const char *tag, int64_t clock_ns)
{
    TestMachine *tm = g_new0(TestMachine, 1);
    GError *err = NULL;
    tm->th = test_host_new(4096);
    g_free(tm->th->ram);
    void *ram = NULL;
    g_assert_cmpint(posix_memalign(&ram, 4096, TM_RAM), ==, 0);
    memset(ram, 0, TM_RAM);
    tm->th->ram = ram;          /* test_host_free g_free()s it: free() */
    tm->th->ram_size = TM_RAM;

    tm->vc = vclock_new();
    vclock_warp_to(tm->vc, clock_ns);
    CpuConfig cc = { tm->th->ram, TM_RAM, tm_ram_write, tm };
    tm->cpu = cpu_new(&cc, &err);
    g_assert_no_error(err);
    tm->pic = pic_new();
    tm->pit = pit_new(tm->vc, tm_pit_out, tm);
    uint8_t key[32] = "fixture-hdd-key";
    tm->smc = smc_new(TM_RAM, 0x1234567890ABCDEFull, key, NULL, tm_power,
                      tm);
    tm->pad = gamepad_new();
    tm->gpu = gpu_new(&tm->th->host);
    tm->ide = ide_controller_new(&tm->th->host);

    g_autofree char *hd = g_strdup_printf("hd-%s.raw", tag);
    g_autofree char *cd = g_strdup_printf("cd-%s.iso", tag);
    tm->hd_path = raw_image(hd, TM_HD_SIZE, 7);
    tm->cd_path = raw_image(cd, TM_CD_SIZE, 9);
    g_autofree char *hd_node = g_strdup_printf("tm-hd-%s", tag);
    g_autofree char *cd_node = g_strdup_printf("tm-cd-%s", tag);
    tm->hd = raw_disk_open(tm->hd_path, hd_node, true);
    tm->cd = raw_disk_open(tm->cd_path, cd_node, false);
    IDEDriveConfig c = idet_config(IDE_DRIVE_HD, tm->hd, "ide0-hd0");
    g_assert_true(ide_attach(tm->ide, 0, &c, &err));
    c = idet_config(IDE_DRIVE_CD, tm->cd, "ide0-cd1");
    g_assert_true(ide_attach(tm->ide, 1, &c, &err));
    g_assert_no_error(err);

    vtimer_init(&tm->vblank, tm->vc, tm_vblank_cb, tm);
    tm->ms.vc = tm->vc;
    tm->ms.vblank = &tm->vblank;
    tm->ms.vblank_base = vclock_now(tm->vc);
    vtimer_mod(&tm->vblank, tm->ms.vblank_base + GPU_VBLANK_NS);

    MachineDevices d = {
        .vc = tm->vc, .machine = &tm->ms, .pic = tm->pic, .pit = tm->pit,
        .smc = tm->smc, .pad = tm->pad, .gpu = tm->gpu, .ide = tm->ide,
        .cpu = tm->cpu,
    };
    /* The machine's sections, in its load order, as the engine holds
     * them after xblk_device_add. */
    MachineSection sec[MACHINE_SECTIONS_MAX];
    guint n = machine_vmstate_sections(&d, sec);
    tm->set = vmstate_set_new();
    for (guint i = 0; i < n; i++) {
        vmstate_set_add(tm->set, tm_vmsd(sec[i].desc), sec[i].instance,
                        sec[i].opaque);
    }
    return tm;
}

static inline void tm_free(TestMachine *tm)
{
    vmstate_set_free(tm->set);
    test_host_run(tm->th);
    ide_controller_free(tm->ide);
    xblk_disk_close(tm->hd);
    xblk_disk_close(tm->cd);
    g_unlink(tm->hd_path);
    g_unlink(tm->cd_path);
    g_free(tm->hd_path);
    g_free(tm->cd_path);
    gpu_free(tm->gpu);
    gamepad_free(tm->pad);
    smc_free(tm->smc);
    vtimer_del(&tm->vblank);
    pit_free(tm->pit);
    pic_free(tm->pic);
    cpu_free(tm->cpu);
    vclock_free(tm->vc);
    test_host_free(tm->th);
    g_free(tm);
}

/* ---- ports ---- */

static inline void tm_out(TestMachine *tm, uint32_t port, uint32_t v,
                          unsigned sz)
{
    if (port >= 0x20 && port <= 0xA1 && (port & ~0x81u) == 0x20) {
        pic_ioport_write(tm->pic, port, v, sz);
    } else if (port >= PIT_PORT_BASE && port < PIT_PORT_BASE + 4) {
        pit_ioport_write(tm->pit, port, v, sz);
    } else if (port >= SMC_PORT_BASE && port < SMC_PORT_BASE + 0x20) {
        smc_ioport_write(tm->smc, port, v, sz);
    } else if (ide_claims_port(port)) {
        ide_ioport_write(tm->ide, port, v, sz);
    } else {
        g_assert_not_reached();
    }
}

static inline uint32_t tm_in(TestMachine *tm, uint32_t port, unsigned sz)
{
    if (port >= 0x20 && port <= 0xA1 && (port & ~0x81u) == 0x20) {
        return pic_ioport_read(tm->pic, port, sz);
    } else if (port >= PIT_PORT_BASE && port < PIT_PORT_BASE + 4) {
        return pit_ioport_read(tm->pit, port, sz);
    } else if (port >= SMC_PORT_BASE && port < SMC_PORT_BASE + 0x20) {
        return smc_ioport_read(tm->smc, port, sz);
    } else if (port >= GAMEPAD_PORT_BASE &&
               port < GAMEPAD_PORT_BASE + GAMEPAD_PORT_SIZE) {
        return gamepad_ioport_read(tm->pad, port, sz);
    } else if (ide_claims_port(port)) {
        return ide_ioport_read(tm->ide, port, sz);
    }
    g_assert_not_reached();
}

static inline void tm_gpu_w(TestMachine *tm, uint32_t off, uint32_t v)
{
    gpu_mmio_write(tm->gpu, off, v, 4);
}

/* Advances the clock by ns in steps of at most step, running due timers
 * (PIT, vblank) at each. */
static inline void tm_advance(TestMachine *tm, int64_t ns, int64_t step)
{
    int64_t end = vclock_now(tm->vc) + ns;
    while (vclock_now(tm->vc) < end) {
        int64_t next = MIN(vclock_next_deadline(tm->vc),
                           vclock_now(tm->vc) + step);
        vclock_warp_to(tm->vc, MIN(next, end));
        vclock_run_due(tm->vc);
    }
}

/* ---- the vCPU's program ---- */

static inline void tm_load_program(TestMachine *tm)
{
    static const uint64_t gdt[3] = {
        0, 0x00CF9A000000FFFFull, 0x00CF92000000FFFFull,
    };
    static const uint8_t code[] = {
        0xDB, 0xE3,                             /* fninit */
        0xD9, 0xE8,                             /* fld1 */
        0xD9, 0xEB,                             /* fldpi */
        0xD9, 0xEA,                             /* fldl2e */
        0x0F, 0x10, 0x05, 0x00, 0x20, 0x00, 0x00,   /* movups xmm0,[0x2000] */
        0x0F, 0x10, 0x3D, 0x10, 0x20, 0x00, 0x00,   /* movups xmm7,[0x2010] */
        0x0F, 0xAE, 0x15, 0x20, 0x20, 0x00, 0x00,   /* ldmxcsr [0x2020] */
        0xBB, 0x44, 0x33, 0x22, 0x11,           /* mov ebx, 0x11223344 */
        0xBE, 0x01, 0x00, 0x00, 0x00,           /* mov esi, 1 */
        /* loop: one translation block per iteration */
        0x40,                                   /* inc eax */
        0x01, 0xF7,                             /* add edi, esi */
        0x0F, 0x58, 0xC7,                       /* addps xmm0, xmm7 */
        0xD8, 0xC1,                             /* fadd st(0), st(1) */
        0x89, 0x05, 0x00, 0x30, 0x00, 0x00,     /* mov [0x3000], eax */
        0xD1, 0xC6,                             /* rol esi, 1 */
        0xEB, 0xEE,                             /* jmp loop */
    };
    uint8_t data[36];
    for (int i = 0; i < 32; i++) {
        data[i] = 0xA0 + i;
    }
    uint32_t mxcsr = 0x7F80;                    /* round toward zero */
    memcpy(data + 32, &mxcsr, 4);
    for (int i = 0; i < 3; i++) {
        uint64_t le = GUINT64_TO_LE(gdt[i]);
        memcpy(tm->th->ram + TM_GDT + 8 * i, &le, 8);
    }
    memcpy(tm->th->ram + TM_CODE, code, sizeof(code));
    memcpy(tm->th->ram + TM_DATA, data, sizeof(data));
    GError *err = NULL;
    g_assert_true(cpu_set_boot_state(tm->cpu, TM_GDT, 23, 0x08, 0x10,
                                     TM_CODE, TM_STACK, &err));
    g_assert_no_error(err);
}

/* Push-buffer words at TM_PB from offset `at`; returns the new offset. */
static inline uint32_t tm_pb_put(TestMachine *tm, uint32_t at,
                                 const uint32_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t le = GUINT32_TO_LE(w[i]);
        memcpy(tm->th->ram + TM_PB + at + 4 * i, &le, 4);
    }
    return at + 4 * n;
}

/* ---- the scenario ---- */

static inline void tm_scenario(TestMachine *tm)
{
    /* vCPU: the program, run into its loop (FPU, SSE, MXCSR loaded). */
    tm_load_program(tm);
    g_assert_cmpint(cpu_run(tm->cpu, 50), ==, CPU_EXIT_BUDGET);

    /* PIC: initialized as a PC's (vectors 0x20 / 0x28), IRQ 3 in
     * service, IRQ 0 and 14 pending, IRQ 5 masked. */
    static const uint8_t icw[] = { 0x11, 0x20, 0x04, 0x01 };
    static const uint8_t icw_s[] = { 0x11, 0x28, 0x02, 0x01 };
    for (int i = 0; i < 4; i++) {
        tm_out(tm, 0x20 + (i > 0), icw[i], 1);
        tm_out(tm, 0xA0 + (i > 0), icw_s[i], 1);
    }
    tm_out(tm, 0x21, 0x20, 1);
    tm_out(tm, 0xA1, 0x00, 1);
    pic_set_irq(tm->pic, 3, true);
    g_assert_cmpuint(pic_acknowledge(tm->pic), ==, 0x23);
    pic_set_irq(tm->pic, 14, true);

    /* PIT: channel 0 rate generator, channel 2 square wave, a latched
     * count on channel 1; the clock runs 1.5 ms. */
    tm_out(tm, 0x43, 0x34, 1);
    tm_out(tm, 0x40, 0x9C, 1);
    tm_out(tm, 0x40, 0x2E, 1);                  /* 11932: ~100 Hz */
    tm_out(tm, 0x43, 0xB6, 1);
    tm_out(tm, 0x42, 0x00, 1);
    tm_out(tm, 0x42, 0x10, 1);
    tm_out(tm, 0x43, 0x70, 1);
    tm_out(tm, 0x41, 0x34, 1);
    tm_out(tm, 0x41, 0x12, 1);
    tm_advance(tm, 1500000, 100000);
    tm_out(tm, 0x43, 0x40, 1);                  /* latch channel 1 */

    /* System controller: key index 2. */
    tm_out(tm, SMC_PORT_BASE + 0x10, 2, 4);

    /* Gamepad: host input latched at a vblank. */
    GamepadState gs = { .buttons = 0x0111, .left_trigger = 200, .lx = -300,
                        .ry = 12345 };
    gamepad_set_host_state(tm->pad, &gs);
    gamepad_vblank(tm->pad, 3);

    /* GPU: a render target, a clear and a rectangle executed at one
     * vblank, a blit left pending (PUT moved after that vblank). */
    tm_gpu_w(tm, 0x008, 0x7);
    tm_gpu_w(tm, 0x030, TM_PB);
    tm_gpu_w(tm, 0x034, 4096);
    uint32_t cmds[] = {
        0x00020001, TM_FB, 2560,                /* SET_TARGET */
        0x00010002, 0x00336699,                 /* CLEAR */
        0x00050003, 10, 20, 30, 40, 0x00FF0000, /* FILL_RECT */
        0x00010005, TM_FB,                      /* FLIP */
        0x00010006, 0xCAFE,                     /* NOTIFY */
    };
    uint32_t put = tm_pb_put(tm, 0, cmds, G_N_ELEMENTS(cmds));
    tm_gpu_w(tm, 0x038, put);
    gpu_vblank(tm->gpu);
    uint32_t more[] = {
        0x000A0004, TM_FB, 2560, 10, 20, 30, 40, 100, 200, 1, 0x00336699,
    };
    put = tm_pb_put(tm, put, more, G_N_ELEMENTS(more));
    tm_gpu_w(tm, 0x038, put);

    /* IDE: security enabled on the disk, multiple mode 8, and IDENTIFY
     * half read; the DVD drive has a sense pending (TEST UNIT READY
     * after a medium change) and its tray locked. */
    IDETest it = { tm->th, tm->ide };
    IDETest *t = &it;
    uint8_t buf[512] = { 0 };
    memcpy(buf + 2, "fixture-password", 16);
    ata_select(t, PRI, 0);
    ata_cmd(t, PRI, 0xF1);
    pio_write(t, PRI, buf, 512);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    outb(t, PRI + 2, 8);
    ata_cmd(t, PRI, 0xC6);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    ata_select(t, PRI, 1);
    static const uint8_t prevent[12] = { 0x1E, 0, 0, 0, 1 };
    outb(t, PRI + 1, 0);
    outb(t, PRI + 4, 0);
    outb(t, PRI + 5, 0x80);
    ata_cmd(t, PRI, 0xA0);
    pio_write(t, PRI, prevent, 12);
    idet_run(t);
    ata_status(t, PRI);
    ata_select(t, PRI, 0);
    ata_cmd(t, PRI, 0xEC);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI) & ST_DRQ, ==, ST_DRQ);
    for (int i = 0; i < 100; i++) {
        inw(t, PRI);
    }
    outb(t, BM_PRI + 4, 0x00);
    outb(t, BM_PRI + 5, 0x80);
    g_assert_cmpuint(test_host_outstanding(tm->th), ==, 0);

    /* The machine: halted with a device request pending. */
    tm->ms.halted = true;
    tm->ms.power_off_req = false;
    tm->ms.irq_levels = 0x4009;
}

/* Logs what a guest would see from here on; identical machines give
 * identical logs.  Runs the vCPU, the timers, and reads every device. */
static inline GString *tm_exercise(TestMachine *tm)
{
    GString *log = g_string_new(NULL);
    IDETest it = { tm->th, tm->ide };
    IDETest *t = &it;

    /* IDE: the rest of IDENTIFY, then the DVD drive's sense. */
    XXH64_hash_t h = 0;
    for (int i = 100; i < 256; i++) {
        uint16_t w = inw(t, PRI);
        h = XXH64(&w, 2, h);
    }
    g_string_append_printf(log, "identify %016llx st %02x\n",
                           (unsigned long long)h, ata_status(t, PRI));
    g_string_append_printf(log, "bm %02x %02x\n", inb(t, BM_PRI + 2),
                           inb(t, BM_PRI));
    ata_select(t, PRI, 1);
    g_string_append_printf(log, "cd st %02x err %02x\n", ata_status(t, PRI),
                           ata_error(t, PRI));

    /* PIC: acknowledges and EOIs. */
    for (int i = 0; i < 3; i++) {
        g_string_append_printf(log, "pic int %d", pic_has_interrupt(tm->pic));
        g_string_append_printf(log, " vec %02x", pic_acknowledge(tm->pic));
        tm_out(tm, 0x20, 0x20, 1);              /* non-specific EOI */
        tm_out(tm, 0x20, 0x0B, 1);              /* OCW3: read ISR */
        g_string_append_printf(log, " isr %02x\n", tm_in(tm, 0x20, 1));
    }

    /* PIT and the vblank timer over 40 ms of virtual time. */
    for (int step = 0; step < 8; step++) {
        tm_advance(tm, 5000000 + step * 333, 250000);
        tm_out(tm, 0x43, 0x00, 1);
        uint8_t lo = tm_in(tm, 0x40, 1), hi = tm_in(tm, 0x40, 1);
        uint8_t c1 = tm_in(tm, 0x41, 1);
        tm_out(tm, 0x43, 0xE8, 1);              /* read back ch 2 status */
        uint8_t st2 = tm_in(tm, 0x42, 1);
        tm_out(tm, 0x20, 0x0A, 1);              /* OCW3: read IRR */
        uint8_t irr = tm_in(tm, 0x20, 1);
        g_string_append_printf(log, "pit %02x%02x %02x %02x irr %02x "
                               "vblanks %u frame %" G_GUINT64_FORMAT "\n",
                               hi, lo, c1, st2, irr, tm->vblanks,
                               tm->ms.frame);
    }

    /* SMC and gamepad registers. */
    for (int i = 0; i < 3; i++) {
        g_string_append_printf(log, "key %08x\n",
                               tm_in(tm, SMC_PORT_BASE + 0x14, 4));
    }
    for (uint32_t p = 0; p < 0x10; p += 2) {
        g_string_append_printf(log, "pad %04x\n",
                               tm_in(tm, GAMEPAD_PORT_BASE + p, 2));
    }

    /* GPU: two vblanks, the registers and the picture. */
    gpu_vblank(tm->gpu);
    gpu_vblank(tm->gpu);
    for (uint32_t off = 0; off <= 0x40; off += 4) {
        g_string_append_printf(log, "gpu %03x %08x\n", off,
                               gpu_mmio_read(tm->gpu, off, 4));
    }
    g_string_append_printf(log, "fb %016llx\n", (unsigned long long)
                           XXH64(tm->th->ram + TM_FB, 2560 * 480, 0));

    /* vCPU: slices, then its registers and RAM. */
    for (int i = 0; i < 4; i++) {
        g_string_append_printf(log, "cpu exit %d\n", cpu_run(tm->cpu, 777));
    }
    g_autoptr(GByteArray) regs = cpu_register_image(tm->cpu);
    g_string_append_printf(log, "regs %016llx ram %016llx\n",
                           (unsigned long long)XXH64(regs->data, regs->len,
                                                     0),
                           (unsigned long long)XXH64(tm->th->ram, TM_RAM,
                                                     0));
    return log;
}

/* ---- streams ---- */

static inline XssMetadata tm_metadata(void)
{
    static const uint8_t png[] = {
        0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 0, 'I', 'E',
        'N', 'D', 0xAE, 0x42, 0x60, 0x82,
    };
    XssMetadata md = {
        .frame = 4242,
        .frame_hash = g_strdup("00112233445566778899aabbccddeeff"),
        .disc_path = g_strdup("/games/reference.iso"),
        .title = g_strdup("xblk reference game — fixture v1"),
        .thumb_width = 320, .thumb_height = 240,
        .thumbnail_png = g_bytes_new_static(png, sizeof(png)),
    };
    return md;
}

/* The whole stream of tm (RAM in address order). */
static inline GByteArray *tm_save(TestMachine *tm)
{
    GByteArray *out = g_byte_array_new();
    XssWriter *w = xss_writer_new_buffer(out, NULL);
    XssMetadata md = tm_metadata();
    GError *err = NULL;
    g_assert_true(xss_writer_begin(w, MACHINE_VMSTATE_TYPE, TM_RAM, &err));
    g_assert_true(xss_writer_metadata(w, &md, &err));
    g_assert_true(xss_writer_devices(w, tm->set, &err));
    g_assert_true(xss_writer_ram_linear(w, tm->th->ram, &err));
    g_assert_true(xss_writer_finish(w, &err));
    g_assert_no_error(err);
    xss_metadata_clear(&md);
    xss_writer_free(w);
    return out;
}

static inline bool tm_ram_chunk(void *opaque, const XssChunk *ch, GError **errp)
{
    TestMachine *tm = opaque;
    g_assert_cmpuint(ch->gpa + ch->len, <=, TM_RAM);
    memcpy(tm->th->ram + ch->gpa, ch->data, ch->len);
    return true;
}

/* Loads a stream into tm; false with *errp set if refused. */
static inline bool tm_load(TestMachine *tm, const void *buf, size_t len,
                           GError **errp)
{
    XssReader *r = xss_reader_open_buffer(buf, len, errp);
    if (!r) {
        return false;
    }
    bool ok = xss_reader_check_machine(r, MACHINE_VMSTATE_TYPE, TM_RAM,
                                       errp) &&
              xss_load(r, tm->set, tm_ram_chunk, tm, errp);
    xss_reader_free(r);
    return ok;
}

#endif
