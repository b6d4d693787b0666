/* The ATAPI CD-ROM of the AHCI's ports: the SCSI MMC commands a PACKET
 * command carries, as pure functions (a CDB in; data, a read or sense
 * out). devices/storage/ahci.c moves the data and posts the FIS; the unit
 * tests and tests/fuzz/fuzz_atapi.c drive this directly.
 *
 * A read-only DVD-ROM/CD-ROM drive with one data track on a medium that is
 * always there (MMC-6; SPC-4 for the primary commands), 2048-byte sectors:
 *   00 TEST UNIT READY           GOOD
 *   03 REQUEST SENSE             fixed format (SPC-4 §4.5.3): the last
 *                                CHECK CONDITION's key/ASC/ASCQ, then cleared
 *   12 INQUIRY                   standard data (SPC-4 §6.4.2), type 05h,
 *                                removable; VPD pages are refused
 *   1B START STOP UNIT           GOOD (the medium stays)
 *   1E PREVENT ALLOW MEDIUM REMOVAL  stored, GOOD
 *   25 READ CAPACITY(10)         last LBA, 2048
 *   28 READ(10), A8 READ(12)     a read of the image (bounds-checked: LBA
 *                                OUT OF RANGE past the end)
 *   43 READ TOC/PMA/ATIP         formats 0 (TOC: track 1, lead-out) and 1
 *                                (session info), LBA or MSF (MMC-6 §6.26)
 *   46 GET CONFIGURATION         profile list (DVD-ROM or CD-ROM current,
 *                                by size), core, morphing, removable
 *                                medium, random readable (MMC-6 §5.3)
 *   4A GET EVENT STATUS NOTIFICATION  polled only; media class: "new
 *                                media" once after a reset, then no change
 *   5A MODE SENSE(10)            pages 01h (error recovery), 2Ah
 *                                (capabilities), 3Fh (both); current,
 *                                default or changeable values
 *   51 READ DISC INFORMATION     a complete disc, one session (MMC-6 §6.22)
 *   BD MECHANISM STATUS          no changer, idle
 *   BB SET CD SPEED              GOOD
 * Anything else: CHECK CONDITION, ILLEGAL REQUEST / INVALID COMMAND
 * OPERATION CODE (20h/00h); a bad field: INVALID FIELD IN CDB (24h/00h). */
#ifndef MINIVMM_ATAPI_H
#define MINIVMM_ATAPI_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ATAPI_SECTOR        2048u
#define ATAPI_CDB_LEN       16u
#define ATAPI_BUF_MAX       512u     /* the largest answer */
#define ATAPI_MAX_READ      65535u   /* sectors per READ(12) */
#define ATAPI_CD_MAX_SECTORS (80u * 60u * 75u)   /* an 80-minute CD */

/* SCSI sense keys (SPC-4 §4.5.6) */
#define SENSE_NONE            0x0
#define SENSE_NOT_READY       0x2
#define SENSE_ILLEGAL_REQUEST 0x5
#define SENSE_UNIT_ATTENTION  0x6

struct atapi_dev {
    uint64_t sectors;           /* of 2048 bytes */
    char vendor[9], product[17], revision[5];
    /* state */
    uint8_t sense_key, asc, ascq;
    bool locked;                /* PREVENT ALLOW MEDIUM REMOVAL */
    bool new_media;             /* GET EVENT STATUS: "new media" to report */
};

enum atapi_act {
    ATAPI_GOOD = 0,             /* no data */
    ATAPI_DATA_IN,              /* len bytes of buf to the host */
    ATAPI_READ,                 /* sectors at lba from the image */
    ATAPI_CHECK,                /* CHECK CONDITION: the sense is in the device */
};

struct atapi_result {
    enum atapi_act act;
    uint32_t len;               /* DATA_IN: bytes (allocation length applied) */
    uint64_t lba;               /* READ */
    uint32_t sectors;           /* READ: 1..ATAPI_MAX_READ */
};

/* Power-on state: no sense, unlocked, "new media" pending. */
void atapi_reset(struct atapi_dev *d);
/* One CDB (ATAPI_CDB_LEN bytes; a 12-byte packet padded with zeroes);
 * buf has ATAPI_BUF_MAX bytes. Always 0, r filled. */
int atapi_cmd(struct atapi_dev *d, const uint8_t cdb[ATAPI_CDB_LEN], uint8_t *buf,
              struct atapi_result *r);
/* IDENTIFY PACKET DEVICE data (ACS-3 §7.13), with the integrity word. */
void atapi_identify(const struct atapi_dev *d, const char *serial, uint8_t out[512]);

#endif
