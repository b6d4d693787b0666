/* Logging: see vmm/log.h. Each message is formatted into one buffer and
 * written with a single write(2), so lines from different threads (vCPUs,
 * device threads, the main thread) never interleave mid-line. */
#include "vmm/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static atomic_int log_level = LOG_INFO;

void log_set_level(enum log_level level)
{
    if (level < LOG_ERR)
        level = LOG_ERR;
    if (level > LOG_DEBUG)
        level = LOG_DEBUG;
    atomic_store(&log_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&log_level);
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
    char line[1024];
    int saved_errno = errno;   /* callers may log and then inspect errno */
    int n, m;
    va_list ap;

    if ((int)level > atomic_load(&log_level))
        return;
    n = snprintf(line, sizeof(line), "minivmm: %s: ", component ? component : "?");
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n >= sizeof(line) - 1) {
        /* Truncated: keep the start, which names the thing, and mark it. */
        n = (int)sizeof(line) - 5;
        line[n++] = '.';
        line[n++] = '.';
        line[n++] = '.';
    }
    line[n++] = '\n';
    for (const char *p = line; n > 0;) {
        ssize_t w = write(STDERR_FILENO, p, (size_t)n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        n -= (int)w;
    }
    errno = saved_errno;
}
