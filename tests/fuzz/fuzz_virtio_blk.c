/* libFuzzer target: hostile virtio-blk requests. A fuzzed split ring in
 * guest RAM (as in fuzz_virtqueue.c) yields chains; each is checked as a
 * request by virtio_blk_parse against fuzzed disk limits, and what the
 * parser accepts must be doable: the status byte is the chain's last
 * writable byte, data lies inside the chain part it belongs to, whole
 * sectors within the disk, ranges within their limits; the iovecs the I/O
 * path builds for the data cover exactly data_len bytes.
 *
 * Input: byte 0 queue size (1 << (b % 9)), byte 1 features (bit 0
 * INDIRECT_DESC), byte 2 bit 0 read-only, bit 1 discard/write-zeroes
 * offered, bytes 3-4 capacity in sectors (little-endian, +1), then guest
 * RAM from address 0 (available ring 0x0, descriptors right after it, buffers
 * anywhere in the first 64 KiB; the used ring at 0x20000). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <linux/virtio_blk.h>

#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtqueue.h"
#include "fuzz_ring.h"
#include "vmm/gm.h"

static struct iovec iov[256];

static void check_request(const struct virtq_chain *c, const struct virtio_blk_limits *l,
                          const struct virtio_blk_req *r, int st)
{
    if (st < 0) {
        check(st == -EIO && c->writable_len == 0);
        return;
    }
    const struct virtq_seg *last = &c->seg[c->nr - 1];
    check(last->write && r->status == (uint8_t *)last->hva + last->len - 1);
    if (st != VIRTIO_BLK_S_OK) {
        check(st == VIRTIO_BLK_S_IOERR || st == VIRTIO_BLK_S_UNSUPP);
        return;
    }
    check(c->readable_len >= 16);
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
        bool in = r->type == VIRTIO_BLK_T_IN;
        check(!in || r->data_off == 0);
        check(in || !l->readonly);
        check(r->data_len % VIRTIO_BLK_SECTOR == 0);
        check(r->sector <= l->capacity &&
              r->data_len / VIRTIO_BLK_SECTOR <= l->capacity - r->sector);
        uint32_t part = in ? c->writable_len - 1 : c->readable_len;
        check(r->data_off <= part && r->data_len <= part - r->data_off);
        if (r->data_len) {
            int n = virtq_chain_iov(c, in, r->data_off, r->data_len, iov, 256);
            check(n > 0);
            uint64_t sum = 0;
            for (int i = 0; i < n; i++)
                sum += iov[i].iov_len;
            check(sum == r->data_len);
        }
        break;
    }
    case VIRTIO_BLK_T_FLUSH:
        break;
    case VIRTIO_BLK_T_GET_ID:
        check(r->data_len == c->writable_len - 1);
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
        bool discard = r->type == VIRTIO_BLK_T_DISCARD;
        check(!l->readonly && (discard ? l->discard : l->write_zeroes));
        check(r->nr_ranges >= 1 && r->nr_ranges <= VIRTIO_BLK_MAX_RANGES);
        check(r->nr_ranges <= (discard ? l->max_discard_seg : l->max_zeroes_seg));
        for (unsigned i = 0; i < r->nr_ranges; i++) {
            const struct virtio_blk_range *g = &r->ranges[i];
            check(g->nr_sectors >= 1);
            check(g->nr_sectors <= (discard ? l->max_discard_sectors : l->max_zeroes_sectors));
            check(g->sector <= l->capacity && g->nr_sectors <= l->capacity - g->sector);
            check(discard ? g->flags == 0 : (g->flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) == 0);
        }
        break;
    }
    default:
        abort();   /* an unknown type was accepted */
    }
}

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    uint16_t qsize = (uint16_t)(1u << (data[0] % 9));
    bool indirect = data[1] & 1;
    struct virtio_blk_limits l = {
        .capacity = (uint64_t)(data[3] | data[4] << 8) + 1,
        .readonly = data[2] & 1,
        .discard = data[2] & 2, .write_zeroes = data[2] & 2,
        .max_discard_sectors = 64, .max_discard_seg = 4, .discard_align = 1,
        .max_zeroes_sectors = 32, .max_zeroes_seg = 1,
    };
    data += 5;
    size -= 5;

    fuzz_ring_load(data, size);

    struct virtq vq = { .name = "fuzz-blk" };
    fuzz_ring_start(&vq, qsize, indirect, false);
    struct virtq_chain c = fuzz_ring_chain();
    for (unsigned i = 0; i < qsize; i++) {
        int r = virtq_pop_chain(&vq, &c);
        if (r <= 0)
            break;
        struct virtio_blk_req req;
        int st = virtio_blk_parse(&c, &l, &req);
        check_request(&c, &l, &req, st);
        if (st >= 0) {
            *req.status = (uint8_t)(st == VIRTIO_BLK_S_OK ? 0 : st);
            virtq_push_used(&vq, c.head, 1);
        }
    }
    virtq_publish_used(&vq);
    virtq_stop(&vq);
    return 0;
}
