/* NVMe 1.4 controller: see devices/storage/nvme.h.
 *
 * Controller registers (NVMe 1.4 §3.1), BAR0 + 0x0000; 32- or 64-bit
 * accesses (narrower ones work on the dword they touch):
 *   0x00 CAP    RO  MQES 1023, CQR 1, AMS 0, TO 15 (7.5 s), DSTRD 0,
 *                   NSSRS 0, CSS bit 0 (NVM), MPSMIN = MPSMAX = 0 (4 KiB)
 *   0x08 VS     RO  1.4.0
 *   0x0C INTMS  W1S interrupt mask set (pin-based interrupts only)
 *   0x10 INTMC  W1C interrupt mask clear
 *   0x14 CC     RW  EN 0, CSS 6:4, MPS 10:7, AMS 13:11, SHN 15:14,
 *                   IOSQES 19:16, IOCQES 23:20
 *   0x1C CSTS   RO  RDY 0, CFS 1, SHST 3:2
 *   0x20 NSSR   -   not supported (writes ignored)
 *   0x24 AQA    RW  ASQS 11:0, ACQS 27:16 (0-based)
 *   0x28 ASQ    RW  64-bit, page aligned
 *   0x30 ACQ    RW  64-bit, page aligned
 *   everything else up to 0x1000 reads 0 (no CMB, boot partitions, PMR)
 * Doorbells (§3.1.24, §3.1.25), DSTRD 0: SQ y tail at 0x1000 + 8y, CQ y
 * head at 0x1000 + 8y + 4. A doorbell of a queue that does not exist, or a
 * value past the queue's end, changes nothing and raises an Asynchronous
 * Event (error type: Invalid Doorbell Register / Write Value, §5.2.1).
 *
 * Reset and shutdown (§7.6): CC.EN 0 -> 1 checks the admin queue
 * (AQA/ASQ/ACQ inside RAM, CSS NVM, MPS 4 KiB, AMS round robin; a bad one
 * sets CSTS.CFS) and starts the engine; CSTS.RDY follows. CC.EN 1 -> 0
 * stops the engine (it waits for the requests in flight; their
 * completions are dropped: the host gave up the queues), deletes every
 * queue, forgets features and the held AERs, and clears CSTS. AQA, ASQ and
 * ACQ survive (§7.6.2). CC.SHN != 0 waits for the requests in flight,
 * fdatasyncs the image and reports CSTS.SHST = complete.
 *
 * Threads: registers (and the MSI-X table) on vCPU threads under one
 * mutex; doorbells lock-free (the value is stored in the queue and the
 * queue's eventfd written). Every queue -- admin and I/O -- is a queue of
 * the block engine served by ONE engine thread per controller: queue q's
 * kick is SQ q's eventfd. Admin commands therefore run on that thread too,
 * and queue creation, deletion, completion posting and the CQ-full
 * holding need no locks among themselves; the vCPU side touches queue
 * state only while the engine is stopped (reset).
 *
 * Doorbells and ioeventfds: an NVMe doorbell carries a value (the new
 * tail) and a KVM ioeventfd without datamatch drops it. So a tail
 * doorbell exits (the value stored, the queue's eventfd -- what the engine
 * thread waits on -- written) until the host sets up shadow doorbells
 * with Doorbell Buffer Config (§5.7, OACS bit 8; Linux's nvme does, for
 * its I/O queues): from then on the I/O SQ tail doorbells are KVM
 * ioeventfds on the SQs' eventfds (vmm/ioeventfd.h), the tail is read from
 * the shadow buffer when the engine thread takes the queue, and the
 * EventIdx buffer tells the host how far the device has read (so it rings
 * only when the device may be waiting). An I/O SQ doorbell write that
 * still exits is forwarded to the same eventfd. The admin queue and every
 * CQ head doorbell keep exiting (Windows' stornvme has no shadow
 * doorbells: its doorbells exit).
 *
 * Completions (§4.6): the CQE's first 12 bytes, then the dword holding
 * the phase tag, so a driver polling the phase never sees a half entry. A
 * full CQ (tail + 1 == the head the host last wrote) holds completions
 * back, in order, until the host's CQ head doorbell makes room (it wakes
 * the engine through the admin eventfd). Interrupts once per engine round
 * for every CQ that got entries: the CQ's MSI-X vector (an eventfd, bound
 * to a KVM MSI route while unmasked, devices/pci/msix.h), or with MSI-X
 * off INTx, asserted while an interrupt-enabled CQ holds entries the host
 * has not consumed and INTMS bit 0 is clear. */
#include "devices/storage/nvme.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/block/blk_engine.h"
#include "devices/block/image.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/storage/nvme_cmd.h"
#include "vmm/bus.h"
#include "vmm/dev_env.h"
#include "vmm/gm.h"
#include "vmm/ioeventfd.h"
#include "vmm/irq.h"
#include "vmm/log.h"

#define COMP "nvme"
#define ADM_DBBUF  0x7C   /* Doorbell Buffer Config (§5.7) */

/* registers */
#define REG_CAP    0x00
#define REG_VS     0x08
#define REG_INTMS  0x0C
#define REG_INTMC  0x10
#define REG_CC     0x14
#define REG_CSTS   0x1C
#define REG_NSSR   0x20
#define REG_AQA    0x24
#define REG_ASQ    0x28
#define REG_ACQ    0x30
#define REG_IMAGE  0x40

#define CC_EN       (1u << 0)
#define CC_CSS(v)   (((v) >> 4) & 7)
#define CC_MPS(v)   (((v) >> 7) & 0xF)
#define CC_AMS(v)   (((v) >> 11) & 7)
#define CC_SHN(v)   (((v) >> 14) & 3)
#define CC_IOSQES(v) (((v) >> 16) & 0xF)
#define CC_IOCQES(v) (((v) >> 20) & 0xF)
#define CC_WMASK    0x00FFFFF1u
#define CSTS_RDY    (1u << 0)
#define CSTS_CFS    (1u << 1)
#define CSTS_SHST_DONE (2u << 2)

#define NVME_VS     0x00010400u
#define CAP_TO      15u
#define NVME_DEPTH  64u                       /* commands in flight per SQ */
#define NVME_MAX_IOV ((1u << NVME_MDTS) + 1)
#define NVME_AERL   3u                        /* 0-based: 4 outstanding */
#define NVME_NR_VECTORS NVME_NR_QUEUES

/* config space */
#define CAP_PM_AT   0x40
#define CAP_MSIX_AT 0x48
#define CAP_EXP_AT  0x60

/* features (§5.21.1) */
#define FEAT_ARBITRATION 0x01
#define FEAT_POWER_MGMT  0x02
#define FEAT_TEMP_THRESH 0x04
#define FEAT_ERROR_RECOV 0x05
#define FEAT_VWC         0x06
#define FEAT_NUM_QUEUES  0x07
#define FEAT_IRQ_COALESCE 0x08
#define FEAT_IRQ_CONFIG  0x09
#define FEAT_WRITE_ATOMIC 0x0A
#define FEAT_ASYNC_EVENT 0x0B

/* asynchronous events (§5.2): error type, Invalid Doorbell Register /
 * Invalid Doorbell Write Value, info in 15:8, log page 01h in 23:16 */
#define AEV_DB_REG   0
#define AEV_DB_VALUE 1

struct nvme_slot {
    uint16_t cid, sqid, status;
    uint32_t dw0;
    uint8_t opc;
    bool flush_after;           /* FUA (or no volatile cache): flush once written */
    struct iovec *iov;          /* NVME_MAX_IOV */
    struct blk_range *ranges;   /* NVME_MAX_DSM_RANGES (I/O queues) */
    int next_free;
    struct nvme_slot *next_held;
};

struct nvme_sq {
    int efd;                    /* the tail doorbell's eventfd: the engine kick */
    _Atomic uint32_t tail;      /* last doorbell value */
    _Atomic uint32_t size;      /* entries; 0 = no queue */
    uint64_t base;
    uint32_t head;
    uint16_t cqid;
    struct nvme_slot *slots;    /* NVME_DEPTH */
    int free_head;
    unsigned inflight;          /* slots in use */
    bool starved;               /* stopped taking commands: no free slot */
    bool shadow;                /* tail from the shadow doorbell buffer */
    bool deleting;
    struct nvme_slot *del_slot; /* the Delete I/O SQ command waiting */
};

struct nvme_cq {
    _Atomic uint32_t size;      /* entries; 0 = no queue */
    _Atomic uint32_t head;      /* last doorbell value */
    _Atomic uint32_t tail;      /* published to the host */
    uint64_t base;
    uint16_t iv;
    bool ien, phase, notify;
    bool shadow;                /* head also from the shadow doorbell buffer */
    unsigned nr_sq;             /* SQs using it */
    struct nvme_slot *held, **held_tail;
    _Atomic bool has_held;
};

struct nvme {
    char name[32];
    struct nvme_vm vm;
    struct blk_image img;
    bool img_open;
    struct blk_engine *engine;
    struct nvme_ns_info ns;
    char serial[21];
    uint8_t uuid[16];

    /* PCI */
    struct pci_device pdev;
    struct pci_bus *bus;
    bool plugged;
    uint64_t bar_addr;
    struct pci_msix msix;
    int vec_fd[NVME_NR_VECTORS];
    int vec_gsi[NVME_NR_VECTORS];
    bool vec_attached[NVME_NR_VECTORS];
    int intx_gsi;
    bool intx_level;
    pthread_mutex_t intx_lock;
    _Atomic bool msix_on, intx_disabled;

    /* registers (vCPU side, under lock) */
    pthread_mutex_t lock;
    _Atomic uint32_t cc, csts, intms;
    uint32_t aqa;
    uint64_t asq, acq;
    bool engine_on;
    _Atomic bool resetting;

    /* queues (the engine thread; the vCPU side while it is stopped) */
    struct nvme_sq sq[NVME_NR_QUEUES];
    struct nvme_cq cq[NVME_NR_QUEUES];

    /* features and events (the engine thread) */
    unsigned nr_ioq_sq, nr_ioq_cq;   /* granted by Number of Queues */
    bool queues_set;
    uint32_t feat_arb, feat_power, feat_coalesce, feat_atomic, feat_aec;
    uint16_t temp_over, temp_under;
    bool wce;
    uint32_t irq_cfg_cd;        /* bit v: coalescing disabled for vector v */
    struct nvme_slot *aer[NVME_AERL + 1];
    unsigned nr_aer;
    _Atomic uint32_t aev_pending;    /* bit per AEV_* */
    /* shadow doorbells (the engine thread; cleared by a reset) */
    uint64_t dbs, eis;          /* Doorbell Buffer Config: PRP1, PRP2 */
    _Atomic bool dbbuf_on;
    /* ioeventfds on the I/O SQ tail doorbells (ioev_lock) */
    pthread_mutex_t ioev_lock;
    uint64_t ioev_bar;          /* where they are assigned, PCI_BAR_UNMAPPED if not */
    uint32_t ioev_len[NVME_NR_QUEUES];   /* 0 (any length) or 4; ~0 not assigned */
    uint32_t aev_masked;        /* an error event reported, until its log is read */
};

/* ---- helpers ---- */

static void efd_signal(int fd)
{
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
        log_guest_once(COMP, "cannot signal an eventfd: %s", strerror(errno));
}

static void efd_drain(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v;
    if (fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN))
        (void)!read(fd, &v, sizeof(v));
}

static bool efd_pending(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void put_le(uint8_t *p, uint64_t v, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned len)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A space-padded ASCII field (Identify's SN, MN, FR). */
static void put_str(uint8_t *p, const char *s, size_t len)
{
    size_t n = strlen(s);
    memset(p, ' ', len);
    memcpy(p, s, n < len ? n : len);
}

static void fatal(struct nvme *c, const char *why)
{
    if (!(atomic_fetch_or(&c->csts, CSTS_CFS) & CSTS_CFS))
        log_warn(COMP, "%s: controller fatal status (%s); the host must reset it", c->name, why);
}

/* ---- interrupts ---- */

static void intx_update_locked(struct nvme *c)
{
    bool want = false;

    if (!atomic_load(&c->msix_on) && !atomic_load(&c->intx_disabled) &&
        !(atomic_load(&c->intms) & 1) && c->intx_gsi >= 0) {
        for (unsigned i = 0; i < NVME_NR_QUEUES && !want; i++) {
            struct nvme_cq *cq = &c->cq[i];
            want = atomic_load(&cq->size) && cq->ien &&
                   atomic_load(&cq->head) != atomic_load(&cq->tail);
        }
    }
    if (want != c->intx_level) {
        c->intx_level = want;
        dev_irq_set(c->vm.env, (unsigned)c->intx_gsi, want);
    }
}

static void intx_update(struct nvme *c)
{
    pthread_mutex_lock(&c->intx_lock);
    intx_update_locked(c);
    pthread_mutex_unlock(&c->intx_lock);
}

/* Once per round: every CQ that got entries interrupts (§7.5). */
static void cq_shadow_head(struct nvme *c, unsigned qid);

static void publish(struct nvme *c)
{
    bool intx = false;

    for (unsigned i = 0; i < NVME_NR_QUEUES; i++) {
        struct nvme_cq *cq = &c->cq[i];
        if (!cq->notify)
            continue;
        cq->notify = false;
        /* §5.7: the CQ's EventIdx at the head known, so the host rings the
         * head doorbell as it consumes these (INTx and held entries need it) */
        if (cq->shadow)
            cq_shadow_head(c, i);
        if (!cq->ien)
            continue;
        if (atomic_load(&c->msix_on)) {
            if (cq->iv < NVME_NR_VECTORS)
                efd_signal(c->vec_fd[cq->iv]);
        } else {
            intx = true;
        }
    }
    if (intx)
        intx_update(c);
}

static int nvme_msix_enable(void *opaque, enum pci_irq_kind kind, unsigned nr)
{
    (void)opaque;
    (void)kind;
    (void)nr;
    return 0;
}

static void nvme_msix_disable(void *opaque, enum pci_irq_kind kind)
{
    (void)opaque;
    (void)kind;
}

static int nvme_msix_route(void *opaque, enum pci_irq_kind kind, unsigned v, uint64_t addr,
                           uint32_t data)
{
    struct nvme *c = opaque;

    (void)kind;
    if (v >= NVME_NR_VECTORS)
        return -EINVAL;
    return irq_msi_vector_route(c->vm.irq, c->vm.vm_fd, c->vec_fd[v], &c->vec_gsi[v],
                                &c->vec_attached[v], addr, data);
}

static void nvme_msix_unroute(void *opaque, enum pci_irq_kind kind, unsigned v)
{
    struct nvme *c = opaque;

    (void)kind;
    if (v < NVME_NR_VECTORS)
        irq_msi_vector_unroute(c->vm.irq, c->vm.vm_fd, c->vec_fd[v], c->vec_gsi[v],
                               &c->vec_attached[v]);
}

static bool nvme_msix_pending(void *opaque, enum pci_irq_kind kind, unsigned v)
{
    struct nvme *c = opaque;

    (void)kind;
    return v < NVME_NR_VECTORS && efd_pending(c->vec_fd[v]);
}

static const struct pci_irq_ops nvme_msix_ops = {
    .enable = nvme_msix_enable, .disable = nvme_msix_disable, .route = nvme_msix_route,
    .unroute = nvme_msix_unroute, .pending = nvme_msix_pending,
};

/* ---- ioeventfds (shadow doorbells on) ---- */

#define IOEV_NONE (~0u)

static void ioev_off_locked(struct nvme *c)
{
    if (c->ioev_bar == PCI_BAR_UNMAPPED)
        return;
    for (unsigned q = 1; q < NVME_NR_QUEUES; q++) {
        if (c->ioev_len[q] == IOEV_NONE)
            continue;
        ioeventfd_deassign(c->vm.vm_fd, c->sq[q].efd, c->ioev_bar + NVME_DB_OFF + 8 * q,
                           c->ioev_len[q], false, NULL);
        c->ioev_len[q] = IOEV_NONE;
    }
    c->ioev_bar = PCI_BAR_UNMAPPED;
}

/* Assign them at BAR0's address bar (PCI_BAR_UNMAPPED: none) if the host
 * has shadow doorbells; KVM then signals the SQs' eventfds itself. */
static void ioev_update(struct nvme *c, uint64_t bar)
{
    pthread_mutex_lock(&c->ioev_lock);
    bool want = atomic_load(&c->dbbuf_on) && bar != PCI_BAR_UNMAPPED && c->vm.vm_fd >= 0;
    if (!want || c->ioev_bar != bar)
        ioev_off_locked(c);
    if (want && c->ioev_bar == PCI_BAR_UNMAPPED) {
        c->ioev_bar = bar;
        for (unsigned q = 1; q < NVME_NR_QUEUES; q++) {
            uint64_t a = bar + NVME_DB_OFF + 8 * q;
            /* any length first (KVM's fast MMIO path), then the dword */
            if (ioeventfd_assign(c->vm.vm_fd, c->sq[q].efd, a, 0, false, NULL) == 0) {
                c->ioev_len[q] = 0;
            } else if (ioeventfd_assign(c->vm.vm_fd, c->sq[q].efd, a, 4, false, NULL) == 0) {
                c->ioev_len[q] = 4;
            } else {
                log_warn(COMP, "%s: no ioeventfd for SQ %u's doorbell at 0x%" PRIx64 "; it "
                         "takes the slower exit path", c->name, q, a);
            }
        }
    }
    pthread_mutex_unlock(&c->ioev_lock);
}

/* ---- queues and completions (the engine thread) ---- */

static void slots_init(struct nvme_sq *sq)
{
    for (unsigned s = 0; s < NVME_DEPTH; s++)
        sq->slots[s].next_free = s + 1 < NVME_DEPTH ? (int)(s + 1) : -1;
    sq->free_head = 0;
    sq->inflight = 0;
    sq->starved = false;
}

static struct nvme_slot *slot_alloc(struct nvme_sq *sq)
{
    if (sq->free_head < 0)
        return NULL;
    struct nvme_slot *s = &sq->slots[sq->free_head];
    sq->free_head = s->next_free;
    sq->inflight++;
    s->status = NVME_SC_SUCCESS;
    s->dw0 = 0;
    s->flush_after = false;
    s->next_held = NULL;
    return s;
}

static void process_sq(struct nvme *c, unsigned qid);
static void post_done(struct nvme *c, struct nvme_slot *s);

static void aer_raise(struct nvme *c, unsigned info);

/* §5.7: the CQ head the host put in the shadow buffer (checked as the
 * doorbell is), and the EventIdx set to it so the host rings once it
 * moves on. */
static void cq_shadow_head(struct nvme *c, unsigned qid)
{
    struct nvme_cq *cq = &c->cq[qid];
    uint32_t v, size = atomic_load(&cq->size);
    uint32_t old = atomic_load(&cq->head), tail = atomic_load(&cq->tail);

    if (gm_read(c->vm.env->gm, c->dbs + 8ULL * qid + 4, &v, 4))
        return;
    if (v >= size || (v + size - old) % size > (tail + size - old) % size) {
        aer_raise(c, AEV_DB_VALUE);
        return;
    }
    atomic_store(&cq->head, v);
    gm_write(c->vm.env->gm, c->eis + 8ULL * qid + 4, &v, 4);
}

/* Write one CQE; false when the CQ is full (§4.6: tail + 1 == head). */
static bool cq_post(struct nvme *c, struct nvme_cq *cq, const struct nvme_slot *s)
{
    uint32_t size = atomic_load(&cq->size);
    uint32_t tail = atomic_load(&cq->tail);

    if (!size)
        return true;   /* no queue: nowhere to say it */
    if ((tail + 1) % size == atomic_load(&cq->head) && cq->shadow)
        cq_shadow_head(c, (unsigned)(cq - c->cq));
    if ((tail + 1) % size == atomic_load(&cq->head))
        return false;
    uint8_t *p = gm_ptr(c->vm.env->gm, cq->base + (uint64_t)tail * NVME_CQE_SIZE, NVME_CQE_SIZE);
    if (!p) {
        fatal(c, "completion queue outside RAM");
        return true;
    }
    struct nvme_cqe e = {
        .dw0 = s->dw0, .sqhd = (uint16_t)c->sq[s->sqid].head, .sqid = s->sqid, .cid = s->cid,
        .status = nvme_cqe_status(s->status, cq->phase),
    };
    memcpy(p, &e, 12);
    uint32_t dw3;
    memcpy(&dw3, (const uint8_t *)&e + 12, 4);
    __atomic_store_n((uint32_t *)(void *)(p + 12), dw3, __ATOMIC_RELEASE);
    if (++tail == size) {
        tail = 0;
        cq->phase = !cq->phase;
    }
    atomic_store(&cq->tail, tail);
    cq->notify = true;
    return true;
}

static void finish_sq_delete(struct nvme *c, struct nvme_sq *sq);

/* The slot's command is over (posted or dropped): back to its SQ. */
static void slot_release(struct nvme *c, struct nvme_slot *s)
{
    unsigned qid = s->sqid;
    struct nvme_sq *sq = &c->sq[qid];

    s->next_free = sq->free_head;
    sq->free_head = (int)(s - sq->slots);
    sq->inflight--;
    if (sq->deleting && sq->inflight == 0) {
        finish_sq_delete(c, sq);
    } else if (sq->starved && !atomic_load(&c->resetting)) {
        /* it stopped taking commands for want of a slot. Only then: a
         * command that completes while process_sq is taking the queue
         * must not call it again (a stream of bad commands would nest) */
        sq->starved = false;
        process_sq(c, qid);
    }
}

/* Complete the slot's command: a CQE, or held while its CQ is full. */
static void post_done(struct nvme *c, struct nvme_slot *s)
{
    struct nvme_cq *cq = &c->cq[c->sq[s->sqid].cqid];

    if (atomic_load(&c->resetting)) {
        slot_release(c, s);
        return;
    }
    if (!cq->held && cq_post(c, cq, s)) {
        slot_release(c, s);
        return;
    }
    s->next_held = NULL;
    if (!cq->held)
        cq->held_tail = &cq->held;
    *cq->held_tail = s;
    cq->held_tail = &s->next_held;
    atomic_store(&cq->has_held, true);
}

static void flush_held(struct nvme *c)
{
    for (unsigned i = 0; i < NVME_NR_QUEUES; i++) {
        struct nvme_cq *cq = &c->cq[i];
        while (cq->held && cq_post(c, cq, cq->held)) {
            struct nvme_slot *s = cq->held;
            cq->held = s->next_held;
            if (!cq->held) {
                cq->held_tail = &cq->held;
                atomic_store(&cq->has_held, false);
            }
            slot_release(c, s);
        }
    }
}

static void complete_now(struct nvme *c, struct nvme_slot *s, uint16_t status)
{
    s->status = status;
    post_done(c, s);
}

static void finish_sq_delete(struct nvme *c, struct nvme_sq *sq)
{
    struct nvme_slot *d = sq->del_slot;

    sq->deleting = false;
    sq->del_slot = NULL;
    c->cq[sq->cqid].nr_sq--;
    atomic_store(&sq->size, 0);
    if (d)
        complete_now(c, d, NVME_SC_SUCCESS);
}

/* ---- asynchronous events (§5.2) ---- */

static void aer_deliver(struct nvme *c)
{
    uint32_t pend = c->aev_masked ? 0 : atomic_load(&c->aev_pending);

    /* §5.2: one event of a type is reported, then the type is masked
     * until its log page is read */
    while (pend && c->nr_aer) {
        unsigned info = (unsigned)__builtin_ctz(pend);
        pend &= pend - 1;
        atomic_fetch_and(&c->aev_pending, ~(1u << info));
        c->aev_masked = 1;
        pend = 0;
        struct nvme_slot *s = c->aer[--c->nr_aer];
        /* type 0 (error status), info, log page 01h (error information) */
        s->dw0 = 0x0 | info << 8 | 0x01u << 16;
        complete_now(c, s, NVME_SC_SUCCESS);
    }
}

/* From a vCPU: queue an event and wake the admin queue's thread. */
static void aer_raise(struct nvme *c, unsigned info)
{
    if (!(atomic_fetch_or(&c->aev_pending, 1u << info) & (1u << info)))
        efd_signal(c->sq[0].efd);
}

/* ---- admin commands (§5), on the engine thread ---- */

static uint16_t copy_out(struct nvme *c, struct nvme_slot *s, const struct nvme_sqe *e,
                         const void *buf, uint64_t len)
{
    unsigned n;
    uint16_t st;

    if (e->flags & 0xC0)
        return NVME_SC_INVALID_FIELD | NVME_DNR;   /* admin data: PRPs only */
    st = nvme_prp_map(c->vm.env->gm, e->prp1, e->prp2, len, s->iov, NVME_MAX_IOV, &n);
    if (st)
        return st;
    const uint8_t *p = buf;
    for (unsigned i = 0; i < n; i++) {
        memcpy(s->iov[i].iov_base, p, s->iov[i].iov_len);
        p += s->iov[i].iov_len;
    }
    return NVME_SC_SUCCESS;
}

static void identify_ctrl(struct nvme *c, uint8_t *b)
{
    char sub[256];

    put_le(b + 0, NVME_VENDOR_ID, 2);            /* VID */
    put_le(b + 2, 0x1AF4, 2);                    /* SSVID */
    put_str(b + 4, c->serial, 20);               /* SN */
    put_str(b + 24, "minivmm NVMe Ctrl", 40);    /* MN */
    put_str(b + 64, "1.0", 8);                   /* FR */
    b[72] = 6;                                   /* RAB */
    b[77] = NVME_MDTS;                           /* MDTS */
    put_le(b + 80, NVME_VS, 4);                  /* VER */
    b[111] = 1;                                  /* CNTRLTYPE: I/O controller */
    put_le(b + 256, 1u << 8, 2);                 /* OACS: Doorbell Buffer Config */
    b[258] = 3;                                  /* ACL */
    b[259] = NVME_AERL;                          /* AERL */
    b[260] = 0x03;                               /* FRMW: 1 slot, read-only */
    b[261] = 0x04;                               /* LPA: extended data (LPO, NUMDU) */
    b[262] = 0;                                  /* ELPE: 1 entry */
    b[263] = 0;                                  /* NPSS: PS0 only */
    put_le(b + 266, 0x0157, 2);                  /* WCTEMP 343 K */
    put_le(b + 268, 0x0175, 2);                  /* CCTEMP 373 K */
    b[512] = 0x66;                               /* SQES: 64 bytes */
    b[513] = 0x44;                               /* CQES: 16 bytes */
    put_le(b + 516, 1, 4);                       /* NN */
    put_le(b + 520, (c->ns.dsm ? 1u << 2 : 0) | (c->ns.write_zeroes ? 1u << 3 : 0), 2);
    b[525] = 0x07;                               /* VWC present, NSID FFFFFFFFh flush */
    put_le(b + 536, 0x1, 4);                     /* SGLS: NVM commands, no alignment */
    snprintf(sub, sizeof(sub), "nqn.2014-08.org.nvmexpress:%04x%04x%-20s%-40s",
             NVME_VENDOR_ID, 0x1AF4, c->serial, "minivmm NVMe Ctrl");
    memcpy(b + 768, sub, strlen(sub));           /* SUBNQN */
    put_le(b + 2048, 2500, 2);                   /* PSD0: MP 25.00 W */
}

static void identify_ns(struct nvme *c, uint8_t *b)
{
    put_le(b + 0, c->ns.nsze, 8);                /* NSZE */
    put_le(b + 8, c->ns.nsze, 8);                /* NCAP */
    put_le(b + 16, c->ns.nsze, 8);               /* NUSE */
    b[24] = 0;                                   /* NSFEAT */
    b[25] = 0;                                   /* NLBAF: one format */
    b[26] = 0;                                   /* FLBAS: format 0 */
    b[33] = c->ns.write_zeroes ? 0x08 : 0;       /* DLFEAT: DEAC honoured */
    if (c->ns.readonly)
        b[99] = 0;                               /* NSATTR: (write protect is via status) */
    put_le(b + 128, (uint32_t)c->ns.lba_shift << 16, 4);   /* LBAF0: LBADS */
}

static uint16_t admin_identify(struct nvme *c, struct nvme_slot *s, const struct nvme_sqe *e)
{
    uint8_t b[NVME_PAGE];
    unsigned cns = e->cdw10 & 0xFF;

    memset(b, 0, sizeof(b));
    switch (cns) {
    case 0x00:   /* namespace */
        if (e->nsid != 1)
            return NVME_SC_INVALID_NS | NVME_DNR;
        identify_ns(c, b);
        break;
    case 0x01:   /* controller */
        identify_ctrl(c, b);
        break;
    case 0x02:   /* active namespace IDs above NSID */
        if (e->nsid >= 0xFFFFFFFEu)
            return NVME_SC_INVALID_NS | NVME_DNR;
        if (e->nsid < 1)
            put_le(b, 1, 4);
        break;
    case 0x03:   /* namespace identification descriptors (§5.15.2.3) */
        if (e->nsid != 1)
            return NVME_SC_INVALID_NS | NVME_DNR;
        b[0] = 3;      /* NIDT: UUID */
        b[1] = 16;     /* NIDL */
        memcpy(b + 4, c->uuid, 16);
        break;
    default:
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    }
    return copy_out(c, s, e, b, sizeof(b));
}

static uint16_t admin_get_log(struct nvme *c, struct nvme_slot *s, const struct nvme_sqe *e)
{
    uint8_t b[512];
    unsigned lid = e->cdw10 & 0xFF;
    bool rae = e->cdw10 & (1u << 15);
    uint64_t numd = ((uint64_t)(e->cdw11 & 0xFFFF) << 16 | e->cdw10 >> 16) + 1;
    uint64_t len = numd * 4;
    uint64_t lpo = (uint64_t)e->cdw13 << 32 | e->cdw12;
    size_t size;

    memset(b, 0, sizeof(b));
    switch (lid) {
    case 0x01:   /* error information: no errors recorded */
        size = 64;
        if (!rae)
            c->aev_masked = 0;
        break;
    case 0x02:   /* SMART / health: nothing measured, spare full */
        size = 512;
        b[3] = 100;    /* available spare % */
        b[4] = 10;     /* available spare threshold % */
        break;
    case 0x03:   /* firmware slot information */
        size = 512;
        b[0] = 1;      /* AFI: slot 1 active */
        put_str(b + 8, "1.0", 8);
        break;
    default:
        return NVME_SC_INVALID_LOG_PAGE | NVME_DNR;
    }
    if ((lpo & 3) || lpo >= size)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    if (len > (uint64_t)NVME_PAGE << NVME_MDTS)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    uint8_t *out = calloc(1, len);
    if (!out)
        return NVME_SC_INTERNAL;
    memcpy(out, b + lpo, size - lpo < len ? size - lpo : len);
    uint16_t st = copy_out(c, s, e, out, len);
    free(out);
    if (st == NVME_SC_SUCCESS && lid == 0x01 && !rae)
        aer_deliver(c);
    return st;
}

static uint16_t admin_features(struct nvme *c, struct nvme_slot *s, const struct nvme_sqe *e,
                               bool set)
{
    unsigned fid = e->cdw10 & 0xFF;
    unsigned sel = (e->cdw10 >> 8) & 7;
    uint32_t v = e->cdw11;

    if (set && (e->cdw10 & (1u << 31)))
        return NVME_SC_FEAT_NOT_SAVEABLE | NVME_DNR;
    if (!set && sel > 3)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    if (!set && sel == 3) {   /* supported capabilities: changeable, not saveable */
        switch (fid) {
        case FEAT_ARBITRATION: case FEAT_POWER_MGMT: case FEAT_TEMP_THRESH: case FEAT_VWC:
        case FEAT_NUM_QUEUES: case FEAT_IRQ_COALESCE: case FEAT_IRQ_CONFIG:
        case FEAT_WRITE_ATOMIC: case FEAT_ASYNC_EVENT:
            s->dw0 = 1u << 2;
            return NVME_SC_SUCCESS;
        default:
            return NVME_SC_INVALID_FIELD | NVME_DNR;
        }
    }
    bool dflt = !set && (sel == 1 || sel == 2);   /* default; saved = default */
    switch (fid) {
    case FEAT_ARBITRATION:
        if (set)
            c->feat_arb = v;
        s->dw0 = dflt ? 0 : c->feat_arb;
        return NVME_SC_SUCCESS;
    case FEAT_POWER_MGMT:
        if (set) {
            if (v & 0x1F)
                return NVME_SC_INVALID_FIELD | NVME_DNR;   /* PS0 only (NPSS 0) */
            c->feat_power = v & 0xE0;
        }
        s->dw0 = dflt ? 0 : c->feat_power;
        return NVME_SC_SUCCESS;
    case FEAT_TEMP_THRESH: {
        unsigned tmpsel = (v >> 16) & 0xF, thsel = (v >> 20) & 3;
        if (tmpsel != 0 || thsel > 1)
            return NVME_SC_INVALID_FIELD | NVME_DNR;   /* the composite sensor only */
        uint16_t *t = thsel ? &c->temp_under : &c->temp_over;
        if (set)
            *t = (uint16_t)v;
        s->dw0 = dflt ? (thsel ? 0 : 0x0157) : *t;
        return NVME_SC_SUCCESS;
    }
    case FEAT_VWC:
        if (set)
            c->wce = v & 1;
        s->dw0 = dflt ? 1 : c->wce;
        return NVME_SC_SUCCESS;
    case FEAT_NUM_QUEUES:
        if (set) {
            unsigned nsq = v & 0xFFFF, ncq = v >> 16;
            if (nsq == 0xFFFF || ncq == 0xFFFF)
                return NVME_SC_INVALID_FIELD | NVME_DNR;
            /* §5.21.1.7: only before I/O queues exist */
            for (unsigned q = 1; q < NVME_NR_QUEUES; q++)
                if (atomic_load(&c->sq[q].size) || atomic_load(&c->cq[q].size))
                    return NVME_SC_CMD_SEQ_ERROR | NVME_DNR;
            c->nr_ioq_sq = nsq + 1 < NVME_MAX_IOQ ? nsq + 1 : NVME_MAX_IOQ;
            c->nr_ioq_cq = ncq + 1 < NVME_MAX_IOQ ? ncq + 1 : NVME_MAX_IOQ;
            c->queues_set = true;
        }
        if (dflt)
            s->dw0 = (NVME_MAX_IOQ - 1) << 16 | (NVME_MAX_IOQ - 1);
        else
            s->dw0 = (c->nr_ioq_cq - 1) << 16 | (c->nr_ioq_sq - 1);
        return NVME_SC_SUCCESS;
    case FEAT_IRQ_COALESCE:   /* accepted; every completion round interrupts */
        if (set)
            c->feat_coalesce = v & 0xFFFF;
        s->dw0 = dflt ? 0 : c->feat_coalesce;
        return NVME_SC_SUCCESS;
    case FEAT_IRQ_CONFIG: {
        unsigned iv = v & 0xFFFF;
        if (iv >= NVME_NR_VECTORS)
            return NVME_SC_INVALID_FIELD | NVME_DNR;
        if (set) {
            if (v & (1u << 16))
                c->irq_cfg_cd |= 1u << iv;
            else
                c->irq_cfg_cd &= ~(1u << iv);
        }
        s->dw0 = iv | (!dflt && (c->irq_cfg_cd & (1u << iv)) ? 1u << 16 : 0);
        return NVME_SC_SUCCESS;
    }
    case FEAT_WRITE_ATOMIC:
        if (set)
            c->feat_atomic = v & 1;
        s->dw0 = dflt ? 0 : c->feat_atomic;
        return NVME_SC_SUCCESS;
    case FEAT_ASYNC_EVENT:
        if (set)
            c->feat_aec = v;
        s->dw0 = dflt ? 0 : c->feat_aec;
        return NVME_SC_SUCCESS;
    default:
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    }
}

static void queue_limits(struct nvme *c, struct nvme_queue_limits *l)
{
    *l = (struct nvme_queue_limits){ .nr_sq = c->nr_ioq_sq, .nr_cq = c->nr_ioq_cq,
                                     .mqes = NVME_MQES, .nr_vectors = NVME_NR_VECTORS };
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++) {
        if (atomic_load(&c->sq[q].size))
            l->sq_live |= 1u << q;
        if (atomic_load(&c->cq[q].size))
            l->cq_live |= 1u << q;
    }
}

static uint16_t admin_create_cq(struct nvme *c, const struct nvme_sqe *e)
{
    struct nvme_queue_limits l;
    struct nvme_queue_params p;

    if (CC_IOCQES(atomic_load(&c->cc)) != 4)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    queue_limits(c, &l);
    uint16_t st = nvme_check_create_cq(e, &l, &p);
    if (st)
        return st;
    if (!gm_ptr(c->vm.env->gm, p.base, (uint64_t)p.size * NVME_CQE_SIZE))
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    struct nvme_cq *cq = &c->cq[p.qid];
    cq->base = p.base;
    cq->iv = p.iv;
    cq->ien = p.ien;
    cq->phase = true;
    cq->notify = false;
    cq->nr_sq = 0;
    cq->shadow = atomic_load(&c->dbbuf_on);
    cq->held = NULL;
    cq->held_tail = &cq->held;
    atomic_store(&cq->has_held, false);
    atomic_store(&cq->head, 0);
    atomic_store(&cq->tail, 0);
    atomic_store(&cq->size, p.size);
    return NVME_SC_SUCCESS;
}

static uint16_t admin_create_sq(struct nvme *c, const struct nvme_sqe *e)
{
    struct nvme_queue_limits l;
    struct nvme_queue_params p;

    if (CC_IOSQES(atomic_load(&c->cc)) != 6)
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    queue_limits(c, &l);
    uint16_t st = nvme_check_create_sq(e, &l, &p);
    if (st)
        return st;
    if (!gm_ptr(c->vm.env->gm, p.base, (uint64_t)p.size * NVME_SQE_SIZE))
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    struct nvme_sq *sq = &c->sq[p.qid];
    sq->base = p.base;
    sq->head = 0;
    sq->cqid = p.cqid;
    sq->deleting = false;
    sq->del_slot = NULL;
    sq->shadow = atomic_load(&c->dbbuf_on);
    slots_init(sq);
    c->cq[p.cqid].nr_sq++;
    efd_drain(sq->efd);
    atomic_store(&sq->tail, 0);
    atomic_store(&sq->size, p.size);
    blk_engine_arm_kick(c->engine, p.qid, sq->efd);
    return NVME_SC_SUCCESS;
}

/* §5.6: the SQ's commands finish first; its completion comes after. */
static bool admin_delete_sq(struct nvme *c, struct nvme_slot *s, const struct nvme_sqe *e,
                            uint16_t *st)
{
    unsigned qid = e->cdw10 & 0xFFFF;

    if (qid == 0 || qid >= NVME_NR_QUEUES || !atomic_load(&c->sq[qid].size) ||
        c->sq[qid].deleting) {
        *st = NVME_SC_INVALID_QID | NVME_DNR;
        return true;
    }
    struct nvme_sq *sq = &c->sq[qid];
    sq->deleting = true;
    if (sq->inflight == 0) {
        finish_sq_delete(c, sq);
        *st = NVME_SC_SUCCESS;
        return true;
    }
    sq->del_slot = s;
    return false;   /* completed by finish_sq_delete */
}

static uint16_t admin_delete_cq(struct nvme *c, const struct nvme_sqe *e)
{
    unsigned qid = e->cdw10 & 0xFFFF;

    if (qid == 0 || qid >= NVME_NR_QUEUES || !atomic_load(&c->cq[qid].size))
        return NVME_SC_INVALID_QID | NVME_DNR;
    if (c->cq[qid].nr_sq)
        return NVME_SC_INVALID_QDELETION | NVME_DNR;   /* §5.5: its SQs first */
    atomic_store(&c->cq[qid].size, 0);
    intx_update(c);
    return NVME_SC_SUCCESS;
}

/* §5.7 Doorbell Buffer Config: PRP1 the shadow doorbells, PRP2 the
 * EventIdx buffer, a page each. Queues created before and after use them
 * (I/O queues only: the admin queue's doorbells keep exiting). */
static uint16_t admin_dbbuf(struct nvme *c, const struct nvme_sqe *e)
{
    const struct gm *g = c->vm.env->gm;

    if ((e->prp1 | e->prp2) & (NVME_PAGE - 1) || !gm_ptr(g, e->prp1, NVME_PAGE) ||
        !gm_ptr(g, e->prp2, NVME_PAGE))
        return NVME_SC_INVALID_FIELD | NVME_DNR;
    c->dbs = e->prp1;
    c->eis = e->prp2;
    for (unsigned q = 1; q < NVME_NR_QUEUES; q++) {
        struct nvme_sq *sq = &c->sq[q];
        struct nvme_cq *cq = &c->cq[q];
        if (atomic_load(&sq->size)) {
            sq->shadow = true;
            uint32_t t = atomic_load(&sq->tail);
            gm_write(g, c->dbs + 8ULL * q, &t, 4);
            gm_write(g, c->eis + 8ULL * q, &sq->head, 4);
        }
        if (atomic_load(&cq->size)) {
            cq->shadow = true;
            uint32_t h = atomic_load(&cq->head);
            gm_write(g, c->dbs + 8ULL * q + 4, &h, 4);
            gm_write(g, c->eis + 8ULL * q + 4, &h, 4);
        }
    }
    atomic_store(&c->dbbuf_on, true);
    pthread_mutex_lock(&c->ioev_lock);
    uint64_t bar = c->bar_addr;
    pthread_mutex_unlock(&c->ioev_lock);
    ioev_update(c, bar);
    return NVME_SC_SUCCESS;
}

static void admin_cmd(struct nvme *c, struct nvme_slot *s, const struct nvme_sqe *e)
{
    uint16_t st;

    if (e->flags & 0x03) {   /* fused */
        complete_now(c, s, NVME_SC_INVALID_FIELD | NVME_DNR);
        return;
    }
    switch (e->opc) {
    case NVME_ADM_IDENTIFY:
        st = admin_identify(c, s, e);
        break;
    case NVME_ADM_GET_LOG:
        st = admin_get_log(c, s, e);
        break;
    case NVME_ADM_SET_FEAT:
    case NVME_ADM_GET_FEAT:
        st = admin_features(c, s, e, e->opc == NVME_ADM_SET_FEAT);
        break;
    case NVME_ADM_CREATE_CQ:
        st = admin_create_cq(c, e);
        break;
    case NVME_ADM_CREATE_SQ:
        st = admin_create_sq(c, e);
        break;
    case NVME_ADM_DELETE_CQ:
        st = admin_delete_cq(c, e);
        break;
    case NVME_ADM_DELETE_SQ:
        if (!admin_delete_sq(c, s, e, &st))
            return;
        break;
    case ADM_DBBUF:
        st = admin_dbbuf(c, e);
        break;
    case NVME_ADM_ABORT:
        s->dw0 = 1;   /* §5.1: bit 0 set, the command was not aborted */
        st = NVME_SC_SUCCESS;
        break;
    case NVME_ADM_AER:
        if (c->nr_aer > NVME_AERL) {
            st = NVME_SC_AER_LIMIT | NVME_DNR;
            break;
        }
        c->aer[c->nr_aer++] = s;   /* held until an event (§5.2) */
        aer_deliver(c);
        return;
    default:
        log_guest_once(COMP, "%s: admin opcode 0x%02x is not supported", c->name, e->opc);
        st = NVME_SC_INVALID_OPCODE | NVME_DNR;
        break;
    }
    complete_now(c, s, st);
}

/* ---- NVM commands (§6), on the engine thread ---- */

static void io_cmd(struct nvme *c, unsigned qid, struct nvme_slot *s, const struct nvme_sqe *e)
{
    struct nvme_io io;
    struct blk_request r = { .tag = (uint64_t)(s - c->sq[qid].slots) };
    unsigned n;
    uint16_t st = nvme_io_decode(e, &c->ns, &io);

    s->opc = e->opc;
    if (st) {
        log_guest_once(COMP, "%s: I/O command 0x%02x refused with status 0x%03x", c->name,
                       e->opc, st & 0x7FF);
        complete_now(c, s, st);
        return;
    }
    switch (io.op) {
    case NVME_IO_READ:
    case NVME_IO_WRITE:
        st = nvme_data_map(c->vm.env->gm, e, io.len, s->iov, NVME_MAX_IOV, &n);
        if (st) {
            complete_now(c, s, st);
            return;
        }
        r.op = io.op == NVME_IO_READ ? BLK_OP_READ : BLK_OP_WRITE;
        r.offset = io.offset;
        r.len = io.len;
        r.iov = s->iov;
        r.niov = n;
        s->flush_after = io.op == NVME_IO_WRITE && (io.fua || !c->wce);
        break;
    case NVME_IO_FLUSH:
        r.op = BLK_OP_FLUSH;
        break;
    case NVME_IO_WRITE_ZEROES:
        s->ranges[0] = (struct blk_range){ .offset = io.offset, .len = io.len };
        r.op = BLK_OP_WRITE_ZEROES;
        r.ranges = s->ranges;
        r.nr_ranges = 1;
        r.unmap = io.deallocate;
        s->flush_after = io.fua || !c->wce;
        break;
    case NVME_IO_DSM: {
        struct nvme_dsm_range d[NVME_MAX_DSM_RANGES];
        if (!io.deallocate) {   /* hints only */
            complete_now(c, s, NVME_SC_SUCCESS);
            return;
        }
        st = nvme_data_map(c->vm.env->gm, e, io.nr_ranges * sizeof(d[0]), s->iov, NVME_MAX_IOV,
                           &n);
        if (st) {
            complete_now(c, s, st);
            return;
        }
        uint8_t *p = (uint8_t *)d;
        for (unsigned i = 0; i < n; i++) {   /* copied once, then checked */
            memcpy(p, s->iov[i].iov_base, s->iov[i].iov_len);
            p += s->iov[i].iov_len;
        }
        unsigned k;
        st = nvme_dsm_ranges(d, io.nr_ranges, &c->ns, s->ranges, &k);
        if (st || k == 0) {
            complete_now(c, s, st);
            return;
        }
        r.op = BLK_OP_DISCARD;
        r.ranges = s->ranges;
        r.nr_ranges = k;
        break;
    }
    default:
        complete_now(c, s, NVME_SC_INVALID_OPCODE | NVME_DNR);
        return;
    }
    int err = blk_engine_submit(c->engine, qid, &r);
    if (err) {
        log_guest_once(COMP, "%s: request not taken by the engine: %s", c->name, strerror(-err));
        complete_now(c, s, NVME_SC_INTERNAL);
    }
}

/* §5.7: the tail in the shadow buffer (checked as a doorbell write is);
 * the EventIdx first says how far the device has read, so a host that
 * writes the shadow after this read rings the doorbell. */
static uint32_t sq_shadow_tail(struct nvme *c, unsigned qid, uint32_t size)
{
    struct nvme_sq *sq = &c->sq[qid];
    uint32_t t;

    gm_write(c->vm.env->gm, c->eis + 8ULL * qid, &sq->head, 4);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (gm_read(c->vm.env->gm, c->dbs + 8ULL * qid, &t, 4))
        return sq->head;
    if (t >= size) {
        log_guest_once(COMP, "%s: SQ %u shadow tail %u (%u entries)", c->name, qid, t, size);
        aer_raise(c, AEV_DB_VALUE);
        return sq->head;
    }
    atomic_store(&sq->tail, t);
    return t;
}

/* Take the SQ's new entries (up to the tail the host rang), each read once. */
static void process_sq(struct nvme *c, unsigned qid)
{
    struct nvme_sq *sq = &c->sq[qid];

    if (!blk_engine_running(c->engine, qid) || atomic_load(&c->resetting))
        return;
    flush_held(c);
    if (qid == 0)
        aer_deliver(c);
    uint32_t size = atomic_load(&sq->size);
    if (!size || sq->deleting || (atomic_load(&c->csts) & CSTS_CFS))
        return;
    for (;;) {
        uint32_t tail = atomic_load(&sq->tail);
        if (sq->shadow && sq->head == tail)
            tail = sq_shadow_tail(c, qid, size);
        if (sq->head == tail || tail >= size)
            break;
        if (sq->free_head < 0) {
            sq->starved = true;   /* a completion frees a slot and calls back */
            break;
        }
        struct nvme_sqe e;
        if (gm_read(c->vm.env->gm, sq->base + (uint64_t)sq->head * NVME_SQE_SIZE, &e,
                    sizeof(e))) {
            fatal(c, "submission queue outside RAM");
            return;
        }
        sq->head = (sq->head + 1) % size;
        struct nvme_slot *s = slot_alloc(sq);
        s->cid = e.cid;
        s->sqid = (uint16_t)qid;
        if (qid == 0)
            admin_cmd(c, s, &e);
        else
            io_cmd(c, qid, s, &e);
        if (!atomic_load(&sq->size) || sq->deleting)
            break;
    }
    blk_engine_arm_kick(c->engine, qid, sq->efd);
}

static void eng_start(void *opaque, unsigned q)
{
    struct nvme *c = opaque;
    blk_engine_arm_kick(c->engine, q, c->sq[q].efd);
    process_sq(c, q);
}

static void eng_kick(void *opaque, unsigned q)
{
    struct nvme *c = opaque;
    process_sq(c, q);
    if (q != 0 && atomic_load(&c->sq[q].size) == 0)
        blk_engine_arm_kick(c->engine, q, c->sq[q].efd);
}

static void eng_complete(void *opaque, unsigned q, uint64_t tag, int64_t result)
{
    struct nvme *c = opaque;

    if (q >= NVME_NR_QUEUES || tag >= NVME_DEPTH)
        return;
    struct nvme_slot *s = &c->sq[q].slots[tag];
    if (result < 0) {
        s->status = s->opc == NVME_CMD_READ ? NVME_SC_READ_ERROR
                    : s->opc == NVME_CMD_WRITE ? NVME_SC_WRITE_FAULT : NVME_SC_INTERNAL;
        log_guest_once(COMP, "%s: I/O error on opcode 0x%02x: %s", c->name, s->opc,
                       strerror((int)-result));
        post_done(c, s);
        return;
    }
    if (s->flush_after && !atomic_load(&c->resetting)) {
        s->flush_after = false;
        struct blk_request r = { .op = BLK_OP_FLUSH, .tag = tag };
        if (blk_engine_submit(c->engine, q, &r) == 0)
            return;
        s->status = NVME_SC_INTERNAL;
    }
    post_done(c, s);
}

static void eng_round_end(void *opaque, unsigned q)
{
    if (q == 0)   /* called for every queue of the (one) thread */
        publish(opaque);
}

static void eng_stop(void *opaque, unsigned q)
{
    (void)q;
    publish(opaque);
}

static const struct blk_engine_ops nvme_engine_ops = {
    .start = eng_start, .kick = eng_kick, .complete = eng_complete,
    .round_end = eng_round_end, .stop = eng_stop,
};

/* ---- registers (vCPU side) ---- */

static void queues_clear(struct nvme *c)
{
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++) {
        struct nvme_sq *sq = &c->sq[q];
        struct nvme_cq *cq = &c->cq[q];
        atomic_store(&sq->size, 0);
        atomic_store(&sq->tail, 0);
        sq->head = 0;
        sq->deleting = false;
        sq->shadow = false;
        sq->del_slot = NULL;
        if (sq->slots)
            slots_init(sq);
        efd_drain(sq->efd);
        atomic_store(&cq->size, 0);
        atomic_store(&cq->head, 0);
        atomic_store(&cq->tail, 0);
        cq->held = NULL;
        cq->held_tail = &cq->held;
        atomic_store(&cq->has_held, false);
        cq->notify = false;
        cq->shadow = false;
        cq->nr_sq = 0;
    }
    atomic_store(&c->dbbuf_on, false);
    c->dbs = c->eis = 0;
    c->nr_aer = 0;
    atomic_store(&c->aev_pending, 0);
    c->aev_masked = 0;
    c->nr_ioq_sq = c->nr_ioq_cq = NVME_MAX_IOQ;
    c->queues_set = false;
    c->feat_arb = c->feat_power = c->feat_coalesce = c->feat_atomic = c->feat_aec = 0;
    c->temp_over = 0x0157;
    c->temp_under = 0;
    c->wce = true;
    c->irq_cfg_cd = 0;
}

/* §7.6.2 controller reset. Caller holds c->lock. */
static void ctrl_reset_locked(struct nvme *c)
{
    if (c->engine_on) {
        atomic_store(&c->resetting, true);
        blk_engine_stop(c->engine);   /* requests in flight finish; nothing posted */
        c->engine_on = false;
    }
    queues_clear(c);
    ioev_update(c, PCI_BAR_UNMAPPED);   /* doorbells exit again */
    atomic_store(&c->resetting, false);
    atomic_store(&c->csts, 0);
    atomic_store(&c->intms, 0);
    for (unsigned v = 0; v < NVME_NR_VECTORS; v++)
        efd_drain(c->vec_fd[v]);
    intx_update(c);
}

static void ctrl_enable_locked(struct nvme *c, uint32_t cc)
{
    uint32_t asqs = (c->aqa & 0xFFF) + 1, acqs = ((c->aqa >> 16) & 0xFFF) + 1;
    const char *bad = NULL;

    if (CC_CSS(cc) != 0)
        bad = "CC.CSS is not the NVM command set";
    else if (CC_MPS(cc) != 0)
        bad = "CC.MPS is not 4 KiB";
    else if (CC_AMS(cc) != 0)
        bad = "CC.AMS is not round robin";
    else if (asqs < 2 || acqs < 2)
        bad = "AQA gives an admin queue of one entry";
    else if ((c->asq & (NVME_PAGE - 1)) || (c->acq & (NVME_PAGE - 1)) ||
             !gm_ptr(c->vm.env->gm, c->asq, (uint64_t)asqs * NVME_SQE_SIZE) ||
             !gm_ptr(c->vm.env->gm, c->acq, (uint64_t)acqs * NVME_CQE_SIZE))
        bad = "ASQ/ACQ are not page-aligned RAM";
    if (bad) {
        log_guest_once(COMP, "%s: enable refused: %s (CC 0x%x AQA 0x%x ASQ 0x%" PRIx64
                       " ACQ 0x%" PRIx64 ")", c->name, bad, cc, c->aqa, c->asq, c->acq);
        atomic_fetch_or(&c->csts, CSTS_CFS);
        return;
    }
    queues_clear(c);
    struct nvme_cq *cq = &c->cq[0];
    cq->base = c->acq;
    cq->iv = 0;
    cq->ien = true;
    cq->phase = true;
    atomic_store(&cq->size, acqs);
    cq->nr_sq = 1;
    struct nvme_sq *sq = &c->sq[0];
    sq->base = c->asq;
    sq->cqid = 0;
    atomic_store(&sq->size, asqs);
    int r = blk_engine_start(c->engine);
    if (r) {
        log_err(COMP, "%s: the I/O thread could not start: %s", c->name, strerror(-r));
        atomic_fetch_or(&c->csts, CSTS_CFS);
        return;
    }
    c->engine_on = true;
    atomic_fetch_or(&c->csts, CSTS_RDY);
}

/* §7.6.3 shutdown: what was written is on stable storage. */
static void ctrl_shutdown_locked(struct nvme *c)
{
    bool was_on = c->engine_on;

    if (was_on) {
        blk_engine_stop(c->engine);   /* the requests in flight finish first */
        c->engine_on = false;
    }
    if (!c->img.readonly && fdatasync(c->img.fd))
        log_warn(COMP, "%s: flushing %s at shutdown: %s", c->name, c->img.path, strerror(errno));
    uint32_t cs = atomic_load(&c->csts);
    atomic_store(&c->csts, (cs & ~(3u << 2)) | CSTS_SHST_DONE);
    /* §7.6.2: the host resets the controller next; until then the queues
     * still work, as they did */
    if (was_on && blk_engine_start(c->engine) == 0)
        c->engine_on = true;
}

static void cc_write_locked(struct nvme *c, uint32_t v)
{
    uint32_t old = atomic_load(&c->cc);

    v &= CC_WMASK;
    atomic_store(&c->cc, v);
    if ((old & CC_EN) && !(v & CC_EN)) {
        ctrl_reset_locked(c);
        return;
    }
    if (!(old & CC_EN) && (v & CC_EN)) {
        if (atomic_load(&c->csts) & CSTS_CFS)
            return;   /* broken until a reset (EN 1 -> 0) */
        ctrl_enable_locked(c, v);
    }
    if (CC_SHN(v) && !CC_SHN(old) && (v & CC_EN))
        ctrl_shutdown_locked(c);
}

static void reg_image(struct nvme *c, uint8_t img[REG_IMAGE])
{
    uint64_t cap = NVME_MQES | 1ULL << 16 | (uint64_t)CAP_TO << 24 | 1ULL << 37;

    memset(img, 0, REG_IMAGE);
    put_le(img + REG_CAP, cap, 8);
    put_le(img + REG_VS, NVME_VS, 4);
    put_le(img + REG_INTMS, atomic_load(&c->intms), 4);
    put_le(img + REG_INTMC, atomic_load(&c->intms), 4);
    put_le(img + REG_CC, atomic_load(&c->cc), 4);
    put_le(img + REG_CSTS, atomic_load(&c->csts), 4);
    put_le(img + REG_AQA, c->aqa, 4);
    put_le(img + REG_ASQ, c->asq, 8);
    put_le(img + REG_ACQ, c->acq, 8);
}

static void reg_write32_locked(struct nvme *c, uint32_t off, uint32_t v)
{
    bool en = atomic_load(&c->cc) & CC_EN;

    switch (off) {
    case REG_INTMS:
        atomic_fetch_or(&c->intms, v);
        intx_update(c);
        break;
    case REG_INTMC:
        atomic_fetch_and(&c->intms, ~v);
        intx_update(c);
        break;
    case REG_CC:
        cc_write_locked(c, v);
        break;
    case REG_AQA:
        if (!en)
            c->aqa = v & 0x0FFF0FFF;
        break;
    case REG_ASQ:
    case REG_ASQ + 4:
    case REG_ACQ:
    case REG_ACQ + 4: {
        if (en)
            break;   /* §3.1.8: changed only while disabled */
        uint64_t *r = off < REG_ACQ ? &c->asq : &c->acq;
        if (off & 4)
            *r = (*r & 0xFFFFFFFFULL) | (uint64_t)v << 32;
        else
            *r = (*r & ~0xFFFFFFFFULL) | (v & ~0xFFFu);
        break;
    }
    default:
        break;   /* CAP, VS, CSTS read-only; NSSR not supported */
    }
}

static void doorbell_write(struct nvme *c, uint64_t off, uint32_t v)
{
    uint64_t idx = off / 4;
    unsigned qid = (unsigned)(idx / 2);
    bool cq_db = idx & 1;

    if (!(atomic_load(&c->csts) & CSTS_RDY))
        return;
    if (qid >= NVME_NR_QUEUES) {
        log_guest_once(COMP, "%s: doorbell of queue %u (%u queues)", c->name, qid,
                       NVME_NR_QUEUES);
        aer_raise(c, AEV_DB_REG);
        return;
    }
    if (cq_db) {
        struct nvme_cq *cq = &c->cq[qid];
        uint32_t size = atomic_load(&cq->size);
        if (!size) {
            aer_raise(c, AEV_DB_REG);
            return;
        }
        /* §3.1.25: past the queue, or past the entries posted */
        uint32_t old = atomic_load(&cq->head), tail = atomic_load(&cq->tail);
        if (v >= size || (v + size - old) % size > (tail + size - old) % size) {
            log_guest_once(COMP, "%s: CQ %u head doorbell %u (%u entries, head %u, tail %u)",
                           c->name, qid, v, size, old, tail);
            aer_raise(c, AEV_DB_VALUE);
            return;
        }
        atomic_store(&cq->head, v);
        if (atomic_load(&cq->has_held))
            efd_signal(c->sq[0].efd);   /* room for what was held back */
        intx_update(c);
        return;
    }
    struct nvme_sq *sq = &c->sq[qid];
    uint32_t size = atomic_load(&sq->size);
    if (qid && atomic_load(&c->dbbuf_on)) {
        efd_signal(sq->efd);   /* as the ioeventfd would: the shadow has the tail */
        return;
    }
    if (!size) {
        aer_raise(c, AEV_DB_REG);
        return;
    }
    if (v >= size) {
        log_guest_once(COMP, "%s: SQ %u tail doorbell %u (%u entries)", c->name, qid, v, size);
        aer_raise(c, AEV_DB_VALUE);
        return;
    }
    atomic_store(&sq->tail, v);
    efd_signal(sq->efd);
}

int nvme_bar_read(struct nvme *c, uint64_t off, void *data, unsigned len)
{
    uint8_t *out = data;

    if (len == 0 || len > 8 || off >= NVME_BAR_SIZE || len > NVME_BAR_SIZE - off)
        return -EINVAL;
    memset(out, 0, len);
    if (off + len <= REG_IMAGE) {
        uint8_t img[REG_IMAGE];
        pthread_mutex_lock(&c->lock);
        reg_image(c, img);
        pthread_mutex_unlock(&c->lock);
        memcpy(out, img + off, len);
    } else if (off >= NVME_MSIX_TABLE_OFF && off < NVME_MSIX_PBA_OFF) {
        pthread_mutex_lock(&c->lock);
        if (pci_msix_table_read(&c->msix, off - NVME_MSIX_TABLE_OFF, out, len))
            memset(out, 0, len);
        pthread_mutex_unlock(&c->lock);
    } else if (off >= NVME_MSIX_PBA_OFF) {
        pthread_mutex_lock(&c->lock);
        if (pci_msix_pba_read(&c->msix, off - NVME_MSIX_PBA_OFF, out, len))
            memset(out, 0, len);
        pthread_mutex_unlock(&c->lock);
    }
    return 0;   /* doorbells are write-only: read 0 */
}

int nvme_bar_write(struct nvme *c, uint64_t off, const void *data, unsigned len)
{
    const uint8_t *in = data;

    if (len == 0 || len > 8 || off >= NVME_BAR_SIZE || len > NVME_BAR_SIZE - off)
        return -EINVAL;
    if (off + len <= REG_IMAGE) {
        pthread_mutex_lock(&c->lock);
        uint8_t img[REG_IMAGE];
        reg_image(c, img);
        for (uint64_t d = off & ~3ULL; d < off + len; d += 4) {
            uint8_t w[4];
            /* INTMS/INTMC are write-1: bytes not written are 0 */
            if (d == REG_INTMS || d == REG_INTMC)
                memset(w, 0, 4);
            else
                memcpy(w, img + d, 4);
            for (unsigned b = 0; b < 4; b++)
                if (d + b >= off && d + b < off + len)
                    w[b] = in[d + b - off];
            reg_write32_locked(c, (uint32_t)d, (uint32_t)get_le(w, 4));
        }
        pthread_mutex_unlock(&c->lock);
    } else if (off >= NVME_DB_OFF && off < NVME_MSIX_TABLE_OFF) {
        if ((off & 3) || (len != 4 && len != 8)) {
            log_guest_once(COMP, "%s: doorbell write of %u bytes at 0x%" PRIx64, c->name, len, off);
            return 0;
        }
        doorbell_write(c, off - NVME_DB_OFF, (uint32_t)get_le(in, 4));
        if (len == 8)
            doorbell_write(c, off + 4 - NVME_DB_OFF, (uint32_t)get_le(in + 4, 4));
    } else if (off >= NVME_MSIX_TABLE_OFF && off < NVME_MSIX_PBA_OFF) {
        pthread_mutex_lock(&c->lock);
        pci_msix_table_write(&c->msix, off - NVME_MSIX_TABLE_OFF, in, len);
        pthread_mutex_unlock(&c->lock);
    } else if (off >= NVME_MSIX_PBA_OFF) {
        pthread_mutex_lock(&c->lock);
        pci_msix_pba_write(&c->msix, off - NVME_MSIX_PBA_OFF, in, len);
        pthread_mutex_unlock(&c->lock);
    }
    return 0;
}

static int bar_bus_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    return nvme_bar_read(opaque, off, data, len);
}

static int bar_bus_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    return nvme_bar_write(opaque, off, data, len);
}

static const struct bus_ops nvme_bar_ops = { .read = bar_bus_read, .write = bar_bus_write };

/* ---- config space ---- */

static void nvme_bar_map(struct pci_device *d, unsigned bar, uint64_t addr)
{
    struct nvme *c = d->opaque;

    if (bar != 0)
        return;
    if (c->bar_addr != PCI_BAR_UNMAPPED) {
        ioev_update(c, PCI_BAR_UNMAPPED);
        bus_unregister(c->vm.env->mmio, c->bar_addr);
        pthread_mutex_lock(&c->ioev_lock);
        c->bar_addr = PCI_BAR_UNMAPPED;
        pthread_mutex_unlock(&c->ioev_lock);
    }
    if (addr == PCI_BAR_UNMAPPED)
        return;
    if (bus_register(c->vm.env->mmio, addr, NVME_BAR_SIZE, c->name, &nvme_bar_ops, c)) {
        log_guest_once(COMP, "%s: BAR0 at 0x%" PRIx64 " overlaps another range; not decoded",
                       c->name, addr);
        return;
    }
    pthread_mutex_lock(&c->ioev_lock);
    c->bar_addr = addr;
    pthread_mutex_unlock(&c->ioev_lock);
    ioev_update(c, addr);
}

static void nvme_cfg_written(struct pci_device *d, uint32_t off, unsigned len, uint32_t old)
{
    struct nvme *c = d->opaque;
    const uint32_t ctrl = CAP_MSIX_AT + PCI_MSIX_FLAGS;

    (void)old;
    if (off < PCI_COMMAND + 2 && off + len > PCI_COMMAND) {
        uint16_t cmd = (uint16_t)pci_cfg_get(d, PCI_COMMAND, 2);
        atomic_store(&c->intx_disabled, (cmd & PCI_COMMAND_INTX_DISABLE) != 0);
        intx_update(c);
    }
    if (off < ctrl + 2 && off + len > ctrl) {
        uint16_t v = (uint16_t)pci_cfg_get(d, ctrl, 2);
        bool on = v & PCI_MSIX_FLAGS_ENABLE;
        pthread_mutex_lock(&c->lock);
        pci_msix_control(&c->msix, on, v & PCI_MSIX_FLAGS_MASKALL);
        pthread_mutex_unlock(&c->lock);
        atomic_store(&c->msix_on, on);
        intx_update(c);   /* MSI-X on: INTx is not used (PCI 3.0 §6.8.1) */
    }
}

static const struct pci_device_ops nvme_pci_ops = {
    .cfg_written = nvme_cfg_written,
    .bar_map = nvme_bar_map,
};

static int build_config_space(struct nvme *c)
{
    struct pci_device *d = &c->pdev;
    int r = 0;

    d->ops = &nvme_pci_ops;
    d->opaque = c;
    pci_device_init(d, c->name, NVME_VENDOR_ID, NVME_DEVICE_ID, NVME_CLASS, 2,
                    PCI_HEADER_TYPE_NORMAL, PCI_CFG_SIZE);
    pci_cfg_set(d, PCI_SUBSYSTEM_VENDOR_ID, 2, 0x1AF4);
    pci_cfg_set(d, PCI_SUBSYSTEM_ID, 2, 0x1100);
    pci_device_set_intx_pin(d, 1);
    r |= pci_device_set_bar(d, 0, PCI_BAR_MEM64, false, NVME_BAR_SIZE);
    if (pci_pm_cap_add(d, CAP_PM_AT) < 0)
        r = -1;
    const struct pci_msix_cap_info msix = {
        .nr_vectors = NVME_NR_VECTORS,
        .table_bar = 0, .table_offset = NVME_MSIX_TABLE_OFF,
        .pba_bar = 0, .pba_offset = NVME_MSIX_PBA_OFF,
    };
    if (pci_msix_cap_add(d, CAP_MSIX_AT, &msix) < 0)
        r = -1;
    return r ? -EINVAL : 0;
}

/* ---- life cycle ---- */

void nvme_destroy(struct nvme *c)
{
    if (!c)
        return;
    nvme_unplug(c);
    if (c->engine) {
        pthread_mutex_lock(&c->lock);
        ctrl_reset_locked(c);
        pthread_mutex_unlock(&c->lock);
    }
    blk_engine_destroy(c->engine);
    if (c->msix.table)
        pci_msix_fini(&c->msix);
    bool removed = false;
    for (unsigned v = 0; v < NVME_NR_VECTORS; v++) {
        if (c->vec_gsi[v] >= 0) {
            irq_route_remove(c->vm.irq, (unsigned)c->vec_gsi[v]);
            removed = true;
        }
        if (c->vec_fd[v] >= 0)
            close(c->vec_fd[v]);
    }
    if (removed)
        irq_commit(c->vm.irq);
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++) {
        struct nvme_sq *sq = &c->sq[q];
        if (sq->efd >= 0)
            close(sq->efd);
        if (sq->slots)
            for (unsigned s = 0; s < NVME_DEPTH; s++) {
                free(sq->slots[s].iov);
                free(sq->slots[s].ranges);
            }
        free(sq->slots);
    }
    if (c->img_open)
        blk_image_close(&c->img);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->intx_lock);
    pthread_mutex_destroy(&c->ioev_lock);
    free(c);
}

int nvme_create(const struct nvme_vm *vm, const struct disk_arg *arg, unsigned index,
                int io_cpu, struct nvme **out)
{
    struct nvme *c = calloc(1, sizeof(*c));
    int err = -ENOMEM;

    if (!c)
        return -ENOMEM;
    snprintf(c->name, sizeof(c->name), "nvme%u", index);
    c->vm = *vm;
    c->bar_addr = PCI_BAR_UNMAPPED;
    c->intx_gsi = -1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->intx_lock, NULL);
    pthread_mutex_init(&c->ioev_lock, NULL);
    c->ioev_bar = PCI_BAR_UNMAPPED;
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++)
        c->ioev_len[q] = IOEV_NONE;
    for (unsigned v = 0; v < NVME_NR_VECTORS; v++) {
        c->vec_fd[v] = -1;
        c->vec_gsi[v] = -1;
    }
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++)
        c->sq[q].efd = -1;
    if (!vm->env || !vm->irq) {
        log_err(COMP, "%s: no VM environment", c->name);
        err = -EINVAL;
        goto fail;
    }

    if (arg->queues > 1 || arg->iothreads > 1)
        log_warn(COMP, "--disk %s,if=nvme: queues=%u/iothreads=%u are not used: the guest "
                 "creates its own queues (up to %u) and one I/O thread serves them", arg->path,
                 arg->queues, arg->iothreads, NVME_MAX_IOQ);
    err = blk_image_open(&c->img, COMP, arg->path, arg->readonly, arg->cache == DISK_CACHE_NONE);
    if (err)
        goto fail;
    c->img_open = true;
    c->ns.lba_shift = c->img.logical_block == 4096 ? 12 : 9;
    c->ns.nsze = c->img.size >> c->ns.lba_shift;
    c->ns.readonly = arg->readonly;
    c->ns.dsm = c->ns.write_zeroes = !arg->readonly && arg->discard;
    c->ns.max_xfer = (uint64_t)NVME_PAGE << NVME_MDTS;
    if (c->ns.nsze == 0) {
        log_err(COMP, "--disk %s: an empty image cannot be an NVMe namespace", arg->path);
        err = -EINVAL;
        goto fail;
    }
    if (arg->serial[0])
        snprintf(c->serial, sizeof(c->serial), "%s", arg->serial);
    else
        snprintf(c->serial, sizeof(c->serial), "MV%016" PRIX64, c->img.ino ^ (c->img.dev << 40));
    /* a name-based (version 5 style) UUID from the file's identity */
    uint64_t h1 = c->img.ino * 0x9E3779B97F4A7C15ULL ^ c->img.dev;
    uint64_t h2 = (c->img.dev + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL ^ c->img.ino;
    put_le(c->uuid, h1, 8);
    put_le(c->uuid + 8, h2, 8);
    c->uuid[6] = (uint8_t)((c->uuid[6] & 0x0F) | 0x50);
    c->uuid[8] = (uint8_t)((c->uuid[8] & 0x3F) | 0x80);

    err = -ENOMEM;
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++) {
        struct nvme_sq *sq = &c->sq[q];
        sq->efd = eventfd(0, EFD_CLOEXEC);
        if (sq->efd < 0)
            goto fail_errno;
        sq->slots = calloc(NVME_DEPTH, sizeof(*sq->slots));
        if (!sq->slots)
            goto fail;
        for (unsigned s = 0; s < NVME_DEPTH; s++) {
            sq->slots[s].iov = calloc(NVME_MAX_IOV, sizeof(struct iovec));
            sq->slots[s].ranges = calloc(q ? NVME_MAX_DSM_RANGES : 1, sizeof(struct blk_range));
            if (!sq->slots[s].iov || !sq->slots[s].ranges)
                goto fail;
        }
        slots_init(sq);
    }
    for (unsigned v = 0; v < NVME_NR_VECTORS; v++) {
        c->vec_fd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->vec_fd[v] < 0)
            goto fail_errno;
    }
    queues_clear(c);
    err = pci_msix_init(&c->msix, NVME_NR_VECTORS, &nvme_msix_ops, c);
    if (err)
        goto fail;
    err = build_config_space(c);
    if (err) {
        log_err(COMP, "%s: cannot lay out the PCI config space", c->name);
        goto fail;
    }
    /* "nvme0" -> threads "nvme0-io0" */
    struct blk_engine_config ec = {
        .name = c->name, .thread_name = c->name, .img = &c->img,
        .nr_queues = NVME_NR_QUEUES, .nr_threads = 1, .depth = NVME_DEPTH,
        .max_ranges = NVME_MAX_DSM_RANGES, .cpu = io_cpu,
        .ops = &nvme_engine_ops, .opaque = c,
    };
    err = blk_engine_create(&ec, &c->engine);
    if (err)
        goto fail;
    log_debug(COMP, "%s: %s, %" PRIu64 " blocks of %u%s", c->name, arg->path, c->ns.nsze,
              1u << c->ns.lba_shift, arg->readonly ? ", read-only" : "");
    *out = c;
    return 0;
fail_errno:
    err = -errno;
    log_err(COMP, "%s: cannot create eventfds: %s", c->name, strerror(errno));
fail:
    nvme_destroy(c);
    return err;
}

int nvme_plug(struct nvme *c, struct pci_bus *bus, struct pci_device *parent, uint8_t devfn,
              int (*intx_gsi)(void *ctx, const struct pci_device *d, uint8_t pin), void *ctx)
{
    struct pci_device *d = &c->pdev;

    if (!pci_cap_find(d, PCI_CAP_ID_EXP)) {
        /* PCIe 5.0 §7.5.3: on bus 0 a root-complex integrated endpoint (as
         * QEMU's q35 devices are), behind a port an endpoint with a x4
         * 8 GT/s link */
        bool port = parent && parent->is_pcie_port;
        int r = pci_pcie_cap_add(d, CAP_EXP_AT, port ? PCI_EXP_TYPE_ENDPOINT : PCI_EXP_TYPE_RC_END);
        if (r < 0)
            return r;
        if (port) {
            pci_cfg_set(d, CAP_EXP_AT + PCI_EXP_LNKCAP, 4, 0x3 | 4u << 4);
            pci_cfg_set(d, CAP_EXP_AT + PCI_EXP_LNKSTA, 2, 0x3 | 4u << 4);
        }
    }
    int r = pci_bus_add(bus, parent, devfn, d);
    if (r)
        return r;
    c->bus = bus;
    c->plugged = true;
    if (intx_gsi) {
        int g = intx_gsi(ctx, d, 1);
        if (g >= 0) {
            c->intx_gsi = g;
            pci_cfg_set(d, PCI_INTERRUPT_LINE, 1, (uint32_t)g & 0xFF);
        }
    }
    return 0;
}

void nvme_unplug(struct nvme *c)
{
    if (!c)
        return;
    if (c->plugged) {
        pci_bus_remove(c->bus, &c->pdev);
        c->plugged = false;
        c->bus = NULL;
    }
    if (c->bar_addr != PCI_BAR_UNMAPPED) {
        ioev_update(c, PCI_BAR_UNMAPPED);
        bus_unregister(c->vm.env->mmio, c->bar_addr);
        pthread_mutex_lock(&c->ioev_lock);
        c->bar_addr = PCI_BAR_UNMAPPED;
        pthread_mutex_unlock(&c->ioev_lock);
    }
    if (!c->engine)
        return;
    pthread_mutex_lock(&c->lock);
    ctrl_reset_locked(c);
    atomic_store(&c->cc, 0);
    c->aqa = 0;
    c->asq = c->acq = 0;
    pci_msix_reset(&c->msix);
    pthread_mutex_unlock(&c->lock);
    atomic_store(&c->msix_on, false);
    atomic_store(&c->intx_disabled, false);
    pthread_mutex_lock(&c->intx_lock);
    if (c->intx_level && c->intx_gsi >= 0)
        dev_irq_set(c->vm.env, (unsigned)c->intx_gsi, 0);
    c->intx_level = false;
    pthread_mutex_unlock(&c->intx_lock);
    c->intx_gsi = -1;
    if (build_config_space(c))
        log_err(COMP, "%s: cannot lay out the PCI config space again", c->name);
}

int nvme_vector_fd(const struct nvme *c, unsigned v)
{
    return v < NVME_NR_VECTORS ? c->vec_fd[v] : -1;
}

/* ---- the device in the machine's PCI list ---- */

static int nvme_pcidev_plug(void *dev, const struct pcidev_where *w)
{
    return nvme_plug(dev, w->bus, w->parent, w->devfn, w->intx_gsi, w->intx_ctx);
}

static void nvme_pcidev_unplug(void *dev)
{
    nvme_unplug(dev);
}

static void nvme_pcidev_destroy(void *dev)
{
    nvme_destroy(dev);
}

/* QEMU's name for an NVMe namespace in "bootorder" (fw_name "nvme", the
 * namespace node "namespace@NSID,EUI64"), which OvmfPkg's QemuBootOrderLib
 * turns into PciRoot(0x0)/Pci(SLOT,FN)/NVMe(0x1,00-00-00-00-00-00-00-00)
 * (older ones: the PciRoot(0x0)/Pci(SLOT,FN) prefix); the EUI-64 is 0, as
 * Identify Namespace reports it. */
static int nvme_pcidev_boot_path(void *dev, const struct pcidev_where *w, char *buf, size_t len)
{
    int n;

    (void)dev;
    if (w->parent)
        n = snprintf(buf, len, "/pci@i0cf8/pci-bridge@%x/nvme@%x/namespace@1,0", w->slot,
                     PCI_SLOT(w->devfn));
    else if (PCI_FUNC(w->devfn))
        n = snprintf(buf, len, "/pci@i0cf8/nvme@%x,%x/namespace@1,0", w->slot, PCI_FUNC(w->devfn));
    else
        n = snprintf(buf, len, "/pci@i0cf8/nvme@%x/namespace@1,0", w->slot);
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct pcidev_ops nvme_pcidev_ops = {
    .plug = nvme_pcidev_plug,
    .unplug = nvme_pcidev_unplug,
    .destroy = nvme_pcidev_destroy,
    .boot_path = nvme_pcidev_boot_path,
};

int nvme_attach(const struct pcidev_host *h, const struct disk_args *a, struct pcidev_list *l)
{
    struct nvme_vm vm = { .env = h->env, .irq = h->irq, .vm_fd = h->vm_fd };

    for (unsigned i = 0, n = 0; i < a->nr; i++) {
        struct nvme *c;
        struct pcidev *d;
        char name[32];
        if (a->disk[i].iface != DISK_IF_NVME || a->disk[i].cdrom)
            continue;
        int err = nvme_create(&vm, &a->disk[i], n, h->io_pin, &c);
        if (err)
            return err;
        snprintf(name, sizeof(name), "nvme%u", n++);
        err = pcidev_add(l, name, PCIDEV_STORAGE, PCIDEV_ROOT_BUS, &nvme_pcidev_ops, c, &d);
        if (err) {
            nvme_destroy(c);
            return err;
        }
        d->boot_index = a->disk[i].boot_index;
    }
    return 0;
}
