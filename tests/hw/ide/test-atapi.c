/*
 * test-atapi.c - the DVD drive (primary slave, as on the console, behind a
 * hard disk master) driven through the task file: signatures after power
 * on, SRST, EXECUTE DEVICE DIAGNOSTIC and DEVICE RESET; IDENTIFY PACKET
 * DEVICE; the PACKET protocol in PIO (byte count limits, interrupt reason,
 * DRQ blocks) and DMA; every packet command of the drive with its sense
 * data (NOT READY / MEDIUM NOT PRESENT with the tray qualifiers, ILLEGAL
 * REQUEST for bad opcodes, fields and LBAs, UNIT ATTENTION after a medium
 * change); the tray and medium functions of ide.h with QEMU's lock check;
 * tray movements reported to the host once each, whoever makes them, and
 * forced opening unlocking the tray; read errors under rerror=report; a
 * medium pulled mid-read.
 */
#include "ide-test.h"
#include "util/cutils.h"

#define MiB (1ULL << 20)
#define ISO_SECTORS 512
#define ISO_SIZE (ISO_SECTORS * 2048ULL)
#define SEED 4242
#define CD 1                    /* the slave */
#define TABLE 0x1000

typedef struct CDT {
    IDETest *t;
    char *iso, *hd_path;
    XblkDisk *disc, *hd;
    BlockDriverState *dbg;      /* blkdebug filter, or NULL */
} CDT;

static CDT *cd_open(bool medium, bool blkdebug)
{
    CDT *c = g_new0(CDT, 1);
    c->iso = raw_image("disc.iso", ISO_SIZE, SEED);
    c->hd_path = raw_image("hd.raw", 1 * MiB, 1);
    if (blkdebug) {
        g_autofree char *p = opt_escape(c->iso);
        c->disc = idet_disk_open("driver=raw,node-name=disc,read-only=on,"
                                 "file.driver=blkdebug,"
                                 "file.node-name=disc-dbg,file.file.driver="
                                 "file,file.file.filename=%s", p);
        c->dbg = blkdebug_node("disc-dbg");
    } else {
        c->disc = raw_disk_open(c->iso, "disc", false);
    }
    c->hd = raw_disk_open(c->hd_path, "hd0", true);
    c->t = idet_new(1 * MiB);
    IDEDriveConfig hd = idet_config(IDE_DRIVE_HD, c->hd, "ide0-hd0");
    IDEDriveConfig cd = idet_config(IDE_DRIVE_CD, medium ? c->disc : NULL,
                                    "ide0-cd1");
    idet_attach(c->t, 0, &hd);
    idet_attach(c->t, 1, &cd);
    return c;
}

static void cd_close(CDT *c)
{
    idet_free(c->t);
    xblk_disk_close(c->disc);
    xblk_disk_close(c->hd);
    /* The disc is never written: `qemu-img compare` with a fresh copy. */
    g_autofree char *ref = raw_image("disc-ref.iso", ISO_SIZE, SEED);
    char *argv[] = { "qemu-img", "compare", "-q", "-f", "raw", "-F", "raw",
                     ref, c->iso, NULL };
    g_assert_cmpint(run_tool(argv, NULL, NULL), ==, 0);
    g_unlink(ref);
    g_unlink(c->iso);
    g_unlink(c->hd_path);
    g_free(c->iso);
    g_free(c->hd_path);
    g_free(c);
}

/* ---- the PACKET protocol ---- */

static void send_packet(IDETest *t, const uint8_t *cdb, uint16_t bcl,
                        uint8_t features)
{
    uint8_t p[12] = { 0 };
    memcpy(p, cdb, 12);
    unsigned irq = t->th->irq_raised[IRQ_PRI];
    ata_select(t, PRI, CD);
    ata_feature(t, PRI, features);
    outb(t, PRI + 4, bcl);
    outb(t, PRI + 5, bcl >> 8);
    ata_cmd(t, PRI, 0xA0);
    /* The packet is asked for at once, without an interrupt. */
    g_assert_cmphex(inb(t, PRI_CTL), ==, ST_DRDY | ST_DRQ);
    g_assert_cmphex(inb(t, PRI + 2) & 3, ==, 1);       /* CoD */
    g_assert_cmpuint(t->th->irq_raised[IRQ_PRI], ==, irq);
    pio_write(t, PRI, p, 12);
}

typedef struct Reply {
    uint8_t status, error;
    size_t len;
    unsigned blocks;
    uint8_t data[256 * 1024];
} Reply;

/* Runs a packet command in PIO; collects the data of every DRQ block. */
static Reply *atapi_pio(IDETest *t, const uint8_t *cdb, uint16_t bcl)
{
    Reply *r = g_new0(Reply, 1);
    uint16_t limit = bcl ? bcl & ~1 : 0xFFFE;
    send_packet(t, cdb, bcl, 0);
    for (;;) {
        idet_run(t);
        uint8_t st = ata_status(t, PRI);
        g_assert_false(st & ST_BSY);
        if (!(st & ST_DRQ)) {
            r->status = st;
            r->error = ata_error(t, PRI);
            g_assert_cmphex(inb(t, PRI + 2) & 3, ==, 3);   /* CoD | IO */
            return r;
        }
        g_assert_cmphex(inb(t, PRI + 2) & 3, ==, 2);       /* IO */
        unsigned n = inb(t, PRI + 4) | inb(t, PRI + 5) << 8;
        g_assert_cmpuint(n, >, 0);
        g_assert_cmpuint(n, <=, limit);
        g_assert_cmpuint(r->len + n, <=, sizeof(r->data));
        uint8_t tmp[0x10000];
        pio_read(t, PRI, tmp, n + (n & 1));
        memcpy(r->data + r->len, tmp, n);
        r->len += n;
        r->blocks++;
    }
}

#define GOOD(r) do {                                                      \
        g_assert_cmphex((r)->status, ==, ST_DRDY);                        \
    } while (0)

static void sense(IDETest *t, uint8_t *key, uint8_t *asc, uint8_t *ascq)
{
    uint8_t cdb[12] = { 0x03, 0, 0, 0, 18 };
    g_autofree Reply *r = atapi_pio(t, cdb, 0xFFFE);
    GOOD(r);
    g_assert_cmpuint(r->len, ==, 18);
    g_assert_cmphex(r->data[0], ==, 0x70);
    g_assert_cmpuint(r->data[7], ==, 10);
    *key = r->data[2] & 0x0F;
    *asc = r->data[12];
    *ascq = r->data[13];
}

/* The command ends in CHECK CONDITION with this sense. */
static void expect_check(IDETest *t, const uint8_t *cdb, uint8_t key,
                         uint8_t asc, uint8_t ascq)
{
    g_autofree Reply *r = atapi_pio(t, cdb, 0xFFFE);
    uint8_t k, a, q;
    g_assert_cmphex(r->status, ==, ST_DRDY | ST_ERR);
    g_assert_cmphex(r->error >> 4, ==, key);
    g_assert_cmpuint(r->len, ==, 0);
    sense(t, &k, &a, &q);
    g_assert_cmphex(k, ==, key);
    g_assert_cmphex(a, ==, asc);
    g_assert_cmphex(q, ==, ascq);
}

static void expect_good(IDETest *t, const uint8_t *cdb)
{
    g_autofree Reply *r = atapi_pio(t, cdb, 0xFFFE);
    GOOD(r);
}

static const uint8_t TUR[12] = { 0x00 };

static void check_iso(const uint8_t *buf, uint64_t lba, uint64_t sectors)
{
    uint64_t len = sectors * 2048;
    uint8_t *want = g_malloc(len);
    pattern_fill(want, len, SEED, lba * 2048);
    assert_same_bytes(buf, want, len, lba * 2048, "CD data");
    g_free(want);
}

static void check_signature(IDETest *t)
{
    g_assert_cmphex(inb(t, PRI + 2), ==, 1);
    g_assert_cmphex(inb(t, PRI + 3), ==, 1);
    g_assert_cmphex(inb(t, PRI + 4), ==, 0x14);
    g_assert_cmphex(inb(t, PRI + 5), ==, 0xEB);
}

/* ---- tests ---- */

static void test_signature(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    ata_select(t, PRI, CD);
    check_signature(t);
    g_assert_cmphex(ata_status(t, PRI), ==, 0x00);
    g_assert_cmphex(ata_error(t, PRI), ==, 0x01);
    /* IDENTIFY DEVICE: aborted, signature shown. */
    outb(t, PRI + 4, 0x55);
    ata_cmd(t, PRI, 0xEC);
    assert_st(t, PRI, ST_DRDY | ST_ERR, ER_ABRT);
    check_signature(t);
    /* EXECUTE DEVICE DIAGNOSTIC: both devices; device 0 reports. */
    outb(t, PRI + 4, 0x55);
    ata_cmd(t, PRI, 0x90);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_OK);     /* the disk */
    g_assert_cmphex(ata_error(t, PRI), ==, 0x01);
    ata_select(t, PRI, CD);
    check_signature(t);
    g_assert_cmphex(ata_status(t, PRI), ==, 0x00);
    /* SRST. */
    outb(t, PRI + 4, 0x55);
    outb(t, PRI_CTL, 0x04);
    outb(t, PRI_CTL, 0x00);
    ata_select(t, PRI, CD);
    check_signature(t);
    /* DEVICE RESET while BSY with a read in flight: no interrupt. */
    uint8_t rd[12] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 4 };
    send_packet(t, rd, 0xFFFE, 0);
    g_assert_cmphex(inb(t, PRI_CTL) & ST_BSY, ==, ST_BSY);
    unsigned irq = t->th->irq_raised[IRQ_PRI];
    ata_cmd(t, PRI, 0x08);
    g_assert_cmphex(inb(t, PRI_CTL), ==, 0x00);
    check_signature(t);
    idet_run(t);
    g_assert_cmpuint(t->th->irq_raised[IRQ_PRI], ==, irq);
    g_assert_cmphex(ata_status(t, PRI), ==, 0x00);
    g_assert_cmphex(inb(t, PRI + 6) & 0x10, ==, 0x10);  /* still slave */
    /* The drive works afterwards (a medium change was not reported). */
    expect_good(t, TUR);
    cd_close(c);
}

static void test_identify_packet(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    uint16_t w[256];
    unsigned irq = t->th->irq_raised[IRQ_PRI];
    ata_identify(t, PRI, CD, 0xA1, w);
    g_assert_cmpuint(t->th->irq_raised[IRQ_PRI], ==, irq + 1);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_DRDY);
    g_assert_cmphex(w[0], ==, 0x85C0);
    g_autofree char *model = ata_string(w, 27, 20);
    g_assert_cmpstr(model, ==, "XBLK DVD-ROM");
    g_assert_cmphex(w[49] & 0x0300, ==, 0x0300);
    g_assert_cmphex(w[82] & 0x0010, ==, 0x0010);
    uint8_t sum = 0;
    for (int i = 0; i < 256; i++) {
        sum += (w[i] & 0xFF) + (w[i] >> 8);
    }
    g_assert_cmpuint(sum, ==, 0);
    /* The disk refuses IDENTIFY PACKET DEVICE. */
    ata_select(t, PRI, 0);
    ata_cmd(t, PRI, 0xA1);
    assert_st(t, PRI, ST_OK | ST_ERR, ER_ABRT);
    cd_close(c);
}

static void test_ata_commands_on_cd(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    static const uint8_t refused[] = { 0x20, 0x30, 0xC8, 0xE7, 0x40, 0xF1,
                                       0xC6, 0x00 };
    for (size_t i = 0; i < G_N_ELEMENTS(refused); i++) {
        ata_select(t, PRI, CD);
        ata_cmd(t, PRI, refused[i]);
        assert_st(t, PRI, ST_DRDY | ST_ERR, ER_ABRT);
    }
    ata_feature(t, PRI, 0x02);          /* no write cache on a DVD */
    ata_cmd(t, PRI, 0xEF);
    assert_st(t, PRI, ST_DRDY | ST_ERR, ER_ABRT);
    ata_feature(t, PRI, 0x03);
    outb(t, PRI + 2, 0x22);
    ata_cmd(t, PRI, 0xEF);
    assert_st(t, PRI, ST_DRDY, 0);
    uint16_t w[256];
    ata_identify(t, PRI, CD, 0xA1, w);
    g_assert_cmphex(w[63], ==, 0x0407);
    g_assert_cmphex(w[88], ==, 0x003F);
    outb(t, PRI + 2, 0);
    ata_cmd(t, PRI, 0xE5);
    assert_st(t, PRI, ST_DRDY, 0);
    g_assert_cmphex(inb(t, PRI + 2), ==, 0xFF);
    ata_cmd(t, PRI, 0xE0);
    assert_st(t, PRI, ST_DRDY, 0);
    ata_cmd(t, PRI, 0xE5);
    assert_st(t, PRI, ST_DRDY, 0);
    g_assert_cmphex(inb(t, PRI + 2), ==, 0x00);
    /* Overlapped PACKET is not offered. */
    ata_feature(t, PRI, 0x02);
    ata_cmd(t, PRI, 0xA0);
    assert_st(t, PRI, ST_DRDY | ST_ERR, ER_ABRT);
    cd_close(c);
}

static void test_not_ready(void)
{
    CDT *c = cd_open(false, false);
    IDETest *t = c->t;
    uint8_t cap[12] = { 0x25 };
    uint8_t rd[12] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1 };
    uint8_t toc[12] = { 0x43, 0, 0, 0, 0, 0, 0, 0, 12 };
    expect_check(t, TUR, 0x02, 0x3A, 0x01);
    expect_check(t, cap, 0x02, 0x3A, 0x01);
    expect_check(t, rd, 0x02, 0x3A, 0x01);
    expect_check(t, toc, 0x02, 0x3A, 0x01);
    g_assert_true(ide_cd_open_tray(t->c, 1, false, NULL));
    expect_check(t, TUR, 0x02, 0x3A, 0x02);
    /* Commands that need no medium still work. */
    uint8_t inq[12] = { 0x12, 0, 0, 0, 36 };
    g_autofree Reply *r = atapi_pio(t, inq, 0xFFFE);
    GOOD(r);
    g_assert_cmpuint(r->len, ==, 36);
    uint8_t ms[12] = { 0x5A, 0, 0x2A, 0, 0, 0, 0, 0, 64 };
    g_autofree Reply *m = atapi_pio(t, ms, 0xFFFE);
    GOOD(m);
    /* Inserting into the open tray, then closing: UNIT ATTENTION once. */
    GError *err = NULL;
    g_assert_true(ide_cd_set_medium(t->c, 1, c->disc, &err));
    expect_check(t, TUR, 0x02, 0x3A, 0x02);
    g_assert_true(ide_cd_close_tray(t->c, 1, &err));
    expect_check(t, TUR, 0x06, 0x28, 0x00);
    expect_good(t, TUR);
    cd_close(c);
}

static void test_unit_attention(void)
{
    CDT *c = cd_open(false, false);
    IDETest *t = c->t;
    uint8_t k, a, q;
    /* Inserted into a closed, empty drive. */
    g_assert_true(ide_cd_set_medium(t->c, 1, c->disc, NULL));
    /* INQUIRY, GET CONFIGURATION, GET EVENT STATUS pass it by... */
    uint8_t inq[12] = { 0x12, 0, 0, 0, 36 };
    expect_good(t, inq);
    uint8_t gc[12] = { 0x46, 0, 0, 0, 0, 0, 0, 0, 8 };
    expect_good(t, gc);
    uint8_t ev[12] = { 0x4A, 1, 0, 0, 0x10, 0, 0, 0, 8 };
    expect_good(t, ev);
    /* ... REQUEST SENSE reports and clears it. */
    sense(t, &k, &a, &q);
    g_assert_cmphex(k, ==, 0x06);
    g_assert_cmphex(a, ==, 0x28);
    expect_good(t, TUR);
    /* Reported by the next other command. */
    g_assert_true(ide_cd_open_tray(t->c, 1, false, NULL));
    g_assert_true(ide_cd_close_tray(t->c, 1, NULL));
    uint8_t cap[12] = { 0x25 };
    expect_check(t, cap, 0x06, 0x28, 0x00);
    expect_good(t, cap);
    cd_close(c);
}

static void test_request_sense(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    uint8_t k, a, q;
    uint8_t bad[12] = { 0xFF };
    expect_check(t, bad, 0x05, 0x20, 0x00);
    /* Read once: gone. */
    sense(t, &k, &a, &q);
    g_assert_cmphex(k, ==, 0);
    g_assert_cmphex(a, ==, 0);
    /* Another command clears it too. */
    g_autofree Reply *r = atapi_pio(t, bad, 0xFFFE);
    g_assert_cmphex(r->status, ==, ST_DRDY | ST_ERR);
    expect_good(t, TUR);
    sense(t, &k, &a, &q);
    g_assert_cmphex(k, ==, 0);
    /* Allocation length: 0 gives nothing, 4 gives four bytes. */
    uint8_t rs0[12] = { 0x03, 0, 0, 0, 0 };
    g_autofree Reply *r0 = atapi_pio(t, rs0, 0xFFFE);
    GOOD(r0);
    g_assert_cmpuint(r0->len, ==, 0);
    uint8_t rs4[12] = { 0x03, 0, 0, 0, 4 };
    g_autofree Reply *r4 = atapi_pio(t, rs4, 0xFFFE);
    g_assert_cmpuint(r4->len, ==, 4);
    cd_close(c);
}

static void test_invalid_opcodes(void)
{
    CDT *c = cd_open(true, false);
    static const uint8_t ops[] = { 0xFF, 0x2A, 0x1A, 0x55, 0xBE, 0xAD, 0x01 };
    for (size_t i = 0; i < G_N_ELEMENTS(ops); i++) {
        uint8_t cdb[12] = { ops[i] };
        expect_check(c->t, cdb, 0x05, 0x20, 0x00);
    }
    cd_close(c);
}

static void test_inquiry(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    uint8_t inq[12] = { 0x12, 0, 0, 0, 96 };
    g_autofree Reply *r = atapi_pio(t, inq, 0xFFFE);
    GOOD(r);
    g_assert_cmpuint(r->len, ==, 36);
    g_assert_cmphex(r->data[0], ==, 0x05);
    g_assert_cmphex(r->data[1], ==, 0x80);
    g_assert_cmpuint(r->data[4], ==, 31);
    g_assert_cmpmem(r->data + 8, 8, "XBLK    ", 8);
    g_assert_cmpmem(r->data + 16, 16, "XBLK DVD-ROM    ", 16);
    g_assert_cmpmem(r->data + 32, 4, "1.0 ", 4);
    uint8_t shortq[12] = { 0x12, 0, 0, 0, 5 };
    g_autofree Reply *s = atapi_pio(t, shortq, 0xFFFE);
    g_assert_cmpuint(s->len, ==, 5);
    uint8_t evpd[12] = { 0x12, 1, 0x80, 0, 36 };
    expect_check(t, evpd, 0x05, 0x24, 0x00);
    cd_close(c);
}

static void test_read_capacity(void)
{
    CDT *c = cd_open(true, false);
    uint8_t cap[12] = { 0x25 };
    g_autofree Reply *r = atapi_pio(c->t, cap, 0xFFFE);
    GOOD(r);
    g_assert_cmpuint(r->len, ==, 8);
    g_assert_cmpuint(be32_read(r->data), ==, ISO_SECTORS - 1);
    g_assert_cmpuint(be32_read(r->data + 4), ==, 2048);
    cd_close(c);
}

static void read10(uint8_t *cdb, uint32_t lba, uint16_t n)
{
    memset(cdb, 0, 12);
    cdb[0] = 0x28;
    be32_write(cdb + 2, lba);
    be16_write(cdb + 7, n);
}

static void test_read_pio(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    uint8_t cdb[12];
    static const struct { uint16_t bcl; unsigned blocks; } cases[] = {
        { 0xFFFE, 3 },      /* 32 sectors = 65536 > FFFE: 2 + 1 */
        { 0, 3 },           /* 0 reads as FFFE */
        { 0xFFFF, 3 },      /* made even */
        { 2048, 40 },
        { 0x1001, 20 },     /* 4096 */
        { 3000, 28 },       /* blocks do not follow sectors */
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        unsigned irq = t->th->irq_raised[IRQ_PRI];
        read10(cdb, 100, 40);
        g_autofree Reply *r = atapi_pio(t, cdb, cases[i].bcl);
        GOOD(r);
        g_assert_cmpuint(r->len, ==, 40 * 2048);
        check_iso(r->data, 100, 40);
        g_assert_cmpuint(r->blocks, ==, cases[i].blocks);
        g_assert_cmpuint(t->th->irq_raised[IRQ_PRI], ==,
                         irq + cases[i].blocks + 1);
    }
    /* READ(12), up to the last sector. */
    uint8_t r12[12] = { 0xA8 };
    be32_write(r12 + 2, ISO_SECTORS - 3);
    be32_write(r12 + 6, 3);
    g_autofree Reply *r = atapi_pio(t, r12, 0xFFFE);
    GOOD(r);
    check_iso(r->data, ISO_SECTORS - 3, 3);
    /* Zero sectors: no data phase. */
    read10(cdb, 0, 0);
    g_autofree Reply *z = atapi_pio(t, cdb, 0xFFFE);
    GOOD(z);
    g_assert_cmpuint(z->len, ==, 0);
    /* Past the end. */
    read10(cdb, ISO_SECTORS - 1, 2);
    expect_check(t, cdb, 0x05, 0x21, 0x00);
    read10(cdb, 0xFFFFFFFF, 1);
    expect_check(t, cdb, 0x05, 0x21, 0x00);
    be32_write(r12 + 2, 1);
    be32_write(r12 + 6, 0xFFFFFFFF);
    expect_check(t, r12, 0x05, 0x21, 0x00);
    g_assert_cmpuint(t->th->io_submitted, ==, 6 * 2 + 1);
    cd_close(c);
}

static void test_read_dma(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    uint8_t cdb[12];
    prd_put(t, TABLE, 0x20000, 0, false);
    prd_put(t, TABLE + 8, 0x30000, 0, false);
    prd_put(t, TABLE + 16, 0x40000, 0, false);
    prd_put(t, TABLE + 24, 0x50000, 0x2000, true);
    bm_setup(t, BM_PRI, TABLE, true);
    bm_start(t, BM_PRI, true);
    unsigned io = t->th->io_submitted;
    read10(cdb, 7, 100);                /* 200 KiB: 2 requests */
    send_packet(t, cdb, 0, 0x01);
    idet_run(t);
    g_assert_cmpuint(t->th->io_submitted - io, ==, 2);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_DRDY);
    g_assert_cmphex(inb(t, PRI + 2) & 3, ==, 3);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_INT);
    check_iso(t->th->ram + 0x20000, 7, 100);
    bm_stop(t, BM_PRI);
    /* A reply (INQUIRY) by DMA, Start after the packet this time. */
    memset(t->th->ram + 0x20000, 0, 64);
    prd_put(t, TABLE, 0x20000, 64, true);
    bm_setup(t, BM_PRI, TABLE, true);
    uint8_t inq[12] = { 0x12, 0, 0, 0, 36 };
    send_packet(t, inq, 0, 0x01);
    g_assert_cmphex(inb(t, PRI_CTL) & ST_DRQ, ==, ST_DRQ);
    bm_start(t, BM_PRI, true);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_DRDY);
    g_assert_cmphex(t->th->ram[0x20000], ==, 0x05);
    g_assert_cmpmem(t->th->ram + 0x20008, 4, "XBLK", 4);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ACTIVE | BM_INT);
    bm_stop(t, BM_PRI);
    /* A bad table: ABORTED COMMAND, the bus master's Error bit. */
    prd_put(t, TABLE, 0xFFFF0000, 0, true);
    bm_setup(t, BM_PRI, TABLE, true);
    bm_start(t, BM_PRI, true);
    io = t->th->io_submitted;
    read10(cdb, 7, 2);
    send_packet(t, cdb, 0, 0x01);
    idet_run(t);
    g_assert_cmphex(bm_status(t, BM_PRI), ==, BM_ERROR | BM_INT);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_DRDY | ST_ERR);
    g_assert_cmphex(ata_error(t, PRI), ==, 0xB4);
    g_assert_cmpuint(t->th->io_submitted, ==, io);
    bm_stop(t, BM_PRI);
    cd_close(c);
}

static void test_read_toc(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    uint8_t toc[12] = { 0x43, 0, 0, 0, 0, 0, 0, 0, 100 };
    g_autofree Reply *r = atapi_pio(t, toc, 0xFFFE);
    GOOD(r);
    g_assert_cmpuint(r->len, ==, 20);
    g_assert_cmpuint(be16_read(r->data), ==, 18);
    g_assert_cmpuint(r->data[2], ==, 1);
    g_assert_cmpuint(r->data[3], ==, 1);
    g_assert_cmphex(r->data[5], ==, 0x14);
    g_assert_cmpuint(r->data[6], ==, 1);
    g_assert_cmpuint(be32_read(r->data + 8), ==, 0);
    g_assert_cmpuint(r->data[14], ==, 0xAA);
    g_assert_cmpuint(be32_read(r->data + 16), ==, ISO_SECTORS);
    /* MSF: 00:02:00 and the lead-out at 512 + 150 = 00:08:62. */
    toc[1] = 0x02;
    g_autofree Reply *m = atapi_pio(t, toc, 0xFFFE);
    g_assert_cmpuint(be32_read(m->data + 8), ==, 0x00000200);
    g_assert_cmpuint(be32_read(m->data + 16), ==, 0x0000083E);
    /* From the lead-out only; a track that does not exist. */
    toc[1] = 0;
    toc[6] = 0xAA;
    g_autofree Reply *l = atapi_pio(t, toc, 0xFFFE);
    g_assert_cmpuint(l->len, ==, 12);
    g_assert_cmpuint(l->data[6], ==, 0xAA);
    toc[6] = 2;
    expect_check(t, toc, 0x05, 0x24, 0x00);
    /* Format 1: session information. */
    toc[6] = 0;
    toc[2] = 1;
    g_autofree Reply *s = atapi_pio(t, toc, 0xFFFE);
    GOOD(s);
    g_assert_cmpuint(s->len, ==, 12);
    g_assert_cmpuint(be16_read(s->data), ==, 10);
    g_assert_cmpuint(s->data[6], ==, 1);
    /* Format 2 (full TOC) is not offered; nor is it via byte 9. */
    toc[2] = 2;
    expect_check(t, toc, 0x05, 0x24, 0x00);
    toc[2] = 0;
    toc[9] = 0x80;
    expect_check(t, toc, 0x05, 0x24, 0x00);
    /* Allocation length cuts the reply. */
    toc[9] = 0;
    toc[8] = 4;
    g_autofree Reply *h = atapi_pio(t, toc, 0xFFFE);
    g_assert_cmpuint(h->len, ==, 4);
    g_assert_cmpuint(be16_read(h->data), ==, 18);
    cd_close(c);
}

static void test_mode_sense(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    uint8_t ms[12] = { 0x5A, 0, 0x2A, 0, 0, 0, 0, 0x01, 0 };
    g_autofree Reply *r = atapi_pio(t, ms, 0xFFFE);
    GOOD(r);
    g_assert_cmpuint(r->len, ==, 30);
    g_assert_cmpuint(be16_read(r->data), ==, 28);
    g_assert_cmphex(r->data[8], ==, 0x2A);
    g_assert_cmpuint(r->data[9], ==, 0x14);
    g_assert_cmphex(r->data[8 + 2] & 0x08, ==, 0x08);    /* DVD-ROM read */
    g_assert_cmphex(r->data[8 + 6], ==, 0x29);
    /* The lock state follows PREVENT ALLOW MEDIUM REMOVAL. */
    uint8_t prevent[12] = { 0x1E, 0, 0, 0, 1 };
    expect_good(t, prevent);
    g_autofree Reply *l = atapi_pio(t, ms, 0xFFFE);
    g_assert_cmphex(l->data[8 + 6], ==, 0x2B);
    /* All pages. */
    ms[2] = 0x3F;
    g_autofree Reply *a = atapi_pio(t, ms, 0xFFFE);
    GOOD(a);
    g_assert_cmpuint(a->len, ==, 8 + 12 + 8 + 16 + 22);
    g_assert_cmphex(a->data[8], ==, 0x01);
    g_assert_cmphex(a->data[20], ==, 0x0D);
    g_assert_cmphex(a->data[28], ==, 0x0E);
    g_assert_cmphex(a->data[44], ==, 0x2A);
    ms[3] = 0xFF;
    g_autofree Reply *a2 = atapi_pio(t, ms, 0xFFFE);
    g_assert_cmpuint(a2->len, ==, a->len);
    ms[3] = 0;
    /* Changeable values: none. */
    ms[2] = 0x40 | 0x0D;
    g_autofree Reply *ch = atapi_pio(t, ms, 0xFFFE);
    GOOD(ch);
    g_assert_cmpuint(ch->len, ==, 16);
    g_assert_cmphex(ch->data[8], ==, 0x0D);
    for (int i = 10; i < 16; i++) {
        g_assert_cmpuint(ch->data[i], ==, 0);
    }
    ms[2] = 0xC0 | 0x2A;            /* saved values */
    expect_check(t, ms, 0x05, 0x39, 0x00);
    ms[2] = 0x05;                   /* a page we do not have */
    expect_check(t, ms, 0x05, 0x24, 0x00);
    ms[2] = 0x2A;
    ms[3] = 1;                      /* a subpage */
    expect_check(t, ms, 0x05, 0x24, 0x00);
    cd_close(c);
}

/* Walks GET CONFIGURATION's descriptors: feature codes in order. */
static GArray *features_of(const Reply *r)
{
    GArray *a = g_array_new(false, false, sizeof(uint16_t));
    size_t end = MIN(r->len, be32_read(r->data) + 4);
    for (size_t p = 8; p + 4 <= end; p += 4 + r->data[p + 3]) {
        uint16_t code = be16_read(r->data + p);
        g_array_append_val(a, code);
    }
    return a;
}

static void test_get_configuration(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    uint8_t gc[12] = { 0x46, 0, 0, 0, 0, 0, 0, 0x01, 0 };
    g_autofree Reply *r = atapi_pio(t, gc, 0xFFFE);
    GOOD(r);
    g_assert_cmpuint(be16_read(r->data + 6), ==, 0x0010);
    g_assert_cmpuint(be32_read(r->data), ==, r->len - 4);
    GArray *f = features_of(r);
    static const uint16_t all[] = { 0, 1, 2, 3, 0x10, 0x1F };
    g_assert_cmpuint(f->len, ==, G_N_ELEMENTS(all));
    for (guint i = 0; i < f->len; i++) {
        g_assert_cmphex(g_array_index(f, uint16_t, i), ==, all[i]);
    }
    g_array_free(f, true);
    /* The profile list: DVD-ROM current, CD-ROM not. */
    g_assert_cmphex(r->data[10], ==, 0x03);
    g_assert_cmpuint(r->data[11], ==, 8);
    g_assert_cmphex(be16_read(r->data + 12), ==, 0x0010);
    g_assert_cmphex(r->data[14] & 1, ==, 1);
    g_assert_cmphex(be16_read(r->data + 16), ==, 0x0008);
    g_assert_cmphex(r->data[18] & 1, ==, 0);
    /* One feature: random readable, 2048-byte blocks. */
    gc[1] = 2;
    be16_write(gc + 2, 0x0010);
    g_autofree Reply *one = atapi_pio(t, gc, 0xFFFE);
    g_assert_cmpuint(one->len, ==, 8 + 12);
    g_assert_cmphex(be16_read(one->data + 8), ==, 0x0010);
    g_assert_cmpuint(be32_read(one->data + 12), ==, 2048);
    be16_write(gc + 2, 0x0004);
    g_autofree Reply *none = atapi_pio(t, gc, 0xFFFE);
    g_assert_cmpuint(none->len, ==, 8);
    /* No medium: no current profile, current features without 10h/1Fh. */
    g_assert_true(ide_cd_eject(t->c, 1, false, NULL));
    gc[1] = 1;
    be16_write(gc + 2, 0);
    g_autofree Reply *cur = atapi_pio(t, gc, 0xFFFE);
    GOOD(cur);
    g_assert_cmpuint(be16_read(cur->data + 6), ==, 0);
    f = features_of(cur);
    g_assert_cmpuint(f->len, ==, 4);
    g_array_free(f, true);
    /* Starting feature number; allocation length. */
    gc[1] = 0;
    be16_write(gc + 2, 0x0003);
    g_autofree Reply *from3 = atapi_pio(t, gc, 0xFFFE);
    f = features_of(from3);
    g_assert_cmpuint(f->len, ==, 3);
    g_array_free(f, true);
    gc[7] = 0;
    gc[8] = 10;
    g_autofree Reply *cut = atapi_pio(t, gc, 0xFFFE);
    g_assert_cmpuint(cut->len, ==, 10);
    gc[1] = 3;
    expect_check(t, gc, 0x05, 0x24, 0x00);
    cd_close(c);
}

static Reply *gesn(IDETest *t, uint8_t classes)
{
    uint8_t ev[12] = { 0x4A, 1, 0, 0, classes, 0, 0, 0, 8 };
    Reply *r = atapi_pio(t, ev, 0xFFFE);
    GOOD(r);
    return r;
}

static void test_event_status(void)
{
    CDT *c = cd_open(false, false);
    IDETest *t = c->t;
    uint8_t async[12] = { 0x4A, 0, 0, 0, 0x10, 0, 0, 0, 8 };
    expect_check(t, async, 0x05, 0x24, 0x00);
    g_autofree Reply *e0 = gesn(t, 0x10);
    g_assert_cmpuint(e0->len, ==, 8);
    g_assert_cmpuint(be16_read(e0->data), ==, 6);
    g_assert_cmphex(e0->data[2], ==, 0x04);
    g_assert_cmphex(e0->data[3], ==, 0x10);
    g_assert_cmpuint(e0->data[4], ==, 0);
    g_assert_cmpuint(e0->data[5], ==, 0);
    g_assert_true(ide_cd_set_medium(t->c, 1, c->disc, NULL));
    g_autofree Reply *e1 = gesn(t, 0x10);
    g_assert_cmpuint(e1->data[4], ==, 2);       /* new media */
    g_assert_cmpuint(e1->data[5], ==, 0x02);    /* present */
    g_autofree Reply *e2 = gesn(t, 0x10);
    g_assert_cmpuint(e2->data[4], ==, 0);       /* reported once */
    /* Other classes only: no event available. */
    g_autofree Reply *n = gesn(t, 0x02);
    g_assert_cmpuint(n->len, ==, 4);
    g_assert_cmphex(n->data[2], ==, 0x80);
    /* Locked: an eject request goes to the guest, the tray stays. */
    uint8_t prevent[12] = { 0x1E, 0, 0, 0, 1 };
    expect_check(t, prevent, 0x06, 0x28, 0x00);
    expect_good(t, prevent);
    g_assert_true(ide_cd_open_tray(t->c, 1, false, NULL));
    g_autofree Reply *e3 = gesn(t, 0x10);
    g_assert_cmpuint(e3->data[4], ==, 1);
    g_assert_cmpuint(e3->data[5], ==, 0x02);
    /* Forced open: media removal, tray open. */
    g_assert_true(ide_cd_open_tray(t->c, 1, true, NULL));
    g_autofree Reply *e4 = gesn(t, 0x10);
    g_assert_cmpuint(e4->data[4], ==, 3);
    g_assert_cmpuint(e4->data[5], ==, 0x01);
    cd_close(c);
}

static void test_start_stop(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    IDEDriveInfo info;
    uint8_t eject[12] = { 0x1B, 0, 0, 0, 0x02 };
    uint8_t load[12] = { 0x1B, 0, 0, 0, 0x03 };
    uint8_t spin[12] = { 0x1B, 0, 0, 0, 0x01 };
    uint8_t prevent[12] = { 0x1E, 0, 0, 0, 1 };
    uint8_t allow[12] = { 0x1E, 0, 0, 0, 0 };
    expect_good(t, spin);
    expect_good(t, eject);
    g_assert_true(ide_drive_info(t->c, 1, &info));
    g_assert_true(info.tray_open);
    g_assert_true(info.disk == c->disc);
    expect_check(t, TUR, 0x02, 0x3A, 0x02);
    expect_good(t, eject);                  /* already open */
    expect_good(t, load);
    g_assert_true(ide_drive_info(t->c, 1, &info));
    g_assert_false(info.tray_open);
    expect_check(t, TUR, 0x06, 0x28, 0x00);
    expect_good(t, TUR);
    expect_good(t, prevent);
    g_assert_true(ide_drive_info(t->c, 1, &info));
    g_assert_true(info.medium_locked);
    expect_check(t, eject, 0x05, 0x53, 0x02);
    g_assert_true(ide_drive_info(t->c, 1, &info));
    g_assert_false(info.tray_open);
    expect_good(t, allow);
    expect_good(t, eject);
    /* A hardware reset unlocks; the tray stays where it is. */
    expect_good(t, load);
    expect_check(t, TUR, 0x06, 0x28, 0x00);
    expect_good(t, prevent);
    ide_reset(t->c);
    g_assert_true(ide_drive_info(t->c, 1, &info));
    g_assert_false(info.medium_locked);
    cd_close(c);
}

static void test_media_api(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    GError *err = NULL;
    IDEDriveInfo info;
    g_autofree char *p2 = raw_image("disc2.iso", 64 * 2048, 5);
    XblkDisk *b2 = raw_disk_open(p2, "disc2", false);
    uint8_t prevent[12] = { 0x1E, 0, 0, 0, 1 };
    expect_good(t, prevent);
    g_assert_false(ide_cd_eject(t->c, 1, false, &err));
    g_assert_cmpstr(err->message, ==,
                    "Device 'ide0-cd1' is locked and force was not specified");
    g_clear_error(&err);
    g_assert_false(ide_cd_set_medium(t->c, 1, b2, &err));   /* closed */
    g_clear_error(&err);
    g_assert_true(ide_cd_eject(t->c, 1, true, &err));
    g_assert_true(ide_drive_info(t->c, 1, &info));
    g_assert_null(info.disk);
    g_assert_true(info.tray_open);
    g_assert_true(ide_cd_set_medium(t->c, 1, b2, &err));
    g_assert_true(ide_cd_close_tray(t->c, 1, &err));
    expect_check(t, TUR, 0x06, 0x28, 0x00);
    uint8_t cap[12] = { 0x25 };
    g_autofree Reply *r = atapi_pio(t, cap, 0xFFFE);
    g_assert_cmpuint(be32_read(r->data), ==, 63);
    /* Removing from an open tray; an empty closed drive takes one. */
    g_assert_true(ide_cd_open_tray(t->c, 1, true, &err));
    g_assert_true(ide_cd_set_medium(t->c, 1, NULL, &err));
    g_assert_true(ide_cd_close_tray(t->c, 1, &err));
    expect_check(t, TUR, 0x02, 0x3A, 0x01);
    g_assert_true(ide_cd_set_medium(t->c, 1, c->disc, &err));
    expect_check(t, TUR, 0x06, 0x28, 0x00);
    /* Not a CD / no such index. */
    g_assert_false(ide_cd_open_tray(t->c, 0, false, &err));
    g_clear_error(&err);
    g_assert_false(ide_cd_eject(t->c, 3, false, &err));
    g_clear_error(&err);
    g_assert_false(ide_cd_close_tray(t->c, 7, &err));
    g_clear_error(&err);
    g_assert_false(ide_cd_set_medium(t->c, -1, NULL, &err));
    g_clear_error(&err);
    g_assert_false(ide_drive_info(t->c, 3, &info));
    g_assert_false(ide_drive_info(t->c, 9, &info));
    xblk_disk_close(b2);
    g_unlink(p2);
    cd_close(c);
}

/* DevHostOps.tray_moved: once per real movement, from the guest's START
 * STOP UNIT and from the media functions; a forced open unlocks. */
static void test_tray_moved(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    TestHost *th = t->th;
    GError *err = NULL;
    IDEDriveInfo info;
    uint8_t eject[12] = { 0x1B, 0, 0, 0, 0x02 };
    uint8_t load[12] = { 0x1B, 0, 0, 0, 0x03 };
    uint8_t prevent[12] = { 0x1E, 0, 0, 0, 1 };
    expect_good(t, eject);
    g_assert_cmpuint(th->tray_moves, ==, 1);
    g_assert_true(th->tray_open);
    g_assert_cmpstr(th->tray_dev, ==, "ide0-cd1");
    expect_good(t, eject);                  /* already open: no report */
    g_assert_cmpuint(th->tray_moves, ==, 1);
    expect_good(t, load);
    g_assert_cmpuint(th->tray_moves, ==, 2);
    g_assert_false(th->tray_open);
    expect_check(t, TUR, 0x06, 0x28, 0x00);
    /* Locked: open without force asks the guest, nothing moves. */
    expect_good(t, prevent);
    g_assert_true(ide_cd_open_tray(t->c, 1, false, &err));
    g_assert_cmpuint(th->tray_moves, ==, 2);
    g_assert_true(ide_drive_info(t->c, 1, &info));
    g_assert_true(info.medium_locked);
    g_assert_false(info.tray_open);
    /* Forced: unlocked and open, reported once. */
    g_assert_true(ide_cd_open_tray(t->c, 1, true, &err));
    g_assert_cmpuint(th->tray_moves, ==, 3);
    g_assert_true(th->tray_open);
    g_assert_true(ide_drive_info(t->c, 1, &info));
    g_assert_false(info.medium_locked);
    g_assert_true(info.tray_open);
    g_assert_true(ide_cd_close_tray(t->c, 1, &err));
    g_assert_true(ide_cd_close_tray(t->c, 1, &err));
    g_assert_cmpuint(th->tray_moves, ==, 4);
    expect_check(t, TUR, 0x06, 0x28, 0x00);
    /* A forced eject of a locked tray unlocks it too. */
    expect_good(t, prevent);
    g_assert_true(ide_cd_eject(t->c, 1, true, &err));
    g_assert_cmpuint(th->tray_moves, ==, 5);
    g_assert_true(ide_drive_info(t->c, 1, &info));
    g_assert_false(info.medium_locked);
    g_assert_null(info.disk);
    cd_close(c);
}

static void test_read_error(void)
{
    CDT *c = cd_open(true, true);
    IDETest *t = c->t;
    uint8_t cdb[12];
    blkdebug_fail(c->dbg, BLKDBG_OP_READ, EIO, false);
    read10(cdb, 3, 2);
    expect_check(t, cdb, 0x03, 0x11, 0x00);
    g_assert_cmpstr(t->th->last_error_action, ==, "report");
    blkdebug_clear_rules(c->dbg);
    g_autofree Reply *r = atapi_pio(t, cdb, 0xFFFE);
    GOOD(r);
    check_iso(r->data, 3, 2);
    cd_close(c);
}

/* The tray opens under a READ: the command ends NOT READY; its late
 * completion changes nothing. */
static void test_eject_mid_read(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    uint8_t cdb[12];
    read10(cdb, 0, 40);
    send_packet(t, cdb, 0xFFFE, 0);
    g_assert_cmpuint(ide_in_flight(t->c), ==, 1);
    unsigned irq = t->th->irq_raised[IRQ_PRI];
    g_assert_true(ide_cd_open_tray(t->c, 1, true, NULL));
    g_assert_cmpuint(t->th->irq_raised[IRQ_PRI], ==, irq + 1);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_DRDY | ST_ERR);
    g_assert_cmphex(ata_error(t, PRI) >> 4, ==, 0x02);
    idet_run(t);
    g_assert_cmpuint(t->th->irq_raised[IRQ_PRI], ==, irq + 1);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_DRDY | ST_ERR);
    g_assert_cmphex(inw(t, PRI), ==, 0xFFFF);
    /* Mid data phase (between DRQ blocks of the first 64 KiB). */
    g_assert_true(ide_cd_close_tray(t->c, 1, NULL));
    expect_check(t, TUR, 0x06, 0x28, 0x00);
    send_packet(t, cdb, 2048, 0);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_DRDY | ST_DRQ);
    g_assert_true(ide_cd_eject(t->c, 1, false, NULL));
    g_assert_cmphex(ata_status(t, PRI), ==, ST_DRDY | ST_ERR);
    cd_close(c);
}

static void test_srst_mid_pio(void)
{
    CDT *c = cd_open(true, false);
    IDETest *t = c->t;
    uint8_t cdb[12];
    read10(cdb, 0, 4);
    send_packet(t, cdb, 2048, 0);
    idet_run(t);
    g_assert_cmphex(ata_status(t, PRI), ==, ST_DRDY | ST_DRQ);
    inw(t, PRI);
    outb(t, PRI_CTL, 0x04);
    outb(t, PRI_CTL, 0x00);
    ata_select(t, PRI, CD);
    g_assert_cmphex(ata_status(t, PRI), ==, 0x00);
    check_signature(t);
    g_assert_cmphex(inw(t, PRI), ==, 0xFFFF);
    /* A packet cut short by SRST. */
    ata_select(t, PRI, CD);
    outb(t, PRI + 4, 0);
    outb(t, PRI + 5, 8);
    ata_cmd(t, PRI, 0xA0);
    outw(t, PRI, 0x0028);
    outb(t, PRI_CTL, 0x04);
    outb(t, PRI_CTL, 0x00);
    outw(t, PRI, 0);
    idet_run(t);
    g_assert_cmpuint(t->th->io_submitted, ==, 1);
    expect_good(t, TUR);
    cd_close(c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    test_dir_setup_in_memory();
    idet_engine_start();
    g_test_add_func("/atapi/signature", test_signature);
    g_test_add_func("/atapi/identify-packet", test_identify_packet);
    g_test_add_func("/atapi/ata-commands", test_ata_commands_on_cd);
    g_test_add_func("/atapi/not-ready", test_not_ready);
    g_test_add_func("/atapi/unit-attention", test_unit_attention);
    g_test_add_func("/atapi/request-sense", test_request_sense);
    g_test_add_func("/atapi/invalid-opcodes", test_invalid_opcodes);
    g_test_add_func("/atapi/inquiry", test_inquiry);
    g_test_add_func("/atapi/read-capacity", test_read_capacity);
    g_test_add_func("/atapi/read-pio", test_read_pio);
    g_test_add_func("/atapi/read-dma", test_read_dma);
    g_test_add_func("/atapi/read-toc", test_read_toc);
    g_test_add_func("/atapi/mode-sense", test_mode_sense);
    g_test_add_func("/atapi/get-configuration", test_get_configuration);
    g_test_add_func("/atapi/event-status", test_event_status);
    g_test_add_func("/atapi/start-stop", test_start_stop);
    g_test_add_func("/atapi/media-api", test_media_api);
    g_test_add_func("/atapi/tray-moved", test_tray_moved);
    g_test_add_func("/atapi/read-error", test_read_error);
    g_test_add_func("/atapi/eject-mid-read", test_eject_mid_read);
    g_test_add_func("/atapi/srst-mid-pio", test_srst_mid_pio);
    int ret = g_test_run();
    idet_engine_stop();
    test_dir_cleanup();
    return ret;
}
