/* libFuzzer target: the bzImage parser and loader on hostile files.
 *
 * Two modes, by the top bit of the first input byte:
 *   raw:      the rest of the input is the kernel file, except that a share
 *             of it (first byte, bits 0-6) becomes the initrd;
 *   template: a well-formed synthetic bzImage whose setup header (0x1F1 on)
 *             is overwritten by the input, then truncated by (bits 0-5) * 64
 *             bytes; bit 6 adds a small initrd. This reaches the size and
 *             placement checks that random bytes rarely get past the magic for.
 * Files are memfds that linux_load() opens by path, loaded into a 64 MiB
 * guest memory; linux_check_header() also sees the raw bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "boot/linux.h"
#include "vmm/gm.h"
#include "vmm/log.h"

#define TPL_SETUP   (5 * 512)
#define TPL_PAYLOAD 4096
#define TPL_LEN     (TPL_SETUP + TPL_PAYLOAD)

static struct gm fuzz_gm;
static int kfd = -1, ifd = -1;
static char kpath[64], ipath[64];
static uint8_t tpl[TPL_LEN];

static void fill(int fd, const uint8_t *p, size_t n)
{
    if (ftruncate(fd, 0) != 0 || (n && pwrite(fd, p, n, 0) != (ssize_t)n))
        abort();
}

static void put(size_t off, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        tpl[off + i] = (uint8_t)(v >> (8 * i));
}

static void make_template(void)
{
    memset(tpl, 0x90, sizeof(tpl));
    memset(tpl, 0, TPL_SETUP);
    put(0x1F1, 4, 1);                       /* setup_sects */
    put(0x1F4, TPL_PAYLOAD / 16, 4);        /* syssize */
    put(0x1FE, 0xAA55, 2);
    put(0x200, 0x6AEB, 2);                  /* jump; header ends at 0x26C */
    memcpy(tpl + 0x202, "HdrS", 4);
    put(0x206, 0x020F, 2);
    put(0x211, 0x01, 1);                    /* LOADED_HIGH */
    put(0x22C, 0x7FFFFFFF, 4);
    put(0x230, 0x200000, 4);
    put(0x234, 1, 1);
    put(0x236, 0x7F, 2);
    put(0x238, 2047, 4);
    put(0x258, 0x1000000, 8);
    put(0x260, 0x400000, 4);
}

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct e820_entry e820[3] = {
        { 0, 0x9FC00, E820_RAM }, { 0x9FC00, 0x60400, E820_RESERVED },
        { 0x100000, 63 << 20, E820_RAM },
    };
    static uint8_t file[TPL_LEN];
    struct x86_boot_state st;
    bool with_initrd;
    int rc;

    if (kfd < 0) {
        struct gm_config c = { .size = 64 << 20 };
        log_set_level(LOG_ERR);
        if (gm_init(&fuzz_gm, &c) != 0)
            abort();
        kfd = memfd_create("bzimage", MFD_CLOEXEC);
        ifd = memfd_create("initrd", MFD_CLOEXEC);
        if (kfd < 0 || ifd < 0)
            abort();
        snprintf(kpath, sizeof(kpath), "/proc/self/fd/%d", kfd);
        snprintf(ipath, sizeof(ipath), "/proc/self/fd/%d", ifd);
        make_template();
    }
    rc = linux_check_header(data, size);
    if (rc != 0 && rc != -ENOEXEC)
        abort();
    if (size == 0)
        return 0;

    if (data[0] & 0x80) {
        size_t n = size - 1 < 0x80 ? size - 1 : 0x80;
        size_t cut = (size_t)(data[0] & 0x3F) * 64;
        memcpy(file, tpl, TPL_LEN);
        memcpy(file + 0x1F1, data + 1, n);
        rc = linux_check_header(file, TPL_LEN);
        if (rc != 0 && rc != -ENOEXEC)
            abort();
        fill(kfd, file, TPL_LEN - cut);
        with_initrd = data[0] & 0x40;
        fill(ifd, data + 1, size - 1);
    } else {
        size_t split = size - (size - 1) * (data[0] & 0x7F) / 128;
        fill(kfd, data + 1, split - 1);
        fill(ifd, data + split, size - split);
        with_initrd = (data[0] & 0x7F) != 0;
    }

    struct linux_boot_config cfg = {
        .kernel = kpath, .initrd = with_initrd ? ipath : NULL,
        .cmdline = "console=ttyS0", .rsdp = 0xE0000, .e820 = e820, .nr_e820 = 3,
    };
    rc = linux_load(&fuzz_gm, &cfg, &st);
    if (rc == 0 && (st.rip != 0x100200 || st.rsi != LINUX_BOOT_PARAMS || !st.long_mode))
        abort();
    if (rc != 0 && rc != -ENOEXEC && rc != -ENOSPC && rc != -EINVAL && rc != -EIO)
        abort();
    return 0;
}
