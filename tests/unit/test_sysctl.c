/* Reset control (0xCF9) and the debug-exit port. */
#include <criterion/criterion.h>

#include "devices/chipset/sysctl.h"
#include "fake_env.h"

static struct fake_env fe;
static struct sysctl *sc;

static void sc_setup(void)
{
    fake_env_init(&fe);
    cr_assert_eq(sysctl_create(&fe.env, &sc), 0);
}

static void sc_teardown(void)
{
    sysctl_destroy(sc);
    fake_env_fini(&fe);
}

TestSuite(sysctl, .init = sc_setup, .fini = sc_teardown);

Test(sysctl, cf9_reset_sequence)
{
    /* Linux's reboot=pci: hard-reset bit first, then with RST_CPU */
    cr_assert_eq(inb_(&fe, 0xCF9), 0x00);
    outb_(&fe, 0xCF9, 0x02);
    cr_assert_eq(fe.stops, 0, "SYS_RST alone does not reset");
    cr_assert_eq(inb_(&fe, 0xCF9), 0x02, "value readable");
    outb_(&fe, 0xCF9, 0x06);
    cr_assert_eq(fe.stops, 1);
    cr_assert_eq(fe.stop_reason, VM_STOP_RESET);
    cr_assert_eq(inb_(&fe, 0xCF9), 0x06);
    outb_(&fe, 0xCF9, 0x0E);            /* full reset */
    cr_assert_eq(fe.stops, 2);
}

Test(sysctl, cf9_soft_reset_also_resets)
{
    outb_(&fe, 0xCF9, 0x04);
    cr_assert_eq(fe.stops, 1);
    cr_assert_eq(fe.stop_reason, VM_STOP_RESET);
}

Test(sysctl, cf9_only_the_byte)
{
    cr_assert_null(bus_find(&fe.pio, 0xCF8, 1), "0xCF8 is the PCI config address");
    cr_assert_null(bus_find(&fe.pio, 0xCFA, 1));
    cr_assert_not_null(bus_find(&fe.pio, 0xCF9, 1));
}

Test(sysctl, debug_exit_codes)
{
    outb_(&fe, DEBUG_EXIT_PORT, 0x00);
    cr_assert_eq(fe.stops, 1);
    cr_assert_eq(fe.stop_reason, VM_STOP_DEBUG_EXIT);
    cr_assert_eq(fe.stop_code, 0);
    pio_out(&fe, DEBUG_EXIT_PORT, 0x1234, 2);
    cr_assert_eq(fe.stop_code, 0x1234);
    pio_out(&fe, DEBUG_EXIT_PORT, 0x8000002A, 4);
    cr_assert_eq((uint32_t)fe.stop_code, 0x8000002Au);
    cr_assert_eq(fe.stops, 3);
    outb_(&fe, DEBUG_EXIT_PORT, 0xFF);
    cr_assert_eq(fe.stop_code & 0xFF, 0xFF);
}

Test(sysctl, debug_exit_other_offsets_ignored)
{
    outb_(&fe, DEBUG_EXIT_PORT + 1, 0x01);
    cr_assert_eq(fe.stops, 0);
    cr_assert_eq(inb_(&fe, DEBUG_EXIT_PORT), 0xFF);
    cr_assert_eq(fe.stops, 0, "reads do not stop the VM");
}

Test(sysctl, unregisters)
{
    sysctl_destroy(sc);
    sc = NULL;
    cr_assert_null(bus_find(&fe.pio, 0xCF9, 1));
    cr_assert_null(bus_find(&fe.pio, DEBUG_EXIT_PORT, 1));
}
