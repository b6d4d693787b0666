/* Reading the host's PCI/IOMMU/CPU model from sysfs and procfs under a root
 * prefix (see host/sysfs.h). Nothing here writes except hs_write, which only
 * bind/unbind call. Formats: Linux Documentation/ABI/testing/sysfs-bus-pci
 * (class, vendor, device, driver, driver_override, iommu_group, boot_vga,
 * numa_node, config) and sysfs-kernel-iommu_groups. The names of vendors,
 * devices and classes are host/names.c's (libpci). */
#include "host/sysfs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ sbuf */

void sb_vprintf(struct sbuf *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || sb->oom)
        return;
    size_t need = sb->len + (size_t)n + 1;
    if (need > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 128;
        while (cap < need)
            cap *= 2;
        char *s = realloc(sb->s, cap);
        if (!s) {
            sb->oom = true;
            return;
        }
        sb->s = s;
        sb->cap = cap;
    }
    vsnprintf(sb->s + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
}

void sb_printf(struct sbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(sb, fmt, ap);
    va_end(ap);
}

const char *sb_str(const struct sbuf *sb)
{
    return sb->s ? sb->s : "";
}

void sb_free(struct sbuf *sb)
{
    free(sb->s);
    *sb = (struct sbuf){ 0 };
}

/* ----------------------------------------------------------------- paths */

static int vpath(const struct host_ctx *c, char *buf, size_t len, const char *fmt, va_list ap)
{
    const char *root = c->root ? c->root : "";
    size_t rl = strlen(root);
    while (rl > 0 && root[rl - 1] == '/')   /* "/tmp/x/" + "/sys" */
        rl--;
    if (rl >= len)
        return -ENAMETOOLONG;
    memcpy(buf, root, rl);
    int n = vsnprintf(buf + rl, len - rl, fmt, ap);
    if (n < 0 || (size_t)n >= len - rl)
        return -ENAMETOOLONG;
    return 0;
}

int hs_path(const struct host_ctx *c, char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vpath(c, buf, len, fmt, ap);
    va_end(ap);
    return r;
}

#define VPATH_OR_RETURN(c, path, fmt, errval)                                \
    char path[PATH_MAX];                                                     \
    do {                                                                     \
        va_list ap_;                                                         \
        va_start(ap_, fmt);                                                  \
        int r_ = vpath(c, path, sizeof(path), fmt, ap_);                     \
        va_end(ap_);                                                         \
        if (r_ < 0)                                                          \
            return errval;                                                   \
    } while (0)

static ssize_t read_fd_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

ssize_t hs_read(const struct host_ctx *c, char *buf, size_t cap, const char *fmt, ...)
{
    if (cap < 2)
        return -EINVAL;
    buf[0] = '\0';
    VPATH_OR_RETURN(c, path, fmt, -ENAMETOOLONG);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* Read one byte more than fits, to tell "exactly full" from "too big". */
    char *tmp = malloc(cap + 1);
    if (!tmp) {
        close(fd);
        return -ENOMEM;
    }
    ssize_t n = read_fd_all(fd, tmp, cap);
    close(fd);
    if (n < 0) {
        free(tmp);
        return n;
    }
    if ((size_t)n > cap - 1) {
        free(tmp);
        return -EFBIG;
    }
    tmp[n] = '\0';
    size_t len = strlen(tmp);   /* stop at a NUL byte inside */
    while (len > 0 && isspace((unsigned char)tmp[len - 1]))
        len--;
    memcpy(buf, tmp, len);
    buf[len] = '\0';
    free(tmp);
    return (ssize_t)len;
}

char *hs_read_alloc(const struct host_ctx *c, size_t max, size_t *len, const char *fmt, ...)
{
    char path[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int r = vpath(c, path, sizeof(path), fmt, ap);
    va_end(ap);
    if (r < 0) {
        errno = -r;
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    /* procfs files report size 0: grow as we read. */
    size_t cap = 4096, got = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (got == cap) {
            if (cap >= max + 1)
                break;
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return NULL;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!buf) {
        errno = ENOMEM;
        return NULL;
    }
    if (got > max) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    for (size_t i = 0; i < got; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[got] = '\0';
    if (len)
        *len = got;
    return buf;
}

ssize_t hs_read_bin(const struct host_ctx *c, void *buf, size_t cap, const char *fmt, ...)
{
    VPATH_OR_RETURN(c, path, fmt, -ENAMETOOLONG);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read_fd_all(fd, buf, cap);
    close(fd);
    return n;
}

int hs_link_target(const struct host_ctx *c, char *buf, size_t cap, const char *fmt, ...)
{
    if (cap < 2)
        return -EINVAL;
    VPATH_OR_RETURN(c, path, fmt, -ENAMETOOLONG);
    ssize_t n = readlink(path, buf, cap - 1);
    if (n < 0)
        return -errno;
    if ((size_t)n >= cap - 1)
        return -ENAMETOOLONG;
    buf[n] = '\0';
    return 0;
}

int hs_link_name(const struct host_ctx *c, char *buf, size_t cap, const char *fmt, ...)
{
    char target[PATH_MAX];
    VPATH_OR_RETURN(c, path, fmt, -ENAMETOOLONG);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return -errno;
    target[n] = '\0';
    while (n > 0 && target[n - 1] == '/')
        target[--n] = '\0';
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    size_t bl = strlen(base);
    if (bl == 0 || bl >= cap || !strcmp(base, ".") || !strcmp(base, ".."))
        return -EINVAL;
    memcpy(buf, base, bl + 1);
    return 0;
}

bool hs_exists(const struct host_ctx *c, const char *fmt, ...)
{
    VPATH_OR_RETURN(c, path, fmt, false);
    struct stat st;
    return lstat(path, &st) == 0;
}

bool hs_is_dir(const struct host_ctx *c, const char *fmt, ...)
{
    VPATH_OR_RETURN(c, path, fmt, false);
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int hs_write(const struct host_ctx *c, const char *value, const char *fmt, ...)
{
    VPATH_OR_RETURN(c, path, fmt, -ENAMETOOLONG);
    /* O_TRUNC as `echo > file` does; sysfs ignores it, a fake tree needs it. */
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(value);
    ssize_t n;
    do
        n = write(fd, value, len);
    while (n < 0 && errno == EINTR);
    int err = n < 0 ? -errno : ((size_t)n != len ? -EIO : 0);
    if (close(fd) < 0 && !err)
        err = -errno;
    if (err)
        return err;
    if (c->after_write) {
        const char *rel = path;
        size_t rl = c->root ? strlen(c->root) : 0;
        while (rl > 0 && c->root[rl - 1] == '/')
            rl--;
        rel += rl;
        return c->after_write(c->hook_arg, rel, value);
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int hs_list(const struct host_ctx *c, char ***names, size_t *n, const char *fmt, ...)
{
    *names = NULL;
    *n = 0;
    VPATH_OR_RETURN(c, path, fmt, -ENAMETOOLONG);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *e;
    int err = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            char **nv = realloc(v, ncap * sizeof(*v));
            if (!nv) {
                err = -ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[cnt] = strdup(e->d_name);
        if (!v[cnt]) {
            err = -ENOMEM;
            break;
        }
        cnt++;
    }
    closedir(d);
    if (err) {
        hs_list_free(v, cnt);
        return err;
    }
    if (cnt)
        qsort(v, cnt, sizeof(*v), cmp_str);
    *names = v;
    *n = cnt;
    return 0;
}

void hs_list_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* --------------------------------------------------------------- parsers */

int parse_hex_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s)
        return -EINVAL;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    if (!*s || strlen(s) > 16)
        return -EINVAL;
    uint64_t v = 0;
    for (; *s; s++) {
        if (!isxdigit((unsigned char)*s))
            return -EINVAL;
        v = (v << 4) | (uint64_t)(isdigit((unsigned char)*s) ? *s - '0' : (tolower((unsigned char)*s) - 'a' + 10));
    }
    if (v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int parse_long(const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return -EINVAL;
    const char *p = s;
    if (*p == '-')
        p++;
    if (!*p || strlen(p) > 18)
        return -EINVAL;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return -EINVAL;
    long v = strtol(s, NULL, 10);
    if (v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

static int hex_field(const char *s, size_t len, unsigned max, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return -EINVAL;
        v = v * 16 + (unsigned)(isdigit((unsigned char)s[i]) ? s[i] - '0' : tolower((unsigned char)s[i]) - 'a' + 10);
    }
    if (v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

int bdf_parse(const char *s, char out[HOST_BDF_LEN])
{
    if (!s)
        return -EINVAL;
    size_t len = strlen(s);
    unsigned dom = 0, bus, dev, fn;
    const char *p = s;
    if (len == 12) {            /* dddd:bb:dd.f */
        if (s[4] != ':' || hex_field(s, 4, 0xffff, &dom))
            return -EINVAL;
        p = s + 5;
    } else if (len != 7) {      /* bb:dd.f */
        return -EINVAL;
    }
    if (p[2] != ':' || p[5] != '.' || hex_field(p, 2, 0xff, &bus) || hex_field(p + 3, 2, 0x1f, &dev) ||
        hex_field(p + 6, 1, 7, &fn))
        return -EINVAL;
    snprintf(out, HOST_BDF_LEN, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
    return 0;
}

bool bdf_same_slot(const char *a, const char *b)
{
    /* "dddd:bb:dd" are the first 10 characters of a normalised BDF. */
    return strlen(a) == 12 && strlen(b) == 12 && !strncmp(a, b, 10);
}

bool host_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= HOST_NAME_LEN || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

/* ------------------------------------------------------------- cpu lists */

int cpulist_parse(const char *s, struct cpuset *set)
{
    memset(set, 0, sizeof(*set));
    while (*s == ' ' || *s == '\n')
        s++;
    if (!*s)
        return 0;
    const char *p = s;
    for (;;) {
        char *end;
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        errno = 0;
        unsigned long a = strtoul(p, &end, 10), b = a;
        if (errno || a >= HOST_MAX_CPUS)
            return -ERANGE;
        p = end;
        if (*p == '-') {
            p++;
            if (!isdigit((unsigned char)*p))
                return -EINVAL;
            b = strtoul(p, &end, 10);
            if (errno || b >= HOST_MAX_CPUS || b < a)
                return -ERANGE;
            p = end;
        }
        for (unsigned long i = a; i <= b; i++)
            cpuset_add(set, (unsigned)i);
        if (*p == ',') {
            p++;
            continue;
        }
        while (*p == ' ' || *p == '\n')
            p++;
        return *p ? -EINVAL : 0;
    }
}

void cpulist_format(const struct cpuset *set, struct sbuf *sb)
{
    bool first = true;
    for (int i = 0; i < HOST_MAX_CPUS; i++) {
        if (!cpuset_has(set, i))
            continue;
        int j = i;
        while (j + 1 < HOST_MAX_CPUS && cpuset_has(set, j + 1))
            j++;
        if (j == i)
            sb_printf(sb, "%s%d", first ? "" : ",", i);
        else
            sb_printf(sb, "%s%d-%d", first ? "" : ",", i, j);
        first = false;
        i = j;
    }
}

unsigned cpuset_count(const struct cpuset *s)
{
    unsigned n = 0;
    for (size_t i = 0; i < HOST_MAX_CPUS / 64; i++)
        n += (unsigned)__builtin_popcountll(s->bits[i]);
    return n;
}

bool cpuset_subset(const struct cpuset *a, const struct cpuset *b)
{
    for (size_t i = 0; i < HOST_MAX_CPUS / 64; i++)
        if (a->bits[i] & ~b->bits[i])
            return false;
    return true;
}

/* ------------------------------------------------------------- PCI model */


bool host_driver_is_vfio(const char *driver)
{
    /* vfio-pci itself, and its variant drivers, which all carry "vfio" in
     * their names (mlx5_vfio_pci, hisi_acc_vfio_pci, nvgrace-gpu-vfio-pci). */
    return driver && strstr(driver, "vfio") != NULL;
}

bool host_driver_group_safe(const char *driver)
{
    return !driver || !*driver || host_driver_is_vfio(driver) || !strcmp(driver, "pci-stub") ||
           !strcmp(driver, "pcieport");
}

/* PCIe extended capabilities start at 0x100 in config space; each header is
 * ID [15:0], version [19:16], next offset [31:20] (PCIe 6.0 §7.6.3). ACS is
 * ID 0x000D (§7.7.11). Reading past 256 bytes needs root: with less, the
 * answer is "unknown". */
static enum host_acs acs_from_config(const uint8_t *cfg, size_t len)
{
    if (len < 0x104)
        return HOST_ACS_UNKNOWN;
    size_t off = 0x100;
    for (int hops = 0; hops < 128; hops++) {
        if (off < 0x100 || off + 4 > len || (off & 3))
            return HOST_ACS_ABSENT;
        uint32_t h = (uint32_t)cfg[off] | (uint32_t)cfg[off + 1] << 8 | (uint32_t)cfg[off + 2] << 16 |
                     (uint32_t)cfg[off + 3] << 24;
        if (h == 0 || h == 0xffffffffu)
            return HOST_ACS_ABSENT;
        if ((h & 0xffff) == 0x000d)
            return HOST_ACS_PRESENT;
        size_t next = h >> 20;
        if (next == 0)
            return HOST_ACS_ABSENT;
        off = next;
    }
    return HOST_ACS_ABSENT;   /* a loop in the list: treat as none */
}

static void read_pci_dev(const struct host_ctx *c, const char *bdf, struct host_pci_dev *d)
{
    char buf[256];
    uint64_t v;
    long l;

    memset(d, 0, sizeof(*d));
    memcpy(d->bdf, bdf, HOST_BDF_LEN);
    d->iommu_group = -1;
    d->numa_node = -1;
    d->boot_vga = -1;
    d->acs = HOST_ACS_UNKNOWN;

    if (hs_read(c, buf, sizeof(buf), "/sys/bus/pci/devices/%s/class", bdf) > 0 &&
        parse_hex_u64(buf, 0xffffff, &v) == 0) {
        d->class_ok = true;
        d->class_code = (uint32_t)v;
    }
    uint64_t ven, dev;
    if (hs_read(c, buf, sizeof(buf), "/sys/bus/pci/devices/%s/vendor", bdf) > 0 &&
        parse_hex_u64(buf, 0xffff, &ven) == 0 &&
        hs_read(c, buf, sizeof(buf), "/sys/bus/pci/devices/%s/device", bdf) > 0 &&
        parse_hex_u64(buf, 0xffff, &dev) == 0) {
        d->ids_ok = true;
        d->vendor = (uint16_t)ven;
        d->device = (uint16_t)dev;
    }
    if (hs_link_name(c, d->driver, sizeof(d->driver), "/sys/bus/pci/devices/%s/driver", bdf) < 0 ||
        !host_name_ok(d->driver))
        d->driver[0] = '\0';
    ssize_t n = hs_read(c, buf, sizeof(buf), "/sys/bus/pci/devices/%s/driver_override", bdf);
    if (n >= 0) {
        d->has_override_file = true;
        if (strcmp(buf, "(null)") && host_name_ok(buf))
            host_copy_name(d->override, sizeof(d->override), buf, strlen(buf));
    }
    if (hs_link_name(c, buf, sizeof(buf), "/sys/bus/pci/devices/%s/iommu_group", bdf) == 0 &&
        parse_long(buf, 0, INT_MAX, &l) == 0)
        d->iommu_group = (int)l;
    if (hs_read(c, buf, sizeof(buf), "/sys/bus/pci/devices/%s/numa_node", bdf) > 0 &&
        parse_long(buf, -1, HOST_MAX_NODES - 1, &l) == 0)
        d->numa_node = (int)l;
    if (hs_read(c, buf, sizeof(buf), "/sys/bus/pci/devices/%s/boot_vga", bdf) > 0 &&
        parse_long(buf, 0, 1, &l) == 0)
        d->boot_vga = (int)l;

    /* The upstream bridge: the path component before ours in the device's
     * real place (../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0). */
    char target[PATH_MAX];
    if (hs_link_target(c, target, sizeof(target), "/sys/bus/pci/devices/%s", bdf) == 0) {
        char *last = strrchr(target, '/');
        if (last) {
            *last = '\0';
            char *prev = strrchr(target, '/');
            char norm[HOST_BDF_LEN];
            if (bdf_parse(prev ? prev + 1 : target, norm) == 0)
                memcpy(d->parent, norm, HOST_BDF_LEN);
        }
    }

    uint8_t cfg[4096];
    ssize_t cl = hs_read_bin(c, cfg, sizeof(cfg), "/sys/bus/pci/devices/%s/config", bdf);
    if (cl > 0)
        d->acs = acs_from_config(cfg, (size_t)cl);
}

static int cmp_dev(const void *a, const void *b)
{
    return strcmp(((const struct host_pci_dev *)a)->bdf, ((const struct host_pci_dev *)b)->bdf);
}

int host_pci_scan(const struct host_ctx *c, struct host_pci *p)
{
    memset(p, 0, sizeof(*p));
    char **names;
    size_t n;
    int r = hs_list(c, &names, &n, "/sys/bus/pci/devices");
    if (r < 0 && r != -ENOENT)
        return r;
    if (r == 0 && n) {
        p->dev = calloc(n, sizeof(*p->dev));
        if (!p->dev) {
            hs_list_free(names, n);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            char bdf[HOST_BDF_LEN];
            /* Only canonical names: anything else is not a PCI function. */
            if (bdf_parse(names[i], bdf) || strcmp(bdf, names[i]))
                continue;
            read_pci_dev(c, bdf, &p->dev[p->n++]);
        }
        qsort(p->dev, p->n, sizeof(*p->dev), cmp_dev);
    }
    if (r == 0)
        hs_list_free(names, n);

    /* Group membership as /sys/kernel/iommu_groups/N/devices lists it wins
     * over a missing or broken iommu_group link. */
    char **groups;
    size_t ng;
    if (hs_list(c, &groups, &ng, "/sys/kernel/iommu_groups") == 0) {
        p->groups_dir = true;
        for (size_t g = 0; g < ng; g++) {
            long gn;
            if (parse_long(groups[g], 0, INT_MAX, &gn))
                continue;
            p->nr_groups++;
            char **members;
            size_t nm;
            if (hs_list(c, &members, &nm, "/sys/kernel/iommu_groups/%s/devices", groups[g]))
                continue;
            for (size_t m = 0; m < nm; m++)
                for (size_t i = 0; i < p->n; i++)
                    if (!strcmp(p->dev[i].bdf, members[m]))
                        p->dev[i].iommu_group = (int)gn;
            hs_list_free(members, nm);
        }
        hs_list_free(groups, ng);
    }
    return 0;
}

void host_pci_free(struct host_pci *p)
{
    free(p->dev);
    memset(p, 0, sizeof(*p));
}

const struct host_pci_dev *host_pci_find(const struct host_pci *p, const char *bdf)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->dev[i].bdf, bdf))
            return &p->dev[i];
    return NULL;
}

bool host_pci_is_console(const struct host_ctx *c, const struct host_pci_dev *d)
{
    if (d->boot_vga == 1)
        return true;
    char **fbs;
    size_t n;
    bool hit = false;
    if (hs_list(c, &fbs, &n, "/sys/class/graphics") == 0) {
        for (size_t i = 0; i < n && !hit; i++) {
            char name[64];
            if (strncmp(fbs[i], "fb", 2))
                continue;
            if (hs_link_name(c, name, sizeof(name), "/sys/class/graphics/%s/device", fbs[i]) == 0 &&
                !strcmp(name, d->bdf))
                hit = true;
        }
        hs_list_free(fbs, n);
    }
    return hit;
}

static bool net_dir_up(const struct host_ctx *c, const char *dir, char *ifname, size_t cap)
{
    char **ifs;
    size_t n;
    bool up = false;
    if (hs_list(c, &ifs, &n, "%s/net", dir))
        return false;
    for (size_t i = 0; i < n && !up; i++) {
        char st[32];
        if (!host_name_ok(ifs[i]))
            continue;
        if (hs_read(c, st, sizeof(st), "%s/net/%s/operstate", dir, ifs[i]) > 0 && !strcmp(st, "up")) {
            up = true;
            host_copy_name(ifname, cap, ifs[i], strlen(ifs[i]));
        }
    }
    hs_list_free(ifs, n);
    return up;
}

bool host_pci_net_up(const struct host_ctx *c, const struct host_pci_dev *d, char *ifname, size_t cap)
{
    char dir[96];
    snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s", d->bdf);
    if (net_dir_up(c, dir, ifname, cap))
        return true;
    char **kids;
    size_t n;
    bool up = false;
    if (hs_list(c, &kids, &n, "%s", dir))
        return false;
    for (size_t i = 0; i < n && !up; i++) {
        char sub[160];
        if (!host_name_ok(kids[i]) || !strcmp(kids[i], "net") || !strcmp(kids[i], "driver") ||
            !strcmp(kids[i], "subsystem") || !strcmp(kids[i], "iommu_group") || !strcmp(kids[i], "firmware_node"))
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", dir, kids[i]);
        if (hs_is_dir(c, "%s/net", sub))
            up = net_dir_up(c, sub, ifname, cap);
    }
    hs_list_free(kids, n);
    return up;
}

void host_driver_module(const struct host_ctx *c, const char *driver, char *buf, size_t cap)
{
    char mod[HOST_NAME_LEN];
    if (host_name_ok(driver) &&
        hs_link_name(c, mod, sizeof(mod), "/sys/bus/pci/drivers/%s/module", driver) == 0 &&
        host_name_ok(mod))
        snprintf(buf, cap, "%s", mod);
    else
        snprintf(buf, cap, "%s", driver);
}

void host_copy_name(char *buf, size_t cap, const char *name, size_t len)
{
    if (!cap)
        return;
    if (len >= cap)
        len = cap - 1;
    memcpy(buf, name, len);
    buf[len] = '\0';
    /* Names end up on a terminal: no control characters from a bad file. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            buf[i] = '?';
}

/* ------------------------------------------------------ cmdline, cpuinfo */

bool cmdline_get(const char *cmdline, const char *name, char *val, size_t cap)
{
    bool found = false;
    size_t nl = strlen(name);
    const char *p = cmdline;
    if (cap)
        val[0] = '\0';
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        const char *start = p;
        bool quoted = false;
        while (*p && (quoted || (*p != ' ' && *p != '\t' && *p != '\n'))) {
            if (*p == '"')
                quoted = !quoted;
            p++;
        }
        size_t len = (size_t)(p - start);
        if (len == 2 && !strncmp(start, "--", 2))
            break;   /* the rest goes to init */
        if (len >= nl && !strncmp(start, name, nl) && (len == nl || start[nl] == '=')) {
            found = true;
            if (cap) {
                size_t vl = len == nl ? 0 : len - nl - 1;
                host_copy_name(val, cap, start + nl + (len == nl ? 0 : 1), vl);
            }
        }
    }
    return found;
}

static bool has_flag(const char *flags, const char *flag)
{
    size_t fl = strlen(flag);
    for (const char *p = flags; (p = strstr(p, flag)); p += fl)
        if ((p == flags || p[-1] == ' ' || p[-1] == '\t') && (p[fl] == ' ' || p[fl] == '\0' || p[fl] == '\n'))
            return true;
    return false;
}

void host_cpuinfo_read(const struct host_ctx *c, struct host_cpuinfo *ci)
{
    memset(ci, 0, sizeof(*ci));
    size_t len;
    /* The first processor's block is all we need; 1 MiB bounds a huge host. */
    char *t = hs_read_alloc(c, 1u << 20, &len, "/proc/cpuinfo");
    if (!t)
        return;
    char *save = NULL;
    bool seen_vendor = false, seen_flags = false, seen_model = false;
    for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t kl = (size_t)(colon - line);
        while (kl > 0 && (line[kl - 1] == ' ' || line[kl - 1] == '\t'))
            kl--;
        if (!seen_vendor && kl == 9 && !strncmp(line, "vendor_id", 9)) {
            seen_vendor = true;
            host_copy_name(ci->vendor_id, sizeof(ci->vendor_id), v, strlen(v));
            if (!strcmp(ci->vendor_id, "GenuineIntel"))
                ci->vendor = CPU_VENDOR_INTEL;
            else if (!strcmp(ci->vendor_id, "AuthenticAMD") || !strcmp(ci->vendor_id, "HygonGenuine"))
                ci->vendor = CPU_VENDOR_AMD;
        } else if (!seen_model && kl == 10 && !strncmp(line, "model name", 10)) {
            seen_model = true;
            host_copy_name(ci->model, sizeof(ci->model), v, strlen(v));
        } else if (!seen_flags && kl == 5 && !strncmp(line, "flags", 5)) {
            seen_flags = true;
            ci->vmx = has_flag(v, "vmx");
            ci->svm = has_flag(v, "svm");
            ci->pdpe1gb = has_flag(v, "pdpe1gb");
        }
    }
    ci->known = seen_vendor || seen_flags;
    free(t);
}

/* ------------------------------------------------------------------ JSON */

/* Length of a valid UTF-8 sequence at s (1..4), 0 if invalid (RFC 3629). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c0 = s[0];
    size_t n;
    uint32_t cp;
    if (c0 < 0x80)
        return 1;
    if (c0 >= 0xc2 && c0 <= 0xdf) {
        n = 2;
        cp = c0 & 0x1f;
    } else if (c0 >= 0xe0 && c0 <= 0xef) {
        n = 3;
        cp = c0 & 0x0f;
    } else if (c0 >= 0xf0 && c0 <= 0xf4) {
        n = 4;
        cp = c0 & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        unsigned char ch = *p;
        if (ch == '"' || ch == '\\') {
            fputc('\\', f);
            fputc(ch, f);
            p++;
        } else if (ch == '\n') {
            fputs("\\n", f);
            p++;
        } else if (ch == '\t') {
            fputs("\\t", f);
            p++;
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(f, "\\u%04x", ch);
            p++;
        } else if (ch < 0x80) {
            fputc(ch, f);
            p++;
        } else {
            size_t n = utf8_len(p);
            if (n == 0) {
                fputs("\\ufffd", f);
                p++;
            } else {
                fwrite(p, 1, n, f);
                p += n;
            }
        }
    }
    fputc('"', f);
}
