/* Exit statistics: per vCPU, per KVM exit reason (port I/O and MMIO split
 * into read and write), the count and the time minivmm spent handling it --
 * from KVM_RUN's return to the next KVM_RUN -- and the time spent inside
 * KVM_RUN. Each vCPU thread writes only its own struct vcpu_stats (no locks,
 * no atomics on the hot path); the main thread reads them after the vCPU
 * threads are joined. --stats prints the table at exit, --stats-json writes
 * the same as JSON. */
#ifndef MINIVMM_STATS_H
#define MINIVMM_STATS_H
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* Rows: the split I/O rows, KVM_RUN interrupted by a signal (EINTR), then
 * one per KVM exit reason below STATS_KVM_REASONS, then "other". */
enum {
    STATS_ROW_IO_IN,
    STATS_ROW_IO_OUT,
    STATS_ROW_MMIO_READ,
    STATS_ROW_MMIO_WRITE,
    STATS_ROW_EINTR,
    STATS_ROW_KVM_BASE,
};
#define STATS_KVM_REASONS 64
#define STATS_ROW_OTHER   (STATS_ROW_KVM_BASE + STATS_KVM_REASONS)
#define STATS_NR_ROWS     (STATS_ROW_OTHER + 1)

struct vcpu_stats {
    uint64_t count[STATS_NR_ROWS];
    uint64_t handle_ns[STATS_NR_ROWS];
    uint64_t run_ns;        /* inside KVM_RUN */
    uint64_t runs;          /* KVM_RUN calls */
} __attribute__((aligned(64)));   /* no false sharing between vCPUs */

struct stats {
    unsigned nr_vcpus;
    struct vcpu_stats *vcpu;
    uint64_t start_ns, end_ns;   /* wall time the vCPUs ran */
};

static inline uint64_t stats_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Row of a KVM exit reason (KVM_EXIT_*). */
static inline unsigned stats_row_of_exit(uint32_t reason)
{
    return reason < STATS_KVM_REASONS ? STATS_ROW_KVM_BASE + reason : STATS_ROW_OTHER;
}

static inline void stats_add(struct vcpu_stats *s, unsigned row, uint64_t ns)
{
    s->count[row]++;
    s->handle_ns[row] += ns;
}

int stats_init(struct stats *s, unsigned nr_vcpus);
void stats_fini(struct stats *s);
/* "io-in", "mmio-write", "hlt", "shutdown", "exit-17"... */
const char *stats_row_name(unsigned row, char *buf, size_t len);
/* The table: one line per (vCPU, row) with a count, then the totals. */
void stats_print(const struct stats *s, FILE *f);
/* The same as one JSON object. Returns 0 or -EIO. */
int stats_write_json(const struct stats *s, FILE *f);

#endif
