/* Boot vCPU state for a 64-bit entry (arch/x86/regs.h).
 *
 * The x86 boot protocol's 64-bit entry (Documentation/arch/x86/boot.rst,
 * "64-bit Boot Protocol") wants: long mode with paging on, an identity map
 * of the loaded kernel, boot_params and the command line; a GDT whose __BOOT_CS
 * (0x10) is a 64-bit code segment and __BOOT_DS (0x18) a flat data segment,
 * CS/DS/ES/SS loaded with them; interrupts off (RFLAGS = 2, only the
 * always-one bit); RSI = boot_params; RIP = startup_64.
 *
 * Control registers (Intel SDM vol. 3A §2.5, §9.8.5 "Initializing IA-32e
 * Mode"): CR0 = PE|PG|ET|NE (caches on: CD and NW clear), CR4 = PAE, EFER = LME
 * and LMA (KVM_SET_SREGS sets EFER directly, so LMA is given, not derived),
 * CR3 = the loader's PML4. Everything else starts from the state KVM gives a
 * freshly created vCPU (KVM_GET_SREGS), which keeps a valid TR and LDTR:
 * VM entry checks TR even in long mode (SDM vol. 3C §26.3.1.2). */
#include "arch/x86/regs.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "vmm/log.h"

#define X86_CR0_PE   (1ULL << 0)
#define X86_CR0_ET   (1ULL << 4)
#define X86_CR0_NE   (1ULL << 5)
#define X86_CR0_PG   (1ULL << 31)
#define X86_CR4_PAE  (1ULL << 5)
#define X86_EFER_LME (1ULL << 8)
#define X86_EFER_LMA (1ULL << 10)

#define BOOT_CS 0x10
#define BOOT_DS 0x18

static void flat_segment(struct kvm_segment *s, uint16_t selector, bool code)
{
    memset(s, 0, sizeof(*s));
    s->base = 0;
    s->limit = 0xffffffff;
    s->selector = selector;
    s->present = 1;
    s->s = 1;          /* code/data, not system */
    s->g = 1;          /* 4 KiB granularity */
    if (code) {
        s->type = 0xb; /* execute/read, accessed */
        s->l = 1;      /* 64-bit code */
        s->db = 0;     /* must be 0 when L = 1 */
    } else {
        s->type = 0x3; /* read/write, accessed */
        s->db = 1;
    }
}

int regs_apply_boot_state(int vcpu_fd, const struct x86_boot_state *st)
{
    struct kvm_sregs sregs;
    struct kvm_regs regs;

    if (!st->long_mode)
        return 0;   /* reset state: firmware (and APs) start from there */
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
        int err = -errno;
        log_err("regs", "KVM_GET_SREGS: %s", strerror(errno));
        return err;
    }
    flat_segment(&sregs.cs, BOOT_CS, true);
    flat_segment(&sregs.ds, BOOT_DS, false);
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    sregs.gdt.base = st->gdt_base;
    sregs.gdt.limit = st->gdt_limit;
    /* Set, not OR-ed into the reset value: reset CR0 has CD and NW set
     * (caches off), which must not survive into the kernel. */
    sregs.cr0 = X86_CR0_PE | X86_CR0_PG | X86_CR0_ET | X86_CR0_NE;
    sregs.cr3 = st->cr3;
    sregs.cr4 = X86_CR4_PAE;
    sregs.efer = X86_EFER_LME | X86_EFER_LMA;
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0) {
        int err = -errno;
        log_err("regs", "KVM_SET_SREGS for the 64-bit entry: %s", strerror(errno));
        return err;
    }

    memset(&regs, 0, sizeof(regs));
    regs.rflags = st->rflags ? st->rflags : 2;
    regs.rip = st->rip;
    regs.rsp = st->rsp;
    regs.rsi = st->rsi;
    if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0) {
        int err = -errno;
        log_err("regs", "KVM_SET_REGS: %s", strerror(errno));
        return err;
    }
    return 0;
}
