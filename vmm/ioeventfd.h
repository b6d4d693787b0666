/* ioeventfds (KVM API §4.59 KVM_IOEVENTFD): a guest write to a port or MMIO
 * address signals an eventfd inside the kernel, so a doorbell (a virtio
 * queue notification) reaches the device's thread without the vCPU thread
 * returning to userspace.
 *
 * len is 1, 2, 4 or 8, or 0 for "any length" (KVM_CAP_IOEVENTFD_ANY_LENGTH;
 * for MMIO this also lets KVM take the fast path that needs no instruction
 * decoding). datamatch NULL: every write matches; else only writes of that
 * value. vm_fd < 0 (unit tests) does nothing and returns 0. */
#ifndef MINIVMM_IOEVENTFD_H
#define MINIVMM_IOEVENTFD_H
#include <stdbool.h>
#include <stdint.h>

/* 0 or -errno (not logged: the caller knows what the doorbell is). */
int ioeventfd_assign(int vm_fd, int fd, uint64_t addr, unsigned len, bool pio,
                     const uint64_t *datamatch);
int ioeventfd_deassign(int vm_fd, int fd, uint64_t addr, unsigned len, bool pio,
                       const uint64_t *datamatch);

#endif
