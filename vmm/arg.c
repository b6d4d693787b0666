/* Flag-parsing helpers: see vmm/arg.h. */
#include "vmm/arg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int arg_fail(char *err, unsigned errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

bool arg_key_is(const char *k, size_t klen, const char *name)
{
    return strlen(name) == klen && !memcmp(k, name, klen);
}

bool arg_parse_uint(const char *s, size_t len, unsigned lo, unsigned hi, unsigned *out)
{
    unsigned long v = 0;

    if (len == 0 || len > 6)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = (unsigned)v;
    return true;
}

bool arg_parse_on_off(const char *s, size_t len, bool *out)
{
    if (arg_key_is(s, len, "on") || arg_key_is(s, len, "yes")) {
        *out = true;
        return true;
    }
    if (arg_key_is(s, len, "off") || arg_key_is(s, len, "no")) {
        *out = false;
        return true;
    }
    return false;
}

int arg_parse_size(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0, mult = 1ULL << 20;
    size_t digits = 0;

    if (!s)
        return -EINVAL;
    while (digits < len && s[digits] >= '0' && s[digits] <= '9')
        digits++;
    if (digits == 0 || len - digits > 1)
        return -EINVAL;
    if (len - digits == 1) {
        switch (s[digits]) {
        case 'k': case 'K': mult = 1ULL << 10; break;
        case 'm': case 'M': mult = 1ULL << 20; break;
        case 'g': case 'G': mult = 1ULL << 30; break;
        case 't': case 'T': mult = 1ULL << 40; break;
        default: return -EINVAL;
        }
    }
    for (size_t i = 0; i < digits; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    if (v > UINT64_MAX / mult)
        return -EINVAL;
    *out = v * mult;
    return 0;
}
