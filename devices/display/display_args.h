/* The --display flag, parsed here so frontend/cli.c only forwards it:
 *
 *   --display std     an emulated bochs-display (QEMU's -device
 *                     bochs-display: PCI 1234:1111, class 03.80.00) at
 *                     00:01.0, which OVMF's QemuVideoDxe drives and exposes
 *                     as UEFI GOP (devices/display/bochs_display.h)
 *   --display none    no display (the default)
 *
 * The default stays none for now: with nothing yet to show the framebuffer
 * (the VNC server is the next increment), an extra PCI function would only
 * change what existing guests see. Once VNC exists and the lab has shown
 * OVMF on it, std becomes the default (issue 21). Given once. */
#ifndef MINIVMM_DISPLAY_ARGS_H
#define MINIVMM_DISPLAY_ARGS_H
#include <stdbool.h>
#include <stddef.h>

enum display_kind { DISPLAY_NONE = 0, DISPLAY_STD };

struct display_args {
    enum display_kind kind;
    bool given;                 /* --display seen (it may be given once) */
};

extern const char display_args_usage[];

/* One --display value. 0, or -EINVAL with a message naming the flag, the
 * value and the choices in err. */
int display_arg_parse(const char *value, enum display_kind *out, char *err, unsigned errlen);
bool display_args_flag(const char *name, size_t namelen, bool *takes_value);
int display_args_apply(struct display_args *a, const char *name, size_t namelen,
                       const char *value, char *err, unsigned errlen);

#endif
