/* The PCI bus model: emulated functions, their config space, BARs, bridges,
 * and the two ways a guest reaches config space.
 *
 * Config space (PCI Local Bus 3.0 §6.1, PCIe 5.0 §7.5): every function has a
 * 4 KiB byte array with two masks per byte:
 *   wmask    1 = the guest may write this bit (everything else is read-only),
 *   w1cmask  1 = writing 1 clears this bit (status registers).
 * BARs are ordinary registers whose wmask is the address bits above the BAR's
 * size, so the sizing protocol (PCI 3.0 §6.2.5.1: write all ones, read back,
 * the low bits that stay 0 give the size) needs no special case: the type
 * bits are read-only and the size bits never take a 1.
 *
 * A function may virtualize its own config space (VFIO does, through
 * vfio/config.h): its ops->cfg_read / cfg_write see every access first and
 * return PCI_CFG_GENERIC to let the model above handle it. After a generic
 * write, ops->cfg_written is told which bytes changed (emulated chips act on
 * their registers there: the MCH's PCIEXBAR moves ECAM). When the guest
 * changes what a BAR decodes -- its address, or the I/O or memory enable bit
 * of the command register -- ops->bar_map is called with the new address (or
 * "not decoded"), so the device registers its range on the port or MMIO bus
 * there. A BAR decodes only at a usable address: non-zero, no wrap-around,
 * an I/O BAR below 64 KiB, a 32-bit BAR below 4 GiB.
 *
 * Topology: functions sit on the root bus (bus 0) or behind a bridge (type 1
 * header, e.g. devices/pci/pci_root_port.h). A config access to bus N is routed
 * like hardware does (PCI-to-PCI Bridge 1.2 §3.1.2.1): to the bridge whose
 * secondary bus is N (as a type 0 access to its child) or through the bridge
 * whose [secondary, subordinate] range holds N. Behind a PCIe port only
 * device 0 exists (PCIe 5.0 §7.3.1: other device numbers are Unsupported
 * Requests). A function that does not exist reads as all ones; writes to it
 * are dropped. Bridge windows are not enforced on BAR decoding: a BAR behind
 * a root port decodes where the guest put it (a firmware or OS that programs
 * windows does so consistently; a hostile guest only confuses itself).
 *
 * Guest entry points:
 *   - Configuration Mechanism #1 (PCI 3.0 §3.2.2.3.2): CONFIG_ADDRESS at
 *     0xCF8 (a 32-bit register: bit 31 enable, 23:16 bus, 15:11 device,
 *     10:8 function, 7:2 register; only dword accesses reach it), and
 *     CONFIG_DATA at 0xCFC-0xCFF (1, 2 or 4 bytes; the port's low 2 bits
 *     select the byte). The extended register bits 27:24 (AMD's and QEMU's
 *     extension) are not decoded: the legacy mechanism sees 256 bytes.
 *     Port 0xCF9 shares the dword: it is the ICH9 reset control register,
 *     owned by devices/chipset/sysctl.c. pci_bus_attach_pio() takes over a range
 *     registered at exactly [0xCF9, 1) and forwards byte accesses at 0xCF9
 *     to it, so both work whatever the access width (a dword access at 0xCF8
 *     is CONFIG_ADDRESS, a byte access at 0xCF9 is reset control).
 *   - ECAM (PCIe 5.0 §7.2.2): offset bus << 20 | dev << 15 | fn << 12 | reg
 *     from the base, registered on the MMIO bus by pci_bus_set_ecam() (the
 *     q35 MCH calls it when the guest programs PCIEXBAR). 1, 2 or 4 bytes,
 *     naturally aligned; an 8-byte access is split into two dwords.
 *
 * Locking: one mutex per bus serializes every config access (the
 * CONFIG_ADDRESS latch is shared by all vCPUs, as in hardware). Device ops
 * run with it held; they may call pci_bus_set_ecam_locked() and register on
 * the port/MMIO buses, but must not make config accesses themselves. */
#ifndef MINIVMM_PCI_H
#define MINIVMM_PCI_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/msix.h"
#include "vmm/bus.h"

#define PCI_CFG_SIZE        4096u
#define PCI_CFG_LEGACY_SIZE 256u
#define PCI_NR_BARS         6
#define PCI_DEVFN(dev, fn)  ((uint8_t)(((dev) << 3) | (fn)))
#define PCI_SLOT(devfn)     (((devfn) >> 3) & 0x1F)
#define PCI_FUNC(devfn)     ((devfn) & 7)

/* Type 0/1 header offsets (PCI 3.0 §6.1, PCI-to-PCI Bridge 1.2 §3.2) */
#define PCI_VENDOR_ID       0x00
#define PCI_DEVICE_ID       0x02
#define PCI_COMMAND         0x04
#define PCI_STATUS          0x06
#define PCI_REVISION_ID     0x08
#define PCI_CLASS_PROG      0x09
#define PCI_CLASS_DEVICE    0x0A
#define PCI_CACHE_LINE_SIZE 0x0C
#define PCI_LATENCY_TIMER   0x0D
#define PCI_HEADER_TYPE     0x0E
#define PCI_BAR0            0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2C
#define PCI_SUBSYSTEM_ID    0x2E
#define PCI_ROM_ADDRESS     0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE  0x3C
#define PCI_INTERRUPT_PIN   0x3D
/* type 1 */
#define PCI_PRIMARY_BUS     0x18
#define PCI_SECONDARY_BUS   0x19
#define PCI_SUBORDINATE_BUS 0x1A
#define PCI_SEC_LATENCY     0x1B
#define PCI_IO_BASE         0x1C
#define PCI_IO_LIMIT        0x1D
#define PCI_SEC_STATUS      0x1E
#define PCI_MEMORY_BASE     0x20
#define PCI_MEMORY_LIMIT    0x22
#define PCI_PREF_MEMORY_BASE  0x24
#define PCI_PREF_MEMORY_LIMIT 0x26
#define PCI_PREF_BASE_UPPER32 0x28
#define PCI_PREF_LIMIT_UPPER32 0x2C
#define PCI_IO_BASE_UPPER16 0x30
#define PCI_IO_LIMIT_UPPER16 0x32
#define PCI_ROM_ADDRESS1    0x38
#define PCI_BRIDGE_CONTROL  0x3E

#define PCI_COMMAND_IO      0x0001
#define PCI_COMMAND_MEMORY  0x0002
#define PCI_COMMAND_MASTER  0x0004
#define PCI_COMMAND_PARITY  0x0040
#define PCI_COMMAND_SERR    0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_STATUS_CAP_LIST 0x0010
/* Status bits that are write-1-to-clear (PCI 3.0 §6.2.3) */
#define PCI_STATUS_W1C      0xF900

#define PCI_HEADER_TYPE_NORMAL 0x00
#define PCI_HEADER_TYPE_BRIDGE 0x01
#define PCI_HEADER_TYPE_MULTI  0x80

/* Capability IDs (PCI Code and ID Assignment 1.11 §2) */
#define PCI_CAP_ID_PM       0x01
#define PCI_CAP_ID_MSI      0x05
#define PCI_CAP_ID_VNDR     0x09
#define PCI_CAP_ID_SSVID    0x0D
#define PCI_CAP_ID_EXP      0x10
#define PCI_CAP_ID_MSIX     0x11

#define PCI_BAR_UNMAPPED    (~0ULL)

enum pci_bar_type { PCI_BAR_NONE = 0, PCI_BAR_IO, PCI_BAR_MEM32, PCI_BAR_MEM64 };

struct pci_bar {
    enum pci_bar_type type;
    bool prefetch;
    uint64_t size;          /* power of two; I/O >= 4, memory >= 16 */
    uint64_t addr;          /* where it decodes now, PCI_BAR_UNMAPPED if not */
};

/* Returned by cfg_read/cfg_write hooks: "not mine, use the generic model". */
#define PCI_CFG_GENERIC 1

struct pci_device;
struct pci_bus;

struct pci_device_ops {
    /* Optional. off is aligned to len (1, 2 or 4) and inside 4 KiB. Return
     * 0 (handled; *val set), PCI_CFG_GENERIC, or a negative errno (the read
     * then returns all ones / the write is dropped). */
    int (*cfg_read)(struct pci_device *d, uint32_t off, unsigned len, uint32_t *val);
    int (*cfg_write)(struct pci_device *d, uint32_t off, unsigned len, uint32_t val);
    /* Optional: a generic write landed; old is the value before it. */
    void (*cfg_written)(struct pci_device *d, uint32_t off, unsigned len, uint32_t old);
    /* Optional: BAR bar now decodes at addr, or (addr == PCI_BAR_UNMAPPED)
     * not at all. Called once per change; the previous address is in
     * d->bars[bar].addr until the call returns. */
    void (*bar_map)(struct pci_device *d, unsigned bar, uint64_t addr);
};

/* An expansion ROM (PCI 3.0 §6.2.5.2): the image the function's ROM BAR
 * at 0x30 decodes, served read-only by the PCI layer itself. */
struct pci_rom_bar {
    const uint8_t *image;               /* the caller's; NULL: no ROM BAR */
    size_t len;
    uint64_t size;                      /* power of two >= 2 KiB, >= len */
    uint64_t addr;                      /* where it decodes, PCI_BAR_UNMAPPED */
    struct bus *mmio;                   /* where it is registered */
};

struct pci_device {
    const char *name;                   /* for messages */
    const struct pci_device_ops *ops;
    void *opaque;                       /* the device's own state */
    uint8_t devfn;
    uint8_t config[PCI_CFG_SIZE];
    uint8_t wmask[PCI_CFG_SIZE];
    uint8_t w1cmask[PCI_CFG_SIZE];
    uint32_t cfg_size;                  /* 256 (PCI) or 4096 (PCIe) */
    struct pci_bar bars[PCI_NR_BARS];
    struct pci_rom_bar rom;
    bool is_bridge;
    bool is_pcie_port;                  /* downstream is a link: device 0 only */
    /* topology, maintained by pci_bus_add */
    struct pci_bus *bus;
    struct pci_device *parent;          /* bridge above, NULL on bus 0 */
    struct pci_device *children;        /* behind this bridge */
    struct pci_device *next;            /* sibling on the same bus */
};

struct pci_bus {
    pthread_mutex_t lock;
    struct pci_device *root;            /* devices on bus 0 */
    uint32_t config_address;            /* 0xCF8 latch */
    struct bus *pio, *mmio;
    bool pio_attached;
    /* the range that sat at 0xCF9 before pci_bus_attach_pio, forwarded to */
    bool cf9_adopted;
    struct bus_range cf9;
    /* ECAM window on mmio, when enabled */
    bool ecam_on;
    uint64_t ecam_base, ecam_size;
};

int pci_bus_init(struct pci_bus *b, struct bus *pio, struct bus *mmio);
/* Detaches everything; devices themselves belong to their creators. */
void pci_bus_fini(struct pci_bus *b);

/* Register 0xCF8 and 0xCFC (4 bytes each) on pio, adopting a 1-byte range
 * at 0xCF9 (see above). -EEXIST if something else sits there. */
int pci_bus_attach_pio(struct pci_bus *b);
void pci_bus_detach_pio(struct pci_bus *b);

/* Move or disable the ECAM window: base aligned to size, size a multiple of
 * 1 MiB up to 256 MiB (one bus per MiB); size 0 disables. -EEXIST (window
 * left disabled, logged) if the MMIO bus has something there. The _locked
 * form is for device ops (bus lock held); the other takes the lock. */
int pci_bus_set_ecam(struct pci_bus *b, uint64_t base, uint64_t size);
int pci_bus_set_ecam_locked(struct pci_bus *b, uint64_t base, uint64_t size);

/* Prepare a function: zero config space, IDs, class (24 bits: base class,
 * subclass, programming interface), header type (PCI_HEADER_TYPE_*, the
 * multifunction bit included), and the standard write masks of the header:
 * command (I/O, memory, bus master, parity, SERR, INTx disable), status W1C
 * bits, cache line size, latency timer, interrupt line; for type 1 the bus
 * numbers, windows (16-bit I/O, 32-bit memory, 64-bit prefetchable) and
 * bridge control. cfg_size is 256 or 4096. */
void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor, uint16_t device,
                     uint32_t class_code, uint8_t revision, uint8_t header_type, uint32_t cfg_size);
/* Describe BAR i: size a power of two (I/O: 4 to 256 bytes per PCI 3.0
 * §6.2.5.1; memory: >= 16 bytes; 64-bit uses BARs i and i+1). -EINVAL for a
 * bad size or index (logged: programming error). */
int pci_device_set_bar(struct pci_device *d, unsigned i, enum pci_bar_type type,
                       bool prefetch, uint64_t size);
/* Give a type 0 function an expansion ROM (PCI 3.0 §6.2.5.2): the ROM BAR
 * at 0x30 sizes as the image rounded up to a power of two (at least 2 KiB,
 * at most 16 MiB), its enable bit (0) and address bits writable. While it
 * is enabled, memory decoding is on and it sits at a usable 32-bit address,
 * the PCI layer serves the image there read-only from the MMIO bus (past
 * its end reads 0xFF; writes are dropped); pci_bus_remove takes it off and
 * waits for reads in progress. image stays the caller's and must outlive
 * the function's time on the bus; call again after pci_device_init.
 * -EINVAL (logged) for a bridge, an empty or too large image. */
int pci_device_set_rom(struct pci_device *d, const void *image, size_t len);

/* Interrupt pin 1-4 (INTA#-INTD#), 0 = none. */
void pci_device_set_intx_pin(struct pci_device *d, uint8_t pin);

/* Plug d into bus b at devfn, on bus 0 (parent NULL) or behind bridge
 * parent. -EEXIST if the slot is taken, -EINVAL for a parent that is not a
 * bridge or a device number other than 0 behind a PCIe port. */
int pci_bus_add(struct pci_bus *b, struct pci_device *parent, uint8_t devfn,
                struct pci_device *d);
void pci_bus_remove(struct pci_bus *b, struct pci_device *d);

/* Guest config accesses, by bus/devfn as the guest numbers them now. len 1,
 * 2 or 4, off aligned to len; anything else reads all ones and drops the
 * write. Return 0, or -ENODEV when no function answers (reads: all ones). */
int pci_config_read(struct pci_bus *b, uint8_t bus, uint8_t devfn, uint32_t off,
                    unsigned len, uint32_t *val);
int pci_config_write(struct pci_bus *b, uint8_t bus, uint8_t devfn, uint32_t off,
                     unsigned len, uint32_t val);

/* The generic model, for devices' hooks to fall back on and for setup
 * before the guest runs (no locking: caller holds the bus lock or owns d). */
uint32_t pci_cfg_get(const struct pci_device *d, uint32_t off, unsigned len);
void pci_cfg_set(struct pci_device *d, uint32_t off, unsigned len, uint32_t val);
void pci_cfg_set_wmask(struct pci_device *d, uint32_t off, unsigned len, uint32_t mask);
void pci_cfg_set_w1cmask(struct pci_device *d, uint32_t off, unsigned len, uint32_t mask);
/* A guest write through the masks, with BAR/command side effects and the
 * cfg_written notification. */
void pci_cfg_write_generic(struct pci_device *d, uint32_t off, unsigned len, uint32_t val);
/* Recompute where every BAR decodes and call bar_map for changes. */
void pci_device_update_bars(struct pci_device *d);

/* Capabilities (PCI 3.0 §6.7). Add one of len bytes at off (>= 0x40,
 * dword-aligned, inside the 256-byte space, not overlapping the header):
 * its ID and next pointer are set, it is linked at the end of the list and
 * the status register's capability bit is set. Returns off or -EINVAL. */
int pci_cap_add(struct pci_device *d, uint8_t off, uint8_t id, uint8_t len);
/* Offset of the first capability id, 0 if none. Walks at most 48 entries
 * and stops at pointers into the header (a looped list ends the walk). */
uint8_t pci_cap_find(const struct pci_device *d, uint8_t id);
/* Extended capabilities (PCIe 5.0 §7.6.3) at off >= 0x100, dword-aligned. */
int pci_ext_cap_add(struct pci_device *d, uint16_t off, uint16_t id, uint8_t version, uint16_t len);
uint16_t pci_ext_cap_find(const struct pci_device *d, uint16_t id);

/* A bridge's forwarding windows as the guest programmed them (PCI-to-PCI
 * Bridge 1.2 §3.2.5.6-9): true with [*base, *limit] when the window is open
 * (base <= limit), false when closed. */
enum pci_window { PCI_WINDOW_IO, PCI_WINDOW_MEM, PCI_WINDOW_PREF };
bool pci_bridge_window(const struct pci_device *d, enum pci_window w, uint64_t *base,
                       uint64_t *limit);

/* PCI Express capability (PCIe 5.0 §7.5.3), version 2, 0x3C bytes. */
#define PCI_EXP_TYPE_ENDPOINT    0x0
#define PCI_EXP_TYPE_ROOT_PORT   0x4
#define PCI_EXP_TYPE_RC_END      0x9
#define PCI_EXP_FLAGS       0x02
#define PCI_EXP_DEVCAP      0x04
#define PCI_EXP_DEVCTL      0x08
#define PCI_EXP_DEVSTA      0x0A
#define PCI_EXP_LNKCAP      0x0C
#define PCI_EXP_LNKCTL      0x10
#define PCI_EXP_LNKSTA      0x12
#define PCI_EXP_SLTCAP      0x14
#define PCI_EXP_SLTCTL      0x18
#define PCI_EXP_SLTSTA      0x1A
#define PCI_EXP_RTCTL       0x1C
#define PCI_EXP_RTCAP       0x1E
#define PCI_EXP_RTSTA       0x20
#define PCI_EXP_DEVCAP2     0x24
#define PCI_EXP_DEVCTL2     0x28
#define PCI_EXP_LNKCAP2     0x2C
#define PCI_EXP_LNKCTL2     0x30
#define PCI_EXP_LNKSTA2     0x32
#define PCI_EXP_CAP_LEN     0x3C
int pci_pcie_cap_add(struct pci_device *d, uint8_t off, uint8_t port_type);

/* The interrupt and power capabilities both emulated devices and VFIO
 * need. Register names and values are <linux/pci_regs.h>'s, spelled the
 * same so that both headers can be included. */

/* MSI-X capability (PCI 3.0 §6.8.2), 12 bytes. */
#define PCI_MSIX_FLAGS              2
#define  PCI_MSIX_FLAGS_QSIZE       0x07FF
#define  PCI_MSIX_FLAGS_MASKALL     0x4000
#define  PCI_MSIX_FLAGS_ENABLE      0x8000
#define PCI_MSIX_TABLE              4
#define  PCI_MSIX_TABLE_BIR         0x00000007
#define  PCI_MSIX_TABLE_OFFSET      0xfffffff8
#define PCI_MSIX_PBA                8
#define  PCI_MSIX_PBA_BIR           0x00000007
#define  PCI_MSIX_PBA_OFFSET        0xfffffff8
#define PCI_CAP_MSIX_SIZEOF         12
/* Add an MSI-X capability at off for the table and PBA info describes:
 * message control holds the table size (N - 1) with only MSI-X Enable and
 * Function Mask writable; the table and PBA registers (BIR | offset) are
 * read-only. Refused with -EINVAL (logged: a programming error) unless
 * 1 <= nr_vectors <= 2048, both offsets are 8-byte aligned (their low 3
 * bits are the BIR), both BIRs name a memory BAR, already described with
 * pci_device_set_bar, that holds the table (16 bytes per vector) or the
 * PBA (a qword per 64 vectors) whole (§6.8.2.4, §6.8.2.5), and the two do
 * not overlap. The device
 * acts on the control bits itself (cfg_written -> pci_msix_control).
 * Returns off. */
int pci_msix_cap_add(struct pci_device *d, uint8_t off, const struct pci_msix_cap_info *info);

/* MSI capability (PCI 3.0 §6.8.1), the 64-bit layout: 14 bytes, or 24 with
 * per-vector masking. */
#define PCI_MSI_FLAGS               0x02
#define  PCI_MSI_FLAGS_ENABLE       0x0001
#define  PCI_MSI_FLAGS_QMASK        0x000e
#define  PCI_MSI_FLAGS_QSIZE        0x0070
#define  PCI_MSI_FLAGS_64BIT        0x0080
#define  PCI_MSI_FLAGS_MASKBIT      0x0100
#define PCI_MSI_ADDRESS_LO          0x04
#define PCI_MSI_ADDRESS_HI          0x08
#define PCI_MSI_DATA_32             0x08
#define PCI_MSI_MASK_32             0x0c
#define PCI_MSI_DATA_64             0x0c
#define PCI_MSI_MASK_64             0x10
#define PCI_MSI_PENDING_64          0x14
/* Add a 64-bit MSI capability at off with nr_vectors (a power of two, 1 to
 * 32: Multiple Message Capable) and, if per_vector_mask, mask and pending
 * bits. Writable: MSI Enable, Multiple Message Enable, the address (bits
 * 1:0 read 0), the 16-bit data and the mask bits of the nr_vectors
 * vectors. The pending bits read 0 here: a device with masking overlays
 * them from pci_msi_pending in its cfg_read hook. -EINVAL (logged) for a
 * vector count that is not a power of two up to 32. Returns off. */
int pci_msi_cap_add(struct pci_device *d, uint8_t off, unsigned nr_vectors, bool per_vector_mask);
/* The MSI capability at off as the guest programmed it, for
 * pci_msi_update: Multiple Message Enable is clamped to Multiple Message
 * Capable (a guest must not write more, §6.8.1.3), the 32-bit layout is
 * read too. */
void pci_msi_cap_state(const struct pci_device *d, uint8_t off, struct pci_msi_state *st);

/* Power Management capability (PCI Bus Power Management Interface 1.2
 * §3.2), 8 bytes. */
#define PCI_PM_PMC                  2
#define  PCI_PM_CAP_VER_MASK        0x0007
#define PCI_PM_CTRL                 4
#define  PCI_PM_CTRL_STATE_MASK     0x0003
#define  PCI_PM_CTRL_NO_SOFT_RESET  0x0008
#define PCI_PM_SIZEOF               8
/* Add a PM capability at off: version 3 (PM 1.2), D0 and D3hot only (no
 * D1/D2, §3.2.3), no PME and no auxiliary current; PMCSR's PowerState
 * (bits 1:0) writable and stored, with No_Soft_Reset set: going from D3hot
 * back to D0 keeps the function's state (§3.2.4) -- a model never loses
 * it. Nothing here acts on the power state (an emulated function keeps
 * decoding in D3hot), and a write of D1 or D2 is stored as written rather
 * than discarded. Returns off or -EINVAL. */
int pci_pm_cap_add(struct pci_device *d, uint8_t off);

#endif
