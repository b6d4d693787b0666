/* Option ROM images from files, for an emulated device's expansion ROM
 * (pci_device_set_rom in devices/pci/pci.h: the PCI layer decodes the ROM
 * BAR and serves the image). Passed-through functions have theirs from the
 * host through vfio/ (--rom, rombar=).
 *
 * A PCI option ROM starts with the signature 55h AAh (PCI Firmware 3.2
 * §5.1.1) and is at most 16 MiB (the ROM BAR's address bits); an image
 * failing either is refused naming the file. Nothing else is checked: the
 * PCI data structure, the code type (x86 legacy, EFI) and the checksum are
 * the firmware's business, which skips images it cannot use. */
#ifndef MINIVMM_PCI_ROM_H
#define MINIVMM_PCI_ROM_H
#include <stddef.h>
#include <stdint.h>

struct pci_rom_image {
    uint8_t *data;
    size_t len;
};

/* Read path into *out. who names the device and flag in messages
 * ("e1000e0 romfile="). 0, or -errno (logged with the file and the fix). */
int pci_rom_load(const char *who, const char *path, struct pci_rom_image *out);
void pci_rom_free(struct pci_rom_image *img);

#endif
