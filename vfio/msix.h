/* MSI-X table and PBA emulation, and MSI vector state, for a passed-through
 * function. A pure core: what it decides reaches KVM and VFIO through the
 * callbacks in struct vfio_irq_ops (vfio/vfio_pci.c connects them to GSI
 * routes, irqfds and VFIO_DEVICE_SET_IRQS), so the unit tests and the
 * fuzzer drive it with recording callbacks.
 *
 * MSI-X table (PCI Local Bus 3.0 §6.8.2.6-§6.8.2.9), 16 bytes per vector,
 * in the BAR page(s) minivmm traps:
 *
 *   +0x0  message address, low   bits 31:2 guest-written, 1:0 read 0
 *   +0x4  message address, high  guest-written
 *   +0x8  message data           guest-written
 *   +0xC  vector control         bit 0 mask (1 after reset); 31:1 read 0
 *
 * PBA: one bit per vector, read-only (writes are ignored); a bit is set
 * while its vector is masked (by its own bit, the function mask or MSI-X
 * being off) and the device has signalled it since: the device's eventfd
 * holds the interrupt, so the PBA reads it from there (vector_pending).
 *
 * A vector is routed (its KVM GSI route programmed with its address and
 * data, and its eventfd attached as an irqfd) exactly while MSI-X is
 * enabled, the function is not masked and the vector is not masked. A
 * change of address or data of a routed vector reprograms the route; a
 * mask detaches the irqfd, so the device's later signals stay pending on
 * the eventfd; an unmask attaches it again, and KVM delivers what was
 * pending (KVM checks the eventfd when an irqfd is attached).
 *
 * Accesses: any length 1..8 wholly inside the table or PBA (the spec asks
 * software for aligned dwords or qwords; others are done byte by byte, not
 * refused). Anything outside is refused with -EINVAL and logged once.
 *
 * Not thread-safe: the caller serializes (one lock per function). */
#ifndef MINIVMM_VFIO_MSIX_H
#define MINIVMM_VFIO_MSIX_H
#include <stdbool.h>
#include <stdint.h>

#define VFIO_MSIX_ENTRY_SIZE  16u
#define VFIO_MSIX_MAX_VECTORS 2048u   /* table size field is 11 bits */
#define VFIO_MSI_MAX_VECTORS  32u

enum vfio_irq_kind { VFIO_IRQ_KIND_MSI, VFIO_IRQ_KIND_MSIX };

struct vfio_irq_ops {
    /* Device side: signal eventfds 0..nr-1 of kind (VFIO_DEVICE_SET_IRQS);
     * disable turns that kind off. */
    int (*enable)(void *opaque, enum vfio_irq_kind kind, unsigned nr);
    void (*disable)(void *opaque, enum vfio_irq_kind kind);
    /* Vector v now delivers the message (addr, data): program its route,
     * attach its irqfd. Called again when the message changes. */
    int (*route)(void *opaque, enum vfio_irq_kind kind, unsigned v, uint64_t addr, uint32_t data);
    /* Vector v is masked or off: detach its irqfd. */
    void (*unroute)(void *opaque, enum vfio_irq_kind kind, unsigned v);
    /* Did vector v fire while not routed (its eventfd is readable)? */
    bool (*pending)(void *opaque, enum vfio_irq_kind kind, unsigned v);
};

struct vfio_vec_state {
    bool routed;
    uint64_t addr;
    uint32_t data;
};

struct vfio_msix {
    unsigned nr;                    /* vectors in the table */
    uint8_t *table;                 /* nr * 16 bytes, the guest's view */
    struct vfio_vec_state *vec;     /* what the callbacks were told */
    bool enabled, fmask;            /* the capability's control bits */
    bool dev_on;                    /* ops->enable succeeded */
    const struct vfio_irq_ops *ops;
    void *opaque;
};

int vfio_msix_init(struct vfio_msix *m, unsigned nr, const struct vfio_irq_ops *ops, void *opaque);
void vfio_msix_fini(struct vfio_msix *m);   /* turns the device side off */

static inline uint32_t vfio_msix_table_size(const struct vfio_msix *m)
{
    return m->nr * VFIO_MSIX_ENTRY_SIZE;
}
static inline uint32_t vfio_msix_pba_size(const struct vfio_msix *m)
{
    return ((m->nr + 63) / 64) * 8;
}

/* Guest accesses at offsets from the start of the table / the PBA. */
int vfio_msix_table_read(struct vfio_msix *m, uint64_t off, void *data, unsigned len);
int vfio_msix_table_write(struct vfio_msix *m, uint64_t off, const void *data, unsigned len);
int vfio_msix_pba_read(struct vfio_msix *m, uint64_t off, void *data, unsigned len);
int vfio_msix_pba_write(struct vfio_msix *m, uint64_t off, const void *data, unsigned len);

/* The MSI-X capability's enable and function-mask bits as the guest wrote
 * them (from the config layer). Turns the device side on/off and routes or
 * unroutes vectors to match. */
void vfio_msix_control(struct vfio_msix *m, bool enable, bool function_mask);

/* Effective mask of vector v (own bit, function mask, or MSI-X off). */
bool vfio_msix_vector_masked(const struct vfio_msix *m, unsigned v);

/* PCI reset: MSI-X off, every vector masked, messages cleared
 * (PCI 3.0 §6.8.2.9: mask bits are set after reset). */
void vfio_msix_reset(struct vfio_msix *m);

/* MSI: the capability itself lives in the config layer; this keeps the
 * device side and the routes in step with it. */
struct vfio_msi {
    unsigned dev_nr;                /* vectors enabled at the device, 0 = off */
    struct vfio_vec_state vec[VFIO_MSI_MAX_VECTORS];
    bool masked[VFIO_MSI_MAX_VECTORS];
    const struct vfio_irq_ops *ops;
    void *opaque;
};

struct vfio_msi_state;
void vfio_msi_init(struct vfio_msi *msi, const struct vfio_irq_ops *ops, void *opaque);
/* Apply the capability's state (after a config write with VFIO_CFG_EV_MSI). */
void vfio_msi_update(struct vfio_msi *msi, const struct vfio_msi_state *st);
/* Pending bits for the capability's pending register. */
uint32_t vfio_msi_pending(struct vfio_msi *msi);
void vfio_msi_off(struct vfio_msi *msi);

#endif
