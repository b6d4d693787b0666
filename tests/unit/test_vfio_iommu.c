/* vfio/container.c and the reset path of vfio/device.c against a fake
 * kernel (struct vfio_sys): the exact open/ioctl/close sequence of both
 * IOMMU interfaces, the type1 container and iommufd with device cdevs
 * (Documentation/driver-api/vfio.rst), the choice between them, the DMA
 * mappings the kernel ends up holding, and that every failure leaves no fd
 * open. The fake checks each struct's size field the way the kernel does,
 * and keeps its own map of IOVA ranges (refusing overlaps and partial
 * unmaps, as iommufd does). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture_tree.h"
#include "vfio/container.h"
#include "vfio/device.h"
#include "vfio/iommufd_uapi.h"

/* --- the fake kernel */
#define FK_MAX_FDS  32
#define FK_MAX_MAPS 32
#define FK_IOAS     7
#define FK_VM_FD    50
#define FK_DEV_FD   90         /* a device fd the reset tests hand in */

static struct {
    const char *exists[8];      /* device nodes present */
    const char *busy;           /* open() of it fails with EBUSY */
    unsigned long fail_req;     /* this ioctl fails with fail_errno */
    int fail_errno;
    char path[FK_MAX_FDS][96];  /* fd - 100 -> what it is; "" = closed */
    int iommufd;                /* fd of /dev/iommu, or -1 */
    int container;              /* fd of <dev>/vfio, or -1 */
    char log[4096];             /* "op;op;..." */
    struct { uint64_t iova, len, va; } maps[FK_MAX_MAPS];
    unsigned nr_maps;
    bool ioas_alive, iommu_set;
    uint32_t reset_devid;       /* what GET_PCI_HOT_RESET_INFO reports */
    int reset_count;            /* count passed to VFIO_DEVICE_PCI_HOT_RESET, -1 = none */
    int kvm_files[8];
    unsigned nr_kvm_files;
} fk;

static void fk_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fk_log(const char *fmt, ...)
{
    size_t n = strlen(fk.log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fk.log + n, sizeof(fk.log) - n, fmt, ap);
    va_end(ap);
    n = strlen(fk.log);
    if (n + 1 < sizeof(fk.log))
        strcat(fk.log, ";");
}

static const char *base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int fk_new_fd(const char *what)
{
    for (int i = 0; i < FK_MAX_FDS; i++)
        if (!fk.path[i][0]) {
            snprintf(fk.path[i], sizeof(fk.path[i]), "%s", what);
            return 100 + i;
        }
    errno = EMFILE;
    return -1;
}

static int fk_exists(const char *path)
{
    for (unsigned i = 0; i < 8 && fk.exists[i]; i++)
        if (!strcmp(fk.exists[i], path))
            return 1;
    return 0;
}

static int fk_open(const char *path, int flags)
{
    (void)flags;
    fk_log("open %s", base(path));
    if (fk.busy && !strcmp(path, fk.busy)) {
        errno = EBUSY;
        return -1;
    }
    if (!fk_exists(path)) {
        errno = ENOENT;
        return -1;
    }
    int fd = fk_new_fd(path);
    if (!strcmp(base(path), "iommu"))
        fk.iommufd = fd;
    else if (!strcmp(base(path), "vfio"))
        fk.container = fd;
    return fd;
}

static int fk_close(int fd)
{
    cr_assert(fd >= 100 && fd < 100 + FK_MAX_FDS && fk.path[fd - 100][0], "close of fd %d", fd);
    fk_log("close %s", base(fk.path[fd - 100]));
    fk.path[fd - 100][0] = 0;
    if (fd == fk.iommufd) {
        fk.iommufd = -1;
        fk.nr_maps = 0;         /* the kernel drops it all with the fd */
        fk.ioas_alive = false;
    }
    if (fd == fk.container)
        fk.container = -1;
    return 0;
}

static unsigned fk_open_fds(void)
{
    unsigned n = 0;
    for (int i = 0; i < FK_MAX_FDS; i++)
        n += fk.path[i][0] != 0;
    return n;
}

static int fk_map(uint64_t iova, uint64_t len, uint64_t va)
{
    for (unsigned i = 0; i < fk.nr_maps; i++)
        if (iova < fk.maps[i].iova + fk.maps[i].len && fk.maps[i].iova < iova + len) {
            errno = EEXIST;
            return -1;
        }
    cr_assert_lt(fk.nr_maps, FK_MAX_MAPS);
    fk.maps[fk.nr_maps].iova = iova;
    fk.maps[fk.nr_maps].len = len;
    fk.maps[fk.nr_maps].va = va;
    fk.nr_maps++;
    return 0;
}

/* Whole mappings only: a range that cuts one is refused. */
static int fk_unmap(uint64_t iova, uint64_t len)
{
    bool any = false;
    for (unsigned i = 0; i < fk.nr_maps;) {
        uint64_t a = fk.maps[i].iova, e = a + fk.maps[i].len;
        if (e <= iova || a >= iova + len) {
            i++;
            continue;
        }
        if (a < iova || e > iova + len) {
            errno = ENOENT;
            return -1;
        }
        fk.maps[i] = fk.maps[--fk.nr_maps];
        any = true;
    }
    if (!any) {
        errno = ENOENT;
        return -1;
    }
    return 0;
}

static int fk_ioctl(int fd, unsigned long req, void *arg)
{
    if (req == fk.fail_req) {
        fk_log("ioctl %lx failed", req);
        errno = fk.fail_errno;
        return -1;
    }
    /* Device ioctls reuse numbers of container ioctls (VFIO_BASE + 12 and
     * + 13 are also VFIO_IOMMU_GET_INFO and _MAP_DMA): the fd tells. */
    if (fd == FK_DEV_FD && req == VFIO_DEVICE_GET_PCI_HOT_RESET_INFO) {
        struct vfio_pci_hot_reset_info *info = arg;
        size_t need = sizeof(*info) + sizeof(struct vfio_pci_dependent_device);
        info->flags = VFIO_PCI_HOT_RESET_FLAG_DEV_ID |
                      (fk.reset_devid != (uint32_t)VFIO_PCI_DEVID_NOT_OWNED
                           ? VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED : 0);
        info->count = 1;
        if (info->argsz < need) {
            errno = ENOSPC;
            return -1;
        }
        info->devices[0] = (struct vfio_pci_dependent_device){
            .group_id = fk.reset_devid, .segment = 0, .bus = 1, .devfn = 1,
        };
        return 0;
    }
    if (fd == FK_DEV_FD && req == VFIO_DEVICE_PCI_HOT_RESET) {
        struct vfio_pci_hot_reset *hr = arg;
        cr_assert_eq(hr->argsz, sizeof(*hr) + hr->count * sizeof(int32_t));
        fk.reset_count = (int)hr->count;
        fk_log("PCI_HOT_RESET %u", hr->count);
        return 0;
    }
    switch (req) {
    case VFIO_GET_API_VERSION:
        fk_log("GET_API_VERSION");
        return VFIO_API_VERSION;
    case VFIO_CHECK_EXTENSION:
        return (uintptr_t)arg == VFIO_TYPE1v2_IOMMU;
    case VFIO_GROUP_GET_STATUS: {
        struct vfio_group_status *st = arg;
        cr_assert_eq(st->argsz, sizeof(*st));
        st->flags = VFIO_GROUP_FLAGS_VIABLE;
        fk_log("GROUP_GET_STATUS");
        return 0;
    }
    case VFIO_GROUP_SET_CONTAINER:
        cr_assert_eq(*(int *)arg, fk.container, "the group joins our container");
        fk_log("GROUP_SET_CONTAINER");
        return 0;
    case VFIO_GROUP_UNSET_CONTAINER:
        fk_log("GROUP_UNSET_CONTAINER");
        return 0;
    case VFIO_SET_IOMMU:
        cr_assert_eq((uintptr_t)arg, VFIO_TYPE1v2_IOMMU);
        fk.iommu_set = true;
        fk_log("SET_IOMMU");
        return 0;
    case VFIO_IOMMU_MAP_DMA: {
        struct vfio_iommu_type1_dma_map *m = arg;
        cr_assert(fk.iommu_set, "MAP_DMA before SET_IOMMU");
        cr_assert_eq(m->argsz, sizeof(*m));
        cr_assert_eq(m->flags, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
        fk_log("MAP_DMA %llx+%llx", (unsigned long long)m->iova, (unsigned long long)m->size);
        return fk_map(m->iova, m->size, m->vaddr);
    }
    case VFIO_IOMMU_UNMAP_DMA: {
        struct vfio_iommu_type1_dma_unmap *um = arg;
        cr_assert_eq(um->argsz, sizeof(*um));
        fk_log("UNMAP_DMA %llx+%llx", (unsigned long long)um->iova, (unsigned long long)um->size);
        return fk_unmap(um->iova, um->size);
    }
    case IOMMU_IOAS_ALLOC: {
        struct iommu_ioas_alloc *a = arg;
        cr_assert_eq(fd, fk.iommufd);
        cr_assert_eq(a->size, sizeof(*a));
        cr_assert_eq(a->flags, 0);
        a->out_ioas_id = FK_IOAS;
        fk.ioas_alive = true;
        fk_log("IOAS_ALLOC");
        return 0;
    }
    case IOMMU_IOAS_MAP: {
        struct iommu_ioas_map *m = arg;
        cr_assert_eq(fd, fk.iommufd);
        cr_assert_eq(m->size, sizeof(*m));
        cr_assert_eq(m->ioas_id, FK_IOAS);
        cr_assert_eq(m->__reserved, 0);
        cr_assert_eq(m->flags, IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
                               IOMMU_IOAS_MAP_WRITEABLE, "at the guest-physical address, R/W");
        fk_log("IOAS_MAP %llx+%llx", (unsigned long long)m->iova, (unsigned long long)m->length);
        return fk_map(m->iova, m->length, m->user_va);
    }
    case IOMMU_IOAS_UNMAP: {
        struct iommu_ioas_unmap *um = arg;
        cr_assert_eq(fd, fk.iommufd);
        cr_assert_eq(um->size, sizeof(*um));
        cr_assert_eq(um->ioas_id, FK_IOAS);
        fk_log("IOAS_UNMAP %llx+%llx", (unsigned long long)um->iova, (unsigned long long)um->length);
        return fk_unmap(um->iova, um->length);
    }
    case IOMMU_DESTROY: {
        struct iommu_destroy *d = arg;
        cr_assert_eq(d->size, sizeof(*d));
        cr_assert_eq(d->id, FK_IOAS);
        cr_assert_eq(fk.nr_maps, 0, "everything was unmapped first");
        fk.ioas_alive = false;
        fk_log("DESTROY");
        return 0;
    }
    case VFIO_DEVICE_BIND_IOMMUFD: {
        struct vfio_device_bind_iommufd *b = arg;
        cr_assert_eq(b->argsz, sizeof(*b));
        cr_assert_eq(b->flags, 0);
        cr_assert_eq(b->iommufd, fk.iommufd, "bound to our iommufd");
        b->out_devid = 3;
        fk_log("BIND_IOMMUFD");
        return 0;
    }
    case VFIO_DEVICE_ATTACH_IOMMUFD_PT: {
        struct vfio_device_attach_iommufd_pt *at = arg;
        cr_assert_eq(at->argsz, sizeof(*at));
        cr_assert_eq(at->pt_id, FK_IOAS, "attached to the VM's IOAS");
        fk_log("ATTACH_IOMMUFD_PT");
        return 0;
    }
    case KVM_CREATE_DEVICE: {
        struct kvm_create_device *cd = arg;
        cr_assert_eq(fd, FK_VM_FD);
        cr_assert_eq(cd->type, KVM_DEV_TYPE_VFIO);
        cd->fd = (uint32_t)fk_new_fd("kvm-vfio");
        fk_log("KVM_CREATE_DEVICE");
        return 0;
    }
    case KVM_SET_DEVICE_ATTR: {
        struct kvm_device_attr *at = arg;
        int file = *(int32_t *)(uintptr_t)at->addr;
        cr_assert_eq(at->group, KVM_DEV_VFIO_FILE);
        cr_assert(file >= 100 && file < 100 + FK_MAX_FDS && fk.path[file - 100][0],
                  "KVM is given an open fd");
        fk_log("KVM_FILE_%s %s", at->attr == KVM_DEV_VFIO_FILE_ADD ? "ADD" : "DEL",
               base(fk.path[file - 100]));
        return 0;
    }
    }
    cr_assert_fail("unexpected ioctl %lx on fd %d", req, fd);
    return -1;
}

static const struct vfio_sys fk_sys = {
    .open = fk_open, .close = fk_close, .ioctl = fk_ioctl, .exists = fk_exists,
};

/* --- fake sysfs for the cdev lookup */
static char root[128];
static struct host_ctx hc;


static struct vfio_container c;

static void setup(void)
{
    memset(&fk, 0, sizeof(fk));
    fk.iommufd = fk.container = -1;
    fk.reset_count = -1;
    snprintf(root, sizeof(root), "/tmp/minivmm-test-iommu-XXXXXX");
    cr_assert(mkdtemp(root));
    hc = (struct host_ctx){ .root = root, .out = stderr, .err = stderr };
    /* 0000:01:00.0 bound to vfio-pci with cdev vfio3; 0000:02:00.0 without one */
    fixture_mkdirs(root, "sys/bus/pci/devices/0000:01:00.0/vfio-dev/vfio3");
    fixture_mkdirs(root, "sys/bus/pci/devices/0000:02:00.0");
    memset(&c, 0, sizeof(c));
    c.sys = &fk_sys;
    c.dev_dir = "/fake/dev/vfio";
    c.iommu_dev = "/fake/dev/iommu";
    c.fd = c.kvm_dev_fd = -1;
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", root);
}

TestSuite(vfio_iommu, .init = setup, .fini = teardown);

static bool fk_has(uint64_t iova, uint64_t len, uint64_t va)
{
    for (unsigned i = 0; i < fk.nr_maps; i++)
        if (fk.maps[i].iova == iova && fk.maps[i].len == len && fk.maps[i].va == va)
            return true;
    return false;
}

#define LOG_IS(want) cr_assert_str_eq(fk.log, want)

/* Open c on iommufd (IOAS FK_IOAS); with_cdev: 0000:01:00.0's vfio3 node
 * exists too. */
static void open_iommufd(bool with_cdev)
{
    c.mode = VFIO_IOMMU_IOMMUFD;
    fk.exists[0] = "/fake/dev/iommu";
    if (with_cdev)
        fk.exists[1] = "/fake/dev/vfio/devices/vfio3";
    cr_assert_eq(vfio_container_open(&c), 0);
}

Test(vfio_iommu, uapi_matches_the_kernel)
{
    /* Sizes and numbers of Linux 6.12's include/uapi/linux/iommufd.h and
     * vfio.h: a wrong layout would be refused by the kernel's size check
     * or, worse, read wrong. */
    cr_assert_eq(sizeof(struct iommu_ioas_alloc), 12);
    cr_assert_eq(sizeof(struct iommu_ioas_map), 40);
    cr_assert_eq(sizeof(struct iommu_ioas_unmap), 24);
    cr_assert_eq(sizeof(struct iommu_destroy), 8);
    cr_assert_eq(sizeof(struct vfio_device_bind_iommufd), 16);
    cr_assert_eq(sizeof(struct vfio_device_attach_iommufd_pt), 12);
    cr_assert_eq(IOMMU_DESTROY, 0x3b80);
    cr_assert_eq(IOMMU_IOAS_ALLOC, 0x3b81);
    cr_assert_eq(IOMMU_IOAS_MAP, 0x3b85);
    cr_assert_eq(IOMMU_IOAS_UNMAP, 0x3b86);
    cr_assert_eq(VFIO_DEVICE_BIND_IOMMUFD, 0x3b76);
    cr_assert_eq(VFIO_DEVICE_ATTACH_IOMMUFD_PT, 0x3b77);
}

Test(vfio_iommu, iommufd_ioas_takes_guest_ram_before_any_device)
{
    open_iommufd(false);
    cr_assert_eq(c.mode, VFIO_IOMMU_IOMMUFD);
    cr_assert_eq(c.ioas_id, FK_IOAS);
    cr_assert_eq(vfio_container_dma_map(&c, 0, 0x80000000, (void *)0x7f0000000000), 0);
    cr_assert_eq(vfio_container_dma_map(&c, 0x100000000, 0x40000000, (void *)0x7f0080000000), 0);
    LOG_IS("open iommu;IOAS_ALLOC;IOAS_MAP 0+80000000;IOAS_MAP 100000000+40000000;");
    cr_assert(fk_has(0, 0x80000000, 0x7f0000000000));
    cr_assert(fk_has(0x100000000, 0x40000000, 0x7f0080000000));
    vfio_container_close(&c);
    cr_assert_eq(fk.nr_maps, 0);
    cr_assert_not(fk.ioas_alive, "the IOAS destroyed");
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, iommufd_hole_in_ram_unmaps_whole_and_maps_around)
{
    open_iommufd(false);
    cr_assert_eq(vfio_container_dma_map(&c, 0, 0x100000000, (void *)0x10000000000), 0);
    fk.log[0] = 0;
    /* iommufd refuses to cut a mapping (the fake too): whole, then around */
    cr_assert_eq(vfio_container_dma_unmap(&c, 0xa0000, 0x60000), 0);
    LOG_IS("IOAS_UNMAP 0+100000000;IOAS_MAP 0+a0000;IOAS_MAP 100000+fff00000;");
    cr_assert_eq(fk.nr_maps, 2);
    cr_assert(fk_has(0, 0xa0000, 0x10000000000));
    cr_assert(fk_has(0x100000, 0xfff00000, 0x10000000000 + 0x100000), "va follows iova");
    vfio_container_close(&c);
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, iommufd_absent_is_a_clear_error)
{
    c.mode = VFIO_IOMMU_IOMMUFD;
    cr_assert_eq(vfio_container_open(&c), -ENOENT);
    cr_assert_eq(c.fd, -1);
    cr_assert_eq(fk_open_fds(), 0);
    vfio_container_close(&c);           /* harmless after a failed open */
}

Test(vfio_iommu, iommufd_ioas_alloc_failure_closes)
{
    c.mode = VFIO_IOMMU_IOMMUFD;
    fk.exists[0] = "/fake/dev/iommu";
    fk.fail_req = IOMMU_IOAS_ALLOC;
    fk.fail_errno = ENOMEM;
    cr_assert_eq(vfio_container_open(&c), -ENOMEM);
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, auto_takes_the_container_where_there_is_one)
{
    fk.exists[0] = "/fake/dev/vfio/vfio";
    fk.exists[1] = "/fake/dev/iommu";
    cr_assert_eq(vfio_container_open(&c), 0);
    cr_assert_eq(c.mode, VFIO_IOMMU_TYPE1);
    LOG_IS("open vfio;GET_API_VERSION;");
    vfio_container_close(&c);
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, auto_takes_iommufd_without_a_container)
{
    fk.exists[0] = "/fake/dev/iommu";
    cr_assert_eq(vfio_container_open(&c), 0);
    cr_assert_eq(c.mode, VFIO_IOMMU_IOMMUFD);
    vfio_container_close(&c);
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, auto_with_neither_reports_the_container)
{
    cr_assert_eq(vfio_container_open(&c), -ENOENT);
    LOG_IS("open vfio;");
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, cdev_bound_attached_and_given_to_kvm)
{
    open_iommufd(true);
    cr_assert_eq(vfio_container_dma_map(&c, 0, 0x40000000, (void *)0x7f0000000000), 0);
    int fd = -1;
    cr_assert_eq(vfio_container_open_cdev(&c, &hc, "0000:01:00.0", &fd), 0);
    cr_assert_geq(fd, 100);
    cr_assert_eq(vfio_container_kvm_attach(&c, FK_VM_FD), 0);
    LOG_IS("open iommu;IOAS_ALLOC;IOAS_MAP 0+40000000;open vfio3;BIND_IOMMUFD;ATTACH_IOMMUFD_PT;"
           "KVM_CREATE_DEVICE;KVM_FILE_ADD vfio3;");
    fk.log[0] = 0;
    vfio_container_close_cdev(&c, fd);
    LOG_IS("KVM_FILE_DEL vfio3;close vfio3;");
    /* a function opened once KVM's device exists goes to KVM at once */
    fk.log[0] = 0;
    cr_assert_eq(vfio_container_open_cdev(&c, &hc, "0000:01:00.0", &fd), 0);
    LOG_IS("open vfio3;BIND_IOMMUFD;ATTACH_IOMMUFD_PT;KVM_FILE_ADD vfio3;");
    vfio_container_close(&c);
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, close_releases_cdevs_still_open)
{
    open_iommufd(true);
    int fd;
    cr_assert_eq(vfio_container_open_cdev(&c, &hc, "0000:01:00.0", &fd), 0);
    cr_assert_eq(vfio_container_dma_map(&c, 0, 0x1000, (void *)0x1000), 0);
    vfio_container_close(&c);
    cr_assert_eq(fk_open_fds(), 0, "device, IOAS and iommufd all gone");
}

Test(vfio_iommu, cdev_missing_names_the_fix)
{
    open_iommufd(false);
    fk.log[0] = 0;
    int fd = 5;
    cr_assert_eq(vfio_container_open_cdev(&c, &hc, "0000:02:00.0", &fd), -ENODEV);
    cr_assert_eq(fd, -1);
    LOG_IS("");                         /* nothing opened */
    vfio_container_close(&c);
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, cdev_in_use_elsewhere)
{
    fk.busy = "/fake/dev/vfio/devices/vfio3";
    open_iommufd(true);
    int fd;
    cr_assert_eq(vfio_container_open_cdev(&c, &hc, "0000:01:00.0", &fd), -EBUSY);
    vfio_container_close(&c);
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, cdev_bind_or_attach_failure_closes_the_device)
{
    open_iommufd(true);
    int fd;
    fk.fail_req = VFIO_DEVICE_BIND_IOMMUFD;
    fk.fail_errno = EBUSY;
    cr_assert_eq(vfio_container_open_cdev(&c, &hc, "0000:01:00.0", &fd), -EBUSY);
    cr_assert_eq(fk_open_fds(), 1, "only the iommufd is left");
    fk.fail_req = VFIO_DEVICE_ATTACH_IOMMUFD_PT;
    fk.fail_errno = EINVAL;
    cr_assert_eq(vfio_container_open_cdev(&c, &hc, "0000:01:00.0", &fd), -EINVAL);
    cr_assert_eq(fk_open_fds(), 1);
    fk.fail_req = 0;
    cr_assert_eq(vfio_container_open_cdev(&c, &hc, "0000:01:00.0", &fd), 0, "the slot was freed");
    vfio_container_close(&c);
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, cdev_needs_iommufd_mode)
{
    fk.exists[0] = "/fake/dev/vfio/vfio";
    cr_assert_eq(vfio_container_open(&c), 0);
    int fd;
    cr_assert_eq(vfio_container_open_cdev(&c, &hc, "0000:01:00.0", &fd), -EINVAL);
    vfio_container_close(&c);
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, type1_group_then_recorded_maps)
{
    c.mode = VFIO_IOMMU_TYPE1;
    fk.exists[0] = "/fake/dev/vfio/vfio";
    fk.exists[1] = "/fake/dev/vfio/12";
    cr_assert_eq(vfio_container_open(&c), 0);
    /* before a group, type1 has no IOMMU context: the map is recorded */
    cr_assert_eq(vfio_container_dma_map(&c, 0, 0x40000000, (void *)0x7f0000000000), 0);
    cr_assert_eq(fk.nr_maps, 0);
    struct vfio_group *g;
    cr_assert_eq(vfio_container_get_group(&c, 12, "0000:01:00.0", &g), 0);
    cr_assert(fk_has(0, 0x40000000, 0x7f0000000000), "mapped once the IOMMU is set");
    cr_assert_eq(vfio_container_kvm_attach(&c, FK_VM_FD), 0);
    LOG_IS("open vfio;GET_API_VERSION;open 12;GROUP_GET_STATUS;GROUP_SET_CONTAINER;SET_IOMMU;"
           "MAP_DMA 0+40000000;KVM_CREATE_DEVICE;KVM_FILE_ADD 12;");
    fk.log[0] = 0;
    vfio_container_close(&c);
    LOG_IS("UNMAP_DMA 0+40000000;KVM_FILE_DEL 12;GROUP_UNSET_CONTAINER;close 12;close kvm-vfio;"
           "close vfio;");
    cr_assert_eq(fk.nr_maps, 0);
    cr_assert_eq(fk_open_fds(), 0);
}

Test(vfio_iommu, type1_set_iommu_failure_undoes_the_group)
{
    c.mode = VFIO_IOMMU_TYPE1;
    fk.exists[0] = "/fake/dev/vfio/vfio";
    fk.exists[1] = "/fake/dev/vfio/12";
    cr_assert_eq(vfio_container_open(&c), 0);
    fk.fail_req = VFIO_SET_IOMMU;
    fk.fail_errno = EPERM;
    struct vfio_group *g;
    cr_assert_eq(vfio_container_get_group(&c, 12, "0000:01:00.0", &g), -EPERM);
    cr_assert_eq(fk_open_fds(), 1, "only the container is left");
    vfio_container_close(&c);
    cr_assert_eq(fk_open_fds(), 0);
}

/* A bus reset of a cdev-bound function: the kernel checks ownership by the
 * iommufd, so no group fds go with it; a device on the bus that we do not
 * own stops it with a message. */
static struct vfio_device cdev_device(void)
{
    struct vfio_device d = { .fd = FK_DEV_FD, .cdev = true, .container = &c };
    snprintf(d.bdf, sizeof(d.bdf), "0000:01:00.0");
    return d;
}

Test(vfio_iommu, cdev_hot_reset_passes_no_fds)
{
    fk.reset_devid = 3;                 /* bound to our iommufd */
    struct vfio_device d = cdev_device();
    struct vfio_device *all[] = { &d };
    cr_assert_eq(vfio_device_reset(&d, all, 1), 0);
    cr_assert_eq(fk.reset_count, 0, "zero-length group fd array");
}

Test(vfio_iommu, cdev_hot_reset_refused_for_a_foreign_device)
{
    fk.reset_devid = (uint32_t)VFIO_PCI_DEVID_NOT_OWNED;
    struct vfio_device d = cdev_device();
    struct vfio_device *all[] = { &d };
    cr_assert_eq(vfio_device_reset(&d, all, 1), -EPERM);
    cr_assert_eq(fk.reset_count, -1, "no reset attempted");
}
