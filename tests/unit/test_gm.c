/* vmm/gm.c: the q35 layout rule, real (small) mappings, gm_ptr's refusals
 * (outside RAM, in the hole, wrap at 2^64, length 0), and the start-up
 * errors a user sees: too much memory, a short hugepage pool, RLIMIT_MEMLOCK. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include "vmm/gm.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* Run fn with stderr captured into buf (Criterion runs each test in its own
 * process, so redirecting fd 2 here is private to the test). */
static void capture_stderr(char *buf, size_t len, int (*fn)(void *), void *arg, int *ret)
{
    FILE *tmp = tmpfile();
    int saved = dup(2);
    cr_assert_not_null(tmp);
    fflush(stderr);
    dup2(fileno(tmp), 2);
    *ret = fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, len - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
}

struct init_args { struct gm *gm; struct gm_config cfg; };
static int do_init(void *p)
{
    struct init_args *a = p;
    return gm_init(a->gm, &a->cfg);
}

Test(gm, layout_small)
{
    struct gm_region r[GM_MAX_REGIONS];
    unsigned nr;

    cr_assert_eq(gm_layout(512 * MiB, r, &nr), 0);
    cr_assert_eq(nr, 1);
    cr_assert_eq(r[0].gpa, 0);
    cr_assert_eq(r[0].size, 512 * MiB);

    cr_assert_eq(gm_layout(GM_LOWMEM_SMALL_MAX - MiB, r, &nr), 0, "just below 0xB0000000");
    cr_assert_eq(nr, 1);
    cr_assert_eq(r[0].size, GM_LOWMEM_SMALL_MAX - MiB);
}

Test(gm, layout_at_and_above_split)
{
    struct gm_region r[GM_MAX_REGIONS];
    unsigned nr;

    cr_assert_eq(gm_layout(GM_LOWMEM_SMALL_MAX, r, &nr), 0);
    cr_assert_eq(nr, 2, "0xB0000000 exactly no longer fits below the ECAM window");
    cr_assert_eq(r[0].gpa, 0);
    cr_assert_eq(r[0].size, GM_LOWMEM_SPLIT);
    cr_assert_eq(r[1].gpa, GM_4G);
    cr_assert_eq(r[1].size, GM_LOWMEM_SMALL_MAX - GM_LOWMEM_SPLIT);

    cr_assert_eq(gm_layout(4 * GiB, r, &nr), 0);
    cr_assert_eq(nr, 2);
    cr_assert_eq(r[1].gpa, GM_4G);
    cr_assert_eq(r[1].size, 2 * GiB);

    cr_assert_eq(gm_layout(8 * GiB + 3 * MiB, r, &nr), 0);
    cr_assert_eq(r[0].size + r[1].size, 8 * GiB + 3 * MiB, "all RAM is placed");

    cr_assert_eq(gm_layout(1ULL << 40, r, &nr), 0, "1T");
    cr_assert_eq(r[1].gpa + r[1].size, (1ULL << 40) + 2 * GiB);
}

Test(gm, layout_bad_sizes)
{
    struct gm_region r[GM_MAX_REGIONS];
    unsigned nr = 7;

    cr_assert_eq(gm_layout(0, r, &nr), -EINVAL);
    cr_assert_eq(nr, 0);
    cr_assert_eq(gm_layout(MiB + 1, r, &nr), -EINVAL, "not whole MiB");
    cr_assert_eq(gm_layout(512 * MiB - 4096, r, &nr), -EINVAL);
    cr_assert_eq(gm_layout(UINT64_MAX - MiB + 1, r, &nr), -EINVAL, "would wrap past 2^64");
    cr_assert_eq(gm_layout(1ULL << 62, r, &nr), -EINVAL, "past the 52-bit physical space");
}

static struct gm small_gm(uint64_t size)
{
    struct gm gm;
    struct gm_config cfg = { .size = size, .lock = false };
    cr_assert_eq(gm_init(&gm, &cfg), 0);
    return gm;
}

Test(gm, small_mapping_usable)
{
    struct gm gm = small_gm(16 * MiB);
    uint8_t *p;

    cr_assert_eq(gm.nr_regions, 1);
    cr_assert_eq(gm.size, 16 * MiB);
    cr_assert_eq(gm_lowmem(&gm), 16 * MiB);
    cr_assert_eq((uintptr_t)gm.map % (2 * MiB), 0, "2 MiB aligned for large pages");
    p = gm_ptr(&gm, 0, 16 * MiB);
    cr_assert_not_null(p, "all of RAM in one piece");
    p[16 * MiB - 1] = 0x5a;   /* really mapped */
    cr_assert_eq(*(uint8_t *)gm_ptr(&gm, 16 * MiB - 1, 1), 0x5a);

    uint32_t v = 0x12345678, back = 0;
    cr_assert_eq(gm_write(&gm, 0x1000, &v, sizeof(v)), 0);
    cr_assert_eq(gm_read(&gm, 0x1000, &back, sizeof(back)), 0);
    cr_assert_eq(back, v);
    gm_fini(&gm);
    cr_assert_null(gm.map);
}

Test(gm, ptr_refuses_outside_ram)
{
    struct gm gm = small_gm(16 * MiB);
    uint64_t end = 16 * MiB;
    uint8_t buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

    cr_assert_not_null(gm_ptr(&gm, end - 8, 8), "last 8 bytes");
    cr_assert_null(gm_ptr(&gm, end - 8, 9), "one past the end");
    cr_assert_null(gm_ptr(&gm, end, 1), "just after RAM");
    cr_assert_null(gm_ptr(&gm, 0, 0), "length 0");
    cr_assert_null(gm_ptr(&gm, 0, end + 1));
    cr_assert_null(gm_ptr(&gm, UINT64_MAX, 1));
    cr_assert_null(gm_ptr(&gm, UINT64_MAX, 2), "wraps at 2^64");
    cr_assert_null(gm_ptr(&gm, 1, UINT64_MAX), "length wraps at 2^64");
    cr_assert_null(gm_ptr(&gm, end - 1, UINT64_MAX - end + 2), "end wraps to a small value");

    cr_assert_eq(gm_write(&gm, end - 4, buf, 8), -EFAULT, "copy across the end");
    cr_assert_eq(*(uint32_t *)gm_ptr(&gm, end - 4, 4), 0, "nothing written");
    cr_assert_eq(gm_read(&gm, end - 4, buf, 8), -EFAULT);
    cr_assert_eq(buf[0], 1, "nothing read");
    gm_fini(&gm);
}

Test(gm, ptr_refuses_the_hole)
{
    /* 3 GiB: 2 GiB low, 1 GiB at 4 GiB. Not locked or preallocated, so only
     * address space is used. */
    struct gm gm = small_gm(3 * GiB);

    cr_assert_eq(gm.nr_regions, 2);
    cr_assert_eq(gm_lowmem(&gm), GM_LOWMEM_SPLIT);
    cr_assert_not_null(gm_ptr(&gm, GM_LOWMEM_SPLIT - 1, 1));
    cr_assert_null(gm_ptr(&gm, GM_LOWMEM_SPLIT, 1), "first byte of the hole");
    cr_assert_null(gm_ptr(&gm, 0xB0000000ULL, 4), "ECAM");
    cr_assert_null(gm_ptr(&gm, 0xFEE00000ULL, 4), "LAPIC");
    cr_assert_null(gm_ptr(&gm, GM_4G - 1, 1), "last byte of the hole");
    cr_assert_null(gm_ptr(&gm, GM_LOWMEM_SPLIT - 2, 4), "spans RAM into the hole");
    cr_assert_null(gm_ptr(&gm, GM_4G - 2, 4), "spans the hole into high RAM");

    uint8_t *hi = gm_ptr(&gm, GM_4G, 1);
    cr_assert_not_null(hi);
    cr_assert_eq(hi, (uint8_t *)gm.map + GM_LOWMEM_SPLIT, "high RAM follows low RAM in the mapping");
    cr_assert_not_null(gm_ptr(&gm, GM_4G + GiB - 1, 1));
    cr_assert_null(gm_ptr(&gm, GM_4G + GiB, 1));
    hi[0] = 7;
    uint8_t v = 0;
    cr_assert_eq(gm_read(&gm, GM_4G, &v, 1), 0);
    cr_assert_eq(v, 7);
    gm_fini(&gm);
}

Test(gm, init_bad_config)
{
    struct gm gm;
    struct gm_config cfg = { .size = 0 };
    char out[1024];
    struct init_args a = { .gm = &gm };
    int ret;

    a.cfg = cfg;
    capture_stderr(out, sizeof(out), do_init, &a, &ret);
    cr_assert_eq(ret, -EINVAL);
    cr_assert(strstr(out, "guest memory"), "message: %s", out);

    a.cfg = (struct gm_config){ .size = 16 * MiB, .hugepage_size = 4 * MiB };
    capture_stderr(out, sizeof(out), do_init, &a, &ret);
    cr_assert_eq(ret, -EINVAL);
    cr_assert(strstr(out, "only 2M and 1G"), "message: %s", out);

    a.cfg = (struct gm_config){ .size = 3 * MiB, .hugepage_size = 2 * MiB };
    capture_stderr(out, sizeof(out), do_init, &a, &ret);
    cr_assert_eq(ret, -EINVAL);
    cr_assert(strstr(out, "not a whole number of 2 MiB hugepages"), "message: %s", out);
}

static uint64_t mem_available_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    fclose(f);
    cr_assert_gt(kb, 0);
    return (uint64_t)kb * 1024;
}

Test(gm, too_much_memory_refused_before_mapping)
{
    struct gm gm;
    char out[1024];
    uint64_t ask = (mem_available_bytes() * 4) & ~(MiB - 1);
    struct init_args a = { .gm = &gm, .cfg = { .size = ask, .lock = true } };
    int ret;

    capture_stderr(out, sizeof(out), do_init, &a, &ret);
    cr_assert_eq(ret, -ENOMEM);
    cr_assert(strstr(out, "does not fit"), "message: %s", out);
    cr_assert(strstr(out, "MemAvailable"), "names where the number comes from: %s", out);
    cr_assert(strstr(out, "--memory"), "says what to do: %s", out);
    cr_assert_null(gm.map);

    a.cfg = (struct gm_config){ .size = ask, .prealloc = true };
    capture_stderr(out, sizeof(out), do_init, &a, &ret);
    cr_assert_eq(ret, -ENOMEM, "prealloc is checked the same way");
}

static uint64_t read_sysfs(const char *path)
{
    FILE *f = fopen(path, "r");
    unsigned long long v = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%llu", &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

Test(gm, short_hugepage_pool_named)
{
    const char *dir = "/sys/kernel/mm/hugepages/hugepages-2048kB";
    char path[256], out[2048];
    struct gm gm;
    int ret;

    snprintf(path, sizeof(path), "%s/free_hugepages", dir);
    if (access(path, R_OK) != 0)
        cr_skip_test("no 2 MiB hugepage pool on this host");
    uint64_t avail = read_sysfs(path);
    snprintf(path, sizeof(path), "%s/nr_overcommit_hugepages", dir);
    avail += read_sysfs(path);
    /* Ask for more pages than the pool could possibly give. */
    uint64_t pages = avail + 16;
    struct init_args a = { .gm = &gm, .cfg = { .size = pages * 2 * MiB, .hugepage_size = 2 * MiB } };

    capture_stderr(out, sizeof(out), do_init, &a, &ret);
    cr_assert_eq(ret, -ENOMEM);
    cr_assert(strstr(out, "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"),
              "names the pool file: %s", out);
    char need[64];
    snprintf(need, sizeof(need), "needs %llu 2 MiB hugepages", (unsigned long long)pages);
    cr_assert(strstr(out, need), "says how many are needed (%s): %s", need, out);
}

/* Drop CAP_IPC_LOCK from this (forked) test process so RLIMIT_MEMLOCK
 * applies even when the tests run as root. */
static void drop_ipc_lock(void)
{
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2];
    cr_assert_eq(syscall(SYS_capget, &h, d), 0);
    d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
    d[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
    cr_assert_eq(syscall(SYS_capset, &h, d), 0);
}

Test(gm, memlock_limit_named)
{
    struct gm gm;
    char out[2048];
    struct rlimit rl = { 64 * 1024, 64 * 1024 };
    struct init_args a = { .gm = &gm, .cfg = { .size = 16 * MiB, .lock = true } };
    int ret;

    drop_ipc_lock();
    cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
    capture_stderr(out, sizeof(out), do_init, &a, &ret);
    cr_assert(ret == -ENOMEM || ret == -EPERM, "ret %d", ret);
    cr_assert(strstr(out, "RLIMIT_MEMLOCK is 64 KiB"), "names the limit: %s", out);
    cr_assert(strstr(out, "ulimit -l"), "says how to raise it: %s", out);
    cr_assert(strstr(out, "--no-mlock"), "offers the way out: %s", out);
    cr_assert_null(gm.map, "nothing left mapped");

    a.cfg.lock = false;
    cr_assert_eq(gm_init(&gm, &a.cfg), 0, "--no-mlock works under the same limit");
    cr_assert_not(gm.locked);
    gm_fini(&gm);
}

Test(gm, locked_and_preallocated)
{
    struct gm gm;
    struct gm_config cfg = { .size = 4 * MiB, .lock = true, .prealloc = true };
    struct rlimit rl;

    cr_assert_eq(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
    if (geteuid() != 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 8 * MiB)
        cr_skip_test("RLIMIT_MEMLOCK below 8 MiB and not root");
    cr_assert_eq(gm_init(&gm, &cfg), 0);
    cr_assert(gm.locked);
    cr_assert_not_null(gm_ptr(&gm, 4 * MiB - 1, 1));
    gm_fini(&gm);
}
