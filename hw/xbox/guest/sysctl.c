/*
 * sysctl.c - reads the system controller's registers and asks it to
 * power off.  The seed is the only source of variety in the simulation.
 */
#include "sysctl.h"
#include "io.h"
#include "layout.h"

#define SMC_ID          (PORT_SMC + 0x00)
#define SMC_RAM         (PORT_SMC + 0x04)
#define SMC_SEED_LO     (PORT_SMC + 0x08)
#define SMC_SEED_HI     (PORT_SMC + 0x0C)
#define SMC_KEY_INDEX   (PORT_SMC + 0x10)
#define SMC_KEY_DATA    (PORT_SMC + 0x14)
#define SMC_POWER       (PORT_SMC + 0x18)
#define SMC_ID_VALUE    0x4B4C4258u     /* "XBLK" */

bool sysctl_present(void)
{
    return inl(SMC_ID) == SMC_ID_VALUE;
}

uint32_t sysctl_ram_size(void)
{
    return inl(SMC_RAM);
}

uint64_t sysctl_seed(void)
{
    uint32_t lo = inl(SMC_SEED_LO);
    uint32_t hi = inl(SMC_SEED_HI);
    return (uint64_t)hi << 32 | lo;
}

void sysctl_hdd_key(uint8_t key[32])
{
    outl(SMC_KEY_INDEX, 0);
    for (int i = 0; i < 8; i++) {
        uint32_t w = inl(SMC_KEY_DATA);     /* the index advances */
        key[i * 4 + 0] = (uint8_t)w;
        key[i * 4 + 1] = (uint8_t)(w >> 8);
        key[i * 4 + 2] = (uint8_t)(w >> 16);
        key[i * 4 + 3] = (uint8_t)(w >> 24);
    }
}

void sysctl_power_off(void)
{
    cli();
    outb(SMC_POWER, 1);
    /* Power-off takes effect at the end of the slice; never run on. */
    halt_forever();
}
