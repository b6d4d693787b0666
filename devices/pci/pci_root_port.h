/* A PCI Express root port (PCIe 5.0 §7.5.3, port type 4): the type 1 header
 * of devices/pci/pci.h plus the PCI Express capability describing a downstream
 * link and a slot, so a device plugged behind it (a passed-through GPU wants
 * a real link) is found by firmware and OS enumeration on the secondary bus.
 *
 * IDs: 1b36:000c, Red Hat's "PCIe root port" that QEMU's q35 uses. It is the
 * ID OVMF, Windows and Linux meet under QEMU, so their quirk tables treat our
 * port the same way (the goal: reach the same places as under QEMU); and it
 * is an ID registered for a virtual device, not a claim to be Intel silicon
 * with that silicon's errata. Class 0x060400 (PCI-to-PCI bridge) is what
 * binds the generic bridge drivers (Windows pci.sys, Linux pcieport).
 *
 * No hot-plug: the slot reports presence (Presence Detect State) and the
 * link reports Data Link Layer Link Active when a device sits behind the
 * port; the port raises no interrupts (pin 0, no MSI), so nothing needs a
 * _PRT entry for it. */
#ifndef MINIVMM_PCI_ROOT_PORT_H
#define MINIVMM_PCI_ROOT_PORT_H
#include <stdint.h>

#include "devices/pci/pci.h"

#define PCI_ROOT_PORT_VENDOR 0x1B36
#define PCI_ROOT_PORT_DEVICE 0x000C
#define PCI_ROOT_PORT_EXP_CAP 0x40
#define PCI_ROOT_PORT_PM_CAP  0x7C

/* Link speeds as the Link Capabilities register encodes them (§7.5.3.6). */
enum pci_link_speed { PCI_LINK_2_5GT = 1, PCI_LINK_5GT, PCI_LINK_8GT, PCI_LINK_16GT };

struct pci_root_port_config {
    uint8_t port_nr;        /* Link Capabilities port number, 0-255 */
    uint16_t slot_nr;       /* physical slot number, 1-8191 */
    enum pci_link_speed speed;  /* default (0): 2.5 GT/s */
    unsigned width;         /* lanes: 1, 2, 4, 8 or 16; default (0): 1 */
};

struct pci_root_port {
    struct pci_device dev;
    struct pci_root_port_config cfg;
};

/* Fill rp (then pci_bus_add(bus, NULL, devfn, &rp->dev)). -EINVAL for a
 * width or speed the registers cannot say. */
int pci_root_port_init(struct pci_root_port *rp, const struct pci_root_port_config *cfg);

#endif
