/* libFuzzer target: the NVMe data pointer walkers (devices/storage/nvme_cmd.c):
 * PRPs (NVMe 1.4 §4.3) and SGLs (§4.4) over hostile guest RAM.
 *
 * Input: bytes 0-7 PRP1, 8-15 PRP2 (for an SGL: the 16-byte SGL1), 16-19
 * the length, byte 20: bit 7 raw addresses, bits 6:5 PSDT, bits 4:0 the
 * iovec room; the rest is copied into 1 MiB of guest RAM from address 0 (64 KiB at most; PRP
 * lists live there). The addresses are folded into [0, 1 MiB + 64 KiB)
 * unless byte 20's top bit says raw, so both RAM and its edge are hit.
 *
 * Checked on success: the iovecs cover exactly the length, each lies in
 * RAM, none is empty, no more than the room given; on failure no iovecs. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "devices/storage/nvme_cmd.h"
#include "vmm/gm.h"
#include "vmm/log.h"

#define RAM    (1u << 20)
#define WINDOW 0x10000u

static struct gm g;

static void check(bool ok)
{
    if (!ok)
        abort();
}

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    static struct iovec iov[600];

    if (!ready) {
        struct gm_config cfg = { .size = RAM, .lock = false };
        log_set_level(LOG_ERR);
        if (gm_init(&g, &cfg))
            abort();
        ready = true;
    }
    if (size < 21)
        return 0;
    uint64_t prp1 = le(data, 8), prp2 = le(data + 8, 8);
    uint64_t len = le(data + 16, 4);
    bool raw = data[20] & 0x80;
    unsigned psdt = (data[20] >> 5) & 3;
    unsigned room = 1 + (data[20] & 0x1F) * 16;   /* 1..497 */
    if (!raw && psdt == NVME_PSDT_PRP) {
        prp1 %= RAM + 0x10000;
        prp2 %= RAM + 0x10000;
        len %= 2u << 20;   /* up to 2 MiB: 512 pages, lists chained */
    }
    data += 21;
    size -= 21;
    uint8_t *ram = gm_ptr(&g, 0, RAM);
    memset(ram, 0, RAM);
    memcpy(ram, data, size < WINDOW ? size : WINDOW);

    unsigned n = 12345;
    struct nvme_sqe c = { .flags = (uint8_t)(psdt << 6), .prp1 = prp1, .prp2 = prp2 };
    if (!raw)
        len %= 2u << 20;
    uint16_t st = nvme_data_map(&g, &c, len, iov, room, &n);
    if (st) {
        check(n == 0);
        check(st & NVME_DNR);
        return 0;
    }
    check(n >= 1 && n <= room);
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *b = iov[i].iov_base;
        check(iov[i].iov_len > 0);
        check(b >= ram && b + iov[i].iov_len <= ram + RAM);
        total += iov[i].iov_len;
    }
    check(total == len);
    /* what the device would do with them: touch every byte */
    for (unsigned i = 0; i < n; i++)
        memset(iov[i].iov_base, 0xA5, iov[i].iov_len);
    return 0;
}
