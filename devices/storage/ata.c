/* The ATA command decoder of the AHCI's disks: see devices/storage/ata.h
 * for the commands and what each becomes. Pure: the caller checked the FIS
 * came from guest memory once (ahci.c copies it). */
#include "devices/storage/ata.h"

#include <errno.h>
#include <string.h>

static void put16(uint8_t *id, unsigned word, uint16_t v)
{
    id[2 * word] = (uint8_t)v;
    id[2 * word + 1] = (uint8_t)(v >> 8);
}

void ata_put_string(uint8_t *dst, const char *s, size_t bytes)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < bytes; i++) {
        char ch = i < n ? s[i] : ' ';
        dst[i ^ 1] = (uint8_t)ch;   /* the first character in bits 15:8 */
    }
}

int ata_tf_parse(const uint8_t f[ATA_FIS_H2D_LEN], struct ata_tf *tf)
{
    memset(tf, 0, sizeof(*tf));
    if (f[0] != ATA_FIS_H2D)
        return -EINVAL;
    tf->c = f[1] & 0x80;
    tf->command = f[2];
    tf->features = (uint16_t)(f[3] | f[11] << 8);
    tf->lba = (uint64_t)f[4] | (uint64_t)f[5] << 8 | (uint64_t)f[6] << 16 |
              (uint64_t)f[8] << 24 | (uint64_t)f[9] << 32 | (uint64_t)f[10] << 40;
    tf->device = f[7];
    tf->count = (uint16_t)(f[12] | f[13] << 8);
    tf->icc = f[14];
    tf->control = f[15];
    return 0;
}

void ata_disk_reset(struct ata_disk *d)
{
    d->wcache = true;
    d->multiple = 0;
    d->xfer_mode = 0x46;   /* UDMA mode 6 */
}

static bool fits(const struct ata_disk *d, uint64_t lba, uint64_t n)
{
    return lba <= d->sectors && n <= d->sectors - lba;
}

static int abort_cmd(struct ata_cmd *c, uint8_t error)
{
    c->act = ATA_ACT_ABORT;
    c->error = error;
    return 0;
}

/* A transfer of n sectors at lba (already decoded). */
static int xfer(const struct ata_disk *d, struct ata_cmd *c, bool write, uint64_t lba, uint32_t n)
{
    if (write && d->readonly)
        return abort_cmd(c, ATA_ER_ABRT);
    /* ACS-3 §6.3.5: IDNF for an address past the accessible capacity. */
    if (!fits(d, lba, n))
        return abort_cmd(c, ATA_ER_ABRT | ATA_ER_IDNF);
    c->act = write ? ATA_ACT_WRITE : ATA_ACT_READ;
    c->lba = lba;
    c->sectors = n;
    c->len = n * ATA_SECTOR;
    return 0;
}

int ata_decode(struct ata_disk *d, const struct ata_tf *tf, struct ata_cmd *c)
{
    uint32_t n28 = (tf->count & 0xFF) ? (tf->count & 0xFF) : 256;
    uint32_t n48 = tf->count ? tf->count : 65536;
    /* LBA28: bits 27:24 in the device register (ACS-3 §6.4). */
    uint64_t lba28 = (tf->lba & 0xFFFFFF) | (uint64_t)(tf->device & 0xF) << 24;

    memset(c, 0, sizeof(*c));
    c->log = -1;
    switch (tf->command) {
    case ATA_READ_DMA:
    case ATA_READ_SECTORS:
        c->pio = tf->command == ATA_READ_SECTORS;
        return xfer(d, c, false, lba28, n28);
    case ATA_WRITE_DMA:
    case ATA_WRITE_SECTORS:
        c->pio = tf->command == ATA_WRITE_SECTORS;
        return xfer(d, c, true, lba28, n28);
    case ATA_READ_DMA_EXT:
    case ATA_READ_SECTORS_EXT:
        c->pio = tf->command == ATA_READ_SECTORS_EXT;
        return xfer(d, c, false, tf->lba, n48);
    case ATA_WRITE_DMA_EXT:
    case ATA_WRITE_SECTORS_EXT:
        c->pio = tf->command == ATA_WRITE_SECTORS_EXT;
        return xfer(d, c, true, tf->lba, n48);
    case ATA_READ_FPDMA:
    case ATA_WRITE_FPDMA: {
        /* §7.28.3: count in FEATURE 15:0 (0 = 65536), NCQ tag in COUNT 7:3,
         * FUA in DEVICE bit 7: the write is on stable storage when it
         * completes (the front end flushes after it) */
        uint32_t n = tf->features ? tf->features : 65536;
        c->ncq = true;
        c->tag = (uint8_t)((tf->count >> 3) & 0x1F);
        c->fua = tf->device & 0x80;
        return xfer(d, c, tf->command == ATA_WRITE_FPDMA, tf->lba, n);
    }
    case ATA_FLUSH:
    case ATA_FLUSH_EXT:
        c->act = ATA_ACT_FLUSH;
        return 0;
    case ATA_DSM:
        /* §7.5: TRIM is FEATURE bit 0; COUNT blocks of 512 bytes (0 is
         * reserved), no more than IDENTIFY word 105 says. */
        if (!(tf->features & 1) || !d->discard || d->readonly || tf->count == 0 ||
            tf->count > ATA_TRIM_MAX_BLOCKS)
            return abort_cmd(c, ATA_ER_ABRT);
        c->act = ATA_ACT_TRIM;
        c->len = tf->count * ATA_SECTOR;
        return 0;
    case ATA_READ_LOG_EXT:
    case ATA_READ_LOG_DMA_EXT: {
        /* §7.24: LBA 7:0 the log address, 47:32 and 15:8 the page, COUNT
         * pages; one page of the two logs here */
        unsigned log = tf->lba & 0xFF;
        unsigned page = (unsigned)((tf->lba >> 8) & 0xFF) | (unsigned)((tf->lba >> 32) & 0xFF00);
        if ((log != 0x00 && log != 0x10) || page != 0 || tf->count != 1)
            return abort_cmd(c, ATA_ER_ABRT);
        c->act = ATA_ACT_DATA_IN;
        c->log = (int)log;
        c->pio = tf->command == ATA_READ_LOG_EXT;
        c->len = 512;
        return 0;
    }
    case ATA_IDENTIFY:
        c->act = ATA_ACT_DATA_IN;
        c->identify = true;
        c->pio = true;
        c->len = 512;
        return 0;
    case ATA_SET_FEATURES:
        switch (tf->features & 0xFF) {
        case 0x02: d->wcache = true; break;            /* enable write cache */
        case 0x82: d->wcache = false; break;           /* disable write cache */
        case 0x03: {                                   /* set transfer mode (§7.45.4) */
            uint8_t m = (uint8_t)tf->count;
            uint8_t kind = m >> 3, mode = m & 7;
            /* PIO default/flow control (00h/01h, 08h-0Ch), MWDMA 0-2, UDMA 0-6 */
            if (!(kind == 0 && mode <= 1) && !(kind == 1 && mode <= 4) &&
                !(kind == 4 && mode <= 2) && !(kind == 8 && mode <= 6))
                return abort_cmd(c, ATA_ER_ABRT);
            d->xfer_mode = m;
            break;
        }
        case 0x55: case 0xAA:                          /* read look-ahead */
        case 0x66: case 0xCC:                          /* reverting to defaults */
            break;
        default:
            return abort_cmd(c, ATA_ER_ABRT);
        }
        c->act = ATA_ACT_NODATA;
        return 0;
    case ATA_SET_MULTIPLE: {
        /* §7.46: 0 disables; otherwise a power of two up to word 47's 16 */
        uint8_t m = (uint8_t)tf->count;
        if (m > 16 || (m & (m - 1)))
            return abort_cmd(c, ATA_ER_ABRT);
        d->multiple = m;
        c->act = ATA_ACT_NODATA;
        return 0;
    }
    case ATA_READ_VERIFY:
    case ATA_READ_VERIFY_EXT: {
        bool ext = tf->command == ATA_READ_VERIFY_EXT;
        if (!fits(d, ext ? tf->lba : lba28, ext ? n48 : n28))
            return abort_cmd(c, ATA_ER_ABRT | ATA_ER_IDNF);
        c->act = ATA_ACT_NODATA;
        return 0;
    }
    case ATA_CHECK_POWER:
        c->count_out = 0xFF;   /* §7.3: active or idle */
        c->act = ATA_ACT_NODATA;
        return 0;
    case ATA_DIAGNOSTIC:
        c->error = 0x01;       /* §7.9: device 0 passed */
        c->act = ATA_ACT_NODATA;
        return 0;
    case ATA_STANDBY_IMM: case ATA_IDLE_IMM: case ATA_STANDBY: case ATA_IDLE:
    case ATA_SLEEP: case ATA_INIT_PARAMS:
        c->act = ATA_ACT_NODATA;
        return 0;
    default:
        if (tf->command >= ATA_RECALIBRATE && tf->command <= 0x1F) {
            c->act = ATA_ACT_NODATA;   /* obsolete RECALIBRATE: succeed */
            return 0;
        }
        /* NOP (§7.17 always aborts), SMART (not offered), PACKET on a disk,
         * anything not listed */
        return abort_cmd(c, ATA_ER_ABRT);
    }
}

void ata_identify(const struct ata_disk *d, uint8_t id[512])
{
    uint64_t cap = d->sectors;
    uint32_t cyls = cap / (16 * 63) > 16383 ? 16383 : (uint32_t)(cap / (16 * 63));
    uint32_t lba28 = cap > 0x0FFFFFFF ? 0x0FFFFFFF : (uint32_t)cap;
    uint32_t chs = cyls * 16 * 63;

    memset(id, 0, 512);
    put16(id, 0, 0x0040);                       /* ATA device, fixed */
    put16(id, 1, (uint16_t)cyls);
    put16(id, 3, 16);
    put16(id, 6, 63);
    ata_put_string(id + 20, d->serial, 20);     /* words 10-19 */
    ata_put_string(id + 46, d->firmware, 8);    /* words 23-26 */
    ata_put_string(id + 54, d->model, 40);      /* words 27-46 */
    put16(id, 47, 0x8000 | 16);                 /* READ/WRITE MULTIPLE: 16 sectors */
    put16(id, 49, 1u << 11 | 1u << 9 | 1u << 8); /* IORDY, LBA, DMA */
    put16(id, 50, 0x4000);
    put16(id, 53, 0x0007);                      /* words 54-58, 64-70, 88 valid */
    put16(id, 54, (uint16_t)cyls);
    put16(id, 55, 16);
    put16(id, 56, 63);
    put16(id, 57, (uint16_t)chs);
    put16(id, 58, (uint16_t)(chs >> 16));
    put16(id, 59, (uint16_t)(d->multiple ? 0x0100 | d->multiple : 0));
    put16(id, 60, (uint16_t)lba28);
    put16(id, 61, (uint16_t)(lba28 >> 16));
    uint8_t kind = d->xfer_mode >> 3, mode = d->xfer_mode & 7;
    put16(id, 63, (uint16_t)(0x07 | (kind == 4 ? 0x100u << mode : 0)));
    put16(id, 64, 0x03);                        /* PIO 3 and 4 */
    put16(id, 65, 120);
    put16(id, 66, 120);
    put16(id, 67, 120);
    put16(id, 68, 120);
    if (d->discard && !d->readonly)
        put16(id, 69, 1u << 14);                /* deterministic read after TRIM */
    put16(id, 75, ATA_NCQ_DEPTH - 1);           /* queue depth 32 */
    put16(id, 76, 1u << 8 | 0x0E);              /* NCQ; Gen1, Gen2, Gen3 */
    put16(id, 80, 0x07F0);                      /* ATA/ATAPI-4 .. ACS-3 */
    /* 82-87: NOP, power management, write cache; FLUSH CACHE (EXT), LBA48 */
    put16(id, 82, 1u << 14 | 1u << 5 | 1u << 3);
    put16(id, 83, 0x4000 | 1u << 13 | 1u << 12 | 1u << 10);
    put16(id, 84, 0x4000 | 1u << 5);            /* general purpose logging */
    put16(id, 85, (uint16_t)(1u << 14 | (d->wcache ? 1u << 5 : 0) | 1u << 3));
    put16(id, 86, 1u << 13 | 1u << 12 | 1u << 10);
    put16(id, 87, 0x4000 | 1u << 5);
    put16(id, 88, (uint16_t)(0x7F | (kind == 8 ? 0x100u << mode : 0)));
    put16(id, 100, (uint16_t)cap);
    put16(id, 101, (uint16_t)(cap >> 16));
    put16(id, 102, (uint16_t)(cap >> 32));
    put16(id, 103, (uint16_t)(cap >> 48));
    if (d->discard && !d->readonly)
        put16(id, 105, ATA_TRIM_MAX_BLOCKS);
    /* word 106 (§7.12.7.54): valid; 2^n logical sectors per physical one */
    unsigned shift = 0;
    while (shift < 4 && (ATA_SECTOR << (shift + 1)) <= d->physical_block)
        shift++;
    put16(id, 106, (uint16_t)(0x4000 | (shift ? 1u << 13 | shift : 0)));
    if (d->discard && !d->readonly)
        put16(id, 169, 1);                      /* DSM TRIM */
    put16(id, 217, 1);                          /* non-rotating medium */
    /* word 255: signature A5h and the checksum: all 512 bytes sum to 0 */
    id[510] = 0xA5;
    uint8_t sum = 0;
    for (unsigned i = 0; i < 511; i++)
        sum = (uint8_t)(sum + id[i]);
    id[511] = (uint8_t)-sum;
}

void ata_read_log(struct ata_disk *d, int log, uint8_t out[512])
{
    memset(out, 0, 512);
    if (log == 0x00) {
        /* §9.2: version 0001h; log 10h has one page */
        out[0] = 0x01;
        out[2 * 0x10] = 1;
        return;
    }
    if (log != 0x10)
        return;
    /* §9.13: NQ (bit 7) clear and the tag of the failed command, its
     * status and error; the checksum makes the page sum to 0 */
    if (d->ncq_err) {
        out[0] = d->ncq_tag & 0x1F;
        out[2] = d->ncq_status;
        out[3] = d->ncq_error;
    } else {
        out[0] = 0x80;   /* NQ: no NCQ command failed */
    }
    d->ncq_err = false;
    uint8_t sum = 0;
    for (unsigned i = 0; i < 511; i++)
        sum = (uint8_t)(sum + out[i]);
    out[511] = (uint8_t)-sum;
}

int ata_trim_parse(const uint8_t *buf, size_t len, uint64_t sectors, uint64_t (*ranges)[2],
                   unsigned max)
{
    unsigned n = 0;

    for (size_t off = 0; off + 8 <= len; off += 8) {
        uint64_t e = 0;
        for (unsigned i = 0; i < 8; i++)
            e |= (uint64_t)buf[off + i] << (8 * i);
        uint64_t lba = e & 0xFFFFFFFFFFFFULL, cnt = e >> 48;
        if (cnt == 0)
            continue;   /* §7.5.3.2: a range length of 0 is ignored */
        if (lba > sectors || cnt > sectors - lba || n >= max)
            return -EINVAL;
        ranges[n][0] = lba * ATA_SECTOR;
        ranges[n][1] = cnt * ATA_SECTOR;
        n++;
    }
    return (int)n;
}
