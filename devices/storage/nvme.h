/* An emulated NVMe 1.4 controller (NVM Express Base 1.4), one namespace per
 * disk (--disk FILE,if=nvme), on the shared block engine
 * (devices/block/blk_engine.h). See devices/storage/nvme.c for the register
 * map, the queues and the threads; devices/storage/nvme_cmd.h for the PRP
 * walker and the command decoders.
 *
 * PCI function: 1b36:0010 (QEMU's "QEMU NVM Express Controller", which
 * Linux's nvme and Windows' in-box stornvme bind by class), class 01.08.02
 * (mass storage, NVM, NVMe I/O controller), revision 2, subsystem
 * 1af4:1100. BAR0: 64-bit memory, 16 KiB -- registers (0x0000), doorbells
 * (0x1000), MSI-X table (0x2000) and PBA (0x3000). Capabilities: PM at
 * 0x40, MSI-X at 0x48 (one vector per queue: admin + I/O queues), PCI
 * Express at 0x60 (a root-complex integrated endpoint on bus 0, an
 * endpoint behind a root port). INTx pin A when MSI-X is off. */
#ifndef MINIVMM_NVME_H
#define MINIVMM_NVME_H
#include <stdint.h>

#include "devices/block/disk_args.h"
#include "devices/pci/pcidev.h"

#define NVME_VENDOR_ID      0x1B36
#define NVME_DEVICE_ID      0x0010
#define NVME_CLASS          0x010802
#define NVME_BAR_SIZE       0x4000u
#define NVME_DB_OFF         0x1000u
#define NVME_MSIX_TABLE_OFF 0x2000u
#define NVME_MSIX_PBA_OFF   0x3000u
#define NVME_MAX_IOQ        16u     /* I/O queue pairs offered */
#define NVME_NR_QUEUES      (NVME_MAX_IOQ + 1)
#define NVME_MQES           1023u   /* CAP.MQES: 1024 entries */
#define NVME_MDTS           6u      /* 2^6 pages: 256 KiB per command */

struct dev_env;
struct irq_table;
struct pci_bus;
struct pci_device;
struct nvme;

struct nvme_vm {
    const struct dev_env *env;      /* MMIO bus, guest memory, irq_set */
    struct irq_table *irq;          /* MSI-X routes and irqfds */
    int vm_fd;                      /* irqfds; -1 in unit tests */
};

/* Open the image and build the controller (idle until the guest sets
 * CC.EN). 0 or -errno, logged. */
int nvme_create(const struct nvme_vm *vm, const struct disk_arg *arg, unsigned index,
                int io_cpu, struct nvme **out);
void nvme_destroy(struct nvme *n);   /* NULL is fine */
int nvme_plug(struct nvme *n, struct pci_bus *bus, struct pci_device *parent, uint8_t devfn,
              int (*intx_gsi)(void *ctx, const struct pci_device *d, uint8_t pin), void *ctx);
void nvme_unplug(struct nvme *n);   /* and back to power-on */

/* BAR0 accesses (the MMIO bus calls these); off + len inside BAR0. */
int nvme_bar_read(struct nvme *n, uint64_t off, void *data, unsigned len);
int nvme_bar_write(struct nvme *n, uint64_t off, const void *data, unsigned len);
/* The eventfd MSI-X vector v signals (tests), -1 if none. */
int nvme_vector_fd(const struct nvme *n, unsigned v);

/* Every --disk FILE,if=nvme: a controller each, on the PCI list. */
int nvme_attach(const struct pcidev_host *h, const struct disk_args *a, struct pcidev_list *l);

#endif
