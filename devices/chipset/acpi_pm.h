#ifndef MINIVMM_ACPI_PM_H
#define MINIVMM_ACPI_PM_H
#include <stdint.h>
#include "vmm/dev_env.h"
/* ACPI fixed hardware (ACPI 6.4 §4.8) as ICH9 lays it out at PMBASE:
 * PM1a_EVT (+0, 4 bytes), PM1a_CNT (+4, 2 bytes), PM_TMR (+8, 4 bytes,
 * 3.579545 MHz, 24-bit), GPE0 (+0x20, 16 bytes). Writing SLP_EN with the S5
 * sleep type to PM1a_CNT powers off (VM_STOP_POWEROFF). The q35 issue moves
 * this under the LPC bridge's PMBASE register; until then it sits at
 * ACPI_PM_BASE. */
#define ACPI_PM_BASE      0x600
#define ACPI_PM_SCI_GSI   9
#define ACPI_PM_S5_TYP    0   /* SLP_TYP value the DSDT's \_S5 names */
struct acpi_pm;
int acpi_pm_create(const struct dev_env *env, uint16_t base, unsigned sci_gsi, struct acpi_pm **out);
void acpi_pm_destroy(struct acpi_pm *pm);
/* Host-side events, thread-safe: press the fixed-feature power button
 * (PWRBTN_STS; an SCI if the guest enabled it), or set GPE0 status bit
 * 0-63 (an SCI if enabled). -EINVAL for a GPE past the block. */
void acpi_pm_power_button(struct acpi_pm *pm);
int acpi_pm_gpe_raise(struct acpi_pm *pm, unsigned gpe);
#endif
