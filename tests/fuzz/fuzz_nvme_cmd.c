/* libFuzzer target: the NVMe command decoders (devices/storage/nvme_cmd.c):
 * NVM commands for one namespace, DSM ranges and the Create I/O SQ/CQ
 * checks, on hostile submission queue entries.
 *
 * Input: 64 bytes of SQ entry; then the namespace (8 bytes NSZE, a flags
 * byte: bit 0 4 KiB blocks, 1 read-only, 2 DSM, 3 Write Zeroes), the
 * queue limits (nr_sq, nr_cq, vectors, 4 bytes of live CQs and of live
 * SQs); the rest are DSM ranges (16 bytes each).
 *
 * Checked: an accepted read/write/write-zeroes lies inside the namespace
 * and (read/write) within MDTS; a read-only namespace accepts no write;
 * accepted DSM ranges lie inside it; accepted queues have a free QID in
 * range, 2..MQES+1 entries, a page-aligned base, an existing CQ other
 * than the admin one, a vector inside the table; refusals carry DNR. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/storage/nvme_cmd.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nvme_sqe c;
    if (size < sizeof(c) + 9 + 11)
        return 0;
    memcpy(&c, data, sizeof(c));
    data += sizeof(c);
    size -= sizeof(c);

    struct nvme_ns_info ns = {
        .nsze = le(data, 8), .lba_shift = (data[8] & 1) ? 12 : 9, .readonly = data[8] & 2,
        .dsm = data[8] & 4, .write_zeroes = data[8] & 8, .max_xfer = (uint64_t)NVME_PAGE << 6,
    };
    ns.nsze &= (1ULL << 50) - 1;   /* a size an image can have (bytes fit 64 bits) */
    data += 9;
    size -= 9;
    struct nvme_queue_limits l = {
        .nr_sq = data[0] % 20, .nr_cq = data[1] % 20, .mqes = 1023, .nr_vectors = 1 + data[2] % 20,
        .cq_live = (uint32_t)le(data + 3, 4), .sq_live = (uint32_t)le(data + 7, 4),
    };
    data += 11;
    size -= 11;

    struct nvme_io io;
    uint16_t st = nvme_io_decode(&c, &ns, &io);
    if (st) {
        check(st & NVME_DNR);
        check(io.op == NVME_IO_NONE || io.op == NVME_IO_DSM || st == NVME_SC_LBA_RANGE ||
              (st & 0xFF) != 0);
    } else {
        uint64_t bytes = ns.nsze << ns.lba_shift;
        switch (io.op) {
        case NVME_IO_READ:
        case NVME_IO_WRITE:
            check(io.len <= ns.max_xfer);
            /* fall through */
        case NVME_IO_WRITE_ZEROES:
            check(io.len > 0 && io.offset <= bytes && io.len <= bytes - io.offset);
            check(io.op == NVME_IO_READ || !ns.readonly);
            check(io.op != NVME_IO_WRITE_ZEROES || ns.write_zeroes);
            break;
        case NVME_IO_DSM:
            check(ns.dsm && io.nr_ranges >= 1 && io.nr_ranges <= 256);
            check(!io.deallocate || !ns.readonly);
            break;
        case NVME_IO_FLUSH:
            break;
        default:
            check(false);
        }
    }

    static struct nvme_dsm_range r[NVME_MAX_DSM_RANGES];
    static struct blk_range out[NVME_MAX_DSM_RANGES];
    unsigned n = (unsigned)(size / sizeof(r[0]));
    if (n > NVME_MAX_DSM_RANGES)
        n = NVME_MAX_DSM_RANGES;
    memcpy(r, data, n * sizeof(r[0]));
    unsigned k = 999;
    st = nvme_dsm_ranges(r, n, &ns, out, &k);
    check(k <= n);
    if (st == 0) {
        uint64_t bytes = ns.nsze << ns.lba_shift;
        for (unsigned i = 0; i < k; i++)
            check(out[i].len > 0 && out[i].offset <= bytes && out[i].len <= bytes - out[i].offset);
    } else {
        check(k == 0);
    }

    struct nvme_queue_params p;
    if (nvme_check_create_cq(&c, &l, &p) == 0) {
        check(p.qid >= 1 && p.qid <= l.nr_cq && !(l.cq_live & (1u << p.qid)));
        check(p.size >= 2 && p.size <= l.mqes + 1);
        check(!(p.base & (NVME_PAGE - 1)));
        check(p.iv < l.nr_vectors);
    }
    if (nvme_check_create_sq(&c, &l, &p) == 0) {
        check(p.qid >= 1 && p.qid <= l.nr_sq && !(l.sq_live & (1u << p.qid)));
        check(p.size >= 2 && p.size <= l.mqes + 1);
        check(!(p.base & (NVME_PAGE - 1)));
        check(p.cqid >= 1 && p.cqid < 32 && (l.cq_live & (1u << p.cqid)));
    }
    return 0;
}
