/*
 * guest-path.h - where the built guests are: the test guests
 * (tests/hw/xbox/guests.mk) in $XBLK_BUILD/tests/hw/xbox/guests/NAME and
 * anything else of the build (the reference guest, its disc) under
 * $XBLK_BUILD, XBLK_BUILD defaulting to "build" (the test runner sets
 * it).  Header-only, for the tests that run the machine.
 */
#ifndef XBLK_TESTS_HW_XBOX_GUEST_PATH_H
#define XBLK_TESTS_HW_XBOX_GUEST_PATH_H

#include <glib.h>

/* The path of guest file name (e.g. "loop.elf"); fails the test with a
 * clear message if it was not built. */
static inline char *test_guest_path(const char *name)
{
    const char *build = g_getenv("XBLK_BUILD");
    char *path = g_build_filename(build && *build ? build : "build",
                                  "tests", "hw", "xbox", "guests", name,
                                  NULL);
    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_error("test guest %s is missing: run make (tests/hw/xbox/"
                "guests.mk builds it)", path);
    }
    return path;
}

/* The path of rel under the build folder (e.g. "guest/xboxguest.elf");
 * fails the test with a clear message if it was not built. */
static inline char *test_build_path(const char *rel)
{
    const char *build = g_getenv("XBLK_BUILD");
    char *path = g_build_filename(build && *build ? build : "build", rel,
                                  NULL);
    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_error("%s is missing: run make", path);
    }
    return path;
}

#endif
