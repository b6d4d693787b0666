/* The host's CPUs as sysfs describes them, and a pinning for a VM's vCPUs.
 *
 * Sources (Linux Documentation/ABI/stable/sysfs-devices-system-cpu,
 * ABI/testing/sysfs-devices-system-cpu, ABI/stable/sysfs-devices-node):
 *   /sys/devices/system/cpu/online, isolated, nohz_full       cpu lists
 *   /sys/devices/system/cpu/cpuN/topology/thread_siblings_list  SMT siblings
 *   /sys/devices/system/cpu/cpuN/topology/physical_package_id
 *   /sys/devices/system/cpu/cpuN/cache/indexK/{level,type,size,shared_cpu_list}
 *   /sys/devices/system/node/nodeN/cpulist
 *
 * The pinning rule (why): a vCPU thread runs best alone on a core, so vCPUs
 * get whole cores and sibling vCPUs share one core the way the guest's
 * topology (--smp threads=2) says they do; the GPU's DMA and interrupts are
 * cheapest from its own NUMA node; CPU 0 carries the host's housekeeping
 * (timers, unbound work) on most systems, so its core goes last; the
 * emulator and I/O threads get a core of their own so they never preempt a
 * vCPU. */
#include "host/topology.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int read_cpulist(const struct host_ctx *c, struct cpuset *set, const char *path)
{
    char buf[4096];
    ssize_t n = hs_read(c, buf, sizeof(buf), "%s", path);
    if (n < 0)
        return (int)n;
    if (!strcmp(buf, "(null)")) {   /* nohz_full when nothing is set */
        memset(set, 0, sizeof(*set));
        return 0;
    }
    return cpulist_parse(buf, set);
}

int host_cpu_node(const struct host_topology *t, int cpu)
{
    for (int n = 0; n < t->nr_nodes; n++)
        if (cpuset_has(&t->node_cpus[n], cpu))
            return n;
    return -1;
}

static void read_nodes(const struct host_ctx *c, struct host_topology *t)
{
    char **names;
    size_t n;
    if (hs_list(c, &names, &n, "/sys/devices/system/node"))
        return;
    for (size_t i = 0; i < n; i++) {
        long id;
        if (strncmp(names[i], "node", 4) || parse_long(names[i] + 4, 0, HOST_MAX_NODES - 1, &id))
            continue;
        char path[64];
        snprintf(path, sizeof(path), "/sys/devices/system/node/%s/cpulist", names[i]);
        if (read_cpulist(c, &t->node_cpus[id], path) == 0 && (int)id + 1 > t->nr_nodes)
            t->nr_nodes = (int)id + 1;
    }
    hs_list_free(names, n);
}

static bool cache_same(const struct host_cache *a, const struct host_cache *b)
{
    return a->level == b->level && !strcmp(a->type, b->type) && !memcmp(&a->shared, &b->shared, sizeof(a->shared));
}

static int read_caches(const struct host_ctx *c, struct host_topology *t, int cpu)
{
    for (int idx = 0; idx < 32; idx++) {
        struct host_cache k = { 0 };
        char buf[64];
        long level;
        if (!hs_is_dir(c, "/sys/devices/system/cpu/cpu%d/cache/index%d", cpu, idx))
            break;
        if (hs_read(c, buf, sizeof(buf), "/sys/devices/system/cpu/cpu%d/cache/index%d/level", cpu, idx) <= 0 ||
            parse_long(buf, 1, 9, &level))
            continue;
        k.level = (int)level;
        if (hs_read(c, k.type, sizeof(k.type), "/sys/devices/system/cpu/cpu%d/cache/index%d/type", cpu, idx) <= 0 ||
            !host_name_ok(k.type))
            snprintf(k.type, sizeof(k.type), "?");
        if (hs_read(c, k.size, sizeof(k.size), "/sys/devices/system/cpu/cpu%d/cache/index%d/size", cpu, idx) <= 0 ||
            !host_name_ok(k.size))
            snprintf(k.size, sizeof(k.size), "?");
        char path[96];
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/cache/index%d/shared_cpu_list", cpu, idx);
        if (read_cpulist(c, &k.shared, path) < 0) {
            memset(&k.shared, 0, sizeof(k.shared));
            cpuset_add(&k.shared, (unsigned)cpu);
        }
        bool dup = false;
        for (size_t i = 0; i < t->nr_caches && !dup; i++)
            dup = cache_same(&t->cache[i], &k);
        if (dup)
            continue;
        struct host_cache *nc = realloc(t->cache, (t->nr_caches + 1) * sizeof(*nc));
        if (!nc)
            return -ENOMEM;
        t->cache = nc;
        t->cache[t->nr_caches++] = k;
    }
    return 0;
}

int host_topology_read(const struct host_ctx *c, struct host_topology *t)
{
    memset(t, 0, sizeof(*t));
    if (read_cpulist(c, &t->online, "/sys/devices/system/cpu/online") < 0 || !cpuset_count(&t->online)) {
        /* No usable online list: every cpuN directory counts. */
        char **names;
        size_t n;
        if (hs_list(c, &names, &n, "/sys/devices/system/cpu") == 0) {
            for (size_t i = 0; i < n; i++) {
                long id;
                if (!strncmp(names[i], "cpu", 3) && parse_long(names[i] + 3, 0, HOST_MAX_CPUS - 1, &id) == 0)
                    cpuset_add(&t->online, (unsigned)id);
            }
            hs_list_free(names, n);
        }
    }
    t->have_isolated = read_cpulist(c, &t->isolated, "/sys/devices/system/cpu/isolated") == 0;
    t->have_nohz_full = read_cpulist(c, &t->nohz_full, "/sys/devices/system/cpu/nohz_full") == 0;
    read_nodes(c, t);

    struct cpuset placed = { 0 };
    for (int cpu = 0; cpu < HOST_MAX_CPUS; cpu++) {
        if (!cpuset_has(&t->online, cpu) || cpuset_has(&placed, cpu))
            continue;
        struct cpuset sib;
        char path[96];
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", cpu);
        if (read_cpulist(c, &sib, path) == 0 && cpuset_has(&sib, cpu))
            t->have_topology = true;
        else {
            memset(&sib, 0, sizeof(sib));
            cpuset_add(&sib, (unsigned)cpu);
        }
        struct host_core core = { .package = -1 };
        for (int s = 0; s < HOST_MAX_CPUS; s++) {
            if (!cpuset_has(&sib, s) || !cpuset_has(&t->online, s) || cpuset_has(&placed, s))
                continue;
            if (core.nr < (int)(sizeof(core.cpu) / sizeof(core.cpu[0])))
                core.cpu[core.nr++] = s;
            cpuset_add(&placed, (unsigned)s);
        }
        char buf[32];
        long pkg;
        if (hs_read(c, buf, sizeof(buf), "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu) > 0 &&
            parse_long(buf, 0, INT_MAX, &pkg) == 0)
            core.package = (int)pkg;
        core.node = host_cpu_node(t, cpu);
        core.isolated = t->have_isolated;
        for (int i = 0; i < core.nr; i++)
            if (!cpuset_has(&t->isolated, core.cpu[i]))
                core.isolated = false;
        struct host_core *nc = realloc(t->core, (t->nr_cores + 1) * sizeof(*nc));
        if (!nc) {
            host_topology_free(t);
            return -ENOMEM;
        }
        t->core = nc;
        t->core[t->nr_cores++] = core;
        if (core.nr > t->max_threads)
            t->max_threads = core.nr;
        for (int i = 0; i < core.nr; i++)
            if (read_caches(c, t, core.cpu[i]) < 0) {
                host_topology_free(t);
                return -ENOMEM;
            }
    }
    return 0;
}

void host_topology_free(struct host_topology *t)
{
    free(t->core);
    free(t->cache);
    memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------ the plan */

struct core_rank {
    size_t idx;
    int preferred, node_rank, not_isolated, has_cpu0, first;
};

static int cmp_rank(const void *a, const void *b)
{
    const struct core_rank *x = a, *y = b;
    if (x->preferred != y->preferred)
        return y->preferred - x->preferred;
    if (x->not_isolated != y->not_isolated)
        return x->not_isolated - y->not_isolated;
    if (x->node_rank != y->node_rank)
        return x->node_rank - y->node_rank;
    if (x->has_cpu0 != y->has_cpu0)
        return x->has_cpu0 - y->has_cpu0;
    return x->first - y->first;
}

int host_topology_suggest(const struct host_topology *t, int n, int prefer_node, struct host_pin_plan *plan)
{
    memset(plan, 0, sizeof(*plan));
    plan->emulator = plan->io = plan->node = -1;
    if (n < 1 || n > HOST_MAX_PINS)
        return -EINVAL;
    if ((unsigned)n > cpuset_count(&t->online) || t->nr_cores == 0)
        return -ENOSPC;

    struct core_rank *rank = calloc(t->nr_cores, sizeof(*rank));
    if (!rank)
        return -ENOMEM;
    for (size_t i = 0; i < t->nr_cores; i++) {
        const struct host_core *k = &t->core[i];
        rank[i].idx = i;
        rank[i].preferred = prefer_node >= 0 && k->node == prefer_node;
        rank[i].node_rank = k->node < 0 ? 0 : k->node;
        rank[i].not_isolated = !k->isolated;
        rank[i].first = k->cpu[0];
        for (int j = 0; j < k->nr; j++)
            if (k->cpu[j] == 0)
                rank[i].has_cpu0 = 1;
    }
    qsort(rank, t->nr_cores, sizeof(*rank), cmp_rank);

    /* vCPUs: whole cores in rank order, siblings to consecutive vCPUs. */
    int v = 0, threads = -1, spare_cpu = -1;
    bool uniform = true, on_cpu0_core = false, all_isolated = true;
    size_t r = 0;
    for (; r < t->nr_cores && v < n; r++) {
        const struct host_core *k = &t->core[rank[r].idx];
        int take = k->nr < n - v ? k->nr : n - v;
        for (int j = 0; j < take; j++)
            plan->vcpu[v++] = k->cpu[j];
        if (take < k->nr)
            spare_cpu = k->cpu[take];   /* the rest of a half-used core */
        if (threads < 0)
            threads = take;
        else if (take != threads)
            uniform = false;
        if (rank[r].has_cpu0)
            on_cpu0_core = true;
        if (!k->isolated)
            all_isolated = false;
    }
    plan->nr_vcpus = n;
    plan->whole_cores = spare_cpu < 0;
    plan->threads = uniform && threads > 0 && n % threads == 0 ? threads : 1;

    /* The emulator/IO core: the next core in the same order. */
    bool emu_on_cpu0_core = false;
    if (r < t->nr_cores) {
        const struct host_core *k = &t->core[rank[r].idx];
        plan->emulator = k->cpu[0];
        plan->io = k->nr > 1 ? k->cpu[1] : k->cpu[0];
        emu_on_cpu0_core = rank[r].has_cpu0;
    } else if (spare_cpu >= 0) {
        plan->emulator = plan->io = spare_cpu;
        sb_printf(&plan->notes, "No whole core is left for the emulator/IO threads: they share CPU %d's core "
                  "with a vCPU. Fewer vCPUs would leave them a core of their own.\n", spare_cpu);
    } else {
        sb_printf(&plan->notes, "No CPU is left for the emulator/IO threads: they will run on the vCPUs' "
                  "CPUs. Give the VM fewer vCPUs to leave them a core.\n");
    }
    if (spare_cpu >= 0 && plan->emulator != spare_cpu)
        sb_printf(&plan->notes, "CPU %d (the sibling of the last vCPU's CPU) is left idle: pin nothing else "
                  "there, or give the VM an even number of vCPUs.\n", spare_cpu);

    /* Where the plan landed. */
    int node = host_cpu_node(t, plan->vcpu[0]);
    for (int i = 1; i < n; i++)
        if (host_cpu_node(t, plan->vcpu[i]) != node)
            node = -2;
    if (node == -2) {
        plan->node = -1;
        sb_printf(&plan->notes, "The vCPUs span NUMA nodes: memory access from some of them is remote.\n");
    } else {
        plan->node = node;
        if (prefer_node >= 0 && node >= 0 && node != prefer_node)
            sb_printf(&plan->notes, "The GPU is on NUMA node %d but its node has too few CPUs: the vCPUs are "
                      "on node %d.\n", prefer_node, node);
    }
    if (on_cpu0_core)
        sb_printf(&plan->notes, "A vCPU is on CPU 0's core, where the host does its housekeeping; expect "
                  "some jitter there.\n");
    if (emu_on_cpu0_core)
        sb_printf(&plan->notes, "The emulator/IO threads share CPU 0's core with the host.\n");
    if (!all_isolated) {
        struct sbuf l = { 0 };
        struct cpuset vs = { 0 };
        for (int i = 0; i < n; i++)
            cpuset_add(&vs, (unsigned)plan->vcpu[i]);
        cpulist_format(&vs, &l);
        sb_printf(&plan->notes, "The vCPUs' CPUs are not isolated from the host scheduler. For the lowest "
                  "latency add to the kernel command line: isolcpus=managed_irq,domain,%s nohz_full=%s "
                  "rcu_nocbs=%s\n", sb_str(&l), sb_str(&l), sb_str(&l));
        sb_free(&l);
    }
    free(rank);
    return 0;
}

void host_pin_plan_free(struct host_pin_plan *plan)
{
    sb_free(&plan->notes);
}

void host_pin_plan_format(const struct host_pin_plan *plan, struct sbuf *sb)
{
    sb_printf(sb, "--cpu-pin ");
    for (int i = 0; i < plan->nr_vcpus; i++)
        sb_printf(sb, "%s%d=%d", i ? "," : "", i, plan->vcpu[i]);
    if (plan->emulator >= 0)
        sb_printf(sb, " --emulator-pin %d", plan->emulator);
    if (plan->io >= 0)
        sb_printf(sb, " --io-pin %d", plan->io);
}
