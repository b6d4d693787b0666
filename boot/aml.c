/* AML encoder: see boot/aml.h. Opcodes are from ACPI 6.4 §20.2 (AML grammar);
 * §20.3 lists them by value. */
#include "boot/aml.h"

#include <errno.h>
#include <string.h>

#include "vmm/log.h"

/* ACPI 6.4 §20.3, AML Byte Stream Byte Values */
enum {
    AML_ZERO_OP         = 0x00,
    AML_ONE_OP          = 0x01,
    AML_NAME_OP         = 0x08,
    AML_BYTE_PREFIX     = 0x0A,
    AML_WORD_PREFIX     = 0x0B,
    AML_DWORD_PREFIX    = 0x0C,
    AML_STRING_PREFIX   = 0x0D,
    AML_QWORD_PREFIX    = 0x0E,
    AML_SCOPE_OP        = 0x10,
    AML_BUFFER_OP       = 0x11,
    AML_PACKAGE_OP      = 0x12,
    AML_METHOD_OP       = 0x14,
    AML_DUAL_NAME       = 0x2E,
    AML_MULTI_NAME      = 0x2F,
    AML_EXT_PREFIX      = 0x5B,
    AML_ROOT_CHAR       = 0x5C,   /* '\' */
    AML_PARENT_CHAR     = 0x5E,   /* '^' */
    AML_DEVICE_OP       = 0x82,   /* after AML_EXT_PREFIX */
    AML_RETURN_OP       = 0xA4,
};

/* ACPI 6.4 §6.4.2: small resource item tags (type 0, name << 3 | length) */
#define AML_RES_IRQ_NOFLAGS 0x22   /* name 0x4, length 2 */
#define AML_RES_IO          0x47   /* name 0x8, length 7 */
#define AML_RES_END         0x79   /* name 0xF, length 1 */
/* Large resource items (§6.4.3): tag, le16 length of what follows */
#define AML_RES_DWORD_ADDR  0x87   /* §6.4.3.5.2, 23 bytes follow */
#define AML_RES_WORD_ADDR   0x88   /* §6.4.3.5.3, 13 bytes follow */
#define AML_RES_QWORD_ADDR  0x8A   /* §6.4.3.5.1, 43 bytes follow */
/* Address space descriptor fields (Tables 6.44-6.48) */
#define AML_ADDR_TYPE_MEM   0
#define AML_ADDR_TYPE_IO    1
#define AML_ADDR_TYPE_BUS   2
/* general flags: MaxFixed (bit 3), MinFixed (bit 2), positive decode (bit
 * 1 clear), producer (bit 0 clear): a bridge's fixed window */
#define AML_ADDR_GEN_WINDOW 0x0C
#define AML_ADDR_IO_ENTIRE  0x03   /* I/O type flags: ISA and non-ISA ranges */
#define AML_ADDR_MEM_RW     0x01   /* memory type flags bit 0: read/write */
#define AML_ADDR_MEM_CACHE  0x02   /* bits 2:1 = 1: cacheable */

#define AML_PKGLENGTH_MAX 0x0FFFFFFFu   /* 28 bits (§20.2.4) */

static void aml_fail(struct aml *a, int err)
{
    if (!a->err)
        a->err = err;
}

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
    memset(a, 0, sizeof(*a));
    a->buf = buf;
    a->cap = cap;
}

int aml_finish(const struct aml *a)
{
    if (a->err)
        return a->err;
    return a->depth ? -EINVAL : 0;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
    if (a->err)
        return;
    if (n > a->cap - a->len) {
        aml_fail(a, -ENOSPC);
        return;
    }
    memcpy(a->buf + a->len, p, n);
    a->len += n;
}

static void aml_byte(struct aml *a, uint8_t v)
{
    aml_bytes(a, &v, 1);
}

static void aml_le(struct aml *a, uint64_t v, unsigned n)
{
    uint8_t b[8];
    for (unsigned i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    aml_bytes(a, b, n);
}

/* §20.2.4: with one byte, bits 0-5 hold the length (< 64). With 2-4 bytes,
 * bits 6-7 of the lead byte count the bytes that follow, its bits 0-3 hold
 * the low nibble and each following byte the next 8 bits. The value
 * includes the PkgLength bytes themselves. */
int aml_pkglength_encode(size_t body_len, uint8_t out[4])
{
    for (unsigned n = 1; n <= 4; n++) {
        size_t total = body_len + n;
        size_t limit = n == 1 ? 0x3F : (1u << (4 + 8 * (n - 1))) - 1;

        if (total < body_len || total > limit)
            continue;
        if (n == 1) {
            out[0] = (uint8_t)total;
        } else {
            out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0F));
            for (unsigned i = 1; i < n; i++)
                out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
        }
        return (int)n;
    }
    return -E2BIG;
}

static bool aml_seg_char_ok(char c, bool lead)
{
    if ((c >= 'A' && c <= 'Z') || c == '_')
        return true;
    return !lead && c >= '0' && c <= '9';
}

void aml_name_string(struct aml *a, const char *path)
{
    uint8_t segs[255][4];
    unsigned nr = 0;
    const char *p = path;

    if (a->err)
        return;
    if (*p == '\\') {
        aml_byte(a, AML_ROOT_CHAR);
        p++;
    } else {
        while (*p == '^') {
            aml_byte(a, AML_PARENT_CHAR);
            p++;
        }
    }
    while (*p) {
        unsigned n = 0;
        if (nr == 255)
            goto bad;
        memset(segs[nr], '_', 4);
        while (*p && *p != '.') {
            if (n == 4 || !aml_seg_char_ok(*p, n == 0))
                goto bad;
            segs[nr][n++] = (uint8_t)*p++;
        }
        if (n == 0)
            goto bad;
        nr++;
        if (*p == '.') {
            p++;
            if (!*p)
                goto bad;
        }
    }
    if (nr == 0) {
        aml_byte(a, AML_ZERO_OP);   /* NullName */
    } else if (nr == 2) {
        aml_byte(a, AML_DUAL_NAME);
    } else if (nr > 2) {
        aml_byte(a, AML_MULTI_NAME);
        aml_byte(a, (uint8_t)nr);
    }
    for (unsigned i = 0; i < nr; i++)
        aml_bytes(a, segs[i], 4);
    return;
bad:
    log_err("aml", "bad AML name \"%s\"", path);
    aml_fail(a, -EINVAL);
}

void aml_name(struct aml *a, const char *path)
{
    aml_byte(a, AML_NAME_OP);
    aml_name_string(a, path);
}

void aml_integer(struct aml *a, uint64_t v)
{
    if (v == 0) {
        aml_byte(a, AML_ZERO_OP);
    } else if (v == 1) {
        aml_byte(a, AML_ONE_OP);
    } else if (v <= 0xFF) {
        aml_byte(a, AML_BYTE_PREFIX);
        aml_le(a, v, 1);
    } else if (v <= 0xFFFF) {
        aml_byte(a, AML_WORD_PREFIX);
        aml_le(a, v, 2);
    } else if (v <= 0xFFFFFFFFu) {
        aml_byte(a, AML_DWORD_PREFIX);
        aml_le(a, v, 4);
    } else {
        aml_byte(a, AML_QWORD_PREFIX);
        aml_le(a, v, 8);
    }
}

void aml_string(struct aml *a, const char *s)
{
    for (const char *c = s; *c; c++) {
        if ((unsigned char)*c > 0x7F) {
            log_err("aml", "AML string \"%s\" is not ASCII", s);
            aml_fail(a, -EINVAL);
            return;
        }
    }
    aml_byte(a, AML_STRING_PREFIX);
    aml_bytes(a, s, strlen(s) + 1);
}

static void aml_open(struct aml *a)
{
    if (a->err)
        return;
    if (a->depth == AML_MAX_DEPTH) {
        log_err("aml", "AML blocks nested deeper than %d", AML_MAX_DEPTH);
        aml_fail(a, -EINVAL);
        return;
    }
    a->open[a->depth++] = a->len;
}

void aml_end(struct aml *a)
{
    uint8_t pkg[4];
    size_t at, body;
    int n;

    if (a->err)
        return;
    if (a->depth == 0) {
        log_err("aml", "aml_end without an open block");
        aml_fail(a, -EINVAL);
        return;
    }
    at = a->open[--a->depth];
    body = a->len - at;
    n = aml_pkglength_encode(body, pkg);
    if (n < 0) {
        aml_fail(a, n);
        return;
    }
    if ((size_t)n > a->cap - a->len) {
        aml_fail(a, -ENOSPC);
        return;
    }
    memmove(a->buf + at + n, a->buf + at, body);
    memcpy(a->buf + at, pkg, (size_t)n);
    a->len += (size_t)n;
}

void aml_buffer(struct aml *a, const uint8_t *data, size_t len)
{
    aml_byte(a, AML_BUFFER_OP);
    aml_open(a);
    aml_integer(a, len);
    aml_bytes(a, data, len);
    aml_end(a);
}

void aml_eisaid(struct aml *a, const char *id)
{
    uint32_t v = 0;

    if (strlen(id) != 7)
        goto bad;
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z')
            goto bad;
        v = (v << 5) | (uint32_t)(id[i] - 'A' + 1);
    }
    for (int i = 3; i < 7; i++) {
        char c = id[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            goto bad;
        v = (v << 4) | d;
    }
    /* 31 significant bits, most significant byte first in memory: the
     * DWordConst (little-endian) is the byte-swapped value. */
    aml_byte(a, AML_DWORD_PREFIX);
    aml_le(a, __builtin_bswap32(v), 4);
    return;
bad:
    log_err("aml", "bad EISA ID \"%s\" (want 3 capitals and 4 hex digits)", id);
    aml_fail(a, -EINVAL);
}

void aml_package_begin(struct aml *a, unsigned nr_elements)
{
    if (nr_elements > 255) {
        log_err("aml", "AML package of %u elements (at most 255)", nr_elements);
        aml_fail(a, -EINVAL);
        return;
    }
    aml_byte(a, AML_PACKAGE_OP);
    aml_open(a);
    aml_byte(a, (uint8_t)nr_elements);
}

void aml_scope_begin(struct aml *a, const char *path)
{
    aml_byte(a, AML_SCOPE_OP);
    aml_open(a);
    aml_name_string(a, path);
}

void aml_device_begin(struct aml *a, const char *path)
{
    aml_byte(a, AML_EXT_PREFIX);
    aml_byte(a, AML_DEVICE_OP);
    aml_open(a);
    aml_name_string(a, path);
}

void aml_method_begin(struct aml *a, const char *path, unsigned nargs, bool serialized)
{
    if (nargs > 7) {
        log_err("aml", "AML method %s with %u arguments (at most 7)", path, nargs);
        aml_fail(a, -EINVAL);
        return;
    }
    aml_byte(a, AML_METHOD_OP);
    aml_open(a);
    aml_name_string(a, path);
    aml_byte(a, (uint8_t)(nargs | (serialized ? 0x08 : 0)));
}

void aml_return(struct aml *a)
{
    aml_byte(a, AML_RETURN_OP);
}

void aml_res_io(struct aml *rt, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    uint8_t d[8] = {
        AML_RES_IO, 0x01 /* decodes 16-bit addresses */,
        (uint8_t)min, (uint8_t)(min >> 8), (uint8_t)max, (uint8_t)(max >> 8),
        align, len,
    };
    aml_bytes(rt, d, sizeof(d));
}

void aml_res_irq_noflags(struct aml *rt, unsigned irq)
{
    uint16_t mask;

    if (irq > 15) {
        log_err("aml", "ISA IRQ %u in an IRQ descriptor (0-15)", irq);
        aml_fail(rt, -EINVAL);
        return;
    }
    mask = (uint16_t)(1u << irq);
    uint8_t d[3] = { AML_RES_IRQ_NOFLAGS, (uint8_t)mask, (uint8_t)(mask >> 8) };
    aml_bytes(rt, d, sizeof(d));
}

void aml_resource_template(struct aml *a, const struct aml *rt)
{
    static const uint8_t end_tag[2] = { AML_RES_END, 0 };

    if (rt->err) {
        aml_fail(a, rt->err);
        return;
    }
    aml_byte(a, AML_BUFFER_OP);
    aml_open(a);
    aml_integer(a, rt->len + sizeof(end_tag));
    aml_bytes(a, rt->buf, rt->len);
    aml_bytes(a, end_tag, sizeof(end_tag));
    aml_end(a);
}

/* Word/DWord/QWord Address Space Descriptors (ACPI 6.4 §6.4.3.5.1-3): the
 * same layout with 2-, 4- or 8-byte fields: tag, le16 length, resource
 * type, general flags, type-specific flags, then granularity, minimum,
 * maximum, translation offset, length. min > max is a bug of the caller. */
static void aml_res_addr(struct aml *rt, uint8_t tag, unsigned width, uint8_t type,
                         uint8_t type_flags, uint64_t min, uint64_t max)
{
    uint16_t follows = (uint16_t)(3 + 5 * width);

    if (min > max || (width < 8 && max >> (8 * width))) {
        log_err("aml", "address descriptor [0x%llx, 0x%llx] does not fit %u bytes or is empty",
                (unsigned long long)min, (unsigned long long)max, width);
        aml_fail(rt, -EINVAL);
        return;
    }
    aml_byte(rt, tag);
    aml_le(rt, follows, 2);
    aml_byte(rt, type);
    aml_byte(rt, AML_ADDR_GEN_WINDOW);
    aml_byte(rt, type_flags);
    aml_le(rt, 0, width);                 /* granularity: none (fixed window) */
    aml_le(rt, min, width);
    aml_le(rt, max, width);
    aml_le(rt, 0, width);                 /* no translation */
    aml_le(rt, max - min + 1, width);
}

void aml_res_word_bus(struct aml *rt, uint16_t min, uint16_t max)
{
    aml_res_addr(rt, AML_RES_WORD_ADDR, 2, AML_ADDR_TYPE_BUS, 0, min, max);
}

void aml_res_word_io(struct aml *rt, uint16_t min, uint16_t max)
{
    aml_res_addr(rt, AML_RES_WORD_ADDR, 2, AML_ADDR_TYPE_IO, AML_ADDR_IO_ENTIRE, min, max);
}

void aml_res_dword_mem(struct aml *rt, uint32_t min, uint32_t max)
{
    aml_res_addr(rt, AML_RES_DWORD_ADDR, 4, AML_ADDR_TYPE_MEM, AML_ADDR_MEM_RW, min, max);
}

void aml_res_qword_mem(struct aml *rt, uint64_t min, uint64_t max)
{
    aml_res_addr(rt, AML_RES_QWORD_ADDR, 8, AML_ADDR_TYPE_MEM,
                 AML_ADDR_MEM_RW | AML_ADDR_MEM_CACHE, min, max);
}
