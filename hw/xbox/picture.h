/*
 * picture.h - pictures of the console's screen for the host: PNG
 * encoding (libpng, into memory) and the half-size thumbnail a save state
 * keeps for the menu.  Pixels are XRGB8888 in host order, row after row.
 * No state; any thread.  Callers: screendump (monitor/), save states
 * (hw/xbox/machine-savestate.c), the front end.
 */
#ifndef XBLK_HW_XBOX_PICTURE_H
#define XBLK_HW_XBOX_PICTURE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* A save state's thumbnail: the 640x480 screen halved. */
#define PICTURE_THUMB_WIDTH     320
#define PICTURE_THUMB_HEIGHT    240

/* An 8-bit RGB PNG of w x h pixels; NULL with *errp set if libpng fails. */
GBytes *picture_png_encode(const uint32_t *pixels, int w, int h,
                           GError **errp);
/*
 * Halves src (w x h pixels, pitch bytes per row, w and h even) into dst
 * (w/2 x h/2): each output pixel is the mean of its 2x2 block.  About
 * 0.5 ms for 640x480 here: not for a pause.
 */
void picture_halve(const uint8_t *src, uint32_t pitch, int w, int h,
                   uint32_t *dst);

#endif
