/* virtio-blk device model: configuration, features, request checking, and
 * the glue between the virtio-pci transport and the io_uring backend. See
 * devices/virtio/virtio_blk.h for the register map and the request rules. */
#include "devices/virtio/virtio_blk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>

#include "devices/block/blk_io_uring.h"
#include "vmm/log.h"

#define COMP "virtio-blk"

#define HDR_SIZE   16u   /* struct virtio_blk_outhdr */
#define RANGE_SIZE 16u   /* struct virtio_blk_discard_write_zeroes */

_Static_assert(sizeof(struct virtio_blk_outhdr) == HDR_SIZE, "virtio-blk header is 16 bytes");
_Static_assert(sizeof(struct virtio_blk_discard_write_zeroes) == RANGE_SIZE, "range is 16 bytes");

struct virtio_blk {
    struct virtio_pci vp;
    char name[32];
    struct blk_image img;
    bool img_open, vp_init;
    struct virtio_blk_limits limits;
    struct virtio_blk_config config;
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
    free(b);
}

int virtio_blk_create(const struct virtio_pci_vm *vm, const struct virtio_blk_arg *arg,
                      unsigned index, int io_cpu, struct virtio_blk **out)
{
    struct virtio_blk *b = calloc(1, sizeof(*b));
    int err;

    if (!b)
        return -ENOMEM;
    snprintf(b->name, sizeof(b->name), "virtio-blk%u", index);
    if (arg->queues == 0 || arg->queues > VIRTIO_BLK_MAX_QUEUES || arg->iothreads == 0 ||
        arg->iothreads > arg->queues) {
        log_err(COMP, "--disk %s: %u queues with %u I/O threads is not possible", arg->path,
                arg->queues, arg->iothreads);
        free(b);
        return -EINVAL;
    }

    /* 1. the image */
    err = blk_image_open(&b->img, arg->path, arg->readonly, arg->cache);
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

    /* 4. the I/O threads */
    struct blk_engine_config ec = {
        .name = b->name, .img = &b->img, .vp = &b->vp, .limits = &b->limits,
        .nr_queues = arg->queues, .nr_threads = arg->iothreads,
        .queue_size = VIRTIO_BLK_QUEUE_SIZE, .cpu = io_cpu,
    };
    if (arg->serial[0]) {
        memcpy(ec.serial, arg->serial, strnlen(arg->serial, VIRTIO_BLK_SERIAL_LEN));
    } else {
        char s[VIRTIO_BLK_SERIAL_LEN + 1];
        snprintf(s, sizeof(s), "MV%016" PRIX64, b->img.ino ^ (b->img.dev << 40));
        memcpy(ec.serial, s, strlen(s));
    }
    err = blk_engine_create(&ec, &b->engine);
    if (err)
        goto fail;

    log_debug(COMP, "%s: %s, %" PRIu64 " sectors of 512, %s%s, %u queue(s), %u I/O thread(s)",
              b->name, arg->path, l->capacity, arg->cache == VIRTIO_BLK_CACHE_NONE ? "O_DIRECT"
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
