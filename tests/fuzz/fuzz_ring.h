/* The guest RAM and split ring that the virtqueue, virtio-blk and
 * virtio-net fuzz targets share: 1 MiB of RAM, the input copied in from
 * address 0 with the available ring first and the descriptor table right
 * after it (16-byte aligned, virtio 1.2 §2.7), so short inputs reach both;
 * the used ring is the device's, at 0x20000, past the 64 KiB window the
 * input may fill. Addresses past RAM must be refused by the code under test.
 * Header-only: each target is its own program. */
#ifndef MINIVMM_FUZZ_RING_H
#define MINIVMM_FUZZ_RING_H
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/virtqueue.h"
#include "vmm/gm.h"
#include "vmm/log.h"

#define FUZZ_RAM    (1u << 20)
#define FUZZ_WINDOW 0x10000u
#define FUZZ_AVAIL  0x0u
#define FUZZ_USED   0x20000u
#define FUZZ_MAX_QSIZE 256   /* the largest queue the devices offer */
#define FUZZ_MAX_CHAIN 256   /* segments a chain may have here */

static struct gm fuzz_gm;
static struct virtq_seg fuzz_segs[FUZZ_MAX_CHAIN];

static inline void check(bool ok)
{
    if (!ok)
        abort();
}

/* RAM made once; then each run starts from all of it zeroed (chains may
 * point anywhere, and what the device wrote there in an earlier run must
 * not make this one differ) with the input's first 64 KiB at address 0. */
static inline void fuzz_ring_load(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        struct gm_config cfg = { .size = FUZZ_RAM, .lock = false };
        log_set_level(LOG_ERR);
        if (gm_init(&fuzz_gm, &cfg))
            abort();
        ready = true;
    }
    uint8_t *ram = gm_ptr(&fuzz_gm, 0, FUZZ_RAM);
    memset(ram, 0, FUZZ_RAM);
    memcpy(ram, data, size < FUZZ_WINDOW ? size : FUZZ_WINDOW);
}

/* The queue of qsize (a power of two up to 256) on that layout; the rings
 * are in RAM and aligned, so it must start. */
static inline void fuzz_ring_start(struct virtq *vq, uint16_t qsize, bool indirect, bool event_idx)
{
    uint32_t desc = (6u + 2u * qsize + 15u) & ~15u;   /* right after avail (§2.7.6) */
    if (virtq_start(vq, &fuzz_gm, qsize, FUZZ_MAX_QSIZE, desc, FUZZ_AVAIL, FUZZ_USED, indirect,
                    event_idx))
        abort();
}

static inline struct virtq_chain fuzz_ring_chain(void)
{
    return (struct virtq_chain){ .seg = fuzz_segs, .cap = FUZZ_MAX_CHAIN };
}
#endif
