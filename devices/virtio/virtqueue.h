/* Split virtqueues (virtio 1.2 §2.7): the device side of the three rings a
 * driver sets up in guest memory.
 *
 *   descriptor table  16 * size bytes, 16-byte aligned (§2.7.5)
 *                     +0 addr (le64) +8 len (le32) +12 flags (le16) +14 next (le16)
 *                     flags: NEXT 1, WRITE 2 (device-writable), INDIRECT 4
 *   available ring    6 + 2 * size bytes, 2-byte aligned (§2.7.6)
 *                     +0 flags (NO_INTERRUPT 1) +2 idx +4 ring[size]
 *                     +4+2*size used_event (with VIRTIO_RING_F_EVENT_IDX)
 *   used ring         6 + 8 * size bytes, 4-byte aligned (§2.7.8)
 *                     +0 flags (NO_NOTIFY 1) +2 idx +4 ring[size] of {id le32, len le32}
 *                     +4+8*size avail_event (with VIRTIO_RING_F_EVENT_IDX)
 *
 * The guest runs concurrently and is hostile. Every ring is checked to lie
 * wholly in RAM (gm_ptr) and to be aligned when the queue starts, and the
 * host pointers are kept (guest RAM never moves). Indices are read with
 * atomic loads; each descriptor is copied once before it is looked at, so
 * the guest changing it underneath cannot make a checked value differ from
 * the used one.
 *
 * virtq_pop_chain is the one chain walker: it turns the next available
 * chain into a list of (gpa, len, write) segments and refuses, marking the
 * queue broken (the transport then sets DEVICE_NEEDS_RESET, §2.1.2):
 *   - the available index moving more than the queue size ahead (§2.7.13.3)
 *   - a head or next index >= the table's size
 *   - a chain of more descriptors than the queue size (§2.7.5.3.1), which
 *     is also how loops are caught: any loop exceeds it
 *   - a buffer of length 0 or not wholly inside RAM
 *   - a device-readable buffer after a device-writable one (§2.7.4.2)
 *   - a chain whose lengths add up past 4 GiB - 1 (§2.7.5: under 2^32 bytes;
 *     the used length is 32 bits)
 *   - INDIRECT without VIRTIO_RING_F_INDIRECT_DESC, INDIRECT together with
 *     NEXT, INDIRECT inside an indirect table, an indirect table whose
 *     length is 0 or not a multiple of 16, or not in RAM (§2.7.5.3)
 * Zero or more direct descriptors followed by one indirect descriptor is
 * accepted (§2.7.5.3.2: the device MUST handle it); the WRITE flag of the
 * indirect descriptor itself is ignored (same section).
 *
 * Memory ordering (§2.7.13, §2.7.7, §2.7.10): the available index is read,
 * then an acquire fence orders the reads of ring entries and descriptors
 * after it; used elements are written, a release fence, then the used
 * index; before deciding whether to interrupt (or, re-enabling
 * notifications, whether more work arrived) a full fence orders our store
 * against the driver's flags/event index, the pattern the driver mirrors.
 *
 * Not thread-safe: one thread services a queue at a time (the transport
 * starts and stops it while that thread is quiescent). */
#ifndef MINIVMM_VIRTQUEUE_H
#define MINIVMM_VIRTQUEUE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct gm;

#define VIRTQ_MAX_SIZE 32768u   /* §2.7: the largest queue size */

/* One buffer of a chain; hva is gm_ptr(gpa, len), checked. */
struct virtq_seg {
    uint64_t gpa;
    void *hva;
    uint32_t len;
    bool write;             /* device-writable */
};

/* A popped chain: readable segments first (nr_readable of them), then the
 * writable ones. The caller owns seg[] (cap entries; a chain needs at most
 * the queue size). */
struct virtq_chain {
    uint16_t head;          /* descriptor index: the id returned in the used ring */
    unsigned nr, nr_readable;
    uint32_t readable_len, writable_len;
    struct virtq_seg *seg;
    unsigned cap;
};

struct virtq {
    const char *name;       /* for messages, e.g. "virtio-blk0 queue 1" */
    const struct gm *gm;
    uint16_t size;
    bool indirect;          /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
    bool event_idx;         /* VIRTIO_RING_F_EVENT_IDX negotiated */
    bool started;
    bool broken;            /* refused a chain: needs a device reset */
    /* host views of the rings, valid while started */
    uint8_t *desc;
    uint8_t *avail;
    uint8_t *used;
    uint16_t last_avail;    /* next available entry to take */
    uint16_t used_idx;      /* our copy of used->idx, ahead while unpublished */
    uint16_t published;     /* used idx at the last virtq_publish_used */
    bool published_valid;
};

/* Start serving a queue the driver configured: size a power of two in
 * [1, max_size], the rings aligned and wholly in RAM. -EINVAL (size) or
 * -EFAULT (rings), logged once naming the queue and the value. */
int virtq_start(struct virtq *vq, const struct gm *gm, uint16_t size, uint16_t max_size,
                uint64_t desc, uint64_t avail, uint64_t used, bool indirect, bool event_idx);
/* Forget the rings (device reset). */
void virtq_stop(struct virtq *vq);

/* Take the next available chain: 1 with *c filled, 0 when none is
 * available, -EIO when the queue is (or now becomes) broken. */
int virtq_pop_chain(struct virtq *vq, struct virtq_chain *c);
/* Put the chain back (e.g. no room to start it now): the next pop returns
 * it again. Only right after a successful pop of that chain. */
void virtq_unpop(struct virtq *vq);
/* Available chains not yet popped (0 when broken or stopped). */
unsigned virtq_avail_count(struct virtq *vq);

/* Return a chain: len is the number of bytes written into its writable
 * buffers. Not visible to the driver until virtq_publish_used. */
void virtq_push_used(struct virtq *vq, uint16_t head, uint32_t len);
/* Publish the pushed elements (used->idx). Returns true when the driver
 * asked to be interrupted for them (no NO_INTERRUPT flag; with EVENT_IDX,
 * the used index passed used_event, §2.7.10). */
bool virtq_publish_used(struct virtq *vq);

/* Notification suppression (§2.7.10): while the device is draining a queue
 * it tells the driver not to notify; before going idle it re-enables
 * notifications and must look again: true means more chains arrived. */
void virtq_notify_disable(struct virtq *vq);
bool virtq_notify_enable(struct virtq *vq);

/* Copy bytes of the chain's readable part from byte offset off (across
 * segments); -EFAULT when the readable part is shorter. */
int virtq_chain_read(const struct virtq_chain *c, uint32_t off, void *dst, uint32_t len);
/* Copy into the writable part at byte offset off; -EFAULT when shorter. */
int virtq_chain_write(const struct virtq_chain *c, uint32_t off, const void *src, uint32_t len);
/* Describe [off, off+len) of the readable (write false) or writable part
 * as iovecs; returns how many were used, -EFAULT when the part is shorter,
 * -E2BIG when more than max are needed. */
int virtq_chain_iov(const struct virtq_chain *c, bool write, uint32_t off, uint32_t len,
                    struct iovec *iov, unsigned max);
/* Host address of the byte at offset off of the writable part, NULL if
 * none (the status byte of a request is the last writable byte). */
uint8_t *virtq_chain_writable_byte(const struct virtq_chain *c, uint32_t off);

#endif
