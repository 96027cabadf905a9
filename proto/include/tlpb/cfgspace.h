/* A PCIe type 0 configuration space built from a device description, with
 * the write semantics of real hardware (read-only fields, BAR sizing, RW1C
 * status bits, FLR). Used by the bridge's fallback responder, by the hlsim
 * SDK, which owns config space for its models, and by the RTL adapter.
 *
 * Layout: standard header; capability list at 0x40 (PCI Express endpoint
 * capability, version 2), 0x80 (MSI, when described), 0xA0 (MSI-X, when
 * described). Extended config space (0x100..0xFFF) reads as zero. */
#ifndef TLPB_CFGSPACE_H
#define TLPB_CFGSPACE_H

#include <stdbool.h>
#include <stdint.h>

#include "tlpb/devdesc.h"
#include "tlpb/tlp.h"

#define TLPB_CFG_SIZE 4096u
#define TLPB_CFG_PCIE_CAP 0x40u
#define TLPB_CFG_MSI_CAP 0x80u
#define TLPB_CFG_MSIX_CAP 0xA0u

struct tlpb_cfgspace {
    struct tlpb_devdesc desc;
    uint8_t bytes[TLPB_CFG_SIZE];
    uint8_t write_mask[TLPB_CFG_SIZE];  /* bits software may write */
    uint8_t w1c_mask[TLPB_CFG_SIZE];    /* bits cleared by writing 1 */
    uint16_t bus_device_function;       /* captured from config writes' target */
};

/* What a config write changed, so the owner can react. */
enum tlpb_cfg_change {
    TLPB_CFG_CHANGED_COMMAND = 1u << 0,   /* memory/bus-master/INTx-disable */
    TLPB_CFG_CHANGED_BAR = 1u << 1,
    TLPB_CFG_CHANGED_DEVCTL = 1u << 2,    /* max payload / read request size */
    TLPB_CFG_CHANGED_MSIX = 1u << 3,      /* MSI-X enable or function mask */
    TLPB_CFG_CHANGED_MSI = 1u << 4,
    TLPB_CFG_FLR_REQUESTED = 1u << 5,     /* initiate-FLR bit written as 1 */
};

void tlpb_cfgspace_init(struct tlpb_cfgspace *cfg, const struct tlpb_devdesc *desc);

/* Back to power-on values (FLR or hot reset): everything but the
 * description. */
void tlpb_cfgspace_reset(struct tlpb_cfgspace *cfg);

/* Read the DW at byte offset reg (DW aligned, < 4096). */
uint32_t tlpb_cfgspace_read(const struct tlpb_cfgspace *cfg, uint16_t reg);

/* Write the DW at byte offset reg with byte enables be (4 bits). Returns a
 * mask of enum tlpb_cfg_change. */
unsigned tlpb_cfgspace_write(struct tlpb_cfgspace *cfg, uint16_t reg, uint32_t value,
                             uint8_t be);

/* Answer a config request (CfgRd0 or CfgWr0) from cfg, as a type 0
 * function does: the completion is built into *cpl (a CfgRd0's CplD carries
 * its DW in data, which cpl->payload points at). A write captures the
 * function's bus/device/function from the request's completer ID, then
 * writes the DW. A request to a register beyond 4 KiB or not DW aligned, and
 * a poisoned or short CfgWr0 (PCIe discards a poisoned config write), is
 * completed with UR and *refused names why; otherwise *refused is NULL.
 * Returns the write's mask of enum tlpb_cfg_change (0 for a read or a
 * refused request) for the owner to act on (FLR after the completion is
 * sent, bus master enable, MSI-X), or -EINVAL with nothing built if req is
 * not a config request. */
int tlpb_cfgspace_complete_request(struct tlpb_cfgspace *cfg, const struct tlpb_tlp *req,
                                   struct tlpb_tlp *cpl, uint8_t data[4], const char **refused);

bool tlpb_cfg_memory_enabled(const struct tlpb_cfgspace *cfg);
bool tlpb_cfg_bus_master_enabled(const struct tlpb_cfgspace *cfg);
bool tlpb_cfg_intx_disabled(const struct tlpb_cfgspace *cfg);
bool tlpb_cfg_msix_enabled(const struct tlpb_cfgspace *cfg);
bool tlpb_cfg_msix_function_masked(const struct tlpb_cfgspace *cfg);
bool tlpb_cfg_msi_enabled(const struct tlpb_cfgspace *cfg);
uint32_t tlpb_cfg_max_payload_bytes(const struct tlpb_cfgspace *cfg);      /* 128..4096 */
uint32_t tlpb_cfg_max_read_request_bytes(const struct tlpb_cfgspace *cfg); /* 128..4096 */
bool tlpb_cfg_extended_tags_enabled(const struct tlpb_cfgspace *cfg);
/* Attributes the function may set on what it sends: Device Control's
 * Enable Relaxed Ordering and Enable No Snoop, Device Control 2's IDO
 * Request Enable and IDO Completion Enable (hardwired to 0 here: the
 * function does not implement ID-based ordering). */
bool tlpb_cfg_relaxed_ordering_enabled(const struct tlpb_cfgspace *cfg);
bool tlpb_cfg_no_snoop_enabled(const struct tlpb_cfgspace *cfg);
bool tlpb_cfg_ido_request_enabled(const struct tlpb_cfgspace *cfg);
bool tlpb_cfg_ido_completion_enabled(const struct tlpb_cfgspace *cfg);

/* Current base address programmed into BAR bar (0 if unprogrammed or not
 * implemented; 64-bit BARs combine both slots). */
uint64_t tlpb_cfg_bar_address(const struct tlpb_cfgspace *cfg, unsigned bar);

/* Which memory BAR decodes [addr, addr + len) with memory space enabled:
 * the BAR index with *offset set, or -1. */
int tlpb_cfg_decode_address(const struct tlpb_cfgspace *cfg, uint64_t addr, uint32_t len,
                            uint64_t *offset);

/* Which memory BAR a memory request hits: its address and length decoded
 * against the programmed BARs with Memory Space Enable set, as
 * tlpb_cfg_decode_address. The request's bar_hint plays no part (the one
 * rule of docs/protocol.md, "Address decode"). Returns the BAR index with
 * *offset set, or -1 (reads then complete with UR, writes are dropped). */
int tlpb_cfg_decode_request(const struct tlpb_cfgspace *cfg, const struct tlpb_tlp *tlp,
                            uint64_t *offset);

/* Reflect the INTx line in the status register's interrupt-status bit. */
void tlpb_cfg_set_interrupt_status(struct tlpb_cfgspace *cfg, bool asserted);

#endif
