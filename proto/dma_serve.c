/* Completions for a device's DMA read, built as the root complex does
 * (tlpb/dma.h). */
#include "tlpb/dma.h"

#include <stdlib.h>
#include <string.h>

void tlpb_dma_scratch_free(struct tlpb_dma_scratch *s)
{
    free(s->buf);
    s->buf = NULL;
    s->size = 0;
}

static bool scratch_grow(struct tlpb_dma_scratch *s, size_t need)
{
    if (need <= s->size)
        return true;
    size_t size = s->size ? s->size : 4096;
    while (size < need)
        size *= 2;
    uint8_t *p = realloc(s->buf, size);
    if (!p)
        return false;
    s->buf = p;
    s->size = size;
    return true;
}

enum tlpb_cpl_status tlpb_dma_serve_read(struct tlpb_dma_scratch *scratch,
                                         const struct tlpb_tlp *req, uint16_t completer_id,
                                         uint32_t max_payload_bytes, bool unsplit,
                                         tlpb_dma_read_fn read, void *read_opaque,
                                         tlpb_dma_emit_fn emit, void *emit_opaque)
{
    uint32_t bytes = tlpb_tlp_request_bytes(req);
    uint64_t addr = tlpb_tlp_first_byte_address(req);
    uint32_t lead = (uint32_t)(addr & 3u);
    struct tlpb_tlp cpl;
    /* Memory is read once, at its offset within the first DW, so each
     * completion's payload is a slice of this buffer: no second copy. */
    size_t span = ((size_t)lead + bytes + 3u) & ~(size_t)3u;
    if (!scratch_grow(scratch, span ? span : 4)) {
        tlpb_completion_error_for(&cpl, req, completer_id, TLPB_CPL_CA);
        emit(emit_opaque, &cpl);
        return TLPB_CPL_CA;
    }
    uint8_t *buf = scratch->buf;
    int st = read(read_opaque, addr, buf + lead, bytes);
    if (st != 0) {
        enum tlpb_cpl_status status = st == TLPB_CPL_CA ? TLPB_CPL_CA : TLPB_CPL_UR;
        tlpb_completion_error_for(&cpl, req, completer_id, status);
        emit(emit_opaque, &cpl);
        return status;
    }
    if (bytes == 0) {
        /* Zero-length read: one DW of data, byte count 1 (PCIe 2.2.5). */
        tlpb_completion_for(&cpl, req, completer_id, addr, 1, 1);
        static const uint8_t zero[4];
        cpl.payload = zero;
        cpl.payload_bytes = 4;
        emit(emit_opaque, &cpl);
        return TLPB_CPL_SC;
    }
    memset(buf, 0, lead);
    memset(buf + lead + bytes, 0, span - lead - bytes);
    uint32_t done = 0;
    while (done < bytes) {
        uint32_t remaining = bytes - done;
        uint64_t at = addr + done;
        uint32_t chunk = (unsplit && bytes > 4096)
                             ? remaining
                             : tlpb_split_completion_bytes(at, remaining, max_payload_bytes,
                                                           TLPB_DMA_RCB_BYTES);
        if (chunk == 0) { /* cannot happen with RCB 64 and MPS >= 128; never spin */
            tlpb_completion_error_for(&cpl, req, completer_id, TLPB_CPL_CA);
            emit(emit_opaque, &cpl);
            return TLPB_CPL_CA;
        }
        tlpb_completion_for(&cpl, req, completer_id, at, chunk, remaining);
        /* Every completion but the first starts DW aligned (on an RCB). */
        cpl.payload = buf + ((at & ~(uint64_t)3u) - (addr & ~(uint64_t)3u));
        cpl.payload_bytes = cpl.length_dw * 4u;
        emit(emit_opaque, &cpl);
        done += chunk;
    }
    return TLPB_CPL_SC;
}
