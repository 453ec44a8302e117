/*
 * block.c - the node graph: driver registry, options, opening and closing
 * nodes, children, node names, creation and probing.
 *
 * Invariants: every open node is in all_nodes under a unique node name;
 * bs->refcnt counts the caller references plus one per parent edge; a node
 * is closed (drv->close) exactly once, when refcnt drops to zero.
 *
 * Permissions (block_int.h, QEMU's model): what a node needs is the union
 * of what its users take, and it lets others have only what all of them
 * share.  Its users are its parents, through the edge rules of
 * bdrv_edge_perm, and -- when it has backends or no parent at all -- the
 * one that opened it (consistent read, plus write when read-write,
 * sharing what every backend's device shares: everything by default).
 * BDRV_O_FORCE_SHARE (-U, read-only only) shares everything below the
 * node.  Whenever the graph or a node's read-only
 * state changes, bdrv_refresh_perms() reapplies the result to the nodes
 * whose driver holds something (the file driver's locks).  A node's
 * `file` child is locked before its parent's driver reads or writes a
 * byte of it, so an image in use elsewhere is refused untouched.
 */
#include "block/dirty-bitmap.h"
#include "block/block_int.h"
#include "block/snapshot.h"
#include "block/txn-journal.h"
#include "block/block-backend.h"
#include "util/cutils.h"
#include "util/error.h"
#include "util/main-loop.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static GList *all_nodes;
static void bdrv_relax_perms(BlockDriverState *bs);
static unsigned auto_node_counter;
static GPtrArray *drivers;

void bdrv_register(const BlockDriver *drv)
{
    if (!drivers) {
        drivers = g_ptr_array_new();
    }
    g_ptr_array_add(drivers, (gpointer)drv);
}

static void bdrv_init_once(void)
{
    static bool done;
    if (done) {
        return;
    }
    done = true;
    bdrv_register(&bdrv_file);
    bdrv_register(&bdrv_raw);
    bdrv_register(&bdrv_qcow2);
    bdrv_register(&bdrv_blkdebug);
}

static const BlockDriver *bdrv_find_driver(const char *name)
{
    bdrv_init_once();
    for (guint i = 0; i < drivers->len; i++) {
        const BlockDriver *d = g_ptr_array_index(drivers, i);
        if (!strcmp(d->format_name, name)) {
            return d;
        }
    }
    return NULL;
}

BlockDriver *bdrv_find_format(const char *name)
{
    return (BlockDriver *)bdrv_find_driver(name);
}

void bdrv_iterate_format(void (*fn)(const char *name, void *opaque),
                         void *opaque)
{
    bdrv_init_once();
    for (guint i = 0; i < drivers->len; i++) {
        const BlockDriver *d = g_ptr_array_index(drivers, i);
        fn(d->format_name, opaque);
    }
}

bool prealloc_mode_parse(const char *s, PreallocMode *out)
{
    static const char *names[] = { "off", "metadata", "falloc", "full" };
    for (int i = 0; i < 4; i++) {
        if (!strcmp(s, names[i])) {
            *out = (PreallocMode)i;
            return true;
        }
    }
    return false;
}

const char *prealloc_mode_name(PreallocMode m)
{
    static const char *names[] = { "off", "metadata", "falloc", "full" };
    return names[m];
}

/* ---- options ---- */

BlockOpts *bopts_new(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
}

void bopts_set(BlockOpts *o, const char *key, const char *value)
{
    g_hash_table_replace(o, g_strdup(key), g_strdup(value));
}

const char *bopts_get(BlockOpts *o, const char *key)
{
    return o ? g_hash_table_lookup(o, key) : NULL;
}

char *bopts_take(BlockOpts *o, const char *key)
{
    gpointer k, v;
    if (!o || !g_hash_table_steal_extended(o, key, &k, &v)) {
        return NULL;
    }
    g_free(k);
    return v;
}

bool bopts_take_bool(BlockOpts *o, const char *key, bool def, GError **errp)
{
    g_autofree char *v = bopts_take(o, key);
    if (!v) {
        return def;
    }
    if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes") ||
        !strcmp(v, "1")) {
        return true;
    }
    if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no") ||
        !strcmp(v, "0")) {
        return false;
    }
    error_setg(errp, "Parameter '%s' expects 'on' or 'off'", key);
    return def;
}

BlockOpts *bopts_extract(BlockOpts *o, const char *prefix)
{
    BlockOpts *sub = bopts_new();
    size_t plen = strlen(prefix);
    GHashTableIter it;
    gpointer k, v;
    GPtrArray *keys = g_ptr_array_new();
    g_hash_table_iter_init(&it, o);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        if (!strncmp(k, prefix, plen) && ((char *)k)[plen] == '.') {
            g_ptr_array_add(keys, k);
        }
    }
    for (guint i = 0; i < keys->len; i++) {
        char *key = g_strdup(g_ptr_array_index(keys, i));
        char *val = bopts_take(o, key);
        g_hash_table_replace(sub, g_strdup(key + plen + 1), val);
        g_free(key);
    }
    g_ptr_array_free(keys, TRUE);
    return sub;
}

bool bopts_has_prefix(BlockOpts *o, const char *prefix)
{
    size_t plen = strlen(prefix);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, o);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        if (!strncmp(k, prefix, plen) && ((char *)k)[plen] == '.') {
            return true;
        }
    }
    return false;
}

bool bopts_parse(BlockOpts *o, const char *str, GError **errp)
{
    const char *p = str;
    while (*p) {
        GString *key = g_string_new(NULL), *val = NULL;
        GString *cur = key;
        for (; *p; p++) {
            if (*p == ',') {
                if (p[1] == ',') {
                    g_string_append_c(cur, ',');
                    p++;
                    continue;
                }
                break;
            }
            if (*p == '=' && cur == key) {
                val = g_string_new(NULL);
                cur = val;
                continue;
            }
            g_string_append_c(cur, *p);
        }
        if (*p == ',') {
            p++;
        }
        if (key->len == 0) {
            error_setg(errp, "Invalid parameter ''");
            g_string_free(key, TRUE);
            if (val) {
                g_string_free(val, TRUE);
            }
            return false;
        }
        /* A bare key means "on", as in QEMU's option syntax. */
        g_hash_table_replace(o, g_string_free(key, FALSE),
                             val ? g_string_free(val, FALSE) : g_strdup("on"));
    }
    return true;
}

void bopts_free(BlockOpts *o)
{
    if (o) {
        g_hash_table_unref(o);
    }
}

/* ---- nodes ---- */

const char *bdrv_get_node_name(const BlockDriverState *bs)
{
    return bs->node_name;
}

const char *bdrv_get_format_name(const BlockDriverState *bs)
{
    return bs->drv->format_name;
}

const char *bdrv_get_filename(const BlockDriverState *bs)
{
    return bs->filename;
}

BlockDriverState *bdrv_file_bs(const BlockDriverState *bs)
{
    return bs->file ? bs->file->bs : NULL;
}

BlockDriverState *bdrv_backing_bs(const BlockDriverState *bs)
{
    return bs->backing ? bs->backing->bs : NULL;
}

bool bdrv_is_read_only(const BlockDriverState *bs)
{
    return bs->read_only;
}

int bdrv_get_flags(const BlockDriverState *bs)
{
    return bs->open_flags;
}

const char *bdrv_get_backing_filename(const BlockDriverState *bs)
{
    return bs->backing_file;
}

const char *bdrv_get_backing_format(const BlockDriverState *bs)
{
    return bs->backing_format;
}

BlockDriverState *bdrv_find_node(const char *node_name)
{
    for (GList *l = all_nodes; l; l = l->next) {
        BlockDriverState *bs = l->data;
        if (!strcmp(bs->node_name, node_name)) {
            return bs;
        }
    }
    return NULL;
}

BlockDriverState *bdrv_next_node(BlockDriverState *bs)
{
    if (!bs) {
        return all_nodes ? all_nodes->data : NULL;
    }
    GList *l = g_list_find(all_nodes, bs);
    return l && l->next ? l->next->data : NULL;
}

bool bdrv_node_name_valid(const char *name)
{
    if (!g_ascii_isalpha(name[0]) || strlen(name) > 31) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-_.+", *p)) {
            return false;
        }
    }
    return true;
}

void bdrv_ref(BlockDriverState *bs)
{
    bs->refcnt++;
}

BdrvChild *bdrv_attach_child(BlockDriverState *parent,
                             BlockDriverState *child, const char *role)
{
    BdrvChild *c = g_new0(BdrvChild, 1);
    c->bs = child;
    c->parent = parent;
    c->role = role;
    child->parents = g_list_append(child->parents, c);
    if (!strcmp(role, "file")) {
        g_assert(!parent->file);
        parent->file = c;
    } else {
        g_assert(!parent->backing);
        parent->backing = c;
    }
    /* A quiesced parent keeps its new subtree quiesced too. */
    for (int i = 0; i < parent->quiesce_counter; i++) {
        bdrv_drained_begin(child);
    }
    return c;
}

void bdrv_detach_child(BlockDriverState *parent, BdrvChild *c)
{
    BlockDriverState *child = c->bs;
    for (int i = 0; i < parent->quiesce_counter; i++) {
        bdrv_drained_end(child);
    }
    if (parent->file == c) {
        parent->file = NULL;
    } else {
        g_assert(parent->backing == c);
        parent->backing = NULL;
    }
    child->parents = g_list_remove(child->parents, c);
    g_free(c);
    if (child->refcnt > 1) {
        bdrv_relax_perms(child);
    }
    bdrv_unref(child);
}

void bdrv_set_backing(BlockDriverState *bs, BlockDriverState *backing)
{
    if (backing) {
        bdrv_ref(backing);
    }
    if (bs->backing) {
        bdrv_detach_child(bs, bs->backing);
    }
    if (backing) {
        bdrv_attach_child(bs, backing, "backing");
        bdrv_relax_perms(backing);
    }
}

/* ---- permissions ---- */

const char *bdrv_perm_name(int bit)
{
    static const char *const names[BLK_PERM_COUNT] = {
        "consistent read", "write", "write unchanged", "resize",
    };
    return bit >= 0 && bit < BLK_PERM_COUNT ? names[bit] : "?";
}

/* Whether drv keeps metadata of its own in its `file` child (a format
 * such as qcow2), rather than passing requests through (raw, filters). */
static bool bdrv_has_metadata(const BlockDriver *drv)
{
    return !drv->is_protocol && !drv->is_filter && drv != &bdrv_raw;
}

/* What parent asks of the child behind edge c, given what the parent's
 * own users take (perm) and share (shared). */
static void bdrv_edge_perm(BdrvChild *c, uint64_t perm, uint64_t shared,
                           uint64_t *nperm, uint64_t *nshared)
{
    BlockDriverState *parent = c->parent;
    if (c == parent->backing && !parent->drv->is_filter) {
        /* Backing files are only read; writable and resizable only as
         * far as the overlay's users allow changing data under them. */
        *nperm = perm & BLK_PERM_CONSISTENT_READ;
        *nshared = BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED |
                   ((shared & BLK_PERM_WRITE) ? BLK_PERM_WRITE |
                                                BLK_PERM_RESIZE : 0);
    } else if (bdrv_has_metadata(parent->drv)) {
        /* The format's metadata lives in the file: it must stay
         * consistent and nobody else may write or resize it. */
        *nperm = perm;
        if (!parent->read_only) {
            *nperm |= BLK_PERM_WRITE | BLK_PERM_RESIZE;
        }
        if (!(parent->open_flags & BDRV_O_NO_IO)) {
            *nperm |= BLK_PERM_CONSISTENT_READ;
        }
        *nshared = shared & ~(BLK_PERM_WRITE | BLK_PERM_RESIZE);
    } else {
        /* raw and filters pass everything on (a job's filter reaches
         * its child through `backing`, see block/job-filter.h) */
        *nperm = perm;
        *nshared = shared;
    }
}

/* The permissions bs's users take and share, together. */
static void bdrv_users_perm(BlockDriverState *bs, int depth, uint64_t *perm,
                            uint64_t *shared)
{
    uint64_t p = 0, sh = BLK_PERM_ALL;
    if (bs->backends || !bs->parents) {
        if (!(bs->open_flags & BDRV_O_NO_IO)) {
            p |= BLK_PERM_CONSISTENT_READ;
        }
        if (!bs->read_only) {
            p |= BLK_PERM_WRITE;
        }
    }
    for (GList *l = bs->backends; l; l = l->next) {
        sh &= blk_shared_perm(l->data);
    }
    for (GList *l = bs->parents; l && depth < 256; l = l->next) {
        BdrvChild *c = l->data;
        uint64_t pp, ps, ep, es;
        bdrv_users_perm(c->parent, depth + 1, &pp, &ps);
        bdrv_edge_perm(c, pp, ps, &ep, &es);
        p |= ep;
        sh &= es;
    }
    if (bs->open_flags & BDRV_O_FORCE_SHARE) {
        sh = BLK_PERM_ALL;
    }
    *perm = p;
    *shared = sh;
}

static int bdrv_refresh_perms_node(BlockDriverState *bs, int depth,
                                   GError **errp)
{
    if (bs->opened && bs->drv->set_perm) {
        uint64_t perm, shared;
        bdrv_users_perm(bs, 0, &perm, &shared);
        if (perm != bs->perm || shared != bs->shared_perm) {
            int ret = bs->drv->set_perm(bs, perm, shared, errp);
            if (ret < 0) {
                return ret;
            }
            bs->perm = perm;
            bs->shared_perm = shared;
        }
    }
    if (depth > 256) {
        return 0;
    }
    if (bs->file) {
        int ret = bdrv_refresh_perms_node(bs->file->bs, depth + 1, errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (bs->backing) {
        return bdrv_refresh_perms_node(bs->backing->bs, depth + 1, errp);
    }
    return 0;
}

int bdrv_refresh_perms(BlockDriverState *bs, GError **errp)
{
    return bs ? bdrv_refresh_perms_node(bs, 0, errp) : 0;
}

/* After a change that only takes permissions away (a parent gone, a node
 * now read-only): nothing new is asked, so nothing can conflict. */
static void bdrv_relax_perms(BlockDriverState *bs)
{
    g_autoptr(GError) err = NULL;
    if (bdrv_refresh_perms(bs, &err) < 0) {
        g_warning("%s", err->message);
    }
}

typedef struct ReopenCo {
    BlockDriverState *bs;
    int coroutine_fn (*fn)(BlockDriverState *bs, GError **errp);
    GError **errp;
    int ret;
} ReopenCo;

static void coroutine_fn bdrv_reopen_hook_entry(void *opaque)
{
    ReopenCo *c = opaque;
    c->ret = c->fn(c->bs, c->errp);
}

/* The driver's co_reopen_ro/co_reopen_rw, when it has one. */
static int bdrv_reopen_hook(BlockDriverState *bs,
                            int coroutine_fn (*fn)(BlockDriverState *,
                                                   GError **),
                            GError **errp)
{
    if (!fn) {
        return 0;
    }
    ReopenCo c = { .bs = bs, .fn = fn, .errp = errp };
    co_run_sync(bdrv_reopen_hook_entry, &c);
    return c.ret;
}

/*
 * Makes bs read-only in place (the old top of an external snapshot, now a
 * backing file): what its driver would write at close is stored now
 * (qcow2's persistent dirty bitmaps, which become read-only), its caches
 * are flushed, its `file` child follows when bs is its only user, and the
 * write and resize locks are released.  On failure nothing changed.
 */
bool bdrv_reopen_read_only(BlockDriverState *bs, GError **errp)
{
    if (bs->read_only) {
        return true;
    }
    if (!bs->drv->co_reopen_ro) {
        for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
            if (bdrv_dirty_bitmap_persistent(l->data)) {
                error_setg(errp, "Node '%s' has persistent dirty bitmaps; "
                           "it stays read-write", bs->node_name);
                return false;
            }
        }
    }
    bdrv_drained_begin(bs);
    if (bdrv_reopen_hook(bs, bs->drv->co_reopen_ro, errp) < 0) {
        bdrv_drained_end(bs);
        return false;
    }
    int ret = bdrv_flush(bs);
    if (ret < 0) {
        bdrv_drained_end(bs);
        error_setg_errno(errp, -ret, "Could not flush '%s' before making it "
                         "read-only", bs->filename);
        return false;
    }
    bs->read_only = true;
    bs->open_flags &= ~BDRV_O_RDWR;
    bs->reopened_ro = true;
    BlockDriverState *file = bdrv_file_bs(bs);
    if (file && !file->read_only && !file->backends &&
        g_list_length(file->parents) == 1) {
        file->read_only = true;
        file->open_flags &= ~BDRV_O_RDWR;
        file->reopened_ro = true;
    }
    bdrv_drained_end(bs);
    bdrv_relax_perms(bs);
    return true;
}

/*
 * Undoes bdrv_reopen_read_only (block-commit into a former top): only a
 * node that was opened read-write and made read-only by it can, since its
 * driver state and file descriptor are still those of a read-write open.
 * Takes the write locks again (QEMU's errors when another process now
 * holds the image) and lets the driver mark its persistent state in use
 * again; on failure the node stays read-only.
 */
bool bdrv_reopen_read_write(BlockDriverState *bs, GError **errp)
{
    if (!bs->read_only) {
        return true;
    }
    if (!bs->reopened_ro) {
        error_setg(errp, "Node '%s' was opened read-only", bs->node_name);
        return false;
    }
    BlockDriverState *file = bdrv_file_bs(bs);
    bool file_too = file && file->reopened_ro && file->read_only;
    bs->read_only = false;
    bs->open_flags |= BDRV_O_RDWR;
    if (file_too) {
        file->read_only = false;
        file->open_flags |= BDRV_O_RDWR;
    }
    if (bdrv_refresh_perms(bs, errp) < 0 ||
        bdrv_reopen_hook(bs, bs->drv->co_reopen_rw, errp) < 0) {
        bs->read_only = true;
        bs->open_flags &= ~BDRV_O_RDWR;
        if (file_too) {
            file->read_only = true;
            file->open_flags &= ~BDRV_O_RDWR;
        }
        bdrv_relax_perms(bs);
        return false;
    }
    bs->reopened_ro = false;
    if (file_too) {
        file->reopened_ro = false;
    }
    return true;
}

/* ---- graph switches (external snapshots) ---- */

bool bdrv_is_in_subtree(BlockDriverState *root, BlockDriverState *bs)
{
    if (root == bs) {
        return true;
    }
    return (root->file && bdrv_is_in_subtree(root->file->bs, bs)) ||
           (root->backing && bdrv_is_in_subtree(root->backing->bs, bs));
}

/* Re-points one parent edge; the quiesce count the parent imposed moves
 * with it, so drained sections still end where they began. */
static void bdrv_move_edge(BdrvChild *c, BlockDriverState *to)
{
    BlockDriverState *from = c->bs;
    bdrv_ref(to);
    for (int i = 0; i < c->parent->quiesce_counter; i++) {
        bdrv_drained_begin(to);
    }
    from->parents = g_list_remove(from->parents, c);
    c->bs = to;
    to->parents = g_list_append(to->parents, c);
    for (int i = 0; i < c->parent->quiesce_counter; i++) {
        bdrv_drained_end(from);
    }
    bdrv_unref(from);
}

void bdrv_replace_node(BlockDriverState *from, BlockDriverState *to)
{
    g_assert(from->refcnt > 1 || !from->parents);
    GList *edges = g_list_copy(from->parents);
    for (GList *l = edges; l; l = l->next) {
        BdrvChild *c = l->data;
        /* The edge from `to` itself (its backing) must not loop. */
        if (c->parent != to) {
            bdrv_move_edge(c, to);
        }
    }
    g_list_free(edges);
    GList *blks = g_list_copy(from->backends);
    for (GList *l = blks; l; l = l->next) {
        blk_replace_root(l->data, to);
    }
    g_list_free(blks);
    /* Callers switch graphs inside a pause and cannot fail: a conflict
     * (none is expected: `to` takes over what `from` held) is a warning. */
    bdrv_relax_perms(from);
    bdrv_relax_perms(to);
}

void bdrv_append(BlockDriverState *overlay, BlockDriverState *top)
{
    g_assert(!overlay->backing);
    bdrv_replace_node(top, overlay);
    bdrv_ref(top);
    bdrv_attach_child(overlay, top, "backing");
    bdrv_relax_perms(top);
}

void bdrv_unappend(BlockDriverState *overlay, BlockDriverState *top)
{
    g_assert(overlay->backing && overlay->backing->bs == top);
    bdrv_ref(top);              /* the backing edge held one */
    bdrv_detach_child(overlay, overlay->backing);
    bdrv_replace_node(overlay, top);
    bdrv_unref(top);
}

static void coroutine_fn bdrv_close_entry(void *opaque)
{
    BlockDriverState *bs = opaque;
    if (bs->drv->close) {
        bs->drv->close(bs);
    }
}

static void bdrv_delete(BlockDriverState *bs)
{
    g_assert(bs->refcnt == 0 && !bs->parents && !bs->backends);
    if (bs->opened) {
        AIO_POLL_WHILE(bs->in_flight > 0);
        co_run_sync(bdrv_close_entry, bs);
    }
    bdrv_dirty_bitmap_release_all(bs);  /* after close stored them */
    if (bs->backing) {
        bdrv_detach_child(bs, bs->backing);
    }
    if (bs->file) {
        bdrv_detach_child(bs, bs->file);
    }
    all_nodes = g_list_remove(all_nodes, bs);
    g_free(bs->opaque);
    g_free(bs->node_name);
    g_free(bs->filename);
    g_free(bs->backing_file);
    g_free(bs->backing_format);
    g_free(bs);
}

void bdrv_unref(BlockDriverState *bs)
{
    if (!bs) {
        return;
    }
    g_assert(bs->refcnt > 0);
    if (--bs->refcnt == 0) {
        bdrv_delete(bs);
    }
}

char *bdrv_resolve_backing_path(const BlockDriverState *bs,
                                const char *backing)
{
    /* Relative names are relative to the image's own folder, spelled as
     * the image's name spells it ("base" beside "img" stays "base"). */
    const char *slash = bs->filename ? strrchr(bs->filename, '/') : NULL;
    if (g_path_is_absolute(backing) || !slash || strstr(backing, "://")) {
        return g_strdup(backing);
    }
    return g_strdup_printf("%.*s%s", (int)(slash - bs->filename + 1),
                           bs->filename, backing);
}

/* ---- probing ---- */

static const BlockDriver *bdrv_probe_buf(const uint8_t *buf, int len,
                                         const char *filename)
{
    const BlockDriver *best = NULL;
    int best_score = 0;
    bdrv_init_once();
    for (guint i = 0; i < drivers->len; i++) {
        const BlockDriver *d = g_ptr_array_index(drivers, i);
        if (d->probe) {
            int score = d->probe(buf, len, filename);
            if (score > best_score) {
                best_score = score;
                best = d;
            }
        }
    }
    return best ? best : &bdrv_raw;
}

const char *bdrv_probe_format(const char *filename, GError **errp)
{
    uint8_t buf[2048] = { 0 };
    int fd = open(filename, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", filename);
        return NULL;
    }
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    int err = errno;
    close(fd);
    if (n < 0) {
        error_setg_errno(errp, err, "Could not read '%s'", filename);
        return NULL;
    }
    return bdrv_probe_buf(buf, (int)n, filename)->format_name;
}

/* ---- opening ---- */

static BlockDriverState *bdrv_open_co(const char *filename, BlockOpts *opts,
                                      int flags, GError **errp);

static bool bdrv_parse_common_opts(BlockOpts *opts, int *flags,
                                   GError **errp)
{
    GError *err = NULL;
    if (bopts_take_bool(opts, "read-only", !(*flags & BDRV_O_RDWR), &err)) {
        *flags &= ~BDRV_O_RDWR;
    } else {
        *flags |= BDRV_O_RDWR;
    }
    if (bopts_take_bool(opts, "cache.direct", *flags & BDRV_O_NOCACHE, &err)) {
        *flags |= BDRV_O_NOCACHE;
    } else {
        *flags &= ~BDRV_O_NOCACHE;
    }
    if (bopts_take_bool(opts, "cache.no-flush", *flags & BDRV_O_NO_FLUSH,
                        &err)) {
        *flags |= BDRV_O_NO_FLUSH;
    } else {
        *flags &= ~BDRV_O_NO_FLUSH;
    }
    if (bopts_take_bool(opts, "force-share",
                        *flags & BDRV_O_FORCE_SHARE, &err)) {
        *flags |= BDRV_O_FORCE_SHARE;
    } else {
        *flags &= ~BDRV_O_FORCE_SHARE;
    }
    if ((*flags & BDRV_O_FORCE_SHARE) && (*flags & BDRV_O_RDWR) && !err) {
        error_setg(&err, "force-share=on can only be used with read-only "
                   "images");
    }
    g_free(bopts_take(opts, "auto-read-only"));
    g_free(bopts_take(opts, "detect-zeroes"));
    g_autofree char *discard = bopts_take(opts, "discard");
    if (discard) {
        if (!strcmp(discard, "unmap") || !strcmp(discard, "on")) {
            *flags |= BDRV_O_UNMAP;
        } else if (!strcmp(discard, "ignore") || !strcmp(discard, "off")) {
            *flags &= ~BDRV_O_UNMAP;
        } else if (!err) {
            error_setg(&err, "Invalid discard option");
        }
    }
    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    return true;
}

/* Opens or looks up the `file` child of a format or filter node; key is
 * the option that names it ("file", or "image" for blkdebug). */
static BlockDriverState *bdrv_open_file_child(const char *filename,
                                              const char *key,
                                              BlockOpts *opts, int flags,
                                              GError **errp)
{
    g_autofree char *ref = bopts_take(opts, key);
    if (ref) {
        BlockDriverState *child = bdrv_find_node(ref);
        if (!child) {
            error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                       ref, ref);
            return NULL;
        }
        bdrv_ref(child);
        return child;
    }
    BlockOpts *sub = bopts_extract(opts, key);
    if (!bopts_get(sub, "driver") && !bopts_get(sub, "filename") &&
        !filename) {
        bopts_free(sub);
        error_setg(errp, "A block device must be specified for \"%s\"",
                   key);
        return NULL;
    }
    if (!bopts_get(sub, "driver")) {
        bopts_set(sub, "driver", "file");
    }
    return bdrv_open_co(bopts_get(sub, "filename") ? NULL : filename, sub,
                        flags & ~BDRV_O_NO_BACKING, errp);
}

static BlockDriverState *bdrv_new_node(const BlockDriver *drv,
                                       char *node_name, int flags)
{
    BlockDriverState *bs = g_new0(BlockDriverState, 1);
    bs->drv = drv;
    bs->opaque = g_malloc0(drv->instance_size ? drv->instance_size : 1);
    bs->refcnt = 1;
    bs->open_flags = flags;
    bs->read_only = !(flags & BDRV_O_RDWR);
    bs->request_alignment = 1;
    bs->buf_alignment = 1;
    co_queue_init(&bs->drain_waiters);
    if (node_name) {
        bs->node_name = node_name;
    } else {
        bs->node_name = g_strdup_printf("#block%03u", auto_node_counter++);
        bs->auto_node_name = true;
    }
    all_nodes = g_list_append(all_nodes, bs);
    return bs;
}

/*
 * The filter nodes block jobs put into the graph (block/job-filter.c):
 * their drivers are not in the registry, so nobody opens one by name.
 * The caller has checked node_name (NULL: "#blockNNN").  The node starts
 * read-only, so that until it is inserted it asks nothing of child that
 * child's users did not already ask.
 */
BlockDriverState *bdrv_new_filter_node(const BlockDriver *drv,
                                       const char *node_name,
                                       BlockDriverState *child)
{
    g_assert(drv->is_filter && (!node_name || !bdrv_find_node(node_name)));
    int flags = child->open_flags & (BDRV_O_NOCACHE | BDRV_O_NO_FLUSH |
                                     BDRV_O_UNMAP);
    BlockDriverState *bs = bdrv_new_node(drv, g_strdup(node_name), flags);
    bs->filename = g_strdup(child->filename);
    bs->request_alignment = child->request_alignment;
    bs->buf_alignment = child->buf_alignment;
    bdrv_ref(child);
    bdrv_attach_child(bs, child, "backing");
    bs->opened = true;
    bdrv_relax_perms(bs);
    return bs;
}

static bool bdrv_report_leftovers(const BlockDriver *drv, BlockOpts *opts,
                                  GError **errp)
{
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, opts);
    if (g_hash_table_iter_next(&it, &k, &v)) {
        error_setg(errp, "Block %s '%s' does not support the option '%s'",
                   drv->is_protocol ? "protocol" : "format", drv->format_name,
                   (char *)k);
        return false;
    }
    return true;
}

static BlockDriverState *bdrv_open_co(const char *filename, BlockOpts *opts,
                                      int flags, GError **errp)
{
    BlockDriverState *bs = NULL, *file = NULL;
    g_autofree char *node_name = bopts_take(opts, "node-name");
    g_autofree char *driver = bopts_take(opts, "driver");
    g_autofree char *opt_filename = bopts_take(opts, "filename");
    const BlockDriver *drv = NULL;

    bdrv_init_once();
    if (opt_filename) {
        filename = opt_filename;
    }
    if (node_name) {
        if (!bdrv_node_name_valid(node_name)) {
            error_setg(errp, "Invalid node-name: '%s'", node_name);
            goto fail;
        }
        if (bdrv_find_node(node_name)) {
            error_setg(errp, "Duplicate nodes with node-name='%s'", node_name);
            goto fail;
        }
    }
    if (!bdrv_parse_common_opts(opts, &flags, errp)) {
        goto fail;
    }
    if (driver) {
        drv = bdrv_find_driver(driver);
        if (!drv) {
            error_setg(errp, "Unknown driver '%s'", driver);
            goto fail;
        }
    }

    if (!drv || !drv->is_protocol) {
        if (!drv && !filename && !bopts_has_prefix(opts, "file") &&
            !bopts_get(opts, "file")) {
            error_setg(errp, "Must specify either driver or file");
            goto fail;
        }
        /* The QAPI schema (BlockdevOptionsBlkdebug), like QEMU, names
         * blkdebug's child "image": without this, -blockdev and
         * blockdev-add could not build a blkdebug node at all.  The
         * "file" spelling of the C tests keeps working. */
        const char *key = "file";
        if (drv == &bdrv_blkdebug && (bopts_get(opts, "image") ||
                                      bopts_has_prefix(opts, "image"))) {
            key = "image";
        }
        file = bdrv_open_file_child(filename, key, opts, flags, errp);
        if (!file) {
            goto fail;
        }
        if (!drv) {
            uint8_t buf[2048] = { 0 };
            int64_t len = bdrv_getlength(file);
            int64_t n = MIN(len, (int64_t)sizeof(buf));
            if (n > 0 && bdrv_co_pread(file, 0, n, buf, 0) < 0) {
                error_setg(errp, "Could not read image for determining its "
                           "format");
                goto fail;
            }
            drv = bdrv_probe_buf(buf, (int)MAX(n, 0), filename);
        }
    } else if (!filename) {
        error_setg(errp, "Parameter 'filename' is required");
        goto fail;
    }

    bs = bdrv_new_node(drv, g_steal_pointer(&node_name), flags);
    if (file) {
        /* List parents before the children they opened, as QEMU does. */
        GList *pos = g_list_find(all_nodes, file);
        if (pos && file->refcnt == 1) {
            all_nodes = g_list_remove(all_nodes, bs);
            all_nodes = g_list_insert_before(all_nodes, pos, bs);
        }
        bdrv_attach_child(bs, file, "file");
        file = NULL;
        bs->filename = g_strdup(bs->file->bs->filename);
        /* Locked before the format reads or writes a byte of it. */
        if (bdrv_refresh_perms(bs->file->bs, errp) < 0) {
            goto fail;
        }
    } else {
        bs->filename = g_strdup(filename);
    }
    if (drv->open(bs, opts, flags, errp) < 0) {
        goto fail;
    }
    bs->opened = true;
    if (!bdrv_report_leftovers(drv, opts, errp) ||
        bdrv_refresh_perms(bs, errp) < 0) {
        goto fail;
    }
    bopts_free(opts);
    return bs;

fail:
    bopts_free(opts);
    if (file) {
        bdrv_unref(file);
    }
    if (bs) {
        bs->refcnt = 1;
        bdrv_unref(bs);
    }
    return NULL;
}

typedef struct {
    const char *filename;
    BlockOpts *opts;
    int flags;
    GError **errp;
    BlockDriverState *ret;
} OpenCo;

static void coroutine_fn bdrv_open_entry(void *opaque)
{
    OpenCo *o = opaque;
    o->ret = bdrv_open_co(o->filename, o->opts, o->flags, o->errp);
}

BlockDriverState *bdrv_open(const char *filename, BlockOpts *opts, int flags,
                            GError **errp)
{
    OpenCo o = { filename, opts ? opts : bopts_new(), flags, errp, NULL };
    co_run_sync(bdrv_open_entry, &o);
    if (o.ret && !bdrv_is_read_only(o.ret) && bdrv_can_snapshot(o.ret)) {
        /* A transaction that a kill interrupted between two images'
         * snapshots: whole or absent before anyone reads the image. */
        GError *err = NULL;
        if (txn_journal_recover(o.ret, &err) < 0) {
            warn_report("%s", err->message);
            g_error_free(err);
        }
    }
    return o.ret;
}

/*
 * The files whose backing chains are being opened, outermost first, per
 * coroutine (a chain opens recursively in the coroutine of its top).  A
 * backing file name read from an image may lead back into the chain (a
 * damaged or malicious header), which would recurse until the coroutine
 * stack overflows; so may an absurdly long chain.  Both are refused.
 */
#define BDRV_MAX_BACKING_DEPTH 64

typedef struct ChainFile {
    dev_t dev;
    ino_t ino;
} ChainFile;

static GHashTable *opening_chains;     /* Coroutine* -> GArray of ChainFile */

static bool backing_chain_push(BlockDriverState *bs, const char *path,
                               GError **errp)
{
    struct stat st;
    if (!opening_chains) {
        opening_chains = g_hash_table_new(g_direct_hash, g_direct_equal);
    }
    GArray *chain = g_hash_table_lookup(opening_chains, co_self());
    if (!chain) {
        chain = g_array_new(FALSE, FALSE, sizeof(ChainFile));
        g_hash_table_insert(opening_chains, co_self(), chain);
    }
    if (chain->len >= BDRV_MAX_BACKING_DEPTH) {
        error_setg(errp, "Backing chain of '%s' is deeper than %d images",
                   bs->filename, BDRV_MAX_BACKING_DEPTH);
        goto fail;
    }
    ChainFile f = { 0, 0 };     /* a file we cannot stat matches nothing */
    if (bs->filename && stat(bs->filename, &st) == 0) {
        f.dev = st.st_dev;
        f.ino = st.st_ino;
    }
    g_array_append_val(chain, f);
    if (stat(path, &st) == 0) {
        for (guint i = 0; i < chain->len; i++) {
            ChainFile *c = &g_array_index(chain, ChainFile, i);
            if (c->dev == st.st_dev && c->ino == st.st_ino &&
                (c->dev || c->ino)) {
                g_array_set_size(chain, chain->len - 1);
                error_setg(errp, "Backing file '%s' of '%s' leads back into "
                           "its own backing chain", path, bs->filename);
                goto fail;
            }
        }
    }
    return true;

fail:
    if (chain->len == 0) {
        g_hash_table_remove(opening_chains, co_self());
        g_array_free(chain, TRUE);
    }
    return false;
}

static void backing_chain_pop(void)
{
    GArray *chain = g_hash_table_lookup(opening_chains, co_self());
    g_array_set_size(chain, chain->len - 1);
    if (chain->len == 0) {
        g_hash_table_remove(opening_chains, co_self());
        g_array_free(chain, TRUE);
    }
}

int coroutine_fn bdrv_open_backing(BlockDriverState *bs, BlockOpts *opts,
                                   GError **errp)
{
    g_autofree char *ref = bopts_take(opts, "backing");
    BlockOpts *sub = bopts_extract(opts, "backing");
    BlockDriverState *backing = NULL;
    /* Backing files are read-only; writes go to the overlay. */
    int bflags = bs->open_flags & (BDRV_O_NOCACHE | BDRV_O_NO_FLUSH |
                                   BDRV_O_CHECK | BDRV_O_FORCE_SHARE);

    if (ref) {
        bopts_free(sub);
        if (!*ref || !strcmp(ref, "null")) {
            return 0;            /* backing: null */
        }
        backing = bdrv_find_node(ref);
        if (!backing) {
            error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
                       ref, ref);
            return -ENOENT;
        }
        bdrv_ref(backing);
    } else if (g_hash_table_size(sub) > 0) {
        backing = bdrv_open_co(NULL, sub, bflags, errp);
        if (!backing) {
            return -EINVAL;
        }
    } else {
        bopts_free(sub);
        if (!bs->backing_file || (bs->open_flags & BDRV_O_NO_BACKING)) {
            return 0;
        }
        g_autofree char *path = bdrv_resolve_backing_path(bs, bs->backing_file);
        if (!backing_chain_push(bs, path, errp)) {
            return -ELOOP;
        }
        BlockOpts *bo = bopts_new();
        if (bs->backing_format) {
            bopts_set(bo, "driver", bs->backing_format);
        }
        GError *err = NULL;
        backing = bdrv_open_co(path, bo, bflags, &err);
        backing_chain_pop();
        if (!backing) {
            error_setg(errp, "Could not open backing file: %s", err->message);
            g_error_free(err);
            return -EINVAL;
        }
    }
    bdrv_attach_child(bs, backing, "backing");
    if (bdrv_refresh_perms(backing, errp) < 0) {
        bdrv_detach_child(bs, bs->backing);
        return -EBUSY;
    }
    return 0;
}

/* ---- creation ---- */

typedef struct {
    const BlockDriver *drv;
    const char *filename;
    BlockOpts *opts;
    GError **errp;
    int ret;
} CreateCo;

static void coroutine_fn bdrv_create_entry(void *opaque)
{
    CreateCo *c = opaque;
    c->ret = c->drv->create(c->filename, c->opts, c->errp);
}

int bdrv_create(const char *format, const char *filename, BlockOpts *opts,
                GError **errp)
{
    const BlockDriver *drv = bdrv_find_driver(format);
    if (!drv || drv->is_filter) {
        error_setg(errp, "Unknown file format '%s'", format);
        return -EINVAL;
    }
    if (!drv->create) {
        error_setg(errp, "Format driver '%s' does not support image creation",
                   format);
        return -ENOTSUP;
    }
    g_autoptr(BlockOpts) local = bopts_new();
    if (opts) {
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, opts);
        while (g_hash_table_iter_next(&it, &k, &v)) {
            bool known = false;
            for (int i = 0; drv->create_opts && drv->create_opts[i]; i++) {
                known |= !strcmp(drv->create_opts[i], k);
            }
            if (!known) {
                error_setg(errp, "Invalid parameter '%s'", (char *)k);
                return -EINVAL;
            }
            bopts_set(local, k, v);
        }
    }
    CreateCo c = { drv, filename, local, errp, 0 };
    co_run_sync(bdrv_create_entry, &c);
    return c.ret;
}

/* ---- information wrappers ---- */

json_t *bdrv_get_specific_info(BlockDriverState *bs)
{
    return bs->drv->get_specific_info ? bs->drv->get_specific_info(bs) : NULL;
}

int bdrv_get_cluster_size(BlockDriverState *bs)
{
    return bs->drv->get_cluster_size ? bs->drv->get_cluster_size(bs) : 0;
}

typedef struct {
    BlockDriverState *bs;
    BdrvCheckResult *res;
    BdrvCheckMode fix;
    BlockOpts *opts;
    bool force;
    const char *s1, *s2;
    GError **errp;
    int ret;
} InfoCo;

static void coroutine_fn bdrv_check_entry(void *opaque)
{
    InfoCo *c = opaque;
    c->ret = c->bs->drv->co_check(c->bs, c->res, c->fix);
}

int bdrv_check(BlockDriverState *bs, BdrvCheckResult *res, BdrvCheckMode fix)
{
    memset(res, 0, sizeof(*res));
    res->log = g_string_new(NULL);
    if (!bs->drv->co_check) {
        return -ENOTSUP;
    }
    InfoCo c = { .bs = bs, .res = res, .fix = fix };
    co_run_sync(bdrv_check_entry, &c);
    return c.ret;
}

void bdrv_check_result_clear(BdrvCheckResult *res)
{
    if (res->log) {
        g_string_free(res->log, TRUE);
        res->log = NULL;
    }
}

static void coroutine_fn bdrv_amend_entry(void *opaque)
{
    InfoCo *c = opaque;
    c->ret = c->bs->drv->co_amend(c->bs, c->opts, c->force, c->errp);
}

int bdrv_amend(BlockDriverState *bs, BlockOpts *opts, bool force,
               GError **errp)
{
    if (!bs->drv->co_amend) {
        error_setg(errp, "Format driver '%s' does not support option "
                   "amendment", bs->drv->format_name);
        return -ENOTSUP;
    }
    InfoCo c = { .bs = bs, .opts = opts, .force = force, .errp = errp };
    co_run_sync(bdrv_amend_entry, &c);
    return c.ret;
}

static void coroutine_fn bdrv_make_empty_entry(void *opaque)
{
    InfoCo *c = opaque;
    c->ret = c->bs->drv->co_make_empty(c->bs);
}

int bdrv_make_empty(BlockDriverState *bs, GError **errp)
{
    if (!bs->drv->co_make_empty) {
        error_setg(errp, "Format driver '%s' cannot empty images",
                   bs->drv->format_name);
        return -ENOTSUP;
    }
    InfoCo c = { .bs = bs };
    co_run_sync(bdrv_make_empty_entry, &c);
    if (c.ret >= 0) {
        c.ret = bdrv_flush(bs);
    }
    if (c.ret < 0) {
        error_setg_errno(errp, -c.ret, "Could not empty %s", bs->filename);
    }
    return c.ret;
}

static void coroutine_fn bdrv_change_backing_entry(void *opaque)
{
    InfoCo *c = opaque;
    c->ret = c->bs->drv->co_change_backing_file(c->bs, c->s1, c->s2, c->errp);
}

int bdrv_change_backing_file(BlockDriverState *bs, const char *backing_file,
                             const char *backing_fmt, GError **errp)
{
    if (!bs->drv->co_change_backing_file) {
        error_setg(errp, "Format driver '%s' does not support backing files",
                   bs->drv->format_name);
        return -ENOTSUP;
    }
    InfoCo c = { .bs = bs, .s1 = backing_file, .s2 = backing_fmt,
                 .errp = errp };
    co_run_sync(bdrv_change_backing_entry, &c);
    if (c.ret == 0) {
        g_free(bs->backing_file);
        g_free(bs->backing_format);
        bs->backing_file = g_strdup(backing_file);
        bs->backing_format = g_strdup(backing_fmt);
    }
    return c.ret;
}
