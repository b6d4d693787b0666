/* tap set-up: see devices/net/net_tap.h. */
#include "devices/net/net_tap.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>

#include "vmm/log.h"

#define COMP "virtio-net"

static int tap_create(const char *name, char ifname[NET_IFNAME_MAX], int *out)
{
    struct ifreq ifr;
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), err;

    if (fd < 0) {
        err = -errno;
        log_err(COMP, "cannot open /dev/net/tun: %s; load the tun module (modprobe tun)%s",
                strerror(errno), errno == EACCES ? " and make /dev/net/tun accessible" : "");
        return err;
    }
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        err = -errno;
        if (errno == EPERM)
            log_err(COMP, "tap %s: not allowed to attach to or create it; create it for your user "
                    "(`ip tuntap add dev %s mode tap user $USER vnet_hdr`) or run with "
                    "CAP_NET_ADMIN", name[0] ? name : "(new)", name[0] ? name : "tapN");
        else if (errno == EBUSY)
            log_err(COMP, "tap %s: in use by another process (another VM?), or it was created "
                    "without vnet_hdr; use another tap", name);
        else
            log_err(COMP, "tap %s: TUNSETIFF: %s", name[0] ? name : "(new)", strerror(errno));
        close(fd);
        return err;
    }
    int hdr = NET_TAP_VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
        err = -errno;
        log_err(COMP, "tap %s: cannot set the virtio-net header size: %s", ifr.ifr_name,
                strerror(errno));
        close(fd);
        return err;
    }
    /* No offloads until the guest accepts some. */
    if (ioctl(fd, TUNSETOFFLOAD, 0) < 0)
        log_warn(COMP, "tap %s: TUNSETOFFLOAD: %s", ifr.ifr_name, strerror(errno));
    snprintf(ifname, NET_IFNAME_MAX, "%s", ifr.ifr_name);
    *out = fd;
    return 0;
}

/* bridge=BR: the new tap up, then enslaved (SIOCBRADDIF). */
static int tap_join_bridge(const char *tap, const char *bridge)
{
    struct ifreq ifr;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

    if (s < 0)
        return -errno;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
        (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)) {
        err = -errno;
        log_err(COMP, "tap %s: cannot bring it up: %s", tap, strerror(errno));
        goto out;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", bridge);
    ifr.ifr_ifindex = (int)if_nametoindex(tap);
    if (!ifr.ifr_ifindex || ioctl(s, SIOCBRADDIF, &ifr) < 0) {
        err = -errno;
        if (errno == ENODEV || errno == EINVAL || errno == EOPNOTSUPP)
            log_err(COMP, "--net bridge=%s: no such bridge; create it (`ip link add %s type "
                    "bridge`)", bridge, bridge);
        else
            log_err(COMP, "--net bridge=%s: cannot add tap %s to it: %s", bridge, tap,
                    strerror(errno));
    }
out:
    close(s);
    return err;
}

int net_tap_open(const struct net_backend_config *c, char ifname[NET_IFNAME_MAX], int *fd)
{
    int err = tap_create(c->kind == NET_BACKEND_TAP ? c->ifname : "mvtap%d", ifname, fd);
    if (err || c->kind == NET_BACKEND_TAP)
        return err;
    err = tap_join_bridge(ifname, c->ifname);
    if (err) {
        close(*fd);
        *fd = -1;
    }
    return err;
}

int net_tap_set_offload(int fd, unsigned offloads)
{
    unsigned off = 0;
    /* TSO without checksum offload means nothing to the tap (tun.c). */
    if (offloads & NET_OFFLOAD_CSUM) {
        off |= TUN_F_CSUM;
        if (offloads & NET_OFFLOAD_TSO4)
            off |= TUN_F_TSO4;
        if (offloads & NET_OFFLOAD_TSO6)
            off |= TUN_F_TSO6;
    }
    if (ioctl(fd, TUNSETOFFLOAD, off) < 0)
        return -errno;
    return 0;
}

void net_tap_close(int fd)
{
    if (fd >= 0)
        close(fd);
}
