/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * dmacopy_ioctl.h - user interface of the dmacopy driver (/dev/dmacopyN).
 *
 * Shared by the kernel module and user programs. Every structure has fixed-width
 * fields and an explicit size, so 32- and 64-bit user programs see the same layout.
 */
#ifndef DMACOPY_IOCTL_H
#define DMACOPY_IOCTL_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* The register map, descriptor layout and device limits (also used by the
 * C model and the userspace driver); DMACOPY_REG_* are the offsets for
 * DMACOPY_IOC_REG_READ / DMACOPY_IOC_REG_WRITE. */
#include "dmacopy_regs.h"

/* Largest offset of the data inside the driver's source/destination DMA buffers. */
#define DMACOPY_MAX_BUF_OFFSET	8191u
/* Size of each driver DMA buffer (source and destination). */
#define DMACOPY_BUF_BYTES	(DMACOPY_MAX_COPY_BYTES + DMACOPY_MAX_BUF_OFFSET + 1)

/* dmacopy_copy.flags, dmacopy_batch.flags, dmacopy_errtest.flags */
#define DMACOPY_COPY_IRQ	(1u << 0)	/* descriptor asks for a completion interrupt */
#define DMACOPY_COPY_POLL	(1u << 1)	/* wait by polling even when IRQ is set */
#define DMACOPY_COPY_MAPPED	(1u << 2)	/* copy: the buffers are the mapped window */

/*
 * mmap(2) of /dev/dmacopyN gives user programs the driver's mapped window, two
 * more DMA buffers the device reads and writes in place: the source buffer at
 * DMACOPY_MAP_SRC_OFFSET, the destination buffer at DMACOPY_MAP_DST_OFFSET, each
 * DMACOPY_MAP_BUF_BYTES. A copy with DMACOPY_COPY_MAPPED uses them instead of
 * the bounce buffers: nothing is copied to or from user memory, src and dst must
 * be 0, and src_off/dst_off may be anywhere with off + len inside a buffer.
 * Pages stay valid for the mapping's lifetime, also after the device is removed
 * (the device no longer reaches them then).
 */
#define DMACOPY_MAP_BUF_BYTES	DMACOPY_MAX_COPY_BYTES
#define DMACOPY_MAP_SRC_OFFSET	0u
#define DMACOPY_MAP_DST_OFFSET	DMACOPY_MAP_BUF_BYTES
#define DMACOPY_MAP_BYTES	(2u * DMACOPY_MAP_BUF_BYTES)

/*
 * One copy: the driver puts len bytes from src (user memory) into its source DMA
 * buffer at src_off, posts one descriptor (source buffer + src_off to destination
 * buffer + dst_off), rings TAIL and waits. With DMACOPY_COPY_IRQ and without
 * DMACOPY_COPY_POLL it waits for the completion interrupt as well as for DONE.
 * The destination bytes go back to dst (user memory) unless dst is 0.
 * With DMACOPY_COPY_MAPPED the copy runs between the mapped buffers instead
 * (see DMACOPY_MAP_*), without touching user memory.
 * Returns 0 when the descriptor completed, -EIO when the device stopped on an
 * error (the structure is still filled in and the device has been reset),
 * -ETIMEDOUT when nothing happened within the driver's timeout_ms.
 */
struct dmacopy_copy {
	__u64 src;		/* in: user pointer, len bytes */
	__u64 dst;		/* in: user pointer, len bytes, or 0 */
	__u32 len;		/* in: 1..DMACOPY_MAX_COPY_BYTES (0 is refused: see ERRTEST) */
	__u32 flags;		/* in: DMACOPY_COPY_* */
	__u32 src_off;		/* in: 0..DMACOPY_MAX_BUF_OFFSET */
	__u32 dst_off;		/* in: 0..DMACOPY_MAX_BUF_OFFSET */
	__u32 desc_status;	/* out: descriptor status word */
	__u32 crc;		/* out: descriptor crc word */
	__u32 err_code;		/* out: ERR_CODE if the device stopped, else 0 */
	__u32 ring_index;	/* out: descriptor slot used */
	__u64 src_bus;		/* out: bus address the device read from */
	__u64 dst_bus;		/* out: bus address the device wrote to */
	__u64 elapsed_ns;	/* out: doorbell to completion */
};

struct dmacopy_result {
	__u32 desc_status;
	__u32 crc;
};

/*
 * Several copies posted with one TAIL write. Descriptor i copies lens[i] bytes (or
 * len bytes when lens is 0); the source bytes of all descriptors are packed back
 * to back in src, and so are the destination bytes in dst. With DMACOPY_COPY_IRQ
 * only the last descriptor asks for an interrupt.
 */
struct dmacopy_batch {
	__u64 src;		/* in: user pointer, sum of lengths */
	__u64 dst;		/* in: user pointer, sum of lengths, or 0 */
	__u64 lens;		/* in: user pointer to count __u32 lengths, or 0 */
	__u64 results;		/* in: user pointer to count struct dmacopy_result, or 0 */
	__u32 count;		/* in: 1..ring_size-1 */
	__u32 len;		/* in: length of every descriptor when lens is 0 */
	__u32 flags;		/* in: DMACOPY_COPY_* */
	__u32 first_index;	/* out: ring slot of the first descriptor */
	__u32 completed;	/* out: descriptors found DONE */
	__u32 err_code;		/* out: ERR_CODE if the device stopped, else 0 */
	__u64 elapsed_ns;	/* out: doorbell to completion of the last */
};

/* Raw BAR0 access. size is 1, 2 or 4 and offset a multiple of size. */
struct dmacopy_reg {
	__u32 offset;
	__u32 size;
	__u32 value;
	__u32 reserved;
};

#define DMACOPY_ERRTEST_ZERO_LEN	1	/* descriptor with len 0: ERR_CODE 1 */
#define DMACOPY_ERRTEST_BAD_SRC		2	/* src not backed by memory: ERR_CODE 2 */
#define DMACOPY_ERRTEST_BAD_DST		3	/* dst not backed by memory: ERR_CODE 3 */
/* Default bus address for BAD_SRC / BAD_DST: far above any guest RAM. */
#define DMACOPY_ERRTEST_BAD_ADDR	(1ull << 46)

/*
 * Posts one faulty descriptor, waits until the device halts, then for up to one
 * second for the error interrupt, records what it saw and resets the device.
 */
struct dmacopy_errtest {
	__u32 kind;		/* in: DMACOPY_ERRTEST_* */
	__u32 flags;		/* in: DMACOPY_COPY_IRQ sets the descriptor's IRQ flag */
	__u64 bad_addr;		/* in: bus address for BAD_SRC/BAD_DST, 0 = default */
	__u32 err_code;		/* out: ERR_CODE once halted */
	__u32 dev_status;	/* out: STATUS once halted */
	__u32 desc_status;	/* out: descriptor status word */
	__u32 halted;		/* out: 1 if STATUS.HALTED was seen */
	__u32 err_irqs;		/* out: error interrupts during the test */
	__u32 done_irqs;	/* out: completion interrupts during the test */
	__u32 recovered;	/* out: 1 if STATUS read 0 after the reset */
	__u32 reserved;
	__u64 elapsed_ns;	/* out: doorbell to halt */
};

/*
 * 1 MiB (or len) copy without interrupt, then reads STATUS in a tight loop until
 * BUSY clears: MMIO reads must complete while the device is doing DMA.
 */
struct dmacopy_pollbusy {
	__u64 src;		/* in: user pointer, len bytes */
	__u64 dst;		/* in: user pointer, len bytes, or 0 */
	__u32 len;		/* in: 1..DMACOPY_MAX_COPY_BYTES */
	__u32 final_status;	/* out: first STATUS without BUSY */
	__u64 reads;		/* out: STATUS reads issued */
	__u64 busy_reads;	/* out: of which saw BUSY */
	__u32 desc_status;	/* out */
	__u32 crc;		/* out */
	__u64 elapsed_ns;	/* out: doorbell to BUSY clear */
};

/* Starts a len-byte copy, writes CTRL.RESET while it runs, reports the registers. */
struct dmacopy_resetmid {
	__u32 len;		/* in: 0 = 1 MiB */
	__u32 status_before;	/* out: STATUS read just before the RESET write */
	__u32 reset_polls;	/* out: CTRL reads until RESET self-cleared */
	__u32 ctrl_after;	/* out: registers after RESET cleared */
	__u32 status_after;
	__u32 head_after;
	__u32 tail_after;
	__u32 completed_after;
	__u32 irq_status_after;
	__u32 err_code_after;
	__u32 reinit_status;	/* out: STATUS after the driver re-enabled the ring */
	__u32 reserved;
};

#define DMACOPY_IRQ_MODE_NONE	0
#define DMACOPY_IRQ_MODE_INTX	1
#define DMACOPY_IRQ_MODE_MSIX	2

struct dmacopy_stats {
	__u32 irq_mode;		/* DMACOPY_IRQ_MODE_* */
	__u32 nr_vectors;	/* MSI-X vectors in use (0 for INTx) */
	__u32 ring_size;	/* descriptors in the ring */
	__u32 tail;		/* driver's next free slot */
	__u64 vec_irqs[2];	/* MSI-X interrupts per vector */
	__u64 intx_irqs;	/* INTx interrupts handled */
	__u64 intx_none;	/* INTx handler calls with IRQ_STATUS 0 (shared line) */
	__u64 done_irqs;	/* completion causes handled (any mode) */
	__u64 err_irqs;		/* error causes handled (any mode) */
	__u64 descs_done;	/* descriptors completed */
	__u64 timeouts;
	__u64 resets;
	__u32 buf_bytes;	/* size of each DMA buffer */
	__u32 timeout_ms;
};

/* count readl() of BAR0 + offset, timed with ktime. */
struct dmacopy_mmio_bench {
	__u32 count;		/* in: 1..100000000 */
	__u32 offset;		/* in: register offset (4-byte aligned) */
	__u64 elapsed_ns;	/* out */
	__u32 last_value;	/* out: value of the last read */
	__u32 reserved;
};

#define DMACOPY_IOC_MAGIC	0xd7

#define DMACOPY_IOC_COPY	_IOWR(DMACOPY_IOC_MAGIC, 0x01, struct dmacopy_copy)
#define DMACOPY_IOC_BATCH	_IOWR(DMACOPY_IOC_MAGIC, 0x02, struct dmacopy_batch)
#define DMACOPY_IOC_REG_READ	_IOWR(DMACOPY_IOC_MAGIC, 0x03, struct dmacopy_reg)
#define DMACOPY_IOC_REG_WRITE	_IOW(DMACOPY_IOC_MAGIC, 0x04, struct dmacopy_reg)
#define DMACOPY_IOC_RESET	_IO(DMACOPY_IOC_MAGIC, 0x05)
#define DMACOPY_IOC_ERRTEST	_IOWR(DMACOPY_IOC_MAGIC, 0x06, struct dmacopy_errtest)
#define DMACOPY_IOC_POLLBUSY	_IOWR(DMACOPY_IOC_MAGIC, 0x07, struct dmacopy_pollbusy)
#define DMACOPY_IOC_RESETMID	_IOWR(DMACOPY_IOC_MAGIC, 0x08, struct dmacopy_resetmid)
#define DMACOPY_IOC_STATS	_IOR(DMACOPY_IOC_MAGIC, 0x09, struct dmacopy_stats)
#define DMACOPY_IOC_MMIO_BENCH	_IOWR(DMACOPY_IOC_MAGIC, 0x0a, struct dmacopy_mmio_bench)

#endif /* DMACOPY_IOCTL_H */
