/*
 * smc.h - the system controller (docs/machine.md): machine ID, RAM size,
 * seed, the HDD key and the power register at 0xE000-0xE01F, and the debug
 * console at 0xE9.  Runs on the device thread.
 */
#ifndef XBLK_HW_XBOX_SMC_H
#define XBLK_HW_XBOX_SMC_H

#include <xblk/xblk.h>
#include <stdint.h>
#include <stdio.h>

#define SMC_PORT_BASE   0xE000u
#define SMC_PORT_SIZE   0x20u
#define DEBUGCON_PORT   0xE9u

typedef enum {
    SMC_POWER_OFF = 1,
    SMC_POWER_RESET = 2,
} SmcPowerRequest;

typedef void SmcPowerFn(void *opaque, SmcPowerRequest req);

typedef struct Smc Smc;

/* key: the 32-byte HDD key (ATA password), zero padded. debugcon may be
 * NULL (bytes dropped). */
Smc *smc_new(uint64_t ram_size, uint64_t seed, const uint8_t key[32],
             FILE *debugcon, SmcPowerFn *power, void *opaque);
void smc_free(Smc *smc);
void smc_reset(Smc *smc);
uint32_t smc_ioport_read(void *smc, uint32_t port, unsigned size);
void smc_ioport_write(void *smc, uint32_t port, uint32_t val, unsigned size);

/* Save states (opaque: the Smc): the key index, and the seed and HDD key
 * the guest can read (a loaded machine answers as the saved one did).
 * The RAM size must match; the debug console is not state. */
const XblkDeviceDesc *smc_vmstate(void);

#endif
