#ifndef MINIVMM_LINUX_H
#define MINIVMM_LINUX_H
#include <stdint.h>
#include "vmm/gm.h"
#include "arch/x86/regs.h"
#include "boot/e820.h"
/* Direct Linux boot per the x86 boot protocol (Documentation/arch/x86/boot.rst,
 * protocol >= 2.12 for the 64-bit entry): loads the bzImage's protected-mode
 * kernel at 1 MiB (or its pref_address), the initrd high below lowmem, the
 * command line, fills boot_params (zero page) with the e820 map and the RSDP
 * address, builds identity page tables and a GDT, and returns the boot vCPU's
 * state for the 64-bit entry (startup_64 = load address + 0x200). */
struct linux_boot_config {
    const char *kernel;
    const char *initrd;     /* may be NULL */
    const char *cmdline;
    uint64_t rsdp;          /* 0 if none */
    const struct e820_entry *e820;
    unsigned nr_e820;
};
/* Fixed guest addresses used by the loader (all in low RAM). */
#define LINUX_GDT_GPA       0x500
#define LINUX_BOOT_PARAMS   0x7000
#define LINUX_PGTABLE_GPA   0x9000   /* PML4, PDPT, 4 PDs: 4 GiB identity */
#define LINUX_CMDLINE_GPA   0x20000
#define LINUX_CMDLINE_MAX   0x10000
/* -ENOENT/-EIO for unreadable files, -ENOEXEC (logged naming the file) for a
 * file that is not a bzImage or too old a protocol, -ENOSPC when kernel or
 * initrd do not fit in RAM. */
int linux_load(struct gm *gm, const struct linux_boot_config *cfg, struct x86_boot_state *out);
/* Pure parts, unit-tested: validate a bzImage header in buf. */
int linux_check_header(const uint8_t *buf, size_t len);
#endif
