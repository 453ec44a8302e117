/*
 * progress.h - a terminal progress bar in qemu-img's style
 * ("    (42.00/100%)\r"), printed only when enabled and stdout or stderr
 * is a terminal or the caller forces it (-p).
 */
#ifndef XBLK_UTIL_PROGRESS_H
#define XBLK_UTIL_PROGRESS_H

#include <stdbool.h>

void progress_init(bool enabled);
/* done/total in any unit; prints at most every 1% */
void progress_update(double done, double total);
void progress_end(void);

#endif
