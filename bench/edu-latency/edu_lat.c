/* edu_lat: MMIO read latency and interrupt latency of QEMU's edu device
 * (1234:11e8) as seen by a Linux guest that has it passed through. Runs in
 * the lab's L2 (tests/lab/l2/jobs/edu-latency), built static by
 * bench/vfio-latency; prints L2-MARKER lines.
 *
 * edu registers (QEMU docs/specs/edu.rst), BAR0:
 *   0x00 RO  identification 0xRRrr00ed (major.minor version, 0xed)
 *   0x04 RW  liveness: reads back the inverse of what was written
 *   0x24 RO  interrupt status (bits raised and not yet acknowledged)
 *   0x60 WO  raise interrupt: status |= value, then the interrupt fires
 *   0x64 WO  acknowledge: status &= ~value (the line drops at status 0)
 * Without MSI enabled the edu uses INTx (pin A).
 *
 * The guest has no IOMMU and the lab's Debian kernel has no VFIO no-IOMMU
 * mode, so the program uses no VFIO in L2: BAR0 through sysfs resource0
 * (mmap), INTx through uio_pci_generic (/dev/uioN: read() blocks until the
 * kernel's handler ran; INTx is masked by the handler with the command
 * register's INTx-disable bit, PCI 2.3, and unmasked here through config
 * space, as Documentation/driver-api/uio-howto.rst describes).
 *
 *   MMIO read: S samples, each B back-to-back 32-bit reads of 0x00 timed
 *     together (CLOCK_MONOTONIC), per read = sample / B.
 *   Interrupt: N rounds of: write 1 to 0x60, wait for the uio read to
 *     return; latency = write to wake-up (the handler ran and woke us).
 *     Then acknowledge (0x64) and unmask INTx.
 *
 * usage: edu_lat BDF /dev/uioN [reads-samples] [irq-rounds]
 * Exit status: 0 when the device answered right and every interrupt came;
 * 1 otherwise (a VMM that does not do the job). Never fails on timing. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define EDU_ID 0x00
#define EDU_LIVENESS 0x04
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define PCI_COMMAND_HI 0x05   /* high byte of the command register */
#define PCI_COMMAND_HI_INTX_DISABLE 0x04 /* bit 10 of the command register */
#define READS_PER_SAMPLE 16
#define IRQ_TIMEOUT_MS 2000

static volatile uint32_t *bar;

static uint32_t mmio_read(unsigned off) { return bar[off / 4]; }
static void mmio_write(unsigned off, uint32_t v) { bar[off / 4] = v; }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* min / median / p99 / max of n samples (sorts them) */
static void report(const char *what, uint64_t *s, size_t n, const char *extra)
{
    if (!n) {
        printf("L2-MARKER: edu %s none\n", what);
        return;
    }
    qsort(s, n, sizeof(*s), cmp_u64);
    size_t p99 = (n * 99) / 100;
    if (p99 >= n)
        p99 = n - 1;
    printf("L2-MARKER: edu %s ns min=%llu median=%llu p99=%llu max=%llu n=%zu%s\n", what,
           (unsigned long long)s[0], (unsigned long long)s[n / 2],
           (unsigned long long)s[p99], (unsigned long long)s[n - 1], n, extra);
}

/* INTx-disable clear again: the uio handler set it when the interrupt came */
static int intx_unmask(int cfg)
{
    uint8_t hi;
    if (pread(cfg, &hi, 1, PCI_COMMAND_HI) != 1)
        return -1;
    if (!(hi & PCI_COMMAND_HI_INTX_DISABLE))
        return 0;
    hi &= (uint8_t)~PCI_COMMAND_HI_INTX_DISABLE;
    return pwrite(cfg, &hi, 1, PCI_COMMAND_HI) == 1 ? 0 : -1;
}

static int bench_mmio(size_t samples)
{
    uint64_t *s = calloc(samples, sizeof(*s));
    if (!s)
        return 1;
    uint32_t sink = 0;
    for (int i = 0; i < 64; i++)   /* warm up: page tables, TLB */
        sink += mmio_read(EDU_ID);
    for (size_t i = 0; i < samples; i++) {
        uint64_t t0 = now_ns();
        for (int j = 0; j < READS_PER_SAMPLE; j++)
            sink += mmio_read(EDU_ID);
        s[i] = (now_ns() - t0) / READS_PER_SAMPLE;
    }
    /* the value the reads saw: all the same identification register */
    uint32_t want = mmio_read(EDU_ID) * (uint32_t)(64 + samples * READS_PER_SAMPLE);
    char extra[64];
    snprintf(extra, sizeof(extra), " per-sample-reads=%d%s", READS_PER_SAMPLE,
             sink == want ? "" : " (reads changed value!)");
    report("mmio-read", s, samples, extra);
    free(s);
    return sink == want ? 0 : 1;
}

static int bench_irq(int uio, int cfg, size_t rounds)
{
    uint64_t *s = calloc(rounds, sizeof(*s));
    if (!s)
        return 1;
    uint32_t count0 = 0, count = 0;
    size_t got = 0, missed = 0;
    /* a clean start: nothing pending at the device, INTx on */
    uint32_t st = mmio_read(EDU_IRQ_STATUS);
    if (st)
        mmio_write(EDU_IRQ_ACK, st);
    if (intx_unmask(cfg) < 0) {
        printf("L2-MARKER: edu cannot write the command register: %s\n", strerror(errno));
        free(s);
        return 1;
    }
    for (size_t r = 0; r < rounds; r++) {
        struct pollfd p = {.fd = uio, .events = POLLIN};
        uint64_t t0 = now_ns();
        mmio_write(EDU_IRQ_RAISE, 1);
        int n = poll(&p, 1, IRQ_TIMEOUT_MS);
        uint64_t t1 = now_ns();
        if (n == 1 && read(uio, &count, 4) == 4) {
            if (!got)
                count0 = count;
            s[got++] = t1 - t0;
        } else {
            missed++;
            printf("L2-MARKER: edu interrupt %zu did not come within %d ms (status 0x%x)\n", r,
                   IRQ_TIMEOUT_MS, mmio_read(EDU_IRQ_STATUS));
            if (missed >= 3)
                break;
        }
        st = mmio_read(EDU_IRQ_STATUS);
        mmio_write(EDU_IRQ_ACK, st ? st : 1);
        if (intx_unmask(cfg) < 0) {
            printf("L2-MARKER: edu cannot unmask INTx: %s\n", strerror(errno));
            break;
        }
    }
    char extra[96];
    snprintf(extra, sizeof(extra), " missed=%zu uio-count=%u..%u", missed, count0, count);
    report("intx-latency", s, got, extra);
    free(s);
    return got == rounds ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s BDF /dev/uioN [mmio-samples] [irq-rounds]\n", argv[0]);
        return 2;
    }
    const char *bdf = argv[1], *uio_path = argv[2];
    size_t samples = argc > 3 ? strtoul(argv[3], NULL, 0) : 4000;
    size_t rounds = argc > 4 ? strtoul(argv[4], NULL, 0) : 1000;
    setvbuf(stdout, NULL, _IOLBF, 0);

    char path[256];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
    int res = open(path, O_RDWR | O_SYNC);
    if (res < 0) {
        printf("L2-MARKER: edu cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, res, 0);
    if (m == MAP_FAILED) {
        printf("L2-MARKER: edu cannot mmap BAR0: %s\n", strerror(errno));
        return 1;
    }
    bar = m;
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
    int cfg = open(path, O_RDWR);
    int uio = open(uio_path, O_RDWR);
    if (cfg < 0 || uio < 0) {
        printf("L2-MARKER: edu cannot open %s: %s\n", cfg < 0 ? path : uio_path, strerror(errno));
        return 1;
    }

    /* The device answers as an edu: identification and the liveness check */
    uint32_t id = mmio_read(EDU_ID);
    mmio_write(EDU_LIVENESS, 0x5a5a1234);
    uint32_t live = mmio_read(EDU_LIVENESS);
    int ok = (id & 0xff) == 0xed && live == ~0x5a5a1234u;
    printf("L2-MARKER: edu id=0x%08x liveness=0x%08x %s\n", id, live, ok ? "ok" : "WRONG");
    if (!ok)
        return 1;

    int rc = bench_mmio(samples);
    rc |= bench_irq(uio, cfg, rounds);
    printf("L2-MARKER: edu bench %s\n", rc ? "FAILED" : "done");
    return rc;
}
