/* The PCI layer's MSI-X table/PBA emulation and MSI vector state: see
 * devices/pci/msix.h for the register map and the masking rules. */
#include "devices/pci/msix.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

#define COMP "pci-msix"

/* Byte offsets within a table entry (PCI 3.0 §6.8.2.6). */
#define ENTRY_ADDR_LO  0x0
#define ENTRY_ADDR_HI  0x4
#define ENTRY_DATA     0x8
#define ENTRY_CTRL     0xC
#define CTRL_MASKBIT   0x1u

/* Guest-writable bits of each byte of an entry: address bits 1:0 read 0
 * (dword-aligned messages), only bit 0 of vector control exists. */
static const uint8_t entry_wmask[PCI_MSIX_ENTRY_SIZE] = {
    0xFC, 0xFF, 0xFF, 0xFF,  0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF,  0x01, 0x00, 0x00, 0x00,
};

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Bring one vector's route in line with what the guest wants. */
static void vec_sync(const struct pci_irq_ops *ops, void *opaque, enum pci_irq_kind kind,
                     unsigned v, struct pci_vector_state *s, bool want, uint64_t addr, uint32_t data)
{
    if (!want) {
        if (s->routed) {
            ops->unroute(opaque, kind, v);
            s->routed = false;
        }
        return;
    }
    if (s->routed && s->addr == addr && s->data == data)
        return;
    int r = ops->route(opaque, kind, v, addr, data);
    if (r < 0) {
        log_guest_once(COMP, "vector %u (address 0x%llx, data 0x%x) cannot be routed: %s",
                       v, (unsigned long long)addr, data, strerror(-r));
        if (s->routed)
            ops->unroute(opaque, kind, v);
        s->routed = false;
        return;
    }
    s->routed = true;
    s->addr = addr;
    s->data = data;
}

int pci_msix_init(struct pci_msix *m, unsigned nr, const struct pci_irq_ops *ops, void *opaque)
{
    memset(m, 0, sizeof(*m));
    if (!nr || nr > PCI_MSIX_MAX_VECTORS)
        return -EINVAL;
    m->table = calloc(nr, PCI_MSIX_ENTRY_SIZE);
    m->vec = calloc(nr, sizeof(*m->vec));
    if (!m->table || !m->vec) {
        free(m->table);
        free(m->vec);
        m->table = NULL;
        m->vec = NULL;
        return -ENOMEM;
    }
    m->nr = nr;
    m->ops = ops;
    m->opaque = opaque;
    for (unsigned v = 0; v < nr; v++)
        m->table[v * PCI_MSIX_ENTRY_SIZE + ENTRY_CTRL] = CTRL_MASKBIT;
    return 0;
}

static void msix_device_off(struct pci_msix *m)
{
    for (unsigned v = 0; v < m->nr; v++)
        vec_sync(m->ops, m->opaque, PCI_IRQ_KIND_MSIX, v, &m->vec[v], false, 0, 0);
    if (m->dev_on) {
        m->ops->disable(m->opaque, PCI_IRQ_KIND_MSIX);
        m->dev_on = false;
    }
}

void pci_msix_fini(struct pci_msix *m)
{
    if (!m->table)
        return;
    msix_device_off(m);
    free(m->table);
    free(m->vec);
    m->table = NULL;
    m->vec = NULL;
    m->nr = 0;
}

bool pci_msix_vector_masked(const struct pci_msix *m, unsigned v)
{
    if (v >= m->nr)
        return true;
    return !m->enabled || m->fmask ||
           (m->table[v * PCI_MSIX_ENTRY_SIZE + ENTRY_CTRL] & CTRL_MASKBIT);
}

static void msix_sync_vector(struct pci_msix *m, unsigned v)
{
    const uint8_t *e = m->table + (size_t)v * PCI_MSIX_ENTRY_SIZE;
    bool want = m->dev_on && !pci_msix_vector_masked(m, v);
    uint64_t addr = rd32(e + ENTRY_ADDR_LO) | (uint64_t)rd32(e + ENTRY_ADDR_HI) << 32;
    vec_sync(m->ops, m->opaque, PCI_IRQ_KIND_MSIX, v, &m->vec[v], want, addr, rd32(e + ENTRY_DATA));
}

static bool range_ok(uint64_t off, unsigned len, uint32_t size)
{
    return len >= 1 && len <= 8 && off < size && len <= size - off;
}

int pci_msix_table_read(struct pci_msix *m, uint64_t off, void *data, unsigned len)
{
    if (!range_ok(off, len, pci_msix_table_size(m))) {
        if (len <= 8)
            memset(data, 0xff, len);
        log_guest_once(COMP, "MSI-X table read at 0x%llx, length %u: outside the %u-entry table",
                       (unsigned long long)off, len, m->nr);
        return -EINVAL;
    }
    memcpy(data, m->table + off, len);
    return 0;
}

int pci_msix_table_write(struct pci_msix *m, uint64_t off, const void *data, unsigned len)
{
    if (!range_ok(off, len, pci_msix_table_size(m))) {
        log_guest_once(COMP, "MSI-X table write at 0x%llx, length %u: outside the %u-entry table",
                       (unsigned long long)off, len, m->nr);
        return -EINVAL;
    }
    const uint8_t *src = data;
    for (unsigned i = 0; i < len; i++) {
        uint64_t o = off + i;
        uint8_t w = entry_wmask[o % PCI_MSIX_ENTRY_SIZE];
        m->table[o] = (uint8_t)((m->table[o] & ~w) | (src[i] & w));
    }
    /* A write of at most 8 bytes touches at most two entries. */
    unsigned first = (unsigned)(off / PCI_MSIX_ENTRY_SIZE);
    unsigned last = (unsigned)((off + len - 1) / PCI_MSIX_ENTRY_SIZE);
    for (unsigned v = first; v <= last; v++)
        msix_sync_vector(m, v);
    return 0;
}

int pci_msix_pba_read(struct pci_msix *m, uint64_t off, void *data, unsigned len)
{
    if (!range_ok(off, len, pci_msix_pba_size(m))) {
        if (len <= 8)
            memset(data, 0xff, len);
        log_guest_once(COMP, "MSI-X PBA read at 0x%llx, length %u: outside the PBA",
                       (unsigned long long)off, len);
        return -EINVAL;
    }
    uint8_t *dst = data;
    for (unsigned i = 0; i < len; i++) {
        uint8_t byte = 0;
        for (unsigned b = 0; b < 8; b++) {
            unsigned v = (unsigned)((off + i) * 8 + b);
            if (v >= m->nr)
                break;
            /* A routed vector delivers at once: never pending. */
            if (m->dev_on && !m->vec[v].routed && m->ops->pending(m->opaque, PCI_IRQ_KIND_MSIX, v))
                byte |= (uint8_t)(1u << b);
        }
        dst[i] = byte;
    }
    return 0;
}

int pci_msix_pba_write(struct pci_msix *m, uint64_t off, const void *data, unsigned len)
{
    (void)data;
    if (!range_ok(off, len, pci_msix_pba_size(m))) {
        log_guest_once(COMP, "MSI-X PBA write at 0x%llx, length %u: outside the PBA",
                       (unsigned long long)off, len);
        return -EINVAL;
    }
    /* Pending bits are read-only (PCI 3.0 §6.8.2.10): ignored. */
    return 0;
}

void pci_msix_control(struct pci_msix *m, bool enable, bool function_mask)
{
    if (!m->table)
        return;
    if (!enable) {
        m->enabled = false;
        m->fmask = function_mask;
        msix_device_off(m);
        return;
    }
    m->enabled = true;
    m->fmask = function_mask;
    if (!m->dev_on) {
        int r = m->ops->enable(m->opaque, PCI_IRQ_KIND_MSIX, m->nr);
        if (r < 0) {
            log_guest_once(COMP, "enabling MSI-X with %u vectors at the device failed: %s",
                           m->nr, strerror(-r));
            return;
        }
        m->dev_on = true;
    }
    for (unsigned v = 0; v < m->nr; v++)
        msix_sync_vector(m, v);
}

void pci_msix_reset(struct pci_msix *m)
{
    if (!m->table)
        return;
    m->enabled = false;
    m->fmask = false;
    msix_device_off(m);
    memset(m->table, 0, pci_msix_table_size(m));
    for (unsigned v = 0; v < m->nr; v++)
        m->table[v * PCI_MSIX_ENTRY_SIZE + ENTRY_CTRL] = CTRL_MASKBIT;
}

void pci_msi_init(struct pci_msi *msi, const struct pci_irq_ops *ops, void *opaque)
{
    memset(msi, 0, sizeof(*msi));
    msi->ops = ops;
    msi->opaque = opaque;
}

void pci_msi_off(struct pci_msi *msi)
{
    for (unsigned v = 0; v < PCI_MSI_MAX_VECTORS; v++)
        vec_sync(msi->ops, msi->opaque, PCI_IRQ_KIND_MSI, v, &msi->vec[v], false, 0, 0);
    if (msi->dev_nr) {
        msi->ops->disable(msi->opaque, PCI_IRQ_KIND_MSI);
        msi->dev_nr = 0;
    }
}

void pci_msi_update(struct pci_msi *msi, const struct pci_msi_state *st)
{
    unsigned nr = st->nr_vectors;
    if (nr > PCI_MSI_MAX_VECTORS)
        nr = PCI_MSI_MAX_VECTORS;
    if (!st->enabled || !nr) {
        pci_msi_off(msi);
        return;
    }
    if (msi->dev_nr != nr) {
        /* The vector count is fixed while enabled at the device: redo. */
        pci_msi_off(msi);
        int r = msi->ops->enable(msi->opaque, PCI_IRQ_KIND_MSI, nr);
        if (r < 0) {
            log_guest_once(COMP, "enabling MSI with %u vectors at the device failed: %s",
                           nr, strerror(-r));
            return;
        }
        msi->dev_nr = nr;
    }
    for (unsigned v = 0; v < PCI_MSI_MAX_VECTORS; v++) {
        bool masked = st->per_vector_mask && (st->mask & (1u << v));
        msi->masked[v] = masked;
        /* Multiple messages: vector v replaces the low log2(nr) bits of
         * the data (PCI 3.0 §6.8.3.4). */
        uint32_t data = (st->data & ~(uint32_t)(nr - 1)) | v;
        vec_sync(msi->ops, msi->opaque, PCI_IRQ_KIND_MSI, v, &msi->vec[v],
                 v < nr && !masked, st->address, data);
    }
}

uint32_t pci_msi_pending(struct pci_msi *msi)
{
    uint32_t bits = 0;
    for (unsigned v = 0; v < msi->dev_nr && v < PCI_MSI_MAX_VECTORS; v++)
        if (!msi->vec[v].routed && msi->ops->pending(msi->opaque, PCI_IRQ_KIND_MSI, v))
            bits |= 1u << v;
    return bits;
}
