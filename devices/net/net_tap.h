/* tap interfaces for the NICs (Documentation/networking/tuntap.rst), used
 * through devices/net/net_backend.h:
 * opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, so every packet read or
 * written carries the 12-byte virtio-net header (struct virtio_net_hdr_v1,
 * TUNSETVNETHDRSZ): checksum and segmentation offloads pass between the
 * guest and the host stack untouched; TUNSETOFFLOAD says which offloads the
 * guest accepted, so the kernel finishes the rest before handing a packet
 * over. The descriptor stays blocking: io_uring waits on it. */
#ifndef MINIVMM_NET_TAP_H
#define MINIVMM_NET_TAP_H
#include <stdint.h>

#include "devices/net/net_backend.h"

#define NET_TAP_VNET_HDR_LEN NET_BACKEND_HDR_LEN   /* struct virtio_net_hdr_v1 */

/* Open the tap of c: NET_BACKEND_TAP attaches to c->ifname (created by the
 * admin, e.g. `ip tuntap add dev NAME mode tap user $USER vnet_hdr`, or by
 * us when we may); NET_BACKEND_BRIDGE creates a tap, brings it up and adds
 * it to the bridge c->ifname. The interface's name goes to ifname. Errors
 * are logged naming the interface and what to do. */
int net_tap_open(const struct net_backend_config *c, char ifname[NET_IFNAME_MAX], int *fd);
/* The offloads the guest accepted (NET_OFFLOAD_* bits). */
int net_tap_set_offload(int fd, unsigned offloads);
/* Close (a bridge=... tap disappears with its descriptor). */
void net_tap_close(int fd);

#endif
