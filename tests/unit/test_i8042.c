/* i8042 controller commands and the reset line, as Linux's i8042 driver and
 * its reboot path use them. */
#include <criterion/criterion.h>

#include "devices/legacy/i8042.h"
#include "fake_env.h"

#define DATA 0x60
#define CMD  0x64
#define ST_OBF 0x01
#define ST_SYS 0x04
#define ST_A2  0x08
#define ST_INH 0x10
#define ST_AUX 0x20
#define ST_TMO 0x40

static struct fake_env fe;
static struct i8042 *kbc;

static void kbc_setup(void)
{
    fake_env_init(&fe);
    cr_assert_eq(i8042_create(&fe.env, &kbc), 0);
}

static void kbc_teardown(void)
{
    i8042_destroy(kbc);
    cr_assert_eq(fe.bad_calls, 0);
    fake_env_fini(&fe);
}

/* A command with one response byte, as i8042_command() does it. */
static uint8_t kbc_query(uint8_t cmd)
{
    outb_(&fe, CMD, cmd);
    cr_assert(inb_(&fe, CMD) & ST_OBF, "no response to command 0x%02x", cmd);
    return inb_(&fe, DATA);
}

TestSuite(i8042, .init = kbc_setup, .fini = kbc_teardown);

Test(i8042, status_after_reset)
{
    uint8_t st = inb_(&fe, CMD);
    cr_assert_eq(st & ST_OBF, 0, "output buffer empty");
    cr_assert(st & ST_INH, "keylock off (else Linux warns 'Keylock active')");
    cr_assert(st & ST_SYS, "system flag: POST passed");
    cr_assert_eq(st & 0x02, 0, "input buffer never full");
}

Test(i8042, self_and_interface_tests)
{
    cr_assert_eq(kbc_query(0xAA), 0x55);
    cr_assert_eq(inb_(&fe, CMD) & ST_OBF, 0, "reading 0x60 empties the buffer");
    cr_assert_eq(kbc_query(0xAB), 0x00);
    cr_assert_eq(kbc_query(0xA9), 0x00);
}

Test(i8042, command_byte)
{
    cr_assert_eq(kbc_query(0x20), 0x47, "KBD+AUX interrupts, SYS, translation");
    outb_(&fe, CMD, 0x60);
    cr_assert(inb_(&fe, CMD) & ST_A2, "A2: last write was a command");
    outb_(&fe, DATA, 0x65);
    cr_assert_eq(inb_(&fe, CMD) & ST_A2, 0, "A2 clear after a data write");
    cr_assert_eq(kbc_query(0x20), 0x65);
    outb_(&fe, CMD, 0xAD);
    cr_assert_eq(kbc_query(0x20) & 0x10, 0x10, "KBD disabled");
    outb_(&fe, CMD, 0xAE);
    cr_assert_eq(kbc_query(0x20) & 0x10, 0x00);
    outb_(&fe, CMD, 0xA7);
    cr_assert_eq(kbc_query(0x20) & 0x20, 0x20, "AUX disabled");
    outb_(&fe, CMD, 0xA8);
    cr_assert_eq(kbc_query(0x20) & 0x20, 0x00);
    /* other RAM bytes */
    outb_(&fe, CMD, 0x65);
    outb_(&fe, DATA, 0x3C);
    cr_assert_eq(kbc_query(0x25), 0x3C);
}

Test(i8042, output_port_and_reset)
{
    cr_assert_eq(kbc_query(0xD0) & 0x03, 0x03, "reset line high, A20 on");
    outb_(&fe, CMD, 0xD1);
    outb_(&fe, DATA, 0xDF);             /* A20 on, reset not asserted */
    cr_assert_eq(fe.stops, 0);
    cr_assert_eq(kbc_query(0xD0), 0xDF);
    outb_(&fe, CMD, 0xFF);              /* pulse nothing */
    cr_assert_eq(fe.stops, 0);
    outb_(&fe, CMD, 0xFE);              /* pulse reset: Linux's reboot=kbd */
    cr_assert_eq(fe.stops, 1);
    cr_assert_eq(fe.stop_reason, VM_STOP_RESET);
    outb_(&fe, CMD, 0xD1);
    outb_(&fe, DATA, 0xDE);             /* bit 0 clear: reset asserted */
    cr_assert_eq(fe.stops, 2);
    cr_assert_eq(fe.stop_reason, VM_STOP_RESET);
}

Test(i8042, aux_loopback_raises_irq12)
{
    outb_(&fe, CMD, 0xD3);
    outb_(&fe, DATA, 0x5A);
    uint8_t st = inb_(&fe, CMD);
    cr_assert_eq(st & (ST_OBF | ST_AUX), ST_OBF | ST_AUX, "byte from the AUX side");
    cr_assert_eq(fake_level(&fe, 12), 1, "IRQ12 with AUX interrupts enabled");
    cr_assert_eq(fake_level(&fe, 1), 0);
    cr_assert_eq(inb_(&fe, DATA), 0x5A);
    cr_assert_eq(fake_level(&fe, 12), 0, "line drops once the byte is read");

    outb_(&fe, CMD, 0x60);
    outb_(&fe, DATA, 0x45);             /* AUX interrupt off */
    outb_(&fe, CMD, 0xD3);
    outb_(&fe, DATA, 0xA5);
    cr_assert_eq(fe.raises[12], 1, "no IRQ12 with AUXINT clear");
    cr_assert_eq(inb_(&fe, DATA), 0xA5);
}

/* The keyboard's answers come one byte at a time, each raising IRQ1. */
static void kbd_expect(const uint8_t *bytes, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint8_t st = inb_(&fe, CMD);
        cr_assert_eq(st & (ST_OBF | ST_TMO | ST_AUX), ST_OBF, "byte %u: status 0x%02x", i, st);
        cr_assert_eq(fake_level(&fe, 1), 1, "IRQ1 for byte %u", i);
        cr_assert_eq(inb_(&fe, DATA), bytes[i], "byte %u", i);
    }
    cr_assert_eq(inb_(&fe, CMD) & ST_OBF, 0, "nothing more after %u bytes", n);
    cr_assert_eq(fake_level(&fe, 1), 0);
}

Test(i8042, keyboard_answers)
{
    unsigned raises = fe.raises[1];
    outb_(&fe, DATA, 0xF4);             /* enable: OVMF's CheckKeyboardConnect */
    kbd_expect((const uint8_t[]){ 0xFA }, 1);
    outb_(&fe, DATA, 0xF2);             /* read ID, translated */
    kbd_expect((const uint8_t[]){ 0xFA, 0xAB, 0x41 }, 3);
    cr_assert_eq(fe.raises[1], raises + 4, "one IRQ1 edge per byte");
    outb_(&fe, DATA, 0xFF);             /* reset */
    kbd_expect((const uint8_t[]){ 0xFA, 0xAA }, 2);
    outb_(&fe, DATA, 0xED);             /* LEDs */
    kbd_expect((const uint8_t[]){ 0xFA }, 1);
    outb_(&fe, DATA, 0x07);
    kbd_expect((const uint8_t[]){ 0xFA }, 1);
    outb_(&fe, DATA, 0xEE);
    kbd_expect((const uint8_t[]){ 0xEE }, 1);
    outb_(&fe, DATA, 0xFE);             /* resend */
    kbd_expect((const uint8_t[]){ 0xEE }, 1);
    outb_(&fe, DATA, 0x12);             /* not a command */
    kbd_expect((const uint8_t[]){ 0xFE }, 1);
}

Test(i8042, keyboard_scancode_set)
{
    outb_(&fe, DATA, 0xF0);
    outb_(&fe, DATA, 0x00);             /* query, answered before the first read */
    kbd_expect((const uint8_t[]){ 0xFA, 0xFA, 0x41 }, 3);
    outb_(&fe, CMD, 0x60);
    outb_(&fe, DATA, 0x07);             /* translation off */
    outb_(&fe, DATA, 0xF0);
    outb_(&fe, DATA, 0x03);
    outb_(&fe, DATA, 0xF0);
    outb_(&fe, DATA, 0x00);
    kbd_expect((const uint8_t[]){ 0xFA, 0xFA, 0xFA, 0xFA, 0x03 }, 5);
    outb_(&fe, DATA, 0xF2);
    kbd_expect((const uint8_t[]){ 0xFA, 0xAB, 0x83 }, 3);
    outb_(&fe, DATA, 0xF0);
    outb_(&fe, DATA, 0x09);             /* no such set */
    kbd_expect((const uint8_t[]){ 0xFA, 0xFE }, 2);
    outb_(&fe, DATA, 0xF3);
    outb_(&fe, DATA, 0xF4);             /* a command in place of the parameter */
    kbd_expect((const uint8_t[]){ 0xFA, 0xFA }, 2);
}

Test(i8042, keyboard_waits_while_disabled)
{
    outb_(&fe, DATA, 0xF2);
    cr_assert_eq(inb_(&fe, DATA), 0xFA);   /* 0xAB moves into the buffer */
    outb_(&fe, CMD, 0xAD);              /* clock inhibited: the rest waits */
    cr_assert_eq(inb_(&fe, DATA), 0xAB);
    cr_assert_eq(inb_(&fe, CMD) & ST_OBF, 0);
    outb_(&fe, CMD, 0xAE);
    kbd_expect((const uint8_t[]){ 0x41 }, 1);
    outb_(&fe, CMD, 0xAD);
    outb_(&fe, DATA, 0xEE);             /* writing to it enables it again */
    kbd_expect((const uint8_t[]){ 0xEE }, 1);
    cr_assert_eq(kbc_query(0x20) & 0x10, 0);
}

Test(i8042, keyboard_flood_is_bounded)
{
    for (int i = 0; i < 100; i++)
        outb_(&fe, DATA, 0xF2);         /* never read: the queue stays bounded */
    unsigned n = 0;
    while ((inb_(&fe, CMD) & ST_OBF) && n < 1000) {
        inb_(&fe, DATA);
        n++;
    }
    cr_assert_leq(n, 17, "%u bytes: output buffer plus a 16-byte queue", n);
    cr_assert_geq(n, 3);
    outb_(&fe, DATA, 0xF4);             /* clears the queue and still answers */
    kbd_expect((const uint8_t[]){ 0xFA }, 1);
}

Test(i8042, no_mouse_answers_with_timeout)
{
    outb_(&fe, CMD, 0xD4);              /* to the mouse */
    outb_(&fe, DATA, 0xFF);
    uint8_t st = inb_(&fe, CMD);
    cr_assert_eq(st & (ST_OBF | ST_TMO | ST_AUX), ST_OBF | ST_TMO | ST_AUX);
    cr_assert_eq(fake_level(&fe, 12), 1);
    cr_assert_eq(inb_(&fe, DATA), 0xFE);
    cr_assert_eq(inb_(&fe, CMD) & (ST_OBF | ST_TMO), 0);
}

Test(i8042, kbd_output_buffer_write)
{
    outb_(&fe, CMD, 0xD2);
    outb_(&fe, DATA, 0x1C);
    cr_assert_eq(inb_(&fe, CMD) & (ST_OBF | ST_AUX), ST_OBF);
    cr_assert_eq(fake_level(&fe, 1), 1);
    cr_assert_eq(inb_(&fe, DATA), 0x1C);
}

Test(i8042, odd_accesses_are_harmless)
{
    outb_(&fe, CMD, 0x01);              /* undefined command */
    cr_assert_eq(inb_(&fe, CMD) & ST_OBF, 0);
    pio_out(&fe, CMD, 0xFE, 1);
    cr_assert_eq(fe.stops, 1);
    cr_assert_eq(inb_(&fe, DATA), 0x00, "empty buffer: last byte (none yet)");
    cr_assert_null(bus_find(&fe.pio, 0x61, 1), "only 0x60 and 0x64 are claimed");
}
