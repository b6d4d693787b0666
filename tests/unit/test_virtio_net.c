/* devices/virtio/virtio_net.c, devices/virtio/virtio_net_args.c: the transmit header
 * check on hand-made chains, --net parsing, and the NIC end to end over a
 * SOCK_SEQPACKET socketpair standing in for the tap (same packet framing,
 * the 12-byte header included): a driver written here programs the
 * transport through the MMIO bus, the I/O thread moves packets on io_uring. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#define VIRTIO_PCI_NO_LEGACY
#include <linux/virtio_pci.h>

#include "devices/pci/pci.h"
#include "devices/virtio/virtio_net.h"
#include "devices/virtio/virtio_net_args.h"
#include "devices/virtio/virtio_pci.h"
#include "fake_env.h"
#include "virtio_driver.h"
#include "vmm/gm.h"
#include "vmm/irq.h"

/* ---- transmit check ---- */

struct mk {
    struct virtq_seg seg[4];
    struct virtq_chain c;
    uint8_t buf[4][2048];
};

static void mk_packet(struct mk *m, const struct virtio_net_hdr_v1 *h, uint32_t frame, bool split)
{
    memset(m, 0, sizeof(*m));
    m->c.seg = m->seg;
    m->c.cap = 4;
    memcpy(m->buf[0], h, sizeof(*h));
    if (split) {
        m->seg[0] = (struct virtq_seg){ .hva = m->buf[0], .len = 12 };
        m->seg[1] = (struct virtq_seg){ .hva = m->buf[1], .len = frame };
        m->c.nr = m->c.nr_readable = 2;
    } else {
        m->seg[0] = (struct virtq_seg){ .hva = m->buf[0], .len = 12 + frame };
        m->c.nr = m->c.nr_readable = 1;
    }
    m->c.readable_len = 12 + frame;
}

#define F(x) (1ULL << VIRTIO_NET_F_##x)

Test(virtio_net_tx, plain_packets_pass)
{
    struct mk m;
    struct virtio_net_hdr_v1 h = { 0 };
    mk_packet(&m, &h, 60, true);
    cr_assert_eq(virtio_net_tx_check(&m.c, 0), 0);
    mk_packet(&m, &h, 1514, false);
    cr_assert_eq(virtio_net_tx_check(&m.c, 0), 0);
}

Test(virtio_net_tx, too_short_or_writable)
{
    struct mk m;
    struct virtio_net_hdr_v1 h = { 0 };
    mk_packet(&m, &h, 13, true);
    cr_assert_eq(virtio_net_tx_check(&m.c, 0), -EINVAL, "shorter than an Ethernet header");
    mk_packet(&m, &h, 60, true);
    m.seg[2] = (struct virtq_seg){ .hva = m.buf[2], .len = 4, .write = true };
    m.c.nr = 3;
    m.c.writable_len = 4;
    cr_assert_eq(virtio_net_tx_check(&m.c, 0), -EINVAL, "a writable buffer in a transmit chain");
}

Test(virtio_net_tx, checksum_offload)
{
    struct mk m;
    struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34,
                                   .csum_offset = 16 };
    mk_packet(&m, &h, 60, true);
    cr_assert_eq(virtio_net_tx_check(&m.c, 0), -EINVAL, "CSUM not negotiated");
    cr_assert_eq(virtio_net_tx_check(&m.c, F(CSUM)), 0);
    h.csum_start = 50;
    h.csum_offset = 9;   /* 50 + 9 + 2 > 60 */
    mk_packet(&m, &h, 60, true);
    cr_assert_eq(virtio_net_tx_check(&m.c, F(CSUM)), -EINVAL, "checksum field past the frame");
    h.csum_start = 0xFFFF;
    h.csum_offset = 0xFFFF;
    mk_packet(&m, &h, 60, true);
    cr_assert_eq(virtio_net_tx_check(&m.c, F(CSUM)), -EINVAL, "no 16-bit wrap");
    h = (struct virtio_net_hdr_v1){ .flags = VIRTIO_NET_HDR_F_DATA_VALID };
    mk_packet(&m, &h, 60, true);
    cr_assert_eq(virtio_net_tx_check(&m.c, F(CSUM)), -EINVAL, "DATA_VALID is the device's");
}

Test(virtio_net_tx, segmentation_offload)
{
    struct mk m;
    struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                   .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .gso_size = 1448,
                                   .csum_start = 34, .csum_offset = 16, .hdr_len = 54 };
    uint64_t all = F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6);
    mk_packet(&m, &h, 2000, false);
    cr_assert_eq(virtio_net_tx_check(&m.c, all), 0);
    cr_assert_eq(virtio_net_tx_check(&m.c, F(CSUM)), -EINVAL, "HOST_TSO4 not negotiated");
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
    mk_packet(&m, &h, 2000, false);
    cr_assert_eq(virtio_net_tx_check(&m.c, all), 0);
    cr_assert_eq(virtio_net_tx_check(&m.c, F(CSUM) | F(HOST_TSO4)), -EINVAL);
    h.gso_type = VIRTIO_NET_HDR_GSO_UDP;
    mk_packet(&m, &h, 2000, false);
    cr_assert_eq(virtio_net_tx_check(&m.c, all), -EINVAL, "UFO is not offered");
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
    mk_packet(&m, &h, 2000, false);
    cr_assert_eq(virtio_net_tx_check(&m.c, all), -EINVAL, "ECN is not offered");
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    h.gso_size = 0;
    mk_packet(&m, &h, 2000, false);
    cr_assert_eq(virtio_net_tx_check(&m.c, all), -EINVAL, "GSO without a segment size");
    h.gso_size = 1448;
    h.flags = 0;
    mk_packet(&m, &h, 2000, false);
    cr_assert_eq(virtio_net_tx_check(&m.c, all), -EINVAL, "GSO without NEEDS_CSUM");
}

/* ---- --net ---- */

Test(virtio_net_args, tap_bridge_and_mac)
{
    struct virtio_net_arg a;
    char err[256];
    cr_assert_eq(virtio_net_arg_parse("tap=tap0", &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(a.backend, VIRTIO_NET_TAP);
    cr_assert_str_eq(a.ifname, "tap0");
    cr_assert_not(a.mac_set);
    uint8_t m1[6], m2[6];
    virtio_net_arg_mac(&a, m1);
    virtio_net_arg_mac(&a, m2);
    cr_assert_arr_eq(m1, m2, 6, "the derived MAC is stable");
    cr_assert_eq(m1[0], 0x52);
    cr_assert_eq(m1[0] & 1, 0, "unicast");

    cr_assert_eq(virtio_net_arg_parse("bridge=br0,mac=52:54:00:AB:cd:01", &a, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(a.backend, VIRTIO_NET_BRIDGE);
    cr_assert_str_eq(a.ifname, "br0");
    virtio_net_arg_mac(&a, m1);
    const uint8_t want[6] = { 0x52, 0x54, 0x00, 0xAB, 0xCD, 0x01 };
    cr_assert_arr_eq(m1, want, 6);
}

Test(virtio_net_args, bad_values_named)
{
    struct virtio_net_arg a;
    char err[256];
    const char *bad[][2] = {
        { "", "tap=NAME" },
        { "mac=52:54:00:00:00:01", "needs tap=NAME" },
        { "tap=", "not an interface name" },
        { "tap=averyveryverylongname", "not an interface name" },
        { "tap=a/b", "not an interface name" },
        { "tap=t0,bridge=br0", "one of" },
        { "tap=t0,mac=52:54:00:00:00", "mac=" },
        { "tap=t0,mac=01:00:5e:00:00:01", "multicast" },
        { "tap=t0,hostfwd=tcp::3389-:3389", "only with user" },
        { "tap=t0,vhost=on", "unknown option 'vhost=on'" },
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        cr_assert_eq(virtio_net_arg_parse(bad[i][0], &a, err, sizeof(err)), -EINVAL, "%s", bad[i][0]);
        cr_assert_not_null(strstr(err, bad[i][1]), "'%s' -> '%s'", bad[i][0], err);
        cr_assert_not_null(strstr(err, "--net"), "names the flag: %s", err);
    }
    struct virtio_net_args all = { .nr = 0 };
    cr_assert_eq(virtio_net_args_apply(&all, "--net", 5, "tap=t0", err, sizeof(err)), 0);
    cr_assert_eq(virtio_net_args_apply(&all, "--net", 5, "tap=t0", err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "already"));
}

/* ---- end to end over a socketpair ---- */

#define MiB (1ULL << 20)
#define BAR_ADDR 0xE0000000ULL
#define DEVFN PCI_DEVFN(6, 0)
#define INTX_GSI 23
#define QSZ 16
#define BUF_GPA 0x100000ULL

static struct fake_env fe;
static struct gm gm;
static struct irq_table irq;
static struct pci_bus pb;
static struct virtio_net *nic;
static int peer = -1;
static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static struct vdrv drv;

static int intx_rule(void *ctx, const struct pci_device *d, uint8_t pin)
{
    (void)ctx;
    (void)d;
    (void)pin;
    return INTX_GSI;
}

/* The NIC over a socketpair (is_tap as given: the socket stands in for a
 * tap when true), or on user-mode networking (--net user, libslirp). */
enum nic_kind { NIC_SOCKET, NIC_TAPLIKE, NIC_USER };

static void net_up_kind(enum nic_kind kind)
{
    int sv[2];
    fake_env_init(&fe);
    struct gm_config gc = { .size = 4 * MiB, .lock = false };
    cr_assert_eq(gm_init(&gm, &gc), 0);
    fe.env.gm = &gm;
    cr_assert_eq(irq_table_init(&irq, -1, 0), 0);
    cr_assert_eq(pci_bus_init(&pb, &fe.pio, &fe.mmio), 0);
    struct virtio_pci_vm vm = { .env = &fe.env, .irq = &irq, .vm_fd = -1 };
    if (kind == NIC_USER) {
        struct virtio_net_arg a;
        char err[256];
        cr_assert_eq(virtio_net_arg_parse("user,mac=52:54:00:12:34:56", &a, err, sizeof(err)), 0,
                     "%s", err);
        peer = -1;
        cr_assert_eq(virtio_net_create(&vm, &a, 0, -1, &nic), 0);
    } else {
        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        peer = sv[1];
        cr_assert_eq(virtio_net_create_fd(&vm, sv[0], kind == NIC_TAPLIKE, mac, 0, -1, &nic), 0);
    }
    cr_assert_eq(virtio_net_plug(nic, &pb, NULL, DEVFN, intx_rule, NULL), 0);
    drv = (struct vdrv){ .mmio = &fe.mmio, .gm = &gm, .pb = &pb, .devfn = DEVFN,
                         .bar = BAR_ADDR, .qsz = QSZ, .ring_base = 0x1000 };
}

static void net_up(void)
{
    net_up_kind(NIC_SOCKET);
}

static void net_down(void)
{
    virtio_net_destroy(nic);
    if (peer >= 0)
        close(peer);
    pci_bus_fini(&pb);
    irq_table_fini(&irq);
    gm_fini(&gm);
    fake_env_fini(&fe);
}

TestSuite(virtio_net, .init = net_up, .fini = net_down, .timeout = 30);

#define BASE_FEATURES ((1ULL << VIRTIO_F_VERSION_1) | F(MAC) | F(STATUS))
#define ALL_FEATURES (~0ULL)

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 3);
}

static ssize_t peer_recv(uint8_t *buf, size_t len, int ms)
{
    struct pollfd p = { .fd = peer, .events = POLLIN };
    if (poll(&p, 1, ms) != 1)
        return -1;
    return recv(peer, buf, len, MSG_DONTWAIT);
}

Test(virtio_net, config_and_features)
{
    vdrv_init(&drv, BASE_FEATURES, 2);
    uint64_t f = vdrv_device_features(&drv);
    cr_assert(f & F(MAC));
    cr_assert(f & F(STATUS));
    cr_assert(f & F(CSUM), "the packet socket's reader finishes checksums");
    cr_assert_not(f & F(GUEST_CSUM), "only a tap hands over partial checksums");
    cr_assert_not(f & F(HOST_TSO4), "only a tap segments");
    cr_assert_not(f & F(HOST_TSO6));
    cr_assert_not(f & F(GUEST_TSO4));
    cr_assert_not(f & F(GUEST_TSO6));
    cr_assert_not(f & F(MRG_RXBUF));
    cr_assert_not(f & F(CTRL_VQ));
    cr_assert_not(f & F(MQ));
    cr_assert_not(f & F(HOST_UFO));
    uint32_t v;
    cr_assert_eq(pci_config_read(&pb, 0, DEVFN, PCI_DEVICE_ID, 2, &v), 0);
    cr_assert_eq(v, 0x1041);
    for (unsigned i = 0; i < 6; i++)
        cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_DEVCFG_OFF + i, 1), mac[i]);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_DEVCFG_OFF + 6, 2), VIRTIO_NET_S_LINK_UP);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
}

Test(virtio_net, transmit)
{
    vdrv_init(&drv, BASE_FEATURES, 2);
    struct virtio_net_hdr_v1 h = { 0 };
    uint8_t frame[60];
    fill(frame, sizeof(frame), 7);
    cr_assert_eq(gm_write(&gm, BUF_GPA, &h, sizeof(h)), 0);
    cr_assert_eq(gm_write(&gm, BUF_GPA + 0x100, frame, 20), 0);
    cr_assert_eq(gm_write(&gm, BUF_GPA + 0x200, frame + 20, 40), 0);
    struct vdrv_seg s[3] = { { BUF_GPA, 12, false }, { BUF_GPA + 0x100, 20, false },
                         { BUF_GPA + 0x200, 40, false } };
    uint16_t head = vdrv_add_chain(&drv, 1, s, 3);
    vdrv_kick(&drv, 1);
    uint8_t got[256];
    ssize_t n = peer_recv(got, sizeof(got), 5000);
    cr_assert_eq(n, 72, "one packet of header + frame");
    cr_assert_arr_eq(got + 12, frame, 60);
    uint32_t id, len;
    cr_assert(vdrv_wait_used(&drv, 1, 1, &id, &len, 5000));
    cr_assert_eq(id, head);
    cr_assert_eq(len, 0);
    cr_assert_geq(fe.raises[INTX_GSI], 1, "transmit completion interrupt");
}

Test(virtio_net, transmit_refused_for_features_not_negotiated)
{
    vdrv_init(&drv, BASE_FEATURES, 2);   /* no CSUM, no HOST_TSO4 */
    struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                   .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .gso_size = 1448,
                                   .csum_start = 34, .csum_offset = 16 };
    cr_assert_eq(gm_write(&gm, BUF_GPA, &h, sizeof(h)), 0);
    struct vdrv_seg s[2] = { { BUF_GPA, 12, false }, { BUF_GPA + 0x100, 1000, false } };
    vdrv_add_chain(&drv, 1, s, 2);
    vdrv_kick(&drv, 1);
    cr_assert(vdrv_wait_used(&drv, 1, 1, NULL, NULL, 5000), "the chain is returned");
    uint8_t got[2048];
    cr_assert_eq(peer_recv(got, sizeof(got), 100), -1, "nothing reached the tap");
    uint64_t rxd, txd;
    virtio_net_counters(nic, &rxd, &txd);
    cr_assert_eq(txd, 1);
    /* Even with every feature the device offers negotiated, TSO is not
     * among them on a packet socket: refused again ... */
    vdrv_init(&drv, ALL_FEATURES, 2);
    cr_assert_eq(gm_write(&gm, BUF_GPA, &h, sizeof(h)), 0);
    vdrv_add_chain(&drv, 1, s, 2);
    vdrv_kick(&drv, 1);
    cr_assert(vdrv_wait_used(&drv, 1, 1, NULL, NULL, 5000));
    cr_assert_eq(peer_recv(got, sizeof(got), 100), -1, "no TSO packet on a packet socket");
    /* ... while a checksum-offloaded one goes out as it is. */
    h.gso_type = VIRTIO_NET_HDR_GSO_NONE;
    h.gso_size = 0;
    cr_assert_eq(gm_write(&gm, BUF_GPA, &h, sizeof(h)), 0);
    vdrv_add_chain(&drv, 1, s, 2);
    vdrv_kick(&drv, 1);
    cr_assert_eq(peer_recv(got, sizeof(got), 5000), 1012);
    cr_assert_eq(got[0], VIRTIO_NET_HDR_F_NEEDS_CSUM, "the header goes to the reader untouched");
}

static void post_rx(unsigned k, uint32_t len)
{
    struct vdrv_seg s[2] = { { BUF_GPA + 0x10000ULL * k, 12, true },
                         { BUF_GPA + 0x10000ULL * k + 0x100, len - 12, true } };
    vdrv_add_chain(&drv, 0, s, 2);
}

Test(virtio_net, receive)
{
    vdrv_init(&drv, BASE_FEATURES, 2);
    post_rx(0, 12 + 1514);
    post_rx(1, 12 + 1514);
    vdrv_kick(&drv, 0);
    uint8_t pkt[12 + 100];
    memset(pkt, 0, 12);
    pkt[10] = 0x77;   /* num_buffers from the tap is not trusted */
    fill(pkt + 12, 100, 42);
    cr_assert_eq(send(peer, pkt, sizeof(pkt), 0), (ssize_t)sizeof(pkt));
    uint32_t id, len;
    cr_assert(vdrv_wait_used(&drv, 0, 1, &id, &len, 5000), "a packet was received");
    cr_assert_eq(id, 0);
    cr_assert_eq(len, sizeof(pkt));
    uint8_t got[100];
    cr_assert_eq(gm_read(&gm, BUF_GPA + 0x100, got, sizeof(got)), 0);
    cr_assert_arr_eq(got, pkt + 12, 100);
    uint16_t nb;
    cr_assert_eq(gm_read(&gm, BUF_GPA + 10, &nb, 2), 0);
    cr_assert_eq(nb, 1, "num_buffers = 1 without MRG_RXBUF");
    cr_assert_geq(fe.raises[INTX_GSI], 1);
    /* The second packet goes into the second buffer. */
    cr_assert_eq(send(peer, pkt, 60, 0), 60);
    cr_assert(vdrv_wait_used(&drv, 0, 1, &id, &len, 5000));
    cr_assert_eq(id, 2);
    cr_assert_eq(len, 60);
}

Test(virtio_net, receive_waits_for_buffers)
{
    vdrv_init(&drv, BASE_FEATURES, 2);
    uint8_t pkt[12 + 64];
    memset(pkt, 0, sizeof(pkt));
    fill(pkt + 12, 64, 9);
    cr_assert_eq(send(peer, pkt, sizeof(pkt), 0), (ssize_t)sizeof(pkt));
    usleep(20000);
    cr_assert_eq(vdrv_used_idx(&drv, 0), 0, "no buffer yet");
    post_rx(0, 12 + 1514);
    vdrv_kick(&drv, 0);
    uint32_t len;
    cr_assert(vdrv_wait_used(&drv, 0, 1, NULL, &len, 5000));
    cr_assert_eq(len, sizeof(pkt));
    uint8_t got[64];
    cr_assert_eq(gm_read(&gm, BUF_GPA + 0x100, got, sizeof(got)), 0);
    cr_assert_arr_eq(got, pkt + 12, 64);
}

Test(virtio_net, reset_with_a_receive_outstanding)
{
    vdrv_init(&drv, BASE_FEATURES, 2);
    post_rx(0, 12 + 1514);
    vdrv_kick(&drv, 0);
    usleep(20000);   /* the READV is waiting on the socket now */
    vdrv_bar_wr(&drv, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_STATUS, 1), 0, "the reset completed");
    vdrv_init(&drv, BASE_FEATURES, 2);
    post_rx(0, 12 + 1514);
    vdrv_kick(&drv, 0);
    uint8_t pkt[12 + 64] = { 0 };
    cr_assert_eq(send(peer, pkt, sizeof(pkt), 0), (ssize_t)sizeof(pkt));
    cr_assert(vdrv_wait_used(&drv, 0, 1, NULL, NULL, 5000), "receiving works after the reset");
}

Test(virtio_net, small_receive_buffer_returned)
{
    vdrv_init(&drv, BASE_FEATURES, 2);
    struct vdrv_seg s[1] = { { BUF_GPA, 20, true } };   /* header + 8 bytes */
    vdrv_add_chain(&drv, 0, s, 1);
    post_rx(1, 12 + 1514);
    vdrv_kick(&drv, 0);
    uint32_t id, len;
    cr_assert(vdrv_wait_used(&drv, 0, 1, &id, &len, 5000));
    cr_assert_eq(len, 0, "too small for a frame: returned unused");
    uint8_t pkt[12 + 60] = { 0 };
    cr_assert_eq(send(peer, pkt, sizeof(pkt), 0), (ssize_t)sizeof(pkt));
    cr_assert(vdrv_wait_used(&drv, 0, 1, &id, &len, 5000));
    cr_assert_eq(len, sizeof(pkt));
}

Test(virtio_net, broken_ring_needs_reset)
{
    vdrv_init(&drv, BASE_FEATURES, 2);
    /* A transmit descriptor pointing outside RAM. */
    struct vdrv_seg s[1] = { { 64 * MiB, 100, false } };
    vdrv_add_chain(&drv, 1, s, 1);
    vdrv_kick(&drv, 1);
    for (int i = 0; i < 5000 && !(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET); i++)
        usleep(1000);
    cr_assert(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
    vdrv_init(&drv, BASE_FEATURES, 2);
    cr_assert_not(vdrv_bar_rd(&drv, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

Test(virtio_net, packet_larger_than_a_small_buffer)
{
    vdrv_init(&drv, BASE_FEATURES, 2);
    post_rx(0, 12 + 100);    /* below the 12 + 1514 the spec asks for */
    post_rx(1, 12 + 1514);
    vdrv_kick(&drv, 0);
    uint8_t big[12 + 500] = { 0 }, small[12 + 100] = { 0 };
    fill(small + 12, 100, 5);
    cr_assert_eq(send(peer, big, sizeof(big), 0), (ssize_t)sizeof(big));
    uint32_t id, len;
    cr_assert(vdrv_wait_used(&drv, 0, 1, &id, &len, 5000));
    cr_assert_eq(id, 0);
    cr_assert_eq(len, 0, "the small buffer goes back empty: it cannot hold up the queue");
    cr_assert_eq(send(peer, small, sizeof(small), 0), (ssize_t)sizeof(small));
    cr_assert(vdrv_wait_used(&drv, 0, 1, &id, &len, 5000));
    cr_assert_eq(id, 2, "the next packet lands in the next buffer");
    cr_assert_eq(len, sizeof(small));
    uint64_t rxd, txd;
    virtio_net_counters(nic, &rxd, &txd);
    cr_assert_eq(rxd, 1);
}

Test(virtio_net, packet_larger_than_a_full_buffer)
{
    vdrv_init(&drv, BASE_FEATURES, 2);
    post_rx(0, 12 + 1514);
    vdrv_kick(&drv, 0);
    static uint8_t huge[12 + 3000], ok[12 + 1514];
    fill(ok + 12, 1514, 1);
    cr_assert_eq(send(peer, huge, sizeof(huge), 0), (ssize_t)sizeof(huge));
    cr_assert_eq(send(peer, ok, sizeof(ok), 0), (ssize_t)sizeof(ok));
    uint32_t id, len;
    cr_assert(vdrv_wait_used(&drv, 0, 1, &id, &len, 5000));
    cr_assert_eq(id, 0, "the buffer was kept for the packet after the dropped one");
    cr_assert_eq(len, sizeof(ok), "a packet exactly filling the buffer is not taken for a cut one");
    uint8_t got[1514];
    cr_assert_eq(gm_read(&gm, BUF_GPA + 0x100, got, sizeof(got)), 0);
    cr_assert_arr_eq(got, ok + 12, sizeof(got));
    uint64_t rxd, txd;
    virtio_net_counters(nic, &rxd, &txd);
    cr_assert_eq(rxd, 1);
}

/* ---- is_tap: the tap's offloads (the socket stands in for the tap;
 * TUNSETOFFLOAD fails on it with a warning, which changes nothing here) ---- */

static void net_up_taplike(void)
{
    net_up_kind(NIC_TAPLIKE);
}

TestSuite(virtio_net_tapfd, .init = net_up_taplike, .fini = net_down, .timeout = 30);

Test(virtio_net_tapfd, offloads_offered_and_tso_passes)
{
    vdrv_init(&drv, ALL_FEATURES, 2);
    uint64_t f = vdrv_device_features(&drv);
    cr_assert(f & F(CSUM));
    cr_assert(f & F(HOST_TSO4));
    cr_assert(f & F(HOST_TSO6));
    cr_assert(f & F(GUEST_CSUM));
    cr_assert(f & F(GUEST_TSO4));
    cr_assert(f & F(GUEST_TSO6));
    struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                   .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .gso_size = 1448,
                                   .csum_start = 34, .csum_offset = 16 };
    cr_assert_eq(gm_write(&gm, BUF_GPA, &h, sizeof(h)), 0);
    struct vdrv_seg s[2] = { { BUF_GPA, 12, false }, { BUF_GPA + 0x100, 3000, false } };
    vdrv_add_chain(&drv, 1, s, 2);
    vdrv_kick(&drv, 1);
    uint8_t got[4096];
    cr_assert_eq(peer_recv(got, sizeof(got), 5000), 3012, "a TSO packet goes to the tap whole");
    struct virtio_net_hdr_v1 g;
    memcpy(&g, got, sizeof(g));
    cr_assert_eq(g.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
    cr_assert_eq(g.gso_size, 1448);
}

/* ---- --net user: the NIC on libslirp (devices/net/net_slirp.c) ---- */

static void net_up_user(void)
{
    net_up_kind(NIC_USER);
}

TestSuite(virtio_net_user, .init = net_up_user, .fini = net_down, .timeout = 30);

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Transmit one frame (after a header h) and wait for its chain back. */
static void user_tx(const void *frame, uint32_t len, const struct virtio_net_hdr_v1 *h)
{
    cr_assert_eq(gm_write(&gm, BUF_GPA, h, sizeof(*h)), 0);
    cr_assert_eq(gm_write(&gm, BUF_GPA + 0x100, frame, len), 0);
    struct vdrv_seg s[2] = { { BUF_GPA, 12, false }, { BUF_GPA + 0x100, len, false } };
    vdrv_add_chain(&drv, 1, s, 2);
    vdrv_kick(&drv, 1);
    cr_assert(vdrv_wait_used(&drv, 1, 1, NULL, NULL, 5000));
}

/* The next received frame of the given EtherType into f (after the
 * header, which must be zero: slirp sends whole, checksummed frames). */
static uint32_t user_rx(unsigned k, uint8_t *f, uint32_t cap)
{
    uint32_t len;
    cr_assert(vdrv_wait_used(&drv, 0, 1, NULL, &len, 5000), "a frame from the user network");
    cr_assert_geq(len, 12 + 14);
    uint8_t h[12];
    cr_assert_eq(gm_read(&gm, BUF_GPA + 0x10000ULL * k, h, 12), 0);
    cr_assert_eq(h[0], 0, "no flags");
    cr_assert_eq(h[1], 0, "no GSO");
    cr_assert_eq(h[10], 1, "num_buffers 1");
    cr_assert_leq(len - 12, cap);
    cr_assert_eq(gm_read(&gm, BUF_GPA + 0x10000ULL * k + 0x100, f, len - 12), 0);
    return len - 12;
}

Test(virtio_net_user, offers_csum_only)
{
    vdrv_init(&drv, ALL_FEATURES, 2);
    uint64_t f = vdrv_device_features(&drv);
    cr_assert(f & F(CSUM));
    cr_assert_not(f & F(HOST_TSO4));
    cr_assert_not(f & F(GUEST_CSUM));
    for (unsigned i = 0; i < 6; i++)
        cr_assert_eq(vdrv_bar_rd(&drv, VIRTIO_PCI_DEVCFG_OFF + i, 1), mac[i], "mac= is the NIC's MAC");
}

Test(virtio_net_user, arp_and_ping_through_the_nic)
{
    vdrv_init(&drv, ALL_FEATURES, 2);
    post_rx(1, 12 + 1514);
    post_rx(2, 12 + 1514);
    vdrv_kick(&drv, 0);
    /* ARP: who has 10.0.2.2? */
    uint8_t q[42] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    memcpy(q + 6, mac, 6);
    put_be16(q + 12, 0x0806);
    put_be16(q + 14, 1);
    put_be16(q + 16, 0x0800);
    q[18] = 6;
    q[19] = 4;
    put_be16(q + 20, 1);
    memcpy(q + 22, mac, 6);
    memcpy(q + 28, (uint8_t[]){ 10, 0, 2, 15 }, 4);
    memcpy(q + 38, (uint8_t[]){ 10, 0, 2, 2 }, 4);
    struct virtio_net_hdr_v1 none = { 0 };
    user_tx(q, sizeof(q), &none);
    uint8_t r[1514];
    uint32_t n = user_rx(1, r, sizeof(r));
    cr_assert_geq(n, 42);
    cr_assert_eq(get_be16(r + 12), 0x0806);
    cr_assert_eq(get_be16(r + 20), 2, "an ARP reply");
    const uint8_t gw_mac[6] = { 0x52, 0x55, 10, 0, 2, 2 };
    cr_assert_arr_eq(r + 22, gw_mac, 6);

    /* Ping 10.0.2.2 with the ICMP checksum left to the device. */
    uint8_t p[14 + 20 + 8 + 16] = { 0 };
    memcpy(p, gw_mac, 6);
    memcpy(p + 6, mac, 6);
    put_be16(p + 12, 0x0800);
    uint8_t *ip = p + 14;
    ip[0] = 0x45;
    put_be16(ip + 2, 20 + 8 + 16);
    ip[8] = 64;
    ip[9] = 1;
    memcpy(ip + 12, (uint8_t[]){ 10, 0, 2, 15, 10, 0, 2, 2 }, 8);
    uint32_t sum = 0;
    for (unsigned i = 0; i < 20; i += 2)
        sum += get_be16(ip + i);
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    put_be16(ip + 10, (uint16_t)~sum);
    p[34] = 8;   /* echo request */
    put_be16(p + 38, 0x5151);
    fill(p + 42, 16, 3);
    struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34,
                                   .csum_offset = 2 };
    user_tx(p, sizeof(p), &h);
    n = user_rx(2, r, sizeof(r));
    cr_assert_eq(n, sizeof(p), "the echo reply");
    cr_assert_eq(r[34], 0, "ICMP echo reply");
    cr_assert_eq(get_be16(r + 38), 0x5151);
    cr_assert_arr_eq(r + 42, p + 42, 16);
    uint64_t rxd, txd;
    virtio_net_counters(nic, &rxd, &txd);
    cr_assert_eq(rxd + txd, 0);
}
