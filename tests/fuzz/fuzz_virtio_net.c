/* libFuzzer target: hostile virtio-net transmit chains. A fuzzed split
 * ring in guest RAM (as in fuzz_virtqueue.c) yields chains; each is judged
 * by virtio_net_tx_check against fuzzed negotiated features, and what it
 * lets through to the tap must be a well-formed packet for those features:
 * readable only, header plus at least an Ethernet header and at most
 * VIRTIO_NET_MAX_FRAME, checksum request inside the frame and negotiated,
 * segmentation only of a negotiated kind with a size and a checksum.
 *
 * Input: byte 0 queue size (1 << (b % 9)), byte 1 bit 0 INDIRECT_DESC,
 * bytes 2-3 the driver's features (bit i of these 16 = feature bit
 * {0 CSUM, 11 HOST_TSO4, 12 HOST_TSO6, 13 HOST_ECN, 14 HOST_UFO}[i % 5]),
 * then guest RAM from address 0 (available ring, descriptors right after
 * it, buffers anywhere in the first 64 KiB; the used ring at 0x20000). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_net.h>

#include "devices/virtio/virtio_net.h"
#include "devices/virtio/virtqueue.h"
#include "fuzz_ring.h"
#include "vmm/gm.h"

static void check_accepted(const struct virtq_chain *c, uint64_t f)
{
    struct virtio_net_hdr_v1 h;
    check(c->writable_len == 0);
    check(c->readable_len >= VIRTIO_NET_HDR_LEN + 14);
    check(c->readable_len - VIRTIO_NET_HDR_LEN <= VIRTIO_NET_MAX_FRAME);
    check(virtq_chain_read(c, 0, &h, sizeof(h)) == 0);
    uint32_t frame = c->readable_len - VIRTIO_NET_HDR_LEN;
    check((h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) == 0);
    if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        check(f & (1ULL << VIRTIO_NET_F_CSUM));
        check((uint32_t)h.csum_start + h.csum_offset + 2 <= frame);
    }
    switch (h.gso_type) {
    case VIRTIO_NET_HDR_GSO_NONE:
        break;
    case VIRTIO_NET_HDR_GSO_TCPV4:
        check(f & (1ULL << VIRTIO_NET_F_HOST_TSO4));
        check(h.gso_size && (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM));
        break;
    case VIRTIO_NET_HDR_GSO_TCPV6:
        check(f & (1ULL << VIRTIO_NET_F_HOST_TSO6));
        check(h.gso_size && (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM));
        break;
    default:
        abort();
    }
}

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned bits[5] = { VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_TSO4,
                                      VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_HOST_ECN,
                                      VIRTIO_NET_F_HOST_UFO };
    if (size < 4)
        return 0;
    uint16_t qsize = (uint16_t)(1u << (data[0] % 9));
    bool indirect = data[1] & 1;
    uint16_t fb = (uint16_t)(data[2] | data[3] << 8);
    uint64_t f = 0;
    for (unsigned i = 0; i < 16; i++)
        if (fb & (1u << i))
            f |= 1ULL << bits[i % 5];
    data += 4;
    size -= 4;

    fuzz_ring_load(data, size);

    struct virtq vq = { .name = "fuzz-net" };
    fuzz_ring_start(&vq, qsize, indirect, false);
    struct virtq_chain c = fuzz_ring_chain();
    for (unsigned i = 0; i < qsize; i++) {
        int r = virtq_pop_chain(&vq, &c);
        if (r <= 0)
            break;
        if (virtio_net_tx_check(&c, f) == 0)
            check_accepted(&c, f);
        virtq_push_used(&vq, c.head, 0);
    }
    virtq_publish_used(&vq);
    virtq_stop(&vq);
    return 0;
}
