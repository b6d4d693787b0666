/* The device bus (vmm/bus.h): a sorted array of non-overlapping ranges,
 * looked up by binary search.
 *
 * Locking: lookups take the read lock only long enough to copy the matching
 * range (ops, opaque, base) and release it before calling the device. So a
 * handler may itself (un)register ranges -- a guest moving a BAR through an
 * MMIO config access does exactly that -- without deadlocking on the write
 * lock. The cost is that a call may still reach a device just after its
 * range was unregistered: opaque must stay valid until the vCPUs are
 * stopped, which is how vmm/vm.c tears down (vCPU threads are joined before
 * any device is destroyed). */
#include "vmm/bus.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

int bus_init(struct bus *bus, const char *name)
{
    int err;

    memset(bus, 0, sizeof(*bus));
    bus->name = name;
    err = pthread_rwlock_init(&bus->lock, NULL);
    if (err)
        return -err;
    err = pthread_mutex_init(&bus->unhandled_lock, NULL);
    if (err) {
        pthread_rwlock_destroy(&bus->lock);
        return -err;
    }
    return 0;
}

void bus_fini(struct bus *bus)
{
    free(bus->ranges);
    bus->ranges = NULL;
    bus->nr = bus->cap = 0;
    pthread_mutex_destroy(&bus->unhandled_lock);
    pthread_rwlock_destroy(&bus->lock);
}

/* Last address of a range; callers have checked len != 0 and no wrap. */
static inline uint64_t range_last(uint64_t base, uint64_t len)
{
    return base + (len - 1);
}

/* Index of the first range whose base is > addr (0..nr). */
static size_t bus_upper_bound(const struct bus *bus, uint64_t addr)
{
    size_t lo = 0, hi = bus->nr;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bus->ranges[mid].base <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const struct bus_range *bus_lookup(const struct bus *bus, uint64_t addr, unsigned len)
{
    size_t i;
    const struct bus_range *r;

    if (len == 0 || addr + (len - 1) < addr)
        return NULL;
    i = bus_upper_bound(bus, addr);
    if (i == 0)
        return NULL;
    r = &bus->ranges[i - 1];
    /* addr >= r->base here; the whole access must sit inside r (an access
     * straddling two ranges, or the end of one, is unhandled). */
    if (addr - r->base >= r->len || (uint64_t)(len - 1) > r->len - 1 - (addr - r->base))
        return NULL;
    return r;
}

const struct bus_range *bus_find(struct bus *bus, uint64_t addr, unsigned len)
{
    return bus_lookup(bus, addr, len);
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const char *name,
                 const struct bus_ops *ops, void *opaque)
{
    size_t i;
    int err = 0;

    if (len == 0 || base + (len - 1) < base) {
        log_err("bus", "%s: range %s at 0x%" PRIx64 " of length 0x%" PRIx64 " is empty or wraps",
                bus->name, name ? name : "?", base, len);
        return -EINVAL;
    }
    if (!ops) {
        log_err("bus", "%s: range %s at 0x%" PRIx64 " has no handlers", bus->name,
                name ? name : "?", base);
        return -EINVAL;
    }
    pthread_rwlock_wrlock(&bus->lock);
    i = bus_upper_bound(bus, base);
    /* Neighbours: the range before (base <= new base) and the one after. */
    const struct bus_range *clash = NULL;
    if (i > 0 && range_last(bus->ranges[i - 1].base, bus->ranges[i - 1].len) >= base)
        clash = &bus->ranges[i - 1];
    else if (i < bus->nr && bus->ranges[i].base <= range_last(base, len))
        clash = &bus->ranges[i];
    if (clash) {
        log_err("bus", "%s: %s [0x%" PRIx64 ", 0x%" PRIx64 "] overlaps %s [0x%" PRIx64 ", 0x%" PRIx64 "]",
                bus->name, name ? name : "?", base, range_last(base, len),
                clash->name ? clash->name : "?", clash->base, range_last(clash->base, clash->len));
        err = -EEXIST;
        goto out;
    }
    if (bus->nr == bus->cap) {
        size_t cap = bus->cap ? bus->cap * 2 : 16;
        struct bus_range *n = realloc(bus->ranges, cap * sizeof(*n));
        if (!n) {
            err = -ENOMEM;
            goto out;
        }
        bus->ranges = n;
        bus->cap = cap;
    }
    memmove(&bus->ranges[i + 1], &bus->ranges[i], (bus->nr - i) * sizeof(*bus->ranges));
    bus->ranges[i] = (struct bus_range){
        .base = base, .len = len, .name = name, .ops = ops, .opaque = opaque,
    };
    bus->nr++;
out:
    pthread_rwlock_unlock(&bus->lock);
    return err;
}

int bus_unregister(struct bus *bus, uint64_t base)
{
    size_t i;
    int err = -ENOENT;

    pthread_rwlock_wrlock(&bus->lock);
    i = bus_upper_bound(bus, base);
    if (i > 0 && bus->ranges[i - 1].base == base) {
        i--;
        memmove(&bus->ranges[i], &bus->ranges[i + 1], (bus->nr - i - 1) * sizeof(*bus->ranges));
        bus->nr--;
        err = 0;
    }
    pthread_rwlock_unlock(&bus->lock);
    return err;
}

/* Log an unhandled address the first time it is seen; after
 * BUS_UNHANDLED_LOG_MAX distinct addresses, say once that we stopped. */
static void bus_note_unhandled(struct bus *bus, uint64_t addr, unsigned len, bool write)
{
    bool log = false, full = false;

    pthread_mutex_lock(&bus->unhandled_lock);
    size_t i;
    for (i = 0; i < bus->nr_unhandled && i < BUS_UNHANDLED_LOG_MAX; i++)
        if (bus->unhandled[i] == addr)
            break;
    if (i == bus->nr_unhandled) {
        if (bus->nr_unhandled < BUS_UNHANDLED_LOG_MAX) {
            bus->unhandled[bus->nr_unhandled++] = addr;
            log = true;
        } else if (bus->nr_unhandled == BUS_UNHANDLED_LOG_MAX) {
            bus->nr_unhandled++;   /* one past: "stopped logging" said once */
            full = true;
        }
    }
    pthread_mutex_unlock(&bus->unhandled_lock);
    if (log)
        log_debug("bus", "%s: unhandled %u-byte %s at 0x%" PRIx64 " (%s)", bus->name, len,
                  write ? "write" : "read", addr,
                  write ? "dropped" : "reads as all ones");
    else if (full)
        log_debug("bus", "%s: more than %d unhandled addresses; no longer logging them",
                  bus->name, BUS_UNHANDLED_LOG_MAX);
}

/* Copy out the range covering the access under the read lock. */
static bool bus_get(struct bus *bus, uint64_t addr, unsigned len, struct bus_range *out)
{
    const struct bus_range *r;

    pthread_rwlock_rdlock(&bus->lock);
    r = bus_lookup(bus, addr, len);
    if (r)
        *out = *r;
    pthread_rwlock_unlock(&bus->lock);
    return r != NULL;
}

int bus_read(struct bus *bus, uint64_t addr, void *data, unsigned len)
{
    struct bus_range r;

    if (len == 0 || len > 8)
        return -EINVAL;
    bool found = bus_get(bus, addr, len, &r);
    if (found && r.ops->read && r.ops->read(r.opaque, addr - r.base, data, len) == 0)
        return 0;
    /* No device, or the device refused (it logs why): all ones, as a PC
     * bus reads when nothing answers. */
    memset(data, 0xff, len);
    if (!found)
        bus_note_unhandled(bus, addr, len, false);
    return -ENOENT;
}

int bus_write(struct bus *bus, uint64_t addr, const void *data, unsigned len)
{
    struct bus_range r;

    if (len == 0 || len > 8)
        return -EINVAL;
    if (bus_get(bus, addr, len, &r)) {
        if (r.ops->write && r.ops->write(r.opaque, addr - r.base, data, len) == 0)
            return 0;
        return -ENOENT;
    }
    bus_note_unhandled(bus, addr, len, true);
    return -ENOENT;
}
