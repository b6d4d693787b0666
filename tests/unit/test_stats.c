/* vmm/stats.c: the JSON writer produces valid JSON (checked by a strict
 * recursive-descent parser below) with the counts that were recorded, and
 * the table names the rows. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include "vmm/stats.h"

/* --- a strict JSON syntax checker (RFC 8259) --- */
struct jp { const char *p, *end; };

static void ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}
static bool lit(struct jp *j, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, s, n))
        return false;
    j->p += n;
    return true;
}
static bool value(struct jp *j, int depth);
static bool string(struct jp *j)
{
    if (j->p >= j->end || *j->p != '"')
        return false;
    j->p++;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end || !strchr("\"\\/bfnrtu", *j->p))
                return false;
            if (*j->p == 'u') {
                for (int i = 0; i < 4; i++)
                    if (++j->p >= j->end || !isxdigit((unsigned char)*j->p))
                        return false;
            }
        }
        j->p++;
    }
    if (j->p >= j->end)
        return false;
    j->p++;
    return true;
}
static bool number(struct jp *j)
{
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end || !isdigit((unsigned char)*j->p))
        return false;
    if (*j->p == '0' && j->p + 1 < j->end && isdigit((unsigned char)j->p[1]))
        return false;   /* no leading zeros */
    while (j->p < j->end && isdigit((unsigned char)*j->p))
        j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || !isdigit((unsigned char)*j->p))
            return false;
        while (j->p < j->end && isdigit((unsigned char)*j->p))
            j->p++;
    }
    return j->p > s;
}
static bool value(struct jp *j, int depth)
{
    if (depth > 32)
        return false;
    ws(j);
    if (j->p >= j->end)
        return false;
    switch (*j->p) {
    case '{':
        j->p++;
        ws(j);
        if (j->p < j->end && *j->p == '}') { j->p++; return true; }
        for (;;) {
            ws(j);
            if (!string(j)) return false;
            ws(j);
            if (!lit(j, ":")) return false;
            if (!value(j, depth + 1)) return false;
            ws(j);
            if (lit(j, "}")) return true;
            if (!lit(j, ",")) return false;
        }
    case '[':
        j->p++;
        ws(j);
        if (j->p < j->end && *j->p == ']') { j->p++; return true; }
        for (;;) {
            if (!value(j, depth + 1)) return false;
            ws(j);
            if (lit(j, "]")) return true;
            if (!lit(j, ",")) return false;
        }
    case '"':
        return string(j);
    case 't': return lit(j, "true");
    case 'f': return lit(j, "false");
    case 'n': return lit(j, "null");
    default:
        return number(j);
    }
}
static bool json_valid(const char *s)
{
    struct jp j = { s, s + strlen(s) };
    if (!value(&j, 0))
        return false;
    ws(&j);
    return j.p == j.end;
}

Test(stats, checker_rejects_bad_json)
{
    /* The checker itself must be able to fail, or the tests below prove nothing. */
    cr_assert(json_valid("{\"a\": [1, 2, {\"b\": null}], \"c\": \"x\\n\"}"));
    cr_assert_not(json_valid("{\"a\": 1,}"));
    cr_assert_not(json_valid("{\"a\" 1}"));
    cr_assert_not(json_valid("[1, 2"));
    cr_assert_not(json_valid("{\"a\": 01}"));
    cr_assert_not(json_valid("{} {}"));
    cr_assert_not(json_valid("{a: 1}"));
}

static char *to_string(void (*fn)(const struct stats *, FILE *), const struct stats *s, int *ret)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    if (fn)
        fn(s, f);
    else
        *ret = stats_write_json(s, f);
    fclose(f);
    return buf;
}

static struct stats filled(unsigned nr)
{
    struct stats s;
    cr_assert_eq(stats_init(&s, nr), 0);
    s.start_ns = 1000;
    s.end_ns = 1000 + 2500000000ull;
    stats_add(&s.vcpu[0], STATS_ROW_IO_OUT, 300);
    stats_add(&s.vcpu[0], STATS_ROW_IO_OUT, 500);
    stats_add(&s.vcpu[0], STATS_ROW_MMIO_READ, 70);
    stats_add(&s.vcpu[0], stats_row_of_exit(KVM_EXIT_HLT), 5);
    s.vcpu[0].runs = 4;
    s.vcpu[0].run_ns = 123456789;
    if (nr > 1) {
        stats_add(&s.vcpu[1], STATS_ROW_IO_OUT, 200);
        stats_add(&s.vcpu[1], stats_row_of_exit(200), 9);   /* an exit reason past the table */
        stats_add(&s.vcpu[1], stats_row_of_exit(KVM_EXIT_SYSTEM_EVENT), 1);
        s.vcpu[1].runs = 3;
        s.vcpu[1].run_ns = 42;
    }
    return s;
}

Test(stats, json_valid_and_exact)
{
    struct stats s = filled(2);
    int ret = -1;
    char *j = to_string(NULL, &s, &ret);

    cr_assert_eq(ret, 0);
    cr_assert(json_valid(j), "not valid JSON: %s", j);
    cr_assert(strstr(j, "\"wall_ns\": 2500000000"), "%s", j);
    cr_assert(strstr(j, "{\"index\": 0, \"runs\": 4, \"run_ns\": 123456789, \"handle_ns\": 875, "), "%s", j);
    cr_assert(strstr(j, "\"io-out\": {\"count\": 2, \"handle_ns\": 800}"), "%s", j);
    cr_assert(strstr(j, "\"mmio-read\": {\"count\": 1, \"handle_ns\": 70}"), "%s", j);
    cr_assert(strstr(j, "\"hlt\": {\"count\": 1, \"handle_ns\": 5}"), "%s", j);
    cr_assert(strstr(j, "\"other\": {\"count\": 1, \"handle_ns\": 9}"), "%s", j);
    cr_assert(strstr(j, "\"system-event\": {\"count\": 1"), "%s", j);
    cr_assert(strstr(j, "\"total\": {\"runs\": 7, \"run_ns\": 123456831, \"handle_ns\": 1085, "), "%s", j);
    cr_assert(strstr(j, "\"io-out\": {\"count\": 3, \"handle_ns\": 1000}"), "total io-out: %s", j);
    cr_assert_null(strstr(j, "io-in"), "rows never seen are left out: %s", j);
    free(j);
    stats_fini(&s);
}

Test(stats, json_empty_and_single)
{
    struct stats s;
    int ret = -1;
    cr_assert_eq(stats_init(&s, 1), 0);
    char *j = to_string(NULL, &s, &ret);
    cr_assert_eq(ret, 0);
    cr_assert(json_valid(j), "%s", j);
    cr_assert(strstr(j, "\"exits\": {}"), "%s", j);
    free(j);
    stats_fini(&s);

    s = filled(1);
    j = to_string(NULL, &s, &ret);
    cr_assert(json_valid(j), "%s", j);
    free(j);
    stats_fini(&s);
}

Test(stats, json_write_error_reported)
{
    struct stats s = filled(1);
    FILE *f = fopen("/dev/full", "w");
    if (!f)
        cr_skip_test("no /dev/full");
    cr_assert_eq(stats_write_json(&s, f), -EIO);
    fclose(f);
    stats_fini(&s);
}

Test(stats, table_names_rows)
{
    struct stats s = filled(2);
    char *t = to_string(stats_print, &s, NULL);
    cr_assert(strstr(t, "io-out"), "%s", t);
    cr_assert(strstr(t, "mmio-read"), "%s", t);
    cr_assert(strstr(t, "kvm-run"), "%s", t);
    cr_assert(strstr(t, "all"), "totals for more than one vCPU: %s", t);
    cr_assert(strstr(t, "2.500 s"), "%s", t);
    free(t);
    stats_fini(&s);
}

Test(stats, row_names)
{
    char buf[32];
    cr_assert_str_eq(stats_row_name(stats_row_of_exit(KVM_EXIT_SHUTDOWN), buf, sizeof(buf)), "shutdown");
    cr_assert_str_eq(stats_row_name(stats_row_of_exit(50), buf, sizeof(buf)), "exit-50");
    cr_assert_eq(stats_row_of_exit(64), STATS_ROW_OTHER);
    cr_assert_eq(stats_row_of_exit(UINT32_MAX), STATS_ROW_OTHER);
    cr_assert_eq(stats_init(&(struct stats){ 0 }, 0), -EINVAL);
}
