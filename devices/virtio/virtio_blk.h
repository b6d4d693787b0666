/* virtio-blk (virtio 1.2 §5.2) over the virtio-pci transport, its image and
 * I/O on the shared storage backend (devices/block/image.h, blk_engine.h).
 *
 * Device configuration (struct virtio_blk_config, §5.2.4), read-only:
 *   0x00 capacity (512-byte sectors)   0x0C seg_max (queue size - 2)
 *   0x14 blk_size (512, or the backing device's logical block size)
 *   0x22 num_queues                    0x24 max_discard_sectors
 *   0x28 max_discard_seg               0x2C discard_sector_alignment
 *   0x30 max_write_zeroes_sectors      0x34 max_write_zeroes_seg
 *   0x38 write_zeroes_may_unmap
 * Features (§5.2.3): SEG_MAX, BLK_SIZE, FLUSH, MQ always; RO for readonly
 * disks; DISCARD and WRITE_ZEROES for writable disks unless discard=off.
 * Not offered: SIZE_MAX, GEOMETRY, TOPOLOGY, CONFIG_WCE (the cache mode is
 * the host's choice: a flush is always honoured), SECURE_ERASE.
 *
 * Requests (§5.2.6): a 16-byte header {type le32, ioprio le32, sector le64}
 * in the device-readable part, then data, then one status byte: the LAST
 * byte of the device-writable part. No framing is assumed (§2.6.4): the
 * header and data may be split across descriptors any way. Each request is
 * checked (virtio_blk_parse) before anything is done:
 *   - no writable byte for the status: the request cannot even fail, so the
 *     device needs a reset (DEVICE_NEEDS_RESET)
 *   - a header shorter than 16 bytes, a data length that is not a multiple
 *     of 512, a sector range past the end of the disk, a write or discard
 *     on a read-only disk: VIRTIO_BLK_S_IOERR
 *   - an unknown type, DISCARD/WRITE_ZEROES when not offered, discard with
 *     the unmap flag or unknown range flags: VIRTIO_BLK_S_UNSUPP
 * IN reads into the writable part before the status; OUT writes the readable
 * part after the header; FLUSH is fdatasync (durable before it completes);
 * GET_ID writes the serial (up to 20 bytes, NUL-padded); DISCARD punches
 * holes; WRITE_ZEROES zeroes (punching holes when its unmap flag is set).
 *
 * Integration:
 *   struct virtio_pci_vm vm = { &vm->env, &vm->irq, vm->vm_fd };
 *   virtio_blk_create(&vm, &cfg->disks.disk[i], i, cfg->io_pin, &blk[i]);
 *   virtio_blk_plug(blk[i], bus, parent, devfn, intx_gsi, ctx);
 *   ... run ...
 *   virtio_blk_unplug(blk[i]) before the bus goes (reset), plug again after
 *   virtio_blk_destroy(blk[i]) after the vCPUs stopped. */
#ifndef MINIVMM_VIRTIO_BLK_H
#define MINIVMM_VIRTIO_BLK_H
#include <stdbool.h>
#include <stdint.h>

#include "devices/block/disk_args.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtqueue.h"

#define VIRTIO_BLK_SECTOR        512u
#define VIRTIO_BLK_QUEUE_SIZE    256u
#define VIRTIO_BLK_MAX_RANGES    16u      /* DISCARD segments per request */
#define VIRTIO_BLK_MAX_DISCARD_SECTORS  (1u << 22)   /* 2 GiB per segment */
#define VIRTIO_BLK_MAX_ZEROES_SECTORS   (1u << 16)   /* 32 MiB per request */

/* What a request is checked against. */
struct virtio_blk_limits {
    uint64_t capacity;              /* sectors */
    bool readonly;
    bool discard, write_zeroes;     /* offered */
    uint32_t max_discard_sectors, max_discard_seg, discard_align;
    uint32_t max_zeroes_sectors, max_zeroes_seg;
};

struct virtio_blk_range {
    uint64_t sector;
    uint32_t nr_sectors;
    uint32_t flags;
};

/* A checked request. */
struct virtio_blk_req {
    uint32_t type;                  /* VIRTIO_BLK_T_* */
    uint64_t sector;
    /* data: IN and GET_ID in the writable part from 0, OUT in the readable
     * part from data_off (= 16) */
    uint32_t data_off, data_len;
    uint8_t *status;                /* host address of the status byte */
    unsigned nr_ranges;             /* DISCARD / WRITE_ZEROES */
    struct virtio_blk_range ranges[VIRTIO_BLK_MAX_RANGES];
};

/* Check chain c as a request. Returns VIRTIO_BLK_S_OK (r is to be done),
 * VIRTIO_BLK_S_IOERR or VIRTIO_BLK_S_UNSUPP (complete it at once with that
 * status; r->status is set), or -EIO when there is no status byte. Pure:
 * touches nothing but the chain's readable bytes and *r. */
int virtio_blk_parse(const struct virtq_chain *c, const struct virtio_blk_limits *l,
                     struct virtio_blk_req *r);

struct virtio_blk;

/* Open arg->path (locked: exclusive when writable, shared when read-only;
 * a clear error naming the file when another process holds it), build the
 * PCI function and the I/O threads (idle until the driver is ready; pinned
 * to io_cpu when >= 0). index names it "virtio-blk<index>". Errors are
 * logged naming the file and returned. */
int virtio_blk_create(const struct virtio_pci_vm *vm, const struct disk_arg *arg,
                      unsigned index, int io_cpu, struct virtio_blk **out);
/* As virtio_pci_plug. */
int virtio_blk_plug(struct virtio_blk *b, struct pci_bus *bus, struct pci_device *parent,
                    uint8_t devfn, int (*intx_gsi)(void *ctx, const struct pci_device *d,
                                                   uint8_t pin), void *ctx);
/* Guest/system reset when the PCI bus itself is re-created (vmm/vm.c's
 * in-process reset): off the bus, requests in flight finish, the device
 * and its config space back to power-on; plug it again on the new bus. */
void virtio_blk_unplug(struct virtio_blk *b);
/* Reset in place (the bus stays): the device and MSI-X back to power-on. */
void virtio_blk_reset(struct virtio_blk *b);
/* Off the bus, threads stopped (requests in flight finish first), image
 * flushed and closed. */
void virtio_blk_destroy(struct virtio_blk *b);

/* For tests and --stats. */
struct virtio_pci *virtio_blk_pci(struct virtio_blk *b);
const struct virtio_blk_limits *virtio_blk_limits_of(const struct virtio_blk *b);

struct pcidev_host;
struct pcidev_list;
/* Create a virtio-blk device for each --disk with if=virtio, in order, and
 * add it to the machine's PCI devices (devices/pci/pcidev.h): storage on
 * the root bus, at its boot_index (disk_args_finish). Errors name the file; devices already added
 * stay in the list for the caller to destroy. */
int virtio_blk_attach(const struct pcidev_host *h, const struct disk_args *a,
                      struct pcidev_list *l);

#endif
