/* Config-space virtualization for a passed-through PCI function.
 *
 * A pure layer: it sees the real device's config space only through two
 * callbacks (the VFIO config region in production, a byte array in the unit
 * tests and the fuzzer) and decides, bit by bit, what the guest reads and
 * where the guest's writes go.
 *
 * Every byte of the 4 KiB config space has three masks:
 *   emu    the value the guest sees for emulated bits,
 *   emask  1 = emulated bit (read from emu), 0 = passed through (read from
 *          and written to the device),
 *   wmask  1 = emulated bit the guest may write; other emulated bits are
 *          read-only.
 * A read returns (device & ~emask) | (emu & emask). A write updates the
 * writable emulated bits and forwards the bytes that have any passed-through
 * bit, with the emulated bits of those bytes written as 0 (every mixed byte
 * in the table below is read-only or write-1-to-clear at those bits, so a 0
 * changes nothing on the device).
 *
 * What is emulated (offsets in the type 0 header, PCI Local Bus 3.0 §6.1;
 * capabilities are found by walking the device's own list):
 *
 *   offset     register                  here
 *   0x00-0x03  vendor, device ID         passed through (read-only)
 *   0x04-0x05  command                   passed through; its I/O and memory
 *                                        space bits are also shadowed: they
 *                                        decide whether the BARs decode
 *   0x06-0x07  status                    passed through, except bit 4
 *                                        (capability list) which follows the
 *                                        filtered list
 *   0x08-0x0D  revision, class, cache    passed through
 *              line size, latency timer
 *   0x0E       header type               bit 7 (multi-function) emulated: it
 *                                        describes the guest's slot
 *   0x0F       BIST                      emulated as 0 (a guest never starts
 *                                        a built-in self test on the host's
 *                                        device)
 *   0x10-0x27  BAR0-BAR5                 emulated: size masks from the VFIO
 *                                        region sizes, type bits from the
 *                                        device; the address is the guest's
 *   0x28-0x2F  CardBus CIS, subsystem    passed through
 *   0x30-0x33  expansion ROM BAR         emulated (enable bit + address)
 *   0x34       capabilities pointer      emulated: first capability kept
 *   0x35-0x3B  reserved                  emulated as 0
 *   0x3C       interrupt line            emulated, read/write scratch
 *   0x3D       interrupt pin             emulated: INTA# if VFIO reports an
 *                                        INTx line, else 0
 *   0x3E-0x3F  min grant, max latency    passed through
 *   caps       next pointers             emulated: the list skips hidden
 *                                        capabilities
 *   MSI        whole capability          emulated (PCI 3.0 §6.8.1): enable,
 *                                        multiple message enable, address,
 *                                        data, mask bits; pending bits come
 *                                        from a callback
 *   MSI-X      whole capability          emulated (PCI 3.0 §6.8.2): enable
 *                                        and function mask writable; table
 *                                        size and table/PBA locations are the
 *                                        device's, read-only
 *   PCIe       device/port type          emulated where the guest topology
 *                                        differs from the host's (PCIe 5.0
 *                                        §7.5.3.2): an integrated endpoint
 *                                        is shown as an endpoint behind our
 *                                        root port, with a x1 2.5 GT/s link
 *                                        in link capabilities/status; on a
 *                                        root bus an endpoint is shown as
 *                                        integrated, without a link
 *   hidden     header of each hidden     emulated as 0, read-only
 *              capability
 *   0x100      extended capabilities     next fields emulated: the list
 *                                        skips hidden ones; a hidden first
 *                                        one leaves a header with ID 0 that
 *                                        points on (PCIe 5.0 §7.6.3)
 *
 * Kept standard capabilities: power management, VPD, MSI, vendor-specific,
 * PCI Express, MSI-X, advanced features. Kept extended capabilities: device
 * serial number, power budgeting, vendor-specific, LTR. Everything else
 * (AER, ACS, ATS, PRI, PASID, SR-IOV, resizable BAR, L1 PM substates, PTM,
 * ...) is hidden: each needs support from the rest of the platform (root
 * port, IOMMU) that the guest does not have, or lets the guest change the
 * device's resources under the host.
 *
 * A guest access is bounds-checked: length 1, 2 or 4, naturally aligned,
 * inside the 4 KiB; anything else reads as all ones and is dropped when
 * written. Past a conventional function's 256 bytes reads are 0 and writes
 * are dropped. */
#ifndef MINIVMM_VFIO_CONFIG_H
#define MINIVMM_VFIO_CONFIG_H
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/msix.h"

#define VFIO_CFG_SPACE_SIZE     4096u  /* PCIe configuration space */
#define VFIO_CFG_LEGACY_SIZE    256u   /* conventional PCI configuration space */
#define VFIO_NR_BARS            6

/* The real device's config space (offsets within it). Return 0 or -errno. */
struct vfio_config_dev {
    int (*read)(void *opaque, uint32_t off, void *buf, uint32_t len);
    int (*write)(void *opaque, uint32_t off, const void *buf, uint32_t len);
    void *opaque;
};

enum vfio_bar_type {
    VFIO_BAR_UNUSED = 0,
    VFIO_BAR_IO,
    VFIO_BAR_MEM32,
    VFIO_BAR_MEM64,     /* this index holds the low half */
    VFIO_BAR_MEM64_HI,  /* upper half of the BAR before it */
};

struct vfio_bar_info {
    enum vfio_bar_type type;
    bool prefetch;
    uint64_t size;      /* power of two; 0 when unused */
};

/* Decode one BAR from the device's BAR register(s) and the VFIO region size.
 * lo is the BAR's dword, hi the next one (ignored unless lo says 64-bit).
 * A region size that is not a power of two is rounded up (BARs decode
 * power-of-two ranges, PCI 3.0 §6.2.5.1); a 64-bit BAR in slot 5 or a size
 * that does not fit its type is refused with -EINVAL. Pure. */
int vfio_bar_decode(unsigned index, uint32_t lo, uint64_t region_size,
                    struct vfio_bar_info *out);

/* What the caller knows about the device and the guest topology. */
struct vfio_config_opts {
    uint64_t bar_region_size[VFIO_NR_BARS];  /* VFIO region sizes, 0 = none */
    uint64_t rom_size;          /* ROM BAR size (power of two >= 2 KiB), 0 = no ROM */
    bool multifunction;         /* the guest slot has other functions */
    bool behind_root_port;      /* PCIe topology: endpoint behind a root port */
    bool intx;                  /* VFIO reports an INTx line */
    unsigned msi_vectors;       /* VFIO's MSI vector count (0 = hide MSI) */
    unsigned msix_vectors;      /* VFIO's MSI-X vector count (0 = hide MSI-X) */
    uint32_t device_cfg_size;   /* VFIO config region size: 256 or 4096 */
};

/* What a write changed; the caller acts on it (maps BARs, programs
 * interrupts). Returned by vfio_config_write. */
enum {
    VFIO_CFG_EV_DECODE = 1u << 0,   /* command I/O or memory decode bit */
    VFIO_CFG_EV_BAR0   = 1u << 1,   /* BAR i changed: VFIO_CFG_EV_BAR0 << i */
    VFIO_CFG_EV_ROM    = 1u << 7,
    VFIO_CFG_EV_MSI    = 1u << 8,   /* MSI control, address, data or mask */
    VFIO_CFG_EV_MSIX   = 1u << 9,   /* MSI-X enable or function mask */
    VFIO_CFG_EV_INTX   = 1u << 10,  /* command's INTx disable bit */
};

struct vfio_config {
    struct vfio_config_dev dev;
    uint32_t size;              /* config space visible to the guest */
    uint8_t emu[VFIO_CFG_SPACE_SIZE];
    uint8_t emask[VFIO_CFG_SPACE_SIZE];
    uint8_t wmask[VFIO_CFG_SPACE_SIZE];
    uint8_t emu_reset[VFIO_CFG_SPACE_SIZE];  /* emu after a PCI reset */

    struct vfio_bar_info bars[VFIO_NR_BARS];
    uint64_t rom_size;
    uint16_t command;           /* shadow of the guest's command register */

    uint8_t msi_cap;            /* offsets of kept capabilities, 0 = absent */
    uint8_t msi_cap_len;
    unsigned msi_max_vectors;   /* from MMC and VFIO, power of two */
    uint8_t msix_cap;
    struct pci_msix_cap_info msix;
    uint8_t pcie_cap;
    uint8_t pm_cap;
    uint8_t pcie_type;          /* device/port type as shown to the guest */

    /* Pending bits of the MSI capability (masked vectors that fired); NULL
     * reads them as 0. */
    uint32_t (*msi_pending)(void *opaque);
    void *msi_pending_opaque;
};

/* Read the device's config space through dev and build the tables. Refuses
 * (-EINVAL, message in err) a header type other than 0 (bridges cannot be
 * passed through) and BARs the region sizes contradict. */
int vfio_config_init(struct vfio_config *cfg, const struct vfio_config_dev *dev,
                     const struct vfio_config_opts *opts, char *err, unsigned errlen);

/* Guest accesses. Read: 0 (value in *val) or -EINVAL for a bad offset or
 * length (*val is then all ones). Write: a mask of VFIO_CFG_EV_*, or
 * -EINVAL for a bad offset/length (nothing written). */
int vfio_config_read(struct vfio_config *cfg, uint32_t off, unsigned len, uint32_t *val);
int vfio_config_write(struct vfio_config *cfg, uint32_t off, unsigned len, uint32_t val);

/* Back to the state after a PCI reset: BARs, ROM BAR, MSI/MSI-X disabled,
 * command shadow 0, interrupt line 0. */
void vfio_config_reset(struct vfio_config *cfg);

/* Where BAR i decodes now: true with *addr when the BAR is implemented, the
 * command register enables its space, and the address is usable (non-zero,
 * no wrap-around, a 32-bit BAR below 4 GiB, an I/O BAR below 64 KiB). */
bool vfio_config_bar_decoded(const struct vfio_config *cfg, unsigned i, uint64_t *addr);
/* The same for the ROM BAR (its enable bit and memory decode). */
bool vfio_config_rom_decoded(const struct vfio_config *cfg, uint64_t *addr);

/* The MSI capability as the guest programmed it (for pci_msi_update). */
void vfio_config_msi_state(const struct vfio_config *cfg, struct pci_msi_state *st);
/* MSI-X control bits as the guest set them. */
bool vfio_config_msix_enabled(const struct vfio_config *cfg);
bool vfio_config_msix_masked(const struct vfio_config *cfg);
bool vfio_config_intx_disabled(const struct vfio_config *cfg);

/* Offset of capability id in the filtered (guest-visible) list, 0 if none. */
uint8_t vfio_config_find_cap(const struct vfio_config *cfg, uint8_t id);
/* Same for extended capabilities, 0 if none. */
uint16_t vfio_config_find_ext_cap(const struct vfio_config *cfg, uint16_t id);

#endif
