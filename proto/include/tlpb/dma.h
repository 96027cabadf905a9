/* Serving a device's DMA read as the root complex does: completions built
 * from a memory accessor. One implementation for everyone who answers DMA
 * reads (libtlpbhost from its guest-memory callbacks, tlpbridged from shared
 * guest memory), so both split and pad completions the same way. */
#ifndef TLPB_DMA_H
#define TLPB_DMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tlpb/tlp.h"

/* The root complex's read completion boundary. */
#define TLPB_DMA_RCB_BYTES 64u

/* Read bytes of memory at addr into dst: 0, or TLPB_CPL_CA (completer
 * abort) or any other nonzero value (unsupported request: not memory). */
typedef int (*tlpb_dma_read_fn)(void *opaque, uint64_t addr, void *dst, uint32_t bytes);
/* One completion, ready to send (payload valid only during the call). */
typedef void (*tlpb_dma_emit_fn)(void *opaque, struct tlpb_tlp *cpl);

/* The buffer the payload is read into, grown as needed and reused. */
struct tlpb_dma_scratch {
    uint8_t *buf;
    size_t size;
};
void tlpb_dma_scratch_free(struct tlpb_dma_scratch *s);

/* Answer the memory read req as completer completer_id: read its bytes once
 * with read, then emit its completions in order: split at max_payload_bytes
 * and the 64-byte RCB (unsplit: reads over 4 KiB in one completion, as a
 * host that granted unsplit DMA does), a zero-length read as one DW with
 * byte count 1, a read that fails as one UR (or CA) completion. Returns the
 * status given: TLPB_CPL_SC, TLPB_CPL_UR or TLPB_CPL_CA. */
enum tlpb_cpl_status tlpb_dma_serve_read(struct tlpb_dma_scratch *scratch,
                                         const struct tlpb_tlp *req, uint16_t completer_id,
                                         uint32_t max_payload_bytes, bool unsplit,
                                         tlpb_dma_read_fn read, void *read_opaque,
                                         tlpb_dma_emit_fn emit, void *emit_opaque);

#endif
