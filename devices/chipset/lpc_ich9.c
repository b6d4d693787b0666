/* ICH9 LPC bridge, 00:1f.0 8086:2918 (devices/chipset/lpc_ich9.h).
 *
 * Config registers (ICH9 datasheet 316972 §13.1; names as OvmfPkg's
 * Q35MchIch9.h):
 *
 *   off   size  register       here
 *   0x00  4     VID/DID        8086:2918
 *   0x08  4     RID/class      rev 2 (A2, as QEMU), class 0x060100 (ISA
 *                              bridge)
 *   0x0E  1     header type    0x80: multi-function, as on silicon (the
 *                              other functions are absent: all ones)
 *   0x2C  4     SVID/SID       1af4:1100, as QEMU
 *   0x40  4     PMBASE         bits 15:7 RW, bit 0 reads 1 (I/O space)
 *   0x44  1     ACPI_CNTL      bit 7 ACPI_EN: the 128-byte ACPI I/O block
 *                              decodes at PMBASE while set; bits 2:0
 *                              SCI_IRQ_SEL stored (the SCI stays on the
 *                              GSI the FADT names; a change is logged)
 *   0x60  4     PIRQA-D_ROUT   bit 7 IRQEN (1 = not routed to the 8259),
 *   0x68  4     PIRQE-H_ROUT   bits 3:0 ISA IRQ; reset 0x80, stored. In APIC
 *                              mode (what every OS we boot uses) PIRQ A-H
 *                              are IOAPIC pins 16-23 whatever these say,
 *                              which is what the DSDT's _PRT describes.
 *   0xA0  2     GEN_PMCON_1    stored
 *   0xA2  1     GEN_PMCON_2    stored
 *   0xA4  2     GEN_PMCON_3    stored
 *   0xF0  4     RCBA           bit 0 enable, bits 31:14 base; stored. The
 *                              root complex register block itself is not
 *                              decoded (OVMF only programs the base).
 *
 * ACPI I/O block at PMBASE (§13.8.3), 128 bytes:
 *   +0x00-0x2F  PM1 event/control, PM timer, GPE0: devices/chipset/acpi_pm.c. The
 *               acpi_pm instance sits at address 0 of a private bus and
 *               this device forwards the guest's accesses to it, so moving
 *               PMBASE is one unregister/register here and acpi_pm keeps
 *               its state.
 *   +0x30       SMI_EN (4 bytes): stored, no SMIs (no SMM)
 *   +0x34       SMI_STS: reads 0
 *   +0x38-0x7F  reads 0, writes ignored (GPIO/TCO blocks not modeled).
 *
 * APM ports (§13.7.1, fixed I/O): 0xB2 APM_CNT, 0xB3 APM_STS; both store
 * what was written. A write to APM_CNT raises an SMI on silicon; minivmm
 * has no SMM, so there it only says, once, what it means: the firmware
 * expects SMM (an OVMF built with SMM_REQUIRE, e.g. Debian's
 * OVMF_CODE_4M.secboot.fd, waits for that SMI forever). Firmware built
 * without SMM (OVMF_CODE_4M.fd) never writes it, and the FADT's SMI_CMD is
 * 0, so an OS does not either. */
#include "devices/chipset/lpc_ich9.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

#define PM_ACPI_PM_LEN  0x30
#define PM_SMI_EN       0x30
#define ICH9_GEN_PMCON_2 0xA2
#define ICH9_GEN_PMCON_3 0xA4

static int lpc_pm_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct lpc_ich9 *l = opaque;
    uint8_t *d = data;

    if (offset + len <= PM_ACPI_PM_LEN)
        return bus_read(&l->pm_bus, offset, data, len) == 0 ? 0 : -EIO;
    for (unsigned i = 0; i < len; i++) {
        uint64_t o = offset + i;
        if (o < PM_ACPI_PM_LEN)
            bus_read(&l->pm_bus, o, &d[i], 1);
        else if (o >= PM_SMI_EN && o < PM_SMI_EN + 4)
            d[i] = (uint8_t)(__atomic_load_n(&l->smi_en, __ATOMIC_RELAXED) >> (8 * (o - PM_SMI_EN)));
        else
            d[i] = 0;
    }
    return 0;
}

static int lpc_pm_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct lpc_ich9 *l = opaque;
    const uint8_t *d = data;

    if (offset + len <= PM_ACPI_PM_LEN)
        return bus_write(&l->pm_bus, offset, data, len) == 0 ? 0 : -EIO;
    for (unsigned i = 0; i < len; i++) {
        uint64_t o = offset + i;
        if (o < PM_ACPI_PM_LEN) {
            bus_write(&l->pm_bus, o, &d[i], 1);
        } else if (o >= PM_SMI_EN && o < PM_SMI_EN + 4) {
            unsigned sh = 8 * (unsigned)(o - PM_SMI_EN);
            uint32_t v = __atomic_load_n(&l->smi_en, __ATOMIC_RELAXED);
            v = (v & ~(0xFFu << sh)) | (uint32_t)d[i] << sh;
            __atomic_store_n(&l->smi_en, v, __ATOMIC_RELAXED);
        }
    }
    return 0;
}

static const struct bus_ops lpc_pm_ops = { .read = lpc_pm_read, .write = lpc_pm_write };

static int lpc_apm_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct lpc_ich9 *l = opaque;
    uint8_t *d = data;

    for (unsigned i = 0; i < len; i++)
        d[i] = offset + i < 2 ? __atomic_load_n(&l->apm[offset + i], __ATOMIC_RELAXED) : 0xFF;
    return 0;
}

static int lpc_apm_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct lpc_ich9 *l = opaque;
    const uint8_t *d = data;

    for (unsigned i = 0; i < len && offset + i < 2; i++) {
        __atomic_store_n(&l->apm[offset + i], d[i], __ATOMIC_RELAXED);
        if (offset + i == 0) {
            __atomic_add_fetch(&l->apm_smi_requests, 1, __ATOMIC_RELAXED);
            log_guest_once("lpc-ich9", "the guest wrote 0x%02x to APM_CNT (port 0xb2) to raise an "
                           "SMI, but minivmm has no SMM: firmware built to require SMM (Debian's "
                           "OVMF_CODE_4M.secboot.fd) will not boot; use OVMF_CODE_4M.fd (Secure "
                           "Boot works there too, with a copy of OVMF_VARS_4M.ms.fd as --vars)",
                           d[i]);
        }
    }
    return 0;
}

static const struct bus_ops lpc_apm_ops = { .read = lpc_apm_read, .write = lpc_apm_write };

/* Make the PM block decode where PMBASE/ACPI_CNTL say. */
static void lpc_update_pm(struct lpc_ich9 *l)
{
    uint16_t base = (uint16_t)(pci_cfg_get(&l->dev, ICH9_PMBASE, 4) & ICH9_PMBASE_MASK);
    bool on = (l->dev.config[ICH9_ACPI_CNTL] & ICH9_ACPI_CNTL_ACPI_EN) && base != 0;

    if (on == l->pm_on && (!on || base == l->pm_base))
        return;
    if (l->pm_on) {
        bus_unregister(l->env.pio, l->pm_base);
        l->pm_on = false;
    }
    if (!on)
        return;
    if (bus_register(l->env.pio, base, ICH9_PMIO_SIZE, "ich9-pm", &lpc_pm_ops, l)) {
        log_guest_once("lpc-ich9", "PMBASE 0x%x overlaps another device: ACPI I/O left disabled",
                       base);
        return;
    }
    l->pm_on = true;
    l->pm_base = base;
}

static void lpc_cfg_written(struct pci_device *d, uint32_t off, unsigned len, uint32_t old)
{
    struct lpc_ich9 *l = d->opaque;

    if (off < ICH9_ACPI_CNTL + 1 && off + len > ICH9_PMBASE)
        lpc_update_pm(l);
    if (off <= ICH9_ACPI_CNTL && off + len > ICH9_ACPI_CNTL && (d->config[ICH9_ACPI_CNTL] & 0x7))
        log_guest_once("lpc-ich9", "SCI moved with ACPI_CNTL 0x%02x: the SCI stays on the "
                       "FADT's GSI", d->config[ICH9_ACPI_CNTL]);
}

static const struct pci_device_ops lpc_ops = { .cfg_written = lpc_cfg_written };

int lpc_ich9_create(const struct dev_env *env, struct pci_bus *bus,
                    const struct lpc_ich9_config *cfg, struct lpc_ich9 **out)
{
    struct lpc_ich9 *l = calloc(1, sizeof(*l));
    struct pci_device *d;
    int err;

    if (!l)
        return -ENOMEM;
    d = &l->dev;
    l->env = *env;
    err = bus_init(&l->pm_bus, "ich9-pm-private");
    if (err) {
        free(l);
        return err;
    }
    l->pm_env = *env;
    l->pm_env.pio = &l->pm_bus;
    err = acpi_pm_create(&l->pm_env, 0, cfg->sci_gsi, &l->pm);
    if (err)
        goto fail;

    d->ops = &lpc_ops;
    d->opaque = l;
    pci_device_init(d, "ich9-lpc", LPC_ICH9_VENDOR, LPC_ICH9_DEVICE, 0x060100, 0x02,
                    PCI_HEADER_TYPE_NORMAL | PCI_HEADER_TYPE_MULTI, PCI_CFG_LEGACY_SIZE);
    pci_cfg_set(d, PCI_SUBSYSTEM_VENDOR_ID, 2, 0x1AF4);
    pci_cfg_set(d, PCI_SUBSYSTEM_ID, 2, 0x1100);
    pci_cfg_set(d, ICH9_PMBASE, 4, 0x1);
    pci_cfg_set_wmask(d, ICH9_PMBASE, 4, ICH9_PMBASE_MASK);
    pci_cfg_set_wmask(d, ICH9_ACPI_CNTL, 1, ICH9_ACPI_CNTL_ACPI_EN | 0x7);
    for (unsigned i = 0; i < 4; i++) {
        pci_cfg_set(d, ICH9_PIRQA_ROUT + i, 1, ICH9_PIRQ_DISABLED);
        pci_cfg_set(d, ICH9_PIRQE_ROUT + i, 1, ICH9_PIRQ_DISABLED);
        pci_cfg_set_wmask(d, ICH9_PIRQA_ROUT + i, 1, 0x8F);
        pci_cfg_set_wmask(d, ICH9_PIRQE_ROUT + i, 1, 0x8F);
    }
    pci_cfg_set_wmask(d, ICH9_GEN_PMCON_1, 2, 0xFFFF);
    pci_cfg_set_wmask(d, ICH9_GEN_PMCON_2, 1, 0xFF);
    pci_cfg_set_wmask(d, ICH9_GEN_PMCON_3, 2, 0xFFFF);
    pci_cfg_set_wmask(d, ICH9_RCBA, 4, 0xFFFFC001u);
    if (cfg->pm_preset) {
        pci_cfg_set(d, ICH9_PMBASE, 4, ACPI_PM_BASE | 0x1);
        pci_cfg_set(d, ICH9_ACPI_CNTL, 1, ICH9_ACPI_CNTL_ACPI_EN);
        lpc_update_pm(l);
        if (!l->pm_on) {
            err = -EEXIST;
            goto fail;
        }
    }
    err = bus_register(env->pio, ICH9_APM_PORT, 2, "ich9-apm", &lpc_apm_ops, l);
    if (err) {
        log_err("lpc-ich9", "APM ports 0x%x-0x%x: taken by another device (%s)", ICH9_APM_PORT,
                ICH9_APM_PORT + 1, strerror(-err));
        goto fail;
    }
    l->apm_on = true;
    err = pci_bus_add(bus, NULL, LPC_ICH9_DEVFN, d);
    if (err)
        goto fail;
    l->bus = bus;
    *out = l;
    return 0;
fail:
    lpc_ich9_destroy(l);
    return err;
}

void lpc_ich9_destroy(struct lpc_ich9 *l)
{
    if (!l)
        return;
    if (l->bus)
        pci_bus_remove(l->bus, &l->dev);
    if (l->pm_on)
        bus_unregister(l->env.pio, l->pm_base);
    if (l->apm_on)
        bus_unregister(l->env.pio, ICH9_APM_PORT);
    acpi_pm_destroy(l->pm);
    bus_fini(&l->pm_bus);
    free(l);
}

struct acpi_pm *lpc_ich9_acpi_pm(struct lpc_ich9 *l)
{
    return l->pm;
}

bool lpc_ich9_pm_base(struct lpc_ich9 *l, uint16_t *base)
{
    if (l->pm_on)
        *base = l->pm_base;
    return l->pm_on;
}
