/* The fw_cfg table-loader writer and the relocatable ACPI files
 * (boot/acpi_loader.h). */
#include "boot/acpi_loader.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

#define ACPI_HDR_LEN      36
#define ACPI_RSDP_LEN     36
#define ACPI_FACS_MIN     64
#define ACPI_MAX_TABLES   64
#define TABLE_ALIGN       16

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

/* ---- command script ----------------------------------------------------- */

void acpi_loader_init(struct acpi_loader *l)
{
    memset(l, 0, sizeof(*l));
}

void acpi_loader_free(struct acpi_loader *l)
{
    free(l->buf);
    memset(l, 0, sizeof(*l));
}

static uint8_t *acpi_loader_entry(struct acpi_loader *l, uint32_t type)
{
    if (l->err)
        return NULL;
    if (l->len + ACPI_LOADER_ENTRY_SIZE > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32 * ACPI_LOADER_ENTRY_SIZE;
        uint8_t *n = realloc(l->buf, cap);
        if (!n) {
            l->err = -ENOMEM;
            return NULL;
        }
        l->buf = n;
        l->cap = cap;
    }
    uint8_t *e = l->buf + l->len;
    memset(e, 0, ACPI_LOADER_ENTRY_SIZE);
    put32(e, type);
    l->len += ACPI_LOADER_ENTRY_SIZE;
    return e;
}

static bool acpi_loader_name(struct acpi_loader *l, uint8_t *dst, const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n >= ACPI_LOADER_FNAME) {
        l->err = -EINVAL;
        return false;
    }
    memcpy(dst, name, n);
    return true;
}

static bool pointer_size_ok(uint8_t size)
{
    return size == 1 || size == 2 || size == 4 || size == 8;
}

void acpi_loader_allocate(struct acpi_loader *l, const char *file, uint32_t align, uint8_t zone)
{
    if (!l->err && (align == 0 || (align & (align - 1)) ||
                    (zone != ACPI_LOADER_ZONE_HIGH && zone != ACPI_LOADER_ZONE_FSEG)))
        l->err = -EINVAL;
    uint8_t *e = acpi_loader_entry(l, ACPI_LOADER_ALLOCATE);
    if (!e || !acpi_loader_name(l, e + 4, file))
        return;
    put32(e + 4 + ACPI_LOADER_FNAME, align);
    e[4 + ACPI_LOADER_FNAME + 4] = zone;
}

void acpi_loader_add_pointer(struct acpi_loader *l, const char *dst, const char *src,
                             uint32_t offset, uint8_t size)
{
    if (!l->err && !pointer_size_ok(size))
        l->err = -EINVAL;
    uint8_t *e = acpi_loader_entry(l, ACPI_LOADER_ADD_POINTER);
    if (!e || !acpi_loader_name(l, e + 4, dst) ||
        !acpi_loader_name(l, e + 4 + ACPI_LOADER_FNAME, src))
        return;
    put32(e + 4 + 2 * ACPI_LOADER_FNAME, offset);
    e[4 + 2 * ACPI_LOADER_FNAME + 4] = size;
}

void acpi_loader_add_checksum(struct acpi_loader *l, const char *file, uint32_t result_offset,
                              uint32_t start, uint32_t length)
{
    uint8_t *e = acpi_loader_entry(l, ACPI_LOADER_ADD_CHECKSUM);
    if (!e || !acpi_loader_name(l, e + 4, file))
        return;
    put32(e + 4 + ACPI_LOADER_FNAME, result_offset);
    put32(e + 4 + ACPI_LOADER_FNAME + 4, start);
    put32(e + 4 + ACPI_LOADER_FNAME + 8, length);
}

void acpi_loader_write_pointer(struct acpi_loader *l, const char *dst, const char *src,
                               uint32_t dst_offset, uint32_t src_offset, uint8_t size)
{
    if (!l->err && !pointer_size_ok(size))
        l->err = -EINVAL;
    uint8_t *e = acpi_loader_entry(l, ACPI_LOADER_WRITE_POINTER);
    if (!e || !acpi_loader_name(l, e + 4, dst) ||
        !acpi_loader_name(l, e + 4 + ACPI_LOADER_FNAME, src))
        return;
    put32(e + 4 + 2 * ACPI_LOADER_FNAME, dst_offset);
    put32(e + 4 + 2 * ACPI_LOADER_FNAME + 4, src_offset);
    e[4 + 2 * ACPI_LOADER_FNAME + 8] = size;
}

/* ---- MCFG ------------------------------------------------------------------ */

size_t acpi_mcfg_build(uint8_t *buf, uint64_t ecam_base, uint8_t start_bus, uint8_t end_bus)
{
    memset(buf, 0, ACPI_MCFG_LEN);
    memcpy(buf, "MCFG", 4);
    put32(buf + 4, ACPI_MCFG_LEN);
    buf[8] = 1;                                 /* revision */
    memcpy(buf + 10, "MINVMM", 6);
    memcpy(buf + 16, "MINIVMM ", 8);
    put32(buf + 24, 1);
    memcpy(buf + 28, "MVMM", 4);
    put32(buf + 32, 1);
    /* +36: 8 reserved bytes; +44: one configuration space base address
     * allocation structure (PCI Firmware 3.2 Table 4-3) */
    put64(buf + ACPI_MCFG_BASE_OFF, ecam_base);
    put16(buf + 52, 0);                         /* PCI segment group */
    buf[54] = start_bus;
    buf[55] = end_bus;
    return ACPI_MCFG_LEN;
}

/* ---- relocatable table files -------------------------------------------- */

/* A table inside the input blob at off: header fits, length sane. */
static bool table_at(const uint8_t *blob, size_t blob_len, uint64_t off, uint32_t *len)
{
    if (off >= blob_len || blob_len - off < ACPI_HDR_LEN)
        return false;
    uint32_t l = get32(blob + off + 4);
    if (l < ACPI_HDR_LEN || l > blob_len - off)
        return false;
    *len = l;
    return true;
}

struct out_blob {
    uint8_t *buf;
    size_t len, cap;
};

static long out_append(struct out_blob *o, const void *data, size_t len, size_t align)
{
    size_t at = (o->len + align - 1) & ~(align - 1);
    if (at + len > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < at + len)
            cap *= 2;
        uint8_t *n = realloc(o->buf, cap);
        if (!n)
            return -ENOMEM;
        o->buf = n;
        o->cap = cap;
    }
    memset(o->buf + o->len, 0, at - o->len);
    memcpy(o->buf + at, data, len);
    o->len = at + len;
    return (long)at;
}

int acpi_fwcfg_build(const uint8_t *blob, size_t blob_len, const struct acpi_extra_table *extra,
                     unsigned nr_extra, struct acpi_fwcfg_tables *out, size_t *extra_off)
{
    struct out_blob o = { 0 };
    struct acpi_loader l;
    uint64_t rsdp = blob_len, xsdt, fadt = 0, facs = 0, dsdt = 0;
    uint64_t others[ACPI_MAX_TABLES];
    long pos[ACPI_MAX_TABLES];
    unsigned nr_others = 0, nr_entries;
    uint32_t xsdt_len, fadt_len, dsdt_len, tlen;
    long facs_at = -1, dsdt_at = -1, fadt_at, xsdt_at;
    int err = -EINVAL;

    memset(out, 0, sizeof(*out));
    acpi_loader_init(&l);
    for (size_t off = 0; off + ACPI_RSDP_LEN <= blob_len; off += 16) {
        if (memcmp(blob + off, "RSD PTR ", 8) == 0) {
            rsdp = off;
            break;
        }
    }
    if (rsdp == blob_len || blob[rsdp + 15] < 2)
        goto bad;
    xsdt = get64(blob + rsdp + 24);
    if (!table_at(blob, blob_len, xsdt, &xsdt_len) || memcmp(blob + xsdt, "XSDT", 4))
        goto bad;
    nr_entries = (xsdt_len - ACPI_HDR_LEN) / 8;
    if (nr_entries + nr_extra > ACPI_MAX_TABLES)
        goto bad;
    for (unsigned i = 0; i < nr_entries; i++) {
        uint64_t t = get64(blob + xsdt + ACPI_HDR_LEN + 8 * i);
        if (!table_at(blob, blob_len, t, &tlen))
            goto bad;
        if (memcmp(blob + t, "FACP", 4) == 0 && !fadt)
            fadt = t;
        else
            others[nr_others++] = t;
    }
    if (!fadt || !table_at(blob, blob_len, fadt, &fadt_len) || fadt_len < 148)
        goto bad;
    facs = get64(blob + fadt + 132) ? get64(blob + fadt + 132) : get32(blob + fadt + 36);
    dsdt = get64(blob + fadt + 140) ? get64(blob + fadt + 140) : get32(blob + fadt + 40);
    if (!table_at(blob, blob_len, dsdt, &dsdt_len) || memcmp(blob + dsdt, "DSDT", 4))
        goto bad;
    if (facs) {
        uint32_t facs_len;
        if (facs >= blob_len || blob_len - facs < ACPI_FACS_MIN ||
            memcmp(blob + facs, "FACS", 4) || (facs_len = get32(blob + facs + 4)) < ACPI_FACS_MIN ||
            facs_len > blob_len - facs)
            goto bad;
        facs_at = out_append(&o, blob + facs, facs_len, 64);
    }
    dsdt_at = out_append(&o, blob + dsdt, dsdt_len, TABLE_ALIGN);
    fadt_at = out_append(&o, blob + fadt, fadt_len, TABLE_ALIGN);
    if (facs_at < -1 || dsdt_at < 0 || fadt_at < 0) {
        err = -ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < nr_others; i++) {
        table_at(blob, blob_len, others[i], &tlen);
        pos[i] = out_append(&o, blob + others[i], tlen, TABLE_ALIGN);
        if (pos[i] < 0) {
            err = -ENOMEM;
            goto fail;
        }
    }
    for (unsigned i = 0; i < nr_extra; i++) {
        if (extra[i].len < ACPI_HDR_LEN || get32(extra[i].data + 4) != extra[i].len)
            goto bad;
        pos[nr_others + i] = out_append(&o, extra[i].data, extra[i].len, TABLE_ALIGN);
        if (pos[nr_others + i] < 0) {
            err = -ENOMEM;
            goto fail;
        }
        if (extra_off)
            extra_off[i] = (size_t)pos[nr_others + i];
    }
    /* the new XSDT: FADT, the others, the extras */
    uint32_t nx = 1 + nr_others + nr_extra;
    uint8_t xhdr[ACPI_HDR_LEN + 8 * ACPI_MAX_TABLES + 8];
    memcpy(xhdr, blob + xsdt, ACPI_HDR_LEN);
    put32(xhdr + 4, ACPI_HDR_LEN + 8 * nx);
    put64(xhdr + ACPI_HDR_LEN, (uint64_t)fadt_at);
    for (unsigned i = 0; i < nr_others + nr_extra; i++)
        put64(xhdr + ACPI_HDR_LEN + 8 * (i + 1), (uint64_t)pos[i]);
    xsdt_at = out_append(&o, xhdr, ACPI_HDR_LEN + 8 * nx, TABLE_ALIGN);
    if (xsdt_at < 0) {
        err = -ENOMEM;
        goto fail;
    }

    /* FADT's pointers become offsets into the tables file */
    uint8_t *f = o.buf + fadt_at;
    bool facs32 = get32(f + 36) != 0, facs64 = get64(f + 132) != 0;
    bool dsdt32 = get32(f + 40) != 0, dsdt64 = get64(f + 140) != 0;
    if (facs32)
        put32(f + 36, (uint32_t)facs_at);
    if (facs64)
        put64(f + 132, (uint64_t)facs_at);
    if (dsdt32)
        put32(f + 40, (uint32_t)dsdt_at);
    if (dsdt64)
        put64(f + 140, (uint64_t)dsdt_at);

    /* RSDP: XSDT only */
    memcpy(out->rsdp, blob + rsdp, ACPI_RSDP_LEN);
    put32(out->rsdp + 16, 0);
    put64(out->rsdp + 24, (uint64_t)xsdt_at);
    out->rsdp[8] = 0;
    out->rsdp[32] = 0;

    /* checksums are the loader's job: zero them */
    long tabs[ACPI_MAX_TABLES + 3];
    unsigned nt = 0;
    tabs[nt++] = dsdt_at;
    tabs[nt++] = fadt_at;
    for (unsigned i = 0; i < nr_others + nr_extra; i++)
        tabs[nt++] = pos[i];
    tabs[nt++] = xsdt_at;
    for (unsigned i = 0; i < nt; i++)
        o.buf[tabs[i] + 9] = 0;

    acpi_loader_allocate(&l, ACPI_FILE_RSDP, 16, ACPI_LOADER_ZONE_FSEG);
    acpi_loader_allocate(&l, ACPI_FILE_TABLES, 64, ACPI_LOADER_ZONE_HIGH);
    acpi_loader_add_pointer(&l, ACPI_FILE_RSDP, ACPI_FILE_TABLES, 24, 8);
    for (unsigned i = 0; i < nx; i++)
        acpi_loader_add_pointer(&l, ACPI_FILE_TABLES, ACPI_FILE_TABLES,
                                (uint32_t)xsdt_at + ACPI_HDR_LEN + 8 * i, 8);
    if (facs32)
        acpi_loader_add_pointer(&l, ACPI_FILE_TABLES, ACPI_FILE_TABLES, (uint32_t)fadt_at + 36, 4);
    if (dsdt32)
        acpi_loader_add_pointer(&l, ACPI_FILE_TABLES, ACPI_FILE_TABLES, (uint32_t)fadt_at + 40, 4);
    if (facs64)
        acpi_loader_add_pointer(&l, ACPI_FILE_TABLES, ACPI_FILE_TABLES, (uint32_t)fadt_at + 132, 8);
    if (dsdt64)
        acpi_loader_add_pointer(&l, ACPI_FILE_TABLES, ACPI_FILE_TABLES, (uint32_t)fadt_at + 140, 8);
    for (unsigned i = 0; i < nt; i++)
        acpi_loader_add_checksum(&l, ACPI_FILE_TABLES, (uint32_t)tabs[i] + 9, (uint32_t)tabs[i],
                                 get32(o.buf + tabs[i] + 4));
    acpi_loader_add_checksum(&l, ACPI_FILE_RSDP, 8, 0, 20);
    acpi_loader_add_checksum(&l, ACPI_FILE_RSDP, 32, 0, ACPI_RSDP_LEN);
    if (l.err) {
        err = l.err;
        goto fail;
    }
    out->tables = o.buf;
    out->tables_len = o.len;
    out->loader = l.buf;
    out->loader_len = l.len;
    return 0;
bad:
    log_err("acpi", "the ACPI table set cannot be made relocatable: not an RSDP -> XSDT -> "
            "FADT -> DSDT chain with sane lengths");
fail:
    free(o.buf);
    acpi_loader_free(&l);
    return err;
}
