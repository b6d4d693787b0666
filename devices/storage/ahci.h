/* The q35's ICH9 SATA controller in AHCI mode (Serial ATA AHCI 1.3.1):
 * 8086:2922, class 01.06.01, at 00:1f.2, with up to six ports, each a SATA
 * disk (devices/storage/ata.h) or an ATAPI CD-ROM
 * (devices/storage/atapi.h) on its own image and block engine thread.
 *
 * PCI (AHCI 1.3.1 §2): BAR5 = ABAR, 4 KiB of memory; BAR4 = 32 bytes of
 * I/O with QEMU's index/data pair into ABAR (index +10h, data +14h); the
 * PM capability at 0x70 (PCI PM 1.2), MSI at 0x80 (one vector, 64-bit, no
 * masking), the SATA capability at 0xA8 (§2.4: revision 1.0, pointing at
 * the pair); INTA# on the platform's GSI while MSI is off.
 *
 * HBA registers (§3.1), ABAR + 0x00:
 *   00 CAP   S64A, SNCQ, SAM (AHCI only), ISS Gen3, 32 slots (NCS 31),
 *            6 ports (NP 5); no SSS, PMD, SCLO, SALP, SSNTF, CCC, EMS
 *   04 GHC   AE (reads 1), IE, HR (reads 1 until the ports drained)
 *   08 IS    one bit per port: PxIS & PxIE (computed; writes ignored)
 *   0C PI    3Fh     10 VS 0001_0301h (1.3.1)   24 CAP2 0   28 BOHC 0
 * Port registers (§3.3), ABAR + 0x100 + port * 0x80:
 *   00/04 CLB/CLBU (1 KiB aligned)   08/0C FB/FBU (256-byte aligned)
 *   10 IS (W1C)   14 IE   18 CMD: ST, FRE, CLO (self-clearing), ATAPI,
 *   SUD/POD (read 1), FR and CR (the HBA's), CCS, ICC (reads 0)
 *   20 TFD (error 15:8, status 7:0)   24 SIG (101h disk, EB140101h CD)
 *   28 SSTS (133h: device, Gen3, active)   2C SCTL (DET = 1: COMRESET)
 *   30 SERR (W1C)   34 SACT (set by software)   38 CI   3C SNTF (0)
 * Registers are dword registers (§3): reads of 1-8 bytes work, writes of
 * other than aligned dwords (or qwords, two dwords) are dropped.
 *
 * Commands (§4.2, §5): the command list (32 headers of 32 bytes), a
 * command table per header (CFIS 0x00, ACMD 0x40, PRDT 0x80, at most
 * 65535 entries of 16 bytes), the received FIS area (DSFIS 00h, PSFIS 20h,
 * RFIS 40h, SDBFIS 58h). Every guest address goes through gm_ptr once:
 * the header and table are copied, each PRD entry is read once into an
 * iovec. A write of PxCI (vCPU) kicks the port's eventfd; the port's
 * engine thread takes the issued slots, decodes and submits; the
 * completion posts the FIS and raises PxIS:
 *   non-data, DMA, FLUSH, TRIM   D2H Register FIS (I), PxIS.DHRS
 *   PIO data-in (IDENTIFY)       PIO Setup FIS (I, E_Status) and D2H: PSS|DHRS
 *   NCQ (§5.6.4)                 PxCI cleared when taken; completion: SDB
 *                                FIS with the tag's SActive bit: PxIS.SDBS
 *   control FIS (C = 0: SRST)    SRST off sends the signature D2H FIS
 * A failing command (§6.1.2: an aborted ATA command, a CFIS that is not a
 * Register H2D FIS, a PRDT shorter than the transfer or outside RAM, an
 * I/O error): TFD status ERR|DRDY with the error register (ABRT ...), a
 * D2H FIS with it, PxIS.TFES (and HBDS/HBFS for bad memory), PxCMD.CCS the
 * slot, its PxCI bit left set, and the port takes no more commands until
 * software clears ST (as Linux, Windows storahci and OVMF recover).
 * Clearing ST, a COMRESET or an HBA reset drop PxCI/PxSACT; requests
 * still at the engine finish and are forgotten, PxCMD.CR (and GHC.HR)
 * read 1 until they have. */
#ifndef MINIVMM_AHCI_H
#define MINIVMM_AHCI_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define AHCI_VENDOR_ID      0x8086
#define AHCI_DEVICE_ID      0x2922  /* ICH9 6-port SATA, AHCI mode */
#define AHCI_CLASS          0x010601
#define AHCI_NR_PORTS       6
#define AHCI_NR_SLOTS       32
#define AHCI_ABAR           5
#define AHCI_ABAR_SIZE      0x1000
#define AHCI_IDP_BAR        4
#define AHCI_IDP_SIZE       32
#define AHCI_IDP_INDEX      0x10
#define AHCI_IDP_DATA       0x14
#define AHCI_PM_AT          0x70
#define AHCI_MSI_AT         0x80
#define AHCI_SATA_AT        0xA8
#define AHCI_CAP_ID_SATA    0x12    /* Serial ATA Data/Index Configuration */
#define AHCI_MAX_PRDTL      65535u
#define AHCI_MAX_IOV        1024u   /* IOV_MAX: per command after merging */
#define AHCI_CMD_HDR_SIZE   32u
#define AHCI_CMD_TBL_HDR    0x80u   /* CFIS, ACMD, reserved; then the PRDT */
#define AHCI_PRD_SIZE       16u

/* HBA registers */
#define AHCI_CAP            0x00
#define AHCI_GHC            0x04
#define AHCI_IS             0x08
#define AHCI_PI             0x0C
#define AHCI_VS             0x10
#define AHCI_CAP2           0x24
#define AHCI_PORT_BASE      0x100
#define AHCI_PORT_SIZE      0x80
#define AHCI_GHC_HR         (1u << 0)
#define AHCI_GHC_IE         (1u << 1)
#define AHCI_GHC_AE         (1u << 31)
/* port registers */
#define AHCI_PX_CLB         0x00
#define AHCI_PX_CLBU        0x04
#define AHCI_PX_FB          0x08
#define AHCI_PX_FBU         0x0C
#define AHCI_PX_IS          0x10
#define AHCI_PX_IE          0x14
#define AHCI_PX_CMD         0x18
#define AHCI_PX_TFD         0x20
#define AHCI_PX_SIG         0x24
#define AHCI_PX_SSTS        0x28
#define AHCI_PX_SCTL        0x2C
#define AHCI_PX_SERR        0x30
#define AHCI_PX_SACT        0x34
#define AHCI_PX_CI          0x38
#define AHCI_PX_SNTF        0x3C
/* PxIS (§3.3.5) */
#define AHCI_PX_IS_DHRS     (1u << 0)
#define AHCI_PX_IS_PSS      (1u << 1)
#define AHCI_PX_IS_DSS      (1u << 2)
#define AHCI_PX_IS_SDBS     (1u << 3)
#define AHCI_PX_IS_HBDS     (1u << 28)
#define AHCI_PX_IS_HBFS     (1u << 29)
#define AHCI_PX_IS_TFES     (1u << 30)
/* PxCMD (§3.3.7) */
#define AHCI_PX_CMD_ST      (1u << 0)
#define AHCI_PX_CMD_SUD     (1u << 1)
#define AHCI_PX_CMD_POD     (1u << 2)
#define AHCI_PX_CMD_CLO     (1u << 3)
#define AHCI_PX_CMD_FRE     (1u << 4)
#define AHCI_PX_CMD_FR      (1u << 14)
#define AHCI_PX_CMD_CR      (1u << 15)
#define AHCI_PX_CMD_ATAPI   (1u << 24)
#define AHCI_SIG_ATA        0x00000101u
#define AHCI_SIG_ATAPI      0xEB140101u
/* command header DW0 (§4.2.2) */
#define AHCI_HDR_CFL_MASK   0x1Fu
#define AHCI_HDR_ATAPI      (1u << 5)
#define AHCI_HDR_WRITE      (1u << 6)
/* received FIS area offsets (§4.2.1) */
#define AHCI_RFIS_PSFIS     0x20
#define AHCI_RFIS_RFIS      0x40
#define AHCI_RFIS_SDBFIS    0x58
#define AHCI_RFIS_SIZE      0x100

struct gm;
struct pci_bus;
struct pci_device;
struct dev_env;
struct irq_table;
struct disk_arg;
struct disk_args;
struct pcidev_host;
struct pcidev_list;

/* One command as fetched from guest memory (§4.2.2, §4.2.3): header and
 * table copied once; the PRDT mapped (prd, prdtl entries), not copied. */
struct ahci_cmd {
    uint32_t dw0;
    unsigned cfl, prdtl;        /* CFIS dwords; PRD entries */
    uint64_t ctba;
    uint8_t cfis[64];
    uint8_t acmd[16];
    const uint8_t *prd;         /* NULL when prdtl is 0 */
    uint8_t *hdr;               /* the header in guest memory (PRDBC at +4) */
};

/* Fetch slot's command of the list at clb. 0, -EFAULT (header, table or
 * PRDT not in RAM), -EINVAL (CFL not 5..16 dwords). Pure but for gm. */
int ahci_cmd_fetch(const struct gm *gm, uint64_t clb, unsigned slot, struct ahci_cmd *c);
/* The first len bytes the PRDT describes (§4.2.3.3: DBA word-aligned, DBC
 * bits 21:0 an odd value: an even byte count of up to 4 MiB) as at most
 * max iovecs of host memory, adjacent ones merged; each entry is read
 * once. Returns the number of iovecs, or -EFAULT (an entry not in RAM),
 * -ENOSPC (more than max), -EINVAL (the PRDT describes fewer than len
 * bytes). len 0 gives 0. */
int ahci_prdt_iov(const struct gm *gm, const uint8_t *prd, unsigned prdtl, uint64_t len,
                  struct iovec *iov, unsigned max);

struct ahci_vm {
    const struct dev_env *env;
    struct irq_table *irq;
    int vm_fd;                  /* -1: no KVM (tests): MSI eventfds not bound */
    int io_cpu;                 /* --io-pin, -1 */
};

struct ahci;

/* The controller with disks[0..n) on ports 0..n-1 (n <= 6): images opened,
 * engines created (idle until plugged). 0 or -errno, logged naming the
 * flag. */
int ahci_create(const struct ahci_vm *vm, const struct disk_arg *const *disks, unsigned n,
                struct ahci **out);
void ahci_destroy(struct ahci *h);
/* On bus at devfn (00:1f.2 on q35); intx_gsi gives INTA#'s GSI. */
int ahci_plug(struct ahci *h, struct pci_bus *bus, uint8_t devfn,
              int (*intx_gsi)(void *ctx, const struct pci_device *d, uint8_t pin), void *ctx);
/* Off the bus, back to power-on (requests in flight waited for). */
void ahci_unplug(struct ahci *h);
struct pci_device *ahci_pci(struct ahci *h);
/* The MSI vector's eventfd (tests: signalled while MSI is on). */
int ahci_msi_fd(const struct ahci *h);

/* One controller at 00:1f.2 when any --disk ...,if=sata or --cdrom is
 * given, ports in command-line order; more than six are refused naming
 * the flag. */
int ahci_attach(const struct pcidev_host *host, const struct disk_args *a,
                struct pcidev_list *l);

#endif
