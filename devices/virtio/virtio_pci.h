/* virtio over PCI, the modern (non-transitional) transport (virtio 1.2
 * §4.1): one struct pci_device per virtio device, its registers in one
 * 64-bit memory BAR, its interrupts through MSI-X (KVM routes + irqfds) or
 * INTx, its queue notifications through ioeventfds.
 *
 * IDs (§4.1.2): vendor 0x1AF4, device 0x1040 + virtio device type, revision
 * 1 (no legacy interface), subsystem 0x1AF4:0x1100 -- the IDs QEMU's
 * modern-only devices carry, which the virtio-win INFs list.
 *
 * BAR0 (64-bit memory, non-prefetchable, 32 KiB):
 *   0x0000  common configuration  struct virtio_pci_common_cfg (§4.1.4.3)
 *   0x1000  ISR status            1 byte, read clears (§4.1.4.5)
 *   0x2000  device configuration  the device's own struct (§4.1.4.6)
 *   0x3000  notifications         queue q at 0x3000 + 4 * q (§4.1.4.4:
 *                                 queue_notify_off = q, multiplier 4); each
 *                                 is a KVM ioeventfd on the queue's kick
 *                                 eventfd; a write that still exits (no
 *                                 KVM, odd width) is forwarded to it
 *   0x4000  MSI-X table           16 bytes per vector (PCI 3.0 §6.8.2)
 *   0x5000  MSI-X PBA
 *
 * Config space capabilities (§4.1.4, PCI 3.0 §6.7), in list order:
 *   0x40  vendor: common cfg      (cfg_type 1)
 *   0x50  vendor: notify cfg      (cfg_type 2, + notify_off_multiplier)
 *   0x64  vendor: ISR             (cfg_type 3)
 *   0x74  vendor: device cfg      (cfg_type 4; only if the device has one)
 *   0x84  vendor: PCI cfg access  (cfg_type 5, §4.1.4.9: bar/offset/length
 *                                 select a window of BAR0 read and written
 *                                 through pci_cfg_data at +16)
 *   0x98  MSI-X                   vectors: one per queue + one for config
 *   0xA4  PCI Express endpoint    only when plugged behind a root port
 *
 * Device status (§2.1, §3.1.1): the driver's bits stay set until a reset
 * (writing 0). FEATURES_OK is refused (reads back clear) when the driver
 * accepted a bit the device did not offer or left out VIRTIO_F_VERSION_1
 * (§2.2.2). DRIVER_OK starts every enabled queue (rings checked by
 * virtq_start) and then the device; a queue whose rings are bad sets
 * DEVICE_NEEDS_RESET instead. Reset stops the device (which waits for its
 * requests in flight), forgets queues, features and vectors.
 *
 * Transport feature bits offered on top of the device's: VERSION_1,
 * RING_INDIRECT_DESC, RING_EVENT_IDX. Not offered: ACCESS_PLATFORM (the
 * device uses guest-physical addresses), RING_PACKED, IN_ORDER,
 * NOTIFICATION_DATA, RING_RESET, SR_IOV.
 *
 * Interrupts: with MSI-X enabled a queue interrupt is a write to the
 * eventfd of its vector, bound by an irqfd to a KVM MSI route while the
 * vector is unmasked (the PCI layer's devices/pci/msix.h does the table,
 * masking and PBA logic); with MSI-X off, INTx: ISR bit 0 set and the line
 * raised until the driver reads ISR. A configuration change sets ISR bit 1
 * (either way, §4.1.4.5.1) and signals msix_config's vector or INTx.
 *
 * Threads: register accesses come from vCPU threads (one mutex);
 * virtio_pci_queue_interrupt and virtio_pci_set_needs_reset from the
 * device's I/O threads, lock-free on the MSI-X path. */
#ifndef MINIVMM_VIRTIO_PCI_H
#define MINIVMM_VIRTIO_PCI_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/virtio/virtqueue.h"

struct dev_env;
struct irq_table;
struct pci_bus;

#define VIRTIO_PCI_VENDOR_ID      0x1AF4
#define VIRTIO_PCI_DEVICE_ID_BASE 0x1040
#define VIRTIO_PCI_SUBSYS_ID      0x1100
#define VIRTIO_PCI_REVISION       1

#define VIRTIO_PCI_BAR_SIZE        0x8000u
#define VIRTIO_PCI_COMMON_OFF      0x0000u
#define VIRTIO_PCI_COMMON_SIZE     0x0038u   /* through queue_used_hi */
#define VIRTIO_PCI_ISR_OFF         0x1000u
#define VIRTIO_PCI_DEVCFG_OFF      0x2000u
#define VIRTIO_PCI_DEVCFG_MAX      0x1000u
#define VIRTIO_PCI_NOTIFY_OFF      0x3000u
#define VIRTIO_PCI_NOTIFY_MULT     4u
#define VIRTIO_PCI_MSIX_TABLE_OFF  0x4000u
#define VIRTIO_PCI_MSIX_PBA_OFF    0x5000u

#define VIRTIO_PCI_CAP_COMMON_AT   0x40
#define VIRTIO_PCI_CAP_NOTIFY_AT   0x50
#define VIRTIO_PCI_CAP_ISR_AT      0x64
#define VIRTIO_PCI_CAP_DEVCFG_AT   0x74
#define VIRTIO_PCI_CAP_PCICFG_AT   0x84
#define VIRTIO_PCI_CAP_MSIX_AT     0x98
#define VIRTIO_PCI_CAP_EXP_AT      0xA4

#define VIRTIO_PCI_MAX_QUEUES      64u
#define VIRTIO_PCI_NO_VECTOR       0xFFFFu

/* What the transport needs of the VM (it never includes vmm/vm.h). */
struct virtio_pci_vm {
    const struct dev_env *env;  /* MMIO bus, guest memory, irq_set */
    struct irq_table *irq;      /* MSI-X routes and irqfds */
    int vm_fd;                  /* ioeventfds; -1: notifications exit (tests) */
};

/* The virtio device behind the transport. */
struct virtio_device_ops {
    /* Device configuration (§4.1.4.6): off + len inside cfg_size. A read
     * fills data; writes to read-only fields are ignored. */
    void (*cfg_read)(void *opaque, uint32_t off, void *data, unsigned len);
    void (*cfg_write)(void *opaque, uint32_t off, const void *data, unsigned len);
    /* DRIVER_OK: features negotiated, enabled queues started (see
     * virtio_pci_queue). 0, or -errno: the device is then NEEDS_RESET. */
    int (*start)(void *opaque, uint64_t features);
    /* Reset: stop using the queues; return when nothing is in flight. Only
     * called after a successful start. */
    void (*stop)(void *opaque);
};

struct virtio_pci_config {
    const char *name;           /* "virtio-blk0": messages, queue names */
    uint16_t device_type;       /* VIRTIO_ID_* (linux/virtio_ids.h) */
    uint32_t class_code;        /* e.g. 0x010000 storage, 0x020000 network */
    uint64_t features;          /* the device's own feature bits */
    unsigned nr_queues;         /* 1..VIRTIO_PCI_MAX_QUEUES */
    uint16_t queue_max_size;    /* power of two, <= VIRTQ_MAX_SIZE */
    uint32_t cfg_size;          /* device configuration bytes, <= 4 KiB */
    const struct virtio_device_ops *ops;
    void *opaque;
};

struct virtio_pci_queue {
    struct virtq vq;
    char name[64];
    uint16_t size;              /* queue_size as the driver set it */
    _Atomic uint16_t vector;    /* queue_msix_vector */
    bool enabled;
    uint64_t desc, driver, device;
    int kick_fd;                /* eventfd the driver's notifications signal */
};

struct virtio_pci {
    struct pci_device pdev;     /* pdev.opaque = this */
    struct virtio_pci_config cfg;
    struct virtio_pci_vm vm;
    char name[32];
    pthread_mutex_t lock;       /* registers, MSI-X state */

    /* common configuration */
    uint64_t device_features, driver_features;
    uint32_t dfselect, gfselect;
    _Atomic uint8_t status;
    uint8_t generation;
    uint16_t queue_select;
    _Atomic uint16_t config_vector;
    struct virtio_pci_queue queues[VIRTIO_PCI_MAX_QUEUES];
    bool device_started;        /* ops->start succeeded, not stopped yet */

    /* interrupts */
    _Atomic uint8_t isr;
    unsigned nr_vectors;
    struct pci_msix msix;
    int vec_fd[VIRTIO_PCI_MAX_QUEUES + 1];
    int vec_gsi[VIRTIO_PCI_MAX_QUEUES + 1];
    bool vec_attached[VIRTIO_PCI_MAX_QUEUES + 1];
    _Atomic bool msix_on;
    pthread_mutex_t intx_lock;  /* ISR bit 0 and the line move together */
    int intx_gsi;               /* -1: no INTx */
    bool intx_level;
    _Atomic bool intx_disabled; /* command register INTx Disable */

    /* BAR0 */
    uint64_t bar_addr;          /* PCI_BAR_UNMAPPED when not decoded */
    unsigned ioeventfd_len[VIRTIO_PCI_MAX_QUEUES];   /* 0: any; 2; UINT_MAX: none */

    bool plugged;
    struct pci_bus *bus;
};

/* Build the function (not yet on a bus): IDs, BAR, capabilities, MSI-X,
 * eventfds. -EINVAL (logged) for a configuration out of range. */
int virtio_pci_init(struct virtio_pci *vp, const struct virtio_pci_vm *vm,
                    const struct virtio_pci_config *cfg);
/* Put it on bus at devfn, on the root bus (parent NULL) or behind parent
 * (a PCIe root port: a PCI Express endpoint capability is added). intx_gsi
 * says where the platform routes its pin INTA (e.g. q35_intx_gsi); NULL or
 * a negative answer leaves INTx unconnected (MSI-X still works). */
int virtio_pci_plug(struct virtio_pci *vp, struct pci_bus *bus, struct pci_device *parent,
                    uint8_t devfn, int (*intx_gsi)(void *ctx, const struct pci_device *d,
                                                   uint8_t pin), void *ctx);
/* Off the bus (a platform reset re-creates the bus: plug again after):
 * BAR unregistered, the device reset (its requests in flight finish), MSI-X
 * and INTx off, config space back to power-on. Harmless when not plugged. */
void virtio_pci_unplug(struct virtio_pci *vp);
/* Off the bus, BAR unregistered, ioeventfds/irqfds/routes removed, the
 * device stopped if it ran. */
void virtio_pci_fini(struct virtio_pci *vp);

/* System reset: the device reset above plus MSI-X back to power-on. */
void virtio_pci_reset(struct virtio_pci *vp);

/* For the device, while it runs (between start and stop): */
/* The started ring of queue q, NULL if the driver did not enable it. */
struct virtq *virtio_pci_queue(struct virtio_pci *vp, unsigned q);
/* The eventfd the driver's notifications for queue q signal. */
int virtio_pci_kick_fd(const struct virtio_pci *vp, unsigned q);
/* Interrupt the driver for queue q (any thread). */
void virtio_pci_queue_interrupt(struct virtio_pci *vp, unsigned q);
/* Configuration changed (any thread): generation++, ISR bit 1, msix_config. */
void virtio_pci_config_interrupt(struct virtio_pci *vp);
/* The device cannot go on (a broken queue, §2.1.2): DEVICE_NEEDS_RESET and
 * a configuration interrupt (any thread). */
void virtio_pci_set_needs_reset(struct virtio_pci *vp);

/* For tests: the eventfd of MSI-X vector v (-1 past the last). */
int virtio_pci_vector_fd(const struct virtio_pci *vp, unsigned v);

/* BAR0 accesses at an offset (what the MMIO bus calls; for tests too). */
int virtio_pci_bar_read(struct virtio_pci *vp, uint64_t off, void *data, unsigned len);
int virtio_pci_bar_write(struct virtio_pci *vp, uint64_t off, const void *data, unsigned len);

#endif
