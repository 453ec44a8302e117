/*
 * sysctl.h - the system controller (ports 0xE000-0xE01F): machine ID,
 * RAM size, the seed, the HDD key and the power register.
 */
#ifndef GUEST_SYSCTL_H
#define GUEST_SYSCTL_H

#include <stdbool.h>
#include <stdint.h>

bool sysctl_present(void);
uint32_t sysctl_ram_size(void);
uint64_t sysctl_seed(void);
/* The 32-byte ATA password (zero padded). */
void sysctl_hdd_key(uint8_t key[32]);
void sysctl_power_off(void) __attribute__((noreturn));

#endif
