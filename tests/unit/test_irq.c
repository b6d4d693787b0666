/* vmm/irq.c routing table, built without KVM (vm_fd -1): the legacy routes
 * agree with the MADT (ISA IRQ0 -> GSI 2), MSI routes get fresh GSIs that
 * are reused after removal, and the table stays sorted and bounded. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/kvm.h>

#include "vmm/irq.h"

static unsigned routes_for(const struct irq_table *t, unsigned gsi, const struct kvm_irq_routing_entry **out)
{
    unsigned n = 0;
    for (unsigned i = 0; i < t->nr; i++)
        if (t->e[i].gsi == gsi) {
            if (out)
                out[n] = &t->e[i];
            n++;
        }
    return n;
}

static bool has_chip_pin(const struct irq_table *t, unsigned gsi, unsigned chip, unsigned pin)
{
    const struct kvm_irq_routing_entry *e[4];
    unsigned n = routes_for(t, gsi, e);
    for (unsigned i = 0; i < n; i++)
        if (e[i]->type == KVM_IRQ_ROUTING_IRQCHIP && e[i]->u.irqchip.irqchip == chip &&
            e[i]->u.irqchip.pin == pin)
            return true;
    return false;
}

Test(irq, legacy_routes)
{
    struct irq_table t;
    cr_assert_eq(irq_table_init(&t, -1, 0), 0);
    cr_assert(has_chip_pin(&t, 0, KVM_IRQCHIP_PIC_MASTER, 0));
    cr_assert(has_chip_pin(&t, 0, KVM_IRQCHIP_IOAPIC, 2), "the PIT (GSI 0) reaches IOAPIC pin 2");
    cr_assert_eq(routes_for(&t, 2, NULL), 0, "GSI 2 is the cascade");
    cr_assert(has_chip_pin(&t, 4, KVM_IRQCHIP_PIC_MASTER, 4), "COM1");
    cr_assert(has_chip_pin(&t, 4, KVM_IRQCHIP_IOAPIC, 4));
    cr_assert(has_chip_pin(&t, 9, KVM_IRQCHIP_PIC_SLAVE, 1), "SCI");
    cr_assert(has_chip_pin(&t, 9, KVM_IRQCHIP_IOAPIC, 9));
    cr_assert(has_chip_pin(&t, 15, KVM_IRQCHIP_PIC_SLAVE, 7));
    for (unsigned g = 16; g < 24; g++) {
        cr_assert_eq(routes_for(&t, g, NULL), 1);
        cr_assert(has_chip_pin(&t, g, KVM_IRQCHIP_IOAPIC, g));
    }
    cr_assert_eq(t.nr, 15 * 2 + 8);
    for (unsigned i = 1; i < t.nr; i++)
        cr_assert_geq(t.e[i].gsi, t.e[i - 1].gsi, "sorted by GSI");
    cr_assert(t.dirty, "not yet committed");
    cr_assert_eq(irq_commit(&t), 0, "no VM: nothing to send");
    cr_assert_eq(irq_line(&t, 4, 1), -EBADF);
    irq_table_fini(&t);
}

Test(irq, msi_routes)
{
    struct irq_table t;
    cr_assert_eq(irq_table_init(&t, -1, 0), 0);
    int a = irq_route_add_msi(&t, 0xfee00000, 0x41);
    int b = irq_route_add_msi(&t, 0x1fee01000ULL, 0x42);
    cr_assert_eq(a, IRQ_FIRST_MSI_GSI);
    cr_assert_eq(b, IRQ_FIRST_MSI_GSI + 1);
    const struct kvm_irq_routing_entry *e[2];
    cr_assert_eq(routes_for(&t, (unsigned)b, e), 1);
    cr_assert_eq(e[0]->type, KVM_IRQ_ROUTING_MSI);
    cr_assert_eq(e[0]->u.msi.address_lo, 0xfee01000);
    cr_assert_eq(e[0]->u.msi.address_hi, 1);
    cr_assert_eq(e[0]->u.msi.data, 0x42);

    cr_assert_eq(irq_route_update_msi(&t, (unsigned)a, 0xfee00000, 0x51), 0);
    cr_assert_eq(routes_for(&t, (unsigned)a, e), 1);
    cr_assert_eq(e[0]->u.msi.data, 0x51);
    cr_assert_eq(irq_route_update_msi(&t, 4, 0xfee00000, 0x51), -ENOENT, "not an MSI route");
    cr_assert_eq(irq_route_update_msi(&t, 900, 0, 0), -ENOENT);

    cr_assert_eq(irq_route_remove(&t, 4), -EINVAL, "legacy routes stay");
    cr_assert_eq(irq_route_remove(&t, (unsigned)a), 0);
    cr_assert_eq(irq_route_remove(&t, (unsigned)a), -ENOENT);
    cr_assert_eq(routes_for(&t, (unsigned)a, NULL), 0);
    cr_assert_eq(irq_route_add_msi(&t, 0xfee00000, 0x43), a, "freed GSI reused");
    irq_table_fini(&t);
}

Test(irq, bounded)
{
    struct irq_table t;
    /* KVM allowing only 40 routes: 38 legacy + 2 MSI. */
    cr_assert_eq(irq_table_init(&t, -1, 40), 0);
    cr_assert_geq(irq_route_add_msi(&t, 0xfee00000, 1), 0);
    cr_assert_geq(irq_route_add_msi(&t, 0xfee00000, 2), 0);
    cr_assert_eq(irq_route_add_msi(&t, 0xfee00000, 3), -ENOSPC);
    irq_table_fini(&t);

    cr_assert_eq(irq_table_init(&t, -1, 0), 0);
    int last = 0;
    for (unsigned i = IRQ_FIRST_MSI_GSI; i < IRQ_MAX_GSI; i++)
        last = irq_route_add_msi(&t, 0xfee00000, i);
    cr_assert_eq(last, IRQ_MAX_GSI - 1);
    cr_assert_eq(irq_route_add_msi(&t, 0xfee00000, 0), -ENOSPC, "GSIs exhausted");
    irq_table_fini(&t);
}
