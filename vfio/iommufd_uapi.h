/* The iommufd and VFIO device-cdev UAPI (Linux 6.6+) for builds whose
 * installed headers are older: Debian 12's linux-libc-dev is 6.1, which has
 * neither <linux/iommufd.h> nor VFIO_DEVICE_BIND_IOMMUFD. These are kernel
 * ABI (include/uapi/linux/iommufd.h and vfio.h): the layouts and numbers
 * below must match the kernel's, and tests/unit/test_vfio_container.c
 * checks their sizes. Newer headers, when installed, win. Only what minivmm
 * uses is here.
 *
 * Documentation/userspace-api/iommufd.rst and driver-api/vfio.rst ("VFIO
 * device cdev"): open /dev/iommu, allocate an IOAS (an I/O address space),
 * map guest RAM into it, open /dev/vfio/devices/vfioN, bind it to the
 * iommufd, attach it to the IOAS. */
#ifndef MINIVMM_VFIO_IOMMUFD_UAPI_H
#define MINIVMM_VFIO_IOMMUFD_UAPI_H
#include <linux/kvm.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>

#if defined(__has_include)
#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#endif
#endif

#ifndef IOMMU_IOAS_ALLOC
/* iommufd ioctls take no size in the number: each struct's first field is
 * its size, which the kernel checks (iommufd.rst, "extensible structs"). */
#define IOMMUFD_TYPE ';'
#define IOMMU_DESTROY    _IO(IOMMUFD_TYPE, 0x80)
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
#define IOMMU_IOAS_MAP   _IO(IOMMUFD_TYPE, 0x85)
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, 0x86)

enum iommufd_ioas_map_flags {
    IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,     /* at iova, not where the kernel likes */
    IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,      /* the device may write */
    IOMMU_IOAS_MAP_READABLE = 1 << 2,       /* the device may read */
};

struct iommu_destroy {
    __u32 size;
    __u32 id;
};

struct iommu_ioas_alloc {
    __u32 size;
    __u32 flags;
    __u32 out_ioas_id;
};

struct iommu_ioas_map {
    __u32 size;
    __u32 flags;
    __u32 ioas_id;
    __u32 __reserved;
    __aligned_u64 user_va;
    __aligned_u64 length;
    __aligned_u64 iova;
};

/* Unmaps whole mappings only: no splitting or truncating. */
struct iommu_ioas_unmap {
    __u32 size;
    __u32 ioas_id;
    __aligned_u64 iova;
    __aligned_u64 length;
};
#endif

#ifndef VFIO_DEVICE_BIND_IOMMUFD
#define VFIO_DEVICE_BIND_IOMMUFD      _IO(VFIO_TYPE, VFIO_BASE + 18)
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)

struct vfio_device_bind_iommufd {
    __u32 argsz;
    __u32 flags;
    __s32 iommufd;
    __u32 out_devid;
};

struct vfio_device_attach_iommufd_pt {
    __u32 argsz;
    __u32 flags;
    __u32 pt_id;                /* an IOAS or a hardware page table id */
};
#endif

/* VFIO_DEVICE_GET_PCI_HOT_RESET_INFO on a cdev-bound device reports device
 * ids in place of group ids (the same field), and whether this iommufd owns
 * every affected device; VFIO_DEVICE_PCI_HOT_RESET then takes no group fds
 * (vfio.h, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO"). */
#ifndef VFIO_PCI_HOT_RESET_FLAG_DEV_ID
#define VFIO_PCI_HOT_RESET_FLAG_DEV_ID       (1 << 0)
#define VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED (1 << 1)
#endif
#ifndef VFIO_PCI_DEVID_NOT_OWNED
#define VFIO_PCI_DEVID_NOT_OWNED -1
#endif

/* KVM's VFIO device takes group fds and, since 6.6, device cdev fds under
 * the same numbers (KVM_DEV_VFIO_FILE is KVM_DEV_VFIO_GROUP). */
#ifndef KVM_DEV_VFIO_FILE
#define KVM_DEV_VFIO_FILE     KVM_DEV_VFIO_GROUP
#define KVM_DEV_VFIO_FILE_ADD KVM_DEV_VFIO_GROUP_ADD
#define KVM_DEV_VFIO_FILE_DEL KVM_DEV_VFIO_GROUP_DEL
#endif

#endif
