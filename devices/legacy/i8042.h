#ifndef MINIVMM_I8042_H
#define MINIVMM_I8042_H
#include "vmm/dev_env.h"
struct i8042;
/* Ports 0x60/0x64: enough of the keyboard controller, with a keyless PS/2
 * keyboard behind it, for guests to probe both and to pulse the reset line
 * (command 0xFE -> VM_STOP_RESET). */
int i8042_create(const struct dev_env *env, struct i8042 **out);
void i8042_destroy(struct i8042 *k);
#endif
