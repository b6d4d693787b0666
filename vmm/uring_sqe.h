/* One submission-queue policy for every io_uring backend (blk_engine.c,
 * virtio_net.c): when the submission queue is full, hand it to the kernel and
 * retry once; NULL only if the kernel could not take any. */
#ifndef MINIVMM_URING_SQE_H
#define MINIVMM_URING_SQE_H
#include <liburing.h>

static inline struct io_uring_sqe *uring_get_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}
#endif
