/*
 * xblk-state.h - save states of the host's machine: guest RAM, device
 * state and every writable disk captured at one instant, with the guest
 * stopped only for an atomic commit (well under a millisecond).  Include
 * <xblk/xblk.h>, not this file.
 *
 * The host hands the engine what a state is made of, once, before the
 * first save:
 *   - guest RAM regions (xblk_ram_add): host memory the engine
 *     write-protects at the save instant and streams copy-on-write while
 *     the guest runs on, and replaces on a load;
 *   - devices (xblk_device_add): a plain C struct per device, described
 *     by a field table (XblkDeviceDesc), encoded and decoded without
 *     per-device code, versioned, with hooks;
 *   - the pause contract (XblkHostOps): how the engine asks the host to
 *     stop and resume every thread that touches guest RAM or device state;
 *   - disks: every writable disk open in the engine (xblk-disk.h).
 *
 * A state is stored as QEMU does it: a qcow2 internal snapshot of that
 * name on every writable disk, the RAM and devices in the VM state area
 * of one of them (`qemu-img snapshot -l` lists it with its VM SIZE).
 *
 * The pause contract.  A save or load calls ops->pause(); the host stops
 * its vCPU and device threads at a point where no disk request of its
 * own is in flight (every XblkIoDone has run) and then calls
 * xblk_host_paused() - from any thread, at once or later.  Until the
 * engine calls ops->resume(), the host must not touch guest RAM or
 * device structs, nor submit disk requests.  The engine holds the pause
 * only for the commit: device encoding, one mprotect per RAM region and
 * the snapshots' in-memory commit (save), or the disks' revert, moving
 * the loaded RAM in and the device loads (load).  A host that does not
 * call xblk_host_paused() within 10 s gets ops->resume() and the
 * operation fails.
 *
 * Threads: every call on the loop thread except xblk_host_paused(),
 * xblk_ram_write() and xblk_ram_prepare_write(), which any thread may
 * call (the vCPU's device models and DMA use them).  Callbacks run on
 * the loop thread, except the device hooks, which run inside the pause
 * on the loop thread (the host's threads are stopped then).
 */
#ifndef XBLK_STATE_H
#define XBLK_STATE_H

#include "xblk-engine.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- guest RAM ---- */

/* Regions of guest RAM an engine accepts. */
#define XBLK_RAM_REGIONS_MAX 4

/*
 * Adds [host, host + size) as guest RAM; a state's RAM is the
 * concatenation of the regions in the order they were added.  host and
 * size must be multiples of the page size; best is memory of its own
 * from mmap(MAP_PRIVATE | MAP_ANONYMOUS): a load then moves the loaded
 * RAM into place without copying it (other memory is copied, inside the
 * pause).  Refused (XBLK_ERROR_INVALID, nothing added): misalignment,
 * a region overlapping another, more than XBLK_RAM_REGIONS_MAX, a name
 * taken; XBLK_ERROR_BUSY while a save, load or delete runs.
 */
XBLK_API bool xblk_ram_add(XblkEngine *engine, const char *name, void *host,
                           uint64_t size, XblkError **err);

/*
 * Host code that writes into guest RAM (DMA, a GPU drawing into guest
 * memory, loading a program) calls one of these first: while a save
 * streams RAM, its pages are write-protected, and these save the
 * original of each page before it changes (the guest's own stores are
 * caught by the engine's SIGSEGV handler).  xblk_ram_write copies len
 * bytes to dst, which must lie inside one region (false, nothing
 * written, otherwise); xblk_ram_prepare_write makes [dst, dst + len)
 * writable for a write the host then does itself, before its next pause.
 * Any thread; when no save runs, one atomic load.
 */
XBLK_API bool xblk_ram_write(XblkEngine *engine, void *dst, const void *src,
                             size_t len);
XBLK_API void xblk_ram_prepare_write(XblkEngine *engine, void *dst,
                                     size_t len);

/* ---- devices: field tables ----
 *
 * A device's state is a C struct; its table lists the fields to save,
 * each with its type, offset and element count.  Encoding at version V:
 * the fields that exist at V, in table order, little-endian, no padding.
 * A field added in version N carries .version_added = N (loading an
 * older state leaves it as it is, and load_old may set it); a field
 * that left carries .version_removed.  Loading decodes into a scratch
 * copy, checks every length and range, runs load_old and check, and only
 * then copies the fields into the device and runs post_load: a state
 * that does not check out changes nothing.
 */
typedef enum XblkFieldType {
    XBLK_FIELD_U8 = 1,
    XBLK_FIELD_U16,
    XBLK_FIELD_U32,
    XBLK_FIELD_U64,
    XBLK_FIELD_I8,
    XBLK_FIELD_I16,
    XBLK_FIELD_I32,
    XBLK_FIELD_I64,
    XBLK_FIELD_BOOL,            /* a C bool, one byte */
    XBLK_FIELD_BUFFER,          /* `elem_size` raw bytes */
    XBLK_FIELD_STRUCT,          /* `count` structs described by `desc` */
} XblkFieldType;

typedef struct XblkDeviceDesc XblkDeviceDesc;

typedef struct XblkField {
    const char *name;           /* NULL ends the table */
    XblkFieldType type;
    size_t offset;              /* offsetof(struct, member) */
    uint32_t count;             /* array elements (0 counts as 1) */
    size_t elem_size;           /* bytes of one element in the struct */
    const XblkDeviceDesc *desc; /* XBLK_FIELD_STRUCT */
    int version_added;          /* first version with it (0: always) */
    int version_removed;        /* first version without it (0: none) */
    bool ranged;                /* integers: refuse values outside */
    int64_t min, max;           /* [min, max] */
} XblkField;

struct XblkDeviceDesc {
    size_t size;                /* sizeof(XblkDeviceDesc) */
    size_t field_size;          /* sizeof(XblkField) */
    const char *name;           /* the section's name in a state */
    int version;                /* the version saved */
    int minimum_version;        /* the oldest version loaded */
    size_t struct_size;         /* sizeof the struct described */
    const XblkField *fields;    /* ends with a NULL name */
    /* Optional hooks; they report failure with xblk_error_set(). */
    /* Before encoding (fill fields from elsewhere); may refuse. */
    bool (*pre_save)(void *opaque, XblkError **err);
    /* After decoding a version below `version` into the scratch copy. */
    bool (*load_old)(void *scratch, int version, XblkError **err);
    /* Validates the decoded scratch against the live device. */
    bool (*check)(const void *current, const void *scratch, int version,
                  XblkError **err);
    /* After the fields were copied into the device. */
    bool (*post_load)(void *opaque, int version, XblkError **err);
};

/* Field initializers: XBLK_FIELD(T, member, XBLK_FIELD_U32) for a
 * scalar, XBLK_FIELD_ARRAY(T, member, XBLK_FIELD_U8, n) for an array of
 * n, XBLK_FIELD_STRUCTS(T, member, &desc, n) for n nested structs. */
#define XBLK_FIELD(T, f, type_) \
    { #f, (type_), offsetof(T, f), 1, sizeof(((T *)0)->f), NULL, 0, 0, \
      false, 0, 0 }
#define XBLK_FIELD_ARRAY(T, f, type_, n) \
    { #f, (type_), offsetof(T, f), (n), sizeof(((T *)0)->f) / (n), NULL, \
      0, 0, false, 0, 0 }
#define XBLK_FIELD_STRUCTS(T, f, descp, n) \
    { #f, XBLK_FIELD_STRUCT, offsetof(T, f), (n), \
      sizeof(((T *)0)->f) / (n), (descp), 0, 0, false, 0, 0 }
#define XBLK_FIELD_END { NULL, (XblkFieldType)0, 0, 0, 0, NULL, 0, 0, \
                         false, 0, 0 }

/*
 * Adds a device section: desc (which must outlive the engine) describes
 * the struct at opaque; (desc->name, instance) must be new.  Loading
 * commits devices in the order they were added.  Refused with
 * XBLK_ERROR_INVALID, nothing added: a field whose offset and size run
 * past struct_size, an element size that does not fit its type, an
 * unknown type, a nested table of another size, versions out of order,
 * a size or field_size too small; XBLK_ERROR_EXISTS: the name and
 * instance are taken; XBLK_ERROR_BUSY while a save, load or delete runs.
 */
XBLK_API bool xblk_device_add(XblkEngine *engine, const XblkDeviceDesc *desc,
                              uint32_t instance, void *opaque,
                              XblkError **err);

/* ---- the host ---- */

/* What the host records about the save instant, inside the pause. */
typedef struct XblkStateCapture {
    size_t size;                /* sizeof(XblkStateCapture), set by the
                                 * engine */
    uint64_t frame;             /* the host's frame or step counter */
    int64_t clock_ns;           /* the guest's clock: every disk's
                                 * snapshot records it (VM CLOCK) */
    /* Optional, copied by the engine before capture() returns: */
    const char *title;          /* the game's title */
    const char *frame_hash;     /* the host's hash of the instant */
    const void *thumbnail_png;  /* a PNG picture of the screen */
    size_t thumbnail_png_len;
    uint16_t thumbnail_width, thumbnail_height;
} XblkStateCapture;

typedef struct XblkHostOps {
    size_t size;                /* sizeof(XblkHostOps) */
    /* The machine type written into every state; a load refuses a
     * state of another type (e.g. "mini-host"). */
    const char *machine_type;
    /* The pause contract (see the top of this file).  Required. */
    void (*pause)(void *opaque);
    void (*resume)(void *opaque);
    /* Optional: inside the pause of a save, the capture's fields. */
    void (*capture)(void *opaque, XblkStateCapture *capture);
    void *opaque;
} XblkHostOps;

/* Binds the host; once, before a save or load.  ops is copied. */
XBLK_API bool xblk_engine_set_host(XblkEngine *engine,
                                   const XblkHostOps *ops, XblkError **err);
/* The host's threads are stopped: any thread, once per ops->pause(). */
XBLK_API void xblk_host_paused(XblkEngine *engine);

/* ---- save, load, delete ---- */

typedef enum XblkStateOp {
    XBLK_STATE_SAVE = 1,
    XBLK_STATE_LOAD,
    XBLK_STATE_DELETE,
} XblkStateOp;

/* What a finished operation measured. */
typedef struct XblkStateStats {
    size_t size;                /* sizeof(XblkStateStats) */
    XblkStateOp op;
    int64_t pause_ns;           /* host paused .. resumed (save, load) */
    int64_t total_ns;           /* call .. state durable and listed (save),
                                 * call .. done (load, delete) */
    uint64_t vm_state_size;     /* bytes of the stream (save) */
    uint64_t frame;             /* the capture's frame (save, load) */
} XblkStateStats;

/* Progress: done out of total bytes of the stream (total may grow). */
typedef void XblkStateProgressFn(void *opaque, uint64_t done,
                                 uint64_t total);
/* Completion: err NULL on success (borrowed: copy what you keep); stats
 * valid on success. */
typedef void XblkStateDoneFn(void *opaque, const XblkError *err,
                             const XblkStateStats *stats);

typedef struct XblkStateOptions {
    size_t size;                /* sizeof(XblkStateOptions) */
    /* Save: replace a state of the same name (otherwise refused). */
    bool overwrite;
    /* The disk to hold the VM state, by node name (NULL: the first
     * writable qcow2 disk on save; the one that has it on load). */
    const char *vmstate_disk;
    XblkStateProgressFn *progress;
} XblkStateOptions;

/*
 * Starts an operation on the state `name`; returns false (with *err,
 * done never called) if it cannot start: a bad name or options, no host
 * bound, XBLK_ERROR_BUSY while another save, load or delete runs.
 * Otherwise done(opaque, ...) runs exactly once, on the loop thread,
 * never inside this call.  opts may be NULL.
 *
 * Save: the state is durable and listed on every writable disk when
 * done runs without error; a failed save leaves no trace on any disk.
 * Load: refused with everything unchanged when a disk lacks the
 * snapshot, the state is of another machine type or RAM size, or a
 * device section does not check out against the registered devices.
 * Delete: a name that is nowhere is no error.
 */
XBLK_API bool xblk_state_save(XblkEngine *engine, const char *name,
                              const XblkStateOptions *opts,
                              XblkStateDoneFn *done, void *opaque,
                              XblkError **err);
XBLK_API bool xblk_state_load(XblkEngine *engine, const char *name,
                              const XblkStateOptions *opts,
                              XblkStateDoneFn *done, void *opaque,
                              XblkError **err);
XBLK_API bool xblk_state_delete(XblkEngine *engine, const char *name,
                                XblkStateDoneFn *done, void *opaque,
                                XblkError **err);
/* True while a save, load or delete runs. */
XBLK_API bool xblk_state_busy(XblkEngine *engine);

#ifdef __cplusplus
}
#endif

#endif
