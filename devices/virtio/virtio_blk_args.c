/* --disk parsing: see devices/virtio/virtio_blk_args.h. */
#include "devices/virtio/virtio_blk_args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci/pci.h"
#include "devices/pci/pcidev.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_pci.h"
#include "vmm/arg.h"

const char virtio_blk_args_usage[] =
    "disks (virtio-blk):\n"
    "  --disk FILE[,readonly][,cache=none|writeback][,queues=N][,iothreads=N][,serial=S]\n"
    "         [,discard=on|off]\n"
    "                           a raw image or block device as a virtio disk (repeatable);\n"
    "                           cache=writeback (default) uses the host page cache and makes\n"
    "                           guest flushes durable, cache=none uses O_DIRECT\n";

int virtio_blk_arg_parse(const char *value, struct virtio_blk_arg *out, char *err, unsigned errlen)
{
    bool have_threads = false;

    memset(out, 0, sizeof(*out));
    out->cache = VIRTIO_BLK_CACHE_WRITEBACK;
    out->queues = 1;
    out->iothreads = 1;
    out->discard = true;
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
                out->cache = VIRTIO_BLK_CACHE_NONE;
            else if (arg_key_is(v, vlen, "writeback"))
                out->cache = VIRTIO_BLK_CACHE_WRITEBACK;
            else
                return arg_fail(err, errlen, "--disk %s: cache=%.*s: the modes are cache=writeback "
                                "(host page cache) and cache=none (O_DIRECT)", value, (int)vlen, v);
        } else if (arg_key_is(p, klen, "queues") && v) {
            if (!arg_parse_uint(v, vlen, 1, VIRTIO_BLK_MAX_QUEUES, &out->queues))
                return arg_fail(err, errlen, "--disk %s: queues=%.*s: give a number from 1 to %d",
                                value, (int)vlen, v, VIRTIO_BLK_MAX_QUEUES);
        } else if (arg_key_is(p, klen, "iothreads") && v) {
            if (!arg_parse_uint(v, vlen, 1, VIRTIO_BLK_MAX_QUEUES, &out->iothreads))
                return arg_fail(err, errlen, "--disk %s: iothreads=%.*s: give a number from 1 to %d",
                                value, (int)vlen, v, VIRTIO_BLK_MAX_QUEUES);
            have_threads = true;
        } else if (arg_key_is(p, klen, "serial") && v) {
            if (vlen == 0 || vlen > VIRTIO_BLK_SERIAL_LEN)
                return arg_fail(err, errlen, "--disk %s: serial=%.*s: give 1 to %d characters", value,
                                (int)vlen, v, VIRTIO_BLK_SERIAL_LEN);
            for (size_t i = 0; i < vlen; i++)
                if (v[i] < 0x21 || v[i] > 0x7E)
                    return arg_fail(err, errlen, "--disk %s: serial=%.*s: use printable ASCII "
                                    "without spaces", value, (int)vlen, v);
            memcpy(out->serial, v, vlen);
            out->serial[vlen] = '\0';
        } else if (arg_key_is(p, klen, "discard") && v) {
            if (!arg_parse_on_off(v, vlen, &out->discard))
                return arg_fail(err, errlen, "--disk %s: discard=%.*s: give discard=on or discard=off",
                                value, (int)vlen, v);
        } else {
            return arg_fail(err, errlen, "--disk %s: unknown option '%.*s'; the options are readonly, "
                            "cache=none|writeback, queues=N, iothreads=N, serial=S, discard=on|off "
                            "(file names cannot contain commas)", value, (int)len, p);
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

bool virtio_blk_args_flag(const char *name, size_t namelen, bool *takes_value)
{
    if (arg_key_is(name, namelen, "--disk")) {
        *takes_value = true;
        return true;
    }
    return false;
}

int virtio_blk_args_apply(struct virtio_blk_args *a, const char *name, size_t namelen,
                          const char *value, char *err, unsigned errlen)
{
    bool tv;
    if (!virtio_blk_args_flag(name, namelen, &tv))
        return arg_fail(err, errlen, "%.*s: not a disk flag", (int)namelen, name);
    if (a->nr == VIRTIO_BLK_ARGS_MAX_DISKS)
        return arg_fail(err, errlen, "--disk %s: at most %d disks", value ? value : "",
                        VIRTIO_BLK_ARGS_MAX_DISKS);
    int r = virtio_blk_arg_parse(value, &a->disk[a->nr], err, errlen);
    if (r)
        return r;
    for (unsigned i = 0; i < a->nr; i++)
        if (!strcmp(a->disk[i].path, a->disk[a->nr].path))
            return arg_fail(err, errlen, "--disk %s: %s is already a disk; give each image once",
                            value, a->disk[a->nr].path);
    a->nr++;
    return 0;
}

/* ---- the device in the machine's PCI list ---- */

static int blk_pcidev_plug(void *dev, const struct pcidev_where *w)
{
    return virtio_blk_plug(dev, w->bus, w->parent, w->devfn, w->intx_gsi, w->intx_ctx);
}

static void blk_pcidev_unplug(void *dev)
{
    virtio_blk_unplug(dev);
}

static void blk_pcidev_destroy(void *dev)
{
    virtio_blk_destroy(dev);
}

/* How QEMU names a virtio-blk-pci function for "bootorder" (its fw_name
 * "scsi", the disk node "disk@0,0"), which OvmfPkg's QemuBootOrderLib
 * translates to PciRoot(0x0)/Pci(SLOT,FN) (behind a root port:
 * .../Pci(PORT,0x0)/Pci(0x0,0x0)) and matches boot options by. */
static int blk_pcidev_boot_path(void *dev, const struct pcidev_where *w, char *buf, size_t len)
{
    int n;

    if (w->parent)
        n = snprintf(buf, len, "/pci@i0cf8/pci-bridge@%x/scsi@%x/disk@0,0", w->slot,
                     PCI_SLOT(w->devfn));
    else if (PCI_FUNC(w->devfn))
        n = snprintf(buf, len, "/pci@i0cf8/scsi@%x,%x/disk@0,0", w->slot, PCI_FUNC(w->devfn));
    else
        n = snprintf(buf, len, "/pci@i0cf8/scsi@%x/disk@0,0", w->slot);
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct pcidev_ops blk_pcidev_ops = {
    .plug = blk_pcidev_plug,
    .unplug = blk_pcidev_unplug,
    .destroy = blk_pcidev_destroy,
    .boot_path = blk_pcidev_boot_path,
};

int virtio_blk_attach(const struct pcidev_host *h, const struct virtio_blk_args *a,
                      struct pcidev_list *l)
{
    struct virtio_pci_vm pv = { .env = h->env, .irq = h->irq, .vm_fd = h->vm_fd };

    for (unsigned i = 0; i < a->nr; i++) {
        struct virtio_blk *b;
        struct pcidev *d;
        char name[32];
        int err = virtio_blk_create(&pv, &a->disk[i], i, h->io_pin, &b);
        if (err)
            return err;
        snprintf(name, sizeof(name), "virtio-blk%u", i);
        err = pcidev_add(l, name, PCIDEV_STORAGE, PCIDEV_ROOT_BUS, &blk_pcidev_ops, b, &d);
        if (err) {
            virtio_blk_destroy(b);
            return err;
        }
        d->boot_index = (int)i;
    }
    return 0;
}
