/* INTx through a resampling irqfd: the path is in vfio/intx.h. */
#include "vfio/intx.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vfio/device.h"
#include "vmm/irq.h"
#include "vmm/log.h"

#define COMP "vfio"

int vfio_intx_init(struct vfio_intx *x, unsigned gsi)
{
    memset(x, 0, sizeof(*x));
    x->gsi = gsi;
    x->trigger_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    x->resample_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (x->trigger_fd < 0 || x->resample_fd < 0) {
        int e = errno;
        vfio_intx_fini(x);
        return -e;
    }
    return 0;
}

void vfio_intx_fini(struct vfio_intx *x)
{
    if (x->trigger_fd >= 0)
        close(x->trigger_fd);
    if (x->resample_fd >= 0)
        close(x->resample_fd);
    x->trigger_fd = x->resample_fd = -1;
}

int vfio_intx_enable(struct vfio_intx *x, struct vfio_device *d, struct irq_table *irq)
{
    if (x->on)
        return 0;
    /* Counts left from before (MSI in between, a reset) are stale. */
    uint64_t n;
    if (read(x->trigger_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_debug(COMP, "%s: draining the INTx eventfd: %s", d->bdf, strerror(errno));
    if (read(x->resample_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_debug(COMP, "%s: draining the INTx resample eventfd: %s", d->bdf, strerror(errno));
    int32_t fd = x->trigger_fd;
    /* Device side first: vfio-pci masks INTx at each interrupt and signals
     * the trigger eventfd (VFIO_IRQ_INFO_AUTOMASKED). */
    int r = vfio_device_set_irqs(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, &fd);
    if (r < 0) {
        log_err(COMP, "%s: enabling INTx: %s", d->bdf, strerror(-r));
        return r;
    }
    r = irqfd_assign(irq, x->trigger_fd, x->gsi, x->resample_fd);
    if (r < 0) {
        log_err(COMP, "%s: KVM irqfd for INTx on GSI %u: %s", d->bdf, x->gsi, strerror(-r));
        goto off;
    }
    fd = x->resample_fd;
    r = vfio_device_set_irqs(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, &fd);
    if (r < 0) {
        log_err(COMP, "%s: INTx unmask eventfd: %s", d->bdf, strerror(-r));
        irqfd_deassign(irq, x->trigger_fd, x->gsi);
        goto off;
    }
    /* An interrupt that came before the resample path existed left INTx
     * masked: unmask once. */
    vfio_device_set_irqs(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, NULL);
    x->on = true;
    return 0;
off:
    vfio_device_set_irqs(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL);
    return r;
}

void vfio_intx_disable(struct vfio_intx *x, struct vfio_device *d, struct irq_table *irq)
{
    if (!x->on)
        return;
    irqfd_deassign(irq, x->trigger_fd, x->gsi);
    /* KVM lowers the resampled line when its last irqfd goes. */
    vfio_device_set_irqs(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL);
    x->on = false;
}
