/*
 * vcpu-priority.c - lowers every thread of the process but the caller;
 * see vcpu-priority.h.
 *
 * Invariant: only other threads' nice values change, each at most once
 * per call, and never the caller's: the vCPU keeps the priority the
 * process started with.
 */
#include "hw/xbox/vcpu-priority.h"
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

int vcpu_priority_prefer_self(int steps)
{
    pid_t self = gettid();
    DIR *d = opendir("/proc/self/task");
    int lowered = 0;
    if (!d) {
        return -errno;
    }
    for (struct dirent *e; (e = readdir(d)); ) {
        pid_t tid = (pid_t)strtol(e->d_name, NULL, 10);
        if (tid <= 0 || tid == self) {
            continue;
        }
        errno = 0;
        int nice = getpriority(PRIO_PROCESS, tid);
        if (nice == -1 && errno) {
            continue;                   /* ended meanwhile */
        }
        int want = nice + steps > 19 ? 19 : nice + steps;
        lowered += want != nice && setpriority(PRIO_PROCESS, tid, want) == 0;
    }
    closedir(d);
    return lowered;
}
