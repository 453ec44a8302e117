/*
 * error.c - XblkError and the version calls (include/xblk/xblk-common.h).
 * An XblkError owns its message; the engine's GErrors are translated
 * once, at the API boundary, so no GLib type reaches the host.
 */
#include "api/internal.h"
#include "util/error.h"
#include "util/version.h"
#include <errno.h>
#include <string.h>

G_STATIC_ASSERT(XBLK_VERSION_NUMBER == XBLK_MAKE_VERSION(0, 1, 0));

unsigned xblk_version(void)
{
    return XBLK_VERSION_NUMBER;
}

const char *xblk_version_string(void)
{
    return XBLK_VERSION_STRING;
}

XblkErrorCode xblk_error_code(const XblkError *err)
{
    return err ? err->code : XBLK_ERROR_INVALID;
}

const char *xblk_error_message(const XblkError *err)
{
    return err ? err->message : "no error";
}

void xblk_error_free(XblkError *err)
{
    if (err) {
        g_free(err->message);
        g_free(err);
    }
}

static void error_store(XblkError **err, XblkErrorCode code, char *message)
{
    if (!err || *err) {
        g_free(message);
        return;
    }
    *err = g_new0(XblkError, 1);
    (*err)->code = code;
    (*err)->message = message;
}

void xblk_api_error(XblkError **err, XblkErrorCode code, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_store(err, code, msg);
}

void xblk_error_set(XblkError **err, XblkErrorCode code, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (code < XBLK_ERROR_FAILED || code > XBLK_ERROR_UNSUPPORTED) {
        code = XBLK_ERROR_FAILED;
    }
    error_store(err, code, msg);
}

/* A host's XblkError on its way through the engine keeps its code: the
 * GError carries it in a domain of its own (prefixes added on the way
 * keep domain and code). */
G_DEFINE_QUARK(xblk-api-host-error-quark, api_host_error)

void xblk_api_error_to_gerror(GError **errp, XblkError *err)
{
    if (err) {
        g_set_error(errp, api_host_error_quark(), err->code, "%s",
                    err->message);
        xblk_error_free(err);
    } else {
        error_setg(errp, "failed (the host gave no reason)");
    }
}

static bool ends_with_errno(const char *msg, int errnum)
{
    return g_str_has_suffix(msg, g_strerror(errnum));
}

/* The engine's errors carry a QMP class and, for system errors, the
 * strerror() text at the end (error_setg_errno). */
static XblkErrorCode code_of(const GError *gerr)
{
    const char *m = gerr->message;
    if (gerr->domain == api_host_error_quark()) {
        return (XblkErrorCode)gerr->code;
    }
    if (gerr->code == ERROR_CLASS_DEVICE_NOT_FOUND ||
        ends_with_errno(m, ENOENT) || strstr(m, "does not exist") ||
        strstr(m, "has no VM state")) {
        return XBLK_ERROR_NOT_FOUND;
    }
    if (ends_with_errno(m, ENOSPC) || ends_with_errno(m, EDQUOT)) {
        return XBLK_ERROR_NO_SPACE;
    }
    if (ends_with_errno(m, EIO)) {
        return XBLK_ERROR_IO;
    }
    if (ends_with_errno(m, EEXIST) || strstr(m, "already exists")) {
        return XBLK_ERROR_EXISTS;
    }
    if (ends_with_errno(m, EBUSY) || strstr(m, "is busy") ||
        strstr(m, "in use")) {
        return XBLK_ERROR_BUSY;
    }
    if (ends_with_errno(m, ENOTSUP) || strstr(m, "does not support")) {
        return XBLK_ERROR_UNSUPPORTED;
    }
    return XBLK_ERROR_FAILED;
}

void xblk_api_error_from(XblkError **err, GError *gerr)
{
    if (!gerr) {
        xblk_api_error(err, XBLK_ERROR_FAILED, "unknown failure");
        return;
    }
    error_store(err, code_of(gerr), g_strdup(gerr->message));
    g_error_free(gerr);
}
