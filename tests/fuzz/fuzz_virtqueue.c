/* libFuzzer target: a hostile driver's split virtqueue (devices/virtio/virtqueue.c).
 *
 * Input: byte 0 the queue size (1 << (b % 9): 1-256), byte 1 bit 0
 * INDIRECT_DESC, bit 1 EVENT_IDX, bit 2 NO_INTERRUPT; bytes 2-3 where the
 * device's last available index starts; the rest is copied into guest RAM
 * from address 0: the available ring at 0x0, the descriptor table right
 * after it (16-byte aligned), and anything the descriptors point at (indirect tables, buffers)
 * in the first 64 KiB; the used ring is at 0x20000. RAM is 1 MiB, so
 * addresses past it must be refused.
 *
 * The device pops chains until none is left or the queue breaks, returns
 * each through the used ring, and re-enables notifications, checking on
 * every chain: segments lie in RAM (their host pointer is gm_ptr's), the
 * readable ones come first, lengths add up, no more segments than the
 * queue size; and the copy/iovec helpers stay inside the chain. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "devices/virtio/virtqueue.h"
#include "fuzz_ring.h"
#include "vmm/gm.h"



static void check_chain(const struct virtq *vq, const struct virtq_chain *c)
{
    uint64_t rd = 0, wr = 0;
    check(c->head < vq->size);
    check(c->nr >= 1 && c->nr <= vq->size && c->nr <= c->cap);
    check(c->nr_readable <= c->nr);
    for (unsigned i = 0; i < c->nr; i++) {
        const struct virtq_seg *s = &c->seg[i];
        check(s->len > 0);
        check(s->hva == gm_ptr(&fuzz_gm, s->gpa, s->len));
        check(s->write == (i >= c->nr_readable));
        if (s->write)
            wr += s->len;
        else
            rd += s->len;
    }
    check(rd == c->readable_len && wr == c->writable_len);
    check(rd + wr <= UINT32_MAX);

    uint8_t tmp[64];
    uint32_t n = c->readable_len < sizeof(tmp) ? c->readable_len : sizeof(tmp);
    check(virtq_chain_read(c, c->readable_len - n, tmp, n) == 0);
    check(virtq_chain_read(c, c->readable_len, tmp, 1) != 0);
    if (c->writable_len) {
        uint8_t *last = virtq_chain_writable_byte(c, c->writable_len - 1);
        check(last != NULL);
        const struct virtq_seg *ls = &c->seg[c->nr - 1];
        check(last == (uint8_t *)ls->hva + ls->len - 1);
        check(virtq_chain_write(c, c->writable_len - 1, "\0", 1) == 0);
    }
    check(virtq_chain_writable_byte(c, c->writable_len) == NULL);
    struct iovec iov[256];
    int k = virtq_chain_iov(c, false, 0, c->readable_len, iov, 256);
    check(k == (int)c->nr_readable);
}

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint16_t qsize = (uint16_t)(1u << (data[0] % 9));
    bool indirect = data[1] & 1, event_idx = data[1] & 2;
    uint16_t start = (uint16_t)(data[2] | data[3] << 8);
    data += 4;
    size -= 4;

    fuzz_ring_load(data, size);

    struct virtq vq = { .name = "fuzz" };
    fuzz_ring_start(&vq, qsize, indirect, event_idx);
    vq.last_avail = start;
    struct virtq_chain c = fuzz_ring_chain();
    unsigned popped = 0;
    for (unsigned i = 0; i < 2u * qsize + 2; i++) {
        int r = virtq_pop_chain(&vq, &c);
        if (r == 0) {
            if (!virtq_notify_enable(&vq))
                break;
            continue;
        }
        if (r < 0) {
            check(vq.broken);
            check(virtq_pop_chain(&vq, &c) == -EIO);
            break;
        }
        check(r == 1);
        check_chain(&vq, &c);
        virtq_push_used(&vq, c.head, c.writable_len);
        popped++;
        if (popped % 3 == 0)
            virtq_publish_used(&vq);
    }
    virtq_publish_used(&vq);
    virtq_stop(&vq);
    return 0;
}
