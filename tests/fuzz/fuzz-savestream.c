/*
 * fuzz-savestream.c - libFuzzer target: the save-state stream (".xss",
 * migration/savestream.c, docs/savestate.md) loaded into a console built
 * from the real devices (tests/migration/machine-test.h).
 *
 * Once per process: a TestMachine on raw images in the scratch folder
 * (fuzz-common.h), driven into the tests' busy scenario, and its stream
 * saved as the baseline.
 *
 * Per input, twice: as given, and with every checksum it carries made
 * right (the header CRC, each record's header CRC and payload checksum,
 * found by walking the records as docs/savestate.md lays them out), so
 * that mutations reach the metadata, RAM and device decoders instead of
 * stopping at a checksum.  Each time:
 *   1. xss_reader_open_buffer(), the metadata, the RAM layout and
 *      xss_reader_verify() (every checksum, every chunk decoded);
 *   2. the whole load into the machine (tm_load: machine type and RAM
 *      size, every device section checked before anything changes, RAM,
 *      commit with each device's post_load);
 *   3. after a load that succeeded: what a guest would do next with the
 *      loaded state - the IDE data and status ports of both channels,
 *      outstanding disk requests run, the PIC acknowledged, timers run
 *      for 5 ms of virtual time, the GPU at a vblank, a short vCPU slice
 *      - and then the baseline is loaded again (it must load), so every
 *      input starts from the same machine.
 * Loaded states may leave disk writes on the machine's own scratch hard
 * disk; nothing else outside memory changes.
 */
#include "fuzz-common.h"
#include "tests/migration/machine-test.h"
#include <zlib.h>

static TestMachine *tm;
static GByteArray *baseline;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    test_dir = g_strdup(fuzz_tmpdir());
    idet_engine_start();
    tm = tm_new("fuzz", 1000000);
    tm_scenario(tm);
    baseline = tm_save(tm);
    return 0;
}

static uint64_t le64(const uint8_t *p)
{
    return fuzz_le32(p) | (uint64_t)fuzz_le32(p + 4) << 32;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = v;
    p[1] = v >> 8;
    p[2] = v >> 16;
    p[3] = v >> 24;
}

/* Makes every checksum of s right, as far as its lengths can be walked;
 * returns whether anything changed. */
static bool fix_checksums(uint8_t *s, size_t size)
{
    bool changed = false;
    if (size < 16) {
        return false;
    }
    uint32_t format = fuzz_le32(s + 8), hlen = fuzz_le32(s + 12);
    if (hlen < 31 || hlen > 4096 || hlen > size) {
        return false;
    }
    uint32_t crc = crc32(0, s, hlen - 4);
    changed |= fuzz_le32(s + hlen - 4) != crc;
    put_le32(s + hlen - 4, crc);
    size_t off = hlen;
    while (size - off >= 29) {
        uint8_t *r = s + off;
        size_t n = r[24];
        if (size - off < 29 + n) {
            break;
        }
        uint64_t len = le64(r + 12);
        if (len > size - off - 29 - n) {
            break;
        }
        const uint8_t *payload = r + 29 + n;
        uint32_t sum = format >= 2 ? (uint32_t)XXH3_64bits(payload, len)
                                   : crc32(0, payload, len);
        changed |= fuzz_le32(r + 20) != sum;
        put_le32(r + 20, sum);
        crc = crc32(0, r, 25 + n);
        changed |= fuzz_le32(r + 25 + n) != crc;
        put_le32(r + 25 + n, crc);
        off += 29 + n + len;
    }
    return changed;
}

static void exercise(void)
{
    IDETest it = { tm->th, tm->ide };
    IDETest *t = &it;
    static const uint32_t bases[] = { PRI, SEC };
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < 260; i++) {
            inw(t, bases[c]);
        }
        ata_status(t, bases[c]);
        ata_error(t, bases[c]);
        inb(t, (c ? BM_SEC : BM_PRI) + 2);
    }
    test_host_run(tm->th);
    for (int i = 0; i < 3; i++) {
        pic_acknowledge(tm->pic);
        tm_out(tm, 0x20, 0x20, 1);
    }
    tm_advance(tm, 5000000, 250000);
    tm_in(tm, 0x40, 1);
    tm_in(tm, SMC_PORT_BASE + 0x14, 4);
    tm_in(tm, GAMEPAD_PORT_BASE, 2);
    gpu_vblank(tm->gpu);
    cpu_run(tm->cpu, 20);
    test_host_run(tm->th);
}

static void load(const uint8_t *data, size_t size)
{
    GError *err = NULL;
    XssReader *r = xss_reader_open_buffer(data, size, &err);
    if (!r) {
        g_clear_error(&err);
        return;
    }
    XssMetadata md;
    if (xss_reader_metadata(r, &md, &err)) {
        xss_metadata_clear(&md);
    }
    g_clear_error(&err);
    XssRamLayout layout;
    xss_reader_ram_layout(r, &layout);
    xss_reader_verify(r, &err);
    g_clear_error(&err);
    xss_reader_free(r);

    if (!tm_load(tm, data, size, &err)) {
        g_clear_error(&err);
        return;
    }
    exercise();
    if (!tm_load(tm, baseline->data, baseline->len, &err)) {
        g_error("the baseline no longer loads: %s", err->message);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tm) {
        LLVMFuzzerInitialize(NULL, NULL);
    }
    load(data, size);
    uint8_t *fixed = g_memdup2(data, size ? size : 1);
    if (fix_checksums(fixed, size)) {
        load(fixed, size);
    }
    g_free(fixed);
    return 0;
}
