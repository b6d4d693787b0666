/* Interrupt routing (vmm/irq.h).
 *
 * The routing table is kept whole in minivmm and sent to KVM whole:
 * KVM_SET_GSI_ROUTING replaces the entire table each time (KVM API
 * documentation, 4.52), so adding an MSI route means resending the legacy
 * ones too. Entries stay sorted by GSI so a change finds its entry by binary
 * search. */
#include "vmm/irq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "vmm/log.h"

#define IRQ_DEFAULT_MAX_ROUTES 4096   /* KVM_MAX_IRQ_ROUTES */

static bool gsi_used(const struct irq_table *t, unsigned gsi)
{
    return t->used[gsi / 64] & (1ULL << (gsi % 64));
}

static void gsi_mark(struct irq_table *t, unsigned gsi, bool on)
{
    if (on)
        t->used[gsi / 64] |= 1ULL << (gsi % 64);
    else
        t->used[gsi / 64] &= ~(1ULL << (gsi % 64));
}

/* Index of the first entry with GSI >= gsi. */
static unsigned lower_bound(const struct irq_table *t, unsigned gsi)
{
    unsigned lo = 0, hi = t->nr;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (t->e[mid].gsi < gsi)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int add_entry(struct irq_table *t, const struct kvm_irq_routing_entry *ent)
{
    unsigned i;

    if (t->nr >= t->max_routes)
        return -ENOSPC;
    if (t->nr == t->cap) {
        unsigned cap = t->cap ? t->cap * 2 : 64;
        if (cap > t->max_routes)
            cap = t->max_routes;
        struct kvm_irq_routing_entry *n = realloc(t->e, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        t->e = n;
        t->cap = cap;
    }
    /* After any entries of the same GSI (a legacy GSI has two). */
    i = lower_bound(t, ent->gsi + 1);
    memmove(&t->e[i + 1], &t->e[i], (t->nr - i) * sizeof(*t->e));
    t->e[i] = *ent;
    t->nr++;
    gsi_mark(t, ent->gsi, true);
    t->dirty = true;
    return 0;
}

static int add_irqchip(struct irq_table *t, unsigned gsi, unsigned chip, unsigned pin)
{
    struct kvm_irq_routing_entry ent = {
        .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
        .u.irqchip = { .irqchip = chip, .pin = pin },
    };
    return add_entry(t, &ent);
}

int irq_table_init(struct irq_table *t, int vm_fd, unsigned max_routes)
{
    int err;

    memset(t, 0, sizeof(*t));
    t->vm_fd = vm_fd;
    t->max_routes = max_routes ? max_routes : IRQ_DEFAULT_MAX_ROUTES;
    err = pthread_mutex_init(&t->lock, NULL);
    if (err)
        return -err;
    for (unsigned gsi = 0; gsi < IRQ_NR_LEGACY_GSI; gsi++) {
        if (gsi == 2)
            continue;   /* the cascade */
        if (gsi < 16) {
            err = add_irqchip(t, gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
            if (err)
                goto fail;
        }
        err = add_irqchip(t, gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi);
        if (err)
            goto fail;
    }
    gsi_mark(t, 2, true);   /* reserved, never handed out */
    return 0;
fail:
    irq_table_fini(t);
    return err;
}

void irq_table_fini(struct irq_table *t)
{
    free(t->e);
    t->e = NULL;
    t->nr = t->cap = 0;
    pthread_mutex_destroy(&t->lock);
}

int irq_route_add_msi(struct irq_table *t, uint64_t addr, uint32_t data)
{
    int ret = -ENOSPC;

    pthread_mutex_lock(&t->lock);
    for (unsigned gsi = IRQ_FIRST_MSI_GSI; gsi < IRQ_MAX_GSI; gsi++) {
        if (gsi_used(t, gsi))
            continue;
        struct kvm_irq_routing_entry ent = {
            .gsi = gsi, .type = KVM_IRQ_ROUTING_MSI,
            .u.msi = { .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data },
        };
        ret = add_entry(t, &ent);
        if (ret == 0)
            ret = (int)gsi;
        break;
    }
    pthread_mutex_unlock(&t->lock);
    if (ret == -ENOSPC)
        log_err("irq", "no GSI left for another MSI route (%u routes in use)", t->nr);
    return ret;
}

static struct kvm_irq_routing_entry *find_msi(struct irq_table *t, unsigned gsi)
{
    unsigned i = lower_bound(t, gsi);
    if (i < t->nr && t->e[i].gsi == gsi && t->e[i].type == KVM_IRQ_ROUTING_MSI)
        return &t->e[i];
    return NULL;
}

int irq_route_update_msi(struct irq_table *t, unsigned gsi, uint64_t addr, uint32_t data)
{
    int ret = -ENOENT;

    pthread_mutex_lock(&t->lock);
    struct kvm_irq_routing_entry *e = find_msi(t, gsi);
    if (e) {
        if (e->u.msi.address_lo != (uint32_t)addr || e->u.msi.address_hi != (uint32_t)(addr >> 32) ||
            e->u.msi.data != data) {
            e->u.msi.address_lo = (uint32_t)addr;
            e->u.msi.address_hi = (uint32_t)(addr >> 32);
            e->u.msi.data = data;
            t->dirty = true;
        }
        ret = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return ret;
}

int irq_route_remove(struct irq_table *t, unsigned gsi)
{
    int ret = -ENOENT;

    if (gsi < IRQ_FIRST_MSI_GSI)
        return -EINVAL;
    pthread_mutex_lock(&t->lock);
    struct kvm_irq_routing_entry *e = find_msi(t, gsi);
    if (e) {
        unsigned i = (unsigned)(e - t->e);
        memmove(&t->e[i], &t->e[i + 1], (t->nr - i - 1) * sizeof(*t->e));
        t->nr--;
        gsi_mark(t, gsi, false);
        t->dirty = true;
        ret = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return ret;
}

int irq_commit(struct irq_table *t)
{
    int ret = 0;

    pthread_mutex_lock(&t->lock);
    if (t->dirty && t->vm_fd >= 0) {
        struct kvm_irq_routing *r = malloc(sizeof(*r) + t->nr * sizeof(r->entries[0]));
        if (!r) {
            ret = -ENOMEM;
        } else {
            memset(r, 0, sizeof(*r));
            r->nr = t->nr;
            memcpy(r->entries, t->e, t->nr * sizeof(r->entries[0]));
            if (ioctl(t->vm_fd, KVM_SET_GSI_ROUTING, r) < 0) {
                ret = -errno;
                log_err("irq", "KVM_SET_GSI_ROUTING with %u routes: %s", t->nr, strerror(errno));
            }
            free(r);
        }
    }
    if (ret == 0)
        t->dirty = false;
    pthread_mutex_unlock(&t->lock);
    return ret;
}

int irq_line(struct irq_table *t, unsigned gsi, int level)
{
    struct kvm_irq_level l = { .irq = gsi, .level = level ? 1 : 0 };

    if (gsi >= IRQ_MAX_GSI)
        return -EINVAL;
    if (t->vm_fd < 0)
        return -EBADF;
    if (ioctl(t->vm_fd, KVM_IRQ_LINE, &l) < 0) {
        int err = -errno;
        log_guest_once("irq", "KVM_IRQ_LINE for GSI %u: %s", gsi, strerror(-err));
        return err;
    }
    return 0;
}

int irqfd_assign(struct irq_table *t, int fd, unsigned gsi, int resample_fd)
{
    struct kvm_irqfd f = { .fd = (uint32_t)fd, .gsi = gsi };

    if (fd < 0 || gsi >= IRQ_MAX_GSI)
        return -EINVAL;
    if (resample_fd >= 0) {
        f.flags = KVM_IRQFD_FLAG_RESAMPLE;
        f.resamplefd = (uint32_t)resample_fd;
    }
    if (t->vm_fd < 0)
        return -EBADF;
    if (ioctl(t->vm_fd, KVM_IRQFD, &f) < 0) {
        int err = -errno;
        log_err("irq", "KVM_IRQFD binding fd %d to GSI %u%s: %s", fd, gsi,
                resample_fd >= 0 ? " with resampling" : "", strerror(-err));
        return err;
    }
    return 0;
}

int irqfd_deassign(struct irq_table *t, int fd, unsigned gsi)
{
    struct kvm_irqfd f = { .fd = (uint32_t)fd, .gsi = gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN };

    if (t->vm_fd < 0)
        return -EBADF;
    if (ioctl(t->vm_fd, KVM_IRQFD, &f) < 0) {
        int err = -errno;
        log_err("irq", "KVM_IRQFD releasing fd %d from GSI %u: %s", fd, gsi, strerror(-err));
        return err;
    }
    return 0;
}

int irq_msi_vector_route(struct irq_table *t, int vm_fd, int fd, int *gsi, bool *attached,
                         uint64_t addr, uint32_t data)
{
    int r;

    if (*gsi < 0) {
        r = irq_route_add_msi(t, addr, data);
        if (r < 0)
            return r;
        *gsi = r;
    } else {
        r = irq_route_update_msi(t, (unsigned)*gsi, addr, data);
        if (r < 0)
            return r;
    }
    r = irq_commit(t);
    if (r < 0)
        return r;
    if (!*attached) {
        /* Without a VM (unit tests) the table is all there is. */
        if (vm_fd >= 0) {
            r = irqfd_assign(t, fd, (unsigned)*gsi, -1);
            if (r < 0)
                return r;
        }
        *attached = true;
    }
    return 0;
}

void irq_msi_vector_unroute(struct irq_table *t, int vm_fd, int fd, int gsi, bool *attached)
{
    if (!*attached)
        return;
    if (vm_fd >= 0)
        irqfd_deassign(t, fd, (unsigned)gsi);
    *attached = false;
}
