/*
 * render.c - presentation: the render thread and the frame hook.
 *
 * Owns the GL context (current on the render thread only, from init to
 * exit), the game texture, the OSD's text textures and a triple buffer of
 * GPU_WIDTH x GPU_HEIGHT XRGB8888 frames.
 *
 * Invariants:
 *  - The vCPU thread never waits for the UI: the frame hook reads the
 *    scanout into the buffer it owns, swaps it with the shared middle one
 *    (an atomic exchange) and posts a semaphore - no lock, no syscall
 *    that can block.  The newest complete frame wins; older ones that
 *    were never drawn are simply overwritten.
 *  - Only the render thread makes GL calls.  The main loop tells it the
 *    drawable size through atomics.
 *  - It draws when a frame came, the size changed, or the OSD is visible
 *    (messages fade); otherwise it sleeps, so a paused machine costs
 *    nothing.  It presents at most at the display's refresh rate, even
 *    where the swap does not wait for vsync (Xvfb, vsync off): a machine
 *    running unpaced makes thousands of frames a second, and drawing
 *    each would take the host's cores from the vCPU.
 *  - The save-state menu (ui/menu.h) is drawn from a snapshot over the
 *    dimmed game; the frame hook is the same whether it is open or not.
 *    Each thumbnail PNG is decoded once (libpng) into a texture kept by
 *    the state's tag; menu text is rasterized once per distinct string
 *    and dropped when a picture no longer shows it.
 */
#include "ui/sdl/sdl-ui.h"
#include "hw/error.h"
#include "ui/loop.h"
#include <SDL.h>
#include <SDL_ttf.h>
#include <epoxy/gl.h>
#include <errno.h>
#include <png.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define FRAME_PIXELS    (GPU_WIDTH * GPU_HEIGHT)
#define FRESH_BIT       4       /* in mid: the middle buffer is new */
#define IDLE_WAIT_MS    100     /* nothing moves: check for work now and then */
#define ANIM_WAIT_MS    16      /* the OSD fades: redraw at ~60 Hz */

typedef struct TextTex {
    uint64_t id;                /* the UiOsdLine it shows; 0: unused */
    GLuint tex;
    int w, h;
} TextTex;

struct SdlRender {
    SDL_Window *win;
    SDL_GLContext ctx;
    XboxMachine *m;
    UiOsd *osd;
    TTF_Font *font;
    bool vsync, integer_scale;
    int64_t min_present_us;     /* 1 / refresh rate */
    int64_t last_present_us;

    GThread *thread;
    sem_t wake;
    atomic_bool stop;
    atomic_int width, height;   /* drawable, from the main loop */
    atomic_bool redraw;

    /* Triple buffer: the vCPU owns buf[write_idx], the render thread
     * buf[read_idx], mid is the third's index (| FRESH_BIT when new). */
    uint32_t *buf[3];
    int write_idx, read_idx;
    atomic_int mid;

    /* Startup handshake: the thread reports whether GL came up. */
    GMutex init_lock;
    GCond init_cond;
    bool init_done;
    char *init_error;

    /* GL objects (render thread). */
    GLuint prog, game_tex;
    GLint loc_pos, loc_uv, loc_color, loc_mode;
    TextTex text[UI_OSD_MAX_LINES];
    int draw_w, draw_h;         /* the size drawn last */
    bool osd_was_visible;

    /* The menu: set from the main loop, snapshot here. */
    _Atomic(UiMenu *) menu;
    bool menu_was_open;
    GHashTable *menu_text;      /* string -> MenuText (render thread) */
    GHashTable *thumbs;         /* tag -> Thumb (render thread) */
    /* The rows' band, for the main loop's hit test. */
    atomic_int rows_x0, rows_x1, rows_y0, row_h, rows_n;
};

typedef struct MenuText {
    GLuint tex;
    int w, h;
    bool used;                  /* drawn in the current picture */
} MenuText;

typedef struct Thumb {
    GBytes *png;                /* what the texture was decoded from */
    GLuint tex;                 /* 0: the PNG did not decode */
    bool used;
} Thumb;

#define MAX_THUMBS      256     /* kept beyond the visible page */

static void menu_text_free(gpointer p);
static void thumb_free(gpointer p);

/* ---- the vCPU side ---- */

static void render_frame_hook(void *opaque, XboxMachine *m, uint64_t frame)
{
    SdlRender *r = opaque;
    if (!machine_read_screen(m, r->buf[r->write_idx], NULL)) {
        return;
    }
    r->write_idx = atomic_exchange(&r->mid, r->write_idx | FRESH_BIT) & 3;
    sem_post(&r->wake);
}

static void render_unhook(XboxMachine *m, void *opaque)
{
    machine_set_frame_hook(m, NULL, NULL);
}

/* ---- GL setup ---- */

static const char *vertex_src =
    "#version 110\n"
    "attribute vec2 pos;\n"
    "attribute vec2 uv;\n"
    "varying vec2 v_uv;\n"
    "void main() { v_uv = uv; gl_Position = vec4(pos, 0.0, 1.0); }\n";

/* mode 0: flat color; 1: the game (opaque); 2: text (alpha, tinted). */
static const char *fragment_src =
    "#version 110\n"
    "uniform sampler2D tex;\n"
    "uniform vec4 color;\n"
    "uniform float mode;\n"
    "varying vec2 v_uv;\n"
    "void main() {\n"
    "  vec4 t = texture2D(tex, v_uv);\n"
    "  if (mode < 0.5) gl_FragColor = color;\n"
    "  else if (mode < 1.5) gl_FragColor = vec4(t.rgb, 1.0);\n"
    "  else gl_FragColor = vec4(color.rgb * t.rgb, color.a * t.a);\n"
    "}\n";

static GLuint compile_shader(GLenum type, const char *src, GError **errp)
{
    GLuint sh = glCreateShader(type);
    GLint ok = 0;
    glShaderSource(sh, 1, &src, NULL);
    glCompileShader(sh);
    glGetShaderiv(sh, GL_COMPILE_STATUS, &ok);
    if (!ok) {
        char log[512] = "";
        glGetShaderInfoLog(sh, sizeof(log), NULL, log);
        hw_error_set(errp, "GL shader does not compile: %s", log);
        glDeleteShader(sh);
        return 0;
    }
    return sh;
}

static bool render_gl_init(SdlRender *r, GError **errp)
{
    GLuint vs = compile_shader(GL_VERTEX_SHADER, vertex_src, errp);
    GLuint fs = vs ? compile_shader(GL_FRAGMENT_SHADER, fragment_src, errp)
                   : 0;
    if (!fs) {
        glDeleteShader(vs);
        return false;
    }
    r->prog = glCreateProgram();
    glAttachShader(r->prog, vs);
    glAttachShader(r->prog, fs);
    glLinkProgram(r->prog);
    glDeleteShader(vs);
    glDeleteShader(fs);
    GLint ok = 0;
    glGetProgramiv(r->prog, GL_LINK_STATUS, &ok);
    if (!ok) {
        hw_error_set(errp, "GL program does not link");
        return false;
    }
    r->loc_pos = glGetAttribLocation(r->prog, "pos");
    r->loc_uv = glGetAttribLocation(r->prog, "uv");
    r->loc_color = glGetUniformLocation(r->prog, "color");
    r->loc_mode = glGetUniformLocation(r->prog, "mode");
    r->menu_text = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                         menu_text_free);
    r->thumbs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                      thumb_free);
    glUseProgram(r->prog);
    glUniform1i(glGetUniformLocation(r->prog, "tex"), 0);

    /* The game texture starts black (the buffers are zeroed). */
    glGenTextures(1, &r->game_tex);
    glBindTexture(GL_TEXTURE_2D, r->game_tex);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, GPU_WIDTH, GPU_HEIGHT, 0,
                 GL_BGRA, GL_UNSIGNED_BYTE, r->buf[r->read_idx]);
    glEnableVertexAttribArray(r->loc_pos);
    glEnableVertexAttribArray(r->loc_uv);
    glBlendFunc(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA);
    SDL_GL_SetSwapInterval(r->vsync ? 1 : 0);
    return true;
}

static void render_gl_fini(SdlRender *r)
{
    /* Their textures go with them. */
    g_clear_pointer(&r->menu_text, g_hash_table_destroy);
    g_clear_pointer(&r->thumbs, g_hash_table_destroy);
    for (int i = 0; i < UI_OSD_MAX_LINES; i++) {
        if (r->text[i].id) {
            glDeleteTextures(1, &r->text[i].tex);
        }
    }
    if (r->game_tex) {
        glDeleteTextures(1, &r->game_tex);
    }
    if (r->prog) {
        glDeleteProgram(r->prog);
    }
}

/* ---- drawing ---- */

/* A rectangle in drawable pixels (y down), with texture coordinates. */
static void draw_quad(SdlRender *r, float x, float y, float w, float h,
                      int mode, const float color[4], float u1)
{
    float x0 = 2 * x / r->draw_w - 1, x1 = 2 * (x + w) / r->draw_w - 1;
    float y0 = 1 - 2 * y / r->draw_h, y1 = 1 - 2 * (y + h) / r->draw_h;
    const GLfloat pos[] = { x0, y0, x1, y0, x0, y1, x1, y1 };
    const GLfloat uv[] = { 0, 0, u1, 0, 0, 1, u1, 1 };
    static const float white[4] = { 1, 1, 1, 1 };
    glUniform1f(r->loc_mode, mode);
    glUniform4fv(r->loc_color, 1, color ? color : white);
    glVertexAttribPointer(r->loc_pos, 2, GL_FLOAT, GL_FALSE, 0, pos);
    glVertexAttribPointer(r->loc_uv, 2, GL_FLOAT, GL_FALSE, 0, uv);
    glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
}

static void draw_rect(SdlRender *r, float x, float y, float w, float h,
                      int mode, const float color[4])
{
    draw_quad(r, x, y, w, h, mode, color, 1);
}

/* The game's 4:3 picture: letterboxed or pillarboxed, or the largest
 * whole multiple that fits when integer scaling is on (a window smaller
 * than one multiple falls back to fitting). */
static void game_rect(const SdlRender *r, float out[4])
{
    float w = r->draw_w, h = r->draw_h;
    int k = MIN(r->draw_w / GPU_WIDTH, r->draw_h / GPU_HEIGHT);
    if (r->integer_scale && k >= 1) {
        w = (float)k * GPU_WIDTH;
        h = (float)k * GPU_HEIGHT;
    } else if (w * GPU_HEIGHT > h * GPU_WIDTH) {
        w = h * GPU_WIDTH / GPU_HEIGHT;
    } else {
        h = w * GPU_HEIGHT / GPU_WIDTH;
    }
    out[0] = (r->draw_w - w) / 2;
    out[1] = (r->draw_h - h) / 2;
    out[2] = w;
    out[3] = h;
}

static void draw_game(SdlRender *r, bool fresh)
{
    float g[4];
    glBindTexture(GL_TEXTURE_2D, r->game_tex);
    if (fresh) {
        glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, GPU_WIDTH, GPU_HEIGHT,
                        GL_BGRA, GL_UNSIGNED_BYTE, r->buf[r->read_idx]);
    }
    game_rect(r, g);
    draw_rect(r, g[0], g[1], g[2], g[3], 1, NULL);
}

/* A texture of 32-bit pixels (format: GL_BGRA or GL_RGBA). */
static GLuint pixels_texture(const void *pixels, int w, int h, int pitch,
                             GLenum format)
{
    GLuint tex;
    glGenTextures(1, &tex);
    glBindTexture(GL_TEXTURE_2D, tex);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    glPixelStorei(GL_UNPACK_ROW_LENGTH, pitch / 4);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, w, h, 0, format,
                 GL_UNSIGNED_BYTE, pixels);
    glPixelStorei(GL_UNPACK_ROW_LENGTH, 0);
    return tex;
}

/* An ARGB8888 surface from SDL2_ttf as a texture. */
static GLuint surface_texture(SDL_Surface *c)
{
    return pixels_texture(c->pixels, c->w, c->h, c->pitch, GL_BGRA);
}

/* The text texture of line, rasterized once per message. */
static TextTex *text_texture(SdlRender *r, const UiOsdLine *line)
{
    TextTex *free_slot = NULL;
    for (int i = 0; i < UI_OSD_MAX_LINES; i++) {
        if (r->text[i].id == line->id) {
            return &r->text[i];
        }
        if (!r->text[i].id && !free_slot) {
            free_slot = &r->text[i];
        }
    }
    SDL_Color white = { 255, 255, 255, 255 };
    SDL_Surface *s = free_slot && r->font
        ? TTF_RenderUTF8_Blended(r->font, line->text, white) : NULL;
    SDL_Surface *c = s ? SDL_ConvertSurfaceFormat(s, SDL_PIXELFORMAT_ARGB8888,
                                                  0) : NULL;
    SDL_FreeSurface(s);
    if (!c) {
        return NULL;
    }
    free_slot->tex = surface_texture(c);
    free_slot->id = line->id;
    free_slot->w = c->w;
    free_slot->h = c->h;
    SDL_FreeSurface(c);
    return free_slot;
}

/* Drops the textures of lines no longer visible. */
static void text_gc(SdlRender *r, const UiOsdView *v)
{
    for (int i = 0; i < UI_OSD_MAX_LINES; i++) {
        bool used = false;
        for (int l = 0; l < v->n_lines; l++) {
            used |= v->lines[l].id == r->text[i].id;
        }
        if (r->text[i].id && !used) {
            glDeleteTextures(1, &r->text[i].tex);
            r->text[i].id = 0;
        }
    }
}

static void kind_color(UiOsdKind kind, float alpha, float out[4])
{
    static const float colors[][3] = {
        [UI_OSD_INFO] = { 1.0f, 1.0f, 1.0f },
        [UI_OSD_WARNING] = { 1.0f, 0.85f, 0.3f },
        [UI_OSD_ERROR] = { 1.0f, 0.3f, 0.3f },
    };
    memcpy(out, colors[kind], sizeof(colors[kind]));
    out[3] = alpha;
}

/* The progress bar at the bottom, the lines above it at the left, the
 * newest lowest: the game's own score sits at the top.  (left, bottom):
 * where the stack starts (the window's corner, or inside the menu's
 * panel above its footer, in the room the menu leaves for messages). */
static void draw_osd(SdlRender *r, const UiOsdView *v, float left,
                     float bottom)
{
    const float pad = 6, margin = 12, bar_h = 10;
    float y = bottom - margin;
    glEnable(GL_BLEND);
    if (v->progress_shown) {
        float w = r->draw_w * 0.4f, x = (r->draw_w - w) / 2;
        const float back[4] = { 0, 0, 0, 0.6f }, bar[4] = { 0.3f, 0.7f, 1, 1 };
        y -= bar_h;
        draw_rect(r, x - 2, y - 2, w + 4, bar_h + 4, 0, back);
        draw_rect(r, x, y, w * v->progress, bar_h, 0, bar);
        y -= margin;
    }
    for (int l = v->n_lines - 1; l >= 0; l--) {
        TextTex *t = text_texture(r, &v->lines[l]);
        if (!t) {
            continue;
        }
        float box[4] = { 0, 0, 0, 0.6f * v->lines[l].alpha }, fg[4];
        y -= t->h + 2 * pad;
        draw_rect(r, left, y, t->w + 2 * pad, t->h + 2 * pad, 0, box);
        kind_color(v->lines[l].kind, v->lines[l].alpha, fg);
        glBindTexture(GL_TEXTURE_2D, t->tex);
        draw_rect(r, left + pad, y + pad, t->w, t->h, 2, fg);
        y -= 4;
    }
    glDisable(GL_BLEND);
    text_gc(r, v);
}

/* ---- the save-state menu ---- */

/* Layout in drawable pixels. */
#define M_MARGIN    24
#define M_PAD       12
#define M_LINE      28          /* one line of the 18 pt font */
#define M_THUMB_W   96
#define M_THUMB_H   72
#define M_ROW_H     (M_THUMB_H + 8)
#define M_MSG_H     80          /* above the footer: two messages */

static const float c_white[4] = { 1, 1, 1, 1 };
static const float c_grey[4] = { 0.7f, 0.7f, 0.75f, 1 };
static const float c_yellow[4] = { 1, 0.85f, 0.3f, 1 };
static const float c_panel[4] = { 0.07f, 0.08f, 0.1f, 0.92f };
static const float c_select[4] = { 0.2f, 0.4f, 0.85f, 0.75f };
static const float c_field[4] = { 0, 0, 0, 0.8f };

static void menu_text_free(gpointer p)
{
    MenuText *t = p;
    glDeleteTextures(1, &t->tex);
    g_free(t);
}

static void thumb_free(gpointer p)
{
    Thumb *t = p;
    if (t->tex) {
        glDeleteTextures(1, &t->tex);
    }
    g_bytes_unref(t->png);
    g_free(t);
}

/* The white texture of text, rasterized once while it stays drawn. */
static MenuText *menu_text(SdlRender *r, const char *text)
{
    MenuText *t = g_hash_table_lookup(r->menu_text, text);
    if (t || !r->font || !*text) {
        if (t) {
            t->used = true;
        }
        return t;
    }
    SDL_Color white = { 255, 255, 255, 255 };
    SDL_Surface *s = TTF_RenderUTF8_Blended(r->font, text, white);
    SDL_Surface *c = s ? SDL_ConvertSurfaceFormat(s, SDL_PIXELFORMAT_ARGB8888,
                                                  0) : NULL;
    SDL_FreeSurface(s);
    if (!c) {
        return NULL;
    }
    t = g_new0(MenuText, 1);
    t->tex = surface_texture(c);
    t->w = c->w;
    t->h = c->h;
    t->used = true;
    SDL_FreeSurface(c);
    g_hash_table_insert(r->menu_text, g_strdup(text), t);
    return t;
}

/* Text at (x, y), cut at max_w pixels; its width drawn. */
static float draw_text(SdlRender *r, const char *text, float x, float y,
                       float max_w, const float color[4])
{
    MenuText *t = text ? menu_text(r, text) : NULL;
    if (!t || max_w <= 0) {
        return 0;
    }
    float w = MIN((float)t->w, max_w);
    glBindTexture(GL_TEXTURE_2D, t->tex);
    draw_quad(r, x, y, w, t->h, 2, color, w / t->w);
    return w;
}

/* RGBA pixels of a PNG (libpng's simplified API), or NULL. */
static guint8 *decode_png(GBytes *png, int *w, int *h)
{
    gsize n;
    const void *data = g_bytes_get_data(png, &n);
    png_image img = { .version = PNG_IMAGE_VERSION };
    if (!png_image_begin_read_from_memory(&img, data, n)) {
        return NULL;
    }
    /* A thumbnail is 320x240; anything huge is not one. */
    if (img.width == 0 || img.height == 0 || img.width > 2048 ||
        img.height > 2048) {
        png_image_free(&img);
        return NULL;
    }
    img.format = PNG_FORMAT_RGBA;
    guint8 *px = g_malloc(PNG_IMAGE_SIZE(img));
    if (!png_image_finish_read(&img, NULL, px, 0, NULL)) {
        g_free(px);
        return NULL;
    }
    *w = img.width;
    *h = img.height;
    return px;
}

/* The row's thumbnail texture (0: none), decoded once per PNG. */
static GLuint thumb_texture(SdlRender *r, const UiMenuRow *row)
{
    if (!row->thumbnail_png) {
        return 0;
    }
    Thumb *t = g_hash_table_lookup(r->thumbs, row->tag);
    if (t && (t->png == row->thumbnail_png ||
              g_bytes_equal(t->png, row->thumbnail_png))) {
        t->used = true;
        return t->tex;
    }
    int w = 0, h = 0;
    g_autofree guint8 *px = decode_png(row->thumbnail_png, &w, &h);
    t = g_new0(Thumb, 1);
    t->png = g_bytes_ref(row->thumbnail_png);
    t->tex = px ? pixels_texture(px, w, h, w * 4, GL_RGBA) : 0;
    t->used = true;
    g_hash_table_replace(r->thumbs, g_strdup(row->tag), t);
    return t->tex;
}

static gboolean text_unused(gpointer key, gpointer value, gpointer data)
{
    MenuText *t = value;
    bool drop = !t->used;
    t->used = false;
    return drop;
}

static gboolean thumb_unused(gpointer key, gpointer value, gpointer data)
{
    Thumb *t = value;
    bool drop = !t->used && g_hash_table_size(data) > MAX_THUMBS;
    t->used = false;
    return drop;
}

/* After a picture: text not drawn in it goes; thumbnails only past
 * MAX_THUMBS (scrolling back must not decode again). */
static void menu_gc(SdlRender *r)
{
    g_hash_table_foreach_remove(r->menu_text, text_unused, NULL);
    g_hash_table_foreach_remove(r->thumbs, thumb_unused, r->thumbs);
}

typedef struct MenuBox {
    float x, y, w, h;           /* the panel */
    float rows_y;               /* first row */
    int page_rows;
} MenuBox;

static void menu_layout(SdlRender *r, int w, int h, MenuBox *b)
{
    b->x = M_MARGIN;
    b->y = M_MARGIN;
    b->w = MAX(w - 2 * M_MARGIN, 1);
    b->h = MAX(h - 2 * M_MARGIN, 1);
    b->rows_y = b->y + M_PAD + 2 * M_LINE + M_PAD;
    float rows_h = b->y + b->h - M_PAD - M_LINE - M_MSG_H - b->rows_y;
    b->page_rows = MAX((int)(rows_h / M_ROW_H), 1);
    atomic_store(&r->rows_x0, (int)b->x);
    atomic_store(&r->rows_x1, (int)(b->x + b->w));
    atomic_store(&r->rows_y0, (int)b->rows_y);
    atomic_store(&r->row_h, M_ROW_H);
}

/* Title and filter on the first line, the search on the second. */
static void draw_menu_header(SdlRender *r, const UiMenuView *v,
                             const MenuBox *b)
{
    float x = b->x + M_PAD, y = b->y + M_PAD, right = b->x + b->w - M_PAD;
    g_autofree char *filter = g_strdup_printf("%s \u00b7 %d of %d",
                                              v->filter, v->n_matches,
                                              v->n_total);
    MenuText *ft = menu_text(r, filter);
    float fw = ft ? ft->w : 0;
    draw_text(r, v->title, x, y, right - x - fw - M_PAD, c_white);
    draw_text(r, filter, right - fw, y, fw, c_grey);
    g_autofree char *search = g_strdup_printf("Search: %s%s", v->search,
                                              v->mode == UI_MENU_BROWSE
                                              ? "\u2502" : "");
    draw_text(r, search, x, y + M_LINE, right - x, c_yellow);
}

/* Name (or the rename field) and title | date and frame | size, key. */
static void draw_menu_row(SdlRender *r, const UiMenuView *v, int i,
                          const MenuBox *b)
{
    const UiMenuRow *row = &v->rows[i];
    float y = b->rows_y + i * M_ROW_H, x = b->x + M_PAD;
    float col2 = b->x + b->w * 0.55f, col3 = b->x + b->w * 0.8f;
    bool sel = i == v->selected;
    if (sel) {
        draw_rect(r, b->x + 4, y, b->w - 8, M_ROW_H - 2, 0, c_select);
    }
    GLuint tex = thumb_texture(r, row);
    if (tex) {
        glBindTexture(GL_TEXTURE_2D, tex);
        draw_rect(r, x, y + 3, M_THUMB_W, M_THUMB_H, 1, NULL);
    } else {
        draw_rect(r, x, y + 3, M_THUMB_W, M_THUMB_H, 0, c_field);
    }
    float tx = x + M_THUMB_W + M_PAD, ty = y + 8;
    if (sel && v->mode == UI_MENU_RENAME) {
        g_autofree char *edit = g_strdup_printf("%s\u2502", v->edit);
        draw_rect(r, tx - 4, ty - 2, col2 - tx - M_PAD, M_LINE, 0, c_field);
        draw_text(r, edit, tx, ty, col2 - tx - 2 * M_PAD, c_yellow);
    } else {
        draw_text(r, row->name, tx, ty, col2 - tx - M_PAD, c_white);
    }
    draw_text(r, row->title, tx, ty + M_LINE, col2 - tx - M_PAD, c_grey);
    draw_text(r, row->date, col2, ty, col3 - col2 - M_PAD, c_white);
    draw_text(r, row->frame, col2, ty + M_LINE, col3 - col2 - M_PAD, c_grey);
    float end = b->x + b->w - M_PAD;
    draw_text(r, row->size, col3, ty, end - col3, c_white);
    draw_text(r, row->key, col3, ty + M_LINE, end - col3, c_yellow);
}

/* A question in the middle, its choices under it as buttons (their
 * boxes go to the menu for the mouse). */
static void draw_menu_dialog(SdlRender *r, UiMenu *menu,
                             const UiMenuView *v, const MenuBox *b)
{
    int boxes[UI_MENU_MAX_CHOICES][4];
    MenuText *q = menu_text(r, v->question);
    float qw = q ? q->w : 200;
    float w = MIN(MAX(qw, 300) + 4 * M_PAD, b->w - 2 * M_PAD);
    float h = 2 * M_LINE + 5 * M_PAD, x = b->x + (b->w - w) / 2;
    float y = b->y + (b->h - h) / 2;
    const float frame[4] = { 0.9f, 0.75f, 0.2f, 1 };
    const float back[4] = { 0.12f, 0.12f, 0.15f, 1 };
    draw_rect(r, x - 2, y - 2, w + 4, h + 4, 0, frame);
    draw_rect(r, x, y, w, h, 0, back);
    draw_text(r, v->question, x + 2 * M_PAD, y + 2 * M_PAD,
              w - 4 * M_PAD, c_white);
    float bx = x + 2 * M_PAD, by = y + 3 * M_PAD + M_LINE;
    for (int i = 0; i < v->n_choices; i++) {
        MenuText *t = menu_text(r, v->choices[i]);
        float bw = (t ? t->w : 60) + 2 * M_PAD;
        draw_rect(r, bx, by, bw, M_LINE + 4, 0,
                  i == v->choice ? c_select : c_field);
        draw_text(r, v->choices[i], bx + M_PAD, by + 2, bw, c_white);
        boxes[i][0] = (int)bx;
        boxes[i][1] = (int)by;
        boxes[i][2] = (int)bw;
        boxes[i][3] = (int)(M_LINE + 4);
        bx += bw + M_PAD;
    }
    ui_menu_set_choice_boxes(menu, (const int (*)[4])boxes,
                             MIN(v->n_choices, UI_MENU_MAX_CHOICES));
}

/* A question of ui_menu_ask: the dialog alone over the dimmed game. */
static void draw_bare_dialog(SdlRender *r, UiMenu *menu,
                             const UiMenuView *v, const MenuBox *b)
{
    const float dim[4] = { 0, 0, 0, 0.4f };
    glEnable(GL_BLEND);
    draw_rect(r, 0, 0, r->draw_w, r->draw_h, 0, dim);
    draw_menu_dialog(r, menu, v, b);
    glDisable(GL_BLEND);
    atomic_store(&r->rows_n, 0);
    menu_gc(r);
}

static void draw_menu(SdlRender *r, UiMenu *menu, const UiMenuView *v,
                      const MenuBox *b)
{
    if (v->bare) {
        draw_bare_dialog(r, menu, v, b);
        return;
    }
    const float dim[4] = { 0, 0, 0, 0.6f };
    glEnable(GL_BLEND);
    draw_rect(r, 0, 0, r->draw_w, r->draw_h, 0, dim);
    draw_rect(r, b->x, b->y, b->w, b->h, 0, c_panel);
    draw_menu_header(r, v, b);
    for (int i = 0; i < v->n_rows; i++) {
        draw_menu_row(r, v, i, b);
    }
    if (!v->n_rows) {
        draw_text(r, v->n_total ? "No state matches the search"
                                : "No save states yet",
                  b->x + M_PAD, b->rows_y + M_PAD, b->w, c_grey);
    }
    draw_text(r, v->footer, b->x + M_PAD, b->y + b->h - M_PAD - M_LINE,
              b->w - 2 * M_PAD, c_grey);
    if (v->mode == UI_MENU_DIALOG) {
        draw_menu_dialog(r, menu, v, b);
    }
    glDisable(GL_BLEND);
    atomic_store(&r->rows_n, v->n_rows);
    menu_gc(r);
}

/* The menu's snapshot for a w x h picture; false when closed. */
static bool menu_snapshot(SdlRender *r, int w, int h, UiMenuView *v,
                          MenuBox *b)
{
    UiMenu *menu = atomic_load(&r->menu);
    memset(v, 0, sizeof(*v));
    if (!menu || !ui_menu_is_open(menu)) {
        atomic_store(&r->rows_n, 0);
        return false;
    }
    menu_layout(r, w, h, b);
    ui_menu_set_page_rows(menu, b->page_rows);
    return ui_menu_snapshot(menu, v);
}

void sdl_render_set_menu(SdlRender *r, UiMenu *menu)
{
    atomic_store(&r->menu, menu);
    sdl_render_redraw(r);
}

void sdl_render_redraw(SdlRender *r)
{
    atomic_store(&r->redraw, true);
    sem_post(&r->wake);
}

int sdl_render_menu_row_at(SdlRender *r, int x, int y)
{
    int y0 = atomic_load(&r->rows_y0), h = atomic_load(&r->row_h);
    int n = atomic_load(&r->rows_n);
    if (x < atomic_load(&r->rows_x0) || x >= atomic_load(&r->rows_x1) ||
        y < y0 || h <= 0) {
        return -1;
    }
    int row = (y - y0) / h;
    return row < n ? row : -1;
}

/* One picture: the newest frame if any, the OSD; false if nothing
 * needed drawing. */
static bool render_once(SdlRender *r)
{
    bool fresh = atomic_load(&r->mid) & FRESH_BIT;
    if (fresh) {
        r->read_idx = atomic_exchange(&r->mid, r->read_idx) & 3;
    }
    int w = atomic_load(&r->width), h = atomic_load(&r->height);
    bool resized = w != r->draw_w || h != r->draw_h;
    bool redraw = atomic_exchange(&r->redraw, false);
    UiOsdView view;
    UiMenuView mv;
    MenuBox box;
    bool osd = ui_osd_snapshot(r->osd, g_get_monotonic_time(), &view);
    bool menu = menu_snapshot(r, w, h, &mv, &box);
    bool draw = fresh || resized || redraw || osd || r->osd_was_visible ||
                menu != r->menu_was_open;
    if (draw && w > 0 && h > 0) {
        r->draw_w = w;
        r->draw_h = h;
        glViewport(0, 0, w, h);
        glClearColor(0, 0, 0, 1);
        glClear(GL_COLOR_BUFFER_BIT);
        draw_game(r, fresh);
        float osd_left = 12, osd_bottom = h;
        if (menu) {
            draw_menu(r, atomic_load(&r->menu), &mv, &box);
            if (!mv.bare) {
                osd_left = box.x + M_PAD / 2;
                osd_bottom = box.y + box.h - M_PAD - M_LINE;
            }
        }
        draw_osd(r, &view, osd_left, osd_bottom);
        SDL_GL_SwapWindow(r->win);
        r->last_present_us = g_get_monotonic_time();
    }
    r->osd_was_visible = osd;
    r->menu_was_open = menu;
    ui_osd_view_clear(&view);
    ui_menu_view_clear(&mv);
    return osd;
}

/* Sleeps until the hook posts, the main loop asks, or ms passed. */
static void render_wait(SdlRender *r, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    while (sem_timedwait(&r->wake, &ts) < 0 && errno == EINTR) {
    }
    while (sem_trywait(&r->wake) == 0) {
        /* one drawing serves every post so far */
    }
}

static void render_init_done(SdlRender *r, GError *err)
{
    g_mutex_lock(&r->init_lock);
    r->init_error = err ? g_strdup(err->message) : NULL;
    r->init_done = true;
    g_cond_signal(&r->init_cond);
    g_mutex_unlock(&r->init_lock);
}

static gpointer render_thread(gpointer opaque)
{
    SdlRender *r = opaque;
    GError *err = NULL;
    if (SDL_GL_MakeCurrent(r->win, r->ctx) < 0) {
        hw_error_set(&err, "cannot use the GL context: %s", SDL_GetError());
    } else {
        render_gl_init(r, &err);
    }
    bool ok = !err;
    render_init_done(r, err);
    g_clear_error(&err);
    while (ok && !atomic_load(&r->stop)) {
        bool animating = render_once(r);
        int64_t next = r->last_present_us + r->min_present_us;
        int64_t now = g_get_monotonic_time();
        if (now < next) {
            g_usleep(next - now);   /* frames meanwhile: the newest wins */
        }
        render_wait(r, animating ? ANIM_WAIT_MS : IDLE_WAIT_MS);
    }
    render_gl_fini(r);
    SDL_GL_MakeCurrent(r->win, NULL);
    return NULL;
}

static void render_free(SdlRender *r)
{
    for (int i = 0; i < 3; i++) {
        g_free(r->buf[i]);
    }
    sem_destroy(&r->wake);
    g_mutex_clear(&r->init_lock);
    g_cond_clear(&r->init_cond);
    g_free(r->init_error);
    g_free(r);
}

SdlRender *sdl_render_start(SDL_Window *win, void *gl_ctx, XboxMachine *m,
                            UiOsd *osd, TTF_Font *font, bool vsync,
                            bool integer_scale, GError **errp)
{
    SdlRender *r = g_new0(SdlRender, 1);
    int w, h;
    r->win = win;
    r->ctx = gl_ctx;
    r->m = m;
    r->osd = osd;
    r->font = font;
    r->vsync = vsync;
    r->integer_scale = integer_scale;
    for (int i = 0; i < 3; i++) {
        r->buf[i] = g_new0(uint32_t, FRAME_PIXELS);
    }
    r->write_idx = 0;
    atomic_init(&r->mid, 1);
    r->read_idx = 2;
    SDL_DisplayMode mode;
    int hz = SDL_GetWindowDisplayMode(win, &mode) == 0 &&
             mode.refresh_rate > 0 ? mode.refresh_rate : 60;
    r->min_present_us = G_USEC_PER_SEC / hz;
    SDL_GL_GetDrawableSize(win, &w, &h);
    atomic_init(&r->width, w);
    atomic_init(&r->height, h);
    sem_init(&r->wake, 0, 0);
    g_mutex_init(&r->init_lock);
    g_cond_init(&r->init_cond);

    r->thread = g_thread_new("xblk-render", render_thread, r);
    g_mutex_lock(&r->init_lock);
    while (!r->init_done) {
        g_cond_wait(&r->init_cond, &r->init_lock);
    }
    g_mutex_unlock(&r->init_lock);
    if (r->init_error) {
        hw_error_set(errp, "%s", r->init_error);
        g_thread_join(r->thread);
        render_free(r);
        return NULL;
    }
    machine_set_frame_hook(m, render_frame_hook, r);
    return r;
}

void sdl_render_resize(SdlRender *r, int width, int height)
{
    atomic_store(&r->width, width);
    atomic_store(&r->height, height);
    atomic_store(&r->redraw, true);
    sem_post(&r->wake);
}

void sdl_render_stop(SdlRender *r)
{
    if (!r) {
        return;
    }
    /* On the vCPU thread, between slices: no hook call is running. */
    machine_run_on_vcpu(r->m, render_unhook, NULL);
    atomic_store(&r->stop, true);
    sem_post(&r->wake);
    g_thread_join(r->thread);
    render_free(r);
}
