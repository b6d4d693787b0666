/* Guest memory: the one translator from guest-physical addresses to host
 * pointers. Every guest-memory access in minivmm goes through gm_ptr() or the
 * copy helpers; all refuse any range not wholly inside RAM.
 *
 * Layout (q35-like, the rule OVMF and QEMU's q35 use): RAM below 4 GiB runs
 * from 0 up to lowmem; the rest sits above 4 GiB. RAM smaller than
 * 0xB0000000 sits wholly below 4 GiB (lowmem is its size); larger RAM puts
 * 2 GiB below (lowmem 0x80000000) and the rest from 4 GiB. Either way
 * [lowmem, 4 GiB) holds the ECAM window (0xB0000000, 256 MiB), 32-bit PCI
 * BARs, the IOAPIC, the LAPIC and the firmware flash. */
#ifndef MINIVMM_GM_H
#define MINIVMM_GM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GM_4G               0x100000000ULL
#define GM_LOWMEM_SMALL_MAX 0xB0000000ULL
#define GM_LOWMEM_SPLIT     0x80000000ULL
#define GM_MAX_REGIONS      2

struct gm_region {
    uint64_t gpa;
    uint64_t size;
    uint8_t *hva;
};

struct gm_config {
    uint64_t size;           /* bytes of guest RAM, multiple of 1 MiB */
    uint64_t hugepage_size;  /* 0 (normal pages), 2 MiB or 1 GiB */
    bool prealloc;           /* fault every page in at start-up */
    bool lock;               /* mlock the RAM (default on: VFIO, latency) */
};

struct gm {
    struct gm_region regions[GM_MAX_REGIONS];
    unsigned nr_regions;
    uint64_t size;
    void *map;               /* one host mapping holding all regions */
    size_t map_len;
    uint64_t page_size;
    bool locked;
};

/* Pure: split size into the regions above. -EINVAL for 0 or a size that is
 * not a multiple of 1 MiB. */
int gm_layout(uint64_t size, struct gm_region out[GM_MAX_REGIONS], unsigned *nr);
/* Highest guest-physical address of RAM below 4 GiB (lowmem). */
uint64_t gm_lowmem(const struct gm *gm);

/* Map the RAM. Errors (logged): -ENOMEM (with the hugepage pool size when
 * --hugepages was asked and the pool is short), -EPERM/-ENOMEM for mlock with
 * the RLIMIT_MEMLOCK named. */
int gm_init(struct gm *gm, const struct gm_config *cfg);
void gm_fini(struct gm *gm);

/* Host pointer for [gpa, gpa+len) if wholly inside one RAM region, else NULL.
 * len 0 is refused (NULL). Never faults on guest input: overflow-checked. */
void *gm_ptr(const struct gm *gm, uint64_t gpa, uint64_t len);
/* Copies; -EFAULT if the range is not RAM. They may span regions only when
 * those are contiguous (they never are here), so a span across the hole fails. */
int gm_read(const struct gm *gm, uint64_t gpa, void *dst, size_t len);
int gm_write(const struct gm *gm, uint64_t gpa, const void *src, size_t len);

#endif
