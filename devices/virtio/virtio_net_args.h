/* The --net flag, parsed here so vmm/config.c only forwards it:
 *
 *   --net tap=NAME[,mac=52:54:00:12:34:56]     an existing tap interface
 *   --net bridge=BR[,mac=...]                  a new tap added to bridge BR
 *                                              (needs CAP_NET_ADMIN)
 *   --net user[,mac=...][,hostfwd=FWD]...      user-mode networking through
 *                                              libslirp (devices/net/net_slirp.h)
 *   (repeatable)
 *
 * hostfwd= is QEMU's syntax, repeatable (VIRTIO_NET_HOSTFWD_MAX per NIC):
 *   [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT
 * an empty protocol is tcp, an empty HOSTADDR every host interface
 * (0.0.0.0), an empty GUESTADDR the guest's DHCP address 10.0.2.15; e.g.
 * hostfwd=tcp::3389-:3389 (RDP), hostfwd=udp:127.0.0.1:5353-:53.
 * The user network is fixed, as QEMU's: 10.0.2.0/24, gateway 10.0.2.2,
 * DNS 10.0.2.3, DHCP from 10.0.2.15.
 *
 * Without mac= the MAC is 52:54:00 (the locally administered prefix QEMU
 * uses) plus three bytes derived from the interface name ("userN" for the
 * N-th --net), so a guest sees the same card every boot. */
#ifndef MINIVMM_VIRTIO_NET_ARGS_H
#define MINIVMM_VIRTIO_NET_ARGS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/net/net_backend.h"

#define VIRTIO_NET_ARGS_MAX 4
#define VIRTIO_NET_IFNAME_MAX NET_IFNAME_MAX     /* IFNAMSIZ, with the NUL */

#define VIRTIO_NET_HOSTFWD_MAX NET_HOSTFWD_MAX

/* The user network (IPv4, host byte order): the backend's. */
#define VIRTIO_NET_USER_NET     NET_USER_NET       /* 10.0.2.0 */
#define VIRTIO_NET_USER_MASK    NET_USER_MASK      /* /24 */
#define VIRTIO_NET_USER_GATEWAY NET_USER_GATEWAY   /* 10.0.2.2: the host, and the router */
#define VIRTIO_NET_USER_DNS     NET_USER_DNS       /* 10.0.2.3 */
#define VIRTIO_NET_USER_GUEST   NET_USER_GUEST     /* 10.0.2.15: the first DHCP address */

enum virtio_net_backend { VIRTIO_NET_TAP = 0, VIRTIO_NET_BRIDGE, VIRTIO_NET_USER };

/* One hostfwd= is a struct net_hostfwd (devices/net/net_backend.h). */
struct virtio_net_arg {
    enum virtio_net_backend backend;
    char ifname[VIRTIO_NET_IFNAME_MAX];   /* the tap, or the bridge; "user"/"userN" */
    uint8_t mac[6];
    bool mac_set;
    struct net_hostfwd hostfwd[VIRTIO_NET_HOSTFWD_MAX];   /* user only */
    unsigned nr_hostfwd;
};

struct virtio_net_args {
    struct virtio_net_arg nic[VIRTIO_NET_ARGS_MAX];
    unsigned nr;
};

extern const char virtio_net_args_usage[];

/* One --net value into *out. 0, or -EINVAL with a message naming the flag,
 * the value and what to do in err. */
int virtio_net_arg_parse(const char *value, struct virtio_net_arg *out, char *err, unsigned errlen);
/* One hostfwd= value (without "hostfwd=") into *out. 0, or -EINVAL with a
 * message naming the value and the expected form in err. */
int virtio_net_hostfwd_parse(const char *value, size_t len, struct net_hostfwd *out,
                             char *err, unsigned errlen);
/* "tcp:0.0.0.0:3389-10.0.2.15:3389", for messages. */
void virtio_net_hostfwd_format(const struct net_hostfwd *f, char *buf, size_t len);
/* The MAC a NIC gets: mac= or the derived one. */
void virtio_net_arg_mac(const struct virtio_net_arg *a, uint8_t mac[6]);
/* What the packet backend (devices/net/net_backend.h) is to open for a;
 * name ("virtio-net0") must outlive *out. */
void virtio_net_arg_backend(const struct virtio_net_arg *a, const char *name,
                            struct net_backend_config *out);

bool virtio_net_args_flag(const char *name, size_t namelen, bool *takes_value);
int virtio_net_args_apply(struct virtio_net_args *a, const char *name, size_t namelen,
                          const char *value, char *err, unsigned errlen);

struct pcidev_host;
struct pcidev_list;
/* Create a virtio-net device for each --net, in order (its backend opened:
 * a tap, a bridge port, libslirp), and add it to the machine's PCI devices:
 * a NIC on the root bus, not in the boot order. Errors name the backend;
 * devices already added stay in the list for the caller to destroy. */
int virtio_net_attach(const struct pcidev_host *h, const struct virtio_net_args *a,
                      struct pcidev_list *l);

#endif
