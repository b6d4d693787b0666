/* virtio-net (virtio 1.2 §5.1) over the virtio-pci transport, packets
 * between the guest and a packet backend (devices/net/net_backend.h: a
 * tap, or libslirp) on io_uring.
 *
 * Queues: 0 receive, 1 transmit (one pair: no VIRTIO_NET_F_MQ, no control
 * queue). Device configuration (struct virtio_net_config, §5.1.4),
 * read-only: 0x00 mac[6], 0x06 status (LINK_UP).
 * Features (§5.1.3): MAC, STATUS, CSUM and HOST_TSO4/6 (the guest may send
 * partially checksummed and TSO packets: the tap takes them as they are),
 * GUEST_CSUM and GUEST_TSO4/6 (the tap may hand over such packets:
 * TUNSETOFFLOAD follows what the guest accepted). On any other packet
 * descriptor (libslirp, tests) only MAC, STATUS and CSUM: its reader fills
 * in NEEDS_CSUM checksums and never sends partial or GSO packets.
 * Not offered: MRG_RXBUF (a packet fills one receive chain: with GUEST_TSO
 * the driver posts 64 KiB chains, §5.1.6.3.1), UFO, ECN, CTRL_VQ, MQ, MTU.
 *
 * Every packet carries the 12-byte struct virtio_net_hdr_v1 first, in the
 * guest's buffers and on the tap alike (IFF_VNET_HDR), so neither
 * direction copies or translates anything:
 *   transmit  a chain's readable part is checked (virtio_net_tx_check) and
 *             written to the tap with one WRITEV (guest memory as iovecs);
 *             a chain that fails the check is returned unsent
 *   receive   one READV at a time into the writable part of the next
 *             receive chain (one at a time keeps packet order); the used
 *             length is what the tap wrote; num_buffers is set to 1
 *             (§5.1.6.4: without MRG_RXBUF); a packet larger than the
 *             chain (it reaches a spill byte read after the guest's
 *             buffers) is dropped; the chain is reused if it has the
 *             header + 1514 bytes §5.1.6.3.1 asks for, else returned empty
 * A malformed chain structure (see devices/virtio/virtqueue.h) makes the device
 * NEEDS_RESET. */
#ifndef MINIVMM_VIRTIO_NET_H
#define MINIVMM_VIRTIO_NET_H
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio_net_args.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtqueue.h"

#define VIRTIO_NET_QUEUE_SIZE 256u
#define VIRTIO_NET_HDR_LEN    12u
#define VIRTIO_NET_MIN_RX_FRAME 1514u   /* §5.1.6.3.1: buffers of header + 1514 */
#define VIRTIO_NET_MAX_FRAME  (65535u + 14u + 4u)   /* a 64 KiB TSO packet, Ethernet + VLAN */

/* Check a transmit chain against the negotiated features: 0 to send it,
 * -EINVAL to drop it (writable buffers in it, shorter than the header and
 * an Ethernet header, longer than VIRTIO_NET_MAX_FRAME after the header,
 * flags other than NEEDS_CSUM, NEEDS_CSUM without VIRTIO_NET_F_CSUM or
 * pointing past the frame, a GSO type not negotiated, GSO without
 * NEEDS_CSUM or with gso_size 0; §5.1.6.2). Pure. */
int virtio_net_tx_check(const struct virtq_chain *c, uint64_t features);

struct virtio_net;

/* Open the backend of arg (virtio_net_arg_backend, net_backend_open: a tap,
 * or for VIRTIO_NET_USER a libslirp instance, closed with the NIC) and build
 * the NIC "virtio-net<index>"; its I/O thread is pinned to io_cpu when >= 0
 * (the slirp thread is not pinned). */
int virtio_net_create(const struct virtio_pci_vm *vm, const struct virtio_net_arg *arg,
                      unsigned index, int io_cpu, struct virtio_net **out);
/* The same over an open packet descriptor (a tap, or one end of a
 * SOCK_SEQPACKET socketpair: libslirp's, or a test's) that carries the
 * 12-byte header; owned by the NIC from here on (closed on failure too).
 * is_tap selects the offloads offered (see above) and TUNSETOFFLOAD. */
int virtio_net_create_fd(const struct virtio_pci_vm *vm, int fd, bool is_tap, const uint8_t mac[6],
                         unsigned index, int io_cpu, struct virtio_net **out);
int virtio_net_plug(struct virtio_net *n, struct pci_bus *bus, struct pci_device *parent,
                    uint8_t devfn, int (*intx_gsi)(void *ctx, const struct pci_device *d,
                                                   uint8_t pin), void *ctx);
/* As virtio_blk_unplug: for the in-process reset that re-creates the bus. */
void virtio_net_unplug(struct virtio_net *n);
void virtio_net_destroy(struct virtio_net *n);

struct virtio_pci *virtio_net_pci(struct virtio_net *n);
/* Packets dropped: too large for the guest's receive buffer / refused
 * transmit chains and tap write errors. */
void virtio_net_counters(struct virtio_net *n, uint64_t *rx_dropped, uint64_t *tx_dropped);

#endif
