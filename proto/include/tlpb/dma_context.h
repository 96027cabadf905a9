/* What a device's DMA was for: the text its model gave (hlsim_dma_set_context)
 * with each DMA it asked for, kept for the last DMAs so that a DMA fault the
 * host reports later (a write is posted: its fault comes after it) can be
 * named. One history for everyone who keeps it: the hlsim SDK for its model,
 * tlpbridged for a simulator process (DmaContext messages). */
#ifndef TLPB_DMA_CONTEXT_H
#define TLPB_DMA_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>

/* Longest text kept, terminator included (hlsim.h's HLSIM_DMA_CONTEXT_MAX). */
#define TLPB_DMA_CONTEXT_MAX 160u
/* DMAs remembered per device. */
#define TLPB_DMA_CONTEXT_HISTORY 64u

struct tlpb_dma_context_record {
    bool write;
    uint64_t address;
    uint32_t length_bytes;           /* 0: a zero-length read, naming one byte */
    char text[TLPB_DMA_CONTEXT_MAX]; /* "" : an empty slot */
};

/* A ring; next is the oldest slot once full. Zero-initialised: empty. */
struct tlpb_dma_context_history {
    struct tlpb_dma_context_record records[TLPB_DMA_CONTEXT_HISTORY];
    unsigned next;
};

/* Remember that the DMA of length_bytes at address, in this direction, is
 * for text (cut to TLPB_DMA_CONTEXT_MAX - 1 bytes). An empty text is not
 * kept. */
void tlpb_dma_context_note(struct tlpb_dma_context_history *h, bool write, uint64_t address,
                           uint32_t length_bytes, const char *text);
/* The text of the most recent DMA in this direction covering address (a
 * later DMA to the same place is the likelier culprit), or NULL. */
const char *tlpb_dma_context_find(const struct tlpb_dma_context_history *h, bool write,
                                  uint64_t address);
void tlpb_dma_context_forget(struct tlpb_dma_context_history *h);

#endif
