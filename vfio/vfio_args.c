/* VFIO command-line flags: see vfio/vfio_args.h. */
#include "vfio/vfio_args.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/arg.h"

const char vfio_args_usage[] =
    "passthrough (VFIO):\n"
    "  --gpu BDF                pass the GPU at BDF (e.g. 01:00.0) and the other functions of\n"
    "                           its slot (HDMI audio...) through\n"
    "  --device vfio,host=BDF[,rom=FILE][,rombar=off]   pass any PCI function (repeatable)\n"
    "  --rom FILE               the GPU's option ROM from FILE instead of the card\n"
    "  --hide-hypervisor        hide KVM from the guest's CPUID (drivers that refuse VMs)\n"
    "  --bind                   bind the devices to vfio-pci at start, restore drivers at exit\n"
    "  --vfio-iommu MODE        auto (default: the VFIO container if the kernel has one,\n"
    "                           else iommufd), type1, or iommufd (/dev/iommu, device cdevs)\n";

enum vflag { VF_GPU, VF_DEVICE, VF_ROM, VF_HIDE, VF_BIND, VF_IOMMU };

static const struct {
    const char *name;
    bool takes_value;
    enum vflag id;
} flags[] = {
    { "--gpu", true, VF_GPU },
    { "--device", true, VF_DEVICE },
    { "--rom", true, VF_ROM },
    { "--hide-hypervisor", false, VF_HIDE },
    { "--bind", false, VF_BIND },
    { "--vfio-iommu", true, VF_IOMMU },
};

static int find(const char *name, size_t namelen)
{
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (arg_key_is(name, namelen, flags[i].name))
            return (int)i;
    return -1;
}

bool vfio_args_flag(const char *name, size_t namelen, bool *takes_value)
{
    int i = find(name, namelen);
    if (i < 0)
        return false;
    *takes_value = flags[i].takes_value;
    return true;
}

static int add_device(struct vfio_args *a, const char *flag, const char *bdf, size_t bdflen,
                      struct vfio_dev_arg **out, char *err, unsigned errlen)
{
    char tmp[32];
    if (!bdflen || bdflen >= sizeof(tmp))
        return arg_fail(err, errlen, "%s: '%.*s' is not a PCI address; give DDDD:BB:DD.F or "
                        "BB:DD.F as `lspci -D` shows (e.g. 01:00.0)", flag, (int)(bdflen < 64 ? bdflen : 64), bdf);
    memcpy(tmp, bdf, bdflen);
    tmp[bdflen] = 0;
    char norm[HOST_BDF_LEN];
    if (bdf_parse(tmp, norm) < 0)
        return arg_fail(err, errlen, "%s: '%s' is not a PCI address; give DDDD:BB:DD.F or BB:DD.F "
                        "as `lspci -D` shows (e.g. 01:00.0)", flag, tmp);
    for (unsigned i = 0; i < a->nr; i++)
        if (!strcmp(a->dev[i].host, norm))
            return arg_fail(err, errlen, "%s %s: that function is already passed through; give "
                            "each device once", flag, norm);
    if (a->nr == VFIO_ARGS_MAX_DEVICES)
        return arg_fail(err, errlen, "%s %s: at most %d passed-through functions", flag, norm,
                        VFIO_ARGS_MAX_DEVICES);
    struct vfio_dev_arg *d = &a->dev[a->nr++];
    memset(d, 0, sizeof(*d));
    memcpy(d->host, norm, sizeof(d->host));
    *out = d;
    return 0;
}

static int set_rom(struct vfio_dev_arg *d, const char *flag, const char *path, size_t len,
                   char *err, unsigned errlen)
{
    if (!len)
        return arg_fail(err, errlen, "%s: rom= needs a file name", flag);
    if (len >= sizeof(d->rom))
        return arg_fail(err, errlen, "%s: ROM file name longer than %zu bytes", flag, sizeof(d->rom) - 1);
    memcpy(d->rom, path, len);
    d->rom[len] = 0;
    return 0;
}

/* "vfio,host=BDF[,rom=FILE][,rombar=on|off]": keys are cut at commas, so a
 * ROM path with a comma goes through --gpu with --rom instead. */
static int parse_device(struct vfio_args *a, const char *v, char *err, unsigned errlen)
{
    if (strncmp(v, "vfio", 4) || (v[4] && v[4] != ','))
        return arg_fail(err, errlen, "--device %s: unknown device type; minivmm passes PCI "
                        "functions through with --device vfio,host=BDF", v);
    const char *host = NULL, *rom = NULL, *rombar = NULL;
    size_t host_len = 0, rom_len = 0, rombar_len = 0;
    const char *p = v[4] ? v + 5 : v + 4;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p)
            return arg_fail(err, errlen, "--device %s: '%.*s' is not KEY=VALUE; the keys are host, "
                            "rom and rombar", v, (int)len, p);
        size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
        const char **slot;
        size_t *slot_len;
        if (arg_key_is(p, klen, "host")) {
            slot = &host;
            slot_len = &host_len;
        } else if (arg_key_is(p, klen, "rom")) {
            slot = &rom;
            slot_len = &rom_len;
        } else if (arg_key_is(p, klen, "rombar")) {
            slot = &rombar;
            slot_len = &rombar_len;
        } else {
            return arg_fail(err, errlen, "--device %s: unknown key '%.*s'; the keys are host, rom "
                            "and rombar", v, (int)klen, p);
        }
        if (*slot)
            return arg_fail(err, errlen, "--device %s: %.*s given twice", v, (int)klen, p);
        *slot = eq + 1;
        *slot_len = vlen;
        p = end ? end + 1 : p + len;
        if (end && !*p)
            return arg_fail(err, errlen, "--device %s: trailing comma", v);
    }
    if (!host)
        return arg_fail(err, errlen, "--device %s: no host=BDF; give e.g. --device vfio,host=01:00.0", v);
    bool no_rom = false;
    if (rombar) {
        bool on;
        if (!arg_parse_on_off(rombar, rombar_len, &on))
            return arg_fail(err, errlen, "--device %s: rombar=%.*s; use rombar=on or rombar=off", v,
                            (int)rombar_len, rombar);
        no_rom = !on;
    }
    if (rom && no_rom)
        return arg_fail(err, errlen, "--device %s: rom= and rombar=off contradict; give one", v);
    struct vfio_dev_arg *d;
    int r = add_device(a, "--device", host, host_len, &d, err, errlen);
    if (r < 0)
        return r;
    d->no_rom = no_rom;
    if (rom && (r = set_rom(d, "--device", rom, rom_len, err, errlen)) < 0) {
        a->nr--;
        return r;
    }
    return 0;
}

int vfio_args_apply(struct vfio_args *a, const char *name, size_t namelen, const char *value,
                    char *err, unsigned errlen)
{
    int i = find(name, namelen);
    if (i < 0)
        return arg_fail(err, errlen, "%.*s: not a passthrough flag", (int)namelen, name);
    if (flags[i].takes_value && !value)
        return arg_fail(err, errlen, "%s: needs a value", flags[i].name);
    struct vfio_dev_arg *d;
    switch (flags[i].id) {
    case VF_GPU:
        for (unsigned k = 0; k < a->nr; k++)
            if (a->dev[k].gpu)
                return arg_fail(err, errlen, "--gpu %s: --gpu was given before (%s); pass other "
                                "devices with --device vfio,host=BDF", value, a->dev[k].host);
        {
            int r = add_device(a, "--gpu", value, strlen(value), &d, err, errlen);
            if (r < 0)
                return r;
        }
        d->gpu = true;
        return 0;
    case VF_DEVICE:
        return parse_device(a, value, err, errlen);
    case VF_ROM:
        if (!*value)
            return arg_fail(err, errlen, "--rom '': empty file name; give the ROM image's path");
        if (a->rom)
            return arg_fail(err, errlen, "--rom %s: --rom was given before (%s)", value, a->rom);
        a->rom = value;
        return 0;
    case VF_HIDE:
        a->hide_hypervisor = true;
        return 0;
    case VF_BIND:
        a->bind = true;
        return 0;
    case VF_IOMMU: {
        static const enum vfio_iommu_mode modes[] = {
            VFIO_IOMMU_AUTO, VFIO_IOMMU_TYPE1, VFIO_IOMMU_IOMMUFD,
        };
        for (size_t k = 0; k < sizeof(modes) / sizeof(modes[0]); k++)
            if (!strcmp(value, vfio_iommu_mode_name(modes[k]))) {
                a->iommu = modes[k];
                a->iommu_given = true;
                return 0;
            }
        return arg_fail(err, errlen, "--vfio-iommu %s: use auto, type1 (the VFIO container) or "
                        "iommufd (/dev/iommu, Linux 6.6+)", value);
    }
    }
    return -EINVAL;
}

int vfio_args_finish(struct vfio_args *a, char *err, unsigned errlen)
{
    if (a->rom) {
        struct vfio_dev_arg *gpu = NULL;
        for (unsigned i = 0; i < a->nr; i++)
            if (a->dev[i].gpu)
                gpu = &a->dev[i];
        if (!gpu)
            return arg_fail(err, errlen, "--rom %s: there is no --gpu to give it to; add --gpu BDF "
                            "(or use --device vfio,host=BDF,rom=FILE)", a->rom);
        int r = set_rom(gpu, "--rom", a->rom, strlen(a->rom), err, errlen);
        if (r < 0)
            return r;
    }
    if (a->iommu_given && !a->nr)
        return arg_fail(err, errlen, "--vfio-iommu %s: no device to pass through; add --gpu BDF "
                        "or --device vfio,host=BDF", vfio_iommu_mode_name(a->iommu));
    if (a->bind && !a->nr)
        return arg_fail(err, errlen, "--bind: no device to bind; add --gpu BDF or --device vfio,host=BDF");
    return 0;
}
