/* Splitting transfers into TLPs: requests by max payload / max read request
 * size and 4 KiB boundaries, read completions by max payload size and the
 * read completion boundary. */
#include "tlpb/tlp.h"

uint32_t tlpb_split_request_bytes(uint64_t addr, uint32_t remaining, uint32_t max_bytes)
{
    if (remaining == 0)
        return 0;
    /* 0 means 4096 as in tlpb_tlp_limits; above 4096 the page rule binds. */
    if (max_bytes == 0 || max_bytes > TLPB_PAGE_BYTES)
        max_bytes = TLPB_PAGE_BYTES;

    uint32_t to_page_end = TLPB_PAGE_BYTES - (uint32_t)(addr & (TLPB_PAGE_BYTES - 1u));
    /* The limit is on the Length field, which counts whole DWs: an unaligned
     * start spends part of the first DW. */
    uint32_t limit = max_bytes - (uint32_t)(addr & 3u);
    uint32_t bytes = remaining;
    if (bytes > limit)
        bytes = limit;
    if (bytes > to_page_end)
        bytes = to_page_end;
    return bytes;
}

uint32_t tlpb_split_completion_bytes(uint64_t addr, uint32_t remaining,
                                     uint32_t max_payload_bytes, uint32_t rcb_bytes)
{
    if (remaining == 0)
        return 0;
    if (max_payload_bytes == 0)
        max_payload_bytes = TLPB_PAGE_BYTES;
    /* PCIe only knows RCBs of 64 and 128 bytes and payload sizes of at least
     * 128, so a non-final completion can always end on an RCB boundary
     * within max payload. Anything else cannot satisfy both rules. */
    if ((rcb_bytes != 64 && rcb_bytes != 128) || max_payload_bytes < rcb_bytes)
        return 0;

    /* The rest fits (its DW span, which is what Length counts): this is the
     * last completion, which may end anywhere. */
    if ((uint64_t)(addr & 3u) + remaining <= max_payload_bytes)
        return remaining;

    /* Not the last: end on the last RCB boundary within max payload. The
     * first completion may start unaligned; later ones then start aligned. */
    uint32_t rcb_mask = rcb_bytes - 1u;
    uint32_t past_boundary =
        ((uint32_t)(addr & rcb_mask) + (max_payload_bytes & rcb_mask)) & rcb_mask;
    return max_payload_bytes - past_boundary;
}
