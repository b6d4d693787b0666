/* User-mode networking for the NICs through libslirp (`--net user`), used
 * through devices/net/net_backend.h: no
 * tap, no privileges; the guest's packets go to a user-space TCP/IP stack
 * that talks to the world through ordinary host sockets.
 *
 * The guest sees QEMU's user network (NET_USER_* in net_backend.h):
 *   10.0.2.0/24   the guest's network
 *   10.0.2.2      gateway; the host's own loopback is reachable through it
 *   10.0.2.3      DNS (forwarded to the host's resolv.conf servers)
 *   10.0.2.15     the first DHCP address (DHCP is on)
 * IPv4 only (no IPv6 router advertisements). hostfwd= forwards listen on
 * the host from net_slirp_open on; a port that cannot be bound fails it.
 *
 * Shape: one thread per instance owns the Slirp state (libslirp is not
 * thread-safe) and waits in poll() on slirp's sockets, its timers, a stop
 * eventfd and one end of a SOCK_SEQPACKET socketpair whose other end is the
 * NIC's packet descriptor (virtio_net_create_fd with is_tap = false). Each
 * message on the pair is one Ethernet frame after the 12-byte struct
 * virtio_net_hdr_v1, as on a tap:
 *   guest -> slirp  NEEDS_CSUM gets its checksum filled in (the NIC offers
 *                   VIRTIO_NET_F_CSUM on a packet socket, nothing else);
 *                   a GSO packet, other flags or a frame shorter than an
 *                   Ethernet header is dropped; then slirp_input
 *   slirp -> guest  a zeroed header (fully checksummed, no GSO) before the
 *                   frame, sent without blocking; when the NIC's socket
 *                   buffer is full the frame is dropped (TCP resends) and
 *                   counted
 * libslirp keeps process-wide state (its clock and DNS cache), so all
 * instances take turns under one lock. */
#ifndef MINIVMM_NET_SLIRP_H
#define MINIVMM_NET_SLIRP_H
#include <stddef.h>
#include <stdint.h>

#include "devices/net/net_backend.h"

struct net_slirp;

/* Start user-mode networking for c (kind NET_BACKEND_USER; c->name for
 * messages and the thread, "virtio-net0"): the slirp instance, its hostfwd
 * listeners and thread. *nic_fd is the NIC's end of the socketpair (the
 * caller owns it). Errors are logged naming the forward and what to do. */
int net_slirp_open(const struct net_backend_config *c, struct net_slirp **out, int *nic_fd);
/* Stop the thread (joined), slirp_cleanup, close our end. NULL is fine. */
void net_slirp_destroy(struct net_slirp *s);
/* Frames dropped: toward the guest (its socket full) / from the guest
 * (malformed or GSO). */
void net_slirp_counters(struct net_slirp *s, uint64_t *to_guest_dropped,
                        uint64_t *from_guest_dropped);

/* Finish a NEEDS_CSUM frame (virtio 1.2 §5.1.6.2): the 16-bit field at
 * csum_start + csum_offset holds the pseudo-header sum; it becomes the
 * ones' complement of the sum of everything from csum_start to the end.
 * -EINVAL when the field is not inside the frame. Pure. */
int net_slirp_complete_csum(uint8_t *frame, size_t len, uint16_t csum_start,
                            uint16_t csum_offset);

/* One message from the NIC (header + frame, n bytes as received): the
 * frame's checksum completed if NEEDS_CSUM, and where the frame is. -EINVAL
 * (drop it) for a GSO type, flags other than NEEDS_CSUM, a checksum field
 * outside the frame, less than a header + an Ethernet header, or more than
 * NET_SLIRP_MAX_MSG. Pure; the guest controls every byte. */
#define NET_SLIRP_MAX_MSG (12u + 65535u + 14u + 4u)
int net_slirp_guest_frame(uint8_t *pkt, size_t n, uint8_t **frame, size_t *len);

#endif
