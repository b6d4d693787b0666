/* Direct Linux boot: a synthetic bzImage built here, loaded into a real
 * guest memory; every field checked at the offset the x86 boot protocol
 * (Documentation/arch/x86/boot.rst) gives it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boot/linux.h"

#define MiB (1ULL << 20)
#define SETUP_SECTS 4
#define SETUP_SIZE ((SETUP_SECTS + 1) * 512)
#define PAYLOAD (64 * 1024)
#define INIT_SIZE (4 * MiB)

static uint8_t img[SETUP_SIZE + PAYLOAD + 100];
static size_t img_len;
static struct gm lgm;
static char kpath[64], ipath[64];

static void p16(size_t off, uint16_t v) { img[off] = (uint8_t)v; img[off + 1] = (uint8_t)(v >> 8); }
static void p32(size_t off, uint32_t v) { p16(off, (uint16_t)v); p16(off + 2, (uint16_t)(v >> 16)); }
static void p64(size_t off, uint64_t v) { p32(off, (uint32_t)v); p32(off + 4, (uint32_t)(v >> 32)); }
static uint16_t g16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t g32(const uint8_t *p) { return g16(p) | (uint32_t)g16(p + 2) << 16; }
static uint64_t g64(const uint8_t *p) { return g32(p) | (uint64_t)g32(p + 4) << 32; }

/* A bzImage as a 6.x kernel lays it out, with a recognisable payload. */
static void make_image(void)
{
    memset(img, 0, sizeof(img));
    for (size_t i = SETUP_SIZE; i < sizeof(img); i++)
        img[i] = (uint8_t)(i * 13 + 7);
    img[0x1F1] = SETUP_SECTS;
    p16(0x1F2, 1);                  /* root_flags */
    p32(0x1F4, PAYLOAD / 16);       /* syssize */
    p16(0x1FA, 0xFFFF);             /* vid_mode */
    p16(0x1FE, 0xAA55);
    img[0x200] = 0xEB;
    img[0x201] = 0x6A;              /* header ends at 0x26C */
    memcpy(img + 0x202, "HdrS", 4);
    p16(0x206, 0x020F);
    img[0x211] = 0x01;              /* LOADED_HIGH */
    p32(0x214, 0x100000);
    p32(0x22C, 0x7FFFFFFF);         /* initrd_addr_max */
    p32(0x230, 0x200000);           /* kernel_alignment */
    img[0x234] = 1;                 /* relocatable */
    img[0x235] = 21;
    p16(0x236, 0x7F);               /* xloadflags */
    p32(0x238, 2047);               /* cmdline_size */
    p64(0x258, 0x1000000);          /* pref_address */
    p32(0x260, INIT_SIZE);
    p32(0x264, 0x190);              /* handover_offset */
    p32(0x268, 0x12345);            /* kernel_info_offset: past the copied header? no: inside */
    img[0x270] = 0xEE;              /* beyond the header: must not be copied */
    img_len = SETUP_SIZE + PAYLOAD + 100;   /* trailing bytes (a signature) */
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void linux_setup(void)
{
    struct gm_config c = { .size = 64 * MiB };
    cr_assert_eq(gm_init(&lgm, &c), 0);
    make_image();
    snprintf(kpath, sizeof(kpath), "/tmp/minivmm-bz-%d", getpid());
    snprintf(ipath, sizeof(ipath), "/tmp/minivmm-rd-%d", getpid());
    write_file(kpath, img, img_len);
}

static void linux_teardown(void)
{
    unlink(kpath);
    unlink(ipath);
    gm_fini(&lgm);
}

static const struct e820_entry test_e820[3] = {
    { 0, 0x9FC00, E820_RAM }, { 0x9FC00, 0x60400, E820_RESERVED }, { 0x100000, 63 * MiB, E820_RAM },
};

static int load(const char *initrd, const char *cmdline, struct x86_boot_state *st)
{
    struct linux_boot_config cfg = {
        .kernel = kpath, .initrd = initrd, .cmdline = cmdline, .rsdp = 0xE0000,
        .e820 = test_e820, .nr_e820 = 3,
    };
    return linux_load(&lgm, &cfg, st);
}

static const uint8_t *guest(uint64_t gpa, uint64_t len)
{
    const uint8_t *p = gm_ptr(&lgm, gpa, len);
    cr_assert_not_null(p);
    return p;
}

TestSuite(linux_boot, .init = linux_setup, .fini = linux_teardown);

Test(linux_boot, boot_params_layout)
{
    struct x86_boot_state st;
    cr_assert_eq(load(NULL, "console=ttyS0 quiet", &st), 0);
    const uint8_t *bp = guest(LINUX_BOOT_PARAMS, 4096);

    /* header copied at the same offsets */
    cr_assert_eq(bp[0x1F1], SETUP_SECTS);
    cr_assert_eq(g32(bp + 0x1F4), PAYLOAD / 16);
    cr_assert_eq(g16(bp + 0x1FA), 0xFFFF);
    cr_assert_eq(g16(bp + 0x1FE), 0xAA55);
    cr_assert_eq(memcmp(bp + 0x202, "HdrS", 4), 0);
    cr_assert_eq(g16(bp + 0x206), 0x020F);
    cr_assert_eq(g32(bp + 0x22C), 0x7FFFFFFF);
    cr_assert_eq(g32(bp + 0x230), 0x200000);
    cr_assert_eq(bp[0x234], 1);
    cr_assert_eq(g16(bp + 0x236), 0x7F);
    cr_assert_eq(g64(bp + 0x258), 0x1000000);
    cr_assert_eq(g32(bp + 0x260), INIT_SIZE);
    cr_assert_eq(g32(bp + 0x268), 0x12345);
    cr_assert_eq(bp[0x270], 0, "bytes past the header end (0x202 + jump) not copied");
    /* the loader's fields */
    cr_assert_eq(bp[0x210], 0xFF, "type_of_loader: undefined");
    cr_assert_eq(bp[0x211], 0x81, "LOADED_HIGH | CAN_USE_HEAP");
    cr_assert_eq(g16(bp + 0x224), 0xFE00, "heap_end_ptr");
    cr_assert_eq(g32(bp + 0x228), LINUX_CMDLINE_GPA, "cmd_line_ptr");
    cr_assert_eq(g32(bp + 0x0C8), 0, "ext_cmd_line_ptr");
    cr_assert_eq(g32(bp + 0x218), 0, "no initrd");
    cr_assert_eq(g32(bp + 0x21C), 0);
    cr_assert_eq(g64(bp + 0x070), 0xE0000, "acpi_rsdp_addr (protocol 2.14+)");
    cr_assert_eq(bp[0x1EF], 0, "sentinel clear");
    /* e820 */
    cr_assert_eq(bp[0x1E8], 3);
    for (unsigned i = 0; i < 3; i++) {
        const uint8_t *e = bp + 0x2D0 + 20 * i;
        cr_assert_eq(g64(e), test_e820[i].addr);
        cr_assert_eq(g64(e + 8), test_e820[i].size);
        cr_assert_eq(g32(e + 16), test_e820[i].type);
    }
    cr_assert_eq(g32(bp + 0x2D0 + 60 + 16), 0, "nothing past the last entry");
    /* command line */
    const char *cl = (const char *)guest(LINUX_CMDLINE_GPA, 32);
    cr_assert_str_eq(cl, "console=ttyS0 quiet");
    /* kernel body at 1 MiB */
    cr_assert_arr_eq(guest(0x100000, PAYLOAD), img + SETUP_SIZE, PAYLOAD);
    /* vCPU state for the 64-bit entry */
    cr_assert(st.long_mode);
    cr_assert_eq(st.rip, 0x100200, "startup_64 = load address + 0x200");
    cr_assert_eq(st.rsi, LINUX_BOOT_PARAMS);
    cr_assert_eq(st.cr3, LINUX_PGTABLE_GPA);
    cr_assert_eq(st.gdt_base, LINUX_GDT_GPA);
    cr_assert_eq(st.gdt_limit, 31);
    cr_assert_eq(st.rflags & 0x200, 0, "interrupts off");
}

Test(linux_boot, page_tables_and_gdt)
{
    struct x86_boot_state st;
    cr_assert_eq(load(NULL, "", &st), 0);
    const uint8_t *pt = guest(LINUX_PGTABLE_GPA, 6 * 4096);
    cr_assert_eq(g64(pt), (LINUX_PGTABLE_GPA + 0x1000) | 3, "PML4[0] -> PDPT");
    cr_assert_eq(g64(pt + 8), 0, "PML4[1] empty");
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(g64(pt + 0x1000 + 8 * i), (LINUX_PGTABLE_GPA + 0x2000 + 0x1000 * i) | 3);
    cr_assert_eq(g64(pt + 0x1000 + 32), 0, "PDPT[4] empty: 4 GiB mapped");
    /* 3 GiB + 5 * 2 MiB -> itself, present, writable, 2 MiB page */
    cr_assert_eq(g64(pt + 0x2000 + 3 * 0x1000 + 5 * 8), (3ULL << 30) + 5 * 2 * MiB + 0x83);
    cr_assert_eq(g64(pt + 0x2000), 0x83, "first 2 MiB");
    cr_assert_eq(g64(pt + 0x2000 + 3 * 0x1000 + 511 * 8), 0xFFE00000ULL + 0x83, "last 2 MiB below 4 GiB");

    const uint8_t *gdt = guest(LINUX_GDT_GPA, 32);
    cr_assert_eq(g64(gdt), 0);
    cr_assert_eq(g64(gdt + 8), 0);
    uint64_t code = g64(gdt + 0x10), data = g64(gdt + 0x18);
    cr_assert(code & (1ULL << 53), "code64: L bit");
    cr_assert(code & (1ULL << 47), "present");
    cr_assert_eq((code >> 43) & 1, 1, "executable");
    cr_assert_eq((data >> 43) & 1, 0, "data not executable");
    cr_assert(data & (1ULL << 41), "data writable");
}

Test(linux_boot, initrd_high_below_limits)
{
    static uint8_t rd[MiB + 123];
    struct x86_boot_state st;
    for (size_t i = 0; i < sizeof(rd); i++)
        rd[i] = (uint8_t)(i ^ (i >> 8));
    write_file(ipath, rd, sizeof(rd));
    cr_assert_eq(load(ipath, "", &st), 0);
    const uint8_t *bp = guest(LINUX_BOOT_PARAMS, 4096);
    uint32_t addr = g32(bp + 0x218), size = g32(bp + 0x21C);
    cr_assert_eq(size, sizeof(rd));
    cr_assert_eq(g32(bp + 0x0C0), 0, "ext_ramdisk_image");
    cr_assert_eq(g32(bp + 0x0C4), 0, "ext_ramdisk_size");
    cr_assert_eq(addr % 4096, 0, "page aligned");
    cr_assert_leq((uint64_t)addr + size, 64 * MiB, "inside RAM");
    cr_assert_gt((uint64_t)addr + size + 4096, 64 * MiB, "as high as it goes");
    cr_assert_geq(addr, 0x1000000 + INIT_SIZE, "above the kernel's footprint");
    cr_assert_arr_eq(guest(addr, size), rd, size);

    /* initrd_addr_max lower than RAM: it rules */
    p32(0x22C, 0x2FFFFFF);
    write_file(kpath, img, img_len);
    cr_assert_eq(load(ipath, "", &st), 0);
    addr = g32(bp + 0x218);
    cr_assert_leq((uint64_t)addr + size - 1, 0x2FFFFFF);
    cr_assert_gt((uint64_t)addr + size + 4096, 0x3000000);
}

Test(linux_boot, initrd_that_does_not_fit)
{
    struct x86_boot_state st;
    /* 45 MiB cannot sit between the kernel (ends at 20 MiB) and 64 MiB */
    FILE *f = fopen(ipath, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), 45 * MiB), 0);
    fclose(f);
    cr_assert_eq(load(ipath, "", &st), -ENOSPC);
}

Test(linux_boot, kernel_needs_more_ram)
{
    struct x86_boot_state st;
    gm_fini(&lgm);
    struct gm_config c = { .size = 16 * MiB };
    cr_assert_eq(gm_init(&lgm, &c), 0);
    cr_assert_eq(load(NULL, "", &st), -ENOSPC, "runs at 16 MiB with a 4 MiB init_size");
}

Test(linux_boot, big_kernel_alignment_moves_footprint)
{
    struct x86_boot_state st;
    static uint8_t rd[4096];
    p32(0x230, 0x2000000);          /* 32 MiB: head_64.S would run it at 32 MiB */
    write_file(kpath, img, img_len);
    write_file(ipath, rd, sizeof(rd));
    cr_assert_eq(load(ipath, "", &st), 0);
    cr_assert_geq(g32(guest(LINUX_BOOT_PARAMS, 4096) + 0x218), 32 * MiB + INIT_SIZE);
}

Test(linux_boot, cmdline_bounded_by_cmdline_size)
{
    struct x86_boot_state st;
    p32(0x238, 16);
    write_file(kpath, img, img_len);
    cr_assert_eq(load(NULL, "0123456789abcdef", &st), 0, "16 bytes fit");
    cr_assert_eq(load(NULL, "0123456789abcdefg", &st), -EINVAL, "17 do not");
}

Test(linux_boot, no_rsdp_field_before_2_14)
{
    struct x86_boot_state st;
    p16(0x206, 0x020D);
    write_file(kpath, img, img_len);
    cr_assert_eq(load(NULL, "", &st), 0);
    cr_assert_eq(g64(guest(LINUX_BOOT_PARAMS, 4096) + 0x070), 0);
}

Test(linux_boot, truncated_images_refused)
{
    struct x86_boot_state st;
    const size_t cuts[] = { 0, 1, 0x1FF, 0x263, 0x264, SETUP_SIZE - 1, SETUP_SIZE,
                            SETUP_SIZE + PAYLOAD - 1 };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        write_file(kpath, img, cuts[i]);
        cr_assert_eq(load(NULL, "", &st), -ENOEXEC, "cut at %zu bytes accepted", cuts[i]);
    }
    write_file(kpath, img, SETUP_SIZE + PAYLOAD);
    cr_assert_eq(load(NULL, "", &st), 0, "exactly setup + syssize * 16 is enough");
}

Test(linux_boot, bad_headers_refused)
{
    static const struct { size_t off; unsigned len; uint32_t v; const char *what; } bad[] = {
        { 0x1FE, 2, 0x55AA, "boot flag" },
        { 0x202, 4, 0x48647253, "magic reversed (SrdH)" },
        { 0x206, 2, 0x020B, "protocol 2.11" },
        { 0x211, 1, 0x00, "zImage" },
        { 0x236, 2, 0x7E, "no XLF_KERNEL_64" },
        { 0x1F4, 4, 0, "syssize 0" },
        { 0x1F4, 4, 0xFFFFFFFF, "huge syssize" },
        { 0x230, 4, 0x300000, "alignment not a power of two" },
        { 0x230, 4, 0, "zero alignment" },
        { 0x201, 1, 0x10, "header too short" },
        { 0x1F1, 1, 0xFF, "setup_sects past the end of the file" },
    };
    struct x86_boot_state st;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        make_image();
        if (bad[i].len == 1)
            img[bad[i].off] = (uint8_t)bad[i].v;
        else if (bad[i].len == 2)
            p16(bad[i].off, (uint16_t)bad[i].v);
        else
            p32(bad[i].off, bad[i].v);
        write_file(kpath, img, img_len);
        cr_assert_eq(load(NULL, "", &st), -ENOEXEC, "%s accepted", bad[i].what);
    }
}

Test(linux_boot, check_header_pure)
{
    cr_assert_eq(linux_check_header(img, img_len), 0);
    cr_assert_eq(linux_check_header(img, 0x263), -ENOEXEC);
    uint8_t junk[4096];
    srand(1);
    for (int round = 0; round < 100; round++) {
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (uint8_t)rand();
        cr_assert_eq(linux_check_header(junk, sizeof(junk)), -ENOEXEC);
    }
}

Test(linux_boot, unreadable_files)
{
    struct x86_boot_state st;
    struct linux_boot_config cfg = { .kernel = "/nonexistent/bzImage", .cmdline = "" };
    cr_assert_eq(linux_load(&lgm, &cfg, &st), -ENOENT);
    cfg.kernel = "/tmp";
    cr_assert_eq(linux_load(&lgm, &cfg, &st), -EIO, "a directory");
    cfg.kernel = kpath;
    cfg.initrd = "/nonexistent/initrd";
    cr_assert_eq(linux_load(&lgm, &cfg, &st), -ENOENT);
}
