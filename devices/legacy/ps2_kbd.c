/* PS/2 keyboard (IBM PS/2 Hardware Interface Technical Reference, keyboard
 * commands), with no keys: see devices/legacy/ps2_kbd.h.
 *
 * Commands (host to keyboard), answers (keyboard to host):
 *   0xED set LEDs          ACK; parameter (bits 0-2) -> ACK
 *   0xEE echo              0xEE
 *   0xF0 scan code set     ACK; parameter 1-3 -> ACK, 0 -> ACK + current set
 *   0xF2 read ID           ACK 0xAB 0x83 (0xAB 0x41 through translation)
 *   0xF3 typematic         ACK; parameter -> ACK
 *   0xF4 enable            output queue cleared, ACK, scanning on
 *   0xF5 default, disable  ACK, defaults, scanning off
 *   0xF6 set default       ACK, defaults
 *   0xF7-0xFD (set 3 key types)  ACK
 *   0xFE resend            the last byte again
 *   0xFF reset             ACK, then 0xAA (self-test passed), defaults
 *   anything else          0xFE (resend: not understood)
 *
 * A command byte (0xED and up) where a parameter is expected is taken as a
 * new command, as keyboards do. Why a keyboard at all: OVMF's
 * Ps2KeyboardDxe sends 0xF4 and polls a full second for the ACK when no
 * keyboard answers, on every boot and reset (bench/exit-profile counted
 * 100k status reads more than QEMU, which has a keyboard). */
#include "devices/legacy/ps2_kbd.h"

#include <string.h>

#define KBD_ACK      0xFA
#define KBD_RESEND   0xFE
#define KBD_BAT_OK   0xAA
#define KBD_ECHO     0xEE
#define KBD_ID_0     0xAB
#define KBD_ID_1     0x83
#define KBD_ID_1_XL  0x41

#define KBD_CMD_FIRST 0xED

static void ps2_kbd_defaults(struct ps2_kbd *kb)
{
    kb->scancode_set = 2;
    kb->leds = 0;
    kb->typematic = 0x2B;   /* 10.9 characters/s, 500 ms delay */
}

void ps2_kbd_init(struct ps2_kbd *kb)
{
    memset(kb, 0, sizeof(*kb));
    ps2_kbd_defaults(kb);
    kb->scanning = true;
}

static void ps2_kbd_send(struct ps2_kbd *kb, uint8_t byte)
{
    if (kb->count == PS2_KBD_QUEUE) {
        kb->dropped++;   /* a guest that never reads: the newest is lost */
        return;
    }
    kb->queue[(kb->head + kb->count) % PS2_KBD_QUEUE] = byte;
    kb->count++;
    kb->last = byte;
}

bool ps2_kbd_pop(struct ps2_kbd *kb, uint8_t *byte)
{
    if (!kb->count)
        return false;
    *byte = kb->queue[kb->head];
    kb->head = (kb->head + 1) % PS2_KBD_QUEUE;
    kb->count--;
    return true;
}

/* Scan code set numbers as the controller's set-2-to-set-1 translation
 * delivers them. */
static uint8_t ps2_kbd_set_byte(uint8_t set, bool translate)
{
    static const uint8_t translated[4] = { 0, 0x43, 0x41, 0x3F };
    return translate ? translated[set & 3] : set;
}

static void ps2_kbd_parameter(struct ps2_kbd *kb, uint8_t cmd, uint8_t v, bool translate)
{
    switch (cmd) {
    case 0xED:
        kb->leds = v & 7;
        ps2_kbd_send(kb, KBD_ACK);
        break;
    case 0xF3:
        kb->typematic = v & 0x7F;
        ps2_kbd_send(kb, KBD_ACK);
        break;
    case 0xF0:
        if (v > 3) {
            ps2_kbd_send(kb, KBD_RESEND);
            break;
        }
        ps2_kbd_send(kb, KBD_ACK);
        if (v == 0)
            ps2_kbd_send(kb, ps2_kbd_set_byte(kb->scancode_set, translate));
        else
            kb->scancode_set = v;
        break;
    default:
        break;
    }
}

void ps2_kbd_write(struct ps2_kbd *kb, uint8_t v, bool translate)
{
    uint8_t cmd = kb->pending;

    kb->pending = 0;
    if (cmd && v < KBD_CMD_FIRST) {
        ps2_kbd_parameter(kb, cmd, v, translate);
        return;
    }
    switch (v) {
    case 0xED: case 0xF0: case 0xF3:
        kb->pending = v;
        ps2_kbd_send(kb, KBD_ACK);
        break;
    case 0xEE:
        ps2_kbd_send(kb, KBD_ECHO);
        break;
    case 0xF2:
        ps2_kbd_send(kb, KBD_ACK);
        ps2_kbd_send(kb, KBD_ID_0);
        ps2_kbd_send(kb, translate ? KBD_ID_1_XL : KBD_ID_1);
        break;
    case 0xF4:
        kb->head = kb->count = 0;
        kb->scanning = true;
        ps2_kbd_send(kb, KBD_ACK);
        break;
    case 0xF5:
        ps2_kbd_defaults(kb);
        kb->scanning = false;
        ps2_kbd_send(kb, KBD_ACK);
        break;
    case 0xF6:
        ps2_kbd_defaults(kb);
        ps2_kbd_send(kb, KBD_ACK);
        break;
    case 0xF7: case 0xF8: case 0xF9: case 0xFA: case 0xFB: case 0xFC: case 0xFD:
        ps2_kbd_send(kb, KBD_ACK);
        break;
    case 0xFE:
        ps2_kbd_send(kb, kb->last);
        break;
    case 0xFF:
        kb->head = kb->count = 0;
        ps2_kbd_defaults(kb);
        kb->scanning = true;
        ps2_kbd_send(kb, KBD_ACK);
        ps2_kbd_send(kb, KBD_BAT_OK);
        break;
    default:
        ps2_kbd_send(kb, KBD_RESEND);
        break;
    }
}
