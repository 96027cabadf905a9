/* The MSI-X table and Pending Bit Array of one function, as they sit in BAR
 * space (PCIe 7.7.2). One emulation for every side: the host library owns
 * the real table and pending bits (as QEMU does), and the device sides (the
 * hlsim SDK, the RTL adapter) answer table and PBA accesses that reach them
 * with the same rules. Function-level masking and MSI-X Enable live in
 * config space (tlpb/cfgspace.h); callers combine the two. */
#ifndef TLPB_MSIX_H
#define TLPB_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#include "tlpb/devdesc.h"

#define TLPB_MSIX_ENTRY_BYTES 16u
#define TLPB_MSIX_VECTOR_MASKED 0x1u /* Vector Control bit 0 */

struct tlpb_msix {
    uint16_t vectors;
    uint8_t table_bar;
    uint32_t table_offset;
    uint8_t pba_bar;
    uint32_t pba_offset;
    /* per vector: Message Address, Message Upper Address, Message Data,
     * Vector Control */
    uint32_t (*table)[4];
    uint64_t *pending; /* the PBA, vector v at bit v % 64 of QW v / 64 */
};

/* Size the table and PBA from the description (none when it has no MSI-X)
 * and reset them. msix must be zeroed or finished. Returns 0 or -ENOMEM. */
int tlpb_msix_init(struct tlpb_msix *msix, const struct tlpb_devdesc *desc);
void tlpb_msix_fini(struct tlpb_msix *msix);
/* Reset state: entries zero, every vector masked, nothing pending. */
void tlpb_msix_reset(struct tlpb_msix *msix);

/* Whether the byte at offset in BAR bar belongs to the table or the PBA. */
bool tlpb_msix_hit(const struct tlpb_msix *msix, unsigned bar, uint64_t offset);

/* One DW at a DW-aligned offset: table entries read back, PBA DWs show the
 * pending bits, anything else reads 0. Writes change only the writable bits
 * of a table entry (Message Address bits 1:0 and Vector Control bits 31:1
 * are read-only zero) and only the bytes enabled in be; the PBA is
 * read-only. */
uint32_t tlpb_msix_read_dw(const struct tlpb_msix *msix, unsigned bar, uint64_t dw_offset);
void tlpb_msix_write_dw(struct tlpb_msix *msix, unsigned bar, uint64_t dw_offset, uint32_t value,
                        uint8_t be);
/* A CPU access of len bytes at any alignment, done DW by DW as above. */
void tlpb_msix_read(const struct tlpb_msix *msix, unsigned bar, uint64_t offset, void *buf,
                    unsigned len);
void tlpb_msix_write(struct tlpb_msix *msix, unsigned bar, uint64_t offset, const void *buf,
                     unsigned len);

/* Vector Control's mask bit of a vector (vector < vectors). */
bool tlpb_msix_vector_masked(const struct tlpb_msix *msix, unsigned vector);
/* Pending bits: set when a masked vector fires. */
void tlpb_msix_set_pending(struct tlpb_msix *msix, unsigned vector);
bool tlpb_msix_pending(const struct tlpb_msix *msix, unsigned vector);
/* The lowest pending vector whose mask bit is clear, with its pending bit
 * cleared (the message goes out now); -1 when there is none. */
int tlpb_msix_take_deliverable(struct tlpb_msix *msix);

#endif
