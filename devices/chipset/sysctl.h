#ifndef MINIVMM_SYSCTL_H
#define MINIVMM_SYSCTL_H
#include "vmm/dev_env.h"
/* Small system-control ports:
 *  - 0xCF9 reset control (bit 2 with bit 1: reset -> VM_STOP_RESET);
 *  - the debug-exit port DEBUG_EXIT_PORT: a write of value v stops the VM
 *    with VM_STOP_DEBUG_EXIT and code v (minivmm exits with v & 0xff), so
 *    test payloads report pass (0) or fail (non-zero).
 * 0xCF9 shares its dword with 0xCF8 (PCI config address): only the byte at
 * 0xCF9 is registered here. */
#define DEBUG_EXIT_PORT 0x501
struct sysctl;
int sysctl_create(const struct dev_env *env, struct sysctl **out);
void sysctl_destroy(struct sysctl *s);
#endif
