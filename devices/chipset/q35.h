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
 * The machine's layout is q35's: where each PCI device of the VM sits (the
 * slot map below), the fw_cfg "bootorder" built from those places, the
 * check that the 64-bit PCI window fits the CPU's physical address space,
 * and the flash's KVM memory slots. vmm/vm.c hands over the list of PCI
 * devices (devices/pci/pcidev.h) and q35 places and plugs them.
 *
 * Slot map of bus 0 (QEMU's q35 uses the same fixed places for the
 * built-in functions, so guests and their drivers find them there):
 *   00.0        MCH host bridge (8086:29c0)
 *   01.0        a display (PCIDEV_DISPLAY), as QEMU's q35 VGA
 *   02.0-09.0   PCIe root ports, one per PCIDEV_ROOT_PORT device, in order
 *               (passed-through slots), then cfg.nr_root_ports spare ones
 *   0a.0-11.0   storage on the root bus (virtio-blk), in order
 *   12.0-19.0   NICs on the root bus (virtio-net), in order
 *   1a.0-1d.0   anything else on the root bus
 *   1f.0        ICH9 LPC (multi-function); 1f.2 is where q35 guests expect
 *               the ICH9 AHCI (Q35_AHCI_DEVFN, a PCIDEV_FIXED device), 1f.3
 *               the SMBus controller
 * A device that finds its range full, a fixed place taken, or more
 * root-port devices than ports fails q35_create naming it.
 *
 * Start-up order (undone in reverse on failure and by q35_destroy): the
 * devices placed and the boot order built; PCI bus and its ports (adopting
 * 0xCF9 from devices/chipset/sysctl, which must exist already: create
 * sysctl first, destroy it after), MCH, LPC (+ acpi_pm), root ports, RTC,
 * fw_cfg (+ SMBIOS), pflash and its KVM slots; direct boot: SMBIOS in RAM;
 * last, every PCI device plugged (q35_destroy unplugs them first).
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
#include "devices/pci/pcidev.h"
#include "devices/chipset/fw_cfg.h"
#include "devices/chipset/lpc_ich9.h"
#include "devices/pci/pci.h"
#include "devices/pci/pci_root_port.h"
#include "devices/chipset/pflash.h"
#include "devices/chipset/q35_mch.h"
#include "devices/legacy/rtc.h"
#include "vmm/dev_env.h"

#define Q35_MAX_ROOT_PORTS   8

#define Q35_DISPLAY_SLOT     0x01
#define Q35_ROOT_PORT_SLOT0  0x02   /* root port i sits at 00:(2 + i).0 */
#define Q35_STORAGE_SLOT0    0x0A
#define Q35_NET_SLOT0        0x12
#define Q35_OTHER_SLOT0      0x1A
#define Q35_OTHER_SLOT_END   0x1E   /* one past the last */
#define Q35_LPC_DEVFN        PCI_DEVFN(0x1F, 0)
#define Q35_AHCI_DEVFN       PCI_DEVFN(0x1F, 2)
#define Q35_SMBUS_DEVFN      PCI_DEVFN(0x1F, 3)

struct memslots;

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
    /* The VM's PCI devices: placed, plugged last, unplugged first. NULL:
     * none. Each PCIDEV_ROOT_PORT device gets a root port reporting the
     * link its ops->link gives (clamped to 2.5-16 GT/s, x1-x16). */
    struct pcidev_list *devs;
    /* Spare root ports after the devices' own (tests; hot-plug later). */
    unsigned nr_root_ports;
    /* optional: the link spare root port i reports; 0: the defaults */
    struct { unsigned speed, width; } port_link[Q35_MAX_ROOT_PORTS];
    /* KVM memory slots for the flash (firmware only): CODE is a read-only
     * slot (the guest executes from it), VARS one too while the flash is
     * in read-array mode. NULL: all flash accesses exit (tests). */
    struct memslots *slots;
    /* The CPU's physical address width (CPUID 0x80000008 EAX[7:0]): the
     * 64-bit PCI window (acpi->pci_mmio64_*) must end below 2^bits, or OVMF
     * drops its aperture. 0: not checked. */
    unsigned phys_addr_bits;
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
    struct memslots *slots;
    int code_slot, vars_slot;       /* KVM slots of the flash; -1 none */
    struct pcidev_list *devs;
    unsigned nr_dev_ports;          /* root ports 0.. given to devs */
    char bootorder[PCIDEV_MAX * 64];
};

/* env->gm must be set (RAM layout for MCH, CMOS and e820). Errors are
 * logged by the failing step and returned. */
int q35_create(const struct dev_env *env, const struct q35_config *cfg, struct q35 **out);
void q35_destroy(struct q35 *q);

/* For tests and spare ports: plug functions with pci_bus_add(q35_pci_bus(q),
 * q35_root_port(q, i) or NULL, devfn, dev). */
struct pci_bus *q35_pci_bus(struct q35 *q);
struct pci_device *q35_root_port(struct q35 *q, unsigned i);   /* NULL past the last */
struct acpi_pm *q35_acpi_pm(struct q35 *q);
/* GSI of pin (1-4) of d, by the rule above; -EINVAL for pin 0/>4 or a
 * device that is not on bus 0 or directly behind a root port. */
int q35_intx_gsi(const struct pci_device *d, uint8_t pin);
/* Where the 64-bit PCI window of size (a power of two) starts: the first
 * multiple of its size above RAM, which is where OVMF puts its aperture
 * when X-PciMmio64Mb gives it that size (PlatformInitLib MemDetect.c
 * aligns the aperture to its size). */
uint64_t q35_pci_mmio64_base(const struct gm *gm, uint64_t size);
/* The fw_cfg "bootorder" q35_create built (NULL: none), for tests. */
const char *q35_bootorder(const struct q35 *q);

#endif
