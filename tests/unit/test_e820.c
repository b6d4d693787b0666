/* E820 maps for several RAM sizes: the regions come from gm_layout (the
 * q35 rule of vmm/gm.h); the expected maps are written out by hand. */
#include <criterion/criterion.h>
#include <errno.h>

#include "boot/e820.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void map_for(uint64_t size, struct e820_entry *out, unsigned *nr)
{
    struct gm gm = { 0 };
    cr_assert_eq(gm_layout(size, gm.regions, &gm.nr_regions), 0);
    gm.size = size;
    cr_assert_eq(e820_build(&gm, out, E820_MAX, nr), 0);
}

static void expect_entry(const struct e820_entry *e, uint64_t addr, uint64_t size, uint32_t type)
{
    cr_assert_eq(e->addr, addr, "addr 0x%llx, want 0x%llx", (unsigned long long)e->addr,
                 (unsigned long long)addr);
    cr_assert_eq(e->size, size, "size at 0x%llx: 0x%llx, want 0x%llx", (unsigned long long)addr,
                 (unsigned long long)e->size, (unsigned long long)size);
    cr_assert_eq(e->type, type, "type at 0x%llx: %u, want %u", (unsigned long long)addr, e->type, type);
}

Test(e820, entry_is_20_bytes)
{
    /* boot_params' e820_table entries are 20 bytes (x86 boot protocol). */
    cr_assert_eq(sizeof(struct e820_entry), 20);
}

Test(e820, small_512m)
{
    struct e820_entry e[E820_MAX];
    unsigned nr;
    map_for(512 * MiB, e, &nr);
    cr_assert_eq(nr, 3);
    expect_entry(&e[0], 0, 0x9FC00, E820_RAM);
    expect_entry(&e[1], 0x9FC00, 0x100000 - 0x9FC00, E820_RESERVED);
    expect_entry(&e[2], 0x100000, 512 * MiB - 0x100000, E820_RAM);
}

Test(e820, one_mib)
{
    struct e820_entry e[E820_MAX];
    unsigned nr;
    map_for(1 * MiB, e, &nr);
    cr_assert_eq(nr, 2, "1 MiB: only conventional RAM and the legacy hole");
    expect_entry(&e[0], 0, 0x9FC00, E820_RAM);
    expect_entry(&e[1], 0x9FC00, 0x60400, E820_RESERVED);
}

Test(e820, just_below_split)
{
    /* 0xB0000000 - 1 MiB: still all below 4 GiB */
    struct e820_entry e[E820_MAX];
    unsigned nr;
    map_for(0xB0000000ULL - MiB, e, &nr);
    cr_assert_eq(nr, 3);
    expect_entry(&e[2], 0x100000, 0xB0000000ULL - 2 * MiB, E820_RAM);
}

Test(e820, at_split_goes_high)
{
    /* 0xB0000000 is not smaller than the small-lowmem limit: 2 GiB low,
     * the remaining 768 MiB above 4 GiB. */
    struct e820_entry e[E820_MAX];
    unsigned nr;
    map_for(0xB0000000ULL, e, &nr);
    cr_assert_eq(nr, 4);
    expect_entry(&e[2], 0x100000, 0x80000000ULL - 0x100000, E820_RAM);
    expect_entry(&e[3], 0x100000000ULL, 0x30000000ULL, E820_RAM);
}

Test(e820, large_8g)
{
    struct e820_entry e[E820_MAX];
    unsigned nr;
    map_for(8 * GiB, e, &nr);
    cr_assert_eq(nr, 4);
    expect_entry(&e[0], 0, 0x9FC00, E820_RAM);
    expect_entry(&e[1], 0x9FC00, 0x60400, E820_RESERVED);
    expect_entry(&e[2], 0x100000, 2 * GiB - 0x100000, E820_RAM);
    expect_entry(&e[3], 4 * GiB, 6 * GiB, E820_RAM);
    uint64_t ram = 0;
    for (unsigned i = 0; i < nr; i++) {
        if (e[i].type == E820_RAM)
            ram += e[i].size;
        if (i)
            cr_assert_geq(e[i].addr, e[i - 1].addr + e[i - 1].size, "sorted, no overlap");
    }
    cr_assert_eq(ram, 8 * GiB - 0x60400, "all RAM but the legacy hole is usable");
}

Test(e820, too_few_entries)
{
    struct gm gm = { 0 };
    struct e820_entry e[2];
    unsigned nr;
    cr_assert_eq(gm_layout(8 * GiB, gm.regions, &gm.nr_regions), 0);
    cr_assert_eq(e820_build(&gm, e, 2, &nr), -ENOSPC);
}

Test(e820, bad_regions)
{
    struct gm gm = { 0 };
    struct e820_entry e[E820_MAX];
    unsigned nr;
    cr_assert_eq(e820_build(&gm, e, E820_MAX, &nr), -EINVAL, "no regions");
    gm.nr_regions = 2;
    gm.regions[0] = (struct gm_region){ .gpa = 0x100000000ULL, .size = GiB };
    gm.regions[1] = (struct gm_region){ .gpa = 0, .size = GiB };
    cr_assert_eq(e820_build(&gm, e, E820_MAX, &nr), -EINVAL, "unsorted regions");
}
