/* A driver written for the tests: programs a virtio-pci device (ours,
 * devices/virtio/virtio_pci.c) through the fake MMIO bus and config space the way
 * a guest's driver does (virtio 1.2 §4.1.4 register layout, §3.1.1 device
 * initialization) and feeds its split virtqueues (§2.7) from the test's
 * guest memory. test_virtio_pci.c, test_virtio_blk.c and test_virtio_net.c
 * share it. Header-only (static inline) like fake_env.h, so each test file
 * stays self-contained in the one Criterion runner. */
#ifndef MINIVMM_TEST_VIRTIO_DRIVER_H
#define MINIVMM_TEST_VIRTIO_DRIVER_H
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#ifndef VIRTIO_PCI_NO_LEGACY
#define VIRTIO_PCI_NO_LEGACY
#endif
#include <linux/virtio_pci.h>

#include "devices/pci/pci.h"
#include "vmm/bus.h"
#include "vmm/gm.h"

#define VDRV_MAX_QUEUES 4
/* Queue q's rings: descriptors at ring_base + 0x4000*q, the available ring
 * one page above, the used ring two pages above (room for QSZ <= 256). */
#define VDRV_RING_STRIDE 0x4000ULL

struct vdrv_queue {
    uint64_t desc, avail, used;
    uint16_t avail_idx;     /* next avail->idx to publish */
    uint16_t used_seen;     /* used->idx consumed so far */
    uint16_t next_desc;     /* next free descriptor (chains laid out in a row) */
};

struct vdrv {
    struct bus *mmio;
    struct gm *gm;
    struct pci_bus *pb;
    uint8_t devfn;
    uint64_t bar;           /* where BAR0 is programmed */
    uint16_t qsz;
    uint64_t ring_base;
    struct vdrv_queue q[VDRV_MAX_QUEUES];
};

/* One buffer of a chain: guest address, length, device-writable or not. */
struct vdrv_seg {
    uint64_t gpa;
    uint32_t len;
    bool write;
};

static inline uint64_t vdrv_bar_rd(struct vdrv *d, uint64_t off, unsigned len)
{
    uint8_t b[8] = { 0 };
    cr_assert_eq(bus_read(d->mmio, d->bar + off, b, len), 0, "BAR0 read at 0x%llx",
                 (unsigned long long)off);
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static inline void vdrv_bar_wr(struct vdrv *d, uint64_t off, unsigned len, uint64_t v)
{
    uint8_t b[8];
    for (unsigned i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    cr_assert_eq(bus_write(d->mmio, d->bar + off, b, len), 0, "BAR0 write at 0x%llx",
                 (unsigned long long)off);
}

/* BAR0 (64-bit memory) at d->bar, memory decoding and bus mastering on. */
static inline void vdrv_map_bar(struct vdrv *d)
{
    cr_assert_eq(pci_config_write(d->pb, 0, d->devfn, PCI_BASE_ADDRESS_0, 4, (uint32_t)d->bar), 0);
    cr_assert_eq(pci_config_write(d->pb, 0, d->devfn, PCI_BASE_ADDRESS_0 + 4, 4,
                                  (uint32_t)(d->bar >> 32)), 0);
    cr_assert_eq(pci_config_write(d->pb, 0, d->devfn, PCI_COMMAND, 2,
                                  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), 0);
}

static inline uint8_t vdrv_status(struct vdrv *d)
{
    return (uint8_t)vdrv_bar_rd(d, VIRTIO_PCI_COMMON_STATUS, 1);
}

static inline void vdrv_set_status(struct vdrv *d, uint8_t s)
{
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, s);
}

static inline uint64_t vdrv_device_features(struct vdrv *d)
{
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    uint64_t lo = vdrv_bar_rd(d, VIRTIO_PCI_COMMON_DF, 4);
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    return lo | vdrv_bar_rd(d, VIRTIO_PCI_COMMON_DF, 4) << 32;
}

static inline void vdrv_write_features(struct vdrv *d, uint64_t f)
{
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)f);
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(f >> 32));
}

/* Queue registers (§4.1.4.3), each 64-bit address as two 32-bit halves as
 * a driver may write them; then queue_enable. */
static inline void vdrv_setup_queue(struct vdrv *d, unsigned q, uint16_t size, uint64_t desc,
                                    uint64_t avail, uint64_t used)
{
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)desc);
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_Q_DESCHI, 4, (uint32_t)(desc >> 32));
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)avail);
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, (uint32_t)(avail >> 32));
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)used);
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_Q_USEDHI, 4, (uint32_t)(used >> 32));
    vdrv_bar_wr(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

/* §3.1.1 from reset to DRIVER_OK: maps BAR0, accepts the device's
 * features that are in want, sets up queues 0..nq-1 of d->qsz with zeroed
 * rings at their VDRV_RING_STRIDE places. Returns the features accepted. */
static inline uint64_t vdrv_init(struct vdrv *d, uint64_t want, unsigned nq)
{
    cr_assert_leq(nq, VDRV_MAX_QUEUES);
    vdrv_map_bar(d);
    vdrv_set_status(d, 0);
    vdrv_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    uint64_t f = vdrv_device_features(d) & want;
    cr_assert(f & (1ULL << VIRTIO_F_VERSION_1), "the device offers VERSION_1");
    vdrv_write_features(d, f);
    vdrv_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                    VIRTIO_CONFIG_S_FEATURES_OK);
    cr_assert(vdrv_status(d) & VIRTIO_CONFIG_S_FEATURES_OK, "FEATURES_OK accepted");
    static const uint8_t zero[0x1000];
    for (unsigned q = 0; q < nq; q++) {
        uint64_t base = d->ring_base + VDRV_RING_STRIDE * q;
        d->q[q] = (struct vdrv_queue){ .desc = base, .avail = base + 0x1000, .used = base + 0x2000 };
        cr_assert_eq(gm_write(d->gm, d->q[q].avail, zero, sizeof(zero)), 0);
        cr_assert_eq(gm_write(d->gm, d->q[q].used, zero, sizeof(zero)), 0);
        vdrv_setup_queue(d, q, d->qsz, d->q[q].desc, d->q[q].avail, d->q[q].used);
    }
    vdrv_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert(vdrv_status(d) & VIRTIO_CONFIG_S_DRIVER_OK, "DRIVER_OK accepted");
    return f;
}

/* Writes a chain of n buffers into the next free descriptors and publishes
 * its head in the available ring (§2.7.13); returns the head. */
static inline uint16_t vdrv_add_chain(struct vdrv *d, unsigned q, const struct vdrv_seg *s, unsigned n)
{
    struct vdrv_queue *vq = &d->q[q];
    uint16_t head = vq->next_desc;
    for (unsigned i = 0; i < n; i++) {
        uint16_t idx = (uint16_t)((head + i) % d->qsz);
        struct vring_desc desc = {
            .addr = s[i].gpa, .len = s[i].len,
            .flags = (uint16_t)((s[i].write ? VRING_DESC_F_WRITE : 0) |
                                (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
            .next = (uint16_t)((idx + 1) % d->qsz),
        };
        cr_assert_eq(gm_write(d->gm, vq->desc + 16ULL * idx, &desc, sizeof(desc)), 0);
    }
    vq->next_desc = (uint16_t)((head + n) % d->qsz);
    cr_assert_eq(gm_write(d->gm, vq->avail + 4 + 2ULL * (vq->avail_idx % d->qsz), &head, 2), 0);
    vq->avail_idx++;
    /* the ring entry before the index that publishes it (§2.7.13.2) */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    cr_assert_eq(gm_write(d->gm, vq->avail + 2, &vq->avail_idx, 2), 0);
    return head;
}

/* The notification (§4.1.4.4; our notify_off_multiplier is 4). */
static inline void vdrv_kick(struct vdrv *d, unsigned q)
{
    vdrv_bar_wr(d, VIRTIO_PCI_NOTIFY_OFF + 4 * q, 2, q);
}

static inline uint16_t vdrv_used_idx(struct vdrv *d, unsigned q)
{
    uint16_t v;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    cr_assert_eq(gm_read(d->gm, d->q[q].used + 2, &v, 2), 0);
    return v;
}

/* Waits up to ms for the device to return n more chains on q. False if it
 * did not; else consumes them and gives the used element (id, len) of the
 * last. */
static inline bool vdrv_wait_used(struct vdrv *d, unsigned q, uint16_t n, uint32_t *id,
                                  uint32_t *len, int ms)
{
    struct vdrv_queue *vq = &d->q[q];
    uint16_t target = (uint16_t)(vq->used_seen + n);
    /* used->idx wraps at 2^16: "not there yet" is target - idx in (0, 2^15) */
    for (int i = 0; i < ms && (uint16_t)(target - vdrv_used_idx(d, q)) - 1u < 0x8000u; i++)
        usleep(1000);
    if (vdrv_used_idx(d, q) != target)
        return false;
    uint32_t e[2];
    cr_assert_eq(gm_read(d->gm, vq->used + 4 + 8ULL * ((uint16_t)(target - 1) % d->qsz), e, 8), 0);
    if (id)
        *id = e[0];
    if (len)
        *len = e[1];
    vq->used_seen = target;
    return true;
}
#endif
