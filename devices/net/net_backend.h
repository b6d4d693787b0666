/* Packet backends for any NIC model (virtio-net now): a tap interface
 * (devices/net/net_tap.h), a new tap on a bridge, or user-mode networking
 * on libslirp (devices/net/net_slirp.h), each producing one packet
 * descriptor with a tap's framing: every message read or written is one
 * Ethernet frame after the 12-byte struct virtio_net_hdr_v1 (Linux UAPI
 * <linux/virtio_net.h>; IFF_VNET_HDR on a tap). A NIC that is not virtio
 * puts the header on (a zeroed one: a whole, checksummed frame) and takes it
 * off.
 *
 * Done: opening and closing each kind; for a tap, the offloads the guest
 * side accepted (net_backend_set_offload -> TUNSETOFFLOAD), so the kernel
 * finishes partial checksums and segmentation the guest cannot take. The
 * descriptor of a tap is blocking (io_uring waits on it); the slirp one is
 * one end of a SOCK_SEQPACKET socketpair. Not done: multiqueue taps, vhost,
 * MTU setting, MAC filtering (the guest's MAC is its own business: slirp
 * learns it from the guest's frames).
 *
 * Errors are logged naming the interface, the bridge or the forward, and
 * what to do. */
#ifndef MINIVMM_NET_BACKEND_H
#define MINIVMM_NET_BACKEND_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_BACKEND_HDR_LEN 12u   /* struct virtio_net_hdr_v1 */
#define NET_IFNAME_MAX      16    /* IFNAMSIZ, with the NUL */
#define NET_HOSTFWD_MAX     16

/* The user network (IPv4, host byte order), as QEMU's. */
#define NET_USER_NET     0x0A000200u   /* 10.0.2.0 */
#define NET_USER_MASK    0xFFFFFF00u   /* /24 */
#define NET_USER_GATEWAY 0x0A000202u   /* 10.0.2.2: the host, and the router */
#define NET_USER_DNS     0x0A000203u   /* 10.0.2.3 */
#define NET_USER_GUEST   0x0A00020Fu   /* 10.0.2.15: the first DHCP address */

enum net_backend_kind { NET_BACKEND_TAP = 0, NET_BACKEND_BRIDGE, NET_BACKEND_USER };

/* Connections to host_addr:host_port go to guest_addr:guest_port. */
struct net_hostfwd {
    bool udp;
    uint32_t host_addr;    /* IPv4, host byte order; 0 = every interface */
    uint32_t guest_addr;   /* IPv4, host byte order, inside the user network */
    uint16_t host_port, guest_port;
};

struct net_backend_config {
    enum net_backend_kind kind;
    const char *name;                 /* the NIC, for messages and threads: "virtio-net0" */
    char ifname[NET_IFNAME_MAX];      /* TAP: the tap; BRIDGE: the bridge */
    struct net_hostfwd hostfwd[NET_HOSTFWD_MAX];   /* USER */
    unsigned nr_hostfwd;
};

struct net_slirp;

struct net_backend {
    int fd;                           /* the packets; -1 once closed */
    bool offloads;                    /* a tap: net_backend_set_offload works */
    char ifname[NET_IFNAME_MAX];      /* the tap's name, or "user network" */
    struct net_slirp *slirp;          /* USER: the stack behind fd */
};

/* Offloads the guest side accepts (virtio's GUEST_CSUM/TSO4/TSO6). */
#define NET_OFFLOAD_CSUM 1u
#define NET_OFFLOAD_TSO4 2u   /* with CSUM only */
#define NET_OFFLOAD_TSO6 4u   /* with CSUM only */

/* Open the backend of c into *b. 0 or -errno, logged. */
int net_backend_open(const struct net_backend_config *c, struct net_backend *b);
/* NET_OFFLOAD_* bits; -EOPNOTSUPP when the backend has no offloads. */
int net_backend_set_offload(const struct net_backend *b, unsigned offloads);
/* Close the descriptor (a bridge=... tap disappears with it), then stop the
 * slirp instance, if any. Safe on a closed backend. */
void net_backend_close(struct net_backend *b);

/* "tcp:0.0.0.0:3389-10.0.2.15:3389", for messages. */
void net_hostfwd_format(const struct net_hostfwd *f, char *buf, size_t len);

#endif
