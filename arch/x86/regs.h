#ifndef MINIVMM_REGS_H
#define MINIVMM_REGS_H
#include <stdbool.h>
#include <stdint.h>
/* Initial state of the boot vCPU, produced by a loader (boot/linux.c) and
 * applied with KVM_SET_SREGS/KVM_SET_REGS by regs_apply_boot_state. */
struct x86_boot_state {
    bool long_mode;      /* true: 64-bit entry with the loader's page tables */
    uint64_t rip, rsp, rsi, rflags;
    uint64_t cr3;        /* identity page tables the loader built */
    uint64_t gdt_base;   /* GDT the loader built: null, code64 (0x10), data (0x18) */
    uint16_t gdt_limit;
};
/* Application processors and the firmware path start from the reset state;
 * the boot vCPU of a direct Linux boot gets st. */
int regs_apply_boot_state(int vcpu_fd, const struct x86_boot_state *st);
#endif
