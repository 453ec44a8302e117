/*
 * osd.c - the on-screen messages' model (ui/osd.h): a short queue of
 * timed lines and one progress value behind a mutex.  Posting never
 * waits for drawing: the render thread copies a snapshot under the lock
 * and rasterizes outside it.  Without a renderer the lines go to stderr
 * at once, through the same reporters the rest of the program uses.
 */
#include "ui/osd.h"
#include "hw/error.h"
#include "ui/loop.h"
#include <stdarg.h>
#include <string.h>

typedef struct OsdMessage {
    uint64_t id;
    char *text;
    UiOsdKind kind;
    int64_t posted_us;
} OsdMessage;

struct UiOsd {
    GMutex lock;
    int64_t show_us;            /* fully visible this long */
    bool drawn;
    uint64_t next_id;
    OsdMessage msgs[UI_OSD_MAX_LINES];  /* oldest first */
    int n_msgs;
    uint64_t progress_done, progress_total;
};

UiOsd *ui_osd_new(int seconds)
{
    UiOsd *osd = g_new0(UiOsd, 1);
    g_mutex_init(&osd->lock);
    osd->show_us = (int64_t)MAX(seconds, 1) * G_USEC_PER_SEC;
    osd->next_id = 1;
    return osd;
}

void ui_osd_free(UiOsd *osd)
{
    if (!osd) {
        return;
    }
    for (int i = 0; i < osd->n_msgs; i++) {
        g_free(osd->msgs[i].text);
    }
    g_mutex_clear(&osd->lock);
    g_free(osd);
}

void ui_osd_set_drawn(UiOsd *osd, bool drawn)
{
    g_mutex_lock(&osd->lock);
    osd->drawn = drawn;
    g_mutex_unlock(&osd->lock);
}

static void osd_to_stderr(UiOsdKind kind, const char *text)
{
    switch (kind) {
    case UI_OSD_ERROR:
        ui_error("%s", text);
        break;
    case UI_OSD_WARNING:
        ui_warn("%s", text);
        break;
    default:
        ui_info("%s", text);
        break;
    }
}

/* Drops the oldest message; lock held. */
static void osd_drop_oldest(UiOsd *osd)
{
    g_free(osd->msgs[0].text);
    memmove(&osd->msgs[0], &osd->msgs[1],
            (osd->n_msgs - 1) * sizeof(osd->msgs[0]));
    osd->n_msgs--;
}

void ui_osd_post(UiOsd *osd, UiOsdKind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    g_mutex_lock(&osd->lock);
    if (!osd->drawn) {
        g_mutex_unlock(&osd->lock);
        osd_to_stderr(kind, text);
        return;
    }
    if (osd->n_msgs == UI_OSD_MAX_LINES) {
        osd_drop_oldest(osd);
    }
    osd->msgs[osd->n_msgs++] = (OsdMessage){
        .id = osd->next_id++,
        .text = g_steal_pointer(&text),
        .kind = kind,
        .posted_us = g_get_monotonic_time(),
    };
    g_mutex_unlock(&osd->lock);
}

void ui_osd_set_progress(UiOsd *osd, uint64_t done, uint64_t total)
{
    g_mutex_lock(&osd->lock);
    osd->progress_done = MIN(done, total);
    osd->progress_total = total;
    g_mutex_unlock(&osd->lock);
}

/* 1 while shown, then linearly down to 0 over the fade. */
static float osd_alpha(const UiOsd *osd, const OsdMessage *msg,
                       int64_t now_us)
{
    int64_t age = now_us - msg->posted_us;
    if (age <= osd->show_us) {
        return 1.0f;
    }
    float a = 1.0f - (float)(age - osd->show_us) / UI_OSD_FADE_US;
    return a > 0 ? a : 0;
}

bool ui_osd_snapshot(UiOsd *osd, int64_t now_us, UiOsdView *view)
{
    memset(view, 0, sizeof(*view));
    g_mutex_lock(&osd->lock);
    while (osd->n_msgs && osd_alpha(osd, &osd->msgs[0], now_us) <= 0) {
        osd_drop_oldest(osd);
    }
    for (int i = 0; i < osd->n_msgs; i++) {
        const OsdMessage *msg = &osd->msgs[i];
        view->lines[view->n_lines++] = (UiOsdLine){
            .id = msg->id,
            .text = g_strdup(msg->text),
            .kind = msg->kind,
            .alpha = osd_alpha(osd, msg, now_us),
        };
    }
    if (osd->progress_total) {
        view->progress_shown = true;
        view->progress = (float)osd->progress_done / osd->progress_total;
    }
    g_mutex_unlock(&osd->lock);
    return view->n_lines || view->progress_shown;
}

void ui_osd_view_clear(UiOsdView *view)
{
    for (int i = 0; i < view->n_lines; i++) {
        g_free(view->lines[i].text);
    }
    memset(view, 0, sizeof(*view));
}
