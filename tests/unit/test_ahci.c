/* devices/storage/ahci.c and ata.c: the ATA decoder on hand-made FISes;
 * then the controller end to end -- a driver written here finds it in
 * config space, maps ABAR, resets the HBA, starts port 0, builds command
 * headers, tables and PRDTs in guest memory and issues them through PxCI
 * as Linux's ahci or Windows' storahci would; the port's engine thread
 * serves them on io_uring against a real file in a temporary directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/block/disk_args.h"
#include "devices/chipset/q35.h"
#include "devices/pci/pci.h"
#include "devices/pci/pcidev.h"
#include "devices/storage/ahci.h"
#include "devices/storage/ata.h"
#include "devices/storage/atapi.h"
#include "fake_env.h"
#include "vmm/gm.h"
#include "vmm/irq.h"

/* ---- the decoder ---- */

static void h2d(uint8_t f[20], uint8_t cmd, uint64_t lba, uint16_t count, uint16_t feat)
{
    memset(f, 0, 20);
    f[0] = 0x27;
    f[1] = 0x80;
    f[2] = cmd;
    f[3] = (uint8_t)feat;
    f[11] = (uint8_t)(feat >> 8);
    f[4] = (uint8_t)lba;
    f[5] = (uint8_t)(lba >> 8);
    f[6] = (uint8_t)(lba >> 16);
    f[7] = 0x40;
    f[8] = (uint8_t)(lba >> 24);
    f[9] = (uint8_t)(lba >> 32);
    f[10] = (uint8_t)(lba >> 40);
    f[12] = (uint8_t)count;
    f[13] = (uint8_t)(count >> 8);
}

static struct ata_disk disk0(void)
{
    struct ata_disk d = { .sectors = 1000, .discard = true, .physical_block = 512 };
    snprintf(d.serial, sizeof(d.serial), "S1");
    snprintf(d.model, sizeof(d.model), "m");
    ata_disk_reset(&d);
    return d;
}

static struct ata_cmd decode(struct ata_disk *d, uint8_t cmd, uint64_t lba, uint16_t count,
                             uint16_t feat)
{
    uint8_t f[20];
    struct ata_tf tf;
    struct ata_cmd c;
    h2d(f, cmd, lba, count, feat);
    cr_assert_eq(ata_tf_parse(f, &tf), 0);
    cr_assert_eq(ata_decode(d, &tf, &c), 0);
    return c;
}

Test(ata, transfers)
{
    struct ata_disk d = disk0();
    struct ata_cmd c = decode(&d, ATA_READ_DMA_EXT, 10, 0, 0);
    cr_assert_eq(c.act, ATA_ACT_ABORT, "count 0 is 65536 sectors: past the end");
    cr_assert_eq(c.error, ATA_ER_ABRT | ATA_ER_IDNF);
    c = decode(&d, ATA_READ_DMA_EXT, 990, 10, 0);
    cr_assert_eq(c.act, ATA_ACT_READ);
    cr_assert_eq(c.len, 5120);
    cr_assert_eq(decode(&d, ATA_READ_DMA_EXT, 991, 10, 0).act, ATA_ACT_ABORT);
    c = decode(&d, ATA_WRITE_FPDMA, 5, 7u << 3, 8);
    cr_assert_eq(c.act, ATA_ACT_WRITE);
    cr_assert(c.ncq);
    cr_assert_eq(c.tag, 7);
    cr_assert_eq(c.sectors, 8);
    cr_assert_not(c.fua);
    /* LBA28: bits 27:24 from the device register */
    uint8_t f[20];
    struct ata_tf tf;
    h2d(f, ATA_READ_DMA, 0x12, 1, 0);
    f[7] = 0xE0;
    cr_assert_eq(ata_tf_parse(f, &tf), 0);
    cr_assert_eq(ata_decode(&d, &tf, &c), 0);
    cr_assert_eq(c.lba, 0x12);
    f[0] = 0x34;
    cr_assert_eq(ata_tf_parse(f, &tf), -EINVAL, "not a Register H2D FIS");
    d.readonly = true;
    cr_assert_eq(decode(&d, ATA_WRITE_DMA_EXT, 0, 1, 0).act, ATA_ACT_ABORT, "read-only");
    cr_assert_eq(decode(&d, ATA_DSM, 0, 1, 1).act, ATA_ACT_ABORT, "no TRIM on read-only");
}

Test(ata, other_commands)
{
    struct ata_disk d = disk0();
    cr_assert_eq(decode(&d, ATA_FLUSH_EXT, 0, 0, 0).act, ATA_ACT_FLUSH);
    cr_assert_eq(decode(&d, ATA_FLUSH, 0, 0, 0).act, ATA_ACT_FLUSH);
    cr_assert_eq(decode(&d, ATA_NOP, 0, 0, 0).act, ATA_ACT_ABORT);
    cr_assert_eq(decode(&d, ATA_SMART, 0, 0, 0xD0).act, ATA_ACT_ABORT, "SMART is off");
    cr_assert_eq(decode(&d, 0xFF, 0, 0, 0).act, ATA_ACT_ABORT, "unknown");
    cr_assert_eq(decode(&d, ATA_PACKET, 0, 0, 0).act, ATA_ACT_ABORT, "PACKET on a disk");
    cr_assert_eq(decode(&d, ATA_SET_FEATURES, 0, 0, 0x82).act, ATA_ACT_NODATA);
    cr_assert_not(d.wcache);
    cr_assert_eq(decode(&d, ATA_SET_FEATURES, 0, 0, 0x02).act, ATA_ACT_NODATA);
    cr_assert(d.wcache);
    cr_assert_eq(decode(&d, ATA_SET_FEATURES, 0, 0x45, 0x03).act, ATA_ACT_NODATA, "UDMA5");
    cr_assert_eq(d.xfer_mode, 0x45);
    cr_assert_eq(decode(&d, ATA_SET_FEATURES, 0, 0x47, 0x03).act, ATA_ACT_ABORT, "UDMA7");
    cr_assert_eq(decode(&d, ATA_SET_FEATURES, 0, 0, 0x10).act, ATA_ACT_ABORT);
    cr_assert_eq(decode(&d, ATA_SET_MULTIPLE, 0, 16, 0).act, ATA_ACT_NODATA);
    cr_assert_eq(decode(&d, ATA_SET_MULTIPLE, 0, 3, 0).act, ATA_ACT_ABORT);
    struct ata_cmd c = decode(&d, ATA_CHECK_POWER, 0, 0, 0);
    cr_assert_eq(c.act, ATA_ACT_NODATA);
    cr_assert_eq(c.count_out, 0xFF);
    cr_assert_eq(decode(&d, ATA_IDLE_IMM, 0, 0, 0).act, ATA_ACT_NODATA);
    cr_assert_eq(decode(&d, ATA_STANDBY_IMM, 0, 0, 0).act, ATA_ACT_NODATA);
    cr_assert_eq(decode(&d, ATA_READ_VERIFY_EXT, 999, 1, 0).act, ATA_ACT_NODATA);
    cr_assert_eq(decode(&d, ATA_READ_VERIFY_EXT, 999, 2, 0).act, ATA_ACT_ABORT);
    c = decode(&d, ATA_DSM, 0, 1, 1);
    cr_assert_eq(c.act, ATA_ACT_TRIM);
    cr_assert_eq(c.len, 512);
    cr_assert_eq(decode(&d, ATA_DSM, 0, ATA_TRIM_MAX_BLOCKS + 1, 1).act, ATA_ACT_ABORT);
    cr_assert_eq(decode(&d, ATA_DSM, 0, 1, 0).act, ATA_ACT_ABORT, "not TRIM");
    d.discard = false;
    cr_assert_eq(decode(&d, ATA_DSM, 0, 1, 1).act, ATA_ACT_ABORT, "discard=off");
}

static uint16_t word(const uint8_t *id, unsigned w)
{
    return (uint16_t)(id[2 * w] | id[2 * w + 1] << 8);
}

Test(ata, identify)
{
    struct ata_disk d = disk0();
    uint8_t id[512];
    d.sectors = 0x123456789ULL;
    d.physical_block = 4096;
    ata_identify(&d, id);
    uint8_t sum = 0;
    for (unsigned i = 0; i < 512; i++)
        sum = (uint8_t)(sum + id[i]);
    cr_assert_eq(sum, 0, "integrity word");
    cr_assert_eq(id[510], 0xA5);
    cr_assert_eq(word(id, 100) | (uint64_t)word(id, 101) << 16 | (uint64_t)word(id, 102) << 32,
                 0x123456789ULL);
    cr_assert_eq(word(id, 60) | word(id, 61) << 16, 0x0FFFFFFF);
    cr_assert_eq(word(id, 75), 31, "NCQ depth 32");
    cr_assert(word(id, 76) & (1u << 8));
    cr_assert(word(id, 83) & (1u << 10), "LBA48");
    cr_assert(word(id, 83) & (1u << 13), "FLUSH CACHE EXT");
    cr_assert(word(id, 85) & (1u << 5), "write cache on");
    cr_assert_eq(word(id, 169) & 1, 1, "TRIM");
    cr_assert_eq(word(id, 106), 0x6003, "4 KiB physical sectors");
    cr_assert_eq(id[55], 'm', "model: the first character in bits 15:8");
    cr_assert_eq(id[54], ' ');
    d.discard = false;
    ata_identify(&d, id);
    cr_assert_eq(word(id, 169), 0);
}

Test(ata, trim_ranges)
{
    uint8_t b[512] = { 0 };
    uint64_t r[4][2];
    /* lba 10 count 8; an empty entry; lba 990 count 10 */
    b[0] = 10;
    b[6] = 8;
    b[16] = 0xDE;  /* lba, count 0: ignored */
    b[24] = 0xDE;
    b[25] = 0x03;
    b[30] = 10;
    cr_assert_eq(ata_trim_parse(b, sizeof(b), 1000, r, 4), 2);
    cr_assert_eq(r[0][0], 10 * 512);
    cr_assert_eq(r[0][1], 8 * 512);
    cr_assert_eq(r[1][0], 990 * 512);
    b[30] = 11;
    cr_assert_eq(ata_trim_parse(b, sizeof(b), 1000, r, 4), -EINVAL, "past the end");
    b[30] = 10;
    cr_assert_eq(ata_trim_parse(b, sizeof(b), 1000, r, 1), -EINVAL, "too many");
}

/* ---- end to end ---- */

#define MiB (1ULL << 20)
#define ABAR 0xE0000000ULL
#define DEVFN PCI_DEVFN(0x1F, 2)
#define INTX_GSI 16
#define DISK_BYTES (1 * MiB)
#define CLB_GPA   0x10000ULL
#define FB_GPA    0x11000ULL
#define CT_GPA    0x20000ULL     /* command table of slot s at CT_GPA + s * 0x1000 */
#define DATA_GPA  0x100000ULL

static struct fake_env fe;
static struct gm gm;
static struct irq_table irq;
static struct pci_bus pb;
static struct ahci *hba;
static char dir[64], path[96];

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

static void make_file(const char *name, uint64_t bytes)
{
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    static uint8_t b[DISK_BYTES];
    for (uint64_t i = 0; i < DISK_BYTES; i++)
        b[i] = pattern_byte(i);
    for (uint64_t at = 0; at < bytes; at += DISK_BYTES) {
        uint64_t n = bytes - at < DISK_BYTES ? bytes - at : DISK_BYTES;
        cr_assert_eq(pwrite(fd, b, n, (off_t)at), (ssize_t)n);
    }
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
    snprintf(dir, sizeof(dir), "/tmp/minivmm-ahci-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    make_file("disk.img", DISK_BYTES);
    hba = NULL;
}

static void env_down(void)
{
    ahci_destroy(hba);
    pci_bus_fini(&pb);
    irq_table_fini(&irq);
    gm_fini(&gm);
    fake_env_fini(&fe);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char f[400];
        snprintf(f, sizeof(f), "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(f);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

TestSuite(ahci, .init = env_up, .fini = env_down, .timeout = 30);

static int create(const char *const *specs, unsigned n)
{
    static struct disk_arg a[8];
    const struct disk_arg *p[8];
    char err[256];
    struct disk_args da = { .nr = 0 };
    for (unsigned i = 0; i < n; i++) {
        const char *flag = strncmp(specs[i], "cdrom:", 6) ? "--disk" : "--cdrom";
        const char *v = strcmp(flag, "--cdrom") ? specs[i] : specs[i] + 6;
        cr_assert_eq(disk_args_apply(&da, flag, strlen(flag), v, err, sizeof(err)), 0, "%s", err);
    }
    cr_assert_eq(disk_args_finish(&da, err, sizeof(err)), 0, "%s", err);
    for (unsigned i = 0; i < n; i++) {
        a[i] = da.disk[i];
        p[i] = &a[i];
    }
    return ahci_create(&(struct ahci_vm){ .env = &fe.env, .irq = &irq, .vm_fd = -1, .io_cpu = -1 },
                       p, n, &hba);
}

static uint32_t rd(uint64_t off)
{
    uint8_t b[4];
    cr_assert_eq(bus_read(&fe.mmio, ABAR + off, b, 4), 0);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void wr(uint64_t off, uint32_t v)
{
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    cr_assert_eq(bus_write(&fe.mmio, ABAR + off, b, 4), 0);
}

#define PX(p, r) (AHCI_PORT_BASE + (p) * AHCI_PORT_SIZE + (r))

static void sleep_ms(unsigned ms)
{
    struct timespec t = { .tv_sec = 0, .tv_nsec = (long)ms * 1000000L };
    nanosleep(&t, NULL);
}

/* Wait until (reg & mask) == want; false after 5 s. */
static bool wait_reg(uint64_t off, uint32_t mask, uint32_t want)
{
    for (unsigned i = 0; i < 5000; i++) {
        if ((rd(off) & mask) == want)
            return true;
        sleep_ms(1);
    }
    return false;
}

/* Plug, find it in config space, map ABAR, reset the HBA, start port 0. */
static void plug_and_start(unsigned nports)
{
    uint32_t v;
    cr_assert_eq(ahci_plug(hba, &pb, DEVFN, intx_rule, NULL), 0);
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, PCI_VENDOR_ID, 4, &v), 0);
    cr_assert_eq(v, 0x29228086);
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, PCI_REVISION_ID, 4, &v), 0);
    cr_assert_eq(v >> 8, 0x010601, "class 01.06.01");
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, PCI_BAR0 + 4 * AHCI_ABAR, 4, 0xFFFFFFFF), 0);
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, PCI_BAR0 + 4 * AHCI_ABAR, 4, &v), 0);
    cr_assert_eq(v, 0xFFFFF000, "ABAR is 4 KiB of 32-bit memory");
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, PCI_BAR0 + 4 * AHCI_ABAR, 4, (uint32_t)ABAR), 0);
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, PCI_COMMAND, 2,
                                  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), 0);
    uint32_t cap = rd(AHCI_CAP);
    cr_assert(cap & (1u << 31), "S64A");
    cr_assert(cap & (1u << 30), "SNCQ");
    cr_assert_eq(cap & 0x1F, AHCI_NR_PORTS - 1);
    cr_assert_eq((cap >> 8) & 0x1F, 31, "32 slots");
    cr_assert_eq(rd(AHCI_PI), 0x3F);
    cr_assert_eq(rd(AHCI_VS), 0x00010301);
    wr(AHCI_GHC, AHCI_GHC_HR);
    cr_assert(wait_reg(AHCI_GHC, AHCI_GHC_HR, 0));
    cr_assert(rd(AHCI_GHC) & AHCI_GHC_AE);
    for (unsigned p = 0; p < nports; p++) {
        cr_assert_eq(rd(PX(p, AHCI_PX_SSTS)) & 0xF, 3, "port %u: device present", p);
        wr(PX(p, AHCI_PX_CLB), (uint32_t)(CLB_GPA + p * 0x2000));
        wr(PX(p, AHCI_PX_CLBU), 0);
        wr(PX(p, AHCI_PX_FB), (uint32_t)(FB_GPA + p * 0x2000));
        wr(PX(p, AHCI_PX_FBU), 0);
        wr(PX(p, AHCI_PX_SERR), 0xFFFFFFFF);
        wr(PX(p, AHCI_PX_IS), 0xFFFFFFFF);
        wr(PX(p, AHCI_PX_CMD), AHCI_PX_CMD_FRE);
        wr(PX(p, AHCI_PX_CMD), AHCI_PX_CMD_FRE | AHCI_PX_CMD_ST);
        uint32_t cmd = rd(PX(p, AHCI_PX_CMD));
        cr_assert(cmd & AHCI_PX_CMD_CR);
        cr_assert(cmd & AHCI_PX_CMD_FR);
    }
    cr_assert_eq(rd(AHCI_PORT_BASE + 5 * AHCI_PORT_SIZE + AHCI_PX_SSTS) & 0xF, nports > 5 ? 3 : 0,
                 "an empty port has no device");
}

static uint8_t *ram(uint64_t gpa, uint64_t len)
{
    uint8_t *p = gm_ptr(&gm, gpa, len);
    cr_assert_not_null(p);
    return p;
}

struct prd { uint64_t gpa; uint32_t len; };

/* A command in slot s of port p: the FIS (and CDB), n PRDs. */
static void build(unsigned p, unsigned s, const uint8_t fis[20], const uint8_t *cdb,
                  const struct prd *prds, unsigned n, bool write)
{
    uint8_t *h = ram(CLB_GPA + p * 0x2000 + s * 32, 32);
    uint64_t ct = CT_GPA + p * 0x40000 + s * 0x1000;
    uint32_t dw0 = 5 | (cdb ? AHCI_HDR_ATAPI : 0) | (write ? AHCI_HDR_WRITE : 0) | n << 16;
    memset(h, 0, 32);
    memcpy(h, &dw0, 4);
    uint32_t lo = (uint32_t)ct;
    memcpy(h + 8, &lo, 4);
    uint8_t *t = ram(ct, 0x80 + 16 * (n ? n : 1));
    memset(t, 0, 0x80);
    memcpy(t, fis, 20);
    if (cdb)
        memcpy(t + 0x40, cdb, 16);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *e = t + 0x80 + 16 * i;
        memset(e, 0, 16);
        uint32_t a = (uint32_t)prds[i].gpa, ah = (uint32_t)(prds[i].gpa >> 32);
        uint32_t dbc = prds[i].len - 1;
        memcpy(e, &a, 4);
        memcpy(e + 4, &ah, 4);
        memcpy(e + 12, &dbc, 4);
    }
}

static uint32_t prdbc(unsigned p, unsigned s)
{
    uint32_t v;
    memcpy(&v, ram(CLB_GPA + p * 0x2000 + s * 32 + 4, 4), 4);
    return v;
}

/* Issue slot s and wait for its CI bit or an error; returns PxIS. */
static uint32_t issue(unsigned p, unsigned s)
{
    wr(PX(p, AHCI_PX_CI), 1u << s);
    for (unsigned i = 0; i < 5000; i++) {
        uint32_t is = rd(PX(p, AHCI_PX_IS));
        if (!(rd(PX(p, AHCI_PX_CI)) & (1u << s)) || (is & AHCI_PX_IS_TFES))
            return is;
        sleep_ms(1);
    }
    cr_assert_fail("slot %u never completed", s);
    return 0;
}

static uint32_t run(unsigned s, uint8_t cmd, uint64_t lba, uint16_t count, uint16_t feat,
                    const struct prd *prds, unsigned n, bool write)
{
    uint8_t f[20];
    h2d(f, cmd, lba, count, feat);
    build(0, s, f, NULL, prds, n, write);
    wr(PX(0, AHCI_PX_IS), 0xFFFFFFFF);
    return issue(0, s);
}

/* Clear ST (waiting for CR), start again: the recovery of §6.2.2. */
static void restart_port(unsigned p)
{
    wr(PX(p, AHCI_PX_CMD), AHCI_PX_CMD_FRE);
    cr_assert(wait_reg(PX(p, AHCI_PX_CMD), AHCI_PX_CMD_CR, 0));
    cr_assert_eq(rd(PX(p, AHCI_PX_CI)), 0, "CI cleared with ST");
    wr(PX(p, AHCI_PX_IS), 0xFFFFFFFF);
    wr(PX(p, AHCI_PX_CMD), AHCI_PX_CMD_FRE | AHCI_PX_CMD_ST);
}

static void disk_up(const char *opts)
{
    char spec[200];
    snprintf(spec, sizeof(spec), "%s,if=sata%s", path, opts);
    const char *s[] = { spec };
    cr_assert_eq(create(s, 1), 0);
    plug_and_start(1);
}

Test(ahci, identify_and_signature)
{
    disk_up(",serial=SER123");
    cr_assert_eq(rd(PX(0, AHCI_PX_SIG)), AHCI_SIG_ATA);
    cr_assert_eq(rd(PX(0, AHCI_PX_TFD)) & 0x89, 0, "not busy, no error");
    struct prd p = { DATA_GPA, 512 };
    uint32_t is = run(0, ATA_IDENTIFY, 0, 0, 0, &p, 1, false);
    cr_assert_eq(is & (AHCI_PX_IS_PSS | AHCI_PX_IS_DHRS | AHCI_PX_IS_TFES),
                 AHCI_PX_IS_PSS | AHCI_PX_IS_DHRS, "PIO Setup and D2H, no error: 0x%x", is);
    cr_assert_eq(prdbc(0, 0), 512);
    const uint8_t *id = ram(DATA_GPA, 512);
    cr_assert_eq(word(id, 100) | word(id, 101) << 16, DISK_BYTES / 512);
    char ser[21] = { 0 };
    for (unsigned i = 0; i < 20; i++)
        ser[i] = (char)id[20 + (i ^ 1)];
    cr_assert_str_eq(ser, "SER123              ");
    char model[18] = { 0 };
    for (unsigned i = 0; i < 17; i++)
        model[i] = (char)id[54 + (i ^ 1)];
    cr_assert_str_eq(model, "minivmm SATA disk");
    const uint8_t *fb = ram(FB_GPA, 256);
    cr_assert_eq(fb[AHCI_RFIS_PSFIS], 0x5F);
    cr_assert_eq(fb[AHCI_RFIS_PSFIS + 15], 0x50, "E_Status");
    cr_assert_eq(fb[AHCI_RFIS_RFIS], 0x34);
    cr_assert_eq(fb[AHCI_RFIS_RFIS + 2], 0x50);
}

Test(ahci, dma_read_write_flush)
{
    disk_up("");
    /* read 4 sectors at LBA 3 through two PRDs */
    struct prd p[2] = { { DATA_GPA, 1024 }, { DATA_GPA + 0x10000, 1024 } };
    uint32_t is = run(1, ATA_READ_DMA_EXT, 3, 4, 0, p, 2, false);
    cr_assert_eq(is & (AHCI_PX_IS_DHRS | AHCI_PX_IS_TFES), AHCI_PX_IS_DHRS, "0x%x", is);
    cr_assert_eq(prdbc(0, 1), 2048);
    for (unsigned i = 0; i < 2048; i++) {
        uint64_t gpa = i < 1024 ? DATA_GPA + i : DATA_GPA + 0x10000 + i - 1024;
        cr_assert_eq(*ram(gpa, 1), pattern_byte(3 * 512 + i), "byte %u", i);
    }
    /* write 2 sectors at LBA 10, flush, read the file */
    uint8_t *d = ram(DATA_GPA, 1024);
    for (unsigned i = 0; i < 1024; i++)
        d[i] = (uint8_t)(0xA0 ^ i);
    struct prd w = { DATA_GPA, 1024 };
    is = run(2, ATA_WRITE_DMA_EXT, 10, 2, 0, &w, 1, true);
    cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
    is = run(3, ATA_FLUSH_EXT, 0, 0, 0, NULL, 0, false);
    cr_assert_eq(is & (AHCI_PX_IS_DHRS | AHCI_PX_IS_TFES), AHCI_PX_IS_DHRS);
    uint8_t back[1024];
    int fd = open(path, O_RDONLY);
    cr_assert_eq(pread(fd, back, 1024, 10 * 512), 1024);
    close(fd);
    cr_assert_eq(memcmp(back, d, 1024), 0, "the write is in the file");
    /* a PRDT longer than the transfer: only the transfer is moved */
    struct prd big = { DATA_GPA + 0x20000, 8192 };
    memset(ram(DATA_GPA + 0x20000, 8192), 0xEE, 8192);
    is = run(4, ATA_READ_DMA, 0, 1, 0, &big, 1, false);
    cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
    cr_assert_eq(*ram(DATA_GPA + 0x20000 + 511, 1), pattern_byte(511));
    cr_assert_eq(*ram(DATA_GPA + 0x20000 + 512, 1), 0xEE);
}

Test(ahci, ncq_several_tags)
{
    disk_up("");
    uint8_t f[20];
    wr(PX(0, AHCI_PX_IS), 0xFFFFFFFF);
    wr(PX(0, AHCI_PX_SACT), 0xF0);
    for (unsigned t = 4; t < 8; t++) {
        struct prd p = { DATA_GPA + t * 0x4000, 8 * 512 };
        h2d(f, ATA_READ_FPDMA, t * 16, (uint16_t)(t << 3), 8);
        build(0, t, f, NULL, &p, 1, false);
    }
    wr(PX(0, AHCI_PX_CI), 0xF0);
    cr_assert(wait_reg(PX(0, AHCI_PX_SACT), 0xF0, 0), "SACT 0x%x", rd(PX(0, AHCI_PX_SACT)));
    cr_assert_eq(rd(PX(0, AHCI_PX_CI)), 0);
    uint32_t is = rd(PX(0, AHCI_PX_IS));
    cr_assert(is & AHCI_PX_IS_SDBS);
    cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
    cr_assert_eq(ram(FB_GPA, 256)[AHCI_RFIS_SDBFIS], 0xA1);
    for (unsigned t = 4; t < 8; t++)
        for (unsigned i = 0; i < 8 * 512; i += 511)
            cr_assert_eq(*ram(DATA_GPA + t * 0x4000 + i, 1), pattern_byte(t * 16 * 512 + i));
    /* the same tags again, other sectors: slots are reusable after their SDB FIS */
    for (unsigned round = 1; round < 4; round++) {
        wr(PX(0, AHCI_PX_SACT), 0xF0);
        for (unsigned t = 4; t < 8; t++) {
            struct prd p = { DATA_GPA + t * 0x4000, 8 * 512 };
            h2d(f, ATA_READ_FPDMA, t * 16 + round * 100, (uint16_t)(t << 3), 8);
            build(0, t, f, NULL, &p, 1, false);
        }
        wr(PX(0, AHCI_PX_CI), 0xF0);
        cr_assert(wait_reg(PX(0, AHCI_PX_SACT), 0xF0, 0), "round %u", round);
        for (unsigned t = 4; t < 8; t++)
            cr_assert_eq(*ram(DATA_GPA + t * 0x4000 + 7, 1),
                         pattern_byte((t * 16 + round * 100) * 512 + 7));
    }
    /* a tag that is not its slot fails; the NCQ error log names it */
    struct prd p = { DATA_GPA, 512 };
    wr(PX(0, AHCI_PX_SACT), 1u << 9);
    h2d(f, ATA_READ_FPDMA, 0, 3u << 3, 1);
    build(0, 9, f, NULL, &p, 1, false);
    is = issue(0, 9);
    cr_assert(is & AHCI_PX_IS_TFES);
    restart_port(0);
    cr_assert_eq(rd(PX(0, AHCI_PX_SACT)), 0, "SACT cleared with ST");
    is = run(10, ATA_READ_LOG_EXT, 0x10, 1, 0, &p, 1, false);
    cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
    const uint8_t *log = ram(DATA_GPA, 512);
    cr_assert_eq(log[0], 9, "NQ clear, tag 9");
    cr_assert_eq(log[3], ATA_ER_ABRT);
    uint8_t sum = 0;
    for (unsigned i = 0; i < 512; i++)
        sum = (uint8_t)(sum + log[i]);
    cr_assert_eq(sum, 0);
    is = run(11, ATA_READ_LOG_DMA_EXT, 0x10, 1, 0, &p, 1, false);
    cr_assert_eq(ram(DATA_GPA, 1)[0], 0x80, "read once: cleared");
    is = run(12, ATA_READ_LOG_EXT, 0x30, 1, 0, &p, 1, false);
    cr_assert(is & AHCI_PX_IS_TFES, "other logs abort");
}

Test(ahci, trim)
{
    disk_up("");
    uint8_t *r = ram(DATA_GPA, 512);
    memset(r, 0, 512);
    uint64_t e = 64 | (uint64_t)16 << 48;   /* LBA 64, 16 sectors */
    memcpy(r, &e, 8);
    struct prd p = { DATA_GPA, 512 };
    uint32_t is = run(0, ATA_DSM, 0, 1, 1, &p, 1, true);
    cr_assert_eq(is & (AHCI_PX_IS_DHRS | AHCI_PX_IS_TFES), AHCI_PX_IS_DHRS);
    uint8_t back[16 * 512], zero[16 * 512] = { 0 };
    int fd = open(path, O_RDONLY);
    cr_assert_eq(pread(fd, back, sizeof(back), 64 * 512), (ssize_t)sizeof(back));
    close(fd);
    cr_assert_eq(memcmp(back, zero, sizeof(back)), 0, "punched");
    /* a range past the end fails with IDNF */
    e = (DISK_BYTES / 512 - 1) | (uint64_t)2 << 48;
    memcpy(r, &e, 8);
    is = run(1, ATA_DSM, 0, 1, 1, &p, 1, true);
    cr_assert(is & AHCI_PX_IS_TFES);
    cr_assert_eq(rd(PX(0, AHCI_PX_TFD)), (uint32_t)(ATA_ER_ABRT | ATA_ER_IDNF) << 8 | 0x41);
}

Test(ahci, read_only_disk_refuses_writes)
{
    disk_up(",readonly");
    struct prd p = { DATA_GPA, 512 };
    uint32_t is = run(0, ATA_WRITE_DMA_EXT, 0, 1, 0, &p, 1, true);
    cr_assert(is & AHCI_PX_IS_TFES);
    cr_assert_eq(rd(PX(0, AHCI_PX_TFD)), (uint32_t)ATA_ER_ABRT << 8 | 0x41, "ERR, ABRT");
    cr_assert_eq(rd(PX(0, AHCI_PX_CI)), 1, "the failed slot stays issued");
    cr_assert_eq((rd(PX(0, AHCI_PX_CMD)) >> 8) & 0x1F, 0, "CCS");
    restart_port(0);
    is = run(0, ATA_IDENTIFY, 0, 0, 0, &p, 1, false);
    cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
    cr_assert_eq(word(ram(DATA_GPA, 512), 169), 0, "no TRIM on a read-only disk");
}

Test(ahci, errors_fail_only_the_command)
{
    disk_up("");
    /* a PRD outside RAM */
    struct prd out = { 0x70000000ULL, 512 };
    uint32_t is = run(0, ATA_READ_DMA_EXT, 0, 1, 0, &out, 1, false);
    cr_assert_eq(is & (AHCI_PX_IS_TFES | AHCI_PX_IS_HBDS), AHCI_PX_IS_TFES | AHCI_PX_IS_HBDS);
    cr_assert(rd(PX(0, AHCI_PX_TFD)) & ATA_ST_ERR);
    /* the port takes nothing more until restarted */
    struct prd ok = { DATA_GPA, 512 };
    uint8_t f[20];
    h2d(f, ATA_READ_DMA_EXT, 0, 1, 0);
    build(0, 1, f, NULL, &ok, 1, false);
    wr(PX(0, AHCI_PX_CI), 2);
    sleep_ms(50);
    cr_assert_eq(rd(PX(0, AHCI_PX_CI)), 3, "halted after TFES");
    restart_port(0);

    /* a PRDT shorter than the transfer */
    struct prd short_ = { DATA_GPA, 1024 };
    is = run(2, ATA_READ_DMA_EXT, 0, 4, 0, &short_, 1, false);
    cr_assert(is & AHCI_PX_IS_TFES);
    cr_assert_eq(rd(PX(0, AHCI_PX_TFD)) >> 8, ATA_ER_ABRT);
    restart_port(0);

    /* an LBA past the end */
    is = run(3, ATA_READ_DMA_EXT, DISK_BYTES / 512, 1, 0, &ok, 1, false);
    cr_assert(is & AHCI_PX_IS_TFES);
    cr_assert_eq(rd(PX(0, AHCI_PX_TFD)) >> 8, ATA_ER_ABRT | ATA_ER_IDNF);
    restart_port(0);

    /* a FIS that is not a Register H2D FIS */
    h2d(f, ATA_READ_DMA_EXT, 0, 1, 0);
    f[0] = 0x46;
    build(0, 4, f, NULL, &ok, 1, false);
    is = issue(0, 4);
    cr_assert(is & AHCI_PX_IS_TFES);
    restart_port(0);

    /* a command table outside RAM */
    h2d(f, ATA_IDENTIFY, 0, 0, 0);
    build(0, 5, f, NULL, &ok, 1, false);
    uint32_t bad = 0x7FFFFF80u;
    memcpy(ram(CLB_GPA + 5 * 32 + 8, 4), &bad, 4);
    is = issue(0, 5);
    cr_assert_eq(is & (AHCI_PX_IS_TFES | AHCI_PX_IS_HBFS), AHCI_PX_IS_TFES | AHCI_PX_IS_HBFS);
    restart_port(0);

    /* an unknown command aborts */
    is = run(6, 0xFE, 0, 0, 0, NULL, 0, false);
    cr_assert(is & AHCI_PX_IS_TFES);
    restart_port(0);

    /* and the port works again */
    is = run(7, ATA_READ_DMA_EXT, 1, 1, 0, &ok, 1, false);
    cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
    cr_assert_eq(*ram(DATA_GPA, 1), pattern_byte(512));
}

Test(ahci, intx_level)
{
    disk_up("");
    wr(PX(0, AHCI_PX_IE), 0xFFFFFFFF);
    struct prd p = { DATA_GPA, 512 };
    run(0, ATA_READ_DMA_EXT, 0, 1, 0, &p, 1, false);
    sleep_ms(10);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 0, "GHC.IE off: no interrupt");
    wr(AHCI_GHC, AHCI_GHC_IE);
    uint8_t f[20];
    h2d(f, ATA_READ_DMA_EXT, 0, 1, 0);
    build(0, 1, f, NULL, &p, 1, false);
    issue(0, 1);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 1);
    cr_assert_eq(rd(AHCI_IS), 1, "port 0");
    wr(PX(0, AHCI_PX_IS), 0xFFFFFFFF);
    wr(AHCI_IS, 1);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 0, "lowered when PxIS is cleared");
    cr_assert_eq(rd(AHCI_IS), 0);
    cr_assert_eq(fe.bad_calls, 0);
}

Test(ahci, msi)
{
    disk_up("");
    uint8_t cap = AHCI_MSI_AT;
    uint32_t v;
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, cap, 1, &v), 0);
    cr_assert_eq(v, PCI_CAP_ID_MSI);
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, cap + PCI_MSI_ADDRESS_LO, 4, 0xFEE00000), 0);
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, cap + PCI_MSI_DATA_64, 2, 0x4041), 0);
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, cap + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE), 0);
    wr(AHCI_GHC, AHCI_GHC_IE);
    wr(PX(0, AHCI_PX_IE), 0xFFFFFFFF);
    struct prd p = { DATA_GPA, 512 };
    run(0, ATA_READ_DMA_EXT, 0, 1, 0, &p, 1, false);
    struct pollfd pf = { .fd = ahci_msi_fd(hba), .events = POLLIN };
    cr_assert_eq(poll(&pf, 1, 1000), 1, "the MSI eventfd was signalled");
    cr_assert_eq(fake_level(&fe, INTX_GSI), 0, "no INTx with MSI on");
    cr_assert(pci_cap_find(ahci_pci(hba), PCI_CAP_ID_PM), "a PM capability");
}

Test(ahci, comreset_and_hba_reset)
{
    disk_up("");
    wr(PX(0, AHCI_PX_CMD), AHCI_PX_CMD_FRE);
    wr(PX(0, AHCI_PX_SCTL), 1);
    cr_assert_eq(rd(PX(0, AHCI_PX_SSTS)) & 0xF, 0, "link down in COMRESET");
    wr(PX(0, AHCI_PX_SCTL), 0);
    cr_assert_eq(rd(PX(0, AHCI_PX_SSTS)), 0x133);
    cr_assert_eq(rd(PX(0, AHCI_PX_SIG)), AHCI_SIG_ATA);
    cr_assert_eq(rd(PX(0, AHCI_PX_TFD)), 0x0150);
    cr_assert_eq(ram(FB_GPA, 256)[AHCI_RFIS_RFIS], 0x34, "the signature FIS");
    wr(AHCI_GHC, AHCI_GHC_IE);
    wr(AHCI_GHC, AHCI_GHC_HR);
    cr_assert(wait_reg(AHCI_GHC, AHCI_GHC_HR, 0));
    cr_assert_eq(rd(AHCI_GHC), AHCI_GHC_AE, "IE reset");
    cr_assert_eq(rd(PX(0, AHCI_PX_CMD)) & (AHCI_PX_CMD_ST | AHCI_PX_CMD_FRE), 0);
    cr_assert_eq(rd(PX(0, AHCI_PX_CLB)), (uint32_t)CLB_GPA, "CLB kept over HBA reset");
}

Test(ahci, two_ports_and_boot_paths)
{
    char a[128], b[128];
    snprintf(a, sizeof(a), "%s,if=sata", path);
    make_file("second.img", DISK_BYTES);
    snprintf(b, sizeof(b), "%s,if=sata,bootindex=0", path);
    struct disk_args da = { .nr = 0 };
    char err[256];
    cr_assert_eq(disk_args_apply(&da, "--disk", 6, a, err, sizeof(err)), 0);
    cr_assert_eq(disk_args_apply(&da, "--disk", 6, "virtio.img", err, sizeof(err)), 0);
    cr_assert_eq(disk_args_apply(&da, "--disk", 6, b, err, sizeof(err)), 0);
    cr_assert_eq(disk_args_finish(&da, err, sizeof(err)), 0);
    struct pcidev_list l = { .nr = 0 };
    struct pcidev_host host = { .env = &fe.env, .irq = &irq, .vm_fd = -1, .io_pin = -1 };
    cr_assert_eq(ahci_attach(&host, &da, &l), 0);
    cr_assert_eq(l.nr, 1, "one controller for both");
    cr_assert_eq(l.dev[0].place, PCIDEV_FIXED);
    cr_assert_eq(l.dev[0].fixed_devfn, DEVFN);
    struct pcidev_where w = { .devfn = DEVFN, .slot = 0x1F };
    char p[128];
    int bi;
    cr_assert_eq(l.dev[0].ops->boot_entry(l.dev[0].opaque, &w, 1, &bi, p, sizeof(p)), 0);
    cr_assert_str_eq(p, "/pci@i0cf8/pci8086,2922@1f,2/drive@1/disk@0");
    cr_assert_eq(bi, 0, "bootindex=0");
    cr_assert_eq(l.dev[0].ops->boot_entry(l.dev[0].opaque, &w, 0, &bi, p, sizeof(p)), 0);
    cr_assert_eq(bi, 1);
    cr_assert_eq(l.dev[0].ops->boot_entry(l.dev[0].opaque, &w, 2, &bi, p, sizeof(p)), -ENOENT);
    pcidev_list_destroy(&l);

    /* no SATA disk: no controller */
    struct disk_args none = { .nr = 0 };
    cr_assert_eq(disk_args_apply(&none, "--disk", 6, "v.img", err, sizeof(err)), 0);
    cr_assert_eq(ahci_attach(&host, &none, &l), 0);
    cr_assert_eq(l.nr, 0);
}

Test(ahci, more_than_six_refused)
{
    char s[7][128];
    const char *p[7];
    for (unsigned i = 0; i < 7; i++) {
        snprintf(s[i], sizeof(s[i]), "%s/d%u.img,if=sata", dir, i);
        p[i] = s[i];
    }
    cr_assert_eq(create(p, 7), -E2BIG);
    cr_assert_null(hba);
}

Test(ahci, missing_image_refused)
{
    char s[128];
    snprintf(s, sizeof(s), "%s/none.img,if=sata", dir);
    const char *p[] = { s };
    cr_assert_lt(create(p, 1), 0);
}

/* Registers are dwords: a byte write is dropped, reads of any width work. */
Test(ahci, register_widths)
{
    disk_up("");
    uint8_t b = 0xFF;
    cr_assert_eq(bus_write(&fe.mmio, ABAR + PX(0, AHCI_PX_IE), &b, 1), 0);
    cr_assert_eq(rd(PX(0, AHCI_PX_IE)), 0);
    uint8_t q[8];
    cr_assert_eq(bus_read(&fe.mmio, ABAR + AHCI_PI, q, 2), 0);
    cr_assert_eq(q[0], 0x3F);
    cr_assert_eq(bus_read(&fe.mmio, ABAR + AHCI_PORT_BASE + AHCI_PX_SIG, q, 8), 0);
    cr_assert_eq(q[0], 0x01);
    cr_assert_eq(q[4], 0x33, "SSTS in the upper dword");
}

/* ---- the ATAPI CD-ROM ---- */

static struct atapi_dev cd0(void)
{
    struct atapi_dev d = { .sectors = 1000 };
    snprintf(d.vendor, sizeof(d.vendor), "MINIVMM");
    snprintf(d.product, sizeof(d.product), "CD");
    snprintf(d.revision, sizeof(d.revision), "1.0");
    atapi_reset(&d);
    return d;
}

static struct atapi_result mmc(struct atapi_dev *d, uint8_t *buf, const uint8_t *cdb12)
{
    uint8_t cdb[16] = { 0 };
    struct atapi_result r;
    memcpy(cdb, cdb12, 12);
    cr_assert_eq(atapi_cmd(d, cdb, buf, &r), 0);
    return r;
}

Test(atapi, inquiry_capacity_read)
{
    struct atapi_dev d = cd0();
    uint8_t b[ATAPI_BUF_MAX];
    struct atapi_result r = mmc(&d, b, (const uint8_t[12]){ 0x12, 0, 0, 0, 96 });
    cr_assert_eq(r.act, ATAPI_DATA_IN);
    cr_assert_eq(r.len, 36);
    cr_assert_eq(b[0], 0x05);
    cr_assert_eq(b[1], 0x80, "removable");
    cr_assert_eq(memcmp(b + 8, "MINIVMM ", 8), 0);
    r = mmc(&d, b, (const uint8_t[12]){ 0x12, 0, 0, 0, 8 });
    cr_assert_eq(r.len, 8, "the allocation length cuts");
    r = mmc(&d, b, (const uint8_t[12]){ 0x12, 1, 0x80, 0, 96 });
    cr_assert_eq(r.act, ATAPI_CHECK, "no VPD pages");
    r = mmc(&d, b, (const uint8_t[12]){ 0x25 });
    cr_assert_eq(r.len, 8);
    cr_assert_eq(b[3], (999 & 0xFF));
    cr_assert_eq(b[2], 999 >> 8);
    cr_assert_eq(b[6], 0x08, "2048-byte blocks");
    r = mmc(&d, b, (const uint8_t[12]){ 0x28, 0, 0, 0, 0x03, 0xE6, 0, 0, 2 });
    cr_assert_eq(r.act, ATAPI_READ);
    cr_assert_eq(r.lba, 998);
    cr_assert_eq(r.sectors, 2);
    r = mmc(&d, b, (const uint8_t[12]){ 0x28, 0, 0, 0, 0x03, 0xE7, 0, 0, 2 });
    cr_assert_eq(r.act, ATAPI_CHECK, "past the end");
    cr_assert_eq(d.sense_key, SENSE_ILLEGAL_REQUEST);
    cr_assert_eq(d.asc, 0x21);
    r = mmc(&d, b, (const uint8_t[12]){ 0x03, 0, 0, 0, 18 });
    cr_assert_eq(r.len, 18);
    cr_assert_eq(b[0], 0x70);
    cr_assert_eq(b[2], SENSE_ILLEGAL_REQUEST);
    cr_assert_eq(b[12], 0x21);
    r = mmc(&d, b, (const uint8_t[12]){ 0x03, 0, 0, 0, 18 });
    cr_assert_eq(b[2], SENSE_NONE, "the sense was cleared");
    r = mmc(&d, b, (const uint8_t[12]){ 0xA8, 0, 0, 0, 0, 0, 0, 0x01, 0, 0 });
    cr_assert_eq(r.act, ATAPI_CHECK, "READ(12) of more than 65535 sectors");
    r = mmc(&d, b, (const uint8_t[12]){ 0xA8, 0, 0, 0, 0, 10, 0, 0, 0, 3 });
    cr_assert_eq(r.act, ATAPI_READ);
    cr_assert_eq(r.len, 3 * 2048);
    r = mmc(&d, b, (const uint8_t[12]){ 0xFF });
    cr_assert_eq(r.act, ATAPI_CHECK);
    cr_assert_eq(d.asc, 0x20, "INVALID COMMAND OPERATION CODE");
    r = mmc(&d, b, (const uint8_t[12]){ 0x2A });
    cr_assert_eq(r.act, ATAPI_CHECK, "WRITE(10): read-only drive");
    cr_assert_eq(mmc(&d, b, (const uint8_t[12]){ 0x00 }).act, ATAPI_GOOD);
}

Test(atapi, toc_configuration_events_mode)
{
    struct atapi_dev d = cd0();
    uint8_t b[ATAPI_BUF_MAX];
    struct atapi_result r = mmc(&d, b, (const uint8_t[12]){ 0x43, 0, 0, 0, 0, 0, 0, 0, 100 });
    cr_assert_eq(r.len, 20, "header, track 1, lead-out");
    cr_assert_eq(b[6], 1);
    cr_assert_eq(b[14], 0xAA);
    cr_assert_eq(b[19], 1000 & 0xFF);
    r = mmc(&d, b, (const uint8_t[12]){ 0x43, 2, 0, 0, 0, 0, 0, 0, 100 });
    cr_assert_eq(b[9], 0, "MSF 00:02:00 for LBA 0");
    cr_assert_eq(b[10], 2);
    r = mmc(&d, b, (const uint8_t[12]){ 0x43, 0, 1, 0, 0, 0, 0, 0, 100 });
    cr_assert_eq(r.len, 12, "session info");
    r = mmc(&d, b, (const uint8_t[12]){ 0x43, 0, 5, 0, 0, 0, 0, 0, 100 });
    cr_assert_eq(r.act, ATAPI_CHECK);
    r = mmc(&d, b, (const uint8_t[12]){ 0x46, 0, 0, 0, 0, 0, 0, 1, 0 });
    cr_assert_eq(r.act, ATAPI_DATA_IN);
    cr_assert_eq(b[7], 0x08, "a small image is a CD-ROM");
    cr_assert_eq(b[9], 0x00, "profile list first");
    d.sectors = 2000000;
    r = mmc(&d, b, (const uint8_t[12]){ 0x46, 2, 0, 3, 0, 0, 0, 1, 0 });
    cr_assert_eq(b[7], 0x10, "DVD-ROM");
    cr_assert_eq(r.len, 8 + 8, "RT 2: the one feature");
    cr_assert_eq(b[9], 0x03);
    r = mmc(&d, b, (const uint8_t[12]){ 0x4A, 1, 0, 0, 0x10, 0, 0, 0, 8 });
    cr_assert_eq(r.len, 8);
    cr_assert_eq(b[4], 2, "new media, once");
    cr_assert_eq(b[5], 2, "present");
    r = mmc(&d, b, (const uint8_t[12]){ 0x4A, 1, 0, 0, 0x10, 0, 0, 0, 8 });
    cr_assert_eq(b[4], 0);
    r = mmc(&d, b, (const uint8_t[12]){ 0x4A, 0, 0, 0, 0x10, 0, 0, 0, 8 });
    cr_assert_eq(r.act, ATAPI_CHECK, "asynchronous: not supported");
    r = mmc(&d, b, (const uint8_t[12]){ 0x5A, 0, 0x2A, 0, 0, 0, 0, 0, 100 });
    cr_assert_eq(r.len, 8 + 28);
    cr_assert_eq(b[8], 0x2A);
    r = mmc(&d, b, (const uint8_t[12]){ 0x5A, 0, 0x3F, 0, 0, 0, 0, 0, 100 });
    cr_assert_eq(r.len, 8 + 12 + 28);
    r = mmc(&d, b, (const uint8_t[12]){ 0x5A, 0, 0x05, 0, 0, 0, 0, 0, 100 });
    cr_assert_eq(r.act, ATAPI_CHECK, "no such page");
    r = mmc(&d, b, (const uint8_t[12]){ 0x5A, 0, 0xEA, 0, 0, 0, 0, 0, 100 });
    cr_assert_eq(d.asc, 0x39, "saved values");
    r = mmc(&d, b, (const uint8_t[12]){ 0x51, 0, 0, 0, 0, 0, 0, 0, 34 });
    cr_assert_eq(r.len, 34);
    cr_assert_eq(b[2], 0x0E);
    r = mmc(&d, b, (const uint8_t[12]){ 0xBD, 0, 0, 0, 0, 0, 0, 0, 0, 8 });
    cr_assert_eq(r.len, 8);
    cr_assert_eq(mmc(&d, b, (const uint8_t[12]){ 0x1E, 0, 0, 0, 1 }).act, ATAPI_GOOD);
    cr_assert(d.locked);
    cr_assert_eq(mmc(&d, b, (const uint8_t[12]){ 0x1B, 0, 0, 0, 2 }).act, ATAPI_GOOD);
}

static uint32_t packet(unsigned s, const uint8_t *cdb12, const struct prd *prds, unsigned n)
{
    uint8_t f[20], cdb[16] = { 0 };
    memcpy(cdb, cdb12, 12);
    h2d(f, ATA_PACKET, 0, 0, 1 /* DMA */);
    build(0, s, f, cdb, prds, n, false);
    wr(PX(0, AHCI_PX_IS), 0xFFFFFFFF);
    return issue(0, s);
}

static void cd_up(uint64_t bytes)
{
    make_file("cd.iso", bytes);
    char spec[200];
    snprintf(spec, sizeof(spec), "cdrom:%s", path);
    const char *s[] = { spec };
    cr_assert_eq(create(s, 1), 0);
    plug_and_start(1);
}

Test(ahci, atapi_end_to_end)
{
    cd_up(512 * 2048);
    cr_assert_eq(rd(PX(0, AHCI_PX_SIG)), AHCI_SIG_ATAPI);
    struct prd p = { DATA_GPA, 512 };
    /* IDENTIFY DEVICE aborts on a packet device; IDENTIFY PACKET DEVICE answers */
    uint32_t is = run(0, ATA_IDENTIFY, 0, 0, 0, &p, 1, false);
    cr_assert(is & AHCI_PX_IS_TFES);
    restart_port(0);
    is = run(1, ATA_IDENTIFY_PACKET, 0, 0, 0, &p, 1, false);
    cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
    cr_assert_eq(word(ram(DATA_GPA, 512), 0) >> 14, 2, "ATAPI");
    cr_assert_eq((word(ram(DATA_GPA, 512), 0) >> 8) & 0x1F, 5, "CD-ROM");

    is = packet(2, (const uint8_t[12]){ 0x12, 0, 0, 0, 36 }, &p, 1);
    cr_assert_eq(is & (AHCI_PX_IS_TFES | AHCI_PX_IS_DHRS), AHCI_PX_IS_DHRS);
    cr_assert_eq(prdbc(0, 2), 36);
    cr_assert_eq(*ram(DATA_GPA, 1), 0x05);

    is = packet(3, (const uint8_t[12]){ 0x25 }, &p, 1);
    cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
    const uint8_t *c = ram(DATA_GPA, 8);
    cr_assert_eq(c[2] << 8 | c[3], 511);

    struct prd rp[2] = { { DATA_GPA, 2048 }, { DATA_GPA + 0x10000, 2048 } };
    is = packet(4, (const uint8_t[12]){ 0x28, 0, 0, 0, 0, 7, 0, 0, 2 }, rp, 2);
    cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
    cr_assert_eq(prdbc(0, 4), 4096);
    for (unsigned i = 0; i < 4096; i += 97) {
        uint64_t gpa = i < 2048 ? DATA_GPA + i : DATA_GPA + 0x10000 + i - 2048;
        cr_assert_eq(*ram(gpa, 1), pattern_byte(7 * 2048 + i), "byte %u", i);
    }

    /* past the end: CHECK CONDITION, sense key in the error register */
    is = packet(5, (const uint8_t[12]){ 0x28, 0, 0, 0, 0x01, 0xFF, 0, 0, 2 }, rp, 2);
    cr_assert(is & AHCI_PX_IS_TFES);
    cr_assert_eq(rd(PX(0, AHCI_PX_TFD)), (uint32_t)(SENSE_ILLEGAL_REQUEST << 4 | ATA_ER_ABRT) << 8
                 | 0x41);
    restart_port(0);
    is = packet(6, (const uint8_t[12]){ 0x03, 0, 0, 0, 18 }, &p, 1);
    cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
    cr_assert_eq(ram(DATA_GPA, 18)[2], SENSE_ILLEGAL_REQUEST);
    cr_assert_eq(ram(DATA_GPA, 18)[12], 0x21, "LBA OUT OF RANGE");

    /* writes are refused at the ATA level */
    is = run(7, ATA_WRITE_DMA_EXT, 0, 1, 0, &p, 1, true);
    cr_assert(is & AHCI_PX_IS_TFES);
}

Test(ahci, cdrom_image_not_2048_refused)
{
    make_file("odd.iso", 512 * 2048 + 512);
    char spec[200];
    snprintf(spec, sizeof(spec), "cdrom:%s", path);
    const char *s[] = { spec };
    cr_assert_eq(create(s, 1), -EINVAL);
    cr_assert_null(hba);
}

/* Clearing ST or resetting the HBA with requests at the engine: CI and
 * SACT are dropped at once, CR / HR read 1 until the engine is done with
 * them, the late completions are forgotten, and the port works after. */
Test(ahci, stop_and_reset_with_requests_in_flight)
{
    disk_up("");
    uint8_t f[20];
    for (unsigned round = 0; round < 2; round++) {
        wr(PX(0, AHCI_PX_SACT), 0xFFFFFFFF);
        for (unsigned t = 0; t < 32; t++) {
            struct prd p = { DATA_GPA + t * 0x8000, 0x8000 };
            h2d(f, ATA_READ_FPDMA, t * 64, (uint16_t)(t << 3), 64);
            build(0, t, f, NULL, &p, 1, false);
        }
        wr(PX(0, AHCI_PX_CI), 0xFFFFFFFF);
        if (round == 0) {
            wr(PX(0, AHCI_PX_CMD), AHCI_PX_CMD_FRE);
            cr_assert_eq(rd(PX(0, AHCI_PX_CI)), 0);
            cr_assert_eq(rd(PX(0, AHCI_PX_SACT)), 0);
            cr_assert(wait_reg(PX(0, AHCI_PX_CMD), AHCI_PX_CMD_CR, 0));
        } else {
            wr(AHCI_GHC, AHCI_GHC_HR);
            cr_assert(wait_reg(AHCI_GHC, AHCI_GHC_HR, 0));
            cr_assert_eq(rd(PX(0, AHCI_PX_SACT)), 0);
            wr(PX(0, AHCI_PX_CLB), (uint32_t)CLB_GPA);
            wr(PX(0, AHCI_PX_FB), (uint32_t)FB_GPA);
        }
        sleep_ms(20);
        cr_assert_eq(rd(PX(0, AHCI_PX_SACT)), 0, "late completions are forgotten");
        wr(PX(0, AHCI_PX_IS), 0xFFFFFFFF);
        wr(PX(0, AHCI_PX_CMD), AHCI_PX_CMD_FRE | AHCI_PX_CMD_ST);
        struct prd ok = { DATA_GPA, 512 };
        uint32_t is = run(3, ATA_READ_DMA_EXT, 5, 1, 0, &ok, 1, false);
        cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
        cr_assert_eq(*ram(DATA_GPA + 3, 1), pattern_byte(5 * 512 + 3));
    }
}

/* A guest reset unplugs and plugs again: power-on state, working again. */
Test(ahci, unplug_and_plug_again)
{
    disk_up("");
    struct prd p = { DATA_GPA, 512 };
    wr(AHCI_GHC, AHCI_GHC_IE);
    cr_assert_eq(run(0, ATA_IDENTIFY, 0, 0, 0, &p, 1, false) & AHCI_PX_IS_TFES, 0);
    ahci_unplug(hba);
    uint8_t b[4];
    cr_assert_neq(bus_read(&fe.mmio, ABAR + AHCI_CAP, b, 4), 0, "ABAR gone");
    plug_and_start(1);
    cr_assert_eq(rd(AHCI_GHC), AHCI_GHC_AE, "power-on GHC");
    cr_assert_eq(run(1, ATA_IDENTIFY, 0, 0, 0, &p, 1, false) & AHCI_PX_IS_TFES, 0);
    cr_assert_eq(word(ram(DATA_GPA, 512), 100), DISK_BYTES / 512);
}

/* On the q35 platform: placed at 00:1f.2 next to the LPC, found by the
 * guest's own config cycles, INTA# on the slot's GSI, the drives in the
 * fw_cfg bootorder by their bootindex among the other devices. */
Test(ahci, on_q35)
{
    char a[128], c[128];
    snprintf(a, sizeof(a), "%s,if=sata", path);
    make_file("setup.iso", 64 * 2048);
    snprintf(c, sizeof(c), "%s", path);
    struct disk_args da = { .nr = 0 };
    char err[256];
    cr_assert_eq(disk_args_apply(&da, "--disk", 6, a, err, sizeof(err)), 0);
    cr_assert_eq(disk_args_apply(&da, "--cdrom", 7, c, err, sizeof(err)), 0);
    da.boot_cdrom = true;
    cr_assert_eq(disk_args_finish(&da, err, sizeof(err)), 0);
    struct pcidev_list l = { .nr = 0 };
    struct pcidev_host host = { .env = &fe.env, .irq = &irq, .vm_fd = -1, .io_pin = -1 };
    cr_assert_eq(ahci_attach(&host, &da, &l), 0);
    struct q35 *q;
    struct q35_config qc = { .nr_cpus = 1, .devs = &l };
    cr_assert_eq(q35_create(&fe.env, &qc, &q), 0);
    pio_out(&fe, 0xCF8, 0x80000000u | 0x1Fu << 11 | 2u << 8, 4);
    cr_assert_eq(pio_in(&fe, 0xCFC, 4), 0x29228086);
    pio_out(&fe, 0xCF8, 0x80000000u | 0x1Fu << 11 | 2u << 8 | PCI_INTERRUPT_LINE, 4);
    cr_assert_eq(pio_in(&fe, 0xCFC, 4) & 0xFFFF, 0x0100 | (unsigned)q35_intx_gsi(
                 ahci_pci(l.dev[0].opaque), 1));
    cr_assert_str_eq(q35_bootorder(q), "/pci@i0cf8/pci8086,2922@1f,2/drive@1/disk@0\n"
                     "/pci@i0cf8/pci8086,2922@1f,2/drive@0/disk@0\n", "--boot cdrom: CD first");
    q35_destroy(q);
    pcidev_list_destroy(&l);
}

/* Write cache off (SET FEATURES 82h) and FUA: writes complete after a
 * flush of their own; IDENTIFY says the cache is off. */
Test(ahci, write_cache_off_and_fua)
{
    disk_up("");
    struct prd p = { DATA_GPA, 512 };
    uint32_t is = run(0, ATA_SET_FEATURES, 0, 0, 0x82, NULL, 0, false);
    cr_assert_eq(is & AHCI_PX_IS_TFES, 0);
    is = run(1, ATA_IDENTIFY, 0, 0, 0, &p, 1, false);
    cr_assert_eq(word(ram(DATA_GPA, 512), 85) & (1u << 5), 0, "write cache disabled");
    memset(ram(DATA_GPA, 512), 0x5C, 512);
    is = run(2, ATA_WRITE_DMA_EXT, 20, 1, 0, &p, 1, true);
    cr_assert_eq(is & (AHCI_PX_IS_TFES | AHCI_PX_IS_DHRS), AHCI_PX_IS_DHRS);
    cr_assert_eq(prdbc(0, 2), 512);
    uint8_t f[20];
    wr(PX(0, AHCI_PX_SACT), 1u << 3);
    h2d(f, ATA_WRITE_FPDMA, 21, 3u << 3, 1);
    f[7] |= 0x80;   /* FUA */
    build(0, 3, f, NULL, &p, 1, true);
    wr(PX(0, AHCI_PX_CI), 1u << 3);
    cr_assert(wait_reg(PX(0, AHCI_PX_SACT), 1u << 3, 0));
    cr_assert_eq(rd(PX(0, AHCI_PX_IS)) & AHCI_PX_IS_TFES, 0);
    uint8_t back[1024];
    int fd = open(path, O_RDONLY);
    cr_assert_eq(pread(fd, back, 1024, 20 * 512), 1024);
    close(fd);
    for (unsigned i = 0; i < 1024; i++)
        cr_assert_eq(back[i], 0x5C);
    is = run(4, ATA_SET_FEATURES, 0, 0, 0x02, NULL, 0, false);
    is = run(5, ATA_IDENTIFY, 0, 0, 0, &p, 1, false);
    cr_assert(word(ram(DATA_GPA, 512), 85) & (1u << 5), "on again");
}

/* The BAR4 index/data pair reaches the ABAR registers; the SATA
 * capability points at it. */
Test(ahci, index_data_pair)
{
    disk_up("");
    uint32_t v;
    uint8_t at = pci_cap_find(ahci_pci(hba), AHCI_CAP_ID_SATA);
    cr_assert_eq(at, AHCI_SATA_AT);
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, at + 4, 4, &v), 0);
    cr_assert_eq(v, 0x48, "BAR4, offset 10h");
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, PCI_BAR0 + 4 * AHCI_IDP_BAR, 4, 0xC000), 0);
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, PCI_COMMAND, 2, PCI_COMMAND_IO |
                                  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), 0);
    pio_out(&fe, 0xC000 + AHCI_IDP_INDEX, AHCI_PI, 4);
    cr_assert_eq(pio_in(&fe, 0xC000 + AHCI_IDP_INDEX, 4), AHCI_PI);
    cr_assert_eq(pio_in(&fe, 0xC000 + AHCI_IDP_DATA, 4), 0x3F);
    pio_out(&fe, 0xC000 + AHCI_IDP_INDEX, PX(0, AHCI_PX_IE), 4);
    pio_out(&fe, 0xC000 + AHCI_IDP_DATA, AHCI_PX_IS_DHRS, 4);
    cr_assert_eq(rd(PX(0, AHCI_PX_IE)), AHCI_PX_IS_DHRS, "a write through the pair");
    pio_out(&fe, 0xC000 + AHCI_IDP_INDEX, 0xFFFFFFFF, 4);
    cr_assert_eq(pio_in(&fe, 0xC000 + AHCI_IDP_INDEX, 4), AHCI_ABAR_SIZE - 4, "inside ABAR");
    cr_assert_eq(pio_in(&fe, 0xC000, 4), 0, "other offsets read 0");
}
