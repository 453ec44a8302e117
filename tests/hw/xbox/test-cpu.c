/*
 * test-cpu.c - the vCPU (hw/xbox/cpu.c) on its own: a harness with RAM, a
 * test port, an MMIO window and the loader runs the small guests of
 * tests/hw/xbox/guests/ slice by slice.  Covers the exact block budget,
 * hlt, the sti shadow, port and MMIO dispatch, exceptions and int n
 * through the IDT (error codes, no spurious double fault, #UD), gate
 * checks of external interrupt delivery, unmapped memory, and that two
 * runs give identical state.
 */
#include "guest-path.h"
#include "hw/xbox/cpu.h"
#include "hw/xbox/loader.h"
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#define RAM_SIZE (64u << 20)
#define RES 0x200000u
#define LOG_BUF 0x200100u
#define LOG_PTR 0x2000F0u

typedef struct Access {
    uint32_t addr, val;
    unsigned size;
    bool write;
} Access;

typedef struct Harness {
    uint8_t *ram;
    XboxCpu *cpu;
    uint32_t test_reg;          /* port 0x80 */
    uint8_t counter;            /* port 0x82 reads 1, 2, 3, ... */
    GArray *ports;              /* Access */
    uint32_t mmio_regs[1024];
    GArray *mmio;               /* Access */
    LoaderImage *img;
} Harness;

static bool h_ram_write(void *opaque, uint64_t gpa, const void *buf,
                        uint64_t len)
{
    Harness *h = opaque;
    if (gpa > RAM_SIZE || len > RAM_SIZE - gpa) {
        return false;
    }
    memcpy(h->ram + gpa, buf, len);
    return true;
}

static uint32_t port_read(void *opaque, uint32_t port, unsigned size)
{
    Harness *h = opaque;
    Access a = { port, 0, size, false };
    g_array_append_val(h->ports, a);
    if (port == 0x82) {
        return ++h->counter;
    }
    return h->test_reg;
}

static void port_write(void *opaque, uint32_t port, uint32_t val,
                       unsigned size)
{
    Harness *h = opaque;
    Access a = { port, val, size, true };
    g_array_append_val(h->ports, a);
    if (port == 0x80) {
        h->test_reg = val;
    }
}

static uint32_t mmio_read(void *opaque, uint32_t off, unsigned size)
{
    Harness *h = opaque;
    Access a = { off, 0, size, false };
    g_array_append_val(h->mmio, a);
    uint32_t v;
    memcpy(&v, (uint8_t *)h->mmio_regs + off, 4);
    return v;
}

static void mmio_write(void *opaque, uint32_t off, uint32_t val,
                       unsigned size)
{
    Harness *h = opaque;
    Access a = { off, val, size, true };
    g_array_append_val(h->mmio, a);
    memcpy((uint8_t *)h->mmio_regs + off, &val, size);
}

static Harness *harness_new(const char *guest)
{
    Harness *h = g_new0(Harness, 1);
    GError *err = NULL;
    h->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(h->ram != MAP_FAILED);
    CpuConfig cfg = { h->ram, RAM_SIZE, h_ram_write, h };
    h->cpu = cpu_new(&cfg, &err);
    g_assert_no_error(err);
    h->ports = g_array_new(FALSE, FALSE, sizeof(Access));
    h->mmio = g_array_new(FALSE, FALSE, sizeof(Access));
    cpu_register_ports(h->cpu, 0x80, 3, port_read, port_write, h);
    g_assert(cpu_register_mmio(h->cpu, 0xFD000000, 0x1000, mmio_read,
                               mmio_write, h, &err));
    g_autofree char *path = test_guest_path(guest);
    h->img = loader_open(path, RAM_SIZE, &err);
    g_assert_no_error(err);
    g_assert(loader_boot(h->img, h->cpu, h_ram_write, h, &err));
    g_assert_no_error(err);
    return h;
}

static void harness_free(Harness *h)
{
    cpu_free(h->cpu);
    loader_image_free(h->img);
    g_array_unref(h->ports);
    g_array_unref(h->mmio);
    munmap(h->ram, RAM_SIZE);
    g_free(h);
}

static uint32_t ram32(Harness *h, uint32_t gpa)
{
    uint32_t v;
    memcpy(&v, h->ram + gpa, 4);
    return v;
}

static uint32_t eip(Harness *h)
{
    CpuRegs r;
    cpu_get_regs(h->cpu, &r);
    return r.eip;
}

/* Runs slices until an exit other than the budget's. */
static CpuExit run_until_event(Harness *h, uint64_t slice)
{
    for (int i = 0; i < 100000; i++) {
        CpuExit e = cpu_run(h->cpu, slice);
        if (e != CPU_EXIT_BUDGET) {
            return e;
        }
    }
    g_assert_not_reached();
}

/* The block budget is exact: the block whose hook ends the slice is not
 * executed, and runs (and counts) in the next slice. */
static void test_budget_exact(void)
{
    Harness *h = harness_new("loop.elf");
    static const uint64_t budgets[] = { 1, 1, 2, 7, 100, 1, 9999, 3 };
    uint64_t total = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(budgets); i++) {
        g_assert_cmpint(cpu_run(h->cpu, budgets[i]), ==, CPU_EXIT_BUDGET);
        total += budgets[i];
        CpuRegs r;
        cpu_get_regs(h->cpu, &r);
        g_assert_cmpuint(*cpu_block_counter(h->cpu), ==, total);
        g_assert_cmpuint(r.eax, ==, total);
        g_assert_cmpuint(ram32(h, RES), ==, total);
    }
    harness_free(h);
}

/* A limit lowered during the slice (as a timer armed by a device does)
 * ends it at that block. */
static uint64_t limit_target;
static XboxCpu *limit_cpu;

static void limit_port_write(void *opaque, uint32_t port, uint32_t val,
                             unsigned size)
{
    cpu_limit_slice(limit_cpu, limit_target);
}

static void test_limit_and_exit(void)
{
    Harness *h = harness_new("ports.elf");
    /* Port 0x81 (written in the first block) lowers the limit. */
    cpu_register_ports(h->cpu, 0x81, 1, NULL, limit_port_write, h);
    limit_cpu = h->cpu;
    limit_target = 0;           /* already reached: stop at the next block */
    g_assert_cmpint(cpu_run(h->cpu, 1000), ==, CPU_EXIT_BUDGET);
    g_assert_cmpuint(*cpu_block_counter(h->cpu), ==, 1);
    harness_free(h);
}

typedef struct PreemptArgs {
    XboxCpu *cpu;
    gint stop;
} PreemptArgs;

static gpointer preempter(gpointer opaque)
{
    PreemptArgs *a = opaque;
    while (!g_atomic_int_get(&a->stop)) {
        g_usleep(g_random_int_range(0, 200));
        cpu_preempt(a->cpu);
    }
    return NULL;
}

/* Preemption from another thread cuts slices anywhere; resuming runs the
 * rest of the slice: the same blocks as without it. */
static void test_preempt(void)
{
    Harness *h = harness_new("loop.elf");
    PreemptArgs a = { h->cpu, 0 };
    GThread *t = g_thread_new("preempter", preempter, &a);
    uint64_t total = 0;
    unsigned preemptions = 0;
    for (int slice = 0; slice < 200; slice++) {
        uint64_t budget = 20000 + slice;
        CpuExit e = cpu_run(h->cpu, budget);
        while (e == CPU_EXIT_PREEMPTED) {
            preemptions++;
            g_assert_cmpuint(*cpu_block_counter(h->cpu), <, total + budget);
            cpu_clear_preempt(h->cpu);
            e = cpu_resume_slice(h->cpu);
        }
        g_assert_cmpint(e, ==, CPU_EXIT_BUDGET);
        total += budget;
        g_assert_cmpuint(*cpu_block_counter(h->cpu), ==, total);
        g_assert_cmpuint(ram32(h, RES), ==, total);
    }
    g_atomic_int_set(&a.stop, 1);
    g_thread_join(t);
    g_test_message("%u preemptions", preemptions);
    g_assert_cmpuint(preemptions, >, 0);
    harness_free(h);
}

static void test_hlt_and_shadow(void)
{
    Harness *h = harness_new("shadow.elf");
    uint32_t start = loader_entry(h->img);
    /* sti ends a block: one block later EIP follows it, IF is set, but
     * an interrupt may not be taken yet. */
    g_assert_cmpint(cpu_run(h->cpu, 1), ==, CPU_EXIT_BUDGET);
    g_assert_cmphex(eip(h), ==, start + 1);
    g_assert_true(cpu_interrupts_flag(h->cpu));
    g_assert_false(cpu_interrupts_enabled(h->cpu));
    /* nop; hlt: hlt ends the slice with EIP after it. */
    g_assert_cmpint(cpu_run(h->cpu, 100), ==, CPU_EXIT_HLT);
    g_assert_cmphex(eip(h), ==, start + 3);
    g_assert_true(cpu_interrupts_enabled(h->cpu));
    /* The engine runs on after hlt: cli; hlt. */
    g_assert_cmpint(cpu_run(h->cpu, 100), ==, CPU_EXIT_HLT);
    g_assert_cmphex(eip(h), ==, start + 5);
    g_assert_false(cpu_interrupts_flag(h->cpu));
    harness_free(h);
}

static void test_ports_mmio(void)
{
    Harness *h = harness_new("ports.elf");
    g_assert_cmpint(run_until_event(h, 1000), ==, CPU_EXIT_HLT);
    Access *p = (Access *)h->ports->data;
    g_assert_cmpuint(h->ports->len, ==, 3 + 2 + 4);
    g_assert_true(p[0].write && p[0].addr == 0x80 && p[0].size == 4 &&
                  p[0].val == 0x12345678);
    g_assert_true(p[1].write && p[1].addr == 0x81 && p[1].size == 1 &&
                  p[1].val == 0xAB);
    g_assert_true(p[2].write && p[2].addr == 0x80 && p[2].size == 2 &&
                  p[2].val == 0xBEEF);
    g_assert_true(!p[3].write && p[3].size == 4);
    g_assert_true(!p[4].write && p[4].size == 2);
    for (int i = 5; i < 9; i++) {
        g_assert_true(!p[i].write && p[i].addr == 0x82 && p[i].size == 1);
    }
    /* outw replaced the low half only as far as the device cares: it
     * stores what it got. */
    g_assert_cmphex(ram32(h, RES), ==, 0xBEEF);
    g_assert_cmphex(h->ram[RES + 4], ==, 0xFF);     /* unclaimed port */
    g_assert_cmphex(ram32(h, RES + 8) & 0xFFFF, ==, 0xBEEF);
    g_assert_cmphex(ram32(h, RES + 0x20), ==, 0x04030201);  /* rep insb */
    g_assert_cmphex(ram32(h, RES + 0x0C), ==, 0xCAFEBABE);
    g_assert_cmphex(ram32(h, RES + 0x10) & 0xFFFF, ==, 0x1234);
    g_assert_cmphex(h->ram[RES + 0x14], ==, 0x5A);
    Access *m = (Access *)h->mmio->data;
    g_assert_cmpuint(h->mmio->len, ==, 6);
    g_assert_true(m[0].write && m[0].addr == 0x10 && m[0].size == 4);
    g_assert_true(!m[1].write && m[1].addr == 0x10 && m[1].size == 4);
    g_assert_true(m[2].write && m[2].addr == 0x4 && m[2].size == 2);
    g_assert_true(m[5].addr == 0x9 && m[5].size == 1);
    CpuStats st;
    cpu_get_stats(h->cpu, &st);
    g_assert_cmpuint(st.mmio_accesses, ==, 6);
    g_assert_cmpuint(st.port_accesses, ==, 10);  /* and 0x3F8 */
    /* MMIO accesses are made once: the rest of the program ran. */
    g_assert_cmpint(cpu_run(h->cpu, 100), ==, CPU_EXIT_HLT);
    g_assert_cmphex(ram32(h, RES + 0x18), ==, 0x600D);
    harness_free(h);
}

static void test_exceptions(void)
{
    Harness *h = harness_new("exc.elf");
    CpuExit e;
    int events = 0;
    g_assert_true(cpu_exception_fixup_available());
    while ((e = run_until_event(h, 1000)) == CPU_EXIT_EXCEPTION) {
        events++;
    }
    g_assert_cmpint(e, ==, CPU_EXIT_PANIC);
    g_assert_cmpint(events, ==, 5);     /* int, #DE, #DE, #GP, #UD */
    g_assert_nonnull(strstr(cpu_panic_message(h->cpu),
                            "the gate of vector 49 is not present"));
    uint32_t log_end = ram32(h, LOG_PTR);
    static const uint8_t want[] = { 0x30, 0x00, 0x00, 0x0D, 0x06 };
    g_assert_cmpuint(log_end - LOG_BUF, ==, sizeof(want));
    g_assert_cmpmem(h->ram + LOG_BUF, sizeof(want), want, sizeof(want));
    g_assert_cmphex(ram32(h, RES), ==, 0x600D);
    /* int n returns after the instruction; faults to the instruction. */
    g_assert_cmphex(ram32(h, RES + 0x04), ==, ram32(h, RES + 0x20));
    g_assert_cmphex(ram32(h, RES + 0x0C), ==, ram32(h, RES + 0x24));
    g_assert_cmphex(ram32(h, RES + 0x18), ==, ram32(h, RES + 0x28));
    g_assert_cmphex(ram32(h, RES + 0x1C), ==, ram32(h, RES + 0x2C));
    /* A trap gate keeps IF; an interrupt gate clears it. */
    g_assert_cmphex(ram32(h, RES + 0x08) & CPU_EFLAGS_IF, ==,
                    CPU_EFLAGS_IF);
    g_assert_cmphex(ram32(h, RES + 0x10) & CPU_EFLAGS_IF, ==, 0);
    /* #GP(selector): the error code is the selector's index part. */
    g_assert_cmphex(ram32(h, RES + 0x14), ==, 0x1230);
    harness_free(h);
}

static void test_unmapped(void)
{
    Harness *h = harness_new("bad.elf");
    g_assert_cmpint(run_until_event(h, 1000), ==, CPU_EXIT_PANIC);
    g_assert_nonnull(strstr(cpu_panic_message(h->cpu),
                            "read of unmapped memory at 0x50000000"));
    g_assert_cmphex(ram32(h, RES), ==, 1);
    harness_free(h);
}

static void set_gate(Harness *h, uint8_t vec, uint32_t off, uint16_t sel,
                     uint8_t type)
{
    CpuRegs r;
    cpu_get_regs(h->cpu, &r);
    uint8_t *g = h->ram + r.idt_base + vec * 8;
    g[0] = off;
    g[1] = off >> 8;
    g[2] = sel;
    g[3] = sel >> 8;
    g[4] = 0;
    g[5] = type;
    g[6] = off >> 16;
    g[7] = off >> 24;
}

static void expect_gate_error(Harness *h, const char *what)
{
    GError *err = NULL;
    CpuRegs before, after;
    cpu_get_regs(h->cpu, &before);
    g_assert_false(cpu_deliver_interrupt(h->cpu, 0x40, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, what));
    g_error_free(err);
    cpu_get_regs(h->cpu, &after);
    g_assert_cmpmem(&before, sizeof(before), &after, sizeof(after));
}

static void test_deliver_checks(void)
{
    Harness *h = harness_new("exc.elf");
    GError *err = NULL;
    /* Run until the guest has its IDT (the int 0x30 is dispatched). */
    g_assert_cmpint(run_until_event(h, 1000), ==, CPU_EXIT_EXCEPTION);
    set_gate(h, 0x40, 0x123456, 0x08, 0x0E);   /* P clear */
    expect_gate_error(h, "not present");
    set_gate(h, 0x40, 0x123456, 0x08, 0x85);   /* task gate */
    expect_gate_error(h, "type 0x5");
    set_gate(h, 0x40, 0x123456, 0x18, 0x8E);   /* beyond the GDT */
    expect_gate_error(h, "beyond the GDT limit");
    set_gate(h, 0x40, 0x123456, 0x10, 0x8E);   /* a data segment */
    expect_gate_error(h, "not a present 32-bit code segment");
    set_gate(h, 0x40, 0x123456, 0x0C, 0x8E);   /* LDT */
    expect_gate_error(h, "LDT");

    CpuRegs r, n;
    cpu_get_regs(h->cpu, &r);
    set_gate(h, 0x40, 0x00123456, 0x08, 0x8E);
    g_assert_true(cpu_deliver_interrupt(h->cpu, 0x40, &err));
    g_assert_no_error(err);
    cpu_get_regs(h->cpu, &n);
    g_assert_cmphex(n.eip, ==, 0x123456);
    g_assert_cmphex(n.esp, ==, r.esp - 12);
    g_assert_cmphex(ram32(h, n.esp), ==, r.eip);
    g_assert_cmphex(ram32(h, n.esp + 4), ==, 0x08);
    g_assert_cmphex(ram32(h, n.esp + 8), ==, r.eflags);
    g_assert_cmphex(n.eflags & CPU_EFLAGS_IF, ==, 0);
    /* A trap gate keeps IF. */
    set_gate(h, 0x41, 0x00654321, 0x08, 0x8F);
    g_assert_true(cpu_deliver_interrupt(h->cpu, 0x41, &err));
    cpu_get_regs(h->cpu, &r);
    g_assert_cmphex(r.eip, ==, 0x654321);
    g_assert_cmphex(r.esp, ==, n.esp - 12);
    CpuStats st;
    cpu_get_stats(h->cpu, &st);
    g_assert_cmpuint(st.interrupts, ==, 2);
    harness_free(h);
}

static char *state_digest(Harness *h)
{
    g_autoptr(GByteArray) regs = cpu_register_image(h->cpu);
    XXH3_state_t *st = XXH3_createState();
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, h->ram, RAM_SIZE);
    XXH3_128bits_update(st, regs->data, regs->len);
    XXH128_hash_t d = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    return g_strdup_printf("%016" G_GINT64_MODIFIER "x%016"
                           G_GINT64_MODIFIER "x %" G_GUINT64_FORMAT,
                           d.high64, d.low64, *cpu_block_counter(h->cpu));
}

/* The same program and slicing give the same registers, RAM and block
 * count; a reset engine replays it. */
static char *run_exc_program(Harness *h)
{
    while (run_until_event(h, 37) == CPU_EXIT_EXCEPTION) {
    }
    return state_digest(h);
}

static void test_deterministic(void)
{
    Harness *a = harness_new("exc.elf"), *b = harness_new("exc.elf");
    g_autofree char *da = run_exc_program(a);
    g_autofree char *db = run_exc_program(b);
    g_assert_cmpstr(da, ==, db);
    harness_free(a);
    harness_free(b);
}

static void test_reset(void)
{
    Harness *h = harness_new("loop.elf");
    GError *err = NULL;
    g_assert_cmpint(cpu_run(h->cpu, 500), ==, CPU_EXIT_BUDGET);
    g_assert_true(cpu_reset_engine(h->cpu, &err));
    g_assert_no_error(err);
    g_assert_true(loader_boot(h->img, h->cpu, h_ram_write, h, &err));
    g_assert_cmpint(cpu_run(h->cpu, 5), ==, CPU_EXIT_BUDGET);
    CpuRegs r;
    cpu_get_regs(h->cpu, &r);
    g_assert_cmpuint(r.eax, ==, 5);     /* started over */
    g_assert_cmpuint(*cpu_block_counter(h->cpu), ==, 505);
    harness_free(h);
}

static void test_bad_config(void)
{
    GError *err = NULL;
    static uint8_t unaligned[8192];
    CpuConfig cfg = { unaligned + 1, 4096, h_ram_write, NULL };
    g_assert_null(cpu_new(&cfg, &err));
    g_assert_nonnull(err);
    g_error_free(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cpu/budget-exact", test_budget_exact);
    g_test_add_func("/cpu/limit-during-slice", test_limit_and_exit);
    g_test_add_func("/cpu/preempt", test_preempt);
    g_test_add_func("/cpu/hlt-and-sti-shadow", test_hlt_and_shadow);
    g_test_add_func("/cpu/ports-mmio", test_ports_mmio);
    g_test_add_func("/cpu/exceptions", test_exceptions);
    g_test_add_func("/cpu/unmapped", test_unmapped);
    g_test_add_func("/cpu/deliver-checks", test_deliver_checks);
    g_test_add_func("/cpu/deterministic", test_deterministic);
    g_test_add_func("/cpu/reset", test_reset);
    g_test_add_func("/cpu/bad-config", test_bad_config);
    return g_test_run();
}
