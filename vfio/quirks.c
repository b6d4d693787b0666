/* Device quirks: the list and the reasons are in vfio/quirks.h. */
#include "vfio/quirks.h"

#include <linux/pci_regs.h>
#include <string.h>

#define VENDOR_NVIDIA      0x10de
#define VENDOR_BROADCOM    0x14e4
#define NV_BAR0_CFG_MIRROR 0x88000u   /* envytools: PCI config mirror in BAR0 */

void vfio_quirks_probe(uint16_t vendor, uint16_t device, uint32_t class_code,
                       const struct vfio_bar_info bars[VFIO_NR_BARS], struct vfio_quirks *q)
{
    memset(q, 0, sizeof(*q));
    bool display = (class_code >> 16) == 0x03;
    if (vendor == VENDOR_NVIDIA && display &&
        (bars[0].type == VFIO_BAR_MEM32 || bars[0].type == VFIO_BAR_MEM64) &&
        bars[0].size >= NV_BAR0_CFG_MIRROR + VFIO_CFG_SPACE_SIZE) {
        q->win[q->nr++] = (struct vfio_quirk_window){
            .kind = VFIO_QUIRK_CFG_MIRROR,
            .bar = 0,
            .off = NV_BAR0_CFG_MIRROR,
            .len = VFIO_CFG_SPACE_SIZE,
            .cfg_len = VFIO_CFG_SPACE_SIZE,
            .msi_ack = true,
            .name = "NVIDIA BAR0 config mirror",
        };
    }
    if (vendor == VENDOR_BROADCOM && device == 0x168e)
        q->no_rom = true;
}

enum vfio_quirk_route vfio_quirk_route(const struct vfio_quirk_window *w,
                                       const struct vfio_config *cfg, uint64_t off,
                                       unsigned len, bool write)
{
    if (w->kind != VFIO_QUIRK_CFG_MIRROR)
        return VFIO_QUIRK_TO_DEVICE;
    if ((len != 1 && len != 2 && len != 4) || (off & (len - 1)) || off >= w->cfg_len ||
        len > w->cfg_len - off)
        return VFIO_QUIRK_TO_DEVICE;
    if (write && w->msi_ack && cfg->msi_cap && off >= cfg->msi_cap &&
        off + len <= (uint64_t)cfg->msi_cap + PCI_MSI_FLAGS)
        return VFIO_QUIRK_TO_BOTH;
    return VFIO_QUIRK_TO_CONFIG;
}
