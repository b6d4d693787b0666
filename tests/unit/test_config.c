/* vmm/config.c: every flag with good values, and bad values that must give
 * a message naming the flag and the value and saying what to do. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/arg.h"
#include "frontend/cli.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static struct config cfg;
static char err[512];

/* parse("--memory", "512M", NULL) */
static int parse(char *first, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;

    argv[argc++] = "minivmm";
    va_start(ap, first);
    for (char *a = first; a; a = va_arg(ap, char *)) {
        cr_assert_lt(argc, 63);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    memset(err, 0, sizeof(err));
    return config_parse(argc, argv, &cfg, err, sizeof(err));
}

/* The call fails with -EINVAL and the message contains every fragment. */
#define expect_error(call, ...)                                                   \
    do {                                                                          \
        int r_ = (call);                                                          \
        cr_assert_eq(r_, -EINVAL, "%s: returned %d (err '%s')", #call, r_, err); \
        const char *frags_[] = { __VA_ARGS__ };                                   \
        for (size_t i_ = 0; i_ < sizeof(frags_) / sizeof(frags_[0]); i_++)        \
            cr_assert(strstr(err, frags_[i_]), "%s: message '%s' lacks '%s'",     \
                      #call, err, frags_[i_]);                                    \
    } while (0)

/* A host CPU this process may run on, and one it may not (or -1). */
static int allowed_cpu(void)
{
    cpu_set_t s;
    cr_assert_eq(sched_getaffinity(0, sizeof(s), &s), 0);
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &s))
            return i;
    return -1;
}

static int forbidden_cpu(void)
{
    cpu_set_t s;
    cr_assert_eq(sched_getaffinity(0, sizeof(s), &s), 0);
    for (int i = CPU_SETSIZE - 1; i >= 0; i--)
        if (!CPU_ISSET(i, &s))
            return i;
    return -1;
}

Test(config, defaults)
{
    cr_assert_eq(parse(NULL), 0);
    cr_assert_eq(cfg.mem_size, 512 * MiB);
    cr_assert_eq(cfg.nr_cpus, 1);
    cr_assert_eq(cfg.sockets * cfg.cores * cfg.threads, 1);
    cr_assert(cfg.mlock);
    cr_assert_not(cfg.prealloc);
    cr_assert_eq(cfg.hugepage_size, 0);
    cr_assert_str_eq(cfg.serial, "stdio");
    cr_assert_str_eq(cfg.cmdline, "console=ttyS0");
    cr_assert_null(cfg.kernel);
    cr_assert_eq(cfg.cpu_pin[0], -1);
    cr_assert_eq(cfg.emulator_pin, -1);
    cr_assert_eq(cfg.io_pin, -1);
    cr_assert_not(cfg.stats);
    cr_assert_null(cfg.stats_json);
    cr_assert_eq(cfg.verbosity, 0);
}

Test(config, the_lab_command_line)
{
    int c = allowed_cpu();
    char pin[32];
    snprintf(pin, sizeof(pin), "0=%d,1=%d", c, c);
    cr_assert_eq(parse("--cpus", "2", "--cpu-pin", pin, "--memory", "512M", "--kernel", "vmlinuz",
                       "--initrd", "initrd.cpio.gz", "--cmdline", "console=ttyS0 quiet",
                       "--serial", "file:/tmp/x.log", "--stats", "--stats-json", "s.json", NULL), 0,
                 "%s", err);
    cr_assert_eq(cfg.nr_cpus, 2);
    cr_assert_eq(cfg.cores, 2);
    cr_assert_eq(cfg.sockets, 1);
    cr_assert_eq(cfg.threads, 1);
    cr_assert_eq(cfg.cpu_pin[0], c);
    cr_assert_eq(cfg.cpu_pin[1], c);
    cr_assert_eq(cfg.cpu_pin[2], -1);
    cr_assert_str_eq(cfg.kernel, "vmlinuz");
    cr_assert_str_eq(cfg.initrd, "initrd.cpio.gz");
    cr_assert_str_eq(cfg.cmdline, "console=ttyS0 quiet");
    cr_assert_str_eq(cfg.serial, "file:/tmp/x.log");
    cr_assert(cfg.stats);
    cr_assert_str_eq(cfg.stats_json, "s.json");
}

Test(config, equals_form_and_flags)
{
    cr_assert_eq(parse("--memory=8G", "--hugepages=1G", "--prealloc", "--no-mlock", "-v", "-v",
                       "--quiet", "--serial=none", NULL), 0, "%s", err);
    cr_assert_eq(cfg.mem_size, 8 * GiB);
    cr_assert_eq(cfg.hugepage_size, GiB);
    cr_assert(cfg.prealloc);
    cr_assert_not(cfg.mlock);
    cr_assert_eq(cfg.verbosity, 1);
    cr_assert_str_eq(cfg.serial, "none");
}

Test(config, help)
{
    cr_assert_eq(parse("--memory", "1G", "--help", NULL), 1);
    cr_assert_eq(parse("-h", NULL), 1);
    cr_assert(strstr(config_usage(), "--cpu-pin"));
    cr_assert(strstr(config_usage(), "--stats-json"));
}

/* vmm/arg.c's arg_parse_size, the size syntax of every flag. */
static int size(const char *s, uint64_t *v)
{
    return arg_parse_size(s, strlen(s), v);
}

Test(config, sizes)
{
    uint64_t v;
    cr_assert_eq(size("512M", &v), 0);
    cr_assert_eq(v, 512 * MiB);
    cr_assert_eq(size("8G", &v), 0);
    cr_assert_eq(v, 8 * GiB);
    cr_assert_eq(size("1T", &v), 0);
    cr_assert_eq(v, 1ULL << 40);
    cr_assert_eq(size("1t", &v), 0);
    cr_assert_eq(v, 1ULL << 40);
    cr_assert_eq(size("64K", &v), 0);
    cr_assert_eq(v, 64 << 10);
    cr_assert_eq(size("1024", &v), 0);
    cr_assert_eq(v, GiB, "a plain number counts MiB");
    cr_assert_eq(size("0", &v), 0);
    cr_assert_eq(v, 0);
    const char *bad[] = { "", "M", "12X", "-1G", "+1G", " 1G", "1G ", "1.5G", "1GB", "0x10M",
                          "99999999999999999999", "17179869184T", "18446744073709551615M" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(size(bad[i], &v), -EINVAL, "'%s' accepted", bad[i]);
    cr_assert_eq(size("16777215T", &v), 0, "largest T that fits in 64 bits");
}

Test(config, memory_bad)
{
    expect_error(parse("--memory", "12X", NULL), "--memory 12X", "not a size", "512M");
    expect_error(parse("--memory", "0", NULL), "--memory 0", "needs some memory");
    expect_error(parse("--memory", "0M", NULL), "--memory 0M");
    expect_error(parse("--memory", "1000K", NULL), "--memory 1000K", "whole number of MiB");
    expect_error(parse("--memory", "1M", NULL), "--memory 1M", "too small");
    expect_error(parse("--memory", "99999999999999999999", NULL), "--memory 99999999999999999999",
                 "not a size");
    expect_error(parse("--memory", "17T", NULL), "--memory 17T", "more than minivmm supports");
    expect_error(parse("--memory", NULL), "--memory", "needs a value", "--memory 512M");
    expect_error(parse("--memory=", NULL), "--memory ", "not a size");
    cr_assert_eq(parse("--memory", "2M", NULL), 0, "%s", err);
}

Test(config, hugepages_bad)
{
    expect_error(parse("--hugepages", "4M", NULL), "--hugepages 4M", "2M or 1G");
    expect_error(parse("--hugepages", "x", NULL), "--hugepages x", "2M or 1G");
    expect_error(parse("--hugepages", "0", NULL), "--hugepages 0");
    expect_error(parse("--memory", "1025M", "--hugepages", "2M", NULL), "--memory 1025M",
                 "--hugepages 2M", "multiple");
    expect_error(parse("--hugepages", "1G", "--memory", "1536M", NULL), "--memory 1536M",
                 "--hugepages 1G");
    cr_assert_eq(parse("--hugepages", "2048K", "--memory", "1026M", NULL), 0, "%s", err);
    cr_assert_eq(cfg.hugepage_size, 2 * MiB);
}

Test(config, cpus_bad)
{
    expect_error(parse("--cpus", "0", NULL), "--cpus 0", "at least 1");
    expect_error(parse("--cpus", "65", NULL), "--cpus 65", "at most 64");
    expect_error(parse("--cpus", "two", NULL), "--cpus two", "not a number");
    expect_error(parse("--cpus", "-1", NULL), "--cpus -1", "not a number");
    expect_error(parse("--cpus", "4294967297", NULL), "--cpus 4294967297", "not a number");
    expect_error(parse("--cpus", "99999999999999999999999", NULL), "not a number");
    expect_error(parse("--cpus", "", NULL), "--cpus ", "not a number");
    cr_assert_eq(parse("--cpus", "64", NULL), 0, "%s", err);
    cr_assert_eq(cfg.nr_cpus, 64);
}

Test(config, smp)
{
    cr_assert_eq(parse("--smp", "sockets=2,cores=2,threads=2", NULL), 0, "%s", err);
    cr_assert_eq(cfg.nr_cpus, 8);
    cr_assert_eq(cfg.sockets, 2);
    cr_assert_eq(cfg.cores, 2);
    cr_assert_eq(cfg.threads, 2);
    cr_assert_eq(parse("--smp", "threads=2", NULL), 0, "%s", err);
    cr_assert_eq(cfg.nr_cpus, 2, "missing keys are 1");
    cr_assert_eq(cfg.sockets, 1);
    cr_assert_eq(parse("--smp", "cores=4", "--cpus", "4", NULL), 0, "agreeing flags");
    cr_assert_eq(parse("--cpus", "4", "--smp", "cores=2,sockets=2", NULL), 0, "any order");
    cr_assert_eq(cfg.nr_cpus, 4);
}

Test(config, smp_bad)
{
    expect_error(parse("--cpus", "4", "--smp", "sockets=1,cores=2,threads=1", NULL), "--cpus 4",
                 "--smp sockets=1,cores=2,threads=1", "2 vCPUs", "only one");
    expect_error(parse("--smp", "cores=2", "--cpus", "3", NULL), "--cpus 3", "--smp cores=2");
    expect_error(parse("--smp", "dies=2", NULL), "--smp dies=2", "unknown key 'dies'");
    expect_error(parse("--smp", "cores=0", NULL), "--smp cores=0", "from 1 to 64");
    expect_error(parse("--smp", "cores=x", NULL), "--smp cores=x", "cores=x");
    expect_error(parse("--smp", "cores=2,cores=2", NULL), "cores given twice");
    expect_error(parse("--smp", "cores", NULL), "not KEY=N");
    expect_error(parse("--smp", "cores=2,", NULL), "trailing comma");
    expect_error(parse("--smp", "", NULL), "--smp", "empty");
    expect_error(parse("--smp", "sockets=8,cores=3,threads=3", NULL), "72 vCPUs", "at most 64");
    expect_error(parse("--smp", "cores=99999999999999999999", NULL), "from 1 to 64");
}

Test(config, cpu_pin_bad)
{
    int ok = allowed_cpu(), no = forbidden_cpu();
    char v[64];

    snprintf(v, sizeof(v), "2=%d", ok);
    expect_error(parse("--cpus", "2", "--cpu-pin", v, NULL), "vCPU 2 does not exist", "raise --cpus");
    snprintf(v, sizeof(v), "64=%d", ok);
    expect_error(parse("--cpu-pin", v, NULL), "vCPU 64 is out of range");
    snprintf(v, sizeof(v), "0=%d", CPU_SETSIZE);
    expect_error(parse("--cpu-pin", v, NULL), v, "past the largest CPU", "taskset");
    expect_error(parse("--cpu-pin", "0=99999999999", NULL), "past the largest CPU");
    if (no >= 0) {
        snprintf(v, sizeof(v), "0=%d", no);
        expect_error(parse("--cpu-pin", v, NULL), v, "does not exist or is not in", "taskset");
    }
    snprintf(v, sizeof(v), "0=%d,0=%d", ok, ok);
    expect_error(parse("--cpus", "2", "--cpu-pin", v, NULL), "vCPU 0 is pinned twice");
    expect_error(parse("--cpu-pin", "0", NULL), "--cpu-pin 0", "not VCPU=HOSTCPU");
    expect_error(parse("--cpu-pin", "a=b", NULL), "'a=b' is not VCPU=HOSTCPU");
    expect_error(parse("--cpu-pin", "0=", NULL), "not VCPU=HOSTCPU");
    expect_error(parse("--cpu-pin", "=1", NULL), "not VCPU=HOSTCPU");
    expect_error(parse("--cpu-pin", "0=-1", NULL), "not VCPU=HOSTCPU");
    snprintf(v, sizeof(v), "0=%d,", ok);
    expect_error(parse("--cpu-pin", v, NULL), "trailing comma");
    expect_error(parse("--cpu-pin", "", NULL), "empty");
}

Test(config, emulator_and_io_pin)
{
    int ok = allowed_cpu(), no = forbidden_cpu();
    char v[32];

    snprintf(v, sizeof(v), "%d", ok);
    cr_assert_eq(parse("--emulator-pin", v, "--io-pin", v, NULL), 0, "%s", err);
    cr_assert_eq(cfg.emulator_pin, ok);
    cr_assert_eq(cfg.io_pin, ok);
    expect_error(parse("--emulator-pin", "x", NULL), "--emulator-pin x", "not a host CPU number");
    expect_error(parse("--io-pin", "-3", NULL), "--io-pin -3", "not a host CPU number");
    snprintf(v, sizeof(v), "%d", CPU_SETSIZE + 5);
    expect_error(parse("--io-pin", v, NULL), "--io-pin", "past the largest CPU");
    if (no >= 0) {
        snprintf(v, sizeof(v), "%d", no);
        expect_error(parse("--emulator-pin", v, NULL), "--emulator-pin", "is not in");
    }
}

Test(config, boot_and_console_bad)
{
    expect_error(parse("--initrd", "initrd.img", NULL), "--initrd initrd.img", "add --kernel");
    expect_error(parse("--kernel", "", NULL), "--kernel", "empty file name");
    expect_error(parse("--stats-json", "", NULL), "--stats-json", "empty file name");
    expect_error(parse("--serial", "tty", NULL), "--serial tty", "stdio, file:PATH or none");
    expect_error(parse("--serial", "file:", NULL), "--serial file:", "no file name");
    expect_error(parse("--kernel", NULL), "--kernel", "needs a value");
}

Test(config, unknown_and_stray)
{
    expect_error(parse("--memroy", "1G", NULL), "--memroy", "unknown flag", "--help");
    expect_error(parse("--memroy=1G", NULL), "--memroy:", "unknown flag");
    expect_error(parse("-x", NULL), "-x", "unknown flag");
    expect_error(parse("vmlinuz", NULL), "vmlinuz", "unexpected argument");
    expect_error(parse("--", "x", NULL), "unexpected argument");
    expect_error(parse("--stats=yes", NULL), "--stats=yes", "takes no value");
}

Test(config, passthrough_flags_forwarded)
{
    cr_assert_eq(parse("--gpu", "01:00.0", "--hide-hypervisor", "--memory", "1G", NULL), 0, "%s", err);
    cr_assert_eq(cfg.vfio.nr, 1);
    cr_assert_str_eq(cfg.vfio.dev[0].host, "0000:01:00.0");
    cr_assert(cfg.vfio.hide_hypervisor);
    cr_assert_eq(cfg.mem_size, GiB, "own flags still parsed around them");
    cr_assert_eq(parse("--device=vfio,host=02:00.1", NULL), 0, "%s", err);
    cr_assert_eq(cfg.vfio.nr, 1);
    expect_error(parse("--gpu", "zz", NULL), "--gpu", "not a PCI address");
    expect_error(parse("--gpu", NULL), "--gpu", "needs a value");
    expect_error(parse("--bind", NULL), "--bind", "no device to bind");
    expect_error(parse("--hide-hypervisor=1", NULL), "--hide-hypervisor=1", "takes no value");
    cr_assert(strstr(config_usage(), "--gpu BDF"), "usage lists the passthrough flags");
    cr_assert(strstr(config_usage(), "exit status"));
    cr_assert_eq(parse(NULL), 0);
    cr_assert_eq(cfg.vfio.nr, 0, "reset between parses");
}

Test(config, virtio_flags_forwarded)
{
    cr_assert_eq(parse("--disk", "/var/vm/win.img,cache=none", "--disk=/dev/sdb,readonly",
                       "--net", "tap=tap0,mac=52:54:00:aa:bb:cc", "--memory", "1G", NULL), 0,
                 "%s", err);
    cr_assert_eq(cfg.disks.nr, 2);
    cr_assert_str_eq(cfg.disks.disk[0].path, "/var/vm/win.img");
    cr_assert_eq(cfg.disks.disk[0].cache, DISK_CACHE_NONE);
    cr_assert_str_eq(cfg.disks.disk[1].path, "/dev/sdb");
    cr_assert(cfg.disks.disk[1].readonly);
    cr_assert_eq(cfg.nics.nr, 1);
    cr_assert_str_eq(cfg.nics.nic[0].ifname, "tap0");
    cr_assert_eq(cfg.nics.nic[0].mac[5], 0xcc);
    cr_assert_eq(cfg.mem_size, GiB, "own flags still parsed around them");
    expect_error(parse("--disk", NULL), "--disk", "needs a value");
    expect_error(parse("--disk", "a.img,cache=sometimes", NULL), "--disk", "cache=sometimes");
    expect_error(parse("--net", "tap=", NULL), "--net", "tap=");
    cr_assert(strstr(config_usage(), "--disk FILE"), "usage lists --disk");
    cr_assert(strstr(config_usage(), "--net tap=NAME"), "usage lists --net");
    cr_assert(strstr(config_usage(), "exit status"), "usage not cut short");
    cr_assert_eq(parse(NULL), 0);
    cr_assert_eq(cfg.disks.nr, 0, "reset between parses");
    cr_assert_eq(cfg.nics.nr, 0, "reset between parses");
}

Test(config, vm_name_keys_the_default_vars)
{
    char name[96], name2[96], dir[] = "/tmp/minivmm-name-XXXXXX", path[256], path2[256];

    cr_assert_eq(parse(NULL), 0, "%s", err);
    cr_assert_eq(config_vm_name(&cfg, name, sizeof(name)), 0);
    cr_assert_str_eq(name, "default", "no --name, no --disk");
    cr_assert_eq(parse("--name", "win11", "--disk", "/nonexistent/a.img", NULL), 0, "%s", err);
    cr_assert_eq(config_vm_name(&cfg, name, sizeof(name)), 0);
    cr_assert_str_eq(name, "win11", "--name wins");

    /* Derived from the first disk: its stem plus a hash of the absolute path. */
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/win.img", dir);
    cr_assert_eq(parse("--disk", path, NULL), 0, "%s", err);
    cr_assert_eq(config_vm_name(&cfg, name, sizeof(name)), 0);
    cr_assert_eq(strncmp(name, "win-", 4), 0, "got '%s'", name);
    cr_assert_eq(strlen(name), 12, "stem, '-', 8 hex digits: '%s'", name);
    mkdir(strcat(strcpy(path2, dir), "/other"), 0700);
    strcat(path2, "/win.img");
    cr_assert_eq(parse("--disk", path2, NULL), 0, "%s", err);
    cr_assert_eq(config_vm_name(&cfg, name2, sizeof(name2)), 0);
    cr_assert_str_neq(name, name2, "two win.img in different folders are two VMs");
    cr_assert_eq(parse("--disk", path, "--disk", path2, NULL), 0, "%s", err);
    cr_assert_eq(config_vm_name(&cfg, name2, sizeof(name2)), 0);
    cr_assert_str_eq(name, name2, "the first disk names the VM, stable across runs");
    cr_assert_eq(parse("--disk", "/tmp/we ird;name.raw", NULL), 0, "%s", err);
    cr_assert_eq(config_vm_name(&cfg, name, sizeof(name)), 0);
    cr_assert_eq(strncmp(name, "we_ird_name-", 12), 0, "only safe characters: '%s'", name);
    cr_assert_eq(config_vm_name(&cfg, name, 8), -ENAMETOOLONG);
    rmdir(strcat(strcpy(path2, dir), "/other"));
    rmdir(dir);

    expect_error(parse("--name", "", NULL), "--name ''", "letters, digits");
    expect_error(parse("--name", "../etc", NULL), "--name '../etc'", "e.g. --name win11");
    expect_error(parse("--name", "a/b", NULL), "--name 'a/b'");
    cr_assert(strstr(config_usage(), "--name NAME"));
}

Test(config, firmware_or_direct_boot)
{
    cr_assert_eq(parse(NULL), 0, "%s", err);
    cr_assert(cfg.firmware_boot, "no --kernel: OVMF boots");
    cr_assert_null(cfg.firmware);
    cr_assert_not(cfg.no_reboot);
    cr_assert_eq(parse("--kernel", "bzImage", NULL), 0, "%s", err);
    cr_assert_not(cfg.firmware_boot, "--kernel alone: direct boot");
    cr_assert_eq(parse("--kernel", "bzImage", "--firmware", "CODE.fd", "--vars", "v.fd",
                       "--no-reboot", NULL), 0, "%s", err);
    cr_assert(cfg.firmware_boot, "--kernel with --firmware: OVMF boots the kernel");
    cr_assert_str_eq(cfg.firmware, "CODE.fd");
    cr_assert_str_eq(cfg.vars, "v.fd");
    cr_assert(cfg.no_reboot);
    expect_error(parse("--kernel", "bzImage", "--vars", "v.fd", NULL), "--vars v.fd", "--firmware");
    expect_error(parse("--firmware", "", NULL), "--firmware", "empty file name");
    expect_error(parse("--vars", NULL), "--vars", "needs a value");
}

/* --pci-mmio64: the 64-bit PCI window, 32G unless told; a power of two
 * from 1G to 1T, each refusal naming the flag and what to give. */
Test(config, pci_mmio64_default_and_values)
{
    cr_assert_eq(parse("--kernel", "vmlinuz", NULL), 0, "%s", err);
    cr_assert_eq(cfg.pci_mmio64_size, 32 * GiB);
    cr_assert_eq(parse("--pci-mmio64", "64G", "--kernel", "vmlinuz", NULL), 0, "%s", err);
    cr_assert_eq(cfg.pci_mmio64_size, 64 * GiB);
    cr_assert_eq(parse("--pci-mmio64=1T", "--kernel", "vmlinuz", NULL), 0, "%s", err);
    cr_assert_eq(cfg.pci_mmio64_size, 1024 * GiB);
    cr_assert_eq(parse("--pci-mmio64", "1G", "--kernel", "vmlinuz", NULL), 0, "%s", err);
    cr_assert_eq(cfg.pci_mmio64_size, GiB);
}

Test(config, pci_mmio64_refusals)
{
    expect_error(parse("--pci-mmio64", "48G", NULL), "--pci-mmio64 48G", "power of two");
    expect_error(parse("--pci-mmio64", "512M", NULL), "--pci-mmio64 512M", "from 1G to 1T");
    expect_error(parse("--pci-mmio64", "2T", NULL), "--pci-mmio64 2T", "from 1G to 1T");
    expect_error(parse("--pci-mmio64", "lots", NULL), "--pci-mmio64 lots", "not a size");
    expect_error(parse("--pci-mmio64", NULL), "--pci-mmio64", "needs a value", "64G");
}
