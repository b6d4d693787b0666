/* Passed-through PCI functions: start-up, the pci_device hooks, trapped BAR
 * pieces, and the KVM side of MSI/MSI-X (see vfio/vfio_pci.h and the
 * "VFIO passthrough" section of ARCHITECTURE.md).
 *
 * Paths of a guest access:
 *   config cycle (0xCF8/0xCFC or ECAM) -> devices/pci/pci.c -> cfg_read/write
 *     here -> vfio/config.c (emulated bits, or the VFIO config region)
 *   BAR memory, direct piece -> KVM memory slot over the VFIO mmap: no exit
 *   BAR memory, trapped piece (MSI-X table/PBA page, quirk window, what
 *     cannot be mmap'd, I/O BARs) -> KVM exit -> bus -> trap_read/write
 *     here -> MSI-X emulation, the config layer, or pread/pwrite on the
 *     VFIO region
 * Locking: pci.c calls the config hooks with its bus lock held; they and
 * the trap handlers take the function's lock (pci lock, then fn lock;
 * never the other way). */
#include "vfio/vfio_pci.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/pci/pcidev.h"
#include "host/bind.h"
#include "vmm/bus.h"
#include "vmm/dev_env.h"
#include "vmm/gm.h"
#include "vmm/irq.h"
#include "vmm/log.h"
#include "vmm/memslot.h"

#define COMP "vfio"

static uint64_t page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (uint64_t)ps : 4096;
}

/* ---- the device's config region as the config layer sees it */

static int dev_cfg_read(void *opaque, uint32_t off, void *buf, uint32_t len)
{
    struct vfio_pci_fn *fn = opaque;
    return vfio_device_region_read(&fn->dev, VFIO_PCI_CONFIG_REGION_INDEX, off, buf, len);
}

static int dev_cfg_write(void *opaque, uint32_t off, const void *buf, uint32_t len)
{
    struct vfio_pci_fn *fn = opaque;
    return vfio_device_region_write(&fn->dev, VFIO_PCI_CONFIG_REGION_INDEX, off, buf, len);
}

/* ---- KVM side of MSI and MSI-X vectors */

static int *vec_efd(struct vfio_pci_fn *fn, enum pci_irq_kind k, unsigned v)
{
    return k == PCI_IRQ_KIND_MSI ? &fn->msi_efd[v] : &fn->msix_efd[v];
}
static int *vec_gsi(struct vfio_pci_fn *fn, enum pci_irq_kind k, unsigned v)
{
    return k == PCI_IRQ_KIND_MSI ? &fn->msi_gsi[v] : &fn->msix_gsi[v];
}
static bool *vec_attached(struct vfio_pci_fn *fn, enum pci_irq_kind k, unsigned v)
{
    return k == PCI_IRQ_KIND_MSI ? &fn->msi_attached[v] : &fn->msix_attached[v];
}

static bool msix_arrays(struct vfio_pci_fn *fn)
{
    if (fn->msix_efd)
        return true;
    unsigned n = fn->msix.nr;
    fn->msix_efd = malloc(n * sizeof(int));
    fn->msix_gsi = malloc(n * sizeof(int));
    fn->msix_attached = calloc(n, sizeof(bool));
    if (!fn->msix_efd || !fn->msix_gsi || !fn->msix_attached) {
        free(fn->msix_efd);
        free(fn->msix_gsi);
        free(fn->msix_attached);
        fn->msix_efd = fn->msix_gsi = NULL;
        fn->msix_attached = NULL;
        return false;
    }
    for (unsigned v = 0; v < n; v++)
        fn->msix_efd[v] = fn->msix_gsi[v] = -1;
    return true;
}

/* Forget what an eventfd counted before (a previous enable, a reset):
 * without this the first unmask would deliver a stale interrupt. */
static void drain_efd(int fd)
{
    uint64_t n;
    if (fd >= 0 && read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_debug(COMP, "draining eventfd %d: %s", fd, strerror(errno));
}

static int irq_enable(void *opaque, enum pci_irq_kind k, unsigned nr)
{
    struct vfio_pci_fn *fn = opaque;
    if (k == PCI_IRQ_KIND_MSIX && !msix_arrays(fn))
        return -ENOMEM;
    if (nr > (k == PCI_IRQ_KIND_MSI ? PCI_MSI_MAX_VECTORS : fn->msix.nr))
        return -EINVAL;
    int32_t *fds = malloc(nr * sizeof(int32_t));
    if (!fds)
        return -ENOMEM;
    for (unsigned v = 0; v < nr; v++) {
        int *e = vec_efd(fn, k, v);
        if (*e < 0)
            *e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        else
            drain_efd(*e);
        if (*e < 0) {
            int err = errno;
            free(fds);
            return -err;
        }
        fds[v] = *e;
    }
    /* VFIO allows one interrupt type at a time (vfio_pci_set_irqs_ioctl). */
    vfio_intx_disable(&fn->intx, &fn->dev, fn->owner->vm.irq);
    unsigned index = k == PCI_IRQ_KIND_MSI ? VFIO_PCI_MSI_IRQ_INDEX : VFIO_PCI_MSIX_IRQ_INDEX;
    int r = vfio_device_set_irqs(&fn->dev, index, VFIO_IRQ_SET_ACTION_TRIGGER, 0, nr, fds);
    free(fds);
    if (r < 0)
        log_err(COMP, "%s: enabling %u %s vector(s) at the device: %s", fn->dev.bdf, nr,
                k == PCI_IRQ_KIND_MSI ? "MSI" : "MSI-X", strerror(-r));
    return r;
}

static void irq_disable(void *opaque, enum pci_irq_kind k)
{
    struct vfio_pci_fn *fn = opaque;
    unsigned index = k == PCI_IRQ_KIND_MSI ? VFIO_PCI_MSI_IRQ_INDEX : VFIO_PCI_MSIX_IRQ_INDEX;
    int r = vfio_device_set_irqs(&fn->dev, index, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL);
    if (r < 0)
        log_warn(COMP, "%s: disabling %s at the device: %s", fn->dev.bdf,
                 k == PCI_IRQ_KIND_MSI ? "MSI" : "MSI-X", strerror(-r));
}

/* Program the vector's GSI route with its message and attach its eventfd:
 * from here KVM injects the device's interrupts without waking minivmm. */
static int irq_route(void *opaque, enum pci_irq_kind k, unsigned v, uint64_t addr, uint32_t data)
{
    struct vfio_pci_fn *fn = opaque;
    struct irq_table *irq = fn->owner->vm.irq;
    int *gsi = vec_gsi(fn, k, v);
    int r;
    if (*gsi < 0) {
        r = irq_route_add_msi(irq, addr, data);
        if (r < 0)
            return r;
        *gsi = r;
    } else if ((r = irq_route_update_msi(irq, (unsigned)*gsi, addr, data)) < 0) {
        return r;
    }
    r = irq_commit(irq);
    if (r < 0)
        return r;
    bool *att = vec_attached(fn, k, v);
    if (!*att) {
        r = irqfd_assign(irq, *vec_efd(fn, k, v), (unsigned)*gsi, -1);
        if (r < 0)
            return r;
        *att = true;
    }
    return 0;
}

static void irq_unroute(void *opaque, enum pci_irq_kind k, unsigned v)
{
    struct vfio_pci_fn *fn = opaque;
    bool *att = vec_attached(fn, k, v);
    if (!*att)
        return;
    /* The route stays allocated; the device keeps signalling the eventfd,
     * where the interrupt waits (pending) until the vector is unmasked. */
    irqfd_deassign(fn->owner->vm.irq, *vec_efd(fn, k, v), (unsigned)*vec_gsi(fn, k, v));
    *att = false;
}

static bool irq_pending(void *opaque, enum pci_irq_kind k, unsigned v)
{
    struct vfio_pci_fn *fn = opaque;
    if (k == PCI_IRQ_KIND_MSIX && !fn->msix_efd)
        return false;
    int fd = *vec_efd(fn, k, v);
    if (fd < 0)
        return false;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static const struct pci_irq_ops irq_ops = {
    .enable = irq_enable, .disable = irq_disable, .route = irq_route,
    .unroute = irq_unroute, .pending = irq_pending,
};

static uint32_t msi_pending_bits(void *opaque)
{
    struct vfio_pci_fn *fn = opaque;
    return pci_msi_pending(&fn->msi);
}

/* INTx when neither MSI nor MSI-X is on at the device. */
static void intx_follow(struct vfio_pci_fn *fn)
{
    if (!fn->intx_ready || fn->msi.dev_nr || (fn->has_msix && fn->msix.dev_on))
        return;
    vfio_intx_enable(&fn->intx, &fn->dev, fn->owner->vm.irq);
}

/* ---- BAR pieces: KVM slots and bus ranges */

static struct bus *bar_bus(struct vfio_pci_fn *fn, unsigned bar)
{
    struct vfio_pci *v = fn->owner;
    return bar < VFIO_NR_BARS && fn->cfg.bars[bar].type == VFIO_BAR_IO ? v->vm.pio : v->vm.mmio;
}

static int map_direct(void *opaque, unsigned bar, unsigned piece, uint64_t gpa, uint64_t len, void *hva)
{
    struct vfio_pci_fn *fn = opaque;
    int s = memslot_add(fn->owner->vm.slots, gpa, len, hva,
                        bar == VFIO_ROM_BAR ? MEMSLOT_READONLY : 0);
    if (s < 0)
        return s;
    fn->memslot[bar][piece] = s;
    return 0;
}

static void unmap_direct(void *opaque, unsigned bar, unsigned piece)
{
    struct vfio_pci_fn *fn = opaque;
    if (fn->memslot[bar][piece] >= 0)
        memslot_remove(fn->owner->vm.slots, fn->memslot[bar][piece]);
    fn->memslot[bar][piece] = -1;
}

static const struct bus_ops trap_ops;

static int map_trap(void *opaque, unsigned bar, unsigned piece, uint64_t gpa, uint64_t len)
{
    struct vfio_pci_fn *fn = opaque;
    return bus_register(bar_bus(fn, bar), gpa, len, fn->name, &trap_ops, &fn->trap[bar][piece]);
}

static void unmap_trap(void *opaque, unsigned bar, unsigned piece, uint64_t gpa)
{
    struct vfio_pci_fn *fn = opaque;
    bus_unregister(bar_bus(fn, bar), gpa);
}

static const struct vfio_bar_ops bar_ops = { map_direct, unmap_direct, map_trap, unmap_trap };

static void update_bar(struct vfio_pci_fn *fn, unsigned b)
{
    if (!fn->map[b].nr_pieces)
        return;
    uint64_t gpa = 0;
    bool want = b == VFIO_ROM_BAR ? vfio_config_rom_decoded(&fn->cfg, &gpa)
                                  : vfio_config_bar_decoded(&fn->cfg, b, &gpa);
    vfio_bar_update(&fn->map[b], want, gpa, &bar_ops, fn);
}

/* A config write, from the guest's config cycles or NVIDIA's BAR0 mirror:
 * the config layer, then what it says changed. fn->lock held. */
static void cfg_write_locked(struct vfio_pci_fn *fn, uint32_t off, unsigned len, uint32_t val)
{
    int ev = vfio_config_write(&fn->cfg, off, len, val);
    if (ev <= 0)
        return;
    for (unsigned b = 0; b < VFIO_NR_BARS; b++)
        if (ev & (VFIO_CFG_EV_DECODE | (VFIO_CFG_EV_BAR0 << b)))
            update_bar(fn, b);
    if (ev & (VFIO_CFG_EV_DECODE | VFIO_CFG_EV_ROM))
        update_bar(fn, VFIO_ROM_BAR);
    if ((ev & VFIO_CFG_EV_MSIX) && fn->has_msix) {
        bool on = vfio_config_msix_enabled(&fn->cfg);
        if (on)
            pci_msi_off(&fn->msi);      /* MSI-X wins a guest's double enable */
        pci_msix_control(&fn->msix, on, vfio_config_msix_masked(&fn->cfg));
        intx_follow(fn);
    }
    if (ev & VFIO_CFG_EV_MSI) {
        struct pci_msi_state st;
        vfio_config_msi_state(&fn->cfg, &st);
        if (fn->has_msix && fn->msix.dev_on)
            st.enabled = false;
        pci_msi_update(&fn->msi, &st);
        intx_follow(fn);
    }
}

/* ---- pci_device hooks */

static int fn_cfg_read(struct pci_device *d, uint32_t off, unsigned len, uint32_t *val)
{
    struct vfio_pci_fn *fn = d->opaque;
    pthread_mutex_lock(&fn->lock);
    int r = vfio_config_read(&fn->cfg, off, len, val);
    pthread_mutex_unlock(&fn->lock);
    return r < 0 ? r : 0;
}

static int fn_cfg_write(struct pci_device *d, uint32_t off, unsigned len, uint32_t val)
{
    struct vfio_pci_fn *fn = d->opaque;
    pthread_mutex_lock(&fn->lock);
    cfg_write_locked(fn, off, len, val);
    pthread_mutex_unlock(&fn->lock);
    return 0;
}

const struct pci_device_ops vfio_pci_device_ops = {
    .cfg_read = fn_cfg_read,
    .cfg_write = fn_cfg_write,
};

/* ---- trapped BAR pieces */

static bool contains(uint64_t start, uint64_t len, uint64_t off, unsigned n)
{
    return off >= start && off - start < len && n <= len - (off - start);
}
static bool overlaps(uint64_t start, uint64_t len, uint64_t off, unsigned n)
{
    return off < start + len && start < off + n;
}

/* A trapped BAR access: a read into rdata, or (wdata set) a write. */
static int trap_rw(struct vfio_trap *t, uint64_t offset, void *rdata, const void *wdata,
                   unsigned len)
{
    bool write = wdata != NULL;
    struct vfio_pci_fn *fn = t->fn;
    uint64_t off = fn->map[t->bar].pieces[t->piece].off + offset;
    if (t->bar == VFIO_ROM_BAR) {
        /* Read-only memory slot: only writes exit here. Dropped. */
        if (!write && contains(0, fn->rom_bar_size, off, len)) {
            memcpy(rdata, fn->rom + off, len);
            return 0;
        }
        return write ? 0 : -EINVAL;
    }
    int r = 0;
    pthread_mutex_lock(&fn->lock);
    const struct vfio_config *c = &fn->cfg;
    if (fn->has_msix && t->bar == c->msix.table_bar &&
        overlaps(c->msix.table_offset, pci_msix_table_size(&fn->msix), off, len)) {
        uint64_t o = off - c->msix.table_offset;
        if (off < c->msix.table_offset)
            r = -EINVAL;
        else
            r = write ? pci_msix_table_write(&fn->msix, o, wdata, len)
                      : pci_msix_table_read(&fn->msix, o, rdata, len);
        goto out;
    }
    if (fn->has_msix && t->bar == c->msix.pba_bar &&
        overlaps(c->msix.pba_offset, pci_msix_pba_size(&fn->msix), off, len)) {
        uint64_t o = off - c->msix.pba_offset;
        if (off < c->msix.pba_offset)
            r = -EINVAL;
        else
            r = write ? pci_msix_pba_write(&fn->msix, o, wdata, len)
                      : pci_msix_pba_read(&fn->msix, o, rdata, len);
        goto out;
    }
    for (unsigned q = 0; q < fn->quirks.nr; q++) {
        const struct vfio_quirk_window *w = &fn->quirks.win[q];
        if (w->bar != t->bar || !contains(w->off, w->len, off, len))
            continue;
        enum vfio_quirk_route route = vfio_quirk_route(w, c, off - w->off, len, write);
        if (route == VFIO_QUIRK_TO_DEVICE)
            break;
        uint32_t v = 0;
        if (!write) {
            r = vfio_config_read(&fn->cfg, (uint32_t)(off - w->off), len, &v);
            memcpy(rdata, &v, len);
            goto out;
        }
        memcpy(&v, wdata, len);
        cfg_write_locked(fn, (uint32_t)(off - w->off), len, v);
        if (route == VFIO_QUIRK_TO_BOTH)
            vfio_device_region_write(&fn->dev, t->bar, off, wdata, len);
        goto out;
    }
    r = write ? vfio_device_region_write(&fn->dev, t->bar, off, wdata, len)
              : vfio_device_region_read(&fn->dev, t->bar, off, rdata, len);
    if (r < 0)
        log_guest_once(COMP, "%s: BAR%u access at 0x%llx (%u bytes) failed: %s", fn->dev.bdf,
                       t->bar, (unsigned long long)off, len, strerror(-r));
out:
    pthread_mutex_unlock(&fn->lock);
    return r;
}

static int trap_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    return trap_rw(opaque, offset, data, NULL, len);
}

static int trap_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    return trap_rw(opaque, offset, NULL, data, len);
}

static const struct bus_ops trap_ops = { trap_read, trap_write };

/* ---- building a function */

/* The pieces of BAR b: direct where VFIO lets us mmap and nothing traps. */
static int setup_bar(struct vfio_pci_fn *fn, unsigned b)
{
    const struct vfio_bar_info *bi = &fn->cfg.bars[b];
    struct vfio_bar_map *m = &fn->map[b];
    m->index = b;
    if (bi->type != VFIO_BAR_IO && bi->type != VFIO_BAR_MEM32 && bi->type != VFIO_BAR_MEM64)
        return 0;
    const struct vfio_region *rg = &fn->dev.regions[b];
    struct vfio_bar_plan_in in = {
        .bar_size = bi->size,
        .region_size = rg->size,
        .io = bi->type == VFIO_BAR_IO,
        .mmap = rg->flags & VFIO_REGION_INFO_FLAG_MMAP,
        .sparse = rg->sparse,
        .nr_areas = rg->nr_areas,
        .page_size = page_size(),
    };
    memcpy(in.areas, rg->areas, sizeof(in.areas));
    const struct vfio_config *c = &fn->cfg;
    if (fn->has_msix && c->msix.table_bar == b)
        in.traps[in.nr_traps++] = (struct vfio_range){ c->msix.table_offset,
                                                       pci_msix_table_size(&fn->msix) };
    if (fn->has_msix && c->msix.pba_bar == b)
        in.traps[in.nr_traps++] = (struct vfio_range){ c->msix.pba_offset,
                                                       pci_msix_pba_size(&fn->msix) };
    for (unsigned q = 0; q < fn->quirks.nr && in.nr_traps < VFIO_BAR_MAX_TRAPS; q++)
        if (fn->quirks.win[q].bar == b)
            in.traps[in.nr_traps++] = (struct vfio_range){ fn->quirks.win[q].off,
                                                           fn->quirks.win[q].len };
    int r = vfio_bar_plan(&in, m->pieces, VFIO_BAR_MAX_PIECES, &m->nr_pieces);
    if (r < 0) {
        log_err(COMP, "%s: BAR%u (0x%llx bytes) cannot be laid out: %s", fn->dev.bdf, b,
                (unsigned long long)bi->size, strerror(-r));
        return r;
    }
    unsigned direct = 0;
    for (unsigned i = 0; i < m->nr_pieces; i++) {
        fn->trap[b][i] = (struct vfio_trap){ fn, b, i };
        if (m->pieces[i].kind != VFIO_PIECE_DIRECT)
            continue;
        m->hva[i] = vfio_device_mmap(&fn->dev, b, m->pieces[i].off, m->pieces[i].len);
        if (!m->hva[i])
            m->pieces[i].kind = VFIO_PIECE_TRAP;    /* slower, still right */
        else
            direct++;
    }
    log_debug(COMP, "%s: BAR%u %s%s 0x%llx bytes: %u pieces, %u direct", fn->dev.bdf, b,
              bi->type == VFIO_BAR_IO ? "I/O" : bi->type == VFIO_BAR_MEM64 ? "64-bit" : "32-bit",
              bi->prefetch ? " prefetchable" : "", (unsigned long long)bi->size, m->nr_pieces,
              direct);
    return 0;
}

static uint64_t pow2_at_least(uint64_t v, uint64_t min)
{
    uint64_t p = min;
    while (p < v)
        p <<= 1;
    return p;
}

/* The ROM image (file or device) in page-aligned read-only memory, shown
 * through the ROM BAR as a read-only KVM slot: OVMF copies it without exits. */
static int setup_rom(struct vfio_pci_fn *fn, const struct vfio_dev_arg *arg, uint64_t *rom_size)
{
    *rom_size = 0;
    if (arg && arg->no_rom)
        return 0;
    uint8_t *img = NULL;
    size_t len = 0;
    int r;
    if (arg && arg->rom[0]) {
        r = vfio_rom_load_file(arg->rom, &img, &len);
        if (r < 0)
            return r;               /* the user asked for it: fail */
    } else {
        if (fn->quirks.no_rom || !fn->dev.regions[VFIO_PCI_ROM_REGION_INDEX].size)
            return 0;
        if (vfio_device_read_rom(&fn->dev, &img, &len) < 0)
            return 0;               /* warned; the device works without */
    }
    uint64_t size = pow2_at_least(len, page_size() > 2048 ? page_size() : 2048);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        free(img);
        return -ENOMEM;
    }
    memcpy(p, img, len);
    memset((uint8_t *)p + len, 0xff, size - len);
    free(img);
    mprotect(p, size, PROT_READ);
    fn->rom = p;
    fn->rom_bar_size = size;
    struct vfio_bar_map *m = &fn->map[VFIO_ROM_BAR];
    m->index = VFIO_ROM_BAR;
    m->nr_pieces = 1;
    m->pieces[0] = (struct vfio_bar_piece){ 0, size, VFIO_PIECE_DIRECT };
    m->hva[0] = p;
    fn->trap[VFIO_ROM_BAR][0] = (struct vfio_trap){ fn, VFIO_ROM_BAR, 0 };
    *rom_size = size;
    log_info(COMP, "%s: option ROM of %zu bytes from %s", fn->dev.bdf, len,
             arg && arg->rom[0] ? arg->rom : "the device");
    return 0;
}

static int build_fn(struct vfio_pci *v, struct vfio_pci_fn *fn, const struct vfio_dev_arg *arg,
                    bool multifunction)
{
    const struct vfio_device *d = &fn->dev;
    struct vfio_config_opts o = {
        .multifunction = multifunction,
        .behind_root_port = v->opts.behind_root_port,
        .intx = d->irq_count[VFIO_PCI_INTX_IRQ_INDEX] > 0,
        .msi_vectors = d->irq_count[VFIO_PCI_MSI_IRQ_INDEX],
        .msix_vectors = d->irq_count[VFIO_PCI_MSIX_IRQ_INDEX],
        .device_cfg_size = (uint32_t)(d->regions[VFIO_PCI_CONFIG_REGION_INDEX].size >= 4096 ? 4096 : 256),
    };
    for (unsigned b = 0; b < VFIO_NR_BARS; b++)
        o.bar_region_size[b] = d->regions[b].size;

    /* Quirks and the ROM need the IDs and BAR types first: a first pass
     * without a ROM, then the real one with its size. */
    struct vfio_config_dev cd = { dev_cfg_read, dev_cfg_write, fn };
    char err[256];
    int r = vfio_config_init(&fn->cfg, &cd, &o, err, sizeof(err));
    if (r < 0) {
        log_err(COMP, "%s cannot be passed through: %s", d->bdf, err);
        return r;
    }
    uint8_t id[12];
    if ((r = vfio_device_region_read(&fn->dev, VFIO_PCI_CONFIG_REGION_INDEX, 0, id, sizeof(id))) < 0) {
        log_err(COMP, "%s: reading its IDs: %s", d->bdf, strerror(-r));
        return r;
    }
    uint16_t vendor = (uint16_t)(id[0] | id[1] << 8), device = (uint16_t)(id[2] | id[3] << 8);
    uint32_t class_code = (uint32_t)(id[9] | id[10] << 8 | id[11] << 16);
    vfio_quirks_probe(vendor, device, class_code, fn->cfg.bars, &fn->quirks);
    for (unsigned q = 0; q < fn->quirks.nr; q++)
        log_info(COMP, "%s: quirk: %s", d->bdf, fn->quirks.win[q].name);
    r = setup_rom(fn, arg, &o.rom_size);
    if (r < 0)
        return r;
    if (o.rom_size && (r = vfio_config_init(&fn->cfg, &cd, &o, err, sizeof(err))) < 0) {
        log_err(COMP, "%s cannot be passed through: %s", d->bdf, err);
        return r;
    }
    fn->cfg.msi_pending = msi_pending_bits;
    fn->cfg.msi_pending_opaque = fn;

    pci_msi_init(&fn->msi, &irq_ops, fn);
    if (fn->cfg.msix_cap) {
        r = pci_msix_init(&fn->msix, fn->cfg.msix.nr_vectors, &irq_ops, fn);
        if (r < 0)
            return r;
        fn->has_msix = true;
    }
    for (unsigned b = 0; b < VFIO_NR_BARS; b++)
        if ((r = setup_bar(fn, b)) < 0)
            return r;

    /* What pci.c sees: IDs, class, header type and BAR shapes (for any
     * platform code that sizes BARs from pdev); every guest access goes
     * through the hooks. */
    uint8_t htype = multifunction ? PCI_HEADER_TYPE_MULTI : PCI_HEADER_TYPE_NORMAL;
    pci_device_init(&fn->pdev, fn->name, vendor, device, class_code, id[8], htype, fn->cfg.size);
    for (unsigned b = 0; b < VFIO_NR_BARS; b++) {
        const struct vfio_bar_info *bi = &fn->cfg.bars[b];
        enum pci_bar_type t = bi->type == VFIO_BAR_IO ? PCI_BAR_IO
                            : bi->type == VFIO_BAR_MEM32 ? PCI_BAR_MEM32
                            : bi->type == VFIO_BAR_MEM64 ? PCI_BAR_MEM64 : PCI_BAR_NONE;
        if (t != PCI_BAR_NONE && !(t == PCI_BAR_IO && bi->size > 256))
            pci_device_set_bar(&fn->pdev, b, t, bi->prefetch, bi->size);
    }
    fn->pdev.ops = &vfio_pci_device_ops;
    fn->pdev.opaque = fn;
    return 0;
}

static void free_fn(struct vfio_pci *v, struct vfio_pci_fn *fn)
{
    if (!fn)
        return;
    if (fn->plugged && v->bus)
        pci_bus_remove(v->bus, &fn->pdev);
    if (fn->has_msix)
        pci_msix_fini(&fn->msix);
    if (fn->msi.ops)
        pci_msi_off(&fn->msi);
    if (fn->dev_open)
        vfio_intx_disable(&fn->intx, &fn->dev, v->vm.irq);
    vfio_intx_fini(&fn->intx);
    for (unsigned b = 0; b <= VFIO_NR_BARS; b++) {
        struct vfio_bar_map *m = &fn->map[b];
        vfio_bar_update(m, false, 0, &bar_ops, fn);
        for (unsigned i = 0; i < m->nr_pieces; i++)
            if (b < VFIO_NR_BARS && m->hva[i])
                munmap(m->hva[i], m->pieces[i].len);
    }
    if (fn->rom)
        munmap(fn->rom, fn->rom_bar_size);
    bool routes = false;
    for (unsigned k = 0; k < 2; k++) {
        unsigned n = k ? (fn->msix_efd ? fn->msix.nr : 0) : PCI_MSI_MAX_VECTORS;
        for (unsigned i = 0; i < n; i++) {
            int *e = k ? &fn->msix_efd[i] : &fn->msi_efd[i];
            int *g = k ? &fn->msix_gsi[i] : &fn->msi_gsi[i];
            if (*g >= 0) {
                irq_route_remove(v->vm.irq, (unsigned)*g);
                routes = true;
            }
            if (*e >= 0)
                close(*e);
        }
    }
    if (routes)
        irq_commit(v->vm.irq);
    free(fn->msix_efd);
    free(fn->msix_gsi);
    free(fn->msix_attached);
    if (fn->dev_open)
        vfio_device_close(&fn->dev);
    pthread_mutex_destroy(&fn->lock);
    free(fn);
}

/* ---- start-up */

static const struct vfio_dev_arg *arg_of(const struct vfio_args *a, const char *bdf)
{
    for (unsigned i = 0; i < a->nr; i++)
        if (!strcmp(a->dev[i].host, bdf))
            return &a->dev[i];
    return NULL;
}

static struct vfio_pci_fn *new_fn(struct vfio_pci *v, const char *bdf)
{
    struct vfio_pci_fn *fn = calloc(1, sizeof(*fn));
    if (!fn)
        return NULL;
    fn->owner = v;
    snprintf(fn->name, sizeof(fn->name), "vfio %s", bdf);
    memcpy(fn->dev.bdf, bdf, sizeof(fn->dev.bdf));
    fn->dev.fd = -1;
    fn->intx.trigger_fd = fn->intx.resample_fd = -1;
    for (unsigned i = 0; i < PCI_MSI_MAX_VECTORS; i++)
        fn->msi_efd[i] = fn->msi_gsi[i] = -1;
    for (unsigned b = 0; b <= VFIO_NR_BARS; b++)
        for (unsigned i = 0; i < VFIO_BAR_MAX_PIECES; i++)
            fn->memslot[b][i] = -1;
    pthread_mutex_init(&fn->lock, NULL);
    return fn;
}

static int cmp_fn(const void *a, const void *b)
{
    const struct vfio_pci_fn *x = *(struct vfio_pci_fn *const *)a, *y = *(struct vfio_pci_fn *const *)b;
    return strcmp(x->dev.bdf, y->dev.bdf);
}

/* Step 1: the functions, the --gpu slot's siblings, the guest slots. */
static int collect_functions(struct vfio_pci *v, const struct vfio_args *a)
{
    for (unsigned i = 0; i < a->nr; i++) {
        if (v->nr_fns == VFIO_PCI_MAX_FNS)
            return -ENOSPC;
        if (!(v->fns[v->nr_fns] = new_fn(v, a->dev[i].host)))
            return -ENOMEM;
        v->nr_fns++;
        if (!a->dev[i].gpu)
            continue;
        if (!hs_is_dir(&v->hc, "/sys/bus/pci/devices/%s", a->dev[i].host)) {
            log_err(COMP, "--gpu %s: no such PCI device on this host (see `lspci -D` or "
                    "`minivmm host groups`)", a->dev[i].host);
            return -ENODEV;
        }
        char **names = NULL;
        size_t n = 0;
        int r = hs_list(&v->hc, &names, &n, "/sys/bus/pci/devices");
        if (r < 0) {
            log_err(COMP, "listing /sys/bus/pci/devices: %s", strerror(-r));
            return r;
        }
        for (size_t k = 0; k < n; k++) {
            char bdf[HOST_BDF_LEN];
            if (bdf_parse(names[k], bdf) < 0 || !bdf_same_slot(bdf, a->dev[i].host) ||
                !strcmp(bdf, a->dev[i].host) || arg_of(a, bdf))
                continue;
            if (v->nr_fns == VFIO_PCI_MAX_FNS) {
                hs_list_free(names, n);
                return -ENOSPC;
            }
            if (!(v->fns[v->nr_fns] = new_fn(v, bdf))) {
                hs_list_free(names, n);
                return -ENOMEM;
            }
            v->nr_fns++;
            log_info(COMP, "--gpu %s: taking %s of the same slot along", a->dev[i].host, bdf);
        }
        hs_list_free(names, n);
    }
    qsort(v->fns, v->nr_fns, sizeof(v->fns[0]), cmp_fn);
    for (unsigned i = 0; i < v->nr_fns; i++) {
        struct vfio_pci_fn *fn = v->fns[i];
        unsigned s = 0;
        while (s < v->nr_slots && !bdf_same_slot(v->slots[s].fn[0]->dev.bdf, fn->dev.bdf))
            s++;
        if (s == v->nr_slots) {
            if (v->nr_slots == VFIO_PCI_MAX_SLOTS)
                return -ENOSPC;
            v->nr_slots++;
        }
        struct vfio_pci_slot *sl = &v->slots[s];
        if (sl->nr == 8)
            return -ENOSPC;
        fn->slot = s;
        fn->guest_fn = sl->nr;          /* sorted: the lowest is function 0 */
        sl->fn[sl->nr++] = fn;
    }
    return 0;
}

/* Step 2: --bind. */
static int bind_functions(struct vfio_pci *v)
{
    char *bdfs[VFIO_PCI_MAX_FNS];
    for (unsigned i = 0; i < v->nr_fns; i++)
        bdfs[i] = v->fns[i]->dev.bdf;
    struct host_bind_opts bo = { 0 };
    int r = host_bind(&v->hc, &bo, bdfs, (int)v->nr_fns);
    if (r < 0) {
        log_err(COMP, "--bind: binding to vfio-pci failed (see above); nothing was changed");
        return r;
    }
    for (unsigned i = 0; i < v->nr_fns; i++)
        v->bound[v->nr_bound++] = v->fns[i]->dev.bdf;
    return 0;
}

static void unbind_functions(struct vfio_pci *v)
{
    if (!v->nr_bound)
        return;
    struct host_bind_opts bo = { 0 };
    if (host_unbind(&v->hc, &bo, v->bound, (int)v->nr_bound) < 0)
        log_warn(COMP, "--bind: restoring the original drivers failed; `minivmm host unbind "
                 "--all` retries");
    v->nr_bound = 0;
}

/* Step 6: reset. Functions that have their own method use it; a slot with
 * any function without one gets one bus reset, which covers them all. */
static void reset_functions(struct vfio_pci *v)
{
    struct vfio_device *all[VFIO_PCI_MAX_FNS];
    for (unsigned i = 0; i < v->nr_fns; i++)
        all[i] = &v->fns[i]->dev;
    for (unsigned s = 0; s < v->nr_slots; s++) {
        struct vfio_pci_slot *sl = &v->slots[s];
        struct vfio_pci_fn *without = NULL;
        for (unsigned f = 0; f < sl->nr; f++)
            if (!vfio_device_has_reset(&sl->fn[f]->dev))
                without = sl->fn[f];
        if (without) {
            if (vfio_device_reset(&without->dev, all, v->nr_fns) == 0)
                log_info(COMP, "%s: reset (bus reset of its slot)", without->dev.bdf);
            continue;
        }
        for (unsigned f = 0; f < sl->nr; f++)
            vfio_device_reset(&sl->fn[f]->dev, all, v->nr_fns);
    }
}

enum { STEP_COLLECT = 1, STEP_BIND, STEP_CONTAINER, STEP_OPEN, STEP_DMA, STEP_RESET, STEP_BUILD };

int vfio_pci_create(const struct vfio_args *a, const struct vfio_vm *vm,
                    const struct vfio_pci_opts *o, struct vfio_pci **out)
{
    *out = NULL;
    if (!a->nr)
        return 0;
    struct vfio_pci *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    v->vm = *vm;
    v->opts = *o;
    v->hc = (struct host_ctx){ .root = o->sysfs_root ? o->sysfs_root : "", .out = stderr,
                               .err = stderr };
    v->container.fd = -1;
    v->container.kvm_dev_fd = -1;
    v->container.mode = a->iommu;
    int r = collect_functions(v, a);
    if (r < 0) {
        if (r == -ENOSPC)
            log_err(COMP, "more than %d functions or %d slots to pass through", VFIO_PCI_MAX_FNS,
                    VFIO_PCI_MAX_SLOTS);
        goto fail;
    }
    v->steps_done = STEP_COLLECT;
    if (a->bind && (r = bind_functions(v)) < 0)
        goto fail;
    v->steps_done = STEP_BIND;
    if ((r = vfio_container_open(&v->container)) < 0)
        goto fail;
    v->steps_done = STEP_CONTAINER;
    for (unsigned i = 0; i < v->nr_fns; i++) {
        struct vfio_pci_fn *fn = v->fns[i];
        char bdf[HOST_BDF_LEN];
        memcpy(bdf, fn->dev.bdf, sizeof(bdf));
        if ((r = vfio_device_open(&v->container, &v->hc, bdf, &fn->dev)) < 0)
            goto fail;
        fn->dev_open = true;
    }
    v->steps_done = STEP_OPEN;
    if ((r = vfio_container_map_gm(&v->container, vm->gm)) < 0)
        goto fail;
    if (vm->vm_fd >= 0)
        vfio_container_kvm_attach(&v->container, vm->vm_fd);
    v->steps_done = STEP_DMA;
    reset_functions(v);
    v->steps_done = STEP_RESET;
    for (unsigned i = 0; i < v->nr_fns; i++) {
        struct vfio_pci_fn *fn = v->fns[i];
        if ((r = build_fn(v, fn, arg_of(a, fn->dev.bdf), v->slots[fn->slot].nr > 1)) < 0)
            goto fail;
    }
    v->steps_done = STEP_BUILD;
    for (unsigned i = 0; i < v->nr_fns; i++)
        log_info(COMP, "%s: IOMMU group %d, guest slot %u function %u", v->fns[i]->dev.bdf,
                 v->fns[i]->dev.group_id, v->fns[i]->slot, v->fns[i]->guest_fn);
    *out = v;
    return 0;
fail:
    vfio_pci_destroy(v);
    return r;
}

void vfio_pci_destroy(struct vfio_pci *v)
{
    if (!v)
        return;
    /* Functions first (mappings, interrupts, device fds), then the
     * container (DMA maps, groups), then the drivers back. */
    for (unsigned i = 0; i < v->nr_fns; i++)
        free_fn(v, v->fns[i]);
    v->nr_fns = 0;
    if (v->steps_done >= STEP_CONTAINER)
        vfio_container_close(&v->container);
    if (v->steps_done >= STEP_BIND)
        unbind_functions(v);
    free(v);
}

unsigned vfio_pci_nr_slots(const struct vfio_pci *v)
{
    return v ? v->nr_slots : 0;
}

int vfio_pci_plug(struct vfio_pci *v, unsigned slot, struct pci_bus *bus, struct pci_device *parent,
                  uint8_t dev, int (*intx_gsi)(void *ctx, const struct pci_device *d, uint8_t pin),
                  void *ctx)
{
    if (!v || slot >= v->nr_slots || dev > 31)
        return -EINVAL;
    if (v->bus && v->bus != bus)
        return -EINVAL;
    v->bus = bus;
    struct vfio_pci_slot *sl = &v->slots[slot];
    for (unsigned f = 0; f < sl->nr; f++) {
        struct vfio_pci_fn *fn = sl->fn[f];
        int r = pci_bus_add(bus, parent, PCI_DEVFN(dev, fn->guest_fn), &fn->pdev);
        if (r < 0) {
            log_err(COMP, "%s: plugging at %02x.%u: %s", fn->dev.bdf, dev, fn->guest_fn, strerror(-r));
            for (unsigned g = 0; g < f; g++) {
                pci_bus_remove(bus, &sl->fn[g]->pdev);
                sl->fn[g]->plugged = false;
            }
            return r;
        }
        fn->plugged = true;
        uint8_t pin = fn->cfg.emu[PCI_INTERRUPT_PIN];
        int gsi = pin && intx_gsi ? intx_gsi(ctx, &fn->pdev, pin) : -1;
        if (gsi >= 0 && vfio_intx_init(&fn->intx, (unsigned)gsi) == 0) {
            pthread_mutex_lock(&fn->lock);
            fn->intx_ready = true;
            intx_follow(fn);
            pthread_mutex_unlock(&fn->lock);
        } else if (pin) {
            log_warn(COMP, "%s: INTx not connected (no GSI for pin %c); the guest must use "
                     "MSI or MSI-X", fn->dev.bdf, 'A' + pin - 1);
        }
    }
    return 0;
}

int vfio_pci_slot_link(struct vfio_pci *v, unsigned slot, unsigned *speed, unsigned *width)
{
    if (!v || slot >= v->nr_slots)
        return -EINVAL;
    struct vfio_pci_fn *fn = v->slots[slot].fn[0];
    if (!fn->cfg.pcie_cap)
        return -ENOENT;
    uint32_t sta = 0;
    pthread_mutex_lock(&fn->lock);
    int r = vfio_config_read(&fn->cfg, fn->cfg.pcie_cap + PCI_EXP_LNKSTA, 2, &sta);
    pthread_mutex_unlock(&fn->lock);
    /* Link Status: current speed in bits 3:0, negotiated width in 9:4
     * (PCIe 5.0 §7.5.3.8). */
    unsigned cls = sta & 0xF, nlw = (sta >> 4) & 0x3F;
    if (r < 0 || !cls || !nlw)
        return -ENOENT;
    *speed = cls;
    *width = nlw;
    return 0;
}

static void unplug_fn(struct vfio_pci *v, struct vfio_pci_fn *fn)
{
    pthread_mutex_lock(&fn->lock);
    if (fn->intx_ready) {
        vfio_intx_disable(&fn->intx, &fn->dev, v->vm.irq);
        vfio_intx_fini(&fn->intx);
        fn->intx_ready = false;
    }
    pthread_mutex_unlock(&fn->lock);
    if (fn->plugged && v->bus)
        pci_bus_remove(v->bus, &fn->pdev);
    fn->plugged = false;
}

void vfio_pci_unplug_slot(struct vfio_pci *v, unsigned slot)
{
    bool any = false;

    if (!v || slot >= v->nr_slots)
        return;
    for (unsigned f = 0; f < v->slots[slot].nr; f++)
        unplug_fn(v, v->slots[slot].fn[f]);
    for (unsigned i = 0; i < v->nr_fns; i++)
        any |= v->fns[i]->plugged;
    if (!any)
        v->bus = NULL;
}

void vfio_pci_unplug(struct vfio_pci *v)
{
    if (!v)
        return;
    for (unsigned i = 0; i < v->nr_fns; i++)
        unplug_fn(v, v->fns[i]);
    v->bus = NULL;
}

int vfio_pci_reset(struct vfio_pci *v)
{
    if (!v)
        return 0;
    for (unsigned i = 0; i < v->nr_fns; i++) {
        struct vfio_pci_fn *fn = v->fns[i];
        pthread_mutex_lock(&fn->lock);
        if (fn->has_msix)
            pci_msix_reset(&fn->msix);
        pci_msi_off(&fn->msi);
        vfio_intx_disable(&fn->intx, &fn->dev, v->vm.irq);
        vfio_config_reset(&fn->cfg);
        for (unsigned b = 0; b <= VFIO_NR_BARS; b++)
            vfio_bar_update(&fn->map[b], false, 0, &bar_ops, fn);
        pthread_mutex_unlock(&fn->lock);
    }
    reset_functions(v);
    for (unsigned i = 0; i < v->nr_fns; i++) {
        pthread_mutex_lock(&v->fns[i]->lock);
        intx_follow(v->fns[i]);
        pthread_mutex_unlock(&v->fns[i]->lock);
    }
    return 0;
}

struct vfio_pci *vfio_pci_new(const struct vfio_vm *vm, const struct vfio_pci_opts *o)
{
    struct vfio_pci *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->vm = *vm;
    v->opts = *o;
    v->hc = (struct host_ctx){ .root = o->sysfs_root ? o->sysfs_root : "", .out = stderr,
                               .err = stderr };
    v->container.fd = -1;
    v->container.kvm_dev_fd = -1;
    return v;
}

struct vfio_pci_fn *vfio_pci_add_opened(struct vfio_pci *v, const struct vfio_device *dev,
                                        const struct vfio_dev_arg *arg)
{
    if (v->nr_fns == VFIO_PCI_MAX_FNS || v->nr_slots == VFIO_PCI_MAX_SLOTS)
        return NULL;
    struct vfio_pci_fn *fn = new_fn(v, dev->bdf);
    if (!fn)
        return NULL;
    fn->dev = *dev;
    fn->dev_open = true;
    v->fns[v->nr_fns++] = fn;
    struct vfio_pci_slot *sl = &v->slots[v->nr_slots];
    fn->slot = v->nr_slots++;
    fn->guest_fn = 0;
    sl->fn[sl->nr++] = fn;
    return build_fn(v, fn, arg, false) < 0 ? NULL : fn;
}

int vfio_pci_ram_add(struct vfio_pci *v, uint64_t gpa, uint64_t size, void *hva)
{
    return v ? vfio_container_dma_map(&v->container, gpa, size, hva) : 0;
}

int vfio_pci_ram_remove(struct vfio_pci *v, uint64_t gpa, uint64_t size)
{
    return v ? vfio_container_dma_unmap(&v->container, gpa, size) : 0;
}

/* ---- the guest slots in the machine's PCI list ---- */

static int slot_pcidev_plug(void *dev, const struct pcidev_where *w)
{
    struct vfio_pci_slot *sl = dev;
    return vfio_pci_plug(sl->owner, sl->index, w->bus, w->parent, PCI_SLOT(w->devfn),
                         w->intx_gsi, w->intx_ctx);
}

static void slot_pcidev_unplug(void *dev)
{
    struct vfio_pci_slot *sl = dev;
    vfio_pci_unplug_slot(sl->owner, sl->index);
}

static int slot_pcidev_reset(void *dev)
{
    struct vfio_pci_slot *sl = dev;
    return vfio_pci_reset(sl->owner);
}

static void slot_pcidev_destroy(void *dev)
{
    struct vfio_pci_slot *sl = dev;
    vfio_pci_destroy(sl->owner);
}

static int slot_pcidev_link(void *dev, unsigned *speed, unsigned *width)
{
    struct vfio_pci_slot *sl = dev;
    return vfio_pci_slot_link(sl->owner, sl->index, speed, width);
}

/* The first slot's entry resets and destroys the whole set. */
static const struct pcidev_ops slot0_pcidev_ops = {
    .plug = slot_pcidev_plug, .unplug = slot_pcidev_unplug, .reset = slot_pcidev_reset,
    .destroy = slot_pcidev_destroy, .link = slot_pcidev_link,
};
static const struct pcidev_ops slot_pcidev_ops = {
    .plug = slot_pcidev_plug, .unplug = slot_pcidev_unplug, .link = slot_pcidev_link,
};

int vfio_pci_attach(const struct pcidev_host *h, const struct vfio_args *a,
                    struct pcidev_list *l)
{
    struct vfio_vm vv = {
        .vm_fd = h->vm_fd, .pio = h->env->pio, .mmio = h->env->mmio, .gm = h->env->gm,
        .irq = h->irq, .slots = h->slots,
    };
    struct vfio_pci_opts o = { .behind_root_port = true };
    struct vfio_pci *v;
    int err;

    if (!a->nr)
        return 0;
    err = vfio_pci_create(a, &vv, &o, &v);
    if (err)
        return err;
    for (unsigned i = 0; i < v->nr_slots; i++) {
        struct vfio_pci_slot *sl = &v->slots[i];
        char name[32];
        sl->owner = v;
        sl->index = i;
        snprintf(name, sizeof(name), "vfio %s", sl->fn[0]->dev.bdf);
        err = pcidev_add(l, name, PCIDEV_PASSTHROUGH, PCIDEV_ROOT_PORT,
                         i == 0 ? &slot0_pcidev_ops : &slot_pcidev_ops, sl, NULL);
        if (err) {
            if (i == 0)
                vfio_pci_destroy(v);   /* else the first entry destroys it */
            return err;
        }
    }
    return 0;
}
