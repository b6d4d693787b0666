/* The guest's E820 memory map, derived from the RAM regions of vmm/gm.h.
 *
 *   [0, 0x9FC00)            RAM (conventional memory less the 1 KiB EBDA)
 *   [0x9FC00, 0x100000)     reserved: EBDA, VGA hole, option ROMs and the BIOS
 *                           area, where boot/acpi.c puts the ACPI tables
 *                           (ACPI_TABLES_GPA = 0xE0000)
 *   [0x100000, lowmem)      RAM
 *   [4 GiB, 4 GiB + rest)   RAM above the PCI hole, when there is any
 *
 * The ACPI tables stay in a "reserved" range rather than an E820_ACPI one:
 * that is where a PC BIOS keeps the RSDP (ACPI 6.4 §5.2.5.1 "within the BIOS
 * read-only memory space between 0E0000h and 0FFFFFh"), and the OS must not
 * reclaim it. Everything above lowmem and below 4 GiB is MMIO, so it is
 * simply absent from the map. */
#include "boot/e820.h"

#include <errno.h>
#include <stddef.h>

#include "vmm/log.h"

#define E820_EBDA_START  0x9FC00ULL
#define E820_HIGH_START  0x100000ULL

static int e820_add(struct e820_entry *out, unsigned max, unsigned *nr,
                    uint64_t addr, uint64_t end, uint32_t type)
{
    if (end <= addr)
        return 0;
    if (*nr >= max) {
        log_err("e820", "memory map needs more than %u entries", max);
        return -ENOSPC;
    }
    out[*nr].addr = addr;
    out[*nr].size = end - addr;
    out[*nr].type = type;
    (*nr)++;
    return 0;
}

int e820_build(const struct gm *gm, struct e820_entry *out, unsigned max, unsigned *nr)
{
    int ret;

    *nr = 0;
    if (gm->nr_regions == 0 || gm->nr_regions > GM_MAX_REGIONS) {
        log_err("e820", "guest memory has %u regions; expected 1 to %u",
                gm->nr_regions, GM_MAX_REGIONS);
        return -EINVAL;
    }
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        const struct gm_region *r = &gm->regions[i];
        uint64_t start = r->gpa, end = r->gpa + r->size;

        if (r->size == 0 || end < start) {
            log_err("e820", "guest memory region %u [0x%llx, +0x%llx) is empty or wraps",
                    i, (unsigned long long)r->gpa, (unsigned long long)r->size);
            return -EINVAL;
        }
        if (start < E820_HIGH_START) {
            /* The low region: punch the legacy hole out of it. */
            uint64_t low_end = end < E820_EBDA_START ? end : E820_EBDA_START;
            ret = e820_add(out, max, nr, start, low_end, E820_RAM);
            if (ret)
                return ret;
            ret = e820_add(out, max, nr, E820_EBDA_START, E820_HIGH_START, E820_RESERVED);
            if (ret)
                return ret;
            start = E820_HIGH_START;
        }
        ret = e820_add(out, max, nr, start, end, E820_RAM);
        if (ret)
            return ret;
    }
    /* gm_layout yields regions in ascending order; check rather than trust. */
    for (unsigned i = 1; i < *nr; i++) {
        if (out[i].addr < out[i - 1].addr + out[i - 1].size) {
            log_err("e820", "guest memory regions overlap or are unsorted at 0x%llx",
                    (unsigned long long)out[i].addr);
            return -EINVAL;
        }
    }
    return 0;
}
