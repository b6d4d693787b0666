/* blk_bench: the block figures of bench/virtio-io, run inside the L2 guest
 * against its virtio disk. Built static (with liburing's static library) by
 * the bench script and added to the L2 initramfs, so the guest needs
 * nothing else (fio with its ~70 shared libraries would not fit).
 *
 *   blk_bench DEVICE randread QD SECONDS    4 KiB random reads, O_DIRECT,
 *                                           QD in flight (io_uring)
 *   blk_bench DEVICE seqread QD SECONDS     1 MiB sequential reads, O_DIRECT
 *
 * Prints one line: "mode=randread qd=32 ios=N secs=S iops=I mbps=M
 * lat_us_p50=... lat_us_p99=..." (latency per request, submission to
 * completion). Reads only: the disk's contents are not changed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#define MAX_QD      128
#define MAX_SAMPLES (1u << 20)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64: a fast, seeded offset generator (the same sequence for each
 * VMM in a round, so both read the same blocks). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: blk_bench DEVICE randread|seqread QD SECONDS\n");
        return 2;
    }
    const char *dev = argv[1], *mode = argv[2];
    int qd = atoi(argv[3]), secs = atoi(argv[4]);
    int seq = !strcmp(mode, "seqread");
    if ((!seq && strcmp(mode, "randread")) || qd < 1 || qd > MAX_QD || secs < 1) {
        fprintf(stderr, "blk_bench: bad arguments (mode randread|seqread, QD 1-%d, SECONDS >= 1)\n",
                MAX_QD);
        return 2;
    }
    size_t bs = seq ? (1u << 20) : 4096;
    int fd = open(dev, O_RDONLY | O_DIRECT);
    if (fd < 0) {
        fprintf(stderr, "blk_bench: %s: %s\n", dev, strerror(errno));
        return 1;
    }
    uint64_t size = 0;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        size = (uint64_t)st.st_size;
    else if (ioctl(fd, BLKGETSIZE64, &size) < 0)
        size = 0;
    if (size < bs * 2) {
        fprintf(stderr, "blk_bench: %s: cannot read its size, or smaller than %zu bytes\n", dev,
                bs * 2);
        return 1;
    }
    uint64_t blocks = size / bs, next_seq = 0;

    struct io_uring ring;
    int err = io_uring_queue_init((unsigned)qd, &ring, 0);
    if (err) {
        fprintf(stderr, "blk_bench: io_uring_queue_init: %s\n", strerror(-err));
        return 1;
    }
    void *bufs[MAX_QD];
    uint64_t started[MAX_QD];
    for (int i = 0; i < qd; i++)
        if (posix_memalign(&bufs[i], 4096, bs)) {
            fprintf(stderr, "blk_bench: out of memory\n");
            return 1;
        }
    uint32_t *lat = malloc(MAX_SAMPLES * sizeof(*lat));
    if (!lat) {
        fprintf(stderr, "blk_bench: out of memory\n");
        return 1;
    }

    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)secs * 1000000000ull, ios = 0;
    unsigned nlat = 0;
    int inflight = 0;
    for (int slot = 0; slot < qd; slot++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        uint64_t blk = seq ? next_seq++ % blocks : rng_next() % blocks;
        io_uring_prep_read(sqe, fd, bufs[slot], (unsigned)bs, blk * bs);
        io_uring_sqe_set_data64(sqe, (uint64_t)slot);
        started[slot] = now_ns();
        inflight++;
    }
    io_uring_submit(&ring);
    while (inflight) {
        struct io_uring_cqe *cqe;
        err = io_uring_wait_cqe(&ring, &cqe);
        if (err) {
            fprintf(stderr, "blk_bench: io_uring_wait_cqe: %s\n", strerror(-err));
            return 1;
        }
        int slot = (int)io_uring_cqe_get_data64(cqe);
        if (cqe->res != (int)bs) {
            fprintf(stderr, "blk_bench: read returned %d (wanted %zu): %s\n", cqe->res, bs,
                    cqe->res < 0 ? strerror(-cqe->res) : "short read");
            return 1;
        }
        io_uring_cqe_seen(&ring, cqe);
        uint64_t t = now_ns();
        if (nlat < MAX_SAMPLES)
            lat[nlat++] = (uint32_t)((t - started[slot]) / 1000);
        ios++;
        inflight--;
        if (t < deadline) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            uint64_t blk = seq ? next_seq++ % blocks : rng_next() % blocks;
            io_uring_prep_read(sqe, fd, bufs[slot], (unsigned)bs, blk * bs);
            io_uring_sqe_set_data64(sqe, (uint64_t)slot);
            started[slot] = t;
            inflight++;
            io_uring_submit(&ring);
        }
    }
    double el = (double)(now_ns() - t0) / 1e9;
    qsort(lat, nlat, sizeof(*lat), cmp_u32);
    printf("mode=%s qd=%d ios=%llu secs=%.2f iops=%.0f mbps=%.1f lat_us_p50=%u lat_us_p99=%u\n",
           mode, qd, (unsigned long long)ios, el, (double)ios / el,
           (double)ios * (double)bs / el / 1e6, nlat ? lat[nlat / 2] : 0,
           nlat ? lat[(size_t)nlat * 99 / 100] : 0);
    io_uring_queue_exit(&ring);
    close(fd);
    return 0;
}
