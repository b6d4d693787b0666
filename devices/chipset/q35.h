/* The q35-like platform in one call: the PCI bus (0xCF8/0xCFC, ECAM), the
 * MCH host bridge at 00:00.0, PCIe root ports at 00:02.0.., the ICH9 LPC at
 * 00:1f.0 with the ACPI PM block, the RTC/CMOS, fw_cfg with the items OVMF
 * reads, and (firmware boot) the flash with OVMF's CODE and VARS. The
 * SMBIOS tables (boot/smbios.h) describe it: through fw_cfg for OVMF, in
 * RAM at SMBIOS_GPA for a direct boot (written by q35_create, as firmware
 * would before handing over).
 *
 * Two modes:
 *   firmware (cfg.firmware): registers start as on hardware after reset --
 *     OVMF programs PCIEXBAR, PMBASE/ACPI_EN itself; pflash maps CODE and
 *     VARS; fw_cfg carries e820, CPUs, ACPI (table-loader), bootorder, the
 *     64-bit MMIO size and, with cfg.kernel, the kernel/initrd/cmdline.
 *   direct kernel boot: no flash; PCIEXBAR is preset to 0xB0000000 and the
 *     PM block to ACPI_PM_BASE, as a firmware would have left them.
 *
 * Start-up order (undone in reverse on failure and by q35_destroy): PCI
 * bus and its ports (adopting 0xCF9 from devices/sysctl, which must exist
 * already: create sysctl first, destroy it after), MCH, LPC (+ acpi_pm),
 * root ports, RTC, fw_cfg (+ SMBIOS), pflash; direct boot: SMBIOS in RAM.
 * Do not create an acpi_pm of your own:
 * the LPC owns it (q35_acpi_pm() for the power button).
 *
 * Interrupts: in APIC mode PCI INTx of the device in root-bus slot S (or
 * behind the root port in slot S) on pin P (1-4 = INTA-INTD, after the
 * bridge swizzle, PCI-to-PCI Bridge 1.2 §9.1) is GSI q35_intx_gsi(): PIRQ
 * E-H (GSI 20-23) chosen by (S + P - 1) mod 4, QEMU's q35 rule for slots
 * 0-0x17, so the DSDT's _PRT lists for each slot S and pin index p (0-3):
 * { S << 16 | 0xFFFF, p, 0, 20 + (S + p) % 4 }. The IOAPIC needs 24 pins. */
#ifndef MINIVMM_Q35_H
#define MINIVMM_Q35_H
#include <stdbool.h>
#include <stdint.h>

#include "boot/acpi.h"
#include "devices/chipset/fw_cfg.h"
#include "devices/chipset/lpc_ich9.h"
#include "devices/pci/pci.h"
#include "devices/pci/pci_root_port.h"
#include "devices/chipset/pflash.h"
#include "devices/chipset/q35_mch.h"
#include "devices/legacy/rtc.h"
#include "vmm/dev_env.h"

#define Q35_MAX_ROOT_PORTS   8

#define Q35_ROOT_PORT_SLOT0  2      /* root port i sits at 00:(2 + i).0 */

/* What outlives one platform instance across an in-process guest reset,
 * as on hardware: the battery-backed RTC/CMOS (the guest-set time, CMOS
 * RAM) and the system's identity (the SMBIOS UUID). The caller owns it,
 * zeroed before the first q35_create; q35_create takes what is there,
 * q35_destroy fills it for the next one. */
struct q35_persist {
    struct rtc_state rtc;
    bool have_uuid;
    uint8_t uuid[16];
};

struct q35_config {
    unsigned nr_cpus;
    unsigned nr_root_ports;         /* 0..Q35_MAX_ROOT_PORTS */
    /* optional: the link root port i reports (a passed-through device's
     * negotiated speed and width, vfio_pci_slot_link); 0: the defaults */
    struct { unsigned speed, width; } port_link[Q35_MAX_ROOT_PORTS];
    /* SMBIOS type 4 (boot/smbios.h): sockets, cores per socket, threads
     * per core; any 0: one socket of nr_cpus cores */
    unsigned sockets, cores, threads;
    /* optional (NULL: nothing carried over; a fresh RTC and, for a direct
     * boot, a new random UUID each q35_create) */
    struct q35_persist *persist;
    bool firmware;                  /* boot OVMF from flash (else direct kernel boot) */
    struct pflash_config pflash;    /* firmware only */
    /* fw_cfg items (firmware only) */
    const struct acpi_config *acpi; /* the tables to hand OVMF; NULL: none */
    const char *bootorder;
    uint64_t pci_mmio64_mb;
    const char *kernel, *initrd, *cmdline;   /* --kernel through OVMF */
};

struct q35 {
    struct dev_env env;
    struct pci_bus pci;
    bool pci_init, pci_pio;
    struct q35_mch mch;
    bool mch_init;
    struct lpc_ich9 *lpc;
    struct pci_root_port ports[Q35_MAX_ROOT_PORTS];
    unsigned nr_ports;
    struct rtc *rtc;
    struct fw_cfg *fw_cfg;
    struct pflash *pflash;
    struct q35_persist *persist;
};

/* env->gm must be set (RAM layout for MCH, CMOS and e820). Errors are
 * logged by the failing step and returned. */
int q35_create(const struct dev_env *env, const struct q35_config *cfg, struct q35 **out);
void q35_destroy(struct q35 *q);

/* For VFIO/virtio-pci: plug functions with pci_bus_add(q35_pci_bus(q),
 * q35_root_port(q, i) or NULL, devfn, dev). */
struct pci_bus *q35_pci_bus(struct q35 *q);
struct pci_device *q35_root_port(struct q35 *q, unsigned i);   /* NULL past the last */
struct acpi_pm *q35_acpi_pm(struct q35 *q);
/* GSI of pin (1-4) of d, by the rule above; -EINVAL for pin 0/>4 or a
 * device that is not on bus 0 or directly behind a root port. */
int q35_intx_gsi(const struct pci_device *d, uint8_t pin);

#endif
