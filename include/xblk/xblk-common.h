/*
 * xblk-common.h - what every part of libxblk's API shares: the export
 * macro, the version, errors.  Include <xblk/xblk.h>, not this file.
 *
 * ABI policy: libxblk.so.0 keeps its ABI for every 0.x release.  Handles
 * are opaque; every struct a host fills in starts with `size`, which the
 * host sets to sizeof the struct it was compiled with, so that later
 * releases may append members and still accept the older, shorter struct
 * (members past `size` take their documented defaults).  Nothing else is
 * exported: every symbol of the library starts with xblk_.
 *
 * Threads: the functions of this file may be called from any thread.
 */
#ifndef XBLK_COMMON_H
#define XBLK_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(XBLK_BUILDING_LIBRARY)
#define XBLK_API __attribute__((visibility("default")))
#else
#define XBLK_API
#endif

/* The version these headers describe; xblk_version() is the library's. */
#define XBLK_VERSION_MAJOR 0
#define XBLK_VERSION_MINOR 1
#define XBLK_VERSION_MICRO 0
#define XBLK_MAKE_VERSION(major, minor, micro) \
    (((major) << 16) | ((minor) << 8) | (micro))
#define XBLK_VERSION_NUMBER \
    XBLK_MAKE_VERSION(XBLK_VERSION_MAJOR, XBLK_VERSION_MINOR, \
                      XBLK_VERSION_MICRO)

/* The library's version as XBLK_MAKE_VERSION(major, minor, micro). */
XBLK_API unsigned xblk_version(void);
/* The same as "major.minor.micro"; static storage. */
XBLK_API const char *xblk_version_string(void);

/*
 * Errors.  A call that can fail takes XblkError **err as its last
 * argument: on failure it returns false / NULL / a negative value and,
 * unless err is NULL, stores a new error there that the host frees with
 * xblk_error_free().  *err must be NULL on entry.  The library never
 * prints an error and never exits the process.
 */
typedef struct XblkError XblkError;

typedef enum XblkErrorCode {
    XBLK_ERROR_FAILED = 1,      /* anything not listed below */
    XBLK_ERROR_INVALID,         /* a bad argument or option */
    XBLK_ERROR_NOT_FOUND,       /* no such disk, snapshot, file */
    XBLK_ERROR_EXISTS,          /* the name is taken */
    XBLK_ERROR_BUSY,            /* in use, or another operation runs */
    XBLK_ERROR_IO,              /* the disk or file failed */
    XBLK_ERROR_NO_SPACE,        /* the host ran out of space */
    XBLK_ERROR_UNSUPPORTED,     /* this image or driver cannot do it */
} XblkErrorCode;

XBLK_API XblkErrorCode xblk_error_code(const XblkError *err);
/* One line, no trailing newline; valid until xblk_error_free(). */
XBLK_API const char *xblk_error_message(const XblkError *err);
/* NULL is accepted. */
XBLK_API void xblk_error_free(XblkError *err);
/* For the host's own callbacks that report through an XblkError (the
 * device hooks of xblk-state.h): stores a new error in *err unless err
 * is NULL or *err is set already.  fmt is printf's. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
XBLK_API void xblk_error_set(XblkError **err, XblkErrorCode code,
                             const char *fmt, ...);

#ifdef __cplusplus
}
#endif

#endif
