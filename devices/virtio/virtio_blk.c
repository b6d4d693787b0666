/* virtio-blk device model: configuration, features, request checking, and
 * the virtio side of its I/O: chains popped from the virtqueues become
 * requests to the block engine (devices/block/blk_engine.h), whose
 * completions become status bytes and used elements. See
 * devices/virtio/virtio_blk.h for the register map and the request rules.
 *
 * On the engine's threads (the "requests on the block engine" functions
 * run on the engine thread that owns the queue):
 *   - start(q): the transport's queue q (after DRIVER_OK), anything queued
 *     before it is taken, the kick (the queue's ioeventfd) armed;
 *   - kick(q): every available chain is popped (notifications disabled
 *     meanwhile, §2.7.10), checked (virtio_blk_parse) and submitted: IN/OUT
 *     at sector * 512 with the chain's data as iovecs of guest memory,
 *     FLUSH, DISCARD and WRITE_ZEROES with their ranges in bytes; GET_ID
 *     and refused requests complete at once; the kick is armed again after
 *     notifications were re-enabled and the queue seen empty;
 *   - complete(q, slot, result): the status byte, the used element, the
 *     slot back (and the queue taken up again if it had run out of slots);
 *   - round_end(q): the used index published once per batch, the driver
 *     interrupted if it asked (virtio_pci_queue_interrupt: an eventfd write
 *     that KVM's irqfd turns into the MSI);
 *   - stop(q): published, the queue let go of (reset: nothing in flight).
 * A FLUSH is submitted when the driver sends it, which is after the writes
 * it covers have completed (the driver waits for them, §5.2.6.4): nothing
 * acknowledged before the guest's flush returned is lost when minivmm is
 * killed or the host loses power. */
#include "devices/virtio/virtio_blk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>

#include "devices/block/blk_engine.h"
#include "devices/block/image.h"
#include "devices/pci/pcidev.h"
#include "vmm/log.h"

#define COMP "virtio-blk"

#define HDR_SIZE   16u   /* struct virtio_blk_outhdr */
#define RANGE_SIZE 16u   /* struct virtio_blk_discard_write_zeroes */

_Static_assert(sizeof(struct virtio_blk_outhdr) == HDR_SIZE, "virtio-blk header is 16 bytes");
_Static_assert(sizeof(struct virtio_blk_discard_write_zeroes) == RANGE_SIZE, "range is 16 bytes");

_Static_assert(VIRTIO_BLK_SECTOR == BLK_SECTOR, "one sector size");
_Static_assert(DISK_MAX_QUEUES <= BLK_ENGINE_MAX_QUEUES, "queues fit the engine");
_Static_assert(VIRTIO_BLK_MAX_RANGES <= BLK_ENGINE_MAX_RANGES, "ranges fit the engine");

/* One request between the chain and its completion. */
struct vblk_slot {
    struct virtio_blk_req req;
    struct iovec *iov;          /* queue_size entries */
    struct blk_range ranges[VIRTIO_BLK_MAX_RANGES];
    uint16_t head;
    uint32_t used_len;
    int next_free;
};

/* One request queue; touched only by the engine thread that owns it. */
struct vblk_queue {
    struct virtq *vq;           /* while running */
    struct vblk_slot *slots;    /* VIRTIO_BLK_QUEUE_SIZE */
    int free_head;
    struct virtq_chain chain;   /* scratch: the chain being parsed */
    bool publish;               /* used elements since the last publish */
    bool starved;               /* stopped taking chains: no free slot */
    bool dead;                  /* the driver broke it: wait for a reset */
};

struct virtio_blk {
    struct virtio_pci vp;
    char name[32];
    struct blk_image img;
    bool img_open, vp_init;
    struct virtio_blk_limits limits;
    struct virtio_blk_config config;
    uint8_t serial[DISK_SERIAL_LEN];  /* GET_ID answer, NUL-padded */
    struct vblk_queue queues[DISK_MAX_QUEUES];
    struct blk_engine *engine;
};

/* ---- request checking (§5.2.6) ---- */

static bool sectors_fit(const struct virtio_blk_limits *l, uint64_t sector, uint64_t n)
{
    return sector <= l->capacity && n <= l->capacity - sector;
}

int virtio_blk_parse(const struct virtq_chain *c, const struct virtio_blk_limits *l,
                     struct virtio_blk_req *r)
{
    struct virtio_blk_outhdr h;

    r->type = 0;
    r->sector = 0;
    r->data_off = r->data_len = 0;
    r->nr_ranges = 0;
    /* The status is the last device-writable byte (§5.2.6): without one the
     * request cannot be answered at all. */
    r->status = c->writable_len ? virtq_chain_writable_byte(c, c->writable_len - 1) : NULL;
    if (!r->status)
        return -EIO;
    if (c->readable_len < HDR_SIZE || virtq_chain_read(c, 0, &h, HDR_SIZE)) {
        log_guest_once(COMP, "request header of %u bytes (needs %u)", c->readable_len, HDR_SIZE);
        return VIRTIO_BLK_S_IOERR;
    }
    r->type = h.type;
    r->sector = h.sector;
    uint32_t writable_data = c->writable_len - 1;
    uint32_t readable_data = c->readable_len - HDR_SIZE;

    switch (h.type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
        bool in = h.type == VIRTIO_BLK_T_IN;
        uint32_t len = in ? writable_data : readable_data;
        if (!in && l->readonly) {
            log_guest_once(COMP, "write to a read-only disk");
            return VIRTIO_BLK_S_IOERR;
        }
        if (len % VIRTIO_BLK_SECTOR) {
            log_guest_once(COMP, "%s of %u bytes, not whole sectors", in ? "read" : "write", len);
            return VIRTIO_BLK_S_IOERR;
        }
        if (!sectors_fit(l, h.sector, len / VIRTIO_BLK_SECTOR)) {
            log_guest_once(COMP, "%s at sector %" PRIu64 " (+%u) past the end (%" PRIu64
                           " sectors)", in ? "read" : "write", (uint64_t)h.sector,
                           len / VIRTIO_BLK_SECTOR, l->capacity);
            return VIRTIO_BLK_S_IOERR;
        }
        r->data_off = in ? 0 : HDR_SIZE;
        r->data_len = len;
        return VIRTIO_BLK_S_OK;
    }
    case VIRTIO_BLK_T_FLUSH:
        return VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_GET_ID:
        r->data_len = writable_data;
        return VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
        bool discard = h.type == VIRTIO_BLK_T_DISCARD;
        uint32_t max_seg = discard ? l->max_discard_seg : l->max_zeroes_seg;
        uint32_t max_sectors = discard ? l->max_discard_sectors : l->max_zeroes_sectors;
        if (!(discard ? l->discard : l->write_zeroes))
            return VIRTIO_BLK_S_UNSUPP;
        if (l->readonly)
            return VIRTIO_BLK_S_IOERR;
        if (readable_data == 0 || readable_data % RANGE_SIZE ||
            readable_data / RANGE_SIZE > max_seg || readable_data / RANGE_SIZE > VIRTIO_BLK_MAX_RANGES) {
            log_guest_once(COMP, "%s with %u bytes of ranges (%u at most)",
                           discard ? "discard" : "write-zeroes", readable_data, max_seg);
            return VIRTIO_BLK_S_IOERR;
        }
        r->nr_ranges = readable_data / RANGE_SIZE;
        for (unsigned i = 0; i < r->nr_ranges; i++) {
            struct virtio_blk_discard_write_zeroes d;
            if (virtq_chain_read(c, HDR_SIZE + i * RANGE_SIZE, &d, RANGE_SIZE))
                return VIRTIO_BLK_S_IOERR;
            /* §5.2.6.2: discard has no unmap flag; no other flag exists. */
            uint32_t allowed = discard ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
            if (d.flags & ~allowed) {
                log_guest_once(COMP, "%s range with flags 0x%x", discard ? "discard" : "write-zeroes",
                               d.flags);
                return VIRTIO_BLK_S_UNSUPP;
            }
            if (d.num_sectors == 0 || d.num_sectors > max_sectors ||
                !sectors_fit(l, d.sector, d.num_sectors)) {
                log_guest_once(COMP, "%s of sectors %" PRIu64 "+%u (at most %u, disk of %" PRIu64
                               ")", discard ? "discard" : "write-zeroes", (uint64_t)d.sector,
                               d.num_sectors, max_sectors, l->capacity);
                return VIRTIO_BLK_S_IOERR;
            }
            r->ranges[i] = (struct virtio_blk_range){ .sector = d.sector,
                                                      .nr_sectors = d.num_sectors,
                                                      .flags = d.flags };
        }
        return VIRTIO_BLK_S_OK;
    }
    default:
        log_guest_once(COMP, "request type %u is not supported", h.type);
        return VIRTIO_BLK_S_UNSUPP;
    }
}

/* ---- requests on the block engine (on the queue's engine thread) ---- */

static struct vblk_slot *slot_alloc(struct vblk_queue *q)
{
    if (q->free_head < 0)
        return NULL;
    struct vblk_slot *s = &q->slots[q->free_head];
    q->free_head = s->next_free;
    return s;
}

static void slot_free(struct vblk_queue *q, struct vblk_slot *s)
{
    s->next_free = q->free_head;
    q->free_head = (int)(s - q->slots);
}

static void process_queue(struct virtio_blk *b, unsigned qi);

/* The request is done: status byte, used element, slot back. */
static void slot_complete(struct virtio_blk *b, unsigned qi, struct vblk_slot *s, uint8_t status)
{
    struct vblk_queue *q = &b->queues[qi];

    *s->req.status = status;
    virtq_push_used(q->vq, s->head, status == VIRTIO_BLK_S_OK ? s->used_len : 1);
    q->publish = true;
    slot_free(q, s);
    if (q->starved && blk_engine_running(b->engine, qi)) {
        q->starved = false;
        process_queue(b, qi);
    }
}

/* Start a checked request. */
static void start_request(struct virtio_blk *b, unsigned qi, struct vblk_slot *s)
{
    struct vblk_queue *q = &b->queues[qi];
    struct blk_request r = { .tag = (uint64_t)(s - q->slots) };
    int n;

    s->used_len = 1;
    switch (s->req.type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        if (s->req.data_len == 0) {
            slot_complete(b, qi, s, VIRTIO_BLK_S_OK);
            return;
        }
        n = virtq_chain_iov(&q->chain, s->req.type == VIRTIO_BLK_T_IN, s->req.data_off,
                            s->req.data_len, s->iov, VIRTIO_BLK_QUEUE_SIZE);
        if (n <= 0) {
            slot_complete(b, qi, s, VIRTIO_BLK_S_IOERR);
            return;
        }
        if (s->req.type == VIRTIO_BLK_T_IN)
            s->used_len = s->req.data_len + 1;
        r.op = s->req.type == VIRTIO_BLK_T_IN ? BLK_OP_READ : BLK_OP_WRITE;
        r.offset = s->req.sector * VIRTIO_BLK_SECTOR;
        r.len = s->req.data_len;
        r.iov = s->iov;
        r.niov = (unsigned)n;
        break;
    case VIRTIO_BLK_T_FLUSH:
        r.op = BLK_OP_FLUSH;
        break;
    case VIRTIO_BLK_T_GET_ID: {
        uint32_t len = s->req.data_len < VIRTIO_BLK_ID_BYTES ? s->req.data_len : VIRTIO_BLK_ID_BYTES;
        uint8_t st = VIRTIO_BLK_S_OK;
        if (len && virtq_chain_write(&q->chain, 0, b->serial, len))
            st = VIRTIO_BLK_S_IOERR;
        s->used_len = len + 1;
        slot_complete(b, qi, s, st);
        return;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        for (unsigned i = 0; i < s->req.nr_ranges; i++)
            s->ranges[i] = (struct blk_range){
                .offset = s->req.ranges[i].sector * VIRTIO_BLK_SECTOR,
                .len = (uint64_t)s->req.ranges[i].nr_sectors * VIRTIO_BLK_SECTOR };
        r.op = s->req.type == VIRTIO_BLK_T_DISCARD ? BLK_OP_DISCARD : BLK_OP_WRITE_ZEROES;
        r.ranges = s->ranges;
        r.nr_ranges = s->req.nr_ranges;
        /* WRITE_ZEROES has one range (max_write_zeroes_seg = 1): its unmap
         * flag is the request's. */
        r.unmap = s->req.type == VIRTIO_BLK_T_WRITE_ZEROES && s->req.nr_ranges &&
                  (s->req.ranges[0].flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
        break;
    default:
        slot_complete(b, qi, s, VIRTIO_BLK_S_UNSUPP);
        return;
    }
    int err = blk_engine_submit(b->engine, qi, &r);
    if (err) {
        /* Checked already; the engine has a slot for every chain. */
        log_guest_once(COMP, "%s: request type %u not taken: %s", b->name, s->req.type,
                       strerror(-err));
        slot_complete(b, qi, s, VIRTIO_BLK_S_IOERR);
    }
}

/* Take every available chain of queue qi (§2.7.13.4 device side). */
static void process_queue(struct virtio_blk *b, unsigned qi)
{
    struct vblk_queue *q = &b->queues[qi];

    if (!blk_engine_running(b->engine, qi) || !q->vq || q->dead)
        return;
    for (;;) {
        virtq_notify_disable(q->vq);
        for (;;) {
            if (q->free_head < 0) {
                q->starved = true;   /* completions free slots and call back */
                return;
            }
            int r = virtq_pop_chain(q->vq, &q->chain);
            if (r == 0)
                break;
            if (r < 0) {
                q->dead = true;
                virtio_pci_set_needs_reset(&b->vp);
                return;
            }
            struct vblk_slot *s = slot_alloc(q);
            s->head = q->chain.head;
            int st = virtio_blk_parse(&q->chain, &b->limits, &s->req);
            if (st < 0) {
                /* No status byte: the request cannot even fail. */
                slot_free(q, s);
                q->dead = true;
                virtio_pci_set_needs_reset(&b->vp);
                return;
            }
            if (st != VIRTIO_BLK_S_OK) {
                slot_complete(b, qi, s, (uint8_t)st);
                continue;
            }
            start_request(b, qi, s);
        }
        if (!virtq_notify_enable(q->vq))
            break;
    }
    blk_engine_arm_kick(b->engine, qi, virtio_pci_kick_fd(&b->vp, qi));
}

static void io_start(void *opaque, unsigned qi)
{
    struct virtio_blk *b = opaque;
    struct vblk_queue *q = &b->queues[qi];

    q->vq = virtio_pci_queue(&b->vp, qi);
    q->starved = q->dead = false;
    if (q->vq) {
        blk_engine_arm_kick(b->engine, qi, virtio_pci_kick_fd(&b->vp, qi));
        process_queue(b, qi);   /* whatever was queued before DRIVER_OK */
    }
}

static void io_kick(void *opaque, unsigned qi)
{
    process_queue(opaque, qi);   /* re-arms the kick */
}

static void io_complete(void *opaque, unsigned qi, uint64_t tag, int64_t result)
{
    struct virtio_blk *b = opaque;
    struct vblk_queue *q = &b->queues[qi];

    if (tag >= VIRTIO_BLK_QUEUE_SIZE)
        return;
    slot_complete(b, qi, &q->slots[tag], result < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

static void io_round_end(void *opaque, unsigned qi)
{
    struct virtio_blk *b = opaque;
    struct vblk_queue *q = &b->queues[qi];

    if (!q->publish || !q->vq)
        return;
    q->publish = false;
    if (virtq_publish_used(q->vq))
        virtio_pci_queue_interrupt(&b->vp, qi);
}

static void io_stop(void *opaque, unsigned qi)
{
    struct virtio_blk *b = opaque;
    struct vblk_queue *q = &b->queues[qi];

    io_round_end(opaque, qi);
    q->vq = NULL;
    q->starved = q->dead = q->publish = false;
}

static const struct blk_engine_ops vblk_engine_ops = {
    .start = io_start, .kick = io_kick, .complete = io_complete, .round_end = io_round_end,
    .stop = io_stop,
};

/* ---- device ops ---- */

static void blk_cfg_read(void *opaque, uint32_t off, void *data, unsigned len)
{
    struct virtio_blk *b = opaque;
    if (off < sizeof(b->config) && len <= sizeof(b->config) - off)
        memcpy(data, (const uint8_t *)&b->config + off, len);
}

static void blk_cfg_write(void *opaque, uint32_t off, const void *data, unsigned len)
{
    (void)opaque;
    (void)off;
    (void)data;
    (void)len;   /* every field is read-only without CONFIG_WCE */
}

static int blk_start(void *opaque, uint64_t features)
{
    struct virtio_blk *b = opaque;
    (void)features;   /* requests are checked against what was offered */
    return blk_engine_start(b->engine);
}

static void blk_stop(void *opaque)
{
    struct virtio_blk *b = opaque;
    blk_engine_stop(b->engine);
}

static const struct virtio_device_ops blk_ops = {
    .cfg_read = blk_cfg_read, .cfg_write = blk_cfg_write, .start = blk_start, .stop = blk_stop,
};

/* ---- life cycle ---- */

void virtio_blk_destroy(struct virtio_blk *b)
{
    if (!b)
        return;
    if (b->vp_init)
        virtio_pci_fini(&b->vp);   /* stops the device: requests in flight finish */
    blk_engine_destroy(b->engine);
    if (b->img_open)
        blk_image_close(&b->img);
    for (unsigned i = 0; i < DISK_MAX_QUEUES; i++) {
        struct vblk_queue *q = &b->queues[i];
        if (q->slots)
            for (unsigned s = 0; s < VIRTIO_BLK_QUEUE_SIZE; s++)
                free(q->slots[s].iov);
        free(q->slots);
        free(q->chain.seg);
    }
    free(b);
}

int virtio_blk_create(const struct virtio_pci_vm *vm, const struct disk_arg *arg,
                      unsigned index, int io_cpu, struct virtio_blk **out)
{
    struct virtio_blk *b = calloc(1, sizeof(*b));
    int err;

    if (!b)
        return -ENOMEM;
    snprintf(b->name, sizeof(b->name), "virtio-blk%u", index);
    if (arg->queues == 0 || arg->queues > DISK_MAX_QUEUES || arg->iothreads == 0 ||
        arg->iothreads > arg->queues) {
        log_err(COMP, "--disk %s: %u queues with %u I/O threads is not possible", arg->path,
                arg->queues, arg->iothreads);
        free(b);
        return -EINVAL;
    }

    /* 1. the image */
    err = blk_image_open(&b->img, COMP, arg->path, arg->readonly,
                         arg->cache == DISK_CACHE_NONE);
    if (err)
        goto fail;
    b->img_open = true;

    /* 2. limits and configuration */
    struct virtio_blk_limits *l = &b->limits;
    l->capacity = b->img.size / VIRTIO_BLK_SECTOR;
    l->readonly = arg->readonly;
    l->discard = l->write_zeroes = !arg->readonly && arg->discard;
    l->max_discard_sectors = VIRTIO_BLK_MAX_DISCARD_SECTORS;
    l->max_discard_seg = VIRTIO_BLK_MAX_RANGES;
    l->discard_align = b->img.logical_block / VIRTIO_BLK_SECTOR;
    l->max_zeroes_sectors = VIRTIO_BLK_MAX_ZEROES_SECTORS;
    l->max_zeroes_seg = 1;   /* the zero-writing fallback uses the request's iovecs */

    struct virtio_blk_config *c = &b->config;
    c->capacity = l->capacity;
    c->seg_max = VIRTIO_BLK_QUEUE_SIZE - 2;   /* header and status take two */
    c->blk_size = b->img.logical_block;
    c->num_queues = (uint16_t)arg->queues;
    if (l->discard) {
        c->max_discard_sectors = l->max_discard_sectors;
        c->max_discard_seg = l->max_discard_seg;
        c->discard_sector_alignment = l->discard_align;
        c->max_write_zeroes_sectors = l->max_zeroes_sectors;
        c->max_write_zeroes_seg = l->max_zeroes_seg;
        c->write_zeroes_may_unmap = 1;
    }
    uint64_t features = (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
                        (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_MQ);
    if (arg->readonly)
        features |= 1ULL << VIRTIO_BLK_F_RO;
    if (l->discard)
        features |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);

    /* 3. the PCI function */
    struct virtio_pci_config pc = {
        .name = b->name, .device_type = VIRTIO_ID_BLOCK,
        .class_code = 0x010000,   /* mass storage, SCSI: what QEMU's virtio-blk says */
        .features = features, .nr_queues = arg->queues, .queue_max_size = VIRTIO_BLK_QUEUE_SIZE,
        .cfg_size = sizeof(b->config), .ops = &blk_ops, .opaque = b,
    };
    err = virtio_pci_init(&b->vp, vm, &pc);
    if (err)
        goto fail;
    b->vp_init = true;

    /* 4. the queues' request slots, and the I/O threads */
    for (unsigned i = 0; i < arg->queues; i++) {
        struct vblk_queue *q = &b->queues[i];
        q->slots = calloc(VIRTIO_BLK_QUEUE_SIZE, sizeof(*q->slots));
        q->chain.seg = calloc(VIRTIO_BLK_QUEUE_SIZE, sizeof(*q->chain.seg));
        err = -ENOMEM;
        if (!q->slots || !q->chain.seg)
            goto fail;
        q->chain.cap = VIRTIO_BLK_QUEUE_SIZE;
        for (unsigned s = 0; s < VIRTIO_BLK_QUEUE_SIZE; s++) {
            q->slots[s].iov = calloc(VIRTIO_BLK_QUEUE_SIZE, sizeof(struct iovec));
            if (!q->slots[s].iov)
                goto fail;
            q->slots[s].next_free = s + 1 < VIRTIO_BLK_QUEUE_SIZE ? (int)(s + 1) : -1;
        }
        q->free_head = 0;
    }
    if (arg->serial[0]) {
        memcpy(b->serial, arg->serial, strnlen(arg->serial, DISK_SERIAL_LEN));
    } else {
        char s[DISK_SERIAL_LEN + 1];
        snprintf(s, sizeof(s), "MV%016" PRIX64, b->img.ino ^ (b->img.dev << 40));
        memcpy(b->serial, s, strlen(s));
    }
    /* "virtio-blk0" -> threads "blk0-io0" (thread names have 15 characters) */
    struct blk_engine_config ec = {
        .name = b->name, .thread_name = b->name + strlen("virtio-"), .img = &b->img,
        .nr_queues = arg->queues, .nr_threads = arg->iothreads,
        .depth = VIRTIO_BLK_QUEUE_SIZE,   /* one engine request per chain at most */
        .max_ranges = VIRTIO_BLK_MAX_RANGES, .cpu = io_cpu,
        .ops = &vblk_engine_ops, .opaque = b,
    };
    err = blk_engine_create(&ec, &b->engine);
    if (err)
        goto fail;

    log_debug(COMP, "%s: %s, %" PRIu64 " sectors of 512, %s%s, %u queue(s), %u I/O thread(s)",
              b->name, arg->path, l->capacity, arg->cache == DISK_CACHE_NONE ? "O_DIRECT"
              : "page cache", arg->readonly ? ", read-only" : "", arg->queues, arg->iothreads);
    *out = b;
    return 0;
fail:
    virtio_blk_destroy(b);
    return err;
}

int virtio_blk_plug(struct virtio_blk *b, struct pci_bus *bus, struct pci_device *parent,
                    uint8_t devfn, int (*intx_gsi)(void *ctx, const struct pci_device *d,
                                                   uint8_t pin), void *ctx)
{
    return virtio_pci_plug(&b->vp, bus, parent, devfn, intx_gsi, ctx);
}

void virtio_blk_unplug(struct virtio_blk *b)
{
    if (b)
        virtio_pci_unplug(&b->vp);
}

void virtio_blk_reset(struct virtio_blk *b)
{
    virtio_pci_reset(&b->vp);
}

struct virtio_pci *virtio_blk_pci(struct virtio_blk *b)
{
    return &b->vp;
}

const struct virtio_blk_limits *virtio_blk_limits_of(const struct virtio_blk *b)
{
    return &b->limits;
}

/* ---- the device in the machine's PCI list ---- */

static int blk_pcidev_plug(void *dev, const struct pcidev_where *w)
{
    return virtio_blk_plug(dev, w->bus, w->parent, w->devfn, w->intx_gsi, w->intx_ctx);
}

static void blk_pcidev_unplug(void *dev)
{
    virtio_blk_unplug(dev);
}

static void blk_pcidev_destroy(void *dev)
{
    virtio_blk_destroy(dev);
}

/* How QEMU names a virtio-blk-pci function for "bootorder" (its fw_name
 * "scsi", the disk node "disk@0,0"), which OvmfPkg's QemuBootOrderLib
 * translates to PciRoot(0x0)/Pci(SLOT,FN) (behind a root port:
 * .../Pci(PORT,0x0)/Pci(0x0,0x0)) and matches boot options by. */
static int blk_pcidev_boot_path(void *dev, const struct pcidev_where *w, char *buf, size_t len)
{
    int n;

    if (w->parent)
        n = snprintf(buf, len, "/pci@i0cf8/pci-bridge@%x/scsi@%x/disk@0,0", w->slot,
                     PCI_SLOT(w->devfn));
    else if (PCI_FUNC(w->devfn))
        n = snprintf(buf, len, "/pci@i0cf8/scsi@%x,%x/disk@0,0", w->slot, PCI_FUNC(w->devfn));
    else
        n = snprintf(buf, len, "/pci@i0cf8/scsi@%x/disk@0,0", w->slot);
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct pcidev_ops blk_pcidev_ops = {
    .plug = blk_pcidev_plug,
    .unplug = blk_pcidev_unplug,
    .destroy = blk_pcidev_destroy,
    .boot_path = blk_pcidev_boot_path,
};

int virtio_blk_attach(const struct pcidev_host *h, const struct disk_args *a,
                      struct pcidev_list *l)
{
    struct virtio_pci_vm pv = { .env = h->env, .irq = h->irq, .vm_fd = h->vm_fd };

    for (unsigned i = 0, n = 0; i < a->nr; i++) {
        struct virtio_blk *b;
        struct pcidev *d;
        char name[32];
        if (a->disk[i].iface != DISK_IF_VIRTIO)
            continue;
        int err = virtio_blk_create(&pv, &a->disk[i], n, h->io_pin, &b);
        if (err)
            return err;
        snprintf(name, sizeof(name), "virtio-blk%u", n++);
        err = pcidev_add(l, name, PCIDEV_STORAGE, PCIDEV_ROOT_BUS, &blk_pcidev_ops, b, &d);
        if (err) {
            virtio_blk_destroy(b);
            return err;
        }
        d->boot_index = a->disk[i].boot_index;
    }
    return 0;
}
