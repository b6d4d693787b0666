/* libFuzzer target: a guest driving fw_cfg (devices/chipset/fw_cfg.h) through its
 * ports and DMA. The input is a sequence of 16-byte operations:
 *   byte 0 (mod 5): 0 = store bytes 4-15 into guest RAM at le24(bytes 1-3)
 *                     (how descriptors and data get there),
 *                   1 = write the DMA address register: le32(bytes 4-7) as a
 *                     4-byte write at 0x514 + 4 * (byte 1 & 1), or an 8-byte
 *                     write when byte 1 & 2,
 *                   2 = select le16(bytes 4-5) at 0x510,
 *                   3 = read le8(byte 1) bytes at 0x511,
 *                   4 = fw_cfg_dma() at le64(bytes 8-15) directly.
 * RAM is 1 MiB; items: numbered, files, one writable file. Invariants: the
 * read-only items never change, the writable one keeps its length; the
 * sanitizers catch any access outside the guest RAM mapping. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/chipset/fw_cfg.h"
#include "vmm/bus.h"
#include "vmm/gm.h"
#include "vmm/log.h"

#define RAM (1u << 20)
#define OP  16

static struct gm gm;
static struct bus pio, mmio;
static bool ready;
static const uint8_t ro_data[] = "read-only file contents";

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fw_cfg *fc;

    if (!ready) {
        struct gm_config gc = { .size = RAM, .lock = false };
        log_set_level(LOG_ERR);
        if (gm_init(&gm, &gc) || bus_init(&pio, "pio") || bus_init(&mmio, "mmio"))
            abort();
        ready = true;
    }
    memset(gm.regions[0].hva, 0, RAM);
    struct dev_env env = { .pio = &pio, .mmio = &mmio, .gm = &gm };
    if (fw_cfg_create(&env, &fc))
        abort();
    uint8_t *w = calloc(1, 64);
    if (fw_cfg_add_file(fc, "etc/ro", ro_data, sizeof(ro_data)) ||
        fw_cfg_add_u16(fc, FW_CFG_NB_CPUS, 4) ||
        fw_cfg_add_item(fc, 0, "etc/rw", w, 64, true, NULL, NULL) ||
        fw_cfg_add_file(fc, "bootorder", "/x\n", 4))
        abort();

    for (size_t off = 0; off + OP <= size; off += OP) {
        const uint8_t *op = data + off;
        uint8_t buf[256];
        switch (op[0] % 5) {
        case 0: {
            uint64_t a = le(op + 1, 3) % (RAM - 12);
            memcpy(gm.regions[0].hva + a, op + 4, 12);
            break;
        }
        case 1:
            if (op[1] & 2)
                bus_write(&pio, FW_CFG_PORT_DMA, op + 4, 8);
            else
                bus_write(&pio, FW_CFG_PORT_DMA + 4 * (op[1] & 1u), op + 4, 4);
            break;
        case 2:
            bus_write(&pio, FW_CFG_PORT_SEL, op + 4, 2);
            break;
        case 3:
            for (unsigned i = 0; i < op[1]; i++)
                bus_read(&pio, FW_CFG_PORT_DATA, buf, 1);
            break;
        case 4:
            fw_cfg_dma(fc, le(op + 8, 8));
            break;
        }
    }
    /* the read-only file is unchanged */
    int key = fw_cfg_file_key(fc, "etc/ro");
    uint8_t sel[2] = { (uint8_t)key, (uint8_t)(key >> 8) }, b;
    bus_write(&pio, FW_CFG_PORT_SEL, sel, 2);
    for (size_t i = 0; i < sizeof(ro_data); i++) {
        bus_read(&pio, FW_CFG_PORT_DATA, &b, 1);
        if (b != ro_data[i])
            abort();
    }
    fw_cfg_destroy(fc);
    if (pio.nr != 0)
        abort();
    return 0;
}
