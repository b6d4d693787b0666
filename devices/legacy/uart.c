/* 16550A UART (National Semiconductor PC16550D datasheet).
 *
 * Registers at base + offset ("DLAB" is LCR bit 7):
 *
 *   off  DLAB  read                         write
 *   0    0     RBR  receive buffer          THR  transmit holding
 *   0    1     DLL  divisor latch, low      DLL
 *   1    0     IER  interrupt enable        IER  (bits 0-3)
 *   1    1     DLM  divisor latch, high     DLM
 *   2    -     IIR  interrupt identification FCR FIFO control
 *   3    -     LCR  line control            LCR
 *   4    -     MCR  modem control           MCR  (bits 0-4)
 *   5    -     LSR  line status             (ignored: factory test only)
 *   6    -     MSR  modem status            (ignored)
 *   7    -     SCR  scratch                 SCR
 *
 * IER: 0 ERBFI received data, 1 ETBEI THR empty, 2 ELSI receiver line status,
 *      3 EDSSI modem status.
 * IIR: bit 0 = 1 when nothing is pending; bits 1-3 the source, highest
 *      priority first (datasheet Table 4): 0x6 line status (OE/PE/FE/BI,
 *      cleared by reading LSR), 0x4 received data at the trigger level, 0xC
 *      character timeout (cleared by reading RBR), 0x2 THR empty (cleared by
 *      reading IIR when it is the source, or by writing THR), 0x0 modem status
 *      (cleared by reading MSR); bits 6-7 = 11 when the FIFOs are enabled.
 * FCR: 0 enable FIFOs (changing it empties both), 1 clear RX FIFO, 2 clear TX
 *      FIFO, 6-7 RX trigger level 1/4/8/14. Other bits are only taken when
 *      bit 0 is written as 1.
 * LSR: 0 DR, 1 OE, 2 PE, 3 FE, 4 BI, 5 THRE, 6 TEMT, 7 error in RX FIFO.
 * MCR: 0 DTR, 1 RTS, 2 OUT1, 3 OUT2, 4 LOOP.
 * MSR: 0 DCTS, 1 DDSR, 2 TERI, 3 DDCD (deltas, cleared on read), 4 CTS,
 *      5 DSR, 6 RI, 7 DCD.
 *
 * Modelling choices:
 *  - The transmitter is instantaneous: a THR write hands the byte to a 64 KiB
 *    host buffer, drained to out_fd by an output thread, so the vCPU never
 *    waits for the host terminal. THR is "empty" (LSR.THRE/TEMT) while that
 *    buffer has room for a FIFO load (16 bytes); when the host stalls, THRE
 *    drops and a well-behaved guest waits, and THRE rises again (with its
 *    interrupt) once the output thread has made room. Bytes written while
 *    THRE is clear are dropped and counted. Because transmission finishes at
 *    once, the THRE interrupt that a THR write clears is raised again right
 *    away while the buffer has room, as it would after a real FIFO drained.
 *  - THRE interrupt re-arm: setting IER.ETBEI (0 -> 1) while THR is empty
 *    makes the THRE interrupt pending even if it had been cleared by an IIR
 *    read. Linux's 8250 driver probes exactly this at start-up
 *    (UART_BUG_THRE) and relies on it to restart transmission.
 *  - Character timeout: host input arrives in bursts, so once the input
 *    thread has delivered a burst no further character is coming; the
 *    timeout indication is therefore raised at once for data below the
 *    trigger level instead of after four character times.
 *  - Receive flow control: the input thread reads from in_fd only as much as
 *    the FIFO has room for, so host input is not lost to overruns; input
 *    that does not fit (uart_receive called directly) sets LSR.OE.
 *  - Loopback (MCR.LOOP): THR goes to the receiver, the modem outputs feed
 *    the modem inputs (RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD), the serial
 *    input is disconnected (host input waits).
 *  - The interrupt line: as on the PC, the UART's INTR reaches the interrupt
 *    controller only through the OUT2-enabled buffer, so the line is high
 *    when an enabled source is pending, MCR.OUT2 is set and loopback is off.
 *    It is a level: raised and lowered through dev_irq_set as that changes.
 *  - No baud rate timing, parity or framing: PE/FE/BI never occur. */
#include "devices/legacy/uart.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "vmm/bus.h"
#include "vmm/log.h"

#define UART_NR_REGS   8
#define UART_FIFO_SIZE 16
#define UART_OUT_BUF   (64 * 1024)
#define UART_OUT_CHUNK 4096
#define UART_IN_CHUNK  UART_FIFO_SIZE
#define UART_STOP_WAIT_MS 500    /* output flush at destroy, then give up */

enum {
    UART_RBR_THR = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3,
    UART_MCR = 4, UART_LSR = 5, UART_MSR = 6, UART_SCR = 7,
};

#define IER_ERBFI 0x01
#define IER_ETBEI 0x02
#define IER_ELSI  0x04
#define IER_EDSSI 0x08
#define IER_MASK  0x0F

#define IIR_NO_INT  0x01
#define IIR_RLS     0x06
#define IIR_RDA     0x04
#define IIR_TIMEOUT 0x0C
#define IIR_THRE    0x02
#define IIR_MSR     0x00
#define IIR_FIFO_ON 0xC0

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define FCR_TRIGGER  0xC0

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1F

#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_ERRS 0x1E    /* OE PE FE BI */
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80
/* What a connected terminal presents when not in loopback. */
#define MSR_CONNECTED (MSR_DCD | MSR_DSR | MSR_CTS)

struct uart {
    struct dev_env env;
    uint16_t base;
    unsigned gsi;
    int in_fd, out_fd;
    bool registered;

    pthread_mutex_t lock;
    /* registers */
    uint8_t ier, lcr, mcr, msr, scr, dll, dlm;
    bool fifo_enabled;
    uint8_t trigger;                /* RX trigger level in bytes */
    uint8_t lsr_errs;               /* LSR bits 1-4, cleared on LSR read */
    uint8_t rbr;                    /* last byte read, returned when empty */
    uint8_t rx_fifo[UART_FIFO_SIZE];
    unsigned rx_head, rx_count;
    bool thr_ipending;
    bool irq_level;
    uint64_t rx_dropped, tx_dropped;

    /* host output buffer, drained by the output thread */
    uint8_t *out_buf;
    size_t out_tail, out_count;
    bool out_broken;                /* out_fd failed: output is discarded */
    bool out_stalled;               /* THRE went low for lack of room */

    /* threads */
    pthread_cond_t out_cv;          /* output: data queued, or stop */
    pthread_cond_t rx_cv;           /* input: FIFO room, or stop */
    bool stopping;
    int stop_efd;
    pthread_t in_thread, out_thread;
    bool in_started, out_started, out_done;
    pthread_cond_t out_done_cv;

    bool tty_saved;
    struct termios saved_tio;
};

/* ---- state helpers (lock held) ---- */

static unsigned uart_rx_cap(const struct uart *u)
{
    return u->fifo_enabled ? UART_FIFO_SIZE : 1;
}

static bool uart_out_discarded(const struct uart *u)
{
    return u->out_fd < 0 || u->out_broken;
}

/* THR empty: the instantaneous transmitter has somewhere to put a FIFO load. */
static bool uart_thr_empty(const struct uart *u)
{
    if ((u->mcr & MCR_LOOP) || uart_out_discarded(u))
        return true;
    return UART_OUT_BUF - u->out_count >= UART_FIFO_SIZE;
}

static uint8_t uart_iir_id(const struct uart *u)
{
    if ((u->ier & IER_ELSI) && u->lsr_errs)
        return IIR_RLS;
    if ((u->ier & IER_ERBFI) && u->rx_count) {
        if (!u->fifo_enabled || u->rx_count >= u->trigger)
            return IIR_RDA;
        return IIR_TIMEOUT;
    }
    if ((u->ier & IER_ETBEI) && u->thr_ipending)
        return IIR_THRE;
    if ((u->ier & IER_EDSSI) && (u->msr & 0x0F))
        return IIR_MSR;
    return IIR_NO_INT;
}

static void uart_update_irq(struct uart *u)
{
    bool level = uart_iir_id(u) != IIR_NO_INT && (u->mcr & MCR_OUT2) && !(u->mcr & MCR_LOOP);

    if (level != u->irq_level) {
        u->irq_level = level;
        dev_irq_set(&u->env, u->gsi, level);
    }
}

static uint8_t uart_msr_inputs(uint8_t mcr)
{
    if (!(mcr & MCR_LOOP))
        return MSR_CONNECTED;
    return (uint8_t)(((mcr & MCR_RTS) ? MSR_CTS : 0) | ((mcr & MCR_DTR) ? MSR_DSR : 0) |
                     ((mcr & MCR_OUT1) ? MSR_RI : 0) | ((mcr & MCR_OUT2) ? MSR_DCD : 0));
}

static void uart_set_msr_inputs(struct uart *u, uint8_t in)
{
    uint8_t old = u->msr & 0xF0, changed = old ^ in;
    uint8_t delta = 0;

    if (changed & MSR_CTS)
        delta |= MSR_DCTS;
    if (changed & MSR_DSR)
        delta |= MSR_DDSR;
    if ((old & MSR_RI) && !(in & MSR_RI))   /* trailing edge only */
        delta |= MSR_TERI;
    if (changed & MSR_DCD)
        delta |= MSR_DDCD;
    u->msr = (uint8_t)(in | (u->msr & 0x0F) | delta);
}

static void uart_rx_clear(struct uart *u)
{
    u->rx_head = 0;
    u->rx_count = 0;
    pthread_cond_signal(&u->rx_cv);
}

/* A character arrives at the receiver (host input or loopback). */
static void uart_rx_push(struct uart *u, uint8_t c)
{
    if (u->rx_count < uart_rx_cap(u)) {
        u->rx_fifo[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = c;
        u->rx_count++;
        return;
    }
    /* Overrun. In FIFO mode the character in the shift register is lost; in
     * 16450 mode it overwrites the holding register. */
    u->lsr_errs |= LSR_OE;
    u->rx_dropped++;
    if (!u->fifo_enabled)
        u->rx_fifo[u->rx_head] = c;
}

static void uart_transmit(struct uart *u, uint8_t c)
{
    if (u->mcr & MCR_LOOP) {
        uart_rx_push(u, c);
    } else if (!uart_out_discarded(u)) {
        if (u->out_count == UART_OUT_BUF) {
            u->tx_dropped++;    /* the guest ignored LSR.THRE */
        } else {
            u->out_buf[(u->out_tail + u->out_count) % UART_OUT_BUF] = c;
            if (u->out_count++ == 0)
                pthread_cond_signal(&u->out_cv);
        }
    }
    /* Writing THR clears the THRE interrupt; the instantaneous transmitter
     * then empties THR again, which raises it anew while there is room. */
    u->thr_ipending = uart_thr_empty(u);
    if (!u->thr_ipending)
        u->out_stalled = true;      /* the output thread re-raises it */
}

/* ---- register access ---- */

static uint8_t uart_read_reg(struct uart *u, unsigned off)
{
    uint8_t v = 0xFF;

    switch (off) {
    case UART_RBR_THR:
        if (u->lcr & LCR_DLAB)
            return u->dll;
        if (u->rx_count) {
            u->rbr = u->rx_fifo[u->rx_head];
            u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
            u->rx_count--;
            pthread_cond_signal(&u->rx_cv);
        }
        v = u->rbr;
        break;
    case UART_IER:
        return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
    case UART_IIR_FCR:
        v = uart_iir_id(u);
        if (v == IIR_THRE)
            u->thr_ipending = false;
        if (u->fifo_enabled)
            v |= IIR_FIFO_ON;
        break;
    case UART_LCR:
        return u->lcr;
    case UART_MCR:
        return u->mcr;
    case UART_LSR:
        v = (uint8_t)((u->rx_count ? LSR_DR : 0) | u->lsr_errs |
                      (uart_thr_empty(u) ? LSR_THRE | LSR_TEMT : 0));
        u->lsr_errs = 0;
        break;
    case UART_MSR:
        v = u->msr;
        u->msr &= 0xF0;
        break;
    case UART_SCR:
        return u->scr;
    }
    uart_update_irq(u);
    return v;
}

static void uart_write_fcr(struct uart *u, uint8_t v)
{
    static const uint8_t levels[4] = { 1, 4, 8, 14 };
    bool enable = v & FCR_ENABLE;

    if (enable != u->fifo_enabled) {
        uart_rx_clear(u);
        u->fifo_enabled = enable;
    }
    if (!enable)
        return;     /* the other bits are only programmed with bit 0 set */
    if (v & FCR_CLEAR_RX)
        uart_rx_clear(u);
    /* FCR_CLEAR_TX: the transmitter is instantaneous, its FIFO always empty. */
    u->trigger = levels[(v & FCR_TRIGGER) >> 6];
}

static void uart_write_reg(struct uart *u, unsigned off, uint8_t v)
{
    switch (off) {
    case UART_RBR_THR:
        if (u->lcr & LCR_DLAB)
            u->dll = v;
        else
            uart_transmit(u, v);
        break;
    case UART_IER:
        if (u->lcr & LCR_DLAB) {
            u->dlm = v;
        } else {
            uint8_t old = u->ier;
            u->ier = v & IER_MASK;
            if ((u->ier & IER_ETBEI) && !(old & IER_ETBEI) && uart_thr_empty(u))
                u->thr_ipending = true;
        }
        break;
    case UART_IIR_FCR:
        uart_write_fcr(u, v);
        break;
    case UART_LCR:
        u->lcr = v;
        break;
    case UART_MCR: {
        bool was_loop = u->mcr & MCR_LOOP;
        u->mcr = v & MCR_MASK;
        uart_set_msr_inputs(u, uart_msr_inputs(u->mcr));
        if (was_loop && !(u->mcr & MCR_LOOP))
            pthread_cond_signal(&u->rx_cv);   /* serial input reconnected */
        break;
    }
    case UART_SCR:
        u->scr = v;
        break;
    default:        /* LSR, MSR: read-only here */
        break;
    }
    uart_update_irq(u);
}

static int uart_pio_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct uart *u = opaque;
    uint8_t *d = data;

    pthread_mutex_lock(&u->lock);
    for (unsigned i = 0; i < len; i++)
        d[i] = offset + i < UART_NR_REGS ? uart_read_reg(u, (unsigned)(offset + i)) : 0xFF;
    pthread_mutex_unlock(&u->lock);
    return 0;
}

static int uart_pio_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct uart *u = opaque;
    const uint8_t *d = data;

    pthread_mutex_lock(&u->lock);
    for (unsigned i = 0; i < len && offset + i < UART_NR_REGS; i++)
        uart_write_reg(u, (unsigned)(offset + i), d[i]);
    pthread_mutex_unlock(&u->lock);
    return 0;
}

static const struct bus_ops uart_ops = {
    .read = uart_pio_read,
    .write = uart_pio_write,
};

void uart_receive(struct uart *u, const uint8_t *buf, size_t len)
{
    pthread_mutex_lock(&u->lock);
    if (u->mcr & MCR_LOOP) {
        u->rx_dropped += len;     /* serial input is disconnected */
    } else {
        for (size_t i = 0; i < len; i++)
            uart_rx_push(u, buf[i]);
    }
    uart_update_irq(u);
    pthread_mutex_unlock(&u->lock);
}

/* ---- host threads ---- */

/* Write some of [p, p+len) to out_fd without holding the lock. Returns bytes
 * written, or a negative errno when out_fd is unusable (or, once stopping,
 * stays unwritable for UART_STOP_WAIT_MS). */
static ssize_t uart_out_write(struct uart *u, const uint8_t *p, size_t len, bool stopping)
{
    for (;;) {
        struct pollfd pfd[2] = {
            { .fd = u->out_fd, .events = POLLOUT },
            { .fd = u->stop_efd, .events = POLLIN },
        };
        int n = poll(pfd, stopping ? 1 : 2, stopping ? UART_STOP_WAIT_MS : -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        if (!stopping && (pfd[1].revents & POLLIN))
            return 0;     /* stop requested: the caller comes back with stopping set */
        if (pfd[0].revents & POLLNVAL)
            return -EBADF;
        ssize_t w = write(u->out_fd, p, len);
        if (w > 0)
            return w;
        if (w < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        return w < 0 ? -errno : -EIO;
    }
}

static void *uart_out_thread(void *arg)
{
    struct uart *u = arg;

    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_mutex_lock(&u->lock);
    for (;;) {
        while (u->out_count == 0 && !u->stopping && !u->out_broken)
            pthread_cond_wait(&u->out_cv, &u->lock);
        if (u->out_count == 0 || u->out_broken)
            break;
        bool stopping = u->stopping;
        size_t n = UART_OUT_BUF - u->out_tail;
        if (n > u->out_count)
            n = u->out_count;
        if (n > UART_OUT_CHUNK)
            n = UART_OUT_CHUNK;
        /* [out_tail, +n) stays ours while unlocked: the vCPU only appends. */
        const uint8_t *p = u->out_buf + u->out_tail;
        pthread_mutex_unlock(&u->lock);

        /* Blocking in write() on a stuck terminal must not hold up
         * uart_destroy forever: allow cancellation only here. */
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
        ssize_t w = uart_out_write(u, p, n, stopping);
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);

        pthread_mutex_lock(&u->lock);
        if (w < 0) {
            if (w != -ETIMEDOUT)
                log_warn("uart", "COM at 0x%x: writing guest output failed (%s); "
                         "discarding further output", u->base, strerror((int)-w));
            u->out_broken = true;
            u->tx_dropped += u->out_count;
            u->out_count = 0;
        } else {
            u->out_tail = (u->out_tail + (size_t)w) % UART_OUT_BUF;
            u->out_count -= (size_t)w;
        }
        if (u->out_stalled && uart_thr_empty(u)) {
            u->out_stalled = false;
            u->thr_ipending = true;   /* THR became empty */
            uart_update_irq(u);
        }
    }
    u->out_done = true;
    pthread_cond_broadcast(&u->out_done_cv);
    pthread_mutex_unlock(&u->lock);
    return NULL;
}

static void *uart_in_thread(void *arg)
{
    struct uart *u = arg;
    uint8_t buf[UART_IN_CHUNK];

    for (;;) {
        size_t room;

        pthread_mutex_lock(&u->lock);
        while (!u->stopping && ((u->mcr & MCR_LOOP) || u->rx_count >= uart_rx_cap(u)))
            pthread_cond_wait(&u->rx_cv, &u->lock);
        room = uart_rx_cap(u) - u->rx_count;
        bool stopping = u->stopping;
        pthread_mutex_unlock(&u->lock);
        if (stopping)
            break;

        struct pollfd pfd[2] = {
            { .fd = u->in_fd, .events = POLLIN },
            { .fd = u->stop_efd, .events = POLLIN },
        };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_warn("uart", "COM at 0x%x: poll on input failed: %s", u->base, strerror(errno));
            break;
        }
        if (pfd[1].revents & POLLIN)
            break;
        if (pfd[0].revents & POLLNVAL)
            break;
        if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t n = read(u->in_fd, buf, room < sizeof(buf) ? room : sizeof(buf));
        if (n > 0) {
            uart_receive(u, buf, (size_t)n);
        } else if (n == 0) {
            log_debug("uart", "COM at 0x%x: end of input", u->base);
            break;
        } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
            log_warn("uart", "COM at 0x%x: reading input failed: %s", u->base, strerror(errno));
            break;
        }
    }
    return NULL;
}

/* ---- life cycle ---- */

int uart_create(const struct dev_env *env, uint16_t base, unsigned gsi,
                int in_fd, int out_fd, struct uart **out)
{
    struct uart *u = calloc(1, sizeof(*u));
    int err;

    if (!u)
        return -ENOMEM;
    u->env = *env;
    u->base = base;
    u->gsi = gsi;
    u->in_fd = in_fd;
    u->out_fd = out_fd;
    u->stop_efd = -1;
    /* Reset values (datasheet Table 5): IIR 01, LSR 60; divisor 12 = 9600 baud. */
    u->dll = 12;
    u->trigger = 1;
    u->msr = MSR_CONNECTED;
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->out_cv, NULL);
    pthread_cond_init(&u->rx_cv, NULL);
    pthread_cond_init(&u->out_done_cv, NULL);

    if (out_fd >= 0) {
        u->out_buf = malloc(UART_OUT_BUF);
        if (!u->out_buf) {
            err = -ENOMEM;
            goto fail;
        }
    }
    u->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (u->stop_efd < 0) {
        err = -errno;
        log_err("uart", "COM at 0x%x: eventfd: %s", base, strerror(errno));
        goto fail;
    }
    err = bus_register(env->pio, base, UART_NR_REGS, "uart", &uart_ops, u);
    if (err)
        goto fail;
    u->registered = true;
    *out = u;
    return 0;
fail:
    uart_destroy(u);
    return err;
}

static void uart_tty_raw(struct uart *u)
{
    struct termios raw;

    if (!isatty(u->in_fd) || tcgetattr(u->in_fd, &u->saved_tio) != 0)
        return;
    raw = u->saved_tio;
    cfmakeraw(&raw);
    /* Keep ISIG: until minivmm has an escape key, Ctrl-C is how a user stops
     * it from the console. */
    raw.c_lflag |= ISIG;
    if (tcsetattr(u->in_fd, TCSANOW, &raw) != 0) {
        log_warn("uart", "cannot put the terminal in raw mode: %s", strerror(errno));
        return;
    }
    u->tty_saved = true;
}

int uart_start(struct uart *u)
{
    int err;

    if (u->in_started || u->out_started)
        return -EALREADY;
    if (u->out_fd >= 0) {
        err = pthread_create(&u->out_thread, NULL, uart_out_thread, u);
        if (err) {
            log_err("uart", "COM at 0x%x: cannot start the output thread: %s", u->base, strerror(err));
            return -err;
        }
        u->out_started = true;
    }
    if (u->in_fd >= 0) {
        uart_tty_raw(u);
        err = pthread_create(&u->in_thread, NULL, uart_in_thread, u);
        if (err) {
            log_err("uart", "COM at 0x%x: cannot start the input thread: %s", u->base, strerror(err));
            return -err;    /* uart_destroy undoes the rest */
        }
        u->in_started = true;
    }
    return 0;
}

static void uart_stop_threads(struct uart *u)
{
    uint64_t one = 1;

    pthread_mutex_lock(&u->lock);
    u->stopping = true;
    pthread_cond_broadcast(&u->out_cv);
    pthread_cond_broadcast(&u->rx_cv);
    pthread_mutex_unlock(&u->lock);
    if (u->stop_efd >= 0 && write(u->stop_efd, &one, sizeof(one)) < 0)
        log_warn("uart", "COM at 0x%x: cannot signal the threads: %s", u->base, strerror(errno));

    if (u->in_started) {
        pthread_join(u->in_thread, NULL);
        u->in_started = false;
    }
    if (u->out_started) {
        /* The output thread flushes what is buffered; a host end that stays
         * stuck longer than that has its write cancelled. */
        struct timespec deadline;
        bool done;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += (long)UART_STOP_WAIT_MS * 2 * 1000000L;
        deadline.tv_sec += deadline.tv_nsec / 1000000000L;
        deadline.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&u->lock);
        while (!u->out_done &&
               pthread_cond_timedwait(&u->out_done_cv, &u->lock, &deadline) == 0)
            ;
        done = u->out_done;
        pthread_mutex_unlock(&u->lock);
        if (!done)
            pthread_cancel(u->out_thread);
        pthread_join(u->out_thread, NULL);
        if (!done) {
            log_warn("uart", "COM at 0x%x: output stuck; %zu bytes not written",
                     u->base, u->out_count);
            u->out_broken = true;
        }
        u->out_started = false;
    }
}

/* Output queued while no thread ran (uart_start never called): write it out
 * now, within the same time bound. */
static void uart_flush_remaining(struct uart *u)
{
    u->stopping = true;
    while (u->out_count && !u->out_broken) {
        size_t n = UART_OUT_BUF - u->out_tail;
        if (n > u->out_count)
            n = u->out_count;
        ssize_t w = uart_out_write(u, u->out_buf + u->out_tail, n, true);
        if (w <= 0)
            break;
        u->out_tail = (u->out_tail + (size_t)w) % UART_OUT_BUF;
        u->out_count -= (size_t)w;
    }
}

void uart_destroy(struct uart *u)
{
    if (!u)
        return;
    if (u->registered)
        bus_unregister(u->env.pio, u->base);
    uart_stop_threads(u);
    if (u->out_buf && u->out_fd >= 0)
        uart_flush_remaining(u);
    if (u->tty_saved && tcsetattr(u->in_fd, TCSANOW, &u->saved_tio) != 0)
        log_warn("uart", "cannot restore the terminal: %s", strerror(errno));
    if (u->rx_dropped || u->tx_dropped)
        log_info("uart", "COM at 0x%x: %llu input and %llu output bytes dropped", u->base,
                 (unsigned long long)u->rx_dropped, (unsigned long long)u->tx_dropped);
    if (u->irq_level)
        dev_irq_set(&u->env, u->gsi, 0);
    if (u->stop_efd >= 0)
        close(u->stop_efd);
    pthread_cond_destroy(&u->out_done_cv);
    pthread_cond_destroy(&u->rx_cv);
    pthread_cond_destroy(&u->out_cv);
    pthread_mutex_destroy(&u->lock);
    free(u->out_buf);
    free(u);
}
