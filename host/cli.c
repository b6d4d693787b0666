/* `minivmm host`: the sub-commands, their options and their output (text
 * for people, --json for scripts). The facts come from the library
 * (host/sysfs.c, host/topology.c), the verdicts from host/check.c, the
 * changes from host/bind.c. Only bind and unbind write anything. */
#include "host/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/arg.h"

#define EXIT_USAGE 2

static void usage(FILE *f)
{
    fputs("usage: minivmm host COMMAND [options]\n"
          "  groups [--json]                     every IOMMU group and its devices; * marks GPUs,\n"
          "                                      + the other functions of a GPU's slot\n"
          "  check [--gpu BDF] [--memory SIZE] [--hugepages 2M|1G]\n"
          "        [--cpu-pin V=H,...] [--emulator-pin CPU] [--io-pin CPU] [--json]\n"
          "                                      is the host ready to pass the GPU through? each finding\n"
          "                                      ok / warn / FAIL with its fix; exit 1 if anything fails\n"
          "  bind [--only] [--force] [--dry-run] BDF...\n"
          "                                      move the devices' IOMMU groups (or slots) to vfio-pci;\n"
          "                                      --only: just the named devices; --force: also the host's\n"
          "                                      console GPU and group members outside the slot\n"
          "  unbind [--only] [--dry-run] (BDF... | --all)\n"
          "                                      give them back to the drivers they had\n"
          "  topology [--cpus N] [--gpu BDF] [--json]\n"
          "                                      cores, SMT siblings, caches, NUMA nodes, and a pinning\n"
          "                                      for N vCPUs (--cpu-pin, --emulator-pin, --io-pin)\n"
          "BDF: 0000:01:00.0 or 01:00.0. SIZE: 512M, 8G, 1T (K, M, G, T: powers of 1024; a plain\n"
          "number counts MiB, as for minivmm --memory). Only bind and unbind change the host.\n"
          "MINIVMM_SYSFS_ROOT=DIR reads /sys, /proc, /dev, /run under DIR (for tests).\n",
          f);
}

/* "--name value" or "--name=value"; NULL (and a message) when missing. */
static const char *opt_value(const struct host_ctx *c, int argc, char **argv, int *i, const char *name, bool *matched)
{
    size_t nl = strlen(name);
    *matched = false;
    if (strncmp(argv[*i], name, nl))
        return NULL;
    if (argv[*i][nl] == '=') {
        *matched = true;
        return argv[*i] + nl + 1;
    }
    if (argv[*i][nl] != '\0')
        return NULL;
    *matched = true;
    if (*i + 1 >= argc) {
        fprintf(c->err, "minivmm host: %s needs a value\n", name);
        return NULL;
    }
    return argv[++*i];
}

static int bad_option(const struct host_ctx *c, const char *cmd, const char *arg)
{
    fprintf(c->err, "minivmm host %s: unknown option '%s' (minivmm host help lists them)\n", cmd, arg);
    return EXIT_USAGE;
}

static int parse_bdf_opt(const struct host_ctx *c, const char *v, char out[HOST_BDF_LEN])
{
    if (bdf_parse(v, out)) {
        fprintf(c->err, "minivmm host: --gpu '%s' is not a PCI address: use 0000:01:00.0 or 01:00.0\n", v);
        return -EINVAL;
    }
    return 0;
}

/* ---------------------------------------------------- option parsers */

int host_parse_pins(const char *s, int pins[HOST_MAX_PINS], int *nr)
{
    int tmp[HOST_MAX_PINS];
    int count = 0;
    for (int i = 0; i < HOST_MAX_PINS; i++)
        tmp[i] = -1;
    if (!s || !*s)
        return -EINVAL;
    const char *p = s;
    for (;;) {
        char *end;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        long vc = strtol(p, &end, 10);
        if (*end != '=' || vc < 0 || vc >= HOST_MAX_PINS)
            return -EINVAL;
        p = end + 1;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        long hc = strtol(p, &end, 10);
        if (hc < 0 || hc >= HOST_MAX_CPUS || tmp[vc] != -1)
            return -EINVAL;
        tmp[vc] = (int)hc;
        if (vc + 1 > count)
            count = (int)vc + 1;
        p = end;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p)
            return -EINVAL;
        break;
    }
    memcpy(pins, tmp, sizeof(tmp));
    *nr = count;
    return 0;
}

/* ---------------------------------------------------------------- groups */

static bool slot_has_gpu(const struct host_pci *p, const struct host_pci_dev *d, const char **gpu_bdf)
{
    for (size_t i = 0; i < p->n; i++)
        if (host_is_display(&p->dev[i]) && bdf_same_slot(p->dev[i].bdf, d->bdf)) {
            *gpu_bdf = p->dev[i].bdf;
            return true;
        }
    return false;
}

static const char *acs_name(enum host_acs a)
{
    return a == HOST_ACS_PRESENT ? "present" : a == HOST_ACS_ABSENT ? "absent" : "unknown";
}

static void print_dev_text(const struct host_ctx *c, const struct host_pci *p, const struct host_names *ids,
                           const struct host_pci_dev *d)
{
    char name[160], cls[96], idbuf[16];
    const char *gpu_bdf = NULL;
    bool gpu = host_is_display(d), sib = !gpu && slot_has_gpu(p, d, &gpu_bdf);
    host_pci_name(ids, d, name, sizeof(name));
    host_pci_class_name(ids, d, cls, sizeof(cls));
    if (d->ids_ok)
        snprintf(idbuf, sizeof(idbuf), "%04x:%04x", d->vendor, d->device);
    else
        snprintf(idbuf, sizeof(idbuf), "????:????");
    fprintf(c->out, "  %c %s  [%s] %s: %s%s  driver: %s", gpu ? '*' : sib ? '+' : ' ', d->bdf, idbuf, cls,
            *name ? name : "(name unknown)", "", *d->driver ? d->driver : "none");
    if (*d->override)
        fprintf(c->out, " (override: %s)", d->override);
    if (gpu)
        fprintf(c->out, "  <- GPU");
    if (sib)
        fprintf(c->out, "  <- function of GPU %s", gpu_bdf);
    if (d->boot_vga == 1)
        fprintf(c->out, ", boot VGA");
    if (d->class_ok && (d->class_code >> 8) == 0x0604 && d->acs != HOST_ACS_UNKNOWN)
        fprintf(c->out, "  (ACS %s)", acs_name(d->acs));
    fputc('\n', c->out);
}

static void json_dev(const struct host_ctx *c, const struct host_pci *p, const struct host_names *ids,
                     const struct host_pci_dev *d)
{
    FILE *f = c->out;
    char name[160], cls[96];
    const char *gpu_bdf = NULL;
    bool gpu = host_is_display(d);
    host_pci_name(ids, d, name, sizeof(name));
    host_pci_class_name(ids, d, cls, sizeof(cls));
    fputs("{\"bdf\":", f);
    json_str(f, d->bdf);
    if (d->class_ok)
        fprintf(f, ",\"class\":\"0x%06x\"", d->class_code);
    else
        fputs(",\"class\":null", f);
    fputs(",\"class_name\":", f);
    json_str(f, cls);
    if (d->ids_ok)
        fprintf(f, ",\"vendor\":\"%04x\",\"device\":\"%04x\"", d->vendor, d->device);
    else
        fputs(",\"vendor\":null,\"device\":null", f);
    fputs(",\"name\":", f);
    if (*name)
        json_str(f, name);
    else
        fputs("null", f);
    fputs(",\"driver\":", f);
    if (*d->driver)
        json_str(f, d->driver);
    else
        fputs("null", f);
    fputs(",\"driver_override\":", f);
    if (*d->override)
        json_str(f, d->override);
    else
        fputs("null", f);
    if (d->iommu_group >= 0)
        fprintf(f, ",\"iommu_group\":%d", d->iommu_group);
    else
        fputs(",\"iommu_group\":null", f);
    if (d->numa_node >= 0)
        fprintf(f, ",\"numa_node\":%d", d->numa_node);
    else
        fputs(",\"numa_node\":null", f);
    if (d->boot_vga >= 0)
        fprintf(f, ",\"boot_vga\":%s", d->boot_vga ? "true" : "false");
    else
        fputs(",\"boot_vga\":null", f);
    fprintf(f, ",\"gpu\":%s,\"gpu_function\":%s,\"bridge\":%s,\"acs\":\"%s\"", gpu ? "true" : "false",
            !gpu && slot_has_gpu(p, d, &gpu_bdf) ? "true" : "false", host_is_bridge(d) ? "true" : "false",
            acs_name(d->acs));
    fputc('}', f);
}

static int cmd_groups(const struct host_ctx *c, int argc, char **argv)
{
    bool json = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else
            return bad_option(c, "groups", argv[i]);
    }
    struct host_pci p;
    int r = host_pci_scan(c, &p);
    if (r < 0) {
        fprintf(c->err, "minivmm host groups: cannot read /sys/bus/pci/devices: %s\n", strerror(-r));
        return 1;
    }
    struct host_names ids;
    bool have_ids = host_names_open(c, &ids) == 0;

    /* The group numbers present, ascending. */
    int *groups = calloc(p.n ? p.n : 1, sizeof(int));
    size_t ng = 0, ungrouped = 0;
    if (!groups) {
        host_pci_free(&p);
        host_names_close(&ids);
        return 1;
    }
    for (size_t i = 0; i < p.n; i++) {
        int g = p.dev[i].iommu_group;
        if (g < 0) {
            ungrouped++;
            continue;
        }
        size_t k = 0;
        while (k < ng && groups[k] < g)
            k++;
        if (k < ng && groups[k] == g)
            continue;
        memmove(groups + k + 1, groups + k, (ng - k) * sizeof(int));
        groups[k] = g;
        ng++;
    }

    if (json) {
        FILE *f = c->out;
        fprintf(f, "{\"iommu_groups\":[");
        for (size_t k = 0; k < ng; k++) {
            fprintf(f, "%s{\"group\":%d,\"devices\":[", k ? "," : "", groups[k]);
            bool first = true;
            for (size_t i = 0; i < p.n; i++)
                if (p.dev[i].iommu_group == groups[k]) {
                    if (!first)
                        fputc(',', f);
                    first = false;
                    json_dev(c, &p, &ids, &p.dev[i]);
                }
            fputs("]}", f);
        }
        fputs("],\"ungrouped_devices\":[", f);
        bool first = true;
        for (size_t i = 0; i < p.n; i++)
            if (p.dev[i].iommu_group < 0) {
                if (!first)
                    fputc(',', f);
                first = false;
                json_dev(c, &p, &ids, &p.dev[i]);
            }
        fprintf(f, "],\"iommu_on\":%s,\"pci_ids\":%s}\n", ng ? "true" : "false", have_ids ? "true" : "false");
    } else {
        if (!p.n)
            fprintf(c->out, "No PCI devices in /sys/bus/pci/devices.\n");
        else if (!ng)
            fprintf(c->out, "No IOMMU groups: the IOMMU is off or absent (minivmm host check says why and how to "
                    "turn it on).\n");
        else
            fprintf(c->out, "%zu IOMMU group%s (* GPU, + another function of a GPU's slot):\n", ng,
                    ng == 1 ? "" : "s");
        if (!have_ids && ids.why[0])
            fprintf(c->out, "(device names unknown: libpci: %s; the pci.ids package has a good pci.ids)\n",
                    ids.why);
        else if (!have_ids)
            fprintf(c->out, "(no pci.ids found: device names unknown; the pci.ids package has it)\n");
        for (size_t k = 0; k < ng; k++) {
            fprintf(c->out, "IOMMU group %d\n", groups[k]);
            for (size_t i = 0; i < p.n; i++)
                if (p.dev[i].iommu_group == groups[k])
                    print_dev_text(c, &p, &ids, &p.dev[i]);
        }
        if (ungrouped) {
            fprintf(c->out, "%s:\n", ng ? "In no IOMMU group" : "PCI devices");
            for (size_t i = 0; i < p.n; i++)
                if (p.dev[i].iommu_group < 0)
                    print_dev_text(c, &p, &ids, &p.dev[i]);
        }
    }
    free(groups);
    host_pci_free(&p);
    host_names_close(&ids);
    return 0;
}

/* ----------------------------------------------------------------- check */

static void print_indented(FILE *f, const char *s, const char *first, const char *rest)
{
    const char *p = s;
    bool line0 = true;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(f, "%s%.*s\n", line0 ? first : rest, (int)len, p);
        line0 = false;
        p += len + (nl ? 1 : 0);
    }
}

static int cmd_check(const struct host_ctx *c, int argc, char **argv)
{
    struct host_check_opts o = { .emulator_pin = -1, .io_pin = -1 };
    char gpu[HOST_BDF_LEN];
    bool json = false;
    for (int i = 0; i < HOST_MAX_PINS; i++)
        o.cpu_pin[i] = -1;
    for (int i = 2; i < argc; i++) {
        bool m;
        const char *v;
        long l;
        if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if ((v = opt_value(c, argc, argv, &i, "--gpu", &m)) || m) {
            if (!v || parse_bdf_opt(c, v, gpu))
                return EXIT_USAGE;
            o.gpu = gpu;
        } else if ((v = opt_value(c, argc, argv, &i, "--memory", &m)) || m) {
            /* The syntax of minivmm --memory (vmm/arg.c): a plain number
             * counts MiB here too. */
            if (!v)
                return EXIT_USAGE;
            if (arg_parse_size(v, strlen(v), &o.memory)) {
                fprintf(c->err, "minivmm host check: --memory '%s' is not a size, or too large a number: use a "
                        "number with a K, M, G or T suffix (8G, 512M; a plain number counts MiB, as for "
                        "minivmm --memory)\n", v);
                return EXIT_USAGE;
            }
            if (o.memory == 0) {
                fprintf(c->err, "minivmm host check: --memory '%s': the VM needs some memory; give the size "
                        "minivmm --memory will get, e.g. 8G\n", v);
                return EXIT_USAGE;
            }
        } else if ((v = opt_value(c, argc, argv, &i, "--hugepages", &m)) || m) {
            if (!v || arg_parse_size(v, strlen(v), &o.hugepage_size) ||
                (o.hugepage_size != (2u << 20) && o.hugepage_size != (1u << 30))) {
                fprintf(c->err, "minivmm host check: --hugepages '%s': use 2M or 1G\n", v ? v : "");
                return EXIT_USAGE;
            }
        } else if ((v = opt_value(c, argc, argv, &i, "--cpu-pin", &m)) || m) {
            if (!v || host_parse_pins(v, o.cpu_pin, &o.nr_pins)) {
                fprintf(c->err, "minivmm host check: --cpu-pin '%s': use VCPU=CPU pairs, e.g. 0=2,1=3\n", v ? v : "");
                return EXIT_USAGE;
            }
        } else if ((v = opt_value(c, argc, argv, &i, "--emulator-pin", &m)) || m) {
            if (!v || parse_long(v, 0, HOST_MAX_CPUS - 1, &l)) {
                fprintf(c->err, "minivmm host check: --emulator-pin '%s' is not a CPU number\n", v ? v : "");
                return EXIT_USAGE;
            }
            o.emulator_pin = (int)l;
        } else if ((v = opt_value(c, argc, argv, &i, "--io-pin", &m)) || m) {
            if (!v || parse_long(v, 0, HOST_MAX_CPUS - 1, &l)) {
                fprintf(c->err, "minivmm host check: --io-pin '%s' is not a CPU number\n", v ? v : "");
                return EXIT_USAGE;
            }
            o.io_pin = (int)l;
        } else {
            return bad_option(c, "check", argv[i]);
        }
    }

    struct host_report rep;
    int r = host_check(c, &o, &rep);
    if (r < 0) {
        fprintf(c->err, "minivmm host check: could not run: %s\n", strerror(-r));
        return 1;
    }
    bool pass = rep.nr[HOST_FAIL] == 0;
    if (json) {
        FILE *f = c->out;
        fputs("{\"gpu\":", f);
        if (o.gpu)
            json_str(f, o.gpu);
        else
            fputs("null", f);
        fprintf(f, ",\"passthrough_possible\":%s,\"counts\":{\"ok\":%u,\"warn\":%u,\"fail\":%u},\"findings\":[",
                pass ? "true" : "false", rep.nr[HOST_OK], rep.nr[HOST_WARN], rep.nr[HOST_FAIL]);
        for (size_t i = 0; i < rep.n; i++) {
            fprintf(f, "%s{\"level\":\"%s\",\"topic\":", i ? "," : "", host_level_name(rep.f[i].level));
            json_str(f, rep.f[i].topic);
            fputs(",\"message\":", f);
            json_str(f, rep.f[i].message);
            fputs(",\"fix\":", f);
            if (*rep.f[i].fix)
                json_str(f, rep.f[i].fix);
            else
                fputs("null", f);
            fputc('}', f);
        }
        fputs("]}\n", f);
    } else {
        FILE *f = c->out;
        fprintf(f, "minivmm host check%s%s\n", o.gpu ? ": GPU " : " (no --gpu)", o.gpu ? o.gpu : "");
        for (size_t i = 0; i < rep.n; i++) {
            static const char *const tag[] = { "ok  ", "warn", "FAIL" };
            char first[64];
            snprintf(first, sizeof(first), "  %s  %-20s ", tag[rep.f[i].level], rep.f[i].topic);
            print_indented(f, rep.f[i].message, first, "                             ");
            if (*rep.f[i].fix)
                print_indented(f, rep.f[i].fix, "        fix: ", "             ");
        }
        if (pass)
            fprintf(f, "Result: ready for passthrough%s (%u ok, %u warn)\n",
                    rep.nr[HOST_WARN] ? ", with warnings" : "", rep.nr[HOST_OK], rep.nr[HOST_WARN]);
        else
            fprintf(f, "Result: passthrough cannot work until the FAIL items are fixed (%u fail, %u warn, %u ok)\n",
                    rep.nr[HOST_FAIL], rep.nr[HOST_WARN], rep.nr[HOST_OK]);
    }
    host_report_free(&rep);
    return pass ? 0 : 1;
}

/* ------------------------------------------------------------ bind/unbind */

static int cmd_bind(const struct host_ctx *c, int argc, char **argv, bool bind)
{
    struct host_bind_opts o = { 0 };
    char **bdfs = calloc((size_t)argc, sizeof(char *));
    int n = 0;
    if (!bdfs)
        return 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--only"))
            o.only = true;
        else if (!strcmp(argv[i], "--dry-run"))
            o.dry_run = true;
        else if (bind && !strcmp(argv[i], "--force"))
            o.force = true;
        else if (!bind && !strcmp(argv[i], "--all"))
            o.all = true;
        else if (argv[i][0] == '-') {
            free(bdfs);
            return bad_option(c, bind ? "bind" : "unbind", argv[i]);
        } else
            bdfs[n++] = argv[i];
    }
    if (!bind && o.all && n) {
        fprintf(c->err, "minivmm host unbind: give device addresses or --all, not both\n");
        free(bdfs);
        return EXIT_USAGE;
    }
    if (!o.all && n == 0) {
        fprintf(c->err, "minivmm host %s: name the device(s), e.g. minivmm host %s 0000:01:00.0%s\n",
                bind ? "bind" : "unbind", bind ? "bind" : "unbind", bind ? "" : " (or --all)");
        free(bdfs);
        return EXIT_USAGE;
    }
    int r = bind ? host_bind(c, &o, bdfs, n) : host_unbind(c, &o, bdfs, n);
    free(bdfs);
    if (r == -EINVAL || r == -ENODEV)
        return EXIT_USAGE;
    return r < 0 ? 1 : 0;
}

/* -------------------------------------------------------------- topology */

static void print_cpus(FILE *f, const struct cpuset *s)
{
    struct sbuf sb = { 0 };
    cpulist_format(s, &sb);
    fputs(sb.len ? sb_str(&sb) : "none", f);
    sb_free(&sb);
}

static void json_cpulist(FILE *f, const struct cpuset *s)
{
    struct sbuf sb = { 0 };
    cpulist_format(s, &sb);
    json_str(f, sb_str(&sb));
    sb_free(&sb);
}

static int cmd_topology(const struct host_ctx *c, int argc, char **argv)
{
    long ncpus = 0;
    bool json = false;
    char gpu[HOST_BDF_LEN];
    const char *gpu_bdf = NULL;
    for (int i = 2; i < argc; i++) {
        bool m;
        const char *v;
        if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if ((v = opt_value(c, argc, argv, &i, "--cpus", &m)) || m) {
            if (!v || parse_long(v, 1, HOST_MAX_PINS, &ncpus)) {
                fprintf(c->err, "minivmm host topology: --cpus '%s': a number of vCPUs from 1 to %d\n", v ? v : "",
                        HOST_MAX_PINS);
                return EXIT_USAGE;
            }
        } else if ((v = opt_value(c, argc, argv, &i, "--gpu", &m)) || m) {
            if (!v || parse_bdf_opt(c, v, gpu))
                return EXIT_USAGE;
            gpu_bdf = gpu;
        } else {
            return bad_option(c, "topology", argv[i]);
        }
    }
    struct host_topology t;
    if (host_topology_read(c, &t) < 0) {
        fprintf(c->err, "minivmm host topology: out of memory\n");
        return 1;
    }
    int gpu_node = -1, rc = 0;
    if (gpu_bdf) {
        struct host_pci p;
        if (host_pci_scan(c, &p) == 0) {
            const struct host_pci_dev *d = host_pci_find(&p, gpu_bdf);
            if (!d)
                fprintf(c->err, "minivmm host topology: no PCI device %s: ignoring --gpu\n", gpu_bdf);
            else
                gpu_node = d->numa_node;
            host_pci_free(&p);
        }
    }
    struct host_pin_plan plan;
    int pr = -ENOENT;
    if (ncpus)
        pr = host_topology_suggest(&t, (int)ncpus, gpu_node, &plan);
    unsigned online = cpuset_count(&t.online);
    FILE *f = c->out;

    if (json) {
        fputs("{\"online\":", f);
        json_cpulist(f, &t.online);
        fputs(",\"isolated\":", f);
        if (t.have_isolated)
            json_cpulist(f, &t.isolated);
        else
            fputs("null", f);
        fputs(",\"nohz_full\":", f);
        if (t.have_nohz_full)
            json_cpulist(f, &t.nohz_full);
        else
            fputs("null", f);
        fprintf(f, ",\"smt\":%d,\"nodes\":[", t.max_threads);
        bool first = true;
        for (int n = 0; n < t.nr_nodes; n++) {
            if (!cpuset_count(&t.node_cpus[n]))
                continue;
            fprintf(f, "%s{\"node\":%d,\"cpus\":", first ? "" : ",", n);
            json_cpulist(f, &t.node_cpus[n]);
            fputc('}', f);
            first = false;
        }
        fputs("],\"cores\":[", f);
        for (size_t k = 0; k < t.nr_cores; k++) {
            const struct host_core *co = &t.core[k];
            fprintf(f, "%s{\"package\":%d,\"node\":%d,\"isolated\":%s,\"cpus\":[", k ? "," : "", co->package, co->node,
                    co->isolated ? "true" : "false");
            for (int j = 0; j < co->nr; j++)
                fprintf(f, "%s%d", j ? "," : "", co->cpu[j]);
            fputs("]}", f);
        }
        fputs("],\"caches\":[", f);
        for (size_t k = 0; k < t.nr_caches; k++) {
            fprintf(f, "%s{\"level\":%d,\"type\":", k ? "," : "", t.cache[k].level);
            json_str(f, t.cache[k].type);
            fputs(",\"size\":", f);
            json_str(f, t.cache[k].size);
            fputs(",\"cpus\":", f);
            json_cpulist(f, &t.cache[k].shared);
            fputc('}', f);
        }
        fputs("],\"gpu_node\":", f);
        if (gpu_node >= 0)
            fprintf(f, "%d", gpu_node);
        else
            fputs("null", f);
        fputs(",\"suggestion\":", f);
        if (pr == 0) {
            struct sbuf args = { 0 };
            host_pin_plan_format(&plan, &args);
            fprintf(f, "{\"vcpus\":%d,\"cpu_pin\":[", plan.nr_vcpus);
            for (int i = 0; i < plan.nr_vcpus; i++)
                fprintf(f, "%s%d", i ? "," : "", plan.vcpu[i]);
            fprintf(f, "],\"emulator_pin\":%d,\"io_pin\":%d,\"threads_per_core\":%d,\"args\":", plan.emulator,
                    plan.io, plan.threads);
            json_str(f, sb_str(&args));
            fputs(",\"notes\":", f);
            json_str(f, sb_str(&plan.notes));
            fputc('}', f);
            sb_free(&args);
        } else {
            fputs("null", f);
        }
        fputs("}\n", f);
    } else {
        fprintf(f, "CPUs online: ");
        print_cpus(f, &t.online);
        fprintf(f, " (%u), %zu cores, %d thread%s per core%s", online, t.nr_cores, t.max_threads,
                t.max_threads == 1 ? "" : "s", t.have_topology ? "" : " (no topology in sysfs: each CPU counted as a core)");
        if (t.nr_nodes)
            fprintf(f, ", %d NUMA node%s\n", t.nr_nodes, t.nr_nodes == 1 ? "" : "s");
        else
            fprintf(f, ", no NUMA information\n");
        fprintf(f, "isolated: ");
        if (t.have_isolated)
            print_cpus(f, &t.isolated);
        else
            fputs("unknown", f);
        fprintf(f, "; nohz_full: ");
        if (t.have_nohz_full)
            print_cpus(f, &t.nohz_full);
        else
            fputs("not available", f);
        fputc('\n', f);
        for (int n = -1; n < (t.nr_nodes ? t.nr_nodes : 0); n++) {
            bool any = false;
            for (size_t k = 0; k < t.nr_cores; k++) {
                const struct host_core *co = &t.core[k];
                if (co->node != n)
                    continue;
                if (!any) {
                    if (n >= 0) {
                        fprintf(f, "node %d: CPUs ", n);
                        print_cpus(f, &t.node_cpus[n]);
                        fprintf(f, "%s\n", gpu_node == n ? "  <- the GPU's node" : "");
                    } else {
                        fprintf(f, "%s\n", t.nr_nodes ? "CPUs in no node:" : "cores:");
                    }
                    any = true;
                }
                fprintf(f, "  core: CPU%s ", co->nr > 1 ? "s" : "");
                for (int j = 0; j < co->nr; j++)
                    fprintf(f, "%s%d", j ? "," : "", co->cpu[j]);
                if (co->package >= 0)
                    fprintf(f, " (package %d)", co->package);
                if (co->isolated)
                    fprintf(f, " isolated");
                fputc('\n', f);
            }
        }
        if (t.nr_caches) {
            fprintf(f, "caches:\n");
            /* One line per kind; the CPU sets when there are few of them. */
            bool *done = calloc(t.nr_caches, sizeof(bool));
            for (size_t k = 0; done && k < t.nr_caches; k++) {
                if (done[k])
                    continue;
                const struct host_cache *a = &t.cache[k];
                unsigned count = 0;
                struct sbuf sets = { 0 };
                for (size_t j = k; j < t.nr_caches; j++) {
                    const struct host_cache *b = &t.cache[j];
                    if (done[j] || b->level != a->level || strcmp(b->type, a->type) || strcmp(b->size, a->size))
                        continue;
                    done[j] = true;
                    if (count++ < 4) {
                        sb_printf(&sets, "%s", count > 1 ? " | " : "");
                        cpulist_format(&b->shared, &sets);
                    }
                }
                fprintf(f, "  L%d %-11s %6s x%u, CPUs %s%s\n", a->level, a->type, a->size, count, sb_str(&sets),
                        count > 4 ? " | ..." : "");
                sb_free(&sets);
            }
            free(done);
        }
        if (!ncpus) {
            fprintf(f, "minivmm host topology --cpus N suggests a pinning for N vCPUs.\n");
        } else if (pr == 0) {
            struct sbuf args = { 0 };
            host_pin_plan_format(&plan, &args);
            fprintf(f, "suggested for %ld vCPU%s", ncpus, ncpus == 1 ? "" : "s");
            if (gpu_bdf && gpu_node >= 0)
                fprintf(f, " (GPU %s on node %d)", gpu_bdf, gpu_node);
            else if (gpu_bdf)
                fprintf(f, " (GPU %s: NUMA node unknown)", gpu_bdf);
            fprintf(f, ":\n  ");
            if (plan.threads > 1)
                fprintf(f, "--smp sockets=1,cores=%d,threads=%d ", plan.nr_vcpus / plan.threads, plan.threads);
            else
                fprintf(f, "--cpus %d ", plan.nr_vcpus);
            fprintf(f, "%s\n", sb_str(&args));
            if (plan.notes.len)
                print_indented(f, sb_str(&plan.notes), "  note: ", "  note: ");
            sb_free(&args);
        } else {
            fprintf(f, "cannot pin %ld vCPUs: the host has %u online CPU%s\n", ncpus, online, online == 1 ? "" : "s");
        }
    }
    if (ncpus && pr < 0) {
        if (json)
            fprintf(c->err, "minivmm host topology: cannot pin %ld vCPUs on %u online CPUs\n", ncpus, online);
        rc = 1;
    }
    if (pr == 0)
        host_pin_plan_free(&plan);
    host_topology_free(&t);
    return rc;
}

/* ------------------------------------------------------------- dispatch */

int host_run(const struct host_ctx *c, int argc, char **argv)
{
    if (argc < 2) {
        usage(c->err);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    int rc;
    if (!strcmp(cmd, "groups"))
        rc = cmd_groups(c, argc, argv);
    else if (!strcmp(cmd, "check"))
        rc = cmd_check(c, argc, argv);
    else if (!strcmp(cmd, "bind"))
        rc = cmd_bind(c, argc, argv, true);
    else if (!strcmp(cmd, "unbind"))
        rc = cmd_bind(c, argc, argv, false);
    else if (!strcmp(cmd, "topology"))
        rc = cmd_topology(c, argc, argv);
    else if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(c->out);
        rc = 0;
    } else {
        fprintf(c->err, "minivmm host: unknown command '%s'\n", cmd);
        usage(c->err);
        rc = EXIT_USAGE;
    }
    fflush(c->out);
    return rc;
}

int host_main(int argc, char **argv)
{
    const char *root = getenv("MINIVMM_SYSFS_ROOT");
    struct host_ctx c = { .root = root ? root : "", .out = stdout, .err = stderr };
    /* Lines in order when stdout and stderr go to one log (bind/unbind
     * interleave what they write with what went wrong). */
    setvbuf(stdout, NULL, _IOLBF, 0);
    return host_run(&c, argc, argv);
}
