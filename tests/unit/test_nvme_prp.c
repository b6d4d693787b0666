/* devices/storage/nvme_cmd.c: the PRP walker (NVMe 1.4 §4.3) over a small
 * guest RAM, and the NVM command and queue-creation decoders, without a
 * controller or threads. */
#include <criterion/criterion.h>
#include <string.h>

#include "devices/storage/nvme_cmd.h"
#include "vmm/gm.h"

#define MiB (1ULL << 20)
#define PG NVME_PAGE

static struct gm gm;

static void up(void)
{
    struct gm_config gc = { .size = 2 * MiB, .lock = false };
    cr_assert_eq(gm_init(&gm, &gc), 0);
}

static void down(void)
{
    gm_fini(&gm);
}

TestSuite(nvme_prp, .init = up, .fini = down);

static uint16_t map(uint64_t p1, uint64_t p2, uint64_t len, struct iovec *iov, unsigned max,
                    unsigned *n)
{
    return nvme_prp_map(&gm, p1, p2, len, iov, max, n);
}

static uint64_t total(const struct iovec *iov, unsigned n)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t;
}

Test(nvme_prp, prp1_only_with_offset)
{
    struct iovec iov[4];
    unsigned n;
    cr_assert_eq(map(0x10100, 0xDEAD, 0x100, iov, 4, &n), 0, "PRP2 unused");
    cr_assert_eq(n, 1);
    cr_assert_eq(iov[0].iov_base, gm_ptr(&gm, 0x10100, 1));
    cr_assert_eq(iov[0].iov_len, 0x100);
    cr_assert_eq(map(0x10F00, 0, 0x100, iov, 4, &n), 0, "to the page's end");
    cr_assert_eq(map(0x10002, 0, 0x100, iov, 4, &n), NVME_SC_PRP_OFFSET_INVALID | NVME_DNR,
                 "not dword aligned");
    cr_assert_eq(map(0x10000, 0, 0, iov, 4, &n), NVME_SC_INVALID_FIELD | NVME_DNR);
}

Test(nvme_prp, prp2_second_page)
{
    struct iovec iov[4];
    unsigned n;
    /* adjacent in guest (and host) memory: one iovec */
    cr_assert_eq(map(0x10800, 0x11000, PG, iov, 4, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(iov[0].iov_len, PG);
    cr_assert_eq(map(0x10800, 0x20000, PG, iov, 4, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(iov[1].iov_base, gm_ptr(&gm, 0x20000, 1));
    cr_assert_eq(iov[1].iov_len, 0x800);
    cr_assert_eq(map(0x10800, 0x20010, PG, iov, 4, &n), NVME_SC_PRP_OFFSET_INVALID | NVME_DNR);
    cr_assert_eq(map(0x10000, 0x1FFFF000ULL, 2 * PG, iov, 4, &n),
                 NVME_SC_DATA_XFER_ERROR | NVME_DNR, "not RAM");
}

Test(nvme_prp, list_and_chaining)
{
    struct iovec iov[600];
    unsigned n;
    /* PRP list at the last two entries of a page: one data entry, then a
     * pointer to the next list page */
    uint64_t list = 0x30000 + PG - 16;
    uint64_t e[2] = { 0x40000, 0x31000 };
    cr_assert_eq(gm_write(&gm, list, e, sizeof(e)), 0);
    uint64_t next[2] = { 0x50000, 0x60000 };
    cr_assert_eq(gm_write(&gm, 0x31000, next, sizeof(next)), 0);
    cr_assert_eq(map(0x10000, list, 4 * PG, iov, 600, &n), 0);
    cr_assert_eq(n, 4);
    cr_assert_eq(iov[1].iov_base, gm_ptr(&gm, 0x40000, 1));
    cr_assert_eq(iov[2].iov_base, gm_ptr(&gm, 0x50000, 1));
    cr_assert_eq(iov[3].iov_base, gm_ptr(&gm, 0x60000, 1));
    cr_assert_eq(total(iov, n), 4 * PG);
    /* exactly filling the page: the last entry is data, not a pointer */
    cr_assert_eq(map(0x10000, list, 3 * PG, iov, 600, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(iov[2].iov_base, gm_ptr(&gm, 0x31000, 1));
    /* a chained list page not page aligned */
    e[1] = 0x31008;
    cr_assert_eq(gm_write(&gm, list, e, sizeof(e)), 0);
    cr_assert_eq(map(0x10000, list, 4 * PG, iov, 600, &n), NVME_SC_PRP_OFFSET_INVALID | NVME_DNR);
    /* list pointer not dword aligned, entry with an offset, list not RAM */
    cr_assert_eq(map(0x10000, 0x30002, 3 * PG, iov, 600, &n),
                 NVME_SC_PRP_OFFSET_INVALID | NVME_DNR);
    uint64_t bad[2] = { 0x40000, 0x41004 };
    cr_assert_eq(gm_write(&gm, 0x32000, bad, sizeof(bad)), 0);
    cr_assert_eq(map(0x10000, 0x32000, 3 * PG, iov, 600, &n),
                 NVME_SC_PRP_OFFSET_INVALID | NVME_DNR);
    cr_assert_eq(map(0x10000, 0x1FFFF000ULL, 3 * PG, iov, 600, &n),
                 NVME_SC_DATA_XFER_ERROR | NVME_DNR);
    /* too many iovecs for the caller */
    uint64_t many[8];
    for (unsigned i = 0; i < 8; i++)
        many[i] = 0x80000 + 2 * PG * i;
    cr_assert_eq(gm_write(&gm, 0x33000, many, sizeof(many)), 0);
    cr_assert_eq(map(0x10000, 0x33000, 9 * PG, iov, 4, &n), NVME_SC_INVALID_FIELD | NVME_DNR);
    cr_assert_eq(map(0x10000, 0x33000, 9 * PG, iov, 9, &n), 0);
    cr_assert_eq(n, 9);
}

Test(nvme_prp, self_referencing_list_ends)
{
    struct iovec iov[2100];
    unsigned n;
    /* every list page's last entry points at itself: the data entries still
     * count down, so the walk ends */
    uint64_t l[512];
    for (unsigned i = 0; i < 511; i++)
        l[i] = 0x80000;
    l[511] = 0x34000;
    cr_assert_eq(gm_write(&gm, 0x34000, l, sizeof(l)), 0);
    cr_assert_eq(map(0x10000, 0x34000, 2048 * PG, iov, 2100, &n), 0);
    cr_assert_eq(total(iov, n), 2048 * PG);
}

static const struct nvme_ns_info ns = {
    .nsze = 1000, .lba_shift = 9, .dsm = true, .write_zeroes = true, .max_xfer = 64 * PG,
};

Test(nvme_prp, io_decode)
{
    struct nvme_io io;
    struct nvme_sqe c = { .opc = NVME_CMD_READ, .nsid = 1, .cdw10 = 998, .cdw12 = 1 };
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), 0);
    cr_assert_eq(io.op, NVME_IO_READ);
    cr_assert_eq(io.offset, 998 * 512);
    cr_assert_eq(io.len, 1024);
    c.cdw10 = 999;
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), NVME_SC_LBA_RANGE | NVME_DNR);
    c.cdw10 = 0;
    c.cdw11 = 1;   /* SLBA 2^32 */
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), NVME_SC_LBA_RANGE | NVME_DNR);
    c.cdw11 = 0;
    c.cdw12 = 511 | 1u << 30;   /* 256 KiB, FUA */
    c.opc = NVME_CMD_WRITE;
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), 0);
    cr_assert(io.fua);
    c.cdw12 = 512;
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), NVME_SC_INVALID_FIELD | NVME_DNR, "over MDTS");
    c.cdw12 = 0;
    struct nvme_ns_info ro = ns;
    ro.readonly = true;
    cr_assert_eq(nvme_io_decode(&c, &ro, &io), NVME_SC_NS_WRITE_PROTECTED | NVME_DNR);
    c.opc = NVME_CMD_WRITE_ZEROES;
    cr_assert_eq(nvme_io_decode(&c, &ro, &io), NVME_SC_NS_WRITE_PROTECTED | NVME_DNR);
    c.cdw12 = 0xFFFF | 1u << 25;
    c.cdw10 = 0;
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), NVME_SC_LBA_RANGE | NVME_DNR, "65536 > 1000");
    c.cdw12 = 999 | 1u << 25;
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), 0, "no MDTS for Write Zeroes");
    cr_assert(io.deallocate);
    struct nvme_ns_info nodsm = ns;
    nodsm.dsm = nodsm.write_zeroes = false;
    cr_assert_eq(nvme_io_decode(&c, &nodsm, &io), NVME_SC_INVALID_OPCODE | NVME_DNR);
    c = (struct nvme_sqe){ .opc = NVME_CMD_FLUSH, .nsid = 0xFFFFFFFF };
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), 0);
    c.nsid = 3;
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), NVME_SC_INVALID_NS | NVME_DNR);
    c = (struct nvme_sqe){ .opc = NVME_CMD_READ, .nsid = 1, .flags = 0x01 };
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), NVME_SC_INVALID_FIELD | NVME_DNR, "fused");
    c.flags = 0x80;
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), 0, "SGL (PSDT 10b)");
    c.flags = 0xC0;
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), NVME_SC_INVALID_FIELD | NVME_DNR, "PSDT 11b");
    c = (struct nvme_sqe){ .opc = 0x99, .nsid = 1 };
    cr_assert_eq(nvme_io_decode(&c, &ns, &io), NVME_SC_INVALID_OPCODE | NVME_DNR);
}

Test(nvme_prp, dsm_ranges)
{
    struct nvme_dsm_range r[3] = { { .slba = 0, .nlb = 10 }, { .slba = 5, .nlb = 0 },
                                   { .slba = 990, .nlb = 10 } };
    struct blk_range out[3];
    unsigned k;
    cr_assert_eq(nvme_dsm_ranges(r, 3, &ns, out, &k), 0);
    cr_assert_eq(k, 2, "the empty range skipped");
    cr_assert_eq(out[1].offset, 990 * 512);
    cr_assert_eq(out[1].len, 10 * 512);
    r[2].nlb = 11;
    cr_assert_eq(nvme_dsm_ranges(r, 3, &ns, out, &k), NVME_SC_LBA_RANGE | NVME_DNR);
    r[2] = (struct nvme_dsm_range){ .slba = ~0ULL, .nlb = 2 };
    cr_assert_eq(nvme_dsm_ranges(r, 3, &ns, out, &k), NVME_SC_LBA_RANGE | NVME_DNR, "wraps");
}

Test(nvme_prp, create_queue_checks)
{
    struct nvme_queue_limits l = { .nr_sq = 4, .nr_cq = 4, .mqes = 1023, .nr_vectors = 5,
                                   .cq_live = 1u << 0 | 1u << 2, .sq_live = 1u << 0 };
    struct nvme_queue_params p;
    struct nvme_sqe c = { .opc = NVME_ADM_CREATE_CQ, .prp1 = 0x10000,
                          .cdw10 = 63u << 16 | 1, .cdw11 = 4u << 16 | 3 };
    cr_assert_eq(nvme_check_create_cq(&c, &l, &p), 0);
    cr_assert_eq(p.qid, 1);
    cr_assert_eq(p.size, 64);
    cr_assert_eq(p.iv, 4);
    cr_assert(p.ien);
    c.cdw11 = 5u << 16 | 3;
    cr_assert_eq(nvme_check_create_cq(&c, &l, &p), NVME_SC_INVALID_VECTOR | NVME_DNR);
    c.cdw11 = 3;
    c.cdw10 = 63u << 16 | 2;
    cr_assert_eq(nvme_check_create_cq(&c, &l, &p), NVME_SC_INVALID_QID | NVME_DNR, "exists");
    c.cdw10 = 63u << 16 | 5;
    cr_assert_eq(nvme_check_create_cq(&c, &l, &p), NVME_SC_INVALID_QID | NVME_DNR, "not granted");
    c.cdw10 = 1024u << 16 | 1;
    cr_assert_eq(nvme_check_create_cq(&c, &l, &p), NVME_SC_INVALID_QSIZE | NVME_DNR);
    c.cdw10 = 1023u << 16 | 1;
    cr_assert_eq(nvme_check_create_cq(&c, &l, &p), 0, "MQES + 1 entries");
    c.cdw11 = 2;
    cr_assert_eq(nvme_check_create_cq(&c, &l, &p), NVME_SC_INVALID_FIELD | NVME_DNR, "PC 0");
    struct nvme_sqe s = { .opc = NVME_ADM_CREATE_SQ, .prp1 = 0x20000,
                          .cdw10 = 15u << 16 | 1, .cdw11 = 2u << 16 | 1 };
    cr_assert_eq(nvme_check_create_sq(&s, &l, &p), 0);
    cr_assert_eq(p.cqid, 2);
    s.cdw11 = 3u << 16 | 1;
    cr_assert_eq(nvme_check_create_sq(&s, &l, &p), NVME_SC_CQ_INVALID | NVME_DNR);
    s.cdw11 = 0u << 16 | 1;
    cr_assert_eq(nvme_check_create_sq(&s, &l, &p), NVME_SC_CQ_INVALID | NVME_DNR, "admin CQ");
    s.cdw11 = 0xFFFFu << 16 | 1;
    cr_assert_eq(nvme_check_create_sq(&s, &l, &p), NVME_SC_CQ_INVALID | NVME_DNR);
    s.cdw11 = 2u << 16 | 1;
    s.prp1 = 0x20010;
    cr_assert_eq(nvme_check_create_sq(&s, &l, &p), NVME_SC_PRP_OFFSET_INVALID | NVME_DNR);
    s.prp1 = 0x20000;
    s.cdw10 = 15u << 16;
    cr_assert_eq(nvme_check_create_sq(&s, &l, &p), NVME_SC_INVALID_QID | NVME_DNR, "QID 0");
}

Test(nvme_prp, cqe_status_encoding)
{
    cr_assert_eq(nvme_cqe_status(0, true), 1);
    cr_assert_eq(nvme_cqe_status(NVME_SC_INVALID_QID | NVME_DNR, false),
                 0x8000 | 1u << 9 | 0x01u << 1);
    cr_assert_eq(nvme_cqe_status(NVME_SC_LBA_RANGE, true), 0x80u << 1 | 1);
}

/* ---- SGLs (§4.4) ---- */

static void desc(uint8_t *d, uint64_t addr, uint32_t len, uint8_t type)
{
    memset(d, 0, 16);
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    d[15] = (uint8_t)(type << 4);
}

static void desc_at(uint64_t gpa, uint64_t addr, uint32_t len, uint8_t type)
{
    uint8_t d[16];
    desc(d, addr, len, type);
    cr_assert_eq(gm_write(&gm, gpa, d, 16), 0);
}

Test(nvme_prp, sgl_data_block_and_segments)
{
    struct iovec iov[64];
    unsigned n;
    uint8_t s1[16];
    /* SGL1 a data block across a page boundary: one iovec (adjacent) */
    desc(s1, 0x10800, 0x1000, 0);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x1000, iov, 64, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(total(iov, n), 0x1000);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x800, iov, 64, &n), NVME_SC_SGL_LEN_INVALID | NVME_DNR,
                 "longer than the transfer");
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x2000, iov, 64, &n), NVME_SC_SGL_LEN_INVALID | NVME_DNR,
                 "shorter");
    /* SGL1 a Segment: two data blocks, then a Last Segment with one */
    desc_at(0x30000, 0x40000, 0x200, 0);
    desc_at(0x30010, 0x50000, 0x300, 0);
    desc_at(0x30020, 0x31000, 16, 3);
    desc_at(0x31000, 0x60000, 0x100, 0);
    desc(s1, 0x30000, 48, 2);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x600, iov, 64, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(iov[2].iov_base, gm_ptr(&gm, 0x60000, 1));
    /* a Segment whose last entry is data */
    desc(s1, 0x30000, 32, 2);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x500, iov, 64, &n), NVME_SC_SGL_SEG_INVALID | NVME_DNR);
    /* a Last Segment holding a segment descriptor */
    desc_at(0x31000, 0x32000, 16, 3);
    desc(s1, 0x31000, 16, 3);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x100, iov, 64, &n), NVME_SC_SGL_SEG_INVALID | NVME_DNR);
    /* a segment descriptor before a segment's end */
    desc_at(0x33000, 0x34000, 16, 3);
    desc_at(0x33010, 0x40000, 0x100, 0);
    desc(s1, 0x33000, 32, 3);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x100, iov, 64, &n), NVME_SC_SGL_SEG_INVALID | NVME_DNR);
    /* segment length not a multiple of 16, or outside RAM */
    desc(s1, 0x30000, 40, 2);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x600, iov, 64, &n), NVME_SC_SGL_SEG_INVALID | NVME_DNR);
    desc(s1, 0x1FFFFFF0ULL, 16, 3);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x600, iov, 64, &n), NVME_SC_DATA_XFER_ERROR | NVME_DNR);
    /* bit bucket, keyed, a subtype */
    desc(s1, 0x10000, 0x100, 1);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x100, iov, 64, &n), NVME_SC_SGL_TYPE_INVALID | NVME_DNR);
    desc(s1, 0x10000, 0x100, 4);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x100, iov, 64, &n), NVME_SC_SGL_TYPE_INVALID | NVME_DNR);
    desc(s1, 0x10000, 0x100, 0);
    s1[15] |= 1;
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x100, iov, 64, &n), NVME_SC_SGL_TYPE_INVALID | NVME_DNR);
    /* a data block outside RAM */
    desc(s1, 0x1FFFF000ULL, 0x100, 0);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x100, iov, 64, &n), NVME_SC_DATA_XFER_ERROR | NVME_DNR);
}

Test(nvme_prp, sgl_loop_is_bounded)
{
    struct iovec iov[64];
    unsigned n;
    uint8_t s1[16];
    /* a Segment whose only entry is a Segment pointing back at it */
    desc_at(0x35000, 0x35000, 16, 2);
    desc(s1, 0x35000, 16, 2);
    cr_assert_eq(nvme_sgl_map(&gm, s1, 0x100, iov, 64, &n), NVME_SC_SGL_COUNT_INVALID | NVME_DNR);
    /* data_map dispatches on PSDT */
    struct nvme_sqe c = { .flags = 0x40 };
    desc(s1, 0x10000, 0x200, 0);
    memcpy(&c.prp1, s1, 8);
    memcpy(&c.prp2, s1 + 8, 8);
    cr_assert_eq(nvme_data_map(&gm, &c, 0x200, iov, 64, &n), 0);
    cr_assert_eq(n, 1);
    c.flags = 0xC0;
    cr_assert_eq(nvme_data_map(&gm, &c, 0x200, iov, 64, &n), NVME_SC_INVALID_FIELD | NVME_DNR);
}
