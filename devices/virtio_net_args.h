/* The --net flag, parsed here so vmm/config.c only forwards it:
 *
 *   --net tap=NAME[,mac=52:54:00:12:34:56]     an existing tap interface
 *   --net bridge=BR[,mac=...]                  a new tap added to bridge BR
 *                                              (needs CAP_NET_ADMIN)
 *   (repeatable; user-mode networking through libslirp is not there yet)
 *
 * Without mac= the MAC is 52:54:00 (the locally administered prefix QEMU
 * uses) plus three bytes derived from the interface name, so a guest sees
 * the same card every boot. */
#ifndef MINIVMM_VIRTIO_NET_ARGS_H
#define MINIVMM_VIRTIO_NET_ARGS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VIRTIO_NET_ARGS_MAX 4
#define VIRTIO_NET_IFNAME_MAX 16      /* IFNAMSIZ, with the NUL */

enum virtio_net_backend { VIRTIO_NET_TAP = 0, VIRTIO_NET_BRIDGE };

struct virtio_net_arg {
    enum virtio_net_backend backend;
    char ifname[VIRTIO_NET_IFNAME_MAX];   /* the tap, or the bridge */
    uint8_t mac[6];
    bool mac_set;
};

struct virtio_net_args {
    struct virtio_net_arg nic[VIRTIO_NET_ARGS_MAX];
    unsigned nr;
};

extern const char virtio_net_args_usage[];

/* One --net value into *out. 0, or -EINVAL with a message naming the flag,
 * the value and what to do in err. */
int virtio_net_arg_parse(const char *value, struct virtio_net_arg *out, char *err, unsigned errlen);
/* The MAC a NIC gets: mac= or the derived one. */
void virtio_net_arg_mac(const struct virtio_net_arg *a, uint8_t mac[6]);

bool virtio_net_args_flag(const char *name, size_t namelen, bool *takes_value);
int virtio_net_args_apply(struct virtio_net_args *a, const char *name, size_t namelen,
                          const char *value, char *err, unsigned errlen);

#endif
