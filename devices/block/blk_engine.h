/* The asynchronous block I/O engine under every disk front end (virtio-blk
 * now; the AHCI ports and NVMe queues to come): io_uring threads that do a
 * front end's requests on a disk image (devices/block/image.h) and hand
 * back completions. It knows nothing of virtqueues, command slots or status
 * codes: a front end turns its requests into struct blk_request and the
 * results (bytes or -errno) back into its own status.
 *
 * Threads and queues: the engine has nr_queues queues, each with `depth`
 * request slots; queue q belongs to thread q % nr_threads, which owns one
 * io_uring and may be pinned to a host CPU. A thread waits only in its ring
 * (one io_uring_submit_and_wait per round):
 *   - a READ on each queue's kick eventfd (blk_engine_arm_kick: virtio's
 *     ioeventfd, an NVMe doorbell's, an AHCI port's command-issue eventfd)
 *     completes when the guest has queued work: ops->kick runs;
 *   - a READ on the control eventfd brings start/stop/exit commands
 *     (blk_engine_start/stop/destroy, from the vCPU side);
 *   - the requests' SQEs: READV/WRITEV, FSYNC(IORING_FSYNC_DATASYNC),
 *     FALLOCATE (PUNCH_HOLE / ZERO_RANGE, KEEP_SIZE) and WRITEV of zeroes.
 * Every callback runs on the queue's thread, with the thread's state
 * consistent: a callback may submit requests and arm the kick.
 *
 * Callbacks (struct blk_engine_ops, all on the queue's thread):
 *   start(q)     blk_engine_start reached the thread: take the queue (look
 *                at what is already queued, arm the kick)
 *   kick(q)      the kick eventfd fired (its counter was consumed); not
 *                called while stopped: a kick that fires then is consumed
 *                and dropped, so start(q) must look at the queue whatever
 *                the eventfd says. The kick is not re-armed by the
 *                engine: the front end arms it when it has drained the
 *                queue (so a starved or broken queue stays quiet)
 *   complete(q, tag, result)
 *                a request is done: result is the bytes moved (READ,
 *                WRITE) or 0 (FLUSH, DISCARD, WRITE_ZEROES), or -errno.
 *                Its slot is free again before the call
 *   round_end(q) after each round of completions, for every queue of the
 *                thread: publish what completed once (one used-index update,
 *                one interrupt, for a whole batch)
 *   stop(q)      the queue is stopped and nothing is in flight (stop or
 *                exit): let go of it
 *
 * Requests (blk_engine_submit, on the queue's thread): offsets and lengths
 * in bytes, a caller tag given back with the completion.
 *   READ/WRITE    iov[0..niov) of guest memory, len = their total; the
 *                 array stays the engine's until the completion (a short
 *                 transfer advances it in place and the rest is resubmitted;
 *                 no progress is -EIO). With O_DIRECT, a request whose
 *                 buffers or offset miss the alignment goes through the
 *                 buffered descriptor (blk_image_fd_for), and one O_DIRECT
 *                 refuses with EINVAL anyway is retried there once
 *   FLUSH         fdatasync: complete only after the data written before it
 *                 is on stable storage. Not ordered against requests still
 *                 in flight: a front end queues its flush after the writes
 *                 it covers completed (as virtio §5.2.6.4, NVMe and ATA
 *                 drivers do)
 *   DISCARD       ranges (ranges[0..nr_ranges), or offset/len when
 *                 nr_ranges is 0): holes punched, or nothing where the file
 *                 cannot (success: discarded data may read back as before)
 *   WRITE_ZEROES  the ranges read back as zeroes: ZERO_RANGE, then
 *                 PUNCH_HOLE, then writing zeroes (punching first when
 *                 unmap allows deallocation); refusals are remembered for
 *                 the image (blk_image_zero_refused)
 * Ranges run concurrently; the request completes with the first error.
 * Refused at once (nothing done, no completion): -EINVAL (no such queue or
 * op, a length that is 0 or not the iovecs' total, past the end of the
 * image, too many ranges), -EROFS (a write to a read-only image), -EBUSY
 * (all depth slots of the queue in flight).
 *
 * Not done: request ordering or barriers (front ends order), splitting by
 * size (one SQE per request; the kernel splits), retries of I/O errors,
 * timeouts, per-request priorities, polling (SQPOLL/IOPOLL), registered
 * buffers or files, zoned devices.
 *
 * Start/stop: blk_engine_start makes the threads call start(q); stop waits
 * until every slot is free and stop(q) was called; destroy stops, cancels
 * the armed reads and joins. */
#ifndef MINIVMM_BLK_ENGINE_H
#define MINIVMM_BLK_ENGINE_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/block/image.h"

#define BLK_ENGINE_MAX_QUEUES 64    /* the completion tag has 8 bits for it */
#define BLK_ENGINE_MAX_DEPTH  4096
#define BLK_ENGINE_MAX_RANGES 256   /* NVMe DSM's 256 ranges */

enum blk_op { BLK_OP_READ = 1, BLK_OP_WRITE, BLK_OP_FLUSH, BLK_OP_DISCARD, BLK_OP_WRITE_ZEROES };

struct blk_range {
    uint64_t offset, len;       /* bytes */
};

struct blk_request {
    enum blk_op op;
    uint64_t offset, len;       /* bytes: the transfer, or the one range */
    struct iovec *iov;          /* READ/WRITE; the engine's until the completion */
    unsigned niov;
    const struct blk_range *ranges;   /* DISCARD/WRITE_ZEROES; the caller's until then */
    unsigned nr_ranges;         /* 0: offset/len is the range */
    bool unmap;                 /* WRITE_ZEROES may deallocate */
    uint64_t tag;               /* given back with the completion */
};

struct blk_engine_ops {
    void (*start)(void *opaque, unsigned q);
    void (*kick)(void *opaque, unsigned q);
    void (*complete)(void *opaque, unsigned q, uint64_t tag, int64_t result);
    void (*round_end)(void *opaque, unsigned q);
    void (*stop)(void *opaque, unsigned q);
};

struct blk_engine_config {
    const char *name;           /* for messages: "virtio-blk0" */
    const char *thread_name;    /* "blk0": threads "blk0-io0", ... */
    struct blk_image *img;      /* open; outlives the engine */
    unsigned nr_queues;         /* 1..BLK_ENGINE_MAX_QUEUES */
    unsigned nr_threads;        /* 1..nr_queues */
    unsigned depth;             /* requests in flight per queue, 1..BLK_ENGINE_MAX_DEPTH */
    unsigned max_ranges;        /* per DISCARD/WRITE_ZEROES, 1..BLK_ENGINE_MAX_RANGES */
    int cpu;                    /* pin the threads here; -1: no */
    const struct blk_engine_ops *ops;
    void *opaque;
};

struct blk_engine;

/* Rings and threads, idle until blk_engine_start. 0 or -errno, logged. */
int blk_engine_create(const struct blk_engine_config *c, struct blk_engine **out);
/* The threads call start(q) for their queues and serve them. */
int blk_engine_start(struct blk_engine *e);
/* Stop taking kicks, wait for the requests in flight, stop(q). No-op when
 * not started. */
void blk_engine_stop(struct blk_engine *e);
/* Stop (if running), end the threads, free. NULL is fine. */
void blk_engine_destroy(struct blk_engine *e);

/* On queue q's thread (from a callback) only: */
int blk_engine_submit(struct blk_engine *e, unsigned q, const struct blk_request *r);
/* READ on fd for q's kick, unless one is armed already. */
void blk_engine_arm_kick(struct blk_engine *e, unsigned q, int fd);
/* Between start(q) and the stop command: new work may be taken. */
bool blk_engine_running(const struct blk_engine *e, unsigned q);
/* Free slots of q. */
unsigned blk_engine_free_slots(const struct blk_engine *e, unsigned q);

#endif
