#ifndef MINIVMM_PS2_KBD_H
#define MINIVMM_PS2_KBD_H
/* A PS/2 keyboard with no keys pressed, behind the i8042 (devices/legacy/i8042.c):
 * it answers the host's commands as a keyboard does, so firmware and OS
 * drivers find a keyboard at once instead of waiting out their timeouts.
 * Pure state, no locking: the controller holds its lock around every call. */
#include <stdbool.h>
#include <stdint.h>

#define PS2_KBD_QUEUE 16

struct ps2_kbd {
    uint8_t queue[PS2_KBD_QUEUE];   /* bytes for the controller, oldest first */
    unsigned head, count;
    uint8_t pending;                /* command waiting for its parameter, or 0 */
    uint8_t last;                   /* last byte sent, for 0xFE (resend) */
    uint8_t scancode_set;           /* 1-3 */
    uint8_t leds;
    uint8_t typematic;
    bool scanning;
    unsigned dropped;               /* bytes lost to a full queue */
};

void ps2_kbd_init(struct ps2_kbd *kb);
/* A byte from the host. translate: the controller translates scan codes to
 * set 1 (its command byte bit 6), which changes the ID and scan-code-set
 * answers as a real controller would. */
void ps2_kbd_write(struct ps2_kbd *kb, uint8_t byte, bool translate);
/* The next byte for the controller's output buffer, if any. */
bool ps2_kbd_pop(struct ps2_kbd *kb, uint8_t *byte);
#endif
