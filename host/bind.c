/* `minivmm host bind` / `unbind`: move PCI devices to vfio-pci and back.
 *
 * The kernel's interface (Documentation/ABI/testing/sysfs-bus-pci):
 *   /sys/bus/pci/devices/BDF/driver_override  a driver name: only that driver
 *       may bind the device from now on; an empty write ("\n") clears it.
 *       Writing it neither unbinds the device nor loads a module.
 *   /sys/bus/pci/drivers/NAME/unbind          BDF: detach it from NAME
 *   /sys/bus/pci/drivers_probe                BDF: bind it to a matching driver
 *   /sys/bus/pci/drivers/NAME/bind            BDF: bind it to NAME
 * So bind is: record the original driver, override := vfio-pci, unbind
 * from the old driver, drivers_probe; unbind is the same backwards.
 *
 * By default a whole IOMMU group moves (VFIO needs every device of a group
 * away from host drivers), or, without an IOMMU, the whole slot. Bridges stay
 * where they are (vfio-pci does not take them; pcieport is allowed in a
 * group). Refused unless --force: the device the host's console is on, a
 * device whose network interface is up, and devices of the group outside the
 * named device's slot (an ACS-less bridge put them there; they are the host's
 * own NIC or disk).
 *
 * The original driver is remembered in /run/minivmm/host-bind/<BDF> (under
 * the root prefix) before anything changes, so unbind restores it even after
 * a crash half-way. */
#include "host/bind.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct bind_state {
    bool have;                       /* a state file exists */
    char driver[HOST_NAME_LEN];      /* "" = it had none */
    char override[HOST_NAME_LEN];    /* "" = none */
};

/* ------------------------------------------------------------ state file */

static int state_read(const struct host_ctx *c, const char *bdf, struct bind_state *st)
{
    char buf[512];
    memset(st, 0, sizeof(*st));
    ssize_t n = hs_read(c, buf, sizeof(buf), HOST_BIND_STATE_DIR "/%s", bdf);
    if (n == -ENOENT)
        return 0;
    if (n < 0)
        return (int)n;
    st->have = true;
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *dst = NULL;
        if (!strncmp(l, "driver=", 7)) {
            dst = st->driver;
            l += 7;
        } else if (!strncmp(l, "driver_override=", 16)) {
            dst = st->override;
            l += 16;
        }
        if (!dst)
            continue;
        if (*l && !host_name_ok(l))
            return -EBADMSG;   /* never write garbage back into sysfs */
        snprintf(dst, HOST_NAME_LEN, "%s", l);
    }
    return 0;
}

static int mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int state_write(const struct host_ctx *c, const char *bdf, const struct bind_state *st)
{
    char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX];
    if (hs_path(c, dir, sizeof(dir), HOST_BIND_STATE_DIR) < 0 ||
        hs_path(c, path, sizeof(path), HOST_BIND_STATE_DIR "/%s", bdf) < 0 ||
        hs_path(c, tmp, sizeof(tmp), HOST_BIND_STATE_DIR "/.%s.tmp", bdf) < 0)
        return -ENAMETOOLONG;
    int r = mkdir_p(dir);
    if (r < 0)
        return r;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    char buf[256];
    int len = snprintf(buf, sizeof(buf),
                       "# minivmm host bind: what %s had before; minivmm host unbind restores it\n"
                       "driver=%s\ndriver_override=%s\n",
                       bdf, st->driver, st->override);
    ssize_t w = write(fd, buf, (size_t)len);
    int err = w == len ? 0 : (w < 0 ? -errno : -EIO);
    if (fsync(fd) < 0 && !err)
        err = -errno;
    close(fd);
    if (!err && rename(tmp, path) < 0)
        err = -errno;
    if (err)
        unlink(tmp);
    return err;
}

static int state_remove(const struct host_ctx *c, const char *bdf)
{
    char path[PATH_MAX];
    if (hs_path(c, path, sizeof(path), HOST_BIND_STATE_DIR "/%s", bdf) < 0)
        return -ENAMETOOLONG;
    if (unlink(path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* ---------------------------------------------------------------- writes */

/* One sysfs write (path under the root), shown as it happens: these change
 * the host. */
static int sysfs_write(const struct host_ctx *c, bool dry, const char *value, const char *shown, const char *rel)
{
    fprintf(c->out, "  %s %s <- %s\n", dry ? "would write" : "write", rel, shown ? shown : value);
    if (dry)
        return 0;
    int r = hs_write(c, value, "%s", rel);
    if (r < 0) {
        fprintf(c->err, "minivmm host: writing '%s' to %s failed: %s%s\n", shown ? shown : value, rel, strerror(-r),
                r == -EACCES || r == -EPERM ? " (bind and unbind need root)" : "");
        return -EIO;   /* the kernel's own errno (ENODEV, EINVAL) must not read as bad usage */
    }
    return 0;
}

static int write_override(const struct host_ctx *c, bool dry, const char *bdf, const char *value)
{
    char rel[96];
    snprintf(rel, sizeof(rel), "/sys/bus/pci/devices/%s/driver_override", bdf);
    /* An empty write ("\n") clears the override (sysfs-bus-pci). */
    return sysfs_write(c, dry, *value ? value : "\n", *value ? NULL : "(empty: clears it)", rel);
}

static int write_driver_file(const struct host_ctx *c, bool dry, const char *bdf, const char *driver,
                             const char *file)
{
    char rel[160];
    snprintf(rel, sizeof(rel), "/sys/bus/pci/drivers/%s/%s", driver, file);
    return sysfs_write(c, dry, bdf, NULL, rel);
}

static int write_probe(const struct host_ctx *c, bool dry, const char *bdf)
{
    return sysfs_write(c, dry, bdf, NULL, "/sys/bus/pci/drivers_probe");
}

static void current_driver(const struct host_ctx *c, const char *bdf, char *buf, size_t cap)
{
    if (hs_link_name(c, buf, cap, "/sys/bus/pci/devices/%s/driver", bdf) < 0 || !host_name_ok(buf))
        buf[0] = '\0';
}

static const char *or_none(const char *s)
{
    return *s ? s : "no driver";
}

static void current_override(const struct host_ctx *c, const char *bdf, char *buf, size_t cap)
{
    if (hs_read(c, buf, cap, "/sys/bus/pci/devices/%s/driver_override", bdf) < 0 || !strcmp(buf, "(null)") ||
        !host_name_ok(buf))
        buf[0] = '\0';
}

/* Gives a device back to what the state says (or, without a state, to the
 * kernel's own matching). 0 when it ended there. */
static int restore_one(const struct host_ctx *c, bool dry, const char *bdf, const struct bind_state *st)
{
    char drv[HOST_NAME_LEN], ov[HOST_NAME_LEN];
    int r;
    current_driver(c, bdf, drv, sizeof(drv));
    current_override(c, bdf, ov, sizeof(ov));
    const char *want_ov = st->have ? st->override : "";

    if (*drv && !host_driver_is_vfio(drv)) {
        if (!st->have || strcmp(drv, st->driver)) {
            fprintf(c->err, "minivmm host: %s is on %s, not on vfio-pci: leaving it alone\n", bdf, drv);
            return -EBUSY;
        }
        /* Back on its driver already (an undo after a failed unbind). */
        if (strcmp(ov, want_ov) && (r = write_override(c, dry, bdf, want_ov)) < 0)
            return r;
        fprintf(c->out, "%s: on %s (as before bind)\n", bdf, drv);
        return 0;
    }
    if (*drv && (r = write_driver_file(c, dry, bdf, drv, "unbind")) < 0)
        return r;
    if ((r = write_override(c, dry, bdf, want_ov)) < 0)
        return r;
    if (st->have && !*st->driver) {
        fprintf(c->out, "%s: %s -> no driver (as before bind)\n", bdf, or_none(drv));
        return 0;
    }
    if ((r = write_probe(c, dry, bdf)) < 0)
        return r;
    if (dry)
        return 0;
    char now[HOST_NAME_LEN];
    current_driver(c, bdf, now, sizeof(now));
    if (!st->have) {
        fprintf(c->out, "%s: %s -> %s (no record of its driver before bind: the kernel's matching chose)\n", bdf,
                or_none(drv), or_none(now));
        return 0;
    }
    if (strcmp(now, st->driver) && hs_is_dir(c, "/sys/bus/pci/drivers/%s", st->driver)) {
        /* drivers_probe found no match (a dynamic ID, say): bind by name. */
        write_driver_file(c, dry, bdf, st->driver, "bind");
        current_driver(c, bdf, now, sizeof(now));
    }
    if (strcmp(now, st->driver)) {
        char mod[HOST_NAME_LEN];
        host_driver_module(c, st->driver, mod, sizeof(mod));
        fprintf(c->err, "minivmm host: %s did not go back to %s (it is on %s): load its module (modprobe %s) "
                "and run minivmm host unbind %s again\n", bdf, st->driver, or_none(now), mod, bdf);
        return -EAGAIN;
    }
    fprintf(c->out, "%s: %s -> %s (as before bind)\n", bdf, or_none(drv), now);
    return 0;
}

/* Moves one device to vfio-pci. *changed says whether anything was done
 * (for the undo). */
static int bind_one(const struct host_ctx *c, bool dry, const struct host_pci_dev *d, bool *changed)
{
    int r;
    *changed = false;
    if (host_driver_is_vfio(d->driver)) {
        fprintf(c->out, "%s: already on %s\n", d->bdf, d->driver);
        return 0;
    }
    struct bind_state st;
    if ((r = state_read(c, d->bdf, &st)) < 0) {
        fprintf(c->err, "minivmm host: cannot read %s/%s: %s (remove it if it is garbage)\n", HOST_BIND_STATE_DIR,
                d->bdf, strerror(-r));
        return r;
    }
    if (!st.have) {
        /* Record before changing anything. An earlier, interrupted bind's
         * record is kept: it holds the driver from before that one. */
        snprintf(st.driver, sizeof(st.driver), "%s", d->driver);
        snprintf(st.override, sizeof(st.override), "%s", d->override);
        st.have = true;
        if (dry) {
            fprintf(c->out, "  would record driver=%s in %s/%s\n", d->driver, HOST_BIND_STATE_DIR, d->bdf);
        } else if ((r = state_write(c, d->bdf, &st)) < 0) {
            fprintf(c->err, "minivmm host: cannot record %s's driver in %s: %s%s\n", d->bdf, HOST_BIND_STATE_DIR,
                    strerror(-r), r == -EACCES || r == -EPERM ? " (bind and unbind need root)" : "");
            return r;
        }
    }
    *changed = true;
    if ((r = write_override(c, dry, d->bdf, "vfio-pci")) < 0)
        return r;
    if (*d->driver && (r = write_driver_file(c, dry, d->bdf, d->driver, "unbind")) < 0)
        return r;
    if ((r = write_probe(c, dry, d->bdf)) < 0)
        return r;
    if (dry)
        return 0;
    char now[HOST_NAME_LEN];
    current_driver(c, d->bdf, now, sizeof(now));
    if (strcmp(now, "vfio-pci")) {
        fprintf(c->err, "minivmm host: %s is on %s after drivers_probe, not on vfio-pci (dmesg may say why)\n",
                d->bdf, or_none(now));
        return -EIO;
    }
    if (d->iommu_group >= 0)
        fprintf(c->out, "%s: %s -> vfio-pci (IOMMU group %d, /dev/vfio/%d)\n", d->bdf, or_none(d->driver),
                d->iommu_group, d->iommu_group);
    else
        fprintf(c->out, "%s: %s -> vfio-pci (no IOMMU group: VFIO cannot use it until the IOMMU is on)\n",
                d->bdf, or_none(d->driver));
    return 0;
}

/* ------------------------------------------------------------ selection */

struct sel {
    const struct host_pci_dev *dev[256];
    size_t n;
};

static bool sel_has(const struct sel *s, const struct host_pci_dev *d)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->dev[i] == d)
            return true;
    return false;
}

static int sel_add(struct sel *s, const struct host_pci_dev *d)
{
    if (sel_has(s, d))
        return 0;
    if (s->n == sizeof(s->dev) / sizeof(s->dev[0]))
        return -E2BIG;
    s->dev[s->n++] = d;
    return 0;
}

static int cmp_sel(const void *a, const void *b)
{
    return strcmp((*(const struct host_pci_dev *const *)a)->bdf, (*(const struct host_pci_dev *const *)b)->bdf);
}

/* The named devices (validated), each found on the host. */
static int named_devices(const struct host_ctx *c, const struct host_pci *pci, char **bdfs, int n, struct sel *named)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char bdf[HOST_BDF_LEN];
        if (bdf_parse(bdfs[i], bdf)) {
            fprintf(c->err, "minivmm host: '%s' is not a PCI address: use the form 0000:01:00.0 or 01:00.0\n",
                    bdfs[i]);
            bad = -EINVAL;
            continue;
        }
        const struct host_pci_dev *d = host_pci_find(pci, bdf);
        if (!d) {
            fprintf(c->err, "minivmm host: no PCI device %s on this host (minivmm host groups lists them)\n", bdf);
            bad = -ENODEV;
            continue;
        }
        if (sel_add(named, d) < 0)
            return -E2BIG;
    }
    return bad;
}

/* The group of d, or its slot without an IOMMU group. */
static int add_group_or_slot(const struct host_pci *pci, const struct host_pci_dev *d, struct sel *s)
{
    for (size_t i = 0; i < pci->n; i++) {
        const struct host_pci_dev *o = &pci->dev[i];
        bool member = d->iommu_group >= 0 ? o->iommu_group == d->iommu_group : bdf_same_slot(o->bdf, d->bdf);
        if (member && sel_add(s, o) < 0)
            return -E2BIG;
    }
    return 0;
}

int host_bind(const struct host_ctx *c, const struct host_bind_opts *o, char **bdfs, int n)
{
    struct host_pci pci;
    struct sel named = { 0 }, set = { 0 };
    int r = host_pci_scan(c, &pci);
    if (r < 0) {
        fprintf(c->err, "minivmm host: cannot read the PCI devices: %s\n", strerror(-r));
        return r;
    }
    if (n < 1) {
        fprintf(c->err, "minivmm host bind: name the device(s): minivmm host bind 0000:01:00.0\n");
        r = -EINVAL;
        goto out;
    }
    if ((r = named_devices(c, &pci, bdfs, n, &named)) < 0)
        goto out;
    if (!hs_is_dir(c, "/sys/bus/pci/drivers/vfio-pci")) {
        fprintf(c->err, "minivmm host: vfio-pci is not loaded: run modprobe vfio-pci first (bind does not load "
                "modules)\n");
        if (!o->dry_run) {
            r = -ENOENT;
            goto out;
        }
    }

    /* What moves, and what is refused. */
    int refused = 0;
    for (size_t i = 0; i < named.n; i++) {
        const struct host_pci_dev *d = named.dev[i];
        if (host_is_bridge(d)) {
            fprintf(c->err, "minivmm host: %s is a bridge: vfio-pci does not take bridges (they may stay on "
                    "pcieport in a group that goes to a guest)\n", d->bdf);
            refused = -EINVAL;
            continue;
        }
        if (o->only) {
            if ((r = sel_add(&set, d)) < 0)
                goto out;
        } else {
            if (d->iommu_group < 0)
                fprintf(c->err, "minivmm host: %s is in no IOMMU group: moving its slot (the IOMMU is off, so "
                        "VFIO cannot use it yet; see minivmm host check)\n", d->bdf);
            if ((r = add_group_or_slot(&pci, d, &set)) < 0)
                goto out;
        }
    }
    struct sel moving = { 0 };
    for (size_t i = 0; i < set.n; i++) {
        const struct host_pci_dev *d = set.dev[i];
        if (host_is_bridge(d)) {
            fprintf(c->out, "%s: a bridge in the group: stays on %s\n", d->bdf, *d->driver ? d->driver : "no driver");
            continue;
        }
        bool in_named_slot = false;
        for (size_t k = 0; k < named.n; k++)
            in_named_slot |= bdf_same_slot(d->bdf, named.dev[k]->bdf);
        if (!in_named_slot && !o->force) {
            fprintf(c->err, "minivmm host: %s (driver %s) shares the IOMMU group but is not in the slot of the "
                    "device(s) named: binding would take it from the host. Pass --force to move it too, or "
                    "--only to move just the named devices (the group then stays unusable for VFIO)\n",
                    d->bdf, *d->driver ? d->driver : "none");
            refused = -EPERM;
            continue;
        }
        if (host_pci_is_console(c, d) && !host_driver_is_vfio(d->driver) && !o->force) {
            fprintf(c->err, "minivmm host: %s drives the host's console (boot VGA or framebuffer): binding it "
                    "to vfio-pci takes the screen away. Pass --force if the host has another console\n", d->bdf);
            refused = -EPERM;
            continue;
        }
        char ifname[HOST_NAME_LEN];
        if (!host_driver_is_vfio(d->driver) && host_pci_net_up(c, d, ifname, sizeof(ifname)) && !o->force) {
            fprintf(c->err, "minivmm host: %s carries network interface %s, which is up: binding it to vfio-pci "
                    "takes that network away from the host. Take the interface down first, or pass --force\n",
                    d->bdf, ifname);
            refused = -EPERM;
            continue;
        }
        sel_add(&moving, d);
    }
    if (refused) {
        fprintf(c->err, "minivmm host: nothing was changed\n");
        r = refused;
        goto out;
    }
    qsort(moving.dev, moving.n, sizeof(moving.dev[0]), cmp_sel);

    /* Move them; on a failure give back what this call moved. */
    bool changed[256] = { false };
    for (size_t i = 0; i < moving.n; i++) {
        r = bind_one(c, o->dry_run, moving.dev[i], &changed[i]);
        if (r < 0) {
            fprintf(c->err, "minivmm host: bind of %s failed; undoing this call's changes\n", moving.dev[i]->bdf);
            for (size_t k = i + 1; k-- > 0;) {
                if (!changed[k])
                    continue;
                struct bind_state st;
                if (state_read(c, moving.dev[k]->bdf, &st) == 0 && restore_one(c, o->dry_run, moving.dev[k]->bdf, &st) == 0 &&
                    !o->dry_run)
                    state_remove(c, moving.dev[k]->bdf);
            }
            goto out;
        }
    }
    r = 0;
out:
    host_pci_free(&pci);
    return r;
}

int host_unbind(const struct host_ctx *c, const struct host_bind_opts *o, char **bdfs, int n)
{
    struct host_pci pci;
    struct sel set = { 0 };
    int r = host_pci_scan(c, &pci);
    if (r < 0) {
        fprintf(c->err, "minivmm host: cannot read the PCI devices: %s\n", strerror(-r));
        return r;
    }
    if (o->all) {
        char **names;
        size_t nn;
        if (hs_list(c, &names, &nn, HOST_BIND_STATE_DIR) == 0) {
            for (size_t i = 0; i < nn; i++) {
                char bdf[HOST_BDF_LEN];
                const struct host_pci_dev *d;
                if (bdf_parse(names[i], bdf) || strcmp(bdf, names[i]) || !(d = host_pci_find(&pci, bdf)))
                    continue;
                sel_add(&set, d);
            }
            hs_list_free(names, nn);
        }
        if (!set.n)
            fprintf(c->out, "no device bound by minivmm host bind (nothing in %s)\n", HOST_BIND_STATE_DIR);
    } else {
        struct sel named = { 0 };
        if (n < 1) {
            fprintf(c->err, "minivmm host unbind: name the device(s), or --all\n");
            r = -EINVAL;
            goto out;
        }
        if ((r = named_devices(c, &pci, bdfs, n, &named)) < 0)
            goto out;
        struct sel group = { 0 };
        for (size_t i = 0; i < named.n; i++) {
            if (o->only)
                sel_add(&group, named.dev[i]);
            else if ((r = add_group_or_slot(&pci, named.dev[i], &group)) < 0)
                goto out;
        }
        /* Of those: the ones on vfio-pci or with a record, never bridges. */
        for (size_t i = 0; i < group.n; i++) {
            const struct host_pci_dev *d = group.dev[i];
            if (host_is_bridge(d))
                continue;
            bool named_one = sel_has(&named, d);
            bool record = hs_exists(c, HOST_BIND_STATE_DIR "/%s", d->bdf);
            if (host_driver_is_vfio(d->driver) || record || named_one)
                sel_add(&set, d);
        }
    }
    qsort(set.dev, set.n, sizeof(set.dev[0]), cmp_sel);
    int worst = 0;
    for (size_t i = 0; i < set.n; i++) {
        struct bind_state st;
        const char *bdf = set.dev[i]->bdf;
        if ((r = state_read(c, bdf, &st)) < 0) {
            fprintf(c->err, "minivmm host: %s/%s is unreadable or garbage (%s): remove it and unbind again\n",
                    HOST_BIND_STATE_DIR, bdf, strerror(-r));
            worst = r;
            continue;
        }
        const char *drv = set.dev[i]->driver;
        if (!st.have && !host_driver_is_vfio(drv)) {
            fprintf(c->out, "%s: on %s, not bound by minivmm host bind: nothing to do\n", bdf, or_none(drv));
            continue;
        }
        r = restore_one(c, o->dry_run, bdf, &st);
        if (r < 0) {
            worst = r;
            continue;
        }
        if (!o->dry_run && (r = state_remove(c, bdf)) < 0) {
            fprintf(c->err, "minivmm host: cannot remove %s/%s: %s\n", HOST_BIND_STATE_DIR, bdf, strerror(-r));
            worst = r;
        }
    }
    r = worst;
out:
    host_pci_free(&pci);
    return r;
}
