/*
 * progress.c - see progress.h.
 */
#include "util/progress.h"
#include <stdio.h>

static bool progress_on;
static double progress_last = -1;

void progress_init(bool enabled)
{
    progress_on = enabled;
    progress_last = -1;
    if (enabled) {
        printf("    (0.00/100%%)\r");
        fflush(stdout);
    }
}

void progress_update(double done, double total)
{
    if (!progress_on || total <= 0) {
        return;
    }
    double pct = done * 100.0 / total;
    if (pct > 100) {
        pct = 100;
    }
    if (pct - progress_last < 1.0 && pct < 100) {
        return;
    }
    progress_last = pct;
    printf("    (%3.2f/100%%)\r", pct);
    fflush(stdout);
}

void progress_end(void)
{
    if (progress_on) {
        printf("    (100.00/100%%)\r\n");
        fflush(stdout);
        progress_on = false;
    }
}
