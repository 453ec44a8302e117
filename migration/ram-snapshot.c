/*
 * ram-snapshot.c - copy-on-write capture of guest RAM; see ram-snapshot.h.
 *
 * Owns: the process-wide SIGSEGV handler (installed once, chaining to
 * the handler it found), the registry of active snapshots the handler
 * reads, and for each snapshot its page-state array and copy store.
 *
 * Memory.  Each snapshot reserves, at begin, a copy store as large as the
 * region (one anonymous mapping, slot i holds page i's original: no
 * allocator, no free list, nothing that could malloc in the handler) and
 * one state byte per page.  Both are reserved, not touched: begin costs
 * O(1) apart from its one mprotect, and resident memory grows only with
 * the pages actually saved.  Bound: the region's size (every page
 * written before the reader got to it; a guest reset does this).  Saved
 * pages that were all zero take no store memory.  The reader frees saved
 * copies (MADV_DONTNEED) per 2 MiB chunk once it has passed them, so the
 * resident store is the pages written ahead of the reader;
 * stats.peak_copy_bytes reports the most it held at once.  The store is
 * committed at begin (not MAP_NORESERVE) so that, under strict
 * overcommit, a handler can never run out of memory halfway through.
 *
 * Page states (one atomic byte per page; transitions only forward):
 *
 *   PROTECTED --writer CAS--> COPYING --> SAVED or SAVED_ZERO --reader--> DONE
 *   PROTECTED --reader CAS--> SENT
 *
 *   PROTECTED   RAM read-only; RAM holds the original.
 *   COPYING     one writer (fault handler or host helper) owns the page and
 *               is copying the original into the store; RAM still
 *               read-only.
 *   SAVED       original in the store; RAM made writable before the state
 *               was published.  SAVED_ZERO: the original was all zero,
 *               nothing stored.
 *   SENT        the reader yielded the page from RAM; RAM may still be
 *               read-only until the reader releases the chunk; a writer
 *               that faults on it only lifts the protection.
 *   DONE        the reader yielded the saved copy (freed with its chunk).
 *
 * Concurrency protocol.
 *   Writers (the handler on any faulting thread, ram_snapshot_before_host_
 *   write on any thread) claim a PROTECTED page with a CAS to COPYING,
 *   copy the original, mprotect the page RW, and only then publish SAVED
 *   (release).  So a writer seeing SAVED/DONE knows the page is writable,
 *   and the reader seeing SAVED (acquire) sees the whole copy.  A writer
 *   finding COPYING waits for the owner (a 4 KiB copy and one mprotect).
 *   Writers never wait for the reader.
 *   The reader (one streaming thread) copies a PROTECTED page into its own
 *   buffer while it is still read-only, and then tries CAS PROTECTED->SENT.
 *   If the CAS succeeds, no writer had claimed the page during the copy
 *   (states never return to PROTECTED, and the page becomes writable only
 *   after a writer's successful CAS), so the copy is the page as of the
 *   pause.  If it fails, a writer claimed the page meanwhile; the copy may
 *   be torn and is dropped (stats.read_races), and the page is taken from
 *   the store once SAVED.  The reader is the only one to move a page out
 *   of SAVED, so each page is yielded exactly once.
 *   The host helper claims runs of pages and lifts their protection with
 *   one mprotect per run.  It lifts it only over pages it has looked at,
 *   none of which can be PROTECTED any more (it claimed them, or the reader
 *   sent them); and before it waits for a page another writer owns, it
 *   first finishes (unprotects and publishes) what it holds, so a writer
 *   never waits while owning a page: no deadlock between writers.
 *   The reader lifts the protection of a chunk it has passed (every page
 *   in it SENT or DONE, none COPYING) with one mprotect, which also lets
 *   the kernel merge the chunk back into one mapping.
 *
 * Handler and lifetime.  The handler finds a snapshot through a static
 * array of registry slots (never freed): it increments the slot's users,
 * then loads the slot's snapshot pointer (both seq_cst); ram_snapshot_end
 * clears the pointer, then waits for users to reach zero before freeing
 * (a Dekker pair: one side always sees the other).  end lifts the
 * protection of the whole region before unregistering.  A fault taken
 * just before that and handled just after it finds no snapshot (or a page
 * already writable): the handler lets the store retry once per page and
 * snapshot (a thread-local guard); a second fault there is not ours and
 * goes down the chain.  Faults outside every region, and faults that are
 * not access faults, go to the previous handler (its flags, mask and
 * SA_RESETHAND honoured); SIG_DFL/SIG_IGN mean: restore the default action
 * and return, so the fault repeats and kills the process as before.  If
 * something replaced our handler, begin installs it again on top; should
 * the replacement chain back to us, the thread-local depth counter breaks
 * the loop: the re-entered handler goes on to the handler found at the
 * first install (as the replaced instance would have), and a further
 * loop ends in the default action.
 * Writes and faults the handler cannot resolve (mprotect failing) abort
 * with a message: going on would corrupt the snapshot.
 *
 * Mapping limit.  Unprotecting single pages splits the region's mapping;
 * at worst every other page is writable: about one mapping per page,
 * until the reader's chunk releases merge them back.  begin refuses a
 * region whose page count (with every other active snapshot's) could pass
 * vm.max_map_count; 64 and 128 MiB (16 Ki / 32 Ki pages) fit the default
 * 65530.
 *
 * Callers: the save-state code (migration/), hw/xbox/machine.c's RAM
 * helper, tests.
 */
#include "migration/ram-snapshot.h"
#include "util/error.h"
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum {
    PG_PROTECTED = 0,           /* must be 0: the state array starts zeroed */
    PG_COPYING,
    PG_SAVED,
    PG_SAVED_ZERO,
    PG_SENT,
    PG_DONE,
};

#define CHUNK_SHIFT     9       /* 512 pages: 2 MiB of 4 KiB pages */
#define CLAIM_BATCH     64      /* pages the host helper holds at most */
#define VMA_MARGIN      4096    /* mappings left for everything else */

struct RamSnapshot {
    /* set at begin, then read-only */
    uint8_t *base;
    size_t size;
    size_t page_size;
    unsigned page_shift;
    uint64_t npages;
    uint64_t gen;               /* unique per begin (retry guard) */
    int slot;
    atomic_uchar *state;        /* npages bytes, in meta */
    uint8_t *buf;               /* the reader's page buffer, in meta */
    uint8_t *meta;
    size_t meta_size;
    uint8_t *store;             /* size bytes: slot i = page i */

    /* reader (the streaming thread) only */
    uint64_t next;              /* next page to yield */
    uint64_t released;          /* pages below this are released */
    bool chunk_sent;            /* a page of the current chunk was SENT */
    uint64_t chunk_saved;       /* saved copies yielded in this chunk */
    bool unprotected;           /* the whole region is writable again */
    bool release_failed;        /* a chunk could not be unprotected */

    /* counters: handlers and helpers update them on any thread */
    atomic_uint_fast64_t copied_by_fault, copied_by_host, copied_zero;
    atomic_uint_fast64_t live_copies, peak_copies;
    atomic_uint_fast64_t streamed, zero_pages, read_races;
    int64_t t_begin_ns, t_protect;
    atomic_int_fast64_t t_unprotect;    /* 0 until writable again */
};

typedef struct RegSlot {
    _Atomic(RamSnapshot *) snap;
    /* the region of the last snapshot here, kept after it ended so that
     * a late fault in it is recognised (a filter: re-checked on snap) */
    atomic_uintptr_t start, end;
    atomic_uint_fast64_t gen;
    atomic_uint users;
} RegSlot;

static RegSlot registry[RAM_SNAPSHOT_MAX];
static atomic_uint active_count;
static atomic_uint_fast64_t gen_counter;
static GMutex registry_lock;            /* begin/end/init */
static uint64_t active_pages;           /* registry_lock */
static long max_map_count;              /* registry_lock; 0: not read yet */
/* The handler we chain to: written under registry_lock while ours is
 * not installed (or was replaced, and runs only if chained to). */
static struct sigaction prev_action;
static struct sigaction first_prev;     /* the one found at the first install */
static bool have_first_prev;
static size_t host_page_size;           /* set before the handler exists */

#define TLS __thread __attribute__((tls_model("initial-exec")))
static TLS uintptr_t guard_page;        /* retry guard: last page retried */
static TLS uint64_t guard_gen;
static TLS unsigned chain_depth;        /* inside a chained handler */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(unsigned *spins)
{
    if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

static bool page_is_zero(const void *p, size_t len)
{
    const uint64_t *w = p;
    for (size_t i = 0; i < len / 8; i += 8) {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] |
            w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) {
            return false;
        }
    }
    return true;
}

/* Async-signal-safe: a message on stderr, then abort. */
static void fatal(const char *msg)
{
    static const char pre[] = "ram-snapshot: ";
    ssize_t r = write(2, pre, sizeof(pre) - 1);
    r = write(2, msg, strlen(msg));
    r = write(2, "\n", 1);
    (void)r;
    abort();
}

static inline uint8_t *page_addr(const RamSnapshot *s, uint64_t idx)
{
    return s->base + (idx << s->page_shift);
}

static void make_writable(RamSnapshot *s, uint64_t first, uint64_t count)
{
    if (mprotect(page_addr(s, first), count << s->page_shift,
                 PROT_READ | PROT_WRITE) != 0) {
        fatal("cannot lift the write protection of guest RAM "
              "(mapping limit?)");
    }
}

/* The writer owns idx (COPYING): copies its original, returns the state
 * to publish once the page is writable. */
static unsigned char save_original(RamSnapshot *s, uint64_t idx)
{
    const uint8_t *src = page_addr(s, idx);
    if (page_is_zero(src, s->page_size)) {
        atomic_fetch_add_explicit(&s->copied_zero, 1, memory_order_relaxed);
        return PG_SAVED_ZERO;
    }
    memcpy(s->store + (idx << s->page_shift), src, s->page_size);
    uint_fast64_t live = atomic_fetch_add_explicit(&s->live_copies, 1,
                                                   memory_order_relaxed) + 1;
    uint_fast64_t peak = atomic_load_explicit(&s->peak_copies,
                                              memory_order_relaxed);
    while (live > peak &&
           !atomic_compare_exchange_weak_explicit(&s->peak_copies, &peak,
                                                  live, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
    return PG_SAVED;
}

/*
 * The fault handler's work on page idx: true once the page is writable
 * through us (saved, or sent and unprotected), false if its state says
 * it already was writable (a late fault, or not ours).
 */
static bool fault_page(RamSnapshot *s, uint64_t idx)
{
    atomic_uchar *st = &s->state[idx];
    unsigned char v = atomic_load_explicit(st, memory_order_acquire);
    unsigned spins = 0;
    for (;;) {
        switch (v) {
        case PG_PROTECTED:
            if (atomic_compare_exchange_weak_explicit(
                    st, &v, PG_COPYING, memory_order_acq_rel,
                    memory_order_acquire)) {
                unsigned char fin = save_original(s, idx);
                make_writable(s, idx, 1);
                atomic_store_explicit(st, fin, memory_order_release);
                atomic_fetch_add_explicit(&s->copied_by_fault, 1,
                                          memory_order_relaxed);
                return true;
            }
            continue;
        case PG_COPYING:
            cpu_relax(&spins);
            v = atomic_load_explicit(st, memory_order_acquire);
            continue;
        case PG_SENT:
            make_writable(s, idx, 1);
            return true;
        default:
            return false;
        }
    }
}

/* A late fault (the page is writable by now, as far as we know): let the
 * store retry once per page and snapshot generation; false: again, so
 * the fault is not ours. */
static bool retry_once(uintptr_t page, uint64_t gen)
{
    if (guard_page == page && guard_gen == gen) {
        return false;
    }
    guard_page = page;
    guard_gen = gen;
    return true;
}

/* true: the fault was ours (or a late one) and the store may retry. */
static bool handle_fault(uintptr_t a)
{
    for (int i = 0; i < RAM_SNAPSHOT_MAX; i++) {
        RegSlot *slot = &registry[i];
        if (a < atomic_load(&slot->start) || a >= atomic_load(&slot->end)) {
            continue;
        }
        atomic_fetch_add(&slot->users, 1);
        RamSnapshot *s = atomic_load(&slot->snap);
        if (!s || a < (uintptr_t)s->base ||
            a - (uintptr_t)s->base >= s->size) {
            atomic_fetch_sub(&slot->users, 1);
            continue;
        }
        uint64_t idx = (a - (uintptr_t)s->base) >> s->page_shift;
        bool ours = fault_page(s, idx);
        uint64_t gen = s->gen;
        uintptr_t page = (uintptr_t)page_addr(s, idx);
        atomic_fetch_sub(&slot->users, 1);
        if (ours) {
            guard_page = 0;
            return true;
        }
        return retry_once(page, gen);
    }
    /* No active snapshot has it: one that just ended may have. */
    for (int i = 0; i < RAM_SNAPSHOT_MAX; i++) {
        RegSlot *slot = &registry[i];
        if (a >= atomic_load(&slot->start) && a < atomic_load(&slot->end)) {
            return retry_once(a & ~(uintptr_t)(host_page_size - 1),
                              atomic_load(&slot->gen));
        }
    }
    return false;
}

static void restore_default(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGSEGV, &dfl, NULL);
}

static void chain(const struct sigaction *pp, int sig, siginfo_t *si,
                  void *uctx)
{
    struct sigaction p = *pp;
    bool is_info = p.sa_flags & SA_SIGINFO;
    if ((is_info && !p.sa_sigaction) ||
        (!is_info && (p.sa_handler == SIG_DFL || p.sa_handler == SIG_IGN))) {
        /* The kernel does not ignore a fault: both mean "die". */
        restore_default();
        return;
    }
    if (p.sa_flags & SA_RESETHAND) {
        restore_default();
    }
    sigset_t old;
    sigset_t mask = p.sa_mask;
    if (!(p.sa_flags & SA_NODEFER)) {
        sigaddset(&mask, sig);
    }
    pthread_sigmask(SIG_BLOCK, &mask, &old);
    chain_depth++;
    if (is_info) {
        p.sa_sigaction(sig, si, uctx);
    } else {
        p.sa_handler(sig);
    }
    chain_depth--;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
    int saved_errno = errno;
    if (chain_depth == 1) {
        /* The handler we chained to was installed over an earlier
         * instance of ours and chains back to it: go on as that one
         * did, to the handler found first. */
        chain(&first_prev, sig, si, uctx);
    } else if (chain_depth) {
        restore_default();
    } else if (!(si->si_code == SEGV_ACCERR &&
                 handle_fault((uintptr_t)si->si_addr))) {
        chain(&prev_action, sig, si, uctx);
    }
    errno = saved_errno;
}

static bool handler_is_ours(const struct sigaction *sa)
{
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == segv_handler;
}

/* registry_lock held. */
static bool ensure_handler(GError **errp)
{
    struct sigaction cur, sa, old;
    host_page_size = sysconf(_SC_PAGESIZE);
    if (sigaction(SIGSEGV, NULL, &cur) != 0) {
        error_setg_errno(errp, errno, "cannot query the SIGSEGV handler");
        return false;
    }
    if (handler_is_ours(&cur)) {
        return true;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    prev_action = cur;
    if (sigaction(SIGSEGV, &sa, &old) != 0) {
        error_setg_errno(errp, errno, "cannot install the SIGSEGV handler");
        return false;
    }
    if (!handler_is_ours(&old)) {
        prev_action = old;
    }
    if (!have_first_prev) {
        first_prev = prev_action;
        have_first_prev = true;
    }
    if (sigaction(SIGSEGV, NULL, &cur) != 0 || !handler_is_ours(&cur)) {
        error_setg(errp, "the SIGSEGV handler for copy-on-write RAM could "
                   "not be installed (a sanitizer refusing user handlers?)");
        return false;
    }
    return true;
}

/* registry_lock held. */
static void read_max_map_count(void)
{
    g_autofree char *text = NULL;
    max_map_count = 65530;
    if (g_file_get_contents("/proc/sys/vm/max_map_count", &text, NULL,
                            NULL)) {
        long v = strtol(text, NULL, 10);
        if (v > 0) {
            max_map_count = v;
        }
    }
}

bool ram_snapshot_init(GError **errp)
{
    g_mutex_lock(&registry_lock);
    if (!max_map_count) {
        read_max_map_count();
    }
    bool ok = ensure_handler(errp);
    g_mutex_unlock(&registry_lock);
    return ok;
}

bool ram_snapshot_any_active(void)
{
    return atomic_load_explicit(&active_count, memory_order_acquire) != 0;
}

size_t ram_snapshot_page_size(const RamSnapshot *s)
{
    return s->page_size;
}

uint64_t ram_snapshot_progress(const RamSnapshot *s)
{
    return atomic_load_explicit(&s->streamed, memory_order_relaxed);
}

static void free_maps(RamSnapshot *s)
{
    if (s->store) {
        munmap(s->store, s->size);
    }
    if (s->meta) {
        munmap(s->meta, s->meta_size);
    }
    g_free(s);
}

/* registry_lock held: a free slot, or -1; errors on overlap. */
static int find_slot(uintptr_t start, uintptr_t end, uint64_t npages,
                     GError **errp)
{
    int free_slot = -1;
    for (int i = 0; i < RAM_SNAPSHOT_MAX; i++) {
        RamSnapshot *o = atomic_load(&registry[i].snap);
        if (!o) {
            if (free_slot < 0) {
                free_slot = i;
            }
            continue;
        }
        if (start < (uintptr_t)o->base + o->size &&
            (uintptr_t)o->base < end) {
            error_setg(errp, "RAM at %p is already being captured by "
                       "another snapshot", (void *)start);
            return -1;
        }
    }
    if (free_slot < 0) {
        error_setg(errp, "too many RAM snapshots at once (at most %d)",
                   RAM_SNAPSHOT_MAX);
        return -1;
    }
    if ((long)(active_pages + npages) > max_map_count - VMA_MARGIN) {
        error_setg(errp, "capturing %" G_GUINT64_FORMAT " pages could need "
                   "more mappings than vm.max_map_count (%ld) allows",
                   active_pages + npages, max_map_count);
        return -1;
    }
    return free_slot;
}

RamSnapshot *ram_snapshot_begin(void *ram, size_t size, GError **errp)
{
    int64_t t0 = now_ns();
    size_t ps = sysconf(_SC_PAGESIZE);
    if (!ram || !size || (uintptr_t)ram % ps || size % ps) {
        error_setg(errp, "RAM snapshot: region %p+%zu is not page aligned",
                   ram, size);
        return NULL;
    }
    RamSnapshot *s = g_new0(RamSnapshot, 1);
    s->base = ram;
    s->size = size;
    s->page_size = ps;
    s->page_shift = __builtin_ctzl(ps);
    s->npages = size / ps;
    /* The reader's buffer, then the states; zero pages until touched. */
    s->meta_size = (ps + s->npages + ps - 1) / ps * ps;
    s->meta = mmap(NULL, s->meta_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    s->store = mmap(NULL, size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->meta == MAP_FAILED || s->store == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot reserve %zu MiB for the "
                         "copies of a RAM snapshot", size >> 20);
        s->meta = s->meta == MAP_FAILED ? NULL : s->meta;
        s->store = s->store == MAP_FAILED ? NULL : s->store;
        free_maps(s);
        return NULL;
    }
    /* Copies are freed per 4 KiB page; huge pages would defeat that and
     * make a single fault zero 2 MiB. */
    madvise(s->store, size, MADV_NOHUGEPAGE);
    s->buf = s->meta;
    s->state = (atomic_uchar *)(s->meta + ps);

    g_mutex_lock(&registry_lock);
    if (!max_map_count) {
        read_max_map_count();
    }
    int slot = -1;
    if (ensure_handler(errp)) {
        slot = find_slot((uintptr_t)ram, (uintptr_t)ram + size, s->npages,
                         errp);
    }
    if (slot < 0) {
        g_mutex_unlock(&registry_lock);
        free_maps(s);
        return NULL;
    }
    s->slot = slot;
    s->gen = atomic_fetch_add(&gen_counter, 1) + 1;
    RegSlot *r = &registry[slot];
    atomic_store(&r->start, (uintptr_t)ram);
    atomic_store(&r->end, (uintptr_t)ram + size);
    atomic_store(&r->gen, s->gen);
    atomic_store(&r->snap, s);
    atomic_fetch_add(&active_count, 1);
    active_pages += s->npages;
    g_mutex_unlock(&registry_lock);

    /* Registered first: from here on every fault in the region is ours. */
    if (mprotect(ram, size, PROT_READ) != 0) {
        int e = errno;
        mprotect(ram, size, PROT_READ | PROT_WRITE);
        ram_snapshot_end(s, NULL);
        error_setg_errno(errp, e, "cannot write-protect guest RAM");
        return NULL;
    }
    s->t_protect = now_ns();
    s->t_begin_ns = s->t_protect - t0;
    return s;
}

/* Publishes the claimed pages after one mprotect over [lo, hi]. */
typedef struct HostRun {
    uint64_t lo, hi;            /* pages to make writable; lo > hi: none */
    unsigned n;
    uint64_t idx[CLAIM_BATCH];
    unsigned char fin[CLAIM_BATCH];
} HostRun;

static void host_run_flush(RamSnapshot *s, HostRun *run)
{
    if (run->lo <= run->hi) {
        make_writable(s, run->lo, run->hi - run->lo + 1);
    }
    for (unsigned i = 0; i < run->n; i++) {
        atomic_store_explicit(&s->state[run->idx[i]], run->fin[i],
                              memory_order_release);
    }
    atomic_fetch_add_explicit(&s->copied_by_host, run->n,
                              memory_order_relaxed);
    run->n = 0;
    run->lo = UINT64_MAX;
    run->hi = 0;
}

static void host_run_add(HostRun *run, uint64_t idx)
{
    run->lo = MIN(run->lo, idx);
    run->hi = MAX(run->hi, idx);
}

static void host_write_one(RamSnapshot *s, uintptr_t a, size_t len)
{
    uintptr_t base = (uintptr_t)s->base;
    uintptr_t lo = MAX(a, base);
    uintptr_t hi = MIN(a + len, base + s->size);  /* exclusive */
    if (lo >= hi) {
        return;
    }
    uint64_t first = (lo - base) >> s->page_shift;
    uint64_t last = (hi - 1 - base) >> s->page_shift;
    HostRun run = { .lo = UINT64_MAX, .hi = 0, .n = 0 };
    for (uint64_t idx = first; idx <= last; idx++) {
        atomic_uchar *st = &s->state[idx];
        unsigned char v = atomic_load_explicit(st, memory_order_acquire);
        unsigned spins = 0;
        for (bool again = true; again;) {
            again = false;
            switch (v) {
            case PG_PROTECTED:
                if (!atomic_compare_exchange_weak_explicit(
                        st, &v, PG_COPYING, memory_order_acq_rel,
                        memory_order_acquire)) {
                    again = true;
                    break;
                }
                run.idx[run.n] = idx;
                run.fin[run.n] = save_original(s, idx);
                run.n++;
                host_run_add(&run, idx);
                break;
            case PG_COPYING:
                /* Owned by another writer: never wait holding pages. */
                host_run_flush(s, &run);
                cpu_relax(&spins);
                v = atomic_load_explicit(st, memory_order_acquire);
                again = true;
                break;
            case PG_SENT:
                host_run_add(&run, idx);
                break;
            default:
                break;          /* already writable */
            }
        }
        if (run.n == CLAIM_BATCH) {
            host_run_flush(s, &run);
        }
    }
    host_run_flush(s, &run);
}

void ram_snapshot_before_host_write(RamSnapshot *s, void *host_addr,
                                    size_t len)
{
    uintptr_t a = (uintptr_t)host_addr;
    if (!len) {
        return;
    }
    if (s) {
        host_write_one(s, a, len);
        return;
    }
    if (!atomic_load_explicit(&active_count, memory_order_acquire)) {
        return;
    }
    for (int i = 0; i < RAM_SNAPSHOT_MAX; i++) {
        RegSlot *slot = &registry[i];
        if (!atomic_load(&slot->snap)) {
            continue;
        }
        atomic_fetch_add(&slot->users, 1);
        RamSnapshot *o = atomic_load(&slot->snap);
        if (o) {
            host_write_one(o, a, len);
        }
        atomic_fetch_sub(&slot->users, 1);
    }
}

/* Reader: the pages [released, upto) are all yielded; free their copies,
 * lift their protection. */
static void release_chunk(RamSnapshot *s, uint64_t upto)
{
    uint64_t first = s->released, n = upto - first;
    if (!n) {
        return;
    }
    if (s->chunk_sent) {
        /* Not fatal if it fails: a writer lifts it per page (SENT), and
         * end lifts it for the whole region. */
        if (mprotect(page_addr(s, first), n << s->page_shift,
                     PROT_READ | PROT_WRITE) != 0) {
            s->release_failed = true;
        }
    }
    if (s->chunk_saved) {
        madvise(s->store + (first << s->page_shift), n << s->page_shift,
                MADV_DONTNEED);
        atomic_fetch_sub_explicit(&s->live_copies, s->chunk_saved,
                                  memory_order_relaxed);
    }
    s->chunk_sent = false;
    s->chunk_saved = 0;
    s->released = upto;
}

bool ram_snapshot_next(RamSnapshot *s, RamSnapshotPage *page)
{
    uint64_t chunk_pages = (uint64_t)1 << CHUNK_SHIFT;
    if (s->next > s->released &&
        (s->next % chunk_pages == 0 || s->next == s->npages)) {
        release_chunk(s, s->next);
        if (s->next == s->npages && !s->unprotected && !s->release_failed) {
            s->unprotected = true;
            atomic_store(&s->t_unprotect, now_ns());
        }
    }
    if (s->next >= s->npages) {
        return false;
    }
    uint64_t idx = s->next;
    atomic_uchar *st = &s->state[idx];
    const uint8_t *ram = page_addr(s, idx);
    unsigned char v = atomic_load_explicit(st, memory_order_acquire);
    unsigned spins = 0;
    memset(page, 0, sizeof(*page));
    page->offset = idx << s->page_shift;
    for (;;) {
        switch (v) {
        case PG_PROTECTED: {
            /* Copy while read-only, then confirm nobody claimed it. */
            bool zero = page_is_zero(ram, s->page_size);
            if (!zero) {
                memcpy(s->buf, ram, s->page_size);
            }
            if (atomic_compare_exchange_strong_explicit(
                    st, &v, PG_SENT, memory_order_acq_rel,
                    memory_order_acquire)) {
                page->zero = zero;
                page->data = zero ? NULL : s->buf;
                s->chunk_sent = true;
                goto out;
            }
            atomic_fetch_add_explicit(&s->read_races, 1,
                                      memory_order_relaxed);
            continue;           /* v holds the writer's state */
        }
        case PG_COPYING:
            cpu_relax(&spins);
            v = atomic_load_explicit(st, memory_order_acquire);
            continue;
        case PG_SAVED:
            page->data = s->store + (idx << s->page_shift);
            page->from_copy = true;
            s->chunk_saved++;
            atomic_store_explicit(st, PG_DONE, memory_order_relaxed);
            goto out;
        case PG_SAVED_ZERO:
            page->zero = true;
            page->from_copy = true;
            atomic_store_explicit(st, PG_DONE, memory_order_relaxed);
            goto out;
        default:
            /* SENT and DONE are the reader's own: yielded already. */
            g_assert_not_reached();
        }
    }
out:
    if (page->zero) {
        atomic_fetch_add_explicit(&s->zero_pages, 1, memory_order_relaxed);
    }
    s->next++;
    atomic_store_explicit(&s->streamed, s->next, memory_order_relaxed);
    return true;
}

void ram_snapshot_get_stats(const RamSnapshot *s, RamSnapshotStats *out)
{
    RamSnapshot *m = (RamSnapshot *)s;      /* atomics: loads only */
    memset(out, 0, sizeof(*out));
    out->page_size = s->page_size;
    out->pages = s->npages;
    out->pages_streamed = atomic_load(&m->streamed);
    out->zero_pages = atomic_load(&m->zero_pages);
    out->copied_by_fault = atomic_load(&m->copied_by_fault);
    out->copied_by_host = atomic_load(&m->copied_by_host);
    out->copied_zero = atomic_load(&m->copied_zero);
    out->read_races = atomic_load(&m->read_races);
    out->peak_copy_bytes = (uint64_t)atomic_load(&m->peak_copies) *
                           s->page_size;
    out->begin_ns = s->t_begin_ns;
    int64_t t_end = atomic_load(&m->t_unprotect);
    out->protect_ns = (t_end ? t_end : now_ns()) - s->t_protect;
    out->complete = out->pages_streamed == s->npages;
}

void ram_snapshot_end(RamSnapshot *s, RamSnapshotStats *stats)
{
    if (!s) {
        return;
    }
    if (!s->unprotected) {
        /* Pages not streamed yet (cancel), or not released: one call.
         * It merges mappings, so it cannot hit the mapping limit; it
         * fails only if the owner unmapped RAM first (nothing to lift). */
        mprotect(s->base, s->size, PROT_READ | PROT_WRITE);
        s->unprotected = true;
        atomic_store(&s->t_unprotect, now_ns());
    }
    g_mutex_lock(&registry_lock);
    RegSlot *r = &registry[s->slot];
    atomic_store(&r->snap, NULL);
    atomic_fetch_sub(&active_count, 1);
    active_pages -= s->npages;
    g_mutex_unlock(&registry_lock);
    /* Handlers and helpers that found s before it was unregistered. */
    unsigned spins = 0;
    while (atomic_load(&r->users)) {
        cpu_relax(&spins);
    }
    if (stats) {
        ram_snapshot_get_stats(s, stats);
    }
    free_maps(s);
}
