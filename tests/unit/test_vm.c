/* vmm/vm.c without KVM: the stop protocol (first reason wins), the exit
 * status of each stop reason, and the start-up step order. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "frontend/cli.h"
#include "vmm/vm.h"

static struct config cfg;

static struct vm *new_vm(void)
{
    char *argv[] = { "minivmm", "--cpus", "2", NULL };
    char err[256];
    struct vm *vm;
    cr_assert_eq(config_parse(3, argv, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(vm_create(&cfg, &vm), 0);
    return vm;
}

Test(vm, first_stop_reason_wins)
{
    struct vm *vm = new_vm();
    vm_request_stop(vm, VM_STOP_POWEROFF, 0);
    vm_request_stop(vm, VM_STOP_RESET, 0);
    vm_request_stop(vm, VM_STOP_DEBUG_EXIT, 7);
    cr_assert_eq(vm_exit_code(vm), 0, "power-off came first");
    vm_destroy(vm);
}

static int code_for(enum vm_stop_reason r, int code)
{
    struct vm *vm = new_vm();
    vm_request_stop(vm, r, code);
    int c = vm_exit_code(vm);
    vm_destroy(vm);
    return c;
}

Test(vm, exit_codes)
{
    cr_assert_eq(code_for(VM_STOP_POWEROFF, 0), 0);
    cr_assert_eq(code_for(VM_STOP_DEBUG_EXIT, 0), 0);
    cr_assert_eq(code_for(VM_STOP_DEBUG_EXIT, 0x31), 0x31);
    cr_assert_eq(code_for(VM_STOP_DEBUG_EXIT, 0x1ff), 0xff, "the value & 0xff");
    cr_assert_eq(code_for(VM_STOP_RESET, 0), 3);
    cr_assert_eq(code_for(VM_STOP_ERROR, 0), 2);
    cr_assert_eq(code_for(VM_STOP_SIGNAL, SIGINT), 130);
    cr_assert_eq(code_for(VM_STOP_SIGNAL, SIGTERM), 143);
}

Test(vm, running_is_not_a_stop)
{
    struct vm *vm = new_vm();
    vm_request_stop(vm, VM_RUNNING, 0);
    vm_request_stop(vm, VM_STOP_RESET, 0);
    cr_assert_eq(vm_exit_code(vm), 3);
    vm_destroy(vm);
}

Test(vm, apic_ids_from_topology)
{
    char *argv[] = { "minivmm", "--smp", "sockets=2,cores=3,threads=1", NULL };
    char err[256];
    struct vm *vm;
    cr_assert_eq(config_parse(3, argv, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(vm_create(&cfg, &vm), 0);
    const uint32_t want[6] = { 0, 1, 2, 4, 5, 6 };
    for (unsigned i = 0; i < 6; i++)
        cr_assert_eq(vm->apic_ids[i], want[i], "vCPU %u", i);
    vm_destroy(vm);
}

static unsigned step_index(const char *name)
{
    for (unsigned i = 0; i < vm_nr_steps(); i++)
        if (!strcmp(vm_step_name(i), name))
            return i;
    cr_assert_fail("no start-up step '%s'", name);
    return 0;
}

Test(vm, step_order)
{
    /* KVM requires: the irqchip before vCPUs (in-kernel LAPICs), the
     * identity map before vCPUs, routing after the irqchip; the tables and
     * the kernel need memory; vCPU threads start last. */
    cr_assert_lt(step_index("signals"), step_index("vcpu threads"), "threads inherit the mask");
    cr_assert_lt(step_index("boot source"), step_index("memory"), "cheap checks first");
    cr_assert_lt(step_index("kvm"), step_index("vm"));
    cr_assert_lt(step_index("vm"), step_index("memory"));
    cr_assert_lt(step_index("irqchip and pit"), step_index("irq routing"));
    cr_assert_lt(step_index("irqchip and pit"), step_index("vcpus"));
    cr_assert_lt(step_index("buses"), step_index("devices"));
    cr_assert_lt(step_index("memory"), step_index("firmware tables"));
    cr_assert_lt(step_index("firmware tables"), step_index("kernel"), "the RSDP goes in boot_params");
    cr_assert_lt(step_index("kernel"), step_index("vcpus"), "the boot vCPU takes the loader's state");
    cr_assert_eq(step_index("vcpu threads"), vm_nr_steps() - 1);
    cr_assert_null(vm_step_name(vm_nr_steps()));
}

/* A guest reset walks the same table: the platform (and with it every PCI
 * device's place on the bus), the direct boot's tables and kernel, and the
 * vCPU threads are redone; the PCI devices' own resets run after the old
 * platform is gone and before the new one plugs them; the vCPUs are put
 * back as created after the kernel is loaded; RAM, KVM and the host side of
 * the devices are kept. */
Test(vm, reset_plan)
{
    cr_assert_eq(vm_step_on_reset(step_index("memory")), VM_RESET_KEEP, "RAM is not cleared");
    cr_assert_eq(vm_step_on_reset(step_index("kvm")), VM_RESET_KEEP);
    cr_assert_eq(vm_step_on_reset(step_index("vm")), VM_RESET_KEEP);
    cr_assert_eq(vm_step_on_reset(step_index("buses")), VM_RESET_KEEP);
    cr_assert_eq(vm_step_on_reset(step_index("irqchip and pit")), VM_RESET_HOOK);
    cr_assert_eq(vm_step_on_reset(step_index("pci devices")), VM_RESET_HOOK,
                 "images, taps and VFIO groups stay open");
    cr_assert_eq(vm_step_on_reset(step_index("q35 platform")), VM_RESET_REDO);
    cr_assert_eq(vm_step_on_reset(step_index("firmware tables")), VM_RESET_REDO);
    cr_assert_eq(vm_step_on_reset(step_index("kernel")), VM_RESET_REDO);
    cr_assert_eq(vm_step_on_reset(step_index("vcpus")), VM_RESET_HOOK);
    cr_assert_eq(vm_step_on_reset(step_index("vcpu threads")), VM_RESET_REDO);
    cr_assert_lt(step_index("pci devices"), step_index("q35 platform"),
                 "devices reset between the old platform's teardown and the new one");
    cr_assert_lt(step_index("kernel"), step_index("vcpus"));
    /* whatever a REDO step depends on is either kept or redone before it */
    for (unsigned i = 0; i < vm_nr_steps(); i++)
        if (vm_step_on_reset(i) == VM_RESET_REDO)
            cr_assert_gt(i, step_index("pci devices"), "%s", vm_step_name(i));
    cr_assert_eq(vm_step_on_reset(vm_nr_steps()), VM_RESET_KEEP);
}
