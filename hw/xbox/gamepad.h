/*
 * gamepad.h - the gamepad registers (docs/machine.md, "Gamepad") and
 * -input-script.  The registers change only at vblank, so input is
 * deterministic per frame.  Runs on the device thread, except
 * gamepad_set_host_state(), which any thread may call.
 */
#ifndef XBLK_HW_XBOX_GAMEPAD_H
#define XBLK_HW_XBOX_GAMEPAD_H

#include <xblk/xblk.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define GAMEPAD_PORT_BASE 0xC000u
#define GAMEPAD_PORT_SIZE 0x10u

typedef struct GamepadState {
    uint16_t buttons;
    uint8_t left_trigger, right_trigger;
    int16_t lx, ly, rx, ry;
} GamepadState;

typedef struct Gamepad Gamepad;

Gamepad *gamepad_new(void);
void gamepad_free(Gamepad *pad);
/* Parses the whole script up front; errors name the line. */
bool gamepad_load_script(Gamepad *pad, const char *path, GError **errp);
/* Live input (the UI, later): takes effect at the next vblank. */
void gamepad_set_host_state(Gamepad *pad, const GamepadState *st);
/* The live input as last set (what the next vblank latches). */
void gamepad_get_host_state(Gamepad *pad, GamepadState *out);
/* Latch the state for frame (the script's lines up to it, else host). */
void gamepad_vblank(Gamepad *pad, uint64_t frame);
uint32_t gamepad_ioport_read(void *pad, uint32_t port, unsigned size);
void gamepad_ioport_write(void *pad, uint32_t port, uint32_t val,
                          unsigned size);

/* Save states (opaque: the Gamepad): the state latched for the current
 * frame.  Neither the script (configuration) nor the live host input
 * (what the player holds now) is part of a state. */
const XblkDeviceDesc *gamepad_vmstate(void);

#endif
