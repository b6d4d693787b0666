/* The ICH9 AHCI: see devices/storage/ahci.h for the register map, the
 * command flow and the error rules (Serial ATA AHCI 1.3.1; SATA 3.2 for
 * the FIS layouts).
 *
 * Threads: the registers live under one mutex (h->lock). vCPU threads
 * take it for MMIO and config writes; each port's block engine thread
 * (devices/block/blk_engine.h, one queue of 32 requests: one per command
 * slot, engine tag = slot | generation << 8) takes it in its callbacks to
 * parse issued slots, submit, and post completions. Nothing blocks under
 * the lock: a stop never waits (PxCMD.CR and GHC.HR stay 1 until the
 * engine has no request of the port left), so MMIO never waits for I/O. */
#include "devices/storage/ahci.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/block/blk_engine.h"
#include "devices/block/disk_args.h"
#include "devices/block/image.h"
#include "devices/chipset/q35.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/pci/pcidev.h"
#include "devices/storage/ata.h"
#include "devices/storage/atapi.h"
#include "vmm/bus.h"
#include "vmm/dev_env.h"
#include "vmm/gm.h"
#include "vmm/irq.h"
#include "vmm/log.h"

#define COMP "ahci"

#define PORT_IE_MASK   0xFDC000FFu     /* §3.3.6: the implemented enables */
#define PX_CMD_RW      (AHCI_PX_CMD_ST | AHCI_PX_CMD_FRE | AHCI_PX_CMD_ATAPI | \
                        0x0E000000u)   /* + DLAE, ALPE, ASP: stored */
#define SSTS_PRESENT   0x133u          /* DET 3 (phy up), SPD 3 (Gen3), IPM 1 (active) */
#define TAG_SLOT(t)    ((unsigned)((t) & 0x1F))
#define TAG_GEN(t)     ((uint32_t)((t) >> 8))

enum port_dev { PORT_EMPTY = 0, PORT_DISK, PORT_CDROM };

struct ahci_slot {
    struct iovec *iov;              /* AHCI_MAX_IOV */
    struct blk_range ranges[ATA_TRIM_MAX_RANGES];
    struct ata_cmd cmd;
    uint8_t *hdr;                   /* PRDBC at +4 */
    bool flushing;                  /* a write's FLUSH (no write cache, FUA) is running */
};

struct ahci;

struct ahci_port {
    struct ahci *h;
    unsigned idx;
    char name[80];                  /* "ahci0 port 0 (disk.img)" */
    /* registers (§3.3) */
    uint64_t clb, fb;
    uint32_t is, ie, cmd, tfd, sig, ssts, sctl, serr, sact, ci;
    /* the HBA's state */
    uint32_t taken;                 /* CI bits being served */
    uint32_t busy;                  /* slots with a request at the engine */
    unsigned inflight;
    uint32_t gen;                   /* bumped by stop/reset: older completions are dropped */
    bool halted;                    /* TFES: nothing more until ST is cleared */
    bool in_completion, irq_event;  /* completions: one interrupt per engine round */
    unsigned ccs;
    /* the device */
    enum port_dev dev;
    struct blk_image img;
    bool img_open;
    struct blk_engine *engine;
    int kick_fd;
    struct ata_disk ata;            /* a CD-ROM: its settings (SET FEATURES) */
    struct atapi_dev cd;
    int boot_index;
    struct ahci_slot slots[AHCI_NR_SLOTS];
    uint8_t buf[ATA_TRIM_MAX_BLOCKS * ATA_SECTOR];   /* PIO-in data, TRIM ranges */
    _Static_assert(ATA_TRIM_MAX_BLOCKS * ATA_SECTOR >= ATAPI_BUF_MAX, "MMC answers fit");
};

struct ahci {
    char name[32];
    struct pci_device pdev;
    struct ahci_vm vm;
    pthread_mutex_t lock;
    uint32_t ghc;
    bool resetting;                 /* GHC.HR written, requests still in flight */
    uint64_t bar_addr, idp_addr;    /* ABAR, the BAR4 index/data pair */
    uint32_t idp_index;
    struct pci_bus *bus;
    bool plugged, started;
    int intx_gsi;
    bool intx_level, intx_disabled, msi_on;
    struct pci_msi msi;
    int msi_fd, msi_gsi;
    bool msi_attached;
    unsigned nr_ports;
    struct ahci_port port[AHCI_NR_PORTS];
};

static void efd_signal(int fd)
{
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
        log_guest_once(COMP, "cannot signal an eventfd: %s", strerror(errno));
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- commands in guest memory (pure but for gm) ---- */

int ahci_cmd_fetch(const struct gm *gm, uint64_t clb, unsigned slot, struct ahci_cmd *c)
{
    uint8_t hdr[16];

    memset(c, 0, sizeof(*c));
    if (slot >= AHCI_NR_SLOTS || clb > UINT64_MAX - AHCI_NR_SLOTS * AHCI_CMD_HDR_SIZE)
        return -EFAULT;
    c->hdr = gm_ptr(gm, clb + slot * AHCI_CMD_HDR_SIZE, AHCI_CMD_HDR_SIZE);
    if (!c->hdr)
        return -EFAULT;
    memcpy(hdr, c->hdr, sizeof(hdr));   /* read once */
    c->dw0 = get_le32(hdr);
    c->cfl = c->dw0 & AHCI_HDR_CFL_MASK;
    c->prdtl = c->dw0 >> 16;
    /* §4.2.2 DW2: bits 6:0 reserved (128-byte aligned) */
    c->ctba = (get_le32(hdr + 8) & ~0x7Fu) | (uint64_t)get_le32(hdr + 12) << 32;
    /* §4.2.2: CFL 2..16 dwords; a Register H2D FIS needs 5 */
    if (c->cfl < 5 || c->cfl > 16)
        return -EINVAL;
    const uint8_t *t = gm_ptr(gm, c->ctba, AHCI_CMD_TBL_HDR);
    if (!t)
        return -EFAULT;
    memcpy(c->cfis, t, sizeof(c->cfis));
    memcpy(c->acmd, t + 0x40, sizeof(c->acmd));
    if (c->prdtl) {
        if (c->ctba > UINT64_MAX - AHCI_CMD_TBL_HDR)
            return -EFAULT;
        c->prd = gm_ptr(gm, c->ctba + AHCI_CMD_TBL_HDR, (uint64_t)c->prdtl * AHCI_PRD_SIZE);
        if (!c->prd)
            return -EFAULT;
    }
    return 0;
}

int ahci_prdt_iov(const struct gm *gm, const uint8_t *prd, unsigned prdtl, uint64_t len,
                  struct iovec *iov, unsigned max)
{
    unsigned n = 0;
    uint64_t left = len;

    for (unsigned i = 0; i < prdtl && left; i++) {
        uint8_t e[AHCI_PRD_SIZE];
        memcpy(e, prd + (size_t)i * AHCI_PRD_SIZE, sizeof(e));   /* read once */
        /* §4.2.3.3: DBA bit 0 reserved; DBC bits 21:0, bit 0 always 1 */
        uint64_t dba = (get_le32(e) & ~1u) | (uint64_t)get_le32(e + 4) << 32;
        uint64_t cnt = ((get_le32(e + 12) & 0x3FFFFFu) | 1u) + 1;
        if (cnt > left)
            cnt = left;
        uint8_t *p = gm_ptr(gm, dba, cnt);
        if (!p)
            return -EFAULT;
        if (n && (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == p) {
            iov[n - 1].iov_len += cnt;
        } else {
            if (n == max)
                return -ENOSPC;
            iov[n++] = (struct iovec){ .iov_base = p, .iov_len = cnt };
        }
        left -= cnt;
    }
    return left ? -EINVAL : (int)n;
}

/* ---- interrupts (h->lock held) ---- */

static uint32_t hba_is(const struct ahci *h)
{
    uint32_t is = 0;
    for (unsigned i = 0; i < AHCI_NR_PORTS; i++)
        if (h->port[i].is & h->port[i].ie)
            is |= 1u << i;
    return is;
}

/* §3.1.3, §10.7.1: IS is the ports' PxIS & PxIE; the line (or a message)
 * is asserted while GHC.IE and IS != 0. An MSI goes out for each event
 * that leaves an interrupt pending (also a write that clears one of two
 * causes: the driver's handler runs again for the other). */
static void irq_update(struct ahci *h, bool event)
{
    bool want = (h->ghc & AHCI_GHC_IE) && hba_is(h);
    bool line = want && !h->msi_on && !h->intx_disabled && h->intx_gsi >= 0;

    if (line != h->intx_level) {
        h->intx_level = line;
        dev_irq_set(h->vm.env, (unsigned)h->intx_gsi, line);
    }
    if (want && event && h->msi_on)
        efd_signal(h->msi_fd);
}

static int msi_enable(void *opaque, enum pci_irq_kind kind, unsigned nr)
{
    (void)opaque;
    (void)kind;
    (void)nr;
    return 0;
}

static void msi_disable(void *opaque, enum pci_irq_kind kind)
{
    (void)opaque;
    (void)kind;
}

/* The vector is a KVM MSI route with the eventfd bound as an irqfd while
 * enabled (as virtio-pci's MSI-X vectors). */
static int msi_route(void *opaque, enum pci_irq_kind kind, unsigned v, uint64_t addr,
                     uint32_t data)
{
    struct ahci *h = opaque;

    (void)kind;
    if (v != 0)
        return -EINVAL;
    return irq_msi_vector_route(h->vm.irq, h->vm.vm_fd, h->msi_fd, &h->msi_gsi, &h->msi_attached,
                                addr, data);
}

static void msi_unroute(void *opaque, enum pci_irq_kind kind, unsigned v)
{
    struct ahci *h = opaque;

    (void)kind;
    if (v == 0)
        irq_msi_vector_unroute(h->vm.irq, h->vm.vm_fd, h->msi_fd, h->msi_gsi, &h->msi_attached);
}

static bool msi_pending(void *opaque, enum pci_irq_kind kind, unsigned v)
{
    struct ahci *h = opaque;
    struct pollfd p = { .fd = h->msi_fd, .events = POLLIN };

    (void)kind;
    return v == 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static const struct pci_irq_ops ahci_msi_ops = {
    .enable = msi_enable, .disable = msi_disable, .route = msi_route,
    .unroute = msi_unroute, .pending = msi_pending,
};

/* ---- FISes into the received FIS area (h->lock held) ---- */

/* The port's FIS area at off, if FIS receive is on and it is RAM. */
static uint8_t *rfis(struct ahci_port *p, unsigned off, unsigned len)
{
    if (!(p->cmd & AHCI_PX_CMD_FRE))
        return NULL;
    uint8_t *f = gm_ptr(p->h->vm.env->gm, p->fb, AHCI_RFIS_SIZE);
    if (!f) {
        log_guest_once(COMP, "%s: received FIS area at 0x%" PRIx64 " is not RAM", p->name, p->fb);
        return NULL;
    }
    (void)len;
    return f + off;
}

/* Register D2H FIS (SATA 3.2 §10.5.6) with the status and error; the
 * taskfile follows them. i: the interrupt bit (PxIS.DHRS). */
static void post_d2h(struct ahci_port *p, uint8_t status, uint8_t error, uint16_t count,
                     uint64_t lba, bool i)
{
    uint8_t *f = rfis(p, AHCI_RFIS_RFIS, 20);

    p->tfd = (uint32_t)error << 8 | status;
    if (f) {
        memset(f, 0, 20);
        f[0] = 0x34;
        f[1] = i ? 0x40 : 0;
        f[2] = status;
        f[3] = error;
        f[4] = (uint8_t)lba;
        f[5] = (uint8_t)(lba >> 8);
        f[6] = (uint8_t)(lba >> 16);
        f[8] = (uint8_t)(lba >> 24);
        f[9] = (uint8_t)(lba >> 32);
        f[10] = (uint8_t)(lba >> 40);
        f[12] = (uint8_t)count;
        f[13] = (uint8_t)(count >> 8);
    }
    if (i)
        p->is |= AHCI_PX_IS_DHRS;
}

/* PIO Setup FIS (§10.5.11), device to host, with the ending status. */
static void post_pio_setup(struct ahci_port *p, uint8_t status, uint16_t bytes)
{
    uint8_t *f = rfis(p, AHCI_RFIS_PSFIS, 20);

    if (f) {
        memset(f, 0, 20);
        f[0] = 0x5F;
        f[1] = 0x40 | 0x20;   /* I, D (device to host) */
        f[2] = ATA_ST_DRDY | ATA_ST_DSC | ATA_ST_DRQ;
        f[15] = status;       /* E_Status */
        f[16] = (uint8_t)bytes;
        f[17] = (uint8_t)(bytes >> 8);
    }
    p->is |= AHCI_PX_IS_PSS;
}

/* Set Device Bits FIS (§10.5.7) completing the NCQ tags in bits. */
static void post_sdb(struct ahci_port *p, uint32_t bits, uint8_t status, uint8_t error)
{
    uint8_t *f = rfis(p, AHCI_RFIS_SDBFIS, 8);

    if (f) {
        f[0] = 0xA1;
        f[1] = 0x40;
        f[2] = status & 0x77;   /* status hi 6:4, lo 2:0 */
        f[3] = error;
        put_le32(f + 4, bits);
    }
    p->tfd = (p->tfd & ~0x77u) | (status & 0x77u);
    p->sact &= ~bits;
    p->is |= AHCI_PX_IS_SDBS;
}

/* The device's signature after a reset (§10.4.2, ACS-3 §9.1). */
static void post_signature(struct ahci_port *p)
{
    if (p->dev == PORT_EMPTY)
        return;
    if (p->dev == PORT_CDROM) {
        /* ACS-3 §9.1: the PACKET signature, LBA 23:8 = EB14h, status 0 */
        p->sig = AHCI_SIG_ATAPI;
        post_d2h(p, 0, 0x01, 1, 0xEB1401, false);
        return;
    }
    p->sig = AHCI_SIG_ATA;
    post_d2h(p, ATA_ST_DRDY | ATA_ST_DSC, 0x01, 1, 1, false);
}

/* ---- port state (h->lock held) ---- */

static void port_process(struct ahci_port *p);

/* An interrupt cause was posted: raised now, or, inside a round of
 * completions, once at its end (io_round_end: one MSI for a batch of NCQ
 * completions instead of one each). */
static void port_irq(struct ahci_port *p)
{
    if (p->in_completion)
        p->irq_event = true;
    else
        irq_update(p->h, true);
}

/* A command failed (§6.1.2): the taskfile error, TFES and the halt. */
static void cmd_fail(struct ahci_port *p, unsigned slot, uint8_t error, uint32_t extra_is)
{
    if (p->slots[slot].cmd.ncq) {
        /* for the NCQ Command Error log the driver reads next (ACS-3 §9.13) */
        p->ata.ncq_err = true;
        p->ata.ncq_tag = (uint8_t)slot;
        p->ata.ncq_status = ATA_ST_DRDY | ATA_ST_ERR;
        p->ata.ncq_error = error;
    }
    post_d2h(p, ATA_ST_DRDY | ATA_ST_ERR, error, 0, 0, true);
    p->is |= AHCI_PX_IS_TFES | extra_is;
    p->halted = true;
    p->ccs = slot;
    p->taken &= ~(1u << slot);   /* its CI bit stays: software sees which failed */
    port_irq(p);
}

/* A non-NCQ command succeeded: its CI bit, the D2H FIS. */
static void cmd_done(struct ahci_port *p, unsigned slot, const struct ata_cmd *c, uint32_t bytes)
{
    struct ahci_slot *s = &p->slots[slot];

    if (s->hdr)
        put_le32(s->hdr + 4, bytes);   /* PRDBC (§4.2.2 DW1) */
    if (c->pio)
        post_pio_setup(p, ATA_ST_DRDY | ATA_ST_DSC, (uint16_t)c->len);
    post_d2h(p, ATA_ST_DRDY | ATA_ST_DSC, c->error, c->count_out, 0, true);
    p->ci &= ~(1u << slot);
    p->taken &= ~(1u << slot);
    port_irq(p);
}

/* What stopping does (ST cleared, COMRESET, HBA reset: §10.3.2): the
 * commands are dropped, requests at the engine forgotten. */
static void port_stop_cmds(struct ahci_port *p)
{
    p->ci = p->sact = p->taken = 0;
    p->halted = false;
    p->ccs = 0;
    p->gen++;
}

static void port_reset_regs(struct ahci_port *p)
{
    port_stop_cmds(p);
    p->is = p->ie = p->serr = 0;
    p->cmd = AHCI_PX_CMD_SUD | AHCI_PX_CMD_POD;
    p->sctl = 0;
    p->ssts = p->dev == PORT_EMPTY ? 0 : SSTS_PRESENT;
    p->tfd = p->dev == PORT_EMPTY ? 0x7F : p->dev == PORT_CDROM ? 0x0100 : 0x0150;
    p->sig = p->dev == PORT_EMPTY ? 0xFFFFFFFF : p->dev == PORT_CDROM ? AHCI_SIG_ATAPI :
             AHCI_SIG_ATA;
    if (p->dev != PORT_EMPTY)
        ata_disk_reset(&p->ata);
    if (p->dev == PORT_CDROM)
        atapi_reset(&p->cd);
}

static bool any_inflight(const struct ahci *h)
{
    for (unsigned i = 0; i < AHCI_NR_PORTS; i++)
        if (h->port[i].inflight)
            return true;
    return false;
}

/* GHC.HR (§10.4.3): GHC, IS and every port's registers but CLB/FB. */
static void hba_reset(struct ahci *h)
{
    h->ghc = AHCI_GHC_AE;
    for (unsigned i = 0; i < AHCI_NR_PORTS; i++)
        port_reset_regs(&h->port[i]);
    h->resetting = any_inflight(h);
    irq_update(h, false);
}

/* ---- the engine side (on the port's thread, h->lock held) ---- */

/* A CD-ROM's command (the ATA side of ATAPI, ACS-3 §7.18, §7.13): the
 * PACKET command's CDB through the MMC decoder into cmd (READ of 2048-byte
 * sectors, DATA_IN of p->buf, NODATA) or a CHECK CONDITION, which fails
 * it with the sense key in the error register (ACS-3 §7.18.5: ABRT and
 * sense key in bits 7:4) -- then true: nothing more to do. */
static bool cd_decode(struct ahci_port *p, unsigned slot, const struct ata_tf *tf,
                      const struct ahci_cmd *c, struct ata_cmd *cmd)
{
    struct atapi_result res;

    memset(cmd, 0, sizeof(*cmd));
    cmd->log = -1;
    switch (tf->command) {
    case ATA_PACKET:
        /* FEATURE bit 0: DMA; else PIO (a PIO Setup FIS ends it) */
        cmd->pio = !(tf->features & 1);
        atapi_cmd(&p->cd, c->acmd, p->buf, &res);
        switch (res.act) {
        case ATAPI_GOOD:
            cmd->act = ATA_ACT_NODATA;
            cmd->pio = false;
            return false;
        case ATAPI_DATA_IN:
            cmd->act = ATA_ACT_DATA_IN;
            cmd->len = res.len;
            return false;
        case ATAPI_READ:
            cmd->act = ATA_ACT_READ;
            cmd->lba = res.lba;
            cmd->sectors = res.sectors;
            cmd->len = res.len;
            cmd->cd = true;
            return false;
        case ATAPI_CHECK:
            cmd_fail(p, slot, (uint8_t)(p->cd.sense_key << 4 | ATA_ER_ABRT), 0);
            return true;
        }
        return false;
    case ATA_IDENTIFY_PACKET:
        atapi_identify(&p->cd, p->ata.serial, p->buf);
        cmd->act = ATA_ACT_DATA_IN;
        cmd->pio = true;
        cmd->len = 512;
        return false;
    case ATA_DEVICE_RESET:
        atapi_reset(&p->cd);
        post_signature(p);
        cmd->act = ATA_ACT_NODATA;
        return false;
    case ATA_IDENTIFY:
        /* ACS-3 §7.12.2: a PACKET device aborts; PxSIG keeps the packet
         * signature drivers tell it from a disk by */
        cmd_fail(p, slot, ATA_ER_ABRT, 0);
        return true;
    default: {
        /* the power and SET FEATURES commands as for a disk; nothing that
         * moves data */
        struct ata_disk none = p->ata;
        none.sectors = 0;
        none.readonly = true;
        none.discard = false;
        ata_decode(&none, tf, cmd);
        if (cmd->act != ATA_ACT_NODATA) {
            cmd_fail(p, slot, ATA_ER_ABRT, 0);
            return true;
        }
        p->ata = none;
        return false;
    }
    }
}

static void start_slot(struct ahci_port *p, unsigned slot)
{
    const struct gm *gm = p->h->vm.env->gm;
    struct ahci_slot *s = &p->slots[slot];
    struct ahci_cmd c;
    struct ata_tf tf;
    struct blk_request r = { .tag = slot | (uint64_t)p->gen << 8 };
    int n;

    s->hdr = NULL;
    s->flushing = false;
    memset(&s->cmd, 0, sizeof(s->cmd));
    int err = ahci_cmd_fetch(gm, p->clb, slot, &c);
    if (err) {
        log_guest_once(COMP, "%s: slot %u: command header at 0x%" PRIx64 " or its table is %s",
                       p->name, slot, p->clb + slot * AHCI_CMD_HDR_SIZE,
                       err == -EFAULT ? "not in RAM" : "malformed (CFL)");
        cmd_fail(p, slot, ATA_ER_ABRT, err == -EFAULT ? AHCI_PX_IS_HBFS : 0);
        return;
    }
    s->hdr = c.hdr;
    put_le32(s->hdr + 4, 0);
    if (ata_tf_parse(c.cfis, &tf)) {
        log_guest_once(COMP, "%s: slot %u: FIS type 0x%02x is not a Register H2D FIS", p->name,
                       slot, c.cfis[0]);
        cmd_fail(p, slot, ATA_ER_ABRT, 0);
        return;
    }
    if (!tf.c) {
        /* A control FIS (§10.4.1 software reset): SRST set resets, SRST
         * cleared ends it and the device sends its signature. */
        if (!(tf.control & 0x04)) {
            ata_disk_reset(&p->ata);
            if (p->dev == PORT_CDROM)
                atapi_reset(&p->cd);
            post_signature(p);
        }
        p->ci &= ~(1u << slot);
        p->taken &= ~(1u << slot);
        return;
    }
    struct ata_cmd *cmd = &s->cmd;
    if (p->dev == PORT_CDROM) {
        if (cd_decode(p, slot, &tf, &c, cmd))
            return;   /* done already */
    } else {
        ata_decode(&p->ata, &tf, cmd);
    }
    if (cmd->ncq && (cmd->tag != slot || !(p->sact & (1u << slot)))) {
        /* §5.6.4.1: the tag is the slot, its PxSACT bit set first */
        log_guest_once(COMP, "%s: NCQ tag %u in slot %u (SACT 0x%x)", p->name, cmd->tag, slot,
                       p->sact);
        cmd_fail(p, slot, ATA_ER_ABRT, 0);
        return;
    }
    switch (cmd->act) {
    case ATA_ACT_ABORT:
        cmd_fail(p, slot, cmd->error, 0);
        return;
    case ATA_ACT_NODATA:
        cmd_done(p, slot, cmd, 0);
        return;
    case ATA_ACT_DATA_IN:
    case ATA_ACT_TRIM: {
        bool in = cmd->act == ATA_ACT_DATA_IN;
        n = ahci_prdt_iov(gm, c.prd, c.prdtl, cmd->len, s->iov, AHCI_MAX_IOV);
        if (n < 0) {
            log_guest_once(COMP, "%s: slot %u: PRDT of %u entries for %u bytes: %s", p->name,
                           slot, c.prdtl, cmd->len, strerror(-n));
            cmd_fail(p, slot, ATA_ER_ABRT, n == -EFAULT ? AHCI_PX_IS_HBDS : 0);
            return;
        }
        if (in && cmd->identify)
            ata_identify(&p->ata, p->buf);
        else if (in && cmd->log >= 0)
            ata_read_log(&p->ata, cmd->log, p->buf);
        size_t at = 0;
        for (int i = 0; i < n; i++) {
            if (in)
                memcpy(s->iov[i].iov_base, p->buf + at, s->iov[i].iov_len);
            else
                memcpy(p->buf + at, s->iov[i].iov_base, s->iov[i].iov_len);
            at += s->iov[i].iov_len;
        }
        if (in) {
            cmd_done(p, slot, cmd, cmd->len);
            return;
        }
        uint64_t rg[ATA_TRIM_MAX_RANGES][2];
        int nr = ata_trim_parse(p->buf, cmd->len, p->ata.sectors, rg, ATA_TRIM_MAX_RANGES);
        if (nr < 0) {
            log_guest_once(COMP, "%s: TRIM range past the end (%" PRIu64 " sectors)", p->name,
                           p->ata.sectors);
            cmd_fail(p, slot, ATA_ER_ABRT | ATA_ER_IDNF, 0);
            return;
        }
        if (nr == 0) {
            cmd_done(p, slot, cmd, cmd->len);
            return;
        }
        for (int i = 0; i < nr; i++)
            s->ranges[i] = (struct blk_range){ .offset = rg[i][0], .len = rg[i][1] };
        r.op = BLK_OP_DISCARD;
        r.ranges = s->ranges;
        r.nr_ranges = (unsigned)nr;
        break;
    }
    case ATA_ACT_READ:
    case ATA_ACT_WRITE:
        n = ahci_prdt_iov(gm, c.prd, c.prdtl, cmd->len, s->iov, AHCI_MAX_IOV);
        if (n <= 0) {
            log_guest_once(COMP, "%s: slot %u: PRDT of %u entries for %u bytes: %s", p->name,
                           slot, c.prdtl, cmd->len, strerror(n ? -n : EINVAL));
            cmd_fail(p, slot, ATA_ER_ABRT, n == -EFAULT ? AHCI_PX_IS_HBDS : 0);
            return;
        }
        r.op = cmd->act == ATA_ACT_READ ? BLK_OP_READ : BLK_OP_WRITE;
        r.offset = cmd->lba * (cmd->cd ? ATAPI_SECTOR : ATA_SECTOR);
        r.len = cmd->len;
        r.iov = s->iov;
        r.niov = (unsigned)n;
        break;
    case ATA_ACT_FLUSH:
        r.op = BLK_OP_FLUSH;
        break;
    }
    err = blk_engine_submit(p->engine, 0, &r);
    if (err) {
        log_guest_once(COMP, "%s: slot %u not taken by the engine: %s", p->name, slot,
                       strerror(-err));
        cmd_fail(p, slot, ATA_ER_ABRT, 0);
        return;
    }
    p->busy |= 1u << slot;
    p->inflight++;
    if (cmd->ncq) {
        /* §5.6.4.2: the device took it (D2H with BSY clear, I = 0); the
         * slot may be issued again once its SDB FIS came (busy until then) */
        p->ci &= ~(1u << slot);
        p->taken &= ~(1u << slot);
    }
}

/* Take every newly issued slot (§5.3.2). */
static void port_process(struct ahci_port *p)
{
    if (!(p->cmd & AHCI_PX_CMD_ST) || p->halted || p->dev == PORT_EMPTY || !p->h->started)
        return;
    uint32_t todo = p->ci & ~p->taken & ~p->busy;
    for (unsigned s = 0; s < AHCI_NR_SLOTS && todo && !p->halted; s++) {
        if (!(todo & (1u << s)))
            continue;
        todo &= ~(1u << s);
        p->taken |= 1u << s;
        start_slot(p, s);
    }
}

static void io_start(void *opaque, unsigned q)
{
    struct ahci_port *p = opaque;
    (void)q;
    pthread_mutex_lock(&p->h->lock);
    blk_engine_arm_kick(p->engine, 0, p->kick_fd);
    port_process(p);
    pthread_mutex_unlock(&p->h->lock);
}

static void io_kick(void *opaque, unsigned q)
{
    struct ahci_port *p = opaque;
    (void)q;
    pthread_mutex_lock(&p->h->lock);
    port_process(p);
    blk_engine_arm_kick(p->engine, 0, p->kick_fd);
    pthread_mutex_unlock(&p->h->lock);
}

static void io_complete(void *opaque, unsigned q, uint64_t tag, int64_t result)
{
    struct ahci_port *p = opaque;
    struct ahci *h = p->h;
    unsigned slot = TAG_SLOT(tag);
    struct ahci_slot *s = &p->slots[slot];

    (void)q;
    pthread_mutex_lock(&h->lock);
    p->in_completion = true;
    p->busy &= ~(1u << slot);
    if (p->inflight)
        p->inflight--;
    if (TAG_GEN(tag) != p->gen) {
        /* stopped or reset meanwhile: forgotten (§10.3.2) */
        if (h->resetting && !any_inflight(h))
            h->resetting = false;
        port_process(p);
        p->in_completion = false;
        pthread_mutex_unlock(&h->lock);
        return;
    }
    const struct ata_cmd *c = &s->cmd;
    bool xfer = c->act == ATA_ACT_READ || c->act == ATA_ACT_WRITE;
    if (s->flushing) {
        result = result < 0 ? result : (int64_t)c->len;
    } else if (c->act == ATA_ACT_WRITE && result == (int64_t)c->len &&
               (!p->ata.wcache || c->fua)) {
        /* ACS-3 §7.45.7 (write cache disabled) and FUA: the data is on
         * stable storage before the command completes */
        struct blk_request fr = { .op = BLK_OP_FLUSH, .tag = tag };
        if (blk_engine_submit(p->engine, 0, &fr) == 0) {
            s->flushing = true;
            p->busy |= 1u << slot;
            p->inflight++;
            p->in_completion = false;
            pthread_mutex_unlock(&h->lock);
            return;
        }
        result = -EIO;
    }
    if (result < 0 || (xfer && (uint64_t)result != c->len)) {
        log_guest_once(COMP, "%s: %s at sector %" PRIu64 " failed: %s", p->name,
                       c->act == ATA_ACT_READ ? "read" : c->act == ATA_ACT_WRITE ? "write" :
                       c->act == ATA_ACT_FLUSH ? "flush" : "trim", c->lba,
                       result < 0 ? strerror((int)-result) : "short transfer");
        /* its CI (or, NCQ, SACT) bit stays set: the driver's recovery
         * clears ST and looks at which one failed */
        cmd_fail(p, slot, ATA_ER_ABRT, 0);
    } else if (c->ncq) {
        if (s->hdr)
            put_le32(s->hdr + 4, c->len);
        post_sdb(p, 1u << slot, ATA_ST_DRDY | ATA_ST_DSC, 0);
        port_irq(p);
    } else {
        cmd_done(p, slot, c, xfer ? c->len : (c->act == ATA_ACT_TRIM ? c->len : 0));
    }
    port_process(p);
    p->in_completion = false;
    pthread_mutex_unlock(&h->lock);
}

/* After each round of completions (and at stop): what they posted raises
 * the interrupt once. */
static void io_round_end(void *opaque, unsigned q)
{
    struct ahci_port *p = opaque;

    (void)q;
    pthread_mutex_lock(&p->h->lock);
    if (p->irq_event) {
        p->irq_event = false;
        irq_update(p->h, true);
    }
    pthread_mutex_unlock(&p->h->lock);
}

static void io_stop(void *opaque, unsigned q)
{
    io_round_end(opaque, q);
}

static const struct blk_engine_ops ahci_engine_ops = {
    .start = io_start, .kick = io_kick, .complete = io_complete, .round_end = io_round_end,
    .stop = io_stop,
};

/* ---- registers ---- */

static uint32_t port_read(struct ahci_port *p, unsigned off)
{
    switch (off) {
    case AHCI_PX_CLB:  return (uint32_t)p->clb;
    case AHCI_PX_CLBU: return (uint32_t)(p->clb >> 32);
    case AHCI_PX_FB:   return (uint32_t)p->fb;
    case AHCI_PX_FBU:  return (uint32_t)(p->fb >> 32);
    case AHCI_PX_IS:   return p->is;
    case AHCI_PX_IE:   return p->ie;
    case AHCI_PX_CMD: {
        uint32_t v = p->cmd & ~(AHCI_PX_CMD_FR | AHCI_PX_CMD_CR | 0x1F00u);
        if (p->cmd & AHCI_PX_CMD_FRE)
            v |= AHCI_PX_CMD_FR;
        if ((p->cmd & AHCI_PX_CMD_ST) || p->inflight)
            v |= AHCI_PX_CMD_CR;
        return v | (p->ccs & 0x1F) << 8;
    }
    case AHCI_PX_TFD:  return p->tfd;
    case AHCI_PX_SIG:  return p->sig;
    case AHCI_PX_SSTS: return p->ssts;
    case AHCI_PX_SCTL: return p->sctl;
    case AHCI_PX_SERR: return p->serr;
    case AHCI_PX_SACT: return p->sact;
    case AHCI_PX_CI:   return p->ci;
    default:           return 0;
    }
}

/* Returns true when the port's thread should look at the command list. */
static bool port_write(struct ahci_port *p, unsigned off, uint32_t v)
{
    struct ahci *h = p->h;

    switch (off) {
    case AHCI_PX_CLB:  p->clb = (p->clb & ~0xFFFFFFFFULL) | (v & ~0x3FFu); return false;
    case AHCI_PX_CLBU: p->clb = (uint32_t)p->clb | (uint64_t)v << 32; return false;
    case AHCI_PX_FB:   p->fb = (p->fb & ~0xFFFFFFFFULL) | (v & ~0xFFu); return false;
    case AHCI_PX_FBU:  p->fb = (uint32_t)p->fb | (uint64_t)v << 32; return false;
    case AHCI_PX_IS:
        p->is &= ~v;
        irq_update(h, true);
        return false;
    case AHCI_PX_IE:
        p->ie = v & PORT_IE_MASK;
        irq_update(h, true);
        return false;
    case AHCI_PX_CMD: {
        bool was = p->cmd & AHCI_PX_CMD_ST, now = v & AHCI_PX_CMD_ST;
        p->cmd = (v & PX_CMD_RW) | AHCI_PX_CMD_SUD | AHCI_PX_CMD_POD;
        if (v & AHCI_PX_CMD_CLO)
            p->tfd &= ~(uint32_t)(ATA_ST_BSY | ATA_ST_DRQ);   /* §3.3.7: CLO */
        if (was && !now)
            port_stop_cmds(p);
        if (!was && now)
            p->halted = false;
        return now;
    }
    case AHCI_PX_SCTL: {
        uint32_t old = p->sctl & 0xF;
        p->sctl = v & 0xFFF;
        if ((v & 0xF) == 1 && old != 1) {
            /* §10.4.2 COMRESET: the link goes down, commands are lost */
            port_stop_cmds(p);
            p->ssts = 0;
        } else if ((v & 0xF) == 0 && old == 1) {
            p->ssts = p->dev == PORT_EMPTY ? 0 : SSTS_PRESENT;
            if (p->dev != PORT_EMPTY)
                ata_disk_reset(&p->ata);
            post_signature(p);
        } else if ((v & 0xF) == 4) {
            p->ssts = 4;   /* offline */
        }
        return false;
    }
    case AHCI_PX_SERR:
        p->serr &= ~v;
        return false;
    case AHCI_PX_SACT:
        if (p->cmd & AHCI_PX_CMD_ST)
            p->sact |= v;
        return false;
    case AHCI_PX_CI:
        if (!(p->cmd & AHCI_PX_CMD_ST))
            return false;
        p->ci |= v;
        return true;
    default:
        return false;   /* TFD, SIG, SSTS: read-only; SNTF: none */
    }
}

static uint32_t hba_read(struct ahci *h, unsigned off)
{
    if (off >= AHCI_PORT_BASE) {
        unsigned i = (off - AHCI_PORT_BASE) / AHCI_PORT_SIZE;
        if (i < AHCI_NR_PORTS)
            return port_read(&h->port[i], (off - AHCI_PORT_BASE) % AHCI_PORT_SIZE);
        return 0;
    }
    switch (off) {
    case AHCI_CAP:
        /* S64A, SNCQ, SAM, ISS 3, NCS 31, NP 5 */
        return 1u << 31 | 1u << 30 | 1u << 18 | 3u << 20 | 31u << 8 | (AHCI_NR_PORTS - 1);
    case AHCI_GHC:
        return h->ghc | (h->resetting ? AHCI_GHC_HR : 0);
    case AHCI_IS:
        return hba_is(h);
    case AHCI_PI:
        return (1u << AHCI_NR_PORTS) - 1;
    case AHCI_VS:
        return 0x00010301;
    default:
        return 0;   /* CCC, EM, CAP2, BOHC, vendor: nothing */
    }
}

static int abar_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct ahci *h = opaque;
    uint8_t b[8];

    if (off >= AHCI_ABAR_SIZE || len > 8 || off + len > AHCI_ABAR_SIZE)
        return -EINVAL;
    uint64_t base = off & ~3ULL;
    pthread_mutex_lock(&h->lock);
    put_le32(b, hba_read(h, (unsigned)base));
    put_le32(b + 4, base + 4 < AHCI_ABAR_SIZE ? hba_read(h, (unsigned)base + 4) : 0);
    pthread_mutex_unlock(&h->lock);
    if (off - base + len > 8)
        return -EINVAL;
    memcpy(data, b + (off - base), len);
    return 0;
}

static int abar_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct ahci *h = opaque;
    const uint8_t *in = data;
    int kick[AHCI_NR_PORTS];
    unsigned nk = 0;

    if ((len != 4 && len != 8) || (off & 3) || off + len > AHCI_ABAR_SIZE) {
        log_guest_once(COMP, "%s: a %u-byte write at ABAR+0x%" PRIx64 " (dword registers)",
                       h->name, len, off);
        return 0;
    }
    pthread_mutex_lock(&h->lock);
    for (unsigned k = 0; k < len; k += 4) {
        unsigned o = (unsigned)off + k;
        uint32_t v = get_le32(in + k);
        if (o >= AHCI_PORT_BASE) {
            unsigned i = (o - AHCI_PORT_BASE) / AHCI_PORT_SIZE;
            if (i < AHCI_NR_PORTS && port_write(&h->port[i], (o - AHCI_PORT_BASE) % AHCI_PORT_SIZE, v) &&
                h->port[i].kick_fd >= 0)
                kick[nk++] = h->port[i].kick_fd;
        } else if (o == AHCI_GHC) {
            if (v & AHCI_GHC_HR)
                hba_reset(h);
            else {
                h->ghc = AHCI_GHC_AE | (v & AHCI_GHC_IE);
                irq_update(h, true);
            }
        } else if (o == AHCI_IS) {
            irq_update(h, true);   /* computed from the ports (§3.1.3) */
        }
    }
    pthread_mutex_unlock(&h->lock);
    for (unsigned i = 0; i < nk; i++)
        efd_signal(kick[i]);
    return 0;
}

static const struct bus_ops abar_ops = { .read = abar_read, .write = abar_write };

/* The index/data pair in BAR4 (AHCI 1.3.1 §2.4 SATACR1, as QEMU's
 * ich9-ahci): a dword index into ABAR at +10h, the register at +14h.
 * Other offsets and widths read 0 and ignore writes. */
static int idp_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct ahci *h = opaque;

    memset(data, 0, len);
    if (len != 4 || (off != AHCI_IDP_INDEX && off != AHCI_IDP_DATA))
        return 0;
    pthread_mutex_lock(&h->lock);
    uint32_t index = h->idp_index;
    pthread_mutex_unlock(&h->lock);
    if (off == AHCI_IDP_INDEX) {
        put_le32(data, index);
        return 0;
    }
    return abar_read(h, index, data, 4);
}

static int idp_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct ahci *h = opaque;

    if (len != 4 || (off != AHCI_IDP_INDEX && off != AHCI_IDP_DATA))
        return 0;
    pthread_mutex_lock(&h->lock);
    if (off == AHCI_IDP_INDEX)
        h->idp_index = get_le32(data) & (AHCI_ABAR_SIZE - 4);
    uint32_t index = h->idp_index;
    pthread_mutex_unlock(&h->lock);
    if (off == AHCI_IDP_DATA)
        return abar_write(h, index, data, 4);
    return 0;
}

static const struct bus_ops idp_ops = { .read = idp_read, .write = idp_write };

/* ---- PCI ---- */

static void ahci_bar_map(struct pci_device *d, unsigned bar, uint64_t addr)
{
    struct ahci *h = d->opaque;

    if (bar == AHCI_IDP_BAR) {
        if (h->idp_addr != PCI_BAR_UNMAPPED) {
            bus_unregister(h->vm.env->pio, h->idp_addr);
            h->idp_addr = PCI_BAR_UNMAPPED;
        }
        if (addr == PCI_BAR_UNMAPPED)
            return;
        if (bus_register(h->vm.env->pio, addr, AHCI_IDP_SIZE, h->name, &idp_ops, h)) {
            log_guest_once(COMP, "%s: BAR4 at port 0x%" PRIx64 " overlaps another range; not "
                           "decoded", h->name, addr);
            return;
        }
        h->idp_addr = addr;
        return;
    }
    if (bar != AHCI_ABAR)
        return;
    if (h->bar_addr != PCI_BAR_UNMAPPED) {
        bus_unregister(h->vm.env->mmio, h->bar_addr);
        h->bar_addr = PCI_BAR_UNMAPPED;
    }
    if (addr == PCI_BAR_UNMAPPED)
        return;
    if (bus_register(h->vm.env->mmio, addr, AHCI_ABAR_SIZE, h->name, &abar_ops, h)) {
        log_guest_once(COMP, "%s: ABAR at 0x%" PRIx64 " overlaps another range; not decoded",
                       h->name, addr);
        return;
    }
    h->bar_addr = addr;
}

static void ahci_cfg_written(struct pci_device *d, uint32_t off, unsigned len, uint32_t old)
{
    struct ahci *h = d->opaque;
    const uint32_t msi_lo = AHCI_MSI_AT, msi_hi = AHCI_MSI_AT + PCI_MSI_DATA_64 + 2;

    (void)old;
    if (off < PCI_COMMAND + 2 && off + len > PCI_COMMAND) {
        uint16_t cmd = (uint16_t)pci_cfg_get(d, PCI_COMMAND, 2);
        pthread_mutex_lock(&h->lock);
        h->intx_disabled = cmd & PCI_COMMAND_INTX_DISABLE;
        irq_update(h, false);
        pthread_mutex_unlock(&h->lock);
    }
    if (off < msi_hi && off + len > msi_lo) {
        struct pci_msi_state st;
        pci_msi_cap_state(d, AHCI_MSI_AT, &st);
        pci_msi_update(&h->msi, &st);
        pthread_mutex_lock(&h->lock);
        h->msi_on = st.enabled;
        irq_update(h, true);   /* PCI 3.0 §6.8.1: MSI on, INTx not used */
        pthread_mutex_unlock(&h->lock);
    }
}

static const struct pci_device_ops ahci_pci_ops = {
    .cfg_written = ahci_cfg_written,
    .bar_map = ahci_bar_map,
};

static int build_config_space(struct ahci *h)
{
    struct pci_device *d = &h->pdev;
    int r = 0;

    pci_device_init(d, h->name, AHCI_VENDOR_ID, AHCI_DEVICE_ID, AHCI_CLASS, 0x02,
                    PCI_HEADER_TYPE_NORMAL, PCI_CFG_LEGACY_SIZE);
    d->ops = &ahci_pci_ops;
    d->opaque = h;
    pci_cfg_set(d, PCI_SUBSYSTEM_VENDOR_ID, 2, 0x1AF4);   /* as QEMU's ich9-ahci */
    pci_cfg_set(d, PCI_SUBSYSTEM_ID, 2, 0x1100);
    pci_device_set_intx_pin(d, 1);
    r |= pci_device_set_bar(d, AHCI_IDP_BAR, PCI_BAR_IO, false, AHCI_IDP_SIZE);
    r |= pci_device_set_bar(d, AHCI_ABAR, PCI_BAR_MEM32, false, AHCI_ABAR_SIZE);
    if (pci_pm_cap_add(d, AHCI_PM_AT) < 0 || pci_msi_cap_add(d, AHCI_MSI_AT, 1, false) < 0 ||
        pci_cap_add(d, AHCI_SATA_AT, AHCI_CAP_ID_SATA, 8) < 0)
        r = -EINVAL;
    /* §2.4: revision 1.0; SATACR1: BARLOC 1000b (BAR4 at 20h), BAROFST
     * 4 dwords (the index at +10h) */
    pci_cfg_set(d, AHCI_SATA_AT + 2, 2, 0x0010);
    pci_cfg_set(d, AHCI_SATA_AT + 4, 4, (AHCI_IDP_INDEX / 4) << 4 | 0x8);
    return r ? -EINVAL : 0;
}

/* Power-on: registers, MSI off, the line low (h->lock held). */
static void controller_reset(struct ahci *h)
{
    hba_reset(h);
    for (unsigned i = 0; i < AHCI_NR_PORTS; i++)
        h->port[i].clb = h->port[i].fb = 0;
    h->msi_on = false;
    irq_update(h, false);
}

/* ---- life cycle ---- */

static void port_fini(struct ahci_port *p)
{
    blk_engine_destroy(p->engine);
    p->engine = NULL;
    if (p->img_open)
        blk_image_close(&p->img);
    p->img_open = false;
    if (p->kick_fd >= 0)
        close(p->kick_fd);
    p->kick_fd = -1;
    for (unsigned s = 0; s < AHCI_NR_SLOTS; s++) {
        free(p->slots[s].iov);
        p->slots[s].iov = NULL;
    }
}

void ahci_destroy(struct ahci *h)
{
    if (!h)
        return;
    ahci_unplug(h);
    for (unsigned i = 0; i < AHCI_NR_PORTS; i++)
        port_fini(&h->port[i]);
    pci_msi_off(&h->msi);
    if (h->msi_gsi >= 0) {
        irq_route_remove(h->vm.irq, (unsigned)h->msi_gsi);
        irq_commit(h->vm.irq);
    }
    if (h->msi_fd >= 0)
        close(h->msi_fd);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static int port_init(struct ahci *h, unsigned i, const struct disk_arg *a)
{
    struct ahci_port *p = &h->port[i];
    const char *base = strrchr(a->path, '/');
    int err;

    snprintf(p->name, sizeof(p->name), "%s port %u (%.20s)", h->name, i, base ? base + 1 : a->path);
    err = blk_image_open(&p->img, COMP, a->path, a->readonly || a->cdrom,
                         a->cache == DISK_CACHE_NONE);
    if (err)
        return err;
    p->img_open = true;
    p->dev = a->cdrom ? PORT_CDROM : PORT_DISK;
    if (a->cdrom && (p->img.size % ATAPI_SECTOR || p->img.size == 0)) {
        log_err(COMP, "--cdrom %s: the image is %" PRIu64 " bytes, not a whole number of "
                "2048-byte sectors; a CD/DVD image (ISO 9660, UDF) is", a->path, p->img.size);
        return -EINVAL;
    }
    if (a->cdrom) {
        struct atapi_dev *cd = &p->cd;
        cd->sectors = p->img.size / ATAPI_SECTOR;
        snprintf(cd->vendor, sizeof(cd->vendor), "MINIVMM");
        snprintf(cd->product, sizeof(cd->product), "SATA CD-ROM");
        snprintf(cd->revision, sizeof(cd->revision), "1.0");
        atapi_reset(cd);
    }
    p->boot_index = a->boot_index;
    struct ata_disk *d = &p->ata;
    d->sectors = p->img.size / ATA_SECTOR;
    d->readonly = a->readonly || a->cdrom;
    d->discard = a->discard && !d->readonly;
    d->physical_block = p->img.logical_block;
    if (a->serial[0])
        snprintf(d->serial, sizeof(d->serial), "%s", a->serial);
    else
        snprintf(d->serial, sizeof(d->serial), "MV%016" PRIX64, p->img.ino ^ (p->img.dev << 40));
    snprintf(d->firmware, sizeof(d->firmware), "1.0");
    snprintf(d->model, sizeof(d->model), a->cdrom ? "minivmm SATA CD-ROM" : "minivmm SATA disk");
    ata_disk_reset(d);

    p->kick_fd = eventfd(0, EFD_CLOEXEC);
    if (p->kick_fd < 0) {
        err = -errno;
        log_err(COMP, "%s: cannot create an eventfd: %s", p->name, strerror(errno));
        return err;
    }
    for (unsigned s = 0; s < AHCI_NR_SLOTS; s++) {
        p->slots[s].iov = calloc(AHCI_MAX_IOV, sizeof(struct iovec));
        if (!p->slots[s].iov)
            return -ENOMEM;
    }
    char tname[16];
    snprintf(tname, sizeof(tname), "sata%u", i);
    struct blk_engine_config ec = {
        .name = p->name, .thread_name = tname, .img = &p->img, .nr_queues = 1,
        .nr_threads = 1, .depth = AHCI_NR_SLOTS, .max_ranges = ATA_TRIM_MAX_RANGES,
        .cpu = h->vm.io_cpu, .ops = &ahci_engine_ops, .opaque = p,
    };
    err = blk_engine_create(&ec, &p->engine);
    if (err)
        return err;
    log_debug(COMP, "%s: %s, %s of %" PRIu64 " bytes%s", p->name, a->path,
              a->cdrom ? "ATAPI CD-ROM" : "SATA disk", p->img.size,
              d->readonly ? ", read-only" : "");
    return 0;
}

int ahci_create(const struct ahci_vm *vm, const struct disk_arg *const *disks, unsigned n,
                struct ahci **out)
{
    struct ahci *h = calloc(1, sizeof(*h));
    int err;

    if (!h)
        return -ENOMEM;
    snprintf(h->name, sizeof(h->name), "ahci0");
    h->vm = *vm;
    h->bar_addr = h->idp_addr = PCI_BAR_UNMAPPED;
    h->intx_gsi = -1;
    h->msi_gsi = -1;
    pthread_mutex_init(&h->lock, NULL);
    pci_msi_init(&h->msi, &ahci_msi_ops, h);
    for (unsigned i = 0; i < AHCI_NR_PORTS; i++) {
        h->port[i].h = h;
        h->port[i].idx = i;
        h->port[i].kick_fd = -1;
        h->port[i].boot_index = PCIDEV_NO_BOOT;
        snprintf(h->port[i].name, sizeof(h->port[i].name), "%s port %u", h->name, i);
    }
    h->msi_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->msi_fd < 0) {
        err = -errno;
        log_err(COMP, "%s: cannot create an eventfd: %s", h->name, strerror(errno));
        goto fail;
    }
    if (n > AHCI_NR_PORTS) {
        log_err(COMP, "%s %s: the AHCI has %u ports; at most %u SATA disks and CD-ROMs",
                disks[AHCI_NR_PORTS]->cdrom ? "--cdrom" : "--disk", disks[AHCI_NR_PORTS]->path,
                AHCI_NR_PORTS, AHCI_NR_PORTS);
        err = -E2BIG;
        goto fail;
    }
    for (unsigned i = 0; i < n; i++) {
        err = port_init(h, i, disks[i]);
        if (err)
            goto fail;
    }
    h->nr_ports = n;
    err = build_config_space(h);
    if (err) {
        log_err(COMP, "%s: cannot lay out the PCI config space", h->name);
        goto fail;
    }
    controller_reset(h);
    *out = h;
    return 0;
fail:
    ahci_destroy(h);
    return err;
}

int ahci_plug(struct ahci *h, struct pci_bus *bus, uint8_t devfn,
              int (*intx_gsi)(void *ctx, const struct pci_device *d, uint8_t pin), void *ctx)
{
    int r = pci_bus_add(bus, NULL, devfn, &h->pdev);
    if (r)
        return r;
    h->bus = bus;
    h->plugged = true;
    if (intx_gsi) {
        int g = intx_gsi(ctx, &h->pdev, 1);
        if (g >= 0) {
            h->intx_gsi = g;
            pci_cfg_set(&h->pdev, PCI_INTERRUPT_LINE, 1, (uint32_t)g & 0xFF);
        }
    }
    for (unsigned i = 0; i < AHCI_NR_PORTS; i++)
        if (h->port[i].engine) {
            r = blk_engine_start(h->port[i].engine);
            if (r)
                return r;
        }
    pthread_mutex_lock(&h->lock);
    h->started = true;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

void ahci_unplug(struct ahci *h)
{
    if (!h || !h->plugged)
        return;
    pci_bus_remove(h->bus, &h->pdev);
    h->plugged = false;
    h->bus = NULL;
    if (h->bar_addr != PCI_BAR_UNMAPPED) {
        bus_unregister(h->vm.env->mmio, h->bar_addr);
        h->bar_addr = PCI_BAR_UNMAPPED;
    }
    if (h->idp_addr != PCI_BAR_UNMAPPED) {
        bus_unregister(h->vm.env->pio, h->idp_addr);
        h->idp_addr = PCI_BAR_UNMAPPED;
    }
    pthread_mutex_lock(&h->lock);
    h->started = false;
    h->idp_index = 0;
    pthread_mutex_unlock(&h->lock);
    /* without the lock: completions take it */
    for (unsigned i = 0; i < AHCI_NR_PORTS; i++)
        if (h->port[i].engine)
            blk_engine_stop(h->port[i].engine);
    pci_msi_off(&h->msi);
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < AHCI_NR_PORTS; i++) {
        h->port[i].inflight = 0;
        h->port[i].busy = 0;
    }
    controller_reset(h);
    if (h->intx_level && h->intx_gsi >= 0)
        dev_irq_set(h->vm.env, (unsigned)h->intx_gsi, 0);
    h->intx_level = false;
    h->intx_gsi = -1;
    h->intx_disabled = false;
    pthread_mutex_unlock(&h->lock);
    if (build_config_space(h))
        log_err(COMP, "%s: cannot lay out the PCI config space again", h->name);
}

struct pci_device *ahci_pci(struct ahci *h)
{
    return &h->pdev;
}

int ahci_msi_fd(const struct ahci *h)
{
    return h->msi_fd;
}

/* ---- the controller in the machine's PCI list ---- */

static int ahci_pcidev_plug(void *dev, const struct pcidev_where *w)
{
    return ahci_plug(dev, w->bus, w->devfn, w->intx_gsi, w->intx_ctx);
}

static void ahci_pcidev_unplug(void *dev)
{
    ahci_unplug(dev);
}

static void ahci_pcidev_destroy(void *dev)
{
    ahci_destroy(dev);
}

/* QEMU's path for a drive on ich9-ahci port N, which OvmfPkg's
 * QemuBootOrderLib translates to PciRoot(0x0)/Pci(0x1F,0x2)/Sata(N,0xFFFF,0)
 * for disks and CD-ROMs alike. */
static int ahci_pcidev_boot_entry(void *dev, const struct pcidev_where *w, unsigned i,
                                  int *boot_index, char *buf, size_t len)
{
    struct ahci *h = dev;

    if (i >= h->nr_ports)
        return -ENOENT;
    *boot_index = h->port[i].boot_index;
    int n = snprintf(buf, len, "/pci@i0cf8/pci8086,2922@%x,%x/drive@%x/disk@0", w->slot,
                     PCI_FUNC(w->devfn), i);
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct pcidev_ops ahci_pcidev_ops = {
    .plug = ahci_pcidev_plug,
    .unplug = ahci_pcidev_unplug,
    .destroy = ahci_pcidev_destroy,
    .boot_entry = ahci_pcidev_boot_entry,
};

int ahci_attach(const struct pcidev_host *host, const struct disk_args *a,
                struct pcidev_list *l)
{
    const struct disk_arg *disks[DISK_ARGS_MAX];
    unsigned n = 0;
    struct ahci *h;
    struct pcidev *d;

    for (unsigned i = 0; i < a->nr; i++)
        if (a->disk[i].cdrom || a->disk[i].iface == DISK_IF_SATA)
            disks[n++] = &a->disk[i];
    if (n == 0)
        return 0;
    struct ahci_vm vm = { .env = host->env, .irq = host->irq, .vm_fd = host->vm_fd,
                          .io_cpu = host->io_pin };
    int err = ahci_create(&vm, disks, n, &h);
    if (err)
        return err;
    err = pcidev_add(l, "ahci0", PCIDEV_STORAGE, PCIDEV_FIXED, &ahci_pcidev_ops, h, &d);
    if (err) {
        ahci_destroy(h);
        return err;
    }
    d->fixed_devfn = Q35_AHCI_DEVFN;
    d->boot_index = PCIDEV_NO_BOOT;
    for (unsigned i = 0; i < n; i++)
        if (disks[i]->boot_index != DISK_NO_BOOTINDEX &&
            (d->boot_index == PCIDEV_NO_BOOT || disks[i]->boot_index < d->boot_index))
            d->boot_index = disks[i]->boot_index;
    return 0;
}
