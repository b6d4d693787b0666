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
