/* Moving PCI devices to vfio-pci and back: the library part of
 * `minivmm host bind` / `unbind`, which vfio/vfio_pci.c also calls for
 * minivmm --vfio-bind. How it is done and what is refused: host/bind.c.
 *
 * Offers host_bind and host_unbind over a struct host_ctx (host/sysfs.h): a
 * root prefix for every path, the streams for what is done and what went
 * wrong, and the test hook that plays the kernel's part over a fake tree. */
#ifndef MINIVMM_HOST_BIND_H
#define MINIVMM_HOST_BIND_H
#include <stdbool.h>

#include "host/sysfs.h"

struct host_bind_opts {
    bool only;      /* just the named devices, not their group/slot */
    bool force;     /* take the console GPU / devices outside the slot too */
    bool dry_run;   /* say what would be written, write nothing */
    bool all;       /* unbind: every device minivmm bound (state files) */
};
/* 0 when every device ended where asked; -errno otherwise (after undoing
 * what this call did, for bind). Messages go to c->out / c->err. */
int host_bind(const struct host_ctx *c, const struct host_bind_opts *o, char **bdfs, int n);
int host_unbind(const struct host_ctx *c, const struct host_bind_opts *o, char **bdfs, int n);
/* Where bind remembers a device's original driver (under the root). */
#define HOST_BIND_STATE_DIR "/run/minivmm/host-bind"

#endif
