/* libFuzzer target: hostile messages from the NIC to the user network
 * (devices/net/net_slirp.c). The input is one message as it arrives on the
 * socketpair: a 12-byte virtio-net header and a frame, every byte the
 * guest's. net_slirp_guest_frame must refuse what slirp must not see (GSO,
 * unknown flags, a checksum field outside the frame, too short or long)
 * and, for what it accepts, hand over a frame inside the message, at least
 * an Ethernet header long, with a completed checksum: the field held the
 * pseudo-header sum, so that sum plus everything from csum_start to the
 * end must now fold to 0xFFFF (RFC 1071; checked for an even csum_offset,
 * as every real protocol has). Only the field changes. Nothing may be read
 * or written outside the message (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_net.h>

#include "devices/net/net_slirp.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > NET_SLIRP_MAX_MSG + 16)
        return 0;
    /* An exact-size copy, so ASan sees any access past the message. */
    uint8_t *pkt = malloc(size ? size : 1);
    if (!pkt)
        return 0;
    memcpy(pkt, data, size);
    uint8_t *frame = NULL;
    size_t len = 0;
    int r = net_slirp_guest_frame(pkt, size, &frame, &len);
    if (r == 0) {
        struct virtio_net_hdr_v1 h;
        memcpy(&h, data, sizeof(h));
        check(size <= NET_SLIRP_MAX_MSG);
        check(frame == pkt + 12 && len == size - 12 && len >= 14);
        check(h.gso_type == VIRTIO_NET_HDR_GSO_NONE);
        check(!(h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM));
        if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
            size_t field = (size_t)h.csum_start + h.csum_offset;
            check(field + 2 <= len);
            /* the pseudo-header sum the driver left in the field */
            uint32_t sum = (uint32_t)data[12 + field] << 8 | data[12 + field + 1];
            size_t i = h.csum_start;
            for (; i + 1 < len; i += 2)
                sum += (uint32_t)frame[i] << 8 | frame[i + 1];
            if (i < len)
                sum += (uint32_t)frame[i] << 8;
            while (sum >> 16)
                sum = (sum & 0xFFFF) + (sum >> 16);
            if (!(h.csum_offset & 1))
                check(sum == 0xFFFF);
            /* Only the checksum field changed. */
            for (size_t k = 0; k < len; k++)
                if (k != field && k != field + 1)
                    check(frame[k] == data[12 + k]);
        } else {
            check(!memcmp(frame, data + 12, len));
        }
    } else {
        check(r < 0);
    }
    free(pkt);
    return 0;
}
