/* `minivmm host`: is this host ready to pass a GPU through, and making it so.
 * The command line tool only; the host model it reads and changes is the
 * library in host/sysfs.h, host/bind.h and host/topology.h.
 *
 *   minivmm host groups [--json]
 *   minivmm host check [--gpu BDF] [--memory SIZE] [--hugepages 2M|1G]
 *                      [--cpu-pin V=H,...] [--emulator-pin CPU] [--io-pin CPU] [--json]
 *   minivmm host bind [--only] [--force] [--dry-run] BDF...
 *   minivmm host unbind [--only] [--dry-run] (BDF... | --all)
 *   minivmm host topology [--cpus N] [--gpu BDF] [--json]
 *
 * Only bind and unbind change the host. Paths are read under the root prefix
 * in the environment variable MINIVMM_SYSFS_ROOT (default: none).
 * host/cli.c parses the options and prints (text, --json); host/check.c
 * makes check's report. Sizes (--memory, --hugepages) are minivmm's own
 * syntax, vmm/arg.h's arg_parse_size: "--memory 4096" is 4 GiB here too. */
#ifndef MINIVMM_HOST_CLI_H
#define MINIVMM_HOST_CLI_H
#include <stdbool.h>
#include <stdint.h>

#include "host/bind.h"
#include "host/sysfs.h"
#include "host/topology.h"

/* Entry from frontend/main.c when argv[1] is "host": argv[0] is "host".
 * Returns the process exit code: 0 ok, 1 the check failed / the action did
 * not complete, 2 bad usage. */
int host_main(int argc, char **argv);

/* The same with an explicit context (root prefix, output streams, test hook). */
int host_run(const struct host_ctx *c, int argc, char **argv);

/* --- host check */
enum host_level { HOST_OK, HOST_WARN, HOST_FAIL };

struct host_finding {
    enum host_level level;
    char *topic;        /* "iommu", "interrupt-remapping", "gpu-group", ... */
    char *message;      /* what was found */
    char *fix;          /* what to do ("" when nothing) */
};

struct host_report {
    struct host_finding *f;
    size_t n, cap;
    unsigned nr[3];     /* per level */
};

struct host_check_opts {
    const char *gpu;            /* BDF or NULL */
    uint64_t memory;            /* bytes the VM will have; 0 = not given */
    uint64_t hugepage_size;     /* 2M or 1G; 0 = not asked */
    int nr_pins;                /* entries in cpu_pin (vCPU i -> host CPU) */
    int cpu_pin[HOST_MAX_PINS]; /* -1 = not pinned */
    int emulator_pin, io_pin;   /* -1 = not given */
};

/* Runs every check; fills rep. Returns 0 (rep tells the verdict) or -errno
 * when it could not run (no memory). */
int host_check(const struct host_ctx *c, const struct host_check_opts *o, struct host_report *rep);
void host_report_free(struct host_report *rep);
const char *host_level_name(enum host_level l);

/* "0=2,1=3" -> pins; -EINVAL with nothing set on garbage. */
int host_parse_pins(const char *s, int pins[HOST_MAX_PINS], int *nr);

#endif
