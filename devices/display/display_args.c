/* The --display flag: see devices/display/display_args.h. */
#include "devices/display/display_args.h"

#include <string.h>

#include "vmm/arg.h"

const char display_args_usage[] =
    "display:\n"
    "  --display std|none       std: an emulated bochs-display (QEMU's stdvga without\n"
    "                           VGA ports) that OVMF shows as UEFI GOP; none (the\n"
    "                           default for now): no display\n";

int display_arg_parse(const char *value, enum display_kind *out, char *err, unsigned errlen)
{
    if (value && !strcmp(value, "std"))
        *out = DISPLAY_STD;
    else if (value && !strcmp(value, "none"))
        *out = DISPLAY_NONE;
    else
        return arg_fail(err, errlen, "--display %s: unknown display; give std or none",
                        value ? value : "");
    return 0;
}

bool display_args_flag(const char *name, size_t namelen, bool *takes_value)
{
    if (arg_key_is(name, namelen, "--display")) {
        *takes_value = true;
        return true;
    }
    return false;
}

int display_args_apply(struct display_args *a, const char *name, size_t namelen,
                       const char *value, char *err, unsigned errlen)
{
    bool tv;
    enum display_kind k;

    if (!display_args_flag(name, namelen, &tv))
        return arg_fail(err, errlen, "%.*s: not a display flag", (int)namelen, name);
    int r = display_arg_parse(value, &k, err, errlen);
    if (r)
        return r;
    if (a->given)
        return arg_fail(err, errlen, "--display %s: --display was already given; give it once",
                        value);
    a->kind = k;
    a->given = true;
    return 0;
}
