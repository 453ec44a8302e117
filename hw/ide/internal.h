/*
 * internal.h - the IDE controller's state, shared by core.c (channels,
 * task file, ATA commands, requests), atapi.c (the DVD drive) and bmdma.c
 * (bus-master DMA).  Nothing outside hw/ide/ includes it.
 *
 * State layout: everything the guest can observe lives in plain structs
 * (IDEChannel, IDEDrive, IDEBMDMA, ATAPIState, IDESecurity) made of
 * integers, booleans and fixed arrays, so the field tables of vmstate.c
 * serialize them.  The only pointers are
 *   - configuration handed in by the machine (blk, id, node_name), which a
 *     save state does not carry,
 *   - the structural back-pointer IDEDrive.ctrl, set once at creation,
 *   - in-flight request bookkeeping (IDERequest), owned by the controller's
 *     request list; a save state is taken with no request in flight.
 *
 * Invariants:
 *   - io_pos <= io_end <= io_total <= IDE_IO_BUF_SIZE: the data port only
 *     moves bytes of the current DRQ block [io_pos, io_end) of io_buf.
 *   - A request carries the generation of its drive at submission; a
 *     completion whose generation differs (the command was aborted by
 *     SRST, DEVICE RESET, a hardware reset, a new command or a DMA stop)
 *     is dropped without touching device state.
 *   - At most one command per drive owns a live (current-generation)
 *     request at a time.
 */
#ifndef XBLK_HW_IDE_INTERNAL_H
#define XBLK_HW_IDE_INTERNAL_H

#include "hw/ide/ide.h"
#include <stdint.h>

/* ---- sizes and timing ---- */

#define IDE_SECTOR_SIZE         512
#define ATAPI_SECTOR_SIZE       2048
#define IDE_IO_BUF_SIZE         (64 * 1024)     /* PIO buffer of a drive */
#define IDE_MAX_MULT            16              /* sectors per DRQ block */
#define IDE_DMA_CHUNK           (128 * 1024)    /* bytes per DMA request */
#define IDE_VERIFY_CHUNK        (128 * 1024)
#define IDE_ERASE_CHUNK         (1024 * 1024)
#define IDE_LATENCY_BASE_NS     20000           /* 20 us per request */
#define IDE_LATENCY_NS_PER_BYTE 5               /* 200 MB/s */
#define IDE_UNLOCK_ATTEMPTS     5
#define IDE_PASSWORD_LEN        32

/* ---- registers ---- */

/* Status */
#define IDE_ST_BSY   0x80
#define IDE_ST_DRDY  0x40
#define IDE_ST_DF    0x20
#define IDE_ST_DSC   0x10
#define IDE_ST_DRQ   0x08
#define IDE_ST_ERR   0x01

/* Error */
#define IDE_ER_ICRC  0x80
#define IDE_ER_UNC   0x40
#define IDE_ER_IDNF  0x10
#define IDE_ER_ABRT  0x04

/* Device control */
#define IDE_CTL_NIEN 0x02
#define IDE_CTL_SRST 0x04
#define IDE_CTL_HOB  0x80

/* Device register */
#define IDE_DEV_LBA  0x40
#define IDE_DEV_DEV  0x10

/* ATAPI interrupt reason (sector count register) */
#define ATAPI_IR_COD 0x01
#define ATAPI_IR_IO  0x02

/* Bus-master command / status */
#define BM_CMD_START 0x01
#define BM_CMD_TO_RAM 0x08          /* bus master writes memory */
#define BM_ST_ACTIVE 0x01
#define BM_ST_ERROR  0x02
#define BM_ST_INT    0x04
#define BM_ST_DRV0_DMA 0x20
#define BM_ST_DRV1_DMA 0x40

/* ---- ATA commands ---- */

enum {
    ATA_DEVICE_RESET        = 0x08,
    ATA_READ_SECTORS        = 0x20,
    ATA_READ_SECTORS_NR     = 0x21,
    ATA_READ_SECTORS_EXT    = 0x24,
    ATA_READ_DMA_EXT        = 0x25,
    ATA_READ_MULTIPLE_EXT   = 0x29,
    ATA_WRITE_SECTORS       = 0x30,
    ATA_WRITE_SECTORS_NR    = 0x31,
    ATA_WRITE_SECTORS_EXT   = 0x34,
    ATA_WRITE_DMA_EXT       = 0x35,
    ATA_WRITE_MULTIPLE_EXT  = 0x39,
    ATA_READ_VERIFY         = 0x40,
    ATA_READ_VERIFY_NR      = 0x41,
    ATA_READ_VERIFY_EXT     = 0x42,
    ATA_EXEC_DIAGNOSTIC     = 0x90,
    ATA_PACKET              = 0xA0,
    ATA_IDENTIFY_PACKET     = 0xA1,
    ATA_READ_MULTIPLE       = 0xC4,
    ATA_WRITE_MULTIPLE      = 0xC5,
    ATA_SET_MULTIPLE        = 0xC6,
    ATA_READ_DMA            = 0xC8,
    ATA_READ_DMA_NR         = 0xC9,
    ATA_WRITE_DMA           = 0xCA,
    ATA_WRITE_DMA_NR        = 0xCB,
    ATA_STANDBY_IMMEDIATE   = 0xE0,
    ATA_IDLE_IMMEDIATE      = 0xE1,
    ATA_STANDBY             = 0xE2,
    ATA_IDLE                = 0xE3,
    ATA_CHECK_POWER_MODE    = 0xE5,
    ATA_SLEEP               = 0xE6,
    ATA_FLUSH_CACHE         = 0xE7,
    ATA_FLUSH_CACHE_EXT     = 0xEA,
    ATA_IDENTIFY            = 0xEC,
    ATA_SET_FEATURES        = 0xEF,
    ATA_SEC_SET_PASSWORD    = 0xF1,
    ATA_SEC_UNLOCK          = 0xF2,
    ATA_SEC_ERASE_PREPARE   = 0xF3,
    ATA_SEC_ERASE_UNIT      = 0xF4,
    ATA_SEC_FREEZE_LOCK     = 0xF5,
    ATA_SEC_DISABLE_PASSWORD = 0xF6,
};

/* ---- drive state ---- */

/* What the data port / DMA engine is doing for the current command. */
typedef enum {
    IDE_XFER_NONE,
    IDE_XFER_PIO_IN,        /* device -> host through the data port */
    IDE_XFER_PIO_OUT,       /* host -> device through the data port */
    IDE_XFER_DMA,           /* through the bus master */
} IDEXfer;

/* The command in progress, which decides what a finished DRQ block or a
 * request completion leads to. */
typedef enum {
    IDE_OP_NONE,
    IDE_OP_READ,            /* READ SECTORS/MULTIPLE/DMA (EXT) */
    IDE_OP_WRITE,           /* WRITE SECTORS/MULTIPLE/DMA (EXT) */
    IDE_OP_VERIFY,
    IDE_OP_FLUSH,
    IDE_OP_IDENTIFY,        /* any PIO data-in from io_buf, then done */
    IDE_OP_SECURITY,        /* 512-byte PIO data-out, then cmd runs */
    IDE_OP_ERASE,           /* ERASE UNIT writing zeroes */
    IDE_OP_PACKET,          /* receiving the 12-byte CDB */
    IDE_OP_ATAPI_DATA,      /* sending a reply held in io_buf */
    IDE_OP_ATAPI_READ,      /* READ(10)/READ(12) */
} IDEOp;

typedef enum {
    IDE_POWER_ACTIVE,
    IDE_POWER_IDLE,
    IDE_POWER_STANDBY,
    IDE_POWER_SLEEP,
} IDEPower;

typedef struct IDESecurity {
    bool enabled;           /* a user password is set */
    bool locked;
    bool frozen;
    bool maximum;           /* security level Maximum (else High) */
    bool count_expired;     /* attempt counter reached zero */
    bool erase_prepared;    /* the previous command was ERASE PREPARE */
    uint8_t attempts;       /* UNLOCK attempts left */
    uint8_t user_pw[IDE_PASSWORD_LEN];
    uint8_t master_pw[IDE_PASSWORD_LEN];
    uint16_t master_rev;
} IDESecurity;

/* GET EVENT STATUS NOTIFICATION media event codes (MMC). */
enum {
    ATAPI_EV_NONE = 0,
    ATAPI_EV_EJECT_REQUEST = 1,
    ATAPI_EV_NEW_MEDIA = 2,
    ATAPI_EV_MEDIA_REMOVAL = 3,
};

typedef struct ATAPIState {
    bool tray_open;
    bool prevent;           /* PREVENT ALLOW MEDIUM REMOVAL */
    bool unit_attention;    /* MEDIUM MAY HAVE CHANGED pending */
    uint8_t sense_key, asc, ascq;
    uint8_t event;          /* pending media event, ATAPI_EV_* */
    uint8_t cdb[12];
    bool dma;               /* PACKET features bit 0 */
    uint16_t bcl;           /* byte count limit (even, > 0) */
    uint64_t lba;           /* READ: next sector */
    uint64_t left;          /* READ: sectors still to read */
} ATAPIState;

typedef struct IDEDrive {
    /* Structure and configuration (not guest state). */
    IDEController *ctrl;
    uint8_t chan, unit;
    IDEDriveKind kind;
    XblkDisk *disk;
    char *id;
    char *node_name;
    char model[41], serial[21], firmware[9];
    IDEErrorAction werror, rerror;
    bool cfg_locked;
    uint8_t cfg_password[IDE_PASSWORD_LEN];

    /* Task file as this device holds it (writes reach both devices). */
    uint8_t feature, hob_feature;
    uint8_t nsector, hob_nsector;
    uint8_t sector, hob_sector;
    uint8_t lcyl, hob_lcyl;
    uint8_t hcyl, hob_hcyl;
    uint8_t select;
    uint8_t status;
    uint8_t error;
    bool irq;               /* INTRQ asserted (pending) */

    /* The command in progress. */
    uint8_t cmd;
    IDEOp op;
    IDEXfer xfer;
    bool lba48;
    bool chs;               /* CHS addressing (device LBA bit clear) */
    bool dma_waiting;       /* DMA command issued, bus master not yet */
    uint64_t lba;           /* next sector of the transfer */
    uint32_t left;          /* sectors still to transfer */
    uint32_t block;         /* sectors per DRQ block */
    uint32_t io_pos, io_end, io_total;
    uint32_t gen;
    int64_t erase_pos;      /* ERASE UNIT progress, bytes */
    uint8_t io_buf[IDE_IO_BUF_SIZE];

    /* Settings. */
    bool write_cache;
    uint8_t mult;           /* SET MULTIPLE count, 0 = disabled */
    uint8_t pio_mode;
    int8_t mwdma_mode;      /* -1: none selected */
    int8_t udma_mode;
    IDEPower power;
    bool io_failed;
    IDESecurity sec;
    ATAPIState atapi;
} IDEDrive;

typedef struct IDEBMDMA {
    uint8_t cmd;
    uint8_t status;
    uint32_t prd_addr;      /* PRD table address register */
    /* Transfer cursor (valid while a DMA transfer runs). */
    uint32_t cur_entry;     /* guest address of the current entry */
    uint32_t cur_off;       /* bytes of it already transferred */
    bool exhausted;         /* the EOT entry has been consumed */
} IDEBMDMA;

typedef struct IDEChannel {
    uint8_t index;
    uint8_t devctl;
    uint8_t unit;           /* selected device */
    bool irq_level;         /* level driven on the channel's line */
    int8_t dma_unit;        /* drive owning the DMA engine, or -1 */
    IDEBMDMA bm;
    IDEDrive drive[2];
} IDEChannel;

typedef struct IDERequest IDERequest;
typedef void IDERequestDone(IDEDrive *d, IDERequest *r, int ret);

/* In-flight bookkeeping: one block request and its bounce buffer. */
struct IDERequest {
    DevIORequest io;        /* first: the completion casts back */
    IDEController *ctrl;    /* NULL once the controller is freed */
    IDEDrive *drive;
    uint32_t gen;
    bool is_write;          /* write or flush: the werror policy */
    bool stopped;           /* held by a stop policy until ide_resume */
    bool submitted;         /* counted in ctrl->in_flight */
    IDERequestDone *done;
    uint64_t arg;           /* sectors the request covers, for done */
};

struct IDEController {
    DevHost *host;
    IDEChannel ch[2];
    GList *reqs;            /* IDERequest *: submitted or stopped */
    unsigned in_flight;
};

/* ---- core.c, for atapi.c and bmdma.c ---- */

static inline IDEChannel *ide_drive_channel(IDEDrive *d)
{
    return &d->ctrl->ch[d->chan];
}

static inline DevHost *ide_drive_host(IDEDrive *d)
{
    return d->ctrl->host;
}

void ide_set_irq(IDEDrive *d);
void ide_update_irq(IDEChannel *ch);
void ide_cancel(IDEDrive *d);
void ide_cmd_end(IDEDrive *d);
void ide_error(IDEDrive *d, uint8_t err);
void ide_set_signature(IDEDrive *d);
void ide_ata_string(uint16_t *words, int first, int nwords, const char *s);
void ide_identify_finish(uint16_t *words);
void ide_pio_in_start(IDEDrive *d, IDEOp op, uint32_t total,
                      uint32_t block);
IDERequest *ide_request_new(IDEDrive *d, DevIOOp op, int64_t offset,
                            size_t len, IDERequestDone *done);
void ide_request_submit(IDEDrive *d, IDERequest *r);
int64_t ide_latency_ns(size_t bytes);
/* Applies the rerror/werror policy to a failed request.  Returns true if
 * the request is held (stop policy): the caller must leave it alone. */
bool ide_request_failed(IDEDrive *d, IDERequest *r, int *ret);
void ide_dma_request(IDEDrive *d);
void ide_dma_kick(IDEChannel *ch);
void ide_dma_stopped(IDEChannel *ch);
void ide_dma_error(IDEDrive *d);
void ide_dma_done(IDEDrive *d);
uint8_t ide_xfer_mode_setting(IDEDrive *d, uint8_t count, bool *ok);

/* ---- atapi.c ---- */

void atapi_reset(IDEDrive *d, bool power_on);
void atapi_identify(IDEDrive *d);
void atapi_packet_cmd(IDEDrive *d);
void atapi_cdb_received(IDEDrive *d);
void atapi_pio_block_done(IDEDrive *d);
void atapi_dma_start(IDEDrive *d);
void atapi_dma_abort(IDEDrive *d);
void atapi_identify_modes(IDEDrive *d, uint16_t *w);
int64_t atapi_nb_sectors(IDEDrive *d);
bool atapi_medium_present(IDEDrive *d);

/* ---- bmdma.c ---- */

uint8_t ide_bmdma_readb(IDEChannel *ch, unsigned off);
void ide_bmdma_writeb(IDEController *c, IDEChannel *ch, unsigned off,
                      uint8_t val);
void ide_bmdma_reset(IDEChannel *ch);
/* Validates the PRD table for a transfer of bytes in the direction
 * to_ram; on failure sets Error + Interrupt and clears Active. */
bool ide_bmdma_begin(IDEController *c, IDEChannel *ch, uint64_t bytes,
                     bool to_ram);
bool ide_bmdma_to_ram(IDEController *c, IDEChannel *ch, const void *buf,
                      size_t len);
bool ide_bmdma_from_ram(IDEController *c, IDEChannel *ch, void *buf,
                        size_t len);
/* The transfer ended: ok = every byte moved, else a DMA error. */
void ide_bmdma_end(IDEChannel *ch, bool ok);

#endif
