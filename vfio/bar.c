/* BAR plans (direct vs trapped pieces) and the BAR mapper: see vfio/bar.h. */
#include "vfio/bar.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

#define COMP "vfio-bar"

static uint64_t align_down(uint64_t v, uint64_t a) { return v & ~(a - 1); }

/* Round up; saturates at the highest aligned value instead of wrapping. */
static uint64_t align_up(uint64_t v, uint64_t a)
{
    uint64_t r = (v + a - 1) & ~(a - 1);
    return r < v ? align_down(UINT64_MAX, a) : r;
}

static int cmp_range(const void *a, const void *b)
{
    const struct vfio_range *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

int vfio_bar_plan(const struct vfio_bar_plan_in *in, struct vfio_bar_piece *out,
                  unsigned max, unsigned *nr)
{
    *nr = 0;
    uint64_t ps = in->page_size;
    if (!in->bar_size || !ps || (ps & (ps - 1)) || in->nr_areas > VFIO_BAR_MAX_AREAS ||
        in->nr_traps > VFIO_BAR_MAX_TRAPS || !max)
        return -EINVAL;
    uint64_t limit = in->region_size < in->bar_size ? in->region_size : in->bar_size;

    /* Direct candidates: the mmap-able areas, clipped to the region and
     * shrunk to whole pages. */
    struct vfio_range d[VFIO_BAR_MAX_AREAS + 2 * VFIO_BAR_MAX_TRAPS + 1];
    unsigned nd = 0;
    if (!in->io && in->mmap && in->bar_size >= ps) {
        if (!in->sparse) {
            d[nd++] = (struct vfio_range){ 0, limit };
        } else {
            for (unsigned i = 0; i < in->nr_areas; i++)
                d[nd++] = in->areas[i];
        }
    }
    unsigned nv = 0;
    for (unsigned i = 0; i < nd; i++) {
        uint64_t s = d[i].off, e = d[i].off + d[i].len;
        if (e < s)
            e = UINT64_MAX;             /* overflowing area: clip below */
        if (e > limit)
            e = limit;
        s = align_up(s, ps);
        e = align_down(e, ps);
        if (s < e)
            d[nv++] = (struct vfio_range){ s, e - s };
    }
    nd = nv;
    qsort(d, nd, sizeof(d[0]), cmp_range);
    /* merge overlapping or touching areas */
    nv = 0;
    for (unsigned i = 0; i < nd; i++) {
        if (nv && d[i].off <= d[nv - 1].off + d[nv - 1].len) {
            uint64_t e = d[i].off + d[i].len;
            if (e > d[nv - 1].off + d[nv - 1].len)
                d[nv - 1].len = e - d[nv - 1].off;
        } else {
            d[nv++] = d[i];
        }
    }
    nd = nv;
    /* Subtract every trap, widened to whole pages. */
    for (unsigned t = 0; t < in->nr_traps; t++) {
        if (!in->traps[t].len)
            continue;
        uint64_t ts = align_down(in->traps[t].off, ps);
        uint64_t te = in->traps[t].off + in->traps[t].len;
        te = te < in->traps[t].off ? UINT64_MAX : align_up(te, ps);
        nv = 0;
        struct vfio_range tmp[sizeof(d) / sizeof(d[0])];
        for (unsigned i = 0; i < nd; i++) {
            uint64_t s = d[i].off, e = d[i].off + d[i].len;
            if (nv + 2 > sizeof(tmp) / sizeof(tmp[0]))
                return -E2BIG;
            if (te <= s || ts >= e) {
                tmp[nv++] = d[i];
                continue;
            }
            if (s < ts)
                tmp[nv++] = (struct vfio_range){ s, ts - s };
            if (te < e)
                tmp[nv++] = (struct vfio_range){ te, e - te };
        }
        memcpy(d, tmp, nv * sizeof(d[0]));
        nd = nv;
    }
    /* Pieces: direct intervals and the gaps between them, up to bar_size. */
    unsigned n = 0;
    uint64_t pos = 0;
    for (unsigned i = 0; i <= nd; i++) {
        uint64_t s = i < nd ? d[i].off : in->bar_size;
        if (s > pos) {
            if (n && out[n - 1].kind == VFIO_PIECE_TRAP) {
                out[n - 1].len += s - pos;
            } else {
                if (n >= max)
                    return -E2BIG;
                out[n++] = (struct vfio_bar_piece){ pos, s - pos, VFIO_PIECE_TRAP };
            }
        }
        if (i == nd)
            break;
        if (n >= max)
            return -E2BIG;
        out[n++] = (struct vfio_bar_piece){ d[i].off, d[i].len, VFIO_PIECE_DIRECT };
        pos = d[i].off + d[i].len;
    }
    *nr = n;
    return 0;
}

enum vfio_bar_action vfio_bar_decide(const struct vfio_bar_map *b, bool want, uint64_t gpa)
{
    if (!b->mapped)
        return want ? VFIO_BAR_MAP : VFIO_BAR_KEEP;
    if (!want)
        return VFIO_BAR_UNMAP;
    return gpa == b->gpa ? VFIO_BAR_KEEP : VFIO_BAR_MOVE;
}

static void unmap_pieces(struct vfio_bar_map *b, unsigned upto, const struct vfio_bar_ops *ops,
                         void *opaque)
{
    for (unsigned i = 0; i < upto; i++) {
        if (b->pieces[i].kind == VFIO_PIECE_DIRECT)
            ops->unmap_direct(opaque, b->index, i);
        else
            ops->unmap_trap(opaque, b->index, i, b->gpa + b->pieces[i].off);
    }
}

int vfio_bar_update(struct vfio_bar_map *b, bool want, uint64_t gpa,
                    const struct vfio_bar_ops *ops, void *opaque)
{
    enum vfio_bar_action a = vfio_bar_decide(b, want, gpa);
    if (a == VFIO_BAR_KEEP)
        return 0;
    if (a == VFIO_BAR_UNMAP || a == VFIO_BAR_MOVE) {
        unmap_pieces(b, b->nr_pieces, ops, opaque);
        b->mapped = false;
    }
    if (a == VFIO_BAR_UNMAP)
        return 0;
    b->gpa = gpa;
    for (unsigned i = 0; i < b->nr_pieces; i++) {
        const struct vfio_bar_piece *p = &b->pieces[i];
        int r = p->kind == VFIO_PIECE_DIRECT
                    ? ops->map_direct(opaque, b->index, i, gpa + p->off, p->len, b->hva[i])
                    : ops->map_trap(opaque, b->index, i, gpa + p->off, p->len);
        if (r < 0) {
            log_guest_once(COMP, "BAR%u at 0x%llx: its part at +0x%llx (0x%llx bytes) cannot "
                           "be mapped (%s): the guest placed it over something else; it stays "
                           "unmapped", b->index, (unsigned long long)gpa,
                           (unsigned long long)p->off, (unsigned long long)p->len, strerror(-r));
            unmap_pieces(b, i, ops, opaque);
            return r;
        }
    }
    b->mapped = true;
    return 0;
}
