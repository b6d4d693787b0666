/* Logging: one line per event, "minivmm: <component>: <message>" on stderr.
 * Errors are logged once, where the context is known (the caller that knows
 * the device and the value), then returned as a negative errno. */
#ifndef MINIVMM_LOG_H
#define MINIVMM_LOG_H
#include <stdatomic.h>
#include <stdbool.h>

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Messages above this level are dropped (default LOG_INFO; --verbose: DEBUG;
 * --quiet: WARN). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_err(comp, ...)   log_msg(LOG_ERR, comp, __VA_ARGS__)
#define log_warn(comp, ...)  log_msg(LOG_WARN, comp, __VA_ARGS__)
#define log_info(comp, ...)  log_msg(LOG_INFO, comp, __VA_ARGS__)
#define log_debug(comp, ...) log_msg(LOG_DEBUG, comp, __VA_ARGS__)

/* Guest-triggered complaints: logged the first time this call site fires and
 * never again, so a hostile guest cannot flood the log. */
#define log_guest_once(comp, ...)                                            \
    do {                                                                     \
        static atomic_bool log_once_done_;                                   \
        if (!atomic_exchange(&log_once_done_, true))                         \
            log_msg(LOG_WARN, comp, __VA_ARGS__);                            \
    } while (0)

#endif
