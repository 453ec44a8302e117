/*
 * library.h - the player's save states of the console machine: what the
 * hotkeys and the save-state menu act on (docs/ui.md).  Over the
 * machine's save states (monitor/host/machine-state.h: internal qcow2
 * snapshots with the .xss stream) it keeps what a player expects of an
 * emulator front end:
 *
 *  - names: each state has a tag on the disks (generated, unique, never
 *    shown) and a display name the player may rename;
 *  - slots: F5..F8 bound per disc title (not globally), surviving a
 *    restart; saving to a bound slot replaces its state and keeps the
 *    replaced one as a hidden backup (undo save);
 *  - quick save (a new state named with the time), load newest of this
 *    title, undo load (a hidden state saved just before each load), undo
 *    save (the backup comes back);
 *  - resume: a hidden per-title state saved on exit, offered on start;
 *  - safety: how much play and how many disk writes a load would roll
 *    back (a persistent dirty bitmap on the hard disk started at each
 *    save), and whether a state was taken with another disc.
 *
 * Its index (display names, slots per title, backups, the undo states) is
 * a GKeyFile in the config folder, written atomically.  Entries whose tag
 * is on no disk any more are dropped when the list is read.
 *
 * Threads: main loop only.  Operations that save or load are
 * asynchronous - they return at once (false with *errp when refused:
 * busy, unbound slot, nothing to undo) and call done on the main loop
 * when over - so the vCPU never waits for the UI and the UI never waits
 * for the disk.  One operation at a time.
 */
#ifndef XBLK_UI_LIBRARY_H
#define XBLK_UI_LIBRARY_H

#include "hw/xbox/machine.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define UI_LIBRARY_SLOTS 4

typedef struct UiLibrary UiLibrary;

typedef struct UiStateEntry {
    char *tag;                  /* on the disks; never shown */
    char *name;                 /* the player's name for it */
    char *title;                /* the disc's title when saved, or NULL */
    char *disc_path;            /* the disc inserted then, or NULL */
    int64_t created;            /* seconds since the epoch */
    uint64_t frame;             /* frame at the save */
    uint64_t size;              /* bytes of its VM state on disk */
    GBytes *thumbnail_png;      /* 320x240 PNG, or NULL */
    int slot;                   /* 1..4 if bound for its title, else 0 */
} UiStateEntry;

/* What an operation ended with: ok, and the message for the screen
 * ("Saved 'Slot 2' · pause 0.4 ms", "Loaded 'Boss' (frame 18,230)", or
 * the error with its reason). */
typedef void UiLibraryDoneFn(void *opaque, bool ok, const char *message);
/* Progress of a long operation (bytes of the stream). */
typedef void UiLibraryProgressFn(void *opaque, uint64_t done,
                                 uint64_t total);

/* config_dir: where the index lives (g_get_user_config_dir()/xblk). */
UiLibrary *ui_library_new(XboxMachine *m, const char *config_dir,
                          GError **errp);
void ui_library_free(UiLibrary *lib);
void ui_library_set_progress(UiLibrary *lib, UiLibraryProgressFn *fn,
                             void *opaque);

/* The inserted disc's title ("" without a disc). */
const char *ui_library_title(UiLibrary *lib);
bool ui_library_busy(UiLibrary *lib);

/* The visible states (no backups, undo or resume states), newest first,
 * this title's only if asked; search: case-insensitive substring of name
 * or title (NULL or "": all).  Entries are borrowed until the next
 * change.  Listing reads the metadata once per state and keeps it. */
GPtrArray *ui_library_list(UiLibrary *lib, bool this_title_only,
                           const char *search);
const UiStateEntry *ui_library_lookup(UiLibrary *lib, const char *tag);
/* The state bound to slot (1..4) for this title, or NULL. */
const UiStateEntry *ui_library_slot(UiLibrary *lib, int slot);

/* ---- the hotkeys' operations (asynchronous) ---- */
bool ui_library_save_slot(UiLibrary *lib, int slot, UiLibraryDoneFn *done,
                          void *opaque, GError **errp);
bool ui_library_load_slot(UiLibrary *lib, int slot, UiLibraryDoneFn *done,
                          void *opaque, GError **errp);
bool ui_library_quick_save(UiLibrary *lib, UiLibraryDoneFn *done,
                           void *opaque, GError **errp);
bool ui_library_load_newest(UiLibrary *lib, UiLibraryDoneFn *done,
                            void *opaque, GError **errp);
bool ui_library_undo_load(UiLibrary *lib, UiLibraryDoneFn *done,
                          void *opaque, GError **errp);
bool ui_library_undo_save(UiLibrary *lib, UiLibraryDoneFn *done,
                          void *opaque, GError **errp);

/* ---- the menu's operations ---- */
bool ui_library_load(UiLibrary *lib, const char *tag, UiLibraryDoneFn *done,
                     void *opaque, GError **errp);
/* Saves a new state over tag's (which becomes the backup). */
bool ui_library_save_over(UiLibrary *lib, const char *tag,
                          UiLibraryDoneFn *done, void *opaque,
                          GError **errp);
bool ui_library_delete(UiLibrary *lib, const char *tag,
                       UiLibraryDoneFn *done, void *opaque, GError **errp);
/* Synchronous (the index only): any UTF-8 name of 1..64 characters. */
bool ui_library_rename(UiLibrary *lib, const char *tag, const char *name,
                       GError **errp);
/* Binds tag to slot 1..4 of its title; slot 0 unbinds it. */
bool ui_library_bind(UiLibrary *lib, const char *tag, int slot,
                     GError **errp);

/* ---- safety ---- */
typedef struct UiRollback {
    bool known;                 /* false: no measure (e.g. after restart
                                 * without the bitmap) */
    uint64_t frames;            /* play since the state (frames) */
    uint64_t disk_bytes;        /* hard-disk bytes written since it */
} UiRollback;
/* What loading tag would undo. */
void ui_library_rollback(UiLibrary *lib, const char *tag, UiRollback *out);
/* "Loading 'Slot 1' undoes 3 minutes of play and in-game saves made
 * since", or NULL when nothing worth a question would be lost. */
char *ui_library_rollback_warning(UiLibrary *lib, const char *tag);
/* True when tag was saved with a disc other than the inserted one
 * (*state_disc: that disc's path, owned by the caller). */
bool ui_library_disc_mismatch(UiLibrary *lib, const char *tag,
                              char **state_disc);

/* ---- resume ---- */
/* Saves this title's hidden resume state (quitting). */
bool ui_library_save_resume(UiLibrary *lib, UiLibraryDoneFn *done,
                            void *opaque, GError **errp);
bool ui_library_has_resume(UiLibrary *lib);
bool ui_library_load_resume(UiLibrary *lib, UiLibraryDoneFn *done,
                            void *opaque, GError **errp);

#endif
