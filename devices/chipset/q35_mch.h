/* The q35 host bridge (Intel 82G33/P35 "MCH" as QEMU models it) at 00:00.0,
 * 8086:29c0: the ID OVMF's PlatformPei looks for to choose its Q35 code
 * (OvmfPkg/Include/IndustryStandard/Q35MchIch9.h), and the registers that
 * code touches. See devices/chipset/q35_mch.c for the register map. */
#ifndef MINIVMM_Q35_MCH_H
#define MINIVMM_Q35_MCH_H
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/pci.h"

#define Q35_MCH_VENDOR      0x8086
#define Q35_MCH_DEVICE      0x29C0
#define Q35_MCH_DEVFN       PCI_DEVFN(0, 0)

#define MCH_EXT_TSEG_MB     0x50
#define MCH_EXT_TSEG_MB_QUERY 0xFFFF
#define MCH_PCIEXBAR        0x60
#define MCH_PCIEXBAR_EN     0x1
#define MCH_PCIEXBAR_LEN_256M 0x0
#define MCH_PCIEXBAR_LEN_128M 0x2
#define MCH_PCIEXBAR_LEN_64M  0x4
#define MCH_PAM0            0x90
#define MCH_NR_PAM          7
#define MCH_DEFAULT_SMBASE_CTL 0x9C
#define MCH_SMRAM           0x9D
#define MCH_ESMRAMC         0x9E
#define MCH_GBSM            0xA4
#define MCH_BGSM            0xA8
#define MCH_TSEGMB          0xAC
#define MCH_TOLUD           0xB0

/* Where QEMU's q35 and OVMF up to edk2-stable202302 put ECAM (Debian 12's
 * OVMF writes this to PCIEXBAR); newer OVMF writes 0xE0000000. */
#define Q35_ECAM_DEFAULT_BASE 0xB0000000ULL
#define Q35_ECAM_SIZE         (256ULL << 20)

struct q35_mch_config {
    uint64_t lowmem;            /* top of RAM below 4 GiB (gm_lowmem) */
    /* Answer to the extended-TSEG query (0 = feature absent, which is what
     * minivmm, having no SMM, says: the query reads back 0xFFFF). */
    uint16_t ext_tseg_mbytes;
    /* Program PCIEXBAR to Q35_ECAM_DEFAULT_BASE, enabled, at creation (a
     * direct kernel boot has no firmware to do it). */
    bool ecam_preset;
};

struct q35_mch {
    struct pci_device dev;
    struct pci_bus *bus;
    struct q35_mch_config cfg;
};

/* Initialize and plug into bus at 00.0. */
int q35_mch_init(struct q35_mch *m, struct pci_bus *bus, const struct q35_mch_config *cfg);
/* Unplug; turns ECAM off. */
void q35_mch_fini(struct q35_mch *m);
/* The ECAM window as PCIEXBAR has it now (bus lock held, or before the
 * guest runs): true with base and size when enabled. */
bool q35_mch_ecam(const struct q35_mch *m, uint64_t *base, uint64_t *size);

#endif
