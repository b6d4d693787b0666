/* --net parsing: see devices/virtio/virtio_net_args.h. */
#include "devices/virtio/virtio_net_args.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/pci/pcidev.h"
#include "devices/virtio/virtio_net.h"
#include "devices/virtio/virtio_pci.h"
#include "vmm/arg.h"

const char virtio_net_args_usage[] =
    "network (virtio-net):\n"
    "  --net tap=NAME[,mac=MAC] a virtio NIC on the existing tap NAME (repeatable)\n"
    "  --net bridge=BR[,mac=MAC] a virtio NIC on a new tap added to bridge BR\n"
    "  --net user[,mac=MAC][,hostfwd=FWD]... a virtio NIC on user-mode networking\n"
    "                           (libslirp, no privileges): guest 10.0.2.15 by DHCP,\n"
    "                           gateway 10.0.2.2, DNS 10.0.2.3; hostfwd= forwards a host\n"
    "                           port to the guest, repeatable, QEMU's syntax\n"
    "                           [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT,\n"
    "                           e.g. hostfwd=tcp::3389-:3389 for RDP (an empty HOSTADDR\n"
    "                           is every interface; hostfwd=tcp:127.0.0.1:3389-:3389\n"
    "                           keeps it to this machine)\n";

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

/* "1".."65535", decimal digits only. */
static bool parse_port(const char *s, size_t len, uint16_t *port)
{
    uint32_t v = 0;
    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* Dotted-quad IPv4 (inet_pton's form: four decimal parts 0-255), host order. */
static bool parse_ipv4(const char *s, size_t len, uint32_t *addr)
{
    char buf[16];
    struct in_addr a;
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, &a) != 1)
        return false;
    *addr = ntohl(a.s_addr);
    return true;
}

#define HOSTFWD_FORM "the form is hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, " \
                     "e.g. hostfwd=tcp::3389-:3389"

int virtio_net_hostfwd_parse(const char *value, size_t len, struct net_hostfwd *out,
                             char *err, unsigned errlen)
{
    const char *end = value + len;
    int n = (int)len;

    memset(out, 0, sizeof(*out));
    /* protocol ':' */
    const char *c1 = memchr(value, ':', len);
    if (!c1)
        return arg_fail(err, errlen, "hostfwd=%.*s: no ':' after the protocol; " HOSTFWD_FORM, n,
                        value);
    size_t plen = (size_t)(c1 - value);
    if (arg_key_is(value, plen, "udp"))
        out->udp = true;
    else if (!(plen == 0 || arg_key_is(value, plen, "tcp")))
        return arg_fail(err, errlen, "hostfwd=%.*s: '%.*s' is not a protocol (tcp or udp); "
                        HOSTFWD_FORM, n, value, (int)plen, value);
    /* host part "[HOSTADDR]:HOSTPORT" up to '-' */
    const char *h = c1 + 1;
    const char *dash = memchr(h, '-', (size_t)(end - h));
    if (!dash)
        return arg_fail(err, errlen, "hostfwd=%.*s: no '-' between the host and the guest side; "
                        HOSTFWD_FORM, n, value);
    const char *c2 = memchr(h, ':', (size_t)(dash - h));
    if (!c2)
        return arg_fail(err, errlen, "hostfwd=%.*s: no ':' before the host port; " HOSTFWD_FORM, n,
                        value);
    if (c2 > h && !parse_ipv4(h, (size_t)(c2 - h), &out->host_addr))
        return arg_fail(err, errlen, "hostfwd=%.*s: host address '%.*s' is not an IPv4 address "
                        "(e.g. 127.0.0.1, or empty for every interface); " HOSTFWD_FORM, n, value,
                        (int)(c2 - h), h);
    if (!parse_port(c2 + 1, (size_t)(dash - c2 - 1), &out->host_port))
        return arg_fail(err, errlen, "hostfwd=%.*s: host port '%.*s' is not a port number "
                        "(1-65535); " HOSTFWD_FORM, n, value, (int)(dash - c2 - 1), c2 + 1);
    /* guest part "[GUESTADDR]:GUESTPORT" */
    const char *g = dash + 1;
    const char *c3 = memchr(g, ':', (size_t)(end - g));
    if (!c3)
        return arg_fail(err, errlen, "hostfwd=%.*s: no ':' before the guest port; " HOSTFWD_FORM, n,
                        value);
    out->guest_addr = VIRTIO_NET_USER_GUEST;
    if (c3 > g) {
        uint32_t a;
        if (!parse_ipv4(g, (size_t)(c3 - g), &a))
            return arg_fail(err, errlen, "hostfwd=%.*s: guest address '%.*s' is not an IPv4 "
                            "address (e.g. 10.0.2.15, or empty for it); " HOSTFWD_FORM, n, value,
                            (int)(c3 - g), g);
        uint32_t host = a & ~VIRTIO_NET_USER_MASK;
        if ((a & VIRTIO_NET_USER_MASK) != VIRTIO_NET_USER_NET || host == 0 ||
            host == (~VIRTIO_NET_USER_MASK) || a == VIRTIO_NET_USER_GATEWAY ||
            a == VIRTIO_NET_USER_DNS)
            return arg_fail(err, errlen, "hostfwd=%.*s: guest address '%.*s' is not a guest's "
                            "address in the user network 10.0.2.0/24 (not .0, .2, .3 or .255; the "
                            "guest gets 10.0.2.15 by DHCP); " HOSTFWD_FORM, n, value, (int)(c3 - g), g);
        out->guest_addr = a;
    }
    if (!parse_port(c3 + 1, (size_t)(end - c3 - 1), &out->guest_port))
        return arg_fail(err, errlen, "hostfwd=%.*s: guest port '%.*s' is not a port number "
                        "(1-65535); " HOSTFWD_FORM, n, value, (int)(end - c3 - 1), c3 + 1);
    return 0;
}

void virtio_net_hostfwd_format(const struct net_hostfwd *f, char *buf, size_t len)
{
    net_hostfwd_format(f, buf, len);
}

void virtio_net_arg_backend(const struct virtio_net_arg *a, const char *name,
                            struct net_backend_config *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = a->backend == VIRTIO_NET_USER     ? NET_BACKEND_USER
                : a->backend == VIRTIO_NET_BRIDGE ? NET_BACKEND_BRIDGE
                                                  : NET_BACKEND_TAP;
    out->name = name;
    snprintf(out->ifname, sizeof(out->ifname), "%s", a->ifname);
    for (unsigned i = 0; i < a->nr_hostfwd && i < NET_HOSTFWD_MAX; i++)
        out->hostfwd[out->nr_hostfwd++] = a->hostfwd[i];
}

/* Two forwards that would listen on the same host socket. */
static bool hostfwd_clash(const struct net_hostfwd *a, const struct net_hostfwd *b)
{
    return a->udp == b->udp && a->host_port == b->host_port &&
           (a->host_addr == b->host_addr || a->host_addr == 0 || b->host_addr == 0);
}

int virtio_net_arg_parse(const char *value, struct virtio_net_arg *out, char *err, unsigned errlen)
{
    bool have_if = false;

    memset(out, 0, sizeof(*out));
    if (!value || !*value)
        return arg_fail(err, errlen, "--net: needs tap=NAME, bridge=BR or user");
    const char *p = value;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        const char *v = eq ? eq + 1 : "";
        size_t vlen = eq ? len - klen - 1 : 0;

        if (arg_key_is(p, klen, "tap") || arg_key_is(p, klen, "bridge")) {
            if (have_if)
                return arg_fail(err, errlen, "--net %s: give one of tap=, bridge= and user", value);
            if (!ifname_ok(v, vlen))
                return arg_fail(err, errlen, "--net %s: '%.*s' is not an interface name (1-15 "
                                "characters, no spaces, '/' or ':')", value, (int)vlen, v);
            out->backend = klen == 3 ? VIRTIO_NET_TAP : VIRTIO_NET_BRIDGE;
            memcpy(out->ifname, v, vlen);
            out->ifname[vlen] = '\0';
            have_if = true;
        } else if (arg_key_is(p, klen, "mac") && eq) {
            if (!parse_mac(v, vlen, out->mac))
                return arg_fail(err, errlen, "--net %s: mac=%.*s: give six hex bytes, e.g. "
                                "mac=52:54:00:12:34:56", value, (int)vlen, v);
            if (out->mac[0] & 1)
                return arg_fail(err, errlen, "--net %s: mac=%.*s is a multicast address; the first "
                                "byte must be even (e.g. 52:54:00:...)", value, (int)vlen, v);
            out->mac_set = true;
        } else if (arg_key_is(p, klen, "user")) {
            if (eq)
                return arg_fail(err, errlen, "--net %s: 'user' takes no value; give --net "
                                "user[,hostfwd=...]", value);
            if (have_if)
                return arg_fail(err, errlen, "--net %s: give one of tap=, bridge= and user", value);
            out->backend = VIRTIO_NET_USER;
            snprintf(out->ifname, sizeof(out->ifname), "user");
            have_if = true;
        } else if (arg_key_is(p, klen, "hostfwd") && eq) {
            struct net_hostfwd f;
            char e2[384];
            if (virtio_net_hostfwd_parse(v, vlen, &f, e2, sizeof(e2)))
                return arg_fail(err, errlen, "--net %s: %s", value, e2);
            if (out->nr_hostfwd == VIRTIO_NET_HOSTFWD_MAX)
                return arg_fail(err, errlen, "--net %s: at most %d hostfwd= per network card", value,
                                VIRTIO_NET_HOSTFWD_MAX);
            for (unsigned i = 0; i < out->nr_hostfwd; i++)
                if (hostfwd_clash(&out->hostfwd[i], &f))
                    return arg_fail(err, errlen, "--net %s: hostfwd=%.*s: %s host port %u is already "
                                    "forwarded", value, (int)vlen, v, f.udp ? "udp" : "tcp",
                                    f.host_port);
            out->hostfwd[out->nr_hostfwd++] = f;
        } else {
            return arg_fail(err, errlen, "--net %s: unknown option '%.*s'; give tap=NAME, bridge=BR "
                            "or user, optionally mac=MAC, and for user hostfwd=...", value, (int)len, p);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (!have_if)
        return arg_fail(err, errlen, "--net %s: needs tap=NAME, bridge=BR or user", value);
    if (out->nr_hostfwd && out->backend != VIRTIO_NET_USER)
        return arg_fail(err, errlen, "--net %s: hostfwd= works only with user-mode networking "
                        "(--net user,hostfwd=...); a tap's guest is reached directly", value);
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
    if (arg_key_is(name, namelen, "--net")) {
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
        return arg_fail(err, errlen, "%.*s: not a network flag", (int)namelen, name);
    if (a->nr == VIRTIO_NET_ARGS_MAX)
        return arg_fail(err, errlen, "--net %s: at most %d network cards", value ? value : "",
                        VIRTIO_NET_ARGS_MAX);
    int r = virtio_net_arg_parse(value, &a->nic[a->nr], err, errlen);
    if (r)
        return r;
    struct virtio_net_arg *n = &a->nic[a->nr];
    for (unsigned i = 0; i < a->nr; i++) {
        if (a->nic[i].backend == VIRTIO_NET_TAP && n->backend == VIRTIO_NET_TAP &&
            !strcmp(a->nic[i].ifname, n->ifname))
            return arg_fail(err, errlen, "--net %s: tap %s is already used by another --net", value,
                            n->ifname);
        for (unsigned j = 0; j < a->nic[i].nr_hostfwd; j++)
            for (unsigned k = 0; k < n->nr_hostfwd; k++)
                if (hostfwd_clash(&a->nic[i].hostfwd[j], &n->hostfwd[k]))
                    return arg_fail(err, errlen, "--net %s: %s host port %u is already forwarded by "
                                    "another --net", value, n->hostfwd[k].udp ? "udp" : "tcp",
                                    n->hostfwd[k].host_port);
    }
    /* Each user NIC its own name, so derived MACs differ between them. */
    if (n->backend == VIRTIO_NET_USER)
        snprintf(n->ifname, sizeof(n->ifname), "user%u", a->nr);
    a->nr++;
    return 0;
}

/* ---- the device in the machine's PCI list ---- */

static int net_pcidev_plug(void *dev, const struct pcidev_where *w)
{
    return virtio_net_plug(dev, w->bus, w->parent, w->devfn, w->intx_gsi, w->intx_ctx);
}

static void net_pcidev_unplug(void *dev)
{
    virtio_net_unplug(dev);
}

static void net_pcidev_destroy(void *dev)
{
    virtio_net_destroy(dev);
}

/* No boot_path: a NIC left out of "bootorder" is dropped by OVMF from its
 * boot options, so no PXE/HTTP boot attempts hold up a disk boot. */
static const struct pcidev_ops net_pcidev_ops = {
    .plug = net_pcidev_plug,
    .unplug = net_pcidev_unplug,
    .destroy = net_pcidev_destroy,
};

int virtio_net_attach(const struct pcidev_host *h, const struct virtio_net_args *a,
                      struct pcidev_list *l)
{
    struct virtio_pci_vm pv = { .env = h->env, .irq = h->irq, .vm_fd = h->vm_fd };

    for (unsigned i = 0; i < a->nr; i++) {
        struct virtio_net *n;
        char name[32];
        int err = virtio_net_create(&pv, &a->nic[i], i, h->io_pin, &n);
        if (err)
            return err;
        snprintf(name, sizeof(name), "virtio-net%u", i);
        err = pcidev_add(l, name, PCIDEV_NET, PCIDEV_ROOT_BUS, &net_pcidev_ops, n, NULL);
        if (err) {
            virtio_net_destroy(n);
            return err;
        }
    }
    return 0;
}
