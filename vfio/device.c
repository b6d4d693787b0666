/* A VFIO PCI function: device fd, regions, mmaps, ROM, reset (see
 * vfio/device.h). */
#include "vfio/device.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vfio/iommufd_uapi.h"
#include "vmm/log.h"

#define COMP "vfio"
#define MAX_CAPS_WALKED 64
#define ROM_MAX_SIZE (16u << 20)   /* ROM BAR sizes beyond this are refused */

int vfio_region_parse_caps(const void *info, size_t len, struct vfio_region *r)
{
    const uint8_t *base = info;
    if (len < sizeof(struct vfio_region_info))
        return -EINVAL;
    struct vfio_region_info ri;
    memcpy(&ri, base, sizeof(ri));
    if (ri.argsz < len)
        len = ri.argsz;
    if (!(ri.flags & VFIO_REGION_INFO_FLAG_CAPS))
        return 0;
    uint32_t off = ri.cap_offset;
    for (unsigned n = 0; off; n++) {
        struct vfio_info_cap_header h;
        if (n >= MAX_CAPS_WALKED || off < sizeof(ri) || off > len || len - off < sizeof(h))
            return -EINVAL;
        memcpy(&h, base + off, sizeof(h));
        if (h.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
            struct vfio_region_info_cap_sparse_mmap sm;
            if (len - off < sizeof(sm))
                return -EINVAL;
            memcpy(&sm, base + off, sizeof(sm));
            size_t room = (len - off - sizeof(sm)) / sizeof(struct vfio_region_sparse_mmap_area);
            if (sm.nr_areas > room)
                return -EINVAL;
            r->sparse = true;
            r->nr_areas = 0;
            for (uint32_t i = 0; i < sm.nr_areas; i++) {
                struct vfio_region_sparse_mmap_area a;
                memcpy(&a, base + off + sizeof(sm) + i * sizeof(a), sizeof(a));
                if (!a.size)
                    continue;
                if (r->nr_areas == VFIO_BAR_MAX_AREAS) {
                    r->areas_truncated = true;   /* the rest stays trapped: slower, correct */
                    break;
                }
                r->areas[r->nr_areas++] = (struct vfio_range){ a.offset, a.size };
            }
        } else if (h.id == VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) {
            r->msix_mappable = true;
        }
        if (h.next && h.next <= off)
            return -EINVAL;             /* chains only go forward: no loops */
        off = h.next;
    }
    return 0;
}

static int get_region(struct vfio_device *d, unsigned index)
{
    struct vfio_region *r = &d->regions[index];
    memset(r, 0, sizeof(*r));
    size_t sz = sizeof(struct vfio_region_info);
    struct vfio_region_info *info = calloc(1, sz);
    if (!info)
        return -ENOMEM;
    info->argsz = (uint32_t)sz;
    info->index = index;
    if (vfio_ioctl(d->container, d->fd, VFIO_DEVICE_GET_REGION_INFO, info) < 0) {
        int e = errno;
        free(info);
        return e == EINVAL ? 0 : -e;    /* region absent */
    }
    if (info->argsz > sz && info->argsz <= 65536) {
        /* capabilities follow: ask again with room for them */
        sz = info->argsz;
        struct vfio_region_info *big = calloc(1, sz);
        if (!big) {
            free(info);
            return -ENOMEM;
        }
        big->argsz = (uint32_t)sz;
        big->index = index;
        if (vfio_ioctl(d->container, d->fd, VFIO_DEVICE_GET_REGION_INFO, big) < 0) {
            int e = errno;
            free(big);
            free(info);
            return -e;
        }
        free(info);
        info = big;
    } else {
        info->flags &= ~VFIO_REGION_INFO_FLAG_CAPS;
    }
    r->flags = info->flags;
    r->size = info->size;
    r->offset = info->offset;
    if (vfio_region_parse_caps(info, sz, r) < 0) {
        log_warn(COMP, "%s: region %u has a malformed capability chain; not mmap'ing it",
                 d->bdf, index);
        r->flags &= ~VFIO_REGION_INFO_FLAG_MMAP;
    }
    free(info);
    return 0;
}

int vfio_device_open(struct vfio_container *c, const struct host_ctx *hc, const char *bdf,
                     struct vfio_device *d)
{
    memset(d, 0, sizeof(*d));
    d->fd = -1;
    d->container = c;
    char err[2048];
    if (bdf_parse(bdf, d->bdf) < 0) {
        log_err(COMP, "'%s' is not a PCI address; use DDDD:BB:DD.F or BB:DD.F, as `lspci -D` "
                "shows", bdf);
        return -EINVAL;
    }
    int r = vfio_group_of(hc, d->bdf, &d->group_id, err, sizeof(err));
    if (r == 0)
        r = vfio_group_check(hc, d->group_id, d->bdf, err, sizeof(err));
    if (r < 0) {
        log_err(COMP, "%s", err);
        return r;
    }
    if (c->mode == VFIO_IOMMU_IOMMUFD) {
        r = vfio_container_open_cdev(c, hc, d->bdf, &d->fd);
        if (r < 0)
            return r;
        d->cdev = true;
    } else {
        r = vfio_container_get_group(c, d->group_id, d->bdf, &d->group);
        if (r < 0)
            return r;
        d->fd = vfio_ioctl(c, d->group->fd, VFIO_GROUP_GET_DEVICE_FD, d->bdf);
        if (d->fd < 0) {
            r = -errno;
            if (r == -EBUSY)
                log_err(COMP, "%s: the device is already in use (another minivmm or QEMU has "
                        "it)", d->bdf);
            else
                log_err(COMP, "%s: VFIO_GROUP_GET_DEVICE_FD in group %d: %s", d->bdf,
                        d->group_id, strerror(-r));
            goto fail;
        }
    }
    struct vfio_device_info info = { .argsz = sizeof(info) };
    if (vfio_ioctl(d->container, d->fd, VFIO_DEVICE_GET_INFO, &info) < 0) {
        r = -errno;
        log_err(COMP, "%s: VFIO_DEVICE_GET_INFO: %s", d->bdf, strerror(-r));
        goto fail;
    }
    if (!(info.flags & VFIO_DEVICE_FLAGS_PCI)) {
        log_err(COMP, "%s: VFIO says this is not a PCI device", d->bdf);
        r = -EINVAL;
        goto fail;
    }
    d->flags = info.flags;
    d->num_regions = info.num_regions;
    d->num_irqs = info.num_irqs;
    for (unsigned i = 0; i < VFIO_PCI_NUM_REGIONS && i < d->num_regions; i++) {
        r = get_region(d, i);
        if (r < 0) {
            log_err(COMP, "%s: VFIO_DEVICE_GET_REGION_INFO %u: %s", d->bdf, i, strerror(-r));
            goto fail;
        }
    }
    if (!d->regions[VFIO_PCI_CONFIG_REGION_INDEX].size) {
        log_err(COMP, "%s: VFIO gives no config space region", d->bdf);
        r = -EINVAL;
        goto fail;
    }
    for (unsigned i = 0; i < VFIO_PCI_NUM_IRQS && i < d->num_irqs; i++) {
        struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = i };
        if (vfio_ioctl(d->container, d->fd, VFIO_DEVICE_GET_IRQ_INFO, &ii) == 0) {
            d->irq_count[i] = ii.count;
            d->irq_flags[i] = ii.flags;
        }
    }
    return 0;
fail:
    vfio_device_close(d);
    return r;
}

void vfio_device_close(struct vfio_device *d)
{
    if (d->fd >= 0 && d->cdev)
        vfio_container_close_cdev(d->container, d->fd);
    else if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    d->cdev = false;
    if (d->group)
        vfio_container_put_group(d->container, d->group);
    d->group = NULL;
}

/* The file offset of [off, off + len) of region index, if the region
 * allows the access: 0, -EINVAL (out of range) or -EACCES. */
static int region_at(const struct vfio_device *d, unsigned index, uint64_t off, size_t len,
                     bool write, off_t *at)
{
    if (index >= VFIO_PCI_NUM_REGIONS)
        return -EINVAL;
    const struct vfio_region *r = &d->regions[index];
    if (!len || off >= r->size || len > r->size - off)
        return -EINVAL;
    if (!(r->flags & (write ? VFIO_REGION_INFO_FLAG_WRITE : VFIO_REGION_INFO_FLAG_READ)))
        return -EACCES;
    *at = (off_t)(r->offset + off);
    return 0;
}

static int region_done(ssize_t n, size_t len)
{
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

int vfio_device_region_read(struct vfio_device *d, unsigned index, uint64_t off, void *buf, size_t len)
{
    off_t at;
    int err = region_at(d, index, off, len, false, &at);
    return err ? err : region_done(pread(d->fd, buf, len, at), len);
}

int vfio_device_region_write(struct vfio_device *d, unsigned index, uint64_t off, const void *buf, size_t len)
{
    off_t at;
    int err = region_at(d, index, off, len, true, &at);
    return err ? err : region_done(pwrite(d->fd, buf, len, at), len);
}

void *vfio_device_mmap(struct vfio_device *d, unsigned index, uint64_t off, uint64_t len)
{
    if (index >= VFIO_PCI_NUM_REGIONS)
        return NULL;
    const struct vfio_region *r = &d->regions[index];
    if (!(r->flags & VFIO_REGION_INFO_FLAG_MMAP) || !len || off >= r->size || len > r->size - off)
        return NULL;
    int prot = 0;
    if (r->flags & VFIO_REGION_INFO_FLAG_READ)
        prot |= PROT_READ;
    if (r->flags & VFIO_REGION_INFO_FLAG_WRITE)
        prot |= PROT_WRITE;
    void *p = mmap(NULL, len, prot, MAP_SHARED, d->fd, (off_t)(r->offset + off));
    if (p == MAP_FAILED) {
        log_warn(COMP, "%s: mmap of region %u +0x%llx (0x%llx bytes) failed: %s; it will be "
                 "trapped instead", d->bdf, index, (unsigned long long)off,
                 (unsigned long long)len, strerror(errno));
        return NULL;
    }
    return p;
}

int vfio_device_set_irqs(struct vfio_device *d, unsigned index, uint32_t action, unsigned start,
                         unsigned count, const int32_t *fds)
{
    if (count > 4096)
        return -EINVAL;
    size_t sz = sizeof(struct vfio_irq_set) + (fds ? count * sizeof(int32_t) : 0);
    struct vfio_irq_set *s = calloc(1, sz);
    if (!s)
        return -ENOMEM;
    s->argsz = (uint32_t)sz;
    s->flags = action | (fds ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE);
    s->index = index;
    s->start = start;
    s->count = count;
    if (fds)
        memcpy(s->data, fds, count * sizeof(int32_t));
    int r = vfio_ioctl(d->container, d->fd, VFIO_DEVICE_SET_IRQS, s) < 0 ? -errno : 0;
    free(s);
    return r;
}

int vfio_rom_check(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    if (len < 3 || buf[0] != 0x55 || buf[1] != 0xAA) {
        snprintf(err, errlen, "no ROM signature 55 AA at offset 0");
        return -EINVAL;
    }
    /* Byte 2: first image length in 512-byte units (legacy header). */
    if ((size_t)buf[2] * 512 > len) {
        snprintf(err, errlen, "first image claims %u bytes, the ROM has %zu", buf[2] * 512u, len);
        return -EINVAL;
    }
    if (len > ROM_MAX_SIZE) {
        snprintf(err, errlen, "%zu bytes is larger than %u", len, ROM_MAX_SIZE);
        return -EINVAL;
    }
    return 0;
}

int vfio_device_read_rom(struct vfio_device *d, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    const struct vfio_region *r = &d->regions[VFIO_PCI_ROM_REGION_INDEX];
    if (!r->size)
        return -ENOENT;
    if (r->size > ROM_MAX_SIZE) {
        log_warn(COMP, "%s: ROM region of 0x%llx bytes is too large; no ROM", d->bdf,
                 (unsigned long long)r->size);
        return -EFBIG;
    }
    uint8_t *b = malloc(r->size);
    if (!b)
        return -ENOMEM;
    int e = vfio_device_region_read(d, VFIO_PCI_ROM_REGION_INDEX, 0, b, r->size);
    char why[128];
    if (e == 0 && vfio_rom_check(b, r->size, why, sizeof(why)) < 0)
        e = -EINVAL;
    else if (e < 0)
        snprintf(why, sizeof(why), "%s", strerror(-e));
    if (e < 0) {
        log_warn(COMP, "%s: the device's ROM cannot be used (%s); give a dump with --rom FILE "
                 "if the guest firmware needs it (a GPU's GOP driver)", d->bdf, why);
        free(b);
        return e;
    }
    *buf = b;
    *len = r->size;
    return 0;
}

int vfio_rom_load_file(const char *path, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        log_err(COMP, "--rom %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (uint64_t)st.st_size > ROM_MAX_SIZE) {
        log_err(COMP, "--rom %s: not a regular file of 1 byte to %u MiB", path, ROM_MAX_SIZE >> 20);
        close(fd);
        return -EINVAL;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *b = malloc(n);
    if (!b) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, b + got, n - got);
        if (k <= 0) {
            log_err(COMP, "--rom %s: short read", path);
            free(b);
            close(fd);
            return -EIO;
        }
        got += (size_t)k;
    }
    close(fd);
    char why[128];
    if (vfio_rom_check(b, n, why, sizeof(why)) < 0) {
        log_err(COMP, "--rom %s is not a PCI option ROM: %s", path, why);
        free(b);
        return -EINVAL;
    }
    *buf = b;
    *len = n;
    return 0;
}

/* Secondary bus reset through VFIO: every affected device must be in a
 * group we hold; the group fds prove it to the kernel. With iommufd the
 * devices bound to our iommufd prove it, and no fds are passed. */
static int hot_reset(struct vfio_device *d, struct vfio_device *const *devs, unsigned nr_devs)
{
    struct vfio_pci_hot_reset_info probe = { .argsz = sizeof(probe) };
    if (vfio_ioctl(d->container, d->fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &probe) < 0 &&
        errno != ENOSPC)
        return -errno;
    if (!probe.count || probe.count > 256)
        return -ENOTSUP;
    size_t sz = sizeof(probe) + probe.count * sizeof(struct vfio_pci_dependent_device);
    struct vfio_pci_hot_reset_info *info = calloc(1, sz);
    if (!info)
        return -ENOMEM;
    info->argsz = (uint32_t)sz;
    if (vfio_ioctl(d->container, d->fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) < 0) {
        int e = errno;
        free(info);
        return -e;
    }
    int32_t fds[VFIO_MAX_GROUPS];
    unsigned nfds = 0;
    int r = 0;
    if (d->cdev) {
        /* iommufd: the kernel reports device ids and checks ownership by
         * the iommufd itself; the reset then takes no fds (vfio.h). */
        for (uint32_t i = 0; i < info->count && i < probe.count; i++) {
            const struct vfio_pci_dependent_device *dep = &info->devices[i];
            if (!(info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID) ||
                dep->group_id != (uint32_t)VFIO_PCI_DEVID_NOT_OWNED)
                continue;
            log_warn(COMP, "%s: a bus reset would also reset %04x:%02x:%02x.%x, which minivmm "
                     "does not hold; pass it through as well (--device vfio,host=%04x:%02x:"
                     "%02x.%x) or use a slot where the GPU is alone", d->bdf, dep->segment,
                     dep->bus, dep->devfn >> 3, dep->devfn & 7, dep->segment, dep->bus,
                     dep->devfn >> 3, dep->devfn & 7);
            r = -EPERM;
        }
    }
    for (uint32_t i = 0; !d->cdev && i < info->count && i < probe.count; i++) {
        const struct vfio_pci_dependent_device *dep = &info->devices[i];
        const struct vfio_group *g = NULL;
        for (unsigned k = 0; k < nr_devs; k++)
            if (devs[k] && devs[k]->group && devs[k]->group_id == (int)dep->group_id)
                g = devs[k]->group;
        if (!g) {
            log_warn(COMP, "%s: a bus reset would also reset %04x:%02x:%02x.%x (IOMMU group %u), "
                    "which minivmm does not hold; pass it through as well (--device "
                    "vfio,host=%04x:%02x:%02x.%x) or use a slot where the GPU is alone",
                    d->bdf, dep->segment, dep->bus, dep->devfn >> 3, dep->devfn & 7,
                    dep->group_id, dep->segment, dep->bus, dep->devfn >> 3, dep->devfn & 7);
            r = -EPERM;
            break;
        }
        bool have = false;
        for (unsigned k = 0; k < nfds; k++)
            have |= fds[k] == g->fd;
        if (!have && nfds < VFIO_MAX_GROUPS)
            fds[nfds++] = g->fd;
    }
    free(info);
    if (r < 0)
        return r;
    size_t rsz = sizeof(struct vfio_pci_hot_reset) + nfds * sizeof(int32_t);
    struct vfio_pci_hot_reset *hr = calloc(1, rsz);
    if (!hr)
        return -ENOMEM;
    hr->argsz = (uint32_t)rsz;
    hr->count = nfds;
    memcpy(hr->group_fds, fds, nfds * sizeof(int32_t));
    if (vfio_ioctl(d->container, d->fd, VFIO_DEVICE_PCI_HOT_RESET, hr) < 0)
        r = -errno;
    free(hr);
    return r;
}

int vfio_device_reset(struct vfio_device *d, struct vfio_device *const *devs, unsigned nr_devs)
{
    int r1 = -ENOTSUP;
    if (d->flags & VFIO_DEVICE_FLAGS_RESET) {
        if (vfio_ioctl(d->container, d->fd, VFIO_DEVICE_RESET, NULL) == 0)
            return 0;
        r1 = -errno;
    }
    int r2 = hot_reset(d, devs, nr_devs);
    if (r2 == 0)
        return 0;
    log_warn(COMP, "%s: cannot be reset (function reset: %s; bus reset: %s); it keeps the "
             "state the host or the last guest left it in", d->bdf,
            r1 == -ENOTSUP ? "the kernel has no FLR/PM/device-specific method" : strerror(-r1),
            strerror(-r2));
    return r2;
}
