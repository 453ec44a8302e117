/*
 * pit.h - the 8254 programmable interval timer at ports 0x40-0x43,
 * clocked at 1,193,182 Hz of *virtual* time (vclock.h).  Channel 0's OUT
 * drives IRQ0 through a callback; channels 1 and 2 count but are wired to
 * nothing (their gates are high, as channel 0's).
 *
 * Implemented from the 8254 data sheet: control words (counter select,
 * read/write LSB, MSB or LSB-then-MSB, mode, BCD), counter latch, the
 * read-back command (count and status), modes 0 (interrupt on terminal
 * count), 2 (rate generator), 3 (square wave) and 4 (software strobe).
 * Modes 1 and 5 start on a gate edge, which never comes: their count is
 * held and OUT stays high.  A count takes effect on the CLK after it is
 * written; a new count in modes 2 and 3 at the end of the current period.
 *
 * Counters are computed from the virtual time, not stepped: the count at
 * tick T follows from the tick the count was loaded at.  A vclock timer
 * fires at each change of channel 0's OUT.
 *
 * Threads: device thread only.  Callers: machine.c, tests.
 */
#ifndef XBLK_HW_XBOX_PIT_H
#define XBLK_HW_XBOX_PIT_H

#include "hw/xbox/vclock.h"
#include <stdbool.h>
#include <stdint.h>

#define PIT_PORT_BASE   0x40u
#define PIT_FREQ_HZ     1193182u
#define PIT_IRQ         0

typedef struct Pit Pit;
/* OUT of channel 0 changed to level. */
typedef void PitOutFn(void *opaque, bool level);

Pit *pit_new(VClock *vc, PitOutFn *out0, void *opaque);
void pit_free(Pit *pit);
/* Power-on: every counter in mode 0 without a count, OUT low; the
 * clock's tick 0 is now. */
void pit_reset(Pit *pit);
/* Ports 0x40-0x43 (DevReadFn/DevWriteFn shaped, byte accesses). */
uint32_t pit_ioport_read(void *pit, uint32_t port, unsigned size);
void pit_ioport_write(void *pit, uint32_t port, uint32_t val, unsigned size);

/* ns since reset <-> PIT ticks (floor, and the first ns of a tick). */
int64_t pit_ticks_at(int64_t ns);
int64_t pit_tick_start_ns(int64_t tick);

/* Save states (opaque: the Pit).  Times are kept relative to the clock;
 * loading does not call the OUT callback (the PIC's section has the
 * line). */
const XblkDeviceDesc *pit_vmstate(void);

#endif
