/* The VM's configuration: what the command line asked for, validated --
 * the core's input. The front end (frontend/cli.h: config_parse) turns
 * flags into it; nothing below the front end reads argv. */
#ifndef MINIVMM_CONFIG_H
#define MINIVMM_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/block/disk_args.h"
#include "devices/display/display_args.h"
#include "devices/virtio/virtio_net_args.h"
#include "vfio/vfio_args.h"

#define CONFIG_MAX_CPUS 64
#define CONFIG_NAME_MAX 64

/* The 64-bit PCI MMIO window's default size: OVMF 2022.11's own default
 * aperture (PcdPciMmio64Size). */
#define CONFIG_DEFAULT_PCI_MMIO64 (32ULL << 30)

struct config {
    /* memory */
    uint64_t mem_size;          /* --memory, default 512M */
    uint64_t hugepage_size;     /* --hugepages 2M|1G; 0 = off */
    uint64_t pci_mmio64_size;   /* --pci-mmio64: the 64-bit PCI window, a power of two */
    bool prealloc;              /* --prealloc */
    bool mlock;                 /* default true; --no-mlock turns it off */

    /* CPUs: --cpus N, or --smp sockets=S,cores=C,threads=T */
    unsigned nr_cpus;           /* = sockets * cores * threads */
    unsigned sockets, cores, threads;
    int cpu_pin[CONFIG_MAX_CPUS];  /* --cpu-pin 0=2,1=3: host CPU or -1 */
    int emulator_pin;           /* --emulator-pin CPU, -1 = not pinned */
    int io_pin;                 /* --io-pin CPU, -1 = not pinned */

    /* firmware: --firmware CODE.fd (OVMF), --vars FILE (the VM's UEFI
     * variable store). firmware_boot is true when OVMF runs: --firmware
     * given, or no --kernel (then PFLASH_DEFAULT_CODE). */
    const char *firmware;       /* NULL: PFLASH_DEFAULT_CODE when firmware_boot */
    const char *vars;           /* NULL: pflash_default_vars_path(config_vm_name()) */
    const char *name;           /* --name; NULL: see config_vm_name */
    bool firmware_boot;
    bool no_reboot;             /* --no-reboot: a guest reset ends minivmm (status 3) */

    /* Linux: booted directly, or through OVMF (fw_cfg) with --firmware */
    const char *kernel;         /* --kernel bzImage */
    const char *initrd;         /* --initrd */
    const char *cmdline;        /* --cmdline, default "console=ttyS0" */

    /* console */
    const char *serial;         /* --serial stdio (default) | file:PATH | none */

    /* measurement */
    bool stats;                 /* --stats: exit counts and times at exit */
    const char *stats_json;     /* --stats-json FILE */

    /* passthrough: --gpu, --device vfio,..., --rom, --hide-hypervisor,
     * --bind, parsed by vfio/vfio_args.c */
    struct vfio_args vfio;

    /* virtio: --disk (devices/block/disk_args.c), --net
     * (devices/virtio/virtio_net_args.c) */
    struct disk_args disks;
    struct virtio_net_args nics;

    /* --display std|none (devices/display/display_args.c); none for now */
    struct display_args display;

    int verbosity;              /* -v: +1, -q: -1 */
};

/* The VM's name: --name, else the first --disk's file name (up to its first
 * '.') and 8 hex digits of a hash of its absolute path ("win-1a2b3c4d"),
 * else "default". It keys the per-VM state kept without a path given (the
 * UEFI variable store). 0 or -ENAMETOOLONG. */
int config_vm_name(const struct config *cfg, char *out, size_t len);

#endif
