/*
 * ram-restore.c - guest RAM loaded beside the guest, then swapped in by
 * moving page tables; see ram-restore.h.
 *
 * Owns, per RamRestore, two address ranges, both 2 MiB aligned, both
 * MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE:
 *
 *   image   ram_size bytes, read-write: the stream's RAM.  Only stored
 *           (present) pages are written; a zero page is never touched, so
 *           it stays unpopulated and reads as zeros.
 *   park    ram_size + 2 MiB bytes, PROT_NONE (address space, no
 *           memory): commit moves the old guest RAM into it, at the same
 *           offset modulo 2 MiB as the guest RAM has, so that the move
 *           can take whole page tables.
 *
 * Commit, in the pause, with the target checked first (one private
 * read-write anonymous mapping covering [ram, ram + size), no capture
 * active):
 *
 *   1. mremap(ram -> park spot, MREMAP_FIXED | MREMAP_DONTUNMAP): the old
 *      pages move to the park; the mapping at ram stays, now empty.  So
 *      ram is never a hole another thread's mmap() could land in.
 *   2. mremap(image -> ram, MREMAP_FIXED): replaces the empty mapping at
 *      ram atomically (under the kernel's mmap lock) with the image.
 *
 * Neither step copies or frees a page: both move page-table entries, or
 * whole page-table pages where source and destination are 2 MiB aligned
 * alike.  A single mremap(image -> ram, MREMAP_FIXED) would also work,
 * but it unmaps the old RAM in the call, and freeing 16 Ki resident
 * pages was 3-6 ms of the pause here (64 MiB); step 1 leaves that to
 * ram_restore_free().  If step 2 fails, step 1 is undone (spot -> ram,
 * DONTUNMAP again, so the park stays whole) and ram is as before (should
 * the kernel have unmapped the empty mapping at ram before failing, ram
 * is a hole for an instant; nothing else maps there in practice); if
 * even the undo fails, guest RAM is gone and we abort.  If step 1 fails,
 * nothing moved, but the kernel may have unmapped the park spot already:
 * the spot is then never unmapped by us (it may be someone else's by
 * then), only the park around it; ram_size bytes of address space may
 * leak, no memory.
 *
 * Invariants: image is NULL once committed (the range is the guest RAM
 * now); park, unless spot_lost is set, is wholly ours (PROT_NONE
 * reservation, the parked old RAM, or an empty mapping left by
 * DONTUNMAP), so free unmaps it in one call.  After a commit the guest
 * RAM has the image's flags: PROT_READ | PROT_WRITE, private anonymous,
 * NORESERVE (plus VM_HUGEPAGE with opts->huge_pages).  Between prepare
 * and free, rr also holds one file descriptor (/proc/self/maps, for the
 * target check).
 *
 * Figures (this machine, 2 vCPUs, noisy; test-ram-restore prints them):
 * commit 64 MiB 50-75 us (the check 2-5 us of it), 128 MiB 70-100 us,
 * against a memcpy of 11-15 ms (64 MiB) and 15-18 ms (128 MiB).  The
 * target check by reading /proc/self/maps (kernels before 6.11) costs
 * ~1 us per mapping listed before guest RAM: 2 ms with 2000.  Freeing
 * the old RAM afterwards: 2.5-4.5 ms (64 MiB) and 4.5-7.5 ms (128 MiB)
 * of 4 KiB pages, 0.3-0.6 ms of huge pages.  Prepare at 64 MiB: 55-90 ms
 * of random pages (128 MiB: 120-180 ms), 85-125 ms of compressible ones,
 * of which the reader's decoding alone is 67-100 ms.  Filling fresh 4 KiB pages faults once a
 * page (~37 ms for 64 MiB alone); MADV_POPULATE_WRITE per run of stored
 * pages first roughly halves that, so prepare does it (Linux 5.14;
 * skipped if refused).
 *
 * Callers: the save-state load (hw/xbox/ via migration/), tests.
 */
#include "migration/ram-restore.h"
#include "migration/ram-snapshot.h"
#include "util/error.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP        4       /* Linux 5.7 */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE     23      /* Linux 5.14 */
#endif

#define HUGE_SIZE               (2u * 1024 * 1024)

struct RamRestore {
    uint64_t size;
    size_t host_page;
    uint8_t *image;             /* size bytes; NULL once committed */
    uint8_t *park;              /* park_size bytes, or NULL */
    size_t park_size;
    uint8_t *spot;              /* where the old RAM went (in park) */
    bool spot_lost;             /* a failed step 1: spot may not be ours */
    bool broken;                /* a move failed: only free is left */
    int maps_fd;                /* /proc/self/maps for PROCMAP_QUERY, or -1 */
    RamRestoreStats stats;
};

typedef struct Fill {
    RamRestore *rr;
    const RamRestoreOptions *opts;
    uint32_t next_index;
    uint64_t next_gpa;
    bool populate;
} Fill;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline bool bit_set(const uint8_t *bm, uint32_t i)
{
    return bm[i / 8] & (1u << (i % 8));
}

static bool overlaps(const uint8_t *a, uint64_t alen, const uint8_t *b,
                     uint64_t blen)
{
    return b && (uintptr_t)a < (uintptr_t)b + blen &&
           (uintptr_t)b < (uintptr_t)a + alen;
}

/* An anonymous private NORESERVE mapping of len bytes (a multiple of the
 * host page size) starting on a 2 MiB boundary. */
static uint8_t *map_aligned(size_t len, int prot, const char *what,
                            GError **errp)
{
    size_t total = len + HUGE_SIZE;
    uint8_t *p = mmap(NULL, total, prot,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot map %zu MiB for %s",
                         len >> 20, what);
        return NULL;
    }
    uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE_SIZE - 1) &
                             ~(uintptr_t)(HUGE_SIZE - 1));
    if (a > p) {
        munmap(p, a - p);
    }
    if (a + len < p + total) {
        munmap(a + len, p + total - (a + len));
    }
    return a;
}

static bool fill_chunk(void *opaque, const XssChunk *ch, GError **errp)
{
    Fill *f = opaque;
    RamRestore *rr = f->rr;
    const RamRestoreOptions *o = f->opts;

    if (o && o->cancel && atomic_load(o->cancel)) {
        error_setg(errp, "loading RAM: cancelled");
        return false;
    }
    /* f->next_gpa <= rr->size holds, so the subtraction cannot wrap. */
    if (ch->index != f->next_index || ch->gpa != f->next_gpa ||
        ch->pages == 0 || ch->len != (uint64_t)ch->pages * XSS_PAGE_SIZE ||
        ch->len > rr->size - ch->gpa) {
        error_setg(errp, "section 'ram' chunk %u: covers %zu bytes at 0x%"
                   PRIx64 ", expected chunk %u at 0x%" PRIx64 " within %"
                   PRIu64 " bytes of RAM", ch->index, ch->len, ch->gpa,
                   f->next_index, f->next_gpa, rr->size);
        return false;
    }
    for (uint32_t i = 0; i < ch->pages;) {
        if (!bit_set(ch->present, i)) {
            rr->stats.zero_pages++;
            i++;
            continue;
        }
        uint32_t j = i + 1;
        while (j < ch->pages && bit_set(ch->present, j)) {
            j++;
        }
        uint8_t *dst = rr->image + ch->gpa + (size_t)i * XSS_PAGE_SIZE;
        size_t n = (size_t)(j - i) * XSS_PAGE_SIZE;
        /* One call populates the run instead of a fault per page. */
        if (f->populate && madvise(dst, n, MADV_POPULATE_WRITE) != 0) {
            f->populate = false;
        }
        memcpy(dst, ch->data + (size_t)i * XSS_PAGE_SIZE, n);
        i = j;
    }
    rr->stats.pages += ch->pages;
    rr->stats.chunks++;
    f->next_index++;
    f->next_gpa += ch->len;
    if (o && o->progress) {
        o->progress(o->progress_opaque, f->next_gpa, rr->size);
    }
    return true;
}

/*
 * The target check.  ram must lie in one mapping that is private,
 * read-write and anonymous (no file behind it): what step 1 moves as a
 * whole.  Linux 6.17 on moves a range over several mappings too, but one
 * by one, without undoing the first ones if a later one fails; older
 * kernels refuse it.
 *
 * Linux 6.11 answers "which mapping holds this address" directly: the
 * PROCMAP_QUERY ioctl on /proc/self/maps (a few microseconds; the file is
 * opened at prepare).  Before that, the text of /proc/self/maps is read
 * up to the line needed, ~1 us per mapping below guest RAM (guest RAM,
 * mapped after the libraries, usually comes before them).
 * XBLK_NO_PROCMAP_QUERY in the environment (read at prepare) forces the
 * text scan, for tests.
 */

/* PROCMAP_QUERY's argument as the kernel's UAPI (linux/fs.h, 6.11) lays
 * it out: the C library's headers may predate it. */
struct rr_procmap_query {
    uint64_t size;
    uint64_t query_flags;
    uint64_t query_addr;
    uint64_t vma_start, vma_end;
    uint64_t vma_flags;
    uint64_t vma_page_size;
    uint64_t vma_offset;
    uint64_t inode;
    uint32_t dev_major, dev_minor;
    uint32_t vma_name_size, build_id_size;
    uint64_t vma_name_addr, build_id_addr;
};
_Static_assert(sizeof(struct rr_procmap_query) == 104, "procmap_query");
#define RR_PROCMAP_QUERY        _IOWR('f', 17, struct rr_procmap_query)
#define RR_VMA_READABLE         0x01
#define RR_VMA_WRITABLE         0x02
#define RR_VMA_EXECUTABLE       0x04
#define RR_VMA_SHARED           0x08

typedef struct MapEntry {
    uintptr_t start, end;
    char perms[5];              /* as in /proc/self/maps: "rw-p" */
    uint64_t inode;
    unsigned dev_major, dev_minor;
} MapEntry;

static bool judge_target(const MapEntry *m, const uint8_t *ram,
                         uint64_t size, GError **errp)
{
    if (strcmp(m->perms, "rw-p") || m->inode || m->dev_major ||
        m->dev_minor) {
        error_setg(errp, "guest RAM at %p is not a private read-write "
                   "anonymous mapping (%s%s)", ram, m->perms,
                   m->inode ? ", a file" : "");
        return false;
    }
    if ((uintptr_t)ram + size > m->end) {
        error_setg(errp, "guest RAM at %p is not one mapping (it ends at "
                   "0x%" PRIxPTR ", before %p)", ram, m->end,
                   (void *)(ram + size));
        return false;
    }
    return true;
}

/* 1 with *m filled, 0 if nothing is mapped at ram, -1 if the kernel
 * does not know the query. */
static int query_mapping(int fd, const uint8_t *ram, MapEntry *m)
{
    struct rr_procmap_query q = {
        .size = sizeof(q), .query_addr = (uintptr_t)ram,
    };
    if (ioctl(fd, RR_PROCMAP_QUERY, &q) != 0) {
        return errno == ENOENT ? 0 : -1;
    }
    *m = (MapEntry){
        .start = q.vma_start, .end = q.vma_end, .inode = q.inode,
        .dev_major = q.dev_major, .dev_minor = q.dev_minor,
    };
    m->perms[0] = q.vma_flags & RR_VMA_READABLE ? 'r' : '-';
    m->perms[1] = q.vma_flags & RR_VMA_WRITABLE ? 'w' : '-';
    m->perms[2] = q.vma_flags & RR_VMA_EXECUTABLE ? 'x' : '-';
    m->perms[3] = q.vma_flags & RR_VMA_SHARED ? 's' : 'p';
    return 1;
}

/* The same from the text: 1, 0, or -1 with *errp set. */
static int scan_mapping(const uint8_t *ram, MapEntry *m, GError **errp)
{
    /* A line is at most ~100 bytes + PATH_MAX (newlines are escaped). */
    char buf[16384];
    size_t have = 0;
    bool eof = false;
    uintptr_t a = (uintptr_t)ram;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    int ret = 0;

    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot check the guest RAM mapping: "
                         "/proc/self/maps");
        return -1;
    }
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (!nl) {
            if (eof || have == sizeof(buf) - 1) {
                break;
            }
            ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                error_setg_errno(errp, errno, "cannot check the guest RAM "
                                 "mapping: /proc/self/maps");
                ret = -1;
                break;
            }
            eof = n == 0;
            have += n;
            continue;
        }
        *nl = 0;
        unsigned long start, end, off, inode;
        unsigned maj, min;
        char perms[8];
        if (sscanf(buf, "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms,
                   &off, &maj, &min, &inode) == 7 && end > a) {
            /* Lines are in address order: the first ending above ram
             * holds it, or nothing does. */
            if (start <= a) {
                *m = (MapEntry){
                    .start = start, .end = end, .inode = inode,
                    .dev_major = maj, .dev_minor = min,
                };
                g_strlcpy(m->perms, perms, sizeof(m->perms));
                ret = 1;
            }
            break;
        }
        have -= nl + 1 - buf;
        memmove(buf, nl + 1, have);
    }
    close(fd);
    return ret;
}

static bool check_target(RamRestore *rr, const uint8_t *ram,
                         GError **errp)
{
    MapEntry m;
    int found = -1;

    if (rr->maps_fd >= 0) {
        found = query_mapping(rr->maps_fd, ram, &m);
    }
    if (found < 0) {
        rr->stats.maps_scanned = true;
        found = scan_mapping(ram, &m, errp);
        if (found < 0) {
            return false;
        }
    }
    if (!found) {
        error_setg(errp, "nothing is mapped at %p (guest RAM)", ram);
        return false;
    }
    return judge_target(&m, ram, rr->size, errp);
}

RamRestore *ram_restore_prepare(XssReader *r, uint64_t ram_size,
                                const RamRestoreOptions *opts,
                                GError **errp)
{
    int64_t t0 = now_ns();
    size_t host_page = sysconf(_SC_PAGESIZE);
    XssRamLayout l;

    if (!xss_reader_ram_layout(r, &l)) {
        error_setg(errp, "the state has no RAM section");
        return NULL;
    }
    if (l.ram_size != ram_size) {
        error_setg(errp, "the state has %" PRIu64 " bytes of RAM, this "
                   "machine %" PRIu64, l.ram_size, ram_size);
        return NULL;
    }
    if (ram_size % host_page) {
        error_setg(errp, "RAM size %" PRIu64 " is not a multiple of the "
                   "host page size %zu", ram_size, host_page);
        return NULL;
    }

    RamRestore *rr = g_new0(RamRestore, 1);
    rr->size = ram_size;
    rr->host_page = host_page;
    rr->stats.ram_size = ram_size;
    rr->maps_fd = -1;
    rr->image = map_aligned(ram_size, PROT_READ | PROT_WRITE,
                            "the RAM being loaded", errp);
    if (!rr->image) {
        goto fail;
    }
    rr->park_size = ram_size + HUGE_SIZE;
    rr->park = map_aligned(rr->park_size, PROT_NONE,
                           "the RAM being replaced", errp);
    if (!rr->park) {
        goto fail;
    }
    if (opts && opts->huge_pages) {
        rr->stats.huge_pages =
            madvise(rr->image, ram_size, MADV_HUGEPAGE) == 0;
    }

    Fill f = {
        .rr = rr, .opts = opts,
        /* With huge pages one fault fills 2 MiB: nothing to gain. */
        .populate = !rr->stats.huge_pages && host_page == XSS_PAGE_SIZE,
    };
    if (!xss_reader_foreach_chunk(r, fill_chunk, &f, errp)) {
        goto fail;
    }
    if (f.next_gpa != ram_size) {
        error_setg(errp, "section 'ram': its chunks cover %" PRIu64 " of %"
                   PRIu64 " bytes", f.next_gpa, ram_size);
        goto fail;
    }
    /* For the commit's check, if the kernel answers the query. */
    if (!getenv("XBLK_NO_PROCMAP_QUERY")) {
        MapEntry m;
        rr->maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
        if (rr->maps_fd >= 0 && query_mapping(rr->maps_fd, rr->image,
                                              &m) != 1) {
            close(rr->maps_fd);
            rr->maps_fd = -1;
        }
    }
    rr->stats.decode_ns = now_ns() - t0;
    return rr;

fail:
    ram_restore_free(rr);
    return NULL;
}

bool ram_restore_commit(RamRestore *rr, void *ram, GError **errp)
{
    int64_t t0 = now_ns();
    uint8_t *dst = ram;
    size_t size = rr->size;

    if (rr->stats.committed) {
        error_setg(errp, "this RAM was committed already");
        return false;
    }
    if (rr->broken) {
        error_setg(errp, "an earlier commit of this RAM failed: load again");
        return false;
    }
    if (!dst || (uintptr_t)dst % rr->host_page) {
        error_setg(errp, "guest RAM at %p is not page aligned", ram);
        return false;
    }
    if (overlaps(dst, size, rr->image, size) ||
        overlaps(dst, size, rr->park, rr->park_size)) {
        error_setg(errp, "guest RAM at %p overlaps the loaded RAM", ram);
        return false;
    }
    if (ram_snapshot_any_active()) {
        error_setg(errp, "a RAM capture (save state) is still running: "
                   "guest RAM cannot be replaced under it");
        return false;
    }
    if (!check_target(rr, dst, errp)) {
        return false;
    }

    int64_t t1 = now_ns();
    uint8_t *spot = rr->park + ((uintptr_t)dst & (HUGE_SIZE - 1));
    /* 1: old pages to the park; an empty mapping stays at ram. */
    if (mremap(dst, size, size,
               MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
               spot) == MAP_FAILED) {
        int err = errno;
        rr->broken = true;
        rr->spot = spot;
        rr->spot_lost = true;
        error_setg_errno(errp, err, "cannot move guest RAM aside (guest RAM "
                         "unchanged%s)", err == EINVAL ?
                         "; MREMAP_DONTUNMAP needs Linux 5.7" : "");
        return false;
    }
    /* 2: the image over the empty mapping. */
    if (mremap(rr->image, size, size, MREMAP_MAYMOVE | MREMAP_FIXED,
               dst) == MAP_FAILED) {
        int err = errno;
        if (mremap(spot, size, size,
                   MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
                   dst) == MAP_FAILED) {
            g_error("ram-restore: cannot move guest RAM back to %p (%s) "
                    "after failing to move the loaded RAM in (%s)", ram,
                    g_strerror(errno), g_strerror(err));
        }
        rr->broken = true;
        error_setg_errno(errp, err, "cannot move the loaded RAM into place "
                         "(guest RAM unchanged)");
        return false;
    }
    int64_t t2 = now_ns();
    rr->image = NULL;
    rr->spot = spot;
    rr->stats.committed = true;
    rr->stats.check_ns = t1 - t0;
    rr->stats.move_ns = t2 - t1;
    rr->stats.commit_ns = t2 - t0;
    return true;
}

bool ram_restore_copy(RamRestore *rr, uint64_t offset, void *dst,
                      uint64_t len, GError **errp)
{
    if (!rr->image) {
        error_setg(errp, "the loaded RAM was moved into place already");
        return false;
    }
    if (offset > rr->size || len > rr->size - offset) {
        error_setg(errp, "%" PRIu64 " bytes at %" PRIu64 " leave the "
                   "loaded RAM of %" PRIu64 " bytes", len, offset, rr->size);
        return false;
    }
    memcpy(dst, rr->image + offset, len);
    return true;
}

void ram_restore_get_stats(const RamRestore *rr, RamRestoreStats *out)
{
    *out = rr->stats;
}

void ram_restore_free(RamRestore *rr)
{
    if (!rr) {
        return;
    }
    if (rr->image) {
        munmap(rr->image, rr->size);
    }
    if (rr->maps_fd >= 0) {
        close(rr->maps_fd);
    }
    if (rr->park && rr->spot_lost) {
        uint8_t *end = rr->park + rr->park_size;
        if (rr->spot > rr->park) {
            munmap(rr->park, rr->spot - rr->park);
        }
        if (rr->spot + rr->size < end) {
            munmap(rr->spot + rr->size, end - (rr->spot + rr->size));
        }
    } else if (rr->park) {
        munmap(rr->park, rr->park_size);
    }
    g_free(rr);
}
