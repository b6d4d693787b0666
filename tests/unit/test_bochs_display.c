/* bochs-display (devices/display/bochs_display.h) driven as OVMF's
 * QemuVideoDxe does: BARs sized and programmed through config space, the
 * DISPI registers through BAR2 on the MMIO bus; memory slots from a
 * memslots table without KVM (vm_fd -1), so slot use is visible. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/display/bochs_display.h"
#include "devices/display/display_args.h"
#include "devices/pci/pci.h"
#include "vmm/memslot.h"
#include "fake_env.h"

#define DEVFN   PCI_DEVFN(1, 0)
#define FB_GPA  0x80000000ull
#define MMIO_GPA 0x81000000ull

static struct fake_env fe;
static struct memslots slots;
static struct pci_bus pb;
static struct bochs_display *bd;

static void setup(void)
{
    fake_env_init(&fe);
    cr_assert_eq(memslots_init(&slots, -1), 0);
    cr_assert_eq(pci_bus_init(&pb, &fe.pio, &fe.mmio), 0);
    struct bochs_display_vm vm = { .env = &fe.env, .slots = &slots };
    cr_assert_eq(bochs_display_create(&vm, 0, &bd), 0);
    cr_assert_eq(bochs_display_plug(bd, &pb, NULL, DEVFN), 0);
}

static void teardown(void)
{
    bochs_display_destroy(bd);
    pci_bus_fini(&pb);
    memslots_fini(&slots);
    fake_env_fini(&fe);
}

TestSuite(bochs_display, .init = setup, .fini = teardown);

static uint32_t cfg_rd(uint32_t off, unsigned len)
{
    uint32_t v = 0;
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, off, len, &v), 0);
    return v;
}

static void cfg_wr(uint32_t off, unsigned len, uint32_t v)
{
    cr_assert_eq(pci_config_write(&pb, 0, DEVFN, off, len, v), 0);
}

static unsigned slots_used(void)
{
    unsigned n = 0;
    for (unsigned i = 0; i < MEMSLOTS_MAX / 64; i++)
        n += (unsigned)__builtin_popcountll(slots.used[i]);
    return n;
}

static void program_bars(void)
{
    cfg_wr(PCI_BAR0, 4, (uint32_t)FB_GPA);
    cfg_wr(PCI_BAR0 + 8, 4, (uint32_t)MMIO_GPA);
    cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
}

static uint16_t dispi_rd(unsigned idx)
{
    uint16_t v = 0;
    cr_assert_eq(bus_read(&fe.mmio, MMIO_GPA + BOCHS_DISPI_OFF + 2 * idx, &v, 2), 0);
    return v;
}

static void dispi_wr(unsigned idx, uint16_t v)
{
    cr_assert_eq(bus_write(&fe.mmio, MMIO_GPA + BOCHS_DISPI_OFF + 2 * idx, &v, 2), 0);
}

/* InitializeBochsGraphicsMode's sequence */
static void ovmf_set_mode(uint16_t w, uint16_t h, uint16_t bpp)
{
    uint8_t b = 1;
    bus_write(&fe.mmio, MMIO_GPA + BOCHS_VGA_OFF + 2, &b, 1);    /* 0x3c2 */
    dispi_wr(VBE_DISPI_INDEX_BANK, 0);
    dispi_wr(VBE_DISPI_INDEX_ENABLE, 0);
    dispi_wr(VBE_DISPI_INDEX_X_OFFSET, 0);
    dispi_wr(VBE_DISPI_INDEX_Y_OFFSET, 0);
    dispi_wr(VBE_DISPI_INDEX_BPP, bpp);
    dispi_wr(VBE_DISPI_INDEX_XRES, w);
    dispi_wr(VBE_DISPI_INDEX_VIRT_WIDTH, w);
    dispi_wr(VBE_DISPI_INDEX_YRES, h);
    dispi_wr(VBE_DISPI_INDEX_VIRT_HEIGHT, h);
    dispi_wr(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED);
}

Test(bochs_display, ids_and_bar_sizing)
{
    cr_assert_eq(cfg_rd(PCI_VENDOR_ID, 2), 0x1234);
    cr_assert_eq(cfg_rd(PCI_DEVICE_ID, 2), 0x1111);
    cr_assert_eq(cfg_rd(PCI_REVISION_ID, 4) >> 8, 0x038000);
    cr_assert_eq(cfg_rd(PCI_REVISION_ID, 1), 2);
    cr_assert_eq(cfg_rd(PCI_INTERRUPT_PIN, 1), 0);
    cfg_wr(PCI_BAR0, 4, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(PCI_BAR0, 4), 0xFF000008u, "16 MiB, 32-bit, prefetchable");
    cfg_wr(PCI_BAR0 + 8, 4, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(PCI_BAR0 + 8, 4), 0xFFFFF000u, "4 KiB, 32-bit, not prefetchable");
    cfg_wr(PCI_BAR0 + 4, 4, 0xFFFFFFFF);
    cr_assert_eq(cfg_rd(PCI_BAR0 + 4, 4), 0, "no BAR1");
    cr_assert_eq(slots_used(), 0, "nothing decodes before memory enable");
}

Test(bochs_display, id_probe_and_video_memory)
{
    program_bars();
    cr_assert_eq(bochs_display_fb_slot(bd) >= 0, true);
    cr_assert_eq(slots_used(), 1);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_ID) & 0xFFF0, VBE_DISPI_ID0);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_ID), VBE_DISPI_ID5);
    dispi_wr(VBE_DISPI_INDEX_ID, 0xB0C0);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_ID), VBE_DISPI_ID5);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_VIDEO_MEMORY_64K), 256, "16 MiB / 64 KiB");
    dispi_wr(VBE_DISPI_INDEX_VIDEO_MEMORY_64K, 1);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_VIDEO_MEMORY_64K), 256, "read-only");
    uint32_t v = 0;
    cr_assert_eq(bus_read(&fe.mmio, MMIO_GPA + BOCHS_QEXT_OFF, &v, 4), 0);
    cr_assert_eq(v, 8);
    cr_assert_eq(bus_read(&fe.mmio, MMIO_GPA + BOCHS_QEXT_OFF + 4, &v, 4), 0);
    cr_assert_eq(v, BOCHS_QEXT_LITTLE_ENDIAN);
    /* EDID: no blob, so OVMF's magic check (00 FF) fails */
    uint8_t edid[128];
    memset(edid, 0xAA, sizeof(edid));
    for (unsigned i = 0; i < sizeof(edid); i++)
        cr_assert_eq(bus_read(&fe.mmio, MMIO_GPA + i, &edid[i], 1), 0);
    cr_assert_eq(edid[0], 0);
    cr_assert_eq(edid[1], 0);
}

Test(bochs_display, mode_1024x768x32)
{
    struct bochs_display_scanout s;
    uint64_t size;
    uint8_t *fb = bochs_display_fb(bd, &size);

    program_bars();
    bochs_display_scanout(bd, &s);
    cr_assert(!s.enabled);
    uint64_t g0 = s.generation;
    memset(fb, 0x55, 4096);
    ovmf_set_mode(1024, 768, 32);
    bochs_display_scanout(bd, &s);
    cr_assert(s.enabled);
    cr_assert_eq(s.width, 1024);
    cr_assert_eq(s.height, 768);
    cr_assert_eq(s.stride, 4096);
    cr_assert_eq(s.bpp, 32);
    cr_assert(!s.big_endian);
    cr_assert_eq(s.fb, fb);
    cr_assert_neq(s.generation, g0);
    cr_assert_eq(bochs_display_generation(bd), s.generation);
    cr_assert_eq(fb[0], 0, "enabling without NOCLEARMEM clears the picture");
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_ENABLE), VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_XRES), 1024);

    /* a pan offset moves the first pixel; NOCLEARMEM keeps the pixels */
    dispi_wr(VBE_DISPI_INDEX_ENABLE, 0);
    fb[4096 * 10 + 4 * 8] = 0x77;
    dispi_wr(VBE_DISPI_INDEX_VIRT_HEIGHT, 1536);
    dispi_wr(VBE_DISPI_INDEX_Y_OFFSET, 10);
    dispi_wr(VBE_DISPI_INDEX_X_OFFSET, 8);
    dispi_wr(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_NOCLEARMEM);
    bochs_display_scanout(bd, &s);
    cr_assert(s.enabled);
    cr_assert_eq(s.fb, fb + 4096 * 10 + 4 * 8);
    cr_assert_eq(s.fb[0], 0x77);

    /* a byte-order write shows in the mode */
    uint32_t be = BOCHS_QEXT_BIG_ENDIAN;
    cr_assert_eq(bus_write(&fe.mmio, MMIO_GPA + BOCHS_QEXT_OFF + 4, &be, 4), 0);
    bochs_display_scanout(bd, &s);
    cr_assert(s.big_endian);
}

Test(bochs_display, too_large_mode_refused)
{
    struct bochs_display_scanout s;
    uint64_t size;
    uint8_t *fb = bochs_display_fb(bd, &size);

    program_bars();
    ovmf_set_mode(4096, 2160, 32);      /* 33.75 MiB > 16 MiB */
    bochs_display_scanout(bd, &s);
    cr_assert(!s.enabled);
    cr_assert_null(s.fb);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_ENABLE) & VBE_DISPI_ENABLED, 0, "ENABLED cleared");
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_XRES), 4096, "registers keep what was written");

    /* 1920x1080 fits; an offset that pushes it past the end does not */
    ovmf_set_mode(1920, 1080, 32);
    bochs_display_scanout(bd, &s);
    cr_assert(s.enabled);
    cr_assert_leq((uint64_t)(s.fb - fb) + (uint64_t)s.stride * s.height, size);
    dispi_wr(VBE_DISPI_INDEX_Y_OFFSET, 2000);
    bochs_display_scanout(bd, &s);
    cr_assert(!s.enabled, "a pan past the BAR disables");
    /* a virtual height past the BAR alone is refused too */
    dispi_wr(VBE_DISPI_INDEX_Y_OFFSET, 0);
    dispi_wr(VBE_DISPI_INDEX_VIRT_HEIGHT, 3000);
    dispi_wr(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED);
    bochs_display_scanout(bd, &s);
    cr_assert(!s.enabled);
    /* the largest: 16000 wide does not fit at any height over 262 */
    ovmf_set_mode(16000, 12000, 32);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_ENABLE) & VBE_DISPI_ENABLED, 0);
    ovmf_set_mode(0xFFFF, 0xFFFF, 32);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_ENABLE) & VBE_DISPI_ENABLED, 0);
    ovmf_set_mode(0, 768, 32);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_ENABLE) & VBE_DISPI_ENABLED, 0);
}

Test(bochs_display, bpp_values)
{
    static const struct { uint16_t bpp; uint32_t stride; } ok[] = {
        { 8, 1024 }, { 15, 2048 }, { 16, 2048 }, { 24, 3072 }, { 32, 4096 },
    };
    struct bochs_display_scanout s;

    program_bars();
    for (unsigned i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ovmf_set_mode(1024, 768, ok[i].bpp);
        bochs_display_scanout(bd, &s);
        cr_assert(s.enabled, "bpp %u", ok[i].bpp);
        cr_assert_eq(s.bpp, ok[i].bpp);
        cr_assert_eq(s.stride, ok[i].stride);
    }
    static const uint16_t bad[] = { 0, 1, 4, 12, 31, 33, 64, 0xFFFF };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ovmf_set_mode(1024, 768, bad[i]);
        bochs_display_scanout(bd, &s);
        cr_assert(!s.enabled, "bpp %u refused", bad[i]);
        cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_ENABLE) & VBE_DISPI_ENABLED, 0);
    }
}

Test(bochs_display, access_widths)
{
    program_bars();
    /* one dword write sets XRES and YRES; byte reads compose */
    uint32_t v = 800u | 600u << 16;
    cr_assert_eq(bus_write(&fe.mmio, MMIO_GPA + BOCHS_DISPI_OFF + 2, &v, 4), 0);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_XRES), 800);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_YRES), 600);
    uint8_t b = 0x12;
    cr_assert_eq(bus_write(&fe.mmio, MMIO_GPA + BOCHS_DISPI_OFF + 3, &b, 1), 0);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_XRES), 0x1220);
    uint64_t q = 0;
    cr_assert_eq(bus_read(&fe.mmio, MMIO_GPA + BOCHS_DISPI_OFF + 0x10, &q, 8), 0);
    cr_assert_eq(q >> 32, 256, "VIDEO_MEMORY_64K in the upper half, then 0");
    /* the last bytes of BAR2 */
    cr_assert_eq(bus_read(&fe.mmio, MMIO_GPA + BOCHS_DISPLAY_MMIO_SIZE - 8, &q, 8), 0);
    cr_assert_eq(q, 0);
    cr_assert_eq(bus_write(&fe.mmio, MMIO_GPA + BOCHS_DISPLAY_MMIO_SIZE - 8, &q, 8), 0);
    cr_assert_eq(bochs_display_mmio_read(bd, BOCHS_DISPLAY_MMIO_SIZE - 2, &q, 4), -EINVAL);
}

Test(bochs_display, bar_move_and_disable)
{
    program_bars();
    int s0 = bochs_display_fb_slot(bd);
    cr_assert_geq(s0, 0);
    cr_assert_eq(slots_used(), 1);
    /* memory decoding off: the slot and BAR2 go */
    cfg_wr(PCI_COMMAND, 2, 0);
    cr_assert_eq(bochs_display_fb_slot(bd), -1);
    cr_assert_eq(slots_used(), 0);
    uint16_t v = 0;
    cr_assert_eq(bus_read(&fe.mmio, MMIO_GPA + BOCHS_DISPI_OFF, &v, 2), -ENOENT);
    /* on again, then the BAR moves: one slot, at the new place */
    cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    cr_assert_eq(slots_used(), 1);
    cfg_wr(PCI_BAR0, 4, 0x90000000u);
    cr_assert_geq(bochs_display_fb_slot(bd), 0);
    cr_assert_eq(slots_used(), 1);
    cfg_wr(PCI_BAR0 + 8, 4, 0x91000000u);
    cr_assert_eq(bus_read(&fe.mmio, 0x91000000u + BOCHS_DISPI_OFF, &v, 2), 0);
    cr_assert_eq(v, VBE_DISPI_ID5);
    cr_assert_eq(bus_read(&fe.mmio, MMIO_GPA + BOCHS_DISPI_OFF, &v, 2), -ENOENT);
}

Test(bochs_display, reset_on_unplug)
{
    struct bochs_display_scanout s;

    program_bars();
    ovmf_set_mode(1024, 768, 32);
    bochs_display_scanout(bd, &s);
    cr_assert(s.enabled);
    bochs_display_unplug(bd);
    cr_assert_eq(slots_used(), 0);
    cr_assert_eq(bochs_display_fb_slot(bd), -1);
    bochs_display_scanout(bd, &s);
    cr_assert(!s.enabled);
    bochs_display_unplug(bd);       /* safe when not plugged */
    cr_assert_eq(bochs_display_plug(bd, &pb, NULL, DEVFN), 0);
    cr_assert_eq(cfg_rd(PCI_COMMAND, 2), 0);
    cr_assert_eq(cfg_rd(PCI_BAR0, 4), 8, "BAR0 back to power-on");
    program_bars();
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_ENABLE), 0);
    cr_assert_eq(dispi_rd(VBE_DISPI_INDEX_XRES), 0);
}

Test(bochs_display, attach)
{
    struct pcidev_list l = { .nr = 0 };
    struct pcidev_host h = { .env = &fe.env, .slots = &slots, .vm_fd = -1, .io_pin = -1 };
    struct display_args a = { .kind = DISPLAY_NONE };

    cr_assert_eq(bochs_display_attach(&h, &a, &l), 0);
    cr_assert_eq(l.nr, 0);
    a.kind = DISPLAY_STD;
    cr_assert_eq(bochs_display_attach(&h, &a, &l), 0);
    cr_assert_eq(l.nr, 1);
    cr_assert_eq(l.dev[0].kind, PCIDEV_DISPLAY);
    cr_assert_eq(l.dev[0].place, PCIDEV_ROOT_BUS);
    cr_assert_eq(l.dev[0].boot_index, PCIDEV_NO_BOOT);
    pcidev_list_destroy(&l);
    struct bochs_display_vm vm = { .env = &fe.env, .slots = &slots };
    struct bochs_display *x;
    cr_assert_eq(bochs_display_create(&vm, 3u << 20, &x), -EINVAL, "not a power of two");
}

/* --display */
Test(display_args, parse)
{
    struct display_args a = { .kind = DISPLAY_NONE };
    char err[200];
    bool tv = false;

    cr_assert(display_args_flag("--display", 9, &tv));
    cr_assert(tv);
    cr_assert(!display_args_flag("--displays", 10, &tv));
    cr_assert_eq(display_args_apply(&a, "--display", 9, "std", err, sizeof(err)), 0);
    cr_assert_eq(a.kind, DISPLAY_STD);
    cr_assert_eq(display_args_apply(&a, "--display", 9, "none", err, sizeof(err)), -EINVAL,
                 "given twice");
    cr_assert(strstr(err, "once"));
    struct display_args b = { .kind = DISPLAY_NONE };
    cr_assert_eq(display_args_apply(&b, "--display", 9, "none", err, sizeof(err)), 0);
    cr_assert_eq(b.kind, DISPLAY_NONE);
    struct display_args c = { .kind = DISPLAY_NONE };
    cr_assert_eq(display_args_apply(&c, "--display", 9, "vga", err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "--display vga"), "%s", err);
    cr_assert_eq(display_args_apply(&c, "--display", 9, "", err, sizeof(err)), -EINVAL);
    cr_assert_eq(display_args_apply(&c, "--display", 9, NULL, err, sizeof(err)), -EINVAL);
    cr_assert_eq(c.kind, DISPLAY_NONE);
}
