/* devices/storage/nvme.c end to end: a driver written here programs the
 * controller through PCI config space and the MMIO bus as Linux's nvme or
 * Windows' stornvme would (NVMe 1.4 §7.6.1 initialization), puts commands
 * in guest memory and rings doorbells; the engine thread serves them on
 * io_uring against a real file in a temporary directory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/block/disk_args.h"
#include "devices/pci/pci.h"
#include "devices/storage/nvme.h"
#include "devices/storage/nvme_cmd.h"
#include "fake_env.h"
#include "vmm/gm.h"
#include "vmm/irq.h"

#define MiB (1ULL << 20)
#define BAR  0xE0000000ULL
#define DEVFN PCI_DEVFN(0x0A, 0)
#define INTX_GSI 21
#define DISK_BYTES MiB
#define ASQ 0x10000ULL
#define ACQ 0x11000ULL
#define AQ_ENTRIES 32u
#define IOSQ(q) (0x20000ULL + 0x2000ULL * (q))
#define IOCQ(q) (0x60000ULL + 0x1000ULL * (q))
#define DATA 0x100000ULL
#define LIST 0x90000ULL

static struct fake_env fe;
static struct gm gm;
static struct irq_table irq;
static struct pci_bus pb;
static struct nvme *ctl;
static char dir[64], path[96];

struct q {
    uint64_t sq, cq;
    uint32_t size, cq_size, tail, head;
    bool phase;
};
static struct q qs[NVME_NR_QUEUES];

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
    snprintf(dir, sizeof(dir), "/tmp/minivmm-nvme-XXXXXX");
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

static void file_read(uint64_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static uint64_t rd(uint64_t off, unsigned len)
{
    uint8_t b[8] = { 0 };
    cr_assert_eq(bus_read(&fe.mmio, BAR + off, b, len), 0);
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static void wr(uint64_t off, unsigned len, uint64_t v)
{
    uint8_t b[8];
    for (unsigned i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    cr_assert_eq(bus_write(&fe.mmio, BAR + off, b, len), 0);
}

static void ctl_up(const char *opts)
{
    char spec[256], err[256];
    struct disk_arg a;
    snprintf(spec, sizeof(spec), "%s,if=nvme%s", path, opts);
    cr_assert_eq(disk_arg_parse(spec, &a, err, sizeof(err)), 0, "%s", err);
    struct nvme_vm vm = { .env = &fe.env, .irq = &irq, .vm_fd = -1 };
    cr_assert_eq(nvme_create(&vm, &a, 0, -1, &ctl), 0);
    cr_assert_eq(nvme_plug(ctl, &pb, NULL, DEVFN, intx_rule, NULL), 0);
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, PCI_BAR0, 4, (uint32_t)BAR), 0);
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, PCI_BAR0 + 4, 4, (uint32_t)(BAR >> 32)), 0);
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, PCI_COMMAND, 2,
                                  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), 0);
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
    ctl = NULL;
    memset(qs, 0, sizeof(qs));
}

static void env_down(void)
{
    nvme_destroy(ctl);
    pci_bus_fini(&pb);
    irq_table_fini(&irq);
    gm_fini(&gm);
    fake_env_fini(&fe);
    unlink(path);
    rmdir(dir);
}

TestSuite(nvme, .init = env_up, .fini = env_down, .timeout = 30);

static bool wait_csts(uint32_t mask, uint32_t want)
{
    for (int i = 0; i < 5000; i++) {
        if (((uint32_t)rd(0x1C, 4) & mask) == want)
            return true;
        usleep(1000);
    }
    return false;
}

static void zero_guest(uint64_t gpa, size_t len)
{
    uint8_t *p = gm_ptr(&gm, gpa, len);
    cr_assert_not_null(p);
    memset(p, 0, len);
}

/* §7.6.1: admin queue, CC (IOSQES 6, IOCQES 4), wait for RDY. */
static void enable(void)
{
    zero_guest(ASQ, AQ_ENTRIES * 64);
    zero_guest(ACQ, AQ_ENTRIES * 16);
    qs[0] = (struct q){ .sq = ASQ, .cq = ACQ, .size = AQ_ENTRIES, .cq_size = AQ_ENTRIES,
                        .phase = true };
    wr(0x24, 4, (AQ_ENTRIES - 1) << 16 | (AQ_ENTRIES - 1));
    wr(0x28, 8, ASQ);
    wr(0x30, 8, ACQ);
    wr(0x14, 4, 6u << 16 | 4u << 20 | 1);
    cr_assert(wait_csts(3, 1), "CSTS.RDY without CFS: 0x%llx", (unsigned long long)rd(0x1C, 4));
}

static void submit(unsigned q, struct nvme_sqe *e)
{
    struct q *x = &qs[q];
    static uint16_t cid = 1;
    e->cid = cid++;
    cr_assert_eq(gm_write(&gm, x->sq + (uint64_t)x->tail * 64, e, 64), 0);
    x->tail = (x->tail + 1) % x->size;
    wr(0x1000 + 8 * q, 4, x->tail);
}

/* The next CQE of q (by its phase tag); the head doorbell rung after. */
static bool poll_cqe(unsigned q, struct nvme_cqe *out, int ms, bool ring)
{
    struct q *x = &qs[q];
    for (int i = 0; i < ms * 10; i++) {
        /* the phase dword first (the device stores it last), then the rest */
        uint8_t *p = gm_ptr(&gm, x->cq + (uint64_t)x->head * 16, 16);
        cr_assert_not_null(p);
        uint32_t dw3 = __atomic_load_n((uint32_t *)(void *)(p + 12), __ATOMIC_ACQUIRE);
        struct nvme_cqe e;
        memcpy(&e, p, 12);
        memcpy((uint8_t *)&e + 12, &dw3, 4);
        if ((e.status & 1) == x->phase) {
            *out = e;
            if (++x->head == x->cq_size) {
                x->head = 0;
                x->phase = !x->phase;
            }
            if (ring)
                wr(0x1000 + 8 * q + 4, 4, x->head);
            return true;
        }
        usleep(100);
    }
    return false;
}

static uint16_t st_of(const struct nvme_cqe *e)
{
    unsigned sc = (e->status >> 1) & 0xFF, sct = (e->status >> 9) & 7;
    return (uint16_t)(sct << 8 | sc);
}

/* Submit and wait; returns the status (SCT << 8 | SC), *dw0 if asked. */
static uint16_t cmd(unsigned q, struct nvme_sqe e, uint32_t *dw0)
{
    struct nvme_cqe c;
    submit(q, &e);
    cr_assert(poll_cqe(q, &c, 5000, true), "completion on queue %u of opcode 0x%x cdw10 0x%x", q,
              e.opc, e.cdw10);
    cr_assert_eq(c.cid, e.cid);
    cr_assert_eq(c.sqid, q);
    cr_assert_eq(c.sqhd, qs[q].tail, "SQ head reported");
    if (dw0)
        *dw0 = c.dw0;
    return st_of(&c);
}

static uint16_t identify(unsigned cns, uint32_t nsid, uint64_t buf)
{
    return cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .nsid = nsid, .prp1 = buf,
                                     .cdw10 = cns }, NULL);
}

static uint16_t set_queues(unsigned nsq, unsigned ncq, uint32_t *dw0)
{
    return cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_SET_FEAT, .cdw10 = 0x07,
                                     .cdw11 = (ncq - 1) << 16 | (nsq - 1) }, dw0);
}

static uint16_t create_cq(unsigned q, uint32_t size, unsigned iv, bool ien)
{
    zero_guest(IOCQ(q), 0x1000);
    uint16_t st = cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_CREATE_CQ, .prp1 = IOCQ(q),
                                            .cdw10 = (size - 1) << 16 | q,
                                            .cdw11 = (uint32_t)iv << 16 | (ien ? 2 : 0) | 1 },
                      NULL);
    if (st == 0)
        qs[q] = (struct q){ .sq = qs[q].sq, .size = qs[q].size, .tail = qs[q].tail,
                            .cq = IOCQ(q), .cq_size = size, .phase = true };
    return st;
}

static uint16_t create_sq(unsigned q, uint32_t size, unsigned cqid)
{
    uint16_t st = cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_CREATE_SQ, .prp1 = IOSQ(q),
                                            .cdw10 = (size - 1) << 16 | q,
                                            .cdw11 = (uint32_t)cqid << 16 | 1 }, NULL);
    if (st == 0) {
        qs[q].sq = IOSQ(q);
        qs[q].size = size;
        qs[q].tail = 0;
    }
    return st;
}

static void io_queues(unsigned n)
{
    uint32_t dw0;
    cr_assert_eq(set_queues(n, n, &dw0), 0);
    cr_assert_eq(dw0, (n - 1) << 16 | (n - 1));
    for (unsigned q = 1; q <= n; q++) {
        cr_assert_eq(create_cq(q, 64, q, true), 0, "CQ %u", q);
        cr_assert_eq(create_sq(q, 64, q), 0, "SQ %u", q);
    }
}

static uint16_t rw(unsigned q, uint8_t opc, uint64_t slba, uint32_t nlb, uint64_t prp1,
                   uint64_t prp2, uint32_t extra)
{
    return cmd(q, (struct nvme_sqe){ .opc = opc, .nsid = 1, .prp1 = prp1, .prp2 = prp2,
                                     .cdw10 = (uint32_t)slba, .cdw11 = (uint32_t)(slba >> 32),
                                     .cdw12 = (nlb - 1) | extra }, NULL);
}

Test(nvme, pci_function)
{
    uint32_t v;
    ctl_up("");
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, PCI_VENDOR_ID, 4, &v), 0);
    cr_assert_eq(v, 0x00101B36u);
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, PCI_REVISION_ID, 4, &v), 0);
    cr_assert_eq(v >> 8, 0x010802u, "class NVMe");
    struct pci_device *d = NULL;
    for (struct pci_device *x = pb.root; x; x = x->next)
        if (x->devfn == DEVFN)
            d = x;
    cr_assert_not_null(d);
    cr_assert_neq(pci_cap_find(d, PCI_CAP_ID_PM), 0);
    cr_assert_neq(pci_cap_find(d, PCI_CAP_ID_MSIX), 0);
    uint8_t exp = pci_cap_find(d, PCI_CAP_ID_EXP);
    cr_assert_neq(exp, 0);
    cr_assert_eq((pci_cfg_get(d, exp + 2, 2) >> 4) & 0xF, PCI_EXP_TYPE_RC_END, "on bus 0");
    cr_assert_eq(d->bars[0].type, PCI_BAR_MEM64);
    cr_assert_geq(d->bars[0].size, 0x4000);
}

Test(nvme, registers_enable_identify)
{
    ctl_up("");
    uint64_t cap = rd(0x00, 8);
    cr_assert_eq(cap & 0xFFFF, NVME_MQES);
    cr_assert(cap & (1ULL << 16), "CQR");
    cr_assert(cap & (1ULL << 37), "CSS NVM");
    cr_assert_eq((cap >> 32) & 0xF, 0, "DSTRD 0");
    cr_assert_eq((cap >> 48) & 0xFF, 0, "MPSMIN = MPSMAX = 4 KiB");
    cr_assert_eq(rd(0x00, 4) | rd(0x04, 4) << 32, cap, "two dword reads");
    cr_assert_eq(rd(0x08, 4), 0x00010400);
    cr_assert_eq(rd(0x1C, 4), 0, "not ready");
    enable();
    uint8_t id[4096];
    cr_assert_eq(identify(1, 0, DATA), 0);
    cr_assert_eq(gm_read(&gm, DATA, id, sizeof(id)), 0);
    cr_assert_eq(id[0] | id[1] << 8, 0x1B36);
    cr_assert_eq(memcmp(id + 24, "minivmm", 7), 0);
    cr_assert_eq(id[512], 0x66);
    cr_assert_eq(id[513], 0x44);
    cr_assert_eq(id[516], 1, "one namespace");
    cr_assert_eq(id[77], NVME_MDTS);
    cr_assert_eq(id[520] & 0x0C, 0x0C, "DSM and Write Zeroes");
    cr_assert(id[525] & 1, "volatile write cache");
    cr_assert_eq(id[536] & 3, 1, "SGLs for NVM commands");
    /* namespace, PRP1 with an offset and PRP2 for the rest */
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .nsid = 1,
                                           .prp1 = DATA + 0x800, .prp2 = DATA + 0x2000 }, NULL), 0);
    uint8_t ns[4096];
    cr_assert_eq(gm_read(&gm, DATA + 0x800, ns, 0x800), 0);
    cr_assert_eq(gm_read(&gm, DATA + 0x2000, ns + 0x800, 0x800), 0);
    uint64_t nsze;
    memcpy(&nsze, ns, 8);
    cr_assert_eq(nsze, DISK_BYTES / 512);
    cr_assert_eq(ns[130], 9, "LBADS 512");
    cr_assert_eq(identify(2, 0, DATA), 0);
    uint32_t list[2];
    cr_assert_eq(gm_read(&gm, DATA, list, 8), 0);
    cr_assert_eq(list[0], 1);
    cr_assert_eq(list[1], 0);
    cr_assert_eq(identify(3, 1, DATA), 0);
    cr_assert_eq(gm_read(&gm, DATA, id, 20), 0);
    cr_assert_eq(id[0], 3, "a UUID descriptor");
    cr_assert_eq(id[1], 16);
    cr_assert_eq(identify(0, 2, DATA), NVME_SC_INVALID_NS);
    cr_assert_eq(identify(0x10, 0, DATA), NVME_SC_INVALID_FIELD);
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = 0x7F }, NULL), NVME_SC_INVALID_OPCODE);
    uint32_t dw0;
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_GET_FEAT, .cdw10 = 0x06 }, &dw0), 0);
    cr_assert_eq(dw0, 1, "write cache enabled");
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_GET_LOG, .prp1 = DATA,
                                           .cdw10 = 0x02 | 127u << 16 }, NULL), 0);
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_GET_LOG, .prp1 = DATA,
                                           .cdw10 = 0x42 | 127u << 16 }, NULL),
                 NVME_SC_INVALID_LOG_PAGE);
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_ABORT }, &dw0), 0);
    cr_assert_eq(dw0 & 1, 1, "not aborted");
}

Test(nvme, read_write_flush)
{
    ctl_up("");
    enable();
    io_queues(2);
    /* write 8 KiB at LBA 16: PRP1 + PRP2 */
    uint8_t *buf = gm_ptr(&gm, DATA, 0x10000);
    for (unsigned i = 0; i < 8192; i++)
        buf[i] = (uint8_t)(i ^ 0xA5);
    cr_assert_eq(rw(1, NVME_CMD_WRITE, 16, 16, DATA, DATA + 0x1000, 0), 0);
    cr_assert_eq(rw(2, NVME_CMD_FLUSH, 0, 1, 0, 0, 0), 0);
    uint8_t f[16384];
    file_read(16 * 512, f, 8192);
    cr_assert_eq(memcmp(f, buf, 8192), 0, "written data in the file");
    /* read 16 KiB from LBA 8 through a PRP list, PRP1 with an offset */
    uint64_t dst = DATA + 0x8000 + 0x200;
    uint64_t l[4] = { DATA + 0x9000, DATA + 0xA000, DATA + 0xB000, DATA + 0xC000 };
    cr_assert_eq(gm_write(&gm, LIST, l, sizeof(l)), 0);
    cr_assert_eq(rw(2, NVME_CMD_READ, 8, 32, dst, LIST, 0), 0);
    file_read(8 * 512, f, 16384);
    cr_assert_eq(memcmp(gm_ptr(&gm, dst, 16384), f, 16384), 0, "read data is the file's");
    /* FUA write */
    cr_assert_eq(rw(1, NVME_CMD_WRITE, 100, 1, DATA, 0, 1u << 30), 0);
    file_read(100 * 512, f, 512);
    cr_assert_eq(memcmp(f, buf, 512), 0);
    /* broadcast flush */
    cr_assert_eq(cmd(1, (struct nvme_sqe){ .opc = NVME_CMD_FLUSH, .nsid = 0xFFFFFFFF }, NULL), 0);
}

Test(nvme, deallocate_and_write_zeroes)
{
    ctl_up("");
    enable();
    io_queues(1);
    uint8_t f[4096], z[4096] = { 0 };
    cr_assert_eq(rw(1, NVME_CMD_WRITE_ZEROES, 4, 8, 0, 0, 0), 0);
    file_read(4 * 512, f, 4096);
    cr_assert_eq(memcmp(f, z, 4096), 0, "zeroes written");
    file_read(12 * 512, f, 1);
    cr_assert_eq(f[0], pattern_byte(12 * 512), "and no more");
    cr_assert_eq(rw(1, NVME_CMD_WRITE_ZEROES, 32, 8, 0, 0, 1u << 25), 0, "DEAC");
    file_read(32 * 512, f, 4096);
    cr_assert_eq(memcmp(f, z, 4096), 0);
    struct nvme_dsm_range r[2] = { { .nlb = 8, .slba = 64 }, { .nlb = 0, .slba = 0 } };
    cr_assert_eq(gm_write(&gm, DATA, r, sizeof(r)), 0);
    cr_assert_eq(cmd(1, (struct nvme_sqe){ .opc = NVME_CMD_DSM, .nsid = 1, .prp1 = DATA,
                                           .cdw10 = 1, .cdw11 = 4 }, NULL), 0);
    r[0].slba = 2047;
    r[0].nlb = 2;
    cr_assert_eq(gm_write(&gm, DATA, r, sizeof(r)), 0);
    cr_assert_eq(cmd(1, (struct nvme_sqe){ .opc = NVME_CMD_DSM, .nsid = 1, .prp1 = DATA,
                                           .cdw10 = 0, .cdw11 = 4 }, NULL), NVME_SC_LBA_RANGE);
    cr_assert_eq(rw(1, NVME_CMD_WRITE_ZEROES, 2040, 9, 0, 0, 0), NVME_SC_LBA_RANGE);
}

Test(nvme, refusals)
{
    ctl_up("");
    enable();
    uint32_t dw0;
    cr_assert_eq(set_queues(2, 2, &dw0), 0);
    cr_assert_eq(create_cq(0, 16, 0, true), NVME_SC_INVALID_QID, "QID 0");
    cr_assert_eq(create_cq(3, 16, 0, true), NVME_SC_INVALID_QID, "past Number of Queues");
    cr_assert_eq(create_cq(1, 16, NVME_NR_QUEUES, true), NVME_SC_INVALID_VECTOR);
    cr_assert_eq(create_cq(1, NVME_MQES + 2, 1, true), NVME_SC_INVALID_QSIZE);
    cr_assert_eq(create_cq(1, 1, 1, true), NVME_SC_INVALID_QSIZE, "one entry");
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_CREATE_CQ, .prp1 = IOCQ(1),
                                           .cdw10 = 15u << 16 | 1, .cdw11 = 2 }, NULL),
                 NVME_SC_INVALID_FIELD, "not physically contiguous");
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_CREATE_CQ, .prp1 = IOCQ(1) + 8,
                                           .cdw10 = 15u << 16 | 1, .cdw11 = 3 }, NULL),
                 NVME_SC_PRP_OFFSET_INVALID);
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_CREATE_CQ, .prp1 = 0x7FFFF000ULL,
                                           .cdw10 = 15u << 16 | 1, .cdw11 = 3 }, NULL),
                 NVME_SC_INVALID_FIELD, "outside RAM");
    cr_assert_eq(create_sq(1, 16, 1), NVME_SC_CQ_INVALID, "no CQ 1 yet");
    cr_assert_eq(create_cq(1, 16, 1, true), 0);
    cr_assert_eq(create_cq(1, 16, 1, true), NVME_SC_INVALID_QID, "exists");
    cr_assert_eq(create_sq(1, 16, 0), NVME_SC_CQ_INVALID, "the admin CQ");
    cr_assert_eq(create_sq(1, 16, 1), 0);
    cr_assert_eq(set_queues(4, 4, &dw0), NVME_SC_CMD_SEQ_ERROR, "after queues exist");
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_DELETE_CQ, .cdw10 = 1 }, NULL),
                 NVME_SC_INVALID_QDELETION, "its SQ first");
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_DELETE_SQ, .cdw10 = 2 }, NULL),
                 NVME_SC_INVALID_QID);
    /* data pointers and ranges */
    cr_assert_eq(rw(1, NVME_CMD_READ, 0, 1, DATA + 2, 0, 0), NVME_SC_PRP_OFFSET_INVALID);
    cr_assert_eq(rw(1, NVME_CMD_READ, 0, 16, DATA, DATA + 0x1200, 0), NVME_SC_PRP_OFFSET_INVALID,
                 "PRP2 data page with an offset");
    uint64_t l[2] = { DATA + 0x1000, DATA + 0x2010 };
    cr_assert_eq(gm_write(&gm, LIST, l, sizeof(l)), 0);
    cr_assert_eq(rw(1, NVME_CMD_READ, 0, 24, DATA, LIST, 0), NVME_SC_PRP_OFFSET_INVALID,
                 "PRP list entry with an offset");
    cr_assert_eq(rw(1, NVME_CMD_READ, 0, 1, 0x7FFFF000ULL, 0, 0), NVME_SC_DATA_XFER_ERROR);
    cr_assert_eq(rw(1, NVME_CMD_READ, 2047, 2, DATA, DATA + 0x1000, 0), NVME_SC_LBA_RANGE);
    cr_assert_eq(rw(1, NVME_CMD_READ, ~0ULL, 1, DATA, 0, 0), NVME_SC_LBA_RANGE);
    cr_assert_eq(rw(1, NVME_CMD_READ, 0, 1024, DATA, LIST, 0), NVME_SC_INVALID_FIELD, "over MDTS");
    cr_assert_eq(cmd(1, (struct nvme_sqe){ .opc = NVME_CMD_READ, .nsid = 2, .prp1 = DATA }, NULL),
                 NVME_SC_INVALID_NS);
    cr_assert_eq(cmd(1, (struct nvme_sqe){ .opc = NVME_CMD_READ, .flags = 0x40, .nsid = 1,
                                           .prp1 = DATA }, NULL), NVME_SC_SGL_LEN_INVALID,
                 "an SGL data block of 0 bytes for 512");
    cr_assert_eq(cmd(1, (struct nvme_sqe){ .opc = NVME_CMD_READ, .flags = 0xC0, .nsid = 1,
                                           .prp1 = DATA }, NULL), NVME_SC_INVALID_FIELD,
                 "PSDT 11b");
    cr_assert_eq(cmd(1, (struct nvme_sqe){ .opc = 0x05, .nsid = 1 }, NULL),
                 NVME_SC_INVALID_OPCODE, "Compare is not offered");
    /* delete in order */
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_DELETE_SQ, .cdw10 = 1 }, NULL), 0);
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = NVME_ADM_DELETE_CQ, .cdw10 = 1 }, NULL), 0);
}

Test(nvme, doorbell_out_of_range_is_an_event)
{
    ctl_up("");
    enable();
    struct nvme_sqe aer = { .opc = NVME_ADM_AER };
    submit(0, &aer);
    struct nvme_cqe c;
    cr_assert_not(poll_cqe(0, &c, 100, true), "an AER is held");
    wr(0x1000, 4, AQ_ENTRIES + 5);   /* admin SQ tail past the queue */
    cr_assert(poll_cqe(0, &c, 5000, true));
    cr_assert_eq(c.cid, aer.cid);
    cr_assert_eq(st_of(&c), 0);
    cr_assert_eq(c.dw0 & 7, 0, "error event");
    cr_assert_eq((c.dw0 >> 8) & 0xFF, 1, "invalid doorbell write value");
    cr_assert_eq((c.dw0 >> 16) & 0xFF, 1, "error log");
    wr(0x1000 + 8 * 5, 4, 1);        /* SQ 5 does not exist */
    cr_assert_eq(rd(0x1C, 4) & 3, 1, "still ready, not fatal");
    cr_assert_eq(identify(1, 0, DATA), 0, "the controller works on");
    /* AER limit: AERL + 1 held */
    for (unsigned i = 0; i < 4; i++) {
        struct nvme_sqe a = { .opc = NVME_ADM_AER };
        submit(0, &a);
    }
    struct nvme_sqe a5 = { .opc = NVME_ADM_AER };
    submit(0, &a5);
    cr_assert(poll_cqe(0, &c, 5000, true));
    cr_assert_eq(c.cid, a5.cid);
    cr_assert_eq(st_of(&c), NVME_SC_AER_LIMIT);
}

Test(nvme, read_only_disk)
{
    ctl_up(",readonly");
    enable();
    uint8_t id[4096];
    cr_assert_eq(identify(1, 0, DATA), 0);
    cr_assert_eq(gm_read(&gm, DATA, id, sizeof(id)), 0);
    cr_assert_eq(id[520] & 0x0C, 0, "no DSM or Write Zeroes on a read-only disk");
    io_queues(1);
    cr_assert_eq(rw(1, NVME_CMD_WRITE, 0, 1, DATA, 0, 0), NVME_SC_NS_WRITE_PROTECTED);
    cr_assert_eq(rw(1, NVME_CMD_READ, 0, 1, DATA, 0, 0), 0);
    uint8_t f[512];
    file_read(0, f, 512);
    cr_assert_eq(memcmp(gm_ptr(&gm, DATA, 512), f, 512), 0);
}

static bool fd_readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) == 1;
}

static bool wait_fd(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, ms) == 1;
}

static void drain(int fd)
{
    uint64_t v;
    while (fd_readable(fd))
        cr_assert_eq(read(fd, &v, 8), 8);
}

Test(nvme, msix_vector_per_queue)
{
    ctl_up("");
    struct pci_device *d = NULL;
    for (struct pci_device *x = pb.root; x; x = x->next)
        if (x->devfn == DEVFN)
            d = x;
    uint8_t m = pci_cap_find(d, PCI_CAP_ID_MSIX);
    cr_assert_eq((pci_cfg_get(d, m + 2, 2) & 0x7FF) + 1, NVME_NR_QUEUES, "a vector per queue");
    for (unsigned v = 0; v < 3; v++) {
        wr(NVME_MSIX_TABLE_OFF + 16 * v, 4, 0xFEE00000);
        wr(NVME_MSIX_TABLE_OFF + 16 * v + 8, 4, 0x40 + v);
        wr(NVME_MSIX_TABLE_OFF + 16 * v + 12, 4, 0);
    }
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, m + 2, 2, PCI_MSIX_FLAGS_ENABLE), 0);
    enable();
    int fd[3];
    for (unsigned v = 0; v < 3; v++) {
        fd[v] = nvme_vector_fd(ctl, v);
        cr_assert_geq(fd[v], 0);
    }
    drain(fd[0]);
    cr_assert_eq(identify(1, 0, DATA), 0);
    cr_assert(wait_fd(fd[0], 2000), "admin completion on vector 0");
    io_queues(2);
    drain(fd[0]);
    drain(fd[1]);
    drain(fd[2]);
    cr_assert_eq(rw(2, NVME_CMD_READ, 0, 1, DATA, 0, 0), 0);
    cr_assert(wait_fd(fd[2], 2000), "queue 2's vector");
    cr_assert_not(fd_readable(fd[1]));
    cr_assert_not(fd_readable(fd[0]));
    cr_assert_eq(rw(1, NVME_CMD_READ, 0, 1, DATA, 0, 0), 0);
    cr_assert(wait_fd(fd[1], 2000), "queue 1's vector");
    cr_assert_eq(fake_level(&fe, INTX_GSI), 0, "no INTx with MSI-X on");
}

Test(nvme, intx_without_msix)
{
    ctl_up("");
    enable();
    struct nvme_sqe e = { .opc = NVME_ADM_IDENTIFY, .prp1 = DATA, .cdw10 = 1 };
    submit(0, &e);
    struct nvme_cqe c;
    cr_assert(poll_cqe(0, &c, 5000, false));
    for (int i = 0; i < 1000 && !fake_level(&fe, INTX_GSI); i++)
        usleep(1000);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 1, "INTx while the entry is unconsumed");
    wr(0x0C, 4, 1);   /* INTMS */
    cr_assert_eq(fake_level(&fe, INTX_GSI), 0, "masked");
    wr(0x10, 4, 1);   /* INTMC */
    cr_assert_eq(fake_level(&fe, INTX_GSI), 1);
    wr(0x1004, 4, qs[0].head);
    cr_assert_eq(fake_level(&fe, INTX_GSI), 0, "consumed");
}

Test(nvme, full_cq_holds_completions)
{
    ctl_up("");
    enable();
    cr_assert_eq(set_queues(1, 1, NULL), 0);
    cr_assert_eq(create_cq(1, 2, 1, true), 0);   /* room for one entry */
    cr_assert_eq(create_sq(1, 16, 1), 0);
    struct nvme_sqe e[3];
    for (unsigned i = 0; i < 3; i++) {
        e[i] = (struct nvme_sqe){ .opc = NVME_CMD_READ, .nsid = 1, .prp1 = DATA + 0x1000 * i,
                                  .cdw10 = i };
        submit(1, &e[i]);
    }
    struct nvme_cqe c;
    cr_assert(poll_cqe(1, &c, 5000, false));
    cr_assert_eq(c.cid, e[0].cid);
    cr_assert_not(poll_cqe(1, &c, 200, false), "the CQ is full until the head moves");
    wr(0x1000 + 12, 4, qs[1].head);
    cr_assert(poll_cqe(1, &c, 5000, false));
    cr_assert_eq(c.cid, e[1].cid);
    wr(0x1000 + 12, 4, qs[1].head);
    cr_assert(poll_cqe(1, &c, 5000, true));
    cr_assert_eq(c.cid, e[2].cid);
    cr_assert_eq(st_of(&c), 0);
}

Test(nvme, reset_with_commands_in_flight)
{
    ctl_up("");
    enable();
    io_queues(2);
    for (unsigned i = 0; i < 40; i++) {
        struct nvme_sqe e = { .opc = NVME_CMD_WRITE, .nsid = 1, .prp1 = DATA, .prp2 = LIST,
                              .cdw10 = 64 * (i % 16), .cdw12 = 63 };
        uint64_t l[15];
        for (unsigned k = 0; k < 15; k++)
            l[k] = DATA + 0x1000 * (k + 1);
        cr_assert_eq(gm_write(&gm, LIST, l, sizeof(l)), 0);
        submit(1 + i % 2, &e);
    }
    wr(0x14, 4, 6u << 16 | 4u << 20);   /* CC.EN = 0 */
    cr_assert(wait_csts(1, 0), "not ready after the reset");
    cr_assert_eq(rd(0x28, 8), ASQ, "admin queue registers kept");
    memset(qs, 0, sizeof(qs));
    enable();
    cr_assert_eq(identify(1, 0, DATA), 0);
    io_queues(1);
    cr_assert_eq(rw(1, NVME_CMD_READ, 0, 8, DATA, 0, 0), 0);
}

Test(nvme, shutdown_and_bad_enable)
{
    ctl_up("");
    enable();
    io_queues(1);
    cr_assert_eq(rw(1, NVME_CMD_WRITE, 0, 8, DATA, 0, 0), 0);
    wr(0x14, 4, 6u << 16 | 4u << 20 | 1u << 14 | 1);   /* SHN normal */
    cr_assert(wait_csts(0xC, 0x8), "shutdown complete");
    wr(0x14, 4, 0);
    cr_assert(wait_csts(0xF, 0));
    /* an admin queue outside RAM: fatal until reset */
    wr(0x28, 8, 0x7FFF0000ULL);
    wr(0x14, 4, 6u << 16 | 4u << 20 | 1);
    cr_assert_eq(rd(0x1C, 4) & 3, 2, "CFS, not ready");
    wr(0x14, 4, 0);
    cr_assert_eq(rd(0x1C, 4), 0, "a reset clears CFS");
    enable();
}

Test(nvme, boot_path_and_attach)
{
    struct disk_args a = { .nr = 0 };
    char err[256];
    snprintf(err, sizeof(err), "%s,if=nvme,bootindex=0", path);
    cr_assert_eq(disk_args_apply(&a, "--disk", 6, err, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(disk_args_finish(&a, err, sizeof(err)), 0, "%s", err);
    struct pcidev_host h = { .env = &fe.env, .irq = &irq, .vm_fd = -1, .io_pin = -1 };
    struct pcidev_list l = { .nr = 0 };
    cr_assert_eq(nvme_attach(&h, &a, &l), 0);
    cr_assert_eq(l.nr, 1);
    cr_assert_eq(l.dev[0].kind, PCIDEV_STORAGE);
    cr_assert_eq(l.dev[0].boot_index, 0);
    char buf[128];
    struct pcidev_where w = { .devfn = PCI_DEVFN(0x0B, 0), .slot = 0x0B };
    cr_assert_eq(l.dev[0].ops->boot_path(l.dev[0].opaque, &w, buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "/pci@i0cf8/nvme@b/namespace@1,0");
    struct pci_device port;
    w = (struct pcidev_where){ .parent = &port, .devfn = PCI_DEVFN(0, 0), .slot = 0x03 };
    cr_assert_eq(l.dev[0].ops->boot_path(l.dev[0].opaque, &w, buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "/pci@i0cf8/pci-bridge@3/nvme@0/namespace@1,0", "behind a root port");
    cr_assert_eq(l.dev[0].ops->boot_path(l.dev[0].opaque, &w, buf, 10), -ENOSPC);
    pcidev_list_destroy(&l);
}

Test(nvme, cq_head_past_the_tail_is_an_event)
{
    ctl_up("");
    enable();
    struct nvme_sqe aer = { .opc = NVME_ADM_AER };
    submit(0, &aer);
    cr_assert_eq(identify(1, 0, DATA), 0);   /* one entry posted and consumed */
    wr(0x1004, 4, qs[0].head + 3);          /* three more than were posted */
    struct nvme_cqe c;
    cr_assert(poll_cqe(0, &c, 5000, true));
    cr_assert_eq(c.cid, aer.cid);
    cr_assert_eq((c.dw0 >> 8) & 0xFF, 1, "invalid doorbell write value");
    cr_assert_eq(identify(1, 0, DATA), 0, "the head was not moved");
}

/* §5.7: with shadow doorbells the tail comes from the shadow buffer (the
 * doorbell write, an ioeventfd in a VM, only wakes the engine) and the
 * EventIdx says how far the device read. */
Test(nvme, shadow_doorbells)
{
    const uint64_t dbs = 0xA0000, eis = 0xA1000;
    ctl_up("");
    enable();
    uint8_t id[4096];
    cr_assert_eq(identify(1, 0, DATA), 0);
    cr_assert_eq(gm_read(&gm, DATA, id, sizeof(id)), 0);
    cr_assert(id[257] & 1, "OACS: Doorbell Buffer Config");
    zero_guest(dbs, 0x2000);
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = 0x7C, .prp1 = dbs + 8, .prp2 = eis }, NULL),
                 NVME_SC_INVALID_FIELD);
    cr_assert_eq(cmd(0, (struct nvme_sqe){ .opc = 0x7C, .prp1 = dbs, .prp2 = eis }, NULL), 0);
    io_queues(1);
    for (unsigned i = 0; i < 3; i++) {
        struct nvme_sqe e = { .opc = NVME_CMD_READ, .nsid = 1, .prp1 = DATA, .cdw10 = i,
                              .cid = (uint16_t)(0x500 + i) };
        cr_assert_eq(gm_write(&gm, IOSQ(1) + 64ULL * i, &e, 64), 0);
    }
    uint32_t t = 3;
    cr_assert_eq(gm_write(&gm, dbs + 8, &t, 4), 0);
    wr(0x1008, 4, 0xFFFF);   /* the value is not the tail any more */
    struct nvme_cqe c;
    for (unsigned i = 0; i < 3; i++) {
        cr_assert(poll_cqe(1, &c, 5000, false), "completion %u", i);
        cr_assert_eq(c.cid, 0x500 + i);
        cr_assert_eq(st_of(&c), 0);
    }
    uint32_t ei;
    cr_assert_eq(gm_read(&gm, eis + 8, &ei, 4), 0);
    cr_assert_eq(ei, 3, "EventIdx: read up to the tail");
    /* the host consumed three CQEs and says so in the shadow head only;
     * the next completion round puts the CQ's EventIdx there */
    uint32_t h = 3;
    cr_assert_eq(gm_write(&gm, dbs + 12, &h, 4), 0);
    struct nvme_sqe e4 = { .opc = NVME_CMD_READ, .nsid = 1, .prp1 = DATA, .cid = 0x503 };
    cr_assert_eq(gm_write(&gm, IOSQ(1) + 64ULL * 3, &e4, 64), 0);
    t = 4;
    cr_assert_eq(gm_write(&gm, dbs + 8, &t, 4), 0);
    wr(0x1008, 4, 0);
    cr_assert(poll_cqe(1, &c, 5000, false));
    cr_assert_eq(c.cid, 0x503);
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(gm_read(&gm, eis + 12, &ei, 4), 0);
        if (ei == 3)
            break;
        usleep(1000);
    }
    cr_assert_eq(ei, 3, "CQ EventIdx at the shadow head");
    /* a shadow tail past the queue is refused like a doorbell value */
    t = 1000;
    cr_assert_eq(gm_write(&gm, dbs + 8, &t, 4), 0);
    wr(0x1008, 4, 0);
    cr_assert_not(poll_cqe(1, &c, 200, false));
    cr_assert_eq(rd(0x1C, 4) & 3, 1, "still ready");
    /* a reset forgets the buffers: doorbells carry the tail again */
    wr(0x14, 4, 6u << 16 | 4u << 20);
    cr_assert(wait_csts(1, 0));
    memset(qs, 0, sizeof(qs));
    enable();
    io_queues(1);
    cr_assert_eq(rw(1, NVME_CMD_READ, 0, 1, DATA, 0, 0), 0);
}

Test(nvme, sgl_read_write)
{
    ctl_up("");
    enable();
    io_queues(1);
    /* write 1 KiB from two data blocks listed in a Last Segment */
    uint8_t *a = gm_ptr(&gm, DATA, 0x1000), *b = gm_ptr(&gm, DATA + 0x5000, 0x1000);
    memset(a, 0x11, 0x200);
    memset(b, 0x22, 0x200);
    uint8_t seg[32] = { 0 };
    uint64_t addr = DATA;
    uint32_t len = 0x200;
    memcpy(seg, &addr, 8);
    memcpy(seg + 8, &len, 4);
    addr = DATA + 0x5000;
    memcpy(seg + 16, &addr, 8);
    memcpy(seg + 24, &len, 4);
    cr_assert_eq(gm_write(&gm, LIST, seg, sizeof(seg)), 0);
    struct nvme_sqe e = { .opc = NVME_CMD_WRITE, .flags = 0x40, .nsid = 1, .prp1 = LIST,
                          .prp2 = (uint64_t)0x30 << 56 | 32, .cdw10 = 200, .cdw12 = 1 };
    cr_assert_eq(cmd(1, e, NULL), 0);
    uint8_t f[1024];
    file_read(200 * 512, f, 1024);
    cr_assert_eq(f[0], 0x11);
    cr_assert_eq(f[511], 0x11);
    cr_assert_eq(f[512], 0x22);
    cr_assert_eq(f[1023], 0x22);
    /* read it back into one data block (SGL1) */
    e = (struct nvme_sqe){ .opc = NVME_CMD_READ, .flags = 0x40, .nsid = 1, .prp1 = DATA + 0x9000,
                           .prp2 = 1024, .cdw10 = 200, .cdw12 = 1 };
    cr_assert_eq(cmd(1, e, NULL), 0);
    cr_assert_eq(memcmp(gm_ptr(&gm, DATA + 0x9000, 1024), f, 1024), 0);
}

/* More commands than slots, their completions held by a tiny CQ: the SQ
 * stops taking commands and resumes as the host consumes, in order. */
Test(nvme, starved_queue_resumes_in_order)
{
    ctl_up("");
    enable();
    cr_assert_eq(set_queues(1, 1, NULL), 0);
    cr_assert_eq(create_cq(1, 2, 1, true), 0);
    cr_assert_eq(create_sq(1, 256, 1), 0);
    uint16_t first = 0;
    for (unsigned i = 0; i < 200; i++) {
        struct nvme_sqe e = { .opc = 0x7E, .nsid = 1 };   /* Invalid Command Opcode, at once */
        struct q *x = &qs[1];
        static uint16_t cid = 0x1000;
        e.cid = cid++;
        if (i == 0)
            first = e.cid;
        cr_assert_eq(gm_write(&gm, x->sq + (uint64_t)x->tail * 64, &e, 64), 0);
        x->tail = (x->tail + 1) % x->size;
    }
    wr(0x1008, 4, qs[1].tail);
    for (unsigned i = 0; i < 200; i++) {
        struct nvme_cqe c;
        cr_assert(poll_cqe(1, &c, 5000, true), "completion %u", i);
        cr_assert_eq(c.cid, (uint16_t)(first + i));
        cr_assert_eq(st_of(&c), NVME_SC_INVALID_OPCODE);
    }
}

/* A masked vector's interrupt waits in the PBA and arrives on unmask. */
Test(nvme, masked_vector_pending_in_pba)
{
    ctl_up("");
    struct pci_device *d = NULL;
    for (struct pci_device *x = pb.root; x; x = x->next)
        if (x->devfn == DEVFN)
            d = x;
    uint8_t m = pci_cap_find(d, PCI_CAP_ID_MSIX);
    for (unsigned v = 0; v < 2; v++) {
        wr(NVME_MSIX_TABLE_OFF + 16 * v, 4, 0xFEE00000);
        wr(NVME_MSIX_TABLE_OFF + 16 * v + 8, 4, 0x50 + v);
        wr(NVME_MSIX_TABLE_OFF + 16 * v + 12, 4, v == 1);   /* vector 1 masked */
    }
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, m + 2, 2, PCI_MSIX_FLAGS_ENABLE), 0);
    enable();
    io_queues(1);
    cr_assert_eq(rd(NVME_MSIX_PBA_OFF, 8) & 2, 0);
    cr_assert_eq(rw(1, NVME_CMD_READ, 0, 1, DATA, 0, 0), 0);
    for (int i = 0; i < 1000 && !(rd(NVME_MSIX_PBA_OFF, 8) & 2); i++)
        usleep(1000);
    cr_assert_eq(rd(NVME_MSIX_PBA_OFF, 8) & 2, 2, "pending while masked");
    wr(NVME_MSIX_TABLE_OFF + 16 + 12, 4, 0);   /* unmask: KVM would deliver it now */
    cr_assert(fd_readable(nvme_vector_fd(ctl, 1)));
}
