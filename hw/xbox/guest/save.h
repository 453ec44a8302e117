/*
 * save.h - game saves on the hard disk.  64 slots of 64 KiB, 1 MiB apart
 * from 256 MiB into the disk; save N goes to slot N % slots.  A save is
 * written by DMA and followed by FLUSH CACHE, in the background of the
 * frame loop (the game keeps running while the disk works).
 */
#ifndef GUEST_SAVE_H
#define GUEST_SAVE_H

#include "ata.h"
#include "game.h"
#include <stdbool.h>
#include <stdint.h>

#define SAVE_INTERVAL 180       /* frames between saves (3 s of game time) */

/* Sizes the save area for d (NULL or absent: saving off). */
void save_init(AtaDisk *d, uint64_t seed);
/* Reads every slot's first sector; copies the newest valid record's
 * state to *out and returns true if there is one. */
bool save_load_newest(GameState *out);
/* Starts a save of g if one is due at this frame and the disk is idle. */
void save_tick(const GameState *g);
/* Advances a save in flight once the disk interrupted; call whenever the
 * guest wakes up. */
void save_poll(void);
bool save_busy(void);
/* Whether to show the "saving" icon: for half a second from each save
 * point, and longer if the save is still running. */
bool save_indicator(const GameState *g);
/* Sleeps until the save in flight (if any) has finished. */
void save_drain(void);
uint32_t save_counter(void);

#endif
