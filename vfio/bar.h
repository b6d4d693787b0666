/* How a passed-through BAR reaches the guest: which parts are mapped
 * directly (the device's memory mmap'd from VFIO and given to KVM as a
 * memory slot: guest accesses never exit) and which are trapped (an MMIO or
 * port range on minivmm's bus: each access exits to minivmm).
 *
 * Trapped, and nothing else:
 *   - the MSI-X table and PBA pages (minivmm emulates them:
 *     devices/pci/msix.h),
 *   - quirk windows (vfio/quirks.h: e.g. NVIDIA's config-space mirror),
 *   - what VFIO does not let us mmap (outside the sparse-mmap areas, or the
 *     whole region without VFIO_REGION_INFO_FLAG_MMAP),
 *   - BARs smaller than a page, and I/O BARs (KVM slots are page-granular
 *     memory; port I/O always exits).
 * Trapped accesses that are neither MSI-X nor quirk go to the device with
 * pread/pwrite on the VFIO region.
 *
 * Pure: the plan is computed from region info; the mapper drives four
 * callbacks, so the unit tests check the decisions without KVM or VFIO. */
#ifndef MINIVMM_VFIO_BAR_H
#define MINIVMM_VFIO_BAR_H
#include <stdbool.h>
#include <stdint.h>

#define VFIO_BAR_MAX_AREAS   16   /* sparse-mmap areas considered per region */
#define VFIO_BAR_MAX_TRAPS   4    /* MSI-X table, PBA, quirk windows */
#define VFIO_BAR_MAX_PIECES  48

struct vfio_range {
    uint64_t off, len;
};

enum vfio_piece_kind { VFIO_PIECE_DIRECT, VFIO_PIECE_TRAP };

struct vfio_bar_piece {
    uint64_t off, len;              /* within the BAR */
    enum vfio_piece_kind kind;
};

struct vfio_bar_plan_in {
    uint64_t bar_size;              /* guest-visible BAR size (power of two) */
    uint64_t region_size;           /* VFIO region size */
    bool io;                        /* I/O BAR: always trapped */
    bool mmap;                      /* VFIO_REGION_INFO_FLAG_MMAP */
    /* mmap-able areas (sparse mmap capability); nr_areas 0 with mmap set
     * means the whole region */
    struct vfio_range areas[VFIO_BAR_MAX_AREAS];
    unsigned nr_areas;
    bool sparse;                    /* the region has a sparse-mmap capability */
    struct vfio_range traps[VFIO_BAR_MAX_TRAPS];
    unsigned nr_traps;
    uint64_t page_size;             /* host page size (power of two) */
};

/* Pieces covering [0, bar_size) in order, adjacent pieces of the same kind
 * merged; direct pieces page-aligned, never overlapping a trap's pages.
 * -EINVAL for a bad input (size 0, page size not a power of two), -E2BIG
 * when more than max pieces would be needed. */
int vfio_bar_plan(const struct vfio_bar_plan_in *in, struct vfio_bar_piece *out,
                  unsigned max, unsigned *nr);

/* The mapper: a BAR's pieces and where they are mapped now. */
struct vfio_bar_ops {
    /* KVM memory slot for a direct piece at gpa (host memory hva). */
    int (*map_direct)(void *opaque, unsigned bar, unsigned piece, uint64_t gpa,
                      uint64_t len, void *hva);
    void (*unmap_direct)(void *opaque, unsigned bar, unsigned piece);
    /* Bus range (MMIO, or port I/O for an I/O BAR) for a trapped piece. */
    int (*map_trap)(void *opaque, unsigned bar, unsigned piece, uint64_t gpa, uint64_t len);
    void (*unmap_trap)(void *opaque, unsigned bar, unsigned piece, uint64_t gpa);
};

struct vfio_bar_map {
    unsigned index;                 /* BAR number, 6 = ROM */
    struct vfio_bar_piece pieces[VFIO_BAR_MAX_PIECES];
    void *hva[VFIO_BAR_MAX_PIECES]; /* the mmap of each direct piece */
    unsigned nr_pieces;
    bool mapped;                    /* all pieces are at gpa */
    uint64_t gpa;
};

enum vfio_bar_action { VFIO_BAR_KEEP, VFIO_BAR_MAP, VFIO_BAR_UNMAP, VFIO_BAR_MOVE };
/* What to do when the guest's BAR state is (want, gpa). Pure. */
enum vfio_bar_action vfio_bar_decide(const struct vfio_bar_map *b, bool want, uint64_t gpa);

/* Apply the decision: unmaps every piece, then maps every piece at gpa. A
 * piece that cannot be mapped (the guest put the BAR over RAM or another
 * device) undoes the others: the BAR is then not mapped, -errno returned
 * and logged once. */
int vfio_bar_update(struct vfio_bar_map *b, bool want, uint64_t gpa,
                    const struct vfio_bar_ops *ops, void *opaque);

#endif
