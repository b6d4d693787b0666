/* Command-line flags of VFIO passthrough, parsed here so vmm/config.c only
 * forwards them:
 *
 *   --gpu BDF                  the GPU; every other function of its slot
 *                              (HDMI audio, USB-C, ...) comes along as a
 *                              function of the same guest slot
 *   --device vfio,host=BDF[,rom=FILE][,rombar=on|off]
 *                              any PCI function (repeatable); functions of
 *                              one host slot share a guest slot
 *   --rom FILE                 the GPU's expansion ROM from FILE instead of
 *                              the device (a dumped or patched vBIOS)
 *   --hide-hypervisor          hide KVM from the guest's CPUID (the
 *                              hypervisor bit and the KVM leaves) for
 *                              drivers that refuse to run in a VM
 *   --bind                     bind the devices (and their group) to
 *                              vfio-pci at start, restore the drivers at exit
 *   --vfio-iommu auto|type1|iommufd
 *                              the kernel interface for the IOMMU (see
 *                              vfio/container.h); auto takes the VFIO
 *                              container where the kernel has one
 *
 * BDF is DDDD:BB:DD.F or BB:DD.F (domain 0000), hex, as lspci -D prints. */
#ifndef MINIVMM_VFIO_ARGS_H
#define MINIVMM_VFIO_ARGS_H
#include <stdbool.h>
#include <stddef.h>

#include "vfio/container.h"
#include "host/sysfs.h"

#define VFIO_ARGS_MAX_DEVICES 16
#define VFIO_ROM_PATH_MAX     1024

struct vfio_dev_arg {
    char host[HOST_BDF_LEN];    /* normalized "dddd:bb:dd.f" */
    bool gpu;                   /* from --gpu: the slot's siblings join */
    char rom[VFIO_ROM_PATH_MAX];  /* ROM file, "" = the device's own ROM */
    bool no_rom;                /* rombar=off: no ROM BAR at all */
};

struct vfio_args {
    struct vfio_dev_arg dev[VFIO_ARGS_MAX_DEVICES];
    unsigned nr;
    bool hide_hypervisor;
    bool bind;
    enum vfio_iommu_mode iommu; /* --vfio-iommu; AUTO when not given */
    bool iommu_given;
    const char *rom;            /* --rom, moved to the --gpu entry by finish */
};

/* The usage lines for --help. */
extern const char vfio_args_usage[];

/* Is name (namelen bytes, e.g. "--gpu" from "--gpu=01:00.0") one of these
 * flags? Returns true and whether it takes a value. */
bool vfio_args_flag(const char *name, size_t namelen, bool *takes_value);

/* Apply one of these flags (value NULL for flags without one). 0, or
 * -EINVAL with a message naming the flag, the value and what to do. */
int vfio_args_apply(struct vfio_args *a, const char *name, size_t namelen, const char *value,
                    char *err, unsigned errlen);

/* After every flag: --rom needs --gpu, the same function twice is refused. */
int vfio_args_finish(struct vfio_args *a, char *err, unsigned errlen);

#endif
