/* The CPUID a vCPU gets: KVM_GET_SUPPORTED_CPUID edited by a small policy
 * into the table for KVM_SET_CPUID2 (KVM API, both ioctls). Pure: no KVM,
 * no allocation but cpuid_policy_table's; unit-tested
 * (tests/unit/test_cpuid_policy.c). vmm/vcpu.c calls it once per vCPU; what the policy
 * says comes from the configuration (vmm/vm.c fills it in).
 *
 * The edits, in this order:
 *
 *   what                  leaves                       when
 *   topology              0x1, 0x4, 0xB, 0x1F,         always (cpuid_fixup,
 *                         0x8000001D, 0x80000008,      arch/x86/cpuid.h); also
 *                         0x8000001E                   sets CPUID.1:ECX[31]
 *   TSC-deadline timer    CPUID.1:ECX[24]              tsc_deadline: KVM
 *                                                      emulates it but leaves
 *                                                      the bit out of
 *                                                      KVM_GET_SUPPORTED_CPUID
 *                                                      (KVM API,
 *                                                      KVM_CAP_TSC_DEADLINE_TIMER)
 *   hide the hypervisor   CPUID.1:ECX[31] cleared;     hide_hypervisor
 *                         0x40000000-0x400000FF        (--hide-hypervisor)
 *                         removed
 *
 * Hiding the hypervisor is for passed-through GPUs: NVIDIA's driver before
 * R465 stops with Code 43 when it sees KVM. CPUID.1:ECX[31] is the
 * "hypervisor present" bit (AMD APM vol. 3, CPUID Fn0000_0001_ECX bit 31,
 * "reserved for use by hypervisor to indicate guest status"; Intel SDM
 * vol. 2A documents it as 0 on hardware), and 0x40000000-0x400000FF are the
 * hypervisor leaves: KVM's "KVMKVMKVM" signature at 0x40000000 and its
 * paravirtual features at 0x40000001 (Documentation/virt/kvm/x86/cpuid.rst).
 * Removing them takes kvmclock, PV EOI and the other PV features with them;
 * the guest runs on the TSC and the emulated LAPIC like on hardware.
 *
 * Not implemented (a later issue; the order above is where they go)
 *   Hyper-V enlightenments: leaves 0x40000000-0x4000000A as the Hypervisor
 *     Top Level Functional Specification defines them ("Microsoft Hv"
 *     signature, features, recommendations, limits), with KVM's own leaves
 *     moved to 0x40000100 (Documentation/virt/kvm/x86/cpuid.rst: the base
 *     may be 0x40000000 + n * 0x100). Needs KVM_GET_SUPPORTED_HV_CPUID and
 *     the SynIC/stimer MSRs; CPUID_POLICY_ROOM grows by those leaves then.
 *   "kvm=off"-style hiding: only KVM's signature leaves go (so a Windows
 *     guest keeps Hyper-V's), and the hypervisor bit stays. Today
 *     hide_hypervisor removes the whole range, which is what a guest
 *     without enlightenments needs. */
#ifndef MINIVMM_CPUID_POLICY_H
#define MINIVMM_CPUID_POLICY_H
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "arch/x86/cpuid.h"

#define CPUID_POLICY_HV_BASE   0x40000000u   /* first hypervisor leaf */
#define CPUID_POLICY_HV_LAST   0x400000ffu   /* last leaf of KVM's range */

/* Entries beyond the supported table's that cpuid_policy_build may add:
 * cpuid_fixup's (0xB and 0x1F rebuilt as three subleaves each). */
#define CPUID_POLICY_ROOM      6

/* The same for every vCPU of a VM; the vCPU index is an argument. */
struct cpuid_policy {
    struct cpu_topology topo;   /* APIC IDs: cpuid_apic_id(&topo, index) */
    bool tsc_deadline;          /* KVM_CAP_TSC_DEADLINE_TIMER: advertise it */
    bool hide_hypervisor;       /* --hide-hypervisor (vfio/vfio_args.c) */
};

/* Build vCPU index's table in out (room for max_nent entries) from
 * supported, which is left alone (out may be supported itself when it has
 * the room). Nothing outside the leaves and bits in the table above
 * changes, and entries keep their order (but the rebuilt 0xB/0x1F
 * subleaves, which go last). Returns 0; -EINVAL for a NULL argument, a bad
 * topology or an index past its vCPUs; -ENOSPC when out has no room for
 * the result (supported->nent + CPUID_POLICY_ROOM is always enough). On
 * error out's contents are unspecified. */
int cpuid_policy_build(struct kvm_cpuid2 *out, unsigned max_nent,
                       const struct kvm_cpuid2 *supported, const struct cpuid_policy *p,
                       unsigned index);

/* The same into a table allocated with that room; *out is the caller's to
 * free. -ENOMEM, or cpuid_policy_build's errors (then *out is NULL). */
int cpuid_policy_table(const struct kvm_cpuid2 *supported, const struct cpuid_policy *p,
                       unsigned index, struct kvm_cpuid2 **out);

#endif
