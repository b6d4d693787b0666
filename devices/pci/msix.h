/* The PCI layer's MSI and MSI-X core (PCI Local Bus 3.0 §6.8), shared by
 * the emulated devices (devices/virtio/virtio_pci.c) and by VFIO
 * (vfio/vfio_pci.c): the MSI-X table and PBA emulation, and the vector state
 * of MSI. A pure core: what it decides reaches KVM (and, for a passed-through
 * function, VFIO) through the callbacks in struct pci_irq_ops -- virtio-pci
 * connects them to KVM MSI routes and irqfds on its own eventfds, VFIO to
 * GSI routes, irqfds and VFIO_DEVICE_SET_IRQS -- so the unit tests and the
 * fuzzer drive it with recording callbacks. The capabilities themselves
 * live in config space: devices/pci/pci.h builds them for emulated devices
 * (pci_msix_cap_add, pci_msi_cap_add), vfio/config.h virtualizes the
 * host's; both hand their control bits here.
 *
 * MSI-X table (PCI 3.0 §6.8.2.6-§6.8.2.9), 16 bytes per vector, in a
 * memory BAR the device traps:
 *
 *   +0x0  message address, low   bits 31:2 guest-written, 1:0 read 0
 *   +0x4  message address, high  guest-written
 *   +0x8  message data           guest-written
 *   +0xC  vector control         bit 0 mask (1 after reset); 31:1 read 0
 *
 * PBA: one bit per vector, read-only (writes are ignored); a bit is set
 * while its vector is masked (by its own bit, the function mask or MSI-X
 * being off) and the device has signalled it since: the device's eventfd
 * holds the interrupt, so the PBA reads it from there (ops->pending).
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
#ifndef MINIVMM_PCI_MSIX_H
#define MINIVMM_PCI_MSIX_H
#include <stdbool.h>
#include <stdint.h>

/* Spelled as <linux/pci_regs.h> spells it, so both can be included. */
#define PCI_MSIX_ENTRY_SIZE   16
#define PCI_MSIX_MAX_VECTORS  2048u   /* table size field is 11 bits */
#define PCI_MSI_MAX_VECTORS   32u     /* multiple message capable: 5 bits */

/* Where an MSI-X capability puts its table and PBA (PCI 3.0 §6.8.2.4,
 * §6.8.2.5): a BAR index (BIR) and an offset in it, 8-byte aligned. */
struct pci_msix_cap_info {
    unsigned nr_vectors;        /* table size, 1..PCI_MSIX_MAX_VECTORS */
    unsigned table_bar;
    uint32_t table_offset;
    unsigned pba_bar;
    uint32_t pba_offset;
};

enum pci_irq_kind { PCI_IRQ_KIND_MSI, PCI_IRQ_KIND_MSIX };

struct pci_irq_ops {
    /* Device side: signal eventfds 0..nr-1 of kind (for VFIO,
     * VFIO_DEVICE_SET_IRQS); disable turns that kind off. */
    int (*enable)(void *opaque, enum pci_irq_kind kind, unsigned nr);
    void (*disable)(void *opaque, enum pci_irq_kind kind);
    /* Vector v now delivers the message (addr, data): program its route,
     * attach its irqfd. Called again when the message changes. */
    int (*route)(void *opaque, enum pci_irq_kind kind, unsigned v, uint64_t addr, uint32_t data);
    /* Vector v is masked or off: detach its irqfd. */
    void (*unroute)(void *opaque, enum pci_irq_kind kind, unsigned v);
    /* Did vector v fire while not routed (its eventfd is readable)? */
    bool (*pending)(void *opaque, enum pci_irq_kind kind, unsigned v);
};

struct pci_vector_state {
    bool routed;
    uint64_t addr;
    uint32_t data;
};

struct pci_msix {
    unsigned nr;                    /* vectors in the table */
    uint8_t *table;                 /* nr * 16 bytes, the guest's view */
    struct pci_vector_state *vec;   /* what the callbacks were told */
    bool enabled, fmask;            /* the capability's control bits */
    bool dev_on;                    /* ops->enable succeeded */
    const struct pci_irq_ops *ops;
    void *opaque;
};

int pci_msix_init(struct pci_msix *m, unsigned nr, const struct pci_irq_ops *ops, void *opaque);
void pci_msix_fini(struct pci_msix *m);   /* turns the device side off */

static inline uint32_t pci_msix_table_size(const struct pci_msix *m)
{
    return m->nr * PCI_MSIX_ENTRY_SIZE;
}
static inline uint32_t pci_msix_pba_size(const struct pci_msix *m)
{
    return ((m->nr + 63) / 64) * 8;
}

/* Guest accesses at offsets from the start of the table / the PBA. */
int pci_msix_table_read(struct pci_msix *m, uint64_t off, void *data, unsigned len);
int pci_msix_table_write(struct pci_msix *m, uint64_t off, const void *data, unsigned len);
int pci_msix_pba_read(struct pci_msix *m, uint64_t off, void *data, unsigned len);
int pci_msix_pba_write(struct pci_msix *m, uint64_t off, const void *data, unsigned len);

/* The MSI-X capability's enable and function-mask bits as the guest wrote
 * them (from the config layer). Turns the device side on/off and routes or
 * unroutes vectors to match. */
void pci_msix_control(struct pci_msix *m, bool enable, bool function_mask);

/* Effective mask of vector v (own bit, function mask, or MSI-X off). */
bool pci_msix_vector_masked(const struct pci_msix *m, unsigned v);

/* PCI reset: MSI-X off, every vector masked, messages cleared
 * (PCI 3.0 §6.8.2.9: mask bits are set after reset). */
void pci_msix_reset(struct pci_msix *m);

/* The MSI capability's state as the guest programmed it (PCI 3.0 §6.8.1):
 * what pci_msi_update needs, read from config space by pci_msi_cap_state
 * (emulated devices) or vfio_config_msi_state (VFIO). */
struct pci_msi_state {
    bool enabled;               /* message control bit 0 */
    unsigned nr_vectors;        /* vectors the guest enabled (MME, clamped) */
    uint64_t address;
    uint16_t data;              /* vector v sends data | v (PCI 3.0 §6.8.3.4) */
    bool per_vector_mask;       /* the capability has mask bits */
    uint32_t mask;              /* bit v = vector v masked */
};

/* MSI: the capability itself lives in config space; this keeps the device
 * side and the routes in step with it. */
struct pci_msi {
    unsigned dev_nr;                /* vectors enabled at the device, 0 = off */
    struct pci_vector_state vec[PCI_MSI_MAX_VECTORS];
    bool masked[PCI_MSI_MAX_VECTORS];
    const struct pci_irq_ops *ops;
    void *opaque;
};

void pci_msi_init(struct pci_msi *msi, const struct pci_irq_ops *ops, void *opaque);
/* Apply the capability's state (after a guest write to it; for VFIO, a
 * config write that returned VFIO_CFG_EV_MSI). */
void pci_msi_update(struct pci_msi *msi, const struct pci_msi_state *st);
/* Pending bits for the capability's pending register. */
uint32_t pci_msi_pending(struct pci_msi *msi);
void pci_msi_off(struct pci_msi *msi);

#endif
