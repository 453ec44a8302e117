/*
 * test-ram-cow.c - migration/ram-snapshot.c with the real vCPU (Unicorn,
 * through hw/xbox/cpu.c): a guest loop stores into RAM as fast as it can
 * (one random dword per iteration, a 4 KiB rep stosl every 4096) while a
 * snapshot of its RAM streams; between slices the vCPU thread also
 * writes into RAM from the host through the helper, as DMA does.  The
 * streamed image must hash to what RAM hashed to at begin (stopped,
 * hashed - test only - then captured), for several rounds on the same
 * running guest.  Unicorn's stores to write-protected RAM fault into the
 * handler and retry; the guest must keep running meanwhile.
 */
#include "hw/xbox/cpu.h"
#include "migration/ram-snapshot.h"
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <xxhash.h>

#define RAM_SIZE        (64u << 20)
#define GDT_BASE        0x500u
#define CODE_BASE       0x1000u
#define COUNTER         0x8000u         /* iterations, stored by the guest */
#define DMA_AREA        0x10000u        /* host writes go above */
#define SLICE_BLOCKS    500

/*
 * The guest (i386, position independent but for COUNTER):
 *        movl  $0x12345678, %eax
 *        xorl  %esi, %esi
 *        cld
 *   1:   imull $1103515245, %eax, %eax     # LCG
 *        addl  $12345, %eax
 *        movl  %eax, %ebx
 *        shrl  $4, %ebx
 *        andl  $0x03FFFFFC, %ebx           # a dword of the 64 MiB
 *        cmpl  $0x10000, %ebx              # not the code, GDT, counter
 *        jb    1b
 *        movl  %eax, (%ebx)
 *        incl  %esi
 *        movl  %esi, COUNTER
 *        testl $0xFFF, %esi
 *        jnz   1b
 *        movl  %ebx, %edi                  # every 4096: 4 KiB at a
 *        andl  $0x03FF0000, %edi           # 64 KiB boundary
 *        orl   $0x00010000, %edi
 *        movl  $1024, %ecx
 *        rep stosl
 *        jmp   1b
 */
static const uint8_t guest_code[] = {
    0xb8, 0x78, 0x56, 0x34, 0x12, 0x31, 0xf6, 0xfc, 0x69, 0xc0, 0x6d, 0x4e,
    0xc6, 0x41, 0x05, 0x39, 0x30, 0x00, 0x00, 0x89, 0xc3, 0xc1, 0xeb, 0x04,
    0x81, 0xe3, 0xfc, 0xff, 0xff, 0x03, 0x81, 0xfb, 0x00, 0x00, 0x01, 0x00,
    0x72, 0xe2, 0x89, 0x03, 0x46, 0x89, 0x35, 0x00, 0x80, 0x00, 0x00, 0xf7,
    0xc6, 0xff, 0x0f, 0x00, 0x00, 0x75, 0xd1, 0x89, 0xdf, 0x81, 0xe7, 0x00,
    0x00, 0xff, 0x03, 0x81, 0xcf, 0x00, 0x00, 0x01, 0x00, 0xb9, 0x00, 0x04,
    0x00, 0x00, 0xf3, 0xab, 0xeb, 0xba,
};

static const uint64_t flat_gdt[3] = {
    0,
    0x00CF9A000000FFFFull,      /* 0x08: code, base 0, 4 GiB, 32-bit */
    0x00CF92000000FFFFull,      /* 0x10: data, base 0, 4 GiB, writable */
};

typedef struct Rig {
    uint8_t *ram;
    XboxCpu *cpu;
    GThread *thread;
    GMutex lock;
    GCond cond;
    bool pause_req, parked, quit;   /* lock */
    uint64_t slices, host_writes;   /* vCPU thread */
} Rig;

/* The machine's rule: announce, then write (hw/xbox/machine.c). */
static bool rig_ram_write(void *opaque, uint64_t gpa, const void *buf,
                          uint64_t len)
{
    Rig *r = opaque;
    if (gpa > RAM_SIZE || len > RAM_SIZE - gpa) {
        return false;
    }
    ram_snapshot_before_host_write(NULL, r->ram + gpa, len);
    memcpy(r->ram + gpa, buf, len);
    return true;
}

static gpointer vcpu_thread(gpointer opaque)
{
    Rig *r = opaque;
    uint8_t dma[3 * 4096 + 100];
    for (;;) {
        g_mutex_lock(&r->lock);
        while (r->pause_req && !r->quit) {
            r->parked = true;
            g_cond_broadcast(&r->cond);
            g_cond_wait(&r->cond, &r->lock);
        }
        r->parked = false;
        bool quit = r->quit;
        g_mutex_unlock(&r->lock);
        if (quit) {
            return NULL;
        }
        CpuExit e = cpu_run(r->cpu, SLICE_BLOCKS);
        g_assert_cmpint(e, ==, CPU_EXIT_BUDGET);
        r->slices++;
        if (r->slices % 2 == 0) {
            /* A DMA completion: a few pages, unaligned, from the host. */
            memset(dma, (int)r->slices, sizeof(dma));
            uint64_t h = (r->slices + 1) * 0x9E3779B97F4A7C15ull;
            uint64_t gpa = DMA_AREA + ((h >> 20) % (RAM_SIZE - DMA_AREA -
                                                    sizeof(dma)));
            g_assert_true(rig_ram_write(r, gpa, dma, sizeof(dma)));
            r->host_writes++;
        }
    }
}

static void rig_pause(Rig *r)
{
    g_mutex_lock(&r->lock);
    r->pause_req = true;
    while (!r->parked) {
        g_cond_wait(&r->cond, &r->lock);
    }
    g_mutex_unlock(&r->lock);
}

static void rig_resume(Rig *r)
{
    g_mutex_lock(&r->lock);
    r->pause_req = false;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
}

static uint32_t guest_counter(Rig *r)
{
    uint32_t v;
    memcpy(&v, r->ram + COUNTER, 4);
    return v;
}

static Rig *rig_new(void)
{
    Rig *r = g_new0(Rig, 1);
    GError *err = NULL;
    r->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    g_assert(r->ram != MAP_FAILED);
    /* Something other than zeros in every page the guest can write. */
    for (uint64_t off = 0x10000; off < RAM_SIZE; off += 8) {
        uint64_t v = off * 0x9E3779B97F4A7C15ull;
        memcpy(r->ram + off, &v, 8);
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(flat_gdt); i++) {
        uint64_t le = GUINT64_TO_LE(flat_gdt[i]);
        memcpy(r->ram + GDT_BASE + 8 * i, &le, 8);
    }
    memcpy(r->ram + CODE_BASE, guest_code, sizeof(guest_code));
    CpuConfig cfg = { r->ram, RAM_SIZE, rig_ram_write, r };
    r->cpu = cpu_new(&cfg, &err);
    g_assert_no_error(err);
    g_assert_true(cpu_set_boot_state(r->cpu, GDT_BASE, 23, 0x08, 0x10,
                                     CODE_BASE, 0x9F000, &err));
    g_assert_no_error(err);
    g_mutex_init(&r->lock);
    g_cond_init(&r->cond);
    r->pause_req = true;
    r->thread = g_thread_new("vcpu", vcpu_thread, r);
    return r;
}

static void rig_free(Rig *r)
{
    g_mutex_lock(&r->lock);
    r->quit = true;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
    g_thread_join(r->thread);
    cpu_free(r->cpu);
    munmap(r->ram, RAM_SIZE);
    g_mutex_clear(&r->lock);
    g_cond_clear(&r->cond);
    g_free(r);
}

static XXH128_hash_t hash_ram(const uint8_t *ram)
{
    return XXH3_128bits(ram, RAM_SIZE);
}

static void test_guest_writes_while_streaming(void)
{
    Rig *r = rig_new();
    static const uint8_t zero_page[4096];
    GError *err = NULL;
    g_assert_true(ram_snapshot_init(&err));
    uint64_t host_copies = 0;
    rig_resume(r);
    g_usleep(20000);
    for (int round = 0; round < 4; round++) {
        rig_pause(r);
        /* Test only: what RAM holds at the pause. */
        XXH128_hash_t at_begin = hash_ram(r->ram);
        uint32_t count_begin = guest_counter(r);
        RamSnapshot *s = ram_snapshot_begin(r->ram, RAM_SIZE, &err);
        g_assert_no_error(err);
        g_assert_cmpuint(ram_snapshot_page_size(s), ==, 4096);
        rig_resume(r);

        XXH3_state_t *st = XXH3_createState();
        XXH3_128bits_reset(st);
        RamSnapshotPage pg;
        uint64_t pages = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (ram_snapshot_next(s, &pg)) {
            g_assert_cmpuint(pg.offset, ==, pages * 4096);
            XXH3_128bits_update(st, pg.zero ? zero_page : pg.data, 4096);
            pages++;
            if (pages % 256 == 0) {
                g_usleep(500);  /* a compressor's pace: the guest gets ahead */
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        XXH128_hash_t streamed = XXH3_128bits_digest(st);
        XXH3_freeState(st);
        g_assert_cmpuint(pages, ==, RAM_SIZE / 4096);
        uint32_t count_end = guest_counter(r);
        RamSnapshotStats stats;
        ram_snapshot_end(s, &stats);

        g_assert_true(XXH128_isEqual(at_begin, streamed));
        g_assert_true(stats.complete);
        /* The guest ran, and its stores hit protected pages. */
        g_assert_cmpuint(count_end, !=, count_begin);
        g_assert_cmpuint(stats.copied_by_fault, >, 0);
        host_copies += stats.copied_by_host;
        double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) /
                      1e9;
        g_test_message("round %d: guest iterations %u during %.0f ms of "
                       "streaming; copied by fault %" G_GUINT64_FORMAT
                       ", by host %" G_GUINT64_FORMAT ", reader races %"
                       G_GUINT64_FORMAT ", peak copy %.1f MiB, begin %.1f us",
                       round, count_end - count_begin, secs * 1e3,
                       stats.copied_by_fault, stats.copied_by_host,
                       stats.read_races,
                       stats.peak_copy_bytes / 1048576.0,
                       stats.begin_ns / 1e3);
        g_usleep(10000);
    }
    rig_pause(r);
    g_test_message("%" G_GUINT64_FORMAT " slices, %" G_GUINT64_FORMAT
                   " host writes", r->slices, r->host_writes);
    g_assert_cmpuint(host_copies, >, 0);
    rig_free(r);
}

/* Host writes alone while parked (as the loader does), then the image. */
static void test_host_writes_paused(void)
{
    Rig *r = rig_new();
    GError *err = NULL;
    uint8_t *before = g_memdup2(r->ram, RAM_SIZE);
    RamSnapshot *s = ram_snapshot_begin(r->ram, RAM_SIZE, &err);
    g_assert_no_error(err);
    uint8_t junk[10000];
    memset(junk, 0xEE, sizeof(junk));
    uint64_t writes = 0;
    for (uint64_t gpa = 0x20000; gpa < RAM_SIZE; gpa += 0x100000) {
        g_assert_true(rig_ram_write(r, gpa + 123, junk, sizeof(junk)));
        writes++;
    }
    RamSnapshotPage pg;
    while (ram_snapshot_next(s, &pg)) {
        const uint8_t *want = before + pg.offset;
        if (pg.zero) {
            for (int i = 0; i < 4096; i++) {
                g_assert_cmpuint(want[i], ==, 0);
            }
        } else {
            g_assert_true(memcmp(pg.data, want, 4096) == 0);
        }
    }
    RamSnapshotStats stats;
    ram_snapshot_end(s, &stats);
    /* [123, 10123) of each MiB touches its first three pages. */
    g_assert_cmpuint(stats.copied_by_host, ==, writes * 3);
    g_assert_cmpuint(stats.copied_by_fault, ==, 0);
    g_free(before);
    rig_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ram-cow/guest-writes-while-streaming",
                    test_guest_writes_while_streaming);
    g_test_add_func("/ram-cow/host-writes-paused", test_host_writes_paused);
    return g_test_run();
}
