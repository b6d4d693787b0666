/* Guest memory (vmm/gm.h): the q35 layout, one host mapping, and the only
 * translation from guest-physical addresses to host pointers.
 *
 * Start-up policy, in order:
 *  1. the layout (gm_layout), pure;
 *  2. a capacity check before anything is mapped, so that asking for more
 *     than the host has fails with a message instead of the OOM killer:
 *     hugetlbfs pages against the pool in /sys/kernel/mm/hugepages, normal
 *     pages (when they will be locked or preallocated) against MemAvailable;
 *  3. one anonymous mapping (MAP_HUGETLB with the page size for hugepages;
 *     normal pages aligned to 2 MiB and advised MADV_HUGEPAGE so THP can
 *     back them, and so guest-physical and host-virtual addresses agree
 *     modulo 2 MiB, which KVM needs to map large pages);
 *  4. --prealloc: MADV_POPULATE_WRITE (errors reported, unlike MAP_POPULATE),
 *     falling back to touching each page on kernels before 5.14;
 *  5. mlock (default): mlock2(MLOCK_ONFAULT) unless preallocated, so pages
 *     are locked as the guest first touches them and start-up does not have
 *     to fault in all of RAM; with --prealloc a plain mlock. hugetlbfs pages
 *     are never swapped, so they are not mlocked (it would only count
 *     against RLIMIT_MEMLOCK). */
#include "vmm/gm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "vmm/log.h"

#define MiB (1ULL << 20)
#define GM_ALIGN (2 * MiB)
/* Guest-physical addresses stop at 2^52 (Intel SDM vol. 3A §4.1.4,
 * MAXPHYADDR is at most 52); refuse layouts that would end above it. */
#define GM_MAX_GPA (1ULL << 52)
/* Left to the host when checking MemAvailable: page tables, minivmm itself,
 * the kernel's own slack. */
#define GM_HOST_RESERVE (64 * MiB)

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30 << MAP_HUGE_SHIFT)
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

int gm_layout(uint64_t size, struct gm_region out[GM_MAX_REGIONS], unsigned *nr)
{
    *nr = 0;
    if (size == 0 || size % MiB)
        return -EINVAL;
    if (size < GM_LOWMEM_SMALL_MAX) {
        out[0] = (struct gm_region){ .gpa = 0, .size = size };
        *nr = 1;
        return 0;
    }
    /* The rest goes above 4 GiB: [4G, 4G + size - 2G) must stay below
     * GM_MAX_GPA (which also rules out wrap-around). */
    if (size - GM_LOWMEM_SPLIT > GM_MAX_GPA - GM_4G)
        return -EINVAL;
    out[0] = (struct gm_region){ .gpa = 0, .size = GM_LOWMEM_SPLIT };
    out[1] = (struct gm_region){ .gpa = GM_4G, .size = size - GM_LOWMEM_SPLIT };
    *nr = 2;
    return 0;
}

uint64_t gm_lowmem(const struct gm *gm)
{
    for (unsigned i = 0; i < gm->nr_regions; i++)
        if (gm->regions[i].gpa == 0)
            return gm->regions[i].size;
    return 0;
}

static void fmt_size(char *buf, size_t len, uint64_t bytes)
{
    if (bytes >= (1ULL << 30) && bytes % (1ULL << 30) == 0)
        snprintf(buf, len, "%" PRIu64 " GiB", bytes >> 30);
    else
        snprintf(buf, len, "%" PRIu64 " MiB", bytes >> 20);
}

/* A number from a one-value sysfs file; -errno if unreadable. */
static int read_u64_file(const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "re");
    unsigned long long v;
    int ok;

    if (!f)
        return -errno;
    ok = fscanf(f, "%llu", &v);
    fclose(f);
    if (ok != 1)
        return -EIO;
    *out = v;
    return 0;
}

/* MemAvailable from /proc/meminfo in bytes; -errno if unknown. */
static int mem_available(uint64_t *out)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[256];
    int err = -ENOENT;

    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            *out = (uint64_t)kb * 1024;
            err = 0;
            break;
        }
    }
    fclose(f);
    return err;
}

static int gm_check_hugepages(uint64_t size, uint64_t page_size)
{
    char dir[128], path[192], sz[32], pg[32];
    uint64_t free_pages, resv = 0, overcommit = 0, surplus = 0, avail;
    uint64_t need = size / page_size;
    int err;

    fmt_size(sz, sizeof(sz), size);
    fmt_size(pg, sizeof(pg), page_size);
    snprintf(dir, sizeof(dir), "/sys/kernel/mm/hugepages/hugepages-%" PRIu64 "kB", page_size >> 10);
    snprintf(path, sizeof(path), "%s/free_hugepages", dir);
    err = read_u64_file(path, &free_pages);
    if (err) {
        log_err("memory", "guest memory of %s in %s hugepages: the host has no %s hugepage pool "
                "(%s: %s); use --hugepages 2M, or none", sz, pg, pg, path, strerror(-err));
        return -ENOMEM;
    }
    snprintf(path, sizeof(path), "%s/resv_hugepages", dir);
    read_u64_file(path, &resv);
    snprintf(path, sizeof(path), "%s/nr_overcommit_hugepages", dir);
    read_u64_file(path, &overcommit);
    snprintf(path, sizeof(path), "%s/surplus_hugepages", dir);
    read_u64_file(path, &surplus);
    /* free_hugepages still counts pages reserved by other mappings; the
     * overcommit allowance can add surplus pages on demand. */
    avail = free_pages > resv ? free_pages - resv : 0;
    if (overcommit > surplus)
        avail += overcommit - surplus;
    if (avail < need) {
        log_err("memory", "guest memory of %s needs %" PRIu64 " %s hugepages but only %" PRIu64
                " are free (%s/free_hugepages); add %" PRIu64 " to %s/nr_hugepages, "
                "or ask for less --memory", sz, need, pg, avail, dir, need - avail, dir);
        return -ENOMEM;
    }
    return 0;
}

static int gm_check_available(uint64_t size)
{
    uint64_t avail = 0;
    char sz[32], av[32];

    if (mem_available(&avail))
        return 0;   /* no /proc/meminfo: mmap/mlock will have the last word */
    if (avail >= GM_HOST_RESERVE && size <= avail - GM_HOST_RESERVE)
        return 0;
    fmt_size(sz, sizeof(sz), size);
    fmt_size(av, sizeof(av), avail);
    log_err("memory", "guest memory of %s does not fit: the host has %s available "
            "(MemAvailable in /proc/meminfo, less %llu MiB kept for the host); "
            "ask for less --memory", sz, av, (unsigned long long)(GM_HOST_RESERVE >> 20));
    return -ENOMEM;
}

static void fmt_rlimit(char *buf, size_t len, rlim_t v)
{
    if (v == RLIM_INFINITY)
        snprintf(buf, len, "unlimited");
    else
        snprintf(buf, len, "%llu KiB", (unsigned long long)v >> 10);
}

static int gm_lock(struct gm *gm, bool onfault)
{
    struct rlimit rl = { 0, 0 };
    char sz[32], lim[32];
    int err;

    err = mlock2(gm->map, gm->map_len, onfault ? MLOCK_ONFAULT : 0);
    if (err && (errno == ENOSYS || errno == EINVAL))
        err = mlock(gm->map, gm->map_len);
    if (err == 0) {
        gm->locked = true;
        return 0;
    }
    err = -errno;
    getrlimit(RLIMIT_MEMLOCK, &rl);
    fmt_size(sz, sizeof(sz), gm->size);
    fmt_rlimit(lim, sizeof(lim), rl.rlim_cur);
    if (err == -EAGAIN) {
        log_err("memory", "cannot lock guest memory of %s (mlock: %s): the host ran out of "
                "memory; ask for less --memory", sz, strerror(-err));
        return -ENOMEM;
    }
    log_err("memory", "cannot lock guest memory of %s (mlock: %s); RLIMIT_MEMLOCK is %s: "
            "raise it (`ulimit -l unlimited`, or memlock in /etc/security/limits.conf), "
            "run with CAP_IPC_LOCK, or pass --no-mlock", sz, strerror(-err), lim);
    return err == -EPERM ? -EPERM : -ENOMEM;
}

static int gm_populate(struct gm *gm)
{
    char sz[32];

    if (madvise(gm->map, gm->map_len, MADV_POPULATE_WRITE) == 0)
        return 0;
    if (errno == EINVAL) {
        /* Kernel before 5.14: touch every page. The capacity check above
         * makes running out here unlikely; hugetlbfs pages were reserved
         * by mmap. */
        volatile uint8_t *p = gm->map;
        for (size_t off = 0; off < gm->map_len; off += gm->page_size)
            p[off] = 0;
        return 0;
    }
    fmt_size(sz, sizeof(sz), gm->size);
    log_err("memory", "cannot preallocate guest memory of %s: %s; ask for less --memory "
            "or drop --prealloc", sz, strerror(errno));
    return -ENOMEM;
}

int gm_init(struct gm *gm, const struct gm_config *cfg)
{
    char sz[32];
    uint64_t off = 0;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS, err;
    bool huge = cfg->hugepage_size != 0;

    memset(gm, 0, sizeof(*gm));
    fmt_size(sz, sizeof(sz), cfg->size);
    if (gm_layout(cfg->size, gm->regions, &gm->nr_regions)) {
        log_err("memory", "guest memory of %" PRIu64 " bytes: not a whole number of MiB, zero, "
                "or larger than the guest-physical address space", cfg->size);
        return -EINVAL;
    }
    if (cfg->size > SIZE_MAX - GM_ALIGN) {
        log_err("memory", "guest memory of %s does not fit in this process' address space", sz);
        return -ENOMEM;
    }
    gm->size = cfg->size;
    if (huge) {
        if (cfg->hugepage_size == 2 * MiB)
            flags |= MAP_HUGETLB | MAP_HUGE_2MB;
        else if (cfg->hugepage_size == 1024 * MiB)
            flags |= MAP_HUGETLB | MAP_HUGE_1GB;
        else {
            log_err("memory", "hugepage size %" PRIu64 " KiB: only 2M and 1G are supported",
                    cfg->hugepage_size >> 10);
            return -EINVAL;
        }
        gm->page_size = cfg->hugepage_size;
        for (unsigned i = 0; i < gm->nr_regions; i++) {
            if (gm->regions[i].size % gm->page_size) {
                char pg[32];
                fmt_size(pg, sizeof(pg), gm->page_size);
                log_err("memory", "guest memory of %s is not a whole number of %s hugepages "
                        "(in each RAM region); round --memory up", sz, pg);
                return -EINVAL;
            }
        }
        err = gm_check_hugepages(cfg->size, gm->page_size);
        if (err)
            return err;
    } else {
        long ps = sysconf(_SC_PAGESIZE);
        gm->page_size = ps > 0 ? (uint64_t)ps : 4096;
        if (cfg->lock || cfg->prealloc) {
            err = gm_check_available(cfg->size);
            if (err)
                return err;
        }
    }

    if (huge) {
        gm->map_len = cfg->size;
        gm->map = mmap(NULL, gm->map_len, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (gm->map == MAP_FAILED) {
            err = -errno;
            gm->map = NULL;
            log_err("memory", "cannot map guest memory of %s in hugepages: %s; check the pool "
                    "in /sys/kernel/mm/hugepages or ask for less --memory", sz, strerror(-err));
            return -ENOMEM;
        }
    } else {
        /* Over-allocate by 2 MiB and trim, so the mapping starts 2 MiB
         * aligned. */
        size_t len = cfg->size + GM_ALIGN;
        uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (p == MAP_FAILED) {
            err = -errno;
            log_err("memory", "cannot map guest memory of %s: %s; ask for less --memory",
                    sz, strerror(-err));
            return -ENOMEM;
        }
        uintptr_t a = ((uintptr_t)p + GM_ALIGN - 1) & ~(uintptr_t)(GM_ALIGN - 1);
        size_t head = a - (uintptr_t)p, tail = len - head - cfg->size;
        if (head)
            munmap(p, head);
        if (tail)
            munmap((uint8_t *)a + cfg->size, tail);
        gm->map = (void *)a;
        gm->map_len = cfg->size;
        madvise(gm->map, gm->map_len, MADV_HUGEPAGE);   /* best effort: THP may be off */
    }
    /* Regions sit back to back in the mapping, in guest-physical order. */
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        gm->regions[i].hva = (uint8_t *)gm->map + off;
        off += gm->regions[i].size;
    }
    if (cfg->prealloc) {
        err = gm_populate(gm);
        if (err)
            goto fail;
    }
    if (cfg->lock) {
        if (huge) {
            gm->locked = true;   /* hugetlbfs pages are never swapped */
        } else {
            err = gm_lock(gm, !cfg->prealloc);
            if (err)
                goto fail;
        }
    }
    log_debug("memory", "%s of guest RAM at %p in %" PRIu64 " KiB pages%s%s", sz, gm->map,
              gm->page_size >> 10, cfg->prealloc ? ", preallocated" : "",
              gm->locked ? ", locked" : "");
    return 0;
fail:
    gm_fini(gm);
    return err;
}

void gm_fini(struct gm *gm)
{
    if (gm->map)
        munmap(gm->map, gm->map_len);
    memset(gm, 0, sizeof(*gm));
}

void *gm_ptr(const struct gm *gm, uint64_t gpa, uint64_t len)
{
    if (len == 0)
        return NULL;
    for (unsigned i = 0; i < gm->nr_regions && i < GM_MAX_REGIONS; i++) {
        const struct gm_region *r = &gm->regions[i];
        /* gpa - r->gpa cannot wrap once gpa >= r->gpa; comparing lengths
         * rather than end addresses avoids overflow at 2^64. */
        if (gpa < r->gpa || gpa - r->gpa >= r->size)
            continue;
        if (len > r->size - (gpa - r->gpa))
            return NULL;
        if (!r->hva)
            return NULL;
        return r->hva + (gpa - r->gpa);
    }
    return NULL;
}

int gm_read(const struct gm *gm, uint64_t gpa, void *dst, size_t len)
{
    void *p = gm_ptr(gm, gpa, len);

    if (!p)
        return -EFAULT;
    memcpy(dst, p, len);
    return 0;
}

int gm_write(const struct gm *gm, uint64_t gpa, const void *src, size_t len)
{
    void *p = gm_ptr(gm, gpa, len);

    if (!p)
        return -EFAULT;
    memcpy(p, src, len);
    return 0;
}
