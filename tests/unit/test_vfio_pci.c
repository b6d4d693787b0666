/* vfio/vfio_pci.c end to end without VFIO: a plain file laid out like a
 * VFIO device (config region at 0, BAR0 region at 64 KiB) stands in for the
 * device fd, so pread/pwrite and mmap work on it. The function is plugged
 * into a real devices/pci/pci.c bus; the guest's config cycles go through
 * pci_config_read/write and its BAR accesses through the MMIO bus, and the
 * test checks what lands in the "device" (the file), in the MSI-X
 * emulation, on the bus and in KVM memory slots (vm_fd -1: recorded). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfio/vfio_pci.h"
#include "vmm/bus.h"
#include "vmm/gm.h"
#include "vmm/irq.h"
#include "vmm/memslot.h"

#define CFG_OFF  0x0
#define BAR0_OFF 0x10000
#define BAR0_SZ  0x10000
#define TABLE    0x8000     /* MSI-X table in BAR0, 4 vectors */
#define PBA      0x8800     /* PBA in the same page */
#define MSIX_CAP 0x40
#define PCIE_CAP 0x50
#define DEVFN    PCI_DEVFN(3, 0)
/* Registers devices/pci/pci.h does not name (PCI 3.0 §6.1, §6.8.2) */
#define BAR1_REG        0x14
#define BAR_MEM_TYPE_64 0x4
#define CLASS_REVISION  0x08
#define MSIX_FLAGS      2
#define MSIX_TABLE      4
#define MSIX_PBA        8

static struct bus pio, mmio;
static struct irq_table irq;
static struct memslots slots;
static struct pci_bus pb;
static struct vfio_pci *v;
static struct vfio_pci_fn *fn;
static int fd = -1;
static char path[] = "/tmp/minivmm-test-vfio-pci-XXXXXX";
static char rom_path[] = "/tmp/minivmm-test-vfio-rom-XXXXXX";

static void put16(uint8_t *p, uint16_t x) { p[0] = (uint8_t)x; p[1] = (uint8_t)(x >> 8); }
static void put32(uint8_t *p, uint32_t x) { put16(p, (uint16_t)x); put16(p + 2, (uint16_t)(x >> 16)); }

static void make_device_file(void)
{
    fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    static uint8_t img[BAR0_OFF + BAR0_SZ];
    memset(img, 0, sizeof(img));
    uint8_t *c = img + CFG_OFF;
    put16(c + PCI_VENDOR_ID, 0x1b36);
    put16(c + PCI_DEVICE_ID, 0x0010);
    c[PCI_CLASS_PROG] = 0x02; c[PCI_CLASS_DEVICE] = 0x08; c[PCI_CLASS_DEVICE + 1] = 0x01;
    put16(c + PCI_STATUS, PCI_STATUS_CAP_LIST);
    put32(c + PCI_BAR0, BAR_MEM_TYPE_64);
    c[PCI_INTERRUPT_PIN] = 1;
    c[PCI_CAPABILITY_LIST] = MSIX_CAP;
    c[MSIX_CAP] = PCI_CAP_ID_MSIX; c[MSIX_CAP + 1] = PCIE_CAP;
    put16(c + MSIX_CAP + MSIX_FLAGS, 3);
    put32(c + MSIX_CAP + MSIX_TABLE, TABLE);
    put32(c + MSIX_CAP + MSIX_PBA, PBA);
    c[PCIE_CAP] = PCI_CAP_ID_EXP;
    put16(c + PCIE_CAP + PCI_EXP_FLAGS, 2 | PCI_EXP_TYPE_ENDPOINT << 4);
    put16(c + PCIE_CAP + PCI_EXP_LNKSTA, 0x0043);     /* 8 GT/s x4 */
    for (unsigned i = 0; i < BAR0_SZ; i++)
        img[BAR0_OFF + i] = (uint8_t)(i * 7 + 1);     /* the device's registers */
    cr_assert_eq(write(fd, img, sizeof(img)), (ssize_t)sizeof(img));
}

static void setup_with(const struct vfio_dev_arg *arg)
{
    make_device_file();
    cr_assert_eq(bus_init(&pio, "pio"), 0);
    cr_assert_eq(bus_init(&mmio, "mmio"), 0);
    cr_assert_eq(irq_table_init(&irq, -1, 0), 0);
    cr_assert_eq(memslots_init(&slots, -1), 0);
    cr_assert_eq(pci_bus_init(&pb, &pio, &mmio), 0);
    struct vfio_vm vm = { .vm_fd = -1, .pio = &pio, .mmio = &mmio, .irq = &irq, .slots = &slots };
    struct vfio_pci_opts o = { .behind_root_port = true };
    v = vfio_pci_new(&vm, &o);
    cr_assert(v);
    struct vfio_device d = { .fd = fd, .flags = VFIO_DEVICE_FLAGS_PCI };
    strcpy(d.bdf, "0000:00:04.0");
    d.regions[VFIO_PCI_CONFIG_REGION_INDEX] = (struct vfio_region){
        .flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE,
        .size = 4096, .offset = CFG_OFF };
    d.regions[0] = (struct vfio_region){
        .flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
        .size = BAR0_SZ, .offset = BAR0_OFF };
    d.irq_count[VFIO_PCI_INTX_IRQ_INDEX] = 1;
    d.irq_count[VFIO_PCI_MSIX_IRQ_INDEX] = 4;
    fn = vfio_pci_add_opened(v, &d, arg);
    cr_assert(fn, "function built");
    cr_assert_eq(vfio_pci_plug(v, 0, &pb, NULL, 3, NULL, NULL), 0);
}

static void setup(void) { setup_with(NULL); }

static void teardown(void)
{
    vfio_pci_destroy(v);            /* closes fd */
    pci_bus_fini(&pb);
    memslots_fini(&slots);
    irq_table_fini(&irq);
    bus_fini(&mmio);
    bus_fini(&pio);
    unlink(path);
    unlink(rom_path);
}

TestSuite(vfio_pci, .init = setup, .fini = teardown);

static uint32_t cfg_rd(uint32_t off, unsigned len)
{
    uint32_t val;
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, off, len, &val), 0);
    return val;
}

static void cfg_wr(uint32_t off, unsigned len, uint32_t val)
{
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, off, len, val), 0);
}

static unsigned slots_used(void)
{
    unsigned n = 0;
    for (unsigned i = 0; i < MEMSLOTS_MAX / 64; i++)
        n += (unsigned)__builtin_popcountll(slots.used[i]);
    return n;
}

static uint8_t file_byte(uint64_t off)
{
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
    return b;
}

static void place_bar0(uint64_t addr)
{
    cfg_wr(PCI_BAR0, 4, (uint32_t)addr);
    cfg_wr(BAR1_REG, 4, (uint32_t)(addr >> 32));
}

Test(vfio_pci, config_through_the_pci_bus)
{
    cr_assert_eq(cfg_rd(PCI_VENDOR_ID, 4), 0x00101b36);
    cr_assert_eq(cfg_rd(CLASS_REVISION, 4) >> 8, 0x010802);
    cfg_wr(PCI_BAR0, 4, 0xffffffff);
    cfg_wr(BAR1_REG, 4, 0xffffffff);
    cr_assert_eq(cfg_rd(PCI_BAR0, 4), 0xffff0004, "64 KiB, 64-bit");
    cr_assert_eq(cfg_rd(BAR1_REG, 4), 0xffffffff);
    cr_assert_eq(cfg_rd(PCI_CAPABILITY_LIST, 1), MSIX_CAP);
    cr_assert_eq(cfg_rd(MSIX_CAP + MSIX_FLAGS, 2), 3);
    cr_assert_eq(cfg_rd(0x100, 4), 0, "no extended capabilities in the device");
    unsigned speed = 0, width = 0;
    cr_assert_eq(vfio_pci_slot_link(v, 0, &speed, &width), 0);
    cr_assert_eq(speed, 3);
    cr_assert_eq(width, 4);
}

Test(vfio_pci, bar_direct_and_trapped_pieces)
{
    place_bar0(0xfe000000);
    cr_assert_eq(slots_used(), 0, "memory decode is off");
    cr_assert_null(bus_find(&mmio, 0xfe008000, 4));
    cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cr_assert_eq(slots_used(), 2, "two direct pieces around the MSI-X page");
    const struct bus_range *r = bus_find(&mmio, 0xfe008000, 4);
    cr_assert(r, "MSI-X page trapped");
    cr_assert_eq(r->base, 0xfe008000);
    cr_assert_eq(r->len, 0x1000);
    cr_assert_null(bus_find(&mmio, 0xfe000000, 4), "direct pieces do not exit");

    /* MSI-X table: emulated, never written to the device */
    uint32_t w = 0xfee01000, rd = 0;
    cr_assert_eq(bus_write(&mmio, 0xfe008000, &w, 4), 0);
    cr_assert_eq(bus_read(&mmio, 0xfe008000, &rd, 4), 0);
    cr_assert_eq(rd, 0xfee01000);
    cr_assert_eq(file_byte(BAR0_OFF + TABLE), (uint8_t)(TABLE * 7 + 1), "device table untouched");
    cr_assert_eq(bus_read(&mmio, 0xfe008000 + 12, &rd, 4), 0);
    cr_assert_eq(rd, 1, "vector masked after reset");
    uint64_t pba = ~0ull;
    cr_assert_eq(bus_read(&mmio, 0xfe008000 + (PBA - TABLE), &pba, 8), 0);
    cr_assert_eq(pba, 0);

    /* the rest of the page is the device's */
    uint32_t dev = 0;
    cr_assert_eq(bus_read(&mmio, 0xfe008f02, &dev, 2), 0);
    cr_assert_eq(dev, (uint32_t)((uint8_t)(0x8f02 * 7 + 1) | (uint8_t)(0x8f03 * 7 + 1) << 8),
                 "device register next to the table: 0x%x", dev);
    uint32_t poke = 0xa5a5a5a5;
    cr_assert_eq(bus_write(&mmio, 0xfe008f00, &poke, 4), 0);
    cr_assert_eq(file_byte(BAR0_OFF + 0x8f00), 0xa5, "written through to the device");
    cr_assert_eq(file_byte(BAR0_OFF + 0x8f04), (uint8_t)(0x8f04 * 7 + 1), "only 4 bytes");

    /* the guest moves the BAR */
    place_bar0(0xfd000000);
    cr_assert_null(bus_find(&mmio, 0xfe008000, 4));
    cr_assert(bus_find(&mmio, 0xfd008000, 4));
    cr_assert_eq(slots_used(), 2);
    cr_assert_eq(bus_read(&mmio, 0xfd008000, &rd, 4), 0);
    cr_assert_eq(rd, 0xfee01000, "the table moved with it");

    /* decode off: everything goes */
    cfg_wr(PCI_COMMAND, 2, 0);
    cr_assert_eq(slots_used(), 0);
    cr_assert_null(bus_find(&mmio, 0xfd008000, 4));
}

Test(vfio_pci, bar_over_something_else_stays_unmapped)
{
    static const struct bus_ops none = { 0 };
    cr_assert_eq(bus_register(&mmio, 0xfe008000, 0x1000, "other", &none, NULL), 0);
    place_bar0(0xfe000000);
    cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cr_assert_eq(slots_used(), 0, "nothing half-mapped");
    cr_assert_str_eq(bus_find(&mmio, 0xfe008000, 4)->name, "other");
    place_bar0(0xfc000000);
    cr_assert_eq(slots_used(), 2, "a later good address maps");
}

Test(vfio_pci, reset_unmaps_and_restores_config)
{
    place_bar0(0xfe000000);
    cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    uint32_t w = 0xfee01000;
    cr_assert_eq(bus_write(&mmio, 0xfe008000, &w, 4), 0);
    cr_assert_eq(vfio_pci_reset(v), 0);
    cr_assert_eq(slots_used(), 0);
    cr_assert_null(bus_find(&mmio, 0xfe008000, 4));
    cr_assert_eq(cfg_rd(PCI_BAR0, 4), 0x4);
    place_bar0(0xfe000000);
    cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    uint32_t rd = 1;
    cr_assert_eq(bus_read(&mmio, 0xfe008000, &rd, 4), 0);
    cr_assert_eq(rd, 0, "MSI-X table cleared by the reset");
}

static void setup_rom(void)
{
    int rfd = mkstemp(rom_path);
    cr_assert_geq(rfd, 0);
    uint8_t rom[3000];
    memset(rom, 0x11, sizeof(rom));
    rom[0] = 0x55; rom[1] = 0xaa; rom[2] = 5;     /* 2560 bytes */
    cr_assert_eq(write(rfd, rom, sizeof(rom)), (ssize_t)sizeof(rom));
    close(rfd);
    static struct vfio_dev_arg arg;
    memset(&arg, 0, sizeof(arg));
    strcpy(arg.host, "0000:00:04.0");
    strcpy(arg.rom, rom_path);
    setup_with(&arg);
}

Test(vfio_pci_rom, rom_from_file_as_read_only_slot, .init = setup_rom, .fini = teardown)
{
    cfg_wr(PCI_ROM_ADDRESS, 4, 0xfffff800);
    uint32_t sz = cfg_rd(PCI_ROM_ADDRESS, 4);
    cr_assert_eq(sz, (uint32_t)~(sysconf(_SC_PAGESIZE) - 1) & 0xfffff800u, "a page: 0x%x", sz);
    cr_assert_eq(fn->rom[0], 0x55);
    cr_assert_eq(fn->rom[2999], 0x11);
    cr_assert_eq(fn->rom[3000], 0xff, "padding reads as erased ROM");
    cfg_wr(PCI_ROM_ADDRESS, 4, 0xfeb00001);
    cr_assert_eq(slots_used(), 0, "memory decode off");
    cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cr_assert_eq(slots_used(), 1, "the ROM slot");
    cfg_wr(PCI_ROM_ADDRESS, 4, 0xfeb00000);
    cr_assert_eq(slots_used(), 0, "ROM enable bit off");
}

static int gsi_20(void *ctx, const struct pci_device *d, uint8_t pin)
{
    (void)ctx;
    (void)d;
    return pin == 1 ? 20 : -1;
}

/* An in-process guest reset re-creates the platform under the functions:
 * vfio_pci_unplug takes them off the bus (INTx eventfds closed), and they
 * can be plugged again. */
Test(vfio_pci, unplug_and_plug_again)
{
    cr_assert_eq(cfg_rd(PCI_VENDOR_ID, 4), 0x00101b36);
    vfio_pci_unplug(v);
    cr_assert_not(fn->plugged);
    uint32_t val = 0;
    pci_config_read(&pb, 0, DEVFN, PCI_VENDOR_ID, 4, &val);
    cr_assert_eq(val, 0xffffffff, "gone from the bus: absent functions read all ones");
    vfio_pci_unplug(v);             /* twice is harmless */

    cr_assert_eq(vfio_pci_plug(v, 0, &pb, NULL, 3, gsi_20, NULL), 0);
    cr_assert(fn->plugged);
    cr_assert_eq(cfg_rd(PCI_VENDOR_ID, 4), 0x00101b36, "back on the bus");
    cr_assert(fn->intx_ready, "INTA routed to GSI 20");
    cr_assert_eq(fn->intx.gsi, 20);
    cr_assert_geq(fn->intx.trigger_fd, 0);
    vfio_pci_unplug(v);
    cr_assert_not(fn->intx_ready);
    cr_assert_eq(fn->intx.trigger_fd, -1, "INTx eventfds closed");
    cr_assert_eq(fn->intx.resample_fd, -1);
    cr_assert_eq(vfio_pci_plug(v, 0, &pb, NULL, 3, NULL, NULL), 0, "plugs again");
}
