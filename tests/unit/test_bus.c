/* vmm/bus.c: registration (overlaps, bad ranges), dispatch at the edges of
 * ranges, straddling accesses, unregistration, many ranges, and handlers
 * that register ranges themselves. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bus.h"

/* A device that records its last access and answers reads with a pattern
 * derived from its id and the offset. */
struct rec_dev {
    int id;
    unsigned reads, writes;
    uint64_t last_off;
    unsigned last_len;
    uint8_t last_data[8];
    int fail;   /* return this from both handlers */
};

static int rec_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct rec_dev *d = opaque;
    uint8_t *p = data;
    d->reads++;
    d->last_off = off;
    d->last_len = len;
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)(d->id * 16 + off + i);
    return d->fail;
}

static int rec_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct rec_dev *d = opaque;
    d->writes++;
    d->last_off = off;
    d->last_len = len;
    memcpy(d->last_data, data, len);
    return d->fail;
}

static const struct bus_ops rec_ops = { .read = rec_read, .write = rec_write };

static struct bus bus;

static void setup(void) { cr_assert_eq(bus_init(&bus, "test"), 0); }
static void teardown(void) { bus_fini(&bus); }

TestSuite(bus, .init = setup, .fini = teardown);

Test(bus, dispatch_gives_offset_and_data)
{
    struct rec_dev d = { .id = 1 };
    uint8_t buf[4] = { 0 };

    cr_assert_eq(bus_register(&bus, 0x3f8, 8, "uart", &rec_ops, &d), 0);
    cr_assert_eq(bus_read(&bus, 0x3fa, buf, 2), 0);
    cr_assert_eq(d.reads, 1);
    cr_assert_eq(d.last_off, 2);
    cr_assert_eq(d.last_len, 2);
    cr_assert_eq(buf[0], 16 + 2);
    cr_assert_eq(buf[1], 16 + 3);

    uint8_t w[4] = { 0xde, 0xad, 0xbe, 0xef };
    cr_assert_eq(bus_write(&bus, 0x3fc, w, 4), 0);
    cr_assert_eq(d.writes, 1);
    cr_assert_eq(d.last_off, 4);
    cr_assert_arr_eq(d.last_data, w, 4);
}

Test(bus, edges_of_a_range)
{
    struct rec_dev d = { .id = 2 };
    uint8_t b[8];

    cr_assert_eq(bus_register(&bus, 0x1000, 0x10, "dev", &rec_ops, &d), 0);
    cr_assert_eq(bus_read(&bus, 0x1000, b, 1), 0, "first byte");
    cr_assert_eq(d.last_off, 0);
    cr_assert_eq(bus_read(&bus, 0x100f, b, 1), 0, "last byte");
    cr_assert_eq(d.last_off, 0xf);
    cr_assert_eq(bus_read(&bus, 0x1008, b, 8), 0, "last 8 bytes");
    cr_assert_eq(d.reads, 3);

    memset(b, 0, sizeof(b));
    cr_assert_eq(bus_read(&bus, 0x0fff, b, 1), -ENOENT, "byte before");
    cr_assert_eq(b[0], 0xff, "unhandled reads are all ones");
    cr_assert_eq(bus_read(&bus, 0x1010, b, 1), -ENOENT, "byte after");
    cr_assert_eq(bus_read(&bus, 0x100c, b, 8), -ENOENT, "runs past the end");
    for (int i = 0; i < 8; i++)
        cr_assert_eq(b[i], 0xff);
    cr_assert_eq(bus_read(&bus, 0x0ffe, b, 4), -ENOENT, "starts before");
    cr_assert_eq(d.reads, 3, "the device never saw the refused accesses");
    cr_assert_eq(bus_write(&bus, 0x100f, b, 2), -ENOENT);
    cr_assert_eq(d.writes, 0);
}

Test(bus, straddling_two_ranges_is_unhandled)
{
    struct rec_dev a = { .id = 1 }, c = { .id = 2 };
    uint8_t b[4];

    cr_assert_eq(bus_register(&bus, 0x60, 1, "a", &rec_ops, &a), 0);
    cr_assert_eq(bus_register(&bus, 0x61, 1, "c", &rec_ops, &c), 0, "adjacent is fine");
    cr_assert_eq(bus_read(&bus, 0x60, b, 2), -ENOENT);
    cr_assert_eq(bus_write(&bus, 0x60, b, 2), -ENOENT);
    cr_assert_eq(a.reads + a.writes + c.reads + c.writes, 0);
    cr_assert_eq(bus_read(&bus, 0x61, b, 1), 0);
    cr_assert_eq(c.reads, 1);
}

Test(bus, overlaps_refused)
{
    struct rec_dev d = { .id = 1 };

    cr_assert_eq(bus_register(&bus, 0x100, 0x10, "first", &rec_ops, &d), 0);
    cr_assert_eq(bus_register(&bus, 0x100, 0x10, "same", &rec_ops, &d), -EEXIST);
    cr_assert_eq(bus_register(&bus, 0x0f8, 0x09, "tail-in", &rec_ops, &d), -EEXIST);
    cr_assert_eq(bus_register(&bus, 0x10f, 0x04, "head-in", &rec_ops, &d), -EEXIST);
    cr_assert_eq(bus_register(&bus, 0x104, 0x02, "inside", &rec_ops, &d), -EEXIST);
    cr_assert_eq(bus_register(&bus, 0x000, 0x1000, "around", &rec_ops, &d), -EEXIST);
    cr_assert_eq(bus_register(&bus, 0x0f8, 0x08, "before", &rec_ops, &d), 0);
    cr_assert_eq(bus_register(&bus, 0x110, 0x08, "after", &rec_ops, &d), 0);
    cr_assert_eq(bus.nr, 3);
    for (size_t i = 1; i < bus.nr; i++)
        cr_assert_gt(bus.ranges[i].base, bus.ranges[i - 1].base, "kept sorted");
}

Test(bus, bad_ranges_refused)
{
    struct rec_dev d = { 0 };

    cr_assert_eq(bus_register(&bus, 0x100, 0, "empty", &rec_ops, &d), -EINVAL);
    cr_assert_eq(bus_register(&bus, UINT64_MAX, 2, "wraps", &rec_ops, &d), -EINVAL);
    cr_assert_eq(bus_register(&bus, 0x100, 1, "no-ops", NULL, &d), -EINVAL);
    /* The very top of the address space is a valid range. */
    cr_assert_eq(bus_register(&bus, UINT64_MAX - 7, 8, "top", &rec_ops, &d), 0);
    uint8_t b[8];
    cr_assert_eq(bus_read(&bus, UINT64_MAX - 7, b, 8), 0);
    cr_assert_eq(bus_read(&bus, UINT64_MAX, b, 1), 0);
    cr_assert_eq(bus_read(&bus, UINT64_MAX, b, 2), -ENOENT, "wraps past 2^64");
    cr_assert_eq(bus.nr, 1);
}

Test(bus, bad_access_sizes)
{
    struct rec_dev d = { 0 };
    uint8_t b[16];

    cr_assert_eq(bus_register(&bus, 0, 0x100, "dev", &rec_ops, &d), 0);
    cr_assert_eq(bus_read(&bus, 0x10, b, 0), -EINVAL);
    cr_assert_eq(bus_read(&bus, 0x10, b, 9), -EINVAL);
    cr_assert_eq(bus_write(&bus, 0x10, b, 0), -EINVAL);
    cr_assert_eq(bus_write(&bus, 0x10, b, 16), -EINVAL);
    cr_assert_eq(d.reads + d.writes, 0);
    cr_assert_eq(bus_read(&bus, 0x10, b, 3), 0, "MMIO may see odd sizes up to 8");
}

Test(bus, unregister)
{
    struct rec_dev a = { .id = 1 }, c = { .id = 2 };
    uint8_t b[1];

    cr_assert_eq(bus_register(&bus, 0x10, 4, "a", &rec_ops, &a), 0);
    cr_assert_eq(bus_register(&bus, 0x20, 4, "c", &rec_ops, &c), 0);
    cr_assert_eq(bus_unregister(&bus, 0x11), -ENOENT, "only by base");
    cr_assert_eq(bus_unregister(&bus, 0x30), -ENOENT);
    cr_assert_eq(bus_unregister(&bus, 0x10), 0);
    cr_assert_eq(bus_read(&bus, 0x10, b, 1), -ENOENT);
    cr_assert_eq(bus_read(&bus, 0x20, b, 1), 0);
    cr_assert_eq(bus_unregister(&bus, 0x10), -ENOENT, "already gone");
    cr_assert_eq(bus_register(&bus, 0x10, 0x10, "a-again", &rec_ops, &a), 0, "space is free again");
    cr_assert_null(bus_find(&bus, 0x24, 1));
    cr_assert_not_null(bus_find(&bus, 0x1f, 1));
}

Test(bus, many_ranges)
{
    enum { N = 2000 };
    static struct rec_dev devs[N];
    unsigned order[N];

    /* Register in a scrambled order; ranges are 0x10 long at 0x20 steps. */
    for (unsigned i = 0; i < N; i++)
        order[i] = i;
    srand(42);
    for (unsigned i = N - 1; i > 0; i--) {
        unsigned j = (unsigned)rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (unsigned k = 0; k < N; k++) {
        unsigned i = order[k];
        devs[i] = (struct rec_dev){ .id = (int)i };
        cr_assert_eq(bus_register(&bus, 0x10000 + i * 0x20ULL, 0x10, "d", &rec_ops, &devs[i]), 0);
    }
    cr_assert_eq(bus.nr, N);
    for (unsigned i = 0; i < N; i++) {
        uint64_t base = 0x10000 + i * 0x20ULL;
        const struct bus_range *r = bus_find(&bus, base + 0xf, 1);
        cr_assert_not_null(r);
        cr_assert_eq(r->opaque, &devs[i]);
        cr_assert_null(bus_find(&bus, base + 0x10, 1), "gap after range %u", i);
        uint8_t b[4];
        cr_assert_eq(bus_write(&bus, base + 4, b, 4), 0);
        cr_assert_eq(devs[i].writes, 1);
        cr_assert_eq(devs[i].last_off, 4);
    }
    cr_assert_null(bus_find(&bus, 0xffff, 1));
}

Test(bus, device_error_reads_all_ones)
{
    struct rec_dev d = { .id = 3, .fail = -EIO };
    uint8_t b[2] = { 0, 0 };

    cr_assert_eq(bus_register(&bus, 0x40, 2, "failing", &rec_ops, &d), 0);
    cr_assert_eq(bus_read(&bus, 0x40, b, 2), -ENOENT);
    cr_assert_eq(b[0], 0xff);
    cr_assert_eq(b[1], 0xff);
    cr_assert_eq(bus_write(&bus, 0x40, b, 2), -ENOENT);
    cr_assert_eq(d.reads, 1);
    cr_assert_eq(d.writes, 1);
}

Test(bus, unhandled_logged_once_each)
{
    uint8_t b[1];

    for (int k = 0; k < 3; k++) {
        bus_read(&bus, 0x80, b, 1);
        bus_write(&bus, 0x80, b, 1);
        bus_read(&bus, 0x81, b, 1);
    }
    cr_assert_eq(bus.nr_unhandled, 2, "two distinct addresses remembered");
    for (uint64_t a = 0; a < 2 * BUS_UNHANDLED_LOG_MAX; a++)
        bus_read(&bus, 0x1000 + a, b, 1);
    cr_assert_eq(bus.nr_unhandled, BUS_UNHANDLED_LOG_MAX + 1, "bounded, plus the one 'stopped logging' note");
}

/* A handler that moves its own range (as a BAR write would) must not
 * deadlock on the bus lock. */
struct mover { struct bus *bus; uint64_t base; int moved; };
static const struct bus_ops mover_ops;
static int mover_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct mover *m = opaque;
    uint64_t nb = m->base + 0x1000;
    cr_assert_eq(bus_unregister(m->bus, m->base), 0);
    cr_assert_eq(bus_register(m->bus, nb, 0x10, "mover", &mover_ops, m), 0);
    m->base = nb;
    m->moved++;
    return 0;
}
static const struct bus_ops mover_ops = { .write = mover_write };

Test(bus, handler_may_register, .timeout = 5)
{
    struct mover m = { .bus = &bus, .base = 0x2000 };
    uint8_t b[1] = { 1 };

    cr_assert_eq(bus_register(&bus, m.base, 0x10, "mover", &mover_ops, &m), 0);
    cr_assert_eq(bus_write(&bus, 0x2000, b, 1), 0);
    cr_assert_eq(m.moved, 1);
    cr_assert_eq(bus_write(&bus, 0x2000, b, 1), -ENOENT, "old place is empty");
    cr_assert_eq(bus_write(&bus, 0x3000, b, 1), 0);
    cr_assert_eq(m.moved, 2);
    cr_assert_eq(bus_read(&bus, 0x4000, b, 1), -ENOENT, "no read handler: unhandled");
    cr_assert_eq(b[0], 0xff);
}

/* ---- removal while handlers run (bus_unregister_sync) ---- */

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

/* A handler that announces it is inside, then waits until released: the
 * stand-in for a vCPU still in a device's handler when another thread
 * removes the device. */
struct slow_dev {
    atomic_int inside, release, done;
};

static int slow_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct slow_dev *d = opaque;
    atomic_store(&d->inside, 1);
    while (!atomic_load(&d->release))
        usleep(100);
    atomic_store(&d->done, 1);
    return 0;
}

static const struct bus_ops slow_ops = { .write = slow_write };

static void *slow_writer(void *arg)
{
    uint8_t v = 1;
    bus_write(&bus, 0x100, &v, 1);
    return arg;
}

struct unreg_arg {
    atomic_int returned;
    int rc;
};

static void *sync_unregisterer(void *arg)
{
    struct unreg_arg *u = arg;
    u->rc = bus_unregister_sync(&bus, 0x100);
    atomic_store(&u->returned, 1);
    return NULL;
}

Test(bus, unregister_sync_waits_for_a_running_handler, .timeout = 10)
{
    struct slow_dev d = { 0 };
    struct unreg_arg u = { 0 };
    pthread_t w, r;
    uint8_t v = 2;

    cr_assert_eq(bus_register(&bus, 0x100, 4, "slow", &slow_ops, &d), 0);
    cr_assert_eq(pthread_create(&w, NULL, slow_writer, NULL), 0);
    while (!atomic_load(&d.inside))
        usleep(100);
    cr_assert_eq(pthread_create(&r, NULL, sync_unregisterer, &u), 0);
    usleep(20 * 1000);
    cr_assert_eq(atomic_load(&u.returned), 0, "returned while the handler still ran");
    /* the range is already gone for new accesses */
    cr_assert_eq(bus_write(&bus, 0x100, &v, 1), -ENOENT);
    atomic_store(&d.release, 1);
    pthread_join(r, NULL);
    cr_assert_eq(u.rc, 0);
    cr_assert_eq(atomic_load(&d.done), 1, "the handler finished before the removal returned");
    pthread_join(w, NULL);
}

Test(bus, plain_unregister_does_not_wait, .timeout = 10)
{
    struct slow_dev d = { 0 };
    pthread_t w;

    cr_assert_eq(bus_register(&bus, 0x100, 4, "slow", &slow_ops, &d), 0);
    cr_assert_eq(pthread_create(&w, NULL, slow_writer, NULL), 0);
    while (!atomic_load(&d.inside))
        usleep(100);
    cr_assert_eq(bus_unregister(&bus, 0x100), 0);
    cr_assert_eq(atomic_load(&d.done), 0, "a BAR move does not wait for the handler");
    atomic_store(&d.release, 1);
    pthread_join(w, NULL);
    cr_assert_eq(bus_unregister_sync(&bus, 0x100), -ENOENT);
}

/* A device that removes itself from inside its own handler and frees its
 * state there (an eject register): the removal must not wait for its own
 * call, and the bus must not touch the freed state afterwards (ASan). */
struct self_dev {
    struct bus *bus;
    int rc;
    int *rc_out;
};

static int self_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct self_dev *d = opaque;
    *d->rc_out = bus_unregister_sync(d->bus, 0x200);
    free(d);
    return 0;
}

static const struct bus_ops self_ops = { .write = self_write };

Test(bus, handler_may_remove_itself, .timeout = 10)
{
    struct self_dev *d = calloc(1, sizeof(*d));
    int rc = 1;
    uint8_t v = 1;

    d->bus = &bus;
    d->rc_out = &rc;
    cr_assert_eq(bus_register(&bus, 0x200, 4, "self", &self_ops, d), 0);
    cr_assert_eq(bus_write(&bus, 0x200, &v, 1), 0);
    cr_assert_eq(rc, 0);
    cr_assert_null(bus_find(&bus, 0x200, 1));
    cr_assert_eq(bus_write(&bus, 0x200, &v, 1), -ENOENT);
}

/* Many readers hammer a range while it is removed and added again: every
 * access either reaches a live device or is unhandled, and the sync
 * removal never returns while a reader is inside. */
struct churn_dev {
    atomic_int alive, calls, violations;
};

static int churn_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct churn_dev *d = opaque;
    if (!atomic_load(&d->alive))
        atomic_fetch_add(&d->violations, 1);
    atomic_fetch_add(&d->calls, 1);
    memset(data, 0x5a, len);
    return 0;
}

static const struct bus_ops churn_ops = { .read = churn_read };
static atomic_int churn_stop;

static void *churn_reader(void *arg)
{
    uint32_t v;
    while (!atomic_load(&churn_stop))
        bus_read(&bus, 0x300, &v, 4);
    return arg;
}

Test(bus, sync_removal_under_concurrent_readers, .timeout = 30)
{
    struct churn_dev d = { 0 };
    pthread_t t[3];

    atomic_store(&churn_stop, 0);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, churn_reader, NULL), 0);
    for (unsigned round = 0; round < 2000; round++) {
        atomic_store(&d.alive, 1);
        cr_assert_eq(bus_register(&bus, 0x300, 4, "churn", &churn_ops, &d), 0);
        cr_assert_eq(bus_unregister_sync(&bus, 0x300), 0);
        atomic_store(&d.alive, 0);   /* "freed": no reader may be inside now */
    }
    atomic_store(&churn_stop, 1);
    for (unsigned i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&d.violations), 0, "a handler ran after its sync removal");
}
