/* q35 host bridge (devices/chipset/q35_mch.h) and ICH9 LPC (devices/chipset/lpc_ich9.h)
 * registers, reached the way OVMF reaches them: through 0xCF8/0xCFC and
 * ECAM. */
#include <criterion/criterion.h>
#include <errno.h>

#include "devices/chipset/lpc_ich9.h"
#include "devices/chipset/q35_mch.h"
#include "fake_env.h"

static struct fake_env fe;
static struct pci_bus pb;
static struct q35_mch mch;
static struct lpc_ich9 *lpc;

static void q35_setup_with(bool preset)
{
    fake_env_init(&fe);
    cr_assert_eq(pci_bus_init(&pb, &fe.pio, &fe.mmio), 0);
    cr_assert_eq(pci_bus_attach_pio(&pb), 0);
    struct q35_mch_config mc = { .lowmem = 0x80000000ULL, .ecam_preset = preset };
    cr_assert_eq(q35_mch_init(&mch, &pb, &mc), 0);
    struct lpc_ich9_config lc = { .sci_gsi = ACPI_PM_SCI_GSI, .pm_preset = preset };
    cr_assert_eq(lpc_ich9_create(&fe.env, &pb, &lc, &lpc), 0);
}
static void q35_setup(void) { q35_setup_with(false); }

static void q35_teardown(void)
{
    lpc_ich9_destroy(lpc);
    q35_mch_fini(&mch);
    pci_bus_fini(&pb);
    fake_env_fini(&fe);
}

TestSuite(q35, .init = q35_setup, .fini = q35_teardown);

static uint32_t rd(unsigned dev, unsigned reg, unsigned len)
{
    pio_out(&fe, 0xCF8, 0x80000000u | dev << 11 | (reg & 0xFC), 4);
    return pio_in(&fe, (uint16_t)(0xCFC + (reg & 3)), len);
}

static void wr(unsigned dev, unsigned reg, unsigned len, uint32_t v)
{
    pio_out(&fe, 0xCF8, 0x80000000u | dev << 11 | (reg & 0xFC), 4);
    pio_out(&fe, (uint16_t)(0xCFC + (reg & 3)), v, len);
}

Test(q35, host_bridge_identity)
{
    cr_assert_eq(rd(0, 0, 4), 0x29C08086u, "OVMF picks its Q35 code on this DID");
    cr_assert_eq(rd(0, 0x0A, 2), 0x0600);
    cr_assert_eq(rd(0, 0x2C, 4), 0x11001AF4u);
    cr_assert_eq(rd(0x1F, 0, 4), 0x29188086u);
    cr_assert_eq(rd(0x1F, 0x0A, 2), 0x0601);
    cr_assert_eq(rd(0x1F, PCI_HEADER_TYPE, 1), 0x80);
}

Test(q35, pciexbar_enable_as_ovmf_does)
{
    uint64_t base, size;
    cr_assert_not(q35_mch_ecam(&mch, &base, &size));
    cr_assert_null(bus_find(&fe.mmio, 0xB0000000ULL, 4));
    /* OvmfPkg PciExBarInitialization: low = 0, high, then low | enable */
    wr(0, MCH_PCIEXBAR, 4, 0);
    wr(0, MCH_PCIEXBAR + 4, 4, 0);
    wr(0, MCH_PCIEXBAR, 4, 0xB0000000u | MCH_PCIEXBAR_EN);
    cr_assert(q35_mch_ecam(&mch, &base, &size));
    cr_assert_eq(base, 0xB0000000ULL);
    cr_assert_eq(size, 256ULL << 20);
    /* the host bridge through ECAM */
    uint8_t b[4];
    cr_assert_eq(bus_read(&fe.mmio, 0xB0000000ULL, b, 4), 0);
    cr_assert_eq(b[2] | b[3] << 8, 0x29C0);
    /* LPC at 1f.0 through ECAM */
    cr_assert_eq(bus_read(&fe.mmio, 0xB0000000ULL + (0x1Fu << 15) + 2, b, 2), 0);
    cr_assert_eq(b[0] | b[1] << 8, 0x2918);
}

Test(q35, pciexbar_move_length_and_disable)
{
    uint64_t base, size;
    wr(0, MCH_PCIEXBAR, 4, 0xB0000000u | MCH_PCIEXBAR_EN);
    /* move to 0xE0000000 (newer OVMF's address) */
    wr(0, MCH_PCIEXBAR, 4, 0xE0000000u | MCH_PCIEXBAR_EN);
    cr_assert_null(bus_find(&fe.mmio, 0xB0000000ULL, 4));
    cr_assert_not_null(bus_find(&fe.mmio, 0xE0000000ULL, 4));
    /* 64 MiB length: base bits 27:26 count, window shrinks */
    wr(0, MCH_PCIEXBAR, 4, 0xE4000000u | MCH_PCIEXBAR_LEN_64M | MCH_PCIEXBAR_EN);
    cr_assert(q35_mch_ecam(&mch, &base, &size));
    cr_assert_eq(base, 0xE4000000ULL);
    cr_assert_eq(size, 64ULL << 20);
    cr_assert_not_null(bus_find(&fe.mmio, 0xE4000000ULL + (63ULL << 20), 4));
    cr_assert_null(bus_find(&fe.mmio, 0xE4000000ULL + (64ULL << 20), 4));
    /* reserved length decodes nothing */
    wr(0, MCH_PCIEXBAR, 4, 0xE0000000u | 0x6 | MCH_PCIEXBAR_EN);
    cr_assert_not(q35_mch_ecam(&mch, &base, &size));
    cr_assert_null(bus_find(&fe.mmio, 0xE0000000ULL, 4));
    /* high half: base bits 35:32, reserved bits read 0 */
    wr(0, MCH_PCIEXBAR + 4, 4, 0xFFFFFFFF);
    cr_assert_eq(rd(0, MCH_PCIEXBAR + 4, 4), 0xF);
    wr(0, MCH_PCIEXBAR, 4, 0x10000000u | MCH_PCIEXBAR_EN);
    cr_assert(q35_mch_ecam(&mch, &base, &size));
    cr_assert_eq(base, 0xF10000000ULL);
    /* low bits other than enable and length are read-only 0 */
    cr_assert_eq(rd(0, MCH_PCIEXBAR, 4), 0x10000001u);
    wr(0, MCH_PCIEXBAR, 4, 0);
    cr_assert_not(q35_mch_ecam(&mch, &base, &size));
    cr_assert_null(bus_find(&fe.mmio, 0xF10000000ULL, 4));
}

Test(q35, ext_tseg_query_says_absent)
{
    cr_assert_eq(rd(0, MCH_EXT_TSEG_MB, 2), 0);
    wr(0, MCH_EXT_TSEG_MB, 2, MCH_EXT_TSEG_MB_QUERY);
    cr_assert_eq(rd(0, MCH_EXT_TSEG_MB, 2), 0xFFFF, "no SMM: feature absent");
    wr(0, MCH_EXT_TSEG_MB, 2, 0x1234);
    cr_assert_eq(rd(0, MCH_EXT_TSEG_MB, 2), 0xFFFF, "other values are not stored");
}

Test(q35, ext_tseg_query_with_a_size)
{
    struct fake_env f2;
    struct pci_bus b2;
    struct q35_mch m2;
    fake_env_init(&f2);
    cr_assert_eq(pci_bus_init(&b2, &f2.pio, &f2.mmio), 0);
    struct q35_mch_config mc = { .lowmem = 0xB0000000ULL, .ext_tseg_mbytes = 16 };
    cr_assert_eq(q35_mch_init(&m2, &b2, &mc), 0);
    cr_assert_eq(pci_config_write(&b2, 0, 0, MCH_EXT_TSEG_MB, 4, 0x0000FFFF), 0);
    uint32_t v;
    cr_assert_eq(pci_config_read(&b2, 0, 0, MCH_EXT_TSEG_MB, 2, &v), 0);
    cr_assert_eq(v, 16);
    cr_assert_eq(pci_config_read(&b2, 0, 0, MCH_TOLUD, 2, &v), 0);
    cr_assert_eq(v, 0xB00 << 4, "TOLUD bits 15:4 = address bits 31:20");
    q35_mch_fini(&m2);
    pci_bus_fini(&b2);
    fake_env_fini(&f2);
}

Test(q35, pam_smram_tolud)
{
    for (unsigned i = 0; i < MCH_NR_PAM; i++)
        wr(0, MCH_PAM0 + i, 1, 0xFF);
    cr_assert_eq(rd(0, MCH_PAM0, 1), 0x30);
    cr_assert_eq(rd(0, MCH_PAM0 + 1, 1), 0x33);
    cr_assert_eq(rd(0, MCH_PAM0 + 6, 1), 0x33);
    cr_assert_eq(rd(0, MCH_SMRAM, 1), 0x02);
    wr(0, MCH_SMRAM, 1, 0xFF);
    cr_assert_eq(rd(0, MCH_SMRAM, 1), 0x7A, "C_BASE_SEG read-only");
    cr_assert_eq(rd(0, MCH_ESMRAMC, 1), 0x38);
    wr(0, MCH_ESMRAMC, 1, 0x87);
    cr_assert_eq(rd(0, MCH_ESMRAMC, 1), 0xBF);
    cr_assert_eq(rd(0, MCH_TOLUD, 2), 0x800 << 4);
    wr(0, MCH_TOLUD, 2, 0);
    cr_assert_eq(rd(0, MCH_TOLUD, 2), 0x800 << 4, "read-only");
    cr_assert_eq(rd(0, MCH_TSEGMB, 4), 0x80000000u);
    cr_assert_eq(rd(0, MCH_DEFAULT_SMBASE_CTL, 1), 0);
}

Test(q35, pmbase_enables_acpi_io_as_ovmf_does)
{
    uint16_t base;
    cr_assert_not(lpc_ich9_pm_base(lpc, &base));
    cr_assert_null(bus_find(&fe.pio, 0x608, 4), "nothing decodes before ACPI_EN");
    cr_assert_eq(rd(0x1F, ICH9_PMBASE, 4), 0x1, "I/O space indicator");
    /* OvmfPkg PlatformMiscInitialization: PMBASE, then command IOSE, then
     * ACPI_CNTL.ACPI_EN */
    wr(0x1F, ICH9_PMBASE, 4, 0x600);
    wr(0x1F, PCI_COMMAND, 1, PCI_COMMAND_IO);
    cr_assert_null(bus_find(&fe.pio, 0x608, 4));
    wr(0x1F, ICH9_ACPI_CNTL, 1, ICH9_ACPI_CNTL_ACPI_EN);
    cr_assert(lpc_ich9_pm_base(lpc, &base));
    cr_assert_eq(base, 0x600);
    /* the PM timer counts */
    uint32_t t0 = pio_in(&fe, 0x608, 4);
    struct timespec ts = { 0, 2000000 };
    nanosleep(&ts, NULL);
    uint32_t t1 = pio_in(&fe, 0x608, 4);
    cr_assert_neq(t0, t1);
    cr_assert_eq(t1 >> 24, 0, "24-bit timer");
    /* PM1_CNT S5 powers off */
    pio_out(&fe, 0x604, (ACPI_PM_S5_TYP << 10) | (1u << 13), 2);
    cr_assert_eq(fe.stops, 1);
    cr_assert_eq(fe.stop_reason, VM_STOP_POWEROFF);
    /* SMI_EN at +0x30 stores, the rest reads 0 */
    pio_out(&fe, 0x630, 0x21, 4);
    cr_assert_eq(pio_in(&fe, 0x630, 4), 0x21);
    cr_assert_eq(pio_in(&fe, 0x640, 4), 0);
    /* low PMBASE bits are read-only */
    wr(0x1F, ICH9_PMBASE, 4, 0xFFFFFFFF);
    cr_assert_eq(rd(0x1F, ICH9_PMBASE, 4), 0xFF81u);
}

Test(q35, pmbase_move_keeps_pm_state)
{
    wr(0x1F, ICH9_PMBASE, 4, 0x600);
    wr(0x1F, ICH9_ACPI_CNTL, 1, ICH9_ACPI_CNTL_ACPI_EN);
    pio_out(&fe, 0x602, 0x0100, 2);          /* PWRBTN_EN */
    wr(0x1F, ICH9_PMBASE, 4, 0xB000);
    cr_assert_null(bus_find(&fe.pio, 0x600, 2));
    cr_assert_eq(pio_in(&fe, 0xB002, 2), 0x0100, "same acpi_pm, state kept");
    acpi_pm_power_button(lpc_ich9_acpi_pm(lpc));
    cr_assert_eq(fake_level(&fe, ACPI_PM_SCI_GSI), 1, "SCI still raised");
    wr(0x1F, ICH9_ACPI_CNTL, 1, 0);
    cr_assert_null(bus_find(&fe.pio, 0xB000, 2), "ACPI_EN off: decode off");
}

Test(q35, pirq_and_rcba)
{
    for (unsigned i = 0; i < 4; i++) {
        cr_assert_eq(rd(0x1F, ICH9_PIRQA_ROUT + i, 1), ICH9_PIRQ_DISABLED);
        cr_assert_eq(rd(0x1F, ICH9_PIRQE_ROUT + i, 1), ICH9_PIRQ_DISABLED);
    }
    /* OVMF's PciAcpiInitialization routes PIRQs to ISA IRQs 10/11 */
    wr(0x1F, ICH9_PIRQA_ROUT, 4, 0x0B0B0A0A);
    cr_assert_eq(rd(0x1F, ICH9_PIRQA_ROUT, 4), 0x0B0B0A0Au);
    wr(0x1F, ICH9_PIRQE_ROUT, 1, 0xFF);
    cr_assert_eq(rd(0x1F, ICH9_PIRQE_ROUT, 1), 0x8F, "bits 6:4 reserved");
    wr(0x1F, ICH9_RCBA, 4, 0xFED1C000u | 1);
    cr_assert_eq(rd(0x1F, ICH9_RCBA, 4), 0xFED1C001u);
    wr(0x1F, ICH9_RCBA, 4, 0xFFFFFFFF);
    cr_assert_eq(rd(0x1F, ICH9_RCBA, 4), 0xFFFFC001u);
}

Test(q35, presets_for_direct_boot)
{
    q35_teardown();             /* replace the suite's platform with a preset one */
    q35_setup_with(true);
    uint16_t base;
    uint64_t eb, es;
    cr_assert(lpc_ich9_pm_base(lpc, &base));
    cr_assert_eq(base, ACPI_PM_BASE);
    cr_assert(q35_mch_ecam(&mch, &eb, &es));
    cr_assert_eq(eb, Q35_ECAM_DEFAULT_BASE);
    cr_assert_not_null(bus_find(&fe.mmio, Q35_ECAM_DEFAULT_BASE, 4));
    cr_assert_eq(rd(0x1F, ICH9_PMBASE, 4), ACPI_PM_BASE | 1u);
}

Test(q35, bad_lowmem_refused)
{
    struct q35_mch m2;
    struct q35_mch_config mc = { .lowmem = 0x80000800ULL };
    cr_assert_eq(q35_mch_init(&m2, &pb, &mc), -EINVAL);
}

/* ---- the whole platform (devices/chipset/q35.h) ---- */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "devices/chipset/q35.h"
#include "devices/chipset/sysctl.h"
#include "vmm/gm.h"

static void q35p_write_file(const char *path, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    for (size_t i = 0; i < len; i++)
        fputc(0x5A, f);
    fclose(f);
}

Test(q35_platform, firmware_platform_end_to_end)
{
    struct fake_env f;
    struct gm g;
    struct sysctl *sc;
    struct q35 *q;
    char d[] = "/tmp/minivmm-q35-XXXXXX", cp[PATH_MAX], vp[PATH_MAX];

    fake_env_init(&f);
    struct gm_config gc = { .size = 16u << 20, .lock = false };
    cr_assert_eq(gm_init(&g, &gc), 0);
    f.env.gm = &g;
    cr_assert_not_null(mkdtemp(d));
    snprintf(cp, sizeof(cp), "%s/CODE.fd", d);
    snprintf(vp, sizeof(vp), "%s/vm.vars", d);
    q35p_write_file(cp, 8192);
    q35p_write_file(vp, 8192);
    cr_assert_eq(sysctl_create(&f.env, &sc), 0);
    size_t nr_pio = f.pio.nr, nr_mmio = f.mmio.nr;

    uint32_t ids[2] = { 0, 1 };
    struct acpi_config ac = { .nr_cpus = 2, .apic_ids = ids, .ioapic_addr = 0xFEC00000,
                              .lapic_addr = 0xFEE00000, .pm_base = ACPI_PM_BASE,
                              .sci_gsi = ACPI_PM_SCI_GSI };
    struct q35_config c = { .nr_cpus = 2, .nr_root_ports = 2, .firmware = true,
                            .pflash = { .code_path = cp, .vars_path = vp }, .acpi = &ac };
    cr_assert_eq(q35_create(&f.env, &c, &q), 0);

    /* PCI: MCH, root ports, LPC; reset control still at 0xCF9 */
    pio_out(&f, 0xCF8, 0x80000000u, 4);
    cr_assert_eq(pio_in(&f, 0xCFC, 4), 0x29C08086u);
    pio_out(&f, 0xCF8, 0x80000000u | 2u << 11, 4);
    cr_assert_eq(pio_in(&f, 0xCFC, 4), 0x000C1B36u);
    pio_out(&f, 0xCF8, 0x80000000u | 3u << 11, 4);
    cr_assert_eq(pio_in(&f, 0xCFC, 4), 0x000C1B36u);
    pio_out(&f, 0xCF8, 0x80000000u | 4u << 11, 4);
    cr_assert_eq(pio_in(&f, 0xCFC, 4), 0xFFFFFFFFu);
    pio_out(&f, 0xCF8, 0x80000000u | 0x1Fu << 11, 4);
    cr_assert_eq(pio_in(&f, 0xCFC, 4), 0x29188086u);
    outb_(&f, 0xCF9, 0x06);
    cr_assert_eq(f.stop_reason, VM_STOP_RESET);
    /* no ECAM and no PM block until firmware programs them */
    cr_assert_null(bus_find(&f.mmio, Q35_ECAM_DEFAULT_BASE, 4));
    cr_assert_null(bus_find(&f.pio, ACPI_PM_BASE, 4));
    /* RTC, fw_cfg, flash */
    outb_(&f, 0x70, 0x0D);
    cr_assert_eq(inb_(&f, 0x71), 0x80);
    pio_out(&f, 0x510, 0, 2);
    cr_assert_eq(inb_(&f, 0x511), 'Q');
    cr_assert_not_null(bus_find(&f.mmio, GM_4G - 1, 1));

    /* OVMF moves ECAM to 0xE0000000; the MCFG it then downloads says so */
    pio_out(&f, 0xCF8, 0x80000000u | 0x60, 4);
    pio_out(&f, 0xCFC, 0xE0000001u, 4);
    cr_assert_not_null(bus_find(&f.mmio, 0xE0000000ULL, 4));
    int key = fw_cfg_file_key(q->fw_cfg, "etc/acpi/tables");
    cr_assert_geq(key, 0x20);
    pio_out(&f, 0x510, (uint32_t)key, 2);
    uint8_t *t = malloc(8192);
    size_t n = 0;
    for (; n < 8192; n++)
        t[n] = inb_(&f, 0x511);
    bool found = false;
    for (size_t i = 0; i + 60 <= n; i += 4) {
        if (memcmp(t + i, "MCFG", 4) == 0) {
            uint64_t b;
            memcpy(&b, t + i + 44, 8);
            cr_assert_eq(b, 0xE0000000ULL);
            found = true;
        }
    }
    cr_assert(found, "MCFG in etc/acpi/tables");
    free(t);

    /* INTx rule */
    cr_assert_eq(q35_intx_gsi(q35_root_port(q, 0), 1), 20 + (2 + 0) % 4);
    cr_assert_null(q35_root_port(q, 2));
    struct pci_device ep;
    ep.ops = NULL;
    pci_device_init(&ep, "ep", 1, 2, 0, 0, 0, PCI_CFG_SIZE);
    cr_assert_eq(pci_bus_add(q35_pci_bus(q), q35_root_port(q, 1), 0, &ep), 0);
    cr_assert_eq(q35_intx_gsi(&ep, 2), 20 + (3 + 1) % 4);
    cr_assert_eq(q35_intx_gsi(&ep, 0), -EINVAL);
    pci_bus_remove(q35_pci_bus(q), &ep);

    q35_destroy(q);
    cr_assert_eq(f.pio.nr, nr_pio, "every port range released, 0xCF9 given back");
    cr_assert_eq(f.mmio.nr, nr_mmio);
    cr_assert_not_null(bus_find(&f.pio, 0xCF9, 1));
    sysctl_destroy(sc);
    unlink(cp);
    unlink(vp);
    rmdir(d);
    gm_fini(&g);
    fake_env_fini(&f);
}

Test(q35_platform, direct_boot_presets_and_failure_undo)
{
    struct fake_env f;
    struct gm g;
    struct q35 *q;
    fake_env_init(&f);
    struct gm_config gc = { .size = 16u << 20, .lock = false };
    cr_assert_eq(gm_init(&g, &gc), 0);
    f.env.gm = &g;
    struct q35_config c = { .nr_cpus = 1, .nr_root_ports = 1 };
    cr_assert_eq(q35_create(&f.env, &c, &q), 0);
    cr_assert_not_null(bus_find(&f.mmio, Q35_ECAM_DEFAULT_BASE, 4));
    cr_assert_not_null(bus_find(&f.pio, ACPI_PM_BASE + 8, 4));
    cr_assert_null(bus_find(&f.mmio, GM_4G - 1, 1), "no flash without firmware");
    q35_destroy(q);
    cr_assert_eq(f.pio.nr, 0);
    cr_assert_eq(f.mmio.nr, 0);
    /* firmware missing: clear error, everything undone */
    struct q35_config c2 = { .nr_cpus = 1, .firmware = true,
                             .pflash = { .code_path = "/nonexistent/CODE.fd",
                                         .vars_path = "/nonexistent/vm.vars" } };
    cr_assert_eq(q35_create(&f.env, &c2, &q), -ENOENT);
    cr_assert_eq(f.pio.nr, 0);
    cr_assert_eq(f.mmio.nr, 0);
    struct q35_config c3 = { .nr_cpus = 1, .nr_root_ports = 9 };
    cr_assert_eq(q35_create(&f.env, &c3, &q), -EINVAL);
    gm_fini(&g);
    fake_env_fini(&f);
}

/* Root port i reports the link given in port_link[i] (a passed-through
 * device's), and the defaults otherwise: Link Capabilities max speed in
 * bits 3:0, max width in bits 9:4 (PCIe 6.0 §7.5.3.6). */
Test(q35_platform, root_port_link_from_config)
{
    struct fake_env f;
    struct gm g;
    struct q35 *q;
    fake_env_init(&f);
    struct gm_config gc = { .size = 16u << 20, .lock = false };
    cr_assert_eq(gm_init(&g, &gc), 0);
    f.env.gm = &g;
    struct q35_config c = { .nr_cpus = 1, .nr_root_ports = 2 };
    c.port_link[0].speed = PCI_LINK_8GT;
    c.port_link[0].width = 16;
    cr_assert_eq(q35_create(&f.env, &c, &q), 0);
    uint32_t lnkcap_off = PCI_ROOT_PORT_EXP_CAP + PCI_EXP_LNKCAP;
    pio_out(&f, 0xCF8, 0x80000000u | 2u << 11 | lnkcap_off, 4);
    uint32_t cap0 = pio_in(&f, 0xCFC, 4);
    cr_assert_eq(cap0 & 0xF, PCI_LINK_8GT, "port 0: 8 GT/s");
    cr_assert_eq((cap0 >> 4) & 0x3F, 16, "port 0: x16");
    pio_out(&f, 0xCF8, 0x80000000u | 3u << 11 | lnkcap_off, 4);
    uint32_t cap1 = pio_in(&f, 0xCFC, 4);
    cr_assert_eq(cap1 & 0xF, PCI_LINK_2_5GT, "port 1: default 2.5 GT/s");
    cr_assert_eq((cap1 >> 4) & 0x3F, 1, "port 1: default x1");
    q35_destroy(q);
    gm_fini(&g);
    fake_env_fini(&f);
}
