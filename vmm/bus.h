/* The device bus: one instance for port I/O, one for MMIO.
 *
 * Devices register address ranges with read/write callbacks; the vCPU exit
 * loop looks the address up (binary search over sorted, non-overlapping
 * ranges: O(log n)) and calls the handler with the offset into the range.
 * Nothing else dispatches guest accesses. Unhandled reads return all ones,
 * unhandled writes are dropped; each unhandled address is logged once.
 *
 * Registration may happen while vCPUs run (a guest moving a BAR), so lookups
 * take a read lock and (un)registration a write lock. The lock is NOT held
 * while a handler runs (a handler may register ranges itself). Instead each
 * range has a reference count: one for being registered, one per call in
 * progress. So:
 *   - bus_unregister returns at once; a call that looked the range up just
 *     before may still be running (a BAR move: the device stays alive, and
 *     its handler must not wait for the thread that moves the BAR);
 *   - bus_unregister_sync also waits until no call of that range is running
 *     on another thread. After it returns nothing reaches opaque through
 *     this bus again, so the device may be freed: hot-unplug, or a device
 *     removing itself from inside its own handler (the calling thread's own
 *     calls are not waited for; the range's bookkeeping is freed by the last
 *     call that leaves it, never by the remover).
 * Never call bus_unregister_sync while holding a lock that a handler of
 * that range takes.
 *
 * Unhandled addresses are logged at debug level (-v): guests probe many
 * absent ports at boot, and that is not an error. */
#ifndef MINIVMM_BUS_H
#define MINIVMM_BUS_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct bus_ops {
    /* len is 1, 2, 4 or 8 (MMIO may also see other sizes up to 8).
     * Return 0, or a negative errno (the access is then treated as
     * unhandled for reads: all ones). Must not block for long: they run on
     * the vCPU thread. */
    int (*read)(void *opaque, uint64_t offset, void *data, unsigned len);
    int (*write)(void *opaque, uint64_t offset, const void *data, unsigned len);
};

struct bus_slot;   /* a range's reference count, bus.c */

struct bus_range {
    uint64_t base;
    uint64_t len;
    const char *name;
    const struct bus_ops *ops;
    void *opaque;
    struct bus_slot *slot;
};

#define BUS_UNHANDLED_LOG_MAX 64

struct bus {
    const char *name;           /* "pio" or "mmio", for messages */
    pthread_rwlock_t lock;
    struct bus_range *ranges;   /* sorted by base, never overlapping */
    size_t nr, cap;
    /* addresses already reported as unhandled (logged once each) */
    pthread_mutex_t unhandled_lock;
    uint64_t unhandled[BUS_UNHANDLED_LOG_MAX];
    size_t nr_unhandled;
};

int bus_init(struct bus *bus, const char *name);
void bus_fini(struct bus *bus);

/* -EINVAL for len 0 or wrap-around, -EEXIST (logged with both names) if the
 * range overlaps one already registered. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const char *name,
                 const struct bus_ops *ops, void *opaque);
/* Removes the range that starts at base; -ENOENT if none. A call already
 * dispatched to it may still be running (see above). */
int bus_unregister(struct bus *bus, uint64_t base);
/* The same, then waits until no other thread is inside one of its handlers:
 * afterwards its opaque may be freed. -ENOENT if none. */
int bus_unregister_sync(struct bus *bus, uint64_t base);

/* Dispatch a guest access. Return 0 if a device handled it, -ENOENT if no
 * range covers [addr, addr+len) (read data is then all ones). An access that
 * straddles two ranges is unhandled. */
int bus_read(struct bus *bus, uint64_t addr, void *data, unsigned len);
int bus_write(struct bus *bus, uint64_t addr, const void *data, unsigned len);

/* For tests and --stats: the range covering addr, or NULL. Not locked. */
const struct bus_range *bus_find(struct bus *bus, uint64_t addr, unsigned len);

#endif
