/* PCI Express root port (devices/pci/pci_root_port.h).
 *
 *   offset  register                        here
 *   0x00    1b36:000c, class 0x060400       read-only
 *   0x0E    header type 1                   read-only
 *   0x18-   bus numbers, windows, bridge    devices/pci/pci.c's type 1 masks
 *           control
 *   0x34    capability pointer -> 0x40
 *   0x40    PCI Express capability v2       root port, slot implemented
 *     +0x0C  Link Capabilities              speed/width from the config,
 *                                           DLL Link Active Reporting
 *                                           Capable, port number
 *     +0x12  Link Status                    negotiated speed/width; DLL Link
 *                                           Active while a device is behind
 *     +0x14  Slot Capabilities              physical slot number, no
 *                                           hot-plug, No Command Completed
 *     +0x1A  Slot Status                    Presence Detect State while a
 *                                           device is behind; events W1C
 *     +0x1C  Root Control / Status          stored; PME status W1C
 *   0x7C    Power Management v3             pci_pm_cap_add: D0 and D3hot, no
 *                                           PME, PMCSR state stored */
#include "devices/pci/pci_root_port.h"

#include <errno.h>

#include "vmm/log.h"

#define EXP PCI_ROOT_PORT_EXP_CAP
#define LNKCAP_DLLLARC      (1u << 20)
#define LNKSTA_SCC          (1u << 12)   /* slot clock configuration */
#define LNKSTA_DLLLA        (1u << 13)
#define SLTCAP_NCCS         (1u << 18)   /* no command completed support */
#define SLTSTA_PDS          (1u << 6)
#define EXP_FLAGS_SLOT      (1u << 8)

static int root_port_cfg_read(struct pci_device *d, uint32_t off, unsigned len, uint32_t *val)
{
    bool present = d->children != NULL;
    uint32_t v = pci_cfg_get(d, off, len);

    /* Overlay the dynamic bits on the byte lanes the access covers. */
    for (unsigned i = 0; i < len; i++) {
        uint32_t o = off + i;
        if (o == EXP + PCI_EXP_LNKSTA + 1 && present)
            v |= (LNKSTA_DLLLA >> 8) << (8 * i);
        if (o == EXP + PCI_EXP_SLTSTA && present)
            v |= SLTSTA_PDS << (8 * i);
    }
    *val = v;
    return 0;
}

static const struct pci_device_ops root_port_ops = { .cfg_read = root_port_cfg_read };

int pci_root_port_init(struct pci_root_port *rp, const struct pci_root_port_config *cfg)
{
    struct pci_device *d = &rp->dev;
    unsigned speed = cfg->speed ? (unsigned)cfg->speed : PCI_LINK_2_5GT;
    unsigned width = cfg->width ? cfg->width : 1;

    if (speed > PCI_LINK_16GT || (width != 1 && width != 2 && width != 4 && width != 8 &&
                                  width != 16) || cfg->slot_nr == 0 || cfg->slot_nr > 8191) {
        log_err("pci", "root port %u: link x%u at speed %u or slot %u is not valid",
                cfg->port_nr, width, speed, cfg->slot_nr);
        return -EINVAL;
    }
    rp->cfg = *cfg;
    d->ops = &root_port_ops;
    d->opaque = rp;
    pci_device_init(d, "pcie-root-port", PCI_ROOT_PORT_VENDOR, PCI_ROOT_PORT_DEVICE, 0x060400, 0,
                    PCI_HEADER_TYPE_BRIDGE, PCI_CFG_SIZE);
    d->is_pcie_port = true;

    pci_pcie_cap_add(d, EXP, PCI_EXP_TYPE_ROOT_PORT);
    pci_cfg_set(d, EXP + PCI_EXP_FLAGS, 2, pci_cfg_get(d, EXP + PCI_EXP_FLAGS, 2) | EXP_FLAGS_SLOT);
    pci_cfg_set(d, EXP + PCI_EXP_LNKCAP, 4, speed | width << 4 | LNKCAP_DLLLARC |
                (uint32_t)cfg->port_nr << 24);
    /* Link Control: also Link Disable (bit 4) on a downstream port; Retrain
     * (bit 5) always reads 0 -- the link is always trained. */
    pci_cfg_set_wmask(d, EXP + PCI_EXP_LNKCTL, 2,
                      0x0FCB | 0x0010);
    pci_cfg_set(d, EXP + PCI_EXP_LNKSTA, 2, speed | width << 4 | LNKSTA_SCC);
    pci_cfg_set(d, EXP + PCI_EXP_SLTCAP, 4, SLTCAP_NCCS | (uint32_t)cfg->slot_nr << 19);
    pci_cfg_set_wmask(d, EXP + PCI_EXP_SLTCTL, 2, 0x1FFF);
    /* attention button, power fault, MRL, presence detect, command
     * completed, DLL state changed: W1C */
    pci_cfg_set_w1cmask(d, EXP + PCI_EXP_SLTSTA, 2, 0x011F);
    pci_cfg_set_wmask(d, EXP + PCI_EXP_RTCTL, 2, 0x001F);
    pci_cfg_set_w1cmask(d, EXP + PCI_EXP_RTSTA, 4, 1u << 16);
    /* Link Capabilities 2: supported speeds vector (bits 7:1) */
    pci_cfg_set(d, EXP + PCI_EXP_LNKCAP2, 4, ((1u << speed) - 1) << 1);
    pci_cfg_set(d, EXP + PCI_EXP_LNKCTL2, 2, speed);
    pci_cfg_set_wmask(d, EXP + PCI_EXP_LNKCTL2, 2, 0x000F);

    /* PCI Power Management 1.2 §3.2: D0 and D3hot, no PME; the power
     * state is stored. */
    int r = pci_pm_cap_add(d, PCI_ROOT_PORT_PM_CAP);
    return r < 0 ? r : 0;
}
