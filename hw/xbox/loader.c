/*
 * loader.c - flat and ELF32 programs, the reset GDT and registers; see
 * loader.h.
 *
 * Invariants of a parsed LoaderImage: every segment's file bytes lie
 * inside `data`, filesz <= memsz, [paddr, paddr + memsz) lies inside RAM
 * at or above LOADER_MIN_ADDR, segments do not overlap, and the entry
 * point lies inside a segment.  All header fields are read through
 * bounds-checked little-endian accessors; arithmetic is 64-bit so that no
 * sum of 32-bit fields wraps.
 */
#include "hw/xbox/loader.h"
#include "hw/error.h"
#include <elf.h>
#include <inttypes.h>
#include <string.h>

typedef struct LoaderSeg {
    uint32_t paddr, filesz, memsz;
    uint64_t offset;            /* into data */
} LoaderSeg;

struct LoaderImage {
    uint8_t *data;
    size_t len;
    bool elf;
    uint32_t entry;
    GArray *segs;               /* LoaderSeg */
};

static const uint64_t reset_gdt[3] = {
    0,
    0x00CF9A000000FFFFull,      /* 0x08: code, base 0, 4 GiB, 32-bit, ring 0 */
    0x00CF92000000FFFFull,      /* 0x10: data, base 0, 4 GiB, writable */
};

static uint16_t le16(const uint8_t *p)
{
    return p[0] | (p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return p[0] | (p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static LoaderImage *image_new(const void *data, size_t len)
{
    LoaderImage *img = g_new0(LoaderImage, 1);
    img->data = g_memdup2(data, len);
    img->len = len;
    img->segs = g_array_new(FALSE, FALSE, sizeof(LoaderSeg));
    return img;
}

void loader_image_free(LoaderImage *img)
{
    if (img) {
        g_array_unref(img->segs);
        g_free(img->data);
        g_free(img);
    }
}

static bool check_range(uint64_t paddr, uint64_t memsz, uint64_t ram_size,
                        const char *what, GError **errp)
{
    if (paddr < LOADER_MIN_ADDR || paddr + memsz > ram_size) {
        hw_error_set(errp, "%s [0x%" PRIx64 ", 0x%" PRIx64 ") does not fit in "
                     "RAM between 0x%x and 0x%" PRIx64, what, paddr,
                     paddr + memsz, LOADER_MIN_ADDR, ram_size);
        return false;
    }
    return true;
}

static bool parse_flat(LoaderImage *img, uint64_t ram_size, GError **errp)
{
    if (img->len == 0) {
        hw_error_set(errp, "the program is empty");
        return false;
    }
    if (!check_range(LOADER_FLAT_BASE, img->len, ram_size,
                     "the flat binary", errp)) {
        return false;
    }
    LoaderSeg s = { LOADER_FLAT_BASE, img->len, img->len, 0 };
    g_array_append_val(img->segs, s);
    img->entry = LOADER_FLAT_BASE;
    return true;
}

static bool check_elf_header(const uint8_t *h, size_t len, GError **errp)
{
    if (len < sizeof(Elf32_Ehdr)) {
        hw_error_set(errp, "truncated ELF header (%zu bytes)", len);
        return false;
    }
    if (h[EI_CLASS] != ELFCLASS32) {
        hw_error_set(errp, "ELF class %u: only 32-bit ELF (ELFCLASS32) loads",
                     h[EI_CLASS]);
        return false;
    }
    if (h[EI_DATA] != ELFDATA2LSB || h[EI_VERSION] != EV_CURRENT) {
        hw_error_set(errp, "ELF data encoding %u / version %u: only "
                     "little-endian version 1 loads", h[EI_DATA],
                     h[EI_VERSION]);
        return false;
    }
    uint16_t type = le16(h + offsetof(Elf32_Ehdr, e_type));
    uint16_t machine = le16(h + offsetof(Elf32_Ehdr, e_machine));
    if (type != ET_EXEC) {
        hw_error_set(errp, "ELF type %u: only executables (ET_EXEC) load",
                     type);
        return false;
    }
    if (machine != EM_386) {
        hw_error_set(errp, "ELF machine %u: only i386 (EM_386) loads",
                     machine);
        return false;
    }
    return true;
}

static bool segs_overlap(const LoaderSeg *a, const LoaderSeg *b)
{
    return (uint64_t)a->paddr < (uint64_t)b->paddr + b->memsz &&
           (uint64_t)b->paddr < (uint64_t)a->paddr + a->memsz;
}

static bool add_elf_segment(LoaderImage *img, const uint8_t *ph,
                            unsigned idx, uint64_t ram_size, GError **errp)
{
    LoaderSeg s = {
        .paddr = le32(ph + offsetof(Elf32_Phdr, p_paddr)),
        .filesz = le32(ph + offsetof(Elf32_Phdr, p_filesz)),
        .memsz = le32(ph + offsetof(Elf32_Phdr, p_memsz)),
        .offset = le32(ph + offsetof(Elf32_Phdr, p_offset)),
    };
    if (s.memsz == 0) {
        return true;
    }
    if (s.filesz > s.memsz) {
        hw_error_set(errp, "segment %u: file size 0x%x exceeds memory size "
                     "0x%x", idx, s.filesz, s.memsz);
        return false;
    }
    if (s.offset + s.filesz > img->len) {
        hw_error_set(errp, "segment %u: bytes [0x%" PRIx64 ", 0x%" PRIx64 ") "
                     "lie beyond the end of the file (0x%zx)", idx, s.offset,
                     s.offset + s.filesz, img->len);
        return false;
    }
    g_autofree char *what = g_strdup_printf("segment %u", idx);
    if (!check_range(s.paddr, s.memsz, ram_size, what, errp)) {
        return false;
    }
    for (guint i = 0; i < img->segs->len; i++) {
        if (segs_overlap(&g_array_index(img->segs, LoaderSeg, i), &s)) {
            hw_error_set(errp, "segment %u overlaps an earlier segment", idx);
            return false;
        }
    }
    g_array_append_val(img->segs, s);
    return true;
}

static bool entry_in_segment(const LoaderImage *img)
{
    for (guint i = 0; i < img->segs->len; i++) {
        const LoaderSeg *s = &g_array_index(img->segs, LoaderSeg, i);
        if (img->entry >= s->paddr &&
            (uint64_t)img->entry < (uint64_t)s->paddr + s->memsz) {
            return true;
        }
    }
    return false;
}

static bool parse_elf(LoaderImage *img, uint64_t ram_size, GError **errp)
{
    const uint8_t *h = img->data;
    if (!check_elf_header(h, img->len, errp)) {
        return false;
    }
    uint64_t phoff = le32(h + offsetof(Elf32_Ehdr, e_phoff));
    unsigned phnum = le16(h + offsetof(Elf32_Ehdr, e_phnum));
    unsigned phentsize = le16(h + offsetof(Elf32_Ehdr, e_phentsize));
    img->entry = le32(h + offsetof(Elf32_Ehdr, e_entry));
    if (phnum == 0 || phentsize != sizeof(Elf32_Phdr)) {
        hw_error_set(errp, "no program headers (count %u, entry size %u)",
                     phnum, phentsize);
        return false;
    }
    if (phoff + (uint64_t)phnum * phentsize > img->len) {
        hw_error_set(errp, "program headers at 0x%" PRIx64 " (%u of %u bytes) "
                     "lie beyond the end of the file (0x%zx)", phoff, phnum,
                     phentsize, img->len);
        return false;
    }
    for (unsigned i = 0; i < phnum; i++) {
        const uint8_t *ph = h + phoff + (uint64_t)i * phentsize;
        uint32_t type = le32(ph + offsetof(Elf32_Phdr, p_type));
        if (type == PT_INTERP || type == PT_DYNAMIC) {
            hw_error_set(errp, "dynamically linked programs do not load");
            return false;
        }
        if (type == PT_LOAD && !add_elf_segment(img, ph, i, ram_size, errp)) {
            return false;
        }
    }
    if (img->segs->len == 0) {
        hw_error_set(errp, "no loadable segment (PT_LOAD)");
        return false;
    }
    if (!entry_in_segment(img)) {
        hw_error_set(errp, "entry point 0x%08x lies outside every loaded "
                     "segment", img->entry);
        return false;
    }
    return true;
}

LoaderImage *loader_parse(const void *data, size_t len, uint64_t ram_size,
                          GError **errp)
{
    LoaderImage *img = image_new(data, len);
    img->elf = len >= SELFMAG && !memcmp(data, ELFMAG, SELFMAG);
    bool ok = img->elf ? parse_elf(img, ram_size, errp)
                       : parse_flat(img, ram_size, errp);
    if (!ok) {
        loader_image_free(img);
        return NULL;
    }
    return img;
}

LoaderImage *loader_open(const char *path, uint64_t ram_size, GError **errp)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    GError *err = NULL;
    if (!g_file_get_contents(path, &data, &len, &err)) {
        hw_error_set(errp, "cannot read the program '%s': %s", path,
                     err->message);
        g_error_free(err);
        return NULL;
    }
    LoaderImage *img = loader_parse(data, len, ram_size, &err);
    if (!img) {
        hw_error_set(errp, "the program '%s' does not load: %s", path,
                     err->message);
        g_error_free(err);
    }
    return img;
}

bool loader_is_elf(const LoaderImage *img)
{
    return img->elf;
}

uint32_t loader_entry(const LoaderImage *img)
{
    return img->entry;
}

unsigned loader_segment_count(const LoaderImage *img)
{
    return img->segs->len;
}

void loader_segment(const LoaderImage *img, unsigned i, uint32_t *paddr,
                    uint32_t *filesz, uint32_t *memsz)
{
    g_assert(i < img->segs->len);
    const LoaderSeg *s = &g_array_index(img->segs, LoaderSeg, i);
    *paddr = s->paddr;
    *filesz = s->filesz;
    *memsz = s->memsz;
}

static bool write_zeros(LoaderRamWriteFn *write, void *opaque, uint64_t gpa,
                        uint64_t len)
{
    static const uint8_t zeros[4096];
    while (len) {
        uint64_t n = MIN(len, sizeof(zeros));
        if (!write(opaque, gpa, zeros, n)) {
            return false;
        }
        gpa += n;
        len -= n;
    }
    return true;
}

bool loader_install(const LoaderImage *img, LoaderRamWriteFn *write,
                    void *opaque, GError **errp)
{
    uint8_t gdt[sizeof(reset_gdt)];
    for (size_t i = 0; i < G_N_ELEMENTS(reset_gdt); i++) {
        uint64_t le = GUINT64_TO_LE(reset_gdt[i]);
        memcpy(gdt + i * 8, &le, 8);
    }
    if (!write(opaque, LOADER_GDT_BASE, gdt, sizeof(gdt))) {
        hw_error_set(errp, "cannot write the reset GDT");
        return false;
    }
    for (guint i = 0; i < img->segs->len; i++) {
        const LoaderSeg *s = &g_array_index(img->segs, LoaderSeg, i);
        if (!write(opaque, s->paddr, img->data + s->offset, s->filesz) ||
            !write_zeros(write, opaque, (uint64_t)s->paddr + s->filesz,
                         s->memsz - s->filesz)) {
            hw_error_set(errp, "cannot write segment %u at 0x%08x", i,
                         s->paddr);
            return false;
        }
    }
    return true;
}

bool loader_boot(const LoaderImage *img, XboxCpu *cpu,
                 LoaderRamWriteFn *write, void *opaque, GError **errp)
{
    return loader_install(img, write, opaque, errp) &&
           cpu_set_boot_state(cpu, LOADER_GDT_BASE, LOADER_GDT_LIMIT,
                              LOADER_CODE_SEL, LOADER_DATA_SEL, img->entry,
                              LOADER_STACK_TOP, errp);
}
