/* The PCI bus model (devices/pci/pci.h): config space with write masks, BAR
 * decoding, bridges, Configuration Mechanism #1 at 0xCF8/0xCFC and ECAM.
 *
 *   port/window        size  what
 *   0xCF8              4     CONFIG_ADDRESS (PCI 3.0 §3.2.2.3.2), dword only:
 *                            bit 31 enable, 23:16 bus, 15:11 device,
 *                            10:8 function, 7:2 register, 1:0 read as 0
 *   0xCF9              1     reset control, forwarded to the adopted range
 *                            (devices/chipset/sysctl.c)
 *   0xCFC-0xCFF        1-4   CONFIG_DATA: port & 3 selects the byte
 *   ECAM base + off    1-8   PCIe 5.0 §7.2.2: off = bus << 20 | device << 15
 *                            | function << 12 | register */
#include "devices/pci/pci.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "vmm/log.h"

#define PCI_CF8_PORT        0xCF8
#define PCI_CF9_PORT        0xCF9
#define PCI_CFC_PORT        0xCFC
#define PCI_CF8_ENABLE      0x80000000u
#define ECAM_BUS_SHIFT      20
#define ECAM_MAX_SIZE       (256ULL << ECAM_BUS_SHIFT)
#define CAP_WALK_MAX        48      /* (256 - 64) / 4: more is a loop */
#define EXT_CAP_WALK_MAX    ((PCI_CFG_SIZE - PCI_CFG_LEGACY_SIZE) / 4)

/* ---- byte-level helpers --------------------------------------------- */

uint32_t pci_cfg_get(const struct pci_device *d, uint32_t off, unsigned len)
{
    uint32_t v = 0;

    for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++)
        v |= (uint32_t)d->config[off + i] << (8 * i);
    return v;
}

void pci_cfg_set(struct pci_device *d, uint32_t off, unsigned len, uint32_t val)
{
    for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++)
        d->config[off + i] = (uint8_t)(val >> (8 * i));
}

void pci_cfg_set_wmask(struct pci_device *d, uint32_t off, unsigned len, uint32_t mask)
{
    for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++)
        d->wmask[off + i] = (uint8_t)(mask >> (8 * i));
}

void pci_cfg_set_w1cmask(struct pci_device *d, uint32_t off, unsigned len, uint32_t mask)
{
    for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++) {
        uint8_t m = (uint8_t)(mask >> (8 * i));
        d->w1cmask[off + i] = m;
        d->wmask[off + i] &= (uint8_t)~m;    /* a W1C bit is never set by a write */
    }
}

/* ---- functions ------------------------------------------------------- */

void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor, uint16_t device,
                     uint32_t class_code, uint8_t revision, uint8_t header_type, uint32_t cfg_size)
{
    const struct pci_device_ops *ops = d->ops;
    void *opaque = d->opaque;

    memset(d, 0, sizeof(*d));
    d->ops = ops;
    d->opaque = opaque;
    d->name = name;
    d->cfg_size = cfg_size == PCI_CFG_SIZE ? PCI_CFG_SIZE : PCI_CFG_LEGACY_SIZE;
    d->is_bridge = (header_type & 0x7F) == PCI_HEADER_TYPE_BRIDGE;
    for (unsigned i = 0; i < PCI_NR_BARS; i++)
        d->bars[i].addr = PCI_BAR_UNMAPPED;

    pci_cfg_set(d, PCI_VENDOR_ID, 2, vendor);
    pci_cfg_set(d, PCI_DEVICE_ID, 2, device);
    pci_cfg_set(d, PCI_REVISION_ID, 1, revision);
    pci_cfg_set(d, PCI_CLASS_PROG, 3, class_code);
    pci_cfg_set(d, PCI_HEADER_TYPE, 1, header_type);

    pci_cfg_set_wmask(d, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                      PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
    pci_cfg_set_w1cmask(d, PCI_STATUS, 2, PCI_STATUS_W1C);
    pci_cfg_set_wmask(d, PCI_CACHE_LINE_SIZE, 1, 0xFF);
    pci_cfg_set_wmask(d, PCI_LATENCY_TIMER, 1, 0xFF);
    pci_cfg_set_wmask(d, PCI_INTERRUPT_LINE, 1, 0xFF);

    if (d->is_bridge) {
        /* PCI-to-PCI Bridge 1.2 §3.2.5: bus numbers, 16-bit I/O window
         * (4 KiB granules), 32-bit memory window and 64-bit prefetchable
         * window (1 MiB granules), secondary status, bridge control. */
        pci_cfg_set_wmask(d, PCI_PRIMARY_BUS, 4, 0xFFFFFFFF);
        pci_cfg_set_wmask(d, PCI_IO_BASE, 2, 0xF0F0);
        pci_cfg_set_w1cmask(d, PCI_SEC_STATUS, 2, PCI_STATUS_W1C);
        pci_cfg_set_wmask(d, PCI_MEMORY_BASE, 4, 0xFFF0FFF0);
        pci_cfg_set(d, PCI_PREF_MEMORY_BASE, 4, 0x00010001);   /* 64-bit */
        pci_cfg_set_wmask(d, PCI_PREF_MEMORY_BASE, 4, 0xFFF0FFF0);
        pci_cfg_set_wmask(d, PCI_PREF_BASE_UPPER32, 4, 0xFFFFFFFF);
        pci_cfg_set_wmask(d, PCI_PREF_LIMIT_UPPER32, 4, 0xFFFFFFFF);
        /* parity, SERR, ISA, VGA, VGA 16-bit, master abort, bus reset */
        pci_cfg_set_wmask(d, PCI_BRIDGE_CONTROL, 2, 0x007F);
    }
}

int pci_device_set_bar(struct pci_device *d, unsigned i, enum pci_bar_type type,
                       bool prefetch, uint64_t size)
{
    unsigned max = d->is_bridge ? 2 : PCI_NR_BARS;
    uint32_t off = PCI_BAR0 + 4 * i;
    uint64_t mask;

    if (i >= max || (type == PCI_BAR_MEM64 && i + 1 >= max) || size == 0 ||
        (size & (size - 1)) || type == PCI_BAR_NONE ||
        (type == PCI_BAR_IO && (size < 4 || size > 256)) ||
        (type != PCI_BAR_IO && size < 16) ||
        (type == PCI_BAR_MEM32 && size > (1ULL << 31))) {
        log_err("pci", "%s: BAR%u of type %d and size 0x%" PRIx64 " is not valid",
                d->name ? d->name : "?", i, (int)type, size);
        return -EINVAL;
    }
    d->bars[i] = (struct pci_bar){ .type = type, .prefetch = prefetch, .size = size,
                                   .addr = PCI_BAR_UNMAPPED };
    mask = ~(size - 1);
    switch (type) {
    case PCI_BAR_IO:
        pci_cfg_set(d, off, 4, 0x1);
        pci_cfg_set_wmask(d, off, 4, (uint32_t)mask & 0xFFFFFFFC);
        break;
    case PCI_BAR_MEM32:
        pci_cfg_set(d, off, 4, prefetch ? 0x8 : 0x0);
        pci_cfg_set_wmask(d, off, 4, (uint32_t)mask & 0xFFFFFFF0);
        break;
    case PCI_BAR_MEM64:
        pci_cfg_set(d, off, 4, 0x4 | (prefetch ? 0x8 : 0x0));
        pci_cfg_set_wmask(d, off, 4, (uint32_t)mask & 0xFFFFFFF0);
        pci_cfg_set(d, off + 4, 4, 0);
        pci_cfg_set_wmask(d, off + 4, 4, (uint32_t)(mask >> 32));
        d->bars[i + 1] = (struct pci_bar){ .type = PCI_BAR_NONE, .addr = PCI_BAR_UNMAPPED };
        break;
    case PCI_BAR_NONE:
        break;
    }
    return 0;
}

void pci_device_set_intx_pin(struct pci_device *d, uint8_t pin)
{
    pci_cfg_set(d, PCI_INTERRUPT_PIN, 1, pin <= 4 ? pin : 0);
}

#define PCI_ROM_ENABLE    0x1u
#define PCI_ROM_MIN_SIZE  0x800u        /* PCI 3.0 §6.2.5.2: at least 2 KiB */
#define PCI_ROM_MAX_SIZE  (16u << 20)   /* the ROM BAR's 24 address bits */

int pci_device_set_rom(struct pci_device *d, const void *image, size_t len)
{
    uint64_t size = PCI_ROM_MIN_SIZE;

    if (d->is_bridge || !image || len == 0 || len > PCI_ROM_MAX_SIZE) {
        log_err("pci", "%s: an expansion ROM of %zu bytes is not possible here (a type 0 "
                "function, 1 byte to 16 MiB)", d->name ? d->name : "?", len);
        return -EINVAL;
    }
    while (size < len)
        size <<= 1;
    d->rom = (struct pci_rom_bar){ .image = image, .len = len, .size = size,
                                   .addr = PCI_BAR_UNMAPPED };
    pci_cfg_set(d, PCI_ROM_ADDRESS, 4, 0);
    pci_cfg_set_wmask(d, PCI_ROM_ADDRESS, 4, ((uint32_t)~(size - 1) & 0xFFFFF800u) | PCI_ROM_ENABLE);
    return 0;
}

static int pci_rom_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    const struct pci_rom_bar *r = opaque;
    uint8_t *p = data;

    for (unsigned i = 0; i < len; i++)
        p[i] = off + i < r->len ? r->image[off + i] : 0xFF;
    return 0;
}

static int pci_rom_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    return 0;   /* a ROM: dropped */
}

static const struct bus_ops pci_rom_ops = { .read = pci_rom_read, .write = pci_rom_write };

static uint64_t pci_rom_decoded_addr(const struct pci_device *d)
{
    uint16_t cmd = (uint16_t)pci_cfg_get(d, PCI_COMMAND, 2);
    uint32_t reg = pci_cfg_get(d, PCI_ROM_ADDRESS, 4);
    uint64_t addr = reg & ~(d->rom.size - 1) & 0xFFFFF800u;

    if (!(cmd & PCI_COMMAND_MEMORY) || !(reg & PCI_ROM_ENABLE) || addr == 0 ||
        addr + d->rom.size - 1 > 0xFFFFFFFFULL)
        return PCI_BAR_UNMAPPED;
    return addr;
}

/* Move the ROM's range on the MMIO bus to where it decodes now. */
static void pci_rom_update(struct pci_device *d)
{
    uint64_t addr = d->bus ? pci_rom_decoded_addr(d) : PCI_BAR_UNMAPPED;

    if (!d->rom.image || addr == d->rom.addr)
        return;
    if (d->rom.addr != PCI_BAR_UNMAPPED && d->rom.mmio)
        bus_unregister(d->rom.mmio, d->rom.addr);
    d->rom.addr = PCI_BAR_UNMAPPED;
    if (addr == PCI_BAR_UNMAPPED || !d->bus->mmio)
        return;
    if (bus_register(d->bus->mmio, addr, d->rom.size, d->name, &pci_rom_ops, &d->rom) == 0) {
        d->rom.addr = addr;
        d->rom.mmio = d->bus->mmio;
    }
    /* else: overlapping something, logged by the bus; it stays unmapped */
}

/* Where BAR i decodes given its registers and the command register. */
static uint64_t pci_bar_decoded_addr(const struct pci_device *d, unsigned i)
{
    const struct pci_bar *bar = &d->bars[i];
    uint16_t cmd = (uint16_t)pci_cfg_get(d, PCI_COMMAND, 2);
    uint32_t off = PCI_BAR0 + 4 * i;
    uint64_t addr, last;

    switch (bar->type) {
    case PCI_BAR_IO:
        if (!(cmd & PCI_COMMAND_IO))
            return PCI_BAR_UNMAPPED;
        addr = pci_cfg_get(d, off, 4) & ~(bar->size - 1) & 0xFFFFFFFCu;
        last = addr + bar->size - 1;
        if (addr == 0 || last > 0xFFFF)
            return PCI_BAR_UNMAPPED;
        return addr;
    case PCI_BAR_MEM32:
        if (!(cmd & PCI_COMMAND_MEMORY))
            return PCI_BAR_UNMAPPED;
        addr = pci_cfg_get(d, off, 4) & 0xFFFFFFF0u;
        last = addr + bar->size - 1;
        if (addr == 0 || last > 0xFFFFFFFFULL)
            return PCI_BAR_UNMAPPED;
        return addr;
    case PCI_BAR_MEM64:
        if (!(cmd & PCI_COMMAND_MEMORY))
            return PCI_BAR_UNMAPPED;
        addr = (pci_cfg_get(d, off, 4) & 0xFFFFFFF0u) | (uint64_t)pci_cfg_get(d, off + 4, 4) << 32;
        last = addr + bar->size - 1;
        if (addr == 0 || last < addr)
            return PCI_BAR_UNMAPPED;
        return addr;
    case PCI_BAR_NONE:
        break;
    }
    return PCI_BAR_UNMAPPED;
}

void pci_device_update_bars(struct pci_device *d)
{
    for (unsigned i = 0; i < PCI_NR_BARS; i++) {
        if (d->bars[i].type == PCI_BAR_NONE)
            continue;
        uint64_t addr = pci_bar_decoded_addr(d, i);
        if (addr == d->bars[i].addr)
            continue;
        if (d->ops && d->ops->bar_map)
            d->ops->bar_map(d, i, addr);
        d->bars[i].addr = addr;
    }
    pci_rom_update(d);
}

void pci_cfg_write_generic(struct pci_device *d, uint32_t off, unsigned len, uint32_t val)
{
    uint32_t old = pci_cfg_get(d, off, len);
    uint32_t bar_end = PCI_BAR0 + 4 * (d->is_bridge ? 2 : PCI_NR_BARS);

    for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++) {
        uint8_t b = (uint8_t)(val >> (8 * i));
        uint8_t c = d->config[off + i];
        c = (uint8_t)((c & ~d->wmask[off + i]) | (b & d->wmask[off + i]));
        c &= (uint8_t)~(b & d->w1cmask[off + i]);
        d->config[off + i] = c;
    }
    if ((off < PCI_COMMAND + 2 && off + len > PCI_COMMAND) ||
        (off < bar_end && off + len > PCI_BAR0) ||
        (!d->is_bridge && off < PCI_ROM_ADDRESS + 4 && off + len > PCI_ROM_ADDRESS))
        pci_device_update_bars(d);
    if (d->ops && d->ops->cfg_written)
        d->ops->cfg_written(d, off, len, old);
}

/* ---- capabilities ----------------------------------------------------- */

int pci_cap_add(struct pci_device *d, uint8_t off, uint8_t id, uint8_t len)
{
    unsigned walked = 0;
    uint8_t p;

    if (off < 0x40 || (off & 3) || len < 2 || (unsigned)off + len > PCI_CFG_LEGACY_SIZE)
        return -EINVAL;
    d->config[off] = id;
    d->config[off + 1] = 0;
    p = d->config[PCI_CAPABILITY_LIST];
    if (!p) {
        d->config[PCI_CAPABILITY_LIST] = off;
    } else {
        while (d->config[p + 1] && walked++ < CAP_WALK_MAX)
            p = d->config[p + 1];
        d->config[p + 1] = off;
    }
    d->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    return off;
}

uint8_t pci_cap_find(const struct pci_device *d, uint8_t id)
{
    uint8_t p;

    if (!(d->config[PCI_STATUS] & PCI_STATUS_CAP_LIST))
        return 0;
    p = d->config[PCI_CAPABILITY_LIST] & 0xFC;
    for (unsigned n = 0; n < CAP_WALK_MAX && p >= 0x40; n++) {
        if (d->config[p] == id)
            return p;
        p = d->config[p + 1] & 0xFC;
    }
    return 0;
}

int pci_ext_cap_add(struct pci_device *d, uint16_t off, uint16_t id, uint8_t version, uint16_t len)
{
    uint32_t hdr = (uint32_t)id | (uint32_t)(version & 0xF) << 16;
    uint16_t p = PCI_CFG_LEGACY_SIZE;
    unsigned walked = 0;

    if (d->cfg_size != PCI_CFG_SIZE || off < PCI_CFG_LEGACY_SIZE || (off & 3) || len < 4 ||
        (uint32_t)off + len > PCI_CFG_SIZE)
        return -EINVAL;
    if (off == PCI_CFG_LEGACY_SIZE) {
        pci_cfg_set(d, off, 4, hdr);
        return off;
    }
    if (pci_cfg_get(d, p, 4) == 0)
        return -EINVAL;   /* the list starts at 0x100 (PCIe 5.0 §7.6.3) */
    for (;;) {
        uint16_t next = (uint16_t)(pci_cfg_get(d, p, 4) >> 20) & 0xFFC;
        if (next < PCI_CFG_LEGACY_SIZE || walked++ >= EXT_CAP_WALK_MAX)
            break;
        p = next;
    }
    pci_cfg_set(d, p, 4, (pci_cfg_get(d, p, 4) & 0x000FFFFF) | (uint32_t)off << 20);
    pci_cfg_set(d, off, 4, hdr);
    return off;
}

uint16_t pci_ext_cap_find(const struct pci_device *d, uint16_t id)
{
    uint16_t p = PCI_CFG_LEGACY_SIZE;

    if (d->cfg_size != PCI_CFG_SIZE)
        return 0;
    for (unsigned n = 0; n < EXT_CAP_WALK_MAX && p >= PCI_CFG_LEGACY_SIZE; n++) {
        uint32_t hdr = pci_cfg_get(d, p, 4);
        if (hdr == 0)
            return 0;
        if ((hdr & 0xFFFF) == id)
            return p;
        p = (uint16_t)(hdr >> 20) & 0xFFC;
    }
    return 0;
}

int pci_pcie_cap_add(struct pci_device *d, uint8_t off, uint8_t port_type)
{
    int r = pci_cap_add(d, off, PCI_CAP_ID_EXP, PCI_EXP_CAP_LEN);

    if (r < 0)
        return r;
    /* PCIe 5.0 §7.5.3.2: capability version 2, device/port type */
    pci_cfg_set(d, off + PCI_EXP_FLAGS, 2, 0x2 | (uint32_t)(port_type & 0xF) << 4);
    /* §7.5.3.3: 128-byte max payload, role-based error reporting */
    pci_cfg_set(d, off + PCI_EXP_DEVCAP, 4, 1u << 15);
    /* §7.5.3.4 device control: error reporting enables, relaxed ordering,
     * payload/read request sizes, extended tags, phantom, aux PM, no snoop */
    pci_cfg_set(d, off + PCI_EXP_DEVCTL, 2, 0x2810);   /* RO, no snoop, MRRS 512 */
    pci_cfg_set_wmask(d, off + PCI_EXP_DEVCTL, 2, 0x7FFF);
    /* §7.5.3.5 device status: error detected bits are W1C */
    pci_cfg_set_w1cmask(d, off + PCI_EXP_DEVSTA, 2, 0x000F);
    /* §7.5.3.7 link control: ASPM, RCB, common clock, extended synch,
     * clock PM, autonomous width disable, bandwidth interrupt enables */
    pci_cfg_set_wmask(d, off + PCI_EXP_LNKCTL, 2, 0x0FC3 | 0x0008);
    /* §7.5.3.8 link status: bandwidth management bits are W1C */
    pci_cfg_set_w1cmask(d, off + PCI_EXP_LNKSTA, 2, 0xC000);
    /* §7.5.3.16 device control 2: completion timeout, ARI forwarding,
     * LTR, 10-bit tags... stored, no effect */
    pci_cfg_set_wmask(d, off + PCI_EXP_DEVCTL2, 2, 0x073F);
    return r;
}

/* A table or PBA of size bytes at BAR bir + offset: inside a memory BAR
 * (PCI 3.0 §6.8.2.4-5: "memory space"), the offset leaving the BIR bits. */
static bool msix_struct_ok(const struct pci_device *d, unsigned bir, uint32_t offset,
                           uint64_t size)
{
    if (bir >= PCI_NR_BARS || (offset & PCI_MSIX_TABLE_BIR))
        return false;
    const struct pci_bar *b = &d->bars[bir];
    return (b->type == PCI_BAR_MEM32 || b->type == PCI_BAR_MEM64) && offset <= b->size &&
           size <= b->size - offset;
}

int pci_msix_cap_add(struct pci_device *d, uint8_t off, const struct pci_msix_cap_info *info)
{
    unsigned n = info->nr_vectors;
    uint64_t table_size = (uint64_t)n * PCI_MSIX_ENTRY_SIZE, pba_size = ((n + 63) / 64) * 8ULL;
    /* They may share a BAR, even a 4 KiB page, but must not overlap
     * (PCI 3.0 §6.8.2). */
    bool overlap = info->table_bar == info->pba_bar &&
                   info->table_offset < info->pba_offset + pba_size &&
                   info->pba_offset < info->table_offset + table_size;

    if (!n || n > PCI_MSIX_MAX_VECTORS || overlap ||
        !msix_struct_ok(d, info->table_bar, info->table_offset, table_size) ||
        !msix_struct_ok(d, info->pba_bar, info->pba_offset, pba_size)) {
        log_err("pci", "%s: MSI-X capability with %u vectors, table at BAR%u + 0x%x, PBA at "
                "BAR%u + 0x%x is not valid", d->name ? d->name : "?", n, info->table_bar,
                info->table_offset, info->pba_bar, info->pba_offset);
        return -EINVAL;
    }
    int r = pci_cap_add(d, off, PCI_CAP_ID_MSIX, PCI_CAP_MSIX_SIZEOF);
    if (r < 0)
        return r;
    /* §6.8.2.3: table size is N - 1, read-only; enable and function mask
     * are software's (both 0 after reset). */
    pci_cfg_set(d, off + PCI_MSIX_FLAGS, 2, n - 1);
    pci_cfg_set_wmask(d, off + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    /* §6.8.2.4-5: offset | BIR, read-only. */
    pci_cfg_set(d, off + PCI_MSIX_TABLE, 4, info->table_offset | info->table_bar);
    pci_cfg_set(d, off + PCI_MSIX_PBA, 4, info->pba_offset | info->pba_bar);
    return r;
}

int pci_msi_cap_add(struct pci_device *d, uint8_t off, unsigned nr_vectors, bool per_vector_mask)
{
    unsigned mmc = 0;

    if (!nr_vectors || nr_vectors > PCI_MSI_MAX_VECTORS || (nr_vectors & (nr_vectors - 1))) {
        log_err("pci", "%s: an MSI capability with %u vectors is not valid (1 to 32, a power "
                "of two)", d->name ? d->name : "?", nr_vectors);
        return -EINVAL;
    }
    while ((1u << mmc) < nr_vectors)
        mmc++;
    /* 64-bit layout (§6.8.1): header, control, address low/high, data;
     * with masking a reserved word, mask and pending dwords follow. */
    int r = pci_cap_add(d, off, PCI_CAP_ID_MSI,
                        per_vector_mask ? PCI_MSI_PENDING_64 + 4 : PCI_MSI_DATA_64 + 2);
    if (r < 0)
        return r;
    /* §6.8.1.3: Multiple Message Capable (bits 3:1) and the 64-bit and
     * per-vector masking capabilities are read-only; MSI Enable and
     * Multiple Message Enable (bits 6:4) are software's. */
    pci_cfg_set(d, off + PCI_MSI_FLAGS, 2, mmc << 1 | PCI_MSI_FLAGS_64BIT |
                (per_vector_mask ? PCI_MSI_FLAGS_MASKBIT : 0));
    pci_cfg_set_wmask(d, off + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    /* §6.8.1.4: a dword-aligned address, bits 1:0 read 0. */
    pci_cfg_set_wmask(d, off + PCI_MSI_ADDRESS_LO, 4, 0xFFFFFFFC);
    pci_cfg_set_wmask(d, off + PCI_MSI_ADDRESS_HI, 4, 0xFFFFFFFF);
    pci_cfg_set_wmask(d, off + PCI_MSI_DATA_64, 2, 0xFFFF);
    /* §6.8.1.7: a mask bit per implemented vector; the rest read 0. */
    if (per_vector_mask)
        pci_cfg_set_wmask(d, off + PCI_MSI_MASK_64, 4,
                          nr_vectors == 32 ? 0xFFFFFFFFu : (1u << nr_vectors) - 1);
    return r;
}

void pci_msi_cap_state(const struct pci_device *d, uint8_t off, struct pci_msi_state *st)
{
    uint16_t flags = (uint16_t)pci_cfg_get(d, off + PCI_MSI_FLAGS, 2);
    bool is64 = flags & PCI_MSI_FLAGS_64BIT;
    unsigned mmc = (flags & PCI_MSI_FLAGS_QMASK) >> 1;
    unsigned mme = (flags & PCI_MSI_FLAGS_QSIZE) >> 4;

    memset(st, 0, sizeof(*st));
    /* 110b and 111b are reserved (§6.8.1.3): at most 32 vectors. */
    if (mmc > 5)
        mmc = 5;
    if (mme > mmc)
        mme = mmc;
    st->enabled = flags & PCI_MSI_FLAGS_ENABLE;
    st->nr_vectors = 1u << mme;
    st->address = pci_cfg_get(d, off + PCI_MSI_ADDRESS_LO, 4);
    if (is64)
        st->address |= (uint64_t)pci_cfg_get(d, off + PCI_MSI_ADDRESS_HI, 4) << 32;
    st->data = (uint16_t)pci_cfg_get(d, off + (is64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32), 2);
    st->per_vector_mask = flags & PCI_MSI_FLAGS_MASKBIT;
    if (st->per_vector_mask)
        st->mask = pci_cfg_get(d, off + (is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32), 4);
}

int pci_pm_cap_add(struct pci_device *d, uint8_t off)
{
    int r = pci_cap_add(d, off, PCI_CAP_ID_PM, PCI_PM_SIZEOF);

    if (r < 0)
        return r;
    /* PM 1.2 §3.2.3 PMC: version 011b; PME_Support, D1/D2_Support,
     * Aux_Current, DSI and PME Clock 0 (D0 and D3hot are always there). */
    pci_cfg_set(d, off + PCI_PM_PMC, 2, 0x0003);
    /* §3.2.4 PMCSR: PowerState stored; No_Soft_Reset; PME_En, Data_Select
     * and PME_Status do not exist without PME. */
    pci_cfg_set(d, off + PCI_PM_CTRL, 2, PCI_PM_CTRL_NO_SOFT_RESET);
    pci_cfg_set_wmask(d, off + PCI_PM_CTRL, 2, PCI_PM_CTRL_STATE_MASK);
    return r;
}

bool pci_bridge_window(const struct pci_device *d, enum pci_window w, uint64_t *base,
                       uint64_t *limit)
{
    uint64_t lo, hi;

    if (!d->is_bridge)
        return false;
    switch (w) {
    case PCI_WINDOW_IO:
        /* 4 KiB granules; bits 3:0 say 16- or 32-bit addressing */
        lo = (uint64_t)(d->config[PCI_IO_BASE] & 0xF0) << 8;
        hi = ((uint64_t)(d->config[PCI_IO_LIMIT] & 0xF0) << 8) | 0xFFF;
        if ((d->config[PCI_IO_BASE] & 0xF) == 1) {
            lo |= (uint64_t)pci_cfg_get(d, PCI_IO_BASE_UPPER16, 2) << 16;
            hi |= (uint64_t)pci_cfg_get(d, PCI_IO_LIMIT_UPPER16, 2) << 16;
        }
        break;
    case PCI_WINDOW_MEM:
        /* 1 MiB granules, 32-bit */
        lo = (uint64_t)(pci_cfg_get(d, PCI_MEMORY_BASE, 2) & 0xFFF0) << 16;
        hi = ((uint64_t)(pci_cfg_get(d, PCI_MEMORY_LIMIT, 2) & 0xFFF0) << 16) | 0xFFFFF;
        break;
    case PCI_WINDOW_PREF:
        lo = (uint64_t)(pci_cfg_get(d, PCI_PREF_MEMORY_BASE, 2) & 0xFFF0) << 16;
        hi = ((uint64_t)(pci_cfg_get(d, PCI_PREF_MEMORY_LIMIT, 2) & 0xFFF0) << 16) | 0xFFFFF;
        if ((pci_cfg_get(d, PCI_PREF_MEMORY_BASE, 2) & 0xF) == 1) {
            lo |= (uint64_t)pci_cfg_get(d, PCI_PREF_BASE_UPPER32, 4) << 32;
            hi |= (uint64_t)pci_cfg_get(d, PCI_PREF_LIMIT_UPPER32, 4) << 32;
        }
        break;
    default:
        return false;
    }
    if (lo > hi)
        return false;
    *base = lo;
    *limit = hi;
    return true;
}

/* ---- topology ---------------------------------------------------------- */

static struct pci_device *pci_list_find(struct pci_device *list, uint8_t devfn)
{
    for (struct pci_device *d = list; d; d = d->next)
        if (d->devfn == devfn)
            return d;
    return NULL;
}

/* Route a type 1 access for bus nr (> 0) through the bridges on list. The
 * tree is minivmm's own (no cycles); its depth bounds the recursion. */
static struct pci_device *pci_route(struct pci_device *list, uint8_t nr, uint8_t devfn)
{
    for (struct pci_device *br = list; br; br = br->next) {
        if (!br->is_bridge)
            continue;
        uint8_t sec = br->config[PCI_SECONDARY_BUS];
        uint8_t sub = br->config[PCI_SUBORDINATE_BUS];
        if (sec == 0)
            continue;   /* not configured: forwards nothing */
        if (nr == sec) {
            if (br->is_pcie_port && PCI_SLOT(devfn) != 0)
                return NULL;
            return pci_list_find(br->children, devfn);
        }
        if (nr > sec && nr <= sub)
            return pci_route(br->children, nr, devfn);
    }
    return NULL;
}

static struct pci_device *pci_lookup(struct pci_bus *b, uint8_t nr, uint8_t devfn)
{
    return nr == 0 ? pci_list_find(b->root, devfn) : pci_route(b->root, nr, devfn);
}

int pci_bus_add(struct pci_bus *b, struct pci_device *parent, uint8_t devfn, struct pci_device *d)
{
    struct pci_device **list = parent ? &parent->children : &b->root;

    if (parent && !parent->is_bridge)
        return -EINVAL;
    if (parent && parent->is_pcie_port && PCI_SLOT(devfn) != 0)
        return -EINVAL;
    pthread_mutex_lock(&b->lock);
    if (pci_list_find(*list, devfn)) {
        pthread_mutex_unlock(&b->lock);
        log_err("pci", "%s: slot %02x.%x is taken", d->name ? d->name : "?",
                PCI_SLOT(devfn), PCI_FUNC(devfn));
        return -EEXIST;
    }
    d->devfn = devfn;
    d->bus = b;
    d->parent = parent;
    d->next = *list;
    *list = d;
    pthread_mutex_unlock(&b->lock);
    return 0;
}

void pci_bus_remove(struct pci_bus *b, struct pci_device *d)
{
    pthread_mutex_lock(&b->lock);
    struct pci_device **list = d->parent ? &d->parent->children : &b->root;
    for (struct pci_device **p = list; *p; p = &(*p)->next) {
        if (*p == d) {
            *p = d->next;
            break;
        }
    }
    d->next = NULL;
    d->bus = NULL;
    struct bus *rom_bus = d->rom.addr != PCI_BAR_UNMAPPED ? d->rom.mmio : NULL;
    uint64_t rom_addr = d->rom.addr;
    d->rom.addr = PCI_BAR_UNMAPPED;
    pthread_mutex_unlock(&b->lock);
    /* The ROM is the PCI layer's range: off the bus, and no read of the
     * caller's image still running once this returns. */
    if (rom_bus)
        bus_unregister_sync(rom_bus, rom_addr);
}

/* ---- config accesses ----------------------------------------------------- */

static bool pci_access_ok(uint32_t off, unsigned len)
{
    return (len == 1 || len == 2 || len == 4) && (off & (len - 1)) == 0 && off < PCI_CFG_SIZE;
}

static int pci_config_read_locked(struct pci_bus *b, uint8_t nr, uint8_t devfn, uint32_t off,
                                  unsigned len, uint32_t *val)
{
    struct pci_device *d;
    int r;

    *val = len >= 4 ? 0xFFFFFFFFu : (1u << (8 * len)) - 1;
    if (!pci_access_ok(off, len))
        return -EINVAL;
    d = pci_lookup(b, nr, devfn);
    if (!d)
        return -ENODEV;
    if (d->ops && d->ops->cfg_read) {
        uint32_t v = 0;
        r = d->ops->cfg_read(d, off, len, &v);
        if (r == 0)
            *val = v;
        if (r != PCI_CFG_GENERIC)
            return r < 0 ? r : 0;
    }
    /* Beyond a conventional function's 256 bytes: reads 0 (PCIe 5.0
     * §7.2.2.2: the extended space of a PCI function is not implemented). */
    *val = off >= d->cfg_size ? 0 : pci_cfg_get(d, off, len);
    return 0;
}

static int pci_config_write_locked(struct pci_bus *b, uint8_t nr, uint8_t devfn, uint32_t off,
                                   unsigned len, uint32_t val)
{
    struct pci_device *d;

    if (!pci_access_ok(off, len))
        return -EINVAL;
    d = pci_lookup(b, nr, devfn);
    if (!d)
        return -ENODEV;
    if (len < 4)
        val &= (1u << (8 * len)) - 1;
    if (d->ops && d->ops->cfg_write) {
        int r = d->ops->cfg_write(d, off, len, val);
        if (r != PCI_CFG_GENERIC)
            return r < 0 ? r : 0;
    }
    if (off >= d->cfg_size)
        return 0;
    pci_cfg_write_generic(d, off, len, val);
    return 0;
}

int pci_config_read(struct pci_bus *b, uint8_t nr, uint8_t devfn, uint32_t off, unsigned len,
                    uint32_t *val)
{
    pthread_mutex_lock(&b->lock);
    int r = pci_config_read_locked(b, nr, devfn, off, len, val);
    pthread_mutex_unlock(&b->lock);
    return r;
}

int pci_config_write(struct pci_bus *b, uint8_t nr, uint8_t devfn, uint32_t off, unsigned len,
                     uint32_t val)
{
    pthread_mutex_lock(&b->lock);
    int r = pci_config_write_locked(b, nr, devfn, off, len, val);
    pthread_mutex_unlock(&b->lock);
    return r;
}

static void put_le(void *data, unsigned len, uint64_t v)
{
    uint8_t *p = data;
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const void *data, unsigned len)
{
    const uint8_t *p = data;
    uint64_t v = 0;
    for (unsigned i = 0; i < len && i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* 0xCF8-0xCFB */
static int pci_cf8_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct pci_bus *b = opaque;

    if (offset == 0 && len == 4) {
        pthread_mutex_lock(&b->lock);
        put_le(data, 4, b->config_address);
        pthread_mutex_unlock(&b->lock);
        return 0;
    }
    if (offset == 1 && len == 1 && b->cf9_adopted)
        return b->cf9.ops->read(b->cf9.opaque, 0, data, 1);
    memset(data, 0xFF, len);
    return 0;
}

static int pci_cf8_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct pci_bus *b = opaque;

    if (offset == 0 && len == 4) {
        pthread_mutex_lock(&b->lock);
        b->config_address = (uint32_t)get_le(data, 4) & ~3u;
        pthread_mutex_unlock(&b->lock);
        return 0;
    }
    if (offset == 1 && len == 1 && b->cf9_adopted)
        return b->cf9.ops->write(b->cf9.opaque, 0, data, 1);
    /* Not a dword: ordinary I/O that nothing decodes (PCI 3.0 §3.2.2.3.2). */
    return 0;
}

/* 0xCFC-0xCFF */
static int pci_cfc_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct pci_bus *b = opaque;
    uint32_t v = 0xFFFFFFFFu;

    pthread_mutex_lock(&b->lock);
    uint32_t a = b->config_address;
    if ((a & PCI_CF8_ENABLE) && offset + len <= 4)
        pci_config_read_locked(b, (uint8_t)(a >> 16), (uint8_t)(a >> 8),
                               (a & 0xFC) + (uint32_t)offset, len, &v);
    pthread_mutex_unlock(&b->lock);
    put_le(data, len > 4 ? 4 : len, v);
    if (len > 4)
        memset((uint8_t *)data + 4, 0xFF, len - 4);
    return 0;
}

static int pci_cfc_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct pci_bus *b = opaque;

    pthread_mutex_lock(&b->lock);
    uint32_t a = b->config_address;
    if ((a & PCI_CF8_ENABLE) && offset + len <= 4)
        pci_config_write_locked(b, (uint8_t)(a >> 16), (uint8_t)(a >> 8),
                                (a & 0xFC) + (uint32_t)offset, len, (uint32_t)get_le(data, len));
    pthread_mutex_unlock(&b->lock);
    return 0;
}

/* ECAM window */
static int pci_ecam_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct pci_bus *b = opaque;
    uint32_t lo = 0xFFFFFFFFu, hi = 0xFFFFFFFFu;
    uint8_t nr = (uint8_t)(offset >> ECAM_BUS_SHIFT), devfn = (uint8_t)(offset >> 12);
    uint32_t reg = (uint32_t)offset & 0xFFF;

    pthread_mutex_lock(&b->lock);
    if (len == 8 && (reg & 7) == 0) {
        pci_config_read_locked(b, nr, devfn, reg, 4, &lo);
        pci_config_read_locked(b, nr, devfn, reg + 4, 4, &hi);
    } else if (len <= 4) {
        pci_config_read_locked(b, nr, devfn, reg, len, &lo);
    }
    pthread_mutex_unlock(&b->lock);
    put_le(data, len > 8 ? 8 : len, (uint64_t)hi << 32 | lo);
    return 0;
}

static int pci_ecam_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct pci_bus *b = opaque;
    uint8_t nr = (uint8_t)(offset >> ECAM_BUS_SHIFT), devfn = (uint8_t)(offset >> 12);
    uint32_t reg = (uint32_t)offset & 0xFFF;
    uint64_t v = get_le(data, len);

    pthread_mutex_lock(&b->lock);
    if (len == 8 && (reg & 7) == 0) {
        pci_config_write_locked(b, nr, devfn, reg, 4, (uint32_t)v);
        pci_config_write_locked(b, nr, devfn, reg + 4, 4, (uint32_t)(v >> 32));
    } else if (len <= 4) {
        pci_config_write_locked(b, nr, devfn, reg, len, (uint32_t)v);
    } else {
        log_guest_once("pci", "ECAM write of %u bytes at offset 0x%" PRIx64 " dropped", len, offset);
    }
    pthread_mutex_unlock(&b->lock);
    return 0;
}

static const struct bus_ops pci_cf8_ops = { .read = pci_cf8_read, .write = pci_cf8_write };
static const struct bus_ops pci_cfc_ops = { .read = pci_cfc_read, .write = pci_cfc_write };
static const struct bus_ops pci_ecam_ops = { .read = pci_ecam_read, .write = pci_ecam_write };

int pci_bus_init(struct pci_bus *b, struct bus *pio, struct bus *mmio)
{
    memset(b, 0, sizeof(*b));
    b->pio = pio;
    b->mmio = mmio;
    int err = pthread_mutex_init(&b->lock, NULL);
    return -err;
}

void pci_bus_fini(struct pci_bus *b)
{
    pci_bus_detach_pio(b);
    pci_bus_set_ecam(b, 0, 0);
    pthread_mutex_destroy(&b->lock);
}

int pci_bus_attach_pio(struct pci_bus *b)
{
    const struct bus_range *r = bus_find(b->pio, PCI_CF9_PORT, 1);
    int err;

    if (b->pio_attached)
        return 0;
    if (r) {
        if (r->base != PCI_CF9_PORT || r->len != 1 || !r->ops->read || !r->ops->write) {
            log_err("pci", "cannot take port 0xCF8: %s occupies [0x%" PRIx64 ", +0x%" PRIx64 ")",
                    r->name ? r->name : "?", r->base, r->len);
            return -EEXIST;
        }
        b->cf9 = *r;
        b->cf9_adopted = true;
        bus_unregister(b->pio, PCI_CF9_PORT);
    }
    err = bus_register(b->pio, PCI_CF8_PORT, 4, "pci-config-address", &pci_cf8_ops, b);
    if (err)
        goto restore;
    err = bus_register(b->pio, PCI_CFC_PORT, 4, "pci-config-data", &pci_cfc_ops, b);
    if (err) {
        bus_unregister(b->pio, PCI_CF8_PORT);
        goto restore;
    }
    b->pio_attached = true;
    return 0;
restore:
    if (b->cf9_adopted) {
        bus_register(b->pio, PCI_CF9_PORT, 1, b->cf9.name, b->cf9.ops, b->cf9.opaque);
        b->cf9_adopted = false;
    }
    return err;
}

void pci_bus_detach_pio(struct pci_bus *b)
{
    if (!b->pio_attached)
        return;
    bus_unregister(b->pio, PCI_CFC_PORT);
    bus_unregister(b->pio, PCI_CF8_PORT);
    if (b->cf9_adopted) {
        bus_register(b->pio, PCI_CF9_PORT, 1, b->cf9.name, b->cf9.ops, b->cf9.opaque);
        b->cf9_adopted = false;
    }
    b->pio_attached = false;
}

int pci_bus_set_ecam_locked(struct pci_bus *b, uint64_t base, uint64_t size)
{
    int err;

    if (b->ecam_on && b->ecam_base == base && b->ecam_size == size)
        return 0;
    if (b->ecam_on) {
        bus_unregister(b->mmio, b->ecam_base);
        b->ecam_on = false;
    }
    if (size == 0)
        return 0;
    if ((size & ((1ULL << ECAM_BUS_SHIFT) - 1)) || size > ECAM_MAX_SIZE || (base & (size - 1)) ||
        base + size < base) {
        log_guest_once("pci", "ECAM window 0x%" PRIx64 " of 0x%" PRIx64 " bytes is not aligned "
                       "or too large: left disabled", base, size);
        return -EINVAL;
    }
    err = bus_register(b->mmio, base, size, "pci-ecam", &pci_ecam_ops, b);
    if (err) {
        log_guest_once("pci", "ECAM window at 0x%" PRIx64 " overlaps another device: left disabled",
                       base);
        return err;
    }
    b->ecam_on = true;
    b->ecam_base = base;
    b->ecam_size = size;
    return 0;
}

int pci_bus_set_ecam(struct pci_bus *b, uint64_t base, uint64_t size)
{
    pthread_mutex_lock(&b->lock);
    int r = pci_bus_set_ecam_locked(b, base, size);
    pthread_mutex_unlock(&b->lock);
    return r;
}
