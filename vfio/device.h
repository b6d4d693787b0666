/* One passed-through PCI function as VFIO gives it: the device fd, its
 * regions (BARs, ROM, config space) with their sparse-mmap areas, its
 * interrupt types, the expansion ROM, and reset.
 *
 * Region info (Linux include/uapi/linux/vfio.h, VFIO_DEVICE_GET_REGION_INFO)
 * may carry a capability chain after the fixed part: cap_offset is the
 * first header's offset from the start of the info, each header has an ID,
 * a version and the next offset (0 ends the chain). minivmm reads
 * VFIO_REGION_INFO_CAP_SPARSE_MMAP (the areas that may be mmap'd: vfio-pci
 * leaves the MSI-X table out of them unless the platform can remap
 * interrupts) and VFIO_REGION_INFO_CAP_MSIX_MAPPABLE (the table page may be
 * mmap'd too; minivmm still traps it, to emulate the table).
 *
 * Reset, in the order tried (Linux drivers/vfio/pci/vfio_pci_core.c):
 *   1. VFIO_DEVICE_RESET when VFIO_DEVICE_FLAGS_RESET says the kernel has a
 *      method for this function alone (FLR, PM D3hot->D0, a device
 *      specific one, or a bus reset when it is the only device on the bus);
 *   2. VFIO_DEVICE_PCI_HOT_RESET (secondary bus reset) when every device it
 *      would reset is in a group minivmm holds.
 * If neither works the message names the devices that share the bus. */
#ifndef MINIVMM_VFIO_DEVICE_H
#define MINIVMM_VFIO_DEVICE_H
#include <linux/vfio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfio/bar.h"
#include "vfio/container.h"

struct vfio_region {
    uint32_t flags;             /* VFIO_REGION_INFO_FLAG_* */
    uint64_t size, offset;      /* offset: where it is in the device fd */
    bool sparse;                /* had a sparse-mmap capability */
    unsigned nr_areas;
    struct vfio_range areas[VFIO_BAR_MAX_AREAS];
    bool areas_truncated;       /* more areas than we keep: the rest trapped */
    bool msix_mappable;
};

struct vfio_device {
    char bdf[HOST_BDF_LEN];
    int fd;
    int group_id;
    struct vfio_group *group;   /* type1; NULL with iommufd */
    bool cdev;                  /* fd is the device cdev, bound to the iommufd */
    struct vfio_container *container;
    uint32_t flags;             /* VFIO_DEVICE_FLAGS_* */
    uint32_t num_regions, num_irqs;
    struct vfio_region regions[VFIO_PCI_NUM_REGIONS];
    uint32_t irq_count[VFIO_PCI_NUM_IRQS];
    uint32_t irq_flags[VFIO_PCI_NUM_IRQS];
};

/* Parse the capability chain of a region info buffer of len bytes (what
 * the kernel filled in, argsz of it valid) into r. Pure and bounds-checked:
 * a chain pointing outside the buffer, a loop or a short capability ends
 * the walk (-EINVAL) keeping what was read before. */
int vfio_region_parse_caps(const void *info, size_t len, struct vfio_region *r);

/* Open a function: its group (checked for viability first, with the fix
 * named in the message), the device fd, region and interrupt info. On
 * failure everything is undone and the message logged. */
int vfio_device_open(struct vfio_container *c, const struct host_ctx *hc, const char *bdf,
                     struct vfio_device *d);
void vfio_device_close(struct vfio_device *d);

/* pread/pwrite on a region, bounds-checked against its size. */
int vfio_device_region_read(struct vfio_device *d, unsigned index, uint64_t off, void *buf, size_t len);
int vfio_device_region_write(struct vfio_device *d, unsigned index, uint64_t off, const void *buf, size_t len);
/* mmap len bytes at off of a region (shared, read/write); NULL on failure. */
void *vfio_device_mmap(struct vfio_device *d, unsigned index, uint64_t off, uint64_t len);

/* VFIO_DEVICE_SET_IRQS on interrupt index (VFIO_PCI_*_IRQ_INDEX): with
 * fds, bind eventfds fds[0..count-1] to vectors start.. for action
 * (VFIO_IRQ_SET_ACTION_TRIGGER / _UNMASK / _MASK); without (fds NULL), the
 * action itself on count vectors -- count 0 with TRIGGER turns the index
 * off. 0 or -errno. */
int vfio_device_set_irqs(struct vfio_device *d, unsigned index, uint32_t action, unsigned start,
                         unsigned count, const int32_t *fds);

/* The expansion ROM from the device's ROM region, or from a file. The
 * image is checked for the 0x55AA signature (PCI Firmware 3.0 §5.1.1) and
 * returned in a new buffer. */
int vfio_device_read_rom(struct vfio_device *d, uint8_t **buf, size_t *len);
int vfio_rom_load_file(const char *path, uint8_t **buf, size_t *len);
/* Pure: the ROM image checks (signature at 0, a first image length that
 * fits). 0 or -EINVAL with the reason in err. */
int vfio_rom_check(const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Reset the function (see the order above). devs are every function
 * minivmm holds (for the hot-reset ownership check). 0, or -errno with a
 * message naming BDF and what was tried. */
int vfio_device_reset(struct vfio_device *d, struct vfio_device *const *devs, unsigned nr_devs);
/* Can it be reset without a bus reset? */
static inline bool vfio_device_has_reset(const struct vfio_device *d)
{
    return d->flags & VFIO_DEVICE_FLAGS_RESET;
}

#endif
