/* devices/block/image.c and devices/block/blk_engine.c, driven directly as
 * a front end would (no virtio): a temporary image file, requests handed to
 * the engine from its kick callback (the test writes the kick eventfd),
 * completions recorded from the complete callback. Read, write, flush,
 * discard, write-zeroes (and the fallback by writing), short transfers,
 * O_DIRECT with unaligned buffers, the lock against a second writer, error
 * completions, refusals, many requests in flight, stop and start. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devices/block/blk_engine.h"
#include "devices/block/image.h"

#define MiB (1024u * 1024u)
#define DISK_BYTES (4 * MiB)
#define MAXQ 2
#define MAXREQ 256

static uint8_t pattern_byte(uint64_t off)
{
    return (uint8_t)(off * 7 + (off >> 9) * 13 + 1);
}

/* ---- a front end made of callbacks ---- */

struct harness {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct blk_engine *e;
    int kick_fd[MAXQ];
    struct blk_request pending[MAXQ][MAXREQ];
    unsigned npending[MAXQ];
    int submit_ret[MAXQ][MAXREQ];
    unsigned nsubmitted[MAXQ];          /* submissions made (ret recorded) */
    bool done[MAXQ][MAXREQ];            /* by tag */
    int64_t result[MAXQ][MAXREQ];
    unsigned ndone[MAXQ];
    unsigned starts, stops, rounds, running_at_start;
};

static struct harness h;
static struct blk_image img;
static bool img_open;
static char dir[64], path[96];

/* Submit what the test queued for q, then wait for the next kick. */
static void take_pending(struct harness *x, unsigned q)
{
    pthread_mutex_lock(&x->lock);
    for (unsigned i = 0; i < x->npending[q]; i++)
        x->submit_ret[q][x->nsubmitted[q]++] = blk_engine_submit(x->e, q, &x->pending[q][i]);
    x->npending[q] = 0;
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
    blk_engine_arm_kick(x->e, q, x->kick_fd[q]);
}

/* As a device would: whatever was queued before the start is taken (a kick
 * that arrived while stopped was consumed and not passed on). */
static void cb_start(void *opaque, unsigned q)
{
    struct harness *x = opaque;
    pthread_mutex_lock(&x->lock);
    x->starts++;
    x->running_at_start += blk_engine_running(x->e, q);
    pthread_mutex_unlock(&x->lock);
    take_pending(x, q);
}

static void cb_kick(void *opaque, unsigned q)
{
    take_pending(opaque, q);
}

static void cb_complete(void *opaque, unsigned q, uint64_t tag, int64_t result)
{
    struct harness *x = opaque;
    pthread_mutex_lock(&x->lock);
    if (tag < MAXREQ && !x->done[q][tag]) {
        x->done[q][tag] = true;
        x->result[q][tag] = result;
        x->ndone[q]++;
    }
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
}

static void cb_round_end(void *opaque, unsigned q)
{
    struct harness *x = opaque;
    pthread_mutex_lock(&x->lock);
    x->rounds++;
    pthread_mutex_unlock(&x->lock);
}

static void cb_stop(void *opaque, unsigned q)
{
    struct harness *x = opaque;
    pthread_mutex_lock(&x->lock);
    x->stops++;
    pthread_mutex_unlock(&x->lock);
}

static const struct blk_engine_ops ops = {
    .start = cb_start, .kick = cb_kick, .complete = cb_complete, .round_end = cb_round_end,
    .stop = cb_stop,
};

static void make_image(void)
{
    snprintf(dir, sizeof(dir), "/tmp/minivmm-eng-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/disk.img", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    uint8_t *b = malloc(DISK_BYTES);
    for (uint64_t i = 0; i < DISK_BYTES; i++)
        b[i] = pattern_byte(i);
    cr_assert_eq(write(fd, b, DISK_BYTES), (ssize_t)DISK_BYTES);
    free(b);
    close(fd);
}

static void setup(void)
{
    memset(&h, 0, sizeof(h));
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    for (unsigned q = 0; q < MAXQ; q++) {
        h.kick_fd[q] = eventfd(0, EFD_CLOEXEC);
        cr_assert_geq(h.kick_fd[q], 0);
    }
    img_open = false;
    make_image();
}

static void teardown(void)
{
    blk_engine_destroy(h.e);
    h.e = NULL;
    if (img_open)
        blk_image_close(&img);
    for (unsigned q = 0; q < MAXQ; q++)
        close(h.kick_fd[q]);
    unlink(path);
    rmdir(dir);
}

static void engine_up(bool direct, bool readonly, unsigned nq, unsigned depth)
{
    cr_assert_eq(blk_image_open(&img, "test-blk", path, readonly, direct), 0);
    img_open = true;
    struct blk_engine_config c = {
        .name = "test-blk0", .thread_name = "tblk0", .img = &img, .nr_queues = nq,
        .nr_threads = nq, .depth = depth, .max_ranges = 4, .cpu = -1, .ops = &ops, .opaque = &h,
    };
    cr_assert_eq(blk_engine_create(&c, &h.e), 0);
    cr_assert_eq(blk_engine_start(h.e), 0);
}

static bool wait_for(unsigned *counter, unsigned n, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h.lock);
    while (*counter < n)
        if (pthread_cond_timedwait(&h.cond, &h.lock, &ts))
            break;
    bool ok = *counter >= n;
    pthread_mutex_unlock(&h.lock);
    return ok;
}

/* Hand n requests to queue q at its next kick; wait until every accepted
 * one completed. Returns how many were accepted. */
static unsigned run(unsigned q, const struct blk_request *r, unsigned n)
{
    pthread_mutex_lock(&h.lock);
    unsigned first = h.nsubmitted[q], done0 = h.ndone[q];
    memcpy(h.pending[q], r, n * sizeof(*r));
    h.npending[q] = n;
    pthread_mutex_unlock(&h.lock);
    uint64_t one = 1;
    cr_assert_eq(write(h.kick_fd[q], &one, sizeof(one)), (ssize_t)sizeof(one));
    unsigned want = first + n;
    cr_assert(wait_for(&h.nsubmitted[q], want, 5000), "the kick reached the front end");
    unsigned accepted = 0;
    for (unsigned i = first; i < want; i++)
        accepted += h.submit_ret[q][i] == 0;
    unsigned target = done0 + accepted;
    cr_assert(wait_for(&h.ndone[q], target, 10000), "%u of %u completed", h.ndone[q] - done0,
              accepted);
    return accepted;
}

/* One request; its result. */
static int64_t run1(unsigned q, struct blk_request r)
{
    cr_assert_eq(run(q, &r, 1), 1u, "accepted: %d", h.submit_ret[q][h.nsubmitted[q] - 1]);
    return h.result[q][r.tag];
}

static void forget(unsigned q, uint64_t tag)
{
    pthread_mutex_lock(&h.lock);
    h.done[q][tag] = false;
    pthread_mutex_unlock(&h.lock);
}

static void file_read(uint64_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static bool is_pattern(const uint8_t *b, uint64_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != pattern_byte(off + i))
            return false;
    return true;
}

TestSuite(blk_engine, .init = setup, .fini = teardown, .timeout = 30);

Test(blk_engine, read_write_flush)
{
    engine_up(false, false, 1, 16);
    /* Read 8 KiB at 4096 into three pieces. */
    static uint8_t a[1000], b[5000], c[8192 - 6000];
    struct iovec iov[3] = { { a, sizeof(a) }, { b, sizeof(b) }, { c, sizeof(c) } };
    int64_t r = run1(0, (struct blk_request){ .op = BLK_OP_READ, .offset = 4096, .len = 8192,
                                              .iov = iov, .niov = 3, .tag = 1 });
    cr_assert_eq(r, 8192);
    cr_assert(is_pattern(a, 4096, sizeof(a)));
    cr_assert(is_pattern(b, 4096 + 1000, sizeof(b)));
    cr_assert(is_pattern(c, 4096 + 6000, sizeof(c)));
    /* Write two pieces, flush, and the file has them. */
    static uint8_t w1[512], w2[1536];
    memset(w1, 0xA5, sizeof(w1));
    memset(w2, 0x5A, sizeof(w2));
    struct iovec wv[2] = { { w1, sizeof(w1) }, { w2, sizeof(w2) } };
    r = run1(0, (struct blk_request){ .op = BLK_OP_WRITE, .offset = 65536, .len = 2048,
                                      .iov = wv, .niov = 2, .tag = 2 });
    cr_assert_eq(r, 2048);
    cr_assert_eq(run1(0, (struct blk_request){ .op = BLK_OP_FLUSH, .tag = 3 }), 0);
    uint8_t back[2048];
    file_read(65536, back, sizeof(back));
    cr_assert_arr_eq(back, w1, sizeof(w1));
    cr_assert_arr_eq(back + 512, w2, sizeof(w2));
    cr_assert_geq(h.starts, 1u);
    cr_assert_eq(h.running_at_start, h.starts, "running inside start(q)");
    cr_assert_geq(h.rounds, 3u, "round_end after the batches");
}

Test(blk_engine, discard_and_write_zeroes)
{
    engine_up(false, false, 1, 16);
    uint8_t buf[65536];
    /* Write-zeroes without and with unmap: zeroes either way. */
    cr_assert_eq(run1(0, (struct blk_request){ .op = BLK_OP_WRITE_ZEROES, .offset = 4096,
                                               .len = 8192, .tag = 1 }), 0);
    cr_assert_eq(run1(0, (struct blk_request){ .op = BLK_OP_WRITE_ZEROES, .offset = 65536,
                                               .len = 65536, .unmap = true, .tag = 2 }), 0);
    file_read(4096, buf, 8192);
    cr_assert(all_zero(buf, 8192));
    file_read(65536, buf, 65536);
    cr_assert(all_zero(buf, 65536));
    file_read(4096 + 8192, buf, 512);
    cr_assert(is_pattern(buf, 4096 + 8192, 512), "nothing beyond the range");
    /* A discard of three ranges at once. */
    static const struct blk_range rg[3] = { { 1 * MiB, 4096 }, { 2 * MiB, 8192 },
                                            { 3 * MiB, 65536 } };
    cr_assert_eq(run1(0, (struct blk_request){ .op = BLK_OP_DISCARD, .ranges = rg,
                                               .nr_ranges = 3, .tag = 3 }), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, (off_t)DISK_BYTES, "KEEP_SIZE");
}

Test(blk_engine, write_zeroes_by_writing_and_discard_as_no_op)
{
    engine_up(false, false, 1, 16);
    /* A filesystem with neither ZERO_RANGE nor PUNCH_HOLE (as learned). */
    atomic_store(&img.no_punch, true);
    atomic_store(&img.no_zero_range, true);
    /* 2 MiB + 512 bytes: a WRITEV of the zero buffer, then the tail. */
    uint64_t off = 512, len = 2 * MiB + 512;
    cr_assert_eq(run1(0, (struct blk_request){ .op = BLK_OP_WRITE_ZEROES, .offset = off,
                                               .len = len, .tag = 1 }), 0);
    uint8_t *b = malloc(len + 1024);
    file_read(0, b, len + 1024);
    cr_assert(is_pattern(b, 0, 512));
    cr_assert(all_zero(b + off, len));
    cr_assert(is_pattern(b + off + len, off + len, 512));
    /* A discard with nothing to do it with: success, data as before. */
    cr_assert_eq(run1(0, (struct blk_request){ .op = BLK_OP_DISCARD, .offset = 3 * MiB,
                                               .len = 4096, .tag = 2 }), 0);
    file_read(3 * MiB, b, 4096);
    cr_assert(is_pattern(b, 3 * MiB, 4096));
    free(b);
}

Test(blk_engine, zero_methods_in_fallback_order)
{
    engine_up(false, false, 1, 1);
    /* Write-zeroes: ZERO_RANGE -> PUNCH_HOLE -> writing. */
    cr_assert_eq(blk_image_zero_first(&img, false, false), BLK_ZERO_RANGE);
    cr_assert_eq(blk_image_zero_first(&img, false, true), BLK_ZERO_PUNCH, "unmap punches first");
    cr_assert_eq(blk_image_zero_first(&img, true, false), BLK_ZERO_PUNCH);
    cr_assert_eq(blk_image_zero_refused(&img, BLK_ZERO_RANGE, false, false), BLK_ZERO_PUNCH);
    cr_assert(atomic_load(&img.no_zero_range));
    cr_assert_eq(blk_image_zero_first(&img, false, false), BLK_ZERO_PUNCH, "remembered");
    cr_assert_eq(blk_image_zero_refused(&img, BLK_ZERO_PUNCH, false, false), BLK_ZERO_WRITE);
    cr_assert_eq(blk_image_zero_first(&img, false, false), BLK_ZERO_WRITE);
    cr_assert_eq(blk_image_zero_first(&img, false, true), BLK_ZERO_WRITE);
    cr_assert_eq(blk_image_zero_first(&img, true, false), BLK_ZERO_NONE, "discard: a no-op");
    cr_assert_eq(blk_image_zero_refused(&img, BLK_ZERO_WRITE, false, false), BLK_ZERO_WRITE);
    /* Unmap without punching: ZERO_RANGE, then writing. */
    atomic_store(&img.no_zero_range, false);
    cr_assert_eq(blk_image_zero_first(&img, false, true), BLK_ZERO_RANGE);
}

Test(blk_engine, short_read_resubmitted_then_eof_is_an_error)
{
    engine_up(false, false, 1, 4);
    /* The image shrinks under the engine: the first READV returns 4196 of
     * 8192 bytes, the rest is asked for and ends at EOF. */
    cr_assert_eq(truncate(path, 4096 + 100), 0);
    static uint8_t b[8192];
    memset(b, 0xEE, sizeof(b));
    struct iovec iov[2] = { { b, 4096 }, { b + 4096, 4096 } };
    int64_t r = run1(0, (struct blk_request){ .op = BLK_OP_READ, .offset = 0, .len = 8192,
                                              .iov = iov, .niov = 2, .tag = 1 });
    cr_assert_eq(r, -EIO);
    cr_assert(is_pattern(b, 0, 4196), "what there was arrived");
}

Test(blk_engine, short_write_resubmitted_then_error_completes)
{
    engine_up(false, false, 1, 4);
    /* RLIMIT_FSIZE cuts a write short (generic_write_check_limits); the
     * rest is resubmitted and refused with EFBIG (SIGXFSZ ignored). */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = { .rlim_cur = 65536 + 1024, .rlim_max = RLIM_INFINITY };
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    static uint8_t w[4096];
    memset(w, 0x3C, sizeof(w));
    struct iovec iov = { w, sizeof(w) };
    int64_t r = run1(0, (struct blk_request){ .op = BLK_OP_WRITE, .offset = 65536, .len = 4096,
                                              .iov = &iov, .niov = 1, .tag = 1 });
    cr_assert_eq(r, -EFBIG, "%lld", (long long)r);
    rl.rlim_cur = RLIM_INFINITY;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    uint8_t back[1024 + 512];
    file_read(65536, back, sizeof(back));
    cr_assert_arr_eq(back, w, 1024, "the part before the limit was written");
    cr_assert(is_pattern(back + 1024, 65536 + 1024, 512));
    /* The engine goes on. */
    iov = (struct iovec){ w, 512 };
    cr_assert_eq(run1(0, (struct blk_request){ .op = BLK_OP_READ, .offset = 0, .len = 512,
                                               .iov = &iov, .niov = 1, .tag = 2 }), 512);
}

Test(blk_engine, o_direct_with_unaligned_buffers)
{
    engine_up(true, false, 1, 8);
    cr_assert(img.direct);
    cr_assert_neq(img.fd, img.fd_buffered);
    uint8_t *mem = aligned_alloc(4096, 4 * 4096);
    cr_assert_not_null(mem);
    struct iovec odd = { mem + 3, 512 }, aligned = { mem + 4096, 4096 };
    cr_assert_eq(blk_image_fd_for(&img, &odd, 1, 0), img.fd_buffered);
    cr_assert_eq(blk_image_fd_for(&img, &aligned, 1, 4096), img.fd);
    cr_assert_eq(blk_image_fd_for(&img, &aligned, 1, 4096 + 1), img.fd_buffered);
    /* Unaligned memory: through the page cache, correct data. */
    cr_assert_eq(run1(0, (struct blk_request){ .op = BLK_OP_READ, .offset = 2048, .len = 512,
                                               .iov = &odd, .niov = 1, .tag = 1 }), 512);
    cr_assert(is_pattern(mem + 3, 2048, 512));
    /* An unaligned write, read back direct. */
    struct iovec w = { mem + 3 * 4096 + 1, 4096 - 512 };
    memset(w.iov_base, 0x77, w.iov_len);
    cr_assert_eq(run1(0, (struct blk_request){ .op = BLK_OP_WRITE, .offset = 8192,
                                               .len = w.iov_len, .iov = &w, .niov = 1,
                                               .tag = 2 }), (int64_t)w.iov_len);
    memset(mem + 4096, 0, 4096);
    cr_assert_eq(run1(0, (struct blk_request){ .op = BLK_OP_READ, .offset = 8192, .len = 4096,
                                               .iov = &aligned, .niov = 1, .tag = 3 }), 4096);
    for (unsigned i = 0; i < 4096 - 512; i++)
        cr_assert_eq(mem[4096 + i], 0x77);
    cr_assert(is_pattern(mem + 4096 + 4096 - 512, 8192 + 4096 - 512, 512));
    free(mem);
}

Test(blk_engine, second_writer_refused_naming_the_file)
{
    struct blk_image other;
    cr_assert_eq(blk_image_open(&img, "test-blk", path, false, false), 0);
    img_open = true;
    cr_assert_eq(blk_image_open(&other, "test-blk", path, false, false), -EWOULDBLOCK);
    cr_assert_eq(other.fd, -1, "nothing left open");
    cr_assert_eq(blk_image_open(&other, "test-blk", path, true, false), -EWOULDBLOCK,
                 "no reader while one writes");
    blk_image_close(&img);
    cr_assert_eq(blk_image_open(&img, "test-blk", path, true, false), 0);
    cr_assert_eq(blk_image_open(&other, "test-blk", path, true, false), 0, "readers share");
    struct blk_image w;
    cr_assert_eq(blk_image_open(&w, "test-blk", path, false, false), -EWOULDBLOCK,
                 "no writer while one reads");
    blk_image_close(&other);
    cr_assert_eq(img.size, (uint64_t)DISK_BYTES);
    cr_assert_eq(img.logical_block, 512u);
    cr_assert_eq(blk_image_open(&w, "test-blk", "/nonexistent/x.img", false, false), -ENOENT);
}

Test(blk_engine, refusals_and_depth)
{
    engine_up(false, true, 1, 4);
    static uint8_t b[8 * 512];
    struct iovec iov = { b, 512 };
    struct blk_request r[8];
    /* Past the end, a length that is not the iovecs', a write to a
     * read-only image, too many ranges, an unknown op. */
    r[0] = (struct blk_request){ .op = BLK_OP_READ, .offset = DISK_BYTES - 256, .len = 512,
                                 .iov = &iov, .niov = 1, .tag = 0 };
    r[1] = (struct blk_request){ .op = BLK_OP_READ, .offset = 0, .len = 1024, .iov = &iov,
                                 .niov = 1, .tag = 1 };
    r[2] = (struct blk_request){ .op = BLK_OP_WRITE, .offset = 0, .len = 512, .iov = &iov,
                                 .niov = 1, .tag = 2 };
    static const struct blk_range rg[5] = { { 0, 512 }, { 512, 512 }, { 1024, 512 },
                                            { 1536, 512 }, { 2048, 512 } };
    r[3] = (struct blk_request){ .op = BLK_OP_DISCARD, .ranges = rg, .nr_ranges = 5, .tag = 3 };
    r[4] = (struct blk_request){ .op = 99, .tag = 4 };
    cr_assert_eq(run(0, r, 5), 0u);
    cr_assert_eq(h.submit_ret[0][0], -EINVAL);
    cr_assert_eq(h.submit_ret[0][1], -EINVAL);
    cr_assert_eq(h.submit_ret[0][2], -EROFS);
    cr_assert_eq(h.submit_ret[0][3], -EINVAL);
    cr_assert_eq(h.submit_ret[0][4], -EINVAL);
    /* Depth 4: six reads in one round, the last two find no slot. */
    static struct iovec v[6];
    for (unsigned i = 0; i < 6; i++) {
        v[i] = (struct iovec){ b + 512 * (i % 8), 512 };
        r[i] = (struct blk_request){ .op = BLK_OP_READ, .offset = 512 * i, .len = 512,
                                     .iov = &v[i], .niov = 1, .tag = 10 + i };
    }
    cr_assert_eq(run(0, r, 6), 4u);
    cr_assert_eq(h.submit_ret[0][5 + 4], -EBUSY);
    cr_assert_eq(h.submit_ret[0][5 + 5], -EBUSY);
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(h.result[0][10 + i], 512);
}

Test(blk_engine, many_in_flight_on_two_queues)
{
    enum { N = 128, SZ = 4096 };
    engine_up(false, false, 2, N);
    static uint8_t data[2][N][SZ];
    static struct iovec iov[2][N];
    static struct blk_request r[2][N];
    for (unsigned q = 0; q < 2; q++)
        for (unsigned i = 0; i < N; i++) {
            memset(data[q][i], (int)(q * N + i + 1), SZ);
            iov[q][i] = (struct iovec){ data[q][i], SZ };
            r[q][i] = (struct blk_request){ .op = BLK_OP_WRITE,
                                            .offset = (uint64_t)(q * N + i) * SZ, .len = SZ,
                                            .iov = &iov[q][i], .niov = 1, .tag = i };
        }
    cr_assert_eq(run(0, r[0], N), (unsigned)N);
    cr_assert_eq(run(1, r[1], N), (unsigned)N);
    for (unsigned q = 0; q < 2; q++)
        for (unsigned i = 0; i < N; i++) {
            cr_assert_eq(h.result[q][i], SZ);
            forget(q, i);
            memset(data[q][i], 0, SZ);
            iov[q][i] = (struct iovec){ data[q][i], SZ };
            r[q][i].op = BLK_OP_READ;
        }
    cr_assert_eq(run(0, r[0], N), (unsigned)N);
    cr_assert_eq(run(1, r[1], N), (unsigned)N);
    for (unsigned q = 0; q < 2; q++)
        for (unsigned i = 0; i < N; i++) {
            cr_assert_eq(h.result[q][i], SZ);
            cr_assert_eq(data[q][i][0], (uint8_t)(q * N + i + 1));
            cr_assert_eq(data[q][i][SZ - 1], (uint8_t)(q * N + i + 1));
        }
}

Test(blk_engine, stop_waits_and_start_again)
{
    engine_up(false, false, 1, 32);
    static uint8_t b[32][4096];
    static struct iovec v[32];
    struct blk_request r[32];
    for (unsigned i = 0; i < 32; i++) {
        v[i] = (struct iovec){ b[i], sizeof(b[i]) };
        r[i] = (struct blk_request){ .op = BLK_OP_READ, .offset = 4096ULL * i, .len = 4096,
                                     .iov = &v[i], .niov = 1, .tag = i };
    }
    memcpy(h.pending[0], r, sizeof(r));
    h.npending[0] = 32;
    uint64_t one = 1;
    cr_assert_eq(write(h.kick_fd[0], &one, sizeof(one)), (ssize_t)sizeof(one));
    cr_assert(wait_for(&h.nsubmitted[0], 32, 5000));
    blk_engine_stop(h.e);
    /* Stop returned: nothing in flight, every request completed, stop(q). */
    cr_assert_eq(h.ndone[0], 32u);
    cr_assert_eq(h.stops, 1u);
    for (unsigned i = 0; i < 32; i++)
        cr_assert_eq(h.result[0][i], 4096);
    cr_assert(is_pattern(b[31], 31 * 4096, 4096));
    /* Started again: start(q) again, and requests are served. */
    cr_assert_eq(blk_engine_start(h.e), 0);
    forget(0, 0);
    cr_assert_eq(run1(0, r[0]), 4096);
    cr_assert_geq(h.starts, 2u);
}
