/* Interrupt routing: the GSI routing table KVM uses (KVM_SET_GSI_ROUTING),
 * irqfds, and the interrupt lines of the in-kernel PIC and IOAPIC.
 *
 * The table starts with the legacy routes (irq_table_init):
 *   GSI 0        PIC master pin 0 and IOAPIC pin 2: the PIT raises GSI 0,
 *                and the MADT (boot/acpi.c) says ISA IRQ0 is GSI 2, as on
 *                a PC whose 8254 is wired to IOAPIC input 2
 *   GSI 1, 3-15  PIC pin (master 0-7, slave 8-15) and IOAPIC pin = GSI
 *   GSI 2        none: the PIC's cascade input, never raised by a device
 *   GSI 16-23    IOAPIC pin = GSI (PCI INTx)
 * MSI and MSI-X users add routes (GSIs from IRQ_FIRST_MSI_GSI up), change
 * and remove them, then irq_commit() hands the whole table to KVM. Devices
 * get MSIs delivered without minivmm on the path by binding an eventfd to a
 * GSI (irqfd_assign).
 *
 * Thread-safe: one mutex per table; irq_line() takes no lock. */
#ifndef MINIVMM_IRQ_H
#define MINIVMM_IRQ_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define IRQ_NR_LEGACY_GSI   24          /* IOAPIC pins */
#define IRQ_FIRST_MSI_GSI   24
#define IRQ_MAX_GSI         1024        /* GSIs we hand out (KVM allows 4096 routes) */

struct kvm_irq_routing_entry;

struct irq_table {
    int vm_fd;                          /* -1: build the table only (unit tests) */
    pthread_mutex_t lock;
    struct kvm_irq_routing_entry *e;    /* sorted by GSI */
    unsigned nr, cap;
    unsigned max_routes;                /* KVM_CAP_IRQ_ROUTING, at most the array */
    uint64_t used[IRQ_MAX_GSI / 64];    /* GSIs with a route */
    bool dirty;                         /* changed since the last commit */
};

/* The legacy routes above. vm_fd may be -1 (nothing is sent to KVM).
 * max_routes: what KVM_CHECK_EXTENSION(KVM_CAP_IRQ_ROUTING) said (0: 4096). */
int irq_table_init(struct irq_table *t, int vm_fd, unsigned max_routes);
void irq_table_fini(struct irq_table *t);

/* A new MSI route; returns its GSI (>= IRQ_FIRST_MSI_GSI) or -ENOSPC. The
 * route takes effect at the next irq_commit. */
int irq_route_add_msi(struct irq_table *t, uint64_t addr, uint32_t data);
/* Change the message of an MSI route; -ENOENT if gsi has no MSI route. */
int irq_route_update_msi(struct irq_table *t, unsigned gsi, uint64_t addr, uint32_t data);
/* Remove an MSI route and free its GSI; -ENOENT / -EINVAL for legacy GSIs. */
int irq_route_remove(struct irq_table *t, unsigned gsi);
/* KVM_SET_GSI_ROUTING with the whole table (if it changed). */
int irq_commit(struct irq_table *t);

/* Raise or lower a GSI (KVM_IRQ_LINE): the dev_env irq_set of vmm/vm.c. */
int irq_line(struct irq_table *t, unsigned gsi, int level);

/* Bind eventfd fd to gsi (KVM_IRQFD). resample_fd >= 0 makes it a level
 * interrupt: KVM lowers the line on the guest's EOI and signals resample_fd
 * so the device can re-assert (KVM_IRQFD_FLAG_RESAMPLE). */
int irqfd_assign(struct irq_table *t, int fd, unsigned gsi, int resample_fd);
int irqfd_deassign(struct irq_table *t, int fd, unsigned gsi);

/* An emulated device's MSI or MSI-X vector delivered by KVM (the
 * pci_irq_ops route/unroute of virtio-pci, AHCI and NVMe): eventfd fd
 * bound by an irqfd to an MSI route with the message (addr, data). route
 * adds the route (*gsi < 0: a new one, its GSI stored in *gsi) or updates
 * it, commits the table, and attaches the irqfd unless *attached; unroute
 * detaches it (the route and its GSI stay for the next route). With
 * vm_fd < 0 (unit tests without KVM) only the table changes. 0 or -errno. */
int irq_msi_vector_route(struct irq_table *t, int vm_fd, int fd, int *gsi, bool *attached,
                         uint64_t addr, uint32_t data);
void irq_msi_vector_unroute(struct irq_table *t, int vm_fd, int fd, int gsi, bool *attached);

#endif
