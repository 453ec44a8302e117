/*
 * library.c - the player's save states (library.h) over the machine's
 * (hw/xbox/machine-savestate.h): names, per-title slots, backups, undo
 * load and undo save, resume, and the rollback and disc checks.
 *
 * Owns:
 *  - the index, a GKeyFile at CONFIG_DIR/states.ini:
 *      [state:TAG]     name=, hidden=backup|undo|resume|trash,
 *                      backup=TAG (the state this one replaced)
 *      [title:TITLE]   slot1..slot4=TAG, resume=TAG
 *      [library]       undo-load=TAG, last-replace=TAG
 *    (TAG and TITLE URI-escaped: a group name cannot hold ']' or
 *    control characters).  Written whole, atomically (temporary file,
 *    fsync, rename), on a worker thread so the main loop never waits
 *    for the disk; writes run in order on that one thread.
 *  - the entries: one per snapshot with a VM state on the writable
 *    disks, refreshed from the disks' in-memory snapshot tables at each
 *    listing; the metadata (title, disc, frame, thumbnail) is read once
 *    per state and kept.
 *  - the rollback bitmaps: "ui-since-TAG" on the medium of the
 *    machine's first writable disk (the hard disk), persistent where the
 *    image can store it (qcow2 writes it at close); and, during a load,
 *    "ui-keep-TAG", the target's bits before the load cleared them, in
 *    memory only (xblk-disk.h's bitmap calls).
 *  - the disc's title: read once per disc, asynchronously (one 2 KiB
 *    read of the disc's volume descriptor when its file changes).
 *  - the running operation: one at a time, a chain of machine
 *    operations (undo save, load, deletes) ending in one done().
 *
 * Invariants:
 *  - a tag is in the index only while it is on a disk; the prune that
 *    keeps this (and drops stray bitmaps) runs only while nothing is
 *    saving, loading or deleting, since a state being saved is on no
 *    disk yet;
 *  - a state the library stops needing (a replaced backup, an old undo
 *    or resume state, a deleted one) is first marked hidden=trash in the
 *    index, then deleted at the end of the operation; a delete that
 *    fails leaves it marked and the next operation tries again;
 *  - done() runs on the main loop, never inside the call that started
 *    the operation, after the operation's last machine operation.
 *
 * Main loop only (library.h); the caller is the UI (ui/sdl/, hotkeys
 * and the menu).
 */
#include "ui/library.h"
#include "hw/error.h"
#include "hw/xbox/machine-media.h"
#include "hw/xbox/machine-savestate.h"
#include <xblk/xblk.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <string.h>

#define INDEX_FILE      "states.ini"
#define GROUP_LIBRARY   "library"
#define BITMAP_PREFIX   "ui-since-"
#define KEEP_PREFIX     "ui-keep-"      /* a load's copy of its target's */
#define NAME_MAX_CHARS  64
#define FRAMES_PER_MIN  (60 * 60)       /* the machine's 60 Hz vblank */
#define ISO_PVD_OFFSET  (16 * 2048)

#define HIDDEN_BACKUP   "backup"
#define HIDDEN_UNDO     "undo"
#define HIDDEN_RESUME   "resume"
#define HIDDEN_TRASH    "trash"

typedef struct Entry {
    UiStateEntry pub;           /* first: the entries handed out */
    bool seen;                  /* on a disk at the last scan */
    bool md_done;               /* metadata read (or found unreadable) */
    uint64_t order;             /* snapshot ID on the first disk holding
                                 * it: creation order */
    char *fold_name;            /* casefolded, for search */
    char *fold_title;
} Entry;

typedef enum OpKind { OP_SAVE, OP_LOAD, OP_DELETE, OP_UNDO_SAVE } OpKind;

typedef struct Op {
    UiLibrary *lib;
    OpKind kind;
    UiLibraryDoneFn *done;
    void *opaque;
    char *title;                /* the disc's title at the start */
    char *tag;                  /* the new state, or the one loaded or
                                 * deleted */
    char *name;                 /* its display name */
    char *replaces;             /* save: the state it takes over */
    int slot;                   /* save: bind it to this slot (or 0) */
    const char *hidden;         /* save: a hidden kind, or NULL */
    bool is_undo;               /* load: the undo of a load */
    char *undo_tag;             /* load: the undo state saved before it */
    bool kept;                  /* load: the target's bits before it are
                                 * in its keep bitmap */
    bool ok;
    char *message;
    GHashTable *tried;          /* trash tags this operation tried */
    const char *deleting;       /* the one being deleted (in tried) */
} Op;

/* The disc's volume descriptor being read; lib NULL once nobody waits
 * for it (the disc changed, the library was freed): the completion then
 * only frees it. */
typedef struct TitleRead {
    UiLibrary *lib;
    uint8_t pvd[2048];
} TitleRead;

struct UiLibrary {
    XboxMachine *m;
    char *index_path;
    GKeyFile *index;
    GThreadPool *writer;        /* one thread: index writes in order */
    GHashTable *entries;        /* tag -> Entry */
    bool scanning;              /* re-entry guard (metadata reads poll) */
    char *disc_path;            /* the inserted disc, or NULL */
    char *title;                /* its title, "" without one (or while
                                 * it is being read) */
    TitleRead *title_read;      /* the read of the title, or NULL */
    XblkDisk *title_disk;       /* its disk */
    Op *op;                     /* the running operation, or NULL */
    UiLibraryProgressFn *progress;
    void *progress_opaque;
};

/* ---- small helpers ---- */

/* 18230 -> "18,230": what the player reads on screen. */
static char *format_count(uint64_t v)
{
    char digits[24];
    snprintf(digits, sizeof(digits), "%" PRIu64, v);
    size_t n = strlen(digits);
    GString *s = g_string_sized_new(n + n / 3);
    for (size_t i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) {
            g_string_append_c(s, ',');
        }
        g_string_append_c(s, digits[i]);
    }
    return g_string_free(s, FALSE);
}

/* Tenths of a millisecond by integer arithmetic: no locale's comma. */
static char *format_pause(int64_t ns)
{
    int64_t tenths = (MAX(ns, 0) + 50000) / 100000;
    return g_strdup_printf("%" PRId64 ".%d ms", tenths / 10,
                           (int)(tenths % 10));
}

static char *format_minutes(uint64_t frames)
{
    uint64_t min = frames / FRAMES_PER_MIN;
    if (min < 1) {
        return g_strdup("less than a minute");
    }
    return g_strdup_printf("%" PRIu64 " minute%s", min, min == 1 ? "" : "s");
}

static char *slot_key(int slot)
{
    return g_strdup_printf("slot%d", slot);
}

static char *group_of(const char *prefix, const char *s)
{
    g_autofree char *esc = g_uri_escape_string(s ? s : "", NULL, TRUE);
    return g_strconcat(prefix, esc, NULL);
}

static char *state_group(const char *tag)
{
    return group_of("state:", tag);
}

static char *title_group(const char *title)
{
    return group_of("title:", title);
}

static char *bitmap_name(const char *tag)
{
    return g_strconcat(BITMAP_PREFIX, tag, NULL);
}

static char *keep_name(const char *tag)
{
    return g_strconcat(KEEP_PREFIX, tag, NULL);
}

/* ---- the index ---- */

typedef struct IndexWrite {
    char *path;
    char *data;
    gsize len;
} IndexWrite;

/* Worker thread: temporary file, fsync, rename over the old one. */
static void index_write_job(gpointer data, gpointer user_data)
{
    IndexWrite *w = data;
    GError *err = NULL;
    if (!g_file_set_contents_full(w->path, w->data, w->len,
                                  G_FILE_SET_CONTENTS_CONSISTENT |
                                  G_FILE_SET_CONTENTS_DURABLE, 0600, &err)) {
        g_message("save-state index not written: %s", err->message);
        g_error_free(err);
    }
    g_free(w->path);
    g_free(w->data);
    g_free(w);
}

static void index_save(UiLibrary *lib)
{
    IndexWrite *w = g_new0(IndexWrite, 1);
    w->path = g_strdup(lib->index_path);
    w->data = g_key_file_to_data(lib->index, &w->len, NULL);
    g_thread_pool_push(lib->writer, w, NULL);
}

/* A malformed index is set aside (the player's names survive in it for
 * repair) and the library starts empty: it never stops the emulator. */
static void index_load(UiLibrary *lib)
{
    GError *err = NULL;
    if (g_key_file_load_from_file(lib->index, lib->index_path,
                                  G_KEY_FILE_KEEP_COMMENTS, &err)) {
        return;
    }
    if (!g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
        g_autofree char *bad = g_strconcat(lib->index_path, ".bad", NULL);
        g_message("%s: %s; set aside as %s", lib->index_path, err->message,
                  bad);
        g_rename(lib->index_path, bad);
    }
    g_error_free(err);
    g_key_file_free(lib->index);
    lib->index = g_key_file_new();
}

static char *idx_get(UiLibrary *lib, const char *group, const char *key)
{
    return g_key_file_get_string(lib->index, group, key, NULL);
}

/* value NULL removes the key (and the group once it is empty). */
static void idx_set(UiLibrary *lib, const char *group, const char *key,
                    const char *value)
{
    if (value) {
        g_key_file_set_string(lib->index, group, key, value);
        return;
    }
    g_key_file_remove_key(lib->index, group, key, NULL);
    gsize n = 0;
    g_auto(GStrv) keys = g_key_file_get_keys(lib->index, group, &n, NULL);
    if (keys && n == 0) {
        g_key_file_remove_group(lib->index, group, NULL);
    }
}

static char *state_get(UiLibrary *lib, const char *tag, const char *key)
{
    g_autofree char *group = state_group(tag);
    return idx_get(lib, group, key);
}

static void state_set(UiLibrary *lib, const char *tag, const char *key,
                      const char *value)
{
    g_autofree char *group = state_group(tag);
    idx_set(lib, group, key, value);
}

static void state_forget(UiLibrary *lib, const char *tag)
{
    g_autofree char *group = state_group(tag);
    g_key_file_remove_group(lib->index, group, NULL);
}

static bool state_hidden(UiLibrary *lib, const char *tag)
{
    g_autofree char *group = state_group(tag);
    return g_key_file_has_key(lib->index, group, "hidden", NULL);
}

static char *title_get(UiLibrary *lib, const char *title, const char *key)
{
    g_autofree char *group = title_group(title);
    return idx_get(lib, group, key);
}

static void title_set(UiLibrary *lib, const char *title, const char *key,
                      const char *value)
{
    g_autofree char *group = title_group(title);
    idx_set(lib, group, key, value);
}

static char *slot_get(UiLibrary *lib, const char *title, int slot)
{
    g_autofree char *key = slot_key(slot);
    return title_get(lib, title, key);
}

static void slot_set(UiLibrary *lib, const char *title, int slot,
                     const char *tag)
{
    g_autofree char *key = slot_key(slot);
    title_set(lib, title, key, tag);
}

/* Every title-group key whose value is tag gets with (NULL: removed). */
static void title_refs_replace(UiLibrary *lib, const char *tag,
                               const char *with)
{
    g_auto(GStrv) groups = g_key_file_get_groups(lib->index, NULL);
    for (char **g = groups; *g; g++) {
        if (!g_str_has_prefix(*g, "title:")) {
            continue;
        }
        g_auto(GStrv) keys = g_key_file_get_keys(lib->index, *g, NULL, NULL);
        for (char **k = keys; keys && *k; k++) {
            g_autofree char *v = idx_get(lib, *g, *k);
            if (v && !strcmp(v, tag)) {
                idx_set(lib, *g, *k, with);
            }
        }
    }
}

static void lib_key_clear_if(UiLibrary *lib, const char *key,
                             const char *tag)
{
    g_autofree char *v = idx_get(lib, GROUP_LIBRARY, key);
    if (v && !strcmp(v, tag)) {
        idx_set(lib, GROUP_LIBRARY, key, NULL);
    }
}

/* The state is no longer wanted: hidden until the end of the operation
 * deletes it, with every reference to it gone now. */
static void trash(UiLibrary *lib, const char *tag)
{
    if (!tag) {
        return;
    }
    state_set(lib, tag, "hidden", HIDDEN_TRASH);
    title_refs_replace(lib, tag, NULL);
    lib_key_clear_if(lib, "undo-load", tag);
    lib_key_clear_if(lib, "last-replace", tag);
}

/* ---- the machine's disks and disc ---- */

/* The disks a state covers: every drive with a writable medium. */
static GPtrArray *writable_disks(UiLibrary *lib)
{
    GPtrArray *disks = g_ptr_array_new();
    for (int i = 0; i < MACHINE_IDE_DRIVES; i++) {
        MachineDriveInfo info;
        if (machine_drive_info(lib->m, i, &info) &&
            machine_disk_has_medium(info.disk) &&
            !xblk_disk_read_only(info.disk)) {
            g_ptr_array_add(disks, info.disk);
        }
    }
    return disks;
}

/* The hard disk, on whose medium the rollback bitmaps live. */
static XblkDisk *hd_disk(UiLibrary *lib)
{
    g_autoptr(GPtrArray) disks = writable_disks(lib);
    return disks->len ? g_ptr_array_index(disks, 0) : NULL;
}

/* The ISO 9660 volume identifier: the game's title. */
static char *parse_disc_title(const uint8_t *pvd)
{
    if (pvd[0] != 1 || memcmp(pvd + 1, "CD001", 5) != 0) {
        return g_strdup("");
    }
    char *id = g_strndup((const char *)pvd + 40, 32);
    g_strchomp(id);
    if (!g_utf8_validate(id, -1, NULL)) {
        g_free(id);
        return g_strdup("");
    }
    return id;
}

static void title_read_done(void *opaque, int ret)
{
    TitleRead *r = opaque;
    UiLibrary *lib = r->lib;
    if (lib) {
        g_free(lib->title);
        lib->title = ret < 0 ? g_strdup("") : parse_disc_title(r->pvd);
        lib->title_read = NULL;
        lib->title_disk = NULL;
    }
    g_free(r);
}

/* The running read's result is no longer wanted. */
static void title_read_drop(UiLibrary *lib)
{
    if (lib->title_read) {
        lib->title_read->lib = NULL;
        lib->title_read = NULL;
        lib->title_disk = NULL;
    }
}

/* The title stays "" if the read cannot start (a disc too small to
 * hold a volume descriptor). */
static void title_read_start(UiLibrary *lib, XblkDisk *disc)
{
    TitleRead *r = g_new0(TitleRead, 1);
    r->lib = lib;
    XblkError *err = NULL;
    if (!xblk_disk_read(disc, ISO_PVD_OFFSET, r->pvd, sizeof(r->pvd),
                        title_read_done, r, &err)) {
        xblk_error_free(err);
        g_free(r);
        return;
    }
    lib->title_read = r;
    lib->title_disk = disc;
}

/* The title is read once per disc, when the disc's file changes, not at
 * every look; the read is asynchronous, and until it completes the
 * title is "".  wait: the caller needs the title (an operation records
 * it, a listing filters by it), so a read still running is waited for -
 * only in the moment after a disc change. */
static void disc_refresh(UiLibrary *lib, bool wait)
{
    const char *path = NULL;
    XblkDisk *disc = NULL;
    for (int i = 0; i < MACHINE_IDE_DRIVES && !path; i++) {
        MachineDriveInfo info;
        if (machine_drive_info(lib->m, i, &info) && info.removable &&
            machine_disk_has_medium(info.disk)) {
            disc = info.disk;
            path = xblk_disk_filename(disc);
        }
    }
    if (!lib->title || g_strcmp0(path, lib->disc_path)) {
        title_read_drop(lib);
        g_free(lib->disc_path);
        g_free(lib->title);
        lib->disc_path = g_strdup(path);
        lib->title = g_strdup("");
        if (path) {
            title_read_start(lib, disc);
        }
    }
    if (wait && lib->title_read) {
        xblk_disk_drain(lib->title_disk);
    }
}

/* ---- rollback bitmaps ---- */

static bool bitmap_exists(UiLibrary *lib, const char *tag)
{
    XblkDisk *hd = hd_disk(lib);
    g_autofree char *name = bitmap_name(tag);
    XblkBitmapInfo info = { .size = sizeof(info) };
    return hd && xblk_disk_bitmap_info(hd, name, &info, NULL);
}

/* Started just before the save, so that it holds every write after the
 * save's instant (and perhaps a few just before it: the warning errs on
 * the side of asking).  Kept in the image when it can be; otherwise it
 * lasts this session.  Failing to start one only loses the warning. */
static void bitmap_start(UiLibrary *lib, const char *tag)
{
    XblkDisk *hd = hd_disk(lib);
    g_autofree char *name = bitmap_name(tag);
    XblkError *err = NULL;
    if (!hd || xblk_disk_bitmap_add(hd, name, true, &err)) {
        return;
    }
    if (xblk_error_code(err) == XBLK_ERROR_UNSUPPORTED) {
        xblk_disk_bitmap_add(hd, name, false, NULL);
    }
    xblk_error_free(err);
}

/* Gone from memory now, from the image at its next clean close (a busy
 * one stays: the next prune tries again). */
static void bitmap_remove(UiLibrary *lib, const char *tag)
{
    XblkDisk *hd = hd_disk(lib);
    g_autofree char *name = bitmap_name(tag);
    if (hd) {
        xblk_disk_bitmap_remove(hd, name, NULL);
    }
}

/* Bytes written since the state, or -1 when the bitmap cannot say
 * (none, busy, inconsistent after a crash). */
static int64_t bitmap_dirty_bytes(UiLibrary *lib, const char *tag)
{
    XblkDisk *hd = hd_disk(lib);
    g_autofree char *name = bitmap_name(tag);
    return hd ? xblk_disk_bitmap_dirty_bytes(hd, name, NULL) : -1;
}

/* Clears tag's bitmap before its load, keeping its bits in the keep
 * bitmap to put back if the load fails (op->kept). */
static void bitmap_clear_keeping(Op *op)
{
    XblkDisk *hd = hd_disk(op->lib);
    g_autofree char *name = bitmap_name(op->tag);
    g_autofree char *keep = keep_name(op->tag);
    if (!hd) {
        return;
    }
    xblk_disk_bitmap_remove(hd, keep, NULL);        /* a stray one */
    if (!xblk_disk_bitmap_copy(hd, name, keep, NULL)) {
        return;                 /* none, or unusable: nothing to clear */
    }
    op->kept = xblk_disk_bitmap_clear(hd, name, NULL);
    if (!op->kept) {
        xblk_disk_bitmap_remove(hd, keep, NULL);
    }
}

/* The load is over: its keep bitmap goes, its bits put back first if
 * put_back (the load failed). */
static void bitmap_keep_end(Op *op, bool put_back)
{
    if (!op->kept) {
        return;
    }
    op->kept = false;
    XblkDisk *hd = hd_disk(op->lib);
    g_autofree char *name = bitmap_name(op->tag);
    g_autofree char *keep = keep_name(op->tag);
    if (hd) {
        if (put_back) {
            xblk_disk_bitmap_merge(hd, keep, name, NULL);
        }
        xblk_disk_bitmap_remove(hd, keep, NULL);
    }
}

/* ---- entries ---- */

static void entry_free(gpointer p)
{
    Entry *e = p;
    g_free(e->pub.tag);
    g_free(e->pub.name);
    g_free(e->pub.title);
    g_free(e->pub.disc_path);
    if (e->pub.thumbnail_png) {
        g_bytes_unref(e->pub.thumbnail_png);
    }
    g_free(e->fold_name);
    g_free(e->fold_title);
    g_free(e);
}

static Entry *entry_get(UiLibrary *lib, const char *tag)
{
    return tag ? g_hash_table_lookup(lib->entries, tag) : NULL;
}

static bool lib_busy(UiLibrary *lib)
{
    return lib->op || machine_state_busy();
}

static void entry_seen(UiLibrary *lib, const XblkSnapshotInfo *sn,
                       bool first_disk)
{
    Entry *e = entry_get(lib, sn->name);
    if (!e) {
        e = g_new0(Entry, 1);
        e->pub.tag = g_strdup(sn->name);
        e->pub.created = sn->date_sec;
        e->order = g_ascii_strtoull(sn->id, NULL, 10);
        g_hash_table_insert(lib->entries, e->pub.tag, e);
    } else if (!e->seen) {
        e->pub.size = 0;
        if (first_disk) {
            e->pub.created = sn->date_sec;
            e->order = g_ascii_strtoull(sn->id, NULL, 10);
        }
    }
    e->seen = true;
    e->pub.size = MAX(e->pub.size, sn->vm_state_size);
}

static bool scan_disk(UiLibrary *lib, XblkDisk *disk, bool first)
{
    XblkError *err = NULL;
    int n = xblk_snapshot_list(disk, NULL, 0, &err);
    if (n < 0) {
        xblk_error_free(err);
        return false;
    }
    XblkSnapshotInfo *sn = g_new0(XblkSnapshotInfo, MAX(n, 1));
    for (int i = 0; i < n; i++) {
        sn[i].size = sizeof(sn[i]);
    }
    n = xblk_snapshot_list(disk, sn, n, &err);
    for (int i = 0; i < n; i++) {
        entry_seen(lib, &sn[i], first);
    }
    xblk_error_free(err);
    g_free(sn);
    return n >= 0;
}

static gboolean entry_unseen(gpointer key, gpointer value, gpointer data)
{
    return !((Entry *)value)->seen;
}

/* The snapshot tables are in memory: this reads no disk.  False when a
 * disk could not be listed (nothing is dropped then). */
static bool scan(UiLibrary *lib)
{
    g_autoptr(GPtrArray) disks = writable_disks(lib);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, lib->entries);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        ((Entry *)v)->seen = false;
    }
    bool ok = disks->len > 0;
    for (guint i = 0; i < disks->len; i++) {
        ok &= scan_disk(lib, g_ptr_array_index(disks, i), i == 0);
    }
    if (ok) {
        g_hash_table_foreach_remove(lib->entries, entry_unseen, NULL);
    }
    return ok;
}

static void entry_set_title(Entry *e, char *title)
{
    g_free(e->pub.title);
    g_free(e->fold_title);
    e->pub.title = title;
    e->fold_title = title ? g_utf8_casefold(title, -1) : NULL;
}

/* Once per state: the metadata from its VM state (a disk read). */
static void entry_read_metadata(UiLibrary *lib, Entry *e)
{
    XblkError *err = NULL;
    XblkStateInfo *info = xblk_state_info(machine_engine(lib->m), e->pub.tag,
                                          &err);
    e->md_done = true;
    if (!info) {
        xblk_error_free(err);
        return;
    }
    e->pub.frame = info->frame;
    e->pub.disc_path = g_steal_pointer(&info->disc_path);
    entry_set_title(e, info->title && g_utf8_validate(info->title, -1, NULL)
                       ? g_steal_pointer(&info->title) : NULL);
    if (info->thumbnail_png) {
        e->pub.thumbnail_png = g_bytes_new_take(
            g_steal_pointer(&info->thumbnail_png), info->thumbnail_png_len);
    }
    xblk_state_info_free(info);
}

/* Reading polls the loop: the list is taken first, and each read skipped
 * if an operation started meanwhile (it is tried at the next listing). */
static void read_missing_metadata(UiLibrary *lib)
{
    g_autoptr(GPtrArray) todo = g_ptr_array_new_with_free_func(g_free);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, lib->entries);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Entry *e = v;
        if (!e->md_done && e->pub.size > 0) {
            g_ptr_array_add(todo, g_strdup(e->pub.tag));
        }
    }
    for (guint i = 0; i < todo->len && !lib_busy(lib); i++) {
        Entry *e = entry_get(lib, g_ptr_array_index(todo, i));
        if (e && !e->md_done) {
            entry_read_metadata(lib, e);
        }
    }
}

static int entry_slot(UiLibrary *lib, Entry *e)
{
    for (int s = 1; s <= UI_LIBRARY_SLOTS; s++) {
        g_autofree char *tag = slot_get(lib, e->pub.title, s);
        if (tag && !strcmp(tag, e->pub.tag)) {
            return s;
        }
    }
    return 0;
}

/* Name and slot from the index; the name string changes only when the
 * name did, so entries handed out stay valid across listings. */
static void entry_sync_index(UiLibrary *lib, Entry *e)
{
    g_autofree char *name = state_get(lib, e->pub.tag, "name");
    if (!name) {
        /* A state saved elsewhere (QMP, HMP) shows its tag, which the
         * disk may hold in any encoding. */
        name = g_utf8_make_valid(e->pub.tag, -1);
    }
    if (g_strcmp0(e->pub.name, name)) {
        g_free(e->pub.name);
        g_free(e->fold_name);
        e->fold_name = g_utf8_casefold(name, -1);
        e->pub.name = g_steal_pointer(&name);
    }
    e->pub.slot = entry_slot(lib, e);
}

static bool title_refs_prune(UiLibrary *lib, const char *group)
{
    bool changed = false;
    g_auto(GStrv) keys = g_key_file_get_keys(lib->index, group, NULL, NULL);
    for (char **k = keys; keys && *k; k++) {
        g_autofree char *v = idx_get(lib, group, *k);
        if (!entry_get(lib, v)) {
            idx_set(lib, group, *k, NULL);
            changed = true;
        }
    }
    return changed;
}

/* Index entries and bitmaps of states that are on no disk any more. */
static bool prune_index(UiLibrary *lib)
{
    bool changed = false;
    g_auto(GStrv) groups = g_key_file_get_groups(lib->index, NULL);
    for (char **g = groups; *g; g++) {
        if (g_str_has_prefix(*g, "state:")) {
            g_autofree char *tag = g_uri_unescape_string(*g + 6, NULL);
            if (!entry_get(lib, tag)) {
                g_key_file_remove_group(lib->index, *g, NULL);
                changed = true;
            }
        } else if (g_str_has_prefix(*g, "title:") ||
                   !strcmp(*g, GROUP_LIBRARY)) {
            changed |= title_refs_prune(lib, *g);
        }
    }
    return changed;
}

/* Rollback bitmaps of states on no disk, and keep bitmaps (no load
 * runs while idle).  A busy one stays until a later prune. */
static void prune_bitmaps(UiLibrary *lib)
{
    XblkDisk *hd = hd_disk(lib);
    char **names = hd ? xblk_disk_bitmap_list(hd, NULL) : NULL;
    for (char **n = names; n && *n; n++) {
        if ((g_str_has_prefix(*n, BITMAP_PREFIX) &&
             !entry_get(lib, *n + strlen(BITMAP_PREFIX))) ||
            g_str_has_prefix(*n, KEEP_PREFIX)) {
            xblk_disk_bitmap_remove(hd, *n, NULL);
        }
    }
    xblk_disk_bitmap_list_free(names);
}

/* Brings the entries up to date: the disks' tables, the index (pruned
 * while idle) and the metadata not read yet. */
static void refresh(UiLibrary *lib)
{
    if (lib->scanning) {
        return;
    }
    lib->scanning = true;
    disc_refresh(lib, true);
    bool complete = scan(lib);
    if (complete && !lib_busy(lib)) {
        if (prune_index(lib)) {
            index_save(lib);
        }
        prune_bitmaps(lib);
    }
    read_missing_metadata(lib);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, lib->entries);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        entry_sync_index(lib, v);
    }
    lib->scanning = false;
}

static bool entry_visible(UiLibrary *lib, Entry *e)
{
    return e->pub.size > 0 && !state_hidden(lib, e->pub.tag);
}

static bool same_title(const char *a, const char *b)
{
    return !g_strcmp0(a ? a : "", b ? b : "");
}

/* Newest first: the snapshot's date, then its creation order. */
static gint entry_cmp_newest(gconstpointer pa, gconstpointer pb)
{
    const Entry *a = *(Entry *const *)pa, *b = *(Entry *const *)pb;
    if (a->pub.created != b->pub.created) {
        return a->pub.created > b->pub.created ? -1 : 1;
    }
    return a->order > b->order ? -1 : a->order < b->order;
}

static bool entry_newer(const Entry *a, const Entry *b)
{
    return entry_cmp_newest(&a, &b) < 0;
}

static bool entry_matches(const Entry *e, const char *fold)
{
    return (e->fold_name && strstr(e->fold_name, fold)) ||
           (e->fold_title && strstr(e->fold_title, fold));
}

/* ---- lifetime ---- */

UiLibrary *ui_library_new(XboxMachine *m, const char *config_dir,
                          GError **errp)
{
    if (g_mkdir_with_parents(config_dir, 0700) < 0) {
        hw_error_set_errno(errp, errno, "Could not create %s", config_dir);
        return NULL;
    }
    UiLibrary *lib = g_new0(UiLibrary, 1);
    lib->m = m;
    lib->index_path = g_build_filename(config_dir, INDEX_FILE, NULL);
    lib->index = g_key_file_new();
    lib->writer = g_thread_pool_new(index_write_job, NULL, 1, FALSE, NULL);
    lib->entries = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                         entry_free);
    index_load(lib);
    disc_refresh(lib, true);            /* the title at start */
    return lib;
}

/* The running operation, if any, must be over: the UI frees the library
 * after its last done(). */
void ui_library_free(UiLibrary *lib)
{
    if (!lib) {
        return;
    }
    g_warn_if_fail(!lib->op);
    title_read_drop(lib);               /* its completion frees it */
    g_thread_pool_free(lib->writer, FALSE, TRUE);
    g_key_file_free(lib->index);
    g_hash_table_destroy(lib->entries);
    g_free(lib->index_path);
    g_free(lib->disc_path);
    g_free(lib->title);
    g_free(lib);
}

void ui_library_set_progress(UiLibrary *lib, UiLibraryProgressFn *fn,
                             void *opaque)
{
    lib->progress = fn;
    lib->progress_opaque = opaque;
}

const char *ui_library_title(UiLibrary *lib)
{
    disc_refresh(lib, false);
    return lib->title;
}

bool ui_library_busy(UiLibrary *lib)
{
    return lib_busy(lib);
}

/* ---- listing ---- */

GPtrArray *ui_library_list(UiLibrary *lib, bool this_title_only,
                           const char *search)
{
    refresh(lib);
    GPtrArray *out = g_ptr_array_new();
    g_autofree char *fold = NULL;
    if (search && *search) {
        /* Invalid UTF-8 matches nothing (casefold needs valid input). */
        if (!g_utf8_validate(search, -1, NULL)) {
            return out;
        }
        fold = g_utf8_casefold(search, -1);
    }
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, lib->entries);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Entry *e = v;
        if (entry_visible(lib, e) &&
            (!this_title_only || same_title(e->pub.title, lib->title)) &&
            (!fold || entry_matches(e, fold))) {
            g_ptr_array_add(out, e);
        }
    }
    g_ptr_array_sort(out, entry_cmp_newest);
    return out;
}

const UiStateEntry *ui_library_lookup(UiLibrary *lib, const char *tag)
{
    refresh(lib);
    Entry *e = entry_get(lib, tag);
    return e ? &e->pub : NULL;
}

/* The tag bound to slot for the current title, if it is on a disk. */
static const char *slot_tag(UiLibrary *lib, int slot)
{
    g_autofree char *tag = slot_get(lib, lib->title, slot);
    Entry *e = entry_get(lib, tag);
    return e ? e->pub.tag : NULL;
}

const UiStateEntry *ui_library_slot(UiLibrary *lib, int slot)
{
    if (slot < 1 || slot > UI_LIBRARY_SLOTS) {
        return NULL;
    }
    refresh(lib);
    Entry *e = entry_get(lib, slot_tag(lib, slot));
    return e ? &e->pub : NULL;
}

/* ---- operations: the chain ---- */

static char *new_tag(UiLibrary *lib)
{
    for (;;) {
        char *tag = g_strdup_printf("ui-%" PRId64 "-%08x",
                                    (int64_t)(g_get_real_time() /
                                              G_USEC_PER_SEC),
                                    g_random_int());
        if (!entry_get(lib, tag) && !state_get(lib, tag, "name") &&
            !bitmap_exists(lib, tag)) {
            return tag;
        }
        g_free(tag);
    }
}

static void op_progress(void *opaque, uint64_t done, uint64_t total)
{
    UiLibrary *lib = opaque;
    if (lib->progress) {
        lib->progress(lib->progress_opaque, done, total);
    }
}

static MachineStateArgs op_args(Op *op, bool save)
{
    UiLibrary *lib = op->lib;
    return (MachineStateArgs){
        .progress = op_progress, .opaque = lib,
        .disc_path = save ? lib->disc_path : NULL,
        .title = save && *op->title ? op->title : NULL,
    };
}

static Op *op_new(UiLibrary *lib, OpKind kind, UiLibraryDoneFn *done,
                  void *opaque)
{
    Op *op = g_new0(Op, 1);
    op->lib = lib;
    op->kind = kind;
    op->done = done;
    op->opaque = opaque;
    op->title = g_strdup(lib->title);
    op->ok = true;
    op->tried = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return op;
}

static void op_free(Op *op)
{
    bitmap_keep_end(op, false);
    g_hash_table_destroy(op->tried);
    g_free(op->title);
    g_free(op->tag);
    g_free(op->name);
    g_free(op->replaces);
    g_free(op->undo_tag);
    g_free(op->message);
    g_free(op);
}

/* Started: the library runs it until done(). */
static bool op_started(UiLibrary *lib, Op *op, bool ok)
{
    if (ok) {
        lib->op = op;
    } else {
        op_free(op);
    }
    return ok;
}

static gboolean op_finish_cb(gpointer opaque)
{
    Op *op = opaque;
    UiLibrary *lib = op->lib;
    lib->op = NULL;
    if (op->done) {
        op->done(op->opaque, op->ok, op->message ? op->message : "");
    }
    op_free(op);
    return G_SOURCE_REMOVE;
}

/* done() from a source of its own: never inside the starting call. */
static void op_finish(Op *op)
{
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, op_finish_cb, op, NULL);
    g_source_attach(src, xblk_engine_glib_context(machine_engine(
                             op->lib->m)));
    g_source_unref(src);
}

static void op_fail(Op *op, const char *what, const char *reason)
{
    op->ok = false;
    g_free(op->message);
    op->message = g_strdup_printf("Could not %s: %s", what, reason);
}

static void op_flush(Op *op);

static void flush_done(void *opaque, const XblkError *err,
                       const XblkStateStats *stats)
{
    Op *op = opaque;
    UiLibrary *lib = op->lib;
    const char *tag = op->deleting;
    if (!err) {
        bitmap_remove(lib, tag);
        state_forget(lib, tag);
        index_save(lib);
    } else if (op->kind == OP_DELETE && !strcmp(tag, op->tag)) {
        /* The player's delete failed: the state shows again. */
        state_set(lib, tag, "hidden", NULL);
        index_save(lib);
        op_fail(op, "delete", xblk_error_message(err));
    }
    op_flush(op);
}

static char *next_trash(UiLibrary *lib, GHashTable *tried)
{
    g_auto(GStrv) groups = g_key_file_get_groups(lib->index, NULL);
    for (char **g = groups; *g; g++) {
        if (!g_str_has_prefix(*g, "state:")) {
            continue;
        }
        g_autofree char *hidden = idx_get(lib, *g, "hidden");
        g_autofree char *tag = g_uri_unescape_string(*g + 6, NULL);
        if (hidden && !strcmp(hidden, HIDDEN_TRASH) && tag &&
            !g_hash_table_contains(tried, tag)) {
            return g_steal_pointer(&tag);
        }
    }
    return NULL;
}

/* Deletes the states marked trash, one machine delete at a time, then
 * ends the operation. */
static void op_flush(Op *op)
{
    UiLibrary *lib = op->lib;
    char *tag;
    while ((tag = next_trash(lib, op->tried))) {
        g_hash_table_add(op->tried, tag);
        op->deleting = tag;
        if (machine_state_start(lib->m, XBLK_STATE_DELETE, tag, NULL,
                                flush_done, op, NULL)) {
            return;
        }
    }
    op_finish(op);
}

/* ---- saving ---- */

static void save_commit(Op *op)
{
    UiLibrary *lib = op->lib;
    state_set(lib, op->tag, "name", op->name);
    state_set(lib, op->tag, "hidden", op->hidden);
    if (op->replaces) {
        g_autofree char *old_backup = state_get(lib, op->replaces, "backup");
        trash(lib, old_backup);
        state_set(lib, op->replaces, "backup", NULL);
        title_refs_replace(lib, op->replaces, NULL);
        state_set(lib, op->replaces, "hidden", HIDDEN_BACKUP);
        state_set(lib, op->tag, "backup", op->replaces);
        idx_set(lib, GROUP_LIBRARY, "last-replace", op->tag);
    }
    if (op->slot) {
        slot_set(lib, op->title, op->slot, op->tag);
    }
    if (!g_strcmp0(op->hidden, HIDDEN_RESUME)) {
        g_autofree char *old = title_get(lib, op->title, "resume");
        trash(lib, old);
        title_set(lib, op->title, "resume", op->tag);
    }
    index_save(lib);
}

static void save_done(void *opaque, const XblkError *err,
                      const XblkStateStats *stats)
{
    Op *op = opaque;
    if (err) {
        bitmap_remove(op->lib, op->tag);
        op_fail(op, "save", xblk_error_message(err));
    } else {
        save_commit(op);
        g_autofree char *pause = format_pause(stats->pause_ns);
        op->message = g_strdup_printf("Saved '%s' \u00b7 pause %s", op->name,
                                      pause);
    }
    op_flush(op);
}

static bool save_start(UiLibrary *lib, Op *op, GError **errp)
{
    op->tag = new_tag(lib);
    bitmap_start(lib, op->tag);
    MachineStateArgs args = op_args(op, true);
    if (!machine_state_start(lib->m, XBLK_STATE_SAVE, op->tag, &args,
                             save_done, op, errp)) {
        bitmap_remove(lib, op->tag);
        return op_started(lib, op, false);
    }
    return op_started(lib, op, true);
}

static bool refuse_busy(UiLibrary *lib, GError **errp)
{
    if (lib_busy(lib)) {
        hw_error_set(errp, "A save, load or delete is in progress");
        return true;
    }
    return false;
}

static bool slot_ok(int slot, GError **errp)
{
    if (slot < 1 || slot > UI_LIBRARY_SLOTS) {
        hw_error_set(errp, "No slot %d (1..%d)", slot, UI_LIBRARY_SLOTS);
        return false;
    }
    return true;
}

/* A new state; replaces: the state it takes over (its name and slot),
 * which stays as its hidden backup. */
static bool save_new(UiLibrary *lib, const char *name, const char *replaces,
                     int slot, const char *hidden, UiLibraryDoneFn *done,
                     void *opaque, GError **errp)
{
    Op *op = op_new(lib, OP_SAVE, done, opaque);
    op->name = g_strdup(name);
    op->replaces = g_strdup(replaces);
    op->slot = slot;
    op->hidden = hidden;
    return save_start(lib, op, errp);
}

bool ui_library_save_slot(UiLibrary *lib, int slot, UiLibraryDoneFn *done,
                          void *opaque, GError **errp)
{
    if (!slot_ok(slot, errp) || refuse_busy(lib, errp)) {
        return false;
    }
    refresh(lib);
    Entry *bound = entry_get(lib, slot_tag(lib, slot));
    g_autofree char *name = bound ? g_strdup(bound->pub.name) :
                            g_strdup_printf("Slot %d", slot);
    return save_new(lib, name, bound ? bound->pub.tag : NULL, slot, NULL,
                    done, opaque, errp);
}

bool ui_library_quick_save(UiLibrary *lib, UiLibraryDoneFn *done,
                           void *opaque, GError **errp)
{
    if (refuse_busy(lib, errp)) {
        return false;
    }
    disc_refresh(lib, true);
    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    g_autofree char *name = g_date_time_format(now,
                                               "Quick save %Y-%m-%d %H:%M:%S");
    return save_new(lib, name, NULL, 0, NULL, done, opaque, errp);
}

static Entry *visible_entry(UiLibrary *lib, const char *tag, GError **errp)
{
    refresh(lib);
    Entry *e = entry_get(lib, tag);
    if (!e || !entry_visible(lib, e)) {
        hw_error_set(errp, "No save state '%s'", tag ? tag : "");
        return NULL;
    }
    return e;
}

bool ui_library_save_over(UiLibrary *lib, const char *tag,
                          UiLibraryDoneFn *done, void *opaque,
                          GError **errp)
{
    if (refuse_busy(lib, errp)) {
        return false;
    }
    Entry *e = visible_entry(lib, tag, errp);
    if (!e) {
        return false;
    }
    /* The slot follows only within the title: the new state is of the
     * disc inserted now. */
    int slot = same_title(e->pub.title, lib->title) ? e->pub.slot : 0;
    return save_new(lib, e->pub.name, e->pub.tag, slot, NULL, done, opaque,
                    errp);
}

bool ui_library_save_resume(UiLibrary *lib, UiLibraryDoneFn *done,
                            void *opaque, GError **errp)
{
    if (refuse_busy(lib, errp)) {
        return false;
    }
    disc_refresh(lib, true);
    return save_new(lib, "Resume", NULL, 0, HIDDEN_RESUME, done, opaque,
                    errp);
}

/* ---- loading ---- */

/* The target's bitmap starts over (the disk is its own again); the
 * bitmaps of later states can no longer say what differs from them. */
static void load_bitmaps_after(UiLibrary *lib, const char *tag)
{
    scan(lib);
    Entry *target = entry_get(lib, tag);
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, lib->entries);
    while (target && g_hash_table_iter_next(&it, NULL, &v)) {
        if (entry_newer(v, target)) {
            bitmap_remove(lib, ((Entry *)v)->pub.tag);
        }
    }
}

static void load_done(void *opaque, const XblkError *err,
                      const XblkStateStats *stats)
{
    Op *op = opaque;
    UiLibrary *lib = op->lib;
    bitmap_keep_end(op, err != NULL);
    if (err) {
        op_fail(op, "load", xblk_error_message(err));
        op_flush(op);
        return;
    }
    load_bitmaps_after(lib, op->tag);
    g_autofree char *frame = format_count(stats->frame);
    if (op->is_undo) {
        trash(lib, op->tag);
        index_save(lib);
        op->message = g_strdup_printf("Load undone (back to frame %s)",
                                      frame);
    } else {
        op->message = g_strdup_printf("Loaded '%s' (frame %s)", op->name,
                                      frame);
    }
    op_flush(op);
}

/* Clears the target's bitmap before the load (keeping the bits to put
 * back if it fails): writes from here to the load's instant are undone
 * by it, and writes after it must count. */
static bool load_go(Op *op, GError **errp)
{
    UiLibrary *lib = op->lib;
    bitmap_clear_keeping(op);
    MachineStateArgs args = op_args(op, false);
    if (machine_state_start(lib->m, XBLK_STATE_LOAD, op->tag, &args,
                            load_done, op, errp)) {
        return true;
    }
    bitmap_keep_end(op, true);
    return false;
}

static void undo_saved(void *opaque, const XblkError *err,
                       const XblkStateStats *stats)
{
    Op *op = opaque;
    UiLibrary *lib = op->lib;
    if (err) {
        bitmap_remove(lib, op->undo_tag);
        g_autofree char *why = g_strdup_printf(
            "the undo state was not saved: %s", xblk_error_message(err));
        op_fail(op, "load", why);
        op_flush(op);
        return;
    }
    g_autofree char *old = idx_get(lib, GROUP_LIBRARY, "undo-load");
    trash(lib, old);
    state_set(lib, op->undo_tag, "name", "Undo load");
    state_set(lib, op->undo_tag, "hidden", HIDDEN_UNDO);
    idx_set(lib, GROUP_LIBRARY, "undo-load", op->undo_tag);
    index_save(lib);
    GError *gerr = NULL;
    if (!load_go(op, &gerr)) {
        op_fail(op, "load", gerr->message);
        g_error_free(gerr);
        op_flush(op);
    }
}

/* Before every load but an undo, the moment is saved to come back to
 * (unless the guest shut down: nothing to come back to). */
static bool load_start(UiLibrary *lib, Op *op, GError **errp)
{
    if (op->is_undo || machine_guest_shut_down(lib->m)) {
        return op_started(lib, op, load_go(op, errp));
    }
    op->undo_tag = new_tag(lib);
    bitmap_start(lib, op->undo_tag);
    MachineStateArgs args = op_args(op, true);
    if (!machine_state_start(lib->m, XBLK_STATE_SAVE, op->undo_tag, &args,
                             undo_saved, op, errp)) {
        bitmap_remove(lib, op->undo_tag);
        return op_started(lib, op, false);
    }
    return op_started(lib, op, true);
}

static bool load_tag(UiLibrary *lib, Entry *e, bool is_undo,
                     UiLibraryDoneFn *done, void *opaque, GError **errp)
{
    Op *op = op_new(lib, OP_LOAD, done, opaque);
    op->tag = g_strdup(e->pub.tag);
    op->name = g_strdup(e->pub.name);
    op->is_undo = is_undo;
    return load_start(lib, op, errp);
}

bool ui_library_load(UiLibrary *lib, const char *tag, UiLibraryDoneFn *done,
                     void *opaque, GError **errp)
{
    if (refuse_busy(lib, errp)) {
        return false;
    }
    Entry *e = visible_entry(lib, tag, errp);
    return e && load_tag(lib, e, false, done, opaque, errp);
}

bool ui_library_load_slot(UiLibrary *lib, int slot, UiLibraryDoneFn *done,
                          void *opaque, GError **errp)
{
    if (!slot_ok(slot, errp) || refuse_busy(lib, errp)) {
        return false;
    }
    refresh(lib);
    Entry *e = entry_get(lib, slot_tag(lib, slot));
    if (!e) {
        hw_error_set(errp, "F%d has no state for '%s'", 4 + slot,
                     lib->title);
        return false;
    }
    return load_tag(lib, e, false, done, opaque, errp);
}

bool ui_library_load_newest(UiLibrary *lib, UiLibraryDoneFn *done,
                            void *opaque, GError **errp)
{
    if (refuse_busy(lib, errp)) {
        return false;
    }
    g_autoptr(GPtrArray) list = ui_library_list(lib, true, NULL);
    if (!list->len) {
        hw_error_set(errp, "No state for '%s'", lib->title);
        return false;
    }
    return load_tag(lib, g_ptr_array_index(list, 0), false, done, opaque,
                    errp);
}

bool ui_library_undo_load(UiLibrary *lib, UiLibraryDoneFn *done,
                          void *opaque, GError **errp)
{
    if (refuse_busy(lib, errp)) {
        return false;
    }
    refresh(lib);
    g_autofree char *tag = idx_get(lib, GROUP_LIBRARY, "undo-load");
    Entry *e = entry_get(lib, tag);
    if (!e) {
        hw_error_set(errp, "No load to undo");
        return false;
    }
    return load_tag(lib, e, true, done, opaque, errp);
}

bool ui_library_has_resume(UiLibrary *lib)
{
    refresh(lib);
    g_autofree char *tag = title_get(lib, lib->title, "resume");
    return entry_get(lib, tag) != NULL;
}

bool ui_library_load_resume(UiLibrary *lib, UiLibraryDoneFn *done,
                            void *opaque, GError **errp)
{
    if (refuse_busy(lib, errp)) {
        return false;
    }
    refresh(lib);
    g_autofree char *tag = title_get(lib, lib->title, "resume");
    Entry *e = entry_get(lib, tag);
    if (!e) {
        hw_error_set(errp, "No resume state for '%s'", lib->title);
        return false;
    }
    return load_tag(lib, e, false, done, opaque, errp);
}

/* ---- undo save, delete ---- */

/* Ends an operation that changed only the index: its deletes run, or,
 * with none to run, done() comes from an idle source. */
static bool op_run_flush(UiLibrary *lib, Op *op)
{
    op_started(lib, op, true);
    op_flush(op);
    return true;
}

bool ui_library_undo_save(UiLibrary *lib, UiLibraryDoneFn *done,
                          void *opaque, GError **errp)
{
    if (refuse_busy(lib, errp)) {
        return false;
    }
    refresh(lib);
    g_autofree char *newer = idx_get(lib, GROUP_LIBRARY, "last-replace");
    g_autofree char *older = newer ? state_get(lib, newer, "backup") : NULL;
    Entry *e_new = entry_get(lib, newer), *e_old = entry_get(lib, older);
    if (!e_new || !e_old) {
        hw_error_set(errp, "No save to undo");
        return false;
    }
    /* The backup takes its place back: its slots, its visibility. */
    title_refs_replace(lib, newer, older);
    state_set(lib, older, "hidden", NULL);
    state_set(lib, newer, "backup", NULL);
    trash(lib, newer);
    index_save(lib);
    Op *op = op_new(lib, OP_UNDO_SAVE, done, opaque);
    op->tag = g_strdup(older);
    op->name = g_strdup(e_old->pub.name);
    op->message = g_strdup_printf("Save undone: '%s' is back", op->name);
    entry_sync_index(lib, e_old);
    return op_run_flush(lib, op);
}

bool ui_library_delete(UiLibrary *lib, const char *tag,
                       UiLibraryDoneFn *done, void *opaque, GError **errp)
{
    if (refuse_busy(lib, errp)) {
        return false;
    }
    Entry *e = visible_entry(lib, tag, errp);
    if (!e) {
        return false;
    }
    g_autofree char *backup = state_get(lib, tag, "backup");
    trash(lib, backup);
    trash(lib, tag);
    index_save(lib);
    Op *op = op_new(lib, OP_DELETE, done, opaque);
    op->tag = g_strdup(tag);
    op->name = g_strdup(e->pub.name);
    op->message = g_strdup_printf("Deleted '%s'", op->name);
    return op_run_flush(lib, op);
}

/* ---- the index only ---- */

bool ui_library_rename(UiLibrary *lib, const char *tag, const char *name,
                       GError **errp)
{
    Entry *e = visible_entry(lib, tag, errp);
    if (!e) {
        return false;
    }
    if (!name || !g_utf8_validate(name, -1, NULL)) {
        hw_error_set(errp, "A name must be UTF-8 text");
        return false;
    }
    glong n = g_utf8_strlen(name, -1);
    if (n < 1 || n > NAME_MAX_CHARS) {
        hw_error_set(errp, "A name has 1 to %d characters", NAME_MAX_CHARS);
        return false;
    }
    state_set(lib, tag, "name", name);
    index_save(lib);
    entry_sync_index(lib, e);
    return true;
}

bool ui_library_bind(UiLibrary *lib, const char *tag, int slot,
                     GError **errp)
{
    if (slot != 0 && !slot_ok(slot, errp)) {
        return false;
    }
    Entry *e = visible_entry(lib, tag, errp);
    if (!e) {
        return false;
    }
    /* One slot per state, one state per slot (within its title). */
    if (e->pub.slot) {
        slot_set(lib, e->pub.title, e->pub.slot, NULL);
    }
    if (slot) {
        slot_set(lib, e->pub.title, slot, tag);
    }
    index_save(lib);
    refresh(lib);
    return true;
}

/* ---- safety ---- */

void ui_library_rollback(UiLibrary *lib, const char *tag, UiRollback *out)
{
    *out = (UiRollback){ 0 };
    refresh(lib);
    Entry *e = entry_get(lib, tag);
    if (!e) {
        return;
    }
    uint64_t now = machine_frame(lib->m);
    out->frames = now > e->pub.frame ? now - e->pub.frame : 0;
    int64_t bytes = bitmap_dirty_bytes(lib, tag);
    if (bytes >= 0) {
        out->known = true;
        out->disk_bytes = (uint64_t)bytes;
    }
}

char *ui_library_rollback_warning(UiLibrary *lib, const char *tag)
{
    UiRollback rb;
    ui_library_rollback(lib, tag, &rb);
    Entry *e = entry_get(lib, tag);
    if (!e || (!rb.frames && !rb.disk_bytes)) {
        return NULL;
    }
    if (!rb.frames) {
        /* The frame count started over (a restart): only the disk. */
        return g_strdup_printf("Loading '%s' undoes in-game saves made "
                               "since", e->pub.name);
    }
    g_autofree char *span = format_minutes(rb.frames);
    return g_strdup_printf("Loading '%s' undoes %s of play%s", e->pub.name,
                           span, rb.disk_bytes ?
                           " and in-game saves made since" : "");
}

bool ui_library_disc_mismatch(UiLibrary *lib, const char *tag,
                              char **state_disc)
{
    if (state_disc) {
        *state_disc = NULL;
    }
    refresh(lib);
    Entry *e = entry_get(lib, tag);
    if (!e || !e->pub.disc_path ||
        !g_strcmp0(e->pub.disc_path, lib->disc_path)) {
        return false;
    }
    if (state_disc) {
        *state_disc = g_strdup(e->pub.disc_path);
    }
    return true;
}
