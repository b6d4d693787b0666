/* VFIO flags (vfio/vfio_args.c): --gpu, --device vfio,..., --rom,
 * --hide-hypervisor, --bind, --vfio-iommu, driven the way vmm/config.c's loop does:
 * split "--flag=value", ask vfio_args_flag, apply, finish. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "vfio/vfio_args.h"

static char err[512];

/* Parse argv (without argv[0]) as config.c would; 0 or the first error. */
static int parse(struct vfio_args *a, int argc, const char **argv)
{
    memset(a, 0, sizeof(*a));
    err[0] = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '=');
        size_t namelen = eq ? (size_t)(eq - arg) : strlen(arg);
        bool takes;
        cr_assert(vfio_args_flag(arg, namelen, &takes), "%s is a VFIO flag", arg);
        const char *val = NULL;
        if (takes)
            val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        int r = vfio_args_apply(a, arg, namelen, val, err, sizeof(err));
        if (r < 0)
            return r;
    }
    return vfio_args_finish(a, err, sizeof(err));
}

#define PARSE(a, ...) parse(a, sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *), \
                            (const char *[]){ __VA_ARGS__ })

Test(vfio_args, not_our_flags)
{
    bool t;
    cr_assert_not(vfio_args_flag("--memory", 8, &t));
    cr_assert_not(vfio_args_flag("--gpux", 6, &t));
    cr_assert_not(vfio_args_flag("--gp", 4, &t));
    cr_assert(vfio_args_flag("--gpu=01:00.0", 5, &t));
    cr_assert(t);
    cr_assert(vfio_args_flag("--bind", 6, &t));
    cr_assert_not(t);
}

Test(vfio_args, gpu_short_bdf_normalized)
{
    struct vfio_args a;
    cr_assert_eq(PARSE(&a, "--gpu", "01:00.0"), 0, "%s", err);
    cr_assert_eq(a.nr, 1);
    cr_assert_str_eq(a.dev[0].host, "0000:01:00.0");
    cr_assert(a.dev[0].gpu);
    cr_assert_str_eq(a.dev[0].rom, "");
}

Test(vfio_args, gpu_with_equals_and_rom)
{
    struct vfio_args a;
    cr_assert_eq(PARSE(&a, "--rom", "/tmp/vbios.rom", "--gpu=0000:0A:00.0", "--hide-hypervisor"),
                 0, "%s", err);
    cr_assert_str_eq(a.dev[0].host, "0000:0a:00.0", "lower case");
    cr_assert_str_eq(a.dev[0].rom, "/tmp/vbios.rom", "--rom goes to the --gpu, in any order");
    cr_assert(a.hide_hypervisor);
    cr_assert_not(a.bind);
}

Test(vfio_args, devices_repeatable)
{
    struct vfio_args a;
    cr_assert_eq(PARSE(&a, "--device", "vfio,host=00:04.0", "--device",
                       "vfio,rom=/roms/e1000e.rom,host=0000:00:05.0", "--device",
                       "vfio,host=00:06.0,rombar=off", "--bind"), 0, "%s", err);
    cr_assert_eq(a.nr, 3);
    cr_assert_str_eq(a.dev[0].host, "0000:00:04.0");
    cr_assert_not(a.dev[0].gpu);
    cr_assert_str_eq(a.dev[1].rom, "/roms/e1000e.rom", "rom= before host= works");
    cr_assert(a.dev[2].no_rom);
    cr_assert(a.bind);
}

Test(vfio_args, bad_bdfs)
{
    struct vfio_args a;
    const char *bad[] = { "1:0.0", "01:00", "01:00.8", "01:20.0", "zz:00.0", "0000:01:00.0x",
                          "", "00000:01:00.0", "01:00.0,", "/etc/passwd" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(PARSE(&a, "--gpu", bad[i]), -EINVAL, "--gpu '%s' accepted", bad[i]);
        cr_assert(strstr(err, "PCI address"), "message for '%s': %s", bad[i], err);
    }
}

Test(vfio_args, device_syntax_errors)
{
    struct vfio_args a;
    cr_assert_eq(PARSE(&a, "--device", "virtio-net"), -EINVAL);
    cr_assert(strstr(err, "unknown device type"), "%s", err);
    cr_assert_eq(PARSE(&a, "--device", "vfiox,host=01:00.0"), -EINVAL);
    cr_assert_eq(PARSE(&a, "--device", "vfio"), -EINVAL);
    cr_assert(strstr(err, "host=BDF"), "%s", err);
    cr_assert_eq(PARSE(&a, "--device", "vfio,host=01:00.0,speed=fast"), -EINVAL);
    cr_assert(strstr(err, "unknown key 'speed'"), "%s", err);
    cr_assert_eq(PARSE(&a, "--device", "vfio,host=01:00.0,host=02:00.0"), -EINVAL);
    cr_assert(strstr(err, "twice"), "%s", err);
    cr_assert_eq(PARSE(&a, "--device", "vfio,host=01:00.0,"), -EINVAL);
    cr_assert_eq(PARSE(&a, "--device", "vfio,host"), -EINVAL);
    cr_assert_eq(PARSE(&a, "--device", "vfio,=01:00.0"), -EINVAL);
    cr_assert_eq(PARSE(&a, "--device", "vfio,host=01:00.0,rombar=maybe"), -EINVAL);
    cr_assert_eq(PARSE(&a, "--device", "vfio,host=01:00.0,rom="), -EINVAL);
    cr_assert_eq(PARSE(&a, "--device", "vfio,host=01:00.0,rom=x.rom,rombar=off"), -EINVAL);
    cr_assert(strstr(err, "contradict"), "%s", err);
}

Test(vfio_args, duplicates_refused)
{
    struct vfio_args a;
    cr_assert_eq(PARSE(&a, "--gpu", "01:00.0", "--device", "vfio,host=0000:01:00.0"), -EINVAL);
    cr_assert(strstr(err, "already"), "%s", err);
    cr_assert_eq(PARSE(&a, "--gpu", "01:00.0", "--gpu", "02:00.0"), -EINVAL);
    cr_assert(strstr(err, "--gpu was given before"), "%s", err);
    cr_assert_eq(PARSE(&a, "--rom", "a.rom", "--rom", "b.rom", "--gpu", "01:00.0"), -EINVAL);
}

Test(vfio_args, rom_without_gpu)
{
    struct vfio_args a;
    cr_assert_eq(PARSE(&a, "--rom", "a.rom", "--device", "vfio,host=01:00.0"), -EINVAL);
    cr_assert(strstr(err, "no --gpu"), "%s", err);
    cr_assert_eq(PARSE(&a, "--rom", "", "--gpu", "01:00.0"), -EINVAL);
}

Test(vfio_args, bind_needs_a_device)
{
    struct vfio_args a;
    cr_assert_eq(PARSE(&a, "--bind"), -EINVAL);
    cr_assert_eq(PARSE(&a, "--hide-hypervisor"), 0, "harmless alone");
}

Test(vfio_args, too_many_devices)
{
    struct vfio_args a;
    memset(&a, 0, sizeof(a));
    char v[VFIO_ARGS_MAX_DEVICES + 1][40];
    for (int i = 0; i <= VFIO_ARGS_MAX_DEVICES; i++) {
        snprintf(v[i], sizeof(v[i]), "vfio,host=%02x:00.0", i + 1);
        int r = vfio_args_apply(&a, "--device", 8, v[i], err, sizeof(err));
        if (i < VFIO_ARGS_MAX_DEVICES)
            cr_assert_eq(r, 0, "%s", err);
        else
            cr_assert_eq(r, -EINVAL);
    }
    cr_assert_eq(a.nr, VFIO_ARGS_MAX_DEVICES);
}

Test(vfio_args, long_rom_path_refused)
{
    struct vfio_args a;
    static char path[VFIO_ROM_PATH_MAX + 10];
    memset(path, 'a', sizeof(path) - 1);
    path[sizeof(path) - 1] = 0;
    cr_assert_eq(PARSE(&a, "--rom", path, "--gpu", "01:00.0"), -EINVAL);
    cr_assert(strstr(err, "longer"), "%s", err);
}

Test(vfio_args, usage_names_every_flag)
{
    const char *names[] = { "--gpu", "--device vfio", "--rom", "--hide-hypervisor", "--bind" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        cr_assert(strstr(vfio_args_usage, names[i]), "%s missing from the usage", names[i]);
}

Test(vfio_args, vfio_iommu_modes)
{
    struct vfio_args a;
    cr_assert_eq(PARSE(&a, "--gpu", "01:00.0"), 0, "%s", err);
    cr_assert_eq(a.iommu, VFIO_IOMMU_AUTO, "auto when not given");
    cr_assert_eq(PARSE(&a, "--gpu", "01:00.0", "--vfio-iommu", "iommufd"), 0, "%s", err);
    cr_assert_eq(a.iommu, VFIO_IOMMU_IOMMUFD);
    cr_assert_eq(PARSE(&a, "--vfio-iommu=type1", "--device", "vfio,host=02:00.0"), 0, "%s", err);
    cr_assert_eq(a.iommu, VFIO_IOMMU_TYPE1);
    cr_assert_eq(PARSE(&a, "--gpu", "01:00.0", "--vfio-iommu", "auto"), 0, "%s", err);
    cr_assert_eq(a.iommu, VFIO_IOMMU_AUTO);
    cr_assert_eq(PARSE(&a, "--gpu", "01:00.0", "--vfio-iommu", "iommu"), -EINVAL);
    cr_assert(strstr(err, "--vfio-iommu iommu: use auto, type1") && strstr(err, "iommufd"), "%s", err);
    cr_assert_eq(PARSE(&a, "--vfio-iommu", "iommufd"), -EINVAL, "without a device");
    cr_assert(strstr(err, "no device to pass through"), "%s", err);
}
