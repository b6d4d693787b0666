/* What the core derives from the configuration (vmm/config.h); turning
 * argv into it is the front end's (frontend/cli.c). */
#include "vmm/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a (64-bit): a short, stable tag of a path. */
static uint64_t path_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

int config_vm_name(const struct config *cfg, char *out, size_t len)
{
    char real[4096];
    const char *path, *base;
    size_t stem;
    int n;

    if (cfg->name)
        n = snprintf(out, len, "%s", cfg->name);
    else if (cfg->disks.nr) {
        /* The disk is the VM: name it after the first one, plus a hash of
         * its absolute path so two "win.img" in different folders differ. */
        path = realpath(cfg->disks.disk[0].path, real) ? real : cfg->disks.disk[0].path;
        base = strrchr(path, '/');
        base = base ? base + 1 : path;
        stem = strcspn(base, ".");
        if (stem == 0)
            stem = strlen(base);
        if (stem > 32)
            stem = 32;
        char clean[33];
        for (size_t i = 0; i < stem; i++)
            clean[i] = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
                              base[i]) ? base[i] : '_';
        clean[stem] = '\0';
        n = snprintf(out, len, "%s-%08" PRIx32, stem ? clean : "disk",
                     (uint32_t)(path_hash(path) >> 32));
    } else
        n = snprintf(out, len, "default");
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
