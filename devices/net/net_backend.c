/* Packet backends: see devices/net/net_backend.h. */
#include "devices/net/net_backend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/net/net_slirp.h"
#include "devices/net/net_tap.h"

int net_backend_open(const struct net_backend_config *c, struct net_backend *b)
{
    int err;

    memset(b, 0, sizeof(*b));
    b->fd = -1;
    switch (c->kind) {
    case NET_BACKEND_TAP:
    case NET_BACKEND_BRIDGE:
        err = net_tap_open(c, b->ifname, &b->fd);
        if (err)
            return err;
        b->offloads = true;
        return 0;
    case NET_BACKEND_USER:
        err = net_slirp_open(c, &b->slirp, &b->fd);
        if (err) {
            b->slirp = NULL;
            return err;
        }
        snprintf(b->ifname, sizeof(b->ifname), "user network");
        return 0;
    }
    return -EINVAL;
}

int net_backend_set_offload(const struct net_backend *b, unsigned offloads)
{
    if (!b->offloads || b->fd < 0)
        return -EOPNOTSUPP;
    return net_tap_set_offload(b->fd, offloads);
}

void net_backend_close(struct net_backend *b)
{
    net_tap_close(b->fd);
    b->fd = -1;
    net_slirp_destroy(b->slirp);   /* the NIC's end is closed: nothing reads it any more */
    b->slirp = NULL;
}

void net_hostfwd_format(const struct net_hostfwd *f, char *buf, size_t len)
{
    uint32_t h = f->host_addr, g = f->guest_addr;
    snprintf(buf, len, "%s:%u.%u.%u.%u:%u-%u.%u.%u.%u:%u", f->udp ? "udp" : "tcp", h >> 24,
             (h >> 16) & 0xFF, (h >> 8) & 0xFF, h & 0xFF, f->host_port, g >> 24, (g >> 16) & 0xFF,
             (g >> 8) & 0xFF, g & 0xFF, f->guest_port);
}
