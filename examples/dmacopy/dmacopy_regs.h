/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * dmacopy_regs.h - the dmacopy register map and descriptor layout
 * (README.md, "Registers" and "Descriptor"), one copy for every C
 * implementation and driver: the behavioural model (hlsim/), the userspace
 * driver (host/), the Linux driver and its user interface
 * (linux/dmacopy_ioctl.h), and the guest test program. Plain #defines and no includes, so it builds in the kernel and in
 * userspace. The RTL's package rtl/dmacopy_pkg.sv is checked against it by
 * tests/unit/test_dmacopy_regs.c. The test suites keep their own copy on
 * purpose (tests/dmacopy_spec.h): a wrong value here fails a test instead
 * of agreeing with it.
 */
#ifndef DMACOPY_REGS_H
#define DMACOPY_REGS_H

#define DMACOPY_PCI_VENDOR_ID	0x1234
#define DMACOPY_PCI_DEVICE_ID	0x7a11
#define DMACOPY_ID_VALUE	0x7a110001u	/* what DMACOPY_REG_ID reads */

/* BAR0 registers, byte offsets; all are 32 bits wide. */
#define DMACOPY_REG_ID		0x000
#define DMACOPY_REG_SCRATCH	0x004
#define DMACOPY_REG_CTRL	0x008
#define DMACOPY_REG_STATUS	0x00c
#define DMACOPY_REG_RING_LO	0x010
#define DMACOPY_REG_RING_HI	0x014
#define DMACOPY_REG_RING_SIZE	0x018
#define DMACOPY_REG_HEAD	0x01c
#define DMACOPY_REG_TAIL	0x020
#define DMACOPY_REG_IRQ_STATUS	0x024
#define DMACOPY_REG_IRQ_MASK	0x028
#define DMACOPY_REG_COMPLETED	0x02c
#define DMACOPY_REG_ERR_CODE	0x030
#define DMACOPY_BAR0_BYTES	0x1000

#define DMACOPY_CTRL_ENABLE	(1u << 0)
#define DMACOPY_CTRL_RESET	(1u << 1)	/* self-clearing */

#define DMACOPY_STATUS_BUSY	(1u << 0)
#define DMACOPY_STATUS_ERROR	(1u << 1)
#define DMACOPY_STATUS_HALTED	(1u << 2)

/* IRQ_STATUS and IRQ_MASK cause bits */
#define DMACOPY_IRQ_COMPLETION	(1u << 0)
#define DMACOPY_IRQ_ERROR	(1u << 1)

/* MSI-X vectors, one per cause */
#define DMACOPY_MSIX_VECTOR_COMPLETION	0
#define DMACOPY_MSIX_VECTOR_ERROR	1

/* ERR_CODE values, also in bits 15:8 of a descriptor's status */
#define DMACOPY_ERR_NONE	0
#define DMACOPY_ERR_BAD_LENGTH	1
#define DMACOPY_ERR_DMA_READ	2
#define DMACOPY_ERR_DMA_WRITE	3
#define DMACOPY_ERR_BAD_RING	4

/* Descriptor: 32 bytes in guest memory, little-endian fields at these offsets */
#define DMACOPY_DESC_BYTES	32u
#define DMACOPY_DESC_SRC	0	/* 64-bit source bus address */
#define DMACOPY_DESC_DST	8	/* 64-bit destination bus address */
#define DMACOPY_DESC_LEN	16
#define DMACOPY_DESC_FLAGS	20
#define DMACOPY_DESC_STATUS	24	/* written by the device */
#define DMACOPY_DESC_CRC	28	/* written by the device */
#define DMACOPY_DESC_FLAG_IRQ	(1u << 0)
#define DMACOPY_DESC_DONE	(1u << 0)	/* status bit */
#define DMACOPY_DESC_ERR(status)	(((status) >> 8) & 0xff)

#define DMACOPY_MAX_COPY_BYTES	(1u << 20)	/* largest descriptor length */
#define DMACOPY_MAX_RING_SIZE	4096u		/* descriptors; a power of two */
#define DMACOPY_RING_ALIGN	64u		/* bytes, of RING_LO/HI */

#endif
