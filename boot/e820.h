#ifndef MINIVMM_E820_H
#define MINIVMM_E820_H
#include <stdint.h>
#include "vmm/gm.h"
#define E820_RAM      1
#define E820_RESERVED 2
#define E820_ACPI     3
#define E820_MAX      32
struct e820_entry { uint64_t addr, size; uint32_t type; } __attribute__((packed));
/* The guest's memory map from the real RAM regions: RAM below 640K (less the
 * EBDA), reserved legacy area 0x9FC00-0x100000 (BIOS tables, ACPI tables and
 * MP table live at 0xE0000+), RAM to lowmem, RAM above 4G. Sorted. */
int e820_build(const struct gm *gm, struct e820_entry *out, unsigned max, unsigned *nr);
#endif
