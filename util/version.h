/*
 * version.h - the xblk release, reported by every program and by QMP.
 */
#ifndef XBLK_UTIL_VERSION_H
#define XBLK_UTIL_VERSION_H

#define XBLK_VERSION_STRING "0.1.0"

#endif
