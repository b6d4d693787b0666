/* ACPI fixed hardware registers (ACPI 6.4 §4.8.3), laid out as Intel ICH9
 * puts them at PMBASE, as boot/acpi.c's FADT describes them.
 *
 *   off   size  register
 *   0x00  2     PM1_STS  (§4.8.3.1.1) write 1 to clear:
 *                 0 TMR_STS, 4 BM_STS, 5 GBL_STS, 8 PWRBTN_STS,
 *                 9 SLPBTN_STS, 10 RTC_STS, 14 PCIEXP_WAKE_STS, 15 WAK_STS
 *   0x02  2     PM1_EN   (§4.8.3.1.2): 0 TMR_EN, 5 GBL_EN, 8 PWRBTN_EN,
 *                 9 SLPBTN_EN, 10 RTC_EN, 14 PCIEXP_WAKE_DIS
 *   0x04  2     PM1_CNT  (§4.8.3.2.1): 0 SCI_EN, 1 BM_RLD, 2 GBL_RLS
 *                 (write-only), 10-12 SLP_TYP, 13 SLP_EN (write-only)
 *   0x06  2     reserved (reads 0)
 *   0x08  4     PM_TMR   (§4.8.3.3): bits 0-23 count at 3.579545 MHz,
 *                 read-only, bits 24-31 read 0 (FADT: TMR_VAL_EXT = 0)
 *   0x0C  20    reserved (reads 0)
 *   0x20  8     GPE0_STS (§4.8.4.1) write 1 to clear, 64 GPEs
 *   0x28  8     GPE0_EN
 *
 * Accesses of any width 1-4 are taken byte lane by byte lane (PM1 event and
 * control registers are defined as byte-addressable halves); PM_TMR is
 * sampled once per access so a 32-bit read is consistent.
 *
 * Sleep: a write with SLP_EN set enters the state in SLP_TYP. SLP_TYP ==
 * ACPI_PM_S5_TYP (the value \_S5 names in the DSDT) powers the VM off
 * (VM_STOP_POWEROFF); other sleep states are not supported: logged once and
 * ignored, so the guest simply keeps running.
 *
 * SCI: SCI_EN starts set (the FADT has no SMI_CMD: the hardware is always in
 * ACPI mode) and the SCI line (level, active high, per the MADT override) is
 * high while SCI_EN is set and any status bit has its enable bit set. The
 * timer's overflow event (TMR_STS) is not generated; TMR_EN is only stored. */
#include "devices/chipset/acpi_pm.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "vmm/bus.h"
#include "vmm/log.h"

#define PM_REGS_LEN     0x30
#define PM1_STS_OFF     0x00
#define PM1_EN_OFF      0x02
#define PM1_CNT_OFF     0x04
#define PM_TMR_OFF      0x08
#define GPE0_STS_OFF    0x20
#define GPE0_EN_OFF     0x28
#define GPE0_HALF_LEN   8

#define PM1_TMR         (1u << 0)
#define PM1_PWRBTN      (1u << 8)
#define PM1_STS_MASK    0xC731u   /* TMR BM GBL PWRBTN SLPBTN RTC PCIEXP_WAKE WAK */
#define PM1_EN_MASK     0x4721u   /* TMR GBL PWRBTN SLPBTN RTC PCIEXP_WAKE_DIS */
#define PM1_EVENT_MASK  0x0721u   /* status/enable pairs that raise the SCI */

#define PM1_CNT_SCI_EN  (1u << 0)
#define PM1_CNT_BM_RLD  (1u << 1)
#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_TYP (7u << PM1_CNT_SLP_TYP_SHIFT)
#define PM1_CNT_SLP_EN  (1u << 13)
#define PM1_CNT_STORED  (PM1_CNT_SCI_EN | PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP)

#define PM_TMR_HZ       3579545ULL
#define PM_TMR_MASK     0xFFFFFFu

struct acpi_pm {
    struct dev_env env;
    uint16_t base;
    unsigned sci_gsi;
    bool registered;
    pthread_mutex_t lock;
    uint16_t pm1_sts, pm1_en, pm1_cnt;
    uint64_t gpe_sts, gpe_en;
    struct timespec t0;
    bool sci_level;
};

/* Ticks of the 3.579545 MHz timer since the device was created. */
static uint32_t acpi_pm_timer(const struct acpi_pm *pm)
{
    struct timespec now;
    uint64_t sec;
    int64_t nsec;

    clock_gettime(CLOCK_MONOTONIC, &now);
    sec = (uint64_t)(now.tv_sec - pm->t0.tv_sec);
    nsec = now.tv_nsec - pm->t0.tv_nsec;
    if (nsec < 0) {
        sec--;
        nsec += 1000000000;
    }
    /* sec * HZ and nsec * HZ stay far inside 64 bits. */
    return (uint32_t)((sec * PM_TMR_HZ + (uint64_t)nsec * PM_TMR_HZ / 1000000000ULL) & PM_TMR_MASK);
}

static void acpi_pm_update_sci(struct acpi_pm *pm)
{
    bool level = (pm->pm1_cnt & PM1_CNT_SCI_EN) &&
                 ((pm->pm1_sts & pm->pm1_en & PM1_EVENT_MASK) || (pm->gpe_sts & pm->gpe_en));

    if (level != pm->sci_level) {
        pm->sci_level = level;
        dev_irq_set(&pm->env, pm->sci_gsi, level);
    }
}

static uint8_t acpi_pm_read_byte(const struct acpi_pm *pm, unsigned off, uint32_t tmr)
{
    switch (off) {
    case PM1_STS_OFF: case PM1_STS_OFF + 1:
        return (uint8_t)(pm->pm1_sts >> (8 * (off - PM1_STS_OFF)));
    case PM1_EN_OFF: case PM1_EN_OFF + 1:
        return (uint8_t)(pm->pm1_en >> (8 * (off - PM1_EN_OFF)));
    case PM1_CNT_OFF: case PM1_CNT_OFF + 1:
        return (uint8_t)(pm->pm1_cnt >> (8 * (off - PM1_CNT_OFF)));
    case PM_TMR_OFF: case PM_TMR_OFF + 1: case PM_TMR_OFF + 2: case PM_TMR_OFF + 3:
        return (uint8_t)(tmr >> (8 * (off - PM_TMR_OFF)));
    }
    if (off >= GPE0_STS_OFF && off < GPE0_STS_OFF + GPE0_HALF_LEN)
        return (uint8_t)(pm->gpe_sts >> (8 * (off - GPE0_STS_OFF)));
    if (off >= GPE0_EN_OFF && off < GPE0_EN_OFF + GPE0_HALF_LEN)
        return (uint8_t)(pm->gpe_en >> (8 * (off - GPE0_EN_OFF)));
    return 0;
}

static int acpi_pm_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct acpi_pm *pm = opaque;
    uint8_t *d = data;
    uint32_t tmr = 0;

    if (offset < PM_TMR_OFF + 4 && offset + len > PM_TMR_OFF)
        tmr = acpi_pm_timer(pm);
    pthread_mutex_lock(&pm->lock);
    for (unsigned i = 0; i < len; i++)
        d[i] = offset + i < PM_REGS_LEN ? acpi_pm_read_byte(pm, (unsigned)(offset + i), tmr) : 0xFF;
    pthread_mutex_unlock(&pm->lock);
    return 0;
}

/* Returns true when the byte set SLP_EN. */
static bool acpi_pm_write_byte(struct acpi_pm *pm, unsigned off, uint8_t v)
{
    switch (off) {
    case PM1_STS_OFF: case PM1_STS_OFF + 1: {
        unsigned sh = 8 * (off - PM1_STS_OFF);
        pm->pm1_sts &= (uint16_t)~(((unsigned)v << sh) & PM1_STS_MASK);
        return false;
    }
    case PM1_EN_OFF: case PM1_EN_OFF + 1: {
        unsigned sh = 8 * (off - PM1_EN_OFF);
        pm->pm1_en = (uint16_t)((pm->pm1_en & ~(0xFFu << sh)) | (((unsigned)v << sh) & PM1_EN_MASK));
        return false;
    }
    case PM1_CNT_OFF: case PM1_CNT_OFF + 1: {
        unsigned sh = 8 * (off - PM1_CNT_OFF);
        unsigned full = (unsigned)v << sh;
        pm->pm1_cnt = (uint16_t)((pm->pm1_cnt & ~(0xFFu << sh)) | (full & PM1_CNT_STORED));
        return full & PM1_CNT_SLP_EN;
    }
    }
    if (off >= GPE0_STS_OFF && off < GPE0_STS_OFF + GPE0_HALF_LEN) {
        pm->gpe_sts &= ~((uint64_t)v << (8 * (off - GPE0_STS_OFF)));
    } else if (off >= GPE0_EN_OFF && off < GPE0_EN_OFF + GPE0_HALF_LEN) {
        unsigned sh = 8 * (off - GPE0_EN_OFF);
        pm->gpe_en = (pm->gpe_en & ~(0xFFULL << sh)) | ((uint64_t)v << sh);
    }
    /* PM_TMR and the reserved bytes are read-only. */
    return false;
}

static int acpi_pm_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct acpi_pm *pm = opaque;
    const uint8_t *d = data;
    bool sleep = false;
    unsigned slp_typ;

    pthread_mutex_lock(&pm->lock);
    for (unsigned i = 0; i < len && offset + i < PM_REGS_LEN; i++)
        sleep |= acpi_pm_write_byte(pm, (unsigned)(offset + i), d[i]);
    slp_typ = (pm->pm1_cnt & PM1_CNT_SLP_TYP) >> PM1_CNT_SLP_TYP_SHIFT;
    acpi_pm_update_sci(pm);
    pthread_mutex_unlock(&pm->lock);

    if (!sleep)
        return 0;
    if (slp_typ == ACPI_PM_S5_TYP) {
        log_debug("acpi_pm", "guest entered S5: powering off");
        dev_request_stop(&pm->env, VM_STOP_POWEROFF, 0);
    } else {
        log_guest_once("acpi_pm", "sleep with SLP_TYP %u requested: only S5 (SLP_TYP %u) "
                       "is supported; ignored", slp_typ, ACPI_PM_S5_TYP);
    }
    return 0;
}

static const struct bus_ops acpi_pm_ops = { .read = acpi_pm_read, .write = acpi_pm_write };

int acpi_pm_create(const struct dev_env *env, uint16_t base, unsigned sci_gsi, struct acpi_pm **out)
{
    struct acpi_pm *pm = calloc(1, sizeof(*pm));
    int err;

    if (!pm)
        return -ENOMEM;
    pm->env = *env;
    pm->base = base;
    pm->sci_gsi = sci_gsi;
    pm->pm1_cnt = PM1_CNT_SCI_EN;
    clock_gettime(CLOCK_MONOTONIC, &pm->t0);
    pthread_mutex_init(&pm->lock, NULL);
    err = bus_register(env->pio, base, PM_REGS_LEN, "acpi-pm", &acpi_pm_ops, pm);
    if (err) {
        acpi_pm_destroy(pm);
        return err;
    }
    pm->registered = true;
    *out = pm;
    return 0;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
    if (!pm)
        return;
    if (pm->registered)
        bus_unregister(pm->env.pio, pm->base);
    if (pm->sci_level)
        dev_irq_set(&pm->env, pm->sci_gsi, 0);
    pthread_mutex_destroy(&pm->lock);
    free(pm);
}

void acpi_pm_power_button(struct acpi_pm *pm)
{
    pthread_mutex_lock(&pm->lock);
    pm->pm1_sts |= PM1_PWRBTN;
    acpi_pm_update_sci(pm);
    pthread_mutex_unlock(&pm->lock);
}

int acpi_pm_gpe_raise(struct acpi_pm *pm, unsigned gpe)
{
    if (gpe >= 8 * GPE0_HALF_LEN)
        return -EINVAL;
    pthread_mutex_lock(&pm->lock);
    pm->gpe_sts |= 1ULL << gpe;
    acpi_pm_update_sci(pm);
    pthread_mutex_unlock(&pm->lock);
    return 0;
}
