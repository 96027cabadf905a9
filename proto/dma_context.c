/* What a device's DMA was for (tlpb/dma_context.h). */
#include "tlpb/dma_context.h"

#include <stdio.h>
#include <string.h>

void tlpb_dma_context_note(struct tlpb_dma_context_history *h, bool write, uint64_t address,
                           uint32_t length_bytes, const char *text)
{
    if (!text || !text[0])
        return;
    struct tlpb_dma_context_record *r = &h->records[h->next];
    h->next = (h->next + 1) % TLPB_DMA_CONTEXT_HISTORY;
    r->write = write;
    r->address = address;
    r->length_bytes = length_bytes;
    snprintf(r->text, sizeof(r->text), "%s", text);
}

const char *tlpb_dma_context_find(const struct tlpb_dma_context_history *h, bool write,
                                  uint64_t address)
{
    /* Newest first: a later DMA to the same place is the likelier culprit. */
    for (unsigned i = 1; i <= TLPB_DMA_CONTEXT_HISTORY; i++) {
        const struct tlpb_dma_context_record *r =
            &h->records[(h->next + TLPB_DMA_CONTEXT_HISTORY - i) % TLPB_DMA_CONTEXT_HISTORY];
        if (!r->text[0] || r->write != write)
            continue;
        /* A zero-length read names one byte. */
        uint64_t span = r->length_bytes ? r->length_bytes : 1u;
        if (address >= r->address && address - r->address < span)
            return r->text;
    }
    return NULL;
}

void tlpb_dma_context_forget(struct tlpb_dma_context_history *h)
{
    memset(h, 0, sizeof(*h));
}
