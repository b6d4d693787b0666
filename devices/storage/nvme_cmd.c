/* The pure parts of the NVMe controller: see devices/storage/nvme_cmd.h. */
#include "devices/storage/nvme_cmd.h"

#include <stddef.h>
#include <string.h>

#include "vmm/gm.h"

/* ---- PRPs (NVMe 1.4 §4.3) ---- */

/* One data range [gpa, gpa + n), inside one page, onto the iovec array. */
static uint16_t prp_add(const struct gm *gm, uint64_t gpa, uint64_t n, struct iovec *iov,
                        unsigned max_iov, unsigned *cnt)
{
    uint8_t *p = gm_ptr(gm, gpa, n);

    if (!p)
        return NVME_SC_DATA_XFER_ERROR | NVME_DNR;
    if (*cnt && (uint8_t *)iov[*cnt - 1].iov_base + iov[*cnt - 1].iov_len == p) {
        iov[*cnt - 1].iov_len += n;
        return NVME_SC_SUCCESS;
    }
    if (*cnt >= max_iov)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    iov[*cnt].iov_base = p;
    iov[*cnt].iov_len = n;
    (*cnt)++;
    return NVME_SC_SUCCESS;
}

uint16_t nvme_prp_map(const struct gm *gm, uint64_t prp1, uint64_t prp2, uint64_t len,
                      struct iovec *iov, unsigned max_iov, unsigned *niov)
{
    const uint64_t pmask = NVME_PAGE - 1;
    unsigned cnt = 0;
    uint16_t st;

    *niov = 0;
    if (len == 0)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    if (prp1 & 3)
        return NVME_SC_PRP_OFFSET_INVALID | NVME_DNR;
    uint64_t first = NVME_PAGE - (prp1 & pmask);
    if (first > len)
        first = len;
    st = prp_add(gm, prp1, first, iov, max_iov, &cnt);
    if (st)
        return st;
    uint64_t rem = len - first;
    if (rem == 0)
        goto done;
    if (rem <= NVME_PAGE) {
        /* PRP2 is the second (and last) data page */
        if (prp2 & pmask)
            return NVME_SC_PRP_OFFSET_INVALID | NVME_DNR;
        st = prp_add(gm, prp2, rem, iov, max_iov, &cnt);
        if (st)
            return st;
        goto done;
    }
    /* PRP2 is a PRP list pointer */
    if (prp2 & 3)
        return NVME_SC_PRP_OFFSET_INVALID | NVME_DNR;
    uint64_t list = prp2;
    while (rem) {
        uint64_t pages_left = (rem + pmask) / NVME_PAGE;
        /* the entries up to the end of the list's page */
        uint64_t room = (NVME_PAGE - (list & pmask)) / 8;
        if (room == 0)
            return NVME_SC_PRP_OFFSET_INVALID | NVME_DNR;
        uint64_t n = pages_left < room ? pages_left : room;
        bool chain = pages_left > room;   /* the last entry points at the next list */
        if (chain)
            n = room - 1;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t e;
            if (gm_read(gm, list + 8 * i, &e, sizeof(e)))
                return NVME_SC_DATA_XFER_ERROR | NVME_DNR;
            if (e & pmask)
                return NVME_SC_PRP_OFFSET_INVALID | NVME_DNR;
            uint64_t chunk = rem < NVME_PAGE ? rem : NVME_PAGE;
            st = prp_add(gm, e, chunk, iov, max_iov, &cnt);
            if (st)
                return st;
            rem -= chunk;
        }
        if (!chain)
            break;
        uint64_t next;
        if (gm_read(gm, list + 8 * n, &next, sizeof(next)))
            return NVME_SC_DATA_XFER_ERROR | NVME_DNR;
        if (next & pmask)
            return NVME_SC_PRP_OFFSET_INVALID | NVME_DNR;
        list = next;
    }
done:
    *niov = cnt;
    return NVME_SC_SUCCESS;
}

/* ---- SGLs (NVMe 1.4 §4.4) ---- */

#define SGL_DATA_BLOCK   0x0
#define SGL_SEGMENT      0x2
#define SGL_LAST_SEGMENT 0x3

struct sgl_desc {
    uint64_t addr;
    uint32_t len;
    uint8_t rsvd[3];
    uint8_t type;   /* type 7:4, subtype 3:0 */
} __attribute__((packed));
_Static_assert(sizeof(struct sgl_desc) == 16, "SGL descriptor is 16 bytes");

/* A data block, a page at a time (as the host's memory is laid out). */
static uint16_t sgl_data(const struct gm *gm, uint64_t addr, uint64_t n, struct iovec *iov,
                         unsigned max_iov, unsigned *cnt)
{
    while (n) {
        uint64_t chunk = NVME_PAGE - (addr & (NVME_PAGE - 1));
        if (chunk > n)
            chunk = n;
        uint16_t st = prp_add(gm, addr, chunk, iov, max_iov, cnt);
        if (st)
            return st;
        addr += chunk;
        n -= chunk;
    }
    return NVME_SC_SUCCESS;
}

uint16_t nvme_sgl_map(const struct gm *gm, const uint8_t sgl1[16], uint64_t len,
                      struct iovec *iov, unsigned max_iov, unsigned *niov)
{
    struct sgl_desc d;
    uint64_t done = 0, seg = 0, seg_n = 0;   /* the segment being read: where, entries left */
    bool last_seg = false;
    unsigned cnt = 0, walked = 0;
    uint16_t st;

    *niov = 0;
    if (len == 0)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    memcpy(&d, sgl1, sizeof(d));
    for (;;) {
        if (++walked > NVME_SGL_MAX_DESC)
            return NVME_SC_SGL_COUNT_INVALID | NVME_DNR;
        if (d.type & 0x0F)
            return NVME_SC_SGL_TYPE_INVALID | NVME_DNR;
        switch (d.type >> 4) {
        case SGL_DATA_BLOCK:
            if (d.len > len - done)
                return NVME_SC_SGL_LEN_INVALID | NVME_DNR;
            if (d.len) {
                st = sgl_data(gm, d.addr, d.len, iov, max_iov, &cnt);
                if (st)
                    return st;
                done += d.len;
            }
            break;
        case SGL_SEGMENT:
        case SGL_LAST_SEGMENT:
            /* only as a segment's last entry (or SGL1), never in a last segment */
            if (seg_n || last_seg)
                return NVME_SC_SGL_SEG_INVALID | NVME_DNR;
            if (d.len == 0 || d.len % sizeof(d))
                return NVME_SC_SGL_SEG_INVALID | NVME_DNR;
            if (!gm_ptr(gm, d.addr, d.len))
                return NVME_SC_DATA_XFER_ERROR | NVME_DNR;
            last_seg = (d.type >> 4) == SGL_LAST_SEGMENT;
            seg = d.addr;
            seg_n = d.len / sizeof(d);
            break;
        default:   /* bit bucket (SGLS bit 16 clear), keyed, transport */
            return NVME_SC_SGL_TYPE_INVALID | NVME_DNR;
        }
        if (!seg_n)
            break;   /* a data block as SGL1, or the end of the last segment */
        if (gm_read(gm, seg, &d, sizeof(d)))
            return NVME_SC_DATA_XFER_ERROR | NVME_DNR;
        seg += sizeof(d);
        seg_n--;
        if (!seg_n && !last_seg && (d.type >> 4) != SGL_SEGMENT &&
            (d.type >> 4) != SGL_LAST_SEGMENT) {
            /* a Segment's last entry must lead on (§4.4: a Segment is
             * never the last one) */
            return NVME_SC_SGL_SEG_INVALID | NVME_DNR;
        }
    }
    if (done != len)
        return NVME_SC_SGL_LEN_INVALID | NVME_DNR;
    *niov = cnt;
    return NVME_SC_SUCCESS;
}

uint16_t nvme_data_map(const struct gm *gm, const struct nvme_sqe *c, uint64_t len,
                       struct iovec *iov, unsigned max_iov, unsigned *niov)
{
    unsigned psdt = c->flags >> 6;
    uint8_t sgl1[16];

    *niov = 0;
    if (psdt == NVME_PSDT_PRP)
        return nvme_prp_map(gm, c->prp1, c->prp2, len, iov, max_iov, niov);
    if (psdt != NVME_PSDT_SGL && psdt != NVME_PSDT_SGL_MPTR)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    memcpy(sgl1, &c->prp1, 8);
    memcpy(sgl1 + 8, &c->prp2, 8);
    return nvme_sgl_map(gm, sgl1, len, iov, max_iov, niov);
}

/* ---- NVM commands (§6) ---- */

static bool lba_fits(const struct nvme_ns_info *ns, uint64_t slba, uint64_t nlb)
{
    return slba <= ns->nsze && nlb <= ns->nsze - slba;
}

uint16_t nvme_io_decode(const struct nvme_sqe *c, const struct nvme_ns_info *ns,
                        struct nvme_io *out)
{
    *out = (struct nvme_io){ .op = NVME_IO_NONE };
    /* §4.2: fused operations are not supported (FUSES = 0); PSDT 11b is
     * reserved */
    if (c->flags & 0x03)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    if ((c->flags >> 6) == 3)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    switch (c->opc) {
    case NVME_CMD_FLUSH:
        /* §6.8: NSID FFFFFFFFh flushes every namespace (VWC bits 2:1 = 11b) */
        if (c->nsid != 1 && c->nsid != 0xFFFFFFFFu)
            return NVME_SC_INVALID_NS | NVME_DNR;
        out->op = NVME_IO_FLUSH;
        return NVME_SC_SUCCESS;
    case NVME_CMD_READ:
    case NVME_CMD_WRITE:
    case NVME_CMD_WRITE_ZEROES:
    case NVME_CMD_DSM:
        break;
    default:
        return NVME_SC_INVALID_OPCODE | NVME_DNR;
    }
    if (c->opc == NVME_CMD_DSM && !ns->dsm)
        return NVME_SC_INVALID_OPCODE | NVME_DNR;
    if (c->opc == NVME_CMD_WRITE_ZEROES && !ns->write_zeroes)
        return NVME_SC_INVALID_OPCODE | NVME_DNR;
    if (c->nsid != 1)
        return NVME_SC_INVALID_NS | NVME_DNR;
    if (c->opc == NVME_CMD_DSM) {
        /* §6.7: NR (7:0) 0-based; AD (cdw11 bit 2) deallocates, the
         * integral-read/write hints (bits 1:0) are only hints */
        out->op = NVME_IO_DSM;
        out->nr_ranges = (c->cdw10 & 0xFF) + 1;
        out->deallocate = c->cdw11 & (1u << 2);
        if (out->deallocate && ns->readonly)
            return NVME_SC_NS_WRITE_PROTECTED | NVME_DNR;
        return NVME_SC_SUCCESS;
    }
    uint64_t slba = (uint64_t)c->cdw11 << 32 | c->cdw10;
    uint64_t nlb = (uint64_t)(c->cdw12 & 0xFFFF) + 1;
    /* PRINFO (29:26): no protection information on this namespace */
    if (c->cdw12 & (0xFu << 26))
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    if (!lba_fits(ns, slba, nlb))
        return NVME_SC_LBA_RANGE | NVME_DNR;
    out->offset = slba << ns->lba_shift;
    out->len = nlb << ns->lba_shift;
    out->fua = c->cdw12 & (1u << 30);
    if (c->opc == NVME_CMD_WRITE_ZEROES) {
        if (ns->readonly)
            return NVME_SC_NS_WRITE_PROTECTED | NVME_DNR;
        out->op = NVME_IO_WRITE_ZEROES;
        out->deallocate = c->cdw12 & (1u << 25);   /* DEAC */
        return NVME_SC_SUCCESS;
    }
    if (out->len > ns->max_xfer)
        return NVME_SC_INVALID_FIELD | NVME_DNR;   /* over MDTS */
    if (c->opc == NVME_CMD_WRITE) {
        if (ns->readonly)
            return NVME_SC_NS_WRITE_PROTECTED | NVME_DNR;
        out->op = NVME_IO_WRITE;
    } else {
        out->op = NVME_IO_READ;
    }
    return NVME_SC_SUCCESS;
}

uint16_t nvme_dsm_ranges(const struct nvme_dsm_range *r, unsigned n,
                         const struct nvme_ns_info *ns, struct blk_range *out, unsigned *nout)
{
    unsigned k = 0;

    *nout = 0;
    if (n > NVME_MAX_DSM_RANGES)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    for (unsigned i = 0; i < n; i++) {
        uint64_t slba = r[i].slba, nlb = r[i].nlb;
        if (nlb == 0)
            continue;
        if (!lba_fits(ns, slba, nlb))
            return NVME_SC_LBA_RANGE | NVME_DNR;
        out[k++] = (struct blk_range){ .offset = slba << ns->lba_shift,
                                       .len = nlb << ns->lba_shift };
    }
    *nout = k;
    return NVME_SC_SUCCESS;
}

/* ---- queue creation (§5.3, §5.4) ---- */

static uint16_t check_common(const struct nvme_sqe *c, unsigned max_qid, uint32_t live,
                             const struct nvme_queue_limits *l, struct nvme_queue_params *p)
{
    uint32_t qid = c->cdw10 & 0xFFFF, qsize = c->cdw10 >> 16;

    if (c->flags & 0xC3)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    if (qid == 0 || qid > max_qid || qid >= 32 || (live & (1u << qid)))
        return NVME_SC_INVALID_QID | NVME_DNR;
    if (qsize == 0 || qsize > l->mqes)
        return NVME_SC_INVALID_QSIZE | NVME_DNR;
    /* CAP.CQR = 1: physically contiguous queues only (PC, cdw11 bit 0) */
    if (!(c->cdw11 & 1))
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    if (c->prp1 & (NVME_PAGE - 1))
        return NVME_SC_PRP_OFFSET_INVALID | NVME_DNR;
    p->qid = (uint16_t)qid;
    p->size = qsize + 1;
    p->base = c->prp1;
    return NVME_SC_SUCCESS;
}

uint16_t nvme_check_create_cq(const struct nvme_sqe *c, const struct nvme_queue_limits *l,
                              struct nvme_queue_params *p)
{
    *p = (struct nvme_queue_params){ 0 };
    uint16_t st = check_common(c, l->nr_cq, l->cq_live, l, p);
    if (st)
        return st;
    p->ien = c->cdw11 & 2;
    p->iv = (uint16_t)(c->cdw11 >> 16);
    if (p->iv >= l->nr_vectors)
        return NVME_SC_INVALID_VECTOR | NVME_DNR;
    return NVME_SC_SUCCESS;
}

uint16_t nvme_check_create_sq(const struct nvme_sqe *c, const struct nvme_queue_limits *l,
                              struct nvme_queue_params *p)
{
    *p = (struct nvme_queue_params){ 0 };
    uint16_t st = check_common(c, l->nr_sq, l->sq_live, l, p);
    if (st)
        return st;
    p->cqid = (uint16_t)(c->cdw11 >> 16);
    /* §5.4: a CQ id of 0 (the admin CQ) or of a queue that does not exist */
    if (p->cqid == 0 || p->cqid >= 32 || !(l->cq_live & (1u << p->cqid)))
        return NVME_SC_CQ_INVALID | NVME_DNR;
    return NVME_SC_SUCCESS;
}
