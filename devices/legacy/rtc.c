/* MC146818 RTC and CMOS RAM (devices/legacy/rtc.h).
 *
 * Ports: 0x70 write: bits 6:0 select a CMOS byte, bit 7 masks NMI (read:
 * 0xFF, the index register is write-only); 0x71: the selected byte.
 *
 *   index  contents                                   here
 *   0x00   seconds        \                           host UTC + the guest's
 *   0x02   minutes         |  BCD or binary (reg B    offset; a write moves
 *   0x04   hours           |  DM), hours 24h or 12h   the offset (at once, or
 *   0x06   day of week     |  with bit 7 = PM (reg B  when SET is cleared if
 *   0x07   day of month    |  24/12)                  the guest set SET)
 *   0x08   month           |
 *   0x09   year (00-99)    |
 *   0x32   century        /
 *   0x01/0x03/0x05  alarm seconds/minutes/hours       stored
 *   0x0A   register A: bit 7 UIP (read-only: set during the last 244 us
 *          of each second, when a real part updates its registers), bits
 *          6:0 divider and rate, stored; reset 0x26
 *   0x0B   register B: SET, PIE, AIE, UIE, SQWE, DM, 24/12, DSE; reset 0x02.
 *          Periodic, alarm and update interrupts are not generated (no OS
 *          we boot needs them: they use the LAPIC timer, HPET or PM timer);
 *          enabling one is logged once.
 *   0x0C   register C: interrupt flags, read 0 (none ever pending)
 *   0x0D   register D: 0x80 (VRT: the battery is fine), read-only
 *   0x0E-0x7F  CMOS RAM, guest-writable, initialized as PC BIOSes expect:
 *     0x10 floppy types 0, 0x12 hard disk types 0, 0x14 equipment 0x02
 *     (coprocessor present), 0x15/0x16 base memory 640 KiB,
 *     0x17/0x18 and 0x30/0x31 extended memory above 1 MiB in KiB (max
 *     65535), 0x2E/0x2F checksum of 0x10-0x2D (big-endian),
 *     0x34/0x35 RAM above 16 MiB below 4 GiB in 64 KiB units (max 0xFFFF),
 *     0x5B-0x5D RAM above 4 GiB in 64 KiB units, 0x5F CPU count - 1.
 *     OVMF reads 0x34/0x35 and 0x5B-0x5D when fw_cfg's etc/e820 is
 *     missing (OvmfPkg/Library/PlatformInitLib/MemDetect.c); SeaBIOS reads
 *     them and 0x5F. */
#include "devices/legacy/rtc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bus.h"
#include "vmm/log.h"

#define REG_SEC         0x00
#define REG_MIN         0x02
#define REG_HOUR        0x04
#define REG_WDAY        0x06
#define REG_MDAY        0x07
#define REG_MON         0x08
#define REG_YEAR        0x09
#define REG_A           0x0A
#define REG_B           0x0B
#define REG_C           0x0C
#define REG_D           0x0D
#define REG_A_UIP       0x80
#define REG_B_SET       0x80
#define REG_B_PIE       0x40
#define REG_B_AIE       0x20
#define REG_B_UIE       0x10
#define REG_B_SQWE      0x08
#define REG_B_DM_BINARY 0x04
#define REG_B_24H       0x02
#define REG_D_VRT       0x80
#define HOUR_PM         0x80
#define UIP_NS          244000L     /* MC146818A: update cycle 244 us before the update */

struct rtc {
    struct dev_env env;
    bool registered;
    pthread_mutex_t lock;
    uint8_t index;
    bool nmi_masked;
    uint8_t cmos[RTC_CMOS_SIZE];
    int64_t offset;             /* guest time - host time, seconds */
    bool frozen;                /* SET: time registers hold frozen_tm */
    struct tm frozen_tm;
    void (*now)(void *opaque, struct timespec *ts);
    void *now_opaque;
};

static void rtc_host_now(void *opaque, struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
}

static uint8_t to_bcd(unsigned v) { return (uint8_t)((v / 10) << 4 | (v % 10)); }
static unsigned from_bcd(uint8_t v) { return (v >> 4) * 10u + (v & 0xF); }

static bool rtc_binary(const struct rtc *r) { return r->cmos[REG_B] & REG_B_DM_BINARY; }

static uint8_t rtc_encode(const struct rtc *r, unsigned v)
{
    return rtc_binary(r) ? (uint8_t)v : to_bcd(v);
}

static unsigned rtc_decode(const struct rtc *r, uint8_t v)
{
    return rtc_binary(r) ? v : from_bcd(v);
}

/* The guest's current time, broken down (UTC). */
static void rtc_guest_tm(struct rtc *r, struct tm *tm, long *nsec)
{
    struct timespec ts;
    time_t t;

    if (r->frozen) {
        *tm = r->frozen_tm;
        *nsec = 0;
        return;
    }
    r->now(r->now_opaque, &ts);
    t = (time_t)((int64_t)ts.tv_sec + r->offset);
    gmtime_r(&t, tm);
    *nsec = ts.tv_nsec;
}

static uint8_t rtc_time_reg(const struct rtc *r, const struct tm *tm, uint8_t reg)
{
    switch (reg) {
    case REG_SEC: return rtc_encode(r, (unsigned)tm->tm_sec);
    case REG_MIN: return rtc_encode(r, (unsigned)tm->tm_min);
    case REG_HOUR:
        if (r->cmos[REG_B] & REG_B_24H)
            return rtc_encode(r, (unsigned)tm->tm_hour);
        return (uint8_t)(rtc_encode(r, tm->tm_hour % 12 ? (unsigned)tm->tm_hour % 12 : 12) |
                         (tm->tm_hour >= 12 ? HOUR_PM : 0));
    case REG_WDAY: return rtc_encode(r, (unsigned)tm->tm_wday + 1);
    case REG_MDAY: return rtc_encode(r, (unsigned)tm->tm_mday);
    case REG_MON: return rtc_encode(r, (unsigned)tm->tm_mon + 1);
    case REG_YEAR: return rtc_encode(r, (unsigned)(tm->tm_year + 1900) % 100);
    case RTC_CENTURY_REG: return rtc_encode(r, (unsigned)(tm->tm_year + 1900) / 100);
    }
    return 0;
}

static bool rtc_is_time_reg(uint8_t reg)
{
    return reg == REG_SEC || reg == REG_MIN || reg == REG_HOUR || reg == REG_WDAY ||
           reg == REG_MDAY || reg == REG_MON || reg == REG_YEAR || reg == RTC_CENTURY_REG;
}

/* Put the guest's new value of one time register into tm. */
static void rtc_set_field(const struct rtc *r, struct tm *tm, uint8_t reg, uint8_t v)
{
    unsigned year;

    switch (reg) {
    case REG_SEC: tm->tm_sec = (int)rtc_decode(r, v); break;
    case REG_MIN: tm->tm_min = (int)rtc_decode(r, v); break;
    case REG_HOUR:
        if (r->cmos[REG_B] & REG_B_24H) {
            tm->tm_hour = (int)rtc_decode(r, v);
        } else {
            unsigned h = rtc_decode(r, v & (uint8_t)~HOUR_PM) % 12;
            tm->tm_hour = (int)(h + ((v & HOUR_PM) ? 12 : 0));
        }
        break;
    case REG_WDAY: break;   /* derived from the date */
    case REG_MDAY: tm->tm_mday = (int)rtc_decode(r, v); break;
    case REG_MON: tm->tm_mon = (int)rtc_decode(r, v) - 1; break;
    case REG_YEAR:
        year = (unsigned)(tm->tm_year + 1900) / 100 * 100 + rtc_decode(r, v) % 100;
        tm->tm_year = (int)year - 1900;
        break;
    case RTC_CENTURY_REG:
        year = rtc_decode(r, v) * 100 + (unsigned)(tm->tm_year + 1900) % 100;
        tm->tm_year = (int)year - 1900;
        break;
    }
}

/* Make tm the guest's time from now on. */
static void rtc_set_offset(struct rtc *r, struct tm *tm)
{
    struct timespec ts;
    struct tm copy = *tm;
    time_t t = timegm(&copy);   /* normalizes out-of-range fields */

    if (t == (time_t)-1) {
        log_guest_once("rtc", "time set to an impossible date: ignored");
        return;
    }
    r->now(r->now_opaque, &ts);
    r->offset = (int64_t)t - (int64_t)ts.tv_sec;
}

static uint8_t rtc_read_reg(struct rtc *r, uint8_t reg)
{
    struct tm tm;
    long nsec;

    if (rtc_is_time_reg(reg)) {
        rtc_guest_tm(r, &tm, &nsec);
        return rtc_time_reg(r, &tm, reg);
    }
    switch (reg) {
    case REG_A:
        rtc_guest_tm(r, &tm, &nsec);
        return (uint8_t)((r->cmos[REG_A] & ~REG_A_UIP) |
                         (!r->frozen && nsec >= 1000000000L - UIP_NS ? REG_A_UIP : 0));
    case REG_C:
        return 0;
    case REG_D:
        return REG_D_VRT;
    }
    return r->cmos[reg];
}

static void rtc_write_reg(struct rtc *r, uint8_t reg, uint8_t v)
{
    struct tm tm;
    long nsec;

    if (rtc_is_time_reg(reg)) {
        if (r->frozen) {
            rtc_set_field(r, &r->frozen_tm, reg, v);
            return;
        }
        rtc_guest_tm(r, &tm, &nsec);
        rtc_set_field(r, &tm, reg, v);
        rtc_set_offset(r, &tm);
        return;
    }
    switch (reg) {
    case REG_A:
        r->cmos[REG_A] = v & (uint8_t)~REG_A_UIP;
        return;
    case REG_B:
        if ((v & REG_B_SET) && !r->frozen) {
            rtc_guest_tm(r, &r->frozen_tm, &nsec);
            r->frozen = true;
        } else if (!(v & REG_B_SET) && r->frozen) {
            r->frozen = false;
            rtc_set_offset(r, &r->frozen_tm);
        }
        if (v & (REG_B_PIE | REG_B_AIE | REG_B_UIE))
            log_guest_once("rtc", "RTC interrupts enabled (register B 0x%02x): not "
                           "supported, none will be raised on IRQ %d", v, RTC_GSI);
        r->cmos[REG_B] = v;
        return;
    case REG_C:
    case REG_D:
        return;     /* read-only */
    }
    r->cmos[reg] = v;
}

static int rtc_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct rtc *r = opaque;
    uint8_t *d = data;

    memset(data, 0xFF, len);
    if (offset != 1)
        return 0;           /* 0x70 is write-only */
    pthread_mutex_lock(&r->lock);
    d[0] = rtc_read_reg(r, r->index);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static int rtc_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct rtc *r = opaque;
    uint8_t v = *(const uint8_t *)data;

    pthread_mutex_lock(&r->lock);
    if (offset == 0) {
        r->index = v & 0x7F;
        r->nmi_masked = v & 0x80;
        /* A 2-byte write to 0x70 also writes the data port. */
        if (len >= 2)
            rtc_write_reg(r, r->index, ((const uint8_t *)data)[1]);
    } else {
        rtc_write_reg(r, r->index, v);
    }
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static const struct bus_ops rtc_ops = { .read = rtc_read, .write = rtc_write };

static void cmos_put16(uint8_t *c, unsigned at, unsigned v)
{
    c[at] = (uint8_t)v;
    c[at + 1] = (uint8_t)(v >> 8);
}

/* Power-on registers, or those of the RTC this one replaces; then the
 * bytes firmware reads for the machine (rewritten on every start, as a
 * BIOS's POST does). */
static void rtc_fill_cmos(struct rtc *r, const struct rtc_config *cfg)
{
    uint8_t *c = r->cmos;
    uint64_t ext_kib, above16, above4g;
    unsigned sum = 0;

    if (cfg->restore && cfg->restore->valid) {
        memcpy(c, cfg->restore->cmos, RTC_CMOS_SIZE);
        /* MC146818A RESET: PIE, AIE, UIE, SQWE cleared; SET is not
         * touched by it, but rtc_save committed any time being set. */
        c[REG_B] &= (uint8_t)~(REG_B_PIE | REG_B_AIE | REG_B_UIE | REG_B_SQWE | REG_B_SET);
        c[REG_A] &= (uint8_t)~REG_A_UIP;
        r->offset = cfg->restore->offset;
    } else {
        c[REG_A] = 0x26;        /* 32.768 kHz time base, 1024 Hz rate */
        c[REG_B] = REG_B_24H;
    }
    c[0x14] = 0x02;
    cmos_put16(c, 0x15, 640);
    ext_kib = cfg->ram_below_4g > (1u << 20) ? (cfg->ram_below_4g - (1u << 20)) >> 10 : 0;
    if (ext_kib > 0xFFFF)
        ext_kib = 0xFFFF;
    cmos_put16(c, 0x17, (unsigned)ext_kib);
    cmos_put16(c, 0x30, (unsigned)ext_kib);
    above16 = cfg->ram_below_4g > (16u << 20) ? (cfg->ram_below_4g - (16u << 20)) >> 16 : 0;
    if (above16 > 0xFFFF)
        above16 = 0xFFFF;
    cmos_put16(c, 0x34, (unsigned)above16);
    above4g = cfg->ram_above_4g >> 16;
    if (above4g > 0xFFFFFF)
        above4g = 0xFFFFFF;
    c[0x5B] = (uint8_t)above4g;
    c[0x5C] = (uint8_t)(above4g >> 8);
    c[0x5D] = (uint8_t)(above4g >> 16);
    c[0x5F] = (uint8_t)(cfg->nr_cpus ? cfg->nr_cpus - 1 : 0);
    for (unsigned i = 0x10; i <= 0x2D; i++)
        sum += c[i];
    c[0x2E] = (uint8_t)(sum >> 8);
    c[0x2F] = (uint8_t)sum;
}

int rtc_create(const struct dev_env *env, const struct rtc_config *cfg, struct rtc **out)
{
    struct rtc *r = calloc(1, sizeof(*r));
    int err;

    if (!r)
        return -ENOMEM;
    r->env = *env;
    r->now = rtc_host_now;
    pthread_mutex_init(&r->lock, NULL);
    rtc_fill_cmos(r, cfg);
    err = bus_register(env->pio, RTC_PORT, 2, "rtc", &rtc_ops, r);
    if (err) {
        rtc_destroy(r);
        return err;
    }
    r->registered = true;
    *out = r;
    return 0;
}

void rtc_destroy(struct rtc *r)
{
    if (!r)
        return;
    if (r->registered)
        bus_unregister(r->env.pio, RTC_PORT);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void rtc_save(struct rtc *r, struct rtc_state *out)
{
    pthread_mutex_lock(&r->lock);
    if (r->frozen) {
        r->frozen = false;
        rtc_set_offset(r, &r->frozen_tm);
        r->cmos[REG_B] &= (uint8_t)~REG_B_SET;
    }
    out->valid = true;
    out->offset = r->offset;
    memcpy(out->cmos, r->cmos, RTC_CMOS_SIZE);
    pthread_mutex_unlock(&r->lock);
}

bool rtc_nmi_masked(struct rtc *r)
{
    pthread_mutex_lock(&r->lock);
    bool m = r->nmi_masked;
    pthread_mutex_unlock(&r->lock);
    return m;
}

void rtc_set_clock(struct rtc *r, void (*now)(void *opaque, struct timespec *ts), void *opaque)
{
    pthread_mutex_lock(&r->lock);
    r->now = now ? now : rtc_host_now;
    r->now_opaque = opaque;
    pthread_mutex_unlock(&r->lock);
}
