/* vCPU threads and the exit loop (vmm/vcpu.h).
 *
 * The path of an exit: KVM_RUN returns to the vCPU thread -> the exit
 * reason is read from the shared kvm_run page -> port I/O goes to
 * bus_read/bus_write on the pio bus, MMIO on the mmio bus -> the device's
 * callback runs on this thread -> KVM_RUN again. The time from KVM_RUN's
 * return to the next KVM_RUN is minivmm's handling time, counted per exit
 * reason when --stats is on (two clock_gettime calls per exit, vDSO).
 *
 * The vCPU sees the VM only through struct vcpu_env (vmm/vcpu.h): the
 * buses, the KVM VM fd, the CPUID policy, the boot registers, the stats
 * and the stop protocol.
 *
 * Stopping: vm_request_stop sets kvm_run->immediate_exit (KVM API 5,
 * "immediate_exit") and sends VCPU_KICK_SIGNAL. immediate_exit is never
 * cleared once set, so a request between the loop's stop check and the
 * ioctl cannot be lost: KVM_RUN then returns -EINTR at once. The signal
 * (blocked in every other thread, handled by a no-op here) interrupts a
 * vCPU that is already inside KVM_RUN. */
#include "vmm/vcpu.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "arch/x86/cpuid_policy.h"
#include "arch/x86/regs.h"
#include "vmm/bus.h"
#include "vmm/log.h"
#include "vmm/stats.h"

/* LAPIC registers (Intel SDM vol. 3A §10.5.1) in struct kvm_lapic_state */
#define APIC_LVT_LINT0     0x350
#define APIC_LVT_LINT1     0x360
#define APIC_MODE_NMI      0x4
#define APIC_MODE_EXTINT   0x7
#define APIC_LVT_MASKED    (1u << 16)

/* ---- exit decoding ---- */

int vcpu_dispatch_io(struct bus *pio, struct kvm_run *run, size_t run_size)
{
    uint32_t size = run->io.size, count = run->io.count;
    uint64_t off = run->io.data_offset;
    uint16_t port = run->io.port;
    bool out = run->io.direction == KVM_EXIT_IO_OUT;
    uint8_t *data;

    /* KVM writes these, but nothing is trusted: the data must lie in the
     * kvm_run mapping, after struct kvm_run itself, and port I/O is 1, 2
     * or 4 bytes wide (Intel SDM vol. 1 §19.2). */
    if (size != 1 && size != 2 && size != 4) {
        log_guest_once("vcpu", "port I/O exit at 0x%x with size %u refused", port, size);
        return -EINVAL;
    }
    if (count == 0 || off < sizeof(struct kvm_run) || off > run_size ||
        (uint64_t)count * size > run_size - off) {
        log_guest_once("vcpu", "port I/O exit at 0x%x: %u x %u bytes at offset 0x%" PRIx64
                       " do not fit the %zu-byte kvm_run; refused", port, count, size, off, run_size);
        return -EINVAL;
    }
    data = (uint8_t *)run + off;
    /* String I/O (rep ins/outs): count elements, all at the same port. */
    for (uint32_t i = 0; i < count; i++, data += size) {
        if (out)
            bus_write(pio, port, data, size);
        else
            bus_read(pio, port, data, size);
    }
    return 0;
}

int vcpu_dispatch_mmio(struct bus *mmio, struct kvm_run *run)
{
    uint32_t len = run->mmio.len;

    if (len == 0 || len > sizeof(run->mmio.data)) {
        log_guest_once("vcpu", "MMIO exit at 0x%llx with length %u refused",
                       (unsigned long long)run->mmio.phys_addr, len);
        return -EINVAL;
    }
    if (run->mmio.is_write)
        bus_write(mmio, run->mmio.phys_addr, run->mmio.data, len);
    else
        bus_read(mmio, run->mmio.phys_addr, run->mmio.data, len);
    return 0;
}

/* ---- diagnostics ---- */

static void vcpu_dump(struct vcpu *v)
{
    struct kvm_regs r;
    struct kvm_sregs s;

    if (v->fd < 0)
        return;
    if (ioctl(v->fd, KVM_GET_REGS, &r) == 0) {
        log_err("vcpu", "vcpu%u: rip %016llx rsp %016llx rflags %08llx", v->index, r.rip, r.rsp, r.rflags);
        log_err("vcpu", "vcpu%u: rax %016llx rbx %016llx rcx %016llx rdx %016llx", v->index,
                r.rax, r.rbx, r.rcx, r.rdx);
        log_err("vcpu", "vcpu%u: rsi %016llx rdi %016llx rbp %016llx", v->index, r.rsi, r.rdi, r.rbp);
    }
    if (ioctl(v->fd, KVM_GET_SREGS, &s) == 0) {
        log_err("vcpu", "vcpu%u: cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx",
                v->index, s.cr0, s.cr2, s.cr3, s.cr4, s.efer);
        log_err("vcpu", "vcpu%u: cs %04x base %llx l %u db %u, ss %04x, gdt %llx/%x, idt %llx/%x",
                v->index, s.cs.selector, s.cs.base, s.cs.l, s.cs.db, s.ss.selector,
                s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
    }
}

static const char *internal_error_name(uint32_t sub)
{
    switch (sub) {
    case KVM_INTERNAL_ERROR_EMULATION: return "instruction emulation failed";
    case KVM_INTERNAL_ERROR_SIMUL_EX: return "exception while delivering an exception";
    case KVM_INTERNAL_ERROR_DELIVERY_EV: return "event delivery failed";
    default: return "see the KVM documentation";
    }
}

/* ---- the loop ---- */

static void vcpu_request_stop(struct vcpu *v, enum vm_stop_reason reason)
{
    if (v->env->request_stop)
        v->env->request_stop(v->env->opaque, reason, 0);
}

static bool vcpu_stop_requested(const struct vcpu *v)
{
    return atomic_load_explicit(v->env->stop_reason, memory_order_acquire) != VM_RUNNING;
}

/* Handle one exit; returns its stats row. Stops the VM on fatal exits. */
unsigned vcpu_handle_exit(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    const struct vcpu_env *env = v->env;

    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        vcpu_dispatch_io(env->pio, run, v->run_size);
        return run->io.direction == KVM_EXIT_IO_OUT ? STATS_ROW_IO_OUT : STATS_ROW_IO_IN;
    case KVM_EXIT_MMIO:
        vcpu_dispatch_mmio(env->mmio, run);
        return run->mmio.is_write ? STATS_ROW_MMIO_WRITE : STATS_ROW_MMIO_READ;
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        break;
    case KVM_EXIT_HLT:
        /* The in-kernel LAPIC handles HLT; this only happens without it. */
        log_guest_once("vcpu", "vcpu%u: HLT exit (not expected with the in-kernel irqchip)", v->index);
        break;
    case KVM_EXIT_SHUTDOWN:
        /* A triple fault: hardware asserts RESET (Intel SDM vol. 3A §6.15,
         * "Interrupt 8 -- Double Fault Exception"), so this is a reset. */
        log_warn("vcpu", "vcpu%u: triple fault (KVM_EXIT_SHUTDOWN): the guest resets", v->index);
        vcpu_request_stop(v, VM_STOP_RESET);
        break;
    case KVM_EXIT_SYSTEM_EVENT:
        switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN:
            vcpu_request_stop(v, VM_STOP_POWEROFF);
            break;
        case KVM_SYSTEM_EVENT_RESET:
            vcpu_request_stop(v, VM_STOP_RESET);
            break;
        case KVM_SYSTEM_EVENT_CRASH:
            log_err("vcpu", "vcpu%u: the guest reported a crash (KVM_SYSTEM_EVENT_CRASH)", v->index);
            vcpu_request_stop(v, VM_STOP_ERROR);
            break;
        default:
            log_err("vcpu", "vcpu%u: unexpected system event %u", v->index, run->system_event.type);
            vcpu_request_stop(v, VM_STOP_ERROR);
            break;
        }
        break;
    case KVM_EXIT_INTERNAL_ERROR: {
        uint32_t n = run->internal.ndata;
        if (n > sizeof(run->internal.data) / sizeof(run->internal.data[0]))
            n = sizeof(run->internal.data) / sizeof(run->internal.data[0]);
        log_err("vcpu", "vcpu%u: KVM internal error, suberror %u (%s)", v->index,
                run->internal.suberror, internal_error_name(run->internal.suberror));
        for (uint32_t i = 0; i < n; i++)
            log_err("vcpu", "vcpu%u:   data[%u] = 0x%llx", v->index, i,
                    (unsigned long long)run->internal.data[i]);
        vcpu_dump(v);
        vcpu_request_stop(v, VM_STOP_ERROR);
        break;
    }
    case KVM_EXIT_FAIL_ENTRY:
        log_err("vcpu", "vcpu%u: VM entry failed, hardware reason 0x%llx on host CPU %u", v->index,
                (unsigned long long)run->fail_entry.hardware_entry_failure_reason,
                run->fail_entry.cpu);
        vcpu_dump(v);
        vcpu_request_stop(v, VM_STOP_ERROR);
        break;
    case KVM_EXIT_UNKNOWN:
        log_err("vcpu", "vcpu%u: unknown exit, hardware reason 0x%llx", v->index,
                (unsigned long long)run->hw.hardware_exit_reason);
        vcpu_dump(v);
        vcpu_request_stop(v, VM_STOP_ERROR);
        break;
    default:
        log_err("vcpu", "vcpu%u: unexpected exit reason %u", v->index, run->exit_reason);
        vcpu_dump(v);
        vcpu_request_stop(v, VM_STOP_ERROR);
        break;
    }
    return stats_row_of_exit(run->exit_reason);
}

static void vcpu_loop(struct vcpu *v)
{
    struct vcpu_stats *st = v->stats;
    uint64_t t_exit = 0, t_enter;
    unsigned row = 0;
    bool have_exit = false;

    while (!vcpu_stop_requested(v)) {
        if (st) {
            t_enter = stats_now_ns();
            if (have_exit)
                stats_add(st, row, t_enter - t_exit);
        }
        int r = ioctl(v->fd, KVM_RUN, 0);
        if (st) {
            t_exit = stats_now_ns();
            st->run_ns += t_exit - t_enter;
            st->runs++;
            have_exit = true;
        }
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                row = STATS_ROW_EINTR;
                continue;
            }
            log_err("vcpu", "vcpu%u: KVM_RUN: %s", v->index, strerror(errno));
            vcpu_request_stop(v, VM_STOP_ERROR);
            break;
        }
        row = vcpu_handle_exit(v);
    }
    if (st && have_exit)
        stats_add(st, row, stats_now_ns() - t_exit);
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    sigset_t kick;

    sigemptyset(&kick);
    sigaddset(&kick, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    vcpu_loop(v);
    return NULL;
}

int vcpu_start(struct vcpu *v, int cpu, const cpu_set_t *fallback)
{
    pthread_attr_t attr;
    cpu_set_t set;
    int err;

    err = pthread_attr_init(&attr);
    if (err)
        return -err;
    if (cpu >= 0) {
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
    } else if (fallback) {
        pthread_attr_setaffinity_np(&attr, sizeof(*fallback), fallback);
    }
    err = pthread_create(&v->thread, &attr, vcpu_thread, v);
    pthread_attr_destroy(&attr);
    if (err) {
        if (cpu >= 0)
            log_err("vcpu", "vcpu%u: cannot start its thread pinned to host CPU %d: %s; check that "
                    "CPU %d is online and allowed (`taskset -cp $$`, cpusets)", v->index, cpu,
                    strerror(err), cpu);
        else
            log_err("vcpu", "vcpu%u: cannot start its thread: %s", v->index, strerror(err));
        return -err;
    }
    v->started = true;
    return 0;
}

void vcpu_kick(struct vcpu *v)
{
    if (v->run)
        __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (v->started)
        pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

/* ---- reset ---- */

#define MSR_IA32_CR_PAT      0x277
#define MSR_MTRR_DEF_TYPE    0x2FF
#define VCPU_RESET_MSRS      2

struct vcpu_reset_state {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_fpu fpu;
    struct kvm_lapic_state lapic;
    struct kvm_mp_state mp;
    struct kvm_vcpu_events events;
    struct kvm_xcrs xcrs;
    bool have_xcrs;
    int nr_msrs;                /* how many of msrs' entries KVM read */
    struct kvm_msrs *msrs;      /* header + VCPU_RESET_MSRS entries */
};

/* Read everything vcpu_reset will put back. */
static int vcpu_capture_reset_state(struct vcpu *v)
{
    struct vcpu_reset_state *r = calloc(1, sizeof(*r));

    if (r)
        r->msrs = calloc(1, sizeof(*r->msrs) + VCPU_RESET_MSRS * sizeof(r->msrs->entries[0]));
    if (!r || !r->msrs) {
        free(r);
        return -ENOMEM;
    }
    if (ioctl(v->fd, KVM_GET_REGS, &r->regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &r->sregs) < 0 ||
        ioctl(v->fd, KVM_GET_FPU, &r->fpu) < 0 || ioctl(v->fd, KVM_GET_LAPIC, &r->lapic) < 0 ||
        ioctl(v->fd, KVM_GET_MP_STATE, &r->mp) < 0 ||
        ioctl(v->fd, KVM_GET_VCPU_EVENTS, &r->events) < 0) {
        int err = -errno;
        log_err("vcpu", "vcpu%u: cannot read its reset state: %s", v->index, strerror(errno));
        free(r->msrs);
        free(r);
        return err;
    }
    r->have_xcrs = ioctl(v->fd, KVM_GET_XCRS, &r->xcrs) == 0;
    r->msrs->nmsrs = VCPU_RESET_MSRS;
    r->msrs->entries[0].index = MSR_IA32_CR_PAT;
    r->msrs->entries[1].index = MSR_MTRR_DEF_TYPE;
    r->nr_msrs = ioctl(v->fd, KVM_GET_MSRS, r->msrs);
    if (r->nr_msrs < 0)
        r->nr_msrs = 0;
    v->reset_state = r;
    return 0;
}

int vcpu_reset(struct vcpu *v)
{
    struct vcpu_reset_state *r = v->reset_state;
    const char *what = NULL;

    if (!r)
        return -EINVAL;
    /* sregs before the LAPIC: KVM_SET_SREGS writes the APIC base MSR */
    if (ioctl(v->fd, KVM_SET_SREGS, &r->sregs) < 0)
        what = "KVM_SET_SREGS";
    else if (ioctl(v->fd, KVM_SET_REGS, &r->regs) < 0)
        what = "KVM_SET_REGS";
    else if (ioctl(v->fd, KVM_SET_FPU, &r->fpu) < 0)
        what = "KVM_SET_FPU";
    else if (r->have_xcrs && ioctl(v->fd, KVM_SET_XCRS, &r->xcrs) < 0)
        what = "KVM_SET_XCRS";
    else if (ioctl(v->fd, KVM_SET_LAPIC, &r->lapic) < 0)
        what = "KVM_SET_LAPIC";
    else if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &r->events) < 0)
        what = "KVM_SET_VCPU_EVENTS";
    else if (ioctl(v->fd, KVM_SET_MP_STATE, &r->mp) < 0)
        what = "KVM_SET_MP_STATE";
    if (!what && r->nr_msrs > 0) {
        r->msrs->nmsrs = (uint32_t)r->nr_msrs;
        if (ioctl(v->fd, KVM_SET_MSRS, r->msrs) < 0)
            what = "KVM_SET_MSRS";
    }
    if (what) {
        int err = -errno;
        log_err("vcpu", "vcpu%u: guest reset: %s: %s", v->index, what, strerror(errno));
        return err;
    }
    __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
    return 0;
}

/* ---- creation ---- */

/* The LAPIC as a PC BIOS leaves it on the boot processor: virtual wire
 * mode, LINT0 ExtINT (the 8259's output) and LINT1 NMI, unmasked
 * (MultiProcessor Specification 1.4 §3.6.2.2). */
static int vcpu_setup_lint(struct vcpu *v)
{
    struct kvm_lapic_state l;
    uint32_t r;

    if (ioctl(v->fd, KVM_GET_LAPIC, &l) < 0)
        return -errno;
    memcpy(&r, &l.regs[APIC_LVT_LINT0], 4);
    r = (r & ~(0x700u | APIC_LVT_MASKED)) | APIC_MODE_EXTINT << 8;
    memcpy(&l.regs[APIC_LVT_LINT0], &r, 4);
    memcpy(&r, &l.regs[APIC_LVT_LINT1], 4);
    r = (r & ~(0x700u | APIC_LVT_MASKED)) | APIC_MODE_NMI << 8;
    memcpy(&l.regs[APIC_LVT_LINT1], &r, 4);
    if (ioctl(v->fd, KVM_SET_LAPIC, &l) < 0)
        return -errno;
    return 0;
}

static int vcpu_set_cpuid(struct vcpu *v, const struct kvm_cpuid2 *supported)
{
    struct kvm_cpuid2 *c;
    int err;

    err = cpuid_policy_table(supported, &v->env->cpuid, v->index, &c);
    if (err) {
        log_err("vcpu", "vcpu%u: cannot build its CPUID: %s", v->index, strerror(-err));
        return err;
    }
    if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
        err = -errno;
        log_err("vcpu", "vcpu%u: KVM_SET_CPUID2: %s", v->index, strerror(errno));
    }
    free(c);
    return err;
}

int vcpu_create(const struct vcpu_env *env, struct vcpu *v, unsigned index,
                const struct kvm_cpuid2 *supported)
{
    int err;

    memset(v, 0, sizeof(*v));
    v->env = env;
    v->index = index;
    /* vcpu_id = APIC ID (KVM API, KVM_CREATE_VCPU): the same function and
     * topology as the CPUID's and the MADT's (vmm/vm.c's apic_ids). */
    v->apic_id = cpuid_apic_id(&env->cpuid.topo, index);
    v->fd = ioctl(env->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->apic_id);
    if (v->fd < 0) {
        err = -errno;
        log_err("vcpu", "vcpu%u: KVM_CREATE_VCPU with APIC ID %u: %s", index, v->apic_id,
                strerror(errno));
        v->fd = -1;
        return err;
    }
    v->run_size = env->run_size;
    v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        err = -errno;
        v->run = NULL;
        log_err("vcpu", "vcpu%u: cannot map kvm_run: %s", index, strerror(errno));
        goto fail;
    }
    err = vcpu_set_cpuid(v, supported);
    if (err)
        goto fail;
    /* Firmware starts from KVM's reset state (real mode, CS base
     * 0xFFFF0000, RIP 0xFFF0: the reset vector at 0xFFFFFFF0, Intel SDM
     * vol. 3A §9.1.4); a direct Linux boot gets the loader's state. */
    if (index == 0 && env->boot) {
        err = regs_apply_boot_state(v->fd, env->boot);
        if (err)
            goto fail;
        err = vcpu_setup_lint(v);
        if (err) {
            log_err("vcpu", "vcpu0: cannot set up the LAPIC's LINT0/LINT1: %s", strerror(-err));
            goto fail;
        }
    }
    err = vcpu_capture_reset_state(v);
    if (err)
        goto fail;
    if (env->stats)
        v->stats = &env->stats[index];
    return 0;
fail:
    vcpu_destroy(v);
    return err;
}

void vcpu_destroy(struct vcpu *v)
{
    if (v->reset_state)
        free(v->reset_state->msrs);
    free(v->reset_state);
    v->reset_state = NULL;
    if (v->run)
        munmap(v->run, v->run_size);
    v->run = NULL;
    if (v->fd >= 0)
        close(v->fd);
    v->fd = -1;
}
