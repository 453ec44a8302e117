/*
 * aio-uring.c - the process's io_uring, driven by the loop's GMainContext
 * (aio_context()).
 *
 * Requests live on the stack of the coroutine that waits for them.  An
 * SQE is only filled in when queued; the source's prepare callback
 * submits everything queued during the loop iteration with one
 * io_uring_submit (or earlier, when the submission queue is full).  The
 * kernel signals the registered eventfd for each completion; dispatch
 * reaps the CQEs and resumes their coroutines.
 */
#include "util/aio-uring.h"
#include <errno.h>
#include <stdlib.h>

#ifdef CONFIG_IO_URING
#include "util/main-loop.h"
#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define URING_ENTRIES 128

typedef struct UringReq {
    Coroutine *co;
    int res;
} UringReq;

typedef struct UringSource {
    GSource source;
    struct io_uring ring;
    int efd;
    gpointer tag;
    unsigned queued;        /* SQEs prepared but not yet submitted */
    GThread *owner;
} UringSource;

static UringSource *uring;
static int uring_state;     /* 0 untried, 1 ready, -1 unavailable */

static void uring_flush(UringSource *s)
{
    while (s->queued) {
        int ret = io_uring_submit(&s->ring);
        if (ret >= 0) {
            s->queued -= MIN((unsigned)ret, s->queued);
            if (ret == 0) {
                s->queued = 0;
            }
        } else if (ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            g_error("io_uring: submit failed: %s", g_strerror(-ret));
        }
    }
}

static gboolean uring_prepare(GSource *source, gint *timeout)
{
    UringSource *s = (UringSource *)source;
    *timeout = -1;
    uring_flush(s);
    return io_uring_cq_ready(&s->ring) > 0;
}

static gboolean uring_check(GSource *source)
{
    UringSource *s = (UringSource *)source;
    return io_uring_cq_ready(&s->ring) > 0 ||
           (g_source_query_unix_fd(source, s->tag) & G_IO_IN);
}

static gboolean uring_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    UringSource *s = (UringSource *)source;
    uint64_t v;
    /* Clear first: completions posted after this signal it again. */
    while (read(s->efd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
    struct io_uring_cqe *cqe;
    /* One at a time: a resumed coroutine may poll the loop recursively. */
    while (io_uring_peek_cqe(&s->ring, &cqe) == 0) {
        UringReq *r = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&s->ring, cqe);
        if (r) {
            r->res = res;
            co_enter(r->co);
        }
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs uring_funcs = {
    .prepare = uring_prepare,
    .check = uring_check,
    .dispatch = uring_dispatch,
};

static bool uring_init(void)
{
    if (getenv("XBLK_NO_IO_URING")) {
        return false;
    }
    UringSource *s = (UringSource *)g_source_new(&uring_funcs,
                                                 sizeof(UringSource));
    if (io_uring_queue_init(URING_ENTRIES, &s->ring, 0) < 0) {
        g_source_unref(&s->source);
        return false;
    }
    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->efd < 0 || io_uring_register_eventfd(&s->ring, s->efd) < 0) {
        if (s->efd >= 0) {
            close(s->efd);
        }
        io_uring_queue_exit(&s->ring);
        g_source_unref(&s->source);
        return false;
    }
    s->tag = g_source_add_unix_fd(&s->source, s->efd, G_IO_IN);
    s->owner = g_thread_self();
    g_source_set_priority(&s->source, G_PRIORITY_HIGH);
    g_source_set_can_recurse(&s->source, TRUE);
    g_source_attach(&s->source, aio_context());
    uring = s;
    return true;
}

bool aio_uring_available(void)
{
    if (uring_state == 0) {
        uring_state = uring_init() ? 1 : -1;
    }
    return uring_state > 0 && uring->owner == g_thread_self();
}

static struct io_uring_sqe *uring_get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&uring->ring);
    while (!sqe) {
        uring_flush(uring);
        sqe = io_uring_get_sqe(&uring->ring);
    }
    return sqe;
}

static int coroutine_fn uring_wait(struct io_uring_sqe *sqe)
{
    UringReq r = { co_self(), 0 };
    io_uring_sqe_set_data(sqe, &r);
    uring->queued++;
    co_yield();
    return r.res;
}

int coroutine_fn aio_uring_rw(int fd, bool write, const struct iovec *iov,
                              int niov, int64_t offset)
{
    struct io_uring_sqe *sqe = uring_get_sqe();
    if (write) {
        io_uring_prep_writev(sqe, fd, iov, niov, offset);
    } else {
        io_uring_prep_readv(sqe, fd, iov, niov, offset);
    }
    return uring_wait(sqe);
}

int coroutine_fn aio_uring_fdatasync(int fd)
{
    struct io_uring_sqe *sqe = uring_get_sqe();
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    return uring_wait(sqe);
}

int coroutine_fn aio_uring_fallocate(int fd, int mode, int64_t offset,
                                     int64_t len)
{
    struct io_uring_sqe *sqe = uring_get_sqe();
    io_uring_prep_fallocate(sqe, fd, mode, offset, len);
    return uring_wait(sqe);
}

#else /* !CONFIG_IO_URING */

bool aio_uring_available(void)
{
    return false;
}

int coroutine_fn aio_uring_rw(int fd, bool write, const struct iovec *iov,
                              int niov, int64_t offset)
{
    return -ENOSYS;
}

int coroutine_fn aio_uring_fdatasync(int fd)
{
    return -ENOSYS;
}

int coroutine_fn aio_uring_fallocate(int fd, int mode, int64_t offset,
                                     int64_t len)
{
    return -ENOSYS;
}

#endif
