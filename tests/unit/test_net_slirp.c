/* devices/net/net_slirp.c and the user backend of devices/virtio/virtio_net_args.c:
 * hostfwd= parsing, checksum completion, and a real libslirp instance
 * driven from the "guest" end of its socketpair (frames with the 12-byte
 * virtio-net header, as the NIC sends them): DHCP, ARP, a ping with a
 * checksum left to the device, TCP and UDP port forwards from host
 * sockets on 127.0.0.1, a forward whose port is taken, and destroy. No
 * network access is needed: everything stays on this machine. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#include "devices/net/net_slirp.h"
#include "devices/virtio/virtio_net_args.h"

/* ---- hostfwd= and --net user ---- */

Test(net_slirp_args, hostfwd_good)
{
    struct virtio_net_arg a;
    char err[512] = "";
    cr_assert_eq(virtio_net_arg_parse("user,hostfwd=tcp::3389-:3389,hostfwd=udp:127.0.0.1:5353-:53,"
                                      "hostfwd=::2222-10.0.2.20:22,mac=52:54:00:00:00:01",
                                      &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(a.backend, VIRTIO_NET_USER);
    cr_assert(a.mac_set);
    cr_assert_eq(a.nr_hostfwd, 3);
    cr_assert_not(a.hostfwd[0].udp);
    cr_assert_eq(a.hostfwd[0].host_addr, 0, "an empty host address is every interface");
    cr_assert_eq(a.hostfwd[0].host_port, 3389);
    cr_assert_eq(a.hostfwd[0].guest_addr, 0x0A00020F, "an empty guest address is 10.0.2.15");
    cr_assert_eq(a.hostfwd[0].guest_port, 3389);
    cr_assert(a.hostfwd[1].udp);
    cr_assert_eq(a.hostfwd[1].host_addr, 0x7F000001);
    cr_assert_eq(a.hostfwd[1].host_port, 5353);
    cr_assert_eq(a.hostfwd[1].guest_port, 53);
    cr_assert_not(a.hostfwd[2].udp, "an empty protocol is tcp");
    cr_assert_eq(a.hostfwd[2].guest_addr, 0x0A000214);
    cr_assert_eq(a.hostfwd[2].guest_port, 22);
    char text[64];
    virtio_net_hostfwd_format(&a.hostfwd[1], text, sizeof(text));
    cr_assert_str_eq(text, "udp:127.0.0.1:5353-10.0.2.15:53");

    cr_assert_eq(virtio_net_arg_parse("user", &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(a.backend, VIRTIO_NET_USER);
    cr_assert_eq(a.nr_hostfwd, 0);
}

Test(net_slirp_args, hostfwd_bad_values_named)
{
    struct virtio_net_arg a;
    char err[512];
    const char *form = "hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT";
    const struct { const char *value, *want; bool shows_form; } bad[] = {
        { "user,hostfwd=sctp::1-:1", "'sctp' is not a protocol (tcp or udp)", true },
        { "user,hostfwd=tcp", "no ':' after the protocol", true },
        { "user,hostfwd=tcp::3389", "no '-' between the host and the guest side", true },
        { "user,hostfwd=tcp:3389-:3389", "no ':' before the host port", true },
        { "user,hostfwd=tcp:1.2.3:3389-:3389", "host address '1.2.3' is not an IPv4 address", true },
        { "user,hostfwd=tcp:localhost:3389-:3389", "host address 'localhost'", true },
        { "user,hostfwd=tcp::99999-:3389", "host port '99999' is not a port number", true },
        { "user,hostfwd=tcp::0-:3389", "host port '0'", true },
        { "user,hostfwd=tcp::-:3389", "host port ''", true },
        { "user,hostfwd=tcp::3389-3389", "no ':' before the guest port", true },
        { "user,hostfwd=tcp::3389-10.0.3.15:3389", "guest address '10.0.3.15' is not a guest's", true },
        { "user,hostfwd=tcp::3389-10.0.2.2:3389", "guest address '10.0.2.2'", true },
        { "user,hostfwd=tcp::3389-10.0.2.255:3389", "guest address '10.0.2.255'", true },
        { "user,hostfwd=tcp::3389-:", "guest port ''", true },
        { "user,hostfwd=tcp::3389-:3389x", "guest port '3389x'", true },
        { "user,hostfwd=tcp::3389-:3389,hostfwd=tcp:127.0.0.1:3389-:22",
          "tcp host port 3389 is already forwarded", false },
        { "tap=t0,hostfwd=tcp::3389-:3389", "works only with user-mode networking", false },
        { "user=x", "'user' takes no value", false },
        { "user,tap=t0", "give one of tap=, bridge= and user", false },
        { "user,bogus=1", "unknown option 'bogus=1'", false },
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        cr_assert_eq(virtio_net_arg_parse(bad[i].value, &a, err, sizeof(err)), -EINVAL, "%s",
                     bad[i].value);
        cr_assert_not_null(strstr(err, bad[i].want), "'%s' -> '%s'", bad[i].value, err);
        cr_assert_not_null(strstr(err, "--net"), "names the flag: %s", err);
        cr_assert_not_null(strstr(err, bad[i].value), "names the value: %s", err);
        if (bad[i].shows_form)
            cr_assert_not_null(strstr(err, form), "shows the expected form: %s", err);
    }
    /* One forward too many. */
    char many[2048] = "user";
    for (unsigned i = 0; i <= VIRTIO_NET_HOSTFWD_MAX; i++) {
        size_t l = strlen(many);
        snprintf(many + l, sizeof(many) - l, ",hostfwd=tcp::%u-:80", 10000 + i);
    }
    cr_assert_eq(virtio_net_arg_parse(many, &a, err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "at most 16 hostfwd="), "%s", err);
    /* The direct parser names the value too. */
    cr_assert_eq(virtio_net_hostfwd_parse("tcp::1-:70000", 13, &a.hostfwd[0], err, sizeof(err)),
                 -EINVAL);
    cr_assert_not_null(strstr(err, "hostfwd=tcp::1-:70000: guest port '70000'"), "%s", err);
}

Test(net_slirp_args, several_user_nics)
{
    struct virtio_net_args all = { .nr = 0 };
    char err[512];
    cr_assert_eq(virtio_net_args_apply(&all, "--net", 5, "user,hostfwd=tcp::3389-:3389", err,
                                       sizeof(err)), 0, "%s", err);
    cr_assert_eq(virtio_net_args_apply(&all, "--net", 5, "user,hostfwd=tcp:127.0.0.1:3389-:3389",
                                       err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "already forwarded by another --net"), "%s", err);
    cr_assert_eq(virtio_net_args_apply(&all, "--net", 5, "user,hostfwd=udp::3389-:3389", err,
                                       sizeof(err)), 0, "udp and tcp ports are apart: %s", err);
    uint8_t m0[6], m1[6];
    virtio_net_arg_mac(&all.nic[0], m0);
    virtio_net_arg_mac(&all.nic[1], m1);
    cr_assert_arr_neq(m0, m1, 6, "two user NICs get different MACs");
    cr_assert_eq(m0[0], 0x52);
}

/* ---- checksum completion ---- */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* Ones' complement sum (not complemented), folded. */
static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += rd16(p + i);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return sum;
}

/* The pseudo-header sum of an IPv4 packet at ip for protocol proto. */
static uint32_t pseudo_sum(const uint8_t *ip, uint8_t proto, uint16_t l4len)
{
    uint32_t s = sum16(ip + 12, 8, 0);
    return sum16((const uint8_t[]){ 0, proto, (uint8_t)(l4len >> 8), (uint8_t)l4len }, 4, s);
}

Test(net_slirp_csum, completes_like_a_full_checksum)
{
    /* Ethernet + IPv4 + UDP with an odd-length payload. */
    uint8_t f[14 + 20 + 8 + 33] = { 0 };
    uint8_t *ip = f + 14, *udp = ip + 20;
    ip[9] = 17;
    memcpy(ip + 12, (uint8_t[]){ 10, 0, 2, 15, 10, 0, 2, 2 }, 8);
    wr16(udp + 4, 8 + 33);
    for (unsigned i = 0; i < 33; i++)
        udp[8 + i] = (uint8_t)(i * 37 + 1);
    /* Reference: the whole checksum over pseudo header + datagram. */
    uint16_t want = (uint16_t)~sum16(udp, 8 + 33, pseudo_sum(ip, 17, 8 + 33));
    /* What a driver with VIRTIO_NET_F_CSUM hands over: the pseudo sum. */
    wr16(udp + 6, (uint16_t)pseudo_sum(ip, 17, 8 + 33));
    cr_assert_eq(net_slirp_complete_csum(f, sizeof(f), 34, 6), 0);
    cr_assert_eq(rd16(udp + 6), want);
    /* Verifying over the result gives 0xFFFF (RFC 1071). */
    cr_assert_eq(sum16(udp, 8 + 33, pseudo_sum(ip, 17, 8 + 33)), 0xFFFF);
    /* The field must lie inside the frame. */
    cr_assert_eq(net_slirp_complete_csum(f, sizeof(f), (uint16_t)(sizeof(f) - 1), 0), -EINVAL);
    cr_assert_eq(net_slirp_complete_csum(f, sizeof(f), 0xFFFF, 0xFFFF), -EINVAL);
    cr_assert_eq(net_slirp_complete_csum(f, sizeof(f), (uint16_t)(sizeof(f) - 2), 0), 0);
}

/* ---- a live instance ---- */

#define GUEST_IP   0x0A00020Fu
#define GATEWAY_IP 0x0A000202u
#define DNS_IP     0x0A000203u

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static struct net_slirp *sl;
static int gfd = -1;   /* the "guest" (NIC) end */

static void slirp_up(const char *value)
{
    struct virtio_net_arg a;
    char err[512];
    cr_assert_eq(virtio_net_arg_parse(value, &a, err, sizeof(err)), 0, "%s", err);
    struct net_backend_config bc;
    virtio_net_arg_backend(&a, "virtio-net0", &bc);
    cr_assert_eq(net_slirp_open(&bc, &sl, &gfd), 0);
    cr_assert_geq(gfd, 0);
}

static void slirp_down(void)
{
    net_slirp_destroy(sl);
    sl = NULL;
    if (gfd >= 0)
        close(gfd);
    gfd = -1;
}

TestSuite(net_slirp, .fini = slirp_down, .timeout = 30);

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Ethernet + IPv4 header (checksummed) at f; returns the L4 offset. */
static size_t ip_frame(uint8_t *f, const uint8_t dst_mac[6], uint32_t src, uint32_t dst,
                       uint8_t proto, uint16_t l4len)
{
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, guest_mac, 6);
    wr16(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    wr16(ip + 2, (uint16_t)(20 + l4len));
    wr16(ip + 4, 0x1234);
    ip[8] = 64;
    ip[9] = proto;
    put32(ip + 12, src);
    put32(ip + 16, dst);
    wr16(ip + 10, (uint16_t)~sum16(ip, 20, 0));
    return 34;
}

static void guest_send(const void *frame, size_t len, const struct virtio_net_hdr_v1 *h)
{
    uint8_t pkt[12 + 2048];
    struct virtio_net_hdr_v1 zero = { 0 };
    cr_assert_leq(len, 2048);
    memcpy(pkt, h ? h : &zero, 12);
    memcpy(pkt + 12, frame, len);
    cr_assert_eq(send(gfd, pkt, 12 + len, 0), (ssize_t)(12 + len));
}

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_arp_request_for_guest(const uint8_t *f, size_t len)
{
    return len >= 42 && rd16(f + 12) == 0x0806 && rd16(f + 20) == 1 && get32(f + 38) == GUEST_IP;
}

/* The guest answers slirp's ARP request for 10.0.2.15. */
static void answer_arp(const uint8_t *req)
{
    uint8_t r[42];
    memcpy(r, req + 6, 6);
    memcpy(r + 6, guest_mac, 6);
    wr16(r + 12, 0x0806);
    wr16(r + 14, 1);
    wr16(r + 16, 0x0800);
    r[18] = 6;
    r[19] = 4;
    wr16(r + 20, 2);
    memcpy(r + 22, guest_mac, 6);
    put32(r + 28, GUEST_IP);
    memcpy(r + 32, req + 22, 6);
    memcpy(r + 38, req + 28, 4);
    guest_send(r, sizeof(r), NULL);
}

/* Wait up to ms for a frame toward the guest that match() accepts,
 * answering ARP requests for the guest on the way. Every frame must come
 * with a zeroed header. Returns its length (0: none came). */
static size_t guest_wait(uint8_t *f, size_t cap, bool (*match)(const uint8_t *, size_t, void *),
                         void *ctx, int ms)
{
    int64_t end = ms_now() + ms;
    uint8_t pkt[12 + 65536];
    for (;;) {
        int left = (int)(end - ms_now());
        if (left <= 0)
            return 0;
        struct pollfd p = { .fd = gfd, .events = POLLIN };
        if (poll(&p, 1, left) != 1)
            return 0;
        ssize_t n = recv(gfd, pkt, sizeof(pkt), MSG_DONTWAIT);
        if (n < 0)
            continue;
        cr_assert_geq(n, 12 + 14, "a header and an Ethernet frame");
        static const uint8_t zero[12];
        cr_assert_arr_eq(pkt, zero, 12, "frames toward the guest carry a zeroed header");
        size_t len = (size_t)n - 12;
        if (is_arp_request_for_guest(pkt + 12, len))
            answer_arp(pkt + 12);
        if (match(pkt + 12, len, ctx)) {
            cr_assert_leq(len, cap);
            memcpy(f, pkt + 12, len);
            return len;
        }
    }
}

/* DHCP (RFC 2131) DISCOVER from the guest, as a full-size BOOTP message. */
static bool is_dhcp_offer(const uint8_t *f, size_t len, void *ctx)
{
    (void)ctx;
    return len >= 34 + 8 + 240 && rd16(f + 12) == 0x0800 && f[23] == 17 &&
           rd16(f + 34) == 67 && rd16(f + 36) == 68;
}

/* Option code in a DHCP message's options; NULL if absent. */
static const uint8_t *dhcp_opt(const uint8_t *opts, size_t len, uint8_t code)
{
    for (size_t i = 0; i < len;) {
        if (opts[i] == 255)
            return NULL;
        if (opts[i] == 0) {
            i++;
            continue;
        }
        if (i + 2 > len || i + 2 + opts[i + 1] > len)
            return NULL;
        if (opts[i] == code)
            return opts + i;
        i += 2 + opts[i + 1];
    }
    return NULL;
}

Test(net_slirp, dhcp_discover_gets_an_offer_for_10_0_2_15)
{
    slirp_up("user");
    uint8_t f[14 + 20 + 8 + 548];
    memset(f, 0, sizeof(f));
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    size_t l4 = ip_frame(f, bcast, 0, 0xFFFFFFFFu, 17, 8 + 548);
    uint8_t *udp = f + l4, *b = udp + 8;
    wr16(udp, 68);
    wr16(udp + 2, 67);
    wr16(udp + 4, 8 + 548);   /* checksum 0: none (RFC 768) */
    b[0] = 1;                  /* BOOTREQUEST */
    b[1] = 1;
    b[2] = 6;
    put32(b + 4, 0xC0FFEE01);  /* xid */
    memcpy(b + 28, guest_mac, 6);
    put32(b + 236, 0x63825363);   /* magic cookie */
    memcpy(b + 240, (uint8_t[]){ 53, 1, 1, 255 }, 4);   /* DISCOVER */
    guest_send(f, sizeof(f), NULL);

    uint8_t r[2048];
    size_t n = guest_wait(r, sizeof(r), is_dhcp_offer, NULL, 5000);
    cr_assert_gt(n, 0, "a DHCP reply came");
    const uint8_t *rb = r + 42;
    cr_assert_eq(rb[0], 2, "BOOTREPLY");
    cr_assert_eq(get32(rb + 4), 0xC0FFEE01, "same xid");
    cr_assert_eq(get32(rb + 16), GUEST_IP, "yiaddr 10.0.2.15");
    cr_assert_arr_eq(rb + 28, guest_mac, 6);
    cr_assert_eq(get32(rb + 236), 0x63825363);
    const uint8_t *opts = rb + 240;
    size_t olen = n - 42 - 240;
    const uint8_t *o = dhcp_opt(opts, olen, 53);
    cr_assert_not_null(o);
    cr_assert_eq(o[2], 2, "DHCPOFFER");
    o = dhcp_opt(opts, olen, 3);
    cr_assert_not_null(o, "a router");
    cr_assert_eq(get32(o + 2), GATEWAY_IP);
    o = dhcp_opt(opts, olen, 6);
    cr_assert_not_null(o, "a DNS server");
    cr_assert_eq(get32(o + 2), DNS_IP);
    o = dhcp_opt(opts, olen, 1);
    cr_assert_not_null(o, "a netmask");
    cr_assert_eq(get32(o + 2), 0xFFFFFF00u);
    cr_assert(!memcmp(r, guest_mac, 6) || !memcmp(r, bcast, 6),
              "sent to the client's MAC or broadcast");
}

struct arp_want {
    uint32_t ip;
};

static bool is_arp_reply_from(const uint8_t *f, size_t len, void *ctx)
{
    const struct arp_want *w = ctx;
    return len >= 42 && rd16(f + 12) == 0x0806 && rd16(f + 20) == 2 && get32(f + 28) == w->ip;
}

static void arp_request(uint32_t target)
{
    uint8_t q[42];
    memset(q, 0xff, 6);
    memcpy(q + 6, guest_mac, 6);
    wr16(q + 12, 0x0806);
    wr16(q + 14, 1);
    wr16(q + 16, 0x0800);
    q[18] = 6;
    q[19] = 4;
    wr16(q + 20, 1);
    memcpy(q + 22, guest_mac, 6);
    put32(q + 28, GUEST_IP);
    memset(q + 32, 0, 6);
    put32(q + 38, target);
    guest_send(q, sizeof(q), NULL);
}

Test(net_slirp, arp_for_the_gateway_and_dns_is_answered)
{
    slirp_up("user");
    const uint32_t targets[2] = { GATEWAY_IP, DNS_IP };
    for (unsigned i = 0; i < 2; i++) {
        arp_request(targets[i]);
        struct arp_want w = { targets[i] };
        uint8_t r[128];
        size_t n = guest_wait(r, sizeof(r), is_arp_reply_from, &w, 5000);
        cr_assert_gt(n, 0, "an ARP reply for %08x", targets[i]);
        cr_assert_arr_eq(r, guest_mac, 6, "to the asker");
        /* slirp's hosts are 52:55 followed by their IPv4 address */
        const uint8_t sha[6] = { 0x52, 0x55, 10, 0, 2, (uint8_t)targets[i] };
        cr_assert_arr_eq(r + 22, sha, 6);
        cr_assert_arr_eq(r + 32, guest_mac, 6);
        cr_assert_eq(get32(r + 38), GUEST_IP);
    }
    /* Nobody else answers for a random address of the network. */
    arp_request(0x0A000209u);
    struct arp_want w = { 0x0A000209u };
    uint8_t r[128];
    cr_assert_eq(guest_wait(r, sizeof(r), is_arp_reply_from, &w, 300), 0);
}

struct icmp_want {
    uint16_t id;
};

static bool is_echo_reply(const uint8_t *f, size_t len, void *ctx)
{
    const struct icmp_want *w = ctx;
    return len >= 42 && rd16(f + 12) == 0x0800 && f[23] == 1 && f[34] == 0 &&
           rd16(f + 38) == w->id;
}

/* A ping to the gateway with its ICMP checksum left to the device
 * (NEEDS_CSUM, field zero: ICMP has no pseudo header): slirp checks ICMP
 * checksums, so only a completed one is answered. */
Test(net_slirp, ping_with_checksum_offload_is_answered)
{
    slirp_up("user");
    const uint8_t gw_mac[6] = { 0x52, 0x55, 10, 0, 2, 2 };
    uint8_t f[14 + 20 + 8 + 31];
    memset(f, 0, sizeof(f));
    size_t l4 = ip_frame(f, gw_mac, GUEST_IP, GATEWAY_IP, 1, 8 + 31);
    f[l4] = 8;                /* echo request */
    wr16(f + l4 + 4, 0x4242);  /* id */
    wr16(f + l4 + 6, 1);
    for (unsigned i = 0; i < 31; i++)
        f[l4 + 8 + i] = (uint8_t)(0xA0 + i);
    struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                   .csum_start = (uint16_t)l4, .csum_offset = 2 };
    /* Without the flag (and so with a wrong checksum) nothing comes back. */
    guest_send(f, sizeof(f), NULL);
    struct icmp_want w = { 0x4242 };
    uint8_t r[256];
    cr_assert_eq(guest_wait(r, sizeof(r), is_echo_reply, &w, 300), 0,
                 "a bad ICMP checksum is dropped by slirp");
    guest_send(f, sizeof(f), &h);
    size_t n = guest_wait(r, sizeof(r), is_echo_reply, &w, 5000);
    cr_assert_eq(n, sizeof(f), "the echo reply");
    cr_assert_arr_eq(r + 42, f + 42, 31, "with the same data");
    cr_assert_eq(sum16(r + 34, n - 34, 0), 0xFFFF, "and a valid checksum");
}

/* A free TCP or UDP port on 127.0.0.1 (free a moment ago). */
static uint16_t free_port(int type)
{
    int s = socket(AF_INET, type, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    cr_assert_geq(s, 0);
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &al), 0);
    close(s);
    return ntohs(a.sin_port);
}

struct tcp_want {
    uint16_t dport;
    uint8_t flags, mask;
    size_t min_payload;
};

static bool is_tcp_to_guest(const uint8_t *f, size_t len, void *ctx)
{
    const struct tcp_want *w = ctx;
    if (len < 54 || rd16(f + 12) != 0x0800 || f[23] != 6 || get32(f + 30) != GUEST_IP)
        return false;
    const uint8_t *t = f + 14 + (f[14] & 0xF) * 4;
    size_t hl = (size_t)(t[12] >> 4) * 4;
    size_t payload = rd16(f + 16) - (size_t)(t - f - 14) - hl;
    return rd16(t + 2) == w->dport && (t[13] & w->mask) == w->flags && payload >= w->min_payload;
}

/* A TCP segment from the guest's port gport to the forward's peer, with
 * its checksum left to the device (the field holds the pseudo sum). */
static void guest_tcp(const uint8_t *syn, uint16_t gport, uint32_t seq, uint32_t ack,
                      uint8_t flags, const char *data)
{
    size_t dlen = data ? strlen(data) : 0;
    uint8_t f[14 + 20 + 20 + 64] = { 0 };
    const uint8_t *sip = syn + 14;
    size_t l4 = ip_frame(f, syn + 6, GUEST_IP, get32(sip + 12), 6, (uint16_t)(20 + dlen));
    uint8_t *t = f + l4;
    const uint8_t *st = syn + 14 + (syn[14] & 0xF) * 4;
    wr16(t, gport);
    wr16(t + 2, rd16(st));   /* back to the sender's port */
    put32(t + 4, seq);
    put32(t + 8, ack);
    t[12] = 5 << 4;
    t[13] = flags;
    wr16(t + 14, 64240);
    if (dlen)
        memcpy(t + 20, data, dlen);
    wr16(t + 16, (uint16_t)pseudo_sum(f + 14, 6, (uint16_t)(20 + dlen)));
    struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                   .csum_start = (uint16_t)l4, .csum_offset = 16 };
    guest_send(f, l4 + 20 + dlen, &h);
}

Test(net_slirp, tcp_hostfwd_reaches_the_guest_and_back)
{
    uint16_t hport = free_port(SOCK_STREAM);
    char value[96];
    snprintf(value, sizeof(value), "user,hostfwd=tcp:127.0.0.1:%u-:3389", hport);
    slirp_up(value);

    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(hport),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int r = connect(c, (struct sockaddr *)&a, sizeof(a));
    cr_assert(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));

    /* slirp asks for the guest's MAC (guest_wait answers), then the SYN. */
    uint8_t syn[256];
    struct tcp_want w = { .dport = 3389, .flags = 0x02, .mask = 0x12 };
    size_t n = guest_wait(syn, sizeof(syn), is_tcp_to_guest, &w, 5000);
    cr_assert_gt(n, 0, "a SYN for 10.0.2.15:3389 reached the guest side");
    cr_assert_arr_eq(syn, guest_mac, 6, "addressed to the guest's MAC");
    cr_assert_eq(get32(syn + 30), GUEST_IP);
    const uint8_t *st = syn + 14 + (syn[14] & 0xF) * 4;
    uint32_t host_seq = get32(st + 4);

    /* The guest accepts (SYN+ACK, checksum offloaded); the host sends. */
    const uint32_t gseq = 1000;
    guest_tcp(syn, 3389, gseq, host_seq + 1, 0x12, NULL);
    struct pollfd p = { .fd = c, .events = POLLOUT };
    cr_assert_eq(poll(&p, 1, 5000), 1);
    cr_assert_eq(send(c, "hello", 5, MSG_NOSIGNAL), 5);
    uint8_t d[256];
    struct tcp_want wd = { .dport = 3389, .flags = 0x10, .mask = 0x12, .min_payload = 5 };
    n = guest_wait(d, sizeof(d), is_tcp_to_guest, &wd, 5000);
    cr_assert_gt(n, 0, "the host's data reached the guest: the handshake completed");
    const uint8_t *dt = d + 14 + (d[14] & 0xF) * 4;
    cr_assert_eq(memcmp(dt + (dt[12] >> 4) * 4, "hello", 5), 0);

    /* And the guest's data reaches the host socket. */
    guest_tcp(syn, 3389, gseq + 1, host_seq + 1 + 5, 0x18, "world");
    p = (struct pollfd){ .fd = c, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 5000), 1);
    char got[16] = { 0 };
    cr_assert_eq(recv(c, got, sizeof(got), 0), 5);
    cr_assert_str_eq(got, "world");
    close(c);
}

struct udp_want {
    uint16_t dport;
};

static bool is_udp_to_guest(const uint8_t *f, size_t len, void *ctx)
{
    const struct udp_want *w = ctx;
    return len >= 42 && rd16(f + 12) == 0x0800 && f[23] == 17 && get32(f + 30) == GUEST_IP &&
           rd16(f + 36) == w->dport;
}

Test(net_slirp, udp_hostfwd_reaches_the_guest)
{
    uint16_t hport = free_port(SOCK_DGRAM);
    char value[96];
    snprintf(value, sizeof(value), "user,hostfwd=udp:127.0.0.1:%u-:53", hport);
    slirp_up(value);
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(hport),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(sendto(c, "query", 5, 0, (struct sockaddr *)&a, sizeof(a)), 5);
    uint8_t r[256];
    struct udp_want w = { 53 };
    size_t n = guest_wait(r, sizeof(r), is_udp_to_guest, &w, 5000);
    cr_assert_gt(n, 0, "the datagram reached 10.0.2.15:53");
    cr_assert_eq(rd16(r + 38), 8 + 5);
    cr_assert_eq(memcmp(r + 42, "query", 5), 0);
    close(c);
}

Test(net_slirp, hostfwd_on_a_taken_port_fails_cleanly)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(l, 1), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &al), 0);
    char value[96];
    snprintf(value, sizeof(value), "user,hostfwd=tcp:127.0.0.1:%u-:3389", ntohs(a.sin_port));
    struct virtio_net_arg arg;
    char err[512];
    cr_assert_eq(virtio_net_arg_parse(value, &arg, err, sizeof(err)), 0, "%s", err);
    struct net_slirp *s = (struct net_slirp *)0x1;
    int fd = 1234;
    struct net_backend_config bc;
    virtio_net_arg_backend(&arg, "virtio-net0", &bc);
    int r = net_slirp_open(&bc, &s, &fd);
    cr_assert_eq(r, -EADDRINUSE, "%d", r);
    cr_assert_eq(fd, -1, "no descriptor handed out");
    close(l);
}

Test(net_slirp, destroy_joins_promptly)
{
    uint16_t hport = free_port(SOCK_STREAM);
    char value[96];
    snprintf(value, sizeof(value), "user,hostfwd=tcp:127.0.0.1:%u-:22", hport);
    for (int i = 0; i < 3; i++) {
        slirp_up(value);
        /* Some traffic in flight: an ARP question and a connection. */
        arp_request(GATEWAY_IP);
        int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(hport),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        connect(c, (struct sockaddr *)&a, sizeof(a));
        usleep(20000);
        int64_t t0 = ms_now();
        slirp_down();
        cr_assert_lt(ms_now() - t0, 1000, "destroy does not wait for a timeout");
        close(c);
        /* The forward's port is free again (its socket was closed). */
        int l = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
        close(l);
    }
    /* The NIC's end closed first: the thread notices and still stops. */
    slirp_up("user");
    close(gfd);
    gfd = -1;
    usleep(20000);
    net_slirp_destroy(sl);
    sl = NULL;
    net_slirp_destroy(NULL);
}

Test(net_slirp, malformed_frames_are_dropped_and_counted)
{
    slirp_up("user");
    uint8_t shortf[12 + 10] = { 0 };
    cr_assert_eq(send(gfd, shortf, sizeof(shortf), 0), (ssize_t)sizeof(shortf));
    uint8_t f[60] = { 0 };
    struct virtio_net_hdr_v1 gso = { .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .gso_size = 1000 };
    guest_send(f, sizeof(f), &gso);
    struct virtio_net_hdr_v1 far = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 58,
                                     .csum_offset = 1 };
    guest_send(f, sizeof(f), &far);
    uint64_t to, from = 0;
    for (int i = 0; i < 2000 && from < 3; i++) {
        net_slirp_counters(sl, &to, &from);
        usleep(1000);
    }
    cr_assert_eq(from, 3);
    /* Still alive: ARP works. */
    arp_request(GATEWAY_IP);
    struct arp_want w = { GATEWAY_IP };
    uint8_t r[128];
    cr_assert_gt(guest_wait(r, sizeof(r), is_arp_reply_from, &w, 5000), 0);
}
