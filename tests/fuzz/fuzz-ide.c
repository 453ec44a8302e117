/*
 * fuzz-ide.c - libFuzzer target: ATA/ATAPI command, PIO and bus-master
 * DMA sequences issued to the real IDE model (hw/ide/) on a test host
 * (tests/hw/devhost-test.h): guest RAM is a buffer, the virtual clock a
 * variable, and disk requests run on libxblk disks over images in the
 * process's scratch folder (fuzz-common.h).
 *
 * Drives, opened once per process: index 0 a 2 MiB qcow2 hard disk,
 * index 1 an ATAPI DVD drive with a 1 MiB raw disc (read-only), index 2 a
 * 1 MiB raw hard disk; index 3 empty.  Each input gets a new controller
 * with those drives attached (so no state, passwords included, crosses
 * inputs), zeroed RAM and the clock at 0; at its end every outstanding
 * request completes and the controller is freed.  What one input writes
 * to the hard disks stays there (the model's behaviour does not depend
 * on the data it moves).
 *
 * The input is byte code, run until it ends (at most MAX_OPS ops).  Each
 * op is one byte, taken modulo the number of ops, then its operands (an
 * op cut short by the end of input is dropped).  ch = operand & 1 picks
 * the primary (0x1F0/0x3F6/0xFF60) or secondary (0x170/0x376/0xFF68)
 * channel.
 *
 *   0  TF_WRITE  r v        outb(base + (r & 7), v); r & 8: secondary
 *   1  TF_READ   r          inb(base + (r & 7)) (a word for the data port)
 *   2  CMD       r c        select unit (r >> 1 & 1) with LBA, then command
 *                           register = c on channel r & 1
 *   3  DATA_OUT  ch n b...  n bytes (rounded down to words) to the data port
 *   4  DATA_IN   ch n       reads 8 * n words from the data port
 *   5  FILL_OUT  ch n v     writes 8 * n words of value v v^1 v^2 ...
 *   6  PACKET    ch b[12]   select unit 1, PACKET (0xA0) with byte count
 *                           0xFFFE, then the 12-byte CDB through the data port
 *   7  DEVCTL    ch v       control register (SRST 0x04, nIEN 0x02)
 *   8  ALTSTAT   ch         alternate status
 *   9  BM_WRITE  r v        bus-master byte register (r & 7) = v, r & 8:
 *                           secondary
 *  10  BM_READ   r          bus-master byte register read
 *  11  BM_PRD    ch a[4]    PRD table address register (32 bits)
 *  12  PRD       s a[4] c[2] f   PRD entry s (0..63) at PRD_TABLE + 8 * s in
 *                           RAM: address a, byte count c (0 = 64 KiB),
 *                           flags byte f (bit 7: end of table)
 *  13  RAM       a[3] n b...  n bytes into RAM at a (modulo RAM size)
 *  14  STEP      n          delivers up to n & 15 completions (time moves
 *                           to each one's deadline)
 *  15  RUN_ALL              delivers every outstanding completion
 *  16  PORT_W    p s v[4]   any port of the controller (and its neighbours)
 *                           p from the port list, size 1/2/4 from s
 *  17  PORT_R    p s        the same, a read
 *  18  RESET                ide_reset (power-on of both channels)
 *  19  MEDIA     m          tray / medium of the DVD drive: open, close,
 *                           eject (forced or not), insert, remove
 *  20  REGS48    ch l[6] n[2]  the 48-bit task file (unit 0) with LBA l and
 *                           count n, as a driver programs it
 */
#include "fuzz-common.h"
#include "tests/hw/ide/ide-test.h"

#define RAM_SIZE (256u * 1024)
#define PRD_TABLE 0x30000u
#define MAX_OPS 4000
#define HD0_SIZE (2u << 20)
#define CD_SIZE (1u << 20)
#define HD2_SIZE (1u << 20)

enum {
    OP_TF_WRITE, OP_TF_READ, OP_CMD, OP_DATA_OUT, OP_DATA_IN, OP_FILL_OUT,
    OP_PACKET, OP_DEVCTL, OP_ALTSTAT, OP_BM_WRITE, OP_BM_READ, OP_BM_PRD,
    OP_PRD, OP_RAM, OP_STEP, OP_RUN_ALL, OP_PORT_W, OP_PORT_R, OP_RESET,
    OP_MEDIA, OP_REGS48, OP_COUNT
};

static const uint32_t ports[] = {
    0x1F0, 0x1F1, 0x1F2, 0x1F3, 0x1F4, 0x1F5, 0x1F6, 0x1F7, 0x3F6, 0x3F7,
    0x170, 0x171, 0x172, 0x173, 0x174, 0x175, 0x176, 0x177, 0x376, 0x377,
    0xFF60, 0xFF61, 0xFF62, 0xFF63, 0xFF64, 0xFF65, 0xFF66, 0xFF67,
    0xFF68, 0xFF69, 0xFF6A, 0xFF6B, 0xFF6C, 0xFF6D, 0xFF6E, 0xFF6F,
    0x1F8, 0x16F, 0xFF5F, 0xFF70,
};

static TestHost *th;
static XblkDisk *hd0, *cd, *hd2;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    test_dir = g_strdup(fuzz_tmpdir());
    idet_engine_start();
    th = test_host_new(RAM_SIZE);
    /* (the paths are needed only here: the disks keep their own) */
    g_autofree char *hd0_path = test_path("hd0.qcow2");
    hd0 = qcow2_image(hd0_path, "fuzz-hd0", NULL, HD0_SIZE, HD0_SIZE / 2, 1,
                      NULL);
    g_autofree char *cd_path = raw_image("cd.iso", CD_SIZE, 2);
    cd = raw_disk_open(cd_path, "fuzz-cd", false);
    g_autofree char *hd2_path = raw_image("hd2.raw", HD2_SIZE, 3);
    hd2 = raw_disk_open(hd2_path, "fuzz-hd2", true);
    return 0;
}

static IDEController *controller_new(void)
{
    IDEController *c = ide_controller_new(&th->host);
    IDEDriveConfig cfg = idet_config(IDE_DRIVE_HD, hd0, "ide0-hd0");
    cfg.werror = IDE_ERROR_ACTION_REPORT;
    GError *err = NULL;
    if (!ide_attach(c, 0, &cfg, &err)) {
        g_error("%s", err->message);
    }
    cfg = idet_config(IDE_DRIVE_CD, cd, "ide0-cd1");
    if (!ide_attach(c, 1, &cfg, &err)) {
        g_error("%s", err->message);
    }
    cfg = idet_config(IDE_DRIVE_HD, hd2, "ide1-hd0");
    cfg.werror = IDE_ERROR_ACTION_REPORT;
    if (!ide_attach(c, 2, &cfg, &err)) {
        g_error("%s", err->message);
    }
    return c;
}

typedef struct Prog {
    const uint8_t *p, *end;
} Prog;

/* Takes n operand bytes; NULL when the input ends first. */
static const uint8_t *take(Prog *pr, size_t n)
{
    if ((size_t)(pr->end - pr->p) < n) {
        pr->p = pr->end;
        return NULL;
    }
    const uint8_t *r = pr->p;
    pr->p += n;
    return r;
}

static uint32_t base_of(unsigned ch)
{
    return ch & 1 ? SEC : PRI;
}

static uint32_t ctl_of(unsigned ch)
{
    return ch & 1 ? SEC_CTL : PRI_CTL;
}

static uint32_t bm_of(unsigned ch)
{
    return ch & 1 ? BM_SEC : BM_PRI;
}

static void media(IDEController *c, uint8_t m)
{
    GError *err = NULL;
    switch (m % 6) {
    case 0:
        ide_cd_open_tray(c, 1, m & 8, &err);
        break;
    case 1:
        ide_cd_close_tray(c, 1, &err);
        break;
    case 2:
        ide_cd_eject(c, 1, m & 8, &err);
        break;
    case 3:
        ide_cd_set_medium(c, 1, cd, &err);
        break;
    case 4:
        ide_cd_set_medium(c, 1, NULL, &err);
        break;
    default:
        ide_cd_open_tray(c, 1, true, &err);
        g_clear_error(&err);
        ide_cd_set_medium(c, 1, cd, &err);
        g_clear_error(&err);
        ide_cd_close_tray(c, 1, &err);
    }
    g_clear_error(&err);
}

static void run_op(IDEController *c, IDETest *t, Prog *pr)
{
    const uint8_t *a;
    unsigned op = *take(pr, 1) % OP_COUNT;
    switch (op) {
    case OP_TF_WRITE:
        if ((a = take(pr, 2))) {
            outb(t, base_of(a[0] >> 3) + (a[0] & 7), a[1]);
        }
        break;
    case OP_TF_READ:
        if ((a = take(pr, 1))) {
            uint32_t port = base_of(a[0] >> 3) + (a[0] & 7);
            ide_ioport_read(c, port, (a[0] & 7) ? 1 : 2);
        }
        break;
    case OP_CMD:
        if ((a = take(pr, 2))) {
            ata_select(t, base_of(a[0]), a[0] >> 1 & 1);
            ata_cmd(t, base_of(a[0]), a[1]);
        }
        break;
    case OP_DATA_OUT:
        if ((a = take(pr, 2)) && take(pr, 0)) {
            unsigned n = MIN(a[1], (size_t)(pr->end - pr->p)) & ~1u;
            const uint8_t *b = take(pr, n);
            for (unsigned i = 0; b && i < n; i += 2) {
                outw(t, base_of(a[0]), b[i] | b[i + 1] << 8);
            }
        }
        break;
    case OP_DATA_IN:
        if ((a = take(pr, 2))) {
            for (unsigned i = 0; i < 8u * a[1]; i++) {
                inw(t, base_of(a[0]));
            }
        }
        break;
    case OP_FILL_OUT:
        if ((a = take(pr, 3))) {
            for (unsigned i = 0; i < 8u * a[1]; i++) {
                outw(t, base_of(a[0]), (a[2] ^ i) * 0x0101);
            }
        }
        break;
    case OP_PACKET:
        if ((a = take(pr, 13))) {
            uint32_t base = base_of(a[0]);
            ata_select(t, base, 1);
            outb(t, base + 1, a[0] >> 1 & 1);       /* DMA bit */
            outb(t, base + 4, 0xFE);
            outb(t, base + 5, 0xFF);
            ata_cmd(t, base, 0xA0);
            for (int i = 0; i < 12; i += 2) {
                outw(t, base, a[1 + i] | a[2 + i] << 8);
            }
        }
        break;
    case OP_DEVCTL:
        if ((a = take(pr, 2))) {
            outb(t, ctl_of(a[0]), a[1]);
        }
        break;
    case OP_ALTSTAT:
        if ((a = take(pr, 1))) {
            inb(t, ctl_of(a[0]));
        }
        break;
    case OP_BM_WRITE:
        if ((a = take(pr, 2))) {
            outb(t, bm_of(a[0] >> 3) + (a[0] & 7), a[1]);
        }
        break;
    case OP_BM_READ:
        if ((a = take(pr, 1))) {
            inb(t, bm_of(a[0] >> 3) + (a[0] & 7));
        }
        break;
    case OP_BM_PRD:
        if ((a = take(pr, 5))) {
            outl(t, bm_of(a[0]) + 4, fuzz_le32(a + 1));
        }
        break;
    case OP_PRD:
        if ((a = take(pr, 8))) {
            uint32_t at = PRD_TABLE + 8 * (a[0] & 63);
            memcpy(th->ram + at, a + 1, 6);
            th->ram[at + 6] = 0;
            th->ram[at + 7] = a[7] & 0x80;
        }
        break;
    case OP_RAM:
        if ((a = take(pr, 4))) {
            uint32_t at = (a[0] | a[1] << 8 | a[2] << 16) % RAM_SIZE;
            unsigned n = MIN(a[3], (size_t)(pr->end - pr->p));
            n = MIN(n, RAM_SIZE - at);
            const uint8_t *b = take(pr, n);
            if (b) {
                memcpy(th->ram + at, b, n);
            }
        }
        break;
    case OP_STEP:
        if ((a = take(pr, 1))) {
            for (unsigned n = a[0] & 15; n && test_host_step(th); n--) {
            }
        }
        break;
    case OP_RUN_ALL:
        test_host_run(th);
        break;
    case OP_PORT_W:
        if ((a = take(pr, 6))) {
            static const unsigned sizes[] = { 1, 2, 4, 1 };
            ide_ioport_write(c, ports[a[0] % G_N_ELEMENTS(ports)],
                             fuzz_le32(a + 2), sizes[a[1] & 3]);
        }
        break;
    case OP_PORT_R:
        if ((a = take(pr, 2))) {
            static const unsigned sizes[] = { 1, 2, 4, 1 };
            ide_ioport_read(c, ports[a[0] % G_N_ELEMENTS(ports)],
                            sizes[a[1] & 3]);
        }
        break;
    case OP_RESET:
        ide_reset(c);
        break;
    case OP_MEDIA:
        if ((a = take(pr, 1))) {
            media(c, a[0]);
        }
        break;
    case OP_REGS48:
        if ((a = take(pr, 9))) {
            uint64_t lba = 0;
            for (int i = 0; i < 6; i++) {
                lba |= (uint64_t)a[1 + i] << (8 * i);
            }
            ata_regs48(t, base_of(a[0]), 0, lba, a[7] | a[8] << 8);
        }
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!th) {
        LLVMFuzzerInitialize(NULL, NULL);
    }
    memset(th->ram, 0, RAM_SIZE);
    th->clock_ns = 0;
    memset(th->irq_level, 0, sizeof(th->irq_level));
    IDEController *c = controller_new();
    IDETest it = { th, c };
    Prog pr = { data, data + size };
    for (unsigned n = 0; pr.p < pr.end && n < MAX_OPS; n++) {
        run_op(c, &it, &pr);
    }
    test_host_run(th);
    ide_controller_free(c);
    g_queue_clear(&th->done);
    return 0;
}
