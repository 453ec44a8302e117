/*
 * dmabench.c - the disk benchmark guest: bus-master DMA on the hard disk
 * of the primary channel (unit 0), through the reference guest's IDE and
 * ATA drivers, at queue depth 1 (ATA has one command in flight per
 * drive).  Every command is issued, then the guest sleeps (hlt) until the
 * channel interrupt, as the reference guest does; the GPU's vblank
 * interrupt bounds each wait.
 *
 * Phases over the region R = the first REGION bytes of the disk (256 MiB
 * by default), each between a "B" and an "E" marker (benchlib.h):
 *   seqwrite  REGION / 64 KiB WRITE DMA (EXT) of 64 KiB, ascending
 *   seqread   the same range with READ DMA (EXT), ascending; the first
 *             and last word of each transfer are checked
 *   randread  RANDOPS READ DMA (EXT) of 4 KiB (20,000 by default),
 *             checked as seqread
 *   randwrite RANDOPS WRITE DMA (EXT) of 4 KiB
 * Random offsets follow qemu-img bench's rule, so `qemu-img bench -s 4096
 * -S STEP` on R visits the very same offsets: the first at 0, then
 * offset = (offset + STEP) mod REGION with STEP = 4096 * 7919 (odd in
 * 4 KiB units, so the offsets scatter over every 4 KiB block of R).  Both
 * random phases hit clusters seqwrite allocated.  Written data is the
 * byte 0xA5 (qemu-img bench --pattern=165).  No FLUSH CACHE is sent: the
 * drive's write cache stays on, as with qemu-img bench (no flush).
 *
 * Parameters from the seed (-machine xbox,seed=N):
 *   bits 0-15   REGION in MiB (0 means 256)
 *   bits 16-31  RANDOPS (0 means 20,000)
 * The "P" line repeats them with the step, for the host side.
 */
#include "ata.h"
#include "benchlib.h"
#include "console.h"
#include "gpu.h"
#include "ide.h"
#include "io.h"
#include <stdint.h>

#define SEQ_BYTES       65536u
#define RAND_BYTES      4096u
#define RAND_STEP       (4096ull * 7919)
#define PATTERN         0xA5A5A5A5u
/* 64 KiB aligned (one PRD entry), above every buffer of the reference
 * guest's layout.h (gpu_init() clears its framebuffers). */
#define BUF_ADDR        0x00C00000u

static AtaDisk hdd;

static void fill_buffer(void)
{
    uint32_t n = SEQ_BYTES / 4;
    uint32_t addr = BUF_ADDR;
    __asm__ volatile("cld; rep stosl"
                     : "+c"(n), "+D"(addr)
                     : "a"(PATTERN)
                     : "memory");
}

static void check_buffer(uint32_t len, uint64_t offset)
{
    volatile uint32_t *w = (volatile uint32_t *)BUF_ADDR;
    if (w[0] != PATTERN || w[len / 4 - 1] != PATTERN) {
        con_printf("dmabench: data at offset %llu reads %08x..%08x\n",
                   (unsigned long long)offset, w[0], w[len / 4 - 1]);
        bench_fail("read back wrong data");
    }
}

static void transfer(bool write, uint64_t offset, uint32_t len)
{
    bool ok = write ? ata_write(&hdd, offset / 512, len / 512, BUF_ADDR)
                    : ata_read(&hdd, offset / 512, len / 512, BUF_ADDR);
    if (!ok) {
        con_printf("dmabench: %s of %u bytes at %llu failed\n",
                   write ? "write" : "read", len,
                   (unsigned long long)offset);
        bench_fail("DMA command failed");
    }
}

static void find_disk(void)
{
    bool atapi;
    ide_init();
    if (ide_probe(0) != IDE_PROBE_ATA || !ata_identify(0, &hdd, &atapi)) {
        bench_fail("no ATA disk at unit 0 of the primary channel");
    }
    con_printf("dmabench: hdd \"%s\", %llu sectors%s\n", hdd.model,
               (unsigned long long)hdd.sectors, hdd.lba48 ? ", LBA48" : "");
    if (!ata_unlock(0, &hdd)) {
        bench_fail("the disk stays locked");
    }
}

int main(void)
{
    uint64_t seed = bench_start("dmabench");
    uint64_t region = (seed & 0xFFFF) ? (seed & 0xFFFF) << 20 : 256ull << 20;
    uint32_t randops = (uint32_t)(seed >> 16) & 0xFFFF;
    uint64_t off;
    if (!randops) {
        randops = 20000;
    }
    if (!gpu_init()) {
        bench_fail("no GPU (its vblank bounds the disk waits)");
    }
    sti();
    find_disk();
    if (region > hdd.sectors * 512) {
        bench_fail("the disk is smaller than the region");
    }
    con_printf("P region=%llu seq_bytes=%u rand_bytes=%u rand_ops=%u "
               "rand_step=%llu pattern=0x%02x\n",
               (unsigned long long)region, SEQ_BYTES, RAND_BYTES, randops,
               (unsigned long long)RAND_STEP, PATTERN & 0xFF);
    fill_buffer();

    bench_begin("seqwrite", region, "bytes");
    for (off = 0; off < region; off += SEQ_BYTES) {
        transfer(true, off, SEQ_BYTES);
    }
    bench_end("seqwrite");

    bench_begin("seqread", region, "bytes");
    for (off = 0; off < region; off += SEQ_BYTES) {
        transfer(false, off, SEQ_BYTES);
        check_buffer(SEQ_BYTES, off);
    }
    bench_end("seqread");

    bench_begin("randread", randops, "requests");
    off = 0;
    for (uint32_t i = 0; i < randops; i++) {
        transfer(false, off, RAND_BYTES);
        check_buffer(RAND_BYTES, off);
        off = (off + RAND_STEP) % region;
    }
    bench_end("randread");

    bench_begin("randwrite", randops, "requests");
    off = 0;
    for (uint32_t i = 0; i < randops; i++) {
        transfer(true, off, RAND_BYTES);
        off = (off + RAND_STEP) % region;
    }
    bench_end("randwrite");
    bench_done();
}
