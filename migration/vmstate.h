/*
 * vmstate.h - device-state descriptions: a device's state is a plain C
 * struct, described once by a field table (VMStateDescription), and this
 * module turns it into bytes and back without per-device serializers.
 *
 * Owns: the field-table types and the macros that declare them, the
 * encoder (struct -> bytes), the decoder (bytes -> struct, through a
 * scratch copy), and VMStateSet, the ordered list of (description,
 * instance, object) a machine saves and loads, with an all-or-nothing
 * load of a whole set.  The stream (savestream.h) frames the bytes;
 * docs/savestate.md documents the encoding.
 *
 * Encoding of one description at version V: the fields that exist at V
 * (version_added <= V < version_removed), in table order, little-endian,
 * no padding or tags: integers at their width, bool one byte (0 or 1),
 * arrays element after element, nested structs inline (they share the
 * section's version), BUFFER its bytes, VBUFFER a u32 length then that
 * many bytes.
 *
 * Loading (rule 5: bad input never crashes, nothing changes on refusal):
 *   1. prepare: the described fields of the object are copied into a
 *      scratch buffer, the bytes are decoded over the scratch with every
 *      length checked, values checked against the field's range, then
 *      load_old (older versions) converts and check validates the scratch
 *      against the live object.  Any failure frees the scratch: the object
 *      is untouched.
 *   2. commit: the fields that exist in the current version are copied
 *      from the scratch into the object, then post_load runs (re-arming
 *      timers, pushing registers into Unicorn...).
 * post_load must not fail on input that passed check; if it does (a host
 * resource, Unicorn refusing a register) the object is already changed
 * and the error says so.
 *
 * Old versions.  A field added in version N carries VMS_SINCE(N); loading
 * an older stream leaves it at the object's current value, and load_old
 * may set it.  A field whose encoding changed in version N stays in the
 * table with VMS_UNTIL(N), pointed at an "old area": scratch-only storage
 * after the struct (VMS_OLD_*; the description's old_size says how big),
 * which load_old reads to fill the new field.  Commit never copies the old
 * area.
 *
 * Threads: descriptions are immutable; save/load run on whatever thread
 * owns the object (the vCPU thread for devices).  No global state.
 */
#ifndef XBLK_MIGRATION_VMSTATE_H
#define XBLK_MIGRATION_VMSTATE_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct VMStateDescription VMStateDescription;
typedef struct VMStateField VMStateField;

typedef enum {
    VMS_T_U8,
    VMS_T_U16,
    VMS_T_U32,
    VMS_T_U64,
    VMS_T_I8,
    VMS_T_I16,
    VMS_T_I32,
    VMS_T_I64,
    VMS_T_BOOL,
    VMS_T_BUFFER,       /* `size` raw bytes */
    VMS_T_VBUFFER,      /* up to `size` bytes; the count is the uint32_t
                         * field at len_offset (decoded earlier) */
    VMS_T_STRUCT,       /* `count` elements described by vmsd */
} VMStateType;

struct VMStateField {
    const char *name;               /* NULL ends the table */
    size_t offset;                  /* into the struct (or its old area) */
    VMStateType type;
    uint32_t count;                 /* array elements (>= 1) */
    size_t size;                    /* bytes of one element in the struct */
    const VMStateDescription *vmsd; /* VMS_T_STRUCT */
    size_t len_offset;              /* VMS_T_VBUFFER */
    int version_added;              /* first version with it (0: always) */
    int version_removed;            /* first version without it (0: none) */
    bool ranged;                    /* integers: refuse values outside */
    int64_t min, max;               /* [min, max] (unsigned: as uint64) */
};

struct VMStateDescription {
    const char *name;               /* the section name in streams */
    int version_id;                 /* the version saved */
    int minimum_version_id;         /* the oldest version loaded */
    size_t size;                    /* sizeof the struct described */
    size_t old_size;                /* scratch-only old area (or 0) */
    const VMStateField *fields;     /* ends with VMS_END */
    /* Before encoding: fill shadow fields (timer deadlines, registers
     * read from Unicorn).  May refuse (e.g. a request in flight). */
    bool (*pre_save)(void *opaque, GError **errp);
    /* After decoding a version below version_id into the scratch copy:
     * convert (old area -> new fields, defaults for new fields). */
    bool (*load_old)(void *scratch, int version_id, GError **errp);
    /* Validates the decoded scratch copy before anything changes;
     * `current` is the live object (configuration to compare against). */
    bool (*check)(const void *current, const void *scratch, int version_id,
                  GError **errp);
    /* After the commit copied the fields into the object. */
    bool (*post_load)(void *opaque, int version_id, GError **errp);
    /* The same four hooks for tables that need context besides the
     * object (libxblk's public tables, api/state.c): each gets hook_ctx
     * first and runs only where its plain twin is NULL. */
    const void *hook_ctx;
    bool (*ctx_pre_save)(const void *ctx, void *opaque, GError **errp);
    bool (*ctx_load_old)(const void *ctx, void *scratch, int version_id,
                         GError **errp);
    bool (*ctx_check)(const void *ctx, const void *current,
                      const void *scratch, int version_id, GError **errp);
    bool (*ctx_post_load)(const void *ctx, void *opaque, int version_id,
                          GError **errp);
};

/* ---- declaring fields ----
 *
 * Each macro takes the struct type and the member (which may be a path
 * such as `regs.eax`), checks at compile time that the member has the
 * width the type says, and accepts trailing designators:
 *   VMS_U8(Pic8259, init_step, VMS_MAX(4))
 *   VMS_U32(Foo, bar, VMS_SINCE(2))
 */

/* Compile-time: member `f` of T is `n` bytes; evaluates to n. */
#define VMS_SIZEOF(T, f) sizeof(((T *)0)->f)
#define VMS_SIZE_IS(T, f, n) \
    (sizeof(char[VMS_SIZEOF(T, f) == (size_t)(n) ? 1 : -1]) ? (size_t)(n) : 0)

#define VMS_SINCE(v)        .version_added = (v)
#define VMS_UNTIL(v)        .version_removed = (v)
#define VMS_MAX(m)          .ranged = true, .min = 0, .max = (m)
#define VMS_RANGE(lo, hi)   .ranged = true, .min = (lo), .max = (hi)

#define VMS__SCALAR(T, f, t, w, n, ...) \
    { .name = #f, .offset = offsetof(T, f), .type = (t), .count = (n), \
      .size = (w) + 0 * VMS_SIZE_IS(T, f, (size_t)(w) * (n)), \
      __VA_ARGS__ }

#define VMS_U8(T, f, ...)   VMS__SCALAR(T, f, VMS_T_U8, 1, 1, __VA_ARGS__)
#define VMS_U16(T, f, ...)  VMS__SCALAR(T, f, VMS_T_U16, 2, 1, __VA_ARGS__)
#define VMS_U32(T, f, ...)  VMS__SCALAR(T, f, VMS_T_U32, 4, 1, __VA_ARGS__)
#define VMS_U64(T, f, ...)  VMS__SCALAR(T, f, VMS_T_U64, 8, 1, __VA_ARGS__)
#define VMS_I8(T, f, ...)   VMS__SCALAR(T, f, VMS_T_I8, 1, 1, __VA_ARGS__)
#define VMS_I16(T, f, ...)  VMS__SCALAR(T, f, VMS_T_I16, 2, 1, __VA_ARGS__)
#define VMS_I32(T, f, ...)  VMS__SCALAR(T, f, VMS_T_I32, 4, 1, __VA_ARGS__)
#define VMS_I64(T, f, ...)  VMS__SCALAR(T, f, VMS_T_I64, 8, 1, __VA_ARGS__)
#define VMS_BOOL(T, f, ...) VMS__SCALAR(T, f, VMS_T_BOOL, 1, 1, __VA_ARGS__)
/* A C enum stored as u32 (give VMS_MAX(last value)). */
#define VMS_ENUM(T, f, ...) VMS__SCALAR(T, f, VMS_T_U32, 4, 1, __VA_ARGS__)

#define VMS_U8_ARRAY(T, f, n, ...) \
    VMS__SCALAR(T, f, VMS_T_U8, 1, n, __VA_ARGS__)
#define VMS_U16_ARRAY(T, f, n, ...) \
    VMS__SCALAR(T, f, VMS_T_U16, 2, n, __VA_ARGS__)
#define VMS_U32_ARRAY(T, f, n, ...) \
    VMS__SCALAR(T, f, VMS_T_U32, 4, n, __VA_ARGS__)
#define VMS_U64_ARRAY(T, f, n, ...) \
    VMS__SCALAR(T, f, VMS_T_U64, 8, n, __VA_ARGS__)
#define VMS_BOOL_ARRAY(T, f, n, ...) \
    VMS__SCALAR(T, f, VMS_T_BOOL, 1, n, __VA_ARGS__)

/* The whole member as raw bytes (a byte array, a password...). */
#define VMS_BUFFER(T, f, ...) \
    { .name = #f, .offset = offsetof(T, f), .type = VMS_T_BUFFER, \
      .count = 1, .size = VMS_SIZEOF(T, f), __VA_ARGS__ }

/* The first `lenf` bytes of byte array f (lenf: a uint32_t member of T
 * listed before f in the table). */
#define VMS_VBUFFER(T, f, lenf, ...) \
    { .name = #f, .offset = offsetof(T, f), .type = VMS_T_VBUFFER, \
      .count = 1, .size = VMS_SIZEOF(T, f), \
      .len_offset = offsetof(T, lenf) + 0 * VMS_SIZE_IS(T, lenf, 4), \
      __VA_ARGS__ }

/* A nested struct of type ST described by *vmsdp (vmsdp->size must be
 * sizeof(ST)); and an array of n of them. */
#define VMS_STRUCT(T, f, vmsdp, ST, ...) \
    { .name = #f, .offset = offsetof(T, f), .type = VMS_T_STRUCT, \
      .count = 1, .size = VMS_SIZE_IS(T, f, sizeof(ST)), .vmsd = (vmsdp), \
      __VA_ARGS__ }
#define VMS_STRUCT_ARRAY(T, f, n, vmsdp, ST, ...) \
    { .name = #f, .offset = offsetof(T, f), .type = VMS_T_STRUCT, \
      .count = (n), \
      .size = sizeof(ST) + 0 * VMS_SIZE_IS(T, f, sizeof(ST) * (n)), \
      .vmsd = (vmsdp), __VA_ARGS__ }

/* Old area (see the header comment): OT is the old-area struct of the
 * description of T. */
#define VMS_OLD_BASE(T) ((sizeof(T) + 15) & ~(size_t)15)
#define VMS__OLD_SCALAR(T, OT, f, t, w, ...) \
    { .name = #f, .offset = VMS_OLD_BASE(T) + offsetof(OT, f), .type = (t), \
      .count = 1, .size = (w) + 0 * VMS_SIZE_IS(OT, f, (w)), __VA_ARGS__ }
#define VMS_OLD_U8(T, OT, f, ...) \
    VMS__OLD_SCALAR(T, OT, f, VMS_T_U8, 1, __VA_ARGS__)
#define VMS_OLD_U16(T, OT, f, ...) \
    VMS__OLD_SCALAR(T, OT, f, VMS_T_U16, 2, __VA_ARGS__)
#define VMS_OLD_U32(T, OT, f, ...) \
    VMS__OLD_SCALAR(T, OT, f, VMS_T_U32, 4, __VA_ARGS__)
#define VMS_OLD_U64(T, OT, f, ...) \
    VMS__OLD_SCALAR(T, OT, f, VMS_T_U64, 8, __VA_ARGS__)
#define VMS_OLD_BOOL(T, OT, f, ...) \
    VMS__OLD_SCALAR(T, OT, f, VMS_T_BOOL, 1, __VA_ARGS__)

#define VMS_END { .name = NULL }

/* The old area of a scratch copy (for load_old). */
static inline void *vmstate_old_area(const VMStateDescription *desc,
                                     void *scratch)
{
    return (char *)scratch + ((desc->size + 15) & ~(size_t)15);
}

/* ---- one description ---- */

/* Appends the encoding of *opaque at desc->version_id to out (runs
 * pre_save first).  Refused only by pre_save. */
bool vmstate_save(const VMStateDescription *desc, void *opaque,
                  GByteArray *out, GError **errp);

/* A decoded, checked scratch copy waiting to be committed. */
typedef struct VMStateLoad VMStateLoad;

/* Decodes buf (an encoding at version_id) over a scratch copy of
 * *opaque and checks it; NULL with *errp set (naming the field) if the
 * version is unsupported, the bytes are short, long or out of range, or
 * check refuses.  *opaque is not touched. */
VMStateLoad *vmstate_load_prepare(const VMStateDescription *desc,
                                  void *opaque, const void *buf, size_t len,
                                  int version_id, GError **errp);
/* Copies the scratch into the object and runs post_load; frees l. */
bool vmstate_load_commit(VMStateLoad *l, GError **errp);
void vmstate_load_free(VMStateLoad *l);
/* prepare + commit. */
bool vmstate_load(const VMStateDescription *desc, void *opaque,
                  const void *buf, size_t len, int version_id,
                  GError **errp);

/* Whether field f is encoded at version v. */
bool vmstate_field_exists(const VMStateField *f, int version_id);

/* ---- a machine's set of sections ---- */

typedef struct VMStateEntry {
    const VMStateDescription *desc;
    uint32_t instance;
    void *opaque;
} VMStateEntry;

typedef struct VMStateSet VMStateSet;

VMStateSet *vmstate_set_new(void);
void vmstate_set_free(VMStateSet *set);
/* Appends a section; (desc->name, instance) must be new in the set.
 * Loading commits in this order. */
void vmstate_set_add(VMStateSet *set, const VMStateDescription *desc,
                     uint32_t instance, void *opaque);
guint vmstate_set_count(const VMStateSet *set);
const VMStateEntry *vmstate_set_entry(const VMStateSet *set, guint i);
const VMStateEntry *vmstate_set_find(const VMStateSet *set, const char *name,
                                     uint32_t instance);

/* Loading a whole set, all or nothing: every section is prepared first
 * (an unknown, duplicate, newer or damaged section, or a missing one,
 * refuses the whole load with nothing changed), then all are committed
 * in set order. */
typedef struct VMStateSetLoad VMStateSetLoad;

VMStateSetLoad *vmstate_set_load_begin(VMStateSet *set);
/* One section from a stream: errors name it ("section 'pic' instance
 * 0: ..."). */
bool vmstate_set_load_add(VMStateSetLoad *l, const char *name,
                          uint32_t instance, int version_id,
                          const void *buf, size_t len, GError **errp);
/* Fails if a section of the set got nothing. */
bool vmstate_set_load_check_complete(VMStateSetLoad *l, GError **errp);
/* Commits every prepared section in set order; frees nothing. */
bool vmstate_set_load_commit(VMStateSetLoad *l, GError **errp);
void vmstate_set_load_free(VMStateSetLoad *l);

#endif
