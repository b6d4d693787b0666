/* Config-space virtualization (vfio/config.c) over a fake device: a 4 KiB
 * array laid out like a GPU (PM, MSI, PCIe, MSI-X, a hidden HyperTransport
 * capability, vendor-specific; AER, DSN, resizable BAR, vendor-specific in
 * extended space). The fake records every byte the layer writes to it, so
 * the tests see what reaches the device and what stays emulated. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/pci_regs.h>
#include <string.h>

#include "vfio/config.h"

struct fake_dev {
    uint8_t cfg[VFIO_CFG_SPACE_SIZE];
    uint8_t written[VFIO_CFG_SPACE_SIZE];   /* bytes the layer wrote */
    unsigned nr_writes;
    unsigned nr_reads;
};

static int fake_read(void *opaque, uint32_t off, void *buf, uint32_t len)
{
    struct fake_dev *f = opaque;
    cr_assert_leq(off + len, sizeof(f->cfg), "device read past its config space");
    memcpy(buf, f->cfg + off, len);
    f->nr_reads++;
    return 0;
}

static int fake_write(void *opaque, uint32_t off, const void *buf, uint32_t len)
{
    struct fake_dev *f = opaque;
    cr_assert_leq(off + len, sizeof(f->cfg), "device write past its config space");
    memcpy(f->cfg + off, buf, len);
    memset(f->written + off, 1, len);
    f->nr_writes++;
    return 0;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Offsets of the fake's capabilities. */
#define PM    0x40
#define MSI   0x50
#define PCIE  0x70
#define MSIX  0xB0
#define HT    0xC0
#define VNDR  0xD0

static void build_gpu(struct fake_dev *f, uint8_t pcie_type)
{
    memset(f, 0, sizeof(*f));
    uint8_t *c = f->cfg;
    put16(c + PCI_VENDOR_ID, 0x10de);
    put16(c + PCI_DEVICE_ID, 0x1b80);
    put16(c + PCI_STATUS, PCI_STATUS_CAP_LIST);
    c[PCI_CLASS_DEVICE + 1] = 0x03;              /* display controller */
    c[PCI_HEADER_TYPE] = 0x80;                   /* host says multi-function */
    c[PCI_BIST] = 0x80;                          /* BIST capable: must not show */
    put32(c + PCI_BASE_ADDRESS_0, 0xf6000000);   /* host addresses: must not show */
    put32(c + PCI_BASE_ADDRESS_1, 0xe000000c);   /* 64-bit prefetchable */
    put32(c + PCI_BASE_ADDRESS_2, 0);
    put32(c + PCI_BASE_ADDRESS_3, 0xf000000c);
    put32(c + PCI_BASE_ADDRESS_4, 0);
    put32(c + PCI_BASE_ADDRESS_5, 0xe001);       /* I/O */
    put32(c + PCI_ROM_ADDRESS, 0xf7000000);
    c[PCI_CAPABILITY_LIST] = PM;
    c[PCI_INTERRUPT_LINE] = 11;
    c[PCI_INTERRUPT_PIN] = 1;
    /* PM */
    c[PM] = PCI_CAP_ID_PM; c[PM + 1] = MSI;
    put16(c + PM + 2, 0x0003);
    /* MSI: 64-bit, per-vector mask, 8 vectors capable */
    c[MSI] = PCI_CAP_ID_MSI; c[MSI + 1] = PCIE;
    put16(c + MSI + 2, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (3 << 1));
    put32(c + MSI + 4, 0xfee00000);              /* host's: must not show */
    /* PCIe v2 */
    c[PCIE] = PCI_CAP_ID_EXP; c[PCIE + 1] = MSIX;
    put16(c + PCIE + PCI_EXP_FLAGS, (uint16_t)(2 | pcie_type << 4));
    put32(c + PCIE + PCI_EXP_LNKCAP, 0x00412103); /* 8 GT/s x16 */
    put16(c + PCIE + PCI_EXP_LNKSTA, 0x1043);
    /* MSI-X: 16 vectors, table BAR0+0x2000, PBA BAR0+0x3000 */
    c[MSIX] = PCI_CAP_ID_MSIX; c[MSIX + 1] = HT;
    put16(c + MSIX + PCI_MSIX_FLAGS, 15);
    put32(c + MSIX + PCI_MSIX_TABLE, 0x2000 | 0);
    put32(c + MSIX + PCI_MSIX_PBA, 0x3000 | 0);
    /* HyperTransport: hidden */
    c[HT] = PCI_CAP_ID_HT; c[HT + 1] = VNDR;
    put16(c + HT + 2, 0xa800);
    /* vendor-specific: kept */
    c[VNDR] = PCI_CAP_ID_VNDR; c[VNDR + 1] = 0; c[VNDR + 2] = 8;
    c[VNDR + 3] = 0x5a;
    /* extended: AER (hidden) -> DSN -> REBAR (hidden) -> VNDR */
    put32(c + 0x100, PCI_EXT_CAP_ID_ERR | 2 << 16 | 0x140u << 20);
    put32(c + 0x104, 0xdeadbeef);
    put32(c + 0x140, PCI_EXT_CAP_ID_DSN | 1 << 16 | 0x150u << 20);
    put32(c + 0x144, 0x12345678);
    put32(c + 0x150, PCI_EXT_CAP_ID_REBAR | 1 << 16 | 0x160u << 20);
    put32(c + 0x154, 0x0000ffe0);
    put32(c + 0x160, PCI_EXT_CAP_ID_VNDR | 1 << 16 | 0u << 20);
    put32(c + 0x164, 0x01014321);
}

static struct vfio_config_opts gpu_opts(void)
{
    struct vfio_config_opts o = {
        .bar_region_size = { 16 * MiB, 256 * MiB, 0, 32 * MiB, 0, 128 },
        .rom_size = 512 * 1024,
        .multifunction = true,
        .behind_root_port = true,
        .intx = true,
        .msi_vectors = 8,
        .msix_vectors = 16,
        .device_cfg_size = 4096,
    };
    return o;
}

static struct fake_dev fdev;
static struct vfio_config cfg;

static void init_with(uint8_t pcie_type, const struct vfio_config_opts *o)
{
    build_gpu(&fdev, pcie_type);
    struct vfio_config_dev d = { fake_read, fake_write, &fdev };
    char err[256] = "";
    int r = vfio_config_init(&cfg, &d, o, err, sizeof(err));
    cr_assert_eq(r, 0, "init: %d %s", r, err);
    memset(fdev.written, 0, sizeof(fdev.written));
    fdev.nr_writes = 0;
}

static void init_gpu(void)
{
    struct vfio_config_opts o = gpu_opts();
    init_with(PCI_EXP_TYPE_LEG_END, &o);
}

static uint32_t rd(uint32_t off, unsigned len)
{
    uint32_t v;
    cr_assert_eq(vfio_config_read(&cfg, off, len, &v), 0, "read 0x%x/%u", off, len);
    return v;
}

static int wr(uint32_t off, unsigned len, uint32_t v)
{
    int ev = vfio_config_write(&cfg, off, len, v);
    cr_assert_geq(ev, 0, "write 0x%x/%u = 0x%x", off, len, v);
    return ev;
}

static void assert_not_written(uint32_t off, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        cr_assert_eq(fdev.written[off + i], 0, "byte 0x%x reached the device", off + i);
}

Test(vfio_config, header_passthrough_and_emulated)
{
    init_gpu();
    cr_assert_eq(rd(PCI_VENDOR_ID, 4), 0x1b8010de);
    cr_assert_eq(rd(PCI_BIST, 1), 0, "BIST must read 0");
    cr_assert_eq(rd(PCI_HEADER_TYPE, 1), 0x80, "multi-function slot");
    cr_assert_eq(rd(PCI_INTERRUPT_PIN, 1), 1);
    cr_assert_eq(rd(PCI_INTERRUPT_LINE, 1), 0, "line starts at 0, not the host's");
    wr(PCI_INTERRUPT_LINE, 1, 10);
    cr_assert_eq(rd(PCI_INTERRUPT_LINE, 1), 10);
    assert_not_written(PCI_INTERRUPT_LINE, 1);
    /* the host's BAR and ROM addresses never show */
    cr_assert_eq(rd(PCI_BASE_ADDRESS_0, 4), 0);
    cr_assert_eq(rd(PCI_ROM_ADDRESS, 4), 0);
    cr_assert(rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
}

Test(vfio_config, single_function_and_no_intx)
{
    struct vfio_config_opts o = gpu_opts();
    o.multifunction = false;
    o.intx = false;
    init_with(PCI_EXP_TYPE_ENDPOINT, &o);
    cr_assert_eq(rd(PCI_HEADER_TYPE, 1), 0);
    cr_assert_eq(rd(PCI_INTERRUPT_PIN, 1), 0);
}

Test(vfio_config, bar_sizing)
{
    init_gpu();
    /* PCI 3.0 §6.2.5.1: write all ones, read back the size mask. */
    wr(PCI_BASE_ADDRESS_0, 4, 0xffffffff);
    cr_assert_eq(rd(PCI_BASE_ADDRESS_0, 4), 0xff000000, "16 MiB, 32-bit, not prefetchable");
    wr(PCI_BASE_ADDRESS_1, 4, 0xffffffff);
    wr(PCI_BASE_ADDRESS_2, 4, 0xffffffff);
    cr_assert_eq(rd(PCI_BASE_ADDRESS_1, 4), 0xf000000c, "256 MiB, 64-bit, prefetchable");
    cr_assert_eq(rd(PCI_BASE_ADDRESS_2, 4), 0xffffffff);
    wr(PCI_BASE_ADDRESS_5, 4, 0xffffffff);
    cr_assert_eq(rd(PCI_BASE_ADDRESS_5, 4), 0xffffff81, "128-byte I/O BAR");
    wr(PCI_ROM_ADDRESS, 4, 0xfffff800);
    cr_assert_eq(rd(PCI_ROM_ADDRESS, 4), 0xfff80000, "512 KiB ROM, disabled");
    wr(PCI_ROM_ADDRESS, 4, 0xffffffff);
    cr_assert_eq(rd(PCI_ROM_ADDRESS, 4), 0xfff80001);
    /* Sizing is emulated: none of it reached the device. */
    assert_not_written(PCI_BASE_ADDRESS_0, 24);
    assert_not_written(PCI_ROM_ADDRESS, 4);
    cr_assert_eq(fdev.nr_writes, 0);
    /* byte and word writes land in the right bytes */
    wr(PCI_BASE_ADDRESS_0 + 3, 1, 0xc1);
    cr_assert_eq(rd(PCI_BASE_ADDRESS_0, 4), 0xc1000000);
    wr(PCI_BASE_ADDRESS_0, 2, 0xffff);
    cr_assert_eq(rd(PCI_BASE_ADDRESS_0, 4), 0xc1000000, "bits below the size are read-only");
}

Test(vfio_config, bar_sizing_many_gib)
{
    struct vfio_config_opts o = gpu_opts();
    o.bar_region_size[1] = 16 * GiB;       /* 64-bit, larger than 4 GiB */
    o.bar_region_size[3] = 0;
    init_with(PCI_EXP_TYPE_LEG_END, &o);
    wr(PCI_BASE_ADDRESS_1, 4, 0xffffffff);
    wr(PCI_BASE_ADDRESS_2, 4, 0xffffffff);
    cr_assert_eq(rd(PCI_BASE_ADDRESS_1, 4), 0x0000000c, "no address bits in the low dword");
    cr_assert_eq(rd(PCI_BASE_ADDRESS_2, 4), 0xfffffffc, "16 GiB: bits 63:34");
    cr_assert_eq(rd(PCI_BASE_ADDRESS_3, 4), 0, "unused BAR reads 0");
    wr(PCI_BASE_ADDRESS_3, 4, 0xffffffff);
    cr_assert_eq(rd(PCI_BASE_ADDRESS_3, 4), 0, "unused BAR stays 0");
    /* place it at 64 GiB and enable memory decode */
    wr(PCI_BASE_ADDRESS_1, 4, 0x0000000c);
    int ev = wr(PCI_BASE_ADDRESS_2, 4, 0x10);
    cr_assert(ev & (VFIO_CFG_EV_BAR0 << 1), "upper half moves BAR1");
    uint64_t a = 0;
    cr_assert_not(vfio_config_bar_decoded(&cfg, 1, &a), "memory decode is off");
    ev = wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cr_assert(ev & VFIO_CFG_EV_DECODE);
    cr_assert(vfio_config_bar_decoded(&cfg, 1, &a));
    cr_assert_eq(a, 64 * GiB);
    cr_assert_not(vfio_config_bar_decoded(&cfg, 2, &a), "upper half is not a BAR");
}

Test(vfio_config, bar_decode_rules)
{
    init_gpu();
    uint64_t a = 0;
    wr(PCI_BASE_ADDRESS_0, 4, 0xc0000000);
    cr_assert_not(vfio_config_bar_decoded(&cfg, 0, &a), "decode off after reset");
    wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cr_assert(vfio_config_bar_decoded(&cfg, 0, &a));
    cr_assert_eq(a, 0xc0000000);
    wr(PCI_BASE_ADDRESS_0, 4, 0);
    cr_assert_not(vfio_config_bar_decoded(&cfg, 0, &a), "address 0 is unassigned");
    /* 32-bit BAR sizing pattern while decoding: 0xff000000 + 16 MiB = 4 GiB: fits */
    wr(PCI_BASE_ADDRESS_0, 4, 0xffffffff);
    cr_assert(vfio_config_bar_decoded(&cfg, 0, &a));
    cr_assert_eq(a, 0xff000000);
    /* 64-bit sizing pattern is never decoded (above 2^52) */
    wr(PCI_BASE_ADDRESS_1, 4, 0xffffffff);
    wr(PCI_BASE_ADDRESS_2, 4, 0xffffffff);
    cr_assert_not(vfio_config_bar_decoded(&cfg, 1, &a));
    /* I/O BAR follows the I/O bit */
    wr(PCI_BASE_ADDRESS_5, 4, 0xc001);
    cr_assert_not(vfio_config_bar_decoded(&cfg, 5, &a));
    wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    cr_assert(vfio_config_bar_decoded(&cfg, 5, &a));
    cr_assert_eq(a, 0xc000);
    wr(PCI_BASE_ADDRESS_5, 4, 0xffffffff);
    cr_assert_not(vfio_config_bar_decoded(&cfg, 5, &a), "I/O beyond 64 KiB");
    cr_assert_not(vfio_config_bar_decoded(&cfg, 6, &a));
}

Test(vfio_config, rom_decode)
{
    init_gpu();
    uint64_t a;
    int ev = wr(PCI_ROM_ADDRESS, 4, 0xfeb00000);
    cr_assert(ev & VFIO_CFG_EV_ROM);
    wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cr_assert_not(vfio_config_rom_decoded(&cfg, &a), "enable bit off");
    wr(PCI_ROM_ADDRESS, 4, 0xfeb00001);
    cr_assert(vfio_config_rom_decoded(&cfg, &a));
    cr_assert_eq(a, 0xfeb00000);
    wr(PCI_COMMAND, 2, 0);
    cr_assert_not(vfio_config_rom_decoded(&cfg, &a), "memory decode off");
}

Test(vfio_config, no_rom)
{
    struct vfio_config_opts o = gpu_opts();
    o.rom_size = 0;
    init_with(PCI_EXP_TYPE_LEG_END, &o);
    wr(PCI_ROM_ADDRESS, 4, 0xffffffff);
    cr_assert_eq(rd(PCI_ROM_ADDRESS, 4), 0);
    uint64_t a;
    cr_assert_not(vfio_config_rom_decoded(&cfg, &a));
}

Test(vfio_config, command_passthrough_and_shadow)
{
    init_gpu();
    int ev = wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    cr_assert(ev & VFIO_CFG_EV_DECODE);
    cr_assert_eq(fdev.cfg[PCI_COMMAND], PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER,
                 "command reaches the device");
    ev = wr(PCI_COMMAND + 1, 1, PCI_COMMAND_INTX_DISABLE >> 8);
    cr_assert(ev & VFIO_CFG_EV_INTX);
    cr_assert_not(ev & VFIO_CFG_EV_DECODE);
    cr_assert(vfio_config_intx_disabled(&cfg));
    ev = wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    cr_assert_eq(ev, VFIO_CFG_EV_INTX, "only INTx disable changed");
}

Test(vfio_config, mixed_bytes_forward_passthrough_bits_only)
{
    init_gpu();
    /* status: the cap-list bit (4) is emulated; the rest is the device's */
    wr(PCI_STATUS, 2, 0xffff);
    cr_assert_eq(fdev.cfg[PCI_STATUS], 0xef, "emulated bit written as 0");
    cr_assert_eq(fdev.cfg[PCI_STATUS + 1], 0xff);
    /* dword across command+status: one forwarded run */
    fdev.nr_writes = 0;
    wr(PCI_COMMAND, 4, 0x00000002);
    cr_assert_eq(fdev.nr_writes, 1);
    /* dword at 0x3c: line and pin emulated, min_gnt/max_lat forwarded */
    memset(fdev.written, 0, sizeof(fdev.written));
    wr(PCI_INTERRUPT_LINE, 4, 0xaabbccdd);
    assert_not_written(PCI_INTERRUPT_LINE, 2);
    cr_assert_eq(fdev.written[PCI_MIN_GNT], 1);
    cr_assert_eq(rd(PCI_INTERRUPT_LINE, 1), 0xdd);
    cr_assert_eq(rd(PCI_INTERRUPT_PIN, 1), 1, "pin is read-only");
}

Test(vfio_config, capability_list_filtered)
{
    init_gpu();
    uint8_t want[] = { PM, MSI, PCIE, MSIX, VNDR };
    uint8_t ids[] = { PCI_CAP_ID_PM, PCI_CAP_ID_MSI, PCI_CAP_ID_EXP, PCI_CAP_ID_MSIX, PCI_CAP_ID_VNDR };
    uint8_t pos = (uint8_t)rd(PCI_CAPABILITY_LIST, 1);
    for (unsigned i = 0; i < sizeof(want); i++) {
        cr_assert_eq(pos, want[i], "cap %u at 0x%x, want 0x%x", i, pos, want[i]);
        cr_assert_eq(rd(pos, 1), ids[i]);
        pos = (uint8_t)rd(pos + 1, 1);
    }
    cr_assert_eq(pos, 0, "list ends after the vendor-specific capability");
    cr_assert_eq(rd(HT, 2), 0, "hidden capability reads 0");
    cr_assert_eq(rd(VNDR + 3, 1), 0x5a, "vendor-specific contents pass through");
    cr_assert_eq(vfio_config_find_cap(&cfg, PCI_CAP_ID_HT), 0);
    cr_assert_eq(vfio_config_find_cap(&cfg, PCI_CAP_ID_MSIX), MSIX);
    /* writes to a hidden header stay out of the device */
    wr(HT, 2, 0xffff);
    assert_not_written(HT, 2);
}

Test(vfio_config, msi_hidden_when_vfio_has_no_vectors)
{
    struct vfio_config_opts o = gpu_opts();
    o.msi_vectors = 0;
    o.msix_vectors = 0;
    init_with(PCI_EXP_TYPE_LEG_END, &o);
    cr_assert_eq(vfio_config_find_cap(&cfg, PCI_CAP_ID_MSI), 0);
    cr_assert_eq(vfio_config_find_cap(&cfg, PCI_CAP_ID_MSIX), 0);
    cr_assert_eq(rd(PM + 1, 1), PCIE, "PM now links to PCIe");
    cr_assert_eq(rd(PCIE + 1, 1), VNDR);
}

Test(vfio_config, no_capabilities_clears_status_bit)
{
    build_gpu(&fdev, PCI_EXP_TYPE_ENDPOINT);
    fdev.cfg[PCI_CAPABILITY_LIST] = HT;      /* only the hidden one */
    fdev.cfg[HT + 1] = 0;
    struct vfio_config_dev d = { fake_read, fake_write, &fdev };
    struct vfio_config_opts o = gpu_opts();
    char err[128];
    cr_assert_eq(vfio_config_init(&cfg, &d, &o, err, sizeof(err)), 0);
    cr_assert_eq(rd(PCI_CAPABILITY_LIST, 1), 0);
    cr_assert_eq(rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
    cr_assert_eq(cfg.size, VFIO_CFG_LEGACY_SIZE, "no PCIe capability: no extended space");
}

Test(vfio_config, msi_emulation)
{
    init_gpu();
    uint16_t flags = (uint16_t)rd(MSI + PCI_MSI_FLAGS, 2);
    cr_assert_eq(flags, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (3 << 1),
                 "8 vectors capable, 64-bit, maskable, disabled: 0x%x", flags);
    cr_assert_eq(rd(MSI + PCI_MSI_ADDRESS_LO, 4), 0, "host's MSI address hidden");
    int ev = wr(MSI + PCI_MSI_ADDRESS_LO, 4, 0xfee01003);
    cr_assert(ev & VFIO_CFG_EV_MSI);
    cr_assert_eq(rd(MSI + PCI_MSI_ADDRESS_LO, 4), 0xfee01000, "bits 1:0 read 0");
    wr(MSI + PCI_MSI_ADDRESS_HI, 4, 0);
    wr(MSI + PCI_MSI_DATA_64, 2, 0x4041);
    wr(MSI + PCI_MSI_MASK_64, 4, 0xffffffff);
    cr_assert_eq(rd(MSI + PCI_MSI_MASK_64, 4), 0xff, "mask bits only for 8 vectors");
    wr(MSI + PCI_MSI_MASK_64, 4, 0x2);
    ev = wr(MSI + PCI_MSI_FLAGS, 2, 0xffff);  /* enable, MME=7 and junk */
    cr_assert(ev & VFIO_CFG_EV_MSI);
    flags = (uint16_t)rd(MSI + PCI_MSI_FLAGS, 2);
    cr_assert_eq(flags & (PCI_MSI_FLAGS_QMASK | PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | 0xfe00),
                 PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (3 << 1), "read-only bits kept");
    struct pci_msi_state st;
    vfio_config_msi_state(&cfg, &st);
    cr_assert(st.enabled);
    cr_assert_eq(st.nr_vectors, 8, "MME beyond MMC clamps to 8");
    cr_assert_eq(st.address, 0xfee01000);
    cr_assert_eq(st.data, 0x4041);
    cr_assert(st.per_vector_mask);
    cr_assert_eq(st.mask, 0x2);
    wr(MSI + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | (1 << 4));
    vfio_config_msi_state(&cfg, &st);
    cr_assert_eq(st.nr_vectors, 2);
    /* nothing of the MSI capability reached the device */
    assert_not_written(MSI, 24);
    cr_assert_eq(fdev.nr_writes, 0);
}

static uint32_t pending_bits;
static uint32_t fake_pending(void *opaque) { (void)opaque; return pending_bits; }

Test(vfio_config, msi_pending_from_callback)
{
    init_gpu();
    cfg.msi_pending = fake_pending;
    pending_bits = 0xffff0005;
    wr(MSI + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | (3 << 4));
    cr_assert_eq(rd(MSI + PCI_MSI_PENDING_64, 4), 0x05, "only 8 vectors' bits");
    cr_assert_eq(rd(MSI + PCI_MSI_PENDING_64, 1), 0x05);
    wr(MSI + PCI_MSI_PENDING_64, 4, 0);
    cr_assert_eq(rd(MSI + PCI_MSI_PENDING_64, 4), 0x05, "pending bits are read-only");
}

Test(vfio_config, msix_capability)
{
    init_gpu();
    cr_assert_eq(cfg.msix_cap, MSIX);
    cr_assert_eq(cfg.msix.nr_vectors, 16);
    cr_assert_eq(cfg.msix.table_bar, 0);
    cr_assert_eq(cfg.msix.table_offset, 0x2000);
    cr_assert_eq(cfg.msix.pba_offset, 0x3000);
    cr_assert_eq(rd(MSIX + PCI_MSIX_FLAGS, 2), 15);
    int ev = wr(MSIX + PCI_MSIX_FLAGS, 2, 0xffff);
    cr_assert(ev & VFIO_CFG_EV_MSIX);
    cr_assert_eq(rd(MSIX + PCI_MSIX_FLAGS, 2), 0xc000 | 15);
    cr_assert(vfio_config_msix_enabled(&cfg));
    cr_assert(vfio_config_msix_masked(&cfg));
    wr(MSIX + PCI_MSIX_TABLE, 4, 0);
    cr_assert_eq(rd(MSIX + PCI_MSIX_TABLE, 4), 0x2000, "table location is read-only");
    ev = wr(MSIX + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    cr_assert(ev & VFIO_CFG_EV_MSIX);
    cr_assert_not(vfio_config_msix_masked(&cfg));
    assert_not_written(MSIX, 12);
}

Test(vfio_config, msix_table_outside_bar_is_hidden)
{
    build_gpu(&fdev, PCI_EXP_TYPE_LEG_END);
    put32(fdev.cfg + MSIX + PCI_MSIX_TABLE, 0x00ffff80 | 0);  /* 16 MiB BAR0: table runs past */
    struct vfio_config_dev d = { fake_read, fake_write, &fdev };
    struct vfio_config_opts o = gpu_opts();
    char err[128];
    cr_assert_eq(vfio_config_init(&cfg, &d, &o, err, sizeof(err)), 0);
    cr_assert_eq(cfg.msix_cap, 0);
    cr_assert_eq(vfio_config_find_cap(&cfg, PCI_CAP_ID_MSIX), 0);
    cr_assert_eq(rd(PCIE + 1, 1), VNDR);
}

Test(vfio_config, msix_fewer_vectors_from_vfio)
{
    struct vfio_config_opts o = gpu_opts();
    o.msix_vectors = 4;
    init_with(PCI_EXP_TYPE_LEG_END, &o);
    cr_assert_eq(cfg.msix.nr_vectors, 4);
    cr_assert_eq(rd(MSIX + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE, 3);
}

Test(vfio_config, pcie_integrated_endpoint_behind_root_port)
{
    struct vfio_config_opts o = gpu_opts();
    init_with(PCI_EXP_TYPE_RC_END, &o);
    uint16_t flags = (uint16_t)rd(PCIE + PCI_EXP_FLAGS, 2);
    cr_assert_eq((flags & PCI_EXP_FLAGS_TYPE) >> 4, PCI_EXP_TYPE_ENDPOINT);
    cr_assert_eq(flags & PCI_EXP_FLAGS_VERS, 2, "version passes through");
    cr_assert_eq(rd(PCIE + PCI_EXP_LNKCAP, 4), 0x11, "x1 at 2.5 GT/s");
    cr_assert_eq(rd(PCIE + PCI_EXP_LNKSTA, 2), 0x11);
    wr(PCIE + PCI_EXP_FLAGS, 2, 0);
    cr_assert_eq((rd(PCIE + PCI_EXP_FLAGS, 2) & PCI_EXP_FLAGS_TYPE) >> 4, PCI_EXP_TYPE_ENDPOINT,
                 "the emulated type is read-only");
    assert_not_written(PCIE + PCI_EXP_LNKCAP, 4);
}

Test(vfio_config, pcie_endpoint_behind_root_port_passes_link)
{
    struct vfio_config_opts o = gpu_opts();
    init_with(PCI_EXP_TYPE_ENDPOINT, &o);
    cr_assert_eq((rd(PCIE + PCI_EXP_FLAGS, 2) & PCI_EXP_FLAGS_TYPE) >> 4, PCI_EXP_TYPE_ENDPOINT);
    cr_assert_eq(rd(PCIE + PCI_EXP_LNKCAP, 4), 0x00412103, "real link capabilities");
    cr_assert_eq(rd(PCIE + PCI_EXP_LNKSTA, 2), 0x1043);
    /* device control passes through */
    wr(PCIE + PCI_EXP_DEVCTL, 2, 0x2810);
    cr_assert_eq(fdev.written[PCIE + PCI_EXP_DEVCTL], 1);
}

Test(vfio_config, pcie_endpoint_on_root_bus)
{
    struct vfio_config_opts o = gpu_opts();
    o.behind_root_port = false;
    init_with(PCI_EXP_TYPE_ENDPOINT, &o);
    cr_assert_eq((rd(PCIE + PCI_EXP_FLAGS, 2) & PCI_EXP_FLAGS_TYPE) >> 4, PCI_EXP_TYPE_RC_END);
    cr_assert_eq(rd(PCIE + PCI_EXP_LNKCAP, 4), 0);
    cr_assert_eq(rd(PCIE + PCI_EXP_LNKSTA, 2), 0);
    cr_assert_eq(rd(PCIE + PCI_EXP_LNKCAP2, 4), 0);
}

Test(vfio_config, pcie_port_refused)
{
    build_gpu(&fdev, PCI_EXP_TYPE_UPSTREAM);
    struct vfio_config_dev d = { fake_read, fake_write, &fdev };
    struct vfio_config_opts o = gpu_opts();
    char err[256] = "";
    cr_assert_eq(vfio_config_init(&cfg, &d, &o, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "endpoints"), "message: %s", err);
}

Test(vfio_config, bridge_refused)
{
    build_gpu(&fdev, PCI_EXP_TYPE_ENDPOINT);
    fdev.cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_BRIDGE;
    struct vfio_config_dev d = { fake_read, fake_write, &fdev };
    struct vfio_config_opts o = gpu_opts();
    char err[256] = "";
    cr_assert_eq(vfio_config_init(&cfg, &d, &o, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "bridge"), "message: %s", err);
}

Test(vfio_config, bad_bar_refused)
{
    build_gpu(&fdev, PCI_EXP_TYPE_ENDPOINT);
    struct vfio_config_dev d = { fake_read, fake_write, &fdev };
    struct vfio_config_opts o = gpu_opts();
    o.bar_region_size[5] = 1 << 20;       /* BAR5 64-bit has no upper dword */
    put32(fdev.cfg + PCI_BASE_ADDRESS_5, PCI_BASE_ADDRESS_MEM_TYPE_64);
    char err[256] = "";
    cr_assert_eq(vfio_config_init(&cfg, &d, &o, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "BAR5"), "message: %s", err);
}

Test(vfio_config, extended_capabilities_filtered)
{
    init_gpu();
    uint32_t h = rd(0x100, 4);
    cr_assert_eq(PCI_EXT_CAP_ID(h), 0, "hidden AER leaves ID 0");
    cr_assert_eq(PCI_EXT_CAP_NEXT(h), 0x140);
    cr_assert_eq(rd(0x104, 4), 0xdeadbeef, "only the header of a hidden first cap is rewritten");
    h = rd(0x140, 4);
    cr_assert_eq(PCI_EXT_CAP_ID(h), PCI_EXT_CAP_ID_DSN);
    cr_assert_eq(PCI_EXT_CAP_VER(h), 1, "version bits pass");
    cr_assert_eq(PCI_EXT_CAP_NEXT(h), 0x160, "resizable BAR skipped");
    cr_assert_eq(rd(0x144, 4), 0x12345678);
    cr_assert_eq(rd(0x150, 4), 0, "hidden header reads 0");
    h = rd(0x160, 4);
    cr_assert_eq(PCI_EXT_CAP_ID(h), PCI_EXT_CAP_ID_VNDR);
    cr_assert_eq(PCI_EXT_CAP_NEXT(h), 0);
    cr_assert_eq(vfio_config_find_ext_cap(&cfg, PCI_EXT_CAP_ID_REBAR), 0);
    cr_assert_eq(vfio_config_find_ext_cap(&cfg, PCI_EXT_CAP_ID_ERR), 0);
    cr_assert_eq(vfio_config_find_ext_cap(&cfg, PCI_EXT_CAP_ID_VNDR), 0x160);
}

Test(vfio_config, legacy_config_size)
{
    struct vfio_config_opts o = gpu_opts();
    o.device_cfg_size = 256;
    init_with(PCI_EXP_TYPE_ENDPOINT, &o);
    cr_assert_eq(cfg.size, 256);
    uint32_t v = 0;
    cr_assert_eq(vfio_config_read(&cfg, 0x100, 4, &v), 0);
    cr_assert_eq(v, 0, "no extended space: reads 0, as devices/pci/pci.c answers");
    cr_assert_eq(vfio_config_write(&cfg, 0x100, 4, 0), 0);
    cr_assert_eq(fdev.nr_writes, 0);
}

Test(vfio_config, bad_accesses_refused)
{
    init_gpu();
    uint32_t v = 0;
    cr_assert_eq(vfio_config_read(&cfg, 4094, 4, &v), -EINVAL);
    cr_assert_eq(v, 0xffffffff);
    cr_assert_eq(vfio_config_read(&cfg, 4096, 1, &v), -EINVAL);
    cr_assert_eq(vfio_config_read(&cfg, 0x11, 2, &v), -EINVAL, "unaligned");
    cr_assert_eq(vfio_config_read(&cfg, 0x10, 3, &v), -EINVAL, "length 3");
    cr_assert_eq(vfio_config_read(&cfg, 0x10, 8, &v), -EINVAL, "length 8");
    cr_assert_eq(vfio_config_read(&cfg, 0xffffffffu, 4, &v), -EINVAL);
    cr_assert_eq(vfio_config_write(&cfg, 0xfffffffeu, 2, 0), -EINVAL);
    cr_assert_eq(vfio_config_write(&cfg, 0x06, 4, 0), -EINVAL);
    cr_assert_eq(fdev.nr_writes, 0);
}

Test(vfio_config, capability_loop_terminates)
{
    build_gpu(&fdev, PCI_EXP_TYPE_ENDPOINT);
    fdev.cfg[VNDR + 1] = PM;                 /* back to the start */
    put32(fdev.cfg + 0x160, PCI_EXT_CAP_ID_VNDR | 1 << 16 | 0x100u << 20);
    struct vfio_config_dev d = { fake_read, fake_write, &fdev };
    struct vfio_config_opts o = gpu_opts();
    char err[128];
    cr_assert_eq(vfio_config_init(&cfg, &d, &o, err, sizeof(err)), 0);
    cr_assert_eq(rd(VNDR + 1, 1), 0, "the guest sees a finite list");
    cr_assert_eq(PCI_EXT_CAP_NEXT(rd(0x160, 4)), 0);
}

Test(vfio_config, reset_restores_power_on_state)
{
    init_gpu();
    wr(PCI_BASE_ADDRESS_0, 4, 0xc0000000);
    wr(PCI_ROM_ADDRESS, 4, 0xfeb00001);
    wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    wr(MSI + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
    wr(MSIX + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    wr(PCI_INTERRUPT_LINE, 1, 5);
    vfio_config_reset(&cfg);
    cr_assert_eq(rd(PCI_BASE_ADDRESS_0, 4), 0);
    cr_assert_eq(rd(PCI_BASE_ADDRESS_1, 4), 0xc, "type bits survive");
    cr_assert_eq(rd(PCI_ROM_ADDRESS, 4), 0);
    cr_assert_eq(rd(PCI_INTERRUPT_LINE, 1), 0);
    cr_assert_eq(cfg.command, 0);
    struct pci_msi_state st;
    vfio_config_msi_state(&cfg, &st);
    cr_assert_not(st.enabled);
    cr_assert_not(vfio_config_msix_enabled(&cfg));
    uint64_t a;
    cr_assert_not(vfio_config_bar_decoded(&cfg, 0, &a));
}

Test(vfio_config, bar_decode_pure)
{
    struct vfio_bar_info b;
    cr_assert_eq(vfio_bar_decode(0, 0, 0, &b), 0);
    cr_assert_eq(b.type, VFIO_BAR_UNUSED);
    cr_assert_eq(vfio_bar_decode(0, 0x8, 3 * MiB, &b), 0);
    cr_assert_eq(b.type, VFIO_BAR_MEM32);
    cr_assert(b.prefetch);
    cr_assert_eq(b.size, 4 * MiB, "rounded up to a power of two");
    cr_assert_eq(vfio_bar_decode(2, 0xc, 32 * GiB, &b), 0);
    cr_assert_eq(b.type, VFIO_BAR_MEM64);
    cr_assert_eq(b.size, 32 * GiB);
    cr_assert_eq(vfio_bar_decode(0, 0x0, 8 * GiB, &b), -EINVAL, "32-bit BAR of 8 GiB");
    cr_assert_eq(vfio_bar_decode(0, 0x6, 4096, &b), -EINVAL, "reserved type");
    cr_assert_eq(vfio_bar_decode(5, 0x4, 4096, &b), -EINVAL, "64-bit in the last slot");
    cr_assert_eq(vfio_bar_decode(1, 0x1, 2, &b), 0);
    cr_assert_eq(b.type, VFIO_BAR_IO);
    cr_assert_eq(b.size, 4, "I/O BARs are at least 4 bytes");
    cr_assert_eq(vfio_bar_decode(0, 0x0, 1, &b), 0);
    cr_assert_eq(b.size, 16, "memory BARs are at least 16 bytes");
    cr_assert_eq(vfio_bar_decode(6, 0, 4096, &b), -EINVAL);
}
