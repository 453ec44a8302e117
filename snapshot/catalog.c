/*
 * catalog.c - the snapshot catalog on disk and the snapshot tree in
 * memory (see catalog.h for the API and the thread rules).
 *
 * Layout of the folder (every name below is built from a name that
 * passed cat_check_name(), so no path leaves the folder; all access goes
 * through the folder's descriptor with openat/renameat/unlinkat):
 *   NAME.xml            one snapshot, as dsnap_format() writes it
 *   current             "NAME\n"; absent or empty = no current snapshot
 *   domain.xml          the domain definition (opaque here), hence the
 *                       snapshot name "domain" is reserved
 *   .NAME.intent.xml    an intent record (opaque)
 *   .journal            the change in progress when it touches more than
 *                       one file (below)
 *   .tmp-XXXXXX         a file being written (six letters or digits)
 * Anything else is left alone.  Names starting with '.' are never
 * snapshot names, so our control files cannot clash with a snapshot.
 *
 * Writes: the new contents go to a fresh .tmp-XXXXXX, which is fsynced
 * and renamed over the target, then the folder is fsynced; removals
 * unlink then fsync the folder.  So each file is, after a kill at any
 * instant, either its old or its new version, and each step is durable
 * before the next one starts.  Open deletes leftover .tmp-XXXXXX files.
 * Every create, write, fsync, rename and unlink goes through
 * util/durable-io.h (the POSIX calls; power-loss tests put a simulated
 * volatile file system there); reads do not.
 *
 * A change that touches one file (add or redefine without a current
 * change, set_current, set_description, removing a leaf that is not
 * current, intents, domain.xml) is atomic by the above.  A change that
 * touches several files first writes .journal durably, then its steps in
 * the order below, then removes .journal; open redoes the whole change
 * when it finds .journal (each redo is idempotent), so a kill leaves the
 * catalog before or after the change, never between:
 *   define NAME DOC   (add/redefine making NAME current) write NAME.xml
 *                     from DOC, then current.
 *   rename OLD NEW    write NEW.xml; rewrite each child of OLD with
 *                     parent NEW; current OLD -> NEW; unlink OLD.xml.
 *                     Open redoes it only if NEW.xml exists (rename
 *                     refuses a NEW.xml that exists, so it is ours);
 *                     otherwise the rename never began and .journal goes.
 *   remove NAME       rewrite each child with NAME's parent; current
 *                     NAME -> its parent; unlink NAME.xml.  Open redoes
 *                     it while NAME.xml exists.
 * The order of steps alone already keeps the tree whole (a child is
 * rewritten before the file it pointed at disappears; NEW.xml exists
 * before any child points at it), so even without the journal no kill
 * could orphan a snapshot or lose one.
 *
 * Failures: when a write fails before any change is visible in the
 * folder, the call fails and nothing changed (.journal is withdrawn).
 * When it fails after, the object is marked broken and refuses further
 * changes; reopening redoes the change from .journal.
 *
 * Repairs on open are made in memory and reported, never written: a
 * snapshot file that does not parse or whose <name> differs from its
 * file name is skipped (kept on disk), a missing parent or a cycle makes
 * the snapshot a root, a current naming no snapshot is cleared.  They
 * reach the disk only when that snapshot (or current) is next written,
 * so a parent file that was merely damaged and gets fixed reattaches.
 */
#include "snapshot/catalog.h"
#include "util/durable-io.h"
#include "util/error.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CAT_JOURNAL ".journal"
#define CAT_CURRENT "current"
#define CAT_DOMAIN "domain.xml"
#define CAT_RESERVED "domain"
#define CAT_TMP_PREFIX ".tmp-"
#define CAT_TMP_RANDOM 6
#define CAT_INTENT_SUFFIX ".intent.xml"
/* A journal holds one document and a few names. */
#define CAT_JOURNAL_MAX (DSNAP_MAX_DOC_SIZE + 2 * 256 + 16)

struct DsnapCatalog {
    char *dir;
    int dirfd;
    GHashTable *snaps;          /* name -> DomainSnapshotDef * (owned) */
    char *current;              /* or NULL */
    GHashTable *intents;        /* set of names */
    bool broken;                /* a change failed half-way: reopen */
};

/* ---- small helpers ---- */

static void cat_report(GString *report, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

static void cat_report(GString *report, const char *fmt, ...)
{
    va_list ap;
    if (!report) {
        return;
    }
    va_start(ap, fmt);
    g_string_append_vprintf(report, fmt, ap);
    va_end(ap);
    g_string_append_c(report, '\n');
}

/* Names from outside (callers, readdir) are escaped in messages so that
 * every message stays on one line. */
static char *cat_q(const char *s)
{
    return g_strescape(s ? s : "", NULL);
}

static bool cat_check_name(const char *name, GError **errp)
{
    if (!dsnap_name_is_safe(name)) {
        g_autofree char *q = cat_q(name);
        error_setg(errp, "invalid snapshot name '%s': not a safe file name "
                   "(empty, '/', leading '.', control characters)", q);
        return false;
    }
    if (strlen(name) > DSNAP_CATALOG_NAME_MAX) {
        error_setg(errp, "snapshot name '%s' is too long for the catalog "
                   "(%zu bytes, at most %d)", name, strlen(name),
                   DSNAP_CATALOG_NAME_MAX);
        return false;
    }
    if (!strcmp(name, CAT_RESERVED)) {
        error_setg(errp, "snapshot name '%s' is reserved: the catalog "
                   "keeps the domain definition in %s", name, CAT_DOMAIN);
        return false;
    }
    return true;
}

static char *cat_snap_file(const char *name)
{
    return g_strconcat(name, ".xml", NULL);
}

static char *cat_intent_file(const char *name)
{
    return g_strconcat(".", name, CAT_INTENT_SUFFIX, NULL);
}

static DomainSnapshotDef *cat_get(const DsnapCatalog *cat, const char *name)
{
    return name ? g_hash_table_lookup(cat->snaps, name) : NULL;
}

/* libvirt's wording for an unknown snapshot. */
static DomainSnapshotDef *cat_get_or_error(const DsnapCatalog *cat,
                                           const char *name, GError **errp)
{
    DomainSnapshotDef *def = cat_get(cat, name);
    if (!def) {
        g_autofree char *q = cat_q(name);
        error_setg(errp, "no domain snapshot with matching name '%s'", q);
    }
    return def;
}

static int64_t cat_ctime(const DomainSnapshotDef *def)
{
    return def->has_creation_time ? def->creation_time : 0;
}

static gint cat_cmp_creation(gconstpointer a, gconstpointer b)
{
    const DomainSnapshotDef *x = *(DomainSnapshotDef *const *)a;
    const DomainSnapshotDef *y = *(DomainSnapshotDef *const *)b;
    if (cat_ctime(x) != cat_ctime(y)) {
        return cat_ctime(x) < cat_ctime(y) ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

/* Every definition (borrowed) in creation order: the one order all
 * listings and repairs use, so that they are deterministic. */
static GPtrArray *cat_sorted(const DsnapCatalog *cat)
{
    GPtrArray *defs = g_ptr_array_sized_new(g_hash_table_size(cat->snaps));
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, cat->snaps);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        g_ptr_array_add(defs, v);
    }
    g_ptr_array_sort(defs, cat_cmp_creation);
    return defs;
}

static GPtrArray *cat_names_of(GPtrArray *defs)
{
    GPtrArray *names = g_ptr_array_new_full(defs->len, g_free);
    for (guint i = 0; i < defs->len; i++) {
        DomainSnapshotDef *d = g_ptr_array_index(defs, i);
        g_ptr_array_add(names, g_strdup(d->name));
    }
    return names;
}

/* ---- files: atomic writes, removals, bounded reads ---- */

static bool cat_sync_dir(DsnapCatalog *cat, GError **errp)
{
    if (durable_fsync(cat->dirfd) < 0) {
        error_setg_errno(errp, errno, "could not sync folder '%s'",
                         cat->dir);
        return false;
    }
    return true;
}

static bool cat_is_tmp_name(const char *n)
{
    if (strlen(n) != strlen(CAT_TMP_PREFIX) + CAT_TMP_RANDOM ||
        !g_str_has_prefix(n, CAT_TMP_PREFIX)) {
        return false;
    }
    for (const char *c = n + strlen(CAT_TMP_PREFIX); *c; c++) {
        if (!g_ascii_isalnum(*c)) {
            return false;
        }
    }
    return true;
}

/* Creates a fresh .tmp-XXXXXX; its name goes to tmp (12 bytes). */
static int cat_create_tmp(DsnapCatalog *cat, char *tmp, GError **errp)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "abcdefghijklmnopqrstuvwxyz0123456789";
    for (int attempt = 0; attempt < 100; attempt++) {
        strcpy(tmp, CAT_TMP_PREFIX);
        for (int i = 0; i < CAT_TMP_RANDOM; i++) {
            tmp[strlen(CAT_TMP_PREFIX) + i] =
                set[g_random_int_range(0, sizeof(set) - 1)];
        }
        tmp[strlen(CAT_TMP_PREFIX) + CAT_TMP_RANDOM] = '\0';
        int fd = durable_openat(cat->dirfd, tmp, O_WRONLY | O_CREAT |
                                O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            return fd;
        }
        if (errno != EEXIST) {
            error_setg_errno(errp, errno, "could not create a temporary "
                             "file in '%s'", cat->dir);
            return -1;
        }
    }
    error_setg(errp, "could not create a temporary file in '%s': all "
               "names tried exist", cat->dir);
    return -1;
}

/* Replaces fname with data, atomically and durably.  *visible becomes
 * true once the new file is in place (even when the folder's fsync then
 * fails): the caller then knows the change may be seen. */
static bool cat_put(DsnapCatalog *cat, const char *fname, const char *data,
                    bool *visible, GError **errp)
{
    char tmp[sizeof(CAT_TMP_PREFIX) + CAT_TMP_RANDOM];
    int fd = cat_create_tmp(cat, tmp, errp);
    if (fd < 0) {
        return false;
    }
    int err = durable_replace(fd, cat->dirfd, tmp, fname, data,
                              strlen(data));
    if (err) {
        g_autofree char *q = cat_q(fname);
        error_setg_errno(errp, err, "could not write '%s/%s'", cat->dir, q);
        return false;
    }
    *visible = true;
    return cat_sync_dir(cat, errp);
}

/* Removes fname (absent is fine: redoing a change may find it gone). */
static bool cat_del(DsnapCatalog *cat, const char *fname, bool *visible,
                    GError **errp)
{
    if (durable_unlinkat(cat->dirfd, fname, 0) < 0) {
        if (errno != ENOENT) {
            g_autofree char *q = cat_q(fname);
            error_setg_errno(errp, errno, "could not remove '%s/%s'",
                             cat->dir, q);
            return false;
        }
    } else {
        *visible = true;
    }
    return cat_sync_dir(cat, errp);
}

static bool cat_file_exists(DsnapCatalog *cat, const char *fname)
{
    struct stat st;
    return fstatat(cat->dirfd, fname, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Reads a regular file of at most limit bytes, NUL-terminated.  Never
 * follows a symbolic link and never blocks on a FIFO. */
static char *cat_read(DsnapCatalog *cat, const char *fname, size_t limit,
                      size_t *lenp, GError **errp)
{
    g_autofree char *q = cat_q(fname);
    struct stat st;
    int fd = openat(cat->dirfd, fname,
                    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ELOOP) {
        error_setg(errp, "'%s/%s' is a symbolic link, not a regular file",
                   cat->dir, q);
        return NULL;
    }
    if (fd < 0) {
        error_setg_errno(errp, errno, "could not read '%s/%s'", cat->dir, q);
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        error_setg(errp, "'%s/%s' is not a regular file", cat->dir, q);
        close(fd);
        return NULL;
    }
    if ((guint64)st.st_size > limit) {
        error_setg(errp, "'%s/%s' is too large (%" G_GUINT64_FORMAT
                   " bytes, at most %zu)", cat->dir, q,
                   (guint64)st.st_size, limit);
        close(fd);
        return NULL;
    }
    /* The file may grow meanwhile: never read past limit. */
    GString *buf = g_string_sized_new(st.st_size + 1);
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "could not read '%s/%s'",
                             cat->dir, q);
            break;
        }
        if (n == 0) {
            close(fd);
            *lenp = buf->len;
            return g_string_free(buf, FALSE);
        }
        if (buf->len + n > limit) {
            error_setg(errp, "'%s/%s' is too large (at most %zu bytes)",
                       cat->dir, q, limit);
            break;
        }
        g_string_append_len(buf, chunk, n);
    }
    close(fd);
    g_string_free(buf, TRUE);
    return NULL;
}

/* ---- steps of a change ---- */

static bool cat_writable(const DsnapCatalog *cat, GError **errp)
{
    if (cat->broken) {
        error_setg(errp, "snapshot catalog '%s': an earlier change failed "
                   "half-way; reopen the catalog to finish it", cat->dir);
        return false;
    }
    return true;
}

/* Ends a failed change: withdraws the journal when nothing else became
 * visible, otherwise marks the catalog broken (open will redo it). */
static bool cat_abort(DsnapCatalog *cat, bool visible, bool journaled,
                      GError **errp)
{
    if (!visible && journaled &&
        ((durable_unlinkat(cat->dirfd, CAT_JOURNAL, 0) < 0 &&
          errno != ENOENT) ||
         durable_fsync(cat->dirfd) < 0)) {
        visible = true;
    }
    if (visible) {
        cat->broken = true;
        if (errp && *errp) {
            g_autofree char *old = (*errp)->message;
            (*errp)->message = g_strdup_printf(
                "%s (the change is half-done on disk: reopen the catalog "
                "to finish it)", old);
        }
    }
    return false;
}

static bool cat_write_def(DsnapCatalog *cat, const DomainSnapshotDef *def,
                          bool *visible, GError **errp)
{
    g_autofree char *xml = dsnap_format(def);
    g_autofree char *fname = cat_snap_file(def->name);
    return cat_put(cat, fname, xml, visible, errp);
}

/* Rewrites def with another parent; memory follows the disk. */
static bool cat_reparent(DsnapCatalog *cat, DomainSnapshotDef *def,
                         const char *parent, bool *visible, GError **errp)
{
    char *old = def->parent;
    bool done = false;
    def->parent = g_strdup(parent);
    bool ok = cat_write_def(cat, def, &done, errp);
    if (!ok && !done) {
        g_free(def->parent);
        def->parent = old;
        return false;
    }
    g_free(old);
    *visible = true;
    return ok;
}

static bool cat_write_current(DsnapCatalog *cat, const char *name,
                              bool *visible, GError **errp)
{
    bool done = false;
    bool ok;
    if (name) {
        g_autofree char *text = g_strconcat(name, "\n", NULL);
        ok = cat_put(cat, CAT_CURRENT, text, &done, errp);
    } else {
        ok = cat_del(cat, CAT_CURRENT, &done, errp);
    }
    if (ok || done) {
        char *copy = g_strdup(name);
        g_free(cat->current);
        cat->current = copy;
        *visible = true;
    }
    return ok;
}

static bool cat_write_journal(DsnapCatalog *cat, const char *text,
                              bool *journaled, GError **errp)
{
    return cat_put(cat, CAT_JOURNAL, text, journaled, errp);
}

static bool cat_end_journal(DsnapCatalog *cat, bool *visible, GError **errp)
{
    return cat_del(cat, CAT_JOURNAL, visible, errp);
}

/* ---- the changes (each also serves open's redo) ---- */

/* Writes *pdef and, if make_current, the current pointer; steals *pdef
 * once its file is in place (on failure before that it is left). */
static bool cat_finish_define(DsnapCatalog *cat, DomainSnapshotDef **pdef,
                              bool make_current, bool journaled,
                              GError **errp)
{
    bool visible = false;
    DomainSnapshotDef *def = *pdef;
    if (!cat_write_def(cat, def, &visible, errp)) {
        if (visible) {
            g_hash_table_replace(cat->snaps, g_strdup(def->name), def);
            *pdef = NULL;
        }
        return cat_abort(cat, visible, journaled, errp);
    }
    g_hash_table_replace(cat->snaps, g_strdup(def->name), def);
    *pdef = NULL;
    if ((make_current && !cat_write_current(cat, def->name, &visible,
                                            errp)) ||
        (journaled && !cat_end_journal(cat, &visible, errp))) {
        return cat_abort(cat, true, journaled, errp);
    }
    return true;
}

static bool cat_define(DsnapCatalog *cat, DomainSnapshotDef **pdef,
                       bool make_current, GError **errp)
{
    const char *name = (*pdef)->name;
    make_current = make_current && g_strcmp0(cat->current, name);
    bool journaled = false;
    if (make_current) {
        /* The journal carries the document: open can redo it whole. */
        g_autofree char *xml = dsnap_format(*pdef);
        g_autofree char *text = g_strconcat("define\n", name, "\n", xml,
                                            NULL);
        if (!cat_write_journal(cat, text, &journaled, errp)) {
            return cat_abort(cat, false, journaled, errp);
        }
    }
    return cat_finish_define(cat, pdef, make_current, journaled, errp);
}

/* Children of old_name move to new_name, then the current pointer, then
 * OLD.xml goes.  new_name's definition is already in memory and on disk;
 * old_name's may still be (open's redo) and is dropped. */
static bool cat_finish_rename(DsnapCatalog *cat, const char *old_name,
                              const char *new_name, bool *visible,
                              GError **errp)
{
    g_autoptr(GPtrArray) defs = cat_sorted(cat);
    g_autofree char *old_file = cat_snap_file(old_name);
    for (guint i = 0; i < defs->len; i++) {
        DomainSnapshotDef *d = g_ptr_array_index(defs, i);
        if (!g_strcmp0(d->parent, old_name) && strcmp(d->name, old_name) &&
            !cat_reparent(cat, d, new_name, visible, errp)) {
            return false;
        }
    }
    if (!g_strcmp0(cat->current, old_name) &&
        !cat_write_current(cat, new_name, visible, errp)) {
        return false;
    }
    if (!cat_del(cat, old_file, visible, errp)) {
        return false;
    }
    g_hash_table_remove(cat->snaps, old_name);
    return cat_end_journal(cat, visible, errp);
}

/* Children of name get its parent, the current pointer moves to the
 * parent, then NAME.xml goes. */
static bool cat_finish_remove(DsnapCatalog *cat, const char *name,
                              bool journaled, bool *visible, GError **errp)
{
    DomainSnapshotDef *def = cat_get(cat, name);
    g_autofree char *parent = g_strdup(def->parent);
    g_autofree char *fname = cat_snap_file(name);
    g_autoptr(GPtrArray) defs = cat_sorted(cat);
    for (guint i = 0; i < defs->len; i++) {
        DomainSnapshotDef *d = g_ptr_array_index(defs, i);
        if (!g_strcmp0(d->parent, name) &&
            !cat_reparent(cat, d, parent, visible, errp)) {
            return false;
        }
    }
    if (!g_strcmp0(cat->current, name) &&
        !cat_write_current(cat, parent, visible, errp)) {
        return false;
    }
    if (!cat_del(cat, fname, visible, errp)) {
        return false;
    }
    g_hash_table_remove(cat->snaps, name);
    return !journaled || cat_end_journal(cat, visible, errp);
}

/* ---- open ---- */

static bool cat_open_dir(DsnapCatalog *cat, bool create, GError **errp)
{
    struct stat st;
    if (stat(cat->dir, &st) < 0) {
        if (errno != ENOENT || !create) {
            error_setg_errno(errp, errno, "could not open snapshot catalog "
                             "'%s'", cat->dir);
            return false;
        }
        if (g_mkdir_with_parents(cat->dir, 0700) < 0) {
            error_setg_errno(errp, errno, "could not create snapshot "
                             "catalog '%s'", cat->dir);
            return false;
        }
        /* The new folder's own entry must be durable too. */
        durable_sync_parent(cat->dir);
    } else if (!S_ISDIR(st.st_mode)) {
        error_setg(errp, "snapshot catalog '%s' is not a folder", cat->dir);
        return false;
    }
    cat->dirfd = open(cat->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cat->dirfd < 0) {
        error_setg_errno(errp, errno, "could not open snapshot catalog "
                         "'%s'", cat->dir);
        return false;
    }
    return true;
}

/* What a directory entry is to the catalog. */
typedef enum {
    CAT_ENTRY_OTHER,
    CAT_ENTRY_TMP,
    CAT_ENTRY_SNAPSHOT,
    CAT_ENTRY_INTENT,
} CatEntry;

/* Sorts one entry; *name gets the snapshot or intent name. */
static CatEntry cat_classify(const char *n, char **name)
{
    size_t len = strlen(n), slen = strlen(CAT_INTENT_SUFFIX);
    *name = NULL;
    if (cat_is_tmp_name(n)) {
        return CAT_ENTRY_TMP;
    }
    if (n[0] == '.' && len > slen + 1 && g_str_has_suffix(n,
                                                        CAT_INTENT_SUFFIX)) {
        *name = g_strndup(n + 1, len - slen - 1);
        return CAT_ENTRY_INTENT;
    }
    if (n[0] == '.' || !strcmp(n, CAT_DOMAIN) ||
        !g_str_has_suffix(n, ".xml")) {
        return CAT_ENTRY_OTHER;
    }
    *name = g_strndup(n, len - 4);
    return CAT_ENTRY_SNAPSHOT;
}

/* Loads NAME.xml; refusals are reported and the file left alone. */
static void cat_load_snapshot(DsnapCatalog *cat, const char *fname,
                              const char *name, GString *report)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *q = cat_q(fname);
    size_t len;
    if (!cat_check_name(name, &err)) {
        cat_report(report, "ignoring '%s': %s", q, err->message);
        return;
    }
    g_autofree char *buf = cat_read(cat, fname, DSNAP_MAX_DOC_SIZE, &len,
                                    &err);
    DomainSnapshotDef *def = buf ? dsnap_parse_string(buf, len, &err) : NULL;
    if (!def) {
        cat_report(report, "ignoring '%s': %s", q, err->message);
        return;
    }
    if (g_strcmp0(def->name, name)) {
        g_autofree char *qn = cat_q(def->name);
        cat_report(report, "ignoring '%s': its <name> is '%s', not '%s'",
                   q, def->name ? qn : "(none)", name);
        dsnap_def_free(def);
        return;
    }
    g_hash_table_replace(cat->snaps, g_strdup(name), def);
}

static gint cat_cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool cat_scan(DsnapCatalog *cat, GString *report, GError **errp)
{
    int fd = dup(cat->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        error_setg_errno(errp, errno, "could not list snapshot catalog "
                         "'%s'", cat->dir);
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    bool removed = false;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            g_ptr_array_add(files, g_strdup(e->d_name));
        }
        errno = 0;
    }
    int err = errno;
    closedir(d);
    if (err) {
        error_setg_errno(errp, err, "could not list snapshot catalog '%s'",
                         cat->dir);
        return false;
    }
    /* Sorted: reports come out in the same order every time. */
    g_ptr_array_sort(files, cat_cmp_str);
    for (guint i = 0; i < files->len; i++) {
        const char *n = g_ptr_array_index(files, i);
        g_autofree char *name = NULL;
        g_autofree char *q = cat_q(n);
        switch (cat_classify(n, &name)) {
        case CAT_ENTRY_TMP:
            if (durable_unlinkat(cat->dirfd, n, 0) < 0) {
                cat_report(report, "could not remove leftover temporary "
                           "file '%s': %s", q, g_strerror(errno));
            } else {
                cat_report(report, "removed leftover temporary file '%s'",
                           q);
                removed = true;
            }
            break;
        case CAT_ENTRY_INTENT:
            if (cat_check_name(name, NULL)) {
                g_hash_table_add(cat->intents, g_steal_pointer(&name));
            } else {
                cat_report(report, "ignoring intent record '%s': not a "
                           "valid snapshot name", q);
            }
            break;
        case CAT_ENTRY_SNAPSHOT:
            cat_load_snapshot(cat, n, name, report);
            break;
        case CAT_ENTRY_OTHER:
            break;
        }
    }
    /* Not fatal: the files were only leftovers. */
    if (removed && durable_fsync(cat->dirfd) < 0) {
        cat_report(report, "could not sync folder '%s': %s", cat->dir,
                   g_strerror(errno));
    }
    return true;
}

static void cat_load_current(DsnapCatalog *cat, GString *report)
{
    g_autoptr(GError) err = NULL;
    size_t len;
    if (!cat_file_exists(cat, CAT_CURRENT)) {
        return;
    }
    g_autofree char *buf = cat_read(cat, CAT_CURRENT, 4096, &len, &err);
    if (!buf) {
        cat_report(report, "ignoring the current snapshot: %s",
                   err->message);
        return;
    }
    if (len && buf[len - 1] == '\n') {
        buf[--len] = '\0';
    }
    if (len == 0) {
        return;
    }
    if (strlen(buf) != len || !cat_check_name(buf, NULL)) {
        g_autofree char *q = cat_q(buf);
        cat_report(report, "ignoring the current snapshot: '%s' is not a "
                   "valid snapshot name", q);
        return;
    }
    cat->current = g_steal_pointer(&buf);
}

/* Splits a journal into its verb, first name and the rest. */
static bool cat_parse_journal(char *text, char **verb, char **name,
                              char **rest)
{
    char *nl1 = strchr(text, '\n');
    char *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
    if (!nl2) {
        return false;
    }
    *nl1 = *nl2 = '\0';
    *verb = text;
    *name = nl1 + 1;
    *rest = nl2 + 1;
    return cat_check_name(*name, NULL);
}

/* Redoes the change a kill interrupted (see the opening comment). */
static bool cat_redo(DsnapCatalog *cat, char *text, size_t len,
                     GString *report, GError **errp)
{
    char *verb, *name, *rest;
    bool visible = false;
    if (strlen(text) != len || !cat_parse_journal(text, &verb, &name,
                                                  &rest)) {
        cat_report(report, "removed a damaged journal");
        return cat_end_journal(cat, &visible, errp);
    }
    if (!strcmp(verb, "define")) {
        g_autoptr(GError) err = NULL;
        g_autoptr(DomainSnapshotDef) def =
            dsnap_parse_string(rest, strlen(rest), &err);
        if (!def || g_strcmp0(def->name, name)) {
            cat_report(report, "removed a damaged journal");
            return cat_end_journal(cat, &visible, errp);
        }
        cat_report(report, "finished defining snapshot '%s'", name);
        return cat_finish_define(cat, &def, true, true, errp);
    }
    if (!strcmp(verb, "rename")) {
        char *nl = strchr(rest, '\n');
        if (nl) {
            *nl = '\0';
        }
        if (!nl || nl[1] || !cat_check_name(rest, NULL)) {
            cat_report(report, "removed a damaged journal");
            return cat_end_journal(cat, &visible, errp);
        }
        if (!cat_get(cat, rest)) {
            cat_report(report, "rolled back renaming snapshot '%s'", name);
            return cat_end_journal(cat, &visible, errp);
        }
        cat_report(report, "finished renaming snapshot '%s' to '%s'", name,
                   rest);
        return cat_finish_rename(cat, name, rest, &visible, errp);
    }
    if (!strcmp(verb, "remove") && !rest[0]) {
        if (!cat_get(cat, name)) {
            return cat_end_journal(cat, &visible, errp);
        }
        cat_report(report, "finished removing snapshot '%s'", name);
        return cat_finish_remove(cat, name, true, &visible, errp);
    }
    cat_report(report, "removed a damaged journal");
    return cat_end_journal(cat, &visible, errp);
}

static bool cat_load_journal(DsnapCatalog *cat, GString *report,
                             GError **errp)
{
    g_autoptr(GError) err = NULL;
    size_t len;
    if (!cat_file_exists(cat, CAT_JOURNAL)) {
        return true;
    }
    g_autofree char *text = cat_read(cat, CAT_JOURNAL, CAT_JOURNAL_MAX,
                                     &len, &err);
    if (!text) {
        error_setg(errp, "could not finish an interrupted change: %s",
                   err->message);
        return false;
    }
    if (!cat_redo(cat, text, len, report, errp)) {
        error_prepend(errp, "could not finish an interrupted change: ");
        return false;
    }
    return true;
}

/* A missing parent makes a root (in memory, reported). */
static void cat_fix_orphans(DsnapCatalog *cat, GPtrArray *defs,
                            GString *report)
{
    for (guint i = 0; i < defs->len; i++) {
        DomainSnapshotDef *d = g_ptr_array_index(defs, i);
        if (d->parent && !cat_get(cat, d->parent)) {
            cat_report(report, "snapshot '%s': parent '%s' does not exist; "
                       "shown as a root", d->name, d->parent);
            g_clear_pointer(&d->parent, g_free);
        }
    }
}

/* A parent chain that loops is cut at the first snapshot met twice. */
static void cat_fix_cycles(DsnapCatalog *cat, GPtrArray *defs,
                           GString *report)
{
    enum { NEW = 0, ON_PATH, DONE };
    g_autoptr(GHashTable) state = g_hash_table_new(g_str_hash, g_str_equal);
    g_autoptr(GPtrArray) path = g_ptr_array_new();
    for (guint i = 0; i < defs->len; i++) {
        DomainSnapshotDef *d = g_ptr_array_index(defs, i);
        g_ptr_array_set_size(path, 0);
        while (d && !GPOINTER_TO_INT(g_hash_table_lookup(state, d->name))) {
            g_hash_table_insert(state, d->name, GINT_TO_POINTER(ON_PATH));
            g_ptr_array_add(path, d);
            d = cat_get(cat, d->parent);
        }
        if (d && GPOINTER_TO_INT(g_hash_table_lookup(state, d->name)) ==
                 ON_PATH) {
            cat_report(report, "snapshot '%s': its parent chain loops back "
                       "to it; shown as a root", d->name);
            g_clear_pointer(&d->parent, g_free);
        }
        for (guint j = 0; j < path->len; j++) {
            DomainSnapshotDef *p = g_ptr_array_index(path, j);
            g_hash_table_insert(state, p->name, GINT_TO_POINTER(DONE));
        }
    }
}

static void cat_check_tree(DsnapCatalog *cat, GString *report)
{
    g_autoptr(GPtrArray) defs = cat_sorted(cat);
    cat_fix_orphans(cat, defs, report);
    cat_fix_cycles(cat, defs, report);
    if (cat->current && !cat_get(cat, cat->current)) {
        cat_report(report, "current snapshot '%s' does not exist; cleared",
                   cat->current);
        g_clear_pointer(&cat->current, g_free);
    }
}

DsnapCatalog *dsnap_catalog_open(const char *dir, bool create,
                                 GString *report, GError **errp)
{
    g_autoptr(DsnapCatalog) cat = g_new0(DsnapCatalog, 1);
    cat->dir = g_strdup(dir);
    cat->dirfd = -1;
    cat->snaps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify)dsnap_def_free);
    cat->intents = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                         NULL);
    if (!cat_open_dir(cat, create, errp) || !cat_scan(cat, report, errp)) {
        return NULL;
    }
    cat_load_current(cat, report);
    if (!cat_load_journal(cat, report, errp)) {
        return NULL;
    }
    cat_check_tree(cat, report);
    return g_steal_pointer(&cat);
}

void dsnap_catalog_free(DsnapCatalog *cat)
{
    if (!cat) {
        return;
    }
    if (cat->dirfd >= 0) {
        close(cat->dirfd);
    }
    g_hash_table_unref(cat->snaps);
    g_hash_table_unref(cat->intents);
    g_free(cat->current);
    g_free(cat->dir);
    g_free(cat);
}

const char *dsnap_catalog_dir(const DsnapCatalog *cat)
{
    return cat->dir;
}

/* ---- snapshots ---- */

const DomainSnapshotDef *dsnap_catalog_lookup(const DsnapCatalog *cat,
                                              const char *name)
{
    return cat_get(cat, name);
}

guint dsnap_catalog_count(const DsnapCatalog *cat)
{
    return g_hash_table_size(cat->snaps);
}

GPtrArray *dsnap_catalog_names(const DsnapCatalog *cat)
{
    g_autoptr(GPtrArray) defs = cat_sorted(cat);
    return cat_names_of(defs);
}

const char *dsnap_catalog_current(const DsnapCatalog *cat)
{
    return cat->current;
}

bool dsnap_catalog_set_current(DsnapCatalog *cat, const char *name,
                               GError **errp)
{
    bool visible = false;
    if (!cat_writable(cat, errp) ||
        (name && !cat_get_or_error(cat, name, errp))) {
        return false;
    }
    if (!cat_write_current(cat, name, &visible, errp)) {
        return cat_abort(cat, visible, false, errp);
    }
    return true;
}

/* ancestor is name's parent, grandparent, ... (names only). */
static bool cat_is_below(const DsnapCatalog *cat, const char *name,
                         const char *ancestor)
{
    const DomainSnapshotDef *d = cat_get(cat, name);
    /* The tree has no cycle; the bound only guards against a bug. */
    for (guint n = 0; d && d->parent && n <= g_hash_table_size(cat->snaps);
         n++) {
        if (!strcmp(d->parent, ancestor)) {
            return true;
        }
        d = cat_get(cat, d->parent);
    }
    return false;
}

/* libvirt's check on a redefinition's parent: walking up from the new
 * parent must not meet the snapshot itself. */
static bool cat_check_cycle(const DsnapCatalog *cat,
                            const DomainSnapshotDef *def, GError **errp)
{
    if (!strcmp(def->parent, def->name)) {
        error_setg(errp, "parent %s would create cycle to %s", def->parent,
                   def->name);
        return false;
    }
    const DomainSnapshotDef *d = cat_get(cat, def->parent);
    for (guint n = 0; d && d->parent && n <= g_hash_table_size(cat->snaps);
         n++) {
        if (!strcmp(d->parent, def->name)) {
            error_setg(errp, "parent %s would create cycle to %s", d->name,
                       def->name);
            return false;
        }
        d = cat_get(cat, d->parent);
    }
    return true;
}

static bool cat_check_def(DsnapCatalog *cat, const DomainSnapshotDef *def,
                          bool redefine, GError **errp)
{
    if (!def->name) {
        error_setg(errp, "snapshot definition has no <name>");
        return false;
    }
    if (!cat_check_name(def->name, errp)) {
        return false;
    }
    bool exists = cat_get(cat, def->name);
    g_autofree char *fname = cat_snap_file(def->name);
    if (exists && !redefine) {
        error_setg(errp, "domain snapshot %s already exists", def->name);
        return false;
    }
    if (!exists && cat_file_exists(cat, fname)) {
        error_setg(errp, "'%s/%s' exists but is not a snapshot of the "
                   "catalog (damaged?); move it away first", cat->dir,
                   fname);
        return false;
    }
    if (!def->parent) {
        return true;
    }
    if (!dsnap_name_is_safe(def->parent) || !cat_get(cat, def->parent)) {
        g_autofree char *q = cat_q(def->parent);
        error_setg(errp, "parent %s for snapshot %s not found", q,
                   def->name);
        return false;
    }
    return !exists || cat_check_cycle(cat, def, errp);
}

bool dsnap_catalog_add(DsnapCatalog *cat, DomainSnapshotDef *def,
                       bool make_current, GError **errp)
{
    g_autoptr(DomainSnapshotDef) owned = def;
    if (!cat_writable(cat, errp) || !cat_check_def(cat, def, false, errp)) {
        return false;
    }
    return cat_define(cat, &owned, make_current, errp);
}

bool dsnap_catalog_redefine(DsnapCatalog *cat, DomainSnapshotDef *def,
                            bool make_current, GError **errp)
{
    g_autoptr(DomainSnapshotDef) owned = def;
    if (!cat_writable(cat, errp) || !cat_check_def(cat, def, true, errp)) {
        return false;
    }
    /* As libvirt: a redefinition without <domain> keeps the old one. */
    DomainSnapshotDef *old = cat_get(cat, def->name);
    bool borrowed = old && !def->domain && old->domain;
    if (borrowed) {
        def->domain = g_steal_pointer(&old->domain);
    }
    if (!cat_define(cat, &owned, make_current, errp)) {
        if (borrowed && owned) {
            old->domain = g_steal_pointer(&owned->domain);
        }
        return false;
    }
    return true;
}

bool dsnap_catalog_rename(DsnapCatalog *cat, const char *old_name,
                          const char *new_name, GError **errp)
{
    bool journaled = false, visible = false;
    DomainSnapshotDef *def;
    if (!cat_writable(cat, errp) ||
        !(def = cat_get_or_error(cat, old_name, errp)) ||
        !cat_check_name(new_name, errp)) {
        return false;
    }
    if (!strcmp(old_name, new_name)) {
        return true;
    }
    g_autofree char *new_file = cat_snap_file(new_name);
    if (cat_get(cat, new_name)) {
        error_setg(errp, "domain snapshot %s already exists", new_name);
        return false;
    }
    if (cat_file_exists(cat, new_file)) {
        error_setg(errp, "'%s/%s' exists but is not a snapshot of the "
                   "catalog (damaged?); move it away first", cat->dir,
                   new_file);
        return false;
    }
    g_autofree char *old_copy = g_strdup(old_name);
    g_autofree char *text = g_strconcat("rename\n", old_name, "\n",
                                        new_name, "\n", NULL);
    if (!cat_write_journal(cat, text, &journaled, errp)) {
        return cat_abort(cat, false, journaled, errp);
    }
    /* NEW.xml first: from here on open redoes the rename. */
    char *saved = def->name;
    def->name = g_strdup(new_name);
    bool ok = cat_write_def(cat, def, &visible, errp);
    if (!ok && !visible) {
        g_free(def->name);
        def->name = saved;
        return cat_abort(cat, false, journaled, errp);
    }
    g_free(saved);
    gpointer key;
    g_hash_table_steal_extended(cat->snaps, old_copy, &key, NULL);
    g_free(key);
    g_hash_table_replace(cat->snaps, g_strdup(new_name), def);
    if (!ok || !cat_finish_rename(cat, old_copy, new_name, &visible, errp)) {
        return cat_abort(cat, true, journaled, errp);
    }
    return true;
}

bool dsnap_catalog_set_description(DsnapCatalog *cat, const char *name,
                                   const char *description, GError **errp)
{
    bool visible = false;
    DomainSnapshotDef *def;
    if (!cat_writable(cat, errp) ||
        !(def = cat_get_or_error(cat, name, errp))) {
        return false;
    }
    char *old = def->description;
    def->description = g_strdup(description);
    if (!cat_write_def(cat, def, &visible, errp)) {
        if (!visible) {
            g_free(def->description);
            def->description = old;
            return false;
        }
        g_free(old);
        return cat_abort(cat, true, false, errp);
    }
    g_free(old);
    return true;
}

static bool cat_has_children(const DsnapCatalog *cat, const char *name)
{
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, cat->snaps);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        if (!g_strcmp0(((DomainSnapshotDef *)v)->parent, name)) {
            return true;
        }
    }
    return false;
}

bool dsnap_catalog_remove(DsnapCatalog *cat, const char *name,
                          GError **errp)
{
    bool journaled = false, visible = false;
    if (!cat_writable(cat, errp) || !cat_get_or_error(cat, name, errp)) {
        return false;
    }
    g_autofree char *copy = g_strdup(name);
    if (cat_has_children(cat, name) || !g_strcmp0(cat->current, name)) {
        g_autofree char *text = g_strconcat("remove\n", name, "\n", NULL);
        if (!cat_write_journal(cat, text, &journaled, errp)) {
            return cat_abort(cat, false, journaled, errp);
        }
    }
    if (!cat_finish_remove(cat, copy, journaled, &visible, errp)) {
        return cat_abort(cat, visible, journaled, errp);
    }
    return true;
}

/* ---- the tree ---- */

const char *dsnap_catalog_parent(const DsnapCatalog *cat, const char *name)
{
    const DomainSnapshotDef *d = cat_get(cat, name);
    return d ? d->parent : NULL;
}

GPtrArray *dsnap_catalog_children(const DsnapCatalog *cat, const char *name)
{
    if (!cat_get(cat, name)) {
        return NULL;
    }
    g_autoptr(GPtrArray) defs = cat_sorted(cat);
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < defs->len; i++) {
        DomainSnapshotDef *d = g_ptr_array_index(defs, i);
        if (!g_strcmp0(d->parent, name)) {
            g_ptr_array_add(out, g_strdup(d->name));
        }
    }
    return out;
}

GPtrArray *dsnap_catalog_descendants(const DsnapCatalog *cat,
                                     const char *name)
{
    if (!cat_get(cat, name)) {
        return NULL;
    }
    /* Pre-order (a node before everything below it) without recursion,
     * reversed at the end: then each node follows its descendants. */
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) stack = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(stack, g_strdup(name));
    while (stack->len) {
        char *cur = g_ptr_array_steal_index(stack, stack->len - 1);
        g_autoptr(GPtrArray) kids = dsnap_catalog_children(cat, cur);
        if (strcmp(cur, name)) {
            g_ptr_array_add(out, cur);
        } else {
            g_free(cur);
        }
        for (guint i = kids->len; i-- > 0;) {
            g_ptr_array_add(stack, g_strdup(g_ptr_array_index(kids, i)));
        }
    }
    for (guint i = 0, j = out->len; i + 1 < j; i++, j--) {
        gpointer t = out->pdata[i];
        out->pdata[i] = out->pdata[j - 1];
        out->pdata[j - 1] = t;
    }
    return out;
}

bool dsnap_catalog_is_descendant(const DsnapCatalog *cat, const char *name,
                                 const char *ancestor)
{
    return name && ancestor && cat_is_below(cat, name, ancestor);
}

bool dsnap_catalog_def_is_external(const DomainSnapshotDef *def)
{
    if (def->memory == DSNAP_MODE_EXTERNAL) {
        return true;
    }
    for (guint i = 0; i < def->disks->len; i++) {
        const DsnapDiskDef *d = g_ptr_array_index(def->disks, i);
        if (d->mode == DSNAP_MODE_EXTERNAL) {
            return true;
        }
    }
    return false;
}

/* libvirt's status classes: inactive = shutoff, disk-only =
 * disk-snapshot, active = everything else. */
static bool cat_status_ok(const DsnapListFilter *f,
                          const DomainSnapshotDef *def)
{
    if (!f->active && !f->inactive && !f->disk_only) {
        return true;
    }
    switch (def->state) {
    case DSNAP_STATE_SHUTOFF:
        return f->inactive;
    case DSNAP_STATE_DISK_SNAPSHOT:
        return f->disk_only;
    default:
        return f->active;
    }
}

static bool cat_location_ok(const DsnapListFilter *f,
                            const DomainSnapshotDef *def)
{
    if (f->internal == f->external) {
        return true;
    }
    return dsnap_catalog_def_is_external(def) == f->external;
}

/* Resolves from / from_current / roots / descendants as virsh does. */
static bool cat_list_from(const DsnapCatalog *cat, const DsnapListFilter *f,
                          const char **from, GError **errp)
{
    *from = f->from;
    if (f->from_current) {
        if (f->from) {
            error_setg(errp, "'from' and 'from_current' are mutually "
                       "exclusive");
            return false;
        }
        if (!cat->current) {
            error_setg(errp, "there is no current snapshot");
            return false;
        }
        *from = cat->current;
    }
    if (f->roots && *from) {
        error_setg(errp, "'roots' and 'from' are mutually exclusive");
        return false;
    }
    if (f->descendants && !*from) {
        error_setg(errp, "'descendants' requires either 'from' or "
                   "'from_current'");
        return false;
    }
    return !*from || cat_get_or_error(cat, *from, errp);
}

GPtrArray *dsnap_catalog_list(const DsnapCatalog *cat,
                              const DsnapListFilter *filter, GError **errp)
{
    static const DsnapListFilter all;
    const DsnapListFilter *f = filter ? filter : &all;
    const char *from;
    if (!cat_list_from(cat, f, &from, errp)) {
        return NULL;
    }
    g_autoptr(GHashTable) parents = g_hash_table_new(g_str_hash,
                                                     g_str_equal);
    g_autoptr(GPtrArray) defs = cat_sorted(cat);
    for (guint i = 0; i < defs->len; i++) {
        DomainSnapshotDef *d = g_ptr_array_index(defs, i);
        if (d->parent) {
            g_hash_table_add(parents, d->parent);
        }
    }
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < defs->len; i++) {
        DomainSnapshotDef *d = g_ptr_array_index(defs, i);
        bool leaf = !g_hash_table_contains(parents, d->name);
        if ((from && (f->descendants ? !cat_is_below(cat, d->name, from)
                                     : g_strcmp0(d->parent, from))) ||
            (f->roots && d->parent) ||
            (f->leaves != f->no_leaves && leaf != f->leaves) ||
            !cat_status_ok(f, d) || !cat_location_ok(f, d)) {
            continue;
        }
        g_ptr_array_add(out, g_strdup(d->name));
    }
    return out;
}

/* virsh orders siblings by name, ignoring case. */
static gint cat_cmp_virsh(gconstpointer a, gconstpointer b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    g_autofree char *fx = g_utf8_casefold(x, -1);
    g_autofree char *fy = g_utf8_casefold(y, -1);
    int c = strcmp(fx, fy);
    return c ? c : strcmp(x, y);
}

static GPtrArray *cat_tree_children(const DsnapCatalog *cat,
                                    const char *name)
{
    GPtrArray *kids = dsnap_catalog_children(cat, name);
    g_ptr_array_sort(kids, cat_cmp_virsh);
    return kids;
}

/* One node as virsh's tree printer draws it: the node, then (when it has
 * children) a "|" line and the children one level in, and a blank line
 * (indent only) after the last child of a branch that has no children. */
static void cat_tree_node(const DsnapCatalog *cat, const char *name,
                          bool root, bool last, GString *indent,
                          GString *out)
{
    g_string_append_printf(out, "%s%s%s\n", indent->str, root ? "" : "+- ",
                           name);
    gsize mark = indent->len;
    if (!root) {
        g_string_append(indent, last ? "  " : "| ");
    }
    g_autoptr(GPtrArray) kids = cat_tree_children(cat, name);
    if (kids->len) {
        g_string_append_printf(out, "%s  |\n", indent->str);
    }
    g_string_append(indent, "  ");
    for (guint i = 0; i < kids->len; i++) {
        cat_tree_node(cat, g_ptr_array_index(kids, i), false,
                      i + 1 == kids->len, indent, out);
    }
    g_string_truncate(indent, indent->len - 2);
    if (!kids->len && last) {
        g_string_append_printf(out, "%s\n", indent->str);
    }
    g_string_truncate(indent, mark);
}

char *dsnap_catalog_format_tree(const DsnapCatalog *cat, const char *from)
{
    if (from && !cat_get(cat, from)) {
        return NULL;
    }
    g_autoptr(GString) indent = g_string_new(NULL);
    GString *out = g_string_new(NULL);
    if (from) {
        cat_tree_node(cat, from, true, true, indent, out);
        return g_string_free(out, FALSE);
    }
    g_autoptr(GPtrArray) all = dsnap_catalog_names(cat);
    g_autoptr(GPtrArray) roots = g_ptr_array_new();
    for (guint i = 0; i < all->len; i++) {
        if (!dsnap_catalog_parent(cat, g_ptr_array_index(all, i))) {
            g_ptr_array_add(roots, g_ptr_array_index(all, i));
        }
    }
    g_ptr_array_sort(roots, cat_cmp_virsh);
    for (guint i = 0; i < roots->len; i++) {
        cat_tree_node(cat, g_ptr_array_index(roots, i), true, true, indent,
                      out);
    }
    return g_string_free(out, FALSE);
}

/* ---- intent records ---- */

bool dsnap_catalog_intent_write(DsnapCatalog *cat, const char *name,
                                const char *xml, GError **errp)
{
    bool visible = false;
    if (!cat_writable(cat, errp) || !cat_check_name(name, errp)) {
        return false;
    }
    if (strlen(xml) > DSNAP_MAX_DOC_SIZE) {
        error_setg(errp, "intent record for '%s' too large (%zu bytes, at "
                   "most %d)", name, strlen(xml), DSNAP_MAX_DOC_SIZE);
        return false;
    }
    g_autofree char *fname = cat_intent_file(name);
    bool ok = cat_put(cat, fname, xml, &visible, errp);
    if (visible) {
        g_hash_table_add(cat->intents, g_strdup(name));
    }
    return ok || cat_abort(cat, visible, false, errp);
}

char *dsnap_catalog_intent_read(DsnapCatalog *cat, const char *name,
                                GError **errp)
{
    size_t len;
    if (!cat_check_name(name, errp)) {
        return NULL;
    }
    if (!g_hash_table_contains(cat->intents, name)) {
        error_setg(errp, "no intent record for snapshot '%s'", name);
        return NULL;
    }
    g_autofree char *fname = cat_intent_file(name);
    return cat_read(cat, fname, DSNAP_MAX_DOC_SIZE, &len, errp);
}

bool dsnap_catalog_intent_clear(DsnapCatalog *cat, const char *name,
                                GError **errp)
{
    bool visible = false;
    if (!cat_writable(cat, errp) || !cat_check_name(name, errp)) {
        return false;
    }
    g_autofree char *fname = cat_intent_file(name);
    bool ok = cat_del(cat, fname, &visible, errp);
    if (ok || visible) {
        g_hash_table_remove(cat->intents, name);
    }
    return ok || cat_abort(cat, visible, false, errp);
}

GPtrArray *dsnap_catalog_intents(const DsnapCatalog *cat)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, cat->intents);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        g_ptr_array_add(out, g_strdup(k));
    }
    g_ptr_array_sort(out, cat_cmp_str);
    return out;
}

/* ---- the domain definition ---- */

bool dsnap_catalog_write_domain(DsnapCatalog *cat, const char *xml,
                                GError **errp)
{
    bool visible = false;
    if (!cat_writable(cat, errp)) {
        return false;
    }
    if (strlen(xml) > DSNAP_MAX_DOC_SIZE) {
        error_setg(errp, "domain definition too large (%zu bytes, at most "
                   "%d)", strlen(xml), DSNAP_MAX_DOC_SIZE);
        return false;
    }
    return cat_put(cat, CAT_DOMAIN, xml, &visible, errp) ||
           cat_abort(cat, visible, false, errp);
}

char *dsnap_catalog_read_domain(DsnapCatalog *cat, GError **errp)
{
    size_t len;
    if (!cat_file_exists(cat, CAT_DOMAIN)) {
        error_setg(errp, "snapshot catalog '%s' has no domain definition "
                   "(%s)", cat->dir, CAT_DOMAIN);
        return NULL;
    }
    return cat_read(cat, CAT_DOMAIN, DSNAP_MAX_DOC_SIZE, &len, errp);
}
