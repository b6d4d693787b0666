/* fw_cfg (devices/chipset/fw_cfg.h), x86 I/O port flavour.
 *
 *   port   size  access  register
 *   0x510  2     write   selector (little-endian): bits 13:0 item, bit 15
 *                        architecture-local range; bit 14 (the old write
 *                        flag) is ignored, as QEMU does since 2.4. Selecting
 *                        resets the data offset to 0.
 *   0x511  1     read    data: the next byte of the selected item; 0 past
 *                        its end or for an absent item. Writes ignored
 *                        (writes only through DMA, fw_cfg.rst).
 *   0x514  8     r/w     DMA address, big-endian in port order: bytes
 *                        0x514-0x51B are the address's bytes from most to
 *                        least significant. A 4-byte write at 0x514 sets the
 *                        high half; a 4-byte write at 0x518 sets the low half
 *                        and starts the operation (an 8-byte write at 0x514
 *                        sets both and starts it). Reads give "QEMU CFG", the
 *                        DMA signature, in the same order. The register reads
 *                        back as 0 in no case and is cleared after each
 *                        operation.
 *
 * DMA (fw_cfg.rst, "Guest-side DMA Interface"): the guest writes the
 * address of a FWCfgDmaAccess { be32 control; be32 length; be64 address }
 * in RAM. The structure is read once (a guest racing us on it only fools
 * itself); SELECT (bit 3, key in bits 31:16) selects first, then one of READ
 * (bit 1), WRITE (bit 4, if not READ), SKIP (bit 2, if neither) runs, and
 * control is written back as 0 or ERROR (bit 0).
 *   READ  copies from the item at the data offset into [address, +length),
 *         zero-filling past the item's end (the port rule: reads past the
 *         end give 0); ERROR if the destination is not wholly RAM.
 *   WRITE copies into a writable item; ERROR, nothing written, if the item
 *         is read-only or absent or the write would pass its end, or the
 *         source is not RAM.
 *   SKIP  advances the offset (capped at the item's end).
 * A FWCfgDmaAccess outside RAM is dropped (there is nowhere to write the
 * error), logged once. Guest memory is touched only through gm_ptr /
 * gm_read / gm_write, which refuse anything outside RAM.
 *
 * Item 0x19 (file directory): be32 count, then per file be32 size, be16
 * key, be16 reserved, char name[56], sorted by name. */
#include "devices/chipset/fw_cfg.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bus.h"
#include "vmm/gm.h"
#include "vmm/log.h"

#define FW_CFG_KEY_MASK     0x3FFF
#define FW_CFG_DIR_ENTRY    64
#define DMA_ACCESS_LEN      16

struct fw_cfg_item {
    bool present;
    bool writable;
    uint8_t *data;
    uint32_t len;
    const struct fw_cfg_item_ops *ops;
    void *opaque;
    char name[FW_CFG_FNAME_SIZE];   /* files only */
};

struct fw_cfg {
    struct dev_env env;
    bool sel_registered, dma_registered;
    pthread_mutex_t lock;
    struct fw_cfg_item numbered[2][FW_CFG_NUMBERED_MAX];   /* [arch][key] */
    struct fw_cfg_item files[FW_CFG_MAX_FILES];            /* sorted by name */
    unsigned nr_files;
    struct fw_cfg_item *cur;        /* selected item, NULL if none */
    uint32_t offset;
    uint8_t dma_addr[8];
};

static void put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put_be32(uint8_t *p, uint32_t v) { put_be16(p, (uint16_t)(v >> 16)); put_be16(p + 2, (uint16_t)v); }
static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }

static void fw_cfg_item_release(struct fw_cfg_item *it)
{
    if (!it->present)
        return;
    if (it->ops && it->ops->release)
        it->ops->release(it->opaque, it->data, it->len);
    else
        free(it->data);
    memset(it, 0, sizeof(*it));
}

/* The item a selector value names, or NULL. */
static struct fw_cfg_item *fw_cfg_lookup(struct fw_cfg *fc, uint16_t key)
{
    unsigned arch = (key & FW_CFG_ARCH_LOCAL) ? 1 : 0;
    unsigned idx = key & FW_CFG_KEY_MASK;
    struct fw_cfg_item *it;

    if (idx < FW_CFG_NUMBERED_MAX)
        it = &fc->numbered[arch][idx];
    else if (!arch && idx - FW_CFG_FILE_FIRST < fc->nr_files)
        it = &fc->files[idx - FW_CFG_FILE_FIRST];
    else
        return NULL;
    return it->present ? it : NULL;
}

static void fw_cfg_select(struct fw_cfg *fc, uint16_t key)
{
    fc->cur = fw_cfg_lookup(fc, key);
    fc->offset = 0;
    if (fc->cur && fc->cur->ops && fc->cur->ops->select)
        fc->cur->ops->select(fc->cur->opaque, fc->cur->data, fc->cur->len);
}

/* Rebuild item 0x19 from the files (setup time, lock held). */
static int fw_cfg_rebuild_dir(struct fw_cfg *fc)
{
    uint32_t len = 4 + fc->nr_files * FW_CFG_DIR_ENTRY;
    uint8_t *dir = calloc(1, len);
    struct fw_cfg_item *it = &fc->numbered[0][FW_CFG_FILE_DIR];

    if (!dir)
        return -ENOMEM;
    put_be32(dir, fc->nr_files);
    for (unsigned i = 0; i < fc->nr_files; i++) {
        uint8_t *e = dir + 4 + i * FW_CFG_DIR_ENTRY;
        put_be32(e, fc->files[i].len);
        put_be16(e + 4, (uint16_t)(FW_CFG_FILE_FIRST + i));
        memcpy(e + 8, fc->files[i].name, FW_CFG_FNAME_SIZE);
    }
    fw_cfg_item_release(it);
    *it = (struct fw_cfg_item){ .present = true, .data = dir, .len = len };
    return 0;
}

int fw_cfg_add_item(struct fw_cfg *fc, uint16_t key, const char *name, uint8_t *data,
                    uint32_t len, bool writable, const struct fw_cfg_item_ops *ops, void *opaque)
{
    struct fw_cfg_item item = { .present = true, .writable = writable, .data = data,
                                .len = len, .ops = ops, .opaque = opaque };
    unsigned idx = key & FW_CFG_KEY_MASK, pos;
    int err = 0;

    if (len && !data)
        return -EINVAL;
    pthread_mutex_lock(&fc->lock);
    if (!name) {
        unsigned arch = (key & FW_CFG_ARCH_LOCAL) ? 1 : 0;
        if (idx >= FW_CFG_NUMBERED_MAX || (key & 0x4000) ||
            (!arch && (idx == FW_CFG_SIGNATURE || idx == FW_CFG_ID || idx == FW_CFG_FILE_DIR))) {
            log_err("fw_cfg", "item 0x%x is not a numbered item minivmm can set", key);
            err = -EINVAL;
            goto fail;
        }
        fw_cfg_item_release(&fc->numbered[arch][idx]);
        fc->numbered[arch][idx] = item;
        pthread_mutex_unlock(&fc->lock);
        return 0;
    }
    size_t nl = strlen(name);
    if (nl == 0 || nl >= FW_CFG_FNAME_SIZE) {
        log_err("fw_cfg", "file name '%s' must be 1 to %d characters", name, FW_CFG_FNAME_SIZE - 1);
        err = -EINVAL;
        goto fail;
    }
    if (fc->nr_files == FW_CFG_MAX_FILES) {
        log_err("fw_cfg", "no room for file '%s' (%d files at most)", name, FW_CFG_MAX_FILES);
        err = -ENOSPC;
        goto fail;
    }
    for (pos = 0; pos < fc->nr_files; pos++) {
        int c = strcmp(name, fc->files[pos].name);
        if (c == 0) {
            log_err("fw_cfg", "file '%s' added twice", name);
            err = -EEXIST;
            goto fail;
        }
        if (c < 0)
            break;
    }
    memcpy(item.name, name, nl + 1);
    memmove(&fc->files[pos + 1], &fc->files[pos], (fc->nr_files - pos) * sizeof(fc->files[0]));
    fc->files[pos] = item;
    fc->nr_files++;
    err = fw_cfg_rebuild_dir(fc);
    if (err) {
        memmove(&fc->files[pos], &fc->files[pos + 1], (fc->nr_files - pos - 1) * sizeof(fc->files[0]));
        fc->nr_files--;
        goto fail;
    }
    fc->cur = NULL;     /* keys moved */
    pthread_mutex_unlock(&fc->lock);
    return 0;
fail:
    pthread_mutex_unlock(&fc->lock);
    fw_cfg_item_release(&item);
    return err;
}

static uint8_t *fw_cfg_dup(const void *data, uint32_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (p && len)
        memcpy(p, data, len);
    return p;
}

int fw_cfg_add_bytes(struct fw_cfg *fc, uint16_t key, const void *data, uint32_t len)
{
    uint8_t *p = fw_cfg_dup(data, len);
    if (!p)
        return -ENOMEM;
    return fw_cfg_add_item(fc, key, NULL, p, len, false, NULL, NULL);
}

int fw_cfg_add_u16(struct fw_cfg *fc, uint16_t key, uint16_t v)
{
    uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    return fw_cfg_add_bytes(fc, key, b, 2);
}

int fw_cfg_add_u32(struct fw_cfg *fc, uint16_t key, uint32_t v)
{
    uint8_t b[4];
    for (unsigned i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return fw_cfg_add_bytes(fc, key, b, 4);
}

int fw_cfg_add_u64(struct fw_cfg *fc, uint16_t key, uint64_t v)
{
    uint8_t b[8];
    for (unsigned i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return fw_cfg_add_bytes(fc, key, b, 8);
}

int fw_cfg_add_file(struct fw_cfg *fc, const char *name, const void *data, uint32_t len)
{
    uint8_t *p = fw_cfg_dup(data, len);
    if (!p)
        return -ENOMEM;
    return fw_cfg_add_item(fc, 0, name, p, len, false, NULL, NULL);
}

int fw_cfg_file_key(struct fw_cfg *fc, const char *name)
{
    int key = -ENOENT;

    pthread_mutex_lock(&fc->lock);
    for (unsigned i = 0; i < fc->nr_files; i++)
        if (strcmp(fc->files[i].name, name) == 0)
            key = (int)(FW_CFG_FILE_FIRST + i);
    pthread_mutex_unlock(&fc->lock);
    return key;
}

/* ---- DMA ---------------------------------------------------------------- */

/* One operation; returns the control value to write back. Lock held. */
static uint32_t fw_cfg_dma_op(struct fw_cfg *fc, uint32_t control, uint32_t length, uint64_t addr)
{
    struct fw_cfg_item *it;
    uint32_t avail, n;
    uint8_t *dst;

    if (control & FW_CFG_DMA_SELECT)
        fw_cfg_select(fc, (uint16_t)(control >> 16));
    it = fc->cur;
    avail = it && fc->offset < it->len ? it->len - fc->offset : 0;

    if (control & FW_CFG_DMA_READ) {
        if (length == 0)
            return 0;
        dst = fc->env.gm ? gm_ptr(fc->env.gm, addr, length) : NULL;
        if (!dst) {
            log_guest_once("fw_cfg", "DMA read of %u bytes to 0x%llx: not RAM", length,
                           (unsigned long long)addr);
            return FW_CFG_DMA_ERROR;
        }
        n = length < avail ? length : avail;
        if (n)
            memcpy(dst, it->data + fc->offset, n);
        if (n < length)
            memset(dst + n, 0, length - n);
        fc->offset += n;
        return 0;
    }
    if (control & FW_CFG_DMA_WRITE) {
        if (length == 0)
            return 0;
        if (!it || !it->writable || length > avail) {
            log_guest_once("fw_cfg", "DMA write of %u bytes refused (item read-only, absent, "
                           "or the write passes its end)", length);
            return FW_CFG_DMA_ERROR;
        }
        if (!fc->env.gm || gm_read(fc->env.gm, addr, it->data + fc->offset, length)) {
            log_guest_once("fw_cfg", "DMA write of %u bytes from 0x%llx: not RAM", length,
                           (unsigned long long)addr);
            return FW_CFG_DMA_ERROR;
        }
        if (it->ops && it->ops->written)
            it->ops->written(it->opaque, it->data, fc->offset, length);
        fc->offset += length;
        return 0;
    }
    if (control & FW_CFG_DMA_SKIP)
        fc->offset += length < avail ? length : avail;
    return 0;
}

void fw_cfg_dma(struct fw_cfg *fc, uint64_t gpa)
{
    uint8_t acc[DMA_ACCESS_LEN], st[4];
    uint32_t result;

    if (!fc->env.gm || gm_read(fc->env.gm, gpa, acc, sizeof(acc))) {
        log_guest_once("fw_cfg", "DMA descriptor at 0x%llx is not in RAM: ignored",
                       (unsigned long long)gpa);
        return;
    }
    pthread_mutex_lock(&fc->lock);
    result = fw_cfg_dma_op(fc, get_be32(acc), get_be32(acc + 4), get_be64(acc + 8));
    pthread_mutex_unlock(&fc->lock);
    put_be32(st, result);
    gm_write(fc->env.gm, gpa, st, sizeof(st));   /* the descriptor was RAM a moment ago */
}

/* ---- ports -------------------------------------------------------------- */

static int fw_cfg_sel_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct fw_cfg *fc = opaque;
    uint8_t *d = data;

    memset(data, 0xFF, len);
    if (offset != 1 || len != 1)
        return 0;
    pthread_mutex_lock(&fc->lock);
    if (fc->cur && fc->offset < fc->cur->len)
        d[0] = fc->cur->data[fc->offset++];
    else
        d[0] = 0;
    pthread_mutex_unlock(&fc->lock);
    return 0;
}

static int fw_cfg_sel_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct fw_cfg *fc = opaque;
    const uint8_t *d = data;

    if (offset == 0 && len == 2) {
        pthread_mutex_lock(&fc->lock);
        fw_cfg_select(fc, (uint16_t)(d[0] | d[1] << 8));
        pthread_mutex_unlock(&fc->lock);
    }
    /* data port writes: ignored since QEMU 2.4 (fw_cfg.rst) */
    return 0;
}

static int fw_cfg_dma_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    uint8_t *d = data;

    for (unsigned i = 0; i < len; i++)
        d[i] = offset + i < 8 ? (uint8_t)(FW_CFG_DMA_SIGNATURE >> (8 * (7 - (offset + i)))) : 0xFF;
    return 0;
}

static int fw_cfg_dma_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct fw_cfg *fc = opaque;
    uint64_t addr;
    bool go = false;

    pthread_mutex_lock(&fc->lock);
    if ((offset == 0 && (len == 4 || len == 8)) || (offset == 4 && len == 4)) {
        memcpy(fc->dma_addr + offset, data, len);
        go = offset + len == 8;
    }
    addr = get_be64(fc->dma_addr);
    if (go)
        memset(fc->dma_addr, 0, sizeof(fc->dma_addr));
    pthread_mutex_unlock(&fc->lock);
    if (go)
        fw_cfg_dma(fc, addr);
    return 0;
}

static const struct bus_ops fw_cfg_sel_ops = { .read = fw_cfg_sel_read, .write = fw_cfg_sel_write };
static const struct bus_ops fw_cfg_dma_ops = { .read = fw_cfg_dma_read, .write = fw_cfg_dma_write };

int fw_cfg_create(const struct dev_env *env, struct fw_cfg **out)
{
    struct fw_cfg *fc = calloc(1, sizeof(*fc));
    int err;

    if (!fc)
        return -ENOMEM;
    fc->env = *env;
    pthread_mutex_init(&fc->lock, NULL);
    static const uint8_t sig[4] = { 'Q', 'E', 'M', 'U' };
    static const uint8_t id[4] = { FW_CFG_F_TRADITIONAL | FW_CFG_F_DMA, 0, 0, 0 };
    fc->numbered[0][FW_CFG_SIGNATURE] = (struct fw_cfg_item){ .present = true,
        .data = fw_cfg_dup(sig, 4), .len = 4 };
    fc->numbered[0][FW_CFG_ID] = (struct fw_cfg_item){ .present = true,
        .data = fw_cfg_dup(id, 4), .len = 4 };
    if (!fc->numbered[0][FW_CFG_SIGNATURE].data || !fc->numbered[0][FW_CFG_ID].data ||
        fw_cfg_rebuild_dir(fc)) {
        err = -ENOMEM;
        goto fail;
    }
    err = bus_register(env->pio, FW_CFG_PORT_SEL, 2, "fw_cfg", &fw_cfg_sel_ops, fc);
    if (err)
        goto fail;
    fc->sel_registered = true;
    err = bus_register(env->pio, FW_CFG_PORT_DMA, 8, "fw_cfg-dma", &fw_cfg_dma_ops, fc);
    if (err)
        goto fail;
    fc->dma_registered = true;
    *out = fc;
    return 0;
fail:
    fw_cfg_destroy(fc);
    return err;
}

void fw_cfg_destroy(struct fw_cfg *fc)
{
    if (!fc)
        return;
    if (fc->dma_registered)
        bus_unregister(fc->env.pio, FW_CFG_PORT_DMA);
    if (fc->sel_registered)
        bus_unregister(fc->env.pio, FW_CFG_PORT_SEL);
    for (unsigned a = 0; a < 2; a++)
        for (unsigned i = 0; i < FW_CFG_NUMBERED_MAX; i++)
            fw_cfg_item_release(&fc->numbered[a][i]);
    for (unsigned i = 0; i < fc->nr_files; i++)
        fw_cfg_item_release(&fc->files[i]);
    pthread_mutex_destroy(&fc->lock);
    free(fc);
}
