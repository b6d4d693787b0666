/* vmm/vcpu.c exit decoding: port I/O (including string I/O with count) and
 * MMIO exits reach the right bus with the right data, and exits whose
 * size, count or data offset do not fit the kvm_run mapping are refused.
 * vcpu_handle_exit, driven through a struct vcpu_env with these buses and a
 * recording stop function (no KVM, no struct vm): which exits dispatch,
 * which stop the VM and with what reason, and the stats row of each. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include "vmm/bus.h"
#include "vmm/stats.h"
#include "vmm/vcpu.h"

#define RUN_SIZE (3 * 4096)   /* kvm_run page, pio page, coalesced MMIO page */
#define PIO_OFF  4096

struct port_log {
    unsigned writes, reads;
    uint8_t written[4096];
    size_t nwritten;
    uint8_t next_read;
};

static int log_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct port_log *l = opaque;
    uint8_t *p = data;
    l->reads++;
    for (unsigned i = 0; i < len; i++)
        p[i] = l->next_read++;
    return 0;
}

static int log_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct port_log *l = opaque;
    l->writes++;
    if (l->nwritten + len <= sizeof(l->written)) {
        memcpy(l->written + l->nwritten, data, len);
        l->nwritten += len;
    }
    return 0;
}

static const struct bus_ops log_ops = { .read = log_read, .write = log_write };

static struct bus pio, mmio;
static struct port_log dev;
static struct kvm_run *run;

static void setup(void)
{
    cr_assert_eq(bus_init(&pio, "pio"), 0);
    cr_assert_eq(bus_init(&mmio, "mmio"), 0);
    memset(&dev, 0, sizeof(dev));
    cr_assert_eq(bus_register(&pio, 0x3f8, 8, "dev", &log_ops, &dev), 0);
    cr_assert_eq(bus_register(&mmio, 0xfed00000, 0x1000, "dev", &log_ops, &dev), 0);
    run = aligned_alloc(4096, RUN_SIZE);
    cr_assert_not_null(run);
    memset(run, 0, RUN_SIZE);
}

static void teardown(void)
{
    free(run);
    bus_fini(&pio);
    bus_fini(&mmio);
}

TestSuite(vcpu_exit, .init = setup, .fini = teardown);

static void set_io(uint8_t dir, uint8_t size, uint16_t port, uint32_t count, uint64_t off)
{
    run->exit_reason = KVM_EXIT_IO;
    run->io.direction = dir;
    run->io.size = size;
    run->io.port = port;
    run->io.count = count;
    run->io.data_offset = off;
}

Test(vcpu_exit, out_byte)
{
    set_io(KVM_EXIT_IO_OUT, 1, 0x3f8, 1, PIO_OFF);
    ((uint8_t *)run)[PIO_OFF] = 'A';
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), 0);
    cr_assert_eq(dev.writes, 1);
    cr_assert_eq(dev.written[0], 'A');
}

Test(vcpu_exit, string_out_and_in)
{
    uint8_t *data = (uint8_t *)run + PIO_OFF;
    for (int i = 0; i < 12; i++)
        data[i] = (uint8_t)('a' + i);
    set_io(KVM_EXIT_IO_OUT, 2, 0x3f8, 6, PIO_OFF);   /* rep outsw, 6 words */
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), 0);
    cr_assert_eq(dev.writes, 6, "one device write per element");
    cr_assert_eq(dev.nwritten, 12);
    cr_assert_arr_eq(dev.written, data, 12);

    memset(data, 0, 16);
    set_io(KVM_EXIT_IO_IN, 4, 0x3f8, 3, PIO_OFF);   /* rep insd, 3 dwords */
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), 0);
    cr_assert_eq(dev.reads, 3);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(data[i], i, "element bytes land in order");

    /* a whole page of bytes is fine */
    set_io(KVM_EXIT_IO_OUT, 1, 0x3f8, RUN_SIZE - PIO_OFF, PIO_OFF);
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), 0);
}

Test(vcpu_exit, unhandled_in_reads_ones)
{
    uint8_t *data = (uint8_t *)run + PIO_OFF;
    set_io(KVM_EXIT_IO_IN, 2, 0x80, 1, PIO_OFF);
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), 0);
    cr_assert_eq(data[0], 0xff);
    cr_assert_eq(data[1], 0xff);
}

Test(vcpu_exit, io_refusals)
{
    const uint8_t sizes[] = { 0, 3, 5, 8, 16, 255 };
    for (size_t i = 0; i < sizeof(sizes); i++) {
        set_io(KVM_EXIT_IO_OUT, sizes[i], 0x3f8, 1, PIO_OFF);
        cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), -EINVAL, "size %u", sizes[i]);
    }
    set_io(KVM_EXIT_IO_OUT, 1, 0x3f8, 0, PIO_OFF);
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), -EINVAL, "count 0");
    set_io(KVM_EXIT_IO_OUT, 4, 0x3f8, (RUN_SIZE - PIO_OFF) / 4 + 1, PIO_OFF);
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), -EINVAL, "one element past the mapping");
    set_io(KVM_EXIT_IO_OUT, 4, 0x3f8, 0x40000001u, PIO_OFF);
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), -EINVAL, "count*size wraps 32 bits");
    set_io(KVM_EXIT_IO_OUT, 4, 0x3f8, UINT32_MAX, PIO_OFF);
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), -EINVAL);
    set_io(KVM_EXIT_IO_OUT, 1, 0x3f8, 1, RUN_SIZE);
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), -EINVAL, "offset at the end");
    set_io(KVM_EXIT_IO_OUT, 1, 0x3f8, 1, UINT64_MAX);
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), -EINVAL, "offset far out");
    set_io(KVM_EXIT_IO_OUT, 1, 0x3f8, 1, 8);
    cr_assert_eq(vcpu_dispatch_io(&pio, run, RUN_SIZE), -EINVAL, "inside struct kvm_run");
    cr_assert_eq(dev.writes, 0, "no refused access reached the device");
}

Test(vcpu_exit, mmio)
{
    run->exit_reason = KVM_EXIT_MMIO;
    run->mmio.phys_addr = 0xfed00010;
    run->mmio.len = 4;
    run->mmio.is_write = 1;
    memcpy(run->mmio.data, "\x11\x22\x33\x44", 4);
    cr_assert_eq(vcpu_dispatch_mmio(&mmio, run), 0);
    cr_assert_eq(dev.writes, 1);
    cr_assert_arr_eq(dev.written, "\x11\x22\x33\x44", 4);

    run->mmio.is_write = 0;
    run->mmio.len = 8;
    dev.next_read = 0x50;
    cr_assert_eq(vcpu_dispatch_mmio(&mmio, run), 0);
    cr_assert_eq(run->mmio.data[0], 0x50);
    cr_assert_eq(run->mmio.data[7], 0x57);

    run->mmio.phys_addr = 0xfee00000;   /* nothing there */
    run->mmio.len = 4;
    cr_assert_eq(vcpu_dispatch_mmio(&mmio, run), 0);
    cr_assert_eq(run->mmio.data[0], 0xff);
    cr_assert_eq(run->mmio.data[3], 0xff);

    run->mmio.len = 0;
    cr_assert_eq(vcpu_dispatch_mmio(&mmio, run), -EINVAL);
    run->mmio.len = 9;
    cr_assert_eq(vcpu_dispatch_mmio(&mmio, run), -EINVAL);
    run->mmio.len = UINT32_MAX;
    cr_assert_eq(vcpu_dispatch_mmio(&mmio, run), -EINVAL);
    cr_assert_eq(dev.reads, 1);
}

/* ---- vcpu_handle_exit through struct vcpu_env ---- */

struct stop_log {
    unsigned calls;
    enum vm_stop_reason reason;
    int code;
};

static void record_stop(void *opaque, enum vm_stop_reason reason, int code)
{
    struct stop_log *l = opaque;
    l->calls++;
    l->reason = reason;
    l->code = code;
}

static atomic_int stop_reason;
static struct stop_log stops;
static struct vcpu_env env;
static struct vcpu vcpu;

static void env_setup(void)
{
    atomic_init(&stop_reason, VM_RUNNING);
    memset(&stops, 0, sizeof(stops));
    env = (struct vcpu_env){
        .pio = &pio, .mmio = &mmio, .vm_fd = -1, .run_size = RUN_SIZE,
        .cpuid = { .topo = { 1, 1, 1 } },
        .stop_reason = &stop_reason, .request_stop = record_stop, .opaque = &stops,
    };
    memset(&vcpu, 0, sizeof(vcpu));
    vcpu.env = &env;
    vcpu.fd = -1;   /* no KVM: the fatal exits' register dump is skipped */
    vcpu.run = run;
    vcpu.run_size = RUN_SIZE;
}

Test(vcpu_exit, handle_io_and_mmio)
{
    env_setup();
    set_io(KVM_EXIT_IO_OUT, 1, 0x3f8, 2, PIO_OFF);
    memcpy((uint8_t *)run + PIO_OFF, "hi", 2);
    cr_assert_eq(vcpu_handle_exit(&vcpu), STATS_ROW_IO_OUT);
    cr_assert_eq(dev.writes, 2, "env->pio got the string OUT");
    cr_assert_arr_eq(dev.written, "hi", 2);
    set_io(KVM_EXIT_IO_IN, 1, 0x3f8, 1, PIO_OFF);
    cr_assert_eq(vcpu_handle_exit(&vcpu), STATS_ROW_IO_IN);
    cr_assert_eq(dev.reads, 1);

    run->exit_reason = KVM_EXIT_MMIO;
    run->mmio.phys_addr = 0xfed00000;
    run->mmio.len = 2;
    run->mmio.is_write = 1;
    cr_assert_eq(vcpu_handle_exit(&vcpu), STATS_ROW_MMIO_WRITE);
    cr_assert_eq(dev.writes, 3, "env->mmio got the write");
    run->mmio.is_write = 0;
    cr_assert_eq(vcpu_handle_exit(&vcpu), STATS_ROW_MMIO_READ);
    cr_assert_eq(dev.reads, 2);

    /* a refused access is still an I/O exit, and stops nothing */
    set_io(KVM_EXIT_IO_OUT, 3, 0x3f8, 1, PIO_OFF);
    cr_assert_eq(vcpu_handle_exit(&vcpu), STATS_ROW_IO_OUT);
    cr_assert_eq(dev.writes, 3);
    cr_assert_eq(stops.calls, 0);
}

Test(vcpu_exit, handle_quiet_exits)
{
    const uint32_t quiet[] = { KVM_EXIT_INTR, KVM_EXIT_IRQ_WINDOW_OPEN, KVM_EXIT_HLT };
    env_setup();
    for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++) {
        run->exit_reason = quiet[i];
        cr_assert_eq(vcpu_handle_exit(&vcpu), stats_row_of_exit(quiet[i]));
    }
    cr_assert_eq(stops.calls, 0, "nothing asked the VM to stop");
    cr_assert_eq(dev.reads + dev.writes, 0);
}

static void expect_stop(uint32_t exit_reason, uint32_t event, enum vm_stop_reason want)
{
    env_setup();
    run->exit_reason = exit_reason;
    run->system_event.type = event;
    cr_assert_eq(vcpu_handle_exit(&vcpu), stats_row_of_exit(exit_reason));
    cr_assert_eq(stops.calls, 1, "exit %u (event %u): one stop request", exit_reason, event);
    cr_assert_eq(stops.reason, want, "exit %u (event %u): reason %d, want %d", exit_reason,
                 event, stops.reason, want);
    cr_assert_eq(stops.code, 0);
}

Test(vcpu_exit, handle_stops)
{
    expect_stop(KVM_EXIT_SHUTDOWN, 0, VM_STOP_RESET);   /* triple fault */
    expect_stop(KVM_EXIT_SYSTEM_EVENT, KVM_SYSTEM_EVENT_SHUTDOWN, VM_STOP_POWEROFF);
    expect_stop(KVM_EXIT_SYSTEM_EVENT, KVM_SYSTEM_EVENT_RESET, VM_STOP_RESET);
    expect_stop(KVM_EXIT_SYSTEM_EVENT, KVM_SYSTEM_EVENT_CRASH, VM_STOP_ERROR);
    expect_stop(KVM_EXIT_SYSTEM_EVENT, 0x7777, VM_STOP_ERROR);
    expect_stop(KVM_EXIT_FAIL_ENTRY, 0, VM_STOP_ERROR);
    expect_stop(KVM_EXIT_UNKNOWN, 0, VM_STOP_ERROR);
    expect_stop(0x1234, 0, VM_STOP_ERROR);   /* a reason this build does not know */
    cr_assert_eq(stats_row_of_exit(0x1234), STATS_ROW_OTHER);
}

Test(vcpu_exit, handle_internal_error)
{
    env_setup();
    run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
    run->internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
    run->internal.ndata = UINT32_MAX;   /* clamped to the array, not trusted */
    cr_assert_eq(vcpu_handle_exit(&vcpu), stats_row_of_exit(KVM_EXIT_INTERNAL_ERROR));
    cr_assert_eq(stops.calls, 1);
    cr_assert_eq(stops.reason, VM_STOP_ERROR);
}

Test(vcpu_exit, handle_without_request_stop)
{
    env_setup();
    env.request_stop = NULL;   /* tolerated: the exit is handled, nobody told */
    run->exit_reason = KVM_EXIT_SHUTDOWN;
    cr_assert_eq(vcpu_handle_exit(&vcpu), stats_row_of_exit(KVM_EXIT_SHUTDOWN));
    cr_assert_eq(stops.calls, 0);
}
