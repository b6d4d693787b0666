/* Option ROM images from files (devices/pci/pci_rom.h). */
#include "devices/pci/pci_rom.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/log.h"

#define PCI_ROM_FILE_MAX (16u << 20)

int pci_rom_load(const char *who, const char *path, struct pci_rom_image *out)
{
    struct stat st;
    int fd, err;

    *out = (struct pci_rom_image){ 0 };
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = -errno;
        log_err("pci", "%s %s: %s; give a readable option ROM image", who, path, strerror(errno));
        return err;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 2 ||
        (uint64_t)st.st_size > PCI_ROM_FILE_MAX) {
        log_err("pci", "%s %s: not an option ROM image (a regular file of 2 bytes to 16 MiB)",
                who, path);
        close(fd);
        return -EINVAL;
    }
    out->len = (size_t)st.st_size;
    out->data = malloc(out->len);
    if (!out->data) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < out->len) {
        ssize_t n = read(fd, out->data + got, out->len - got);
        if (n <= 0) {
            err = n < 0 ? -errno : -EIO;
            log_err("pci", "%s %s: cannot read it: %s", who, path, strerror(-err));
            close(fd);
            pci_rom_free(out);
            return err;
        }
        got += (size_t)n;
    }
    close(fd);
    if (out->data[0] != 0x55 || out->data[1] != 0xAA) {
        log_err("pci", "%s %s: no option ROM signature (55 AA) at its start; give a PCI option "
                "ROM image (e.g. from the ipxe-qemu package, /usr/lib/ipxe/qemu/efi-e1000e.rom)",
                who, path);
        pci_rom_free(out);
        return -EINVAL;
    }
    return 0;
}

void pci_rom_free(struct pci_rom_image *img)
{
    free(img->data);
    *img = (struct pci_rom_image){ 0 };
}
