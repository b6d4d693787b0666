/* CPUID topology for a vCPU (arch/x86/cpuid.h).
 *
 * KVM_GET_SUPPORTED_CPUID describes what KVM can virtualize but carries the
 * host's topology (or none): every vCPU would claim APIC ID 0 and the host's
 * core counts. This rewrites the topology leaves so they agree with each
 * other, with the APIC ID KVM gives the vCPU (its vcpu_id, which vmm/vcpu.c
 * sets to cpuid_apic_id()) and with the MADT that boot/acpi.c builds:
 *
 *   APIC ID = socket << (core_bits + thread_bits) | core << thread_bits | thread
 *   thread_bits = ceil(log2(threads)), core_bits = ceil(log2(cores))
 *   (Intel SDM vol. 3A §9.4.1, "Hierarchical Mapping of Shared Resources")
 *
 *   leaf        register       value
 *   0x1         EBX[31:24]     initial APIC ID
 *               EBX[23:16]     addressable logical IDs per package, 2^(core+thread bits)
 *               EDX[28] HTT    set when a package has more than one logical CPU
 *               ECX[31]        hypervisor present
 *   0x4 (each)  EAX[31:26]     addressable core IDs per package - 1
 *               EAX[25:14]     addressable IDs sharing the cache - 1: a core's
 *                              threads for L1/L2, the package for L3+
 *   0xB, 0x1F   subleaf 0      SMT level: EAX shift = thread_bits, EBX = threads
 *               subleaf 1      Core level: EAX shift = core+thread bits,
 *                              EBX = cores * threads
 *               subleaf 2      invalid level (ends the list); EDX = x2APIC ID
 *                              in all three (SDM vol. 2A, CPUID leaf 0BH/1FH)
 *   0x8000001D  EAX[25:14]     (AMD caches) sharing, as leaf 4
 *   0x80000008  ECX[7:0] NC    logical CPUs per package - 1
 *               ECX[15:12]     ApicIdSize = core+thread bits (AMD APM vol. 3,
 *                              CPUID Fn8000_0008)
 *   0x8000001E  EAX            extended APIC ID
 *               EBX[7:0]       core ID in the package; EBX[15:8] threads per core - 1
 *               ECX[7:0]       node ID = socket; ECX[10:8] nodes per package - 1 = 0
 *
 * 0xB and 0x1F are only written when KVM offers them (leaf 0's maximum
 * reaches them); their subleaves are replaced by exactly the three above,
 * whatever the host had. */
#include "arch/x86/cpuid.h"

#include <errno.h>
#include <string.h>

#define CPUID_HTT         (1u << 28)   /* leaf 1 EDX */
#define CPUID_HYPERVISOR  (1u << 31)   /* leaf 1 ECX */
#define TOPO_LEVEL_SMT    1
#define TOPO_LEVEL_CORE   2

static unsigned bits_for(unsigned n)
{
    unsigned b = 0;

    while ((1u << b) < n)
        b++;
    return b;
}

static bool topo_valid(const struct cpu_topology *t)
{
    return t && t->sockets && t->cores && t->threads &&
           t->cores <= 256 && t->threads <= 256 && t->sockets <= 256;
}

uint32_t cpuid_apic_id(const struct cpu_topology *t, unsigned index)
{
    if (!topo_valid(t))
        return 0;
    unsigned tb = bits_for(t->threads), cb = bits_for(t->cores);
    unsigned thread = index % t->threads;
    unsigned core = (index / t->threads) % t->cores;
    unsigned socket = index / (t->threads * t->cores);
    return (uint32_t)socket << (cb + tb) | (uint32_t)core << tb | thread;
}

/* Set an entry for (function, index) with the given registers. */
static void set_topo_entry(struct kvm_cpuid_entry2 *e, uint32_t function, uint32_t index,
                           uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx)
{
    memset(e, 0, sizeof(*e));
    e->function = function;
    e->index = index;
    e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    e->eax = eax;
    e->ebx = ebx;
    e->ecx = ecx;
    e->edx = edx;
}

/* Replace all subleaves of an extended-topology leaf (0xB or 0x1F) by the
 * SMT, Core and terminating levels. Nothing if KVM did not offer the leaf. */
static int rewrite_ext_topology(struct kvm_cpuid2 *c, unsigned max_nent, uint32_t function,
                                const struct cpu_topology *t, uint32_t apic_id)
{
    unsigned tb = bits_for(t->threads), cb = bits_for(t->cores), out = 0;
    bool present = false;

    for (unsigned i = 0; i < c->nent; i++) {
        if (c->entries[i].function == function) {
            present = true;
            continue;
        }
        c->entries[out++] = c->entries[i];
    }
    if (!present)
        return 0;
    c->nent = out;
    if (c->nent + 3 > max_nent)
        return -ENOSPC;
    set_topo_entry(&c->entries[c->nent++], function, 0, tb, t->threads,
                   0 | TOPO_LEVEL_SMT << 8, apic_id);
    set_topo_entry(&c->entries[c->nent++], function, 1, cb + tb, t->cores * t->threads,
                   1 | TOPO_LEVEL_CORE << 8, apic_id);
    set_topo_entry(&c->entries[c->nent++], function, 2, 0, 0, 2, apic_id);
    return 0;
}

int cpuid_fixup(struct kvm_cpuid2 *c, unsigned max_nent, const struct cpu_topology *t,
                unsigned index)
{
    if (!c || !topo_valid(t) || c->nent > max_nent)
        return -EINVAL;
    unsigned nr = t->sockets * t->cores * t->threads;
    if (index >= nr)
        return -EINVAL;
    unsigned tb = bits_for(t->threads), cb = bits_for(t->cores);
    unsigned per_pkg = t->cores * t->threads;
    uint32_t apic_id = cpuid_apic_id(t, index);
    uint32_t pkg_ids = 1u << (cb + tb);
    unsigned core_in_pkg = (index / t->threads) % t->cores;
    unsigned socket = index / per_pkg;
    int err;

    for (unsigned i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];

        switch (e->function) {
        case 0x1:
            e->ebx &= 0x0000ffffu;
            e->ebx |= (apic_id & 0xffu) << 24;
            e->ebx |= (pkg_ids > 255 ? 255u : pkg_ids) << 16;
            if (per_pkg > 1)
                e->edx |= CPUID_HTT;
            else
                e->edx &= ~CPUID_HTT;
            e->ecx |= CPUID_HYPERVISOR;
            break;
        case 0x4: {
            unsigned type = e->eax & 0x1f, level = (e->eax >> 5) & 0x7;
            if (type == 0)
                break;   /* no more caches */
            uint32_t sharing = level <= 2 ? (1u << tb) - 1 : pkg_ids - 1;
            e->eax &= 0x3fffu;
            e->eax |= ((1u << cb) - 1) << 26;
            e->eax |= (sharing & 0xfffu) << 14;
            break;
        }
        case 0x8000001d: {
            /* AMD cache topology (APM vol. 3, Fn8000_001D): EAX[25:14]
             * NumSharingCache - 1, as leaf 4's field. */
            unsigned type = e->eax & 0x1f, level = (e->eax >> 5) & 0x7;
            if (type == 0)
                break;
            uint32_t sharing = level <= 2 ? (1u << tb) - 1 : pkg_ids - 1;
            e->eax = (e->eax & ~(0xfffu << 14)) | (sharing & 0xfffu) << 14;
            break;
        }
        case 0x80000008:
            e->ecx &= ~0xf0ffu;
            e->ecx |= (per_pkg - 1) & 0xffu;
            e->ecx |= ((cb + tb) & 0xfu) << 12;
            break;
        case 0x8000001e:
            e->eax = apic_id;
            e->ebx = (core_in_pkg & 0xffu) | ((t->threads - 1) & 0xffu) << 8;
            e->ecx = socket & 0xffu;   /* one node per package */
            e->edx = 0;
            break;
        default:
            break;
        }
    }
    err = rewrite_ext_topology(c, max_nent, 0xb, t, apic_id);
    if (err)
        return err;
    return rewrite_ext_topology(c, max_nent, 0x1f, t, apic_id);
}
