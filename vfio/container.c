/* VFIO container, groups and DMA maps: the flow is in vfio/container.h. */
#include "vfio/container.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio/iommufd_uapi.h"
#include "vmm/gm.h"
#include "vmm/log.h"

#define COMP "vfio"

static int sys_open(const char *path, int flags)
{
    return open(path, flags);
}

static int sys_ioctl(int fd, unsigned long req, void *arg)
{
    return ioctl(fd, req, arg);
}

static int sys_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

const struct vfio_sys vfio_sys_kernel = {
    .open = sys_open, .close = close, .ioctl = sys_ioctl, .exists = sys_exists,
};

static const struct vfio_sys *sys_of(const struct vfio_container *c)
{
    return c && c->sys ? c->sys : &vfio_sys_kernel;
}

int vfio_ioctl(const struct vfio_container *c, int fd, unsigned long req, void *arg)
{
    return sys_of(c)->ioctl(fd, req, arg);
}

static int sys_close(const struct vfio_container *c, int fd)
{
    return sys_of(c)->close(fd);
}

const char *vfio_iommu_mode_name(enum vfio_iommu_mode m)
{
    switch (m) {
    case VFIO_IOMMU_AUTO: return "auto";
    case VFIO_IOMMU_TYPE1: return "type1";
    case VFIO_IOMMU_IOMMUFD: return "iommufd";
    }
    return "?";
}

/* KVM_DEV_VFIO_FILE_ADD/DEL of a group fd or a device cdev fd (the same
 * attribute; KVM tells them apart). what names it in a warning. */
static bool kvm_file(struct vfio_container *c, int fd, bool add, const char *what)
{
    int32_t file = fd;
    struct kvm_device_attr attr = {
        .group = KVM_DEV_VFIO_FILE,
        .attr = add ? KVM_DEV_VFIO_FILE_ADD : KVM_DEV_VFIO_FILE_DEL,
        .addr = (uint64_t)(uintptr_t)&file,
    };
    if (vfio_ioctl(c, c->kvm_dev_fd, KVM_SET_DEVICE_ATTR, &attr) < 0) {
        log_warn(COMP, "%s: KVM_DEV_VFIO_FILE_%s failed: %s", what, add ? "ADD" : "DEL",
                 strerror(errno));
        return false;
    }
    return true;
}

static void kvm_add_group(struct vfio_container *c, struct vfio_group *g)
{
    if (c->kvm_dev_fd < 0 || g->in_kvm)
        return;
    char what[32];
    snprintf(what, sizeof(what), "group %d", g->id);
    g->in_kvm = kvm_file(c, g->fd, true, what);
}

static void kvm_del_group(struct vfio_container *c, struct vfio_group *g)
{
    if (c->kvm_dev_fd < 0 || !g->in_kvm)
        return;
    char what[32];
    snprintf(what, sizeof(what), "group %d", g->id);
    kvm_file(c, g->fd, false, what);
    g->in_kvm = false;
}

static void kvm_add_cdev(struct vfio_container *c, struct vfio_cdev *d)
{
    if (c->kvm_dev_fd < 0 || d->in_kvm)
        return;
    d->in_kvm = kvm_file(c, d->fd, true, "device cdev");
}

static void kvm_del_cdev(struct vfio_container *c, struct vfio_cdev *d)
{
    if (c->kvm_dev_fd < 0 || !d->in_kvm)
        return;
    kvm_file(c, d->fd, false, "device cdev");
    d->in_kvm = false;
}

static int open_type1(struct vfio_container *c)
{
    char path[64];
    snprintf(path, sizeof(path), "%s/vfio", c->dev_dir);
    c->fd = sys_of(c)->open(path, O_RDWR | O_CLOEXEC);
    if (c->fd < 0) {
        int e = errno;
        if (e == ENOENT)
            log_err(COMP, "%s does not exist: load VFIO with `modprobe vfio-pci`%s", path,
                    sys_of(c)->exists(c->iommu_dev) ? " (this kernel has iommufd: "
                    "--vfio-iommu iommufd uses it)" : "");
        else
            log_err(COMP, "cannot open %s: %s (run minivmm as root, or give this user the "
                    "VFIO device nodes)", path, strerror(e));
        return -e;
    }
    int v = vfio_ioctl(c, c->fd, VFIO_GET_API_VERSION, NULL);
    if (v != VFIO_API_VERSION) {
        log_err(COMP, "%s speaks VFIO API %d, minivmm needs %d", path, v, VFIO_API_VERSION);
        sys_close(c, c->fd);
        c->fd = -1;
        return -EINVAL;
    }
    if (vfio_ioctl(c, c->fd, VFIO_CHECK_EXTENSION, (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) > 0) {
        c->iommu_type = VFIO_TYPE1v2_IOMMU;
    } else if (vfio_ioctl(c, c->fd, VFIO_CHECK_EXTENSION, (void *)(uintptr_t)VFIO_TYPE1_IOMMU) > 0) {
        c->iommu_type = VFIO_TYPE1_IOMMU;
    } else {
        log_err(COMP, "VFIO has no type1 IOMMU driver: is the IOMMU on? (kernel command line "
                "intel_iommu=on or amd_iommu=on, and `modprobe vfio_iommu_type1`)");
        sys_close(c, c->fd);
        c->fd = -1;
        return -ENODEV;
    }
    c->mode = VFIO_IOMMU_TYPE1;
    log_info(COMP, "IOMMU: VFIO container %s, type1%s", path,
             c->iommu_type == VFIO_TYPE1v2_IOMMU ? "v2" : "");
    return 0;
}

static int open_iommufd(struct vfio_container *c)
{
    const char *path = c->iommu_dev;
    c->fd = sys_of(c)->open(path, O_RDWR | O_CLOEXEC);
    if (c->fd < 0) {
        int e = errno;
        if (e == ENOENT)
            log_err(COMP, "%s does not exist: this kernel has no iommufd (CONFIG_IOMMUFD; try "
                    "`modprobe iommufd`), so --vfio-iommu iommufd cannot work here; use "
                    "--vfio-iommu type1", path);
        else
            log_err(COMP, "cannot open %s: %s (run minivmm as root, or give this user %s)",
                    path, strerror(e), path);
        return -e;
    }
    struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
    if (vfio_ioctl(c, c->fd, IOMMU_IOAS_ALLOC, &alloc) < 0) {
        int e = errno;
        log_err(COMP, "%s: IOMMU_IOAS_ALLOC: %s", path, strerror(e));
        sys_close(c, c->fd);
        c->fd = -1;
        return -e;
    }
    c->ioas_id = alloc.out_ioas_id;
    c->iommu_set = true;        /* the IOAS takes mappings before any device */
    c->mode = VFIO_IOMMU_IOMMUFD;
    log_info(COMP, "IOMMU: iommufd %s, IOAS %u", path, c->ioas_id);
    return 0;
}

int vfio_container_open(struct vfio_container *c)
{
    /* The fields a caller may preset. */
    const char *dir = c->dev_dir, *iommu_dev = c->iommu_dev;
    const struct vfio_sys *sys = c->sys;
    enum vfio_iommu_mode mode = c->mode;
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->kvm_dev_fd = -1;
    for (unsigned i = 0; i < VFIO_MAX_CDEVS; i++)
        c->cdevs[i].fd = -1;
    c->sys = sys;
    c->dev_dir = dir ? dir : "/dev/vfio";
    c->iommu_dev = iommu_dev ? iommu_dev : "/dev/iommu";
    if (mode == VFIO_IOMMU_AUTO) {
        /* The container where the kernel has one: it is what every kernel
         * since 3.6 speaks, and what QEMU uses by default. iommufd where it
         * is the only way (CONFIG_VFIO_CONTAINER off). */
        char path[64];
        snprintf(path, sizeof(path), "%s/vfio", c->dev_dir);
        mode = !sys_of(c)->exists(path) && sys_of(c)->exists(c->iommu_dev) ? VFIO_IOMMU_IOMMUFD
                                                                             : VFIO_IOMMU_TYPE1;
    }
    return mode == VFIO_IOMMU_IOMMUFD ? open_iommufd(c) : open_type1(c);
}

static int dma_ioctl_unmap(struct vfio_container *c, uint64_t iova, uint64_t size);

void vfio_container_close(struct vfio_container *c)
{
    if (c->fd < 0 && !c->nr_groups)
        return;
    if (c->iommu_set)
        for (unsigned i = 0; i < c->nr_dma; i++)
            dma_ioctl_unmap(c, c->dma[i].iova, c->dma[i].size);
    free(c->dma);
    c->dma = NULL;
    c->nr_dma = c->cap_dma = 0;
    for (unsigned i = 0; i < c->nr_groups; i++) {
        struct vfio_group *g = &c->groups[i];
        if (!g->users)
            continue;
        kvm_del_group(c, g);
        if (vfio_ioctl(c, g->fd, VFIO_GROUP_UNSET_CONTAINER, NULL) < 0)
            log_warn(COMP, "group %d: VFIO_GROUP_UNSET_CONTAINER: %s", g->id, strerror(errno));
        sys_close(c, g->fd);
    }
    c->nr_groups = 0;
    for (unsigned i = 0; i < VFIO_MAX_CDEVS; i++)
        if (c->cdevs[i].fd >= 0)
            vfio_container_close_cdev(c, c->cdevs[i].fd);
    if (c->mode == VFIO_IOMMU_IOMMUFD && c->iommu_set) {
        struct iommu_destroy d = { .size = sizeof(d), .id = c->ioas_id };
        if (vfio_ioctl(c, c->fd, IOMMU_DESTROY, &d) < 0)
            log_warn(COMP, "IOMMU_DESTROY of IOAS %u: %s", c->ioas_id, strerror(errno));
    }
    if (c->kvm_dev_fd >= 0)
        sys_close(c, c->kvm_dev_fd);
    c->kvm_dev_fd = -1;
    if (c->fd >= 0)
        sys_close(c, c->fd);
    c->fd = -1;
    c->iommu_set = false;
}

int vfio_group_of(const struct host_ctx *hc, const char *bdf, int *group, char *err, size_t errlen)
{
    if (!hs_is_dir(hc, "/sys/bus/pci/devices/%s", bdf)) {
        snprintf(err, errlen, "%s: no such PCI device on this host (see `lspci -D` or "
                 "`minivmm host groups`)", bdf);
        return -ENODEV;
    }
    char name[32];
    int r = hs_link_name(hc, name, sizeof(name), "/sys/bus/pci/devices/%s/iommu_group", bdf);
    if (r < 0) {
        snprintf(err, errlen, "%s has no IOMMU group: the IOMMU is off (add intel_iommu=on or "
                 "amd_iommu=on to the kernel command line and enable VT-d/AMD-Vi in the "
                 "firmware; `minivmm host check` tells more)", bdf);
        return -ENOENT;
    }
    long id;
    if (parse_long(name, 0, 1 << 30, &id) < 0) {
        snprintf(err, errlen, "%s: unexpected IOMMU group name '%s'", bdf, name);
        return -EINVAL;
    }
    *group = (int)id;
    return 0;
}

int vfio_group_check(const struct host_ctx *hc, int group, const char *bdf, char *err, size_t errlen)
{
    char **names = NULL;
    size_t n = 0;
    int r = hs_list(hc, &names, &n, "/sys/kernel/iommu_groups/%d/devices", group);
    if (r < 0) {
        snprintf(err, errlen, "%s: cannot list IOMMU group %d: %s", bdf, group, strerror(-r));
        return r;
    }
    struct sbuf who = {0}, cmds = {0}, lines = {0};
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        char fixed[HOST_BDF_LEN];
        if (bdf_parse(names[i], fixed) < 0)
            continue;                   /* not a PCI device */
        char drv[HOST_NAME_LEN] = "";
        int lr = hs_link_name(hc, drv, sizeof(drv), "/sys/bus/pci/devices/%s/driver", fixed);
        if (lr < 0 && lr != -ENOENT)
            drv[0] = 0;
        char cls[32] = "";
        uint64_t class_code = 0;
        bool bridge = hs_read(hc, cls, sizeof(cls), "/sys/bus/pci/devices/%s/class", fixed) > 0 &&
                      parse_hex_u64(cls, 0xFFFFFF, &class_code) == 0 && (class_code >> 16) == 0x06;
        if (host_driver_group_safe(drv) || bridge)
            continue;
        bad++;
        sb_printf(&who, "%s%s (driver %s)", bad > 1 ? ", " : "", fixed, drv);
        sb_printf(&cmds, " %s", fixed);
        sb_printf(&lines, "  echo vfio-pci > /sys/bus/pci/devices/%s/driver_override\n"
                  "  echo %s > /sys/bus/pci/devices/%s/driver/unbind\n"
                  "  echo %s > /sys/bus/pci/drivers_probe\n", fixed, fixed, fixed, fixed);
    }
    hs_list_free(names, n);
    if (bad) {
        snprintf(err, errlen,
                 "%s: IOMMU group %d is not usable: %s %s not bound to vfio-pci. Bind with\n"
                 "  minivmm host bind%s\n(or add --bind), or by hand:\n%s",
                 bdf, group, sb_str(&who), bad > 1 ? "are" : "is", sb_str(&cmds), sb_str(&lines));
        r = -EBUSY;
    }
    sb_free(&who);
    sb_free(&cmds);
    sb_free(&lines);
    return r;
}

static int dma_ioctl_map(struct vfio_container *c, const struct vfio_dma *d)
{
    int r;
    if (c->mode == VFIO_IOMMU_IOMMUFD) {
        struct iommu_ioas_map m = {
            .size = sizeof(m),
            .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
                     IOMMU_IOAS_MAP_WRITEABLE,
            .ioas_id = c->ioas_id,
            .user_va = (uint64_t)(uintptr_t)d->hva,
            .length = d->size,
            .iova = d->iova,
        };
        r = vfio_ioctl(c, c->fd, IOMMU_IOAS_MAP, &m);
    } else {
        struct vfio_iommu_type1_dma_map m = {
            .argsz = sizeof(m),
            .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            .vaddr = (uint64_t)(uintptr_t)d->hva,
            .iova = d->iova,
            .size = d->size,
        };
        r = vfio_ioctl(c, c->fd, VFIO_IOMMU_MAP_DMA, &m);
    }
    if (r == 0)
        return 0;
    int e = errno;
    if (e == ENOMEM)
        log_err(COMP, "DMA map of guest RAM 0x%llx+0x%llx failed: out of locked memory: raise "
                "the limit (`ulimit -l unlimited`, or LimitMEMLOCK= in a systemd unit) or run "
                "as root", (unsigned long long)d->iova, (unsigned long long)d->size);
    else
        log_err(COMP, "DMA map of guest RAM 0x%llx+0x%llx failed: %s",
                (unsigned long long)d->iova, (unsigned long long)d->size, strerror(e));
    return -e;
}

/* Both interfaces unmap whole mappings only (iommufd.h: "Splitting or
 * truncating ranges is not allowed"), so callers pass what was mapped. */
static int dma_ioctl_unmap(struct vfio_container *c, uint64_t iova, uint64_t size)
{
    int r;
    if (c->mode == VFIO_IOMMU_IOMMUFD) {
        struct iommu_ioas_unmap um = {
            .size = sizeof(um), .ioas_id = c->ioas_id, .iova = iova, .length = size,
        };
        r = vfio_ioctl(c, c->fd, IOMMU_IOAS_UNMAP, &um);
    } else {
        struct vfio_iommu_type1_dma_unmap um = { .argsz = sizeof(um), .iova = iova, .size = size };
        r = vfio_ioctl(c, c->fd, VFIO_IOMMU_UNMAP_DMA, &um);
    }
    if (r == 0)
        return 0;
    int e = errno;
    log_err(COMP, "DMA unmap of 0x%llx+0x%llx failed: %s", (unsigned long long)iova,
            (unsigned long long)size, strerror(e));
    return -e;
}

static int dma_list_add(struct vfio_container *c, const struct vfio_dma *d)
{
    if (c->nr_dma == c->cap_dma) {
        unsigned cap = c->cap_dma ? c->cap_dma * 2 : 8;
        struct vfio_dma *n = realloc(c->dma, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        c->dma = n;
        c->cap_dma = cap;
    }
    c->dma[c->nr_dma++] = *d;
    return 0;
}

int vfio_container_dma_map(struct vfio_container *c, uint64_t iova, uint64_t size, void *hva)
{
    if (!size || iova + size < iova)
        return -EINVAL;
    for (unsigned i = 0; i < c->nr_dma; i++)
        if (iova < c->dma[i].iova + c->dma[i].size && c->dma[i].iova < iova + size) {
            log_err(COMP, "DMA map 0x%llx+0x%llx overlaps 0x%llx+0x%llx",
                    (unsigned long long)iova, (unsigned long long)size,
                    (unsigned long long)c->dma[i].iova, (unsigned long long)c->dma[i].size);
            return -EEXIST;
        }
    struct vfio_dma d = { iova, size, hva };
    if (c->iommu_set) {
        int r = dma_ioctl_map(c, &d);
        if (r < 0)
            return r;
    }
    int r = dma_list_add(c, &d);
    if (r < 0 && c->iommu_set)
        dma_ioctl_unmap(c, iova, size);
    return r;
}

int vfio_container_dma_unmap(struct vfio_container *c, uint64_t iova, uint64_t size)
{
    if (!size || iova + size < iova)
        return -EINVAL;
    uint64_t end = iova + size;
    for (unsigned i = 0; i < c->nr_dma;) {
        struct vfio_dma d = c->dma[i];
        uint64_t dend = d.iova + d.size;
        if (end <= d.iova || iova >= dend) {
            i++;
            continue;
        }
        /* type1v2 unmaps whole mappings only: drop this one, then map
         * back what lies outside the hole. */
        if (c->iommu_set) {
            int r = dma_ioctl_unmap(c, d.iova, d.size);
            if (r < 0)
                return r;
        }
        c->dma[i] = c->dma[--c->nr_dma];
        if (d.iova < iova) {
            int r = vfio_container_dma_map(c, d.iova, iova - d.iova, d.hva);
            if (r < 0)
                return r;
        }
        if (end < dend) {
            int r = vfio_container_dma_map(c, end, dend - end, (uint8_t *)d.hva + (end - d.iova));
            if (r < 0)
                return r;
        }
        i = 0;              /* the list changed: look again */
    }
    return 0;
}

int vfio_container_map_gm(struct vfio_container *c, const struct gm *gm)
{
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        const struct gm_region *r = &gm->regions[i];
        int e = vfio_container_dma_map(c, r->gpa, r->size, r->hva);
        if (e < 0) {
            for (unsigned j = 0; j < i; j++)
                vfio_container_dma_unmap(c, gm->regions[j].gpa, gm->regions[j].size);
            return e;
        }
    }
    return 0;
}

int vfio_container_get_group(struct vfio_container *c, int group, const char *bdf,
                             struct vfio_group **out)
{
    if (c->mode == VFIO_IOMMU_IOMMUFD) {
        log_err(COMP, "%s: internal: a group asked for with iommufd", bdf);
        return -EINVAL;
    }
    unsigned slot = c->nr_groups;
    for (unsigned i = 0; i < c->nr_groups; i++) {
        if (!c->groups[i].users) {
            if (slot == c->nr_groups)
                slot = i;               /* a free slot to reuse */
            continue;
        }
        if (c->groups[i].id == group) {
            c->groups[i].users++;
            *out = &c->groups[i];
            return 0;
        }
    }
    if (slot == VFIO_MAX_GROUPS) {
        log_err(COMP, "%s: more than %d IOMMU groups", bdf, VFIO_MAX_GROUPS);
        return -ENOSPC;
    }
    char path[64];
    snprintf(path, sizeof(path), "%s/%d", c->dev_dir, group);
    int fd = sys_of(c)->open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EBUSY)
            log_err(COMP, "%s: IOMMU group %d (%s) is already in use by another process "
                    "(another minivmm or QEMU has this device); stop it first", bdf, group, path);
        else if (e == ENOENT)
            log_err(COMP, "%s: %s does not exist: the device is not bound to vfio-pci; run "
                    "`minivmm host bind %s` (or add --bind)", bdf, path, bdf);
        else
            log_err(COMP, "%s: cannot open %s: %s (run minivmm as root, or give this user "
                    "the VFIO device nodes)", bdf, path, strerror(e));
        return -e;
    }
    struct vfio_group_status st = { .argsz = sizeof(st) };
    if (vfio_ioctl(c, fd, VFIO_GROUP_GET_STATUS, &st) < 0) {
        int e = errno;
        log_err(COMP, "%s: VFIO_GROUP_GET_STATUS on group %d: %s", bdf, group, strerror(e));
        sys_close(c, fd);
        return -e;
    }
    if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        log_err(COMP, "%s: IOMMU group %d is not viable: every device in it must be bound to "
                "vfio-pci (or have no driver); `minivmm host groups` lists them, "
                "`minivmm host bind %s` binds them", bdf, group, bdf);
        sys_close(c, fd);
        return -EBUSY;
    }
    if (vfio_ioctl(c, fd, VFIO_GROUP_SET_CONTAINER, &c->fd) < 0) {
        int e = errno;
        log_err(COMP, "%s: attaching IOMMU group %d to the container failed: %s%s", bdf, group,
                strerror(e), e == EBUSY ? " (another process uses the group)" : "");
        sys_close(c, fd);
        return -e;
    }
    if (!c->iommu_set) {
        if (vfio_ioctl(c, c->fd, VFIO_SET_IOMMU, (void *)(uintptr_t)c->iommu_type) < 0) {
            int e = errno;
            log_err(COMP, "%s: VFIO_SET_IOMMU (type1%s): %s", bdf,
                    c->iommu_type == VFIO_TYPE1v2_IOMMU ? "v2" : "", strerror(e));
            vfio_ioctl(c, fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
            sys_close(c, fd);
            return -e;
        }
        c->iommu_set = true;
        /* Mappings recorded before the first group. */
        for (unsigned i = 0; i < c->nr_dma; i++) {
            int r = dma_ioctl_map(c, &c->dma[i]);
            if (r < 0) {
                for (unsigned j = 0; j < i; j++)
                    dma_ioctl_unmap(c, c->dma[j].iova, c->dma[j].size);
                c->iommu_set = false;
                vfio_ioctl(c, fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
                sys_close(c, fd);
                return r;
            }
        }
    }
    struct vfio_group *g = &c->groups[slot];
    if (slot == c->nr_groups)
        c->nr_groups++;
    *g = (struct vfio_group){ .id = group, .fd = fd, .users = 1 };
    kvm_add_group(c, g);
    *out = g;
    return 0;
}

void vfio_container_put_group(struct vfio_container *c, struct vfio_group *g)
{
    if (!g || !g->users || --g->users)
        return;
    kvm_del_group(c, g);
    vfio_ioctl(c, g->fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
    sys_close(c, g->fd);
    g->fd = -1;                         /* the slot is free (users == 0) */
    bool any = false;
    for (unsigned i = 0; i < c->nr_groups; i++)
        any |= c->groups[i].users > 0;
    if (!any) {
        /* The IOMMU context went with the last group: the list stays, to
         * be mapped again if a group comes back. */
        c->nr_groups = 0;
        c->iommu_set = false;
    }
}

int vfio_container_kvm_attach(struct vfio_container *c, int vm_fd)
{
    if (c->kvm_dev_fd >= 0)
        return 0;
    struct kvm_create_device cd = { .type = KVM_DEV_TYPE_VFIO };
    if (vfio_ioctl(c, vm_fd, KVM_CREATE_DEVICE, &cd) < 0) {
        int e = errno;
        log_warn(COMP, "KVM_CREATE_DEVICE(VFIO) failed: %s; KVM will not know about "
                 "non-coherent DMA", strerror(e));
        return -e;
    }
    c->kvm_dev_fd = (int)cd.fd;
    for (unsigned i = 0; i < c->nr_groups; i++)
        if (c->groups[i].users)
            kvm_add_group(c, &c->groups[i]);
    for (unsigned i = 0; i < VFIO_MAX_CDEVS; i++)
        if (c->cdevs[i].fd >= 0)
            kvm_add_cdev(c, &c->cdevs[i]);
    return 0;
}

/* The vfioN under /sys/bus/pci/devices/BDF/vfio-dev/: the name of the
 * device's node in <dev_dir>/devices/. */
static int cdev_name(const struct host_ctx *hc, const char *bdf, char *name, size_t len)
{
    char **names = NULL;
    size_t n = 0;
    int r = hs_list(hc, &names, &n, "/sys/bus/pci/devices/%s/vfio-dev", bdf);
    if (r < 0)
        return r;
    r = -ENOENT;
    for (size_t i = 0; i < n; i++) {
        const char *p = names[i];
        if (strncmp(p, "vfio", 4) || !p[4] || strspn(p + 4, "0123456789") != strlen(p + 4) ||
            strlen(p) >= len)
            continue;
        snprintf(name, len, "%s", p);
        r = 0;
        break;
    }
    hs_list_free(names, n);
    return r;
}

int vfio_container_open_cdev(struct vfio_container *c, const struct host_ctx *hc, const char *bdf,
                             int *dev_fd)
{
    *dev_fd = -1;
    if (c->mode != VFIO_IOMMU_IOMMUFD || c->fd < 0) {
        log_err(COMP, "%s: internal: a device cdev asked for without iommufd", bdf);
        return -EINVAL;
    }
    unsigned slot = VFIO_MAX_CDEVS;
    for (unsigned i = 0; i < VFIO_MAX_CDEVS && slot == VFIO_MAX_CDEVS; i++)
        if (c->cdevs[i].fd < 0)
            slot = i;
    if (slot == VFIO_MAX_CDEVS) {
        log_err(COMP, "%s: more than %d passed-through functions", bdf, VFIO_MAX_CDEVS);
        return -ENOSPC;
    }
    char name[32];
    int r = cdev_name(hc, bdf, name, sizeof(name));
    if (r < 0) {
        log_err(COMP, "%s has no VFIO character device (no vfioN in /sys/bus/pci/devices/%s/"
                "vfio-dev): it is not bound to vfio-pci (`minivmm host bind %s`), or this "
                "kernel lacks CONFIG_VFIO_DEVICE_CDEV; --vfio-iommu type1 works without it",
                bdf, bdf, bdf);
        return -ENODEV;
    }
    char path[96];
    snprintf(path, sizeof(path), "%s/devices/%s", c->dev_dir, name);
    int fd = sys_of(c)->open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EBUSY)
            log_err(COMP, "%s: %s is already in use by another process (another minivmm or "
                    "QEMU has this device); stop it first", bdf, path);
        else
            log_err(COMP, "%s: cannot open %s: %s (run minivmm as root, or give this user the "
                    "VFIO device nodes)", bdf, path, strerror(e));
        return -e;
    }
    struct vfio_device_bind_iommufd bind = {
        .argsz = sizeof(bind), .iommufd = c->fd,
    };
    if (vfio_ioctl(c, fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0) {
        int e = errno;
        log_err(COMP, "%s: VFIO_DEVICE_BIND_IOMMUFD (%s): %s%s", bdf, path, strerror(e),
                e == EBUSY ? " (the device is in use, or another device of its IOMMU group is "
                "bound to a host driver)" : "");
        sys_close(c, fd);
        return -e;
    }
    struct vfio_device_attach_iommufd_pt at = {
        .argsz = sizeof(at), .pt_id = c->ioas_id,
    };
    if (vfio_ioctl(c, fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at) < 0) {
        int e = errno;
        log_err(COMP, "%s: VFIO_DEVICE_ATTACH_IOMMUFD_PT to IOAS %u: %s", bdf, c->ioas_id,
                strerror(e));
        sys_close(c, fd);       /* closing unbinds */
        return -e;
    }
    log_info(COMP, "%s: %s bound to iommufd (device id %u), attached to IOAS %u", bdf, path,
             bind.out_devid, c->ioas_id);
    c->cdevs[slot] = (struct vfio_cdev){ .fd = fd };
    kvm_add_cdev(c, &c->cdevs[slot]);
    *dev_fd = fd;
    return 0;
}

void vfio_container_close_cdev(struct vfio_container *c, int dev_fd)
{
    if (dev_fd < 0)
        return;
    for (unsigned i = 0; i < VFIO_MAX_CDEVS; i++) {
        struct vfio_cdev *d = &c->cdevs[i];
        if (d->fd != dev_fd)
            continue;
        kvm_del_cdev(c, d);
        sys_close(c, d->fd);
        d->fd = -1;
        return;
    }
}
