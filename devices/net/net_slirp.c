/* libslirp user-mode networking: see devices/net/net_slirp.h.
 *
 * The thread's loop, each round:
 *   1. slirp_pollfds_fill adds slirp's sockets to the poll set (after the
 *      packet socket and the stop eventfd) and bounds the timeout by its
 *      TCP timers; our own timer list (slirp's timer_new/timer_mod) bounds
 *      it further
 *   2. poll()
 *   3. frames from the guest go to slirp_input (before slirp_pollfds_poll,
 *      whose if_start then sends what they produced at once)
 *   4. slirp_pollfds_poll serves the sockets that are ready
 *   5. expired timers fire
 * Steps 1 and 3-5 hold the process-wide slirp lock. */
#include "devices/net/net_slirp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libslirp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#include "vmm/log.h"

#define COMP "virtio-net"

#define HDR_LEN       NET_BACKEND_HDR_LEN    /* struct virtio_net_hdr_v1 */
#define ETH_HDR_LEN   14u
#define RX_BUF_LEN    NET_SLIRP_MAX_MSG      /* the NIC's largest frame, with its header */
#define RX_BATCH      64                     /* frames per round, then the sockets' turn */
#define SOCKBUF_BYTES (1 << 20)              /* room for bursts (capped by net.core.wmem_max) */

_Static_assert(sizeof(struct virtio_net_hdr_v1) == HDR_LEN, "virtio-net header");

/* libslirp's globals (the clock it caches, the resolv.conf cache). */
static pthread_mutex_t slirp_global_lock = PTHREAD_MUTEX_INITIALIZER;

struct slirp_timer {
    struct slirp_timer *next;
    SlirpTimerCb cb;                 /* timer_new */
    void *cb_opaque;
    bool by_id;                      /* timer_new_opaque: slirp_handle_timer(id) */
    SlirpTimerId id;
    int64_t expire_ms;               /* -1: not armed */
};

struct net_slirp {
    char name[32];
    Slirp *slirp;
    int fd;                          /* our end of the socketpair, non-blocking */
    int stop_fd;
    pthread_t thread;
    bool started;
    bool peer_gone;                  /* the NIC closed its end */
    struct pollfd *pfd;
    unsigned npfd, cap_pfd;
    struct slirp_timer *timers;
    uint8_t *buf;
    atomic_uint_fast64_t to_guest_dropped, from_guest_dropped;
};

/* ---- checksum completion (virtio 1.2 §5.1.6.2; RFC 1071) ---- */

int net_slirp_complete_csum(uint8_t *frame, size_t len, uint16_t csum_start, uint16_t csum_offset)
{
    size_t field = (size_t)csum_start + csum_offset;
    if (field + 2 > len)
        return -EINVAL;
    uint32_t sum = 0;
    size_t i = csum_start;
    for (; i + 1 < len; i += 2)
        sum += (uint32_t)frame[i] << 8 | frame[i + 1];
    if (i < len)
        sum += (uint32_t)frame[i] << 8;   /* an odd last byte, padded with zero */
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    uint16_t c = (uint16_t)~sum;
    frame[field] = (uint8_t)(c >> 8);
    frame[field + 1] = (uint8_t)c;
    return 0;
}

int net_slirp_guest_frame(uint8_t *pkt, size_t n, uint8_t **frame, size_t *len)
{
    struct virtio_net_hdr_v1 h;

    if (n > RX_BUF_LEN || n < HDR_LEN + ETH_HDR_LEN)
        return -EINVAL;
    memcpy(&h, pkt, HDR_LEN);
    if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE || (h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM))
        return -EINVAL;
    *frame = pkt + HDR_LEN;
    *len = n - HDR_LEN;
    if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
        net_slirp_complete_csum(*frame, *len, h.csum_start, h.csum_offset))
        return -EINVAL;
    return 0;
}

/* ---- slirp callbacks (all on the thread, under the lock) ---- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
    struct net_slirp *s = opaque;
    static struct virtio_net_hdr_v1 zero_hdr;   /* never written */
    /* sendmsg only reads the iovecs; struct iovec has no const member, so
     * slirp's const buffer goes in through an integer (-Wcast-qual). */
    struct iovec iov[2] = { { .iov_base = &zero_hdr, .iov_len = HDR_LEN },
                            { .iov_base = (void *)(uintptr_t)buf, .iov_len = len } };
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };

    if (s->peer_gone || sendmsg(s->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        /* The guest is not taking packets fast enough (or is gone): drop,
         * as a full NIC would; TCP resends. Reported as sent, so slirp
         * does not complain about each one. */
        atomic_fetch_add(&s->to_guest_dropped, 1);
    }
    return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
    struct net_slirp *s = opaque;
    log_guest_once(COMP, "%s: user network: %s", s->name, msg);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cb_clock_get_ns(void *opaque)
{
    (void)opaque;
    return now_ns();
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
    struct net_slirp *s = opaque;
    struct slirp_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cb = cb;
    t->cb_opaque = cb_opaque;
    t->expire_ms = -1;
    t->next = s->timers;
    s->timers = t;
    return t;
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    struct slirp_timer *t = cb_timer_new(NULL, cb_opaque, opaque);
    if (t) {
        t->by_id = true;
        t->id = id;
    }
    return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
    struct net_slirp *s = opaque;
    for (struct slirp_timer **p = &s->timers; *p; p = &(*p)->next) {
        if (*p == timer) {
            struct slirp_timer *t = *p;
            *p = t->next;
            free(t);
            return;
        }
    }
}

/* expire_time is in milliseconds of clock_get_ns's clock. */
static void cb_timer_mod(void *timer, int64_t expire_time, void *opaque)
{
    (void)opaque;
    if (timer)
        ((struct slirp_timer *)timer)->expire_ms = expire_time < 0 ? 0 : expire_time;
}

/* The poll set is rebuilt every round from slirp_pollfds_fill, so there is
 * nothing to register; notify (guestfwd buffer space) is not used. */
static void cb_register_poll_fd(int fd, void *opaque)
{
    (void)fd;
    (void)opaque;
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
    (void)fd;
    (void)opaque;
}

static void cb_notify(void *opaque)
{
    (void)opaque;
}

static const SlirpCb slirp_callbacks = {
    .send_packet = cb_send_packet,
    .guest_error = cb_guest_error,
    .clock_get_ns = cb_clock_get_ns,
    .timer_new = cb_timer_new,
    .timer_free = cb_timer_free,
    .timer_mod = cb_timer_mod,
    .register_poll_fd = cb_register_poll_fd,
    .unregister_poll_fd = cb_unregister_poll_fd,
    .notify = cb_notify,
    .timer_new_opaque = cb_timer_new_opaque,
};

static int cb_add_poll(int fd, int events, void *opaque)
{
    struct net_slirp *s = opaque;
    if (s->npfd == s->cap_pfd) {
        unsigned cap = s->cap_pfd * 2;
        struct pollfd *p = realloc(s->pfd, cap * sizeof(*p));
        if (!p)
            return -1;   /* not watched this round; the timeout brings the next */
        s->pfd = p;
        s->cap_pfd = cap;
    }
    short ev = 0;
    if (events & SLIRP_POLL_IN)
        ev |= POLLIN;
    if (events & SLIRP_POLL_OUT)
        ev |= POLLOUT;
    if (events & SLIRP_POLL_PRI)
        ev |= POLLPRI;
    s->pfd[s->npfd] = (struct pollfd){ .fd = fd, .events = ev };
    return (int)s->npfd++;
}

static int cb_get_revents(int idx, void *opaque)
{
    struct net_slirp *s = opaque;
    if (idx < 2 || (unsigned)idx >= s->npfd)
        return 0;
    short r = s->pfd[idx].revents;
    int ev = 0;
    if (r & POLLIN)
        ev |= SLIRP_POLL_IN;
    if (r & POLLOUT)
        ev |= SLIRP_POLL_OUT;
    if (r & POLLPRI)
        ev |= SLIRP_POLL_PRI;
    if (r & POLLERR)
        ev |= SLIRP_POLL_ERR;
    if (r & POLLHUP)
        ev |= SLIRP_POLL_HUP;
    return ev;
}

/* ---- the thread ---- */

/* Milliseconds until the first armed timer, at most *timeout. */
static void timers_bound(struct net_slirp *s, uint32_t *timeout)
{
    int64_t now = now_ns() / 1000000;
    for (struct slirp_timer *t = s->timers; t; t = t->next) {
        if (t->expire_ms < 0)
            continue;
        int64_t d = t->expire_ms - now;
        if (d < 0)
            d = 0;
        if ((uint64_t)d < *timeout)
            *timeout = (uint32_t)d;
    }
}

static void timers_run(struct net_slirp *s)
{
    int64_t now = now_ns() / 1000000;
    /* A callback may re-arm or free timers: look again after each; the
     * bound keeps a timer re-armed in the past from spinning here. */
    for (int round = 0; round < 64; round++) {
        struct slirp_timer *t = s->timers;
        while (t && !(t->expire_ms >= 0 && t->expire_ms <= now))
            t = t->next;
        if (!t)
            return;
        t->expire_ms = -1;
        if (t->by_id)
            slirp_handle_timer(s->slirp, t->id, t->cb_opaque);
        else
            t->cb(t->cb_opaque);
    }
}

static void guest_frames(struct net_slirp *s)
{
    for (int i = 0; i < RX_BATCH; i++) {
        ssize_t n = recv(s->fd, s->buf, RX_BUF_LEN, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                log_err(COMP, "%s: user network: reading from the NIC: %s", s->name,
                        strerror(errno));
                s->peer_gone = true;
            }
            return;
        }
        if (n == 0) {
            s->peer_gone = true;   /* the NIC closed its end (SEQPACKET EOF) */
            return;
        }
        uint8_t *frame;
        size_t len;
        if (net_slirp_guest_frame(s->buf, (size_t)n, &frame, &len)) {
            /* The NIC checked the header (virtio_net_tx_check) and offers
             * no GSO here; anything else is dropped, not guessed at. */
            log_guest_once(COMP, "%s: user network: dropped a malformed %zd-byte packet (GSO, "
                           "unknown flags, a checksum field outside the frame, or short)",
                           s->name, n);
            atomic_fetch_add(&s->from_guest_dropped, 1);
            continue;
        }
        slirp_input(s->slirp, frame, (int)len);
    }
}

static void *slirp_thread_main(void *arg)
{
    struct net_slirp *s = arg;

    for (;;) {
        uint32_t timeout = UINT32_MAX;
        s->pfd[0] = (struct pollfd){ .fd = s->peer_gone ? -1 : s->fd, .events = POLLIN };
        s->pfd[1] = (struct pollfd){ .fd = s->stop_fd, .events = POLLIN };
        s->npfd = 2;
        pthread_mutex_lock(&slirp_global_lock);
        slirp_pollfds_fill(s->slirp, &timeout, cb_add_poll, s);
        timers_bound(s, &timeout);
        pthread_mutex_unlock(&slirp_global_lock);

        int r = poll(s->pfd, s->npfd, timeout > INT_MAX ? -1 : (int)timeout);
        int poll_errno = errno;
        if (r > 0 && s->pfd[1].revents)
            break;

        pthread_mutex_lock(&slirp_global_lock);
        if (r > 0 && (s->pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
            guest_frames(s);
        slirp_pollfds_poll(s->slirp, r < 0, cb_get_revents, s);
        timers_run(s);
        pthread_mutex_unlock(&slirp_global_lock);
        if (r < 0 && poll_errno != EINTR) {
            log_err(COMP, "%s: user network: poll: %s", s->name, strerror(poll_errno));
            usleep(1000);
        }
    }
    return NULL;
}

/* ---- life cycle ---- */

void net_slirp_destroy(struct net_slirp *s)
{
    if (!s)
        return;
    if (s->started) {
        uint64_t one = 1;
        if (write(s->stop_fd, &one, sizeof(one)) != sizeof(one))
            log_err(COMP, "%s: user network: cannot stop its thread: %s", s->name,
                    strerror(errno));
        pthread_join(s->thread, NULL);
    }
    if (s->slirp) {
        pthread_mutex_lock(&slirp_global_lock);
        slirp_cleanup(s->slirp);   /* closes slirp's sockets, frees its timers */
        pthread_mutex_unlock(&slirp_global_lock);
    }
    while (s->timers) {
        struct slirp_timer *t = s->timers;
        s->timers = t->next;
        free(t);
    }
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    if (s->fd >= 0)
        close(s->fd);
    free(s->pfd);
    free(s->buf);
    free(s);
}

static int add_hostfwds(struct net_slirp *s, const struct net_backend_config *c)
{
    for (unsigned i = 0; i < c->nr_hostfwd && i < NET_HOSTFWD_MAX; i++) {
        const struct net_hostfwd *f = &c->hostfwd[i];
        struct in_addr host = { .s_addr = htonl(f->host_addr) };
        struct in_addr guest = { .s_addr = htonl(f->guest_addr) };
        errno = 0;
        pthread_mutex_lock(&slirp_global_lock);
        int r = slirp_add_hostfwd(s->slirp, f->udp, host, f->host_port, guest, f->guest_port);
        int e = errno;
        pthread_mutex_unlock(&slirp_global_lock);
        if (r < 0) {
            char text[64];
            net_hostfwd_format(f, text, sizeof(text));
            if (!e)
                e = EADDRINUSE;
            log_err(COMP, "%s: --net user: hostfwd=%s: cannot listen on %s port %u: %s; pick a "
                    "free host port (ss -ltnu shows the used ones)", s->name, text,
                    f->udp ? "UDP" : "TCP", f->host_port, strerror(e));
            return -e;
        }
    }
    return 0;
}

int net_slirp_open(const struct net_backend_config *c, struct net_slirp **out, int *nic_fd)
{
    const char *name = c->name;
    struct net_slirp *s = calloc(1, sizeof(*s));
    int sv[2] = { -1, -1 };
    int err = -ENOMEM;

    *nic_fd = -1;
    if (!s)
        return -ENOMEM;
    snprintf(s->name, sizeof(s->name), "%s", name ? name : "virtio-net");
    s->fd = s->stop_fd = -1;
    atomic_init(&s->to_guest_dropped, 0);
    atomic_init(&s->from_guest_dropped, 0);
    s->cap_pfd = 32;
    s->pfd = calloc(s->cap_pfd, sizeof(*s->pfd));
    s->buf = malloc(RX_BUF_LEN);
    if (!s->pfd || !s->buf)
        goto fail;

    /* 1. the packet channel to the NIC */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        err = -errno;
        log_err(COMP, "%s: user network: socketpair: %s", s->name, strerror(errno));
        goto fail;
    }
    s->fd = sv[0];
    int flags = fcntl(s->fd, F_GETFL);
    if (flags < 0 || fcntl(s->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        err = -errno;
        log_err(COMP, "%s: user network: O_NONBLOCK: %s", s->name, strerror(errno));
        goto fail;
    }
    /* A unix socket's queue is charged to the sender: each side's send
     * buffer is what the other may fall behind by (best effort). */
    int sz = SOCKBUF_BYTES;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));

    /* 2. the stop signal */
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (s->stop_fd < 0) {
        err = -errno;
        log_err(COMP, "%s: user network: eventfd: %s", s->name, strerror(errno));
        goto fail;
    }

    /* 3. the slirp instance: QEMU's user network, IPv4, DHCP on */
    SlirpConfig cfg = {
        .version = 4,
        .restricted = 0,
        .in_enabled = true,
        .vnetwork = { htonl(NET_USER_NET) },
        .vnetmask = { htonl(NET_USER_MASK) },
        .vhost = { htonl(NET_USER_GATEWAY) },
        .in6_enabled = false,
        .vdhcp_start = { htonl(NET_USER_GUEST) },
        .vnameserver = { htonl(NET_USER_DNS) },
        .if_mtu = 0,   /* 1500 */
        .if_mru = 0,
        .disable_host_loopback = false,
        .enable_emu = false,
        .disable_dns = false,
        .disable_dhcp = false,
    };
    pthread_mutex_lock(&slirp_global_lock);
    s->slirp = slirp_new(&cfg, &slirp_callbacks, s);
    pthread_mutex_unlock(&slirp_global_lock);
    if (!s->slirp) {
        err = -ENOMEM;
        log_err(COMP, "%s: user network: libslirp refused to start (slirp_new)", s->name);
        goto fail;
    }

    /* 4. host port forwards */
    err = add_hostfwds(s, c);
    if (err)
        goto fail;

    /* 5. the thread */
    err = -pthread_create(&s->thread, NULL, slirp_thread_main, s);
    if (err) {
        log_err(COMP, "%s: user network: cannot start its thread: %s", s->name, strerror(-err));
        goto fail;
    }
    s->started = true;
    char tname[16];
    const char *suffix = s->name;
    if (!strncmp(suffix, "virtio-net", 10))
        suffix += 10;
    snprintf(tname, sizeof(tname), "slirp%.10s", suffix);
    pthread_setname_np(s->thread, tname);
    *nic_fd = sv[1];
    *out = s;
    return 0;
fail:
    if (sv[1] >= 0)
        close(sv[1]);
    net_slirp_destroy(s);
    return err;
}

void net_slirp_counters(struct net_slirp *s, uint64_t *to_guest_dropped,
                        uint64_t *from_guest_dropped)
{
    *to_guest_dropped = atomic_load(&s->to_guest_dropped);
    *from_guest_dropped = atomic_load(&s->from_guest_dropped);
}
