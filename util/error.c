/*
 * error.c - GError helpers with QMP error classes.  See error.h.
 */
#include "util/error.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

GQuark xblk_error_quark(void)
{
    return g_quark_from_static_string("xblk-error-quark");
}

const char *error_class_name(ErrorClass cls)
{
    switch (cls) {
    case ERROR_CLASS_COMMAND_NOT_FOUND: return "CommandNotFound";
    case ERROR_CLASS_DEVICE_NOT_ACTIVE: return "DeviceNotActive";
    case ERROR_CLASS_DEVICE_NOT_FOUND: return "DeviceNotFound";
    case ERROR_CLASS_KVM_MISSING_CAP: return "KVMMissingCap";
    default: return "GenericError";
    }
}

static void error_setv(GError **errp, ErrorClass cls, const char *fmt,
                       va_list ap)
{
    if (!errp) {
        return;
    }
    g_assert(*errp == NULL);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    *errp = g_error_new_literal(XBLK_ERROR, cls, msg);
}

void error_setg(GError **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(errp, ERROR_CLASS_GENERIC_ERROR, fmt, ap);
    va_end(ap);
}

void error_set(GError **errp, ErrorClass cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(errp, cls, fmt, ap);
    va_end(ap);
}

void error_setg_errno(GError **errp, int errnum, const char *fmt, ...)
{
    if (!errp) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(errp, "%s: %s", msg, g_strerror(errnum < 0 ? -errnum : errnum));
}

void error_prepend(GError **errp, const char *fmt, ...)
{
    if (!errp || !*errp) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    char *msg = g_strconcat(prefix, (*errp)->message, NULL);
    g_free((*errp)->message);
    (*errp)->message = msg;
}

void error_propagate(GError **errp, GError *err)
{
    if (!err) {
        return;
    }
    if (errp && !*errp) {
        *errp = err;
    } else {
        g_error_free(err);
    }
}

static void report(const char *kind, const char *fmt, va_list ap)
{
    const char *prg = g_get_prgname();
    if (prg) {
        fprintf(stderr, "%s: ", prg);
    }
    fputs(kind, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void error_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("", fmt, ap);
    va_end(ap);
}

void warn_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("warning: ", fmt, ap);
    va_end(ap);
}

void info_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("info: ", fmt, ap);
    va_end(ap);
}

void error_report_err(GError *err)
{
    error_report("%s", err->message);
    g_error_free(err);
}
