/*
 * savestream.h - the save-state stream (".xss"): xblk's own versioned
 * container for one machine state, documented byte by byte in
 * docs/savestate.md.
 *
 *   header      magic, format version, RAM size, machine type, xblk version
 *   records     each: tag, version, instance, payload length, payload
 *               checksum, name, header CRC32, payload
 *     META      frame, frame hash, disc path, title, PNG thumbnail
 *     DEVS      one per device section: a vmstate encoding (vmstate.h)
 *     RAMH      RAM layout: page size, chunk size, chunk count
 *     RAMC      one per chunk of guest RAM (256 KiB by default): page
 *               bitmap (zero pages elided), zstd frame of the other pages
 *     END       record count and offset: a stream without it is truncated
 *
 * Owns: the writer (to a write callback or a growing GByteArray) and the
 * reader (over a pread-like callback or a memory buffer).  Header
 * checksums are CRC-32 as zlib's crc32() (ISO-HDLC polynomial
 * 0xEDB88320); payload checksums too in format version 1, the low 32
 * bits of XXH3-64 from version 2 (written now; both are read).
 *
 * Writing RAM: pages come in any order, each exactly once, from the
 * caller (xss_writer_ram_page) or an iterator callback (xss_writer_ram);
 * the data pointer only has to stay valid during the call.  A chunk is
 * compressed and written as soon as all of its pages arrived; until then
 * its non-zero pages are held in a staging buffer, so pages handed in
 * address order need one chunk of memory.  Reading RAM: chunks are
 * delivered decoded, one at a time (xss_reader_foreach_chunk) or on
 * demand (xss_reader_read_chunk), so a loader may map RAM lazily.
 *
 * Refusals (rule 5): a newer format or section version, an unknown
 * record tag or device section, a duplicate, a damaged or truncated
 * record is refused with an error naming it.  The reader never trusts a
 * length before checking it against the stream size; a record's header
 * CRC is checked before its payload length is used.  xss_load() checks
 * everything (every checksum, every chunk decoded, every device section
 * decoded and checked) before it changes anything.
 *
 * Threads: no global state; a writer or reader is used by one thread at a
 * time, and several may run side by side (each has its own zstd
 * contexts).  Callers: the save/load coordination (migration/), tests.
 */
#ifndef XBLK_MIGRATION_SAVESTREAM_H
#define XBLK_MIGRATION_SAVESTREAM_H

#include "migration/vmstate.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define XSS_FORMAT_VERSION      2
#define XSS_PAGE_SIZE           4096u
#define XSS_CHUNK_SIZE_DEFAULT  (256u * 1024)
#define XSS_CHUNK_SIZE_MAX      (16u * 1024 * 1024)
#define XSS_MACHINE_TYPE_MAX    64
#define XSS_VERSION_STRING_MAX  64
/* Versions of the stream's own sections. */
#define XSS_RAM_VERSION         1
#define XSS_META_VERSION        1
#define XSS_END_VERSION         1

typedef struct XssHeader {
    uint32_t format_version;
    uint64_t ram_size;
    char machine_type[XSS_MACHINE_TYPE_MAX + 1];
    char xblk_version[XSS_VERSION_STRING_MAX + 1];
} XssHeader;

/* The menu's view of a state. */
typedef struct XssMetadata {
    uint64_t frame;             /* frame number at the save instant */
    char *frame_hash;           /* x-query-frame's hash, or NULL */
    char *disc_path;            /* or NULL */
    char *title;                /* or NULL */
    uint16_t thumb_width;       /* 320 x 240 for the menu */
    uint16_t thumb_height;
    GBytes *thumbnail_png;      /* PNG bytes, or NULL */
} XssMetadata;

void xss_metadata_clear(XssMetadata *md);

typedef struct XssRamLayout {
    uint64_t ram_size;
    uint32_t page_size;
    uint32_t chunk_size;        /* bytes of guest RAM per chunk */
    uint32_t chunk_count;
} XssRamLayout;

/* ---- writing ---- */

/* Writes len bytes at the end of the stream. */
typedef bool XssWriteFn(void *opaque, const void *buf, size_t len,
                        GError **errp);
/* The next page: 1 with *page_index and *data set (data valid until the
 * next call), 0 when there are no more, -1 with *errp set on failure. */
typedef int XssPageNextFn(void *opaque, uint64_t *page_index,
                          const void **data, GError **errp);

typedef struct XssWriterOptions {
    uint32_t chunk_size;        /* 0: XSS_CHUNK_SIZE_DEFAULT; a multiple
                                 * of XSS_PAGE_SIZE up to _MAX */
    int zstd_level;             /* 0: 3 */
} XssWriterOptions;

typedef struct XssWriter XssWriter;

/* opts may be NULL. */
XssWriter *xss_writer_new(XssWriteFn *fn, void *opaque,
                          const XssWriterOptions *opts);
/* Appends to out (not owned). */
XssWriter *xss_writer_new_buffer(GByteArray *out,
                                 const XssWriterOptions *opts);
void xss_writer_free(XssWriter *w);

/* The header; first.  ram_size: a multiple of XSS_PAGE_SIZE. */
bool xss_writer_begin(XssWriter *w, const char *machine_type,
                      uint64_t ram_size, GError **errp);
bool xss_writer_metadata(XssWriter *w, const XssMetadata *md, GError **errp);
/* One device section (runs the description's pre_save). */
bool xss_writer_device(XssWriter *w, const VMStateDescription *desc,
                       uint32_t instance, void *opaque, GError **errp);
/* Every section of set, in set order. */
bool xss_writer_devices(XssWriter *w, VMStateSet *set, GError **errp);
/* RAM: begin, every page once in any order, end. */
bool xss_writer_ram_begin(XssWriter *w, GError **errp);
bool xss_writer_ram_page(XssWriter *w, uint64_t page_index,
                         const void *data, GError **errp);
bool xss_writer_ram_end(XssWriter *w, GError **errp);
/* begin + the iterator's pages + end. */
bool xss_writer_ram(XssWriter *w, XssPageNextFn *next, void *opaque,
                    GError **errp);
/* begin + ram[0, ram_size) in address order + end. */
bool xss_writer_ram_linear(XssWriter *w, const void *ram, GError **errp);
/* The end marker; last.  No call may follow. */
bool xss_writer_finish(XssWriter *w, GError **errp);
uint64_t xss_writer_bytes(const XssWriter *w);

/* ---- reading ---- */

/* Reads len bytes at offset (the reader checked offset + len <= size). */
typedef bool XssReadFn(void *opaque, uint64_t offset, void *buf,
                       size_t len, GError **errp);

typedef struct XssReader XssReader;

/* Parses the header and walks every record header (checking their CRCs,
 * tags, versions of the stream's own sections, bounds, duplicates and
 * the end marker); payloads are read later. */
XssReader *xss_reader_open(XssReadFn *fn, void *opaque, uint64_t size,
                           GError **errp);
/* buf must outlive the reader. */
XssReader *xss_reader_open_buffer(const void *buf, size_t len,
                                  GError **errp);
void xss_reader_free(XssReader *r);

const XssHeader *xss_reader_header(const XssReader *r);
/* Refuses a state of another machine type or RAM size. */
bool xss_reader_check_machine(const XssReader *r, const char *machine_type,
                              uint64_t ram_size, GError **errp);
/* False with *errp set if the stream has no metadata section. */
bool xss_reader_metadata(XssReader *r, XssMetadata *out, GError **errp);
/* False if the stream has no RAM section. */
bool xss_reader_ram_layout(const XssReader *r, XssRamLayout *out);
/* Every payload checksum, and every RAM chunk decoded. */
bool xss_reader_verify(XssReader *r, GError **errp);

/* Decodes and checks every device section of the stream against set
 * (vmstate_set_load_*): unknown, duplicate, newer, damaged or missing
 * sections refuse.  Nothing changes until vmstate_set_load_commit(). */
VMStateSetLoad *xss_reader_prepare_devices(XssReader *r, VMStateSet *set,
                                           GError **errp);

typedef struct XssChunk {
    uint32_t index;
    uint64_t gpa;               /* guest address of its first byte */
    size_t len;                 /* bytes of guest RAM it covers */
    uint32_t pages;
    const uint8_t *data;        /* len bytes, zero pages as zeros */
    const uint8_t *present;     /* bit i (LSB first): page i was stored,
                                 * i.e. is not all zeros */
} XssChunk;

/* Decodes chunk index into out (valid until the next call on r). */
bool xss_reader_read_chunk(XssReader *r, uint32_t index, XssChunk *out,
                           GError **errp);
typedef bool XssChunkFn(void *opaque, const XssChunk *chunk, GError **errp);
/* Every chunk in index order. */
bool xss_reader_foreach_chunk(XssReader *r, XssChunkFn *fn, void *opaque,
                              GError **errp);

/*
 * A whole load: prepares every device section of set and decodes every
 * RAM chunk first (refusing with nothing changed), then hands each chunk
 * to ram_fn (if not NULL) and commits the devices in set order.  An
 * error after the checks (ram_fn or a post_load failing) leaves the
 * machine partly loaded; the message says so.
 */
bool xss_load(XssReader *r, VMStateSet *set, XssChunkFn *ram_fn,
              void *ram_opaque, GError **errp);

#endif
