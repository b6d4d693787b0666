/* QEMU's firmware configuration device (QEMU docs/specs/fw_cfg.rst), the
 * channel OVMF reads its platform description through: port interface
 * (selector 0x510, data 0x511) and DMA interface (address register 0x514),
 * numbered items and named files with a sorted directory. See fw_cfg.c. */
#ifndef MINIVMM_FW_CFG_H
#define MINIVMM_FW_CFG_H
#include <stdbool.h>
#include <stdint.h>

#include "vmm/dev_env.h"

#define FW_CFG_PORT_SEL     0x510
#define FW_CFG_PORT_DATA    0x511
#define FW_CFG_PORT_DMA     0x514

/* Numbered items (QEMU include/standard-headers/linux/qemu_fw_cfg.h; the
 * same numbers in OvmfPkg/Include/IndustryStandard/QemuFwCfg.h). */
#define FW_CFG_SIGNATURE    0x00
#define FW_CFG_ID           0x01
#define FW_CFG_UUID         0x02
#define FW_CFG_RAM_SIZE     0x03
#define FW_CFG_NOGRAPHIC    0x04
#define FW_CFG_NB_CPUS      0x05
#define FW_CFG_MACHINE_ID   0x06
#define FW_CFG_KERNEL_ADDR  0x07
#define FW_CFG_KERNEL_SIZE  0x08
#define FW_CFG_KERNEL_CMDLINE 0x09
#define FW_CFG_INITRD_ADDR  0x0A
#define FW_CFG_INITRD_SIZE  0x0B
#define FW_CFG_BOOT_DEVICE  0x0C
#define FW_CFG_NUMA         0x0D
#define FW_CFG_BOOT_MENU    0x0E
#define FW_CFG_MAX_CPUS     0x0F
#define FW_CFG_KERNEL_ENTRY 0x10
#define FW_CFG_KERNEL_DATA  0x11
#define FW_CFG_INITRD_DATA  0x12
#define FW_CFG_CMDLINE_ADDR 0x13
#define FW_CFG_CMDLINE_SIZE 0x14
#define FW_CFG_CMDLINE_DATA 0x15
#define FW_CFG_SETUP_ADDR   0x16
#define FW_CFG_SETUP_SIZE   0x17
#define FW_CFG_SETUP_DATA   0x18
#define FW_CFG_FILE_DIR     0x19
#define FW_CFG_FILE_FIRST   0x20
#define FW_CFG_ARCH_LOCAL   0x8000
#define FW_CFG_NUMBERED_MAX 0x20     /* numbered keys below this, both ranges */
#define FW_CFG_MAX_FILES    256
#define FW_CFG_FNAME_SIZE   56       /* including the NUL */

/* FW_CFG_ID feature bits */
#define FW_CFG_F_TRADITIONAL 0x1
#define FW_CFG_F_DMA         0x2

/* FWCfgDmaAccess.control bits */
#define FW_CFG_DMA_ERROR    0x01
#define FW_CFG_DMA_READ     0x02
#define FW_CFG_DMA_SKIP     0x04
#define FW_CFG_DMA_SELECT   0x08
#define FW_CFG_DMA_WRITE    0x10
#define FW_CFG_DMA_SIGNATURE 0x51454d5520434647ULL   /* "QEMU CFG" */

/* Per-item hooks, all optional, called with the device lock held (on a
 * vCPU thread): they must not touch fw_cfg themselves.
 *   select: the guest selected the item; the hook may rewrite the data in
 *           place (the length is fixed once the directory exists), as QEMU
 *           regenerates ACPI tables when firmware first reads them.
 *   written: the guest DMA-wrote [off, off+len) of a writable item.
 *   release: free the data (default: free()). */
struct fw_cfg_item_ops {
    void (*select)(void *opaque, uint8_t *data, uint32_t len);
    void (*written)(void *opaque, uint8_t *data, uint32_t off, uint32_t len);
    void (*release)(void *opaque, uint8_t *data, uint32_t len);
};

struct fw_cfg;

/* Registers the ports (on env->pio) and DMA (guest memory via env->gm),
 * with the signature, ID (traditional + DMA) and file directory items. */
int fw_cfg_create(const struct dev_env *env, struct fw_cfg **out);
void fw_cfg_destroy(struct fw_cfg *fc);

/* A numbered item (key below FW_CFG_NUMBERED_MAX, optionally |
 * FW_CFG_ARCH_LOCAL), data copied. Replaces an existing one. -EINVAL for a
 * key that is not numbered, FW_CFG_SIGNATURE/ID/FILE_DIR, or len 0 with
 * data. */
int fw_cfg_add_bytes(struct fw_cfg *fc, uint16_t key, const void *data, uint32_t len);
int fw_cfg_add_u16(struct fw_cfg *fc, uint16_t key, uint16_t v);   /* little-endian */
int fw_cfg_add_u32(struct fw_cfg *fc, uint16_t key, uint32_t v);
int fw_cfg_add_u64(struct fw_cfg *fc, uint16_t key, uint64_t v);
/* A named file, data copied; the directory stays sorted by name (as
 * QEMU sorts it), so keys are 0x20 + position. -EEXIST for a name already
 * there, -EINVAL for an empty name or one of 56 bytes or more, -ENOSPC
 * past FW_CFG_MAX_FILES. */
int fw_cfg_add_file(struct fw_cfg *fc, const char *name, const void *data, uint32_t len);
/* The general form: data is taken over (released with ops->release, or
 * free() -- also on failure), numbered when name is NULL. Only writable
 * items accept DMA writes. */
int fw_cfg_add_item(struct fw_cfg *fc, uint16_t key, const char *name, uint8_t *data,
                    uint32_t len, bool writable, const struct fw_cfg_item_ops *ops, void *opaque);
/* The selector key of a file, or -ENOENT. */
int fw_cfg_file_key(struct fw_cfg *fc, const char *name);

/* One DMA operation on the FWCfgDmaAccess at gpa, as a write to the
 * address register does (for tests and the fuzzer). */
void fw_cfg_dma(struct fw_cfg *fc, uint64_t gpa);

#endif
