/* The --disk flag, parsed here so vmm/config.c only forwards it:
 *
 *   --disk FILE[,readonly][,cache=none|writeback][,queues=N][,iothreads=N]
 *               [,serial=S][,discard=on|off]          (repeatable)
 *
 *   FILE        a raw image or a block device (no commas in the name)
 *   readonly    the guest sees a read-only disk (VIRTIO_BLK_F_RO); the
 *               image is opened read-only with a shared lock
 *   cache=      writeback (default): through the host page cache, flushed
 *               to stable storage when the guest flushes; none: O_DIRECT
 *   queues=N    request queues (VIRTIO_BLK_F_MQ), 1-16, default 1
 *   iothreads=N I/O threads serving them, 1-queues, default 1
 *   serial=S    what VIRTIO_BLK_T_GET_ID returns (at most 20 characters,
 *               printable ASCII); default: derived from the file
 *   discard=    on (default): DISCARD and WRITE_ZEROES are offered; off:
 *               neither */
#ifndef MINIVMM_VIRTIO_BLK_ARGS_H
#define MINIVMM_VIRTIO_BLK_ARGS_H
#include <stdbool.h>
#include <stddef.h>

#define VIRTIO_BLK_ARGS_MAX_DISKS 8
#define VIRTIO_BLK_PATH_MAX       1024
#define VIRTIO_BLK_SERIAL_LEN     20     /* VIRTIO_BLK_ID_BYTES */
#define VIRTIO_BLK_MAX_QUEUES     16

enum virtio_blk_cache { VIRTIO_BLK_CACHE_WRITEBACK = 0, VIRTIO_BLK_CACHE_NONE };

struct virtio_blk_arg {
    char path[VIRTIO_BLK_PATH_MAX];
    bool readonly;
    enum virtio_blk_cache cache;
    unsigned queues;                        /* 1.. */
    unsigned iothreads;                     /* 1..queues */
    char serial[VIRTIO_BLK_SERIAL_LEN + 1]; /* "" = derived from the file */
    bool discard;
};

struct virtio_blk_args {
    struct virtio_blk_arg disk[VIRTIO_BLK_ARGS_MAX_DISKS];
    unsigned nr;
};

/* The usage lines for --help. */
extern const char virtio_blk_args_usage[];

/* One --disk value into *out (defaults filled in). 0, or -EINVAL with a
 * message naming the flag, the value and what to do in err. */
int virtio_blk_arg_parse(const char *value, struct virtio_blk_arg *out, char *err, unsigned errlen);

/* The config.c forwarding interface (as vfio/vfio_args.h): is name
 * (namelen bytes) --disk? Then apply its value (appends a disk). */
bool virtio_blk_args_flag(const char *name, size_t namelen, bool *takes_value);
int virtio_blk_args_apply(struct virtio_blk_args *a, const char *name, size_t namelen,
                          const char *value, char *err, unsigned errlen);

struct pcidev_host;
struct pcidev_list;
/* Create a virtio-blk device for each --disk, in order, and add it to the
 * machine's PCI devices (devices/pci/pcidev.h): storage on the root bus,
 * bootable in --disk order. Errors name the file; devices already added
 * stay in the list for the caller to destroy. */
int virtio_blk_attach(const struct pcidev_host *h, const struct virtio_blk_args *a,
                      struct pcidev_list *l);

#endif
