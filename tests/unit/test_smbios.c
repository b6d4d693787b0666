/* SMBIOS structures and entry point (boot/smbios.h), read back the way a
 * consumer (Linux's dmi_scan, dmidecode, OVMF's SmbiosPlatformDxe) reads
 * them. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "boot/fw_cfg_tables.h"
#include "boot/smbios.h"
#include "devices/chipset/fw_cfg.h"
#include "fake_env.h"
#include "vmm/gm.h"

#define MAX_STRUCTS 300
#define MAX_STRINGS 8

struct sm {
    const uint8_t *p;           /* formatted area */
    uint8_t type, len;
    uint16_t handle;
    const char *str[MAX_STRINGS];
    unsigned nr_str;
    size_t size;                /* formatted area + strings + terminator */
};

static uint16_t g16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t g32(const uint8_t *p) { return g16(p) | (uint32_t)g16(p + 2) << 16; }
static uint64_t g64(const uint8_t *p) { return g32(p) | (uint64_t)g32(p + 4) << 32; }

/* Walk the structures as a consumer does (DSP0134 §6.1): header, formatted
 * area of the stated length, then strings up to a double NUL; stop after
 * type 127. Every step is bounds-checked against len; the whole buffer
 * must be consumed exactly. */
static unsigned walk(const uint8_t *t, size_t len, struct sm *out)
{
    size_t off = 0;
    unsigned n = 0;

    for (;;) {
        cr_assert_lt(n, MAX_STRUCTS);
        cr_assert_leq(off + 4, len, "header of structure %u inside the table", n);
        struct sm *s = &out[n];
        memset(s, 0, sizeof(*s));
        s->p = t + off;
        s->type = t[off];
        s->len = t[off + 1];
        s->handle = g16(t + off + 2);
        cr_assert_geq(s->len, 4);
        cr_assert_leq(off + s->len + 2, len, "type %u: formatted area and terminator inside",
                      s->type);
        size_t q = off + s->len;
        if (t[q] == 0) {
            cr_assert_eq(t[q + 1], 0, "type %u: no strings means exactly two NULs", s->type);
            q += 2;
        } else {
            while (t[q] != 0) {
                const char *str = (const char *)t + q;
                size_t sl = strnlen(str, len - q);
                cr_assert_lt(q + sl, len, "type %u: string not terminated", s->type);
                cr_assert_lt(s->nr_str, MAX_STRINGS);
                s->str[s->nr_str++] = str;
                q += sl + 1;
                cr_assert_lt(q, len, "type %u: no final NUL after the strings", s->type);
            }
            q++;    /* the set's terminating NUL */
        }
        s->size = q - off;
        off = q;
        n++;
        if (s->type == 127)
            break;
    }
    cr_assert_eq(off, len, "type 127 ends the table exactly");
    return n;
}

static const char *sm_string(const struct sm *s, unsigned field_off)
{
    uint8_t i = s->p[field_off];
    if (i == 0)
        return NULL;
    cr_assert_leq(i, s->nr_str, "type %u: string field 0x%x = %u, only %u strings", s->type,
                  field_off, i, s->nr_str);
    return s->str[i - 1];
}

static const struct sm *find(const struct sm *v, unsigned n, uint8_t type, unsigned nth)
{
    for (unsigned i = 0; i < n; i++)
        if (v[i].type == type && nth-- == 0)
            return &v[i];
    return NULL;
}

static unsigned count(const struct sm *v, unsigned n, uint8_t type)
{
    unsigned c = 0;
    for (unsigned i = 0; i < n; i++)
        c += v[i].type == type;
    return c;
}

/* A machine description without mapping RAM: only the layout matters. */
static void layout(struct gm *g, uint64_t size)
{
    memset(g, 0, sizeof(*g));
    cr_assert_eq(gm_layout(size, g->regions, &g->nr_regions), 0);
    g->size = size;
}

static const uint8_t test_uuid[16] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef,
                                       0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };

static void config(struct smbios_config *c, const struct gm *g, unsigned sockets,
                   unsigned cores, unsigned threads, bool bios)
{
    *c = (struct smbios_config){ .gm = g, .sockets = sockets, .cores = cores,
                                 .threads = threads, .bios = bios,
                                 .cpu_signature = 0x000A0F11, .cpu_features = 0x178BFBFF };
    memcpy(c->uuid, test_uuid, 16);
    strcpy(c->cpu_vendor, "AuthenticAMD");
    strcpy(c->cpu_brand, "AMD EPYC 7713 64-Core Processor");
}

static uint8_t buf[SMBIOS_TABLES_MAX];
static struct sm st[MAX_STRUCTS];

Test(smbios, formatted_lengths_per_type)
{
    struct gm g;
    struct smbios_config c;
    layout(&g, 4ULL << 30);
    config(&c, &g, 2, 4, 2, true);
    long len = smbios_build_tables(&c, buf, sizeof(buf));
    cr_assert_gt(len, 0);
    unsigned n = walk(buf, (size_t)len, st);
    static const struct { uint8_t type, len; } want[] = {
        { 0, 0x18 }, { 1, 0x1B }, { 3, 0x16 }, { 4, 0x30 }, { 16, 0x17 }, { 17, 0x28 },
        { 19, 0x1F }, { 32, 0x0B }, { 127, 0x04 },
    };
    for (unsigned i = 0; i < n; i++) {
        bool known = false;
        for (unsigned k = 0; k < sizeof(want) / sizeof(want[0]); k++)
            if (want[k].type == st[i].type) {
                cr_assert_eq(st[i].len, want[k].len, "type %u length 0x%x, SMBIOS 3.0 says 0x%x",
                             st[i].type, st[i].len, want[k].len);
                known = true;
            }
        cr_assert(known, "unexpected type %u", st[i].type);
    }
    cr_assert_eq(count(st, n, 0), 1);
    cr_assert_eq(count(st, n, 1), 1);
    cr_assert_eq(count(st, n, 3), 1);
    cr_assert_eq(count(st, n, 4), 2, "one per socket");
    cr_assert_eq(count(st, n, 16), 1);
    cr_assert_eq(count(st, n, 17), 1);
    cr_assert_eq(count(st, n, 19), 2, "low and high RAM");
    cr_assert_eq(count(st, n, 32), 1);
    cr_assert_eq(st[n - 1].type, 127, "end of table last");
}

Test(smbios, string_sets_end_in_double_nul)
{
    struct gm g;
    struct smbios_config c;
    layout(&g, 512ULL << 20);
    config(&c, &g, 1, 1, 1, true);
    long len = smbios_build_tables(&c, buf, sizeof(buf));
    unsigned n = walk(buf, (size_t)len, st);
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *end = st[i].p + st[i].size;
        cr_assert_eq(end[-1], 0);
        cr_assert_eq(end[-2], 0, "type %u: the string set ends in a double NUL", st[i].type);
        if (st[i].nr_str == 0)
            cr_assert_eq(st[i].size, st[i].len + 2u, "type %u: no strings, two NULs", st[i].type);
        for (unsigned k = 0; k < st[i].nr_str; k++)
            cr_assert_gt(strlen(st[i].str[k]), 0, "no empty strings (0 means none)");
    }
    /* no strings at all: 32 and 127 */
    cr_assert_eq(find(st, n, 32, 0)->nr_str, 0);
    cr_assert_eq(find(st, n, 127, 0)->nr_str, 0);
    /* every string field points inside its set */
    const struct sm *t0 = find(st, n, 0, 0);
    cr_assert_str_eq(sm_string(t0, 0x04), SMBIOS_MANUFACTURER);
    cr_assert_str_eq(sm_string(t0, 0x05), SMBIOS_BIOS_VERSION);
    cr_assert_str_eq(sm_string(t0, 0x08), SMBIOS_BIOS_DATE);
    const struct sm *t3 = find(st, n, 3, 0);
    cr_assert_str_eq(sm_string(t3, 0x04), SMBIOS_MANUFACTURER);
    cr_assert_null(sm_string(t3, 0x06), "no version string");
    const struct sm *t17 = find(st, n, 17, 0);
    cr_assert_str_eq(sm_string(t17, 0x10), "DIMM 0");
    cr_assert_null(sm_string(t17, 0x11), "no bank locator");
}

Test(smbios, handles_unique_and_references_resolve)
{
    struct gm g;
    struct smbios_config c;
    layout(&g, 8ULL << 30);
    config(&c, &g, 64, 1, 1, true);
    long len = smbios_build_tables(&c, buf, sizeof(buf));
    cr_assert_gt(len, 0);
    unsigned n = walk(buf, (size_t)len, st);
    cr_assert_eq(count(st, n, 4), 64);
    for (unsigned i = 0; i < n; i++) {
        cr_assert_lt(st[i].handle, 0xFF00, "0xFF00-0xFFFF are reserved");
        for (unsigned k = i + 1; k < n; k++)
            cr_assert_neq(st[i].handle, st[k].handle, "types %u and %u share handle 0x%x",
                          st[i].type, st[k].type, st[i].handle);
    }
    uint16_t array = find(st, n, 16, 0)->handle;
    cr_assert_eq(g16(find(st, n, 17, 0)->p + 0x04), array, "type 17 -> its array");
    cr_assert_eq(g16(find(st, n, 19, 0)->p + 0x0C), array, "type 19 -> its array");
    cr_assert_eq(g16(find(st, n, 19, 1)->p + 0x0C), array);
    cr_assert_eq(g16(find(st, n, 16, 0)->p + 0x0D), count(st, n, 17), "number of devices");
}

Test(smbios, entry_point_checksum_length_and_address)
{
    uint8_t ep[SMBIOS_EP_LEN];
    smbios_entry_point(ep, 0x1234, 0x00000001F00000A0ULL);
    cr_assert_eq(memcmp(ep, "_SM3_", 5), 0);
    uint8_t sum = 0;
    for (unsigned i = 0; i < ep[6]; i++)
        sum = (uint8_t)(sum + ep[i]);
    cr_assert_eq(sum, 0, "entry point bytes sum to 0");
    cr_assert_eq(ep[6], 0x18, "entry point length");
    cr_assert_eq(ep[7], 3, "major");
    cr_assert_eq(ep[8], 0, "minor");
    cr_assert_eq(ep[0x0A], 1, "entry point revision 3.0");
    cr_assert_eq(g32(ep + 0x0C), 0x1234, "structure table maximum size");
    cr_assert_eq(g64(ep + 0x10), 0x00000001F00000A0ULL, "structure table address");
    /* a different length changes the checksum byte, still summing to 0 */
    uint8_t ep2[SMBIOS_EP_LEN];
    smbios_entry_point(ep2, 0x1235, 0x00000001F00000A0ULL);
    cr_assert_neq(ep2[5], ep[5]);
}

/* 6 GiB: q35 puts 2 GiB at 0 and 4 GiB from 4 GiB (vmm/gm.h). */
Test(smbios, type19_ranges_follow_the_split_layout)
{
    struct gm g;
    struct smbios_config c;
    layout(&g, 6ULL << 30);
    cr_assert_eq(g.nr_regions, 2);
    config(&c, &g, 1, 2, 1, false);
    long len = smbios_build_tables(&c, buf, sizeof(buf));
    unsigned n = walk(buf, (size_t)len, st);
    cr_assert_eq(count(st, n, 19), g.nr_regions);
    for (unsigned i = 0; i < g.nr_regions; i++) {
        const uint8_t *p = find(st, n, 19, i)->p;
        uint64_t start = (uint64_t)g32(p + 0x04) << 10;
        uint64_t end = ((uint64_t)g32(p + 0x08) + 1) << 10;    /* inclusive KiB -> exclusive */
        cr_assert_eq(start, g.regions[i].gpa, "range %u start", i);
        cr_assert_eq(end, g.regions[i].gpa + g.regions[i].size, "range %u end", i);
        cr_assert_eq(p[0x0E], 1, "partition width: the one device");
    }
    cr_assert_eq(g32(find(st, n, 19, 0)->p + 0x04), 0);
    cr_assert_eq(g32(find(st, n, 19, 0)->p + 0x08), (2u << 20) - 1, "[0, 2 GiB)");
    cr_assert_eq(g32(find(st, n, 19, 1)->p + 0x04), 4u << 20, "from 4 GiB");
    cr_assert_eq(g32(find(st, n, 19, 1)->p + 0x08), (8u << 20) - 1, "to 8 GiB");
    cr_assert_eq(g32(find(st, n, 16, 0)->p + 0x07), 6u << 20, "capacity 6 GiB in KiB");
    cr_assert_eq(g16(find(st, n, 17, 0)->p + 0x0C), 6144, "size in MiB");
    cr_assert_null(find(st, n, 0, 0), "firmware boot: type 0 is OVMF's");
}

/* Past the 16/32-bit fields: 17 takes the extended size from 32 GiB - 1
 * MiB, 19 the byte addresses from 4 TiB, 16 the byte capacity from 2 TiB. */
Test(smbios, large_memory_uses_the_extended_fields)
{
    struct gm g;
    struct smbios_config c;
    layout(&g, 6ULL << 40);
    config(&c, &g, 1, 1, 1, false);
    long len = smbios_build_tables(&c, buf, sizeof(buf));
    unsigned n = walk(buf, (size_t)len, st);
    const uint8_t *t16 = find(st, n, 16, 0)->p, *t17 = find(st, n, 17, 0)->p;
    cr_assert_eq(g32(t16 + 0x07), 0x80000000u);
    cr_assert_eq(g64(t16 + 0x0F), 6ULL << 40);
    cr_assert_eq(g16(t17 + 0x0C), 0x7FFF);
    cr_assert_eq(g32(t17 + 0x1C), 6u << 20, "extended size in MiB");
    const uint8_t *hi = find(st, n, 19, 1)->p;
    cr_assert_eq(g32(hi + 0x04), 0xFFFFFFFFu);
    cr_assert_eq(g32(hi + 0x08), 0xFFFFFFFFu);
    cr_assert_eq(g64(hi + 0x0F), 4ULL << 30);
    cr_assert_eq(g64(hi + 0x17), (4ULL << 30) + (6ULL << 40) - (2ULL << 30) - 1,
                 "inclusive end in bytes");
    const uint8_t *lo = find(st, n, 19, 0)->p;
    cr_assert_eq(g32(lo + 0x08), (2u << 20) - 1, "low RAM still in the KiB fields");
}

/* What Linux's dmi_decode and dmidecode take from the tables. */
Test(smbios, parse_back_as_a_consumer)
{
    struct gm g;
    struct smbios_config c;
    layout(&g, 1ULL << 30);
    config(&c, &g, 2, 2, 2, true);
    long len = smbios_build_tables(&c, buf, sizeof(buf));
    unsigned n = walk(buf, (size_t)len, st);

    const struct sm *t1 = find(st, n, 1, 0);
    cr_assert_str_eq(sm_string(t1, 0x04), "minivmm", "sys_vendor");
    cr_assert_str_eq(sm_string(t1, 0x05), "minivmm", "product_name");
    /* UUID: first three fields little-endian (§7.2.1) */
    uint8_t u[16];
    const uint8_t *f = t1->p + 0x08;
    u[0] = f[3]; u[1] = f[2]; u[2] = f[1]; u[3] = f[0];
    u[4] = f[5]; u[5] = f[4]; u[6] = f[7]; u[7] = f[6];
    memcpy(u + 8, f + 8, 8);
    cr_assert_eq(memcmp(u, test_uuid, 16), 0, "UUID reads back as given");

    for (unsigned s = 0; s < 2; s++) {
        const struct sm *t4 = find(st, n, 4, s);
        char want[8];
        snprintf(want, sizeof(want), "CPU %u", s);
        cr_assert_str_eq(sm_string(t4, 0x04), want);
        cr_assert_str_eq(sm_string(t4, 0x07), "AuthenticAMD");
        cr_assert_str_eq(sm_string(t4, 0x10), "AMD EPYC 7713 64-Core Processor");
        cr_assert_eq(g32(t4->p + 0x08), 0x000A0F11, "processor ID: CPUID.1 EAX");
        cr_assert_eq(g32(t4->p + 0x0C), 0x178BFBFF, "then EDX");
        cr_assert_eq(t4->p[0x18], 0x41, "populated, enabled");
        cr_assert_eq(t4->p[0x23], 2, "cores");
        cr_assert_eq(t4->p[0x24], 2, "cores enabled");
        cr_assert_eq(t4->p[0x25], 4, "threads");
        cr_assert_eq(g16(t4->p + 0x2A), 2);
        cr_assert_eq(g16(t4->p + 0x2E), 4);
        cr_assert_eq(g16(t4->p + 0x26) & 0x1C, 0x1C, "64-bit, multi-core, hardware threads");
    }
    const struct sm *t0 = find(st, n, 0, 0);
    cr_assert_eq(t0, &st[0], "type 0 first");
    cr_assert_eq(t0->p[0x13] & 0x10, 0x10, "describes a virtual machine");
    cr_assert_eq(find(st, n, 32, 0)->p[0x0A], 0, "boot status: no errors");
    cr_assert_eq(g16(find(st, n, 17, 0)->p + 0x0C), 1024);
}

Test(smbios, bad_config_and_no_room)
{
    struct gm g;
    struct smbios_config c;
    layout(&g, 1ULL << 30);
    config(&c, &g, 1, 1, 1, true);
    long len = smbios_build_tables(&c, buf, sizeof(buf));
    cr_assert_gt(len, 0);
    for (size_t cap = 0; cap < (size_t)len; cap += 7)
        cr_assert_eq(smbios_build_tables(&c, buf, cap), -ENOSPC, "cap %zu", cap);
    cr_assert_eq(smbios_build_tables(&c, buf, (size_t)len - 1), -ENOSPC);
    cr_assert_eq(smbios_build_tables(&c, buf, (size_t)len), len, "exactly enough");
    c.sockets = 0;
    cr_assert_eq(smbios_build_tables(&c, buf, sizeof(buf)), -EINVAL);
    c.sockets = 1;
    c.gm = NULL;
    cr_assert_eq(smbios_build_tables(&c, buf, sizeof(buf)), -EINVAL);
}

/* Direct boot: Linux (no EFI) scans 0xF0000-0xFFFFF on 16-byte boundaries
 * for "_SM3_", checks the checksum over the entry point's length, then
 * reads the table at its address for its maximum size. */
Test(smbios, installed_where_linux_scans)
{
    struct gm g;
    struct smbios_config c;
    struct gm_config gc = { .size = 16u << 20, .lock = false };
    cr_assert_eq(gm_init(&g, &gc), 0);
    config(&c, &g, 1, 1, 1, true);
    cr_assert_eq(smbios_install(&g, &c), 0);
    const uint8_t *ep = NULL;
    for (uint64_t a = 0xF0000; a < 0x100000; a += 16) {
        const uint8_t *p = gm_ptr(&g, a, 32);
        if (p && memcmp(p, "_SM3_", 5) == 0) {
            ep = p;
            cr_assert_eq(a, SMBIOS_GPA);
            break;
        }
    }
    cr_assert_not_null(ep, "entry point found by the scan");
    uint8_t sum = 0;
    for (unsigned i = 0; i < ep[6]; i++)
        sum = (uint8_t)(sum + ep[i]);
    cr_assert_eq(sum, 0);
    uint64_t addr = g64(ep + 0x10);
    uint32_t tlen = g32(ep + 0x0C);
    cr_assert_geq(addr, SMBIOS_GPA + SMBIOS_EP_LEN, "tables after the entry point");
    cr_assert_leq(addr + tlen, 0x100000, "inside the BIOS area");
    const uint8_t *t = gm_ptr(&g, addr, tlen);
    cr_assert_not_null(t);
    unsigned n = walk(t, tlen, st);
    cr_assert_str_eq(sm_string(find(st, n, 0, 0), 0x04), "minivmm", "bios_vendor");
    cr_assert_str_eq(sm_string(find(st, n, 1, 0), 0x04), "minivmm");
    gm_fini(&g);
}

static uint8_t fw_byte(struct fake_env *f) { return inb_(f, 0x511); }

/* The fw_cfg files as OVMF reads them: the anchor's table maximum size
 * equals the tables file's size (DetectSmbiosVersionLib), the tables end
 * with type 127 (SmbiosPlatformDxe walks to it), and carry no type 0. */
Test(smbios, fw_cfg_files_as_ovmf_reads_them)
{
    struct fake_env f;
    struct fw_cfg *fc;
    struct gm g;
    struct smbios_config c;
    struct gm_config gc = { .size = 16u << 20, .lock = false };

    fake_env_init(&f);
    cr_assert_eq(gm_init(&g, &gc), 0);
    f.env.gm = &g;
    cr_assert_eq(fw_cfg_create(&f.env, &fc), 0);
    config(&c, &g, 1, 2, 1, false);
    struct fw_cfg_machine m = { .gm = &g, .nr_cpus = 2, .smbios = &c };
    cr_assert_eq(fw_cfg_add_machine(fc, &m), 0);

    /* the directory (FW_CFG_FILE_DIR, 0x19): be32 count, then be32 size,
     * be16 key, be16 reserved, name[56] per file */
    uint32_t sizes[2] = { 0, 0 };
    int keys[2] = { -1, -1 };
    const char *names[2] = { SMBIOS_FILE_ANCHOR, SMBIOS_FILE_TABLES };
    pio_out(&f, 0x510, 0x19, 2);
    uint32_t nr = 0;
    for (int i = 0; i < 4; i++)
        nr = nr << 8 | fw_byte(&f);
    for (uint32_t e = 0; e < nr; e++) {
        uint8_t ent[64];
        for (int i = 0; i < 64; i++)
            ent[i] = fw_byte(&f);
        for (int k = 0; k < 2; k++)
            if (strcmp((char *)ent + 8, names[k]) == 0) {
                sizes[k] = (uint32_t)ent[0] << 24 | ent[1] << 16 | ent[2] << 8 | ent[3];
                keys[k] = ent[4] << 8 | ent[5];
            }
    }
    cr_assert_eq(sizes[0], SMBIOS_EP_LEN, "anchor: a 3.0 entry point");
    cr_assert_gt(sizes[1], 0);
    uint8_t ep[SMBIOS_EP_LEN];
    pio_out(&f, 0x510, (uint32_t)keys[0], 2);
    for (unsigned i = 0; i < SMBIOS_EP_LEN; i++)
        ep[i] = fw_byte(&f);
    cr_assert_eq(memcmp(ep, "_SM3_", 5), 0);
    cr_assert_eq(ep[7], 3, "major version 3");
    cr_assert_eq(g32(ep + 0x0C), sizes[1], "table maximum size == tables file size");
    uint8_t *t = malloc(sizes[1]);
    pio_out(&f, 0x510, (uint32_t)keys[1], 2);
    for (uint32_t i = 0; i < sizes[1]; i++)
        t[i] = fw_byte(&f);
    unsigned n = walk(t, sizes[1], st);
    cr_assert_null(find(st, n, 0, 0), "no type 0: OVMF adds its own");
    cr_assert_str_eq(sm_string(find(st, n, 1, 0), 0x05), "minivmm");
    free(t);
    fw_cfg_destroy(fc);
    gm_fini(&g);
    fake_env_fini(&f);
}

Test(smbios, uuids)
{
    uint8_t a[16], b[16], r1[16], r2[16];
    smbios_uuid_from_name(a, "/var/lib/vm1.vars");
    smbios_uuid_from_name(b, "/var/lib/vm1.vars");
    cr_assert_eq(memcmp(a, b, 16), 0, "same name, same UUID");
    smbios_uuid_from_name(b, "/var/lib/vm2.vars");
    cr_assert_neq(memcmp(a, b, 16), 0, "another name, another UUID");
    cr_assert_eq(a[6] >> 4, 8, "version 8");
    cr_assert_eq(a[8] & 0xC0, 0x80, "variant 10");
    cr_assert_eq(smbios_uuid_random(r1), 0);
    cr_assert_eq(smbios_uuid_random(r2), 0);
    cr_assert_neq(memcmp(r1, r2, 16), 0);
    cr_assert_eq(r1[6] >> 4, 4, "version 4");
    cr_assert_eq(r1[8] & 0xC0, 0x80);
}

Test(smbios, host_cpu_strings)
{
    struct smbios_config c;
    memset(&c, 0x55, sizeof(c));
    smbios_host_cpu(&c);
    cr_assert_eq(strnlen(c.cpu_vendor, sizeof(c.cpu_vendor)), 12, "x86: a 12-byte vendor ID");
    cr_assert_lt(strnlen(c.cpu_brand, sizeof(c.cpu_brand)), sizeof(c.cpu_brand), "terminated");
    cr_assert_neq(c.cpu_brand[0], ' ', "no leading blanks");
    cr_assert_neq(c.cpu_signature, 0x55555555u);
}
