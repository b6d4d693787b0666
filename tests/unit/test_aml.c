/* AML encoder: byte sequences checked by hand against ACPI 6.4 §20.2. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "boot/aml.h"

static void expect_bytes(const struct aml *a, const uint8_t *want, size_t n)
{
    cr_assert_eq(aml_finish(a), 0, "encoder error %d", aml_finish(a));
    cr_assert_eq(a->len, n, "encoded %zu bytes, want %zu", a->len, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(a->buf[i], want[i], "byte %zu: 0x%02x, want 0x%02x", i, a->buf[i], want[i]);
}

#define EXPECT(a, ...) do { \
        static const uint8_t want_[] = { __VA_ARGS__ }; \
        expect_bytes(a, want_, sizeof(want_)); \
    } while (0)

static void pkglen_is(size_t body, int n, const uint8_t *want)
{
    uint8_t out[4] = { 0 };
    int got = aml_pkglength_encode(body, out);
    cr_assert_eq(got, n, "body %zu: %d bytes, want %d", body, got, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(out[i], want[i], "body %zu byte %d: 0x%02x want 0x%02x", body, i, out[i], want[i]);
}

Test(aml, pkglength_boundaries)
{
    /* 1 byte up to a total of 63 (0x3F), counting the PkgLength byte. */
    pkglen_is(0, 1, (const uint8_t[]){ 0x01 });
    pkglen_is(62, 1, (const uint8_t[]){ 0x3F });
    /* body 63: 64 does not fit 6 bits; with 2 bytes total = 65 = 0x041 */
    pkglen_is(63, 2, (const uint8_t[]){ 0x41, 0x04 });
    /* 2 bytes up to 0xFFF (12 bits: low nibble + 8) */
    pkglen_is(4093, 2, (const uint8_t[]){ 0x4F, 0xFF });
    /* body 4094: 4096 needs 3 bytes: total 4097 = 0x1001 */
    pkglen_is(4094, 3, (const uint8_t[]){ 0x81, 0x00, 0x01 });
    pkglen_is(0xFFFFC, 3, (const uint8_t[]){ 0x8F, 0xFF, 0xFF });
    pkglen_is(0xFFFFD, 4, (const uint8_t[]){ 0xC1, 0x00, 0x00, 0x01 });
    pkglen_is(0xFFFFFFB, 4, (const uint8_t[]){ 0xCF, 0xFF, 0xFF, 0xFF });
    uint8_t out[4];
    cr_assert_eq(aml_pkglength_encode(0xFFFFFFC, out), -E2BIG);
    cr_assert_eq(aml_pkglength_encode((size_t)-2, out), -E2BIG);
}

Test(aml, integers_shortest)
{
    static const struct { uint64_t v; uint8_t len; uint8_t b[9]; } cases[] = {
        { 0, 1, { 0x00 } },
        { 1, 1, { 0x01 } },
        { 2, 2, { 0x0A, 0x02 } },
        { 0xFF, 2, { 0x0A, 0xFF } },
        { 0x100, 3, { 0x0B, 0x00, 0x01 } },
        { 0xFFFF, 3, { 0x0B, 0xFF, 0xFF } },
        { 0x10000, 5, { 0x0C, 0x00, 0x00, 0x01, 0x00 } },
        { 0xFFFFFFFF, 5, { 0x0C, 0xFF, 0xFF, 0xFF, 0xFF } },
        { 0x100000000ULL, 9, { 0x0E, 0, 0, 0, 0, 0x01, 0, 0, 0 } },
        { 0x0123456789ABCDEFULL, 9, { 0x0E, 0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01 } },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t buf[16];
        struct aml a;
        aml_init(&a, buf, sizeof(buf));
        aml_integer(&a, cases[i].v);
        expect_bytes(&a, cases[i].b, cases[i].len);
    }
}

Test(aml, name_strings)
{
    uint8_t buf[64];
    struct aml a;

    aml_init(&a, buf, sizeof(buf));
    aml_name_string(&a, "_S5");
    EXPECT(&a, '_', 'S', '5', '_');

    aml_init(&a, buf, sizeof(buf));
    aml_name_string(&a, "\\_SB.PCI0");
    EXPECT(&a, 0x5C, 0x2E, '_', 'S', 'B', '_', 'P', 'C', 'I', '0');

    aml_init(&a, buf, sizeof(buf));
    aml_name_string(&a, "\\_SB.PCI0.ISA");
    EXPECT(&a, 0x5C, 0x2F, 0x03, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'I', 'S', 'A', '_');

    aml_init(&a, buf, sizeof(buf));
    aml_name_string(&a, "^^FOO");
    EXPECT(&a, 0x5E, 0x5E, 'F', 'O', 'O', '_');

    aml_init(&a, buf, sizeof(buf));
    aml_name_string(&a, "");
    EXPECT(&a, 0x00);
}

Test(aml, bad_names_fail_sticky)
{
    static const char *const bad[] = { "1ABC", "ABCDE", "A..B", "a", "A.", "\\.", "AB-C", "\\^A" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t buf[64];
        struct aml a;
        aml_init(&a, buf, sizeof(buf));
        aml_name(&a, bad[i]);
        aml_integer(&a, 5);
        cr_assert_eq(aml_finish(&a), -EINVAL, "name \"%s\" accepted", bad[i]);
    }
}

Test(aml, string_and_eisaid)
{
    uint8_t buf[32];
    struct aml a;

    aml_init(&a, buf, sizeof(buf));
    aml_string(&a, "ab");
    EXPECT(&a, 0x0D, 'a', 'b', 0x00);

    /* PNP0501: P=16 N=14 P=16 -> 0x41D0, product 0x0501, stored big-endian */
    aml_init(&a, buf, sizeof(buf));
    aml_eisaid(&a, "PNP0501");
    EXPECT(&a, 0x0C, 0x41, 0xD0, 0x05, 0x01);

    /* PNP0A03 (PCI host bridge): 0x030AD041 as the familiar DWord */
    aml_init(&a, buf, sizeof(buf));
    aml_eisaid(&a, "PNP0A03");
    EXPECT(&a, 0x0C, 0x41, 0xD0, 0x0A, 0x03);

    aml_init(&a, buf, sizeof(buf));
    aml_eisaid(&a, "pnp0501");
    cr_assert_eq(aml_finish(&a), -EINVAL);
}

Test(aml, s5_package)
{
    uint8_t buf[32];
    struct aml a;

    aml_init(&a, buf, sizeof(buf));
    aml_name(&a, "\\_S5");
    aml_package_begin(&a, 4);
    for (int i = 0; i < 4; i++)
        aml_integer(&a, 0);
    aml_end(&a);
    /* NameOp \_S5_ PackageOp PkgLength(6) NumElements(4) Zero x4 */
    EXPECT(&a, 0x08, 0x5C, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00);
}

Test(aml, method_and_device)
{
    uint8_t buf[64];
    struct aml a;

    aml_init(&a, buf, sizeof(buf));
    aml_method_begin(&a, "_STA", 0, false);
    aml_return(&a);
    aml_integer(&a, 0x0F);
    aml_end(&a);
    /* MethodOp PkgLength(9) _STA flags(0) ReturnOp ByteConst 0x0F */
    EXPECT(&a, 0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xA4, 0x0A, 0x0F);

    aml_init(&a, buf, sizeof(buf));
    aml_method_begin(&a, "FOO", 3, true);
    aml_end(&a);
    EXPECT(&a, 0x14, 0x06, 'F', 'O', 'O', '_', 0x0B);

    aml_init(&a, buf, sizeof(buf));
    aml_device_begin(&a, "COM1");
    aml_name(&a, "_HID");
    aml_eisaid(&a, "PNP0501");
    aml_end(&a);
    EXPECT(&a, 0x5B, 0x82, 0x0F, 'C', 'O', 'M', '1',
           0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x05, 0x01);
}

Test(aml, resource_template)
{
    uint8_t buf[64], rtbuf[32];
    struct aml a, rt;

    aml_init(&a, buf, sizeof(buf));
    aml_init(&rt, rtbuf, sizeof(rtbuf));
    aml_res_io(&rt, 0x3F8, 0x3F8, 1, 8);
    aml_res_irq_noflags(&rt, 4);
    aml_resource_template(&a, &rt);
    /* Buffer(13) { IO(Decode16, 0x3F8, 0x3F8, 1, 8) IRQNoFlags(){4} EndTag } */
    EXPECT(&a, 0x11, 0x10, 0x0A, 0x0D,
           0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08,
           0x22, 0x10, 0x00,
           0x79, 0x00);

    aml_init(&rt, rtbuf, sizeof(rtbuf));
    aml_res_irq_noflags(&rt, 16);
    aml_init(&a, buf, sizeof(buf));
    aml_resource_template(&a, &rt);
    cr_assert_eq(aml_finish(&a), -EINVAL);
}

Test(aml, address_space_descriptors)
{
    uint8_t buf[128], rtbuf[96];
    struct aml a, rt;

    aml_init(&a, buf, sizeof(buf));
    aml_init(&rt, rtbuf, sizeof(rtbuf));
    aml_res_word_bus(&rt, 0, 0xFF);
    aml_res_dword_mem(&rt, 0xC0000000, 0xFEBFFFFF);
    aml_res_qword_mem(&rt, 0x800000000ULL, 0xFFFFFFFFFULL);
    cr_assert_eq(rt.len, 16 + 26 + 46);
    aml_resource_template(&a, &rt);
    cr_assert_eq(aml_finish(&a), 0);
    /* WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
     * 0, 0, 0xFF, 0, 0x100) -- ACPI 6.4 §6.4.3.5.3 */
    static const uint8_t bus[] = { 0x88, 0x0D, 0x00, 0x02, 0x0C, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x01 };
    cr_assert_arr_eq(rtbuf, bus, sizeof(bus));
    /* DWordMemory (..., NonCacheable, ReadWrite, 0, 0xC0000000, 0xFEBFFFFF,
     * 0, 0x3EC00000) -- §6.4.3.5.2 */
    static const uint8_t dw[] = { 0x87, 0x17, 0x00, 0x00, 0x0C, 0x01, 0, 0, 0, 0,
                                  0x00, 0x00, 0x00, 0xC0, 0xFF, 0xFF, 0xBF, 0xFE,
                                  0, 0, 0, 0, 0x00, 0x00, 0xC0, 0x3E };
    cr_assert_arr_eq(rtbuf + 16, dw, sizeof(dw));
    /* QWordMemory (..., Cacheable, ReadWrite, 0, 32 GiB, 64 GiB - 1, 0, 32 GiB) */
    static const uint8_t qw[] = { 0x8A, 0x2B, 0x00, 0x00, 0x0C, 0x03 };
    cr_assert_arr_eq(rtbuf + 42, qw, sizeof(qw));
    cr_assert_eq(rtbuf[42 + 6 + 8 + 4], 0x08, "minimum 0x8_0000_0000");
    cr_assert_eq(rtbuf[42 + 6 + 32 + 4], 0x08, "length 0x8_0000_0000");

    /* empty or too wide ranges are sticky errors */
    aml_init(&rt, rtbuf, sizeof(rtbuf));
    aml_res_word_io(&rt, 0xD00, 0xCFF);
    cr_assert_eq(aml_finish(&rt), -EINVAL);
    aml_init(&rt, rtbuf, sizeof(rtbuf));
    aml_res_word_io(&rt, 0xD00, 0xFFFF);
    cr_assert_eq(aml_finish(&rt), 0);
    cr_assert_eq(rtbuf[5], 0x03, "EntireRange");
}

/* A body over 63 bytes makes the PkgLength grow while blocks are nested:
 * the inner block's bytes must move up intact. */
Test(aml, nested_two_byte_pkglength)
{
    uint8_t data[100], buf[256];
    struct aml a;

    for (int i = 0; i < 100; i++)
        data[i] = (uint8_t)(0x80 + i);
    aml_init(&a, buf, sizeof(buf));
    aml_scope_begin(&a, "\\_SB");
    aml_name(&a, "BUF0");
    aml_buffer(&a, data, sizeof(data));
    aml_end(&a);
    cr_assert_eq(aml_finish(&a), 0);
    /* Buffer: body = 0A 64 + 100 bytes = 102, total 104 = 0x68 -> 48 06.
     * Scope: body = 5 (\_SB_) + 5 (NameOp BUF0) + 1 + 2 + 102 = 115,
     * total 117 = 0x75 -> 45 07. */
    static const uint8_t head[] = { 0x10, 0x45, 0x07, 0x5C, '_', 'S', 'B', '_',
                                    0x08, 'B', 'U', 'F', '0', 0x11, 0x48, 0x06, 0x0A, 0x64 };
    cr_assert_eq(a.len, sizeof(head) + 100);
    cr_assert_arr_eq(a.buf, head, sizeof(head));
    cr_assert_arr_eq(a.buf + sizeof(head), data, 100);
}

Test(aml, errors)
{
    uint8_t buf[8];
    struct aml a;

    /* out of room: sticky -ENOSPC, nothing written past cap */
    aml_init(&a, buf, 4);
    aml_integer(&a, 0x10000);       /* 5 bytes */
    aml_integer(&a, 0);
    cr_assert_eq(aml_finish(&a), -ENOSPC);
    cr_assert_leq(a.len, 4, "nothing written past cap");

    /* PkgLength growth that does not fit */
    aml_init(&a, buf, 4);
    aml_package_begin(&a, 1);        /* 12, count */
    aml_integer(&a, 2);              /* 0A 02: 4 bytes, then no room for PkgLength */
    aml_end(&a);
    cr_assert_eq(aml_finish(&a), -ENOSPC);

    aml_init(&a, buf, sizeof(buf));
    aml_end(&a);
    cr_assert_eq(aml_finish(&a), -EINVAL);

    aml_init(&a, buf, sizeof(buf));
    aml_package_begin(&a, 0);
    cr_assert_eq(aml_finish(&a), -EINVAL, "an open block must fail aml_finish");

    aml_init(&a, buf, sizeof(buf));
    aml_package_begin(&a, 256);
    cr_assert_eq(aml_finish(&a), -EINVAL);

    uint8_t big[256];
    aml_init(&a, big, sizeof(big));
    for (int i = 0; i <= AML_MAX_DEPTH; i++)
        aml_scope_begin(&a, "A");
    cr_assert_eq(aml_finish(&a), -EINVAL);
}
