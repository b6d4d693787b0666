/* libFuzzer target: a hostile guest writing and reading the MSI-X table and
 * PBA of a function (devices/pci/msix.c: virtio-pci's and VFIO's), toggling
 * MSI-X enable and the function mask, with the device's interrupts firing
 * at random.
 *
 * Input: bytes 0-1 the table size (1-2048, wrapping); then 12-byte
 * operations:
 *   byte 0       0-1 table write/read, 2-3 PBA write/read, 4 control
 *                (byte 1 bit 0 enable, bit 1 function mask), 5 reset,
 *                6 a vector fires (bytes 2-3 pick it), others: table write
 *   byte 1       length 0-15 (only 1-8 are valid)
 *   bytes 2-5    offset (little-endian; often out of range)
 *   bytes 6-11   data (padded with zeros)
 *
 * The recording callbacks check that routes and unroutes pair up, routes
 * happen only while the device side is on, and at every step a vector is
 * routed exactly when it is unmasked and MSI-X is on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci/msix.h"
#include "vmm/log.h"

static bool routed[PCI_MSIX_MAX_VECTORS];
static bool fired[PCI_MSIX_MAX_VECTORS];
static bool dev_on;
static unsigned dev_nr;

static int f_enable(void *o, enum pci_irq_kind k, unsigned nr)
{
    if (dev_on || k != PCI_IRQ_KIND_MSIX || !nr || nr > PCI_MSIX_MAX_VECTORS)
        abort();
    dev_on = true;
    dev_nr = nr;
    return 0;
}
static void f_disable(void *o, enum pci_irq_kind k)
{
    if (!dev_on)
        abort();
    for (unsigned v = 0; v < dev_nr; v++)
        if (routed[v])
            abort();            /* disabled with a vector still routed */
    dev_on = false;
}
static int f_route(void *o, enum pci_irq_kind k, unsigned v, uint64_t a, uint32_t d)
{
    if (!dev_on || v >= dev_nr)
        abort();
    if (a & 3)
        abort();                /* address bits 1:0 are read-only zero */
    routed[v] = true;
    fired[v] = false;           /* KVM delivers what was pending */
    return 0;
}
static void f_unroute(void *o, enum pci_irq_kind k, unsigned v)
{
    if (v >= PCI_MSIX_MAX_VECTORS || !routed[v])
        abort();
    routed[v] = false;
}
static bool f_pending(void *o, enum pci_irq_kind k, unsigned v)
{
    if (v >= PCI_MSIX_MAX_VECTORS || routed[v])
        abort();                /* the PBA asks only about unrouted vectors */
    return fired[v];
}
static const struct pci_irq_ops ops = { f_enable, f_disable, f_route, f_unroute, f_pending };

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        log_set_level(LOG_ERR);
        quiet = true;
    }
    if (size < 2)
        return 0;
    unsigned nr = ((unsigned)(data[0] | data[1] << 8) % PCI_MSIX_MAX_VECTORS) + 1;
    memset(routed, 0, sizeof(routed));
    memset(fired, 0, sizeof(fired));
    dev_on = false;
    struct pci_msix m;
    if (pci_msix_init(&m, nr, &ops, NULL) < 0)
        abort();
    for (size_t p = 2; p + 12 <= size; p += 12) {
        const uint8_t *op = data + p;
        unsigned len = op[1] & 15;
        uint64_t off = (uint64_t)op[2] | (uint64_t)op[3] << 8 | (uint64_t)op[4] << 16 |
                       (uint64_t)op[5] << 24;
        if (op[5] & 0x80)
            off |= 0xFFFFFFFF00000000ull;   /* near the top: wrap-around checks */
        uint8_t buf[16] = {0};
        memcpy(buf, op + 6, 6);
        bool table_ok = len >= 1 && len <= 8 && off < pci_msix_table_size(&m) &&
                        len <= pci_msix_table_size(&m) - off;
        bool pba_ok = len >= 1 && len <= 8 && off < pci_msix_pba_size(&m) &&
                      len <= pci_msix_pba_size(&m) - off;
        int r;
        switch (op[0] & 7) {
        case 1:
            r = pci_msix_table_read(&m, off, buf, len);
            if ((r == 0) != table_ok)
                abort();
            break;
        case 2:
            r = pci_msix_pba_write(&m, off, buf, len);
            if ((r == 0) != pba_ok)
                abort();
            break;
        case 3:
            r = pci_msix_pba_read(&m, off, buf, len);
            if ((r == 0) != pba_ok)
                abort();
            if (r == 0)
                for (unsigned i = 0; i < len; i++)
                    for (unsigned b = 0; b < 8; b++) {
                        unsigned v = (unsigned)((off + i) * 8 + b);
                        bool bit = (buf[i] >> b) & 1;
                        bool want = v < nr && dev_on && !routed[v] && fired[v];
                        if (bit != want)
                            abort();    /* PBA wrong */
                    }
            break;
        case 4:
            pci_msix_control(&m, op[1] & 1, op[1] & 2);
            break;
        case 5:
            pci_msix_reset(&m);
            break;
        case 6: {
            unsigned v = (unsigned)(op[2] | op[3] << 8) % nr;
            if (dev_on && !routed[v])
                fired[v] = true;        /* held on the eventfd */
            break;
        }
        default:
            r = pci_msix_table_write(&m, off, buf, len);
            if ((r == 0) != table_ok)
                abort();
            break;
        }
        for (unsigned v = 0; v < nr; v++)
            if (routed[v] != (dev_on && !pci_msix_vector_masked(&m, v)))
                abort();        /* routing does not follow the masks */
    }
    pci_msix_fini(&m);
    if (dev_on)
        abort();
    for (unsigned v = 0; v < nr; v++)
        if (routed[v])
            abort();
    return 0;
}
