/* `minivmm host` over fake sysfs/procfs trees.
 *
 * Each test builds a layout into a fresh temp directory (fx_build) the way
 * the kernel lays it out: /sys/devices/pci0000:00/.../BDF with class,
 * vendor, device, driver_override, numa_node, boot_vga, config; the symlinks
 * driver -> .../bus/pci/drivers/NAME, iommu_group -> .../kernel/iommu_groups/N,
 * /sys/bus/pci/devices/BDF and /sys/kernel/iommu_groups/N/devices/BDF;
 * /sys/devices/system/cpu and node; /proc/cmdline, cpuinfo, interrupts.
 * The layouts are the ones the issue names:
 *   gpu-clean   Intel desktop: iGPU is the boot VGA, an RTX 2080 Ti with its
 *               audio, USB-C and UCSI functions alone in group 5 behind a
 *               root port with ACS
 *   acs-bridge  AMD Threadripper, 2 NUMA nodes: the GPU and the host's NIC
 *               behind two switch ports without ACS share group 9
 *   no-iommu    Intel, IOMMU off (no DMAR, no groups); the only GPU is the
 *               console; vfio-pci installed but not loaded
 *   lab         the project's lab L1: AMD CPU + QEMU's Intel IOMMU, the
 *               bochs-display / nvme / e1000e / edu stand-ins, each in its group
 * Bind/unbind run against a fake kernel (the after_write hook) that does
 * what Documentation/ABI/testing/sysfs-bus-pci says the real one does. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/cli.h"
#include "frontend/cli.h"

/* snprintf that must not truncate (fixture paths and contents). */
#define SNPRINTF(buf, cap, ...)                                                       \
    do {                                                                              \
        int n_ = snprintf(buf, cap, __VA_ARGS__);                                     \
        cr_assert(n_ >= 0 && (size_t)n_ < (size_t)(cap), "fixture: text too long");  \
    } while (0)

/* ------------------------------------------------------------ layouts */

struct fx_dev {
    const char *bdf;
    const char *parent;      /* under /sys/devices */
    uint32_t class_code;
    uint16_t vendor, device;
    const char *driver;      /* NULL: none */
    int group;               /* -1: none */
    int numa;
    int boot_vga;            /* -1: no attribute (not VGA class) */
    int acs;                 /* -1: no config file, 0: PCIe without ACS, 1: with ACS */
    bool gpu_func;           /* part of the GPU to pass (FX_GPU_ON_VFIO moves it) */
};

struct fx_driver {
    const char *name, *module;   /* module NULL: built in (no module link) */
};

struct fx_layout {
    const char *name;
    const struct fx_dev *dev;
    size_t ndev;
    const struct fx_driver *drv;
    size_t ndrv;
    bool dmar, ivrs, groups_dir;
    const char *ecap;           /* dmar0's ECAP, NULL: no unit */
    const char *cmdline, *vendor_id, *model, *flags, *interrupts;
    const char *osrelease, *os_release;
    bool vfio_loaded, vfio_installed;
    int iommufd;                /* 1: /dev/iommu too; 2: /dev/iommu only, no container;
                                   3: neither node */
    int ncpus, smt, nodes;      /* nodes 0: no node directory */
    const char *isolated, *nohz_full;
    long hp2m_nr, hp2m_free, hp1g_nr, hp1g_free;   /* -1: no such pool */
    const char *fb0;            /* fb0's device link target name, NULL: none */
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct fx_driver clean_drv[] = {
    { "pcieport", NULL }, { "i915", "i915" }, { "ahci", "ahci" }, { "e1000e", "e1000e" },
    { "nvidia", "nvidia" }, { "snd_hda_intel", "snd_hda_intel" }, { "xhci_hcd", "xhci_pci" },
    { "nvidia-gpu", "i2c_nvidia_gpu" }, { "vfio-pci", "vfio_pci" },
};
#define GPU_CLEAN_PARENT "pci0000:00/0000:00:01.0"
static const struct fx_dev clean_dev[] = {
    { "0000:00:00.0", "pci0000:00", 0x060000, 0x8086, 0x3e30, NULL, 0, -1, -1, -1, false },
    { "0000:00:01.0", "pci0000:00", 0x060400, 0x8086, 0x1901, "pcieport", 1, -1, -1, 1, false },
    { "0000:00:02.0", "pci0000:00", 0x030000, 0x8086, 0x3e92, "i915", 2, -1, 1, -1, false },
    { "0000:00:17.0", "pci0000:00", 0x010601, 0x8086, 0xa352, "ahci", 3, -1, -1, -1, false },
    { "0000:00:1f.6", "pci0000:00", 0x020000, 0x8086, 0x15bc, "e1000e", 4, -1, -1, -1, false },
    { "0000:01:00.0", GPU_CLEAN_PARENT, 0x030000, 0x10de, 0x1e04, "nvidia", 5, -1, 0, 0, true },
    { "0000:01:00.1", GPU_CLEAN_PARENT, 0x040300, 0x10de, 0x10f7, "snd_hda_intel", 5, -1, -1, 0, true },
    { "0000:01:00.2", GPU_CLEAN_PARENT, 0x0c0330, 0x10de, 0x1ad6, "xhci_hcd", 5, -1, -1, 0, true },
    { "0000:01:00.3", GPU_CLEAN_PARENT, 0x0c8000, 0x10de, 0x1ad7, "nvidia-gpu", 5, -1, -1, 0, true },
};
static const char intel_irqs[] =
    "            CPU0       CPU1       CPU2       CPU3       CPU4       CPU5       CPU6       CPU7\n"
    "   0:         36          0          0          0          0          0          0          0  IR-IO-APIC    2-edge      timer\n"
    "   8:          0          0          0          1          0          0          0          0  IR-IO-APIC    8-edge      rtc0\n"
    "   9:          0          4          0          0          0          0          0          0  IR-IO-APIC    9-fasteoi   acpi\n"
    " 120:          0          0          0          0          0          0          0          0  DMAR-MSI    0-edge      dmar0\n"
    " 122:          0          0       1534          0          0          0          0          0  IR-PCI-MSI-0000:00:17.0    0-edge      ahci[0000:00:17.0]\n"
    " NMI:          0          0          0          0          0          0          0          0   Non-maskable interrupts\n";
static const struct fx_layout gpu_clean = {
    .name = "gpu-clean", .dev = clean_dev, .ndev = N(clean_dev), .drv = clean_drv, .ndrv = N(clean_drv),
    .dmar = true, .groups_dir = true, .ecap = "f050da",
    .cmdline = "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=0b1e3c1f-3b0a-4c39-9d43-3f1ee2e8a1a7 ro quiet "
               "intel_iommu=on iommu=pt",
    .vendor_id = "GenuineIntel", .model = "Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz",
    .flags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr "
             "sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc vmx smx est tm2 ssse3",
    .interrupts = intel_irqs, .osrelease = "6.1.0-18-amd64",
    .os_release = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n",
    .vfio_loaded = true, .ncpus = 8, .smt = 2, .nodes = 1, .isolated = "", .nohz_full = NULL,
    .hp2m_nr = 4096, .hp2m_free = 4096, .hp1g_nr = 0, .hp1g_free = 0, .fb0 = "0000:00:02.0",
};

static const struct fx_driver bridge_drv[] = {
    { "pcieport", NULL }, { "igb", "igb" }, { "amdgpu", "amdgpu" }, { "vfio-pci", "vfio_pci" },
};
#define SW "pci0000:00/0000:00:01.2/0000:20:00.0"
static const struct fx_dev bridge_dev[] = {
    { "0000:00:00.0", "pci0000:00", 0x060000, 0x1022, 0x1480, NULL, 0, 0, -1, -1, false },
    { "0000:00:01.0", "pci0000:00", 0x060000, 0x1022, 0x1482, NULL, 1, 0, -1, -1, false },
    { "0000:00:01.2", "pci0000:00", 0x060400, 0x1022, 0x1483, "pcieport", 2, 0, -1, 1, false },
    { "0000:00:03.1", "pci0000:00", 0x060400, 0x1022, 0x1483, "pcieport", 4, 0, -1, 1, false },
    { "0000:0a:00.0", "pci0000:00/0000:00:03.1", 0x030000, 0x1002, 0x67df, "amdgpu", 12, 0, 1, 0, false },
    { "0000:20:00.0", "pci0000:00/0000:00:01.2", 0x060400, 0x1022, 0x57ad, "pcieport", 3, 1, -1, 1, false },
    { "0000:21:04.0", SW, 0x060400, 0x1022, 0x57a3, "pcieport", 9, 1, -1, 0, false },
    { "0000:21:08.0", SW, 0x060400, 0x1022, 0x57a3, "pcieport", 9, 1, -1, 0, false },
    { "0000:22:00.0", SW "/0000:21:04.0", 0x020000, 0x8086, 0x1539, "igb", 9, 1, -1, 0, false },
    { "0000:23:00.0", SW "/0000:21:08.0", 0x030000, 0x10de, 0x1e04, "vfio-pci", 9, 1, 0, 0, true },
    { "0000:23:00.1", SW "/0000:21:08.0", 0x040300, 0x10de, 0x10f7, "vfio-pci", 9, 1, -1, 0, true },
};
static const struct fx_layout acs_bridge = {
    .name = "acs-bridge", .dev = bridge_dev, .ndev = N(bridge_dev), .drv = bridge_drv, .ndrv = N(bridge_drv),
    .ivrs = true, .groups_dir = true,
    .cmdline = "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-6.8.9-300.fc40.x86_64 root=UUID=5e1b ro rhgb quiet iommu=pt "
               "isolcpus=managed_irq,domain,4-7,12-15 nohz_full=4-7,12-15",
    .vendor_id = "AuthenticAMD", .model = "AMD Ryzen Threadripper 2950X 16-Core Processor",
    .flags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht "
             "syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc svm extapic cr8_legacy abm",
    .interrupts = "           CPU0       CPU1\n"
                  "  0:         44          0   IO-APIC   2-edge      timer\n"
                  " 25:          0          0   PCI-MSI-0000:00:00.2   0-edge      AMD-Vi\n"
                  " 27:      88211          0   IR-PCI-MSIX-0000:22:00.0    0-edge      enp34s0\n",
    .osrelease = "6.8.9-300.fc40.x86_64",
    .os_release = "NAME=\"Fedora Linux\"\nVERSION_ID=40\nID=fedora\n",
    .vfio_loaded = true, .ncpus = 16, .smt = 2, .nodes = 2, .isolated = "4-7,12-15", .nohz_full = "4-7,12-15",
    .hp2m_nr = 0, .hp2m_free = 0, .hp1g_nr = 16, .hp1g_free = 16, .fb0 = "0000:0a:00.0",
};

static const struct fx_driver noiommu_drv[] = {
    { "pcieport", NULL }, { "nvidia", "nvidia" }, { "snd_hda_intel", "snd_hda_intel" }, { "e1000e", "e1000e" },
};
static const struct fx_dev noiommu_dev[] = {
    { "0000:00:00.0", "pci0000:00", 0x060000, 0x8086, 0x3e30, NULL, -1, -1, -1, -1, false },
    { "0000:00:01.0", "pci0000:00", 0x060400, 0x8086, 0x1901, "pcieport", -1, -1, -1, 0, false },
    { "0000:00:1f.6", "pci0000:00", 0x020000, 0x8086, 0x15bc, "e1000e", -1, -1, -1, -1, false },
    { "0000:01:00.0", "pci0000:00/0000:00:01.0", 0x030000, 0x10de, 0x1e04, "nvidia", -1, -1, 1, 0, true },
    { "0000:01:00.1", "pci0000:00/0000:00:01.0", 0x040300, 0x10de, 0x10f7, "snd_hda_intel", -1, -1, -1, 0, true },
};
static const struct fx_layout no_iommu = {
    .name = "no-iommu", .dev = noiommu_dev, .ndev = N(noiommu_dev), .drv = noiommu_drv, .ndrv = N(noiommu_drv),
    .groups_dir = true,
    .cmdline = "BOOT_IMAGE=/boot/vmlinuz-6.5.0-35-generic root=UUID=77aa ro quiet splash vt.handoff=7",
    .vendor_id = "GenuineIntel", .model = "Intel(R) Core(TM) i7-9700K CPU @ 3.60GHz",
    .flags = "fpu vme de pse tsc msr pae mce cx8 apic sep pdpe1gb rdtscp lm vmx est",
    .interrupts = "           CPU0       CPU1       CPU2       CPU3\n"
                  "  0:         10          0          0          0   IO-APIC   2-edge      timer\n"
                  "125:          0        912          0          0   PCI-MSI 524288-edge      nvidia\n",
    .osrelease = "6.5.0-35-generic",
    .os_release = "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n",
    .vfio_installed = true, .ncpus = 4, .smt = 1, .nodes = 0, .isolated = "", .nohz_full = NULL,
    .hp2m_nr = 0, .hp2m_free = 0, .hp1g_nr = -1, .hp1g_free = -1, .fb0 = "0000:01:00.0",
};

/* tests/lab/lab: L1_DEVICES; bochs-display is PCI_CLASS_DISPLAY_OTHER
 * (0x0380) in QEMU's hw/display/bochs-display.c; edu's class ID is
 * PCI_CLASS_OTHERS (0x00ff: base 00, sub ff). */
static const struct fx_driver lab_drv[] = {
    { "virtio-pci", NULL }, { "vfio-pci", "vfio_pci" },
};
#define LAB_BOCHS "0000:00:03.0"
static const struct fx_dev lab_dev[] = {
    { "0000:00:00.0", "pci0000:00", 0x060000, 0x8086, 0x29c0, NULL, 0, -1, -1, -1, false },
    { "0000:00:01.0", "pci0000:00", 0x000200, 0x1af4, 0x1049, "virtio-pci", 1, -1, -1, 0, false },
    { "0000:00:02.0", "pci0000:00", 0x000200, 0x1af4, 0x1049, "virtio-pci", 2, -1, -1, 0, false },
    { "0000:00:03.0", "pci0000:00", 0x038000, 0x1234, 0x1111, NULL, 3, -1, -1, 0, true },
    { "0000:00:04.0", "pci0000:00", 0x010802, 0x1b36, 0x0010, NULL, 4, -1, -1, 0, false },
    { "0000:00:05.0", "pci0000:00", 0x020000, 0x8086, 0x10d3, NULL, 5, -1, -1, 0, false },
    { "0000:00:06.0", "pci0000:00", 0x00ff00, 0x1234, 0x11e8, NULL, 6, -1, -1, 0, false },
    { "0000:00:1f.0", "pci0000:00", 0x060100, 0x8086, 0x2918, NULL, 7, -1, -1, -1, false },
    { "0000:00:1f.2", "pci0000:00", 0x010601, 0x8086, 0x2922, NULL, 7, -1, -1, -1, false },
    { "0000:00:1f.3", "pci0000:00", 0x0c0500, 0x8086, 0x2930, NULL, 7, -1, -1, -1, false },
};
static const struct fx_layout lab = {
    .name = "lab", .dev = lab_dev, .ndev = N(lab_dev), .drv = lab_drv, .ndrv = N(lab_drv),
    .dmar = true, .groups_dir = true, .ecap = "f00f5e",
    .cmdline = "console=ttyS0 intel_iommu=on iommu=pt panic=1 loglevel=4",
    .vendor_id = "AuthenticAMD", .model = "AMD EPYC Processor",
    .flags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 "
             "syscall nx mmxext pdpe1gb rdtscp lm rep_good nopl cpuid svm cr8_legacy abm",
    .interrupts = "           CPU0\n"
                  "  0:         41   IO-APIC   2-edge      timer\n"
                  "  4:       1302   IR-IO-APIC    4-edge      ttyS0\n"
                  " 24:          0   DMAR-MSI    0-edge      dmar0\n",
    .osrelease = "6.12.117+deb12-amd64",
    .os_release = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n",
    .vfio_loaded = true, .ncpus = 1, .smt = 1, .nodes = 1, .isolated = "", .nohz_full = NULL,
    .hp2m_nr = 0, .hp2m_free = 0, .hp1g_nr = 0, .hp1g_free = 0, .fb0 = NULL,
};

/* A few entries in the format of pci.ids (vendor, tab + device, two tabs +
 * subsystem, then the "C" class section). */
static const char fx_pci_ids[] =
    "#\n#\tList of PCI ID's (fixture)\n#\n"
    "1002  Advanced Micro Devices, Inc. [AMD/ATI]\n"
    "\t67df  Ellesmere [Radeon RX 470/480/570/570X/580/580X/590]\n"
    "1022  Advanced Micro Devices, Inc. [AMD]\n"
    "\t1480  Starship/Matisse Root Complex\n"
    "\t1482  Starship/Matisse PCIe Dummy Host Bridge\n"
    "\t1483  Starship/Matisse GPP Bridge\n"
    "\t57a3  Matisse PCIe GPP Bridge\n"
    "\t57ad  Matisse Switch Upstream\n"
    "10de  NVIDIA Corporation\n"
    "\t10f7  TU102 High Definition Audio Controller\n"
    "\t1ad6  TU102 USB 3.1 Host Controller\n"
    "\t1ad7  TU102 USB Type-C UCSI Controller\n"
    "\t1e04  TU102 [GeForce RTX 2080 Ti]\n"
    "\t\t10de 12fa  GeForce RTX 2080 Ti Founders Edition\n"
    "1af4  Red Hat, Inc.\n"
    "\t1049  Virtio 1.0 filesystem\n"
    "1b36  Red Hat, Inc.\n"
    "\t0010  QEMU NVM Express Controller\n"
    "8086  Intel Corporation\n"
    "\t10d3  82574L Gigabit Network Connection\n"
    "\t1539  I211 Gigabit Network Connection\n"
    "\t15bc  Ethernet Connection (7) I219-V\n"
    "\t1901  6th-10th Gen Core Processor PCIe Controller (x16)\n"
    "\t2918  82801IB (ICH9) LPC Interface Controller\n"
    "\t2922  82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]\n"
    "\t2930  82801I (ICH9 Family) SMBus Controller\n"
    "\t29c0  82G33/G31/P35/P31 Express DRAM Controller\n"
    "\t3e30  8th/9th Gen Core 8-core Desktop Processor Host Bridge/DRAM Registers [Coffee Lake S]\n"
    "\t3e92  CoffeeLake-S GT2 [UHD Graphics 630]\n"
    "\ta352  Cannon Lake PCH SATA AHCI Controller\n"
    "C 00  Unclassified device\n"
    "\t02  VGA compatible unclassified device\n"
    "C 01  Mass storage controller\n"
    "\t06  SATA controller\n"
    "\t08  Non-Volatile memory controller\n"
    "C 02  Network controller\n"
    "\t00  Ethernet controller\n"
    "C 03  Display controller\n"
    "\t00  VGA compatible controller\n"
    "\t\t00  VGA controller\n"
    "\t80  Display controller\n"
    "C 04  Multimedia controller\n"
    "\t03  Audio device\n"
    "C 06  Bridge\n"
    "\t00  Host bridge\n"
    "\t01  ISA bridge\n"
    "\t04  PCI bridge\n"
    "C 0c  Serial bus controller\n"
    "\t03  USB controller\n"
    "\t05  SMBus\n"
    "\t80  Serial bus controller\n"
    "C ff  Unassigned class\n";

/* -------------------------------------------------------- the builder */

static char fx_root[PATH_MAX];
static const struct fx_layout *fx_cur;

static void fx_mkdirs(const char *rel)
{
    char p[PATH_MAX];
    SNPRINTF(p, sizeof(p), "%s/%s", fx_root, rel);
    for (char *s = p + strlen(fx_root) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

static void fx_write(const char *rel, const char *content)
{
    char p[PATH_MAX];
    SNPRINTF(p, sizeof(p), "%s/%s", fx_root, rel);
    char dir[PATH_MAX];
    SNPRINTF(dir, sizeof(dir), "%s", rel);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        fx_mkdirs(dir);
    }
    FILE *f = fopen(p, "w");
    cr_assert(f, "fixture: cannot create %s", p);
    fputs(content, f);
    fclose(f);
}

static void fx_writef(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fx_writef(const char *rel, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fx_write(rel, buf);
}

static void fx_link(const char *rel, const char *target)
{
    char p[PATH_MAX], dir[PATH_MAX];
    SNPRINTF(dir, sizeof(dir), "%s", rel);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        fx_mkdirs(dir);
    }
    SNPRINTF(p, sizeof(p), "%s/%s", fx_root, rel);
    unlink(p);
    cr_assert_eq(symlink(target, p), 0, "fixture: symlink %s: %s", p, strerror(errno));
}

static char *fx_read(const char *rel)
{
    static char buf[65536];
    char p[PATH_MAX];
    SNPRINTF(p, sizeof(p), "%s/%s", fx_root, rel);
    FILE *f = fopen(p, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static bool fx_exists(const char *rel)
{
    char p[PATH_MAX];
    struct stat st;
    SNPRINTF(p, sizeof(p), "%s/%s", fx_root, rel);
    return lstat(p, &st) == 0;
}

/* "../" for each component of the device's place under /sys. */
static void ups_to_sys(const struct fx_dev *d, char *buf, size_t cap)
{
    int depth = 2;   /* "devices" + the BDF */
    for (const char *p = d->parent; *p; p++)
        depth += *p == '/';
    depth += 1;      /* the first component of parent */
    buf[0] = '\0';
    for (int i = 0; i < depth; i++)
        strncat(buf, "../", cap - strlen(buf) - 1);
}

static const struct fx_dev *fx_dev(const char *bdf)
{
    for (size_t i = 0; i < fx_cur->ndev; i++)
        if (!strcmp(fx_cur->dev[i].bdf, bdf))
            return &fx_cur->dev[i];
    return NULL;
}

static void fx_bind_link(const struct fx_dev *d, const char *driver)
{
    char ups[128], rel[PATH_MAX], target[PATH_MAX];
    ups_to_sys(d, ups, sizeof(ups));
    SNPRINTF(rel, sizeof(rel), "sys/devices/%s/%s/driver", d->parent, d->bdf);
    SNPRINTF(target, sizeof(target), "%sbus/pci/drivers/%s", ups, driver);
    fx_link(rel, target);
}

enum { FX_GPU_ON_VFIO = 1 };

static void fx_config(const char *rel, int acs)
{
    /* 4 KiB of config space: PCIe extended capabilities from 0x100
     * (PCIe 6.0 §7.6.3): AER (ID 0x0001) first, then ACS (0x000D) at 0x148. */
    uint8_t cfg[4096] = { 0 };
    uint32_t aer = 0x0001 | 1u << 16 | (acs ? 0x148u << 20 : 0);
    memcpy(cfg + 0x100, &aer, 4);
    if (acs) {
        uint32_t h = 0x000d | 1u << 16;
        memcpy(cfg + 0x148, &h, 4);
    }
    char p[PATH_MAX];
    SNPRINTF(p, sizeof(p), "%s/%s", fx_root, rel);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fwrite(cfg, 1, sizeof(cfg), f);
    fclose(f);
}

static void fx_build(const struct fx_layout *l, int flags)
{
    char rel[PATH_MAX], target[PATH_MAX], ups[128];
    fx_cur = l;
    SNPRINTF(fx_root, sizeof(fx_root), "/tmp/minivmm-host-test-XXXXXX");
    cr_assert(mkdtemp(fx_root), "mkdtemp: %s", strerror(errno));

    fx_write("sys/bus/pci/drivers_probe", "");
    fx_write("sys/bus/pci/rescan", "");
    if (l->groups_dir)
        fx_mkdirs("sys/kernel/iommu_groups");
    for (size_t i = 0; i < l->ndrv; i++) {
        const struct fx_driver *dr = &l->drv[i];
        if (!strcmp(dr->name, "vfio-pci") && !l->vfio_loaded)
            continue;
        for (const char *const *f = (const char *const[]){ "bind", "unbind", "new_id", "remove_id", NULL }; *f; f++) {
            SNPRINTF(rel, sizeof(rel), "sys/bus/pci/drivers/%s/%s", dr->name, *f);
            fx_write(rel, "");
        }
        if (dr->module) {
            SNPRINTF(rel, sizeof(rel), "sys/bus/pci/drivers/%s/module", dr->name);
            SNPRINTF(target, sizeof(target), "../../../../module/%s", dr->module);
            fx_link(rel, target);
            SNPRINTF(rel, sizeof(rel), "sys/module/%s/refcnt", dr->module);
            fx_write(rel, "1\n");
        }
    }
    for (size_t i = 0; i < l->ndev; i++) {
        const struct fx_dev *d = &l->dev[i];
        char dir[PATH_MAX];
        SNPRINTF(dir, sizeof(dir), "sys/devices/%s/%s", d->parent, d->bdf);
        ups_to_sys(d, ups, sizeof(ups));
        SNPRINTF(rel, sizeof(rel), "%s/class", dir);
        fx_writef(rel, "0x%06x\n", d->class_code);
        SNPRINTF(rel, sizeof(rel), "%s/vendor", dir);
        fx_writef(rel, "0x%04x\n", d->vendor);
        SNPRINTF(rel, sizeof(rel), "%s/device", dir);
        fx_writef(rel, "0x%04x\n", d->device);
        SNPRINTF(rel, sizeof(rel), "%s/driver_override", dir);
        fx_write(rel, "(null)\n");
        SNPRINTF(rel, sizeof(rel), "%s/numa_node", dir);
        fx_writef(rel, "%d\n", d->numa);
        if (d->boot_vga >= 0) {
            SNPRINTF(rel, sizeof(rel), "%s/boot_vga", dir);
            fx_writef(rel, "%d\n", d->boot_vga);
        }
        if (d->acs >= 0) {
            SNPRINTF(rel, sizeof(rel), "%s/config", dir);
            fx_config(rel, d->acs);
        }
        const char *drv = d->driver;
        if ((flags & FX_GPU_ON_VFIO) && d->gpu_func)
            drv = "vfio-pci";
        if (drv)
            fx_bind_link(d, drv);
        if (drv && !strcmp(drv, "vfio-pci")) {
            SNPRINTF(rel, sizeof(rel), "dev/vfio/%d", d->group);
            fx_write(rel, "");
        }
        if (d->group >= 0) {
            SNPRINTF(rel, sizeof(rel), "%s/iommu_group", dir);
            SNPRINTF(target, sizeof(target), "%skernel/iommu_groups/%d", ups, d->group);
            fx_link(rel, target);
            SNPRINTF(rel, sizeof(rel), "sys/kernel/iommu_groups/%d/devices/%s", d->group, d->bdf);
            SNPRINTF(target, sizeof(target), "../../../../devices/%s/%s", d->parent, d->bdf);
            fx_link(rel, target);
        }
        SNPRINTF(rel, sizeof(rel), "sys/bus/pci/devices/%s", d->bdf);
        SNPRINTF(target, sizeof(target), "../../../devices/%s/%s", d->parent, d->bdf);
        fx_link(rel, target);
    }
    if (l->dmar)
        fx_write("sys/firmware/acpi/tables/DMAR", "DMAR");
    if (l->ivrs)
        fx_write("sys/firmware/acpi/tables/IVRS", "IVRS");
    fx_write("sys/firmware/acpi/tables/APIC", "APIC");
    if (l->ecap) {
        fx_writef("sys/class/iommu/dmar0/intel-iommu/ecap", "%s\n", l->ecap);
        fx_write("sys/class/iommu/dmar0/intel-iommu/cap", "d2008c40660462\n");
    }
    if (l->ivrs)
        fx_write("sys/class/iommu/ivhd0/amd-iommu/features", "58f77ef22294a5a\n");
    if (l->fb0) {
        SNPRINTF(target, sizeof(target), "../../../%s", l->fb0);
        fx_link("sys/class/graphics/fb0/device", target);
    }
    fx_writef("proc/cmdline", "%s\n", l->cmdline);
    {
        char ci[8192] = "";
        for (int cpu = 0; cpu < (l->ncpus < 2 ? l->ncpus : 2); cpu++) {
            size_t len = strlen(ci);
            SNPRINTF(ci + len, sizeof(ci) - len,
                     "processor\t: %d\nvendor_id\t: %s\ncpu family\t: 6\nmodel name\t: %s\nflags\t\t: %s\n\n", cpu,
                     l->vendor_id, l->model, l->flags);
        }
        fx_write("proc/cpuinfo", ci);
    }
    fx_write("proc/interrupts", l->interrupts);
    fx_writef("proc/sys/kernel/osrelease", "%s\n", l->osrelease);
    fx_write("proc/meminfo", "MemTotal:       32768000 kB\nMemFree:         2000000 kB\n"
                             "MemAvailable:   16384000 kB\n");
    fx_write("etc/os-release", l->os_release);
    fx_write("usr/share/misc/pci.ids", fx_pci_ids);
    fx_write("dev/kvm", "");
    fx_mkdirs("run");
    if (l->iommufd == 1 || l->iommufd == 2)
        fx_write("dev/iommu", "");
    if (l->vfio_loaded) {
        if (l->iommufd < 2)
            fx_write("dev/vfio/vfio", "");
        fx_write("sys/module/vfio/refcnt", "2\n");
        fx_write("sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "N\n");
    }
    if (l->vfio_installed) {
        SNPRINTF(rel, sizeof(rel), "lib/modules/%s/kernel/drivers/vfio/pci/vfio-pci.ko.zst", l->osrelease);
        fx_write(rel, "");
    }
    if (l->hp2m_nr >= 0) {
        fx_writef("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "%ld\n", l->hp2m_nr);
        fx_writef("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "%ld\n", l->hp2m_free);
    }
    if (l->hp1g_nr >= 0) {
        fx_writef("sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "%ld\n", l->hp1g_nr);
        fx_writef("sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "%ld\n", l->hp1g_free);
    }

    /* CPUs: siblings are i and i + ncpus/smt (the usual x86 numbering). */
    int cores = l->ncpus / l->smt;
    fx_writef("sys/devices/system/cpu/online", "0-%d\n", l->ncpus - 1);
    fx_writef("sys/devices/system/cpu/possible", "0-%d\n", l->ncpus - 1);
    fx_writef("sys/devices/system/cpu/isolated", "%s\n", l->isolated);
    if (l->nohz_full)
        fx_writef("sys/devices/system/cpu/nohz_full", "%s\n", l->nohz_full);
    for (int cpu = 0; cpu < l->ncpus; cpu++) {
        int core = cpu % cores;
        int node = l->nodes ? core / (cores / l->nodes) : 0;
        char sib[32];
        if (l->smt == 2)
            SNPRINTF(sib, sizeof(sib), "%d,%d", core, core + cores);
        else
            SNPRINTF(sib, sizeof(sib), "%d", cpu);
        SNPRINTF(rel, sizeof(rel), "sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", cpu);
        fx_writef(rel, "%s\n", sib);
        SNPRINTF(rel, sizeof(rel), "sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        fx_writef(rel, "%d\n", core);
        SNPRINTF(rel, sizeof(rel), "sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        fx_write(rel, "0\n");
        static const struct { int level; const char *type, *size; } caches[] = {
            { 1, "Data", "32K" }, { 1, "Instruction", "32K" }, { 2, "Unified", "512K" }, { 3, "Unified", "16384K" },
        };
        for (int k = 0; k < 4; k++) {
            char base[128];
            SNPRINTF(base, sizeof(base), "sys/devices/system/cpu/cpu%d/cache/index%d", cpu, k);
            SNPRINTF(rel, sizeof(rel), "%s/level", base);
            fx_writef(rel, "%d\n", caches[k].level);
            SNPRINTF(rel, sizeof(rel), "%s/type", base);
            fx_writef(rel, "%s\n", caches[k].type);
            SNPRINTF(rel, sizeof(rel), "%s/size", base);
            fx_writef(rel, "%s\n", caches[k].size);
            SNPRINTF(rel, sizeof(rel), "%s/shared_cpu_list", base);
            if (k < 3) {
                fx_writef(rel, "%s\n", sib);
            } else if (l->nodes > 1) {
                int per = cores / l->nodes;
                if (l->smt == 2)
                    fx_writef(rel, "%d-%d,%d-%d\n", node * per, node * per + per - 1, node * per + cores,
                              node * per + cores + per - 1);
                else
                    fx_writef(rel, "%d-%d\n", node * per, node * per + per - 1);
            } else {
                fx_writef(rel, "0-%d\n", l->ncpus - 1);
            }
        }
    }
    for (int n = 0; n < l->nodes; n++) {
        int per = cores / l->nodes;
        SNPRINTF(rel, sizeof(rel), "sys/devices/system/node/node%d/cpulist", n);
        if (l->smt == 2)
            fx_writef(rel, "%d-%d,%d-%d\n", n * per, n * per + per - 1, n * per + cores, n * per + cores + per - 1);
        else
            fx_writef(rel, "%d-%d\n", n * per, n * per + per - 1);
        SNPRINTF(rel, sizeof(rel), "sys/devices/system/node/node%d/hugepages/hugepages-1048576kB/free_hugepages", n);
        fx_writef(rel, "%ld\n", l->hp1g_free > 0 ? l->hp1g_free / l->nodes : 0);
        SNPRINTF(rel, sizeof(rel), "sys/devices/system/node/node%d/hugepages/hugepages-1048576kB/nr_hugepages", n);
        fx_writef(rel, "%ld\n", l->hp1g_nr > 0 ? l->hp1g_nr / l->nodes : 0);
    }
    if (l->nodes)
        fx_writef("sys/devices/system/node/online", "0-%d\n", l->nodes - 1);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void fx_teardown(void)
{
    if (fx_root[0])
        nftw(fx_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------ the fake kernel */

struct fake_kernel {
    struct sbuf log;            /* "path <- value" per write */
    const char *refuse_vfio;    /* BDF whose vfio-pci probe fails */
};
static struct fake_kernel fk;

static void fk_driver(const char *bdf, char *buf, size_t cap)
{
    char p[PATH_MAX], t[PATH_MAX];
    SNPRINTF(p, sizeof(p), "%s/sys/bus/pci/devices/%s/driver", fx_root, bdf);
    ssize_t n = readlink(p, t, sizeof(t) - 1);
    buf[0] = '\0';
    if (n > 0) {
        t[n] = '\0';
        SNPRINTF(buf, cap, "%s", strrchr(t, '/') + 1);
    }
}

static void fk_attach(const struct fx_dev *d, const char *drv)
{
    char rel[PATH_MAX];
    SNPRINTF(rel, sizeof(rel), "sys/bus/pci/drivers/%s", drv);
    if (!fx_exists(rel))
        return;   /* no such driver loaded: the device stays unbound */
    fx_bind_link(d, drv);
    if (!strcmp(drv, "vfio-pci")) {
        SNPRINTF(rel, sizeof(rel), "dev/vfio/%d", d->group);
        fx_write(rel, "");
    }
}

static int fk_after_write(void *arg, const char *path, const char *value)
{
    (void)arg;
    char shown[64];
    SNPRINTF(shown, sizeof(shown), "%s", strcmp(value, "\n") ? value : "\\n");
    sb_printf(&fk.log, "%s <- %s\n", path, shown);

    char drv[64], bdf[16], cur[64];
    if (sscanf(path, "/sys/bus/pci/drivers/%63[^/]/unbind", drv) == 1) {
        const struct fx_dev *d = fx_dev(value);
        cr_assert(d, "unbind of unknown %s", value);
        fk_driver(d->bdf, cur, sizeof(cur));
        if (strcmp(cur, drv))
            return -ENODEV;   /* the kernel: not bound to that driver */
        char rel[PATH_MAX];
        SNPRINTF(rel, sizeof(rel), "sys/bus/pci/devices/%s/driver", d->bdf);
        char p[PATH_MAX];
        SNPRINTF(p, sizeof(p), "%s/%s", fx_root, rel);
        unlink(p);
        if (!strcmp(drv, "vfio-pci")) {
            SNPRINTF(p, sizeof(p), "%s/dev/vfio/%d", fx_root, d->group);
            unlink(p);
        }
    } else if (!strcmp(path, "/sys/bus/pci/drivers_probe")) {
        const struct fx_dev *d = fx_dev(value);
        cr_assert(d, "probe of unknown %s", value);
        fk_driver(d->bdf, cur, sizeof(cur));
        if (*cur)
            return 0;   /* already bound: nothing to do */
        SNPRINTF(bdf, sizeof(bdf), "%s", d->bdf);
        char rel[PATH_MAX];
        SNPRINTF(rel, sizeof(rel), "sys/bus/pci/devices/%s/driver_override", bdf);
        char *ov = fx_read(rel);
        char o[64] = "";
        if (ov)
            sscanf(ov, "%63s", o);
        if (*o && strcmp(o, "(null)")) {
            /* Only the override may bind. */
            if (!strcmp(o, "vfio-pci") && fk.refuse_vfio && !strcmp(fk.refuse_vfio, bdf))
                return 0;
            fk_attach(d, o);
        } else if (d->driver) {
            fk_attach(d, d->driver);   /* standard ID matching finds its driver */
        }
    } else if (sscanf(path, "/sys/bus/pci/drivers/%63[^/]/bind", drv) == 1) {
        const struct fx_dev *d = fx_dev(value);
        cr_assert(d);
        fk_driver(d->bdf, cur, sizeof(cur));
        if (*cur)
            return -EBUSY;
        fk_attach(d, drv);
    }
    return 0;
}

/* ---------------------------------------------------------- running */

struct run {
    int rc;
    char *out, *err;
};
static struct run last;

static struct host_ctx make_ctx(FILE *out, FILE *err, bool with_kernel)
{
    struct host_ctx c = { .root = fx_root, .out = out, .err = err };
    if (with_kernel)
        c.after_write = fk_after_write;
    return c;
}

/* host_run with argv "host", args...; stdout/stderr captured in last. */
static int run_host(int with_kernel, ...)
{
    char *argv[32] = { "host" };
    int argc = 1;
    va_list ap;
    va_start(ap, with_kernel);
    for (char *a; (a = va_arg(ap, char *)) && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    size_t ol, el;
    free(last.out);
    free(last.err);
    FILE *out = open_memstream(&last.out, &ol), *err = open_memstream(&last.err, &el);
    cr_assert(out && err);
    struct host_ctx c = make_ctx(out, err, with_kernel);
    last.rc = host_run(&c, argc, argv);
    fclose(out);
    fclose(err);
    return last.rc;
}
#define HOST(...) run_host(0, __VA_ARGS__, (const char *)NULL)
#define HOST_K(...) run_host(1, __VA_ARGS__, (const char *)NULL)

#define OUT_HAS(s) cr_assert(strstr(last.out, (s)), "stdout lacks \"%s\":\n%s\nstderr:\n%s", (s), last.out, last.err)
#define OUT_LACKS(s) cr_assert(!strstr(last.out, (s)), "stdout has \"%s\":\n%s", (s), last.out)
#define ERR_HAS(s) cr_assert(strstr(last.err, (s)), "stderr lacks \"%s\":\n%s\nstdout:\n%s", (s), last.err, last.out)

/* The line of stdout holding `key`, for asserting on one finding. */
static const char *line_with(const char *key)
{
    static char line[4096];
    const char *p = strstr(last.out, key);
    if (!p)
        return "";
    const char *s = p;
    while (s > last.out && s[-1] != '\n')
        s--;
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    memcpy(line, s, n);
    line[n] = '\0';
    return line;
}

static void fini(void)
{
    fx_teardown();
    sb_free(&fk.log);
    free(last.out);
    free(last.err);
    last.out = last.err = NULL;
}

/* ------------------------------------------------ a strict JSON checker */

static const char *js_value(const char *p);

static const char *js_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static const char *js_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\0' || ch < 0x20)
            return NULL;
        if (ch == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i]))
                        return NULL;
                p += 5;
            } else if (strchr("\"\\/bfnrt", *p) && *p) {
                p++;
            } else {
                return NULL;
            }
        } else {
            p++;
        }
    }
    return p + 1;
}

static const char *js_value(const char *p)
{
    p = js_ws(p);
    if (*p == '{') {
        p = js_ws(p + 1);
        if (*p == '}')
            return p + 1;
        for (;;) {
            p = js_string(js_ws(p));
            if (!p)
                return NULL;
            p = js_ws(p);
            if (*p++ != ':')
                return NULL;
            p = js_value(p);
            if (!p)
                return NULL;
            p = js_ws(p);
            if (*p == '}')
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '[') {
        p = js_ws(p + 1);
        if (*p == ']')
            return p + 1;
        for (;;) {
            p = js_value(p);
            if (!p)
                return NULL;
            p = js_ws(p);
            if (*p == ']')
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"')
        return js_string(p);
    if (!strncmp(p, "true", 4))
        return p + 4;
    if (!strncmp(p, "false", 5))
        return p + 5;
    if (!strncmp(p, "null", 4))
        return p + 4;
    if (*p == '-' || isdigit((unsigned char)*p)) {
        if (*p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
        return p;
    }
    return NULL;
}

static void assert_json(const char *s)
{
    const char *end = js_value(s);
    cr_assert(end, "not valid JSON:\n%s", s);
    cr_assert_eq(*js_ws(end), '\0', "trailing text after the JSON value:\n%s", s);
}

/* ===================================================== parsers, readers */

Test(host, bdf_parse_accepts_only_addresses)
{
    char b[HOST_BDF_LEN];
    cr_assert_eq(bdf_parse("01:00.0", b), 0);
    cr_assert_str_eq(b, "0000:01:00.0");
    cr_assert_eq(bdf_parse("0000:0A:1f.7", b), 0);
    cr_assert_str_eq(b, "0000:0a:1f.7");
    cr_assert_eq(bdf_parse("0001:00:00.0", b), 0);
    cr_assert_str_eq(b, "0001:00:00.0");
    const char *bad[] = { "", "1:00.0", "01:20.0", "01:00.8", "0000:01:00.0x", "../../etc", "01:00,0",
                          "zz:00.0", "0000-01:00.0", "01:00.0/../x", NULL };
    for (int i = 0; bad[i]; i++)
        cr_assert_eq(bdf_parse(bad[i], b), -EINVAL, "accepted '%s'", bad[i]);
    cr_assert(bdf_same_slot("0000:01:00.0", "0000:01:00.3"));
    cr_assert(!bdf_same_slot("0000:01:00.0", "0000:01:01.0"));
}

Test(host, cpulist_parse_and_format)
{
    struct cpuset s;
    struct sbuf sb = { 0 };
    cr_assert_eq(cpulist_parse("0-3,8-11\n", &s), 0);
    cr_assert_eq(cpuset_count(&s), 8);
    cr_assert(cpuset_has(&s, 9) && !cpuset_has(&s, 4));
    cpulist_format(&s, &sb);
    cr_assert_str_eq(sb_str(&sb), "0-3,8-11");
    sb_free(&sb);
    cr_assert_eq(cpulist_parse("", &s), 0);
    cr_assert_eq(cpuset_count(&s), 0);
    cr_assert_eq(cpulist_parse("5", &s), 0);
    cr_assert(cpuset_has(&s, 5));
    const char *bad[] = { "1-", "5-2", "a", "1,,2", "-1", "1 2", "99999", "0-99999", "3-x", NULL };
    for (int i = 0; bad[i]; i++)
        cr_assert_lt(cpulist_parse(bad[i], &s), 0, "accepted '%s'", bad[i]);
}

Test(host, hex_and_long_parsers_are_strict)
{
    uint64_t v;
    long l;
    cr_assert_eq(parse_hex_u64("0x10de", 0xffff, &v), 0);
    cr_assert_eq(v, 0x10de);
    cr_assert_eq(parse_hex_u64("030000", 0xffffff, &v), 0);
    cr_assert_eq(v, 0x030000);
    cr_assert_eq(parse_hex_u64("0x10000", 0xffff, &v), -ERANGE);
    cr_assert_eq(parse_hex_u64("0x", 0xffff, &v), -EINVAL);
    cr_assert_eq(parse_hex_u64("12g", 0xffff, &v), -EINVAL);
    cr_assert_eq(parse_hex_u64("11112222333344445", UINT64_MAX, &v), -EINVAL);
    cr_assert_eq(parse_long("-1", -1, 63, &l), 0);
    cr_assert_eq(l, -1);
    cr_assert_eq(parse_long("64", -1, 63, &l), -ERANGE);
    cr_assert_eq(parse_long("1x", 0, 9, &l), -EINVAL);
    cr_assert_eq(parse_long("", 0, 9, &l), -EINVAL);
    cr_assert_eq(parse_long("-", 0, 9, &l), -EINVAL);
}

Test(host, cmdline_get_takes_the_last_and_stops_at_dashdash)
{
    char v[64];
    const char *cl = "ro quiet intel_iommu=off iommu=pt intel_iommu=on,sm_on x=\"a b\" nointremap -- iommu=off";
    cr_assert(cmdline_get(cl, "intel_iommu", v, sizeof(v)));
    cr_assert_str_eq(v, "on,sm_on");
    cr_assert(cmdline_get(cl, "iommu", v, sizeof(v)));
    cr_assert_str_eq(v, "pt", "the iommu=off after -- belongs to init");
    cr_assert(cmdline_get(cl, "nointremap", v, sizeof(v)));
    cr_assert_str_eq(v, "");
    cr_assert(cmdline_get(cl, "x", v, sizeof(v)));
    cr_assert_str_eq(v, "\"a b\"");
    cr_assert(!cmdline_get(cl, "intel", v, sizeof(v)));
    cr_assert(!cmdline_get(cl, "intremap", NULL, 0));
}

Test(host, host_parse_pins)
{
    int pins[HOST_MAX_PINS], nr;
    cr_assert_eq(host_parse_pins("0=2,1=3", pins, &nr), 0);
    cr_assert_eq(nr, 2);
    cr_assert_eq(pins[0], 2);
    cr_assert_eq(pins[1], 3);
    const char *bad[] = { "", "0", "0=", "=1", "0=1,0=2", "0=1,", "64=1", "0=1x", "a=b", "0=-1", NULL };
    for (int i = 0; bad[i]; i++)
        cr_assert_eq(host_parse_pins(bad[i], pins, &nr), -EINVAL, "accepted '%s'", bad[i]);
}

Test(host, hs_read_bounds_and_trims, .fini = fini)
{
    fx_build(&lab, 0);
    struct host_ctx c = make_ctx(stdout, stderr, false);
    char buf[16];
    fx_write("t/empty", "");
    cr_assert_eq(hs_read(&c, buf, sizeof(buf), "/t/empty"), 0);
    cr_assert_str_eq(buf, "");
    fx_write("t/exact", "0123456789abcde");   /* 15 bytes: fits with the NUL */
    cr_assert_eq(hs_read(&c, buf, sizeof(buf), "/t/exact"), 15);
    fx_write("t/big", "0123456789abcdef");    /* 16 bytes: does not */
    cr_assert_eq(hs_read(&c, buf, sizeof(buf), "/t/big"), -EFBIG);
    fx_write("t/spaces", "vfio-pci \n\n");
    cr_assert_eq(hs_read(&c, buf, sizeof(buf), "/t/spaces"), 8);
    cr_assert_str_eq(buf, "vfio-pci");
    char p[PATH_MAX];
    SNPRINTF(p, sizeof(p), "%s/t/nul", fx_root);
    FILE *f = fopen(p, "w");
    fwrite("ab\0cd", 1, 5, f);
    fclose(f);
    cr_assert_eq(hs_read(&c, buf, sizeof(buf), "/t/nul"), 2);
    cr_assert_eq(hs_read(&c, buf, sizeof(buf), "/t/missing"), -ENOENT);
    size_t len;
    char *all = hs_read_alloc(&c, 8, &len, "/t/big");
    cr_assert_null(all, "a file over the limit must be refused");
    cr_assert_eq(errno, EFBIG);
    all = hs_read_alloc(&c, 64, &len, "/t/nul");
    cr_assert_not_null(all);
    cr_assert_eq(len, 5);
    cr_assert_str_eq(all, "ab cd");
    free(all);
    /* A path that does not fit is refused, not truncated. */
    char longname[PATH_MAX + 10];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    cr_assert_eq(hs_read(&c, buf, sizeof(buf), "/%s", longname), -ENAMETOOLONG);
}

/* Names through libpci, from the fixture's pci.ids under the root. */
Test(host, names_lookup_through_libpci, .fini = fini)
{
    fx_build(&lab, 0);
    struct host_ctx c = make_ctx(stdout, stderr, false);
    struct host_names n;
    cr_assert_eq(host_names_open(&c, &n), 0, "%s", n.why);
    cr_assert(n.have_db);
    char b[128];
    cr_assert(host_names_vendor(&n, 0x10de, b, sizeof(b)));
    cr_assert_str_eq(b, "NVIDIA Corporation");
    cr_assert(host_names_device(&n, 0x10de, 0x1e04, b, sizeof(b)));
    cr_assert_str_eq(b, "TU102 [GeForce RTX 2080 Ti]");
    /* 0010 exists under 1b36 only, not under 1af4 just above it. */
    cr_assert(!host_names_device(&n, 0x1af4, 0x0010, b, sizeof(b)));
    cr_assert_str_eq(b, "");
    cr_assert(host_names_device(&n, 0x1b36, 0x0010, b, sizeof(b)));
    cr_assert_str_eq(b, "QEMU NVM Express Controller");
    cr_assert(!host_names_vendor(&n, 0x1234, b, sizeof(b)), "not in the fixture, nor asked of udev's hwdb");
    cr_assert(host_names_class(&n, 0x030000, b, sizeof(b)));
    cr_assert_str_eq(b, "VGA compatible controller");
    cr_assert(host_names_class(&n, 0x038000, b, sizeof(b)));
    cr_assert_str_eq(b, "Display controller");
    cr_assert(host_names_class(&n, 0x0c0330, b, sizeof(b)));
    cr_assert_str_eq(b, "USB controller");
    cr_assert(host_names_class(&n, 0x0c7700, b, sizeof(b)));
    cr_assert_str_eq(b, "Serial bus controller", "unknown subclass: the base class name, without its number");
    cr_assert(!host_names_class(&n, 0x120000, b, sizeof(b)));
    char tiny[5];
    cr_assert(host_names_vendor(&n, 0x10de, tiny, sizeof(tiny)));
    cr_assert_str_eq(tiny, "NVID");
    host_names_close(&n);
    cr_assert_null(n.pacc);
    /* After close, and on a struct never opened: unknown, no crash. */
    cr_assert(!host_names_vendor(&n, 0x10de, b, sizeof(b)));
    cr_assert(!host_names_vendor(NULL, 0x10de, b, sizeof(b)));
}

/* libpci's default answer to a malformed pci.ids is exit(1); here the
 * names are unknown and the command goes on. */
Test(host, names_survive_a_malformed_pci_ids, .fini = fini)
{
    fx_build(&lab, 0);
    fx_write("usr/share/misc/pci.ids", "10de  NVIDIA Corporation\nzzzz  Not hex\n\t1e04  after the junk\n");
    struct host_ctx c = make_ctx(stdout, stderr, false);
    struct host_names n;
    cr_assert_eq(host_names_open(&c, &n), -EIO);
    cr_assert(!n.have_db);
    cr_assert(strstr(n.why, "line 2"), "libpci's message is kept: '%s'", n.why);
    cr_assert(!strchr(n.why, '\n'));
    char b[64];
    cr_assert(!host_names_vendor(&n, 0x10de, b, sizeof(b)));
    struct host_pci_dev d = { .class_ok = true, .class_code = 0x030000, .ids_ok = true, .vendor = 0x10de };
    host_pci_class_name(&n, &d, b, sizeof(b));
    cr_assert_str_eq(b, "VGA compatible controller", "the built-in class names");
    host_pci_name(&n, &d, b, sizeof(b));
    cr_assert_str_eq(b, "");
    host_names_close(&n);
    cr_assert_eq(HOST("groups"), 0);
    OUT_HAS("(device names unknown: libpci: ");
    OUT_HAS("(name unknown)");
    cr_assert(strstr(line_with("0000:00:04.0"), "Non-Volatile memory controller"), "%s", line_with("0000:00:04.0"));
    cr_assert_eq(HOST("groups", "--json"), 0);
    assert_json(last.out);
    cr_assert(strstr(last.out, "\"pci_ids\":false}"), "%s", last.out);
    /* check names the GPU without names too. */
    cr_assert_neq(HOST("check", "--gpu", LAB_BOCHS), 2);
    OUT_HAS("Result:");
    /* An empty file is a database with nothing in it. */
    fx_write("usr/share/misc/pci.ids", "");
    cr_assert_eq(host_names_open(&c, &n), 0, "%s", n.why);
    cr_assert(!host_names_vendor(&n, 0x10de, b, sizeof(b)));
    host_names_close(&n);
}

Test(host, json_str_escapes_everything)
{
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    json_str(f, "a\"b\\c\n\t\x01\x7f \xc3\xa9 \xff \xe2\x82 \xed\xa0\x80 \xf0\x9f\x98\x80");
    fclose(f);
    cr_assert_str_eq(buf, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f \xc3\xa9 \\ufffd \\ufffd\\ufffd "
                          "\\ufffd\\ufffd\\ufffd \xf0\x9f\x98\x80\"");
    assert_json(buf);
    free(buf);
}

/* ============================================================ groups */

Test(host, groups_clean_lists_the_gpu_and_its_functions, .fini = fini)
{
    fx_build(&gpu_clean, 0);
    cr_assert_eq(HOST("groups"), 0);
    OUT_HAS("6 IOMMU groups");
    OUT_HAS("IOMMU group 5\n");
    const char *l = line_with("0000:01:00.0");
    cr_assert(strstr(l, "* 0000:01:00.0"), "the GPU is marked: %s", l);
    cr_assert(strstr(l, "[10de:1e04] VGA compatible controller: NVIDIA Corporation TU102 [GeForce RTX 2080 Ti]"), "%s", l);
    cr_assert(strstr(l, "driver: nvidia"), "%s", l);
    l = line_with("0000:01:00.1");
    cr_assert(strstr(l, "+ 0000:01:00.1"), "%s", l);
    cr_assert(strstr(l, "Audio device: NVIDIA Corporation TU102 High Definition Audio Controller"), "%s", l);
    cr_assert(strstr(l, "driver: snd_hda_intel"), "%s", l);
    cr_assert(strstr(l, "function of GPU 0000:01:00.0"), "%s", l);
    cr_assert(strstr(line_with("0000:01:00.2"), "driver: xhci_hcd"));
    cr_assert(strstr(line_with("0000:01:00.3"), "TU102 USB Type-C UCSI Controller"));
    l = line_with("0000:00:02.0");
    cr_assert(strstr(l, "* 0000:00:02.0") && strstr(l, "boot VGA"), "%s", l);
    l = line_with("0000:00:01.0");
    cr_assert(strstr(l, "PCI bridge") && strstr(l, "ACS present"), "%s", l);
    /* Every group appears once, in order. */
    const char *g4 = strstr(last.out, "IOMMU group 4\n"), *g5 = strstr(last.out, "IOMMU group 5\n");
    cr_assert(g4 && g5 && g4 < g5);
}

Test(host, groups_json_is_valid_and_complete, .fini = fini)
{
    fx_build(&acs_bridge, 0);
    cr_assert_eq(HOST("groups", "--json"), 0);
    assert_json(last.out);
    cr_assert(strstr(last.out, "{\"group\":9,\"devices\":[{\"bdf\":\"0000:21:04.0\""), "%s", last.out);
    cr_assert(strstr(last.out, "\"bdf\":\"0000:23:00.0\",\"class\":\"0x030000\",\"class_name\":\"VGA compatible "
                               "controller\",\"vendor\":\"10de\",\"device\":\"1e04\",\"name\":\"NVIDIA Corporation "
                               "TU102 [GeForce RTX 2080 Ti]\",\"driver\":\"vfio-pci\""), "%s", last.out);
    cr_assert(strstr(last.out, "\"numa_node\":1,\"boot_vga\":false,\"gpu\":true"), "%s", last.out);
    cr_assert(strstr(last.out, "\"bdf\":\"0000:21:08.0\"") && strstr(last.out, "\"acs\":\"absent\""));
    cr_assert(strstr(last.out, "\"iommu_on\":true,\"pci_ids\":true}"));
}

Test(host, groups_without_iommu_says_so, .fini = fini)
{
    fx_build(&no_iommu, 0);
    cr_assert_eq(HOST("groups"), 0);
    OUT_HAS("No IOMMU groups: the IOMMU is off or absent");
    OUT_HAS("PCI devices:\n");
    OUT_LACKS("IOMMU group ");
    cr_assert(strstr(line_with("0000:01:00.0"), "driver: nvidia"));
    cr_assert_eq(HOST("groups", "--json"), 0);
    assert_json(last.out);
    cr_assert(strstr(last.out, "{\"iommu_groups\":[],\"ungrouped_devices\":[{"), "%s", last.out);
    cr_assert(strstr(last.out, "\"iommu_on\":false"));
}

Test(host, groups_lab_lists_the_four_stand_ins, .fini = fini)
{
    fx_build(&lab, 0);
    cr_assert_eq(HOST("groups"), 0);
    static const struct { const char *bdf, *what; int group; } want[] = {
        { "0000:00:03.0", "[1234:1111] Display controller", 3 },
        { "0000:00:04.0", "[1b36:0010] Non-Volatile memory controller: Red Hat, Inc. QEMU NVM Express Controller", 4 },
        { "0000:00:05.0", "[8086:10d3] Ethernet controller: Intel Corporation 82574L Gigabit Network Connection", 5 },
        { "0000:00:06.0", "[1234:11e8] Unclassified device", 6 },
    };
    for (size_t i = 0; i < N(want); i++) {
        char hdr[32];
        SNPRINTF(hdr, sizeof(hdr), "IOMMU group %d\n", want[i].group);
        const char *g = strstr(last.out, hdr);
        cr_assert(g, "no %s", hdr);
        const char *l = line_with(want[i].bdf);
        cr_assert(strstr(l, want[i].what), "%s: %s", want[i].bdf, l);
        cr_assert(strstr(l, "driver: none"), "%s", l);
        cr_assert(strstr(g + strlen(hdr), want[i].bdf) == g + strlen(hdr) + 4, "%s is not right under %s",
                  want[i].bdf, hdr);
    }
    cr_assert(strstr(line_with("0000:00:03.0"), "* 0000:00:03.0"), "bochs-display is the GPU");
    OUT_HAS("(name unknown)");   /* 1234 is not in pci.ids */
}

Test(host, groups_survive_garbage_files, .fini = fini)
{
    fx_build(&gpu_clean, 0);
    fx_write("sys/devices/" GPU_CLEAN_PARENT "/0000:01:00.0/class", "zzzz\n");
    fx_write("sys/devices/" GPU_CLEAN_PARENT "/0000:01:00.0/vendor", "");
    fx_write("sys/devices/" GPU_CLEAN_PARENT "/0000:01:00.1/numa_node", "9999999999999999999999\n");
    fx_write("sys/devices/" GPU_CLEAN_PARENT "/0000:01:00.1/driver_override", "\x01\x02\xff garbage/../\n");
    fx_link("sys/devices/" GPU_CLEAN_PARENT "/0000:01:00.2/iommu_group", "../../../../kernel/iommu_groups/x");
    fx_link("sys/devices/" GPU_CLEAN_PARENT "/0000:01:00.3/driver", "../../../../bus/pci/drivers/bad name!");
    fx_write("sys/devices/pci0000:00/0000:00:17.0/class", "0x0106010000000000000000000000000000000000\n");
    fx_mkdirs("sys/bus/pci/devices/not-a-bdf");
    fx_write("sys/devices/pci0000:00/0000:00:01.0/config", "\x01\x02");   /* short config space */
    fx_write("usr/share/misc/pci.ids", "10de  \"quoted\\name\x01\xc3\n\t1ad6  ok\n");
    cr_assert_eq(HOST("groups"), 0);
    const char *l = line_with("0000:01:00.0");
    cr_assert(strstr(l, "[????:????] unknown class"), "%s", l);
    cr_assert(strstr(line_with("0000:01:00.3"), "driver: none"), "an invalid driver name counts as none");
    OUT_LACKS("not-a-bdf");
    OUT_LACKS("garbage");
    OUT_LACKS("\x01");
    OUT_HAS("\"quoted\\name?");
    cr_assert_eq(HOST("groups", "--json"), 0);
    assert_json(last.out);
    /* Control characters become '?', invalid UTF-8 U+FFFD, quotes escaped. */
    cr_assert(strstr(last.out, "\\\"quoted\\\\name?\\ufffd"), "%s", last.out);
    /* 01:00.2's group is still known from /sys/kernel/iommu_groups/5/devices. */
    cr_assert(strstr(last.out, "\"bdf\":\"0000:01:00.2\""));
}

/* ============================================================= check */

Test(host, check_clean_gpu_on_vfio_passes, .fini = fini)
{
    fx_build(&gpu_clean, FX_GPU_ON_VFIO);
    cr_assert_eq(HOST("check", "--gpu", "01:00.0"), 0, "%s\n%s", last.out, last.err);
    OUT_HAS("minivmm host check: GPU 0000:01:00.0");
    cr_assert(strstr(line_with("iommu-firmware"), "ok") && strstr(line_with("iommu-firmware"), "DMAR"));
    cr_assert(strstr(line_with("iommu-kernel"), "6 IOMMU groups (iommu=pt)"), "%s", line_with("iommu-kernel"));
    cr_assert(strstr(line_with("interrupt-remapping"), "ok") && strstr(line_with("interrupt-remapping"), "on: 4 "),
              "%s", line_with("interrupt-remapping"));
    const char *l = line_with("  gpu ");
    cr_assert(strstr(l, "ok") && strstr(l, "is on vfio-pci, IOMMU group 5, /dev/vfio/5"), "%s", l);
    cr_assert(strstr(line_with("gpu-group"), "ok"), "%s", line_with("gpu-group"));
    OUT_HAS("0000:01:00.3 (Serial bus controller: NVIDIA Corporation TU102 USB Type-C UCSI Controller [10de:1ad7]), "
            "driver vfio-pci  (GPU function)");
    cr_assert(strstr(line_with("boot-gpu"), "the host's console stays on 0000:00:02.0 (boot VGA)"));
    OUT_HAS("Result: ready for passthrough");
    OUT_LACKS("FAIL");
}

Test(host, check_gpu_on_host_drivers_fails_with_the_fix, .fini = fini)
{
    fx_build(&gpu_clean, 0);
    cr_assert_eq(HOST("check", "--gpu", "0000:01:00.0"), 1);
    const char *l = line_with("  gpu ");
    cr_assert(strstr(l, "FAIL") && strstr(l, "is not bound to vfio-pci (driver: nvidia)"), "%s", l);
    OUT_HAS("fix: minivmm host bind 0000:01:00.0");
    OUT_HAS("kernel command line: vfio-pci.ids=10de:1e04,10de:10f7,10de:1ad6,10de:1ad7");
    OUT_HAS("options vfio-pci ids=10de:1e04,10de:10f7,10de:1ad6,10de:1ad7");
    /* softdep names the modules (xhci_hcd's is xhci_pci, nvidia-gpu's is i2c_nvidia_gpu). */
    OUT_HAS("softdep nvidia pre: vfio-pci");
    OUT_HAS("softdep snd_hda_intel pre: vfio-pci");
    OUT_HAS("softdep xhci_pci pre: vfio-pci");
    OUT_HAS("softdep i2c_nvidia_gpu pre: vfio-pci");
    OUT_HAS("/etc/initramfs-tools/modules; update-initramfs -u");   /* Debian */
    OUT_LACKS("dracut");
    cr_assert(strstr(line_with("gpu-group"), "FAIL"));
    OUT_HAS("0000:01:00.1 is on snd_hda_intel (a host driver): the group is not viable");
    OUT_LACKS("not part of the GPU");
    OUT_HAS("Result: passthrough cannot work until the FAIL items are fixed (2 fail");
}

Test(host, check_group_with_host_nic_behind_acs_less_bridges, .fini = fini)
{
    fx_build(&acs_bridge, 0);
    cr_assert_eq(HOST("check", "--gpu", "23:00.0"), 1);
    cr_assert(strstr(line_with("iommu-firmware"), "AMD-Vi: the firmware provides an ACPI IVRS table"));
    cr_assert(strstr(line_with("interrupt-remapping"), "ok"), "IR-PCI-MSIX counts: %s", line_with("interrupt-remapping"));
    cr_assert(strstr(line_with("  gpu "), "ok"), "the GPU itself is on vfio-pci: %s", line_with("  gpu "));
    cr_assert(strstr(line_with("gpu-group"), "FAIL"));
    OUT_HAS("0000:22:00.0 is on igb (a host driver), and it is not part of the GPU: the group is not viable");
    OUT_HAS("bridges in the group: 0000:21:04.0 (has no ACS) 0000:21:08.0 (has no ACS)");
    OUT_HAS("minivmm host bind --force 0000:23:00.0");
    OUT_HAS("NUMA node 1");
    /* The NIC on vfio-pci too: viable, with a warning that it leaves the host. */
    fx_bind_link(fx_dev("0000:22:00.0"), "vfio-pci");
    cr_assert_eq(HOST("check", "--gpu", "23:00.0"), 0, "%s", last.out);
    cr_assert(strstr(line_with("gpu-group"), "warn"));
    OUT_HAS("0000:22:00.0 is not part of the GPU but shares its group: it leaves the host with it");
    OUT_HAS("Result: ready for passthrough, with warnings");
}

Test(host, check_without_iommu_fails_with_the_kernel_line, .fini = fini)
{
    fx_build(&no_iommu, 0);
    cr_assert_eq(HOST("check", "--gpu", "01:00.0"), 1);
    cr_assert(strstr(line_with("iommu-firmware"), "FAIL"));
    OUT_HAS("fix: enable VT-d ('Intel VT for Directed I/O') in the firmware setup");
    cr_assert(strstr(line_with("iommu-kernel"), "FAIL"));
    OUT_HAS("add to the kernel command line: intel_iommu=on iommu=pt");
    OUT_HAS("Debian/Ubuntu: add it to GRUB_CMDLINE_LINUX_DEFAULT");   /* ID_LIKE=debian */
    cr_assert(strstr(line_with("interrupt-remapping"), "warn") && strstr(line_with("interrupt-remapping"), "not checked"));
    const char *l = line_with("vfio-modules");
    cr_assert(strstr(l, "warn") && strstr(l, "installed for kernel 6.5.0-35-generic but not loaded"), "%s", l);
    OUT_HAS("fix: modprobe vfio-pci");
    cr_assert(strstr(line_with("gpu-group"), "FAIL") && strstr(line_with("gpu-group"), "is in no IOMMU group"));
    l = line_with("boot-gpu");
    cr_assert(strstr(l, "warn") && strstr(l, "0000:01:00.0 is the host's boot GPU / console"), "%s", l);
    OUT_HAS("video=efifb:off");
    cr_assert(strstr(line_with("cpu "), "GenuineIntel CPU Intel(R) Core(TM) i7-9700K CPU @ 3.60GHz with VMX"));
}

Test(host, check_amd_iommu_turned_off_on_the_command_line, .fini = fini)
{
    fx_build(&acs_bridge, 0);
    /* Same AMD host booted with the IOMMU off: no groups. */
    fx_teardown();
    struct fx_layout l = acs_bridge;
    l.cmdline = "ro quiet amd_iommu=off";
    struct fx_dev devs[N(bridge_dev)];
    memcpy(devs, bridge_dev, sizeof(devs));
    for (size_t i = 0; i < N(devs); i++)
        devs[i].group = -1;
    l.dev = devs;
    fx_build(&l, 0);
    cr_assert_eq(HOST("check"), 1);
    cr_assert(strstr(line_with("iommu-kernel"), "the command line turns it off: amd_iommu=off"),
              "%s", line_with("iommu-kernel"));
    OUT_HAS("remove amd_iommu=off from the kernel command line");
    OUT_HAS("the AMD IOMMU is on by default when the firmware provides IVRS");
    OUT_LACKS("intel_iommu=on");
    OUT_HAS("grubby");   /* Fedora */
    /* Without --gpu: the display devices and the console are listed. */
    OUT_HAS("no --gpu given: display devices: 0000:0a:00.0 (driver amdgpu, host console) 0000:23:00.0 (driver vfio-pci)");
}

Test(host, check_lab_bochs_before_and_after_bind, .fini = fini)
{
    fx_build(&lab, 0);
    cr_assert_eq(HOST("check", "--gpu", LAB_BOCHS), 1);
    /* An AMD CPU with QEMU's Intel IOMMU: the tables decide. */
    cr_assert(strstr(line_with("iommu-firmware"), "Intel VT-d"));
    cr_assert(strstr(line_with("iommu-kernel"), "ok") && strstr(line_with("iommu-kernel"), "8 IOMMU groups"),
              "%s", line_with("iommu-kernel"));
    cr_assert(strstr(line_with("interrupt-remapping"), "on: 1 interrupt in"), "%s", line_with("interrupt-remapping"));
    cr_assert(strstr(line_with("vfio-modules"), "ok"));
    const char *l = line_with("  gpu ");
    cr_assert(strstr(l, "FAIL") && strstr(l, "0000:00:03.0 (Display controller [1234:1111]) is not bound to vfio-pci "
                                            "(driver: none); IOMMU group 3"), "%s", l);
    OUT_HAS("fix: minivmm host bind 0000:00:03.0");
    OUT_HAS("kernel command line: vfio-pci.ids=1234:1111");
    cr_assert(strstr(line_with("boot-gpu"), "headless"));
    cr_assert(strstr(line_with("gpu-group"), "ok"));

    cr_assert_eq(HOST_K("bind", LAB_BOCHS), 0, "%s\n%s", last.out, last.err);
    cr_assert_eq(HOST("check", "--gpu", LAB_BOCHS), 0, "%s", last.out);
    cr_assert(strstr(line_with("  gpu "), "is on vfio-pci, IOMMU group 3, /dev/vfio/3; NUMA node unknown"),
              "%s", line_with("  gpu "));
    OUT_HAS("Result: ready for passthrough");

    cr_assert_eq(HOST("check", "--gpu", LAB_BOCHS, "--json"), 0);
    assert_json(last.out);
    cr_assert(strstr(last.out, "{\"gpu\":\"0000:00:03.0\",\"passthrough_possible\":true,\"counts\":{\"ok\":"));
}

Test(host, check_interrupt_remapping_cases, .fini = fini)
{
    fx_build(&lab, FX_GPU_ON_VFIO);
    /* Nothing remapped in /proc/interrupts and the unit cannot: fail. */
    fx_write("proc/interrupts", "  4:  1302   IO-APIC    4-edge      ttyS0\n");
    fx_write("sys/class/iommu/dmar0/intel-iommu/ecap", "f00f56\n");   /* bit 3 clear */
    cr_assert_eq(HOST("check", "--gpu", LAB_BOCHS), 1);
    const char *l = line_with("interrupt-remapping");
    cr_assert(strstr(l, "FAIL") && strstr(l, "ECAP.IR = 0"), "%s", l);
    OUT_HAS("allow_unsafe_interrupts=1");
    /* The same with allow_unsafe_interrupts=Y: only a warning. */
    fx_write("sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "Y\n");
    cr_assert_eq(HOST("check", "--gpu", LAB_BOCHS), 0, "%s", last.out);
    cr_assert(strstr(line_with("interrupt-remapping"), "warn"));
    fx_write("sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "N\n");
    /* Supported but not seen: could not confirm. */
    fx_write("sys/class/iommu/dmar0/intel-iommu/ecap", "f00f5e\n");
    cr_assert_eq(HOST("check", "--gpu", LAB_BOCHS), 0);
    cr_assert(strstr(line_with("interrupt-remapping"), "warn") && strstr(line_with("interrupt-remapping"), "could not confirm"));
    /* Turned off on the command line: fail, and the fix says what to remove. */
    fx_write("proc/cmdline", "console=ttyS0 intel_iommu=on intremap=off\n");
    cr_assert_eq(HOST("check", "--gpu", LAB_BOCHS), 1);
    cr_assert(strstr(line_with("interrupt-remapping"), "off: the kernel command line has intremap=off"));
    OUT_HAS("fix: remove intremap=off from the kernel command line");
    /* No unit readable and nothing seen: unknown, a warning. */
    fx_write("proc/cmdline", "console=ttyS0 intel_iommu=on\n");
    fx_write("sys/class/iommu/dmar0/intel-iommu/ecap", "garbage\n");
    cr_assert_eq(HOST("check", "--gpu", LAB_BOCHS), 0);
    cr_assert(strstr(line_with("interrupt-remapping"), "could not determine"));
}

Test(host, check_hugepages_against_the_vm, .fini = fini)
{
    fx_build(&acs_bridge, FX_GPU_ON_VFIO);
    fx_bind_link(fx_dev("0000:22:00.0"), "vfio-pci");   /* make the group viable */
    cr_assert_eq(HOST("check", "--gpu", "23:00.0", "--memory", "16G", "--hugepages", "1G"), 0, "%s", last.out);
    const char *l = line_with("hugepages ");
    cr_assert(strstr(l, "ok") && strstr(l, "the VM needs 16 pages of 1G; the pool has 16 free"), "%s", l);
    /* Node 1 (the GPU's) has only 8 of them. */
    l = line_with("hugepages-numa");
    cr_assert(strstr(l, "warn") && strstr(l, "NUMA node 1 has only 8 free 1G pages of the 16"), "%s", l);
    cr_assert_eq(HOST("check", "--gpu", "23:00.0", "--memory", "20G", "--hugepages", "1G"), 1);
    cr_assert(strstr(line_with("hugepages "), "FAIL"));
    OUT_HAS("now: echo 20 > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages");
    OUT_HAS("at boot: add hugepagesz=1G hugepages=20");
    cr_assert_eq(HOST("check", "--gpu", "23:00.0", "--memory", "1G", "--hugepages", "2M"), 1);
    cr_assert(strstr(line_with("hugepages "), "the VM needs 512 pages of 2M; the pool has 0 free (of 0)"));
    /* No --hugepages: the pools are reported, nothing fails. */
    cr_assert_eq(HOST("check", "--gpu", "23:00.0"), 0);
    cr_assert(strstr(line_with("hugepages "), "hugepage pools: 1G: 16 free of 16; 2M: 0 free of 0"),
              "%s", line_with("hugepages "));
    /* A garbage pool file: unreadable, and then not enough. */
    fx_write("sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "lots\n");
    cr_assert_eq(HOST("check", "--memory", "1G", "--hugepages", "1G"), 1);
    cr_assert(strstr(line_with("hugepages "), "the pool has 0 free"));
}

/* One size syntax (vmm/arg.c): what minivmm --memory makes of a size,
 * host check --memory makes of it too; a plain number counts MiB. */
Test(host, check_memory_means_what_minivmm_memory_means, .fini = fini)
{
    fx_build(&acs_bridge, FX_GPU_ON_VFIO);
    char *sizes[] = { "4096", "4G", "4g", "4096M", "4194304K", NULL };
    for (int i = 0; sizes[i]; i++) {
        struct config cfg;
        char err[256] = "";
        char *argv[] = { "minivmm", "--memory", sizes[i], NULL };
        cr_assert_eq(config_parse(3, argv, &cfg, err, sizeof(err)), 0, "%s: %s", sizes[i], err);
        cr_assert_eq(cfg.mem_size, 4ULL << 30, "minivmm --memory %s", sizes[i]);
        HOST("check", "--memory", sizes[i], "--hugepages", "2M");
        char want[64];
        SNPRINTF(want, sizeof(want), "the VM needs %llu pages of 2M", (unsigned long long)(cfg.mem_size >> 21));
        cr_assert(strstr(line_with("hugepages "), want), "--memory %s: %s", sizes[i], line_with("hugepages "));
    }
    /* Without --hugepages: against MemAvailable (16000 MiB in the fixture),
     * in MiB, not in bytes. */
    cr_assert_eq(HOST("check", "--memory", "32768"), 0, "%s", last.out);
    cr_assert(strstr(line_with("memory "), "the VM wants 32768 MiB but only 16000 MiB are available"), "%s",
              line_with("memory "));
    cr_assert_eq(HOST("check", "--memory", "4096"), 0);
    OUT_LACKS("the VM wants");
}

Test(host, check_no_1g_pool, .fini = fini)
{
    fx_build(&no_iommu, 0);
    cr_assert_eq(HOST("check", "--memory", "4G", "--hugepages", "1G"), 1);
    cr_assert(strstr(line_with("hugepages "), "FAIL  hugepages            the kernel has no 1G hugepage pool"),
              "%s", line_with("hugepages "));
}

Test(host, check_cpu_pinning, .fini = fini)
{
    fx_build(&acs_bridge, FX_GPU_ON_VFIO);
    fx_bind_link(fx_dev("0000:22:00.0"), "vfio-pci");
    /* Whole isolated cores on the GPU's node. */
    cr_assert_eq(HOST("check", "--gpu", "23:00.0", "--cpu-pin", "0=4,1=12,2=5,3=13", "--emulator-pin", "6",
                      "--io-pin", "14"), 0, "%s", last.out);
    cr_assert(strstr(line_with("cpu-pinning"), "ok    cpu-pinning          vCPUs on CPUs 4-5,12-13: online, isolated"),
              "%s", line_with("cpu-pinning"));
    /* Not isolated, half cores, the other node. */
    cr_assert_eq(HOST("check", "--gpu", "23:00.0", "--cpu-pin", "0=1,1=2"), 0);
    const char *l = line_with("cpu-pinning");
    cr_assert(strstr(l, "warn") && strstr(l, "not isolated from the host's scheduler: 1-2") &&
              strstr(l, "cores shared with the host: 1/9 2/10"), "%s", l);
    OUT_HAS("vCPU 0 is on CPU 1 (node 0), the GPU on node 1");
    OUT_HAS("isolcpus=managed_irq,domain,1-2 nohz_full=1-2 rcu_nocbs=1-2");
    /* A CPU that does not exist. */
    cr_assert_eq(HOST("check", "--cpu-pin", "0=4,1=99"), 1);
    cr_assert(strstr(line_with("cpu-pinning"), "FAIL") && strstr(line_with("cpu-pinning"), "not online: 99 (online: 0-15)"));
}

Test(host, check_usage_errors, .fini = fini)
{
    fx_build(&lab, 0);
    cr_assert_eq(HOST("check", "--gpu", "bochs"), 2);
    ERR_HAS("--gpu 'bochs' is not a PCI address");
    cr_assert_eq(HOST("check", "--gpu"), 2);
    ERR_HAS("--gpu needs a value");
    cr_assert_eq(HOST("check", "--hugepages", "3M"), 2);
    ERR_HAS("--hugepages '3M': use 2M or 1G");
    cr_assert_eq(HOST("check", "--memory", "lots"), 2);
    ERR_HAS("--memory 'lots' is not a size");
    ERR_HAS("a plain number counts MiB");
    const char *bad[] = { "512MiB", "8GB", "-1G", "1.5G", "0x10M", "99999999999999999999", "17179869184G", NULL };
    for (int i = 0; bad[i]; i++) {
        cr_assert_eq(HOST("check", "--memory", bad[i]), 2, "accepted --memory %s", bad[i]);
        ERR_HAS("is not a size");
    }
    cr_assert_eq(HOST("check", "--memory", "0"), 2);
    ERR_HAS("--memory '0': the VM needs some memory");
    cr_assert_eq(HOST("check", "--hugepages", "2048"), 2, "2048 is 2 GiB, not 2 MiB");
    cr_assert_neq(HOST("check", "--hugepages", "2048K"), 2, "%s", last.err);
    cr_assert_eq(HOST("check", "--cpu-pin", "0:1"), 2);
    cr_assert_eq(HOST("check", "--frobnicate"), 2);
    ERR_HAS("unknown option '--frobnicate'");
    cr_assert_eq(HOST("frobnicate"), 2);
    ERR_HAS("unknown command 'frobnicate'");
    cr_assert_eq(HOST("help"), 0);
    OUT_HAS("usage: minivmm host COMMAND");
    /* A well-formed address that is not there: a failed check, not usage. */
    cr_assert_eq(HOST("check", "--gpu", "0000:09:00.0"), 1);
    OUT_HAS("no PCI device 0000:09:00.0 on this host");
}

Test(host, check_no_kvm_no_virtualization, .fini = fini)
{
    fx_build(&lab, FX_GPU_ON_VFIO);
    char p[PATH_MAX];
    SNPRINTF(p, sizeof(p), "%s/dev/kvm", fx_root);
    unlink(p);
    fx_write("proc/cpuinfo", "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu vme svmx\n");
    cr_assert_eq(HOST("check", "--gpu", LAB_BOCHS), 1);
    cr_assert(strstr(line_with("cpu "), "shows no svm flag"), "'svmx' is not 'svm': %s", line_with("cpu "));
    cr_assert(strstr(line_with("kvm "), "FAIL") && strstr(last.out, "modprobe kvm_amd"));
}

Test(host, check_survives_empty_and_garbage_files, .fini = fini)
{
    fx_build(&gpu_clean, FX_GPU_ON_VFIO);
    const char *empty[] = { "proc/cmdline", "proc/cpuinfo", "proc/interrupts", "proc/sys/kernel/osrelease",
                            "etc/os-release", "usr/share/misc/pci.ids", "sys/devices/system/cpu/online",
                            "sys/devices/system/cpu/isolated", "proc/meminfo", NULL };
    for (int i = 0; empty[i]; i++)
        fx_write(empty[i], "");
    fx_write("sys/devices/" GPU_CLEAN_PARENT "/0000:01:00.0/numa_node", "-7\n");
    fx_write("sys/devices/" GPU_CLEAN_PARENT "/0000:01:00.0/boot_vga", "2\n");
    fx_write("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "\xff\xfe");
    fx_mkdirs("sys/kernel/mm/hugepages/hugepages-kB");
    fx_mkdirs("sys/kernel/mm/hugepages/hugepages-99999999999999999999kB");
    fx_write("sys/devices/system/cpu/cpu0/topology/thread_siblings_list", "0-99999\n");
    int rc = HOST("check", "--gpu", "01:00.0", "--memory", "1G", "--hugepages", "2M", "--cpu-pin", "0=1");
    cr_assert(rc == 0 || rc == 1);
    OUT_HAS("Result:");
    cr_assert(strstr(line_with("cpu "), "warn") && strstr(line_with("cpu "), "could not read /proc/cpuinfo"),
              "%s", line_with("cpu "));
    rc = HOST("check", "--gpu", "01:00.0", "--json");
    cr_assert(rc == 0 || rc == 1);
    assert_json(last.out);
    cr_assert_eq(HOST("topology", "--cpus", "2", "--json"), 0, "%s", last.err);
    assert_json(last.out);
}

/* ============================================================ bind */

Test(host, bind_moves_the_whole_group_and_unbind_restores_it, .fini = fini)
{
    fx_build(&gpu_clean, 0);
    cr_assert_eq(HOST_K("bind", "01:00.0"), 0, "%s\n%s", last.out, last.err);
    /* The documented sequence per device, in BDF order. */
    static const char want[] =
        "/sys/bus/pci/devices/0000:01:00.0/driver_override <- vfio-pci\n"
        "/sys/bus/pci/drivers/nvidia/unbind <- 0000:01:00.0\n"
        "/sys/bus/pci/drivers_probe <- 0000:01:00.0\n"
        "/sys/bus/pci/devices/0000:01:00.1/driver_override <- vfio-pci\n"
        "/sys/bus/pci/drivers/snd_hda_intel/unbind <- 0000:01:00.1\n"
        "/sys/bus/pci/drivers_probe <- 0000:01:00.1\n"
        "/sys/bus/pci/devices/0000:01:00.2/driver_override <- vfio-pci\n"
        "/sys/bus/pci/drivers/xhci_hcd/unbind <- 0000:01:00.2\n"
        "/sys/bus/pci/drivers_probe <- 0000:01:00.2\n"
        "/sys/bus/pci/devices/0000:01:00.3/driver_override <- vfio-pci\n"
        "/sys/bus/pci/drivers/nvidia-gpu/unbind <- 0000:01:00.3\n"
        "/sys/bus/pci/drivers_probe <- 0000:01:00.3\n";
    cr_assert_str_eq(sb_str(&fk.log), want);
    OUT_HAS("0000:01:00.0: nvidia -> vfio-pci (IOMMU group 5, /dev/vfio/5)");
    OUT_HAS("0000:01:00.3: nvidia-gpu -> vfio-pci");
    cr_assert_str_eq(fx_read("sys/bus/pci/devices/0000:01:00.1/driver_override"), "vfio-pci");
    cr_assert_str_eq(fx_read("run/minivmm/host-bind/0000:01:00.2"),
                     "# minivmm host bind: what 0000:01:00.2 had before; minivmm host unbind restores it\n"
                     "driver=xhci_hcd\ndriver_override=\n");
    cr_assert(fx_exists("dev/vfio/5"));
    cr_assert_eq(HOST("check", "--gpu", "01:00.0"), 0, "after bind the check passes:\n%s", last.out);

    sb_free(&fk.log);
    cr_assert_eq(HOST_K("unbind", "0000:01:00.0"), 0, "%s\n%s", last.out, last.err);
    static const char back[] =
        "/sys/bus/pci/drivers/vfio-pci/unbind <- 0000:01:00.0\n"
        "/sys/bus/pci/devices/0000:01:00.0/driver_override <- \\n\n"
        "/sys/bus/pci/drivers_probe <- 0000:01:00.0\n"
        "/sys/bus/pci/drivers/vfio-pci/unbind <- 0000:01:00.1\n"
        "/sys/bus/pci/devices/0000:01:00.1/driver_override <- \\n\n"
        "/sys/bus/pci/drivers_probe <- 0000:01:00.1\n"
        "/sys/bus/pci/drivers/vfio-pci/unbind <- 0000:01:00.2\n"
        "/sys/bus/pci/devices/0000:01:00.2/driver_override <- \\n\n"
        "/sys/bus/pci/drivers_probe <- 0000:01:00.2\n"
        "/sys/bus/pci/drivers/vfio-pci/unbind <- 0000:01:00.3\n"
        "/sys/bus/pci/devices/0000:01:00.3/driver_override <- \\n\n"
        "/sys/bus/pci/drivers_probe <- 0000:01:00.3\n";
    cr_assert_str_eq(sb_str(&fk.log), back);
    OUT_HAS("0000:01:00.0: vfio-pci -> nvidia (as before bind)");
    OUT_HAS("0000:01:00.2: vfio-pci -> xhci_hcd (as before bind)");
    struct host_pci p;
    struct host_ctx c = make_ctx(stdout, stderr, false);
    cr_assert_eq(host_pci_scan(&c, &p), 0);
    cr_assert_str_eq(host_pci_find(&p, "0000:01:00.0")->driver, "nvidia");
    cr_assert_str_eq(host_pci_find(&p, "0000:01:00.1")->driver, "snd_hda_intel");
    cr_assert_str_eq(host_pci_find(&p, "0000:01:00.2")->driver, "xhci_hcd");
    cr_assert_str_eq(host_pci_find(&p, "0000:01:00.3")->driver, "nvidia-gpu");
    cr_assert_str_eq(host_pci_find(&p, "0000:01:00.0")->override, "");
    host_pci_free(&p);
    cr_assert(!fx_exists("run/minivmm/host-bind/0000:01:00.0"));
    cr_assert(!fx_exists("dev/vfio/5"));
}

Test(host, bind_unbound_device_and_unbind_leaves_it_unbound, .fini = fini)
{
    fx_build(&lab, 0);
    cr_assert_eq(HOST_K("bind", "00:06.0"), 0, "%s", last.err);
    cr_assert_str_eq(sb_str(&fk.log), "/sys/bus/pci/devices/0000:00:06.0/driver_override <- vfio-pci\n"
                                      "/sys/bus/pci/drivers_probe <- 0000:00:06.0\n");
    OUT_HAS("0000:00:06.0: no driver -> vfio-pci (IOMMU group 6, /dev/vfio/6)");
    cr_assert(strstr(fx_read("run/minivmm/host-bind/0000:00:06.0"), "\ndriver=\ndriver_override=\n"));
    /* Binding again: nothing to do, the record is kept. */
    sb_free(&fk.log);
    cr_assert_eq(HOST_K("bind", "00:06.0"), 0);
    OUT_HAS("0000:00:06.0: already on vfio-pci");
    cr_assert_str_eq(sb_str(&fk.log), "");
    sb_free(&fk.log);
    cr_assert_eq(HOST_K("unbind", "00:06.0"), 0, "%s", last.err);
    /* It had no driver: no drivers_probe, which could hand it to one. */
    cr_assert_str_eq(sb_str(&fk.log), "/sys/bus/pci/drivers/vfio-pci/unbind <- 0000:00:06.0\n"
                                      "/sys/bus/pci/devices/0000:00:06.0/driver_override <- \\n\n");
    OUT_HAS("0000:00:06.0: vfio-pci -> no driver (as before bind)");
    cr_assert(!fx_exists("sys/bus/pci/devices/0000:00:06.0/driver"));
    /* Unbinding again: nothing recorded, nothing to do. */
    cr_assert_eq(HOST_K("unbind", "00:06.0"), 0);
    OUT_HAS("not bound by minivmm host bind: nothing to do");
}

Test(host, bind_refuses_the_console_gpu_unless_forced, .fini = fini)
{
    fx_build(&no_iommu, 0);
    /* vfio-pci loaded, IOMMU still off. */
    fx_write("sys/bus/pci/drivers/vfio-pci/bind", "");
    fx_write("sys/bus/pci/drivers/vfio-pci/unbind", "");
    cr_assert_eq(HOST_K("bind", "01:00.0"), 1);
    ERR_HAS("0000:01:00.0 drives the host's console (boot VGA or framebuffer)");
    ERR_HAS("nothing was changed");
    cr_assert_str_eq(sb_str(&fk.log), "", "a refused bind writes nothing");
    cr_assert(!fx_exists("run/minivmm/host-bind"));
    cr_assert_eq(HOST_K("bind", "--force", "01:00.0"), 0, "%s", last.err);
    ERR_HAS("is in no IOMMU group: moving its slot");
    OUT_HAS("0000:01:00.0: nvidia -> vfio-pci (no IOMMU group");
    OUT_HAS("0000:01:00.1: snd_hda_intel -> vfio-pci");
    OUT_LACKS("0000:00:1f.6");
}

Test(host, bind_refuses_devices_outside_the_slot_unless_forced, .fini = fini)
{
    fx_build(&acs_bridge, 0);
    /* The group holds the host's NIC: refused, nothing written. */
    cr_assert_eq(HOST_K("bind", "23:00.0"), 1);
    ERR_HAS("0000:22:00.0 (driver igb) shares the IOMMU group but is not in the slot");
    cr_assert_str_eq(sb_str(&fk.log), "");
    /* --only: just the named device. */
    fx_teardown();
    fx_build(&acs_bridge, 0);
    cr_assert_eq(HOST_K("bind", "--only", "0000:22:00.0"), 0, "%s", last.err);
    cr_assert_str_eq(sb_str(&fk.log), "/sys/bus/pci/devices/0000:22:00.0/driver_override <- vfio-pci\n"
                                      "/sys/bus/pci/drivers/igb/unbind <- 0000:22:00.0\n"
                                      "/sys/bus/pci/drivers_probe <- 0000:22:00.0\n");
    sb_free(&fk.log);
    cr_assert_eq(HOST_K("unbind", "--only", "0000:22:00.0"), 0, "%s", last.err);
    OUT_HAS("0000:22:00.0: vfio-pci -> igb (as before bind)");
    /* --force: the whole group but never the bridges. */
    sb_free(&fk.log);
    cr_assert_eq(HOST_K("bind", "--force", "23:00.0"), 0, "%s", last.err);
    OUT_HAS("0000:21:04.0: a bridge in the group: stays on pcieport");
    OUT_HAS("0000:22:00.0: igb -> vfio-pci");
    OUT_HAS("0000:23:00.0: already on vfio-pci");
    cr_assert(!strstr(sb_str(&fk.log), "0000:21:0"), "bridges are not touched: %s", sb_str(&fk.log));
    /* A bridge named explicitly is refused. */
    cr_assert_eq(HOST_K("bind", "21:04.0"), 2);
    ERR_HAS("0000:21:04.0 is a bridge");
}

Test(host, bind_refuses_a_nic_whose_interface_is_up, .fini = fini)
{
    fx_build(&gpu_clean, 0);
    fx_write("sys/devices/pci0000:00/0000:00:1f.6/net/eno1/operstate", "up\n");
    cr_assert_eq(HOST_K("bind", "00:1f.6"), 1);
    ERR_HAS("0000:00:1f.6 carries network interface eno1, which is up");
    cr_assert_str_eq(sb_str(&fk.log), "");
    /* Down: no objection. Under a child device (virtio0/net/X): seen too. */
    fx_write("sys/devices/pci0000:00/0000:00:1f.6/net/eno1/operstate", "down\n");
    fx_write("sys/devices/pci0000:00/0000:00:1f.6/virtio0/net/eth0/operstate", "up\n");
    cr_assert_eq(HOST_K("bind", "00:1f.6"), 1);
    ERR_HAS("carries network interface eth0, which is up");
    cr_assert_eq(HOST_K("bind", "--force", "00:1f.6"), 0, "%s", last.err);
    OUT_HAS("0000:00:1f.6: e1000e -> vfio-pci");
}

Test(host, bind_dry_run_writes_nothing, .fini = fini)
{
    fx_build(&gpu_clean, 0);
    cr_assert_eq(HOST_K("bind", "--dry-run", "01:00.0"), 0, "%s", last.err);
    OUT_HAS("  would write /sys/bus/pci/devices/0000:01:00.0/driver_override <- vfio-pci");
    OUT_HAS("  would write /sys/bus/pci/drivers/nvidia/unbind <- 0000:01:00.0");
    OUT_HAS("  would record driver=nvidia in /run/minivmm/host-bind/0000:01:00.0");
    cr_assert_str_eq(sb_str(&fk.log), "");
    cr_assert(!fx_exists("run/minivmm/host-bind"));
    cr_assert_str_eq(fx_read("sys/bus/pci/devices/0000:01:00.0/driver_override"), "(null)\n");
}

Test(host, bind_failure_undoes_this_calls_changes, .fini = fini)
{
    fx_build(&gpu_clean, 0);
    fk.refuse_vfio = "0000:01:00.2";
    cr_assert_eq(HOST_K("bind", "01:00.0"), 1);
    ERR_HAS("0000:01:00.2 is on no driver after drivers_probe, not on vfio-pci");
    ERR_HAS("undoing this call's changes");
    struct host_pci p;
    struct host_ctx c = make_ctx(stdout, stderr, false);
    cr_assert_eq(host_pci_scan(&c, &p), 0);
    static const char *const want[][2] = { { "0000:01:00.0", "nvidia" }, { "0000:01:00.1", "snd_hda_intel" },
                                           { "0000:01:00.2", "xhci_hcd" }, { "0000:01:00.3", "nvidia-gpu" } };
    for (size_t i = 0; i < N(want); i++) {
        const struct host_pci_dev *d = host_pci_find(&p, want[i][0]);
        cr_assert_str_eq(d->driver, want[i][1], "%s", want[i][0]);
        cr_assert_str_eq(d->override, "", "%s keeps no override", want[i][0]);
    }
    host_pci_free(&p);
    cr_assert(!fx_exists("run/minivmm/host-bind/0000:01:00.0"));
    cr_assert(!fx_exists("run/minivmm/host-bind/0000:01:00.2"));
    /* 01:00.3 was never touched. */
    cr_assert(!strstr(sb_str(&fk.log), "0000:01:00.3"), "%s", sb_str(&fk.log));
}

Test(host, bind_rejects_bad_addresses_and_missing_vfio, .fini = fini)
{
    fx_build(&no_iommu, 0);
    cr_assert_eq(HOST_K("bind", "../../etc/passwd"), 2);
    ERR_HAS("'../../etc/passwd' is not a PCI address");
    cr_assert_eq(HOST_K("bind", "05:00.0"), 2);
    ERR_HAS("no PCI device 0000:05:00.0 on this host");
    cr_assert_eq(HOST_K("bind"), 2);
    cr_assert_eq(HOST_K("bind", "--force", "--bogus", "01:00.0"), 2);
    cr_assert_eq(HOST_K("bind", "--force", "00:1f.6"), 1);
    ERR_HAS("vfio-pci is not loaded: run modprobe vfio-pci first");
    cr_assert_str_eq(sb_str(&fk.log), "");
    cr_assert_eq(HOST_K("unbind", "--all", "01:00.0"), 2);
}

Test(host, unbind_all_and_garbage_records, .fini = fini)
{
    fx_build(&lab, 0);
    cr_assert_eq(HOST_K("bind", "00:03.0", "00:04.0"), 0, "%s", last.err);
    cr_assert(fx_exists("run/minivmm/host-bind/0000:00:03.0") && fx_exists("run/minivmm/host-bind/0000:00:04.0"));
    /* A record that would make us write a path: refused, nothing written. */
    fx_write("run/minivmm/host-bind/0000:00:04.0", "driver=../../evil\ndriver_override=\n");
    sb_free(&fk.log);
    cr_assert_eq(HOST_K("unbind", "--all"), 1);
    ERR_HAS("/run/minivmm/host-bind/0000:00:04.0 is unreadable or garbage");
    cr_assert(!strstr(sb_str(&fk.log), "0000:00:04.0"), "%s", sb_str(&fk.log));
    OUT_HAS("0000:00:03.0: vfio-pci -> no driver (as before bind)");
    cr_assert(!fx_exists("run/minivmm/host-bind/0000:00:03.0"));
    fx_write("run/minivmm/host-bind/0000:00:04.0", "driver=\n");
    cr_assert_eq(HOST_K("unbind", "--all"), 0, "%s", last.err);
    cr_assert(!fx_exists("run/minivmm/host-bind/0000:00:04.0"));
    cr_assert_eq(HOST_K("unbind", "--all"), 0);
    OUT_HAS("no device bound by minivmm host bind");
}

Test(host, unbind_without_record_lets_the_kernel_match, .fini = fini)
{
    fx_build(&gpu_clean, FX_GPU_ON_VFIO);
    fx_write("sys/devices/" GPU_CLEAN_PARENT "/0000:01:00.1/driver_override", "vfio-pci\n");
    cr_assert_eq(HOST_K("unbind", "--only", "01:00.1"), 0, "%s", last.err);
    OUT_HAS("0000:01:00.1: vfio-pci -> snd_hda_intel (no record of its driver before bind");
    /* A device on its own driver is left alone. */
    cr_assert_eq(HOST_K("unbind", "--only", "00:1f.6"), 0);
    OUT_HAS("0000:00:1f.6: on e1000e, not bound by minivmm host bind: nothing to do");
}

/* ========================================================== topology */

Test(host, topology_reads_cores_nodes_and_caches, .fini = fini)
{
    fx_build(&acs_bridge, 0);
    struct host_ctx c = make_ctx(stdout, stderr, false);
    struct host_topology t;
    cr_assert_eq(host_topology_read(&c, &t), 0);
    cr_assert_eq(cpuset_count(&t.online), 16);
    cr_assert_eq(t.nr_cores, 8);
    cr_assert_eq(t.max_threads, 2);
    cr_assert_eq(t.nr_nodes, 2);
    cr_assert_eq(t.core[1].cpu[0], 1);
    cr_assert_eq(t.core[1].cpu[1], 9);
    cr_assert_eq(t.core[1].node, 0);
    cr_assert_eq(t.core[5].node, 1);
    cr_assert(t.core[5].isolated && !t.core[1].isolated);
    cr_assert_eq(host_cpu_node(&t, 13), 1);
    /* 3 per-core caches x 8 cores + 1 L3 per node. */
    cr_assert_eq(t.nr_caches, 26);
    host_topology_free(&t);
}

Test(host, topology_suggests_whole_isolated_cores_on_the_gpus_node, .fini = fini)
{
    fx_build(&acs_bridge, 0);
    cr_assert_eq(HOST("topology", "--cpus", "4", "--gpu", "23:00.0"), 0, "%s", last.err);
    OUT_HAS("CPUs online: 0-15 (16), 8 cores, 2 threads per core, 2 NUMA nodes");
    OUT_HAS("isolated: 4-7,12-15; nohz_full: 4-7,12-15");
    OUT_HAS("node 1: CPUs 4-7,12-15  <- the GPU's node");
    OUT_HAS("  core: CPUs 5,13 (package 0) isolated");
    OUT_HAS("L3 Unified     16384K x2, CPUs 0-3,8-11 | 4-7,12-15");
    OUT_HAS("suggested for 4 vCPUs (GPU 0000:23:00.0 on node 1):\n"
            "  --smp sockets=1,cores=2,threads=2 --cpu-pin 0=4,1=12,2=5,3=13 --emulator-pin 6 --io-pin 14\n");
    OUT_LACKS("note:");
    /* Without the GPU: the isolated cores first, wherever they are. */
    cr_assert_eq(HOST("topology", "--cpus", "2"), 0);
    OUT_HAS("--smp sockets=1,cores=1,threads=2 --cpu-pin 0=4,1=12 --emulator-pin 5 --io-pin 13\n");
}

Test(host, topology_odd_vcpus_and_cpu0_last, .fini = fini)
{
    fx_build(&gpu_clean, 0);
    /* 4 cores {0,4} {1,5} {2,6} {3,7}, nothing isolated: CPU 0's core last. */
    cr_assert_eq(HOST("topology", "--cpus", "3"), 0);
    OUT_HAS("--cpus 3 --cpu-pin 0=1,1=5,2=2 --emulator-pin 3 --io-pin 7\n");
    OUT_HAS("note: CPU 6 (the sibling of the last vCPU's CPU) is left idle");
    OUT_HAS("isolcpus=managed_irq,domain,1-2,5 nohz_full=1-2,5 rcu_nocbs=1-2,5");
    /* All 8: no core left for the emulator. */
    cr_assert_eq(HOST("topology", "--cpus", "8"), 0);
    OUT_HAS("--smp sockets=1,cores=4,threads=2 --cpu-pin 0=1,1=5,2=2,3=6,4=3,5=7,6=0,7=4\n");
    OUT_HAS("No CPU is left for the emulator/IO threads");
    OUT_HAS("A vCPU is on CPU 0's core");
    cr_assert_eq(HOST("topology", "--cpus", "9"), 1);
    OUT_HAS("cannot pin 9 vCPUs: the host has 8 online CPUs");
    cr_assert_eq(HOST("topology", "--cpus", "0"), 2);
    cr_assert_eq(HOST("topology", "--cpus", "65"), 2);
}

Test(host, topology_without_smt_or_numa, .fini = fini)
{
    fx_build(&no_iommu, 0);
    cr_assert_eq(HOST("topology", "--cpus", "2"), 0);
    OUT_HAS("CPUs online: 0-3 (4), 4 cores, 1 thread per core, no NUMA information");
    OUT_HAS("--cpus 2 --cpu-pin 0=1,1=2 --emulator-pin 3 --io-pin 3\n");
    cr_assert_eq(HOST("topology", "--json", "--cpus", "2"), 0);
    assert_json(last.out);
    cr_assert(strstr(last.out, "\"suggestion\":{\"vcpus\":2,\"cpu_pin\":[1,2],\"emulator_pin\":3,\"io_pin\":3"),
              "%s", last.out);
    /* The lab's single CPU: the vCPU and the emulator share it. */
    fx_teardown();
    fx_build(&lab, 0);
    cr_assert_eq(HOST("topology", "--cpus", "1"), 0);
    OUT_HAS("--cpus 1 --cpu-pin 0=0\n");
    OUT_HAS("No CPU is left for the emulator/IO threads");
}

Test(host, topology_survives_missing_and_garbage, .fini = fini)
{
    fx_build(&gpu_clean, 0);
    char p[PATH_MAX];
    SNPRINTF(p, sizeof(p), "%s/sys/devices/system/cpu/online", fx_root);
    unlink(p);
    fx_write("sys/devices/system/cpu/cpu1/topology/thread_siblings_list", "garbage\n");
    fx_write("sys/devices/system/cpu/cpu2/topology/thread_siblings_list", "");
    fx_write("sys/devices/system/cpu/cpu3/cache/index0/level", "99\n");
    fx_write("sys/devices/system/cpu/cpu3/cache/index1/shared_cpu_list", "1-\n");
    fx_write("sys/devices/system/node/node0/cpulist", "x\n");
    cr_assert_eq(HOST("topology", "--cpus", "2", "--json"), 0, "%s", last.err);
    assert_json(last.out);
    cr_assert(strstr(last.out, "\"online\":\"0-7\""), "cpuN directories count when online is missing: %s", last.out);
    cr_assert_eq(HOST("topology"), 0);
    OUT_HAS("minivmm host topology --cpus N suggests a pinning");
}

/* ======================================================== host_main */

Test(host, host_main_reads_the_root_from_the_environment, .fini = fini)
{
    fx_build(&lab, 0);
    setenv("MINIVMM_SYSFS_ROOT", fx_root, 1);
    /* stdout of host_main is the process's: send it to a pipe. */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(fds[1], 1);
    close(fds[1]);
    char *argv[] = { "host", "groups", "--json", NULL };
    int rc = host_main(3, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    static char buf[65536];
    ssize_t n, got = 0;
    while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
        got += n;
    close(fds[0]);
    buf[got] = '\0';
    cr_assert_eq(rc, 0);
    assert_json(buf);
    cr_assert(strstr(buf, "\"bdf\":\"0000:00:03.0\",\"class\":\"0x038000\""), "%s", buf);
    unsetenv("MINIVMM_SYSFS_ROOT");
}

Test(host, check_vfio_with_iommufd, .fini = fini)
{
    struct fx_layout l = lab;
    l.iommufd = 1;
    fx_build(&l, 0);
    HOST("check", "--gpu", LAB_BOCHS);
    const char *m = line_with("vfio-modules");
    cr_assert(strstr(m, "ok") && strstr(m, "/dev/vfio/vfio present, /dev/iommu too"), "%s", m);
    fx_teardown();
    l.iommufd = 2;              /* a kernel without the container (VFIO_CONTAINER=n) */
    fx_build(&l, 0);
    HOST("check", "--gpu", LAB_BOCHS);
    m = line_with("vfio-modules");
    cr_assert(strstr(m, "ok") && strstr(m, "no /dev/vfio/vfio, but /dev/iommu"), "%s", m);
    fx_teardown();
    l.iommufd = 3;
    fx_build(&l, 0);
    HOST("check", "--gpu", LAB_BOCHS);
    m = line_with("vfio-modules");
    cr_assert(strstr(m, "warn") && strstr(m, "no /dev/vfio/vfio and no /dev/iommu"), "%s", m);
    OUT_HAS("modprobe iommufd");
}
