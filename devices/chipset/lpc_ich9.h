/* ICH9 LPC bridge at 00:1f.0, 8086:2918 (Intel I/O Controller Hub 9
 * datasheet 316972 §13.1): the ACPI I/O block at PMBASE (devices/acpi_pm),
 * the PIRQ routing registers and the root complex base. See lpc_ich9.c. */
#ifndef MINIVMM_LPC_ICH9_H
#define MINIVMM_LPC_ICH9_H
#include <stdbool.h>
#include <stdint.h>

#include "devices/chipset/acpi_pm.h"
#include "devices/pci/pci.h"
#include "vmm/bus.h"
#include "vmm/dev_env.h"

#define LPC_ICH9_VENDOR     0x8086
#define LPC_ICH9_DEVICE     0x2918
#define LPC_ICH9_DEVFN      PCI_DEVFN(0x1F, 0)

#define ICH9_PMBASE         0x40
#define ICH9_PMBASE_MASK    0xFF80u
#define ICH9_ACPI_CNTL      0x44
#define ICH9_ACPI_CNTL_ACPI_EN 0x80
#define ICH9_PIRQA_ROUT     0x60   /* PIRQ A-D: 0x60-0x63 */
#define ICH9_PIRQE_ROUT     0x68   /* PIRQ E-H: 0x68-0x6B */
#define ICH9_PIRQ_DISABLED  0x80   /* IRQEN: not routed to the 8259 */
#define ICH9_GEN_PMCON_1    0xA0
#define ICH9_RCBA           0xF0
#define ICH9_PMIO_SIZE      0x80   /* the ACPI I/O block PMBASE decodes */
#define ICH9_NR_PIRQ        8
/* In APIC mode PIRQ A-H are IOAPIC pins 16-23 (ICH9 datasheet §5.9.2). */
#define ICH9_PIRQ_GSI_BASE  16

struct lpc_ich9_config {
    unsigned sci_gsi;           /* ACPI_PM_SCI_GSI */
    /* Program PMBASE = ACPI_PM_BASE and ACPI_EN at creation (a direct
     * kernel boot has no firmware to do it). Otherwise the PM block
     * decodes nowhere until the guest enables it, as on hardware. */
    bool pm_preset;
};

#define ICH9_APM_PORT 0xB2     /* APM_CNT; APM_STS at 0xB3 */

struct lpc_ich9 {
    struct pci_device dev;
    struct pci_bus *bus;
    struct dev_env env;         /* the VM's */
    struct bus pm_bus;          /* private: acpi_pm lives at 0 here */
    struct dev_env pm_env;
    struct acpi_pm *pm;
    bool pm_on;                 /* forwarding range registered on env.pio */
    uint16_t pm_base;
    uint32_t smi_en;            /* PMBASE + 0x30, stored */
    bool apm_on;                /* 0xB2-0xB3 registered on env.pio */
    uint8_t apm[2];             /* APM_CNT, APM_STS */
    unsigned apm_smi_requests;  /* APM_CNT writes: SMIs the guest asked for */
};

/* Create the function, its acpi_pm, and plug it into bus at 1f.0. */
int lpc_ich9_create(const struct dev_env *env, struct pci_bus *bus,
                    const struct lpc_ich9_config *cfg, struct lpc_ich9 **out);
void lpc_ich9_destroy(struct lpc_ich9 *l);
/* The PM block, for host events (power button). */
struct acpi_pm *lpc_ich9_acpi_pm(struct lpc_ich9 *l);
/* Where the PM block decodes now: true with *base when enabled. */
bool lpc_ich9_pm_base(struct lpc_ich9 *l, uint16_t *base);

#endif
