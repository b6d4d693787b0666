/* fw_cfg (devices/chipset/fw_cfg.h): selector/data ports, DMA, the file directory,
 * and the machine items OVMF reads (boot/fw_cfg_tables.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "boot/fw_cfg_tables.h"
#include "devices/chipset/fw_cfg.h"
#include "fake_env.h"
#include "vmm/gm.h"

#define RAM_SIZE (2u << 20)

static struct fake_env fe;
static struct gm gm;
static struct fw_cfg *fc;

static void fwc_setup(void)
{
    fake_env_init(&fe);
    struct gm_config gc = { .size = RAM_SIZE, .lock = false };
    cr_assert_eq(gm_init(&gm, &gc), 0);
    fe.env.gm = &gm;
    cr_assert_eq(fw_cfg_create(&fe.env, &fc), 0);
}

static void fwc_teardown(void)
{
    fw_cfg_destroy(fc);
    gm_fini(&gm);
    fake_env_fini(&fe);
}

TestSuite(fw_cfg, .init = fwc_setup, .fini = fwc_teardown);

static void sel(uint16_t key) { pio_out(&fe, FW_CFG_PORT_SEL, key, 2); }
static uint8_t data8(void) { return inb_(&fe, FW_CFG_PORT_DATA); }

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t bswap(uint32_t v) { return __builtin_bswap32(v); }

/* Write a FWCfgDmaAccess at gpa and trigger it the way OVMF does: high
 * half, then the low half (byte-swapped so the port bytes are big-endian). */
static uint32_t dma(uint64_t gpa, uint32_t control, uint32_t length, uint64_t addr)
{
    uint8_t acc[16];
    for (int i = 0; i < 4; i++) {
        acc[i] = (uint8_t)(control >> (24 - 8 * i));
        acc[4 + i] = (uint8_t)(length >> (24 - 8 * i));
    }
    for (int i = 0; i < 8; i++)
        acc[8 + i] = (uint8_t)(addr >> (56 - 8 * i));
    cr_assert_eq(gm_write(&gm, gpa, acc, 16), 0);
    pio_out(&fe, FW_CFG_PORT_DMA, bswap((uint32_t)(gpa >> 32)), 4);
    pio_out(&fe, FW_CFG_PORT_DMA + 4, bswap((uint32_t)gpa), 4);
    cr_assert_eq(gm_read(&gm, gpa, acc, 4), 0);
    return be32(acc);
}

Test(fw_cfg, signature_and_id_through_ports)
{
    sel(FW_CFG_SIGNATURE);
    cr_assert_eq(data8(), 'Q');
    cr_assert_eq(data8(), 'E');
    cr_assert_eq(data8(), 'M');
    cr_assert_eq(data8(), 'U');
    cr_assert_eq(data8(), 0, "past the end reads 0");
    sel(FW_CFG_ID);
    cr_assert_eq(data8(), FW_CFG_F_TRADITIONAL | FW_CFG_F_DMA);
    /* selecting resets the offset */
    sel(FW_CFG_SIGNATURE);
    cr_assert_eq(data8(), 'Q');
    /* the write flag (bit 14) is ignored */
    sel(0x4000 | FW_CFG_SIGNATURE);
    cr_assert_eq(data8(), 'Q');
    /* absent items read 0 */
    sel(0x1F);
    cr_assert_eq(data8(), 0);
    sel(0x8005);
    cr_assert_eq(data8(), 0);
}

Test(fw_cfg, dma_signature_register)
{
    const char *sig = "QEMU CFG";
    for (int i = 0; i < 8; i++)
        cr_assert_eq(inb_(&fe, (uint16_t)(FW_CFG_PORT_DMA + i)), (uint8_t)sig[i]);
    /* Linux's driver reads it with ioread32be */
    cr_assert_eq(bswap(pio_in(&fe, FW_CFG_PORT_DMA, 4)), 0x51454d55u);
    cr_assert_eq(bswap(pio_in(&fe, FW_CFG_PORT_DMA + 4, 4)), 0x20434647u);
}

Test(fw_cfg, numbered_items_little_endian)
{
    cr_assert_eq(fw_cfg_add_u16(fc, FW_CFG_NB_CPUS, 0x0102), 0);
    cr_assert_eq(fw_cfg_add_u64(fc, FW_CFG_RAM_SIZE, 0x1122334455667788ULL), 0);
    sel(FW_CFG_NB_CPUS);
    cr_assert_eq(data8(), 0x02);
    cr_assert_eq(data8(), 0x01);
    sel(FW_CFG_RAM_SIZE);
    cr_assert_eq(data8(), 0x88);
    cr_assert_eq(fw_cfg_add_u16(fc, FW_CFG_SIGNATURE, 1), -EINVAL, "reserved");
    cr_assert_eq(fw_cfg_add_u16(fc, FW_CFG_FILE_DIR, 1), -EINVAL);
    cr_assert_eq(fw_cfg_add_u16(fc, 0x20, 1), -EINVAL, "files are named");
    cr_assert_eq(fw_cfg_add_u16(fc, FW_CFG_ARCH_LOCAL | 3, 7), 0);
    sel(FW_CFG_ARCH_LOCAL | 3);
    cr_assert_eq(data8(), 7);
}

Test(fw_cfg, file_directory_sorted_and_big_endian)
{
    cr_assert_eq(fw_cfg_add_file(fc, "zeta", "zz", 2), 0);
    cr_assert_eq(fw_cfg_add_file(fc, "alpha", "aaaa", 4), 0);
    cr_assert_eq(fw_cfg_add_file(fc, "etc/e820", "0123456789", 10), 0);
    cr_assert_eq(fw_cfg_add_file(fc, "alpha", "x", 1), -EEXIST);
    cr_assert_eq(fw_cfg_add_file(fc, "", "x", 1), -EINVAL);
    char longname[80];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[79] = 0;
    cr_assert_eq(fw_cfg_add_file(fc, longname, "x", 1), -EINVAL);

    uint8_t dir[4 + 3 * 64];
    sel(FW_CFG_FILE_DIR);
    for (size_t i = 0; i < sizeof(dir); i++)
        dir[i] = data8();
    cr_assert_eq(be32(dir), 3);
    const char *names[] = { "alpha", "etc/e820", "zeta" };
    const uint32_t sizes[] = { 4, 10, 2 };
    for (int i = 0; i < 3; i++) {
        const uint8_t *e = dir + 4 + 64 * i;
        cr_assert_eq(be32(e), sizes[i]);
        cr_assert_eq(e[4] << 8 | e[5], 0x20 + i);
        cr_assert_str_eq((const char *)e + 8, names[i]);
        cr_assert_eq(fw_cfg_file_key(fc, names[i]), 0x20 + i);
    }
    cr_assert_eq(fw_cfg_file_key(fc, "nope"), -ENOENT);
    sel(0x21);
    cr_assert_eq(data8(), '0');
    sel(0x23);
    cr_assert_eq(data8(), 0, "no fourth file");
}

Test(fw_cfg, dma_select_read_skip)
{
    cr_assert_eq(fw_cfg_add_file(fc, "f", "abcdefgh", 8), 0);
    uint8_t buf[8];
    /* select + read 3 */
    cr_assert_eq(dma(0x1000, 0x20u << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ, 3, 0x2000), 0);
    cr_assert_eq(gm_read(&gm, 0x2000, buf, 3), 0);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    /* skip 2 then read the rest plus 3 bytes more: zero-filled */
    cr_assert_eq(dma(0x1000, FW_CFG_DMA_SKIP, 2, 0), 0);
    memset(buf, 0xEE, sizeof(buf));
    cr_assert_eq(gm_write(&gm, 0x3000, buf, 8), 0);
    cr_assert_eq(dma(0x1000, FW_CFG_DMA_READ, 6, 0x3000), 0);
    cr_assert_eq(gm_read(&gm, 0x3000, buf, 8), 0);
    cr_assert_eq(memcmp(buf, "fgh\0\0\0\xEE\xEE", 8), 0);
    /* the port sees the same offset (end of item) */
    cr_assert_eq(data8(), 0);
    /* control with no operation: nothing, status 0 */
    cr_assert_eq(dma(0x1000, 0, 100, 0x3000), 0);
    /* a 64-bit address set by one 8-byte write also triggers */
    uint8_t acc[16] = { 0, 0x20, 0, FW_CFG_DMA_SELECT | FW_CFG_DMA_READ, 0, 0, 0, 2,
                        0, 0, 0, 0, 0, 0, 0x40, 0 };
    cr_assert_eq(gm_write(&gm, 0x5000, acc, 16), 0);
    uint8_t a8[8] = { 0, 0, 0, 0, 0, 0, 0x50, 0x00 };
    cr_assert_eq(bus_write(&fe.pio, FW_CFG_PORT_DMA, a8, 8), 0);
    cr_assert_eq(gm_read(&gm, 0x4000, buf, 2), 0);
    cr_assert_eq(memcmp(buf, "ab", 2), 0);
    cr_assert_eq(gm_read(&gm, 0x5000, acc, 4), 0);
    cr_assert_eq(be32(acc), 0);
}

Test(fw_cfg, dma_outside_ram_refused)
{
    cr_assert_eq(fw_cfg_add_file(fc, "f", "abcdefgh", 8), 0);
    /* destination beyond RAM */
    cr_assert_eq(dma(0x1000, 0x20u << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ, 8, RAM_SIZE),
                 FW_CFG_DMA_ERROR);
    /* straddling the end of RAM: nothing written at all */
    uint8_t guard[4] = { 1, 2, 3, 4 }, back[4];
    cr_assert_eq(gm_write(&gm, RAM_SIZE - 4, guard, 4), 0);
    cr_assert_eq(dma(0x1000, 0x20u << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ, 8, RAM_SIZE - 4),
                 FW_CFG_DMA_ERROR);
    cr_assert_eq(gm_read(&gm, RAM_SIZE - 4, back, 4), 0);
    cr_assert_eq(memcmp(guard, back, 4), 0);
    /* length overflowing the address space */
    cr_assert_eq(dma(0x1000, FW_CFG_DMA_READ, 0xFFFFFFFFu, 0xFFFFFFFFFFFFF000ULL), FW_CFG_DMA_ERROR);
    cr_assert_eq(dma(0x1000, FW_CFG_DMA_READ, 0x10, 0xFFFFFFFFFFFFFFF8ULL), FW_CFG_DMA_ERROR);
    /* a huge read into RAM that does not fit */
    cr_assert_eq(dma(0x1000, FW_CFG_DMA_READ, 0xFFFFFFFFu, 0), FW_CFG_DMA_ERROR);
    /* descriptor outside RAM: ignored, nothing crashes */
    pio_out(&fe, FW_CFG_PORT_DMA, 0, 4);
    pio_out(&fe, FW_CFG_PORT_DMA + 4, bswap(0xFED00000u), 4);
    pio_out(&fe, FW_CFG_PORT_DMA + 4, bswap(RAM_SIZE - 8), 4);   /* straddles the end */
    fw_cfg_dma(fc, ~0ULL);
}

static unsigned written_calls;
static uint32_t written_off, written_len;
static void rec_written(void *opaque, uint8_t *data, uint32_t off, uint32_t len)
{
    written_calls++;
    written_off = off;
    written_len = len;
}
static const struct fw_cfg_item_ops rec_ops = { .written = rec_written };

Test(fw_cfg, dma_write_only_to_writable_items)
{
    cr_assert_eq(fw_cfg_add_file(fc, "ro", "abcdefgh", 8), 0);
    uint8_t *wdata = calloc(1, 8);
    cr_assert_eq(fw_cfg_add_item(fc, 0, "rw", wdata, 8, true, &rec_ops, NULL), 0);
    int ro = fw_cfg_file_key(fc, "ro"), rw = fw_cfg_file_key(fc, "rw");
    cr_assert_eq(gm_write(&gm, 0x2000, "12345678", 8), 0);
    cr_assert_eq(dma(0x1000, (uint32_t)ro << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_WRITE, 4, 0x2000),
                 FW_CFG_DMA_ERROR);
    sel((uint16_t)ro);
    cr_assert_eq(data8(), 'a', "read-only item unchanged");
    cr_assert_eq(dma(0x1000, (uint32_t)rw << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_SKIP, 2, 0), 0);
    cr_assert_eq(dma(0x1000, FW_CFG_DMA_WRITE, 4, 0x2000), 0);
    cr_assert_eq(written_calls, 1);
    cr_assert_eq(written_off, 2);
    cr_assert_eq(written_len, 4);
    cr_assert_eq(memcmp(wdata + 2, "1234", 4), 0);
    /* passing the end: refused whole */
    cr_assert_eq(dma(0x1000, FW_CFG_DMA_WRITE, 4, 0x2000), FW_CFG_DMA_ERROR);
    cr_assert_eq(wdata[6], 0);
    cr_assert_eq(written_calls, 1);
    /* source not RAM */
    cr_assert_eq(dma(0x1000, (uint32_t)rw << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_WRITE, 4, RAM_SIZE),
                 FW_CFG_DMA_ERROR);
    /* write to an absent item */
    cr_assert_eq(dma(0x1000, 0x1Fu << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_WRITE, 1, 0x2000),
                 FW_CFG_DMA_ERROR);
}

static unsigned select_calls;
static void rec_select(void *opaque, uint8_t *data, uint32_t len)
{
    select_calls++;
    data[0] = (uint8_t)('0' + select_calls);
}
static const struct fw_cfg_item_ops sel_ops = { .select = rec_select };

Test(fw_cfg, select_hook_regenerates)
{
    uint8_t *d = calloc(1, 2);
    cr_assert_eq(fw_cfg_add_item(fc, 0, "gen", d, 2, false, &sel_ops, NULL), 0);
    int k = fw_cfg_file_key(fc, "gen");
    sel((uint16_t)k);
    cr_assert_eq(data8(), '1');
    cr_assert_eq(dma(0x1000, (uint32_t)k << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ, 1, 0x2000), 0);
    uint8_t b;
    cr_assert_eq(gm_read(&gm, 0x2000, &b, 1), 0);
    cr_assert_eq(b, '2');
}

/* ---- machine items ---- */

Test(fw_cfg, e820_as_ovmf_wants_it)
{
    struct fw_cfg_machine m = { .gm = &gm, .nr_cpus = 2 };
    m.reserved[0].addr = 0xFEFFC000;
    m.reserved[0].len = 0x4000;
    m.nr_reserved = 1;
    uint8_t out[64];
    cr_assert_eq(fw_cfg_e820_build(&m, out, sizeof(out)), 40);
    uint64_t a, l;
    uint32_t t;
    memcpy(&a, out, 8);
    memcpy(&l, out + 8, 8);
    memcpy(&t, out + 16, 4);
    cr_assert_eq(a, 0, "RAM from 0, one entry: OVMF handles the legacy hole");
    cr_assert_eq(l, RAM_SIZE);
    cr_assert_eq(t, 1);
    memcpy(&a, out + 20, 8);
    memcpy(&t, out + 36, 4);
    cr_assert_eq(a, 0xFEFFC000ULL);
    cr_assert_eq(t, 2);
    cr_assert_eq(fw_cfg_e820_build(&m, out, 30), -ENOSPC);
}

Test(fw_cfg, kernel_split)
{
    static uint8_t img[8192];
    size_t setup;
    cr_assert_eq(fw_cfg_kernel_split(img, sizeof(img), &setup), -ENOEXEC);
    memcpy(img + 0x202, "HdrS", 4);
    img[0x1F1] = 0;
    cr_assert_eq(fw_cfg_kernel_split(img, sizeof(img), &setup), 0);
    cr_assert_eq(setup, 5 * 512, "setup_sects 0 means 4");
    img[0x1F1] = 7;
    cr_assert_eq(fw_cfg_kernel_split(img, sizeof(img), &setup), 0);
    cr_assert_eq(setup, 8 * 512);
    img[0x1F1] = 20;
    cr_assert_eq(fw_cfg_kernel_split(img, sizeof(img), &setup), -ENOEXEC, "setup past the end");
}

static uint32_t item_u32(uint16_t key)
{
    sel(key);
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)data8() << (8 * i);
    return v;
}

Test(fw_cfg, machine_items)
{
    char kpath[] = "/tmp/minivmm-fwcfg-kXXXXXX", ipath[] = "/tmp/minivmm-fwcfg-iXXXXXX";
    int kfd = mkstemp(kpath), ifd = mkstemp(ipath);
    cr_assert(kfd >= 0 && ifd >= 0);
    static uint8_t img[3 * 512 + 100];
    memcpy(img + 0x202, "HdrS", 4);
    img[0x1F1] = 2;
    img[3 * 512] = 0xAB;      /* first byte after the setup */
    cr_assert_eq(write(kfd, img, sizeof(img)), (ssize_t)sizeof(img));
    cr_assert_eq(write(ifd, "INITRD", 6), 6);
    close(kfd);
    close(ifd);

    uint32_t apic_ids[2] = { 0, 1 };
    struct acpi_config ac = { .nr_cpus = 2, .apic_ids = apic_ids, .ioapic_addr = 0xFEC00000,
                              .lapic_addr = 0xFEE00000, .pm_base = 0x600, .sci_gsi = 9 };
    struct fw_cfg_machine m = { .gm = &gm, .nr_cpus = 2, .bootorder = "/pci@i0cf8/x@1\n",
                                .pci_mmio64_mb = 32768, .kernel = kpath, .initrd = ipath,
                                .cmdline = "console=ttyS0", .acpi = &ac,
                                .ecam_default_base = 0xB0000000ULL };
    cr_assert_eq(fw_cfg_add_machine(fc, &m), 0);
    unlink(kpath);
    unlink(ipath);

    sel(FW_CFG_NB_CPUS);
    cr_assert_eq(data8(), 2);
    cr_assert_eq(item_u32(FW_CFG_SETUP_SIZE), 3 * 512);
    cr_assert_eq(item_u32(FW_CFG_KERNEL_SIZE), 100);
    sel(FW_CFG_KERNEL_DATA);
    cr_assert_eq(data8(), 0xAB);
    cr_assert_eq(item_u32(FW_CFG_INITRD_SIZE), 6);
    cr_assert_eq(item_u32(FW_CFG_CMDLINE_SIZE), 14, "NUL included");
    cr_assert_geq(fw_cfg_file_key(fc, "etc/e820"), 0x20);
    cr_assert_geq(fw_cfg_file_key(fc, "bootorder"), 0x20);
    cr_assert_geq(fw_cfg_file_key(fc, "etc/acpi/tables"), 0x20);
    cr_assert_geq(fw_cfg_file_key(fc, "etc/acpi/rsdp"), 0x20);
    cr_assert_geq(fw_cfg_file_key(fc, "etc/table-loader"), 0x20);
    int k = fw_cfg_file_key(fc, "opt/ovmf/X-PciMmio64Mb");
    cr_assert_geq(k, 0x20);
    sel((uint16_t)k);
    char s[6];
    for (int i = 0; i < 5; i++)
        s[i] = (char)data8();
    s[5] = 0;
    cr_assert_str_eq(s, "32768");
}

Test(fw_cfg, machine_bad_kernel)
{
    struct fw_cfg_machine m = { .gm = &gm, .nr_cpus = 1, .kernel = "/nonexistent/bzImage" };
    cr_assert_eq(fw_cfg_add_machine(fc, &m), -ENOENT);
    char kpath[] = "/tmp/minivmm-fwcfg-bXXXXXX";
    int kfd = mkstemp(kpath);
    cr_assert_eq(write(kfd, "not a kernel", 12), 12);
    close(kfd);
    /* items of the failed call stay: start over, as the caller would */
    fw_cfg_destroy(fc);
    cr_assert_eq(fw_cfg_create(&fe.env, &fc), 0);
    struct fw_cfg_machine m2 = { .gm = &gm, .nr_cpus = 1, .kernel = kpath };
    cr_assert_eq(fw_cfg_add_machine(fc, &m2), -ENOEXEC);
    unlink(kpath);
    struct fw_cfg_machine m3 = { .gm = &gm, .nr_cpus = 0 };
    cr_assert_eq(fw_cfg_add_machine(fc, &m3), -EINVAL);
}
