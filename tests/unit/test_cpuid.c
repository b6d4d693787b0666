/* arch/x86/cpuid.c: APIC IDs for several topologies, and the topology
 * leaves rewritten on a KVM_GET_SUPPORTED_CPUID-shaped input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cpuid_table.h"
#include "arch/x86/cpuid.h"

#define MAX_NENT 64

static struct kvm_cpuid2 *cpuid_alloc(void)
{
    return cpuid_table(MAX_NENT);
}

/* Looks like a host with 8 threads/16 cores: values a guest must not see. */
static struct kvm_cpuid2 *host_like(bool with_1f)
{
    struct kvm_cpuid2 *c = cpuid_alloc();
    cpuid_add(c, 0x0, 0, with_1f ? 0x1f : 0xd, 0x756e6547, 0x6c65746e, 0x49656e69);
    cpuid_add(c, 0x1, 0, 0x000806f8, 0x2a100800 /* host APIC ID 0x2a, 16 logical */, 0x7ffafbff, 0x0f8bfbff);
    /* leaf 4: L1d (level 1, type 1), L1i, L2 (level 2), L3 (level 3), end */
    cpuid_add(c, 0x4, 0, 0xfc004121, 0x02c0003f, 0x3f, 0);
    cpuid_add(c, 0x4, 1, 0xfc004122, 0x01c0003f, 0x3f, 0);
    cpuid_add(c, 0x4, 2, 0xfc004143, 0x03c0003f, 0x7ff, 0);
    cpuid_add(c, 0x4, 3, 0xfc1fc163, 0x0380003f, 0xbfff, 4);
    cpuid_add(c, 0x4, 4, 0, 0, 0, 0);
    /* leaf 0xB from the host: SMT x2, Core x16, end */
    cpuid_add(c, 0xb, 0, 1, 2, 0x100, 0x2a);
    cpuid_add(c, 0xb, 1, 6, 32, 0x201, 0x2a);
    cpuid_add(c, 0xb, 2, 0, 0, 2, 0x2a);
    if (with_1f) {
        /* a host with a die level: four subleaves */
        cpuid_add(c, 0x1f, 0, 1, 2, 0x100, 0x2a);
        cpuid_add(c, 0x1f, 1, 6, 32, 0x201, 0x2a);
        cpuid_add(c, 0x1f, 2, 7, 64, 0x502, 0x2a);
        cpuid_add(c, 0x1f, 3, 0, 0, 3, 0x2a);
    }
    cpuid_add(c, 0x80000000, 0, 0x80000021, 0, 0, 0);
    cpuid_add(c, 0x80000008, 0, 0x3030, 0, 0x0000700f | (1u << 16), 0);
    cpuid_add(c, 0x8000001d, 0, 0x00004121, 0, 0, 0);   /* L1d, shared by 2 on the host */
    cpuid_add(c, 0x8000001d, 1, 0x0003c163, 0, 0, 0);   /* L3, shared by 16 on the host */
    cpuid_add(c, 0x8000001d, 2, 0, 0, 0, 0);
    cpuid_add(c, 0x8000001e, 0, 0, 0, 0, 0);
    return c;
}

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
    const struct kvm_cpuid_entry2 *hit = NULL;
    for (unsigned i = 0; i < c->nent; i++)
        if (c->entries[i].function == fn && c->entries[i].index == idx) {
            cr_assert_null(hit, "leaf 0x%x subleaf %u appears twice", fn, idx);
            hit = &c->entries[i];
        }
    return hit;
}

static unsigned count_leaf(const struct kvm_cpuid2 *c, uint32_t fn)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->nent; i++)
        n += c->entries[i].function == fn;
    return n;
}

Test(cpuid, apic_ids_flat)
{
    struct cpu_topology one = { 1, 1, 1 }, two = { 1, 2, 1 }, four = { 1, 4, 1 }, three = { 1, 3, 1 };
    cr_assert_eq(cpuid_apic_id(&one, 0), 0);
    cr_assert_eq(cpuid_apic_id(&two, 0), 0);
    cr_assert_eq(cpuid_apic_id(&two, 1), 1);
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(cpuid_apic_id(&four, i), i);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(cpuid_apic_id(&three, i), i);
}

Test(cpuid, apic_ids_padded)
{
    /* 2 sockets x 3 cores x 2 threads: thread 1 bit, core 2 bits (3 -> 4),
     * so socket 1 starts at 8 and IDs 6, 7 are unused. */
    struct cpu_topology t = { 2, 3, 2 };
    const uint32_t want[12] = { 0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13 };
    for (unsigned i = 0; i < 12; i++)
        cr_assert_eq(cpuid_apic_id(&t, i), want[i], "index %u: %u, want %u", i,
                     cpuid_apic_id(&t, i), want[i]);
    struct cpu_topology s4 = { 4, 1, 1 };   /* 4 sockets of 1: 0..3 */
    cr_assert_eq(cpuid_apic_id(&s4, 3), 3);
    struct cpu_topology ht = { 1, 2, 2 };
    cr_assert_eq(cpuid_apic_id(&ht, 3), 3);
}

static void check_leaf1(const struct kvm_cpuid2 *c, uint32_t apic, uint32_t logical, bool htt)
{
    const struct kvm_cpuid_entry2 *e = find(c, 1, 0);
    cr_assert_not_null(e);
    cr_assert_eq(e->ebx >> 24, apic, "leaf 1 APIC ID %u, want %u", e->ebx >> 24, apic);
    cr_assert_eq((e->ebx >> 16) & 0xff, logical, "leaf 1 logical count %u, want %u",
                 (e->ebx >> 16) & 0xff, logical);
    cr_assert_eq(e->ebx & 0xffff, 0x0800, "CLFLUSH size and brand index kept");
    cr_assert_eq(!!(e->edx & (1u << 28)), htt, "HTT");
    cr_assert(e->ecx & (1u << 31), "hypervisor bit");
    cr_assert_eq(e->ecx & 0x7fffffff, 0x7ffafbff, "other feature bits kept");
}

static void check_ext_topo(const struct kvm_cpuid2 *c, uint32_t fn, uint32_t apic,
                           unsigned smt_shift, unsigned smt_n, unsigned core_shift, unsigned pkg_n)
{
    cr_assert_eq(count_leaf(c, fn), 3, "leaf 0x%x has exactly SMT, Core and the end", fn);
    const struct kvm_cpuid_entry2 *s = find(c, fn, 0), *k = find(c, fn, 1), *end = find(c, fn, 2);
    cr_assert(s && k && end);
    cr_assert_eq(s->eax & 0x1f, smt_shift, "0x%x SMT shift %u, want %u", fn, s->eax & 0x1f, smt_shift);
    cr_assert_eq(s->ebx & 0xffff, smt_n);
    cr_assert_eq((s->ecx >> 8) & 0xff, 1, "level type SMT");
    cr_assert_eq(s->ecx & 0xff, 0);
    cr_assert_eq(k->eax & 0x1f, core_shift, "0x%x core shift %u, want %u", fn, k->eax & 0x1f, core_shift);
    cr_assert_eq(k->ebx & 0xffff, pkg_n);
    cr_assert_eq((k->ecx >> 8) & 0xff, 2, "level type Core");
    cr_assert_eq(k->ecx & 0xff, 1);
    cr_assert_eq((end->ecx >> 8) & 0xff, 0, "invalid level ends the list");
    cr_assert_eq(end->ecx & 0xff, 2);
    cr_assert_eq(end->eax, 0);
    cr_assert_eq(end->ebx, 0);
    cr_assert_eq(s->edx, apic);
    cr_assert_eq(k->edx, apic);
    cr_assert_eq(end->edx, apic);
    cr_assert(s->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
}

Test(cpuid, one_vcpu)
{
    struct kvm_cpuid2 *c = host_like(false);
    struct cpu_topology t = { 1, 1, 1 };
    cr_assert_eq(cpuid_fixup(c, MAX_NENT, &t, 0), 0);
    check_leaf1(c, 0, 1, false);
    check_ext_topo(c, 0xb, 0, 0, 1, 0, 1);
    const struct kvm_cpuid_entry2 *e = find(c, 0x80000008, 0);
    cr_assert_eq(e->ecx & 0xff, 0, "NC = 0");
    cr_assert_eq((e->ecx >> 12) & 0xf, 0);
    cr_assert_eq(e->ecx >> 16, 1, "bits above ApicIdSize kept");
    cr_assert_eq(e->eax, 0x3030, "address sizes kept");
    cr_assert_eq(count_leaf(c, 0x1f), 0, "0x1F not invented when KVM did not offer it");
    free(c);
}

Test(cpuid, two_vcpus)
{
    struct cpu_topology t = { 1, 2, 1 };
    for (unsigned i = 0; i < 2; i++) {
        struct kvm_cpuid2 *c = host_like(false);
        cr_assert_eq(cpuid_fixup(c, MAX_NENT, &t, i), 0);
        check_leaf1(c, i, 2, true);
        check_ext_topo(c, 0xb, i, 0, 1, 1, 2);
        const struct kvm_cpuid_entry2 *l1 = find(c, 4, 0), *l3 = find(c, 4, 3), *end = find(c, 4, 4);
        cr_assert_eq(l1->eax >> 26, 1, "2 cores -> 1");
        cr_assert_eq((l1->eax >> 14) & 0xfff, 0, "L1 private to the core (1 thread)");
        cr_assert_eq((l3->eax >> 14) & 0xfff, 1, "L3 shared by the package (2)");
        cr_assert_eq(l1->eax & 0x3fff, 0x0121, "cache type and level kept");
        cr_assert_eq(end->eax, 0, "terminator left alone");
        const struct kvm_cpuid_entry2 *a = find(c, 0x80000008, 0), *x = find(c, 0x8000001e, 0);
        cr_assert_eq(a->ecx & 0xff, 1);
        cr_assert_eq((a->ecx >> 12) & 0xf, 1);
        cr_assert_eq(x->eax, i, "extended APIC ID");
        cr_assert_eq(x->ebx & 0xff, i, "core ID");
        cr_assert_eq((x->ebx >> 8) & 0xff, 0, "1 thread per core");
        cr_assert_eq(x->ecx & 0xff, 0, "node 0");
        free(c);
    }
}

Test(cpuid, four_vcpus_with_leaf_1f)
{
    struct cpu_topology t = { 1, 4, 1 };
    for (unsigned i = 0; i < 4; i++) {
        struct kvm_cpuid2 *c = host_like(true);
        cr_assert_eq(cpuid_fixup(c, MAX_NENT, &t, i), 0);
        check_leaf1(c, i, 4, true);
        check_ext_topo(c, 0xb, i, 0, 1, 2, 4);
        check_ext_topo(c, 0x1f, i, 0, 1, 2, 4);
        cr_assert_null(find(c, 0x1f, 3), "the host's die level is gone");
        cr_assert_not_null(find(c, 0x80000000, 0), "other leaves survive the rewrite");
        free(c);
    }
}

Test(cpuid, sockets_cores_threads)
{
    /* 2 sockets x 3 cores x 2 threads (apic ids as in apic_ids_padded) */
    struct cpu_topology t = { 2, 3, 2 };
    const uint32_t want[12] = { 0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13 };
    for (unsigned i = 0; i < 12; i++) {
        struct kvm_cpuid2 *c = host_like(false);
        cr_assert_eq(cpuid_fixup(c, MAX_NENT, &t, i), 0);
        check_leaf1(c, want[i], 8, true);
        check_ext_topo(c, 0xb, want[i], 1, 2, 3, 6);
        const struct kvm_cpuid_entry2 *l1 = find(c, 4, 0), *l2 = find(c, 4, 2), *l3 = find(c, 4, 3);
        cr_assert_eq(l1->eax >> 26, 3, "cores padded to 4");
        cr_assert_eq((l1->eax >> 14) & 0xfff, 1, "L1 shared by 2 threads");
        cr_assert_eq((l2->eax >> 14) & 0xfff, 1, "L2 shared by 2 threads");
        cr_assert_eq((l3->eax >> 14) & 0xfff, 7, "L3 by the package's 8 IDs");
        const struct kvm_cpuid_entry2 *d1 = find(c, 0x8000001d, 0), *d3 = find(c, 0x8000001d, 1);
        cr_assert_eq((d1->eax >> 14) & 0xfff, 1, "AMD L1 shared by a core's 2 threads");
        cr_assert_eq((d3->eax >> 14) & 0xfff, 7, "AMD L3 by the package");
        cr_assert_eq(d3->eax & 0x3fff, 0x0163, "type and level kept");
        cr_assert_eq(find(c, 0x8000001d, 2)->eax, 0);
        const struct kvm_cpuid_entry2 *a = find(c, 0x80000008, 0), *x = find(c, 0x8000001e, 0);
        cr_assert_eq(a->ecx & 0xff, 5, "6 logical CPUs per package");
        cr_assert_eq((a->ecx >> 12) & 0xf, 3);
        cr_assert_eq(x->eax, want[i]);
        cr_assert_eq(x->ebx & 0xff, (i / 2) % 3, "core in package");
        cr_assert_eq((x->ebx >> 8) & 0xff, 1, "2 threads per core");
        cr_assert_eq(x->ecx & 0xff, i / 6, "node = socket");
        free(c);
    }
}

Test(cpuid, refusals)
{
    struct kvm_cpuid2 *c = host_like(true);
    struct cpu_topology t = { 1, 2, 1 }, zero = { 1, 0, 1 };
    unsigned nent = c->nent;

    cr_assert_eq(cpuid_fixup(c, MAX_NENT, &t, 2), -EINVAL, "index past the vCPUs");
    cr_assert_eq(cpuid_fixup(c, MAX_NENT, &zero, 0), -EINVAL, "zero cores");
    cr_assert_eq(cpuid_fixup(c, nent - 1, &t, 0), -EINVAL, "more entries than room");
    cr_assert_eq(c->nent, nent);
    /* 0xB loses 3 and gains 3; 0x1F loses 4 and gains 3: exactly fits. */
    cr_assert_eq(cpuid_fixup(c, nent, &t, 0), 0);
    cr_assert_eq(c->nent, nent - 1);
    free(c);

    /* A host offering only one 0xB subleaf: three are needed. */
    c = cpuid_alloc();
    cpuid_add(c, 0xb, 0, 0, 1, 0x100, 0);
    cr_assert_eq(cpuid_fixup(c, 2, &t, 0), -ENOSPC);
    free(c);
}
