/*
 * txn-journal.c - the records of multi-image internal snapshots and their
 * recovery; see txn-journal.h.
 *
 * Invariants: a record is complete or absent under its name (written to
 * a temporary name, fsynced, renamed, folder fsynced); every record of a
 * transaction lists the same snapshots; records are removed only once
 * each image is known to hold its snapshot or to lack it, so a kill at
 * any instant leaves either no record or records recovery can act on.
 * The record's writes are a few hundred bytes and three fsyncs per image,
 * done before the transaction's commit (outside the guest's pause).
 * Every create, write, fsync, rename and unlink of a record goes through
 * util/durable-io.h (the seam power-loss tests replace).
 */
#include "block/txn-journal.h"
#include "block/block_int.h"
#include "block/snapshot.h"
#include "util/cutils.h"
#include "util/durable-io.h"
#include "util/error.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOURNAL_SUFFIX ".xblk-txn"
#define JOURNAL_MAX_BYTES (1 << 20)

typedef struct JournalEntry {
    char *image;                /* absolute path of the image file */
    char *name;                 /* the snapshot's name on it */
    /* A delete's record: which snapshot of that name exactly. */
    char *id;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
} JournalEntry;

struct TxnJournal {
    GArray *entries;            /* JournalEntry */
};

#define OP_DELETE "delete"

/* Set while recovery opens images: their own records wait for it. */
static bool recovering;

static void entry_clear(gpointer p)
{
    JournalEntry *e = p;
    g_free(e->image);
    g_free(e->name);
    g_free(e->id);
}

static GArray *entries_new(void)
{
    GArray *a = g_array_new(FALSE, TRUE, sizeof(JournalEntry));
    g_array_set_clear_func(a, entry_clear);
    return a;
}

/* The image file under a node: its host path, made absolute. */
static char *image_path(BlockDriverState *bs)
{
    if (!bs->filename || !*bs->filename) {
        return NULL;
    }
    char *real = realpath(bs->filename, NULL);
    if (real) {
        char *p = g_strdup(real);
        free(real);
        return p;
    }
    return g_canonicalize_filename(bs->filename, NULL);
}

static char *record_path(const char *image)
{
    g_autofree char *dir = g_path_get_dirname(image);
    g_autofree char *base = g_path_get_basename(image);
    g_autofree char *name = g_strdup_printf(".%s" JOURNAL_SUFFIX, base);
    return g_build_filename(dir, name, NULL);
}

/* ---- writing and removing records ---- */

static char *entries_to_json(GArray *entries, bool del)
{
    json_t *list = json_array();
    for (guint i = 0; i < entries->len; i++) {
        JournalEntry *e = &g_array_index(entries, JournalEntry, i);
        json_t *o = json_pack("{s:s, s:s}", "image", e->image, "name",
                              e->name);
        if (del) {
            json_object_set_new(o, "id", json_string(e->id));
            json_object_set_new(o, "date-sec", json_integer(e->date_sec));
            json_object_set_new(o, "date-nsec", json_integer(e->date_nsec));
            json_object_set_new(o, "vm-clock-nsec",
                                json_integer((json_int_t)e->vm_clock_nsec));
        }
        json_array_append_new(list, o);
    }
    json_t *doc = json_pack("{s:i, s:o}", "xblk-transaction", 1,
                            "snapshots", list);
    if (del) {
        json_object_set_new(doc, "op", json_string(OP_DELETE));
    }
    char *text = json_dumps(doc, JSON_INDENT(1));
    json_decref(doc);
    return text;
}

/* text into path, durably: temporary file, fsync, rename, folder fsync
 * (through util/durable-io.h, the seam power-loss tests replace). */
static bool write_durable(const char *path, const char *text, GError **errp)
{
    g_autofree char *tmp = g_strconcat(path, ".tmp", NULL);
    int fd = durable_openat(AT_FDCWD, tmp,
                            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not create '%s'", tmp);
        return false;
    }
    int err = durable_replace(fd, AT_FDCWD, tmp, path, text, strlen(text));
    if (err) {
        error_setg_errno(errp, err, "Could not write '%s'", tmp);
        return false;
    }
    err = durable_sync_parent(path);
    if (err) {
        error_setg_errno(errp, err, "Could not sync the folder of '%s'",
                         path);
        return false;
    }
    return true;
}

/* A record a kill cut short while it was written (never renamed into
 * place: nothing of its transaction was written to the images yet). */
static void remove_partial(const char *rec)
{
    g_autofree char *tmp = g_strconcat(rec, ".tmp", NULL);
    durable_unlinkat(AT_FDCWD, tmp, 0);
}

/* Every record of entries goes; false if one could not be removed. */
static bool remove_records(GArray *entries)
{
    bool ok = true;
    for (guint i = 0; i < entries->len; i++) {
        JournalEntry *e = &g_array_index(entries, JournalEntry, i);
        g_autofree char *rec = record_path(e->image);
        remove_partial(rec);
        if (durable_unlinkat(AT_FDCWD, rec, 0) < 0 && errno != ENOENT) {
            warn_report("could not remove '%s': %s", rec, g_strerror(errno));
            ok = false;
            continue;
        }
        durable_sync_parent(rec);
    }
    return ok;
}

static bool has_image(GArray *entries, const char *image)
{
    for (guint i = 0; i < entries->len; i++) {
        if (!strcmp(g_array_index(entries, JournalEntry, i).image, image)) {
            return true;
        }
    }
    return false;
}

static TxnJournal *journal_write(GArray **entries_p, bool del,
                                 GError **errp);

TxnJournal *txn_journal_begin(BlockDriverState *const *bs,
                              const char *const *names, guint n,
                              GError **errp)
{
    g_autoptr(GArray) entries = entries_new();
    guint images = 0;
    for (guint i = 0; i < n; i++) {
        char *image = image_path(bs[i]);
        if (!image) {
            continue;
        }
        images += !has_image(entries, image);
        JournalEntry e = { image, g_strdup(names[i]) };
        g_array_append_val(entries, e);
    }
    if (images < 2) {
        return NULL;
    }
    return journal_write(&entries, false, errp);
}

/* Writes the records of *entries beside every image they name; the
 * journal that removes them again, or NULL with *errp set (none left). */
static TxnJournal *journal_write(GArray **entries_p, bool del,
                                 GError **errp)
{
    GArray *entries = *entries_p;
    /* A record still beside one of the images is an interrupted
     * transaction or delete its open could not resolve (or a delete that
     * failed half-way): it is not overwritten, that would lose it. */
    for (guint i = 0; i < entries->len; i++) {
        g_autofree char *rec =
            record_path(g_array_index(entries, JournalEntry, i).image);
        if (g_file_test(rec, G_FILE_TEST_EXISTS)) {
            error_setg(errp, "an interrupted transaction is recorded in "
                       "'%s': reopen the image to resolve it first", rec);
            return NULL;
        }
    }
    g_autofree char *text = entries_to_json(entries, del);
    for (guint i = 0; i < entries->len; i++) {
        JournalEntry *e = &g_array_index(entries, JournalEntry, i);
        g_autofree char *rec = record_path(e->image);
        if (!write_durable(rec, text, errp)) {
            g_array_set_size(entries, i);   /* those written go again */
            remove_records(entries);
            return NULL;
        }
    }
    TxnJournal *j = g_new0(TxnJournal, 1);
    j->entries = g_steal_pointer(entries_p);
    return j;
}

TxnJournal *txn_journal_begin_delete(BlockDriverState *const *bs,
                                     const BdrvSnapshotInfo *sn, guint n,
                                     GError **errp)
{
    g_autoptr(GArray) entries = entries_new();
    guint images = 0;
    for (guint i = 0; i < n; i++) {
        char *image = image_path(bs[i]);
        if (!image) {
            continue;
        }
        images += !has_image(entries, image);
        JournalEntry e = {
            .image = image, .name = g_strdup(sn[i].name ? sn[i].name : ""),
            .id = g_strdup(sn[i].id_str ? sn[i].id_str : ""),
            .date_sec = sn[i].date_sec, .date_nsec = sn[i].date_nsec,
            .vm_clock_nsec = sn[i].vm_clock_nsec,
        };
        g_array_append_val(entries, e);
    }
    if (images < 2) {
        return NULL;
    }
    return journal_write(&entries, true, errp);
}

void txn_journal_end(TxnJournal *j)
{
    if (!j) {
        return;
    }
    remove_records(j->entries);
    g_array_unref(j->entries);
    g_free(j);
}

void txn_journal_keep(TxnJournal *j)
{
    if (!j) {
        return;
    }
    for (guint i = 0; i < j->entries->len; i++) {
        warn_report("the delete of snapshot '%s' is left to finish at the "
                    "next open of '%s'",
                    g_array_index(j->entries, JournalEntry, i).name,
                    g_array_index(j->entries, JournalEntry, i).image);
    }
    g_array_unref(j->entries);
    g_free(j);
}

/* ---- recovery ---- */

static bool json_u64(json_t *o, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static GArray *parse_record(const char *rec, bool *del, GError **errp)
{
    g_autofree char *text = NULL;
    gsize len = 0;
    GError *err = NULL;
    if (!g_file_get_contents(rec, &text, &len, &err)) {
        g_propagate_error(errp, err);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = len <= JOURNAL_MAX_BYTES
                  ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)
                  : NULL;
    json_t *list = doc ? json_object_get(doc, "snapshots") : NULL;
    json_t *op = doc ? json_object_get(doc, "op") : NULL;
    *del = op && !g_strcmp0(json_string_value(op), OP_DELETE);
    if (op && !*del) {
        list = NULL;            /* an operation this version does not know */
    }
    GArray *entries = entries_new();
    for (size_t i = 0; json_is_array(list) && i < json_array_size(list);
         i++) {
        json_t *o = json_array_get(list, i);
        const char *image = json_string_value(json_object_get(o, "image"));
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *id = json_string_value(json_object_get(o, "id"));
        uint64_t date_sec = 0, date_nsec = 0, clock = 0;
        if (!image || !name || !g_path_is_absolute(image) ||
            (*del && (!id || !json_u64(o, "date-sec", &date_sec) ||
                      !json_u64(o, "date-nsec", &date_nsec) ||
                      !json_u64(o, "vm-clock-nsec", &clock)))) {
            g_array_set_size(entries, 0);
            break;
        }
        JournalEntry e = {
            .image = g_strdup(image), .name = g_strdup(name),
            .id = g_strdup(id), .date_sec = date_sec,
            .date_nsec = date_nsec, .vm_clock_nsec = clock,
        };
        g_array_append_val(entries, e);
    }
    json_decref(doc);
    if (!entries->len) {
        error_setg(errp, "'%s' is not a transaction record", rec);
        g_array_unref(entries);
        return NULL;
    }
    return entries;
}

/* The open node of image (a format node that can hold snapshots). */
static BlockDriverState *find_open(const char *image)
{
    for (BlockDriverState *bs = bdrv_next_node(NULL); bs;
         bs = bdrv_next_node(bs)) {
        g_autofree char *p = bs->drv && bdrv_can_snapshot(bs)
                             ? image_path(bs) : NULL;
        if (p && !strcmp(p, image)) {
            return bs;
        }
    }
    return NULL;
}

static bool has_snapshot(BlockDriverState *bs, const char *name)
{
    BdrvSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(bs, &list);
    bool found = false;
    for (int i = 0; i < n && !found; i++) {
        found = !g_strcmp0(list[i].name, name);
    }
    if (n > 0) {
        bdrv_snapshot_list_free(list, n);
    }
    return found;
}

typedef struct Member {
    BlockDriverState *bs;
    bool opened_here;
    bool has;
} Member;

static void members_close(Member *m, guint n)
{
    for (guint i = 0; i < n; i++) {
        if (m[i].opened_here && m[i].bs) {
            bdrv_unref(m[i].bs);
        }
    }
}

/* The images of entries, open (NULL: the file is gone); false with
 * *errp set (and none left open here) if one could not be opened. */
static bool members_open(GArray *entries, Member *m, GError **errp)
{
    for (guint i = 0; i < entries->len; i++) {
        JournalEntry *e = &g_array_index(entries, JournalEntry, i);
        m[i].bs = find_open(e->image);
        if (!m[i].bs) {
            /* The same image named twice: opened once. */
            for (guint k = 0; k < i && !m[i].bs; k++) {
                if (!strcmp(g_array_index(entries, JournalEntry, k).image,
                            e->image)) {
                    m[i].bs = m[k].bs;
                }
            }
        }
        if (!m[i].bs && g_file_test(e->image, G_FILE_TEST_EXISTS)) {
            m[i].bs = bdrv_open(e->image, NULL, BDRV_O_RDWR, errp);
            if (!m[i].bs) {
                members_close(m, i);
                return false;
            }
            m[i].opened_here = true;
        }
    }
    return true;
}

/* The snapshot a delete's record names on bs, exactly (name, id, date
 * and machine clock): a newer snapshot that took the same name after the
 * delete completed is never it.  A new array element's id in *id. */
static bool find_recorded(BlockDriverState *bs, const JournalEntry *e,
                          char **id)
{
    BdrvSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(bs, &list);
    bool found = false;
    for (int i = 0; i < n && !found; i++) {
        found = !g_strcmp0(list[i].name, e->name) &&
                !g_strcmp0(list[i].id_str, e->id) &&
                list[i].date_sec == e->date_sec &&
                list[i].date_nsec == e->date_nsec &&
                list[i].vm_clock_nsec == e->vm_clock_nsec;
        if (found) {
            *id = g_strdup(list[i].id_str);
        }
    }
    if (n > 0) {
        bdrv_snapshot_list_free(list, n);
    }
    return found;
}

/* An interrupted delete: it had started, so it completes - every
 * recorded snapshot still present goes. */
static int resolve_delete(GArray *entries, GError **errp)
{
    g_autofree Member *m = g_new0(Member, entries->len);
    if (!members_open(entries, m, errp)) {
        return -1;
    }
    int deleted = 0;
    for (guint i = 0; i < entries->len; i++) {
        JournalEntry *e = &g_array_index(entries, JournalEntry, i);
        g_autofree char *id = NULL;
        if (!m[i].bs || !find_recorded(m[i].bs, e, &id)) {
            continue;
        }
        if (bdrv_snapshot_delete(m[i].bs, id, e->name, errp) < 0) {
            members_close(m, entries->len);
            return -1;
        }
        info_report("removed snapshot '%s' from '%s': its delete was "
                    "interrupted before every image lost it", e->name,
                    e->image);
        deleted++;
    }
    members_close(m, entries->len);
    return deleted;
}

static int resolve(GArray *entries, GError **errp)
{
    g_autofree Member *m = g_new0(Member, entries->len);
    bool all = true;
    if (!members_open(entries, m, errp)) {
        return -1;
    }
    for (guint i = 0; i < entries->len; i++) {
        JournalEntry *e = &g_array_index(entries, JournalEntry, i);
        m[i].has = m[i].bs && has_snapshot(m[i].bs, e->name);
        all &= m[i].has;
    }
    int deleted = 0;
    for (guint i = 0; i < entries->len && !all; i++) {
        JournalEntry *e = &g_array_index(entries, JournalEntry, i);
        if (!m[i].has) {
            continue;
        }
        if (bdrv_snapshot_delete(m[i].bs, NULL, e->name, errp) < 0) {
            members_close(m, entries->len);
            return -1;
        }
        info_report("removed snapshot '%s' from '%s': its transaction was "
                    "interrupted before every image had it", e->name,
                    e->image);
        deleted++;
    }
    members_close(m, entries->len);
    return deleted;
}

int txn_journal_recover(BlockDriverState *bs, GError **errp)
{
    g_autofree char *image = recovering ? NULL : image_path(bs);
    g_autofree char *rec = image ? record_path(image) : NULL;
    if (!rec) {
        return 0;
    }
    if (!g_file_test(rec, G_FILE_TEST_EXISTS)) {
        remove_partial(rec);
        return 0;
    }
    bool del = false;
    g_autoptr(GArray) entries = parse_record(rec, &del, errp);
    if (!entries) {
        return -1;
    }
    recovering = true;
    int ret = del ? resolve_delete(entries, errp) : resolve(entries, errp);
    recovering = false;
    if (ret >= 0) {
        remove_records(entries);
    } else {
        g_prefix_error(errp, "Could not resolve the interrupted transaction "
                       "recorded in '%s': ", rec);
    }
    return ret;
}
