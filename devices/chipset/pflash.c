/* Firmware flash (devices/chipset/pflash.h): CODE read-only, VARS a CFI flash.
 *
 * VARS command set (Intel/Sharp, "Common Flash Interface" JESD68 and Intel
 * application note AP-646; the subset OvmfPkg's QemuFlashFvbServices-
 * RuntimeDxe/QemuFlash.c uses, plus what its probe expects):
 *
 *   first write  second write        then reads give
 *   0xFF / 0x00  -                   array (the flash contents)
 *   0x10 / 0x40  data: program       status; data is stored at the
 *                the bytes written   address of the second write
 *   0x20         0xD0 at the block:  status; the 4 KiB block becomes 0xFF.
 *                erase               Anything but 0xD0: status with the
 *                                    command-sequence error bits (4, 5)
 *   0x50         -                   array; status cleared to 0 (OVMF's
 *                                    probe then reads status 0 after 0x70:
 *                                    "FD behaves as FLASH")
 *   0x60         0x01 / 0xD0         status; block (un)lock accepted, no
 *                                    locking exists
 *   0x70         -                   status
 *   0x90         -                   identifier: offset 0 manufacturer 0x89
 *                                    (Intel), offset 1 device 0x18
 *   0x98         -                   CFI query table (below)
 *   other        -                   array, logged once
 * Status register: bit 7 ready (set after each program/erase), bit 5
 * erase/sequence error, bit 4 program/sequence error. Reads in status
 * mode return it in every byte of the access.
 *
 * Programming stores the data as written (as QEMU's pflash does: the
 * firmware never relies on flash's 1 -> 0 only behaviour). Each program
 * and erase is written to the VARS file at once (pwrite); fdatasync follows
 * when the firmware ends its operation -- the READ_ARRAY command that
 * QemuFlashWrite/EraseBlock end with, or the erase itself -- so a variable
 * update costs one sync, not one per byte, and nothing the firmware
 * considers written is lost.
 *
 * CODE: reads give the image; writes are refused (logged once). */
#include "devices/chipset/pflash.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/bus.h"
#include "vmm/gm.h"
#include "vmm/log.h"

#define PFLASH_MAX_TOTAL   (16u << 20)
#define ST_READY           0x80
#define ST_ERASE_ERR       0x20
#define ST_PROGRAM_ERR     0x10
#define CFI_TABLE_LEN      0x40
#define ID_MANUFACTURER    0x89
#define ID_DEVICE          0x18

enum pflash_mode { MODE_ARRAY, MODE_STATUS, MODE_ID, MODE_CFI };
enum pflash_pending { PEND_NONE, PEND_PROGRAM, PEND_ERASE, PEND_LOCK };

struct pflash_mem {
    uint8_t *buf;
    size_t size;
    uint64_t gpa;
    bool registered;
};

struct pflash {
    struct dev_env env;
    struct pflash_config cfg;
    pthread_mutex_t lock;
    struct pflash_mem code, vars;
    int vars_fd;
    char *vars_path;
    enum pflash_mode mode;
    enum pflash_pending pending;
    uint8_t status;
    bool dirty;                 /* written since the last fdatasync */
    uint8_t cfi[CFI_TABLE_LEN];
};

/* ---- files ---------------------------------------------------------------- */

static int load_image(const char *what, const char *path, int flags, struct pflash_mem *m,
                      int *fd_out)
{
    struct stat st;
    int fd = open(path, flags | O_CLOEXEC);
    int err;

    if (fd < 0) {
        err = -errno;
        if (err == -ENOENT)
            log_err("pflash", "%s '%s' does not exist: install Debian's 'ovmf' package or "
                    "pass %s", what, path, fd_out ? "--vars PATH" : "--firmware PATH");
        else
            log_err("pflash", "cannot open %s '%s'%s: %s", what, path,
                    (flags & O_ACCMODE) == O_RDWR ? " for writing" : "", strerror(-err));
        return err;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0 ||
        st.st_size % PFLASH_BLOCK_SIZE || (uint64_t)st.st_size > PFLASH_MAX_TOTAL) {
        log_err("pflash", "%s '%s' must be a regular file whose size is a non-zero multiple of "
                "%d bytes, at most %u MiB", what, path, PFLASH_BLOCK_SIZE, PFLASH_MAX_TOTAL >> 20);
        close(fd);
        return -EINVAL;
    }
    m->size = (size_t)st.st_size;
    m->buf = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m->buf == MAP_FAILED) {
        m->buf = NULL;
        close(fd);
        return -ENOMEM;
    }
    if (pread(fd, m->buf, m->size, 0) != (ssize_t)m->size) {
        log_err("pflash", "cannot read %s '%s'", what, path);
        close(fd);
        return -EIO;
    }
    if (fd_out)
        *fd_out = fd;
    else
        close(fd);
    return 0;
}

/* Copy template to path (new file, mode 0600), creating path's directory. */
static int copy_template(const char *tmpl, const char *path)
{
    char dir[PATH_MAX];
    char buf[65536];
    int in, out, err = 0;
    ssize_t n;

    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            err = -errno;
            log_err("pflash", "cannot create directory '%s' for the VARS copy: %s", dir,
                    strerror(-err));
            return err;
        }
    }
    in = open(tmpl, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        err = -errno;
        log_err("pflash", "VARS template '%s' cannot be opened (%s): install Debian's 'ovmf' "
                "package or pass --vars PATH", tmpl, strerror(-err));
        return err;
    }
    out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        err = -errno;
        log_err("pflash", "cannot create the VARS copy '%s': %s", path, strerror(-err));
        close(in);
        return err;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            err = -EIO;
            break;
        }
    }
    if (n < 0 || (!err && fsync(out) < 0))
        err = -EIO;
    close(in);
    close(out);
    if (err) {
        log_err("pflash", "copying '%s' to '%s' failed", tmpl, path);
        unlink(path);
    } else {
        log_info("pflash", "created the VM's UEFI variable store '%s' from '%s'", path, tmpl);
    }
    return err;
}

int pflash_default_vars_path(const char *vm_name, char *out, size_t len)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    int n;

    if (!vm_name || !*vm_name || strchr(vm_name, '/'))
        return -EINVAL;
    if (state && *state)
        n = snprintf(out, len, "%s/minivmm/%s.vars", state, vm_name);
    else if (home && *home)
        n = snprintf(out, len, "%s/.local/state/minivmm/%s.vars", home, vm_name);
    else
        return -ENOENT;
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- VARS write-back ------------------------------------------------------ */

static void vars_persist(struct pflash *pf, size_t off, size_t len)
{
    if (pwrite(pf->vars_fd, pf->vars.buf + off, len, (off_t)off) != (ssize_t)len) {
        log_err("pflash", "cannot write UEFI variables to '%s': %s (the guest's change is "
                "kept in memory only)", pf->vars_path, strerror(errno));
        return;
    }
    pf->dirty = true;
}

static void vars_sync(struct pflash *pf)
{
    if (!pf->dirty)
        return;
    if (fdatasync(pf->vars_fd) < 0)
        log_err("pflash", "fdatasync of '%s' failed: %s", pf->vars_path, strerror(errno));
    pf->dirty = false;
}

static void set_mode(struct pflash *pf, enum pflash_mode mode)
{
    bool was = pf->mode == MODE_ARRAY;
    pf->mode = mode;
    if (was != (mode == MODE_ARRAY) && pf->cfg.romd_changed)
        pf->cfg.romd_changed(pf->cfg.romd_opaque, mode == MODE_ARRAY);
}

/* ---- VARS accesses ------------------------------------------------------- */

static int vars_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct pflash *pf = opaque;
    uint8_t *d = data;

    pthread_mutex_lock(&pf->lock);
    for (unsigned i = 0; i < len; i++) {
        uint64_t o = offset + i;
        switch (pf->mode) {
        case MODE_ARRAY:
            d[i] = o < pf->vars.size ? pf->vars.buf[o] : 0xFF;
            break;
        case MODE_STATUS:
            d[i] = pf->status;
            break;
        case MODE_ID:
            d[i] = (o & 0xFF) == 0 ? ID_MANUFACTURER : (o & 0xFF) == 1 ? ID_DEVICE : 0;
            break;
        case MODE_CFI:
            d[i] = (o & 0xFF) < CFI_TABLE_LEN ? pf->cfi[o & 0xFF] : 0;
            break;
        }
    }
    pthread_mutex_unlock(&pf->lock);
    return 0;
}

static int vars_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct pflash *pf = opaque;
    const uint8_t *d = data;
    uint8_t cmd = d[0];

    if (offset >= pf->vars.size || len > pf->vars.size - offset)
        return 0;
    pthread_mutex_lock(&pf->lock);
    switch (pf->pending) {
    case PEND_PROGRAM:
        memcpy(pf->vars.buf + offset, data, len);
        vars_persist(pf, offset, len);
        pf->status |= ST_READY;
        pf->pending = PEND_NONE;
        set_mode(pf, MODE_STATUS);
        goto out;
    case PEND_ERASE:
        pf->pending = PEND_NONE;
        if (cmd == 0xD0) {
            size_t blk = offset & ~(uint64_t)(PFLASH_BLOCK_SIZE - 1);
            memset(pf->vars.buf + blk, 0xFF, PFLASH_BLOCK_SIZE);
            vars_persist(pf, blk, PFLASH_BLOCK_SIZE);
            vars_sync(pf);
            pf->status |= ST_READY;
        } else {
            pf->status |= ST_ERASE_ERR | ST_PROGRAM_ERR | ST_READY;
        }
        set_mode(pf, MODE_STATUS);
        goto out;
    case PEND_LOCK:
        pf->pending = PEND_NONE;
        if (cmd != 0x01 && cmd != 0xD0)
            pf->status |= ST_ERASE_ERR | ST_PROGRAM_ERR;
        pf->status |= ST_READY;
        set_mode(pf, MODE_STATUS);
        goto out;
    case PEND_NONE:
        break;
    }
    switch (cmd) {
    case 0x00:
    case 0xFF:
        vars_sync(pf);
        set_mode(pf, MODE_ARRAY);
        break;
    case 0x10:
    case 0x40:
        pf->pending = PEND_PROGRAM;
        set_mode(pf, MODE_STATUS);
        break;
    case 0x20:
        pf->pending = PEND_ERASE;
        set_mode(pf, MODE_STATUS);
        break;
    case 0x50:
        pf->status = 0;
        set_mode(pf, MODE_ARRAY);
        break;
    case 0x60:
        pf->pending = PEND_LOCK;
        set_mode(pf, MODE_STATUS);
        break;
    case 0x70:
        set_mode(pf, MODE_STATUS);
        break;
    case 0x90:
        set_mode(pf, MODE_ID);
        break;
    case 0x98:
        set_mode(pf, MODE_CFI);
        break;
    default:
        log_guest_once("pflash", "unsupported flash command 0x%02x at VARS offset 0x%" PRIx64
                       ": back to read-array", cmd, offset);
        set_mode(pf, MODE_ARRAY);
        break;
    }
out:
    pthread_mutex_unlock(&pf->lock);
    return 0;
}

static int code_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct pflash *pf = opaque;
    uint8_t *d = data;

    for (unsigned i = 0; i < len; i++)
        d[i] = offset + i < pf->code.size ? pf->code.buf[offset + i] : 0xFF;
    return 0;
}

static int code_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    log_guest_once("pflash", "write to the read-only firmware CODE at offset 0x%" PRIx64
                   " refused", offset);
    return 0;
}

static const struct bus_ops vars_ops = { .read = vars_read, .write = vars_write };
static const struct bus_ops code_ops = { .read = code_read, .write = code_write };

/* CFI query table for a x8 device (JESD68.01 §4; Intel primary extended
 * query "PRI" 1.0) describing VARS: one erase region of 4 KiB blocks. */
static void pflash_fill_cfi(struct pflash *pf)
{
    uint8_t *c = pf->cfi;
    size_t blocks = pf->vars.size / PFLASH_BLOCK_SIZE;
    unsigned log2 = 0;

    while ((1ULL << log2) < pf->vars.size)
        log2++;
    memset(c, 0, CFI_TABLE_LEN);
    c[0x10] = 'Q'; c[0x11] = 'R'; c[0x12] = 'Y';
    c[0x13] = 0x01; c[0x14] = 0x00;     /* primary command set: Intel/Sharp extended */
    c[0x15] = 0x31; c[0x16] = 0x00;     /* primary extended table at 0x31 */
    c[0x1B] = 0x45; c[0x1C] = 0x55;     /* Vcc 4.5-5.5 V */
    c[0x1F] = 0x07;                     /* typical byte program 2^7 us */
    c[0x21] = 0x0A;                     /* typical block erase 2^10 ms */
    c[0x23] = 0x04;                     /* max program 2^4 * typical */
    c[0x25] = 0x04;                     /* max erase 2^4 * typical */
    c[0x27] = (uint8_t)log2;            /* device size 2^n bytes */
    c[0x28] = 0x00; c[0x29] = 0x00;     /* x8 asynchronous interface */
    c[0x2C] = 1;                        /* one erase block region */
    c[0x2D] = (uint8_t)(blocks - 1);
    c[0x2E] = (uint8_t)((blocks - 1) >> 8);
    c[0x2F] = (uint8_t)(PFLASH_BLOCK_SIZE / 256);
    c[0x30] = (uint8_t)((PFLASH_BLOCK_SIZE / 256) >> 8);
    c[0x31] = 'P'; c[0x32] = 'R'; c[0x33] = 'I';
    c[0x34] = '1'; c[0x35] = '0';
}

int pflash_create(const struct dev_env *env, const struct pflash_config *cfg, struct pflash **out)
{
    struct pflash *pf = calloc(1, sizeof(*pf));
    const char *code = cfg->code_path ? cfg->code_path : PFLASH_DEFAULT_CODE;
    const char *tmpl = cfg->vars_template ? cfg->vars_template : PFLASH_DEFAULT_VARS_TEMPLATE;
    int err;

    if (!pf)
        return -ENOMEM;
    pf->env = *env;
    pf->cfg = *cfg;
    pf->vars_fd = -1;
    pthread_mutex_init(&pf->lock, NULL);
    if (!cfg->vars_path) {
        log_err("pflash", "no UEFI variable store given: pass --vars PATH");
        err = -EINVAL;
        goto fail;
    }
    pf->vars_path = strdup(cfg->vars_path);
    if (!pf->vars_path) {
        err = -ENOMEM;
        goto fail;
    }
    err = load_image("firmware CODE", code, O_RDONLY, &pf->code, NULL);
    if (err)
        goto fail;
    if (access(cfg->vars_path, F_OK) < 0 && errno == ENOENT) {
        err = copy_template(tmpl, cfg->vars_path);
        if (err)
            goto fail;
    }
    err = load_image("UEFI variable store", cfg->vars_path, O_RDWR, &pf->vars, &pf->vars_fd);
    if (err)
        goto fail;
    if (pf->code.size + pf->vars.size > PFLASH_MAX_TOTAL) {
        log_err("pflash", "'%s' and '%s' together exceed %u MiB below 4 GiB", code,
                cfg->vars_path, PFLASH_MAX_TOTAL >> 20);
        err = -EINVAL;
        goto fail;
    }
    pf->code.gpa = GM_4G - pf->code.size;
    pf->vars.gpa = pf->code.gpa - pf->vars.size;
    pflash_fill_cfi(pf);
    pf->mode = MODE_ARRAY;
    pf->status = ST_READY;
    err = bus_register(env->mmio, pf->code.gpa, pf->code.size, "pflash-code", &code_ops, pf);
    if (err)
        goto fail;
    pf->code.registered = true;
    err = bus_register(env->mmio, pf->vars.gpa, pf->vars.size, "pflash-vars", &vars_ops, pf);
    if (err)
        goto fail;
    pf->vars.registered = true;
    *out = pf;
    return 0;
fail:
    pflash_destroy(pf);
    return err;
}

void pflash_destroy(struct pflash *pf)
{
    if (!pf)
        return;
    if (pf->vars.registered)
        bus_unregister(pf->env.mmio, pf->vars.gpa);
    if (pf->code.registered)
        bus_unregister(pf->env.mmio, pf->code.gpa);
    if (pf->vars_fd >= 0) {
        vars_sync(pf);
        close(pf->vars_fd);
    }
    if (pf->vars.buf)
        munmap(pf->vars.buf, pf->vars.size);
    if (pf->code.buf)
        munmap(pf->code.buf, pf->code.size);
    free(pf->vars_path);
    pthread_mutex_destroy(&pf->lock);
    free(pf);
}

void pflash_region(struct pflash *pf, enum pflash_region r, uint64_t *gpa, uint8_t **hva,
                   uint64_t *size)
{
    struct pflash_mem *m = r == PFLASH_CODE ? &pf->code : &pf->vars;
    *gpa = m->gpa;
    *hva = m->buf;
    *size = m->size;
}
