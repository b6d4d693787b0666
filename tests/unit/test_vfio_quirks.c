/* Device quirks (vfio/quirks.c): which devices get which, and where
 * accesses in NVIDIA's BAR0 config mirror go. (--hide-hypervisor's CPUID
 * edit is arch/x86/cpuid_policy.c's: tests/unit/test_cpuid_policy.c.) */
#include <criterion/criterion.h>
#include <linux/pci_regs.h>
#include <string.h>

#include "vfio/quirks.h"

#define MiB (1ull << 20)

static const struct vfio_bar_info gpu_bars[VFIO_NR_BARS] = {
    { VFIO_BAR_MEM32, false, 16 * MiB },
    { VFIO_BAR_MEM64, true, 256 * MiB }, { VFIO_BAR_MEM64_HI, false, 0 },
    { VFIO_BAR_MEM64, true, 32 * MiB }, { VFIO_BAR_MEM64_HI, false, 0 },
    { VFIO_BAR_IO, false, 128 },
};

Test(vfio_quirks, nvidia_gpu_gets_the_bar0_mirror)
{
    struct vfio_quirks q;
    vfio_quirks_probe(0x10de, 0x1b80, 0x030000, gpu_bars, &q);
    cr_assert_eq(q.nr, 1);
    cr_assert_eq(q.win[0].bar, 0);
    cr_assert_eq(q.win[0].off, 0x88000);
    cr_assert_eq(q.win[0].len, 4096);
    cr_assert(q.win[0].msi_ack);
    cr_assert_not(q.no_rom);
    /* 3D controller class (0302, Tesla/datacenter cards) too */
    vfio_quirks_probe(0x10de, 0x1db4, 0x030200, gpu_bars, &q);
    cr_assert_eq(q.nr, 1);
}

Test(vfio_quirks, others_get_none)
{
    struct vfio_quirks q;
    vfio_quirks_probe(0x10de, 0x10f0, 0x040300, gpu_bars, &q);     /* NVIDIA HDMI audio */
    cr_assert_eq(q.nr, 0);
    vfio_quirks_probe(0x1002, 0x67df, 0x030000, gpu_bars, &q);     /* AMD GPU */
    cr_assert_eq(q.nr, 0);
    struct vfio_bar_info small[VFIO_NR_BARS] = { { VFIO_BAR_MEM32, false, 64 * 1024 } };
    vfio_quirks_probe(0x10de, 0x1b80, 0x030000, small, &q);         /* BAR0 too small */
    cr_assert_eq(q.nr, 0);
    struct vfio_bar_info io0[VFIO_NR_BARS] = { { VFIO_BAR_IO, false, 256 } };
    vfio_quirks_probe(0x10de, 0x1b80, 0x030000, io0, &q);
    cr_assert_eq(q.nr, 0);
    /* the lab's stand-ins */
    const uint32_t lab[][3] = { { 0x1234, 0x1111, 0x030000 }, { 0x1b36, 0x0010, 0x010802 },
                                { 0x8086, 0x10d3, 0x020000 }, { 0x1234, 0x11e8, 0x00ff00 } };
    for (unsigned i = 0; i < 4; i++) {
        vfio_quirks_probe((uint16_t)lab[i][0], (uint16_t)lab[i][1], lab[i][2], gpu_bars, &q);
        cr_assert_eq(q.nr, 0, "lab device %u", i);
        cr_assert_not(q.no_rom);
    }
}

Test(vfio_quirks, broadcom_57810_rom_hidden)
{
    struct vfio_quirks q;
    vfio_quirks_probe(0x14e4, 0x168e, 0x020000, gpu_bars, &q);
    cr_assert(q.no_rom);
    vfio_quirks_probe(0x14e4, 0x1657, 0x020000, gpu_bars, &q);
    cr_assert_not(q.no_rom);
}

static uint8_t devcfg[4096];
static int rd(void *o, uint32_t off, void *b, uint32_t l) { (void)o; memcpy(b, devcfg + off, l); return 0; }
static int wr(void *o, uint32_t off, const void *b, uint32_t l) { (void)o; memcpy(devcfg + off, b, l); return 0; }

Test(vfio_quirks, mirror_routing)
{
    memset(devcfg, 0, sizeof(devcfg));
    devcfg[0] = 0xde; devcfg[1] = 0x10;
    devcfg[PCI_STATUS] = PCI_STATUS_CAP_LIST;
    devcfg[PCI_CAPABILITY_LIST] = 0x68;
    devcfg[0x68] = PCI_CAP_ID_MSI;
    devcfg[0x68 + 2] = PCI_MSI_FLAGS_64BIT;
    struct vfio_config cfg;
    struct vfio_config_dev d = { rd, wr, NULL };
    struct vfio_config_opts o = { .bar_region_size = { 16 * MiB }, .msi_vectors = 1,
                                  .device_cfg_size = 256 };
    char err[128];
    cr_assert_eq(vfio_config_init(&cfg, &d, &o, err, sizeof(err)), 0, "%s", err);
    struct vfio_quirks q;
    vfio_quirks_probe(0x10de, 0x1b80, 0x030000, gpu_bars, &q);
    const struct vfio_quirk_window *w = &q.win[0];
    cr_assert_eq(vfio_quirk_route(w, &cfg, 0x10, 4, false), VFIO_QUIRK_TO_CONFIG, "BAR0 register");
    cr_assert_eq(vfio_quirk_route(w, &cfg, 0x10, 4, true), VFIO_QUIRK_TO_CONFIG);
    cr_assert_eq(vfio_quirk_route(w, &cfg, 0xffc, 4, false), VFIO_QUIRK_TO_CONFIG, "extended");
    cr_assert_eq(vfio_quirk_route(w, &cfg, 0x10, 8, false), VFIO_QUIRK_TO_DEVICE, "8 bytes");
    cr_assert_eq(vfio_quirk_route(w, &cfg, 0x11, 2, false), VFIO_QUIRK_TO_DEVICE, "unaligned");
    cr_assert_eq(vfio_quirk_route(w, &cfg, 0x1000, 4, false), VFIO_QUIRK_TO_DEVICE, "past it");
    cr_assert_eq(vfio_quirk_route(w, &cfg, 0x68, 1, true), VFIO_QUIRK_TO_BOTH, "MSI ack");
    cr_assert_eq(vfio_quirk_route(w, &cfg, 0x68, 2, true), VFIO_QUIRK_TO_BOTH);
    cr_assert_eq(vfio_quirk_route(w, &cfg, 0x69, 1, true), VFIO_QUIRK_TO_BOTH);
    cr_assert_eq(vfio_quirk_route(w, &cfg, 0x68, 4, true), VFIO_QUIRK_TO_CONFIG,
                 "a write reaching the control word is a config write only");
    cr_assert_eq(vfio_quirk_route(w, &cfg, 0x68, 1, false), VFIO_QUIRK_TO_CONFIG, "reads: config");
}
