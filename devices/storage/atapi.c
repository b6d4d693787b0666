/* The MMC command decoder of the AHCI's CD-ROMs: see
 * devices/storage/atapi.h for the commands. Pure: CDB in, data, read or
 * sense out; every field is checked before it is used. */
#include "devices/storage/atapi.h"

#include <string.h>

#include "devices/storage/ata.h"

static void be16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void atapi_reset(struct atapi_dev *d)
{
    d->sense_key = SENSE_NONE;
    d->asc = d->ascq = 0;
    d->locked = false;
    d->new_media = true;
}

static int check(struct atapi_dev *d, struct atapi_result *r, uint8_t key, uint8_t asc,
                 uint8_t ascq)
{
    d->sense_key = key;
    d->asc = asc;
    d->ascq = ascq;
    r->act = ATAPI_CHECK;
    return 0;
}

/* SPC-4 §5.3: 20h/00h INVALID COMMAND OPERATION CODE, 24h/00h INVALID
 * FIELD IN CDB, 21h/00h LOGICAL BLOCK ADDRESS OUT OF RANGE, 39h/00h SAVING
 * PARAMETERS NOT SUPPORTED. */
#define BAD_OPCODE(d, r) check(d, r, SENSE_ILLEGAL_REQUEST, 0x20, 0)
#define BAD_FIELD(d, r)  check(d, r, SENSE_ILLEGAL_REQUEST, 0x24, 0)

static int data_in(struct atapi_result *r, uint32_t produced, uint32_t alloc)
{
    r->act = ATAPI_DATA_IN;
    r->len = produced < alloc ? produced : alloc;
    if (r->len == 0)
        r->act = ATAPI_GOOD;
    return 0;
}

static bool is_dvd(const struct atapi_dev *d)
{
    return d->sectors > ATAPI_CD_MAX_SECTORS;
}

/* LBA to MSF (MMC-6 §6.26.3.2: 2 seconds of lead-in, 75 frames a second). */
static void put_addr(uint8_t *p, uint64_t lba, bool msf)
{
    if (!msf) {
        be32(p, (uint32_t)lba);
        return;
    }
    uint64_t f = lba + 150;
    p[0] = 0;
    p[1] = (uint8_t)(f / (60 * 75) > 255 ? 255 : f / (60 * 75));
    p[2] = (uint8_t)((f / 75) % 60);
    p[3] = (uint8_t)(f % 75);
}

static int read_toc(struct atapi_dev *d, const uint8_t *cdb, uint8_t *b, struct atapi_result *r)
{
    bool msf = cdb[1] & 0x02;
    unsigned format = cdb[2] & 0x0F;
    unsigned track = cdb[6];
    uint32_t alloc = get_be16(cdb + 7);

    /* MMC-6 §6.26.2.5: the old form has the format in control bits 7:6 */
    if (format == 0 && (cdb[9] >> 6))
        format = cdb[9] >> 6;
    memset(b, 0, 32);
    switch (format) {
    case 0: {   /* TOC: track 1 (unless past it), then the lead-out */
        unsigned n = 4;
        if (track > 1 && track != 0xAA)
            return BAD_FIELD(d, r);
        b[2] = 1;   /* first track */
        b[3] = 1;   /* last track */
        if (track <= 1) {
            b[n + 1] = 0x14;   /* ADR 1, data track */
            b[n + 2] = 1;
            put_addr(b + n + 4, 0, msf);
            n += 8;
        }
        b[n + 1] = 0x14;
        b[n + 2] = 0xAA;
        put_addr(b + n + 4, d->sectors, msf);
        n += 8;
        be16(b, n - 2);
        return data_in(r, n, alloc);
    }
    case 1:     /* session information: one session, track 1 at 0 */
        be16(b, 10);
        b[2] = 1;
        b[3] = 1;
        b[5] = 0x14;
        b[6] = 1;
        put_addr(b + 8, 0, msf);
        return data_in(r, 12, alloc);
    default:
        return BAD_FIELD(d, r);
    }
}

/* One feature descriptor (MMC-6 §5.2.2): code, version/persistent/current,
 * additional length. */
static unsigned feature(uint8_t *p, uint16_t code, uint8_t ver, bool persistent, bool current,
                        uint8_t len)
{
    be16(p, code);
    p[2] = (uint8_t)(ver << 2 | (persistent ? 2 : 0) | (current ? 1 : 0));
    p[3] = len;
    return 4u + len;
}

static int get_configuration(struct atapi_dev *d, const uint8_t *cdb, uint8_t *b,
                             struct atapi_result *r)
{
    unsigned rt = cdb[1] & 3;
    uint32_t start = get_be16(cdb + 2);
    uint32_t alloc = get_be16(cdb + 7);
    uint16_t profile = is_dvd(d) ? 0x0010 : 0x0008;
    unsigned n = 8;
    static const uint16_t codes[] = { 0x0000, 0x0001, 0x0002, 0x0003, 0x0010 };

    if (rt == 3)
        return BAD_FIELD(d, r);
    memset(b, 0, 128);
    for (unsigned i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        uint16_t c = codes[i];
        /* RT 0: all from start; 1: current ones from start (all are); 2: start only */
        if (rt == 2 ? c != start : c < start)
            continue;
        uint8_t *p = b + n;
        switch (c) {
        case 0x0000:   /* profile list: DVD-ROM, CD-ROM */
            n += feature(p, c, 0, true, true, 8);
            be16(p + 4, 0x0010);
            p[6] = profile == 0x0010;
            be16(p + 8, 0x0008);
            p[10] = profile == 0x0008;
            break;
        case 0x0001:   /* core: ATAPI (MMC-6 §5.3.2) */
            n += feature(p, c, 2, true, true, 8);
            be32(p + 4, 2);
            break;
        case 0x0002:   /* morphing: polled events */
            n += feature(p, c, 1, true, true, 4);
            break;
        case 0x0003:   /* removable medium: tray, eject, lock */
            n += feature(p, c, 0, true, true, 4);
            p[4] = 1u << 5 | 1u << 3 | 1u << 0 | (d->locked ? 1u << 2 : 0);
            break;
        case 0x0010:   /* random readable, 2048-byte blocks */
            n += feature(p, c, 0, false, true, 8);
            be32(p + 4, ATAPI_SECTOR);
            be16(p + 8, is_dvd(d) ? 16 : 1);
            break;
        }
    }
    be32(b, n - 4);
    be16(b + 6, profile);
    return data_in(r, n, alloc);
}

static int event_status(struct atapi_dev *d, const uint8_t *cdb, uint8_t *b,
                        struct atapi_result *r)
{
    uint32_t alloc = get_be16(cdb + 7);

    /* MMC-6 §6.6: only polled operation */
    if (!(cdb[1] & 1))
        return BAD_FIELD(d, r);
    memset(b, 0, 8);
    b[3] = 0x10;   /* supported: media */
    if (!(cdb[4] & 0x10)) {
        be16(b, 2);
        b[2] = 0x80;   /* NEA: no event of the classes asked */
        return data_in(r, 4, alloc);
    }
    be16(b, 6);
    b[2] = 0x04;   /* media class */
    b[4] = d->new_media ? 2 : 0;   /* new media / no change */
    b[5] = 0x02;   /* media present, tray closed */
    d->new_media = false;
    return data_in(r, 8, alloc);
}

static unsigned mode_page(uint8_t *p, unsigned page, unsigned pc)
{
    bool changeable = pc == 1;
    if (page == 0x01) {   /* read/write error recovery (MMC-6 §7.3) */
        memset(p, 0, 12);
        p[0] = 0x01;
        p[1] = 0x0A;
        if (!changeable)
            p[3] = 5;     /* read retry count */
        return 12;
    }
    /* 2Ah: capabilities and mechanical status (MMC-3 §5.5.10) */
    memset(p, 0, 28);
    p[0] = 0x2A;
    p[1] = 0x1A;
    if (changeable)
        return 28;
    p[2] = 0x3B;          /* reads CD-R, CD-RW, method 2, DVD-ROM, DVD-R, DVD-RAM */
    p[4] = 0x71;          /* audio play, composite, multi-session, mode 2 form 1 */
    p[5] = 0x7F;          /* CD-DA commands, accurate stream, ... */
    p[6] = 0x29;          /* tray, eject, lock */
    be16(p + 8, 706 * 8); /* max read speed, KB/s (DVD 4x-ish) */
    be16(p + 10, 0);
    be16(p + 12, 512);    /* buffer KiB */
    be16(p + 14, 706 * 8);
    return 28;
}

static int mode_sense10(struct atapi_dev *d, const uint8_t *cdb, uint8_t *b,
                        struct atapi_result *r)
{
    unsigned page = cdb[2] & 0x3F, pc = cdb[2] >> 6;
    uint32_t alloc = get_be16(cdb + 7);
    unsigned n = 8;

    if (pc == 3)
        return check(d, r, SENSE_ILLEGAL_REQUEST, 0x39, 0);
    memset(b, 0, 8);
    if (page == 0x01 || page == 0x3F)
        n += mode_page(b + n, 0x01, pc);
    if (page == 0x2A || page == 0x3F)
        n += mode_page(b + n, 0x2A, pc);
    if (n == 8)
        return BAD_FIELD(d, r);
    be16(b, n - 2);
    b[2] = 0x70;   /* medium type: door closed, no disc info (MMC-6 §7.2.3) */
    return data_in(r, n, alloc);
}

int atapi_cmd(struct atapi_dev *d, const uint8_t cdb[ATAPI_CDB_LEN], uint8_t *b,
              struct atapi_result *r)
{
    memset(r, 0, sizeof(*r));
    uint8_t op = cdb[0];
    if (op != 0x03) {
        /* SPC-4 §4.5.1: the sense belongs to the last command */
        d->sense_key = SENSE_NONE;
        d->asc = d->ascq = 0;
    }
    switch (op) {
    case 0x00:   /* TEST UNIT READY */
    case 0x1B:   /* START STOP UNIT */
    case 0xBB:   /* SET CD SPEED */
        return 0;
    case 0x1E:   /* PREVENT ALLOW MEDIUM REMOVAL */
        d->locked = cdb[4] & 1;
        return 0;
    case 0x03: { /* REQUEST SENSE, fixed format */
        if (cdb[1] & 1)
            return BAD_FIELD(d, r);   /* descriptor format */
        memset(b, 0, 18);
        b[0] = 0x70;
        b[2] = d->sense_key;
        b[7] = 10;
        b[12] = d->asc;
        b[13] = d->ascq;
        d->sense_key = SENSE_NONE;
        d->asc = d->ascq = 0;
        return data_in(r, 18, cdb[4]);
    }
    case 0x12: { /* INQUIRY */
        uint32_t alloc = get_be16(cdb + 3);
        if ((cdb[1] & 1) || cdb[2])
            return BAD_FIELD(d, r);   /* no VPD pages */
        memset(b, 0, 36);
        b[0] = 0x05;   /* CD/DVD device */
        b[1] = 0x80;   /* removable */
        b[2] = 0x05;   /* SPC-3 */
        b[3] = 0x02;   /* response data format 2 */
        b[4] = 31;
        memset(b + 8, ' ', 28);
        memcpy(b + 8, d->vendor, strnlen(d->vendor, 8));
        memcpy(b + 16, d->product, strnlen(d->product, 16));
        memcpy(b + 32, d->revision, strnlen(d->revision, 4));
        return data_in(r, 36, alloc);
    }
    case 0x25:   /* READ CAPACITY(10) */
        memset(b, 0, 8);
        be32(b, d->sectors ? (uint32_t)(d->sectors - 1 > 0xFFFFFFFFu ? 0xFFFFFFFFu :
                                        d->sectors - 1) : 0);
        be32(b + 4, ATAPI_SECTOR);
        return data_in(r, 8, 8);
    case 0x28:   /* READ(10) */
    case 0xA8: { /* READ(12) */
        uint64_t lba = get_be32(cdb + 2);
        uint32_t n = op == 0x28 ? get_be16(cdb + 7) : get_be32(cdb + 6);
        if (n == 0)
            return 0;   /* MMC-6 §6.15: not an error */
        if (n > ATAPI_MAX_READ)
            return BAD_FIELD(d, r);
        if (lba > d->sectors || n > d->sectors - lba)
            return check(d, r, SENSE_ILLEGAL_REQUEST, 0x21, 0);
        r->act = ATAPI_READ;
        r->lba = lba;
        r->sectors = n;
        r->len = n * ATAPI_SECTOR;
        return 0;
    }
    case 0x43:
        return read_toc(d, cdb, b, r);
    case 0x46:
        return get_configuration(d, cdb, b, r);
    case 0x4A:
        return event_status(d, cdb, b, r);
    case 0x5A:
        return mode_sense10(d, cdb, b, r);
    case 0x51:   /* READ DISC INFORMATION, standard disc information */
        if (cdb[1] & 7)
            return BAD_FIELD(d, r);
        memset(b, 0, 34);
        be16(b, 32);
        b[2] = 0x0E;   /* last session complete, disc complete */
        b[3] = 1;      /* first track */
        b[4] = 1;      /* sessions */
        b[5] = 1;      /* first track of the last session */
        b[6] = 1;      /* last track of the last session */
        b[7] = 0x20;   /* unrestricted use */
        memset(b + 16, 0xFF, 8);   /* no lead-in / lead-out of a next session */
        return data_in(r, 34, get_be16(cdb + 7));
    case 0xBD:   /* MECHANISM STATUS */
        memset(b, 0, 8);
        return data_in(r, 8, get_be16(cdb + 8));
    default:
        return BAD_OPCODE(d, r);
    }
}

static void put16(uint8_t *id, unsigned word, uint16_t v)
{
    id[2 * word] = (uint8_t)v;
    id[2 * word + 1] = (uint8_t)(v >> 8);
}

void atapi_identify(const struct atapi_dev *d, const char *serial, uint8_t id[512])
{
    memset(id, 0, 512);
    /* word 0 (§7.13.6.2): ATAPI, CD-ROM (05h), removable, 50 us DRQ, 12-byte packets */
    put16(id, 0, 2u << 14 | 5u << 8 | 1u << 7 | 2u << 5);
    ata_put_string(id + 20, serial, 20);
    ata_put_string(id + 46, d->revision, 8);
    ata_put_string(id + 54, "minivmm SATA CD-ROM", 40);
    put16(id, 49, 1u << 11 | 1u << 9 | 1u << 8);   /* IORDY, LBA, DMA */
    put16(id, 53, 0x0006);
    put16(id, 63, 0x0007);
    put16(id, 64, 0x0003);
    put16(id, 65, 120);
    put16(id, 66, 120);
    put16(id, 67, 120);
    put16(id, 68, 120);
    put16(id, 76, 0x000E);                          /* SATA Gen1-3 */
    put16(id, 80, 0x01F0);                          /* ATA/ATAPI-4 .. ATA8 */
    put16(id, 82, 1u << 14 | 1u << 4);              /* NOP, PACKET */
    put16(id, 83, 0x4000);
    put16(id, 84, 0x4000);
    put16(id, 85, 1u << 14 | 1u << 4);
    put16(id, 87, 0x4000);
    put16(id, 88, 0x203F);                          /* UDMA 0-5, 5 selected */
    id[510] = 0xA5;
    uint8_t sum = 0;
    for (unsigned i = 0; i < 511; i++)
        sum = (uint8_t)(sum + id[i]);
    id[511] = (uint8_t)-sum;
}
