/* ACPI tables for firmware, through fw_cfg: the "etc/table-loader" command
 * script (QEMU hw/acpi/bios-linker-loader.c's format, as OvmfPkg's
 * QemuLoader.h and SeaBIOS read it) and the relocatable table files it
 * describes.
 *
 * Each command is 128 bytes: le32 type, then
 *   1 ALLOCATE      char file[56], le32 align, u8 zone (1 high, 2 FSEG)
 *   2 ADD_POINTER   char dst[56], char src[56], le32 offset, u8 size:
 *                   the size-byte little-endian field at offset in dst
 *                   holds an offset into src; firmware adds src's address
 *   3 ADD_CHECKSUM  char file[56], le32 result_offset, le32 start,
 *                   le32 length: the byte at result_offset becomes minus
 *                   the sum of [start, start+length) (it must be 0 in the
 *                   file, as it is here)
 *   4 WRITE_POINTER char dst[56], char src[56], le32 dst_offset,
 *                   le32 src_offset, u8 size: firmware writes src's address
 *                   + src_offset into the writable fw_cfg file dst
 * (unused bytes 0). File names are NUL-terminated within their 56 bytes. */
#ifndef MINIVMM_ACPI_LOADER_H
#define MINIVMM_ACPI_LOADER_H
#include <stddef.h>
#include <stdint.h>

#define ACPI_LOADER_ENTRY_SIZE   128
#define ACPI_LOADER_FNAME        56
#define ACPI_LOADER_ALLOCATE     1
#define ACPI_LOADER_ADD_POINTER  2
#define ACPI_LOADER_ADD_CHECKSUM 3
#define ACPI_LOADER_WRITE_POINTER 4
#define ACPI_LOADER_ZONE_HIGH    1
#define ACPI_LOADER_ZONE_FSEG    2

#define ACPI_FILE_TABLES  "etc/acpi/tables"
#define ACPI_FILE_RSDP    "etc/acpi/rsdp"
#define ACPI_FILE_LOADER  "etc/table-loader"

/* A growing command script; errors are sticky (first one kept). */
struct acpi_loader {
    uint8_t *buf;
    size_t len, cap;
    int err;
};

void acpi_loader_init(struct acpi_loader *l);
void acpi_loader_free(struct acpi_loader *l);
/* align: power of two; zone ACPI_LOADER_ZONE_*. -EINVAL (sticky) for bad
 * names (empty or >= 56 bytes), align, zone or pointer size (1, 2, 4, 8). */
void acpi_loader_allocate(struct acpi_loader *l, const char *file, uint32_t align, uint8_t zone);
void acpi_loader_add_pointer(struct acpi_loader *l, const char *dst, const char *src,
                             uint32_t offset, uint8_t size);
void acpi_loader_add_checksum(struct acpi_loader *l, const char *file, uint32_t result_offset,
                              uint32_t start, uint32_t length);
void acpi_loader_write_pointer(struct acpi_loader *l, const char *dst, const char *src,
                               uint32_t dst_offset, uint32_t src_offset, uint8_t size);

/* MCFG (PCI Firmware Specification 3.2 §4.1.2): one allocation for
 * segment 0, buses start_bus..end_bus at ecam_base. 60 bytes; the
 * checksum is left 0 (the loader computes it). Returns the length. */
#define ACPI_MCFG_LEN       60
#define ACPI_MCFG_BASE_OFF  44      /* the ECAM base address field */
size_t acpi_mcfg_build(uint8_t *buf, uint64_t ecam_base, uint8_t start_bus, uint8_t end_bus);

/* The three fw_cfg files for firmware, made from a table set that
 * boot/acpi.h's acpi_build() laid out at base_gpa 0 (so every pointer in it
 * is an offset into the blob), plus extra tables (each with a valid length
 * in its header) that are appended and listed in the XSDT:
 *   tables:  FACS, DSDT, FADT, the other XSDT tables, the extras, and a
 *            new XSDT listing FADT, the others and the extras; checksums 0
 *   rsdp:    36-byte RSDP (revision 2) pointing at that XSDT, RSDT 0
 *   loader:  ALLOCATE rsdp (FSEG, 16) and tables (high, 64), ADD_POINTER for
 *            every pointer field (RSDP->XSDT, XSDT entries, FADT FACS/DSDT
 *            and X_FACS/X_DSDT), ADD_CHECKSUM for every table and both
 *            RSDP checksums.
 * Walks the input structurally (RSDP -> XSDT -> FADT -> DSDT/FACS) with
 * every length and offset checked: -EINVAL for a blob that is not such a
 * table set. extra_off[i] receives where extra table i sits in tables
 * (for later in-place updates such as MCFG's base). The caller frees
 * out->tables and out->loader. */
struct acpi_fwcfg_tables {
    uint8_t *tables;
    size_t tables_len;
    uint8_t rsdp[36];
    uint8_t *loader;
    size_t loader_len;
};
struct acpi_extra_table {
    const uint8_t *data;
    size_t len;
};
int acpi_fwcfg_build(const uint8_t *blob, size_t blob_len, const struct acpi_extra_table *extra,
                     unsigned nr_extra, struct acpi_fwcfg_tables *out, size_t *extra_off);

#endif
