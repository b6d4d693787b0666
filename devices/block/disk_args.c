/* --disk parsing: see devices/block/disk_args.h. */
#include "devices/block/disk_args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/arg.h"

const char disk_args_usage[] =
    "disks:\n"
    "  --disk FILE[,if=virtio|sata|nvme][,readonly][,cache=none|writeback][,queues=N]\n"
    "         [,iothreads=N][,serial=S][,discard=on|off][,bootindex=N]\n"
    "                           a raw image or block device as a disk (repeatable): a\n"
    "                           virtio disk (default), a SATA disk on the AHCI or an NVMe\n"
    "                           controller; cache=writeback (default) uses the host page\n"
    "                           cache and makes guest flushes durable, cache=none O_DIRECT\n"
    "  --cdrom FILE[,bootindex=N]\n"
    "                           an ISO image as a read-only ATAPI CD-ROM on the AHCI\n"
    "                           (repeatable: the installer, a driver disc)\n"
    "  --boot cdrom|disk        boot the CD-ROMs first (a fresh install) or the disks\n"
    "                           (default)\n";

int disk_arg_parse(const char *value, struct disk_arg *out, char *err, unsigned errlen)
{
    bool have_threads = false;

    memset(out, 0, sizeof(*out));
    out->cache = DISK_CACHE_WRITEBACK;
    out->queues = 1;
    out->iothreads = 1;
    out->discard = true;
    out->bootindex = DISK_NO_BOOTINDEX;
    if (!value || !*value || *value == ',')
        return arg_fail(err, errlen, "--disk: needs a file name first, e.g. --disk disk.img or "
                        "--disk /dev/nvme0n1p3,cache=none");
    const char *comma = strchr(value, ',');
    size_t plen = comma ? (size_t)(comma - value) : strlen(value);
    if (plen >= sizeof(out->path))
        return arg_fail(err, errlen, "--disk: the file name is longer than %zu bytes",
                        sizeof(out->path) - 1);
    memcpy(out->path, value, plen);
    out->path[plen] = '\0';

    const char *p = comma ? comma + 1 : value + plen;
    while (comma && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        const char *v = eq ? eq + 1 : NULL;
        size_t vlen = eq ? len - klen - 1 : 0;

        if (len == 0)
            return arg_fail(err, errlen, "--disk %s: empty option (two commas?)", value);
        if (arg_key_is(p, klen, "readonly") || arg_key_is(p, klen, "ro")) {
            bool on = true;
            if (v && !arg_parse_on_off(v, vlen, &on))
                return arg_fail(err, errlen, "--disk %s: readonly=%.*s: give readonly, "
                                "readonly=on or readonly=off", value, (int)vlen, v);
            out->readonly = on;
        } else if (arg_key_is(p, klen, "cache") && v) {
            if (arg_key_is(v, vlen, "none"))
                out->cache = DISK_CACHE_NONE;
            else if (arg_key_is(v, vlen, "writeback"))
                out->cache = DISK_CACHE_WRITEBACK;
            else
                return arg_fail(err, errlen, "--disk %s: cache=%.*s: the modes are cache=writeback "
                                "(host page cache) and cache=none (O_DIRECT)", value, (int)vlen, v);
        } else if (arg_key_is(p, klen, "queues") && v) {
            if (!arg_parse_uint(v, vlen, 1, DISK_MAX_QUEUES, &out->queues))
                return arg_fail(err, errlen, "--disk %s: queues=%.*s: give a number from 1 to %d",
                                value, (int)vlen, v, DISK_MAX_QUEUES);
        } else if (arg_key_is(p, klen, "iothreads") && v) {
            if (!arg_parse_uint(v, vlen, 1, DISK_MAX_QUEUES, &out->iothreads))
                return arg_fail(err, errlen, "--disk %s: iothreads=%.*s: give a number from 1 to %d",
                                value, (int)vlen, v, DISK_MAX_QUEUES);
            have_threads = true;
        } else if (arg_key_is(p, klen, "serial") && v) {
            if (vlen == 0 || vlen > DISK_SERIAL_LEN)
                return arg_fail(err, errlen, "--disk %s: serial=%.*s: give 1 to %d characters", value,
                                (int)vlen, v, DISK_SERIAL_LEN);
            for (size_t i = 0; i < vlen; i++)
                if (v[i] < 0x21 || v[i] > 0x7E)
                    return arg_fail(err, errlen, "--disk %s: serial=%.*s: use printable ASCII "
                                    "without spaces", value, (int)vlen, v);
            memcpy(out->serial, v, vlen);
            out->serial[vlen] = '\0';
        } else if (arg_key_is(p, klen, "if") && v) {
            if (arg_key_is(v, vlen, "virtio"))
                out->iface = DISK_IF_VIRTIO;
            else if (arg_key_is(v, vlen, "sata"))
                out->iface = DISK_IF_SATA;
            else if (arg_key_is(v, vlen, "nvme"))
                out->iface = DISK_IF_NVME;
            else
                return arg_fail(err, errlen, "--disk %s: if=%.*s: the controllers are if=virtio "
                                "(virtio-blk, the default), if=sata (AHCI) and if=nvme", value,
                                (int)vlen, v);
        } else if (arg_key_is(p, klen, "bootindex") && v) {
            unsigned bi;
            if (!arg_parse_uint(v, vlen, 0, 999, &bi))
                return arg_fail(err, errlen, "--disk %s: bootindex=%.*s: give a number from 0 "
                                "(boots first) to 999", value, (int)vlen, v);
            out->bootindex = (int)bi;
        } else if (arg_key_is(p, klen, "discard") && v) {
            if (!arg_parse_on_off(v, vlen, &out->discard))
                return arg_fail(err, errlen, "--disk %s: discard=%.*s: give discard=on or discard=off",
                                value, (int)vlen, v);
        } else {
            return arg_fail(err, errlen, "--disk %s: unknown option '%.*s'; the options are "
                            "if=virtio|sata|nvme, readonly, cache=none|writeback, queues=N, "
                            "iothreads=N, serial=S, discard=on|off, bootindex=N (file names "
                            "cannot contain commas)", value, (int)len, p);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (have_threads && out->iothreads > out->queues)
        return arg_fail(err, errlen, "--disk %s: iothreads=%u is more than queues=%u; an I/O thread "
                        "serves at least one queue", value, out->iothreads, out->queues);
    return 0;
}

bool disk_args_flag(const char *name, size_t namelen, bool *takes_value)
{
    if (arg_key_is(name, namelen, "--disk") || arg_key_is(name, namelen, "--cdrom") ||
        arg_key_is(name, namelen, "--boot")) {
        *takes_value = true;
        return true;
    }
    return false;
}

/* --cdrom FILE[,bootindex=N]: a read-only ATAPI drive on the AHCI. */
static int cdrom_arg_parse(const char *value, struct disk_arg *out, char *err, unsigned errlen)
{
    memset(out, 0, sizeof(*out));
    out->readonly = true;
    out->iface = DISK_IF_SATA;
    out->cdrom = true;
    out->cache = DISK_CACHE_WRITEBACK;
    out->queues = out->iothreads = 1;
    out->bootindex = DISK_NO_BOOTINDEX;
    if (!value || !*value || *value == ',')
        return arg_fail(err, errlen, "--cdrom: needs an ISO image, e.g. --cdrom win11.iso");
    const char *comma = strchr(value, ',');
    size_t plen = comma ? (size_t)(comma - value) : strlen(value);
    if (plen >= sizeof(out->path))
        return arg_fail(err, errlen, "--cdrom: the file name is longer than %zu bytes",
                        sizeof(out->path) - 1);
    memcpy(out->path, value, plen);
    out->path[plen] = '\0';
    if (!comma)
        return 0;
    const char *opt = comma + 1;
    unsigned bi;
    if (strncmp(opt, "bootindex=", 10))
        return arg_fail(err, errlen, "--cdrom %s: unknown option '%s'; the only option is "
                        "bootindex=N (file names cannot contain commas)", value, opt);
    if (!arg_parse_uint(opt + 10, strlen(opt + 10), 0, 999, &bi))
        return arg_fail(err, errlen, "--cdrom %s: %s: give a number from 0 (boots first) to 999",
                        value, opt);
    out->bootindex = (int)bi;
    return 0;
}

int disk_args_apply(struct disk_args *a, const char *name, size_t namelen,
                    const char *value, char *err, unsigned errlen)
{
    bool tv, cdrom = arg_key_is(name, namelen, "--cdrom");
    int r;

    if (!disk_args_flag(name, namelen, &tv))
        return arg_fail(err, errlen, "%.*s: not a disk flag", (int)namelen, name);
    if (arg_key_is(name, namelen, "--boot")) {
        size_t vlen = value ? strlen(value) : 0;
        if (value && arg_key_is(value, vlen, "cdrom"))
            a->boot_cdrom = true;
        else if (value && arg_key_is(value, vlen, "disk"))
            a->boot_cdrom = false;
        else
            return arg_fail(err, errlen, "--boot %s: give --boot cdrom (the CD-ROMs boot first) "
                            "or --boot disk (the disks first, the default)", value ? value : "");
        return 0;
    }
    if (a->nr == DISK_ARGS_MAX)
        return arg_fail(err, errlen, "%s %s: at most %d disks and CD-ROMs", cdrom ? "--cdrom"
                        : "--disk", value ? value : "", DISK_ARGS_MAX);
    r = cdrom ? cdrom_arg_parse(value, &a->disk[a->nr], err, errlen)
              : disk_arg_parse(value, &a->disk[a->nr], err, errlen);
    if (r)
        return r;
    for (unsigned i = 0; i < a->nr; i++)
        if (!strcmp(a->disk[i].path, a->disk[a->nr].path))
            return arg_fail(err, errlen, "%s %s: %s is already a disk or CD-ROM; give each image "
                            "once", cdrom ? "--cdrom" : "--disk", value, a->disk[a->nr].path);
    a->nr++;
    return 0;
}

int disk_args_finish(struct disk_args *a, char *err, unsigned errlen)
{
    int next = 0;

    /* the ones with a bootindex first, by it */
    for (unsigned i = 0; i < a->nr; i++) {
        a->disk[i].boot_index = DISK_NO_BOOTINDEX;
        for (unsigned k = 0; k < i; k++)
            if (a->disk[i].bootindex != DISK_NO_BOOTINDEX &&
                a->disk[k].bootindex == a->disk[i].bootindex)
                return arg_fail(err, errlen, "%s and %s both have bootindex=%d; give each its "
                                "own", a->disk[k].path, a->disk[i].path, a->disk[i].bootindex);
    }
    for (int bi = 0; bi <= 999; bi++)
        for (unsigned i = 0; i < a->nr; i++)
            if (a->disk[i].bootindex == bi)
                a->disk[i].boot_index = next++;
    /* then the rest: CD-ROMs and disks in the order --boot says */
    for (unsigned pass = 0; pass < 2; pass++) {
        bool want_cdrom = (pass == 0) == a->boot_cdrom;
        for (unsigned i = 0; i < a->nr; i++)
            if (a->disk[i].boot_index == DISK_NO_BOOTINDEX && a->disk[i].cdrom == want_cdrom)
                a->disk[i].boot_index = next++;
    }
    return 0;
}
