/* q35 host bridge, 00:00.0 8086:29c0 (devices/chipset/q35_mch.h).
 *
 * Register map (Intel 3 Series Express Chipset Family datasheet 316966
 * §5.1, offsets as OvmfPkg's Q35MchIch9.h names them):
 *
 *   off   size  register          here
 *   0x00  4     VID/DID           8086:29c0, read-only
 *   0x08  4     RID/class         rev 0, class 0x060000 (host bridge)
 *   0x2C  4     SVID/SID          1af4:1100, as QEMU's q35 (same guest
 *                                 driver matching as under QEMU)
 *   0x50  2     EXT_TSEG_MBYTES   QEMU's extended-TSEG interface: writing
 *                                 0xFFFF (the query) makes it read the
 *                                 extended TSEG size in MiB; minivmm has no
 *                                 SMM so by default it reads 0xFFFF =
 *                                 "feature absent". Otherwise read-only.
 *   0x60  8     PCIEXBAR          bit 0 enable, bits 2:1 length (00 256 MiB,
 *                                 01 128 MiB, 10 64 MiB, 11 reserved), base
 *                                 bits 35:26 (aligned to the length). A
 *                                 write moves/enables ECAM on the MMIO bus.
 *   0x90  7     PAM0-PAM6         stored (PAM0 bits 5:4, others 5:4 and
 *                                 1:0). The 0xC0000-0xFFFFF area is plain
 *                                 RAM in minivmm whatever PAM says: KVM maps
 *                                 guest RAM there, and OVMF boots from the
 *                                 flash at 4 GiB - 16 (the reset vector),
 *                                 never through the legacy BIOS alias, so
 *                                 nothing ever needs the "read from ROM"
 *                                 PAM settings.
 *   0x9C  1     DEFAULT_SMBASE_CTL  0, read-only (no SMBASE relocation
 *                                 feature: there is no SMM).
 *   0x9D  1     SMRAM             0x02 (C_BASE_SEG = A0000h); D_OPEN,
 *                                 D_CLS, D_LCK, G_SMRAME stored, no effect
 *   0x9E  1     ESMRAMC           0x38 (cache bits as on silicon); H_SMRAME,
 *                                 TSEG_SZ, T_EN stored, E_SMERR W1C. No SMRAM
 *                                 exists: OVMF's non-SMM build never relies
 *                                 on these, and an SMM build is refused by
 *                                 its own checks (it needs SMM in KVM).
 *   0xA4  4     GBSM              lowmem (no graphics stolen memory)
 *   0xA8  4     BGSM              lowmem
 *   0xAC  4     TSEGMB            lowmem (no TSEG)
 *   0xB0  2     TOLUD             top of low usable DRAM, bits 15:4 =
 *                                 address bits 31:20; read-only */
#include "devices/chipset/q35_mch.h"

#include <errno.h>
#include <inttypes.h>

#include "vmm/log.h"

#define MCH_PCIEXBAR_LEN_MASK 0x6
#define MCH_PCIEXBAR_HIGH_MASK 0x0000000Fu   /* base bits 35:32 */

bool q35_mch_ecam(const struct q35_mch *m, uint64_t *base, uint64_t *size)
{
    uint32_t lo = pci_cfg_get(&m->dev, MCH_PCIEXBAR, 4);
    uint32_t hi = pci_cfg_get(&m->dev, MCH_PCIEXBAR + 4, 4) & MCH_PCIEXBAR_HIGH_MASK;
    uint64_t sz;

    if (!(lo & MCH_PCIEXBAR_EN))
        return false;
    switch (lo & MCH_PCIEXBAR_LEN_MASK) {
    case MCH_PCIEXBAR_LEN_256M: sz = 256ULL << 20; break;
    case MCH_PCIEXBAR_LEN_128M: sz = 128ULL << 20; break;
    case MCH_PCIEXBAR_LEN_64M:  sz = 64ULL << 20; break;
    default:
        return false;   /* reserved length: decodes nothing */
    }
    *base = ((uint64_t)hi << 32 | lo) & ~(sz - 1) & 0xFFFFFFFFFULL;
    *size = sz;
    return true;
}

static void mch_update_ecam(struct q35_mch *m)
{
    uint64_t base, size;
    uint32_t lo = pci_cfg_get(&m->dev, MCH_PCIEXBAR, 4);

    if (q35_mch_ecam(m, &base, &size)) {
        pci_bus_set_ecam_locked(m->bus, base, size);
        return;
    }
    if ((lo & MCH_PCIEXBAR_EN) && (lo & MCH_PCIEXBAR_LEN_MASK) == MCH_PCIEXBAR_LEN_MASK)
        log_guest_once("q35-mch", "PCIEXBAR 0x%08x uses the reserved length: ECAM disabled", lo);
    pci_bus_set_ecam_locked(m->bus, 0, 0);
}

static int mch_cfg_write(struct pci_device *d, uint32_t off, unsigned len, uint32_t val)
{
    struct q35_mch *m = d->opaque;

    /* The extended TSEG query is a 16-bit write of 0xFFFF at 0x50. */
    if (off <= MCH_EXT_TSEG_MB && off + len >= MCH_EXT_TSEG_MB + 2) {
        uint16_t v = (uint16_t)(val >> (8 * (MCH_EXT_TSEG_MB - off)));
        if (v == MCH_EXT_TSEG_MB_QUERY)
            pci_cfg_set(d, MCH_EXT_TSEG_MB, 2,
                        m->cfg.ext_tseg_mbytes ? m->cfg.ext_tseg_mbytes : MCH_EXT_TSEG_MB_QUERY);
    }
    return PCI_CFG_GENERIC;
}

static void mch_cfg_written(struct pci_device *d, uint32_t off, unsigned len, uint32_t old)
{
    struct q35_mch *m = d->opaque;

    if (off < MCH_PCIEXBAR + 8 && off + len > MCH_PCIEXBAR)
        mch_update_ecam(m);
}

static const struct pci_device_ops mch_ops = {
    .cfg_write = mch_cfg_write,
    .cfg_written = mch_cfg_written,
};

int q35_mch_init(struct q35_mch *m, struct pci_bus *bus, const struct q35_mch_config *cfg)
{
    struct pci_device *d = &m->dev;
    uint32_t low = (uint32_t)cfg->lowmem;
    int err;

    if (cfg->lowmem == 0 || cfg->lowmem > 0xFFF00000ULL || (cfg->lowmem & 0xFFFFF)) {
        log_err("q35-mch", "low memory top 0x%" PRIx64 " is not a MiB multiple below 4 GiB",
                cfg->lowmem);
        return -EINVAL;
    }
    m->bus = bus;
    m->cfg = *cfg;
    d->ops = &mch_ops;
    d->opaque = m;
    pci_device_init(d, "q35-mch", Q35_MCH_VENDOR, Q35_MCH_DEVICE, 0x060000, 0,
                    PCI_HEADER_TYPE_NORMAL, PCI_CFG_LEGACY_SIZE);
    pci_cfg_set(d, PCI_SUBSYSTEM_VENDOR_ID, 2, 0x1AF4);
    pci_cfg_set(d, PCI_SUBSYSTEM_ID, 2, 0x1100);
    /* A host bridge forwards memory and I/O to the rest of the system. */
    pci_cfg_set(d, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);

    pci_cfg_set_wmask(d, MCH_PCIEXBAR, 4, 0xFC000000u | MCH_PCIEXBAR_LEN_MASK | MCH_PCIEXBAR_EN);
    pci_cfg_set_wmask(d, MCH_PCIEXBAR + 4, 4, MCH_PCIEXBAR_HIGH_MASK);
    pci_cfg_set_wmask(d, MCH_PAM0, 1, 0x30);
    for (unsigned i = 1; i < MCH_NR_PAM; i++)
        pci_cfg_set_wmask(d, MCH_PAM0 + i, 1, 0x33);
    pci_cfg_set(d, MCH_SMRAM, 1, 0x02);
    pci_cfg_set_wmask(d, MCH_SMRAM, 1, 0x78);
    pci_cfg_set(d, MCH_ESMRAMC, 1, 0x38);
    pci_cfg_set_wmask(d, MCH_ESMRAMC, 1, 0x87);
    pci_cfg_set_w1cmask(d, MCH_ESMRAMC, 1, 0x40);
    pci_cfg_set(d, MCH_GBSM, 4, low);
    pci_cfg_set(d, MCH_BGSM, 4, low);
    pci_cfg_set(d, MCH_TSEGMB, 4, low);
    pci_cfg_set(d, MCH_TOLUD, 2, (low >> 20) << 4);

    if (cfg->ecam_preset) {
        pci_cfg_set(d, MCH_PCIEXBAR, 4, (uint32_t)Q35_ECAM_DEFAULT_BASE | MCH_PCIEXBAR_EN);
        pci_cfg_set(d, MCH_PCIEXBAR + 4, 4, (uint32_t)(Q35_ECAM_DEFAULT_BASE >> 32));
    }
    err = pci_bus_add(bus, NULL, Q35_MCH_DEVFN, d);
    if (err)
        return err;
    if (cfg->ecam_preset) {
        err = pci_bus_set_ecam(bus, Q35_ECAM_DEFAULT_BASE, Q35_ECAM_SIZE);
        if (err) {
            pci_bus_remove(bus, d);
            return err;
        }
    }
    return 0;
}

void q35_mch_fini(struct q35_mch *m)
{
    if (!m->bus)
        return;
    pci_bus_set_ecam(m->bus, 0, 0);
    pci_bus_remove(m->bus, &m->dev);
    m->bus = NULL;
}
