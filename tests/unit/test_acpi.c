/* ACPI tables: structure checks by parsing the blob the way an OS does
 * (RSDP -> XSDT/RSDT -> FADT -> FACS/DSDT, MADT), then, when iasl is
 * installed, a round trip: every table disassembles and re-assembles to
 * the same bytes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "boot/acpi.h"
#include "devices/chipset/acpi_pm.h"

#define BASE ACPI_TABLES_GPA

static uint8_t blob[ACPI_TABLES_MAX];

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static uint8_t sum8(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    while (n--)
        s = (uint8_t)(s + *p++);
    return s;
}

/* with_pci: the q35 host bridge \_SB.PCI0 and the RTC, as vmm/vm.c asks */
static bool with_pci;

static long build(unsigned nr_cpus, const uint32_t *ids)
{
    struct acpi_config cfg = {
        .nr_cpus = nr_cpus, .apic_ids = ids,
        .ioapic_addr = 0xFEC00000, .lapic_addr = 0xFEE00000,
        .pm_base = ACPI_PM_BASE, .sci_gsi = ACPI_PM_SCI_GSI,
        .rtc = with_pci, .pci = with_pci, .ecam_base = 0xB0000000,
        .pci_mmio32_base = 0x20000000, .pci_mmio64_base = 0x800000000ULL,
        .pci_mmio64_size = 0x800000000ULL,
    };
    memset(blob, 0xA5, sizeof(blob));
    return acpi_build(&cfg, BASE, blob, sizeof(blob));
}

/* The table at gpa: in the blob, signature right, length sane, checksum 0. */
static const uint8_t *table_at(long len, uint64_t gpa, const char *sig)
{
    cr_assert_geq(gpa, BASE, "%s pointer 0x%llx below the blob", sig, (unsigned long long)gpa);
    uint64_t off = gpa - BASE;
    cr_assert_leq(off + 36, (uint64_t)len, "%s header outside the blob", sig);
    const uint8_t *t = blob + off;
    cr_assert_eq(memcmp(t, sig, 4), 0, "signature at 0x%llx is not %s", (unsigned long long)gpa, sig);
    uint32_t tlen = rd32(t + 4);
    cr_assert_geq(tlen, 36);
    cr_assert_leq(off + tlen, (uint64_t)len, "%s runs past the blob", sig);
    cr_assert_eq(sum8(t, tlen), 0, "%s checksum", sig);
    cr_assert_eq(memcmp(t + 10, "MINVMM", 6), 0, "%s OEM ID", sig);
    return t;
}

struct parsed {
    const uint8_t *rsdp, *xsdt, *rsdt, *fadt, *facs, *dsdt, *madt;
};

static struct parsed parse(long len)
{
    struct parsed p = { 0 };
    cr_assert_gt(len, 0);
    p.rsdp = blob;
    cr_assert_eq(memcmp(p.rsdp, "RSD PTR ", 8), 0);
    cr_assert_eq(sum8(p.rsdp, 20), 0, "RSDP checksum (first 20 bytes)");
    cr_assert_eq(sum8(p.rsdp, 36), 0, "RSDP extended checksum (36 bytes)");
    cr_assert_eq(p.rsdp[15], 2, "RSDP revision");
    cr_assert_eq(rd32(p.rsdp + 20), 36, "RSDP length");
    cr_assert_eq(memcmp(p.rsdp + 9, "MINVMM", 6), 0);

    p.xsdt = table_at(len, rd64(p.rsdp + 24), "XSDT");
    p.rsdt = table_at(len, rd32(p.rsdp + 16), "RSDT");
    cr_assert_eq(rd32(p.xsdt + 4), 36 + 2 * 8, "XSDT lists FADT and MADT");
    cr_assert_eq(rd32(p.rsdt + 4), 36 + 2 * 4);
    p.fadt = table_at(len, rd64(p.xsdt + 36), "FACP");
    p.madt = table_at(len, rd64(p.xsdt + 44), "APIC");
    cr_assert_eq(table_at(len, rd32(p.rsdt + 36), "FACP"), p.fadt, "RSDT and XSDT agree");
    cr_assert_eq(table_at(len, rd32(p.rsdt + 40), "APIC"), p.madt);

    cr_assert_eq(rd32(p.fadt + 4), 276, "FADT length for revision 6");
    cr_assert_eq(p.fadt[8], 6, "FADT revision");
    p.dsdt = table_at(len, rd64(p.fadt + 140), "DSDT");
    cr_assert_eq(rd32(p.fadt + 40), rd64(p.fadt + 140), "DSDT and X_DSDT agree");
    uint64_t facs = rd64(p.fadt + 132);
    cr_assert_eq(rd32(p.fadt + 36), facs, "FIRMWARE_CTRL and X_FIRMWARE_CTRL agree");
    cr_assert_eq(facs % 64, 0, "FACS 64-byte aligned");
    p.facs = blob + (facs - BASE);
    cr_assert_eq(memcmp(p.facs, "FACS", 4), 0);
    cr_assert_eq(rd32(p.facs + 4), 64);
    return p;
}

Test(acpi, rsdp_tables_and_checksums)
{
    uint32_t ids[2] = { 0, 1 };
    long len = build(2, ids);
    struct parsed p = parse(len);
    cr_assert_eq(p.dsdt[8], 2, "DSDT revision 2: 64-bit integers");
    cr_assert_eq(p.madt[8], 5, "MADT revision 5");
}

Test(acpi, fadt_fields)
{
    uint32_t ids[1] = { 0 };
    struct parsed p = parse(build(1, ids));
    const uint8_t *f = p.fadt;

    cr_assert_eq(rd16(f + 46), ACPI_PM_SCI_GSI, "SCI_INT");
    cr_assert_eq(rd32(f + 48), 0, "no SMI_CMD: always in ACPI mode");
    cr_assert_eq(rd32(f + 56), ACPI_PM_BASE + 0x00, "PM1a_EVT_BLK");
    cr_assert_eq(rd32(f + 64), ACPI_PM_BASE + 0x04, "PM1a_CNT_BLK");
    cr_assert_eq(rd32(f + 76), ACPI_PM_BASE + 0x08, "PM_TMR_BLK");
    cr_assert_eq(rd32(f + 80), ACPI_PM_BASE + 0x20, "GPE0_BLK");
    cr_assert_eq(f[88], 4);
    cr_assert_eq(f[89], 2);
    cr_assert_eq(f[91], 4);
    cr_assert_eq(f[92], 16);
    /* X_ blocks: SystemIO, same address, bit width = 8 * legacy length */
    static const struct { unsigned x, legacy, lenoff; } blk[] = {
        { 148, 56, 88 }, { 172, 64, 89 }, { 208, 76, 91 }, { 220, 80, 92 },
    };
    for (size_t i = 0; i < 4; i++) {
        const uint8_t *g = f + blk[i].x;
        cr_assert_eq(g[0], 1, "X block %zu in SystemIO", i);
        cr_assert_eq(g[1], f[blk[i].lenoff] * 8, "X block %zu bit width", i);
        cr_assert_eq(rd64(g + 4), rd32(f + blk[i].legacy), "X block %zu address", i);
    }
    uint32_t flags = rd32(f + 112);
    cr_assert(flags & (1u << 0), "WBINVD");
    cr_assert(flags & (1u << 2), "PROC_C1");
    cr_assert(flags & (1u << 5), "SLP_BUTTON");
    cr_assert(flags & (1u << 10), "RESET_REG_SUP");
    cr_assert(!(flags & (1u << 20)), "not HW_REDUCED");
    uint16_t boot = rd16(f + 109);
    cr_assert(boot & 1, "LEGACY_DEVICES");
    cr_assert(boot & 2, "8042");
    /* reset register: port 0xCF9 value 6 (devices/chipset/sysctl.c) */
    cr_assert_eq(f[116], 1);
    cr_assert_eq(rd64(f + 120), 0xCF9);
    cr_assert_eq(f[128], 6);
}

Test(acpi, madt_entries)
{
    /* APIC IDs as a topology with gaps gives them; 300 needs an x2APIC entry */
    uint32_t ids[5] = { 0, 1, 4, 5, 300 };
    struct parsed p = parse(build(5, ids));
    const uint8_t *m = p.madt;
    uint32_t mlen = rd32(m + 4);
    unsigned lapics = 0, x2apics = 0, ioapics = 0, isos = 0, nmis = 0, x2nmis = 0;
    bool seen[5] = { false };

    cr_assert_eq(rd32(m + 36), 0xFEE00000, "local APIC address");
    cr_assert_eq(rd32(m + 40) & 1, 1, "PCAT_COMPAT");
    for (uint32_t off = 44; off < mlen;) {
        const uint8_t *e = m + off;
        cr_assert_geq(e[1], 2, "entry length");
        cr_assert_leq(off + e[1], mlen, "entry inside the MADT");
        switch (e[0]) {
        case 0:
            cr_assert_eq(e[1], 8);
            cr_assert_lt(e[2], 5);
            cr_assert_eq(e[3], ids[e[2]], "APIC ID of UID %u", e[2]);
            cr_assert_eq(rd32(e + 4) & 1, 1, "enabled");
            seen[e[2]] = true;
            lapics++;
            break;
        case 9:
            cr_assert_eq(e[1], 16);
            cr_assert_eq(rd32(e + 12), 4);
            cr_assert_eq(rd32(e + 4), 300);
            cr_assert_eq(rd32(e + 8) & 1, 1);
            seen[4] = true;
            x2apics++;
            break;
        case 1:
            cr_assert_eq(e[1], 12);
            cr_assert_eq(e[2], 0, "IOAPIC id 0");
            cr_assert_eq(rd32(e + 4), 0xFEC00000);
            cr_assert_eq(rd32(e + 8), 0, "GSI base");
            ioapics++;
            break;
        case 2:
            cr_assert_eq(e[1], 10);
            cr_assert_eq(e[2], 0, "ISA bus");
            if (e[3] == 0) {
                cr_assert_eq(rd32(e + 4), 2, "IRQ0 -> GSI2");
                cr_assert_eq(rd16(e + 8), 0x5, "edge, active high");
            } else {
                cr_assert_eq(e[3], 9);
                cr_assert_eq(rd32(e + 4), 9, "IRQ9 -> GSI9");
                cr_assert_eq(rd16(e + 8), 0xD, "level, active high");
            }
            isos++;
            break;
        case 4:
            cr_assert_eq(e[1], 6);
            cr_assert_eq(e[2], 0xFF, "all processors");
            cr_assert_eq(e[5], 1, "LINT1");
            nmis++;
            break;
        case 10:
            cr_assert_eq(e[1], 12);
            cr_assert_eq(rd32(e + 4), 0xFFFFFFFF);
            cr_assert_eq(e[8], 1);
            x2nmis++;
            break;
        default:
            cr_assert_fail("unexpected MADT entry type %u", e[0]);
        }
        off += e[1];
    }
    cr_assert_eq(lapics, 4);
    cr_assert_eq(x2apics, 1);
    for (int i = 0; i < 5; i++)
        cr_assert(seen[i], "CPU %d described", i);
    cr_assert_eq(ioapics, 1);
    cr_assert_eq(isos, 2);
    cr_assert_eq(nmis, 1);
    cr_assert_eq(x2nmis, 1);
}

static const uint8_t *find_bytes(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m);

/* q35: \_SB.PCI0 (PNP0A08, PNP0A03), its windows, _PRT by q35_intx_gsi's
 * rule; the RTC clears "no CMOS RTC"; MCFG listed when asked. */
Test(acpi, q35_pci0_rtc_and_mcfg)
{
    uint32_t ids[1] = { 0 };
    with_pci = true;
    struct parsed p = parse(build(1, ids));
    with_pci = false;
    uint32_t dlen = rd32(p.dsdt + 4);
    cr_assert_eq(rd16(p.fadt + 109) & 0x20, 0, "CMOS RTC present");

    static const uint8_t pci0[] = { 'P', 'C', 'I', '0', 0x08, '_', 'H', 'I', 'D', 0x0C,
                                    0x41, 0xD0, 0x0A, 0x08, 0x08, '_', 'C', 'I', 'D', 0x0C,
                                    0x41, 0xD0, 0x0A, 0x03 };
    cr_assert_not_null(find_bytes(p.dsdt, dlen, pci0, sizeof(pci0)), "PCI0 _HID/_CID");
    /* WordBusNumber 0-0xFF: producer, MinFixed, MaxFixed, length 0x100 */
    static const uint8_t bus[] = { 0x88, 0x0D, 0x00, 0x02, 0x0C, 0x00, 0, 0, 0x00, 0x00,
                                   0xFF, 0x00, 0, 0, 0x00, 0x01 };
    cr_assert_not_null(find_bytes(p.dsdt, dlen, bus, sizeof(bus)), "bus range");
    /* WordIO 0xD00-0xFFFF, EntireRange */
    static const uint8_t io[] = { 0x88, 0x0D, 0x00, 0x01, 0x0C, 0x03, 0, 0, 0x00, 0x0D,
                                  0xFF, 0xFF, 0, 0, 0x00, 0xF3 };
    cr_assert_not_null(find_bytes(p.dsdt, dlen, io, sizeof(io)), "I/O window above 0xCFF");
    /* DWordMemory [RAM top, ECAM) and [ECAM + 256 MiB, 0xFEBFFFFF] */
    static const uint8_t lo[] = { 0x87, 0x17, 0x00, 0x00, 0x0C, 0x01, 0, 0, 0, 0,
                                  0x00, 0x00, 0x00, 0x20, 0xFF, 0xFF, 0xFF, 0xAF };
    cr_assert_not_null(find_bytes(p.dsdt, dlen, lo, sizeof(lo)), "32-bit window below ECAM");
    static const uint8_t hi[] = { 0x87, 0x17, 0x00, 0x00, 0x0C, 0x01, 0, 0, 0, 0,
                                  0x00, 0x00, 0x00, 0xC0, 0xFF, 0xFF, 0xBF, 0xFE };
    cr_assert_not_null(find_bytes(p.dsdt, dlen, hi, sizeof(hi)), "32-bit window above ECAM");
    /* QWordMemory [32 GiB, 64 GiB) */
    static const uint8_t q[] = { 0x8A, 0x2B, 0x00, 0x00, 0x0C, 0x03, 0, 0, 0, 0, 0, 0, 0, 0,
                                 0, 0, 0, 0, 0x08, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0, 0 };
    cr_assert_not_null(find_bytes(p.dsdt, dlen, q, sizeof(q)), "64-bit window");
    /* _PRT: slot 3 pin INTB -> GSI 20 + (3 + 1) % 4 = 20; slot 0x1F INTD -> 20 + 34 % 4 = 22 */
    static const uint8_t prt3b[] = { 0x12, 0x0B, 0x04, 0x0C, 0xFF, 0xFF, 0x03, 0x00,
                                     0x01, 0x00, 0x0A, 20 };
    cr_assert_not_null(find_bytes(p.dsdt, dlen, prt3b, sizeof(prt3b)), "_PRT slot 3 INTB");
    static const uint8_t prt1fd[] = { 0x12, 0x0C, 0x04, 0x0C, 0xFF, 0xFF, 0x1F, 0x00,
                                      0x0A, 0x03, 0x00, 0x0A, 22 };
    cr_assert_not_null(find_bytes(p.dsdt, dlen, prt1fd, sizeof(prt1fd)), "_PRT slot 31 INTD");

    /* MCFG when asked: third XSDT/RSDT entry, ECAM base, buses 0-255 */
    struct acpi_config cfg = {
        .nr_cpus = 1, .apic_ids = ids, .ioapic_addr = 0xFEC00000, .lapic_addr = 0xFEE00000,
        .pm_base = ACPI_PM_BASE, .sci_gsi = 9, .pci = true, .ecam_base = 0xB0000000,
        .pci_mmio32_base = 0x20000000, .mcfg = true,
    };
    long len = acpi_build(&cfg, BASE, blob, sizeof(blob));
    cr_assert_gt(len, 0);
    const uint8_t *xsdt = table_at(len, rd64(blob + 24), "XSDT");
    const uint8_t *rsdt = table_at(len, rd32(blob + 16), "RSDT");
    cr_assert_eq(rd32(xsdt + 4), 36 + 3 * 8);
    cr_assert_eq(rd32(rsdt + 4), 36 + 3 * 4);
    const uint8_t *mcfg = table_at(len, rd64(xsdt + 52), "MCFG");
    cr_assert_eq(table_at(len, rd32(rsdt + 44), "MCFG"), mcfg);
    cr_assert_eq(rd64(mcfg + 44), 0xB0000000);
    cr_assert_eq(mcfg[54], 0);
    cr_assert_eq(mcfg[55], 0xFF);
}

static const uint8_t *find_bytes(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m))
            return hay + i;
    return NULL;
}

Test(acpi, dsdt_aml)
{
    uint32_t ids[3] = { 0, 1, 2 };
    struct parsed p = parse(build(3, ids));
    uint32_t dlen = rd32(p.dsdt + 4);

    /* Name (\_S5, Package (4) { 0, 0, 0, 0 }) right after the header */
    static const uint8_t s5[] = { 0x08, 0x5C, '_', 'S', '5', '_', 0x12, 0x06, 0x04,
                                  ACPI_PM_S5_TYP, ACPI_PM_S5_TYP, 0x00, 0x00 };
    cr_assert_arr_eq(p.dsdt + 36, s5, sizeof(s5));
    /* COM1: _HID EisaId("PNP0501") and its _CRS */
    static const uint8_t hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x05, 0x01 };
    cr_assert_not_null(find_bytes(p.dsdt, dlen, hid, sizeof(hid)));
    static const uint8_t crs[] = { 0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08,
                                   0x22, 0x10, 0x00, 0x79, 0x00 };
    cr_assert_not_null(find_bytes(p.dsdt, dlen, crs, sizeof(crs)));
    /* one processor device per CPU */
    static const uint8_t cp02[] = { 'C', 'P', '0', '2', 0x08, '_', 'H', 'I', 'D', 0x0D,
                                    'A', 'C', 'P', 'I', '0', '0', '0', '7', 0 };
    cr_assert_not_null(find_bytes(p.dsdt, dlen, cp02, sizeof(cp02)));
    static const uint8_t cp03[] = { 'C', 'P', '0', '3' };
    cr_assert_null(find_bytes(p.dsdt, dlen, cp03, sizeof(cp03)));
}

Test(acpi, bad_config_and_no_room)
{
    uint32_t ids[1] = { 0 };
    struct acpi_config cfg = {
        .nr_cpus = 1, .apic_ids = ids, .ioapic_addr = 0xFEC00000,
        .lapic_addr = 0xFEE00000, .pm_base = ACPI_PM_BASE, .sci_gsi = 9,
    };
    static uint8_t small[256];
    cr_assert_eq(acpi_build(&cfg, BASE, small, sizeof(small)), -ENOSPC);
    cr_assert_eq(acpi_build(&cfg, BASE + 16, blob, sizeof(blob)), -EINVAL, "FACS alignment");
    cfg.nr_cpus = 0;
    cr_assert_eq(acpi_build(&cfg, BASE, blob, sizeof(blob)), -EINVAL);
    cfg.nr_cpus = 1;
    cfg.apic_ids = NULL;
    cr_assert_eq(acpi_build(&cfg, BASE, blob, sizeof(blob)), -EINVAL);
}

/* ---- iasl round trip ---- */

static int run_quiet(const char *dir, const char *cmd)
{
    char line[1024];
    snprintf(line, sizeof(line), "cd '%s' && %s >>iasl.log 2>&1", dir, cmd);
    int st = system(line);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static size_t read_file_into(const char *dir, const char *name, uint8_t *p, size_t cap)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s was not produced", path);
    size_t n = fread(p, 1, cap, f);
    fclose(f);
    return n;
}

Test(acpi, iasl_round_trip)
{
    if (system("command -v iasl >/dev/null 2>&1") != 0)
        cr_skip_test("iasl not installed (package acpica-tools)");

    uint32_t ids[4] = { 0, 1, 2, 3 };
    with_pci = true;   /* the DSDT with \_SB.PCI0: windows and _PRT must assemble */
    struct parsed p = parse(build(4, ids));
    with_pci = false;
    const struct { const char *name; const uint8_t *t; size_t len; size_t cmp_from; } tabs[] = {
        { "dsdt", p.dsdt, rd32(p.dsdt + 4), 36 },
        { "facp", p.fadt, rd32(p.fadt + 4), 36 },
        { "apic", p.madt, rd32(p.madt + 4), 36 },
        { "xsdt", p.xsdt, rd32(p.xsdt + 4), 36 },
        { "rsdt", p.rsdt, rd32(p.rsdt + 4), 36 },
        { "facs", p.facs, 64, 0 },
    };
    char dir[] = "/tmp/minivmm-acpi-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));

    for (size_t i = 0; i < sizeof(tabs) / sizeof(tabs[0]); i++) {
        char file[32], cmd[128];
        snprintf(file, sizeof(file), "%s.dat", tabs[i].name);
        write_file(dir, file, tabs[i].t, tabs[i].len);
        snprintf(cmd, sizeof(cmd), "iasl -d %s.dat", tabs[i].name);
        cr_assert_eq(run_quiet(dir, cmd), 0, "iasl -d %s failed (see %s/iasl.log)", file, dir);
        /* -oa: no optimizations, so the AML comes back byte for byte. The
         * header differs only in the compiler ID and checksum. */
        snprintf(cmd, sizeof(cmd), "iasl -oa -p rt_%s %s.dsl", tabs[i].name, tabs[i].name);
        cr_assert_eq(run_quiet(dir, cmd), 0, "iasl cannot re-assemble %s.dsl (see %s/iasl.log)",
                     tabs[i].name, dir);
        static uint8_t back[ACPI_TABLES_MAX];
        snprintf(file, sizeof(file), "rt_%s.aml", tabs[i].name);
        size_t n = read_file_into(dir, file, back, sizeof(back));
        cr_assert_eq(n, tabs[i].len, "%s: %zu bytes back, built %zu", tabs[i].name, n, tabs[i].len);
        cr_assert_arr_eq(back + tabs[i].cmp_from, tabs[i].t + tabs[i].cmp_from,
                         tabs[i].len - tabs[i].cmp_from, "%s differs after the round trip", tabs[i].name);
    }
    /* iasl reports errors and warnings in its log even with exit status 0 */
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "grep -Eiq '[1-9][0-9]* (errors|warnings)' '%s/iasl.log'", dir);
    cr_assert_neq(system(cmd), 0, "iasl reported errors or warnings (see %s/iasl.log)", dir);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* q35: \_SB.FWCF (_HID "QEMU0002", IO 0x510 length 12) so a guest kernel's
 * qemu_fw_cfg driver finds fw_cfg; absent without the q35 platform. */
Test(acpi, q35_fw_cfg_device)
{
    uint32_t ids[1] = { 0 };
    static const uint8_t hid[] = { 'F', 'W', 'C', 'F', 0x08, '_', 'H', 'I', 'D', 0x0D,
                                   'Q', 'E', 'M', 'U', '0', '0', '0', '2', 0x00 };
    /* IO descriptor (ACPI 6.4 §6.4.2.5): decode16, min = max = 0x510, align 1, len 12 */
    static const uint8_t io[] = { 0x47, 0x01, 0x10, 0x05, 0x10, 0x05, 0x01, 0x0C };
    with_pci = true;
    struct parsed p = parse(build(1, ids));
    with_pci = false;
    uint32_t dlen = rd32(p.dsdt + 4);
    const uint8_t *at = find_bytes(p.dsdt, dlen, hid, sizeof(hid));
    cr_assert_not_null(at, "FWCF _HID QEMU0002");
    cr_assert_not_null(find_bytes(at, dlen - (uint32_t)(at - p.dsdt), io, sizeof(io)), "FWCF _CRS IO 0x510/12");

    struct parsed q = parse(build(1, ids));
    cr_assert_null(find_bytes(q.dsdt, rd32(q.dsdt + 4), hid, sizeof(hid)), "no FWCF without q35");
}
