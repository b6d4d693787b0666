/* q35 owns the machine's layout (devices/chipset/q35.h): PCI devices of
 * each kind land in their slot range in list order, root-port devices get
 * a port of their own reporting their link, a fixed device sits where it
 * asked, the boot order follows boot_index, full ranges and taken places
 * are refused naming the device, a failed plug undoes the others, the
 * 64-bit window is checked against the CPU's address bits. The devices
 * are real config-space functions, found by the guest's own config
 * cycles through 0xCF8/0xCFC. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/chipset/q35.h"
#include "devices/pci/pcidev.h"
#include "devices/pci/pci_root_port.h"
#include "fake_env.h"
#include "vmm/gm.h"

struct tdev {
    struct pci_device fn;
    unsigned plugs, unplugs, resets, destroys;
    int plug_err;
    bool has_link;
    unsigned speed, width;
    struct pcidev_where at;
};

static int tdev_plug(void *opaque, const struct pcidev_where *w)
{
    struct tdev *t = opaque;
    if (t->plug_err)
        return t->plug_err;
    t->plugs++;
    t->at = *w;
    return pci_bus_add(w->bus, w->parent, w->devfn, &t->fn);
}

static void tdev_unplug(void *opaque)
{
    struct tdev *t = opaque;
    t->unplugs++;
    pci_bus_remove(t->at.bus, &t->fn);
}

static int tdev_reset(void *opaque)
{
    ((struct tdev *)opaque)->resets++;
    return 0;
}

static void tdev_destroy(void *opaque)
{
    ((struct tdev *)opaque)->destroys++;
}

static int tdev_boot_path(void *opaque, const struct pcidev_where *w, char *buf, size_t len)
{
    int n = snprintf(buf, len, "/pci@i0cf8/t@%x", w->slot);
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static int tdev_link(void *opaque, unsigned *speed, unsigned *width)
{
    struct tdev *t = opaque;
    if (!t->has_link)
        return -ENOENT;
    *speed = t->speed;
    *width = t->width;
    return 0;
}

/* A controller with three drives (as an AHCI's ports): drive i boots at
 * multi_index[i]. */
static int multi_index[3];
static int tdev_boot_entry(void *opaque, const struct pcidev_where *w, unsigned i,
                           int *boot_index, char *buf, size_t len)
{
    (void)opaque;
    if (i >= 3)
        return -ENOENT;
    *boot_index = multi_index[i];
    int n = snprintf(buf, len, "/pci@i0cf8/m@%x/drive@%u", w->slot, i);
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct pcidev_ops tdev_multi_ops = {
    .plug = tdev_plug, .unplug = tdev_unplug, .boot_entry = tdev_boot_entry,
};

static const struct pcidev_ops tdev_ops = {
    .plug = tdev_plug, .unplug = tdev_unplug, .reset = tdev_reset, .destroy = tdev_destroy,
    .boot_path = tdev_boot_path, .link = tdev_link,
};

static struct fake_env f;
static struct gm g;
static struct pcidev_list list;
static struct tdev devs[PCIDEV_MAX];

static void setup(void)
{
    fake_env_init(&f);
    struct gm_config gc = { .size = 16u << 20, .lock = false };
    cr_assert_eq(gm_init(&g, &gc), 0);
    f.env.gm = &g;
    memset(&list, 0, sizeof(list));
    memset(devs, 0, sizeof(devs));
}

static void teardown(void)
{
    gm_fini(&g);
    fake_env_fini(&f);
}

TestSuite(q35_layout, .init = setup, .fini = teardown);

static struct pcidev *add(unsigned i, enum pcidev_kind kind, enum pcidev_place place)
{
    struct pcidev *d;
    char name[16];
    snprintf(name, sizeof(name), "t%u", i);
    pci_device_init(&devs[i].fn, "t", 0x1af4, (uint16_t)(0x1000 + i), 0x010000, 0,
                    PCI_HEADER_TYPE_NORMAL, PCI_CFG_SIZE);
    cr_assert_eq(pcidev_add(&list, name, kind, place, &tdev_ops, &devs[i], &d), 0);
    return d;
}

/* The vendor/device dword the guest reads at bus:dev.fn (all ones: none). */
static uint32_t id_at(unsigned bus, unsigned dev, unsigned fn)
{
    pio_out(&f, 0xCF8, 0x80000000u | bus << 16 | dev << 11 | fn << 8, 4);
    return pio_in(&f, 0xCFC, 4);
}

static void set_secondary(unsigned port_slot, unsigned bus)
{
    pio_out(&f, 0xCF8, 0x80000000u | port_slot << 11 | 0x18, 4);
    pio_out(&f, 0xCFC, bus << 16 | bus << 8, 4);
}

Test(q35_layout, each_kind_in_its_range)
{
    struct q35 *q;
    add(0, PCIDEV_PASSTHROUGH, PCIDEV_ROOT_PORT);
    add(1, PCIDEV_STORAGE, PCIDEV_ROOT_BUS);
    add(2, PCIDEV_NET, PCIDEV_ROOT_BUS);
    add(3, PCIDEV_STORAGE, PCIDEV_ROOT_BUS);
    add(4, PCIDEV_PASSTHROUGH, PCIDEV_ROOT_PORT);
    struct pcidev *ahci = add(5, PCIDEV_STORAGE, PCIDEV_FIXED);
    ahci->fixed_devfn = Q35_AHCI_DEVFN;
    add(6, PCIDEV_DISPLAY, PCIDEV_ROOT_BUS);
    add(7, PCIDEV_OTHER, PCIDEV_ROOT_BUS);
    struct q35_config c = { .nr_cpus = 1, .devs = &list };

    cr_assert_eq(q35_create(&f.env, &c, &q), 0);
    cr_assert_eq(id_at(0, 0x0A, 0), 0x10011af4u, "first disk at 00:0a.0");
    cr_assert_eq(id_at(0, 0x0B, 0), 0x10031af4u, "second disk at 00:0b.0");
    cr_assert_eq(id_at(0, 0x12, 0), 0x10021af4u, "the NIC at 00:12.0");
    cr_assert_eq(id_at(0, 0x1F, 2), 0x10051af4u, "the fixed one at 00:1f.2");
    cr_assert_eq(id_at(0, 0x01, 0), 0x10061af4u, "the display at 00:01.0");
    cr_assert_eq(id_at(0, 0x1A, 0), 0x10071af4u, "the other one at 00:1a.0");
    cr_assert_eq(id_at(0, 0x02, 0) & 0xFFFF, 0x1B36, "root port 0 at 00:02.0");
    cr_assert_eq(id_at(0, 0x03, 0) & 0xFFFF, 0x1B36, "root port 1 at 00:03.0");
    cr_assert_eq(id_at(0, 0x04, 0), 0xFFFFFFFFu, "no spare port");
    /* behind their ports, device 0, once the guest numbers the buses */
    set_secondary(0x02, 1);
    set_secondary(0x03, 2);
    cr_assert_eq(id_at(1, 0, 0), 0x10001af4u);
    cr_assert_eq(id_at(2, 0, 0), 0x10041af4u);
    cr_assert_eq(devs[0].at.slot, 0x02);
    cr_assert_not_null(devs[0].at.parent);
    cr_assert_null(devs[1].at.parent);
    /* INTx through q35's rule */
    cr_assert_eq(devs[1].at.intx_gsi(devs[1].at.intx_ctx, &devs[1].fn, 1), 20 + (0x0A + 0) % 4);
    for (unsigned i = 0; i < 8; i++) {
        cr_assert_eq(devs[i].plugs, 1, "t%u plugged once", i);
        cr_assert(list.dev[i].plugged);
    }
    q35_destroy(q);
    for (unsigned i = 0; i < 8; i++) {
        cr_assert_eq(devs[i].unplugs, 1, "t%u unplugged by q35_destroy", i);
        cr_assert_not(list.dev[i].plugged);
        cr_assert_eq(devs[i].destroys, 0, "the list, not q35, destroys devices");
    }
    cr_assert_eq(f.pio.nr, 0);
    cr_assert_eq(f.mmio.nr, 0);
    pcidev_list_destroy(&list);
    for (unsigned i = 0; i < 8; i++)
        cr_assert_eq(devs[i].destroys, 1);
}

/* The fw_cfg bootorder: boot paths by boot_index, devices without one left
 * out; none at all: no bootorder. */
Test(q35_layout, bootorder_by_index)
{
    struct q35 *q;
    add(0, PCIDEV_STORAGE, PCIDEV_ROOT_BUS)->boot_index = 1;
    add(1, PCIDEV_STORAGE, PCIDEV_ROOT_BUS)->boot_index = 0;
    add(2, PCIDEV_STORAGE, PCIDEV_ROOT_BUS);   /* not bootable */
    add(3, PCIDEV_STORAGE, PCIDEV_ROOT_BUS)->boot_index = 1;
    struct q35_config c = { .nr_cpus = 1, .devs = &list };

    cr_assert_eq(q35_create(&f.env, &c, &q), 0);
    cr_assert_str_eq(q35_bootorder(q), "/pci@i0cf8/t@b\n/pci@i0cf8/t@a\n/pci@i0cf8/t@d\n");
    q35_destroy(q);

    struct q35_config none = { .nr_cpus = 1 };
    cr_assert_eq(q35_create(&f.env, &none, &q), 0);
    cr_assert_null(q35_bootorder(q));
    q35_destroy(q);
}

/* A device with several drives has a boot entry per drive, merged into
 * the order with the single-path devices by boot index. */
Test(q35_layout, bootorder_with_several_drives_per_device)
{
    struct q35 *q;
    struct pcidev *d;
    add(0, PCIDEV_STORAGE, PCIDEV_ROOT_BUS)->boot_index = 1;
    pci_device_init(&devs[1].fn, "m", 0x8086, 0x2922, 0x010601, 0, PCI_HEADER_TYPE_NORMAL,
                    PCI_CFG_LEGACY_SIZE);
    cr_assert_eq(pcidev_add(&list, "m", PCIDEV_STORAGE, PCIDEV_FIXED, &tdev_multi_ops, &devs[1],
                            &d), 0);
    d->fixed_devfn = Q35_AHCI_DEVFN;
    multi_index[0] = 2;
    multi_index[1] = PCIDEV_NO_BOOT;
    multi_index[2] = 0;
    struct q35_config c = { .nr_cpus = 1, .devs = &list };

    cr_assert_eq(q35_create(&f.env, &c, &q), 0);
    cr_assert_str_eq(q35_bootorder(q), "/pci@i0cf8/m@1f/drive@2\n/pci@i0cf8/t@a\n"
                     "/pci@i0cf8/m@1f/drive@0\n");
    q35_destroy(q);
}

/* Each root-port device's port reports its link (clamped to what a port
 * can say), the defaults without one. */
Test(q35_layout, root_port_reports_the_device_link)
{
    struct q35 *q;
    add(0, PCIDEV_PASSTHROUGH, PCIDEV_ROOT_PORT);
    devs[0].has_link = true;
    devs[0].speed = 6;      /* 64 GT/s: more than the port says */
    devs[0].width = 12;     /* not a port width: the next below */
    add(1, PCIDEV_PASSTHROUGH, PCIDEV_ROOT_PORT);
    struct q35_config c = { .nr_cpus = 1, .devs = &list, .nr_root_ports = 1 };

    cr_assert_eq(q35_create(&f.env, &c, &q), 0);
    uint32_t off = PCI_ROOT_PORT_EXP_CAP + PCI_EXP_LNKCAP;
    pio_out(&f, 0xCF8, 0x80000000u | 2u << 11 | off, 4);
    uint32_t cap = pio_in(&f, 0xCFC, 4);
    cr_assert_eq(cap & 0xF, PCI_LINK_16GT);
    cr_assert_eq((cap >> 4) & 0x3F, 8);
    pio_out(&f, 0xCF8, 0x80000000u | 3u << 11 | off, 4);
    cap = pio_in(&f, 0xCFC, 4);
    cr_assert_eq(cap & 0xF, PCI_LINK_2_5GT);
    cr_assert_eq((cap >> 4) & 0x3F, 1);
    cr_assert_not_null(q35_root_port(q, 2), "the spare port comes after the devices' own");
    cr_assert_null(q35_root_port(q, 3));
    q35_destroy(q);
}

Test(q35_layout, full_range_refused)
{
    struct q35 *q = NULL;
    for (unsigned i = 0; i < 9; i++)
        add(i, PCIDEV_STORAGE, PCIDEV_ROOT_BUS);
    struct q35_config c = { .nr_cpus = 1, .devs = &list };
    cr_assert_eq(q35_create(&f.env, &c, &q), -E2BIG);
    for (unsigned i = 0; i < 9; i++)
        cr_assert_eq(devs[i].plugs, 0, "refused before anything was plugged");
    cr_assert_eq(f.pio.nr, 0);
    cr_assert_eq(f.mmio.nr, 0);
}

Test(q35_layout, too_many_root_port_devices)
{
    struct q35 *q = NULL;
    for (unsigned i = 0; i < Q35_MAX_ROOT_PORTS + 1; i++)
        add(i, PCIDEV_PASSTHROUGH, PCIDEV_ROOT_PORT);
    struct q35_config c = { .nr_cpus = 1, .devs = &list };
    cr_assert_eq(q35_create(&f.env, &c, &q), -E2BIG);
    /* eight fit, but not with a spare one */
    list.nr = Q35_MAX_ROOT_PORTS;
    c.nr_root_ports = 1;
    cr_assert_eq(q35_create(&f.env, &c, &q), -E2BIG);
    c.nr_root_ports = 0;
    cr_assert_eq(q35_create(&f.env, &c, &q), 0);
    q35_destroy(q);
}

Test(q35_layout, fixed_place_taken_or_not_fixed)
{
    struct q35 *q = NULL;
    struct pcidev *a = add(0, PCIDEV_STORAGE, PCIDEV_FIXED);
    a->fixed_devfn = Q35_LPC_DEVFN;
    struct q35_config c = { .nr_cpus = 1, .devs = &list };
    cr_assert_eq(q35_create(&f.env, &c, &q), -EEXIST, "the LPC's place");
    a->fixed_devfn = PCI_DEVFN(0x0A, 0);
    cr_assert_eq(q35_create(&f.env, &c, &q), -EEXIST, "inside a kind's range");
    a->fixed_devfn = Q35_AHCI_DEVFN;
    struct pcidev *b = add(1, PCIDEV_STORAGE, PCIDEV_FIXED);
    b->fixed_devfn = Q35_AHCI_DEVFN;
    cr_assert_eq(q35_create(&f.env, &c, &q), -EEXIST, "two on one place");
    cr_assert_eq(devs[0].plugs + devs[1].plugs, 0);
}

/* A device that fails to plug fails q35_create; the ones plugged before it
 * are unplugged, and nothing stays on the buses. */
Test(q35_layout, failed_plug_undoes_the_others)
{
    struct q35 *q = NULL;
    add(0, PCIDEV_STORAGE, PCIDEV_ROOT_BUS);
    add(1, PCIDEV_NET, PCIDEV_ROOT_BUS);
    add(2, PCIDEV_NET, PCIDEV_ROOT_BUS);
    devs[1].plug_err = -EIO;
    struct q35_config c = { .nr_cpus = 1, .devs = &list };
    cr_assert_eq(q35_create(&f.env, &c, &q), -EIO);
    cr_assert_eq(devs[0].plugs, 1);
    cr_assert_eq(devs[0].unplugs, 1);
    cr_assert_eq(devs[1].unplugs, 0, "never plugged");
    cr_assert_eq(devs[2].plugs, 0);
    cr_assert_eq(f.pio.nr, 0);
    cr_assert_eq(f.mmio.nr, 0);
}

/* The window must end below 2^bits (bits from CPUID 0x80000008). */
Test(q35_layout, mmio64_window_checked)
{
    struct q35 *q = NULL;
    uint32_t ids[1] = { 0 };
    struct acpi_config ac = { .nr_cpus = 1, .apic_ids = ids };
    ac.pci_mmio64_size = 32ULL << 30;
    ac.pci_mmio64_base = q35_pci_mmio64_base(&g, ac.pci_mmio64_size);
    cr_assert_eq(ac.pci_mmio64_base, 32ULL << 30, "the first multiple of 32G above 4G");
    struct q35_config c = { .nr_cpus = 1, .acpi = &ac, .phys_addr_bits = 35 };
    cr_assert_eq(q35_create(&f.env, &c, &q), -ERANGE, "32G..64G does not fit in 32 GiB");
    c.phys_addr_bits = 36;
    cr_assert_eq(q35_create(&f.env, &c, &q), 0, "it ends exactly at 64 GiB");
    q35_destroy(q);
    c.phys_addr_bits = 0;
    ac.pci_mmio64_size = 1ULL << 40;
    ac.pci_mmio64_base = q35_pci_mmio64_base(&g, ac.pci_mmio64_size);
    cr_assert_eq(q35_create(&f.env, &c, &q), 0, "not checked without the CPU's width");
    q35_destroy(q);
}

/* The list's own walks: reset hooks in order, unplug of the plugged only,
 * destroy in reverse. */
Test(q35_layout, list_reset_and_destroy)
{
    add(0, PCIDEV_STORAGE, PCIDEV_ROOT_BUS);
    add(1, PCIDEV_NET, PCIDEV_ROOT_BUS);
    cr_assert_eq(pcidev_list_reset(&list), 0);
    cr_assert_eq(devs[0].resets, 1);
    cr_assert_eq(devs[1].resets, 1);
    pcidev_list_unplug(&list);
    cr_assert_eq(devs[0].unplugs, 0, "not plugged: not unplugged");
    pcidev_list_destroy(&list);
    cr_assert_eq(devs[0].destroys, 1);
    cr_assert_eq(list.nr, 0);
    struct pcidev_ops no_unplug = { .plug = tdev_plug };
    cr_assert_eq(pcidev_add(&list, "bad", PCIDEV_OTHER, PCIDEV_ROOT_BUS, &no_unplug, NULL, NULL),
                 -EINVAL);
    for (unsigned i = 0; i < PCIDEV_MAX; i++)
        cr_assert_eq(pcidev_add(&list, "n", PCIDEV_OTHER, PCIDEV_ROOT_BUS, &tdev_ops, &devs[0],
                                NULL), 0);
    cr_assert_eq(pcidev_add(&list, "one too many", PCIDEV_OTHER, PCIDEV_ROOT_BUS, &tdev_ops,
                            &devs[0], NULL), -E2BIG);
    list.nr = 0;
}
