/* libFuzzer target: a guest poking PCI config space through 0xCF8/0xCFC and
 * ECAM (devices/pci/pci.h) on a bus with the q35 host bridge, the ICH9 LPC, a
 * root port and an endpoint with I/O, 32-bit and 64-bit BARs that really
 * (un)registers its ranges as the guest moves them. The input is a sequence
 * of 8-byte operations:
 *   byte 0 (mod 5): 0 = CONFIG_ADDRESS = le32(bytes 4-7),
 *                   1 = CONFIG_DATA read, width 1 << (byte 1 % 3), port
 *                       0xCFC + (byte 2 & 3),
 *                   2 = CONFIG_DATA write of le32(bytes 4-7), same decoding,
 *                   3 = ECAM read at the MCH's window + le24(bytes 1-3) << 4
 *                       ... within 256 MiB, width 1 << (byte 4 % 4),
 *                   4 = ECAM write of le32(bytes 4-7) at le24(bytes 1-3),
 *                       width 1 << (byte 1 % 3).
 * Invariants: the host bridge keeps its IDs, every endpoint BAR that the
 * model says decodes is registered on its bus at that address, and
 * teardown leaves the buses empty. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/chipset/lpc_ich9.h"
#include "devices/pci/pci_root_port.h"
#include "devices/chipset/q35_mch.h"
#include "vmm/bus.h"
#include "vmm/log.h"

struct ep {
    struct pci_device dev;
    struct bus *pio, *mmio;
    bool registered[PCI_NR_BARS];
};

static int ep_rw_read(void *o, uint64_t off, void *d, unsigned len)
{
    memset(d, 0xAB, len);
    return 0;
}
static int ep_rw_write(void *o, uint64_t off, const void *d, unsigned len) { return 0; }
static const struct bus_ops ep_bar_ops = { .read = ep_rw_read, .write = ep_rw_write };

static void ep_bar_map(struct pci_device *d, unsigned bar, uint64_t addr)
{
    struct ep *e = d->opaque;
    struct bus *b = d->bars[bar].type == PCI_BAR_IO ? e->pio : e->mmio;

    if (e->registered[bar])
        bus_unregister(b, d->bars[bar].addr);
    e->registered[bar] = false;
    if (addr != PCI_BAR_UNMAPPED)
        e->registered[bar] = bus_register(b, addr, d->bars[bar].size, "ep-bar", &ep_bar_ops, e) == 0;
}
static const struct pci_device_ops ep_ops = { .bar_map = ep_bar_map };

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bus pio, mmio;
    struct pci_bus pb;
    struct q35_mch mch;
    struct lpc_ich9 *lpc;
    struct pci_root_port rp;
    struct ep ep = { 0 };

    log_set_level(LOG_ERR);
    if (bus_init(&pio, "pio") || bus_init(&mmio, "mmio") || pci_bus_init(&pb, &pio, &mmio) ||
        pci_bus_attach_pio(&pb))
        abort();
    struct dev_env env = { .pio = &pio, .mmio = &mmio };
    struct q35_mch_config mc = { .lowmem = 0x80000000ULL, .ecam_preset = true };
    struct lpc_ich9_config lc = { .sci_gsi = 9 };
    struct pci_root_port_config rc = { .port_nr = 0, .slot_nr = 1 };
    if (q35_mch_init(&mch, &pb, &mc) || lpc_ich9_create(&env, &pb, &lc, &lpc) ||
        pci_root_port_init(&rp, &rc) || pci_bus_add(&pb, NULL, PCI_DEVFN(2, 0), &rp.dev))
        abort();
    ep.pio = &pio;
    ep.mmio = &mmio;
    ep.dev.ops = &ep_ops;
    ep.dev.opaque = &ep;
    pci_device_init(&ep.dev, "ep", 0x1AF4, 0x1041, 0x020000, 1, 0, PCI_CFG_SIZE);
    if (pci_device_set_bar(&ep.dev, 0, PCI_BAR_IO, false, 0x40) ||
        pci_device_set_bar(&ep.dev, 1, PCI_BAR_MEM32, false, 0x1000) ||
        pci_device_set_bar(&ep.dev, 2, PCI_BAR_MEM64, true, 0x4000) ||
        pci_cap_add(&ep.dev, 0x40, PCI_CAP_ID_EXP, PCI_EXP_CAP_LEN) < 0 ||
        pci_bus_add(&pb, &rp.dev, 0, &ep.dev))
        abort();

    for (size_t off = 0; off + 8 <= size; off += 8) {
        const uint8_t *op = data + off;
        uint8_t buf[8];
        unsigned w = 1u << (op[1] % 3);
        uint64_t eb, es;
        switch (op[0] % 5) {
        case 0:
            bus_write(&pio, 0xCF8, op + 4, 4);
            break;
        case 1:
            bus_read(&pio, 0xCFC + (op[2] & 3u), buf, w);
            break;
        case 2:
            bus_write(&pio, 0xCFC + (op[2] & 3u), op + 4, w);
            break;
        case 3:
        case 4:
            pthread_mutex_lock(&pb.lock);
            bool on = q35_mch_ecam(&mch, &eb, &es);
            pthread_mutex_unlock(&pb.lock);
            if (!on)
                break;
            uint64_t a = eb + ((le(op + 1, 3) << 4) % es);
            if (op[0] % 5 == 3)
                bus_read(&mmio, a, buf, 1u << (op[4] % 4));
            else
                bus_write(&mmio, a, op + 4, w);
            break;
        }
    }
    if (pci_cfg_get(&mch.dev, 0, 4) != 0x29C08086u)
        abort();
    for (unsigned i = 0; i < PCI_NR_BARS; i++) {
        if (!ep.registered[i])
            continue;
        struct bus *b = ep.dev.bars[i].type == PCI_BAR_IO ? &pio : &mmio;
        const struct bus_range *r = bus_find(b, ep.dev.bars[i].addr, 1);
        if (!r || r->base != ep.dev.bars[i].addr || r->opaque != &ep)
            abort();
    }
    for (unsigned i = 0; i < PCI_NR_BARS; i++)
        if (ep.registered[i])
            bus_unregister(ep.dev.bars[i].type == PCI_BAR_IO ? &pio : &mmio, ep.dev.bars[i].addr);
    pci_bus_remove(&pb, &ep.dev);
    pci_bus_remove(&pb, &rp.dev);
    lpc_ich9_destroy(lpc);
    q35_mch_fini(&mch);
    pci_bus_fini(&pb);
    if (pio.nr || mmio.nr)
        abort();
    bus_fini(&pio);
    bus_fini(&mmio);
    return 0;
}
