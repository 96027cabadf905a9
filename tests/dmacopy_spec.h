/* dmacopy's register map as the tests know it, written from the device
 * specification (examples/dmacopy/README.md). Deliberately NOT
 * examples/dmacopy/dmacopy_regs.h, which the model and drivers use: a wrong
 * offset or bit there then fails a test instead of agreeing with it. One
 * copy for the unit, integration and qtest suites. */
#ifndef TLPB_TESTS_DMACOPY_SPEC_H
#define TLPB_TESTS_DMACOPY_SPEC_H

/* Registers (BAR0) */
#define REG_ID 0x000
#define REG_SCRATCH 0x004
#define REG_CTRL 0x008
#define REG_STATUS 0x00C
#define REG_RING_LO 0x010
#define REG_RING_HI 0x014
#define REG_RING_SIZE 0x018
#define REG_HEAD 0x01C
#define REG_TAIL 0x020
#define REG_IRQ_STATUS 0x024
#define REG_IRQ_MASK 0x028
#define REG_COMPLETED 0x02C
#define REG_ERR_CODE 0x030

#define CTRL_ENABLE 0x1u
#define CTRL_RESET 0x2u
#define STATUS_BUSY 0x1u
#define STATUS_ERROR 0x2u
#define STATUS_HALTED 0x4u
#define IRQ_COMPLETION 0x1u
#define IRQ_ERROR 0x2u
#define DESC_FLAG_IRQ 0x1u
#define DESC_DONE 0x1u

#endif
