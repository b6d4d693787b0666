/* The host as minivmm sees it: PCI functions, IOMMU groups, drivers and
 * CPUs, read from sysfs and procfs. A library: `minivmm host` (host/cli.h)
 * prints and judges what it reads, and vfio/ calls down into it to find a
 * device's group and check it (vfio/container.c), to parse and compare BDFs
 * (vfio/vfio_args.c, vfio/device.c, vfio/vfio_pci.c); moving devices to
 * vfio-pci is host/bind.h, the CPU model host/topology.h. Nothing here
 * exits or prints a message; json_str writes only to the stream it is given.
 *
 * What it offers:
 *   struct host_ctx   the root prefix every path is read under, the streams,
 *                     the test hook of bind/unbind's writes
 *   hs_*              bounded reads, links, lists and writes under the root
 *   parse_*, bdf_*    strict parsers of attribute text; BDF parsing and slots
 *   cpulist_*         the kernel's CPU list format
 *   host_pci_*        every PCI function (class, IDs, driver, override, group,
 *                     node, boot VGA, upstream bridge, ACS) and questions
 *                     about one (console? network up? driver VFIO-safe?)
 *   host_names_*      vendor, device and class names (libpci and pci.ids)
 *   cmdline_get, host_cpuinfo_read, json_str
 *
 * Every path is taken under a root prefix (struct host_ctx.root; the
 * environment variable MINIVMM_SYSFS_ROOT for the command), so the unit tests
 * run over fake trees. Everything read is bounds-checked: a file may be
 * missing, empty, truncated or garbage, and then the value is "unknown", never
 * a crash. The files and their formats: Linux Documentation/ABI/testing/
 * sysfs-bus-pci, sysfs-kernel-iommu_groups, sysfs-devices-system-cpu,
 * sysfs-kernel-mm-hugepages. */
#ifndef MINIVMM_HOST_SYSFS_H
#define MINIVMM_HOST_SYSFS_H
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define HOST_BDF_LEN 13            /* "dddd:bb:dd.f" + NUL */
#define HOST_NAME_LEN 64           /* driver and module names */
#define HOST_MAX_CPUS 1024         /* cpu lists beyond this are refused */
#define HOST_MAX_NODES 64

struct host_ctx {
    const char *root;              /* prefix of every path; "" = this host */
    FILE *out;                     /* what the command prints */
    FILE *err;                     /* complaints */
    /* Called after each sysfs write of bind/unbind with the path under the
     * root (e.g. "/sys/bus/pci/drivers_probe") and the value written. The unit
     * tests use it to play the kernel's part over a fake tree; NULL on a real
     * host. A negative return fails the write. */
    int (*after_write)(void *arg, const char *path, const char *value);
    void *hook_arg;
};

/* --- a small growable string: appends never fail visibly; on ENOMEM the
 * string keeps what it had and .oom is set. */
struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
};
void sb_printf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(struct sbuf *sb, const char *fmt, va_list ap);
const char *sb_str(const struct sbuf *sb);   /* "" when empty */
void sb_free(struct sbuf *sb);

/* --- paths and files under the root */
/* root + formatted path into buf; -ENAMETOOLONG if it does not fit. */
int hs_path(const struct host_ctx *c, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Reads a text attribute into buf (cap bytes incl. NUL), cuts at the first
 * NUL byte and strips trailing white space. Returns the length, or -errno
 * (-EFBIG when the file holds more than cap - 1 bytes). */
ssize_t hs_read(const struct host_ctx *c, char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Reads a whole file of at most max bytes into a new NUL-terminated buffer
 * (*len = bytes read, NUL bytes inside replaced by spaces). NULL with errno
 * set on failure; -EFBIG when larger than max. */
char *hs_read_alloc(const struct host_ctx *c, size_t max, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Reads raw bytes (PCI config space) into buf; returns the count or -errno. */
ssize_t hs_read_bin(const struct host_ctx *c, void *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The last component of a symlink's target ("nvidia" for driver ->
 * ../../../bus/pci/drivers/nvidia). -ENOENT when absent, -EINVAL if not a
 * link or the name is empty/too long. */
int hs_link_name(const struct host_ctx *c, char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The whole link target. */
int hs_link_target(const struct host_ctx *c, char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool hs_exists(const struct host_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool hs_is_dir(const struct host_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes value to an existing file (never creates one: a missing sysfs
 * attribute means the kernel lacks the feature), then calls after_write.
 * 0 or -errno. */
int hs_write(const struct host_ctx *c, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sorted names in a directory (without . and ..). 0 or -errno. */
int hs_list(const struct host_ctx *c, char ***names, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void hs_list_free(char **names, size_t n);

/* --- strict parsers of attribute text (0 or -EINVAL / -ERANGE) */
int parse_hex_u64(const char *s, uint64_t max, uint64_t *out);  /* "0x10de", "10de" */
int parse_long(const char *s, long min, long max, long *out);   /* decimal */
/* "0000:01:00.0" or "01:00.0" -> "0000:01:00.0" (lower case). -EINVAL
 * for anything else, so a BDF is always safe to put in a path. */
int bdf_parse(const char *s, char out[HOST_BDF_LEN]);
/* Same domain, bus and device: functions of one slot. */
bool bdf_same_slot(const char *a, const char *b);
/* A name of a driver or module: [A-Za-z0-9_.-]+, shorter than HOST_NAME_LEN. */
bool host_name_ok(const char *s);

/* --- CPU lists ("0-3,8-11", the kernel's cpulist format) */
struct cpuset {
    uint64_t bits[HOST_MAX_CPUS / 64];
};
int cpulist_parse(const char *s, struct cpuset *set);   /* "" = empty set */
void cpulist_format(const struct cpuset *set, struct sbuf *sb);
static inline void cpuset_add(struct cpuset *s, unsigned cpu)
{
    if (cpu < HOST_MAX_CPUS)
        s->bits[cpu / 64] |= 1ULL << (cpu % 64);
}
static inline bool cpuset_has(const struct cpuset *s, int cpu)
{
    return cpu >= 0 && cpu < HOST_MAX_CPUS && (s->bits[cpu / 64] >> (cpu % 64)) & 1;
}
unsigned cpuset_count(const struct cpuset *s);
bool cpuset_subset(const struct cpuset *a, const struct cpuset *b);   /* a within b */

/* --- the PCI model */
enum host_acs { HOST_ACS_UNKNOWN, HOST_ACS_ABSENT, HOST_ACS_PRESENT };

struct host_pci_dev {
    char bdf[HOST_BDF_LEN];
    bool class_ok, ids_ok;
    uint32_t class_code;           /* 24 bits: base, sub, prog-if */
    uint16_t vendor, device;
    char driver[HOST_NAME_LEN];    /* "" = no driver bound */
    char override[HOST_NAME_LEN];  /* driver_override; "" = none ("(null)") */
    bool has_override_file;
    int iommu_group;               /* -1 = none */
    int numa_node;                 /* -1 = unknown */
    int boot_vga;                  /* -1 = no such attribute, else 0/1 */
    char parent[HOST_BDF_LEN];     /* upstream bridge, "" on a root bus */
    enum host_acs acs;             /* ACS extended capability (PCIe 6.0 §7.7.11) */
};

struct host_pci {
    struct host_pci_dev *dev;      /* sorted by BDF */
    size_t n;
    bool groups_dir;               /* /sys/kernel/iommu_groups exists */
    size_t nr_groups;              /* entries in it */
};

int host_pci_scan(const struct host_ctx *c, struct host_pci *p);
void host_pci_free(struct host_pci *p);
const struct host_pci_dev *host_pci_find(const struct host_pci *p, const char *bdf);

static inline bool host_is_display(const struct host_pci_dev *d)
{
    return d->class_ok && (d->class_code >> 16) == 0x03;
}
static inline bool host_is_bridge(const struct host_pci_dev *d)
{
    return d->class_ok && (d->class_code >> 16) == 0x06;
}
/* vfio-pci or one of its variant drivers (mlx5_vfio_pci, nvgrace-gpu-vfio-pci). */
bool host_driver_is_vfio(const char *driver);
/* A driver that leaves an IOMMU group usable by VFIO: none, vfio*,
 * pci-stub, pcieport (the kernel's DMA-ownership rule, drivers with
 * driver_managed_dma). */
bool host_driver_group_safe(const char *driver);
/* The device drives (or the firmware set it up as) the host's console:
 * boot_vga = 1, or a framebuffer's device link points at it. */
bool host_pci_is_console(const struct host_ctx *c, const struct host_pci_dev *d);
/* The host is using the device's network: an interface under it (BDF/net/X
 * or BDF/<child>/net/X, as virtio-net has) is up. Its name goes to ifname. */
bool host_pci_net_up(const struct host_ctx *c, const struct host_pci_dev *d, char *ifname, size_t cap);
/* Module that provides a driver (drivers/<d>/module), else the driver name. */
void host_driver_module(const struct host_ctx *c, const char *driver, char *buf, size_t cap);

/* --- vendor, device and class names, through libpci (pciutils' pci.ids;
 * host/names.c). The database is the first of usr/share/misc/pci.ids(.gz),
 * usr/share/hwdata/pci.ids, usr/share/pci.ids under the root prefix, else
 * libpci's own default; under a root prefix other than "" udev's hwdb is not
 * asked, so a fake tree's names are its own. libpci reports errors (no
 * access method, a malformed pci.ids, no memory) by calling a function that
 * must not return: they end up here as "no names", never as an exit. */
struct pci_access;
struct host_names {
    struct pci_access *pacc;       /* NULL: libpci could not start; no names */
    int flags;                     /* PCI_LOOKUP_* added to every lookup */
    bool have_db;                  /* a pci.ids was read */
    char why[160];                 /* when !have_db: what libpci said, or "" */
};
/* 0 with the database read; -ENOENT when there is no pci.ids, -EIO when
 * libpci failed (why says how). n is usable either way: names are then
 * unknown (or udev's, on this host). */
int host_names_open(const struct host_ctx *c, struct host_names *n);
void host_names_close(struct host_names *n);
/* The name into buf (control characters as '?'); false when unknown. */
bool host_names_vendor(const struct host_names *n, uint16_t v, char *buf, size_t cap);
bool host_names_device(const struct host_names *n, uint16_t v, uint16_t d, char *buf, size_t cap);
/* Sub-class name ("VGA compatible controller"), else the base class name. */
bool host_names_class(const struct host_names *n, uint32_t class_code, char *buf, size_t cap);
/* A class name without the database (PCI Code and ID Assignment spec). */
const char *host_class_fallback(uint32_t class_code);
/* "NVIDIA Corporation TU102 [GeForce RTX 2080 Ti]", the vendor alone, or ""
 * when unknown. */
void host_pci_name(const struct host_names *n, const struct host_pci_dev *d, char *buf, size_t cap);
/* The class name, host_class_fallback's, or "unknown class". */
void host_pci_class_name(const struct host_names *n, const struct host_pci_dev *d, char *buf, size_t cap);

/* --- the kernel command line and the CPU */
/* Value of the last "name=value" (or "" for a bare "name") on the command
 * line; false when absent. */
bool cmdline_get(const char *cmdline, const char *name, char *val, size_t cap);
enum host_cpu_vendor { CPU_VENDOR_UNKNOWN, CPU_VENDOR_INTEL, CPU_VENDOR_AMD };
struct host_cpuinfo {
    enum host_cpu_vendor vendor;
    char vendor_id[16];            /* "GenuineIntel", "" if unknown */
    char model[80];                /* "model name" */
    bool vmx, svm, pdpe1gb;
    bool known;                    /* /proc/cpuinfo was read */
};
void host_cpuinfo_read(const struct host_ctx *c, struct host_cpuinfo *ci);

/* --- text: at most cap - 1 bytes of name[0..len) into buf, NUL-terminated,
 * control characters as '?' (what is read ends up on a terminal) */
void host_copy_name(char *buf, size_t cap, const char *name, size_t len);

/* --- JSON output: a string with quotes, escaped; invalid UTF-8 -> U+FFFD */
void json_str(FILE *f, const char *s);

#endif
