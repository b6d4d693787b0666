/* virtio-net device and its I/O thread: see devices/virtio/virtio_net.h.
 *
 * The thread owns one io_uring and waits only in it: a READ on each
 * queue's kick eventfd, a READ on the control eventfd (start/stop/exit from
 * the transport), the receive READV and the transmit WRITEVs. After each
 * batch of completions the used rings are published once per queue and the
 * driver interrupted if it asked. */
#include "devices/virtio/virtio_net.h"
#include "vmm/uring_sqe.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#include "devices/net/net_backend.h"
#include "vmm/log.h"

#define COMP "virtio-net"

#define RXQ 0
#define TXQ 1
#define ETH_HDR_LEN 14u

_Static_assert(sizeof(struct virtio_net_hdr_v1) == VIRTIO_NET_HDR_LEN, "virtio-net header");

/* ---- transmit check (§5.1.6.2) ---- */

int virtio_net_tx_check(const struct virtq_chain *c, uint64_t f)
{
    struct virtio_net_hdr_v1 h;

    if (c->writable_len)
        return -EINVAL;   /* transmit buffers are device-readable only */
    if (c->readable_len < VIRTIO_NET_HDR_LEN + ETH_HDR_LEN ||
        c->readable_len - VIRTIO_NET_HDR_LEN > VIRTIO_NET_MAX_FRAME)
        return -EINVAL;
    if (virtq_chain_read(c, 0, &h, sizeof(h)))
        return -EINVAL;
    uint32_t frame = c->readable_len - VIRTIO_NET_HDR_LEN;
    /* §5.1.6.2.1: the driver sets no flag but NEEDS_CSUM. */
    if (h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
        return -EINVAL;
    bool csum = h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
    if (csum) {
        if (!(f & (1ULL << VIRTIO_NET_F_CSUM)))
            return -EINVAL;
        if ((uint32_t)h.csum_start + h.csum_offset + 2u > frame)
            return -EINVAL;
    }
    if (h.gso_type & VIRTIO_NET_HDR_GSO_ECN)
        return -EINVAL;   /* HOST_ECN is not offered */
    switch (h.gso_type) {
    case VIRTIO_NET_HDR_GSO_NONE:
        return 0;
    case VIRTIO_NET_HDR_GSO_TCPV4:
        if (!(f & (1ULL << VIRTIO_NET_F_HOST_TSO4)))
            return -EINVAL;
        break;
    case VIRTIO_NET_HDR_GSO_TCPV6:
        if (!(f & (1ULL << VIRTIO_NET_F_HOST_TSO6)))
            return -EINVAL;
        break;
    default:
        return -EINVAL;   /* UFO and unknown types are not offered */
    }
    /* A segmentation request needs the checksum to fill in and a size. */
    if (!csum || h.gso_size == 0)
        return -EINVAL;
    return 0;
}

/* ---- the device ---- */

enum tag_type { TAG_CTL = 1, TAG_KICK, TAG_RX, TAG_TX, TAG_CANCEL };
enum net_cmd { CMD_NONE, CMD_RUN, CMD_STOP, CMD_EXIT };

struct tx_slot {
    uint16_t head;
    struct iovec *iov;
    int next_free;
};

struct virtio_net {
    struct virtio_pci vp;
    char name[32];
    char ifname[VIRTIO_NET_IFNAME_MAX];
    int fd;                         /* be.fd: the packets */
    bool is_tap;                    /* be.offloads */
    struct net_backend be;          /* owns fd (and --net user's slirp), closed with the NIC */
    bool vp_init;
    struct virtio_net_config config;
    uint64_t features;              /* negotiated, set before CMD_RUN */
    int cpu;

    /* I/O thread */
    pthread_t thread;
    bool started;
    struct io_uring ring;
    bool ring_ok;
    int ctl_fd;
    uint64_t ctl_buf;
    bool ctl_armed;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum net_cmd cmd;
    unsigned cmd_seq, done_seq;
    bool sync_init;
    /* thread-local */
    bool running, stopping, exiting;
    unsigned stop_seq, nr_cancels;
    bool dead;                      /* a queue broke: wait for a reset */
    bool kick_armed[2];
    uint64_t kick_buf[2];

    /* receive */
    struct virtq *rxq;
    struct virtq_chain rx_chain;
    struct iovec *rx_iov;           /* the chain's writable part + the spill byte */
    unsigned rx_niov;
    uint8_t rx_spill;
    bool rx_have_chain, rx_reading, rx_cancelled, rx_publish;
    unsigned rx_errors;
    atomic_uint_fast64_t rx_dropped;

    /* transmit */
    struct virtq *txq;
    struct virtq_chain tx_chain;
    struct tx_slot *tx_slots;
    int tx_free;
    unsigned tx_inflight;
    bool tx_starved, tx_publish;
    atomic_uint_fast64_t tx_dropped;
};

static inline uint64_t tag(enum tag_type t, unsigned sub)
{
    return (uint64_t)t << 56 | sub;
}

static void arm_ctl(struct virtio_net *n)
{
    struct io_uring_sqe *sqe = uring_get_sqe(&n->ring);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, n->ctl_fd, &n->ctl_buf, sizeof(n->ctl_buf), 0);
    io_uring_sqe_set_data64(sqe, tag(TAG_CTL, 0));
    n->ctl_armed = true;
}

static void arm_kick(struct virtio_net *n, unsigned q)
{
    if (n->kick_armed[q])
        return;
    struct io_uring_sqe *sqe = uring_get_sqe(&n->ring);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, virtio_pci_kick_fd(&n->vp, q), &n->kick_buf[q], sizeof(n->kick_buf[q]), 0);
    io_uring_sqe_set_data64(sqe, tag(TAG_KICK, q));
    n->kick_armed[q] = true;
}

static void queue_broken(struct virtio_net *n)
{
    n->dead = true;
    virtio_pci_set_needs_reset(&n->vp);
}

/* Receive: make sure one READV is outstanding while the guest has buffers. */
static void rx_arm(struct virtio_net *n)
{
    if (!n->running || !n->rxq || n->rx_reading || n->dead)
        return;
    while (!n->rx_have_chain) {
        int r = virtq_pop_chain(n->rxq, &n->rx_chain);
        if (r < 0) {
            queue_broken(n);
            return;
        }
        if (r == 0) {
            /* No buffer: ask to be told when one arrives, then look again. */
            if (virtq_notify_enable(n->rxq))
                continue;
            arm_kick(n, RXQ);
            return;
        }
        virtq_notify_disable(n->rxq);
        if (n->rx_chain.writable_len < VIRTIO_NET_HDR_LEN + ETH_HDR_LEN) {
            /* §5.1.6.3: receive buffers hold at least a header and a frame. */
            log_guest_once(COMP, "%s: receive buffer of %u writable bytes; returned unused",
                           n->name, n->rx_chain.writable_len);
            virtq_push_used(n->rxq, n->rx_chain.head, 0);
            n->rx_publish = true;
            continue;
        }
        int k = virtq_chain_iov(&n->rx_chain, true, 0, n->rx_chain.writable_len, n->rx_iov,
                                VIRTIO_NET_QUEUE_SIZE);
        if (k <= 0) {
            queue_broken(n);
            return;
        }
        /* One byte past the guest's buffer: a packet that reaches it did
         * not fit (a tap may cut it and report only what it copied). */
        n->rx_iov[k++] = (struct iovec){ .iov_base = &n->rx_spill, .iov_len = 1 };
        n->rx_niov = (unsigned)k;
        n->rx_have_chain = true;
    }
    struct io_uring_sqe *sqe = uring_get_sqe(&n->ring);
    if (!sqe)
        return;
    io_uring_prep_readv(sqe, n->fd, n->rx_iov, n->rx_niov, 0);
    io_uring_sqe_set_data64(sqe, tag(TAG_RX, 0));
    n->rx_reading = true;
}

static void rx_done(struct virtio_net *n, int res)
{
    n->rx_reading = false;
    if (!n->running) {
        /* Stopping: the chain belongs to rings that are being reset. */
        n->rx_have_chain = false;
        return;
    }
    if (res < 0) {
        if (res != -EAGAIN && res != -EINTR && res != -ECANCELED) {
            log_guest_once(COMP, "%s: reading from %s: %s", n->name, n->ifname, strerror(-res));
            if (++n->rx_errors > 1000) {
                log_err(COMP, "%s: %s keeps failing; receiving stops", n->name, n->ifname);
                return;
            }
        }
        rx_arm(n);
        return;
    }
    n->rx_errors = 0;
    if ((uint32_t)res > n->rx_chain.writable_len || (uint32_t)res < VIRTIO_NET_HDR_LEN) {
        /* It reached the spill byte (or the tap reported the full length
         * of a packet it cut): it did not fit, and is dropped. A buffer
         * below the size §5.1.6.3.1 asks for (header + 1514) goes back to
         * the driver empty, so smaller ones cannot hold up the queue; a
         * full-size one waits for the next packet. */
        log_guest_once(COMP, "%s: a %d-byte packet did not fit the guest's %u-byte receive "
                       "buffer; dropped", n->name, res, n->rx_chain.writable_len);
        atomic_fetch_add(&n->rx_dropped, 1);
        if (n->rx_chain.writable_len < VIRTIO_NET_HDR_LEN + VIRTIO_NET_MIN_RX_FRAME) {
            virtq_push_used(n->rxq, n->rx_chain.head, 0);
            n->rx_publish = true;
            n->rx_have_chain = false;
        }
        rx_arm(n);
        return;
    }
    /* §5.1.6.4: num_buffers is 1 without VIRTIO_NET_F_MRG_RXBUF. */
    uint16_t one = 1;
    virtq_chain_write(&n->rx_chain, offsetof(struct virtio_net_hdr_v1, num_buffers), &one, 2);
    virtq_push_used(n->rxq, n->rx_chain.head, (uint32_t)res);
    n->rx_publish = true;
    n->rx_have_chain = false;
    rx_arm(n);
}

static void tx_complete(struct virtio_net *n, struct tx_slot *s)
{
    virtq_push_used(n->txq, s->head, 0);
    n->tx_publish = true;
    s->next_free = n->tx_free;
    n->tx_free = (int)(s - n->tx_slots);
}

static void tx_process(struct virtio_net *n)
{
    if (!n->running || !n->txq || n->dead)
        return;
    for (;;) {
        virtq_notify_disable(n->txq);
        for (;;) {
            if (n->tx_free < 0) {
                n->tx_starved = true;   /* a completion calls back */
                return;
            }
            int r = virtq_pop_chain(n->txq, &n->tx_chain);
            if (r == 0)
                break;
            if (r < 0) {
                queue_broken(n);
                return;
            }
            struct tx_slot *s = &n->tx_slots[n->tx_free];
            n->tx_free = s->next_free;
            s->head = n->tx_chain.head;
            int k = -EINVAL;
            if (virtio_net_tx_check(&n->tx_chain, n->features) == 0)
                k = virtq_chain_iov(&n->tx_chain, false, 0, n->tx_chain.readable_len, s->iov,
                                    VIRTIO_NET_QUEUE_SIZE);
            struct io_uring_sqe *sqe = k > 0 ? uring_get_sqe(&n->ring) : NULL;
            if (!sqe) {
                log_guest_once(COMP, "%s: a transmit chain was refused (header or layout); "
                               "dropped", n->name);
                atomic_fetch_add(&n->tx_dropped, 1);
                tx_complete(n, s);
                continue;
            }
            io_uring_prep_writev(sqe, n->fd, s->iov, (unsigned)k, 0);
            io_uring_sqe_set_data64(sqe, tag(TAG_TX, (unsigned)(s - n->tx_slots)));
            n->tx_inflight++;
        }
        if (!virtq_notify_enable(n->txq))
            break;
    }
    arm_kick(n, TXQ);
}

static void tx_done(struct virtio_net *n, unsigned slot, int res)
{
    if (slot >= VIRTIO_NET_QUEUE_SIZE)
        return;
    n->tx_inflight--;
    if (res < 0) {
        log_guest_once(COMP, "%s: writing a packet to %s: %s", n->name, n->ifname, strerror(-res));
        atomic_fetch_add(&n->tx_dropped, 1);
    }
    tx_complete(n, &n->tx_slots[slot]);
    if (n->tx_starved && n->running) {
        n->tx_starved = false;
        tx_process(n);
    }
}

static void flush_used(struct virtio_net *n)
{
    if (n->rx_publish && n->rxq) {
        n->rx_publish = false;
        if (virtq_publish_used(n->rxq))
            virtio_pci_queue_interrupt(&n->vp, RXQ);
    }
    if (n->tx_publish && n->txq) {
        n->tx_publish = false;
        if (virtq_publish_used(n->txq))
            virtio_pci_queue_interrupt(&n->vp, TXQ);
    }
}

static void ack(struct virtio_net *n, unsigned seq)
{
    pthread_mutex_lock(&n->lock);
    n->done_seq = seq;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
}

static void cancel_rx(struct virtio_net *n)
{
    struct io_uring_sqe *sqe;
    if (!n->rx_reading || n->rx_cancelled || !(sqe = uring_get_sqe(&n->ring)))
        return;
    io_uring_prep_cancel64(sqe, tag(TAG_RX, 0), 0);
    io_uring_sqe_set_data64(sqe, tag(TAG_CANCEL, 0));
    n->nr_cancels++;
    n->rx_cancelled = true;
}

static void handle_ctl(struct virtio_net *n)
{
    pthread_mutex_lock(&n->lock);
    enum net_cmd cmd = n->cmd;
    unsigned seq = n->cmd_seq;
    pthread_mutex_unlock(&n->lock);

    switch (cmd) {
    case CMD_RUN:
        n->running = true;
        n->stopping = false;
        n->dead = false;
        n->rxq = virtio_pci_queue(&n->vp, RXQ);
        n->txq = virtio_pci_queue(&n->vp, TXQ);
        n->rx_have_chain = n->tx_starved = false;
        if (n->rxq)
            rx_arm(n);
        if (n->txq) {
            arm_kick(n, TXQ);
            tx_process(n);
        }
        ack(n, seq);
        break;
    case CMD_STOP:
    case CMD_EXIT:
        n->running = false;
        n->stopping = true;
        n->stop_seq = seq;
        n->exiting = cmd == CMD_EXIT;
        cancel_rx(n);
        break;
    default:
        break;
    }
    if (!n->exiting)
        arm_ctl(n);
}

static void handle_cqe(struct virtio_net *n, uint64_t data, int res)
{
    unsigned sub = (unsigned)data;

    switch ((enum tag_type)(data >> 56)) {
    case TAG_CTL:
        n->ctl_armed = false;
        handle_ctl(n);
        break;
    case TAG_KICK:
        if (sub > TXQ)
            break;
        n->kick_armed[sub] = false;
        if (sub == RXQ)
            rx_arm(n);   /* buffers arrived (re-arms the kick when none) */
        else
            tx_process(n);
        break;
    case TAG_RX:
        rx_done(n, res);
        break;
    case TAG_TX:
        tx_done(n, sub, res);
        break;
    case TAG_CANCEL:
        n->nr_cancels--;
        break;
    default:
        break;
    }
}

static void finish_stop(struct virtio_net *n)
{
    flush_used(n);
    n->rxq = n->txq = NULL;
    n->rx_have_chain = n->rx_cancelled = false;
    n->rx_publish = n->tx_publish = n->tx_starved = false;
    n->dead = false;
    n->stopping = false;
    ack(n, n->stop_seq);
}

static void cancel_reads(struct virtio_net *n)
{
    struct io_uring_sqe *sqe;
    if (n->ctl_armed && (sqe = uring_get_sqe(&n->ring))) {
        io_uring_prep_cancel64(sqe, tag(TAG_CTL, 0), 0);
        io_uring_sqe_set_data64(sqe, tag(TAG_CANCEL, 0));
        n->nr_cancels++;
    }
    for (unsigned q = 0; q < 2; q++) {
        if (n->kick_armed[q] && (sqe = uring_get_sqe(&n->ring))) {
            io_uring_prep_cancel64(sqe, tag(TAG_KICK, q), 0);
            io_uring_sqe_set_data64(sqe, tag(TAG_CANCEL, 0));
            n->nr_cancels++;
        }
    }
}

static void *net_thread_main(void *arg)
{
    struct virtio_net *n = arg;
    bool cancelling = false;

    if (n->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(n->cpu, &set);
        int r = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        if (r)
            log_warn(COMP, "%s: cannot pin the I/O thread to CPU %d: %s", n->name, n->cpu,
                     strerror(r));
    }
    arm_ctl(n);
    for (;;) {
        int r = io_uring_submit_and_wait(&n->ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            log_err(COMP, "%s: io_uring_submit_and_wait: %s", n->name, strerror(-r));
            usleep(1000);
        }
        unsigned head, cnt = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&n->ring, head, cqe) {
            handle_cqe(n, cqe->user_data, cqe->res);
            cnt++;
        }
        io_uring_cq_advance(&n->ring, cnt);
        flush_used(n);
        if (n->stopping && !n->rx_reading && n->tx_inflight == 0) {
            if (!n->exiting) {
                finish_stop(n);
            } else if (!cancelling) {
                cancelling = true;
                cancel_reads(n);
            }
        }
        if (cancelling && n->nr_cancels == 0 && !n->ctl_armed && !n->rx_reading &&
            n->tx_inflight == 0) {
            if (!n->kick_armed[0] && !n->kick_armed[1])
                break;
            cancel_reads(n);
        }
    }
    n->rxq = n->txq = NULL;
    ack(n, n->stop_seq);
    return NULL;
}

static void send_cmd(struct virtio_net *n, enum net_cmd cmd, bool wait)
{
    uint64_t one = 1;

    pthread_mutex_lock(&n->lock);
    n->cmd = cmd;
    unsigned seq = ++n->cmd_seq;
    pthread_mutex_unlock(&n->lock);
    if (write(n->ctl_fd, &one, sizeof(one)) != sizeof(one))
        log_err(COMP, "%s: cannot signal the I/O thread: %s", n->name, strerror(errno));
    if (!wait)
        return;
    pthread_mutex_lock(&n->lock);
    while ((int)(n->done_seq - seq) < 0)
        pthread_cond_wait(&n->cond, &n->lock);
    pthread_mutex_unlock(&n->lock);
}

/* ---- transport ops ---- */

static void net_cfg_read(void *opaque, uint32_t off, void *data, unsigned len)
{
    struct virtio_net *n = opaque;
    if (off < sizeof(n->config) && len <= sizeof(n->config) - off)
        memcpy(data, (const uint8_t *)&n->config + off, len);
}

static void net_cfg_write(void *opaque, uint32_t off, const void *data, unsigned len)
{
    (void)opaque;
    (void)off;
    (void)data;
    (void)len;   /* mac is writable only for legacy drivers; nothing else is */
}

static int net_start(void *opaque, uint64_t features)
{
    struct virtio_net *n = opaque;
    n->features = features;
    if (n->is_tap) {
        unsigned off = 0;
        if (features & (1ULL << VIRTIO_NET_F_GUEST_CSUM))
            off |= NET_OFFLOAD_CSUM;
        if (features & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
            off |= NET_OFFLOAD_TSO4;
        if (features & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
            off |= NET_OFFLOAD_TSO6;
        int r = net_backend_set_offload(&n->be, off);
        if (r)
            log_warn(COMP, "%s: TUNSETOFFLOAD on %s: %s; the guest gets fully checksummed "
                     "packets only", n->name, n->ifname, strerror(-r));
    }
    send_cmd(n, CMD_RUN, false);
    return 0;
}

static void net_stop(void *opaque)
{
    struct virtio_net *n = opaque;
    send_cmd(n, CMD_STOP, true);
}

static const struct virtio_device_ops net_ops = {
    .cfg_read = net_cfg_read, .cfg_write = net_cfg_write, .start = net_start, .stop = net_stop,
};

/* ---- life cycle ---- */

void virtio_net_destroy(struct virtio_net *n)
{
    if (!n)
        return;
    if (n->vp_init)
        virtio_pci_fini(&n->vp);   /* stops the device */
    if (n->started) {
        send_cmd(n, CMD_EXIT, false);
        pthread_join(n->thread, NULL);
    }
    if (n->ring_ok)
        io_uring_queue_exit(&n->ring);
    if (n->ctl_fd >= 0)
        close(n->ctl_fd);
    if (n->sync_init) {
        pthread_mutex_destroy(&n->lock);
        pthread_cond_destroy(&n->cond);
    }
    if (n->tx_slots)
        for (unsigned i = 0; i < VIRTIO_NET_QUEUE_SIZE; i++)
            free(n->tx_slots[i].iov);
    free(n->tx_slots);
    free(n->rx_iov);
    free(n->rx_chain.seg);
    free(n->tx_chain.seg);
    net_backend_close(&n->be);   /* after the I/O thread: nothing uses it any more */
    free(n);
}

int virtio_net_create_fd(const struct virtio_pci_vm *vm, int fd, bool is_tap, const uint8_t mac[6],
                         unsigned index, int io_cpu, struct virtio_net **out)
{
    struct virtio_net *n = calloc(1, sizeof(*n));
    int err = -ENOMEM;

    if (!n) {
        close(fd);
        return -ENOMEM;
    }
    n->fd = fd;
    n->is_tap = is_tap;
    n->be = (struct net_backend){ .fd = fd, .offloads = is_tap };
    n->ctl_fd = -1;
    n->cpu = io_cpu;
    snprintf(n->name, sizeof(n->name), "virtio-net%u", index);
    snprintf(n->ifname, sizeof(n->ifname), "%s", is_tap ? "tap" : "packet fd");
    atomic_init(&n->rx_dropped, 0);
    atomic_init(&n->tx_dropped, 0);
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->cond, NULL);
    n->sync_init = true;

    n->rx_chain.seg = calloc(VIRTIO_NET_QUEUE_SIZE, sizeof(struct virtq_seg));
    n->tx_chain.seg = calloc(VIRTIO_NET_QUEUE_SIZE, sizeof(struct virtq_seg));
    n->rx_iov = calloc(VIRTIO_NET_QUEUE_SIZE + 1, sizeof(struct iovec));
    n->tx_slots = calloc(VIRTIO_NET_QUEUE_SIZE, sizeof(*n->tx_slots));
    if (!n->rx_chain.seg || !n->tx_chain.seg || !n->rx_iov || !n->tx_slots)
        goto fail;
    n->rx_chain.cap = n->tx_chain.cap = VIRTIO_NET_QUEUE_SIZE;
    for (unsigned i = 0; i < VIRTIO_NET_QUEUE_SIZE; i++) {
        n->tx_slots[i].iov = calloc(VIRTIO_NET_QUEUE_SIZE, sizeof(struct iovec));
        if (!n->tx_slots[i].iov)
            goto fail;
        n->tx_slots[i].next_free = i + 1 < VIRTIO_NET_QUEUE_SIZE ? (int)(i + 1) : -1;
    }
    n->tx_free = 0;

    memcpy(n->config.mac, mac, 6);
    n->config.status = VIRTIO_NET_S_LINK_UP;
    /* A tap takes and hands over partial checksums and TSO packets as they
     * are (TUNSETOFFLOAD says what the guest accepted). Any other packet
     * descriptor (libslirp, tests) gets CSUM only: its reader finishes the
     * checksum (net_slirp_complete_csum) but segments nothing, and sends
     * only whole, checksummed frames, so GUEST_* would buy nothing but the
     * driver's 64 KiB receive buffers. */
    uint64_t features = (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
                        (1ULL << VIRTIO_NET_F_CSUM);
    if (is_tap)
        features |= (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6) |
                    (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
                    (1ULL << VIRTIO_NET_F_GUEST_TSO6);
    struct virtio_pci_config pc = {
        .name = n->name, .device_type = VIRTIO_ID_NET, .class_code = 0x020000,   /* Ethernet */
        .features = features, .nr_queues = 2, .queue_max_size = VIRTIO_NET_QUEUE_SIZE,
        .cfg_size = offsetof(struct virtio_net_config, max_virtqueue_pairs),
        .ops = &net_ops, .opaque = n,
    };
    err = virtio_pci_init(&n->vp, vm, &pc);
    if (err)
        goto fail;
    n->vp_init = true;

    n->ctl_fd = eventfd(0, EFD_CLOEXEC);
    if (n->ctl_fd < 0) {
        err = -errno;
        log_err(COMP, "%s: eventfd: %s", n->name, strerror(errno));
        goto fail;
    }
    struct io_uring_params p = { .flags = IORING_SETUP_COOP_TASKRUN };
    err = io_uring_queue_init_params(2 * VIRTIO_NET_QUEUE_SIZE, &n->ring, &p);
    if (err == -EINVAL) {
        memset(&p, 0, sizeof(p));
        err = io_uring_queue_init_params(2 * VIRTIO_NET_QUEUE_SIZE, &n->ring, &p);
    }
    if (err < 0) {
        log_err(COMP, "%s: cannot set up io_uring: %s", n->name, strerror(-err));
        goto fail;
    }
    n->ring_ok = true;
    err = -pthread_create(&n->thread, NULL, net_thread_main, n);
    if (err) {
        log_err(COMP, "%s: cannot start the I/O thread: %s", n->name, strerror(-err));
        goto fail;
    }
    n->started = true;
    char tname[16];
    snprintf(tname, sizeof(tname), "net%u-io", index % 1000u);
    pthread_setname_np(n->thread, tname);
    *out = n;
    return 0;
fail:
    virtio_net_destroy(n);
    return err;
}

int virtio_net_create(const struct virtio_pci_vm *vm, const struct virtio_net_arg *arg,
                      unsigned index, int io_cpu, struct virtio_net **out)
{
    struct net_backend_config bc;
    struct net_backend be;
    char name[32];
    uint8_t mac[6];
    int err;

    virtio_net_arg_mac(arg, mac);
    snprintf(name, sizeof(name), "virtio-net%u", index);
    virtio_net_arg_backend(arg, name, &bc);
    err = net_backend_open(&bc, &be);
    if (err)
        return err;
    /* The descriptor is the NIC's from here on (closed on failure too). */
    err = virtio_net_create_fd(vm, be.fd, be.offloads, mac, index, io_cpu, out);
    be.fd = -1;
    if (err) {
        net_backend_close(&be);
        return err;
    }
    (*out)->be.slirp = be.slirp;
    snprintf((*out)->ifname, sizeof((*out)->ifname), "%s", be.ifname);
    if (arg->backend == VIRTIO_NET_USER)
        log_debug(COMP, "virtio-net%u: user network (libslirp), %u port forwards, MAC "
                  "%02x:%02x:%02x:%02x:%02x:%02x", index, arg->nr_hostfwd, mac[0], mac[1],
                  mac[2], mac[3], mac[4], mac[5]);
    else
        log_debug(COMP, "virtio-net%u: tap %s%s%s, MAC %02x:%02x:%02x:%02x:%02x:%02x", index,
                  be.ifname, arg->backend == VIRTIO_NET_BRIDGE ? " on bridge " : "",
                  arg->backend == VIRTIO_NET_BRIDGE ? arg->ifname : "", mac[0], mac[1], mac[2],
                  mac[3], mac[4], mac[5]);
    return 0;
}

int virtio_net_plug(struct virtio_net *n, struct pci_bus *bus, struct pci_device *parent,
                    uint8_t devfn, int (*intx_gsi)(void *ctx, const struct pci_device *d,
                                                   uint8_t pin), void *ctx)
{
    return virtio_pci_plug(&n->vp, bus, parent, devfn, intx_gsi, ctx);
}

void virtio_net_unplug(struct virtio_net *n)
{
    if (n)
        virtio_pci_unplug(&n->vp);
}

struct virtio_pci *virtio_net_pci(struct virtio_net *n)
{
    return &n->vp;
}

void virtio_net_counters(struct virtio_net *n, uint64_t *rx_dropped, uint64_t *tx_dropped)
{
    *rx_dropped = atomic_load(&n->rx_dropped);
    *tx_dropped = atomic_load(&n->tx_dropped);
}
