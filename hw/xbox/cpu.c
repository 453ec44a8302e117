/*
 * cpu.c - the vCPU on Unicorn 2.0.1 (UC_ARCH_X86, UC_MODE_32).
 *
 * Owns: the Unicorn engine, the port table (one byte per port naming a
 * handler), the MMIO windows, the executed-block counter the virtual
 * clock is built on, and the dispatch of interrupts, exceptions and int n
 * through the guest's IDT.  Callers: machine.c (slices, interrupts),
 * loader.c (boot registers), tests.  Everything runs on the vCPU thread
 * except cpu_preempt() / cpu_clear_preempt() (any thread).
 *
 * Mechanism and the Unicorn 2.0.1 behaviours it rests on (measured with
 * small programs, see tests/hw/xbox/test-cpu.c):
 *
 * - Slices.  A UC_HOOK_BLOCK hook runs before every translation block
 *   (TB).  When the slice's block limit is reached (or an exit was
 *   requested) it calls uc_emu_stop: that block is NOT executed, EIP is
 *   left at its start, and the hook runs again for it when the next slice
 *   starts.  So the hook counts a block only when it lets it run, and the
 *   count equals the blocks executed, exactly.  uc_emu_stop from a port
 *   hook lets the rest of the TB run; from an MMIO callback it abandons
 *   the TB with EIP at the TB start after the access was made (the access
 *   would be repeated), so device handlers never stop the engine: they
 *   call cpu_request_exit() and the next block hook stops.  TB boundaries
 *   depend only on the guest's code, so where a slice ends is
 *   deterministic.  uc_emu_start runs with an empty exits list (no
 *   `until` address), no timeout and no instruction count.
 * - Preemption: another thread may ask for the slice to stop early
 *   (cpu_preempt, for a prompt `stop`).  The block hook sees the request
 *   before its next block and stops there, uncounted, exactly as a budget
 *   stop; cpu_resume_slice() then runs the rest of the slice to the same
 *   limit.  Nothing happens at the preemption point (no interrupt, no
 *   timer), so the guest cannot tell a preempted slice from a whole one.
 * - The virtual clock reads the block counter (10 ns per block); a
 *   partially executed block (fault in its middle) counts once.
 * - hlt: uc_emu_start returns UC_ERR_OK with EIP after the hlt and no hook
 *   involved; the next uc_emu_start runs normally.  A return that no hook
 *   of ours caused is therefore hlt (checked: the byte before EIP is F4).
 * - Exceptions and int n reach UC_HOOK_INTR with the vector; EIP is the
 *   faulting instruction for faults and the next one for int n.  The hook
 *   stops the engine and the vector is dispatched through the IDT after
 *   uc_emu_start returns.  #UD does not reach the hook: uc_emu_start
 *   returns UC_ERR_INSN_INVALID with EIP at the instruction; it is
 *   dispatched as vector 6.
 * - Unicorn never completes QEMU's exception delivery, so QEMU's
 *   "exception in flight" field keeps the last contributory fault and the
 *   next #DE/#TS/#NP/#SS/#GP would be reported as a double fault (8).
 *   Unicorn has no API for it nor for the error code; both live in the
 *   CPU state that uc_context_save copies.  At the first cpu_new, probes
 *   in scratch engines locate the fields (error code 0x1230 from a #GP,
 *   is-int from int 0x30, in-flight -1/0/13 across fresh/#DE/#GP) and
 *   check that clearing the in-flight field makes a second #DE report 0.
 *   After each fault the state is saved, the error code and is-int read,
 *   the field cleared and the state restored.  If the probes do not find
 *   the fields, error codes are pushed as 0, int n is told from a fault
 *   by the bytes before EIP (CD nn), and a second contributory fault
 *   arrives as vector 8.
 * - Unmapped memory: uc_emu_start fails (EIP imprecise: the TB start);
 *   the machine stops with guest-panicked.
 *
 * Interrupt delivery (external interrupts, exceptions, int n), ring 0
 * only: the IDT entry must lie within IDTR's limit and in RAM, be present
 * and be a 32-bit interrupt (0xE) or trap (0xF) gate whose selector names
 * a present 32-bit code segment in the GDT; EFLAGS, CS, EIP (and the error
 * code of exceptions 8, 10-14, 17) are pushed at ESP (stack segment
 * assumed flat), TF/NT/RF and for interrupt gates IF are cleared, CS:EIP
 * loaded from the gate.  No task gates, no stack switch, no LDT.  Anything
 * else is reported to the caller (the machine stops: guest-panicked).
 * The sti shadow is honoured for external interrupts: since sti ends a TB,
 * a slice that stopped right after a TB whose last byte is FB (sti) does
 * not take an interrupt there (a false positive only delays it).  The
 * shadows of mov ss / pop ss are not modelled.  rdtsc reads host time in
 * Unicorn; guests that want determinism must not use it.
 */
#include "hw/xbox/cpu.h"
#include "hw/error.h"
#include <inttypes.h>
#include <string.h>
#include <unicorn/unicorn.h>

#define CPU_MAX_PORT_HANDLERS 64
#define CPU_MAX_MMIO 8
#define EFLAGS_TF 0x100u
#define EFLAGS_NT 0x4000u
#define EFLAGS_RF 0x10000u
#define EFLAGS_VM 0x20000u

const char *cpu_unicorn_version(void)
{
    static char buf[32];
    unsigned major, minor;
    /* uc_version() packs major, minor, patch and extra into one byte
     * each, from the highest. */
    unsigned v = uc_version(&major, &minor);
    g_snprintf(buf, sizeof(buf), "%u.%u.%u", major, minor, (v >> 8) & 0xff);
    return buf;
}

typedef struct PortHandler {
    DevReadFn *read;
    DevWriteFn *write;
    void *opaque;
} PortHandler;

typedef struct MmioWindow {
    XboxCpu *cpu;
    uint64_t base, size;
    DevReadFn *read;
    DevWriteFn *write;
    void *opaque;
} MmioWindow;

/* Offsets into a uc_context found by the probes (see the header). */
typedef struct ExcLayout {
    bool ok;
    size_t error_code, is_int, in_flight;
} ExcLayout;

static ExcLayout exc_layout;

/* What a save state carries (cpu_vmstate(); see cpu.h). */
typedef struct CpuVMState {
    uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi;
    uint32_t eip, eflags;
    uint16_t cs, ss, ds, es, fs, gs;
    uint32_t cr0, cr2, cr3, cr4;
    uint32_t dr[8];
    uint32_t gdt_base, gdt_limit, idt_base, idt_limit;
    uint16_t ldt_sel, tr_sel;
    uint32_t ldt_base, ldt_limit, ldt_flags;
    uint32_t tr_base, tr_limit, tr_flags;
    uint16_t fpcw, fpsw, fptag, fop, fcs, fds;
    uint64_t fip, fdp;
    uint64_t fp_mant[8];        /* physical registers R0-R7 */
    uint16_t fp_exp[8];
    uint32_t mxcsr;
    uint64_t xmm[16];           /* XMMn = xmm[2n] (low), xmm[2n + 1] */
    uint64_t slice_left;        /* blocks left of a preempted slice */
    bool have_last_tb;
    uint64_t last_tb_addr;
    uint32_t last_tb_size;
} CpuVMState;

struct XboxCpu {
    uc_engine *uc;
    uc_context *ctx;            /* scratch for the exception fix-up */
    CpuConfig cfg;
    uint8_t port_map[65536];    /* index into ports[], 0: unclaimed */
    PortHandler ports[CPU_MAX_PORT_HANDLERS];
    unsigned nports;
    MmioWindow mmio[CPU_MAX_MMIO];
    unsigned nmmio;

    uint64_t blocks;            /* executed TBs, ever */
    uint64_t limit;             /* the slice ends when blocks reaches it */
    bool in_slice, exit_requested, stopped_by_hook, preempted;
    gint preempt;               /* any thread: cpu_preempt() */
    int pending_vector;         /* from the INTR hook, -1: none */
    bool mem_fault;
    int fault_type;
    uint64_t fault_addr;
    bool have_last_tb;          /* the last executed TB, for the sti shadow */
    uint64_t last_tb_addr;
    uint32_t last_tb_size;

    char *panic_msg;
    CpuStats stats;
    CpuVMState vms;             /* save states: pre_save / post_load */
};

/* ---- Unicorn helpers ---- */

static uint32_t reg32(XboxCpu *cpu, int reg)
{
    uint64_t v = 0;
    uc_reg_read(cpu->uc, reg, &v);
    return (uint32_t)v;
}

static void set_reg32(XboxCpu *cpu, int reg, uint32_t v)
{
    uc_err e = uc_reg_write(cpu->uc, reg, &v);
    g_assert(e == UC_ERR_OK);
}

static bool in_ram(const XboxCpu *cpu, uint64_t gpa, uint64_t len)
{
    return gpa <= cpu->cfg.ram_size && len <= cpu->cfg.ram_size - gpa;
}

static bool ram_read(const XboxCpu *cpu, uint64_t gpa, void *buf,
                     uint64_t len)
{
    if (!in_ram(cpu, gpa, len)) {
        return false;
    }
    memcpy(buf, (const uint8_t *)cpu->cfg.ram + gpa, len);
    return true;
}

static uint32_t size_mask(int size)
{
    return size >= 4 ? 0xFFFFFFFFu : (1u << (size * 8)) - 1;
}

static void set_panic(XboxCpu *cpu, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void set_panic(XboxCpu *cpu, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_free(cpu->panic_msg);
    cpu->panic_msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

/* ---- probes for the exception fields (run once per process) ---- */

static void probe_intr(uc_engine *uc, uint32_t intno, void *opaque)
{
    *(int *)opaque = (int)intno;
    uc_emu_stop(uc);
}

#define PROBE_BASE 0x1000u

static uc_engine *probe_engine(int *vec)
{
    uc_engine *uc;
    uc_hook h;
    if (uc_open(UC_ARCH_X86, UC_MODE_32, &uc) != UC_ERR_OK) {
        return NULL;
    }
    if (uc_mem_map(uc, PROBE_BASE, 0x1000, UC_PROT_ALL) != UC_ERR_OK ||
        uc_hook_add(uc, &h, UC_HOOK_INTR, probe_intr, vec, 1, 0) !=
            UC_ERR_OK ||
        uc_ctl_exits_enable(uc) != UC_ERR_OK) {
        uc_close(uc);
        return NULL;
    }
    return uc;
}

static bool probe_exec(uc_engine *uc, const uint8_t *code, size_t len,
                       int *vec, int want)
{
    *vec = -1;
    uc_mem_write(uc, PROBE_BASE, code, len);
    uc_emu_start(uc, PROBE_BASE, 0, 0, 0);
    return *vec == want;
}

/* The context bytes after running code (NULL: of a fresh engine). */
static uint8_t *probe_state(const uint8_t *code, size_t len, int want,
                            size_t *size)
{
    int vec;
    uc_engine *uc = probe_engine(&vec);
    uc_context *ctx = NULL;
    uint8_t *bytes = NULL;
    if (!uc) {
        return NULL;
    }
    if ((!code || probe_exec(uc, code, len, &vec, want)) &&
        uc_context_alloc(uc, &ctx) == UC_ERR_OK &&
        uc_context_save(uc, ctx) == UC_ERR_OK) {
        *size = uc_context_size(uc);
        bytes = g_memdup2(ctx, *size);
    }
    if (ctx) {
        uc_context_free(ctx);
    }
    uc_close(uc);
    return bytes;
}

static const uint8_t probe_de[] = { 0x31, 0xD2, 0xF7, 0xF2 };
static const uint8_t probe_gp[] = { 0x66, 0xB8, 0x30, 0x12, 0x8E, 0xD8 };
static const uint8_t probe_int[] = { 0xCD, 0x30 };

static int32_t word_at(const uint8_t *b, size_t off)
{
    int32_t v;
    memcpy(&v, b + off, 4);
    return v;
}

/* Unique offset matching the pattern over (fresh, #DE, #GP, int), or
 * SIZE_MAX. */
static size_t find_field(uint8_t *s[4], size_t n, const int32_t want[4],
                         size_t shift, const int32_t want2[4])
{
    size_t found = SIZE_MAX;
    for (size_t o = 0; o + shift + 4 <= n; o += 4) {
        bool match = true;
        for (int i = 0; i < 4 && match; i++) {
            match = word_at(s[i], o) == want[i] &&
                    (!want2 || word_at(s[i], o + shift) == want2[i]);
        }
        if (match) {
            if (found != SIZE_MAX) {
                return SIZE_MAX;
            }
            found = o;
        }
    }
    return found;
}

static void clear_in_flight(uc_engine *uc, uc_context *ctx, size_t off)
{
    int32_t none = -1;
    uc_context_save(uc, ctx);
    memcpy((uint8_t *)ctx + off, &none, 4);
    uc_context_restore(uc, ctx);
}

/* A second #DE after clearing the field must be reported as 0, not 8. */
static bool probe_verify(size_t in_flight)
{
    int vec;
    uc_engine *uc = probe_engine(&vec);
    uc_context *ctx = NULL;
    bool ok = false;
    if (!uc || uc_context_alloc(uc, &ctx) != UC_ERR_OK) {
        goto out;
    }
    if (probe_exec(uc, probe_de, sizeof(probe_de), &vec, 0)) {
        clear_in_flight(uc, ctx, in_flight);
        ok = probe_exec(uc, probe_de, sizeof(probe_de), &vec, 0);
    }
out:
    if (ctx) {
        uc_context_free(ctx);
    }
    if (uc) {
        uc_close(uc);
    }
    return ok;
}

static gpointer exc_layout_probe(gpointer unused)
{
    size_t n[4] = { 0 };
    uint8_t *s[4] = {
        probe_state(NULL, 0, -1, &n[0]),
        probe_state(probe_de, sizeof(probe_de), 0, &n[1]),
        probe_state(probe_gp, sizeof(probe_gp), 13, &n[2]),
        probe_state(probe_int, sizeof(probe_int), 0x30, &n[3]),
    };
    bool have = s[0] && s[1] && s[2] && s[3] && n[0] == n[1] &&
                n[1] == n[2] && n[2] == n[3];
    if (have) {
        static const int32_t ec[4] = { 0, 0, 0x1230, 0 };
        static const int32_t isint[4] = { 0, 0, 0, 1 };
        static const int32_t flight[4] = { -1, 0, 13, -1 };
        size_t e = find_field(s, n[0], ec, 4, isint);
        size_t f = find_field(s, n[0], flight, 0, NULL);
        if (e != SIZE_MAX && f != SIZE_MAX && probe_verify(f)) {
            exc_layout = (ExcLayout){ true, e, e + 4, f };
        }
    }
    for (int i = 0; i < 4; i++) {
        g_free(s[i]);
    }
    return NULL;
}

/* ---- hooks ---- */

static void hook_block(uc_engine *uc, uint64_t addr, uint32_t size,
                       void *opaque)
{
    XboxCpu *cpu = opaque;
    if (cpu->blocks >= cpu->limit || cpu->exit_requested) {
        cpu->stopped_by_hook = true;
        uc_emu_stop(uc);        /* this block does not run */
        return;
    }
    if (g_atomic_int_get(&cpu->preempt)) {
        cpu->stopped_by_hook = cpu->preempted = true;
        uc_emu_stop(uc);
        return;
    }
    cpu->blocks++;
    cpu->have_last_tb = true;
    cpu->last_tb_addr = addr;
    cpu->last_tb_size = size;
}

static void hook_intr(uc_engine *uc, uint32_t intno, void *opaque)
{
    XboxCpu *cpu = opaque;
    cpu->pending_vector = (int)intno;
    uc_emu_stop(uc);
}

static uint32_t hook_in(uc_engine *uc, uint32_t port, int size,
                        void *opaque)
{
    XboxCpu *cpu = opaque;
    PortHandler *h = &cpu->ports[cpu->port_map[port & 0xFFFF]];
    cpu->stats.port_accesses++;
    if (!h->read) {
        return size_mask(size);
    }
    return h->read(h->opaque, port & 0xFFFF, size) & size_mask(size);
}

static void hook_out(uc_engine *uc, uint32_t port, int size, uint32_t val,
                     void *opaque)
{
    XboxCpu *cpu = opaque;
    PortHandler *h = &cpu->ports[cpu->port_map[port & 0xFFFF]];
    cpu->stats.port_accesses++;
    if (h->write) {
        h->write(h->opaque, port & 0xFFFF, val & size_mask(size), size);
    }
}

static bool hook_unmapped(uc_engine *uc, uc_mem_type type, uint64_t addr,
                          int size, int64_t value, void *opaque)
{
    XboxCpu *cpu = opaque;
    if (!cpu->mem_fault) {
        cpu->mem_fault = true;
        cpu->fault_type = type;
        cpu->fault_addr = addr;
    }
    return false;
}

static uint64_t mmio_read(uc_engine *uc, uint64_t off, unsigned size,
                          void *opaque)
{
    MmioWindow *w = opaque;
    w->cpu->stats.mmio_accesses++;
    if (!w->read) {
        return size_mask(size);
    }
    return w->read(w->opaque, (uint32_t)off, size) & size_mask(size);
}

static void mmio_write(uc_engine *uc, uint64_t off, unsigned size,
                       uint64_t val, void *opaque)
{
    MmioWindow *w = opaque;
    w->cpu->stats.mmio_accesses++;
    if (w->write) {
        w->write(w->opaque, (uint32_t)off, (uint32_t)val & size_mask(size),
                 size);
    }
}

/* ---- the engine ---- */

static bool uc_check(uc_err e, const char *what, GError **errp)
{
    if (e != UC_ERR_OK) {
        hw_error_set(errp, "Unicorn: %s failed: %s", what, uc_strerror(e));
        return false;
    }
    return true;
}

static bool map_mmio_window(XboxCpu *cpu, MmioWindow *w, GError **errp)
{
    return uc_check(uc_mmio_map(cpu->uc, w->base, w->size, mmio_read, w,
                                mmio_write, w), "uc_mmio_map", errp);
}

static bool add_hooks(XboxCpu *cpu, GError **errp)
{
    uc_hook h;
    return uc_check(uc_hook_add(cpu->uc, &h, UC_HOOK_BLOCK, hook_block, cpu,
                                1, 0), "block hook", errp) &&
           uc_check(uc_hook_add(cpu->uc, &h, UC_HOOK_INTR, hook_intr, cpu,
                                1, 0), "interrupt hook", errp) &&
           uc_check(uc_hook_add(cpu->uc, &h, UC_HOOK_INSN, hook_in, cpu, 1,
                                0, UC_X86_INS_IN), "IN hook", errp) &&
           uc_check(uc_hook_add(cpu->uc, &h, UC_HOOK_INSN, hook_out, cpu,
                                1, 0, UC_X86_INS_OUT), "OUT hook", errp) &&
           uc_check(uc_hook_add(cpu->uc, &h, UC_HOOK_MEM_INVALID,
                                hook_unmapped, cpu, 1, 0),
                    "memory fault hook", errp);
}

static void engine_destroy(XboxCpu *cpu)
{
    if (cpu->ctx) {
        uc_context_free(cpu->ctx);
        cpu->ctx = NULL;
    }
    if (cpu->uc) {
        uc_close(cpu->uc);
        cpu->uc = NULL;
    }
}

static bool engine_create(XboxCpu *cpu, GError **errp)
{
    if (!uc_check(uc_open(UC_ARCH_X86, UC_MODE_32, &cpu->uc), "uc_open",
                  errp)) {
        cpu->uc = NULL;
        return false;
    }
    bool ok = uc_check(uc_mem_map_ptr(cpu->uc, 0, cpu->cfg.ram_size,
                                      UC_PROT_ALL, cpu->cfg.ram),
                       "mapping guest RAM", errp) &&
              uc_check(uc_ctl_exits_enable(cpu->uc), "enabling exits",
                       errp) &&
              add_hooks(cpu, errp) &&
              uc_check(uc_context_alloc(cpu->uc, &cpu->ctx),
                       "uc_context_alloc", errp);
    for (unsigned i = 0; ok && i < cpu->nmmio; i++) {
        ok = map_mmio_window(cpu, &cpu->mmio[i], errp);
    }
    if (!ok) {
        engine_destroy(cpu);
    }
    return ok;
}

XboxCpu *cpu_new(const CpuConfig *cfg, GError **errp)
{
    static GOnce probe_once = G_ONCE_INIT;
    g_assert(cfg->ram && cfg->ram_write);
    if (cfg->ram_size == 0 || cfg->ram_size % 4096 ||
        (uintptr_t)cfg->ram % 4096) {
        hw_error_set(errp, "guest RAM must be a non-empty page-aligned "
                     "mapping");
        return NULL;
    }
    g_once(&probe_once, exc_layout_probe, NULL);
    XboxCpu *cpu = g_new0(XboxCpu, 1);
    cpu->cfg = *cfg;
    cpu->nports = 1;            /* entry 0: unclaimed */
    cpu->pending_vector = -1;
    if (!engine_create(cpu, errp)) {
        g_free(cpu);
        return NULL;
    }
    return cpu;
}

void cpu_free(XboxCpu *cpu)
{
    if (!cpu) {
        return;
    }
    engine_destroy(cpu);
    g_free(cpu->panic_msg);
    g_free(cpu);
}

bool cpu_reset_engine(XboxCpu *cpu, GError **errp)
{
    g_assert(!cpu->in_slice);
    engine_destroy(cpu);
    cpu->have_last_tb = false;
    cpu->pending_vector = -1;
    return engine_create(cpu, errp);
}

void cpu_register_ports(XboxCpu *cpu, uint32_t base, uint32_t count,
                        DevReadFn *read, DevWriteFn *write, void *opaque)
{
    g_assert(base + count <= 0x10000 && count > 0);
    g_assert(cpu->nports < CPU_MAX_PORT_HANDLERS);
    unsigned idx = cpu->nports++;
    cpu->ports[idx] = (PortHandler){ read, write, opaque };
    memset(cpu->port_map + base, idx, count);
}

bool cpu_register_mmio(XboxCpu *cpu, uint64_t base, uint64_t size,
                       DevReadFn *read, DevWriteFn *write, void *opaque,
                       GError **errp)
{
    if (cpu->nmmio >= CPU_MAX_MMIO) {
        hw_error_set(errp, "too many MMIO windows");
        return false;
    }
    if (base % 4096 || size % 4096 || size == 0 ||
        base < cpu->cfg.ram_size || base + size > 0x100000000ull) {
        hw_error_set(errp, "MMIO window 0x%" PRIx64 "+0x%" PRIx64 " must be "
                     "page aligned, above RAM and below 4 GiB", base, size);
        return false;
    }
    MmioWindow *w = &cpu->mmio[cpu->nmmio];
    *w = (MmioWindow){ cpu, base, size, read, write, opaque };
    if (!map_mmio_window(cpu, w, errp)) {
        return false;
    }
    cpu->nmmio++;
    return true;
}

const uint64_t *cpu_block_counter(const XboxCpu *cpu)
{
    return &cpu->blocks;
}

void cpu_limit_slice(XboxCpu *cpu, uint64_t blocks)
{
    if (blocks < cpu->limit) {
        cpu->limit = blocks;
    }
}

void cpu_flush_translations(XboxCpu *cpu, uint64_t ram_size)
{
    CpuRegs r;
    cpu_get_regs(cpu, &r);
    if (r.cr0 & 0x80000000u) {
        /* Unicorn translates the range's start through the MMU of the
         * moment and skips the range if that fails: only a whole flush
         * is sure (~0.3 s in Unicorn 2.0.1). */
        uc_check(uc_ctl_flush_tlb(cpu->uc), "flushing translated code",
                 NULL);
    } else {
        /* Paging off: addresses are physical, and invalidating the RAM's
         * range (~0.8 ms for 64 MiB) drops every block translated from
         * it. */
        uc_check(uc_ctl_remove_cache(cpu->uc, 0, ram_size),
                 "flushing translated code", NULL);
    }
}

void cpu_preempt(XboxCpu *cpu)
{
    g_atomic_int_set(&cpu->preempt, 1);
}

void cpu_clear_preempt(XboxCpu *cpu)
{
    g_atomic_int_set(&cpu->preempt, 0);
}

void cpu_request_exit(XboxCpu *cpu)
{
    if (cpu->in_slice) {
        cpu->exit_requested = true;
    }
}

bool cpu_in_slice(const XboxCpu *cpu)
{
    return cpu->in_slice;
}

const char *cpu_panic_message(const XboxCpu *cpu)
{
    return cpu->panic_msg ? cpu->panic_msg : "";
}

void cpu_get_stats(const XboxCpu *cpu, CpuStats *out)
{
    *out = cpu->stats;
}

bool cpu_exception_fixup_available(void)
{
    return exc_layout.ok;
}

/* ---- IDT dispatch ---- */

static bool read_descriptor(XboxCpu *cpu, uint16_t sel, uint8_t d[8],
                            GError **errp)
{
    uc_x86_mmr gdtr;
    uc_reg_read(cpu->uc, UC_X86_REG_GDTR, &gdtr);
    if (sel & 4) {
        hw_error_set(errp, "selector 0x%x refers to the LDT", sel);
        return false;
    }
    if ((sel & ~7u) == 0 || (uint32_t)(sel | 7) > gdtr.limit) {
        hw_error_set(errp, "selector 0x%x is null or beyond the GDT limit "
                     "0x%x", sel, gdtr.limit);
        return false;
    }
    if (!ram_read(cpu, (uint32_t)gdtr.base + (sel & ~7u), d, 8)) {
        hw_error_set(errp, "GDT entry of selector 0x%x lies outside RAM", sel);
        return false;
    }
    return true;
}

static bool check_code_selector(XboxCpu *cpu, uint16_t sel, GError **errp)
{
    uint8_t d[8];
    if (!read_descriptor(cpu, sel, d, errp)) {
        return false;
    }
    bool present = d[5] & 0x80, segment = d[5] & 0x10, code = d[5] & 0x08;
    bool big = d[6] & 0x40;
    if (!present || !segment || !code || !big) {
        hw_error_set(errp, "selector 0x%x is not a present 32-bit code "
                     "segment (access 0x%02x, flags 0x%02x)", sel, d[5],
                     d[6] >> 4);
        return false;
    }
    return true;
}

typedef struct Gate {
    uint32_t offset;
    uint16_t selector;
    bool trap;
} Gate;

static bool read_gate(XboxCpu *cpu, uint8_t vector, Gate *g, GError **errp)
{
    uc_x86_mmr idtr;
    uint8_t e[8];
    uc_reg_read(cpu->uc, UC_X86_REG_IDTR, &idtr);
    if ((uint32_t)vector * 8 + 7 > idtr.limit) {
        hw_error_set(errp, "vector %u lies beyond the IDT limit 0x%x", vector,
                     idtr.limit);
        return false;
    }
    if (!ram_read(cpu, (uint32_t)idtr.base + vector * 8u, e, 8)) {
        hw_error_set(errp, "the IDT entry of vector %u lies outside RAM",
                     vector);
        return false;
    }
    if (!(e[5] & 0x80)) {
        hw_error_set(errp, "the gate of vector %u is not present", vector);
        return false;
    }
    uint8_t type = e[5] & 0x1F;
    if (type != 0x0E && type != 0x0F) {
        hw_error_set(errp, "the gate of vector %u has type 0x%x, not a 32-bit "
                     "interrupt or trap gate", vector, type);
        return false;
    }
    g->offset = e[0] | (e[1] << 8) | ((uint32_t)e[6] << 16) |
                ((uint32_t)e[7] << 24);
    g->selector = e[2] | (e[3] << 8);
    g->trap = type == 0x0F;
    return check_code_selector(cpu, g->selector, errp);
}

static bool push_frame(XboxCpu *cpu, const uint32_t *words, unsigned n,
                       uint32_t *esp, GError **errp)
{
    uint32_t le[4];
    uint32_t bytes = n * 4;
    if (*esp < bytes || !in_ram(cpu, *esp - bytes, bytes)) {
        hw_error_set(errp, "the interrupt frame below ESP 0x%08x lies outside "
                     "RAM", *esp);
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        le[i] = GUINT32_TO_LE(words[i]);
    }
    if (!cpu->cfg.ram_write(cpu->cfg.ram_opaque, *esp - bytes, le, bytes)) {
        hw_error_set(errp, "cannot write the interrupt frame");
        return false;
    }
    *esp -= bytes;
    return true;
}

/* The common path of interrupts, exceptions and int n. */
static bool idt_dispatch(XboxCpu *cpu, uint8_t vector, bool push_error,
                         uint32_t error_code, GError **errp)
{
    Gate g;
    if (!read_gate(cpu, vector, &g, errp)) {
        return false;
    }
    uint32_t eflags = reg32(cpu, UC_X86_REG_EFLAGS);
    uint32_t cs = reg32(cpu, UC_X86_REG_CS) & 0xFFFF;
    uint32_t eip = reg32(cpu, UC_X86_REG_EIP);
    uint32_t esp = reg32(cpu, UC_X86_REG_ESP);
    /* Lowest address first: [error code,] EIP, CS, EFLAGS. */
    uint32_t frame[4] = { error_code, eip, cs, eflags };
    if (!push_frame(cpu, push_error ? frame : frame + 1, push_error ? 4 : 3,
                    &esp, errp)) {
        return false;
    }
    eflags &= ~(EFLAGS_TF | EFLAGS_NT | EFLAGS_RF | EFLAGS_VM);
    if (!g.trap) {
        eflags &= ~CPU_EFLAGS_IF;
    }
    if (g.selector != cs) {
        uint32_t sel = g.selector;
        if (uc_reg_write(cpu->uc, UC_X86_REG_CS, &sel) != UC_ERR_OK) {
            hw_error_set(errp, "cannot load CS 0x%x of vector %u", sel,
                         vector);
            return false;
        }
    }
    set_reg32(cpu, UC_X86_REG_ESP, esp);
    set_reg32(cpu, UC_X86_REG_EFLAGS, eflags);
    set_reg32(cpu, UC_X86_REG_EIP, g.offset);
    cpu->have_last_tb = false;
    return true;
}

static bool vector_has_error_code(int v)
{
    return v == 8 || (v >= 10 && v <= 14) || v == 17;
}

static bool vector_is_contributory(int v)
{
    return v == 0 || v == 8 || (v >= 10 && v <= 14);
}

/* int n / int3 / into / int1 end just before EIP. */
static bool looks_like_int_insn(XboxCpu *cpu, int v)
{
    uint32_t eip = reg32(cpu, UC_X86_REG_EIP);
    uint8_t b[2];
    if (eip < 2 || !ram_read(cpu, eip - 2, b, 2)) {
        return false;
    }
    return (b[0] == 0xCD && b[1] == v) || (v == 3 && b[1] == 0xCC) ||
           (v == 4 && b[1] == 0xCE) || (v == 1 && b[1] == 0xF1);
}

/* Error code and kind of the event the INTR hook saw; clears QEMU's
 * in-flight exception so that the next fault is not a double fault. */
static void inspect_event(XboxCpu *cpu, int v, bool *is_int, uint32_t *ec)
{
    *ec = 0;
    if (!exc_layout.ok) {
        *is_int = looks_like_int_insn(cpu, v);
        return;
    }
    if (!vector_has_error_code(v) && !vector_is_contributory(v)) {
        *is_int = looks_like_int_insn(cpu, v);
        return;
    }
    uint8_t *b = (uint8_t *)cpu->ctx;
    int32_t none = -1;
    uc_context_save(cpu->uc, cpu->ctx);
    *ec = (uint32_t)word_at(b, exc_layout.error_code);
    *is_int = word_at(b, exc_layout.is_int) != 0;
    memcpy(b + exc_layout.in_flight, &none, 4);
    uc_context_restore(cpu->uc, cpu->ctx);
}

static CpuExit dispatch_event(XboxCpu *cpu, int v, bool from_hook)
{
    bool is_int = false;
    uint32_t ec = 0;
    GError *err = NULL;
    if (v < 0 || v > 255) {
        set_panic(cpu, "Unicorn reported an unknown event %d", v);
        return CPU_EXIT_PANIC;
    }
    if (from_hook) {
        inspect_event(cpu, v, &is_int, &ec);
    }
    bool push_ec = !is_int && vector_has_error_code(v);
    cpu->stats.exceptions++;
    uint32_t eip = reg32(cpu, UC_X86_REG_EIP);
    if (!idt_dispatch(cpu, (uint8_t)v, push_ec, ec, &err)) {
        g_autofree char *code = push_ec ?
            g_strdup_printf(" (error code 0x%x)", ec) : g_strdup("");
        set_panic(cpu, "%s %d%s at EIP 0x%08x: %s",
                  is_int ? "int" : "exception", v, code, eip, err->message);
        g_error_free(err);
        return CPU_EXIT_PANIC;
    }
    return CPU_EXIT_EXCEPTION;
}

bool cpu_deliver_interrupt(XboxCpu *cpu, uint8_t vector, GError **errp)
{
    g_assert(!cpu->in_slice);
    if (!idt_dispatch(cpu, vector, false, 0, errp)) {
        return false;
    }
    cpu->stats.interrupts++;
    return true;
}

bool cpu_interrupts_flag(XboxCpu *cpu)
{
    return reg32(cpu, UC_X86_REG_EFLAGS) & CPU_EFLAGS_IF;
}

bool cpu_interrupts_enabled(XboxCpu *cpu)
{
    if (!cpu_interrupts_flag(cpu)) {
        return false;
    }
    if (cpu->have_last_tb && cpu->last_tb_size &&
        reg32(cpu, UC_X86_REG_EIP) == cpu->last_tb_addr + cpu->last_tb_size) {
        uint8_t last;
        if (ram_read(cpu, cpu->last_tb_addr + cpu->last_tb_size - 1, &last,
                     1) && last == 0xFB) {
            return false;       /* in the shadow of sti */
        }
    }
    return true;
}

/* ---- slices ---- */

static const char *fault_kind(int type)
{
    switch (type) {
    case UC_MEM_READ_UNMAPPED:
    case UC_MEM_READ_PROT:
        return "read";
    case UC_MEM_WRITE_UNMAPPED:
    case UC_MEM_WRITE_PROT:
        return "write";
    default:
        return "instruction fetch";
    }
}

static CpuExit finish_slice(XboxCpu *cpu, uc_err err)
{
    uint32_t eip = reg32(cpu, UC_X86_REG_EIP);
    if (cpu->pending_vector >= 0) {
        int v = cpu->pending_vector;
        cpu->pending_vector = -1;
        return dispatch_event(cpu, v, true);
    }
    if (err == UC_ERR_INSN_INVALID) {
        return dispatch_event(cpu, 6, false);
    }
    if (cpu->mem_fault) {
        set_panic(cpu, "%s of unmapped memory at 0x%08" PRIx64 " (in the "
                  "block at EIP 0x%08x)", fault_kind(cpu->fault_type),
                  cpu->fault_addr, eip);
        return CPU_EXIT_PANIC;
    }
    if (err != UC_ERR_OK) {
        set_panic(cpu, "emulation failed at EIP 0x%08x: %s", eip,
                  uc_strerror(err));
        return CPU_EXIT_PANIC;
    }
    if (cpu->stopped_by_hook) {
        return cpu->preempted ? CPU_EXIT_PREEMPTED :
               cpu->exit_requested ? CPU_EXIT_REQUEST : CPU_EXIT_BUDGET;
    }
    uint8_t prev;
    if (eip >= 1 && ram_read(cpu, eip - 1, &prev, 1) && prev == 0xF4) {
        return CPU_EXIT_HLT;
    }
    set_panic(cpu, "emulation stopped without a cause at EIP 0x%08x", eip);
    return CPU_EXIT_PANIC;
}

CpuExit cpu_run(XboxCpu *cpu, uint64_t max_blocks)
{
    g_assert(max_blocks >= 1 && !cpu->in_slice);
    cpu->limit = cpu->blocks + max_blocks;
    return cpu_resume_slice(cpu);
}

CpuExit cpu_resume_slice(XboxCpu *cpu)
{
    g_assert(!cpu->in_slice);
    cpu->exit_requested = false;
    cpu->preempted = false;
    cpu->stopped_by_hook = false;
    cpu->pending_vector = -1;
    cpu->mem_fault = false;
    cpu->in_slice = true;
    cpu->stats.slices++;
    uc_err err = uc_emu_start(cpu->uc, reg32(cpu, UC_X86_REG_EIP), 0, 0, 0);
    cpu->in_slice = false;
    return finish_slice(cpu, err);
}

/* ---- registers ---- */

void cpu_get_regs(XboxCpu *cpu, CpuRegs *r)
{
    uc_x86_mmr gdtr, idtr;
    r->eax = reg32(cpu, UC_X86_REG_EAX);
    r->ebx = reg32(cpu, UC_X86_REG_EBX);
    r->ecx = reg32(cpu, UC_X86_REG_ECX);
    r->edx = reg32(cpu, UC_X86_REG_EDX);
    r->esi = reg32(cpu, UC_X86_REG_ESI);
    r->edi = reg32(cpu, UC_X86_REG_EDI);
    r->ebp = reg32(cpu, UC_X86_REG_EBP);
    r->esp = reg32(cpu, UC_X86_REG_ESP);
    r->eip = reg32(cpu, UC_X86_REG_EIP);
    r->eflags = reg32(cpu, UC_X86_REG_EFLAGS);
    r->cs = reg32(cpu, UC_X86_REG_CS);
    r->ds = reg32(cpu, UC_X86_REG_DS);
    r->es = reg32(cpu, UC_X86_REG_ES);
    r->fs = reg32(cpu, UC_X86_REG_FS);
    r->gs = reg32(cpu, UC_X86_REG_GS);
    r->ss = reg32(cpu, UC_X86_REG_SS);
    r->cr0 = reg32(cpu, UC_X86_REG_CR0);
    r->cr2 = reg32(cpu, UC_X86_REG_CR2);
    r->cr3 = reg32(cpu, UC_X86_REG_CR3);
    r->cr4 = reg32(cpu, UC_X86_REG_CR4);
    uc_reg_read(cpu->uc, UC_X86_REG_GDTR, &gdtr);
    uc_reg_read(cpu->uc, UC_X86_REG_IDTR, &idtr);
    r->gdt_base = gdtr.base;
    r->gdt_limit = gdtr.limit;
    r->idt_base = idtr.base;
    r->idt_limit = idtr.limit;
}

static bool write_seg(XboxCpu *cpu, int reg, uint16_t sel, const char *name,
                      GError **errp)
{
    uint32_t v = sel;
    if (uc_reg_write(cpu->uc, reg, &v) != UC_ERR_OK) {
        hw_error_set(errp, "cannot load %s with selector 0x%x", name, sel);
        return false;
    }
    return true;
}

bool cpu_set_boot_state(XboxCpu *cpu, uint32_t gdt_base, uint16_t gdt_limit,
                        uint16_t cs, uint16_t ds, uint32_t eip,
                        uint32_t esp, GError **errp)
{
    static const int gprs[] = { UC_X86_REG_EAX, UC_X86_REG_EBX,
                                UC_X86_REG_ECX, UC_X86_REG_EDX,
                                UC_X86_REG_ESI, UC_X86_REG_EDI,
                                UC_X86_REG_EBP };
    uc_x86_mmr gdtr = { .base = gdt_base, .limit = gdt_limit };
    g_assert(!cpu->in_slice);
    if (!uc_check(uc_reg_write(cpu->uc, UC_X86_REG_GDTR, &gdtr),
                  "loading GDTR", errp) ||
        !write_seg(cpu, UC_X86_REG_CS, cs, "CS", errp) ||
        !write_seg(cpu, UC_X86_REG_SS, ds, "SS", errp) ||
        !write_seg(cpu, UC_X86_REG_DS, ds, "DS", errp) ||
        !write_seg(cpu, UC_X86_REG_ES, ds, "ES", errp) ||
        !write_seg(cpu, UC_X86_REG_FS, ds, "FS", errp) ||
        !write_seg(cpu, UC_X86_REG_GS, ds, "GS", errp)) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(gprs); i++) {
        set_reg32(cpu, gprs[i], 0);
    }
    set_reg32(cpu, UC_X86_REG_ESP, esp);
    set_reg32(cpu, UC_X86_REG_EFLAGS, 0x2);
    set_reg32(cpu, UC_X86_REG_EIP, eip);
    cpu->have_last_tb = false;
    return true;
}

static void image_add(GByteArray *a, XboxCpu *cpu, int reg, size_t len)
{
    uint8_t buf[64] = { 0 };
    g_assert(len <= sizeof(buf));
    uc_reg_read(cpu->uc, reg, buf);
    g_byte_array_append(a, buf, len);
}

GByteArray *cpu_register_image(XboxCpu *cpu)
{
    GByteArray *a = g_byte_array_new();
    CpuRegs r;
    cpu_get_regs(cpu, &r);
    uint32_t words[] = { r.eax, r.ebx, r.ecx, r.edx, r.esi, r.edi, r.ebp,
                         r.esp, r.eip, r.eflags, r.cs, r.ds, r.es, r.fs,
                         r.gs, r.ss, r.cr0, r.cr2, r.cr3, r.cr4, r.gdt_base,
                         r.gdt_limit, r.idt_base, r.idt_limit };
    for (size_t i = 0; i < G_N_ELEMENTS(words); i++) {
        uint32_t le = GUINT32_TO_LE(words[i]);
        g_byte_array_append(a, (const uint8_t *)&le, 4);
    }
    image_add(a, cpu, UC_X86_REG_FPCW, 2);
    image_add(a, cpu, UC_X86_REG_FPSW, 2);
    image_add(a, cpu, UC_X86_REG_FPTAG, 2);
    for (int i = 0; i < 8; i++) {
        image_add(a, cpu, UC_X86_REG_FP0 + i, 10);
    }
    for (int i = 0; i < 8; i++) {
        image_add(a, cpu, UC_X86_REG_XMM0 + i, 16);
    }
    image_add(a, cpu, UC_X86_REG_MXCSR, 4);
    return a;
}

/* ---- save states ---- */

static bool cpu_vm_read(XboxCpu *cpu, CpuVMState *v, GError **errp)
{
    static const struct { int reg; size_t off; } r32[] = {
        { UC_X86_REG_EAX, offsetof(CpuVMState, eax) },
        { UC_X86_REG_ECX, offsetof(CpuVMState, ecx) },
        { UC_X86_REG_EDX, offsetof(CpuVMState, edx) },
        { UC_X86_REG_EBX, offsetof(CpuVMState, ebx) },
        { UC_X86_REG_ESP, offsetof(CpuVMState, esp) },
        { UC_X86_REG_EBP, offsetof(CpuVMState, ebp) },
        { UC_X86_REG_ESI, offsetof(CpuVMState, esi) },
        { UC_X86_REG_EDI, offsetof(CpuVMState, edi) },
        { UC_X86_REG_EIP, offsetof(CpuVMState, eip) },
        { UC_X86_REG_EFLAGS, offsetof(CpuVMState, eflags) },
        { UC_X86_REG_CR0, offsetof(CpuVMState, cr0) },
        { UC_X86_REG_CR2, offsetof(CpuVMState, cr2) },
        { UC_X86_REG_CR3, offsetof(CpuVMState, cr3) },
        { UC_X86_REG_CR4, offsetof(CpuVMState, cr4) },
        { UC_X86_REG_MXCSR, offsetof(CpuVMState, mxcsr) },
    };
    static const struct { int reg; size_t off; } r16[] = {
        { UC_X86_REG_CS, offsetof(CpuVMState, cs) },
        { UC_X86_REG_SS, offsetof(CpuVMState, ss) },
        { UC_X86_REG_DS, offsetof(CpuVMState, ds) },
        { UC_X86_REG_ES, offsetof(CpuVMState, es) },
        { UC_X86_REG_FS, offsetof(CpuVMState, fs) },
        { UC_X86_REG_GS, offsetof(CpuVMState, gs) },
        { UC_X86_REG_FPCW, offsetof(CpuVMState, fpcw) },
        { UC_X86_REG_FPSW, offsetof(CpuVMState, fpsw) },
        { UC_X86_REG_FPTAG, offsetof(CpuVMState, fptag) },
        { UC_X86_REG_FOP, offsetof(CpuVMState, fop) },
        { UC_X86_REG_FCS, offsetof(CpuVMState, fcs) },
        { UC_X86_REG_FDS, offsetof(CpuVMState, fds) },
    };
    uc_err e = UC_ERR_OK;
    *v = (CpuVMState){ 0 };
    for (size_t i = 0; i < G_N_ELEMENTS(r32) && !e; i++) {
        uint64_t x = 0;
        e = uc_reg_read(cpu->uc, r32[i].reg, &x);
        uint32_t w = (uint32_t)x;
        memcpy((uint8_t *)v + r32[i].off, &w, 4);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(r16) && !e; i++) {
        uint64_t x = 0;
        e = uc_reg_read(cpu->uc, r16[i].reg, &x);
        uint16_t w = (uint16_t)x;
        memcpy((uint8_t *)v + r16[i].off, &w, 2);
    }
    for (int i = 0; i < 8 && !e; i++) {
        uint64_t x = 0;
        e = uc_reg_read(cpu->uc, UC_X86_REG_DR0 + i, &x);
        v->dr[i] = (uint32_t)x;
    }
    uc_x86_mmr m;
    if (!e) {
        m = (uc_x86_mmr){ 0 };
        e = uc_reg_read(cpu->uc, UC_X86_REG_GDTR, &m);
        v->gdt_base = (uint32_t)m.base;
        v->gdt_limit = m.limit;
    }
    if (!e) {
        m = (uc_x86_mmr){ 0 };
        e = uc_reg_read(cpu->uc, UC_X86_REG_IDTR, &m);
        v->idt_base = (uint32_t)m.base;
        v->idt_limit = m.limit;
    }
    if (!e) {
        m = (uc_x86_mmr){ 0 };
        e = uc_reg_read(cpu->uc, UC_X86_REG_LDTR, &m);
        v->ldt_sel = m.selector;
        v->ldt_base = (uint32_t)m.base;
        v->ldt_limit = m.limit;
        v->ldt_flags = m.flags;
    }
    if (!e) {
        m = (uc_x86_mmr){ 0 };
        e = uc_reg_read(cpu->uc, UC_X86_REG_TR, &m);
        v->tr_sel = m.selector;
        v->tr_base = (uint32_t)m.base;
        v->tr_limit = m.limit;
        v->tr_flags = m.flags;
    }
    if (!e) {
        e = uc_reg_read(cpu->uc, UC_X86_REG_FIP, &v->fip);
    }
    if (!e) {
        e = uc_reg_read(cpu->uc, UC_X86_REG_FDP, &v->fdp);
    }
    for (int i = 0; i < 8 && !e; i++) {
        uint8_t fp[16] = { 0 };
        e = uc_reg_read(cpu->uc, UC_X86_REG_FP0 + i, fp);
        memcpy(&v->fp_mant[i], fp, 8);
        memcpy(&v->fp_exp[i], fp + 8, 2);
    }
    for (int i = 0; i < 8 && !e; i++) {
        e = uc_reg_read(cpu->uc, UC_X86_REG_XMM0 + i, &v->xmm[2 * i]);
    }
    return uc_check(e, "reading the registers", errp);
}

#define CR0_PE      0x00000001u
#define CR0_WP      0x00010000u
#define CR0_PG      0x80000000u
/* CR0: PE MP EM TS ET NE WP AM NW CD PG. */
#define CR0_KNOWN   0xE005003Fu
#define CR4_PSE     0x00000010u
#define CR4_PAE     0x00000020u
/* CR4: VME PVI TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT. */
#define CR4_KNOWN   0x000007FFu
#define EFLAGS_VM_BIT 0x00020000u

/*
 * Loading a segment selector through uc_reg_write makes Unicorn read
 * (and, for the accessed bit, write) the descriptor in guest memory; a
 * fault there, or a descriptor its loader refuses with an exception,
 * longjmps out of the API call and crashes the host.  So every selector
 * is checked here first, against the state's own GDT/LDT in the RAM
 * just loaded, walking 32-bit paging (not PAE: refused) as the CPU
 * would, with the rules of a ring-0 load.
 */
static bool cpu_vm_translate(XboxCpu *cpu, const CpuVMState *v, uint32_t lin,
                             bool write, uint64_t *gpa)
{
    uint32_t pde, pte;
    bool wp = v->cr0 & CR0_WP;
    if (!(v->cr0 & CR0_PG)) {
        *gpa = lin;
        return in_ram(cpu, lin, 1);
    }
    if (!ram_read(cpu, (v->cr3 & ~0xFFFu) + (lin >> 22) * 4ull, &pde, 4)) {
        return false;
    }
    pde = GUINT32_FROM_LE(pde);
    if (!(pde & 1)) {
        return false;
    }
    if ((v->cr4 & CR4_PSE) && (pde & 0x80)) {
        if ((pde & 0x003FE000u) || (write && wp && !(pde & 2))) {
            return false;       /* PSE-36 bits: beyond 4 GiB */
        }
        *gpa = (pde & 0xFFC00000u) | (lin & 0x003FFFFFu);
        return in_ram(cpu, *gpa, 1);
    }
    if (!ram_read(cpu, (pde & ~0xFFFu) + ((lin >> 12) & 0x3FF) * 4ull, &pte,
                  4)) {
        return false;
    }
    pte = GUINT32_FROM_LE(pte);
    if (!(pte & 1) || (write && wp && !((pde & 2) && (pte & 2)))) {
        return false;
    }
    *gpa = (pte & ~0xFFFu) | (lin & 0xFFFu);
    return in_ram(cpu, *gpa, 1);
}

typedef enum { SEG_CS, SEG_SS, SEG_DATA } SegKind;

static bool cpu_vm_check_selector(XboxCpu *cpu, const CpuVMState *v,
                                  SegKind kind, uint16_t sel,
                                  const char *name, GError **errp)
{
    if (!(v->cr0 & CR0_PE)) {
        return true;            /* real mode: no descriptor */
    }
    if ((sel & 0xFFFC) == 0) {
        if (kind != SEG_DATA) {
            hw_error_set(errp, "%s holds a null selector", name);
            return false;
        }
        return true;
    }
    bool ldt = sel & 4;
    uint32_t base = ldt ? v->ldt_base : v->gdt_base;
    uint32_t limit = ldt ? v->ldt_limit : v->gdt_limit;
    uint32_t index = sel & ~7u;
    if (index + 7 > limit) {
        hw_error_set(errp, "%s selector 0x%x lies beyond the %s limit", name,
                     sel, ldt ? "LDT" : "GDT");
        return false;
    }
    uint8_t d[8];
    for (int i = 0; i < 8; i++) {
        uint64_t gpa;
        if (!cpu_vm_translate(cpu, v, base + index + i, false, &gpa) ||
            !ram_read(cpu, gpa, &d[i], 1)) {
            hw_error_set(errp, "the descriptor of %s selector 0x%x is not "
                         "mapped in RAM", name, sel);
            return false;
        }
    }
    bool present = d[5] & 0x80, segment = d[5] & 0x10, code = d[5] & 0x08;
    bool rw = d[5] & 0x02, conforming = code && (d[5] & 0x04);
    int dpl = (d[5] >> 5) & 3, rpl = sel & 3;
    bool ok = present && segment;
    switch (kind) {
    case SEG_CS:
        ok = ok && code && rw && (conforming || dpl >= rpl);
        break;
    case SEG_SS:
        ok = ok && !code && rw && rpl == 0 && dpl == 0;
        break;
    default:
        ok = ok && (!code || rw) && (conforming || dpl >= rpl);
        break;
    }
    if (!ok) {
        hw_error_set(errp, "%s selector 0x%x: descriptor (access 0x%02x) "
                     "cannot be loaded at ring 0", name, sel, d[5]);
        return false;
    }
    /* The load sets the accessed bit: that dword must be writable. */
    for (int i = 4; i < 8 && !(d[5] & 1); i += 3) {
        uint64_t gpa;
        if (!cpu_vm_translate(cpu, v, base + index + i, true, &gpa)) {
            hw_error_set(errp, "the descriptor of %s selector 0x%x is not "
                         "writable", name, sel);
            return false;
        }
    }
    return true;
}

static bool cpu_vm_write(XboxCpu *cpu, const CpuVMState *v, GError **errp)
{
    uc_engine *uc = cpu->uc;
    uc_x86_mmr gdtr = { .base = v->gdt_base, .limit = v->gdt_limit };
    uc_x86_mmr idtr = { .base = v->idt_base, .limit = v->idt_limit };
    uc_x86_mmr ldtr = { .selector = v->ldt_sel, .base = v->ldt_base,
                        .limit = v->ldt_limit, .flags = v->ldt_flags };
    uc_x86_mmr tr = { .selector = v->tr_sel, .base = v->tr_base,
                      .limit = v->tr_limit, .flags = v->tr_flags };
    uint32_t cr[4] = { v->cr0, v->cr3, v->cr4, v->cr2 };
    static const int crs[4] = { UC_X86_REG_CR0, UC_X86_REG_CR3,
                                UC_X86_REG_CR4, UC_X86_REG_CR2 };
    static const struct { SegKind kind; const char *name; } segs[6] = {
        { SEG_CS, "CS" }, { SEG_SS, "SS" }, { SEG_DATA, "DS" },
        { SEG_DATA, "ES" }, { SEG_DATA, "FS" }, { SEG_DATA, "GS" },
    };
    const uint16_t sels[6] = { v->cs, v->ss, v->ds, v->es, v->fs, v->gs };
    for (int i = 0; i < 6; i++) {
        if (!cpu_vm_check_selector(cpu, v, segs[i].kind, sels[i],
                                   segs[i].name, errp)) {
            return false;
        }
    }
    /* Control and table registers first: the selectors are checked
     * against the GDT they name.  A control register equal to the fresh
     * engine's is left alone, so that the hidden flags Unicorn derives
     * at reset (SSE enabled with CR4 = 0) stay as the saved engine had
     * them. */
    for (int i = 0; i < 4; i++) {
        uint64_t now = 0;
        uc_reg_read(uc, crs[i], &now);
        if ((uint32_t)now != cr[i] &&
            !uc_check(uc_reg_write(uc, crs[i], &cr[i]), "loading a control "
                      "register", errp)) {
            return false;
        }
    }
    if (!uc_check(uc_reg_write(uc, UC_X86_REG_GDTR, &gdtr), "loading GDTR",
                  errp) ||
        !uc_check(uc_reg_write(uc, UC_X86_REG_IDTR, &idtr), "loading IDTR",
                  errp) ||
        !uc_check(uc_reg_write(uc, UC_X86_REG_LDTR, &ldtr), "loading LDTR",
                  errp) ||
        !uc_check(uc_reg_write(uc, UC_X86_REG_TR, &tr), "loading TR",
                  errp) ||
        !write_seg(cpu, UC_X86_REG_CS, v->cs, "CS", errp) ||
        !write_seg(cpu, UC_X86_REG_SS, v->ss, "SS", errp) ||
        !write_seg(cpu, UC_X86_REG_DS, v->ds, "DS", errp) ||
        !write_seg(cpu, UC_X86_REG_ES, v->es, "ES", errp) ||
        !write_seg(cpu, UC_X86_REG_FS, v->fs, "FS", errp) ||
        !write_seg(cpu, UC_X86_REG_GS, v->gs, "GS", errp)) {
        return false;
    }
    static const int gprs[] = { UC_X86_REG_EAX, UC_X86_REG_ECX,
                                UC_X86_REG_EDX, UC_X86_REG_EBX,
                                UC_X86_REG_ESP, UC_X86_REG_EBP,
                                UC_X86_REG_ESI, UC_X86_REG_EDI };
    const uint32_t vals[] = { v->eax, v->ecx, v->edx, v->ebx, v->esp,
                              v->ebp, v->esi, v->edi };
    for (size_t i = 0; i < G_N_ELEMENTS(gprs); i++) {
        set_reg32(cpu, gprs[i], vals[i]);
    }
    set_reg32(cpu, UC_X86_REG_EFLAGS, v->eflags);
    set_reg32(cpu, UC_X86_REG_EIP, v->eip);
    uc_err e = UC_ERR_OK;
    for (int i = 0; i < 8 && !e; i++) {
        uint32_t d = v->dr[i];
        e = uc_reg_write(uc, UC_X86_REG_DR0 + i, &d);
    }
    for (int i = 0; i < 8 && !e; i++) {
        uint8_t fp[10];
        memcpy(fp, &v->fp_mant[i], 8);
        memcpy(fp + 8, &v->fp_exp[i], 2);
        e = uc_reg_write(uc, UC_X86_REG_FP0 + i, fp);
    }
    const struct { int reg; uint16_t val; } x87[] = {
        { UC_X86_REG_FPCW, v->fpcw }, { UC_X86_REG_FPSW, v->fpsw },
        { UC_X86_REG_FPTAG, v->fptag }, { UC_X86_REG_FOP, v->fop },
        { UC_X86_REG_FCS, v->fcs }, { UC_X86_REG_FDS, v->fds },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(x87) && !e; i++) {
        e = uc_reg_write(uc, x87[i].reg, &x87[i].val);
    }
    if (!e) {
        e = uc_reg_write(uc, UC_X86_REG_FIP, &v->fip);
    }
    if (!e) {
        e = uc_reg_write(uc, UC_X86_REG_FDP, &v->fdp);
    }
    if (!e) {
        e = uc_reg_write(uc, UC_X86_REG_MXCSR, &v->mxcsr);
    }
    for (int i = 0; i < 8 && !e; i++) {
        e = uc_reg_write(uc, UC_X86_REG_XMM0 + i, &v->xmm[2 * i]);
    }
    return uc_check(e, "loading the x87/SSE registers", errp);
}

static bool cpu_pre_save(void *opaque, XblkError **err)
{
    XboxCpu *cpu = opaque;
    GError *gerr = NULL;
    g_assert(!cpu->in_slice);
    if (!cpu_vm_read(cpu, &cpu->vms, &gerr)) {
        hw_error_to_xblk(err, XBLK_ERROR_FAILED, gerr);
        return false;
    }
    cpu->vms.slice_left = cpu->limit > cpu->blocks ? cpu->limit - cpu->blocks
                                                   : 0;
    cpu->vms.have_last_tb = cpu->have_last_tb;
    cpu->vms.last_tb_addr = cpu->have_last_tb ? cpu->last_tb_addr : 0;
    cpu->vms.last_tb_size = cpu->have_last_tb ? cpu->last_tb_size : 0;
    return true;
}

/* A fresh engine (no translated code of the RAM before the load, no
 * hidden exception state), then the registers; on failure the previous
 * registers go back into the new engine. */
static bool cpu_post_load(void *opaque, int version_id, XblkError **err)
{
    XboxCpu *cpu = opaque;
    CpuVMState old;
    GError *gerr = NULL;
    g_assert(!cpu->in_slice);
    if (!cpu_vm_read(cpu, &old, &gerr) || !cpu_reset_engine(cpu, &gerr)) {
        hw_error_to_xblk(err, XBLK_ERROR_FAILED, gerr);
        return false;
    }
    if (!cpu_vm_write(cpu, &cpu->vms, &gerr)) {
        cpu_vm_write(cpu, &old, NULL);
        hw_error_to_xblk(err, XBLK_ERROR_FAILED, gerr);
        return false;
    }
    cpu->limit = cpu->blocks + cpu->vms.slice_left;
    cpu->have_last_tb = cpu->vms.have_last_tb;
    cpu->last_tb_addr = cpu->vms.last_tb_addr;
    cpu->last_tb_size = cpu->vms.last_tb_size;
    cpu->pending_vector = -1;
    cpu->mem_fault = false;
    return true;
}

static const XblkDeviceDesc cpu_regs_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "x86-registers",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(CpuVMState),
    .fields = (const XblkField[]){
        XBLK_U32(CpuVMState, eax),
        XBLK_U32(CpuVMState, ecx),
        XBLK_U32(CpuVMState, edx),
        XBLK_U32(CpuVMState, ebx),
        XBLK_U32(CpuVMState, esp),
        XBLK_U32(CpuVMState, ebp),
        XBLK_U32(CpuVMState, esi),
        XBLK_U32(CpuVMState, edi),
        XBLK_U32(CpuVMState, eip),
        XBLK_U32(CpuVMState, eflags),
        XBLK_U16(CpuVMState, cs),
        XBLK_U16(CpuVMState, ss),
        XBLK_U16(CpuVMState, ds),
        XBLK_U16(CpuVMState, es),
        XBLK_U16(CpuVMState, fs),
        XBLK_U16(CpuVMState, gs),
        XBLK_U32(CpuVMState, cr0),
        XBLK_U32(CpuVMState, cr2),
        XBLK_U32(CpuVMState, cr3),
        XBLK_U32(CpuVMState, cr4),
        XBLK_U32_ARRAY(CpuVMState, dr, 8),
        XBLK_U32(CpuVMState, gdt_base),
        XBLK_U32(CpuVMState, gdt_limit, XBLK_MAX(0xFFFF)),
        XBLK_U32(CpuVMState, idt_base),
        XBLK_U32(CpuVMState, idt_limit, XBLK_MAX(0xFFFF)),
        XBLK_U16(CpuVMState, ldt_sel),
        XBLK_U32(CpuVMState, ldt_base),
        XBLK_U32(CpuVMState, ldt_limit),
        XBLK_U32(CpuVMState, ldt_flags),
        XBLK_U16(CpuVMState, tr_sel),
        XBLK_U32(CpuVMState, tr_base),
        XBLK_U32(CpuVMState, tr_limit),
        XBLK_U32(CpuVMState, tr_flags),
        XBLK_U16(CpuVMState, fpcw),
        XBLK_U16(CpuVMState, fpsw),
        XBLK_U16(CpuVMState, fptag),
        XBLK_U16(CpuVMState, fop),
        XBLK_U16(CpuVMState, fcs),
        XBLK_U16(CpuVMState, fds),
        XBLK_U64(CpuVMState, fip, XBLK_MAX(0xFFFFFFFF)),
        XBLK_U64(CpuVMState, fdp, XBLK_MAX(0xFFFFFFFF)),
        XBLK_U64_ARRAY(CpuVMState, fp_mant, 8),
        XBLK_U16_ARRAY(CpuVMState, fp_exp, 8),
        XBLK_U32(CpuVMState, mxcsr, XBLK_MAX(0xFFFF)),
        XBLK_U64_ARRAY(CpuVMState, xmm, 16),
        XBLK_U64(CpuVMState, slice_left, XBLK_MAX(UINT32_MAX)),
        XBLK_BOOL(CpuVMState, have_last_tb),
        XBLK_U64(CpuVMState, last_tb_addr, XBLK_MAX(UINT32_MAX)),
        XBLK_U32(CpuVMState, last_tb_size),
        XBLK_FIELDS_END
    },
};

/* What the machine cannot run (and Unicorn's API cannot load safely). */
static bool cpu_vm_check(const void *current, const void *scratch,
                         int version_id, XblkError **err)
{
    const CpuVMState *v = &((const XboxCpu *)scratch)->vms;
    const char *why = NULL;
    if (v->eflags & EFLAGS_VM_BIT) {
        why = "virtual-8086 mode";
    } else if ((v->cr0 & ~CR0_KNOWN) || (v->cr4 & ~CR4_KNOWN)) {
        why = "reserved CR0/CR4 bits";
    } else if ((v->cr0 & CR0_PG) && !(v->cr0 & CR0_PE)) {
        why = "paging without protected mode";
    } else if ((v->cr0 & CR0_PG) && (v->cr4 & CR4_PAE)) {
        why = "PAE paging";
    }
    if (why) {
        xblk_error_set(err, XBLK_ERROR_INVALID, "the CPU state uses %s "
                       "(CR0 0x%08x, CR4 0x%08x, EFLAGS 0x%08x), which this "
                       "machine does not support", why, v->cr0, v->cr4,
                       v->eflags);
        return false;
    }
    return true;
}

static const XblkDeviceDesc cpu_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "cpu",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(XboxCpu),
    .pre_save = cpu_pre_save,
    .check = cpu_vm_check,
    .post_load = cpu_post_load,
    .fields = (const XblkField[]){
        XBLK_STRUCT(XboxCpu, vms, &cpu_regs_desc, CpuVMState),
        XBLK_FIELDS_END
    },
};

const XblkDeviceDesc *cpu_vmstate(void)
{
    return &cpu_desc;
}
