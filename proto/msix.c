/* MSI-X table and PBA emulation (see tlpb/msix.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tlpb/byteorder.h"
#include "tlpb/msix.h"

static uint64_t pba_bytes(const struct tlpb_msix *msix)
{
    return ((uint64_t)msix->vectors + 63u) / 64u * 8u;
}

int tlpb_msix_init(struct tlpb_msix *msix, const struct tlpb_devdesc *desc)
{
    memset(msix, 0, sizeof(*msix));
    if (desc->msix_vectors == 0)
        return 0;
    msix->table = calloc(desc->msix_vectors, sizeof(*msix->table));
    msix->pending = calloc((desc->msix_vectors + 63u) / 64u, sizeof(*msix->pending));
    if (!msix->table || !msix->pending) {
        tlpb_msix_fini(msix);
        return -ENOMEM;
    }
    msix->vectors = desc->msix_vectors;
    msix->table_bar = desc->msix_table_bar;
    msix->table_offset = desc->msix_table_offset;
    msix->pba_bar = desc->msix_pba_bar;
    msix->pba_offset = desc->msix_pba_offset;
    tlpb_msix_reset(msix);
    return 0;
}

void tlpb_msix_fini(struct tlpb_msix *msix)
{
    free(msix->table);
    free(msix->pending);
    memset(msix, 0, sizeof(*msix));
}

void tlpb_msix_reset(struct tlpb_msix *msix)
{
    if (msix->vectors == 0)
        return;
    memset(msix->table, 0, msix->vectors * sizeof(*msix->table));
    memset(msix->pending, 0, pba_bytes(msix));
    for (unsigned v = 0; v < msix->vectors; v++)
        msix->table[v][3] = TLPB_MSIX_VECTOR_MASKED; /* vectors come out of reset masked */
}

static bool table_hit(const struct tlpb_msix *msix, unsigned bar, uint64_t offset)
{
    return msix->vectors > 0 && bar == msix->table_bar && offset >= msix->table_offset &&
           offset - msix->table_offset < (uint64_t)msix->vectors * TLPB_MSIX_ENTRY_BYTES;
}

static bool pba_hit(const struct tlpb_msix *msix, unsigned bar, uint64_t offset)
{
    return msix->vectors > 0 && bar == msix->pba_bar && offset >= msix->pba_offset &&
           offset - msix->pba_offset < pba_bytes(msix);
}

bool tlpb_msix_hit(const struct tlpb_msix *msix, unsigned bar, uint64_t offset)
{
    return table_hit(msix, bar, offset) || pba_hit(msix, bar, offset);
}

uint32_t tlpb_msix_read_dw(const struct tlpb_msix *msix, unsigned bar, uint64_t dw_offset)
{
    dw_offset &= ~(uint64_t)3;
    if (table_hit(msix, bar, dw_offset)) {
        uint64_t rel = dw_offset - msix->table_offset;
        return msix->table[rel / TLPB_MSIX_ENTRY_BYTES][(rel % TLPB_MSIX_ENTRY_BYTES) / 4];
    }
    if (pba_hit(msix, bar, dw_offset)) {
        uint64_t rel = dw_offset - msix->pba_offset;
        return (uint32_t)(msix->pending[rel / 8] >> (32 * ((rel / 4) & 1)));
    }
    return 0;
}

void tlpb_msix_write_dw(struct tlpb_msix *msix, unsigned bar, uint64_t dw_offset, uint32_t value,
                        uint8_t be)
{
    /* Message Address is DW aligned; only the mask bit of Vector Control is
     * defined. */
    static const uint32_t writable[4] = {0xFFFFFFFCu, 0xFFFFFFFFu, 0xFFFFFFFFu,
                                         TLPB_MSIX_VECTOR_MASKED};

    dw_offset &= ~(uint64_t)3;
    if (!table_hit(msix, bar, dw_offset))
        return; /* the PBA is read-only */
    uint64_t rel = dw_offset - msix->table_offset;
    unsigned word = (unsigned)(rel % TLPB_MSIX_ENTRY_BYTES) / 4;
    uint32_t *entry = &msix->table[rel / TLPB_MSIX_ENTRY_BYTES][word];
    uint32_t mask = writable[word] & tlpb_byte_enable_mask(be);
    *entry = (*entry & ~mask) | (value & mask);
}

void tlpb_msix_read(const struct tlpb_msix *msix, unsigned bar, uint64_t offset, void *buf,
                    unsigned len)
{
    uint8_t *out = buf;
    for (unsigned i = 0; i < len; i++) {
        uint64_t at = offset + i;
        out[i] = (uint8_t)(tlpb_msix_read_dw(msix, bar, at) >> (8 * (at & 3u)));
    }
}

void tlpb_msix_write(struct tlpb_msix *msix, unsigned bar, uint64_t offset, const void *buf,
                     unsigned len)
{
    const uint8_t *in = buf;
    unsigned i = 0;
    while (i < len) {
        uint64_t at = offset + i;
        uint8_t lanes[4] = {0};
        uint8_t be = 0;
        for (unsigned lane = (unsigned)(at & 3u); lane < 4 && i < len; lane++, i++) {
            lanes[lane] = in[i];
            be |= (uint8_t)(1u << lane);
        }
        tlpb_msix_write_dw(msix, bar, at, tlpb_get_le32(lanes), be);
    }
}

bool tlpb_msix_vector_masked(const struct tlpb_msix *msix, unsigned vector)
{
    return (msix->table[vector][3] & TLPB_MSIX_VECTOR_MASKED) != 0;
}

void tlpb_msix_set_pending(struct tlpb_msix *msix, unsigned vector)
{
    if (vector < msix->vectors)
        msix->pending[vector / 64] |= UINT64_C(1) << (vector % 64);
}

bool tlpb_msix_pending(const struct tlpb_msix *msix, unsigned vector)
{
    return vector < msix->vectors && (msix->pending[vector / 64] >> (vector % 64) & 1u);
}

int tlpb_msix_take_deliverable(struct tlpb_msix *msix)
{
    for (unsigned v = 0; v < msix->vectors; v++) {
        if (tlpb_msix_pending(msix, v) && !tlpb_msix_vector_masked(msix, v)) {
            msix->pending[v / 64] &= ~(UINT64_C(1) << (v % 64));
            return (int)v;
        }
    }
    return -1;
}
