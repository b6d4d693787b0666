/* SMBIOS 3.0 structures and entry point (boot/smbios.h). Field offsets and
 * values are DSP0134 3.0's (the section of each structure named at its
 * builder). */
#include "boot/smbios.h"

#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "vmm/log.h"

#define T0_LEN   0x18
#define T1_LEN   0x1B
#define T3_LEN   0x16
#define T4_LEN   0x30
#define T16_LEN  0x17
#define T17_LEN  0x28
#define T19_LEN  0x1F
#define T32_LEN  0x0B
#define T127_LEN 0x04

#define HANDLE(type, i)      ((uint16_t)((type) << 8 | (i)))
#define HANDLE_NONE          0xFFFE      /* "not provided" (§7.17.1, §7.18.1) */
#define HANDLE_NO_CACHE      0xFFFF      /* type 4 cache handles: none (§7.5) */
#define MAX_SOCKETS          0x100       /* handles 0x0400-0x04FF */

/* A structure being written: the formatted area first (its string fields
 * filled as strings are added), then the string set. Errors stick. */
struct smbios_buf {
    uint8_t *out;
    size_t cap, len;
    unsigned nr_strings;
    int err;
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* Start a structure: its formatted area, zeroed, with the header (§6.1.2:
 * type, length of the formatted area, handle). NULL once out of room. */
static uint8_t *sb_begin(struct smbios_buf *b, uint8_t type, uint8_t len, uint16_t handle)
{
    if (b->err)
        return NULL;
    if (b->cap - b->len < len) {
        b->err = -ENOSPC;
        return NULL;
    }
    uint8_t *p = b->out + b->len;
    memset(p, 0, len);
    p[0] = type;
    p[1] = len;
    put16(p + 2, handle);
    b->len += len;
    b->nr_strings = 0;
    return p;
}

/* Add a string to the current structure's set; its number (1-based), or 0
 * for no string (NULL or empty: §6.1.3 "a string number of 0 means none"). */
static uint8_t sb_string(struct smbios_buf *b, const char *s)
{
    size_t n;

    if (b->err || !s || !*s)
        return 0;
    n = strlen(s) + 1;
    if (b->cap - b->len < n) {
        b->err = -ENOSPC;
        return 0;
    }
    memcpy(b->out + b->len, s, n);
    b->len += n;
    return (uint8_t)++b->nr_strings;
}

/* End the structure: one more NUL after the strings, or two with none. */
static void sb_end(struct smbios_buf *b)
{
    size_t n = b->nr_strings ? 1 : 2;

    if (b->err)
        return;
    if (b->cap - b->len < n) {
        b->err = -ENOSPC;
        return;
    }
    memset(b->out + b->len, 0, n);
    b->len += n;
}

/* Type 0, BIOS Information (§7.1) */
static void smbios_type0(struct smbios_buf *b)
{
    uint8_t *p = sb_begin(b, 0, T0_LEN, HANDLE(0, 0));
    if (!p)
        return;
    uint8_t vendor = sb_string(b, SMBIOS_MANUFACTURER);
    uint8_t version = sb_string(b, SMBIOS_BIOS_VERSION);
    uint8_t date = sb_string(b, SMBIOS_BIOS_DATE);
    p[0x04] = vendor;
    p[0x05] = version;
    put16(p + 0x06, 0);             /* starting segment: no BIOS image in memory */
    p[0x08] = date;
    p[0x09] = 0;                    /* ROM size: there is no ROM */
    put64(p + 0x0A, 1u << 3);       /* characteristics: bit 3 "not supported" */
    p[0x12] = 0x01;                 /* ext. byte 1: bit 0 ACPI */
    p[0x13] = 0x10;                 /* ext. byte 2: bit 4 virtual machine */
    p[0x14] = 0xFF;                 /* system BIOS major/minor release: not */
    p[0x15] = 0xFF;                 /* supported (0FFh both) */
    p[0x16] = 0xFF;                 /* embedded controller: none */
    p[0x17] = 0xFF;
    sb_end(b);
}

/* Type 1, System Information (§7.2). The UUID's first three fields are
 * little-endian in the structure (§7.2.1), the rest as printed. */
static void smbios_type1(struct smbios_buf *b, const uint8_t uuid[16])
{
    uint8_t *p = sb_begin(b, 1, T1_LEN, HANDLE(1, 0));
    if (!p)
        return;
    uint8_t manu = sb_string(b, SMBIOS_MANUFACTURER);
    uint8_t product = sb_string(b, SMBIOS_PRODUCT);
    uint8_t family = sb_string(b, SMBIOS_PRODUCT);
    p[0x04] = manu;
    p[0x05] = product;
    p[0x06] = 0;                    /* version */
    p[0x07] = 0;                    /* serial number */
    static const uint8_t order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
    for (unsigned i = 0; i < 16; i++)
        p[0x08 + i] = uuid[order[i]];
    p[0x18] = 0x06;                 /* wake-up type: power switch */
    p[0x19] = 0;                    /* SKU */
    p[0x1A] = family;
    sb_end(b);
}

/* Type 3, System Enclosure or Chassis (§7.4), no contained elements */
static void smbios_type3(struct smbios_buf *b)
{
    uint8_t *p = sb_begin(b, 3, T3_LEN, HANDLE(3, 0));
    if (!p)
        return;
    uint8_t manu = sb_string(b, SMBIOS_MANUFACTURER);
    p[0x04] = manu;
    p[0x05] = 0x01;                 /* type: other */
    p[0x09] = 0x03;                 /* boot-up state: safe */
    p[0x0A] = 0x03;                 /* power supply state: safe */
    p[0x0B] = 0x03;                 /* thermal state: safe */
    p[0x0C] = 0x03;                 /* security status: none */
    p[0x13] = 0;                    /* contained element count */
    p[0x14] = 3;                    /* contained element record length */
    p[0x15] = 0;                    /* SKU */
    sb_end(b);
}

/* Type 4, Processor Information (§7.5), socket s */
static void smbios_type4(struct smbios_buf *b, const struct smbios_config *c, unsigned s)
{
    char socket[16];
    unsigned cores = c->cores, threads = c->cores * c->threads;
    uint16_t chars = 1u << 2;       /* 64-bit capable */

    if (c->cores > 1)
        chars |= 1u << 3;           /* multi-core */
    if (c->threads > 1)
        chars |= 1u << 4;           /* hardware thread */
    snprintf(socket, sizeof(socket), "CPU %u", s);
    uint8_t *p = sb_begin(b, 4, T4_LEN, HANDLE(4, s));
    if (!p)
        return;
    uint8_t sock = sb_string(b, socket);
    uint8_t manu = sb_string(b, c->cpu_vendor);
    uint8_t version = sb_string(b, c->cpu_brand);
    p[0x04] = sock;
    p[0x05] = 0x03;                 /* central processor */
    p[0x06] = 0x01;                 /* family: other (see family 2) */
    p[0x07] = manu;
    put32(p + 0x08, c->cpu_signature);  /* processor ID: CPUID.1 EAX, EDX (§7.5.3) */
    put32(p + 0x0C, c->cpu_features);
    p[0x10] = version;
    p[0x11] = 0;                    /* voltage: unknown */
    put16(p + 0x12, 0);             /* external clock: unknown */
    put16(p + 0x14, 0);             /* max speed: unknown */
    put16(p + 0x16, 0);             /* current speed: unknown */
    p[0x18] = 0x41;                 /* socket populated, CPU enabled */
    p[0x19] = 0x06;                 /* upgrade: none */
    put16(p + 0x1A, HANDLE_NO_CACHE);
    put16(p + 0x1C, HANDLE_NO_CACHE);
    put16(p + 0x1E, HANDLE_NO_CACHE);
    p[0x23] = (uint8_t)(cores > 255 ? 0xFF : cores);     /* 0FFh: see the 2 fields */
    p[0x24] = (uint8_t)(cores > 255 ? 0xFF : cores);
    p[0x25] = (uint8_t)(threads > 255 ? 0xFF : threads);
    put16(p + 0x26, chars);
    put16(p + 0x28, 0x01);          /* family 2: other */
    put16(p + 0x2A, (uint16_t)cores);
    put16(p + 0x2C, (uint16_t)cores);
    put16(p + 0x2E, (uint16_t)threads);
    sb_end(b);
}

/* Type 16, Physical Memory Array (§7.17) */
static void smbios_type16(struct smbios_buf *b, uint64_t ram, unsigned nr_devices)
{
    uint64_t kib = ram >> 10;

    uint8_t *p = sb_begin(b, 16, T16_LEN, HANDLE(16, 0));
    if (!p)
        return;
    p[0x04] = 0x03;                 /* location: system board */
    p[0x05] = 0x03;                 /* use: system memory */
    p[0x06] = 0x03;                 /* error correction: none */
    if (kib < 0x80000000ULL) {
        put32(p + 0x07, (uint32_t)kib);
    } else {                        /* 2 TiB or more: the extended field, bytes */
        put32(p + 0x07, 0x80000000u);
        put64(p + 0x0F, ram);
    }
    put16(p + 0x0B, HANDLE_NONE);   /* memory error information */
    put16(p + 0x0D, (uint16_t)nr_devices);
    sb_end(b);
}

/* Type 17, Memory Device (§7.18): one device holding all RAM */
static void smbios_type17(struct smbios_buf *b, uint64_t ram)
{
    uint64_t mib = ram >> 20;

    uint8_t *p = sb_begin(b, 17, T17_LEN, HANDLE(17, 0));
    if (!p)
        return;
    uint8_t locator = sb_string(b, "DIMM 0");
    uint8_t manu = sb_string(b, SMBIOS_MANUFACTURER);
    put16(p + 0x04, HANDLE(16, 0)); /* its physical memory array */
    put16(p + 0x06, HANDLE_NONE);   /* memory error information */
    put16(p + 0x08, 0xFFFF);        /* total width: unknown */
    put16(p + 0x0A, 0xFFFF);        /* data width: unknown */
    if (mib < 0x7FFF) {
        put16(p + 0x0C, (uint16_t)mib);     /* MiB, bit 15 clear */
    } else {
        put16(p + 0x0C, 0x7FFF);            /* see the extended size */
        put32(p + 0x1C, (uint32_t)(mib > 0x7FFFFFFF ? 0x7FFFFFFF : mib));
    }
    p[0x0E] = 0x09;                 /* form factor: DIMM */
    p[0x0F] = 0;                    /* not part of a set */
    p[0x10] = locator;
    p[0x11] = 0;                    /* bank locator */
    p[0x12] = 0x07;                 /* type: RAM */
    put16(p + 0x13, 1u << 1);       /* type detail: other */
    p[0x17] = manu;
    sb_end(b);
}

/* Type 19, Memory Array Mapped Address (§7.20): [gpa, gpa + size) */
static void smbios_type19(struct smbios_buf *b, unsigned i, uint64_t gpa, uint64_t size,
                          unsigned nr_devices)
{
    uint64_t start_kib = gpa >> 10, end_kib = ((gpa + size) >> 10) - 1;

    uint8_t *p = sb_begin(b, 19, T19_LEN, HANDLE(19, i));
    if (!p)
        return;
    if (end_kib < 0xFFFFFFFFULL) {
        put32(p + 0x04, (uint32_t)start_kib);
        put32(p + 0x08, (uint32_t)end_kib);
    } else {                        /* at or past 4 TiB: the extended fields, bytes */
        put32(p + 0x04, 0xFFFFFFFFu);
        put32(p + 0x08, 0xFFFFFFFFu);
        put64(p + 0x0F, gpa);
        put64(p + 0x17, gpa + size - 1);
    }
    put16(p + 0x0C, HANDLE(16, 0));
    p[0x0E] = (uint8_t)nr_devices;  /* partition width */
    sb_end(b);
}

/* Type 32, System Boot Information (§7.33) */
static void smbios_type32(struct smbios_buf *b)
{
    uint8_t *p = sb_begin(b, 32, T32_LEN, HANDLE(32, 0));
    if (!p)
        return;
    p[0x0A] = 0;            /* no errors detected */
    sb_end(b);
}

/* Type 127, End-of-Table (§7.45) */
static void smbios_type127(struct smbios_buf *b)
{
    if (sb_begin(b, 127, T127_LEN, HANDLE(127, 0)))
        sb_end(b);
}

long smbios_build_tables(const struct smbios_config *c, uint8_t *out, size_t cap)
{
    struct smbios_buf b = { .out = out, .cap = cap };
    const struct gm *gm = c->gm;

    if (!gm || gm->nr_regions == 0 || gm->nr_regions > GM_MAX_REGIONS || gm->size == 0 ||
        c->sockets == 0 || c->cores == 0 || c->threads == 0 || c->sockets > MAX_SOCKETS ||
        (uint64_t)c->cores * c->threads > 0xFFFF)
        return -EINVAL;
    if (c->bios)
        smbios_type0(&b);
    smbios_type1(&b, c->uuid);
    smbios_type3(&b);
    for (unsigned s = 0; s < c->sockets; s++)
        smbios_type4(&b, c, s);
    smbios_type16(&b, gm->size, 1);
    smbios_type17(&b, gm->size);
    for (unsigned i = 0; i < gm->nr_regions; i++)
        smbios_type19(&b, i, gm->regions[i].gpa, gm->regions[i].size, 1);
    smbios_type32(&b);
    smbios_type127(&b);
    return b.err ? b.err : (long)b.len;
}

void smbios_entry_point(uint8_t ep[SMBIOS_EP_LEN], uint32_t table_len, uint64_t table_addr)
{
    uint8_t sum = 0;

    memset(ep, 0, SMBIOS_EP_LEN);
    memcpy(ep, "_SM3_", 5);
    ep[0x06] = SMBIOS_EP_LEN;       /* entry point length */
    ep[0x07] = 3;                   /* SMBIOS 3.0.0 */
    ep[0x08] = 0;
    ep[0x09] = 0;                   /* docrev */
    ep[0x0A] = 0x01;                /* entry point revision: 3.0 */
    put32(ep + 0x0C, table_len);    /* structure table maximum size */
    put64(ep + 0x10, table_addr);
    for (unsigned i = 0; i < SMBIOS_EP_LEN; i++)
        sum = (uint8_t)(sum + ep[i]);
    ep[0x05] = (uint8_t)-sum;       /* all 24 bytes sum to 0 */
}

int smbios_install(const struct gm *gm, const struct smbios_config *c)
{
    uint8_t *area = calloc(1, SMBIOS_AREA_MAX);
    long len;
    int err;

    if (!area)
        return -ENOMEM;
    len = smbios_build_tables(c, area + SMBIOS_TABLES_OFF, SMBIOS_TABLES_MAX);
    if (len < 0) {
        log_err("smbios", "cannot build the SMBIOS tables (%s)", strerror((int)-len));
        free(area);
        return (int)len;
    }
    smbios_entry_point(area, (uint32_t)len, SMBIOS_GPA + SMBIOS_TABLES_OFF);
    err = gm_write(gm, SMBIOS_GPA, area, SMBIOS_TABLES_OFF + (size_t)len);
    if (err)
        log_err("smbios", "cannot write %ld bytes of SMBIOS tables at 0x%llx: not RAM", len,
                (unsigned long long)SMBIOS_GPA);
    free(area);
    return err;
}

void smbios_host_cpu(struct smbios_config *c)
{
    unsigned a, b, cx, d, max_ext;

    memset(c->cpu_vendor, 0, sizeof(c->cpu_vendor));
    memset(c->cpu_brand, 0, sizeof(c->cpu_brand));
    if (__get_cpuid(0, &a, &b, &cx, &d)) {
        memcpy(c->cpu_vendor, &b, 4);
        memcpy(c->cpu_vendor + 4, &d, 4);
        memcpy(c->cpu_vendor + 8, &cx, 4);
    }
    if (__get_cpuid(1, &a, &b, &cx, &d)) {
        c->cpu_signature = a;
        c->cpu_features = d;
    }
    max_ext = __get_cpuid_max(0x80000000u, NULL);
    if (max_ext >= 0x80000004u) {
        uint32_t r[12];
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        char raw[49];
        memcpy(raw, r, 48);
        raw[48] = 0;
        const char *s = raw;
        while (*s == ' ')           /* Intel pads the brand on the left */
            s++;
        snprintf(c->cpu_brand, sizeof(c->cpu_brand), "%s", s);
        for (size_t n = strlen(c->cpu_brand); n > 0 && c->cpu_brand[n - 1] == ' '; n--)
            c->cpu_brand[n - 1] = 0;
    }
}

/* RFC 9562 §5: version in the high nibble of octet 6, variant 10 in the
 * top bits of octet 8. */
static void uuid_set_version(uint8_t uuid[16], unsigned version)
{
    uuid[6] = (uint8_t)((uuid[6] & 0x0F) | version << 4);
    uuid[8] = (uint8_t)((uuid[8] & 0x3F) | 0x80);
}

void smbios_uuid_from_name(uint8_t uuid[16], const char *name)
{
    /* FNV-1a, 128 bits (offset basis and prime from the FNV reference) */
    unsigned __int128 h = ((unsigned __int128)0x6c62272e07bb0142ULL << 64) | 0x62b821756295c58dULL;
    const unsigned __int128 prime = ((unsigned __int128)1 << 88) | 0x13B;

    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        h ^= *s;
        h *= prime;
    }
    for (unsigned i = 0; i < 16; i++)
        uuid[i] = (uint8_t)(h >> (8 * (15 - i)));
    uuid_set_version(uuid, 8);
}

int smbios_uuid_random(uint8_t uuid[16])
{
    size_t done = 0;

    while (done < 16) {
        ssize_t n = getrandom(uuid + done, 16 - done, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = -errno;
            log_err("smbios", "getrandom for the system UUID: %s", strerror(-err));
            return err;
        }
        done += (size_t)n;
    }
    uuid_set_version(uuid, 4);
    return 0;
}
