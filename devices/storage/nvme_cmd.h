/* NVMe 1.4 command formats and the pure parts of the NVMe controller
 * (devices/storage/nvme.c): the PRP walker and the command decoders. No
 * threads, no controller state: (guest RAM, the command) in, an iovec array
 * or a decoded request or an NVMe status out, so unit tests and fuzzers
 * drive them directly.
 *
 * Submission queue entry (NVMe 1.4 §4.2, 64 bytes): CDW0 opcode (7:0),
 * FUSE (9:8), PSDT (15:14), CID (31:16); NSID; CDW2-3; MPTR; PRP1 (DPTR
 * 63:0); PRP2 (DPTR 127:64); CDW10-15.
 * Completion queue entry (§4.6, 16 bytes): DW0 command specific; DW1
 * reserved; DW2 SQ head (15:0), SQ id (31:16); DW3 CID (15:0), phase tag
 * (16), status field (31:17): SC (24:17), SCT (27:25), CRD, M, DNR (31).
 *
 * Statuses here are uint16_t: SC in bits 7:0, SCT in 10:8, and NVME_DNR
 * (Do Not Retry) in bit 15; nvme_cqe_status() turns one into DW3's upper
 * half.
 *
 * PRPs (§4.3), memory page size 4 KiB (CAP.MPSMIN = MPSMAX = 0):
 *   - PRP1 points at the first byte; its offset must be dword aligned
 *     (bits 1:0 clear), else PRP Offset Invalid;
 *   - a transfer that ends within PRP1's page uses PRP1 only;
 *   - one that ends in the next page: PRP2 is that page, offset 0;
 *   - else PRP2 points at a PRP list (dword-aligned, any offset): its
 *     entries are page addresses with offset 0 (else PRP Offset Invalid);
 *     when more entries are needed than fit up to the end of the list's
 *     page, the page's last entry points at the next list page, which must
 *     be page aligned.
 *   Every data page goes through gm_ptr (not RAM: Data Transfer Error);
 *   every list entry is read once, with gm_read. Pages adjacent in host
 *   memory become one iovec; more iovecs than the caller has room for is
 *   Invalid Field (the caller bounds the length by MDTS first).
 *
 * SGLs (§4.4), for NVM commands (PSDT 01b or 10b; admin commands use
 * PRPs): SGL1 is the command's DPTR. Descriptors (16 bytes: address,
 * length, type in byte 15 bits 7:4, subtype 3:0 which must be 0, an
 * address): Data Block (0) adds [address, address + length) through
 * gm_ptr (page by page, so the iovecs merge like PRPs); Segment (2) points
 * at a segment of length / 16 descriptors (length a non-zero multiple of
 * 16) whose last one may be a Segment or Last Segment descriptor; Last
 * Segment (3) points at the final segment, which holds none. Every
 * descriptor is read once. Refused: a segment descriptor anywhere but a
 * segment's last entry, or in a last segment (Invalid SGL Segment
 * Descriptor); Bit Bucket, keyed and other types, or a non-zero subtype
 * (SGL Descriptor Type Invalid); data descriptors totalling other than
 * the transfer length (Data SGL Length Invalid: SGLS bit 18 is clear);
 * more than NVME_SGL_MAX_DESC descriptors (Invalid Number of SGL
 * Descriptors); memory outside RAM (Data Transfer Error). */
#ifndef MINIVMM_NVME_CMD_H
#define MINIVMM_NVME_CMD_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/block/blk_engine.h"

struct gm;

#define NVME_PAGE            4096u
#define NVME_SQE_SIZE        64u
#define NVME_CQE_SIZE        16u
#define NVME_MAX_DSM_RANGES  256u
#define NVME_SGL_MAX_DESC    1024u   /* descriptors walked per command */

/* PSDT (CDW0 15:14, the flags byte's 7:6) */
#define NVME_PSDT_PRP        0
#define NVME_PSDT_SGL        1
#define NVME_PSDT_SGL_MPTR   2

struct nvme_sqe {
    uint8_t opc;
    uint8_t flags;          /* FUSE 1:0, PSDT 7:6 */
    uint16_t cid;
    uint32_t nsid;
    uint32_t cdw2, cdw3;
    uint64_t mptr;
    uint64_t prp1, prp2;
    uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
} __attribute__((packed));

struct nvme_cqe {
    uint32_t dw0, dw1;
    uint16_t sqhd, sqid;
    uint16_t cid, status;   /* status: phase tag in bit 0 */
} __attribute__((packed));

/* Dataset Management range (§6.7, Figure 364). */
struct nvme_dsm_range {
    uint32_t cattr;
    uint32_t nlb;           /* 1-based */
    uint64_t slba;
} __attribute__((packed));

_Static_assert(sizeof(struct nvme_sqe) == NVME_SQE_SIZE, "SQ entry is 64 bytes");
_Static_assert(sizeof(struct nvme_cqe) == NVME_CQE_SIZE, "CQ entry is 16 bytes");
_Static_assert(sizeof(struct nvme_dsm_range) == 16, "DSM range is 16 bytes");

/* Status codes: generic (SCT 0, §4.6.1.2.1) */
#define NVME_DNR                    0x8000
#define NVME_SC_SUCCESS             0x0000
#define NVME_SC_INVALID_OPCODE      0x0001
#define NVME_SC_INVALID_FIELD       0x0002
#define NVME_SC_DATA_XFER_ERROR     0x0004
#define NVME_SC_INTERNAL            0x0006
#define NVME_SC_ABORT_REQ           0x0007
#define NVME_SC_ABORT_SQ_DELETED    0x0008
#define NVME_SC_INVALID_NS          0x000B
#define NVME_SC_CMD_SEQ_ERROR       0x000C
#define NVME_SC_SGL_SEG_INVALID     0x000D
#define NVME_SC_SGL_COUNT_INVALID   0x000E
#define NVME_SC_SGL_LEN_INVALID     0x000F
#define NVME_SC_PRP_OFFSET_INVALID  0x0013
#define NVME_SC_SGL_TYPE_INVALID    0x0011
#define NVME_SC_NS_WRITE_PROTECTED  0x0020
#define NVME_SC_LBA_RANGE           0x0080
/* command specific (SCT 1, §5 and §6) */
#define NVME_SC_CQ_INVALID          0x0100
#define NVME_SC_INVALID_QID         0x0101
#define NVME_SC_INVALID_QSIZE       0x0102
#define NVME_SC_AER_LIMIT           0x0105
#define NVME_SC_INVALID_VECTOR      0x0108
#define NVME_SC_INVALID_LOG_PAGE    0x0109
#define NVME_SC_INVALID_QDELETION   0x010C
#define NVME_SC_FEAT_NOT_SAVEABLE   0x010D
/* media and data integrity (SCT 2, §4.6.1.2.4) */
#define NVME_SC_WRITE_FAULT         0x0280
#define NVME_SC_READ_ERROR          0x0281

/* Admin opcodes (§5) */
#define NVME_ADM_DELETE_SQ   0x00
#define NVME_ADM_CREATE_SQ   0x01
#define NVME_ADM_GET_LOG     0x02
#define NVME_ADM_DELETE_CQ   0x04
#define NVME_ADM_CREATE_CQ   0x05
#define NVME_ADM_IDENTIFY    0x06
#define NVME_ADM_ABORT       0x08
#define NVME_ADM_SET_FEAT    0x09
#define NVME_ADM_GET_FEAT    0x0A
#define NVME_ADM_AER         0x0C
/* NVM opcodes (§6) */
#define NVME_CMD_FLUSH       0x00
#define NVME_CMD_WRITE       0x01
#define NVME_CMD_READ        0x02
#define NVME_CMD_WRITE_ZEROES 0x08
#define NVME_CMD_DSM         0x09

/* DW3's upper half for status st and phase tag p. */
static inline uint16_t nvme_cqe_status(uint16_t st, bool p)
{
    return (uint16_t)((p ? 1u : 0u) | (st & 0xFFu) << 1 | ((st >> 8) & 7u) << 9 |
                      ((st & NVME_DNR) ? 0x8000u : 0u));
}

/* Map len (> 0) bytes of the data of prp1/prp2 (see above) into
 * iov[0..*niov). A status: NVME_SC_SUCCESS, or PRP Offset Invalid, Data
 * Transfer Error, Invalid Field (more than max_iov iovecs); DNR is set on
 * refusals. */
uint16_t nvme_prp_map(const struct gm *gm, uint64_t prp1, uint64_t prp2, uint64_t len,
                      struct iovec *iov, unsigned max_iov, unsigned *niov);

/* Map len bytes of the SGL whose first descriptor is sgl1 (the DPTR, 16
 * bytes) into iov[0..*niov) (see above). A status, DNR on refusals. */
uint16_t nvme_sgl_map(const struct gm *gm, const uint8_t sgl1[16], uint64_t len,
                      struct iovec *iov, unsigned max_iov, unsigned *niov);
/* The command's data pointer as its PSDT says: PRPs or an SGL. */
uint16_t nvme_data_map(const struct gm *gm, const struct nvme_sqe *c, uint64_t len,
                       struct iovec *iov, unsigned max_iov, unsigned *niov);

/* The namespace as the NVM command decoders see it. */
struct nvme_ns_info {
    uint64_t nsze;          /* logical blocks */
    unsigned lba_shift;     /* 9 or 12 */
    bool readonly;
    bool dsm, write_zeroes; /* offered in ONCS */
    uint64_t max_xfer;      /* MDTS in bytes */
};

enum nvme_io_op { NVME_IO_NONE = 0, NVME_IO_READ, NVME_IO_WRITE, NVME_IO_FLUSH, NVME_IO_DSM,
                  NVME_IO_WRITE_ZEROES };

struct nvme_io {
    enum nvme_io_op op;
    uint64_t offset, len;   /* bytes (READ, WRITE, WRITE_ZEROES) */
    bool fua;               /* READ/WRITE/WRITE_ZEROES: Force Unit Access */
    bool deallocate;        /* DSM: AD; WRITE_ZEROES: DEAC */
    unsigned nr_ranges;     /* DSM: NR + 1 */
};

/* Decode an NVM command for the one namespace (NSID 1): opcode, fused bits
 * and PSDT (11b reserved), namespace, LBA range (LBA Out of Range), MDTS (Invalid
 * Field), read-only (Namespace is Write Protected), what ONCS offers
 * (Invalid Command Opcode). DSM ranges are checked separately
 * (nvme_dsm_ranges) once copied from guest memory. Returns a status. */
uint16_t nvme_io_decode(const struct nvme_sqe *c, const struct nvme_ns_info *ns,
                        struct nvme_io *out);

/* DSM ranges r[0..n) (copied already) into byte ranges: zero-length ones
 * skipped, each checked against the namespace (LBA Out of Range). *nout
 * may be 0 (nothing to deallocate). Returns a status. */
uint16_t nvme_dsm_ranges(const struct nvme_dsm_range *r, unsigned n,
                         const struct nvme_ns_info *ns, struct blk_range *out, unsigned *nout);

/* The limits queue creation is checked against. */
struct nvme_queue_limits {
    unsigned nr_sq, nr_cq;  /* I/O queues granted (Number of Queues): QIDs 1..nr */
    uint32_t mqes;          /* CAP.MQES: entries - 1 */
    unsigned nr_vectors;    /* MSI-X table size */
    uint32_t sq_live, cq_live;   /* bit q: queue q exists */
};

struct nvme_queue_params {
    uint16_t qid;
    uint32_t size;          /* entries */
    uint64_t base;
    uint16_t cqid;          /* SQ: its CQ */
    uint16_t iv;            /* CQ: interrupt vector */
    bool ien;               /* CQ: interrupts enabled */
};

/* Create I/O Completion / Submission Queue (§5.3, §5.4): every field
 * checked against l. Returns a status; p filled on success. */
uint16_t nvme_check_create_cq(const struct nvme_sqe *c, const struct nvme_queue_limits *l,
                              struct nvme_queue_params *p);
uint16_t nvme_check_create_sq(const struct nvme_sqe *c, const struct nvme_queue_limits *l,
                              struct nvme_queue_params *p);

#endif
