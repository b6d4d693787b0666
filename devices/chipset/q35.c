/* The q35-like platform (devices/chipset/q35.h): creation in order, teardown in
 * reverse. */
#include "devices/chipset/q35.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "boot/fw_cfg_tables.h"
#include "boot/smbios.h"
#include "vmm/gm.h"
#include "vmm/log.h"

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
        .bootorder = cfg->bootorder,
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

    for (unsigned i = 0; i < cfg->nr_root_ports; i++) {
        struct pci_root_port_config rc = { .port_nr = (uint8_t)i, .slot_nr = (uint16_t)(i + 1),
                                           .speed = (enum pci_link_speed)cfg->port_link[i].speed,
                                           .width = cfg->port_link[i].width };
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
        err = pflash_create(env, &cfg->pflash, &q->pflash);
        if (err)
            goto fail;
    }
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
