/* --net parsing: see devices/virtio_net_args.h. */
#include "devices/virtio_net_args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char virtio_net_args_usage[] =
    "network (virtio-net):\n"
    "  --net tap=NAME[,mac=MAC] a virtio NIC on the existing tap NAME (repeatable)\n"
    "  --net bridge=BR[,mac=MAC] a virtio NIC on a new tap added to bridge BR\n";

static int fail(char *err, unsigned errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, unsigned errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "xx:xx:xx:xx:xx:xx" (or '-' separators), exactly. */
static bool parse_mac(const char *s, size_t len, uint8_t mac[6])
{
    if (len != 17)
        return false;
    for (unsigned i = 0; i < 6; i++) {
        int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':' && s[3 * i + 2] != '-'))
            return false;
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool ifname_ok(const char *s, size_t len)
{
    if (len == 0 || len >= VIRTIO_NET_IFNAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] == '/' || s[i] == ':' || (unsigned char)s[i] >= 0x7F)
            return false;
    return !(len == 1 && s[0] == '.') && !(len == 2 && s[0] == '.' && s[1] == '.');
}

int virtio_net_arg_parse(const char *value, struct virtio_net_arg *out, char *err, unsigned errlen)
{
    bool have_if = false;

    memset(out, 0, sizeof(*out));
    if (!value || !*value)
        return fail(err, errlen, "--net: needs tap=NAME or bridge=BR");
    const char *p = value;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        const char *v = eq ? eq + 1 : "";
        size_t vlen = eq ? len - klen - 1 : 0;

        if ((klen == 3 && !memcmp(p, "tap", 3)) || (klen == 6 && !memcmp(p, "bridge", 6))) {
            if (have_if)
                return fail(err, errlen, "--net %s: give one of tap= and bridge=", value);
            if (!ifname_ok(v, vlen))
                return fail(err, errlen, "--net %s: '%.*s' is not an interface name (1-15 "
                            "characters, no spaces, '/' or ':')", value, (int)vlen, v);
            out->backend = klen == 3 ? VIRTIO_NET_TAP : VIRTIO_NET_BRIDGE;
            memcpy(out->ifname, v, vlen);
            out->ifname[vlen] = '\0';
            have_if = true;
        } else if (klen == 3 && !memcmp(p, "mac", 3) && eq) {
            if (!parse_mac(v, vlen, out->mac))
                return fail(err, errlen, "--net %s: mac=%.*s: give six hex bytes, e.g. "
                            "mac=52:54:00:12:34:56", value, (int)vlen, v);
            if (out->mac[0] & 1)
                return fail(err, errlen, "--net %s: mac=%.*s is a multicast address; the first "
                            "byte must be even (e.g. 52:54:00:...)", value, (int)vlen, v);
            out->mac_set = true;
        } else if (klen == 4 && !memcmp(p, "user", 4)) {
            return fail(err, errlen, "--net %s: user-mode networking (libslirp) is not there yet; "
                        "use tap=NAME or bridge=BR", value);
        } else {
            return fail(err, errlen, "--net %s: unknown option '%.*s'; give tap=NAME or bridge=BR, "
                        "and optionally mac=MAC", value, (int)len, p);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (!have_if)
        return fail(err, errlen, "--net %s: needs tap=NAME or bridge=BR", value);
    return 0;
}

void virtio_net_arg_mac(const struct virtio_net_arg *a, uint8_t mac[6])
{
    if (a->mac_set) {
        memcpy(mac, a->mac, 6);
        return;
    }
    /* FNV-1a of the interface name and kind: stable across runs. */
    uint32_t h = 2166136261u;
    h = (h ^ (uint8_t)a->backend) * 16777619u;
    for (const char *s = a->ifname; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    mac[0] = 0x52;
    mac[1] = 0x54;
    mac[2] = 0x00;
    mac[3] = (uint8_t)(h >> 16);
    mac[4] = (uint8_t)(h >> 8);
    mac[5] = (uint8_t)h;
}

bool virtio_net_args_flag(const char *name, size_t namelen, bool *takes_value)
{
    if (namelen == 5 && !memcmp(name, "--net", 5)) {
        *takes_value = true;
        return true;
    }
    return false;
}

int virtio_net_args_apply(struct virtio_net_args *a, const char *name, size_t namelen,
                          const char *value, char *err, unsigned errlen)
{
    bool tv;
    if (!virtio_net_args_flag(name, namelen, &tv))
        return fail(err, errlen, "%.*s: not a network flag", (int)namelen, name);
    if (a->nr == VIRTIO_NET_ARGS_MAX)
        return fail(err, errlen, "--net %s: at most %d network cards", value ? value : "",
                    VIRTIO_NET_ARGS_MAX);
    int r = virtio_net_arg_parse(value, &a->nic[a->nr], err, errlen);
    if (r)
        return r;
    const struct virtio_net_arg *n = &a->nic[a->nr];
    for (unsigned i = 0; i < a->nr; i++)
        if (a->nic[i].backend == VIRTIO_NET_TAP && n->backend == VIRTIO_NET_TAP &&
            !strcmp(a->nic[i].ifname, n->ifname))
            return fail(err, errlen, "--net %s: tap %s is already used by another --net", value,
                        n->ifname);
    a->nr++;
    return 0;
}
