/* KVM memory-slot allocator (vmm/memslot.c) without KVM (vm_fd -1): slot
 * numbers, argument checks, reuse after removal, exhaustion. */
#include <criterion/criterion.h>
#include <errno.h>

#include "vmm/memslot.h"

static char page[8192] __attribute__((aligned(4096)));

Test(memslot, allocate_remove_reuse)
{
    struct memslots m;
    cr_assert_eq(memslots_init(&m, -1), 0);
    cr_assert_eq(memslot_add(&m, 0x100000, 4096, page, 0), 0);
    cr_assert_eq(memslot_add(&m, 0x200000, 4096, page, MEMSLOT_READONLY), 1);
    cr_assert_eq(memslot_remove(&m, 0), 0);
    cr_assert_eq(memslot_remove(&m, 0), -EINVAL, "twice");
    cr_assert_eq(memslot_add(&m, 0x300000, 4096, page, 0), 0, "freed slot reused");
    cr_assert_eq(memslot_remove(&m, -1), -EINVAL);
    cr_assert_eq(memslot_remove(&m, MEMSLOTS_MAX), -EINVAL);
    memslots_fini(&m);
}

Test(memslot, arguments_checked)
{
    struct memslots m;
    cr_assert_eq(memslots_init(&m, -1), 0);
    cr_assert_eq(memslot_add(&m, 0x100800, 4096, page, 0), -EINVAL, "gpa not page aligned");
    cr_assert_eq(memslot_add(&m, 0x100000, 100, page, 0), -EINVAL, "size not page aligned");
    cr_assert_eq(memslot_add(&m, 0x100000, 4096, page + 1, 0), -EINVAL, "hva not page aligned");
    cr_assert_eq(memslot_add(&m, 0x100000, 0, page, 0), -EINVAL, "empty");
    cr_assert_eq(memslot_add(&m, ~0xfffull, 0x2000, page, 0), -EINVAL, "wraps");
    cr_assert_eq(memslot_add(&m, 0x100000, 4096, page, 1u << 0), -EINVAL, "unknown flag");
    memslots_fini(&m);
}

Test(memslot, exhaustion)
{
    struct memslots m;
    cr_assert_eq(memslots_init(&m, -1), 0);
    for (unsigned i = 0; i < m.nr; i++)
        cr_assert_eq(memslot_add(&m, (uint64_t)i << 20, 4096, page, 0), (int)i);
    cr_assert_eq(memslot_add(&m, 1ull << 40, 4096, page, 0), -ENOSPC);
    memslots_fini(&m);
}
