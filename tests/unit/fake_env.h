/* Test double for struct dev_env: real buses, a recording irq_set and a
 * recording request_stop. Header-only (static functions) so each test file
 * that includes it stays self-contained in the one Criterion runner. */
#ifndef MINIVMM_TEST_FAKE_ENV_H
#define MINIVMM_TEST_FAKE_ENV_H
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "vmm/bus.h"
#include "vmm/dev_env.h"

#define FAKE_NR_GSI 32

struct fake_env {
    struct bus pio, mmio;
    struct dev_env env;
    pthread_mutex_t lock;           /* irq_set may come from device threads */
    int level[FAKE_NR_GSI];         /* current level of each line */
    unsigned raises[FAKE_NR_GSI];   /* 0 -> 1 transitions seen */
    unsigned calls[FAKE_NR_GSI];
    unsigned bad_calls;             /* same level set twice in a row */
    unsigned stops;
    enum vm_stop_reason stop_reason;
    int stop_code;
};

static inline int fake_irq_set(void *opaque, unsigned gsi, int level)
{
    struct fake_env *f = opaque;
    cr_assert_lt(gsi, FAKE_NR_GSI);
    pthread_mutex_lock(&f->lock);
    if (f->level[gsi] == level)
        f->bad_calls++;
    if (level && !f->level[gsi])
        f->raises[gsi]++;
    f->level[gsi] = level;
    f->calls[gsi]++;
    pthread_mutex_unlock(&f->lock);
    return 0;
}

static inline void fake_request_stop(void *opaque, enum vm_stop_reason r, int code)
{
    struct fake_env *f = opaque;
    pthread_mutex_lock(&f->lock);
    f->stops++;
    f->stop_reason = r;
    f->stop_code = code;
    pthread_mutex_unlock(&f->lock);
}

static inline void fake_env_init(struct fake_env *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    cr_assert_eq(bus_init(&f->pio, "pio"), 0);
    cr_assert_eq(bus_init(&f->mmio, "mmio"), 0);
    f->env = (struct dev_env){
        .pio = &f->pio, .mmio = &f->mmio, .gm = NULL,
        .irq_set = fake_irq_set, .request_stop = fake_request_stop, .opaque = f,
    };
}

static inline void fake_env_fini(struct fake_env *f)
{
    bus_fini(&f->pio);
    bus_fini(&f->mmio);
    pthread_mutex_destroy(&f->lock);
}

static inline int fake_level(struct fake_env *f, unsigned gsi)
{
    pthread_mutex_lock(&f->lock);
    int l = f->level[gsi];
    pthread_mutex_unlock(&f->lock);
    return l;
}

static inline uint32_t pio_in(struct fake_env *f, uint16_t port, unsigned len)
{
    uint8_t b[4] = { 0 };
    cr_assert_eq(bus_read(&f->pio, port, b, len), 0, "nothing at port 0x%x", port);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline void pio_out(struct fake_env *f, uint16_t port, uint32_t v, unsigned len)
{
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    cr_assert_eq(bus_write(&f->pio, port, b, len), 0, "nothing at port 0x%x", port);
}

static inline uint8_t inb_(struct fake_env *f, uint16_t port) { return (uint8_t)pio_in(f, port, 1); }
static inline void outb_(struct fake_env *f, uint16_t port, uint8_t v) { pio_out(f, port, v, 1); }

#endif
