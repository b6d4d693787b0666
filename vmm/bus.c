/* The device bus (vmm/bus.h): a sorted array of non-overlapping ranges,
 * looked up by binary search.
 *
 * Locking: lookups take the read lock only long enough to copy the matching
 * range (ops, opaque, base) and take a reference on its slot, and release it
 * before calling the device. So a handler may itself (un)register ranges --
 * a guest moving a BAR through an MMIO config access does exactly that --
 * without deadlocking on the write lock. The slot's count (1 while
 * registered, +1 per call in progress) is what bus_unregister_sync waits on,
 * less the calls the waiting thread is itself inside (a per-thread stack of
 * the slots it is calling into), so a device can remove itself from its
 * own handler. Whoever drops the count to 0 frees the slot. Cost on the
 * exit path: two atomic operations and a thread-local push/pop. */
#include "vmm/bus.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/log.h"

struct bus_slot {
    atomic_uint refs;           /* 1 while registered + calls in progress */
};

/* The slots this thread is calling into, innermost last: a handler that
 * dispatches again (a config access reaching a BAR) nests. Deeper nesting
 * than this is not counted, which only makes a sync removal from that deep
 * wait for itself: it cannot happen with the handlers minivmm has (2). */
#define BUS_MAX_NESTING 8
static _Thread_local struct bus_slot *bus_calls[BUS_MAX_NESTING];
static _Thread_local unsigned bus_depth;

static void slot_put(struct bus_slot *s)
{
    if (atomic_fetch_sub(&s->refs, 1) == 1)
        free(s);
}

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
    for (size_t i = 0; i < bus->nr; i++)
        slot_put(bus->ranges[i].slot);
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
    struct bus_slot *slot = calloc(1, sizeof(*slot));
    if (!slot) {
        err = -ENOMEM;
        goto out;
    }
    atomic_init(&slot->refs, 1);
    if (bus->nr == bus->cap) {
        size_t cap = bus->cap ? bus->cap * 2 : 16;
        struct bus_range *n = realloc(bus->ranges, cap * sizeof(*n));
        if (!n) {
            free(slot);
            err = -ENOMEM;
            goto out;
        }
        bus->ranges = n;
        bus->cap = cap;
    }
    memmove(&bus->ranges[i + 1], &bus->ranges[i], (bus->nr - i) * sizeof(*bus->ranges));
    bus->ranges[i] = (struct bus_range){
        .base = base, .len = len, .name = name, .ops = ops, .opaque = opaque, .slot = slot,
    };
    bus->nr++;
out:
    pthread_rwlock_unlock(&bus->lock);
    return err;
}

/* Take the range at base out of the array; its slot, still referenced by
 * the registration, in *slot. */
static int bus_take(struct bus *bus, uint64_t base, struct bus_slot **slot)
{
    size_t i;
    int err = -ENOENT;

    pthread_rwlock_wrlock(&bus->lock);
    i = bus_upper_bound(bus, base);
    if (i > 0 && bus->ranges[i - 1].base == base) {
        i--;
        *slot = bus->ranges[i].slot;
        memmove(&bus->ranges[i], &bus->ranges[i + 1], (bus->nr - i - 1) * sizeof(*bus->ranges));
        bus->nr--;
        err = 0;
    }
    pthread_rwlock_unlock(&bus->lock);
    return err;
}

int bus_unregister(struct bus *bus, uint64_t base)
{
    struct bus_slot *slot;
    int err = bus_take(bus, base, &slot);

    if (!err)
        slot_put(slot);
    return err;
}

int bus_unregister_sync(struct bus *bus, uint64_t base)
{
    struct bus_slot *slot;
    unsigned own = 0;
    int err = bus_take(bus, base, &slot);

    if (err)
        return err;
    for (unsigned i = 0; i < bus_depth && i < BUS_MAX_NESTING; i++)
        own += bus_calls[i] == slot;
    /* Wait for the other threads' calls: refs = 1 (ours) + own + theirs.
     * No new call can start (the range is gone); the ones running are
     * short (handlers must not block), so a short sleep between looks
     * costs less than a wake-up on every call's way out. */
    while (atomic_load(&slot->refs) > 1 + own)
        nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 }, NULL);
    slot_put(slot);
    return 0;
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

/* Copy out the range covering the access under the read lock, with a
 * reference on its slot and the slot pushed on this thread's call stack;
 * bus_put ends the call. */
static bool bus_get(struct bus *bus, uint64_t addr, unsigned len, struct bus_range *out)
{
    const struct bus_range *r;

    pthread_rwlock_rdlock(&bus->lock);
    r = bus_lookup(bus, addr, len);
    if (r) {
        *out = *r;
        atomic_fetch_add_explicit(&r->slot->refs, 1, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&bus->lock);
    if (r) {
        if (bus_depth < BUS_MAX_NESTING)
            bus_calls[bus_depth] = out->slot;
        bus_depth++;
    }
    return r != NULL;
}

static void bus_put(struct bus_range *r)
{
    bus_depth--;
    if (bus_depth < BUS_MAX_NESTING)
        bus_calls[bus_depth] = NULL;
    slot_put(r->slot);
}

int bus_read(struct bus *bus, uint64_t addr, void *data, unsigned len)
{
    struct bus_range r;

    if (len == 0 || len > 8)
        return -EINVAL;
    bool found = bus_get(bus, addr, len, &r);
    if (found) {
        int err = r.ops->read ? r.ops->read(r.opaque, addr - r.base, data, len) : -ENOENT;
        bus_put(&r);
        if (err == 0)
            return 0;
    }
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
        int err = r.ops->write ? r.ops->write(r.opaque, addr - r.base, data, len) : -ENOENT;
        bus_put(&r);
        return err == 0 ? 0 : -ENOENT;
    }
    bus_note_unhandled(bus, addr, len, true);
    return -ENOENT;
}
