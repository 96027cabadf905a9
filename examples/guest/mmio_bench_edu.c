// SPDX-License-Identifier: GPL-2.0
/*
 * mmio_bench_edu.c - times guest MMIO reads on QEMU's built-in "edu" device.
 *
 * A baseline for the cost of one MMIO read that QEMU completes itself, to compare
 * with the same read on a tlpbridge-pci device (DMACOPY_IOC_MMIO_BENCH on
 * /dev/dmacopyN), where the read crosses the bridge to a model.
 * Binds to 1234:11e8 and creates /dev/edu-mmio-bench, which answers
 * DMACOPY_IOC_MMIO_BENCH only. Register 0x00 of edu is its ID (0x010000ed).
 */
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/ktime.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/sched/signal.h>
#include <linux/uaccess.h>

#include "dmacopy_ioctl.h"

#define DRV_NAME "mmio_bench_edu"
#define EDU_VENDOR_ID 0x1234
#define EDU_DEVICE_ID 0x11e8
#define EDU_BAR0_BYTES 0x100
#define EDU_BENCH_MAX 100000000u

struct edu_bench {
	struct pci_dev *pdev;
	void __iomem *bar0;
	struct miscdevice misc;
	struct mutex lock;	/* one benchmark at a time; also guards gone */
	bool gone;
};

/* One device is enough for a baseline: the first edu found gets the node. */
static struct edu_bench *edu_bench_dev;
static DEFINE_MUTEX(edu_bench_global);

static long edu_bench_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct edu_bench *eb;
	struct dmacopy_mmio_bench m;
	void __user *argp = (void __user *)arg;
	ktime_t t0;
	u32 i, v = 0;
	long ret = 0;

	if (cmd != DMACOPY_IOC_MMIO_BENCH)
		return -ENOTTY;
	if (copy_from_user(&m, argp, sizeof(m)))
		return -EFAULT;
	if (!m.count || m.count > EDU_BENCH_MAX ||
	    m.offset >= EDU_BAR0_BYTES || m.offset % 4)
		return -EINVAL;

	mutex_lock(&edu_bench_global);
	eb = edu_bench_dev;
	if (!eb || eb->gone) {
		ret = -ENODEV;
		goto out;
	}
	t0 = ktime_get();
	for (i = 0; i < m.count; i++) {
		v = readl(eb->bar0 + m.offset);
		if (!(i & 4095) && i) {
			if (fatal_signal_pending(current)) {
				ret = -EINTR;
				goto out;
			}
			cond_resched();
		}
	}
	m.elapsed_ns = ktime_to_ns(ktime_sub(ktime_get(), t0));
	m.last_value = v;
	if (copy_to_user(argp, &m, sizeof(m)))
		ret = -EFAULT;
out:
	mutex_unlock(&edu_bench_global);
	return ret;
}

static const struct file_operations edu_bench_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = edu_bench_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static int edu_bench_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct edu_bench *eb;
	int ret;

	mutex_lock(&edu_bench_global);
	if (edu_bench_dev) {
		mutex_unlock(&edu_bench_global);
		dev_info(&pdev->dev, "another edu device already benchmarked, skipping\n");
		return -EBUSY;
	}

	eb = devm_kzalloc(&pdev->dev, sizeof(*eb), GFP_KERNEL);
	if (!eb) {
		ret = -ENOMEM;
		goto err;
	}
	eb->pdev = pdev;
	ret = pcim_enable_device(pdev);
	if (ret)
		goto err;
	ret = pci_request_region(pdev, 0, DRV_NAME);
	if (ret)
		goto err;
	eb->bar0 = pci_iomap(pdev, 0, EDU_BAR0_BYTES);
	if (!eb->bar0) {
		pci_release_region(pdev, 0);
		ret = -ENOMEM;
		goto err;
	}

	eb->misc.minor = MISC_DYNAMIC_MINOR;
	eb->misc.name = "edu-mmio-bench";
	eb->misc.fops = &edu_bench_fops;
	eb->misc.parent = &pdev->dev;
	eb->misc.mode = 0600;
	ret = misc_register(&eb->misc);
	if (ret) {
		pci_iounmap(pdev, eb->bar0);
		pci_release_region(pdev, 0);
		goto err;
	}
	pci_set_drvdata(pdev, eb);
	edu_bench_dev = eb;
	mutex_unlock(&edu_bench_global);
	dev_info(&pdev->dev, "edu ID 0x%08x, /dev/edu-mmio-bench ready\n", readl(eb->bar0));
	return 0;
err:
	mutex_unlock(&edu_bench_global);
	return ret;
}

static void edu_bench_remove(struct pci_dev *pdev)
{
	struct edu_bench *eb = pci_get_drvdata(pdev);

	misc_deregister(&eb->misc);
	mutex_lock(&edu_bench_global);
	eb->gone = true;
	edu_bench_dev = NULL;
	pci_iounmap(pdev, eb->bar0);
	pci_release_region(pdev, 0);
	mutex_unlock(&edu_bench_global);
}

static const struct pci_device_id edu_bench_ids[] = {
	{ PCI_DEVICE(EDU_VENDOR_ID, EDU_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, edu_bench_ids);

static struct pci_driver edu_bench_driver = {
	.name = DRV_NAME,
	.id_table = edu_bench_ids,
	.probe = edu_bench_probe,
	.remove = edu_bench_remove,
};
module_pci_driver(edu_bench_driver);

MODULE_DESCRIPTION("MMIO read timing on QEMU's edu device");
MODULE_LICENSE("GPL");
