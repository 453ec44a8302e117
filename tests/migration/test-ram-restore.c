/*
 * test-ram-restore.c - migration/ram-restore.c: a state's RAM decoded
 * into a mapping of its own, then moved onto the guest RAM's address.
 *
 * Covers: the round trip (random pages, zero pages, a whole zero chunk,
 * a short last chunk) with 4 KiB and huge pages: after the commit the
 * RAM is the stream's byte for byte at the same address, the old content
 * is gone, zero pages are not resident, the mapping is still one private
 * read-write anonymous NORESERVE mapping; refusals that change nothing
 * (a stream without RAM or of another RAM size, a damaged chunk, a
 * cancel, a target that is misaligned, read-only, shared or split, a
 * RamSnapshot active) and that a refused commit can be retried; a
 * RamSnapshot begun after a commit captures the new content while the
 * test writes into it; free without commit leaves no mapping behind.
 * Prints the figures: commit at 64 and 128 MiB against memcpy, prepare,
 * freeing the old RAM, the first store to each page afterwards, and
 * ram_snapshot_begin() on the result.
 */
#include "migration/ram-restore.h"
#include "migration/ram-snapshot.h"
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB             (1024ull * 1024)
#define PAGE            XSS_PAGE_SIZE
/* Not a multiple of the chunk size: the last chunk is short. */
#define RT_SIZE         (16 * MIB + 3 * PAGE)
#define OLD_BYTE        0xA5

static uint64_t splitmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* As the machine maps guest RAM (hw/xbox/machine.c). */
static uint8_t *map_ram(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    g_assert(p != MAP_FAILED);
    return p;
}

static bool page_is_zero(const uint8_t *p)
{
    for (size_t i = 0; i < PAGE; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

/*
 * Guest RAM content: one page in four zero, one in eight with a single
 * non-zero byte (last byte), the rest random; chunk 3 (with 256 KiB
 * chunks) all zero; the last page random.
 */
static void fill_mixed(uint8_t *ram, size_t size, uint64_t seed)
{
    uint64_t npages = size / PAGE;
    for (uint64_t pg = 0; pg < npages; pg++) {
        uint8_t *p = ram + pg * PAGE;
        uint64_t kind = splitmix(seed ^ (pg * 0x1000193)) % 8;
        bool zero_chunk = pg * PAGE / XSS_CHUNK_SIZE_DEFAULT == 3;
        if (pg != npages - 1 && (zero_chunk || kind < 2)) {
            memset(p, 0, PAGE);
        } else if (kind == 2) {
            memset(p, 0, PAGE);
            p[PAGE - 1] = 0x80 | pg;
        } else {
            uint64_t *w = (uint64_t *)p;
            for (size_t i = 0; i < PAGE / 8; i++) {
                w[i] = splitmix(seed + pg * 512 + i);
            }
        }
    }
}

static void fill_random(uint8_t *ram, size_t size, uint64_t seed)
{
    uint64_t *w = (uint64_t *)ram;
    for (size_t i = 0; i < size / 8; i++) {
        w[i] = splitmix(seed + i) | 1;  /* no page is all zero */
    }
}

static uint64_t count_zero_pages(const uint8_t *ram, size_t size)
{
    uint64_t n = 0;
    for (size_t off = 0; off < size; off += PAGE) {
        n += page_is_zero(ram + off);
    }
    return n;
}

static GByteArray *make_stream(const uint8_t *src, uint64_t size, int level)
{
    GByteArray *out = g_byte_array_new();
    XssWriterOptions o = { .zstd_level = level };
    XssWriter *w = xss_writer_new_buffer(out, &o);
    GError *err = NULL;
    g_assert_true(xss_writer_begin(w, "test", size, &err));
    g_assert_true(xss_writer_ram_linear(w, src, &err));
    g_assert_true(xss_writer_finish(w, &err));
    g_assert_no_error(err);
    xss_writer_free(w);
    return out;
}

static XssReader *open_stream(const GByteArray *s)
{
    GError *err = NULL;
    XssReader *r = xss_reader_open_buffer(s->data, s->len, &err);
    g_assert_no_error(err);
    return r;
}

/* Bytes of address space of the process (from /proc/self/status). */
static uint64_t vm_size(void)
{
    g_autofree char *st = NULL;
    g_assert_true(g_file_get_contents("/proc/self/status", &st, NULL, NULL));
    const char *p = strstr(st, "\nVmSize:");
    g_assert_nonnull(p);
    return g_ascii_strtoull(p + 8, NULL, 10) * 1024;
}

/* The /proc/self/smaps entry of the mapping containing addr: its range,
 * its permissions and its VmFlags line. */
typedef struct MapInfo {
    uintptr_t start, end;
    char perms[8];
    bool anon;                  /* no file, no name */
    char vmflags[256];
} MapInfo;

static bool find_mapping(const void *addr, MapInfo *mi)
{
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents("/proc/self/smaps", &text, NULL,
                                      NULL));
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    bool in = false;
    for (char **l = lines; *l; l++) {
        unsigned long s, e, off, inode;
        unsigned maj, min;
        char perms[8];
        int name_at = 0;
        if (sscanf(*l, "%lx-%lx %7s %lx %x:%x %lu %n", &s, &e, perms, &off,
                   &maj, &min, &inode, &name_at) >= 7) {
            if (in) {
                return true;    /* no VmFlags line (old kernel) */
            }
            in = s <= (uintptr_t)addr && (uintptr_t)addr < e;
            if (in) {
                *mi = (MapInfo){ .start = s, .end = e };
                memcpy(mi->perms, perms, sizeof(perms));
                mi->anon = !inode && !maj && !min &&
                           (!name_at || !(*l)[name_at]);
            }
        } else if (in && g_str_has_prefix(*l, "VmFlags:")) {
            g_strlcpy(mi->vmflags, *l + 8, sizeof(mi->vmflags));
            return true;
        }
    }
    return in;
}

static bool has_vmflag(const MapInfo *mi, const char *flag)
{
    g_autofree char *copy = g_strdup(mi->vmflags);
    g_auto(GStrv) f = g_strsplit(g_strstrip(copy), " ", -1);
    return g_strv_contains((const char *const *)f, flag);
}

static bool thp_always(void)
{
    g_autofree char *t = NULL;
    return g_file_get_contents("/sys/kernel/mm/transparent_hugepage/enabled",
                               &t, NULL, NULL) && strstr(t, "[always]");
}

/* ---- round trip ---- */

typedef struct Progress {
    uint64_t calls, last, total;
    bool monotonic;
} Progress;

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
    Progress *p = opaque;
    if (done <= p->last) {
        p->monotonic = false;
    }
    p->calls++;
    p->last = done;
    p->total = total;
}

static void test_round_trip(gconstpointer data)
{
    bool huge = GPOINTER_TO_INT(data);
    size_t size = RT_SIZE;
    uint8_t *src = g_malloc(size);
    fill_mixed(src, size, huge ? 7 : 3);
    uint64_t zero = count_zero_pages(src, size);
    g_assert_cmpuint(zero, >, 1000);
    GByteArray *s = make_stream(src, size, 1);

    uint8_t *ram = map_ram(size);
    memset(ram, OLD_BYTE, size);
    MapInfo before;
    g_assert_true(find_mapping(ram, &before));

    XssReader *r = open_stream(s);
    GError *err = NULL;
    Progress pr = { .monotonic = true };
    RamRestoreOptions o = {
        .progress = on_progress, .progress_opaque = &pr, .huge_pages = huge,
    };
    RamRestore *rr = ram_restore_prepare(r, size, &o, &err);
    g_assert_no_error(err);
    g_assert_nonnull(rr);
    xss_reader_free(r);

    RamRestoreStats st;
    ram_restore_get_stats(rr, &st);
    g_assert_cmpuint(st.pages, ==, size / PAGE);
    g_assert_cmpuint(st.zero_pages, ==, zero);
    g_assert_cmpuint(st.chunks, ==, pr.calls);
    g_assert_true(pr.monotonic);
    g_assert_cmpuint(pr.last, ==, size);
    g_assert_cmpuint(pr.total, ==, size);
    g_assert_false(st.committed);
    /* Prepare does not touch the guest RAM. */
    for (size_t i = 0; i < size; i += 997) {
        g_assert_cmpuint(ram[i], ==, OLD_BYTE);
    }

    g_assert_true(ram_restore_commit(rr, ram, &err));
    g_assert_no_error(err);
    ram_restore_get_stats(rr, &st);
    g_assert_true(st.committed);
    g_test_message("round trip %zu KiB (%s): prepare %.1f ms, commit %.0f us "
                   "(check %.0f us, mremap %.0f us)", size >> 10,
                   huge ? "huge pages" : "4 KiB pages", st.decode_ns / 1e6,
                   st.commit_ns / 1e3, st.check_ns / 1e3, st.move_ns / 1e3);

    /* Zero pages were never written: not resident (before anything reads
     * them, which would map the zero page). */
    if (!huge && !thp_always()) {
        size_t n = size / PAGE;
        g_autofree unsigned char *vec = g_malloc(n);
        g_assert_cmpint(mincore(ram, size, vec), ==, 0);
        uint64_t resident = 0;
        for (size_t i = 0; i < n; i++) {
            resident += vec[i] & 1;
        }
        g_assert_cmpuint(resident, ==, n - zero);
    }

    /* Same place, same kind of mapping. */
    MapInfo after;
    g_assert_true(find_mapping(ram, &after));
    g_assert_cmpuint(after.start, <=, (uintptr_t)ram);
    g_assert_cmpuint(after.end, >=, (uintptr_t)ram + size);
    g_assert_cmpstr(after.perms, ==, "rw-p");
    g_assert_true(after.anon);
    if (before.vmflags[0]) {
        g_assert_true(has_vmflag(&before, "nr"));
        g_assert_true(has_vmflag(&after, "nr"));       /* MAP_NORESERVE */
        g_assert_true(has_vmflag(&after, "rd"));
        g_assert_true(has_vmflag(&after, "wr"));
        g_assert_false(has_vmflag(&after, "sh"));
        g_assert_cmpint(has_vmflag(&after, "hg"), ==, huge && st.huge_pages);
    }

    /* The old content is gone, the new one is the stream's exactly. */
    g_assert_cmpmem(ram, size, src, size);
    /* Writable, as before. */
    ram[0] ^= 0xFF;
    ram[size - 1] ^= 0xFF;
    g_assert_cmpuint(ram[0], ==, src[0] ^ 0xFF);

    g_assert_false(ram_restore_commit(rr, ram, &err));
    g_assert_nonnull(strstr(err->message, "committed already"));
    g_clear_error(&err);
    ram_restore_free(rr);
    g_assert_cmpuint(ram[size - 1], ==, src[size - 1] ^ 0xFF);

    munmap(ram, size);
    g_byte_array_unref(s);
    g_free(src);
}

/* ---- refusals at prepare ---- */

static void expect_prepare_refused(const GByteArray *s, uint64_t ram_size,
                                   const RamRestoreOptions *o,
                                   const char *msg)
{
    XssReader *r = open_stream(s);
    uint64_t vm0 = vm_size();
    GError *err = NULL;
    RamRestore *rr = ram_restore_prepare(r, ram_size, o, &err);
    g_assert_null(rr);
    g_assert_nonnull(err);
    if (!strstr(err->message, msg)) {
        g_error("expected \"%s\" in \"%s\"", msg, err->message);
    }
    g_test_message("refused: %s", err->message);
    g_error_free(err);
    /* Nothing left mapped (the image and the park were 2 x RAM size). */
    g_assert_cmpuint(vm_size(), <, vm0 + ram_size / 2);
    xss_reader_free(r);
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n; i-- > 0;) {
        v = v << 8 | p[i];
    }
    return v;
}

/* A payload byte of RAM chunk `index` flipped (the record header and its
 * CRC stay intact, so the reader opens the stream). */
static void damage_chunk(GByteArray *s, uint32_t index)
{
    size_t off = le(s->data + 12, 4);
    while (off + 29 <= s->len) {
        const uint8_t *h = s->data + off;
        uint32_t instance = le(h + 8, 4);
        uint64_t len = le(h + 12, 8);
        size_t payload = off + 29 + h[24];
        if (!memcmp(h, "RAMC", 4) && instance == index) {
            s->data[payload + len / 2] ^= 0x10;
            return;
        }
        off = payload + len;
    }
    g_assert_not_reached();
}

static void cancel_after(void *opaque, uint64_t done, uint64_t total)
{
    if (done >= total / 2) {
        atomic_store((atomic_bool *)opaque, true);
    }
}

static void test_prepare_refused(void)
{
    size_t size = RT_SIZE;
    uint8_t *src = g_malloc(size);
    fill_mixed(src, size, 11);
    GByteArray *s = make_stream(src, size, 1);
    uint8_t *ram = map_ram(size);
    memcpy(ram, src, size);

    /* Another RAM size, either way. */
    expect_prepare_refused(s, size + PAGE, NULL, "bytes of RAM, this machine");
    expect_prepare_refused(s, size - PAGE, NULL, "bytes of RAM, this machine");

    /* A chunk late in the stream damaged: earlier ones were decoded. */
    GByteArray *bad = g_byte_array_new();
    g_byte_array_append(bad, s->data, s->len);
    uint32_t nchunks = (size + XSS_CHUNK_SIZE_DEFAULT - 1) /
                       XSS_CHUNK_SIZE_DEFAULT;
    damage_chunk(bad, nchunks - 2);
    g_autofree char *msg = g_strdup_printf("section 'ram' chunk %u:",
                                           nchunks - 2);
    expect_prepare_refused(bad, size, NULL, msg);
    g_byte_array_unref(bad);

    /* Cancelled half-way. */
    atomic_bool cancel = false;
    RamRestoreOptions o = {
        .progress = cancel_after, .progress_opaque = &cancel,
        .cancel = &cancel,
    };
    expect_prepare_refused(s, size, &o, "cancelled");

    /* No RAM section at all. */
    GByteArray *noram = g_byte_array_new();
    XssWriter *w = xss_writer_new_buffer(noram, NULL);
    GError *err = NULL;
    g_assert_true(xss_writer_begin(w, "test", size, &err));
    g_assert_true(xss_writer_finish(w, &err));
    g_assert_no_error(err);
    xss_writer_free(w);
    expect_prepare_refused(noram, size, NULL, "no RAM section");
    g_byte_array_unref(noram);

    /* The guest RAM never changed. */
    g_assert_cmpmem(ram, size, src, size);
    munmap(ram, size);
    g_byte_array_unref(s);
    g_free(src);
}

/* ---- refusals at commit ---- */

static RamRestore *prepare_ok(const GByteArray *s, uint64_t size, bool huge)
{
    XssReader *r = open_stream(s);
    GError *err = NULL;
    RamRestoreOptions o = { .huge_pages = huge };
    RamRestore *rr = ram_restore_prepare(r, size, &o, &err);
    g_assert_no_error(err);
    xss_reader_free(r);
    return rr;
}

static void expect_commit_refused(RamRestore *rr, void *ram,
                                  const char *msg)
{
    GError *err = NULL;
    g_assert_false(ram_restore_commit(rr, ram, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, msg)) {
        g_error("expected \"%s\" in \"%s\"", msg, err->message);
    }
    g_test_message("refused: %s", err->message);
    g_error_free(err);
}

/* data: check the target by reading /proc/self/maps, not PROCMAP_QUERY */
static void test_commit_refused(gconstpointer data)
{
    bool scan = GPOINTER_TO_INT(data);
    size_t size = RT_SIZE;
    if (scan) {
        g_setenv("XBLK_NO_PROCMAP_QUERY", "1", TRUE);
    }
    uint8_t *src = g_malloc(size);
    fill_mixed(src, size, 5);
    GByteArray *s = make_stream(src, size, 1);
    RamRestore *rr = prepare_ok(s, size, false);
    uint8_t *old = g_malloc(size);
    memset(old, OLD_BYTE, size);

    /* Misaligned. */
    uint8_t *ram = map_ram(size + PAGE);
    memset(ram, OLD_BYTE, size + PAGE);
    expect_commit_refused(rr, ram + 16, "not page aligned");

    /* Split: its last page read-only, then its first. */
    g_assert_cmpint(mprotect(ram + size - PAGE, PAGE, PROT_READ), ==, 0);
    expect_commit_refused(rr, ram, "is not one mapping");
    g_assert_cmpint(mprotect(ram + size - PAGE, PAGE,
                             PROT_READ | PROT_WRITE), ==, 0);
    g_assert_cmpint(mprotect(ram, PAGE, PROT_READ), ==, 0);
    expect_commit_refused(rr, ram, "not a private read-write anonymous");
    g_assert_cmpint(mprotect(ram, PAGE, PROT_READ | PROT_WRITE), ==, 0);
    g_assert_cmpmem(ram, size, old, size);
    munmap(ram, size + PAGE);

    /* Shared. */
    ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    g_assert(ram != MAP_FAILED);
    memset(ram, OLD_BYTE, size);
    expect_commit_refused(rr, ram, "not a private read-write anonymous");
    g_assert_cmpmem(ram, size, old, size);
    munmap(ram, size);

    /* Nothing mapped there (just unmapped). */
    expect_commit_refused(rr, ram, "nothing is mapped");

    /* A capture running over the region (or anywhere). */
    ram = map_ram(size);
    memset(ram, OLD_BYTE, size);
    GError *err = NULL;
    RamSnapshot *snap = ram_snapshot_begin(ram, size, &err);
    g_assert_no_error(err);
    expect_commit_refused(rr, ram, "RAM capture");
    g_assert_cmpmem(ram, size, old, size);
    /* The capture is intact: it still yields the old content. */
    RamSnapshotPage pg;
    uint64_t n = 0;
    while (ram_snapshot_next(snap, &pg)) {
        g_assert_false(pg.zero);
        g_assert_cmpmem(pg.data, PAGE, old, PAGE);
        n++;
    }
    g_assert_cmpuint(n, ==, size / ram_snapshot_page_size(snap));
    ram_snapshot_end(snap, NULL);

    /* Refusals left rr as it was: the commit now succeeds. */
    g_assert_true(ram_restore_commit(rr, ram, &err));
    g_assert_no_error(err);
    g_assert_cmpmem(ram, size, src, size);
    RamRestoreStats st;
    ram_restore_get_stats(rr, &st);
    if (scan) {
        g_assert_true(st.maps_scanned);
        g_unsetenv("XBLK_NO_PROCMAP_QUERY");
    }
    g_test_message("target checked %s", st.maps_scanned ?
                   "by reading /proc/self/maps" : "with PROCMAP_QUERY");
    ram_restore_free(rr);
    munmap(ram, size);
    g_free(old);
    g_byte_array_unref(s);
    g_free(src);
}

/* ---- a capture after a commit ---- */

static void test_snapshot_after_commit(gconstpointer data)
{
    bool huge = GPOINTER_TO_INT(data);
    size_t size = RT_SIZE;
    uint8_t *src = g_malloc(size);
    fill_mixed(src, size, 23);
    GByteArray *s = make_stream(src, size, 1);
    RamRestore *rr = prepare_ok(s, size, huge);
    uint8_t *ram = map_ram(size);
    memset(ram, OLD_BYTE, size);
    GError *err = NULL;
    g_assert_true(ram_restore_commit(rr, ram, &err));
    g_assert_no_error(err);
    ram_restore_free(rr);

    RamSnapshot *snap = ram_snapshot_begin(ram, size, &err);
    g_assert_no_error(err);
    /* Stores after the pause, into stored and into zero pages, some in
     * the same 2 MiB as others: each faults and is saved first. */
    uint8_t *shadow = g_memdup2(src, size);
    uint64_t written = 0;
    for (size_t off = 5; off < size; off += 37 * PAGE + 8) {
        ram[off] = (uint8_t)~src[off];
        shadow[off] = (uint8_t)~src[off];
        written++;
    }
    RamSnapshotPage pg;
    uint64_t n = 0, zero = 0;
    size_t ps = ram_snapshot_page_size(snap);
    while (ram_snapshot_next(snap, &pg)) {
        g_assert_cmpuint(pg.offset, ==, n * ps);
        if (pg.zero) {
            g_assert_true(page_is_zero(src + pg.offset));
            zero++;
        } else {
            g_assert_cmpmem(pg.data, ps, src + pg.offset, ps);
        }
        n++;
    }
    RamSnapshotStats st;
    ram_snapshot_end(snap, &st);
    g_assert_cmpuint(n, ==, size / ps);
    g_assert_cmpuint(zero, ==, count_zero_pages(src, size));
    g_assert_cmpuint(st.copied_by_fault, ==, written);
    g_assert_true(st.complete);
    g_assert_cmpmem(ram, size, shadow, size);
    g_test_message("capture after commit (%s): begin %.1f us, %"
                   G_GUINT64_FORMAT " pages copied by fault",
                   huge ? "huge pages" : "4 KiB pages", st.begin_ns / 1e3,
                   st.copied_by_fault);

    munmap(ram, size);
    g_free(shadow);
    g_byte_array_unref(s);
    g_free(src);
}

/* ---- no leak ---- */

static void test_free_without_commit(void)
{
    size_t size = 32 * MIB;
    uint8_t *src = g_malloc(size);
    fill_mixed(src, size, 99);
    GByteArray *s = make_stream(src, size, 1);
    g_free(src);
    /* Once for the allocator's own mappings to settle. */
    ram_restore_free(prepare_ok(s, size, false));

    for (int huge = 0; huge < 2; huge++) {
        uint64_t vm0 = vm_size();
        RamRestore *rr = prepare_ok(s, size, huge);
        /* image + park */
        g_assert_cmpuint(vm_size(), >=, vm0 + 2 * size);
        ram_restore_free(rr);
        g_assert_cmpuint(vm_size(), <, vm0 + size / 2);
    }
    /* After a commit, free returns the old RAM. */
    uint8_t *ram = map_ram(size);
    memset(ram, OLD_BYTE, size);
    uint64_t vm0 = vm_size();
    RamRestore *rr = prepare_ok(s, size, false);
    GError *err = NULL;
    g_assert_true(ram_restore_commit(rr, ram, &err));
    g_assert_no_error(err);
    ram_restore_free(rr);
    g_assert_cmpuint(vm_size(), <, vm0 + size / 2);
    munmap(ram, size);
    ram_restore_free(NULL);
    g_byte_array_unref(s);
}

/* ---- figures ---- */

static double memcpy_us(uint8_t *dst, const uint8_t *src, size_t size)
{
    double best = 1e12;
    for (int i = 0; i < 3; i++) {
        int64_t t0 = mono_ns();
        memcpy(dst, src, size);
        best = MIN(best, (mono_ns() - t0) / 1e3);
    }
    return best;
}

static void measure(size_t mib, bool huge)
{
    enum { rounds = 5 };
    size_t size = mib * MIB;
    uint8_t *src = g_malloc(size);
    fill_random(src, size, mib * 2 + huge);
    GByteArray *s = make_stream(src, size, 1);
    uint8_t *ram = map_ram(size);
    memset(ram, OLD_BYTE, size);        /* a running guest's RAM: resident */
    double commit[rounds], check[rounds], move[rounds], prep[rounds],
           release[rounds], store[rounds];

    for (int i = 0; i < rounds; i++) {
        RamRestore *rr = prepare_ok(s, size, huge);
        GError *err = NULL;
        int64_t t0 = mono_ns();
        bool ok = ram_restore_commit(rr, ram, &err);
        int64_t t1 = mono_ns();
        g_assert_no_error(err);
        g_assert_true(ok);
        RamRestoreStats st;
        ram_restore_get_stats(rr, &st);
        int64_t t2 = mono_ns();
        ram_restore_free(rr);
        release[i] = (mono_ns() - t2) / 1e6;
        commit[i] = (t1 - t0) / 1e3;
        check[i] = st.check_ns / 1e3;
        move[i] = st.move_ns / 1e3;
        prep[i] = st.decode_ns / 1e6;
        /* The guest's first store to each page afterwards. */
        int64_t t3 = mono_ns();
        for (size_t off = 0; off < size; off += PAGE) {
            ((volatile uint8_t *)ram)[off] = src[off];
        }
        store[i] = (mono_ns() - t3) / 1e3;
        if (i == 0) {
            g_assert_cmpmem(ram, size, src, size);
        }
    }
    GError *err = NULL;
    RamSnapshot *snap = ram_snapshot_begin(ram, size, &err);
    g_assert_no_error(err);
    RamSnapshotStats sst;
    ram_snapshot_end(snap, &sst);

    const char *kind = huge ? " (huge pages)" : "";
    double best = commit[0];
    for (int i = 1; i < rounds; i++) {
        best = MIN(best, commit[i]);
    }
    g_test_message("commit %zu MiB%s: %.0f us", mib, kind, median(commit,
                                                                  rounds));
    g_test_message("  commit %zu MiB%s: best %.0f us; median check %.0f us, "
                   "mremap %.0f us", mib, kind, best, median(check, rounds),
                   median(move, rounds));
    g_test_message("  prepare %zu MiB%s (random, all pages stored): median "
                   "%.1f ms; free of the old RAM %.2f ms; first store to "
                   "each page %.0f us; ram_snapshot_begin afterwards %.0f us",
                   mib, kind, median(prep, rounds), median(release, rounds),
                   median(store, rounds), sst.begin_ns / 1e3);
    if (!huge) {
        g_test_message("memcpy %zu MiB: %.0f us", mib,
                       memcpy_us(ram, src, size));
    }
    munmap(ram, size);
    g_byte_array_unref(s);
    g_free(src);
}

static bool decode_only(void *opaque, const XssChunk *ch, GError **errp)
{
    return true;
}

static void test_figures(void)
{
    measure(64, false);
    measure(64, true);
    measure(128, false);
    measure(128, true);

    /* The check reads /proc/self/maps up to the RAM's line: with 2000
     * mappings below it (a process with many libraries and threads). */
    {
        size_t sz = 64 * MIB;
        uint8_t *src2 = g_malloc0(sz);
        fill_random(src2, PAGE, 1);
        GByteArray *s2 = make_stream(src2, sz, 1);
        uint8_t *ram = map_ram(sz);
        enum { NMAPS = 2000 };
        uint8_t *maps[NMAPS];
        for (int i = 0; i < NMAPS; i++) {
            /* alternating protections: they cannot merge */
            maps[i] = mmap(NULL, PAGE, i % 2 ? PROT_READ : PROT_NONE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            g_assert(maps[i] != MAP_FAILED);
        }
        for (int scan = 0; scan < 2; scan++) {
            double check[3], total[3];
            bool scanned = false;
            if (scan) {
                g_setenv("XBLK_NO_PROCMAP_QUERY", "1", TRUE);
            }
            for (int i = 0; i < 3; i++) {
                RamRestore *rr = prepare_ok(s2, sz, false);
                GError *err = NULL;
                g_assert_true(ram_restore_commit(rr, ram, &err));
                g_assert_no_error(err);
                RamRestoreStats st;
                ram_restore_get_stats(rr, &st);
                check[i] = st.check_ns / 1e3;
                total[i] = st.commit_ns / 1e3;
                scanned = st.maps_scanned;
                ram_restore_free(rr);
            }
            g_unsetenv("XBLK_NO_PROCMAP_QUERY");
            g_test_message("commit 64 MiB with %d more mappings below it: "
                           "%.0f us (check %.0f us, %s)", NMAPS,
                           median(total, 3), median(check, 3), scanned ?
                           "/proc/self/maps read" : "PROCMAP_QUERY");
        }
        for (int i = 0; i < NMAPS; i++) {
            munmap(maps[i], PAGE);
        }
        munmap(ram, sz);
        g_byte_array_unref(s2);
        g_free(src2);
    }

    /* Prepare of a more typical image: a quarter zero pages, compressible
     * (low-entropy) data elsewhere. */
    size_t size = 64 * MIB;
    uint8_t *src = g_malloc(size);
    fill_mixed(src, size, 1);
    for (size_t i = 0; i < size; i++) {
        src[i] &= 0x03;
    }
    GByteArray *s = make_stream(src, size, 3);
    {
        /* The reader alone (decoding, no copy): what prepare adds. */
        double dec[3];
        for (int i = 0; i < 3; i++) {
            XssReader *r = open_stream(s);
            GError *err = NULL;
            int64_t t0 = mono_ns();
            g_assert_true(xss_reader_foreach_chunk(r, decode_only, NULL,
                                                   &err));
            dec[i] = (mono_ns() - t0) / 1e6;
            g_assert_no_error(err);
            xss_reader_free(r);
        }
        g_test_message("decode only 64 MiB (compressible): %.1f ms",
                       median(dec, 3));
    }
    for (int huge = 0; huge < 2; huge++) {
        double prep[3];
        for (int i = 0; i < 3; i++) {
            RamRestore *rr = prepare_ok(s, size, huge);
            RamRestoreStats st;
            ram_restore_get_stats(rr, &st);
            prep[i] = st.decode_ns / 1e6;
            ram_restore_free(rr);
        }
        g_test_message("prepare 64 MiB%s (compressible, %.0f%% zero "
                       "pages, stream %.1f MiB): %.1f ms",
                       huge ? " (huge pages)" : "",
                       100.0 * count_zero_pages(src, size) / (size / PAGE),
                       s->len / (double)MIB, median(prep, 3));
    }
    g_byte_array_unref(s);
    g_free(src);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_assert_cmpint(sysconf(_SC_PAGESIZE), ==, PAGE);
    g_assert_true(ram_snapshot_init(NULL));
    g_test_add_data_func("/ram-restore/round-trip/4k", GINT_TO_POINTER(0),
                         test_round_trip);
    g_test_add_data_func("/ram-restore/round-trip/huge", GINT_TO_POINTER(1),
                         test_round_trip);
    g_test_add_func("/ram-restore/prepare-refused", test_prepare_refused);
    g_test_add_data_func("/ram-restore/commit-refused/query",
                         GINT_TO_POINTER(0), test_commit_refused);
    g_test_add_data_func("/ram-restore/commit-refused/maps-text",
                         GINT_TO_POINTER(1), test_commit_refused);
    g_test_add_data_func("/ram-restore/snapshot-after-commit/4k",
                         GINT_TO_POINTER(0), test_snapshot_after_commit);
    g_test_add_data_func("/ram-restore/snapshot-after-commit/huge",
                         GINT_TO_POINTER(1), test_snapshot_after_commit);
    g_test_add_func("/ram-restore/free-without-commit",
                    test_free_without_commit);
    g_test_add_func("/ram-restore/figures", test_figures);
    return g_test_run();
}
