/* A PCI device of the machine: the one interface every PCI device model
 * implements (virtio-blk, virtio-net, each guest slot of passed-through
 * functions; AHCI, NVMe, e1000e and a display next), so that the VM keeps
 * one list of them and the platform places, plugs, resets and unplugs them
 * all the same way. Not to be confused with struct pci_device
 * (devices/pci/pci.h), one function's config space on the bus: a pcidev
 * owns one or more of those and puts them on the bus when plugged.
 *
 * Life cycle (vmm/vm.c runs it; devices/chipset/q35.c does the placing):
 *   create        from its flag, by the device's attach function (below);
 *                 host resources opened here (an image, a tap, VFIO groups),
 *                 so a bad flag stops start-up before the guest exists
 *   plug          the platform chose where (struct pcidev_where) and the
 *                 device puts its functions there
 *   unplug        off the bus, back to power-on (config space, queues),
 *                 host resources kept; plug may follow again (a guest reset
 *                 re-creates the bus) -- must be safe when not plugged
 *   reset         optional, between unplug and the next plug of a guest
 *                 reset: a function-level reset of real hardware (VFIO)
 *   destroy       after the vCPUs stopped and the device is unplugged
 *
 * Placement (PCIe Base 6.0 §7.1: integrated endpoints on the root complex's
 * bus 0, everything else behind a root port): a device says what it is
 * (kind) and how it attaches (place); q35 turns that into devfns with its
 * fixed layout (devices/chipset/q35.h), so slot numbers live in one place.
 *
 * Boot order: a device that firmware can boot from gives an OpenFirmware
 * device path for fw_cfg "bootorder" (the form QEMU uses and OVMF's
 * QemuBootOrderLib parses, e.g. "/pci@i0cf8/scsi@a/disk@0,0" for a
 * virtio-blk function at 00:0a.0); boot_index orders them.
 *
 * Option ROM: a device with one loads it from its file (pci_rom_load,
 * devices/pci/pci_rom.h) and gives it to its function
 * (pci_device_set_rom); the PCI layer decodes the ROM BAR and serves it, so
 * OVMF runs its EFI driver. Passed-through functions have theirs through
 * vfio/ (--rom, rombar=). No emulated device takes a romfile= yet (the
 * e1000e will).
 *
 * Not here yet: hot-plug (the bus side exists: bus_unregister_sync). */
#ifndef MINIVMM_PCIDEV_H
#define MINIVMM_PCIDEV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus;
struct dev_env;
struct gm;
struct irq_table;
struct memslots;
struct pci_bus;
struct pci_device;

/* What a device is, for the platform's layout and messages. */
enum pcidev_kind {
    PCIDEV_STORAGE,         /* a disk or CD-ROM controller */
    PCIDEV_NET,             /* a NIC */
    PCIDEV_DISPLAY,
    PCIDEV_PASSTHROUGH,     /* host functions assigned through VFIO */
    PCIDEV_OTHER,
};

/* How it attaches. */
enum pcidev_place {
    PCIDEV_ROOT_BUS,        /* bus 0, in the platform's range for its kind */
    PCIDEV_ROOT_PORT,       /* behind a PCIe root port of its own (device 0) */
    PCIDEV_FIXED,           /* bus 0 at fixed_devfn: where q35 guests expect it
                             * (an AHCI at 00:1f.2) */
};

/* Where the platform put it (valid between plug and unplug). */
struct pcidev_where {
    struct pci_bus *bus;
    struct pci_device *parent;      /* the root port above it, NULL on bus 0 */
    uint8_t devfn;                  /* behind a port: device 0 (function in bits 2:0) */
    uint8_t slot;                   /* the bus-0 slot: its own, or its root port's */
    /* GSI of INTx pin (1-4) of function d; -errno when not wired */
    int (*intx_gsi)(void *ctx, const struct pci_device *d, uint8_t pin);
    void *intx_ctx;
};

struct pcidev_ops {
    int (*plug)(void *dev, const struct pcidev_where *w);
    void (*unplug)(void *dev);
    int (*reset)(void *dev);        /* optional */
    void (*destroy)(void *dev);     /* optional (another entry may own the state) */
    /* optional: OpenFirmware path for "bootorder" into buf (NUL-terminated);
     * 0, or -ENOSPC / -ENOENT (nothing to boot from) */
    int (*boot_path)(void *dev, const struct pcidev_where *w, char *buf, size_t len);
    /* optional, instead of boot_path, for a device with several bootable
     * drives (an AHCI's ports): drive i's boot index (PCIDEV_NO_BOOT: not
     * bootable) and path; 0, -ENOSPC, or -ENOENT past the last drive */
    int (*boot_entry)(void *dev, const struct pcidev_where *w, unsigned i, int *boot_index,
                      char *buf, size_t len);
    /* optional: the link its root port should report (a passed-through
     * device's negotiated one, PCIe 6.0 §7.5.3.8): speed (1 = 2.5 GT/s ...)
     * and width; -ENOENT for the port's defaults */
    int (*link)(void *dev, unsigned *speed, unsigned *width);
};

#define PCIDEV_NO_BOOT (-1)

struct pcidev {
    char name[32];                  /* "virtio-blk0": messages */
    const struct pcidev_ops *ops;
    void *opaque;
    enum pcidev_kind kind;
    enum pcidev_place place;
    uint8_t fixed_devfn;            /* PCIDEV_FIXED only */
    int boot_index;                 /* lower boots first; PCIDEV_NO_BOOT (with
                                     * boot_entry: each drive has its own) */
    /* set by the platform */
    struct pcidev_where where;
    bool plugged;
};

#define PCIDEV_MAX 32

/* The machine's PCI devices, in the order they were created (the command
 * line's), plugged in that order and unplugged and destroyed in reverse. */
struct pcidev_list {
    struct pcidev dev[PCIDEV_MAX];
    unsigned nr;
};

/* What a device's attach function gets of the VM (never struct vm). */
struct pcidev_host {
    const struct dev_env *env;      /* buses, guest memory, irq_set */
    struct irq_table *irq;          /* MSI/MSI-X routes, irqfds */
    struct memslots *slots;         /* KVM memory slots (BAR pages, ROMs) */
    int vm_fd;                      /* ioeventfds, the KVM VFIO device */
    int io_pin;                     /* --io-pin: host CPU for I/O threads, -1 */
};

/* Append a device; the entry is returned for its attach function to fill
 * in ops and opaque. -E2BIG (logged, naming it) when the list is full. */
int pcidev_add(struct pcidev_list *l, const char *name, enum pcidev_kind kind,
               enum pcidev_place place, const struct pcidev_ops *ops, void *opaque,
               struct pcidev **out);
/* Destroy every device in reverse order and empty the list (unplugged
 * first if still plugged). */
void pcidev_list_destroy(struct pcidev_list *l);
/* Unplug every plugged device, in reverse order. */
void pcidev_list_unplug(struct pcidev_list *l);
/* Call every reset hook, in order; the first error is returned (each is
 * logged by its device), the others still run. */
int pcidev_list_reset(struct pcidev_list *l);

#endif
