/* What the q35 platform carries across its re-creation on a guest reset
 * (q35_config.persist): the RTC's guest-set time and CMOS RAM, and the
 * SMBIOS system UUID; and where the SMBIOS tables go for each boot. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "boot/smbios.h"
#include "devices/chipset/q35.h"
#include "fake_env.h"
#include "vmm/gm.h"

static uint8_t cmos_rd(struct fake_env *f, uint8_t idx)
{
    outb_(f, 0x70, idx);
    return inb_(f, 0x71);
}

static void cmos_wr(struct fake_env *f, uint8_t idx, uint8_t v)
{
    outb_(f, 0x70, idx);
    outb_(f, 0x71, v);
}

/* The direct boot's type 1 UUID field (16 bytes as stored) from RAM. */
static void ram_uuid(const struct gm *g, uint8_t out[16])
{
    const uint8_t *ep = gm_ptr(g, SMBIOS_GPA, SMBIOS_EP_LEN);
    cr_assert_not_null(ep);
    cr_assert_eq(memcmp(ep, "_SM3_", 5), 0, "entry point at 0xF0000");
    uint64_t addr = 0;
    uint32_t len = 0;
    for (int i = 7; i >= 0; i--)
        addr = addr << 8 | ep[0x10 + i];
    for (int i = 3; i >= 0; i--)
        len = len << 8 | ep[0x0C + i];
    const uint8_t *t = gm_ptr(g, addr, len);
    cr_assert_not_null(t);
    /* type 0 first (direct boot), then type 1 */
    size_t off = 0;
    while (off + 4 <= len && t[off] != 1) {
        off += t[off + 1];
        while (off + 1 < len && (t[off] || t[off + 1]))
            off++;
        off += 2;
    }
    cr_assert_lt(off + 0x18, len, "type 1 found");
    cr_assert_eq(t[off + 1], 0x1B);
    memcpy(out, t + off + 8, 16);
}

Test(q35_persist, rtc_and_uuid_survive_recreation)
{
    struct fake_env f;
    struct gm g;
    struct q35 *q;
    struct q35_persist keep = { 0 };
    uint8_t u1[16], u2[16];

    fake_env_init(&f);
    struct gm_config gc = { .size = 16u << 20, .lock = false };
    cr_assert_eq(gm_init(&g, &gc), 0);
    f.env.gm = &g;
    struct q35_config c = { .nr_cpus = 2, .persist = &keep };
    cr_assert_eq(q35_create(&f.env, &c, &q), 0);
    ram_uuid(&g, u1);
    cr_assert(keep.have_uuid);
    /* the guest sets the year to 2041 and writes a CMOS byte */
    cmos_wr(&f, 0x0B, 0x82);
    cmos_wr(&f, 0x09, 0x41);
    cmos_wr(&f, 0x0B, 0x02);
    cmos_wr(&f, 0x50, 0xC3);
    q35_destroy(q);
    cr_assert(keep.rtc.valid, "q35_destroy saved the RTC");

    memset(gm_ptr(&g, SMBIOS_GPA, SMBIOS_EP_LEN), 0, SMBIOS_EP_LEN);
    cr_assert_eq(q35_create(&f.env, &c, &q), 0);
    ram_uuid(&g, u2);
    cr_assert_eq(memcmp(u1, u2, 16), 0, "same UUID after the reset");
    cr_assert_eq(cmos_rd(&f, 0x09), 0x41, "the guest's year");
    cr_assert_eq(cmos_rd(&f, 0x50), 0xC3, "the guest's CMOS byte");
    q35_destroy(q);

    /* without persist: power-on RTC, a new random UUID */
    struct q35_config c0 = { .nr_cpus = 2 };
    cr_assert_eq(q35_create(&f.env, &c0, &q), 0);
    ram_uuid(&g, u2);
    cr_assert_neq(memcmp(u1, u2, 16), 0, "random UUID");
    cr_assert_neq(cmos_rd(&f, 0x09), 0x41, "host year");
    cr_assert_eq(cmos_rd(&f, 0x50), 0);
    q35_destroy(q);
    gm_fini(&g);
    fake_env_fini(&f);
}

/* --smp: type 4 per socket; a shape that is not the CPU count is refused. */
Test(q35_persist, smbios_topology_checked)
{
    struct fake_env f;
    struct gm g;
    struct q35 *q;

    fake_env_init(&f);
    struct gm_config gc = { .size = 16u << 20, .lock = false };
    cr_assert_eq(gm_init(&g, &gc), 0);
    f.env.gm = &g;
    struct q35_config bad = { .nr_cpus = 4, .sockets = 2, .cores = 1, .threads = 1 };
    cr_assert_eq(q35_create(&f.env, &bad, &q), -EINVAL);
    cr_assert_eq(f.pio.nr, 0, "undone");
    cr_assert_eq(f.mmio.nr, 0);
    struct q35_config ok = { .nr_cpus = 4, .sockets = 2, .cores = 2, .threads = 1 };
    cr_assert_eq(q35_create(&f.env, &ok, &q), 0);
    /* two type 4 structures in RAM */
    const uint8_t *ep = gm_ptr(&g, SMBIOS_GPA, SMBIOS_EP_LEN);
    uint32_t len = ep[0x0C] | ep[0x0D] << 8;
    const uint8_t *t = gm_ptr(&g, SMBIOS_GPA + SMBIOS_TABLES_OFF, len);
    unsigned type4 = 0;
    for (size_t off = 0; off + 4 <= len;) {
        if (t[off] == 4) {
            type4++;
            cr_assert_eq(t[off + 0x23], 2, "2 cores per socket");
        }
        if (t[off] == 127)
            break;
        off += t[off + 1];
        while (t[off] || t[off + 1])
            off++;
        off += 2;
    }
    cr_assert_eq(type4, 2);
    q35_destroy(q);
    gm_fini(&g);
    fake_env_fini(&f);
}

/* Firmware boot: the SMBIOS files are in fw_cfg, nothing is written to
 * RAM, and the UUID follows the VARS file (the same VM on every run). */
Test(q35_persist, firmware_boot_smbios_through_fw_cfg)
{
    struct fake_env f;
    struct gm g;
    struct q35 *q;
    char d[] = "/tmp/minivmm-q35p-XXXXXX", cp[PATH_MAX], vp[PATH_MAX];

    fake_env_init(&f);
    struct gm_config gc = { .size = 16u << 20, .lock = false };
    cr_assert_eq(gm_init(&g, &gc), 0);
    f.env.gm = &g;
    cr_assert_not_null(mkdtemp(d));
    snprintf(cp, sizeof(cp), "%s/CODE.fd", d);
    snprintf(vp, sizeof(vp), "%s/vm.vars", d);
    FILE *fp = fopen(cp, "wb");
    for (int i = 0; i < 8192; i++)
        fputc(0x5A, fp);
    fclose(fp);
    fp = fopen(vp, "wb");
    for (int i = 0; i < 8192; i++)
        fputc(0xFF, fp);
    fclose(fp);

    struct q35_config c = { .nr_cpus = 1, .firmware = true,
                            .pflash = { .code_path = cp, .vars_path = vp } };
    uint8_t t1[512], t2[512];
    for (int run = 0; run < 2; run++) {
        cr_assert_eq(q35_create(&f.env, &c, &q), 0);
        cr_assert_geq(fw_cfg_file_key(q->fw_cfg, SMBIOS_FILE_ANCHOR), 0x20);
        int key = fw_cfg_file_key(q->fw_cfg, SMBIOS_FILE_TABLES);
        cr_assert_geq(key, 0x20);
        pio_out(&f, 0x510, (uint32_t)key, 2);
        uint8_t *t = run ? t2 : t1;
        for (int i = 0; i < 512; i++)
            t[i] = inb_(&f, 0x511);
        cr_assert_eq(t[0], 1, "type 1 first: no type 0 for OVMF");
        const uint8_t *ep = gm_ptr(&g, SMBIOS_GPA, 8);
        cr_assert_neq(memcmp(ep, "_SM3_", 5), 0, "nothing in RAM for a firmware boot");
        q35_destroy(q);
    }
    cr_assert_eq(memcmp(t1 + 8, t2 + 8, 16), 0, "UUID from the VARS path: stable per VM");
    unlink(cp);
    unlink(vp);
    rmdir(d);
    gm_fini(&g);
    fake_env_fini(&f);
}
