/* The host's CPUs (cores, SMT siblings, caches, NUMA nodes, isolated and
 * nohz_full lists) read from sysfs, and a pinning for a VM's vCPUs on them:
 * the model behind `minivmm host topology` and check's pinning findings.
 * The sources and the pinning rule: host/topology.c. */
#ifndef MINIVMM_HOST_TOPOLOGY_H
#define MINIVMM_HOST_TOPOLOGY_H
#include <stdbool.h>
#include <stddef.h>

#include "host/sysfs.h"

/* vCPUs a pinning is made for (and --cpu-pin entries `host check` takes). */
#define HOST_MAX_PINS 64

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

#endif
