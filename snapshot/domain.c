/*
 * domain.c - libvirt-style domain snapshots of one machine (domain.h):
 * the combination table's rows turned into save-state plans
 * (migration/savestate.h: one transaction, one pause), the catalog kept
 * in step with the images, and the repairs a kill calls for.
 *
 * Who owns what: the catalog (catalog.c) the metadata files; the
 * save-state coordinator the pause and every change to an open disk;
 * this file the rules - which rows are valid, default modes and file
 * names, what a revert or delete does to each disk - and the order of
 * durable steps around them:
 *
 *   create   intent -> domain.xml naming the new overlays (external
 *            disks) -> the snapshot (one pause) -> NAME.xml -> current
 *            -> intent removed.
 *   revert   intent -> new overlays + the revert (one pause) ->
 *            domain.xml -> current -> intent removed.
 *   delete   checks (every refusal; nothing changed yet) -> intent ->
 *            artifacts (internal snapshots; overlays merged by
 *            block-commit, domain.xml naming the base, records
 *            repointed, overlay removed: merge_run; memory file) ->
 *            NAME.xml removed (children reparented) -> intent removed.
 *
 * domain.xml never names a removed file while no intent is left to say
 * what was below it (a start would open the -drive file, maybe layers
 * further down): deletes rewrite it before removing an overlay, repairs
 * before clearing their intent.
 *
 * An intent left by a kill is finished when every artifact it names is
 * there and undone otherwise (domain_recover); overlays already in
 * domain.xml are kept either way, since the guest may have written to
 * them.  An offline domain is the same over a save-state host made of
 * the images alone (memory rows are refused there).
 */
#include "snapshot/domain.h"
#include "block/block-backend.h"
#include "block/commit.h"
#include "block/snapshot.h"
#include "util/error.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>

struct DsnapDomain {
    char *dir;
    DsnapCatalog *cat;          /* NULL until the folder exists */
    const SavestateHost *sh;
    const DsnapHostOps *ops;    /* NULL offline */
    void *opaque;
    /* Offline: the images, opened from domain.xml. */
    DsnapDomainDef *offline_dom;
    GPtrArray *offline_blks;    /* BlockBackend *, per disk of the dom */
    SavestateHostOps offline_ops;
    SavestateHost offline_host;
};

/* A disk of the machine as a snapshot sees it. */
typedef struct DomDisk {
    DsnapDomainDisk *dd;        /* borrowed from the described domain */
    const char *drive;          /* the save-state host's name for it */
} DomDisk;

/* The machine now: its <domain> and its disks. */
typedef struct DomView {
    DsnapDomainDef *dom;
    GPtrArray *drive_names;     /* char *, per dom->disks */
    GArray *disks;              /* DomDisk, the writable ones */
} DomView;

static void view_clear(DomView *v)
{
    dsnap_domain_def_free(v->dom);
    if (v->drive_names) {
        g_ptr_array_unref(v->drive_names);
    }
    if (v->disks) {
        g_array_unref(v->disks);
    }
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(DomView, view_clear)

static DsnapDomainDef *dom_copy(const DsnapDomainDef *dom)
{
    g_autofree char *xml = dsnap_domain_format(dom);
    DsnapDomainDef *c = dsnap_domain_parse(xml, strlen(xml), NULL);
    g_assert(c);
    return c;
}

static void domain_view(DsnapDomain *d, DomView *v)
{
    v->drive_names = g_ptr_array_new_with_free_func(g_free);
    if (d->ops) {
        v->dom = dsnap_domain_new();
        d->ops->describe(d->opaque, v->dom, v->drive_names);
    } else {
        v->dom = dom_copy(d->offline_dom);
        for (guint i = 0; i < v->dom->disks->len; i++) {
            DsnapDomainDisk *dd = g_ptr_array_index(v->dom->disks, i);
            g_ptr_array_add(v->drive_names, g_strdup(dd->target_dev));
        }
    }
    /* Snapshots take the disks the guest can write: the host's. */
    g_autoptr(GArray) writable = d->sh->ops->disks(d->sh->opaque);
    v->disks = g_array_new(FALSE, TRUE, sizeof(DomDisk));
    for (guint i = 0; i < v->dom->disks->len; i++) {
        DsnapDomainDisk *dd = g_ptr_array_index(v->dom->disks, i);
        const char *drive = g_ptr_array_index(v->drive_names, i);
        bool can_write = false;
        for (guint j = 0; j < writable->len; j++) {
            can_write |= !strcmp(g_array_index(writable, SavestateDisk,
                                               j).name, drive);
        }
        if (dd->source_file && g_strcmp0(dd->device, "cdrom") &&
            can_write) {
            DomDisk dk = { dd, g_ptr_array_index(v->drive_names, i) };
            g_array_append_val(v->disks, dk);
        }
    }
}

/* A disk by target dev or by source file, as libvirt matches them. */
static DomDisk *view_disk(DomView *v, const char *name)
{
    for (guint i = 0; i < v->disks->len; i++) {
        DomDisk *dk = &g_array_index(v->disks, DomDisk, i);
        if (!g_strcmp0(dk->dd->target_dev, name) ||
            !g_strcmp0(dk->dd->source_file, name)) {
            return dk;
        }
    }
    return NULL;
}

static DsnapDomainDisk *dom_disk(const DsnapDomainDef *dom,
                                 const char *target)
{
    for (guint i = 0; dom && i < dom->disks->len; i++) {
        DsnapDomainDisk *dd = g_ptr_array_index(dom->disks, i);
        if (!g_strcmp0(dd->target_dev, target)) {
            return dd;
        }
    }
    return NULL;
}

/* ---- the catalog ---- */

static bool need_catalog(DsnapDomain *d, GError **errp)
{
    if (!d->cat) {
        d->cat = dsnap_catalog_open(d->dir, true, NULL, errp);
    }
    return d->cat != NULL;
}

static bool write_domain_xml(DsnapDomain *d, const DsnapDomainDef *dom,
                             GError **errp)
{
    g_autofree char *xml = dsnap_domain_format(dom);
    return dsnap_catalog_write_domain(d->cat, xml, errp);
}

DsnapCatalog *dsnap_domain_catalog(DsnapDomain *d)
{
    return d->cat;
}

bool dsnap_domain_is_offline(const DsnapDomain *d)
{
    return !d->ops;
}

/* ---- images ---- */

static bool same_file(const char *a, const char *b)
{
    if (!a || !b) {
        return false;
    }
    g_autofree char *ca = g_canonicalize_filename(a, NULL);
    g_autofree char *cb = g_canonicalize_filename(b, NULL);
    return !strcmp(ca, cb);
}

/* The open node of image `file` in one of the machine's disk chains. */
static BlockDriverState *open_node_of(DsnapDomain *d, const char *file)
{
    g_autoptr(GArray) disks = d->sh->ops->disks(d->sh->opaque);
    for (guint i = 0; i < disks->len; i++) {
        BlockDriverState *bs = g_array_index(disks, SavestateDisk, i).bs;
        for (; bs; bs = bdrv_backing_bs(bs)) {
            if (same_file(bdrv_get_filename(bs), file)) {
                return bs;
            }
        }
    }
    return NULL;
}

/* The active layer's file of the machine's disk `drive`. */
static const char *active_file(DsnapDomain *d, const char *drive)
{
    g_autoptr(GArray) disks = d->sh->ops->disks(d->sh->opaque);
    for (guint i = 0; i < disks->len; i++) {
        SavestateDisk *sd = &g_array_index(disks, SavestateDisk, i);
        if (!strcmp(sd->name, drive)) {
            return bdrv_get_filename(sd->bs);
        }
    }
    return NULL;
}

/* Runs fn on image file: its open node, or the file opened on its own. */
typedef bool ImageFn(BlockDriverState *bs, void *opaque, GError **errp);

static bool with_image(DsnapDomain *d, const char *file, bool write,
                       ImageFn *fn, void *opaque, GError **errp)
{
    BlockDriverState *bs = open_node_of(d, file);
    if (bs && (!write || !bdrv_is_read_only(bs))) {
        return fn(bs, opaque, errp);
    }
    /* Not open, or open read-only below an overlay: an instance of its
     * own (a snapshot's deletion leaves the active layer's mappings,
     * which the read-only instance caches, as they are). */
    BlockBackend *blk = blk_new_open(file, NULL,
                                     write ? BDRV_O_RDWR | BDRV_O_NO_BACKING
                                           : BDRV_O_NO_BACKING, errp);
    if (!blk) {
        return false;
    }
    bool ok = fn(blk_bs(blk), opaque, errp);
    blk_unref(blk);
    return ok;
}

typedef struct TagQuery {
    const char *tag;
    bool found;
    uint64_t vm_state_size;
} TagQuery;

static bool tag_query_fn(BlockDriverState *bs, void *opaque, GError **errp)
{
    TagQuery *q = opaque;
    BdrvSnapshotInfo info = { 0 };
    q->found = bdrv_snapshot_find(bs, q->tag, &info);
    q->vm_state_size = info.vm_state_size;
    bdrv_snapshot_info_clear(&info);
    return true;
}

static bool tag_delete_fn(BlockDriverState *bs, void *opaque, GError **errp)
{
    const char *tag = opaque;
    BdrvSnapshotInfo info = { 0 };
    while (bdrv_snapshot_find(bs, tag, &info)) {
        bdrv_snapshot_info_clear(&info);
        if (bdrv_snapshot_delete(bs, NULL, tag, errp) < 0) {
            return false;
        }
    }
    return true;
}

/* Does image file hold snapshot tag (with a VM state, if asked)? */
static bool image_has_tag(DsnapDomain *d, const char *file, const char *tag,
                          bool with_vmstate)
{
    TagQuery q = { tag };
    GError *err = NULL;
    if (!file || access(file, F_OK) < 0 ||
        !with_image(d, file, false, tag_query_fn, &q, &err)) {
        g_clear_error(&err);
        return false;
    }
    return q.found && (!with_vmstate || q.vm_state_size > 0);
}

static bool image_delete_tag(DsnapDomain *d, const char *file,
                             const char *tag, GError **errp)
{
    if (!file || access(file, F_OK) < 0) {
        return true;            /* gone with its image */
    }
    return with_image(d, file, true, tag_delete_fn, (void *)tag, errp);
}

static bool tag_list_fn(BlockDriverState *bs, void *opaque, GError **errp)
{
    GPtrArray *names = opaque;
    BdrvSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(bs, &list);
    if (n == -ENOTSUP) {
        return true;            /* a format without internal snapshots */
    }
    if (n < 0) {
        error_setg_errno(errp, -n, "listing the snapshots of %s",
                         bdrv_get_filename(bs));
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (list[i].name) {
            g_ptr_array_add(names, g_strdup(list[i].name));
        }
    }
    bdrv_snapshot_list_free(list, n);
    return true;
}

/* The names of the internal snapshots image file holds (NULL on error). */
static GPtrArray *image_tags(DsnapDomain *d, const char *file,
                             GError **errp)
{
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    if (!with_image(d, file, false, tag_list_fn, names, errp)) {
        g_ptr_array_unref(names);
        return NULL;
    }
    return names;
}

/* The coordinator's calls, inside the host's begin/end. */
static bool host_begin(DsnapDomain *d, GError **errp)
{
    return !d->ops || !d->ops->begin || d->ops->begin(d->opaque, errp);
}

static void host_end(DsnapDomain *d)
{
    if (d->ops && d->ops->end) {
        d->ops->end(d->opaque);
    }
}

typedef bool SavestatePlanFn(const SavestateHost *h, const char *tag,
                             const SavestatePlan *plan,
                             const SavestateArgs *args, GError **errp);

/* savestate_snapshot or savestate_revert, inside the host's begin/end. */
static bool run_plan(DsnapDomain *d, SavestatePlanFn *fn, const char *name,
                     const SavestatePlan *plan, GError **errp)
{
    if (!host_begin(d, errp)) {
        return false;
    }
    bool ok = fn(d->sh, name, plan, NULL, errp);
    host_end(d);
    return ok;
}

/* ---- row rules ---- */

/* libvirt's default external file: the disk's source with its suffix
 * replaced by the snapshot's name ("hda.qcow2" -> "hda.s1"). */
static char *default_overlay(const char *source, const char *name)
{
    g_autofree char *dir = g_path_get_dirname(source);
    g_autofree char *base = g_path_get_basename(source);
    char *dot = strrchr(base, '.');
    if (dot && dot != base) {
        *dot = '\0';
    }
    g_autofree char *file = g_strdup_printf("%s.%s", base, name);
    return g_build_filename(dir, file, NULL);
}

/* Refuses a row of the table that is invalid, naming the rule. */
static bool check_row(const DomainSnapshotDef *def, bool disk_only,
                      bool offline, GError **errp)
{
    bool memory = def->memory == DSNAP_MODE_INTERNAL ||
                  def->memory == DSNAP_MODE_EXTERNAL || def->memory_file;
    if (disk_only && memory) {
        error_setg(errp, "disk-only snapshot of '%s' cannot include "
                   "memory (<memory snapshot='%s'>): a disk-only snapshot "
                   "takes the disks alone", def->name ? def->name : "",
                   def->memory_file ? "external"
                                    : dsnap_mode_name(def->memory));
        return false;
    }
    if (offline && memory) {
        error_setg(errp, "cannot take the memory of a stopped machine: "
                   "memory snapshots need a running or paused machine");
        return false;
    }
    return true;
}

/* The snapshot's <disks>: every writable disk once, by target dev, with
 * libvirt's defaults; read-only and CD disks as "no". */
static bool settle_disks(DomainSnapshotDef *def, DomView *v, bool external,
                         GError **errp)
{
    g_autofree bool *seen = g_new0(bool, v->disks->len + 1);
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        DomDisk *md = view_disk(v, dk->name);
        if (!md) {
            error_setg(errp, "no disk named '%s'", dk->name);
            return false;
        }
        guint idx = md - &g_array_index(v->disks, DomDisk, 0);
        if (seen[idx]) {
            error_setg(errp, "disk '%s' specified twice", dk->name);
            return false;
        }
        seen[idx] = true;
        g_free(dk->name);
        dk->name = g_strdup(md->dd->target_dev);
    }
    /* The disks the document left out take the snapshot's default. */
    for (guint i = 0; i < v->disks->len; i++) {
        if (!seen[i]) {
            DsnapDiskDef *dk = g_new0(DsnapDiskDef, 1);
            dk->name = g_strdup(g_array_index(v->disks, DomDisk,
                                              i).dd->target_dev);
            dk->mode = external ? DSNAP_MODE_EXTERNAL : DSNAP_MODE_INTERNAL;
            g_ptr_array_add(def->disks, dk);
        }
    }
    return true;
}

/* External disks get their file and driver; none may exist already. */
static bool settle_external(DomainSnapshotDef *def, DomView *v,
                            GError **errp)
{
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        if (dk->mode != DSNAP_MODE_EXTERNAL) {
            continue;
        }
        DomDisk *md = view_disk(v, dk->name);
        if (!dk->source_file) {
            dk->source_file = default_overlay(md->dd->source_file,
                                              def->name);
        }
        if (!dk->driver_type) {
            dk->driver_type = g_strdup("qcow2");
        }
        if (strcmp(dk->driver_type, "qcow2")) {
            error_setg(errp, "external snapshot format for disk %s must "
                       "be qcow2, not '%s'", dk->name, dk->driver_type);
            return false;
        }
        if (access(dk->source_file, F_OK) == 0) {
            error_setg(errp, "external snapshot file for disk %s already "
                       "exists and is not a block device: %s", dk->name,
                       dk->source_file);
            return false;
        }
        for (guint j = 0; j < i; j++) {
            DsnapDiskDef *o = g_ptr_array_index(def->disks, j);
            if (o->mode == DSNAP_MODE_EXTERNAL &&
                same_file(o->source_file, dk->source_file)) {
                error_setg(errp, "disks %s and %s would share the "
                           "external snapshot file %s", o->name, dk->name,
                           dk->source_file);
                return false;
            }
        }
    }
    return true;
}

static bool nothing_taken(const DomainSnapshotDef *def)
{
    if (def->memory == DSNAP_MODE_INTERNAL ||
        def->memory == DSNAP_MODE_EXTERNAL) {
        return false;
    }
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        if (dk->mode == DSNAP_MODE_INTERNAL ||
            dk->mode == DSNAP_MODE_EXTERNAL) {
            return false;
        }
    }
    return true;
}

/* The save-state plan of def (disks in def's order, as revert does). */
static SavestateDiskPlan *plan_of(const DomainSnapshotDef *def, DomView *v,
                                  SavestatePlan *plan)
{
    SavestateDiskPlan *dp = g_new0(SavestateDiskPlan, def->disks->len + 1);
    guint n = 0;
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        DomDisk *md = view_disk(v, dk->name);
        if (!md || (dk->mode != DSNAP_MODE_INTERNAL &&
                    dk->mode != DSNAP_MODE_EXTERNAL)) {
            continue;
        }
        dp[n++] = (SavestateDiskPlan){
            .name = md->drive,
            .mode = dk->mode == DSNAP_MODE_INTERNAL ?
                    SAVESTATE_DISK_INTERNAL : SAVESTATE_DISK_EXTERNAL,
            .file = dk->source_file,
        };
    }
    *plan = (SavestatePlan){
        .memory = def->memory == DSNAP_MODE_INTERNAL ?
                  SAVESTATE_MEMORY_INTERNAL :
                  def->memory == DSNAP_MODE_EXTERNAL ?
                  SAVESTATE_MEMORY_EXTERNAL : SAVESTATE_MEMORY_NONE,
        .memory_file = def->memory_file,
        .disks = dp,
        .n_disks = n,
    };
    return dp;
}

/* The machine's domain after def's external overlays are on top. */
static DsnapDomainDef *dom_after_overlays(const DomainSnapshotDef *def,
                                          const DsnapDomainDef *dom)
{
    DsnapDomainDef *after = dom_copy(dom);
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        DsnapDomainDisk *dd = dom_disk(after, dk->name);
        if (dk->mode == DSNAP_MODE_EXTERNAL && dd) {
            g_free(dd->source_file);
            dd->source_file = g_strdup(dk->source_file);
            g_free(dd->driver_type);
            dd->driver_type = g_strdup("qcow2");
        }
    }
    return after;
}

static bool has_external_disk(const DomainSnapshotDef *def)
{
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        if (dk->mode == DSNAP_MODE_EXTERNAL) {
            return true;
        }
    }
    return false;
}

static char *intent_name(const char *kind, const char *name)
{
    return g_strdup_printf("%s:%s", kind, name);
}

/* An intent that could not be removed is finished again on the next
 * start, which finds its work done: nothing to report here. */
static void intent_clear(DsnapDomain *d, const char *intent)
{
    GError *local = NULL;
    if (!dsnap_catalog_intent_clear(d->cat, intent, &local)) {
        g_clear_error(&local);
    }
}

/* ---- create ---- */

static DsnapState run_state_now(DsnapDomain *d)
{
    return d->ops ? d->ops->run_state(d->opaque) : DSNAP_STATE_SHUTOFF;
}

/* def as libvirt completes it: state, defaults, disks, parent, domain. */
static bool settle_def(DsnapDomain *d, DomainSnapshotDef *def, DomView *v,
                       unsigned flags, GError **errp)
{
    bool disk_only = flags & DSNAP_CREATE_DISK_ONLY;
    bool offline = !d->ops;
    if (!check_row(def, disk_only, offline, errp)) {
        return false;
    }
    def->state = disk_only ? DSNAP_STATE_DISK_SNAPSHOT : run_state_now(d);
    dsnap_def_fill_defaults(def, g_get_real_time() / G_USEC_PER_SEC);
    bool external = disk_only || def->memory == DSNAP_MODE_EXTERNAL;
    if (!settle_disks(def, v, external, errp)) {
        return false;
    }
    if (nothing_taken(def)) {
        error_setg(errp, "nothing selected for snapshot: memory and every "
                   "disk are 'no' or 'manual'");
        return false;
    }
    if (!settle_external(def, v, errp)) {
        return false;
    }
    if (d->cat && dsnap_catalog_lookup(d->cat, def->name)) {
        error_setg(errp, "domain snapshot '%s' already exists", def->name);
        return false;
    }
    g_free(def->parent);
    def->parent = g_strdup(d->cat ? dsnap_catalog_current(d->cat) : NULL);
    dsnap_domain_def_free(def->domain);
    def->domain = dom_copy(v->dom);
    def->active = -1;
    return true;
}

/* The snapshot itself, between its intent and its listing. */
static bool take_snapshot(DsnapDomain *d, DomainSnapshotDef *def,
                          DomView *v, int64_t *pause_ns, GError **errp)
{
    SavestatePlan plan;
    g_autofree SavestateDiskPlan *dp = plan_of(def, v, &plan);
    bool moved = has_external_disk(def);
    if (moved) {
        g_autoptr(DsnapDomainDef) after = dom_after_overlays(def, v->dom);
        if (!write_domain_xml(d, after, errp)) {
            return false;
        }
    }
    if (!run_plan(d, savestate_snapshot, def->name, &plan, errp)) {
        GError *local = NULL;
        if (moved && !write_domain_xml(d, v->dom, &local)) {
            g_clear_error(&local);
        }
        return false;
    }
    if (pause_ns) {
        *pause_ns = savestate_last_save_stats()->guest_pause_ns;
    }
    return true;
}

static bool create_redefine(DsnapDomain *d, DomainSnapshotDef *def,
                            DomView *v, unsigned flags, char **name_out,
                            GError **errp)
{
    if (!def->name) {
        error_setg(errp, "a redefined snapshot needs a <name>");
        return false;
    }
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        if (!view_disk(v, dk->name)) {
            error_setg(errp, "no disk named '%s'", dk->name);
            return false;
        }
    }
    dsnap_def_fill_defaults(def, g_get_real_time() / G_USEC_PER_SEC);
    if (!def->domain) {
        def->domain = dom_copy(v->dom);
    }
    if (!need_catalog(d, errp)) {
        dsnap_def_free(def);
        return false;
    }
    char *name = g_strdup(def->name);
    if (!dsnap_catalog_redefine(d->cat, def, flags & DSNAP_CREATE_CURRENT,
                                errp)) {
        g_free(name);
        return false;
    }
    *name_out = name;
    return true;
}

/* libvirt's --validate: the document against libvirt's own schema. */
static bool validate_xml(const char *xml, GError **errp)
{
    DsnapSchema *schema = dsnap_schema_load(DSNAP_SCHEMA_DEFAULT, errp);
    if (!schema) {
        return false;
    }
    bool ok = dsnap_schema_validate(schema, xml, strlen(xml), errp);
    dsnap_schema_free(schema);
    return ok;
}

bool dsnap_domain_create(DsnapDomain *d, const char *xml, unsigned flags,
                         char **name_out, int64_t *pause_ns, GError **errp)
{
    if ((flags & DSNAP_CREATE_VALIDATE) && !validate_xml(xml, errp)) {
        return false;
    }
    g_autoptr(DomainSnapshotDef) def = dsnap_parse_string(xml, strlen(xml),
                                                          errp);
    if (!def) {
        return false;
    }
    if (pause_ns) {
        *pause_ns = 0;
    }
    g_auto(DomView) v = { 0 };
    domain_view(d, &v);
    if (flags & DSNAP_CREATE_REDEFINE) {
        /* The catalog takes def, whatever happens. */
        return create_redefine(d, g_steal_pointer(&def), &v, flags,
                               name_out, errp);
    }
    if (!settle_def(d, def, &v, flags, errp)) {
        return false;
    }
    bool metadata = !(flags & DSNAP_CREATE_NO_METADATA);
    g_autofree char *intent = intent_name(metadata ? "create" : "nometa",
                                          def->name);
    g_autofree char *doc = dsnap_format(def);
    if (!need_catalog(d, errp) ||
        !dsnap_catalog_intent_write(d->cat, intent, doc, errp)) {
        return false;
    }
    if (!take_snapshot(d, def, &v, pause_ns, errp)) {
        intent_clear(d, intent);
        return false;
    }
    g_autofree char *name = g_strdup(def->name);
    if (metadata) {
        /* Taken but not listed: the intent stays, and the next start
         * lists it (domain_recover). */
        if (!dsnap_catalog_add(d->cat, g_steal_pointer(&def), true, errp)) {
            g_prefix_error(errp, "snapshot '%s' was taken but not listed "
                           "(the next start lists it): ", name);
            return false;
        }
    }
    intent_clear(d, intent);
    *name_out = g_steal_pointer(&name);
    return true;
}

/* ---- revert ---- */

/* A new overlay's name over image base: "hda.qcow2" -> "hda.s1-r1". */
static char *revert_overlay_name(const char *base, const char *snap)
{
    g_autofree char *stem = default_overlay(base, snap);
    for (unsigned n = 1;; n++) {
        char *f = g_strdup_printf("%s-r%u", stem, n);
        if (access(f, F_OK) < 0) {
            return f;
        }
        g_free(f);
    }
}

/* One disk of a revert: where its image comes from. */
static bool revert_disk_plan(DsnapDomain *d, const DomainSnapshotDef *def,
                             DsnapDiskDef *dk, DomView *v,
                             SavestateDiskPlan *p, GPtrArray *names,
                             GError **errp)
{
    DomDisk *md = view_disk(v, dk->name);
    DsnapDomainDisk *rec = dom_disk(def->domain, dk->name);
    if (!md || !rec || !rec->source_file) {
        error_setg(errp, "snapshot '%s' has disk '%s', which the machine "
                   "does not have", def->name, dk->name);
        return false;
    }
    p->name = md->drive;
    if (dk->mode == DSNAP_MODE_INTERNAL) {
        if (!same_file(active_file(d, md->drive), rec->source_file)) {
            error_setg(errp, "cannot revert disk %s to snapshot '%s': its "
                       "image %s is now the backing file of later external "
                       "snapshots (revert to one of them, or delete them "
                       "first)", dk->name, def->name, rec->source_file);
            return false;
        }
        p->mode = SAVESTATE_DISK_INTERNAL;
        return true;
    }
    p->mode = SAVESTATE_DISK_EXTERNAL;
    p->file = rec->source_file;
    p->overlay = revert_overlay_name(rec->source_file, def->name);
    g_ptr_array_add(names, (char *)p->overlay);
    return true;
}

static SavestateDiskPlan *revert_plan(DsnapDomain *d,
                                      const DomainSnapshotDef *def,
                                      DomView *v, SavestatePlan *plan,
                                      GPtrArray *names, GError **errp)
{
    SavestateDiskPlan *dp = plan_of(def, v, plan);
    guint n = 0;
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        if (dk->mode != DSNAP_MODE_INTERNAL &&
            dk->mode != DSNAP_MODE_EXTERNAL) {
            continue;
        }
        if (!revert_disk_plan(d, def, dk, v, &dp[n++], names, errp)) {
            g_free(dp);
            return NULL;
        }
    }
    return dp;
}

/* The run state a revert leaves; checks what needs --force. */
static bool revert_target_state(DsnapDomain *d, const DomainSnapshotDef *def,
                                unsigned flags, bool *run, GError **errp)
{
    bool memory = def->memory == DSNAP_MODE_INTERNAL ||
                  def->memory == DSNAP_MODE_EXTERNAL;
    if ((flags & DSNAP_REVERT_RUNNING) && (flags & DSNAP_REVERT_PAUSED)) {
        error_setg(errp, "--running and --paused are mutually exclusive");
        return false;
    }
    if (!d->ops) {
        if (memory) {
            error_setg(errp, "snapshot '%s' has memory: reverting to it "
                       "needs a running machine (start xblk-system and "
                       "revert through its monitor)", def->name);
            return false;
        }
        *run = false;
        return true;
    }
    if (!memory && !(flags & (DSNAP_REVERT_RUNNING | DSNAP_REVERT_PAUSED |
                              DSNAP_REVERT_FORCE)) &&
        d->ops->run_state(d->opaque) == DSNAP_STATE_RUNNING) {
        error_setg(errp, "revert requires force: snapshot '%s' has no "
                   "memory, so reverting resets the running machine",
                   def->name);
        return false;
    }
    *run = flags & DSNAP_REVERT_RUNNING ? true :
           flags & DSNAP_REVERT_PAUSED ? false :
           memory && def->state == DSNAP_STATE_RUNNING;
    return true;
}

/* The revert's pause; without memory the machine is stopped and reset
 * around it, as it boots from the reverted disks. */
static bool revert_run(DsnapDomain *d, const DomainSnapshotDef *def,
                       const SavestatePlan *plan, bool run, GError **errp)
{
    bool memory = plan->memory != SAVESTATE_MEMORY_NONE;
    /* Stopped first when it is to end stopped: the pause's resume must
     * not let the guest run past the snapshot's instant. */
    if (d->ops && (!memory || !run) &&
        !d->ops->set_running(d->opaque, false, errp)) {
        return false;
    }
    if (!run_plan(d, savestate_revert, def->name, plan, errp)) {
        return false;
    }
    if (d->ops && !memory && !d->ops->reset(d->opaque, errp)) {
        return false;
    }
    return !d->ops || d->ops->set_running(d->opaque, run, errp);
}

/* After the pause: domain.xml names the new overlays. */
static bool revert_record(DsnapDomain *d, const SavestatePlan *plan,
                          GError **errp)
{
    if (!d->ops) {
        for (guint i = 0; i < plan->n_disks; i++) {
            const SavestateDiskPlan *p = &plan->disks[i];
            DsnapDomainDisk *dd = dom_disk(d->offline_dom, p->name);
            if (p->mode == SAVESTATE_DISK_EXTERNAL && dd) {
                g_free(dd->source_file);
                dd->source_file = g_strdup(p->overlay);
                g_free(dd->driver_type);
                dd->driver_type = g_strdup("qcow2");
            }
        }
        return write_domain_xml(d, d->offline_dom, errp);
    }
    g_auto(DomView) now = { 0 };
    domain_view(d, &now);
    return write_domain_xml(d, now.dom, errp);
}

/* The intent of a revert with new overlays: their files, as external
 * disks of a snapshot document. */
static bool revert_intent(DsnapDomain *d, const DomainSnapshotDef *def,
                          const SavestatePlan *plan, DomView *v,
                          const char *intent, GError **errp)
{
    g_autoptr(DomainSnapshotDef) rec = dsnap_def_new();
    rec->name = g_strdup(def->name);
    for (guint i = 0; i < plan->n_disks; i++) {
        const SavestateDiskPlan *p = &plan->disks[i];
        for (guint j = 0; j < v->disks->len; j++) {
            DomDisk *md = &g_array_index(v->disks, DomDisk, j);
            if (p->mode == SAVESTATE_DISK_EXTERNAL &&
                !strcmp(md->drive, p->name)) {
                DsnapDiskDef *dk = g_new0(DsnapDiskDef, 1);
                dk->name = g_strdup(md->dd->target_dev);
                dk->mode = DSNAP_MODE_EXTERNAL;
                dk->source_file = g_strdup(p->overlay);
                g_ptr_array_add(rec->disks, dk);
            }
        }
    }
    g_autofree char *doc = dsnap_format(rec);
    return dsnap_catalog_intent_write(d->cat, intent, doc, errp);
}

bool dsnap_domain_revert(DsnapDomain *d, const char *name, unsigned flags,
                         DsnapState *state_out, int64_t *pause_ns,
                         GError **errp)
{
    const DomainSnapshotDef *def = d->cat ? dsnap_catalog_lookup(d->cat,
                                                                 name)
                                          : NULL;
    if (!def) {
        error_setg(errp, "Domain snapshot not found: no domain snapshot "
                   "with matching name '%s'", name);
        return false;
    }
    bool run;
    if (!revert_target_state(d, def, flags, &run, errp)) {
        return false;
    }
    g_auto(DomView) v = { 0 };
    domain_view(d, &v);
    SavestatePlan plan;
    g_autoptr(GPtrArray) overlays = g_ptr_array_new_with_free_func(g_free);
    g_autofree SavestateDiskPlan *dp = revert_plan(d, def, &v, &plan,
                                                   overlays, errp);
    if (!dp) {
        return false;
    }
    g_autofree char *intent = intent_name("revert", name);
    bool with_intent = overlays->len > 0;
    if (with_intent && !revert_intent(d, def, &plan, &v, intent, errp)) {
        return false;
    }
    if (!revert_run(d, def, &plan, run, errp)) {
        if (with_intent) {
            intent_clear(d, intent);
        }
        return false;
    }
    /* Reverted: should recording fail, the intent stays and the next
     * start finishes the record (domain_recover). */
    bool ok = revert_record(d, &plan, errp) &&
              dsnap_catalog_set_current(d->cat, name, errp);
    if (ok && with_intent) {
        intent_clear(d, intent);
    }
    if (ok && pause_ns) {
        *pause_ns = savestate_last_load_stats()->guest_pause_ns;
    }
    if (ok && state_out) {
        *state_out = !d->ops ? DSNAP_STATE_SHUTOFF :
                     run ? DSNAP_STATE_RUNNING : DSNAP_STATE_PAUSED;
    }
    return ok;
}

/* domain.xml naming the disks' images now: offline it follows the
 * merges (the open images), online the machine's view. */
static bool record_domain(DsnapDomain *d, GError **errp)
{
    g_auto(DomView) now = { 0 };
    if (!d->ops) {
        for (guint i = 0; i < d->offline_dom->disks->len; i++) {
            DsnapDomainDisk *dd = g_ptr_array_index(d->offline_dom->disks,
                                                    i);
            BlockBackend *blk = g_ptr_array_index(d->offline_blks, i);
            if (blk && blk_bs(blk)) {
                g_free(dd->source_file);
                dd->source_file = g_strdup(bdrv_get_filename(blk_bs(blk)));
            }
        }
        return write_domain_xml(d, d->offline_dom, errp);
    }
    domain_view(d, &now);
    return write_domain_xml(d, now.dom, errp);
}

/* ---- delete ---- */

/* Every image file of the chain that starts at file (read-only). */
static GPtrArray *chain_files(const char *file)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    GError *err = NULL;
    BlockDriverState *top = access(file, F_OK) == 0 ?
                            bdrv_open(file, NULL, 0, &err) : NULL;
    g_clear_error(&err);
    for (BlockDriverState *bs = top; bs; bs = bdrv_backing_bs(bs)) {
        g_ptr_array_add(out, g_canonicalize_filename(bdrv_get_filename(bs),
                                                     NULL));
    }
    if (top) {
        bdrv_unref(top);
    }
    return out;
}

static bool files_have(GPtrArray *files, const char *file)
{
    for (guint i = 0; i < files->len; i++) {
        if (same_file(g_ptr_array_index(files, i), file)) {
            return true;
        }
    }
    return false;
}

static DsnapDiskDef *def_disk(const DomainSnapshotDef *def,
                              const char *target)
{
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        if (!g_strcmp0(dk->name, target)) {
            return dk;
        }
    }
    return NULL;
}

/* Merging overlay into base changes base: refused when another snapshot
 * of the catalog reads base without the overlay on top (a branch). */
static bool check_branches(DsnapDomain *d, const DomainSnapshotDef *def,
                           const char *target, const char *base,
                           const char *overlay, GError **errp)
{
    g_autoptr(GPtrArray) names = dsnap_catalog_names(d->cat);
    for (guint i = 0; i < names->len; i++) {
        const DomainSnapshotDef *o = dsnap_catalog_lookup(
            d->cat, g_ptr_array_index(names, i));
        DsnapDomainDisk *rec = o && o != def ? dom_disk(o->domain, target)
                                             : NULL;
        DsnapDiskDef *odk = o ? def_disk(o, target) : NULL;
        if (!rec || !rec->source_file) {
            continue;
        }
        bool internal_here = same_file(rec->source_file, base) &&
                             (!odk || odk->mode != DSNAP_MODE_EXTERNAL);
        if (internal_here) {
            continue;           /* its internal snapshot is untouched */
        }
        g_autoptr(GPtrArray) chain = chain_files(rec->source_file);
        if (files_have(chain, base) && !files_have(chain, overlay)) {
            error_setg(errp, "cannot delete external snapshot '%s' of "
                       "disk %s: snapshot '%s' uses %s as it is now "
                       "(delete with --metadata, or delete that branch "
                       "first)", def->name, target, o->name, base);
            return false;
        }
    }
    return true;
}

/* Does another snapshot of the catalog read overlay (its frozen image
 * for disk target, or one below it)? */
static bool overlay_needed(DsnapDomain *d, const DomainSnapshotDef *def,
                           const char *target, const char *overlay)
{
    g_autoptr(GPtrArray) names = dsnap_catalog_names(d->cat);
    for (guint i = 0; i < names->len; i++) {
        const DomainSnapshotDef *o = dsnap_catalog_lookup(
            d->cat, g_ptr_array_index(names, i));
        DsnapDomainDisk *rec = o && o != def ? dom_disk(o->domain, target)
                                             : NULL;
        if (rec && rec->source_file) {
            g_autoptr(GPtrArray) chain = chain_files(rec->source_file);
            if (files_have(chain, overlay)) {
                return true;
            }
        }
    }
    return false;
}

typedef struct CommitWait {
    bool done;
    int ret;
} CommitWait;

static void commit_done(void *opaque, int ret)
{
    CommitWait *w = opaque;
    w->done = true;
    w->ret = ret;
}

/* The commit job of overlay o into its backing, to the end (an active
 * one completed at ready: the pivot). */
static bool commit_online(BlockDriverState *root, BlockDriverState *o,
                          const char *target, GError **errp)
{
    CommitWait w = { 0 };
    CommitOptions opts;
    commit_options_init(&opts);
    opts.cb = commit_done;
    opts.cb_opaque = &w;
    g_autofree char *id = g_strdup_printf("snapshot-delete-%s", target);
    CommitJob *cj = commit_job_start(id, root, o, bdrv_backing_bs(o), &opts,
                                     errp);
    if (!cj) {
        return false;
    }
    Job *job = commit_job_job(cj);
    bool completed = false;
    while (!w.done) {
        if (!completed && job_is_ready(job)) {
            job_complete(job, errp);
            completed = true;
        }
        g_main_context_iteration(NULL, TRUE);
    }
    if (w.ret < 0) {
        error_setg_errno(errp, -w.ret, "merging the snapshot's overlay of "
                         "disk %s", target);
        return false;
    }
    return true;
}

/* What deleting an external snapshot does to one disk's overlay. */
typedef enum MergeKind {
    MERGE_NONE,                 /* gone already (an earlier attempt) */
    MERGE_UNLINK,               /* a branch a revert left: nothing reads */
    MERGE_COMMIT,               /* in the disk's chain: block-commit */
} MergeKind;

typedef struct MergePlan {
    MergeKind kind;
    BlockDriverState *root, *o;
} MergePlan;

static BlockDriverState *disk_root(DsnapDomain *d, DomDisk *md)
{
    BlockDriverState *root = NULL;
    g_autoptr(GArray) disks = d->sh->ops->disks(d->sh->opaque);
    for (guint i = 0; md && i < disks->len; i++) {
        SavestateDisk *sd = &g_array_index(disks, SavestateDisk, i);
        if (!strcmp(sd->name, md->drive)) {
            root = sd->bs;
        }
    }
    return root;
}

static bool names_have(GPtrArray *names, guint n, const char *name)
{
    for (guint i = 0; names && i < n && i < names->len; i++) {
        if (!g_strcmp0(g_ptr_array_index(names, i), name)) {
            return true;
        }
    }
    return false;
}

/*
 * The overlay of dk goes with the delete (merged by block-commit, or
 * removed), and an image's internal snapshots live in its own file: a
 * commit carries none of the overlay's into the base.  So the delete is
 * refused when the overlay holds an internal snapshot (a disk's, or the
 * VM state) of another listed snapshot - one taken while the overlay was
 * the active layer - unless the same request deletes that snapshot
 * first (the first ndoomed of doomed: --children).  Changes nothing.
 */
static bool check_overlay_holders(DsnapDomain *d,
                                  const DomainSnapshotDef *def,
                                  const DsnapDiskDef *dk, GPtrArray *doomed,
                                  guint ndoomed, GError **errp)
{
    const char *overlay = dk->source_file;
    if (!overlay || access(overlay, F_OK) < 0) {
        return true;
    }
    GError *err = NULL;
    g_autoptr(GPtrArray) tags = image_tags(d, overlay, &err);
    if (!tags) {
        error_setg(errp, "cannot delete external snapshot '%s' of disk %s: "
                   "%s", def->name, dk->name, err->message);
        g_clear_error(&err);
        return false;
    }
    g_autoptr(GPtrArray) names = dsnap_catalog_names(d->cat);
    g_autoptr(GString) holders = g_string_new(NULL);
    guint n = 0;
    for (guint i = 0; i < names->len; i++) {
        const char *name = g_ptr_array_index(names, i);
        if (!strcmp(name, def->name) || names_have(doomed, ndoomed, name) ||
            !names_have(tags, tags->len, name)) {
            continue;
        }
        g_string_append_printf(holders, "%s'%s'", n ? ", " : "", name);
        n++;
    }
    if (n) {
        DsnapDomainDisk *rec = dom_disk(def->domain, dk->name);
        error_setg(errp, "cannot delete external snapshot '%s': its overlay "
                   "%s of disk %s holds the internal snapshot%s of "
                   "snapshot%s %s, which merging it into %s would lose "
                   "(delete %s first, or '%s' with --children if %s its "
                   "descendant%s; --metadata removes only the record)",
                   def->name, overlay, dk->name, n > 1 ? "s" : "",
                   n > 1 ? "s" : "", holders->str,
                   rec && rec->source_file ? rec->source_file : "its base",
                   n > 1 ? "them" : "it", def->name,
                   n > 1 ? "they are" : "it is", n > 1 ? "s" : "");
        return false;
    }
    return true;
}

/* Every external disk of def (see check_overlay_holders). */
static bool check_holders(DsnapDomain *d, const DomainSnapshotDef *def,
                          GPtrArray *doomed, guint ndoomed, GError **errp)
{
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        if (dk->mode == DSNAP_MODE_EXTERNAL &&
            !check_overlay_holders(d, def, dk, doomed, ndoomed, errp)) {
            return false;
        }
    }
    return true;
}

/*
 * Checks, changing nothing, how the overlay of dk can go.  Finishing a
 * delete a kill interrupted (resume), an overlay that is no longer in
 * the disk's chain was merged already - the delete's checks passed
 * before its intent was written, so it was in the chain or a branch no
 * snapshot reads, and it leaves the chain only once its data is in the
 * base (the layer above rewritten, or the pivot and domain.xml naming
 * the base): it just goes.
 */
static bool merge_check(DsnapDomain *d, const DomainSnapshotDef *def,
                        DsnapDiskDef *dk, DomView *v, bool resume,
                        MergePlan *mp, GError **errp)
{
    DsnapDomainDisk *rec = dom_disk(def->domain, dk->name);
    const char *overlay = dk->source_file;
    *mp = (MergePlan){ MERGE_NONE };
    if (!overlay || access(overlay, F_OK) < 0) {
        return true;
    }
    if (!check_overlay_holders(d, def, dk, NULL, 0, errp)) {
        return false;
    }
    mp->root = disk_root(d, view_disk(v, dk->name));
    for (BlockDriverState *bs = mp->root; bs && !mp->o;
         bs = bdrv_backing_bs(bs)) {
        if (same_file(bdrv_get_filename(bs), overlay)) {
            mp->o = bs;
        }
    }
    if (!mp->o && (resume || !overlay_needed(d, def, dk->name, overlay))) {
        mp->kind = MERGE_UNLINK;
        return true;
    }
    if (!mp->o || !bdrv_backing_bs(mp->o) || !rec ||
        !same_file(bdrv_get_filename(bdrv_backing_bs(mp->o)),
                   rec->source_file)) {
        error_setg(errp, "cannot delete external snapshot '%s' of disk %s: "
                   "its overlay %s is not in the disk's chain over %s "
                   "(delete with --metadata)", def->name, dk->name, overlay,
                   rec ? rec->source_file : "?");
        return false;
    }
    mp->kind = MERGE_COMMIT;
    return check_branches(d, def, dk->name, rec->source_file, overlay, errp);
}

static bool repoint_frozen(DsnapDomain *d, const char *target,
                           const char *overlay, const char *base,
                           GError **errp);

/*
 * The snapshot's overlay of one disk merged into the image it froze, base
 * (or dropped, for an abandoned branch), then its file removed - in this
 * order of durable steps, so that a kill at any instant leaves every
 * file that domain.xml or a record names:
 *   block-commit (an active one pivots the disk onto base)
 *   -> domain.xml names the disks' images now (base, after a pivot)
 *   -> snapshots that froze the overlay name base (repoint_frozen)
 *   -> the overlay's file removed.
 * Until domain.xml is rewritten it names the overlay, which holds every
 * write; a start that found the file it names missing (no intent left
 * to say what was below) would open the -drive file, maybe several
 * layers down.  Again from the top after a kill: each step is
 * idempotent (MERGE_NONE: only the records are repointed).
 */
static bool merge_run(DsnapDomain *d, DsnapDiskDef *dk, const char *base,
                      const MergePlan *mp, GError **errp)
{
    if (mp->kind == MERGE_COMMIT &&
        !(d->ops ? commit_online(mp->root, mp->o, dk->name, errp)
                 : bdrv_commit_offline(mp->o, bdrv_backing_bs(mp->o),
                                       NULL, NULL, NULL, errp) == 0)) {
        return false;
    }
    if (mp->kind != MERGE_NONE && !record_domain(d, errp)) {
        return false;
    }
    if (!repoint_frozen(d, dk->name, dk->source_file, base, errp)) {
        return false;
    }
    if (mp->kind != MERGE_NONE && unlink(dk->source_file) < 0 &&
        errno != ENOENT) {
        error_setg_errno(errp, errno, "removing %s", dk->source_file);
        return false;
    }
    return true;
}

/* Other snapshots that froze the merged overlay now read its base.  A
 * disk internal in such a snapshot is not moved: its state lived in the
 * overlay's own file, which the base does not get (check_overlay_holders
 * refuses the merge while a listed snapshot has one there; libvirt too
 * repoints only external snapshots' disks). */
static bool repoint_frozen(DsnapDomain *d, const char *target,
                           const char *overlay, const char *base,
                           GError **errp)
{
    g_autoptr(GPtrArray) names = dsnap_catalog_names(d->cat);
    for (guint i = 0; i < names->len; i++) {
        const DomainSnapshotDef *o = dsnap_catalog_lookup(
            d->cat, g_ptr_array_index(names, i));
        DsnapDomainDisk *rec = o ? dom_disk(o->domain, target) : NULL;
        DsnapDiskDef *odk = o ? def_disk(o, target) : NULL;
        if (!rec || !same_file(rec->source_file, overlay) ||
            (odk && odk->mode == DSNAP_MODE_INTERNAL)) {
            continue;
        }
        g_autofree char *doc = dsnap_format(o);
        DomainSnapshotDef *c = dsnap_parse_string(doc, strlen(doc), errp);
        if (!c) {
            return false;
        }
        DsnapDomainDisk *crec = dom_disk(c->domain, target);
        g_free(crec->source_file);
        crec->source_file = g_strdup(base);
        if (!dsnap_catalog_redefine(d->cat, c, false, errp)) {
            return false;
        }
    }
    return true;
}

static bool taken_disk(const DsnapDiskDef *dk)
{
    return dk->mode == DSNAP_MODE_INTERNAL ||
           dk->mode == DSNAP_MODE_EXTERNAL;
}

/* Everything that can refuse, changing nothing: the plan of each
 * external disk's overlay (mp: one per disk of def). */
static bool delete_check(DsnapDomain *d, const DomainSnapshotDef *def,
                         DomView *v, bool resume, MergePlan *mp,
                         GError **errp)
{
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        if (dk->mode == DSNAP_MODE_EXTERNAL &&
            !merge_check(d, def, dk, v, resume, &mp[i], errp)) {
            return false;
        }
    }
    return true;
}

/*
 * After delete_check: internal snapshots, merges, and the memory file
 * last (an interrupted delete is finished at the next start: its
 * intent).
 */
static bool delete_artifacts(DsnapDomain *d, const DomainSnapshotDef *def,
                             const MergePlan *mp, GError **errp)
{
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        DsnapDomainDisk *rec = dom_disk(def->domain, dk->name);
        if (!taken_disk(dk) || !rec) {
            continue;
        }
        /* An external disk's frozen image may hold the VM state. */
        if (!image_delete_tag(d, rec->source_file, def->name, errp)) {
            error_prepend(errp, "deleting snapshot '%s' on disk %s: ",
                          def->name, dk->name);
            return false;
        }
        if (dk->mode == DSNAP_MODE_EXTERNAL &&
            !merge_run(d, dk, rec->source_file, &mp[i], errp)) {
            return false;
        }
    }
    if (def->memory == DSNAP_MODE_EXTERNAL && def->memory_file &&
        unlink(def->memory_file) < 0 && errno != ENOENT) {
        error_setg_errno(errp, errno, "removing %s", def->memory_file);
        return false;
    }
    return true;
}

/* One snapshot; its artifacts go under an intent, so that a kill
 * half-way is finished at the next start (domain_recover: resume). */
static bool delete_one(DsnapDomain *d, const char *name, bool metadata,
                       bool resume, GPtrArray *deleted, GError **errp)
{
    const DomainSnapshotDef *def = dsnap_catalog_lookup(d->cat, name);
    g_autofree char *intent = intent_name("delete", name);
    if (!metadata) {
        /* A refusal comes before the intent: nothing at all changed. */
        g_auto(DomView) v = { 0 };
        domain_view(d, &v);
        g_autofree MergePlan *mp = g_new0(MergePlan, def->disks->len + 1);
        if (!delete_check(d, def, &v, resume, mp, errp)) {
            return false;
        }
        g_autofree char *doc = dsnap_format(def);
        if (!dsnap_catalog_intent_write(d->cat, intent, doc, errp)) {
            return false;
        }
        if (!delete_artifacts(d, def, mp, errp)) {
            intent_clear(d, intent);
            return false;
        }
    }
    if (!dsnap_catalog_remove(d->cat, name, errp)) {
        return false;
    }
    if (!metadata) {
        intent_clear(d, intent);
    }
    if (deleted) {
        g_ptr_array_add(deleted, g_strdup(name));
    }
    return true;
}

bool dsnap_domain_delete(DsnapDomain *d, const char *name, unsigned flags,
                         GPtrArray *deleted, GError **errp)
{
    if (!d->cat || !dsnap_catalog_lookup(d->cat, name)) {
        error_setg(errp, "Domain snapshot not found: no domain snapshot "
                   "with matching name '%s'", name);
        return false;
    }
    if ((flags & DSNAP_DELETE_CHILDREN) &&
        (flags & DSNAP_DELETE_CHILDREN_ONLY)) {
        error_setg(errp, "--children and --children-only are mutually "
                   "exclusive");
        return false;
    }
    bool metadata = flags & DSNAP_DELETE_METADATA;
    bool ok = true;
    /* What this request deletes, checked before the first of them goes:
     * no overlay it merges may hold internal snapshots of a snapshot it
     * keeps or deletes only later (doomed is in deletion order: a
     * --children delete takes the descendants first). */
    g_autoptr(GPtrArray) doomed =
        (flags & (DSNAP_DELETE_CHILDREN | DSNAP_DELETE_CHILDREN_ONLY)) ?
        dsnap_catalog_descendants(d->cat, name) :
        g_ptr_array_new_with_free_func(g_free);
    if (!(flags & DSNAP_DELETE_CHILDREN_ONLY)) {
        g_ptr_array_add(doomed, g_strdup(name));
    }
    for (guint i = 0; i < doomed->len && !metadata; i++) {
        if (!check_holders(d, dsnap_catalog_lookup(
                                  d->cat, g_ptr_array_index(doomed, i)),
                           doomed, i, errp)) {
            return false;
        }
    }
    if (flags & (DSNAP_DELETE_CHILDREN | DSNAP_DELETE_CHILDREN_ONLY)) {
        g_autoptr(GPtrArray) below = dsnap_catalog_descendants(d->cat, name);
        for (guint i = 0; i < below->len && ok; i++) {
            ok = delete_one(d, g_ptr_array_index(below, i), metadata,
                            false, deleted, errp);
        }
    }
    if (ok && !(flags & DSNAP_DELETE_CHILDREN_ONLY)) {
        ok = delete_one(d, name, metadata, false, deleted, errp);
    }
    GError *local = NULL;
    if (!metadata && !record_domain(d, ok ? errp : &local)) {
        ok = false;
    }
    g_clear_error(&local);
    return ok;
}

/* ---- edit ---- */

static bool def_has_internal(const DomainSnapshotDef *def)
{
    if (def->memory == DSNAP_MODE_INTERNAL) {
        return true;
    }
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        if (dk->mode == DSNAP_MODE_INTERNAL) {
            return true;
        }
    }
    return false;
}

bool dsnap_domain_edit(DsnapDomain *d, const char *name, const char *xml,
                       char **name_out, GError **errp)
{
    const DomainSnapshotDef *old = d->cat ? dsnap_catalog_lookup(d->cat,
                                                                 name)
                                          : NULL;
    if (!old) {
        error_setg(errp, "Domain snapshot not found: no domain snapshot "
                   "with matching name '%s'", name);
        return false;
    }
    g_autoptr(DomainSnapshotDef) nd = dsnap_parse_string(xml, strlen(xml),
                                                         errp);
    if (!nd) {
        return false;
    }
    if (!nd->name) {
        nd->name = g_strdup(name);
    }
    /* Only the name and the description may differ. */
    g_autofree char *want_name = g_strdup(nd->name);
    g_autofree char *want_desc = g_strdup(nd->description);
    g_free(nd->name);
    nd->name = g_strdup(old->name);
    g_free(nd->description);
    nd->description = g_strdup(old->description);
    g_autofree char *a = dsnap_format(old), *b = dsnap_format(nd);
    if (strcmp(a, b)) {
        error_setg(errp, "snapshot-edit may change only the name and the "
                   "description of snapshot '%s'", name);
        return false;
    }
    if (g_strcmp0(want_desc, old->description) &&
        !dsnap_catalog_set_description(d->cat, name, want_desc, errp)) {
        return false;
    }
    if (strcmp(want_name, name)) {
        if (def_has_internal(old)) {
            error_setg(errp, "cannot rename snapshot '%s': its internal "
                       "snapshots on the disks carry its name", name);
            return false;
        }
        if (!dsnap_catalog_rename(d->cat, name, want_name, errp)) {
            return false;
        }
    }
    *name_out = g_steal_pointer(&want_name);
    return true;
}

/* ---- repairs after a kill ---- */

static bool artifacts_complete(DsnapDomain *d, const DomainSnapshotDef *def)
{
    bool vm_found = false;
    if (def->memory == DSNAP_MODE_EXTERNAL &&
        (!def->memory_file || access(def->memory_file, F_OK) < 0)) {
        return false;
    }
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        DsnapDomainDisk *rec = def->domain ? dom_disk(def->domain, dk->name)
                                           : NULL;
        if (dk->mode != DSNAP_MODE_INTERNAL &&
            dk->mode != DSNAP_MODE_EXTERNAL) {
            continue;
        }
        if (!rec) {
            return false;
        }
        bool tagged = image_has_tag(d, rec->source_file, def->name, false);
        if (dk->mode == DSNAP_MODE_INTERNAL && !tagged) {
            return false;
        }
        if (dk->mode == DSNAP_MODE_EXTERNAL &&
            (!dk->source_file || access(dk->source_file, F_OK) < 0)) {
            return false;
        }
        vm_found |= image_has_tag(d, rec->source_file, def->name, true);
    }
    return def->memory != DSNAP_MODE_INTERNAL || vm_found;
}

/* Is file the active layer or in the chain of one of the disks? */
static bool image_in_use(DsnapDomain *d, const char *file)
{
    return open_node_of(d, file) != NULL;
}

static void undo_create(DsnapDomain *d, const DomainSnapshotDef *def,
                        GString *report)
{
    GError *err = NULL;
    if (def->memory_file) {
        g_autofree char *part = g_strconcat(def->memory_file, ".part", NULL);
        unlink(part);
        unlink(def->memory_file);
    }
    for (guint i = 0; i < def->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(def->disks, i);
        DsnapDomainDisk *rec = def->domain ? dom_disk(def->domain, dk->name)
                                           : NULL;
        if (rec && !image_delete_tag(d, rec->source_file, def->name, &err)) {
            g_string_append_printf(report, "snapshot '%s': %s\n", def->name,
                                   err->message);
            g_clear_error(&err);
        }
        /* An overlay in use holds guest writes: it stays the disk's. */
        if (dk->mode == DSNAP_MODE_EXTERNAL && dk->source_file &&
            !image_in_use(d, dk->source_file)) {
            unlink(dk->source_file);
        }
    }
}

static void recover_create(DsnapDomain *d, DomainSnapshotDef *def,
                           bool metadata, GString *report)
{
    GError *err = NULL;
    if (artifacts_complete(d, def)) {
        if (!metadata || dsnap_catalog_lookup(d->cat, def->name)) {
            dsnap_def_free(def);
            return;
        }
        char *name = g_strdup(def->name);
        if (dsnap_catalog_add(d->cat, def, true, &err)) {
            g_string_append_printf(report, "listed snapshot '%s', whose "
                                   "creation a kill interrupted\n", name);
        } else {
            g_string_append_printf(report, "snapshot '%s': %s\n", name,
                                   err->message);
            g_clear_error(&err);
        }
        g_free(name);
        return;
    }
    undo_create(d, def, report);
    g_string_append_printf(report, "removed the unfinished snapshot '%s'\n",
                           def->name);
    dsnap_def_free(def);
}

/* A revert's new overlays (the intent's external disks): in use, the
 * revert happened (make it current); otherwise they go. */
static void recover_revert(DsnapDomain *d, DomainSnapshotDef *rec,
                           GString *report)
{
    bool used = false;
    for (guint i = 0; i < rec->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(rec->disks, i);
        used |= dk->source_file && image_in_use(d, dk->source_file);
    }
    GError *err = NULL;
    if (used) {
        if (dsnap_catalog_lookup(d->cat, rec->name) &&
            !dsnap_catalog_set_current(d->cat, rec->name, &err)) {
            g_clear_error(&err);
        }
        g_string_append_printf(report, "finished the revert to snapshot "
                               "'%s'\n", rec->name);
        return;
    }
    for (guint i = 0; i < rec->disks->len; i++) {
        DsnapDiskDef *dk = g_ptr_array_index(rec->disks, i);
        if (dk->source_file) {
            unlink(dk->source_file);
        }
    }
    g_string_append_printf(report, "undid the unfinished revert to "
                           "snapshot '%s'\n", rec->name);
}

/* A delete a kill interrupted is finished: what remains of the
 * snapshot goes, then its record. */
static void recover_delete(DsnapDomain *d, const char *name,
                           GString *report)
{
    GError *err = NULL;
    if (!dsnap_catalog_lookup(d->cat, name)) {
        return;
    }
    if (!delete_one(d, name, false, true, NULL, &err)) {
        g_string_append_printf(report, "could not finish deleting snapshot "
                               "'%s': %s\n", name, err->message);
        g_clear_error(&err);
        return;
    }
    g_string_append_printf(report, "finished deleting snapshot '%s'\n",
                           name);
}

/* Finishes or undoes every operation a kill interrupted. */
static void domain_recover(DsnapDomain *d, GString *report)
{
    g_autoptr(GPtrArray) intents = dsnap_catalog_intents(d->cat);
    for (guint i = 0; i < intents->len; i++) {
        const char *intent = g_ptr_array_index(intents, i);
        g_autofree char *doc = dsnap_catalog_intent_read(d->cat, intent,
                                                         NULL);
        GError *err = NULL;
        DomainSnapshotDef *def = doc ? dsnap_parse_string(doc, strlen(doc),
                                                          &err) : NULL;
        if (!def) {
            g_string_append_printf(report, "dropped the unreadable intent "
                                   "'%s'\n", intent);
            g_clear_error(&err);
        } else if (g_str_has_prefix(intent, "revert:")) {
            recover_revert(d, def, report);
            dsnap_def_free(def);
        } else if (g_str_has_prefix(intent, "delete:")) {
            recover_delete(d, def->name, report);
            dsnap_def_free(def);
        } else {
            recover_create(d, def, g_str_has_prefix(intent, "create:"),
                           report);
        }
        /* domain.xml names what the repair left (an overlay removed)
         * before the intent, which says what was below, goes: a start
         * never finds a file domain.xml names missing with no intent
         * left to fall back on. */
        if (!record_domain(d, &err)) {
            g_string_append_printf(report, "kept the intent '%s': %s\n",
                                   intent, err->message);
            g_clear_error(&err);
            continue;
        }
        intent_clear(d, intent);
    }
}

/* ---- life ---- */

static GString *report_or_scratch(GString *report, GString **scratch)
{
    if (report) {
        return report;
    }
    *scratch = g_string_new(NULL);
    return *scratch;
}

DsnapDomain *dsnap_domain_open(const char *catalog_dir,
                               const SavestateHost *sh,
                               const DsnapHostOps *ops, void *opaque,
                               GString *report, GError **errp)
{
    DsnapDomain *d = g_new0(DsnapDomain, 1);
    d->dir = g_strdup(catalog_dir);
    d->sh = sh;
    d->ops = ops;
    d->opaque = opaque;
    if (!g_file_test(catalog_dir, G_FILE_TEST_EXISTS)) {
        return d;               /* made with the first snapshot */
    }
    GString *scratch = NULL;
    GString *rep = report_or_scratch(report, &scratch);
    d->cat = dsnap_catalog_open(catalog_dir, false, rep, errp);
    if (!d->cat) {
        dsnap_domain_free(d);
        d = NULL;
    } else {
        domain_recover(d, rep);
        g_auto(DomView) v = { 0 };
        domain_view(d, &v);
        if (!write_domain_xml(d, v.dom, errp)) {
            dsnap_domain_free(d);
            d = NULL;
        }
    }
    if (scratch) {
        g_string_free(scratch, TRUE);
    }
    return d;
}

void dsnap_domain_free(DsnapDomain *d)
{
    if (!d) {
        return;
    }
    if (d->cat) {
        dsnap_catalog_free(d->cat);
    }
    if (d->offline_blks) {
        g_ptr_array_unref(d->offline_blks);
    }
    dsnap_domain_def_free(d->offline_dom);
    g_free(d->dir);
    g_free(d);
}

/* ---- offline: the images alone as the save-state host ---- */

static guint off_ram_regions(void *opaque, SavestateRam *out)
{
    return 0;
}

static GArray *off_disks(void *opaque)
{
    DsnapDomain *d = opaque;
    GArray *a = g_array_new(FALSE, TRUE, sizeof(SavestateDisk));
    for (guint i = 0; i < d->offline_blks->len; i++) {
        BlockBackend *blk = g_ptr_array_index(d->offline_blks, i);
        if (blk && blk_bs(blk)) {
            SavestateDisk sd = { blk_name(blk), blk_bs(blk), blk };
            g_array_append_val(a, sd);
        }
    }
    return a;
}

static void off_nothing(void *opaque)
{
}

static int off_parked(void *opaque, GError **errp)
{
    return 1;                   /* nothing runs */
}

static bool off_no_memory(void *opaque, XssWriter *w, SavestateCapture *cap,
                          GError **errp)
{
    error_setg(errp, "a stopped machine has no memory to save");
    return false;
}

static bool off_no_load_check(void *opaque, XssReader *r, GError **errp)
{
    error_setg(errp, "a stopped machine cannot load memory");
    return false;
}

static bool off_no_load(void *opaque, XssReader *r, RamRestore *rr,
                        GError **errp)
{
    return off_no_load_check(opaque, r, errp);
}

static void blk_unref_maybe(gpointer p)
{
    if (p) {
        blk_unref(p);
    }
}

/* Every disk's image, by its target name ("hda"). */
static bool offline_open_disks(DsnapDomain *d, GError **errp)
{
    d->offline_blks = g_ptr_array_new_with_free_func(blk_unref_maybe);
    for (guint i = 0; i < d->offline_dom->disks->len; i++) {
        DsnapDomainDisk *dd = g_ptr_array_index(d->offline_dom->disks, i);
        BlockBackend *blk = NULL;
        if (dd->source_file && g_strcmp0(dd->device, "cdrom")) {
            blk = blk_new_open(dd->source_file, NULL, BDRV_O_RDWR, errp);
            if (!blk) {
                error_prepend(errp, "disk %s: ", dd->target_dev);
                return false;
            }
            blk_set_name(blk, dd->target_dev);
        }
        g_ptr_array_add(d->offline_blks, blk);
    }
    return true;
}

/* domain.xml's disks that a kill left naming a file that was never
 * made fall back to the image below (dsnap_drive_source's rule). */
static void offline_settle_sources(DsnapDomain *d)
{
    for (guint i = 0; i < d->offline_dom->disks->len; i++) {
        DsnapDomainDisk *dd = g_ptr_array_index(d->offline_dom->disks, i);
        if (dd->source_file && g_strcmp0(dd->device, "cdrom")) {
            char *src = dsnap_drive_source(d->dir, dd->target_dev,
                                           dd->source_file);
            g_free(dd->source_file);
            dd->source_file = src;
        }
    }
}

DsnapDomain *dsnap_domain_open_offline(const char *catalog_dir,
                                       GString *report, GError **errp)
{
    GString *scratch = NULL;
    GString *rep = report_or_scratch(report, &scratch);
    DsnapDomain *d = g_new0(DsnapDomain, 1);
    d->dir = g_strdup(catalog_dir);
    d->offline_ops = (SavestateHostOps){
        .machine_type = "offline",
        .ram_regions = off_ram_regions, .disks = off_disks,
        .pause_request = off_nothing, .pause_poll = off_parked,
        .resume = off_nothing, .capture = off_no_memory,
        .load_check = off_no_load_check, .load = off_no_load,
    };
    d->offline_host = (SavestateHost){ &d->offline_ops, d };
    d->sh = &d->offline_host;
    g_autofree char *xml = NULL;
    bool ok = (d->cat = dsnap_catalog_open(catalog_dir, false, rep, errp)) &&
              (xml = dsnap_catalog_read_domain(d->cat, errp)) &&
              (d->offline_dom = dsnap_domain_parse(xml, strlen(xml), errp));
    if (ok) {
        offline_settle_sources(d);
        ok = offline_open_disks(d, errp);
    }
    if (ok) {
        domain_recover(d, rep);
        ok = record_domain(d, errp);
    }
    if (scratch) {
        g_string_free(scratch, TRUE);
    }
    if (!ok) {
        dsnap_domain_free(d);
        return NULL;
    }
    return d;
}

/* ---- where a drive opens ---- */

static bool chain_has(const char *top, const char *file)
{
    g_autoptr(GPtrArray) chain = chain_files(top);
    return files_have(chain, file);
}

/* Candidates for target's image: domain.xml's, then what each intent
 * says the disk had before it. */
static GPtrArray *source_candidates(DsnapCatalog *cat, const char *target)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *xml = dsnap_catalog_read_domain(cat, NULL);
    g_autoptr(DsnapDomainDef) dom = xml ? dsnap_domain_parse(xml,
                                                             strlen(xml),
                                                             NULL) : NULL;
    DsnapDomainDisk *dd = dom_disk(dom, target);
    if (dd && dd->source_file) {
        g_ptr_array_add(out, g_strdup(dd->source_file));
    }
    g_autoptr(GPtrArray) intents = dsnap_catalog_intents(cat);
    for (guint i = 0; i < intents->len; i++) {
        g_autofree char *doc = dsnap_catalog_intent_read(
            cat, g_ptr_array_index(intents, i), NULL);
        g_autoptr(DomainSnapshotDef) def = doc ?
            dsnap_parse_string(doc, strlen(doc), NULL) : NULL;
        DsnapDomainDisk *rec = def ? dom_disk(def->domain, target) : NULL;
        if (rec && rec->source_file) {
            g_ptr_array_add(out, g_strdup(rec->source_file));
        }
    }
    return out;
}

char *dsnap_drive_source(const char *catalog_dir, const char *target,
                         const char *drive_file)
{
    if (!g_file_test(catalog_dir, G_FILE_TEST_IS_DIR)) {
        return g_strdup(drive_file);
    }
    DsnapCatalog *cat = dsnap_catalog_open(catalog_dir, false, NULL, NULL);
    if (!cat) {
        return g_strdup(drive_file);
    }
    g_autoptr(GPtrArray) cands = source_candidates(cat, target);
    dsnap_catalog_free(cat);
    for (guint i = 0; i < cands->len; i++) {
        const char *c = g_ptr_array_index(cands, i);
        if (same_file(c, drive_file)) {
            break;
        }
        if (access(c, F_OK) == 0 && chain_has(c, drive_file)) {
            return g_strdup(c);
        }
    }
    return g_strdup(drive_file);
}
