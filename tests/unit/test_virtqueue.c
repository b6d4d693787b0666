/* devices/virtio/virtqueue.c: split rings built in a real (small) guest memory,
 * good chains (direct, indirect, mixed), every malformed chain the walker
 * must refuse, the used ring, interrupt and notification suppression, and
 * the chain copy/iovec helpers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <linux/virtio_ring.h>

#include "devices/virtio/virtqueue.h"
#include "vmm/gm.h"

#define MiB (1ULL << 20)
#define QSIZE 16
#define DESC_GPA  0x1000ULL
#define AVAIL_GPA 0x2000ULL
#define USED_GPA  0x3000ULL
#define IND_GPA   0x4000ULL   /* indirect tables */
#define BUF_GPA   0x10000ULL

static struct gm gm;
static struct virtq vq;
static struct virtq_seg segs[8192];
static struct virtq_chain chain;
static uint16_t avail_next;

static void setup_mem(uint64_t size)
{
    struct gm_config c = { .size = size, .lock = false };
    cr_assert_eq(gm_init(&gm, &c), 0);
    memset(&vq, 0, sizeof(vq));
    vq.name = "test queue";
    chain = (struct virtq_chain){ .seg = segs, .cap = sizeof(segs) / sizeof(segs[0]) };
    avail_next = 0;
}

static void vq_setup(void)
{
    setup_mem(2 * MiB);
    cr_assert_eq(virtq_start(&vq, &gm, QSIZE, 256, DESC_GPA, AVAIL_GPA, USED_GPA, true, false), 0);
}

static void vq_teardown(void)
{
    gm_fini(&gm);
}

TestSuite(virtqueue, .init = vq_setup, .fini = vq_teardown);

static void set_desc_at(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                        uint16_t next)
{
    struct vring_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };
    cr_assert_eq(gm_write(&gm, table + 16ULL * i, &d, sizeof(d)), 0);
}

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    set_desc_at(DESC_GPA, i, addr, len, flags, next);
}

static uint16_t rd16(uint64_t gpa)
{
    uint16_t v;
    cr_assert_eq(gm_read(&gm, gpa, &v, 2), 0);
    return v;
}

static void wr16(uint64_t gpa, uint16_t v)
{
    cr_assert_eq(gm_write(&gm, gpa, &v, 2), 0);
}

static void offer_at(uint64_t avail, uint16_t size, uint16_t head)
{
    wr16(avail + 4 + 2ULL * (avail_next % size), head);
    avail_next++;
    wr16(avail + 2, avail_next);
}

static void offer(uint16_t head)
{
    offer_at(AVAIL_GPA, QSIZE, head);
}

Test(virtqueue, empty_queue_pops_nothing)
{
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 0);
    cr_assert_eq(virtq_avail_count(&vq), 0);
    cr_assert_not(vq.broken);
}

Test(virtqueue, direct_chain_readable_then_writable)
{
    set_desc(3, BUF_GPA, 16, VRING_DESC_F_NEXT, 7);
    set_desc(7, BUF_GPA + 0x1000, 512, VRING_DESC_F_NEXT, 1);
    set_desc(1, BUF_GPA + 0x2000, 1, VRING_DESC_F_WRITE, 0);
    offer(3);
    cr_assert_eq(virtq_avail_count(&vq), 1);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    cr_assert_eq(chain.head, 3);
    cr_assert_eq(chain.nr, 3);
    cr_assert_eq(chain.nr_readable, 2);
    cr_assert_eq(chain.readable_len, 528);
    cr_assert_eq(chain.writable_len, 1);
    cr_assert_eq(chain.seg[1].gpa, BUF_GPA + 0x1000);
    cr_assert_eq(chain.seg[1].len, 512);
    cr_assert_not(chain.seg[1].write);
    cr_assert(chain.seg[2].write);
    cr_assert_eq(chain.seg[2].hva, gm_ptr(&gm, BUF_GPA + 0x2000, 1));
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 0, "only one chain was offered");
}

Test(virtqueue, used_ring_push_and_publish)
{
    set_desc(0, BUF_GPA, 8, VRING_DESC_F_WRITE, 0);
    set_desc(5, BUF_GPA + 8, 8, VRING_DESC_F_WRITE, 0);
    offer(0);
    offer(5);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    virtq_push_used(&vq, 5, 7);
    cr_assert_eq(rd16(USED_GPA + 2), 0, "not visible before publishing");
    virtq_push_used(&vq, 0, 3);
    cr_assert(virtq_publish_used(&vq), "no NO_INTERRUPT flag: interrupt");
    cr_assert_eq(rd16(USED_GPA + 2), 2);
    uint32_t e[4];
    cr_assert_eq(gm_read(&gm, USED_GPA + 4, e, sizeof(e)), 0);
    cr_assert_eq(e[0], 5);
    cr_assert_eq(e[1], 7);
    cr_assert_eq(e[2], 0);
    cr_assert_eq(e[3], 3);
    cr_assert_not(virtq_publish_used(&vq), "nothing new: no interrupt");
}

Test(virtqueue, no_interrupt_flag_suppresses)
{
    set_desc(0, BUF_GPA, 8, 0, 0);
    offer(0);
    wr16(AVAIL_GPA, VRING_AVAIL_F_NO_INTERRUPT);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    virtq_push_used(&vq, 0, 0);
    cr_assert_not(virtq_publish_used(&vq));
    cr_assert_eq(rd16(USED_GPA + 2), 1, "published even when not interrupting");
}

Test(virtqueue, event_idx_interrupts_when_used_event_passed)
{
    cr_assert_eq(virtq_start(&vq, &gm, QSIZE, 256, DESC_GPA, AVAIL_GPA, USED_GPA, true, true), 0);
    for (unsigned i = 0; i < 4; i++) {
        set_desc(i, BUF_GPA + i * 16, 16, 0, 0);
        offer((uint16_t)i);
    }
    uint64_t used_event = AVAIL_GPA + 4 + 2 * QSIZE;
    wr16(used_event, 2);   /* interrupt once used idx passes 2, i.e. reaches 3 */
    wr16(AVAIL_GPA, VRING_AVAIL_F_NO_INTERRUPT);   /* ignored with EVENT_IDX */
    bool irq[4];
    for (unsigned i = 0; i < 4; i++) {
        cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
        virtq_push_used(&vq, chain.head, 0);
        irq[i] = virtq_publish_used(&vq);
    }
    cr_assert(irq[0], "first publication always interrupts");
    cr_assert_not(irq[1], "used idx 2 does not pass used_event 2");
    cr_assert(irq[2], "used idx 3 passes used_event 2");
    cr_assert_not(irq[3]);
}

Test(virtqueue, notify_enable_disable_without_event_idx)
{
    virtq_notify_disable(&vq);
    cr_assert_eq(rd16(USED_GPA), VRING_USED_F_NO_NOTIFY);
    cr_assert_not(virtq_notify_enable(&vq), "nothing pending");
    cr_assert_eq(rd16(USED_GPA), 0);
    set_desc(0, BUF_GPA, 8, 0, 0);
    offer(0);
    cr_assert(virtq_notify_enable(&vq), "a chain arrived: look again");
}

Test(virtqueue, notify_enable_writes_avail_event)
{
    cr_assert_eq(virtq_start(&vq, &gm, QSIZE, 256, DESC_GPA, AVAIL_GPA, USED_GPA, true, true), 0);
    set_desc(0, BUF_GPA, 8, 0, 0);
    offer(0);
    offer(0);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    cr_assert(virtq_notify_enable(&vq), "one more is pending");
    cr_assert_eq(rd16(USED_GPA + 4 + 8 * QSIZE), 2, "avail_event = current avail idx");
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    cr_assert_not(virtq_notify_enable(&vq));
}

Test(virtqueue, indirect_table)
{
    set_desc_at(IND_GPA, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
    set_desc_at(IND_GPA, 1, BUF_GPA + 0x100, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
    set_desc_at(IND_GPA, 2, BUF_GPA + 0x2000, 1, VRING_DESC_F_WRITE, 0);
    /* The WRITE flag of the pointer itself is ignored (§2.7.5.3.2). */
    set_desc(9, IND_GPA, 3 * 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
    offer(9);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    cr_assert_eq(chain.head, 9);
    cr_assert_eq(chain.nr, 3);
    cr_assert_eq(chain.nr_readable, 1);
    cr_assert_eq(chain.writable_len, 4097);
}

Test(virtqueue, direct_then_indirect)
{
    set_desc_at(IND_GPA, 0, BUF_GPA + 0x100, 512, VRING_DESC_F_WRITE, 0);
    set_desc(2, BUF_GPA, 16, VRING_DESC_F_NEXT, 4);
    set_desc(4, IND_GPA, 16, VRING_DESC_F_INDIRECT, 0);
    offer(2);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    cr_assert_eq(chain.nr, 2);
    cr_assert_eq(chain.readable_len, 16);
    cr_assert_eq(chain.writable_len, 512);
}

/* Offer head, expect the walker to refuse it and the queue to stay broken. */
static void expect_broken(uint16_t head)
{
    offer(head);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), -EIO);
    cr_assert(vq.broken);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), -EIO, "a broken queue stays broken");
    cr_assert_eq(virtq_avail_count(&vq), 0);
}

Test(virtqueue, head_index_out_of_table)
{
    expect_broken(QSIZE);
}

Test(virtqueue, next_index_out_of_table)
{
    set_desc(0, BUF_GPA, 16, VRING_DESC_F_NEXT, QSIZE + 3);
    expect_broken(0);
}

Test(virtqueue, loop_detected)
{
    set_desc(0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
    set_desc(1, BUF_GPA, 16, VRING_DESC_F_NEXT, 2);
    set_desc(2, BUF_GPA, 16, VRING_DESC_F_NEXT, 0);
    expect_broken(0);
}

Test(virtqueue, self_loop_detected)
{
    set_desc(6, BUF_GPA, 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 6);
    expect_broken(6);
}

Test(virtqueue, chain_longer_than_queue_size)
{
    /* A straight indirect chain of QSIZE + 1 entries: no loop, too long. */
    for (unsigned i = 0; i <= QSIZE; i++)
        set_desc_at(IND_GPA, i, BUF_GPA, 16, i < QSIZE ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    set_desc(0, IND_GPA, (QSIZE + 1) * 16, VRING_DESC_F_INDIRECT, 0);
    expect_broken(0);
}

Test(virtqueue, chain_of_exactly_queue_size_accepted)
{
    for (unsigned i = 0; i < QSIZE; i++)
        set_desc(i, BUF_GPA, 16, i + 1 < QSIZE ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    offer(0);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    cr_assert_eq(chain.nr, QSIZE);
}

Test(virtqueue, chain_over_caller_capacity)
{
    struct virtq_seg few[2];
    struct virtq_chain small = { .seg = few, .cap = 2 };
    for (unsigned i = 0; i < 3; i++)
        set_desc(i, BUF_GPA, 16, i < 2 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    offer(0);
    cr_assert_eq(virtq_pop_chain(&vq, &small), -EIO);
    cr_assert(vq.broken);
}

Test(virtqueue, indirect_table_outside_ram)
{
    set_desc(0, 2 * MiB - 16, 32, VRING_DESC_F_INDIRECT, 0);
    expect_broken(0);
}

Test(virtqueue, indirect_table_not_multiple_of_16)
{
    set_desc_at(IND_GPA, 0, BUF_GPA, 16, 0, 0);
    set_desc(0, IND_GPA, 24, VRING_DESC_F_INDIRECT, 0);
    expect_broken(0);
}

Test(virtqueue, indirect_table_empty)
{
    set_desc(0, IND_GPA, 0, VRING_DESC_F_INDIRECT, 0);
    expect_broken(0);
}

Test(virtqueue, nested_indirect)
{
    set_desc_at(IND_GPA + 0x100, 0, BUF_GPA, 16, 0, 0);
    set_desc_at(IND_GPA, 0, IND_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
    set_desc(0, IND_GPA, 16, VRING_DESC_F_INDIRECT, 0);
    expect_broken(0);
}

Test(virtqueue, indirect_with_next)
{
    set_desc_at(IND_GPA, 0, BUF_GPA, 16, 0, 0);
    set_desc(1, BUF_GPA, 16, 0, 0);
    set_desc(0, IND_GPA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
    expect_broken(0);
}

Test(virtqueue, indirect_without_feature)
{
    cr_assert_eq(virtq_start(&vq, &gm, QSIZE, 256, DESC_GPA, AVAIL_GPA, USED_GPA, false, false), 0);
    set_desc_at(IND_GPA, 0, BUF_GPA, 16, 0, 0);
    set_desc(0, IND_GPA, 16, VRING_DESC_F_INDIRECT, 0);
    expect_broken(0);
}

Test(virtqueue, indirect_next_out_of_table)
{
    set_desc_at(IND_GPA, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 2);   /* table has 2 entries */
    set_desc_at(IND_GPA, 1, BUF_GPA, 16, 0, 0);
    set_desc(0, IND_GPA, 32, VRING_DESC_F_INDIRECT, 0);
    expect_broken(0);
}

Test(virtqueue, indirect_loop)
{
    set_desc_at(IND_GPA, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
    set_desc_at(IND_GPA, 1, BUF_GPA, 16, VRING_DESC_F_NEXT, 0);
    set_desc(0, IND_GPA, 32, VRING_DESC_F_INDIRECT, 0);
    expect_broken(0);
}

Test(virtqueue, writable_then_readable)
{
    set_desc(0, BUF_GPA, 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
    set_desc(1, BUF_GPA + 16, 16, 0, 0);
    expect_broken(0);
}

Test(virtqueue, writable_then_readable_in_indirect)
{
    set_desc_at(IND_GPA, 0, BUF_GPA, 16, VRING_DESC_F_WRITE, 0);
    set_desc(0, BUF_GPA, 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
    set_desc(1, IND_GPA, 16, VRING_DESC_F_INDIRECT, 0);
    offer(0);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1, "writable after writable is fine");
    set_desc_at(IND_GPA, 0, BUF_GPA, 16, 0, 0);
    expect_broken(0);
}

Test(virtqueue, buffer_outside_ram)
{
    set_desc(0, 2 * MiB - 8, 16, 0, 0);
    expect_broken(0);
}

Test(virtqueue, buffer_address_wraps)
{
    set_desc(0, ~0ULL - 4, 16, 0, 0);
    expect_broken(0);
}

Test(virtqueue, zero_length_buffer)
{
    set_desc(0, BUF_GPA, 0, 0, 0);
    expect_broken(0);
}

Test(virtqueue, avail_index_jumps_past_queue_size)
{
    set_desc(0, BUF_GPA, 16, 0, 0);
    wr16(AVAIL_GPA + 2, QSIZE + 1);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), -EIO);
    cr_assert(vq.broken);
}

Test(virtqueue, avail_index_wraps_at_16_bits)
{
    /* Start both sides near 65535: the index arithmetic is modulo 2^16. */
    vq.last_avail = 0xFFFF;
    avail_next = 0xFFFF;
    set_desc(0, BUF_GPA, 16, 0, 0);
    offer(0);
    offer(0);
    cr_assert_eq(rd16(AVAIL_GPA + 2), 1);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 0);
}

Test(virtqueue, unpop_returns_the_chain_again)
{
    set_desc(4, BUF_GPA, 16, 0, 0);
    offer(4);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    virtq_unpop(&vq);
    cr_assert_eq(virtq_avail_count(&vq), 1);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    cr_assert_eq(chain.head, 4);
}

Test(virtqueue, start_refuses_bad_sizes)
{
    cr_assert_eq(virtq_start(&vq, &gm, 0, 256, DESC_GPA, AVAIL_GPA, USED_GPA, true, false), -EINVAL);
    cr_assert_eq(virtq_start(&vq, &gm, 24, 256, DESC_GPA, AVAIL_GPA, USED_GPA, true, false), -EINVAL);
    cr_assert_eq(virtq_start(&vq, &gm, 512, 256, DESC_GPA, AVAIL_GPA, USED_GPA, true, false), -EINVAL);
    cr_assert_not(vq.started);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 0, "a stopped queue has nothing");
}

Test(virtqueue, start_refuses_bad_rings)
{
    cr_assert_eq(virtq_start(&vq, &gm, QSIZE, 256, DESC_GPA + 8, AVAIL_GPA, USED_GPA, true, false),
                 -EFAULT, "descriptor table not 16-aligned");
    cr_assert_eq(virtq_start(&vq, &gm, QSIZE, 256, DESC_GPA, AVAIL_GPA + 1, USED_GPA, true, false),
                 -EFAULT, "available ring not 2-aligned");
    cr_assert_eq(virtq_start(&vq, &gm, QSIZE, 256, DESC_GPA, AVAIL_GPA, USED_GPA + 2, true, false),
                 -EFAULT, "used ring not 4-aligned");
    cr_assert_eq(virtq_start(&vq, &gm, QSIZE, 256, 2 * MiB - 128, AVAIL_GPA, USED_GPA, true, false),
                 -EFAULT, "descriptor table runs past RAM");
    cr_assert_eq(virtq_start(&vq, &gm, QSIZE, 256, DESC_GPA, 2 * MiB - 32, USED_GPA, true, false),
                 -EFAULT, "available ring (with used_event) runs past RAM");
    cr_assert_eq(virtq_start(&vq, &gm, QSIZE, 256, DESC_GPA, AVAIL_GPA, 2 * MiB - 128, true, false),
                 -EFAULT, "used ring (with avail_event) runs past RAM");
    cr_assert_not(vq.started);
}

Test(virtqueue, chain_read_write_across_segments)
{
    uint8_t pattern[24];
    for (unsigned i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(0xA0 + i);
    cr_assert_eq(gm_write(&gm, BUF_GPA, pattern, 10), 0);
    cr_assert_eq(gm_write(&gm, BUF_GPA + 0x100, pattern + 10, 14), 0);
    set_desc(0, BUF_GPA, 10, VRING_DESC_F_NEXT, 1);
    set_desc(1, BUF_GPA + 0x100, 14, VRING_DESC_F_NEXT, 2);
    set_desc(2, BUF_GPA + 0x200, 3, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
    set_desc(3, BUF_GPA + 0x300, 5, VRING_DESC_F_WRITE, 0);
    offer(0);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);

    uint8_t got[16];
    cr_assert_eq(virtq_chain_read(&chain, 6, got, 16), 0);
    cr_assert_arr_eq(got, pattern + 6, 16);
    cr_assert_eq(virtq_chain_read(&chain, 20, got, 5), -EFAULT, "only 24 readable bytes");

    const uint8_t out[6] = { 1, 2, 3, 4, 5, 6 };
    cr_assert_eq(virtq_chain_write(&chain, 1, out, 6), 0);
    uint8_t g1[3], g2[5];
    cr_assert_eq(gm_read(&gm, BUF_GPA + 0x200, g1, 3), 0);
    cr_assert_eq(gm_read(&gm, BUF_GPA + 0x300, g2, 5), 0);
    cr_assert_eq(g1[1], 1);
    cr_assert_eq(g1[2], 2);
    cr_assert_eq(g2[0], 3);
    cr_assert_eq(g2[3], 6);
    cr_assert_eq(virtq_chain_write(&chain, 3, out, 6), -EFAULT, "only 8 writable bytes");

    uint8_t *last = virtq_chain_writable_byte(&chain, chain.writable_len - 1);
    cr_assert_eq(last, (uint8_t *)gm_ptr(&gm, BUF_GPA + 0x304, 1));
    cr_assert_null(virtq_chain_writable_byte(&chain, chain.writable_len));

    struct iovec iov[4];
    cr_assert_eq(virtq_chain_iov(&chain, false, 4, 12, iov, 4), 2);
    cr_assert_eq(iov[0].iov_len, 6);
    cr_assert_eq(iov[1].iov_len, 6);
    cr_assert_eq(iov[1].iov_base, gm_ptr(&gm, BUF_GPA + 0x100, 1));
    cr_assert_eq(virtq_chain_iov(&chain, true, 0, 8, iov, 1), -E2BIG);
}

/* A chain whose buffers add up to 4 GiB or more: 2049 descriptors of 2 MiB
 * over the same RAM (lengths, not distinct memory, are what is checked). */
Test(virtqueue_4g, lengths_summing_past_4g)
{
    const uint16_t size = 4096;
    setup_mem(4 * MiB);
    cr_assert_eq(virtq_start(&vq, &gm, size, size, 0x0, 0x10000, 0x20000, true, false), 0);
    for (unsigned i = 0; i < 2049; i++)
        set_desc_at(0x0, i, 2 * MiB, (uint32_t)(2 * MiB), i < 2048 ? VRING_DESC_F_NEXT : 0,
                    (uint16_t)(i + 1));
    offer_at(0x10000, size, 0);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), -EIO);
    cr_assert(vq.broken);

    /* 2047 of them (just under 4 GiB) are fine. */
    cr_assert_eq(virtq_start(&vq, &gm, size, size, 0x0, 0x10000, 0x20000, true, false), 0);
    avail_next = 0;
    set_desc_at(0x0, 2046, 2 * MiB, (uint32_t)(2 * MiB), 0, 0);
    offer_at(0x10000, size, 0);
    cr_assert_eq(virtq_pop_chain(&vq, &chain), 1);
    cr_assert_eq(chain.readable_len, 2047u * 2 * MiB);
    gm_fini(&gm);
}
