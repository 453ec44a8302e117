/*
 * test-loader.c - hw/xbox/loader.c: flat binaries, ELF32 executables
 * (segments at their physical addresses, .bss zeroed), the reset GDT and
 * registers, and damaged files: every broken header field gets a clear
 * error, and thousands of randomly damaged ELFs either load within RAM or
 * are refused, never crash (run under ASan by make check-asan).
 */
#include "guest-path.h"
#include "hw/xbox/loader.h"
#include <elf.h>
#include <string.h>
#include <sys/mman.h>

#define RAM_SIZE (64u << 20)

typedef struct Ram {
    uint8_t *mem;
    unsigned writes;
} Ram;

static bool ram_write(void *opaque, uint64_t gpa, const void *buf,
                      uint64_t len)
{
    Ram *r = opaque;
    g_assert(gpa <= RAM_SIZE && len <= RAM_SIZE - gpa);
    memcpy(r->mem + gpa, buf, len);
    r->writes++;
    return true;
}

static Ram *ram_new(void)
{
    Ram *r = g_new0(Ram, 1);
    r->mem = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(r->mem != MAP_FAILED);
    return r;
}

static void ram_free(Ram *r)
{
    munmap(r->mem, RAM_SIZE);
    g_free(r);
}

static GBytes *read_guest(const char *name)
{
    g_autofree char *path = test_guest_path(name);
    char *data;
    gsize len;
    g_assert(g_file_get_contents(path, &data, &len, NULL));
    return g_bytes_new_take(data, len);
}

static void test_flat(void)
{
    g_autoptr(GBytes) bin = read_guest("exc.bin");
    GError *err = NULL;
    gsize len;
    const uint8_t *data = g_bytes_get_data(bin, &len);
    g_autoptr(LoaderImage) img = loader_parse(data, len, RAM_SIZE, &err);
    g_assert_no_error(err);
    g_assert_false(loader_is_elf(img));
    g_assert_cmphex(loader_entry(img), ==, LOADER_FLAT_BASE);
    Ram *r = ram_new();
    memset(r->mem + LOADER_FLAT_BASE + len, 0xEE, 16);
    g_assert_true(loader_install(img, ram_write, r, &err));
    g_assert_cmpmem(r->mem + LOADER_FLAT_BASE, len, data, len);
    g_assert_cmphex(r->mem[LOADER_FLAT_BASE + len], ==, 0xEE);
    ram_free(r);
}

static void test_elf(void)
{
    g_autoptr(GBytes) elf = read_guest("exc.elf");
    g_autoptr(GBytes) bin = read_guest("exc.bin");
    GError *err = NULL;
    gsize len, blen;
    const uint8_t *data = g_bytes_get_data(elf, &len);
    const uint8_t *flat = g_bytes_get_data(bin, &blen);
    g_autoptr(LoaderImage) img = loader_parse(data, len, RAM_SIZE, &err);
    g_assert_no_error(err);
    g_assert_true(loader_is_elf(img));
    g_assert_cmphex(loader_entry(img), ==, 0x100000);
    Ram *r = ram_new();
    memset(r->mem, 0xEE, RAM_SIZE);
    g_assert_true(loader_install(img, ram_write, r, &err));
    /* The segments hold what objcopy put in the flat binary, and every
     * segment's tail beyond its file bytes (.bss) is zero. */
    bool saw_bss = false;
    for (unsigned i = 0; i < loader_segment_count(img); i++) {
        uint32_t pa, fs, ms;
        loader_segment(img, i, &pa, &fs, &ms);
        if (pa >= 0x100000 && pa - 0x100000 + fs <= blen) {
            g_assert_cmpmem(r->mem + pa, fs, flat + (pa - 0x100000), fs);
        }
        for (uint32_t o = fs; o < ms; o++) {
            g_assert_cmphex(r->mem[pa + o], ==, 0);
            saw_bss = true;
        }
    }
    g_assert_true(saw_bss);
    /* The reset GDT. */
    static const uint8_t gdt[24] = {
        0, 0, 0, 0, 0, 0, 0, 0,
        0xFF, 0xFF, 0, 0, 0, 0x9A, 0xCF, 0,
        0xFF, 0xFF, 0, 0, 0, 0x92, 0xCF, 0,
    };
    g_assert_cmpmem(r->mem + LOADER_GDT_BASE, 24, gdt, 24);
    ram_free(r);
}

static void test_boot_registers(void)
{
    GError *err = NULL;
    Ram *r = ram_new();
    CpuConfig cfg = { r->mem, RAM_SIZE, ram_write, r };
    XboxCpu *cpu = cpu_new(&cfg, &err);
    g_assert_no_error(err);
    g_autofree char *path = test_guest_path("loop.elf");
    g_autoptr(LoaderImage) img = loader_open(path, RAM_SIZE, &err);
    g_assert_no_error(err);
    g_assert_true(loader_boot(img, cpu, ram_write, r, &err));
    CpuRegs regs;
    cpu_get_regs(cpu, &regs);
    g_assert_cmphex(regs.cs, ==, 0x08);
    g_assert_cmphex(regs.ds, ==, 0x10);
    g_assert_cmphex(regs.es, ==, 0x10);
    g_assert_cmphex(regs.ss, ==, 0x10);
    g_assert_cmphex(regs.fs, ==, 0x10);
    g_assert_cmphex(regs.gs, ==, 0x10);
    g_assert_cmphex(regs.eip, ==, 0x100000);
    g_assert_cmphex(regs.esp, ==, 0x9F000);
    g_assert_cmphex(regs.eflags, ==, 0x2);
    g_assert_cmphex(regs.eax | regs.ebx | regs.ecx | regs.edx | regs.esi |
                    regs.edi | regs.ebp, ==, 0);
    g_assert_cmphex(regs.gdt_base, ==, 0x500);
    g_assert_cmphex(regs.gdt_limit, ==, 23);
    g_assert_cmphex(regs.cr0 & 1, ==, 1);
    /* It runs: one block later EAX is 1. */
    g_assert_cmpint(cpu_run(cpu, 1), ==, CPU_EXIT_BUDGET);
    cpu_get_regs(cpu, &regs);
    g_assert_cmpuint(regs.eax, ==, 1);
    cpu_free(cpu);
    ram_free(r);
}

/* ---- damaged files ---- */

/* A minimal valid ELF: header, one PT_LOAD of 16 bytes at 0x200000. */
typedef struct MiniElf {
    Elf32_Ehdr eh;
    Elf32_Phdr ph[2];
    uint8_t code[16];
} __attribute__((packed)) MiniElf;

static MiniElf mini_elf(void)
{
    MiniElf e;
    memset(&e, 0, sizeof(e));
    memcpy(e.eh.e_ident, ELFMAG, SELFMAG);
    e.eh.e_ident[EI_CLASS] = ELFCLASS32;
    e.eh.e_ident[EI_DATA] = ELFDATA2LSB;
    e.eh.e_ident[EI_VERSION] = EV_CURRENT;
    e.eh.e_type = ET_EXEC;
    e.eh.e_machine = EM_386;
    e.eh.e_version = EV_CURRENT;
    e.eh.e_entry = 0x200000;
    e.eh.e_phoff = offsetof(MiniElf, ph);
    e.eh.e_ehsize = sizeof(Elf32_Ehdr);
    e.eh.e_phentsize = sizeof(Elf32_Phdr);
    e.eh.e_phnum = 1;
    e.ph[0].p_type = PT_LOAD;
    e.ph[0].p_offset = offsetof(MiniElf, code);
    e.ph[0].p_paddr = 0x200000;
    e.ph[0].p_vaddr = 0x200000;
    e.ph[0].p_filesz = 16;
    e.ph[0].p_memsz = 32;
    e.ph[0].p_flags = PF_R | PF_X;
    memset(e.code, 0x90, sizeof(e.code));
    return e;
}

static void expect_error(const void *data, size_t len, const char *what)
{
    GError *err = NULL;
    LoaderImage *img = loader_parse(data, len, RAM_SIZE, &err);
    if (img) {
        g_error("loaded although %s was expected", what);
    }
    g_assert_nonnull(err);
    if (!strstr(err->message, what)) {
        g_error("error '%s' does not mention '%s'", err->message, what);
    }
    g_error_free(err);
}

static void test_damaged(void)
{
    MiniElf e = mini_elf(), d;
    GError *err = NULL;
    g_autoptr(LoaderImage) ok = loader_parse(&e, sizeof(e), RAM_SIZE, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(loader_segment_count(ok), ==, 1);

    expect_error(&e, 20, "truncated ELF header");
#define DAMAGE(stmt, what) \
    do { d = e; stmt; expect_error(&d, sizeof(d), what); } while (0)
    DAMAGE(d.eh.e_ident[EI_CLASS] = ELFCLASS64, "only 32-bit ELF");
    DAMAGE(d.eh.e_ident[EI_DATA] = ELFDATA2MSB, "little-endian");
    DAMAGE(d.eh.e_ident[EI_VERSION] = 0, "version");
    DAMAGE(d.eh.e_type = ET_DYN, "only executables");
    DAMAGE(d.eh.e_machine = EM_X86_64, "only i386");
    DAMAGE(d.eh.e_phnum = 0, "no program headers");
    DAMAGE(d.eh.e_phentsize = 20, "no program headers");
    DAMAGE(d.eh.e_phoff = sizeof(d) - 8, "program headers");
    DAMAGE(d.eh.e_phoff = 0xFFFFFFF0u, "beyond the end of the file");
    DAMAGE(d.eh.e_phnum = 0xFFFF, "beyond the end of the file");
    DAMAGE(d.ph[0].p_offset = sizeof(d) - 4, "beyond the end of the file");
    DAMAGE(d.ph[0].p_offset = 0xFFFFFFFFu, "beyond the end of the file");
    DAMAGE(d.ph[0].p_filesz = 0xFFFFFFFFu, "exceeds memory size");
    DAMAGE(d.ph[0].p_filesz = 64, "exceeds memory size");
    DAMAGE(d.ph[0].p_paddr = 0x500, "does not fit in RAM");
    DAMAGE(d.ph[0].p_paddr = RAM_SIZE - 16, "does not fit in RAM");
    DAMAGE(d.ph[0].p_paddr = 0xFFFFFFF0u, "does not fit in RAM");
    DAMAGE(d.ph[0].p_memsz = 0xFFFFFFFFu, "does not fit in RAM");
    DAMAGE(d.ph[0].p_type = PT_NOTE, "no loadable segment");
    DAMAGE(d.ph[0].p_type = PT_INTERP, "dynamically linked");
    DAMAGE(d.eh.e_entry = 0x100000, "entry point");
    DAMAGE((d.eh.e_phnum = 2, d.ph[1] = d.ph[0], d.ph[1].p_paddr += 8),
           "overlaps");
#undef DAMAGE
    /* A second segment elsewhere is fine; memsz 0 is skipped. */
    d = e;
    d.eh.e_phnum = 2;
    d.ph[1] = d.ph[0];
    d.ph[1].p_paddr = 0x300000;
    g_autoptr(LoaderImage) two = loader_parse(&d, sizeof(d), RAM_SIZE, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(loader_segment_count(two), ==, 2);
    d.ph[1].p_memsz = 0;
    d.ph[1].p_filesz = 0;
    g_autoptr(LoaderImage) one = loader_parse(&d, sizeof(d), RAM_SIZE, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(loader_segment_count(one), ==, 1);
}

static void test_flat_errors(void)
{
    expect_error("", 0, "empty");
    size_t big = RAM_SIZE - LOADER_FLAT_BASE + 1;
    uint8_t *buf = g_malloc0(big);
    expect_error(buf, big, "does not fit in RAM");
    /* 128 MiB of RAM takes it. */
    GError *err = NULL;
    g_autoptr(LoaderImage) img = loader_parse(buf, big, 128u << 20, &err);
    g_assert_no_error(err);
    g_free(buf);
    /* "\x7fELF" followed by garbage is an ELF, and damaged. */
    expect_error("\x7f" "ELF", 4, "truncated ELF header");
}

static void test_open_errors(void)
{
    GError *err = NULL;
    g_assert_null(loader_open("/nonexistent/prog.elf", RAM_SIZE, &err));
    g_assert_nonnull(strstr(err->message, "/nonexistent/prog.elf"));
    g_clear_error(&err);
    g_autofree char *dir = g_dir_make_tmp("xblk-loader-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "bad.elf", NULL);
    MiniElf e = mini_elf();
    e.eh.e_machine = EM_ARM;
    g_assert(g_file_set_contents(path, (char *)&e, sizeof(e), NULL));
    g_assert_null(loader_open(path, RAM_SIZE, &err));
    g_assert_nonnull(strstr(err->message, path));
    g_assert_nonnull(strstr(err->message, "only i386"));
    g_clear_error(&err);
    unlink(path);
    rmdir(dir);
}

/* Random damage to a real ELF: loads inside RAM or a clean error. */
static void test_fuzz(void)
{
    g_autoptr(GBytes) elf = read_guest("frames.elf");
    gsize len;
    const uint8_t *orig = g_bytes_get_data(elf, &len);
    GRand *rnd = g_rand_new_with_seed(1234);
    Ram *r = ram_new();
    unsigned loaded = 0, refused = 0;
    size_t hdr_end = MIN(len, 0x200);
    for (int round = 0; round < 3000; round++) {
        g_autofree uint8_t *buf = g_memdup2(orig, len);
        size_t n = len;
        int flips = g_rand_int_range(rnd, 1, 8);
        for (int i = 0; i < flips; i++) {
            /* Mostly the headers, where the loader looks. */
            size_t at = g_rand_boolean(rnd) ? g_rand_int_range(rnd, 0, hdr_end)
                                            : g_rand_int_range(rnd, 0, len);
            buf[at] = g_rand_int(rnd);
        }
        if (g_rand_int_range(rnd, 0, 10) == 0) {
            n = g_rand_int_range(rnd, 0, len);      /* truncated */
        }
        GError *err = NULL;
        LoaderImage *img = loader_parse(buf, n, RAM_SIZE, &err);
        if (img) {
            g_assert_true(loader_install(img, ram_write, r, &err));
            loader_image_free(img);
            loaded++;
        } else {
            g_assert_nonnull(err);
            g_error_free(err);
            refused++;
        }
    }
    g_test_message("fuzz: %u loaded, %u refused", loaded, refused);
    g_assert_cmpuint(refused, >, 0);
    g_rand_free(rnd);
    ram_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/loader/flat", test_flat);
    g_test_add_func("/loader/elf", test_elf);
    g_test_add_func("/loader/boot-registers", test_boot_registers);
    g_test_add_func("/loader/damaged", test_damaged);
    g_test_add_func("/loader/flat-errors", test_flat_errors);
    g_test_add_func("/loader/open-errors", test_open_errors);
    g_test_add_func("/loader/fuzz", test_fuzz);
    return g_test_run();
}
