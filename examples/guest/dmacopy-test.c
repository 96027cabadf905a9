// SPDX-License-Identifier: MIT
/*
 * dmacopy-test - guest-side test suite for the dmacopy device and its driver.
 *
 * Runs inside the guest against /dev/dmacopyN (examples/dmacopy/linux) and the
 * device's sysfs node. Prints one line per case:
 *     TEST <name> PASS
 *     TEST <name> FAIL <reason>
 * then "RESULT <n> passed, <m> failed". Benchmarks print "BENCH <key> <value>".
 * Exit status: 0 when every case passed, 1 otherwise, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "dmacopy_ioctl.h"

_Static_assert(sizeof(struct dmacopy_copy) == 72, "dmacopy_copy layout");
_Static_assert(sizeof(struct dmacopy_batch) == 64, "dmacopy_batch layout");
_Static_assert(sizeof(struct dmacopy_errtest) == 56, "dmacopy_errtest layout");
_Static_assert(sizeof(struct dmacopy_pollbusy) == 56, "dmacopy_pollbusy layout");
_Static_assert(sizeof(struct dmacopy_stats) == 96, "dmacopy_stats layout");

#define REASON_LEN 512
/* What destinations hold before a copy (not the driver's DMACOPY_POISON). */
#define DMACOPY_TEST_POISON 0xa5

/* IORESOURCE_* flags as printed in sysfs "resource" (include/linux/ioport.h). */
#define IORESOURCE_MEM		0x00000200
#define IORESOURCE_PREFETCH	0x00002000
#define IORESOURCE_MEM_64	0x00100000

#define PCI_CAP_ID_EXP		0x10
#define PCI_CAP_ID_MSIX		0x11

struct ctx {
	const char *node;		/* /dev/dmacopyN */
	int fd;				/* -1 when the node could not be opened */
	int open_errno;
	char sysfs[PATH_MAX];		/* /sys/bus/pci/devices/DBDF, "" if not found */
	bool intx;			/* --intx: the driver is expected in INTx mode */
	bool verbose;
	uint32_t big_copy;		/* --big-copy: size of the "1 MiB" copies */
	struct dmacopy_stats stats;	/* as read at start */
};

/* ---- CRC-32 (IEEE 802.3, reflected, as zlib's crc32) ------------------------- */

static uint32_t crc_table[256];

static void crc32_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32_ieee(const uint8_t *p, size_t len)
{
	uint32_t c = 0xffffffffu;

	while (len--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

/* ---- helpers --------------------------------------------------------------------- */

static int fail(char *reason, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, REASON_LEN, fmt, ap);
	va_end(ap);
	return -1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 12345u;

	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "dmacopy-test: out of memory (%zu bytes)\n", n);
		exit(2);
	}
	return p;
}

static int need_dev(struct ctx *c, char *reason)
{
	if (c->fd >= 0)
		return 0;
	return fail(reason, "cannot open %s: %s (driver not loaded or no device)",
		    c->node, strerror(c->open_errno));
}

static int reg_read(struct ctx *c, uint32_t off, uint32_t size, uint32_t *val)
{
	struct dmacopy_reg r = { .offset = off, .size = size };
	int ret = ioctl(c->fd, DMACOPY_IOC_REG_READ, &r) ? -1 : 0;

	*val = ret ? UINT32_MAX : r.value;
	return ret;
}

static int reg_write(struct ctx *c, uint32_t off, uint32_t size, uint32_t val)
{
	struct dmacopy_reg r = { .offset = off, .size = size, .value = val };

	return ioctl(c->fd, DMACOPY_IOC_REG_WRITE, &r) ? -errno : 0;
}

static int get_stats(struct ctx *c, struct dmacopy_stats *s, char *reason)
{
	if (ioctl(c->fd, DMACOPY_IOC_STATS, s))
		return fail(reason, "STATS ioctl: %s", strerror(errno));
	return 0;
}

static const char *irq_mode_name(uint32_t mode)
{
	switch (mode) {
	case DMACOPY_IRQ_MODE_MSIX:
		return "MSI-X";
	case DMACOPY_IRQ_MODE_INTX:
		return "INTx";
	default:
		return "none";
	}
}

/* Compares a copy's output with its input; names the first differing byte. */
static int check_data(const uint8_t *src, const uint8_t *dst, size_t len,
		      uint32_t dev_crc, const char *what, char *reason)
{
	uint32_t want = crc32_ieee(src, len);

	if (memcmp(src, dst, len)) {
		size_t i = 0;

		while (src[i] == dst[i])
			i++;
		return fail(reason, "%s: data differs at byte %zu of %zu (0x%02x, want 0x%02x)",
			    what, i, len, dst[i], src[i]);
	}
	if (dev_crc != want)
		return fail(reason, "%s: device CRC 0x%08x, want 0x%08x", what, dev_crc, want);
	return 0;
}

/* One copy of len pattern bytes; checks status, data and CRC. */
static int run_copy(struct ctx *c, uint32_t len, uint32_t src_off, uint32_t dst_off,
		    uint32_t flags, uint32_t seed, struct dmacopy_copy *out, char *reason)
{
	struct dmacopy_copy cp;
	uint8_t *src = xmalloc(len), *dst = xmalloc(len);
	char what[96];
	int ret;

	fill_pattern(src, len, seed);
	memset(dst, 0, len);
	memset(&cp, 0, sizeof(cp));
	cp.src = (uintptr_t)src;
	cp.dst = (uintptr_t)dst;
	cp.len = len;
	cp.flags = flags;
	cp.src_off = src_off;
	cp.dst_off = dst_off;
	snprintf(what, sizeof(what), "copy len %u src_off %u dst_off %u%s", len,
		 src_off, dst_off, (flags & DMACOPY_COPY_IRQ) ? " irq" : "");

	ret = ioctl(c->fd, DMACOPY_IOC_COPY, &cp);
	if (ret) {
		int e = errno;

		if (e == EIO)
			ret = fail(reason, "%s: device stopped, ERR_CODE %u, desc status 0x%x",
				   what, cp.err_code, cp.desc_status);
		else if (e == ETIMEDOUT)
			ret = fail(reason, "%s: not completed within the driver's timeout_ms (%u)",
				   what, c->stats.timeout_ms);
		else
			ret = fail(reason, "%s: %s", what, strerror(e));
	} else if (!(cp.desc_status & DMACOPY_DESC_DONE) || DMACOPY_DESC_ERR(cp.desc_status)) {
		ret = fail(reason, "%s: descriptor status 0x%x", what, cp.desc_status);
	} else {
		ret = check_data(src, dst, len, cp.crc, what, reason);
	}
	if (out)
		*out = cp;
	free(src);
	free(dst);
	return ret;
}

/* ---- sysfs ------------------------------------------------------------------------ */

static int read_sysfs_ulong(const char *dir, const char *file, unsigned long *val)
{
	char path[PATH_MAX + 64], buf[64];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	*val = strtoul(buf, NULL, 0);
	return 0;
}

/* The PCI function behind the misc node, or the first 1234:7a11 on the bus. */
static void find_sysfs(struct ctx *c)
{
	char link[PATH_MAX], *real;
	const char *base = strrchr(c->node, '/');
	DIR *d;
	struct dirent *de;

	c->sysfs[0] = 0;
	snprintf(link, sizeof(link), "/sys/class/misc/%s/device", base ? base + 1 : c->node);
	real = realpath(link, NULL);
	if (real) {
		snprintf(c->sysfs, sizeof(c->sysfs), "%s", real);
		free(real);
		return;
	}
	d = opendir("/sys/bus/pci/devices");
	if (!d)
		return;
	while ((de = readdir(d))) {
		char dir[PATH_MAX];
		unsigned long vendor, device;

		if (de->d_name[0] == '.')
			continue;
		snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s", de->d_name);
		if (read_sysfs_ulong(dir, "vendor", &vendor) ||
		    read_sysfs_ulong(dir, "device", &device))
			continue;
		if (vendor == DMACOPY_PCI_VENDOR_ID && device == DMACOPY_PCI_DEVICE_ID &&
		    (!c->sysfs[0] || strcmp(dir, c->sysfs) < 0))
			snprintf(c->sysfs, sizeof(c->sysfs), "%s", dir);
	}
	closedir(d);
}

/* Reads up to 4096 bytes of config space (256 without privileges). */
static int read_config(const struct ctx *c, uint8_t *cfg, size_t *len)
{
	char path[PATH_MAX + 16];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/config", c->sysfs);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = pread(fd, cfg, 4096, 0);
	close(fd);
	if (n < 64)
		return -1;
	*len = (size_t)n;
	return 0;
}

static uint16_t cfg16(const uint8_t *cfg, size_t off)
{
	return (uint16_t)(cfg[off] | cfg[off + 1] << 8);
}

static uint32_t cfg32(const uint8_t *cfg, size_t off)
{
	return (uint32_t)cfg16(cfg, off) | (uint32_t)cfg16(cfg, off + 2) << 16;
}

/* Offset of a standard capability, 0 if absent. */
static size_t find_cap(const uint8_t *cfg, size_t len, uint8_t id)
{
	size_t off;
	int guard = 48;

	if (!(cfg16(cfg, 0x06) & 0x10))
		return 0;
	off = cfg[0x34] & 0xfc;
	while (off >= 0x40 && off + 2 <= len && off < 256 && guard--) {
		if (cfg[off] == id)
			return off;
		off = cfg[off + 1] & 0xfc;
	}
	return 0;
}

static int msix_enabled(const struct ctx *c, bool *enabled, char *reason)
{
	uint8_t cfg[4096];
	size_t len, cap;

	if (!c->sysfs[0] || read_config(c, cfg, &len))
		return fail(reason, "cannot read config space of the device");
	cap = find_cap(cfg, len, PCI_CAP_ID_MSIX);
	if (!cap)
		return fail(reason, "no MSI-X capability");
	*enabled = cfg16(cfg, cap + 2) & 0x8000;
	return 0;
}

/* ---- test cases -------------------------------------------------------------------- */

static int t_enumeration(struct ctx *c, char *reason)
{
	unsigned long vendor, device, revision, class;
	char path[PATH_MAX + 32], line[256], drv[PATH_MAX];
	unsigned long long start[6] = { 0 }, end[6] = { 0 }, flags[6] = { 0 };
	uint8_t cfg[4096];
	size_t cfglen, cap;
	FILE *f;
	ssize_t n;
	int bar;

	if (!c->sysfs[0])
		return fail(reason, "no PCI device %04x:%04x found in /sys/bus/pci/devices",
			    DMACOPY_PCI_VENDOR_ID, DMACOPY_PCI_DEVICE_ID);
	if (read_sysfs_ulong(c->sysfs, "vendor", &vendor) ||
	    read_sysfs_ulong(c->sysfs, "device", &device) ||
	    read_sysfs_ulong(c->sysfs, "revision", &revision) ||
	    read_sysfs_ulong(c->sysfs, "class", &class))
		return fail(reason, "cannot read IDs from %s", c->sysfs);
	if (vendor != DMACOPY_PCI_VENDOR_ID || device != DMACOPY_PCI_DEVICE_ID)
		return fail(reason, "IDs %04lx:%04lx", vendor, device);
	if (revision != 1)
		return fail(reason, "revision %lu, want 1", revision);
	if (class != 0x088000)
		return fail(reason, "class 0x%06lx, want 0x088000", class);

	snprintf(path, sizeof(path), "%s/resource", c->sysfs);
	f = fopen(path, "r");
	if (!f)
		return fail(reason, "cannot open %s", path);
	for (bar = 0; bar < 6 && fgets(line, sizeof(line), f); bar++)
		sscanf(line, "%llx %llx %llx", &start[bar], &end[bar], &flags[bar]);
	fclose(f);
	for (bar = 0; bar <= 2; bar += 2) {
		unsigned long long size = end[bar] ? end[bar] - start[bar] + 1 : 0;

		if (size != 4096)
			return fail(reason, "BAR%d size %llu, want 4096", bar, size);
		if (!(flags[bar] & IORESOURCE_MEM) || (flags[bar] & IORESOURCE_PREFETCH) ||
		    (flags[bar] & IORESOURCE_MEM_64))
			return fail(reason, "BAR%d flags 0x%llx: want 32-bit non-prefetchable memory",
				    bar, flags[bar]);
	}
	if (end[1] || end[3] || end[4] || end[5])
		return fail(reason, "unexpected BAR1/3/4/5 present");

	if (read_config(c, cfg, &cfglen))
		return fail(reason, "cannot read %s/config", c->sysfs);
	if (cfg16(cfg, 0) != DMACOPY_PCI_VENDOR_ID || cfg16(cfg, 2) != DMACOPY_PCI_DEVICE_ID)
		return fail(reason, "config space IDs %04x:%04x", cfg16(cfg, 0), cfg16(cfg, 2));
	if (cfg[0x3d] != 1)
		return fail(reason, "interrupt pin %u, want 1 (INTA)", cfg[0x3d]);
	if (!find_cap(cfg, cfglen, PCI_CAP_ID_EXP))
		return fail(reason, "no PCI Express capability");
	cap = find_cap(cfg, cfglen, PCI_CAP_ID_MSIX);
	if (!cap)
		return fail(reason, "no MSI-X capability");
	if ((cfg16(cfg, cap + 2) & 0x7ff) + 1 != 2)
		return fail(reason, "MSI-X table size %u, want 2", (cfg16(cfg, cap + 2) & 0x7ff) + 1);
	if (cfg32(cfg, cap + 4) != 2)
		return fail(reason, "MSI-X table at BIR %u offset 0x%x, want BAR2 offset 0",
			    cfg32(cfg, cap + 4) & 7, cfg32(cfg, cap + 4) & ~7u);
	if (cfg32(cfg, cap + 8) != (0x800 | 2))
		return fail(reason, "MSI-X PBA at BIR %u offset 0x%x, want BAR2 offset 0x800",
			    cfg32(cfg, cap + 8) & 7, cfg32(cfg, cap + 8) & ~7u);

	snprintf(path, sizeof(path), "%s/driver", c->sysfs);
	n = readlink(path, drv, sizeof(drv) - 1);
	if (n < 0)
		return fail(reason, "no driver bound to %s", c->sysfs);
	drv[n] = 0;
	if (strcmp(strrchr(drv, '/') ? strrchr(drv, '/') + 1 : drv, "dmacopy"))
		return fail(reason, "bound to driver %s, not dmacopy", drv);
	if (need_dev(c, reason))
		return -1;
	return 0;
}

static int t_scratch_4(struct ctx *c, char *reason)
{
	static const uint32_t vals[] = { 0xa5a55a5a, 0x12345678, 0xffffffff, 0, 0x80000001 };
	uint32_t v;

	if (need_dev(c, reason))
		return -1;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		if (reg_write(c, DMACOPY_REG_SCRATCH, 4, vals[i]) ||
		    reg_read(c, DMACOPY_REG_SCRATCH, 4, &v))
			return fail(reason, "register ioctl: %s", strerror(errno));
		if (v != vals[i])
			return fail(reason, "wrote 0x%08x, read 0x%08x", vals[i], v);
	}
	if (reg_read(c, DMACOPY_REG_ID, 4, &v) || v != DMACOPY_ID_VALUE)
		return fail(reason, "ID reads 0x%08x", v);
	return 0;
}

static int t_scratch_2(struct ctx *c, char *reason)
{
	uint32_t v, lo, hi;

	if (need_dev(c, reason))
		return -1;
	if (reg_write(c, DMACOPY_REG_SCRATCH, 4, 0) ||
	    reg_write(c, DMACOPY_REG_SCRATCH, 2, 0xbeef) ||
	    reg_write(c, DMACOPY_REG_SCRATCH + 2, 2, 0xdead) ||
	    reg_read(c, DMACOPY_REG_SCRATCH, 4, &v) ||
	    reg_read(c, DMACOPY_REG_SCRATCH, 2, &lo) ||
	    reg_read(c, DMACOPY_REG_SCRATCH + 2, 2, &hi))
		return fail(reason, "register ioctl: %s", strerror(errno));
	if (v != 0xdeadbeef)
		return fail(reason, "16-bit writes 0xbeef@+0 0xdead@+2, 32-bit read 0x%08x", v);
	if (lo != 0xbeef || hi != 0xdead)
		return fail(reason, "16-bit reads 0x%04x@+0 0x%04x@+2, want 0xbeef 0xdead", lo, hi);
	/* A 16-bit write must leave the other half alone. */
	if (reg_write(c, DMACOPY_REG_SCRATCH + 2, 2, 0x1234) ||
	    reg_read(c, DMACOPY_REG_SCRATCH, 4, &v))
		return fail(reason, "register ioctl: %s", strerror(errno));
	if (v != 0x1234beef)
		return fail(reason, "after 0x1234@+2, 32-bit read 0x%08x, want 0x1234beef", v);
	return 0;
}

static int t_scratch_1(struct ctx *c, char *reason)
{
	uint32_t v, b;

	if (need_dev(c, reason))
		return -1;
	if (reg_write(c, DMACOPY_REG_SCRATCH, 4, 0xffffffff))
		return fail(reason, "register ioctl: %s", strerror(errno));
	for (uint32_t i = 0; i < 4; i++)
		if (reg_write(c, DMACOPY_REG_SCRATCH + i, 1, 0x11 * (i + 1)))
			return fail(reason, "register ioctl: %s", strerror(errno));
	if (reg_read(c, DMACOPY_REG_SCRATCH, 4, &v))
		return fail(reason, "register ioctl: %s", strerror(errno));
	if (v != 0x44332211)
		return fail(reason, "8-bit writes 11 22 33 44, 32-bit read 0x%08x", v);
	for (uint32_t i = 0; i < 4; i++) {
		if (reg_read(c, DMACOPY_REG_SCRATCH + i, 1, &b))
			return fail(reason, "register ioctl: %s", strerror(errno));
		if (b != 0x11 * (i + 1))
			return fail(reason, "8-bit read at +%u: 0x%02x, want 0x%02x", i, b, 0x11 * (i + 1));
	}
	if (reg_write(c, DMACOPY_REG_SCRATCH + 2, 1, 0xa5) ||
	    reg_read(c, DMACOPY_REG_SCRATCH, 4, &v))
		return fail(reason, "register ioctl: %s", strerror(errno));
	if (v != 0x44a52211)
		return fail(reason, "after 0xa5@+2, 32-bit read 0x%08x, want 0x44a52211", v);
	return 0;
}

static int t_copy_1(struct ctx *c, char *reason)
{
	if (need_dev(c, reason))
		return -1;
	if (run_copy(c, 1, 0, 0, DMACOPY_COPY_IRQ, 1, NULL, reason))
		return -1;
	if (run_copy(c, 1, 5, 9, 0, 2, NULL, reason))
		return -1;
	return 0;
}

static int t_copy_odd(struct ctx *c, char *reason)
{
	static const uint32_t lens[] = { 3, 7, 61, 1023, 4097, 65537, 999999 };

	if (need_dev(c, reason))
		return -1;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		if (run_copy(c, lens[i], 1 + (uint32_t)i, 3 + 2 * (uint32_t)i,
			     DMACOPY_COPY_IRQ, 10 + (uint32_t)i, NULL, reason))
			return -1;
	return 0;
}

static int t_copy_4k_cross(struct ctx *c, char *reason)
{
	static const uint32_t cases[][3] = {	/* src_off, dst_off, len */
		{ 4090, 4093, 16 },
		{ 4095, 1, 2 },
		{ 1, 4095, 2 },
		{ 4000, 4000, 8192 },
		{ 100, 3000, 4096 * 3 + 5 },
		{ 4095, 4095, 4098 },
		{ 2048, 6000, 65536 },
	};

	if (need_dev(c, reason))
		return -1;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (run_copy(c, cases[i][2], cases[i][0], cases[i][1],
			     DMACOPY_COPY_IRQ, 20 + (uint32_t)i, NULL, reason))
			return -1;
	return 0;
}

static int t_copy_1m(struct ctx *c, char *reason)
{
	if (need_dev(c, reason))
		return -1;
	if (run_copy(c, c->big_copy, 0, 0, DMACOPY_COPY_IRQ, 30, NULL, reason))
		return -1;
	if (run_copy(c, c->big_copy, 4095, 13, DMACOPY_COPY_IRQ, 31, NULL, reason))
		return -1;
	return 0;
}

static int t_ring_wrap(struct ctx *c, char *reason)
{
	struct dmacopy_stats s;
	struct dmacopy_copy cp;
	uint32_t before, after, head, n, prev = UINT32_MAX;
	bool wrapped = false;

	if (need_dev(c, reason) || get_stats(c, &s, reason))
		return -1;
	if (reg_read(c, DMACOPY_REG_COMPLETED, 4, &before))
		return fail(reason, "register ioctl: %s", strerror(errno));
	n = s.ring_size + s.ring_size / 2 + 3;
	for (uint32_t i = 0; i < n; i++) {
		if (run_copy(c, 1 + (i * 37) % 512, i % 64, (i * 3) % 64,
			     DMACOPY_COPY_IRQ, 100 + i, &cp, reason)) {
			char tmp[REASON_LEN];

			snprintf(tmp, sizeof(tmp), "%s", reason);
			return fail(reason, "copy %u of %u (ring slot %u): %s", i, n,
				    cp.ring_index, tmp);
		}
		if (prev != UINT32_MAX && cp.ring_index != (prev + 1) % s.ring_size)
			return fail(reason, "copy %u used ring slot %u after %u", i,
				    cp.ring_index, prev);
		if (prev == s.ring_size - 1 && cp.ring_index == 0)
			wrapped = true;
		prev = cp.ring_index;
	}
	if (!wrapped)
		return fail(reason, "ring of %u never wrapped in %u copies", s.ring_size, n);
	if (reg_read(c, DMACOPY_REG_COMPLETED, 4, &after) ||
	    reg_read(c, DMACOPY_REG_HEAD, 4, &head) || get_stats(c, &s, reason))
		return fail(reason, "register ioctl: %s", strerror(errno));
	if (after - before != n)
		return fail(reason, "COMPLETED advanced by %u, want %u", after - before, n);
	if (head != s.tail)
		return fail(reason, "HEAD %u, driver tail %u", head, s.tail);
	return 0;
}

static int t_batch(struct ctx *c, char *reason)
{
	struct dmacopy_stats s0, s1;
	struct dmacopy_batch b;
	struct dmacopy_result *res;
	uint32_t *lens, count, maxl, before, after;
	uint8_t *src, *dst;
	size_t total = 0, off = 0;
	int ret = -1;

	if (need_dev(c, reason) || get_stats(c, &s0, reason))
		return -1;
	/* Start at slot 2 or later so that ring_size-1 descriptors must wrap. */
	while (s0.ring_size > 2 && s0.tail < 2) {
		if (run_copy(c, 64, 0, 0, 0, 200 + s0.tail, NULL, reason) ||
		    get_stats(c, &s0, reason))
			return -1;
	}
	count = s0.ring_size - 1;
	maxl = s0.buf_bytes / count;
	if (maxl > 2048)
		maxl = 2048;
	lens = xmalloc(count * sizeof(*lens));
	res = xmalloc(count * sizeof(*res));
	for (uint32_t i = 0; i < count; i++) {
		lens[i] = 1 + (i * 131) % maxl;
		total += lens[i];
	}
	src = xmalloc(total);
	dst = xmalloc(total);
	fill_pattern(src, total, 300);
	memset(dst, 0, total);
	memset(res, 0, count * sizeof(*res));

	if (get_stats(c, &s0, reason))
		goto out;
	if (reg_read(c, DMACOPY_REG_COMPLETED, 4, &before)) {
		fail(reason, "register ioctl: %s", strerror(errno));
		goto out;
	}
	memset(&b, 0, sizeof(b));
	b.src = (uintptr_t)src;
	b.dst = (uintptr_t)dst;
	b.lens = (uintptr_t)lens;
	b.results = (uintptr_t)res;
	b.count = count;
	b.flags = DMACOPY_COPY_IRQ;
	if (ioctl(c->fd, DMACOPY_IOC_BATCH, &b)) {
		fail(reason, "BATCH of %u: %s (ERR_CODE %u, %u done)", count, strerror(errno),
		     b.err_code, b.completed);
		goto out;
	}
	if (b.completed != count) {
		fail(reason, "%u of %u descriptors DONE", b.completed, count);
		goto out;
	}
	if (s0.ring_size > 2 && b.first_index + count <= s0.ring_size) {
		fail(reason, "batch at slot %u of %u did not wrap", b.first_index, s0.ring_size);
		goto out;
	}
	for (uint32_t i = 0; i < count; off += lens[i], i++) {
		char what[64];

		if (!(res[i].desc_status & DMACOPY_DESC_DONE) ||
		    DMACOPY_DESC_ERR(res[i].desc_status)) {
			fail(reason, "descriptor %u status 0x%x", i, res[i].desc_status);
			goto out;
		}
		snprintf(what, sizeof(what), "descriptor %u of %u (len %u)", i, count, lens[i]);
		if (check_data(src + off, dst + off, lens[i], res[i].crc, what, reason))
			goto out;
	}
	if (reg_read(c, DMACOPY_REG_COMPLETED, 4, &after) || get_stats(c, &s1, reason)) {
		fail(reason, "register ioctl: %s", strerror(errno));
		goto out;
	}
	if (after - before != count) {
		fail(reason, "COMPLETED advanced by %u, want %u", after - before, count);
		goto out;
	}
	if (s1.done_irqs - s0.done_irqs != 1) {
		fail(reason, "%" PRIu64 " completion interrupts for one IRQ descriptor",
		     (uint64_t)(s1.done_irqs - s0.done_irqs));
		goto out;
	}
	if (c->verbose)
		printf("INFO batch %u descriptors %zu bytes in %" PRIu64 " ns\n", count, total,
		       (uint64_t)b.elapsed_ns);
	ret = 0;
out:
	free(lens);
	free(res);
	free(src);
	free(dst);
	return ret;
}

/* Completion interrupts: count per vector, and none when not asked for. */
static int check_completion_irqs(struct ctx *c, uint32_t want_mode, char *reason)
{
	struct dmacopy_stats s0, s1;
	bool msix_on;

	if (need_dev(c, reason) || get_stats(c, &s0, reason))
		return -1;
	if (s0.irq_mode != want_mode)
		return fail(reason, "driver uses %s, want %s", irq_mode_name(s0.irq_mode),
			    irq_mode_name(want_mode));
	if (msix_enabled(c, &msix_on, reason))
		return -1;
	if (msix_on != (want_mode == DMACOPY_IRQ_MODE_MSIX))
		return fail(reason, "MSI-X enable bit is %d in %s mode", msix_on,
			    irq_mode_name(want_mode));
	for (uint32_t i = 0; i < 4; i++)
		if (run_copy(c, 512 + i, 0, 0, DMACOPY_COPY_IRQ, 400 + i, NULL, reason))
			return -1;
	if (run_copy(c, 256, 0, 0, 0, 404, NULL, reason))
		return -1;
	usleep(20000);
	if (get_stats(c, &s1, reason))
		return -1;
	if (s1.done_irqs - s0.done_irqs != 4)
		return fail(reason, "%" PRIu64 " completion interrupts for 4 IRQ copies and 1 without",
			    (uint64_t)(s1.done_irqs - s0.done_irqs));
	if (s1.err_irqs != s0.err_irqs)
		return fail(reason, "error interrupt during good copies");
	if (want_mode == DMACOPY_IRQ_MODE_MSIX) {
		if (s1.vec_irqs[0] - s0.vec_irqs[0] != 4)
			return fail(reason, "vector 0 fired %" PRIu64 " times, want 4",
				    (uint64_t)(s1.vec_irqs[0] - s0.vec_irqs[0]));
		if (s1.vec_irqs[1] != s0.vec_irqs[1])
			return fail(reason, "vector 1 fired on good copies");
		if (s1.intx_irqs != s0.intx_irqs)
			return fail(reason, "INTx handled in MSI-X mode");
	} else {
		if (s1.intx_irqs - s0.intx_irqs < 4)
			return fail(reason, "INTx handled %" PRIu64 " times, want 4",
				    (uint64_t)(s1.intx_irqs - s0.intx_irqs));
		if (s1.vec_irqs[0] != s0.vec_irqs[0] || s1.vec_irqs[1] != s0.vec_irqs[1])
			return fail(reason, "MSI-X vector counted in INTx mode");
	}
	return 0;
}

static int t_msix(struct ctx *c, char *reason)
{
	return check_completion_irqs(c, DMACOPY_IRQ_MODE_MSIX, reason);
}

static int t_intx(struct ctx *c, char *reason)
{
	uint8_t cfg[4096];
	size_t len;

	if (check_completion_irqs(c, DMACOPY_IRQ_MODE_INTX, reason))
		return -1;
	/* Command register bit 10 (INTx disable) must be clear. */
	if (read_config(c, cfg, &len))
		return fail(reason, "cannot read config space");
	if (cfg16(cfg, 0x04) & 0x400)
		return fail(reason, "INTx disable bit set in COMMAND (0x%04x)", cfg16(cfg, 0x04));
	return 0;
}

static int t_irq_masked(struct ctx *c, char *reason)
{
	struct dmacopy_stats s0, s1;
	uint32_t mask, irq_status = 0;
	int ret = -1;

	if (need_dev(c, reason) || get_stats(c, &s0, reason))
		return -1;
	if (reg_write(c, DMACOPY_REG_IRQ_MASK, 4, DMACOPY_IRQ_COMPLETION) ||
	    reg_read(c, DMACOPY_REG_IRQ_MASK, 4, &mask))
		return fail(reason, "register ioctl: %s", strerror(errno));
	if (mask != DMACOPY_IRQ_COMPLETION) {
		fail(reason, "IRQ_MASK reads 0x%x after writing 0x1", mask);
		goto out;
	}
	/* The descriptor asks for an interrupt; the driver polls for DONE. */
	if (run_copy(c, 4096, 0, 0, DMACOPY_COPY_IRQ | DMACOPY_COPY_POLL, 500, NULL, reason))
		goto out;
	usleep(50000);
	if (get_stats(c, &s1, reason) || reg_read(c, DMACOPY_REG_IRQ_STATUS, 4, &irq_status))
		goto out;
	if (s1.done_irqs != s0.done_irqs) {
		fail(reason, "%" PRIu64 " completion interrupts with the cause masked",
		     (uint64_t)(s1.done_irqs - s0.done_irqs));
		goto out;
	}
	if (irq_status & DMACOPY_IRQ_COMPLETION) {
		fail(reason, "IRQ_STATUS 0x%x: masked completion was latched", irq_status);
		goto out;
	}
	if (reg_write(c, DMACOPY_REG_IRQ_MASK, 4, 0)) {
		fail(reason, "register ioctl: %s", strerror(errno));
		goto out;
	}
	if (run_copy(c, 4096, 0, 0, DMACOPY_COPY_IRQ, 501, NULL, reason))
		goto out;
	if (get_stats(c, &s1, reason))
		goto out;
	if (s1.done_irqs - s0.done_irqs != 1) {
		fail(reason, "%" PRIu64 " completion interrupts after unmasking, want 1",
		     (uint64_t)(s1.done_irqs - s0.done_irqs));
		goto out;
	}
	ret = 0;
out:
	reg_write(c, DMACOPY_REG_IRQ_MASK, 4, 0);
	return ret;
}

static int run_errtest(struct ctx *c, uint32_t kind, uint32_t want_err, char *reason)
{
	struct dmacopy_stats s0, s1;
	struct dmacopy_errtest e;

	if (need_dev(c, reason) || get_stats(c, &s0, reason))
		return -1;
	memset(&e, 0, sizeof(e));
	e.kind = kind;
	e.flags = DMACOPY_COPY_IRQ;
	if (ioctl(c->fd, DMACOPY_IOC_ERRTEST, &e))
		return fail(reason, "ERRTEST ioctl: %s", strerror(errno));
	if (get_stats(c, &s1, reason))
		return -1;
	if (!e.halted)
		return fail(reason, "device did not halt: STATUS 0x%x ERR_CODE %u desc status 0x%x",
			    e.dev_status, e.err_code, e.desc_status);
	if (!(e.dev_status & DMACOPY_STATUS_ERROR))
		return fail(reason, "STATUS 0x%x: HALTED without ERROR", e.dev_status);
	if (e.err_code != want_err)
		return fail(reason, "ERR_CODE %u, want %u", e.err_code, want_err);
	if (DMACOPY_DESC_ERR(e.desc_status) != want_err)
		return fail(reason, "descriptor status 0x%x: error field %u, want %u",
			    e.desc_status, DMACOPY_DESC_ERR(e.desc_status), want_err);
	if (!e.err_irqs)
		return fail(reason, "no error interrupt (%s)", irq_mode_name(s0.irq_mode));
	if (e.done_irqs)
		return fail(reason, "completion interrupt for a failed descriptor");
	if (s0.irq_mode == DMACOPY_IRQ_MODE_MSIX &&
	    (s1.vec_irqs[1] == s0.vec_irqs[1] || s1.vec_irqs[0] != s0.vec_irqs[0]))
		return fail(reason, "MSI-X vectors: 0 fired %" PRIu64 ", 1 fired %" PRIu64
			    " times, want 0 and >= 1",
			    (uint64_t)(s1.vec_irqs[0] - s0.vec_irqs[0]),
			    (uint64_t)(s1.vec_irqs[1] - s0.vec_irqs[1]));
	if (!e.recovered)
		return fail(reason, "STATUS not 0 after RESET");
	/* The device must work again after the reset. */
	return run_copy(c, 4096 + 3, 1, 2, DMACOPY_COPY_IRQ, 600 + kind, NULL, reason);
}

static int t_error_zero_len(struct ctx *c, char *reason)
{
	return run_errtest(c, DMACOPY_ERRTEST_ZERO_LEN, DMACOPY_ERR_BAD_LENGTH, reason);
}

static int t_error_bad_src(struct ctx *c, char *reason)
{
	return run_errtest(c, DMACOPY_ERRTEST_BAD_SRC, DMACOPY_ERR_DMA_READ, reason);
}

static int t_error_bad_dst(struct ctx *c, char *reason)
{
	return run_errtest(c, DMACOPY_ERRTEST_BAD_DST, DMACOPY_ERR_DMA_WRITE, reason);
}

static int t_poll_busy(struct ctx *c, char *reason)
{
	struct dmacopy_pollbusy p;
	uint32_t len = c->big_copy;
	uint8_t *src = xmalloc(len), *dst = xmalloc(len);
	int ret = -1;

	if (need_dev(c, reason))
		goto out;
	fill_pattern(src, len, 700);
	/*
	 * The vCPU may be descheduled between the doorbell and the first read long
	 * enough for a fast backend to finish: try a few times to catch it busy.
	 */
	for (int tries = 0; tries < 3; tries++) {
		memset(dst, 0, len);
		memset(&p, 0, sizeof(p));
		p.src = (uintptr_t)src;
		p.dst = (uintptr_t)dst;
		p.len = len;
		if (ioctl(c->fd, DMACOPY_IOC_POLLBUSY, &p)) {
			fail(reason, "POLLBUSY ioctl: %s (after %" PRIu64 " reads)",
			     strerror(errno), (uint64_t)p.reads);
			goto out;
		}
		if (c->verbose)
			printf("INFO poll_busy %" PRIu64 " STATUS reads, %" PRIu64 " BUSY, %" PRIu64 " ns\n",
			       (uint64_t)p.reads, (uint64_t)p.busy_reads, (uint64_t)p.elapsed_ns);
		if (p.busy_reads)
			break;
	}
	if (!p.busy_reads) {
		fail(reason, "STATUS never read BUSY during a %u-byte copy (3 tries, %" PRIu64 " reads in the last)",
		     len, (uint64_t)p.reads);
		goto out;
	}
	if (p.final_status & (DMACOPY_STATUS_ERROR | DMACOPY_STATUS_HALTED)) {
		fail(reason, "STATUS 0x%x after the copy", p.final_status);
		goto out;
	}
	if (!(p.desc_status & DMACOPY_DESC_DONE) || DMACOPY_DESC_ERR(p.desc_status)) {
		fail(reason, "descriptor status 0x%x", p.desc_status);
		goto out;
	}
	ret = check_data(src, dst, len, p.crc, "large copy", reason);
out:
	free(src);
	free(dst);
	return ret;
}

static int t_reset_mid_transfer(struct ctx *c, char *reason)
{
	struct dmacopy_resetmid r;
	uint32_t completed;
	int tries;

	if (need_dev(c, reason))
		return -1;
	/* A fast backend may finish 1 MiB before the RESET write: try a few times. */
	for (tries = 0; tries < 3; tries++) {
		memset(&r, 0, sizeof(r));
		if (ioctl(c->fd, DMACOPY_IOC_RESETMID, &r))
			return fail(reason, "RESETMID ioctl: %s", strerror(errno));
		if (r.status_before & DMACOPY_STATUS_BUSY)
			break;
	}
	if (!(r.status_before & DMACOPY_STATUS_BUSY))
		return fail(reason, "copy never BUSY when RESET was written (STATUS 0x%x)",
			    r.status_before);
	if (r.status_after & (DMACOPY_STATUS_BUSY | DMACOPY_STATUS_ERROR | DMACOPY_STATUS_HALTED))
		return fail(reason, "STATUS 0x%x after RESET", r.status_after);
	if (r.ctrl_after & DMACOPY_CTRL_RESET)
		return fail(reason, "CTRL 0x%x: RESET did not self-clear", r.ctrl_after);
	if (r.head_after || r.tail_after || r.completed_after || r.irq_status_after ||
	    r.err_code_after)
		return fail(reason, "after RESET: HEAD %u TAIL %u COMPLETED %u IRQ_STATUS 0x%x ERR_CODE %u, want all 0",
			    r.head_after, r.tail_after, r.completed_after,
			    r.irq_status_after, r.err_code_after);
	if (r.reinit_status & (DMACOPY_STATUS_ERROR | DMACOPY_STATUS_HALTED))
		return fail(reason, "STATUS 0x%x after re-enabling the ring", r.reinit_status);
	if (run_copy(c, 65536 + 1, 7, 11, DMACOPY_COPY_IRQ, 800, NULL, reason))
		return -1;
	if (reg_read(c, DMACOPY_REG_COMPLETED, 4, &completed))
		return fail(reason, "register ioctl: %s", strerror(errno));
	if (completed != 1)
		return fail(reason, "COMPLETED %u after one copy following RESET", completed);
	return 0;
}

/* Maps the driver's window of two in-place DMA buffers (DMACOPY_MAP_*). */
static uint8_t *map_window(struct ctx *c, char *reason)
{
	void *m = mmap(NULL, DMACOPY_MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);

	if (m == MAP_FAILED) {
		fail(reason, "mmap of the %u-byte window: %s", DMACOPY_MAP_BYTES, strerror(errno));
		return NULL;
	}
	return m;
}

static int t_copy_mapped(struct ctx *c, char *reason)
{
	const uint32_t copies[][4] = {	/* len, src_off, dst_off, flags */
		{ 1, 0, 0, DMACOPY_COPY_IRQ },
		{ 4097, 4095, 13, DMACOPY_COPY_POLL },
		{ 65536 + 3, 100, DMACOPY_MAP_BUF_BYTES - 65539, DMACOPY_COPY_IRQ | DMACOPY_COPY_POLL },
		{ c->big_copy, 0, DMACOPY_MAP_BUF_BYTES - c->big_copy, DMACOPY_COPY_IRQ },
	};
	struct dmacopy_copy cp;
	uint8_t *map, *src, *dst;
	void *beyond;
	int ret = -1;

	if (need_dev(c, reason))
		return -1;
	beyond = mmap(NULL, 4096, PROT_READ, MAP_SHARED, c->fd, DMACOPY_MAP_BYTES);
	if (beyond != MAP_FAILED) {
		munmap(beyond, 4096);
		return fail(reason, "mmap past the window succeeded");
	}
	beyond = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, c->fd, 0);
	if (beyond != MAP_FAILED) {
		munmap(beyond, 4096);
		return fail(reason, "a private (copy-on-write) mapping of the window succeeded");
	}
	map = map_window(c, reason);
	if (!map)
		return -1;
	src = map + DMACOPY_MAP_SRC_OFFSET;
	dst = map + DMACOPY_MAP_DST_OFFSET;
	for (size_t i = 0; i < sizeof(copies) / sizeof(copies[0]); i++) {
		uint32_t len = copies[i][0], so = copies[i][1], dof = copies[i][2];
		char what[96];

		snprintf(what, sizeof(what), "mapped copy len %u src_off %u dst_off %u%s", len, so,
			 dof, (copies[i][3] & DMACOPY_COPY_POLL) ? " polled" : "");
		fill_pattern(src + so, len, 1000 + (uint32_t)i);
		memset(dst, DMACOPY_TEST_POISON, DMACOPY_MAP_BUF_BYTES);
		memset(&cp, 0, sizeof(cp));
		cp.len = len;
		cp.src_off = so;
		cp.dst_off = dof;
		cp.flags = copies[i][3] | DMACOPY_COPY_MAPPED;
		if (ioctl(c->fd, DMACOPY_IOC_COPY, &cp)) {
			fail(reason, "%s: %s (ERR_CODE %u)", what, strerror(errno), cp.err_code);
			goto out;
		}
		if (!(cp.desc_status & DMACOPY_DESC_DONE) || DMACOPY_DESC_ERR(cp.desc_status)) {
			fail(reason, "%s: descriptor status 0x%x", what, cp.desc_status);
			goto out;
		}
		if (check_data(src + so, dst + dof, len, cp.crc, what, reason))
			goto out;
		/* Exactly the range: the bytes next to it keep the poison. */
		if ((dof && dst[dof - 1] != DMACOPY_TEST_POISON) ||
		    (dof + len < DMACOPY_MAP_BUF_BYTES && dst[dof + len] != DMACOPY_TEST_POISON)) {
			fail(reason, "%s: the device wrote outside the destination range", what);
			goto out;
		}
	}
	/* Refused: user pointers with a mapped copy, a range past the window. */
	memset(&cp, 0, sizeof(cp));
	cp.len = 16;
	cp.flags = DMACOPY_COPY_MAPPED;
	cp.src = (uintptr_t)src;
	if (ioctl(c->fd, DMACOPY_IOC_COPY, &cp) == 0 || errno != EINVAL) {
		fail(reason, "mapped copy with a user pointer: not refused with EINVAL");
		goto out;
	}
	cp.src = 0;
	cp.dst_off = DMACOPY_MAP_BUF_BYTES - 8;
	if (ioctl(c->fd, DMACOPY_IOC_COPY, &cp) == 0 || errno != EINVAL) {
		fail(reason, "mapped copy past the window: not refused with EINVAL");
		goto out;
	}
	ret = 0;
out:
	munmap(map, DMACOPY_MAP_BYTES);
	return ret;
}

/* ---- registry of cases --------------------------------------------------------------- */

#define MODE_MSIX	1u
#define MODE_INTX	2u
#define MODE_ALL	(MODE_MSIX | MODE_INTX)

struct test_case {
	const char *name;
	int (*run)(struct ctx *c, char *reason);
	unsigned int modes;		/* runs by default in these interrupt modes */
	const char *what;
};

static const struct test_case cases[] = {
	{ "enumeration", t_enumeration, MODE_ALL, "IDs, class, BAR sizes, MSI-X capability, driver bound" },
	{ "scratch_4", t_scratch_4, MODE_ALL, "SCRATCH 4-byte read-back" },
	{ "scratch_2", t_scratch_2, MODE_ALL, "SCRATCH 2-byte read-back" },
	{ "scratch_1", t_scratch_1, MODE_ALL, "SCRATCH 1-byte read-back" },
	{ "copy_1", t_copy_1, MODE_ALL, "1-byte copies, with and without interrupt" },
	{ "copy_odd", t_copy_odd, MODE_ALL, "odd sizes 3..999999 at odd offsets" },
	{ "copy_4k_cross", t_copy_4k_cross, MODE_ALL, "buffers crossing 4 KiB boundaries" },
	{ "copy_1m", t_copy_1m, MODE_ALL, "1 MiB copies" },
	{ "ring_wrap", t_ring_wrap, MODE_ALL, "1.5 x ring size single copies" },
	{ "batch", t_batch, MODE_ALL, "ring_size-1 descriptors, one doorbell, wrapping" },
	{ "copy_mapped", t_copy_mapped, MODE_ALL, "copies between the mmap()ed buffers, polled and with IRQ" },
	{ "msix", t_msix, MODE_MSIX, "completion interrupts on MSI-X vector 0" },
	{ "intx", t_intx, MODE_INTX, "completion interrupts on INTx (use_msix=0)" },
	{ "irq_masked", t_irq_masked, MODE_ALL, "IRQ_MASK suppresses the completion interrupt" },
	{ "poll_busy", t_poll_busy, MODE_ALL, "STATUS reads during a 1 MiB copy" },
	{ "error_zero_len", t_error_zero_len, MODE_ALL, "len 0: ERR_CODE 1, error interrupt" },
	{ "error_bad_src", t_error_bad_src, MODE_ALL, "src not memory: ERR_CODE 2, error interrupt" },
	{ "error_bad_dst", t_error_bad_dst, MODE_ALL, "dst not memory: ERR_CODE 3, error interrupt" },
	{ "reset_mid_transfer", t_reset_mid_transfer, MODE_ALL, "CTRL.RESET during a 1 MiB copy" },
};
#define NR_CASES (sizeof(cases) / sizeof(cases[0]))

static bool name_in_list(const char *name, const char *list)
{
	size_t n = strlen(name);
	const char *p = list;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && !strncmp(p, name, n))
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* ---- benchmarks ------------------------------------------------------------------------- */

static int bench_mmio(struct ctx *c, uint32_t count, int offset)
{
	struct dmacopy_mmio_bench m;
	struct dmacopy_stats s;

	if (c->fd < 0) {
		fprintf(stderr, "dmacopy-test: cannot open %s: %s\n", c->node,
			strerror(c->open_errno));
		return -1;
	}
	if (offset < 0)	/* SCRATCH on dmacopy, register 0 on anything else */
		offset = ioctl(c->fd, DMACOPY_IOC_STATS, &s) ? 0 : DMACOPY_REG_SCRATCH;
	memset(&m, 0, sizeof(m));
	m.count = count;
	m.offset = (uint32_t)offset;
	if (ioctl(c->fd, DMACOPY_IOC_MMIO_BENCH, &m)) {
		fprintf(stderr, "dmacopy-test: MMIO_BENCH on %s: %s\n", c->node, strerror(errno));
		return -1;
	}
	printf("BENCH mmio_read_ns_per_op %.1f\n", (double)m.elapsed_ns / count);
	printf("BENCH mmio_reads %u offset 0x%x elapsed_ns %" PRIu64 " last_value 0x%08x node %s\n",
	       count, m.offset, (uint64_t)m.elapsed_ns, m.last_value, c->node);
	return 0;
}

/*
 * COUNT copies of SIZE bytes through DMACOPY_IOC_COPY, timed in user space.
 * bounce: from and to user memory through the driver's bounce buffers;
 * mapped: in place between the mmap()ed buffers, the destination moving over
 * every SIZE slot of the window. irq: the descriptor asks for an interrupt and
 * the driver sleeps until it; poll: no interrupt, the driver polls the
 * descriptor's status in memory. Each copy's CRC is checked as it returns; the
 * data itself once the clock has stopped.
 */
static int bench_copy(struct ctx *c, uint32_t size, uint32_t count, bool mapped, bool poll)
{
	char reason[REASON_LEN];
	struct dmacopy_copy cp;
	uint8_t *map = NULL, *src, *dst;
	uint32_t want, slots = 1;
	uint64_t t0, dt;
	int ret = -1;

	if (c->fd < 0) {
		fprintf(stderr, "dmacopy-test: cannot open %s: %s\n", c->node,
			strerror(c->open_errno));
		return -1;
	}
	if (!size || size > DMACOPY_MAX_COPY_BYTES || !count) {
		fprintf(stderr, "dmacopy-test: --bench-copy SIZE 1..%u COUNT >= 1\n",
			DMACOPY_MAX_COPY_BYTES);
		return -1;
	}
	/* One checked copy first: a benchmark of a broken copy means nothing. */
	if (run_copy(c, size, 0, 0, DMACOPY_COPY_IRQ, 900, NULL, reason)) {
		fprintf(stderr, "dmacopy-test: bench copy failed: %s\n", reason);
		return -1;
	}
	memset(&cp, 0, sizeof(cp));
	if (mapped) {
		map = map_window(c, reason);
		if (!map) {
			fprintf(stderr, "dmacopy-test: %s\n", reason);
			return -1;
		}
		src = map + DMACOPY_MAP_SRC_OFFSET;
		dst = map + DMACOPY_MAP_DST_OFFSET;
		slots = DMACOPY_MAP_BUF_BYTES / size;
		memset(dst, DMACOPY_TEST_POISON, DMACOPY_MAP_BUF_BYTES);
		cp.flags = DMACOPY_COPY_MAPPED;
	} else {
		src = xmalloc(size);
		dst = xmalloc(size);
		cp.src = (uintptr_t)src;
		cp.dst = (uintptr_t)dst;
	}
	fill_pattern(src, size, 901);
	want = crc32_ieee(src, size);
	cp.len = size;
	cp.flags |= poll ? DMACOPY_COPY_POLL : DMACOPY_COPY_IRQ;
	t0 = now_ns();
	for (uint32_t i = 0; i < count; i++) {
		cp.dst_off = mapped ? (i % slots) * size : 0;
		if (ioctl(c->fd, DMACOPY_IOC_COPY, &cp) || cp.crc != want) {
			fprintf(stderr, "dmacopy-test: bench copy %u: %s crc 0x%08x want 0x%08x\n",
				i, strerror(errno), cp.crc, want);
			goto out;
		}
	}
	dt = now_ns() - t0;
	/* The data itself, checked once the clock has stopped: every slot written. */
	for (uint32_t k = 0; k < slots && k < count; k++)
		if (memcmp(src, dst + (size_t)k * size, size)) {
			fprintf(stderr, "dmacopy-test: bench copy: destination %u differs from source\n", k);
			goto out;
		}
	printf("BENCH copy_MBps %.2f\n", (double)size * count * 1e3 / (double)dt);
	/* The driver's own ktime from doorbell to completion, last copy. */
	printf("BENCH copy_driver_ns %" PRIu64 "\n", (uint64_t)cp.elapsed_ns);
	printf("BENCH copy_us_per_op %.2f\n", (double)dt / 1e3 / count);
	printf("BENCH copy_size %u count %u elapsed_ns %" PRIu64 " mode %s wait %s\n", size, count,
	       dt, mapped ? "mapped" : "bounce", poll ? "poll" : "irq");
	ret = 0;
out:
	if (map) {
		munmap(map, DMACOPY_MAP_BYTES);
	} else {
		free(src);
		free(dst);
	}
	return ret;
}

/* Writes one line into the FIFO dir/name (blocks until the other side reads). */
static void fifo_say(const char *dir, const char *name, const char *line)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%s\n", line);
		fclose(f);
	}
	printf("%s\n", line);
}

/*
 * --map-hold DIR: the mapped window across a hot-unplug. Maps the window, makes
 * one mapped copy, says "MAPHOLD mapped" into the FIFO DIR/ready, then waits for
 * a line in DIR/go (written once the device is removed). A copy must then fail
 * with ENODEV while the mapping stays ordinary memory: the bytes it held are
 * still there and it can be written and read back. The verdict goes to DIR/done.
 */
static int map_hold(struct ctx *c, const char *dir)
{
	char reason[REASON_LEN] = "", path[PATH_MAX], line[64];
	const uint32_t len = 4096;
	struct dmacopy_copy cp;
	uint8_t *map, *src, *dst;
	const char *waiting = "ready";	/* the FIFO the other side reads next */
	FILE *f;
	int ret = -1;

	if (c->fd < 0) {
		snprintf(reason, sizeof(reason), "cannot open %s: %s", c->node, strerror(c->open_errno));
		goto say;
	}
	map = map_window(c, reason);
	if (!map)
		goto say;
	src = map + DMACOPY_MAP_SRC_OFFSET;
	dst = map + DMACOPY_MAP_DST_OFFSET;
	fill_pattern(src, len, 4242);
	memset(dst, DMACOPY_TEST_POISON, len);
	memset(&cp, 0, sizeof(cp));
	cp.len = len;
	cp.flags = DMACOPY_COPY_MAPPED | DMACOPY_COPY_IRQ;
	if (ioctl(c->fd, DMACOPY_IOC_COPY, &cp)) {
		fail(reason, "mapped copy: %s", strerror(errno));
		goto unmap;
	}
	if (check_data(src, dst, len, cp.crc, "mapped copy", reason))
		goto unmap;
	fifo_say(dir, "ready", "MAPHOLD mapped");
	waiting = "done";

	snprintf(path, sizeof(path), "%s/go", dir);
	f = fopen(path, "r");
	if (!f || !fgets(line, sizeof(line), f)) {
		fail(reason, "no line in %s", path);
		if (f)
			fclose(f);
		goto unmap;
	}
	fclose(f);
	if (ioctl(c->fd, DMACOPY_IOC_COPY, &cp) == 0 || errno != ENODEV) {
		fail(reason, "a mapped copy after the remove: %s, want ENODEV",
		     errno ? strerror(errno) : "succeeded");
		goto unmap;
	}
	if (check_data(src, dst, len, crc32_ieee(src, len), "the window after the remove", reason))
		goto unmap;
	memset(map, 0x3c, DMACOPY_MAP_BYTES);
	for (size_t i = 0; i < DMACOPY_MAP_BYTES; i++)
		if (map[i] != 0x3c) {
			fail(reason, "the window after the remove: byte %zu reads 0x%02x", i, map[i]);
			goto unmap;
		}
	ret = 0;
unmap:
	munmap(map, DMACOPY_MAP_BYTES);
say:
	if (ret)
		fprintf(stderr, "dmacopy-test: --map-hold: %s\n", reason);
	fifo_say(dir, waiting, ret ? "MAPHOLD FAIL" : "MAPHOLD ok");
	return ret;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dmacopy-test [options]\n"
		"  --dev N             use /dev/dmacopyN (default 0)\n"
		"  --node PATH         use this device node (e.g. /dev/edu-mmio-bench for --bench-mmio)\n"
		"  --intx              the driver runs with use_msix=0: run the INTx set of cases\n"
		"  --only A,B,...      run only these cases (any mode), may repeat\n"
		"  --skip A,B,...      do not run these cases, may repeat\n"
		"  --list              list the cases and exit\n"
		"  --bench-mmio N      time N MMIO reads in the driver, print BENCH mmio_read_ns_per_op\n"
		"  --bench-offset OFF  register offset for --bench-mmio (default SCRATCH, or 0 on edu)\n"
		"  --bench-copy SIZE COUNT  COUNT copies of SIZE bytes, print BENCH copy_MBps\n"
		"  --copy-mode MODE    bounce (default: through user memory) or mapped (in place,\n"
		"                      between the mmap()ed buffers)\n"
		"  --copy-wait WAIT    irq (default: sleep until the interrupt) or poll (no interrupt)\n"
		"  --map-hold DIR      the mapped window across a hot-unplug, synchronised through\n"
		"                      the FIFOs DIR/ready, DIR/go and DIR/done (see the source)\n"
		"  --big-copy SIZE     size of the large copies in copy_1m, poll_busy (default 1 MiB;\n"
		"                      smaller for slow backends, e.g. RTL at a few k cycles/s)\n"
		"  -v, --verbose       print INFO lines with measurements\n"
		"Benchmark options run only the benchmarks.\n");
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dev", required_argument, NULL, 'd' },
		{ "node", required_argument, NULL, 'n' },
		{ "intx", no_argument, NULL, 'i' },
		{ "only", required_argument, NULL, 'o' },
		{ "skip", required_argument, NULL, 's' },
		{ "list", no_argument, NULL, 'l' },
		{ "bench-mmio", required_argument, NULL, 'm' },
		{ "bench-offset", required_argument, NULL, 'O' },
		{ "bench-copy", required_argument, NULL, 'c' },
		{ "big-copy", required_argument, NULL, 'B' },
		{ "copy-mode", required_argument, NULL, 'M' },
		{ "copy-wait", required_argument, NULL, 'W' },
		{ "map-hold", required_argument, NULL, 'H' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctx c = { .fd = -1, .big_copy = DMACOPY_MAX_COPY_BYTES };
	char node[64], only[1024] = "", skip[1024] = "";
	uint32_t dev = 0, bench_mmio_n = 0, copy_size = 0, copy_count = 0, v;
	int bench_offset = -1, opt, passed = 0, failed = 0;
	bool bench = false, copy_mapped = false, copy_poll = false;
	const char *map_hold_dir = NULL;

	setvbuf(stdout, NULL, _IOLBF, 0);
	crc32_init();
	c.node = NULL;
	while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			if (parse_u32(optarg, &dev))
				goto bad;
			break;
		case 'n':
			c.node = optarg;
			break;
		case 'i':
			c.intx = true;
			break;
		case 'o':
		case 's': {
			char *list = opt == 'o' ? only : skip;

			if (strlen(list) + strlen(optarg) + 2 > sizeof(only))
				goto bad;
			if (*list)
				strcat(list, ",");
			strcat(list, optarg);
			break;
		}
		case 'l':
			for (size_t i = 0; i < NR_CASES; i++)
				printf("%-20s %s%s\n", cases[i].name, cases[i].what,
				       cases[i].modes == MODE_ALL ? "" :
				       cases[i].modes == MODE_MSIX ? " [MSI-X runs]" : " [--intx runs]");
			return 0;
		case 'm':
			if (parse_u32(optarg, &bench_mmio_n) || !bench_mmio_n)
				goto bad;
			bench = true;
			break;
		case 'O':
			if (parse_u32(optarg, &v) || v >= DMACOPY_BAR0_BYTES)
				goto bad;
			bench_offset = (int)v;
			break;
		case 'c':
			if (parse_u32(optarg, &copy_size) || optind >= argc ||
			    parse_u32(argv[optind], &copy_count))
				goto bad;
			optind++;
			bench = true;
			break;
		case 'B':
			if (parse_u32(optarg, &c.big_copy) || c.big_copy < 4096 ||
			    c.big_copy > DMACOPY_MAX_COPY_BYTES)
				goto bad;
			break;
		case 'M':
			if (strcmp(optarg, "bounce") && strcmp(optarg, "mapped"))
				goto bad;
			copy_mapped = !strcmp(optarg, "mapped");
			break;
		case 'W':
			if (strcmp(optarg, "irq") && strcmp(optarg, "poll"))
				goto bad;
			copy_poll = !strcmp(optarg, "poll");
			break;
		case 'H':
			map_hold_dir = optarg;
			bench = true;
			break;
		case 'v':
			c.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	for (const char *p = only; *p;) {	/* every --only name must exist */
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		bool known = false;

		for (size_t i = 0; i < NR_CASES; i++)
			known |= strlen(cases[i].name) == len && !strncmp(cases[i].name, p, len);
		if (!known) {
			fprintf(stderr, "dmacopy-test: unknown case '%.*s' (see --list)\n", (int)len, p);
			return 2;
		}
		p = end ? end + 1 : p + len;
	}

	if (!c.node) {
		snprintf(node, sizeof(node), "/dev/dmacopy%u", dev);
		c.node = node;
	}
	c.fd = open(c.node, O_RDWR);
	c.open_errno = errno;

	if (bench) {
		int ret = 0;

		if (bench_mmio_n)
			ret |= bench_mmio(&c, bench_mmio_n, bench_offset);
		if (copy_size)
			ret |= bench_copy(&c, copy_size, copy_count, copy_mapped, copy_poll);
		if (map_hold_dir)
			ret |= map_hold(&c, map_hold_dir);
		return ret ? 1 : 0;
	}

	find_sysfs(&c);
	if (c.fd >= 0 && !ioctl(c.fd, DMACOPY_IOC_STATS, &c.stats))
		printf("INFO device %s sysfs %s irq %s ring %u timeout_ms %u\n", c.node,
		       c.sysfs[0] ? c.sysfs : "?", irq_mode_name(c.stats.irq_mode),
		       c.stats.ring_size, c.stats.timeout_ms);

	for (size_t i = 0; i < NR_CASES; i++) {
		const struct test_case *t = &cases[i];
		char reason[REASON_LEN] = "";

		if (*only ? !name_in_list(t->name, only) :
			    !(t->modes & (c.intx ? MODE_INTX : MODE_MSIX)))
			continue;
		if (name_in_list(t->name, skip))
			continue;
		uint64_t t0 = now_ns();
		int ret = t->run(&c, reason);

		if (c.verbose)
			printf("INFO %s took %.1f ms\n", t->name, (double)(now_ns() - t0) / 1e6);
		if (ret) {
			for (char *p = reason; *p; p++)	/* keep one line per case */
				if (*p == '\n')
					*p = ' ';
			printf("TEST %s FAIL %s\n", t->name, reason[0] ? reason : "(no reason)");
			failed++;
		} else {
			printf("TEST %s PASS\n", t->name);
			passed++;
		}
	}
	printf("RESULT %d passed, %d failed\n", passed, failed);
	if (c.fd >= 0)
		close(c.fd);
	return failed ? 1 : 0;

bad:
	usage(stderr);
	return 2;
}
