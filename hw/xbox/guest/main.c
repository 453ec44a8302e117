/*
 * main.c - the reference guest's boot sequence and frame loop.
 *
 * Boot: IDT and PIC, GPU (its vblank interrupt paces everything and
 * bounds the disk timeouts), both drives identified, the hard disk
 * unlocked, assets read from the disc, the newest save restored.  Then
 * every frame: sleep (hlt) until vblank, read the pad, step the game,
 * queue the frame's drawing and flip, maybe start a save.  All waiting is
 * hlt on interrupts, so a run depends on the virtual clock only: the seed,
 * the disc, the disk contents and the input script.
 */
#include "assets.h"
#include "ata.h"
#include "atapi.h"
#include "console.h"
#include "game.h"
#include "gpu.h"
#include "ide.h"
#include "idt.h"
#include "io.h"
#include "layout.h"
#include "pic.h"
#include "render.h"
#include "save.h"
#include "sysctl.h"

static AtaDisk hdd;
static AtapiDrive dvd;
static Assets assets;
static GameState game;

static void print_hdd(const AtaDisk *d)
{
    uint32_t mib = (uint32_t)(d->sectors >> 11);
    con_printf("xboxguest: hdd (unit %d): \"%s\" serial \"%s\" firmware "
               "\"%s\", %llu sectors (%u MiB)%s, security %s%s\n", d->unit,
               d->model, d->serial, d->firmware,
               (unsigned long long)d->sectors, mib, d->lba48 ? ", LBA48" : "",
               !d->security_supported ? "not supported"
               : d->security_locked ? "locked"
               : d->security_enabled ? "enabled, unlocked" : "disabled",
               d->security_frozen ? ", frozen" : "");
}

static void print_dvd(const AtapiDrive *d)
{
    con_printf("xboxguest: dvd (unit %d): \"%s\" serial \"%s\" firmware "
               "\"%s\", type %u\n", d->unit, d->model, d->serial,
               d->firmware, d->type);
}

static void add_hdd(int unit, const AtaDisk *d)
{
    if (hdd.present) {
        con_printf("xboxguest: unit %d: second disk, unused\n", unit);
        return;
    }
    hdd = *d;
    print_hdd(&hdd);
}

static void add_dvd(int unit, const AtapiDrive *p)
{
    if (dvd.present) {
        con_printf("xboxguest: unit %d: second DVD, unused\n", unit);
        return;
    }
    dvd = *p;
    print_dvd(&dvd);
}

/* Finds the ATA disk and the ATAPI drive on the primary channel.  A
 * device that aborts IDENTIFY DEVICE with the PACKET signature is asked
 * again with IDENTIFY PACKET DEVICE. */
static void find_drives(void)
{
    for (int unit = 0; unit < 2; unit++) {
        IdeProbe probe = ide_probe(unit);
        AtaDisk d;
        AtapiDrive p;
        bool atapi = probe == IDE_PROBE_ATAPI;
        if (probe == IDE_PROBE_ATA && ata_identify(unit, &d, &atapi)) {
            add_hdd(unit, &d);
        } else if (atapi && atapi_identify(unit, &p)) {
            add_dvd(unit, &p);
        } else {
            con_printf("xboxguest: unit %d: no drive\n", unit);
        }
    }
}

static void load_assets(uint64_t seed)
{
    if (dvd.present && atapi_wait_ready(&dvd)) {
        con_printf("xboxguest: dvd: medium of %u sectors\n", dvd.blocks);
        if (assets_from_disc(&assets, &dvd)) {
            return;
        }
        con_printf("xboxguest: disc: read failed\n");
    }
    con_printf("xboxguest: no usable disc: boxes and a level from the "
               "seed\n");
    assets_generate(&assets, seed);
}

/* Sleeps until the next vblank, advancing a save whenever the disk
 * interrupts meanwhile. */
static void wait_vblank(uint32_t *last)
{
    for (;;) {
        cli();
        while (gpu_vblanks() == *last && !(save_busy() && ide_done())) {
            sti_hlt_cli();
        }
        sti();
        save_poll();
        if (gpu_vblanks() != *last) {
            *last = gpu_vblanks();
            return;
        }
    }
}

static void report_gpu_error(void)
{
    uint32_t e = gpu_take_error();
    if (e) {
        con_printf("xboxguest: gpu: error %u at frame %u\n", e, game.frame);
    }
}

static void __attribute__((noreturn)) power_off(void)
{
    con_printf("xboxguest: BACK pressed at frame %u, powering off\n",
               game.frame);
    save_drain();
    gpu_sync();
    sysctl_power_off();
}

static void __attribute__((noreturn)) frame_loop(void)
{
    uint32_t last = gpu_vblanks();
    for (;;) {
        Pad pad;
        wait_vblank(&last);
        game_read_pad(&pad);
        if (game_step(&game, &assets, &pad)) {
            power_off();
        }
        render_frame(&assets, &game, save_indicator(&game));
        save_tick(&game);
        report_gpu_error();
    }
}

int main(void)
{
    uint64_t seed;
    GameState saved;
    con_printf("xboxguest: boot\n");
    if (!sysctl_present()) {
        con_printf("xboxguest: system controller missing\n");
    }
    seed = sysctl_seed();
    con_printf("xboxguest: RAM %u MiB, seed %llu\n", sysctl_ram_size() >> 20,
               (unsigned long long)seed);
    idt_init();
    pic_init();
    if (!gpu_init()) {
        panic("no GPU");
    }
    ide_init();
    sti();
    find_drives();
    if (hdd.present && !ata_unlock(hdd.unit, &hdd)) {
        con_printf("xboxguest: hdd: locked, saving off\n");
        hdd.present = false;
    }
    load_assets(seed);
    save_init(&hdd, seed);
    game_init(&game, &assets, seed);
    if (save_load_newest(&saved)) {
        game_restore(&game, &saved, &assets);
    }
    render_background(&assets);
    con_printf("xboxguest: running from frame %u, save counter %u\n",
               game.frame, save_counter());
    frame_loop();
}
