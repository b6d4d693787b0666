/* Fuzz the vCPU exit decoding (vmm/vcpu.c): any kvm_run contents for port
 * I/O and MMIO exits, against buses with a few devices. Nothing may read
 * or write outside the kvm_run mapping (ASan guards its end). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include "vmm/bus.h"
#include "vmm/log.h"
#include "vmm/vcpu.h"

#define RUN_SIZE (2 * 4096)

static int sink_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    memset(data, (int)off, len);
    return 0;
}

static int sink_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    volatile uint8_t x = 0;
    for (unsigned i = 0; i < len; i++)
        x ^= ((const uint8_t *)data)[i];
    (void)x;
    return 0;
}

static const struct bus_ops sink_ops = { .read = sink_read, .write = sink_write };

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len)
{
    static struct bus pio, mmio;
    static int ready;
    struct kvm_run *run;

    if (!ready) {
        log_set_level(LOG_ERR);
        bus_init(&pio, "pio");
        bus_init(&mmio, "mmio");
        bus_register(&pio, 0x3f8, 8, "uart", &sink_ops, NULL);
        bus_register(&pio, 0x60, 1, "kbd", &sink_ops, NULL);
        bus_register(&mmio, 0xfed00000, 0x400, "hpet", &sink_ops, NULL);
        ready = 1;
    }
    run = malloc(RUN_SIZE);   /* exact size: ASan flags any overrun */
    if (!run)
        return 0;
    memset(run, 0, RUN_SIZE);
    memcpy(run, in, len < sizeof(*run) ? len : sizeof(*run));
    if (len > sizeof(*run)) {
        size_t rest = len - sizeof(*run);
        memcpy((uint8_t *)run + sizeof(*run), in + sizeof(*run),
               rest < RUN_SIZE - sizeof(*run) ? rest : RUN_SIZE - sizeof(*run));
    }
    if (run->exit_reason & 1)
        vcpu_dispatch_io(&pio, run, RUN_SIZE);
    else
        vcpu_dispatch_mmio(&mmio, run);
    free(run);
    return 0;
}
