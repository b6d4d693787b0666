/* The virtio-blk backend: a raw image or block device, and the I/O
 * threads that serve the device's queues with io_uring.
 *
 * Image (blk_image_open): opened read-write (read-only for readonly disks),
 * O_DIRECT for cache=none; flock(LOCK_EX|LOCK_NB) on writable images and
 * LOCK_SH on read-only ones, so two VMs cannot both write one image (a
 * second minivmm gets "in use by another process" naming the file). With
 * O_DIRECT a second, buffered descriptor takes the requests whose guest
 * buffers or offsets are not aligned as O_DIRECT needs (statx DIOALIGN, or
 * the device's logical block size); Linux keeps the page cache coherent
 * with direct I/O on the same file.
 *
 * I/O threads (blk_engine): each owns one io_uring and a set of queues
 * (queue q belongs to thread q % nr_threads), and may be pinned to a host
 * CPU. Everything goes through the ring:
 *   - a READ on each queue's kick eventfd (the ioeventfd KVM signals when
 *     the driver notifies) completes when the driver has queued requests;
 *   - the thread then pops every available chain (notifications disabled
 *     meanwhile, §2.7.10), checks it (virtio_blk_parse) and queues SQEs:
 *     READV/WRITEV at sector * 512, FSYNC with IORING_FSYNC_DATASYNC for
 *     FLUSH, FALLOCATE (punch hole / zero range, KEEP_SIZE) for DISCARD and
 *     WRITE_ZEROES; all of one round are submitted with one system call;
 *   - a completion writes the status byte, pushes the used element, and
 *     after each batch of completions the used index is published once per
 *     queue and the driver interrupted if it asked (virtio_pci_queue_
 *     interrupt: an eventfd write that KVM's irqfd turns into the MSI).
 * Short transfers are resubmitted for the rest; O_DIRECT refused with
 * EINVAL is retried buffered; a filesystem without ZERO_RANGE/PUNCH_HOLE
 * falls back to punching, then to writing zeroes (DISCARD without hole
 * punching is a successful no-op: discarded data may read back as before).
 *
 * Durability: a FLUSH completes only after fdatasync returned, and it is
 * queued after the writes it covers have completed (the driver waits for
 * them, §5.2.6.4), so nothing acknowledged before the guest's flush
 * returned is lost when minivmm is killed, or the host loses power.
 *
 * Start/stop (the transport's DRIVER_OK and reset) are commands to the
 * threads through a control eventfd; stop waits until no request is in
 * flight. */
#ifndef MINIVMM_BLK_IO_URING_H
#define MINIVMM_BLK_IO_URING_H
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio_blk.h"

struct blk_image {
    char path[VIRTIO_BLK_PATH_MAX];
    int fd;                     /* requests; O_DIRECT with cache=none */
    int fd_buffered;            /* cache=none: for unaligned requests; else == fd */
    bool readonly, direct, is_block;
    uint64_t size;              /* bytes */
    uint32_t logical_block;     /* 512, or a block device's logical block size */
    uint32_t dio_align;         /* O_DIRECT offset/length/memory alignment */
    uint64_t dev, ino;          /* identity, for the default serial */
};

/* Errors are logged naming the file and what to do. */
int blk_image_open(struct blk_image *img, const char *path, bool readonly,
                   enum virtio_blk_cache cache);
/* fdatasync (writable images) and close. */
void blk_image_close(struct blk_image *img);

struct blk_engine_config {
    const char *name;                       /* "virtio-blk0" */
    struct blk_image *img;
    struct virtio_pci *vp;
    const struct virtio_blk_limits *limits;
    uint8_t serial[VIRTIO_BLK_SERIAL_LEN];  /* GET_ID answer, NUL-padded */
    unsigned nr_queues;                     /* 1..VIRTIO_BLK_MAX_QUEUES */
    unsigned nr_threads;                    /* 1..nr_queues */
    uint16_t queue_size;                    /* the transport's maximum */
    int cpu;                                /* pin the threads here; -1: no */
};

struct blk_engine;

/* Rings and threads (idle until blk_engine_start). */
int blk_engine_create(const struct blk_engine_config *c, struct blk_engine **out);
/* DRIVER_OK: the threads take the started queues (virtio_pci_queue) and
 * serve them. */
int blk_engine_start(struct blk_engine *e);
/* Reset: stop taking requests, wait for those in flight, let go of the
 * queues. */
void blk_engine_stop(struct blk_engine *e);
/* Stop (if running), end the threads, free. */
void blk_engine_destroy(struct blk_engine *e);

#endif
