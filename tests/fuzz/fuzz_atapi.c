/* libFuzzer target: a hostile driver's ATAPI packets (devices/storage/
 * atapi.c), one device taking a sequence of CDBs.
 *
 * Input: bytes 0-3 the medium size in 2048-byte sectors (little-endian,
 * 0 included); then CDBs of 12 bytes each (padded to 16 with zeroes).
 *
 * Checked after each: a DATA_IN answer is 1..ATAPI_BUF_MAX bytes, a READ
 * lies on the medium and is 1..ATAPI_MAX_READ sectors, GOOD and CHECK
 * move nothing, a CHECK leaves a sense key, REQUEST SENSE returns it;
 * the IDENTIFY PACKET DEVICE data has a valid integrity word. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/storage/atapi.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    struct atapi_dev d = { .sectors = (uint32_t)data[0] | (uint32_t)data[1] << 8 |
                                      (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24 };
    memcpy(d.vendor, "FUZZ", 5);
    atapi_reset(&d);
    data += 4;
    size -= 4;
    for (; size >= 12; data += 12, size -= 12) {
        uint8_t cdb[ATAPI_CDB_LEN] = { 0 };
        uint8_t buf[ATAPI_BUF_MAX];
        struct atapi_result r;
        memcpy(cdb, data, 12);
        check(atapi_cmd(&d, cdb, buf, &r) == 0);
        switch (r.act) {
        case ATAPI_DATA_IN:
            check(r.len >= 1 && r.len <= ATAPI_BUF_MAX);
            break;
        case ATAPI_READ:
            check(r.sectors >= 1 && r.sectors <= ATAPI_MAX_READ);
            check(r.lba <= d.sectors && r.sectors <= d.sectors - r.lba);
            check(r.len == r.sectors * ATAPI_SECTOR);
            break;
        case ATAPI_CHECK:
            check(d.sense_key != SENSE_NONE);
            break;
        case ATAPI_GOOD:
            check(r.len == 0);
            break;
        }
    }
    uint8_t id[512];
    atapi_identify(&d, "SERIAL", id);
    uint8_t sum = 0;
    for (unsigned i = 0; i < 512; i++)
        sum = (uint8_t)(sum + id[i]);
    check(sum == 0 && id[510] == 0xA5);
    return 0;
}
