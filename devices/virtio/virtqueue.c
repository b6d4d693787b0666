/* Split virtqueue: see devices/virtio/virtqueue.h for the ring layout, the checks
 * and the memory ordering. */
#include "devices/virtio/virtqueue.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <linux/virtio_ring.h>

#include "vmm/gm.h"
#include "vmm/log.h"

#define COMP "virtqueue"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "virtio 1.x rings are little-endian; this file reads them natively"
#endif

/* Offsets inside the rings (§2.7.6, §2.7.8). */
#define AVAIL_FLAGS   0
#define AVAIL_IDX     2
#define AVAIL_RING    4
#define USED_FLAGS    0
#define USED_IDX      2
#define USED_RING     4
#define DESC_SIZE     16u
#define USED_ELEM_SIZE 8u

static inline uint16_t ld16(const uint8_t *p)
{
    return __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_RELAXED);
}

static inline void st16(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)(void *)p, v, __ATOMIC_RELAXED);
}

static inline void st32(uint8_t *p, uint32_t v)
{
    __atomic_store_n((uint32_t *)(void *)p, v, __ATOMIC_RELAXED);
}

static inline uint16_t avail_idx(const struct virtq *vq)
{
    return ld16(vq->avail + AVAIL_IDX);
}

static inline uint16_t *used_event_ptr(const struct virtq *vq)
{
    return (uint16_t *)(void *)(vq->avail + AVAIL_RING + 2u * vq->size);
}

static inline uint8_t *avail_event_ptr(const struct virtq *vq)
{
    return vq->used + USED_RING + USED_ELEM_SIZE * vq->size;
}

int virtq_start(struct virtq *vq, const struct gm *gm, uint16_t size, uint16_t max_size,
                uint64_t desc, uint64_t avail, uint64_t used, bool indirect, bool event_idx)
{
    const char *name = vq->name ? vq->name : "virtqueue";

    virtq_stop(vq);
    if (size == 0 || (size & (size - 1)) || size > max_size || size > VIRTQ_MAX_SIZE) {
        log_guest_once(COMP, "%s: queue size %u is not a power of two in [1, %u]", name,
                       size, max_size);
        return -EINVAL;
    }
    /* Alignment (§2.7): descriptors 16, available ring 2, used ring 4. */
    if ((desc & 15) || (avail & 1) || (used & 3)) {
        log_guest_once(COMP, "%s: misaligned rings (descriptors 0x%llx, available 0x%llx, "
                       "used 0x%llx)", name, (unsigned long long)desc,
                       (unsigned long long)avail, (unsigned long long)used);
        return -EFAULT;
    }
    uint8_t *d = gm_ptr(gm, desc, (uint64_t)DESC_SIZE * size);
    uint8_t *a = gm_ptr(gm, avail, 6 + 2ULL * size);
    uint8_t *u = gm_ptr(gm, used, 6 + (uint64_t)USED_ELEM_SIZE * size);
    if (!d || !a || !u) {
        log_guest_once(COMP, "%s: rings outside RAM (descriptors 0x%llx, available 0x%llx, "
                       "used 0x%llx, size %u)", name, (unsigned long long)desc,
                       (unsigned long long)avail, (unsigned long long)used, size);
        return -EFAULT;
    }
    vq->gm = gm;
    vq->size = size;
    vq->desc = d;
    vq->avail = a;
    vq->used = u;
    vq->indirect = indirect;
    vq->event_idx = event_idx;
    /* A fresh queue starts at index 0 on both sides (§2.7.13, §2.7.14): the
     * device keeps its own used index rather than trusting the ring's. */
    vq->last_avail = 0;
    vq->used_idx = 0;
    vq->published = 0;
    vq->published_valid = false;
    vq->broken = false;
    vq->started = true;
    return 0;
}

void virtq_stop(struct virtq *vq)
{
    vq->started = false;
    vq->broken = false;
    vq->desc = vq->avail = vq->used = NULL;
    vq->size = 0;
    vq->last_avail = vq->used_idx = vq->published = 0;
    vq->published_valid = false;
}

static int vq_break(struct virtq *vq)
{
    vq->broken = true;
    return -EIO;
}

unsigned virtq_avail_count(struct virtq *vq)
{
    if (!vq->started || vq->broken)
        return 0;
    uint16_t n = (uint16_t)(avail_idx(vq) - vq->last_avail);
    return n <= vq->size ? n : 0;
}

/* Walk the chain starting at head into c. Returns 0 or -EIO (logged). */
static int walk_chain(struct virtq *vq, uint16_t head, struct virtq_chain *c)
{
    const char *name = vq->name ? vq->name : "virtqueue";
    const uint8_t *table = vq->desc;
    uint32_t table_len = vq->size;     /* entries in the current table */
    bool in_indirect = false, seen_write = false;
    unsigned visited = 0;
    uint64_t total = 0;
    uint32_t idx = head;

    c->head = head;
    c->nr = c->nr_readable = 0;
    c->readable_len = c->writable_len = 0;

    for (;;) {
        struct vring_desc d;

        if (idx >= table_len) {
            log_guest_once(COMP, "%s: descriptor index %u outside the %s of %u entries", name,
                           idx, in_indirect ? "indirect table" : "descriptor table", table_len);
            return -EIO;
        }
        /* §2.7.5.3.1: no chain longer than the queue size; a loop always
         * becomes one. Indirect entries count, the pointer to them does not. */
        if (++visited > vq->size) {
            log_guest_once(COMP, "%s: chain at head %u is longer than the queue size %u "
                           "(a loop?)", name, head, vq->size);
            return -EIO;
        }
        /* One copy, then only the copy is looked at. */
        memcpy(&d, table + (size_t)idx * DESC_SIZE, sizeof(d));

        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (!vq->indirect) {
                log_guest_once(COMP, "%s: indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC",
                               name);
                return -EIO;
            }
            if (in_indirect) {
                log_guest_once(COMP, "%s: indirect descriptor inside an indirect table", name);
                return -EIO;
            }
            if (d.flags & VRING_DESC_F_NEXT) {
                log_guest_once(COMP, "%s: descriptor with both INDIRECT and NEXT", name);
                return -EIO;
            }
            if (d.len == 0 || d.len % DESC_SIZE) {
                log_guest_once(COMP, "%s: indirect table of %u bytes (not a positive multiple "
                               "of 16)", name, d.len);
                return -EIO;
            }
            const uint8_t *t = gm_ptr(vq->gm, d.addr, d.len);
            if (!t) {
                log_guest_once(COMP, "%s: indirect table at 0x%llx, %u bytes, outside RAM", name,
                               (unsigned long long)d.addr, d.len);
                return -EIO;
            }
            visited--;   /* the pointer is not a buffer of the chain */
            table = t;
            table_len = d.len / DESC_SIZE;
            in_indirect = true;
            idx = 0;
            continue;
        }

        bool write = d.flags & VRING_DESC_F_WRITE;
        if (d.len == 0) {
            log_guest_once(COMP, "%s: zero-length buffer in the chain at head %u", name, head);
            return -EIO;
        }
        if (!write && seen_write) {
            log_guest_once(COMP, "%s: device-readable buffer after a device-writable one "
                           "(chain at head %u)", name, head);
            return -EIO;
        }
        void *hva = gm_ptr(vq->gm, d.addr, d.len);
        if (!hva) {
            log_guest_once(COMP, "%s: buffer at 0x%llx, %u bytes, outside RAM", name,
                           (unsigned long long)d.addr, d.len);
            return -EIO;
        }
        total += d.len;
        if (total > UINT32_MAX) {
            log_guest_once(COMP, "%s: chain at head %u is 4 GiB or longer", name, head);
            return -EIO;
        }
        if (c->nr >= c->cap) {
            log_guest_once(COMP, "%s: chain at head %u has more than %u buffers", name, head,
                           c->cap);
            return -EIO;
        }
        c->seg[c->nr++] = (struct virtq_seg){ .gpa = d.addr, .hva = hva, .len = d.len,
                                              .write = write };
        if (write) {
            seen_write = true;
            c->writable_len += d.len;
        } else {
            c->nr_readable++;
            c->readable_len += d.len;
        }
        if (!(d.flags & VRING_DESC_F_NEXT))
            return 0;
        idx = d.next;
    }
}

int virtq_pop_chain(struct virtq *vq, struct virtq_chain *c)
{
    const char *name = vq->name ? vq->name : "virtqueue";

    if (!vq->started || vq->broken)
        return vq->broken ? -EIO : 0;
    uint16_t idx = avail_idx(vq);
    uint16_t pending = (uint16_t)(idx - vq->last_avail);
    if (pending == 0)
        return 0;
    if (pending > vq->size) {
        log_guest_once(COMP, "%s: available index moved from %u to %u, more than the queue "
                       "size %u", name, vq->last_avail, idx, vq->size);
        return vq_break(vq);
    }
    /* The entries and descriptors the index covers are read after it. */
    atomic_thread_fence(memory_order_acquire);
    uint16_t head = ld16(vq->avail + AVAIL_RING + 2u * (vq->last_avail & (vq->size - 1)));
    if (head >= vq->size) {
        log_guest_once(COMP, "%s: available ring entry %u names descriptor %u of %u", name,
                       vq->last_avail, head, vq->size);
        return vq_break(vq);
    }
    if (walk_chain(vq, head, c))
        return vq_break(vq);
    vq->last_avail++;
    return 1;
}

void virtq_unpop(struct virtq *vq)
{
    vq->last_avail--;
}

void virtq_push_used(struct virtq *vq, uint16_t head, uint32_t len)
{
    if (!vq->started)
        return;
    uint8_t *e = vq->used + USED_RING + USED_ELEM_SIZE * (vq->used_idx & (vq->size - 1));
    st32(e, head);
    st32(e + 4, len);
    vq->used_idx++;
}

bool virtq_publish_used(struct virtq *vq)
{
    if (!vq->started)
        return false;
    uint16_t old = vq->published, new = vq->used_idx;
    bool valid = vq->published_valid;

    /* Elements before the index (§2.7.8.2). */
    atomic_thread_fence(memory_order_release);
    st16(vq->used + USED_IDX, new);
    vq->published = new;
    vq->published_valid = true;
    /* Our index store before the driver's suppression fields are read
     * (§2.7.10; the driver does the mirror image). */
    atomic_thread_fence(memory_order_seq_cst);
    if (valid && old == new)
        return false;
    if (vq->event_idx) {
        uint16_t event = __atomic_load_n(used_event_ptr(vq), __ATOMIC_RELAXED);
        /* The first publication always interrupts: nothing to compare with. */
        return !valid || vring_need_event(event, new, old);
    }
    return !(ld16(vq->avail + AVAIL_FLAGS) & VRING_AVAIL_F_NO_INTERRUPT);
}

void virtq_notify_disable(struct virtq *vq)
{
    if (!vq->started || vq->event_idx)
        return;   /* with EVENT_IDX, not moving avail_event is enough */
    st16(vq->used + USED_FLAGS, VRING_USED_F_NO_NOTIFY);
}

bool virtq_notify_enable(struct virtq *vq)
{
    if (!vq->started || vq->broken)
        return false;
    if (vq->event_idx)
        st16(avail_event_ptr(vq), avail_idx(vq));
    else
        st16(vq->used + USED_FLAGS, 0);
    /* The store above before the second look at the index: a driver that
     * added a chain without seeing it will have notified, else we see it. */
    atomic_thread_fence(memory_order_seq_cst);
    return avail_idx(vq) != vq->last_avail;
}

/* ---- chain contents ---- */

/* Walk the readable (write false) or writable segments of c, covering
 * [off, off+len) with fn. Returns 0 or -EFAULT if the part is shorter. */
static int chain_range(const struct virtq_chain *c, bool write, uint32_t off, uint32_t len,
                       int (*fn)(void *ctx, uint8_t *hva, uint32_t n), void *ctx)
{
    uint32_t part = write ? c->writable_len : c->readable_len;
    unsigned first = write ? c->nr_readable : 0;
    unsigned end = write ? c->nr : c->nr_readable;

    if (off > part || len > part - off)
        return -EFAULT;
    for (unsigned i = first; i < end && len; i++) {
        const struct virtq_seg *s = &c->seg[i];
        if (off >= s->len) {
            off -= s->len;
            continue;
        }
        uint32_t n = s->len - off < len ? s->len - off : len;
        int r = fn(ctx, (uint8_t *)s->hva + off, n);
        if (r)
            return r;
        len -= n;
        off = 0;
    }
    return 0;
}

struct copy_ctx {
    uint8_t *p;
    bool to_guest;
};

static int copy_piece(void *ctx, uint8_t *hva, uint32_t n)
{
    struct copy_ctx *cc = ctx;
    if (cc->to_guest)
        memcpy(hva, cc->p, n);
    else
        memcpy(cc->p, hva, n);
    cc->p += n;
    return 0;
}

int virtq_chain_read(const struct virtq_chain *c, uint32_t off, void *dst, uint32_t len)
{
    struct copy_ctx cc = { dst, false };
    return chain_range(c, false, off, len, copy_piece, &cc);
}

int virtq_chain_write(const struct virtq_chain *c, uint32_t off, const void *src, uint32_t len)
{
    struct copy_ctx cc = { (uint8_t *)(uintptr_t)src, true };
    return chain_range(c, true, off, len, copy_piece, &cc);
}

struct iov_ctx {
    struct iovec *iov;
    unsigned nr, max;
};

static int iov_piece(void *ctx, uint8_t *hva, uint32_t n)
{
    struct iov_ctx *ic = ctx;
    if (ic->nr >= ic->max)
        return -E2BIG;
    ic->iov[ic->nr++] = (struct iovec){ .iov_base = hva, .iov_len = n };
    return 0;
}

int virtq_chain_iov(const struct virtq_chain *c, bool write, uint32_t off, uint32_t len,
                    struct iovec *iov, unsigned max)
{
    struct iov_ctx ic = { iov, 0, max };
    int r = chain_range(c, write, off, len, iov_piece, &ic);
    return r ? r : (int)ic.nr;
}

static int byte_piece(void *ctx, uint8_t *hva, uint32_t n)
{
    (void)n;
    *(uint8_t **)ctx = hva;
    return 0;
}

uint8_t *virtq_chain_writable_byte(const struct virtq_chain *c, uint32_t off)
{
    uint8_t *p = NULL;
    if (chain_range(c, true, off, 1, byte_piece, &p))
        return NULL;
    return p;
}
