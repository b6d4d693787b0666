/* virtio-blk backend on io_uring: see devices/block/blk_io_uring.h. */
#include "devices/block/blk_io_uring.h"
#include "vmm/uring_sqe.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/virtio_blk.h>

#include "vmm/log.h"

#define COMP "virtio-blk"

/* ---- the image ---- */

int blk_image_open(struct blk_image *img, const char *path, bool readonly,
                   enum virtio_blk_cache cache)
{
    struct stat st;
    int flags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    int err;

    memset(img, 0, sizeof(*img));
    img->fd = img->fd_buffered = -1;
    snprintf(img->path, sizeof(img->path), "%s", path);
    img->readonly = readonly;
    img->direct = cache == VIRTIO_BLK_CACHE_NONE;

    img->fd = open(path, flags | (img->direct ? O_DIRECT : 0));
    if (img->fd < 0) {
        err = -errno;
        if (errno == ENOENT)
            log_err(COMP, "--disk %s: no such file; create the image first (e.g. "
                    "`truncate -s 8G %s`)", path, path);
        else if (errno == EACCES || errno == EPERM || errno == EROFS)
            log_err(COMP, "--disk %s: cannot open it %s: %s; fix its permissions or add "
                    ",readonly", path, readonly ? "for reading" : "for writing", strerror(errno));
        else if (errno == EINVAL && img->direct)
            log_err(COMP, "--disk %s: its filesystem does not support O_DIRECT (tmpfs?); use "
                    "cache=writeback", path);
        else
            log_err(COMP, "--disk %s: cannot open it: %s", path, strerror(errno));
        return err;
    }
    if (fstat(img->fd, &st) < 0) {
        err = -errno;
        log_err(COMP, "--disk %s: fstat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        log_err(COMP, "--disk %s: not a regular file or a block device", path);
        err = -EINVAL;
        goto fail;
    }
    img->is_block = S_ISBLK(st.st_mode);
    img->dev = st.st_dev;
    img->ino = st.st_ino;
    /* Two VMs writing one image destroy it: exclusive for writers, shared
     * for readers (flock(2); released when the descriptor closes, also
     * when minivmm is killed). */
    if (flock(img->fd, (readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
        err = -errno;
        if (errno == EWOULDBLOCK)
            log_err(COMP, "--disk %s: in use by another process, which holds a lock on it "
                    "(another minivmm?); stop it, or use another image%s", path,
                    readonly ? "" : " (several VMs may share an image only with ,readonly)");
        else
            log_err(COMP, "--disk %s: cannot lock it: %s", path, strerror(errno));
        goto fail;
    }
    img->logical_block = VIRTIO_BLK_SECTOR;
    if (img->is_block) {
        uint64_t bytes;
        int lbs = 0;
        if (ioctl(img->fd, BLKGETSIZE64, &bytes) < 0) {
            err = -errno;
            log_err(COMP, "--disk %s: cannot read the device size: %s", path, strerror(errno));
            goto fail;
        }
        img->size = bytes;
        if (ioctl(img->fd, BLKSSZGET, &lbs) == 0 && lbs >= 512 && lbs <= 65536 &&
            !(lbs & (lbs - 1)))
            img->logical_block = (uint32_t)lbs;
    } else {
        img->size = (uint64_t)st.st_size;
    }
    if (img->size < VIRTIO_BLK_SECTOR) {
        log_err(COMP, "--disk %s: %" PRIu64 " bytes is smaller than one sector; give the "
                "image a size (e.g. `truncate -s 8G %s`)", path, img->size, path);
        err = -EINVAL;
        goto fail;
    }
    if (img->size % VIRTIO_BLK_SECTOR)
        log_warn(COMP, "--disk %s: the size is not a multiple of 512; the last %" PRIu64
                 " bytes are not visible to the guest", path, img->size % VIRTIO_BLK_SECTOR);
    img->dio_align = img->logical_block;
#ifdef STATX_DIOALIGN
    if (img->direct) {
        struct statx sx;
        if (statx(img->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
            (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align) {
            uint32_t a = sx.stx_dio_offset_align > sx.stx_dio_mem_align ? sx.stx_dio_offset_align
                                                                       : sx.stx_dio_mem_align;
            if (a >= 1 && a <= 65536)
                img->dio_align = a;
        }
    }
#endif
    if (img->direct) {
        img->fd_buffered = open(path, flags);
        if (img->fd_buffered < 0) {
            err = -errno;
            log_err(COMP, "--disk %s: cannot open it a second time (buffered): %s", path,
                    strerror(errno));
            goto fail;
        }
    } else {
        img->fd_buffered = img->fd;
    }
    return 0;
fail:
    blk_image_close(img);
    return err;
}

void blk_image_close(struct blk_image *img)
{
    if (img->fd >= 0 && !img->readonly && fdatasync(img->fd) < 0)
        log_err(COMP, "--disk %s: final flush failed: %s", img->path, strerror(errno));
    if (img->fd_buffered >= 0 && img->fd_buffered != img->fd)
        close(img->fd_buffered);
    if (img->fd >= 0)
        close(img->fd);
    img->fd = img->fd_buffered = -1;
}

/* ---- the engine ---- */

enum tag_type { TAG_CTL = 1, TAG_KICK, TAG_IO, TAG_CANCEL };

static inline uint64_t tag(enum tag_type t, unsigned q, unsigned sub, unsigned slot)
{
    return (uint64_t)t << 56 | (uint64_t)(q & 0xFF) << 48 | (uint64_t)(sub & 0xFFFF) << 32 | slot;
}

/* Stages of a DISCARD/WRITE_ZEROES range, in fallback order. */
enum range_op { OP_PUNCH = 1, OP_ZERO_RANGE, OP_WRITE_ZEROES };

#define ZERO_BUF_SIZE (1u << 20)

struct blk_slot {
    struct virtio_blk_req req;
    struct iovec *iov;          /* queue_size entries */
    unsigned niov, iov_first;
    uint16_t head;
    uint8_t status;
    unsigned pending;           /* SQEs not yet completed */
    uint32_t done;              /* IN/OUT bytes done so far */
    uint32_t used_len;
    int fd;
    bool retried_buffered;
    uint8_t range_op[VIRTIO_BLK_MAX_RANGES];
    int next_free;
};

struct blk_thread;

struct blk_queue {
    unsigned index;
    struct blk_thread *t;
    struct virtq *vq;           /* while running */
    struct blk_slot *slots;
    int free_head;
    unsigned inflight;          /* slots in use */
    struct virtq_chain chain;   /* scratch: the chain being parsed */
    bool kick_armed;
    uint64_t kick_buf;
    bool publish;               /* used elements since the last publish */
    bool starved;               /* stopped taking chains: no free slot */
    bool dead;                  /* the driver broke it: wait for a reset */
};

enum blk_cmd { CMD_NONE, CMD_RUN, CMD_STOP, CMD_EXIT };

struct blk_thread {
    struct blk_engine *e;
    unsigned index;
    pthread_t thread;
    bool started;
    struct io_uring ring;
    bool ring_ok;
    int ctl_fd;
    uint64_t ctl_buf;
    bool ctl_armed;
    unsigned nr_cancels;        /* cancellations awaited at exit */
    struct blk_queue *queues[VIRTIO_BLK_MAX_QUEUES];
    unsigned nr_queues;
    unsigned io_inflight;       /* I/O SQEs submitted, not completed */
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
    struct blk_thread threads[VIRTIO_BLK_MAX_QUEUES];
    struct blk_queue queues[VIRTIO_BLK_MAX_QUEUES];
    uint8_t *zero_buf;          /* ZERO_BUF_SIZE of zeroes, page-aligned */
    atomic_bool no_punch, no_zero_range;
    bool running;               /* between start and stop (vCPU side) */
};

static void arm_ctl(struct blk_thread *t)
{
    struct io_uring_sqe *sqe = uring_get_sqe(&t->ring);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, t->ctl_fd, &t->ctl_buf, sizeof(t->ctl_buf), 0);
    io_uring_sqe_set_data64(sqe, tag(TAG_CTL, 0, 0, 0));
    t->ctl_armed = true;
}

static void arm_kick(struct blk_thread *t, struct blk_queue *q)
{
    if (q->kick_armed)
        return;
    struct io_uring_sqe *sqe = uring_get_sqe(&t->ring);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, virtio_pci_kick_fd(t->e->cfg.vp, q->index), &q->kick_buf,
                       sizeof(q->kick_buf), 0);
    io_uring_sqe_set_data64(sqe, tag(TAG_KICK, q->index, 0, 0));
    q->kick_armed = true;
}

static struct blk_slot *slot_alloc(struct blk_queue *q)
{
    if (q->free_head < 0)
        return NULL;
    struct blk_slot *s = &q->slots[q->free_head];
    q->free_head = s->next_free;
    q->inflight++;
    return s;
}

static void slot_free(struct blk_queue *q, struct blk_slot *s)
{
    s->next_free = q->free_head;
    q->free_head = (int)(s - q->slots);
    q->inflight--;
}

static void process_queue(struct blk_thread *t, struct blk_queue *q);

/* The request is done: status byte, used element, slot back. */
static void slot_complete(struct blk_thread *t, struct blk_queue *q, struct blk_slot *s)
{
    *s->req.status = s->status;
    virtq_push_used(q->vq, s->head, s->status == VIRTIO_BLK_S_OK ? s->used_len : 1);
    q->publish = true;
    slot_free(q, s);
    if (q->starved && t->running) {
        q->starved = false;
        process_queue(t, q);
    }
}

static bool iov_aligned(const struct iovec *iov, unsigned n, uint64_t off, uint32_t align)
{
    if (off % align)
        return false;
    for (unsigned i = 0; i < n; i++)
        if ((uintptr_t)iov[i].iov_base % align || iov[i].iov_len % align)
            return false;
    return true;
}

static void submit_rw(struct blk_thread *t, struct blk_queue *q, struct blk_slot *s)
{
    struct io_uring_sqe *sqe = uring_get_sqe(&t->ring);
    uint64_t off = s->req.sector * VIRTIO_BLK_SECTOR + s->done;

    if (!sqe) {
        s->status = VIRTIO_BLK_S_IOERR;
        slot_complete(t, q, s);
        return;
    }
    if (s->req.type == VIRTIO_BLK_T_IN)
        io_uring_prep_readv(sqe, s->fd, s->iov + s->iov_first, s->niov - s->iov_first, off);
    else
        io_uring_prep_writev(sqe, s->fd, s->iov + s->iov_first, s->niov - s->iov_first, off);
    io_uring_sqe_set_data64(sqe, tag(TAG_IO, q->index, 0, (unsigned)(s - q->slots)));
    s->pending++;
    t->io_inflight++;
}

static void submit_range(struct blk_thread *t, struct blk_queue *q, struct blk_slot *s,
                         unsigned i)
{
    struct blk_engine *e = t->e;
    const struct virtio_blk_range *r = &s->req.ranges[i];
    uint64_t off = r->sector * VIRTIO_BLK_SECTOR, len = (uint64_t)r->nr_sectors * VIRTIO_BLK_SECTOR;
    struct io_uring_sqe *sqe;

    /* Skip stages this filesystem is known not to have. */
    if (s->range_op[i] == OP_PUNCH && atomic_load(&e->no_punch))
        s->range_op[i] = s->req.type == VIRTIO_BLK_T_DISCARD ? 0 : OP_ZERO_RANGE;
    if (s->range_op[i] == OP_ZERO_RANGE && atomic_load(&e->no_zero_range))
        s->range_op[i] = (r->flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ? OP_WRITE_ZEROES : OP_PUNCH;
    if (s->range_op[i] == OP_PUNCH && atomic_load(&e->no_punch))
        s->range_op[i] = OP_WRITE_ZEROES;
    if (s->range_op[i] == 0)
        return;   /* a discard nothing here can do: done, successfully */

    sqe = uring_get_sqe(&t->ring);
    if (!sqe) {
        s->status = VIRTIO_BLK_S_IOERR;
        return;
    }
    switch (s->range_op[i]) {
    case OP_PUNCH:
        io_uring_prep_fallocate(sqe, e->cfg.img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                off, len);
        break;
    case OP_ZERO_RANGE:
        io_uring_prep_fallocate(sqe, e->cfg.img->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                                off, len);
        break;
    default: {
        /* Write zeroes from the shared zero buffer: at most 32 MiB in one
         * range (max_write_zeroes_sectors), one range (max_write_zeroes_seg). */
        unsigned n = 0;
        for (uint64_t done = 0; done < len && n < e->cfg.queue_size; n++) {
            uint64_t piece = len - done < ZERO_BUF_SIZE ? len - done : ZERO_BUF_SIZE;
            s->iov[n] = (struct iovec){ .iov_base = e->zero_buf, .iov_len = piece };
            done += piece;
        }
        io_uring_prep_writev(sqe, e->cfg.img->fd_buffered, s->iov, n, off);
        break;
    }
    }
    io_uring_sqe_set_data64(sqe, tag(TAG_IO, q->index, i + 1, (unsigned)(s - q->slots)));
    s->pending++;
    t->io_inflight++;
}

/* Start a checked request. */
static void start_request(struct blk_thread *t, struct blk_queue *q, struct blk_slot *s)
{
    struct blk_engine *e = t->e;
    const struct blk_image *img = e->cfg.img;
    struct io_uring_sqe *sqe;
    int n;

    s->status = VIRTIO_BLK_S_OK;
    s->pending = 0;
    s->done = 0;
    s->iov_first = 0;
    s->retried_buffered = false;
    s->used_len = 1;
    switch (s->req.type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        if (s->req.data_len == 0) {
            slot_complete(t, q, s);
            return;
        }
        n = virtq_chain_iov(&q->chain, s->req.type == VIRTIO_BLK_T_IN, s->req.data_off,
                            s->req.data_len, s->iov, e->cfg.queue_size);
        if (n <= 0) {
            s->status = VIRTIO_BLK_S_IOERR;
            slot_complete(t, q, s);
            return;
        }
        s->niov = (unsigned)n;
        s->fd = img->fd;
        if (img->direct && !iov_aligned(s->iov, s->niov, s->req.sector * VIRTIO_BLK_SECTOR,
                                        img->dio_align))
            s->fd = img->fd_buffered;
        if (s->req.type == VIRTIO_BLK_T_IN)
            s->used_len = s->req.data_len + 1;
        submit_rw(t, q, s);
        return;
    case VIRTIO_BLK_T_FLUSH:
        sqe = uring_get_sqe(&t->ring);
        if (!sqe) {
            s->status = VIRTIO_BLK_S_IOERR;
            slot_complete(t, q, s);
            return;
        }
        io_uring_prep_fsync(sqe, img->fd, IORING_FSYNC_DATASYNC);
        io_uring_sqe_set_data64(sqe, tag(TAG_IO, q->index, 0, (unsigned)(s - q->slots)));
        s->pending = 1;
        t->io_inflight++;
        return;
    case VIRTIO_BLK_T_GET_ID: {
        uint32_t len = s->req.data_len < VIRTIO_BLK_ID_BYTES ? s->req.data_len : VIRTIO_BLK_ID_BYTES;
        if (len && virtq_chain_write(&q->chain, 0, e->cfg.serial, len))
            s->status = VIRTIO_BLK_S_IOERR;
        s->used_len = len + 1;
        slot_complete(t, q, s);
        return;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        for (unsigned i = 0; i < s->req.nr_ranges; i++) {
            bool unmap = s->req.ranges[i].flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
            s->range_op[i] = s->req.type == VIRTIO_BLK_T_DISCARD || unmap ? OP_PUNCH
                                                                           : OP_ZERO_RANGE;
            submit_range(t, q, s, i);
        }
        if (s->pending == 0)
            slot_complete(t, q, s);
        return;
    default:
        s->status = VIRTIO_BLK_S_UNSUPP;
        slot_complete(t, q, s);
        return;
    }
}

/* Skip bytes already transferred in the slot's iovecs. */
static void iov_advance(struct blk_slot *s, size_t bytes)
{
    while (bytes && s->iov_first < s->niov) {
        struct iovec *v = &s->iov[s->iov_first];
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
    struct blk_slot *s;

    if (slot >= e->cfg.queue_size)
        return;
    s = &q->slots[slot];
    t->io_inflight--;
    s->pending--;

    if (sub) {
        /* DISCARD / WRITE_ZEROES range sub - 1 */
        unsigned i = sub - 1;
        if (res == -EOPNOTSUPP || (res == -EINVAL && s->range_op[i] != OP_WRITE_ZEROES)) {
            uint8_t op = s->range_op[i];
            if (op == OP_PUNCH)
                atomic_store(&e->no_punch, true);
            else if (op == OP_ZERO_RANGE)
                atomic_store(&e->no_zero_range, true);
            if (op != OP_WRITE_ZEROES) {
                submit_range(t, q, s, i);   /* the next stage */
                goto check;
            }
        }
        if (res < 0) {
            log_guest_once(COMP, "%s: %s of sectors %" PRIu64 "+%u failed: %s", e->name,
                           s->req.type == VIRTIO_BLK_T_DISCARD ? "discard" : "write-zeroes",
                           s->req.ranges[i].sector, s->req.ranges[i].nr_sectors, strerror(-res));
            s->status = VIRTIO_BLK_S_IOERR;
        } else if (s->range_op[i] == OP_WRITE_ZEROES &&
                   (uint64_t)res != (uint64_t)s->req.ranges[i].nr_sectors * VIRTIO_BLK_SECTOR) {
            s->status = VIRTIO_BLK_S_IOERR;   /* short write: the disk is full */
        }
        goto check;
    }

    if (s->req.type == VIRTIO_BLK_T_FLUSH) {
        if (res < 0) {
            log_err(COMP, "%s: flush (fdatasync) of %s failed: %s; the guest is told", e->name,
                    e->cfg.img->path, strerror(-res));
            s->status = VIRTIO_BLK_S_IOERR;
        }
        goto check;
    }

    /* IN / OUT */
    if (res == -EINVAL && s->fd != e->cfg.img->fd_buffered && !s->retried_buffered) {
        /* O_DIRECT wanted a larger alignment than we knew: buffered. */
        log_guest_once(COMP, "%s: O_DIRECT refused a request (alignment); such requests go "
                       "through the page cache", e->name);
        s->retried_buffered = true;
        s->fd = e->cfg.img->fd_buffered;
        submit_rw(t, q, s);
        return;
    }
    if (res < 0) {
        log_guest_once(COMP, "%s: %s at sector %" PRIu64 " (%u bytes) of %s failed: %s", e->name,
                       s->req.type == VIRTIO_BLK_T_IN ? "read" : "write", s->req.sector,
                       s->req.data_len, e->cfg.img->path, strerror(-res));
        s->status = VIRTIO_BLK_S_IOERR;
        goto check;
    }
    s->done += (uint32_t)res;
    if (s->done < s->req.data_len) {
        if (res == 0) {
            /* End of file (the image shrank under us) or no progress. */
            log_guest_once(COMP, "%s: short %s at sector %" PRIu64 " of %s", e->name,
                           s->req.type == VIRTIO_BLK_T_IN ? "read" : "write", s->req.sector,
                           e->cfg.img->path);
            s->status = VIRTIO_BLK_S_IOERR;
            goto check;
        }
        iov_advance(s, (size_t)res);
        submit_rw(t, q, s);
        return;
    }
check:
    if (s->pending == 0)
        slot_complete(t, q, s);
}

/* Take every available chain of q (§2.7.13.4 device side). */
static void process_queue(struct blk_thread *t, struct blk_queue *q)
{
    struct blk_engine *e = t->e;

    if (!t->running || !q->vq || q->dead)
        return;
    for (;;) {
        virtq_notify_disable(q->vq);
        for (;;) {
            if (q->free_head < 0) {
                q->starved = true;   /* completions free slots and call back */
                return;
            }
            int r = virtq_pop_chain(q->vq, &q->chain);
            if (r == 0)
                break;
            if (r < 0) {
                q->dead = true;
                virtio_pci_set_needs_reset(e->cfg.vp);
                return;
            }
            struct blk_slot *s = slot_alloc(q);
            s->head = q->chain.head;
            int st = virtio_blk_parse(&q->chain, e->cfg.limits, &s->req);
            if (st < 0) {
                /* No status byte: the request cannot even fail. */
                slot_free(q, s);
                q->dead = true;
                virtio_pci_set_needs_reset(e->cfg.vp);
                return;
            }
            if (st != VIRTIO_BLK_S_OK) {
                s->status = (uint8_t)st;
                slot_complete(t, q, s);
                continue;
            }
            start_request(t, q, s);
        }
        if (!virtq_notify_enable(q->vq))
            break;
    }
    arm_kick(t, q);
}

static void flush_used(struct blk_thread *t)
{
    for (unsigned i = 0; i < t->nr_queues; i++) {
        struct blk_queue *q = t->queues[i];
        if (!q->publish || !q->vq)
            continue;
        q->publish = false;
        if (virtq_publish_used(q->vq))
            virtio_pci_queue_interrupt(t->e->cfg.vp, q->index);
    }
}

static void ack(struct blk_thread *t, unsigned seq)
{
    pthread_mutex_lock(&t->lock);
    t->done_seq = seq;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static void finish_stop(struct blk_thread *t)
{
    flush_used(t);
    for (unsigned i = 0; i < t->nr_queues; i++) {
        struct blk_queue *q = t->queues[i];
        q->vq = NULL;
        q->starved = q->dead = q->publish = false;
    }
    t->stopping = false;
    ack(t, t->stop_seq);
}

static void handle_ctl(struct blk_thread *t)
{
    pthread_mutex_lock(&t->lock);
    enum blk_cmd cmd = t->cmd;
    unsigned seq = t->cmd_seq;
    pthread_mutex_unlock(&t->lock);

    switch (cmd) {
    case CMD_RUN:
        t->running = true;
        t->stopping = false;
        for (unsigned i = 0; i < t->nr_queues; i++) {
            struct blk_queue *q = t->queues[i];
            q->vq = virtio_pci_queue(t->e->cfg.vp, q->index);
            q->starved = q->dead = false;
            if (q->vq) {
                arm_kick(t, q);
                process_queue(t, q);   /* whatever was queued before DRIVER_OK */
            }
        }
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
    enum tag_type type = (enum tag_type)(data >> 56);
    unsigned qi = (unsigned)(data >> 48) & 0xFF;
    unsigned sub = (unsigned)(data >> 32) & 0xFFFF;
    unsigned slot = (unsigned)data;
    struct blk_queue *q = qi < t->e->cfg.nr_queues ? &t->e->queues[qi] : NULL;

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
            log_guest_once(COMP, "%s: reading queue %u's notification eventfd: %s", t->e->name,
                           qi, strerror(-res));
        if (t->running)
            process_queue(t, q);   /* re-arms the kick */
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
            log_warn(COMP, "%s: cannot pin I/O thread %u to CPU %d: %s", e->name, t->index,
                     e->cfg.cpu, strerror(r));
    }
    arm_ctl(t);
    for (;;) {
        int r = io_uring_submit_and_wait(&t->ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            log_err(COMP, "%s: io_uring_submit_and_wait: %s", e->name, strerror(-r));
            usleep(1000);
        }
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&t->ring, head, cqe) {
            handle_cqe(t, cqe->user_data, cqe->res);
            n++;
        }
        io_uring_cq_advance(&t->ring, n);
        flush_used(t);
        if (t->stopping && t->io_inflight == 0) {
            if (!t->exiting) {
                finish_stop(t);
            } else if (!cancelling) {
                flush_used(t);
                cancelling = true;
                cancel_armed(t);
            }
        }
        /* Exit once the cancelled reads have completed: their CQEs arrive
         * before (or with) the cancellation's own. */
        if (cancelling && t->nr_cancels == 0 && !t->ctl_armed && t->io_inflight == 0) {
            bool kicks = false;
            for (unsigned i = 0; i < t->nr_queues; i++)
                kicks |= t->queues[i]->kick_armed;
            if (!kicks)
                break;
            /* A read the cancellation missed (not found yet): cancel again. */
            cancel_armed(t);
        }
    }
    for (unsigned i = 0; i < t->nr_queues; i++)
        t->queues[i]->vq = NULL;
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
        log_err(COMP, "%s: cannot signal I/O thread %u: %s", t->e->name, t->index, strerror(errno));
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
    for (unsigned i = 0; i < e->cfg.nr_threads; i++) {
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
        pthread_mutex_destroy(&t->lock);
        pthread_cond_destroy(&t->cond);
    }
    for (unsigned i = 0; i < e->cfg.nr_queues; i++) {
        struct blk_queue *q = &e->queues[i];
        if (q->slots) {
            for (unsigned s = 0; s < e->cfg.queue_size; s++)
                free(q->slots[s].iov);
            free(q->slots);
        }
        free(q->chain.seg);
    }
    free(e->zero_buf);
    free(e);
}

int blk_engine_create(const struct blk_engine_config *c, struct blk_engine **out)
{
    struct blk_engine *e;
    int err = -ENOMEM;

    if (c->nr_queues == 0 || c->nr_queues > VIRTIO_BLK_MAX_QUEUES || c->nr_threads == 0 ||
        c->nr_threads > c->nr_queues || c->queue_size == 0)
        return -EINVAL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->cfg = *c;
    snprintf(e->name, sizeof(e->name), "%s", c->name ? c->name : "virtio-blk");
    e->cfg.name = e->name;
    atomic_init(&e->no_punch, false);
    atomic_init(&e->no_zero_range, false);
    for (unsigned i = 0; i < c->nr_threads; i++) {
        e->threads[i].ctl_fd = -1;
        pthread_mutex_init(&e->threads[i].lock, NULL);
        pthread_cond_init(&e->threads[i].cond, NULL);
    }
    /* Threads beyond nr_threads are never used; keep destroy uniform. */
    if (posix_memalign((void **)&e->zero_buf, 4096, ZERO_BUF_SIZE))
        goto fail;
    memset(e->zero_buf, 0, ZERO_BUF_SIZE);

    for (unsigned i = 0; i < c->nr_queues; i++) {
        struct blk_queue *q = &e->queues[i];
        q->index = i;
        q->slots = calloc(c->queue_size, sizeof(*q->slots));
        q->chain.seg = calloc(c->queue_size, sizeof(*q->chain.seg));
        if (!q->slots || !q->chain.seg)
            goto fail;
        q->chain.cap = c->queue_size;
        for (unsigned s = 0; s < c->queue_size; s++) {
            q->slots[s].iov = calloc(c->queue_size, sizeof(struct iovec));
            if (!q->slots[s].iov)
                goto fail;
            q->slots[s].next_free = s + 1 < c->queue_size ? (int)(s + 1) : -1;
        }
        q->free_head = 0;
        struct blk_thread *t = &e->threads[i % c->nr_threads];
        q->t = t;
        t->queues[t->nr_queues++] = q;
    }
    for (unsigned i = 0; i < c->nr_threads; i++) {
        struct blk_thread *t = &e->threads[i];
        t->e = e;
        t->index = i;
        t->ctl_fd = eventfd(0, EFD_CLOEXEC);
        if (t->ctl_fd < 0) {
            err = -errno;
            log_err(COMP, "%s: eventfd: %s", e->name, strerror(errno));
            goto fail;
        }
        /* Room for every slot of its queues plus the kicks and control
         * (DISCARD ranges beyond that wait for a submit: uring_get_sqe). */
        unsigned entries = pow2_at_least(t->nr_queues * (c->queue_size + 1) + 4);
        if (entries > 4096)
            entries = 4096;
        struct io_uring_params p = { .flags = IORING_SETUP_COOP_TASKRUN };
        err = io_uring_queue_init_params(entries, &t->ring, &p);
        if (err == -EINVAL) {
            memset(&p, 0, sizeof(p));   /* a kernel before 5.19 */
            err = io_uring_queue_init_params(entries, &t->ring, &p);
        }
        if (err < 0) {
            log_err(COMP, "%s: cannot set up io_uring: %s%s", e->name, strerror(-err),
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
            log_err(COMP, "%s: cannot start an I/O thread: %s", e->name, strerror(-err));
            goto fail;
        }
        t->started = true;
        char tname[16];
        /* "virtio-blk0" -> "blk0-io0" (thread names have 15 characters) */
        const char *tail = strlen(e->name) > 7 ? e->name + 7 : e->name;
        snprintf(tname, sizeof(tname), "%.8s-io%u", tail, i % 100u);
        pthread_setname_np(t->thread, tname);
    }
    *out = e;
    return 0;
fail:
    blk_engine_destroy(e);
    return err;
}
