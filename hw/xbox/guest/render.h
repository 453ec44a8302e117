/*
 * render.h - turns the level and the game state into GPU commands: the
 * level once into a background buffer, then per frame one blit of that
 * background, one blit per actor, the score, and a flip.
 */
#ifndef GUEST_RENDER_H
#define GUEST_RENDER_H

#include "assets.h"
#include "game.h"
#include <stdbool.h>

void render_background(const Assets *a);
/* Draws frame into the back buffer and flips to it. */
void render_frame(const Assets *a, const GameState *g, bool saving);

#endif
