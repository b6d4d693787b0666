/* devices/virtio/virtio_blk.c (on devices/block/blk_engine.c and image.c),
 * devices/block/disk_args.c:
 * request checking on hand-made chains; then the whole device end to end --
 * a driver written here programs the transport through the MMIO bus, puts
 * requests in guest memory, notifies, and the I/O thread serves them on
 * io_uring against a real file in a temporary directory; --disk parsing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#define VIRTIO_PCI_NO_LEGACY
#include <linux/virtio_pci.h>

#include "devices/pci/pci.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/block/disk_args.h"
#include "devices/virtio/virtio_pci.h"
#include "fake_env.h"
#include "virtio_driver.h"
#include "vmm/gm.h"
#include "vmm/irq.h"

/* ---- request checking on hand-made chains ---- */

static const struct virtio_blk_limits lim = {
    .capacity = 1000, .readonly = false, .discard = true, .write_zeroes = true,
    .max_discard_sectors = 100, .max_discard_seg = 4, .discard_align = 1,
    .max_zeroes_sectors = 50, .max_zeroes_seg = 1,
};

struct mk {
    struct virtq_seg seg[8];
    struct virtq_chain c;
    uint8_t buf[8][1024];
};

static void mk_init(struct mk *m)
{
    memset(m, 0, sizeof(*m));
    m->c.seg = m->seg;
    m->c.cap = 8;
}

/* Append a segment of len bytes (contents copied from src if given). */
static uint8_t *mk_add(struct mk *m, uint32_t len, bool write, const void *src)
{
    unsigned i = m->c.nr;
    cr_assert_lt(i, 8u);
    cr_assert_leq(len, 1024u);
    if (src)
        memcpy(m->buf[i], src, len);
    m->seg[i] = (struct virtq_seg){ .gpa = 0x1000ULL * i, .hva = m->buf[i], .len = len,
                                    .write = write };
    m->c.nr++;
    if (write) {
        m->c.writable_len += len;
    } else {
        m->c.nr_readable++;
        m->c.readable_len += len;
    }
    return m->buf[i];
}

static void mk_hdr(struct mk *m, uint32_t type, uint64_t sector)
{
    struct virtio_blk_outhdr h = { .type = type, .ioprio = 0, .sector = sector };
    mk_add(m, sizeof(h), false, &h);
}

static int parse(struct mk *m, struct virtio_blk_req *r, const struct virtio_blk_limits *l)
{
    return virtio_blk_parse(&m->c, l, r);
}

Test(virtio_blk_parse, read_request)
{
    struct mk m;
    struct virtio_blk_req r;
    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_IN, 10);
    mk_add(&m, 1024, true, NULL);
    uint8_t *st = mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_OK);
    cr_assert_eq(r.type, VIRTIO_BLK_T_IN);
    cr_assert_eq(r.sector, 10);
    cr_assert_eq(r.data_off, 0);
    cr_assert_eq(r.data_len, 1024);
    cr_assert_eq(r.status, st);
}

Test(virtio_blk_parse, status_is_the_last_writable_byte)
{
    struct mk m;
    struct virtio_blk_req r;
    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_IN, 0);
    uint8_t *p = mk_add(&m, 513, true, NULL);   /* data and status in one buffer */
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_OK);
    cr_assert_eq(r.status, p + 512);
    cr_assert_eq(r.data_len, 512);
}

Test(virtio_blk_parse, header_split_across_buffers)
{
    struct mk m;
    struct virtio_blk_req r;
    struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_OUT, .sector = 7 };
    uint8_t data[512];
    memset(data, 0x5A, sizeof(data));
    mk_init(&m);
    mk_add(&m, 4, false, &h);
    mk_add(&m, 12, false, (uint8_t *)&h + 4);
    mk_add(&m, 512, false, data);
    mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_OK);
    cr_assert_eq(r.type, VIRTIO_BLK_T_OUT);
    cr_assert_eq(r.sector, 7);
    cr_assert_eq(r.data_off, 16);
    cr_assert_eq(r.data_len, 512);
}

Test(virtio_blk_parse, header_too_short)
{
    struct mk m;
    struct virtio_blk_req r;
    mk_init(&m);
    mk_add(&m, 8, false, NULL);
    uint8_t *st = mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_IOERR);
    cr_assert_eq(r.status, st, "the status byte is still found, to report the error");
}

Test(virtio_blk_parse, status_byte_missing)
{
    struct mk m;
    struct virtio_blk_req r;
    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_FLUSH, 0);
    cr_assert_eq(parse(&m, &r, &lim), -EIO, "no writable byte at all");
}

Test(virtio_blk_parse, status_byte_read_only)
{
    struct mk m;
    struct virtio_blk_req r;
    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_OUT, 0);
    mk_add(&m, 512, false, NULL);
    mk_add(&m, 1, false, NULL);   /* the "status" is device-readable */
    cr_assert_eq(parse(&m, &r, &lim), -EIO);
}

Test(virtio_blk_parse, partial_sectors_refused)
{
    struct mk m;
    struct virtio_blk_req r;
    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_IN, 0);
    mk_add(&m, 500, true, NULL);
    mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_IOERR);
    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_OUT, 0);
    mk_add(&m, 520, false, NULL);
    mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_IOERR);
}

Test(virtio_blk_parse, sector_range_checked)
{
    struct mk m;
    struct virtio_blk_req r;
    const uint64_t sectors[] = { 999, 998, 1000, ~0ULL, ~0ULL - 1 };
    const int want[] = { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR,
                         VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_IOERR };
    for (unsigned i = 0; i < 5; i++) {
        mk_init(&m);
        mk_hdr(&m, VIRTIO_BLK_T_IN, sectors[i]);
        mk_add(&m, 1024, true, NULL);   /* two sectors */
        mk_add(&m, 1, true, NULL);
        cr_assert_eq(parse(&m, &r, &lim), want[i], "sector %llu", (unsigned long long)sectors[i]);
    }
    /* A zero-length read at the very end is in range. */
    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_IN, 1000);
    mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_OK);
}

Test(virtio_blk_parse, write_to_read_only_disk)
{
    struct virtio_blk_limits ro = lim;
    struct mk m;
    struct virtio_blk_req r;
    ro.readonly = true;
    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_OUT, 0);
    mk_add(&m, 512, false, NULL);
    mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &ro), VIRTIO_BLK_S_IOERR);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_OK);
}

Test(virtio_blk_parse, flush_and_get_id)
{
    struct mk m;
    struct virtio_blk_req r;
    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_FLUSH, 0);
    mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_OK);
    cr_assert_eq(r.type, VIRTIO_BLK_T_FLUSH);
    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_GET_ID, 0);
    mk_add(&m, 20, true, NULL);
    mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_OK);
    cr_assert_eq(r.data_len, 20);
}

Test(virtio_blk_parse, unknown_type_unsupported)
{
    struct mk m;
    struct virtio_blk_req r;
    mk_init(&m);
    mk_hdr(&m, 2 /* legacy SCSI command */, 0);
    mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_UNSUPP);
    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_SECURE_ERASE, 0);
    mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_UNSUPP, "secure erase is not offered");
}

static void mk_ranges(struct mk *m, uint32_t type, const struct virtio_blk_discard_write_zeroes *d,
                      unsigned n)
{
    mk_init(m);
    mk_hdr(m, type, 0);
    mk_add(m, n * 16, false, d);
    mk_add(m, 1, true, NULL);
}

Test(virtio_blk_parse, discard_and_write_zeroes)
{
    struct mk m;
    struct virtio_blk_req r;
    struct virtio_blk_discard_write_zeroes d[5] = {
        { .sector = 0, .num_sectors = 100 }, { .sector = 900, .num_sectors = 100 },
        { .sector = 10, .num_sectors = 1 }, { .sector = 20, .num_sectors = 2 },
    };
    mk_ranges(&m, VIRTIO_BLK_T_DISCARD, d, 4);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_OK);
    cr_assert_eq(r.nr_ranges, 4);
    cr_assert_eq(r.ranges[1].sector, 900);
    cr_assert_eq(r.ranges[3].nr_sectors, 2);

    mk_ranges(&m, VIRTIO_BLK_T_DISCARD, d, 5);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_IOERR, "more than max_discard_seg");

    d[0].flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
    mk_ranges(&m, VIRTIO_BLK_T_DISCARD, d, 1);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_UNSUPP, "discard takes no unmap flag");
    d[0].num_sectors = 50;
    mk_ranges(&m, VIRTIO_BLK_T_WRITE_ZEROES, d, 1);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_OK, "write zeroes may unmap");
    d[0].flags = 0x8;
    mk_ranges(&m, VIRTIO_BLK_T_WRITE_ZEROES, d, 1);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_UNSUPP, "unknown flag");
    d[0].flags = 0;
    d[0].num_sectors = 51;
    mk_ranges(&m, VIRTIO_BLK_T_WRITE_ZEROES, d, 1);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_IOERR, "over max_write_zeroes_sectors");
    mk_ranges(&m, VIRTIO_BLK_T_WRITE_ZEROES, d + 2, 2);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_IOERR, "over max_write_zeroes_seg");
    d[0].sector = 990;
    d[0].num_sectors = 11;
    mk_ranges(&m, VIRTIO_BLK_T_DISCARD, d, 1);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_IOERR, "past the end");
    d[0].num_sectors = 0;
    mk_ranges(&m, VIRTIO_BLK_T_DISCARD, d, 1);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_IOERR, "empty range");

    mk_init(&m);
    mk_hdr(&m, VIRTIO_BLK_T_DISCARD, 0);
    mk_add(&m, 24, false, NULL);
    mk_add(&m, 1, true, NULL);
    cr_assert_eq(parse(&m, &r, &lim), VIRTIO_BLK_S_IOERR, "ranges not a multiple of 16 bytes");

    struct virtio_blk_limits off = lim;
    off.discard = off.write_zeroes = false;
    d[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = 1 };
    mk_ranges(&m, VIRTIO_BLK_T_DISCARD, d, 1);
    cr_assert_eq(parse(&m, &r, &off), VIRTIO_BLK_S_UNSUPP, "not offered");
    off = lim;
    off.readonly = true;
    cr_assert_eq(parse(&m, &r, &off), VIRTIO_BLK_S_IOERR, "read-only disk");
}

/* ---- --disk ---- */

Test(virtio_blk_args, defaults_and_options)
{
    struct disk_arg a;
    char err[256];
    cr_assert_eq(disk_arg_parse("disk.img", &a, err, sizeof(err)), 0);
    cr_assert_str_eq(a.path, "disk.img");
    cr_assert_not(a.readonly);
    cr_assert_eq(a.cache, DISK_CACHE_WRITEBACK);
    cr_assert_eq(a.queues, 1);
    cr_assert_eq(a.iothreads, 1);
    cr_assert(a.discard);
    cr_assert_str_eq(a.serial, "");

    cr_assert_eq(disk_arg_parse("/dev/sdb,readonly,cache=none,queues=4,iothreads=2,"
                                      "serial=WIN-C,discard=off", &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(a.path, "/dev/sdb");
    cr_assert(a.readonly);
    cr_assert_eq(a.cache, DISK_CACHE_NONE);
    cr_assert_eq(a.queues, 4);
    cr_assert_eq(a.iothreads, 2);
    cr_assert_str_eq(a.serial, "WIN-C");
    cr_assert_not(a.discard);
}

Test(virtio_blk_args, bad_values_named)
{
    struct disk_arg a;
    char err[256];
    const char *bad[][2] = {
        { "", "needs a file name" },
        { ",readonly", "needs a file name" },
        { "d.img,cache=unsafe", "cache=unsafe" },
        { "d.img,queues=0", "queues=0" },
        { "d.img,queues=17", "queues=17" },
        { "d.img,queues=2,iothreads=3", "iothreads=3" },
        { "d.img,serial=123456789012345678901", "serial=" },
        { "d.img,serial=a b", "printable" },
        { "d.img,frobnicate", "unknown option 'frobnicate'" },
        { "d.img,,readonly", "empty option" },
        { "d.img,discard=maybe", "discard=maybe" },
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        cr_assert_eq(disk_arg_parse(bad[i][0], &a, err, sizeof(err)), -EINVAL, "%s", bad[i][0]);
        cr_assert_not_null(strstr(err, bad[i][1]), "'%s' -> '%s'", bad[i][0], err);
        cr_assert_not_null(strstr(err, "--disk"), "names the flag: %s", err);
    }
}

Test(virtio_blk_args, flag_forwarding)
{
    struct disk_args a = { .nr = 0 };
    char err[256];
    bool tv = false;
    cr_assert(disk_args_flag("--disk", 6, &tv));
    cr_assert(tv);
    cr_assert_not(disk_args_flag("--diskx", 7, &tv));
    cr_assert_eq(disk_args_apply(&a, "--disk", 6, "a.img", err, sizeof(err)), 0);
    cr_assert_eq(disk_args_apply(&a, "--disk", 6, "b.img,readonly", err, sizeof(err)), 0);
    cr_assert_eq(a.nr, 2);
    cr_assert(a.disk[1].readonly);
    cr_assert_eq(disk_args_apply(&a, "--disk", 6, "a.img", err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "already"));
}

/* ---- end to end ---- */

#define MiB (1ULL << 20)
#define BAR_ADDR 0xE0000000ULL
#define DEVFN PCI_DEVFN(5, 0)
#define INTX_GSI 22
#define QSZ 16
#define DISK_BYTES (1 * MiB)
#define HDR_GPA   0x10000ULL
#define STAT_GPA  0x18000ULL
#define DATA_GPA  0x100000ULL

static struct fake_env fe;
static struct gm gm;
static struct irq_table irq;
static struct pci_bus pb;
static struct virtio_blk *blk;
static char dir[64], path[96];

static struct vdrv drv;

static int intx_rule(void *ctx, const struct pci_device *d, uint8_t pin)
{
    (void)ctx;
    (void)d;
    (void)pin;
    return INTX_GSI;
}

static uint8_t pattern_byte(uint64_t off)
{
    return (uint8_t)(off * 7 + (off >> 9) * 13 + 1);
}

static void make_disk(void)
{
    snprintf(dir, sizeof(dir), "/tmp/minivmm-blk-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/disk.img", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    static uint8_t b[DISK_BYTES];
    for (uint64_t i = 0; i < DISK_BYTES; i++)
        b[i] = pattern_byte(i);
    cr_assert_eq(write(fd, b, DISK_BYTES), (ssize_t)DISK_BYTES);
    close(fd);
}

static void env_up(void)
{
    fake_env_init(&fe);
    struct gm_config gc = { .size = 4 * MiB, .lock = false };
    cr_assert_eq(gm_init(&gm, &gc), 0);
    fe.env.gm = &gm;
    cr_assert_eq(irq_table_init(&irq, -1, 0), 0);
    cr_assert_eq(pci_bus_init(&pb, &fe.pio, &fe.mmio), 0);
    make_disk();
    drv = (struct vdrv){ .mmio = &fe.mmio, .gm = &gm, .pb = &pb, .devfn = DEVFN,
                         .bar = BAR_ADDR, .qsz = QSZ, .ring_base = 0x1000 };
    blk = NULL;
}

static void env_down(void)
{
    virtio_blk_destroy(blk);
    pci_bus_fini(&pb);
    irq_table_fini(&irq);
    gm_fini(&gm);
    fake_env_fini(&fe);
    unlink(path);
    rmdir(dir);
}

static int create_disk(const char *opts, struct virtio_blk **out)
{
    char spec[256], err[256];
    struct disk_arg a;
    snprintf(spec, sizeof(spec), "%s%s", path, opts);
    cr_assert_eq(disk_arg_parse(spec, &a, err, sizeof(err)), 0, "%s", err);
    struct virtio_pci_vm vm = { .env = &fe.env, .irq = &irq, .vm_fd = -1 };
    return virtio_blk_create(&vm, &a, 0, -1, out);
}

/* The driver side of §3.1.1 with nq queues of QSZ, every feature offered
 * accepted. */
static void driver_init(unsigned nq)
{
    uint32_t v;
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, PCI_DEVICE_ID, 2, &v), 0);
    cr_assert_eq(v, 0x1042);
    vdrv_init(&drv, ~0ULL, nq);
}

static void disk_up(const char *opts, unsigned nq)
{
    cr_assert_eq(create_disk(opts, &blk), 0);
    cr_assert_eq(virtio_blk_plug(blk, &pb, NULL, DEVFN, intx_rule, NULL), 0);
    driver_init(nq);
}

/* Wait until the device has returned n more chains on q; return the used
 * element (id, len) of the last. */
static void wait_used(unsigned q, uint16_t n, uint32_t *id, uint32_t *len)
{
    uint16_t before = drv.q[q].used_seen;
    cr_assert(vdrv_wait_used(&drv, q, n, id, len, 5000), "device returned %u of %u chains",
              (uint16_t)(vdrv_used_idx(&drv, q) - before), n);
}

static void put_hdr(unsigned k, uint32_t type, uint64_t sector)
{
    struct virtio_blk_outhdr h = { .type = type, .sector = sector };
    cr_assert_eq(gm_write(&gm, HDR_GPA + 0x100ULL * k, &h, sizeof(h)), 0);
}

static uint8_t status_byte(unsigned k)
{
    uint8_t s;
    cr_assert_eq(gm_read(&gm, STAT_GPA + k, &s, 1), 0);
    return s;
}

/* One request on queue q: header, data (gpa, len, device-writable or not),
 * status; waits for it and returns the status byte (*used_len if asked). */
static uint8_t request(unsigned q, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
                       bool data_write, uint32_t *used_len)
{
    struct vdrv_seg s[3];
    unsigned n = 0;
    put_hdr(0, type, sector);
    cr_assert_eq(gm_write(&gm, STAT_GPA, &(uint8_t){ 0xEE }, 1), 0);
    s[n++] = (struct vdrv_seg){ HDR_GPA, 16, false };
    if (len)
        s[n++] = (struct vdrv_seg){ data, len, data_write };
    s[n++] = (struct vdrv_seg){ STAT_GPA, 1, true };
    uint16_t head = vdrv_add_chain(&drv, q, s, n);
    vdrv_kick(&drv, q);
    uint32_t id, ul;
    wait_used(q, 1, &id, &ul);
    cr_assert_eq(id, head);
    if (used_len)
        *used_len = ul;
    return status_byte(0);
}

static void file_read(uint64_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

TestSuite(virtio_blk, .init = env_up, .fini = env_down, .timeout = 30);

Test(virtio_blk, config_space)
{
    disk_up(",queues=2", 1);
    uint64_t f = vdrv_device_features(&drv);
    cr_assert(f & (1ULL << VIRTIO_BLK_F_FLUSH));
    cr_assert(f & (1ULL << VIRTIO_BLK_F_MQ));
    cr_assert(f & (1ULL << VIRTIO_BLK_F_DISCARD));
    cr_assert(f & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
    cr_assert(f & (1ULL << VIRTIO_BLK_F_SEG_MAX));
    cr_assert(f & (1ULL << VIRTIO_BLK_F_BLK_SIZE));
    cr_assert_not(f & (1ULL << VIRTIO_BLK_F_RO));
    cr_assert_not(f & (1ULL << VIRTIO_BLK_F_CONFIG_WCE));
    uint64_t base = VIRTIO_PCI_DEVCFG_OFF;
    cr_assert_eq(vdrv_bar_rd(&drv, base + offsetof(struct virtio_blk_config, capacity), 8), DISK_BYTES / 512);
    cr_assert_eq(vdrv_bar_rd(&drv, base + offsetof(struct virtio_blk_config, seg_max), 4), VIRTIO_BLK_QUEUE_SIZE - 2);
    cr_assert_eq(vdrv_bar_rd(&drv, base + offsetof(struct virtio_blk_config, blk_size), 4), 512);
    cr_assert_eq(vdrv_bar_rd(&drv, base + offsetof(struct virtio_blk_config, num_queues), 2), 2);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
    cr_assert_eq(vdrv_bar_rd(&drv, base + offsetof(struct virtio_blk_config, max_discard_seg), 4), VIRTIO_BLK_MAX_RANGES);
    cr_assert_eq(vdrv_bar_rd(&drv, base + offsetof(struct virtio_blk_config, max_write_zeroes_seg), 4), 1);
    cr_assert_eq(vdrv_bar_rd(&drv, base + offsetof(struct virtio_blk_config, write_zeroes_may_unmap), 1), 1);
}

Test(virtio_blk, read_through_io_uring)
{
    disk_up("", 1);
    uint32_t ul;
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 3, DATA_GPA, 2048, true, &ul), VIRTIO_BLK_S_OK);
    cr_assert_eq(ul, 2048 + 1, "data and status were written");
    uint8_t got[2048];
    cr_assert_eq(gm_read(&gm, DATA_GPA, got, sizeof(got)), 0);
    for (unsigned i = 0; i < sizeof(got); i++)
        cr_assert_eq(got[i], pattern_byte(3 * 512 + i), "byte %u", i);
    cr_assert_geq(fe.raises[INTX_GSI], 1, "the driver was interrupted (INTx: MSI-X is off)");
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_ISR_OFF, 1) & 1, 1);
}

Test(virtio_blk, write_flush_and_read_back)
{
    disk_up("", 1);
    uint8_t buf[4096];
    for (unsigned i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(0xC3 ^ i);
    cr_assert_eq(gm_write(&gm, DATA_GPA, buf, sizeof(buf)), 0);
    uint32_t ul;
    cr_assert_eq(request(0, VIRTIO_BLK_T_OUT, 100, DATA_GPA, 4096, false, &ul), VIRTIO_BLK_S_OK);
    cr_assert_eq(ul, 1, "only the status was written");
    cr_assert_eq(request(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
    uint8_t file[4096];
    file_read(100 * 512, file, sizeof(file));
    cr_assert_arr_eq(file, buf, sizeof(buf));
    uint8_t before[512];
    file_read(99 * 512, before, sizeof(before));
    cr_assert_eq(before[511], pattern_byte(100 * 512 - 1), "neighbours untouched");
    /* And the guest reads what it wrote. */
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 100, DATA_GPA + 0x10000, 4096, true, NULL), VIRTIO_BLK_S_OK);
    uint8_t back[4096];
    cr_assert_eq(gm_read(&gm, DATA_GPA + 0x10000, back, sizeof(back)), 0);
    cr_assert_arr_eq(back, buf, sizeof(buf));
}

Test(virtio_blk, get_id_returns_serial)
{
    disk_up(",serial=minivmm-test-01", 1);
    uint8_t id[20];
    memset(id, 0xFF, sizeof(id));
    cr_assert_eq(gm_write(&gm, DATA_GPA, id, sizeof(id)), 0);
    uint32_t ul;
    cr_assert_eq(request(0, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA, 20, true, &ul), VIRTIO_BLK_S_OK);
    cr_assert_eq(ul, 21);
    cr_assert_eq(gm_read(&gm, DATA_GPA, id, sizeof(id)), 0);
    cr_assert_eq(memcmp(id, "minivmm-test-01", 15), 0);
    for (unsigned i = 15; i < 20; i++)
        cr_assert_eq(id[i], 0, "NUL-padded");
}

Test(virtio_blk, discard_and_write_zeroes)
{
    disk_up("", 1);
    struct virtio_blk_discard_write_zeroes d[2] = {
        { .sector = 8, .num_sectors = 8 }, { .sector = 64, .num_sectors = 16, .flags = 0 },
    };
    cr_assert_eq(gm_write(&gm, DATA_GPA, d, sizeof(d)), 0);
    cr_assert_eq(request(0, VIRTIO_BLK_T_DISCARD, 0, DATA_GPA, 32, false, NULL), VIRTIO_BLK_S_OK);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, (off_t)DISK_BYTES, "KEEP_SIZE: the image does not shrink");

    /* Write zeroes: the range must read back as zeroes, with or without unmap. */
    uint8_t z[8192];
    for (unsigned flags = 0; flags <= VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP; flags++) {
        uint64_t sector = 200 + 50 * flags;
        d[0] = (struct virtio_blk_discard_write_zeroes){ .sector = sector, .num_sectors = 16,
                                                         .flags = flags };
        cr_assert_eq(gm_write(&gm, DATA_GPA, d, 16), 0);
        cr_assert_eq(request(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA_GPA, 16, false, NULL),
                     VIRTIO_BLK_S_OK);
        file_read(sector * 512, z, sizeof(z));
        for (unsigned i = 0; i < sizeof(z); i++)
            cr_assert_eq(z[i], 0, "byte %u of the zeroed range (flags %u)", i, flags);
        uint8_t after;
        file_read((sector + 16) * 512, &after, 1);
        cr_assert_eq(after, pattern_byte((sector + 16) * 512), "only the range is zeroed");
    }
}

Test(virtio_blk, errors_reported_in_status)
{
    disk_up("", 1);
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, DISK_BYTES / 512 - 1, DATA_GPA, 1024, true, NULL),
                 VIRTIO_BLK_S_IOERR, "past the end");
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 0, DATA_GPA, 100, true, NULL), VIRTIO_BLK_S_IOERR,
                 "not whole sectors");
    cr_assert_eq(request(0, 77, 0, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
    /* The device keeps working. */
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, true, NULL), VIRTIO_BLK_S_OK);
    cr_assert_not(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

Test(virtio_blk, read_only_disk)
{
    disk_up(",readonly", 1);
    cr_assert(vdrv_device_features(&drv) & (1ULL << VIRTIO_BLK_F_RO));
    cr_assert_not(vdrv_device_features(&drv) & (1ULL << VIRTIO_BLK_F_DISCARD));
    uint8_t buf[512];
    memset(buf, 0x11, sizeof(buf));
    cr_assert_eq(gm_write(&gm, DATA_GPA, buf, sizeof(buf)), 0);
    cr_assert_eq(request(0, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 512, false, NULL), VIRTIO_BLK_S_IOERR);
    uint8_t file[512];
    file_read(0, file, sizeof(file));
    cr_assert_eq(file[0], pattern_byte(0), "the image is unchanged");
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, true, NULL), VIRTIO_BLK_S_OK);
}

Test(virtio_blk, many_requests_in_one_notification)
{
    disk_up("", 1);
    /* Eight reads of one sector each, queued before one notification. */
    uint16_t heads[8];
    for (unsigned k = 0; k < 8; k++) {
        put_hdr(k, VIRTIO_BLK_T_IN, 10 + k);
        struct vdrv_seg s[2] = {
            { HDR_GPA + 0x100ULL * k, 16, false },
            /* data and status in one writable buffer */
            { DATA_GPA + 0x1000ULL * k, 513, true },
        };
        heads[k] = vdrv_add_chain(&drv, 0, s, 2);
    }
    vdrv_kick(&drv, 0);
    wait_used(0, 8, NULL, NULL);
    for (unsigned k = 0; k < 8; k++) {
        uint8_t got[513];
        cr_assert_eq(gm_read(&gm, DATA_GPA + 0x1000ULL * k, got, sizeof(got)), 0);
        cr_assert_eq(got[512], VIRTIO_BLK_S_OK);
        cr_assert_eq(got[0], pattern_byte((10 + k) * 512ULL));
        cr_assert_eq(got[511], pattern_byte((10 + k) * 512ULL + 511));
    }
    (void)heads;
}

Test(virtio_blk, multiqueue_with_two_threads)
{
    disk_up(",queues=2,iothreads=2", 2);
    cr_assert_eq(request(1, VIRTIO_BLK_T_IN, 5, DATA_GPA, 512, true, NULL), VIRTIO_BLK_S_OK);
    uint8_t b;
    cr_assert_eq(gm_read(&gm, DATA_GPA, &b, 1), 0);
    cr_assert_eq(b, pattern_byte(5 * 512));
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 6, DATA_GPA, 512, true, NULL), VIRTIO_BLK_S_OK);
    cr_assert_eq(gm_read(&gm, DATA_GPA, &b, 1), 0);
    cr_assert_eq(b, pattern_byte(6 * 512));
}

Test(virtio_blk, msix_interrupt)
{
    disk_up("", 1);
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, VIRTIO_PCI_CAP_MSIX_AT + 2, 2, 0x8000), 0);
    vdrv_bar_wr(&drv, VIRTIO_PCI_MSIX_TABLE_OFF + 16 + 0, 4, 0xFEE00000);
    vdrv_bar_wr(&drv, VIRTIO_PCI_MSIX_TABLE_OFF + 16 + 8, 4, 0x4022);
    vdrv_bar_wr(&drv, VIRTIO_PCI_MSIX_TABLE_OFF + 16 + 12, 4, 0);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    unsigned before = fe.raises[INTX_GSI];
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, true, NULL), VIRTIO_BLK_S_OK);
    int fd = virtio_pci_vector_fd(virtio_blk_pci(blk), 1);
    struct pollfd p = { .fd = fd, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 1000), 1, "vector 1's eventfd was signalled");
    cr_assert_eq(fe.raises[INTX_GSI], before, "no INTx with MSI-X");
}

Test(virtio_blk, unaligned_buffer_with_o_direct)
{
    disk_up(",cache=none", 1);
    /* A guest buffer at an odd address: O_DIRECT cannot take it; the
     * buffered descriptor does. */
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 4, DATA_GPA + 3, 512, true, NULL), VIRTIO_BLK_S_OK);
    uint8_t got[512];
    cr_assert_eq(gm_read(&gm, DATA_GPA + 3, got, sizeof(got)), 0);
    for (unsigned i = 0; i < sizeof(got); i++)
        cr_assert_eq(got[i], pattern_byte(4 * 512 + i));
    /* Aligned goes direct, and sees what the buffered write left. */
    uint8_t buf[4096];
    memset(buf, 0x77, sizeof(buf));
    cr_assert_eq(gm_write(&gm, DATA_GPA + 1, buf, sizeof(buf)), 0);
    cr_assert_eq(request(0, VIRTIO_BLK_T_OUT, 16, DATA_GPA + 1, 4096, false, NULL), VIRTIO_BLK_S_OK);
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 16, DATA_GPA + 0x20000, 4096, true, NULL), VIRTIO_BLK_S_OK);
    uint8_t back[4096];
    cr_assert_eq(gm_read(&gm, DATA_GPA + 0x20000, back, sizeof(back)), 0);
    cr_assert_arr_eq(back, buf, sizeof(buf));
}

Test(virtio_blk, bad_chain_needs_reset_then_recovers)
{
    disk_up("", 1);
    /* A descriptor looping on itself. */
    struct vring_desc d = { .addr = HDR_GPA, .len = 16, .flags = VRING_DESC_F_NEXT, .next = 0 };
    cr_assert_eq(gm_write(&gm, drv.q[0].desc, &d, sizeof(d)), 0);
    uint16_t head = 0;
    cr_assert_eq(gm_write(&gm, drv.q[0].avail + 4, &head, 2), 0);
    drv.q[0].avail_idx = 1;
    cr_assert_eq(gm_write(&gm, drv.q[0].avail + 2, &drv.q[0].avail_idx, 2), 0);
    vdrv_kick(&drv, 0);
    for (int i = 0; i < 5000 && !(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET); i++)
        usleep(1000);
    cr_assert(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_ISR_OFF, 1) & VIRTIO_PCI_ISR_CONFIG, VIRTIO_PCI_ISR_CONFIG);
    /* The driver resets and starts over: the device works again. */
    driver_init(1);
    cr_assert_not(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 1, DATA_GPA, 512, true, NULL), VIRTIO_BLK_S_OK);
}

Test(virtio_blk, missing_status_needs_reset)
{
    disk_up("", 1);
    put_hdr(0, VIRTIO_BLK_T_FLUSH, 0);
    struct vdrv_seg s[1] = { { HDR_GPA, 16, false } };
    vdrv_add_chain(&drv, 0, s, 1);
    vdrv_kick(&drv, 0);
    for (int i = 0; i < 5000 && !(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET); i++)
        usleep(1000);
    cr_assert(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

Test(virtio_blk, reset_with_requests_then_again)
{
    disk_up("", 1);
    for (unsigned k = 0; k < 4; k++) {
        put_hdr(k, VIRTIO_BLK_T_IN, k);
        struct vdrv_seg s[2] = { { HDR_GPA + 0x100ULL * k, 16, false },
                             { DATA_GPA + 0x1000ULL * k, 513, true } };
        vdrv_add_chain(&drv, 0, s, 2);
    }
    vdrv_kick(&drv, 0);
    /* Reset at once: it returns when nothing is in flight any more. */
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    driver_init(1);
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 9, DATA_GPA, 512, true, NULL), VIRTIO_BLK_S_OK);
    uint8_t b;
    cr_assert_eq(gm_read(&gm, DATA_GPA, &b, 1), 0);
    cr_assert_eq(b, pattern_byte(9 * 512));
}

Test(virtio_blk, image_locked_against_a_second_writer)
{
    struct virtio_blk *other = NULL;
    cr_assert_eq(create_disk("", &blk), 0);
    cr_assert_eq(create_disk("", &other), -EWOULDBLOCK, "a second writer is refused");
    cr_assert_eq(create_disk(",readonly", &other), -EWOULDBLOCK, "a reader while one writes too");
    virtio_blk_destroy(blk);
    blk = NULL;
    cr_assert_eq(create_disk(",readonly", &blk), 0);
    cr_assert_eq(create_disk(",readonly", &other), 0, "readers share");
    virtio_blk_destroy(other);
    cr_assert_eq(create_disk("", &other), -EWOULDBLOCK, "no writer while one reads");
}

Test(virtio_blk, missing_file_is_a_clear_error)
{
    struct disk_arg a;
    char err[256];
    cr_assert_eq(disk_arg_parse("/nonexistent/minivmm.img", &a, err, sizeof(err)), 0);
    struct virtio_pci_vm vm = { .env = &fe.env, .irq = &irq, .vm_fd = -1 };
    cr_assert_eq(virtio_blk_create(&vm, &a, 0, -1, &blk), -ENOENT);
    cr_assert_null(blk);
}

Test(virtio_blk, empty_file_refused)
{
    cr_assert_eq(truncate(path, 100), 0);
    cr_assert_eq(create_disk("", &blk), -EINVAL);
}

Test(virtio_blk, unplug_and_plug_again_after_platform_reset)
{
    disk_up("", 1);
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 2, DATA_GPA, 512, true, NULL), VIRTIO_BLK_S_OK);
    virtio_blk_unplug(blk);
    pci_bus_fini(&pb);
    cr_assert_eq(pci_bus_init(&pb, &fe.pio, &fe.mmio), 0);
    cr_assert_eq(virtio_blk_plug(blk, &pb, NULL, DEVFN, intx_rule, NULL), 0);
    driver_init(1);
    cr_assert_eq(request(0, VIRTIO_BLK_T_IN, 3, DATA_GPA, 512, true, NULL), VIRTIO_BLK_S_OK);
    uint8_t b;
    cr_assert_eq(gm_read(&gm, DATA_GPA, &b, 1), 0);
    cr_assert_eq(b, pattern_byte(3 * 512));
}
