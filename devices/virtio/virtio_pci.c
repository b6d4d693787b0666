/* virtio-pci modern transport: see devices/virtio/virtio_pci.h for the BAR and
 * capability layout, the status machine and the interrupt paths.
 *
 * Common configuration registers (virtio 1.2 §4.1.4.3), BAR0 + 0x00:
 *   0x00 device_feature_select  RW   0x04 device_feature  RO (32 bits of 64)
 *   0x08 driver_feature_select  RW   0x0C driver_feature  RW (ignored after
 *                                                            FEATURES_OK)
 *   0x10 msix_config            RW   0x12 num_queues      RO
 *   0x14 device_status          RW   0x15 config_generation RO
 *   0x16 queue_select           RW   0x18 queue_size      RW
 *   0x1A queue_msix_vector      RW   0x1C queue_enable    RW (1 only)
 *   0x1E queue_notify_off       RO   0x20 queue_desc      RW (lo, hi)
 *   0x28 queue_driver           RW   0x30 queue_device    RW (lo, hi)
 * Queue registers of a queue_select past the last queue read 0 (size 0
 * says "unavailable", §4.1.4.3.1) and ignore writes. Queue size and ring
 * addresses are frozen once the queue is enabled. A vector past the MSI-X
 * table reads back NO_VECTOR (§4.1.5.1.2). Accesses of any width are
 * accepted: reads see the register image, writes update every register
 * they touch. */
#include "devices/virtio/virtio_pci.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#define VIRTIO_PCI_NO_LEGACY
#include <linux/virtio_pci.h>

#include "vmm/bus.h"
#include "vmm/dev_env.h"
#include "vmm/ioeventfd.h"
#include "vmm/irq.h"
#include "vmm/log.h"

#define COMP "virtio-pci"

#define ISR_QUEUE   0x1
#define ISR_CONFIG  0x2   /* VIRTIO_PCI_ISR_CONFIG */

#define TRANSPORT_FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | \
                            (1ULL << VIRTIO_RING_F_EVENT_IDX))

#define IOEVENTFD_NONE   (~0u)

/* ---- helpers ---- */

static void put_le(uint8_t *p, uint64_t v, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned len)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void efd_signal(int fd)
{
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
        log_guest_once(COMP, "cannot signal an eventfd: %s", strerror(errno));
}

/* Empty an eventfd without blocking (they are blocking for io_uring). */
static void efd_drain(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v;
    if (fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN))
        (void)!read(fd, &v, sizeof(v));
}

static bool efd_pending(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* ---- interrupts ---- */

static void intx_update_locked(struct virtio_pci *vp)
{
    bool want = (atomic_load(&vp->isr) != 0) && !atomic_load(&vp->intx_disabled) &&
                !atomic_load(&vp->msix_on) && vp->intx_gsi >= 0;
    if (want != vp->intx_level) {
        vp->intx_level = want;
        dev_irq_set(vp->vm.env, (unsigned)vp->intx_gsi, want);
    }
}

static void intx_raise(struct virtio_pci *vp, uint8_t bits)
{
    pthread_mutex_lock(&vp->intx_lock);
    atomic_fetch_or(&vp->isr, bits);
    intx_update_locked(vp);
    pthread_mutex_unlock(&vp->intx_lock);
}

static uint8_t isr_read_clear(struct virtio_pci *vp)
{
    pthread_mutex_lock(&vp->intx_lock);
    uint8_t v = atomic_exchange(&vp->isr, 0);
    intx_update_locked(vp);
    pthread_mutex_unlock(&vp->intx_lock);
    return v;
}

void virtio_pci_queue_interrupt(struct virtio_pci *vp, unsigned q)
{
    if (q >= vp->cfg.nr_queues)
        return;
    if (atomic_load(&vp->msix_on)) {
        uint16_t v = atomic_load(&vp->queues[q].vector);
        if (v < vp->nr_vectors)
            efd_signal(vp->vec_fd[v]);
        return;
    }
    intx_raise(vp, ISR_QUEUE);
}

void virtio_pci_config_interrupt(struct virtio_pci *vp)
{
    if (atomic_load(&vp->msix_on)) {
        atomic_fetch_or(&vp->isr, ISR_CONFIG);
        uint16_t v = atomic_load(&vp->config_vector);
        if (v < vp->nr_vectors)
            efd_signal(vp->vec_fd[v]);
        return;
    }
    intx_raise(vp, ISR_CONFIG);
}

void virtio_pci_set_needs_reset(struct virtio_pci *vp)
{
    uint8_t old = atomic_fetch_or(&vp->status, VIRTIO_CONFIG_S_NEEDS_RESET);
    if (old & VIRTIO_CONFIG_S_NEEDS_RESET)
        return;
    log_warn(COMP, "%s: the driver broke the protocol; the device needs a reset "
             "(DEVICE_NEEDS_RESET) before it works again", vp->name);
    virtio_pci_config_interrupt(vp);
}

/* MSI-X vector callbacks for the PCI layer's devices/pci/msix.c: a vector
 * is a KVM MSI route with the vector's eventfd bound to it as an irqfd
 * while unmasked. */
static int vp_msix_enable(void *opaque, enum pci_irq_kind kind, unsigned nr)
{
    (void)opaque;
    (void)kind;
    (void)nr;
    return 0;   /* the eventfds exist from the start */
}

static void vp_msix_disable(void *opaque, enum pci_irq_kind kind)
{
    (void)opaque;
    (void)kind;
}

static int vp_msix_route(void *opaque, enum pci_irq_kind kind, unsigned v, uint64_t addr,
                         uint32_t data)
{
    struct virtio_pci *vp = opaque;

    (void)kind;
    if (v >= vp->nr_vectors)
        return -EINVAL;
    return irq_msi_vector_route(vp->vm.irq, vp->vm.vm_fd, vp->vec_fd[v], &vp->vec_gsi[v],
                                &vp->vec_attached[v], addr, data);
}

static void vp_msix_unroute(void *opaque, enum pci_irq_kind kind, unsigned v)
{
    struct virtio_pci *vp = opaque;

    (void)kind;
    if (v < vp->nr_vectors)
        irq_msi_vector_unroute(vp->vm.irq, vp->vm.vm_fd, vp->vec_fd[v], vp->vec_gsi[v],
                               &vp->vec_attached[v]);
}

static bool vp_msix_pending(void *opaque, enum pci_irq_kind kind, unsigned v)
{
    struct virtio_pci *vp = opaque;

    (void)kind;
    return v < vp->nr_vectors && efd_pending(vp->vec_fd[v]);
}

static const struct pci_irq_ops vp_msix_ops = {
    .enable = vp_msix_enable, .disable = vp_msix_disable, .route = vp_msix_route,
    .unroute = vp_msix_unroute, .pending = vp_msix_pending,
};

/* ---- device status, start, reset ---- */

static void queue_reset(struct virtio_pci *vp, struct virtio_pci_queue *q)
{
    virtq_stop(&q->vq);
    q->size = vp->cfg.queue_max_size;
    atomic_store(&q->vector, VIRTIO_PCI_NO_VECTOR);
    q->enabled = false;
    q->desc = q->driver = q->device = 0;
    efd_drain(q->kick_fd);
}

/* §2.4 device reset. Caller holds vp->lock. */
static void device_reset_locked(struct virtio_pci *vp)
{
    if (vp->device_started) {
        vp->cfg.ops->stop(vp->cfg.opaque);
        vp->device_started = false;
    }
    for (unsigned i = 0; i < vp->cfg.nr_queues; i++)
        queue_reset(vp, &vp->queues[i]);
    vp->driver_features = 0;
    vp->dfselect = vp->gfselect = 0;
    vp->queue_select = 0;
    atomic_store(&vp->config_vector, VIRTIO_PCI_NO_VECTOR);
    for (unsigned v = 0; v < vp->nr_vectors; v++)
        efd_drain(vp->vec_fd[v]);
    pthread_mutex_lock(&vp->intx_lock);
    atomic_store(&vp->isr, 0);
    intx_update_locked(vp);
    pthread_mutex_unlock(&vp->intx_lock);
    atomic_store(&vp->status, 0);
}

static void device_start_locked(struct virtio_pci *vp)
{
    bool indirect = vp->driver_features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
    bool event_idx = vp->driver_features & (1ULL << VIRTIO_RING_F_EVENT_IDX);

    for (unsigned i = 0; i < vp->cfg.nr_queues; i++) {
        struct virtio_pci_queue *q = &vp->queues[i];
        if (!q->enabled)
            continue;
        if (virtq_start(&q->vq, vp->vm.env->gm, q->size, vp->cfg.queue_max_size, q->desc,
                        q->driver, q->device, indirect, event_idx)) {
            for (unsigned j = 0; j < i; j++)
                virtq_stop(&vp->queues[j].vq);
            virtio_pci_set_needs_reset(vp);
            return;
        }
    }
    int r = vp->cfg.ops->start(vp->cfg.opaque, vp->driver_features);
    if (r) {
        log_err(COMP, "%s: the device could not start: %s", vp->name, strerror(-r));
        for (unsigned i = 0; i < vp->cfg.nr_queues; i++)
            virtq_stop(&vp->queues[i].vq);
        virtio_pci_set_needs_reset(vp);
        return;
    }
    vp->device_started = true;
}

static void set_status_locked(struct virtio_pci *vp, uint8_t v)
{
    uint8_t old = atomic_load(&vp->status);
    uint8_t nv;

    if (v == 0) {
        device_reset_locked(vp);
        return;
    }
    /* The driver never clears its bits but by a reset (§2.1.1); NEEDS_RESET
     * is the device's. */
    nv = (uint8_t)((old | v) & ~VIRTIO_CONFIG_S_NEEDS_RESET);
    nv |= old & VIRTIO_CONFIG_S_NEEDS_RESET;
    if ((nv & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
        uint64_t extra = vp->driver_features & ~vp->device_features;
        if (extra) {
            log_guest_once(COMP, "%s: the driver accepted feature bits 0x%" PRIx64 " the device "
                           "does not offer; FEATURES_OK refused", vp->name, extra);
            nv &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
        } else if (!(vp->driver_features & (1ULL << VIRTIO_F_VERSION_1))) {
            log_guest_once(COMP, "%s: the driver did not accept VIRTIO_F_VERSION_1 (a legacy "
                           "driver?); FEATURES_OK refused", vp->name);
            nv &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
        }
    }
    bool start = (nv & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK);
    if (start && !(nv & VIRTIO_CONFIG_S_FEATURES_OK)) {
        log_guest_once(COMP, "%s: DRIVER_OK without FEATURES_OK; ignored", vp->name);
        nv &= (uint8_t)~VIRTIO_CONFIG_S_DRIVER_OK;
        start = false;
    }
    /* NEEDS_RESET may be set concurrently by an I/O thread: keep it. */
    uint8_t cur = atomic_load(&vp->status);
    while (!atomic_compare_exchange_weak(&vp->status, &cur,
                                         (uint8_t)(nv | (cur & VIRTIO_CONFIG_S_NEEDS_RESET))))
        ;
    if (start && !(atomic_load(&vp->status) & VIRTIO_CONFIG_S_NEEDS_RESET))
        device_start_locked(vp);
}

/* ---- common configuration ---- */

static struct virtio_pci_queue *selected_queue(struct virtio_pci *vp)
{
    return vp->queue_select < vp->cfg.nr_queues ? &vp->queues[vp->queue_select] : NULL;
}

/* The register image (little-endian, as the guest sees it). */
static void common_image(struct virtio_pci *vp, uint8_t img[0x40])
{
    struct virtio_pci_queue *q = selected_queue(vp);

    memset(img, 0, 0x40);
    put_le(img + VIRTIO_PCI_COMMON_DFSELECT, vp->dfselect, 4);
    put_le(img + VIRTIO_PCI_COMMON_DF,
           vp->dfselect < 2 ? (uint32_t)(vp->device_features >> (32 * vp->dfselect)) : 0, 4);
    put_le(img + VIRTIO_PCI_COMMON_GFSELECT, vp->gfselect, 4);
    put_le(img + VIRTIO_PCI_COMMON_GF,
           vp->gfselect < 2 ? (uint32_t)(vp->driver_features >> (32 * vp->gfselect)) : 0, 4);
    put_le(img + VIRTIO_PCI_COMMON_MSIX, atomic_load(&vp->config_vector), 2);
    put_le(img + VIRTIO_PCI_COMMON_NUMQ, vp->cfg.nr_queues, 2);
    img[VIRTIO_PCI_COMMON_STATUS] = atomic_load(&vp->status);
    img[VIRTIO_PCI_COMMON_CFGGENERATION] = vp->generation;
    put_le(img + VIRTIO_PCI_COMMON_Q_SELECT, vp->queue_select, 2);
    if (!q)
        return;
    put_le(img + VIRTIO_PCI_COMMON_Q_SIZE, q->size, 2);
    put_le(img + VIRTIO_PCI_COMMON_Q_MSIX, atomic_load(&q->vector), 2);
    put_le(img + VIRTIO_PCI_COMMON_Q_ENABLE, q->enabled, 2);
    put_le(img + VIRTIO_PCI_COMMON_Q_NOFF, vp->queue_select, 2);
    put_le(img + VIRTIO_PCI_COMMON_Q_DESCLO, q->desc, 8);
    put_le(img + VIRTIO_PCI_COMMON_Q_AVAILLO, q->driver, 8);
    put_le(img + VIRTIO_PCI_COMMON_Q_USEDLO, q->device, 8);
}

static void set_u64_half(uint64_t *field, uint32_t off, uint32_t base, uint32_t v)
{
    if (off == base)
        *field = (*field & 0xFFFFFFFF00000000ULL) | v;
    else
        *field = (*field & 0xFFFFFFFFULL) | (uint64_t)v << 32;
}

/* One register got value v (the image after the write). */
static void common_field_write(struct virtio_pci *vp, uint32_t off, uint32_t v)
{
    struct virtio_pci_queue *q = selected_queue(vp);
    uint8_t status = atomic_load(&vp->status);

    switch (off) {
    case VIRTIO_PCI_COMMON_DF:
    case VIRTIO_PCI_COMMON_NUMQ:
    case VIRTIO_PCI_COMMON_CFGGENERATION:
    case VIRTIO_PCI_COMMON_Q_NOFF:
        return;   /* read-only */
    case VIRTIO_PCI_COMMON_DFSELECT:
        vp->dfselect = v;
        return;
    case VIRTIO_PCI_COMMON_GFSELECT:
        vp->gfselect = v;
        return;
    case VIRTIO_PCI_COMMON_GF:
        if (status & VIRTIO_CONFIG_S_FEATURES_OK) {
            log_guest_once(COMP, "%s: driver features written after FEATURES_OK; ignored",
                           vp->name);
            return;
        }
        if (vp->gfselect < 2)
            set_u64_half(&vp->driver_features, vp->gfselect, 0, v);
        return;
    case VIRTIO_PCI_COMMON_MSIX:
        atomic_store(&vp->config_vector, (uint16_t)v < vp->nr_vectors ? (uint16_t)v
                                                                      : VIRTIO_PCI_NO_VECTOR);
        return;
    case VIRTIO_PCI_COMMON_STATUS:
        set_status_locked(vp, (uint8_t)v);
        return;
    case VIRTIO_PCI_COMMON_Q_SELECT:
        vp->queue_select = (uint16_t)v;
        return;
    default:
        break;
    }
    if (!q)
        return;   /* an unavailable queue ignores writes */
    if (off == VIRTIO_PCI_COMMON_Q_MSIX) {
        atomic_store(&q->vector, (uint16_t)v < vp->nr_vectors ? (uint16_t)v : VIRTIO_PCI_NO_VECTOR);
        return;
    }
    if (off == VIRTIO_PCI_COMMON_Q_ENABLE) {
        if (v != 1)
            return;   /* §4.1.4.3.2: the driver MUST NOT write 0 */
        if (status & VIRTIO_CONFIG_S_DRIVER_OK) {
            log_guest_once(COMP, "%s: queue %u enabled after DRIVER_OK; ignored", vp->name,
                           vp->queue_select);
            return;
        }
        q->enabled = true;
        return;
    }
    if (q->enabled) {
        log_guest_once(COMP, "%s: queue %u reconfigured while enabled; ignored", vp->name,
                       vp->queue_select);
        return;
    }
    switch (off) {
    case VIRTIO_PCI_COMMON_Q_SIZE:
        q->size = (uint16_t)v;
        break;
    case VIRTIO_PCI_COMMON_Q_DESCLO:
    case VIRTIO_PCI_COMMON_Q_DESCHI:
        set_u64_half(&q->desc, off, VIRTIO_PCI_COMMON_Q_DESCLO, v);
        break;
    case VIRTIO_PCI_COMMON_Q_AVAILLO:
    case VIRTIO_PCI_COMMON_Q_AVAILHI:
        set_u64_half(&q->driver, off, VIRTIO_PCI_COMMON_Q_AVAILLO, v);
        break;
    case VIRTIO_PCI_COMMON_Q_USEDLO:
    case VIRTIO_PCI_COMMON_Q_USEDHI:
        set_u64_half(&q->device, off, VIRTIO_PCI_COMMON_Q_USEDLO, v);
        break;
    default:
        break;   /* read-only */
    }
}

/* Registers in offset order: (offset, size). */
static const struct { uint8_t off, size; } common_fields[] = {
    { VIRTIO_PCI_COMMON_DFSELECT, 4 }, { VIRTIO_PCI_COMMON_DF, 4 },
    { VIRTIO_PCI_COMMON_GFSELECT, 4 }, { VIRTIO_PCI_COMMON_GF, 4 },
    { VIRTIO_PCI_COMMON_MSIX, 2 }, { VIRTIO_PCI_COMMON_NUMQ, 2 },
    { VIRTIO_PCI_COMMON_STATUS, 1 }, { VIRTIO_PCI_COMMON_CFGGENERATION, 1 },
    { VIRTIO_PCI_COMMON_Q_SELECT, 2 }, { VIRTIO_PCI_COMMON_Q_SIZE, 2 },
    { VIRTIO_PCI_COMMON_Q_MSIX, 2 }, { VIRTIO_PCI_COMMON_Q_ENABLE, 2 },
    { VIRTIO_PCI_COMMON_Q_NOFF, 2 },
    { VIRTIO_PCI_COMMON_Q_DESCLO, 4 }, { VIRTIO_PCI_COMMON_Q_DESCHI, 4 },
    { VIRTIO_PCI_COMMON_Q_AVAILLO, 4 }, { VIRTIO_PCI_COMMON_Q_AVAILHI, 4 },
    { VIRTIO_PCI_COMMON_Q_USEDLO, 4 }, { VIRTIO_PCI_COMMON_Q_USEDHI, 4 },
};

static void common_write_locked(struct virtio_pci *vp, uint32_t off, const uint8_t *data,
                                unsigned len)
{
    uint8_t img[0x40];

    common_image(vp, img);
    memcpy(img + off, data, len);
    for (size_t i = 0; i < sizeof(common_fields) / sizeof(common_fields[0]); i++) {
        uint32_t fo = common_fields[i].off, fs = common_fields[i].size;
        if (fo + fs <= off || fo >= off + len)
            continue;
        common_field_write(vp, fo, (uint32_t)get_le(img + fo, fs));
        /* queue_select may have changed what later fields refer to: take
         * the rest of the written bytes over a fresh image. */
        if (fo == VIRTIO_PCI_COMMON_Q_SELECT) {
            uint8_t fresh[0x40];
            common_image(vp, fresh);
            for (uint32_t b = fo + fs; b < off + len && b < sizeof(img); b++)
                fresh[b] = img[b];
            memcpy(img, fresh, sizeof(img));
        }
    }
}

/* ---- BAR0 ---- */

static void notify_write(struct virtio_pci *vp, uint64_t off)
{
    uint64_t q = off / VIRTIO_PCI_NOTIFY_MULT;
    if (q < vp->cfg.nr_queues)
        efd_signal(vp->queues[q].kick_fd);
    else
        log_guest_once(COMP, "%s: notification for queue %" PRIu64 " of %u", vp->name, q,
                       vp->cfg.nr_queues);
}

int virtio_pci_bar_read(struct virtio_pci *vp, uint64_t off, void *data, unsigned len)
{
    uint8_t *out = data;

    if (len == 0 || len > 8 || off >= VIRTIO_PCI_BAR_SIZE || len > VIRTIO_PCI_BAR_SIZE - off)
        return -EINVAL;
    memset(out, 0, len);
    if (off < VIRTIO_PCI_COMMON_OFF + 0x40 && off + len <= 0x40) {
        uint8_t img[0x40];
        pthread_mutex_lock(&vp->lock);
        common_image(vp, img);
        pthread_mutex_unlock(&vp->lock);
        memcpy(out, img + off, len);
    } else if (off == VIRTIO_PCI_ISR_OFF) {
        out[0] = isr_read_clear(vp);
    } else if (off >= VIRTIO_PCI_DEVCFG_OFF && off < VIRTIO_PCI_DEVCFG_OFF + VIRTIO_PCI_DEVCFG_MAX) {
        uint32_t o = (uint32_t)(off - VIRTIO_PCI_DEVCFG_OFF);
        if (o < vp->cfg.cfg_size && len <= vp->cfg.cfg_size - o && vp->cfg.ops->cfg_read)
            vp->cfg.ops->cfg_read(vp->cfg.opaque, o, out, len);
    } else if (off >= VIRTIO_PCI_MSIX_TABLE_OFF && off < VIRTIO_PCI_MSIX_PBA_OFF) {
        pthread_mutex_lock(&vp->lock);
        int r = pci_msix_table_read(&vp->msix, off - VIRTIO_PCI_MSIX_TABLE_OFF, out, len);
        pthread_mutex_unlock(&vp->lock);
        if (r)
            memset(out, 0, len);
    } else if (off >= VIRTIO_PCI_MSIX_PBA_OFF) {
        pthread_mutex_lock(&vp->lock);
        int r = pci_msix_pba_read(&vp->msix, off - VIRTIO_PCI_MSIX_PBA_OFF, out, len);
        pthread_mutex_unlock(&vp->lock);
        if (r)
            memset(out, 0, len);
    }
    return 0;   /* everything else reads 0 */
}

int virtio_pci_bar_write(struct virtio_pci *vp, uint64_t off, const void *data, unsigned len)
{
    const uint8_t *in = data;

    if (len == 0 || len > 8 || off >= VIRTIO_PCI_BAR_SIZE || len > VIRTIO_PCI_BAR_SIZE - off)
        return -EINVAL;
    if (off + len <= 0x40) {
        pthread_mutex_lock(&vp->lock);
        common_write_locked(vp, (uint32_t)off, in, len);
        pthread_mutex_unlock(&vp->lock);
    } else if (off >= VIRTIO_PCI_NOTIFY_OFF && off < VIRTIO_PCI_MSIX_TABLE_OFF) {
        notify_write(vp, off - VIRTIO_PCI_NOTIFY_OFF);
    } else if (off >= VIRTIO_PCI_DEVCFG_OFF && off < VIRTIO_PCI_DEVCFG_OFF + VIRTIO_PCI_DEVCFG_MAX) {
        uint32_t o = (uint32_t)(off - VIRTIO_PCI_DEVCFG_OFF);
        if (o < vp->cfg.cfg_size && len <= vp->cfg.cfg_size - o && vp->cfg.ops->cfg_write)
            vp->cfg.ops->cfg_write(vp->cfg.opaque, o, in, len);
    } else if (off >= VIRTIO_PCI_MSIX_TABLE_OFF && off < VIRTIO_PCI_MSIX_PBA_OFF) {
        pthread_mutex_lock(&vp->lock);
        pci_msix_table_write(&vp->msix, off - VIRTIO_PCI_MSIX_TABLE_OFF, in, len);
        pthread_mutex_unlock(&vp->lock);
    } else if (off >= VIRTIO_PCI_MSIX_PBA_OFF) {
        pthread_mutex_lock(&vp->lock);
        pci_msix_pba_write(&vp->msix, off - VIRTIO_PCI_MSIX_PBA_OFF, in, len);
        pthread_mutex_unlock(&vp->lock);
    }
    return 0;   /* ISR and holes ignore writes */
}

static int bar_bus_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    return virtio_pci_bar_read(opaque, off, data, len);
}

static int bar_bus_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    return virtio_pci_bar_write(opaque, off, data, len);
}

static const struct bus_ops bar_bus_ops = { .read = bar_bus_read, .write = bar_bus_write };

static void ioeventfds_off(struct virtio_pci *vp, uint64_t base)
{
    for (unsigned i = 0; i < vp->cfg.nr_queues; i++) {
        if (vp->ioeventfd_len[i] == IOEVENTFD_NONE)
            continue;
        ioeventfd_deassign(vp->vm.vm_fd, vp->queues[i].kick_fd,
                           base + VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * i,
                           vp->ioeventfd_len[i], false, NULL);
        vp->ioeventfd_len[i] = IOEVENTFD_NONE;
    }
}

static void ioeventfds_on(struct virtio_pci *vp, uint64_t base)
{
    for (unsigned i = 0; i < vp->cfg.nr_queues; i++) {
        uint64_t a = base + VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * i;
        /* Any length first: KVM's fast MMIO path; then the 16-bit write
         * the driver makes (§4.1.5.2). */
        int r = ioeventfd_assign(vp->vm.vm_fd, vp->queues[i].kick_fd, a, 0, false, NULL);
        if (r == 0) {
            vp->ioeventfd_len[i] = 0;
            continue;
        }
        r = ioeventfd_assign(vp->vm.vm_fd, vp->queues[i].kick_fd, a, 2, false, NULL);
        if (r == 0) {
            vp->ioeventfd_len[i] = 2;
            continue;
        }
        log_warn(COMP, "%s: no ioeventfd for queue %u at 0x%" PRIx64 " (%s); its notifications "
                 "take the slower exit path", vp->name, i, a, strerror(-r));
    }
}

static void vp_bar_map(struct pci_device *d, unsigned bar, uint64_t addr)
{
    struct virtio_pci *vp = d->opaque;

    if (bar != 0)
        return;
    if (vp->bar_addr != PCI_BAR_UNMAPPED) {
        ioeventfds_off(vp, vp->bar_addr);
        bus_unregister(vp->vm.env->mmio, vp->bar_addr);
        vp->bar_addr = PCI_BAR_UNMAPPED;
    }
    if (addr == PCI_BAR_UNMAPPED)
        return;
    int r = bus_register(vp->vm.env->mmio, addr, VIRTIO_PCI_BAR_SIZE, vp->name, &bar_bus_ops, vp);
    if (r) {
        log_guest_once(COMP, "%s: BAR0 at 0x%" PRIx64 " overlaps another range; not decoded",
                       vp->name, addr);
        return;
    }
    vp->bar_addr = addr;
    ioeventfds_on(vp, addr);
}

/* ---- config space ---- */

#define PCICFG_BAR    (VIRTIO_PCI_CAP_PCICFG_AT + VIRTIO_PCI_CAP_BAR)
#define PCICFG_OFFSET (VIRTIO_PCI_CAP_PCICFG_AT + VIRTIO_PCI_CAP_OFFSET)
#define PCICFG_LENGTH (VIRTIO_PCI_CAP_PCICFG_AT + VIRTIO_PCI_CAP_LENGTH)
#define PCICFG_DATA   (VIRTIO_PCI_CAP_PCICFG_AT + 16)

/* The window the PCI cfg access capability selects, or false if it
 * selects nothing valid (§4.1.4.9.1: length 1, 2 or 4, aligned). */
static bool pcicfg_window(const struct pci_device *d, uint32_t *off, unsigned *len)
{
    uint8_t bar = (uint8_t)pci_cfg_get(d, PCICFG_BAR, 1);
    uint32_t o = pci_cfg_get(d, PCICFG_OFFSET, 4);
    uint32_t l = pci_cfg_get(d, PCICFG_LENGTH, 4);

    if (bar != 0 || (l != 1 && l != 2 && l != 4) || (o & (l - 1)) || o >= VIRTIO_PCI_BAR_SIZE)
        return false;
    *off = o;
    *len = l;
    return true;
}

static int vp_cfg_read(struct pci_device *d, uint32_t off, unsigned len, uint32_t *val)
{
    struct virtio_pci *vp = d->opaque;
    uint32_t o;
    unsigned l;
    uint8_t buf[4] = { 0 };

    if (off + len <= PCICFG_DATA || off >= PCICFG_DATA + 4)
        return PCI_CFG_GENERIC;
    if (pcicfg_window(d, &o, &l))
        virtio_pci_bar_read(vp, o, buf, l);
    uint32_t v = (uint32_t)get_le(buf, 4);
    /* off may start inside the data field (aligned to len). */
    *val = (uint32_t)(v >> (8 * (off - PCICFG_DATA)));
    if (len < 4)
        *val &= (1u << (8 * len)) - 1;
    return 0;
}

static int vp_cfg_write(struct pci_device *d, uint32_t off, unsigned len, uint32_t val)
{
    struct virtio_pci *vp = d->opaque;
    uint32_t o;
    unsigned l;
    uint8_t buf[4] = { 0 };

    if (off + len <= PCICFG_DATA || off >= PCICFG_DATA + 4)
        return PCI_CFG_GENERIC;
    if (!pcicfg_window(d, &o, &l))
        return 0;
    put_le(buf + (off - PCICFG_DATA), val, len);
    virtio_pci_bar_write(vp, o, buf, l);
    return 0;
}

static void vp_cfg_written(struct pci_device *d, uint32_t off, unsigned len, uint32_t old)
{
    struct virtio_pci *vp = d->opaque;
    const uint32_t ctrl = VIRTIO_PCI_CAP_MSIX_AT + PCI_MSIX_FLAGS;

    (void)old;
    if (off < PCI_COMMAND + 2 && off + len > PCI_COMMAND) {
        uint16_t cmd = (uint16_t)pci_cfg_get(d, PCI_COMMAND, 2);
        pthread_mutex_lock(&vp->intx_lock);
        atomic_store(&vp->intx_disabled, (cmd & PCI_COMMAND_INTX_DISABLE) != 0);
        intx_update_locked(vp);
        pthread_mutex_unlock(&vp->intx_lock);
    }
    if (off < ctrl + 2 && off + len > ctrl) {
        uint16_t c = (uint16_t)pci_cfg_get(d, ctrl, 2);
        bool on = c & PCI_MSIX_FLAGS_ENABLE;
        pthread_mutex_lock(&vp->lock);
        pci_msix_control(&vp->msix, on, c & PCI_MSIX_FLAGS_MASKALL);
        pthread_mutex_unlock(&vp->lock);
        pthread_mutex_lock(&vp->intx_lock);
        atomic_store(&vp->msix_on, on);
        intx_update_locked(vp);   /* MSI-X on: INTx is not used (PCI 3.0 §6.8.1) */
        pthread_mutex_unlock(&vp->intx_lock);
    }
}

static const struct pci_device_ops vp_pci_ops = {
    .cfg_read = vp_cfg_read,
    .cfg_write = vp_cfg_write,
    .cfg_written = vp_cfg_written,
    .bar_map = vp_bar_map,
};

/* A virtio vendor capability (struct virtio_pci_cap, §4.1.4). */
static int add_virtio_cap(struct pci_device *d, uint8_t at, uint8_t type, uint32_t off,
                          uint32_t len, uint8_t cap_len)
{
    int r = pci_cap_add(d, at, PCI_CAP_ID_VNDR, cap_len);
    if (r < 0)
        return r;
    pci_cfg_set(d, at + VIRTIO_PCI_CAP_LEN, 1, cap_len);
    pci_cfg_set(d, at + VIRTIO_PCI_CAP_CFG_TYPE, 1, type);
    pci_cfg_set(d, at + VIRTIO_PCI_CAP_BAR, 1, 0);
    pci_cfg_set(d, at + VIRTIO_PCI_CAP_OFFSET, 4, off);
    pci_cfg_set(d, at + VIRTIO_PCI_CAP_LENGTH, 4, len);
    return 0;
}

static int build_config_space(struct virtio_pci *vp)
{
    struct pci_device *d = &vp->pdev;
    int r = 0;

    d->ops = &vp_pci_ops;
    d->opaque = vp;
    pci_device_init(d, vp->name, VIRTIO_PCI_VENDOR_ID,
                    (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + vp->cfg.device_type),
                    vp->cfg.class_code, VIRTIO_PCI_REVISION, PCI_HEADER_TYPE_NORMAL, PCI_CFG_SIZE);
    pci_cfg_set(d, PCI_SUBSYSTEM_VENDOR_ID, 2, VIRTIO_PCI_VENDOR_ID);
    pci_cfg_set(d, PCI_SUBSYSTEM_ID, 2, VIRTIO_PCI_SUBSYS_ID);
    pci_device_set_intx_pin(d, 1);
    r |= pci_device_set_bar(d, 0, PCI_BAR_MEM64, false, VIRTIO_PCI_BAR_SIZE);

    r |= add_virtio_cap(d, VIRTIO_PCI_CAP_COMMON_AT, VIRTIO_PCI_CAP_COMMON_CFG,
                        VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_SIZE, 16);
    r |= add_virtio_cap(d, VIRTIO_PCI_CAP_NOTIFY_AT, VIRTIO_PCI_CAP_NOTIFY_CFG,
                        VIRTIO_PCI_NOTIFY_OFF, VIRTIO_PCI_NOTIFY_MULT * vp->cfg.nr_queues, 20);
    pci_cfg_set(d, VIRTIO_PCI_CAP_NOTIFY_AT + VIRTIO_PCI_NOTIFY_CAP_MULT, 4,
                VIRTIO_PCI_NOTIFY_MULT);
    r |= add_virtio_cap(d, VIRTIO_PCI_CAP_ISR_AT, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF,
                        1, 16);
    if (vp->cfg.cfg_size)
        r |= add_virtio_cap(d, VIRTIO_PCI_CAP_DEVCFG_AT, VIRTIO_PCI_CAP_DEVICE_CFG,
                            VIRTIO_PCI_DEVCFG_OFF, vp->cfg.cfg_size, 16);
    /* §4.1.4.9: bar, offset, length and the data are the driver's. */
    r |= add_virtio_cap(d, VIRTIO_PCI_CAP_PCICFG_AT, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 20);
    pci_cfg_set_wmask(d, PCICFG_BAR, 1, 0xFF);
    pci_cfg_set_wmask(d, PCICFG_OFFSET, 4, 0xFFFFFFFF);
    pci_cfg_set_wmask(d, PCICFG_LENGTH, 4, 0xFFFFFFFF);
    pci_cfg_set_wmask(d, PCICFG_DATA, 4, 0xFFFFFFFF);

    /* MSI-X (PCI 3.0 §6.8.2): table and PBA in BAR0. */
    const struct pci_msix_cap_info msix = {
        .nr_vectors = vp->nr_vectors,
        .table_bar = 0, .table_offset = VIRTIO_PCI_MSIX_TABLE_OFF,
        .pba_bar = 0, .pba_offset = VIRTIO_PCI_MSIX_PBA_OFF,
    };
    int m = pci_msix_cap_add(d, VIRTIO_PCI_CAP_MSIX_AT, &msix);
    if (m < 0)
        return m;
    return r ? -EINVAL : 0;
}

/* ---- life cycle ---- */

int virtio_pci_init(struct virtio_pci *vp, const struct virtio_pci_vm *vm,
                    const struct virtio_pci_config *cfg)
{
    const char *name = cfg->name ? cfg->name : "virtio";
    int r;

    memset(vp, 0, sizeof(*vp));
    vp->bar_addr = PCI_BAR_UNMAPPED;
    for (unsigned i = 0; i <= VIRTIO_PCI_MAX_QUEUES; i++) {
        vp->vec_fd[i] = -1;
        vp->vec_gsi[i] = -1;
    }
    for (unsigned i = 0; i < VIRTIO_PCI_MAX_QUEUES; i++) {
        vp->queues[i].kick_fd = -1;
        vp->ioeventfd_len[i] = IOEVENTFD_NONE;
    }
    if (!cfg->ops || !cfg->ops->start || !cfg->ops->stop || cfg->nr_queues == 0 ||
        cfg->nr_queues > VIRTIO_PCI_MAX_QUEUES || cfg->queue_max_size == 0 ||
        (cfg->queue_max_size & (cfg->queue_max_size - 1)) || cfg->queue_max_size > VIRTQ_MAX_SIZE ||
        cfg->cfg_size > VIRTIO_PCI_DEVCFG_MAX || !vm->env || !vm->irq) {
        log_err(COMP, "%s: bad transport configuration (%u queues of up to %u, %u config bytes)",
                name, cfg->nr_queues, cfg->queue_max_size, cfg->cfg_size);
        return -EINVAL;
    }
    vp->cfg = *cfg;
    vp->vm = *vm;
    snprintf(vp->name, sizeof(vp->name), "%s", name);
    vp->cfg.name = vp->name;
    vp->device_features = cfg->features | TRANSPORT_FEATURES;
    vp->device_features &= ~(1ULL << VIRTIO_F_ACCESS_PLATFORM);
    vp->bar_addr = PCI_BAR_UNMAPPED;
    vp->intx_gsi = -1;
    vp->nr_vectors = cfg->nr_queues + 1;
    atomic_init(&vp->status, 0);
    atomic_init(&vp->isr, 0);
    atomic_init(&vp->config_vector, VIRTIO_PCI_NO_VECTOR);
    atomic_init(&vp->msix_on, false);
    atomic_init(&vp->intx_disabled, false);
    pthread_mutex_init(&vp->lock, NULL);
    pthread_mutex_init(&vp->intx_lock, NULL);

    for (unsigned i = 0; i < cfg->nr_queues; i++) {
        struct virtio_pci_queue *q = &vp->queues[i];
        snprintf(q->name, sizeof(q->name), "%s queue %u", vp->name, i);
        q->vq.name = q->name;
        q->kick_fd = eventfd(0, EFD_CLOEXEC);
        if (q->kick_fd < 0)
            goto fail_errno;
        q->size = cfg->queue_max_size;
        atomic_init(&q->vector, VIRTIO_PCI_NO_VECTOR);
    }
    for (unsigned v = 0; v < vp->nr_vectors; v++) {
        vp->vec_fd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (vp->vec_fd[v] < 0)
            goto fail_errno;
    }
    r = pci_msix_init(&vp->msix, vp->nr_vectors, &vp_msix_ops, vp);
    if (r)
        goto fail;
    r = build_config_space(vp);
    if (r) {
        log_err(COMP, "%s: cannot lay out the PCI config space", vp->name);
        goto fail;
    }
    return 0;

fail_errno:
    r = -errno;
    log_err(COMP, "%s: cannot create eventfds: %s", vp->name, strerror(errno));
fail:
    virtio_pci_fini(vp);
    return r;
}

int virtio_pci_plug(struct virtio_pci *vp, struct pci_bus *bus, struct pci_device *parent,
                    uint8_t devfn, int (*intx_gsi)(void *ctx, const struct pci_device *d,
                                                   uint8_t pin), void *ctx)
{
    struct pci_device *d = &vp->pdev;

    if (parent && parent->is_pcie_port && !pci_cap_find(d, PCI_CAP_ID_EXP)) {
        /* Behind a root port: a PCI Express endpoint (PCIe 5.0 §7.5.3) with
         * a x1 2.5 GT/s link, what QEMU gives virtio behind a port. */
        int r = pci_pcie_cap_add(d, VIRTIO_PCI_CAP_EXP_AT, PCI_EXP_TYPE_ENDPOINT);
        if (r < 0)
            return r;
        pci_cfg_set(d, VIRTIO_PCI_CAP_EXP_AT + PCI_EXP_LNKCAP, 4, 0x1 | 1u << 4);
        pci_cfg_set(d, VIRTIO_PCI_CAP_EXP_AT + PCI_EXP_LNKSTA, 2, 0x1 | 1u << 4);
    }
    int r = pci_bus_add(bus, parent, devfn, d);
    if (r)
        return r;
    vp->bus = bus;
    vp->plugged = true;
    if (intx_gsi) {
        int g = intx_gsi(ctx, d, 1);
        if (g >= 0) {
            vp->intx_gsi = g;
            pci_cfg_set(d, PCI_INTERRUPT_LINE, 1, (uint32_t)g & 0xFF);
        }
    }
    return 0;
}

void virtio_pci_unplug(struct virtio_pci *vp)
{
    if (!vp->cfg.ops)
        return;   /* never initialized */
    if (vp->plugged) {
        pci_bus_remove(vp->bus, &vp->pdev);
        vp->plugged = false;
        vp->bus = NULL;
    }
    if (vp->bar_addr != PCI_BAR_UNMAPPED) {
        ioeventfds_off(vp, vp->bar_addr);
        bus_unregister(vp->vm.env->mmio, vp->bar_addr);
        vp->bar_addr = PCI_BAR_UNMAPPED;
    }
    virtio_pci_reset(vp);
    if (vp->intx_level && vp->intx_gsi >= 0)
        dev_irq_set(vp->vm.env, (unsigned)vp->intx_gsi, 0);
    vp->intx_level = false;
    vp->intx_gsi = -1;
    atomic_store(&vp->intx_disabled, false);
    /* Power-on config space: BARs unassigned, decoding off, MSI-X off. */
    if (build_config_space(vp))
        log_err(COMP, "%s: cannot lay out the PCI config space again", vp->name);
}

void virtio_pci_fini(struct virtio_pci *vp)
{
    if (vp->plugged) {
        pci_bus_remove(vp->bus, &vp->pdev);
        vp->plugged = false;
    }
    if (vp->bar_addr != PCI_BAR_UNMAPPED) {
        ioeventfds_off(vp, vp->bar_addr);
        bus_unregister(vp->vm.env->mmio, vp->bar_addr);
        vp->bar_addr = PCI_BAR_UNMAPPED;
    }
    if (vp->cfg.ops) {
        pthread_mutex_lock(&vp->lock);
        if (vp->device_started) {
            vp->cfg.ops->stop(vp->cfg.opaque);
            vp->device_started = false;
        }
        pthread_mutex_unlock(&vp->lock);
    }
    if (vp->msix.table)
        pci_msix_fini(&vp->msix);   /* unroutes every vector */
    bool removed = false;
    for (unsigned v = 0; v <= VIRTIO_PCI_MAX_QUEUES; v++) {
        if (vp->vec_gsi[v] >= 0) {
            irq_route_remove(vp->vm.irq, (unsigned)vp->vec_gsi[v]);
            vp->vec_gsi[v] = -1;
            removed = true;
        }
        if (vp->vec_fd[v] >= 0)
            close(vp->vec_fd[v]);
        vp->vec_fd[v] = -1;
    }
    if (removed)
        irq_commit(vp->vm.irq);
    if (vp->intx_level && vp->intx_gsi >= 0)
        dev_irq_set(vp->vm.env, (unsigned)vp->intx_gsi, 0);
    vp->intx_level = false;
    for (unsigned i = 0; i < VIRTIO_PCI_MAX_QUEUES; i++) {
        if (vp->queues[i].kick_fd >= 0)
            close(vp->queues[i].kick_fd);
        vp->queues[i].kick_fd = -1;
    }
    if (vp->cfg.ops) {
        pthread_mutex_destroy(&vp->lock);
        pthread_mutex_destroy(&vp->intx_lock);
        vp->cfg.ops = NULL;
    }
}

void virtio_pci_reset(struct virtio_pci *vp)
{
    pthread_mutex_lock(&vp->lock);
    device_reset_locked(vp);
    pci_msix_reset(&vp->msix);
    pthread_mutex_unlock(&vp->lock);
    pthread_mutex_lock(&vp->intx_lock);
    atomic_store(&vp->msix_on, false);
    intx_update_locked(vp);
    pthread_mutex_unlock(&vp->intx_lock);
}

struct virtq *virtio_pci_queue(struct virtio_pci *vp, unsigned q)
{
    if (q >= vp->cfg.nr_queues || !vp->queues[q].vq.started)
        return NULL;
    return &vp->queues[q].vq;
}

int virtio_pci_kick_fd(const struct virtio_pci *vp, unsigned q)
{
    return q < vp->cfg.nr_queues ? vp->queues[q].kick_fd : -1;
}

int virtio_pci_vector_fd(const struct virtio_pci *vp, unsigned v)
{
    return v < vp->nr_vectors ? vp->vec_fd[v] : -1;
}
