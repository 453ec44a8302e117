/*
 * console.c - the debug console at port 0xE9.  Every line the guest
 * prints starts with "xboxguest: " (added by the callers' format strings)
 * so tests can grep for them.  Output is port I/O only, no RAM buffer.
 */
#include "console.h"
#include "io.h"
#include "layout.h"
#include <stdarg.h>
#include <stdint.h>

void con_putc(char c)
{
    outb(PORT_DEBUGCON, (uint8_t)c);
}

void con_puts(const char *s)
{
    while (*s) {
        con_putc(*s++);
    }
}

/* Digits of v in base 10 or 16, right-aligned to width with pad.  64-bit
 * values are split into 32-bit halves for hex and divided by 10 with
 * 32-bit steps for decimal, so no libgcc division helper is needed. */
static void put_uint(uint64_t v, unsigned base, int width, char pad,
                     int upper)
{
    char buf[24];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        if (base == 16) {
            buf[n++] = digits[v & 15];
            v >>= 4;
        } else {
            /* v / 10 from 32-bit divisions of the two halves. */
            uint32_t hi = (uint32_t)(v >> 32), lo = (uint32_t)v;
            uint32_t qhi = hi / 10, rhi = hi % 10;
            uint64_t mid = ((uint64_t)rhi << 32) | lo;
            /* mid < 10 * 2^32: split again into 16-bit chunks. */
            uint32_t a = (uint32_t)(mid >> 16);     /* < 10 * 2^16 */
            uint32_t qa = a / 10, ra = a % 10;
            uint32_t b = (ra << 16) | (lo & 0xFFFF);
            uint32_t qb = b / 10, rb = b % 10;
            buf[n++] = digits[rb];
            v = ((uint64_t)qhi << 32) | ((uint64_t)qa << 16) | qb;
        }
    } while (v && n < (int)sizeof(buf));
    while (width-- > n) {
        con_putc(pad);
    }
    while (n) {
        con_putc(buf[--n]);
    }
}

/* Formats one conversion (fmt points at its letter). */
static void put_conv(char conv, int longs, int width, char pad, va_list *ap)
{
    switch (conv) {
    case 's': {
        const char *s = va_arg(*ap, const char *);
        con_puts(s ? s : "(null)");
        break;
    }
    case 'c':
        con_putc((char)va_arg(*ap, int));
        break;
    case 'd': {
        int64_t v = longs >= 2 ? va_arg(*ap, int64_t) : va_arg(*ap, int);
        if (v < 0) {
            con_putc('-');
            v = -v;
        }
        put_uint((uint64_t)v, 10, width, pad, 0);
        break;
    }
    case 'u':
    case 'x':
    case 'X': {
        uint64_t v = longs >= 2 ? va_arg(*ap, uint64_t)
                                : va_arg(*ap, unsigned);
        put_uint(v, conv == 'u' ? 10 : 16, width, pad, conv == 'X');
        break;
    }
    default:
        con_putc('%');
        con_putc(conv);
        break;
    }
}

void con_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt != '%') {
            con_putc(*fmt);
            continue;
        }
        fmt++;
        if (*fmt == '%') {
            con_putc('%');
            continue;
        }
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        if (!*fmt) {
            break;
        }
        put_conv(*fmt, longs, width, pad, &ap);
    }
    va_end(ap);
}
