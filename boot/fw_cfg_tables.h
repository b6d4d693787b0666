/* The fw_cfg items OVMF reads, built from the machine (boot/fw_cfg_tables.c):
 *
 *   item                    contents
 *   0x03 RAM_SIZE           le64 bytes of RAM
 *   0x05 NB_CPUS            le16 boot CPUs (OvmfPkg PlatformMaxCpuCountInit.)
 *   0x0F MAX_CPUS           le16 possible CPUs (= boot CPUs: no hot-plug)
 *   0x0E BOOT_MENU          le16 0
 *   etc/e820                RAM as QEMU describes it: [0, lowmem) and
 *                           [4 GiB, 4 GiB + rest), type 1, then the extra
 *                           reserved ranges; 20-byte entries le64 address,
 *                           le64 length, le32 type. Not boot/e820.h's Linux
 *                           map: newer OVMF takes low memory as the RAM
 *                           entries contiguous from 0, and would stop at a
 *                           640 KiB hole (OVMF itself reserves 640K-1M).
 *   bootorder               the given OpenFirmware paths, '\n'-separated,
 *                           NUL-terminated (only when given)
 *   opt/ovmf/X-PciMmio64Mb  decimal MiB of 64-bit PCI MMIO aperture for OVMF
 *                           (only when non-zero)
 *   kernel items            --kernel through OVMF: KERNEL_SIZE/DATA (the
 *                           bzImage after its setup sectors), SETUP_SIZE/
 *                           DATA ((setup_sects + 1) * 512 bytes, setup_sects
 *                           0 meaning 4, x86 boot protocol §"The real-mode
 *                           kernel header"), INITRD_SIZE/DATA, CMDLINE_SIZE/
 *                           DATA (NUL included): OvmfPkg's
 *                           QemuKernelLoaderFsDxe reads exactly these
 *   etc/smbios/smbios-tables,  boot/smbios.h's structures (no type 0: OVMF
 *   etc/smbios/smbios-anchor   adds its own) and their SMBIOS 3.0 entry point
 *                           (only with a smbios description)
 *   etc/acpi/tables,        boot/acpi.h's tables plus MCFG, made relocatable
 *   etc/acpi/rsdp,          by boot/acpi_loader.h; MCFG's base follows the
 *   etc/table-loader        ECAM window at the time firmware reads the
 *                           tables (QEMU likewise builds them on first read)
 */
#ifndef MINIVMM_FW_CFG_TABLES_H
#define MINIVMM_FW_CFG_TABLES_H
#include <stdbool.h>
#include <stdint.h>

#include "boot/acpi.h"
#include "boot/smbios.h"
#include "devices/chipset/fw_cfg.h"
#include "vmm/gm.h"

#define FW_CFG_MAX_RESERVED 4

struct fw_cfg_machine {
    const struct gm *gm;
    unsigned nr_cpus;
    const char *bootorder;          /* NULL: none */
    uint64_t pci_mmio64_mb;         /* 0: OVMF's default */
    const char *kernel, *initrd, *cmdline;   /* kernel NULL: no kernel items */
    const struct acpi_config *acpi; /* NULL: no ACPI tables */
    const struct smbios_config *smbios;   /* NULL: no SMBIOS files */
    /* MCFG: the ECAM window now (false: disabled), and the base to
     * describe while it is disabled. */
    bool (*ecam)(void *opaque, uint64_t *base, uint64_t *size);
    void *ecam_opaque;
    uint64_t ecam_default_base;
    /* e.g. KVM's TSS/identity-map pages, if the VM put them below 4 GiB */
    struct { uint64_t addr, len; } reserved[FW_CFG_MAX_RESERVED];
    unsigned nr_reserved;
};

/* Add everything above to fc. Errors (logged with the file named):
 * -ENOENT/-EIO for unreadable kernel/initrd, -ENOEXEC for a kernel that is
 * not a bzImage, -EFBIG for files of 4 GiB or more, -EINVAL for a bad
 * machine description. On error, items already added stay (the caller
 * destroys fc). */
int fw_cfg_add_machine(struct fw_cfg *fc, const struct fw_cfg_machine *m);

/* Pure, for tests: the etc/e820 bytes for m (nr entries * 20). Returns
 * the length, or -ENOSPC if out is too small. */
long fw_cfg_e820_build(const struct fw_cfg_machine *m, uint8_t *out, size_t cap);
/* Pure: split a bzImage into its setup part and the rest. -ENOEXEC if it
 * is not one. */
int fw_cfg_kernel_split(const uint8_t *img, size_t len, size_t *setup_len);

#endif
