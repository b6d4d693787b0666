/* devices/block/disk_args.c: the controller a disk goes on (if=), --cdrom,
 * bootindex and --boot, and the boot order disk_args_finish makes of them;
 * through the whole front end where the flags meet. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/block/disk_args.h"
#include "frontend/cli.h"

static char err[512];

static int apply(struct disk_args *a, const char *flag, const char *value)
{
    err[0] = '\0';
    return disk_args_apply(a, flag, strlen(flag), value, err, sizeof(err));
}

Test(disk_args, interface_and_bootindex)
{
    struct disk_arg d;
    cr_assert_eq(disk_arg_parse("w.img", &d, err, sizeof(err)), 0);
    cr_assert_eq(d.iface, DISK_IF_VIRTIO, "virtio stays the default");
    cr_assert_eq(d.bootindex, DISK_NO_BOOTINDEX);
    cr_assert_not(d.cdrom);
    cr_assert_eq(disk_arg_parse("w.img,if=sata,bootindex=3", &d, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(d.iface, DISK_IF_SATA);
    cr_assert_eq(d.bootindex, 3);
    cr_assert_eq(disk_arg_parse("w.img,if=nvme", &d, err, sizeof(err)), 0);
    cr_assert_eq(d.iface, DISK_IF_NVME);
    cr_assert_eq(disk_arg_parse("w.img,if=ide", &d, err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "if=ide"), "%s", err);
    cr_assert_not_null(strstr(err, "if=sata"), "says what there is: %s", err);
    cr_assert_eq(disk_arg_parse("w.img,bootindex=1000", &d, err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "bootindex=1000"), "%s", err);
}

Test(disk_args, cdrom)
{
    struct disk_args a = { .nr = 0 };
    cr_assert_eq(apply(&a, "--cdrom", "win11.iso"), 0, "%s", err);
    cr_assert_eq(a.nr, 1);
    cr_assert_str_eq(a.disk[0].path, "win11.iso");
    cr_assert(a.disk[0].cdrom);
    cr_assert(a.disk[0].readonly, "a CD-ROM is read-only");
    cr_assert_eq(a.disk[0].iface, DISK_IF_SATA, "ATAPI on the AHCI");
    cr_assert_eq(apply(&a, "--cdrom", "virtio-win.iso,bootindex=7"), 0, "%s", err);
    cr_assert_eq(a.disk[1].bootindex, 7);
    const char *bad[][2] = {
        { "", "needs an ISO image" },
        { "x.iso,readonly", "unknown option 'readonly'" },
        { "x.iso,bootindex=x", "bootindex=x" },
        { "win11.iso", "already" },
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(apply(&a, "--cdrom", bad[i][0]), -EINVAL, "%s", bad[i][0]);
        cr_assert_not_null(strstr(err, bad[i][1]), "'%s' -> '%s'", bad[i][0], err);
        cr_assert_not_null(strstr(err, "--cdrom"), "names the flag: %s", err);
    }
}

Test(disk_args, boot_order)
{
    struct disk_args a = { .nr = 0 };
    cr_assert_eq(apply(&a, "--disk", "c.img"), 0);
    cr_assert_eq(apply(&a, "--cdrom", "setup.iso"), 0);
    cr_assert_eq(apply(&a, "--disk", "d.img"), 0);
    cr_assert_eq(apply(&a, "--cdrom", "drivers.iso"), 0);
    cr_assert_eq(disk_args_finish(&a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(a.disk[0].boot_index, 0, "disks first without --boot cdrom");
    cr_assert_eq(a.disk[2].boot_index, 1);
    cr_assert_eq(a.disk[1].boot_index, 2);
    cr_assert_eq(a.disk[3].boot_index, 3);
    a.boot_cdrom = true;
    cr_assert_eq(disk_args_finish(&a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(a.disk[1].boot_index, 0, "--boot cdrom: the CD-ROMs first");
    cr_assert_eq(a.disk[3].boot_index, 1);
    cr_assert_eq(a.disk[0].boot_index, 2);
    cr_assert_eq(a.disk[2].boot_index, 3);

    /* every controller in the one boot order */
    struct disk_args nv = { .nr = 0 };
    cr_assert_eq(apply(&nv, "--disk", "n.img,if=nvme"), 0);
    cr_assert_eq(apply(&nv, "--disk", "s.img,if=sata"), 0);
    cr_assert_eq(disk_args_finish(&nv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(nv.disk[0].boot_index, 0);
    cr_assert_eq(nv.disk[1].boot_index, 1);

    /* virtio disks only: command-line order */
    struct disk_args v = { .nr = 0 };
    cr_assert_eq(apply(&v, "--disk", "a.img"), 0);
    cr_assert_eq(apply(&v, "--disk", "b.img"), 0);
    cr_assert_eq(apply(&v, "--disk", "c.img,bootindex=0"), 0);
    cr_assert_eq(disk_args_finish(&v, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(v.disk[2].boot_index, 0, "bootindex first");
    cr_assert_eq(v.disk[0].boot_index, 1);
    cr_assert_eq(v.disk[1].boot_index, 2);
    cr_assert_eq(apply(&v, "--disk", "e.img,bootindex=0"), 0);
    cr_assert_eq(disk_args_finish(&v, err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "bootindex=0"), "%s", err);
}

Test(disk_args, boot_flag)
{
    struct disk_args a = { .nr = 0 };
    cr_assert_eq(apply(&a, "--boot", "cdrom"), 0);
    cr_assert(a.boot_cdrom);
    cr_assert_eq(apply(&a, "--boot", "disk"), 0);
    cr_assert_not(a.boot_cdrom);
    cr_assert_eq(apply(&a, "--boot", "d"), -EINVAL);
    cr_assert_not_null(strstr(err, "--boot cdrom"), "%s", err);
}

/* Through the front end: the flags in any order, --help lists them. */
Test(disk_args, front_end)
{
    struct config cfg;
    char *argv[] = { "minivmm", "--disk", "b.img", "--disk", "a.img,bootindex=0", NULL };
    cr_assert_eq(config_parse(5, argv, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.disks.nr, 2);
    cr_assert_eq(cfg.disks.disk[1].boot_index, 0);
    cr_assert_eq(cfg.disks.disk[0].boot_index, 1);
    char *argv2[] = { "minivmm", "--cdrom", "x.iso", "--boot", "cdrom", NULL };
    cr_assert_eq(config_parse(5, argv2, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert(cfg.disks.disk[0].cdrom);
    cr_assert_eq(cfg.disks.disk[0].boot_index, 0);
    /* NVMe disks: taken, in the one boot order */
    char *argv3[] = { "minivmm", "--disk", "n.img,if=nvme", "--disk", "v.img,bootindex=0", NULL };
    cr_assert_eq(config_parse(5, argv3, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.disks.disk[0].iface, DISK_IF_NVME);
    cr_assert_eq(cfg.disks.disk[0].boot_index, 1);
    cr_assert_eq(cfg.disks.disk[1].boot_index, 0);
    cr_assert_not_null(strstr(config_usage(), "--cdrom FILE"));
    cr_assert_not_null(strstr(config_usage(), "--boot cdrom|disk"));
}
