/* MC146818 RTC/CMOS (devices/legacy/rtc.h) with a fake host clock. */
#include <criterion/criterion.h>

#include "devices/legacy/rtc.h"
#include "fake_env.h"

static struct fake_env fe;
static struct rtc *rtc;
static struct timespec fake_now;

static void fake_clock(void *opaque, struct timespec *ts) { *ts = fake_now; }

/* 2024-02-29 13:45:07 UTC, a Thursday */
#define T0 1709214307

static void rtc_setup(void)
{
    fake_env_init(&fe);
    struct rtc_config c = { .ram_below_4g = 0x80000000ULL, .ram_above_4g = 0x180000000ULL,
                            .nr_cpus = 4 };
    cr_assert_eq(rtc_create(&fe.env, &c, &rtc), 0);
    fake_now = (struct timespec){ T0, 1000 };
    rtc_set_clock(rtc, fake_clock, NULL);
}

static void rtc_teardown(void)
{
    rtc_destroy(rtc);
    fake_env_fini(&fe);
}

TestSuite(rtc, .init = rtc_setup, .fini = rtc_teardown);

static uint8_t cmos(uint8_t idx)
{
    outb_(&fe, 0x70, idx);
    return inb_(&fe, 0x71);
}

static void cmos_w(uint8_t idx, uint8_t v)
{
    outb_(&fe, 0x70, idx);
    outb_(&fe, 0x71, v);
}

Test(rtc, bcd_time_from_host)
{
    cr_assert_eq(cmos(0x0B), 0x02, "24h, BCD");
    cr_assert_eq(cmos(0x00), 0x07);
    cr_assert_eq(cmos(0x02), 0x45);
    cr_assert_eq(cmos(0x04), 0x13);
    cr_assert_eq(cmos(0x06), 0x05, "Thursday = 5 (Sunday = 1)");
    cr_assert_eq(cmos(0x07), 0x29);
    cr_assert_eq(cmos(0x08), 0x02);
    cr_assert_eq(cmos(0x09), 0x24);
    cr_assert_eq(cmos(0x32), 0x20);
    fake_now.tv_sec += 60;
    cr_assert_eq(cmos(0x02), 0x46, "follows the host clock");
}

Test(rtc, binary_and_12h_modes)
{
    cmos_w(0x0B, 0x04);     /* binary, 12h */
    cr_assert_eq(cmos(0x00), 7);
    cr_assert_eq(cmos(0x04), 0x80 | 1, "1 PM");
    cr_assert_eq(cmos(0x09), 24);
    cmos_w(0x0B, 0x00);     /* BCD, 12h */
    cr_assert_eq(cmos(0x04), 0x81);
    fake_now.tv_sec -= 13 * 3600;   /* 00:45 -> 12 AM */
    cr_assert_eq(cmos(0x04), 0x12);
}

Test(rtc, guest_sets_time_with_set_bit)
{
    /* Linux's mc146818_set_time: SET, write fields, clear SET */
    cmos_w(0x0B, 0x82);
    cmos_w(0x00, 0x00);
    cmos_w(0x02, 0x30);
    cmos_w(0x04, 0x08);
    cmos_w(0x07, 0x31);     /* 31st before the month: no early normalization */
    cmos_w(0x08, 0x12);
    cmos_w(0x09, 0x99);
    cmos_w(0x32, 0x19);
    cr_assert_eq(cmos(0x07), 0x31, "frozen copy reads back");
    fake_now.tv_sec += 5;
    cr_assert_eq(cmos(0x00), 0x00, "no update while SET");
    cmos_w(0x0B, 0x02);
    cr_assert_eq(cmos(0x09), 0x99);
    cr_assert_eq(cmos(0x32), 0x19);
    cr_assert_eq(cmos(0x08), 0x12);
    cr_assert_eq(cmos(0x07), 0x31);
    cr_assert_eq(cmos(0x04), 0x08);
    fake_now.tv_sec += 61;
    cr_assert_eq(cmos(0x02), 0x31, "runs again from the new time");
    cr_assert_eq(cmos(0x00), 0x01);
}

Test(rtc, single_field_write_without_set)
{
    cmos_w(0x02, 0x10);
    cr_assert_eq(cmos(0x02), 0x10);
    cr_assert_eq(cmos(0x04), 0x13, "other fields unchanged");
}

Test(rtc, uip_and_status_registers)
{
    fake_now.tv_nsec = 500000000;
    cr_assert_eq(cmos(0x0A), 0x26);
    fake_now.tv_nsec = 999900000;
    cr_assert_eq(cmos(0x0A), 0xA6, "update in progress near the second");
    cmos_w(0x0A, 0xFF);
    fake_now.tv_nsec = 0;
    cr_assert_eq(cmos(0x0A), 0x7F, "UIP is read-only");
    cr_assert_eq(cmos(0x0C), 0x00);
    cr_assert_eq(cmos(0x0D), 0x80);
    cmos_w(0x0D, 0);
    cr_assert_eq(cmos(0x0D), 0x80);
    cmos_w(0x0B, 0x42);     /* PIE: logged, nothing raised */
    cr_assert_eq(fe.calls[RTC_GSI], 0);
}

Test(rtc, memory_size_bytes)
{
    /* 2 GiB below 4G, 6 GiB above */
    cr_assert_eq(cmos(0x15) | cmos(0x16) << 8, 640);
    cr_assert_eq(cmos(0x17) | cmos(0x18) << 8, 0xFFFF, "capped");
    cr_assert_eq(cmos(0x30) | cmos(0x31) << 8, 0xFFFF);
    cr_assert_eq(cmos(0x34) | cmos(0x35) << 8, (0x80000000u - 0x1000000u) >> 16);
    uint32_t hi = cmos(0x5B) | cmos(0x5C) << 8 | (uint32_t)cmos(0x5D) << 16;
    cr_assert_eq((uint64_t)hi << 16, 0x180000000ULL);
    cr_assert_eq(cmos(0x5F), 3);
    unsigned sum = 0;
    for (unsigned i = 0x10; i <= 0x2D; i++)
        sum += cmos((uint8_t)i);
    cr_assert_eq((unsigned)(cmos(0x2E) << 8 | cmos(0x2F)), sum);
}

Test(rtc, small_memory_and_nmi_bit)
{
    struct fake_env f2;
    struct rtc *r2;
    fake_env_init(&f2);
    struct rtc_config c = { .ram_below_4g = 8u << 20, .nr_cpus = 1 };
    cr_assert_eq(rtc_create(&f2.env, &c, &r2), 0);
    outb_(&f2, 0x70, 0x34);
    cr_assert_eq(inb_(&f2, 0x71), 0, "below 16 MiB");
    outb_(&f2, 0x70, 0x17);
    cr_assert_eq(inb_(&f2, 0x71) | 0, (7u << 10) & 0xFF);
    cr_assert_not(rtc_nmi_masked(r2));
    outb_(&f2, 0x70, 0x80 | 0x0D);
    cr_assert(rtc_nmi_masked(r2));
    cr_assert_eq(inb_(&f2, 0x71), 0x80, "index still selects with bit 7 set");
    cr_assert_eq(inb_(&f2, 0x70), 0xFF, "index port is write-only");
    rtc_destroy(r2);
    fake_env_fini(&f2);
}

Test(rtc, cmos_ram_is_guest_writable)
{
    cmos_w(0x40, 0x5A);
    cr_assert_eq(cmos(0x40), 0x5A);
    cmos_w(0x7F, 0xA5);
    cr_assert_eq(cmos(0x7F), 0xA5);
}

/* The in-process guest reset re-creates the RTC: rtc_save from the old one,
 * rtc_config.restore into the new one, as the battery-backed RTC well
 * keeps time and CMOS RAM across a platform reset. */
static struct rtc *rtc_recreate(const struct rtc_state *s)
{
    struct rtc *r;
    rtc_destroy(rtc);
    rtc = NULL;
    struct rtc_config c = { .ram_below_4g = 0x80000000ULL, .ram_above_4g = 0x180000000ULL,
                            .nr_cpus = 4, .restore = s };
    cr_assert_eq(rtc_create(&fe.env, &c, &r), 0, "the ports are free again");
    rtc = r;    /* the suite's fini destroys it */
    rtc_set_clock(rtc, fake_clock, NULL);
    return r;
}

Test(rtc, guest_time_and_cmos_survive_a_reset)
{
    struct rtc_state s;
    /* the guest sets 2031-07-09 22:10:30 (Linux's way: SET, fields, clear) */
    cmos_w(0x0B, 0x82);
    cmos_w(0x00, 0x30);
    cmos_w(0x02, 0x10);
    cmos_w(0x04, 0x22);
    cmos_w(0x07, 0x09);
    cmos_w(0x08, 0x07);
    cmos_w(0x09, 0x31);
    cmos_w(0x32, 0x20);
    cmos_w(0x0B, 0x02 | 0x10);     /* SET off, UIE on (logged) */
    cmos_w(0x0A, 0x2F);
    cmos_w(0x40, 0x5A);            /* NVRAM: firmware or the OS wrote it */
    cmos_w(0x7F, 0xA5);

    rtc_save(rtc, &s);
    cr_assert(s.valid);
    fake_now.tv_sec += 7;          /* the reset takes a while */
    rtc_recreate(&s);
    cr_assert_eq(cmos(0x09), 0x31, "year");
    cr_assert_eq(cmos(0x08), 0x07, "month");
    cr_assert_eq(cmos(0x07), 0x09, "day");
    cr_assert_eq(cmos(0x04), 0x22);
    cr_assert_eq(cmos(0x02), 0x10);
    cr_assert_eq(cmos(0x00), 0x37, "30 s + the 7 s the reset took");
    cr_assert_eq(cmos(0x32), 0x20);
    cr_assert_eq(cmos(0x40), 0x5A, "CMOS RAM kept");
    cr_assert_eq(cmos(0x7F), 0xA5);
    cr_assert_eq(cmos(0x0A), 0x2F, "register A kept");
    cr_assert_eq(cmos(0x0B), 0x02, "register B kept, interrupt enables cleared (RESET)");
    /* the machine's bytes are the machine's */
    cr_assert_eq(cmos(0x5F), 3);
    unsigned sum = 0;
    for (unsigned i = 0x10; i <= 0x2D; i++)
        sum += cmos((uint8_t)i);
    cr_assert_eq((unsigned)(cmos(0x2E) << 8 | cmos(0x2F)), sum, "checksum still right");
}

Test(rtc, reset_while_setting_commits_the_time)
{
    struct rtc_state s;
    cmos_w(0x0B, 0x82);
    cmos_w(0x09, 0x33);            /* 2033, the rest from the frozen copy */
    rtc_save(rtc, &s);
    fake_now.tv_sec += 2;
    rtc_recreate(&s);
    cr_assert_eq(cmos(0x0B), 0x02, "not frozen after the reset");
    cr_assert_eq(cmos(0x09), 0x33);
    cr_assert_eq(cmos(0x00), 0x09, "07 s + 2 s: running");
}

Test(rtc, no_state_means_power_on)
{
    struct rtc_state none = { 0 };
    cmos_w(0x02, 0x59);
    cmos_w(0x40, 0x5A);
    rtc_recreate(&none);
    cr_assert_eq(cmos(0x02), 0x45, "host time again");
    cr_assert_eq(cmos(0x40), 0x00);
    cr_assert_eq(cmos(0x0A), 0x26);
}

/* With the real host clock: whatever time passes between the save and the
 * read-back (a second or two at most) is all that may differ. */
Test(rtc, reset_keeps_offset_against_the_host_clock)
{
    struct rtc_state s;
    rtc_set_clock(rtc, NULL, NULL);
    cmos_w(0x0B, 0x86);            /* SET, binary, 24h */
    cmos_w(0x32, 20);
    cmos_w(0x09, 40);              /* 2040-01-01 00:00:00 */
    cmos_w(0x08, 1);
    cmos_w(0x07, 1);
    cmos_w(0x04, 0);
    cmos_w(0x02, 0);
    cmos_w(0x00, 0);
    cmos_w(0x0B, 0x06);
    rtc_save(rtc, &s);
    rtc_recreate(&s);
    rtc_set_clock(rtc, NULL, NULL);
    cr_assert_eq(cmos(0x09), 40);
    cr_assert_eq(cmos(0x08), 1);
    cr_assert_eq(cmos(0x04), 0);
    cr_assert_eq(cmos(0x02), 0);
    cr_assert_leq(cmos(0x00), 2, "seconds elapsed since it was set");
}
