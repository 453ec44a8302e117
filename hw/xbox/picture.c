/*
 * picture.c - PNG encoding into memory and 2x2 downscaling (picture.h).
 * libpng reports errors by longjmp: every object the encoder owns is
 * reachable from locals declared volatile or freed after the jump.
 */
#include "hw/xbox/picture.h"
#include "hw/error.h"
#include <png.h>
#include <string.h>

static void png_append(png_structp png, png_bytep data, png_size_t len)
{
    g_byte_array_append(png_get_io_ptr(png), data, len);
}

static void png_no_flush(png_structp png)
{
    (void)png;
}

GBytes *picture_png_encode(const uint32_t *pixels, int w, int h,
                           GError **errp)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
                                              NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    GByteArray *volatile out = g_byte_array_new();
    uint8_t *volatile row = g_malloc(3 * (size_t)w);
    bool ok = false;
    if (!info) {
        goto done;
    }
    if (setjmp(png_jmpbuf(png))) {
        goto done;
    }
    png_set_write_fn(png, out, png_append, png_no_flush);
    png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) {
        const uint32_t *px = pixels + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            row[3 * x] = px[x] >> 16;
            row[3 * x + 1] = px[x] >> 8;
            row[3 * x + 2] = px[x];
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    ok = true;
done:
    png_destroy_write_struct(&png, info ? &info : NULL);
    g_free(row);
    if (!ok) {
        g_byte_array_unref(out);
        hw_error_set(errp, "PNG encoding of a %dx%d picture failed", w, h);
        return NULL;
    }
    return g_byte_array_free_to_bytes(out);
}

void picture_halve(const uint8_t *src, uint32_t pitch, int w, int h,
                   uint32_t *dst)
{
    g_assert(w % 2 == 0 && h % 2 == 0);
    for (int y = 0; y < h / 2; y++) {
        const uint8_t *r0 = src + (size_t)(2 * y) * pitch;
        const uint8_t *r1 = r0 + pitch;
        uint32_t *out = dst + (size_t)y * (w / 2);
        for (int x = 0; x < w / 2; x++) {
            uint32_t p[4];
            memcpy(&p[0], r0 + 8 * x, 4);
            memcpy(&p[1], r0 + 8 * x + 4, 4);
            memcpy(&p[2], r1 + 8 * x, 4);
            memcpy(&p[3], r1 + 8 * x + 4, 4);
            uint32_t v = 0;
            for (int c = 0; c < 24; c += 8) {
                uint32_t sum = 2;       /* rounds to nearest */
                for (int i = 0; i < 4; i++) {
                    sum += (p[i] >> c) & 0xff;
                }
                v |= (sum / 4) << c;
            }
            out[x] = v;
        }
    }
}
