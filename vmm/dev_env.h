/* What a device sees of the VM: the buses it registers on, guest memory, a
 * way to drive interrupt lines, and a way to ask the VM to stop (power-off,
 * reset, debug exit). Devices never reach into struct vm, so unit tests can
 * build them with fake buses and a recording irq function. */
#ifndef MINIVMM_DEV_ENV_H
#define MINIVMM_DEV_ENV_H
#include <stdint.h>

struct bus;
struct gm;

enum vm_stop_reason {
    VM_RUNNING = 0,
    VM_STOP_POWEROFF,    /* guest powered off: exit 0 */
    VM_STOP_RESET,       /* guest asked for a reset */
    VM_STOP_DEBUG_EXIT,  /* test payload wrote the debug-exit port */
    VM_STOP_SIGNAL,      /* SIGINT/SIGTERM */
    VM_STOP_ERROR,       /* fatal error (KVM internal error, shutdown...) */
};

struct dev_env {
    struct bus *pio;
    struct bus *mmio;
    struct gm *gm;
    /* Set interrupt line gsi to level (0/1); edge devices pulse 1 then 0. */
    int (*irq_set)(void *opaque, unsigned gsi, int level);
    /* Ask the VM to stop; code is the debug-exit value where that applies. */
    void (*request_stop)(void *opaque, enum vm_stop_reason reason, int code);
    void *opaque;
};

static inline int dev_irq_set(const struct dev_env *env, unsigned gsi, int level)
{
    return env->irq_set ? env->irq_set(env->opaque, gsi, level) : 0;
}

static inline void dev_request_stop(const struct dev_env *env, enum vm_stop_reason r, int code)
{
    if (env->request_stop)
        env->request_stop(env->opaque, r, code);
}

#endif
