/* Direct Linux boot through the 64-bit entry of the x86 boot protocol
 * (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol", protocol 2.12+).
 *
 * Guest memory at the hand-off (all below the 640 KiB mark unless said):
 *
 *   0x00500  GDT: null, null, code64 (selector 0x10), data (0x18)
 *   0x07000  boot_params ("zero page"), 4 KiB
 *   0x08ff0  initial stack (the decompressor sets its own at once)
 *   0x09000  PML4, 0x0A000 PDPT, 0x0B000-0x0EFFF four page directories:
 *            the first 4 GiB identity-mapped with 2 MiB pages
 *   0x20000  kernel command line, at most LINUX_CMDLINE_MAX bytes
 *   1 MiB    the protected-mode kernel (syssize * 16 bytes of the file
 *            after the (setup_sects + 1) * 512 bytes of real-mode setup)
 *   top      the initrd: highest 4 KiB-aligned place below
 *            min(initrd_addr_max + 1, lowmem), above the kernel's footprint
 *
 * The kernel's footprint: loaded at 1 MiB, the kernel decompresses at
 * pref_address or, if relocatable, at the load address rounded up to
 * kernel_alignment when that is higher, and needs init_size bytes from
 * there; everything from the load address to that end is kept free.
 *
 * boot_params offsets used (boot.rst "The zero page" and the setup header):
 *   0x070 acpi_rsdp_addr (2.14+)   0x0C0 ext_ramdisk_image   0x0C4 ext_ramdisk_size
 *   0x0C8 ext_cmd_line_ptr   0x1E8 e820_entries   0x1F1 setup header
 *   0x2D0 e820_table[128] (20 bytes each)
 * Setup header (offsets in the file and in boot_params alike):
 *   0x1F1 setup_sects  0x1F4 syssize  0x1FE boot_flag 0xAA55  0x201 jump
 *   0x202 "HdrS"  0x206 version  0x210 type_of_loader  0x211 loadflags
 *   0x218 ramdisk_image  0x21C ramdisk_size  0x224 heap_end_ptr
 *   0x228 cmd_line_ptr  0x22C initrd_addr_max  0x230 kernel_alignment
 *   0x234 relocatable_kernel  0x236 xloadflags  0x238 cmdline_size
 *   0x23C hardware_subarch  0x250 setup_data  0x258 pref_address
 *   0x260 init_size
 * The header runs from 0x1F1 to 0x202 + the byte at 0x201 (boot.rst); it is
 * copied from the image as is, then the loader's fields are filled in.
 *
 * Every length in the file is checked against the file before use: a
 * truncated or hostile image gives -ENOEXEC and a message naming the file. */
#include "boot/linux.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/log.h"

#define BP_SIZE              4096
#define BP_ACPI_RSDP_ADDR    0x070
#define BP_EXT_RAMDISK_IMAGE 0x0C0
#define BP_EXT_RAMDISK_SIZE  0x0C4
#define BP_EXT_CMD_LINE_PTR  0x0C8
#define BP_E820_ENTRIES      0x1E8
#define BP_HDR               0x1F1
#define BP_HDR_MAX_END       0x290   /* struct boot_params: edd_mbr_sig_buffer follows */
#define BP_E820_TABLE        0x2D0
#define BP_E820_MAX          128

#define HDR_SETUP_SECTS      0x1F1
#define HDR_SYSSIZE          0x1F4
#define HDR_BOOT_FLAG        0x1FE
#define HDR_JUMP_LEN         0x201
#define HDR_MAGIC            0x202
#define HDR_VERSION          0x206
#define HDR_TYPE_OF_LOADER   0x210
#define HDR_LOADFLAGS        0x211
#define HDR_RAMDISK_IMAGE    0x218
#define HDR_RAMDISK_SIZE     0x21C
#define HDR_HEAP_END_PTR     0x224
#define HDR_CMD_LINE_PTR     0x228
#define HDR_INITRD_ADDR_MAX  0x22C
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE      0x234
#define HDR_XLOADFLAGS       0x236
#define HDR_CMDLINE_SIZE     0x238
#define HDR_HARDWARE_SUBARCH 0x23C
#define HDR_SETUP_DATA       0x250
#define HDR_PREF_ADDRESS     0x258
#define HDR_INIT_SIZE        0x260
#define HDR_MIN_LEN          0x264   /* through init_size: protocol 2.10+ */

#define LOADED_HIGH          0x01
#define CAN_USE_HEAP         0x80
#define XLF_KERNEL_64        0x0001
#define PROTOCOL_MIN         0x020C  /* 2.12: xloadflags, 64-bit entry */
#define PROTOCOL_RSDP        0x020E  /* 2.14: acpi_rsdp_addr */
#define LOADER_UNDEFINED     0xFF
#define HEAP_END             0xFE00

#define KERNEL_LOAD_ADDR     0x100000ULL
#define STACK_TOP            0x8FF0ULL
#define INITRD_ALIGN         0x1000ULL

#define PT_P   0x1ULL
#define PT_RW  0x2ULL
#define PT_PS  0x80ULL

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }
static void set16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void set32(uint8_t *p, uint32_t v) { set16(p, (uint16_t)v); set16(p + 2, (uint16_t)(v >> 16)); }
static void set64(uint8_t *p, uint64_t v) { set32(p, (uint32_t)v); set32(p + 4, (uint32_t)(v >> 32)); }

static unsigned setup_sects_of(const uint8_t *buf)
{
    return buf[HDR_SETUP_SECTS] ? buf[HDR_SETUP_SECTS] : 4;   /* 0 means 4 */
}

/* What is wrong with the header in buf[0, len), or NULL. */
static const char *linux_header_problem(const uint8_t *buf, size_t len)
{
    if (len < HDR_MIN_LEN)
        return "too short to hold a setup header";
    if (get16(buf + HDR_BOOT_FLAG) != 0xAA55)
        return "no boot flag 0xAA55 at 0x1FE: not a bzImage";
    if (memcmp(buf + HDR_MAGIC, "HdrS", 4) != 0)
        return "no \"HdrS\" at 0x202: not a bzImage";
    if (get16(buf + HDR_VERSION) < PROTOCOL_MIN)
        return "boot protocol older than 2.12 (no 64-bit entry)";
    if (!(buf[HDR_LOADFLAGS] & LOADED_HIGH))
        return "a zImage (not loaded high); only bzImages are supported";
    if (!(get16(buf + HDR_XLOADFLAGS) & XLF_KERNEL_64))
        return "no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)";
    if (get32(buf + HDR_SYSSIZE) == 0)
        return "syssize is 0";
    if ((size_t)HDR_MAGIC + buf[HDR_JUMP_LEN] < HDR_MIN_LEN)
        return "setup header shorter than protocol 2.12's";
    if (buf[HDR_RELOCATABLE]) {
        uint32_t align = get32(buf + HDR_KERNEL_ALIGNMENT);
        if (align == 0 || (align & (align - 1)))
            return "kernel_alignment is not a power of two";
    }
    return NULL;
}

int linux_check_header(const uint8_t *buf, size_t len)
{
    return linux_header_problem(buf, len) ? -ENOEXEC : 0;
}

/* Read exactly len bytes at off; -EIO (logged) on a short read. */
static int read_exact(int fd, const char *what, const char *path, uint64_t off, void *dst, size_t len)
{
    uint8_t *p = dst;

    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_err("linux", "%s %s: read failed at offset %llu: %s", what, path,
                    (unsigned long long)off, n < 0 ? strerror(errno) : "unexpected end of file");
            return -EIO;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int open_file(const char *what, const char *path, uint64_t *size)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        int err = errno;
        log_err("linux", "cannot open %s %s: %s", what, path, strerror(err));
        return -err;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_err("linux", "%s %s is not a regular file", what, path);
        close(fd);
        return -EIO;
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

struct linux_kernel {
    uint64_t file_size;
    uint64_t setup_size;      /* real-mode part, not loaded */
    uint64_t load_size;       /* syssize * 16 */
    uint64_t footprint_end;   /* first byte free above the kernel */
    uint16_t version;
};

static int linux_load_kernel(struct gm *gm, const char *path, uint8_t *setup_buf,
                             struct linux_kernel *k)
{
    uint64_t hdr_len, init_size, pref, run_at;
    const char *why;
    void *dst;
    int fd, err;

    fd = open_file("kernel", path, &k->file_size);
    if (fd < 0)
        return fd;
    /* The setup header first: it sits in the first 1 KiB. */
    hdr_len = k->file_size < 1024 ? k->file_size : 1024;
    memset(setup_buf, 0, 1024);
    err = read_exact(fd, "kernel", path, 0, setup_buf, hdr_len);
    if (err)
        goto out;
    why = linux_header_problem(setup_buf, hdr_len);
    if (why) {
        log_err("linux", "kernel %s: %s", path, why);
        err = -ENOEXEC;
        goto out;
    }
    k->version = get16(setup_buf + HDR_VERSION);
    k->setup_size = (uint64_t)(setup_sects_of(setup_buf) + 1) * 512;
    k->load_size = (uint64_t)get32(setup_buf + HDR_SYSSIZE) * 16;
    if (k->setup_size > k->file_size || k->load_size > k->file_size - k->setup_size) {
        log_err("linux", "kernel %s is truncated: %llu bytes, the header announces %llu",
                path, (unsigned long long)k->file_size,
                (unsigned long long)(k->setup_size + k->load_size));
        err = -ENOEXEC;
        goto out;
    }

    init_size = get32(setup_buf + HDR_INIT_SIZE);
    if (init_size < k->load_size)
        init_size = k->load_size;
    /* Where the decompressor will run (arch/x86/boot/compressed/head_64.S
     * does the same): pref_address (its LOAD_PHYSICAL_ADDR), or for a
     * relocatable kernel the load address rounded up to kernel_alignment
     * if that is higher. */
    pref = get64(setup_buf + HDR_PREF_ADDRESS);
    run_at = pref > KERNEL_LOAD_ADDR ? pref : KERNEL_LOAD_ADDR;
    if (setup_buf[HDR_RELOCATABLE]) {
        uint64_t align = get32(setup_buf + HDR_KERNEL_ALIGNMENT);
        uint64_t aligned = (KERNEL_LOAD_ADDR + align - 1) & ~(align - 1);
        if (aligned > run_at)
            run_at = aligned;
    }
    if (run_at > gm_lowmem(gm) || init_size > gm_lowmem(gm) - run_at) {
        log_err("linux", "kernel %s needs RAM up to 0x%llx (init_size 0x%llx from 0x%llx) "
                "but RAM below 4 GiB ends at 0x%llx: give more --memory", path,
                (unsigned long long)(run_at + init_size), (unsigned long long)init_size,
                (unsigned long long)run_at, (unsigned long long)gm_lowmem(gm));
        err = -ENOSPC;
        goto out;
    }
    k->footprint_end = run_at + init_size;

    dst = gm_ptr(gm, KERNEL_LOAD_ADDR, k->load_size);
    if (!dst) {
        log_err("linux", "kernel %s (%llu bytes) does not fit in RAM at 0x%llx", path,
                (unsigned long long)k->load_size, KERNEL_LOAD_ADDR);
        err = -ENOSPC;
        goto out;
    }
    /* Straight from the file into guest memory: no bounce copy. */
    err = read_exact(fd, "kernel", path, k->setup_size, dst, k->load_size);
out:
    close(fd);
    return err;
}

static int linux_load_initrd(struct gm *gm, const char *path, const uint8_t *hdr,
                             uint64_t kernel_end, uint64_t *addr, uint64_t *size)
{
    uint64_t limit = (uint64_t)get32(hdr + HDR_INITRD_ADDR_MAX) + 1;
    void *dst;
    int fd, err;

    fd = open_file("initrd", path, size);
    if (fd < 0)
        return fd;
    if (limit > gm_lowmem(gm))
        limit = gm_lowmem(gm);
    if (*size == 0) {
        log_warn("linux", "initrd %s is empty; booting without one", path);
        *addr = 0;
        close(fd);
        return 0;
    }
    if (*size > UINT32_MAX || *size > limit || ((limit - *size) & ~(INITRD_ALIGN - 1)) < kernel_end) {
        log_err("linux", "initrd %s (%llu bytes) does not fit between the kernel (ends at 0x%llx) "
                "and 0x%llx: give more --memory", path, (unsigned long long)*size,
                (unsigned long long)kernel_end, (unsigned long long)limit);
        close(fd);
        return -ENOSPC;
    }
    *addr = (limit - *size) & ~(INITRD_ALIGN - 1);
    dst = gm_ptr(gm, *addr, *size);
    if (!dst) {
        log_err("linux", "initrd %s: 0x%llx+%llu is not RAM", path,
                (unsigned long long)*addr, (unsigned long long)*size);
        close(fd);
        return -ENOSPC;
    }
    err = read_exact(fd, "initrd", path, 0, dst, *size);
    close(fd);
    return err;
}

/* Identity map of [0, 4 GiB) with 2 MiB pages: PML4 -> PDPT -> 4 PDs. */
static int linux_write_page_tables(struct gm *gm)
{
    uint8_t pt[6 * 4096];
    const uint64_t pml4 = LINUX_PGTABLE_GPA, pdpt = pml4 + 0x1000, pd0 = pml4 + 0x2000;

    memset(pt, 0, sizeof(pt));
    set64(pt, pdpt | PT_P | PT_RW);
    for (unsigned i = 0; i < 4; i++) {
        set64(pt + 0x1000 + 8 * i, (pd0 + 0x1000 * i) | PT_P | PT_RW);
        for (unsigned j = 0; j < 512; j++) {
            uint64_t va = ((uint64_t)i << 30) | ((uint64_t)j << 21);
            set64(pt + 0x2000 + 0x1000 * i + 8 * j, va | PT_P | PT_RW | PT_PS);
        }
    }
    return gm_write(gm, pml4, pt, sizeof(pt));
}

static int linux_write_gdt(struct gm *gm)
{
    /* Flat 4 GiB segments (Intel SDM vol. 3A §3.4.5): code64 is
     * present, DPL 0, execute/read, accessed, L=1, G=1; data is
     * read/write, accessed, D/B=1, G=1. */
    uint8_t gdt[32];
    memset(gdt, 0, sizeof(gdt));
    set64(gdt + 0x10, 0x00AF9B000000FFFFULL);
    set64(gdt + 0x18, 0x00CF93000000FFFFULL);
    return gm_write(gm, LINUX_GDT_GPA, gdt, sizeof(gdt));
}

int linux_load(struct gm *gm, const struct linux_boot_config *cfg, struct x86_boot_state *out)
{
    uint8_t *bp = NULL, setup_buf[1024];
    struct linux_kernel k;
    uint64_t initrd_addr = 0, initrd_size = 0, hdr_end;
    const char *cmdline = cfg->cmdline ? cfg->cmdline : "";
    size_t cmdline_len = strlen(cmdline);
    uint32_t cmdline_max;
    int err;

    if (!cfg->kernel) {
        log_err("linux", "no kernel given (--kernel bzImage)");
        return -EINVAL;
    }
    if (cfg->nr_e820 > BP_E820_MAX || (cfg->nr_e820 && !cfg->e820)) {
        log_err("linux", "memory map of %u entries (boot_params holds %d)", cfg->nr_e820, BP_E820_MAX);
        return -EINVAL;
    }
    err = linux_load_kernel(gm, cfg->kernel, setup_buf, &k);
    if (err)
        return err;

    cmdline_max = get32(setup_buf + HDR_CMDLINE_SIZE);   /* without the NUL */
    if (cmdline_max > LINUX_CMDLINE_MAX - 1)
        cmdline_max = LINUX_CMDLINE_MAX - 1;
    if (cmdline_len > cmdline_max) {
        log_err("linux", "--cmdline is %zu bytes; kernel %s takes at most %u", cmdline_len,
                cfg->kernel, cmdline_max);
        return -EINVAL;
    }
    err = gm_write(gm, LINUX_CMDLINE_GPA, cmdline, cmdline_len + 1);
    if (err)
        goto no_low_ram;

    if (cfg->initrd) {
        err = linux_load_initrd(gm, cfg->initrd, setup_buf, k.footprint_end, &initrd_addr, &initrd_size);
        if (err)
            return err;
    }

    bp = calloc(1, BP_SIZE);
    if (!bp)
        return -ENOMEM;
    /* The setup header as the image has it, then the loader's part. */
    hdr_end = (uint64_t)HDR_MAGIC + setup_buf[HDR_JUMP_LEN];
    if (hdr_end > BP_HDR_MAX_END)
        hdr_end = BP_HDR_MAX_END;
    memcpy(bp + BP_HDR, setup_buf + BP_HDR, hdr_end - BP_HDR);
    bp[HDR_TYPE_OF_LOADER] = LOADER_UNDEFINED;
    bp[HDR_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
    set16(bp + HDR_HEAP_END_PTR, HEAP_END);
    set32(bp + HDR_CMD_LINE_PTR, LINUX_CMDLINE_GPA);
    set32(bp + BP_EXT_CMD_LINE_PTR, 0);
    set32(bp + HDR_RAMDISK_IMAGE, (uint32_t)initrd_addr);
    set32(bp + HDR_RAMDISK_SIZE, (uint32_t)initrd_size);
    set32(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(initrd_addr >> 32));
    set32(bp + BP_EXT_RAMDISK_SIZE, (uint32_t)(initrd_size >> 32));
    set32(bp + HDR_HARDWARE_SUBARCH, 0);     /* a PC */
    set64(bp + HDR_SETUP_DATA, 0);           /* no setup_data chain */
    if (cfg->rsdp && k.version >= PROTOCOL_RSDP)
        set64(bp + BP_ACPI_RSDP_ADDR, cfg->rsdp);
    bp[BP_E820_ENTRIES] = (uint8_t)cfg->nr_e820;
    for (unsigned i = 0; i < cfg->nr_e820; i++) {
        uint8_t *e = bp + BP_E820_TABLE + 20 * i;
        set64(e, cfg->e820[i].addr);
        set64(e + 8, cfg->e820[i].size);
        set32(e + 16, cfg->e820[i].type);
    }
    err = gm_write(gm, LINUX_BOOT_PARAMS, bp, BP_SIZE);
    free(bp);
    if (err)
        goto no_low_ram;
    err = linux_write_page_tables(gm);
    if (err)
        goto no_low_ram;
    err = linux_write_gdt(gm);
    if (err)
        goto no_low_ram;

    memset(out, 0, sizeof(*out));
    out->long_mode = true;
    out->rip = KERNEL_LOAD_ADDR + 0x200;     /* startup_64 */
    out->rsi = LINUX_BOOT_PARAMS;
    out->rsp = STACK_TOP;
    out->rflags = 0x2;                       /* reserved bit 1; interrupts off */
    out->cr3 = LINUX_PGTABLE_GPA;
    out->gdt_base = LINUX_GDT_GPA;
    out->gdt_limit = 4 * 8 - 1;
    log_debug("linux", "kernel %s: protocol %u.%02u, %llu bytes at 0x%llx, initrd %llu bytes at 0x%llx",
              cfg->kernel, k.version >> 8, k.version & 0xFF, (unsigned long long)k.load_size,
              KERNEL_LOAD_ADDR, (unsigned long long)initrd_size, (unsigned long long)initrd_addr);
    return 0;

no_low_ram:
    log_err("linux", "the boot structures below 1 MiB are not in RAM");
    return -ENOSPC;
}
