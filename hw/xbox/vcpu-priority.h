/*
 * vcpu-priority.h - a paced vCPU first: the rest of the process yields
 * the CPU to it.
 *
 * A paced machine (realtime=on) must finish each frame's work before its
 * vblank; on a small host the window's renderer (Mesa's llvmpipe threads
 * draw in software), a save state's streaming and the main loop compete
 * with it for the same cores, and the scheduler's wake-up latency then
 * lands in the frame.  An unprivileged process cannot raise a thread's
 * priority, but it may lower its own threads': every thread but the
 * vCPU goes VCPU_PRIORITY_NICE_STEPS nice steps down, and threads they
 * create later inherit that.  The vCPU uses a few percent of a core, so
 * the others lose nothing in practice; they only wait when the vCPU has
 * work (docs/machine.md, "Pacing").
 *
 * Linux: per-thread nice values (setpriority on a thread id), the
 * process's threads listed in /proc/self/task.
 */
#ifndef XBLK_HW_XBOX_VCPU_PRIORITY_H
#define XBLK_HW_XBOX_VCPU_PRIORITY_H

#define VCPU_PRIORITY_NICE_STEPS 10

/* On the vCPU thread: every other thread of the process `steps` nice
 * steps lower than it is (at most 19).  Returns how many threads were
 * lowered, or -errno if the thread list cannot be read; a thread that
 * ended meanwhile is skipped. */
int vcpu_priority_prefer_self(int steps);

#endif
