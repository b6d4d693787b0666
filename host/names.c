/* Vendor, device and class names of PCI functions through libpci (see
 * host/sysfs.h): pci_alloc, pci_init, pci_lookup_name over pciutils'
 * pci.ids, the file under the root prefix when there is one.
 *
 * libpci's error callback (struct pci_access.error) must not return; its
 * default prints and calls exit(1), on a malformed pci.ids line too
 * (lib/names-parse.c, pci_load_name_list). Every call into libpci here runs
 * with names_error set and a jump buffer armed: an error jumps back, the
 * message is kept in struct host_names.why and the names become unknown.
 * Only pci_alloc itself cannot be guarded (it has no callback yet); it fails
 * only when a few hundred bytes cannot be allocated. */
#include "host/sysfs.h"

#include <errno.h>
#include <pci/pci.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where a libpci error goes: the armed jump buffer and the message's room. */
static __thread jmp_buf *names_jmp;
static __thread char *names_why;
static __thread size_t names_why_len;

static void names_error(char *msg, ...) __attribute__((format(printf, 1, 2), noreturn));
static void names_error(char *msg, ...)
{
    if (names_why && names_why_len) {
        va_list ap;
        va_start(ap, msg);
        vsnprintf(names_why, names_why_len, msg, ap);
        va_end(ap);
        /* libpci ends its messages with a newline; why is one line. */
        size_t l = strlen(names_why);
        while (l && (names_why[l - 1] == '\n' || names_why[l - 1] == ' '))
            names_why[--l] = '\0';
    }
    if (names_jmp)
        longjmp(*names_jmp, 1);
    abort();   /* every call into libpci below arms names_jmp first */
}

/* Warnings (a pci.ids that cannot be read, for one) are what the result
 * already says; debug output is off. */
static void names_quiet(char *msg, ...) __attribute__((format(printf, 1, 2)));
static void names_quiet(char *msg, ...)
{
}

static const char *const ids_where[] = {
    "/usr/share/misc/pci.ids.gz", "/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids",
    "/usr/share/pci.ids",
};

int host_names_open(const struct host_ctx *c, struct host_names *n)
{
    jmp_buf jb;
    char path[4096];

    memset(n, 0, sizeof(*n));
    n->pacc = pci_alloc();
    if (!n->pacc)
        return -ENOMEM;
    n->pacc->error = names_error;
    n->pacc->warning = names_quiet;
    n->pacc->debug = names_quiet;
    n->pacc->id_lookup_mode = 0;   /* no ~/.pciids-cache, no DNS */
    n->flags = PCI_LOOKUP_NO_NUMBERS;
    if (c->root && *c->root)
        n->flags |= PCI_LOOKUP_NO_HWDB;   /* a fake tree's names are its own */
    for (size_t i = 0; i < sizeof(ids_where) / sizeof(ids_where[0]); i++) {
        if (hs_path(c, path, sizeof(path), "%s", ids_where[i]) == 0 && hs_exists(c, "%s", ids_where[i])) {
            char *p = strdup(path);
            if (p)
                pci_set_name_list_path(n->pacc, p, 1);
            break;
        }
    }

    names_why = n->why;
    names_why_len = sizeof(n->why);
    names_jmp = &jb;
    if (setjmp(jb)) {
        /* libpci gave up in pci_init or on the file: no names at all. */
        if (setjmp(jb) == 0)
            pci_cleanup(n->pacc);
        names_jmp = NULL;
        names_why = NULL;
        n->pacc = NULL;
        n->have_db = false;
        return -EIO;
    }
    pci_init(n->pacc);
    n->have_db = pci_load_name_list(n->pacc) != 0;
    names_jmp = NULL;
    names_why = NULL;
    return n->have_db ? 0 : -ENOENT;
}

void host_names_close(struct host_names *n)
{
    jmp_buf jb;

    if (n->pacc) {
        names_jmp = &jb;
        if (setjmp(jb) == 0)
            pci_cleanup(n->pacc);
        names_jmp = NULL;
    }
    memset(n, 0, sizeof(*n));
}

enum lookup { LOOK_VENDOR, LOOK_DEVICE, LOOK_CLASS };

/* pci_lookup_name with the jump buffer armed; the name sanitised into buf. */
static bool lookup(const struct host_names *n, enum lookup what, unsigned a, unsigned b, char *buf, size_t cap)
{
    char tmp[256];
    const char *volatile r = NULL;
    jmp_buf jb;

    if (cap)
        buf[0] = '\0';
    if (!n || !n->pacc)
        return false;
    names_jmp = &jb;
    if (setjmp(jb) == 0) {
        switch (what) {
        case LOOK_VENDOR:
            r = pci_lookup_name(n->pacc, tmp, sizeof(tmp), PCI_LOOKUP_VENDOR | n->flags, (int)a);
            break;
        case LOOK_DEVICE:
            r = pci_lookup_name(n->pacc, tmp, sizeof(tmp), PCI_LOOKUP_DEVICE | n->flags, (int)a, (int)b);
            break;
        case LOOK_CLASS:
            r = pci_lookup_name(n->pacc, tmp, sizeof(tmp), PCI_LOOKUP_CLASS | n->flags, (int)a);
            break;
        }
    } else {
        r = NULL;
    }
    names_jmp = NULL;
    if (!r || !*r)
        return false;
    size_t len = strlen(r);
    if (what == LOOK_CLASS) {
        /* Only the base class known: libpci adds the number, "Bridge [0680]". */
        char num[8];
        snprintf(num, sizeof(num), " [%04x]", a & 0xffff);
        if (len > 7 && !strcmp(r + len - 7, num))
            len -= 7;
    }
    host_copy_name(buf, cap, r, len);
    return true;
}

bool host_names_vendor(const struct host_names *n, uint16_t v, char *buf, size_t cap)
{
    return lookup(n, LOOK_VENDOR, v, 0, buf, cap);
}

bool host_names_device(const struct host_names *n, uint16_t v, uint16_t d, char *buf, size_t cap)
{
    return lookup(n, LOOK_DEVICE, v, d, buf, cap);
}

bool host_names_class(const struct host_names *n, uint32_t class_code, char *buf, size_t cap)
{
    return lookup(n, LOOK_CLASS, (class_code >> 8) & 0xffff, 0, buf, cap);
}

const char *host_class_fallback(uint32_t class_code)
{
    switch (class_code >> 8) {
    case 0x0300: return "VGA compatible controller";
    case 0x0302: return "3D controller";
    case 0x0380: return "Display controller";
    case 0x0403: return "Audio device";
    case 0x0600: return "Host bridge";
    case 0x0601: return "ISA bridge";
    case 0x0604: return "PCI bridge";
    case 0x0c03: return "USB controller";
    case 0x0c05: return "SMBus";
    case 0x0c80: return "Serial bus controller";
    case 0x0108: return "Non-Volatile memory controller";
    case 0x0106: return "SATA controller";
    case 0x0200: return "Ethernet controller";
    }
    switch (class_code >> 16) {
    case 0x00: return "Unclassified device";
    case 0x01: return "Mass storage controller";
    case 0x02: return "Network controller";
    case 0x03: return "Display controller";
    case 0x04: return "Multimedia controller";
    case 0x05: return "Memory controller";
    case 0x06: return "Bridge";
    case 0x07: return "Communication controller";
    case 0x08: return "Generic system peripheral";
    case 0x09: return "Input device controller";
    case 0x0c: return "Serial bus controller";
    case 0x0d: return "Wireless controller";
    case 0x12: return "Processing accelerators";
    case 0xff: return "Unassigned class";
    }
    return "Unknown class";
}

void host_pci_name(const struct host_names *n, const struct host_pci_dev *d, char *buf, size_t cap)
{
    char vn[128] = "", dn[128] = "";
    if (cap)
        buf[0] = '\0';
    if (!d->ids_ok)
        return;
    bool hv = host_names_vendor(n, d->vendor, vn, sizeof(vn));
    bool hd = host_names_device(n, d->vendor, d->device, dn, sizeof(dn));
    if (hv && hd)
        snprintf(buf, cap, "%s %s", vn, dn);
    else if (hv)
        snprintf(buf, cap, "%s", vn);
}

void host_pci_class_name(const struct host_names *n, const struct host_pci_dev *d, char *buf, size_t cap)
{
    if (!d->class_ok) {
        snprintf(buf, cap, "unknown class");
        return;
    }
    if (!host_names_class(n, d->class_code, buf, cap))
        snprintf(buf, cap, "%s", host_class_fallback(d->class_code));
}
