#ifndef MINIVMM_ARG_H
#define MINIVMM_ARG_H
/* Helpers shared by the flag parsers (vmm/config.c and the devices' and
 * vfio's *_args.c): the message into the caller's buffer, KEY=VALUE key
 * matching and the small value syntaxes. Values are (pointer, length)
 * pieces of the flag's text, never NUL-terminated on their own. */
#include <stdbool.h>
#include <stddef.h>

/* Formats the message into err (when given) and returns -EINVAL. */
int arg_fail(char *err, unsigned errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The key k[0..klen) is exactly name. */
bool arg_key_is(const char *k, size_t klen, const char *name);
/* A decimal of at most 6 digits in [lo, hi]. */
bool arg_parse_uint(const char *s, size_t len, unsigned lo, unsigned hi, unsigned *out);
/* on/yes or off/no. */
bool arg_parse_on_off(const char *s, size_t len, bool *out);
#endif
