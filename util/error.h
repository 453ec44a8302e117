/*
 * error.h - error reporting for all of xblk.
 *
 * Errors travel as GError through `GError **errp` parameters (NULL means
 * "caller does not care").  The domain is always XBLK_ERROR; the code is a
 * QMP error class so that the monitor can answer with QEMU's class names.
 * Functions that fail set *errp exactly once and return a failure value;
 * they never print.  Only front ends (tools, the monitor) report.
 */
#ifndef XBLK_UTIL_ERROR_H
#define XBLK_UTIL_ERROR_H

#include <glib.h>
#include <stdbool.h>

#define XBLK_ERROR xblk_error_quark()
GQuark xblk_error_quark(void);

/* QMP error classes (QEMU's names, see error_class_name()). */
typedef enum {
    ERROR_CLASS_GENERIC_ERROR = 0,
    ERROR_CLASS_COMMAND_NOT_FOUND,
    ERROR_CLASS_DEVICE_NOT_ACTIVE,
    ERROR_CLASS_DEVICE_NOT_FOUND,
    ERROR_CLASS_KVM_MISSING_CAP,
} ErrorClass;

const char *error_class_name(ErrorClass cls);

void error_setg(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void error_set(GError **errp, ErrorClass cls, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* Appends ": <strerror(errnum)>" to the message. errnum may be negative. */
void error_setg_errno(GError **errp, int errnum, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* Prefixes the message of an error already set (no-op when errp is NULL). */
void error_prepend(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Moves err into *errp (or frees it when errp is NULL or already set). */
void error_propagate(GError **errp, GError *err);
/* Prints "<prgname>: <message>" on stderr and frees err. */
void error_report_err(GError *err);
void error_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* "PROGRAM: warning: MESSAGE" on stderr, as QEMU's warn_report. */
void warn_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* "PROGRAM: info: MESSAGE", as QEMU's info_report. */
void info_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

#endif
