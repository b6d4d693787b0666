// SPDX-License-Identifier: GPL-2.0
/* edu_msi: MSI latency of QEMU's edu device (1234:11e8) inside the lab's L2
 * guest: raise by MMIO, time to the guest's interrupt handler. Built against
 * the lab's Debian kernel headers by bench/edu-latency/Makefile, loaded by
 * tests/lab/l2/jobs/edu-latency; bench/vfio-latency reads its results.
 *
 * edu registers (QEMU docs/specs/edu.rst), BAR0:
 *   0x24 RO  interrupt status
 *   0x60 WO  raise interrupt: status |= value, then MSI (when enabled) or INTx
 *   0x64 WO  acknowledge: status &= ~value
 *
 * At probe: MSI with one vector, then `rounds` times: t0 = ktime_get_ns(),
 * write 1 to 0x60, spin (interrupts on) until the handler has run; the
 * handler takes t1 = ktime_get_ns() first thing, then acknowledges. The
 * latency is t1 - t0: the MMIO write reaching the device, the device's MSI
 * through the host's vfio-pci and the VMM's irqfd route, and the guest's
 * interrupt entry -- no scheduler wake-up, unlike the uio measurement.
 * The results go to the kernel log as one line "edu_msi: msi-latency ns
 * min=.. median=.. p99=.. max=.. n=.. missed=..". The probe fails (the job
 * sees no result line) only when MSI cannot be set up.
 */
#include <linux/delay.h>
#include <linux/hardirq.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/sort.h>

#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_TIMEOUT_NS (1000ull * 1000 * 1000)
#define EDU_SLOW_NS (1000ull * 1000)	/* a sample counted as slow: 1 ms */

static unsigned int rounds = 1000;
module_param(rounds, uint, 0444);
MODULE_PARM_DESC(rounds, "interrupts to time (default 1000)");

struct edu_msi {
	void __iomem *bar;
	int irq;
	u64 t_irq;
	int seen;
	unsigned long handled;
};

static irqreturn_t edu_msi_handler(int irq, void *opaque)
{
	struct edu_msi *e = opaque;
	u64 t = ktime_get_ns();
	u32 st = ioread32(e->bar + EDU_IRQ_STATUS);

	iowrite32(st ? st : 1, e->bar + EDU_IRQ_ACK);
	e->handled++;
	WRITE_ONCE(e->t_irq, t);
	smp_store_release(&e->seen, 1);
	return IRQ_HANDLED;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static void edu_msi_bench(struct pci_dev *pdev, struct edu_msi *e)
{
	u64 *s = kvcalloc(rounds ? rounds : 1, sizeof(*s), GFP_KERNEL);
	u64 *slow_at = kvcalloc(rounds ? rounds : 1, sizeof(*slow_at), GFP_KERNEL);
	unsigned int got = 0, missed = 0, nslow = 0, r, p99;
	unsigned int timer0 = this_cpu_read(irq_stat.apic_timer_irqs);
	u64 start = ktime_get_ns(), end;

	if (!s || !slow_at) {
		dev_err(&pdev->dev, "edu_msi: no memory for %u samples\n", rounds);
		kvfree(s);
		kvfree(slow_at);
		return;
	}
	for (r = 0; r < rounds && missed < 3; r++) {
		u64 t0;

		WRITE_ONCE(e->seen, 0);
		t0 = ktime_get_ns();
		iowrite32(1, e->bar + EDU_IRQ_RAISE);
		while (!smp_load_acquire(&e->seen) && ktime_get_ns() - t0 < EDU_TIMEOUT_NS)
			cpu_relax();
		if (READ_ONCE(e->seen)) {
			s[got] = READ_ONCE(e->t_irq) - t0;
			/* where the slow ones are: a period says who (a tick...) */
			if (s[got] > EDU_SLOW_NS)
				slow_at[nslow++] = t0 - start;
			got++;
		} else {
			missed++;
			pr_info("edu_msi: interrupt %u did not come within 1 s (status 0x%x)\n", r,
				ioread32(e->bar + EDU_IRQ_STATUS));
			iowrite32(ioread32(e->bar + EDU_IRQ_STATUS), e->bar + EDU_IRQ_ACK);
		}
		if ((r & 63) == 63)
			cond_resched();
	}
	end = ktime_get_ns();
	pr_info("edu_msi: loop %llu us, %u local timer interrupts, %u samples over %llu us\n",
		(end - start) / 1000, this_cpu_read(irq_stat.apic_timer_irqs) - timer0, nslow,
		EDU_SLOW_NS / 1000);
	if (nslow > 1) {
		/* the gaps between slow samples, sorted: their median */
		for (r = 0; r + 1 < nslow; r++)
			slow_at[r] = slow_at[r + 1] - slow_at[r];
		sort(slow_at, nslow - 1, sizeof(*slow_at), cmp_u64, NULL);
		pr_info("edu_msi: slow samples: gap between them min %llu us, median %llu us\n",
			slow_at[0] / 1000, slow_at[(nslow - 1) / 2] / 1000);
	}
	kvfree(slow_at);
	if (!got) {
		pr_info("edu_msi: msi-latency none missed=%u\n", missed);
	} else {
		sort(s, got, sizeof(*s), cmp_u64, NULL);
		p99 = got * 99 / 100;
		if (p99 >= got)
			p99 = got - 1;
		pr_info("edu_msi: msi-latency ns min=%llu median=%llu p99=%llu max=%llu n=%u missed=%u handled=%lu\n",
			s[0], s[got / 2], s[p99], s[got - 1], got, missed, e->handled);
	}
	kvfree(s);
}

static int edu_msi_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct edu_msi *e;
	int r;

	e = devm_kzalloc(&pdev->dev, sizeof(*e), GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	r = pci_enable_device(pdev);
	if (r)
		return r;
	/* the MSI is a memory write by the device */
	pci_set_master(pdev);
	e->bar = pci_iomap(pdev, 0, 0);
	if (!e->bar) {
		r = -ENOMEM;
		goto out_disable;
	}
	r = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSI);
	if (r < 0) {
		pr_info("edu_msi: no MSI vector: %d\n", r);
		goto out_unmap;
	}
	e->irq = pci_irq_vector(pdev, 0);
	r = request_irq(e->irq, edu_msi_handler, 0, "edu_msi", e);
	if (r) {
		pr_info("edu_msi: request_irq(%d): %d\n", e->irq, r);
		goto out_vectors;
	}
	pci_set_drvdata(pdev, e);
	pr_info("edu_msi: %s MSI on irq %d, %u rounds\n", pci_name(pdev), e->irq, rounds);
	edu_msi_bench(pdev, e);
	return 0;

out_vectors:
	pci_free_irq_vectors(pdev);
out_unmap:
	pci_iounmap(pdev, e->bar);
out_disable:
	pci_clear_master(pdev);
	pci_disable_device(pdev);
	return r;
}

static void edu_msi_remove(struct pci_dev *pdev)
{
	struct edu_msi *e = pci_get_drvdata(pdev);

	free_irq(e->irq, e);
	pci_free_irq_vectors(pdev);
	pci_iounmap(pdev, e->bar);
	pci_clear_master(pdev);
	pci_disable_device(pdev);
}

static const struct pci_device_id edu_msi_ids[] = {
	{ PCI_DEVICE(0x1234, 0x11e8) },
	{ 0 }
};
MODULE_DEVICE_TABLE(pci, edu_msi_ids);

static struct pci_driver edu_msi_driver = {
	.name = "edu_msi",
	.id_table = edu_msi_ids,
	.probe = edu_msi_probe,
	.remove = edu_msi_remove,
};
module_pci_driver(edu_msi_driver);

MODULE_DESCRIPTION("minivmm lab benchmark: edu MSI latency");
MODULE_LICENSE("GPL");
