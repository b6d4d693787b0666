/* BAR plans over fake VFIO region info (vfio/bar.c), the mapper's
 * decisions, and the whole guest sequence -- size a BAR, place it, enable
 * decode, move it -- through the config layer into the mapper. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/pci_regs.h>
#include <string.h>

#include "vfio/bar.h"
#include "vfio/config.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define PAGE 4096ull

static struct vfio_bar_piece pc[VFIO_BAR_MAX_PIECES];
static unsigned npc;

/* Invariants of every plan: contiguous cover of the BAR, alternating kinds,
 * direct pieces page-aligned and clear of every trap's pages. */
static void check_plan(const struct vfio_bar_plan_in *in)
{
    uint64_t pos = 0;
    for (unsigned i = 0; i < npc; i++) {
        cr_assert_eq(pc[i].off, pos, "piece %u starts at 0x%llx, want 0x%llx", i,
                     (unsigned long long)pc[i].off, (unsigned long long)pos);
        cr_assert_gt(pc[i].len, 0);
        if (i)
            cr_assert_neq(pc[i].kind, pc[i - 1].kind, "adjacent pieces of one kind not merged");
        if (pc[i].kind == VFIO_PIECE_DIRECT) {
            cr_assert_eq(pc[i].off % in->page_size, 0);
            cr_assert_eq(pc[i].len % in->page_size, 0);
            cr_assert_leq(pc[i].off + pc[i].len, in->region_size);
            for (unsigned t = 0; t < in->nr_traps; t++) {
                uint64_t ts = in->traps[t].off & ~(in->page_size - 1);
                uint64_t te = in->traps[t].off + in->traps[t].len;
                if (!in->traps[t].len)
                    continue;
                cr_assert(pc[i].off + pc[i].len <= ts || pc[i].off >= te,
                          "direct piece %u overlaps trap %u", i, t);
            }
        }
        pos += pc[i].len;
    }
    cr_assert_eq(pos, in->bar_size, "pieces cover the BAR");
}

static void plan(const struct vfio_bar_plan_in *in)
{
    int r = vfio_bar_plan(in, pc, VFIO_BAR_MAX_PIECES, &npc);
    cr_assert_eq(r, 0, "plan: %d", r);
    check_plan(in);
}

static void expect(unsigned i, uint64_t off, uint64_t len, enum vfio_piece_kind k)
{
    cr_assert_lt(i, npc, "piece %u missing (%u pieces)", i, npc);
    cr_assert_eq(pc[i].off, off, "piece %u off 0x%llx", i, (unsigned long long)pc[i].off);
    cr_assert_eq(pc[i].len, len, "piece %u len 0x%llx", i, (unsigned long long)pc[i].len);
    cr_assert_eq(pc[i].kind, k, "piece %u kind", i);
}

Test(vfio_bar, whole_region_direct)
{
    struct vfio_bar_plan_in in = { .bar_size = 256 * MiB, .region_size = 256 * MiB,
                                   .mmap = true, .page_size = PAGE };
    plan(&in);
    cr_assert_eq(npc, 1);
    expect(0, 0, 256 * MiB, VFIO_PIECE_DIRECT);
}

Test(vfio_bar, msix_table_and_pba_trapped)
{
    struct vfio_bar_plan_in in = { .bar_size = 16 * MiB, .region_size = 16 * MiB,
                                   .mmap = true, .page_size = PAGE, .nr_traps = 2,
                                   .traps = { { 0x2000, 16 * 16 }, { 0x3000, 8 } } };
    plan(&in);
    cr_assert_eq(npc, 3);
    expect(0, 0, 0x2000, VFIO_PIECE_DIRECT);
    expect(1, 0x2000, 0x2000, VFIO_PIECE_TRAP);
    expect(2, 0x4000, 16 * MiB - 0x4000, VFIO_PIECE_DIRECT);
}

Test(vfio_bar, table_and_pba_share_a_page)
{
    struct vfio_bar_plan_in in = { .bar_size = 64 * KiB, .region_size = 64 * KiB,
                                   .mmap = true, .page_size = PAGE, .nr_traps = 2,
                                   .traps = { { 0x8000, 0x100 }, { 0x8800, 8 } } };
    plan(&in);
    cr_assert_eq(npc, 3);
    expect(1, 0x8000, PAGE, VFIO_PIECE_TRAP);
}

Test(vfio_bar, table_at_start_and_spanning_pages)
{
    /* 2048 vectors: a 32 KiB table from offset 0 */
    struct vfio_bar_plan_in in = { .bar_size = 1 * MiB, .region_size = 1 * MiB,
                                   .mmap = true, .page_size = PAGE, .nr_traps = 2,
                                   .traps = { { 0, 2048 * 16 }, { 0xfff00, 256 } } };
    plan(&in);
    cr_assert_eq(npc, 3);
    expect(0, 0, 32 * KiB, VFIO_PIECE_TRAP);
    expect(1, 32 * KiB, 1 * MiB - 32 * KiB - PAGE, VFIO_PIECE_DIRECT);
    expect(2, 1 * MiB - PAGE, PAGE, VFIO_PIECE_TRAP);
}

Test(vfio_bar, sparse_areas_from_the_kernel)
{
    /* vfio-pci without MSI-X mmap: areas around the table page */
    struct vfio_bar_plan_in in = { .bar_size = 16 * MiB, .region_size = 16 * MiB,
                                   .mmap = true, .sparse = true, .page_size = PAGE,
                                   .nr_areas = 2,
                                   .areas = { { 0, 0x2000 }, { 0x3000, 16 * MiB - 0x3000 } },
                                   .nr_traps = 2,
                                   .traps = { { 0x2000, 0x100 }, { 0x2800, 8 } } };
    plan(&in);
    cr_assert_eq(npc, 3);
    expect(0, 0, 0x2000, VFIO_PIECE_DIRECT);
    expect(1, 0x2000, PAGE, VFIO_PIECE_TRAP);
    expect(2, 0x3000, 16 * MiB - 0x3000, VFIO_PIECE_DIRECT);
}

Test(vfio_bar, sparse_with_no_areas_traps_everything)
{
    struct vfio_bar_plan_in in = { .bar_size = 1 * MiB, .region_size = 1 * MiB,
                                   .mmap = true, .sparse = true, .page_size = PAGE };
    plan(&in);
    cr_assert_eq(npc, 1);
    expect(0, 0, 1 * MiB, VFIO_PIECE_TRAP);
}

Test(vfio_bar, unaligned_and_overlapping_areas)
{
    struct vfio_bar_plan_in in = { .bar_size = 64 * KiB, .region_size = 64 * KiB,
                                   .mmap = true, .sparse = true, .page_size = PAGE,
                                   .nr_areas = 3,
                                   .areas = { { 0x1800, 0x3000 }, { 0x4000, 0x2000 },
                                              { 0x5000, 0x800 } } };
    plan(&in);
    /* [0x1800,0x4800) -> [0x2000,0x4000); merged with [0x4000,0x6000) */
    cr_assert_eq(npc, 3);
    expect(0, 0, 0x2000, VFIO_PIECE_TRAP);
    expect(1, 0x2000, 0x4000, VFIO_PIECE_DIRECT);
    expect(2, 0x6000, 64 * KiB - 0x6000, VFIO_PIECE_TRAP);
}

Test(vfio_bar, no_mmap_io_and_small_bars_trapped)
{
    struct vfio_bar_plan_in in = { .bar_size = 1 * MiB, .region_size = 1 * MiB,
                                   .mmap = false, .page_size = PAGE };
    plan(&in);
    cr_assert_eq(npc, 1);
    expect(0, 0, 1 * MiB, VFIO_PIECE_TRAP);

    struct vfio_bar_plan_in io = { .bar_size = 256, .region_size = 256, .io = true,
                                   .mmap = true, .page_size = PAGE };
    plan(&io);
    cr_assert_eq(npc, 1);
    expect(0, 0, 256, VFIO_PIECE_TRAP);

    struct vfio_bar_plan_in small = { .bar_size = 256, .region_size = 256,
                                      .mmap = true, .page_size = PAGE };
    plan(&small);
    cr_assert_eq(npc, 1);
    expect(0, 0, 256, VFIO_PIECE_TRAP);
}

Test(vfio_bar, region_shorter_than_bar)
{
    struct vfio_bar_plan_in in = { .bar_size = 64 * KiB, .region_size = 40 * KiB,
                                   .mmap = true, .page_size = PAGE };
    plan(&in);
    cr_assert_eq(npc, 2);
    expect(0, 0, 40 * KiB, VFIO_PIECE_DIRECT);
    expect(1, 40 * KiB, 24 * KiB, VFIO_PIECE_TRAP);
}

Test(vfio_bar, many_gib_bar_with_quirk_window)
{
    struct vfio_bar_plan_in in = { .bar_size = 32 * GiB, .region_size = 32 * GiB,
                                   .mmap = true, .page_size = PAGE, .nr_traps = 1,
                                   .traps = { { 0x88000, 0x1000 } } };
    plan(&in);
    cr_assert_eq(npc, 3);
    expect(1, 0x88000, PAGE, VFIO_PIECE_TRAP);
    expect(2, 0x89000, 32 * GiB - 0x89000, VFIO_PIECE_DIRECT);
}

Test(vfio_bar, huge_pages_widen_traps)
{
    struct vfio_bar_plan_in in = { .bar_size = 16 * MiB, .region_size = 16 * MiB,
                                   .mmap = true, .page_size = 64 * KiB, .nr_traps = 1,
                                   .traps = { { 0x12000, 0x100 } } };
    plan(&in);
    expect(1, 0x10000, 64 * KiB, VFIO_PIECE_TRAP);
}

Test(vfio_bar, bad_input_refused)
{
    struct vfio_bar_plan_in in = { .bar_size = 0, .region_size = 0, .page_size = PAGE };
    cr_assert_eq(vfio_bar_plan(&in, pc, VFIO_BAR_MAX_PIECES, &npc), -EINVAL);
    in.bar_size = 4096;
    in.page_size = 3000;
    cr_assert_eq(vfio_bar_plan(&in, pc, VFIO_BAR_MAX_PIECES, &npc), -EINVAL);
    in.page_size = PAGE;
    in.nr_areas = VFIO_BAR_MAX_AREAS + 1;
    cr_assert_eq(vfio_bar_plan(&in, pc, VFIO_BAR_MAX_PIECES, &npc), -EINVAL);
    /* a trap reaching past 2^64 */
    struct vfio_bar_plan_in w = { .bar_size = 1 * MiB, .region_size = 1 * MiB, .mmap = true,
                                  .page_size = PAGE, .nr_traps = 1,
                                  .traps = { { 0x80000, UINT64_MAX } } };
    plan(&w);
    expect(0, 0, 0x80000, VFIO_PIECE_DIRECT);
    expect(1, 0x80000, 1 * MiB - 0x80000, VFIO_PIECE_TRAP);
    /* room for one piece only */
    struct vfio_bar_plan_in two = { .bar_size = 1 * MiB, .region_size = 1 * MiB, .mmap = true,
                                    .page_size = PAGE, .nr_traps = 1, .traps = { { 0x1000, 8 } } };
    cr_assert_eq(vfio_bar_plan(&two, pc, 1, &npc), -E2BIG);
}

/* --- the mapper, with recording callbacks */
struct call { char what; unsigned bar, piece; uint64_t gpa, len; };
static struct call calls[64];
static unsigned ncalls;
static int fail_at_gpa_piece = -1;

static int rec_map_direct(void *o, unsigned bar, unsigned piece, uint64_t gpa, uint64_t len, void *hva)
{
    (void)o; (void)hva;
    if ((int)piece == fail_at_gpa_piece)
        return -EEXIST;
    calls[ncalls++] = (struct call){ 'M', bar, piece, gpa, len };
    return 0;
}
static void rec_unmap_direct(void *o, unsigned bar, unsigned piece)
{
    (void)o;
    calls[ncalls++] = (struct call){ 'm', bar, piece, 0, 0 };
}
static int rec_map_trap(void *o, unsigned bar, unsigned piece, uint64_t gpa, uint64_t len)
{
    (void)o;
    if ((int)piece == fail_at_gpa_piece)
        return -EEXIST;
    calls[ncalls++] = (struct call){ 'T', bar, piece, gpa, len };
    return 0;
}
static void rec_unmap_trap(void *o, unsigned bar, unsigned piece, uint64_t gpa)
{
    (void)o;
    calls[ncalls++] = (struct call){ 't', bar, piece, gpa, 0 };
}
static const struct vfio_bar_ops rec_ops = { rec_map_direct, rec_unmap_direct, rec_map_trap, rec_unmap_trap };

static struct vfio_bar_map three_piece_bar(void)
{
    struct vfio_bar_map b = { .index = 0 };
    struct vfio_bar_plan_in in = { .bar_size = 16 * MiB, .region_size = 16 * MiB,
                                   .mmap = true, .page_size = PAGE, .nr_traps = 1,
                                   .traps = { { 0x2000, 0x100 } } };
    cr_assert_eq(vfio_bar_plan(&in, b.pieces, VFIO_BAR_MAX_PIECES, &b.nr_pieces), 0);
    cr_assert_eq(b.nr_pieces, 3);
    ncalls = 0;
    fail_at_gpa_piece = -1;
    return b;
}

Test(vfio_bar, decisions)
{
    struct vfio_bar_map b = three_piece_bar();
    cr_assert_eq(vfio_bar_decide(&b, false, 0), VFIO_BAR_KEEP);
    cr_assert_eq(vfio_bar_decide(&b, true, 0xc0000000), VFIO_BAR_MAP);
    b.mapped = true;
    b.gpa = 0xc0000000;
    cr_assert_eq(vfio_bar_decide(&b, true, 0xc0000000), VFIO_BAR_KEEP);
    cr_assert_eq(vfio_bar_decide(&b, true, 0xd0000000), VFIO_BAR_MOVE);
    cr_assert_eq(vfio_bar_decide(&b, false, 0xc0000000), VFIO_BAR_UNMAP);
}

Test(vfio_bar, map_move_unmap)
{
    struct vfio_bar_map b = three_piece_bar();
    cr_assert_eq(vfio_bar_update(&b, true, 0xc0000000, &rec_ops, NULL), 0);
    cr_assert_eq(ncalls, 3);
    cr_assert_eq(calls[0].what, 'M');
    cr_assert_eq(calls[0].gpa, 0xc0000000);
    cr_assert_eq(calls[1].what, 'T');
    cr_assert_eq(calls[1].gpa, 0xc0002000);
    cr_assert_eq(calls[1].len, PAGE);
    cr_assert_eq(calls[2].what, 'M');
    cr_assert_eq(calls[2].gpa, 0xc0003000);
    ncalls = 0;
    cr_assert_eq(vfio_bar_update(&b, true, 0xc0000000, &rec_ops, NULL), 0);
    cr_assert_eq(ncalls, 0, "same place: nothing to do");
    cr_assert_eq(vfio_bar_update(&b, true, 0xd0000000, &rec_ops, NULL), 0);
    cr_assert_eq(ncalls, 6, "move: unmap three, map three");
    cr_assert_eq(calls[1].what, 't');
    cr_assert_eq(calls[1].gpa, 0xc0002000, "trap removed at the old address");
    cr_assert_eq(calls[4].gpa, 0xd0002000);
    ncalls = 0;
    cr_assert_eq(vfio_bar_update(&b, false, 0, &rec_ops, NULL), 0);
    cr_assert_eq(ncalls, 3);
    cr_assert_not(b.mapped);
}

Test(vfio_bar, failed_piece_undoes_the_others)
{
    struct vfio_bar_map b = three_piece_bar();
    fail_at_gpa_piece = 2;
    cr_assert_eq(vfio_bar_update(&b, true, 0xc0000000, &rec_ops, NULL), -EEXIST);
    cr_assert_not(b.mapped);
    cr_assert_eq(ncalls, 4, "two mapped, two undone");
    cr_assert_eq(calls[2].what, 'm');
    cr_assert_eq(calls[3].what, 't');
    fail_at_gpa_piece = -1;
    ncalls = 0;
    cr_assert_eq(vfio_bar_update(&b, true, 0xc0000000, &rec_ops, NULL), 0, "a later try maps");
    cr_assert_eq(ncalls, 3);
}

/* --- guest sequences through the config layer into the mapper */
static uint8_t fake_cfg[4096];
static int fk_read(void *o, uint32_t off, void *buf, uint32_t len)
{
    (void)o;
    memcpy(buf, fake_cfg + off, len);
    return 0;
}
static int fk_write(void *o, uint32_t off, const void *buf, uint32_t len)
{
    (void)o;
    memcpy(fake_cfg + off, buf, len);
    return 0;
}

static struct vfio_config cfg;
static struct vfio_bar_map bm[VFIO_NR_BARS];

static void guest_cfg_write(uint32_t off, unsigned len, uint32_t v)
{
    int ev = vfio_config_write(&cfg, off, len, v);
    cr_assert_geq(ev, 0);
    /* what vfio_pci does after a config write */
    for (unsigned i = 0; i < VFIO_NR_BARS; i++) {
        if (!(ev & (VFIO_CFG_EV_DECODE | (VFIO_CFG_EV_BAR0 << i))) || !bm[i].nr_pieces)
            continue;
        uint64_t gpa = 0;
        bool want = vfio_config_bar_decoded(&cfg, i, &gpa);
        vfio_bar_update(&bm[i], want, gpa, &rec_ops, NULL);
    }
}

static void setup_device(void)
{
    memset(fake_cfg, 0, sizeof(fake_cfg));
    fake_cfg[0] = 0x34; fake_cfg[1] = 0x12;
    fake_cfg[PCI_BASE_ADDRESS_0] = 0x00;                 /* 32-bit */
    fake_cfg[PCI_BASE_ADDRESS_2] = 0x0c;                 /* 64-bit prefetchable */
    struct vfio_config_dev d = { fk_read, fk_write, NULL };
    struct vfio_config_opts o = { .bar_region_size = { 16 * MiB, 0, 8 * GiB },
                                  .device_cfg_size = 256 };
    char err[128];
    cr_assert_eq(vfio_config_init(&cfg, &d, &o, err, sizeof(err)), 0, "%s", err);
    memset(bm, 0, sizeof(bm));
    for (unsigned i = 0; i < VFIO_NR_BARS; i++) {
        if (cfg.bars[i].type != VFIO_BAR_MEM32 && cfg.bars[i].type != VFIO_BAR_MEM64)
            continue;
        struct vfio_bar_plan_in in = { .bar_size = cfg.bars[i].size,
                                       .region_size = cfg.bars[i].size, .mmap = true,
                                       .page_size = PAGE };
        bm[i].index = i;
        cr_assert_eq(vfio_bar_plan(&in, bm[i].pieces, VFIO_BAR_MAX_PIECES, &bm[i].nr_pieces), 0);
    }
    ncalls = 0;
    fail_at_gpa_piece = -1;
}

Test(vfio_bar, firmware_sizing_then_placement)
{
    setup_device();
    /* What OVMF/Linux do: decode off, size each BAR, place, decode on. */
    guest_cfg_write(PCI_COMMAND, 2, 0);
    guest_cfg_write(PCI_BASE_ADDRESS_0, 4, 0xffffffff);
    uint32_t v;
    vfio_config_read(&cfg, PCI_BASE_ADDRESS_0, 4, &v);
    cr_assert_eq(v, 0xff000000);
    guest_cfg_write(PCI_BASE_ADDRESS_2, 4, 0xffffffff);
    guest_cfg_write(PCI_BASE_ADDRESS_3, 4, 0xffffffff);
    vfio_config_read(&cfg, PCI_BASE_ADDRESS_2, 4, &v);
    cr_assert_eq(v, 0x0000000c);
    vfio_config_read(&cfg, PCI_BASE_ADDRESS_3, 4, &v);
    cr_assert_eq(v, 0xfffffffe, "8 GiB");
    guest_cfg_write(PCI_BASE_ADDRESS_0, 4, 0xc1000000);
    guest_cfg_write(PCI_BASE_ADDRESS_2, 4, 0x0000000c);
    guest_cfg_write(PCI_BASE_ADDRESS_3, 4, 0x00000008);     /* 32 GiB */
    cr_assert_eq(ncalls, 0, "nothing mapped while decode is off");
    guest_cfg_write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    cr_assert_eq(ncalls, 2);
    cr_assert_eq(calls[0].gpa, 0xc1000000);
    cr_assert_eq(calls[0].len, 16 * MiB);
    cr_assert_eq(calls[1].gpa, 32 * GiB);
    cr_assert_eq(calls[1].len, 8 * GiB);
    cr_assert(bm[0].mapped && bm[2].mapped);
}

Test(vfio_bar, guest_moves_a_bar_with_decode_on)
{
    setup_device();
    guest_cfg_write(PCI_BASE_ADDRESS_0, 4, 0xc1000000);
    guest_cfg_write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cr_assert_eq(ncalls, 1);
    ncalls = 0;
    guest_cfg_write(PCI_BASE_ADDRESS_0, 4, 0xd2000000);
    cr_assert_eq(ncalls, 2, "unmap at the old place, map at the new");
    cr_assert_eq(calls[0].what, 'm');
    cr_assert_eq(calls[1].what, 'M');
    cr_assert_eq(calls[1].gpa, 0xd2000000);
    /* a 64-bit BAR moved one half at a time follows each step */
    ncalls = 0;
    guest_cfg_write(PCI_BASE_ADDRESS_2, 4, 0x0000000c);
    guest_cfg_write(PCI_BASE_ADDRESS_3, 4, 0x00000004);     /* 16 GiB */
    cr_assert_eq(ncalls, 1);
    cr_assert_eq(calls[0].gpa, 16 * GiB);
    ncalls = 0;
    guest_cfg_write(PCI_BASE_ADDRESS_3, 4, 0x00000006);     /* 24 GiB */
    cr_assert_eq(ncalls, 2);
    cr_assert_eq(calls[1].gpa, 24 * GiB);
    /* decode off unmaps both */
    ncalls = 0;
    guest_cfg_write(PCI_COMMAND, 2, 0);
    cr_assert_eq(ncalls, 2);
    cr_assert_not(bm[0].mapped || bm[2].mapped);
}

/* --- VFIO region info capability chains (vfio/device.c), as the kernel
 * lays them out after struct vfio_region_info. */
#include "vfio/device.h"

struct caps_buf {
    struct vfio_region_info info;
    uint8_t rest[256];
} __attribute__((packed));

/* A sparse-mmap capability at `at` claiming nr areas, of which the first
 * ncopy are written from areas. */
static size_t add_sparse_n(struct caps_buf *b, uint32_t at, uint32_t next, uint32_t nr,
                           const struct vfio_region_sparse_mmap_area *areas, uint32_t ncopy)
{
    struct vfio_region_info_cap_sparse_mmap sm = {
        .header = { .id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1, .next = next },
        .nr_areas = nr,
    };
    uint8_t *p = (uint8_t *)b + at;
    memcpy(p, &sm, sizeof(sm));
    memcpy(p + sizeof(sm), areas, ncopy * sizeof(*areas));
    return at + sizeof(sm) + nr * sizeof(*areas);
}

static size_t add_sparse(struct caps_buf *b, uint32_t at, uint32_t next, uint32_t nr,
                         const struct vfio_region_sparse_mmap_area *areas)
{
    return add_sparse_n(b, at, next, nr, areas, nr);
}

static void add_msix_mappable(struct caps_buf *b, uint32_t at, uint32_t next)
{
    struct vfio_info_cap_header h = { .id = VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, .version = 1,
                                      .next = next };
    memcpy((uint8_t *)b + at, &h, sizeof(h));
}

Test(vfio_bar, region_caps_sparse_and_msix_mappable)
{
    struct caps_buf b;
    memset(&b, 0, sizeof(b));
    const struct vfio_region_sparse_mmap_area areas[2] = { { 0, 0x2000 }, { 0x3000, 0xd000 } };
    uint32_t first = sizeof(b.info);
    size_t end = add_sparse(&b, first, 0, 2, areas);
    add_msix_mappable(&b, (uint32_t)end, 0);
    /* link the sparse cap to the MSI-X one */
    struct vfio_info_cap_header h;
    memcpy(&h, (uint8_t *)&b + first, sizeof(h));
    h.next = (uint32_t)end;
    memcpy((uint8_t *)&b + first, &h, sizeof(h));
    b.info = (struct vfio_region_info){ .argsz = (uint32_t)(end + sizeof(h)),
                                        .flags = VFIO_REGION_INFO_FLAG_CAPS, .cap_offset = first };
    struct vfio_region r = { 0 };
    cr_assert_eq(vfio_region_parse_caps(&b, sizeof(b), &r), 0);
    cr_assert(r.sparse);
    cr_assert_eq(r.nr_areas, 2);
    cr_assert_eq(r.areas[1].off, 0x3000);
    cr_assert_eq(r.areas[1].len, 0xd000);
    cr_assert(r.msix_mappable);
}

Test(vfio_bar, region_caps_malformed)
{
    struct caps_buf b;
    memset(&b, 0, sizeof(b));
    uint32_t first = sizeof(b.info);
    const struct vfio_region_sparse_mmap_area a = { 0, 0x1000 };
    struct vfio_region r;
    /* more areas than the buffer holds */
    add_sparse_n(&b, first, 0, 1000, &a, 1);
    b.info = (struct vfio_region_info){ .argsz = sizeof(b), .flags = VFIO_REGION_INFO_FLAG_CAPS,
                                        .cap_offset = first };
    memset(&r, 0, sizeof(r));
    cr_assert_eq(vfio_region_parse_caps(&b, sizeof(b), &r), -EINVAL);
    /* a chain that points back to itself */
    add_sparse(&b, first, first, 1, &a);
    memset(&r, 0, sizeof(r));
    cr_assert_eq(vfio_region_parse_caps(&b, sizeof(b), &r), -EINVAL);
    cr_assert_eq(r.nr_areas, 1, "what was read before the loop stays");
    /* a cap offset past the end, or inside the fixed part */
    b.info.cap_offset = sizeof(b) - 2;
    cr_assert_eq(vfio_region_parse_caps(&b, sizeof(b), &r), -EINVAL);
    b.info.cap_offset = 4;
    cr_assert_eq(vfio_region_parse_caps(&b, sizeof(b), &r), -EINVAL);
    /* argsz shorter than the buffer bounds the walk */
    add_sparse(&b, first, 0, 1, &a);
    b.info.cap_offset = first;
    b.info.argsz = first + 4;
    cr_assert_eq(vfio_region_parse_caps(&b, sizeof(b), &r), -EINVAL);
    /* no caps flag: nothing parsed */
    b.info.flags = 0;
    memset(&r, 0, sizeof(r));
    cr_assert_eq(vfio_region_parse_caps(&b, sizeof(b), &r), 0);
    cr_assert_not(r.sparse);
    cr_assert_eq(vfio_region_parse_caps(&b, 8, &r), -EINVAL, "shorter than the fixed part");
}

Test(vfio_bar, region_caps_many_areas_truncated)
{
    static struct {
        struct vfio_region_info info;
        uint8_t rest[16 + 40 * 16];
    } __attribute__((packed)) big;
    memset(&big, 0, sizeof(big));
    struct vfio_region_sparse_mmap_area areas[40];
    for (unsigned i = 0; i < 40; i++)
        areas[i] = (struct vfio_region_sparse_mmap_area){ i * 0x2000ull, 0x1000 };
    uint32_t first = sizeof(big.info);
    add_sparse((struct caps_buf *)&big, first, 0, 40, areas);
    big.info = (struct vfio_region_info){ .argsz = sizeof(big), .flags = VFIO_REGION_INFO_FLAG_CAPS,
                                          .cap_offset = first };
    struct vfio_region r = { 0 };
    cr_assert_eq(vfio_region_parse_caps(&big, sizeof(big), &r), 0);
    cr_assert_eq(r.nr_areas, VFIO_BAR_MAX_AREAS);
    cr_assert(r.areas_truncated, "the rest stays trapped");
}
