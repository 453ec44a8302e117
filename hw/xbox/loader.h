/*
 * loader.h - loading the guest program and the reset CPU state
 * (docs/machine.md): a flat binary at 0x00100000, or an ELF32 executable
 * for i386 whose PT_LOAD segments go to their physical addresses; the
 * reset GDT at 0x500 (null, 0x08 flat 32-bit code, 0x10 flat data) and
 * CS=0x08, data segments 0x10, EIP = entry, ESP = 0x0009F000, EFLAGS = 2.
 *
 * A LoaderImage is parsed and checked once (every offset and size bounds
 * checked: a damaged file gets an error, never a crash) and can be
 * installed again at each system reset.  Installing writes guest RAM only
 * through the machine's RAM helper.
 *
 * Callers: machine.c, tests.  Any thread (installing: the vCPU thread).
 */
#ifndef XBLK_HW_XBOX_LOADER_H
#define XBLK_HW_XBOX_LOADER_H

#include "hw/xbox/cpu.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define LOADER_FLAT_BASE    0x00100000u
#define LOADER_MIN_ADDR     0x00001000u
#define LOADER_GDT_BASE     0x00000500u
#define LOADER_GDT_LIMIT    23u
#define LOADER_STACK_TOP    0x0009F000u
#define LOADER_CODE_SEL     0x08u
#define LOADER_DATA_SEL     0x10u

typedef struct LoaderImage LoaderImage;
typedef bool LoaderRamWriteFn(void *opaque, uint64_t gpa, const void *buf,
                              uint64_t len);

/* Parses a program for a machine with ram_size bytes of RAM (the data is
 * copied). */
LoaderImage *loader_parse(const void *data, size_t len, uint64_t ram_size,
                          GError **errp);
/* Reads and parses the file at path; errors name it. */
LoaderImage *loader_open(const char *path, uint64_t ram_size, GError **errp);
void loader_image_free(LoaderImage *img);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(LoaderImage, loader_image_free)

bool loader_is_elf(const LoaderImage *img);
uint32_t loader_entry(const LoaderImage *img);
/* Number of segments and their ranges (flat: one). */
unsigned loader_segment_count(const LoaderImage *img);
void loader_segment(const LoaderImage *img, unsigned i, uint32_t *paddr,
                    uint32_t *filesz, uint32_t *memsz);

/* Writes the segments (zero filling memsz beyond filesz) and the reset
 * GDT into RAM through write(). */
bool loader_install(const LoaderImage *img, LoaderRamWriteFn *write,
                    void *opaque, GError **errp);
/* Installs img and puts cpu in the reset state starting at its entry. */
bool loader_boot(const LoaderImage *img, XboxCpu *cpu,
                 LoaderRamWriteFn *write, void *opaque, GError **errp);

#endif
