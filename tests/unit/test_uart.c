/* 16550A register semantics (PC16550D datasheet), driven through the bus as a
 * guest would, with a recording irq_set and pipes for the host side. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "devices/legacy/uart.h"
#include "fake_env.h"

#define COM UART_COM1_BASE
#define GSI UART_COM1_GSI
enum { RBR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

static struct fake_env fe;
static struct uart *u;
static int out_pipe[2] = { -1, -1 }, in_pipe[2] = { -1, -1 };

static uint8_t rd(unsigned reg) { return inb_(&fe, COM + reg); }
static void wr(unsigned reg, uint8_t v) { outb_(&fe, COM + reg, v); }

static void setup_plain(void)
{
    fake_env_init(&fe);
    cr_assert_eq(pipe2(out_pipe, O_CLOEXEC), 0);
    cr_assert_eq(uart_create(&fe.env, COM, GSI, -1, out_pipe[1], &u), 0);
}

static void teardown_all(void)
{
    uart_destroy(u);
    u = NULL;
    for (int i = 0; i < 2; i++) {
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
        if (in_pipe[i] >= 0)
            close(in_pipe[i]);
        out_pipe[i] = in_pipe[i] = -1;
    }
    cr_assert_eq(fe.bad_calls, 0, "irq_set called without a level change");
    fake_env_fini(&fe);
}

/* Read exactly n bytes from fd within 2 s. */
static size_t read_some(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 2000) <= 0)
            break;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static void wait_lsr(uint8_t mask, uint8_t want)
{
    for (int i = 0; i < 2000; i++) {
        if ((rd(LSR) & mask) == want)
            return;
        usleep(1000);
    }
    cr_assert_fail("LSR & 0x%02x never became 0x%02x", mask, want);
}

TestSuite(uart, .init = setup_plain, .fini = teardown_all);

Test(uart, reset_values)
{
    cr_assert_eq(rd(IER), 0x00);
    cr_assert_eq(rd(IIR), 0x01, "no interrupt pending, FIFOs off");
    cr_assert_eq(rd(LCR), 0x00);
    cr_assert_eq(rd(MCR), 0x00);
    cr_assert_eq(rd(LSR), 0x60, "THRE and TEMT");
    cr_assert_eq(rd(MSR) & 0xF0, 0xB0, "DCD DSR CTS of a connected terminal");
    cr_assert_eq(rd(SCR), 0x00);
    cr_assert_eq(fe.calls[GSI], 0, "line untouched");
}

Test(uart, dlab_divisor_latch)
{
    wr(IER, 0x05);
    wr(LCR, 0x83);                  /* DLAB + 8N1 */
    wr(RBR, 0x01);                  /* DLL: 115200 baud */
    wr(IER, 0x02);                  /* DLM */
    cr_assert_eq(rd(RBR), 0x01);
    cr_assert_eq(rd(IER), 0x02);
    wr(LCR, 0x03);
    cr_assert_eq(rd(IER), 0x05, "IER untouched by divisor writes");
    cr_assert_eq(rd(LCR), 0x03);
    wr(LCR, 0x83);
    cr_assert_eq(rd(RBR), 0x01, "divisor kept");
    cr_assert_eq(rd(IER), 0x02);
    /* Nothing was transmitted by the DLL write. */
    uart_destroy(u);
    u = NULL;
    struct pollfd p = { .fd = out_pipe[0], .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 0), 0, "DLAB write leaked to the output");
}

Test(uart, scratch_and_ier_mask)
{
    wr(SCR, 0xA5);
    cr_assert_eq(rd(SCR), 0xA5);
    wr(IER, 0xFF);
    cr_assert_eq(rd(IER), 0x0F, "IER bits 4-7 read 0 on a 16550A");
    wr(MCR, 0xFF);
    cr_assert_eq(rd(MCR), 0x1F, "MCR bits 5-7 read 0");
}

Test(uart, transmit_in_order)
{
    static const char msg[] = "hello, 16550\r\n";
    uint8_t buf[64];

    cr_assert_eq(uart_start(u), 0);
    for (size_t i = 0; i < sizeof(msg) - 1; i++) {
        cr_assert(rd(LSR) & 0x20, "THR empty before each byte");
        wr(RBR, (uint8_t)msg[i]);
    }
    cr_assert_eq(read_some(out_pipe[0], buf, sizeof(msg) - 1), sizeof(msg) - 1);
    cr_assert_arr_eq(buf, msg, sizeof(msg) - 1);
}

Test(uart, output_before_start_is_flushed_on_destroy)
{
    uint8_t buf[8];
    wr(RBR, 'o');
    wr(RBR, 'k');
    uart_destroy(u);
    u = NULL;
    cr_assert_eq(read_some(out_pipe[0], buf, 2), 2);
    cr_assert_eq(buf[0], 'o');
    cr_assert_eq(buf[1], 'k');
}

Test(uart, fifo_enable_and_overrun)
{
    uint8_t data[17];
    for (int i = 0; i < 17; i++)
        data[i] = (uint8_t)(0x40 + i);

    wr(FCR, 0x01);
    cr_assert_eq(rd(IIR), 0xC1, "IIR bits 6-7 set with FIFOs on");
    uart_receive(u, data, 16);
    cr_assert_eq(rd(LSR) & 0x03, 0x01, "DR, no overrun at 16 bytes");
    uart_receive(u, data + 16, 1);
    cr_assert_eq(rd(LSR) & 0x03, 0x03, "17th byte: OE");
    cr_assert_eq(rd(LSR) & 0x02, 0x00, "OE cleared by reading LSR");
    for (int i = 0; i < 16; i++)
        cr_assert_eq(rd(RBR), data[i], "FIFO order at %d", i);
    cr_assert_eq(rd(LSR) & 0x01, 0x00, "FIFO drained");

    /* FCR bit 1 empties the RX FIFO */
    uart_receive(u, data, 5);
    wr(FCR, 0x03);
    cr_assert_eq(rd(LSR) & 0x01, 0x00);
    /* turning the FIFOs off empties them too */
    uart_receive(u, data, 5);
    wr(FCR, 0x00);
    cr_assert_eq(rd(LSR) & 0x01, 0x00);
    cr_assert_eq(rd(IIR), 0x01);
}

Test(uart, holding_register_mode_overrun)
{
    uint8_t d[2] = { 'a', 'b' };
    uart_receive(u, d, 2);      /* FIFOs off: one-byte holding register */
    cr_assert_eq(rd(LSR) & 0x03, 0x03);
    cr_assert_eq(rd(RBR), 'b', "16450 mode: the new byte overwrites RBR");
    cr_assert_eq(rd(LSR) & 0x01, 0);
}

Test(uart, iir_priorities)
{
    uint8_t d[17] = { 0 };

    wr(MCR, 0x08);                      /* OUT2: the line may rise */
    wr(FCR, 0xC1);                      /* FIFOs on, trigger level 14 */
    wr(IER, 0x0D);                      /* RX data, line status, modem status */
    cr_assert_eq(rd(IIR), 0xC1);

    uart_receive(u, d, 1);
    cr_assert_eq(rd(IIR), 0xCC, "below the trigger level: character timeout");
    uart_receive(u, d, 13);
    cr_assert_eq(rd(IIR), 0xC4, "14 bytes: received data available");
    uart_receive(u, d, 3);              /* 17 > 16: overrun */
    cr_assert_eq(rd(IIR), 0xC6, "line status outranks received data");
    cr_assert_eq(fake_level(&fe, GSI), 1);
    (void)rd(LSR);
    cr_assert_eq(rd(IIR), 0xC4, "reading LSR clears the line status source");

    wr(IER, 0x0F);                      /* + THR empty: rising edge arms it */
    cr_assert_eq(rd(IIR), 0xC4, "received data outranks THR empty");
    for (int i = 0; i < 16; i++)
        (void)rd(RBR);
    cr_assert_eq(rd(IIR), 0xC2, "then THR empty");
    cr_assert_eq(rd(IIR), 0xC1, "reading IIR cleared THRE; modem lines unchanged");

    wr(MCR, 0x08 | 0x10 | 0x01);        /* loopback: DSR follows DTR, DCD follows OUT2 */
    cr_assert_eq(rd(IIR), 0xC0, "modem status: lowest priority");
    cr_assert_eq(fake_level(&fe, GSI), 0, "but the line is off in loopback");
    uint8_t msr = rd(MSR);
    cr_assert_neq(msr & 0x0F, 0, "delta bits set");
    cr_assert_eq(rd(MSR) & 0x0F, 0, "delta bits cleared by reading MSR");
    cr_assert_eq(rd(IIR), 0xC1);
}

Test(uart, thre_rearm_like_linux_probe)
{
    /* serial8250_do_startup's THRE test: enable THRI, read IIR, disable,
     * enable again: the second read must still report THRE. */
    wr(IER, 0x02);
    uint8_t iir1 = rd(IIR);
    wr(IER, 0x00);
    wr(IER, 0x02);
    uint8_t iir = rd(IIR);
    wr(IER, 0x00);
    cr_assert_eq(iir1 & 0x0F, 0x02, "THRE pending after setting ETBEI");
    cr_assert_eq(iir & 0x0F, 0x02, "THRE re-armed by toggling ETBEI");

    wr(IER, 0x02);
    cr_assert_eq(rd(IIR) & 0x0F, 0x02);
    cr_assert_eq(rd(IIR) & 0x0F, 0x01, "cleared by the IIR read that reported it");
    wr(IER, 0x02);
    cr_assert_eq(rd(IIR) & 0x0F, 0x01, "no re-arm without a 0 -> 1 edge");
    wr(RBR, 'x');
    cr_assert_eq(rd(IIR) & 0x0F, 0x02, "THR written and (instantly) sent: THRE again");
}

Test(uart, irq_line_follows_pending_state)
{
    wr(IER, 0x02);
    cr_assert_eq(fe.calls[GSI], 0, "OUT2 clear: line stays low (PC wiring)");
    wr(MCR, 0x08);
    cr_assert_eq(fake_level(&fe, GSI), 1, "OUT2 set with THRE pending: raised");
    (void)rd(IIR);
    cr_assert_eq(fake_level(&fe, GSI), 0, "IIR read cleared THRE: lowered");
    cr_assert_eq(fe.raises[GSI], 1);

    wr(IER, 0x03);                      /* + RX data */
    uint8_t c = 'z';
    uart_receive(u, &c, 1);
    cr_assert_eq(fake_level(&fe, GSI), 1);
    cr_assert_eq(rd(RBR), 'z');
    cr_assert_eq(fake_level(&fe, GSI), 0, "FIFO empty: lowered");
    cr_assert_eq(fe.raises[GSI], 2);

    uart_receive(u, &c, 1);
    cr_assert_eq(fake_level(&fe, GSI), 1);
    wr(IER, 0x00);
    cr_assert_eq(fake_level(&fe, GSI), 0, "masking the source lowers the line");
}

Test(uart, loopback)
{
    uint8_t buf[4];

    /* Linux's autoconfig: MCR = LOOP | OUT2 | RTS must show DCD | CTS. */
    wr(MCR, 0x10 | 0x0A);
    cr_assert_eq(rd(MSR) & 0xF0, 0x90);
    wr(MCR, 0x10 | 0x05);               /* DTR, OUT1 */
    cr_assert_eq(rd(MSR) & 0xF0, 0x60, "DSR and RI");
    wr(MCR, 0x10);
    uint8_t msr = rd(MSR);
    cr_assert_eq(msr & 0xF0, 0x00);
    cr_assert(msr & 0x04, "TERI: RI went 1 -> 0");

    wr(RBR, 'L');
    cr_assert_eq(rd(LSR) & 0x01, 0x01, "transmitted byte looped to the receiver");
    cr_assert_eq(rd(RBR), 'L');
    uint8_t c = 'h';
    uart_receive(u, &c, 1);
    cr_assert_eq(rd(LSR) & 0x01, 0, "serial input disconnected in loopback");

    wr(MCR, 0x00);
    cr_assert_eq(rd(MSR) & 0xF0, 0xB0, "terminal lines back");
    uart_destroy(u);
    u = NULL;
    struct pollfd p = { .fd = out_pipe[0], .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 0), 0, "loopback output must not reach the host");
    (void)buf;
}

Test(uart, input_thread_flow_control)
{
    uint8_t data[40], got[40];

    cr_assert_eq(pipe2(in_pipe, O_CLOEXEC), 0);
    uart_destroy(u);
    cr_assert_eq(uart_create(&fe.env, COM, GSI, in_pipe[0], out_pipe[1], &u), 0);
    cr_assert_eq(uart_start(u), 0);
    cr_assert_eq(uart_start(u), -EALREADY);

    wr(FCR, 0x01);
    for (int i = 0; i < 40; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    cr_assert_eq(write(in_pipe[1], data, sizeof(data)), (ssize_t)sizeof(data));
    for (int i = 0; i < 40; i++) {
        wait_lsr(0x01, 0x01);
        got[i] = rd(RBR);
    }
    cr_assert_arr_eq(got, data, sizeof(data));
    cr_assert_eq(rd(LSR) & 0x02, 0, "the input thread never overran the FIFO");
}

Test(uart, host_stall_drops_thre_then_rearms)
{
    /* A host end that does not read: the buffer fills, THRE drops; once the
     * host drains, THRE returns with its interrupt, and nothing was lost or
     * reordered. */
    cr_assert_geq(fcntl(out_pipe[1], F_SETPIPE_SZ, 4096), 4096);
    cr_assert_eq(uart_start(u), 0);
    wr(MCR, 0x08);
    unsigned sent = 0;
    while (sent < 200000 && (rd(LSR) & 0x20))
        wr(RBR, (uint8_t)(sent++ % 251));
    cr_assert_lt(sent, 200000, "THRE never dropped");
    cr_assert_geq(sent, 60000, "THRE dropped early, after %u bytes", sent);
    cr_assert_eq(rd(LSR) & 0x60, 0, "TEMT follows THRE");
    wr(IER, 0x02);
    cr_assert_eq(rd(IIR) & 0x0F, 0x01, "no THRE interrupt while the buffer is full");

    static uint8_t got[200000];
    cr_assert_eq(read_some(out_pipe[0], got, sent), sent);
    for (unsigned i = 0; i < sent; i++)
        cr_assert_eq(got[i], (uint8_t)(i % 251), "byte %u out of order", i);
    wait_lsr(0x20, 0x20);
    cr_assert_eq(rd(IIR) & 0x0F, 0x02, "THR empty again: THRE interrupt");
}

Test(uart, unregisters_on_destroy)
{
    cr_assert_not_null(bus_find(&fe.pio, COM, 1));
    cr_assert_not_null(bus_find(&fe.pio, COM + 7, 1));
    uart_destroy(u);
    u = NULL;
    cr_assert_null(bus_find(&fe.pio, COM, 1));
}

Test(uart, wide_access_is_byte_lanes)
{
    wr(LCR, 0x03);
    pio_out(&fe, COM + MCR, 0xFF13, 2);       /* MCR = 0x13; LSR is read-only */
    pio_out(&fe, COM + MSR, 0x5A00, 2);       /* MSR is read-only; SCR = 0x5A */
    cr_assert_eq(rd(MCR), 0x13);
    cr_assert_eq(rd(SCR), 0x5A);
    cr_assert_eq(pio_in(&fe, COM + LCR, 2), 0x1303, "LCR and MCR in one read");
    cr_assert_eq(rd(LSR), 0x60, "LSR write ignored");
}

Test(uart, destroy_does_not_hang_on_a_stuck_host)
{
    struct timespec t0, t1;

    cr_assert_geq(fcntl(out_pipe[1], F_SETPIPE_SZ, 4096), 4096);
    cr_assert_eq(uart_start(u), 0);
    for (int i = 0; i < 10000; i++)
        wr(RBR, 'x');
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uart_destroy(u);            /* nobody reads out_pipe[0] */
    u = NULL;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_lt(s, 3.0, "uart_destroy took %.2f s", s);
}
