/* devices/virtio/virtio_pci.c: the modern virtio-pci transport on a real PCI bus
 * model, MMIO bus and guest memory (no KVM: irq table with vm_fd -1, so
 * notifications take the MMIO path and MSI-X vectors are seen as their
 * eventfds). Capability chain and BAR layout, common configuration, feature
 * negotiation, the status machine with start/reset, ISR and INTx, MSI-X,
 * the PCI cfg access capability, PCIe endpoint behind a root port. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#define VIRTIO_PCI_NO_LEGACY
#include <linux/virtio_pci.h>

#include "devices/pci/pci.h"
#include "devices/pci/pci_root_port.h"
#include "devices/virtio/virtio_pci.h"
#include "fake_env.h"
#include "virtio_driver.h"
#include "vmm/gm.h"
#include "vmm/irq.h"

#define BAR_ADDR 0xE0000000ULL
#define DEVFN PCI_DEVFN(4, 0)
#define NQ 3
#define DEV_FEATURE_BIT 5
#define INTX_GSI 21

static struct fake_env fe;
static struct gm gm;
static struct irq_table irq;
static struct pci_bus pb;
static struct virtio_pci vp;
static struct vdrv drv;

struct dummy {
    unsigned starts, stops;
    uint64_t features;
    int start_ret;
    uint8_t cfg[8];
};
static struct dummy dummy;

static void dummy_cfg_read(void *o, uint32_t off, void *data, unsigned len)
{
    struct dummy *d = o;
    memcpy(data, d->cfg + off, len);
}

static void dummy_cfg_write(void *o, uint32_t off, const void *data, unsigned len)
{
    (void)o;
    (void)off;
    (void)data;
    (void)len;   /* read-only configuration */
}

static int dummy_start(void *o, uint64_t features)
{
    struct dummy *d = o;
    d->starts++;
    d->features = features;
    return d->start_ret;
}

static void dummy_stop(void *o)
{
    struct dummy *d = o;
    d->stops++;
}

static const struct virtio_device_ops dummy_ops = {
    .cfg_read = dummy_cfg_read, .cfg_write = dummy_cfg_write,
    .start = dummy_start, .stop = dummy_stop,
};

static int intx_rule(void *ctx, const struct pci_device *d, uint8_t pin)
{
    (void)ctx;
    (void)d;
    return pin == 1 ? INTX_GSI : -EINVAL;
}

static void vp_make(void)
{
    fake_env_init(&fe);
    struct gm_config gc = { .size = 2ULL << 20, .lock = false };
    cr_assert_eq(gm_init(&gm, &gc), 0);
    fe.env.gm = &gm;
    cr_assert_eq(irq_table_init(&irq, -1, 0), 0);
    cr_assert_eq(pci_bus_init(&pb, &fe.pio, &fe.mmio), 0);
    memset(&dummy, 0, sizeof(dummy));
    for (unsigned i = 0; i < sizeof(dummy.cfg); i++)
        dummy.cfg[i] = (uint8_t)(0x10 + i);
    struct virtio_pci_vm vm = { .env = &fe.env, .irq = &irq, .vm_fd = -1 };
    struct virtio_pci_config c = {
        .name = "virtio-test", .device_type = VIRTIO_ID_BLOCK, .class_code = 0x010000,
        .features = 1ULL << DEV_FEATURE_BIT, .nr_queues = NQ, .queue_max_size = 64,
        .cfg_size = sizeof(dummy.cfg), .ops = &dummy_ops, .opaque = &dummy,
    };
    cr_assert_eq(virtio_pci_init(&vp, &vm, &c), 0);
    drv = (struct vdrv){ .mmio = &fe.mmio, .gm = &gm, .pb = &pb, .devfn = DEVFN,
                         .bar = BAR_ADDR, .qsz = 64, .ring_base = 0x1000 };
}

static void vp_setup(void)
{
    vp_make();
    cr_assert_eq(virtio_pci_plug(&vp, &pb, NULL, DEVFN, intx_rule, NULL), 0);
}

static void vp_teardown(void)
{
    virtio_pci_fini(&vp);
    pci_bus_fini(&pb);
    irq_table_fini(&irq);
    gm_fini(&gm);
    fake_env_fini(&fe);
}

TestSuite(virtio_pci, .init = vp_setup, .fini = vp_teardown);

static uint32_t cfg_rd(uint32_t off, unsigned len)
{
    uint32_t v;
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, off, len, &v), 0);
    return v;
}

static void cfg_wr(uint32_t off, unsigned len, uint32_t v)
{
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, off, len, v), 0);
}

static void map_bar(void)
{
    vdrv_map_bar(&drv);
    cr_assert_not_null(bus_find(&fe.mmio, BAR_ADDR, 4), "BAR0 decodes");
}

/* §3.1.1 up to FEATURES_OK with the given features; returns the status. */
static uint8_t negotiate(uint64_t f)
{
    vdrv_set_status(&drv, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    vdrv_set_status(&drv, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    vdrv_write_features(&drv, f);
    vdrv_set_status(&drv, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    return vdrv_status(&drv);
}

static uint64_t efd_count(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v = 0;
    if (poll(&p, 1, 0) == 1 && read(fd, &v, sizeof(v)) != sizeof(v))
        v = 0;
    return v;
}

#define GOOD_FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << DEV_FEATURE_BIT) | \
                       (1ULL << VIRTIO_RING_F_EVENT_IDX))

Test(virtio_pci, ids_and_header)
{
    cr_assert_eq(cfg_rd(PCI_VENDOR_ID, 2), 0x1AF4);
    cr_assert_eq(cfg_rd(PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_BLOCK);
    cr_assert_eq(cfg_rd(PCI_REVISION_ID, 1), 1, "modern-only devices have revision >= 1");
    cr_assert_eq(cfg_rd(PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1AF4);
    cr_assert_geq(cfg_rd(PCI_SUBSYSTEM_ID, 2), 0x40, "§4.1.2.1: subsystem ID 0x40 or higher");
    cr_assert_eq(cfg_rd(PCI_REVISION_ID, 4) >> 8, 0x010000);
    cr_assert_eq(cfg_rd(PCI_INTERRUPT_PIN, 1), 1);
    cr_assert_eq(cfg_rd(PCI_INTERRUPT_LINE, 1), INTX_GSI);
    cr_assert(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
}

Test(virtio_pci, bar0_is_64bit_memory_of_32k)
{
    cr_assert_eq(cfg_rd(PCI_BAR0, 4) & 0xF, 0x4, "64-bit, memory, not prefetchable");
    cfg_wr(PCI_BAR0, 4, 0xFFFFFFFF);
    cfg_wr(PCI_BAR0 + 4, 4, 0xFFFFFFFF);
    uint64_t v = (cfg_rd(PCI_BAR0, 4) & ~0xFULL) | (uint64_t)cfg_rd(PCI_BAR0 + 4, 4) << 32;
    cr_assert_eq(~v + 1, VIRTIO_PCI_BAR_SIZE);
    for (unsigned b = 2; b < 6; b++)
        cr_assert_eq(cfg_rd(PCI_BAR0 + 4 * b, 4), 0, "only BAR0/1");
}

struct cap_expect {
    uint8_t at, id, type;
    uint32_t offset, length;
};

Test(virtio_pci, capability_chain_layout)
{
    const struct cap_expect want[] = {
        { 0x40, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_COMMON_CFG, 0x0000, 0x38 },
        { 0x50, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_NOTIFY_CFG, 0x3000, 4 * NQ },
        { 0x64, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_ISR_CFG, 0x1000, 1 },
        { 0x74, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_DEVICE_CFG, 0x2000, 8 },
        { 0x84, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG, 0, 0 },
        { 0x98, PCI_CAP_ID_MSIX, 0, 0, 0 },
    };
    uint8_t at = (uint8_t)cfg_rd(PCI_CAPABILITY_LIST, 1);
    for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cr_assert_eq(at, want[i].at, "capability %u at 0x%x, expected 0x%x", i, at, want[i].at);
        cr_assert_eq(cfg_rd(at, 1), want[i].id);
        if (want[i].id == PCI_CAP_ID_VNDR) {
            cr_assert_eq(cfg_rd(at + VIRTIO_PCI_CAP_CFG_TYPE, 1), want[i].type);
            cr_assert_eq(cfg_rd(at + VIRTIO_PCI_CAP_BAR, 1), 0);
            cr_assert_geq(cfg_rd(at + VIRTIO_PCI_CAP_LEN, 1), 16);
            if (want[i].type != VIRTIO_PCI_CAP_PCI_CFG) {
                cr_assert_eq(cfg_rd(at + VIRTIO_PCI_CAP_OFFSET, 4), want[i].offset);
                cr_assert_eq(cfg_rd(at + VIRTIO_PCI_CAP_LENGTH, 4), want[i].length);
            }
        }
        at = (uint8_t)cfg_rd(at + 1, 1);
    }
    cr_assert_eq(at, 0, "the list ends after MSI-X (no PCIe cap on the root bus)");
    cr_assert_eq(cfg_rd(0x50 + VIRTIO_PCI_CAP_LEN, 1), 20);
    cr_assert_eq(cfg_rd(0x50 + VIRTIO_PCI_NOTIFY_CAP_MULT, 4), 4);
    /* §4.1.4.4.1: offsets aligned, regions inside the BAR */
    cr_assert_eq(cfg_rd(0x98 + 2, 2) & 0x7FF, NQ, "table size N-1 = queues + config - 1");
    cr_assert_eq(cfg_rd(0x98 + 4, 4), 0x4000, "table at 0x4000 in BAR0");
    cr_assert_eq(cfg_rd(0x98 + 8, 4), 0x5000, "PBA at 0x5000 in BAR0");
}

Test(virtio_pci, capabilities_are_read_only)
{
    cfg_wr(0x40 + VIRTIO_PCI_CAP_OFFSET, 4, 0x1234);
    cr_assert_eq(cfg_rd(0x40 + VIRTIO_PCI_CAP_OFFSET, 4), 0);
    cfg_wr(0x98 + 2, 2, 0x07FF);
    cr_assert_eq(cfg_rd(0x98 + 2, 2) & 0x7FF, NQ);
}

Test(virtio_pci, device_features_offered)
{
    map_bar();
    uint64_t f = vdrv_device_features(&drv);
    cr_assert(f & (1ULL << VIRTIO_F_VERSION_1));
    cr_assert(f & (1ULL << DEV_FEATURE_BIT));
    cr_assert(f & (1ULL << VIRTIO_RING_F_INDIRECT_DESC));
    cr_assert(f & (1ULL << VIRTIO_RING_F_EVENT_IDX));
    cr_assert_not(f & (1ULL << VIRTIO_F_ACCESS_PLATFORM));
    cr_assert_not(f & (1ULL << VIRTIO_F_RING_PACKED));
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_DFSELECT, 4, 7);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_DF, 4), 0, "selector past 1 reads 0");
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_NUMQ, 2), NQ);
}

Test(virtio_pci, features_ok_accepted_for_a_subset)
{
    map_bar();
    cr_assert(negotiate(GOOD_FEATURES) & VIRTIO_CONFIG_S_FEATURES_OK);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)GOOD_FEATURES);
    /* After FEATURES_OK the driver's features are fixed. */
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_GF, 4, 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)GOOD_FEATURES);
}

Test(virtio_pci, features_ok_refused_for_unknown_bits)
{
    map_bar();
    uint8_t s = negotiate(GOOD_FEATURES | (1ULL << 40));
    cr_assert_not(s & VIRTIO_CONFIG_S_FEATURES_OK);
    cr_assert(s & VIRTIO_CONFIG_S_DRIVER, "the other bits stay");
    /* DRIVER_OK without FEATURES_OK does not start the device. */
    vdrv_set_status(&drv, s | VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert_eq(dummy.starts, 0);
    cr_assert_not(vdrv_status(&drv) & VIRTIO_CONFIG_S_DRIVER_OK);
}

Test(virtio_pci, features_ok_refused_without_version_1)
{
    map_bar();
    cr_assert_not(negotiate(1ULL << DEV_FEATURE_BIT) & VIRTIO_CONFIG_S_FEATURES_OK);
}

Test(virtio_pci, features_ok_refused_for_access_platform)
{
    map_bar();
    cr_assert_not(negotiate(GOOD_FEATURES | (1ULL << VIRTIO_F_ACCESS_PLATFORM)) &
                  VIRTIO_CONFIG_S_FEATURES_OK);
}

Test(virtio_pci, queue_registers)
{
    map_bar();
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64, "starts at the maximum");
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_NOFF, 2), 2, "notify offset = queue index");
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_SIZE, 2), 16);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_MSIX, 2, 3);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_MSIX, 2), 3, "vector 3 of 4 exists");
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_MSIX, 2, 4);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR, "no vector 4");
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_MSIX, 2, 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_MSIX, 2), 0);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0x2);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0x200001000ULL);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_AVAILLO, 8, 0x300002000ULL);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_AVAILHI, 4), 0x3, "an 8-byte write sets both halves");
    /* Enabled: size and addresses are frozen. */
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_SIZE, 2, 8);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x5000);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_SIZE, 2), 16);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0x1000);
    /* The other queues are untouched. */
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
}

Test(virtio_pci, unavailable_queue_reads_zero)
{
    map_bar();
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_SELECT, 2, NQ);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0, "§4.1.4.3.1: size 0 = unavailable");
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0xFFFF);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
}

Test(virtio_pci, driver_ok_starts_enabled_queues)
{
    map_bar();
    cr_assert(negotiate(GOOD_FEATURES) & VIRTIO_CONFIG_S_FEATURES_OK);
    vdrv_setup_queue(&drv, 1, 16, 0x1000, 0x2000, 0x3000);
    cr_assert_eq(dummy.starts, 0);
    vdrv_set_status(&drv, vdrv_status(&drv) | VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert_eq(dummy.starts, 1);
    cr_assert_eq(dummy.features, GOOD_FEATURES);
    cr_assert(vdrv_status(&drv) & VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert_not(vdrv_status(&drv) & VIRTIO_CONFIG_S_NEEDS_RESET);
    struct virtq *q = virtio_pci_queue(&vp, 1);
    cr_assert_not_null(q);
    cr_assert_eq(q->size, 16);
    cr_assert(q->event_idx);
    cr_assert_not(q->indirect, "not negotiated");
    cr_assert_null(virtio_pci_queue(&vp, 0), "queue 0 was not enabled");
    cr_assert_null(virtio_pci_queue(&vp, NQ));
    /* Writing DRIVER_OK again does not start twice. */
    vdrv_set_status(&drv, vdrv_status(&drv));
    cr_assert_eq(dummy.starts, 1);
}

Test(virtio_pci, driver_ok_with_bad_rings_needs_reset)
{
    map_bar();
    negotiate(GOOD_FEATURES);
    vdrv_setup_queue(&drv, 0, 16, 0x10000000, 0x2000, 0x3000);   /* descriptors outside RAM */
    vdrv_set_status(&drv, vdrv_status(&drv) | VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert_eq(dummy.starts, 0);
    cr_assert(vdrv_status(&drv) & VIRTIO_CONFIG_S_NEEDS_RESET);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 1, "configuration interrupt by INTx");
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_CONFIG);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 0);
}

Test(virtio_pci, driver_ok_with_bad_queue_size_needs_reset)
{
    map_bar();
    negotiate(GOOD_FEATURES);
    vdrv_setup_queue(&drv, 0, 12, 0x1000, 0x2000, 0x3000);
    vdrv_set_status(&drv, vdrv_status(&drv) | VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert_eq(dummy.starts, 0);
    cr_assert(vdrv_status(&drv) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

Test(virtio_pci, device_start_failure_needs_reset)
{
    map_bar();
    dummy.start_ret = -EIO;
    negotiate(GOOD_FEATURES);
    vdrv_setup_queue(&drv, 0, 16, 0x1000, 0x2000, 0x3000);
    vdrv_set_status(&drv, vdrv_status(&drv) | VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert_eq(dummy.starts, 1);
    cr_assert(vdrv_status(&drv) & VIRTIO_CONFIG_S_NEEDS_RESET);
    vdrv_set_status(&drv, 0);
    cr_assert_eq(dummy.stops, 0, "never started: nothing to stop");
}

Test(virtio_pci, reset_clears_queues_and_features)
{
    map_bar();
    negotiate(GOOD_FEATURES);
    vdrv_setup_queue(&drv, 0, 16, 0x1000, 0x2000, 0x3000);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_MSIX, 2, 0);
    vdrv_set_status(&drv, vdrv_status(&drv) | VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert_eq(dummy.starts, 1);

    vdrv_set_status(&drv, 0);
    cr_assert_eq(dummy.stops, 1);
    cr_assert_eq(vdrv_status(&drv), 0, "reads 0 once the reset is done (§4.1.4.3.2)");
    cr_assert_null(virtio_pci_queue(&vp, 0));
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_AVAILLO, 8), 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_USEDLO, 8), 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_GF, 4), 0);
    /* And the device can be brought up again. */
    negotiate(GOOD_FEATURES);
    vdrv_setup_queue(&drv, 0, 32, 0x1000, 0x2000, 0x3000);
    vdrv_set_status(&drv, vdrv_status(&drv) | VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert_eq(dummy.starts, 2);
    cr_assert_eq(virtio_pci_queue(&vp, 0)->size, 32);
}

Test(virtio_pci, needs_reset_is_sticky_until_reset)
{
    map_bar();
    negotiate(GOOD_FEATURES);
    virtio_pci_set_needs_reset(&vp);
    cr_assert(vdrv_status(&drv) & VIRTIO_CONFIG_S_NEEDS_RESET);
    vdrv_set_status(&drv, vdrv_status(&drv) | VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert(vdrv_status(&drv) & VIRTIO_CONFIG_S_NEEDS_RESET, "driver writes keep the device's bit");
    cr_assert_eq(dummy.starts, 0, "a device needing reset does not start");
    vdrv_set_status(&drv, 0);
    cr_assert_eq(vdrv_status(&drv), 0);
}

Test(virtio_pci, isr_and_intx)
{
    map_bar();
    virtio_pci_queue_interrupt(&vp, 0);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 1);
    virtio_pci_queue_interrupt(&vp, 1);
    cr_assert_eq(fe.raises[INTX_GSI], 1, "already high");
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_ISR_OFF, 1), 1, "queue interrupt bit");
    cr_assert_eq(fake_level(&fe, INTX_GSI), 0, "reading ISR lowers the line");
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_ISR_OFF, 1), 0, "read clears");
    vdrv_bar_wr(&drv, VIRTIO_PCI_ISR_OFF, 1, 0xFF);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_ISR_OFF, 1), 0, "writes are ignored");
    virtio_pci_config_interrupt(&vp);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_ISR_OFF, 4), VIRTIO_PCI_ISR_CONFIG);
    /* INTx Disable holds the line low; the ISR still says why. */
    cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
    virtio_pci_queue_interrupt(&vp, 0);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 0);
    cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 1, "pending interrupt shows once enabled");
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_ISR_OFF, 1), 1);
    cr_assert_eq(fe.bad_calls, 0);
}

static void msix_entry(unsigned v, uint64_t addr, uint32_t data, bool masked)
{
    uint64_t e = VIRTIO_PCI_MSIX_TABLE_OFF + 16ULL * v;
    vdrv_bar_wr(&drv, e, 4, (uint32_t)addr);
    vdrv_bar_wr(&drv, e + 4, 4, (uint32_t)(addr >> 32));
    vdrv_bar_wr(&drv, e + 8, 4, data);
    vdrv_bar_wr(&drv, e + 12, 4, masked);
}

Test(virtio_pci, msix_vectors_signal_eventfds)
{
    map_bar();
    cfg_wr(0x98 + 2, 2, 0x8000);   /* MSI-X enable */
    msix_entry(1, 0xFEE00000, 0x4041, false);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_MSIX_TABLE_OFF + 16 + 8, 4), 0x4041);
    cr_assert(vp.vec_gsi[1] >= IRQ_FIRST_MSI_GSI, "an MSI route for the unmasked vector");
    cr_assert(vp.vec_attached[1]);
    cr_assert_lt(vp.vec_gsi[0], 0, "masked vectors get no route");

    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    virtio_pci_queue_interrupt(&vp, 2);
    cr_assert_eq(efd_count(virtio_pci_vector_fd(&vp, 1)), 1);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 0, "no INTx with MSI-X on");
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_ISR_OFF, 1), 0, "no ISR bit for queue interrupts with MSI-X");

    /* A queue without a vector raises nothing. */
    virtio_pci_queue_interrupt(&vp, 0);
    for (unsigned v = 0; v < NQ + 1; v++)
        cr_assert_eq(efd_count(virtio_pci_vector_fd(&vp, v)), 0);

    /* Masked: the interrupt waits in the eventfd and shows in the PBA. */
    msix_entry(1, 0xFEE00000, 0x4041, true);
    cr_assert_not(vp.vec_attached[1]);
    virtio_pci_queue_interrupt(&vp, 2);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_MSIX_PBA_OFF, 8), 1u << 1);
    msix_entry(1, 0xFEE00000, 0x4041, false);
    cr_assert(vp.vec_attached[1], "unmasked: the irqfd (and KVM) takes what was pending");

    /* Config vector. */
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_MSIX, 2, 1);
    efd_count(virtio_pci_vector_fd(&vp, 1));
    virtio_pci_config_interrupt(&vp);
    cr_assert_eq(efd_count(virtio_pci_vector_fd(&vp, 1)), 1);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_CONFIG,
                 "§4.1.4.5.1: the config bit is set with MSI-X too");

    /* MSI-X off: the vector is unrouted and INTx is back. */
    cfg_wr(0x98 + 2, 2, 0);
    cr_assert_not(vp.vec_attached[1]);
    virtio_pci_queue_interrupt(&vp, 2);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 1);
}

Test(virtio_pci, notify_region_kicks_queue_eventfd)
{
    map_bar();
    vdrv_bar_wr(&drv, VIRTIO_PCI_NOTIFY_OFF + 4 * 2, 2, 2);
    cr_assert_eq(efd_count(virtio_pci_kick_fd(&vp, 2)), 1);
    cr_assert_eq(efd_count(virtio_pci_kick_fd(&vp, 0)), 0);
    vdrv_bar_wr(&drv, VIRTIO_PCI_NOTIFY_OFF + 4 * NQ, 2, NQ);   /* no such queue: ignored */
    for (unsigned q = 0; q < NQ; q++)
        cr_assert_eq(efd_count(virtio_pci_kick_fd(&vp, q)), 0);
}

Test(virtio_pci, device_config_window)
{
    map_bar();
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_DEVCFG_OFF, 4), 0x13121110);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_DEVCFG_OFF + 4, 2), 0x1514);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_DEVCFG_OFF + 6, 4), 0, "past the device's 8 bytes: 0");
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_DEVCFG_OFF + 0x100, 4), 0);
}

Test(virtio_pci, pci_cfg_access_capability)
{
    const uint32_t cap = 0x84;
    /* No BAR mapping needed: the window reaches BAR0 through config space. */
    cfg_wr(cap + VIRTIO_PCI_CAP_BAR, 1, 0);
    cfg_wr(cap + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_NUMQ);
    cfg_wr(cap + VIRTIO_PCI_CAP_LENGTH, 4, 2);
    cr_assert_eq(cfg_rd(cap + 16, 4) & 0xFFFF, NQ);
    cfg_wr(cap + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_Q_SELECT);
    cfg_wr(cap + 16, 2, 2);
    cfg_wr(cap + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_Q_NOFF);
    cr_assert_eq(cfg_rd(cap + 16, 2), 2, "queue_select was written through the window");
    /* A window into another BAR or of length 3 selects nothing. */
    cfg_wr(cap + VIRTIO_PCI_CAP_BAR, 1, 2);
    cr_assert_eq(cfg_rd(cap + 16, 4), 0);
    cfg_wr(cap + VIRTIO_PCI_CAP_BAR, 1, 0);
    cfg_wr(cap + VIRTIO_PCI_CAP_LENGTH, 4, 3);
    cr_assert_eq(cfg_rd(cap + 16, 4), 0);
}

Test(virtio_pci, bar_moves_with_the_guest)
{
    map_bar();
    cfg_wr(PCI_BAR0, 4, 0xD0000000);
    cr_assert_null(bus_find(&fe.mmio, BAR_ADDR, 4));
    cr_assert_not_null(bus_find(&fe.mmio, 0xD0000000, 4));
    cfg_wr(PCI_COMMAND, 2, 0);
    cr_assert_null(bus_find(&fe.mmio, 0xD0000000, 4), "memory decoding off");
}

Test(virtio_pci, odd_accesses_refused_or_harmless)
{
    map_bar();
    uint8_t b[8] = { 0 };
    /* A read straddling the end of BAR0 is not ours. */
    cr_assert_neq(bus_read(&fe.mmio, BAR_ADDR + VIRTIO_PCI_BAR_SIZE - 2, b, 4), 0);
    cr_assert_eq(virtio_pci_bar_read(&vp, VIRTIO_PCI_BAR_SIZE - 2, b, 4), -EINVAL);
    cr_assert_eq(virtio_pci_bar_write(&vp, 0, b, 0), -EINVAL);
    /* Holes read 0 and ignore writes. */
    cr_assert_eq(vdrv_bar_rd(&drv, 0x0800, 4), 0);
    vdrv_bar_wr(&drv, 0x0800, 4, 0xFFFFFFFF);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_MSIX_PBA_OFF + 0x100, 4), 0);
}

Test(virtio_pci_port, endpoint_behind_root_port)
{
    struct pci_root_port rp;
    struct pci_root_port_config c = { .port_nr = 1, .slot_nr = 1 };
    vp_make();
    cr_assert_eq(pci_root_port_init(&rp, &c), 0);
    cr_assert_eq(pci_bus_add(&pb, NULL, PCI_DEVFN(2, 0), &rp.dev), 0);
    cr_assert_eq(virtio_pci_plug(&vp, &pb, &rp.dev, PCI_DEVFN(0, 0), NULL, NULL), 0);
    uint8_t exp = pci_cap_find(&vp.pdev, PCI_CAP_ID_EXP);
    cr_assert_eq(exp, VIRTIO_PCI_CAP_EXP_AT);
    cr_assert_eq((pci_cfg_get(&vp.pdev, exp + PCI_EXP_FLAGS, 2) >> 4) & 0xF, PCI_EXP_TYPE_ENDPOINT);
    cr_assert_eq(vp.intx_gsi, -1, "no INTx rule given");
    virtio_pci_fini(&vp);
    cr_assert_null(rp.dev.children, "fini takes it off the bus");
    pci_bus_fini(&pb);
    irq_table_fini(&irq);
    gm_fini(&gm);
    fake_env_fini(&fe);
}

Test(virtio_pci, unplug_then_plug_on_a_new_bus)
{
    map_bar();
    negotiate(GOOD_FEATURES);
    vdrv_setup_queue(&drv, 0, 16, 0x1000, 0x2000, 0x3000);
    cfg_wr(0x98 + 2, 2, 0x8000);
    msix_entry(0, 0xFEE00000, 0x4041, false);
    vdrv_set_status(&drv, vdrv_status(&drv) | VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert_eq(dummy.starts, 1);

    virtio_pci_unplug(&vp);
    cr_assert_eq(dummy.stops, 1, "the device was stopped");
    cr_assert_null(bus_find(&fe.mmio, BAR_ADDR, 4), "BAR0 no longer decodes");
    cr_assert_not(vp.vec_attached[0], "MSI-X vectors unrouted");
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, PCI_VENDOR_ID, 2, &(uint32_t){ 0 }), -ENODEV);
    virtio_pci_unplug(&vp);   /* twice is harmless */

    /* The platform re-creates its bus; the function goes on the new one at
     * power-on state. */
    pci_bus_fini(&pb);
    cr_assert_eq(pci_bus_init(&pb, &fe.pio, &fe.mmio), 0);
    cr_assert_eq(virtio_pci_plug(&vp, &pb, NULL, DEVFN, intx_rule, NULL), 0);
    cr_assert_eq(cfg_rd(PCI_COMMAND, 2), 0);
    cr_assert_eq(cfg_rd(PCI_BAR0, 4), 0x4, "BAR unassigned");
    cr_assert_eq(cfg_rd(0x98 + 2, 2), NQ, "MSI-X off");
    map_bar();
    cr_assert_eq(vdrv_status(&drv), 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    negotiate(GOOD_FEATURES);
    vdrv_setup_queue(&drv, 0, 16, 0x1000, 0x2000, 0x3000);
    vdrv_set_status(&drv, vdrv_status(&drv) | VIRTIO_CONFIG_S_DRIVER_OK);
    cr_assert_eq(dummy.starts, 2);
}
