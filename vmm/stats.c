/* Exit statistics output (vmm/stats.h).
 *
 * JSON shape (all times in nanoseconds, integers):
 *   { "wall_ns": N,
 *     "vcpus": [ { "index": 0, "runs": N, "run_ns": N, "handle_ns": N,
 *                  "exits": { "io-in": { "count": N, "handle_ns": N }, ... } }, ... ],
 *     "total": { "runs": N, "run_ns": N, "handle_ns": N, "exits": { ... } } }
 * Rows with a zero count are left out. */
#include "vmm/stats.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

int stats_init(struct stats *s, unsigned nr_vcpus)
{
    memset(s, 0, sizeof(*s));
    if (nr_vcpus == 0)
        return -EINVAL;
    s->vcpu = aligned_alloc(64, sizeof(*s->vcpu) * nr_vcpus);
    if (!s->vcpu)
        return -ENOMEM;
    memset(s->vcpu, 0, sizeof(*s->vcpu) * nr_vcpus);
    s->nr_vcpus = nr_vcpus;
    return 0;
}

void stats_fini(struct stats *s)
{
    free(s->vcpu);
    memset(s, 0, sizeof(*s));
}

static const char *const kvm_exit_names[] = {
    [KVM_EXIT_UNKNOWN] = "unknown",
    [KVM_EXIT_EXCEPTION] = "exception",
    [KVM_EXIT_IO] = "io",
    [KVM_EXIT_HYPERCALL] = "hypercall",
    [KVM_EXIT_DEBUG] = "debug",
    [KVM_EXIT_HLT] = "hlt",
    [KVM_EXIT_MMIO] = "mmio",
    [KVM_EXIT_IRQ_WINDOW_OPEN] = "irq-window-open",
    [KVM_EXIT_SHUTDOWN] = "shutdown",
    [KVM_EXIT_FAIL_ENTRY] = "fail-entry",
    [KVM_EXIT_INTR] = "intr",
    [KVM_EXIT_SET_TPR] = "set-tpr",
    [KVM_EXIT_TPR_ACCESS] = "tpr-access",
    [KVM_EXIT_NMI] = "nmi",
    [KVM_EXIT_INTERNAL_ERROR] = "internal-error",
    [KVM_EXIT_SYSTEM_EVENT] = "system-event",
    [KVM_EXIT_IOAPIC_EOI] = "ioapic-eoi",
    [KVM_EXIT_HYPERV] = "hyperv",
};

const char *stats_row_name(unsigned row, char *buf, size_t len)
{
    switch (row) {
    case STATS_ROW_IO_IN: return "io-in";
    case STATS_ROW_IO_OUT: return "io-out";
    case STATS_ROW_MMIO_READ: return "mmio-read";
    case STATS_ROW_MMIO_WRITE: return "mmio-write";
    case STATS_ROW_EINTR: return "eintr";
    case STATS_ROW_OTHER: return "other";
    default: break;
    }
    if (row >= STATS_ROW_KVM_BASE && row < STATS_ROW_OTHER) {
        unsigned r = row - STATS_ROW_KVM_BASE;
        if (r < sizeof(kvm_exit_names) / sizeof(kvm_exit_names[0]) && kvm_exit_names[r])
            return kvm_exit_names[r];
        snprintf(buf, len, "exit-%u", r);
        return buf;
    }
    snprintf(buf, len, "row-%u", row);
    return buf;
}

static uint64_t wall_ns(const struct stats *s)
{
    return s->end_ns > s->start_ns ? s->end_ns - s->start_ns : 0;
}

static void stats_sum(const struct stats *s, struct vcpu_stats *t)
{
    memset(t, 0, sizeof(*t));
    for (unsigned v = 0; v < s->nr_vcpus; v++) {
        const struct vcpu_stats *c = &s->vcpu[v];
        for (unsigned r = 0; r < STATS_NR_ROWS; r++) {
            t->count[r] += c->count[r];
            t->handle_ns[r] += c->handle_ns[r];
        }
        t->run_ns += c->run_ns;
        t->runs += c->runs;
    }
}

static uint64_t handle_total(const struct vcpu_stats *c)
{
    uint64_t ns = 0;
    for (unsigned r = 0; r < STATS_NR_ROWS; r++)
        ns += c->handle_ns[r];
    return ns;
}

static void print_rows(FILE *f, const char *who, const struct vcpu_stats *c)
{
    char buf[32];

    for (unsigned r = 0; r < STATS_NR_ROWS; r++) {
        if (!c->count[r])
            continue;
        fprintf(f, "minivmm: stats: %-6s %-16s %12" PRIu64 " %14.1f %10.0f\n", who,
                stats_row_name(r, buf, sizeof(buf)), c->count[r], c->handle_ns[r] / 1e3,
                (double)c->handle_ns[r] / (double)c->count[r]);
    }
    fprintf(f, "minivmm: stats: %-6s %-16s %12" PRIu64 " %14.1f   (in KVM_RUN; handling %.1f us)\n",
            who, "kvm-run", c->runs, c->run_ns / 1e3, handle_total(c) / 1e3);
}

void stats_print(const struct stats *s, FILE *f)
{
    struct vcpu_stats total;
    char who[16];

    fprintf(f, "minivmm: stats: vCPUs ran %.3f s; time below is minivmm's handling, from "
            "KVM_RUN's return to the next KVM_RUN\n", wall_ns(s) / 1e9);
    fprintf(f, "minivmm: stats: %-6s %-16s %12s %14s %10s\n", "vcpu", "exit", "count",
            "total-us", "mean-ns");
    for (unsigned v = 0; v < s->nr_vcpus; v++) {
        snprintf(who, sizeof(who), "%u", v);
        print_rows(f, who, &s->vcpu[v]);
    }
    if (s->nr_vcpus > 1) {
        stats_sum(s, &total);
        print_rows(f, "all", &total);
    }
}

static void json_exits(FILE *f, const struct vcpu_stats *c)
{
    char buf[32];
    bool first = true;

    fputs("\"exits\": {", f);
    for (unsigned r = 0; r < STATS_NR_ROWS; r++) {
        if (!c->count[r])
            continue;
        /* Row names are fixed ASCII identifiers ([a-z0-9-]): no escaping. */
        fprintf(f, "%s\"%s\": {\"count\": %" PRIu64 ", \"handle_ns\": %" PRIu64 "}",
                first ? "" : ", ", stats_row_name(r, buf, sizeof(buf)), c->count[r],
                c->handle_ns[r]);
        first = false;
    }
    fputs("}", f);
}

static void json_vcpu_body(FILE *f, const struct vcpu_stats *c)
{
    fprintf(f, "\"runs\": %" PRIu64 ", \"run_ns\": %" PRIu64 ", \"handle_ns\": %" PRIu64 ", ",
            c->runs, c->run_ns, handle_total(c));
    json_exits(f, c);
}

int stats_write_json(const struct stats *s, FILE *f)
{
    struct vcpu_stats total;

    stats_sum(s, &total);
    fprintf(f, "{\"wall_ns\": %" PRIu64 ", \"vcpus\": [", wall_ns(s));
    for (unsigned v = 0; v < s->nr_vcpus; v++) {
        fprintf(f, "%s{\"index\": %u, ", v ? ", " : "", v);
        json_vcpu_body(f, &s->vcpu[v]);
        fputs("}", f);
    }
    fputs("], \"total\": {", f);
    json_vcpu_body(f, &total);
    fputs("}}\n", f);
    if (fflush(f) != 0 || ferror(f))
        return -EIO;
    return 0;
}
