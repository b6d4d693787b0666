/* INTx of a passed-through function, delivered without minivmm on the path:
 *
 *   device asserts INTx -> vfio-pci masks it at the device and signals the
 *   trigger eventfd -> KVM irqfd (KVM_IRQFD with KVM_IRQFD_FLAG_RESAMPLE)
 *   raises the guest's GSI (level) -> guest handles, EOIs the IOAPIC pin ->
 *   KVM lowers the line and signals the resample eventfd -> vfio-pci
 *   unmasks INTx at the device (VFIO_IRQ_SET_ACTION_UNMASK bound to that
 *   eventfd) -> if the device still asserts, it fires again.
 *
 * That is the level-triggered contract of a PCI INTx line (PCI 3.0 §2.2.6)
 * with the masking VFIO needs because the host line may be shared.
 * VFIO allows one interrupt type at a time: INTx is turned off before MSI or
 * MSI-X is enabled and back on when both are off (vfio/vfio_pci.c). */
#ifndef MINIVMM_VFIO_INTX_H
#define MINIVMM_VFIO_INTX_H
#include <stdbool.h>

struct vfio_device;
struct irq_table;

struct vfio_intx {
    int trigger_fd, resample_fd;    /* eventfds, -1 = none */
    unsigned gsi;                   /* the guest GSI of the function's pin */
    bool on;
};

/* Eventfds for the device's INTx; gsi is where the platform routes the pin. */
int vfio_intx_init(struct vfio_intx *x, unsigned gsi);
void vfio_intx_fini(struct vfio_intx *x);
/* Connect device -> eventfd -> KVM, and the unmask path back. */
int vfio_intx_enable(struct vfio_intx *x, struct vfio_device *d, struct irq_table *irq);
void vfio_intx_disable(struct vfio_intx *x, struct vfio_device *d, struct irq_table *irq);

#endif
