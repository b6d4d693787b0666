/* arch/x86/cpuid_policy.c: the table a vCPU gets from KVM's supported CPUID
 * and the policy. Each edit is checked where it lands, and every other
 * entry and bit against the input: topology always, TSC-deadline and
 * hypervisor hiding each on and off, the hypervisor range's bounds, and the
 * refusals (no room, bad index, NULL). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cpuid_table.h"
#include "arch/x86/cpuid_policy.h"

#define MAX_NENT 64
#define TSC_DL   (1u << 24)
#define HV_BIT   (1u << 31)
#define LEAF1_ECX 0x7ef8320bu   /* a host's leaf 1 ECX: bits 24 and 31 clear */

/* Shaped like KVM_GET_SUPPORTED_CPUID on an Intel host: KVM's signature
 * and features at 0x40000000/1, the host's 0xB. */
static struct kvm_cpuid2 *supported(void)
{
    struct kvm_cpuid2 *c = cpuid_table(MAX_NENT);
    cpuid_add(c, 0x0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69);
    cpuid_add(c, 0x1, 0, 0x000806f8, 0x2a100800, LEAF1_ECX, 0x1f8bfbff);
    cpuid_add(c, 0x4, 0, 0xfc004121, 0x02c0003f, 0x3f, 0);
    cpuid_add(c, 0x4, 1, 0, 0, 0, 0);
    cpuid_add(c, 0x7, 0, 0, 0x029c6fbf, 0x40000000, 0xbc000400);
    cpuid_add(c, 0xb, 0, 1, 2, 0x100, 0x2a);
    cpuid_add(c, 0xb, 1, 6, 32, 0x201, 0x2a);
    cpuid_add(c, 0xd, 0, 0x7, 0x340, 0x340, 0);
    cpuid_add(c, 0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d);   /* "KVMKVMKVM" */
    cpuid_add(c, 0x40000001, 0, 0x01007afb, 0, 0, 0);
    cpuid_add(c, 0x80000000, 0, 0x80000008, 0, 0, 0);
    cpuid_add(c, 0x80000001, 0, 0, 0, 0x121, 0x2c100800);
    cpuid_add(c, 0x80000008, 0, 0x3030, 0, 0x7, 0);
    return c;
}

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
    for (unsigned i = 0; i < c->nent; i++)
        if (c->entries[i].function == fn && c->entries[i].index == idx)
            return &c->entries[i];
    return NULL;
}

static bool is_topology_leaf(uint32_t fn)
{
    return fn == 0x1 || fn == 0x4 || fn == 0xb || fn == 0x1f || fn == 0x80000008 ||
           fn == 0x8000001d || fn == 0x8000001e;
}

/* Every entry of in that the policy does not edit is in out unchanged, in
 * the same order; hypervisor leaves are there exactly when kept. */
static void check_untouched(const struct kvm_cpuid2 *in, const struct kvm_cpuid2 *out,
                            bool hv_kept)
{
    unsigned j = 0;
    for (unsigned i = 0; i < in->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &in->entries[i];
        if (is_topology_leaf(e->function))
            continue;
        if (e->function >= 0x40000000 && e->function <= 0x400000ff && !hv_kept) {
            cr_assert_null(find(out, e->function, e->index), "leaf 0x%x removed", e->function);
            continue;
        }
        while (j < out->nent && out->entries[j].function != e->function)
            j++;
        cr_assert_lt(j, out->nent, "leaf 0x%x subleaf %u kept, in order", e->function, e->index);
        while (j < out->nent && out->entries[j].function == e->function &&
               out->entries[j].index != e->index)
            j++;
        cr_assert_lt(j, out->nent);
        cr_assert_eq(memcmp(&out->entries[j], e, sizeof(*e)), 0,
                     "leaf 0x%x subleaf %u unchanged", e->function, e->index);
    }
}

/* Leaf 1: the topology fields for apic_id, ECX bits 24 and 31 as asked,
 * everything else as KVM gave it. */
static void check_leaf1(const struct kvm_cpuid2 *out, uint32_t apic_id, bool tsc, bool hv)
{
    const struct kvm_cpuid_entry2 *e = find(out, 1, 0);
    cr_assert_not_null(e);
    cr_assert_eq(e->ebx >> 24, apic_id, "initial APIC ID");
    cr_assert_eq(e->ebx & 0xffff, 0x0800, "CLFLUSH size and brand index kept");
    cr_assert_eq(!!(e->ecx & TSC_DL), tsc, "TSC-deadline bit");
    cr_assert_eq(!!(e->ecx & HV_BIT), hv, "hypervisor bit");
    cr_assert_eq(e->ecx & ~(TSC_DL | HV_BIT), LEAF1_ECX, "other ECX bits kept");
    cr_assert_eq(e->eax, 0x000806f8, "EAX kept");
}

static void build_and_check(bool tsc, bool hide)
{
    struct kvm_cpuid2 *in = supported(), *copy = cpuid_table(MAX_NENT), *out = cpuid_table(MAX_NENT);
    const struct cpuid_policy p = { .topo = { 1, 4, 1 }, .tsc_deadline = tsc,
                                    .hide_hypervisor = hide };

    memcpy(copy, in, sizeof(*in) + MAX_NENT * sizeof(in->entries[0]));
    cr_assert_eq(cpuid_policy_build(out, MAX_NENT, in, &p, 2), 0);
    cr_assert_eq(memcmp(in, copy, sizeof(*in) + MAX_NENT * sizeof(in->entries[0])), 0,
                 "supported is left alone");
    check_leaf1(out, 2, tsc, !hide);
    check_untouched(in, out, !hide);
    /* topology: 0xB rebuilt for APIC ID 2 of 4 cores */
    cr_assert_eq(find(out, 0xb, 1)->ebx & 0xffff, 4, "0xB core level: 4 logical CPUs");
    cr_assert_eq(find(out, 0xb, 0)->edx, 2, "0xB x2APIC ID");
    cr_assert_not_null(find(out, 0xb, 2), "0xB terminator");
    cr_assert_eq(find(out, 0x80000008, 0)->ecx & 0xff, 3, "NC = 4 - 1");
    cr_assert_eq(find(out, 0x80000008, 0)->eax, 0x3030, "address sizes kept");
    cr_assert_eq(find(out, 4, 0)->eax >> 26, 3, "leaf 4: 4 cores");
    /* the counts: hiding removes exactly the two KVM leaves; 0xB had 2
     * subleaves and has 3 */
    cr_assert_eq(out->nent, in->nent + 1 - (hide ? 2 : 0));
    cr_assert_eq(!!find(out, 0x40000000, 0), !hide, "KVM signature leaf");
    cr_assert_eq(!!find(out, 0x40000001, 0), !hide, "KVM features leaf");
    cr_assert_eq(out->padding, 0);
    free(in);
    free(copy);
    free(out);
}

Test(cpuid_policy, defaults) { build_and_check(false, false); }
Test(cpuid_policy, tsc_deadline) { build_and_check(true, false); }
Test(cpuid_policy, hide_hypervisor) { build_and_check(false, true); }
Test(cpuid_policy, tsc_deadline_and_hide) { build_and_check(true, true); }

/* The range is 0x40000000-0x400000FF: its bounds go, its neighbours stay.
 * Leaf 1 edits touch no other leaf's ECX. (Was vfio_quirks/hide_hypervisor
 * before the policy moved to arch/x86/.) */
Test(cpuid_policy, hide_range_bounds)
{
    const uint32_t funcs[] = { 0, 1, 0x3fffffff, 0x40000000, 0x40000001, 0x400000ff,
                               0x40000100, 0x80000000 };
    unsigned n = sizeof(funcs) / sizeof(funcs[0]);
    struct kvm_cpuid2 *in = cpuid_table(n), *out = cpuid_table(n + CPUID_POLICY_ROOM);
    const struct cpuid_policy p = { .topo = { 1, 1, 1 }, .tsc_deadline = true,
                                    .hide_hypervisor = true };

    in->nent = n;
    for (unsigned i = 0; i < n; i++) {
        in->entries[i].function = funcs[i];
        in->entries[i].ecx = 0xffffffff;
    }
    cr_assert_eq(cpuid_policy_build(out, n + CPUID_POLICY_ROOM, in, &p, 0), 0);
    cr_assert_eq(out->nent, 5);
    cr_assert_eq(out->entries[0].function, 0);
    cr_assert_eq(out->entries[0].ecx, 0xffffffff, "leaf 0 untouched");
    cr_assert_eq(out->entries[1].function, 1);
    cr_assert_eq(out->entries[1].ecx, 0x7fffffff, "hypervisor bit cleared, nothing else");
    cr_assert_eq(out->entries[2].function, 0x3fffffff, "below the range: kept");
    cr_assert_eq(out->entries[3].function, 0x40000100, "above the range: kept");
    cr_assert_eq(out->entries[3].ecx, 0xffffffff);
    cr_assert_eq(out->entries[4].function, 0x80000000);
    free(in);
    free(out);
}

/* No leaf 1 (not seen from KVM, but nothing must be invented): the bits
 * have nowhere to go and no entry appears. */
Test(cpuid_policy, no_leaf1)
{
    struct kvm_cpuid2 *in = cpuid_table(2), *out = cpuid_table(2);
    const struct cpuid_policy p = { .topo = { 1, 1, 1 }, .tsc_deadline = true };

    cpuid_add(in, 0x0, 0, 0x0, 0, 0, 0);
    cpuid_add(in, 0x80000000, 0, 0x80000000, 0, 0, 0);
    cr_assert_eq(cpuid_policy_build(out, 2, in, &p, 0), 0);
    cr_assert_eq(out->nent, 2);
    cr_assert_eq(memcmp(out->entries, in->entries, 2 * sizeof(in->entries[0])), 0);
    free(in);
    free(out);
}

Test(cpuid_policy, in_place)
{
    struct kvm_cpuid2 *c = supported(), *ref = cpuid_table(MAX_NENT);
    const struct cpuid_policy p = { .topo = { 1, 2, 2 }, .tsc_deadline = true,
                                    .hide_hypervisor = true };

    cr_assert_eq(cpuid_policy_build(ref, MAX_NENT, c, &p, 3), 0);
    cr_assert_eq(cpuid_policy_build(c, MAX_NENT, c, &p, 3), 0);
    cr_assert_eq(c->nent, ref->nent);
    cr_assert_eq(memcmp(c->entries, ref->entries, c->nent * sizeof(c->entries[0])), 0,
                 "out == supported gives the same table");
    check_leaf1(c, 3, true, false);
    free(c);
    free(ref);
}

Test(cpuid_policy, no_room)
{
    struct kvm_cpuid2 *in = supported(), *out = cpuid_table(MAX_NENT);
    const struct cpuid_policy p = { .topo = { 1, 1, 1 } };

    cr_assert_eq(cpuid_policy_build(out, in->nent - 1, in, &p, 0), -ENOSPC,
                 "the supported table itself does not fit");
    cr_assert_eq(cpuid_policy_build(out, 0, in, &p, 0), -ENOSPC, "no room at all");
    /* it fits, but 0xB's two host subleaves become three */
    cr_assert_eq(cpuid_policy_build(out, in->nent, in, &p, 0), -ENOSPC,
                 "no room for the rebuilt 0xB");
    cr_assert_eq(cpuid_policy_build(out, in->nent + 1, in, &p, 0), 0, "one more is enough");
    cr_assert_eq(out->nent, in->nent + 1);
    free(in);
    free(out);
}

Test(cpuid_policy, refusals)
{
    struct kvm_cpuid2 *in = supported(), *out = cpuid_table(MAX_NENT);
    const struct cpuid_policy p = { .topo = { 2, 2, 1 } }, bad = { .topo = { 1, 0, 1 } };

    cr_assert_eq(cpuid_policy_build(out, MAX_NENT, in, &p, 4), -EINVAL, "index past 4 vCPUs");
    cr_assert_eq(cpuid_policy_build(out, MAX_NENT, in, &bad, 0), -EINVAL, "zero cores");
    cr_assert_eq(cpuid_policy_build(NULL, MAX_NENT, in, &p, 0), -EINVAL);
    cr_assert_eq(cpuid_policy_build(out, MAX_NENT, NULL, &p, 0), -EINVAL);
    cr_assert_eq(cpuid_policy_build(out, MAX_NENT, in, NULL, 0), -EINVAL);
    cr_assert_eq(cpuid_policy_build(out, MAX_NENT, in, &p, 3), 0, "the last vCPU");
    check_leaf1(out, 3, false, true);
    free(in);
    free(out);
}

Test(cpuid_policy, table)
{
    struct kvm_cpuid2 *in = supported(), *out = NULL, *ref = cpuid_table(MAX_NENT);
    const struct cpuid_policy p = { .topo = { 2, 3, 2 }, .hide_hypervisor = true };

    cr_assert_eq(cpuid_policy_table(in, &p, 7, &out), 0);
    cr_assert_not_null(out);
    cr_assert_eq(cpuid_policy_build(ref, MAX_NENT, in, &p, 7), 0);
    cr_assert_eq(out->nent, ref->nent);
    cr_assert_eq(memcmp(out->entries, ref->entries, out->nent * sizeof(out->entries[0])), 0);
    check_leaf1(out, 9, false, false);   /* index 7: socket 1, core 0, thread 1 -> 8 | 1 */
    free(out);
    out = (struct kvm_cpuid2 *)1;
    cr_assert_eq(cpuid_policy_table(in, &p, 12, &out), -EINVAL, "12 vCPUs: 0..11");
    cr_assert_null(out, "nothing on failure");
    free(in);
    free(ref);
}
