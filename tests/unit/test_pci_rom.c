/* An emulated function's expansion ROM (devices/pci/pci.h pci_device_set_rom,
 * devices/pci/pci_rom.h): the ROM BAR's sizing, decode only with its enable
 * bit and memory decoding on, the image read through the MMIO bus where the
 * guest put it, moves, removal with the function, and the file loader's
 * refusals. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/pci/pci.h"
#include "devices/pci/pci_rom.h"
#include "fake_env.h"

static struct fake_env f;
static struct pci_bus pb;
static struct pci_device fn;
static uint8_t image[3000];

static void setup(void)
{
    fake_env_init(&f);
    cr_assert_eq(pci_bus_init(&pb, &f.pio, &f.mmio), 0);
    cr_assert_eq(pci_bus_attach_pio(&pb), 0);
    for (unsigned i = 0; i < sizeof(image); i++)
        image[i] = (uint8_t)(i * 7);
    image[0] = 0x55;
    image[1] = 0xAA;
    pci_device_init(&fn, "romdev", 0x8086, 0x10d3, 0x020000, 0, PCI_HEADER_TYPE_NORMAL,
                    PCI_CFG_SIZE);
    cr_assert_eq(pci_device_set_rom(&fn, image, sizeof(image)), 0);
    cr_assert_eq(pci_bus_add(&pb, NULL, PCI_DEVFN(3, 0), &fn), 0);
}

static void teardown(void)
{
    pci_bus_fini(&pb);
    fake_env_fini(&f);
}

TestSuite(pci_rom, .init = setup, .fini = teardown);

static void cfg_wr(unsigned reg, uint32_t v)
{
    pio_out(&f, 0xCF8, 0x80000000u | 3u << 11 | reg, 4);
    pio_out(&f, 0xCFC, v, 4);
}

static uint32_t cfg_rd(unsigned reg)
{
    pio_out(&f, 0xCF8, 0x80000000u | 3u << 11 | reg, 4);
    return pio_in(&f, 0xCFC, 4);
}

static uint32_t mmio_rd(uint64_t addr)
{
    uint32_t v = 0;
    bus_read(&f.mmio, addr, &v, 4);
    return v;
}

Test(pci_rom, sizing_and_decode)
{
    /* sizing: 3000 bytes -> 4 KiB, the enable bit writable too */
    cfg_wr(PCI_ROM_ADDRESS, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(PCI_ROM_ADDRESS), 0xFFFFF001u);
    cfg_wr(PCI_ROM_ADDRESS, 0xFEB00000);
    cr_assert_null(bus_find(&f.mmio, 0xFEB00000, 4), "not enabled");
    cfg_wr(PCI_ROM_ADDRESS, 0xFEB00001);
    cr_assert_null(bus_find(&f.mmio, 0xFEB00000, 4), "memory decoding off");
    cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY);
    cr_assert_not_null(bus_find(&f.mmio, 0xFEB00000, 4));
    cr_assert_eq(mmio_rd(0xFEB00000) & 0xFFFF, 0xAA55, "the signature");
    uint32_t want;
    memcpy(&want, image + 100, 4);
    cr_assert_eq(mmio_rd(0xFEB00000 + 100), want);
    cr_assert_eq(mmio_rd(0xFEB00000 + 3000), 0xFFFFFFFFu, "past the image");
    uint32_t w = 0;
    cr_assert_eq(bus_write(&f.mmio, 0xFEB00000, &w, 4), 0, "writes are dropped");
    cr_assert_eq(mmio_rd(0xFEB00000) & 0xFFFF, 0xAA55);
    /* moved */
    cfg_wr(PCI_ROM_ADDRESS, 0xFEC10001);
    cr_assert_null(bus_find(&f.mmio, 0xFEB00000, 4));
    cr_assert_not_null(bus_find(&f.mmio, 0xFEC10000, 4));
    /* disabled again */
    cfg_wr(PCI_ROM_ADDRESS, 0xFEC10000);
    cr_assert_null(bus_find(&f.mmio, 0xFEC10000, 4));
    /* address 0 never decodes */
    cfg_wr(PCI_ROM_ADDRESS, 0x00000001);
    cr_assert_eq(f.mmio.nr, 0);
}

Test(pci_rom, removal_takes_it_off)
{
    cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY);
    cfg_wr(PCI_ROM_ADDRESS, 0xFEB00001);
    cr_assert_not_null(bus_find(&f.mmio, 0xFEB00000, 4));
    pci_bus_remove(&pb, &fn);
    cr_assert_null(bus_find(&f.mmio, 0xFEB00000, 4));
    cr_assert_eq(f.mmio.nr, 0);
}

Test(pci_rom, refusals)
{
    struct pci_device br;
    pci_device_init(&br, "bridge", 0x1b36, 0xc, 0x060400, 0, PCI_HEADER_TYPE_BRIDGE, PCI_CFG_SIZE);
    cr_assert_eq(pci_device_set_rom(&br, image, sizeof(image)), -EINVAL, "type 0 only");
    cr_assert_eq(pci_device_set_rom(&fn, image, 0), -EINVAL);
    cr_assert_eq(pci_device_set_rom(&fn, NULL, 10), -EINVAL);
    cr_assert_eq(pci_device_set_rom(&fn, image, (16u << 20) + 1), -EINVAL);
}

static char *tmp_file(const void *data, size_t len)
{
    static char path[64];
    strcpy(path, "/tmp/minivmm-rom-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

Test(pci_rom, loader)
{
    struct pci_rom_image img;
    char *p = tmp_file(image, sizeof(image));
    cr_assert_eq(pci_rom_load("t romfile=", p, &img), 0);
    cr_assert_eq(img.len, sizeof(image));
    cr_assert_eq(memcmp(img.data, image, sizeof(image)), 0);
    pci_rom_free(&img);
    cr_assert_null(img.data);
    unlink(p);

    uint8_t bad[16] = { 0x4d, 0x5a };
    p = tmp_file(bad, sizeof(bad));
    cr_assert_eq(pci_rom_load("t romfile=", p, &img), -EINVAL, "no 55 AA");
    cr_assert_null(img.data);
    unlink(p);
    p = tmp_file(bad, 1);
    cr_assert_eq(pci_rom_load("t romfile=", p, &img), -EINVAL, "too short");
    unlink(p);
    cr_assert_eq(pci_rom_load("t romfile=", "/nonexistent/x.rom", &img), -ENOENT);
    cr_assert_eq(pci_rom_load("t romfile=", "/tmp", &img), -EINVAL, "a directory");
}
