/* libFuzzer target: a guest poking bochs-display (devices/display/
 * bochs_display.h) through BAR2 and its config space. The input is a
 * sequence of 4-byte operations:
 *   byte 0 (mod 4): 0 = BAR2 write of le16(bytes 2-3) replicated, width
 *                       1 << (byte 1 >> 6 & 3), at DISPI/QEXT/anywhere
 *                       chosen by byte 1 (see below),
 *                   1 = BAR2 read, same addressing,
 *                   2 = config write: command (byte 1 odd) or BAR0/BAR2
 *                       address le16(bytes 2-3) << 16,
 *                   3 = check the scanout.
 *   address: byte 1 & 0x3f: < 0x16 DISPI + it, < 0x20 QEXT + (it & 7),
 *            else (it << 6) anywhere in the 4 KiB.
 * Invariants: an enabled scanout lies inside the framebuffer (its first and
 * last byte are touched, so ASan sees a read past the mapping), and
 * unplug leaves no memory slot and nothing on the MMIO bus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/display/bochs_display.h"
#include "devices/pci/pci.h"
#include "vmm/bus.h"
#include "vmm/dev_env.h"
#include "vmm/log.h"
#include "vmm/memslot.h"

#define DEVFN PCI_DEVFN(1, 0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct bus pio, mmio;
static struct dev_env env;
static struct memslots slots;
static struct pci_bus pb;
static struct bochs_display *bd;

static void init_once(void)
{
    if (bd)
        return;
    log_set_level(LOG_ERR);
    if (bus_init(&pio, "pio") || bus_init(&mmio, "mmio") || memslots_init(&slots, -1) ||
        pci_bus_init(&pb, &pio, &mmio))
        abort();
    env = (struct dev_env){ .pio = &pio, .mmio = &mmio };
    struct bochs_display_vm vm = { .env = &env, .slots = &slots };
    if (bochs_display_create(&vm, 0, &bd))
        abort();
}

static void check_scanout(void)
{
    struct bochs_display_scanout s;
    uint64_t size;
    uint8_t *fb = bochs_display_fb(bd, &size);

    bochs_display_scanout(bd, &s);
    if (!s.enabled)
        return;
    uint64_t start = (uint64_t)(s.fb - fb), len = (uint64_t)s.stride * s.height;
    if (s.fb < fb || !len || start + len > size || s.width == 0 || s.stride < s.width)
        abort();
    volatile uint8_t x = s.fb[0];
    x = s.fb[len - 1];
    (void)x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (bochs_display_plug(bd, &pb, NULL, DEVFN))
        abort();
    pci_config_write(&pb, 0, DEVFN, PCI_BAR0, 4, 0x80000000u);
    pci_config_write(&pb, 0, DEVFN, PCI_BAR0 + 8, 4, 0x81000000u);
    pci_config_write(&pb, 0, DEVFN, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    for (size_t i = 0; i + 4 <= size; i += 4) {
        const uint8_t *op = data + i;
        unsigned a = op[1] & 0x3f, width = 1u << (op[1] >> 6 & 3);
        uint64_t off = a < 0x16 ? BOCHS_DISPI_OFF + a
                     : a < 0x20 ? BOCHS_QEXT_OFF + (a & 7) : (uint64_t)a << 6;
        uint16_t v16 = (uint16_t)(op[2] | op[3] << 8);
        uint64_t v = v16 * 0x0001000100010001ull, r = 0;
        if (off + width > BOCHS_DISPLAY_MMIO_SIZE)
            off = BOCHS_DISPLAY_MMIO_SIZE - width;
        switch (op[0] & 3) {
        case 0:
            bochs_display_mmio_write(bd, off, &v, width);
            break;
        case 1:
            bochs_display_mmio_read(bd, off, &r, width);
            break;
        case 2:
            if (op[1] & 1)
                pci_config_write(&pb, 0, DEVFN, PCI_COMMAND, 2, v16 & PCI_COMMAND_MEMORY);
            else
                pci_config_write(&pb, 0, DEVFN, op[1] & 2 ? PCI_BAR0 + 8 : PCI_BAR0, 4,
                                 (uint32_t)v16 << 16);
            break;
        default:
            check_scanout();
        }
    }
    check_scanout();
    bochs_display_unplug(bd);
    for (unsigned k = 0; k < MEMSLOTS_MAX / 64; k++)
        if (slots.used[k])
            abort();
    if (bochs_display_fb_slot(bd) != -1 || mmio.nr)
        abort();
    return 0;
}
