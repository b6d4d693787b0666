/* The VFIO container: one IOMMU context for every passed-through device of
 * the VM, the IOMMU groups attached to it, and the DMA mappings of guest
 * RAM (Linux Documentation/driver-api/vfio.rst, "VFIO Usage Example").
 *
 *   open /dev/vfio/vfio; VFIO_GET_API_VERSION; VFIO_CHECK_EXTENSION(TYPE1v2)
 *   per group: open /dev/vfio/N; VFIO_GROUP_GET_STATUS (VIABLE);
 *              VFIO_GROUP_SET_CONTAINER; the first one: VFIO_SET_IOMMU
 *   guest RAM: VFIO_IOMMU_MAP_DMA, iova = guest-physical address
 *   KVM:       KVM_CREATE_DEVICE(KVM_DEV_TYPE_VFIO) + KVM_DEV_VFIO_GROUP_ADD
 *              per group, so KVM knows about non-coherent DMA (no-snoop)
 *
 * The DMA list is kept here, so a change of the guest memory map (a RAM
 * range added or removed) is one call, and groups attached later get the
 * mappings made before them.
 *
 * The iommufd character-device flow (VFIO_DEVICE_BIND_IOMMUFD, Linux 6.6+)
 * is not implemented: the installed uapi headers (6.1) do not have it. */
#ifndef MINIVMM_VFIO_CONTAINER_H
#define MINIVMM_VFIO_CONTAINER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfio/host_sysfs.h"

#define VFIO_MAX_GROUPS 16

struct gm;

struct vfio_group {
    int id;
    int fd;
    unsigned users;             /* devices opened from it */
    bool in_kvm;                /* added to the KVM VFIO device */
};

struct vfio_dma {
    uint64_t iova, size;
    void *hva;
};

struct vfio_container {
    int fd;                     /* /dev/vfio/vfio, -1 when closed */
    unsigned long iommu_type;   /* VFIO_TYPE1v2_IOMMU or VFIO_TYPE1_IOMMU */
    bool iommu_set;             /* VFIO_SET_IOMMU done (needs a group) */
    struct vfio_group groups[VFIO_MAX_GROUPS];  /* users == 0: free slot */
    unsigned nr_groups;         /* slots in use or freed (high-water mark) */
    struct vfio_dma *dma;
    unsigned nr_dma, cap_dma;
    int kvm_dev_fd;             /* KVM VFIO pseudo-device, -1 = none */
    const char *dev_dir;        /* "/dev/vfio" */
};

/* Open /dev/vfio/vfio and check the API and a type1 IOMMU. Errors are
 * logged with what to do (module not loaded, no IOMMU, permissions). */
int vfio_container_open(struct vfio_container *c);
/* Undo everything: DMA maps, groups (out of KVM too), the container. */
void vfio_container_close(struct vfio_container *c);

/* IOMMU group of a PCI device from sysfs (/sys/bus/pci/devices/BDF/
 * iommu_group). -ENODEV (no such device) or -ENOENT (no IOMMU group),
 * message in err. */
int vfio_group_of(const struct host_ctx *hc, const char *bdf, int *group, char *err, size_t errlen);

/* Every device of the group must leave it usable for VFIO: bound to
 * vfio-pci (or a variant), pci-stub, pcieport, or no driver; a bridge is
 * fine too. Returns 0, or -EBUSY with err listing the offenders, their
 * drivers and the exact commands to bind them (`minivmm host bind` and the
 * sysfs lines). */
int vfio_group_check(const struct host_ctx *hc, int group, const char *bdf, char *err, size_t errlen);

/* Open group N (or take another reference to it) and attach it to the
 * container. -EBUSY when another process has the group (another minivmm or
 * QEMU), -ENOENT when /dev/vfio/N is missing (not bound to vfio-pci),
 * -EPERM/-EACCES for permissions; each logged naming BDF and group. */
int vfio_container_get_group(struct vfio_container *c, int group, const char *bdf,
                             struct vfio_group **out);
void vfio_container_put_group(struct vfio_container *c, struct vfio_group *g);

/* DMA: map [iova, iova+size) to hva for the devices (read and write), or
 * unmap any part of what was mapped (mappings cut in two are re-mapped
 * around the hole). Both keep the list; before the first group they only
 * record. */
int vfio_container_dma_map(struct vfio_container *c, uint64_t iova, uint64_t size, void *hva);
int vfio_container_dma_unmap(struct vfio_container *c, uint64_t iova, uint64_t size);
/* Map every RAM region of gm. */
int vfio_container_map_gm(struct vfio_container *c, const struct gm *gm);

/* Create the KVM VFIO device on vm_fd and add every group (and the groups
 * attached later). Failure is only warned about: KVM then does not know
 * the device may do non-coherent DMA, which matters on hosts whose IOMMU
 * does not enforce snooping. */
int vfio_container_kvm_attach(struct vfio_container *c, int vm_fd);

#endif
