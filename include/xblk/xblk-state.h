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
 * pause).  The engine advises the kernel to back the region with
 * transparent huge pages (madvise MADV_HUGEPAGE), and a load keeps them:
 * the save's write-protection then changes one page-table entry per
 * 2 MiB (~10 us at 64 MiB) instead of one per 4 KiB page (~1 ms).  Refused (XBLK_ERROR_INVALID, nothing added): misalignment,
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
 * Any thread; when no save runs, one atomic load.  engine may be NULL
 * (the process's engine).
 */
XBLK_API bool xblk_ram_write(XblkEngine *engine, void *dst, const void *src,
                             size_t len);
XBLK_API void xblk_ram_prepare_write(XblkEngine *engine, void *dst,
                                     size_t len);

/* ---- devices: field tables ----
 *
 * A device's state is a C struct; its table lists the fields to save,
 * each with its type, offset and element count.  Encoding at version V:
 * the fields that exist at V (version_added <= V < version_removed), in
 * table order, little-endian, no padding: integers at their width, bool
 * one byte, arrays element after element, nested structs inline,
 * BUFFER its bytes, VBUFFER a u32 length then that many bytes.
 *
 * Loading decodes into a scratch copy of the struct, checks every length
 * and every ranged value, runs load_old (a state older than `version`)
 * and check, and only then copies the fields into the device and runs
 * post_load: a state that does not check out changes nothing.
 *
 * Old versions: a field added in version N carries XBLK_SINCE(N) (an
 * older state leaves it as it is; load_old may set it).  A field whose
 * encoding changed in version N stays in the table with XBLK_UNTIL(N),
 * declared in an "old area" - scratch-only storage after the struct
 * (XBLK_OLD_*; the table's old_size says how big) - which load_old reads
 * (xblk_device_old_area()) to fill the new field.
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
    XBLK_FIELD_BUFFER,          /* count x elem_size raw bytes */
    XBLK_FIELD_VBUFFER,         /* the first n bytes of a byte array of
                                 * elem_size, n the uint32_t at
                                 * len_offset (listed earlier) */
    XBLK_FIELD_STRUCT,          /* count structs described by desc */
} XblkFieldType;

typedef struct XblkDeviceDesc XblkDeviceDesc;

typedef struct XblkField {
    const char *name;           /* NULL ends the table */
    XblkFieldType type;
    size_t offset;              /* offsetof(struct, member), or into the
                                 * old area (XBLK_OLD_*) */
    uint32_t count;             /* array elements (0 counts as 1) */
    size_t elem_size;           /* bytes of one element in the struct */
    const XblkDeviceDesc *desc; /* XBLK_FIELD_STRUCT */
    size_t len_offset;          /* XBLK_FIELD_VBUFFER */
    int version_added;          /* first version with it (0: always) */
    int version_removed;        /* first version without it (0: none) */
    bool ranged;                /* integers: refuse values outside */
    int64_t min, max;           /* [min, max] (unsigned: as uint64) */
} XblkField;

struct XblkDeviceDesc {
    size_t size;                /* sizeof(XblkDeviceDesc) */
    size_t field_size;          /* sizeof(XblkField) */
    const char *name;           /* the section's name in a state */
    int version;                /* the version saved (>= 1) */
    int minimum_version;        /* the oldest version loaded (0: 1) */
    size_t struct_size;         /* sizeof the struct described */
    size_t old_size;            /* bytes of the old area (or 0) */
    const XblkField *fields;    /* ends with XBLK_FIELDS_END */
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

/*
 * Declaring fields.  Each macro takes the struct type and the member
 * (which may be a path such as `regs.eax`), checks at compile time that
 * the member has the width the type says, and accepts trailing
 * designators:
 *     XBLK_U8(Pic, init_step, XBLK_MAX(4)),
 *     XBLK_U32(Foo, bar, XBLK_SINCE(2)),
 *     XBLK_FIELDS_END
 * (C only: C++ lacks the designated initializers they expand to.)
 */
#define XBLK_SINCE(v)       .version_added = (v)
#define XBLK_UNTIL(v)       .version_removed = (v)
#define XBLK_MAX(m)         .ranged = true, .min = 0, .max = (m)
#define XBLK_RANGE(lo, hi)  .ranged = true, .min = (lo), .max = (hi)

#define XBLK_SIZEOF(T, f) sizeof(((T *)0)->f)
/* Compile-time: member f of T is n bytes; evaluates to n. */
#define XBLK_SIZE_IS(T, f, n) \
    (sizeof(char[XBLK_SIZEOF(T, f) == (size_t)(n) ? 1 : -1]) ? \
     (size_t)(n) : 0)

/* Each public macro takes (...) and adds an empty last argument, so that
 * a field without designators is still ISO C (-pedantic): the variadic
 * part of the inner macro is never missing, at worst empty. */
#define XBLK__SCALAR(t, w, n, T, f, ...) \
    { .name = #f, .type = (t), .offset = offsetof(T, f), .count = (n), \
      .elem_size = (w) + 0 * XBLK_SIZE_IS(T, f, (size_t)(w) * (n)), \
      __VA_ARGS__ }
#define XBLK__ARRAY(t, w, T, f, n, ...) \
    XBLK__SCALAR(t, w, n, T, f, __VA_ARGS__)

#define XBLK_U8(...)   XBLK__SCALAR(XBLK_FIELD_U8, 1, 1, __VA_ARGS__, )
#define XBLK_U16(...)  XBLK__SCALAR(XBLK_FIELD_U16, 2, 1, __VA_ARGS__, )
#define XBLK_U32(...)  XBLK__SCALAR(XBLK_FIELD_U32, 4, 1, __VA_ARGS__, )
#define XBLK_U64(...)  XBLK__SCALAR(XBLK_FIELD_U64, 8, 1, __VA_ARGS__, )
#define XBLK_I8(...)   XBLK__SCALAR(XBLK_FIELD_I8, 1, 1, __VA_ARGS__, )
#define XBLK_I16(...)  XBLK__SCALAR(XBLK_FIELD_I16, 2, 1, __VA_ARGS__, )
#define XBLK_I32(...)  XBLK__SCALAR(XBLK_FIELD_I32, 4, 1, __VA_ARGS__, )
#define XBLK_I64(...)  XBLK__SCALAR(XBLK_FIELD_I64, 8, 1, __VA_ARGS__, )
#define XBLK_BOOL(...) XBLK__SCALAR(XBLK_FIELD_BOOL, 1, 1, __VA_ARGS__, )
/* A C enum stored as u32 (give XBLK_MAX(last value)). */
#define XBLK_ENUM(...) XBLK__SCALAR(XBLK_FIELD_U32, 4, 1, __VA_ARGS__, )

/* XBLK_U8_ARRAY(T, f, n, ...): n elements. */
#define XBLK_U8_ARRAY(...)   XBLK__ARRAY(XBLK_FIELD_U8, 1, __VA_ARGS__, )
#define XBLK_U16_ARRAY(...)  XBLK__ARRAY(XBLK_FIELD_U16, 2, __VA_ARGS__, )
#define XBLK_U32_ARRAY(...)  XBLK__ARRAY(XBLK_FIELD_U32, 4, __VA_ARGS__, )
#define XBLK_U64_ARRAY(...)  XBLK__ARRAY(XBLK_FIELD_U64, 8, __VA_ARGS__, )
#define XBLK_BOOL_ARRAY(...) XBLK__ARRAY(XBLK_FIELD_BOOL, 1, __VA_ARGS__, )

/* XBLK_BUFFER(T, f, ...): the whole member as raw bytes. */
#define XBLK__BUFFER(T, f, ...) \
    { .name = #f, .type = XBLK_FIELD_BUFFER, .offset = offsetof(T, f), \
      .count = 1, .elem_size = XBLK_SIZEOF(T, f), __VA_ARGS__ }
#define XBLK_BUFFER(...) XBLK__BUFFER(__VA_ARGS__, )
/* XBLK_VBUFFER(T, f, lenf, ...): the first `lenf` bytes of byte array f
 * (lenf: a uint32_t member of T listed before f). */
#define XBLK__VBUFFER(T, f, lenf, ...) \
    { .name = #f, .type = XBLK_FIELD_VBUFFER, .offset = offsetof(T, f), \
      .count = 1, .elem_size = XBLK_SIZEOF(T, f), \
      .len_offset = offsetof(T, lenf) + 0 * XBLK_SIZE_IS(T, lenf, 4), \
      __VA_ARGS__ }
#define XBLK_VBUFFER(...) XBLK__VBUFFER(__VA_ARGS__, )
/* XBLK_STRUCT(T, f, descp, ST, ...): a nested struct of type ST
 * described by *descp; XBLK_STRUCT_ARRAY(T, f, n, descp, ST, ...): n. */
#define XBLK__STRUCT_ARRAY(T, f, n, descp, ST, ...) \
    { .name = #f, .type = XBLK_FIELD_STRUCT, .offset = offsetof(T, f), \
      .count = (n), \
      .elem_size = sizeof(ST) + 0 * XBLK_SIZE_IS(T, f, sizeof(ST) * (n)), \
      .desc = (descp), __VA_ARGS__ }
#define XBLK__STRUCT(T, f, descp, ST, ...) \
    XBLK__STRUCT_ARRAY(T, f, 1, descp, ST, __VA_ARGS__)
#define XBLK_STRUCT(...) XBLK__STRUCT(__VA_ARGS__, )
#define XBLK_STRUCT_ARRAY(...) XBLK__STRUCT_ARRAY(__VA_ARGS__, )

/* Old area (see above): XBLK_OLD_U32(T, OT, f, ...), OT the old-area
 * struct of the table of T. */
#define XBLK_OLD_BASE(T) ((sizeof(T) + 15) & ~(size_t)15)
#define XBLK__OLD(t, w, T, OT, f, ...) \
    { .name = #f, .type = (t), .offset = XBLK_OLD_BASE(T) + offsetof(OT, f), \
      .count = 1, .elem_size = (w) + 0 * XBLK_SIZE_IS(OT, f, (w)), \
      __VA_ARGS__ }
#define XBLK_OLD_U8(...)   XBLK__OLD(XBLK_FIELD_U8, 1, __VA_ARGS__, )
#define XBLK_OLD_U16(...)  XBLK__OLD(XBLK_FIELD_U16, 2, __VA_ARGS__, )
#define XBLK_OLD_U32(...)  XBLK__OLD(XBLK_FIELD_U32, 4, __VA_ARGS__, )
#define XBLK_OLD_U64(...)  XBLK__OLD(XBLK_FIELD_U64, 8, __VA_ARGS__, )
#define XBLK_OLD_BOOL(...) XBLK__OLD(XBLK_FIELD_BOOL, 1, __VA_ARGS__, )

#define XBLK_FIELDS_END { NULL, (XblkFieldType)0, 0, 0, 0, NULL, 0, 0, 0, \
                          false, 0, 0 }

/* The old area of a scratch copy (for load_old). */
static inline void *xblk_device_old_area(const XblkDeviceDesc *desc,
                                         void *scratch)
{
    return (char *)scratch + ((desc->struct_size + 15) & ~(size_t)15);
}

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

/* What the host records about a state: its frame and clock inside the
 * pause (capture), the rest there or once all RAM streamed by
 * (save_finish). */
typedef struct XblkStateCapture {
    size_t size;                /* sizeof(XblkStateCapture), set by the
                                 * engine */
    uint64_t frame;             /* the host's frame or step counter */
    int64_t clock_ns;           /* the guest's clock: every disk's
                                 * snapshot records it (VM CLOCK) */
    /* Optional, copied by the engine when the callback returns: */
    const char *title;          /* the game's title */
    const char *disc_path;      /* the disc inserted */
    const char *frame_hash;     /* the host's hash of the instant */
    const void *thumbnail_png;  /* a PNG picture of the screen */
    size_t thumbnail_png_len;
    uint16_t thumbnail_width, thumbnail_height;
} XblkStateCapture;

typedef void XblkHostFn(void *arg);

typedef struct XblkHostOps {
    size_t size;                /* sizeof(XblkHostOps) */
    /* The machine type written into every state; a load refuses a
     * state of another type (e.g. "mini-host"). */
    const char *machine_type;
    /* The pause contract (see the top of this file).  Required. */
    void (*pause)(void *opaque);
    void (*resume)(void *opaque);
    /* Optional: runs fn(arg) on the thread the host wants device state
     * touched on (its vCPU thread, say) and returns when it ran.  Inside
     * the pause the engine runs through it everything that touches the
     * host's structs: capture, the device encoding and its pre_save
     * hooks, load_begin, the device loads and their hooks, load_end.
     * NULL: they run on the loop thread. */
    void (*run_paused)(void *opaque, XblkHostFn *fn, void *arg);
    /* Optional, inside the pause of a save: the capture's fields. */
    void (*capture)(void *opaque, XblkStateCapture *capture);
    /* Optional, on the engine's streaming thread while the guest runs:
     * every page of guest RAM as it was at the pause, in ascending
     * offset (the regions' concatenation), len bytes at a time; then
     * save_finish with the capture to complete (a hash over all RAM, a
     * thumbnail from a framebuffer in RAM).  Neither may touch what the
     * guest is changing. */
    void (*save_page)(void *opaque, uint64_t offset, const void *page,
                      size_t len);
    void (*save_finish)(void *opaque, XblkStateCapture *capture);
    /* Optional, inside the pause of a load: load_begin once every check
     * passed, before RAM or a device changes; load_end after, changed
     * false if nothing was changed after all (a device's post_load may
     * still fail after RAM and devices were replaced).  load_end may
     * refuse (the load then fails with its error; the machine has
     * changed). */
    void (*load_begin)(void *opaque);
    bool (*load_end)(void *opaque, bool changed, XblkError **err);
    void *opaque;
} XblkHostOps;

/* Binds the host; before a save or load.  ops is copied. */
XBLK_API bool xblk_engine_set_host(XblkEngine *engine,
                                   const XblkHostOps *ops, XblkError **err);
/* The host's threads are stopped: any thread, once per ops->pause(). */
XBLK_API void xblk_host_paused(XblkEngine *engine);
/* Or they cannot stop (the guest shut down meanwhile): the operation
 * fails with reason and the engine calls no resume.  Any thread. */
XBLK_API void xblk_host_pause_failed(XblkEngine *engine, const char *reason);

/*
 * Inside load_end (on the thread run_paused gave it): reads len bytes at
 * offset of the guest RAM as the loaded state holds it - for a host
 * whose device loads wrote into guest RAM (a vCPU setting the accessed
 * bit of the descriptors its segment registers load) and that must put
 * the state's bytes back.  False with *err outside load_end or past the
 * RAM.
 */
XBLK_API bool xblk_state_read_ram(XblkEngine *engine, uint64_t offset,
                                  void *buf, size_t len, XblkError **err);

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
    uint64_t raw_size;          /* the state uncompressed (save) */
    uint64_t peak_cow_bytes;    /* copy-on-write memory at most (save) */
    uint64_t frame;             /* the capture's frame (save, load) */
} XblkStateStats;

/* Progress: done out of total bytes of the stream (total may grow). */
typedef void XblkStateProgressFn(void *opaque, uint64_t done,
                                 uint64_t total);
/* Completion: err NULL on success (borrowed: copy what you keep); stats
 * filled on success. */
typedef void XblkStateDoneFn(void *opaque, const XblkError *err,
                             const XblkStateStats *stats);

typedef struct XblkStateOptions {
    size_t size;                /* sizeof(XblkStateOptions) */
    /* Save: replace a state of the same name (otherwise refused). */
    bool overwrite;
    /* The disk to hold the VM state, by name (xblk_disk_name) or node
     * name.  NULL: the first writable disk that can hold one (save), the
     * one that has it (load). */
    const char *vmstate_disk;
    /* NULL-terminated disk names; NULL: every writable disk.  Given, it
     * must name exactly the writable disks (a state covers them all);
     * delete: only these disks. */
    const char *const *disks;
    XblkStateProgressFn *progress;
    void *progress_opaque;      /* progress's; NULL: done's opaque */
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
                                const XblkStateOptions *opts,
                                XblkStateDoneFn *done, void *opaque,
                                XblkError **err);
/* True while a save, load or delete runs. */
XBLK_API bool xblk_state_busy(XblkEngine *engine);
/* Asks the running save or load to stop: a save before its state is
 * durable (nothing is left on any disk), a load before anything
 * changed; too late, it completes.  False if none runs. */
XBLK_API bool xblk_state_cancel(XblkEngine *engine);

/* A state as the menu shows it, read without its RAM. */
typedef struct XblkStateInfo {
    size_t size;                /* sizeof(XblkStateInfo) */
    uint64_t frame;
    char *frame_hash;           /* or NULL, and so on */
    char *disc_path;
    char *title;
    void *thumbnail_png;
    size_t thumbnail_png_len;
    uint16_t thumbnail_width, thumbnail_height;
} XblkStateInfo;

/* Synchronous (iterates the loop while it reads).  NULL with *err when
 * no disk holds the state's VM state. */
XBLK_API XblkStateInfo *xblk_state_info(XblkEngine *engine,
                                        const char *name, XblkError **err);
XBLK_API void xblk_state_info_free(XblkStateInfo *info);

/*
 * Synchronous, at start before any load: removes every state that a
 * kill or power loss left unfinished (its snapshot on some writable
 * disks only, with a guest clock and no VM state anywhere: a save lists
 * the VM state's disk last).  report (may be NULL) gets one line per
 * removal.  Returns how many states were removed, or -1 with *err.
 */
XBLK_API int xblk_state_cleanup(XblkEngine *engine,
                                void (*report)(void *opaque,
                                               const char *line),
                                void *opaque, XblkError **err);

#ifdef __cplusplus
}
#endif

#endif
