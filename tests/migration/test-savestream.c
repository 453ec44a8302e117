/*
 * test-savestream.c - the save-state stream (migration/savestream.c) with
 * the whole console of machine-test.h.
 *
 * Covers: a busy machine saved, loaded into another whose clock reads
 * something else, saved again: identical bytes, and both behave the
 * same; metadata; RAM pages handed in any order (shuffled, several chunk
 * sizes, a RAM size that is not a multiple of the chunk) and the
 * writer's refusals (a page twice, beyond RAM, missing, calls out of
 * order); every refusal of the issue - a newer format or section
 * version, an unknown section tag or device, a missing section, a
 * truncated stream (at every record boundary and many other lengths), a
 * bit flip in a RAM chunk or in a record header, a chunk whose zstd data
 * is bad under a valid checksum, trailing bytes - each naming what it
 * refuses and leaving the target machine exactly as it was; the
 * committed fixtures (tests/migration/fixtures/xbox-v1.xss at format
 * version 1, xbox-v2.xss at format version 2), which must keep loading; and a fuzzer: thousands of random mutations
 * of a valid stream (raw, and with checksums repaired so that the
 * mutations reach the section decoders and the devices), after which the
 * machine must still run.
 *
 * A fixture is written by this program, at the format version it writes:
 *     build/tests/migration/test-savestream --write-fixture \
 *         tests/migration/fixtures/xbox-vN.xss
 * (tm_scenario() of machine-test.h).  Never regenerate one: a new format
 * or section version gets a new fixture, and the old ones must keep
 * loading.
 */
#include "tests/migration/machine-test.h"
#include "util/version.h"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#define FIXTURE_V1 "tests/migration/fixtures/xbox-v1.xss"
#define FIXTURE_V2 "tests/migration/fixtures/xbox-v2.xss"

/* ---- a stream editor: records in, records out, checksums redone ---- */

typedef struct Rec {
    char tag[5];
    uint32_t version, instance;
    char name[256];
    GByteArray *payload;
} Rec;

typedef struct Stream {
    GByteArray *header;
    GPtrArray *recs;            /* Rec *, without the end marker */
} Stream;

static uint32_t le32(const uint8_t *b)
{
    return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

static void put_le(GByteArray *a, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        uint8_t b = v >> (8 * i);
        g_byte_array_append(a, &b, 1);
    }
}

static uint32_t crc(const void *p, size_t n)
{
    return crc32(0, p, n);
}

/* A record's payload checksum in the format version the writer uses
 * (docs/savestate.md: CRC-32 in version 1, XXH3-64's low half since). */
static uint32_t payload_sum(const void *p, size_t n)
{
    G_STATIC_ASSERT(XSS_FORMAT_VERSION == 2);
    return (uint32_t)XXH3_64bits(p, n);
}

static void rec_free(gpointer p)
{
    Rec *r = p;
    g_byte_array_unref(r->payload);
    g_free(r);
}

static Stream *stream_parse(const GByteArray *a)
{
    Stream *s = g_new0(Stream, 1);
    uint32_t hlen = le32(a->data + 12);
    s->header = g_byte_array_new();
    g_byte_array_append(s->header, a->data, hlen);
    s->recs = g_ptr_array_new_with_free_func(rec_free);
    size_t off = hlen;
    while (off < a->len) {
        const uint8_t *h = a->data + off;
        Rec *r = g_new0(Rec, 1);
        memcpy(r->tag, h, 4);
        r->version = le32(h + 4);
        r->instance = le32(h + 8);
        uint64_t plen = le32(h + 12) | (uint64_t)le32(h + 16) << 32;
        uint8_t nlen = h[24];
        memcpy(r->name, h + 25, nlen);
        off += 25 + nlen + 4;
        r->payload = g_byte_array_new();
        g_byte_array_append(r->payload, a->data + off, plen);
        off += plen;
        if (!strcmp(r->tag, "ENDM")) {
            rec_free(r);
            break;
        }
        g_ptr_array_add(s->recs, r);
    }
    g_assert_cmpuint(off, ==, a->len);
    return s;
}

static void emit_rec(GByteArray *out, const char *tag, uint32_t version,
                     uint32_t instance, const char *name, const uint8_t *p,
                     size_t len)
{
    guint at = out->len;
    g_byte_array_append(out, (const uint8_t *)tag, 4);
    put_le(out, version, 4);
    put_le(out, instance, 4);
    put_le(out, len, 8);
    put_le(out, payload_sum(p, len), 4);
    put_le(out, strlen(name), 1);
    g_byte_array_append(out, (const uint8_t *)name, strlen(name));
    put_le(out, crc(out->data + at, out->len - at), 4);
    g_byte_array_append(out, p, len);
}

/* The stream with valid checksums and end marker. */
static GByteArray *stream_build(const Stream *s)
{
    GByteArray *out = g_byte_array_new();
    g_byte_array_append(out, s->header->data, s->header->len);
    uint32_t hcrc = crc(out->data, out->len - 4);
    memcpy(out->data + out->len - 4, &hcrc, 4);
    for (guint i = 0; i < s->recs->len; i++) {
        Rec *r = s->recs->pdata[i];
        emit_rec(out, r->tag, r->version, r->instance, r->name,
                 r->payload->data, r->payload->len);
    }
    GByteArray *end = g_byte_array_new();
    put_le(end, s->recs->len, 8);
    put_le(end, out->len, 8);
    emit_rec(out, "ENDM", 1, 0, "end", end->data, end->len);
    g_byte_array_unref(end);
    return out;
}

static void stream_free(Stream *s)
{
    g_byte_array_unref(s->header);
    g_ptr_array_unref(s->recs);
    g_free(s);
}

static Rec *stream_find(Stream *s, const char *tag, const char *name,
                        uint32_t instance)
{
    for (guint i = 0; i < s->recs->len; i++) {
        Rec *r = s->recs->pdata[i];
        if (!strcmp(r->tag, tag) && (!name || !strcmp(r->name, name)) &&
            r->instance == instance) {
            return r;
        }
    }
    g_assert_not_reached();
}

/* ---- machines ---- */

/* A fingerprint of everything a load may change: RAM and every device
 * section. */
static GByteArray *fingerprint(TestMachine *tm)
{
    GByteArray *a = g_byte_array_new();
    GError *err = NULL;
    XXH64_hash_t h = XXH64(tm->th->ram, TM_RAM, 0);
    g_byte_array_append(a, (const uint8_t *)&h, sizeof(h));
    for (guint i = 0; i < vmstate_set_count(tm->set); i++) {
        const VMStateEntry *e = vmstate_set_entry(tm->set, i);
        g_assert_true(vmstate_save(e->desc, e->opaque, a, &err));
        g_assert_no_error(err);
    }
    return a;
}

/* Loading buf into tm must be refused with a message containing want,
 * and tm must not change. */
static void expect_refused(TestMachine *tm, const GByteArray *buf,
                           const char *want)
{
    g_autoptr(GByteArray) before = fingerprint(tm);
    GError *err = NULL;
    g_assert_false(tm_load(tm, buf->data, buf->len, &err));
    g_assert_nonnull(err);
    if (want && !strstr(err->message, want)) {
        g_error("message '%s' lacks '%s'", err->message, want);
    }
    g_error_free(err);
    g_autoptr(GByteArray) after = fingerprint(tm);
    g_assert_cmpmem(before->data, before->len, after->data, after->len);
}

static void test_save_load_save(void)
{
    TestMachine *a = tm_new("a", 777), *b = tm_new("b", 1ll << 42);
    tm_scenario(a);
    g_autoptr(GByteArray) s1 = tm_save(a);
    GError *err = NULL;
    g_assert_true(tm_load(b, s1->data, s1->len, &err));
    g_assert_no_error(err);
    g_autoptr(GByteArray) s2 = tm_save(b);
    g_assert_cmpmem(s1->data, s1->len, s2->data, s2->len);
    GString *la = tm_exercise(a), *lb = tm_exercise(b);
    g_assert_cmpstr(la->str, ==, lb->str);
    g_string_free(la, TRUE);
    g_string_free(lb, TRUE);

    /* The header and the menu's metadata. */
    XssReader *r = xss_reader_open_buffer(s1->data, s1->len, &err);
    g_assert_no_error(err);
    const XssHeader *h = xss_reader_header(r);
    g_assert_cmpuint(h->format_version, ==, XSS_FORMAT_VERSION);
    g_assert_cmpstr(h->machine_type, ==, "xbox");
    g_assert_cmpuint(h->ram_size, ==, TM_RAM);
    g_assert_cmpstr(h->xblk_version, ==, XBLK_VERSION_STRING);
    XssMetadata md, want = tm_metadata();
    g_assert_true(xss_reader_metadata(r, &md, &err));
    g_assert_cmpuint(md.frame, ==, want.frame);
    g_assert_cmpstr(md.frame_hash, ==, want.frame_hash);
    g_assert_cmpstr(md.disc_path, ==, want.disc_path);
    g_assert_cmpstr(md.title, ==, want.title);
    g_assert_cmpuint(md.thumb_width, ==, 320);
    g_assert_cmpuint(md.thumb_height, ==, 240);
    g_assert_true(g_bytes_equal(md.thumbnail_png, want.thumbnail_png));
    xss_metadata_clear(&md);
    xss_metadata_clear(&want);
    XssRamLayout l;
    g_assert_true(xss_reader_ram_layout(r, &l));
    g_assert_cmpuint(l.chunk_count, ==, TM_RAM / XSS_CHUNK_SIZE_DEFAULT);
    g_assert_true(xss_reader_check_machine(r, "xbox", TM_RAM, &err));
    g_assert_false(xss_reader_check_machine(r, "xbox", TM_RAM * 2, &err));
    g_assert_nonnull(strstr(err->message, "the state has 4 MiB of RAM"));
    g_clear_error(&err);
    g_assert_false(xss_reader_check_machine(r, "pc", TM_RAM, &err));
    g_clear_error(&err);
    xss_reader_free(r);
    if (g_test_verbose()) {
        g_printerr("stream of %u bytes for %u MiB of RAM\n", s1->len,
                   TM_RAM >> 20);
    }
    tm_free(a);
    tm_free(b);
}

/* ---- a reader over a file, through the pread-like callback ---- */

typedef struct FileSource {
    int fd;
    unsigned reads;
    unsigned fail_after;        /* 0: never */
} FileSource;

static bool file_read(void *opaque, uint64_t offset, void *buf, size_t len,
                      GError **errp)
{
    FileSource *f = opaque;
    if (f->fail_after && ++f->reads > f->fail_after) {
        error_setg(errp, "simulated I/O error");
        return false;
    }
    if (pread(f->fd, buf, len, offset) != (ssize_t)len) {
        error_setg_errno(errp, errno, "pread");
        return false;
    }
    return true;
}

static void test_file_reader(void)
{
    TestMachine *a = tm_new("fra", 0), *b = tm_new("frb", 3);
    tm_scenario(a);
    g_autoptr(GByteArray) s = tm_save(a);
    g_autofree char *path = test_path("state.xss");
    g_assert_true(g_file_set_contents(path, (const char *)s->data, s->len,
                                      NULL));
    FileSource f = { open(path, O_RDONLY) };
    g_assert_cmpint(f.fd, >=, 0);
    GError *err = NULL;
    XssReader *r = xss_reader_open(file_read, &f, s->len, &err);
    g_assert_no_error(err);
    g_assert_true(xss_load(r, b->set, tm_ram_chunk, b, &err));
    g_assert_no_error(err);
    xss_reader_free(r);
    g_autoptr(GByteArray) s2 = tm_save(b);
    g_assert_cmpmem(s->data, s->len, s2->data, s2->len);
    /* A source failing part way: refused, nothing changed. */
    for (unsigned n = 1; n < 80; n += 3) {
        TestMachine *c = tm_new("frc", 0);
        g_autoptr(GByteArray) before = fingerprint(c);
        f.reads = 0;
        f.fail_after = n;
        r = xss_reader_open(file_read, &f, s->len, &err);
        if (r) {
            g_assert_false(xss_load(r, c->set, tm_ram_chunk, c, &err));
            xss_reader_free(r);
        }
        g_assert_nonnull(strstr(err->message, "simulated I/O error"));
        g_clear_error(&err);
        g_autoptr(GByteArray) after = fingerprint(c);
        g_assert_cmpmem(before->data, before->len, after->data, after->len);
        tm_free(c);
    }
    close(f.fd);
    g_unlink(path);
    tm_free(a);
    tm_free(b);
}

/* ---- RAM in any order ---- */

typedef struct ShuffledIter {
    const uint8_t *ram;
    uint64_t *order;
    uint64_t n, next;
    uint8_t page[XSS_PAGE_SIZE];    /* handed out: valid until next call */
} ShuffledIter;

static int shuffled_next(void *opaque, uint64_t *idx, const void **data,
                         GError **errp)
{
    ShuffledIter *it = opaque;
    if (it->next == it->n) {
        return 0;
    }
    *idx = it->order[it->next++];
    memcpy(it->page, it->ram + *idx * XSS_PAGE_SIZE, XSS_PAGE_SIZE);
    *data = it->page;
    return 1;
}

static bool collect_chunk(void *opaque, const XssChunk *ch, GError **errp)
{
    uint8_t *ram = opaque;
    for (uint32_t i = 0; i < ch->pages; i++) {
        bool present = ch->present[i / 8] & (1u << (i % 8));
        const uint8_t *p = ch->data + (size_t)i * XSS_PAGE_SIZE;
        bool zero = p[0] == 0 && !memcmp(p, p + 1, XSS_PAGE_SIZE - 1);
        g_assert_true(present == !zero);
    }
    memcpy(ram + ch->gpa, ch->data, ch->len);
    return true;
}

static void ram_case(uint64_t ram_size, uint32_t chunk, GRand *rnd)
{
    uint64_t n = ram_size / XSS_PAGE_SIZE;
    uint8_t *ram = g_malloc0(ram_size);
    for (uint64_t p = 0; p < n; p++) {
        switch (g_rand_int_range(rnd, 0, 4)) {
        case 0:                 /* zero */
            break;
        case 1:                 /* one byte set at the end */
            ram[p * XSS_PAGE_SIZE + XSS_PAGE_SIZE - 1] = 1;
            break;
        default:                /* noise */
            for (uint32_t i = 0; i < XSS_PAGE_SIZE; i += 4) {
                uint32_t v = g_rand_int(rnd);
                memcpy(ram + p * XSS_PAGE_SIZE + i, &v, 4);
            }
        }
    }
    ShuffledIter it = { ram, g_new(uint64_t, n), n, 0 };
    for (uint64_t i = 0; i < n; i++) {
        it.order[i] = i;
    }
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = g_rand_int_range(rnd, 0, i + 1);
        uint64_t t = it.order[i];
        it.order[i] = it.order[j];
        it.order[j] = t;
    }
    GByteArray *out = g_byte_array_new();
    XssWriterOptions o = { .chunk_size = chunk, .zstd_level = 1 };
    XssWriter *w = xss_writer_new_buffer(out, &o);
    GError *err = NULL;
    g_assert_true(xss_writer_begin(w, "test", ram_size, &err));
    g_assert_true(xss_writer_ram(w, shuffled_next, &it, &err));
    g_assert_true(xss_writer_finish(w, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(xss_writer_bytes(w), ==, out->len);
    xss_writer_free(w);

    XssReader *r = xss_reader_open_buffer(out->data, out->len, &err);
    g_assert_no_error(err);
    uint8_t *back = g_malloc(ram_size);
    memset(back, 0xEE, ram_size);
    g_assert_true(xss_reader_verify(r, &err));
    g_assert_true(xss_reader_foreach_chunk(r, collect_chunk, back, &err));
    g_assert_no_error(err);
    g_assert_cmpmem(back, ram_size, ram, ram_size);
    /* On demand, the last chunk (short when the RAM is not a multiple of
     * the chunk). */
    XssRamLayout l;
    g_assert_true(xss_reader_ram_layout(r, &l));
    XssChunk ch;
    g_assert_true(xss_reader_read_chunk(r, l.chunk_count - 1, &ch, &err));
    g_assert_cmpuint(ch.gpa + ch.len, ==, ram_size);
    g_assert_false(xss_reader_read_chunk(r, l.chunk_count, &ch, &err));
    g_clear_error(&err);
    g_assert_false(xss_reader_metadata(r, &(XssMetadata){ 0 }, &err));
    g_assert_nonnull(strstr(err->message, "no metadata"));
    g_clear_error(&err);
    xss_reader_free(r);
    g_free(back);
    g_free(it.order);
    g_free(ram);
    g_byte_array_unref(out);
}

static void test_ram_any_order(void)
{
    GRand *rnd = g_rand_new_with_seed(1);
    ram_case(1 << 20, XSS_CHUNK_SIZE_DEFAULT, rnd);
    ram_case((1 << 20) + 3 * XSS_PAGE_SIZE, 64 * 1024, rnd);
    ram_case(XSS_PAGE_SIZE, XSS_PAGE_SIZE, rnd);
    ram_case(5 << 20, 1 << 20, rnd);
    g_rand_free(rnd);
}

static void test_writer_refusals(void)
{
    GByteArray *out = g_byte_array_new();
    XssWriter *w = xss_writer_new_buffer(out, NULL);
    GError *err = NULL;
    static uint8_t page[XSS_PAGE_SIZE];
    XssMetadata md = { 0 };
    g_assert_false(xss_writer_metadata(w, &md, &err));  /* before header */
    g_clear_error(&err);
    g_assert_false(xss_writer_begin(w, "xbox", 1000, &err));
    g_assert_nonnull(strstr(err->message, "multiple of 4096"));
    g_clear_error(&err);
    g_assert_true(xss_writer_begin(w, "xbox", 4 * XSS_PAGE_SIZE, &err));
    md.thumbnail_png = g_bytes_new_static("GIF89a..", 8);
    g_assert_false(xss_writer_metadata(w, &md, &err));
    g_assert_nonnull(strstr(err->message, "not a PNG"));
    g_clear_error(&err);
    g_bytes_unref(md.thumbnail_png);
    md.thumbnail_png = NULL;
    g_assert_true(xss_writer_ram_begin(w, &err));
    g_assert_false(xss_writer_metadata(w, &md, &err));  /* inside RAM */
    g_clear_error(&err);
    g_assert_true(xss_writer_ram_page(w, 2, page, &err));
    g_assert_false(xss_writer_ram_page(w, 2, page, &err));
    g_assert_nonnull(strstr(err->message, "page 2 was handed in twice"));
    g_clear_error(&err);
    g_assert_false(xss_writer_ram_page(w, 4, page, &err));
    g_assert_nonnull(strstr(err->message, "beyond the RAM size"));
    g_clear_error(&err);
    g_assert_false(xss_writer_ram_end(w, &err));
    g_assert_nonnull(strstr(err->message, "page 0 was never handed in"));
    g_clear_error(&err);
    g_assert_false(xss_writer_finish(w, &err));
    g_clear_error(&err);
    for (int i = 0; i < 4; i++) {
        if (i != 2) {
            g_assert_true(xss_writer_ram_page(w, i, page, &err));
        }
    }
    g_assert_true(xss_writer_ram_end(w, &err));
    g_assert_false(xss_writer_ram_begin(w, &err));      /* twice */
    g_clear_error(&err);
    g_assert_true(xss_writer_metadata(w, &md, &err));   /* after RAM */
    g_assert_true(xss_writer_finish(w, &err));
    g_assert_no_error(err);
    g_assert_false(xss_writer_finish(w, &err));
    g_clear_error(&err);
    xss_writer_free(w);
    XssReader *r = xss_reader_open_buffer(out->data, out->len, &err);
    g_assert_no_error(err);
    g_assert_true(xss_reader_verify(r, &err));
    g_assert_true(xss_reader_metadata(r, &md, &err));
    g_assert_null(md.title);
    xss_reader_free(r);
    g_byte_array_unref(out);
}

/* ---- refusals ---- */

static void test_refusals(void)
{
    TestMachine *a = tm_new("ra", 0), *b = tm_new("rb", 99);
    tm_scenario(a);
    g_autoptr(GByteArray) good = tm_save(a);
    Stream *s = stream_parse(good);
    g_autoptr(GByteArray) rebuilt = stream_build(s);
    g_assert_cmpmem(rebuilt->data, rebuilt->len, good->data, good->len);
    GByteArray *x;
    Rec *r;

    /* Header: magic, newer format, damage. */
    x = g_byte_array_new();
    g_byte_array_append(x, good->data, good->len);
    x->data[0] = 'Y';
    expect_refused(b, x, "not an xblk save state (bad magic)");
    g_byte_array_unref(x);
    s->header->data[8] = XSS_FORMAT_VERSION + 1;
    x = stream_build(s);
    expect_refused(b, x, "format version 3 is newer than this xblk "
                   "supports (2)");
    g_byte_array_unref(x);
    s->header->data[8] = XSS_FORMAT_VERSION;
    x = g_byte_array_new();
    g_byte_array_append(x, good->data, good->len);
    x->data[20] ^= 0x40;
    expect_refused(b, x, "header: checksum mismatch");
    g_byte_array_unref(x);

    /* A device section of a newer version, and of an unknown device. */
    r = stream_find(s, "DEVS", "pic", 0);
    r->version = 2;
    x = stream_build(s);
    expect_refused(b, x, "section 'pic' instance 0: version 2 is newer "
                   "than this xblk supports (1)");
    g_byte_array_unref(x);
    r->version = 1;
    strcpy(r->name, "floppy");
    x = stream_build(s);
    expect_refused(b, x, "unknown section 'floppy' instance 0");
    g_byte_array_unref(x);
    strcpy(r->name, "pic");
    r = stream_find(s, "DEVS", "gpu", 0);
    g_ptr_array_remove(s->recs, r);
    x = stream_build(s);
    expect_refused(b, x, "section 'gpu' instance 0 is missing");
    g_byte_array_unref(x);
    stream_free(s);
    s = stream_parse(good);

    /* A device section whose content does not decode. */
    r = stream_find(s, "DEVS", "ide", 0);
    g_byte_array_set_size(r->payload, r->payload->len - 1);
    x = stream_build(s);
    expect_refused(b, x, "section 'ide' instance 0: truncated at field");
    g_byte_array_unref(x);
    stream_free(s);
    s = stream_parse(good);

    /* An unknown record, a newer RAM section, a duplicate chunk. */
    Rec *u = g_new0(Rec, 1);
    strcpy(u->tag, "XTRA");
    strcpy(u->name, "future");
    u->version = 1;
    u->payload = g_byte_array_new();
    g_ptr_array_insert(s->recs, 2, u);
    x = stream_build(s);
    expect_refused(b, x, "unknown section tag 'XTRA' (name 'future')");
    g_byte_array_unref(x);
    g_ptr_array_remove_index(s->recs, 2);
    r = stream_find(s, "RAMH", "ram", 0);
    r->version = 2;
    x = stream_build(s);
    expect_refused(b, x, "section 'ram': version 2 is newer than this xblk "
                   "supports (1)");
    g_byte_array_unref(x);
    r->version = 1;
    r = stream_find(s, "RAMC", "ram", 3);
    r->instance = 2;
    x = stream_build(s);
    expect_refused(b, x, "section 'ram' chunk 2 appears twice");
    g_byte_array_unref(x);
    g_ptr_array_remove(s->recs, r);
    x = stream_build(s);
    expect_refused(b, x, "section 'ram' chunk 3 is missing");
    g_byte_array_unref(x);
    stream_free(s);
    s = stream_parse(good);

    /* A chunk whose zstd frame is bad under a valid checksum. */
    r = stream_find(s, "RAMC", "ram", 0);
    r->payload->data[r->payload->len - 20] ^= 0xFF;
    x = stream_build(s);
    expect_refused(b, x, "section 'ram' chunk 0: ");
    g_byte_array_unref(x);
    stream_free(s);

    /* A bit flip in a chunk, and in a record header. */
    s = stream_parse(good);
    size_t off = le32(good->data + 12);
    for (guint i = 0; i < s->recs->len; i++) {
        Rec *q = s->recs->pdata[i];
        size_t hdr = 25 + strlen(q->name) + 4;
        if (!strcmp(q->tag, "RAMC") && q->instance == 1) {
            x = g_byte_array_new();
            g_byte_array_append(x, good->data, good->len);
            x->data[off + hdr + q->payload->len / 2] ^= 0x08;
            expect_refused(b, x, "section 'ram' chunk 1: checksum mismatch "
                           "(damaged)");
            g_byte_array_unref(x);
            x = g_byte_array_new();
            g_byte_array_append(x, good->data, good->len);
            x->data[off + 13] ^= 0x01;      /* its payload length */
            expect_refused(b, x, "header checksum mismatch");
            g_byte_array_unref(x);
        }
        off += hdr + q->payload->len;
    }
    stream_free(s);

    /* Truncated at every record boundary and many other lengths, and
     * trailing bytes. */
    for (size_t cut = 0; cut < good->len; cut += cut < 4096 ? 7 : 997) {
        x = g_byte_array_new();
        g_byte_array_append(x, good->data, cut);
        expect_refused(b, x, NULL);
        g_byte_array_unref(x);
    }
    x = g_byte_array_new();
    g_byte_array_append(x, good->data, good->len - 1);
    expect_refused(b, x, "truncated");
    g_byte_array_append(x, good->data + good->len - 1, 1);
    g_byte_array_append(x, (const uint8_t *)"junk", 4);
    expect_refused(b, x, "4 bytes of trailing data after the end marker");
    g_byte_array_unref(x);

    /* And the good stream still loads into the untouched machine. */
    GError *err = NULL;
    g_assert_true(tm_load(b, good->data, good->len, &err));
    g_assert_no_error(err);
    tm_free(a);
    tm_free(b);
}

/* ---- the fixtures ---- */

static void write_fixture(const char *path)
{
    test_dir_setup_in_memory();
    TestMachine *tm = tm_new("fixture", 1000000);
    tm_scenario(tm);
    g_autoptr(GByteArray) s = tm_save(tm);
    GError *err = NULL;
    if (!g_file_set_contents(path, (const char *)s->data, s->len, &err)) {
        g_error("%s", err->message);
    }
    g_print("wrote %s (%u bytes)\n", path, s->len);
    tm_free(tm);
    test_dir_cleanup();
}

/* The fixture at rel (format version `format`, every section at
 * version 1) loads, holds what the scenario left, and runs on alike. */
static void check_fixture(const char *rel, uint32_t format)
{
    const char *root = g_getenv("XBLK_ROOT");
    g_autofree char *path = g_build_filename(root ? root : ".", rel, NULL);
    g_autofree char *data = NULL;
    gsize len;
    GError *err = NULL;
    if (!g_file_get_contents(path, &data, &len, &err)) {
        g_error("%s (write it with --write-fixture)", err->message);
    }
    TestMachine *tm = tm_new("fx", 31337);
    g_assert_true(tm_load(tm, data, len, &err));
    g_assert_no_error(err);

    /* What version 1 of the scenario left, checked field by field. */
    XssReader *r = xss_reader_open_buffer(data, len, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(xss_reader_header(r)->format_version, ==, format);
    g_assert_cmpstr(xss_reader_header(r)->xblk_version, ==, "0.1.0");
    XssMetadata md;
    g_assert_true(xss_reader_metadata(r, &md, &err));
    g_assert_cmpuint(md.frame, ==, 4242);
    g_assert_cmpstr(md.title, ==, "xblk reference game — fixture v1");
    xss_metadata_clear(&md);
    CpuRegs regs;
    cpu_get_regs(tm->cpu, &regs);
    g_assert_cmphex(regs.ebx, ==, 0x11223344);
    g_assert_cmphex(regs.cs, ==, 0x08);
    g_assert_cmphex(regs.ss, ==, 0x10);
    g_assert_cmphex(regs.gdt_base, ==, TM_GDT);
    g_assert_cmphex(regs.esp, ==, TM_STACK);
    g_assert_cmpuint(regs.eip, >=, TM_CODE);
    g_assert_cmpuint(regs.eip, <, TM_CODE + 64);
    g_assert_cmphex(tm->th->ram[TM_CODE], ==, 0xDB);
    g_assert_cmphex(gpu_mmio_read(tm->gpu, 0x030, 4), ==, TM_PB);
    g_assert_cmphex(gpu_mmio_read(tm->gpu, 0x040, 4), ==, 0xCAFE);
    g_assert_cmpuint(gpu_frame(tm->gpu), ==, 1);
    g_assert_cmphex(tm_in(tm, 0x21, 1), ==, 0x20);          /* IMR */
    g_assert_cmphex(tm_in(tm, GAMEPAD_PORT_BASE, 2), ==, 0x0111);
    IDEDriveInfo info;
    g_assert_true(ide_drive_info(tm->ide, 0, &info));
    g_assert_true(info.write_cache);
    g_assert_false(info.security_locked);
    g_assert_true(tm->ms.halted);
    g_assert_cmphex(tm->ms.irq_levels, ==, 0x4009);
    g_assert_true(vtimer_pending(&tm->vblank));

    /* The machine runs on as the scenario's own does. */
    TestMachine *ref = tm_new("fref", 1000000);
    tm_scenario(ref);
    GString *lf = tm_exercise(tm), *lr = tm_exercise(ref);
    g_assert_cmpstr(lf->str, ==, lr->str);
    g_string_free(lf, TRUE);
    g_string_free(lr, TRUE);
    tm_free(ref);

    /* Sections still at version 1 re-save byte for byte (reload first:
     * the exercise moved the machine on). */
    g_assert_true(tm_load(tm, data, len, &err));
    g_assert_no_error(err);
    GByteArray ga = { (guint8 *)data, len };
    Stream *s = stream_parse(&ga);
    unsigned compared = 0;
    for (guint i = 0; i < s->recs->len; i++) {
        Rec *q = s->recs->pdata[i];
        if (strcmp(q->tag, "DEVS")) {
            continue;
        }
        const VMStateEntry *e = vmstate_set_find(tm->set, q->name,
                                                 q->instance);
        g_assert_nonnull(e);
        if (e->desc->version_id != (int)q->version) {
            continue;
        }
        g_autoptr(GByteArray) now = g_byte_array_new();
        g_assert_true(vmstate_save(e->desc, e->opaque, now, &err));
        g_assert_cmpmem(now->data, now->len, q->payload->data,
                        q->payload->len);
        compared++;
    }
    g_assert_cmpuint(compared, >=, 1);
    /* (A read with a side effect, last.) */
    g_assert_cmphex(tm_in(tm, SMC_PORT_BASE + 0x14, 4), ==, 0x2D646468);
    stream_free(s);
    xss_reader_free(r);
    tm_free(tm);
}

static void test_fixture_v1(void)
{
    check_fixture(FIXTURE_V1, 1);
}

static void test_fixture_v2(void)
{
    check_fixture(FIXTURE_V2, 2);
}

/* ---- fuzzing ---- */

static void mutate(GByteArray *x, GRand *rnd)
{
    switch (g_rand_int_range(rnd, 0, 6)) {
    case 0:                     /* flip bits */
    case 1: {
        int n = g_rand_int_range(rnd, 1, 9);
        for (int i = 0; i < n; i++) {
            x->data[g_rand_int_range(rnd, 0, x->len)] ^=
                1u << g_rand_int_range(rnd, 0, 8);
        }
        break;
    }
    case 2:                     /* a byte set to an edge value */
        x->data[g_rand_int_range(rnd, 0, x->len)] =
            (uint8_t[]){ 0, 1, 0x7F, 0x80, 0xFF }[g_rand_int_range(rnd, 0,
                                                                   5)];
        break;
    case 3:                     /* truncate */
        g_byte_array_set_size(x, g_rand_int_range(rnd, 0, x->len));
        break;
    case 4: {                   /* remove a range */
        guint at = g_rand_int_range(rnd, 0, x->len);
        guint n = g_rand_int_range(rnd, 1, 64);
        g_byte_array_remove_range(x, at, MIN(x->len - at, n));
        break;
    }
    default: {                  /* insert bytes */
        guint at = g_rand_int_range(rnd, 0, x->len);
        uint8_t b[16];
        for (int i = 0; i < 16; i++) {
            b[i] = g_rand_int(rnd);
        }
        guint n = g_rand_int_range(rnd, 1, 17);
        g_byte_array_set_size(x, x->len + n);
        memmove(x->data + at + n, x->data + at, x->len - n - at);
        memcpy(x->data + at, b, n);
        break;
    }
    }
}

/* Raw mutations: almost all refused by a checksum; none may crash, and a
 * refusal changes nothing. */
static void test_fuzz_raw(void)
{
    TestMachine *a = tm_new("za", 0), *b = tm_new("zb", 5);
    tm_scenario(a);
    g_autoptr(GByteArray) good = tm_save(a);
    GRand *rnd = g_rand_new_with_seed(g_test_rand_int());
    g_autoptr(GByteArray) fp = fingerprint(b);
    unsigned loaded = 0, iters = g_test_slow() ? 20000 : 3000;
    for (unsigned i = 0; i < iters; i++) {
        GByteArray *x = g_byte_array_new();
        g_byte_array_append(x, good->data, good->len);
        int n = g_rand_int_range(rnd, 1, 4);
        for (int k = 0; k < n && x->len; k++) {
            mutate(x, rnd);
        }
        GError *err = NULL;
        if (tm_load(b, x->data, x->len, &err)) {
            /* Every byte is under a checksum: only a mutation that
             * undid itself (a bit flipped twice) loads. */
            g_assert_cmpmem(x->data, x->len, good->data, good->len);
            loaded++;
            g_byte_array_unref(fp);
            fp = fingerprint(b);
        } else {
            g_assert_nonnull(err);
            g_error_free(err);
            if (i % 64 == 0) {
                g_autoptr(GByteArray) now = fingerprint(b);
                g_assert_cmpmem(now->data, now->len, fp->data, fp->len);
            }
        }
        g_byte_array_unref(x);
    }
    if (g_test_verbose()) {
        g_printerr("%u of %u mutated streams loaded\n", loaded, iters);
    }
    g_rand_free(rnd);
    tm_free(a);
    tm_free(b);
}

/* Mutations inside one section's payload with the checksums repaired:
 * they reach the section decoders, checks and devices.  After each
 * accepted load the machine is exercised (it must not crash), then the
 * good state is loaded again. */
static void test_fuzz_sections(void)
{
    TestMachine *a = tm_new("sa", 0), *b = tm_new("sb", 5);
    tm_scenario(a);
    g_autoptr(GByteArray) good = tm_save(a);
    Stream *s = stream_parse(good);
    GRand *rnd = g_rand_new_with_seed(g_test_rand_int());
    unsigned loaded = 0, iters = g_test_slow() ? 10000 : 1500;
    GError *err = NULL;
    for (unsigned i = 0; i < iters; i++) {
        /* Two times out of three a device section. */
        Rec *r;
        do {
            r = s->recs->pdata[g_rand_int_range(rnd, 0, s->recs->len)];
        } while (g_rand_int_range(rnd, 0, 3) && strcmp(r->tag, "DEVS"));
        if (!r->payload->len) {
            continue;
        }
        GByteArray *saved = g_byte_array_new();
        g_byte_array_append(saved, r->payload->data, r->payload->len);
        int n = g_rand_int_range(rnd, 1, 4);
        for (int k = 0; k < n && r->payload->len; k++) {
            mutate(r->payload, rnd);
        }
        GByteArray *x = stream_build(s);
        g_byte_array_unref(r->payload);
        r->payload = saved;
        if (tm_load(b, x->data, x->len, &err)) {
            loaded++;
            GString *log = tm_exercise(b);
            g_string_free(log, TRUE);
            test_host_run(b->th);
            g_assert_true(tm_load(b, good->data, good->len, &err));
            g_assert_no_error(err);
        } else {
            g_assert_nonnull(err);
            g_clear_error(&err);
        }
        g_byte_array_unref(x);
    }
    if (g_test_verbose()) {
        g_printerr("%u of %u section mutations loaded\n", loaded, iters);
    }
    stream_free(s);
    g_rand_free(rnd);
    tm_free(a);
    tm_free(b);
}

/* LeakSanitizer: Unicorn 2.0.1 does not free the code bitmap of a page
 * whose translated code was overwritten (tb_invalidate_phys_page_fast)
 * when the engine is closed; a fuzzed CPU state that modifies its own
 * code, then a load (which starts a fresh engine), shows it.  Not ours. */
const char *__lsan_default_suppressions(void);
/* Visible: the runtime looks it up dynamically (-fvisibility=hidden). */
__attribute__((used, visibility("default")))
const char *__lsan_default_suppressions(void)
{
    return "leak:tb_invalidate_phys_page_fast\n";
}

int main(int argc, char **argv)
{
    idet_engine_start();
    if (argc == 3 && !strcmp(argv[1], "--write-fixture")) {
        write_fixture(argv[2]);
        return 0;
    }
    g_test_init(&argc, &argv, NULL);
    test_dir_setup_in_memory();
    g_test_add_func("/savestream/save-load-save", test_save_load_save);
    g_test_add_func("/savestream/file-reader", test_file_reader);
    g_test_add_func("/savestream/ram-any-order", test_ram_any_order);
    g_test_add_func("/savestream/writer-refusals", test_writer_refusals);
    g_test_add_func("/savestream/refusals", test_refusals);
    g_test_add_func("/savestream/fixture-v1", test_fixture_v1);
    g_test_add_func("/savestream/fixture-v2", test_fixture_v2);
    g_test_add_func("/savestream/fuzz/raw", test_fuzz_raw);
    g_test_add_func("/savestream/fuzz/sections", test_fuzz_sections);
    int ret = g_test_run();
    test_dir_cleanup();
    return ret;
}
