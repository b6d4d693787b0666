/* The PCI layer's MSI-X table/PBA emulation and MSI vector state
 * (devices/pci/msix.c) with recording callbacks in place of KVM routes,
 * irqfds and VFIO_DEVICE_SET_IRQS. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/pci/msix.h"

#define NV 70   /* more than 64: the PBA has two qwords */

struct rec {
    int enabled_kind;           /* -1 = off */
    unsigned enabled_nr;
    unsigned nr_enable, nr_disable;
    bool routed[PCI_MSIX_MAX_VECTORS];
    uint64_t addr[PCI_MSIX_MAX_VECTORS];
    uint32_t data[PCI_MSIX_MAX_VECTORS];
    unsigned nr_route, nr_unroute;
    bool fired[PCI_MSIX_MAX_VECTORS];  /* eventfd readable */
    int fail_enable, fail_route;
};

static struct rec rec;

static int rec_enable(void *o, enum pci_irq_kind kind, unsigned nr)
{
    (void)o;
    if (rec.fail_enable)
        return -ENOSPC;
    cr_assert_eq(rec.enabled_kind, -1, "enable while already enabled");
    rec.enabled_kind = kind;
    rec.enabled_nr = nr;
    rec.nr_enable++;
    return 0;
}

static void rec_disable(void *o, enum pci_irq_kind kind)
{
    (void)o;
    cr_assert_eq(rec.enabled_kind, (int)kind, "disable of a kind not enabled");
    rec.enabled_kind = -1;
    rec.nr_disable++;
}

static int rec_route(void *o, enum pci_irq_kind kind, unsigned v, uint64_t addr, uint32_t data)
{
    (void)o;
    cr_assert_eq(rec.enabled_kind, (int)kind, "route with the device side off");
    if (rec.fail_route)
        return -EINVAL;
    rec.routed[v] = true;
    rec.addr[v] = addr;
    rec.data[v] = data;
    rec.nr_route++;
    rec.fired[v] = false;         /* KVM delivers what was pending */
    return 0;
}

static void rec_unroute(void *o, enum pci_irq_kind kind, unsigned v)
{
    (void)o; (void)kind;
    cr_assert(rec.routed[v], "unroute of vector %u that was not routed", v);
    rec.routed[v] = false;
    rec.nr_unroute++;
}

static bool rec_pending(void *o, enum pci_irq_kind kind, unsigned v)
{
    (void)o; (void)kind;
    return rec.fired[v];
}

static const struct pci_irq_ops ops = {
    .enable = rec_enable, .disable = rec_disable, .route = rec_route,
    .unroute = rec_unroute, .pending = rec_pending,
};

static struct pci_msix m;

static void setup(void)
{
    memset(&rec, 0, sizeof(rec));
    rec.enabled_kind = -1;
    cr_assert_eq(pci_msix_init(&m, NV, &ops, NULL), 0);
}

static void teardown(void) { pci_msix_fini(&m); }

TestSuite(pci_msix, .init = setup, .fini = teardown);

static void wr32(uint64_t off, uint32_t v) { cr_assert_eq(pci_msix_table_write(&m, off, &v, 4), 0); }
static uint32_t rd32(uint64_t off)
{
    uint32_t v;
    cr_assert_eq(pci_msix_table_read(&m, off, &v, 4), 0);
    return v;
}

static void program(unsigned v, uint64_t addr, uint32_t data, bool masked)
{
    wr32(v * 16 + 0, (uint32_t)addr);
    wr32(v * 16 + 4, (uint32_t)(addr >> 32));
    wr32(v * 16 + 8, data);
    wr32(v * 16 + 12, masked);
}

Test(pci_msix, sizes)
{
    cr_assert_eq(pci_msix_table_size(&m), NV * 16);
    cr_assert_eq(pci_msix_pba_size(&m), 16);
    struct pci_msix z;
    cr_assert_eq(pci_msix_init(&z, 0, &ops, NULL), -EINVAL);
    cr_assert_eq(pci_msix_init(&z, 2049, &ops, NULL), -EINVAL);
}

Test(pci_msix, reset_state_all_masked)
{
    for (unsigned v = 0; v < NV; v++) {
        cr_assert_eq(rd32(v * 16 + 12), 1, "vector %u mask bit after reset", v);
        cr_assert_eq(rd32(v * 16 + 0), 0);
    }
}

Test(pci_msix, reserved_bits_read_zero)
{
    wr32(3 * 16 + 0, 0xfee0100f);
    cr_assert_eq(rd32(3 * 16 + 0), 0xfee0100c, "address bits 1:0 read 0");
    wr32(3 * 16 + 12, 0xffffffff);
    cr_assert_eq(rd32(3 * 16 + 12), 1, "vector control bits 31:1 read 0");
    uint64_t q = 0x1122334455667788ull;
    cr_assert_eq(pci_msix_table_write(&m, 5 * 16 + 8, &q, 8), 0, "qword write: data + control");
    cr_assert_eq(rd32(5 * 16 + 8), 0x55667788);
    cr_assert_eq(rd32(5 * 16 + 12), 0, "0x11223344 has bit 0 clear");
    uint8_t b = 0xab;
    cr_assert_eq(pci_msix_table_write(&m, 7 * 16 + 9, &b, 1), 0, "byte writes land byte-wise");
    cr_assert_eq(rd32(7 * 16 + 8), 0xab00);
}

Test(pci_msix, enable_routes_only_unmasked_vectors)
{
    program(0, 0xfee00000, 0x41, false);
    program(1, 0xfee01000, 0x42, true);
    program(69, 0xfee02000, 0x43, false);
    cr_assert_eq(rec.nr_route, 0, "nothing routed while MSI-X is off");
    pci_msix_control(&m, true, false);
    cr_assert_eq(rec.enabled_kind, PCI_IRQ_KIND_MSIX);
    cr_assert_eq(rec.enabled_nr, NV, "every vector has its eventfd at the device");
    cr_assert(rec.routed[0]);
    cr_assert_eq(rec.addr[0], 0xfee00000);
    cr_assert_eq(rec.data[0], 0x41);
    cr_assert_not(rec.routed[1], "masked vector is not routed");
    cr_assert(rec.routed[69]);
    cr_assert_eq(rec.nr_route, 2);
}

Test(pci_msix, mask_unmask_per_vector)
{
    program(4, 0xfee00000, 0x50, true);
    pci_msix_control(&m, true, false);
    cr_assert_not(rec.routed[4]);
    wr32(4 * 16 + 12, 0);               /* unmask */
    cr_assert(rec.routed[4]);
    cr_assert_eq(rec.data[4], 0x50);
    wr32(4 * 16 + 12, 1);               /* mask */
    cr_assert_not(rec.routed[4]);
    cr_assert_eq(rec.nr_unroute, 1);
    cr_assert(pci_msix_vector_masked(&m, 4));
    /* unchanged unmasked writes do not reprogram */
    wr32(4 * 16 + 12, 0);
    unsigned n = rec.nr_route;
    wr32(4 * 16 + 12, 0);
    wr32(4 * 16 + 8, 0x50);
    cr_assert_eq(rec.nr_route, n, "same message: no new route");
    wr32(4 * 16 + 8, 0x51);
    cr_assert_eq(rec.nr_route, n + 1, "new data while unmasked reprograms the route");
    cr_assert_eq(rec.data[4], 0x51);
    wr32(4 * 16 + 4, 0x1);
    cr_assert_eq(rec.addr[4], 0x1fee00000ull, "upper address dword taken");
}

Test(pci_msix, function_mask)
{
    program(0, 0xfee00000, 0x41, false);
    program(1, 0xfee00000, 0x42, false);
    pci_msix_control(&m, true, true);
    cr_assert_eq(rec.enabled_kind, PCI_IRQ_KIND_MSIX, "device side on even when masked");
    cr_assert_not(rec.routed[0]);
    cr_assert_not(rec.routed[1]);
    pci_msix_control(&m, true, false);
    cr_assert(rec.routed[0]);
    cr_assert(rec.routed[1]);
    cr_assert_eq(rec.nr_enable, 1, "enable once");
    pci_msix_control(&m, true, true);
    cr_assert_not(rec.routed[0]);
    cr_assert(pci_msix_vector_masked(&m, 1));
}

Test(pci_msix, disable_turns_device_off)
{
    program(0, 0xfee00000, 0x41, false);
    pci_msix_control(&m, true, false);
    pci_msix_control(&m, false, false);
    cr_assert_eq(rec.enabled_kind, -1);
    cr_assert_not(rec.routed[0]);
    cr_assert_eq(rec.nr_disable, 1);
    pci_msix_control(&m, false, false);
    cr_assert_eq(rec.nr_disable, 1, "disable once");
}

static uint64_t pba(unsigned q)
{
    uint64_t v;
    cr_assert_eq(pci_msix_pba_read(&m, q * 8, &v, 8), 0);
    return v;
}

Test(pci_msix, pba_reflects_masked_fired_vectors)
{
    program(2, 0xfee00000, 0x41, true);
    program(3, 0xfee00000, 0x42, false);
    program(66, 0xfee00000, 0x43, true);
    pci_msix_control(&m, true, false);
    rec.fired[2] = true;                /* masked, fired: pending */
    rec.fired[66] = true;
    cr_assert_eq(pba(0), 1ull << 2);
    cr_assert_eq(pba(1), 1ull << 2, "vector 66 is bit 2 of the second qword");
    uint8_t b;
    cr_assert_eq(pci_msix_pba_read(&m, 8, &b, 1), 0);
    cr_assert_eq(b, 4);
    /* unmask: routed, KVM delivers, the bit clears */
    wr32(2 * 16 + 12, 0);
    cr_assert(rec.routed[2]);
    cr_assert_eq(pba(0), 0);
    /* PBA writes are ignored */
    uint64_t ones = ~0ull;
    cr_assert_eq(pci_msix_pba_write(&m, 0, &ones, 8), 0);
    cr_assert_eq(pba(0), 0);
    /* with MSI-X off nothing is pending (the device side is off) */
    pci_msix_control(&m, false, false);
    cr_assert_eq(pba(1), 0);
}

Test(pci_msix, pba_bits_past_the_last_vector_are_zero)
{
    pci_msix_control(&m, true, true);
    for (unsigned v = 0; v < NV; v++)
        rec.fired[v] = true;
    cr_assert_eq(pba(0), ~0ull);
    cr_assert_eq(pba(1), (1ull << (NV - 64)) - 1);
}

Test(pci_msix, bounds_checked)
{
    uint64_t v = 0;
    cr_assert_eq(pci_msix_table_read(&m, NV * 16, &v, 4), -EINVAL);
    cr_assert_eq(v & 0xffffffffu, 0xffffffffu);
    cr_assert_eq(pci_msix_table_read(&m, NV * 16 - 4, &v, 8), -EINVAL, "straddles the end");
    cr_assert_eq(pci_msix_table_write(&m, NV * 16 - 2, &v, 4), -EINVAL);
    cr_assert_eq(pci_msix_table_write(&m, ~0ull - 2, &v, 4), -EINVAL, "wrap-around");
    cr_assert_eq(pci_msix_table_write(&m, 0, &v, 0), -EINVAL);
    uint8_t big[16] = {0};
    cr_assert_eq(pci_msix_table_write(&m, 0, big, 16), -EINVAL, "longer than 8");
    cr_assert_eq(pci_msix_pba_read(&m, 16, &v, 1), -EINVAL);
    cr_assert_eq(pci_msix_pba_read(&m, 12, &v, 8), -EINVAL);
    cr_assert_eq(pci_msix_pba_write(&m, 16, &v, 1), -EINVAL);
    cr_assert_eq(rec.nr_route, 0);
}

Test(pci_msix, straddling_two_entries)
{
    pci_msix_control(&m, true, false);
    program(0, 0xfee00000, 0x1, true);
    program(1, 0xfee00000, 0x2, true);
    /* qword at offset 12: entry 0 control + entry 1 address low */
    uint64_t q = (uint64_t)0xfee03000 << 32 | 0;
    cr_assert_eq(pci_msix_table_write(&m, 12, &q, 8), 0);
    cr_assert(rec.routed[0], "entry 0 unmasked");
    cr_assert_not(rec.routed[1]);
    cr_assert_eq(rd32(16), 0xfee03000);
}

Test(pci_msix, enable_failure_leaves_vectors_unrouted)
{
    program(0, 0xfee00000, 0x41, false);
    rec.fail_enable = 1;
    pci_msix_control(&m, true, false);
    cr_assert_not(rec.routed[0]);
    cr_assert_not(m.dev_on);
    rec.fail_enable = 0;
    pci_msix_control(&m, true, false);   /* the guest tries again */
    cr_assert(rec.routed[0]);
}

Test(pci_msix, route_failure_is_not_fatal)
{
    pci_msix_control(&m, true, false);
    rec.fail_route = 1;
    program(0, 0xfee00000, 0x41, false);
    cr_assert_not(rec.routed[0]);
    cr_assert_not(m.vec[0].routed);
    rec.fail_route = 0;
    wr32(8, 0x42);
    cr_assert(rec.routed[0], "a later change retries");
}

Test(pci_msix, reset_masks_everything)
{
    program(0, 0xfee00000, 0x41, false);
    pci_msix_control(&m, true, false);
    pci_msix_reset(&m);
    cr_assert_eq(rec.enabled_kind, -1);
    cr_assert_not(rec.routed[0]);
    cr_assert_eq(rd32(12), 1);
    cr_assert_eq(rd32(0), 0);
    cr_assert_not(m.enabled);
}

/* MSI vectors (the capability is in config space). */
Test(pci_msix, msi_enable_mask_and_multiple_messages)
{
    struct pci_msi msi;
    pci_msi_init(&msi, &ops, NULL);
    struct pci_msi_state st = {
        .enabled = true, .nr_vectors = 4, .address = 0xfee00000, .data = 0x4043,
        .per_vector_mask = true, .mask = 0x2,
    };
    pci_msi_update(&msi, &st);
    cr_assert_eq(rec.enabled_kind, PCI_IRQ_KIND_MSI);
    cr_assert_eq(rec.enabled_nr, 4);
    cr_assert(rec.routed[0]);
    cr_assert_eq(rec.data[0], 0x4040, "low bits replaced by the vector number");
    cr_assert_not(rec.routed[1], "masked");
    cr_assert_eq(rec.data[3], 0x4043);
    cr_assert_not(rec.routed[4], "beyond the enabled count");
    rec.fired[1] = true;
    cr_assert_eq(pci_msi_pending(&msi), 0x2);
    st.mask = 0;
    pci_msi_update(&msi, &st);
    cr_assert(rec.routed[1]);
    cr_assert_eq(pci_msi_pending(&msi), 0);
    /* a new vector count re-enables at the device */
    st.nr_vectors = 1;
    pci_msi_update(&msi, &st);
    cr_assert_eq(rec.nr_enable, 2);
    cr_assert_eq(rec.enabled_nr, 1);
    cr_assert_not(rec.routed[3]);
    st.enabled = false;
    pci_msi_update(&msi, &st);
    cr_assert_eq(rec.enabled_kind, -1);
    cr_assert_not(rec.routed[0]);
}
