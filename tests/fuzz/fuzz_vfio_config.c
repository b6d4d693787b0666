/* libFuzzer target: a hostile guest writing and reading the config space of
 * a passed-through function, over a device whose own config space (the
 * capability lists included) also comes from the input.
 *
 * Input:
 *   byte 0       options: bit 0 multi-function, 1 behind a root port,
 *                2 INTx, 3 4 KiB config region, 4 a 64 KiB ROM
 *   byte 1       MSI vectors VFIO reports (0-255)
 *   bytes 2-3    MSI-X vectors VFIO reports (little-endian, 0-65535)
 *   bytes 4-9    BAR region sizes as log2 (0 = none; 1-40)
 *   bytes 10-265 the device's config space 0x000-0x0FF
 *   bytes 266-521 the device's config space 0x100-0x1FF (rest is zero)
 *   then 7-byte operations: byte 0 bit 0 write/read, bits 1-2 length
 *   (1, 2, 4, or 3 = invalid), bits 3-4 a reset / MSI state apply;
 *   bytes 1-2 offset (little-endian, up to 0xFFFF: most out of range);
 *   bytes 3-6 the value.
 *
 * Invariants (abort on violation): read-only emulated bits never change;
 * the device never receives an emulated bit set; valid accesses succeed,
 * invalid ones fail; a decoded BAR is aligned and does not wrap; the MSI
 * state stays within what the capability allows; the capability walk
 * ends. The sanitizers check the rest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci/msix.h"
#include "vfio/config.h"
#include "vmm/log.h"

static uint8_t devcfg[VFIO_CFG_SPACE_SIZE];
static struct vfio_config cfg;
static bool cfg_ready;

static int dev_read(void *o, uint32_t off, void *buf, uint32_t len)
{
    if (off > VFIO_CFG_SPACE_SIZE || len > VFIO_CFG_SPACE_SIZE - off)
        abort();
    memcpy(buf, devcfg + off, len);
    return 0;
}

static int dev_write(void *o, uint32_t off, const void *buf, uint32_t len)
{
    if (off > VFIO_CFG_SPACE_SIZE || len > VFIO_CFG_SPACE_SIZE - off || !len)
        abort();
    const uint8_t *b = buf;
    for (uint32_t i = 0; i < len; i++) {
        if (cfg_ready && (b[i] & cfg.emask[off + i]))
            abort();            /* an emulated bit reached the device */
        if (cfg_ready && cfg.emask[off + i] == 0xff)
            abort();            /* a wholly emulated byte reached the device */
    }
    memcpy(devcfg + off, buf, len);
    return 0;
}

/* Recording interrupt callbacks: route/unroute must pair up. */
static bool routed[PCI_MSI_MAX_VECTORS];
static int on_kind = -1;
static int irq_enable(void *o, enum pci_irq_kind k, unsigned nr)
{
    if (on_kind != -1 || !nr || nr > PCI_MSI_MAX_VECTORS)
        abort();
    on_kind = k;
    return 0;
}
static void irq_disable(void *o, enum pci_irq_kind k)
{
    if (on_kind != (int)k)
        abort();
    on_kind = -1;
}
static int irq_route(void *o, enum pci_irq_kind k, unsigned v, uint64_t a, uint32_t d)
{
    if (on_kind != (int)k || v >= PCI_MSI_MAX_VECTORS)
        abort();
    routed[v] = true;
    return 0;
}
static void irq_unroute(void *o, enum pci_irq_kind k, unsigned v)
{
    if (v >= PCI_MSI_MAX_VECTORS || !routed[v])
        abort();
    routed[v] = false;
}
static bool irq_pending(void *o, enum pci_irq_kind k, unsigned v) { return v & 1; }
static const struct pci_irq_ops irq_ops = { irq_enable, irq_disable, irq_route, irq_unroute, irq_pending };

static uint32_t pending_cb(void *o) { return 0xA5A5A5A5u; }

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        log_set_level(LOG_ERR);
        quiet = true;
    }
    uint8_t hdr[522] = {0};
    memcpy(hdr, data, size < sizeof(hdr) ? size : sizeof(hdr));
    const uint8_t *ops = size > sizeof(hdr) ? data + sizeof(hdr) : NULL;
    size_t nops = ops ? (size - sizeof(hdr)) / 7 : 0;

    struct vfio_config_opts o = {
        .multifunction = hdr[0] & 1,
        .behind_root_port = hdr[0] & 2,
        .intx = hdr[0] & 4,
        .device_cfg_size = (hdr[0] & 8) ? VFIO_CFG_SPACE_SIZE : VFIO_CFG_LEGACY_SIZE,
        .rom_size = (hdr[0] & 16) ? 65536 : 0,
        .msi_vectors = hdr[1],
        .msix_vectors = (unsigned)(hdr[2] | hdr[3] << 8),
    };
    for (int i = 0; i < VFIO_NR_BARS; i++)
        o.bar_region_size[i] = hdr[4 + i] && hdr[4 + i] <= 40 ? 1ull << hdr[4 + i] : 0;
    memset(devcfg, 0, sizeof(devcfg));
    memcpy(devcfg, hdr + 10, 512);

    cfg_ready = false;
    struct vfio_config_dev dev = { dev_read, dev_write, NULL };
    char err[256];
    if (vfio_config_init(&cfg, &dev, &o, err, sizeof(err)) < 0)
        return 0;
    cfg_ready = true;
    cfg.msi_pending = pending_cb;
    if (cfg.size != VFIO_CFG_LEGACY_SIZE && cfg.size != VFIO_CFG_SPACE_SIZE)
        abort();
    for (unsigned i = 0; i < VFIO_CFG_SPACE_SIZE; i++)
        if (cfg.wmask[i] & ~cfg.emask[i])
            abort();            /* writable bits are always emulated bits */

    static uint8_t ro0[VFIO_CFG_SPACE_SIZE];
    for (unsigned i = 0; i < VFIO_CFG_SPACE_SIZE; i++)
        ro0[i] = cfg.emu[i] & cfg.emask[i] & ~cfg.wmask[i];

    struct pci_msi msi;
    memset(routed, 0, sizeof(routed));
    on_kind = -1;
    pci_msi_init(&msi, &irq_ops, NULL);

    for (size_t n = 0; n < nops; n++) {
        const uint8_t *op = ops + 7 * n;
        static const unsigned lens[4] = { 1, 2, 4, 3 };
        unsigned len = lens[(op[0] >> 1) & 3];
        uint32_t off = (uint32_t)(op[1] | op[2] << 8);
        uint32_t val = (uint32_t)op[3] | (uint32_t)op[4] << 8 | (uint32_t)op[5] << 16 |
                       (uint32_t)op[6] << 24;
        bool valid = len != 3 && !(off & (len - 1)) && off + len <= VFIO_CFG_SPACE_SIZE;
        if ((op[0] >> 3) & 1) {
            vfio_config_reset(&cfg);
            pci_msi_off(&msi);
        }
        if (op[0] & 1) {
            int ev = vfio_config_write(&cfg, off, len, val);
            if ((ev < 0) == valid)
                abort();
            if (ev > 0 && (ev & VFIO_CFG_EV_MSI)) {
                struct pci_msi_state st;
                vfio_config_msi_state(&cfg, &st);
                if (st.nr_vectors > cfg.msi_max_vectors || (st.nr_vectors & (st.nr_vectors - 1)))
                    abort();
                pci_msi_update(&msi, &st);
            }
        } else {
            uint32_t v;
            int r = vfio_config_read(&cfg, off, len, &v);
            if ((r < 0) == valid)
                abort();
        }
        for (unsigned i = 0; i < VFIO_CFG_SPACE_SIZE; i++)
            if ((cfg.emu[i] & cfg.emask[i] & ~cfg.wmask[i]) != ro0[i])
                abort();        /* a read-only emulated bit changed */
        for (unsigned b = 0; b < VFIO_NR_BARS; b++) {
            uint64_t a;
            if (vfio_config_bar_decoded(&cfg, b, &a)) {
                uint64_t s = cfg.bars[b].size;
                if (!s || (a & (s - 1)) || a + s < a)
                    abort();
            }
        }
        uint64_t ra;
        if (vfio_config_rom_decoded(&cfg, &ra) && (ra & (cfg.rom_size - 1)))
            abort();
    }
    vfio_config_find_cap(&cfg, 0x42);
    vfio_config_find_ext_cap(&cfg, 0x42);
    pci_msi_off(&msi);
    for (unsigned v = 0; v < PCI_MSI_MAX_VECTORS; v++)
        if (routed[v])
            abort();
    return 0;
}
