/* Test-side KVM_GET_SUPPORTED_CPUID-shaped tables, for test_cpuid.c and
 * test_cpuid_policy.c. Header-only (static functions), like fake_env.h. */
#ifndef MINIVMM_TEST_CPUID_TABLE_H
#define MINIVMM_TEST_CPUID_TABLE_H
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

/* An empty table with room for `room` entries. */
static inline struct kvm_cpuid2 *cpuid_table(unsigned room)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + room * sizeof(struct kvm_cpuid_entry2));
    cr_assert_not_null(c);
    return c;
}

/* Append a leaf; the leaves KVM reports per sub-leaf (4, 7, 0xB, 0xD,
 * 0x1F) get KVM_CPUID_FLAG_SIGNIFCANT_INDEX as KVM gives them. */
static inline void cpuid_add(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx, uint32_t eax,
                             uint32_t ebx, uint32_t ecx, uint32_t edx)
{
    struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];
    memset(e, 0, sizeof(*e));
    e->function = fn;
    e->index = idx;
    e->eax = eax;
    e->ebx = ebx;
    e->ecx = ecx;
    e->edx = edx;
    if (fn == 4 || fn == 7 || fn == 0xb || fn == 0xd || fn == 0x1f)
        e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
}

#endif
