/* The q35-like platform (devices/chipset/q35.h): creation in order, teardown in
 * reverse. */
#include "devices/chipset/q35.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <inttypes.h>

#include "boot/fw_cfg_tables.h"
#include "boot/smbios.h"
#include "vmm/gm.h"
#include "vmm/log.h"
#include "vmm/memslot.h"

/* ---- the layout: where each PCI device goes ---- */

static const char *const pcidev_kind_names[] = {
    [PCIDEV_STORAGE] = "storage", [PCIDEV_NET] = "network", [PCIDEV_DISPLAY] = "display",
    [PCIDEV_PASSTHROUGH] = "passed-through", [PCIDEV_OTHER] = "other",
};

/* The root-bus slot range [first, end) for a kind. */
static void q35_kind_range(enum pcidev_kind kind, unsigned *first, unsigned *end)
{
    switch (kind) {
    case PCIDEV_STORAGE: *first = Q35_STORAGE_SLOT0; *end = Q35_NET_SLOT0; break;
    case PCIDEV_NET:     *first = Q35_NET_SLOT0;     *end = Q35_OTHER_SLOT0; break;
    case PCIDEV_DISPLAY: *first = Q35_DISPLAY_SLOT;  *end = Q35_DISPLAY_SLOT + 1; break;
    default:             *first = Q35_OTHER_SLOT0;   *end = Q35_OTHER_SLOT_END; break;
    }
}

/* The link root port i (given to the i-th root-port device) reports: the
 * one the device's host side negotiated (PCIe 6.0 §7.5.3.8), within what
 * the port can say: 2.5-16 GT/s, x1-x16. */
static void q35_port_link(const struct pcidev_list *l, unsigned port, struct pci_root_port_config *rc)
{
    static const unsigned widths[] = { 16, 8, 4, 2, 1 };
    unsigned n = 0, speed, width;

    for (unsigned i = 0; i < l->nr; i++) {
        const struct pcidev *d = &l->dev[i];
        if (d->place != PCIDEV_ROOT_PORT || n++ != port)
            continue;
        if (!d->ops->link || d->ops->link(d->opaque, &speed, &width) != 0)
            return;
        rc->speed = (enum pci_link_speed)(speed > PCI_LINK_16GT ? PCI_LINK_16GT : speed);
        for (unsigned k = 0; k < sizeof(widths) / sizeof(widths[0]); k++)
            if (width >= widths[k]) {
                rc->width = widths[k];
                break;
            }
        return;
    }
}

static int pcidev_intx_gsi(void *ctx, const struct pci_device *d, uint8_t pin)
{
    (void)ctx;
    return q35_intx_gsi(d, pin);
}

/* Give every device its place (before anything is created, so a device
 * that does not fit fails start-up at once). Root-bus devfns taken are
 * marked in used[]; ports counts the root ports devices need. */
static int q35_place(struct q35 *q, struct pcidev_list *l, unsigned *ports)
{
    bool used[256] = { false };
    unsigned next[PCIDEV_OTHER + 1] = { 0 };

    used[PCI_DEVFN(0, 0)] = used[Q35_LPC_DEVFN] = true;
    for (unsigned k = 0; k <= PCIDEV_OTHER; k++) {
        unsigned end;
        q35_kind_range((enum pcidev_kind)k, &next[k], &end);
    }
    *ports = 0;
    /* fixed places first, so a fixed device is never pushed out */
    for (unsigned i = 0; i < l->nr; i++) {
        struct pcidev *d = &l->dev[i];
        if (d->place != PCIDEV_FIXED)
            continue;
        if (used[d->fixed_devfn] || PCI_SLOT(d->fixed_devfn) < Q35_OTHER_SLOT_END) {
            log_err("q35", "%s: 00:%02x.%u is taken or not a fixed place on this machine",
                    d->name, PCI_SLOT(d->fixed_devfn), PCI_FUNC(d->fixed_devfn));
            return -EEXIST;
        }
        used[d->fixed_devfn] = true;
        d->where = (struct pcidev_where){ .devfn = d->fixed_devfn,
                                          .slot = PCI_SLOT(d->fixed_devfn) };
    }
    for (unsigned i = 0; i < l->nr; i++) {
        struct pcidev *d = &l->dev[i];
        unsigned first, end;

        if (d->place == PCIDEV_FIXED)
            continue;
        if (d->place == PCIDEV_ROOT_PORT) {
            if (*ports >= Q35_MAX_ROOT_PORTS) {
                log_err("q35", "%s: the q35 platform has %d root ports, and more devices need "
                        "one of their own (each passed-through slot does): pass fewer "
                        "--gpu/--device", d->name, Q35_MAX_ROOT_PORTS);
                return -E2BIG;
            }
            d->where = (struct pcidev_where){ .devfn = PCI_DEVFN(0, 0),
                                              .slot = (uint8_t)(Q35_ROOT_PORT_SLOT0 + *ports) };
            (*ports)++;
            continue;
        }
        q35_kind_range(d->kind, &first, &end);
        if (next[d->kind] >= end) {
            log_err("q35", "%s: no free slot for another %s device on the root bus (slots "
                    "%02x-%02x hold %u): pass fewer of them", d->name,
                    pcidev_kind_names[d->kind], first, end - 1, end - first);
            return -E2BIG;
        }
        unsigned slot = next[d->kind]++;
        used[PCI_DEVFN(slot, 0)] = true;
        d->where = (struct pcidev_where){ .devfn = PCI_DEVFN(slot, 0), .slot = (uint8_t)slot };
    }
    (void)q;
    return 0;
}

/* fw_cfg "bootorder": the bootable devices' OpenFirmware paths by
 * boot_index (ties in list order), one per line. OVMF boots those first,
 * keeps options that do not start with PciRoot()/HD() (the UEFI shell)
 * after them, and drops the rest -- so no network boot attempts on NICs
 * or a passed-through NIC's ROM hold up a disk boot (they cost minutes
 * without a DHCP server). Without bootable devices, OVMF keeps its own
 * order: NULL. */
/* Boot entry i of d (a device with boot_entry has one per drive; one
 * with boot_path only has entry 0 with its boot_index): 0, -ENOENT past
 * the last, another -errno for an entry with no path. */
#define Q35_MAX_BOOT_ENTRIES 32
static int q35_boot_entry(const struct pcidev *d, unsigned i, int *boot_index, char *buf,
                          size_t len)
{
    if (d->ops->boot_entry)
        return d->ops->boot_entry(d->opaque, &d->where, i, boot_index, buf, len);
    if (i > 0 || !d->ops->boot_path)
        return -ENOENT;
    *boot_index = d->boot_index;
    return d->ops->boot_path(d->opaque, &d->where, buf, len);
}

static const char *q35_build_bootorder(struct q35 *q, const struct pcidev_list *l)
{
    size_t at = 0;
    int done = PCIDEV_NO_BOOT;
    char path[128];

    q->bootorder[0] = '\0';
    for (;;) {
        /* the next boot_index above the last one written */
        int best = PCIDEV_NO_BOOT;
        for (unsigned i = 0; i < l->nr; i++) {
            for (unsigned e = 0; e < Q35_MAX_BOOT_ENTRIES; e++) {
                int b = PCIDEV_NO_BOOT;
                int r = q35_boot_entry(&l->dev[i], e, &b, path, sizeof(path));
                if (r == -ENOENT)
                    break;
                if (b > done && (best == PCIDEV_NO_BOOT || b < best))
                    best = b;
            }
        }
        if (best == PCIDEV_NO_BOOT)
            break;
        for (unsigned i = 0; i < l->nr; i++) {
            const struct pcidev *d = &l->dev[i];
            for (unsigned e = 0; e < Q35_MAX_BOOT_ENTRIES; e++) {
                int b = PCIDEV_NO_BOOT;
                int r = q35_boot_entry(d, e, &b, path, sizeof(path));
                if (r == -ENOENT)
                    break;
                if (r || b != best)
                    continue;
                int n = snprintf(q->bootorder + at, sizeof(q->bootorder) - at, "%s\n", path);
                if (n < 0 || (size_t)n >= sizeof(q->bootorder) - at) {
                    log_warn("q35", "%s: the boot order is full; it boots after the others",
                             d->name);
                    q->bootorder[at] = '\0';
                    continue;
                }
                at += (size_t)n;
            }
        }
        done = best;
    }
    return at ? q->bootorder : NULL;
}

static int q35_plug_devices(struct q35 *q)
{
    struct pcidev_list *l = q->devs;
    unsigned port = 0;

    for (unsigned i = 0; l && i < l->nr; i++) {
        struct pcidev *d = &l->dev[i];
        d->where.bus = &q->pci;
        d->where.parent = d->place == PCIDEV_ROOT_PORT ? &q->ports[port++].dev : NULL;
        d->where.intx_gsi = pcidev_intx_gsi;
        d->where.intx_ctx = q;
        int err = d->ops->plug(d->opaque, &d->where);
        if (err) {
            log_err("q35", "%s: cannot plug it at 00:%02x.%u: %s", d->name, d->where.slot,
                    PCI_FUNC(d->where.devfn), strerror(-err));
            return err;
        }
        d->plugged = true;
        log_debug("q35", "%s at 00:%02x.%u%s", d->name, d->where.slot, PCI_FUNC(d->where.devfn),
                  d->where.parent ? " (behind its root port)" : "");
    }
    return 0;
}

uint64_t q35_pci_mmio64_base(const struct gm *gm, uint64_t size)
{
    uint64_t low = gm_lowmem(gm);
    uint64_t top = gm->size > low ? GM_4G + (gm->size - low) : GM_4G;

    return size ? (top + size - 1) & ~(size - 1) : top;
}

/* The 64-bit PCI window must end inside the guest's physical address space
 * (CPUID 0x80000008 EAX[7:0], which KVM passes from the host): OVMF would
 * otherwise give up on the aperture and the BARs there with it. */
static int q35_check_mmio64(const struct q35 *q, const struct q35_config *cfg)
{
    unsigned bits = cfg->phys_addr_bits;

    if (!cfg->acpi || bits < 32 || bits >= 64)
        return 0;
    uint64_t base = cfg->acpi->pci_mmio64_base, size = cfg->acpi->pci_mmio64_size;
    uint64_t end = base + size;
    if (end > (1ULL << bits)) {
        log_err("q35", "--pci-mmio64 %" PRIu64 "G: the window at 0x%" PRIx64 "-0x%" PRIx64
                " (above %" PRIu64 " MiB of RAM) ends past the %u-bit physical address space "
                "of this CPU (%" PRIu64 " GiB); give a smaller --pci-mmio64 or less --memory",
                size >> 30, base, end - 1, q->env.gm->size >> 20, bits,
                (uint64_t)((1ULL << bits) >> 30));
        return -ERANGE;
    }
    return 0;
}

/* OVMF reads its variable store many thousand times on the way to the
 * shell; while the flash is in read-array mode those reads need no device,
 * so VARS is a read-only KVM slot then (QEMU's "romd" mode) and reads cost
 * no exit. Any write still exits (read-only slot -> MMIO) and reaches the
 * CFI state machine; when it leaves array mode (program, erase, status,
 * ID, CFI query) the slot goes, so reads come to the device again. Called
 * by pflash under its lock, on the vCPU thread that wrote the command. */
static void q35_vars_romd(void *opaque, bool array_mode)
{
    struct q35 *q = opaque;
    uint64_t gpa, size;
    uint8_t *hva;

    if (!array_mode) {
        if (q->vars_slot >= 0)
            memslot_remove(q->slots, q->vars_slot);
        q->vars_slot = -1;
        return;
    }
    if (q->vars_slot >= 0 || !q->pflash)
        return;
    pflash_region(q->pflash, PFLASH_VARS, &gpa, &hva, &size);
    q->vars_slot = memslot_add(q->slots, gpa, size, hva, MEMSLOT_READONLY);
    if (q->vars_slot < 0) {
        log_warn("q35", "UEFI variable store: cannot map it read-only (%s); its reads go through "
                 "MMIO exits", strerror(-q->vars_slot));
        q->vars_slot = -1;
    }
}

/* OVMF's CODE becomes a read-only KVM slot: the guest executes from it
 * (KVM cannot fetch instructions from MMIO); writes still exit and the
 * flash's bus range refuses them. */
static int q35_flash_slots(struct q35 *q, const struct q35_config *cfg)
{
    uint64_t gpa, size;
    uint8_t *hva;

    pflash_region(q->pflash, PFLASH_CODE, &gpa, &hva, &size);
    q->code_slot = memslot_add(q->slots, gpa, size, hva, MEMSLOT_READONLY);
    if (q->code_slot < 0) {
        int err = q->code_slot;
        q->code_slot = -1;
        log_err("q35", "firmware %s: cannot map it read-only at 0x%" PRIx64 " (+0x%" PRIx64
                "): %s", cfg->pflash.code_path ? cfg->pflash.code_path : PFLASH_DEFAULT_CODE,
                gpa, size, strerror(-err));
        return err;
    }
    log_debug("q35", "firmware: CODE at 0x%" PRIx64 " (+0x%" PRIx64 "), VARS %s", gpa, size,
              cfg->pflash.vars_path ? cfg->pflash.vars_path : "?");
    q35_vars_romd(q, true);   /* the flash starts in read-array mode */
    return 0;
}

/* fw_cfg's MCFG follows PCIEXBAR: read it under the bus lock. */
static bool q35_ecam_now(void *opaque, uint64_t *base, uint64_t *size)
{
    struct q35 *q = opaque;

    pthread_mutex_lock(&q->pci.lock);
    bool on = q35_mch_ecam(&q->mch, base, size);
    pthread_mutex_unlock(&q->pci.lock);
    return on;
}

/* The system UUID (SMBIOS type 1): carried over a reset; else, for a
 * firmware boot, derived from the VM's variable store (its path is the one
 * thing that names this VM from run to run), else random. */
static int q35_uuid(const struct q35_config *cfg, uint8_t uuid[16])
{
    char real[PATH_MAX];
    int err = 0;

    if (cfg->persist && cfg->persist->have_uuid) {
        memcpy(uuid, cfg->persist->uuid, 16);
        return 0;
    }
    if (cfg->firmware && cfg->pflash.vars_path)
        smbios_uuid_from_name(uuid, realpath(cfg->pflash.vars_path, real) ? real
                                                                          : cfg->pflash.vars_path);
    else
        err = smbios_uuid_random(uuid);
    if (!err && cfg->persist) {
        memcpy(cfg->persist->uuid, uuid, 16);
        cfg->persist->have_uuid = true;
    }
    return err;
}

static int q35_smbios_config(const struct q35 *q, const struct q35_config *cfg,
                             struct smbios_config *sc)
{
    bool shape = cfg->sockets && cfg->cores && cfg->threads;

    *sc = (struct smbios_config){
        .gm = q->env.gm,
        .sockets = shape ? cfg->sockets : 1,
        .cores = shape ? cfg->cores : cfg->nr_cpus,
        .threads = shape ? cfg->threads : 1,
        .bios = !cfg->firmware,     /* OVMF adds its own type 0 */
    };
    if (sc->sockets * sc->cores * sc->threads != cfg->nr_cpus) {
        log_err("q35", "SMBIOS: %u sockets x %u cores x %u threads is not the %u CPUs",
                sc->sockets, sc->cores, sc->threads, cfg->nr_cpus);
        return -EINVAL;
    }
    smbios_host_cpu(sc);
    return q35_uuid(cfg, sc->uuid);
}

static int q35_add_fw_cfg_items(struct q35 *q, const struct q35_config *cfg,
                                const struct smbios_config *sc)
{
    struct fw_cfg_machine m = {
        .gm = q->env.gm,
        .nr_cpus = cfg->nr_cpus,
        .bootorder = q35_bootorder(q),
        .pci_mmio64_mb = cfg->pci_mmio64_mb,
        .kernel = cfg->kernel,
        .initrd = cfg->initrd,
        .cmdline = cfg->cmdline,
        .acpi = cfg->acpi,
        .smbios = sc,
        .ecam = q35_ecam_now,
        .ecam_opaque = q,
        .ecam_default_base = Q35_ECAM_DEFAULT_BASE,
    };
    return fw_cfg_add_machine(q->fw_cfg, &m);
}

int q35_create(const struct dev_env *env, const struct q35_config *cfg, struct q35 **out)
{
    struct smbios_config sc;
    struct q35 *q;
    unsigned dev_ports = 0;
    int err;

    if (!env->gm || cfg->nr_cpus == 0 || cfg->nr_root_ports > Q35_MAX_ROOT_PORTS) {
        log_err("q35", "bad platform description (%u CPUs, %u root ports; at most %d)",
                cfg->nr_cpus, cfg->nr_root_ports, Q35_MAX_ROOT_PORTS);
        return -EINVAL;
    }
    q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->env = *env;
    q->persist = cfg->persist;
    q->slots = cfg->slots;
    q->code_slot = q->vars_slot = -1;

    err = q35_check_mmio64(q, cfg);
    if (err)
        goto fail;
    if (cfg->devs) {
        err = q35_place(q, cfg->devs, &dev_ports);
        if (err)
            goto fail;
        if (dev_ports + cfg->nr_root_ports > Q35_MAX_ROOT_PORTS) {
            log_err("q35", "%u devices need a root port and %u spare ones were asked for; the "
                    "q35 platform has %d", dev_ports, cfg->nr_root_ports, Q35_MAX_ROOT_PORTS);
            err = -E2BIG;
            goto fail;
        }
        q->devs = cfg->devs;
        q->nr_dev_ports = dev_ports;
        q35_build_bootorder(q, q->devs);
    }

    err = pci_bus_init(&q->pci, env->pio, env->mmio);
    if (err)
        goto fail;
    q->pci_init = true;
    err = pci_bus_attach_pio(&q->pci);
    if (err)
        goto fail;
    q->pci_pio = true;

    struct q35_mch_config mc = { .lowmem = gm_lowmem(env->gm), .ecam_preset = !cfg->firmware };
    err = q35_mch_init(&q->mch, &q->pci, &mc);
    if (err)
        goto fail;
    q->mch_init = true;

    struct lpc_ich9_config lc = { .sci_gsi = ACPI_PM_SCI_GSI, .pm_preset = !cfg->firmware };
    err = lpc_ich9_create(env, &q->pci, &lc, &q->lpc);
    if (err)
        goto fail;

    for (unsigned i = 0; i < dev_ports + cfg->nr_root_ports; i++) {
        struct pci_root_port_config rc = { .port_nr = (uint8_t)i, .slot_nr = (uint16_t)(i + 1) };
        if (i >= dev_ports) {
            rc.speed = (enum pci_link_speed)cfg->port_link[i - dev_ports].speed;
            rc.width = cfg->port_link[i - dev_ports].width;
        } else {
            q35_port_link(cfg->devs, i, &rc);
        }
        err = pci_root_port_init(&q->ports[i], &rc);
        if (!err)
            err = pci_bus_add(&q->pci, NULL, PCI_DEVFN(Q35_ROOT_PORT_SLOT0 + i, 0),
                              &q->ports[i].dev);
        if (err)
            goto fail;
        q->nr_ports++;
    }

    uint64_t low = gm_lowmem(env->gm);
    struct rtc_config tc = { .ram_below_4g = low,
                             .ram_above_4g = env->gm->size > low ? env->gm->size - low : 0,
                             .nr_cpus = cfg->nr_cpus,
                             .restore = cfg->persist ? &cfg->persist->rtc : NULL };
    err = rtc_create(env, &tc, &q->rtc);
    if (err)
        goto fail;

    err = q35_smbios_config(q, cfg, &sc);
    if (err)
        goto fail;
    err = fw_cfg_create(env, &q->fw_cfg);
    if (err)
        goto fail;
    if (!cfg->firmware) {
        err = smbios_install(env->gm, &sc);
        if (err)
            goto fail;
    }
    if (cfg->firmware) {
        err = q35_add_fw_cfg_items(q, cfg, &sc);
        if (err)
            goto fail;
        struct pflash_config pc = cfg->pflash;
        if (q->slots) {
            pc.romd_changed = q35_vars_romd;
            pc.romd_opaque = q;
        }
        err = pflash_create(env, &pc, &q->pflash);
        if (err)
            goto fail;
        if (q->slots) {
            err = q35_flash_slots(q, cfg);
            if (err)
                goto fail;
        }
    }
    err = q35_plug_devices(q);
    if (err)
        goto fail;
    *out = q;
    return 0;
fail:
    q35_destroy(q);
    return err;
}

void q35_destroy(struct q35 *q)
{
    if (!q)
        return;
    if (q->devs)
        pcidev_list_unplug(q->devs);   /* they sit on this bus */
    if (q->code_slot >= 0)
        memslot_remove(q->slots, q->code_slot);
    if (q->vars_slot >= 0)
        memslot_remove(q->slots, q->vars_slot);
    q->code_slot = q->vars_slot = -1;
    pflash_destroy(q->pflash);
    fw_cfg_destroy(q->fw_cfg);
    if (q->rtc && q->persist)
        rtc_save(q->rtc, &q->persist->rtc);
    rtc_destroy(q->rtc);
    while (q->nr_ports)
        pci_bus_remove(&q->pci, &q->ports[--q->nr_ports].dev);
    lpc_ich9_destroy(q->lpc);
    if (q->mch_init)
        q35_mch_fini(&q->mch);
    if (q->pci_pio)
        pci_bus_detach_pio(&q->pci);
    if (q->pci_init)
        pci_bus_fini(&q->pci);
    free(q);
}

const char *q35_bootorder(const struct q35 *q)
{
    return q->bootorder[0] ? q->bootorder : NULL;
}

struct pci_bus *q35_pci_bus(struct q35 *q)
{
    return &q->pci;
}

struct pci_device *q35_root_port(struct q35 *q, unsigned i)
{
    return i < q->nr_ports ? &q->ports[i].dev : NULL;
}

struct acpi_pm *q35_acpi_pm(struct q35 *q)
{
    return lpc_ich9_acpi_pm(q->lpc);
}

int q35_intx_gsi(const struct pci_device *d, uint8_t pin)
{
    unsigned p, slot;

    if (pin < 1 || pin > 4)
        return -EINVAL;
    p = pin - 1u;
    if (d->parent) {
        if (d->parent->parent)
            return -EINVAL;
        /* swizzle through the bridge: device number + pin */
        p = (p + PCI_SLOT(d->devfn)) % 4;
        slot = PCI_SLOT(d->parent->devfn);
    } else {
        slot = PCI_SLOT(d->devfn);
    }
    return (int)(ICH9_PIRQ_GSI_BASE + 4 + (slot + p) % 4);
}
