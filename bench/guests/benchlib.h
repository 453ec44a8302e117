/*
 * benchlib.h - what the benchmark guests (cpubench, dmabench) share:
 * start-up on the reference guest's drivers, the seed word that carries
 * their parameters, the phase markers bench/run-machine-bench times from
 * the host, and power-off.
 *
 * Markers are whole lines on the debug console (port 0xE9), one per
 * event, so the host timestamps each line as it arrives:
 *   P KEY=VALUE ...      parameters of the run (before any phase)
 *   B PHASE N [UNIT]     phase PHASE starts; N units of work follow
 *   E PHASE              phase PHASE is over
 *   X message            the benchmark failed (then it powers off)
 *   D                    all phases done (a moment after the last "E";
 *                        then it powers off)
 * Anything else on the console is informational.
 */
#ifndef BENCH_GUEST_BENCHLIB_H
#define BENCH_GUEST_BENCHLIB_H

#include <stdint.h>

/* IDT, PIC; returns the machine's seed (the benchmark's parameters). */
uint64_t bench_start(const char *name);
void bench_begin(const char *phase, uint64_t n, const char *unit);
void bench_end(const char *phase);
void bench_fail(const char *why) __attribute__((noreturn));
void bench_done(void) __attribute__((noreturn));

#endif
