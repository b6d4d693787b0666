/* Intel 8042 keyboard controller, PS/2 style (IBM PS/2 keyboard controller
 * interface; what Linux's drivers/input/serio/i8042.c expects), with a
 * keyboard that has no keys and no mouse attached. Enough for guests to
 * probe the controller and the keyboard quickly and to reset the machine
 * through it.
 *
 * Ports:
 *   0x60  read: output buffer (clears OBF)   write: data (command parameter,
 *                                             else a byte for the keyboard)
 *   0x64  read: status                        write: command
 *
 * Status register (0x64 read):
 *   0 OBF      output buffer full
 *   1 IBF      input buffer full: always 0, commands complete at once
 *   2 SYS      system flag (command byte bit 2)
 *   3 A2       last write was to 0x64 (command) rather than 0x60
 *   4 INH      1 = keyboard not inhibited (keylock off)
 *   5 AUXB     the output buffer holds a byte from the auxiliary port
 *   6 TIMEOUT  the last transmission to a device got no answer
 *   7 PARITY   never set
 *
 * Command byte (controller RAM byte 0): 0 KBD interrupt enable (IRQ1),
 * 1 AUX interrupt enable (IRQ12), 2 SYS, 4 KBD disable, 5 AUX disable,
 * 6 scancode translation.
 *
 * Commands (0x64 write):
 *   0x20-0x3F read RAM byte (0x20: command byte)  0x60-0x7F write RAM byte
 *   0xA7/0xA8 disable/enable AUX   0xA9 AUX interface test -> 0x00
 *   0xAA self-test -> 0x55         0xAB KBD interface test -> 0x00
 *   0xAD/0xAE disable/enable KBD   0xD0 read output port
 *   0xD1 write output port (bit 0 clear = assert reset -> VM_STOP_RESET)
 *   0xD2/0xD3 write KBD/AUX output buffer (loop back as if from the device)
 *   0xD4 write a byte to the AUX device
 *   0xF0-0xFF pulse output port bits whose mask bit is 0 (0xFE: reset)
 *
 * A keyboard with no keys (devices/legacy/ps2_kbd.c) is on the first port: a byte
 * written to 0x60 with no controller command pending goes to it and enables
 * its interface (clears command byte bit 4, as the controller does when it
 * clocks a byte out); its answers queue there and move into the output
 * buffer one at a time while the buffer is empty and the interface enabled.
 * No mouse: a byte sent to it (0xD4) comes back as 0xFE with TIMEOUT set, as
 * a controller reports a device that never clocked the byte in, so Linux's
 * psmouse fails its probe at once instead of waiting out its timeouts.
 *
 * The interrupt lines follow the output buffer: IRQ1 is high while a
 * keyboard-side byte waits and the command byte enables it, IRQ12 likewise
 * for the AUX side (ISA edge interrupts: the rising edge is what counts). */
#include "devices/legacy/i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "devices/legacy/ps2_kbd.h"
#include "vmm/bus.h"
#include "vmm/log.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT  0x64
#define I8042_KBD_GSI   1
#define I8042_AUX_GSI   12

#define STS_OBF     0x01
#define STS_SYS     0x04
#define STS_A2      0x08
#define STS_INH     0x10
#define STS_AUXB    0x20
#define STS_TIMEOUT 0x40

#define CTR_KBDINT  0x01
#define CTR_AUXINT  0x02
#define CTR_SYS     0x04
#define CTR_KBDDIS  0x10
#define CTR_AUXDIS  0x20
#define CTR_XLATE   0x40

#define OUTPORT_RESET 0x01   /* 0 = reset asserted */
#define OUTPORT_A20   0x02

#define I8042_RAM_SIZE 32
#define I8042_NO_DEVICE 0xFE

struct i8042 {
    struct dev_env env;
    bool data_registered, cmd_registered;
    pthread_mutex_t lock;
    uint8_t ram[I8042_RAM_SIZE];   /* ram[0] is the command byte */
    uint8_t status;                /* A2 and TIMEOUT; OBF/AUXB from below */
    uint8_t outbuf;
    bool outbuf_full, outbuf_aux;
    uint8_t outport;
    uint8_t pending_cmd;           /* command waiting for its data byte, or 0 */
    bool irq_kbd, irq_aux;
    struct ps2_kbd kbd;
};

static void i8042_update_irq(struct i8042 *k)
{
    bool kbd = k->outbuf_full && !k->outbuf_aux && (k->ram[0] & CTR_KBDINT);
    bool aux = k->outbuf_full && k->outbuf_aux && (k->ram[0] & CTR_AUXINT);

    if (kbd != k->irq_kbd) {
        k->irq_kbd = kbd;
        dev_irq_set(&k->env, I8042_KBD_GSI, kbd);
    }
    if (aux != k->irq_aux) {
        k->irq_aux = aux;
        dev_irq_set(&k->env, I8042_AUX_GSI, aux);
    }
}

/* A byte for the guest in the (single-byte) output buffer. */
static void i8042_put(struct i8042 *k, uint8_t v, bool aux, bool timeout)
{
    k->outbuf = v;
    k->outbuf_full = true;
    k->outbuf_aux = aux;
    if (timeout)
        k->status |= STS_TIMEOUT;
    else
        k->status &= (uint8_t)~STS_TIMEOUT;
}

static uint8_t i8042_status(const struct i8042 *k)
{
    return (uint8_t)((k->outbuf_full ? STS_OBF : 0) | (k->outbuf_aux && k->outbuf_full ? STS_AUXB : 0) |
                     (k->ram[0] & CTR_SYS ? STS_SYS : 0) | STS_INH |
                     (k->status & (STS_A2 | STS_TIMEOUT)));
}

/* Move the keyboard's next byte into an empty output buffer. */
static void i8042_pump_kbd(struct i8042 *k)
{
    uint8_t v;

    if (k->outbuf_full || (k->ram[0] & CTR_KBDDIS))
        return;
    if (ps2_kbd_pop(&k->kbd, &v))
        i8042_put(k, v, false, false);
}

/* Returns true when the guest asked for a reset. */
static bool i8042_write_outport(struct i8042 *k, uint8_t v)
{
    k->outport = v;
    if (!(v & OUTPORT_RESET)) {
        k->outport |= OUTPORT_RESET;   /* the line springs back after the reset */
        return true;
    }
    return false;
}

static bool i8042_command(struct i8042 *k, uint8_t cmd)
{
    k->pending_cmd = 0;
    if (cmd >= 0x20 && cmd <= 0x3F) {
        i8042_put(k, k->ram[cmd & 0x1F], false, false);
        return false;
    }
    if (cmd >= 0x60 && cmd <= 0x7F) {
        k->pending_cmd = cmd;
        return false;
    }
    if (cmd >= 0xF0) {
        /* Pulse output port bits 0-3 whose mask bit is 0: bit 0 is reset. */
        return !(cmd & OUTPORT_RESET);
    }
    switch (cmd) {
    case 0xA7: k->ram[0] |= CTR_AUXDIS; break;
    case 0xA8: k->ram[0] &= (uint8_t)~CTR_AUXDIS; break;
    case 0xA9: i8042_put(k, 0x00, false, false); break;    /* AUX lines OK */
    case 0xAA:                                             /* self-test passed */
        k->ram[0] |= CTR_SYS;
        i8042_put(k, 0x55, false, false);
        break;
    case 0xAB: i8042_put(k, 0x00, false, false); break;    /* KBD lines OK */
    case 0xAD: k->ram[0] |= CTR_KBDDIS; break;
    case 0xAE:
        k->ram[0] &= (uint8_t)~CTR_KBDDIS;
        i8042_pump_kbd(k);
        break;
    case 0xD0: i8042_put(k, k->outport, false, false); break;
    case 0xD1: case 0xD2: case 0xD3: case 0xD4:
        k->pending_cmd = cmd;
        break;
    default:
        log_guest_once("i8042", "unsupported controller command 0x%02x ignored", cmd);
        break;
    }
    return false;
}

static bool i8042_data(struct i8042 *k, uint8_t v)
{
    uint8_t cmd = k->pending_cmd;

    k->pending_cmd = 0;
    if (cmd >= 0x60 && cmd <= 0x7F) {
        k->ram[cmd & 0x1F] = v;
        if (cmd == 0x60)
            i8042_pump_kbd(k);   /* the keyboard may have been enabled */
        return false;
    }
    switch (cmd) {
    case 0xD1:
        return i8042_write_outport(k, v);
    case 0xD2:
        i8042_put(k, v, false, false);
        return false;
    case 0xD3:
        i8042_put(k, v, true, false);
        return false;
    case 0xD4:
        i8042_put(k, I8042_NO_DEVICE, true, true);    /* no mouse */
        return false;
    default:
        k->ram[0] &= (uint8_t)~CTR_KBDDIS;
        ps2_kbd_write(&k->kbd, v, k->ram[0] & CTR_XLATE);
        if (k->kbd.dropped) {
            log_guest_once("i8042", "keyboard answers not read: %u bytes dropped", k->kbd.dropped);
            k->kbd.dropped = 0;
        }
        i8042_pump_kbd(k);
        return false;
    }
}

/* Both ports take byte accesses; wider ones are logged once and read as
 * all ones / dropped. */
static bool i8042_access_ok(unsigned len)
{
    if (len == 1)
        return true;
    log_guest_once("i8042", "%u-byte access to a keyboard controller port ignored", len);
    return false;
}

static int i8042_data_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct i8042 *k = opaque;
    uint8_t *d = data;

    if (!i8042_access_ok(len)) {
        for (unsigned i = 0; i < len; i++)
            d[i] = 0xFF;
        return 0;
    }
    pthread_mutex_lock(&k->lock);
    d[0] = k->outbuf;        /* an empty buffer returns its last byte */
    k->outbuf_full = false;
    k->status &= (uint8_t)~STS_TIMEOUT;
    i8042_update_irq(k);     /* the line falls, so the next byte is an edge */
    i8042_pump_kbd(k);
    i8042_update_irq(k);
    pthread_mutex_unlock(&k->lock);
    return 0;
}

static int i8042_data_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct i8042 *k = opaque;
    bool reset;

    if (!i8042_access_ok(len))
        return 0;
    pthread_mutex_lock(&k->lock);
    k->status &= (uint8_t)~STS_A2;
    reset = i8042_data(k, *(const uint8_t *)data);
    i8042_update_irq(k);
    pthread_mutex_unlock(&k->lock);
    if (reset)
        dev_request_stop(&k->env, VM_STOP_RESET, 0);
    return 0;
}

static int i8042_cmd_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct i8042 *k = opaque;
    uint8_t *d = data;

    if (!i8042_access_ok(len)) {
        for (unsigned i = 0; i < len; i++)
            d[i] = 0xFF;
        return 0;
    }
    pthread_mutex_lock(&k->lock);
    d[0] = i8042_status(k);
    pthread_mutex_unlock(&k->lock);
    return 0;
}

static int i8042_cmd_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct i8042 *k = opaque;
    bool reset;

    if (!i8042_access_ok(len))
        return 0;
    pthread_mutex_lock(&k->lock);
    k->status |= STS_A2;
    reset = i8042_command(k, *(const uint8_t *)data);
    i8042_update_irq(k);
    pthread_mutex_unlock(&k->lock);
    if (reset)
        dev_request_stop(&k->env, VM_STOP_RESET, 0);
    return 0;
}

static const struct bus_ops i8042_data_ops = { .read = i8042_data_read, .write = i8042_data_write };
static const struct bus_ops i8042_cmd_ops = { .read = i8042_cmd_read, .write = i8042_cmd_write };

int i8042_create(const struct dev_env *env, struct i8042 **out)
{
    struct i8042 *k = calloc(1, sizeof(*k));
    int err;

    if (!k)
        return -ENOMEM;
    k->env = *env;
    pthread_mutex_init(&k->lock, NULL);
    /* The state firmware leaves after POST: interrupts on, translation on,
     * self-test passed (SYS), reset line high, A20 enabled. */
    k->ram[0] = CTR_KBDINT | CTR_AUXINT | CTR_SYS | CTR_XLATE;
    k->outport = OUTPORT_RESET | OUTPORT_A20;
    ps2_kbd_init(&k->kbd);

    err = bus_register(env->pio, I8042_DATA_PORT, 1, "i8042-data", &i8042_data_ops, k);
    if (err)
        goto fail;
    k->data_registered = true;
    err = bus_register(env->pio, I8042_CMD_PORT, 1, "i8042-cmd", &i8042_cmd_ops, k);
    if (err)
        goto fail;
    k->cmd_registered = true;
    *out = k;
    return 0;
fail:
    i8042_destroy(k);
    return err;
}

void i8042_destroy(struct i8042 *k)
{
    if (!k)
        return;
    if (k->cmd_registered)
        bus_unregister(k->env.pio, I8042_CMD_PORT);
    if (k->data_registered)
        bus_unregister(k->env.pio, I8042_DATA_PORT);
    if (k->irq_kbd)
        dev_irq_set(&k->env, I8042_KBD_GSI, 0);
    if (k->irq_aux)
        dev_irq_set(&k->env, I8042_AUX_GSI, 0);
    pthread_mutex_destroy(&k->lock);
    free(k);
}
