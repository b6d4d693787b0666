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
 * The iommufd flow (Linux 6.6+ with CONFIG_IOMMUFD and
 * CONFIG_VFIO_DEVICE_CDEV; Documentation/driver-api/vfio.rst, "VFIO device
 * cdev"), chosen with --vfio-iommu iommufd, or by auto when the kernel has
 * no /dev/vfio/vfio:
 *
 *   open /dev/iommu; IOMMU_IOAS_ALLOC: one I/O address space for the VM
 *   guest RAM: IOMMU_IOAS_MAP (FIXED_IOVA, iova = guest-physical address)
 *   per function: open /dev/vfio/devices/vfioN (N from sysfs vfio-dev/);
 *              VFIO_DEVICE_BIND_IOMMUFD; VFIO_DEVICE_ATTACH_IOMMUFD_PT(IOAS)
 *   KVM:       KVM_DEV_VFIO_FILE_ADD with the device fd
 *
 * No group is opened then; the IOMMU group is still checked in sysfs,
 * because binding needs every device of the group out of the kernel's DMA
 * use, and the message says how.
 *
 * Every open, close and ioctl goes through struct vfio_sys, so the unit
 * tests can stand in for the kernel and check the exact sequence. */
#ifndef MINIVMM_VFIO_CONTAINER_H
#define MINIVMM_VFIO_CONTAINER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/sysfs.h"

#define VFIO_MAX_GROUPS 16
#define VFIO_MAX_CDEVS  16

/* How minivmm reaches the kernel: the real calls unless a test sets its
 * own. ioctl's integer arguments (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU)
 * travel in arg. Each returns what the libc call does (-1 and errno). */
struct vfio_sys {
    int (*open)(const char *path, int flags);
    int (*close)(int fd);
    int (*ioctl)(int fd, unsigned long req, void *arg);
    int (*exists)(const char *path);    /* 1 if the path exists */
};
extern const struct vfio_sys vfio_sys_kernel;

/* --vfio-iommu: which IOMMU interface of the kernel to use. */
enum vfio_iommu_mode {
    VFIO_IOMMU_AUTO = 0,        /* type1 if /dev/vfio/vfio exists, else iommufd */
    VFIO_IOMMU_TYPE1,           /* group + container, VFIO_TYPE1v2_IOMMU */
    VFIO_IOMMU_IOMMUFD,         /* /dev/iommu + device cdevs */
};
const char *vfio_iommu_mode_name(enum vfio_iommu_mode m);

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

/* A function opened through its cdev (iommufd), for KVM's VFIO device. */
struct vfio_cdev {
    int fd;                     /* -1: free slot */
    bool in_kvm;
};

struct vfio_container {
    /* Preset by the caller (kept by vfio_container_open): */
    const struct vfio_sys *sys; /* NULL: vfio_sys_kernel */
    enum vfio_iommu_mode mode;  /* asked; after open: TYPE1 or IOMMUFD */
    const char *dev_dir;        /* "/dev/vfio" */
    const char *iommu_dev;      /* "/dev/iommu" */

    int fd;                     /* /dev/vfio/vfio or /dev/iommu, -1 when closed */
    unsigned long iommu_type;   /* VFIO_TYPE1v2_IOMMU or VFIO_TYPE1_IOMMU */
    bool iommu_set;             /* mappings reach the kernel: VFIO_SET_IOMMU
                                   done (needs a group), or the IOAS exists */
    uint32_t ioas_id;           /* iommufd: the VM's IOAS */
    struct vfio_group groups[VFIO_MAX_GROUPS];  /* users == 0: free slot */
    unsigned nr_groups;         /* slots in use or freed (high-water mark) */
    struct vfio_dma *dma;
    unsigned nr_dma, cap_dma;
    struct vfio_cdev cdevs[VFIO_MAX_CDEVS];
    int kvm_dev_fd;             /* KVM VFIO pseudo-device, -1 = none */
};

/* The same ioctl the container's sys makes (devices use it too). */
int vfio_ioctl(const struct vfio_container *c, int fd, unsigned long req, void *arg);

/* Open the IOMMU context c->mode asks for: /dev/vfio/vfio with the API
 * and a type1 IOMMU checked, or /dev/iommu with an IOAS allocated. Errors
 * are logged with what to do (module not loaded, no IOMMU, no iommufd in
 * this kernel, permissions). */
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

/* iommufd: open the VFIO character device of bdf (the vfioN that sysfs
 * lists under /sys/bus/pci/devices/BDF/vfio-dev/), bind it to the iommufd
 * and attach it to the IOAS. The fd in *dev_fd, or -errno logged naming
 * the device: -ENODEV when it has no cdev (the message says why that may
 * be and to use --vfio-iommu type1), -EBUSY when another process has it. */
int vfio_container_open_cdev(struct vfio_container *c, const struct host_ctx *hc, const char *bdf,
                             int *dev_fd);
/* Out of KVM, closed; the device is unbound from the iommufd with it. */
void vfio_container_close_cdev(struct vfio_container *c, int dev_fd);

/* DMA: map [iova, iova+size) to hva for the devices (read and write), or
 * unmap any part of what was mapped (mappings cut in two are re-mapped
 * around the hole). Both keep the list; before the first group they only
 * record. */
int vfio_container_dma_map(struct vfio_container *c, uint64_t iova, uint64_t size, void *hva);
int vfio_container_dma_unmap(struct vfio_container *c, uint64_t iova, uint64_t size);
/* Map every RAM region of gm. */
int vfio_container_map_gm(struct vfio_container *c, const struct gm *gm);

/* Create the KVM VFIO device on vm_fd and add every group or device cdev
 * (and those attached later). Failure is only warned about: KVM then does not know
 * the device may do non-coherent DMA, which matters on hosts whose IOMMU
 * does not enforce snooping. */
int vfio_container_kvm_attach(struct vfio_container *c, int vm_fd);

#endif
