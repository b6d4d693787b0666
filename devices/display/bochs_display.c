/* bochs-display: see devices/display/bochs_display.h for the register map,
 * the mode rules and their sources.
 *
 * Locking: d->lock guards the DISPI registers, the byte order and the
 * scanout mode (vCPU threads write registers; a display server reads the
 * mode). The BARs' slot and MMIO range change only under the PCI bus lock
 * (bar_map) or with the vCPUs stopped (unplug). */
#include "devices/display/bochs_display.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/pci/pci.h"
#include "vmm/bus.h"
#include "vmm/dev_env.h"
#include "vmm/log.h"
#include "vmm/memslot.h"

#define COMP "bochs-display"
#define CAP_EXP_AT 0x80

struct bochs_display {
    char name[32];
    struct bochs_display_vm vm;
    struct pci_device pdev;
    struct pci_bus *bus;
    bool plugged;

    uint8_t *fb;                    /* BAR0's memory */
    uint64_t fb_size;
    int fb_slot;                    /* KVM slot mapping it, -1 */
    uint64_t mmio_addr;             /* where BAR2 is registered, PCI_BAR_UNMAPPED */

    pthread_mutex_t lock;
    uint16_t regs[VBE_DISPI_INDEX_NB];
    bool big_endian;
    struct bochs_display_scanout mode;
    _Atomic uint64_t generation;
};

/* ---- the mode ---- */

static unsigned bpp_bytes(uint16_t bpp)
{
    switch (bpp) {
    case 8: return 1;
    case 15: case 16: return 2;
    case 24: return 3;
    case 32: return 4;
    default: return 0;
    }
}

/* The mode of one snapshot of the registers; -EINVAL (with why) if it
 * breaks a rule of the header. */
static int mode_of(const uint16_t *r, uint64_t fb_size, struct bochs_display_scanout *m,
                   uint64_t *offset, const char **why)
{
    unsigned bytes = bpp_bytes(r[VBE_DISPI_INDEX_BPP]);
    uint64_t w = r[VBE_DISPI_INDEX_XRES], h = r[VBE_DISPI_INDEX_YRES];
    uint64_t vw = r[VBE_DISPI_INDEX_VIRT_WIDTH], vh = r[VBE_DISPI_INDEX_VIRT_HEIGHT];

    if (!bytes) {
        *why = "bits per pixel not 8, 15, 16, 24 or 32";
        return -EINVAL;
    }
    if (!w || !h || w > VBE_DISPI_MAX_XRES || h > VBE_DISPI_MAX_YRES) {
        *why = "resolution outside 1x1 to 16000x12000";
        return -EINVAL;
    }
    if (vw < w)
        vw = w;
    if (vh < h)
        vh = h;
    uint64_t stride = vw * bytes;
    uint64_t off = r[VBE_DISPI_INDEX_X_OFFSET] * (uint64_t)bytes +
                   r[VBE_DISPI_INDEX_Y_OFFSET] * stride;
    if (off + h * stride > fb_size || vh * stride > fb_size) {
        *why = "does not fit the framebuffer BAR";
        return -EINVAL;
    }
    *m = (struct bochs_display_scanout){
        .enabled = true, .width = (uint32_t)w, .height = (uint32_t)h,
        .stride = (uint32_t)stride, .bpp = r[VBE_DISPI_INDEX_BPP],
    };
    *offset = off;
    return 0;
}

/* After a register write (lock held): evaluate the mode once. */
static void mode_update_locked(struct bochs_display *d, bool was_enabled)
{
    struct bochs_display_scanout m = { 0 };
    uint16_t *r = d->regs;
    uint64_t off = 0;

    if (r[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_ENABLED) {
        const char *why = "";
        if (mode_of(r, d->fb_size, &m, &off, &why)) {
            log_guest_once(COMP, "%s: mode %ux%u, %u bpp, virtual %ux%u, offset %u,%u refused: "
                           "%s (%" PRIu64 " KiB); display disabled", d->name,
                           r[VBE_DISPI_INDEX_XRES], r[VBE_DISPI_INDEX_YRES],
                           r[VBE_DISPI_INDEX_BPP], r[VBE_DISPI_INDEX_VIRT_WIDTH],
                           r[VBE_DISPI_INDEX_VIRT_HEIGHT], r[VBE_DISPI_INDEX_X_OFFSET],
                           r[VBE_DISPI_INDEX_Y_OFFSET], why, d->fb_size >> 10);
            r[VBE_DISPI_INDEX_ENABLE] &= (uint16_t)~VBE_DISPI_ENABLED;
            m = (struct bochs_display_scanout){ 0 };
        } else {
            m.fb = d->fb + off;
            /* QEMU's stdvga (vga.c vbe_ioport_write_data) clears the
             * picture on enabling unless NOCLEARMEM */
            if (!was_enabled && !(r[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_NOCLEARMEM))
                memset(m.fb, 0, (size_t)m.stride * m.height);
        }
    }
    m.big_endian = d->big_endian;
    const struct bochs_display_scanout *o = &d->mode;
    if (m.enabled != o->enabled || m.width != o->width || m.height != o->height ||
        m.stride != o->stride || m.bpp != o->bpp || m.fb != o->fb ||
        m.big_endian != o->big_endian) {
        m.generation = atomic_fetch_add(&d->generation, 1) + 1;
        d->mode = m;
    }
}

static void dispi_write_locked(struct bochs_display *d, unsigned idx, uint16_t v)
{
    bool was = d->regs[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_ENABLED;

    switch (idx) {
    case VBE_DISPI_INDEX_ID:                /* bochs-display: always ID5 */
    case VBE_DISPI_INDEX_VIDEO_MEMORY_64K:  /* read-only */
        return;
    default:
        if (idx >= VBE_DISPI_INDEX_NB)
            return;
        d->regs[idx] = v;
        mode_update_locked(d, was);
    }
}

static uint16_t dispi_read_locked(const struct bochs_display *d, unsigned idx)
{
    switch (idx) {
    case VBE_DISPI_INDEX_ID:
        return VBE_DISPI_ID5;
    case VBE_DISPI_INDEX_VIDEO_MEMORY_64K:
        return (uint16_t)(d->fb_size >> 16);
    default:
        return idx < VBE_DISPI_INDEX_NB ? d->regs[idx] : 0;
    }
}

static uint32_t qext_read_locked(const struct bochs_display *d, unsigned reg)
{
    if (reg == BOCHS_QEXT_REG_SIZE)
        return BOCHS_QEXT_SIZE;
    if (reg == BOCHS_QEXT_REG_BYTEORDER)
        return d->big_endian ? BOCHS_QEXT_BIG_ENDIAN : BOCHS_QEXT_LITTLE_ENDIAN;
    return 0;
}

static void qext_write_locked(struct bochs_display *d, unsigned reg, uint32_t v)
{
    if (reg != BOCHS_QEXT_REG_BYTEORDER)
        return;
    if (v == BOCHS_QEXT_BIG_ENDIAN)
        d->big_endian = true;
    else if (v == BOCHS_QEXT_LITTLE_ENDIAN)
        d->big_endian = false;
    else
        return;
    bool was = d->regs[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_ENABLED;
    mode_update_locked(d, was);
}

/* ---- BAR2 ---- */

/* One byte of BAR2 at off (lock held). */
static uint8_t mmio_byte_locked(const struct bochs_display *d, uint64_t off)
{
    if (off >= BOCHS_DISPI_OFF && off < BOCHS_DISPI_OFF + 2 * VBE_DISPI_INDEX_NB)
        return (uint8_t)(dispi_read_locked(d, (unsigned)(off - BOCHS_DISPI_OFF) / 2) >>
                         (8 * (off & 1)));
    if (off >= BOCHS_QEXT_OFF && off < BOCHS_QEXT_OFF + BOCHS_QEXT_SIZE)
        return (uint8_t)(qext_read_locked(d, (unsigned)(off - BOCHS_QEXT_OFF) & ~3u) >>
                         (8 * (off & 3)));
    return 0;       /* EDID (none), VGA ports, holes */
}

int bochs_display_mmio_read(struct bochs_display *d, uint64_t off, void *data, unsigned len)
{
    uint8_t *p = data;

    if (len > 8 || off >= BOCHS_DISPLAY_MMIO_SIZE || len > BOCHS_DISPLAY_MMIO_SIZE - off)
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    for (unsigned i = 0; i < len; i++)
        p[i] = mmio_byte_locked(d, off + i);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

int bochs_display_mmio_write(struct bochs_display *d, uint64_t off, const void *data,
                             unsigned len)
{
    const uint8_t *p = data;

    if (len > 8 || off >= BOCHS_DISPLAY_MMIO_SIZE || len > BOCHS_DISPLAY_MMIO_SIZE - off)
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    /* each register the access touches, its untouched bytes kept */
    for (unsigned i = 0; i < len;) {
        uint64_t a = off + i;
        if (a >= BOCHS_DISPI_OFF && a < BOCHS_DISPI_OFF + 2 * VBE_DISPI_INDEX_NB) {
            unsigned idx = (unsigned)(a - BOCHS_DISPI_OFF) / 2;
            uint16_t v = dispi_read_locked(d, idx);
            for (; i < len && (off + i - BOCHS_DISPI_OFF) / 2 == idx; i++) {
                unsigned sh = 8 * ((off + i) & 1);
                v = (uint16_t)((v & ~(0xFFu << sh)) | (uint32_t)p[i] << sh);
            }
            dispi_write_locked(d, idx, v);
        } else if (a >= BOCHS_QEXT_OFF && a < BOCHS_QEXT_OFF + BOCHS_QEXT_SIZE) {
            unsigned reg = (unsigned)(a - BOCHS_QEXT_OFF) & ~3u;
            uint32_t v = qext_read_locked(d, reg);
            for (; i < len && ((off + i - BOCHS_QEXT_OFF) & ~3ull) == reg &&
                   off + i < BOCHS_QEXT_OFF + BOCHS_QEXT_SIZE; i++) {
                unsigned sh = 8 * ((off + i) & 3);
                v = (v & ~(0xFFu << sh)) | (uint32_t)p[i] << sh;
            }
            qext_write_locked(d, reg, v);
        } else {
            i++;    /* EDID, VGA ports, holes: ignored */
        }
    }
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static int bar2_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    return bochs_display_mmio_read(opaque, off, data, len);
}

static int bar2_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    return bochs_display_mmio_write(opaque, off, data, len);
}

static const struct bus_ops bar2_ops = { .read = bar2_read, .write = bar2_write };

/* ---- PCI ---- */

static void fb_unmap(struct bochs_display *d)
{
    if (d->fb_slot >= 0) {
        memslot_remove(d->vm.slots, d->fb_slot);
        d->fb_slot = -1;
    }
}

static void mmio_unmap(struct bochs_display *d)
{
    if (d->mmio_addr != PCI_BAR_UNMAPPED) {
        bus_unregister(d->vm.env->mmio, d->mmio_addr);
        d->mmio_addr = PCI_BAR_UNMAPPED;
    }
}

static void bochs_bar_map(struct pci_device *pd, unsigned bar, uint64_t addr)
{
    struct bochs_display *d = pd->opaque;

    if (bar == BOCHS_DISPLAY_FB_BAR) {
        fb_unmap(d);
        if (addr == PCI_BAR_UNMAPPED)
            return;
        int s = memslot_add(d->vm.slots, addr, d->fb_size, d->fb, 0);
        if (s < 0) {
            log_guest_once(COMP, "%s: framebuffer BAR0 at 0x%" PRIx64 " cannot be mapped: %s; "
                           "not decoded", d->name, addr, strerror(-s));
            return;
        }
        d->fb_slot = s;
    } else if (bar == BOCHS_DISPLAY_MMIO_BAR) {
        mmio_unmap(d);
        if (addr == PCI_BAR_UNMAPPED)
            return;
        if (bus_register(d->vm.env->mmio, addr, BOCHS_DISPLAY_MMIO_SIZE, d->name, &bar2_ops, d)) {
            log_guest_once(COMP, "%s: BAR2 at 0x%" PRIx64 " overlaps another range; not decoded",
                           d->name, addr);
            return;
        }
        d->mmio_addr = addr;
    }
}

static const struct pci_device_ops bochs_pci_ops = { .bar_map = bochs_bar_map };

static int build_config_space(struct bochs_display *d)
{
    struct pci_device *p = &d->pdev;
    int r = 0;

    pci_device_init(p, d->name, BOCHS_DISPLAY_VENDOR_ID, BOCHS_DISPLAY_DEVICE_ID,
                    BOCHS_DISPLAY_CLASS, BOCHS_DISPLAY_REVISION, PCI_HEADER_TYPE_NORMAL,
                    PCI_CFG_SIZE);
    p->ops = &bochs_pci_ops;
    p->opaque = d;
    pci_cfg_set(p, PCI_SUBSYSTEM_VENDOR_ID, 2, 0x1AF4);
    pci_cfg_set(p, PCI_SUBSYSTEM_ID, 2, 0x1100);
    r |= pci_device_set_bar(p, BOCHS_DISPLAY_FB_BAR, PCI_BAR_MEM32, true, d->fb_size);
    r |= pci_device_set_bar(p, BOCHS_DISPLAY_MMIO_BAR, PCI_BAR_MEM32, false,
                            BOCHS_DISPLAY_MMIO_SIZE);
    return r ? -EINVAL : 0;
}

static void regs_reset(struct bochs_display *d)
{
    pthread_mutex_lock(&d->lock);
    memset(d->regs, 0, sizeof(d->regs));
    d->big_endian = false;
    mode_update_locked(d, false);
    pthread_mutex_unlock(&d->lock);
}

/* ---- life cycle ---- */

void bochs_display_destroy(struct bochs_display *d)
{
    if (!d)
        return;
    bochs_display_unplug(d);
    if (d->fb)
        munmap(d->fb, d->fb_size);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

int bochs_display_create(const struct bochs_display_vm *vm, uint64_t fb_size,
                         struct bochs_display **out)
{
    if (!fb_size)
        fb_size = BOCHS_DISPLAY_FB_SIZE;
    if (fb_size < (64u << 10) || fb_size > (256u << 20) || (fb_size & (fb_size - 1))) {
        log_err(COMP, "framebuffer of %" PRIu64 " bytes: not a power of two from 64 KiB to "
                "256 MiB", fb_size);
        return -EINVAL;
    }
    if (!vm->env || !vm->slots) {
        log_err(COMP, "no VM environment");
        return -EINVAL;
    }
    struct bochs_display *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    snprintf(d->name, sizeof(d->name), "display0");
    d->vm = *vm;
    d->fb_slot = -1;
    d->mmio_addr = PCI_BAR_UNMAPPED;
    d->fb_size = fb_size;
    pthread_mutex_init(&d->lock, NULL);
    /* NORESERVE: a guest that draws little costs little */
    void *fb = mmap(NULL, fb_size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (fb == MAP_FAILED) {
        int err = -errno;
        log_err(COMP, "%s: cannot map a %" PRIu64 " MiB framebuffer: %s", d->name,
                fb_size >> 20, strerror(errno));
        bochs_display_destroy(d);
        return err;
    }
    d->fb = fb;
    int err = build_config_space(d);
    if (err) {
        log_err(COMP, "%s: cannot lay out the PCI config space", d->name);
        bochs_display_destroy(d);
        return err;
    }
    *out = d;
    return 0;
}

int bochs_display_plug(struct bochs_display *d, struct pci_bus *bus, struct pci_device *parent,
                       uint8_t devfn)
{
    struct pci_device *p = &d->pdev;

    if (!pci_cap_find(p, PCI_CAP_ID_EXP)) {
        bool port = parent && parent->is_pcie_port;
        int r = pci_pcie_cap_add(p, CAP_EXP_AT, port ? PCI_EXP_TYPE_ENDPOINT : PCI_EXP_TYPE_RC_END);
        if (r < 0)
            return r;
    }
    int r = pci_bus_add(bus, parent, devfn, p);
    if (r)
        return r;
    d->bus = bus;
    d->plugged = true;
    return 0;
}

void bochs_display_unplug(struct bochs_display *d)
{
    if (!d)
        return;
    if (d->plugged) {
        pci_bus_remove(d->bus, &d->pdev);
        d->plugged = false;
        d->bus = NULL;
    }
    fb_unmap(d);
    mmio_unmap(d);
    regs_reset(d);
    if (build_config_space(d))
        log_err(COMP, "%s: cannot lay out the PCI config space again", d->name);
}

/* ---- scanout ---- */

void bochs_display_scanout(struct bochs_display *d, struct bochs_display_scanout *out)
{
    pthread_mutex_lock(&d->lock);
    *out = d->mode;
    out->generation = atomic_load(&d->generation);
    pthread_mutex_unlock(&d->lock);
}

uint64_t bochs_display_generation(struct bochs_display *d)
{
    return atomic_load(&d->generation);
}

uint8_t *bochs_display_fb(struct bochs_display *d, uint64_t *size)
{
    if (size)
        *size = d->fb_size;
    return d->fb;
}

int bochs_display_fb_slot(const struct bochs_display *d)
{
    return d->fb_slot;
}

struct pci_device *bochs_display_pci(struct bochs_display *d)
{
    return &d->pdev;
}

/* ---- the device in the machine's PCI list ---- */

static int bochs_pcidev_plug(void *dev, const struct pcidev_where *w)
{
    return bochs_display_plug(dev, w->bus, w->parent, w->devfn);
}

static void bochs_pcidev_unplug(void *dev)
{
    bochs_display_unplug(dev);
}

static void bochs_pcidev_destroy(void *dev)
{
    bochs_display_destroy(dev);
}

static const struct pcidev_ops bochs_pcidev_ops = {
    .plug = bochs_pcidev_plug,
    .unplug = bochs_pcidev_unplug,
    .destroy = bochs_pcidev_destroy,
};

int bochs_display_attach(const struct pcidev_host *h, const struct display_args *a,
                         struct pcidev_list *l)
{
    struct bochs_display_vm vm = { .env = h->env, .slots = h->slots };
    struct bochs_display *d;
    struct pcidev *pd;

    if (a->kind != DISPLAY_STD)
        return 0;
    int err = bochs_display_create(&vm, 0, &d);
    if (err)
        return err;
    err = pcidev_add(l, d->name, PCIDEV_DISPLAY, PCIDEV_ROOT_BUS, &bochs_pcidev_ops, d, &pd);
    if (err) {
        bochs_display_destroy(d);
        return err;
    }
    pd->boot_index = PCIDEV_NO_BOOT;
    return 0;
}
