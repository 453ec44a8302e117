/*
 * cutils.c - size parsing and formatting.  See cutils.h.
 */
#include "util/cutils.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool parse_size(const char *str, uint64_t default_mult, uint64_t *out)
{
    if (!str) {
        return false;
    }
    /* strtoull skips blanks and then negates a '-': refuse both. */
    const char *p = str;
    while (g_ascii_isspace(*p)) {
        p++;
    }
    if (!*p || *p == '-') {
        return false;
    }
    char *end;
    errno = 0;
    /* Integers parse exactly; a fraction needs a unit to make sense. */
    /* Decimal as in qemu-img ("010" is ten), hex only with "0x". */
    int base = p[0] == '0' && (p[1] == 'x' || p[1] == 'X') ? 16 : 10;
    uint64_t ival = strtoull(str, &end, base);
    double fval = 0;
    bool fractional = false;
    if (*end == '.') {
        fval = strtod(str, &end);
        fractional = true;
    }
    if (errno || end == str) {
        return false;
    }
    uint64_t mult = default_mult;
    if (*end) {
        switch (g_ascii_tolower(*end)) {
        case 'b': mult = 1; break;
        case 'k': mult = 1ull << 10; break;
        case 'm': mult = 1ull << 20; break;
        case 'g': mult = 1ull << 30; break;
        case 't': mult = 1ull << 40; break;
        case 'p': mult = 1ull << 50; break;
        case 'e': mult = 1ull << 60; break;
        default: return false;
        }
        end++;
        if (*end) {
            return false;
        }
    }
    if (fractional) {
        double v = fval * (double)mult;
        if (v < 0 || v >= 18446744073709551616.0 || v != floor(v)) {
            return false;
        }
        *out = (uint64_t)v;
        return true;
    }
    if (mult && ival > UINT64_MAX / mult) {
        return false;
    }
    *out = ival * mult;
    return true;
}

char *size_to_str(uint64_t bytes)
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB",
                                   "EiB" };
    int i = 0;
    double v = (double)bytes;
    /* Switch unit once the value would need four integer digits. */
    while (v >= 1000 && i < 6) {
        v /= 1024;
        i++;
    }
    if (i == 0) {
        return g_strdup_printf("%" G_GUINT64_FORMAT " B", bytes);
    }
    return g_strdup_printf("%.3g %s", v, units[i]);
}

int fsync_parent_dir(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int ret = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return ret;
}
