/*
 * error.h - errors of the machine layer (hw/).
 *
 * hw/ is an embedder of libxblk: it reaches the engine only through
 * include/xblk/, so it does not use the engine's error helpers
 * (util/error.h).  Two kinds of error cross its functions:
 *   - inside hw/ and towards the host program: a GError in the domain
 *     HW_ERROR, code HW_ERROR_FAILED (the monitor answers any domain but
 *     the engine's with QMP's GenericError, as before).  Set it with
 *     hw_error_set() / hw_error_set_errno(); add context with GLib's
 *     g_prefix_error() or g_propagate_prefixed_error().
 *   - at the device tables' hooks (xblk-state.h): an XblkError set with
 *     xblk_error_set(); hw_error_to_xblk() moves a GError there.
 *
 * Like the engine's: a function that fails sets *errp once (NULL means
 * the caller does not care) and returns a failure value; nothing here
 * prints.
 */
#ifndef XBLK_HW_ERROR_H
#define XBLK_HW_ERROR_H

#include <glib.h>
#include <xblk/xblk.h>

#define HW_ERROR hw_error_quark()
GQuark hw_error_quark(void);

typedef enum {
    HW_ERROR_FAILED = 0,        /* the only code: callers read the text */
} HwErrorCode;

void hw_error_set(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Appends ": <strerror(errnum)>" (errnum may be negative: -errno). */
void hw_error_set_errno(GError **errp, int errnum, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* For device-table hooks: moves gerr (freed; NULL: a generic text) into
 * *err with code. */
void hw_error_to_xblk(XblkError **err, XblkErrorCode code, GError *gerr);

#endif
