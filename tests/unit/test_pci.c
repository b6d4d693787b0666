/* PCI bus model: mechanism #1, ECAM, BAR sizing, masks, capabilities,
 * bridges (devices/pci/pci.h, devices/pci/pci_root_port.h). */
#include <criterion/criterion.h>
#include <errno.h>

#include "devices/pci/pci.h"
#include "devices/pci/pci_root_port.h"
#include "fake_env.h"

static struct fake_env fe;
static struct pci_bus pb;

/* A function with an I/O BAR, a 32-bit BAR and a 64-bit prefetchable BAR
 * that records every bar_map call. */
struct rec {
    unsigned calls;
    unsigned last_bar;
    uint64_t last_addr;
};
static struct rec rec;
static struct pci_device dev;

static void rec_bar_map(struct pci_device *d, unsigned bar, uint64_t addr)
{
    struct rec *r = d->opaque;
    r->calls++;
    r->last_bar = bar;
    r->last_addr = addr;
}
static const struct pci_device_ops rec_ops = { .bar_map = rec_bar_map };

static void pci_setup(void)
{
    fake_env_init(&fe);
    cr_assert_eq(pci_bus_init(&pb, &fe.pio, &fe.mmio), 0);
    cr_assert_eq(pci_bus_attach_pio(&pb), 0);
    memset(&rec, 0, sizeof(rec));
    dev.ops = &rec_ops;
    dev.opaque = &rec;
    pci_device_init(&dev, "test", 0x1234, 0x5678, 0x020000, 3, PCI_HEADER_TYPE_NORMAL, PCI_CFG_SIZE);
    cr_assert_eq(pci_device_set_bar(&dev, 0, PCI_BAR_IO, false, 0x20), 0);
    cr_assert_eq(pci_device_set_bar(&dev, 1, PCI_BAR_MEM32, false, 0x1000), 0);
    cr_assert_eq(pci_device_set_bar(&dev, 2, PCI_BAR_MEM64, true, 0x100000000ULL), 0);
    pci_device_set_intx_pin(&dev, 1);
    cr_assert_eq(pci_bus_add(&pb, NULL, PCI_DEVFN(3, 0), &dev), 0);
}

static void pci_teardown(void)
{
    pci_bus_fini(&pb);
    fake_env_fini(&fe);
}

TestSuite(pci, .init = pci_setup, .fini = pci_teardown);

static uint32_t cf8_addr(unsigned bus, unsigned d, unsigned fn, unsigned reg)
{
    return 0x80000000u | bus << 16 | d << 11 | fn << 8 | (reg & 0xFC);
}

static uint32_t cfg_rd(unsigned bus, unsigned d, unsigned fn, unsigned reg, unsigned len)
{
    pio_out(&fe, 0xCF8, cf8_addr(bus, d, fn, reg), 4);
    return pio_in(&fe, (uint16_t)(0xCFC + (reg & 3)), len);
}

static void cfg_wr(unsigned bus, unsigned d, unsigned fn, unsigned reg, unsigned len, uint32_t v)
{
    pio_out(&fe, 0xCF8, cf8_addr(bus, d, fn, reg), 4);
    pio_out(&fe, (uint16_t)(0xCFC + (reg & 3)), v, len);
}

static uint32_t mmio_rd(uint64_t addr, unsigned len)
{
    uint8_t b[8] = { 0 };
    cr_assert_eq(bus_read(&fe.mmio, addr, b, len), 0, "nothing at 0x%llx", (unsigned long long)addr);
    uint32_t v = 0;
    for (unsigned i = 0; i < len && i < 4; i++)
        v |= (uint32_t)b[i] << (8 * i);
    return v;
}

static void mmio_wr(uint64_t addr, uint32_t v, unsigned len)
{
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    cr_assert_eq(bus_write(&fe.mmio, addr, b, len), 0);
}

Test(pci, cf8_latch_and_ids)
{
    pio_out(&fe, 0xCF8, 0x80001803u | 0x3, 4);
    cr_assert_eq(pio_in(&fe, 0xCF8, 4), 0x80001800u, "bits 1:0 read as 0");
    cr_assert_eq(cfg_rd(0, 3, 0, 0, 4), 0x56781234u);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x08, 4), 0x02000003u, "class and revision");
    /* byte and word accesses through 0xCFC-0xCFF pick the byte lane */
    cr_assert_eq(cfg_rd(0, 3, 0, 0x01, 1), 0x12);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x02, 2), 0x5678);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x03, 1), 0x56);
    /* an unaligned word at 0xCFD is not a valid config access */
    pio_out(&fe, 0xCF8, cf8_addr(0, 3, 0, 0), 4);
    cr_assert_eq(pio_in(&fe, 0xCFD, 2), 0xFFFF);
}

Test(pci, absent_functions_read_all_ones)
{
    cr_assert_eq(cfg_rd(0, 4, 0, 0, 4), 0xFFFFFFFFu);
    cr_assert_eq(cfg_rd(0, 3, 1, 0, 2), 0xFFFF);
    cr_assert_eq(cfg_rd(7, 0, 0, 0, 4), 0xFFFFFFFFu, "no bridge leads to bus 7");
    /* enable bit clear: nothing is addressed */
    pio_out(&fe, 0xCF8, 0x00001800, 4);
    cr_assert_eq(pio_in(&fe, 0xCFC, 4), 0xFFFFFFFFu);
    pio_out(&fe, 0xCFC, 0x7, 4);
    cr_assert_eq(cfg_rd(0, 3, 0, PCI_COMMAND, 2), 0, "write without enable went nowhere");
}

Test(pci, byte_writes_to_cf8_are_not_the_address_register)
{
    pio_out(&fe, 0xCF8, cf8_addr(0, 3, 0, 0), 4);
    outb_(&fe, 0xCFB, 0x01);              /* Linux's type 1 probe writes this */
    cr_assert_eq(pio_in(&fe, 0xCF8, 4), cf8_addr(0, 3, 0, 0));
    cr_assert_eq(pio_in(&fe, 0xCF8, 1), 0xFF);
}

Test(pci, read_only_fields_keep_their_value)
{
    cfg_wr(0, 3, 0, 0, 4, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(0, 3, 0, 0, 4), 0x56781234u, "IDs are read-only");
    cfg_wr(0, 3, 0, 0x08, 4, 0);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x08, 4), 0x02000003u);
    cfg_wr(0, 3, 0, PCI_INTERRUPT_LINE, 2, 0xAB0B);
    cr_assert_eq(cfg_rd(0, 3, 0, PCI_INTERRUPT_LINE, 1), 0x0B, "line is RW");
    cr_assert_eq(cfg_rd(0, 3, 0, PCI_INTERRUPT_PIN, 1), 0x01, "pin is RO");
    /* command: only the defined bits stick */
    cfg_wr(0, 3, 0, PCI_COMMAND, 2, 0xFFFF);
    cr_assert_eq(cfg_rd(0, 3, 0, PCI_COMMAND, 2), 0x0547);
}

Test(pci, status_bits_are_write_one_to_clear)
{
    dev.config[PCI_STATUS + 1] = 0xF9;        /* error bits set by "hardware" */
    dev.config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    cfg_wr(0, 3, 0, PCI_STATUS, 2, 0x0000);
    cr_assert_eq(cfg_rd(0, 3, 0, PCI_STATUS, 2), 0xF910, "writing 0 changes nothing");
    cfg_wr(0, 3, 0, PCI_STATUS, 2, 0x2000 | PCI_STATUS_CAP_LIST);
    cr_assert_eq(cfg_rd(0, 3, 0, PCI_STATUS, 2), 0xD910, "only the written 1 cleared");
}

Test(pci, bar_sizing_io)
{
    cfg_wr(0, 3, 0, 0x10, 4, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x10, 4), 0xFFFFFFE1u, "32 bytes, I/O indicator");
    cfg_wr(0, 3, 0, 0x10, 4, 0xC01F);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x10, 4), 0xC001u, "low bits below the size read 0");
}

Test(pci, bar_sizing_mem32)
{
    cfg_wr(0, 3, 0, 0x14, 4, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x14, 4), 0xFFFFF000u);
}

Test(pci, bar_sizing_mem64)
{
    cfg_wr(0, 3, 0, 0x18, 4, 0xFFFFFFFF);
    cfg_wr(0, 3, 0, 0x1C, 4, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x18, 4), 0x0000000Cu, "64-bit, prefetchable, 4 GiB");
    cr_assert_eq(cfg_rd(0, 3, 0, 0x1C, 4), 0xFFFFFFFFu);
    cr_assert_eq(rec.calls, 0, "no decode while the command register is off");
}

Test(pci, bar_map_follows_command_and_address)
{
    cfg_wr(0, 3, 0, 0x14, 4, 0xFE000000);
    cr_assert_eq(rec.calls, 0);
    cfg_wr(0, 3, 0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cr_assert_eq(rec.calls, 1);
    cr_assert_eq(rec.last_bar, 1);
    cr_assert_eq(rec.last_addr, 0xFE000000ULL);
    cr_assert_eq(dev.bars[1].addr, 0xFE000000ULL);
    /* moving the BAR while decoding: one call with the new address */
    cfg_wr(0, 3, 0, 0x14, 4, 0xFE001000);
    cr_assert_eq(rec.calls, 2);
    cr_assert_eq(rec.last_addr, 0xFE001000ULL);
    /* I/O BAR: I/O enable */
    cfg_wr(0, 3, 0, 0x10, 4, 0xC000);
    cr_assert_eq(rec.calls, 2, "I/O decode still off");
    cfg_wr(0, 3, 0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    cr_assert_eq(rec.calls, 3);
    cr_assert_eq(rec.last_bar, 0);
    cr_assert_eq(rec.last_addr, 0xC000ULL);
    /* memory off: BAR1 unmapped, nothing for BAR0 */
    cfg_wr(0, 3, 0, PCI_COMMAND, 2, PCI_COMMAND_IO);
    cr_assert_eq(rec.calls, 4);
    cr_assert_eq(rec.last_bar, 1);
    cr_assert_eq(rec.last_addr, PCI_BAR_UNMAPPED);
}

Test(pci, bar_64bit_decodes_above_4g_and_refuses_bad_addresses)
{
    cfg_wr(0, 3, 0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cr_assert_eq(rec.calls, 0, "address 0 does not decode");
    cfg_wr(0, 3, 0, 0x1C, 4, 0x8);
    cr_assert_eq(rec.calls, 1);
    cr_assert_eq(rec.last_bar, 2);
    cr_assert_eq(rec.last_addr, 0x800000000ULL);
    /* an I/O BAR past 64 KiB does not decode */
    cfg_wr(0, 3, 0, 0x10, 4, 0x10000);
    cfg_wr(0, 3, 0, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    cr_assert_eq(dev.bars[0].addr, PCI_BAR_UNMAPPED);
}

Test(pci, ecam_decoding_and_move)
{
    cr_assert_eq(pci_bus_set_ecam(&pb, 0xB0000000ULL, 256ULL << 20), 0);
    /* bus 0, device 3, function 0, register 0 */
    cr_assert_eq(mmio_rd(0xB0000000ULL + (3u << 15), 4), 0x56781234u);
    cr_assert_eq(mmio_rd(0xB0000000ULL + (3u << 15) + 0x0A, 2), 0x0200);
    cr_assert_eq(mmio_rd(0xB0000000ULL + (4u << 15), 4), 0xFFFFFFFFu);
    /* extended config space is reachable through ECAM only */
    dev.config[0x104] = 0x5A;
    cr_assert_eq(mmio_rd(0xB0000000ULL + (3u << 15) + 0x104, 1), 0x5A);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x04, 4) & 0xFF, 0, "0xCF8 reaches register 4, not 0x104");
    mmio_wr(0xB0000000ULL + (3u << 15) + PCI_INTERRUPT_LINE, 0x0A, 1);
    cr_assert_eq(cfg_rd(0, 3, 0, PCI_INTERRUPT_LINE, 1), 0x0A);
    /* an 8-byte ECAM read is two dwords */
    uint8_t q[8];
    cr_assert_eq(bus_read(&fe.mmio, 0xB0000000ULL + (3u << 15), q, 8), 0);
    cr_assert_eq(q[0], 0x34);
    cr_assert_eq(q[4], 0x00);   /* command */
    cr_assert_eq(q[7], 0x00);
    /* move: the old window is gone, the new one works */
    cr_assert_eq(pci_bus_set_ecam(&pb, 0xE0000000ULL, 64ULL << 20), 0);
    cr_assert_null(bus_find(&fe.mmio, 0xB0000000ULL, 4));
    cr_assert_eq(mmio_rd(0xE0000000ULL + (3u << 15), 2), 0x1234);
    cr_assert_null(bus_find(&fe.mmio, 0xE0000000ULL + (64ULL << 20), 4), "64 buses only");
    /* misaligned or oversized windows are refused and leave ECAM off */
    cr_assert_lt(pci_bus_set_ecam(&pb, 0xE0100000ULL, 256ULL << 20), 0);
    cr_assert_null(bus_find(&fe.mmio, 0xE0000000ULL, 4));
    cr_assert_eq(pci_bus_set_ecam(&pb, 0, 0), 0);
}

Test(pci, capability_list_walk)
{
    cr_assert_eq(pci_cap_find(&dev, PCI_CAP_ID_MSI), 0, "no list yet");
    cr_assert_eq(pci_cap_add(&dev, 0x40, PCI_CAP_ID_PM, 8), 0x40);
    cr_assert_eq(pci_cap_add(&dev, 0x50, PCI_CAP_ID_MSI, 0x18), 0x50);
    cr_assert_eq(pci_cap_add(&dev, 0x70, PCI_CAP_ID_EXP, 0x3C), 0x70);
    cr_assert_eq(cfg_rd(0, 3, 0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, PCI_STATUS_CAP_LIST);
    cr_assert_eq(cfg_rd(0, 3, 0, PCI_CAPABILITY_LIST, 1), 0x40);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x41, 1), 0x50);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x51, 1), 0x70);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x71, 1), 0x00);
    cr_assert_eq(pci_cap_find(&dev, PCI_CAP_ID_EXP), 0x70);
    cr_assert_eq(pci_cap_find(&dev, PCI_CAP_ID_MSIX), 0);
    /* the guest cannot rewrite the list */
    cfg_wr(0, 3, 0, 0x41, 1, 0x41);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x41, 1), 0x50);
    /* a looped list (corrupted) ends the walk */
    dev.config[0x71] = 0x40;
    cr_assert_eq(pci_cap_find(&dev, PCI_CAP_ID_MSIX), 0);
    cr_assert_lt(pci_cap_add(&dev, 0x20, PCI_CAP_ID_VNDR, 4), 0, "inside the header");
    cr_assert_lt(pci_cap_add(&dev, 0xFC, PCI_CAP_ID_VNDR, 8), 0, "past 256 bytes");
}

Test(pci, extended_capability_list)
{
    cr_assert_lt(pci_ext_cap_add(&dev, 0x140, 0x0001, 1, 0x40), 0, "must start at 0x100");
    cr_assert_eq(pci_ext_cap_add(&dev, 0x100, 0x0001, 2, 0x40), 0x100);
    cr_assert_eq(pci_ext_cap_add(&dev, 0x140, 0x0003, 1, 0x0C), 0x140);
    cr_assert_eq(pci_cfg_get(&dev, 0x100, 4), 0x14020001u);
    cr_assert_eq(pci_ext_cap_find(&dev, 0x0003), 0x140);
    cr_assert_eq(pci_ext_cap_find(&dev, 0x000D), 0);
}

/* ---- capability builders (MSI-X, MSI, PM) ---- */

Test(pci, msix_capability_builder)
{
    struct pci_msix_cap_info mi = { .nr_vectors = 16, .table_bar = 1, .table_offset = 0x800,
                                    .pba_bar = 2, .pba_offset = 0x1000 };
    cr_assert_eq(pci_msix_cap_add(&dev, 0x40, &mi), 0x40);
    cr_assert_eq(pci_cap_find(&dev, PCI_CAP_ID_MSIX), 0x40);
    cr_assert_eq(cfg_rd(0, 3, 0, PCI_CAPABILITY_LIST, 1), 0x40);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40, 2), PCI_CAP_ID_MSIX, "ID, end of list");
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_MSIX_FLAGS, 2), 15, "table size N - 1, off");
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_MSIX_TABLE, 4), 0x801, "offset | BIR");
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_MSIX_PBA, 4), 0x1002);
    /* only enable and function mask are writable (PCI 3.0 §6.8.2.3) */
    cfg_wr(0, 3, 0, 0x40 + PCI_MSIX_FLAGS, 2, 0xFFFF);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_MSIX_FLAGS, 2), 0xC00F);
    cfg_wr(0, 3, 0, 0x40 + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_MASKALL);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_MSIX_FLAGS, 2), 0x400F);
    cfg_wr(0, 3, 0, 0x40 + PCI_MSIX_TABLE, 4, 0);
    cfg_wr(0, 3, 0, 0x40 + PCI_MSIX_PBA, 4, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_MSIX_TABLE, 4), 0x801, "read-only");
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_MSIX_PBA, 4), 0x1002, "read-only");
    /* a full table fills a 32 KiB piece of a BAR exactly; next in the list */
    struct pci_msix_cap_info big = { .nr_vectors = PCI_MSIX_MAX_VECTORS, .table_bar = 2,
                                     .table_offset = 0, .pba_bar = 1, .pba_offset = 0xF00 };
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &big), 0x50);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x41, 1), 0x50);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x50 + PCI_MSIX_FLAGS, 2), 0x7FF);
}

Test(pci, msix_capability_builder_refuses_bad_layouts)
{
    const struct pci_msix_cap_info ok = { .nr_vectors = 16, .table_bar = 1, .table_offset = 0xE00,
                                          .pba_bar = 1, .pba_offset = 0xFF8 };
    struct pci_msix_cap_info mi = ok;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x40, &mi), 0x40, "the PBA ends at the BAR's end");
    mi = ok; mi.nr_vectors = 0;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &mi), -EINVAL, "no vectors");
    mi = ok; mi.nr_vectors = PCI_MSIX_MAX_VECTORS + 1;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &mi), -EINVAL, "11-bit table size");
    mi = ok; mi.table_offset = 0xE04;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &mi), -EINVAL, "offset bits 2:0 are the BIR");
    mi = ok; mi.table_offset = 0xF08; mi.pba_bar = 2; mi.pba_offset = 0;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &mi), -EINVAL, "table past the BAR");
    mi = ok; mi.table_offset = 0xF00;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &mi), -EINVAL, "table over the PBA");
    mi = ok; mi.table_offset = 0xF00; mi.pba_bar = 2;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &mi), 0x50, "the same offset in another BAR");
    mi = ok; mi.pba_offset = 0x1000;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &mi), -EINVAL, "PBA past the BAR");
    mi = ok; mi.table_bar = 0;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &mi), -EINVAL, "I/O BAR");
    mi = ok; mi.pba_bar = 3;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &mi), -EINVAL, "upper half of a 64-bit BAR");
    mi = ok; mi.table_bar = 4;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &mi), -EINVAL, "unimplemented BAR");
    mi = ok; mi.pba_bar = PCI_NR_BARS;
    cr_assert_eq(pci_msix_cap_add(&dev, 0x50, &mi), -EINVAL, "no BAR 6");
    cr_assert_eq(pci_msix_cap_add(&dev, 0xF8, &ok), -EINVAL, "past 256 bytes");
    cr_assert_eq(cfg_rd(0, 3, 0, 0x41, 1), 0x50, "only what was accepted is linked");
    cr_assert_eq(cfg_rd(0, 3, 0, 0x51, 1), 0);
}

Test(pci, msi_capability_builder_with_masking)
{
    cr_assert_eq(pci_msi_cap_add(&dev, 0x50, 4, true), 0x50);
    cr_assert_eq(pci_cap_find(&dev, PCI_CAP_ID_MSI), 0x50);
    /* 64-bit, per-vector masking, Multiple Message Capable 4 (010b), off */
    cr_assert_eq(cfg_rd(0, 3, 0, 0x50 + PCI_MSI_FLAGS, 2), 0x0184);
    cfg_wr(0, 3, 0, 0x50 + PCI_MSI_FLAGS, 2, 0xFFFF);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x50 + PCI_MSI_FLAGS, 2), 0x01F5, "enable and MME only");
    cfg_wr(0, 3, 0, 0x50 + PCI_MSI_ADDRESS_LO, 4, 0xFEE01003);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x50 + PCI_MSI_ADDRESS_LO, 4), 0xFEE01000, "bits 1:0 read 0");
    cfg_wr(0, 3, 0, 0x50 + PCI_MSI_ADDRESS_HI, 4, 0x12);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x50 + PCI_MSI_ADDRESS_HI, 4), 0x12);
    cfg_wr(0, 3, 0, 0x50 + PCI_MSI_DATA_64, 4, 0xFFFF4041);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x50 + PCI_MSI_DATA_64, 4), 0x4041, "16-bit data");
    cfg_wr(0, 3, 0, 0x50 + PCI_MSI_MASK_64, 4, 0xFFFFFFFA);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x50 + PCI_MSI_MASK_64, 4), 0xA, "a mask bit per vector");
    cfg_wr(0, 3, 0, 0x50 + PCI_MSI_PENDING_64, 4, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x50 + PCI_MSI_PENDING_64, 4), 0, "pending is read-only");

    struct pci_msi_state st;
    pci_msi_cap_state(&dev, 0x50, &st);
    cr_assert(st.enabled);
    cr_assert_eq(st.nr_vectors, 4, "MME 111b clamped to what the capability offers");
    cr_assert_eq(st.address, 0x12FEE01000ULL);
    cr_assert_eq(st.data, 0x4041);
    cr_assert(st.per_vector_mask);
    cr_assert_eq(st.mask, 0xA);
    cfg_wr(0, 3, 0, 0x50 + PCI_MSI_FLAGS, 2, 0x0010);   /* MME 2, disabled */
    pci_msi_cap_state(&dev, 0x50, &st);
    cr_assert_not(st.enabled);
    cr_assert_eq(st.nr_vectors, 2);
    /* 24 bytes: the next capability fits right after */
    cr_assert_eq(pci_pm_cap_add(&dev, 0x68), 0x68);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x51, 1), 0x68);
}

Test(pci, msi_capability_builder_without_masking)
{
    cr_assert_eq(pci_msi_cap_add(&dev, 0x40, 1, false), 0x40);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_MSI_FLAGS, 2), 0x0080, "64-bit, one vector");
    cfg_wr(0, 3, 0, 0x40 + PCI_MSI_FLAGS, 2, 0x0071);
    struct pci_msi_state st;
    pci_msi_cap_state(&dev, 0x40, &st);
    cr_assert(st.enabled);
    cr_assert_eq(st.nr_vectors, 1);
    cr_assert_not(st.per_vector_mask);
    cr_assert_eq(st.mask, 0);
    cr_assert_eq(pci_msi_cap_add(&dev, 0x50, 32, true), 0x50);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x50 + PCI_MSI_FLAGS, 2), 0x018A, "MMC 101b: 32");
    cfg_wr(0, 3, 0, 0x50 + PCI_MSI_MASK_64, 4, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x50 + PCI_MSI_MASK_64, 4), 0xFFFFFFFF);
    cr_assert_eq(pci_msi_cap_add(&dev, 0x70, 0, false), -EINVAL);
    cr_assert_eq(pci_msi_cap_add(&dev, 0x70, 3, false), -EINVAL, "not a power of two");
    cr_assert_eq(pci_msi_cap_add(&dev, 0x70, 64, true), -EINVAL, "more than 32");
    cr_assert_eq(pci_msi_cap_add(&dev, 0xF0, 1, true), -EINVAL, "24 bytes past 256");
    /* a 32-bit capability (as a device might hand-build) reads too */
    cr_assert_eq(pci_cap_add(&dev, 0x80, PCI_CAP_ID_MSI, 10), 0x80);
    pci_cfg_set(&dev, 0x80 + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
    pci_cfg_set(&dev, 0x80 + PCI_MSI_ADDRESS_LO, 4, 0xFEE00000);
    pci_cfg_set(&dev, 0x80 + PCI_MSI_DATA_32, 2, 0x4022);
    pci_msi_cap_state(&dev, 0x80, &st);
    cr_assert(st.enabled);
    cr_assert_eq(st.address, 0xFEE00000ULL);
    cr_assert_eq(st.data, 0x4022);
}

Test(pci, pm_capability_builder)
{
    cr_assert_eq(pci_pm_cap_add(&dev, 0x40), 0x40);
    cr_assert_eq(pci_cap_find(&dev, PCI_CAP_ID_PM), 0x40);
    /* PM 1.2: version 3, no D1/D2, no PME */
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_PM_PMC, 2), 0x0003);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_PM_CTRL, 2), PCI_PM_CTRL_NO_SOFT_RESET, "D0");
    cfg_wr(0, 3, 0, 0x40 + PCI_PM_CTRL, 2, 0xFFFF);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_PM_CTRL, 2), 0x000B, "D3hot; only PowerState moves");
    cfg_wr(0, 3, 0, 0x40 + PCI_PM_CTRL, 2, 0);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_PM_CTRL, 2), 0x0008, "back to D0");
    cfg_wr(0, 3, 0, 0x40 + PCI_PM_PMC, 2, 0);
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + PCI_PM_PMC, 2), 0x0003, "PMC is read-only");
    cr_assert_eq(cfg_rd(0, 3, 0, 0x40 + 6, 2), 0, "no bridge extensions, no data");
    cr_assert_eq(pci_pm_cap_add(&dev, 0xFC), -EINVAL);
    /* the root port's PM capability is this one */
    struct pci_root_port r2;
    struct pci_root_port_config c = { .port_nr = 2, .slot_nr = 2 };
    cr_assert_eq(pci_root_port_init(&r2, &c), 0);
    cr_assert_eq(pci_cfg_get(&r2.dev, PCI_ROOT_PORT_PM_CAP + PCI_PM_PMC, 2), 0x0003);
    cr_assert_eq(pci_cfg_get(&r2.dev, PCI_ROOT_PORT_PM_CAP + PCI_PM_CTRL, 2), 0x0008);
    cr_assert_eq(r2.dev.wmask[PCI_ROOT_PORT_PM_CAP + PCI_PM_CTRL], PCI_PM_CTRL_STATE_MASK);
}

Test(pci, bad_bar_descriptions_refused)
{
    struct pci_device d2 = { 0 };
    pci_device_init(&d2, "bad", 1, 2, 0, 0, 0, PCI_CFG_LEGACY_SIZE);
    cr_assert_lt(pci_device_set_bar(&d2, 0, PCI_BAR_MEM32, false, 0x1800), 0, "not a power of 2");
    cr_assert_lt(pci_device_set_bar(&d2, 5, PCI_BAR_MEM64, false, 0x1000), 0, "no room for high half");
    cr_assert_lt(pci_device_set_bar(&d2, 0, PCI_BAR_IO, false, 0x1000), 0, "I/O BAR > 256 bytes");
    cr_assert_lt(pci_device_set_bar(&d2, 6, PCI_BAR_IO, false, 0x10), 0);
}

Test(pci, slot_taken_and_remove)
{
    struct pci_device d2;
    d2.ops = NULL;
    pci_device_init(&d2, "dup", 1, 2, 0, 0, 0, PCI_CFG_LEGACY_SIZE);
    cr_assert_eq(pci_bus_add(&pb, NULL, PCI_DEVFN(3, 0), &d2), -EEXIST);
    cr_assert_eq(pci_bus_add(&pb, NULL, PCI_DEVFN(3, 1), &d2), 0);
    cr_assert_eq(cfg_rd(0, 3, 1, 0, 2), 0x0001);
    pci_bus_remove(&pb, &d2);
    cr_assert_eq(cfg_rd(0, 3, 1, 0, 2), 0xFFFF);
    /* conventional function: registers past 256 read 0 through ECAM */
    cr_assert_eq(pci_bus_set_ecam(&pb, 0xB0000000ULL, 1ULL << 20), 0);
    cr_assert_eq(pci_bus_add(&pb, NULL, PCI_DEVFN(5, 0), &d2), 0);
    cr_assert_eq(mmio_rd(0xB0000000ULL + (5u << 15) + 0x100, 4), 0);
    pci_bus_remove(&pb, &d2);
}

/* ---- root port ---- */

static struct pci_root_port rp;
static struct pci_device ep;

static void rp_plug(void)
{
    struct pci_root_port_config c = { .port_nr = 1, .slot_nr = 1, .speed = PCI_LINK_8GT, .width = 16 };
    cr_assert_eq(pci_root_port_init(&rp, &c), 0);
    cr_assert_eq(pci_bus_add(&pb, NULL, PCI_DEVFN(1, 0), &rp.dev), 0);
    ep.ops = NULL;
    pci_device_init(&ep, "ep", 0x10DE, 0x1234, 0x030000, 0xA1, 0, PCI_CFG_SIZE);
}

Test(pci, root_port_header_and_bus_routing)
{
    rp_plug();
    cr_assert_eq(cfg_rd(0, 1, 0, 0, 4), 0x000C1B36u);
    cr_assert_eq(cfg_rd(0, 1, 0, PCI_HEADER_TYPE, 1), 0x01);
    cr_assert_eq(cfg_rd(0, 1, 0, 0x08, 4) >> 8, 0x060400u);
    cr_assert_eq(pci_bus_add(&pb, &rp.dev, PCI_DEVFN(1, 0), &ep), -EINVAL, "device 0 only on a link");
    cr_assert_eq(pci_bus_add(&pb, &rp.dev, PCI_DEVFN(0, 0), &ep), 0);
    /* not configured: bus 1 reaches nothing */
    cr_assert_eq(cfg_rd(1, 0, 0, 0, 4), 0xFFFFFFFFu);
    cfg_wr(0, 1, 0, PCI_PRIMARY_BUS, 4, 0x00010100);   /* pri 0, sec 1, sub 1 */
    cr_assert_eq(cfg_rd(0, 1, 0, PCI_SECONDARY_BUS, 1), 1);
    cr_assert_eq(cfg_rd(1, 0, 0, 0, 4), 0x123410DEu);
    cr_assert_eq(cfg_rd(1, 1, 0, 0, 4), 0xFFFFFFFFu, "other devices are URs");
    cr_assert_eq(cfg_rd(2, 0, 0, 0, 4), 0xFFFFFFFFu);
    /* ECAM routes too */
    cr_assert_eq(pci_bus_set_ecam(&pb, 0xB0000000ULL, 256ULL << 20), 0);
    cr_assert_eq(mmio_rd(0xB0000000ULL + (1u << 20), 2), 0x10DE);
}

Test(pci, root_port_windows)
{
    uint64_t base, limit;
    rp_plug();
    /* base > limit closes a window (what firmware writes for "none") */
    cfg_wr(0, 1, 0, PCI_MEMORY_BASE, 4, 0x0000FFF0);
    cr_assert_not(pci_bridge_window(&rp.dev, PCI_WINDOW_MEM, &base, &limit));
    cfg_wr(0, 1, 0, PCI_IO_BASE, 2, 0x7060);
    cfg_wr(0, 1, 0, PCI_MEMORY_BASE, 4, 0xC0F0C000);
    cfg_wr(0, 1, 0, PCI_PREF_MEMORY_BASE, 4, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(0, 1, 0, PCI_PREF_MEMORY_BASE, 4), 0xFFF1FFF1u, "64-bit type bits RO");
    cfg_wr(0, 1, 0, PCI_PREF_MEMORY_BASE, 4, 0x01F10001);
    cfg_wr(0, 1, 0, PCI_PREF_BASE_UPPER32, 4, 0x8);
    cfg_wr(0, 1, 0, PCI_PREF_LIMIT_UPPER32, 4, 0x8);
    cr_assert(pci_bridge_window(&rp.dev, PCI_WINDOW_IO, &base, &limit));
    cr_assert_eq(base, 0x6000);
    cr_assert_eq(limit, 0x7FFF);
    cr_assert(pci_bridge_window(&rp.dev, PCI_WINDOW_MEM, &base, &limit));
    cr_assert_eq(base, 0xC0000000ULL);
    cr_assert_eq(limit, 0xC0FFFFFFULL);
    cr_assert(pci_bridge_window(&rp.dev, PCI_WINDOW_PREF, &base, &limit));
    cr_assert_eq(base, 0x800000000ULL);
    cr_assert_eq(limit, 0x801FFFFFFULL);
    cfg_wr(0, 1, 0, PCI_BRIDGE_CONTROL, 2, 0xFFFF);
    cr_assert_eq(cfg_rd(0, 1, 0, PCI_BRIDGE_CONTROL, 2), 0x007F);
}

Test(pci, root_port_express_capability)
{
    rp_plug();
    uint8_t x = pci_cap_find(&rp.dev, PCI_CAP_ID_EXP);
    cr_assert_eq(x, PCI_ROOT_PORT_EXP_CAP);
    uint32_t flags = cfg_rd(0, 1, 0, x + PCI_EXP_FLAGS, 2);
    cr_assert_eq((flags >> 4) & 0xF, PCI_EXP_TYPE_ROOT_PORT);
    cr_assert(flags & 0x100, "slot implemented");
    uint32_t lnkcap = cfg_rd(0, 1, 0, x + PCI_EXP_LNKCAP, 4);
    cr_assert_eq(lnkcap & 0xF, 3);
    cr_assert_eq((lnkcap >> 4) & 0x3F, 16);
    cr_assert_eq(lnkcap >> 24, 1);
    cr_assert_eq(cfg_rd(0, 1, 0, x + PCI_EXP_SLTCAP, 4) >> 19, 1, "physical slot 1");
    /* empty slot: no presence, link not active */
    cr_assert_eq(cfg_rd(0, 1, 0, x + PCI_EXP_SLTSTA, 2) & 0x40, 0);
    cr_assert_eq(cfg_rd(0, 1, 0, x + PCI_EXP_LNKSTA, 2) & 0x2000, 0);
    cr_assert_eq(pci_bus_add(&pb, &rp.dev, 0, &ep), 0);
    cr_assert_eq(cfg_rd(0, 1, 0, x + PCI_EXP_SLTSTA, 2) & 0x40, 0x40);
    cr_assert_eq(cfg_rd(0, 1, 0, x + PCI_EXP_LNKSTA, 2) & 0x2000, 0x2000);
    cr_assert_eq(cfg_rd(0, 1, 0, x + PCI_EXP_LNKSTA + 1, 1) & 0x20, 0x20, "byte lane too");
    cr_assert_eq(cfg_rd(0, 1, 0, x + PCI_EXP_LNKSTA, 2) & 0x3FF, 0x103, "x16 8 GT/s");
    /* capability header is read-only */
    cfg_wr(0, 1, 0, x, 4, 0);
    cr_assert_eq(cfg_rd(0, 1, 0, x, 1), PCI_CAP_ID_EXP);
    cr_assert_eq(pci_cap_find(&rp.dev, PCI_CAP_ID_PM), PCI_ROOT_PORT_PM_CAP);
}

Test(pci, root_port_bad_config_refused)
{
    struct pci_root_port r2;
    struct pci_root_port_config c = { .slot_nr = 1, .width = 3 };
    cr_assert_lt(pci_root_port_init(&r2, &c), 0);
    c.width = 1;
    c.slot_nr = 0;
    cr_assert_lt(pci_root_port_init(&r2, &c), 0);
}

/* 0xCF9 (reset control) keeps working when the PCI host takes 0xCF8. */
static uint8_t cf9_val;
static unsigned cf9_writes;
static int cf9_read(void *o, uint64_t off, void *data, unsigned len)
{
    *(uint8_t *)data = cf9_val;
    return 0;
}
static int cf9_write(void *o, uint64_t off, const void *data, unsigned len)
{
    cf9_val = *(const uint8_t *)data;
    cf9_writes++;
    return 0;
}
static const struct bus_ops cf9_ops = { .read = cf9_read, .write = cf9_write };

Test(pci, cf9_adopted_and_restored)
{
    struct fake_env f2;
    struct pci_bus b2;
    fake_env_init(&f2);
    cr_assert_eq(bus_register(&f2.pio, 0xCF9, 1, "reset", &cf9_ops, NULL), 0);
    cr_assert_eq(pci_bus_init(&b2, &f2.pio, &f2.mmio), 0);
    cr_assert_eq(pci_bus_attach_pio(&b2), 0);
    outb_(&f2, 0xCF9, 0x06);
    cr_assert_eq(cf9_writes, 1);
    cr_assert_eq(inb_(&f2, 0xCF9), 0x06);
    pio_out(&f2, 0xCF8, 0x80000000u, 4);
    cr_assert_eq(pio_in(&f2, 0xCF8, 4), 0x80000000u);
    cr_assert_eq(cf9_writes, 1, "a dword at 0xCF8 is CONFIG_ADDRESS only");
    pci_bus_fini(&b2);
    const struct bus_range *r = bus_find(&f2.pio, 0xCF9, 1);
    cr_assert_not_null(r);
    cr_assert_eq(r->base, 0xCF9);
    cr_assert_eq(r->ops, &cf9_ops);
    fake_env_fini(&f2);
}
