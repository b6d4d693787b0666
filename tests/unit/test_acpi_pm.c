/* ACPI PM1/GPE0 registers and the PM timer (ACPI 6.4 §4.8). */
#include <criterion/criterion.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "devices/chipset/acpi_pm.h"
#include "fake_env.h"

#define B ACPI_PM_BASE
#define SCI ACPI_PM_SCI_GSI
#define PM1_STS (B + 0)
#define PM1_EN  (B + 2)
#define PM1_CNT (B + 4)
#define PM_TMR  (B + 8)
#define GPE_STS (B + 0x20)
#define GPE_EN  (B + 0x28)
#define SLP_EN  (1u << 13)
#define PWRBTN  (1u << 8)

static struct fake_env fe;
static struct acpi_pm *pm;

static void pm_setup(void)
{
    fake_env_init(&fe);
    cr_assert_eq(acpi_pm_create(&fe.env, B, SCI, &pm), 0);
}

static void pm_teardown(void)
{
    acpi_pm_destroy(pm);
    cr_assert_eq(fe.bad_calls, 0);
    fake_env_fini(&fe);
}

TestSuite(acpi_pm, .init = pm_setup, .fini = pm_teardown);

Test(acpi_pm, reset_state)
{
    cr_assert_eq(pio_in(&fe, PM1_STS, 2), 0);
    cr_assert_eq(pio_in(&fe, PM1_EN, 2), 0);
    cr_assert_eq(pio_in(&fe, PM1_CNT, 2), 1, "SCI_EN: always in ACPI mode");
    cr_assert_eq(pio_in(&fe, GPE_STS, 4), 0);
}

Test(acpi_pm, s5_powers_off)
{
    pio_out(&fe, PM1_CNT, 1 | (ACPI_PM_S5_TYP << 10), 2);   /* SLP_TYP alone */
    cr_assert_eq(fe.stops, 0);
    pio_out(&fe, PM1_CNT, 1 | (ACPI_PM_S5_TYP << 10) | SLP_EN, 2);
    cr_assert_eq(fe.stops, 1);
    cr_assert_eq(fe.stop_reason, VM_STOP_POWEROFF);
    cr_assert_eq(pio_in(&fe, PM1_CNT, 2) & SLP_EN, 0, "SLP_EN is write-only");
}

Test(acpi_pm, s5_by_byte_and_dword_writes)
{
    /* SLP_TYP and SLP_EN share the high byte */
    outb_(&fe, PM1_CNT + 1, (uint8_t)(((ACPI_PM_S5_TYP << 10) | SLP_EN) >> 8));
    cr_assert_eq(fe.stops, 1);
    pio_out(&fe, PM1_CNT, 1 | (ACPI_PM_S5_TYP << 10) | SLP_EN, 4);
    cr_assert_eq(fe.stops, 2);
    cr_assert_eq(fe.stop_reason, VM_STOP_POWEROFF);
}

Test(acpi_pm, other_sleep_states_ignored)
{
    for (unsigned typ = 0; typ < 8; typ++) {
        if (typ == ACPI_PM_S5_TYP)
            continue;
        pio_out(&fe, PM1_CNT, 1 | (typ << 10) | SLP_EN, 2);
    }
    cr_assert_eq(fe.stops, 0);
}

Test(acpi_pm, status_write_one_to_clear)
{
    acpi_pm_power_button(pm);
    cr_assert_eq(pio_in(&fe, PM1_STS, 2), PWRBTN);
    pio_out(&fe, PM1_STS, 0, 2);
    cr_assert_eq(pio_in(&fe, PM1_STS, 2), PWRBTN, "writing 0 leaves it");
    pio_out(&fe, PM1_STS, 0xFFFF & ~PWRBTN, 2);
    cr_assert_eq(pio_in(&fe, PM1_STS, 2), PWRBTN, "other bits do not clear it or get set");
    outb_(&fe, PM1_STS + 1, PWRBTN >> 8);
    cr_assert_eq(pio_in(&fe, PM1_STS, 2), 0, "1 clears it");
}

Test(acpi_pm, sci_follows_enabled_status)
{
    acpi_pm_power_button(pm);
    cr_assert_eq(fe.calls[SCI], 0, "not enabled: no SCI");
    pio_out(&fe, PM1_EN, PWRBTN, 2);
    cr_assert_eq(fake_level(&fe, SCI), 1, "enabled and pending: SCI high");
    pio_out(&fe, PM1_STS, PWRBTN, 2);
    cr_assert_eq(fake_level(&fe, SCI), 0, "cleared: SCI low");

    acpi_pm_power_button(pm);
    cr_assert_eq(fake_level(&fe, SCI), 1);
    pio_out(&fe, PM1_CNT, 0, 2);            /* SCI_EN off */
    cr_assert_eq(fake_level(&fe, SCI), 0);
    pio_out(&fe, PM1_CNT, 1, 2);
    cr_assert_eq(fake_level(&fe, SCI), 1);
    pio_out(&fe, PM1_EN, 0, 2);
    cr_assert_eq(fake_level(&fe, SCI), 0);
    cr_assert_eq(pio_in(&fe, PM1_EN, 2), 0);
}

Test(acpi_pm, gpe_block)
{
    cr_assert_eq(acpi_pm_gpe_raise(pm, 64), -EINVAL);
    cr_assert_eq(acpi_pm_gpe_raise(pm, 11), 0);
    cr_assert_eq(inb_(&fe, GPE_STS + 1), 0x08);
    cr_assert_eq(fe.calls[SCI], 0);
    outb_(&fe, GPE_EN + 1, 0x08);
    cr_assert_eq(inb_(&fe, GPE_EN + 1), 0x08);
    cr_assert_eq(fake_level(&fe, SCI), 1);
    outb_(&fe, GPE_STS + 1, 0x08);
    cr_assert_eq(inb_(&fe, GPE_STS + 1), 0x00);
    cr_assert_eq(fake_level(&fe, SCI), 0);
    cr_assert_eq(acpi_pm_gpe_raise(pm, 63), 0);
    cr_assert_eq(inb_(&fe, GPE_STS + 7), 0x80);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

Test(acpi_pm, timer_monotonic_24bit_at_3579545_hz)
{
    uint32_t prev = pio_in(&fe, PM_TMR, 4);
    double t0 = now_s();
    uint64_t total = 0;

    for (int i = 0; i < 2000; i++) {
        uint32_t v = pio_in(&fe, PM_TMR, 4);
        cr_assert_eq(v & 0xFF000000u, 0, "24-bit timer: top byte reads 0");
        total += (v - prev) & 0xFFFFFF;     /* wraps every 4.69 s */
        prev = v;
    }
    usleep(50000);
    uint32_t v = pio_in(&fe, PM_TMR, 4);
    total += (v - prev) & 0xFFFFFF;
    double secs = now_s() - t0;
    double rate = (double)total / secs;
    cr_assert(rate > 3579545 * 0.9 && rate < 3579545 * 1.1,
              "timer ran at %.0f Hz over %.3f s", rate, secs);

    pio_out(&fe, PM_TMR, 0, 4);             /* read-only */
    uint32_t after = pio_in(&fe, PM_TMR, 4);
    cr_assert_lt((after - v) & 0xFFFFFF, 3579545u, "a write did not reset the timer");
}

Test(acpi_pm, reserved_reads_zero_and_unregister)
{
    cr_assert_eq(pio_in(&fe, B + 0x10, 4), 0);
    acpi_pm_destroy(pm);
    pm = NULL;
    cr_assert_null(bus_find(&fe.pio, B, 1));
}
