/* `minivmm host`: is this host ready to pass a GPU through, and making it so.
 *
 *   minivmm host groups [--json]
 *   minivmm host check [--gpu BDF] [--memory SIZE] [--hugepages 2M|1G]
 *                      [--cpu-pin V=H,...] [--emulator-pin CPU] [--io-pin CPU] [--json]
 *   minivmm host bind [--only] [--force] [--dry-run] BDF...
 *   minivmm host unbind [--only] [--dry-run] (BDF... | --all)
 *   minivmm host topology [--cpus N] [--gpu BDF] [--json]
 *
 * Only bind and unbind change the host. Paths are read under the root prefix
 * in the environment variable MINIVMM_SYSFS_ROOT (default: none). */
#ifndef MINIVMM_VFIO_HOST_H
#define MINIVMM_VFIO_HOST_H
#include <stdbool.h>
#include <stdint.h>

#include "host/host_sysfs.h"

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

#define HOST_MAX_PINS 64

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

/* --- host bind / unbind */
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

/* --- host topology */
struct host_core {
    int package, node;
    int nr;                 /* threads */
    int cpu[8];             /* sorted */
    bool isolated;          /* every thread in the isolated list */
};

struct host_cache {
    int level;
    char type[16];          /* Data, Instruction, Unified */
    char size[16];          /* "32K" */
    struct cpuset shared;
};

struct host_topology {
    struct cpuset online, isolated, nohz_full;
    bool have_isolated, have_nohz_full;
    int nr_nodes;           /* 0 = no NUMA information */
    struct cpuset node_cpus[HOST_MAX_NODES];
    struct host_core *core;
    size_t nr_cores;
    struct host_cache *cache;
    size_t nr_caches;
    int max_threads;        /* SMT width */
    bool have_topology;     /* cpuN/topology was readable */
};

int host_topology_read(const struct host_ctx *c, struct host_topology *t);
void host_topology_free(struct host_topology *t);
int host_cpu_node(const struct host_topology *t, int cpu);   /* -1 unknown */

struct host_pin_plan {
    int nr_vcpus;
    int vcpu[HOST_MAX_PINS];    /* host CPU of each vCPU */
    int emulator, io;           /* -1 when no CPU is left for them */
    int node;                   /* node the plan lives on, -1 unknown */
    int threads;                /* vCPUs per core in the plan (for --smp) */
    bool whole_cores;           /* every vCPU core given whole */
    struct sbuf notes;          /* what to know about the plan */
};
/* A pinning for n vCPUs: whole cores (siblings together); cores on
 * prefer_node (the GPU's) first, then isolated before not isolated, then by
 * node, CPU 0's core last; then the next core for the emulator/IO threads.
 * -ENOSPC when n exceeds the online CPUs. */
int host_topology_suggest(const struct host_topology *t, int n, int prefer_node, struct host_pin_plan *plan);
void host_pin_plan_free(struct host_pin_plan *plan);
/* "--cpu-pin 0=2,1=3 --emulator-pin 4 --io-pin 5" */
void host_pin_plan_format(const struct host_pin_plan *plan, struct sbuf *sb);

/* "0=2,1=3" -> pins; -EINVAL with nothing set on garbage. */
int host_parse_pins(const char *s, int pins[HOST_MAX_PINS], int *nr);
/* "8G", "512M", "1024K", "4096" (bytes) -> bytes. */
int host_parse_size(const char *s, uint64_t *out);

#endif
