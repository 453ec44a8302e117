/*
 * error.c - the machine layer's error domain and helpers; see error.h.
 */
#include "hw/error.h"
#include <string.h>

G_DEFINE_QUARK(xblk-hw-error-quark, hw_error)

static void hw_error_setv(GError **errp, const char *suffix,
                          const char *fmt, va_list ap)
{
    if (!errp) {
        return;
    }
    /* Setting an error twice loses the first: a bug in the caller (GLib
     * would only warn). */
    g_assert(*errp == NULL);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    *errp = suffix ? g_error_new(HW_ERROR, HW_ERROR_FAILED, "%s: %s", msg,
                                 suffix)
                   : g_error_new_literal(HW_ERROR, HW_ERROR_FAILED, msg);
}

void hw_error_set(GError **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hw_error_setv(errp, NULL, fmt, ap);
    va_end(ap);
}

void hw_error_set_errno(GError **errp, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hw_error_setv(errp, g_strerror(errnum < 0 ? -errnum : errnum), fmt, ap);
    va_end(ap);
}

void hw_error_to_xblk(XblkError **err, XblkErrorCode code, GError *gerr)
{
    xblk_error_set(err, code, "%s",
                   gerr ? gerr->message : "failed (no reason given)");
    if (gerr) {
        g_error_free(gerr);
    }
}
