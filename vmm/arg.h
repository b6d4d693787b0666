#ifndef MINIVMM_ARG_H
#define MINIVMM_ARG_H
/* Helpers shared by the flag parsers (vmm/config.c, the devices' and vfio's
 * *_args.c, and minivmm host's host/cli.c): the message into the caller's
 * buffer, KEY=VALUE key matching and the small value syntaxes. Values are
 * (pointer, length) pieces of the flag's text, never NUL-terminated on their
 * own. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Formats the message into err (when given) and returns -EINVAL. */
int arg_fail(char *err, unsigned errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The key k[0..klen) is exactly name. */
bool arg_key_is(const char *k, size_t klen, const char *name);
/* A decimal of at most 6 digits in [lo, hi]. */
bool arg_parse_uint(const char *s, size_t len, unsigned lo, unsigned hi, unsigned *out);
/* on/yes or off/no. */
bool arg_parse_on_off(const char *s, size_t len, bool *out);
/* The one size syntax of every minivmm flag that takes one (--memory,
 * --hugepages, --pci-mmio64, minivmm host check --memory/--hugepages):
 * digits and an optional K, M, G or T suffix, either case, powers of 1024
 * ("512M", "8G", "1t", "64K"); a plain number counts MiB ("4096" = 4 GiB).
 * Nothing else: no sign, spaces, fractions, "0x", "MiB" or "GB". 0 and the
 * bytes in *out, or -EINVAL on garbage or a value over 64 bits. Zero parses;
 * a caller that forbids it says so in its own words. */
int arg_parse_size(const char *s, size_t len, uint64_t *out);
#endif
