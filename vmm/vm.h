/* The VM: KVM handles, guest memory, buses, interrupt routing, devices,
 * vCPUs, and the stop protocol. Devices never include this header; they see
 * the VM through struct dev_env (vmm/dev_env.h).
 *
 * Life cycle (frontend/main.c):
 *   vm_create -> vm_start (the ordered start-up steps; on failure the steps
 *   done are undone in reverse) -> vm_run (until a stop request or a
 *   signal) -> vm_exit_code -> vm_destroy (undo every step, in reverse). */
#ifndef MINIVMM_VM_H
#define MINIVMM_VM_H
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arch/x86/cpuid.h"
#include "arch/x86/regs.h"
#include "boot/acpi.h"
#include "boot/e820.h"
#include "devices/chipset/q35.h"
#include "devices/pci/pcidev.h"
#include "vmm/bus.h"
#include "vmm/config.h"
#include "vmm/dev_env.h"
#include "vmm/gm.h"
#include "vmm/irq.h"
#include "vmm/memslot.h"
#include "vmm/stats.h"
#include "vmm/vcpu.h"

/* Where KVM keeps its real-mode helpers on VMX hosts (KVM API 4.44, 4.67):
 * one page for the EPT identity map and three for the TSS, at
 * 0xFEFFC000-0xFEFFFFFF: below the firmware flash (a 4 MiB OVMF sits at
 * 0xFFC00000-0xFFFFFFFF), above the IOAPIC (0xFEC00000) and the LAPIC
 * (0xFEE00000), clear of RAM (lowmem <= 0xB0000000). QEMU uses the same
 * pages, so OVMF already expects them reserved. */
#define VM_TSS_ADDR          0xfeffd000ULL
#define VM_IDENTITY_MAP_ADDR 0xfeffc000ULL
#define VM_IOAPIC_ADDR       0xfec00000ULL
#define VM_LAPIC_ADDR        0xfee00000ULL

struct uart;
struct i8042;
struct sysctl;
struct q35;
struct vm_irqchip_state;

struct vm {
    const struct config *cfg;

    /* KVM */
    int kvm_fd, vm_fd;
    size_t run_size;                /* KVM_GET_VCPU_MMAP_SIZE */
    unsigned max_irq_routes;        /* KVM_CAP_IRQ_ROUTING */
    bool tsc_deadline;              /* KVM_CAP_TSC_DEADLINE_TIMER */

    struct memslots memslots;       /* every KVM memory slot: RAM, later BARs */
    struct gm gm;
    int ram_slots[GM_MAX_REGIONS];
    struct irq_table irq;
    struct vm_irqchip_state *irqchip_reset;   /* PIC, IOAPIC, PIT as created */
    unsigned resets;                /* in-process guest resets so far */
    struct bus pio, mmio;
    struct dev_env env;

    /* devices */
    int serial_fd;                  /* file:PATH, owned; -1 otherwise */
    struct uart *uart;
    struct i8042 *i8042;
    struct sysctl *sysctl;
    struct q35 *q35;                /* PCI, MCH, LPC (+ACPI PM), RTC, fw_cfg, flash */
    struct q35_persist q35_persist; /* RTC/CMOS and SMBIOS UUID across guest resets */
    struct pcidev_list pci_devs;    /* every PCI device, placed and plugged by q35 */
    char vars_path[4096];           /* firmware: the VARS copy in use */

    /* boot */
    struct cpu_topology topo;
    uint32_t apic_ids[CONFIG_MAX_CPUS];
    struct e820_entry e820[E820_MAX];
    unsigned nr_e820;
    uint64_t rsdp;
    struct acpi_config acpi;        /* direct boot: in RAM; firmware: through fw_cfg */
    struct x86_boot_state boot;

    /* vCPUs */
    struct vcpu_env vcpu_env;       /* what they see of the VM (step_vcpus) */
    struct vcpu *vcpus;
    unsigned nr_vcpus;              /* created so far */
    pthread_mutex_t kick_lock;      /* vcpu->started, kicks vs joins */
    bool kicks_disabled;

    /* measurement */
    struct stats stats;
    bool stats_on;
    FILE *stats_json;

    /* stop protocol: first reason wins */
    atomic_int stop_reason;         /* enum vm_stop_reason */
    atomic_int stop_code;
    int stop_efd;                   /* eventfd: a stop was requested */
    int signal_fd;                  /* signalfd: SIGINT, SIGTERM, SIGHUP */
    sigset_t saved_sigmask;
    struct sigaction saved_kick_action, saved_pipe_action;

    /* host CPUs */
    cpu_set_t process_cpus;         /* affinity at start: unpinned threads */
    cpu_set_t emulator_cpus;        /* the main thread's after --emulator-pin */

    unsigned steps_done;
    bool ran;                       /* vCPU threads started: report stats */
};

int vm_create(const struct config *cfg, struct vm **out);
/* Run the start-up steps; on failure undo those done and return -errno
 * (the failing step has logged why). */
int vm_start(struct vm *vm);
/* Wait for a stop request or SIGINT/SIGTERM/SIGHUP; then stop the vCPUs.
 * A guest reset (0xCF9, i8042 0xFE, triple fault, KVM reset event)
 * restarts the guest in this process unless --no-reboot: vCPU threads
 * stopped and joined, the q35 platform re-created (PCI config, fw_cfg,
 * flash mode; the VARS file and the host clock behind the RTC stay), the
 * in-kernel PIC/IOAPIC/PIT and every vCPU put back as created, the direct
 * boot's tables and kernel reloaded, threads started again. */
void vm_run(struct vm *vm);
/* 0 power-off, debug-exit value & 0xff, 2 fatal error, 3 reset with
 * --no-reboot (or a restart that failed), 128+signo. */
int vm_exit_code(struct vm *vm);
/* Undo every step done (joins the vCPU threads first), free vm. */
void vm_destroy(struct vm *vm);

/* Any thread: ask the VM to stop. The first request wins; later ones are
 * ignored. Sets immediate_exit on every vCPU and kicks their threads. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int code);

/* What a guest reset does with a start-up step: the reset is a walk of the
 * step table (vm.c's vm_reset). RAM, KVM, the buses, the host side of the
 * devices (images, taps, VFIO groups) and the chips outside the q35
 * platform are kept, as a PC keeps its power supply. */
enum vm_on_reset {
    VM_RESET_KEEP,      /* left as it is */
    VM_RESET_REDO,      /* undone (in reverse), then run again (in order);
                         * the step's reset function, if it has one, runs
                         * instead of its run */
    VM_RESET_HOOK,      /* its reset function runs, in order */
};

/* The start-up steps, for ARCHITECTURE.md and tests: names in order, and
 * what a reset does with each. */
unsigned vm_nr_steps(void);
const char *vm_step_name(unsigned i);
enum vm_on_reset vm_step_on_reset(unsigned i);

#endif
