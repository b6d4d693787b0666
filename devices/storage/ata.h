/* The ATA command set of a SATA disk on the AHCI (ACS-3), as pure
 * functions: a Register Host-to-Device FIS in, an action out. No I/O, no
 * threads, no guest memory: devices/storage/ahci.c does the data phase and
 * the FIS back; the unit tests and tests/fuzz/fuzz_ahci_cmd.c drive these
 * directly.
 *
 * Register H2D FIS (SATA 3.2 §10.5.5), 20 bytes:
 *   0 type 27h   1 C bit 7, PM port 3:0   2 command   3 features 7:0
 *   4-6 LBA 23:0   7 device   8-10 LBA 47:24   11 features 15:8
 *   12-13 count 15:0   14 ICC   15 control   16-19 auxiliary
 *
 * Commands (ACS-3 §7), what each becomes:
 *   READ/WRITE DMA (EXT), READ/WRITE SECTOR(S) (EXT)  -> READ/WRITE
 *     (LBA28 count 0 = 256, LBA48 count 0 = 65536 sectors of 512 bytes)
 *   READ/WRITE FPDMA QUEUED (§7.28, §7.69: count in features, tag in
 *     count 7:3)                                      -> READ/WRITE, ncq
 *   READ LOG (DMA) EXT (§7.24) of the log directory (00h) or the NCQ
 *     Command Error log (10h), one page             -> DATA_IN ata_read_log
 *   FLUSH CACHE (EXT)                                 -> FLUSH (fdatasync)
 *   DATA SET MANAGEMENT, TRIM (§7.5)                  -> TRIM: count blocks
 *     of 512 bytes of range entries, parsed by ata_trim_parse
 *   IDENTIFY DEVICE (§7.12)                           -> DATA_IN ata_identify
 *   SET FEATURES (§7.45): write cache on/off, transfer mode, read
 *     look-ahead, reverting defaults                   -> NODATA
 *   SET MULTIPLE, READ VERIFY (range checked), IDLE (IMMEDIATE), STANDBY
 *     (IMMEDIATE), CHECK POWER MODE (count FFh: active), SLEEP, EXECUTE
 *     DEVICE DIAGNOSTIC, RECALIBRATE, INITIALIZE DEVICE PARAMETERS
 *                                                     -> NODATA
 *   everything else (NOP, SMART, security, PACKET on a disk, ...), a
 *   transfer past the end, a write to a read-only disk, TRIM without
 *   discard                                           -> ABORT (ERR, ABRT)
 * PACKET and IDENTIFY PACKET DEVICE are the ATAPI device's
 * (devices/storage/atapi.h); on it IDENTIFY DEVICE aborts with the packet
 * signature in the registers (ACS-3 §7.12.2), which ahci.c does. */
#ifndef MINIVMM_ATA_H
#define MINIVMM_ATA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ATA_SECTOR          512u
#define ATA_FIS_H2D         0x27
#define ATA_FIS_H2D_LEN     20u
#define ATA_NCQ_DEPTH       32u
#define ATA_TRIM_MAX_BLOCKS 4u       /* IDENTIFY word 105: 64 entries a block */
#define ATA_TRIM_MAX_RANGES (ATA_TRIM_MAX_BLOCKS * 64u)

/* Status and error register bits (ACS-3 §6.2, §6.3) */
#define ATA_ST_ERR   0x01
#define ATA_ST_DRQ   0x08
#define ATA_ST_DSC   0x10
#define ATA_ST_DF    0x20
#define ATA_ST_DRDY  0x40
#define ATA_ST_BSY   0x80
#define ATA_ER_ABRT  0x04
#define ATA_ER_IDNF  0x10

/* Commands (ACS-3 Table 206) */
enum {
    ATA_NOP = 0x00, ATA_DSM = 0x06, ATA_DEVICE_RESET = 0x08, ATA_RECALIBRATE = 0x10,
    ATA_READ_SECTORS = 0x20, ATA_READ_SECTORS_EXT = 0x24, ATA_READ_DMA_EXT = 0x25,
    ATA_READ_LOG_EXT = 0x2F, ATA_READ_LOG_DMA_EXT = 0x47, ATA_WRITE_SECTORS = 0x30, ATA_WRITE_SECTORS_EXT = 0x34,
    ATA_WRITE_DMA_EXT = 0x35, ATA_READ_VERIFY = 0x40, ATA_READ_VERIFY_EXT = 0x42,
    ATA_READ_FPDMA = 0x60, ATA_WRITE_FPDMA = 0x61, ATA_DIAGNOSTIC = 0x90,
    ATA_INIT_PARAMS = 0x91, ATA_PACKET = 0xA0, ATA_IDENTIFY_PACKET = 0xA1, ATA_SMART = 0xB0,
    ATA_SET_MULTIPLE = 0xC6, ATA_READ_DMA = 0xC8, ATA_WRITE_DMA = 0xCA,
    ATA_STANDBY_IMM = 0xE0, ATA_IDLE_IMM = 0xE1, ATA_STANDBY = 0xE2, ATA_IDLE = 0xE3,
    ATA_CHECK_POWER = 0xE5, ATA_SLEEP = 0xE6, ATA_FLUSH = 0xE7, ATA_FLUSH_EXT = 0xEA,
    ATA_IDENTIFY = 0xEC, ATA_SET_FEATURES = 0xEF,
};

/* The decoded registers of a Register H2D FIS. */
struct ata_tf {
    uint8_t command, device, control, icc;
    uint16_t features, count;
    uint64_t lba;               /* 48 bits */
    bool c;                     /* the command bit: a command, not a control update */
};

/* What the disk is and the settings the guest changed (SET FEATURES, SET
 * MULTIPLE): ata_decode updates the settings. */
struct ata_disk {
    uint64_t sectors;           /* capacity in 512-byte sectors */
    bool readonly, discard;
    uint32_t physical_block;    /* 512 or the host's (IDENTIFY word 106) */
    char serial[21], firmware[9], model[41];
    /* settings */
    bool wcache;                /* write cache enabled (power-on: on) */
    uint8_t multiple;           /* SET MULTIPLE (0: off) */
    uint8_t xfer_mode;          /* SET FEATURES 03h value (power-on: UDMA6 0x46) */
    /* the last failed NCQ command, for the NCQ Command Error log (ACS-3
     * §9.13); reading the log clears it */
    bool ncq_err;
    uint8_t ncq_tag, ncq_status, ncq_error;
};

enum ata_act {
    ATA_ACT_ABORT = 0,          /* ERR, error ABRT (or error as given) */
    ATA_ACT_NODATA,             /* success, no data */
    ATA_ACT_DATA_IN,            /* success, len bytes of a buffer to the host (PIO in) */
    ATA_ACT_READ,
    ATA_ACT_WRITE,
    ATA_ACT_FLUSH,
    ATA_ACT_TRIM,               /* len bytes of range entries from the host */
};

struct ata_cmd {
    enum ata_act act;
    uint64_t lba;               /* READ/WRITE: first sector */
    uint32_t sectors;           /* READ/WRITE: 1..65536 */
    uint32_t len;               /* bytes of the data phase */
    bool ncq, pio;              /* FPDMA QUEUED; PIO protocol (a PIO Setup FIS) */
    bool fua;                   /* WRITE FPDMA QUEUED with FUA: durable at completion */
    uint8_t tag;                /* ncq: 0..31 */
    uint8_t error;              /* ABORT: error register (ABRT, IDNF) */
    uint8_t count_out;          /* NODATA: the count register returned (CHECK POWER MODE) */
    bool identify;              /* DATA_IN: IDENTIFY DEVICE data */
    int log;                    /* DATA_IN: a log page (ata_read_log), or -1 */
    bool cd;                    /* READ: of 2048-byte sectors (an ATAPI READ) */
};

/* The FIS's 20 bytes into tf. -EINVAL unless it is a Register H2D FIS
 * (type 27h). */
int ata_tf_parse(const uint8_t fis[ATA_FIS_H2D_LEN], struct ata_tf *tf);
/* Power-on settings. */
void ata_disk_reset(struct ata_disk *d);
/* Decode one command (ATA disk). Returns 0 (cmd filled; ABORT included).
 * Settings changes (SET FEATURES ...) are applied to d. */
int ata_decode(struct ata_disk *d, const struct ata_tf *tf, struct ata_cmd *cmd);
/* IDENTIFY DEVICE data (ACS-3 §7.12.7), 256 little-endian words with the
 * integrity word (255) set. */
void ata_identify(const struct ata_disk *d, uint8_t out[512]);
/* Log page log (00h or 10h; ACS-3 §9.2, §9.13) into out; reading 10h
 * clears the NCQ error. */
void ata_read_log(struct ata_disk *d, int log, uint8_t out[512]);
/* TRIM range entries (ACS-3 §7.5.3.2: 48-bit LBA, 16-bit count; a count
 * of 0 is ignored) in buf[0..len) into ranges (bytes), at most max.
 * Returns the number of ranges (0..max) or -EINVAL for a range past the
 * end of the disk or more than max non-empty entries. */
int ata_trim_parse(const uint8_t *buf, size_t len, uint64_t sectors, uint64_t (*ranges)[2],
                   unsigned max);
/* An ATA string field: space padded, two characters a word swapped
 * (ACS-3 §3.3.10). */
void ata_put_string(uint8_t *dst, const char *s, size_t bytes);

#endif
