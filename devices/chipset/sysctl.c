/* Small system-control ports.
 *
 *   0xCF9  1 byte  Reset Control Register (Intel ICH9 datasheet §13.7.5,
 *                  RST_CNT): bit 1 SYS_RST (hard reset when set), bit 2
 *                  RST_CPU (writing 1 starts the reset), bit 3 FULL_RST.
 *                  A write with RST_CPU set stops the VM with VM_STOP_RESET;
 *                  the value written stays readable. ACPI's RESET_REG (boot/
 *                  acpi.c: value 6) and Linux's reboot=pci land here. Without
 *                  SYS_RST the guest asks for a soft (INIT-only) reset, which
 *                  minivmm does not have: it resets the whole VM, logged once.
 *   0x501  1-4 bytes  debug exit (DEBUG_EXIT_PORT): a write of value v stops
 *                  the VM with VM_STOP_DEBUG_EXIT and code v (the value of the
 *                  bytes written, little-endian). Reads return all ones.
 *                  Only the 4 ports from 0x501 are decoded; a write that does
 *                  not start at 0x501 is ignored, logged once. */
#include "devices/chipset/sysctl.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bus.h"
#include "vmm/log.h"

#define SYSCTL_RST_CNT_PORT 0xCF9
#define RST_CNT_SYS_RST     0x02
#define RST_CNT_RST_CPU     0x04
#define RST_CNT_MASK        0x0E
#define DEBUG_EXIT_LEN      4

struct sysctl {
    struct dev_env env;
    bool rst_registered, dbg_registered;
    pthread_mutex_t lock;
    uint8_t rst_cnt;
};

static int sysctl_rst_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct sysctl *s = opaque;

    pthread_mutex_lock(&s->lock);
    memset(data, 0xFF, len);
    ((uint8_t *)data)[0] = s->rst_cnt;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int sysctl_rst_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct sysctl *s = opaque;
    uint8_t v = *(const uint8_t *)data & RST_CNT_MASK;

    pthread_mutex_lock(&s->lock);
    s->rst_cnt = v;
    pthread_mutex_unlock(&s->lock);
    if (!(v & RST_CNT_RST_CPU))
        return 0;
    if (!(v & RST_CNT_SYS_RST))
        log_guest_once("sysctl", "soft reset (0x%02x to port 0xCF9): resetting the whole VM", v);
    dev_request_stop(&s->env, VM_STOP_RESET, 0);
    return 0;
}

static int sysctl_dbg_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    memset(data, 0xFF, len);
    return 0;
}

static int sysctl_dbg_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct sysctl *s = opaque;
    const uint8_t *d = data;
    uint32_t v = 0;

    if (offset != 0 || len > 4) {
        log_guest_once("sysctl", "debug-exit write of %u bytes at port 0x%llx ignored "
                       "(write 1-4 bytes at 0x%x)", len,
                       (unsigned long long)(DEBUG_EXIT_PORT + offset), DEBUG_EXIT_PORT);
        return 0;
    }
    for (unsigned i = 0; i < len; i++)
        v |= (uint32_t)d[i] << (8 * i);
    dev_request_stop(&s->env, VM_STOP_DEBUG_EXIT, (int)v);
    return 0;
}

static const struct bus_ops sysctl_rst_ops = { .read = sysctl_rst_read, .write = sysctl_rst_write };
static const struct bus_ops sysctl_dbg_ops = { .read = sysctl_dbg_read, .write = sysctl_dbg_write };

int sysctl_create(const struct dev_env *env, struct sysctl **out)
{
    struct sysctl *s = calloc(1, sizeof(*s));
    int err;

    if (!s)
        return -ENOMEM;
    s->env = *env;
    pthread_mutex_init(&s->lock, NULL);
    err = bus_register(env->pio, SYSCTL_RST_CNT_PORT, 1, "reset-control", &sysctl_rst_ops, s);
    if (err)
        goto fail;
    s->rst_registered = true;
    err = bus_register(env->pio, DEBUG_EXIT_PORT, DEBUG_EXIT_LEN, "debug-exit", &sysctl_dbg_ops, s);
    if (err)
        goto fail;
    s->dbg_registered = true;
    *out = s;
    return 0;
fail:
    sysctl_destroy(s);
    return err;
}

void sysctl_destroy(struct sysctl *s)
{
    if (!s)
        return;
    if (s->dbg_registered)
        bus_unregister(s->env.pio, DEBUG_EXIT_PORT);
    if (s->rst_registered)
        bus_unregister(s->env.pio, SYSCTL_RST_CNT_PORT);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
