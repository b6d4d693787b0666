/* KVM memory slots (KVM_SET_USER_MEMORY_REGION, Linux Documentation/virt/
 * kvm/api.rst §4.35): one allocator for every user of slots -- guest RAM
 * and the BARs of passed-through devices, which come and go while vCPUs
 * run (a guest moving a BAR) -- so slot numbers never collide.
 *
 * A slot maps guest-physical [gpa, gpa+size) to host memory at hva; the
 * guest then reaches it without exits. gpa, size and hva must be page
 * aligned; ranges of two slots must not overlap (KVM answers -EEXIST).
 * Thread-safe. With vm_fd -1 nothing is sent to KVM (unit tests). */
#ifndef MINIVMM_MEMSLOT_H
#define MINIVMM_MEMSLOT_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define MEMSLOTS_MAX 512            /* x86 KVM gives 509 or 32764 user slots */
#define MEMSLOT_READONLY (1u << 1)  /* KVM_MEM_READONLY: writes exit as MMIO */

struct memslots {
    int vm_fd;
    pthread_mutex_t lock;
    unsigned nr;                    /* usable slots: KVM_CAP_NR_MEMSLOTS, capped */
    uint64_t used[MEMSLOTS_MAX / 64];
};

int memslots_init(struct memslots *m, int vm_fd);
void memslots_fini(struct memslots *m);

/* Map; returns the slot number (>= 0) or -errno (-ENOSPC: no slot left,
 * -EINVAL: not page-aligned, -EEXIST: overlaps a slot). */
int memslot_add(struct memslots *m, uint64_t gpa, uint64_t size, void *hva, uint32_t flags);
/* Unmap a slot from memslot_add; -EINVAL if it is not in use. */
int memslot_remove(struct memslots *m, int slot);

#endif
