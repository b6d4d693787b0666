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

#include "arch/x86/cpuid_policy.h"
#include "vmm/dev_env.h"

struct bus;
struct kvm_run;
struct kvm_cpuid2;
struct vcpu_stats;
struct vcpu_reset_state;
struct x86_boot_state;

/* What a vCPU sees of the VM, the same for every vCPU: filled in by
 * vmm/vm.c (step_vcpus) and alive until the vCPUs are destroyed. The vCPU
 * code never includes vmm/vm.h, so the exit handling can be driven by a
 * unit test or the fuzzer with fake buses and a recording stop function,
 * as devices are with struct dev_env. */
struct vcpu_env {
    struct bus *pio, *mmio;     /* where exits are dispatched (vmm/bus.h) */
    int vm_fd;                  /* KVM_CREATE_VCPU */
    size_t run_size;            /* KVM_GET_VCPU_MMAP_SIZE */
    struct cpuid_policy cpuid;  /* arch/x86/cpuid_policy.h; APIC IDs from its topology */
    /* Direct Linux boot: vCPU 0's entry registers (the loader's); NULL for
     * firmware, which starts from KVM's reset state. */
    const struct x86_boot_state *boot;
    struct vcpu_stats *stats;   /* one per vCPU, by index; NULL without --stats */
    /* The stop protocol: the loop runs while *stop_reason is VM_RUNNING,
     * and a fatal exit, a reset or a power-off asks for a stop through
     * request_stop (vm_request_stop: first reason wins, every vCPU kicked). */
    atomic_int *stop_reason;    /* enum vm_stop_reason */
    void (*request_stop)(void *opaque, enum vm_stop_reason reason, int code);
    void *opaque;
};

struct vcpu {
    const struct vcpu_env *env;
    unsigned index;             /* 0 .. nr_cpus-1; 0 is the boot vCPU */
    uint32_t apic_id;           /* = KVM vcpu_id, from cpuid_apic_id() */
    int fd;
    struct kvm_run *run;        /* shared with KVM (KVM_GET_VCPU_MMAP_SIZE) */
    size_t run_size;
    pthread_t thread;
    bool started;               /* thread exists (guarded by the kick lock, see vcpu_kick) */
    struct vcpu_stats *stats;   /* NULL unless --stats/--stats-json */
    struct vcpu_reset_state *reset_state;   /* captured at creation */
};

/* KVM_CREATE_VCPU (vcpu_id = the APIC ID of index in env->cpuid.topo), map
 * kvm_run, set the CPUID cpuid_policy_table builds from supported and
 * env->cpuid for this index. With env->boot, vCPU 0 also gets those
 * registers and the LAPIC's virtual-wire LINT setup. */
int vcpu_create(const struct vcpu_env *env, struct vcpu *v, unsigned index,
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
 * holds the lock that guards v->started against the join (vm->kick_lock). */
void vcpu_kick(struct vcpu *v);
#define VCPU_KICK_SIGNAL SIGUSR1

/* Exit decoding, separate from the loop so unit tests and the fuzzer can
 * drive them with any kvm_run contents. Returns 0, or -EINVAL when the exit
 * describes an access that cannot be right (size, count or data offset out
 * of bounds of the run_size-byte kvm_run mapping): it is refused, not
 * performed. */
int vcpu_dispatch_io(struct bus *pio, struct kvm_run *run, size_t run_size);
int vcpu_dispatch_mmio(struct bus *mmio, struct kvm_run *run);

/* One exit of v (v->run as KVM_RUN left it): dispatched to env's buses, or
 * a stop requested through env for the exits that end the run (triple
 * fault and reset events: VM_STOP_RESET; shutdown event: VM_STOP_POWEROFF;
 * crash, KVM errors and unknown exits: VM_STOP_ERROR). Returns the exit's
 * stats row (vmm/stats.h). Needs v->env, v->run and v->run_size only; the
 * register dump of fatal exits reads v->fd, and with -1 it is skipped. */
unsigned vcpu_handle_exit(struct vcpu *v);

#endif
