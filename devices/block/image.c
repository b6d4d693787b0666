/* Disk images: see devices/block/image.h. */
#include "devices/block/image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include "vmm/log.h"

int blk_image_open(struct blk_image *img, const char *comp, const char *path, bool readonly,
                   bool direct)
{
    struct stat st;
    int flags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    int err;

    memset(img, 0, sizeof(*img));
    img->fd = img->fd_buffered = -1;
    img->comp = comp ? comp : "block";
    comp = img->comp;
    snprintf(img->path, sizeof(img->path), "%s", path);
    img->readonly = readonly;
    img->direct = direct;
    atomic_init(&img->no_punch, false);
    atomic_init(&img->no_zero_range, false);

    img->fd = open(path, flags | (img->direct ? O_DIRECT : 0));
    if (img->fd < 0) {
        err = -errno;
        if (errno == ENOENT)
            log_err(comp, "--disk %s: no such file; create the image first (e.g. "
                    "`truncate -s 8G %s`)", path, path);
        else if (errno == EACCES || errno == EPERM || errno == EROFS)
            log_err(comp, "--disk %s: cannot open it %s: %s; fix its permissions or add "
                    ",readonly", path, readonly ? "for reading" : "for writing", strerror(errno));
        else if (errno == EINVAL && img->direct)
            log_err(comp, "--disk %s: its filesystem does not support O_DIRECT (tmpfs?); use "
                    "cache=writeback", path);
        else
            log_err(comp, "--disk %s: cannot open it: %s", path, strerror(errno));
        return err;
    }
    if (fstat(img->fd, &st) < 0) {
        err = -errno;
        log_err(comp, "--disk %s: fstat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        log_err(comp, "--disk %s: not a regular file or a block device", path);
        err = -EINVAL;
        goto fail;
    }
    img->is_block = S_ISBLK(st.st_mode);
    img->dev = st.st_dev;
    img->ino = st.st_ino;
    /* Two VMs writing one image destroy it: exclusive for writers, shared
     * for readers (flock(2); released when the descriptor closes, also
     * when minivmm is killed). */
    if (flock(img->fd, (readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
        err = -errno;
        if (errno == EWOULDBLOCK)
            log_err(comp, "--disk %s: in use by another process, which holds a lock on it "
                    "(another minivmm?); stop it, or use another image%s", path,
                    readonly ? "" : " (several VMs may share an image only with ,readonly)");
        else
            log_err(comp, "--disk %s: cannot lock it: %s", path, strerror(errno));
        goto fail;
    }
    img->logical_block = BLK_SECTOR;
    if (img->is_block) {
        uint64_t bytes;
        int lbs = 0;
        if (ioctl(img->fd, BLKGETSIZE64, &bytes) < 0) {
            err = -errno;
            log_err(comp, "--disk %s: cannot read the device size: %s", path, strerror(errno));
            goto fail;
        }
        img->size = bytes;
        if (ioctl(img->fd, BLKSSZGET, &lbs) == 0 && lbs >= 512 && lbs <= 65536 &&
            !(lbs & (lbs - 1)))
            img->logical_block = (uint32_t)lbs;
    } else {
        img->size = (uint64_t)st.st_size;
    }
    if (img->size < BLK_SECTOR) {
        log_err(comp, "--disk %s: %" PRIu64 " bytes is smaller than one sector; give the "
                "image a size (e.g. `truncate -s 8G %s`)", path, img->size, path);
        err = -EINVAL;
        goto fail;
    }
    if (img->size % BLK_SECTOR)
        log_warn(comp, "--disk %s: the size is not a multiple of 512; the last %" PRIu64
                 " bytes are not visible to the guest", path, img->size % BLK_SECTOR);
    img->dio_align = img->logical_block;
#ifdef STATX_DIOALIGN
    if (img->direct) {
        struct statx sx;
        if (statx(img->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
            (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align) {
            uint32_t a = sx.stx_dio_offset_align > sx.stx_dio_mem_align ? sx.stx_dio_offset_align
                                                                       : sx.stx_dio_mem_align;
            if (a >= 1 && a <= 65536)
                img->dio_align = a;
        }
    }
#endif
    if (img->direct) {
        img->fd_buffered = open(path, flags);
        if (img->fd_buffered < 0) {
            err = -errno;
            log_err(comp, "--disk %s: cannot open it a second time (buffered): %s", path,
                    strerror(errno));
            goto fail;
        }
    } else {
        img->fd_buffered = img->fd;
    }
    return 0;
fail:
    blk_image_close(img);
    return err;
}

void blk_image_close(struct blk_image *img)
{
    if (img->fd >= 0 && !img->readonly && fdatasync(img->fd) < 0)
        log_err(img->comp, "--disk %s: final flush failed: %s", img->path, strerror(errno));
    if (img->fd_buffered >= 0 && img->fd_buffered != img->fd)
        close(img->fd_buffered);
    if (img->fd >= 0)
        close(img->fd);
    img->fd = img->fd_buffered = -1;
}

int blk_image_fd_for(const struct blk_image *img, const struct iovec *iov, unsigned n,
                     uint64_t off)
{
    uint32_t align = img->dio_align;

    if (!img->direct)
        return img->fd;
    if (off % align)
        return img->fd_buffered;
    for (unsigned i = 0; i < n; i++)
        if ((uintptr_t)iov[i].iov_base % align || iov[i].iov_len % align)
            return img->fd_buffered;
    return img->fd;
}

/* Skip the methods this file is known not to have. */
static enum blk_zero_method zero_skip(const struct blk_image *img, enum blk_zero_method m,
                                      bool discard, bool unmap)
{
    if (m == BLK_ZERO_PUNCH && atomic_load(&img->no_punch))
        m = discard ? BLK_ZERO_NONE : BLK_ZERO_RANGE;
    if (m == BLK_ZERO_RANGE && atomic_load(&img->no_zero_range))
        m = unmap ? BLK_ZERO_WRITE : BLK_ZERO_PUNCH;
    if (m == BLK_ZERO_PUNCH && atomic_load(&img->no_punch))
        m = BLK_ZERO_WRITE;
    return m;
}

enum blk_zero_method blk_image_zero_first(const struct blk_image *img, bool discard, bool unmap)
{
    return zero_skip(img, discard || unmap ? BLK_ZERO_PUNCH : BLK_ZERO_RANGE, discard, unmap);
}

enum blk_zero_method blk_image_zero_refused(struct blk_image *img, enum blk_zero_method m,
                                            bool discard, bool unmap)
{
    if (m == BLK_ZERO_PUNCH)
        atomic_store(&img->no_punch, true);
    else if (m == BLK_ZERO_RANGE)
        atomic_store(&img->no_zero_range, true);
    else
        return m;
    return zero_skip(img, m, discard, unmap);
}
