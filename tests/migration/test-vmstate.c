/*
 * test-vmstate.c - field tables (migration/vmstate.c) and the device
 * tables of every device of the console (libxblk's public tables, run
 * through the engine's form of them, as xblk_device_add registers them).
 *
 * Covers: the exact encoding of every field type; refusals (truncated,
 * trailing bytes, a bool that is not 0/1, out-of-range values, a VBUFFER
 * length that lies, check() refusing, a newer or too old version) that
 * leave the object untouched; a version-1 encoding loading through the
 * version-2 table's converter (a field added, a field widened through
 * the old area); sets (unknown, duplicate, missing sections, and all or
 * nothing across sections); timers restored relative to a clock that
 * reads something else, in their arm order; and, on real devices made
 * by their constructors, save -> load -> save giving identical bytes and
 * the loaded machine behaving as the saved one (PIC, PIT, system
 * controller, gamepad, GPU, IDE with a PIO transfer half done and the
 * security state, the vCPU with FPU/SSE state and a preempted slice, and
 * no stale translated code after a load); plus the refusals of the CPU
 * (vm86, PAE, a GDT outside RAM, a ring-3 stack: no crash, registers
 * kept), IDE and system controller (another drive layout, another RAM
 * size, a request held by a stop policy).
 */
#include "tests/migration/machine-test.h"

/* ---- the engine on a demo struct ---- */

typedef struct Inner {
    uint16_t a;
    bool b;
    int8_t c;
} Inner;

typedef struct Demo {
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int8_t i8;
    int16_t i16;
    int32_t i32;
    int64_t i64;
    bool flag;
    uint32_t arr[3];
    uint8_t raw[5];
    uint32_t vlen;
    uint8_t vbuf[16];
    Inner inner;
    Inner many[2];
    uint8_t small;
    uint32_t even;              /* check(): must be even */
    void *not_saved;
    int post_loads;
} Demo;

static bool inner_check(const void *cur, const void *scratch, int v,
                        GError **errp)
{
    const Inner *in = scratch;
    if (in->c == -128) {
        error_setg(errp, "c may not be -128");
        return false;
    }
    return true;
}

static const VMStateDescription inner_vmsd = {
    .name = "inner",
    .version_id = 1,
    .minimum_version_id = 1,
    .size = sizeof(Inner),
    .check = inner_check,
    .fields = (const VMStateField[]){
        VMS_U16(Inner, a),
        VMS_BOOL(Inner, b),
        VMS_I8(Inner, c),
        VMS_END
    },
};

static bool demo_check(const void *cur, const void *scratch, int v,
                       GError **errp)
{
    const Demo *d = scratch;
    if (d->even & 1) {
        error_setg(errp, "odd value %u", d->even);
        return false;
    }
    return true;
}

static bool demo_post_load(void *opaque, int v, GError **errp)
{
    ((Demo *)opaque)->post_loads++;
    return true;
}

static const VMStateDescription demo_vmsd = {
    .name = "demo",
    .version_id = 1,
    .minimum_version_id = 1,
    .size = sizeof(Demo),
    .check = demo_check,
    .post_load = demo_post_load,
    .fields = (const VMStateField[]){
        VMS_U8(Demo, u8),
        VMS_U16(Demo, u16),
        VMS_U32(Demo, u32),
        VMS_U64(Demo, u64),
        VMS_I8(Demo, i8),
        VMS_I16(Demo, i16),
        VMS_I32(Demo, i32),
        VMS_I64(Demo, i64, VMS_RANGE(-1000000, 1000000)),
        VMS_BOOL(Demo, flag),
        VMS_U32_ARRAY(Demo, arr, 3),
        VMS_BUFFER(Demo, raw),
        VMS_U32(Demo, vlen, VMS_MAX(16)),
        VMS_VBUFFER(Demo, vbuf, vlen),
        VMS_STRUCT(Demo, inner, &inner_vmsd, Inner),
        VMS_STRUCT_ARRAY(Demo, many, 2, &inner_vmsd, Inner),
        VMS_U8(Demo, small, VMS_MAX(9)),
        VMS_U32(Demo, even),
        VMS_END
    },
};

static Demo demo_value(void)
{
    Demo d = {
        .u8 = 0x12, .u16 = 0x3456, .u32 = 0x789ABCDE,
        .u64 = 0x0102030405060708ull, .i8 = -2, .i16 = -300,
        .i32 = -70000, .i64 = -123456, .flag = true,
        .arr = { 1, 2, 0xFFFFFFFF }, .raw = { 'h', 'e', 'l', 'l', 'o' },
        .vlen = 3, .vbuf = { 0xAA, 0xBB, 0xCC, 0xDD },
        .inner = { 0x0102, true, -1 },
        .many = { { 7, false, 5 }, { 8, true, -5 } },
        .small = 9, .even = 42, .not_saved = (void *)0x1,
    };
    return d;
}

static const uint8_t demo_bytes[] = {
    0x12,                                           /* u8 */
    0x56, 0x34,                                     /* u16 */
    0xDE, 0xBC, 0x9A, 0x78,                         /* u32 */
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* u64 */
    0xFE,                                           /* i8 */
    0xD4, 0xFE,                                     /* i16 */
    0x90, 0xEE, 0xFE, 0xFF,                         /* i32 */
    0xC0, 0x1D, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, /* i64 */
    0x01,                                           /* flag */
    1, 0, 0, 0, 2, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, /* arr */
    'h', 'e', 'l', 'l', 'o',                        /* raw */
    3, 0, 0, 0,                                     /* vlen */
    3, 0, 0, 0, 0xAA, 0xBB, 0xCC,                   /* vbuf */
    0x02, 0x01, 0x01, 0xFF,                         /* inner */
    7, 0, 0, 5, 8, 0, 1, 0xFB,                      /* many */
    9,                                              /* small */
    42, 0, 0, 0,                                    /* even */
};

static void test_encoding(void)
{
    Demo d = demo_value(), e = { 0 };
    GByteArray *a = g_byte_array_new();
    GError *err = NULL;
    g_assert_true(vmstate_save(&demo_vmsd, &d, a, &err));
    g_assert_no_error(err);
    g_assert_cmpmem(a->data, a->len, demo_bytes, sizeof(demo_bytes));
    e.not_saved = (void *)0x2;
    e.vbuf[10] = 0x77;
    g_assert_true(vmstate_load(&demo_vmsd, &e, a->data, a->len, 1, &err));
    g_assert_no_error(err);
    g_assert_cmpint(e.post_loads, ==, 1);
    g_assert_true(e.not_saved == (void *)0x2);      /* undescribed */
    g_assert_cmphex(e.vbuf[10], ==, 0x77);          /* past vlen */
    e.post_loads = 0;
    e.not_saved = d.not_saved;
    e.vbuf[3] = d.vbuf[3];
    e.vbuf[10] = 0;
    g_assert_cmpmem(&e, sizeof(e), &d, sizeof(d));
    g_byte_array_unref(a);
}

/* Loading buf must fail with a message containing `want`, and leave the
 * object as it was. */
static void expect_refused(const VMStateDescription *desc, void *obj,
                           size_t size, const void *buf, size_t len,
                           int version, const char *want)
{
    g_autofree void *before = g_memdup2(obj, size);
    GError *err = NULL;
    g_assert_false(vmstate_load(desc, obj, buf, len, version, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, want)) {
        g_error("message '%s' lacks '%s'", err->message, want);
    }
    g_error_free(err);
    g_assert_cmpmem(obj, size, before, size);
}

static void test_refusals(void)
{
    Demo d = { .u8 = 99, .not_saved = &d };
    uint8_t b[sizeof(demo_bytes) + 1];
    size_t n = sizeof(demo_bytes);

    for (size_t cut = 0; cut < n; cut++) {
        expect_refused(&demo_vmsd, &d, sizeof(d), demo_bytes, cut, 1,
                       "truncated at field");
    }
    expect_refused(&demo_vmsd, &d, sizeof(d), demo_bytes, 1, 1,
                   "field 'u16'");
    memcpy(b, demo_bytes, n);
    b[n] = 0;
    expect_refused(&demo_vmsd, &d, sizeof(d), b, n + 1, 1,
                   "1 bytes of trailing data");
    memcpy(b, demo_bytes, n);
    b[30] = 2;                                      /* flag */
    expect_refused(&demo_vmsd, &d, sizeof(d), b, n, 1, "field 'flag'");
    memcpy(b, demo_bytes, n);
    b[n - 5] = 10;                                  /* small > 9 */
    expect_refused(&demo_vmsd, &d, sizeof(d), b, n, 1,
                   "field 'small': value 10 out of range");
    memcpy(b, demo_bytes, n);
    b[29] = 0x80;                                   /* i64 far below */
    expect_refused(&demo_vmsd, &d, sizeof(d), b, n, 1, "field 'i64'");
    memcpy(b, demo_bytes, n);
    b[52] = 4;                                      /* vbuf length */
    expect_refused(&demo_vmsd, &d, sizeof(d), b, n, 1,
                   "field 'vbuf': length 4 does not match 3");
    memcpy(b, demo_bytes, n);
    b[n - 4] = 43;                                  /* even: odd */
    expect_refused(&demo_vmsd, &d, sizeof(d), b, n, 1, "odd value 43");
    memcpy(b, demo_bytes, n);
    b[n - 6] = 0x80;                                /* many[1].c */
    expect_refused(&demo_vmsd, &d, sizeof(d), b, n, 1,
                   "many[1]: c may not be -128");
    expect_refused(&demo_vmsd, &d, sizeof(d), demo_bytes, n, 2,
                   "version 2 is newer than this xblk supports (1)");
    expect_refused(&demo_vmsd, &d, sizeof(d), demo_bytes, n, 0,
                   "version 0 is older");
    g_assert_cmpint(d.post_loads, ==, 0);
}

/* ---- versions ---- */

/* Version 2 widened `speed` (u16 in version 1, in units of 1000) and
 * added `mode` (7 before version 2). */
typedef struct Versioned {
    uint32_t speed;
    uint32_t other;
    uint8_t mode;
} Versioned;

typedef struct VersionedOld {
    uint16_t speed_v1;
} VersionedOld;

static bool versioned_load_old(void *scratch, int version_id, GError **errp)
{
    Versioned *v = scratch;
    VersionedOld *old = (VersionedOld *)((char *)scratch +
                                         VMS_OLD_BASE(Versioned));
    g_assert_cmpint(version_id, ==, 1);
    v->speed = old->speed_v1 * 1000u;
    v->mode = 7;
    return true;
}

static const VMStateDescription versioned_v2 = {
    .name = "versioned",
    .version_id = 2,
    .minimum_version_id = 1,
    .size = sizeof(Versioned),
    .old_size = sizeof(VersionedOld),
    .load_old = versioned_load_old,
    .fields = (const VMStateField[]){
        VMS_OLD_U16(Versioned, VersionedOld, speed_v1, VMS_UNTIL(2)),
        VMS_U32(Versioned, speed, VMS_SINCE(2)),
        VMS_U32(Versioned, other),
        VMS_U8(Versioned, mode, VMS_SINCE(2)),
        VMS_END
    },
};

static void test_old_version(void)
{
    /* What version 1 wrote: speed_v1 = 12, other = 0x01020304. */
    static const uint8_t v1[] = { 12, 0, 4, 3, 2, 1 };
    Versioned v = { .speed = 1, .other = 2, .mode = 3 };
    GError *err = NULL;
    g_assert_true(vmstate_load(&versioned_v2, &v, v1, sizeof(v1), 1, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(v.speed, ==, 12000);
    g_assert_cmphex(v.other, ==, 0x01020304);
    g_assert_cmpuint(v.mode, ==, 7);

    /* Saving writes version 2 only; it reads back as is. */
    GByteArray *a = g_byte_array_new();
    g_assert_true(vmstate_save(&versioned_v2, &v, a, &err));
    static const uint8_t v2[] = { 0xE0, 0x2E, 0, 0, 4, 3, 2, 1, 7 };
    g_assert_cmpmem(a->data, a->len, v2, sizeof(v2));
    Versioned w = { 0 };
    g_assert_true(vmstate_load(&versioned_v2, &w, a->data, a->len, 2,
                               &err));
    g_assert_cmpuint(w.speed, ==, v.speed);
    g_assert_cmpuint(w.other, ==, v.other);
    g_assert_cmpuint(w.mode, ==, v.mode);
    g_byte_array_unref(a);
    /* A version-1 encoding of the wrong length is refused. */
    expect_refused(&versioned_v2, &v, sizeof(v), v1, 5, 1, "truncated");
}

/* ---- sets ---- */

static void test_set_all_or_nothing(void)
{
    Demo a = demo_value(), b = demo_value();
    b.u8 = 0x55;
    VMStateSet *set = vmstate_set_new();
    vmstate_set_add(set, &demo_vmsd, 0, &a);
    vmstate_set_add(set, &demo_vmsd, 1, &b);
    g_assert_nonnull(vmstate_set_find(set, "demo", 1));
    g_assert_null(vmstate_set_find(set, "demo", 2));
    Demo a0 = a, b0 = b;
    GError *err = NULL;

    /* Section 0 good, section 1 damaged: nothing changes. */
    uint8_t bad[sizeof(demo_bytes)];
    memcpy(bad, demo_bytes, sizeof(bad));
    bad[30] = 7;
    Demo src = demo_value();
    src.u8 = 0x11;
    GByteArray *good = g_byte_array_new();
    g_assert_true(vmstate_save(&demo_vmsd, &src, good, &err));
    VMStateSetLoad *l = vmstate_set_load_begin(set);
    g_assert_true(vmstate_set_load_add(l, "demo", 0, 1, good->data,
                                       good->len, &err));
    g_assert_false(vmstate_set_load_add(l, "demo", 1, 1, bad, sizeof(bad),
                                        &err));
    g_assert_nonnull(strstr(err->message, "section 'demo' instance 1: "));
    g_clear_error(&err);
    vmstate_set_load_free(l);
    g_assert_cmpmem(&a, sizeof(a), &a0, sizeof(a0));
    g_assert_cmpmem(&b, sizeof(b), &b0, sizeof(b0));

    /* Unknown, duplicate and missing sections. */
    l = vmstate_set_load_begin(set);
    g_assert_false(vmstate_set_load_add(l, "nosuch", 0, 1, good->data,
                                        good->len, &err));
    g_assert_nonnull(strstr(err->message, "unknown section 'nosuch'"));
    g_clear_error(&err);
    g_assert_true(vmstate_set_load_add(l, "demo", 0, 1, good->data,
                                       good->len, &err));
    g_assert_false(vmstate_set_load_add(l, "demo", 0, 1, good->data,
                                        good->len, &err));
    g_assert_nonnull(strstr(err->message, "appears twice"));
    g_clear_error(&err);
    g_assert_false(vmstate_set_load_check_complete(l, &err));
    g_assert_nonnull(strstr(err->message,
                            "section 'demo' instance 1 is missing"));
    g_clear_error(&err);
    g_assert_cmpmem(&a, sizeof(a), &a0, sizeof(a0));
    /* Complete it and commit: both change, in order. */
    g_assert_true(vmstate_set_load_add(l, "demo", 1, 1, good->data,
                                       good->len, &err));
    g_assert_true(vmstate_set_load_check_complete(l, &err));
    g_assert_true(vmstate_set_load_commit(l, &err));
    g_assert_no_error(err);
    vmstate_set_load_free(l);
    g_assert_cmphex(a.u8, ==, 0x11);
    g_assert_cmphex(b.u8, ==, 0x11);
    g_assert_cmpint(a.post_loads + b.post_loads, ==, 2);
    g_byte_array_unref(good);
    vmstate_set_free(set);
}

/* ---- timers ---- */

static void note_cb(void *opaque)
{
    GString *s = opaque;
    g_string_append_c(s, 'x');
}

typedef struct TimerPair {
    VTimer a, b;
    VTimerSave sa, sb;
} TimerPair;

static void fire_a(void *opaque)
{
    g_string_append_c(opaque, 'a');
}

static void fire_b(void *opaque)
{
    g_string_append_c(opaque, 'b');
}

static void test_timers_relative(void)
{
    VClock *c1 = vclock_new(), *c2 = vclock_new();
    GString *log1 = g_string_new(NULL), *log2 = g_string_new(NULL);
    TimerPair p1, p2;
    VTimer other;
    vclock_warp_to(c1, 1000);
    vclock_warp_to(c2, 987654321);
    vtimer_init(&p1.a, c1, fire_a, log1);
    vtimer_init(&p1.b, c1, fire_b, log1);
    vtimer_init(&p2.a, c2, fire_a, log2);
    vtimer_init(&p2.b, c2, fire_b, log2);
    vtimer_init(&other, c2, note_cb, log2);
    /* Equal deadlines: b armed first, so b fires first. */
    vtimer_mod(&p1.b, 6000);
    vtimer_mod(&p1.a, 6000);
    vtimer_save(&p1.a, &p1.sa);
    vtimer_save(&p1.b, &p1.sb);
    g_assert_true(p1.sa.armed);
    g_assert_cmpint(p1.sa.deadline_rel, ==, 5000);
    g_assert_cmpuint(p1.sa.seq_rel, <, p1.sb.seq_rel);
    /* The target has a timer of its own at the same relative instant,
     * armed before the load: it keeps going first. */
    vtimer_mod(&other, 987654321 + 5000);
    vtimer_restore(&p2.a, &p1.sa);      /* restored in the other order */
    vtimer_restore(&p2.b, &p1.sb);
    vclock_warp_to(c1, 6000);
    vclock_warp_to(c2, 987654321 + 5000);
    vclock_run_due(c1);
    vclock_run_due(c2);
    g_assert_cmpstr(log1->str, ==, "ba");
    g_assert_cmpstr(log2->str, ==, "xba");
    /* An unarmed timer restores as unarmed. */
    VTimerSave s;
    vtimer_save(&p1.a, &s);
    g_assert_false(s.armed);
    vtimer_mod(&p2.a, 1ll << 40);
    vtimer_restore(&p2.a, &s);
    g_assert_false(vtimer_pending(&p2.a));
    vtimer_del(&other);
    g_string_free(log1, TRUE);
    g_string_free(log2, TRUE);
    vclock_free(c1);
    vclock_free(c2);
}

/* ---- devices ---- */

/* The engine's form of the devices' public tables (machine-test.h). */
#define CPU_VMSD tm_vmsd(cpu_vmstate())
#define PIC_VMSD tm_vmsd(pic_vmstate())
#define PIT_VMSD tm_vmsd(pit_vmstate())
#define SMC_VMSD tm_vmsd(smc_vmstate())
#define IDE_VMSD tm_vmsd(ide_vmstate())

/* save(src) -> load(dst) -> save(dst) == save(src). */
static void roundtrip(const VMStateDescription *desc, void *src, void *dst)
{
    GByteArray *a = g_byte_array_new(), *b = g_byte_array_new();
    GError *err = NULL;
    g_assert_true(vmstate_save(desc, src, a, &err));
    g_assert_no_error(err);
    g_assert_true(vmstate_load(desc, dst, a->data, a->len, desc->version_id,
                               &err));
    g_assert_no_error(err);
    g_assert_true(vmstate_save(desc, dst, b, &err));
    if (a->len != b->len || (a->len && memcmp(a->data, b->data, a->len))) {
        guint i = 0;
        while (i < MIN(a->len, b->len) && a->data[i] == b->data[i]) {
            i++;
        }
        g_error("section '%s': re-saved bytes differ at %u (%u vs %u "
                "bytes)", desc->name, i, a->len, b->len);
    }
    g_byte_array_unref(a);
    g_byte_array_unref(b);
}

/* The whole console, section by section (RAM copied by hand), saved at a
 * busy instant: the loaded machine behaves exactly as the original. */
static void test_machine_sections(void)
{
    TestMachine *a = tm_new("a", 5000);
    TestMachine *b = tm_new("b", 123456789);
    /* The machine's load order (machine-vmstate.h): the clock first, the
     * CPU last, once RAM and every device are in place. */
    static const char *const order[] = {
        "vclock", "machine", "pic", "pit", "smc", "gamepad", "gpu", "ide",
        "cpu",
    };
    g_assert_cmpuint(vmstate_set_count(a->set), ==, G_N_ELEMENTS(order));
    for (guint i = 0; i < G_N_ELEMENTS(order); i++) {
        g_assert_cmpstr(vmstate_set_entry(a->set, i)->desc->name, ==,
                        order[i]);
    }
    tm_scenario(a);
    memcpy(b->th->ram, a->th->ram, TM_RAM);
    for (guint i = 0; i < vmstate_set_count(a->set); i++) {
        const VMStateEntry *ea = vmstate_set_entry(a->set, i);
        const VMStateEntry *eb = vmstate_set_entry(b->set, i);
        g_assert_true(ea->desc == eb->desc);
        roundtrip(ea->desc, ea->opaque, eb->opaque);
    }
    /* Registers right after the load. */
    g_autoptr(GByteArray) ra = cpu_register_image(a->cpu);
    g_autoptr(GByteArray) rb = cpu_register_image(b->cpu);
    g_assert_cmpmem(ra->data, ra->len, rb->data, rb->len);
    CpuRegs regs;
    cpu_get_regs(b->cpu, &regs);
    g_assert_cmphex(regs.ebx, ==, 0x11223344);
    g_assert_cmphex(regs.cs, ==, 0x08);
    g_assert_cmphex(regs.gdt_base, ==, TM_GDT);

    GString *la = tm_exercise(a), *lb = tm_exercise(b);
    g_assert_cmpstr(la->str, ==, lb->str);
    if (g_test_verbose()) {
        g_printerr("%s", la->str);
    }
    /* The log saw interrupts and timers. */
    g_assert_nonnull(strstr(la->str, "pic int 1"));
    g_assert_nonnull(strstr(la->str, "vblanks 2"));
    g_string_free(la, TRUE);
    g_string_free(lb, TRUE);
    tm_free(a);
    tm_free(b);
}

/* The vCPU stopped inside a slice (preempted): the rest of the slice
 * runs the same number of blocks after a load. */
static void test_cpu_preempted_slice(void)
{
    TestMachine *a = tm_new("pa", 0), *b = tm_new("pb", 0);
    tm_load_program(a);
    g_assert_cmpint(cpu_run(a->cpu, 100), ==, CPU_EXIT_BUDGET);
    cpu_preempt(a->cpu);
    g_assert_cmpint(cpu_run(a->cpu, 333), ==, CPU_EXIT_PREEMPTED);
    cpu_clear_preempt(a->cpu);
    memcpy(b->th->ram, a->th->ram, TM_RAM);
    roundtrip(CPU_VMSD, a->cpu, b->cpu);
    uint64_t a0 = *cpu_block_counter(a->cpu), b0 = *cpu_block_counter(b->cpu);
    g_assert_cmpint(cpu_resume_slice(a->cpu), ==, CPU_EXIT_BUDGET);
    g_assert_cmpint(cpu_resume_slice(b->cpu), ==, CPU_EXIT_BUDGET);
    g_assert_cmpuint(*cpu_block_counter(a->cpu) - a0, ==, 333);
    g_assert_cmpuint(*cpu_block_counter(b->cpu) - b0, ==, 333);
    g_autoptr(GByteArray) ra = cpu_register_image(a->cpu);
    g_autoptr(GByteArray) rb = cpu_register_image(b->cpu);
    g_assert_cmpmem(ra->data, ra->len, rb->data, rb->len);
    g_assert_cmpmem(a->th->ram, TM_RAM, b->th->ram, TM_RAM);
    tm_free(a);
    tm_free(b);
}

/* Stale translated code: the target ran other code at the same address
 * before the load; the loaded program must run, not the cached one. */
static void test_cpu_fresh_code(void)
{
    TestMachine *a = tm_new("fa", 0), *b = tm_new("fb", 0);
    tm_load_program(a);
    tm_load_program(b);
    /* b runs a variant whose loop decrements instead. */
    b->th->ram[TM_CODE + 39] = 0x48;    /* dec eax */
    g_assert_cmpint(cpu_run(b->cpu, 200), ==, CPU_EXIT_BUDGET);
    g_assert_cmpint(cpu_run(a->cpu, 200), ==, CPU_EXIT_BUDGET);
    memcpy(b->th->ram, a->th->ram, TM_RAM);
    roundtrip(CPU_VMSD, a->cpu, b->cpu);
    cpu_run(a->cpu, 500);
    cpu_run(b->cpu, 500);
    CpuRegs ra, rb;
    cpu_get_regs(a->cpu, &ra);
    cpu_get_regs(b->cpu, &rb);
    g_assert_cmphex(ra.eax, ==, rb.eax);
    g_assert_cmpuint(ra.eax, >, 600);
    tm_free(a);
    tm_free(b);
}

/* CPU states the machine cannot run are refused; a selector whose
 * descriptor is not in RAM fails the load (Unicorn would crash on it)
 * and leaves the previous registers. */
static void test_cpu_refusals(void)
{
    TestMachine *a = tm_new("ca", 0);
    tm_load_program(a);
    g_assert_cmpint(cpu_run(a->cpu, 100), ==, CPU_EXIT_BUDGET);
    GByteArray *s = g_byte_array_new();
    GError *err = NULL;
    g_assert_true(vmstate_save(CPU_VMSD, a->cpu, s, &err));
    g_autoptr(GByteArray) before = cpu_register_image(a->cpu);

    /* Encoding offsets: 8 GPRs, EIP, EFLAGS at 36, 6 selectors, CR0 at
     * 52, CR2, CR3, CR4 at 64, DR0-7, GDT base at 100. */
    s->data[38] |= 0x02;                    /* EFLAGS.VM */
    g_assert_false(vmstate_load(CPU_VMSD, a->cpu, s->data, s->len, 1,
                                &err));
    g_assert_nonnull(strstr(err->message, "virtual-8086 mode"));
    g_clear_error(&err);
    s->data[38] &= ~0x02;
    s->data[55] |= 0x80;                    /* CR0.PG */
    s->data[64] |= 0x20;                    /* CR4.PAE */
    g_assert_false(vmstate_load(CPU_VMSD, a->cpu, s->data, s->len, 1,
                                &err));
    g_assert_nonnull(strstr(err->message, "PAE paging"));
    g_clear_error(&err);
    s->data[55] &= ~0x80;
    s->data[64] &= ~0x20;
    s->data[103] = 0x7F;                    /* GDT at 0x7F000500 */
    g_assert_false(vmstate_load(CPU_VMSD, a->cpu, s->data, s->len, 1,
                                &err));
    g_assert_nonnull(strstr(err->message, "the descriptor of CS selector "
                            "0x8 is not mapped in RAM"));
    g_clear_error(&err);
    g_autoptr(GByteArray) after = cpu_register_image(a->cpu);
    g_assert_cmpmem(before->data, before->len, after->data, after->len);
    g_assert_cmpint(cpu_run(a->cpu, 100), ==, CPU_EXIT_BUDGET);
    /* A ring-3 stack segment cannot be loaded. */
    s->data[103] = 0;
    s->data[42] |= 3;                       /* SS RPL 3 */
    g_assert_false(vmstate_load(CPU_VMSD, a->cpu, s->data, s->len, 1,
                                &err));
    g_assert_nonnull(strstr(err->message, "SS selector 0x13"));
    g_clear_error(&err);
    g_byte_array_unref(s);
    tm_free(a);
}

static void test_pic_pit_standalone(void)
{
    /* The PIT alone on two clocks far apart: the same edges, relative. */
    VClock *c1 = vclock_new(), *c2 = vclock_new();
    vclock_warp_to(c2, 1ll << 45);
    GString *e1 = g_string_new(NULL), *e2 = g_string_new(NULL);
    Pit *p1 = pit_new(c1, NULL, NULL), *p2 = pit_new(c2, NULL, NULL);
    pit_ioport_write(p1, 0x43, 0x36, 1);            /* ch0 mode 3 */
    pit_ioport_write(p1, 0x40, 0x10, 1);
    pit_ioport_write(p1, 0x40, 0x00, 1);
    vclock_warp_to(c1, 7777);
    vclock_run_due(c1);
    roundtrip(PIT_VMSD, p1, p2);
    for (int i = 0; i < 50; i++) {
        vclock_warp_to(c1, vclock_now(c1) + 1111);
        vclock_warp_to(c2, vclock_now(c2) + 1111);
        vclock_run_due(c1);
        vclock_run_due(c2);
        pit_ioport_write(p1, 0x43, 0x00, 1);
        pit_ioport_write(p2, 0x43, 0x00, 1);
        g_string_append_printf(e1, "%02x%02x ", pit_ioport_read(p1, 0x40, 1),
                               pit_ioport_read(p1, 0x40, 1));
        g_string_append_printf(e2, "%02x%02x ", pit_ioport_read(p2, 0x40, 1),
                               pit_ioport_read(p2, 0x40, 1));
        g_assert_cmpint(vclock_next_deadline(c1) - vclock_now(c1), ==,
                        vclock_next_deadline(c2) - vclock_now(c2));
    }
    g_assert_cmpstr(e1->str, ==, e2->str);
    pit_free(p1);
    pit_free(p2);
    vclock_free(c1);
    vclock_free(c2);
    g_string_free(e1, TRUE);
    g_string_free(e2, TRUE);

    /* A PIC with a bad vector base or init step is refused. */
    PicPair *pic = pic_new();
    GByteArray *a = g_byte_array_new();
    GError *err = NULL;
    g_assert_true(vmstate_save(PIC_VMSD, pic, a, &err));
    a->data[4] = 0x21;                              /* chip[0].vector_base */
    g_assert_false(vmstate_load(PIC_VMSD, pic, a->data, a->len, 1,
                                &err));
    g_assert_nonnull(strstr(err->message, "chip[0]: vector base 0x21"));
    g_clear_error(&err);
    a->data[4] = 0x20;
    a->data[6] = 5;                                 /* init_step */
    g_assert_false(vmstate_load(PIC_VMSD, pic, a->data, a->len, 1,
                                &err));
    g_assert_nonnull(strstr(err->message, "chip[0].init_step"));
    g_clear_error(&err);
    g_byte_array_unref(a);
    pic_free(pic);
}

static void test_smc_ram_mismatch(void)
{
    uint8_t key[32] = { 0 };
    Smc *s64 = smc_new(64u << 20, 1, key, NULL, NULL, NULL);
    Smc *s128 = smc_new(128u << 20, 1, key, NULL, NULL, NULL);
    GByteArray *a = g_byte_array_new(), *b = g_byte_array_new();
    GError *err = NULL;
    smc_ioport_write(s128, SMC_PORT_BASE + 0x10, 3, 4);
    g_assert_true(vmstate_save(SMC_VMSD, s128, b, &err));
    g_assert_true(vmstate_save(SMC_VMSD, s64, a, &err));
    g_assert_false(vmstate_load(SMC_VMSD, s64, b->data, b->len, 1,
                                &err));
    g_assert_nonnull(strstr(err->message, "this machine has 67108864"));
    g_clear_error(&err);
    /* The public table's hook refuses the state as invalid input. */
    XblkError *xerr = NULL;
    g_assert_false(smc_vmstate()->check(s64, s128, 1, &xerr));
    g_assert_cmpint(xblk_error_code(xerr), ==, XBLK_ERROR_INVALID);
    g_assert_nonnull(strstr(xblk_error_message(xerr), "bytes of RAM"));
    xblk_error_free(xerr);
    g_byte_array_set_size(b, 0);
    g_assert_true(vmstate_save(SMC_VMSD, s64, b, &err));
    g_assert_cmpmem(a->data, a->len, b->data, b->len);
    smc_free(s64);
    smc_free(s128);
    g_byte_array_unref(a);
    g_byte_array_unref(b);
}

static void test_ide_layout_mismatch(void)
{
    TestMachine *a = tm_new("la", 0);
    tm_scenario(a);
    GByteArray *s = g_byte_array_new(), *before = g_byte_array_new();
    GByteArray *after = g_byte_array_new();
    GError *err = NULL;
    g_assert_true(vmstate_save(IDE_VMSD, a->ide, s, &err));
    /* A controller with the disk only. */
    IDETest *t = idet_new(1 << 20);
    g_autofree char *p = raw_image("lone.raw", 1 << 20, 3);
    XblkDisk *disk = raw_disk_open(p, "lone", true);
    IDEDriveConfig c = idet_config(IDE_DRIVE_HD, disk, "hd");
    idet_attach(t, 0, &c);
    g_assert_true(vmstate_save(IDE_VMSD, t->c, before, &err));
    g_assert_false(vmstate_load(IDE_VMSD, t->c, s->data, s->len, 1,
                                &err));
    g_assert_nonnull(strstr(err->message, "the state has a DVD drive at "
                            "IDE position 1, this machine no drive"));
    g_clear_error(&err);
    g_assert_true(vmstate_save(IDE_VMSD, t->c, after, &err));
    g_assert_cmpmem(before->data, before->len, after->data, after->len);
    idet_free(t);
    xblk_disk_close(disk);
    g_unlink(p);
    g_byte_array_unref(s);
    g_byte_array_unref(before);
    g_byte_array_unref(after);
    tm_free(a);
}

/* A read failing under rerror=stop holds its request: saving refuses,
 * loading drops the held request. */
static void test_ide_held_request(void)
{
    g_autofree char *path = test_path("held.qcow2");
    XblkDisk *disk = qcow2_image(path, "held", "held-dbg", 1 << 20,
                                 1 << 20, 5, NULL);
    BlockDriverState *dbg = blkdebug_node("held-dbg");
    IDETest *t = idet_new(1 << 20);
    IDEDriveConfig c = idet_config(IDE_DRIVE_HD, disk, "hd");
    c.rerror = IDE_ERROR_ACTION_STOP;
    idet_attach(t, 0, &c);
    GByteArray *clean = g_byte_array_new(), *x = g_byte_array_new();
    GError *err = NULL;
    g_assert_true(vmstate_save(IDE_VMSD, t->c, clean, &err));
    blkdebug_fail(dbg, BLKDBG_OP_READ, EIO, true);
    ata_regs28(t, PRI, 0, 5, 1);
    ata_cmd(t, PRI, 0x20);
    idet_run(t);
    g_assert_cmpuint(t->th->stop_requests, ==, 1);
    g_assert_false(vmstate_save(IDE_VMSD, t->c, x, &err));
    g_assert_nonnull(strstr(err->message, "werror/rerror=stop"));
    g_clear_error(&err);
    /* The public table's pre_save: a failure, not invalid input. */
    XblkError *xerr = NULL;
    g_assert_false(ide_vmstate()->pre_save(t->c, &xerr));
    g_assert_cmpint(xblk_error_code(xerr), ==, XBLK_ERROR_FAILED);
    xblk_error_free(xerr);
    g_assert_true(vmstate_load(IDE_VMSD, t->c, clean->data, clean->len,
                               1, &err));
    g_assert_no_error(err);
    g_byte_array_set_size(x, 0);
    g_assert_true(vmstate_save(IDE_VMSD, t->c, x, &err));
    g_assert_cmpmem(clean->data, clean->len, x->data, x->len);
    ide_resume(t->c);           /* nothing left to retry */
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);
    idet_free(t);
    xblk_disk_close(disk);
    g_byte_array_unref(clean);
    g_byte_array_unref(x);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir_setup_in_memory();
    idet_engine_start();
    g_test_add_func("/vmstate/encoding", test_encoding);
    g_test_add_func("/vmstate/refusals", test_refusals);
    g_test_add_func("/vmstate/old-version", test_old_version);
    g_test_add_func("/vmstate/set-all-or-nothing", test_set_all_or_nothing);
    g_test_add_func("/vmstate/timers-relative", test_timers_relative);
    g_test_add_func("/vmstate/devices/machine", test_machine_sections);
    g_test_add_func("/vmstate/devices/cpu-preempted-slice",
                    test_cpu_preempted_slice);
    g_test_add_func("/vmstate/devices/cpu-fresh-code", test_cpu_fresh_code);
    g_test_add_func("/vmstate/devices/cpu-refusals", test_cpu_refusals);
    g_test_add_func("/vmstate/devices/pic-pit", test_pic_pit_standalone);
    g_test_add_func("/vmstate/devices/smc-ram-mismatch",
                    test_smc_ram_mismatch);
    g_test_add_func("/vmstate/devices/ide-layout", test_ide_layout_mismatch);
    g_test_add_func("/vmstate/devices/ide-held-request",
                    test_ide_held_request);
    int ret = g_test_run();
    test_dir_cleanup();
    return ret;
}
