/*
 * smc.c - the system controller (docs/machine.md, "System controller") and
 * the debug console at port 0xE9.
 *
 * Owns: the machine-info registers at 0xE000-0xE01F (ID, RAM size, seed,
 * the HDD key window, the power register) and the byte sink of -debugcon.
 * Called by the machine's port-I/O dispatch on the device thread.
 *
 * Invariants:
 * - The only guest-visible state that changes is the HDD key index
 *   (key_index, always 0..7); everything else is fixed at smc_new().
 * - Read-only registers answer reads of any width at any byte inside them
 *   (little-endian); the key window answers 32-bit reads only (a partial
 *   read must not advance the index); the write-only registers take the
 *   low bits of a write of any width at their address; everything else
 *   reads as all ones and ignores writes, as an open bus does.
 * - Debug console bytes go to the FILE in order and are flushed at each
 *   newline, so a reader of the file sees whole lines promptly.
 */
#include "hw/xbox/smc.h"
#include <glib.h>
#include <stdbool.h>
#include <string.h>

#define SMC_ID          0x4B4C4258u     /* "XBLK" */
#define SMC_REG_ID      0x00
#define SMC_REG_RAM     0x04
#define SMC_REG_SEED_LO 0x08
#define SMC_REG_SEED_HI 0x0C
#define SMC_REG_KEY_IDX 0x10
#define SMC_REG_KEY     0x14
#define SMC_REG_POWER   0x18
#define SMC_KEY_WORDS   8

struct Smc {
    /* Fixed configuration. */
    uint32_t ram_size;
    uint64_t seed;
    uint8_t key[32];
    FILE *debugcon;
    SmcPowerFn *power;
    void *opaque;
    /* Guest-visible state. */
    uint32_t key_index;         /* 0..7 */
};

static uint32_t smc_all_ones(unsigned size)
{
    return size >= 4 ? 0xFFFFFFFFu : (1u << (8 * size)) - 1;
}

Smc *smc_new(uint64_t ram_size, uint64_t seed, const uint8_t key[32],
             FILE *debugcon, SmcPowerFn *power, void *opaque)
{
    Smc *smc = g_new0(Smc, 1);
    /* The register is 32 bits wide; RAM is 64 or 128 MiB, so it fits. */
    smc->ram_size = (uint32_t)MIN(ram_size, (uint64_t)UINT32_MAX);
    smc->seed = seed;
    if (key) {
        memcpy(smc->key, key, sizeof(smc->key));
    }
    smc->debugcon = debugcon;
    smc->power = power;
    smc->opaque = opaque;
    return smc;
}

void smc_free(Smc *smc)
{
    if (smc && smc->debugcon) {
        fflush(smc->debugcon);
    }
    g_free(smc);
}

void smc_reset(Smc *smc)
{
    smc->key_index = 0;
}

/* Little-endian key word i of the 32-byte key. */
static uint32_t smc_key_word(const Smc *smc, unsigned i)
{
    const uint8_t *p = smc->key + 4 * i;
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The 32-bit value of a read-only register, or false for other offsets. */
static bool smc_ro_value(const Smc *smc, uint32_t reg, uint32_t *val)
{
    switch (reg) {
    case SMC_REG_ID:
        *val = SMC_ID;
        return true;
    case SMC_REG_RAM:
        *val = smc->ram_size;
        return true;
    case SMC_REG_SEED_LO:
        *val = (uint32_t)smc->seed;
        return true;
    case SMC_REG_SEED_HI:
        *val = (uint32_t)(smc->seed >> 32);
        return true;
    default:
        return false;
    }
}

uint32_t smc_ioport_read(void *opaque, uint32_t port, unsigned size)
{
    Smc *smc = opaque;
    uint32_t ones = smc_all_ones(size);

    if (port == DEBUGCON_PORT) {
        /* As QEMU's isa-debugcon: reads return the port number, so a
         * guest can probe for the console. */
        return DEBUGCON_PORT & ones;
    }
    if (port < SMC_PORT_BASE || port >= SMC_PORT_BASE + SMC_PORT_SIZE ||
        size == 0 || size > 4) {
        return ones;
    }
    uint32_t off = port - SMC_PORT_BASE;
    uint32_t reg = off & ~3u, shift = 8 * (off & 3u), val;
    if (smc_ro_value(smc, reg, &val)) {
        /* An access running past the register reads ones for those bytes
         * (they belong to the next register, which a split access would
         * not reach: keep it simple and side-effect free). */
        if ((off & 3u) + size > 4) {
            return ones;
        }
        return (val >> shift) & ones;
    }
    if (off == SMC_REG_KEY && size == 4) {
        val = smc_key_word(smc, smc->key_index);
        /* The index advances so that eight reads fetch the whole key; it
         * wraps so a ninth read starts over instead of reading past it. */
        smc->key_index = (smc->key_index + 1) % SMC_KEY_WORDS;
        return val;
    }
    return ones;
}

static void smc_debugcon_write(Smc *smc, uint8_t byte)
{
    if (!smc->debugcon) {
        return;
    }
    fputc(byte, smc->debugcon);
    if (byte == '\n') {
        fflush(smc->debugcon);
    }
}

static void smc_power_write(Smc *smc, uint8_t val)
{
    if ((val == SMC_POWER_OFF || val == SMC_POWER_RESET) && smc->power) {
        smc->power(smc->opaque, (SmcPowerRequest)val);
    }
    /* Other values are ignored: no state change, nothing reported. */
}

void smc_ioport_write(void *opaque, uint32_t port, uint32_t val,
                      unsigned size)
{
    Smc *smc = opaque;

    if (port == DEBUGCON_PORT) {
        /* One byte per write, whatever the access width (the low byte). */
        smc_debugcon_write(smc, (uint8_t)val);
        return;
    }
    if (port < SMC_PORT_BASE || port >= SMC_PORT_BASE + SMC_PORT_SIZE) {
        return;
    }
    switch (port - SMC_PORT_BASE) {
    case SMC_REG_KEY_IDX:
        /* Index 0..7: larger values wrap, never index past the key. */
        smc->key_index = val % SMC_KEY_WORDS;
        break;
    case SMC_REG_POWER:
        smc_power_write(smc, (uint8_t)val);
        break;
    default:
        break;
    }
}

/* ---- save states ---- */

static bool smc_check(const void *current, const void *scratch,
                      int version_id, XblkError **err)
{
    const Smc *cur = current, *s = scratch;
    if (cur->ram_size != s->ram_size) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "the state was saved with %u bytes of RAM, this "
                       "machine has %u", s->ram_size, cur->ram_size);
        return false;
    }
    return true;
}

static const XblkDeviceDesc smc_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "smc",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(Smc),
    .check = smc_check,
    .fields = (const XblkField[]){
        XBLK_U32(Smc, ram_size),
        XBLK_U64(Smc, seed),
        XBLK_BUFFER(Smc, key),
        XBLK_U32(Smc, key_index, XBLK_MAX(SMC_KEY_WORDS - 1)),
        XBLK_FIELDS_END
    },
};

const XblkDeviceDesc *smc_vmstate(void)
{
    return &smc_desc;
}
