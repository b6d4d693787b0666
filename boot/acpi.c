/* ACPI tables for a direct Linux boot (ACPI 6.4).
 *
 * Layout of the blob at base_gpa (ACPI_TABLES_GPA, in the reserved BIOS area
 * of boot/e820.c), every pointer absolute:
 *
 *   +0     RSDP, revision 2, 36 bytes (§5.2.5.3); 16-byte aligned
 *   +64    FACS, 64 bytes (§5.2.10); 64-byte aligned as required
 *   then, each 16-byte aligned:
 *          DSDT  revision 2 (64-bit integers): \_S5, \_SB.CPxx, \_SB.COM1
 *          FADT  revision 6.4, 276 bytes (§5.2.9)
 *          MADT  revision 5 (§5.2.12)
 *          XSDT  -> FADT, MADT (§5.2.8)
 *          RSDT  -> FADT, MADT (§5.2.7), for 32-bit-only readers
 *
 * What the FADT claims, and why it is true of minivmm:
 *   - PM1a_EVT/PM1a_CNT/PM_TMR/GPE0 at pm_base as devices/chipset/acpi_pm.c decodes
 *     them (ICH9 layout), given both as 32-bit blocks and as X_ generic
 *     addresses with the same address and width (ACPICA warns on a mismatch);
 *   - SMI_CMD = 0: there is no SMM and no legacy mode, the hardware is always
 *     in ACPI mode (§5.2.9, SMI_CMD) and acpi_pm starts with SCI_EN set;
 *   - flags: WBINVD works (KVM), C1 (HLT) works, the power button is the
 *     fixed-feature one (acpi_pm's PWRBTN_STS/EN), there is no sleep button
 *     and no RTC wake status (no RTC yet), RESET_REG = port 0xCF9 value 6
 *     (devices/chipset/sysctl.c resets on it); not hardware-reduced;
 *   - IAPC_BOOT_ARCH: legacy ISA devices (COM1), an 8042, no VGA, no CMOS
 *     RTC (so Linux does not look for one; clear that bit when an RTC lands).
 * The MADT lists each vCPU's local APIC (x2APIC entries for IDs >= 255), the
 * IOAPIC (ID 0, GSI base 0), ISA IRQ0 -> GSI2 (the PIT on IOAPIC pin 2) and
 * the SCI's ISA IRQ as level/active-high, and LINT1 as the NMI input. */
#include "boot/acpi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "boot/acpi_loader.h"
#include "boot/aml.h"
#include "devices/chipset/acpi_pm.h"
#include "devices/chipset/fw_cfg.h"
#include "devices/legacy/uart.h"
#include "vmm/log.h"

#define ACPI_OEM_ID        "MINVMM"     /* 6 bytes */
#define ACPI_OEM_TABLE_ID  "MINIVMM "   /* 8 bytes */
#define ACPI_OEM_REVISION  1
#define ACPI_CREATOR_ID    "MVMM"
#define ACPI_CREATOR_REV   1

#define ACPI_HDR_LEN       36
#define ACPI_RSDP_LEN      36
#define ACPI_RSDP_V1_LEN   20
#define ACPI_FACS_LEN      64
#define ACPI_FADT_LEN      276          /* revision 6 (ACPI 6.0-6.4) */
#define ACPI_FADT_REV      6
#define ACPI_FADT_MINOR    4            /* ACPI 6.4 */
#define ACPI_MADT_REV      5            /* ACPI 6.3-6.4 */
#define ACPI_DSDT_REV      2            /* 64-bit integers */

/* FADT Fixed Feature Flags, ACPI 6.4 Table 5.10 */
#define FADT_F_WBINVD        (1u << 0)
#define FADT_F_PROC_C1       (1u << 2)
#define FADT_F_SLP_BUTTON    (1u << 5)
#define FADT_F_FIX_RTC       (1u << 6)
#define FADT_F_RESET_REG_SUP (1u << 10)
/* IA-PC Boot Architecture Flags, ACPI 6.4 Table 5.11 */
#define IAPC_LEGACY_DEVICES  (1u << 0)
#define IAPC_8042            (1u << 1)
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)

/* Generic Address Structure (§5.2.3.2) address space IDs and access sizes */
#define GAS_SYSTEM_IO        1
#define GAS_ACCESS_BYTE      1

/* acpi_pm's register block (devices/chipset/acpi_pm.h) */
#define PM1_EVT_OFF  0x00
#define PM1_EVT_LEN  4
#define PM1_CNT_OFF  0x04
#define PM1_CNT_LEN  2
#define PM_TMR_OFF   0x08
#define PM_TMR_LEN   4
#define GPE0_OFF     0x20
#define GPE0_LEN     16

#define SYSCTL_RESET_PORT  0xCF9
#define SYSCTL_RESET_VALUE 0x06   /* "reset CPU" + "system reset" (ICH9 RST_CNT) */

/* MADT structure types and flags, ACPI 6.4 §5.2.12 */
#define MADT_PCAT_COMPAT     (1u << 0)
#define MADT_LAPIC           0
#define MADT_IOAPIC          1
#define MADT_ISO             2
#define MADT_LAPIC_NMI       4
#define MADT_X2APIC          9
#define MADT_X2APIC_NMI      10
#define MADT_ENABLED         (1u << 0)
/* MPS INTI flags (Table 5.26): polarity bits 0-1, trigger mode bits 2-3 */
#define MPS_ACTIVE_HIGH      0x1
#define MPS_EDGE             (0x1 << 2)
#define MPS_LEVEL            (0x3 << 2)

#define ACPI_MAX_CPUS        255

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }

static uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)(0 - sum);
}

/* A bump allocator over the output buffer. */
struct acpi_blob {
    uint8_t *buf;
    size_t cap, len;
    int err;
};

static size_t blob_alloc(struct acpi_blob *b, size_t align, size_t size)
{
    size_t at = (b->len + align - 1) & ~(align - 1);

    if (b->err || at > b->cap || size > b->cap - at) {
        b->err = -ENOSPC;
        return 0;
    }
    memset(b->buf + b->len, 0, at + size - b->len);
    b->len = at + size;
    return at;
}

/* System Description Table Header (§5.2.6); length and checksum are set by
 * acpi_table_finish. */
static void acpi_header(uint8_t *t, const char sig[4], uint8_t rev)
{
    memcpy(t, sig, 4);
    t[8] = rev;
    memcpy(t + 10, ACPI_OEM_ID, 6);
    memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
    put32(t + 24, ACPI_OEM_REVISION);
    memcpy(t + 28, ACPI_CREATOR_ID, 4);
    put32(t + 32, ACPI_CREATOR_REV);
}

static void acpi_table_finish(uint8_t *t, size_t len)
{
    put32(t + 4, (uint32_t)len);
    t[9] = 0;
    t[9] = acpi_checksum(t, len);
}

/* Generic Address Structure (§5.2.3.2) */
static void acpi_gas(uint8_t *p, uint8_t space, uint8_t bit_width, uint8_t access, uint64_t addr)
{
    p[0] = space;
    p[1] = bit_width;
    p[2] = 0;          /* bit offset */
    p[3] = access;
    put64(p + 4, addr);
}

#define PCI_ECAM_SIZE      0x10000000ULL   /* 256 buses x 1 MiB (PCIe 6.0 §7.2.2) */
#define PCI_MMIO32_END     0xFEBFFFFFULL   /* below the IOAPIC */
#define PCI_PRT_SLOTS      32
#define PCI_PIRQ_GSI_FIRST 20              /* PIRQ E: q35_intx_gsi (devices/chipset/q35.h) */

/* \_SB.PCI0: the q35 host bridge (PCI Firmware Specification 3.2 §4.1,
 * ACPI 6.4 §6.1/§6.2/§6.2.13). _HID PNP0A08 (PCI Express) with _CID PNP0A03
 * so older OSes still see a PCI root; _CRS lists what the bridge forwards:
 * every bus, the 0xCF8 config ports it consumes, the I/O space around them,
 * the 32-bit hole above RAM without the ECAM window, and the 64-bit window
 * OVMF puts large BARs in. _PRT: devices/chipset/q35.h's INTx rule, GSIs straight
 * (source 0: no link devices, the IOAPIC pins are fixed). */
static void acpi_dsdt_pci0(const struct acpi_config *cfg, struct aml *a)
{
    static uint8_t rtbuf[160];
    struct aml rt;
    uint64_t lo = cfg->pci_mmio32_base, ecam = cfg->ecam_base;

    aml_device_begin(a, "PCI0");
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0A08");
    aml_name(a, "_CID");
    aml_eisaid(a, "PNP0A03");
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_name(a, "_SEG");
    aml_integer(a, 0);
    aml_name(a, "_BBN");
    aml_integer(a, 0);

    aml_name(a, "_CRS");
    aml_init(&rt, rtbuf, sizeof(rtbuf));
    aml_res_word_bus(&rt, 0, 0xFF);
    aml_res_io(&rt, 0xCF8, 0xCF8, 0x01, 0x08);
    aml_res_word_io(&rt, 0x0000, 0x0CF7);
    aml_res_word_io(&rt, 0x0D00, 0xFFFF);
    /* the 32-bit window, split around ECAM when ECAM lies inside it */
    if (ecam >= lo && ecam < PCI_MMIO32_END) {
        if (ecam > lo)
            aml_res_dword_mem(&rt, (uint32_t)lo, (uint32_t)(ecam - 1));
        if (ecam + PCI_ECAM_SIZE <= PCI_MMIO32_END)
            aml_res_dword_mem(&rt, (uint32_t)(ecam + PCI_ECAM_SIZE), (uint32_t)PCI_MMIO32_END);
    } else {
        aml_res_dword_mem(&rt, (uint32_t)lo, (uint32_t)PCI_MMIO32_END);
    }
    if (cfg->pci_mmio64_size)
        aml_res_qword_mem(&rt, cfg->pci_mmio64_base,
                          cfg->pci_mmio64_base + cfg->pci_mmio64_size - 1);
    aml_resource_template(a, &rt);

    /* _PRT (§6.2.13): { Address (slot << 16 | 0xFFFF), Pin (0-3 = INTA-D),
     * Source (0: GSI), Source Index (the GSI) } */
    aml_name(a, "_PRT");
    aml_package_begin(a, PCI_PRT_SLOTS * 4);
    for (unsigned slot = 0; slot < PCI_PRT_SLOTS; slot++) {
        for (unsigned pin = 0; pin < 4; pin++) {
            aml_package_begin(a, 4);
            aml_integer(a, (uint64_t)slot << 16 | 0xFFFF);
            aml_integer(a, pin);
            aml_integer(a, 0);
            aml_integer(a, PCI_PIRQ_GSI_FIRST + (slot + pin) % 4);
            aml_end(a);
        }
    }
    aml_end(a);
    aml_end(a);   /* PCI0 */
}

static int acpi_build_dsdt(const struct acpi_config *cfg, struct acpi_blob *b, size_t at)
{
    struct aml a, rt;
    uint8_t rtbuf[32];
    uint8_t *t = b->buf + at;

    aml_init(&a, t + ACPI_HDR_LEN, b->cap - at - ACPI_HDR_LEN);

    /* \_S5: SLP_TYPa, SLP_TYPb, reserved, reserved (ACPI 6.4 §7.4.2). */
    aml_name(&a, "\\_S5");
    aml_package_begin(&a, 4);
    aml_integer(&a, ACPI_PM_S5_TYP);
    aml_integer(&a, ACPI_PM_S5_TYP);
    aml_integer(&a, 0);
    aml_integer(&a, 0);
    aml_end(&a);

    aml_scope_begin(&a, "\\_SB");
    /* One processor device per vCPU (§8.4, _HID ACPI0007); its _UID is the
     * ACPI Processor UID of its MADT entry, which is how OSPM pairs them. */
    for (unsigned i = 0; i < cfg->nr_cpus; i++) {
        static const char hex[] = "0123456789ABCDEF";
        char name[5] = { 'C', 'P', hex[(i >> 4) & 0xF], hex[i & 0xF], 0 };
        aml_device_begin(&a, name);
        aml_name(&a, "_HID");
        aml_string(&a, "ACPI0007");
        aml_name(&a, "_UID");
        aml_integer(&a, i);
        aml_end(&a);
    }
    /* COM1: a 16550A (devices/legacy/uart.c) at 0x3F8, ISA IRQ 4. */
    aml_device_begin(&a, "COM1");
    aml_name(&a, "_HID");
    aml_eisaid(&a, "PNP0501");
    aml_name(&a, "_UID");
    aml_integer(&a, 1);
    aml_name(&a, "_CRS");
    aml_init(&rt, rtbuf, sizeof(rtbuf));
    aml_res_io(&rt, UART_COM1_BASE, UART_COM1_BASE, 0x01, 0x08);
    aml_res_irq_noflags(&rt, UART_COM1_GSI);
    aml_resource_template(&a, &rt);
    aml_end(&a);
    if (cfg->pci) {
        /* fw_cfg (devices/chipset/fw_cfg.c, on the q35 platform): the guest kernel's
         * qemu_fw_cfg driver binds to _HID QEMU0002 (QEMU's
         * docs/specs/fw_cfg.rst); selector, data and DMA ports, 12 bytes. */
        aml_device_begin(&a, "FWCF");
        aml_name(&a, "_HID");
        aml_string(&a, "QEMU0002");
        aml_name(&a, "_STA");
        aml_integer(&a, 0x0B);   /* present, enabled, not shown in UI */
        aml_name(&a, "_CRS");
        aml_init(&rt, rtbuf, sizeof(rtbuf));
        aml_res_io(&rt, FW_CFG_PORT_SEL, FW_CFG_PORT_SEL, 0x01, 0x0C);
        aml_resource_template(&a, &rt);
        aml_end(&a);
        acpi_dsdt_pci0(cfg, &a);
    }
    aml_end(&a);   /* \_SB */

    int err = aml_finish(&a);
    if (err) {
        b->err = err;
        return err;
    }
    b->len = at + ACPI_HDR_LEN + a.len;
    acpi_header(t, "DSDT", ACPI_DSDT_REV);
    acpi_table_finish(t, ACPI_HDR_LEN + a.len);
    return 0;
}

static void acpi_build_fadt(const struct acpi_config *cfg, uint8_t *t,
                            uint64_t facs, uint64_t dsdt)
{
    uint32_t pm = cfg->pm_base;

    acpi_header(t, "FACP", ACPI_FADT_REV);
    put32(t + 36, (uint32_t)facs);          /* FIRMWARE_CTRL */
    put32(t + 40, (uint32_t)dsdt);          /* DSDT */
    t[45] = 0;                              /* Preferred_PM_Profile: unspecified */
    put16(t + 46, (uint16_t)cfg->sci_gsi);  /* SCI_INT */
    /* SMI_CMD, ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT: 0 */
    put32(t + 56, pm + PM1_EVT_OFF);        /* PM1a_EVT_BLK */
    put32(t + 64, pm + PM1_CNT_OFF);        /* PM1a_CNT_BLK */
    put32(t + 76, pm + PM_TMR_OFF);         /* PM_TMR_BLK */
    put32(t + 80, pm + GPE0_OFF);           /* GPE0_BLK */
    t[88] = PM1_EVT_LEN;
    t[89] = PM1_CNT_LEN;
    t[91] = PM_TMR_LEN;
    t[92] = GPE0_LEN;
    /* No C2/C3: latencies above 100 and 1000 us say "not supported". */
    put16(t + 96, 101);                     /* P_LVL2_LAT */
    put16(t + 98, 1001);                    /* P_LVL3_LAT */
    put16(t + 109, IAPC_LEGACY_DEVICES | IAPC_8042 | IAPC_VGA_NOT_PRESENT |
                   (cfg->rtc ? 0 : IAPC_CMOS_RTC_NOT_PRESENT));
    put32(t + 112, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON |
                   FADT_F_FIX_RTC | FADT_F_RESET_REG_SUP);
    acpi_gas(t + 116, GAS_SYSTEM_IO, 8, GAS_ACCESS_BYTE, SYSCTL_RESET_PORT);  /* RESET_REG */
    t[128] = SYSCTL_RESET_VALUE;
    t[131] = ACPI_FADT_MINOR;
    put64(t + 132, facs);                   /* X_FIRMWARE_CTRL */
    put64(t + 140, dsdt);                   /* X_DSDT */
    acpi_gas(t + 148, GAS_SYSTEM_IO, PM1_EVT_LEN * 8, 0, pm + PM1_EVT_OFF);
    acpi_gas(t + 172, GAS_SYSTEM_IO, PM1_CNT_LEN * 8, 0, pm + PM1_CNT_OFF);
    acpi_gas(t + 208, GAS_SYSTEM_IO, PM_TMR_LEN * 8, 0, pm + PM_TMR_OFF);
    acpi_gas(t + 220, GAS_SYSTEM_IO, GPE0_LEN * 8, 0, pm + GPE0_OFF);
    acpi_table_finish(t, ACPI_FADT_LEN);
}

static size_t acpi_madt_len(const struct acpi_config *cfg, bool *any_x2apic)
{
    size_t len = ACPI_HDR_LEN + 8 + 12 /* IOAPIC */ + 10 /* ISO IRQ0 */ + 6 /* LAPIC NMI */;

    *any_x2apic = false;
    for (unsigned i = 0; i < cfg->nr_cpus; i++) {
        if (cfg->apic_ids[i] >= 0xFF) {
            len += 16;
            *any_x2apic = true;
        } else {
            len += 8;
        }
    }
    if (*any_x2apic)
        len += 12;   /* x2APIC NMI */
    if (cfg->sci_gsi < 16 && cfg->sci_gsi != 0)
        len += 10;   /* ISO for the SCI */
    return len;
}

static void acpi_build_madt(const struct acpi_config *cfg, uint8_t *t, size_t len, bool any_x2apic)
{
    uint8_t *p = t + ACPI_HDR_LEN;

    acpi_header(t, "APIC", ACPI_MADT_REV);
    put32(p, (uint32_t)cfg->lapic_addr);
    put32(p + 4, MADT_PCAT_COMPAT);   /* KVM's irqchip includes the 8259 pair */
    p += 8;
    for (unsigned i = 0; i < cfg->nr_cpus; i++) {
        if (cfg->apic_ids[i] >= 0xFF) {
            p[0] = MADT_X2APIC;
            p[1] = 16;
            put32(p + 4, cfg->apic_ids[i]);
            put32(p + 8, MADT_ENABLED);
            put32(p + 12, i);              /* ACPI Processor UID */
            p += 16;
        } else {
            p[0] = MADT_LAPIC;
            p[1] = 8;
            p[2] = (uint8_t)i;             /* ACPI Processor UID = _UID of \_SB.CPxx */
            p[3] = (uint8_t)cfg->apic_ids[i];
            put32(p + 4, MADT_ENABLED);
            p += 8;
        }
    }
    p[0] = MADT_IOAPIC;
    p[1] = 12;
    p[2] = 0;                              /* I/O APIC ID */
    put32(p + 4, (uint32_t)cfg->ioapic_addr);
    put32(p + 8, 0);                       /* GSI base */
    p += 12;
    /* The PIT's ISA IRQ0 is wired to IOAPIC pin 2 (§5.2.12.5). */
    p[0] = MADT_ISO;
    p[1] = 10;
    p[2] = 0;                              /* bus: ISA */
    p[3] = 0;                              /* source IRQ */
    put32(p + 4, 2);
    put16(p + 8, MPS_ACTIVE_HIGH | MPS_EDGE);
    p += 10;
    /* The SCI is level-triggered and, here, active high (§5.2.9 SCI_INT
     * otherwise defaults to active low). */
    if (cfg->sci_gsi < 16 && cfg->sci_gsi != 0) {
        p[0] = MADT_ISO;
        p[1] = 10;
        p[2] = 0;
        p[3] = (uint8_t)cfg->sci_gsi;
        put32(p + 4, cfg->sci_gsi);
        put16(p + 8, MPS_ACTIVE_HIGH | MPS_LEVEL);
        p += 10;
    }
    /* LINT1 of every local APIC is the NMI input (§5.2.12.7). */
    p[0] = MADT_LAPIC_NMI;
    p[1] = 6;
    p[2] = 0xFF;                           /* all processors */
    put16(p + 3, MPS_ACTIVE_HIGH | MPS_EDGE);
    p[5] = 1;                              /* LINT1 */
    p += 6;
    if (any_x2apic) {
        p[0] = MADT_X2APIC_NMI;
        p[1] = 12;
        put16(p + 2, MPS_ACTIVE_HIGH | MPS_EDGE);
        put32(p + 4, 0xFFFFFFFFu);         /* all processors */
        p[8] = 1;                          /* LINT1 */
        p += 12;
    }
    acpi_table_finish(t, len);
}

static int acpi_config_check(const struct acpi_config *cfg, uint64_t base_gpa)
{
    if (cfg->nr_cpus == 0 || cfg->nr_cpus > ACPI_MAX_CPUS || !cfg->apic_ids) {
        log_err("acpi", "cannot describe %u vCPUs (1 to %d, with APIC IDs)",
                cfg->nr_cpus, ACPI_MAX_CPUS);
        return -EINVAL;
    }
    if (base_gpa % 64) {
        log_err("acpi", "tables at 0x%llx: the FACS needs 64-byte alignment",
                (unsigned long long)base_gpa);
        return -EINVAL;
    }
    if (base_gpa + ACPI_TABLES_MAX > GM_4G || cfg->ioapic_addr >= GM_4G ||
        cfg->lapic_addr >= GM_4G) {
        log_err("acpi", "tables, IOAPIC and LAPIC must sit below 4 GiB (32-bit pointers)");
        return -EINVAL;
    }
    if (cfg->pm_base == 0 || cfg->pm_base > 0xFFFF - 0x30 || cfg->sci_gsi > 0xFFFF) {
        log_err("acpi", "bad PM block 0x%x or SCI GSI %u", cfg->pm_base, cfg->sci_gsi);
        return -EINVAL;
    }
    return 0;
}

long acpi_build(const struct acpi_config *cfg, uint64_t base_gpa, uint8_t *buf, size_t buflen)
{
    struct acpi_blob b = { .buf = buf, .cap = buflen };
    size_t rsdp, facs, dsdt, fadt, madt, xsdt, rsdt, madt_len, mcfg = 0;
    unsigned nr = cfg->mcfg ? 3 : 2;   /* XSDT/RSDT entries: FADT, MADT[, MCFG] */
    bool any_x2apic;
    int err;

    err = acpi_config_check(cfg, base_gpa);
    if (err)
        return err;

    rsdp = blob_alloc(&b, 16, ACPI_RSDP_LEN);
    facs = blob_alloc(&b, 64, ACPI_FACS_LEN);
    dsdt = blob_alloc(&b, 16, ACPI_HDR_LEN);
    if (!b.err)
        acpi_build_dsdt(cfg, &b, dsdt);
    fadt = blob_alloc(&b, 16, ACPI_FADT_LEN);
    madt_len = acpi_madt_len(cfg, &any_x2apic);
    madt = blob_alloc(&b, 16, madt_len);
    if (cfg->mcfg)
        mcfg = blob_alloc(&b, 16, ACPI_MCFG_LEN);
    xsdt = blob_alloc(&b, 16, ACPI_HDR_LEN + nr * 8);
    rsdt = blob_alloc(&b, 16, ACPI_HDR_LEN + nr * 4);
    if (b.err) {
        if (b.err == -ENOSPC)
            log_err("acpi", "tables do not fit in %zu bytes", buflen);
        return b.err;
    }

    /* FACS (§5.2.10): no checksum; hardware signature 0, no waking vector
     * (no S3/S4), no global-lock users, version 2. */
    memcpy(buf + facs, "FACS", 4);
    put32(buf + facs + 4, ACPI_FACS_LEN);
    buf[facs + 32] = 2;

    acpi_build_fadt(cfg, buf + fadt, base_gpa + facs, base_gpa + dsdt);
    acpi_build_madt(cfg, buf + madt, madt_len, any_x2apic);

    if (cfg->mcfg) {
        /* MCFG (PCI Firmware Specification 3.2 §4.1.2): the loader's
         * builder, then this file's header and checksum. */
        acpi_mcfg_build(buf + mcfg, cfg->ecam_base, 0, 0xFF);
        acpi_header(buf + mcfg, "MCFG", buf[mcfg + 8]);
        acpi_table_finish(buf + mcfg, ACPI_MCFG_LEN);
    }

    acpi_header(buf + xsdt, "XSDT", 1);
    put64(buf + xsdt + ACPI_HDR_LEN, base_gpa + fadt);
    put64(buf + xsdt + ACPI_HDR_LEN + 8, base_gpa + madt);
    if (cfg->mcfg)
        put64(buf + xsdt + ACPI_HDR_LEN + 16, base_gpa + mcfg);
    acpi_table_finish(buf + xsdt, ACPI_HDR_LEN + nr * 8);

    acpi_header(buf + rsdt, "RSDT", 1);
    put32(buf + rsdt + ACPI_HDR_LEN, (uint32_t)(base_gpa + fadt));
    put32(buf + rsdt + ACPI_HDR_LEN + 4, (uint32_t)(base_gpa + madt));
    if (cfg->mcfg)
        put32(buf + rsdt + ACPI_HDR_LEN + 8, (uint32_t)(base_gpa + mcfg));
    acpi_table_finish(buf + rsdt, ACPI_HDR_LEN + nr * 4);

    /* RSDP (§5.2.5.3): the first checksum covers the ACPI 1.0 part (20
     * bytes), the extended one all 36. */
    uint8_t *r = buf + rsdp;
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + 9, ACPI_OEM_ID, 6);
    r[15] = 2;
    put32(r + 16, (uint32_t)(base_gpa + rsdt));
    put32(r + 20, ACPI_RSDP_LEN);
    put64(r + 24, base_gpa + xsdt);
    r[8] = acpi_checksum(r, ACPI_RSDP_V1_LEN);
    r[32] = acpi_checksum(r, ACPI_RSDP_LEN);

    return (long)b.len;
}

int acpi_install(struct gm *gm, const struct acpi_config *cfg, uint64_t *rsdp)
{
    uint8_t *blob = calloc(1, ACPI_TABLES_MAX);
    long len;
    int err;

    if (!blob)
        return -ENOMEM;
    len = acpi_build(cfg, ACPI_TABLES_GPA, blob, ACPI_TABLES_MAX);
    if (len < 0) {
        free(blob);
        return (int)len;
    }
    err = gm_write(gm, ACPI_TABLES_GPA, blob, (size_t)len);
    free(blob);
    if (err) {
        log_err("acpi", "cannot write %ld bytes of ACPI tables at 0x%x: not RAM",
                len, ACPI_TABLES_GPA);
        return err;
    }
    *rsdp = ACPI_TABLES_GPA;
    return 0;
}
