#ifndef MINIVMM_UART_H
#define MINIVMM_UART_H
#include <stddef.h>
#include <stdint.h>
#include "vmm/dev_env.h"

#define UART_COM1_BASE 0x3f8
#define UART_COM1_GSI  4

struct uart;

/* A 16550A at base (8 ports) raising gsi. Guest output goes to out_fd;
 * in_fd >= 0 is read by a thread of the UART's own (started by uart_start)
 * that feeds the receive FIFO. */
int uart_create(const struct dev_env *env, uint16_t base, unsigned gsi,
                int in_fd, int out_fd, struct uart **out);
int uart_start(struct uart *u);          /* input thread, if in_fd >= 0 */
void uart_destroy(struct uart *u);       /* stops the thread, unregisters */
/* Host input into the receive FIFO (bytes past the FIFO's room are dropped
 * and counted). Thread-safe. */
void uart_receive(struct uart *u, const uint8_t *buf, size_t len);
#endif
