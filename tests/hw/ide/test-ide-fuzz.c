/*
 * test-ide-fuzz.c - seeded random programming of the IDE controller:
 * random register writes and reads of every port (any width), plausible
 * and random ATA commands, PACKET commands with random CDBs, data port
 * bursts, PRD tables inside and outside RAM, bus-master starts and stops,
 * SRST pulses, hardware resets, tray and medium changes, and completions
 * delivered at random points.  Three disks (qcow2 and raw) and a DVD.
 *
 * Asserts that nothing crashes or trips an assertion (run it under ASan
 * too), and that every disk image changed only in sectors some accepted
 * WRITE command (or ERASE UNIT) covered: a shadow bitmap marks the range
 * of each write command the drive took on, read from the drive state
 * after every access.  The disc image must not change at all; qcow2
 * images must pass bdrv_check and `qemu-img check`.
 *
 * Default: 24 seeds x 4000 steps (a few seconds).  XBLK_LONG=1: 200 seeds
 * x 20000 steps.  XBLK_FUZZ_SEED=n runs only seed n (with the chosen steps).
 */
#include "ide-test.h"
#include "hw/ide/internal.h"
#include "util/cutils.h"

#define MiB (1ULL << 20)
#define RAM_SIZE (2 * MiB)
#define ISO_SIZE (1 * MiB)

typedef struct FuzzDisk {
    int index;
    bool qcow2;
    char *path;
    XblkDisk *disk;
    uint64_t sectors;
    uint8_t *covered;           /* per sector: some write may touch it */
    uint32_t seed;
} FuzzDisk;

typedef struct Fuzz {
    GRand *r;
    IDETest *t;
    FuzzDisk disk[3];
    char *iso_path;
    XblkDisk *iso;
    bool iso_inserted;
    unsigned steps;
} Fuzz;

static uint32_t rnd(Fuzz *f, uint32_t n)
{
    return n ? g_rand_int_range(f->r, 0, n) : 0;
}

static bool chance(Fuzz *f, unsigned percent)
{
    return rnd(f, 100) < percent;
}

/* ---- setup ---- */

static void disk_open(Fuzz *f, FuzzDisk *d, int index, bool qcow2,
                      uint64_t size, uint32_t seed)
{
    g_autofree char *name = g_strdup_printf("fuzz%d.%s", index,
                                            qcow2 ? "qcow2" : "raw");
    g_autofree char *node = g_strdup_printf("fuzz%d", index);
    d->index = index;
    d->qcow2 = qcow2;
    d->seed = seed;
    d->sectors = size / 512;
    d->covered = g_malloc0(d->sectors);
    if (qcow2) {
        d->path = test_path(name);
        g_unlink(d->path);
        d->disk = qcow2_image(d->path, node, NULL, size, size, seed, NULL);
    } else {
        d->path = raw_image(name, size, seed);
        d->disk = raw_disk_open(d->path, node, true);
    }
    IDEDriveConfig c = idet_config(IDE_DRIVE_HD, d->disk, name);
    c.werror = IDE_ERROR_ACTION_REPORT;
    idet_attach(f->t, index, &c);
}

static void fuzz_setup(Fuzz *f, uint32_t seed)
{
    f->r = g_rand_new_with_seed(seed);
    f->t = idet_new(RAM_SIZE);
    for (uint64_t i = 0; i < RAM_SIZE; i++) {
        f->t->th->ram[i] = g_rand_int(f->r);
    }
    disk_open(f, &f->disk[0], 0, true, 4 * MiB, seed * 3 + 1);
    disk_open(f, &f->disk[1], 2, false, 2 * MiB, seed * 3 + 2);
    disk_open(f, &f->disk[2], 3, true, 2 * MiB, seed * 3 + 3);
    f->iso_path = raw_image("fuzz.iso", ISO_SIZE, seed);
    f->iso = raw_disk_open(f->iso_path, "fuzz-cd", false);
    f->iso_inserted = true;
    IDEDriveConfig c = idet_config(IDE_DRIVE_CD, f->iso, "fuzz-cd");
    idet_attach(f->t, 1, &c);
}

/* ---- the shadow of commanded writes ---- */

static void mark(FuzzDisk *d, uint64_t lba, uint64_t count)
{
    for (uint64_t s = lba; s < lba + count && s < d->sectors; s++) {
        d->covered[s] = 1;
    }
}

/* Reads the drives' state: a write command in progress covers its
 * remaining range (a superset of what it still writes). */
static void observe(Fuzz *f)
{
    for (int i = 0; i < 3; i++) {
        FuzzDisk *d = &f->disk[i];
        IDEDrive *dr = &f->t->c->ch[d->index / 2].drive[d->index % 2];
        if (dr->op == IDE_OP_WRITE) {
            mark(d, dr->lba, dr->left);
        } else if (dr->op == IDE_OP_ERASE) {
            mark(d, 0, d->sectors);
        }
    }
}

/* ---- actions ---- */

static const uint32_t ports[] = {
    0x1F0, 0x1F1, 0x1F2, 0x1F3, 0x1F4, 0x1F5, 0x1F6, 0x1F7, 0x3F6, 0x3F7,
    0x170, 0x171, 0x172, 0x173, 0x174, 0x175, 0x176, 0x177, 0x376,
    0xFF60, 0xFF61, 0xFF62, 0xFF63, 0xFF64, 0xFF65, 0xFF66, 0xFF67,
    0xFF68, 0xFF6A, 0xFF6C, 0xFF6E, 0xFF6F, 0x1F8, 0x16F,
};

static const uint8_t ata_cmds[] = {
    0x08, 0x20, 0x21, 0x24, 0x25, 0x29, 0x30, 0x31, 0x34, 0x35, 0x39,
    0x40, 0x41, 0x42, 0x90, 0xA0, 0xA1, 0xC4, 0xC5, 0xC6, 0xC8, 0xC9,
    0xCA, 0xCB, 0xE0, 0xE1, 0xE2, 0xE3, 0xE5, 0xE6, 0xE7, 0xEA, 0xEC,
    0xEF, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0x00, 0xB0,
};

static const uint8_t packet_ops[] = {
    0x00, 0x03, 0x12, 0x1B, 0x1E, 0x25, 0x28, 0x43, 0x46, 0x4A, 0x5A,
    0xA8, 0xFF, 0x2A, 0xBE,
};

static uint32_t base_of(int ch)
{
    return ch ? 0x170 : 0x1F0;
}

static void act_random_write(Fuzz *f)
{
    static const unsigned sizes[] = { 1, 1, 1, 2, 4 };
    uint32_t port = ports[rnd(f, G_N_ELEMENTS(ports))];
    uint32_t val = g_rand_int(f->r);
    if (port == 0x3F6 || port == 0x376) {
        val &= chance(f, 80) ? 0x82 : 0xFF;   /* SRST rarely stuck */
    }
    ide_ioport_write(f->t->c, port, val, sizes[rnd(f, 5)]);
}

static void act_random_read(Fuzz *f)
{
    static const unsigned sizes[] = { 1, 1, 1, 2, 4 };
    uint32_t port = ports[rnd(f, G_N_ELEMENTS(ports))];
    ide_ioport_read(f->t->c, port, sizes[rnd(f, 5)]);
}

/* A command with registers a driver might set, sometimes nonsense. */
static void act_ata_command(Fuzz *f)
{
    IDETest *t = f->t;
    int ch = rnd(f, 2);
    uint32_t base = base_of(ch);
    int unit = rnd(f, 2);
    uint64_t span = unit == 0 && ch == 0 ? 8192 : 4096;
    uint64_t lba = chance(f, 90) ? rnd(f, span + 64) : g_rand_int(f->r);
    uint32_t count = chance(f, 80) ? rnd(f, 40) : rnd(f, 70000);
    uint8_t cmd = chance(f, 90) ? ata_cmds[rnd(f, G_N_ELEMENTS(ata_cmds))]
                                : (uint8_t)g_rand_int(f->r);
    static const uint8_t feats[] = { 0x02, 0x82, 0x03, 0x66, 0xCC, 0x00,
                                     0x01 };
    outb(t, base + 1, chance(f, 80) ? feats[rnd(f, G_N_ELEMENTS(feats))]
                                    : g_rand_int(f->r));
    if (chance(f, 50)) {
        ata_regs48(t, base, unit, lba, count);
    } else if (chance(f, 85)) {
        ata_regs28(t, base, unit, lba, count);
    } else {                    /* CHS, or whatever the bytes say */
        outb(t, base + 6, 0xA0 | unit << 4 | rnd(f, 16));
        outb(t, base + 2, count);
        outb(t, base + 3, rnd(f, 70));
        outb(t, base + 4, rnd(f, 10));
        outb(t, base + 5, 0);
    }
    if (cmd == 0xEF && chance(f, 50)) {
        static const uint8_t modes[] = { 0x00, 0x0C, 0x22, 0x45, 0x46 };
        outb(t, base + 2, modes[rnd(f, G_N_ELEMENTS(modes))]);
    }
    if (cmd == 0xC6 && chance(f, 70)) {
        outb(t, base + 2, 1 << rnd(f, 6));
    }
    ata_cmd(t, base, cmd);
}

static void act_packet(Fuzz *f)
{
    IDETest *t = f->t;
    uint8_t cdb[12];
    for (int i = 0; i < 12; i++) {
        cdb[i] = chance(f, 60) ? 0 : g_rand_int(f->r);
    }
    cdb[0] = packet_ops[rnd(f, G_N_ELEMENTS(packet_ops))];
    if ((cdb[0] == 0x28 || cdb[0] == 0xA8) && chance(f, 70)) {
        memset(cdb + 1, 0, 11);
        cdb[5] = rnd(f, 600) & 0xFF;
        cdb[4] = rnd(f, 3);
        cdb[cdb[0] == 0x28 ? 8 : 9] = rnd(f, 80);
    }
    uint16_t bcl = chance(f, 70) ? 0xFFFE : g_rand_int(f->r);
    ata_select(t, PRI, 1);
    outb(t, PRI + 1, chance(f, 30) ? 1 : (chance(f, 90) ? 0 : rnd(f, 8)));
    outb(t, PRI + 4, bcl);
    outb(t, PRI + 5, bcl >> 8);
    ata_cmd(t, PRI, 0xA0);
    unsigned n = chance(f, 90) ? 12 : rnd(f, 14);
    for (unsigned i = 0; i + 1 < n; i += 2) {
        outw(t, PRI, cdb[i] | cdb[i + 1] << 8);
    }
}

static void act_data(Fuzz *f)
{
    IDETest *t = f->t;
    uint32_t base = base_of(rnd(f, 2));
    unsigned words = chance(f, 70) ? 256 : rnd(f, 40000);
    bool wide = chance(f, 30);
    bool write = chance(f, 50);
    for (unsigned i = 0; i < words; i += wide ? 2 : 1) {
        if (write) {
            ide_ioport_write(t->c, base, g_rand_int(f->r), wide ? 4 : 2);
        } else {
            ide_ioport_read(t->c, base, wide ? 4 : 2);
        }
        if (i % 256 == 255) {
            observe(f);
        }
    }
}

/* A PRD table: mostly sane regions inside RAM, sometimes not. */
static void act_prd(Fuzz *f)
{
    IDETest *t = f->t;
    uint32_t bm = rnd(f, 2) ? BM_SEC : BM_PRI;
    uint32_t table = chance(f, 90) ? rnd(f, RAM_SIZE - 64) & ~3u
                                   : g_rand_int(f->r);
    unsigned n = 1 + rnd(f, 6);
    for (unsigned i = 0; i < n && (uint64_t)table + 8 * (i + 1) <= RAM_SIZE;
         i++) {
        uint32_t addr, count;
        if (chance(f, 80)) {
            count = (1 + rnd(f, 128)) * 512 & 0xFFFF;
            addr = rnd(f, RAM_SIZE / 65536) * 65536 +
                   (rnd(f, 65536 - (count ? count : 65536) + 1) & ~1u);
        } else {
            addr = g_rand_int(f->r);
            count = rnd(f, 65536);
        }
        prd_put(t, table + 8 * i, addr, count,
                i + 1 == n ? chance(f, 90) : chance(f, 5));
    }
    outl(t, bm + 4, table);
    if (chance(f, 70)) {
        outb(t, bm + 2, 0x06);
        outb(t, bm, (chance(f, 50) ? 0x08 : 0) | (chance(f, 80) ? 1 : 0));
    }
}

static void act_bm(Fuzz *f)
{
    uint32_t bm = rnd(f, 2) ? BM_SEC : BM_PRI;
    outb(f->t, bm, g_rand_int(f->r) & 0x09);
}

static void act_deliver(Fuzz *f)
{
    if (chance(f, 30)) {
        test_host_run(f->t->th);
        return;
    }
    for (unsigned n = 1 + rnd(f, 4); n && test_host_step(f->t->th); n--) {
        observe(f);
    }
}

static void act_reset(Fuzz *f)
{
    if (chance(f, 70)) {
        uint32_t ctl = rnd(f, 2) ? 0x376 : 0x3F6;
        outb(f->t, ctl, 0x04);
        if (chance(f, 50)) {
            act_deliver(f);
        }
        outb(f->t, ctl, 0x00);
    } else {
        ide_reset(f->t->c);
    }
}

static void act_media(Fuzz *f)
{
    IDEController *c = f->t->c;
    GError *err = NULL;
    switch (rnd(f, 5)) {
    case 0:
        ide_cd_open_tray(c, 1, chance(f, 50), &err);
        break;
    case 1:
        ide_cd_close_tray(c, 1, &err);
        break;
    case 2:
        if (ide_cd_eject(c, 1, chance(f, 50), &err)) {
            f->iso_inserted = false;
        }
        break;
    case 3:
        if (ide_cd_set_medium(c, 1, f->iso, &err)) {
            f->iso_inserted = true;
        }
        break;
    default:
        if (ide_cd_set_medium(c, 1, NULL, &err)) {
            f->iso_inserted = false;
        }
    }
    g_clear_error(&err);
}

/* A sane PRD table for len bytes at a random place; sometimes flawed. */
static void sane_prd(Fuzz *f, uint32_t bm, uint64_t len, bool to_ram)
{
    IDETest *t = f->t;
    uint32_t table = (rnd(f, RAM_SIZE / 65536) * 65536) | 0xF000;
    uint32_t data = rnd(f, RAM_SIZE / 65536 / 2) * 65536;
    unsigned i = 0;
    while (len && i < 511) {
        uint32_t n = MIN(len, 0x10000);
        if (chance(f, 3)) {
            n = MIN(n, 2 * (1 + rnd(f, 0x8000)));
        }
        bool last = n == len || chance(f, 1);
        prd_put(t, table + 8 * i, data, n & 0xFFFF, last);
        data = (data + 0x10000) % RAM_SIZE;
        len -= n;
        i++;
        if (last) {
            break;
        }
    }
    if (chance(f, 2)) {
        prd_put(t, table, g_rand_int(f->r), g_rand_int(f->r), true);
    }
    outb(t, bm, 0);
    outb(t, bm + 2, 0x06);
    outl(t, bm + 4, table);
    outb(t, bm, (to_ram ^ chance(f, 3) ? 0x08 : 0) | 1);
}

/* Moves the data a DRQ phase wants, now and then stopping early. */
static void serve_drq(Fuzz *f, uint32_t base, IDEDrive *dr)
{
    IDETest *t = f->t;
    for (int rounds = 0; rounds < 200; rounds++) {
        test_host_run(t->th);
        observe(f);
        uint8_t st = inb(t, base + 0x206);
        if (!(st & ST_DRQ) || (st & ST_BSY) || chance(f, 2)) {
            break;
        }
        uint32_t n = dr->io_end > dr->io_pos ? dr->io_end - dr->io_pos : 2;
        bool wide = chance(f, 30);
        for (uint32_t i = 0; i < n; i += wide ? 4 : 2) {
            if (dr->xfer == IDE_XFER_PIO_OUT) {
                ide_ioport_write(t->c, base, g_rand_int(f->r), wide ? 4 : 2);
            } else {
                ide_ioport_read(t->c, base, wide ? 4 : 2);
            }
        }
        observe(f);
    }
    inb(t, base + 7);
}

/* A whole media command the way a driver does it. */
static void act_scenario(Fuzz *f)
{
    static const uint8_t hd_cmds[] = { 0x20, 0x24, 0x30, 0x34, 0xC4, 0xC5,
                                       0x29, 0x39, 0xC8, 0x25, 0xCA, 0x35,
                                       0x40, 0x42, 0xE7, 0xEC };
    IDETest *t = f->t;
    int ch = rnd(f, 2), unit = rnd(f, 2);
    uint32_t base = base_of(ch), bm = ch ? BM_SEC : BM_PRI;
    IDEDrive *dr = &t->c->ch[ch].drive[unit];
    if (ch == 0 && unit == 1) {
        uint8_t cdb[12] = { 0x28 };
        bool dma = chance(f, 50);
        uint32_t lba = rnd(f, ISO_SIZE / 2048 + 4), n = rnd(f, 80);
        be32_write(cdb + 2, lba);
        be16_write(cdb + 7, n);
        if (dma) {
            sane_prd(f, bm, n * 2048ULL, true);
        }
        ata_select(t, PRI, 1);
        outb(t, PRI + 1, dma);
        outb(t, PRI + 4, 0xFE);
        outb(t, PRI + 5, chance(f, 70) ? 0xFF : rnd(f, 256));
        ata_cmd(t, PRI, 0xA0);
        pio_write(t, PRI, cdb, 12);
        serve_drq(f, base, dr);
        return;
    }
    uint64_t sectors = ch == 0 ? 8192 : 4096;
    uint8_t cmd = hd_cmds[rnd(f, G_N_ELEMENTS(hd_cmds))];
    bool write = cmd == 0x30 || cmd == 0x34 || cmd == 0xC5 || cmd == 0x39 ||
                 cmd == 0xCA || cmd == 0x35;
    /* Writes stay small so that most sectors keep their first contents
     * and the shadow check has something to check. */
    uint32_t count = 1 + rnd(f, chance(f, 90) ? (write ? 12 : 64) : 600);
    uint64_t lba = rnd(f, sectors + 8);
    bool ext = cmd == 0x24 || cmd == 0x34 || cmd == 0x29 || cmd == 0x39 ||
               cmd == 0x25 || cmd == 0x35 || cmd == 0x42;
    if (!ext) {
        count = MIN(count, 256);
    }
    if (cmd == 0xC8 || cmd == 0x25 || cmd == 0xCA || cmd == 0x35) {
        sane_prd(f, bm, count * 512ULL, cmd == 0xC8 || cmd == 0x25);
    }
    if (ext) {
        ata_regs48(t, base, unit, lba, count);
    } else {
        ata_regs28(t, base, unit, lba, count & 0xFF);
    }
    ata_cmd(t, base, cmd);
    observe(f);
    serve_drq(f, base, dr);
    if (chance(f, 50)) {
        outb(t, bm, inb(t, bm) & 0x08);
    }
}

/* SECURITY commands with passwords from a small set, so that some
 * match: locking, unlocking, the attempt counter, now and then an erase. */
static void act_security(Fuzz *f)
{
    static const char *pws[] = { "alpha", "beta",
                                 "                                " };
    IDETest *t = f->t;
    int ch = rnd(f, 2), unit = ch ? rnd(f, 2) : 0;
    uint32_t base = base_of(ch);
    uint8_t buf[512] = { 0 };
    uint8_t cmd = 0xF1 + rnd(f, 6);
    if (cmd == 0xF4 && chance(f, 70)) {
        cmd = 0xF2;
    }
    if (cmd == 0xF4) {
        ata_select(t, base, unit);
        ata_cmd(t, base, 0xF3);
        inb(t, base + 7);
    }
    buf[0] = rnd(f, 2);
    buf[1] = rnd(f, 2);
    const char *pw = pws[rnd(f, 3)];
    memcpy(buf + 2, pw, strlen(pw));
    ata_select(t, base, unit);
    ata_cmd(t, base, cmd);
    if (inb(t, base + 0x206) & ST_DRQ) {
        pio_write(t, base, buf, chance(f, 95) ? 512 : rnd(f, 512) & ~1);
    }
    observe(f);
    if (chance(f, 50)) {
        test_host_run(t->th);
    }
    observe(f);
}

static void fuzz_step(Fuzz *f)
{
    unsigned p = rnd(f, 1000);
    if (p < 180) {
        act_random_write(f);
    } else if (p < 260) {
        act_random_read(f);
    } else if (p < 360) {
        act_ata_command(f);
    } else if (p < 480) {
        act_scenario(f);
    } else if (p < 560) {
        act_packet(f);
    } else if (p < 700) {
        act_data(f);
    } else if (p < 790) {
        act_prd(f);
    } else if (p < 830) {
        act_bm(f);
    } else if (p < 970) {
        act_deliver(f);
    } else if (p < 985) {
        act_reset(f);
    } else if (p < 992) {
        act_media(f);
    } else {
        act_security(f);
    }
    observe(f);
}

/* ---- the checks ---- */

static void check_disk(FuzzDisk *d, uint32_t run_seed)
{
    uint64_t size = d->sectors * 512;
    uint8_t *got = g_malloc(size), *want = g_malloc(size);
    g_assert_cmpint(disk_pread(d->disk, 0, got, size), ==, 0);
    pattern_fill(want, size, d->seed, 0);
    for (uint64_t s = 0; s < d->sectors; s++) {
        if (!d->covered[s] && memcmp(got + s * 512, want + s * 512, 512)) {
            g_error("seed %u: disk %d sector %" G_GUINT64_FORMAT " changed "
                    "without a write command covering it", run_seed,
                    d->index, s);
        }
    }
    g_free(got);
    g_free(want);
    if (d->qcow2) {
        check_disk_node(d->disk, false);
    }
    xblk_disk_close(d->disk);
    if (d->qcow2) {
        qemu_check(d->path, false);
    }
    g_unlink(d->path);
    g_free(d->path);
    g_free(d->covered);
}

static void fuzz_finish(Fuzz *f, uint32_t seed)
{
    test_host_run(f->t->th);
    unsigned covered = 0;
    for (int i = 0; i < 3; i++) {
        for (uint64_t s = 0; s < f->disk[i].sectors; s++) {
            covered += f->disk[i].covered[s];
        }
    }
    g_test_message("seed %u: %u requests, %u irqs, %u sectors written to",
                   seed, f->t->th->io_submitted,
                   f->t->th->irq_raised[IRQ_PRI] +
                   f->t->th->irq_raised[IRQ_SEC], covered);
    g_assert_cmpuint(ide_in_flight(f->t->c), ==, 0);
    idet_free(f->t);
    for (int i = 0; i < 3; i++) {
        check_disk(&f->disk[i], seed);
    }
    xblk_disk_close(f->iso);
    uint8_t *want = g_malloc(ISO_SIZE);
    g_autofree char *got = NULL;
    gsize len;
    pattern_fill(want, ISO_SIZE, seed, 0);
    g_assert_true(g_file_get_contents(f->iso_path, &got, &len, NULL));
    g_assert_cmpmem(got, len, want, ISO_SIZE);
    g_free(want);
    g_unlink(f->iso_path);
    g_free(f->iso_path);
    g_rand_free(f->r);
}

static void run_seed(gconstpointer data)
{
    uint32_t seed = GPOINTER_TO_UINT(data);
    bool is_long = g_getenv("XBLK_LONG") != NULL;
    Fuzz f = { 0 };
    f.steps = is_long ? 20000 : 4000;
    fuzz_setup(&f, seed);
    for (unsigned i = 0; i < f.steps; i++) {
        fuzz_step(&f);
    }
    fuzz_finish(&f, seed);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir_setup_in_memory();
    idet_engine_start();
    const char *one = g_getenv("XBLK_FUZZ_SEED");
    unsigned seeds = g_getenv("XBLK_LONG") ? 200 : 24;
    if (one) {
        uint32_t s = strtoul(one, NULL, 0);
        g_autofree char *name = g_strdup_printf("/ide-fuzz/seed-%u", s);
        g_test_add_data_func(name, GUINT_TO_POINTER(s), run_seed);
    } else {
        for (unsigned s = 1; s <= seeds; s++) {
            g_autofree char *name = g_strdup_printf("/ide-fuzz/seed-%u", s);
            g_test_add_data_func(name, GUINT_TO_POINTER(s), run_seed);
        }
    }
    int ret = g_test_run();
    idet_engine_stop();
    test_dir_cleanup();
    return ret;
}
