#ifndef MINIVMM_CPUID_H
#define MINIVMM_CPUID_H
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>
struct cpu_topology { unsigned sockets, cores, threads; };
/* APIC ID of vCPU index i: thread, core and socket fields each padded to a
 * power of two (Intel SDM vol. 3A §9.4.1), as leaves 0xB/0x1F report. */
uint32_t cpuid_apic_id(const struct cpu_topology *t, unsigned index);
/* Rewrite a KVM_GET_SUPPORTED_CPUID result for vCPU index: APIC IDs and
 * counts in leaves 0x1, 0x4, 0xB, 0x1F, 0x80000008, 0x8000001E consistent
 * with t, and the hypervisor bit (leaf 1 ECX[31]). The subleaves of 0xB and
 * 0x1F (when present) are replaced by exactly three, so c->entries must
 * have room for max_nent entries (c->nent + 6 is always enough). -EINVAL for
 * a bad topology or index, -ENOSPC without room. Pure (unit-tested). */
int cpuid_fixup(struct kvm_cpuid2 *c, unsigned max_nent, const struct cpu_topology *t,
                unsigned index);
#endif
