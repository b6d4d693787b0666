/* Command line -> struct config (vmm/config.h): the front end (frontend/cli.h).
 * It is the layer above the devices: each device's own flags are parsed by
 * its *_args.c (devices/virtio/, vfio/), which this calls down into; the
 * core (vmm/) only reads the struct config that comes out.
 *
 * Every error names the flag and the value, says what is wrong and what to
 * do: "--memory 12X: not a size; use a number with a K, M, G or T suffix
 * (512M, 8G)". Flags take their value as the next argument or after '='
 * (--memory=512M). Cross-flag checks (--cpus against --smp, --cpu-pin
 * indices against the vCPU count, --memory against --hugepages) run after
 * all flags are read, so their order does not matter. */
#include "frontend/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/cpuid.h"
#include "vmm/arg.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TiB (1ULL << 40)
#define CONFIG_MIN_MEMORY (2 * MiB)   /* the first MiB is the legacy area */
#define CONFIG_MAX_MEMORY (16 * TiB)
#define CONFIG_MIN_PCI_MMIO64 (1ULL << 30)
#define CONFIG_MAX_PCI_MMIO64 (1ULL << 40)
#define CONFIG_MAX_APIC_ID 254        /* xAPIC IDs; 0xFF is the broadcast ID */

static const char config_usage_head[] =
    "usage: minivmm [flags]          run a VM\n"
    "       minivmm host ...         host set-up helpers (see minivmm host --help)\n"
    "\n"
    "memory:\n"
    "  --memory SIZE            guest RAM, e.g. 512M, 8G, 1T (plain number: MiB; default 512M)\n"
    "  --hugepages 2M|1G        back RAM with hugetlbfs pages of that size\n"
    "  --prealloc               fault all of RAM in at start-up\n"
    "  --no-mlock               do not lock RAM (default: locked, as VFIO and latency want)\n"
    "  --pci-mmio64 SIZE        the 64-bit PCI MMIO window, a power of two from 1G to 1T\n"
    "                           (default 32G); big GPU BARs need room: 2 x the BARs\n"
    "CPUs:\n"
    "  --cpus N                 N vCPUs (1-64; default 1), one socket of N cores\n"
    "  --smp sockets=S,cores=C,threads=T   the topology (missing keys are 1)\n"
    "  --cpu-pin V=H[,V=H...]   run vCPU V on host CPU H only (e.g. 0=2,1=3)\n"
    "  --emulator-pin H         run the main thread on host CPU H\n"
    "  --io-pin H               run device I/O threads on host CPU H\n"
    "boot:\n"
    "  --firmware FILE          UEFI firmware CODE image (default, and without --kernel:\n"
    "                           /usr/share/OVMF/OVMF_CODE_4M.fd); with --kernel, OVMF\n"
    "                           boots that kernel (fw_cfg)\n"
    "  --vars FILE              the VM's UEFI variable store (created from\n"
    "                           /usr/share/OVMF/OVMF_VARS_4M.fd when missing; default\n"
    "                           $XDG_STATE_HOME/minivmm/NAME.vars, NAME from --name)\n"
    "  --name NAME              the VM's name (default: the first --disk's file name\n"
    "                           and a hash of its path, else \"default\")\n"
    "  --no-reboot              a guest reset ends minivmm with status 3 (default: restart)\n"
    "  --kernel FILE            Linux bzImage (booted directly unless --firmware)\n"
    "  --initrd FILE            initramfs\n"
    "  --cmdline TEXT           kernel command line (default \"console=ttyS0\")\n"
    "console:\n"
    "  --serial stdio|file:PATH|none   where COM1 goes (default stdio)\n"
    "measurement:\n"
    "  --stats                  print exit counts and handling times at exit (stderr)\n"
    "  --stats-json FILE        write the same as JSON to FILE\n";

static const char config_usage_tail[] =
    "other:\n"
    "  -v, --verbose            more messages (repeatable)\n"
    "  -q, --quiet              errors and warnings only\n"
    "  -h, --help               this text\n"
    "\n"
    "exit status: 0 guest powered off; the debug-exit value the guest wrote (port 0x501);\n"
    "1 bad configuration or start-up failure; 2 fatal runtime error; 3 guest reset;\n"
    "128+N killed by signal N\n";

const char *config_usage(void)
{
    static char text[sizeof(config_usage_head) + sizeof(config_usage_tail) + 8192];

    if (!text[0])
        snprintf(text, sizeof(text), "%s%s%s%s%s%s", config_usage_head, vfio_args_usage,
                 disk_args_usage, virtio_net_args_usage, display_args_usage, config_usage_tail);
    return text;
}

/* Strict unsigned decimal: digits only, no sign, no spaces, no overflow. */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int parse_uint_max(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v;
    int e = parse_u64(s, strlen(s), &v);

    if (e)
        return e;
    if (v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

/* A host CPU for a pinning flag: a number below CPU_SETSIZE that is in this
 * process' affinity mask. flag/value name the whole flag in messages. */
static int check_host_cpu(const char *flag, const char *value, uint64_t cpu, char *err, unsigned errlen)
{
    cpu_set_t allowed;

    if (cpu >= CPU_SETSIZE)
        return arg_fail(err, errlen, "%s %s: host CPU %" PRIu64 " is past the largest CPU number "
                        "minivmm can pin to (%d); use a CPU listed by `taskset -cp $$`",
                        flag, value, cpu, CPU_SETSIZE - 1);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && !CPU_ISSET((int)cpu, &allowed))
        return arg_fail(err, errlen, "%s %s: host CPU %" PRIu64 " does not exist or is not in "
                        "minivmm's allowed CPUs; use a CPU listed by `taskset -cp $$`",
                        flag, value, cpu);
    return 0;
}

static int parse_host_cpu(const char *flag, const char *value, int *out, char *err, unsigned errlen)
{
    uint64_t cpu;
    int e = parse_uint_max(value, UINT32_MAX, &cpu);

    if (e)
        return arg_fail(err, errlen, "%s %s: not a host CPU number; give one like 2", flag, value);
    e = check_host_cpu(flag, value, cpu, err, errlen);
    if (e)
        return e;
    *out = (int)cpu;
    return 0;
}

/* --smp sockets=S,cores=C,threads=T */
static int parse_smp(const char *v, struct config *cfg, char *err, unsigned errlen)
{
    static const char *const keys[3] = { "sockets", "cores", "threads" };
    uint64_t val[3] = { 1, 1, 1 };
    bool seen[3] = { false, false, false };
    const char *p = v;

    if (!*v)
        return arg_fail(err, errlen, "--smp %s: empty; give e.g. --smp sockets=1,cores=2,threads=2", v);
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        int k;

        if (!eq)
            return arg_fail(err, errlen, "--smp %s: '%.*s' is not KEY=N; use sockets=S,cores=C,threads=T",
                            v, (int)len, p);
        for (k = 0; k < 3; k++)
            if (arg_key_is(p, (size_t)(eq - p), keys[k]))
                break;
        if (k == 3)
            return arg_fail(err, errlen, "--smp %s: unknown key '%.*s'; the keys are sockets, cores "
                            "and threads", v, (int)(eq - p), p);
        if (seen[k])
            return arg_fail(err, errlen, "--smp %s: %s given twice; give each key once", v, keys[k]);
        seen[k] = true;
        if (parse_u64(eq + 1, len - (size_t)(eq + 1 - p), &val[k]) || val[k] == 0 ||
            val[k] > CONFIG_MAX_CPUS)
            return arg_fail(err, errlen, "--smp %s: %s=%.*s is not a number from 1 to %d", v, keys[k],
                            (int)(len - (size_t)(eq + 1 - p)), eq + 1, CONFIG_MAX_CPUS);
        if (!comma)
            break;
        p = comma + 1;
        if (!*p)
            return arg_fail(err, errlen, "--smp %s: trailing comma; use sockets=S,cores=C,threads=T", v);
    }
    if (val[0] * val[1] * val[2] > CONFIG_MAX_CPUS)
        return arg_fail(err, errlen, "--smp %s: %" PRIu64 " vCPUs in all; at most %d are supported",
                        v, val[0] * val[1] * val[2], CONFIG_MAX_CPUS);
    cfg->sockets = (unsigned)val[0];
    cfg->cores = (unsigned)val[1];
    cfg->threads = (unsigned)val[2];
    return 0;
}

/* --cpu-pin V=H[,V=H...]: vCPU indices are checked against the vCPU count
 * later; host CPUs here. pinned[] records which vCPUs this and earlier
 * --cpu-pin flags named. */
static int parse_cpu_pin(const char *v, struct config *cfg, bool pinned[CONFIG_MAX_CPUS],
                         char *err, unsigned errlen)
{
    const char *p = v;

    if (!*v)
        return arg_fail(err, errlen, "--cpu-pin %s: empty; give VCPU=HOSTCPU pairs, e.g. 0=2,1=3", v);
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        uint64_t vcpu, host;

        if (!eq || parse_u64(p, (size_t)(eq - p), &vcpu) ||
            parse_u64(eq + 1, len - (size_t)(eq + 1 - p), &host))
            return arg_fail(err, errlen, "--cpu-pin %s: '%.*s' is not VCPU=HOSTCPU; give pairs of "
                            "numbers, e.g. 0=2,1=3", v, (int)len, p);
        if (vcpu >= CONFIG_MAX_CPUS)
            return arg_fail(err, errlen, "--cpu-pin %s: vCPU %" PRIu64 " is out of range; vCPUs are "
                            "numbered from 0 to --cpus minus 1", v, vcpu);
        if (pinned[vcpu])
            return arg_fail(err, errlen, "--cpu-pin %s: vCPU %" PRIu64 " is pinned twice; pin each "
                            "vCPU once", v, vcpu);
        int e = check_host_cpu("--cpu-pin", v, host, err, errlen);
        if (e)
            return e;
        pinned[vcpu] = true;
        cfg->cpu_pin[vcpu] = (int)host;
        if (!comma)
            return 0;
        p = comma + 1;
        if (!*p)
            return arg_fail(err, errlen, "--cpu-pin %s: trailing comma; give VCPU=HOSTCPU pairs", v);
    }
}

static int parse_serial(const char *v, struct config *cfg, char *err, unsigned errlen)
{
    if (!strcmp(v, "stdio") || !strcmp(v, "none")) {
        cfg->serial = v;
        return 0;
    }
    if (!strncmp(v, "file:", 5)) {
        if (!v[5])
            return arg_fail(err, errlen, "--serial %s: no file name; use file:PATH", v);
        cfg->serial = v;
        return 0;
    }
    return arg_fail(err, errlen, "--serial %s: unknown console; use stdio, file:PATH or none", v);
}

enum opt_id {
    OPT_MEMORY, OPT_HUGEPAGES, OPT_PREALLOC, OPT_NO_MLOCK, OPT_CPUS, OPT_SMP, OPT_CPU_PIN,
    OPT_EMULATOR_PIN, OPT_IO_PIN, OPT_KERNEL, OPT_INITRD, OPT_CMDLINE, OPT_SERIAL, OPT_STATS,
    OPT_STATS_JSON, OPT_VERBOSE, OPT_QUIET, OPT_HELP, OPT_FIRMWARE, OPT_VARS, OPT_NO_REBOOT,
    OPT_NAME, OPT_PCI_MMIO64,
};

struct opt {
    const char *name;
    const char *short_name;
    bool has_arg;
    enum opt_id id;
};

static const struct opt opts[] = {
    { "--memory", NULL, true, OPT_MEMORY },
    { "--hugepages", NULL, true, OPT_HUGEPAGES },
    { "--prealloc", NULL, false, OPT_PREALLOC },
    { "--no-mlock", NULL, false, OPT_NO_MLOCK },
    { "--pci-mmio64", NULL, true, OPT_PCI_MMIO64 },
    { "--cpus", NULL, true, OPT_CPUS },
    { "--smp", NULL, true, OPT_SMP },
    { "--cpu-pin", NULL, true, OPT_CPU_PIN },
    { "--emulator-pin", NULL, true, OPT_EMULATOR_PIN },
    { "--io-pin", NULL, true, OPT_IO_PIN },
    { "--firmware", NULL, true, OPT_FIRMWARE },
    { "--vars", NULL, true, OPT_VARS },
    { "--name", NULL, true, OPT_NAME },
    { "--no-reboot", NULL, false, OPT_NO_REBOOT },
    { "--kernel", NULL, true, OPT_KERNEL },
    { "--initrd", NULL, true, OPT_INITRD },
    { "--cmdline", NULL, true, OPT_CMDLINE },
    { "--serial", NULL, true, OPT_SERIAL },
    { "--stats", NULL, false, OPT_STATS },
    { "--stats-json", NULL, true, OPT_STATS_JSON },
    { "--verbose", "-v", false, OPT_VERBOSE },
    { "--quiet", "-q", false, OPT_QUIET },
    { "--help", "-h", false, OPT_HELP },
};

static const char *value_example(enum opt_id id)
{
    switch (id) {
    case OPT_MEMORY: return "512M";
    case OPT_HUGEPAGES: return "2M";
    case OPT_PCI_MMIO64: return "64G";
    case OPT_CPUS: return "2";
    case OPT_SMP: return "sockets=1,cores=2,threads=1";
    case OPT_CPU_PIN: return "0=2,1=3";
    case OPT_EMULATOR_PIN: case OPT_IO_PIN: return "0";
    case OPT_KERNEL: return "bzImage";
    case OPT_FIRMWARE: return "/usr/share/OVMF/OVMF_CODE_4M.fd";
    case OPT_VARS: return "vm.vars";
    case OPT_NAME: return "win11";
    case OPT_INITRD: return "initrd.img";
    case OPT_CMDLINE: return "\"console=ttyS0\"";
    case OPT_SERIAL: return "stdio";
    case OPT_STATS_JSON: return "stats.json";
    default: return "VALUE";
    }
}

static void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->mem_size = 512 * MiB;
    cfg->pci_mmio64_size = CONFIG_DEFAULT_PCI_MMIO64;
    cfg->mlock = true;
    cfg->nr_cpus = 1;
    cfg->sockets = cfg->cores = cfg->threads = 1;
    for (int i = 0; i < CONFIG_MAX_CPUS; i++)
        cfg->cpu_pin[i] = -1;
    cfg->emulator_pin = -1;
    cfg->io_pin = -1;
    cfg->cmdline = "console=ttyS0";
    cfg->serial = "stdio";
}

int config_parse(int argc, char **argv, struct config *cfg, char *err, unsigned errlen)
{
    bool pinned[CONFIG_MAX_CPUS] = { false };
    bool have_cpus = false, have_smp = false;
    const char *mem_arg = "512M", *hp_arg = NULL, *smp_arg = NULL, *cpus_arg = NULL;
    uint64_t v;
    int e;

    config_defaults(cfg);
    if (err && errlen)
        err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL, *eq;
        size_t namelen;
        const struct opt *o = NULL;

        if (arg[0] != '-' || !strcmp(arg, "-") || !strcmp(arg, "--"))
            return arg_fail(err, errlen, "%s: unexpected argument; flags start with -- "
                            "(see minivmm --help)", arg);
        eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
        namelen = eq ? (size_t)(eq - arg) : strlen(arg);
        for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
            if (arg_key_is(arg, namelen, opts[k].name) ||
                (opts[k].short_name && !strcmp(arg, opts[k].short_name))) {
                o = &opts[k];
                break;
            }
        }
        if (!o) {
            bool takes_value = false;
            /* Passthrough flags belong to vfio/vfio_args.c, --disk and
             * --net to the virtio devices' parsers, --display to devices/display/. */
            enum { FWD_NONE, FWD_VFIO, FWD_DISK, FWD_NET, FWD_DISPLAY } fwd = FWD_NONE;
            if (arg[1] == '-' && vfio_args_flag(arg, namelen, &takes_value))
                fwd = FWD_VFIO;
            else if (arg[1] == '-' && disk_args_flag(arg, namelen, &takes_value))
                fwd = FWD_DISK;
            else if (arg[1] == '-' && virtio_net_args_flag(arg, namelen, &takes_value))
                fwd = FWD_NET;
            else if (arg[1] == '-' && display_args_flag(arg, namelen, &takes_value))
                fwd = FWD_DISPLAY;
            if (fwd != FWD_NONE) {
                if (takes_value && !eq) {
                    if (i + 1 >= argc)
                        return arg_fail(err, errlen, "%.*s: needs a value; see minivmm --help",
                                        (int)namelen, arg);
                    val = argv[++i];
                } else if (takes_value) {
                    val = eq + 1;
                } else if (eq) {
                    return arg_fail(err, errlen, "%s: takes no value; give just %.*s", arg,
                                    (int)namelen, arg);
                }
                if (fwd == FWD_VFIO)
                    e = vfio_args_apply(&cfg->vfio, arg, namelen, val, err, errlen);
                else if (fwd == FWD_DISK)
                    e = disk_args_apply(&cfg->disks, arg, namelen, val, err, errlen);
                else if (fwd == FWD_NET)
                    e = virtio_net_args_apply(&cfg->nics, arg, namelen, val, err, errlen);
                else
                    e = display_args_apply(&cfg->display, arg, namelen, val, err, errlen);
                if (e)
                    return e;
                continue;
            }
            return arg_fail(err, errlen, "%.*s: unknown flag; see minivmm --help for the flags",
                            (int)namelen, arg);
        }
        if (o->has_arg) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return arg_fail(err, errlen, "%s: needs a value, e.g. %s %s", o->name, o->name,
                                value_example(o->id));
        } else if (eq) {
            return arg_fail(err, errlen, "%s: takes no value; give just %s", arg, o->name);
        }

        switch (o->id) {
        case OPT_MEMORY:
            if (arg_parse_size(val, strlen(val), &v))
                return arg_fail(err, errlen, "--memory %s: not a size, or too large a number; use a "
                                "number with a K, M, G or T suffix (512M, 8G)", val);
            if (v == 0)
                return arg_fail(err, errlen, "--memory %s: the guest needs some memory; give e.g. 512M", val);
            if (v % MiB)
                return arg_fail(err, errlen, "--memory %s: not a whole number of MiB; round it to M "
                                "(e.g. 512M)", val);
            if (v < CONFIG_MIN_MEMORY)
                return arg_fail(err, errlen, "--memory %s: too small; give at least 2M", val);
            if (v > CONFIG_MAX_MEMORY)
                return arg_fail(err, errlen, "--memory %s: more than minivmm supports (16T); give less",
                                val);
            cfg->mem_size = v;
            mem_arg = val;
            break;
        case OPT_HUGEPAGES:
            if (arg_parse_size(val, strlen(val), &v) || (v != 2 * MiB && v != GiB))
                return arg_fail(err, errlen, "--hugepages %s: not a hugepage size; use 2M or 1G", val);
            cfg->hugepage_size = v;
            hp_arg = val;
            break;
        case OPT_PCI_MMIO64:
            /* A power of two: OVMF aligns its aperture to the size rounded
             * down to one (PlatformInitLib's MemDetect), and a BAR of that
             * size is what must fit. */
            if (arg_parse_size(val, strlen(val), &v))
                return arg_fail(err, errlen, "--pci-mmio64 %s: not a size; use a power of two "
                                "with a G or T suffix (32G, 64G, 1T)", val);
            if (v < CONFIG_MIN_PCI_MMIO64 || v > CONFIG_MAX_PCI_MMIO64 || (v & (v - 1)))
                return arg_fail(err, errlen, "--pci-mmio64 %s: the 64-bit PCI window must be a "
                                "power of two from 1G to 1T (e.g. 64G for a 16 GiB BAR and room "
                                "for the rest)", val);
            cfg->pci_mmio64_size = v;
            break;
        case OPT_PREALLOC:
            cfg->prealloc = true;
            break;
        case OPT_NO_MLOCK:
            cfg->mlock = false;
            break;
        case OPT_CPUS:
            e = parse_uint_max(val, UINT32_MAX, &v);
            if (e)
                return arg_fail(err, errlen, "--cpus %s: not a number of vCPUs; give e.g. 2", val);
            if (v == 0)
                return arg_fail(err, errlen, "--cpus %s: at least 1 vCPU is needed", val);
            if (v > CONFIG_MAX_CPUS)
                return arg_fail(err, errlen, "--cpus %s: at most %d vCPUs are supported", val,
                                CONFIG_MAX_CPUS);
            cfg->nr_cpus = (unsigned)v;
            have_cpus = true;
            cpus_arg = val;
            break;
        case OPT_SMP:
            e = parse_smp(val, cfg, err, errlen);
            if (e)
                return e;
            have_smp = true;
            smp_arg = val;
            break;
        case OPT_CPU_PIN:
            e = parse_cpu_pin(val, cfg, pinned, err, errlen);
            if (e)
                return e;
            break;
        case OPT_EMULATOR_PIN:
            e = parse_host_cpu("--emulator-pin", val, &cfg->emulator_pin, err, errlen);
            if (e)
                return e;
            break;
        case OPT_IO_PIN:
            e = parse_host_cpu("--io-pin", val, &cfg->io_pin, err, errlen);
            if (e)
                return e;
            break;
        case OPT_KERNEL:
        case OPT_INITRD:
        case OPT_STATS_JSON:
        case OPT_FIRMWARE:
        case OPT_VARS:
            if (!*val)
                return arg_fail(err, errlen, "%s '': empty file name; give a path", o->name);
            if (o->id == OPT_FIRMWARE)
                cfg->firmware = val;
            else if (o->id == OPT_VARS)
                cfg->vars = val;
            else if (o->id == OPT_KERNEL)
                cfg->kernel = val;
            else if (o->id == OPT_INITRD)
                cfg->initrd = val;
            else
                cfg->stats_json = val;
            break;
        case OPT_CMDLINE:
            cfg->cmdline = val;
            break;
        case OPT_NAME: {
            size_t n = strlen(val);
            if (n == 0 || n > CONFIG_NAME_MAX || val[0] == '.' ||
                strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
                return arg_fail(err, errlen, "--name '%s': a VM name is 1 to %d letters, digits, '.', "
                                "'_' or '-' (not starting with '.'), e.g. --name win11", val,
                                CONFIG_NAME_MAX);
            cfg->name = val;
            break;
        }
        case OPT_NO_REBOOT:
            cfg->no_reboot = true;
            break;
        case OPT_SERIAL:
            e = parse_serial(val, cfg, err, errlen);
            if (e)
                return e;
            break;
        case OPT_STATS:
            cfg->stats = true;
            break;
        case OPT_VERBOSE:
            cfg->verbosity++;
            break;
        case OPT_QUIET:
            cfg->verbosity--;
            break;
        case OPT_HELP:
            return 1;
        }
    }

    /* Cross-flag checks. */
    if (have_smp) {
        unsigned n = cfg->sockets * cfg->cores * cfg->threads;
        if (have_cpus && n != cfg->nr_cpus)
            return arg_fail(err, errlen, "--cpus %s: --smp %s makes %u vCPUs; give only one of the "
                            "two, or make them agree", cpus_arg, smp_arg, n);
        cfg->nr_cpus = n;
    } else {
        cfg->sockets = 1;
        cfg->cores = cfg->nr_cpus;
        cfg->threads = 1;
    }
    for (unsigned i = cfg->nr_cpus; i < CONFIG_MAX_CPUS; i++)
        if (pinned[i])
            return arg_fail(err, errlen, "--cpu-pin %u=%d: vCPU %u does not exist (%u vCPU%s: 0 to "
                            "%u); pin only existing vCPUs or raise --cpus", i, cfg->cpu_pin[i], i,
                            cfg->nr_cpus, cfg->nr_cpus == 1 ? "" : "s", cfg->nr_cpus - 1);
    {
        struct cpu_topology t = { cfg->sockets, cfg->cores, cfg->threads };
        uint32_t max_id = cpuid_apic_id(&t, cfg->nr_cpus - 1);
        if (max_id > CONFIG_MAX_APIC_ID)
            return arg_fail(err, errlen, "--smp %s: the topology needs APIC IDs up to %u (past %d); "
                            "use powers of two for cores and threads", smp_arg ? smp_arg : "",
                            max_id, CONFIG_MAX_APIC_ID);
    }
    if (cfg->hugepage_size && cfg->mem_size % cfg->hugepage_size)
        return arg_fail(err, errlen, "--memory %s: not a whole number of --hugepages %s pages; round "
                        "--memory to a multiple of %s", mem_arg, hp_arg, hp_arg);
    e = vfio_args_finish(&cfg->vfio, err, errlen);
    if (e)
        return e;
    e = disk_args_finish(&cfg->disks, err, errlen);
    if (e)
        return e;
    if (cfg->initrd && !cfg->kernel)
        return arg_fail(err, errlen, "--initrd %s: an initrd needs a kernel; add --kernel bzImage",
                        cfg->initrd);
    /* --kernel alone: direct boot; --firmware (or no --kernel): OVMF. */
    cfg->firmware_boot = cfg->firmware || !cfg->kernel;
    if (cfg->vars && !cfg->firmware_boot)
        return arg_fail(err, errlen, "--vars %s: UEFI variables need the firmware; add --firmware "
                        "/usr/share/OVMF/OVMF_CODE_4M.fd or drop --vars", cfg->vars);
    return 0;
}
