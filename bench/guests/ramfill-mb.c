/*
 * ramfill-mb.c - the RAM-filling guest of bench/run-savestate-bench,
 * Multiboot flavour: the same fill as ramfill.c (ramfill.h) for a PC
 * booted with qemu-system-x86_64 -kernel ramfill-mb.elf (entry in
 * ramfill-mbentry.S).
 *
 * RAM ends at 1 MiB + the boot information's mem_upper KiB (QEMU with
 * SeaBIOS: 128 KiB short of -m, which the firmware keeps for its tables),
 * or at N MiB with "ram=N" on the command line (-append; the firmware's
 * tables are of no use once the program runs, so overwriting them is
 * harmless); without either, 64 MiB.  The PRNG seed is 1 (the xblk run
 * uses seed=1), or N with "seed=N" on the command line.
 * Prints the same lines as ramfill.c on port 0xE9 (QEMU: -debugcon),
 * then sleeps for ever with interrupts off (cli; hlt): QEMU stops the
 * whole VM for its save and load, so what the guest does meanwhile does
 * not change the pause, and an idle guest keeps the host free for them.
 */
#include "console.h"
#include "io.h"
#include "ramfill.h"

#define MB_BOOT_MAGIC   0x2BADB002u
#define MBI_FLAG_MEM    (1u << 0)
#define MBI_FLAG_CMDLINE (1u << 2)
#define DEFAULT_RAM     (64u << 20)

struct mb_info {
    uint32_t flags;
    uint32_t mem_lower;
    uint32_t mem_upper;
    uint32_t boot_device;
    uint32_t cmdline;
};

/* The decimal value of "KEY=" on the command line, or dflt. */
static uint32_t cmdline_value(const char *cl, const char *key, uint32_t dflt)
{
    for (const char *s = cl; *s; s++) {
        const char *k = key, *p = s;
        while (*k && *p == *k) {
            k++;
            p++;
        }
        if (!*k && *p == '=' && (s == cl || s[-1] == ' ')) {
            uint32_t v = 0;
            for (p++; *p >= '0' && *p <= '9'; p++) {
                v = v * 10 + (uint32_t)(*p - '0');
            }
            return v;
        }
    }
    return dflt;
}

void mb_main(uint32_t magic, const struct mb_info *mbi);

void mb_main(uint32_t magic, const struct mb_info *mbi)
{
    uint32_t ram = DEFAULT_RAM, seed = 1;
    uint64_t state;
    if (magic != MB_BOOT_MAGIC) {
        con_printf("X not booted by a Multiboot loader (eax %08x)\n", magic);
        halt_forever();
    }
    if (mbi->flags & MBI_FLAG_MEM) {
        ram = (1u << 20) + (mbi->mem_upper << 10);
    }
    if (mbi->flags & MBI_FLAG_CMDLINE && mbi->cmdline) {
        /* QEMU passes "KERNEL-PATH ARGS": keys follow a space. */
        const char *cl = (const char *)mbi->cmdline;
        uint32_t mib = cmdline_value(cl, "ram", 0);
        seed = cmdline_value(cl, "seed", seed);
        if (mib && mib < 4096) {
            ram = mib << 20;
        }
    }
    con_printf("ramfill-mb: RAM %u MiB, seed %u\n", ram >> 20, seed);
    if ((uint32_t)__image_end > RAMFILL_BASE || ram <= RAMFILL_BASE) {
        con_printf("X the program or RAM does not fit the fill range\n");
        halt_forever();
    }
    state = ramfill_state(seed);
    con_printf("P ram=%u base=%u bytes=%u seed=%u dirty_pages=0\n", ram,
               RAMFILL_BASE, ram - RAMFILL_BASE, seed);
    con_printf("B fill %u bytes\n", ram - RAMFILL_BASE);
    ramfill_fill(RAMFILL_BASE, ram, &state);
    con_printf("E fill\n");
    con_printf("R\n");
    halt_forever();
}
