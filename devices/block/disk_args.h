/* The disk flags, parsed here so the front end (frontend/cli.c) only
 * forwards them; every disk front end (virtio-blk, AHCI, NVMe) takes its
 * disks from the one list they make:
 *
 *   --disk FILE[,if=virtio|sata|nvme][,readonly][,cache=none|writeback]
 *               [,queues=N][,iothreads=N][,serial=S][,discard=on|off]
 *               [,bootindex=N]                          (repeatable)
 *   --cdrom FILE[,bootindex=N]                         (repeatable)
 *   --boot cdrom|disk
 *
 *   FILE        a raw image or a block device (no commas in the name)
 *   if=         the controller the guest sees it on: virtio (default,
 *               virtio-blk), sata (a port of the q35 AHCI at 00:1f.2) or
 *               nvme (an NVMe controller of its own, one namespace)
 *   readonly    the guest sees a read-only disk; the image is opened
 *               read-only with a shared lock
 *   cache=      writeback (default): through the host page cache, flushed
 *               to stable storage when the guest flushes; none: O_DIRECT
 *   queues=N    request queues (virtio: VIRTIO_BLK_F_MQ), 1-16, default 1
 *   iothreads=N I/O threads serving them, 1-queues, default 1
 *   serial=S    the disk's serial number (virtio GET_ID, ATA IDENTIFY, NVMe
 *               Identify; at most 20 characters, printable ASCII);
 *               default: derived from the file
 *   discard=    on (default): discard/TRIM/deallocate and write-zeroes are
 *               offered; off: neither
 *   bootindex=N its place in the firmware's boot order (0 first); without
 *               it disks boot in command-line order
 *   --cdrom     a read-only ATAPI CD-ROM on the AHCI (2048-byte sectors;
 *               an image whose size is not a multiple of 2048 is refused at
 *               start): the installer, a driver ISO
 *   --boot      cdrom: the CD-ROMs boot before the disks (a fresh disk
 *               boots the installer, as QEMU's -boot d); disk (default):
 *               the disks first
 */
#ifndef MINIVMM_DISK_ARGS_H
#define MINIVMM_DISK_ARGS_H
#include <stdbool.h>
#include <stddef.h>

#define DISK_ARGS_MAX       16     /* --disk and --cdrom together */
#define DISK_PATH_MAX       1024
#define DISK_SERIAL_LEN     20     /* VIRTIO_BLK_ID_BYTES, ATA's 20 bytes */
#define DISK_MAX_QUEUES     16
#define DISK_NO_BOOTINDEX   (-1)

enum disk_cache { DISK_CACHE_WRITEBACK = 0, DISK_CACHE_NONE };
enum disk_iface { DISK_IF_VIRTIO = 0, DISK_IF_SATA, DISK_IF_NVME };

struct disk_arg {
    char path[DISK_PATH_MAX];
    bool readonly;
    enum disk_cache cache;
    unsigned queues;                        /* 1.. */
    unsigned iothreads;                     /* 1..queues */
    char serial[DISK_SERIAL_LEN + 1]; /* "" = derived from the file */
    bool discard;
    enum disk_iface iface;
    bool cdrom;                             /* --cdrom: ATAPI on the AHCI, read-only */
    int bootindex;                          /* as given; DISK_NO_BOOTINDEX */
    int boot_index;                         /* after disk_args_finish: 0 boots first */
};

struct disk_args {
    struct disk_arg disk[DISK_ARGS_MAX];    /* in command-line order */
    unsigned nr;
    bool boot_cdrom;                        /* --boot cdrom */
};

/* The usage lines for --help. */
extern const char disk_args_usage[];

/* One --disk value into *out (defaults filled in). 0, or -EINVAL with a
 * message naming the flag, the value and what to do in err. */
int disk_arg_parse(const char *value, struct disk_arg *out, char *err, unsigned errlen);

/* The front end's forwarding interface (as vfio/vfio_args.h): is name
 * (namelen bytes) --disk, --cdrom or --boot? Then apply its value. */
bool disk_args_flag(const char *name, size_t namelen, bool *takes_value);
int disk_args_apply(struct disk_args *a, const char *name, size_t namelen,
                    const char *value, char *err, unsigned errlen);
/* After every flag: the boot order. Disks and CD-ROMs with a bootindex
 * come first by it (two alike are refused); then the rest in command-line
 * order, the CD-ROMs before the disks with --boot cdrom, after them
 * otherwise. Fills boot_index 0.. for all. 0 or -EINVAL (err set). */
int disk_args_finish(struct disk_args *a, char *err, unsigned errlen);

#endif
