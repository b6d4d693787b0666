/* The front end: argv into a struct config (vmm/config.h). The layer above
 * the devices and the core: it calls down into each device's own option
 * parser (devices/block/disk_args.h, virtio_net_args.h,
 * vfio/vfio_args.h) and the shared helpers of vmm/arg.h; nothing below it
 * includes this. The QEMU command line and libvirt XML front ends of a
 * later issue belong here too. */
#ifndef MINIVMM_FRONTEND_CLI_H
#define MINIVMM_FRONTEND_CLI_H

#include "vmm/config.h"

/* Parse argv (argv[0] is the program) into cfg with defaults filled in.
 * On bad input returns -EINVAL with a message naming the flag, the value and
 * what to do in err. Returns 1 (not an error) when --help was asked. */
int config_parse(int argc, char **argv, struct config *cfg, char *err, unsigned errlen);
/* The --help text (built on first use; not thread-safe). */
const char *config_usage(void);

#endif
