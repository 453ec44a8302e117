/*
 * console.h - text output on the debug console (port 0xE9): boot
 * messages, drive identification, save notices and errors.
 */
#ifndef GUEST_CONSOLE_H
#define GUEST_CONSOLE_H

void con_putc(char c);
void con_puts(const char *s);
/* A small printf: %s %c %d %u %x %X with an optional zero/width (%08x),
 * and %llu/%llx for 64-bit values. */
void con_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
