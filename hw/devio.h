/*
 * devio.h - the contract between a device model and the machine it sits in.
 *
 * Device models (hw/ide/, the GPU, the gamepad) never see Unicorn, the
 * vCPU thread or the main loop directly.  They receive a DevHost and reach
 * guest RAM, interrupt lines, the virtual clock and the block layer only
 * through it.  The console machine (hw/xbox/machine.c) implements it for
 * real; unit tests implement it with a plain RAM buffer and the real block
 * layer on the test's own loop (tests/hw/devhost-test.h).
 *
 * Threads: every DevHostOps call is made on the *device thread* (the vCPU
 * thread in the machine, the test's thread in unit tests), and every
 * callback a host makes into a device (DevIORequest.complete) runs there too.
 * So a device's state needs no lock.
 *
 * Determinism (DESIGN rule 6): a DevIORequest completes at a virtual time
 * fixed when it is submitted (now + latency_ns), never earlier, whatever the
 * host disk does.  If the host I/O is late the machine holds the virtual
 * clock (the vCPU waits) until it is done, so the guest sees the same
 * completion instant on every run.
 *
 * Guest RAM rule (DESIGN "Host-side writes into guest RAM"): a device never
 * lets a syscall write into guest RAM.  Block requests use the request's own
 * bounce buffer; the device copies between that buffer and guest RAM with
 * devhost_ram_write()/devhost_ram_read() (or map_write for the GPU), which
 * make protected pages writable first.
 */
#ifndef XBLK_HW_DEVIO_H
#define XBLK_HW_DEVIO_H

#include <xblk/xblk.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct DevHost DevHost;
typedef struct DevIORequest DevIORequest;

typedef enum {
    DEVIO_READ,
    DEVIO_WRITE,
    DEVIO_FLUSH,
} DevIOOp;

struct DevIORequest {
    /* Filled by the device before devhost_submit(). */
    XblkDisk *disk;
    DevIOOp op;
    int64_t offset;         /* bytes into the medium */
    void *buf;              /* bounce buffer owned by the device */
    size_t len;             /* bytes; 0 for DEVIO_FLUSH */
    int64_t latency_ns;     /* virtual time from submit to completion, >= 0 */
    /* Runs on the device thread at virtual time submit + latency_ns, with
     * ret = 0 or -errno from the block layer. */
    void (*complete)(DevIORequest *req, int ret);
    void *opaque;           /* the device's */

    /* Host-private. */
    int64_t deadline_ns;
    int ret;
    DevIORequest *next;
};

typedef struct DevHostOps {
    /* Level of interrupt line irq (0..15, the PIC's inputs). */
    void (*set_irq)(DevHost *host, int irq, bool level);
    /* Copy between guest RAM and a host buffer.  False (and nothing
     * copied) unless [gpa, gpa + len) lies wholly inside guest RAM. */
    bool (*ram_read)(DevHost *host, uint64_t gpa, void *buf, uint64_t len);
    bool (*ram_write)(DevHost *host, uint64_t gpa, const void *buf,
                      uint64_t len);
    /* Host pointer to guest RAM [gpa, gpa + len), writable by the host
     * (pages made writable through the machine's helper), or NULL unless
     * the range lies wholly inside RAM.  Valid until the device returns
     * to the host (the GPU draws through it). */
    void *(*ram_map_write)(DevHost *host, uint64_t gpa, uint64_t len);
    const void *(*ram_map_read)(DevHost *host, uint64_t gpa, uint64_t len);
    /* The virtual clock in nanoseconds. */
    int64_t (*clock_ns)(DevHost *host);
    /* Starts req asynchronously; see DevIORequest.complete. */
    void (*submit)(DevHost *host, DevIORequest *req);
    /* A request failed under a werror/rerror=stop policy: the machine
     * stops (run state io-error) once the current instruction finishes.
     * dev_name is the -drive id (QEMU's BLOCK_IO_ERROR "device"). */
    void (*io_error_stop)(DevHost *host, const char *dev_name,
                          const char *node_name, bool is_write, int ret);
    /* BLOCK_IO_ERROR event for the report/ignore policies. */
    void (*io_error_event)(DevHost *host, const char *dev_name,
                           const char *node_name, bool is_write, int ret,
                           const char *action);
    /* The tray of a drive with removable media (dev_name: its -drive id)
     * opened or closed, whoever moved it: the guest (START STOP UNIT) or
     * the machine's media control.  Made once per real movement.  May be
     * NULL (hosts that do not report DEVICE_TRAY_MOVED). */
    void (*tray_moved)(DevHost *host, const char *dev_name, bool open);
} DevHostOps;

struct DevHost {
    const DevHostOps *ops;
};

static inline void devhost_set_irq(DevHost *h, int irq, bool level)
{
    h->ops->set_irq(h, irq, level);
}

static inline bool devhost_ram_read(DevHost *h, uint64_t gpa, void *buf,
                                    uint64_t len)
{
    return h->ops->ram_read(h, gpa, buf, len);
}

static inline bool devhost_ram_write(DevHost *h, uint64_t gpa,
                                     const void *buf, uint64_t len)
{
    return h->ops->ram_write(h, gpa, buf, len);
}

static inline void *devhost_ram_map_write(DevHost *h, uint64_t gpa,
                                          uint64_t len)
{
    return h->ops->ram_map_write(h, gpa, len);
}

static inline const void *devhost_ram_map_read(DevHost *h, uint64_t gpa,
                                               uint64_t len)
{
    return h->ops->ram_map_read(h, gpa, len);
}

static inline int64_t devhost_clock_ns(DevHost *h)
{
    return h->ops->clock_ns(h);
}

static inline void devhost_submit(DevHost *h, DevIORequest *req)
{
    h->ops->submit(h, req);
}

/*
 * Port and MMIO handlers, as devices export them.  addr is the port number
 * (port I/O) or the offset into the device's MMIO window; size is 1, 2 or
 * 4 bytes.  Reads of nothing return all ones, as an open bus does.
 */
typedef uint32_t DevReadFn(void *opaque, uint32_t addr, unsigned size);
typedef void DevWriteFn(void *opaque, uint32_t addr, uint32_t val,
                        unsigned size);

#endif
