/* A disk image for any disk front end (virtio-blk, and the AHCI and NVMe
 * controllers to come): a raw image file or a host block device, opened and
 * described here; its I/O goes through devices/block/blk_engine.h.
 *
 * Done here:
 *   - open read-write, or read-only for read-only disks; O_DIRECT when
 *     asked (cache=none);
 *   - flock(LOCK_EX|LOCK_NB) on writable images and LOCK_SH on read-only
 *     ones, so two VMs cannot both write one image: a second writer (or a
 *     reader while one writes) gets "in use by another process" naming the
 *     file and -EWOULDBLOCK. The lock goes with the descriptor, also when
 *     minivmm is killed;
 *   - size (a file's length, or BLKGETSIZE64), logical block size (512, or
 *     BLKSSZGET of a block device), identity (st_dev, st_ino) for default
 *     serial numbers;
 *   - O_DIRECT alignment: statx(STATX_DIOALIGN) when the kernel says, else
 *     the logical block size; a second, buffered descriptor takes the
 *     requests whose buffers, lengths or offsets do not meet it (Linux keeps
 *     the page cache coherent with direct I/O on the same file), see
 *     blk_image_fd_for;
 *   - what the file can do for discard and write-zeroes, remembered once a
 *     method was refused (EOPNOTSUPP, or EINVAL from fallocate): write-zeroes
 *     tries FALLOC_FL_ZERO_RANGE, then FALLOC_FL_PUNCH_HOLE (a hole reads
 *     back as zeroes), then writing zeroes; one that may deallocate (unmap)
 *     punches first; a discard punches, and is a successful no-op where
 *     nothing can punch (discarded data may read back as before);
 *   - close with an fdatasync of a writable image.
 * Not done: image formats (qcow2 ...), resizing, backing files, sizes not a
 * multiple of 512 (the tail is not visible; a warning says so).
 *
 * Errors are logged once, under the caller's log component, naming the file
 * ("--disk FILE: ...") and what to do. */
#ifndef MINIVMM_BLK_IMAGE_H
#define MINIVMM_BLK_IMAGE_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define BLK_IMAGE_PATH_MAX 1024
#define BLK_SECTOR         512u

struct blk_image {
    char path[BLK_IMAGE_PATH_MAX];
    const char *comp;           /* log component: "virtio-blk" */
    int fd;                     /* requests; O_DIRECT with direct */
    int fd_buffered;            /* direct: for unaligned requests; else == fd */
    bool readonly, direct, is_block;
    uint64_t size;              /* bytes */
    uint32_t logical_block;     /* 512, or a block device's logical block size */
    uint32_t dio_align;         /* O_DIRECT offset/length/memory alignment */
    uint64_t dev, ino;          /* identity, for a default serial */
    /* Learned from refusals; shared by every thread doing I/O on it. */
    atomic_bool no_punch, no_zero_range;
};

/* Open path (see above). comp names the log component (a string literal, or
 * one that outlives the image). 0 or -errno, logged. */
int blk_image_open(struct blk_image *img, const char *comp, const char *path, bool readonly,
                   bool direct);
/* fdatasync (writable images) and close. Safe on a closed image. */
void blk_image_close(struct blk_image *img);

/* The descriptor for a transfer of iov[0..n) at byte offset off: fd when
 * O_DIRECT can take it (offset, every base and length aligned to
 * dio_align) or the image is buffered, else fd_buffered. */
int blk_image_fd_for(const struct blk_image *img, const struct iovec *iov, unsigned n,
                     uint64_t off);

/* How a discard or write-zeroes range is done, in fallback order. */
enum blk_zero_method {
    BLK_ZERO_NONE = 0,          /* nothing to do (a discard nothing here can do): success */
    BLK_ZERO_PUNCH,             /* fallocate PUNCH_HOLE | KEEP_SIZE */
    BLK_ZERO_RANGE,             /* fallocate ZERO_RANGE | KEEP_SIZE */
    BLK_ZERO_WRITE,             /* write zeroes */
};

/* The first method for a range: discard, or write-zeroes that may (unmap)
 * or may not deallocate; methods the file refused before are skipped. */
enum blk_zero_method blk_image_zero_first(const struct blk_image *img, bool discard, bool unmap);
/* Method m was refused (EOPNOTSUPP, or EINVAL for a fallocate): remember it
 * for the file, and the method to try next. BLK_ZERO_WRITE has no next: it
 * returns BLK_ZERO_WRITE, and a write error is an error. */
enum blk_zero_method blk_image_zero_refused(struct blk_image *img, enum blk_zero_method m,
                                            bool discard, bool unmap);

#endif
