/* KVM_IOEVENTFD wrappers: see vmm/ioeventfd.h. */
#include "vmm/ioeventfd.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

static int ioeventfd_ctl(int vm_fd, int fd, uint64_t addr, unsigned len, bool pio,
                         const uint64_t *datamatch, bool deassign)
{
    struct kvm_ioeventfd e;

    if (vm_fd < 0)
        return 0;
    if (len != 0 && len != 1 && len != 2 && len != 4 && len != 8)
        return -EINVAL;
    memset(&e, 0, sizeof(e));
    e.addr = addr;
    e.len = len;
    e.fd = fd;
    if (pio)
        e.flags |= KVM_IOEVENTFD_FLAG_PIO;
    if (datamatch) {
        e.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
        e.datamatch = *datamatch;
    }
    if (deassign)
        e.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    if (ioctl(vm_fd, KVM_IOEVENTFD, &e) < 0)
        return -errno;
    return 0;
}

int ioeventfd_assign(int vm_fd, int fd, uint64_t addr, unsigned len, bool pio,
                     const uint64_t *datamatch)
{
    return ioeventfd_ctl(vm_fd, fd, addr, len, pio, datamatch, false);
}

int ioeventfd_deassign(int vm_fd, int fd, uint64_t addr, unsigned len, bool pio,
                       const uint64_t *datamatch)
{
    return ioeventfd_ctl(vm_fd, fd, addr, len, pio, datamatch, true);
}
