#ifndef MINIVMM_CPUID_H
#define MINIVMM_CPUID_H
#include <stdint.h>
#include <linux/kvm.h>
struct cpu_topology { unsigned sockets, cores, threads; };
/* APIC ID of vCPU index i: thread, core and socket fields each padded to a
 * power of two (Intel SDM vol. 3A §9.4.1), as leaves 0xB/0x1F report. */
uint32_t cpuid_apic_id(const struct cpu_topology *t, unsigned index);
/* Rewrite a KVM_GET_SUPPORTED_CPUID result for vCPU index: APIC IDs and
 * counts in leaves 0x1, 0x4, 0xB, 0x1F, 0x80000008, 0x8000001E consistent
 * with t. Pure (unit-tested). */
int cpuid_fixup(struct kvm_cpuid2 *c, const struct cpu_topology *t, unsigned index);
#endif
