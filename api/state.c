/*
 * state.c - save states for embedding hosts (include/xblk/xblk-state.h).
 * Presents what the host registered - RAM regions, device tables, the
 * pause contract, the engine's writable disks - to the coordination in
 * migration/savestate.c as a SavestateHost, and runs each save, load or
 * delete as a coroutine on the engine's loop.
 *
 * Device tables: each public XblkDeviceDesc is checked and converted
 * once into the engine's VMStateDescription (migration/vmstate.h), whose
 * ctx hooks call the host's hooks with the public table as context.
 * After conversion the engine's own asserts about tables can never fire:
 * every rule they state is checked here first and refused as
 * XBLK_ERROR_INVALID.
 *
 * Invariants: RAM and devices change only while no operation runs
 * (busy); `paused` is written by the host's threads (xblk_host_paused)
 * and read by the loop; the capture's copies (title, hash, thumbnail)
 * live from the pause to the end of the operation.  Loop thread only,
 * except xblk_host_paused and the RAM write helpers.
 */
#include "api/internal.h"
#include "migration/ram-snapshot.h"
#include "migration/savestate.h"
#include "util/coroutine.h"
#include "util/error.h"
#include "util/main-loop.h"
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Nested tables deeper than this are refused (also ends cycles). */
#define STATE_DESC_DEPTH_MAX    16
/* Fields of one table at most (a missing terminator ends here). */
#define STATE_FIELDS_MAX        4096
#define STATE_NAME_MAX          255

typedef struct ApiRam {
    char *name;
    void *host;
    uint64_t size;
} ApiRam;

/* A public table converted (the engine's view of it). */
typedef struct ApiDesc {
    VMStateDescription vmsd;
    VMStateField *fields;
} ApiDesc;

struct XblkStateHost {
    ApiRam ram[XBLK_RAM_REGIONS_MAX];
    guint n_ram;
    VMStateSet *devices;
    bool host_set;
    XblkHostOps ops;            /* the host's, machine_type our copy */
    atomic_bool paused;
    atomic_llong park_ns;
    GMutex fail_lock;
    char *pause_failure;        /* fail_lock: xblk_host_pause_failed's */
    XssReader *loading;         /* the state being loaded, in load_end */
    bool busy;
    bool cancel;                /* asked to stop the running operation */
    /* The running save's capture (freed when it ends). */
    uint64_t frame;
    int64_t clock_ns;
    char *title, *disc_path, *frame_hash;
    GBytes *thumbnail;
    uint16_t thumb_w, thumb_h;
    /* A load's device sections, decoded and checked by load_check and
     * committed by load (one decode inside the pause, not two). */
    VMStateSetLoad *prepared;
};

/* Every public table converted so far: const XblkDeviceDesc * ->
 * ApiDesc *.  Process-wide and never freed: tables are static data,
 * immutable, and the conversion of one is always the same. */
static GHashTable *api_descs;
static GMutex api_descs_lock;

static XblkStateHost *state_of(XblkEngine *e)
{
    if (!e->state) {
        XblkStateHost *st = g_new0(XblkStateHost, 1);
        st->devices = vmstate_set_new();
        g_mutex_init(&st->fail_lock);
        e->state = st;
    }
    return e->state;
}

void xblk_api_state_free(XblkEngine *e)
{
    XblkStateHost *st = e->state;
    if (!st) {
        return;
    }
    /* An operation in flight holds st: let it end first. */
    while (st->busy) {
        aio_poll(true);
    }
    for (guint i = 0; i < st->n_ram; i++) {
        g_free(st->ram[i].name);
    }
    vmstate_set_free(st->devices);
    g_free((char *)st->ops.machine_type);
    g_free(st->pause_failure);
    g_mutex_clear(&st->fail_lock);
    g_free(st);
    e->state = NULL;
}

static bool engine_ok(XblkEngine *e, XblkError **err)
{
    if (!e || e != xblk_api_engine()) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no such engine");
        return false;
    }
    return true;
}

static bool not_busy(XblkEngine *e, XblkError **err)
{
    if ((e->state && e->state->busy) || savestate_busy()) {
        xblk_api_error(err, XBLK_ERROR_BUSY, "a save, load or delete of a "
                       "state is in progress");
        return false;
    }
    return true;
}

/* A state's name: QEMU's texts for a snapshot tag. */
static bool tag_ok(const char *tag, XblkError **err)
{
    if (!tag || !*tag) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "a save state needs a tag");
        return false;
    }
    if (strlen(tag) > STATE_NAME_MAX) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "tag '%s' is too long (at "
                       "most %d bytes)", tag, STATE_NAME_MAX);
        return false;
    }
    return true;
}

static bool name_ok(const char *what, const char *name, XblkError **err)
{
    if (!name || !*name || strlen(name) > STATE_NAME_MAX ||
        !g_utf8_validate(name, -1, NULL)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "%s name must be 1 to %d "
                       "bytes of UTF-8", what, STATE_NAME_MAX);
        return false;
    }
    return true;
}

/* ---- guest RAM ---- */

static bool ranges_overlap(const void *a, uint64_t alen, const void *b,
                           uint64_t blen)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + blen && y < x + alen;
}

bool xblk_ram_add(XblkEngine *e, const char *name, void *host, uint64_t size,
                  XblkError **err)
{
    if (!engine_ok(e, err) || !not_busy(e, err) ||
        !name_ok("a RAM region's", name, err)) {
        return false;
    }
    XblkStateHost *st = state_of(e);
    uint64_t page = sysconf(_SC_PAGESIZE);
    if (!host || !size || (uintptr_t)host % page || size % page ||
        (uintptr_t)host + size < (uintptr_t)host) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "RAM region '%s': address "
                       "and size must be non-zero multiples of the page "
                       "size (%" G_GUINT64_FORMAT ")", name, page);
        return false;
    }
    if (st->n_ram == XBLK_RAM_REGIONS_MAX) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "RAM region '%s': at most "
                       "%d regions", name, XBLK_RAM_REGIONS_MAX);
        return false;
    }
    for (guint i = 0; i < st->n_ram; i++) {
        if (!strcmp(st->ram[i].name, name)) {
            xblk_api_error(err, XBLK_ERROR_INVALID, "RAM region '%s' "
                           "exists already", name);
            return false;
        }
        if (ranges_overlap(host, size, st->ram[i].host, st->ram[i].size)) {
            xblk_api_error(err, XBLK_ERROR_INVALID, "RAM region '%s' "
                           "overlaps region '%s'", name, st->ram[i].name);
            return false;
        }
    }
    /* Transparent huge pages: the save's write-protection then changes
     * one page-table entry per 2 MiB instead of per 4 KiB (~10 us instead
     * of ~1 ms at 64 MiB, inside the pause); a load keeps them. */
    madvise(host, size, MADV_HUGEPAGE);
    /* The capture's fault handler goes in now, outside any pause. */
    GError *gerr = NULL;
    if (!ram_snapshot_init(&gerr)) {
        xblk_api_error_from(err, gerr);
        return false;
    }
    st->ram[st->n_ram++] = (ApiRam){ g_strdup(name), host, size };
    return true;
}

bool xblk_ram_write(XblkEngine *e, void *dst, const void *src, size_t len)
{
    XblkStateHost *st = e ? e->state : NULL;
    for (guint i = 0; st && i < st->n_ram; i++) {
        uint8_t *base = st->ram[i].host;
        if ((uint8_t *)dst >= base && len <= st->ram[i].size &&
            (uint8_t *)dst - base <= (ptrdiff_t)(st->ram[i].size - len)) {
            ram_snapshot_before_host_write(NULL, dst, len);
            memcpy(dst, src, len);
            return true;
        }
    }
    return false;
}

void xblk_ram_prepare_write(XblkEngine *e, void *dst, size_t len)
{
    ram_snapshot_before_host_write(NULL, dst, len);
}

/* ---- device tables ---- */

static size_t field_width(XblkFieldType t)
{
    switch (t) {
    case XBLK_FIELD_U8: case XBLK_FIELD_I8: case XBLK_FIELD_BOOL: return 1;
    case XBLK_FIELD_U16: case XBLK_FIELD_I16: return 2;
    case XBLK_FIELD_U32: case XBLK_FIELD_I32: return 4;
    case XBLK_FIELD_U64: case XBLK_FIELD_I64: return 8;
    default: return 0;
    }
}

static VMStateType field_vms_type(XblkFieldType t)
{
    static const VMStateType map[] = {
        [XBLK_FIELD_U8] = VMS_T_U8, [XBLK_FIELD_U16] = VMS_T_U16,
        [XBLK_FIELD_U32] = VMS_T_U32, [XBLK_FIELD_U64] = VMS_T_U64,
        [XBLK_FIELD_I8] = VMS_T_I8, [XBLK_FIELD_I16] = VMS_T_I16,
        [XBLK_FIELD_I32] = VMS_T_I32, [XBLK_FIELD_I64] = VMS_T_I64,
        [XBLK_FIELD_BOOL] = VMS_T_BOOL, [XBLK_FIELD_BUFFER] = VMS_T_BUFFER,
        [XBLK_FIELD_VBUFFER] = VMS_T_VBUFFER,
        [XBLK_FIELD_STRUCT] = VMS_T_STRUCT,
    };
    return map[t];
}

/* The host's hooks, called with the public table as context. */
static bool hook_pre_save(const void *ctx, void *opaque, GError **errp)
{
    XblkError *err = NULL;
    const XblkDeviceDesc *d = ctx;
    if (d->pre_save(opaque, &err)) {
        xblk_error_free(err);
        return true;
    }
    xblk_api_error_to_gerror(errp, err);
    return false;
}

static bool hook_load_old(const void *ctx, void *scratch, int version,
                          GError **errp)
{
    XblkError *err = NULL;
    const XblkDeviceDesc *d = ctx;
    if (d->load_old(scratch, version, &err)) {
        xblk_error_free(err);
        return true;
    }
    xblk_api_error_to_gerror(errp, err);
    return false;
}

static bool hook_check(const void *ctx, const void *cur, const void *scratch,
                       int version, GError **errp)
{
    XblkError *err = NULL;
    const XblkDeviceDesc *d = ctx;
    if (d->check(cur, scratch, version, &err)) {
        xblk_error_free(err);
        return true;
    }
    xblk_api_error_to_gerror(errp, err);
    return false;
}

static bool hook_post_load(const void *ctx, void *opaque, int version,
                           GError **errp)
{
    XblkError *err = NULL;
    const XblkDeviceDesc *d = ctx;
    if (d->post_load(opaque, version, &err)) {
        xblk_error_free(err);
        return true;
    }
    xblk_api_error_to_gerror(errp, err);
    return false;
}

static const VMStateDescription *convert_desc(const XblkDeviceDesc *pub,
                                              int depth, XblkError **err);

static const XblkField *pub_field(const XblkDeviceDesc *pub, size_t i)
{
    return (const XblkField *)((const char *)pub->fields +
                               i * pub->field_size);
}

/* One field: checked against the rules of vmstate.h, then converted. */
static bool convert_field(const XblkDeviceDesc *pub,
                          const XblkField *f, VMStateField *out, int depth,
                          XblkError **err)
{
    const char *dn = pub->name;
    if (f->type < XBLK_FIELD_U8 || f->type > XBLK_FIELD_STRUCT) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "device '%s' field '%s': "
                       "unknown type %d", dn, f->name, (int)f->type);
        return false;
    }
    uint32_t count = f->count ? f->count : 1;
    size_t w = field_width(f->type);
    if (!f->elem_size || (w && f->elem_size != w)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "device '%s' field '%s': "
                       "element size %zu does not fit its type", dn, f->name,
                       f->elem_size);
        return false;
    }
    /* Inside the struct, or (fields of past versions only) inside the
     * old area after it. */
    size_t old_base = (pub->struct_size + 15) & ~(size_t)15;
    bool old = f->offset >= pub->struct_size;
    size_t limit = old ? old_base + pub->old_size : pub->struct_size;
    if (f->elem_size > limit / count ||
        f->offset > limit - f->elem_size * count ||
        (old && f->offset < old_base)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "device '%s' field '%s' "
                       "runs past its struct (offset %zu + %u x %zu bytes > "
                       "%zu)", dn, f->name, f->offset, count, f->elem_size,
                       limit);
        return false;
    }
    if (old && (!f->version_removed || f->version_removed > pub->version)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "device '%s' field '%s': "
                       "an old-area field must be of past versions only "
                       "(XBLK_UNTIL)", dn, f->name);
        return false;
    }
    if (f->type == XBLK_FIELD_VBUFFER &&
        (count != 1 || f->len_offset > pub->struct_size - 4 ||
         pub->struct_size < 4)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "device '%s' field '%s': "
                       "a VBUFFER is one array whose length field lies "
                       "inside the struct", dn, f->name);
        return false;
    }
    bool is_signed = f->type >= XBLK_FIELD_I8 && f->type <= XBLK_FIELD_I64;
    bool range_ok = !f->ranged ||
                    (is_signed ? f->min <= f->max
                               : (uint64_t)f->min <= (uint64_t)f->max);
    if (f->version_added < 0 || f->version_removed < 0 ||
        (f->version_removed && f->version_removed <= f->version_added) ||
        !range_ok) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "device '%s' field '%s': "
                       "versions or range out of order", dn, f->name);
        return false;
    }
    *out = (VMStateField){
        .name = f->name, .offset = f->offset,
        .type = field_vms_type(f->type), .count = count,
        .size = f->elem_size, .len_offset = f->len_offset,
        .version_added = f->version_added,
        .version_removed = f->version_removed, .ranged = f->ranged,
        .min = f->min, .max = f->max,
    };
    if (f->type == XBLK_FIELD_BUFFER) {
        out->count = 1;
        out->size = f->elem_size * count;
    } else if (f->type == XBLK_FIELD_STRUCT) {
        if (!f->desc || f->desc->size < sizeof(XblkDeviceDesc) ||
            f->desc->struct_size != f->elem_size) {
            xblk_api_error(err, XBLK_ERROR_INVALID, "device '%s' field "
                           "'%s': its table describes a struct of another "
                           "size", dn, f->name);
            return false;
        }
        out->vmsd = convert_desc(f->desc, depth + 1, err);
        if (!out->vmsd) {
            return false;
        }
    }
    return true;
}

static const VMStateDescription *convert_desc(const XblkDeviceDesc *pub,
                                              int depth, XblkError **err)
{
    ApiDesc *done = g_hash_table_lookup(api_descs, pub);
    if (done) {
        return &done->vmsd;
    }
    if (depth > STATE_DESC_DEPTH_MAX) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "device tables nest deeper "
                       "than %d (a table containing itself?)",
                       STATE_DESC_DEPTH_MAX);
        return NULL;
    }
    if (pub->size < sizeof(XblkDeviceDesc) ||
        pub->field_size < sizeof(XblkField)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "XblkDeviceDesc.size or "
                       ".field_size is too small (set them to sizeof)");
        return NULL;
    }
    int min_version = pub->minimum_version ? pub->minimum_version : 1;
    if (!pub->name || !*pub->name || strlen(pub->name) > STATE_NAME_MAX ||
        !pub->fields || !pub->struct_size || pub->version < 1 ||
        min_version < 1 || min_version > pub->version) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "device table '%s': it "
                       "needs a name, fields, a struct size, version >= 1 "
                       "and minimum_version <= version",
                       pub->name ? pub->name : "(null)");
        return NULL;
    }
    size_t n = 0;
    while (n < STATE_FIELDS_MAX && pub_field(pub, n)->name) {
        n++;
    }
    if (n == STATE_FIELDS_MAX) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "device '%s': more than %d "
                       "fields (no terminator?)", pub->name,
                       STATE_FIELDS_MAX);
        return NULL;
    }
    ApiDesc *d = g_new0(ApiDesc, 1);
    d->fields = g_new0(VMStateField, n + 1);
    for (size_t i = 0; i < n; i++) {
        if (!convert_field(pub, pub_field(pub, i), &d->fields[i], depth,
                           err)) {
            g_free(d->fields);
            g_free(d);
            return NULL;
        }
    }
    d->vmsd = (VMStateDescription){
        .name = g_strdup(pub->name), .version_id = pub->version,
        .minimum_version_id = min_version, .size = pub->struct_size,
        .old_size = pub->old_size,
        .fields = d->fields, .hook_ctx = pub,
        .ctx_pre_save = pub->pre_save ? hook_pre_save : NULL,
        .ctx_load_old = pub->load_old ? hook_load_old : NULL,
        .ctx_check = pub->check ? hook_check : NULL,
        .ctx_post_load = pub->post_load ? hook_post_load : NULL,
    };
    g_hash_table_insert(api_descs, (gpointer)pub, d);
    return &d->vmsd;
}

const VMStateDescription *xblk_api_device_vmsd(const XblkDeviceDesc *desc,
                                               XblkError **err)
{
    if (!desc) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no device table");
        return NULL;
    }
    g_mutex_lock(&api_descs_lock);
    if (!api_descs) {
        api_descs = g_hash_table_new(NULL, NULL);
    }
    const VMStateDescription *v = convert_desc(desc, 0, err);
    g_mutex_unlock(&api_descs_lock);
    return v;
}

bool xblk_device_add(XblkEngine *e, const XblkDeviceDesc *desc,
                     uint32_t instance, void *opaque, XblkError **err)
{
    if (!engine_ok(e, err) || !not_busy(e, err)) {
        return false;
    }
    if (!desc || !opaque) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "a device needs a table "
                       "and an object");
        return false;
    }
    XblkStateHost *st = state_of(e);
    const VMStateDescription *vmsd = xblk_api_device_vmsd(desc, err);
    if (!vmsd) {
        return false;
    }
    if (vmstate_set_find(st->devices, vmsd->name, instance)) {
        xblk_api_error(err, XBLK_ERROR_EXISTS, "device '%s' instance %u "
                       "exists already", vmsd->name, instance);
        return false;
    }
    vmstate_set_add(st->devices, vmsd, instance, opaque);
    return true;
}

/* ---- the host ---- */

bool xblk_engine_set_host(XblkEngine *e, const XblkHostOps *ops,
                          XblkError **err)
{
    if (!engine_ok(e, err) || !not_busy(e, err)) {
        return false;
    }
    if (!ops || ops->size < sizeof(XblkHostOps) || !ops->pause ||
        !ops->resume || !ops->machine_type || !*ops->machine_type ||
        strlen(ops->machine_type) > XSS_MACHINE_TYPE_MAX) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "XblkHostOps needs its "
                       "size, pause, resume and a machine type of 1 to %d "
                       "bytes", XSS_MACHINE_TYPE_MAX);
        return false;
    }
    XblkStateHost *st = state_of(e);
    g_free((char *)st->ops.machine_type);
    st->ops = *ops;
    st->ops.machine_type = g_strdup(ops->machine_type);
    st->host_set = true;
    return true;
}

void xblk_host_pause_failed(XblkEngine *e, const char *reason)
{
    XblkStateHost *st = e ? e->state : NULL;
    if (st) {
        g_mutex_lock(&st->fail_lock);
        g_free(st->pause_failure);
        st->pause_failure = g_strdup(reason ? reason : "the host cannot "
                                     "pause");
        g_mutex_unlock(&st->fail_lock);
    }
}

void xblk_host_paused(XblkEngine *e)
{
    XblkStateHost *st = e ? e->state : NULL;
    if (st) {
        atomic_store(&st->park_ns, g_get_monotonic_time() * 1000);
        atomic_store(&st->paused, true);
    }
}

/* ---- the coordination's view of the host (SavestateHostOps) ---- */

/* fn(arg) where the host wants its structs touched (run_paused). */
static void run_on_host(XblkStateHost *st, XblkHostFn *fn, void *arg)
{
    if (st->ops.run_paused) {
        st->ops.run_paused(st->ops.opaque, fn, arg);
    } else {
        fn(arg);
    }
}

static guint sh_ram_regions(void *opaque, SavestateRam *out)
{
    XblkStateHost *st = opaque;
    for (guint i = 0; i < st->n_ram; i++) {
        out[i] = (SavestateRam){ st->ram[i].host, st->ram[i].size };
    }
    return st->n_ram;
}

static GArray *sh_disks(void *opaque)
{
    GArray *a = g_array_new(FALSE, TRUE, sizeof(SavestateDisk));
    XblkEngine *e = xblk_api_engine();
    for (GList *l = e ? e->disks : NULL; l; l = l->next) {
        XblkDisk *d = l->data;
        BlockDriverState *bs = blk_bs(d->blk);
        if (bs && !bdrv_is_read_only(bs)) {
            SavestateDisk sd = { xblk_disk_name(d), bs, d->blk };
            g_array_append_val(a, sd);
        }
    }
    return a;
}

static char *take_pause_failure(XblkStateHost *st)
{
    g_mutex_lock(&st->fail_lock);
    char *reason = g_steal_pointer(&st->pause_failure);
    g_mutex_unlock(&st->fail_lock);
    return reason;
}

static void sh_pause_request(void *opaque)
{
    XblkStateHost *st = opaque;
    atomic_store(&st->paused, false);
    g_free(take_pause_failure(st));
    st->ops.pause(st->ops.opaque);
}

static int sh_pause_poll(void *opaque, GError **errp)
{
    XblkStateHost *st = opaque;
    g_autofree char *reason = take_pause_failure(st);
    if (reason) {
        error_setg(errp, "%s", reason);
        return -1;
    }
    return atomic_load(&st->paused) ? 1 : 0;
}

static void sh_resume(void *opaque)
{
    XblkStateHost *st = opaque;
    atomic_store(&st->paused, false);
    st->ops.resume(st->ops.opaque);
}

static int64_t sh_park_ns(void *opaque)
{
    XblkStateHost *st = opaque;
    return atomic_load(&st->park_ns);
}

static void capture_clear(XblkStateHost *st)
{
    g_clear_pointer(&st->title, g_free);
    g_clear_pointer(&st->disc_path, g_free);
    g_clear_pointer(&st->frame_hash, g_free);
    g_clear_pointer(&st->thumbnail, g_bytes_unref);
}

static void utf8_take(char **dst, const char *src)
{
    if (src && g_utf8_validate(src, -1, NULL)) {
        g_free(*dst);
        *dst = g_strdup(src);
    }
}

/* What the host filled in, copied (non-NULL replaces). */
static void capture_take(XblkStateHost *st, const XblkStateCapture *c)
{
    utf8_take(&st->title, c->title);
    utf8_take(&st->disc_path, c->disc_path);
    utf8_take(&st->frame_hash, c->frame_hash);
    if (c->thumbnail_png && c->thumbnail_png_len) {
        g_clear_pointer(&st->thumbnail, g_bytes_unref);
        st->thumbnail = g_bytes_new(c->thumbnail_png, c->thumbnail_png_len);
        st->thumb_w = c->thumbnail_width;
        st->thumb_h = c->thumbnail_height;
    }
}

typedef struct CaptureCall {
    XblkStateHost *st;
    XssWriter *w;
    SavestateCapture *cap;
    bool ok;
    GError *err;
} CaptureCall;

static void capture_on_host(void *arg)
{
    CaptureCall *c = arg;
    XblkStateHost *st = c->st;
    XblkStateCapture hc = { .size = sizeof(hc) };
    if (st->ops.capture) {
        st->ops.capture(st->ops.opaque, &hc);
    }
    c->cap->frame = st->frame = hc.frame;
    c->cap->clock_ns = st->clock_ns = hc.clock_ns;
    capture_take(st, &hc);
    c->ok = xss_writer_devices(c->w, st->devices, &c->err);
}

static bool sh_capture(void *opaque, XssWriter *w, SavestateCapture *cap,
                       GError **errp)
{
    XblkStateHost *st = opaque;
    capture_clear(st);
    CaptureCall c = { st, w, cap, false, NULL };
    run_on_host(st, capture_on_host, &c);
    if (!c.ok) {
        g_propagate_error(errp, c.err);
    }
    return c.ok;
}

/* Streaming thread. */
static void sh_save_page(void *opaque, uint64_t offset, const void *page)
{
    XblkStateHost *st = opaque;
    if (st->ops.save_page) {
        st->ops.save_page(st->ops.opaque, offset, page, XSS_PAGE_SIZE);
    }
}

/* Streaming thread, after the RAM: the host completes the metadata. */
static void sh_save_metadata(void *opaque, XssMetadata *md)
{
    XblkStateHost *st = opaque;
    if (st->ops.save_finish) {
        XblkStateCapture c = {
            .size = sizeof(c), .frame = st->frame, .clock_ns = st->clock_ns,
        };
        st->ops.save_finish(st->ops.opaque, &c);
        capture_take(st, &c);
    }
    md->title = st->title;
    md->disc_path = st->disc_path;
    md->frame_hash = st->frame_hash;
    md->thumbnail_png = st->thumbnail;
    md->thumb_width = st->thumb_w;
    md->thumb_height = st->thumb_h;
}

typedef struct LoadCall {
    XblkStateHost *st;
    XssReader *r;
    RamRestore *rr;
    bool ok;
    GError *err;
} LoadCall;

static void check_on_host(void *arg)
{
    LoadCall *c = arg;
    XblkStateHost *st = c->st;
    vmstate_set_load_free(st->prepared);
    st->prepared = xss_reader_prepare_devices(c->r, st->devices, &c->err);
    c->ok = st->prepared != NULL;
}

static bool sh_load_check(void *opaque, XssReader *r, GError **errp)
{
    LoadCall c = { opaque, r, NULL, false, NULL };
    run_on_host(c.st, check_on_host, &c);
    if (!c.ok) {
        g_propagate_error(errp, c.err);
    }
    return c.ok;
}

/* RAM in place: one region is moved in (no copy); several, or memory
 * that is no anonymous mapping of its own, are copied. */
static bool load_ram(XblkStateHost *st, RamRestore *rr, GError **errp)
{
    if (st->n_ram == 1 && ram_restore_commit(rr, st->ram[0].host, NULL)) {
        return true;
    }
    uint64_t off = 0;
    for (guint i = 0; i < st->n_ram; i++) {
        if (!ram_restore_copy(rr, off, st->ram[i].host, st->ram[i].size,
                              errp)) {
            return false;
        }
        off += st->ram[i].size;
    }
    return true;
}

static void load_on_host(void *arg)
{
    LoadCall *c = arg;
    XblkStateHost *st = c->st;
    VMStateSetLoad *l = g_steal_pointer(&st->prepared);
    if (!l && !(l = xss_reader_prepare_devices(c->r, st->devices,
                                                &c->err))) {
        return;
    }
    if (st->ops.load_begin) {
        st->ops.load_begin(st->ops.opaque);
    }
    bool changed = load_ram(st, c->rr, &c->err);
    c->ok = changed && vmstate_set_load_commit(l, &c->err);
    vmstate_set_load_free(l);
    if (st->ops.load_end) {
        XblkError *err = NULL;
        st->loading = c->r;
        bool ended = st->ops.load_end(st->ops.opaque, changed, &err);
        st->loading = NULL;
        if (!ended && c->ok) {
            xblk_api_error_to_gerror(&c->err, err);
            c->ok = false;
        } else {
            xblk_error_free(err);
        }
    }
}

static bool sh_load(void *opaque, XssReader *r, RamRestore *rr,
                    GError **errp)
{
    LoadCall c = { opaque, r, rr, false, NULL };
    run_on_host(c.st, load_on_host, &c);
    if (!c.ok) {
        g_propagate_error(errp, c.err);
    }
    return c.ok;
}

static const SavestateHostOps api_host_ops = {
    .ram_regions = sh_ram_regions,
    .disks = sh_disks,
    .pause_request = sh_pause_request,
    .pause_poll = sh_pause_poll,
    .resume = sh_resume,
    .park_ns = sh_park_ns,
    .capture = sh_capture,
    .save_page = sh_save_page,
    .save_metadata = sh_save_metadata,
    .load_check = sh_load_check,
    .load = sh_load,
};

static SavestateHost host_of(XblkStateHost *st, SavestateHostOps *ops)
{
    *ops = api_host_ops;
    ops->machine_type = st->ops.machine_type ? st->ops.machine_type : "";
    ops->ram_huge_pages = true;         /* as xblk_ram_add advised */
    return (SavestateHost){ ops, st };
}

bool xblk_api_state_begin(XblkEngine *e, GError **errp)
{
    XblkStateHost *st = state_of(e);
    if (st->busy || savestate_busy()) {
        error_setg(errp, "a save, load or delete of a state is in "
                   "progress");
        return false;
    }
    if (!st->host_set || !st->n_ram) {
        error_setg(errp, "no host with guest RAM is bound to the engine");
        return false;
    }
    st->busy = true;
    st->cancel = false;
    return true;
}

void xblk_api_state_end(XblkEngine *e)
{
    XblkStateHost *st = state_of(e);
    capture_clear(st);
    g_clear_pointer(&st->prepared, vmstate_set_load_free);
    st->busy = false;
    st->cancel = false;
}

void xblk_api_state_host(XblkEngine *e, SavestateHost *out,
                         SavestateHostOps *ops)
{
    *out = host_of(state_of(e), ops);
}

/* ---- save, load, delete ---- */

typedef struct ApiOp {
    XblkEngine *engine;
    XblkStateOp op;
    char *name;
    char *vmstate_disk;
    char **disks;
    bool overwrite;
    XblkStateProgressFn *progress;
    void *progress_opaque;
    XblkStateDoneFn *done;
    void *opaque;
    int64_t t0;
} ApiOp;

static void op_progress(void *opaque, uint64_t done, uint64_t total)
{
    ApiOp *o = opaque;
    if (o->progress) {
        o->progress(o->progress_opaque, done, total);
    }
}

static bool op_cancelled(void *opaque)
{
    ApiOp *o = opaque;
    return o->engine->state->cancel;
}

static void op_stats(ApiOp *o, XblkStateStats *s)
{
    *s = (XblkStateStats){ .size = sizeof(*s), .op = o->op,
                           .total_ns = g_get_monotonic_time() * 1000 -
                                       o->t0 };
    if (o->op == XBLK_STATE_SAVE) {
        const SavestateSaveStats *ss = savestate_last_save_stats();
        s->pause_ns = ss->guest_pause_ns;
        s->total_ns = ss->durable_ns;
        s->vm_state_size = ss->vm_state_size;
        s->raw_size = ss->raw_size;
        s->peak_cow_bytes = ss->peak_cow_bytes;
        s->frame = ss->frame;
    } else if (o->op == XBLK_STATE_LOAD) {
        const SavestateLoadStats *ls = savestate_last_load_stats();
        s->pause_ns = ls->guest_pause_ns;
        s->frame = ls->frame;
    }
}

static void coroutine_fn op_co(void *opaque)
{
    ApiOp *o = opaque;
    XblkStateHost *st = o->engine->state;
    SavestateHostOps ops;
    SavestateHost h = host_of(st, &ops);
    SavestateArgs a = {
        .vmstate = o->vmstate_disk, .devices = o->disks,
        .overwrite = o->overwrite, .progress = op_progress,
        .cancelled = op_cancelled, .opaque = o,
    };
    GError *gerr = NULL;
    bool ok;
    switch (o->op) {
    case XBLK_STATE_SAVE:
        ok = savestate_save(&h, o->name, &a, &gerr);
        break;
    case XBLK_STATE_LOAD:
        ok = savestate_load(&h, o->name, &a, &gerr);
        break;
    default:
        ok = savestate_delete(&h, o->name, &a, &gerr);
        break;
    }
    XblkStateStats stats;
    op_stats(o, &stats);
    capture_clear(st);
    g_clear_pointer(&st->prepared, vmstate_set_load_free);
    st->busy = false;           /* done may start the next one */
    st->cancel = false;
    XblkError *err = NULL;
    if (!ok) {
        xblk_api_error_from(&err, gerr);
    }
    o->done(o->opaque, err, &stats);
    xblk_error_free(err);
    g_free(o->name);
    g_free(o->vmstate_disk);
    g_strfreev(o->disks);
    g_free(o);
}

static void op_bh(void *opaque)
{
    co_enter(co_create(op_co, opaque));
}

static bool op_checks(XblkEngine *e, XblkStateOp op, const char *name,
                      const XblkStateOptions *opts, XblkStateDoneFn *done,
                      XblkError **err)
{
    if (!engine_ok(e, err) || !not_busy(e, err) || !tag_ok(name, err)) {
        return false;
    }
    XblkStateHost *st = state_of(e);
    if (!done) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "a completion callback is "
                       "required");
        return false;
    }
    if (opts && opts->size < sizeof(XblkStateOptions)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "XblkStateOptions.size %zu "
                       "is too small", opts->size);
        return false;
    }
    if (op != XBLK_STATE_DELETE && !st->host_set) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no host is bound "
                       "(xblk_engine_set_host)");
        return false;
    }
    if (op != XBLK_STATE_DELETE && !st->n_ram) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "no guest RAM was added "
                       "(xblk_ram_add)");
        return false;
    }
    return true;
}

static bool op_start(XblkEngine *e, XblkStateOp op, const char *name,
                     const XblkStateOptions *opts, XblkStateDoneFn *done,
                     void *opaque, XblkError **err)
{
    if (!op_checks(e, op, name, opts, done, err)) {
        return false;
    }
    ApiOp *o = g_new0(ApiOp, 1);
    o->engine = e;
    o->op = op;
    o->name = g_strdup(name);
    if (opts) {
        o->vmstate_disk = g_strdup(opts->vmstate_disk);
        o->disks = opts->disks ? g_strdupv((char **)opts->disks) : NULL;
        o->overwrite = opts->overwrite;
        o->progress = opts->progress;
        o->progress_opaque = opts->progress_opaque ? opts->progress_opaque
                                                   : opaque;
    }
    o->done = done;
    o->opaque = opaque;
    o->t0 = g_get_monotonic_time() * 1000;
    e->state->busy = true;
    e->state->cancel = false;
    aio_bh_schedule(op_bh, o);
    return true;
}

bool xblk_state_save(XblkEngine *e, const char *name,
                     const XblkStateOptions *opts, XblkStateDoneFn *done,
                     void *opaque, XblkError **err)
{
    return op_start(e, XBLK_STATE_SAVE, name, opts, done, opaque, err);
}

bool xblk_state_load(XblkEngine *e, const char *name,
                     const XblkStateOptions *opts, XblkStateDoneFn *done,
                     void *opaque, XblkError **err)
{
    return op_start(e, XBLK_STATE_LOAD, name, opts, done, opaque, err);
}

bool xblk_state_delete(XblkEngine *e, const char *name,
                       const XblkStateOptions *opts, XblkStateDoneFn *done,
                       void *opaque, XblkError **err)
{
    return op_start(e, XBLK_STATE_DELETE, name, opts, done, opaque, err);
}

typedef struct RamRead {
    uint64_t offset;
    uint8_t *buf;
    size_t len;
} RamRead;

/* The part of a decoded chunk that the read wants. */
static bool ram_read_chunk(RamRead *rd, const XssChunk *ch)
{
    uint64_t lo = MAX(rd->offset, ch->gpa);
    uint64_t hi = MIN(rd->offset + rd->len, ch->gpa + ch->len);
    if (lo < hi) {
        memcpy(rd->buf + (lo - rd->offset), ch->data + (lo - ch->gpa),
               hi - lo);
    }
    return true;
}

bool xblk_state_read_ram(XblkEngine *e, uint64_t offset, void *buf,
                         size_t len, XblkError **err)
{
    XblkStateHost *st = e ? e->state : NULL;
    XssRamLayout lay;
    if (!st || !st->loading || !xss_reader_ram_layout(st->loading, &lay)) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "the state's RAM can be "
                       "read inside load_end only");
        return false;
    }
    if (offset > lay.ram_size || len > lay.ram_size - offset) {
        xblk_api_error(err, XBLK_ERROR_INVALID, "%zu bytes at %" PRIu64
                       " leave the state's RAM", len, offset);
        return false;
    }
    RamRead rd = { offset, buf, len };
    for (uint64_t c = offset / lay.chunk_size;
         len && c <= (offset + len - 1) / lay.chunk_size; c++) {
        XssChunk ch;
        GError *gerr = NULL;
        if (!xss_reader_read_chunk(st->loading, c, &ch, &gerr)) {
            xblk_api_error_from(err, gerr);
            return false;
        }
        ram_read_chunk(&rd, &ch);
    }
    return true;
}

bool xblk_state_busy(XblkEngine *e)
{
    return (e && e->state && e->state->busy) || savestate_busy();
}

bool xblk_state_cancel(XblkEngine *e)
{
    if (!e || !e->state || !e->state->busy) {
        return false;
    }
    e->state->cancel = true;
    return true;
}

/* ---- the catalog's helpers ---- */

XblkStateInfo *xblk_state_info(XblkEngine *e, const char *name,
                               XblkError **err)
{
    if (!engine_ok(e, err) || !tag_ok(name, err)) {
        return NULL;
    }
    SavestateHostOps ops;
    SavestateHost h = host_of(state_of(e), &ops);
    XssMetadata md = { 0 };
    GError *gerr = NULL;
    if (!savestate_metadata(&h, name, &md, &gerr)) {
        xblk_api_error_from(err, gerr);
        return NULL;
    }
    XblkStateInfo *info = g_new0(XblkStateInfo, 1);
    info->size = sizeof(*info);
    info->frame = md.frame;
    info->frame_hash = g_strdup(md.frame_hash);
    info->disc_path = g_strdup(md.disc_path);
    info->title = g_strdup(md.title);
    if (md.thumbnail_png) {
        gsize len;
        const void *p = g_bytes_get_data(md.thumbnail_png, &len);
        info->thumbnail_png = g_memdup2(p, len);
        info->thumbnail_png_len = len;
        info->thumbnail_width = md.thumb_width;
        info->thumbnail_height = md.thumb_height;
    }
    xss_metadata_clear(&md);
    return info;
}

void xblk_state_info_free(XblkStateInfo *info)
{
    if (info) {
        g_free(info->frame_hash);
        g_free(info->disc_path);
        g_free(info->title);
        g_free(info->thumbnail_png);
        g_free(info);
    }
}

int xblk_state_cleanup(XblkEngine *e,
                       void (*report)(void *opaque, const char *line),
                       void *opaque, XblkError **err)
{
    if (!engine_ok(e, err) || !not_busy(e, err)) {
        return -1;
    }
    SavestateHostOps ops;
    SavestateHost h = host_of(state_of(e), &ops);
    GString *lines = g_string_new(NULL);
    GError *gerr = NULL;
    int n = savestate_cleanup(&h, lines, &gerr);
    if (report) {
        g_auto(GStrv) v = g_strsplit(lines->str, "\n", -1);
        for (char **l = v; *l; l++) {
            if (**l) {
                report(opaque, *l);
            }
        }
    }
    g_string_free(lines, TRUE);
    if (n < 0) {
        xblk_api_error_from(err, gerr);
    }
    return n;
}
