/* fw_cfg items for OVMF (boot/fw_cfg_tables.h). */
#include "boot/fw_cfg_tables.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/acpi_loader.h"
#include "boot/e820.h"
#include "vmm/log.h"

#define E820_FWCFG_ENTRY   20
#define BZ_SETUP_SECTS     0x1F1
#define BZ_HDR_MAGIC       0x202
#define ACPI_BUILD_MAX     0x10000

static void put32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

long fw_cfg_e820_build(const struct fw_cfg_machine *m, uint8_t *out, size_t cap)
{
    size_t n = 0;
    const struct gm *gm = m->gm;

    for (unsigned i = 0; i < gm->nr_regions + m->nr_reserved; i++) {
        uint64_t a, l;
        uint32_t type;
        if (i < gm->nr_regions) {
            a = gm->regions[i].gpa;
            l = gm->regions[i].size;
            type = E820_RAM;
        } else {
            a = m->reserved[i - gm->nr_regions].addr;
            l = m->reserved[i - gm->nr_regions].len;
            type = E820_RESERVED;
        }
        if (n + E820_FWCFG_ENTRY > cap)
            return -ENOSPC;
        put64(out + n, a);
        put64(out + n + 8, l);
        put32(out + n + 16, type);
        n += E820_FWCFG_ENTRY;
    }
    return (long)n;
}

int fw_cfg_kernel_split(const uint8_t *img, size_t len, size_t *setup_len)
{
    size_t sects;

    if (len < BZ_HDR_MAGIC + 4 || memcmp(img + BZ_HDR_MAGIC, "HdrS", 4) != 0)
        return -ENOEXEC;
    sects = img[BZ_SETUP_SECTS] ? img[BZ_SETUP_SECTS] : 4;
    if ((sects + 1) * 512 >= len)
        return -ENOEXEC;
    *setup_len = (sects + 1) * 512;
    return 0;
}

/* Read a whole file (below 4 GiB: fw_cfg sizes are 32-bit). */
static int read_file(const char *what, const char *path, uint8_t **out, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int err;

    if (fd < 0) {
        err = -errno;
        log_err("fw_cfg", "cannot open %s '%s': %s", what, path, strerror(-err));
        return err;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        log_err("fw_cfg", "%s '%s' is not a regular file", what, path);
        close(fd);
        return -EIO;
    }
    if ((uint64_t)st.st_size >= (1ULL << 32)) {
        log_err("fw_cfg", "%s '%s' is 4 GiB or more: fw_cfg cannot carry it", what, path);
        close(fd);
        return -EFBIG;
    }
    uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + done, (size_t)st.st_size - done);
        if (r <= 0) {
            log_err("fw_cfg", "cannot read %s '%s'", what, path);
            free(buf);
            close(fd);
            return -EIO;
        }
        done += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = done;
    return 0;
}

static int add_kernel(struct fw_cfg *fc, const struct fw_cfg_machine *m)
{
    uint8_t *img, *setup;
    size_t len, setup_len;
    int err = read_file("kernel", m->kernel, &img, &len);

    if (err)
        return err;
    if (fw_cfg_kernel_split(img, len, &setup_len)) {
        log_err("fw_cfg", "kernel '%s' is not a bzImage (no HdrS header): pass a bzImage "
                "with an EFI stub to boot it through OVMF", m->kernel);
        free(img);
        return -ENOEXEC;
    }
    setup = malloc(setup_len);
    if (!setup) {
        free(img);
        return -ENOMEM;
    }
    memcpy(setup, img, setup_len);
    memmove(img, img + setup_len, len - setup_len);
    err = fw_cfg_add_u32(fc, FW_CFG_SETUP_SIZE, (uint32_t)setup_len);
    if (!err)
        err = fw_cfg_add_item(fc, FW_CFG_SETUP_DATA, NULL, setup, (uint32_t)setup_len, false,
                              NULL, NULL);
    else
        free(setup);
    if (!err)
        err = fw_cfg_add_u32(fc, FW_CFG_KERNEL_SIZE, (uint32_t)(len - setup_len));
    if (!err)
        return fw_cfg_add_item(fc, FW_CFG_KERNEL_DATA, NULL, img, (uint32_t)(len - setup_len),
                               false, NULL, NULL);
    free(img);
    return err;
}

static int add_initrd_cmdline(struct fw_cfg *fc, const struct fw_cfg_machine *m)
{
    int err;

    if (m->initrd) {
        uint8_t *img;
        size_t len;
        err = read_file("initrd", m->initrd, &img, &len);
        if (err)
            return err;
        err = fw_cfg_add_u32(fc, FW_CFG_INITRD_SIZE, (uint32_t)len);
        if (err) {
            free(img);
            return err;
        }
        err = fw_cfg_add_item(fc, FW_CFG_INITRD_DATA, NULL, img, (uint32_t)len, false, NULL, NULL);
        if (err)
            return err;
    }
    const char *cmd = m->cmdline ? m->cmdline : "";
    size_t cl = strlen(cmd) + 1;
    err = fw_cfg_add_u32(fc, FW_CFG_CMDLINE_SIZE, (uint32_t)cl);
    if (!err)
        err = fw_cfg_add_bytes(fc, FW_CFG_CMDLINE_DATA, cmd, (uint32_t)cl);
    return err;
}

/* etc/acpi/tables with MCFG kept in step with the ECAM window */
struct acpi_tables_ctx {
    bool (*ecam)(void *opaque, uint64_t *base, uint64_t *size);
    void *ecam_opaque;
    size_t mcfg_off;
};

static void acpi_tables_select(void *opaque, uint8_t *data, uint32_t len)
{
    struct acpi_tables_ctx *c = opaque;
    uint64_t base, size;

    if (!c->ecam || !c->ecam(c->ecam_opaque, &base, &size))
        return;
    if (c->mcfg_off + ACPI_MCFG_LEN > len)
        return;
    put64(data + c->mcfg_off + ACPI_MCFG_BASE_OFF, base);
    data[c->mcfg_off + 55] = (uint8_t)((size >> 20) - 1);   /* end bus */
}

static void acpi_tables_release(void *opaque, uint8_t *data, uint32_t len)
{
    free(opaque);
    free(data);
}

static const struct fw_cfg_item_ops acpi_tables_ops = {
    .select = acpi_tables_select,
    .release = acpi_tables_release,
};

static int add_acpi(struct fw_cfg *fc, const struct fw_cfg_machine *m)
{
    uint8_t *blob = calloc(1, ACPI_BUILD_MAX);
    uint8_t mcfg[ACPI_MCFG_LEN];
    struct acpi_extra_table extra[1];
    struct acpi_fwcfg_tables t;
    struct acpi_tables_ctx *ctx;
    size_t extra_off[1] = { 0 };
    unsigned nr_extra = 0;
    long len;
    int err;

    if (!blob)
        return -ENOMEM;
    len = acpi_build(m->acpi, 0, blob, ACPI_BUILD_MAX);
    if (len < 0) {
        free(blob);
        return (int)len;
    }
    if (m->ecam) {
        acpi_mcfg_build(mcfg, m->ecam_default_base, 0, 255);
        extra[nr_extra++] = (struct acpi_extra_table){ .data = mcfg, .len = ACPI_MCFG_LEN };
    }
    err = acpi_fwcfg_build(blob, (size_t)len, extra, nr_extra, &t, extra_off);
    free(blob);
    if (err)
        return err;
    ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        free(t.tables);
        free(t.loader);
        return -ENOMEM;
    }
    ctx->ecam = m->ecam;
    ctx->ecam_opaque = m->ecam_opaque;
    ctx->mcfg_off = nr_extra ? extra_off[0] : 0;
    if (!nr_extra)
        ctx->ecam = NULL;
    err = fw_cfg_add_item(fc, 0, ACPI_FILE_TABLES, t.tables, (uint32_t)t.tables_len, false,
                          &acpi_tables_ops, ctx);
    if (err) {
        free(t.loader);
        return err;
    }
    err = fw_cfg_add_file(fc, ACPI_FILE_RSDP, t.rsdp, sizeof(t.rsdp));
    if (err) {
        free(t.loader);
        return err;
    }
    return fw_cfg_add_item(fc, 0, ACPI_FILE_LOADER, t.loader, (uint32_t)t.loader_len, false,
                           NULL, NULL);
}

/* etc/smbios/smbios-tables and -anchor, as OVMF's SmbiosPlatformDxe and
 * DetectSmbiosVersionLib read them (boot/smbios.h). */
static int add_smbios(struct fw_cfg *fc, const struct smbios_config *sc)
{
    uint8_t *tables = malloc(SMBIOS_TABLES_MAX);
    uint8_t ep[SMBIOS_EP_LEN];
    long len;
    int err;

    if (!tables)
        return -ENOMEM;
    len = smbios_build_tables(sc, tables, SMBIOS_TABLES_MAX);
    if (len < 0) {
        log_err("fw_cfg", "cannot build the SMBIOS tables (%s)", strerror((int)-len));
        free(tables);
        return (int)len;
    }
    smbios_entry_point(ep, (uint32_t)len, 0);
    err = fw_cfg_add_item(fc, 0, SMBIOS_FILE_TABLES, tables, (uint32_t)len, false, NULL, NULL);
    if (!err)
        err = fw_cfg_add_file(fc, SMBIOS_FILE_ANCHOR, ep, sizeof(ep));
    return err;
}

int fw_cfg_add_machine(struct fw_cfg *fc, const struct fw_cfg_machine *m)
{
    uint8_t e820[(GM_MAX_REGIONS + FW_CFG_MAX_RESERVED) * E820_FWCFG_ENTRY];
    long e820_len;
    int err;

    if (!m->gm || m->nr_cpus == 0 || m->nr_cpus > 0xFFFF || m->nr_reserved > FW_CFG_MAX_RESERVED) {
        log_err("fw_cfg", "bad machine description (%u CPUs, %u reserved ranges)",
                m->nr_cpus, m->nr_reserved);
        return -EINVAL;
    }
    if ((err = fw_cfg_add_u64(fc, FW_CFG_RAM_SIZE, m->gm->size)) ||
        (err = fw_cfg_add_u16(fc, FW_CFG_NB_CPUS, (uint16_t)m->nr_cpus)) ||
        (err = fw_cfg_add_u16(fc, FW_CFG_MAX_CPUS, (uint16_t)m->nr_cpus)) ||
        (err = fw_cfg_add_u16(fc, FW_CFG_BOOT_MENU, 0)))
        return err;
    e820_len = fw_cfg_e820_build(m, e820, sizeof(e820));
    if (e820_len < 0)
        return (int)e820_len;
    err = fw_cfg_add_file(fc, "etc/e820", e820, (uint32_t)e820_len);
    if (err)
        return err;
    if (m->bootorder) {
        err = fw_cfg_add_file(fc, "bootorder", m->bootorder, (uint32_t)strlen(m->bootorder) + 1);
        if (err)
            return err;
    }
    if (m->pci_mmio64_mb) {
        char s[24];
        int n = snprintf(s, sizeof(s), "%" PRIu64, m->pci_mmio64_mb);
        err = fw_cfg_add_file(fc, "opt/ovmf/X-PciMmio64Mb", s, (uint32_t)n);
        if (err)
            return err;
    }
    if (m->kernel) {
        err = add_kernel(fc, m);
        if (!err)
            err = add_initrd_cmdline(fc, m);
        if (err)
            return err;
    }
    if (m->acpi) {
        err = add_acpi(fc, m);
        if (err)
            return err;
    }
    if (m->smbios) {
        err = add_smbios(fc, m->smbios);
        if (err)
            return err;
    }
    return 0;
}
