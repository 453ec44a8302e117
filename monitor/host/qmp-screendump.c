/*
 * qmp-screendump.c - QMP `screendump`: the picture the console shows now,
 * written as QEMU writes it: binary PPM (P6, the default) or PNG (hw/xbox/picture.h).
 *
 * The picture is copied out of guest RAM on the vCPU thread (the GPU owns
 * the scanout registers there), then encoded and written here on the main
 * loop.  The file appears whole: it is written under a temporary name in
 * the same folder and renamed into place.
 */
#include "hw/xbox/gpu.h"
#include "hw/xbox/machine.h"
#include "hw/xbox/picture.h"
#include "qapi/qapi-commands.h"
#include "util/error.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct ScanoutCopy {
    uint32_t *pixels;
    GError *err;
    bool ok;
} ScanoutCopy;

static void screendump_copy_on_vcpu(XboxMachine *m, void *opaque)
{
    ScanoutCopy *c = opaque;
    c->ok = gpu_read_scanout(machine_gpu(m), c->pixels, &c->err);
}

/* One row of XRGB8888 pixels as 8-bit RGB. */
static void screendump_row_rgb(const uint32_t *px, uint8_t *rgb, int width)
{
    for (int x = 0; x < width; x++) {
        rgb[3 * x] = px[x] >> 16;
        rgb[3 * x + 1] = px[x] >> 8;
        rgb[3 * x + 2] = px[x];
    }
}

static bool screendump_write_ppm(FILE *f, const uint32_t *pixels, int w,
                                 int h)
{
    g_autofree uint8_t *row = g_malloc(3 * w);
    if (fprintf(f, "P6\n%d %d\n255\n", w, h) < 0) {
        return false;
    }
    for (int y = 0; y < h; y++) {
        screendump_row_rgb(pixels + (size_t)y * w, row, w);
        if (fwrite(row, 3, w, f) != (size_t)w) {
            return false;
        }
    }
    return true;
}

static bool screendump_write_png(FILE *f, const uint32_t *pixels, int w,
                                 int h)
{
    g_autoptr(GBytes) png = picture_png_encode(pixels, w, h, NULL);
    gsize len;
    const void *data = png ? g_bytes_get_data(png, &len) : NULL;
    return data && fwrite(data, 1, len, f) == len;
}

static bool screendump_save(const char *filename, const uint32_t *pixels,
                            bool as_png, GError **errp)
{
    g_autofree char *tmp = g_strdup_printf("%s.tmp-%d", filename, getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        error_setg(errp, "failed to open file '%s': %s", filename,
                   g_strerror(errno));
        return false;
    }
    bool ok = as_png ? screendump_write_png(f, pixels, GPU_WIDTH, GPU_HEIGHT)
                     : screendump_write_ppm(f, pixels, GPU_WIDTH, GPU_HEIGHT);
    int err = ok ? 0 : errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok && rename(tmp, filename) < 0) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        unlink(tmp);
        error_setg(errp, "failed to write file '%s': %s", filename,
                   g_strerror(err ? err : EIO));
    }
    return ok;
}

void qmp_screendump(const char *filename, bool has_device,
                    const char *device, bool has_head, int64_t head,
                    bool has_format, ImageFormat format, GError **errp)
{
    XboxMachine *m = machine_current();
    if (!m) {
        error_setg(errp, "There is no QemuConsole I can screendump from.");
        return;
    }
    if (has_device && strcmp(device, "gpu")) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
                  "Device '%s' not found", device);
        return;
    }
    if (has_head && head != 0) {
        error_setg(errp, "Head '%" G_GINT64_FORMAT "' not found", head);
        return;
    }
    ScanoutCopy c = { .pixels = g_new(uint32_t, GPU_WIDTH * GPU_HEIGHT) };
    machine_run_on_vcpu(m, screendump_copy_on_vcpu, &c);
    if (!c.ok) {
        g_propagate_error(errp, c.err);
    } else {
        screendump_save(filename, c.pixels,
                        has_format && format == IMAGE_FORMAT_PNG, errp);
    }
    g_free(c.pixels);
}
