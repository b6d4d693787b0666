/* libFuzzer target: a hostile driver's AHCI command (devices/storage/ahci.c
 * ahci_cmd_fetch and ahci_prdt_iov, the ATA decoder of ata.c, the TRIM
 * range parser, and the MMC decoder of atapi.c on the ACMD).
 *
 * Input: byte 0 the slot (low 5 bits), byte 1 the disk: bit 0 read-only,
 * bit 1 discard, bits 7:2 the size (1 + n) * 256 sectors; the rest is
 * copied into 1 MiB of guest RAM from address 0, where the command list
 * is (CLB 0): the header of the slot points at its table (CTBA), the
 * PRDT at any address, inside RAM or not.
 *
 * Checked: the fetch either fails or gives a CFL of 5-16 and a mapped
 * table and PRDT; the decoded command stays inside the disk and fits what
 * it says; every iovec lies in RAM and they add up to the transfer; TRIM
 * ranges lie inside the disk; MMC answers fit their buffer and reads the
 * medium. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "devices/storage/ahci.h"
#include "devices/storage/ata.h"
#include "devices/storage/atapi.h"
#include "vmm/gm.h"
#include "vmm/log.h"

#define RAM_SIZE (1u << 20)
#define WINDOW   0x10000u

static struct gm gm;
static struct iovec iov[AHCI_MAX_IOV];
static uint8_t buf[ATA_TRIM_MAX_BLOCKS * ATA_SECTOR];

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool in_ram(const void *p, size_t len)
{
    const uint8_t *ram = gm_ptr(&gm, 0, RAM_SIZE);
    const uint8_t *b = p;
    return b >= ram && len <= RAM_SIZE && (size_t)(b - ram) <= RAM_SIZE - len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        struct gm_config cfg = { .size = RAM_SIZE, .lock = false };
        log_set_level(LOG_ERR);
        if (gm_init(&gm, &cfg))
            abort();
        ready = true;
    }
    if (size < 2)
        return 0;
    unsigned slot = data[0] & 0x1F;
    struct ata_disk d = { .sectors = (1u + (data[1] >> 2)) * 256u, .readonly = data[1] & 1,
                          .discard = data[1] & 2, .physical_block = 512 };
    memcpy(d.serial, "FUZZ", 5);
    ata_disk_reset(&d);
    data += 2;
    size -= 2;
    uint8_t *ram = gm_ptr(&gm, 0, RAM_SIZE);
    memset(ram, 0, RAM_SIZE);
    memcpy(ram, data, size < WINDOW ? size : WINDOW);

    struct ahci_cmd c;
    int r = ahci_cmd_fetch(&gm, 0, slot, &c);
    if (r)
        return 0;
    check(c.cfl >= 5 && c.cfl <= 16);
    check(in_ram(c.hdr, AHCI_CMD_HDR_SIZE));
    check(!c.prdtl || in_ram(c.prd, (size_t)c.prdtl * AHCI_PRD_SIZE));

    /* the MMC decoder on the ACMD, as for a CD-ROM port */
    struct atapi_dev cd = { .sectors = d.sectors / 4 };
    atapi_reset(&cd);
    struct atapi_result ar;
    uint8_t ab[ATAPI_BUF_MAX];
    atapi_cmd(&cd, c.acmd, ab, &ar);
    check(ar.act != ATAPI_DATA_IN || (ar.len > 0 && ar.len <= ATAPI_BUF_MAX));
    check(ar.act != ATAPI_READ || (ar.sectors && ar.lba + ar.sectors <= cd.sectors));

    struct ata_tf tf;
    if (ata_tf_parse(c.cfis, &tf))
        return 0;
    struct ata_cmd cmd;
    check(ata_decode(&d, &tf, &cmd) == 0);
    switch (cmd.act) {
    case ATA_ACT_READ:
    case ATA_ACT_WRITE:
        check(cmd.sectors >= 1 && cmd.sectors <= 65536);
        check(cmd.lba + cmd.sectors <= d.sectors);
        check(cmd.len == cmd.sectors * ATA_SECTOR);
        check(cmd.act == ATA_ACT_READ || !d.readonly);
        check(!cmd.ncq || cmd.tag < 32);
        break;
    case ATA_ACT_TRIM:
        check(d.discard && !d.readonly);
        check(cmd.len && cmd.len <= sizeof(buf));
        break;
    case ATA_ACT_DATA_IN:
        check(cmd.len == 512);
        break;
    default:
        break;
    }
    if (cmd.act == ATA_ACT_ABORT || cmd.act == ATA_ACT_NODATA || cmd.act == ATA_ACT_FLUSH)
        return 0;
    int n = ahci_prdt_iov(&gm, c.prd, c.prdtl, cmd.len, iov, AHCI_MAX_IOV);
    if (n < 0)
        return 0;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        check(iov[i].iov_len > 0 && in_ram(iov[i].iov_base, iov[i].iov_len));
        total += iov[i].iov_len;
    }
    check(total == cmd.len);
    if (cmd.act == ATA_ACT_TRIM) {
        size_t at = 0;
        for (int i = 0; i < n; i++) {
            memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        uint64_t rg[ATA_TRIM_MAX_RANGES][2];
        int nr = ata_trim_parse(buf, cmd.len, d.sectors, rg, ATA_TRIM_MAX_RANGES);
        for (int i = 0; i < nr; i++)
            check(rg[i][1] && rg[i][0] + rg[i][1] <= d.sectors * ATA_SECTOR);
    } else if (cmd.act == ATA_ACT_DATA_IN) {
        uint8_t id[512];
        ata_identify(&d, id);
        uint8_t sum = 0;
        for (unsigned i = 0; i < 512; i++)
            sum = (uint8_t)(sum + id[i]);
        check(sum == 0);
    }
    return 0;
}
