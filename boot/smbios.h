/* SMBIOS structures describing the machine (DMTF DSP0134, version 3.0),
 * built from the actual configuration: how a guest learns who made the
 * system (Linux prints "DMI: <manufacturer> <product>, BIOS <version>
 * <date>"), its UUID, its sockets and its memory.
 *
 *   type  handle          what                        here
 *   0     0x0000          BIOS information            direct boot only (`bios`);
 *                                                     OVMF adds its own when the
 *                                                     tables carry none
 *   1     0x0100          system                      "minivmm" "minivmm", the UUID
 *   3     0x0300          chassis                     "minivmm", type Other
 *   4     0x0400 + s      processor, one per socket   host CPUID signature and
 *                                                     brand, cores/threads per socket
 *   16    0x1000          physical memory array       all RAM, system board
 *   17    0x1100          memory device "DIMM 0"      all RAM
 *   19    0x1300 + i      memory array mapped address one per RAM range
 *                                                     ([0, lowmem), [4 GiB, ...))
 *   32    0x2000          system boot information     no errors
 *   127   0x7F00          end of table
 *
 * Handles are (type << 8) + index: unique, below 0xFF00 (reserved, §6.1.2).
 * Lengths are those of SMBIOS 3.0 (type 0: 0x18, 1: 0x1B, 3: 0x16, 4: 0x30,
 * 16: 0x17, 17: 0x28, 19: 0x1F, 32: 0x0B, 127: 4); each structure's strings
 * follow it, each NUL-terminated, the set ended by one more NUL (two NULs
 * when there is no string, §6.1.3).
 *
 * Where they go:
 *   firmware boot: fw_cfg files etc/smbios/smbios-tables (the structures,
 *     type 127 last: OVMF's SmbiosPlatformDxe installs every structure
 *     until type 127, keeping its handle, then a type 0 of its own if there
 *     was none) and etc/smbios/smbios-anchor (the 24-byte SMBIOS 3.0 entry
 *     point: OVMF's DetectSmbiosVersionLib takes the version from it and
 *     requires its table maximum size to equal the tables' length; the
 *     address is 0, the firmware places the table).
 *   direct boot: the entry point at SMBIOS_GPA (0xF0000: guests without EFI
 *     scan 0xF0000-0xFFFFF on 16-byte boundaries for "_SM3_", §5.2.2), the
 *     structures right after it, all inside the E820-reserved BIOS area and
 *     clear of the ACPI tables (0xE0000-0xEFFFF). */
#ifndef MINIVMM_SMBIOS_H
#define MINIVMM_SMBIOS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/gm.h"

#define SMBIOS_GPA            0xF0000ULL
#define SMBIOS_AREA_MAX       0x10000       /* entry point + tables, to 1 MiB */
#define SMBIOS_EP_LEN         0x18          /* SMBIOS 3.0 entry point (§5.2.2) */
#define SMBIOS_TABLES_OFF     0x20          /* tables after the entry point */
#define SMBIOS_TABLES_MAX     (SMBIOS_AREA_MAX - SMBIOS_TABLES_OFF)
#define SMBIOS_FILE_TABLES    "etc/smbios/smbios-tables"
#define SMBIOS_FILE_ANCHOR    "etc/smbios/smbios-anchor"
#define SMBIOS_MANUFACTURER   "minivmm"
#define SMBIOS_PRODUCT        "minivmm"
/* Type 0 for the direct boot, where minivmm is all the firmware there is:
 * bump the version and the date (mm/dd/yyyy, §7.1) when what the direct
 * boot hands the guest changes. */
#define SMBIOS_BIOS_VERSION   "1.0"
#define SMBIOS_BIOS_DATE      "11/25/2026"

struct smbios_config {
    const struct gm *gm;            /* RAM ranges (types 16, 17, 19) */
    unsigned sockets, cores, threads;   /* cores and threads per socket/core */
    uint8_t uuid[16];               /* RFC 9562 byte order, as printed */
    bool bios;                      /* add type 0 (direct boot: no firmware) */
    /* type 4: what the guest's CPUID says (KVM passes the host's
     * signature and brand through); smbios_host_cpu fills them */
    uint32_t cpu_signature;         /* CPUID.1:EAX */
    uint32_t cpu_features;          /* CPUID.1:EDX */
    char cpu_vendor[13];            /* CPUID.0 vendor ID, e.g. "GenuineIntel" */
    char cpu_brand[49];             /* CPUID.80000002h-4 brand string */
};

/* The structures, type 127 last, into out. Returns their length, -ENOSPC
 * if cap is too small, -EINVAL for a configuration without RAM or CPUs. */
long smbios_build_tables(const struct smbios_config *c, uint8_t *out, size_t cap);
/* The SMBIOS 3.0 entry point (version 3.0.0) for tables of table_len bytes
 * at table_addr, checksummed. */
void smbios_entry_point(uint8_t ep[SMBIOS_EP_LEN], uint32_t table_len, uint64_t table_addr);
/* Direct boot: entry point at SMBIOS_GPA, tables at SMBIOS_GPA +
 * SMBIOS_TABLES_OFF, through gm_write. Errors are logged. */
int smbios_install(const struct gm *gm, const struct smbios_config *c);

/* The host CPU's CPUID signature, features, vendor and brand into c. */
void smbios_host_cpu(struct smbios_config *c);
/* A name-based UUID (RFC 9562 version 8: a 128-bit FNV-1a of name, with
 * the version and variant bits set): the same name gives the same UUID. */
void smbios_uuid_from_name(uint8_t uuid[16], const char *name);
/* A random UUID (RFC 9562 version 4). -errno if the kernel gives no
 * randomness. */
int smbios_uuid_random(uint8_t uuid[16]);

#endif
