/*
 * xblk-io - the disk exerciser, driven like qemu-io: it opens one image
 * through a BlockBackend and runs commands (read, write, discard, the aio_*
 * family, flush, map, info, length, ...) given with -c or typed at its
 * prompt.
 *
 * Messages, output formats and the exit status follow qemu-io 7.2 so that
 * scripts written for qemu-io work unchanged: a failing command makes the
 * program exit 1, yet the commands after it still run; aio completions
 * report their own errors but, being asynchronous, never change the status.
 *
 * Owns: command dispatch, qemu-io's number syntax, the statistics report
 * and the hex dump.  All I/O goes through block/block-backend.h; the aio_*
 * commands use its callback API and are waited for by aio_flush, close and
 * program exit.
 */
#include "block/block-backend.h"
#include "block/block_int.h"
#include "tools/img-common.h"
#include "util/cutils.h"
#include "util/error.h"
#include "util/main-loop.h"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XBLK_VERSION "0.1.0"

/* Largest single request, as qemu's BDRV_REQUEST_MAX_BYTES on 64-bit. */
#define IO_MAX_BYTES ((int64_t)2147483136)

/* Fill bytes: writes default to 0xcd as qemu-io's do. */
#define IO_WRITE_PATTERN 0xcd

typedef struct IoState {
    BlockBackend *blk;
    unsigned aio_pending;       /* aio requests not yet completed */
    bool quiet;                 /* -q on the command line */
    bool quit;                  /* "quit" was run */
} IoState;

static IoState io;

typedef struct IoCmd {
    const char *name;
    const char *alias;
    int (*fn)(int argc, char **argv);
    int argmin, argmax;         /* argmax -1: unlimited */
    bool needs_file;
    bool writes;                /* refused on a read-only image */
    const char *args;
    const char *oneline;
    const char *help;
} IoCmd;

static int io_usage(const char *name);

/* ---- numbers, patterns, time ---- */

static int io_unit_shift(char c)
{
    switch (g_ascii_tolower(c)) {
    case 'b': return 0;
    case 'k': return 10;
    case 'm': return 20;
    case 'g': return 30;
    case 't': return 40;
    case 'p': return 50;
    case 'e': return 60;
    }
    return -1;
}

/* Digits of an integer in base 10 or 16; *overflow when it exceeds 64
 * bits.  Returns the first character after the digits. */
static const char *io_scan_int(const char *p, int base, uint64_t *val,
                               bool *overflow)
{
    *val = 0;
    *overflow = false;
    while (base == 16 ? g_ascii_isxdigit(*p) : g_ascii_isdigit(*p)) {
        unsigned d = g_ascii_xdigit_value(*p++);
        if (*val > (UINT64_MAX - d) / base) {
            *overflow = true;
        } else {
            *val = *val * base + d;
        }
    }
    return p;
}

/*
 * qemu-io's size syntax: decimal (a leading 0 is not octal) or 0x hex,
 * an optional fraction for decimals, one optional binary unit suffix.
 * A fraction of bytes is refused; otherwise the result is truncated.
 * Returns 0, -EINVAL (syntax) or -ERANGE (does not fit in int64_t).
 */
static int io_parse_num(const char *s, int64_t *out)
{
    const char *p = s + (*s == '+');
    int base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    if (!g_ascii_isxdigit(*p) || (base == 10 && !g_ascii_isdigit(*p))) {
        return -EINVAL;
    }
    uint64_t ival;
    bool overflow;
    p = io_scan_int(p, base, &ival, &overflow);
    double frac = 0;
    if (base == 10 && *p == '.') {
        frac = g_ascii_strtod(p, NULL);     /* ".25" -> 0.25, "." -> 0 */
        for (p++; g_ascii_isdigit(*p); p++) {
        }
    }
    int shift = 0;
    if (*p && (shift = io_unit_shift(*p++)) < 0) {
        return -EINVAL;
    }
    if (*p || (shift == 0 && frac != 0)) {
        return -EINVAL;
    }
    if (overflow || ival > ((uint64_t)INT64_MAX >> shift)) {
        return -ERANGE;
    }
    /* frac < 1, so the sum stays below (ival + 1) << shift <= 2^63. */
    uint64_t v = (ival << shift) + (uint64_t)(frac * (double)(1ULL << shift));
    if (v > INT64_MAX) {
        return -ERANGE;
    }
    *out = (int64_t)v;
    return 0;
}

static void io_print_num_err(int err, const char *arg)
{
    if (err == -ERANGE) {
        printf("Parsing error: argument too large -- %s\n", arg);
    } else {
        printf("Parsing error: non-numeric argument,"
               " or extraneous/unrecognized suffix -- %s\n", arg);
    }
}

/* Parses and reports; returns 0 or the negative errno. */
static int io_get_num(const char *arg, int64_t *out)
{
    int ret = io_parse_num(arg, out);
    const char *digits = arg + (*arg == '+');
    if (ret < 0) {
        io_print_num_err(ret, arg);
    } else if (g_ascii_strncasecmp(digits, "0x", 2) == 0 &&
               strchr("kKmMgGtTpP", arg[strlen(arg) - 1])) {
        error_report("warning: Using a multiplier suffix on hex numbers "
                     "is deprecated: %s", arg);
    }
    return ret;
}

/* A pattern byte: any C integer literal from 0 to 255. */
static bool io_parse_pattern(const char *arg, int *pattern)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 0);
    if (errno || end == arg || *end || v < 0 || v > 255) {
        printf("%s is not a valid pattern byte\n", arg);
        return false;
    }
    *pattern = (int)v;
    return true;
}

static struct timespec io_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

static struct timespec io_since(struct timespec start)
{
    struct timespec now = io_now();
    struct timespec d = { now.tv_sec - start.tv_sec,
                          now.tv_nsec - start.tv_nsec };
    if (d.tv_nsec < 0) {
        d.tv_sec--;
        d.tv_nsec += 1000000000L;
    }
    return d;
}

/* qemu-io's cvtstr(): three decimals in the largest binary unit that
 * keeps the value >= 1, with a ".000" tail (and what follows) dropped. */
static void io_fmt_size(double v, char *out, size_t n)
{
    static const char *const units[] = { "EiB", "PiB", "TiB", "GiB",
                                         "MiB", "KiB" };
    const char *suffix = "bytes";
    for (int i = 0; i < 6; i++) {
        double unit = (double)(1ULL << (10 * (6 - i)));
        if (v >= unit) {
            snprintf(out, n, "%.3f", v / unit);
            suffix = units[i];
            break;
        }
    }
    if (!strcmp(suffix, "bytes")) {
        snprintf(out, n, "%f", v);
    }
    char *trim = strstr(out, ".000");
    size_t len = trim ? (size_t)(trim - out) : strlen(out);
    snprintf(out + len, n - len, " %s", suffix);
}

/* Short form "SS.ss sec" below one second, "H:MM:SS.ss" otherwise or
 * when a machine reads it. */
static void io_fmt_time(struct timespec t, bool machine, char *out, size_t n)
{
    double frac = t.tv_nsec / 1e9;
    if (!machine && t.tv_sec == 0) {
        snprintf(out, n, "%05.2f sec", frac);
        return;
    }
    snprintf(out, n, "%u:%02u:%05.2f", (unsigned)(t.tv_sec / 3600),
             (unsigned)(t.tv_sec % 3600 / 60), (t.tv_sec % 60) + frac);
}

static void io_report(const char *op, struct timespec t, int64_t offset,
                      int64_t count, int64_t total, int ops, bool machine)
{
    char ts[64], s1[64], s2[64];
    /* A request can finish within the clock's resolution. */
    double secs = MAX(t.tv_sec + t.tv_nsec / 1e9, 1e-9);
    io_fmt_time(t, machine, ts, sizeof(ts));
    if (machine) {
        printf("%" PRId64 ",%d,%s,%.3f,%.3f\n", total, ops, ts,
               total / secs, ops / secs);
        return;
    }
    io_fmt_size((double)total, s1, sizeof(s1));
    io_fmt_size(total / secs, s2, sizeof(s2));
    printf("%s %" PRId64 "/%" PRId64 " bytes at offset %" PRId64 "\n",
           op, total, count, offset);
    printf("%s, %d ops; %s (%s/sec and %.4f ops/sec)\n", s1, ops, ts, s2,
           ops / secs);
}

/* 16 bytes a line: offset, hex bytes, then letters and digits only. */
static void io_dump(const uint8_t *buf, int64_t offset, int64_t len)
{
    for (int64_t i = 0; i < len; i += 16) {
        int n = (int)MIN(16, len - i);
        printf("%08" PRIx64 ":  ", (uint64_t)(offset + i));
        for (int j = 0; j < n; j++) {
            printf("%02x ", buf[i + j]);
        }
        putchar(' ');
        for (int j = 0; j < n; j++) {
            putchar(g_ascii_isalnum(buf[i + j]) ? buf[i + j] : '.');
        }
        putchar('\n');
    }
}

static uint8_t *io_alloc(int64_t len, int fill)
{
    uint8_t *buf = bdrv_try_blockalign(blk_bs(io.blk), MAX(len, 1));
    if (buf) {
        memset(buf, fill, len);
    }
    return buf;
}

/* Verifies [start, start+len) of buf against one byte value. */
static bool io_buf_is(const uint8_t *buf, int64_t start, int64_t len,
                      int pattern)
{
    for (int64_t i = 0; i < len; i++) {
        if (buf[start + i] != pattern) {
            return false;
        }
    }
    return true;
}

/* ---- read ---- */

typedef struct IoReadOpts {
    bool machine, quiet, verbose;
    bool has_pattern, has_poff, has_plen;
    int pattern;
    int64_t poff, plen;         /* verified range within the buffer */
} IoReadOpts;

static int io_read_getopt(int argc, char **argv, IoReadOpts *o)
{
    int c;
    while ((c = getopt(argc, argv, "CpP:qs:l:v")) != -1) {
        switch (c) {
        case 'C': o->machine = true; break;
        case 'p': break;        /* accepted, as qemu-io, for old scripts */
        case 'q': o->quiet = true; break;
        case 'v': o->verbose = true; break;
        case 'P':
            o->has_pattern = true;
            if (!io_parse_pattern(optarg, &o->pattern)) {
                return -EINVAL;
            }
            break;
        case 's':
            o->has_poff = true;
            if (io_get_num(optarg, &o->poff) < 0) {
                return -EINVAL;
            }
            break;
        case 'l':
            o->has_plen = true;
            if (io_get_num(optarg, &o->plen) < 0) {
                return -EINVAL;
            }
            break;
        default:
            return io_usage("read");
        }
    }
    if (optind != argc - 2 ||
        ((o->has_poff || o->has_plen) && !o->has_pattern)) {
        return io_usage("read");
    }
    return 0;
}

/* Parses "off len" at argv[optind]; count is capped at IO_MAX_BYTES
 * unless uncapped is set. */
static int io_get_range(char **argv, int64_t *offset, int64_t *count,
                        const char *cap_note)
{
    int ret = io_get_num(argv[optind], offset);
    if (ret < 0 || (ret = io_get_num(argv[optind + 1], count)) < 0) {
        return ret;
    }
    if (cap_note && *count > IO_MAX_BYTES) {
        printf("length cannot exceed %" PRId64 "%s, given %s\n",
               IO_MAX_BYTES, cap_note, argv[optind + 1]);
        return -EINVAL;
    }
    return 0;
}

static int io_cmd_read(int argc, char **argv)
{
    IoReadOpts o = { .quiet = io.quiet };
    int64_t offset, count;
    int ret = io_read_getopt(argc, argv, &o);
    if (ret < 0 || (ret = io_get_range(argv, &offset, &count, "")) < 0) {
        return ret;
    }
    if (!o.has_plen) {
        o.plen = count - o.poff;
    }
    if (o.poff > count || o.plen < 0 || o.plen > count - o.poff) {
        printf("pattern verification range exceeds end of read data\n");
        return -EINVAL;
    }
    uint8_t *buf = io_alloc(count, 0xab);
    if (!buf) {
        printf("read failed: %s\n", g_strerror(ENOMEM));
        return -ENOMEM;
    }
    struct timespec t0 = io_now();
    ret = blk_pread(io.blk, offset, count, buf);
    struct timespec t = io_since(t0);
    if (ret < 0) {
        printf("read failed: %s\n", g_strerror(-ret));
        goto out;
    }
    if (o.has_pattern && !io_buf_is(buf, o.poff, o.plen, o.pattern)) {
        printf("Pattern verification failed at offset %" PRId64 ", %"
               PRId64 " bytes\n", offset + o.poff, o.plen);
        ret = -EINVAL;
    }
    if (!o.quiet) {
        if (o.verbose) {
            io_dump(buf, offset, count);
        }
        io_report("read", t, offset, count, count, 1, o.machine);
    }
out:
    bdrv_vfree(buf);
    return ret;
}

/* ---- write ---- */

typedef struct IoWriteOpts {
    bool compress, machine, fua, no_fallback, quiet, unmap, zero;
    bool has_pattern;
    int pattern;
    const char *source;         /* -s: file whose bytes fill the buffer */
} IoWriteOpts;

static int io_write_getopt(int argc, char **argv, IoWriteOpts *o)
{
    int c;
    while ((c = getopt(argc, argv, "cCfnpP:qs:uz")) != -1) {
        switch (c) {
        case 'c': o->compress = true; break;
        case 'C': o->machine = true; break;
        case 'f': o->fua = true; break;
        case 'n': o->no_fallback = true; break;
        case 'p': break;
        case 'q': o->quiet = true; break;
        case 's': o->source = optarg; break;
        case 'u': o->unmap = true; break;
        case 'z': o->zero = true; break;
        case 'P':
            o->has_pattern = true;
            if (!io_parse_pattern(optarg, &o->pattern)) {
                return -EINVAL;
            }
            break;
        default:
            return io_usage("write");
        }
    }
    return 0;
}

/* The option combinations qemu-io refuses, with its messages. */
static int io_write_check(const IoWriteOpts *o)
{
    const char *msg = NULL;
    if (o->fua && o->compress) {
        msg = "-f and -b or -c cannot be specified at the same time";
    } else if (o->zero + o->has_pattern + !!o->source > 1) {
        msg = "Only one of -z, -P, and -s can be specified at the same time";
    } else if (o->no_fallback && !o->zero) {
        msg = "-n requires -z to be specified";
    } else if (o->unmap && !o->zero) {
        msg = "-u requires -z to be specified";
    }
    if (msg) {
        printf("%s\n", msg);
        return -EINVAL;
    }
    return 0;
}

/* Fills buf with the contents of path, repeated as needed. */
static int io_fill_from_file(uint8_t *buf, int64_t len, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, g_strerror(errno));
        return -errno;
    }
    size_t got = fread(buf, 1, len, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "%s: read error\n", path);
        return -EIO;
    }
    if (got == 0 && len > 0) {
        fprintf(stderr, "%s: file is empty\n", path);
        return -EINVAL;
    }
    for (int64_t pos = got; pos < len; pos += got) {
        memcpy(buf + pos, buf, MIN((int64_t)got, len - pos));
    }
    return 0;
}

static BdrvRequestFlags io_write_flags(const IoWriteOpts *o)
{
    return (o->compress ? BDRV_REQ_WRITE_COMPRESSED : 0) |
           (o->fua ? BDRV_REQ_FUA : 0) |
           (o->unmap ? BDRV_REQ_MAY_UNMAP : 0) |
           (o->no_fallback ? BDRV_REQ_NO_FALLBACK : 0);
}

/* Builds the data buffer (NULL for -z) and performs the write; *t is
 * the time the request itself took. */
static int io_do_write(const IoWriteOpts *o, int64_t offset, int64_t count,
                       struct timespec *t)
{
    uint8_t *buf = NULL;
    int ret;
    if (!o->zero) {
        buf = io_alloc(count, o->has_pattern ? o->pattern
                                             : IO_WRITE_PATTERN);
        if (!buf) {
            return -ENOMEM;
        }
        if (o->source && (ret = io_fill_from_file(buf, count,
                                                  o->source)) < 0) {
            bdrv_vfree(buf);
            return INT_MIN;     /* already reported */
        }
    }
    struct timespec t0 = io_now();
    ret = o->zero ? blk_pwrite_zeroes(io.blk, offset, count,
                                      io_write_flags(o))
                  : blk_pwrite(io.blk, offset, count, buf, io_write_flags(o));
    *t = io_since(t0);
    bdrv_vfree(buf);
    return ret;
}

static int io_cmd_write(int argc, char **argv)
{
    IoWriteOpts o = { .quiet = io.quiet };
    int64_t offset, count;
    int ret = io_write_getopt(argc, argv, &o);
    if (ret < 0 || (ret = io_write_check(&o)) < 0) {
        return ret;
    }
    if (optind != argc - 2) {
        return io_usage("write");
    }
    /* Zeroes need no buffer, so -z -n may exceed the buffer cap. */
    ret = io_get_range(argv, &offset, &count,
                       o.zero && o.no_fallback ? NULL : " without -n");
    if (ret < 0) {
        return ret;
    }
    struct timespec t;
    ret = io_do_write(&o, offset, count, &t);
    if (ret == INT_MIN) {
        return -EINVAL;
    }
    if (ret < 0) {
        printf("write failed: %s\n", g_strerror(-ret));
        return ret;
    }
    if (!o.quiet) {
        io_report("wrote", t, offset, count, count, 1, o.machine);
    }
    return 0;
}

/* ---- discard ---- */

static int io_cmd_discard(int argc, char **argv)
{
    bool machine = false, quiet = io.quiet;
    int64_t offset, count;
    int c, ret;
    while ((c = getopt(argc, argv, "Cq")) != -1) {
        switch (c) {
        case 'C': machine = true; break;
        case 'q': quiet = true; break;
        default: return io_usage("discard");
        }
    }
    if (optind != argc - 2) {
        return io_usage("discard");
    }
    if ((ret = io_get_range(argv, &offset, &count, "")) < 0) {
        return ret;
    }
    struct timespec t0 = io_now();
    ret = blk_pdiscard(io.blk, offset, count);
    struct timespec t = io_since(t0);
    if (ret < 0) {
        printf("discard failed: %s\n", g_strerror(-ret));
        return ret;
    }
    if (!quiet) {
        io_report("discard", t, offset, count, count, 1, machine);
    }
    return 0;
}

/* ---- aio_read, aio_write, aio_flush ---- */

typedef struct IoAio {
    bool is_write, zero;
    bool machine, quiet, verbose;
    bool has_pattern;
    int pattern;
    BdrvRequestFlags flags;
    int64_t offset, count;
    uint8_t *buf;
    IOVector qiov;              /* over buf (adjacent lengths merge) */
    struct timespec start;
    int ret;                    /* result of a write-zeroes request */
} IoAio;

static void io_aio_free(IoAio *a)
{
    iovec_destroy(&a->qiov);
    bdrv_vfree(a->buf);
    g_free(a);
}

static void io_aio_done(void *opaque, int ret)
{
    IoAio *a = opaque;
    struct timespec t = io_since(a->start);
    io.aio_pending--;
    if (ret < 0) {
        /* qemu-io names a failed aio_read "readv". */
        printf("%s failed: %s\n", a->is_write ? "aio_write" : "readv",
               g_strerror(-ret));
    } else {
        if (a->has_pattern && !a->is_write &&
            !io_buf_is(a->buf, 0, a->count, a->pattern)) {
            printf("Pattern verification failed at offset %" PRId64
                   ", %" PRId64 " bytes\n", a->offset, a->count);
        }
        if (!a->quiet && a->verbose) {
            io_dump(a->buf, a->offset, a->count);
        }
        if (!a->quiet) {
            io_report(a->is_write ? "wrote" : "read", t, a->offset,
                      a->count, a->count, 1, a->machine);
        }
    }
    fflush(stdout);
    io_aio_free(a);
}

/* The backend has no callback write-zeroes: run it in a coroutine and
 * complete from a bottom half, like the backend's own aio requests. */
static void io_aio_done_bh(void *opaque)
{
    IoAio *a = opaque;
    io_aio_done(a, a->ret);
}

static void coroutine_fn io_aio_zero_entry(void *opaque)
{
    IoAio *a = opaque;
    a->ret = blk_co_pwrite_zeroes(io.blk, a->offset, a->count, a->flags);
    aio_bh_schedule(io_aio_done_bh, a);
}

/* Sums the length arguments with qemu-io's limits. */
static int io_aio_lengths(char **args, int n, int64_t *lens, int64_t *total)
{
    *total = 0;
    for (int i = 0; i < n; i++) {
        int ret = io_get_num(args[i], &lens[i]);
        if (ret < 0) {
            return ret;
        }
        if (lens[i] > IO_MAX_BYTES) {
            printf("Argument '%s' exceeds maximum size %" PRId64 "\n",
                   args[i], IO_MAX_BYTES);
            return -EINVAL;
        }
        if (*total > IO_MAX_BYTES - lens[i]) {
            printf("The total number of bytes exceed the maximum size %"
                   PRId64 "\n", IO_MAX_BYTES);
            return -EINVAL;
        }
        *total += lens[i];
    }
    return 0;
}

/* Parses "off len [len...]" and, unless zeroing, builds buf and qiov. */
static int io_aio_prepare(IoAio *a, int argc, char **argv)
{
    int n = argc - optind - 1;
    g_autofree int64_t *lens = g_new(int64_t, n);
    int ret = io_get_num(argv[optind], &a->offset);
    if (ret < 0 || (ret = io_aio_lengths(argv + optind + 1, n, lens,
                                         &a->count)) < 0) {
        return ret;
    }
    iovec_init(&a->qiov, n);
    if (a->zero) {
        return 0;
    }
    int fill = a->is_write ? (a->has_pattern ? a->pattern : IO_WRITE_PATTERN)
                           : 0xab;
    a->buf = io_alloc(a->count, fill);
    if (!a->buf) {
        printf("%s failed: %s\n", argv[0], g_strerror(ENOMEM));
        return -ENOMEM;
    }
    int64_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (lens[i] > 0) {
            iovec_add(&a->qiov, a->buf + pos, lens[i]);
        }
        pos += lens[i];
    }
    return 0;
}

static void io_aio_submit(IoAio *a)
{
    io.aio_pending++;
    a->start = io_now();
    if (a->zero) {
        co_enter(co_create(io_aio_zero_entry, a));
    } else if (a->is_write) {
        blk_aio_pwritev(io.blk, a->offset, &a->qiov, a->flags, io_aio_done, a);
    } else {
        blk_aio_preadv(io.blk, a->offset, &a->qiov, 0, io_aio_done, a);
    }
}

static int io_aio_getopt(int argc, char **argv, IoAio *a)
{
    int c;
    const char *opts = a->is_write ? "CfP:quz" : "CP:qv";
    while ((c = getopt(argc, argv, opts)) != -1) {
        switch (c) {
        case 'C': a->machine = true; break;
        case 'f': a->flags |= BDRV_REQ_FUA; break;
        case 'q': a->quiet = true; break;
        case 'u': a->flags |= BDRV_REQ_MAY_UNMAP; break;
        case 'v': a->verbose = true; break;
        case 'z': a->zero = true; break;
        case 'P':
            a->has_pattern = true;
            if (!io_parse_pattern(optarg, &a->pattern)) {
                return -EINVAL;
            }
            break;
        default:
            return io_usage(argv[0]);
        }
    }
    return 0;
}

static int io_aio_check(const IoAio *a, int argc, char **argv)
{
    if ((a->flags & BDRV_REQ_MAY_UNMAP) && !a->zero) {
        printf("-u requires -z to be specified\n");
        return -EINVAL;
    }
    if (a->zero && a->has_pattern) {
        printf("-z and -P cannot be specified at the same time\n");
        return -EINVAL;
    }
    if (optind > argc - 2) {
        return io_usage(argv[0]);
    }
    return 0;
}

static int io_aio_cmd(int argc, char **argv, bool is_write)
{
    IoAio *a = g_new0(IoAio, 1);
    a->is_write = is_write;
    a->quiet = io.quiet;
    int ret = io_aio_getopt(argc, argv, a);
    if (ret >= 0) {
        ret = io_aio_check(a, argc, argv);
    }
    if (ret >= 0) {
        ret = io_aio_prepare(a, argc, argv);
    }
    if (ret < 0) {
        io_aio_free(a);
        return ret;
    }
    io_aio_submit(a);
    return 0;
}

static int io_cmd_aio_read(int argc, char **argv)
{
    return io_aio_cmd(argc, argv, false);
}

static int io_cmd_aio_write(int argc, char **argv)
{
    return io_aio_cmd(argc, argv, true);
}

static void io_aio_wait(void)
{
    AIO_POLL_WHILE(io.aio_pending > 0);
}

static int io_cmd_aio_flush(int argc, char **argv)
{
    io_aio_wait();
    return 0;
}

/* ---- flush, length, map, info ---- */

static int io_cmd_flush(int argc, char **argv)
{
    int ret = blk_flush(io.blk);
    if (ret < 0) {
        printf("flush failed: %s\n", g_strerror(-ret));
    }
    return ret;
}

static int io_cmd_length(int argc, char **argv)
{
    char s[64];
    int64_t len = blk_getlength(io.blk);
    if (len < 0) {
        printf("getlength: %s\n", g_strerror(-len));
        return (int)len;
    }
    io_fmt_size((double)len, s, sizeof(s));
    printf("%s\n", s);
    return 0;
}

/* Allocation in the top image only (qemu-io's map ignores the backing
 * chain): 1 allocated, 0 not, or a negative errno. */
static int io_is_allocated(BlockDriverState *bs, int64_t offset,
                           int64_t bytes, int64_t *pnum)
{
    int ret = bdrv_block_status(bs, offset, bytes, pnum, NULL, NULL);
    return ret < 0 ? ret : !!(ret & BDRV_BLOCK_ALLOCATED);
}

/* Merges the following extents that share the first one's state. */
static int io_map_extent(BlockDriverState *bs, int64_t offset,
                         int64_t bytes, int64_t *pnum)
{
    int64_t n;
    int first = io_is_allocated(bs, offset, bytes, &n);
    if (first < 0) {
        return first;
    }
    *pnum = n;
    while (n > 0 && *pnum < bytes) {
        int ret = io_is_allocated(bs, offset + *pnum, bytes - *pnum, &n);
        if (ret != first) {
            break;
        }
        *pnum += n;
    }
    return first;
}

static int io_cmd_map(int argc, char **argv)
{
    BlockDriverState *bs = blk_bs(io.blk);
    int64_t len = blk_getlength(io.blk);
    if (len < 0) {
        error_report("Failed to query image length: %s", g_strerror(-len));
        return (int)len;
    }
    for (int64_t offset = 0; offset < len;) {
        int64_t n = 0;
        char s1[64], s2[64];
        int ret = io_map_extent(bs, offset, len - offset, &n);
        if (ret < 0) {
            error_report("Failed to get allocation status: %s",
                         g_strerror(-ret));
            return ret;
        }
        if (n <= 0) {
            error_report("Unexpected end of image");
            return -EIO;
        }
        io_fmt_size((double)n, s1, sizeof(s1));
        io_fmt_size((double)offset, s2, sizeof(s2));
        printf("%s (0x%" PRIx64 ") bytes %s at offset %s (0x%" PRIx64 ")\n",
               s1, (uint64_t)n, ret ? "    allocated" : "not allocated", s2,
               (uint64_t)offset);
        offset += n;
    }
    return 0;
}

static void io_dump_json(json_t *v, int indent);

/* Keys print with dashes as spaces; scalars follow on the same line,
 * objects and arrays on the lines below, four spaces deeper. */
static void io_dump_json_entry(const char *label, json_t *v, int indent)
{
    bool composite = json_is_object(v) || json_is_array(v);
    printf("%*s%s:%s", indent * 4, "", label, composite ? "\n" : " ");
    io_dump_json(v, indent + 1);
}

static void io_dump_json(json_t *v, int indent)
{
    const char *key;
    json_t *item;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, key, item) {
            g_autofree char *label = g_strdup(key);
            g_strdelimit(label, "-", ' ');
            io_dump_json_entry(label, item, indent);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item) {
            g_autofree char *label = g_strdup_printf("[%zu]", i);
            io_dump_json_entry(label, item, indent);
        }
    } else if (json_is_string(v)) {
        printf("%s\n", json_string_value(v));
    } else if (json_is_integer(v)) {
        printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
    } else if (json_is_real(v)) {
        printf("%.17g\n", json_real_value(v));
    } else if (json_is_boolean(v)) {
        printf("%s\n", json_is_true(v) ? "true" : "false");
    } else {
        printf("null\n");
    }
}

/* Where qcow2 keeps the VM state: just past the guest range covered by
 * whole L2 tables.  Other formats have none. */
static int64_t io_vmstate_offset(BlockDriverState *bs, json_t *spec)
{
    int64_t cs = bdrv_get_cluster_size(bs);
    if (cs <= 0 || strcmp(bdrv_get_format_name(bs), "qcow2") != 0) {
        return 0;
    }
    json_t *data = json_object_get(spec, "data");
    int entry = json_is_true(json_object_get(data, "extended-l2")) ? 16 : 8;
    int64_t per_l2 = cs / entry * cs;
    return ROUND_UP(bdrv_getlength(bs), per_l2);
}

static int io_cmd_info(int argc, char **argv)
{
    BlockDriverState *bs = blk_bs(io.blk);
    char s1[64], s2[64];
    json_t *spec = bdrv_get_specific_info(bs);
    printf("format name: %s\n", bdrv_get_format_name(bs));
    io_fmt_size(MAX(bdrv_get_cluster_size(bs), 0), s1, sizeof(s1));
    io_fmt_size((double)io_vmstate_offset(bs, spec), s2, sizeof(s2));
    printf("cluster size: %s\n", s1);
    printf("vm state offset: %s\n", s2);
    json_t *data = json_object_get(spec, "data");
    if (data) {
        printf("Format specific information:\n");
        io_dump_json(data, 1);
    }
    json_decref(spec);
    return 0;
}

/* ---- open, close, quit, help ---- */

typedef struct IoOpenOpts {
    const char *fmt;
    const char *opts;           /* -o: "key=value,..." */
    int flags;
    bool writethrough;
} IoOpenOpts;

static void io_open_defaults(IoOpenOpts *o)
{
    /* qemu-io's defaults: read-write, discard=unmap, cache=writethrough. */
    *o = (IoOpenOpts){ .flags = BDRV_O_RDWR | BDRV_O_UNMAP,
                       .writethrough = true };
}

/* Handles the options main() and "open" share; false on a bad value. */
static bool io_open_option(IoOpenOpts *o, int c, const char *arg)
{
    switch (c) {
    case 'r': o->flags &= ~BDRV_O_RDWR; return true;
    case 'n':
        o->flags |= BDRV_O_NOCACHE;
        o->writethrough = false;
        return true;
    case 'U': o->flags |= BDRV_O_FORCE_SHARE; return true;
    case 'o': o->opts = arg; return true;
    case 't':
        if (!img_parse_cache_mode(arg, &o->flags, &o->writethrough)) {
            error_report("Invalid cache option: %s", arg);
            return false;
        }
        return true;
    case 'd':
        if (!strcmp(arg, "unmap") || !strcmp(arg, "on")) {
            o->flags |= BDRV_O_UNMAP;
        } else if (!strcmp(arg, "ignore") || !strcmp(arg, "off")) {
            o->flags &= ~BDRV_O_UNMAP;
        } else {
            error_report("Invalid discard option: %s", arg);
            return false;
        }
        return true;
    }
    return false;
}

static bool io_open(const char *filename, const IoOpenOpts *o)
{
    GError *err = NULL;
    BlockOpts *bo = bopts_new();
    if (o->opts && !bopts_parse(bo, o->opts, &err)) {
        bopts_free(bo);
    } else {
        if (o->fmt) {
            bopts_set(bo, "driver", o->fmt);
        }
        io.blk = blk_new_open(filename, bo, o->flags, &err);  /* takes bo */
    }
    if (!io.blk) {
        error_report("can't open device %s: %s", filename ? filename : "",
                     err->message);
        g_error_free(err);
        return false;
    }
    blk_set_enable_write_cache(io.blk, !o->writethrough);
    return true;
}

static void io_close(void)
{
    io_aio_wait();
    blk_unref(io.blk);
    io.blk = NULL;
}

static int io_cmd_open(int argc, char **argv)
{
    IoOpenOpts o;
    int c;
    io_open_defaults(&o);
    if (io.blk) {
        error_report("file open already, try 'help close'");
        return -EBUSY;
    }
    while ((c = getopt(argc, argv, "f:rnUo:t:d:")) != -1) {
        if (c == 'f') {
            o.fmt = optarg;
        } else if (c == '?' || !io_open_option(&o, c, optarg)) {
            return c == '?' ? io_usage("open") : -EINVAL;
        }
    }
    if (optind < argc - 1 || (optind == argc && !o.opts)) {
        return io_usage("open");
    }
    return io_open(optind < argc ? argv[optind] : NULL, &o) ? 0 : -EINVAL;
}

static int io_cmd_close(int argc, char **argv)
{
    io_close();
    return 0;
}

static int io_cmd_quit(int argc, char **argv)
{
    io.quit = true;
    return 0;
}

static int io_cmd_help(int argc, char **argv);

static const IoCmd io_cmds[] = {
    { "aio_flush", NULL, io_cmd_aio_flush, 0, 0, true, false, NULL,
      "waits for all outstanding aio requests", NULL },
    { "aio_read", NULL, io_cmd_aio_read, 2, -1, true, false,
      "[-Cqv] [-P pattern] off len [len..]",
      "asynchronously reads a number of bytes",
      " Starts reading len bytes at off without waiting for the data; the\n"
      " report is printed when the request completes.  Several lengths\n"
      " read into as many buffers, one after the other.  aio_flush waits\n"
      " for every request started so far.  A request that fails or does\n"
      " not match the pattern is reported but does not fail the command.\n"
      " -C, -- report statistics in a machine parsable format\n"
      " -P, -- verify that every byte read equals pattern\n"
      " -q, -- quiet mode, do not show I/O statistics\n"
      " -v, -- dump the data read to standard output\n" },
    { "aio_write", NULL, io_cmd_aio_write, 2, -1, true, true,
      "[-Cfquz] [-P pattern] off len [len..]",
      "asynchronously writes a number of bytes",
      " Starts writing len bytes at off, from a buffer filled with 0xcd\n"
      " unless -P says otherwise, without waiting; the report is printed\n"
      " on completion.  Several lengths write from as many buffers.\n"
      " aio_flush waits for every request started so far.\n"
      " -C, -- report statistics in a machine parsable format\n"
      " -f, -- use Force Unit Access semantics\n"
      " -P, -- fill the buffer with this byte\n"
      " -q, -- quiet mode, do not show I/O statistics\n"
      " -u, -- with -z, allow unmapping\n"
      " -z, -- write zeroes without a data buffer\n" },
    { "close", "c", io_cmd_close, 0, 0, true, false, NULL,
      "close the current open file", NULL },
    { "discard", NULL, io_cmd_discard, 2, -1, true, true, "[-Cq] off len",
      "discards a number of bytes at a specified offset",
      " Tells the image that len bytes at off are no longer needed; they\n"
      " may read back as zeroes afterwards.\n"
      " -C, -- report statistics in a machine parsable format\n"
      " -q, -- quiet mode, do not show I/O statistics\n" },
    { "flush", "f", io_cmd_flush, 0, 0, true, false, NULL,
      "flush all in-core file state to disk", NULL },
    { "help", "?", io_cmd_help, 0, 1, false, false, "[command]",
      "help for one or all commands", NULL },
    { "info", "i", io_cmd_info, 0, 0, true, false, NULL,
      "prints information about the current file", NULL },
    { "length", "l", io_cmd_length, 0, 0, true, false, NULL,
      "gets the length of the current file", NULL },
    { "map", NULL, io_cmd_map, 0, 0, true, false, NULL,
      "prints the allocated areas of a file", NULL },
    { "open", "o", io_cmd_open, 1, -1, false, false,
      "[-rnU] [-f fmt] [-t cache] [-d discard] [-o options] [path]",
      "open the file specified by path",
      " Opens an image for the other commands; only one can be open.\n"
      " -r, -- open read-only\n"
      " -n, -- bypass the host page cache, short for -t none\n"
      " -U, -- force shared permissions\n"
      " -f, -- image format (probed when omitted)\n"
      " -t, -- cache mode: none, writeback, writethrough, unsafe, directsync\n"
      " -d, -- discard mode: unmap or ignore\n"
      " -o, -- block driver options, key=value[,...]\n" },
    { "quit", "q", io_cmd_quit, 0, 0, false, false, NULL,
      "exit the program", NULL },
    { "read", "r", io_cmd_read, 2, -1, true, false,
      "[-Cqv] [-P pattern [-s off] [-l len]] off len",
      "reads a number of bytes at a specified offset",
      " Reads len bytes at off, for example 'read -v 512 1k' dumps the\n"
      " kilobyte that starts 512 bytes into the image.\n"
      " -C, -- report statistics in a machine parsable format\n"
      " -l, -- length of the verified range (only with -P)\n"
      " -P, -- verify that the data read equals pattern\n"
      " -q, -- quiet mode, do not show I/O statistics\n"
      " -s, -- start of the verified range in the buffer (only with -P)\n"
      " -v, -- dump the data read to standard output\n" },
    { "write", "w", io_cmd_write, 2, -1, true, true,
      "[-cCfnquz] [-P pattern | -s source_file] off len",
      "writes a number of bytes at a specified offset",
      " Writes len bytes at off from a buffer filled with 0xcd, for\n"
      " example 'write 512 1k'.\n"
      " -c, -- write compressed clusters (whole clusters only)\n"
      " -C, -- report statistics in a machine parsable format\n"
      " -f, -- use Force Unit Access semantics\n"
      " -n, -- with -z, fail rather than fall back to writing zeroes\n"
      " -P, -- fill the buffer with this byte\n"
      " -q, -- quiet mode, do not show I/O statistics\n"
      " -s, -- fill the buffer with the contents of source_file\n"
      " -u, -- with -z, allow unmapping\n"
      " -z, -- write zeroes without a data buffer\n" },
};

static const IoCmd *io_find_cmd(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(io_cmds); i++) {
        const IoCmd *c = &io_cmds[i];
        if (!strcmp(c->name, name) || (c->alias && !strcmp(c->alias, name))) {
            return c;
        }
    }
    return NULL;
}

static void io_print_cmd_line(const char *name, const IoCmd *c)
{
    printf("%s%s%s -- %s\n", name, c->args ? " " : "", c->args ? c->args : "",
           c->oneline);
}

static int io_usage(const char *name)
{
    const IoCmd *c = io_find_cmd(name);
    io_print_cmd_line(c->name, c);
    return -EINVAL;
}

static int io_cmd_help(int argc, char **argv)
{
    if (argc == 2) {
        const IoCmd *c = io_find_cmd(argv[1]);
        if (!c) {
            printf("command %s not found\n", argv[1]);
            return -EINVAL;
        }
        io_print_cmd_line(argv[1], c);
        if (c->help) {
            printf("\n%s\n", c->help);
        }
        return 0;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(io_cmds); i++) {
        io_print_cmd_line(io_cmds[i].name, &io_cmds[i]);
    }
    printf("\nUse 'help commandname' for extended help.\n");
    return 0;
}

/* ---- dispatch ---- */

/* The checks qemu-io makes before a command parses its arguments. */
static int io_check_cmd(const IoCmd *c, int argc, const char *name)
{
    int n = argc - 1;
    if (c->needs_file && !io.blk) {
        fprintf(stderr, "no file open, try 'help open'\n");
        return -EINVAL;
    }
    if (n >= c->argmin && (c->argmax < 0 || n <= c->argmax)) {
        if (c->writes && bdrv_is_read_only(blk_bs(io.blk))) {
            error_report("Block node is read-only");
            return -EPERM;
        }
        return 0;
    }
    if (c->argmax < 0) {
        fprintf(stderr, "bad argument count %d to %s, expected at least %d "
                "arguments\n", n, name, c->argmin);
    } else if (c->argmin == c->argmax) {
        fprintf(stderr, "bad argument count %d to %s, expected %d "
                "arguments\n", n, name, c->argmin);
    } else {
        fprintf(stderr, "bad argument count %d to %s, expected between %d "
                "and %d arguments\n", n, name, c->argmin, c->argmax);
    }
    return -EINVAL;
}

/* Runs one command line; returns its result (negative on failure). */
static int io_run_line(const char *line)
{
    g_auto(GStrv) argv = g_strsplit_set(line, " \t\n", -1);
    int argc = 0;
    /* Drop the empty words that runs of blanks leave behind. */
    for (int i = 0; argv[i]; i++) {
        if (*argv[i]) {
            argv[argc++] = argv[i];
        } else {
            g_free(argv[i]);
        }
    }
    argv[argc] = NULL;
    if (argc == 0) {
        return 0;
    }
    const IoCmd *c = io_find_cmd(argv[0]);
    if (!c) {
        fprintf(stderr, "command \"%s\" not found\n", argv[0]);
        return -EINVAL;
    }
    int ret = io_check_cmd(c, argc, argv[0]);
    if (ret == 0) {
        optind = 0;             /* restart getopt for this argv */
        ret = c->fn(argc, argv);
    }
    fflush(stdout);
    return ret;
}

/* Reads commands from stdin after a prompt; returns the last failure. */
static int io_interactive(void)
{
    int last = 0;
    char *line = NULL;
    size_t cap = 0;
    while (!io.quit) {
        printf("xblk-io> ");
        fflush(stdout);
        if (getline(&line, &cap, stdin) < 0) {
            break;
        }
        int ret = io_run_line(line);
        if (ret < 0) {
            last = ret;
        }
    }
    free(line);
    return last;
}

static int io_run_cmds(GPtrArray *cmds)
{
    int last = 0;
    for (guint i = 0; i < cmds->len && !io.quit; i++) {
        int ret = io_run_line(cmds->pdata[i]);
        if (ret < 0) {
            last = ret;
        }
    }
    return last;
}

/* ---- main ---- */

static void io_help(void)
{
    printf(
"Usage: xblk-io [OPTIONS]... [-c STRING]... [file]\n"
"Disk exerciser: runs qemu-io style commands on an image\n"
"\n"
"  -c, --cmd STRING     execute command with its arguments\n"
"                       from the given string\n"
"  -f, --format FMT     specifies the block driver to use\n"
"  -r, --read-only      open the image read-only\n"
"  -n, --nocache        disable host cache, short for -t none\n"
"  -t, --cache=MODE     use the given cache mode for the image\n"
"  -d, --discard=MODE   use the given discard mode for the image\n"
"  -o, --options=OPTS   block driver options, key=value[,...]\n"
"  -q, --quiet          do not show I/O statistics\n"
"  -U, --force-share    force shared permissions\n"
"  -h, --help           display this help and exit\n"
"  -V, --version        output version information and exit\n"
"\n"
"Without -c, commands are read from standard input.\n"
"See 'xblk-io -c help' for information on available commands.\n");
}

static const struct option io_longopts[] = {
    { "cmd", required_argument, NULL, 'c' },
    { "format", required_argument, NULL, 'f' },
    { "read-only", no_argument, NULL, 'r' },
    { "nocache", no_argument, NULL, 'n' },
    { "cache", required_argument, NULL, 't' },
    { "discard", required_argument, NULL, 'd' },
    { "options", required_argument, NULL, 'o' },
    { "quiet", no_argument, NULL, 'q' },
    { "force-share", no_argument, NULL, 'U' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

/* Parses the command line into o and cmds; returns an exit code to stop
 * with, or -1 to go on. */
static int io_parse_args(int argc, char **argv, IoOpenOpts *o,
                         GPtrArray *cmds)
{
    int c;
    while ((c = getopt_long(argc, argv, "+hVc:f:rnt:d:o:qU", io_longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'h': io_help(); return 0;
        case 'V':
            printf("xblk-io version " XBLK_VERSION "\n");
            return 0;
        case 'c': g_ptr_array_add(cmds, optarg); break;
        case 'f': o->fmt = optarg; break;
        case 'q': io.quiet = true; break;
        case '?': io_help(); return 1;
        default:
            if (!io_open_option(o, c, optarg)) {
                return 1;
            }
        }
    }
    if (argc - optind > 1) {
        io_help();
        return 1;
    }
    return -1;
}

int main(int argc, char **argv)
{
    IoOpenOpts o;
    g_autoptr(GPtrArray) cmds = g_ptr_array_new();
    g_set_prgname("xblk-io");
    io_open_defaults(&o);
    int code = io_parse_args(argc, argv, &o, cmds);
    if (code >= 0) {
        return code;
    }
    if (optind < argc && !io_open(argv[optind], &o)) {
        return 1;
    }
    int ret = cmds->len ? io_run_cmds(cmds) : io_interactive();
    if (io.blk) {
        io_close();
    }
    fflush(stdout);
    return ret < 0 ? 1 : 0;
}
