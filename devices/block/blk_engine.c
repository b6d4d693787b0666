/* The block I/O engine on io_uring: see devices/block/blk_engine.h. */
#include "devices/block/blk_engine.h"
#include "vmm/uring_sqe.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "vmm/log.h"

enum tag_type { TAG_CTL = 1, TAG_KICK, TAG_IO, TAG_CANCEL };

/* user_data: type (8 bits), queue (8), range + 1 or 0 (16), slot (32). */
static inline uint64_t tag(enum tag_type t, unsigned q, unsigned sub, unsigned slot)
{
    return (uint64_t)t << 56 | (uint64_t)(q & 0xFF) << 48 | (uint64_t)(sub & 0xFFFF) << 32 | slot;
}

#define ZERO_BUF_SIZE (1u << 20)
#define ZERO_IOV      32u       /* 32 MiB of zeroes per WRITEV */

struct blk_slot {
    struct blk_request r;       /* r.iov / r.ranges: the caller's */
    struct blk_range single;    /* r.ranges when nr_ranges was 0 */
    unsigned iov_first;
    int fd;
    uint64_t done;              /* READ/WRITE bytes so far */
    unsigned pending;           /* SQEs not yet completed */
    int err;                    /* the first error */
    bool retried_buffered;
    uint8_t *method;            /* per range: enum blk_zero_method */
    uint64_t *range_done;       /* per range: zeroes written (BLK_ZERO_WRITE) */
    int next_free;
    struct blk_slot *next_done; /* completed without an SQE: on the thread's list */
    struct blk_queue *q;
};

struct blk_thread;

struct blk_queue {
    unsigned index;
    struct blk_thread *t;
    struct blk_slot *slots;     /* depth */
    int free_head;
    unsigned inflight;          /* slots in use */
    bool kick_armed;
    uint64_t kick_buf;
};

enum blk_cmd { CMD_NONE, CMD_RUN, CMD_STOP, CMD_EXIT };

struct blk_thread {
    struct blk_engine *e;
    unsigned index;
    pthread_t thread;
    bool started, sync_init;
    struct io_uring ring;
    bool ring_ok;
    int ctl_fd;
    uint64_t ctl_buf;
    bool ctl_armed;
    unsigned nr_cancels;        /* cancellations awaited at exit */
    struct blk_queue **queues;
    unsigned nr_queues;
    unsigned busy;              /* slots in use on its queues */
    struct blk_slot *done_head, **done_tail;
    /* thread-local state */
    bool running, stopping, exiting;
    unsigned stop_seq;
    /* commands from the vCPU side */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum blk_cmd cmd;
    unsigned cmd_seq, done_seq;
};

struct blk_engine {
    struct blk_engine_config cfg;
    char name[32];
    const char *comp;
    struct blk_thread *threads;
    struct blk_queue *queues;
    uint8_t *zero_buf;          /* ZERO_BUF_SIZE of zeroes, page-aligned */
    struct iovec zero_iov[ZERO_IOV];
    bool running;               /* between start and stop (vCPU side) */
};

static const char *op_name(enum blk_op op)
{
    switch (op) {
    case BLK_OP_READ: return "read";
    case BLK_OP_WRITE: return "write";
    case BLK_OP_FLUSH: return "flush";
    case BLK_OP_DISCARD: return "discard";
    case BLK_OP_WRITE_ZEROES: return "write-zeroes";
    }
    return "?";
}

static void arm_ctl(struct blk_thread *t)
{
    struct io_uring_sqe *sqe = uring_get_sqe(&t->ring);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, t->ctl_fd, &t->ctl_buf, sizeof(t->ctl_buf), 0);
    io_uring_sqe_set_data64(sqe, tag(TAG_CTL, 0, 0, 0));
    t->ctl_armed = true;
}

void blk_engine_arm_kick(struct blk_engine *e, unsigned qi, int fd)
{
    struct blk_queue *q = &e->queues[qi];

    if (q->kick_armed || fd < 0)
        return;
    struct io_uring_sqe *sqe = uring_get_sqe(&q->t->ring);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, fd, &q->kick_buf, sizeof(q->kick_buf), 0);
    io_uring_sqe_set_data64(sqe, tag(TAG_KICK, qi, 0, 0));
    q->kick_armed = true;
}

bool blk_engine_running(const struct blk_engine *e, unsigned qi)
{
    return qi < e->cfg.nr_queues && e->queues[qi].t->running;
}

unsigned blk_engine_free_slots(const struct blk_engine *e, unsigned qi)
{
    return qi < e->cfg.nr_queues ? e->cfg.depth - e->queues[qi].inflight : 0;
}

static struct blk_slot *slot_alloc(struct blk_queue *q)
{
    if (q->free_head < 0)
        return NULL;
    struct blk_slot *s = &q->slots[q->free_head];
    q->free_head = s->next_free;
    q->inflight++;
    q->t->busy++;
    return s;
}

static void slot_free(struct blk_queue *q, struct blk_slot *s)
{
    s->next_free = q->free_head;
    q->free_head = (int)(s - q->slots);
    q->inflight--;
    q->t->busy--;
}

/* Done: the slot back, then the front end told (it may reuse the slot). */
static void slot_finish(struct blk_queue *q, struct blk_slot *s)
{
    struct blk_engine *e = q->t->e;
    uint64_t t = s->r.tag;
    int64_t res = s->err ? s->err : s->r.op == BLK_OP_READ || s->r.op == BLK_OP_WRITE
                                        ? (int64_t)s->done : 0;
    slot_free(q, s);
    e->cfg.ops->complete(e->cfg.opaque, q->index, t, res);
}

static void slot_fail(struct blk_slot *s, int err)
{
    if (!s->err)
        s->err = err;
}

static void submit_rw(struct blk_thread *t, struct blk_queue *q, struct blk_slot *s)
{
    struct io_uring_sqe *sqe = uring_get_sqe(&t->ring);
    uint64_t off = s->r.offset + s->done;

    if (!sqe) {
        slot_fail(s, -EAGAIN);
        return;
    }
    if (s->r.op == BLK_OP_READ)
        io_uring_prep_readv(sqe, s->fd, s->r.iov + s->iov_first, s->r.niov - s->iov_first, off);
    else
        io_uring_prep_writev(sqe, s->fd, s->r.iov + s->iov_first, s->r.niov - s->iov_first, off);
    io_uring_sqe_set_data64(sqe, tag(TAG_IO, q->index, 0, (unsigned)(s - q->slots)));
    s->pending++;
}

static void submit_range(struct blk_thread *t, struct blk_queue *q, struct blk_slot *s,
                         unsigned i)
{
    struct blk_engine *e = t->e;
    const struct blk_image *img = e->cfg.img;
    const struct blk_range *r = &s->r.ranges[i];
    struct io_uring_sqe *sqe;

    if (s->method[i] == BLK_ZERO_NONE)
        return;   /* a discard nothing here can do: done, successfully */
    sqe = uring_get_sqe(&t->ring);
    if (!sqe) {
        slot_fail(s, -EAGAIN);
        return;
    }
    switch (s->method[i]) {
    case BLK_ZERO_PUNCH:
        io_uring_prep_fallocate(sqe, img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                r->offset, r->len);
        break;
    case BLK_ZERO_RANGE:
        io_uring_prep_fallocate(sqe, img->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                                r->offset, r->len);
        break;
    default: {
        /* Zeroes from the shared buffer: up to ZERO_IOV MiB per WRITEV, the
         * rest resubmitted as it completes (through the page cache: the
         * buffer is aligned, the range may not be). */
        uint64_t off = r->offset + s->range_done[i], left = r->len - s->range_done[i];
        if (left >= ZERO_BUF_SIZE) {
            uint64_t n = left / ZERO_BUF_SIZE;
            io_uring_prep_writev(sqe, img->fd_buffered, e->zero_iov,
                                 n < ZERO_IOV ? (unsigned)n : ZERO_IOV, off);
        } else {
            io_uring_prep_write(sqe, img->fd_buffered, e->zero_buf, (unsigned)left, off);
        }
        break;
    }
    }
    io_uring_sqe_set_data64(sqe, tag(TAG_IO, q->index, i + 1, (unsigned)(s - q->slots)));
    s->pending++;
}

static bool fits(uint64_t size, uint64_t off, uint64_t len)
{
    return len && off <= size && len <= size - off;
}

int blk_engine_submit(struct blk_engine *e, unsigned qi, const struct blk_request *r)
{
    const struct blk_image *img = e->cfg.img;
    struct blk_queue *q;
    struct blk_slot *s;

    if (qi >= e->cfg.nr_queues)
        return -EINVAL;
    q = &e->queues[qi];
    switch (r->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE: {
        uint64_t total = 0;
        if (!r->iov || !r->niov || !fits(img->size, r->offset, r->len))
            return -EINVAL;
        for (unsigned i = 0; i < r->niov; i++)
            total += r->iov[i].iov_len;
        if (total != r->len)
            return -EINVAL;
        break;
    }
    case BLK_OP_FLUSH:
        break;
    case BLK_OP_DISCARD:
    case BLK_OP_WRITE_ZEROES:
        if (r->nr_ranges > e->cfg.max_ranges || (r->nr_ranges && !r->ranges))
            return -EINVAL;
        if (!r->nr_ranges && !fits(img->size, r->offset, r->len))
            return -EINVAL;
        for (unsigned i = 0; i < r->nr_ranges; i++)
            if (!fits(img->size, r->ranges[i].offset, r->ranges[i].len))
                return -EINVAL;
        break;
    default:
        return -EINVAL;
    }
    if (img->readonly && r->op != BLK_OP_READ && r->op != BLK_OP_FLUSH)
        return -EROFS;
    s = slot_alloc(q);
    if (!s)
        return -EBUSY;

    struct blk_thread *t = q->t;
    s->r = *r;
    s->pending = 0;
    s->done = 0;
    s->err = 0;
    s->iov_first = 0;
    s->retried_buffered = false;
    switch (r->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        s->fd = blk_image_fd_for(img, r->iov, r->niov, r->offset);
        submit_rw(t, q, s);
        break;
    case BLK_OP_FLUSH: {
        struct io_uring_sqe *sqe = uring_get_sqe(&t->ring);
        if (!sqe) {
            slot_fail(s, -EAGAIN);
            break;
        }
        io_uring_prep_fsync(sqe, img->fd, IORING_FSYNC_DATASYNC);
        io_uring_sqe_set_data64(sqe, tag(TAG_IO, qi, 0, (unsigned)(s - q->slots)));
        s->pending = 1;
        break;
    }
    default: {
        bool discard = r->op == BLK_OP_DISCARD;
        if (!r->nr_ranges) {
            s->single = (struct blk_range){ .offset = r->offset, .len = r->len };
            s->r.ranges = &s->single;
            s->r.nr_ranges = 1;
        }
        for (unsigned i = 0; i < s->r.nr_ranges; i++) {
            s->method[i] = (uint8_t)blk_image_zero_first(img, discard, !discard && r->unmap);
            s->range_done[i] = 0;
            submit_range(t, q, s, i);
        }
        break;
    }
    }
    if (s->pending == 0) {
        /* Nothing went to the kernel (a discard with nothing to do, or no
         * SQE): completed from the thread's loop, never from inside this
         * call, so a front end is not re-entered while it submits. */
        s->q = q;
        s->next_done = NULL;
        *t->done_tail = s;
        t->done_tail = &s->next_done;
    }
    return 0;
}

/* Skip bytes already transferred. */
static void iov_advance(struct blk_slot *s, size_t bytes)
{
    while (bytes && s->iov_first < s->r.niov) {
        struct iovec *v = &s->r.iov[s->iov_first];
        if (bytes < v->iov_len) {
            v->iov_base = (uint8_t *)v->iov_base + bytes;
            v->iov_len -= bytes;
            return;
        }
        bytes -= v->iov_len;
        s->iov_first++;
    }
}

static void io_done(struct blk_thread *t, struct blk_queue *q, unsigned slot, unsigned sub, int res)
{
    struct blk_engine *e = t->e;
    struct blk_image *img = e->cfg.img;
    struct blk_slot *s;

    if (slot >= e->cfg.depth)
        return;
    s = &q->slots[slot];
    s->pending--;

    if (sub) {
        /* DISCARD / WRITE_ZEROES range sub - 1 */
        unsigned i = sub - 1;
        if (i >= s->r.nr_ranges)
            goto check;
        bool discard = s->r.op == BLK_OP_DISCARD;
        enum blk_zero_method m = (enum blk_zero_method)s->method[i];
        const struct blk_range *r = &s->r.ranges[i];
        if (m != BLK_ZERO_WRITE && (res == -EOPNOTSUPP || res == -EINVAL)) {
            /* This filesystem (or device) has not got it: the next method. */
            s->method[i] = (uint8_t)blk_image_zero_refused(img, m, discard,
                                                           !discard && s->r.unmap);
            submit_range(t, q, s, i);
            goto check;
        }
        if (res < 0) {
            log_guest_once(e->comp, "%s: %s of sectors %" PRIu64 "+%" PRIu64 " failed: %s",
                           e->name, op_name(s->r.op), r->offset / BLK_SECTOR,
                           r->len / BLK_SECTOR, strerror(-res));
            slot_fail(s, res);
        } else if (m == BLK_ZERO_WRITE) {
            s->range_done[i] += (uint64_t)res;
            if (res == 0)
                slot_fail(s, -ENOSPC);   /* no progress: the disk is full */
            else if (s->range_done[i] < r->len)
                submit_range(t, q, s, i);
        }
        goto check;
    }

    if (s->r.op == BLK_OP_FLUSH) {
        if (res < 0) {
            log_err(e->comp, "%s: flush (fdatasync) of %s failed: %s; the guest is told", e->name,
                    img->path, strerror(-res));
            slot_fail(s, res);
        }
        goto check;
    }

    /* READ / WRITE */
    if (res == -EINVAL && s->fd != img->fd_buffered && !s->retried_buffered) {
        /* O_DIRECT wanted a larger alignment than we knew: buffered. */
        log_guest_once(e->comp, "%s: O_DIRECT refused a request (alignment); such requests "
                       "go through the page cache", e->name);
        s->retried_buffered = true;
        s->fd = img->fd_buffered;
        submit_rw(t, q, s);
        goto check;
    }
    if (res < 0) {
        log_guest_once(e->comp, "%s: %s at sector %" PRIu64 " (%" PRIu64 " bytes) of %s failed: "
                       "%s", e->name, op_name(s->r.op), s->r.offset / BLK_SECTOR, s->r.len,
                       img->path, strerror(-res));
        slot_fail(s, res);
        goto check;
    }
    s->done += (uint64_t)res;
    if (s->done < s->r.len) {
        if (res == 0) {
            /* End of file (the image shrank under us) or no progress. */
            log_guest_once(e->comp, "%s: short %s at sector %" PRIu64 " of %s", e->name,
                           op_name(s->r.op), s->r.offset / BLK_SECTOR, img->path);
            slot_fail(s, -EIO);
            goto check;
        }
        iov_advance(s, (size_t)res);
        submit_rw(t, q, s);
    }
check:
    if (s->pending == 0)
        slot_finish(q, s);
}

/* Completions that needed no SQE, in submission order; finishing one may
 * submit more. */
static void drain_done(struct blk_thread *t)
{
    while (t->done_head) {
        struct blk_slot *s = t->done_head;
        t->done_head = s->next_done;
        if (!t->done_head)
            t->done_tail = &t->done_head;
        slot_finish(s->q, s);
    }
}

static void round_end(struct blk_thread *t)
{
    struct blk_engine *e = t->e;
    for (unsigned i = 0; i < t->nr_queues; i++)
        e->cfg.ops->round_end(e->cfg.opaque, t->queues[i]->index);
}

static void stop_queues(struct blk_thread *t)
{
    struct blk_engine *e = t->e;
    for (unsigned i = 0; i < t->nr_queues; i++)
        e->cfg.ops->stop(e->cfg.opaque, t->queues[i]->index);
}

static void ack(struct blk_thread *t, unsigned seq)
{
    pthread_mutex_lock(&t->lock);
    t->done_seq = seq;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static void handle_ctl(struct blk_thread *t)
{
    struct blk_engine *e = t->e;

    pthread_mutex_lock(&t->lock);
    enum blk_cmd cmd = t->cmd;
    unsigned seq = t->cmd_seq;
    pthread_mutex_unlock(&t->lock);

    switch (cmd) {
    case CMD_RUN:
        t->running = true;
        t->stopping = false;
        for (unsigned i = 0; i < t->nr_queues; i++)
            e->cfg.ops->start(e->cfg.opaque, t->queues[i]->index);
        ack(t, seq);
        break;
    case CMD_STOP:
        t->running = false;
        t->stopping = true;
        t->stop_seq = seq;
        break;
    case CMD_EXIT:
        t->running = false;
        t->stopping = true;
        t->stop_seq = seq;
        t->exiting = true;
        break;
    default:
        break;
    }
    if (!t->exiting)
        arm_ctl(t);
}

static void handle_cqe(struct blk_thread *t, uint64_t data, int res)
{
    struct blk_engine *e = t->e;
    enum tag_type type = (enum tag_type)(data >> 56);
    unsigned qi = (unsigned)(data >> 48) & 0xFF;
    unsigned sub = (unsigned)(data >> 32) & 0xFFFF;
    unsigned slot = (unsigned)data;
    struct blk_queue *q = qi < e->cfg.nr_queues ? &e->queues[qi] : NULL;

    switch (type) {
    case TAG_CTL:
        t->ctl_armed = false;
        handle_ctl(t);
        break;
    case TAG_KICK:
        if (!q)
            break;
        q->kick_armed = false;
        if (res < 0 && res != -ECANCELED)
            log_guest_once(e->comp, "%s: reading queue %u's notification eventfd: %s", e->name,
                           qi, strerror(-res));
        if (t->running)
            e->cfg.ops->kick(e->cfg.opaque, qi);   /* the front end re-arms */
        break;
    case TAG_IO:
        if (q)
            io_done(t, q, slot, sub, res);
        break;
    case TAG_CANCEL:
        t->nr_cancels--;
        break;
    default:
        break;
    }
}

/* Cancel the reads still armed (exit), so no buffer is written after the
 * thread is gone. */
static void cancel_armed(struct blk_thread *t)
{
    struct io_uring_sqe *sqe;

    if (t->ctl_armed && (sqe = uring_get_sqe(&t->ring))) {
        io_uring_prep_cancel64(sqe, tag(TAG_CTL, 0, 0, 0), 0);
        io_uring_sqe_set_data64(sqe, tag(TAG_CANCEL, 0, 0, 0));
        t->nr_cancels++;
    }
    for (unsigned i = 0; i < t->nr_queues; i++) {
        struct blk_queue *q = t->queues[i];
        if (q->kick_armed && (sqe = uring_get_sqe(&t->ring))) {
            io_uring_prep_cancel64(sqe, tag(TAG_KICK, q->index, 0, 0), 0);
            io_uring_sqe_set_data64(sqe, tag(TAG_CANCEL, 0, 0, 0));
            t->nr_cancels++;
        }
    }
}

static void *blk_thread_main(void *arg)
{
    struct blk_thread *t = arg;
    struct blk_engine *e = t->e;
    bool cancelling = false;

    if (e->cfg.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(e->cfg.cpu, &set);
        int r = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        if (r)
            log_warn(e->comp, "%s: cannot pin I/O thread %u to CPU %d: %s", e->name, t->index,
                     e->cfg.cpu, strerror(r));
    }
    arm_ctl(t);
    for (;;) {
        int r = io_uring_submit_and_wait(&t->ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            log_err(e->comp, "%s: io_uring_submit_and_wait: %s", e->name, strerror(-r));
            usleep(1000);
        }
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&t->ring, head, cqe) {
            handle_cqe(t, cqe->user_data, cqe->res);
            n++;
        }
        io_uring_cq_advance(&t->ring, n);
        drain_done(t);
        round_end(t);
        if (t->stopping && t->busy == 0) {
            if (!t->exiting) {
                stop_queues(t);
                t->stopping = false;
                ack(t, t->stop_seq);
            } else if (!cancelling) {
                stop_queues(t);
                cancelling = true;
                cancel_armed(t);
            }
        }
        /* Exit once the cancelled reads have completed: their CQEs arrive
         * before (or with) the cancellation's own. */
        if (cancelling && t->nr_cancels == 0 && !t->ctl_armed && t->busy == 0) {
            bool kicks = false;
            for (unsigned i = 0; i < t->nr_queues; i++)
                kicks |= t->queues[i]->kick_armed;
            if (!kicks)
                break;
            /* A read the cancellation missed (not found yet): cancel again. */
            cancel_armed(t);
        }
    }
    ack(t, t->stop_seq);
    return NULL;
}

/* Send a command; wait for its acknowledgement when asked. */
static void send_cmd(struct blk_thread *t, enum blk_cmd cmd, bool wait)
{
    uint64_t one = 1;

    pthread_mutex_lock(&t->lock);
    t->cmd = cmd;
    unsigned seq = ++t->cmd_seq;
    pthread_mutex_unlock(&t->lock);
    if (write(t->ctl_fd, &one, sizeof(one)) != sizeof(one))
        log_err(t->e->comp, "%s: cannot signal I/O thread %u: %s", t->e->name, t->index,
                strerror(errno));
    if (!wait)
        return;
    pthread_mutex_lock(&t->lock);
    while ((int)(t->done_seq - seq) < 0)
        pthread_cond_wait(&t->cond, &t->lock);
    pthread_mutex_unlock(&t->lock);
}

int blk_engine_start(struct blk_engine *e)
{
    for (unsigned i = 0; i < e->cfg.nr_threads; i++)
        send_cmd(&e->threads[i], CMD_RUN, false);
    e->running = true;
    return 0;
}

void blk_engine_stop(struct blk_engine *e)
{
    if (!e->running)
        return;
    for (unsigned i = 0; i < e->cfg.nr_threads; i++)
        send_cmd(&e->threads[i], CMD_STOP, true);
    e->running = false;
}

static unsigned pow2_at_least(unsigned n)
{
    unsigned p = 1;
    while (p < n && p < 32768)
        p <<= 1;
    return p;
}

void blk_engine_destroy(struct blk_engine *e)
{
    if (!e)
        return;
    for (unsigned i = 0; e->threads && i < e->cfg.nr_threads; i++) {
        struct blk_thread *t = &e->threads[i];
        if (t->started) {
            send_cmd(t, CMD_EXIT, false);
            pthread_join(t->thread, NULL);
            t->started = false;
        }
        if (t->ring_ok)
            io_uring_queue_exit(&t->ring);
        if (t->ctl_fd >= 0)
            close(t->ctl_fd);
        if (t->sync_init) {
            pthread_mutex_destroy(&t->lock);
            pthread_cond_destroy(&t->cond);
        }
        free(t->queues);
    }
    for (unsigned i = 0; e->queues && i < e->cfg.nr_queues; i++) {
        struct blk_queue *q = &e->queues[i];
        if (q->slots) {
            for (unsigned s = 0; s < e->cfg.depth; s++) {
                free(q->slots[s].method);
                free(q->slots[s].range_done);
            }
            free(q->slots);
        }
    }
    free(e->threads);
    free(e->queues);
    free(e->zero_buf);
    free(e);
}

int blk_engine_create(const struct blk_engine_config *c, struct blk_engine **out)
{
    struct blk_engine *e;
    int err = -ENOMEM;

    if (!c->img || !c->ops || !c->ops->start || !c->ops->kick || !c->ops->complete ||
        !c->ops->round_end || !c->ops->stop || c->nr_queues == 0 ||
        c->nr_queues > BLK_ENGINE_MAX_QUEUES || c->nr_threads == 0 ||
        c->nr_threads > c->nr_queues || c->depth == 0 || c->depth > BLK_ENGINE_MAX_DEPTH ||
        c->max_ranges == 0 || c->max_ranges > BLK_ENGINE_MAX_RANGES)
        return -EINVAL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->cfg = *c;
    snprintf(e->name, sizeof(e->name), "%s", c->name ? c->name : "block");
    e->cfg.name = e->name;
    e->comp = c->img->comp ? c->img->comp : "block";
    e->threads = calloc(c->nr_threads, sizeof(*e->threads));
    e->queues = calloc(c->nr_queues, sizeof(*e->queues));
    if (!e->threads || !e->queues)
        goto fail;
    for (unsigned i = 0; i < c->nr_threads; i++) {
        struct blk_thread *t = &e->threads[i];
        t->e = e;
        t->index = i;
        t->ctl_fd = -1;
        t->done_tail = &t->done_head;
        pthread_mutex_init(&t->lock, NULL);
        pthread_cond_init(&t->cond, NULL);
        t->sync_init = true;
        t->queues = calloc((c->nr_queues + c->nr_threads - 1) / c->nr_threads, sizeof(*t->queues));
        if (!t->queues)
            goto fail;
    }
    if (posix_memalign((void **)&e->zero_buf, 4096, ZERO_BUF_SIZE))
        goto fail;
    memset(e->zero_buf, 0, ZERO_BUF_SIZE);
    for (unsigned i = 0; i < ZERO_IOV; i++)
        e->zero_iov[i] = (struct iovec){ .iov_base = e->zero_buf, .iov_len = ZERO_BUF_SIZE };

    for (unsigned i = 0; i < c->nr_queues; i++) {
        struct blk_queue *q = &e->queues[i];
        q->index = i;
        q->slots = calloc(c->depth, sizeof(*q->slots));
        if (!q->slots)
            goto fail;
        for (unsigned s = 0; s < c->depth; s++) {
            q->slots[s].method = calloc(c->max_ranges, sizeof(uint8_t));
            q->slots[s].range_done = calloc(c->max_ranges, sizeof(uint64_t));
            if (!q->slots[s].method || !q->slots[s].range_done)
                goto fail;
            q->slots[s].next_free = s + 1 < c->depth ? (int)(s + 1) : -1;
        }
        q->free_head = 0;
        struct blk_thread *t = &e->threads[i % c->nr_threads];
        q->t = t;
        t->queues[t->nr_queues++] = q;
    }
    for (unsigned i = 0; i < c->nr_threads; i++) {
        struct blk_thread *t = &e->threads[i];
        t->ctl_fd = eventfd(0, EFD_CLOEXEC);
        if (t->ctl_fd < 0) {
            err = -errno;
            log_err(e->comp, "%s: eventfd: %s", e->name, strerror(errno));
            goto fail;
        }
        /* Room for every slot of its queues plus the kicks and control
         * (ranges beyond that wait for a submit: uring_get_sqe). */
        unsigned entries = pow2_at_least(t->nr_queues * (c->depth + 1) + 4);
        if (entries > 4096)
            entries = 4096;
        struct io_uring_params p = { .flags = IORING_SETUP_COOP_TASKRUN };
        err = io_uring_queue_init_params(entries, &t->ring, &p);
        if (err == -EINVAL) {
            memset(&p, 0, sizeof(p));   /* a kernel before 5.19 */
            err = io_uring_queue_init_params(entries, &t->ring, &p);
        }
        if (err < 0) {
            log_err(e->comp, "%s: cannot set up io_uring: %s%s", e->name, strerror(-err),
                    err == -EPERM ? " (io_uring disabled: sysctl kernel.io_uring_disabled, or "
                    "a seccomp filter)" : err == -ENOMEM ? " (RLIMIT_MEMLOCK?)" : "");
            goto fail;
        }
        t->ring_ok = true;
    }
    for (unsigned i = 0; i < c->nr_threads; i++) {
        struct blk_thread *t = &e->threads[i];
        err = -pthread_create(&t->thread, NULL, blk_thread_main, t);
        if (err) {
            log_err(e->comp, "%s: cannot start an I/O thread: %s", e->name, strerror(-err));
            goto fail;
        }
        t->started = true;
        char tname[16];
        snprintf(tname, sizeof(tname), "%.8s-io%u", c->thread_name ? c->thread_name : "blk",
                 i % 100u);
        pthread_setname_np(t->thread, tname);
    }
    *out = e;
    return 0;
fail:
    blk_engine_destroy(e);
    return err;
}
