// SPDX-License-Identifier: GPL-2.0
/*
 * dmacopy.c - Linux driver for the dmacopy example PCIe device (1234:7a11).
 *
 * The device copies memory to memory as directed by a ring of 32-byte descriptors
 * and reports completion on MSI-X vector 0, errors on vector 1, or both causes on
 * INTx pin A when MSI-X is off. This driver owns one ring and two DMA buffers per
 * device and exposes them through a misc device, /dev/dmacopyN, whose ioctls
 * (dmacopy_ioctl.h) let a test program exercise every path of the device.
 *
 * All ioctls of one device are serialised by a mutex; each one posts its
 * descriptors and waits for them before returning, so at the start of an ioctl the
 * ring is always empty. Every wait is bounded by timeout_ms.
 */
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/kref.h>
#include <linux/ktime.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/wait.h>

#include "dmacopy_ioctl.h"

#define DRV_NAME "dmacopy"

/* PCI_IRQ_LEGACY was renamed PCI_IRQ_INTX in Linux 6.8 and later removed. */
#ifdef PCI_IRQ_INTX
#define DMACOPY_PCI_IRQ_INTX PCI_IRQ_INTX
#else
#define DMACOPY_PCI_IRQ_INTX PCI_IRQ_LEGACY
#endif

static bool use_msix = true;
module_param(use_msix, bool, 0644);
MODULE_PARM_DESC(use_msix, "Use MSI-X (2 vectors); 0 forces INTx (default 1, read at probe)");

static unsigned int ring_size = 256;
module_param(ring_size, uint, 0644);
MODULE_PARM_DESC(ring_size, "Descriptors in the ring, power of two 2..4096 (default 256, read at probe)");

static unsigned int timeout_ms = 30000;
module_param(timeout_ms, uint, 0644);
MODULE_PARM_DESC(timeout_ms, "Longest wait for the device, in ms (default 30000, at least 10)");

/*
 * A driver bug on purpose, for the DMA safety net (docs/user-guide.md, 7.11):
 * when set, the next copy hands the device a stale source address (the DMA
 * address of a buffer the driver has just freed, so with an IOMMU it is no
 * longer mapped for the device), logs it, and clears itself.
 */
static bool inject_stale_dma;
module_param(inject_stale_dma, bool, 0644);
MODULE_PARM_DESC(inject_stale_dma, "Test a DMA safety net: the next copy reads from a stale (freed) DMA address");

/* The STATUS register is read at most this often while waiting on memory. */
#define DMACOPY_STATUS_POLL_MS	10
/* After a halt, how long to wait for the error interrupt that announces it. */
#define DMACOPY_ERR_IRQ_WAIT_MS	1000
/* How long CTRL.RESET may take to self-clear. */
#define DMACOPY_RESET_WAIT_MS	1000
#define DMACOPY_MMIO_BENCH_MAX	100000000u
#define DMACOPY_POISON		0x5a

struct dmacopy_desc {
	__le64 src;
	__le64 dst;
	__le32 len;
	__le32 flags;
	__le32 status;
	__le32 crc;
};
/* The layout of dmacopy_regs.h, as a structure. */
static_assert(sizeof(struct dmacopy_desc) == DMACOPY_DESC_BYTES);
static_assert(offsetof(struct dmacopy_desc, src) == DMACOPY_DESC_SRC);
static_assert(offsetof(struct dmacopy_desc, dst) == DMACOPY_DESC_DST);
static_assert(offsetof(struct dmacopy_desc, len) == DMACOPY_DESC_LEN);
static_assert(offsetof(struct dmacopy_desc, flags) == DMACOPY_DESC_FLAGS);
static_assert(offsetof(struct dmacopy_desc, status) == DMACOPY_DESC_STATUS);
static_assert(offsetof(struct dmacopy_desc, crc) == DMACOPY_DESC_CRC);

struct dmacopy_dev {
	struct kref ref;
	struct pci_dev *pdev;
	void __iomem *bar0;
	int minor_id;
	char name[16];
	struct miscdevice misc;
	bool misc_registered;

	struct mutex lock;		/* serialises ioctls and remove */
	bool gone;			/* removed: no hardware, no buffers */
	bool dying;			/* remove started: waiters give up */
	bool needs_reset;		/* a wait timed out: reset before next use */

	int irq_mode;			/* DMACOPY_IRQ_MODE_* */
	int nr_vectors;
	int irqs[2];			/* Linux irq numbers requested */
	int nr_irqs;
	wait_queue_head_t wq;

	struct dmacopy_desc *ring;	/* coherent, ring_size entries */
	dma_addr_t ring_bus;
	u32 ring_size;
	u32 tail;			/* next free slot */

	u8 *src_buf;			/* coherent, DMACOPY_BUF_BYTES */
	dma_addr_t src_bus;
	u8 *dst_buf;
	dma_addr_t dst_bus;

	/*
	 * The mapped window (DMACOPY_MAP_*), allocated on first use: order-N pages
	 * split into single pages, so a user mapping holds its own page references
	 * and outlives remove; one streaming DMA mapping over all of them.
	 */
	struct page *map_pages[DMACOPY_MAP_BYTES >> PAGE_SHIFT];
	dma_addr_t map_bus;
	bool map_ready;
	/*
	 * Guards the window. Never held across a user copy: mmap() takes it
	 * with mmap_lock held, and ioctls hold dd->lock across user copies that
	 * may fault (and take mmap_lock), so mmap() must not take dd->lock.
	 */
	struct mutex map_lock;

	atomic64_t vec_irqs[2];
	atomic64_t intx_irqs;
	atomic64_t intx_none;
	atomic64_t done_irqs;
	atomic64_t err_irqs;
	u64 descs_done;
	u64 timeouts;
	u64 resets;
};

static DEFINE_IDA(dmacopy_ida);

static void dmacopy_release(struct kref *ref)
{
	kfree(container_of(ref, struct dmacopy_dev, ref));
}

static inline u32 dc_read(struct dmacopy_dev *dd, u32 reg)
{
	return readl(dd->bar0 + reg);
}

static inline void dc_write(struct dmacopy_dev *dd, u32 reg, u32 val)
{
	writel(val, dd->bar0 + reg);
}

/* ---- interrupts ---------------------------------------------------------- */

static irqreturn_t dmacopy_msix_done(int irq, void *data)
{
	struct dmacopy_dev *dd = data;

	atomic64_inc(&dd->vec_irqs[0]);
	dc_write(dd, DMACOPY_REG_IRQ_STATUS, DMACOPY_IRQ_COMPLETION);
	atomic64_inc(&dd->done_irqs);
	wake_up_all(&dd->wq);
	return IRQ_HANDLED;
}

static irqreturn_t dmacopy_msix_error(int irq, void *data)
{
	struct dmacopy_dev *dd = data;

	atomic64_inc(&dd->vec_irqs[1]);
	dc_write(dd, DMACOPY_REG_IRQ_STATUS, DMACOPY_IRQ_ERROR);
	atomic64_inc(&dd->err_irqs);
	wake_up_all(&dd->wq);
	return IRQ_HANDLED;
}

/* INTx may be shared: only claim it when the device has a cause pending. */
static irqreturn_t dmacopy_intx(int irq, void *data)
{
	struct dmacopy_dev *dd = data;
	u32 causes = dc_read(dd, DMACOPY_REG_IRQ_STATUS);

	/* All ones: the device is gone (surprise removal) and cannot interrupt. */
	if (causes == U32_MAX ||
	    !(causes & (DMACOPY_IRQ_COMPLETION | DMACOPY_IRQ_ERROR))) {
		atomic64_inc(&dd->intx_none);
		return IRQ_NONE;
	}
	causes &= DMACOPY_IRQ_COMPLETION | DMACOPY_IRQ_ERROR;
	/* Clearing the causes deasserts INTx. */
	dc_write(dd, DMACOPY_REG_IRQ_STATUS, causes);
	atomic64_inc(&dd->intx_irqs);
	if (causes & DMACOPY_IRQ_COMPLETION)
		atomic64_inc(&dd->done_irqs);
	if (causes & DMACOPY_IRQ_ERROR)
		atomic64_inc(&dd->err_irqs);
	wake_up_all(&dd->wq);
	return IRQ_HANDLED;
}

static void dmacopy_free_irqs(struct dmacopy_dev *dd)
{
	while (dd->nr_irqs > 0) {
		dd->nr_irqs--;
		free_irq(dd->irqs[dd->nr_irqs], dd);
	}
	if (dd->irq_mode != DMACOPY_IRQ_MODE_NONE)
		pci_free_irq_vectors(dd->pdev);
	dd->irq_mode = DMACOPY_IRQ_MODE_NONE;
	dd->nr_vectors = 0;
}

static int dmacopy_request(struct dmacopy_dev *dd, int vector,
			   irq_handler_t handler, unsigned long flags)
{
	int irq = pci_irq_vector(dd->pdev, vector);
	int ret;

	if (irq < 0)
		return irq;
	ret = request_irq(irq, handler, flags, dd->name, dd);
	if (ret)
		return ret;
	dd->irqs[dd->nr_irqs++] = irq;
	return 0;
}

static int dmacopy_setup_irqs(struct dmacopy_dev *dd)
{
	struct pci_dev *pdev = dd->pdev;
	int ret;

	if (use_msix) {
		ret = pci_alloc_irq_vectors(pdev, 2, 2, PCI_IRQ_MSIX);
		if (ret == 2) {
			dd->irq_mode = DMACOPY_IRQ_MODE_MSIX;
			dd->nr_vectors = 2;
			ret = dmacopy_request(dd, 0, dmacopy_msix_done, 0);
			if (!ret)
				ret = dmacopy_request(dd, 1, dmacopy_msix_error, 0);
			if (!ret) {
				dev_info(&pdev->dev, "MSI-X: vector 0 irq %d (completion), vector 1 irq %d (error)\n",
					 dd->irqs[0], dd->irqs[1]);
				return 0;
			}
			dmacopy_free_irqs(dd);
			dev_warn(&pdev->dev, "MSI-X request_irq failed (%d), trying INTx\n", ret);
		} else {
			dev_info(&pdev->dev, "MSI-X unavailable (%d), using INTx\n", ret);
		}
	}

	ret = pci_alloc_irq_vectors(pdev, 1, 1, DMACOPY_PCI_IRQ_INTX);
	if (ret < 0) {
		dev_err(&pdev->dev, "no INTx either (%d)\n", ret);
		return ret;
	}
	dd->irq_mode = DMACOPY_IRQ_MODE_INTX;
	ret = dmacopy_request(dd, 0, dmacopy_intx, IRQF_SHARED);
	if (ret) {
		dev_err(&pdev->dev, "request_irq for INTx failed (%d)\n", ret);
		dmacopy_free_irqs(dd);
		return ret;
	}
	dev_info(&pdev->dev, "INTx: irq %d\n", dd->irqs[0]);
	return 0;
}

/* ---- device state ----------------------------------------------------------- */

static u32 dmacopy_desc_status(struct dmacopy_dev *dd, u32 idx)
{
	u32 status = le32_to_cpu(READ_ONCE(dd->ring[idx].status));

	/* The device writes crc before status: order our later reads after it. */
	dma_rmb();
	return status;
}

/* Programs ring and interrupt registers after a reset and enables the engine. */
static int dmacopy_hw_init_ring(struct dmacopy_dev *dd)
{
	u32 status;

	memset(dd->ring, 0, dd->ring_size * sizeof(*dd->ring));
	dd->tail = 0;
	dd->needs_reset = false;
	dc_write(dd, DMACOPY_REG_RING_LO, lower_32_bits(dd->ring_bus));
	dc_write(dd, DMACOPY_REG_RING_HI, upper_32_bits(dd->ring_bus));
	dc_write(dd, DMACOPY_REG_RING_SIZE, dd->ring_size);
	dc_write(dd, DMACOPY_REG_IRQ_MASK, 0);
	dc_write(dd, DMACOPY_REG_IRQ_STATUS, DMACOPY_IRQ_COMPLETION | DMACOPY_IRQ_ERROR);
	dc_write(dd, DMACOPY_REG_CTRL, DMACOPY_CTRL_ENABLE);

	status = dc_read(dd, DMACOPY_REG_STATUS);
	if (status == U32_MAX) {
		dev_err(&dd->pdev->dev, "STATUS reads all ones: device gone?\n");
		return -ENODEV;
	}
	if (status & (DMACOPY_STATUS_ERROR | DMACOPY_STATUS_HALTED)) {
		dev_err(&dd->pdev->dev, "ring setup refused: STATUS 0x%x ERR_CODE %u\n",
			status, dc_read(dd, DMACOPY_REG_ERR_CODE));
		return -EIO;
	}
	return 0;
}

/* Writes CTRL.RESET and waits for it to self-clear; does not re-enable. */
static int dmacopy_hw_reset_only(struct dmacopy_dev *dd, u32 *polls)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(DMACOPY_RESET_WAIT_MS);
	u32 n = 0, ctrl;

	dd->resets++;
	dc_write(dd, DMACOPY_REG_CTRL, DMACOPY_CTRL_RESET);
	for (;;) {
		ctrl = dc_read(dd, DMACOPY_REG_CTRL);
		n++;
		if (ctrl == U32_MAX)
			return -ENODEV;
		if (!(ctrl & DMACOPY_CTRL_RESET))
			break;
		if (time_after(jiffies, deadline)) {
			dev_err(&dd->pdev->dev, "CTRL.RESET did not clear within %u ms\n",
				DMACOPY_RESET_WAIT_MS);
			return -ETIMEDOUT;
		}
		usleep_range(50, 100);
	}
	if (polls)
		*polls = n;
	return 0;
}

static int dmacopy_hw_reset(struct dmacopy_dev *dd)
{
	int ret = dmacopy_hw_reset_only(dd, NULL);

	if (ret)
		return ret;
	return dmacopy_hw_init_ring(dd);
}

/* Called with dd->lock held at the start of every ioctl that touches hardware. */
static int dmacopy_ready(struct dmacopy_dev *dd)
{
	if (dd->gone)
		return -ENODEV;
	if (dd->needs_reset)
		return dmacopy_hw_reset(dd);
	return 0;
}

static void dmacopy_fill_desc(struct dmacopy_dev *dd, u32 idx, u64 src, u64 dst,
			      u32 len, u32 flags)
{
	struct dmacopy_desc *d = &dd->ring[idx];

	d->src = cpu_to_le64(src);
	d->dst = cpu_to_le64(dst);
	d->len = cpu_to_le32(len);
	d->flags = cpu_to_le32(flags);
	d->crc = 0;
	d->status = 0;
}

/* Posts count descriptors starting at dd->tail with one TAIL write. */
static u32 dmacopy_ring_doorbell(struct dmacopy_dev *dd, u32 count)
{
	u32 first = dd->tail;

	dd->tail = (dd->tail + count) & (dd->ring_size - 1);
	/* Descriptors must be visible before the device sees the new TAIL. */
	dma_wmb();
	dc_write(dd, DMACOPY_REG_TAIL, dd->tail);
	return first;
}

enum dmacopy_wait_result {
	DMACOPY_WAIT_DONE,
	DMACOPY_WAIT_HALTED,
};

/*
 * Waits for descriptor idx to finish. With want_irq also waits for a completion
 * interrupt counted after done_snap. Returns DMACOPY_WAIT_DONE, DMACOPY_WAIT_HALTED
 * (the device stopped on an error) or a negative errno. On timeout the device is
 * marked for reset.
 */
static int dmacopy_wait_desc(struct dmacopy_dev *dd, u32 idx, bool want_irq,
			     s64 done_snap, s64 err_snap)
{
	unsigned int wait_ms = max(READ_ONCE(timeout_ms), 10u);
	unsigned long deadline = jiffies + msecs_to_jiffies(wait_ms);
	unsigned long next_status = jiffies + msecs_to_jiffies(DMACOPY_STATUS_POLL_MS);
	unsigned int spins = 0;
	u32 status, dev_status;

	for (;;) {
		status = dmacopy_desc_status(dd, idx);
		if (DMACOPY_DESC_ERR(status) ||
		    atomic64_read(&dd->err_irqs) != err_snap)
			return DMACOPY_WAIT_HALTED;
		if ((status & DMACOPY_DESC_DONE) &&
		    (!want_irq || atomic64_read(&dd->done_irqs) != done_snap))
			return DMACOPY_WAIT_DONE;
		if (READ_ONCE(dd->dying))
			return -ENODEV;
		if (fatal_signal_pending(current)) {
			dd->needs_reset = true;
			return -EINTR;
		}

		if (time_after_eq(jiffies, next_status)) {
			dev_status = dc_read(dd, DMACOPY_REG_STATUS);
			if (dev_status == U32_MAX)
				return -ENODEV;
			if (dev_status & DMACOPY_STATUS_HALTED)
				return DMACOPY_WAIT_HALTED;
			next_status = jiffies + msecs_to_jiffies(DMACOPY_STATUS_POLL_MS);
		}
		if (time_after(jiffies, deadline)) {
			dev_status = dc_read(dd, DMACOPY_REG_STATUS);
			dev_err(&dd->pdev->dev,
				"descriptor %u not finished after %u ms: desc status 0x%x, STATUS 0x%x HEAD %u TAIL %u COMPLETED %u, irqs done %lld%s\n",
				idx, wait_ms, status, dev_status,
				dc_read(dd, DMACOPY_REG_HEAD),
				dc_read(dd, DMACOPY_REG_TAIL),
				dc_read(dd, DMACOPY_REG_COMPLETED),
				(long long)atomic64_read(&dd->done_irqs),
				(status & DMACOPY_DESC_DONE) ?
				" (DONE but no completion interrupt)" : "");
			dd->timeouts++;
			dd->needs_reset = true;
			return -ETIMEDOUT;
		}

		if (want_irq) {
			wait_event_timeout(dd->wq,
				(dmacopy_desc_status(dd, idx) & DMACOPY_DESC_DONE &&
				 atomic64_read(&dd->done_irqs) != done_snap) ||
				atomic64_read(&dd->err_irqs) != err_snap ||
				READ_ONCE(dd->dying),
				msecs_to_jiffies(DMACOPY_STATUS_POLL_MS));
		} else if (++spins < 200) {
			cpu_relax();
			udelay(1);
		} else {
			usleep_range(20, 50);
		}
	}
}

/* Reads the error state of a halted device, then resets it for the next user. */
static u32 dmacopy_recover(struct dmacopy_dev *dd, const char *what)
{
	u32 err = dc_read(dd, DMACOPY_REG_ERR_CODE);
	u32 status = dc_read(dd, DMACOPY_REG_STATUS);

	dev_warn(&dd->pdev->dev, "%s: device stopped, STATUS 0x%x ERR_CODE %u; resetting\n",
		 what, status, err);
	if (dmacopy_hw_reset(dd))
		dd->needs_reset = true;
	return err;
}

static int dmacopy_check_lengths(u32 len, u32 src_off, u32 dst_off)
{
	if (!len || len > DMACOPY_MAX_COPY_BYTES)
		return -EINVAL;
	if (src_off > DMACOPY_MAX_BUF_OFFSET || dst_off > DMACOPY_MAX_BUF_OFFSET)
		return -EINVAL;
	return 0;
}

/* Allocates and maps the mapped window once; called with dd->map_lock held. */
static int dmacopy_map_alloc(struct dmacopy_dev *dd)
{
	struct device *dev = &dd->pdev->dev;
	unsigned int order = get_order(DMACOPY_MAP_BYTES);
	struct page *page;
	dma_addr_t bus;

	if (dd->map_ready)
		return 0;
	page = alloc_pages(GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN, order);
	if (!page) {
		dev_warn(dev, "no %u contiguous bytes for the mapped window\n", DMACOPY_MAP_BYTES);
		return -ENOMEM;
	}
	bus = dma_map_page(dev, page, 0, DMACOPY_MAP_BYTES, DMA_BIDIRECTIONAL);
	if (dma_mapping_error(dev, bus)) {
		__free_pages(page, order);
		return -ENOMEM;
	}
	split_page(page, order);
	for (unsigned int i = 0; i < ARRAY_SIZE(dd->map_pages); i++)
		dd->map_pages[i] = page + i;
	dd->map_bus = bus;
	dd->map_ready = true;
	return 0;
}

static int dmacopy_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct dmacopy_dev *dd = file->private_data;
	unsigned long npages = vma_pages(vma), n;
	const unsigned long max = ARRAY_SIZE(dd->map_pages);
	int ret;

	if (vma->vm_pgoff >= max || npages > max - vma->vm_pgoff)
		return -EINVAL;
	/* A private mapping would copy on write: the device would not see the data. */
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (mutex_lock_interruptible(&dd->map_lock))
		return -ERESTARTSYS;
	/* remove sets gone before it frees the window under map_lock. */
	ret = READ_ONCE(dd->gone) ? -ENODEV : dmacopy_map_alloc(dd);
	if (!ret) {
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
		vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
#else
		vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP;
#endif
		n = npages;
		ret = vm_insert_pages(vma, vma->vm_start, dd->map_pages + vma->vm_pgoff, &n);
	}
	mutex_unlock(&dd->map_lock);
	return ret;
}

/* ---- ioctls --------------------------------------------------------------- */

/* A copy between the mapped buffers: checks the window, gives the bytes to the device. */
static int dmacopy_copy_prepare_mapped(struct dmacopy_dev *dd, struct dmacopy_copy *c)
{
	dma_addr_t bus;
	bool ready;

	if (c->src || c->dst || !c->len || c->len > DMACOPY_MAP_BUF_BYTES ||
	    c->src_off > DMACOPY_MAP_BUF_BYTES - c->len ||
	    c->dst_off > DMACOPY_MAP_BUF_BYTES - c->len)
		return -EINVAL;
	mutex_lock(&dd->map_lock);
	ready = dd->map_ready;
	bus = dd->map_bus;
	mutex_unlock(&dd->map_lock);
	/* Once ready, the window stays until remove, which needs dd->lock. */
	if (!ready)
		return -ENXIO;		/* nothing mapped: no data to copy */
	c->src_bus = bus + DMACOPY_MAP_SRC_OFFSET + c->src_off;
	c->dst_bus = bus + DMACOPY_MAP_DST_OFFSET + c->dst_off;
	dma_sync_single_for_device(&dd->pdev->dev, c->src_bus, c->len, DMA_BIDIRECTIONAL);
	dma_sync_single_for_device(&dd->pdev->dev, c->dst_bus, c->len, DMA_BIDIRECTIONAL);
	return 0;
}

/* A copy through the bounce buffers: the source bytes come from user memory. */
static int dmacopy_copy_prepare_bounce(struct dmacopy_dev *dd, struct dmacopy_copy *c)
{
	int ret = dmacopy_check_lengths(c->len, c->src_off, c->dst_off);

	if (ret)
		return ret;
	if (copy_from_user(dd->src_buf + c->src_off, u64_to_user_ptr(c->src), c->len))
		return -EFAULT;
	memset(dd->dst_buf + c->dst_off, DMACOPY_POISON, c->len);

	c->src_bus = dd->src_bus + c->src_off;
	if (READ_ONCE(inject_stale_dma) && c->len <= PAGE_SIZE) {
		struct device *dev = &dd->pdev->dev;
		dma_addr_t stale;
		void *buf = dma_alloc_coherent(dev, PAGE_SIZE, &stale, GFP_KERNEL);

		if (buf) {
			dma_free_coherent(dev, PAGE_SIZE, buf, stale);
			WRITE_ONCE(inject_stale_dma, false);
			c->src_bus = stale;
			dev_warn(dev, "injected bug: copy source at stale DMA address 0x%llx (%u bytes, freed)\n",
				 (unsigned long long)stale, c->len);
		}
	}
	c->dst_bus = dd->dst_bus + c->dst_off;
	return 0;
}

static int dmacopy_ioc_copy(struct dmacopy_dev *dd, void __user *argp)
{
	struct dmacopy_copy c;
	bool want_irq, mapped;
	s64 done_snap, err_snap;
	ktime_t t0;
	u32 idx, status;
	int ret;

	if (copy_from_user(&c, argp, sizeof(c)))
		return -EFAULT;
	mapped = c.flags & DMACOPY_COPY_MAPPED;
	ret = mapped ? dmacopy_copy_prepare_mapped(dd, &c) : dmacopy_copy_prepare_bounce(dd, &c);
	if (ret)
		return ret;

	want_irq = (c.flags & DMACOPY_COPY_IRQ) && !(c.flags & DMACOPY_COPY_POLL);
	dmacopy_fill_desc(dd, dd->tail, c.src_bus, c.dst_bus, c.len,
			  (c.flags & DMACOPY_COPY_IRQ) ? DMACOPY_DESC_FLAG_IRQ : 0);
	done_snap = atomic64_read(&dd->done_irqs);
	err_snap = atomic64_read(&dd->err_irqs);
	t0 = ktime_get();
	idx = dmacopy_ring_doorbell(dd, 1);
	ret = dmacopy_wait_desc(dd, idx, want_irq, done_snap, err_snap);
	c.elapsed_ns = ktime_to_ns(ktime_sub(ktime_get(), t0));
	if (ret < 0)
		return ret;

	status = dmacopy_desc_status(dd, idx);
	c.ring_index = idx;
	c.desc_status = status;
	c.crc = le32_to_cpu(READ_ONCE(dd->ring[idx].crc));
	c.err_code = 0;
	if (ret == DMACOPY_WAIT_HALTED) {
		c.err_code = dmacopy_recover(dd, "copy");
		if (copy_to_user(argp, &c, sizeof(c)))
			return -EFAULT;
		return -EIO;
	}
	dd->descs_done++;
	if (mapped)
		dma_sync_single_for_cpu(&dd->pdev->dev, c.dst_bus, c.len, DMA_BIDIRECTIONAL);
	else if (c.dst && copy_to_user(u64_to_user_ptr(c.dst), dd->dst_buf + c.dst_off, c.len))
		return -EFAULT;
	if (copy_to_user(argp, &c, sizeof(c)))
		return -EFAULT;
	return 0;
}

static int dmacopy_ioc_batch(struct dmacopy_dev *dd, void __user *argp)
{
	struct dmacopy_batch b;
	struct dmacopy_result *res = NULL;
	u32 *lens = NULL;
	u64 total = 0, off;
	s64 done_snap, err_snap;
	bool want_irq;
	ktime_t t0;
	u32 i, first, last, idx;
	int ret;

	if (copy_from_user(&b, argp, sizeof(b)))
		return -EFAULT;
	if (!b.count || b.count > dd->ring_size - 1)
		return -EINVAL;

	lens = kvmalloc_array(b.count, sizeof(*lens), GFP_KERNEL);
	res = kvcalloc(b.count, sizeof(*res), GFP_KERNEL);
	if (!lens || !res) {
		ret = -ENOMEM;
		goto out;
	}
	if (b.lens) {
		if (copy_from_user(lens, u64_to_user_ptr(b.lens),
				   b.count * sizeof(*lens))) {
			ret = -EFAULT;
			goto out;
		}
	} else {
		for (i = 0; i < b.count; i++)
			lens[i] = b.len;
	}
	for (i = 0; i < b.count; i++) {
		if (!lens[i] || lens[i] > DMACOPY_MAX_COPY_BYTES) {
			ret = -EINVAL;
			goto out;
		}
		total += lens[i];
	}
	if (total > DMACOPY_BUF_BYTES) {
		ret = -E2BIG;
		goto out;
	}
	if (copy_from_user(dd->src_buf, u64_to_user_ptr(b.src), total)) {
		ret = -EFAULT;
		goto out;
	}
	memset(dd->dst_buf, DMACOPY_POISON, total);

	want_irq = (b.flags & DMACOPY_COPY_IRQ) && !(b.flags & DMACOPY_COPY_POLL);
	for (i = 0, off = 0; i < b.count; off += lens[i], i++) {
		bool irq_here = (b.flags & DMACOPY_COPY_IRQ) && i == b.count - 1;

		dmacopy_fill_desc(dd, (dd->tail + i) & (dd->ring_size - 1),
				  dd->src_bus + off, dd->dst_bus + off, lens[i],
				  irq_here ? DMACOPY_DESC_FLAG_IRQ : 0);
	}
	done_snap = atomic64_read(&dd->done_irqs);
	err_snap = atomic64_read(&dd->err_irqs);
	t0 = ktime_get();
	first = dmacopy_ring_doorbell(dd, b.count);
	last = (first + b.count - 1) & (dd->ring_size - 1);
	ret = dmacopy_wait_desc(dd, last, want_irq, done_snap, err_snap);
	b.elapsed_ns = ktime_to_ns(ktime_sub(ktime_get(), t0));
	if (ret < 0)
		goto out;

	b.first_index = first;
	b.completed = 0;
	for (i = 0; i < b.count; i++) {
		idx = (first + i) & (dd->ring_size - 1);
		res[i].desc_status = dmacopy_desc_status(dd, idx);
		res[i].crc = le32_to_cpu(READ_ONCE(dd->ring[idx].crc));
		if (res[i].desc_status & DMACOPY_DESC_DONE)
			b.completed++;
	}
	dd->descs_done += b.completed;
	b.err_code = 0;
	if (ret == DMACOPY_WAIT_HALTED)
		b.err_code = dmacopy_recover(dd, "batch");

	if (b.dst && copy_to_user(u64_to_user_ptr(b.dst), dd->dst_buf, total)) {
		ret = -EFAULT;
		goto out;
	}
	if (b.results && copy_to_user(u64_to_user_ptr(b.results), res,
				      b.count * sizeof(*res))) {
		ret = -EFAULT;
		goto out;
	}
	if (copy_to_user(argp, &b, sizeof(b))) {
		ret = -EFAULT;
		goto out;
	}
	ret = b.err_code ? -EIO : 0;
out:
	kvfree(res);
	kvfree(lens);
	return ret;
}

static int dmacopy_check_reg(struct dmacopy_reg *r)
{
	if (r->size != 1 && r->size != 2 && r->size != 4)
		return -EINVAL;
	if (r->offset >= DMACOPY_BAR0_BYTES || r->offset % r->size)
		return -EINVAL;
	return 0;
}

static int dmacopy_ioc_reg(struct dmacopy_dev *dd, void __user *argp, bool write)
{
	struct dmacopy_reg r;
	int ret;

	if (copy_from_user(&r, argp, sizeof(r)))
		return -EFAULT;
	ret = dmacopy_check_reg(&r);
	if (ret)
		return ret;

	if (write) {
		switch (r.size) {
		case 1:
			writeb(r.value, dd->bar0 + r.offset);
			break;
		case 2:
			writew(r.value, dd->bar0 + r.offset);
			break;
		default:
			writel(r.value, dd->bar0 + r.offset);
			break;
		}
		return 0;
	}

	switch (r.size) {
	case 1:
		r.value = readb(dd->bar0 + r.offset);
		break;
	case 2:
		r.value = readw(dd->bar0 + r.offset);
		break;
	default:
		r.value = readl(dd->bar0 + r.offset);
		break;
	}
	return copy_to_user(argp, &r, sizeof(r)) ? -EFAULT : 0;
}

static int dmacopy_ioc_errtest(struct dmacopy_dev *dd, void __user *argp)
{
	struct dmacopy_errtest e;
	u64 src = dd->src_bus, dst = dd->dst_bus;
	u32 len = 64, idx;
	s64 done_snap, err_snap;
	ktime_t t0;
	int ret;

	if (copy_from_user(&e, argp, sizeof(e)))
		return -EFAULT;
	if (!e.bad_addr)
		e.bad_addr = DMACOPY_ERRTEST_BAD_ADDR;
	switch (e.kind) {
	case DMACOPY_ERRTEST_ZERO_LEN:
		len = 0;
		break;
	case DMACOPY_ERRTEST_BAD_SRC:
		src = e.bad_addr;
		break;
	case DMACOPY_ERRTEST_BAD_DST:
		dst = e.bad_addr;
		break;
	default:
		return -EINVAL;
	}
	memset(dd->src_buf, 0xc3, 64);

	dmacopy_fill_desc(dd, dd->tail, src, dst, len,
			  (e.flags & DMACOPY_COPY_IRQ) ? DMACOPY_DESC_FLAG_IRQ : 0);
	done_snap = atomic64_read(&dd->done_irqs);
	err_snap = atomic64_read(&dd->err_irqs);
	t0 = ktime_get();
	idx = dmacopy_ring_doorbell(dd, 1);
	/* The descriptor is expected to fail: wait for the halt, not for DONE. */
	ret = dmacopy_wait_desc(dd, idx, false, done_snap, err_snap);
	e.elapsed_ns = ktime_to_ns(ktime_sub(ktime_get(), t0));
	if (ret < 0)
		return ret;

	/* Error state can be reported (descriptor status) before STATUS/irq settle. */
	e.dev_status = dc_read(dd, DMACOPY_REG_STATUS);
	if (!(e.dev_status & DMACOPY_STATUS_HALTED) && e.dev_status != U32_MAX) {
		unsigned long deadline = jiffies + msecs_to_jiffies(DMACOPY_ERR_IRQ_WAIT_MS);

		while (!(e.dev_status & DMACOPY_STATUS_HALTED) &&
		       e.dev_status != U32_MAX && !time_after(jiffies, deadline)) {
			usleep_range(100, 200);
			e.dev_status = dc_read(dd, DMACOPY_REG_STATUS);
		}
	}
	e.halted = !!(e.dev_status & DMACOPY_STATUS_HALTED) && e.dev_status != U32_MAX;
	e.err_code = dc_read(dd, DMACOPY_REG_ERR_CODE);
	e.desc_status = dmacopy_desc_status(dd, idx);
	wait_event_timeout(dd->wq, atomic64_read(&dd->err_irqs) != err_snap ||
			   READ_ONCE(dd->dying),
			   msecs_to_jiffies(DMACOPY_ERR_IRQ_WAIT_MS));
	e.err_irqs = atomic64_read(&dd->err_irqs) - err_snap;
	e.done_irqs = atomic64_read(&dd->done_irqs) - done_snap;

	ret = dmacopy_hw_reset(dd);
	if (ret) {
		dd->needs_reset = true;
		return ret;
	}
	e.recovered = dc_read(dd, DMACOPY_REG_STATUS) == 0;
	return copy_to_user(argp, &e, sizeof(e)) ? -EFAULT : 0;
}

static int dmacopy_ioc_pollbusy(struct dmacopy_dev *dd, void __user *argp)
{
	struct dmacopy_pollbusy p;
	unsigned long deadline;
	ktime_t t0;
	u32 idx, status;
	int ret;

	if (copy_from_user(&p, argp, sizeof(p)))
		return -EFAULT;
	ret = dmacopy_check_lengths(p.len, 0, 0);
	if (ret)
		return ret;
	if (copy_from_user(dd->src_buf, u64_to_user_ptr(p.src), p.len))
		return -EFAULT;
	memset(dd->dst_buf, DMACOPY_POISON, p.len);

	dmacopy_fill_desc(dd, dd->tail, dd->src_bus, dd->dst_bus, p.len, 0);
	p.reads = 0;
	p.busy_reads = 0;
	deadline = jiffies + msecs_to_jiffies(max(READ_ONCE(timeout_ms), 10u));
	t0 = ktime_get();
	idx = dmacopy_ring_doorbell(dd, 1);
	for (;;) {
		status = dc_read(dd, DMACOPY_REG_STATUS);
		p.reads++;
		if (status == U32_MAX)
			return -ENODEV;
		if (!(status & DMACOPY_STATUS_BUSY) || (status & DMACOPY_STATUS_HALTED))
			break;
		p.busy_reads++;
		if (!(p.reads & 255)) {
			if (time_after(jiffies, deadline) || READ_ONCE(dd->dying) ||
			    fatal_signal_pending(current)) {
				dev_err(&dd->pdev->dev, "STATUS still BUSY after %llu reads\n",
					(unsigned long long)p.reads);
				dd->timeouts++;
				dd->needs_reset = true;
				p.final_status = status;
				if (copy_to_user(argp, &p, sizeof(p)))
					return -EFAULT;
				return -ETIMEDOUT;
			}
			cond_resched();
		}
	}
	p.elapsed_ns = ktime_to_ns(ktime_sub(ktime_get(), t0));
	p.final_status = status;

	/* BUSY is clear, so the write-back must be there; still bound the wait. */
	ret = dmacopy_wait_desc(dd, idx, false, atomic64_read(&dd->done_irqs),
				atomic64_read(&dd->err_irqs));
	if (ret < 0)
		return ret;
	p.desc_status = dmacopy_desc_status(dd, idx);
	p.crc = le32_to_cpu(READ_ONCE(dd->ring[idx].crc));
	if (ret == DMACOPY_WAIT_HALTED) {
		dmacopy_recover(dd, "poll-busy copy");
		if (copy_to_user(argp, &p, sizeof(p)))
			return -EFAULT;
		return -EIO;
	}
	dd->descs_done++;
	if (p.dst && copy_to_user(u64_to_user_ptr(p.dst), dd->dst_buf, p.len))
		return -EFAULT;
	return copy_to_user(argp, &p, sizeof(p)) ? -EFAULT : 0;
}

static int dmacopy_ioc_resetmid(struct dmacopy_dev *dd, void __user *argp)
{
	struct dmacopy_resetmid r;
	u32 len, i;
	int ret;

	if (copy_from_user(&r, argp, sizeof(r)))
		return -EFAULT;
	len = r.len ? r.len : DMACOPY_MAX_COPY_BYTES;
	if (len > DMACOPY_MAX_COPY_BYTES)
		return -EINVAL;
	for (i = 0; i < len; i++)
		dd->src_buf[i] = (u8)(i * 7 + 1);
	memset(dd->dst_buf, DMACOPY_POISON, len);

	dmacopy_fill_desc(dd, dd->tail, dd->src_bus, dd->dst_bus, len, DMACOPY_DESC_FLAG_IRQ);
	dmacopy_ring_doorbell(dd, 1);
	r.status_before = dc_read(dd, DMACOPY_REG_STATUS);
	ret = dmacopy_hw_reset_only(dd, &r.reset_polls);
	if (ret) {
		dd->needs_reset = true;
		return ret;
	}
	r.ctrl_after = dc_read(dd, DMACOPY_REG_CTRL);
	r.status_after = dc_read(dd, DMACOPY_REG_STATUS);
	r.head_after = dc_read(dd, DMACOPY_REG_HEAD);
	r.tail_after = dc_read(dd, DMACOPY_REG_TAIL);
	r.completed_after = dc_read(dd, DMACOPY_REG_COMPLETED);
	r.irq_status_after = dc_read(dd, DMACOPY_REG_IRQ_STATUS);
	r.err_code_after = dc_read(dd, DMACOPY_REG_ERR_CODE);

	/* Let any write already on its way land before the ring is reused. */
	msleep(20);
	ret = dmacopy_hw_init_ring(dd);
	r.reinit_status = dc_read(dd, DMACOPY_REG_STATUS);
	if (ret) {
		dd->needs_reset = true;
		return ret;
	}
	return copy_to_user(argp, &r, sizeof(r)) ? -EFAULT : 0;
}

static int dmacopy_ioc_stats(struct dmacopy_dev *dd, void __user *argp)
{
	struct dmacopy_stats s;

	memset(&s, 0, sizeof(s));
	s.irq_mode = dd->irq_mode;
	s.nr_vectors = dd->nr_vectors;
	s.ring_size = dd->ring_size;
	s.tail = dd->tail;
	s.vec_irqs[0] = atomic64_read(&dd->vec_irqs[0]);
	s.vec_irqs[1] = atomic64_read(&dd->vec_irqs[1]);
	s.intx_irqs = atomic64_read(&dd->intx_irqs);
	s.intx_none = atomic64_read(&dd->intx_none);
	s.done_irqs = atomic64_read(&dd->done_irqs);
	s.err_irqs = atomic64_read(&dd->err_irqs);
	s.descs_done = dd->descs_done;
	s.timeouts = dd->timeouts;
	s.resets = dd->resets;
	s.buf_bytes = DMACOPY_BUF_BYTES;
	s.timeout_ms = timeout_ms;
	return copy_to_user(argp, &s, sizeof(s)) ? -EFAULT : 0;
}

static int dmacopy_ioc_mmio_bench(struct dmacopy_dev *dd, void __user *argp)
{
	struct dmacopy_mmio_bench m;
	ktime_t t0;
	u32 i, v = 0;

	if (copy_from_user(&m, argp, sizeof(m)))
		return -EFAULT;
	if (!m.count || m.count > DMACOPY_MMIO_BENCH_MAX ||
	    m.offset >= DMACOPY_BAR0_BYTES || m.offset % 4)
		return -EINVAL;

	t0 = ktime_get();
	for (i = 0; i < m.count; i++) {
		v = readl(dd->bar0 + m.offset);
		if (!(i & 4095) && i) {
			if (READ_ONCE(dd->dying))
				return -ENODEV;
			if (fatal_signal_pending(current))
				return -EINTR;
			cond_resched();
		}
	}
	m.elapsed_ns = ktime_to_ns(ktime_sub(ktime_get(), t0));
	m.last_value = v;
	return copy_to_user(argp, &m, sizeof(m)) ? -EFAULT : 0;
}

static long dmacopy_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct dmacopy_dev *dd = file->private_data;
	void __user *argp = (void __user *)arg;
	long ret;

	if (mutex_lock_interruptible(&dd->lock))
		return -ERESTARTSYS;
	if (cmd == DMACOPY_IOC_STATS) {
		ret = dmacopy_ioc_stats(dd, argp);
		goto out;
	}
	ret = dmacopy_ready(dd);
	if (ret)
		goto out;

	switch (cmd) {
	case DMACOPY_IOC_COPY:
		ret = dmacopy_ioc_copy(dd, argp);
		break;
	case DMACOPY_IOC_BATCH:
		ret = dmacopy_ioc_batch(dd, argp);
		break;
	case DMACOPY_IOC_REG_READ:
		ret = dmacopy_ioc_reg(dd, argp, false);
		break;
	case DMACOPY_IOC_REG_WRITE:
		ret = dmacopy_ioc_reg(dd, argp, true);
		break;
	case DMACOPY_IOC_RESET:
		ret = dmacopy_hw_reset(dd);
		if (ret)
			dd->needs_reset = true;
		break;
	case DMACOPY_IOC_ERRTEST:
		ret = dmacopy_ioc_errtest(dd, argp);
		break;
	case DMACOPY_IOC_POLLBUSY:
		ret = dmacopy_ioc_pollbusy(dd, argp);
		break;
	case DMACOPY_IOC_RESETMID:
		ret = dmacopy_ioc_resetmid(dd, argp);
		break;
	case DMACOPY_IOC_MMIO_BENCH:
		ret = dmacopy_ioc_mmio_bench(dd, argp);
		break;
	default:
		ret = -ENOTTY;
		break;
	}
out:
	mutex_unlock(&dd->lock);
	return ret;
}

static int dmacopy_open(struct inode *inode, struct file *file)
{
	/* misc_open() set private_data to our miscdevice and holds misc_mtx. */
	struct dmacopy_dev *dd = container_of(file->private_data,
					      struct dmacopy_dev, misc);

	kref_get(&dd->ref);
	file->private_data = dd;
	return 0;
}

static int dmacopy_release_file(struct inode *inode, struct file *file)
{
	struct dmacopy_dev *dd = file->private_data;

	kref_put(&dd->ref, dmacopy_release);
	return 0;
}

static const struct file_operations dmacopy_fops = {
	.owner = THIS_MODULE,
	.open = dmacopy_open,
	.release = dmacopy_release_file,
	.unlocked_ioctl = dmacopy_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = dmacopy_mmap,
	.llseek = noop_llseek,
};

/* ---- probe / remove -------------------------------------------------------- */

static void dmacopy_free_dma(struct dmacopy_dev *dd)
{
	struct device *dev = &dd->pdev->dev;

	mutex_lock(&dd->map_lock);
	if (dd->map_ready) {
		dma_unmap_page(dev, dd->map_bus, DMACOPY_MAP_BYTES, DMA_BIDIRECTIONAL);
		/* Pages still mapped by a process live on until it unmaps them. */
		for (unsigned int i = 0; i < ARRAY_SIZE(dd->map_pages); i++)
			put_page(dd->map_pages[i]);
		dd->map_ready = false;
	}
	mutex_unlock(&dd->map_lock);
	if (dd->dst_buf)
		dma_free_coherent(dev, DMACOPY_BUF_BYTES, dd->dst_buf, dd->dst_bus);
	if (dd->src_buf)
		dma_free_coherent(dev, DMACOPY_BUF_BYTES, dd->src_buf, dd->src_bus);
	if (dd->ring)
		dma_free_coherent(dev, dd->ring_size * sizeof(*dd->ring),
				  dd->ring, dd->ring_bus);
	dd->dst_buf = NULL;
	dd->src_buf = NULL;
	dd->ring = NULL;
}

static int dmacopy_alloc_dma(struct dmacopy_dev *dd)
{
	struct device *dev = &dd->pdev->dev;

	dd->ring = dma_alloc_coherent(dev, dd->ring_size * sizeof(*dd->ring),
				      &dd->ring_bus, GFP_KERNEL);
	dd->src_buf = dma_alloc_coherent(dev, DMACOPY_BUF_BYTES, &dd->src_bus, GFP_KERNEL);
	dd->dst_buf = dma_alloc_coherent(dev, DMACOPY_BUF_BYTES, &dd->dst_bus, GFP_KERNEL);
	if (!dd->ring || !dd->src_buf || !dd->dst_buf) {
		dmacopy_free_dma(dd);
		return -ENOMEM;
	}
	/* Coherent allocations are page aligned; the device needs 64 bytes. */
	if (dd->ring_bus & 63) {
		dev_err(dev, "ring at %pad is not 64-byte aligned\n", &dd->ring_bus);
		dmacopy_free_dma(dd);
		return -EINVAL;
	}
	return 0;
}

static int dmacopy_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct dmacopy_dev *dd;
	u32 dev_id;
	int ret;

	if (ring_size < 2 || ring_size > DMACOPY_MAX_RING_SIZE || !is_power_of_2(ring_size)) {
		dev_err(&pdev->dev, "ring_size %u: must be a power of two from 2 to %u\n",
			ring_size, DMACOPY_MAX_RING_SIZE);
		return -EINVAL;
	}

	dd = kzalloc(sizeof(*dd), GFP_KERNEL);
	if (!dd)
		return -ENOMEM;
	kref_init(&dd->ref);
	dd->pdev = pdev;
	dd->ring_size = ring_size;
	mutex_init(&dd->lock);
	mutex_init(&dd->map_lock);
	init_waitqueue_head(&dd->wq);
	dd->minor_id = -1;
	pci_set_drvdata(pdev, dd);

	ret = pci_enable_device(pdev);
	if (ret) {
		dev_err(&pdev->dev, "pci_enable_device failed (%d)\n", ret);
		goto err_free;
	}
	ret = pci_request_regions(pdev, DRV_NAME);
	if (ret) {
		dev_err(&pdev->dev, "cannot claim BARs (%d)\n", ret);
		goto err_disable;
	}
	if (!(pci_resource_flags(pdev, 0) & IORESOURCE_MEM) ||
	    pci_resource_len(pdev, 0) < DMACOPY_BAR0_BYTES) {
		dev_err(&pdev->dev, "BAR0 is not a memory BAR of at least %u bytes\n",
			DMACOPY_BAR0_BYTES);
		ret = -ENODEV;
		goto err_regions;
	}
	dd->bar0 = pci_iomap(pdev, 0, DMACOPY_BAR0_BYTES);
	if (!dd->bar0) {
		dev_err(&pdev->dev, "cannot map BAR0\n");
		ret = -ENOMEM;
		goto err_regions;
	}

	dev_id = dc_read(dd, DMACOPY_REG_ID);
	if (dev_id != DMACOPY_ID_VALUE) {
		if (dev_id == U32_MAX)
			dev_err(&pdev->dev, "dmacopy: ID register reads 0x%08x (no device model attached?)\n",
				dev_id);
		else
			dev_err(&pdev->dev, "dmacopy: ID register reads 0x%08x, expected 0x%08x\n",
				dev_id, DMACOPY_ID_VALUE);
		ret = -ENODEV;
		goto err_unmap;
	}

	ret = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret) {
		dev_err(&pdev->dev, "no usable 64-bit DMA (%d)\n", ret);
		goto err_unmap;
	}
	pci_set_master(pdev);

	ret = dmacopy_alloc_dma(dd);
	if (ret) {
		dev_err(&pdev->dev, "cannot allocate ring and buffers (%d)\n", ret);
		goto err_master;
	}

	ret = ida_alloc(&dmacopy_ida, GFP_KERNEL);
	if (ret < 0)
		goto err_dma;
	dd->minor_id = ret;
	snprintf(dd->name, sizeof(dd->name), DRV_NAME "%d", dd->minor_id);

	ret = dmacopy_setup_irqs(dd);
	if (ret)
		goto err_ida;

	ret = dmacopy_hw_reset(dd);
	if (ret) {
		dev_err(&pdev->dev, "device reset failed (%d)\n", ret);
		goto err_irqs;
	}

	dd->misc.minor = MISC_DYNAMIC_MINOR;
	dd->misc.name = dd->name;
	dd->misc.fops = &dmacopy_fops;
	dd->misc.parent = &pdev->dev;
	dd->misc.mode = 0600;
	ret = misc_register(&dd->misc);
	if (ret) {
		dev_err(&pdev->dev, "misc_register failed (%d)\n", ret);
		goto err_hw;
	}
	dd->misc_registered = true;

	dev_info(&pdev->dev, "/dev/%s: ring %u descriptors at %pad, %s\n",
		 dd->name, dd->ring_size, &dd->ring_bus,
		 dd->irq_mode == DMACOPY_IRQ_MODE_MSIX ? "MSI-X" : "INTx");
	return 0;

err_hw:
	dc_write(dd, DMACOPY_REG_CTRL, 0);
err_irqs:
	dmacopy_free_irqs(dd);
err_ida:
	ida_free(&dmacopy_ida, dd->minor_id);
err_dma:
	dmacopy_free_dma(dd);
err_master:
	pci_clear_master(pdev);
err_unmap:
	pci_iounmap(pdev, dd->bar0);
err_regions:
	pci_release_regions(pdev);
err_disable:
	pci_disable_device(pdev);
err_free:
	pci_set_drvdata(pdev, NULL);
	kref_put(&dd->ref, dmacopy_release);
	return ret;
}

/* Stops the engine. A reset leaves the ring registers cleared. */
static void dmacopy_hw_stop(struct dmacopy_dev *dd)
{
	if (pci_device_is_present(dd->pdev)) {
		dc_write(dd, DMACOPY_REG_CTRL, DMACOPY_CTRL_RESET);
		dc_write(dd, DMACOPY_REG_IRQ_MASK, DMACOPY_IRQ_COMPLETION | DMACOPY_IRQ_ERROR);
	}
}

static void dmacopy_remove(struct pci_dev *pdev)
{
	struct dmacopy_dev *dd = pci_get_drvdata(pdev);

	/* Make waiters give up before taking the lock they hold. */
	WRITE_ONCE(dd->dying, true);
	wake_up_all(&dd->wq);
	if (dd->misc_registered)
		misc_deregister(&dd->misc);

	mutex_lock(&dd->lock);
	WRITE_ONCE(dd->gone, true);
	dmacopy_hw_stop(dd);
	dmacopy_free_irqs(dd);
	pci_clear_master(pdev);
	dmacopy_free_dma(dd);
	pci_iounmap(pdev, dd->bar0);
	dd->bar0 = NULL;
	mutex_unlock(&dd->lock);

	pci_release_regions(pdev);
	pci_disable_device(pdev);
	ida_free(&dmacopy_ida, dd->minor_id);
	dev_info(&pdev->dev, "removed /dev/%s\n", dd->name);
	pci_set_drvdata(pdev, NULL);
	kref_put(&dd->ref, dmacopy_release);
}

static void dmacopy_shutdown(struct pci_dev *pdev)
{
	struct dmacopy_dev *dd = pci_get_drvdata(pdev);

	if (!dd || !mutex_trylock(&dd->lock))
		return;
	if (!dd->gone)
		dmacopy_hw_stop(dd);
	mutex_unlock(&dd->lock);
	pci_clear_master(pdev);
}

static const struct pci_device_id dmacopy_ids[] = {
	{ PCI_DEVICE(DMACOPY_PCI_VENDOR_ID, DMACOPY_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, dmacopy_ids);

static struct pci_driver dmacopy_driver = {
	.name = DRV_NAME,
	.id_table = dmacopy_ids,
	.probe = dmacopy_probe,
	.remove = dmacopy_remove,
	.shutdown = dmacopy_shutdown,
};
module_pci_driver(dmacopy_driver);

MODULE_DESCRIPTION("Driver for the dmacopy example PCIe device");
MODULE_LICENSE("GPL");
