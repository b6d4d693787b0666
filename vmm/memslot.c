/* KVM memory-slot allocator: see vmm/memslot.h. */
#include "vmm/memslot.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/log.h"

_Static_assert(MEMSLOT_READONLY == KVM_MEM_READONLY, "memslot flag must be KVM's");

int memslots_init(struct memslots *m, int vm_fd)
{
    memset(m, 0, sizeof(*m));
    m->vm_fd = vm_fd;
    m->nr = MEMSLOTS_MAX;
    if (vm_fd >= 0) {
        int n = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
        if (n > 0 && (unsigned)n < m->nr)
            m->nr = (unsigned)n;
    }
    return -pthread_mutex_init(&m->lock, NULL);
}

void memslots_fini(struct memslots *m)
{
    pthread_mutex_destroy(&m->lock);
}

static int set_region(struct memslots *m, unsigned slot, uint32_t flags, uint64_t gpa,
                      uint64_t size, void *hva)
{
    if (m->vm_fd < 0)
        return 0;
    struct kvm_userspace_memory_region r = {
        .slot = slot,
        .flags = flags,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)hva,
    };
    return ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

int memslot_add(struct memslots *m, uint64_t gpa, uint64_t size, void *hva, uint32_t flags)
{
    long ps = sysconf(_SC_PAGESIZE);
    uint64_t mask = (uint64_t)(ps > 0 ? ps : 4096) - 1;
    if (!size || (gpa & mask) || (size & mask) || ((uintptr_t)hva & mask) || gpa + size < gpa ||
        (flags & ~(uint32_t)MEMSLOT_READONLY))
        return -EINVAL;
    pthread_mutex_lock(&m->lock);
    int slot = -ENOSPC;
    for (unsigned i = 0; i < m->nr; i++)
        if (!(m->used[i / 64] & (1ull << (i % 64)))) {
            slot = (int)i;
            break;
        }
    if (slot >= 0) {
        int r = set_region(m, (unsigned)slot, flags, gpa, size, hva);
        if (r < 0)
            slot = r;
        else
            m->used[slot / 64] |= 1ull << (slot % 64);
    }
    pthread_mutex_unlock(&m->lock);
    return slot;
}

int memslot_remove(struct memslots *m, int slot)
{
    if (slot < 0 || (unsigned)slot >= m->nr)
        return -EINVAL;
    pthread_mutex_lock(&m->lock);
    int r = -EINVAL;
    if (m->used[slot / 64] & (1ull << (slot % 64))) {
        /* memory_size 0 deletes the slot */
        r = set_region(m, (unsigned)slot, 0, 0, 0, NULL);
        if (r == 0)
            m->used[slot / 64] &= ~(1ull << (slot % 64));
        else
            log_err("memslot", "deleting KVM memory slot %d: %s", slot, strerror(-r));
    }
    pthread_mutex_unlock(&m->lock);
    return r;
}
