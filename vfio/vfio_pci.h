/* Passed-through PCI functions in the guest: one struct pci_device per host
 * function (devices/pci/pci.h), its config space virtualized by vfio/config.h,
 * its BARs mapped directly where they can be (vfio/bar.h), its MSI-X table
 * emulated (devices/pci/msix.h), its interrupts delivered by KVM irqfds.
 *
 * Functions of one host slot (a GPU and its HDMI audio) become functions of
 * one guest slot, in the order of their host function numbers (so the
 * first is function 0), with the multi-function bit set; on q35 each guest
 * slot sits at device 0 behind its own PCIe root port.
 *
 * Integration (vmm/vm.c):
 *   struct vfio_vm vv = { vm_fd, &pio, &mmio, &gm, &irq, &memslots };
 *   struct vfio_pci_opts o = { .behind_root_port = true };
 *   vfio_pci_create(&cfg->vfio, &vv, &o, &v);          after RAM and irq
 *   for i < vfio_pci_nr_slots(v):
 *       root port rp_i (devices/pci/pci_root_port.h), then
 *       vfio_pci_plug(v, i, &pci_bus, rp_i, 0, intx_gsi, ctx);
 *   ... run ...
 *   vfio_pci_reset(v)         on an in-process guest reset
 *   vfio_pci_destroy(v)       after the vCPUs stopped (reverse of start-up)
 * and, if the guest memory map ever changes, vfio_pci_ram_add/_remove. */
#ifndef MINIVMM_VFIO_PCI_H
#define MINIVMM_VFIO_PCI_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "vfio/bar.h"
#include "vfio/config.h"
#include "vfio/container.h"
#include "vfio/device.h"
#include "vfio/intx.h"
#include "vfio/quirks.h"
#include "vfio/vfio_args.h"

struct bus;
struct gm;
struct irq_table;
struct memslots;

/* What VFIO needs of the VM (it never includes vmm/vm.h). */
struct vfio_vm {
    int vm_fd;                  /* for the KVM VFIO device */
    struct bus *pio, *mmio;     /* trapped BAR pieces */
    struct gm *gm;              /* guest RAM for DMA */
    struct irq_table *irq;      /* MSI routes, irqfds */
    struct memslots *slots;     /* direct BAR pieces, the ROM */
};

struct vfio_pci_opts {
    bool behind_root_port;      /* PCIe topology (q35): true */
    const char *sysfs_root;     /* NULL: this host ("" prefix) */
};

#define VFIO_PCI_MAX_FNS   16
#define VFIO_PCI_MAX_SLOTS 16
#define VFIO_ROM_BAR       VFIO_NR_BARS   /* index of the ROM in the maps */

struct vfio_pci_fn;

struct vfio_trap {
    struct vfio_pci_fn *fn;
    unsigned bar, piece;
};

struct vfio_pci_fn {
    struct pci_device pdev;             /* pdev.opaque = this */
    char name[40];                      /* "vfio 0000:01:00.0" */
    struct vfio_pci *owner;
    unsigned slot, guest_fn;
    struct vfio_device dev;
    bool dev_open;
    struct vfio_config cfg;
    struct vfio_quirks quirks;
    pthread_mutex_t lock;               /* config, MSI/MSI-X, BAR maps */

    struct vfio_bar_map map[VFIO_NR_BARS + 1];
    struct vfio_trap trap[VFIO_NR_BARS + 1][VFIO_BAR_MAX_PIECES];
    int memslot[VFIO_NR_BARS + 1][VFIO_BAR_MAX_PIECES];
    uint8_t *rom;                       /* page-aligned, rom_bar_size bytes */
    uint64_t rom_bar_size;

    bool has_msix;
    struct pci_msix msix;
    struct pci_msi msi;
    int msi_efd[PCI_MSI_MAX_VECTORS], msi_gsi[PCI_MSI_MAX_VECTORS];
    bool msi_attached[PCI_MSI_MAX_VECTORS];
    int *msix_efd, *msix_gsi;           /* msix.nr each, made at first enable */
    bool *msix_attached;

    struct vfio_intx intx;
    bool intx_ready;                    /* plugged with a GSI for its pin */
    bool plugged;
};

struct vfio_pci_slot {
    struct vfio_pci_fn *fn[8];
    unsigned nr;
    struct vfio_pci *owner;             /* for the slot's pcidev entry */
    unsigned index;
};

struct vfio_pci {
    struct vfio_vm vm;
    struct vfio_pci_opts opts;
    struct host_ctx hc;
    struct vfio_container container;
    struct vfio_pci_fn *fns[VFIO_PCI_MAX_FNS];
    unsigned nr_fns;
    struct vfio_pci_slot slots[VFIO_PCI_MAX_SLOTS];
    unsigned nr_slots;
    struct pci_bus *bus;                /* where the functions are plugged */
    char *bound[VFIO_PCI_MAX_FNS];      /* --bind: what to unbind at the end */
    unsigned nr_bound;
    unsigned steps_done;
};

/* The start-up steps, in order (each undone by vfio_pci_destroy):
 *   1. functions: the --gpu slot's siblings added, slots formed
 *   2. --bind: bind them (and their groups) to vfio-pci
 *   3. the container
 *   4. every function: group checked and opened, device fd, regions
 *   5. guest RAM mapped for DMA; the KVM VFIO device
 *   6. reset (function reset, else one bus reset per slot)
 *   7. each function's config layer, quirks, MSI-X, BAR mmaps, ROM
 * On failure the steps done are undone and -errno returned (logged with
 * the BDF, the group and the command that fixes it). */
int vfio_pci_create(const struct vfio_args *a, const struct vfio_vm *vm,
                    const struct vfio_pci_opts *o, struct vfio_pci **out);
void vfio_pci_destroy(struct vfio_pci *v);

unsigned vfio_pci_nr_slots(const struct vfio_pci *v);
/* Plug guest slot i's functions: behind parent (a root port: device must
 * be 0) or on the root bus (parent NULL) at device dev. intx_gsi says
 * where the platform routes a function's pin (1-4); NULL, or a negative
 * answer, leaves INTx unconnected (MSI/MSI-X still work). */
int vfio_pci_plug(struct vfio_pci *v, unsigned slot, struct pci_bus *bus, struct pci_device *parent,
                  uint8_t dev, int (*intx_gsi)(void *ctx, const struct pci_device *d, uint8_t pin),
                  void *ctx);

/* The link of guest slot i's function 0 as the host negotiated it (PCIe
 * Link Status: speed code 1-4+, width in lanes), for the root port above it
 * (struct pci_root_port_config speed/width), so the port and the device
 * describe the same link. -ENOENT when the function has no PCIe link. */
int vfio_pci_slot_link(struct vfio_pci *v, unsigned slot, unsigned *speed, unsigned *width);

/* Take every function off the bus it was plugged on (INTx disconnected),
 * so the platform under it can be torn down or re-created (an in-process
 * guest reset re-creates q35); vfio_pci_plug may be called again after. */
void vfio_pci_unplug(struct vfio_pci *v);
/* The same for guest slot i alone. */
void vfio_pci_unplug_slot(struct vfio_pci *v, unsigned slot);

/* In-process guest reset: interrupts off, BARs unmapped, every function
 * reset, config space back to power-on. */
int vfio_pci_reset(struct vfio_pci *v);

/* The guest memory map changed: keep the IOMMU in step. */
int vfio_pci_ram_add(struct vfio_pci *v, uint64_t gpa, uint64_t size, void *hva);
int vfio_pci_ram_remove(struct vfio_pci *v, uint64_t gpa, uint64_t size);

struct pcidev_host;
struct pcidev_list;
/* --gpu/--device: create the set (vfio_pci_create, behind root ports) and
 * add one entry per guest slot to the machine's PCI devices
 * (devices/pci/pcidev.h), each behind a root port of its own that reports
 * the host's link. The whole set is reset together (a bus reset can take
 * several slots at once) and destroyed with its first slot's entry, which
 * the list destroys last. Nothing to do without such flags. */
int vfio_pci_attach(const struct pcidev_host *h, const struct vfio_args *a,
                    struct pcidev_list *l);

/* The pci_device ops of a passed-through function (for tests). */
extern const struct pci_device_ops vfio_pci_device_ops;

/* For tests: an empty set (no container), and a function over a device
 * that is already open -- its fd may be a plain file laid out like VFIO
 * regions -- built as start-up step 7 does, in a guest slot of its own.
 * The set owns dev->fd afterwards. */
struct vfio_pci *vfio_pci_new(const struct vfio_vm *vm, const struct vfio_pci_opts *o);
struct vfio_pci_fn *vfio_pci_add_opened(struct vfio_pci *v, const struct vfio_device *dev,
                                        const struct vfio_dev_arg *arg);

#endif
