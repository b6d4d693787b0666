/* `minivmm host check`: can this host pass a GPU through, and if not, the
 * exact fix. Each finding is ok / warn / fail; any fail means passthrough
 * cannot work as the host stands.
 *
 * What VFIO needs, and where the facts come from:
 * - an IOMMU the firmware describes (ACPI DMAR for Intel VT-d, VT-d spec
 *   §8.1; ACPI IVRS for AMD-Vi) and the kernel enabled (it then populates
 *   /sys/kernel/iommu_groups, Documentation/ABI/testing/sysfs-kernel-iommu_groups);
 * - interrupt remapping, else vfio_iommu_type1 refuses to attach a group
 *   unless allow_unsafe_interrupts=1 (drivers/vfio/vfio_iommu_type1.c). It is
 *   seen on: "IR-" interrupt chips in /proc/interrupts (IR-IO-APIC,
 *   IR-PCI-MSI), and supported per Intel unit in ECAP bit 3 (VT-d spec
 *   §11.4.3), /sys/class/iommu/dmarN/intel-iommu/ecap;
 * - a viable group: every device in it unbound or on a driver that leaves the
 *   group to VFIO (vfio-pci and variants, pci-stub, pcieport), and the
 *   device to pass on vfio-pci (Documentation/driver-api/vfio.rst);
 * - /dev/vfio/<group> for the group. */
#include "host/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- findings */

const char *host_level_name(enum host_level l)
{
    switch (l) {
    case HOST_OK: return "ok";
    case HOST_WARN: return "warn";
    case HOST_FAIL: return "fail";
    }
    return "?";
}

static struct host_finding *add(struct host_report *rep, enum host_level l, const char *topic, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static struct host_finding *add(struct host_report *rep, enum host_level l, const char *topic, const char *fmt, ...)
{
    static struct host_finding sink;   /* absorbs fix() calls after ENOMEM */
    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? rep->cap * 2 : 16;
        struct host_finding *nf = realloc(rep->f, cap * sizeof(*nf));
        if (!nf)
            return &sink;
        rep->f = nf;
        rep->cap = cap;
    }
    struct sbuf sb = { 0 };
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&sb, fmt, ap);
    va_end(ap);
    struct host_finding *f = &rep->f[rep->n];
    f->level = l;
    f->topic = strdup(topic);
    f->message = sb.s ? sb.s : strdup("");
    f->fix = strdup("");
    if (!f->topic || !f->message || !f->fix) {
        free(f->topic);
        free(f->message);
        free(f->fix);
        return &sink;
    }
    rep->n++;
    rep->nr[l]++;
    return f;
}

/* Appends a line to a finding's fix. */
static void fix(struct host_finding *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fix(struct host_finding *f, const char *fmt, ...)
{
    if (!f->fix)
        return;   /* the sink */
    struct sbuf sb = { 0 };
    sb_printf(&sb, "%s%s", f->fix, *f->fix ? "\n" : "");
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&sb, fmt, ap);
    va_end(ap);
    if (sb.oom || !sb.s) {
        sb_free(&sb);
        return;
    }
    free(f->fix);
    f->fix = sb.s;
}

void host_report_free(struct host_report *rep)
{
    for (size_t i = 0; i < rep->n; i++) {
        free(rep->f[i].topic);
        free(rep->f[i].message);
        free(rep->f[i].fix);
    }
    free(rep->f);
    memset(rep, 0, sizeof(*rep));
}

/* ------------------------------------------------------------ helpers */

struct check_state {
    const struct host_ctx *c;
    const struct host_check_opts *o;
    struct host_report *rep;
    struct host_pci pci;
    struct host_names ids;
    struct host_cpuinfo cpu;
    char *cmdline;
    bool dmar, ivrs;
    enum host_cpu_vendor iommu_kind;   /* whose IOMMU: from the tables, else the CPU */
    char distro[64];
};

static void describe(struct check_state *s, const struct host_pci_dev *d, char *buf, size_t cap)
{
    char name[160], cls[96];
    host_pci_name(&s->ids, d, name, sizeof(name));
    host_pci_class_name(&s->ids, d, cls, sizeof(cls));
    if (d->ids_ok)
        snprintf(buf, cap, "%s (%s%s%s [%04x:%04x])", d->bdf, cls, *name ? ": " : "", name, d->vendor, d->device);
    else
        snprintf(buf, cap, "%s (%s, vendor/device unreadable)", d->bdf, cls);
}

static const char *drv_or_none(const char *d)
{
    return *d ? d : "none";
}

static void how_to_set_cmdline(struct check_state *s, struct host_finding *f)
{
    const char *id = s->distro;
    if (!strcmp(id, "fedora") || !strcmp(id, "rhel"))
        fix(f, "  (Fedora/RHEL: grubby --update-kernel=ALL --args=\"...\"; then reboot)");
    else if (!strcmp(id, "debian"))
        fix(f, "  (Debian/Ubuntu: add it to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, run update-grub, "
               "reboot; systemd-boot: /etc/kernel/cmdline)");
    else
        fix(f, "  (GRUB: GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, then update-grub or "
               "grub2-mkconfig -o /boot/grub2/grub.cfg; Fedora: grubby --update-kernel=ALL --args=\"...\"; "
               "systemd-boot: /etc/kernel/cmdline; then reboot)");
}

static void read_distro(struct check_state *s)
{
    char *t = hs_read_alloc(s->c, 65536, NULL, "/etc/os-release");
    s->distro[0] = '\0';
    if (!t)
        return;
    char id[64] = "", like[160] = "";
    char *save = NULL;
    for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *dst = NULL;
        size_t cap = 0;
        if (!strncmp(l, "ID=", 3)) {
            dst = id;
            cap = sizeof(id);
            l += 3;
        } else if (!strncmp(l, "ID_LIKE=", 8)) {
            dst = like;
            cap = sizeof(like);
            l += 8;
        }
        if (!dst)
            continue;
        if (*l == '"')
            l++;
        snprintf(dst, cap, "%s", l);
        char *q = strchr(dst, '"');
        if (q)
            *q = '\0';
    }
    free(t);
    /* Reduce to the family whose tools we name. */
    const char *fam = "";
    if (!strcmp(id, "debian") || !strcmp(id, "ubuntu") || strstr(like, "debian") || strstr(like, "ubuntu"))
        fam = "debian";
    else if (!strcmp(id, "fedora") || strstr(like, "fedora"))
        fam = "fedora";
    else if (!strcmp(id, "rhel") || !strcmp(id, "centos") || !strcmp(id, "rocky") || strstr(like, "rhel"))
        fam = "rhel";
    else if (!strcmp(id, "arch") || strstr(like, "arch"))
        fam = "arch";
    else if (strstr(id, "suse") || strstr(like, "suse"))
        fam = "suse";
    snprintf(s->distro, sizeof(s->distro), "%s", fam);
}

/* ------------------------------------------------------------- checks */

static void check_cpu(struct check_state *s)
{
    struct host_report *rep = s->rep;
    if (!s->cpu.known) {
        add(rep, HOST_WARN, "cpu", "could not read /proc/cpuinfo: CPU vendor and virtualization support unknown");
    } else if (!s->cpu.vmx && !s->cpu.svm) {
        struct host_finding *f = add(rep, HOST_FAIL, "cpu",
                                     "%s CPU%s%s shows no %s flag: hardware virtualization is off or absent",
                                     *s->cpu.vendor_id ? s->cpu.vendor_id : "unknown", *s->cpu.model ? " " : "",
                                     s->cpu.model, s->cpu.vendor == CPU_VENDOR_AMD ? "svm" : "vmx");
        fix(f, "enable %s in the firmware setup", s->cpu.vendor == CPU_VENDOR_AMD
                                                      ? "SVM ('SVM Mode', 'AMD-V')"
                                                      : "VT-x ('Intel Virtualization Technology')");
    } else {
        add(rep, HOST_OK, "cpu", "%s CPU%s%s with %s", s->cpu.vendor_id, *s->cpu.model ? " " : "", s->cpu.model,
            s->cpu.vmx ? "VMX (VT-x)" : "SVM (AMD-V)");
    }
    if (hs_exists(s->c, "/dev/kvm")) {
        add(rep, HOST_OK, "kvm", "/dev/kvm is present");
    } else {
        struct host_finding *f = add(rep, HOST_FAIL, "kvm", "no /dev/kvm: the KVM module is not loaded");
        fix(f, "modprobe %s", s->cpu.vendor == CPU_VENDOR_AMD ? "kvm_amd" : "kvm_intel");
    }
}

/* Parameters on the command line that turn the IOMMU off. */
static void off_params(struct check_state *s, struct sbuf *sb)
{
    char v[128];
    if (cmdline_get(s->cmdline, "intel_iommu", v, sizeof(v)) && strstr(v, "off"))
        sb_printf(sb, " intel_iommu=%s", v);
    if (cmdline_get(s->cmdline, "amd_iommu", v, sizeof(v)) && strstr(v, "off"))
        sb_printf(sb, " amd_iommu=%s", v);
    if (cmdline_get(s->cmdline, "iommu", v, sizeof(v)) && !strcmp(v, "off"))
        sb_printf(sb, " iommu=off");
}

static void check_iommu(struct check_state *s)
{
    struct host_report *rep = s->rep;
    size_t groups = s->pci.nr_groups;
    struct host_finding *f;
    bool intel = s->iommu_kind != CPU_VENDOR_AMD;

    if (s->dmar)
        add(rep, HOST_OK, "iommu-firmware", "Intel VT-d: the firmware provides an ACPI DMAR table");
    if (s->ivrs)
        add(rep, HOST_OK, "iommu-firmware", "AMD-Vi: the firmware provides an ACPI IVRS table");
    if (!s->dmar && !s->ivrs) {
        if (groups) {
            add(rep, HOST_OK, "iommu-firmware",
                "no DMAR or IVRS table is visible, but the kernel made %zu IOMMU groups", groups);
        } else {
            f = add(rep, HOST_FAIL, "iommu-firmware",
                    "no IOMMU in the firmware: no ACPI DMAR (Intel VT-d) or IVRS (AMD-Vi) table");
            fix(f, "enable %s in the firmware setup, then boot again",
                intel ? "VT-d ('Intel VT for Directed I/O')" : "the IOMMU ('IOMMU', 'AMD-Vi')");
        }
    }

    struct sbuf off = { 0 };
    off_params(s, &off);
    char pt[32];
    bool has_pt = cmdline_get(s->cmdline, "iommu", pt, sizeof(pt)) && !strcmp(pt, "pt");
    if (groups) {
        f = add(rep, HOST_OK, "iommu-kernel", "the kernel's IOMMU driver is on: %zu IOMMU groups%s", groups,
                has_pt ? " (iommu=pt)" : "");
        if (!has_pt)
            fix(f, "optional: iommu=pt on the kernel command line lets the host's own devices skip "
                   "translation (faster host I/O; passed-through devices are translated either way)");
    } else {
        f = add(rep, HOST_FAIL, "iommu-kernel", "no IOMMU groups in /sys/kernel/iommu_groups: the kernel's "
                                                "IOMMU driver is off%s%s",
                off.len ? "; the command line turns it off:" : "", sb_str(&off));
        if (off.len)
            fix(f, "remove%s from the kernel command line", sb_str(&off));
        if (intel) {
            fix(f, "add to the kernel command line: intel_iommu=on iommu=pt");
        } else {
            fix(f, "the AMD IOMMU is on by default when the firmware provides IVRS (amd_iommu=on, seen in "
                   "guides, is not a kernel option); add iommu=pt to the kernel command line");
        }
        how_to_set_cmdline(s, f);
    }
    sb_free(&off);
}

static bool interrupts_remapped(struct check_state *s, unsigned *count)
{
    char *t = hs_read_alloc(s->c, 16u << 20, NULL, "/proc/interrupts");
    *count = 0;
    if (!t)
        return false;
    char *save = NULL;
    for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *save2 = NULL;
        for (char *tok = strtok_r(l, " \t", &save2); tok; tok = strtok_r(NULL, " \t", &save2))
            if (!strncmp(tok, "IR-", 3) || !strcmp(tok, "INTEL-IR") || !strcmp(tok, "AMD-IR")) {
                (*count)++;
                break;
            }
    }
    free(t);
    return *count > 0;
}

/* 1: some Intel unit has ECAP.IR, 0: every unit lacks it, -1: unknown. */
static int intel_ecap_ir(struct check_state *s)
{
    char **units;
    size_t n;
    int res = -1;
    if (hs_list(s->c, &units, &n, "/sys/class/iommu"))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        uint64_t ecap;
        if (strncmp(units[i], "dmar", 4) || !host_name_ok(units[i]))
            continue;
        if (hs_read(s->c, buf, sizeof(buf), "/sys/class/iommu/%s/intel-iommu/ecap", units[i]) <= 0 ||
            parse_hex_u64(buf, UINT64_MAX, &ecap))
            continue;
        if (ecap & (1u << 3))
            res = 1;
        else if (res < 0)
            res = 0;
    }
    hs_list_free(units, n);
    return res;
}

static void check_interrupt_remapping(struct check_state *s)
{
    struct host_report *rep = s->rep;
    struct host_finding *f;
    char buf[16];
    bool unsafe = hs_read(s->c, buf, sizeof(buf), "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts") > 0 &&
                  (buf[0] == 'Y' || buf[0] == 'y' || buf[0] == '1');
    enum host_level missing = unsafe ? HOST_WARN : HOST_FAIL;
    const char *why = unsafe ? " vfio_iommu_type1 allow_unsafe_interrupts=Y lets VFIO go on without it, and a "
                               "passed-through device can then send the host forged interrupts (MSI writes)."
                             : " Without it VFIO refuses the device (vfio_iommu_type1: \"No interrupt remapping "
                               "support\").";
    unsigned nr;
    char v[32];
    bool off = cmdline_get(s->cmdline, "intremap", v, sizeof(v)) && !strcmp(v, "off");
    bool nointremap = cmdline_get(s->cmdline, "nointremap", NULL, 0);

    if (interrupts_remapped(s, &nr)) {
        add(rep, HOST_OK, "interrupt-remapping", "on: %u interrupt%s in /proc/interrupts %s through remapping "
            "(IR- chips)", nr, nr == 1 ? "" : "s", nr == 1 ? "goes" : "go");
        return;
    }
    if (!s->pci.nr_groups) {
        add(rep, HOST_WARN, "interrupt-remapping", "not checked: it needs the IOMMU, which is off");
        return;
    }
    if (off || nointremap) {
        f = add(rep, missing, "interrupt-remapping", "off: the kernel command line has %s.%s",
                off ? "intremap=off" : "nointremap", why);
        fix(f, "remove %s from the kernel command line", off ? "intremap=off" : "nointremap");
        how_to_set_cmdline(s, f);
        return;
    }
    int ecap = s->iommu_kind == CPU_VENDOR_AMD ? -1 : intel_ecap_ir(s);
    if (ecap == 0) {
        f = add(rep, missing, "interrupt-remapping",
                "the IOMMU cannot remap interrupts (ECAP.IR = 0 on every VT-d unit).%s", why);
        fix(f, "use a platform whose IOMMU remaps interrupts; only if you trust the device: "
               "echo 'options vfio_iommu_type1 allow_unsafe_interrupts=1' > /etc/modprobe.d/vfio-unsafe.conf");
    } else if (ecap == 1) {
        f = add(rep, HOST_WARN, "interrupt-remapping",
                "the IOMMU supports it (ECAP.IR) but no interrupt in /proc/interrupts is remapped: could not "
                "confirm it is on");
        fix(f, "look for 'DMAR-IR: Enabled IRQ remapping' in dmesg; if it says it is disabled, check the "
               "firmware's x2APIC / VT-d settings");
    } else {
        f = add(rep, HOST_WARN, "interrupt-remapping",
                "could not determine: no remapped interrupt in /proc/interrupts and no IOMMU unit readable in "
                "/sys/class/iommu");
        fix(f, "look for 'Enabled IRQ remapping' (Intel: DMAR-IR, AMD: AMD-Vi) in dmesg");
    }
}

static bool kernel_release(struct check_state *s, char *rel, size_t cap)
{
    if (hs_read(s->c, rel, cap, "/proc/sys/kernel/osrelease") <= 0)
        return false;
    if (strchr(rel, '/') || strstr(rel, ".."))
        return false;
    for (char *p = rel; *p; p++)
        if (*p <= ' ' || *p > '~')
            return false;
    return true;
}

static bool module_installed(struct check_state *s, const char *rel, const char *subdir, const char *name)
{
    static const char *const ext[] = { "", ".xz", ".zst", ".gz" };
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
        if (hs_exists(s->c, "/lib/modules/%s/kernel/drivers/vfio/%s%s.ko%s", rel, subdir, name, ext[i]))
            return true;
    char *b = hs_read_alloc(s->c, 4u << 20, NULL, "/lib/modules/%s/modules.builtin", rel);
    bool found = false;
    if (b) {
        char want[96];
        snprintf(want, sizeof(want), "/%s.ko", name);
        found = strstr(b, want) != NULL;
        free(b);
    }
    return found;
}

static void check_vfio_modules(struct check_state *s)
{
    struct host_report *rep = s->rep;
    struct host_finding *f;
    bool pci_loaded = hs_is_dir(s->c, "/sys/module/vfio_pci") || hs_is_dir(s->c, "/sys/bus/pci/drivers/vfio-pci");
    bool t1_loaded = hs_is_dir(s->c, "/sys/module/vfio_iommu_type1");
    char rel[128];
    bool have_rel = kernel_release(s, rel, sizeof(rel));

    if (pci_loaded) {
        /* Either IOMMU interface will do (vfio/container.h): the container,
         * or iommufd with device cdevs (Linux 6.6+). */
        bool node = hs_exists(s->c, "/dev/vfio/vfio");
        bool iommufd = hs_exists(s->c, "/dev/iommu");
        if (node)
            add(rep, HOST_OK, "vfio-modules", "vfio-pci is loaded%s; /dev/vfio/vfio present%s",
                t1_loaded ? ", vfio_iommu_type1 too" : "",
                iommufd ? ", /dev/iommu too (--vfio-iommu iommufd can use it)" : "");
        else if (iommufd)
            add(rep, HOST_OK, "vfio-modules", "vfio-pci is loaded; no /dev/vfio/vfio, but "
                "/dev/iommu: minivmm takes the devices through iommufd and their cdevs");
        else {
            f = add(rep, HOST_WARN, "vfio-modules", "vfio-pci is loaded; but no /dev/vfio/vfio "
                    "and no /dev/iommu");
            fix(f, "modprobe vfio (/dev/vfio/vfio, the VFIO container) or, on Linux 6.6+, "
                "modprobe iommufd (/dev/iommu)");
        }
        return;
    }
    if (have_rel && module_installed(s, rel, "pci/", "vfio-pci")) {
        f = add(rep, HOST_WARN, "vfio-modules", "vfio-pci is installed for kernel %s but not loaded", rel);
        fix(f, "modprobe vfio-pci   (to load it at every boot: echo vfio-pci > /etc/modules-load.d/vfio-pci.conf)");
        return;
    }
    f = add(rep, HOST_FAIL, "vfio-modules", "vfio-pci is neither loaded nor installed%s%s",
            have_rel ? " for kernel " : "", have_rel ? rel : "");
    fix(f, "install this kernel's modules (it needs CONFIG_VFIO_PCI), or boot a distribution kernel");
}

/* Lines that bind the GPU's functions to vfio-pci at every boot. */
static void fix_at_boot(struct check_state *s, struct host_finding *f, const struct host_pci_dev *gpu)
{
    struct sbuf ids = { 0 }, mods = { 0 }, dups = { 0 };
    size_t nids = 0;
    char seen_mods[8][HOST_NAME_LEN];
    size_t nmods = 0;
    for (size_t i = 0; i < s->pci.n; i++) {
        const struct host_pci_dev *d = &s->pci.dev[i];
        if (!bdf_same_slot(d->bdf, gpu->bdf) || host_is_bridge(d) || !d->ids_ok)
            continue;
        char id[10];
        snprintf(id, sizeof(id), "%04x:%04x", d->vendor, d->device);
        if (!strstr(sb_str(&ids), id)) {
            sb_printf(&ids, "%s%s", nids++ ? "," : "", id);
            for (size_t j = 0; j < s->pci.n; j++) {
                const struct host_pci_dev *o = &s->pci.dev[j];
                if (o->ids_ok && o->vendor == d->vendor && o->device == d->device && !bdf_same_slot(o->bdf, gpu->bdf))
                    sb_printf(&dups, " %s", o->bdf);
            }
        }
        if (*d->driver && !host_driver_is_vfio(d->driver) && nmods < 8) {
            char mod[HOST_NAME_LEN];
            host_driver_module(s->c, d->driver, mod, sizeof(mod));
            bool dup = false;
            for (size_t k = 0; k < nmods; k++)
                dup |= !strcmp(seen_mods[k], mod);
            if (!dup) {
                snprintf(seen_mods[nmods++], HOST_NAME_LEN, "%s", mod);
                sb_printf(&mods, "\n      softdep %s pre: vfio-pci", mod);
            }
        }
    }
    if (!nids)
        goto out;
    fix(f, "to bind at every boot instead, either:");
    fix(f, "  kernel command line: vfio-pci.ids=%s", sb_str(&ids));
    fix(f, "  or /etc/modprobe.d/vfio.conf:\n      options vfio-pci ids=%s%s", sb_str(&ids), sb_str(&mods));
    const char *d = s->distro;
    if (!strcmp(d, "debian"))
        fix(f, "  and load vfio-pci from the initramfs: add vfio, vfio_iommu_type1, vfio_pci to "
               "/etc/initramfs-tools/modules; update-initramfs -u");
    else if (!strcmp(d, "fedora") || !strcmp(d, "rhel") || !strcmp(d, "suse"))
        fix(f, "  and load vfio-pci from the initramfs: echo 'force_drivers+=\" vfio vfio_iommu_type1 vfio_pci \"' "
               "> /etc/dracut.conf.d/vfio.conf; dracut -f");
    else if (!strcmp(d, "arch"))
        fix(f, "  and load vfio-pci from the initramfs: MODULES=(vfio_pci vfio vfio_iommu_type1) in "
               "/etc/mkinitcpio.conf; mkinitcpio -P");
    else
        fix(f, "  and load vfio-pci from the initramfs: initramfs-tools: vfio vfio_iommu_type1 vfio_pci in "
               "/etc/initramfs-tools/modules, update-initramfs -u; dracut: force_drivers+=\" vfio "
               "vfio_iommu_type1 vfio_pci \" in /etc/dracut.conf.d/vfio.conf, dracut -f; mkinitcpio: "
               "MODULES=(vfio_pci vfio vfio_iommu_type1), mkinitcpio -P");
    if (dups.len)
        fix(f, "  careful: these IDs also match%s, which vfio-pci.ids would take too; bind by address with "
               "`minivmm host bind` at boot instead", sb_str(&dups));
out:
    sb_free(&ids);
    sb_free(&mods);
    sb_free(&dups);
}

static const char *acs_word(enum host_acs a)
{
    return a == HOST_ACS_PRESENT ? "has ACS" : a == HOST_ACS_ABSENT ? "has no ACS" : "ACS unknown";
}

static void check_gpu(struct check_state *s, const struct host_pci_dev *gpu)
{
    struct host_report *rep = s->rep;
    struct host_finding *f;
    char desc[320];
    describe(s, gpu, desc, sizeof(desc));

    if (!host_is_display(gpu))
        add(rep, HOST_WARN, "gpu", "%s is not a display controller; checking it as the device to pass "
            "through anyway", desc);

    if (gpu->iommu_group < 0) {
        f = add(rep, HOST_FAIL, "gpu-group", "%s is in no IOMMU group%s", desc,
                s->pci.nr_groups ? "" : " (the IOMMU is off)");
        if (s->pci.nr_groups)
            fix(f, "a device outside every group cannot be isolated; check dmesg for the IOMMU's complaint "
                   "about %s", gpu->bdf);
        else
            fix(f, "turn the IOMMU on first (see iommu-firmware, iommu-kernel above)");
        return;
    }

    /* The GPU itself. */
    if (host_driver_is_vfio(gpu->driver)) {
        bool node = hs_exists(s->c, "/dev/vfio/%d", gpu->iommu_group);
        char numa[32] = "unknown";
        if (gpu->numa_node >= 0)
            snprintf(numa, sizeof(numa), "%d", gpu->numa_node);
        f = add(rep, node ? HOST_OK : HOST_FAIL, "gpu", "%s is on %s, IOMMU group %d, %s/dev/vfio/%d; NUMA node %s",
                desc, gpu->driver, gpu->iommu_group, node ? "" : "but there is no ", gpu->iommu_group, numa);
        if (!node)
            fix(f, "/dev/vfio/%d is missing: is /dev a devtmpfs, and is vfio loaded? (modprobe vfio)", gpu->iommu_group);
    } else {
        f = add(rep, HOST_FAIL, "gpu", "%s is not bound to vfio-pci (driver: %s); IOMMU group %d", desc,
                drv_or_none(gpu->driver), gpu->iommu_group);
        fix(f, "minivmm host bind %s   (moves every function of its group to vfio-pci; minivmm host unbind "
               "%s gives them back)", gpu->bdf, gpu->bdf);
        fix_at_boot(s, f, gpu);
    }

    /* The rest of its group. */
    struct sbuf members = { 0 }, bad = { 0 }, warn = { 0 }, bridges = { 0 };
    bool foreign = false;
    enum host_level lvl = HOST_OK;
    for (size_t i = 0; i < s->pci.n; i++) {
        const struct host_pci_dev *d = &s->pci.dev[i];
        if (d->iommu_group != gpu->iommu_group)
            continue;
        char dd[320];
        describe(s, d, dd, sizeof(dd));
        sb_printf(&members, "\n  %s, driver %s%s", dd, drv_or_none(d->driver),
                  d == gpu ? "  <- the GPU" : bdf_same_slot(d->bdf, gpu->bdf) ? "  (GPU function)" : "");
        if (d == gpu)
            continue;
        if (host_is_bridge(d)) {
            sb_printf(&bridges, " %s (%s)", d->bdf, acs_word(d->acs));
            if (!host_driver_group_safe(d->driver)) {
                sb_printf(&bad, "\n  bridge %s is on %s, which VFIO does not allow in a group", d->bdf, d->driver);
                lvl = HOST_FAIL;
            }
            continue;
        }
        bool sibling = bdf_same_slot(d->bdf, gpu->bdf);
        if (!sibling)
            foreign = true;
        if (host_driver_is_vfio(d->driver)) {
            if (!sibling) {
                sb_printf(&warn, "\n  %s is not part of the GPU but shares its group: it leaves the host with it",
                          d->bdf);
                if (lvl < HOST_WARN)
                    lvl = HOST_WARN;
            }
        } else if (!*d->driver || !strcmp(d->driver, "pci-stub")) {
            sb_printf(&warn, "\n  %s has %s: bind it to vfio-pci too, so no host driver claims it later%s", d->bdf,
                      *d->driver ? "pci-stub" : "no driver", sibling ? "" : " (it is not part of the GPU)");
            if (lvl < HOST_WARN)
                lvl = HOST_WARN;
        } else {
            sb_printf(&bad, "\n  %s is on %s (a host driver)%s: the group is not viable while it is", d->bdf, d->driver,
                      sibling ? "" : ", and it is not part of the GPU");
            lvl = HOST_FAIL;
        }
    }
    f = add(rep, lvl, "gpu-group", "IOMMU group %d:%s%s%s", gpu->iommu_group, sb_str(&members), sb_str(&bad),
            sb_str(&warn));
    if (lvl != HOST_OK) {
        if (bad.len && !foreign)
            fix(f, "minivmm host bind %s   (every function of the group to vfio-pci)", gpu->bdf);
        if (foreign) {
            fix(f, "devices that are not part of the GPU share its group%s%s: the bridges above them do not "
                   "isolate them (PCIe Access Control Services).", bridges.len ? "; bridges in the group:" : "",
                sb_str(&bridges));
            fix(f, "move the GPU to a slot wired to the CPU rather than the chipset, or enable ACS in the "
                   "firmware setup if it offers it; or give those devices up too: minivmm host bind --force %s",
                gpu->bdf);
            fix(f, "(the out-of-tree 'ACS override' kernel patch only pretends the isolation the hardware "
                   "lacks; minivmm does not recommend it)");
        }
    }
    sb_free(&members);
    sb_free(&bad);
    sb_free(&warn);
    sb_free(&bridges);
}

static void check_console(struct check_state *s, const struct host_pci_dev *gpu)
{
    struct host_report *rep = s->rep;
    struct sbuf cons = { 0 }, displays = { 0 };
    bool gpu_is_console = false;
    for (size_t i = 0; i < s->pci.n; i++) {
        const struct host_pci_dev *d = &s->pci.dev[i];
        bool con = host_pci_is_console(s->c, d);
        if (con) {
            sb_printf(&cons, " %s%s", d->bdf, d->boot_vga == 1 ? " (boot VGA)" : " (framebuffer console)");
            if (gpu && d == gpu)
                gpu_is_console = true;
        }
        if (host_is_display(d))
            sb_printf(&displays, " %s (driver %s%s)", d->bdf, drv_or_none(d->driver), con ? ", host console" : "");
    }
    if (gpu_is_console) {
        struct host_finding *f = add(rep, HOST_WARN, "boot-gpu",
                                     "%s is the host's boot GPU / console: the firmware and the host's framebuffer "
                                     "use it; minivmm host bind refuses it without --force", gpu->bdf);
        fix(f, "make the firmware start on another GPU ('Primary display' = IGD/integrated), or run the host "
               "headless with a serial or network console");
        fix(f, "the firmware framebuffer may still hold the GPU's memory: add video=efifb:off (efifb) or "
               "initcall_blacklist=sysfb_init (simpledrm) to the kernel command line");
    } else if (gpu) {
        if (cons.len)
            add(rep, HOST_OK, "boot-gpu", "the host's console stays on%s, not on %s", sb_str(&cons), gpu->bdf);
        else
            add(rep, HOST_OK, "boot-gpu", "no device is the boot VGA or a framebuffer console: the host is "
                "headless or on a serial console, %s is free to go", gpu->bdf);
    } else {
        struct host_finding *f = add(rep, HOST_WARN, "gpu", "no --gpu given: display devices:%s; host console:%s",
                                     displays.len ? sb_str(&displays) : " none",
                                     cons.len ? sb_str(&cons) : " none (headless or serial)");
        fix(f, "minivmm host check --gpu BDF   checks one GPU's group, driver and console");
    }
    sb_free(&cons);
    sb_free(&displays);
}

struct pool {
    uint64_t kb;
    long nr, free;
};

static int read_pools(struct check_state *s, const char *dir, struct pool *p, int max)
{
    char **names;
    size_t n;
    int cnt = 0;
    if (hs_list(s->c, &names, &n, "%s", dir))
        return 0;
    for (size_t i = 0; i < n && cnt < max; i++) {
        long kb;
        char num[32], buf[32];
        size_t l = strlen(names[i]);
        if (strncmp(names[i], "hugepages-", 10) || l < 13 || l - 12 >= sizeof(num) ||
            strcmp(names[i] + l - 2, "kB"))
            continue;
        memcpy(num, names[i] + 10, l - 12);
        num[l - 12] = '\0';
        if (parse_long(num, 1, 1L << 40, &kb))
            continue;
        p[cnt] = (struct pool){ .kb = (uint64_t)kb, .nr = -1, .free = -1 };
        if (hs_read(s->c, buf, sizeof(buf), "%s/%s/nr_hugepages", dir, names[i]) > 0)
            parse_long(buf, 0, 1L << 50, &p[cnt].nr);
        if (hs_read(s->c, buf, sizeof(buf), "%s/%s/free_hugepages", dir, names[i]) > 0)
            parse_long(buf, 0, 1L << 50, &p[cnt].free);
        cnt++;
    }
    hs_list_free(names, n);
    return cnt;
}

static void fmt_size(uint64_t kb, char *buf, size_t cap)
{
    if (kb >= (1u << 20) && kb % (1u << 20) == 0)
        snprintf(buf, cap, "%lluG", (unsigned long long)(kb >> 20));
    else if (kb >= 1024 && kb % 1024 == 0)
        snprintf(buf, cap, "%lluM", (unsigned long long)(kb >> 10));
    else
        snprintf(buf, cap, "%lluK", (unsigned long long)kb);
}

static void check_hugepages(struct check_state *s, const struct host_pci_dev *gpu)
{
    struct host_report *rep = s->rep;
    const struct host_check_opts *o = s->o;
    struct pool pools[8];
    int np = read_pools(s, "/sys/kernel/mm/hugepages", pools, 8);
    struct sbuf list = { 0 };
    for (int i = 0; i < np; i++) {
        char sz[24];
        fmt_size(pools[i].kb, sz, sizeof(sz));
        if (pools[i].nr < 0 || pools[i].free < 0)
            sb_printf(&list, " %s: unreadable;", sz);
        else
            sb_printf(&list, " %s: %ld free of %ld;", sz, pools[i].free, pools[i].nr);
    }
    if (list.len)
        list.s[--list.len] = '\0';

    if (!o->hugepage_size) {
        char *mi = hs_read_alloc(s->c, 1u << 20, NULL, "/proc/meminfo");
        long avail_kb = -1;
        if (mi) {
            char *p = strstr(mi, "MemAvailable:");
            if (p) {
                char num[32];
                if (sscanf(p + 13, "%31s", num) == 1)
                    parse_long(num, 0, 1L << 50, &avail_kb);
            }
            free(mi);
        }
        if (o->memory && avail_kb >= 0 && o->memory / 1024 > (uint64_t)avail_kb) {
            struct host_finding *f = add(rep, HOST_WARN, "memory", "the VM wants %llu MiB but only %ld MiB are "
                                         "available", (unsigned long long)(o->memory >> 20), avail_kb / 1024);
            fix(f, "give the VM less memory, or free some on the host");
        }
        struct host_finding *f = add(rep, HOST_OK, "hugepages", "hugepage pools:%s%s", list.len ? sb_str(&list) : " none",
                                     o->memory ? "; the VM would use ordinary pages (no --hugepages)" : "");
        if (!o->memory)
            fix(f, "minivmm host check --memory SIZE --hugepages 2M|1G   checks the pool against a VM");
        sb_free(&list);
        return;
    }

    uint64_t kb = o->hugepage_size / 1024;
    char sz[24];
    fmt_size(kb, sz, sizeof(sz));
    struct pool *p = NULL;
    for (int i = 0; i < np; i++)
        if (pools[i].kb == kb)
            p = &pools[i];
    struct host_finding *f;
    if (!p) {
        f = add(rep, HOST_FAIL, "hugepages", "the kernel has no %s hugepage pool (pools:%s)", sz,
                list.len ? sb_str(&list) : " none");
        if (kb == (1u << 20) && s->cpu.known && !s->cpu.pdpe1gb)
            fix(f, "this CPU has no pdpe1gb flag: it cannot map 1G pages; use --hugepages 2M");
        else
            fix(f, "the kernel needs CONFIG_HUGETLBFS; for 1G pages add hugepagesz=1G to the kernel command line");
        sb_free(&list);
        return;
    }
    if (!o->memory) {
        add(rep, HOST_WARN, "hugepages", "%s pool: %ld free of %ld; no --memory given, so the VM's need is unknown",
            sz, p->free, p->nr);
        sb_free(&list);
        return;
    }
    uint64_t need = (o->memory + o->hugepage_size - 1) / o->hugepage_size;
    if (p->free < 0 || (uint64_t)p->free < need) {
        long have = p->free < 0 ? 0 : p->free;
        f = add(rep, HOST_FAIL, "hugepages", "the VM needs %llu pages of %s; the pool has %ld free (of %ld)",
                (unsigned long long)need, sz, have, p->nr < 0 ? 0 : p->nr);
        unsigned long long total = (unsigned long long)(p->nr < 0 ? 0 : p->nr) + need - (uint64_t)have;
        fix(f, "now: echo %llu > /sys/kernel/mm/hugepages/hugepages-%llukB/nr_hugepages   (may fall short once "
               "memory is fragmented)", total, (unsigned long long)kb);
        fix(f, "at boot: add hugepagesz=%s hugepages=%llu to the kernel command line", sz, total);
    } else {
        f = add(rep, HOST_OK, "hugepages", "the VM needs %llu pages of %s; the pool has %ld free",
                (unsigned long long)need, sz, p->free);
    }
    /* The GPU's node: memory there avoids cross-node DMA. */
    if (gpu && gpu->numa_node >= 0) {
        char dir[96];
        snprintf(dir, sizeof(dir), "/sys/devices/system/node/node%d/hugepages", gpu->numa_node);
        struct pool np2[8];
        int nn = read_pools(s, dir, np2, 8);
        for (int i = 0; i < nn; i++)
            if (np2[i].kb == kb && np2[i].free >= 0 && (uint64_t)np2[i].free < need) {
                f = add(rep, HOST_WARN, "hugepages-numa", "the GPU's NUMA node %d has only %ld free %s pages of "
                        "the %llu the VM needs: some guest memory will be remote to the GPU", gpu->numa_node,
                        np2[i].free, sz, (unsigned long long)need);
                fix(f, "echo %llu > /sys/devices/system/node/node%d/hugepages/hugepages-%llukB/nr_hugepages",
                    (unsigned long long)need, gpu->numa_node, (unsigned long long)kb);
            }
    }
    sb_free(&list);
}

static void check_pins(struct check_state *s, const struct host_pci_dev *gpu)
{
    struct host_report *rep = s->rep;
    const struct host_check_opts *o = s->o;
    struct host_finding *f;
    if (!o->nr_pins && o->emulator_pin < 0 && o->io_pin < 0) {
        add(rep, HOST_OK, "cpu-pinning", "no --cpu-pin given (minivmm host topology --cpus N suggests one)");
        return;
    }
    struct host_topology t;
    if (host_topology_read(s->c, &t) < 0) {
        add(rep, HOST_WARN, "cpu-pinning", "could not read the CPU topology");
        return;
    }
    struct sbuf offline = { 0 }, shared = { 0 }, notes = { 0 };
    struct cpuset vm = { 0 }, vcpus = { 0 }, notiso = { 0 };
    for (int i = 0; i < o->nr_pins; i++)
        if (o->cpu_pin[i] >= 0) {
            if (cpuset_has(&vcpus, o->cpu_pin[i]))
                sb_printf(&notes, "\n  CPU %d carries more than one vCPU", o->cpu_pin[i]);
            cpuset_add(&vcpus, (unsigned)o->cpu_pin[i]);
        }
    vm = vcpus;
    if (o->emulator_pin >= 0)
        cpuset_add(&vm, (unsigned)o->emulator_pin);
    if (o->io_pin >= 0)
        cpuset_add(&vm, (unsigned)o->io_pin);
    for (int cpu = 0; cpu < HOST_MAX_CPUS; cpu++) {
        if (!cpuset_has(&vm, cpu))
            continue;
        if (!cpuset_has(&t.online, cpu))
            sb_printf(&offline, " %d", cpu);
        else if (cpuset_has(&vcpus, cpu) && !cpuset_has(&t.isolated, cpu))
            cpuset_add(&notiso, (unsigned)cpu);
    }
    /* Cores half given to the VM: the host runs on the other thread. */
    for (size_t k = 0; k < t.nr_cores; k++) {
        const struct host_core *c = &t.core[k];
        bool any = false, all = true;
        for (int j = 0; j < c->nr; j++) {
            if (cpuset_has(&vcpus, c->cpu[j]))
                any = true;
            if (!cpuset_has(&vm, c->cpu[j]))
                all = false;
        }
        if (any && !all) {
            sb_printf(&shared, " %d", c->cpu[0]);
            for (int j = 1; j < c->nr; j++)
                sb_printf(&shared, "/%d", c->cpu[j]);
        }
    }
    if (o->emulator_pin >= 0 && cpuset_has(&vcpus, o->emulator_pin))
        sb_printf(&notes, "\n  the emulator thread shares CPU %d with a vCPU", o->emulator_pin);
    if (gpu && gpu->numa_node >= 0 && t.nr_nodes > 1)
        for (int i = 0; i < o->nr_pins; i++)
            if (o->cpu_pin[i] >= 0 && host_cpu_node(&t, o->cpu_pin[i]) >= 0 &&
                host_cpu_node(&t, o->cpu_pin[i]) != gpu->numa_node) {
                sb_printf(&notes, "\n  vCPU %d is on CPU %d (node %d), the GPU on node %d", i, o->cpu_pin[i],
                          host_cpu_node(&t, o->cpu_pin[i]), gpu->numa_node);
            }

    struct sbuf vl = { 0 };
    cpulist_format(&vcpus, &vl);
    if (offline.len) {
        struct sbuf on = { 0 };
        cpulist_format(&t.online, &on);
        f = add(rep, HOST_FAIL, "cpu-pinning", "pinned to CPUs that are not online:%s (online: %s)", sb_str(&offline),
                sb_str(&on));
        fix(f, "pick CPUs from the online list; minivmm host topology --cpus %d suggests a pinning", o->nr_pins);
        sb_free(&on);
    } else if (cpuset_count(&notiso) || shared.len || notes.len) {
        struct sbuf ni = { 0 };
        cpulist_format(&notiso, &ni);
        f = add(rep, HOST_WARN, "cpu-pinning", "vCPUs on CPUs %s%s%s%s%s", sb_str(&vl),
                cpuset_count(&notiso) ? "; not isolated from the host's scheduler: " : "", sb_str(&ni),
                shared.len ? "; cores shared with the host:" : "", sb_str(&shared));
        if (notes.len)
            fix(f, "note:%s", sb_str(&notes));
        if (cpuset_count(&notiso)) {
            fix(f, "isolate them: add isolcpus=managed_irq,domain,%s nohz_full=%s rcu_nocbs=%s to the kernel "
                   "command line (or at run time: systemctl set-property --runtime init.scope system.slice "
                   "user.slice AllowedCPUs=<the other CPUs>)", sb_str(&ni), sb_str(&ni), sb_str(&ni));
            how_to_set_cmdline(s, f);
        }
        if (shared.len)
            fix(f, "give the VM whole cores: pin the sibling threads too (minivmm host topology shows them)");
        sb_free(&ni);
    } else {
        add(rep, HOST_OK, "cpu-pinning", "vCPUs on CPUs %s: online, isolated, whole cores", sb_str(&vl));
    }
    sb_free(&vl);
    sb_free(&offline);
    sb_free(&shared);
    sb_free(&notes);
    host_topology_free(&t);
}

int host_check(const struct host_ctx *c, const struct host_check_opts *o, struct host_report *rep)
{
    struct check_state s = { .c = c, .o = o, .rep = rep };
    memset(rep, 0, sizeof(*rep));
    int r = host_pci_scan(c, &s.pci);
    if (r < 0)
        return r;
    host_names_open(c, &s.ids);
    host_cpuinfo_read(c, &s.cpu);
    s.cmdline = hs_read_alloc(c, 65536, NULL, "/proc/cmdline");
    if (!s.cmdline)
        s.cmdline = strdup("");
    read_distro(&s);
    s.dmar = hs_exists(c, "/sys/firmware/acpi/tables/DMAR");
    s.ivrs = hs_exists(c, "/sys/firmware/acpi/tables/IVRS");
    s.iommu_kind = s.dmar ? CPU_VENDOR_INTEL : s.ivrs ? CPU_VENDOR_AMD : s.cpu.vendor;

    const struct host_pci_dev *gpu = NULL;
    if (o->gpu) {
        gpu = host_pci_find(&s.pci, o->gpu);
        if (!gpu) {
            struct host_finding *f = add(rep, HOST_FAIL, "gpu", "no PCI device %s on this host", o->gpu);
            fix(f, "minivmm host groups lists the PCI devices and their groups");
        }
    }
    if (!s.cmdline) {
        add(rep, HOST_WARN, "cmdline", "could not read /proc/cmdline");
    } else {
        check_cpu(&s);
        check_iommu(&s);
        check_interrupt_remapping(&s);
        check_vfio_modules(&s);
        if (gpu)
            check_gpu(&s, gpu);
        if (!o->gpu || gpu)
            check_console(&s, gpu);
        check_hugepages(&s, gpu);
        check_pins(&s, gpu);
    }
    free(s.cmdline);
    host_names_close(&s.ids);
    host_pci_free(&s.pci);
    return 0;
}
