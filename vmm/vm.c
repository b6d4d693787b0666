/* The VM and its start-up (vmm/vm.h).
 *
 * Start-up is the explicit, ordered table `vm_steps` below: each step has a
 * name, a function that does it and one that undoes it. vm_start runs them
 * in order; when one fails (having logged why), the steps already done are
 * undone in reverse, so a failed start leaves nothing behind. vm_destroy
 * undoes all of them the same way after a run. There is no other
 * registration: what the VM consists of is this table.
 *
 * Interrupt controller: KVM_CREATE_IRQCHIP puts the PIC pair, the IOAPIC
 * and every LAPIC in the kernel (not a split irqchip, which would move the
 * IOAPIC and PIC to userspace): interrupts from irqfds and MSI routes reach
 * the guest without minivmm on the path, EOIs and HLT never leave the
 * kernel, and there is less code here. See ARCHITECTURE.md. */
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "boot/acpi.h"
#include "boot/e820.h"
#include "boot/linux.h"
#include "devices/chipset/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/chipset/pflash.h"
#include "devices/chipset/q35.h"
#include "devices/chipset/sysctl.h"
#include "devices/legacy/uart.h"
#include "devices/pci/pcidev.h"
#include "devices/block/disk_args.h"
#include "devices/display/bochs_display.h"
#include "devices/storage/ahci.h"
#include "devices/storage/nvme.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_net_args.h"
#include "vfio/vfio_pci.h"
#include "vmm/log.h"

#define KVM_API_VERSION_EXPECTED 12

/* ---- dev_env glue ---- */

static int vm_env_irq_set(void *opaque, unsigned gsi, int level)
{
    struct vm *vm = opaque;
    return irq_line(&vm->irq, gsi, level);
}

static void vm_env_request_stop(void *opaque, enum vm_stop_reason reason, int code)
{
    vm_request_stop(opaque, reason, code);
}

/* ---- stop protocol ---- */

static void vm_kick_all(struct vm *vm)
{
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        vcpu_kick(&vm->vcpus[i]);
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int code)
{
    int expected = VM_RUNNING;
    uint64_t one = 1;

    if (reason == VM_RUNNING)
        return;
    if (!atomic_compare_exchange_strong(&vm->stop_reason, &expected, (int)reason))
        return;   /* someone else asked first */
    atomic_store(&vm->stop_code, code);
    if (vm->stop_efd >= 0 && write(vm->stop_efd, &one, sizeof(one)) < 0)
        log_warn("vm", "cannot signal the stop request: %s", strerror(errno));
    pthread_mutex_lock(&vm->kick_lock);
    if (!vm->kicks_disabled)
        vm_kick_all(vm);
    pthread_mutex_unlock(&vm->kick_lock);
}

/* ---- the steps ---- */

static void kick_handler(int sig)
{
    (void)sig;   /* only there to make KVM_RUN return -EINTR */
}

/* Signals: SIGINT/SIGTERM/SIGHUP are blocked in every thread (all threads
 * are created later and inherit the mask) and read by the main thread from
 * a signalfd; the vCPU kick signal is blocked everywhere but in vCPU
 * threads; SIGPIPE is ignored (a closed console pipe is an error return,
 * not death). */
static int step_signals(struct vm *vm)
{
    sigset_t block, sigs;
    struct sigaction sa;

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    block = sigs;
    sigaddset(&block, VCPU_KICK_SIGNAL);
    if (pthread_sigmask(SIG_BLOCK, &block, &vm->saved_sigmask))
        return -EINVAL;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler;   /* no SA_RESTART: KVM_RUN must return */
    sigemptyset(&sa.sa_mask);
    sigaction(VCPU_KICK_SIGNAL, &sa, &vm->saved_kick_action);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &vm->saved_pipe_action);

    vm->signal_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->signal_fd < 0 || vm->stop_efd < 0) {
        int err = -errno;
        log_err("vm", "cannot create the signalfd/eventfd for stop requests: %s", strerror(errno));
        return err;
    }
    return 0;
}

static void undo_signals(struct vm *vm)
{
    struct signalfd_siginfo si;

    if (vm->signal_fd >= 0) {
        /* Consume signals already seen, so unblocking them does not kill
         * the process on its way out. */
        while (read(vm->signal_fd, &si, sizeof(si)) == sizeof(si))
            ;
        close(vm->signal_fd);
    }
    if (vm->stop_efd >= 0)
        close(vm->stop_efd);
    vm->signal_fd = vm->stop_efd = -1;
    sigaction(VCPU_KICK_SIGNAL, &vm->saved_kick_action, NULL);
    sigaction(SIGPIPE, &vm->saved_pipe_action, NULL);
    pthread_sigmask(SIG_SETMASK, &vm->saved_sigmask, NULL);
}

/* Host CPUs: remember the process' CPUs (unpinned vCPUs run there) and pin
 * the main thread for --emulator-pin; threads it creates inherit that. */
static int step_pinning(struct vm *vm)
{
    const struct config *cfg = vm->cfg;
    int err;

    if (sched_getaffinity(0, sizeof(vm->process_cpus), &vm->process_cpus) < 0) {
        err = -errno;
        log_err("vm", "cannot read this process' CPU affinity: %s", strerror(errno));
        return err;
    }
    vm->emulator_cpus = vm->process_cpus;
    if (cfg->emulator_pin >= 0) {
        CPU_ZERO(&vm->emulator_cpus);
        CPU_SET(cfg->emulator_pin, &vm->emulator_cpus);
        err = pthread_setaffinity_np(pthread_self(), sizeof(vm->emulator_cpus), &vm->emulator_cpus);
        if (err) {
            log_err("vm", "--emulator-pin %d: cannot pin the main thread: %s; check the CPU is "
                    "online and allowed (`taskset -cp $$`)", cfg->emulator_pin, strerror(err));
            return -err;
        }
    }
    return 0;
}

static void undo_pinning(struct vm *vm)
{
    if (vm->cfg->emulator_pin >= 0)
        pthread_setaffinity_np(pthread_self(), sizeof(vm->process_cpus), &vm->process_cpus);
}

/* Boot source, checked before anything costly is set up: OVMF from flash
 * (--firmware, or no --kernel), or a direct Linux boot (--kernel alone). */
static int step_boot_source(struct vm *vm)
{
    const struct config *cfg = vm->cfg;

    if (cfg->firmware_boot) {
        const char *code = cfg->firmware ? cfg->firmware : PFLASH_DEFAULT_CODE;
        char real[4096];
        /* Debian's Secure Boot builds are built with SMM_REQUIRE (their
         * firmware descriptors in /usr/share/qemu/firmware say
         * "requires-smm"); minivmm has no SMM, so they would hang at the
         * first SMI. OVMF_CODE_4M.fd does Secure Boot without SMM. */
        if (realpath(code, real) && (!strcmp(real, "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd") ||
                                     !strcmp(real, "/usr/share/OVMF/OVMF_CODE.secboot.fd"))) {
            log_err("vm", "--firmware %s: this OVMF build requires SMM, which minivmm does not "
                    "emulate; use /usr/share/OVMF/OVMF_CODE_4M.fd (it does Secure Boot too: give "
                    "it a copy of /usr/share/OVMF/OVMF_VARS_4M.ms.fd as --vars to boot with "
                    "Secure Boot on)", code);
            return -ENOTSUP;
        }
        if (access(code, R_OK) < 0) {
            int err = -errno;
            if (cfg->firmware)
                log_err("vm", "--firmware %s: %s; give the path of an OVMF CODE image "
                        "(e.g. /usr/share/OVMF/OVMF_CODE_4M.fd)", code, strerror(errno));
            else
                log_err("vm", "no --kernel, so minivmm boots UEFI firmware, but %s: %s; install "
                        "the ovmf package (apt install ovmf), or pass --firmware CODE.fd or "
                        "--kernel bzImage", code, strerror(errno));
            return err;
        }
        if (cfg->vars) {
            if (strlen(cfg->vars) >= sizeof(vm->vars_path)) {
                log_err("vm", "--vars %s: path too long", cfg->vars);
                return -ENAMETOOLONG;
            }
            strcpy(vm->vars_path, cfg->vars);
        } else {
            char name[CONFIG_NAME_MAX + 16];
            int err = config_vm_name(cfg, name, sizeof(name));
            if (!err)
                err = pflash_default_vars_path(name, vm->vars_path, sizeof(vm->vars_path));
            if (err) {
                log_err("vm", "no --vars, and no place for the default UEFI variable store "
                        "($XDG_STATE_HOME and $HOME unset): give --vars FILE");
                return err;
            }
        }
    }
    if (cfg->kernel && access(cfg->kernel, R_OK) < 0) {
        int err = -errno;
        log_err("vm", "--kernel %s: %s; give a readable bzImage", cfg->kernel, strerror(errno));
        return err;
    }
    if (cfg->initrd && access(cfg->initrd, R_OK) < 0) {
        int err = -errno;
        log_err("vm", "--initrd %s: %s; give a readable initramfs", cfg->initrd, strerror(errno));
        return err;
    }
    return 0;
}

static int step_stats(struct vm *vm)
{
    const struct config *cfg = vm->cfg;
    int err;

    if (!cfg->stats && !cfg->stats_json)
        return 0;
    err = stats_init(&vm->stats, cfg->nr_cpus);
    if (err)
        return err;
    vm->stats_on = true;
    if (cfg->stats_json) {
        /* Opened now so a bad path fails before the guest runs. */
        vm->stats_json = fopen(cfg->stats_json, "we");
        if (!vm->stats_json) {
            err = -errno;
            log_err("vm", "--stats-json %s: cannot create it: %s; give a writable path",
                    cfg->stats_json, strerror(errno));
            stats_fini(&vm->stats);
            vm->stats_on = false;
            return err;
        }
    }
    return 0;
}

static void undo_stats(struct vm *vm)
{
    if (!vm->stats_on)
        return;
    if (vm->ran) {
        if (vm->cfg->stats)
            stats_print(&vm->stats, stderr);
        if (vm->stats_json && stats_write_json(&vm->stats, vm->stats_json))
            log_err("vm", "--stats-json %s: write failed", vm->cfg->stats_json);
    }
    if (vm->stats_json && fclose(vm->stats_json) != 0)
        log_err("vm", "--stats-json %s: %s", vm->cfg->stats_json, strerror(errno));
    vm->stats_json = NULL;
    stats_fini(&vm->stats);
    vm->stats_on = false;
}

struct kvm_cap_req {
    int cap;
    const char *name;
    const char *why;
};

static const struct kvm_cap_req kvm_caps_required[] = {
    { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", "guest RAM from minivmm's memory" },
    { KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP", "the in-kernel PIC, IOAPIC and LAPICs" },
    { KVM_CAP_PIT2, "KVM_CAP_PIT2", "the in-kernel 8254 timer" },
    { KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING", "the GSI routing table" },
    { KVM_CAP_IRQFD, "KVM_CAP_IRQFD", "interrupts from eventfds" },
    { KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD", "doorbells as eventfds" },
    { KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR", "real mode on VMX hosts" },
    { KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR", "real mode on VMX hosts" },
    { KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID", "KVM_GET_SUPPORTED_CPUID / KVM_SET_CPUID2" },
    { KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", "stopping vCPUs without races" },
    { KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE", "application processors waiting for SIPI" },
};

static int step_kvm(struct vm *vm)
{
    const struct config *cfg = vm->cfg;
    int v;

    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        int err = -errno;
        if (errno == ENOENT)
            log_err("kvm", "/dev/kvm does not exist: load kvm_intel or kvm_amd (modprobe kvm_amd) "
                    "and enable virtualization (VT-x/AMD-V) in the firmware");
        else if (errno == EACCES || errno == EPERM)
            log_err("kvm", "no permission to open /dev/kvm: add yourself to the kvm group or run as root");
        else
            log_err("kvm", "cannot open /dev/kvm: %s", strerror(errno));
        return err;
    }
    v = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (v != KVM_API_VERSION_EXPECTED) {
        log_err("kvm", "KVM API version %d; minivmm needs %d", v, KVM_API_VERSION_EXPECTED);
        return -ENOTSUP;
    }
    for (size_t i = 0; i < sizeof(kvm_caps_required) / sizeof(kvm_caps_required[0]); i++) {
        const struct kvm_cap_req *c = &kvm_caps_required[i];
        if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, c->cap) <= 0) {
            log_err("kvm", "this host's KVM lacks %s (needed for %s); use a newer host kernel",
                    c->name, c->why);
            return -ENOTSUP;
        }
    }
    /* OVMF executes from its CODE flash: a read-only slot (KVM API 4.35,
     * KVM_MEM_READONLY), since KVM cannot fetch instructions from MMIO. */
    if (cfg->firmware_boot && ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0) {
        log_err("kvm", "this host's KVM lacks KVM_CAP_READONLY_MEM, which booting firmware needs "
                "(the flash is a read-only slot); use a newer host kernel, or boot Linux directly "
                "with --kernel");
        return -ENOTSUP;
    }
    v = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (v < (int)sizeof(struct kvm_run)) {
        log_err("kvm", "KVM_GET_VCPU_MMAP_SIZE gave %d", v);
        return -ENOTSUP;
    }
    vm->run_size = (size_t)v;
    v = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
    vm->max_irq_routes = v > 0 ? (unsigned)v : 0;
    vm->tsc_deadline = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;

    int max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus <= 0)
        max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    if (max_vcpus <= 0)
        max_vcpus = 4;   /* KVM API: "assume 4" when neither is reported */
    if (cfg->nr_cpus > (unsigned)max_vcpus) {
        log_err("kvm", "--cpus %u: this host's KVM allows at most %d vCPUs per VM", cfg->nr_cpus,
                max_vcpus);
        return -EINVAL;
    }
    int max_id = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPU_ID);
    if (max_id <= 0)
        max_id = max_vcpus;
    if (vm->apic_ids[cfg->nr_cpus - 1] >= (unsigned)max_id) {
        log_err("kvm", "the vCPU topology needs APIC IDs up to %u; this host's KVM allows IDs "
                "below %d: use fewer sockets/cores/threads", vm->apic_ids[cfg->nr_cpus - 1], max_id);
        return -EINVAL;
    }
    int slots = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
    if (slots > 0 && slots < GM_MAX_REGIONS) {
        log_err("kvm", "this host's KVM offers %d memory slots; minivmm needs %d", slots, GM_MAX_REGIONS);
        return -ENOTSUP;
    }
    return 0;
}

static void undo_kvm(struct vm *vm)
{
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    vm->kvm_fd = -1;
}

static int step_vm(struct vm *vm)
{
    do
        vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    while (vm->vm_fd < 0 && errno == EINTR);
    if (vm->vm_fd < 0) {
        int err = -errno;
        log_err("kvm", "KVM_CREATE_VM: %s", strerror(errno));
        return err;
    }
    int err = memslots_init(&vm->memslots, vm->vm_fd);
    if (err) {
        close(vm->vm_fd);
        vm->vm_fd = -1;
    }
    return err;
}

static void undo_vm(struct vm *vm)
{
    memslots_fini(&vm->memslots);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    vm->vm_fd = -1;
}

static int step_memory(struct vm *vm)
{
    const struct config *cfg = vm->cfg;
    struct gm_config gc = {
        .size = cfg->mem_size, .hugepage_size = cfg->hugepage_size,
        .prealloc = cfg->prealloc, .lock = cfg->mlock,
    };
    int err = gm_init(&vm->gm, &gc);

    if (err)
        return err;
    for (unsigned i = 0; i < vm->gm.nr_regions; i++) {
        const struct gm_region *r = &vm->gm.regions[i];
        int slot = memslot_add(&vm->memslots, r->gpa, r->size, r->hva, 0);
        if (slot < 0) {
            log_err("memory", "cannot give guest RAM [0x%" PRIx64 ", +0x%" PRIx64 ") to KVM "
                    "(KVM_SET_USER_MEMORY_REGION): %s", r->gpa, r->size, strerror(-slot));
            while (i--)
                memslot_remove(&vm->memslots, vm->ram_slots[i]);
            gm_fini(&vm->gm);
            return slot;
        }
        vm->ram_slots[i] = slot;
    }
    return 0;
}

static void undo_memory(struct vm *vm)
{
    for (unsigned i = vm->gm.nr_regions; i--;)
        memslot_remove(&vm->memslots, vm->ram_slots[i]);
    gm_fini(&vm->gm);
}

struct vm_irqchip_state {
    struct kvm_irqchip chip[3];     /* KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC */
    struct kvm_pit_state2 pit;
};

/* The in-kernel PIC pair, IOAPIC and PIT as created: what a guest reset
 * puts back (their power-on state). */
static int vm_capture_irqchip(struct vm *vm)
{
    struct vm_irqchip_state *st = calloc(1, sizeof(*st));

    if (!st)
        return -ENOMEM;
    for (unsigned i = 0; i < 3; i++) {
        st->chip[i].chip_id = i;
        if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &st->chip[i]) < 0)
            goto fail;
    }
    if (ioctl(vm->vm_fd, KVM_GET_PIT2, &st->pit) < 0)
        goto fail;
    vm->irqchip_reset = st;
    return 0;
fail:;
    int err = -errno;
    log_err("kvm", "cannot read the in-kernel irqchip/PIT state: %s", strerror(errno));
    free(st);
    return err;
}

static int vm_restore_irqchip(struct vm *vm)
{
    struct vm_irqchip_state *st = vm->irqchip_reset;

    for (unsigned i = 0; i < 3; i++)
        if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &st->chip[i]) < 0)
            goto fail;
    if (ioctl(vm->vm_fd, KVM_SET_PIT2, &st->pit) < 0)
        goto fail;
    return 0;
fail:
    log_err("kvm", "guest reset: cannot reset the in-kernel irqchip/PIT: %s", strerror(errno));
    return -errno;
}

static int step_irqchip(struct vm *vm)
{
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    uint64_t idmap = VM_IDENTITY_MAP_ADDR;

    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)VM_TSS_ADDR) < 0) {
        log_err("kvm", "KVM_SET_TSS_ADDR 0x%llx: %s", VM_TSS_ADDR, strerror(errno));
        return -errno;
    }
    if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
        log_err("kvm", "KVM_SET_IDENTITY_MAP_ADDR 0x%llx: %s", VM_IDENTITY_MAP_ADDR, strerror(errno));
        return -errno;
    }
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        log_err("kvm", "KVM_CREATE_IRQCHIP: %s", strerror(errno));
        return -errno;
    }
    /* The 8254 in the kernel; the dummy speaker port 0x61 lets guests gate
     * channel 2, which Linux's PIT TSC calibration uses. */
    if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        log_err("kvm", "KVM_CREATE_PIT2: %s", strerror(errno));
        return -errno;
    }
    return vm_capture_irqchip(vm);
}

static void undo_irqchip(struct vm *vm)
{
    free(vm->irqchip_reset);   /* the chips themselves go with the VM fd */
    vm->irqchip_reset = NULL;
}

static int step_irq_routing(struct vm *vm)
{
    int err = irq_table_init(&vm->irq, vm->vm_fd, vm->max_irq_routes);
    if (err)
        return err;
    err = irq_commit(&vm->irq);
    if (err)
        irq_table_fini(&vm->irq);
    return err;
}

static void undo_irq_routing(struct vm *vm)
{
    irq_table_fini(&vm->irq);
}

static int step_buses(struct vm *vm)
{
    int err = bus_init(&vm->pio, "pio");
    if (err)
        return err;
    err = bus_init(&vm->mmio, "mmio");
    if (err) {
        bus_fini(&vm->pio);
        return err;
    }
    vm->env = (struct dev_env){
        .pio = &vm->pio, .mmio = &vm->mmio, .gm = &vm->gm,
        .irq_set = vm_env_irq_set, .request_stop = vm_env_request_stop, .opaque = vm,
    };
    return 0;
}

static void undo_buses(struct vm *vm)
{
    bus_fini(&vm->mmio);
    bus_fini(&vm->pio);
}

static void undo_devices(struct vm *vm);

static int step_devices(struct vm *vm)
{
    const char *serial = vm->cfg->serial ? vm->cfg->serial : "stdio";
    int in_fd = -1, out_fd = -1, err;

    if (!strcmp(serial, "stdio")) {
        in_fd = STDIN_FILENO;
        out_fd = STDOUT_FILENO;
    } else if (!strncmp(serial, "file:", 5)) {
        vm->serial_fd = open(serial + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (vm->serial_fd < 0) {
            err = -errno;
            log_err("vm", "--serial %s: cannot create %s: %s; give a writable path", serial,
                    serial + 5, strerror(errno));
            return err;
        }
        out_fd = vm->serial_fd;
    }
    err = uart_create(&vm->env, UART_COM1_BASE, UART_COM1_GSI, in_fd, out_fd, &vm->uart);
    if (err)
        goto fail;
    err = i8042_create(&vm->env, &vm->i8042);
    if (err)
        goto fail;
    /* before the q35 platform: its PCI host adopts 0xCF9 from sysctl */
    err = sysctl_create(&vm->env, &vm->sysctl);
    if (err)
        goto fail;
    return 0;
fail:
    undo_devices(vm);
    return err;
}

static void undo_devices(struct vm *vm)
{
    if (vm->sysctl)
        sysctl_destroy(vm->sysctl);
    if (vm->i8042)
        i8042_destroy(vm->i8042);
    if (vm->uart)
        uart_destroy(vm->uart);   /* also stops its threads, flushes output */
    vm->sysctl = NULL;
    vm->i8042 = NULL;
    vm->uart = NULL;
    if (vm->serial_fd >= 0)
        close(vm->serial_fd);
    vm->serial_fd = -1;
}

#define VM_ECAM_SIZE       0x10000000ULL   /* 256 buses (PCIe 6.0 §7.2.2) */

/* What the ACPI tables describe, for both boots: the vCPUs, the in-kernel
 * IOAPIC/LAPIC, the LPC's PM block (ACPI_PM_BASE: preset for a direct boot,
 * where OVMF puts PMBASE too), the RTC, and the q35 PCIe host bridge with
 * its windows (the 64-bit one, --pci-mmio64, where q35_pci_mmio64_base
 * says OVMF puts it). */
static void vm_acpi_config(struct vm *vm)
{
    uint64_t low = gm_lowmem(&vm->gm);

    vm->acpi = (struct acpi_config){
        .nr_cpus = vm->cfg->nr_cpus,
        .apic_ids = vm->apic_ids,
        .ioapic_addr = VM_IOAPIC_ADDR,
        .lapic_addr = VM_LAPIC_ADDR,
        .pm_base = ACPI_PM_BASE,
        .sci_gsi = ACPI_PM_SCI_GSI,
        .rtc = true,
        .pci = true,
        .ecam_base = Q35_ECAM_DEFAULT_BASE,
        .pci_mmio32_base = low,
        .pci_mmio64_base = q35_pci_mmio64_base(&vm->gm, vm->cfg->pci_mmio64_size),
        .pci_mmio64_size = vm->cfg->pci_mmio64_size,
        .mcfg = !vm->cfg->firmware_boot,   /* through fw_cfg the loader adds MCFG */
    };
}

/* The kinds of PCI device the command line can ask for, one line each:
 * the config field with the flags' parsed values, and the device's attach
 * function (it creates one device per value and adds it to the machine's
 * list, devices/pci/pcidev.h). Created in this order -- VFIO first, since
 * its groups and DMA mapping are the likeliest to fail -- and placed by
 * q35 in the same order within each kind. */
#define VM_PCI_KINDS(X)                          \
    X(vfio, vfio_pci_attach)      /* --gpu, --device vfio,... */ \
    X(disks, virtio_blk_attach)   /* --disk */   \
    X(disks, ahci_attach)         /* --disk ...,if=sata, --cdrom */ \
    X(disks, nvme_attach)         /* --disk FILE,if=nvme */ \
    X(nics, virtio_net_attach)    /* --net */ \
    X(display, bochs_display_attach) /* --display std */

#define VM_PCI_KIND_ATTACH(field, attach)                                           \
    static int vm_attach_##attach(const struct pcidev_host *h, const struct config *c, \
                                  struct pcidev_list *l)                            \
    {                                                                               \
        return attach(h, &c->field, l);                                             \
    }
VM_PCI_KINDS(VM_PCI_KIND_ATTACH)

#define VM_PCI_KIND_ENTRY(field, attach) { #field, vm_attach_##attach },
static const struct {
    const char *name;
    int (*attach)(const struct pcidev_host *h, const struct config *c, struct pcidev_list *l);
} vm_pci_kinds[] = { VM_PCI_KINDS(VM_PCI_KIND_ENTRY) };

/* Every PCI device: host resources opened here (VFIO groups and guest RAM
 * mapped for their DMA, images opened and locked, taps opened or created
 * in their bridge) with their I/O threads idle until a driver starts them,
 * so a bad flag stops start-up before the guest exists. The platform
 * places and plugs them. */
static int step_pci_devices(struct vm *vm)
{
    struct pcidev_host h = {
        .env = &vm->env, .irq = &vm->irq, .slots = &vm->memslots, .vm_fd = vm->vm_fd,
        .io_pin = vm->cfg->io_pin,
    };

    for (size_t i = 0; i < sizeof(vm_pci_kinds) / sizeof(vm_pci_kinds[0]); i++) {
        int err = vm_pci_kinds[i].attach(&h, vm->cfg, &vm->pci_devs);
        if (err) {
            pcidev_list_destroy(&vm->pci_devs);
            return err;
        }
    }
    return 0;
}

/* After the platform unplugged them (q35_destroy). */
static void undo_pci_devices(struct vm *vm)
{
    pcidev_list_destroy(&vm->pci_devs);
}

/* A guest reset, between the old platform's teardown and the new one: the
 * devices' own resets (VFIO: interrupts off, BARs unmapped, FLR or bus
 * reset, config space to power-on). Emulated devices went back to
 * power-on when they were unplugged. */
static int reset_pci_devices(struct vm *vm)
{
    return pcidev_list_reset(&vm->pci_devs);
}

/* The CPU's physical address width (CPUID 0x80000008 EAX[7:0], which KVM
 * passes from the host); 0 when KVM does not say. */
static int get_supported_cpuid(struct vm *vm, struct kvm_cpuid2 **out);
static unsigned vm_phys_addr_bits(struct vm *vm)
{
    struct kvm_cpuid2 *c = NULL;
    unsigned bits = 0;

    if (get_supported_cpuid(vm, &c))
        return 0;   /* logged; step_vcpus fails on it too */
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == 0x80000008)
            bits = c->entries[i].eax & 0xff;
    free(c);
    return bits;
}

/* The q35 platform (devices/chipset/q35.h): PCI host with ECAM, MCH, LPC
 * with the ACPI PM block, a root port per passed-through slot, RTC,
 * fw_cfg, and for a firmware boot the flash with its KVM slots; the PCI
 * devices placed by q35's layout and plugged. */
static int step_platform(struct vm *vm)
{
    const struct config *cfg = vm->cfg;

    vm_acpi_config(vm);
    struct q35_config qc = {
        .nr_cpus = cfg->nr_cpus,
        .sockets = vm->topo.sockets, .cores = vm->topo.cores, .threads = vm->topo.threads,
        .persist = &vm->q35_persist,
        .devs = &vm->pci_devs,
        .slots = &vm->memslots,
        .phys_addr_bits = vm_phys_addr_bits(vm),
        .firmware = cfg->firmware_boot,
        .pflash = { .code_path = cfg->firmware, .vars_path = vm->vars_path },
        .acpi = &vm->acpi,
        .pci_mmio64_mb = cfg->pci_mmio64_size >> 20,
        .kernel = cfg->firmware_boot ? cfg->kernel : NULL,
        .initrd = cfg->firmware_boot ? cfg->initrd : NULL,
        .cmdline = cfg->firmware_boot && cfg->kernel ? cfg->cmdline : NULL,
    };
    return q35_create(&vm->env, &qc, &vm->q35);
}

/* Unplugs the PCI devices first (they sit on its bus); idempotent. */
static void undo_platform(struct vm *vm)
{
    q35_destroy(vm->q35);
    vm->q35 = NULL;
}

/* Direct boot: the Linux E820 map (plus the ECAM window, reserved, so
 * Linux trusts the MCFG: PCI Firmware Specification 3.2 §4.1.2) and the
 * ACPI tables in RAM. A firmware boot gets both through fw_cfg. */
static int step_tables(struct vm *vm)
{
    int err;

    if (vm->cfg->firmware_boot)
        return 0;
    err = e820_build(&vm->gm, vm->e820, E820_MAX, &vm->nr_e820);
    if (err)
        return err;
    if (vm->nr_e820 < E820_MAX) {
        unsigned at = vm->nr_e820;
        while (at > 0 && vm->e820[at - 1].addr > vm->acpi.ecam_base)
            at--;
        memmove(&vm->e820[at + 1], &vm->e820[at], (vm->nr_e820 - at) * sizeof(vm->e820[0]));
        vm->e820[at] = (struct e820_entry){ vm->acpi.ecam_base, VM_ECAM_SIZE, E820_RESERVED };
        vm->nr_e820++;
    }
    return acpi_install(&vm->gm, &vm->acpi, &vm->rsdp);
}

static int step_kernel(struct vm *vm)
{
    if (vm->cfg->firmware_boot)
        return 0;   /* OVMF loads --kernel itself, from fw_cfg */
    struct linux_boot_config lc = {
        .kernel = vm->cfg->kernel,
        .initrd = vm->cfg->initrd,
        .cmdline = vm->cfg->cmdline,
        .rsdp = vm->rsdp,
        .e820 = vm->e820,
        .nr_e820 = vm->nr_e820,
    };
    return linux_load(&vm->gm, &lc, &vm->boot);
}

static int get_supported_cpuid(struct vm *vm, struct kvm_cpuid2 **out)
{
    for (unsigned n = 128; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
        if (!c)
            return -ENOMEM;
        c->nent = n;
        if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            *out = c;
            return 0;
        }
        int e = errno;
        free(c);
        if (e != E2BIG) {
            log_err("kvm", "KVM_GET_SUPPORTED_CPUID: %s", strerror(e));
            return -e;
        }
    }
    log_err("kvm", "KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
    return -E2BIG;
}

static void undo_vcpus(struct vm *vm);

static int step_vcpus(struct vm *vm)
{
    struct kvm_cpuid2 *supported = NULL;
    unsigned n = vm->cfg->nr_cpus;
    int err;

    vm->vcpu_env = (struct vcpu_env){
        .pio = &vm->pio,
        .mmio = &vm->mmio,
        .vm_fd = vm->vm_fd,
        .run_size = vm->run_size,
        .cpuid = {
            .topo = vm->topo,
            .tsc_deadline = vm->tsc_deadline,
            .hide_hypervisor = vm->cfg->vfio.hide_hypervisor,
        },
        .boot = vm->cfg->firmware_boot ? NULL : &vm->boot,
        .stats = vm->stats_on ? vm->stats.vcpu : NULL,
        .stop_reason = &vm->stop_reason,
        .request_stop = vm_env_request_stop,
        .opaque = vm,
    };
    vm->vcpus = calloc(n, sizeof(*vm->vcpus));
    if (!vm->vcpus)
        return -ENOMEM;
    err = get_supported_cpuid(vm, &supported);
    if (err)
        goto fail;
    for (unsigned i = 0; i < n; i++) {
        err = vcpu_create(&vm->vcpu_env, &vm->vcpus[i], i, supported);
        if (err)
            goto fail;
        pthread_mutex_lock(&vm->kick_lock);
        vm->nr_vcpus = i + 1;
        pthread_mutex_unlock(&vm->kick_lock);
    }
    free(supported);
    return 0;
fail:
    free(supported);
    undo_vcpus(vm);
    return err;
}

static void undo_vcpus(struct vm *vm)
{
    pthread_mutex_lock(&vm->kick_lock);
    unsigned n = vm->nr_vcpus;
    vm->nr_vcpus = 0;
    pthread_mutex_unlock(&vm->kick_lock);
    for (unsigned i = n; i--;)
        vcpu_destroy(&vm->vcpus[i]);
    free(vm->vcpus);
    vm->vcpus = NULL;
}

/* Device threads (the UART's input and output) start here, after
 * everything they could touch exists. With --io-pin the main thread moves
 * to that CPU while creating them, so they inherit it. They are stopped by
 * the devices' destroy functions. */
static int step_device_threads(struct vm *vm)
{
    int io = vm->cfg->io_pin, err;
    cpu_set_t set;

    if (io >= 0) {
        CPU_ZERO(&set);
        CPU_SET(io, &set);
        err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        if (err) {
            log_err("vm", "--io-pin %d: cannot pin the I/O threads: %s; check the CPU is online "
                    "and allowed (`taskset -cp $$`)", io, strerror(err));
            return -err;
        }
    }
    err = uart_start(vm->uart);
    if (io >= 0)
        pthread_setaffinity_np(pthread_self(), sizeof(vm->emulator_cpus), &vm->emulator_cpus);
    return err;
}

static void undo_vcpu_threads(struct vm *vm);

static int step_vcpu_threads(struct vm *vm)
{
    const struct config *cfg = vm->cfg;
    char name[16];
    int err;

    if (vm->stats_on && !vm->ran)
        vm->stats.start_ns = stats_now_ns();   /* once: a guest reset keeps counting */
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        pthread_mutex_lock(&vm->kick_lock);
        err = vcpu_start(&vm->vcpus[i], cfg->cpu_pin[i],
                         cfg->emulator_pin >= 0 ? &vm->process_cpus : NULL);
        pthread_mutex_unlock(&vm->kick_lock);
        if (err) {
            undo_vcpu_threads(vm);
            return err;
        }
    }
    /* Names last, back to back: anyone listing threads sees all of them
     * named or none. */
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        snprintf(name, sizeof(name), "vcpu%u", i);
        pthread_setname_np(vm->vcpus[i].thread, name);
    }
    vm->ran = true;
    return 0;
}

static void undo_vcpu_threads(struct vm *vm)
{
    /* A stop must be requested so the loops end (a start-up failure has
     * none yet). Then kick every vCPU under the lock and disable further
     * kicks before joining, so no pthread_kill can reach a joined thread. */
    vm_request_stop(vm, VM_STOP_ERROR, 0);
    pthread_mutex_lock(&vm->kick_lock);
    vm_kick_all(vm);
    vm->kicks_disabled = true;
    pthread_mutex_unlock(&vm->kick_lock);
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        if (vm->vcpus[i].started) {
            pthread_join(vm->vcpus[i].thread, NULL);
            vm->vcpus[i].started = false;
        }
    }
    if (vm->stats_on && vm->ran)
        vm->stats.end_ns = stats_now_ns();
}

struct vm_step {
    const char *name;
    int (*run)(struct vm *vm);
    void (*undo)(struct vm *vm);   /* NULL: nothing to undo (freed with the VM fd);
                                    * must be safe to call again after it ran */
    enum vm_on_reset on_reset;
    int (*reset)(struct vm *vm);
};

static int reset_irqchip(struct vm *vm);
static int reset_vcpus(struct vm *vm);
static int restart_vcpu_threads(struct vm *vm);

static const struct vm_step vm_steps[] = {
    { "signals",          step_signals,        undo_signals,      VM_RESET_KEEP, NULL },
    { "host CPU pinning", step_pinning,        undo_pinning,      VM_RESET_KEEP, NULL },
    { "boot source",      step_boot_source,    NULL,              VM_RESET_KEEP, NULL },
    { "stats",            step_stats,          undo_stats,        VM_RESET_KEEP, NULL },
    { "kvm",              step_kvm,            undo_kvm,          VM_RESET_KEEP, NULL },
    { "vm",               step_vm,             undo_vm,           VM_RESET_KEEP, NULL },
    { "memory",           step_memory,         undo_memory,       VM_RESET_KEEP, NULL },
    { "irqchip and pit",  step_irqchip,        undo_irqchip,      VM_RESET_HOOK, reset_irqchip },
    { "irq routing",      step_irq_routing,    undo_irq_routing,  VM_RESET_KEEP, NULL },
    { "buses",            step_buses,          undo_buses,        VM_RESET_KEEP, NULL },
    { "devices",          step_devices,        undo_devices,      VM_RESET_KEEP, NULL },
    { "pci devices",      step_pci_devices,    undo_pci_devices,  VM_RESET_HOOK, reset_pci_devices },
    { "q35 platform",     step_platform,       undo_platform,     VM_RESET_REDO, NULL },
    { "firmware tables",  step_tables,         NULL,              VM_RESET_REDO, NULL },
    { "kernel",           step_kernel,         NULL,              VM_RESET_REDO, NULL },
    { "vcpus",            step_vcpus,          undo_vcpus,        VM_RESET_HOOK, reset_vcpus },
    { "device threads",   step_device_threads, NULL,              VM_RESET_KEEP, NULL },
    { "vcpu threads",     step_vcpu_threads,   undo_vcpu_threads, VM_RESET_REDO, restart_vcpu_threads },
};
#define VM_NR_STEPS (sizeof(vm_steps) / sizeof(vm_steps[0]))

unsigned vm_nr_steps(void)
{
    return VM_NR_STEPS;
}

const char *vm_step_name(unsigned i)
{
    return i < VM_NR_STEPS ? vm_steps[i].name : NULL;
}

enum vm_on_reset vm_step_on_reset(unsigned i)
{
    return i < VM_NR_STEPS ? vm_steps[i].on_reset : VM_RESET_KEEP;
}

/* ---- life cycle ---- */

int vm_create(const struct config *cfg, struct vm **out)
{
    struct vm *vm = calloc(1, sizeof(*vm));

    if (!vm)
        return -ENOMEM;
    vm->cfg = cfg;
    vm->kvm_fd = vm->vm_fd = vm->serial_fd = -1;
    vm->stop_efd = vm->signal_fd = -1;
    atomic_init(&vm->stop_reason, VM_RUNNING);
    atomic_init(&vm->stop_code, 0);
    pthread_mutex_init(&vm->kick_lock, NULL);
    vm->topo = (struct cpu_topology){ cfg->sockets, cfg->cores, cfg->threads };
    for (unsigned i = 0; i < cfg->nr_cpus && i < CONFIG_MAX_CPUS; i++)
        vm->apic_ids[i] = cpuid_apic_id(&vm->topo, i);
    *out = vm;
    return 0;
}

static void vm_undo_steps(struct vm *vm)
{
    while (vm->steps_done) {
        const struct vm_step *s = &vm_steps[--vm->steps_done];
        if (s->undo) {
            log_debug("vm", "undo: %s", s->name);
            s->undo(vm);
        }
    }
}

int vm_start(struct vm *vm)
{
    for (unsigned i = vm->steps_done; i < VM_NR_STEPS; i++) {
        log_debug("vm", "start: %s", vm_steps[i].name);
        int err = vm_steps[i].run(vm);
        if (err) {
            log_debug("vm", "start-up step '%s' failed (%s); undoing the %u before it",
                      vm_steps[i].name, strerror(-err), vm->steps_done);
            vm_undo_steps(vm);
            return err;
        }
        vm->steps_done = i + 1;
    }
    return 0;
}

/* The in-kernel PIC pair, IOAPIC and PIT back as created. */
static int reset_irqchip(struct vm *vm)
{
    return vm_restore_irqchip(vm);
}

/* Every vCPU back to the state captured right after its creation (KVM
 * has no vCPU reset ioctl): registers, LAPIC, MP state (APs wait for
 * INIT/SIPI again). */
static int reset_vcpus(struct vm *vm)
{
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        int err = vcpu_reset(&vm->vcpus[i]);
        if (err)
            return err;
    }
    return 0;
}

/* The last step of a reset: the stop request that started it is
 * forgotten and the vCPUs run again. */
static int restart_vcpu_threads(struct vm *vm)
{
    uint64_t v;

    while (read(vm->stop_efd, &v, sizeof(v)) == sizeof(v))
        ;
    atomic_store(&vm->stop_code, 0);
    atomic_store(&vm->stop_reason, VM_RUNNING);
    pthread_mutex_lock(&vm->kick_lock);
    vm->kicks_disabled = false;
    pthread_mutex_unlock(&vm->kick_lock);
    int err = step_vcpu_threads(vm);
    if (err)
        vm_request_stop(vm, VM_STOP_ERROR, 0);
    return err;
}

/* The guest asked for a reset: restart it in this process by walking the
 * step table (enum vm_on_reset): undo the REDO steps in reverse -- the
 * vCPU threads joined, the platform torn down with its PCI devices
 * unplugged -- then, in order, run the HOOK steps' resets and the REDO
 * steps again. On failure the VM stays stopped with reason VM_STOP_RESET
 * (exit status 3); vm_destroy undoes what is left (undo is idempotent). */
static int vm_reset(struct vm *vm)
{
    vm->resets++;
    log_info("vm", "the guest reset: restarting it (reset #%u)", vm->resets);
    for (unsigned i = vm->steps_done; i--;) {
        const struct vm_step *st = &vm_steps[i];
        if (st->on_reset == VM_RESET_REDO && st->undo) {
            log_debug("vm", "reset: undo %s", st->name);
            st->undo(vm);
        }
    }
    for (unsigned i = 0; i < vm->steps_done; i++) {
        const struct vm_step *st = &vm_steps[i];
        int (*fn)(struct vm *) = NULL;
        if (st->on_reset == VM_RESET_HOOK)
            fn = st->reset;
        else if (st->on_reset == VM_RESET_REDO)
            fn = st->reset ? st->reset : st->run;
        if (!fn)
            continue;
        log_debug("vm", "reset: %s", st->name);
        int err = fn(vm);
        if (err) {
            /* (once the vCPU threads were asked to run again, their own
             * stop request says why) */
            if (atomic_load(&vm->stop_reason) == VM_STOP_RESET)
                log_err("vm", "the guest reset, and restarting it failed at '%s' (%s); minivmm "
                        "exits with status 3", st->name, strerror(-err));
            return err;
        }
    }
    return 0;
}

static void vm_wait_for_stop(struct vm *vm)
{
    struct pollfd p[2] = {
        { .fd = vm->signal_fd, .events = POLLIN },
        { .fd = vm->stop_efd, .events = POLLIN },
    };

    while (atomic_load(&vm->stop_reason) == VM_RUNNING) {
        int n = poll(p, 2, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_err("vm", "poll: %s", strerror(errno));
            vm_request_stop(vm, VM_STOP_ERROR, 0);
            break;
        }
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(vm->signal_fd, &si, sizeof(si)) == sizeof(si)) {
                log_info("vm", "%s: stopping the guest", strsignal((int)si.ssi_signo));
                vm_request_stop(vm, VM_STOP_SIGNAL, (int)si.ssi_signo);
            }
        }
        if (p[1].revents & POLLIN) {
            uint64_t v;
            if (read(vm->stop_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                log_warn("vm", "reading the stop eventfd: %s", strerror(errno));
        }
    }
}

void vm_run(struct vm *vm)
{
    for (;;) {
        vm_wait_for_stop(vm);
        if (atomic_load(&vm->stop_reason) != VM_STOP_RESET || vm->cfg->no_reboot)
            break;
        if (vm_reset(vm))
            break;
    }
    switch (atomic_load(&vm->stop_reason)) {
    case VM_STOP_POWEROFF:
        log_info("vm", "the guest powered off");
        break;
    case VM_STOP_RESET:
        if (vm->cfg->no_reboot)
            log_info("vm", "the guest reset; --no-reboot: minivmm exits with status 3");
        break;
    case VM_STOP_DEBUG_EXIT:
        log_info("vm", "debug-exit: the guest wrote 0x%x (exit status %d)",
                 (unsigned)atomic_load(&vm->stop_code), atomic_load(&vm->stop_code) & 0xff);
        break;
    default:
        break;
    }
}

int vm_exit_code(struct vm *vm)
{
    int code = atomic_load(&vm->stop_code);

    switch (atomic_load(&vm->stop_reason)) {
    case VM_STOP_POWEROFF: return 0;
    case VM_STOP_DEBUG_EXIT: return code & 0xff;
    case VM_STOP_RESET: return 3;
    case VM_STOP_SIGNAL: return 128 + (code & 0x7f);
    case VM_STOP_ERROR: return 2;
    default: return 2;
    }
}

void vm_destroy(struct vm *vm)
{
    if (!vm)
        return;
    vm_undo_steps(vm);
    pthread_mutex_destroy(&vm->kick_lock);
    free(vm);
}
