/* The host side of vfio/container.c without VFIO: the IOMMU group of a
 * device and the group check over fake sysfs trees (the message must list
 * the offenders and the commands that fix them), and the DMA map list kept
 * across changes of the guest memory map (before the first group is
 * attached nothing reaches the kernel, so the list itself is checked). */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture_tree.h"
#include "vfio/container.h"
#include "vmm/gm.h"

static char root[128];

static void put_file(const char *rel, const char *text)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    cr_assert(f, "fixture %s", p);
    fputs(text, f);
    fclose(f);
}

static void put_link(const char *rel, const char *target)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    cr_assert_eq(symlink(target, p), 0, "fixture link %s", p);
}

/* A PCI device in group grp, on driver drv ("" = none), of class cls. */
static void add_dev(const char *bdf, int grp, const char *drv, const char *cls)
{
    char rel[256], tgt[256];
    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s", bdf);
    fixture_mkdirs(root, rel);
    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/class", bdf);
    put_file(rel, cls);
    if (grp >= 0) {
        snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%d/devices", grp);
        fixture_mkdirs(root, rel);
        snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%d/devices/%s", grp, bdf);
        snprintf(tgt, sizeof(tgt), "../../../../bus/pci/devices/%s", bdf);
        put_link(rel, tgt);
        snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/iommu_group", bdf);
        snprintf(tgt, sizeof(tgt), "../../../../kernel/iommu_groups/%d", grp);
        put_link(rel, tgt);
    }
    if (drv[0]) {
        snprintf(rel, sizeof(rel), "sys/bus/pci/drivers/%s", drv);
        fixture_mkdirs(root, rel);
        snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/driver", bdf);
        snprintf(tgt, sizeof(tgt), "../../../../bus/pci/drivers/%s", drv);
        put_link(rel, tgt);
    }
}

static struct host_ctx hc;

static void fake_host(void)
{
    snprintf(root, sizeof(root), "/tmp/minivmm-test-vfio-XXXXXX");
    cr_assert(mkdtemp(root));
    hc = (struct host_ctx){ .root = root, .out = stderr, .err = stderr };
    /* group 12: GPU + audio on vfio-pci (usable) */
    add_dev("0000:01:00.0", 12, "vfio-pci", "0x030000");
    add_dev("0000:01:00.1", 12, "vfio-pci", "0x040300");
    /* group 13: GPU on nvidia, audio on snd_hda_intel, a bridge on pcieport */
    add_dev("0000:02:00.0", 13, "nvidia", "0x030000");
    add_dev("0000:02:00.1", 13, "snd_hda_intel", "0x040300");
    add_dev("0000:00:03.0", 13, "pcieport", "0x060400");
    /* group 14: nvme on nvme, with an unbound function */
    add_dev("0000:00:04.0", 14, "nvme", "0x010802");
    add_dev("0000:00:04.1", 14, "", "0x010802");
    /* no IOMMU group */
    add_dev("0000:05:00.0", -1, "e1000e", "0x020000");
}

static void cleanup(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", root);
}

TestSuite(vfio_container, .init = fake_host, .fini = cleanup);

Test(vfio_container, group_of_device)
{
    char err[512];
    int g = -1;
    cr_assert_eq(vfio_group_of(&hc, "0000:01:00.0", &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(g, 12);
    cr_assert_eq(vfio_group_of(&hc, "0000:09:00.0", &g, err, sizeof(err)), -ENODEV);
    cr_assert(strstr(err, "0000:09:00.0: no such PCI device"), "%s", err);
    cr_assert_eq(vfio_group_of(&hc, "0000:05:00.0", &g, err, sizeof(err)), -ENOENT);
    cr_assert(strstr(err, "no IOMMU group") && strstr(err, "intel_iommu=on"), "%s", err);
}

Test(vfio_container, usable_group_passes)
{
    char err[512] = "";
    cr_assert_eq(vfio_group_check(&hc, 12, "0000:01:00.0", err, sizeof(err)), 0, "%s", err);
}

Test(vfio_container, offenders_listed_with_the_fix)
{
    char err[2048] = "";
    cr_assert_eq(vfio_group_check(&hc, 13, "0000:02:00.0", err, sizeof(err)), -EBUSY);
    cr_assert(strstr(err, "IOMMU group 13"), "%s", err);
    cr_assert(strstr(err, "0000:02:00.0 (driver nvidia)"), "%s", err);
    cr_assert(strstr(err, "0000:02:00.1 (driver snd_hda_intel)"), "%s", err);
    cr_assert_null(strstr(err, "0000:00:03.0"), "the bridge is fine: %s", err);
    cr_assert(strstr(err, "minivmm host bind 0000:02:00.0 0000:02:00.1"), "%s", err);
    cr_assert(strstr(err, "echo vfio-pci > /sys/bus/pci/devices/0000:02:00.1/driver_override"), "%s", err);
    cr_assert(strstr(err, "echo 0000:02:00.0 > /sys/bus/pci/devices/0000:02:00.0/driver/unbind"), "%s", err);
    cr_assert(strstr(err, "echo 0000:02:00.1 > /sys/bus/pci/drivers_probe"), "%s", err);
    cr_assert(strstr(err, "--bind"), "%s", err);
}

Test(vfio_container, unbound_function_is_fine)
{
    char err[2048] = "";
    cr_assert_eq(vfio_group_check(&hc, 14, "0000:00:04.0", err, sizeof(err)), -EBUSY);
    cr_assert(strstr(err, "0000:00:04.0 (driver nvme) is not bound"), "%s", err);
    cr_assert_null(strstr(err, "0000:00:04.1"), "no driver is fine: %s", err);
}

Test(vfio_container, missing_group_directory)
{
    char err[512] = "";
    cr_assert_lt(vfio_group_check(&hc, 99, "0000:01:00.0", err, sizeof(err)), 0);
    cr_assert(strstr(err, "group 99"), "%s", err);
}

/* --- the DMA list (no group: nothing is sent to the kernel) */
static struct vfio_container c;

static void dma_setup(void)
{
    memset(&c, 0, sizeof(c));
    c.fd = -1;
    c.kvm_dev_fd = -1;
}

static bool has(uint64_t iova, uint64_t size, uintptr_t hva)
{
    for (unsigned i = 0; i < c.nr_dma; i++)
        if (c.dma[i].iova == iova && c.dma[i].size == size && (uintptr_t)c.dma[i].hva == hva)
            return true;
    return false;
}

Test(vfio_container, dma_map_gm_regions)
{
    dma_setup();
    struct gm gm = { 0 };
    cr_assert_eq(gm_layout(4ull << 30, gm.regions, &gm.nr_regions), 0);
    gm.regions[0].hva = (uint8_t *)0x7f0000000000;
    gm.regions[1].hva = (uint8_t *)0x7f0000000000 + gm.regions[0].size;
    cr_assert_eq(vfio_container_map_gm(&c, &gm), 0);
    cr_assert_eq(c.nr_dma, 2, "RAM below and above 4 GiB");
    cr_assert(has(0, gm.regions[0].size, 0x7f0000000000));
    cr_assert(has(1ull << 32, gm.regions[1].size, 0x7f0000000000 + gm.regions[0].size));
    free(c.dma);
}

Test(vfio_container, dma_unmap_splits_and_remaps)
{
    dma_setup();
    cr_assert_eq(vfio_container_dma_map(&c, 0, 0x100000000, (void *)0x10000000000), 0);
    cr_assert_eq(vfio_container_dma_map(&c, 0x80000000, 0x1000, (void *)0x1), -EEXIST, "overlap");
    /* a hole in the middle (e.g. a range the guest memory map gave away) */
    cr_assert_eq(vfio_container_dma_unmap(&c, 0xa0000, 0x60000), 0);
    cr_assert_eq(c.nr_dma, 2);
    cr_assert(has(0, 0xa0000, 0x10000000000));
    cr_assert(has(0x100000, 0x100000000 - 0x100000, 0x10000000000 + 0x100000), "hva follows iova");
    /* the hole comes back */
    cr_assert_eq(vfio_container_dma_map(&c, 0xa0000, 0x60000, (void *)(0x10000000000 + 0xa0000)), 0);
    cr_assert_eq(c.nr_dma, 3);
    /* a range across two mappings */
    cr_assert_eq(vfio_container_dma_unmap(&c, 0x90000, 0x20000), 0);
    cr_assert(has(0, 0x90000, 0x10000000000));
    cr_assert(has(0xb0000, 0x50000, 0x10000000000 + 0xb0000));
    cr_assert_eq(c.nr_dma, 3);
    /* everything */
    cr_assert_eq(vfio_container_dma_unmap(&c, 0, 1ull << 40), 0);
    cr_assert_eq(c.nr_dma, 0);
    cr_assert_eq(vfio_container_dma_map(&c, 0, 0, (void *)1), -EINVAL);
    cr_assert_eq(vfio_container_dma_map(&c, ~0ull - 10, 0x100, (void *)1), -EINVAL, "wraps");
    free(c.dma);
}
