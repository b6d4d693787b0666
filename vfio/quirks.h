/* Device quirks: what real devices need beyond the PCI spec to work when
 * passed through. The list, with what minivmm does about each (facts from
 * QEMU's hw/vfio/pci-quirks.c and users' reports; envytools documents the
 * NVIDIA windows):
 *
 * Implemented
 *   NVIDIA BAR0 config mirror (vendor 10de, class 03xx, BAR0 +0x88000,
 *     4 KiB): the whole PCIe config space is mirrored in BAR0, and the
 *     NVIDIA driver (Windows and Linux) reads and writes config registers
 *     there -- including the MSI capability. Left direct, the driver would
 *     program the host's real MSI registers behind the config layer and see
 *     host BAR addresses. minivmm traps that page and sends aligned
 *     accesses of 1, 2 or 4 bytes through vfio/config.c, like config
 *     cycles; other accesses in the page go to the device.
 *   NVIDIA MSI acknowledge through the mirror: the driver acknowledges an
 *     MSI by writing the MSI capability's ID/next bytes through the mirror
 *     (read-only in config space, but the write matters to the GPU: without
 *     it the next MSI never comes). Writes wholly inside those two bytes
 *     also go to the device.
 *   Broadcom BCM57810 (14e4:168e) ROM: its option ROM hangs guests; no ROM
 *     BAR unless --rom/rom= gives one.
 *
 * Not implemented (and why)
 *   NVIDIA BAR0 +0x1800 mirror, VGA port 0x3d0 and BAR5 windows, ATI/AMD
 *     BAR2 +0x4000 mirror, BAR4 window and port 0x3c3: QEMU applies them
 *     only with legacy VGA passthrough (the VGA BIOS uses them). minivmm
 *     boots OVMF, which runs the card's UEFI GOP driver, and passes no VGA
 *     ranges, so nothing uses these windows.
 *   AMD "reset bug" (Polaris, Vega, Navi 1x do not come back from a bus
 *     reset): needs the host's vendor-reset module; minivmm reports the
 *     failed reset and goes on.
 *   Intel IGD (OpRegion, stolen memory, LPC bridge IDs): not a target.
 *   Peer-to-peer DMA between passed-through devices (BARs in the IOMMU).
 *
 * Not here
 *   --hide-hypervisor (for the NVIDIA driver before R465, which stops with
 *     Code 43 when it sees KVM) is a guest CPU matter, not a device quirk:
 *     the flag is parsed with the passthrough flags (vfio/vfio_args.c, into
 *     cfg->vfio.hide_hypervisor), and the CPUID edit it turns on is in
 *     arch/x86/cpuid_policy.h, applied per vCPU by vmm/vcpu.c.
 *
 * The lab's stand-ins need none: bochs-display (1234:1111), nvme
 * (1b36:0010), e1000e (8086:10d3), edu (1234:11e8). */
#ifndef MINIVMM_VFIO_QUIRKS_H
#define MINIVMM_VFIO_QUIRKS_H
#include <stdbool.h>
#include <stdint.h>

#include "vfio/bar.h"
#include "vfio/config.h"

#define VFIO_QUIRK_MAX_WINDOWS 2

enum vfio_quirk_kind {
    VFIO_QUIRK_CFG_MIRROR,      /* config space mirrored in a BAR */
};

struct vfio_quirk_window {
    enum vfio_quirk_kind kind;
    unsigned bar;
    uint64_t off, len;          /* the window within the BAR */
    uint32_t cfg_len;           /* config bytes mirrored from off */
    bool msi_ack;               /* writes to the MSI ID/next bytes reach the device */
    const char *name;
};

struct vfio_quirks {
    struct vfio_quirk_window win[VFIO_QUIRK_MAX_WINDOWS];
    unsigned nr;
    bool no_rom;                /* the device's own ROM must not be shown */
};

/* Pure: the quirks of a device from its IDs, class code (24 bits) and BARs. */
void vfio_quirks_probe(uint16_t vendor, uint16_t device, uint32_t class_code,
                       const struct vfio_bar_info bars[VFIO_NR_BARS], struct vfio_quirks *q);

/* Where an access at off (from the window start) of len bytes goes. */
enum vfio_quirk_route {
    VFIO_QUIRK_TO_DEVICE,       /* not a config access: the BAR itself */
    VFIO_QUIRK_TO_CONFIG,       /* through the config layer only */
    VFIO_QUIRK_TO_BOTH,         /* config layer and the device (MSI ack) */
};
enum vfio_quirk_route vfio_quirk_route(const struct vfio_quirk_window *w,
                                       const struct vfio_config *cfg, uint64_t off,
                                       unsigned len, bool write);

#endif
