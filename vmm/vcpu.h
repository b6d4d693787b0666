/* vCPUs: one thread each, running KVM_RUN and dispatching its exits.
 *
 * The exit loop is the only place guest accesses are dispatched: port I/O
 * to the pio bus, MMIO to the mmio bus (vmm/bus.h). Everything else the
 * guest does either stays in KVM (the in-kernel irqchip, PIT, HLT) or stops
 * the VM (shutdown, system events, KVM errors). */
#ifndef MINIVMM_VCPU_H
#define MINIVMM_VCPU_H
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct bus;
struct kvm_run;
struct kvm_cpuid2;
struct vcpu_stats;
struct vcpu_reset_state;

struct vcpu {
    struct vm *vm;
    unsigned index;             /* 0 .. nr_cpus-1; 0 is the boot vCPU */
    uint32_t apic_id;           /* = KVM vcpu_id, from cpuid_apic_id() */
    int fd;
    struct kvm_run *run;        /* shared with KVM (KVM_GET_VCPU_MMAP_SIZE) */
    size_t run_size;
    pthread_t thread;
    bool started;               /* thread exists (guarded by vm->kick_lock) */
    struct vcpu_stats *stats;   /* NULL unless --stats/--stats-json */
    struct vcpu_reset_state *reset_state;   /* captured at creation */
};

/* KVM_CREATE_VCPU (vcpu_id = apic_id), map kvm_run, set CPUID from
 * supported (run through cpuid_fixup for this index). The boot vCPU also
 * gets the loader's register state and the LAPIC's virtual-wire LINT setup. */
int vcpu_create(struct vm *vm, struct vcpu *v, unsigned index,
                const struct kvm_cpuid2 *supported);
void vcpu_destroy(struct vcpu *v);

/* Guest reset (the thread is not running): put the vCPU back in the state
 * it had right after vcpu_create -- registers, segment/control registers
 * (the reset vector, or the direct boot's entry state on vCPU 0), FPU,
 * XCR0, LAPIC, pending events, MTRR default type and PAT, and the MP state
 * (application processors wait for INIT/SIPI again) -- and clear
 * immediate_exit. KVM has no vCPU reset ioctl; this is the same state
 * replayed (Intel SDM vol. 3A §9.1.1, "Processor State After Reset"). */
int vcpu_reset(struct vcpu *v);

/* Start the thread "vcpuN", pinned to host CPU `cpu`, or when cpu is -1 to
 * `fallback` (the CPUs the process had at start; NULL: inherit). */
int vcpu_start(struct vcpu *v, int cpu, const cpu_set_t *fallback);

/* Make a running KVM_RUN return (immediate_exit + SIGUSR1). The caller
 * holds vm->kick_lock. */
void vcpu_kick(struct vcpu *v);
#define VCPU_KICK_SIGNAL SIGUSR1

/* Exit decoding, separate from the loop so unit tests and the fuzzer can
 * drive them with any kvm_run contents. Returns 0, or -EINVAL when the exit
 * describes an access that cannot be right (size, count or data offset out
 * of bounds of the run_size-byte kvm_run mapping): it is refused, not
 * performed. */
int vcpu_dispatch_io(struct bus *pio, struct kvm_run *run, size_t run_size);
int vcpu_dispatch_mmio(struct bus *mmio, struct kvm_run *run);

#endif
