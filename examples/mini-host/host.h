/*
 * host.h - what the mini-host's two files share: the Host (one per
 * process) and the calls between the machine side (mini-host.c: engine,
 * RAM, disk, the vCPU thread, the pause contract, the loop) and the
 * command side (commands.c: stdin commands, signals, replies).
 *
 * Threads.  Ours: the loop thread (main: the engine, the disk, stdin,
 * every reply) and the vCPU thread (guest_step, the queue, and
 * xblk_host_paused when it parks last).  The engine's streaming thread
 * calls save_page/save_finish, which touch only the save_* fields.  The
 * fields under "shared" are read and written under `lock` only
 * (engine_pause is also read unlocked, hence atomic); the guest's RAM
 * and device are the vCPU's while it runs and the loop's while it is
 * parked (`parked` set, under the lock).
 */
#ifndef MINI_HOST_H
#define MINI_HOST_H

#include "guest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define HOST_QUEUE_MAX  32      /* records queued or in flight at most */

/* A record on its way from the vCPU to the disk. */
typedef struct Record {
    struct Record *next;
    struct Host *host;
    uint64_t offset;
    uint64_t data[MINI_RECORD_SIZE / 8];
} Record;

typedef struct Checksum Checksum;       /* commands.c */

typedef struct Host {
    /* Set up once by main(). */
    XblkEngine *engine;
    XblkDisk *disk;
    uint64_t *ram;              /* guest RAM: mmap'd, page aligned */
    uint64_t ram_size;
    uint64_t rate;              /* steps per second (0: unpaced) */
    MiniDevice dev;             /* the device (see the thread rule above) */
    XblkDeviceDesc desc;        /* its table and hooks */
    int wake_rd, wake_wr;       /* vCPU -> loop wake-up pipe */
    pthread_t vcpu;

    /* Shared, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* any change below; CLOCK_MONOTONIC */
    int64_t budget;             /* steps left: -1 no limit, 0 stopped */
    atomic_bool engine_pause;   /* ops->pause() .. ops->resume(); also
                                 * read unlocked by the spinning vCPU */
    bool pause_pending;         /* ... and xblk_host_paused() not yet */
    bool host_paused;           /* xblk_host_paused() .. ops->resume() */
    bool quit;                  /* the vCPU thread ends */
    bool parked;                /* the vCPU waits at a step boundary */
    bool sleeping;              /* ... on cond (not spinning) */
    bool wake_pending;          /* a byte is in the wake-up pipe */
    int64_t parked_ns;          /* when it parked */
    int64_t paused_ns;          /* when xblk_host_paused() was called */
    int64_t stop_ns;            /* the last pause's parked .. running */
    int64_t drain_ns;           /* ... of which parked .. host_paused() */
    bool stop_open;             /* resumed; the vCPU sets stop_ns */
    uint64_t steps;             /* dev.step as of the last step */
    uint64_t made;              /* dev.records as of the last step */
    Record *queue, **queue_tail;
    unsigned queued;            /* records in the queue */
    unsigned in_flight;         /* our disk requests not completed */

    /* Loop thread only. */
    uint64_t records_done;      /* what the mailbox says */
    unsigned pauses;            /* ops->pause() calls since the op began */
    uint64_t loaded_step;       /* dev.step after the last load */
    uint64_t write_errors;
    uint64_t saves, loads, deletes, failures;
    int64_t last_pause_ns;      /* engine's figure, last save or load */
    Checksum *sum;              /* a checksum or verify in progress */
    bool quitting;

    /* The engine's streaming thread, during a save: the hash of RAM as
     * of the pause, over the pages it hands us (save_page). */
    uint64_t save_hash, save_next;
    bool save_hash_ok;
    char frame_hash[17];
} Host;

/* mini-host.c */
void host_kick(Host *h);                /* submit records, check the pause */
void host_set_budget(Host *h, int64_t budget);
bool host_stopped(Host *h);             /* parked, budget 0, nothing in
                                         * flight or queued */
int64_t now_ns(void);

/* commands.c */
void cmd_line(Host *h, char *line);
void cmd_signal(Host *h, int sig);
void cmd_kick(Host *h);                 /* owed answers whose time came */
bool cmd_idle(Host *h);                 /* nothing of ours in progress */
bool cmd_holding(void);                 /* the next line must wait */
void reply(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif
