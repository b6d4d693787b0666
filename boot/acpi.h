#ifndef MINIVMM_ACPI_H
#define MINIVMM_ACPI_H
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "vmm/gm.h"
/* Firmware tables for a direct Linux boot (and, later, for OVMF through the
 * fw_cfg table-loader): RSDP, XSDT, FADT (+FACS), DSDT, MADT. */
#define ACPI_TABLES_GPA 0xE0000   /* RSDP here: where kernels scan (ACPI 6.4 §5.2.5.1) */
#define ACPI_TABLES_MAX 0x10000
struct acpi_config {
    unsigned nr_cpus;
    const uint32_t *apic_ids;   /* nr_cpus entries */
    uint64_t ioapic_addr;       /* 0xFEC00000 */
    uint64_t lapic_addr;        /* 0xFEE00000 */
    uint16_t pm_base;           /* ACPI_PM_BASE */
    unsigned sci_gsi;
    bool rtc;                   /* a CMOS RTC at 0x70: clears IAPC "no CMOS RTC" */
    /* \_SB.PCI0, the q35 PCIe host bridge (devices/chipset/q35.h), when pci is set:
     * buses 0-255, I/O 0-0xCF7 and 0xD00-0xFFFF, 32-bit memory from
     * pci_mmio32_base to 0xFEBFFFFF less the ECAM window (ecam_base, 256
     * MiB), 64-bit memory [pci_mmio64_base, +pci_mmio64_size), and a _PRT
     * for every slot by q35_intx_gsi's rule. */
    bool pci;
    uint64_t ecam_base;
    uint64_t pci_mmio32_base;
    uint64_t pci_mmio64_base, pci_mmio64_size;
    /* Add an MCFG for ecam_base (direct boot; through fw_cfg the loader
     * adds its own, following PCIEXBAR). */
    bool mcfg;
};
/* Build the tables into buf as they will sit at base_gpa (all pointers and
 * checksums final). Returns bytes used or a negative errno (-ENOSPC). */
long acpi_build(const struct acpi_config *cfg, uint64_t base_gpa, uint8_t *buf, size_t buflen);
/* acpi_build into guest memory at ACPI_TABLES_GPA; *rsdp = its RSDP address. */
int acpi_install(struct gm *gm, const struct acpi_config *cfg, uint64_t *rsdp);
#endif
