/* libFuzzer target: a guest driving the legacy devices through the port I/O
 * bus. The input is a sequence of 7-byte operations:
 *   byte 0: bit 0 write/read, bits 1-2 width (1, 2, 4, 4), bits 3-7 which
 *           device range (table below), wrapping
 *   byte 1: offset inside that range (wraps to its length)
 *   bytes 2-5: value for writes
 *   byte 6: host-side event (bits 0-2): 1 = bytes 2.. into the UART, 2 = the
 *           power button, 3 = a GPE (bits 2-7 pick it)
 * Invariants checked: every device drives its lines with real level changes
 * only, and stop requests carry a known reason. Sanitizers do the rest. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/chipset/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/chipset/sysctl.h"
#include "devices/legacy/uart.h"
#include "vmm/bus.h"
#include "vmm/log.h"

static const struct { uint16_t base, len; } ranges[] = {
    { UART_COM1_BASE, 8 }, { 0x60, 1 }, { 0x64, 1 }, { 0xCF9, 1 },
    { DEBUG_EXIT_PORT, 4 }, { ACPI_PM_BASE, 0x30 },
};

static int levels[32];

static int fuzz_irq_set(void *opaque, unsigned gsi, int level)
{
    if (gsi >= 32 || (level != 0 && level != 1) || levels[gsi] == level)
        abort();   /* a device drove a line it does not own, or without a change */
    levels[gsi] = level;
    return 0;
}

static void fuzz_request_stop(void *opaque, enum vm_stop_reason r, int code)
{
    if (r != VM_STOP_POWEROFF && r != VM_STOP_RESET && r != VM_STOP_DEBUG_EXIT)
        abort();
}

static int devnull = -1;

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bus pio, mmio;
    struct dev_env env = {
        .pio = &pio, .mmio = &mmio, .irq_set = fuzz_irq_set,
        .request_stop = fuzz_request_stop,
    };
    struct uart *u = NULL;
    struct i8042 *k = NULL;
    struct sysctl *s = NULL;
    struct acpi_pm *pm = NULL;

    if (devnull < 0) {
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        log_set_level(LOG_ERR);
    }
    memset(levels, 0, sizeof(levels));
    if (bus_init(&pio, "pio") || bus_init(&mmio, "mmio"))
        abort();
    if (uart_create(&env, UART_COM1_BASE, UART_COM1_GSI, -1, devnull, &u) ||
        i8042_create(&env, &k) || sysctl_create(&env, &s) ||
        acpi_pm_create(&env, ACPI_PM_BASE, ACPI_PM_SCI_GSI, &pm))
        abort();

    for (size_t i = 0; i + 7 <= size; i += 7) {
        const uint8_t *op = data + i;
        unsigned len = (unsigned[]){ 1, 2, 4, 4 }[(op[0] >> 1) & 3];
        unsigned r = (op[0] >> 3) % (sizeof(ranges) / sizeof(ranges[0]));
        uint64_t port = ranges[r].base + op[1] % ranges[r].len;
        uint8_t buf[4];

        if (op[0] & 1) {
            memcpy(buf, op + 2, 4);
            bus_write(&pio, port, buf, len);
        } else {
            bus_read(&pio, port, buf, len);
        }
        switch (op[6] & 7) {
        case 1: uart_receive(u, op + 2, (op[6] >> 3) % 5); break;   /* 0-4 bytes */
        case 2: acpi_pm_power_button(pm); break;
        case 3: acpi_pm_gpe_raise(pm, op[6] >> 2); break;      /* 0-63, some invalid */
        default: break;
        }
    }

    acpi_pm_destroy(pm);
    sysctl_destroy(s);
    i8042_destroy(k);
    uart_destroy(u);
    for (unsigned g = 0; g < 32; g++)
        if (levels[g])
            abort();   /* destroy must leave every line low */
    bus_fini(&pio);
    bus_fini(&mmio);
    return 0;
}
