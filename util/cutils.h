/*
 * cutils.h - small helpers shared by the tools: size parsing with k/M/G/T
 * suffixes (as qemu-img and qemu-io accept), human-readable sizes, byte
 * order helpers and alignment macros.
 */
#ifndef XBLK_UTIL_CUTILS_H
#define XBLK_UTIL_CUTILS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define ROUND_UP(n, d) ((((n) + (d) - 1) / (d)) * (d))
#define ROUND_DOWN(n, d) (((n) / (d)) * (d))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define IS_ALIGNED(n, a) (((n) & ((a) - 1)) == 0)

/*
 * Parses "512", "64k", "1.5M", "2G" (binary units; b/B for bytes).
 * default_suffix applies when no suffix is given (1 for bytes).
 * Returns false on syntax error or overflow.
 */
bool parse_size(const char *str, uint64_t default_mult, uint64_t *out);
/* "1 GiB", "196 KiB", "512 B": qemu-img's style (3 significant digits). */
char *size_to_str(uint64_t bytes);

/* fsync of the folder that holds path, so that a name made or changed
 * there (create, rename, unlink) is durable: 0 or -errno.  Blocking:
 * from a worker (worker_pool_run), never on the main loop. */
int fsync_parent_dir(const char *path);

/* CLOCK_MONOTONIC in nanoseconds, for measuring short intervals. */
static inline int64_t get_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline uint16_t be16_read(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] << 8 | b[1]);
}
static inline uint32_t be32_read(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
           b[3];
}
static inline uint64_t be64_read(const void *p)
{
    return (uint64_t)be32_read(p) << 32 | be32_read((const uint8_t *)p + 4);
}
static inline void be16_write(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = v >> 8;
    b[1] = v;
}
static inline void be32_write(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = v >> 24;
    b[1] = v >> 16;
    b[2] = v >> 8;
    b[3] = v;
}
static inline void be64_write(void *p, uint64_t v)
{
    be32_write(p, v >> 32);
    be32_write((uint8_t *)p + 4, (uint32_t)v);
}

#endif
