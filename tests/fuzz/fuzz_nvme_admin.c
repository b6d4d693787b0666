/* libFuzzer target: hostile admin and NVM commands through the whole NVMe
 * controller (devices/storage/nvme.c) -- its PCI function, registers,
 * queues and engine thread, on a small temporary image.
 *
 * Input: byte 0 bits 3:0 the number of commands - 1 (1-16), bit 7 NVM
 * commands on an I/O queue instead of admin commands; then that many
 * 64-byte SQ entries (an AER opcode on the admin queue becomes Abort: an
 * AER is held by design), then guest RAM from 0x40000 (what data pointers
 * point at: 64 KiB at most). Each run resets the controller (CC.EN 1 -> 0),
 * enables it with a 64-entry admin queue at 0x10000/0x20000 -- and for NVM
 * commands creates I/O queue 1 (SQ 0x30000, CQ 0x32000, 64 entries) --,
 * submits the commands with one doorbell and waits for their CQEs.
 * Checked: nothing crashes or touches memory outside RAM (ASan), and the
 * next run's reset finds the engine thread responsive (a hang is
 * libFuzzer's timeout). Whether every command was
 * answered cannot be checked here -- a command's data may land on the
 * queues themselves, as the host allowed -- test_nvme.c checks that. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/block/disk_args.h"
#include "devices/pci/pci.h"
#include "devices/storage/nvme.h"
#include "devices/storage/nvme_cmd.h"
#include "vmm/bus.h"
#include "vmm/dev_env.h"
#include "vmm/gm.h"
#include "vmm/irq.h"
#include "vmm/log.h"

#define RAM   (1u << 20)
#define BAR   0xE0000000ULL
#define DEVFN PCI_DEVFN(0x0A, 0)
#define ASQ   0x10000ULL
#define ACQ   0x20000ULL
#define QENT  64u
#define DATA  0x40000ULL
#define IOSQ  0x30000ULL
#define IOCQ  0x32000ULL

static struct bus pio, mmio;
static struct dev_env env;
static struct gm g;
static struct irq_table irq;
static struct pci_bus pb;
static struct nvme *ctl;

static void check_at(bool ok, int line)
{
    if (!ok) {
        fprintf(stderr, "fuzz_nvme_admin: check at line %d failed\n", line);
        abort();
    }
}
#define check(ok) check_at((ok), __LINE__)

static int no_irq(void *opaque, unsigned gsi, int level)
{
    (void)opaque;
    (void)gsi;
    (void)level;
    return 0;
}

static uint32_t rd32(uint64_t off)
{
    uint8_t b[4] = { 0 };
    check(bus_read(&mmio, BAR + off, b, 4) == 0);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void wr(uint64_t off, unsigned len, uint64_t v)
{
    uint8_t b[8];
    for (unsigned i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    check(bus_write(&mmio, BAR + off, b, len) == 0);
}

static void setup(void)
{
    char dir[] = "/tmp/minivmm-fuzz-nvme-XXXXXX", path[64], err[128];
    struct gm_config gc = { .size = RAM, .lock = false };
    struct disk_arg a;

    log_set_level(LOG_ERR);
    check(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/disk.img", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    check(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
    close(fd);
    check(bus_init(&pio, "pio") == 0 && bus_init(&mmio, "mmio") == 0);
    check(gm_init(&g, &gc) == 0);
    env = (struct dev_env){ .pio = &pio, .mmio = &mmio, .gm = &g, .irq_set = no_irq };
    check(irq_table_init(&irq, -1, 0) == 0);
    check(pci_bus_init(&pb, &pio, &mmio) == 0);
    snprintf(err, sizeof(err), "%s,if=nvme", path);
    check(disk_arg_parse(err, &a, err, sizeof(err)) == 0);
    struct nvme_vm vm = { .env = &env, .irq = &irq, .vm_fd = -1 };
    check(nvme_create(&vm, &a, 0, -1, &ctl) == 0);
    unlink(path);   /* the open descriptor keeps it */
    rmdir(dir);
    check(nvme_plug(ctl, &pb, NULL, DEVFN, NULL, NULL) == 0);
    check(pci_config_write(&pb, 0, DEVFN, PCI_BAR0, 4, (uint32_t)BAR) == 0);
    check(pci_config_write(&pb, 0, DEVFN, PCI_BAR0 + 4, 4, (uint32_t)(BAR >> 32)) == 0);
    check(pci_config_write(&pb, 0, DEVFN, PCI_COMMAND, 2,
                           PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER) == 0);
}

/* A CQE as a driver reads it: the dword with the phase tag first (the
 * device stores it last), then the rest. Whether it is new: its phase. */
static bool cqe_read(const uint8_t *p, struct nvme_cqe *c)
{
    uint32_t dw3 = __atomic_load_n((const uint32_t *)(const void *)(p + 12), __ATOMIC_ACQUIRE);
    if (!(dw3 >> 16 & 1))
        return false;
    memcpy(c, p, 12);
    memcpy((uint8_t *)c + 12, &dw3, 4);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (size < 1)
        return 0;
    unsigned n = 1 + (data[0] & 0xF);
    bool io = data[0] & 0x80;
    data++;
    size--;
    if (size < n * 64u)
        return 0;

    /* reset first: the previous run's last completions land before it */
    wr(0x14, 4, 0);
    check((rd32(0x1C) & 1) == 0);
    uint8_t *ram = gm_ptr(&g, 0, RAM);
    memset(ram, 0, RAM);
    struct nvme_sqe e[16];
    memcpy(e, data, n * 64u);
    data += n * 64u;
    size -= n * 64u;
    memcpy(ram + DATA, data, size < 0x10000 ? size : 0x10000);

    wr(0x24, 4, (QENT - 1) << 16 | (QENT - 1));
    wr(0x28, 8, ASQ);
    wr(0x30, 8, ACQ);
    wr(0x14, 4, 6u << 16 | 4u << 20 | 1);
    check((rd32(0x1C) & 3) == 1);
    uint64_t sq = ASQ, cq = ACQ;
    unsigned qid = 0, got = 0;
    if (io) {
        /* Number of Queues 1, CQ 1 (vector 1), SQ 1 */
        const struct nvme_sqe setup_cmds[3] = {
            { .opc = NVME_ADM_SET_FEAT, .cid = 1, .cdw10 = 0x07, .cdw11 = 0 },
            { .opc = NVME_ADM_CREATE_CQ, .cid = 2, .prp1 = IOCQ, .cdw10 = (QENT - 1) << 16 | 1,
              .cdw11 = 1u << 16 | 3 },
            { .opc = NVME_ADM_CREATE_SQ, .cid = 3, .prp1 = IOSQ, .cdw10 = (QENT - 1) << 16 | 1,
              .cdw11 = 1u << 16 | 1 },
        };
        memcpy(ram + ASQ, setup_cmds, sizeof(setup_cmds));
        wr(0x1000, 4, 3);
        struct timespec s0, s1;
        clock_gettime(CLOCK_MONOTONIC, &s0);
        for (unsigned k = 0; k < 3;) {
            struct nvme_cqe c;
            if (cqe_read(ram + ACQ + 16u * k, &c)) {
                check(c.cid == k + 1 && (c.status >> 1) == 0);   /* the setup must work */
                k++;
                continue;
            }
            clock_gettime(CLOCK_MONOTONIC, &s1);
            check(s1.tv_sec - s0.tv_sec < 5);
        }
        wr(0x1004, 4, 3);
        sq = IOSQ;
        cq = IOCQ;
        qid = 1;
    }
    for (unsigned i = 0; i < n; i++) {
        if (!io && e[i].opc == NVME_ADM_AER)
            e[i].opc = NVME_ADM_ABORT;
        e[i].cid = (uint16_t)(0x100 + i);
        memcpy(ram + sq + 64u * i, &e[i], 64);
    }
    wr(0x1000 + 8 * qid, 4, n);

    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (got < n) {
        struct nvme_cqe c;
        if (cqe_read(ram + cq + 16u * got, &c)) {
            if (c.cid != 0x100 + got || c.sqid != qid)
                break;   /* a command's data went over the queues: the guest's own doing */
            got++;
            continue;
        }
        if (rd32(0x1C) & 2)
            break;   /* CFS: the controller gave up, as it may */
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec >= 2)
            break;   /* (a PRP may have zeroed the CQ); a hung device shows at the reset */
    }
    wr(0x1004 + 8 * qid, 4, got % QENT);
    return 0;
}
