/* MC146818 real-time clock and CMOS RAM at ports 0x70/0x71, as PCs have
 * it (ICH9 datasheet §13.6, Motorola MC146818A datasheet). Time comes from
 * the host clock (UTC) plus whatever offset the guest sets; the CMOS bytes
 * firmware reads for the memory size are filled from the config. See
 * devices/legacy/rtc.c for the register map. */
#ifndef MINIVMM_RTC_H
#define MINIVMM_RTC_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "vmm/dev_env.h"

#define RTC_PORT        0x70
#define RTC_GSI         8       /* ISA IRQ 8; minivmm raises no RTC interrupts */
#define RTC_CENTURY_REG 0x32    /* what a FADT's CENTURY field would name */

#define RTC_CMOS_SIZE   128

/* What survives a platform reset on a PC: the RTC and its CMOS RAM sit in
 * the battery-backed RTC well (ICH9 datasheet §5.9), which PLTRST# does not
 * touch. rtc_save takes it from one RTC, rtc_config.restore gives it to
 * the next; a zeroed state (valid false) is "none". */
struct rtc_state {
    bool valid;
    int64_t offset;             /* guest time - host time, seconds */
    uint8_t cmos[RTC_CMOS_SIZE];    /* registers A/B and bytes 0x0E-0x7F */
};

struct rtc_config {
    uint64_t ram_below_4g;      /* bytes of RAM from 0 (gm_lowmem) */
    uint64_t ram_above_4g;      /* bytes of RAM from 4 GiB */
    unsigned nr_cpus;
    /* optional: the state of the RTC this one replaces (a guest reset):
     * the guest's time and CMOS bytes carry over; register B's interrupt
     * enables are cleared as the MC146818A's RESET pin clears them, and
     * the memory-size bytes are filled again from this config. NULL or
     * !valid: power-on state. */
    const struct rtc_state *restore;
};

struct rtc;
int rtc_create(const struct dev_env *env, const struct rtc_config *cfg, struct rtc **out);
void rtc_destroy(struct rtc *r);
/* The state to hand to the next RTC. A time the guest is setting (register
 * B SET) counts as set: what it wrote so far becomes the time. */
void rtc_save(struct rtc *r, struct rtc_state *out);
/* Port 0x70 bit 7 as the guest last wrote it (NMI disabled when set). */
bool rtc_nmi_masked(struct rtc *r);
/* Tests: replace the host clock (CLOCK_REALTIME) with now(opaque). */
void rtc_set_clock(struct rtc *r, void (*now)(void *opaque, struct timespec *ts), void *opaque);

#endif
