/*
 * vmstate.c - encoder and decoder of field tables, and set loading; see
 * vmstate.h for the encoding and the load protocol.
 *
 * Invariants:
 * - The decoder reads through a cursor that checks every length before
 *   it reads; nothing in the input is used as a size without a bound
 *   (VBUFFER lengths are checked against the member's capacity).
 * - Decoding writes only into the scratch copy (described fields and the
 *   old area); the live object changes only in commit, and only in the
 *   fields that exist at the current version.
 * - Descriptions are checked once per use (fields inside the struct,
 *   sizes consistent, old-area fields never current) with asserts: a bad
 *   table is a programming error, bad bytes are an error message.
 */
#include "migration/vmstate.h"
#include "util/error.h"
#include <inttypes.h>
#include <string.h>

/* ---- descriptions ---- */

bool vmstate_field_exists(const VMStateField *f, int version_id)
{
    return version_id >= f->version_added &&
           (f->version_removed == 0 || version_id < f->version_removed);
}

static size_t type_width(VMStateType t)
{
    switch (t) {
    case VMS_T_U8: case VMS_T_I8: case VMS_T_BOOL:
        return 1;
    case VMS_T_U16: case VMS_T_I16:
        return 2;
    case VMS_T_U32: case VMS_T_I32:
        return 4;
    case VMS_T_U64: case VMS_T_I64:
        return 8;
    default:
        return 0;
    }
}

static size_t scratch_size(const VMStateDescription *d)
{
    return d->old_size ? ((d->size + 15) & ~(size_t)15) + d->old_size
                       : d->size;
}

static void desc_assert_valid(const VMStateDescription *d)
{
    g_assert(d && d->name && d->fields && d->size > 0);
    g_assert(d->version_id >= 1 && d->minimum_version_id >= 1 &&
             d->minimum_version_id <= d->version_id);
    for (const VMStateField *f = d->fields; f->name; f++) {
        g_assert(f->count >= 1 && f->size > 0);
        size_t w = type_width(f->type);
        if (w) {
            g_assert(f->size == w);
        }
        if (f->type == VMS_T_STRUCT) {
            g_assert(f->vmsd && f->vmsd->size == f->size);
            desc_assert_valid(f->vmsd);
        }
        if (f->type == VMS_T_VBUFFER) {
            g_assert(f->count == 1 && f->len_offset + 4 <= d->size);
        }
        bool old = f->offset >= d->size;
        g_assert(f->offset + f->size * f->count <= scratch_size(d));
        /* The old area is for fields of past versions only. */
        g_assert(!old || !vmstate_field_exists(f, d->version_id));
        g_assert(old || f->offset + f->size * f->count <= d->size);
    }
}

/* ---- encoding ---- */

static void put_le(GByteArray *out, uint64_t v, size_t w)
{
    uint8_t b[8];
    for (size_t i = 0; i < w; i++) {
        b[i] = v >> (8 * i);
    }
    g_byte_array_append(out, b, w);
}

static uint64_t load_host(const uint8_t *p, size_t w)
{
    switch (w) {
    case 1: return *p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

static void store_host(uint8_t *p, uint64_t v, size_t w)
{
    switch (w) {
    case 1: *p = v; break;
    case 2: { uint16_t x = v; memcpy(p, &x, 2); break; }
    case 4: { uint32_t x = v; memcpy(p, &x, 4); break; }
    default: memcpy(p, &v, 8); break;
    }
}

static bool run_pre_save(const VMStateDescription *d, void *opaque,
                         GError **errp)
{
    if (d->pre_save ? !d->pre_save(opaque, errp)
                    : d->ctx_pre_save &&
                      !d->ctx_pre_save(d->hook_ctx, opaque, errp)) {
        return false;
    }
    for (const VMStateField *f = d->fields; f->name; f++) {
        if (f->type != VMS_T_STRUCT || !vmstate_field_exists(f,
                                                             d->version_id)) {
            continue;
        }
        for (uint32_t i = 0; i < f->count; i++) {
            uint8_t *elem = (uint8_t *)opaque + f->offset + i * f->size;
            if (!run_pre_save(f->vmsd, elem, errp)) {
                return false;
            }
        }
    }
    return true;
}

/* Nested descriptions share the version of the section. */
static void encode(const VMStateDescription *d, const uint8_t *base,
                   int version, GByteArray *out)
{
    for (const VMStateField *f = d->fields; f->name; f++) {
        if (!vmstate_field_exists(f, version)) {
            continue;
        }
        const uint8_t *p = base + f->offset;
        switch (f->type) {
        case VMS_T_BUFFER:
            g_byte_array_append(out, p, f->size);
            break;
        case VMS_T_VBUFFER: {
            uint32_t len = (uint32_t)load_host(base + f->len_offset, 4);
            /* The object's own invariant; a violation is a bug. */
            g_assert(len <= f->size);
            put_le(out, len, 4);
            g_byte_array_append(out, p, len);
            break;
        }
        case VMS_T_STRUCT:
            for (uint32_t i = 0; i < f->count; i++) {
                encode(f->vmsd, p + i * f->size, version, out);
            }
            break;
        case VMS_T_BOOL:
            for (uint32_t i = 0; i < f->count; i++) {
                put_le(out, p[i] ? 1 : 0, 1);
            }
            break;
        default:
            for (uint32_t i = 0; i < f->count; i++) {
                put_le(out, load_host(p + i * f->size, f->size), f->size);
            }
            break;
        }
    }
}

bool vmstate_save(const VMStateDescription *desc, void *opaque,
                  GByteArray *out, GError **errp)
{
    desc_assert_valid(desc);
    if (!run_pre_save(desc, opaque, errp)) {
        error_prepend(errp, "saving '%s': ", desc->name);
        return false;
    }
    encode(desc, opaque, desc->version_id, out);
    return true;
}

/* ---- decoding ---- */

typedef struct Cursor {
    const uint8_t *p, *end;
} Cursor;

/* The dotted path of a field, for messages ("chip[1].imr"). */
static char *field_path(const char *prefix, const VMStateField *f,
                        uint32_t index)
{
    if (f->count > 1) {
        return g_strdup_printf("%s%s[%u]", prefix, f->name, index);
    }
    return g_strdup_printf("%s%s", prefix, f->name);
}

static bool take(Cursor *c, size_t n, const uint8_t **out)
{
    if ((size_t)(c->end - c->p) < n) {
        return false;
    }
    *out = c->p;
    c->p += n;
    return true;
}

static uint64_t get_le(const uint8_t *b, size_t w)
{
    uint64_t v = 0;
    for (size_t i = 0; i < w; i++) {
        v |= (uint64_t)b[i] << (8 * i);
    }
    return v;
}

static int64_t sign_extend(uint64_t v, size_t w)
{
    if (w == 8) {
        return (int64_t)v;
    }
    uint64_t m = 1ull << (8 * w - 1);
    return (int64_t)((v ^ m) - m);
}

static bool is_signed(VMStateType t)
{
    return t == VMS_T_I8 || t == VMS_T_I16 || t == VMS_T_I32 ||
           t == VMS_T_I64;
}

static bool in_range(const VMStateField *f, uint64_t raw)
{
    if (!f->ranged) {
        return true;
    }
    if (is_signed(f->type)) {
        int64_t v = sign_extend(raw, f->size);
        return v >= f->min && v <= f->max;
    }
    return raw >= (uint64_t)f->min && raw <= (uint64_t)f->max;
}

static bool decode(const VMStateDescription *d, uint8_t *base, int version,
                   Cursor *c, const char *prefix, GError **errp)
{
    for (const VMStateField *f = d->fields; f->name; f++) {
        if (!vmstate_field_exists(f, version)) {
            continue;
        }
        uint8_t *p = base + f->offset;
        const uint8_t *b;
        switch (f->type) {
        case VMS_T_BUFFER:
            if (!take(c, f->size, &b)) {
                goto short_input;
            }
            memcpy(p, b, f->size);
            break;
        case VMS_T_VBUFFER: {
            uint32_t want = (uint32_t)load_host(base + f->len_offset, 4);
            if (!take(c, 4, &b)) {
                goto short_input;
            }
            uint32_t len = (uint32_t)get_le(b, 4);
            if (len > f->size || len != want) {
                g_autofree char *path = field_path(prefix, f, 0);
                error_setg(errp, "field '%s': length %u does not match "
                           "%u (capacity %zu)", path, len, want, f->size);
                return false;
            }
            if (!take(c, len, &b)) {
                goto short_input;
            }
            memcpy(p, b, len);
            break;
        }
        case VMS_T_STRUCT:
            for (uint32_t i = 0; i < f->count; i++) {
                g_autofree char *path = field_path(prefix, f, i);
                g_autofree char *sub = g_strconcat(path, ".", NULL);
                if (!decode(f->vmsd, p + i * f->size, version, c, sub,
                            errp)) {
                    return false;
                }
            }
            break;
        default:
            for (uint32_t i = 0; i < f->count; i++) {
                if (!take(c, f->size, &b)) {
                    goto short_input;
                }
                uint64_t raw = get_le(b, f->size);
                if ((f->type == VMS_T_BOOL && raw > 1) ||
                    !in_range(f, raw)) {
                    g_autofree char *path = field_path(prefix, f, i);
                    if (is_signed(f->type)) {
                        error_setg(errp, "field '%s': value %" PRId64
                                   " out of range", path,
                                   sign_extend(raw, f->size));
                    } else {
                        error_setg(errp, "field '%s': value %" PRIu64
                                   " out of range", path, raw);
                    }
                    return false;
                }
                store_host(p + i * f->size, raw, f->size);
            }
            break;
        }
        continue;
short_input:
        {
            g_autofree char *path = field_path(prefix, f, 0);
            error_setg(errp, "truncated at field '%s'", path);
            return false;
        }
    }
    return true;
}

/* Copies the bytes of the fields that exist at `version` (and lie in
 * the struct) from src to dst, recursing into nested structs so that
 * nothing undescribed is touched. */
static void copy_fields(const VMStateDescription *d, uint8_t *dst,
                        const uint8_t *src, int version)
{
    for (const VMStateField *f = d->fields; f->name; f++) {
        if (f->offset >= d->size || !vmstate_field_exists(f, version)) {
            continue;
        }
        if (f->type == VMS_T_STRUCT) {
            for (uint32_t i = 0; i < f->count; i++) {
                size_t o = f->offset + i * f->size;
                copy_fields(f->vmsd, dst + o, src + o, version);
            }
            continue;
        }
        memcpy(dst + f->offset, src + f->offset, f->size * f->count);
    }
}

static bool run_check(const VMStateDescription *d, const uint8_t *cur,
                      const uint8_t *scratch, int version, GError **errp)
{
    for (const VMStateField *f = d->fields; f->name; f++) {
        if (f->type != VMS_T_STRUCT || f->offset >= d->size ||
            !vmstate_field_exists(f, d->version_id)) {
            continue;
        }
        for (uint32_t i = 0; i < f->count; i++) {
            size_t o = f->offset + i * f->size;
            if (!run_check(f->vmsd, cur + o, scratch + o, version, errp)) {
                g_autofree char *path = field_path("", f, i);
                error_prepend(errp, "%s: ", path);
                return false;
            }
        }
    }
    if (d->check) {
        return d->check(cur, scratch, version, errp);
    }
    return !d->ctx_check ||
           d->ctx_check(d->hook_ctx, cur, scratch, version, errp);
}

static bool run_post_load(const VMStateDescription *d, uint8_t *obj,
                          int version, GError **errp)
{
    for (const VMStateField *f = d->fields; f->name; f++) {
        if (f->type != VMS_T_STRUCT || f->offset >= d->size ||
            !vmstate_field_exists(f, d->version_id)) {
            continue;
        }
        for (uint32_t i = 0; i < f->count; i++) {
            if (!run_post_load(f->vmsd, obj + f->offset + i * f->size,
                               version, errp)) {
                return false;
            }
        }
    }
    if (d->post_load) {
        return d->post_load(obj, version, errp);
    }
    return !d->ctx_post_load ||
           d->ctx_post_load(d->hook_ctx, obj, version, errp);
}

struct VMStateLoad {
    const VMStateDescription *desc;
    void *opaque;
    uint8_t *scratch;
    int version_id;
};

VMStateLoad *vmstate_load_prepare(const VMStateDescription *desc,
                                  void *opaque, const void *buf, size_t len,
                                  int version_id, GError **errp)
{
    desc_assert_valid(desc);
    if (version_id > desc->version_id) {
        error_setg(errp, "version %d is newer than this xblk supports (%d)",
                   version_id, desc->version_id);
        return NULL;
    }
    if (version_id < desc->minimum_version_id) {
        error_setg(errp, "version %d is older than this xblk can convert "
                   "(oldest: %d)", version_id, desc->minimum_version_id);
        return NULL;
    }
    uint8_t *scratch = g_malloc0(scratch_size(desc));
    copy_fields(desc, scratch, opaque, desc->version_id);
    Cursor c = { buf, (const uint8_t *)buf + len };
    bool ok = decode(desc, scratch, version_id, &c, "", errp);
    if (ok && c.p != c.end) {
        error_setg(errp, "%zu bytes of trailing data", (size_t)(c.end - c.p));
        ok = false;
    }
    if (ok && version_id < desc->version_id && desc->load_old) {
        ok = desc->load_old(scratch, version_id, errp);
    } else if (ok && version_id < desc->version_id && desc->ctx_load_old) {
        ok = desc->ctx_load_old(desc->hook_ctx, scratch, version_id, errp);
    }
    ok = ok && run_check(desc, opaque, scratch, version_id, errp);
    if (!ok) {
        g_free(scratch);
        return NULL;
    }
    VMStateLoad *l = g_new0(VMStateLoad, 1);
    l->desc = desc;
    l->opaque = opaque;
    l->scratch = scratch;
    l->version_id = version_id;
    return l;
}

void vmstate_load_free(VMStateLoad *l)
{
    if (l) {
        g_free(l->scratch);
        g_free(l);
    }
}

bool vmstate_load_commit(VMStateLoad *l, GError **errp)
{
    const VMStateDescription *d = l->desc;
    copy_fields(d, l->opaque, l->scratch, d->version_id);
    bool ok = run_post_load(d, l->opaque, l->version_id, errp);
    if (!ok) {
        error_prepend(errp, "'%s' loaded but could not be applied "
                      "(the device is now inconsistent): ", d->name);
    }
    vmstate_load_free(l);
    return ok;
}

bool vmstate_load(const VMStateDescription *desc, void *opaque,
                  const void *buf, size_t len, int version_id,
                  GError **errp)
{
    VMStateLoad *l = vmstate_load_prepare(desc, opaque, buf, len,
                                          version_id, errp);
    return l && vmstate_load_commit(l, errp);
}

/* ---- sets ---- */

struct VMStateSet {
    GArray *entries;            /* VMStateEntry */
};

VMStateSet *vmstate_set_new(void)
{
    VMStateSet *s = g_new0(VMStateSet, 1);
    s->entries = g_array_new(FALSE, FALSE, sizeof(VMStateEntry));
    return s;
}

void vmstate_set_free(VMStateSet *set)
{
    if (set) {
        g_array_unref(set->entries);
        g_free(set);
    }
}

void vmstate_set_add(VMStateSet *set, const VMStateDescription *desc,
                     uint32_t instance, void *opaque)
{
    desc_assert_valid(desc);
    g_assert(strlen(desc->name) <= 255);
    g_assert(!vmstate_set_find(set, desc->name, instance));
    VMStateEntry e = { desc, instance, opaque };
    g_array_append_val(set->entries, e);
}

guint vmstate_set_count(const VMStateSet *set)
{
    return set->entries->len;
}

const VMStateEntry *vmstate_set_entry(const VMStateSet *set, guint i)
{
    g_assert(i < set->entries->len);
    return &g_array_index(set->entries, VMStateEntry, i);
}

const VMStateEntry *vmstate_set_find(const VMStateSet *set, const char *name,
                                     uint32_t instance)
{
    for (guint i = 0; i < set->entries->len; i++) {
        const VMStateEntry *e = &g_array_index(set->entries, VMStateEntry, i);
        if (e->instance == instance && !strcmp(e->desc->name, name)) {
            return e;
        }
    }
    return NULL;
}

struct VMStateSetLoad {
    VMStateSet *set;
    VMStateLoad **prepared;     /* per entry, NULL until its section */
};

VMStateSetLoad *vmstate_set_load_begin(VMStateSet *set)
{
    VMStateSetLoad *l = g_new0(VMStateSetLoad, 1);
    l->set = set;
    l->prepared = g_new0(VMStateLoad *, MAX(vmstate_set_count(set), 1));
    return l;
}

bool vmstate_set_load_add(VMStateSetLoad *l, const char *name,
                          uint32_t instance, int version_id,
                          const void *buf, size_t len, GError **errp)
{
    guint i;
    for (i = 0; i < vmstate_set_count(l->set); i++) {
        const VMStateEntry *e = vmstate_set_entry(l->set, i);
        if (e->instance == instance && !strcmp(e->desc->name, name)) {
            break;
        }
    }
    if (i == vmstate_set_count(l->set)) {
        error_setg(errp, "unknown section '%s' instance %u: this machine "
                   "has no such device", name, instance);
        return false;
    }
    if (l->prepared[i]) {
        error_setg(errp, "section '%s' instance %u appears twice", name,
                   instance);
        return false;
    }
    const VMStateEntry *e = vmstate_set_entry(l->set, i);
    l->prepared[i] = vmstate_load_prepare(e->desc, e->opaque, buf, len,
                                          version_id, errp);
    if (!l->prepared[i]) {
        error_prepend(errp, "section '%s' instance %u: ", name, instance);
        return false;
    }
    return true;
}

bool vmstate_set_load_check_complete(VMStateSetLoad *l, GError **errp)
{
    for (guint i = 0; i < vmstate_set_count(l->set); i++) {
        if (!l->prepared[i]) {
            const VMStateEntry *e = vmstate_set_entry(l->set, i);
            error_setg(errp, "section '%s' instance %u is missing from the "
                       "stream", e->desc->name, e->instance);
            return false;
        }
    }
    return true;
}

bool vmstate_set_load_commit(VMStateSetLoad *l, GError **errp)
{
    bool ok = true;
    for (guint i = 0; i < vmstate_set_count(l->set); i++) {
        VMStateLoad *p = l->prepared[i];
        l->prepared[i] = NULL;
        if (!p) {
            continue;
        }
        if (!ok) {
            vmstate_load_free(p);
            continue;
        }
        const VMStateEntry *e = vmstate_set_entry(l->set, i);
        if (!vmstate_load_commit(p, errp)) {
            error_prepend(errp, "section '%s' instance %u: ", e->desc->name,
                          e->instance);
            ok = false;
        }
    }
    return ok;
}

void vmstate_set_load_free(VMStateSetLoad *l)
{
    if (!l) {
        return;
    }
    for (guint i = 0; i < vmstate_set_count(l->set); i++) {
        vmstate_load_free(l->prepared[i]);
    }
    g_free(l->prepared);
    g_free(l);
}
