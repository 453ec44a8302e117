/*
 * savestream.c - writer and reader of the save-state stream; see
 * savestream.h and docs/savestate.md for the format.
 *
 * Invariants:
 * - Writer: records go out whole (header, then payload) in call order;
 *   the first failed write puts the writer in the failed state and every
 *   later call refuses.  Each RAM page is accepted once; a chunk is
 *   emitted exactly once, when its last page arrives.
 * - Reader: every offset and length read from the stream is checked
 *   against the stream size (and the record's own bounds) before use; a
 *   record header is used only after its CRC matched; a payload only
 *   after its CRC matched.  Decoding a chunk writes only inside the
 *   reader's chunk buffer (chunk_size bytes).
 */
#include "migration/savestream.h"
#include "util/error.h"
#include "util/version.h"
#include <inttypes.h>
#include <string.h>
#include <xxhash.h>
#include <zlib.h>
#include <zstd.h>

#define XSS_MAGIC           "XBSS\r\n\x1a\n"
#define XSS_MAGIC_LEN       8
#define XSS_HEADER_FIXED    16      /* magic, version, header length */
#define XSS_HEADER_MIN      (8 + 4 + 4 + 8 + 1 + 1 + 1 + 4)
#define XSS_HEADER_MAX      4096

/* Record header: tag, version, instance, payload length, payload CRC,
 * name length (25 bytes), name, header CRC. */
#define REC_FIXED           25
#define REC_NAME_MAX        255

#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | \
                         (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define TAG_DEVS            TAG('D', 'E', 'V', 'S')
#define TAG_META            TAG('M', 'E', 'T', 'A')
#define TAG_RAMH            TAG('R', 'A', 'M', 'H')
#define TAG_RAMC            TAG('R', 'A', 'M', 'C')
#define TAG_END             TAG('E', 'N', 'D', 'M')

#define RAMH_LEN            21
#define END_LEN             16
#define XSS_ZSTD_LEVEL      3
#define XSS_COMPRESS_ZSTD   1
/* Upper bounds for payloads, checked before anything is allocated. */
#define DEVS_MAX_LEN        (64u << 20)
#define META_MAX_LEN        (24u << 20)
#define META_PNG_MAX        (16u << 20)
#define PNG_SIGNATURE       "\x89PNG\r\n\x1a\n"
#define XSS_MAX_DEVICE_SECTIONS 4096
/* The smallest chunk record: its header with the name "ram", and a
 * payload of the page count, one bitmap byte and the two lengths. */
#define RAMC_MIN_RECORD     (REC_FIXED + 3 + 4 + 4 + 1 + 8)

/* ---- little helpers ---- */

static uint32_t crc32_of(const void *buf, size_t len)
{
    return (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), buf, len);
}

/* A record's payload checksum.  Format version 1 used CRC-32 here too;
 * from version 2 it is the low 32 bits of XXH3-64 (seed 0), several
 * times faster on the RAM chunks, which are nearly all of a stream
 * (zlib's CRC-32 alone cost a save ~40 ms at 64 MiB here).  Headers keep
 * CRC-32: they are small. */
static uint32_t payload_sum(uint32_t format_version, const void *buf,
                            size_t len)
{
    if (format_version < 2) {
        return crc32_of(buf, len);
    }
    return (uint32_t)XXH3_64bits(buf, len);
}

static void put8(GByteArray *a, uint8_t v)
{
    g_byte_array_append(a, &v, 1);
}

static void put16(GByteArray *a, uint16_t v)
{
    uint8_t b[2] = { v, v >> 8 };
    g_byte_array_append(a, b, 2);
}

static void put32(GByteArray *a, uint32_t v)
{
    uint8_t b[4] = { v, v >> 8, v >> 16, v >> 24 };
    g_byte_array_append(a, b, 4);
}

static void put64(GByteArray *a, uint64_t v)
{
    put32(a, (uint32_t)v);
    put32(a, (uint32_t)(v >> 32));
}

static uint16_t get16(const uint8_t *b)
{
    return b[0] | b[1] << 8;
}

static uint32_t get32(const uint8_t *b)
{
    return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get64(const uint8_t *b)
{
    return get32(b) | (uint64_t)get32(b + 4) << 32;
}

/* A bounds-checked reader over a payload. */
typedef struct Cur {
    const uint8_t *p, *end;
} Cur;

static const uint8_t *cur_take(Cur *c, size_t n)
{
    if ((size_t)(c->end - c->p) < n) {
        return NULL;
    }
    const uint8_t *p = c->p;
    c->p += n;
    return p;
}

static bool page_is_zero(const void *page)
{
    const uint64_t *w = page;
    for (size_t i = 0; i < XSS_PAGE_SIZE / 8; i++) {
        if (w[i]) {
            return false;
        }
    }
    return true;
}

static bool bit_test(const uint8_t *map, uint64_t i)
{
    return map[i / 8] & (1u << (i % 8));
}

static void bit_set(uint8_t *map, uint64_t i)
{
    map[i / 8] |= 1u << (i % 8);
}

static void tag_name(uint32_t tag, char out[5])
{
    for (int i = 0; i < 4; i++) {
        uint8_t c = tag >> (8 * i);
        out[i] = c >= 0x20 && c < 0x7F ? (char)c : '?';
    }
    out[4] = 0;
}

void xss_metadata_clear(XssMetadata *md)
{
    g_free(md->frame_hash);
    g_free(md->disc_path);
    g_free(md->title);
    if (md->thumbnail_png) {
        g_bytes_unref(md->thumbnail_png);
    }
    *md = (XssMetadata){ 0 };
}

/* ======================================================================
 * Writer
 * ====================================================================== */

typedef enum {
    W_NEW,          /* nothing written */
    W_OPEN,         /* header written */
    W_RAM,          /* between ram_begin and ram_end */
    W_DONE,         /* end marker written */
    W_FAILED,       /* a write failed */
} WriterState;

struct XssWriter {
    XssWriteFn *fn;
    void *opaque;
    WriterState state;
    uint64_t bytes;             /* written so far */
    uint64_t records;           /* records written */
    uint64_t ram_size;
    uint32_t chunk_size;
    int level;
    bool have_meta, have_ram;
    GHashTable *sections;       /* "name/instance" of written DEVS */
    ZSTD_CCtx *cctx;

    /* RAM, between ram_begin and ram_end. */
    uint64_t npages;
    uint32_t pages_per_chunk;
    uint32_t nchunks;
    uint32_t chunks_done;
    uint8_t *seen;              /* bitmap of pages handed in */
    uint8_t *nonzero;           /* bitmap of pages that are not zero */
    uint32_t *received;         /* pages handed in, per chunk */
    uint8_t **staging;          /* per chunk: its non-zero pages */
    GByteArray *packed;         /* scratch: a chunk's stored pages */
    GByteArray *payload;        /* scratch: a record payload */
    uint8_t *cbuf;              /* scratch: compressed frame */
    size_t cbuf_cap;
};

static bool buffer_write(void *opaque, const void *buf, size_t len,
                         GError **errp)
{
    g_byte_array_append(opaque, buf, len);
    return true;
}

XssWriter *xss_writer_new(XssWriteFn *fn, void *opaque,
                          const XssWriterOptions *opts)
{
    XssWriter *w = g_new0(XssWriter, 1);
    w->fn = fn;
    w->opaque = opaque;
    w->chunk_size = opts && opts->chunk_size ? opts->chunk_size
                                             : XSS_CHUNK_SIZE_DEFAULT;
    w->level = opts && opts->zstd_level ? opts->zstd_level : XSS_ZSTD_LEVEL;
    g_assert(w->chunk_size % XSS_PAGE_SIZE == 0 &&
             w->chunk_size <= XSS_CHUNK_SIZE_MAX);
    w->sections = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        NULL);
    w->packed = g_byte_array_new();
    w->payload = g_byte_array_new();
    return w;
}

XssWriter *xss_writer_new_buffer(GByteArray *out,
                                 const XssWriterOptions *opts)
{
    return xss_writer_new(buffer_write, out, opts);
}

static void ram_state_free(XssWriter *w)
{
    if (w->staging) {
        for (uint32_t i = 0; i < w->nchunks; i++) {
            g_free(w->staging[i]);
        }
    }
    g_clear_pointer(&w->staging, g_free);
    g_clear_pointer(&w->received, g_free);
    g_clear_pointer(&w->seen, g_free);
    g_clear_pointer(&w->nonzero, g_free);
}

void xss_writer_free(XssWriter *w)
{
    if (!w) {
        return;
    }
    ram_state_free(w);
    g_hash_table_unref(w->sections);
    g_byte_array_unref(w->packed);
    g_byte_array_unref(w->payload);
    g_free(w->cbuf);
    if (w->cctx) {
        ZSTD_freeCCtx(w->cctx);
    }
    g_free(w);
}

uint64_t xss_writer_bytes(const XssWriter *w)
{
    return w->bytes;
}

static bool w_state(XssWriter *w, WriterState want, const char *what,
                    GError **errp)
{
    if (w->state == W_FAILED) {
        error_setg(errp, "%s: the stream already failed", what);
        return false;
    }
    if (w->state != want) {
        error_setg(errp, "%s: not allowed at this point of the stream",
                   what);
        return false;
    }
    return true;
}

static bool w_out(XssWriter *w, const void *buf, size_t len, GError **errp)
{
    if (!len) {
        return true;
    }
    if (!w->fn(w->opaque, buf, len, errp)) {
        w->state = W_FAILED;
        return false;
    }
    w->bytes += len;
    return true;
}

static bool w_record(XssWriter *w, uint32_t tag, uint32_t version,
                     uint32_t instance, const char *name,
                     const void *payload, size_t len, GError **errp)
{
    size_t nlen = strlen(name);
    g_assert(nlen <= REC_NAME_MAX);
    GByteArray *h = g_byte_array_sized_new(REC_FIXED + nlen + 4);
    put32(h, tag);
    put32(h, version);
    put32(h, instance);
    put64(h, len);
    put32(h, payload_sum(XSS_FORMAT_VERSION, payload, len));
    put8(h, (uint8_t)nlen);
    g_byte_array_append(h, (const uint8_t *)name, nlen);
    put32(h, crc32_of(h->data, h->len));
    bool ok = w_out(w, h->data, h->len, errp) &&
              w_out(w, payload, len, errp);
    g_byte_array_unref(h);
    if (ok) {
        w->records++;
    }
    return ok;
}

bool xss_writer_begin(XssWriter *w, const char *machine_type,
                      uint64_t ram_size, GError **errp)
{
    if (!w_state(w, W_NEW, "header", errp)) {
        return false;
    }
    size_t mlen = strlen(machine_type), vlen = strlen(XBLK_VERSION_STRING);
    if (mlen == 0 || mlen > XSS_MACHINE_TYPE_MAX) {
        error_setg(errp, "machine type '%s' must be 1-%d bytes",
                   machine_type, XSS_MACHINE_TYPE_MAX);
        return false;
    }
    if (ram_size == 0 || ram_size % XSS_PAGE_SIZE ||
        ram_size / w->chunk_size >= UINT32_MAX) {
        error_setg(errp, "RAM size %" PRIu64 " is not a non-zero multiple "
                   "of %u", ram_size, XSS_PAGE_SIZE);
        return false;
    }
    g_assert(vlen <= XSS_VERSION_STRING_MAX);
    GByteArray *h = g_byte_array_new();
    g_byte_array_append(h, (const uint8_t *)XSS_MAGIC, XSS_MAGIC_LEN);
    put32(h, XSS_FORMAT_VERSION);
    put32(h, (uint32_t)(XSS_HEADER_FIXED + 8 + 1 + mlen + 1 + vlen + 4));
    put64(h, ram_size);
    put8(h, (uint8_t)mlen);
    g_byte_array_append(h, (const uint8_t *)machine_type, mlen);
    put8(h, (uint8_t)vlen);
    g_byte_array_append(h, (const uint8_t *)XBLK_VERSION_STRING, vlen);
    put32(h, crc32_of(h->data, h->len));
    g_assert(h->len == get32(h->data + 12));
    bool ok = w_out(w, h->data, h->len, errp);
    g_byte_array_unref(h);
    if (ok) {
        w->state = W_OPEN;
        w->ram_size = ram_size;
    }
    return ok;
}

static bool meta_string(GByteArray *p, const char *s, const char *what,
                        GError **errp)
{
    size_t len = s ? strlen(s) : 0;
    if (len > 0xFFFF || (s && !g_utf8_validate(s, len, NULL))) {
        error_setg(errp, "metadata %s: longer than 65535 bytes or not "
                   "UTF-8", what);
        return false;
    }
    put16(p, (uint16_t)len);
    g_byte_array_append(p, (const uint8_t *)(s ? s : ""), len);
    return true;
}

bool xss_writer_metadata(XssWriter *w, const XssMetadata *md, GError **errp)
{
    if (!w_state(w, W_OPEN, "metadata", errp)) {
        return false;
    }
    if (w->have_meta) {
        error_setg(errp, "metadata: written twice");
        return false;
    }
    gsize png_len = 0;
    const uint8_t *png = md->thumbnail_png ?
        g_bytes_get_data(md->thumbnail_png, &png_len) : NULL;
    if (png_len > META_PNG_MAX ||
        (png_len && (png_len < 8 || memcmp(png, PNG_SIGNATURE, 8)))) {
        error_setg(errp, "metadata thumbnail: not a PNG of at most %u bytes",
                   META_PNG_MAX);
        return false;
    }
    GByteArray *p = w->payload;
    g_byte_array_set_size(p, 0);
    put64(p, md->frame);
    if (!meta_string(p, md->frame_hash, "frame hash", errp) ||
        !meta_string(p, md->disc_path, "disc path", errp) ||
        !meta_string(p, md->title, "title", errp)) {
        return false;
    }
    put16(p, md->thumb_width);
    put16(p, md->thumb_height);
    put32(p, (uint32_t)png_len);
    g_byte_array_append(p, png, png_len);
    if (!w_record(w, TAG_META, XSS_META_VERSION, 0, "meta", p->data, p->len,
                  errp)) {
        return false;
    }
    w->have_meta = true;
    return true;
}

bool xss_writer_device(XssWriter *w, const VMStateDescription *desc,
                       uint32_t instance, void *opaque, GError **errp)
{
    if (!w_state(w, W_OPEN, "device section", errp)) {
        return false;
    }
    g_autofree char *key = g_strdup_printf("%s/%u", desc->name, instance);
    if (g_hash_table_contains(w->sections, key)) {
        error_setg(errp, "section '%s' instance %u written twice",
                   desc->name, instance);
        return false;
    }
    GByteArray *p = w->payload;
    g_byte_array_set_size(p, 0);
    if (!vmstate_save(desc, opaque, p, errp)) {
        return false;
    }
    g_assert(p->len <= DEVS_MAX_LEN);
    if (!w_record(w, TAG_DEVS, (uint32_t)desc->version_id, instance,
                  desc->name, p->data, p->len, errp)) {
        return false;
    }
    g_hash_table_add(w->sections, g_steal_pointer(&key));
    return true;
}

bool xss_writer_devices(XssWriter *w, VMStateSet *set, GError **errp)
{
    for (guint i = 0; i < vmstate_set_count(set); i++) {
        const VMStateEntry *e = vmstate_set_entry(set, i);
        if (!xss_writer_device(w, e->desc, e->instance, e->opaque, errp)) {
            return false;
        }
    }
    return true;
}

/* ---- RAM ---- */

static uint32_t chunk_pages(uint64_t npages, uint32_t per_chunk,
                            uint32_t index)
{
    uint64_t first = (uint64_t)index * per_chunk;
    return (uint32_t)MIN((uint64_t)per_chunk, npages - first);
}

bool xss_writer_ram_begin(XssWriter *w, GError **errp)
{
    if (!w_state(w, W_OPEN, "RAM section", errp)) {
        return false;
    }
    if (w->have_ram) {
        error_setg(errp, "RAM section: written twice");
        return false;
    }
    w->npages = w->ram_size / XSS_PAGE_SIZE;
    w->pages_per_chunk = w->chunk_size / XSS_PAGE_SIZE;
    w->nchunks = (uint32_t)((w->npages + w->pages_per_chunk - 1) /
                            w->pages_per_chunk);
    w->chunks_done = 0;
    w->seen = g_malloc0((w->npages + 7) / 8);
    w->nonzero = g_malloc0((w->npages + 7) / 8);
    w->received = g_new0(uint32_t, w->nchunks);
    w->staging = g_new0(uint8_t *, w->nchunks);
    if (!w->cctx) {
        w->cctx = ZSTD_createCCtx();
        g_assert(w->cctx);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, w->level);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    }
    GByteArray *p = w->payload;
    g_byte_array_set_size(p, 0);
    put64(p, w->ram_size);
    put32(p, XSS_PAGE_SIZE);
    put32(p, w->chunk_size);
    put32(p, w->nchunks);
    put8(p, XSS_COMPRESS_ZSTD);
    g_assert(p->len == RAMH_LEN);
    if (!w_record(w, TAG_RAMH, XSS_RAM_VERSION, 0, "ram", p->data, p->len,
                  errp)) {
        ram_state_free(w);
        return false;
    }
    w->state = W_RAM;
    w->have_ram = true;
    return true;
}

/* All pages of chunk c arrived: compress its non-zero pages, write. */
static bool emit_chunk(XssWriter *w, uint32_t c, GError **errp)
{
    uint32_t n = chunk_pages(w->npages, w->pages_per_chunk, c);
    uint64_t first = (uint64_t)c * w->pages_per_chunk;
    uint32_t nb = (n + 7) / 8;
    GByteArray *p = w->payload;
    g_byte_array_set_size(p, 0);
    put32(p, n);
    guint bm_at = p->len;
    g_byte_array_set_size(p, p->len + nb);
    memset(p->data + bm_at, 0, nb);
    uint32_t stored = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (bit_test(w->nonzero, first + i)) {
            p->data[bm_at + i / 8] |= 1u << (i % 8);
            stored++;
        }
    }
    /* The stored pages, in page order: the staging buffer itself when
     * no page is zero (random RAM: no second copy), else packed. */
    const uint8_t *src = w->staging[c];
    size_t src_len = (size_t)stored * XSS_PAGE_SIZE;
    if (stored && stored < n) {
        g_byte_array_set_size(w->packed, 0);
        for (uint32_t i = 0; i < n; i++) {
            if (bit_test(w->nonzero, first + i)) {
                g_byte_array_append(w->packed,
                                    w->staging[c] +
                                    (size_t)i * XSS_PAGE_SIZE,
                                    XSS_PAGE_SIZE);
            }
        }
        src = w->packed->data;
    }
    size_t clen = 0;
    if (src_len) {
        size_t bound = ZSTD_compressBound(src_len);
        if (bound > w->cbuf_cap) {
            g_free(w->cbuf);
            w->cbuf = g_malloc(bound);
            w->cbuf_cap = bound;
        }
        clen = ZSTD_compress2(w->cctx, w->cbuf, w->cbuf_cap, src, src_len);
        if (ZSTD_isError(clen)) {
            error_setg(errp, "RAM chunk %u: zstd: %s", c,
                       ZSTD_getErrorName(clen));
            w->state = W_FAILED;
            return false;
        }
    }
    put32(p, (uint32_t)src_len);
    put32(p, (uint32_t)clen);
    g_byte_array_append(p, w->cbuf, clen);
    g_clear_pointer(&w->staging[c], g_free);
    if (!w_record(w, TAG_RAMC, XSS_RAM_VERSION, c, "ram", p->data, p->len,
                  errp)) {
        return false;
    }
    w->chunks_done++;
    return true;
}

bool xss_writer_ram_page(XssWriter *w, uint64_t page_index,
                         const void *data, GError **errp)
{
    if (!w_state(w, W_RAM, "RAM page", errp)) {
        return false;
    }
    if (page_index >= w->npages) {
        error_setg(errp, "RAM page %" PRIu64 " lies beyond the RAM size "
                   "(%" PRIu64 " pages)", page_index, w->npages);
        return false;
    }
    if (bit_test(w->seen, page_index)) {
        error_setg(errp, "RAM page %" PRIu64 " was handed in twice",
                   page_index);
        return false;
    }
    bit_set(w->seen, page_index);
    uint32_t c = (uint32_t)(page_index / w->pages_per_chunk);
    uint32_t i = (uint32_t)(page_index % w->pages_per_chunk);
    if (!page_is_zero(data)) {
        bit_set(w->nonzero, page_index);
        if (!w->staging[c]) {
            w->staging[c] = g_malloc((size_t)w->pages_per_chunk *
                                     XSS_PAGE_SIZE);
        }
        memcpy(w->staging[c] + (size_t)i * XSS_PAGE_SIZE, data,
               XSS_PAGE_SIZE);
    }
    if (++w->received[c] == chunk_pages(w->npages, w->pages_per_chunk, c)) {
        return emit_chunk(w, c, errp);
    }
    return true;
}

bool xss_writer_ram_end(XssWriter *w, GError **errp)
{
    if (!w_state(w, W_RAM, "end of RAM", errp)) {
        return false;
    }
    if (w->chunks_done != w->nchunks) {
        for (uint64_t pg = 0; pg < w->npages; pg++) {
            if (!bit_test(w->seen, pg)) {
                error_setg(errp, "RAM page %" PRIu64 " was never handed in",
                           pg);
                break;
            }
        }
        return false;
    }
    ram_state_free(w);
    w->state = W_OPEN;
    return true;
}

bool xss_writer_ram(XssWriter *w, XssPageNextFn *next, void *opaque,
                    GError **errp)
{
    if (!xss_writer_ram_begin(w, errp)) {
        return false;
    }
    for (;;) {
        uint64_t idx;
        const void *data;
        int r = next(opaque, &idx, &data, errp);
        if (r < 0) {
            error_prepend(errp, "RAM iterator: ");
            return false;
        }
        if (r == 0) {
            break;
        }
        if (!xss_writer_ram_page(w, idx, data, errp)) {
            return false;
        }
    }
    return xss_writer_ram_end(w, errp);
}

typedef struct LinearIter {
    const uint8_t *ram;
    uint64_t next, npages;
} LinearIter;

static int linear_next(void *opaque, uint64_t *page_index, const void **data,
                       GError **errp)
{
    LinearIter *it = opaque;
    if (it->next == it->npages) {
        return 0;
    }
    *page_index = it->next;
    *data = it->ram + it->next * XSS_PAGE_SIZE;
    it->next++;
    return 1;
}

bool xss_writer_ram_linear(XssWriter *w, const void *ram, GError **errp)
{
    LinearIter it = { ram, 0, w->ram_size / XSS_PAGE_SIZE };
    return xss_writer_ram(w, linear_next, &it, errp);
}

bool xss_writer_finish(XssWriter *w, GError **errp)
{
    if (!w_state(w, W_OPEN, "end marker", errp)) {
        return false;
    }
    GByteArray *p = w->payload;
    g_byte_array_set_size(p, 0);
    put64(p, w->records);
    put64(p, w->bytes);
    if (!w_record(w, TAG_END, XSS_END_VERSION, 0, "end", p->data, p->len,
                  errp)) {
        return false;
    }
    w->state = W_DONE;
    return true;
}

/* ======================================================================
 * Reader
 * ====================================================================== */

typedef struct XssRecord {
    uint32_t tag;
    uint32_t version;
    uint32_t instance;
    uint32_t payload_crc;
    uint64_t offset;            /* of the record header */
    uint64_t payload_offset;
    uint64_t payload_len;
    const char *name;           /* interned in the reader's names */
} XssRecord;

struct XssReader {
    XssReadFn *fn;
    void *opaque;
    uint64_t size;
    bool owns_opaque;           /* a BufSource of open_buffer */
    uint32_t header_len;
    XssHeader hdr;
    GArray *recs;               /* XssRecord, in stream order */
    GHashTable *sections;       /* "name/instance" of the DEVS records */
    GStringChunk *names;        /* record names */
    int meta;                   /* record index or -1 */
    bool have_ram;
    XssRamLayout ram;
    uint32_t *chunk_rec;        /* record index of each chunk */
    ZSTD_DCtx *dctx;
    uint8_t *payload;           /* the last payload read */
    size_t payload_cap;
    uint8_t *chunk_buf;         /* chunk_size: the last chunk decoded */
    uint8_t *present;           /* its page bitmap */
};

typedef struct BufSource {
    const uint8_t *buf;
} BufSource;

static bool buf_read(void *opaque, uint64_t offset, void *buf, size_t len,
                     GError **errp)
{
    BufSource *s = opaque;
    memcpy(buf, s->buf + offset, len);
    return true;
}

static bool r_read(XssReader *r, uint64_t off, void *buf, size_t len,
                   GError **errp)
{
    if (off > r->size || len > r->size - off) {
        error_setg(errp, "truncated: %zu bytes at offset %" PRIu64 " run "
                   "past the end of the stream (%" PRIu64 " bytes)", len,
                   off, r->size);
        return false;
    }
    return !len || r->fn(r->opaque, off, buf, len, errp);
}

static const char *rec_label(const XssRecord *rec, char *buf, size_t size)
{
    switch (rec->tag) {
    case TAG_RAMC:
        g_snprintf(buf, size, "section 'ram' chunk %u", rec->instance);
        break;
    case TAG_DEVS:
        g_snprintf(buf, size, "section '%s' instance %u", rec->name,
                   rec->instance);
        break;
    default:
        g_snprintf(buf, size, "section '%s'", rec->name);
        break;
    }
    return buf;
}

/* Reads the payload of rec into r->payload and checks its CRC. */
static const uint8_t *r_payload(XssReader *r, const XssRecord *rec,
                                GError **errp)
{
    char label[300];
    size_t len = (size_t)rec->payload_len;
    if (len > r->payload_cap) {
        g_free(r->payload);
        r->payload = g_malloc(len);
        r->payload_cap = len;
    }
    if (!r_read(r, rec->payload_offset, r->payload, len, errp)) {
        error_prepend(errp, "%s: ", rec_label(rec, label, sizeof(label)));
        return NULL;
    }
    if (payload_sum(r->hdr.format_version, r->payload, len) !=
        rec->payload_crc) {
        error_setg(errp, "%s: checksum mismatch (damaged)",
                   rec_label(rec, label, sizeof(label)));
        return NULL;
    }
    return r->payload ? r->payload : (const uint8_t *)"";
}

static bool parse_header(XssReader *r, GError **errp)
{
    uint8_t fixed[XSS_HEADER_FIXED];
    if (r->size < XSS_HEADER_FIXED) {
        error_setg(errp, "not an xblk save state: %" PRIu64 " bytes is too "
                   "short", r->size);
        return false;
    }
    if (!r_read(r, 0, fixed, sizeof(fixed), errp)) {
        return false;
    }
    if (memcmp(fixed, XSS_MAGIC, XSS_MAGIC_LEN)) {
        error_setg(errp, "not an xblk save state (bad magic)");
        return false;
    }
    uint32_t version = get32(fixed + 8), hlen = get32(fixed + 12);
    if (version > XSS_FORMAT_VERSION) {
        error_setg(errp, "save-state format version %u is newer than this "
                   "xblk supports (%d)", version, XSS_FORMAT_VERSION);
        return false;
    }
    if (version == 0) {
        error_setg(errp, "save-state format version 0 is invalid");
        return false;
    }
    if (hlen < XSS_HEADER_MIN || hlen > XSS_HEADER_MAX || hlen > r->size) {
        error_setg(errp, "header: length %u is invalid", hlen);
        return false;
    }
    g_autofree uint8_t *h = g_malloc(hlen);
    if (!r_read(r, 0, h, hlen, errp)) {
        return false;
    }
    if (crc32_of(h, hlen - 4) != get32(h + hlen - 4)) {
        error_setg(errp, "header: checksum mismatch (damaged)");
        return false;
    }
    Cur c = { h + XSS_HEADER_FIXED, h + hlen - 4 };
    const uint8_t *b, *s;
    uint8_t mlen, vlen;
    if (!(b = cur_take(&c, 9)) || (mlen = b[8]) == 0 ||
        mlen > XSS_MACHINE_TYPE_MAX || !(s = cur_take(&c, mlen))) {
        goto bad;
    }
    r->hdr.ram_size = get64(b);
    memcpy(r->hdr.machine_type, s, mlen);
    if (!(b = cur_take(&c, 1)) || (vlen = b[0]) > XSS_VERSION_STRING_MAX ||
        !(s = cur_take(&c, vlen))) {
        goto bad;
    }
    memcpy(r->hdr.xblk_version, s, vlen);
    /* Version 1 has nothing more; a later version may add fields here. */
    if (c.p != c.end || memchr(r->hdr.machine_type, 0, mlen) ||
        memchr(r->hdr.xblk_version, 0, vlen) || r->hdr.ram_size == 0 ||
        r->hdr.ram_size % XSS_PAGE_SIZE) {
        goto bad;
    }
    r->hdr.format_version = version;
    r->header_len = hlen;
    return true;
bad:
    error_setg(errp, "header: malformed");
    return false;
}

static bool parse_ramh(XssReader *r, const XssRecord *rec, GError **errp)
{
    if (rec->payload_len != RAMH_LEN) {
        error_setg(errp, "section 'ram': header of %" PRIu64 " bytes, "
                   "expected %d", rec->payload_len, RAMH_LEN);
        return false;
    }
    const uint8_t *p = r_payload(r, rec, errp);
    if (!p) {
        return false;
    }
    XssRamLayout l = {
        .ram_size = get64(p), .page_size = get32(p + 8),
        .chunk_size = get32(p + 12), .chunk_count = get32(p + 16),
    };
    uint8_t comp = p[20];
    if (l.ram_size != r->hdr.ram_size) {
        error_setg(errp, "section 'ram': RAM size %" PRIu64 " differs from "
                   "the header's %" PRIu64, l.ram_size, r->hdr.ram_size);
        return false;
    }
    if (l.page_size != XSS_PAGE_SIZE || l.chunk_size == 0 ||
        l.chunk_size % l.page_size || l.chunk_size > XSS_CHUNK_SIZE_MAX ||
        (l.ram_size + l.chunk_size - 1) / l.chunk_size != l.chunk_count ||
        comp != XSS_COMPRESS_ZSTD) {
        error_setg(errp, "section 'ram': unsupported layout (page %u, chunk "
                   "%u, %u chunks, compression %u)", l.page_size,
                   l.chunk_size, l.chunk_count, comp);
        return false;
    }
    /* Every chunk needs a record: refuse a count the stream cannot hold
     * before allocating anything for it. */
    if (l.chunk_count > (r->size - rec->payload_offset) / RAMC_MIN_RECORD) {
        error_setg(errp, "section 'ram': %u chunks cannot fit in the %"
                   PRIu64 " bytes left (truncated?)", l.chunk_count,
                   r->size - rec->payload_offset);
        return false;
    }
    r->ram = l;
    r->have_ram = true;
    r->chunk_rec = g_new(uint32_t, l.chunk_count);
    memset(r->chunk_rec, 0xFF, sizeof(uint32_t) * l.chunk_count);
    r->chunk_buf = g_malloc(l.chunk_size);
    r->present = g_malloc0(l.chunk_size / l.page_size / 8 + 1);
    return true;
}

/* The most a chunk's payload can be: count, bitmap, two lengths and a
 * zstd frame of every page. */
static uint64_t ramc_max_len(const XssRamLayout *l)
{
    uint32_t pages = l->chunk_size / l->page_size;
    return 4 + (pages + 7) / 8 + 8 + ZSTD_compressBound(l->chunk_size);
}

static bool version_ok(const XssRecord *rec, uint32_t supported,
                       GError **errp)
{
    char label[300];
    if (rec->version > supported || rec->version == 0) {
        error_setg(errp, "%s: version %u is %s this xblk supports (%u)",
                   rec_label(rec, label, sizeof(label)), rec->version,
                   rec->version ? "newer than" : "not one", supported);
        return false;
    }
    return true;
}

/* Reads the record header at off; checks its CRC and bounds. */
static bool read_record(XssReader *r, uint64_t off, XssRecord *rec,
                        GError **errp)
{
    uint8_t h[REC_FIXED + REC_NAME_MAX + 4];
    if (!r_read(r, off, h, REC_FIXED, errp)) {
        error_prepend(errp, "record at offset %" PRIu64 ": ", off);
        return false;
    }
    uint8_t nlen = h[REC_FIXED - 1];
    if (!r_read(r, off + REC_FIXED, h + REC_FIXED, nlen + 4u, errp)) {
        error_prepend(errp, "record at offset %" PRIu64 ": ", off);
        return false;
    }
    if (crc32_of(h, REC_FIXED + nlen) != get32(h + REC_FIXED + nlen)) {
        error_setg(errp, "record at offset %" PRIu64 ": header checksum "
                   "mismatch (damaged)", off);
        return false;
    }
    *rec = (XssRecord){
        .tag = get32(h), .version = get32(h + 4), .instance = get32(h + 8),
        .payload_len = get64(h + 12), .payload_crc = get32(h + 20),
        .offset = off, .payload_offset = off + REC_FIXED + nlen + 4,
    };
    char name[REC_NAME_MAX + 1];
    memcpy(name, h + REC_FIXED, nlen);
    name[nlen] = 0;
    rec->name = g_string_chunk_insert_const(r->names, name);
    char label[300];
    if (memchr(name, 0, nlen)) {
        error_setg(errp, "record at offset %" PRIu64 ": malformed name", off);
        return false;
    }
    if (rec->payload_offset > r->size ||
        rec->payload_len > r->size - rec->payload_offset) {
        error_setg(errp, "%s: truncated (payload of %" PRIu64 " bytes at "
                   "offset %" PRIu64 ", stream of %" PRIu64 ")",
                   rec_label(rec, label, sizeof(label)), rec->payload_len,
                   rec->payload_offset, r->size);
        return false;
    }
    return true;
}

/* Checks one record in stream order and files it. */
static bool index_record(XssReader *r, XssRecord *rec, GError **errp)
{
    char tag[5], label[300];
    switch (rec->tag) {
    case TAG_DEVS:
        if (!rec->name[0] || rec->payload_len > DEVS_MAX_LEN) {
            error_setg(errp, "%s: malformed (empty name or %" PRIu64
                       " bytes)", rec_label(rec, label, sizeof(label)),
                       rec->payload_len);
            return false;
        }
        if (g_hash_table_size(r->sections) >= XSS_MAX_DEVICE_SECTIONS) {
            error_setg(errp, "more than %d device sections",
                       XSS_MAX_DEVICE_SECTIONS);
            return false;
        }
        {
            char *key = g_strdup_printf("%s/%u", rec->name, rec->instance);
            if (!g_hash_table_add(r->sections, key)) {
                error_setg(errp, "%s appears twice",
                           rec_label(rec, label, sizeof(label)));
                return false;
            }
        }
        break;
    case TAG_META:
        if (!version_ok(rec, XSS_META_VERSION, errp)) {
            return false;
        }
        if (r->meta >= 0 || rec->payload_len > META_MAX_LEN) {
            error_setg(errp, "section 'meta': appears twice or too long");
            return false;
        }
        r->meta = r->recs->len;
        break;
    case TAG_RAMH:
        if (!version_ok(rec, XSS_RAM_VERSION, errp)) {
            return false;
        }
        if (r->have_ram) {
            error_setg(errp, "section 'ram' appears twice");
            return false;
        }
        if (!parse_ramh(r, rec, errp)) {
            return false;
        }
        break;
    case TAG_RAMC:
        if (!version_ok(rec, XSS_RAM_VERSION, errp)) {
            return false;
        }
        if (!r->have_ram || rec->instance >= r->ram.chunk_count) {
            error_setg(errp, "%s: %s", rec_label(rec, label, sizeof(label)),
                       r->have_ram ? "beyond the RAM size"
                                   : "before the RAM header");
            return false;
        }
        if (r->chunk_rec[rec->instance] != UINT32_MAX) {
            error_setg(errp, "%s appears twice",
                       rec_label(rec, label, sizeof(label)));
            return false;
        }
        if (rec->payload_len > ramc_max_len(&r->ram)) {
            error_setg(errp, "%s: %" PRIu64 " bytes is too long",
                       rec_label(rec, label, sizeof(label)),
                       rec->payload_len);
            return false;
        }
        r->chunk_rec[rec->instance] = r->recs->len;
        break;
    case TAG_END:
        break;
    default:
        tag_name(rec->tag, tag);
        error_setg(errp, "unknown section tag '%s' (name '%s') at offset %"
                   PRIu64 ": written by a newer xblk?", tag, rec->name,
                   rec->offset);
        return false;
    }
    g_array_append_val(r->recs, *rec);
    return true;
}

static bool check_end(XssReader *r, const XssRecord *rec, GError **errp)
{
    if (!version_ok(rec, XSS_END_VERSION, errp)) {
        return false;
    }
    if (rec->payload_len != END_LEN) {
        error_setg(errp, "end marker: malformed");
        return false;
    }
    const uint8_t *p = r_payload(r, rec, errp);
    if (!p) {
        return false;
    }
    if (get64(p) != r->recs->len - 1 || get64(p + 8) != rec->offset) {
        error_setg(errp, "end marker: the stream has %u records before it "
                   "at offset %" PRIu64 ", the marker says %" PRIu64 " at %"
                   PRIu64 " (records lost or added)", r->recs->len - 1,
                   rec->offset, get64(p), get64(p + 8));
        return false;
    }
    uint64_t end = rec->payload_offset + rec->payload_len;
    if (end != r->size) {
        error_setg(errp, "%" PRIu64 " bytes of trailing data after the end "
                   "marker", r->size - end);
        return false;
    }
    return true;
}

XssReader *xss_reader_open(XssReadFn *fn, void *opaque, uint64_t size,
                           GError **errp)
{
    XssReader *r = g_new0(XssReader, 1);
    r->fn = fn;
    r->opaque = opaque;
    r->size = size;
    r->meta = -1;
    r->recs = g_array_new(FALSE, FALSE, sizeof(XssRecord));
    r->sections = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        NULL);
    r->names = g_string_chunk_new(256);
    if (!parse_header(r, errp)) {
        goto fail;
    }
    uint64_t off = r->header_len;
    for (;;) {
        XssRecord rec;
        if (off == r->size) {
            error_setg(errp, "truncated: the stream ends without its end "
                       "marker after %u records", r->recs->len);
            goto fail;
        }
        if (!read_record(r, off, &rec, errp) ||
            !index_record(r, &rec, errp)) {
            goto fail;
        }
        off = rec.payload_offset + rec.payload_len;
        if (rec.tag == TAG_END) {
            if (!check_end(r, &rec, errp)) {
                goto fail;
            }
            break;
        }
    }
    if (r->have_ram) {
        for (uint32_t i = 0; i < r->ram.chunk_count; i++) {
            if (r->chunk_rec[i] == UINT32_MAX) {
                error_setg(errp, "section 'ram' chunk %u is missing", i);
                goto fail;
            }
        }
    }
    r->dctx = ZSTD_createDCtx();
    g_assert(r->dctx);
    return r;
fail:
    xss_reader_free(r);
    return NULL;
}

XssReader *xss_reader_open_buffer(const void *buf, size_t len,
                                  GError **errp)
{
    BufSource *src = g_new(BufSource, 1);
    src->buf = buf;
    XssReader *r = xss_reader_open(buf_read, src, len, errp);
    if (!r) {
        g_free(src);
        return NULL;
    }
    r->owns_opaque = true;
    return r;
}

void xss_reader_free(XssReader *r)
{
    if (!r) {
        return;
    }
    if (r->owns_opaque) {
        g_free(r->opaque);
    }
    g_array_unref(r->recs);
    g_hash_table_unref(r->sections);
    g_string_chunk_free(r->names);
    g_free(r->chunk_rec);
    g_free(r->payload);
    g_free(r->chunk_buf);
    g_free(r->present);
    if (r->dctx) {
        ZSTD_freeDCtx(r->dctx);
    }
    g_free(r);
}

const XssHeader *xss_reader_header(const XssReader *r)
{
    return &r->hdr;
}

bool xss_reader_check_machine(const XssReader *r, const char *machine_type,
                              uint64_t ram_size, GError **errp)
{
    if (strcmp(r->hdr.machine_type, machine_type)) {
        error_setg(errp, "the state is of machine type '%s', not '%s'",
                   r->hdr.machine_type, machine_type);
        return false;
    }
    if (r->hdr.ram_size != ram_size) {
        error_setg(errp, "the state has %" PRIu64 " MiB of RAM, this "
                   "machine %" PRIu64 " MiB", r->hdr.ram_size >> 20,
                   ram_size >> 20);
        return false;
    }
    return true;
}

bool xss_reader_ram_layout(const XssReader *r, XssRamLayout *out)
{
    if (!r->have_ram) {
        return false;
    }
    *out = r->ram;
    return true;
}

/* ---- metadata ---- */

static bool meta_take_string(Cur *c, char **out)
{
    const uint8_t *b = cur_take(c, 2), *s;
    if (!b || !(s = cur_take(c, get16(b)))) {
        return false;
    }
    size_t len = get16(b);
    if (memchr(s, 0, len) || !g_utf8_validate((const char *)s, len, NULL)) {
        return false;
    }
    *out = len ? g_strndup((const char *)s, len) : NULL;
    return true;
}

bool xss_reader_metadata(XssReader *r, XssMetadata *out, GError **errp)
{
    *out = (XssMetadata){ 0 };
    if (r->meta < 0) {
        error_setg(errp, "the state has no metadata section");
        return false;
    }
    const XssRecord *rec = &g_array_index(r->recs, XssRecord, r->meta);
    const uint8_t *p = r_payload(r, rec, errp);
    if (!p) {
        return false;
    }
    Cur c = { p, p + rec->payload_len };
    const uint8_t *b;
    XssMetadata md = { 0 };
    if (!(b = cur_take(&c, 8))) {
        goto bad;
    }
    md.frame = get64(b);
    if (!meta_take_string(&c, &md.frame_hash) ||
        !meta_take_string(&c, &md.disc_path) ||
        !meta_take_string(&c, &md.title) || !(b = cur_take(&c, 8))) {
        goto bad;
    }
    md.thumb_width = get16(b);
    md.thumb_height = get16(b + 2);
    uint32_t png_len = get32(b + 4);
    const uint8_t *png = cur_take(&c, png_len);
    if (!png || c.p != c.end || png_len > META_PNG_MAX ||
        (png_len && (png_len < 8 || memcmp(png, PNG_SIGNATURE, 8)))) {
        goto bad;
    }
    if (png_len) {
        md.thumbnail_png = g_bytes_new(png, png_len);
    }
    *out = md;
    return true;
bad:
    xss_metadata_clear(&md);
    error_setg(errp, "section 'meta': malformed");
    return false;
}

/* ---- RAM chunks ---- */

static bool decode_chunk(XssReader *r, uint32_t index, XssChunk *out,
                         GError **errp)
{
    const XssRamLayout *l = &r->ram;
    const XssRecord *rec = &g_array_index(r->recs, XssRecord,
                                          r->chunk_rec[index]);
    uint64_t npages = l->ram_size / l->page_size;
    uint32_t per = l->chunk_size / l->page_size;
    uint32_t n = chunk_pages(npages, per, index);
    uint32_t nb = (n + 7) / 8;
    const uint8_t *p = r_payload(r, rec, errp);
    if (!p) {
        return false;
    }
    Cur c = { p, p + rec->payload_len };
    const uint8_t *b, *bm, *lens, *frame;
    if (!(b = cur_take(&c, 4)) || get32(b) != n || !(bm = cur_take(&c, nb)) ||
        !(lens = cur_take(&c, 8))) {
        error_setg(errp, "section 'ram' chunk %u: malformed", index);
        return false;
    }
    uint32_t stored = get32(lens), clen = get32(lens + 4);
    uint32_t count = 0;
    for (uint32_t i = 0; i < nb * 8; i++) {
        if (bit_test(bm, i)) {
            if (i >= n) {
                error_setg(errp, "section 'ram' chunk %u: bitmap names page "
                           "%u of %u", index, i, n);
                return false;
            }
            count++;
        }
    }
    if ((uint64_t)count * l->page_size != stored || !(frame = cur_take(&c,
        clen)) || c.p != c.end || (stored == 0) != (clen == 0)) {
        error_setg(errp, "section 'ram' chunk %u: malformed (lengths)",
                   index);
        return false;
    }
    if (stored) {
        unsigned long long csize = ZSTD_findFrameCompressedSize(frame, clen);
        unsigned long long content = ZSTD_getFrameContentSize(frame, clen);
        if (ZSTD_isError(csize) || csize != clen || content != stored) {
            error_setg(errp, "section 'ram' chunk %u: malformed zstd frame",
                       index);
            return false;
        }
        size_t got = ZSTD_decompressDCtx(r->dctx, r->chunk_buf, stored,
                                         frame, clen);
        if (ZSTD_isError(got) || got != stored) {
            error_setg(errp, "section 'ram' chunk %u: zstd: %s", index,
                       ZSTD_isError(got) ? ZSTD_getErrorName(got)
                                         : "short output");
            return false;
        }
    }
    /* Spread the stored pages to their slots, last first (a slot is
     * never before its packed position), zeroing the others. */
    uint32_t k = count;
    for (uint32_t i = n; i-- > 0;) {
        uint8_t *slot = r->chunk_buf + (size_t)i * l->page_size;
        if (bit_test(bm, i)) {
            k--;
            if (k != i) {
                memmove(slot, r->chunk_buf + (size_t)k * l->page_size,
                        l->page_size);
            }
        } else {
            memset(slot, 0, l->page_size);
        }
    }
    memcpy(r->present, bm, nb);
    *out = (XssChunk){
        .index = index, .gpa = (uint64_t)index * l->chunk_size,
        .len = (size_t)n * l->page_size, .pages = n, .data = r->chunk_buf,
        .present = r->present,
    };
    return true;
}

bool xss_reader_read_chunk(XssReader *r, uint32_t index, XssChunk *out,
                           GError **errp)
{
    if (!r->have_ram) {
        error_setg(errp, "the state has no RAM section");
        return false;
    }
    if (index >= r->ram.chunk_count) {
        error_setg(errp, "RAM chunk %u does not exist (%u chunks)", index,
                   r->ram.chunk_count);
        return false;
    }
    return decode_chunk(r, index, out, errp);
}

bool xss_reader_foreach_chunk(XssReader *r, XssChunkFn *fn, void *opaque,
                              GError **errp)
{
    if (!r->have_ram) {
        error_setg(errp, "the state has no RAM section");
        return false;
    }
    for (uint32_t i = 0; i < r->ram.chunk_count; i++) {
        XssChunk ch;
        if (!decode_chunk(r, i, &ch, errp) || !fn(opaque, &ch, errp)) {
            return false;
        }
    }
    return true;
}

bool xss_reader_verify(XssReader *r, GError **errp)
{
    for (guint i = 0; i < r->recs->len; i++) {
        const XssRecord *rec = &g_array_index(r->recs, XssRecord, i);
        if (rec->tag == TAG_RAMC) {
            XssChunk ch;
            if (!decode_chunk(r, rec->instance, &ch, errp)) {
                return false;
            }
        } else if (!r_payload(r, rec, errp)) {
            return false;
        }
    }
    if (r->meta >= 0) {
        XssMetadata md;
        if (!xss_reader_metadata(r, &md, errp)) {
            return false;
        }
        xss_metadata_clear(&md);
    }
    return true;
}

/* ---- devices and the whole load ---- */

VMStateSetLoad *xss_reader_prepare_devices(XssReader *r, VMStateSet *set,
                                           GError **errp)
{
    VMStateSetLoad *l = vmstate_set_load_begin(set);
    for (guint i = 0; i < r->recs->len; i++) {
        const XssRecord *rec = &g_array_index(r->recs, XssRecord, i);
        if (rec->tag != TAG_DEVS) {
            continue;
        }
        const uint8_t *p = r_payload(r, rec, errp);
        if (!p || rec->version > INT32_MAX ||
            !vmstate_set_load_add(l, rec->name, rec->instance,
                                  (int)rec->version, p,
                                  (size_t)rec->payload_len, errp)) {
            if (p && rec->version > INT32_MAX) {
                error_setg(errp, "section '%s' instance %u: version %u is "
                           "newer than this xblk supports", rec->name,
                           rec->instance, rec->version);
            }
            vmstate_set_load_free(l);
            return NULL;
        }
    }
    if (!vmstate_set_load_check_complete(l, errp)) {
        vmstate_set_load_free(l);
        return NULL;
    }
    return l;
}

bool xss_load(XssReader *r, VMStateSet *set, XssChunkFn *ram_fn,
              void *ram_opaque, GError **errp)
{
    if (ram_fn && !r->have_ram) {
        error_setg(errp, "the state has no RAM section");
        return false;
    }
    VMStateSetLoad *l = xss_reader_prepare_devices(r, set, errp);
    if (!l) {
        return false;
    }
    /* Decode everything once before the first change. */
    if (!xss_reader_verify(r, errp)) {
        vmstate_set_load_free(l);
        return false;
    }
    if (ram_fn && !xss_reader_foreach_chunk(r, ram_fn, ram_opaque, errp)) {
        error_prepend(errp, "loading RAM failed after the checks (the "
                      "machine is partly loaded): ");
        vmstate_set_load_free(l);
        return false;
    }
    bool ok = vmstate_set_load_commit(l, errp);
    vmstate_set_load_free(l);
    return ok;
}
