/* Config-space virtualization of a passed-through function: the table of
 * emulated and passed-through bits is in vfio/config.h. */
#include "vfio/config.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmm/log.h"

#define COMP "vfio-config"

/* Bounds of the standard capability area and of extended capabilities. */
#define STD_CAP_FIRST   0x40u
#define EXT_CAP_FIRST   0x100u
#define MAX_STD_CAPS    48u    /* (256 - 64) / 4: more means a loop */
#define MAX_EXT_CAPS    960u   /* (4096 - 256) / 4 */

/* Lengths of the capabilities this layer emulates or edits. */
#define MSIX_CAP_LEN    12u
#define PCIE_CAP_LEN_V1 0x24u
#define PCIE_CAP_LEN_V2 0x3Cu

/* Link capabilities / status we show for an integrated endpoint moved
 * behind our root port: 2.5 GT/s, x1 (PCIe 5.0 §7.5.3.6, §7.5.3.8). */
#define LINK_SPEED_2_5GT   0x1u
#define LINK_WIDTH_X1      (0x1u << 4)

static void set_err(char *err, unsigned errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, unsigned errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint16_t le16_at(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32_at(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Emulate n bytes at off: value from v (little-endian), guest-writable bits
 * from w (bytes past the fourth: read-only zeros). Offsets are always inside the 4 KiB arrays here: callers check. */
static void emulate(struct vfio_config *cfg, uint32_t off, unsigned n, uint32_t v, uint32_t w)
{
    for (unsigned i = 0; i < n && off + i < VFIO_CFG_SPACE_SIZE; i++) {
        /* bytes past the fourth are emulated as read-only zeros */
        cfg->emu[off + i] = i < 4 ? (uint8_t)(v >> (8 * i)) : 0;
        cfg->emask[off + i] = 0xff;
        cfg->wmask[off + i] = i < 4 ? (uint8_t)(w >> (8 * i)) : 0;
    }
}

/* Emulate only the bits in mask of the byte at off (read-only). */
static void emulate_bits(struct vfio_config *cfg, uint32_t off, uint8_t mask, uint8_t v)
{
    cfg->emu[off] = (uint8_t)((cfg->emu[off] & ~mask) | (v & mask));
    cfg->emask[off] |= mask;
    cfg->wmask[off] &= (uint8_t)~mask;
}

static bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

static uint64_t pow2_ceil(uint64_t v)
{
    uint64_t p = 1;
    while (p < v && p)
        p <<= 1;
    return p;
}

int vfio_bar_decode(unsigned index, uint32_t lo, uint64_t region_size,
                    struct vfio_bar_info *out)
{
    memset(out, 0, sizeof(*out));
    if (index >= VFIO_NR_BARS)
        return -EINVAL;
    if (!region_size)
        return 0;                       /* unimplemented BAR */
    uint64_t size = pow2_ceil(region_size);
    if (!size)
        return -EINVAL;                 /* larger than 2^63 */
    if (lo & PCI_BASE_ADDRESS_SPACE_IO) {
        /* I/O BARs decode at most 256 bytes (PCI 3.0 §6.2.5.1) and live in
         * the 64 KiB x86 port space. */
        if (size > 0x10000)
            return -EINVAL;
        out->type = VFIO_BAR_IO;
        out->size = size < 4 ? 4 : size;
        return 0;
    }
    switch (lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) {
    case PCI_BASE_ADDRESS_MEM_TYPE_32:
    case PCI_BASE_ADDRESS_MEM_TYPE_1M:
        if (size > 0x80000000ULL)
            return -EINVAL;
        out->type = VFIO_BAR_MEM32;
        break;
    case PCI_BASE_ADDRESS_MEM_TYPE_64:
        if (index == VFIO_NR_BARS - 1)
            return -EINVAL;             /* no dword left for the upper half */
        out->type = VFIO_BAR_MEM64;
        break;
    default:
        return -EINVAL;                 /* reserved type 11b */
    }
    out->prefetch = !!(lo & PCI_BASE_ADDRESS_MEM_PREFETCH);
    out->size = size < 16 ? 16 : size;
    return 0;
}

/* Guest-visible flag bits of a BAR (the low bits of its dword). */
static uint32_t bar_flags(const struct vfio_bar_info *b)
{
    switch (b->type) {
    case VFIO_BAR_IO:    return PCI_BASE_ADDRESS_SPACE_IO;
    case VFIO_BAR_MEM32: return b->prefetch ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0;
    case VFIO_BAR_MEM64: return PCI_BASE_ADDRESS_MEM_TYPE_64 |
                                (b->prefetch ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
    default:             return 0;
    }
}

static void setup_bars(struct vfio_config *cfg)
{
    for (unsigned i = 0; i < VFIO_NR_BARS; i++) {
        const struct vfio_bar_info *b = &cfg->bars[i];
        uint32_t off = PCI_BASE_ADDRESS_0 + 4 * i;
        uint64_t mask = ~(b->size - 1);
        switch (b->type) {
        case VFIO_BAR_IO:
            emulate(cfg, off, 4, bar_flags(b), (uint32_t)mask & ~3u);
            break;
        case VFIO_BAR_MEM32:
            emulate(cfg, off, 4, bar_flags(b), (uint32_t)mask & ~0xFu);
            break;
        case VFIO_BAR_MEM64:
            emulate(cfg, off, 4, bar_flags(b), (uint32_t)mask & ~0xFu);
            break;
        case VFIO_BAR_MEM64_HI:
            emulate(cfg, off, 4, 0, (uint32_t)(~(cfg->bars[i - 1].size - 1) >> 32));
            break;
        default:
            emulate(cfg, off, 4, 0, 0);
            break;
        }
    }
}

/* Standard capabilities the guest sees (the rest are hidden). */
static bool std_cap_kept(uint8_t id)
{
    switch (id) {
    case PCI_CAP_ID_PM:
    case PCI_CAP_ID_VPD:
    case PCI_CAP_ID_MSI:
    case PCI_CAP_ID_VNDR:
    case PCI_CAP_ID_EXP:
    case PCI_CAP_ID_MSIX:
    case PCI_CAP_ID_AF:
        return true;
    default:
        return false;
    }
}

static bool ext_cap_kept(uint16_t id)
{
    switch (id) {
    case PCI_EXT_CAP_ID_DSN:
    case PCI_EXT_CAP_ID_PWR:
    case PCI_EXT_CAP_ID_VNDR:
    case PCI_EXT_CAP_ID_LTR:
        return true;
    default:
        return false;
    }
}

static unsigned msi_cap_len(uint16_t flags)
{
    unsigned len = (flags & PCI_MSI_FLAGS_64BIT) ? 14 : 10;
    if (flags & PCI_MSI_FLAGS_MASKBIT)
        len += 10;       /* reserved word, mask and pending dwords */
    return len;
}

/* Offsets (relative to the MSI capability) of its registers. */
static unsigned msi_data_off(const struct vfio_config *cfg)
{
    return (cfg->emu[cfg->msi_cap + PCI_MSI_FLAGS] & PCI_MSI_FLAGS_64BIT) ? 0x0C : 0x08;
}
static unsigned msi_mask_off(const struct vfio_config *cfg) { return msi_data_off(cfg) + 4; }
static unsigned msi_pending_off(const struct vfio_config *cfg) { return msi_data_off(cfg) + 8; }

static unsigned log2_u(unsigned v)
{
    unsigned l = 0;
    while (v > 1) {
        v >>= 1;
        l++;
    }
    return l;
}

/* MSI (PCI 3.0 §6.8.1): whole capability emulated. */
static void setup_msi(struct vfio_config *cfg, const uint8_t *dev, uint8_t off, unsigned vfio_vectors)
{
    uint16_t flags = le16_at(dev + off + PCI_MSI_FLAGS);
    unsigned mmc = (flags & PCI_MSI_FLAGS_QMASK) >> 1;
    if (mmc > 5)
        mmc = 5;                       /* 110b, 111b reserved: at most 32 */
    unsigned max = 1u << mmc;
    unsigned vf = 1;
    while (vf * 2 <= vfio_vectors && vf * 2 <= 32)
        vf *= 2;
    if (vf < max)
        max = vf;
    cfg->msi_cap = off;
    cfg->msi_cap_len = (uint8_t)msi_cap_len(flags);
    cfg->msi_max_vectors = max;

    uint16_t shown = (uint16_t)((flags & (PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT)) |
                                (log2_u(max) << 1));
    emulate(cfg, off, cfg->msi_cap_len, 0, 0);
    cfg->emu[off] = PCI_CAP_ID_MSI;
    emulate(cfg, off + PCI_MSI_FLAGS, 2, shown, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    emulate(cfg, off + PCI_MSI_ADDRESS_LO, 4, 0, 0xFFFFFFFCu);
    if (flags & PCI_MSI_FLAGS_64BIT)
        emulate(cfg, off + PCI_MSI_ADDRESS_HI, 4, 0, 0xFFFFFFFFu);
    unsigned data = msi_data_off(cfg);
    emulate(cfg, off + data, 2, 0, 0xFFFF);
    if (flags & PCI_MSI_FLAGS_MASKBIT) {
        uint32_t vmask = max >= 32 ? 0xFFFFFFFFu : (1u << max) - 1;
        emulate(cfg, off + msi_mask_off(cfg), 4, 0, vmask);
    }
}

/* MSI-X (PCI 3.0 §6.8.2): enable and function mask are the guest's; table
 * size and locations are the device's. Returns false when the capability
 * points outside the BARs (then it is hidden). */
static bool setup_msix(struct vfio_config *cfg, const uint8_t *dev, uint8_t off, unsigned vfio_vectors)
{
    uint16_t ctrl = le16_at(dev + off + PCI_MSIX_FLAGS);
    uint32_t table = le32_at(dev + off + PCI_MSIX_TABLE);
    uint32_t pba = le32_at(dev + off + PCI_MSIX_PBA);
    unsigned n = (ctrl & PCI_MSIX_FLAGS_QSIZE) + 1u;
    if (vfio_vectors < n)
        n = vfio_vectors;
    if (!n)
        return false;
    struct pci_msix_cap_info m = {
        .nr_vectors = n,
        .table_bar = table & PCI_MSIX_TABLE_BIR,
        .table_offset = table & PCI_MSIX_TABLE_OFFSET,
        .pba_bar = pba & PCI_MSIX_PBA_BIR,
        .pba_offset = pba & PCI_MSIX_PBA_OFFSET,
    };
    if (m.table_bar >= VFIO_NR_BARS || m.pba_bar >= VFIO_NR_BARS)
        return false;
    const struct vfio_bar_info *tb = &cfg->bars[m.table_bar], *pb = &cfg->bars[m.pba_bar];
    if ((tb->type != VFIO_BAR_MEM32 && tb->type != VFIO_BAR_MEM64) ||
        (pb->type != VFIO_BAR_MEM32 && pb->type != VFIO_BAR_MEM64))
        return false;
    if ((uint64_t)m.table_offset + (uint64_t)n * 16 > tb->size ||
        (uint64_t)m.pba_offset + ((n + 63) / 64) * 8ull > pb->size)
        return false;
    cfg->msix_cap = off;
    cfg->msix = m;
    emulate(cfg, off, MSIX_CAP_LEN, 0, 0);
    cfg->emu[off] = PCI_CAP_ID_MSIX;
    emulate(cfg, off + PCI_MSIX_FLAGS, 2, n - 1,
            PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    emulate(cfg, off + PCI_MSIX_TABLE, 4, table, 0);
    emulate(cfg, off + PCI_MSIX_PBA, 4, pba, 0);
    return true;
}

/* PCI Express capability: the device/port type and the link registers
 * follow the guest topology (see the table in vfio/config.h). */
static int setup_pcie(struct vfio_config *cfg, const uint8_t *dev, uint8_t off,
                      bool behind_root_port, char *err, unsigned errlen)
{
    uint16_t flags = le16_at(dev + off + PCI_EXP_FLAGS);
    uint8_t type = (uint8_t)((flags & PCI_EXP_FLAGS_TYPE) >> 4);
    unsigned len = (flags & PCI_EXP_FLAGS_VERS) >= 2 ? PCIE_CAP_LEN_V2 : PCIE_CAP_LEN_V1;
    if (off + len > VFIO_CFG_LEGACY_SIZE)
        len = VFIO_CFG_LEGACY_SIZE - off;
    if (type != PCI_EXP_TYPE_ENDPOINT && type != PCI_EXP_TYPE_LEG_END &&
        type != PCI_EXP_TYPE_RC_END) {
        set_err(err, errlen, "its PCI Express device/port type is %u; only endpoints "
                "(types 0, 1 and 9) can be passed through", type);
        return -EINVAL;
    }
    cfg->pcie_cap = off;
    if (behind_root_port && type == PCI_EXP_TYPE_RC_END) {
        type = PCI_EXP_TYPE_ENDPOINT;
        if (len >= PCI_EXP_LNKSTA + 2) {
            emulate(cfg, off + PCI_EXP_LNKCAP, 4, LINK_SPEED_2_5GT | LINK_WIDTH_X1, 0);
            emulate(cfg, off + PCI_EXP_LNKCTL, 2, 0, 0);
            emulate(cfg, off + PCI_EXP_LNKSTA, 2, LINK_SPEED_2_5GT | LINK_WIDTH_X1, 0);
        }
    } else if (!behind_root_port && type == PCI_EXP_TYPE_ENDPOINT) {
        /* On a root bus there is no link to describe. */
        type = PCI_EXP_TYPE_RC_END;
        if (len >= PCI_EXP_LNKSTA + 2) {
            emulate(cfg, off + PCI_EXP_LNKCAP, 4, 0, 0);
            emulate(cfg, off + PCI_EXP_LNKCTL, 2, 0, 0);
            emulate(cfg, off + PCI_EXP_LNKSTA, 2, 0, 0);
        }
        if (len >= PCI_EXP_LNKSTA2 + 2) {
            emulate(cfg, off + PCI_EXP_LNKCAP2, 4, 0, 0);
            emulate(cfg, off + PCI_EXP_LNKCTL2, 2, 0, 0);
            emulate(cfg, off + PCI_EXP_LNKSTA2, 2, 0, 0);
        }
    }
    cfg->pcie_type = type;
    emulate_bits(cfg, off + PCI_EXP_FLAGS, PCI_EXP_FLAGS_TYPE, (uint8_t)(type << 4));
    return 0;
}

struct cap_ent {
    uint16_t off;
    uint16_t id;
    bool kept;
};

/* Walk the standard list, decide what is kept, emulate the links. */
static int setup_std_caps(struct vfio_config *cfg, const uint8_t *dev,
                          const struct vfio_config_opts *opts, char *err, unsigned errlen)
{
    struct cap_ent caps[MAX_STD_CAPS];
    unsigned nr = 0;
    uint8_t seen[VFIO_CFG_LEGACY_SIZE / 4] = {0};

    emulate(cfg, PCI_CAPABILITY_LIST, 1, 0, 0);
    if (le16_at(dev + PCI_STATUS) & PCI_STATUS_CAP_LIST) {
        uint8_t pos = dev[PCI_CAPABILITY_LIST] & 0xFC;
        while (pos >= STD_CAP_FIRST && nr < MAX_STD_CAPS && !seen[pos / 4]) {
            seen[pos / 4] = 1;
            caps[nr].off = pos;
            caps[nr].id = dev[pos];
            caps[nr].kept = false;
            nr++;
            pos = dev[pos + PCI_CAP_LIST_NEXT] & 0xFC;
        }
    }

    bool have_msi = false, have_msix = false, have_pcie = false;
    for (unsigned i = 0; i < nr; i++) {
        struct cap_ent *c = &caps[i];
        /* Hidden caps read as 0: header first, kept ones below override. */
        emulate(cfg, c->off, 2, 0, 0);
        if (!std_cap_kept((uint8_t)c->id))
            continue;
        if (c->id == PCI_CAP_ID_MSI) {
            uint16_t f = le16_at(dev + c->off + PCI_MSI_FLAGS);
            if (have_msi || !opts->msi_vectors || c->off + msi_cap_len(f) > VFIO_CFG_LEGACY_SIZE)
                continue;
            have_msi = c->kept = true;
        } else if (c->id == PCI_CAP_ID_MSIX) {
            if (have_msix || !opts->msix_vectors || c->off + MSIX_CAP_LEN > VFIO_CFG_LEGACY_SIZE)
                continue;
            have_msix = c->kept = true;
        } else if (c->id == PCI_CAP_ID_EXP) {
            if (have_pcie || c->off + PCI_EXP_FLAGS + 2u > VFIO_CFG_LEGACY_SIZE)
                continue;
            have_pcie = c->kept = true;
        } else if (c->id == PCI_CAP_ID_PM) {
            if (cfg->pm_cap)
                continue;
            cfg->pm_cap = (uint8_t)c->off;
            c->kept = true;
        } else {
            c->kept = true;
        }
    }
    /* Contents of the emulated capabilities. */
    for (unsigned i = 0; i < nr; i++) {
        struct cap_ent *c = &caps[i];
        if (!c->kept)
            continue;
        if (c->id == PCI_CAP_ID_MSI) {
            setup_msi(cfg, dev, (uint8_t)c->off, opts->msi_vectors);
        } else if (c->id == PCI_CAP_ID_MSIX) {
            if (!setup_msix(cfg, dev, (uint8_t)c->off, opts->msix_vectors)) {
                log_warn(COMP, "MSI-X capability at 0x%x points outside the device's memory "
                         "BARs; hiding it", c->off);
                c->kept = false;
            }
        } else if (c->id == PCI_CAP_ID_EXP) {
            int r = setup_pcie(cfg, dev, (uint8_t)c->off, opts->behind_root_port, err, errlen);
            if (r < 0)
                return r;
        }
    }
    /* Links: the pointer at 0x34 and each kept capability's next byte. */
    uint32_t link = PCI_CAPABILITY_LIST;
    bool any = false;
    for (unsigned i = 0; i < nr; i++) {
        if (!caps[i].kept)
            continue;
        emulate(cfg, caps[i].off, 1, (uint8_t)caps[i].id, 0);
        emulate(cfg, link, 1, caps[i].off, 0);
        link = caps[i].off + PCI_CAP_LIST_NEXT;
        any = true;
    }
    emulate(cfg, link, 1, 0, 0);
    emulate_bits(cfg, PCI_STATUS, PCI_STATUS_CAP_LIST, any ? PCI_STATUS_CAP_LIST : 0);
    return 0;
}

static void setup_ext_caps(struct vfio_config *cfg, const uint8_t *dev)
{
    struct cap_ent caps[64];
    unsigned nr = 0;
    static const unsigned max = sizeof(caps) / sizeof(caps[0]);
    uint8_t seen[VFIO_CFG_SPACE_SIZE / 4] = {0};
    uint32_t pos = EXT_CAP_FIRST;
    while (pos >= EXT_CAP_FIRST && pos + 4 <= VFIO_CFG_SPACE_SIZE && nr < max && !seen[pos / 4]) {
        uint32_t hdr = le32_at(dev + pos);
        if (hdr == 0 || hdr == 0xFFFFFFFFu)
            break;
        seen[pos / 4] = 1;
        caps[nr].off = (uint16_t)pos;
        caps[nr].id = (uint16_t)PCI_EXT_CAP_ID(hdr);
        caps[nr].kept = ext_cap_kept(caps[nr].id);
        nr++;
        pos = PCI_EXT_CAP_NEXT(hdr) & ~3u;
    }
    for (unsigned i = 0; i < nr; i++)
        if (!caps[i].kept)
            emulate(cfg, caps[i].off, 4, 0, 0);
    /* The list starts at 0x100 whatever is there: a hidden first capability
     * leaves a header with ID 0 and version 0 that points to the first kept
     * one (or 0, the PCIe 5.0 §7.6.3 "no extended capabilities" header). */
    int prev = -1;
    for (unsigned i = 0; i < nr; i++) {
        if (!caps[i].kept)
            continue;
        if (prev < 0 && caps[i].off != EXT_CAP_FIRST)
            emulate(cfg, EXT_CAP_FIRST, 4, (uint32_t)caps[i].off << 20, 0);
        if (prev >= 0) {
            /* next offset: bits 31:20 of the header (bytes 2 high nibble, 3) */
            uint32_t next = (uint32_t)caps[i].off << 20;
            emulate_bits(cfg, (uint32_t)prev + 2, 0xF0, (uint8_t)(next >> 16));
            emulate(cfg, (uint32_t)prev + 3, 1, (uint8_t)(next >> 24), 0);
        }
        prev = caps[i].off;
    }
    if (prev >= 0) {
        emulate_bits(cfg, (uint32_t)prev + 2, 0xF0, 0);
        emulate(cfg, (uint32_t)prev + 3, 1, 0, 0);
    } else if (nr) {
        emulate(cfg, EXT_CAP_FIRST, 4, 0, 0);
    }
}

int vfio_config_init(struct vfio_config *cfg, const struct vfio_config_dev *dev,
                     const struct vfio_config_opts *opts, char *err, unsigned errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dev = *dev;
    uint8_t buf[VFIO_CFG_SPACE_SIZE];
    memset(buf, 0, sizeof(buf));
    uint32_t dsize = opts->device_cfg_size >= VFIO_CFG_SPACE_SIZE ? VFIO_CFG_SPACE_SIZE
                                                                   : VFIO_CFG_LEGACY_SIZE;
    int r = dev->read(dev->opaque, 0, buf, VFIO_CFG_LEGACY_SIZE);
    if (r < 0) {
        set_err(err, errlen, "cannot read its config space: %s", strerror(-r));
        return r;
    }
    if (dsize > VFIO_CFG_LEGACY_SIZE &&
        dev->read(dev->opaque, VFIO_CFG_LEGACY_SIZE, buf + VFIO_CFG_LEGACY_SIZE,
                  VFIO_CFG_SPACE_SIZE - VFIO_CFG_LEGACY_SIZE) < 0)
        dsize = VFIO_CFG_LEGACY_SIZE;   /* no extended space after all */
    if (le16_at(buf + PCI_VENDOR_ID) == 0xFFFF) {
        set_err(err, errlen, "its config space reads as all ones (device gone or powered off)");
        return -ENODEV;
    }
    uint8_t htype = buf[PCI_HEADER_TYPE] & 0x7F;
    if (htype != PCI_HEADER_TYPE_NORMAL) {
        set_err(err, errlen, "it has config header type %u (a bridge); only endpoints can "
                "be passed through", htype);
        return -EINVAL;
    }

    /* BARs: type bits from the device, sizes from VFIO. */
    for (unsigned i = 0; i < VFIO_NR_BARS; i++) {
        if (i > 0 && cfg->bars[i - 1].type == VFIO_BAR_MEM64) {
            cfg->bars[i].type = VFIO_BAR_MEM64_HI;
            continue;
        }
        uint32_t lo = le32_at(buf + PCI_BASE_ADDRESS_0 + 4 * i);
        r = vfio_bar_decode(i, lo, opts->bar_region_size[i], &cfg->bars[i]);
        if (r < 0) {
            set_err(err, errlen, "BAR%u (register 0x%08x, region size 0x%llx) cannot be "
                    "decoded", i, lo, (unsigned long long)opts->bar_region_size[i]);
            return r;
        }
    }
    if (opts->rom_size && (!is_pow2(opts->rom_size) || opts->rom_size < 2048 ||
                           opts->rom_size > (1ull << 30))) {
        set_err(err, errlen, "ROM size 0x%llx is not a power of two between 2 KiB and 1 GiB",
                (unsigned long long)opts->rom_size);
        return -EINVAL;
    }
    cfg->rom_size = opts->rom_size;

    /* Header (the table in vfio/config.h). */
    emulate_bits(cfg, PCI_HEADER_TYPE, 0x80, opts->multifunction ? 0x80 : 0);
    emulate(cfg, PCI_BIST, 1, 0, 0);
    setup_bars(cfg);
    if (cfg->rom_size)
        emulate(cfg, PCI_ROM_ADDRESS, 4, 0,
                ((uint32_t)~(cfg->rom_size - 1) & PCI_ROM_ADDRESS_MASK) | PCI_ROM_ADDRESS_ENABLE);
    else
        emulate(cfg, PCI_ROM_ADDRESS, 4, 0, 0);
    emulate(cfg, 0x35, 7, 0, 0);        /* reserved 0x35-0x3B */
    emulate(cfg, PCI_INTERRUPT_LINE, 1, 0, 0xFF);
    uint8_t pin = buf[PCI_INTERRUPT_PIN];
    if (!opts->intx)
        pin = 0;
    else if (pin < 1 || pin > 4)
        pin = 1;
    emulate(cfg, PCI_INTERRUPT_PIN, 1, pin, 0);

    r = setup_std_caps(cfg, buf, opts, err, errlen);
    if (r < 0)
        return r;
    /* Extended config space only for PCIe functions (PCIe 5.0 §7.2.2). */
    cfg->size = (dsize > VFIO_CFG_LEGACY_SIZE && cfg->pcie_cap) ? VFIO_CFG_SPACE_SIZE
                                                                : VFIO_CFG_LEGACY_SIZE;
    if (cfg->size == VFIO_CFG_SPACE_SIZE)
        setup_ext_caps(cfg, buf);
    cfg->command = 0;
    memcpy(cfg->emu_reset, cfg->emu, sizeof(cfg->emu));
    return 0;
}

static bool access_ok(uint32_t off, unsigned len)
{
    return (len == 1 || len == 2 || len == 4) && !(off & (len - 1)) &&
           off < VFIO_CFG_SPACE_SIZE && off + len <= VFIO_CFG_SPACE_SIZE;
}

static bool overlaps(uint32_t off, unsigned len, uint32_t start, uint32_t n)
{
    return off < start + n && start < off + len;
}

int vfio_config_read(struct vfio_config *cfg, uint32_t off, unsigned len, uint32_t *val)
{
    *val = len >= 4 ? 0xFFFFFFFFu : (1u << (8 * len)) - 1;
    if (!access_ok(off, len)) {
        log_guest_once(COMP, "guest config read at 0x%x, length %u: refused", off, len);
        return -EINVAL;
    }
    if (off >= cfg->size) {
        /* A conventional function's extended space is not implemented:
         * reads 0 (PCIe 5.0 §7.2.2.2), as devices/pci/pci.c does. */
        *val = 0;
        return 0;
    }

    uint8_t dev[4] = {0xff, 0xff, 0xff, 0xff};
    bool need_dev = false;
    for (unsigned i = 0; i < len; i++)
        need_dev |= cfg->emask[off + i] != 0xff;
    if (need_dev && cfg->dev.read(cfg->dev.opaque, off, dev, len) < 0)
        memset(dev, 0xff, sizeof(dev));

    uint8_t emu[4];
    memcpy(emu, cfg->emu + off, len);
    if (cfg->msi_cap && (cfg->emu[cfg->msi_cap + PCI_MSI_FLAGS + 1] & (PCI_MSI_FLAGS_MASKBIT >> 8))) {
        uint32_t p = cfg->msi_cap + msi_pending_off(cfg);
        if (overlaps(off, len, p, 4)) {
            uint32_t bits = cfg->msi_pending ? cfg->msi_pending(cfg->msi_pending_opaque) : 0;
            if (cfg->msi_max_vectors < 32)
                bits &= (1u << cfg->msi_max_vectors) - 1;
            for (unsigned i = 0; i < len; i++)
                if (off + i >= p && off + i < p + 4)
                    emu[i] = (uint8_t)(bits >> (8 * (off + i - p)));
        }
    }
    uint32_t v = 0;
    for (unsigned i = 0; i < len; i++) {
        uint8_t m = cfg->emask[off + i];
        uint8_t b = (uint8_t)((dev[i] & ~m) | (emu[i] & m));
        v |= (uint32_t)b << (8 * i);
    }
    *val = v;
    return 0;
}

static uint32_t emu32(const struct vfio_config *cfg, uint32_t off) { return le32_at(cfg->emu + off); }

int vfio_config_write(struct vfio_config *cfg, uint32_t off, unsigned len, uint32_t val)
{
    if (!access_ok(off, len)) {
        log_guest_once(COMP, "guest config write at 0x%x, length %u: refused", off, len);
        return -EINVAL;
    }
    if (off >= cfg->size)
        return 0;

    uint32_t old_bar[VFIO_NR_BARS + 1];
    for (unsigned i = 0; i < VFIO_NR_BARS; i++)
        old_bar[i] = emu32(cfg, PCI_BASE_ADDRESS_0 + 4 * i);
    old_bar[VFIO_NR_BARS] = emu32(cfg, PCI_ROM_ADDRESS);
    uint8_t old_msi[24] = {0};
    if (cfg->msi_cap)
        memcpy(old_msi, cfg->emu + cfg->msi_cap, cfg->msi_cap_len);
    uint16_t old_msix = cfg->msix_cap ? le16_at(cfg->emu + cfg->msix_cap + PCI_MSIX_FLAGS) : 0;
    uint16_t old_cmd = cfg->command;

    uint8_t v[4], out[4];
    for (unsigned i = 0; i < len; i++)
        v[i] = (uint8_t)(val >> (8 * i));
    for (unsigned i = 0; i < len; i++) {
        uint32_t o = off + i;
        uint8_t w = cfg->wmask[o] & cfg->emask[o];
        cfg->emu[o] = (uint8_t)((cfg->emu[o] & ~w) | (v[i] & w));
        out[i] = (uint8_t)(v[i] & ~cfg->emask[o]);
        if (o == PCI_COMMAND || o == PCI_COMMAND + 1) {
            unsigned sh = 8 * (o - PCI_COMMAND);
            cfg->command = (uint16_t)((cfg->command & ~(0xFFu << sh)) | ((unsigned)v[i] << sh));
        }
    }
    /* Forward runs of bytes that have passed-through bits. */
    unsigned i = 0;
    while (i < len) {
        if (cfg->emask[off + i] == 0xff) {
            i++;
            continue;
        }
        unsigned j = i;
        while (j < len && cfg->emask[off + j] != 0xff)
            j++;
        if (cfg->dev.write(cfg->dev.opaque, off + i, out + i, j - i) < 0)
            log_guest_once(COMP, "write to the device's config space at 0x%x failed", off + i);
        i = j;
    }

    int ev = 0;
    if ((old_cmd ^ cfg->command) & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY))
        ev |= VFIO_CFG_EV_DECODE;
    if ((old_cmd ^ cfg->command) & PCI_COMMAND_INTX_DISABLE)
        ev |= VFIO_CFG_EV_INTX;
    for (unsigned b = 0; b < VFIO_NR_BARS; b++) {
        if (old_bar[b] == emu32(cfg, PCI_BASE_ADDRESS_0 + 4 * b))
            continue;
        /* The upper half of a 64-bit BAR moves the BAR below it. */
        unsigned owner = cfg->bars[b].type == VFIO_BAR_MEM64_HI ? b - 1 : b;
        ev |= VFIO_CFG_EV_BAR0 << owner;
    }
    if (old_bar[VFIO_NR_BARS] != emu32(cfg, PCI_ROM_ADDRESS))
        ev |= VFIO_CFG_EV_ROM;
    if (cfg->msi_cap && memcmp(old_msi, cfg->emu + cfg->msi_cap, cfg->msi_cap_len))
        ev |= VFIO_CFG_EV_MSI;
    if (cfg->msix_cap && old_msix != le16_at(cfg->emu + cfg->msix_cap + PCI_MSIX_FLAGS))
        ev |= VFIO_CFG_EV_MSIX;
    return ev;
}

void vfio_config_reset(struct vfio_config *cfg)
{
    memcpy(cfg->emu, cfg->emu_reset, sizeof(cfg->emu));
    cfg->command = 0;
}

static uint64_t bar_address(const struct vfio_config *cfg, unsigned i)
{
    uint32_t lo = emu32(cfg, PCI_BASE_ADDRESS_0 + 4 * i);
    switch (cfg->bars[i].type) {
    case VFIO_BAR_IO:
        return lo & PCI_BASE_ADDRESS_IO_MASK;
    case VFIO_BAR_MEM32:
        return lo & PCI_BASE_ADDRESS_MEM_MASK;
    case VFIO_BAR_MEM64:
        return (lo & PCI_BASE_ADDRESS_MEM_MASK) |
               (uint64_t)emu32(cfg, PCI_BASE_ADDRESS_0 + 4 * (i + 1)) << 32;
    default:
        return 0;
    }
}

/* Highest guest-physical address a BAR may decode at: x86 physical
 * addresses have at most 52 bits (Intel SDM vol. 3A §4.1.4). Also keeps the
 * all-ones sizing pattern of a 64-bit BAR from ever being mapped. */
#define GUEST_PHYS_LIMIT (1ull << 52)

bool vfio_config_bar_decoded(const struct vfio_config *cfg, unsigned i, uint64_t *addr)
{
    if (i >= VFIO_NR_BARS)
        return false;
    const struct vfio_bar_info *b = &cfg->bars[i];
    uint64_t a = bar_address(cfg, i), limit;
    switch (b->type) {
    case VFIO_BAR_IO:
        if (!(cfg->command & PCI_COMMAND_IO))
            return false;
        limit = 0x10000;
        break;
    case VFIO_BAR_MEM32:
        if (!(cfg->command & PCI_COMMAND_MEMORY))
            return false;
        limit = 1ull << 32;
        break;
    case VFIO_BAR_MEM64:
        if (!(cfg->command & PCI_COMMAND_MEMORY))
            return false;
        limit = GUEST_PHYS_LIMIT;
        break;
    default:
        return false;
    }
    if (!a || a >= limit || b->size > limit - a)
        return false;
    *addr = a;
    return true;
}

bool vfio_config_rom_decoded(const struct vfio_config *cfg, uint64_t *addr)
{
    uint32_t r = emu32(cfg, PCI_ROM_ADDRESS);
    uint64_t a = r & PCI_ROM_ADDRESS_MASK;
    if (!cfg->rom_size || !(r & PCI_ROM_ADDRESS_ENABLE) || !(cfg->command & PCI_COMMAND_MEMORY))
        return false;
    if (!a || cfg->rom_size > (1ull << 32) - a)
        return false;
    *addr = a;
    return true;
}

void vfio_config_msi_state(const struct vfio_config *cfg, struct pci_msi_state *st)
{
    memset(st, 0, sizeof(*st));
    if (!cfg->msi_cap)
        return;
    const uint8_t *c = cfg->emu + cfg->msi_cap;
    uint16_t flags = le16_at(c + PCI_MSI_FLAGS);
    st->enabled = flags & PCI_MSI_FLAGS_ENABLE;
    unsigned mme = (flags & PCI_MSI_FLAGS_QSIZE) >> 4;
    unsigned n = mme > 5 ? 32 : 1u << mme;
    st->nr_vectors = n > cfg->msi_max_vectors ? cfg->msi_max_vectors : n;
    st->address = le32_at(c + PCI_MSI_ADDRESS_LO);
    if (flags & PCI_MSI_FLAGS_64BIT)
        st->address |= (uint64_t)le32_at(c + PCI_MSI_ADDRESS_HI) << 32;
    st->data = le16_at(c + msi_data_off(cfg));
    st->per_vector_mask = flags & PCI_MSI_FLAGS_MASKBIT;
    if (st->per_vector_mask)
        st->mask = le32_at(c + msi_mask_off(cfg));
}

bool vfio_config_msix_enabled(const struct vfio_config *cfg)
{
    return cfg->msix_cap &&
           (le16_at(cfg->emu + cfg->msix_cap + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_ENABLE);
}

bool vfio_config_msix_masked(const struct vfio_config *cfg)
{
    return cfg->msix_cap &&
           (le16_at(cfg->emu + cfg->msix_cap + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_MASKALL);
}

bool vfio_config_intx_disabled(const struct vfio_config *cfg)
{
    return cfg->command & PCI_COMMAND_INTX_DISABLE;
}

/* The guest-visible byte at off (emulated, or the device's). */
static uint8_t visible_byte(const struct vfio_config *cfg, uint32_t off)
{
    uint8_t dev = 0xff;
    if (cfg->emask[off] != 0xff && cfg->dev.read(cfg->dev.opaque, off, &dev, 1) < 0)
        dev = 0xff;
    return (uint8_t)((dev & ~cfg->emask[off]) | (cfg->emu[off] & cfg->emask[off]));
}

uint8_t vfio_config_find_cap(const struct vfio_config *cfg, uint8_t id)
{
    uint8_t pos = cfg->emu[PCI_CAPABILITY_LIST] & 0xFC;
    for (unsigned n = 0; pos >= STD_CAP_FIRST && n < MAX_STD_CAPS; n++) {
        if (visible_byte(cfg, pos) == id)
            return pos;
        pos = visible_byte(cfg, pos + PCI_CAP_LIST_NEXT) & 0xFC;
    }
    return 0;
}

uint16_t vfio_config_find_ext_cap(const struct vfio_config *cfg, uint16_t id)
{
    if (cfg->size < VFIO_CFG_SPACE_SIZE)
        return 0;
    uint32_t pos = EXT_CAP_FIRST;
    for (unsigned n = 0; pos >= EXT_CAP_FIRST && pos + 4 <= VFIO_CFG_SPACE_SIZE && n < MAX_EXT_CAPS; n++) {
        uint32_t hdr = 0;
        for (unsigned i = 0; i < 4; i++)
            hdr |= (uint32_t)visible_byte(cfg, pos + i) << (8 * i);
        if (!hdr || hdr == 0xFFFFFFFFu)
            return 0;
        if (PCI_EXT_CAP_ID(hdr) == id)
            return (uint16_t)pos;
        pos = PCI_EXT_CAP_NEXT(hdr) & ~3u;
    }
    return 0;
}
