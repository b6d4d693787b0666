/* tap interfaces for virtio-net (Documentation/networking/tuntap.rst):
 * opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, so every packet read or
 * written carries the 12-byte virtio-net header (struct virtio_net_hdr_v1,
 * TUNSETVNETHDRSZ): checksum and segmentation offloads pass between the
 * guest and the host stack untouched; TUNSETOFFLOAD says which offloads the
 * guest accepted, so the kernel finishes the rest before handing a packet
 * over. The descriptor stays blocking: io_uring waits on it. */
#ifndef MINIVMM_NET_TAP_H
#define MINIVMM_NET_TAP_H
#include <stdint.h>

#include "devices/virtio/virtio_net_args.h"

#define NET_TAP_VNET_HDR_LEN 12   /* struct virtio_net_hdr_v1 */

/* Open the tap of a: tap=NAME attaches to NAME (created by the admin, e.g.
 * `ip tuntap add dev NAME mode tap user $USER vnet_hdr`, or by us when we
 * may); bridge=BR creates a tap, brings it up and adds it to BR. The
 * interface's name goes to ifname. Errors are logged naming the interface
 * and what to do. */
int net_tap_open(const struct virtio_net_arg *a, char ifname[VIRTIO_NET_IFNAME_MAX], int *fd);
/* The offloads the guest accepted (VIRTIO_NET_F_GUEST_* bits of features). */
int net_tap_set_offload(int fd, uint64_t features);
/* Close (a bridge=... tap disappears with its descriptor). */
void net_tap_close(int fd);

#endif
