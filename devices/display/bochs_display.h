/* An emulated bochs-display: QEMU's "-device bochs-display", the standard
 * VGA's register interface without the legacy VGA ports, which stock OVMF's
 * QemuVideoDxe drives and exposes as UEFI GOP (and Windows' basic display
 * driver then draws into the GOP framebuffer).
 *
 * PCI function (QEMU hw/display/bochs-display.c; docs/specs/standard-vga.rst):
 *   1234:1111, revision 2 (2+: the QEMU extended registers exist), class
 *   03.80.00 (display, other: not VGA compatible -- OVMF's QemuVideoDxe
 *   lists it as "QEMU Standard VGA (secondary)", variant BOCHS_MMIO, in
 *   Driver.c's card list), subsystem 1af4:1100 (QEMU's default). No
 *   interrupt. PCI Express capability at 0x80 (a root-complex integrated
 *   endpoint on bus 0), as QEMU adds on an express bus.
 *   BAR0  the linear framebuffer: 32-bit prefetchable memory, 16 MiB by
 *         default. Host memory (an anonymous mapping) given to KVM as a
 *         memory slot while the BAR decodes, so guest pixel writes cost no
 *         exit; the slot goes when the BAR moves or stops decoding.
 *   BAR2  4 KiB of MMIO registers (standard-vga.rst "PCI spec"):
 *           0x000-0x3ff  EDID blob (QEMU: when edid=on). Not provided here:
 *                        reads are 0. OVMF (QemuVideoBochsEdid) reads 128
 *                        bytes only as a preferred-resolution hint; without
 *                        the 00 FF magic it logs "magic check failed" and
 *                        keeps its own mode list.
 *           0x400-0x41f  VGA ioports 0x3c0-0x3df (stdvga only). OVMF's
 *                        InitializeBochsGraphicsMode writes 0x3c2/0x3c0 and
 *                        reads 0x3da through them for every BOCHS_MMIO card,
 *                        bochs-display included; QEMU's bochs-display has
 *                        nothing there. Reads 0, writes ignored.
 *           0x500-0x515  DISPI registers, 16-bit, index i at 0x500 + 2*i
 *                        (OVMF's BochsRead/BochsWrite):
 *             0 ID          reads 0xB0C5 (VBE_DISPI_ID5, as bochs-display;
 *                           OVMF accepts (ID & 0xFFF0) == 0xB0C0)
 *             1 XRES  2 YRES  3 BPP  4 ENABLE  5 BANK  6 VIRT_WIDTH
 *             7 VIRT_HEIGHT  8 X_OFFSET  9 Y_OFFSET
 *             10 VIDEO_MEMORY_64K  read-only: BAR0 size / 64 KiB. OVMF
 *                           (QemuVideoBochsModeSetup) multiplies it by 64 KiB
 *                           and offers only its 32-bit modes that fit.
 *           0x600-0x607  QEMU extended registers, 32-bit:
 *             0x600 region size (8)
 *             0x604 framebuffer byte order: 0xbebebebe big endian,
 *                   0x1e1e1e1e little endian (the default); other writes
 *                   are ignored
 *           anything else reads 0, writes are ignored.
 *   Accesses of 1 to 8 bytes anywhere in BAR2 are taken byte by byte
 *   (little endian), as QEMU's access splitting does.
 *
 * The mode (there is no spec: bochs' VBE "DISPI" interface as QEMU's
 * bochs-display implements it). Registers keep what the guest wrote, as in
 * bochs-display; after every write the mode is evaluated once from one
 * snapshot of them:
 *   BPP 8, 15, 16, 24 or 32 (1, 2, 2, 3, 4 bytes a pixel); 1 <= XRES <=
 *   16000 and 1 <= YRES <= 12000 (VBE_DISPI_MAX_XRES/YRES); the line is
 *   VIRT_WIDTH pixels (XRES if smaller), so stride = max(VIRT_WIDTH, XRES)
 *   * bytes; the picture starts at X_OFFSET * bytes + Y_OFFSET * stride;
 *   it must fit the BAR: offset + YRES * stride <= BAR0 size and
 *   max(VIRT_HEIGHT, YRES) * stride <= BAR0 size.
 * ENABLE bit 0 (ENABLED) set with a mode that breaks a rule is refused: the
 * bit is cleared (reads back 0) and nothing is scanned out, so a guest (and
 * the display server behind the scanout API) never reads or writes past the
 * BAR. QEMU's bochs-display instead keeps the register and shows nothing
 * (bochs_display_get_mode fails); QEMU's stdvga clamps (vbe_fixup_regs).
 * Clearing ENABLED tells a driver that reads it back; OVMF and Linux' bochs
 * driver write ENABLE last, after the geometry, so a good mode is never
 * refused half-way. Enabling without NOCLEARMEM (bit 7) zeroes the picture
 * area, as QEMU's stdvga does. LFB (bit 6), 8BIT_DAC (bit 5) and GETCAPS
 * (bit 1) are kept but change nothing: there is no banked window and no
 * palette, and bochs-display answers no capabilities either. BANK is kept.
 *
 * Not here (yet): the EDID blob, a palette for 8 bpp, KVM's dirty log for
 * the framebuffer slot (for VNC; vmm/memslot.h takes no
 * KVM_MEM_LOG_DIRTY_PAGES flag yet), the VNC server itself. */
#ifndef MINIVMM_BOCHS_DISPLAY_H
#define MINIVMM_BOCHS_DISPLAY_H
#include <stdbool.h>
#include <stdint.h>

#include "devices/display/display_args.h"
#include "devices/pci/pcidev.h"

#define BOCHS_DISPLAY_VENDOR_ID   0x1234
#define BOCHS_DISPLAY_DEVICE_ID   0x1111
#define BOCHS_DISPLAY_CLASS       0x038000
#define BOCHS_DISPLAY_REVISION    2
#define BOCHS_DISPLAY_FB_SIZE     (16u << 20)   /* BAR0 default */
#define BOCHS_DISPLAY_MMIO_SIZE   0x1000u       /* BAR2 */
#define BOCHS_DISPLAY_FB_BAR      0
#define BOCHS_DISPLAY_MMIO_BAR    2

/* BAR2 layout (standard-vga.rst) */
#define BOCHS_EDID_OFF            0x000u
#define BOCHS_VGA_OFF             0x400u
#define BOCHS_DISPI_OFF           0x500u
#define BOCHS_QEXT_OFF            0x600u
#define BOCHS_QEXT_SIZE           8u
#define BOCHS_QEXT_REG_SIZE       0x0u
#define BOCHS_QEXT_REG_BYTEORDER  0x4u
#define BOCHS_QEXT_BIG_ENDIAN     0xbebebebeu
#define BOCHS_QEXT_LITTLE_ENDIAN  0x1e1e1e1eu

/* DISPI register indexes and values (bochs vbe.h, QEMU bochs-vbe.h) */
#define VBE_DISPI_INDEX_ID              0x0
#define VBE_DISPI_INDEX_XRES            0x1
#define VBE_DISPI_INDEX_YRES            0x2
#define VBE_DISPI_INDEX_BPP             0x3
#define VBE_DISPI_INDEX_ENABLE          0x4
#define VBE_DISPI_INDEX_BANK            0x5
#define VBE_DISPI_INDEX_VIRT_WIDTH      0x6
#define VBE_DISPI_INDEX_VIRT_HEIGHT     0x7
#define VBE_DISPI_INDEX_X_OFFSET        0x8
#define VBE_DISPI_INDEX_Y_OFFSET        0x9
#define VBE_DISPI_INDEX_VIDEO_MEMORY_64K 0xa
#define VBE_DISPI_INDEX_NB              0xb
#define VBE_DISPI_ID0                   0xB0C0
#define VBE_DISPI_ID5                   0xB0C5
#define VBE_DISPI_MAX_XRES              16000
#define VBE_DISPI_MAX_YRES              12000
#define VBE_DISPI_ENABLED               0x01
#define VBE_DISPI_GETCAPS               0x02
#define VBE_DISPI_8BIT_DAC              0x20
#define VBE_DISPI_LFB_ENABLED           0x40
#define VBE_DISPI_NOCLEARMEM            0x80

struct bus;
struct dev_env;
struct memslots;
struct pci_bus;
struct pci_device;
struct bochs_display;

struct bochs_display_vm {
    const struct dev_env *env;      /* the MMIO bus for BAR2 */
    struct memslots *slots;         /* the framebuffer's KVM slot */
};

/* What a display server shows: a consistent copy of the mode. */
struct bochs_display_scanout {
    bool enabled;                   /* false: nothing to show (the rest is 0) */
    uint32_t width, height;         /* pixels */
    uint32_t stride;                /* bytes from one line to the next */
    uint32_t bpp;                   /* 8, 15, 16, 24 or 32 */
    bool big_endian;                /* QEXT byte order */
    uint8_t *fb;                    /* the first pixel; stride * height bytes
                                     * from here lie inside the framebuffer */
    uint64_t generation;            /* changes whenever the mode does */
};

/* Map the framebuffer (fb_size: a power of two, 64 KiB to 256 MiB, 0 for
 * the default) and build the function. 0 or -errno, logged. */
int bochs_display_create(const struct bochs_display_vm *vm, uint64_t fb_size,
                         struct bochs_display **out);
void bochs_display_destroy(struct bochs_display *d);     /* NULL is fine */
int bochs_display_plug(struct bochs_display *d, struct pci_bus *bus, struct pci_device *parent,
                       uint8_t devfn);
void bochs_display_unplug(struct bochs_display *d);      /* and back to power-on */

/* BAR2 accesses (the MMIO bus calls these): off + len inside BAR2, len 1-8. */
int bochs_display_mmio_read(struct bochs_display *d, uint64_t off, void *data, unsigned len);
int bochs_display_mmio_write(struct bochs_display *d, uint64_t off, const void *data,
                             unsigned len);

/* The scanout API (for the VNC server): the mode and framebuffer under the
 * device's lock; bochs_display_generation is a lock-free poll of whether it
 * changed since. The framebuffer stays mapped until destroy; the pixels may
 * change under the reader at any time (the guest writes them directly). */
void bochs_display_scanout(struct bochs_display *d, struct bochs_display_scanout *out);
uint64_t bochs_display_generation(struct bochs_display *d);
/* The framebuffer and its size (tests, the later dirty log). */
uint8_t *bochs_display_fb(struct bochs_display *d, uint64_t *size);
/* The KVM slot that maps BAR0 now, -1 if none (tests). */
int bochs_display_fb_slot(const struct bochs_display *d);
struct pci_device *bochs_display_pci(struct bochs_display *d);

/* --display std: one bochs-display on the PCI list (PCIDEV_DISPLAY, q35's
 * 00:01.0, not bootable). --display none: nothing. */
int bochs_display_attach(const struct pcidev_host *h, const struct display_args *a,
                         struct pcidev_list *l);

#endif
