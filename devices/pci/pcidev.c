/* The machine's list of PCI devices (devices/pci/pcidev.h). */
#include "devices/pci/pcidev.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/log.h"

int pcidev_add(struct pcidev_list *l, const char *name, enum pcidev_kind kind,
               enum pcidev_place place, const struct pcidev_ops *ops, void *opaque,
               struct pcidev **out)
{
    if (!ops || !ops->plug || !ops->unplug) {
        log_err("pci", "%s: a PCI device needs plug and unplug", name);
        return -EINVAL;
    }
    if (l->nr >= PCIDEV_MAX) {
        log_err("pci", "%s: more than %d PCI devices; pass fewer --disk/--net/--device flags",
                name, PCIDEV_MAX);
        return -E2BIG;
    }
    struct pcidev *d = &l->dev[l->nr++];
    *d = (struct pcidev){ .ops = ops, .opaque = opaque, .kind = kind, .place = place,
                          .boot_index = PCIDEV_NO_BOOT };
    snprintf(d->name, sizeof(d->name), "%s", name);
    if (out)
        *out = d;
    return 0;
}

void pcidev_list_unplug(struct pcidev_list *l)
{
    for (unsigned i = l->nr; i--;) {
        struct pcidev *d = &l->dev[i];
        if (d->plugged)
            d->ops->unplug(d->opaque);
        d->plugged = false;
        d->where = (struct pcidev_where){ 0 };
    }
}

int pcidev_list_reset(struct pcidev_list *l)
{
    int first = 0;

    for (unsigned i = 0; i < l->nr; i++) {
        struct pcidev *d = &l->dev[i];
        int err = d->ops->reset ? d->ops->reset(d->opaque) : 0;
        if (err && !first)
            first = err;
    }
    return first;
}

void pcidev_list_destroy(struct pcidev_list *l)
{
    pcidev_list_unplug(l);
    for (unsigned i = l->nr; i--;) {
        struct pcidev *d = &l->dev[i];
        if (d->ops->destroy)
            d->ops->destroy(d->opaque);
    }
    memset(l, 0, sizeof(*l));
}
