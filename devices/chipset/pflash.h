/* UEFI firmware flash at the top of 4 GiB, as QEMU's pc machine maps OVMF's
 * split images (pflash_cfi01 units 0 and 1):
 *
 *   [4 GiB - code_size, 4 GiB)            CODE: OVMF_CODE_4M.fd, read-only
 *   [4 GiB - code - vars, 4 GiB - code)   VARS: the VM's own copy of
 *                                         OVMF_VARS_4M.fd, a CFI flash with
 *                                         the Intel/Sharp command set, every
 *                                         program/erase written back to the
 *                                         file
 *
 * Where the VARS copy lives: --vars PATH; without it, a VM named NAME uses
 * $XDG_STATE_HOME/minivmm/NAME.vars (default ~/.local/state/minivmm/),
 * created from the template (PFLASH_DEFAULT_VARS_TEMPLATE) the first time,
 * so UEFI variables (boot entries, Secure Boot state) survive restarts
 * while the distribution's template stays pristine.
 *
 * Mapping: the CODE range must be a read-only KVM memory slot (the guest
 * executes from it, and KVM cannot fetch instructions from MMIO);
 * pflash_region() gives its host buffer. Writes to a read-only slot exit as
 * MMIO: the range is also registered on the MMIO bus, which refuses them.
 * VARS is served by the MMIO bus; while it is in read-array mode it could be
 * a read-only slot too (QEMU's "romd" mode) -- cfg.romd_changed, if set, is
 * told when that becomes true or false. */
#ifndef MINIVMM_PFLASH_H
#define MINIVMM_PFLASH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/dev_env.h"

#define PFLASH_DEFAULT_CODE          "/usr/share/OVMF/OVMF_CODE_4M.fd"
#define PFLASH_DEFAULT_VARS_TEMPLATE "/usr/share/OVMF/OVMF_VARS_4M.fd"
#define PFLASH_BLOCK_SIZE            4096   /* erase block (OVMF's PcdOvmfFirmwareBlockSize) */

enum pflash_region { PFLASH_CODE, PFLASH_VARS };

struct pflash_config {
    const char *code_path;          /* --firmware; NULL: PFLASH_DEFAULT_CODE */
    const char *vars_path;          /* --vars, or pflash_default_vars_path() */
    const char *vars_template;      /* copied to vars_path when that is missing;
                                       NULL: PFLASH_DEFAULT_VARS_TEMPLATE */
    /* optional: VARS entered (true) or left (false) read-array mode */
    void (*romd_changed)(void *opaque, bool array_mode);
    void *romd_opaque;
};

struct pflash;

/* Open/copy the images, map them at the top of 4 GiB on env->mmio. Errors
 * are logged naming the file and what to do: -ENOENT (missing firmware:
 * "install the ovmf package or pass --firmware"), -EINVAL (size not a
 * multiple of 4 KiB, or CODE + VARS over 16 MiB), -EACCES/-EROFS (VARS not
 * writable). */
int pflash_create(const struct dev_env *env, const struct pflash_config *cfg, struct pflash **out);
void pflash_destroy(struct pflash *pf);

/* Where a region sits and its host buffer (page-aligned, size a multiple
 * of 4 KiB): for the read-only memory slot of CODE. */
void pflash_region(struct pflash *pf, enum pflash_region r, uint64_t *gpa, uint8_t **hva,
                   uint64_t *size);

/* $XDG_STATE_HOME/minivmm/<name>.vars, or $HOME/.local/state/minivmm/...
 * -EINVAL for a name with '/' or an empty one, -ENAMETOOLONG, -ENOENT when
 * neither variable is set. */
int pflash_default_vars_path(const char *vm_name, char *out, size_t len);

#endif
