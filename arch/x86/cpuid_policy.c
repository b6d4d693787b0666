/* CPUID policy: the edits and the reasons are in arch/x86/cpuid_policy.h. */
#include "arch/x86/cpuid_policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CPUID_TSC_DEADLINE (1u << 24)   /* leaf 1 ECX (Intel SDM vol. 2A, CPUID) */
#define CPUID_HYPERVISOR   (1u << 31)   /* leaf 1 ECX (AMD APM vol. 3, Fn0000_0001) */

/* Leaf 1 ECX: |= set, then &= ~clear. */
static void edit_leaf1_ecx(struct kvm_cpuid2 *c, uint32_t set, uint32_t clear)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == 1)
            c->entries[i].ecx = (c->entries[i].ecx | set) & ~clear;
}

/* Drop the entries with function in [first, last], keeping the others'
 * order. */
static void remove_leaves(struct kvm_cpuid2 *c, uint32_t first, uint32_t last)
{
    uint32_t out = 0;

    for (uint32_t i = 0; i < c->nent; i++) {
        uint32_t fn = c->entries[i].function;
        if (fn >= first && fn <= last)
            continue;
        if (out != i)
            c->entries[out] = c->entries[i];
        out++;
    }
    c->nent = out;
}

int cpuid_policy_build(struct kvm_cpuid2 *out, unsigned max_nent,
                       const struct kvm_cpuid2 *supported, const struct cpuid_policy *p,
                       unsigned index)
{
    int err;

    if (!out || !supported || !p)
        return -EINVAL;
    if (supported->nent > max_nent)
        return -ENOSPC;
    if (out != supported) {
        out->nent = supported->nent;
        out->padding = 0;
        memcpy(out->entries, supported->entries, supported->nent * sizeof(out->entries[0]));
    }
    err = cpuid_fixup(out, max_nent, &p->topo, index);
    if (err)
        return err;
    if (p->tsc_deadline)
        edit_leaf1_ecx(out, CPUID_TSC_DEADLINE, 0);
    if (p->hide_hypervisor) {
        edit_leaf1_ecx(out, 0, CPUID_HYPERVISOR);
        remove_leaves(out, CPUID_POLICY_HV_BASE, CPUID_POLICY_HV_LAST);
    }
    return 0;
}

int cpuid_policy_table(const struct kvm_cpuid2 *supported, const struct cpuid_policy *p,
                       unsigned index, struct kvm_cpuid2 **out)
{
    struct kvm_cpuid2 *c;
    unsigned max;
    int err;

    *out = NULL;
    if (!supported || !p)
        return -EINVAL;
    max = supported->nent + CPUID_POLICY_ROOM;
    c = calloc(1, sizeof(*c) + (size_t)max * sizeof(c->entries[0]));
    if (!c)
        return -ENOMEM;
    err = cpuid_policy_build(c, max, supported, p, index);
    if (err) {
        free(c);
        return err;
    }
    *out = c;
    return 0;
}
