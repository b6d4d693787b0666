/* The table-loader script and relocatable ACPI files (boot/acpi_loader.h),
 * checked by running the script the way firmware does. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "boot/acpi.h"
#include "boot/acpi_loader.h"

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

static uint8_t sum8(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    while (n--)
        s = (uint8_t)(s + *p++);
    return s;
}

Test(acpi_loader, command_layout)
{
    struct acpi_loader l;
    acpi_loader_init(&l);
    acpi_loader_allocate(&l, "etc/acpi/rsdp", 16, ACPI_LOADER_ZONE_FSEG);
    acpi_loader_add_pointer(&l, "etc/acpi/rsdp", "etc/acpi/tables", 24, 8);
    acpi_loader_add_checksum(&l, "etc/acpi/tables", 9, 0x40, 0x24);
    acpi_loader_write_pointer(&l, "etc/vmgenid_addr", "etc/vmgenid_guid", 0, 40, 8);
    cr_assert_eq(l.err, 0);
    cr_assert_eq(l.len, 4 * 128);
    const uint8_t *e = l.buf;
    cr_assert_eq(le32(e), 1);
    cr_assert_str_eq((const char *)e + 4, "etc/acpi/rsdp");
    cr_assert_eq(le32(e + 60), 16);
    cr_assert_eq(e[64], 2);
    e += 128;
    cr_assert_eq(le32(e), 2);
    cr_assert_str_eq((const char *)e + 4, "etc/acpi/rsdp");
    cr_assert_str_eq((const char *)e + 60, "etc/acpi/tables");
    cr_assert_eq(le32(e + 116), 24);
    cr_assert_eq(e[120], 8);
    for (int i = 121; i < 128; i++)
        cr_assert_eq(e[i], 0);
    e += 128;
    cr_assert_eq(le32(e), 3);
    cr_assert_eq(le32(e + 60), 9);
    cr_assert_eq(le32(e + 64), 0x40);
    cr_assert_eq(le32(e + 68), 0x24);
    e += 128;
    cr_assert_eq(le32(e), 4);
    cr_assert_eq(le32(e + 116), 0);
    cr_assert_eq(le32(e + 120), 40);
    cr_assert_eq(e[124], 8);
    acpi_loader_free(&l);
}

Test(acpi_loader, bad_commands_are_sticky_errors)
{
    struct acpi_loader l;
    acpi_loader_init(&l);
    acpi_loader_add_pointer(&l, "a", "b", 0, 3);
    cr_assert_eq(l.err, -EINVAL);
    acpi_loader_allocate(&l, "ok", 16, 1);
    cr_assert_eq(l.err, -EINVAL, "first error kept");
    acpi_loader_free(&l);
    acpi_loader_init(&l);
    char name[80];
    memset(name, 'x', 79);
    name[79] = 0;
    acpi_loader_allocate(&l, name, 16, 1);
    cr_assert_eq(l.err, -EINVAL);
    acpi_loader_free(&l);
    acpi_loader_init(&l);
    acpi_loader_allocate(&l, "f", 24, 1);
    cr_assert_eq(l.err, -EINVAL, "alignment must be a power of two");
    acpi_loader_free(&l);
}

Test(acpi_loader, mcfg_layout)
{
    uint8_t t[ACPI_MCFG_LEN];
    cr_assert_eq(acpi_mcfg_build(t, 0xB0000000ULL, 0, 255), 60);
    cr_assert_eq(memcmp(t, "MCFG", 4), 0);
    cr_assert_eq(le32(t + 4), 60);
    cr_assert_eq(le64(t + 44), 0xB0000000ULL);
    cr_assert_eq(t[52] | t[53] << 8, 0, "segment 0");
    cr_assert_eq(t[54], 0);
    cr_assert_eq(t[55], 255);
}

/* A minimal firmware: place each allocated file, apply pointers, compute
 * checksums, in script order. */
struct placed { const char *name; uint8_t *data; size_t len; uint64_t addr; };

static struct placed *find(struct placed *p, unsigned n, const char *name)
{
    for (unsigned i = 0; i < n; i++)
        if (strcmp(p[i].name, name) == 0)
            return &p[i];
    cr_assert_fail("script names unknown file %s", name);
    return NULL;
}

static void run_script(const uint8_t *s, size_t len, struct placed *files, unsigned n)
{
    cr_assert_eq(len % 128, 0);
    for (size_t off = 0; off < len; off += 128) {
        const uint8_t *e = s + off;
        switch (le32(e)) {
        case ACPI_LOADER_ALLOCATE: {
            struct placed *f = find(files, n, (const char *)e + 4);
            cr_assert_eq(f->addr % le32(e + 60), 0, "alignment honoured by the test layout");
            break;
        }
        case ACPI_LOADER_ADD_POINTER: {
            struct placed *dst = find(files, n, (const char *)e + 4);
            struct placed *src = find(files, n, (const char *)e + 60);
            uint32_t at = le32(e + 116);
            uint8_t size = e[120];
            cr_assert_leq(at + size, dst->len);
            uint64_t v = 0;
            memcpy(&v, dst->data + at, size);
            cr_assert_lt(v, src->len, "pointer is an offset inside the pointee");
            v += src->addr;
            memcpy(dst->data + at, &v, size);
            break;
        }
        case ACPI_LOADER_ADD_CHECKSUM: {
            struct placed *f = find(files, n, (const char *)e + 4);
            uint32_t res = le32(e + 60), start = le32(e + 64), l = le32(e + 68);
            cr_assert_leq(start + l, f->len);
            cr_assert_eq(f->data[res], 0, "checksum byte starts at 0");
            f->data[res] = (uint8_t)-sum8(f->data + start, l);
            break;
        }
        default:
            cr_assert_fail("unexpected command %u", le32(e));
        }
    }
}

/* A table at guest address a in the placed tables file. */
static uint8_t *at(struct placed *tables, uint64_t a)
{
    cr_assert_geq(a, tables->addr);
    cr_assert_lt(a - tables->addr, tables->len);
    return tables->data + (a - tables->addr);
}

Test(acpi_loader, tables_relocate_and_checksum)
{
    uint32_t ids[2] = { 0, 1 };
    struct acpi_config ac = { .nr_cpus = 2, .apic_ids = ids, .ioapic_addr = 0xFEC00000,
                              .lapic_addr = 0xFEE00000, .pm_base = 0x600, .sci_gsi = 9 };
    uint8_t *blob = calloc(1, ACPI_TABLES_MAX);
    long len = acpi_build(&ac, 0, blob, ACPI_TABLES_MAX);
    cr_assert_gt(len, 0);
    uint8_t mcfg[ACPI_MCFG_LEN];
    acpi_mcfg_build(mcfg, 0xB0000000ULL, 0, 255);
    struct acpi_extra_table extra = { mcfg, sizeof(mcfg) };
    struct acpi_fwcfg_tables t;
    size_t mcfg_off;
    cr_assert_eq(acpi_fwcfg_build(blob, (size_t)len, &extra, 1, &t, &mcfg_off), 0);
    free(blob);
    cr_assert_eq(memcmp(t.tables + mcfg_off, "MCFG", 4), 0);

    struct placed files[2] = {
        { ACPI_FILE_RSDP, t.rsdp, sizeof(t.rsdp), 0xF5A10 },
        { ACPI_FILE_TABLES, t.tables, t.tables_len, 0x7F7E0000ULL },
    };
    run_script(t.loader, t.loader_len, files, 2);

    /* RSDP: both checksums, XSDT pointer relocated */
    cr_assert_eq(memcmp(t.rsdp, "RSD PTR ", 8), 0);
    cr_assert_eq(sum8(t.rsdp, 20), 0);
    cr_assert_eq(sum8(t.rsdp, 36), 0);
    uint8_t *xsdt = at(&files[1], le64(t.rsdp + 24));
    cr_assert_eq(memcmp(xsdt, "XSDT", 4), 0);
    cr_assert_eq(sum8(xsdt, le32(xsdt + 4)), 0);
    unsigned n = (le32(xsdt + 4) - 36) / 8;
    cr_assert_eq(n, 3, "FADT, MADT, MCFG");
    bool seen_mcfg = false, seen_apic = false;
    uint8_t *fadt = NULL;
    for (unsigned i = 0; i < n; i++) {
        uint8_t *tb = at(&files[1], le64(xsdt + 36 + 8 * i));
        cr_assert_eq(sum8(tb, le32(tb + 4)), 0, "table %.4s checksum", tb);
        if (!memcmp(tb, "FACP", 4))
            fadt = tb;
        seen_mcfg |= !memcmp(tb, "MCFG", 4);
        seen_apic |= !memcmp(tb, "APIC", 4);
    }
    cr_assert(seen_mcfg && seen_apic);
    cr_assert_not_null(fadt);
    uint8_t *dsdt = at(&files[1], le64(fadt + 140));
    cr_assert_eq(memcmp(dsdt, "DSDT", 4), 0);
    cr_assert_eq(sum8(dsdt, le32(dsdt + 4)), 0);
    cr_assert_eq(le32(fadt + 40), (uint32_t)le64(fadt + 140), "32- and 64-bit DSDT agree");
    uint8_t *facs = at(&files[1], le32(fadt + 36));
    cr_assert_eq(memcmp(facs, "FACS", 4), 0);
    cr_assert_eq((files[1].addr + (uint64_t)(facs - t.tables)) % 64, 0, "FACS 64-byte aligned");
    free(t.tables);
    free(t.loader);
}

Test(acpi_loader, corrupt_table_sets_refused)
{
    uint32_t ids[1] = { 0 };
    struct acpi_config ac = { .nr_cpus = 1, .apic_ids = ids, .ioapic_addr = 0xFEC00000,
                              .lapic_addr = 0xFEE00000, .pm_base = 0x600, .sci_gsi = 9 };
    uint8_t *blob = calloc(1, ACPI_TABLES_MAX);
    long len = acpi_build(&ac, 0, blob, ACPI_TABLES_MAX);
    struct acpi_fwcfg_tables t;
    /* XSDT pointer past the blob */
    uint8_t *b2 = malloc((size_t)len);
    memcpy(b2, blob, (size_t)len);
    b2[24 + 4] = 0x10;
    cr_assert_eq(acpi_fwcfg_build(b2, (size_t)len, NULL, 0, &t, NULL), -EINVAL);
    /* a table length past the blob */
    memcpy(b2, blob, (size_t)len);
    uint64_t x = le64(b2 + 24);
    b2[x + 6] = 0x7F;
    cr_assert_eq(acpi_fwcfg_build(b2, (size_t)len, NULL, 0, &t, NULL), -EINVAL);
    /* truncated */
    cr_assert_eq(acpi_fwcfg_build(blob, 30, NULL, 0, &t, NULL), -EINVAL);
    /* an extra table whose header lies about its length */
    uint8_t mcfg[ACPI_MCFG_LEN];
    acpi_mcfg_build(mcfg, 0, 0, 255);
    struct acpi_extra_table extra = { mcfg, 40 };
    cr_assert_eq(acpi_fwcfg_build(blob, (size_t)len, &extra, 1, &t, NULL), -EINVAL);
    free(b2);
    free(blob);
}
