/* Building TLPs: byte ranges to length and byte enables, and completions
 * for requests, following the PCIe rules for Byte Count and Lower Address
 * (base specification, "Completion Rules" and "Data Return for Read
 * Requests"). */
#include <errno.h>
#include <string.h>

#include "tlpb/tlp.h"

/* Disabled bytes below the first enabled byte of a DW (4 when none is). */
static unsigned be_leading_disabled(uint8_t be)
{
    be &= 0xf;
    return be ? (unsigned)__builtin_ctz(be) : 4u;
}

/* Disabled bytes above the last enabled byte of a DW (4 when none is). */
static unsigned be_trailing_disabled(uint8_t be)
{
    be &= 0xf;
    return be ? 3u - (31u - (unsigned)__builtin_clz(be)) : 4u;
}

int tlpb_tlp_set_mem_range(struct tlpb_tlp *tlp, uint64_t addr, uint32_t len_bytes)
{
    uint64_t start_dw = addr & ~(uint64_t)3;

    if (len_bytes == 0) {
        /* PCIe zero-length read/write: one DW with no byte enabled. */
        tlp->address = start_dw;
        tlp->length_dw = 1;
        tlp->first_be = 0;
        tlp->last_be = 0;
        return 0;
    }
    /* The last byte must not wrap past the top of the 64-bit space. */
    if (addr > UINT64_MAX - (len_bytes - 1u))
        return -EINVAL;
    uint64_t last = addr + (len_bytes - 1u);
    uint64_t span_bytes = (last | 3u) - start_dw + 1u;
    if (span_bytes > TLPB_UNSPLIT_MAX_BYTES)
        return -EINVAL;

    uint8_t first_be = (uint8_t)((0xfu << (addr & 3u)) & 0xfu);
    uint8_t last_be = (uint8_t)(0xfu >> (3u - (last & 3u)));
    tlp->address = start_dw;
    tlp->length_dw = (uint32_t)(span_bytes / 4u);
    if (tlp->length_dw == 1) {
        /* Both ends are in the same DW: only first_be describes it. */
        tlp->first_be = first_be & last_be;
        tlp->last_be = 0;
    } else {
        tlp->first_be = first_be;
        tlp->last_be = last_be;
    }
    return 0;
}

/* As the Byte Count of a first completion is computed from Length and the
 * byte enables, except that a zero-length request touches 0 bytes. Saturates
 * instead of wrapping on an absurd length_dw. */
uint32_t tlpb_tlp_request_bytes(const struct tlpb_tlp *tlp)
{
    if (tlp->length_dw == 0)
        return 0;
    if (tlp->length_dw == 1) {
        uint8_t be = tlp->first_be & 0xf;
        if (be == 0)
            return 0;
        /* Non-contiguous enables still touch the span between them. */
        return 4u - be_leading_disabled(be) - be_trailing_disabled(be);
    }
    uint64_t bytes = (uint64_t)tlp->length_dw * 4u - be_leading_disabled(tlp->first_be) -
                     be_trailing_disabled(tlp->last_be);
    return bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)bytes;
}

uint64_t tlpb_tlp_first_byte_address(const struct tlpb_tlp *tlp)
{
    uint64_t base = tlp->kind == TLPB_TLP_CFGRD0 || tlp->kind == TLPB_TLP_CFGWR0
                        ? tlp->cfg_register : tlp->address;
    uint8_t be = tlp->first_be & 0xf;
    /* With no byte enabled the first byte is the DW's own address, which is
     * also what Lower Address reports for a zero-length read. */
    return be ? base + be_leading_disabled(be) : base;
}

uint8_t tlpb_tlp_dw_byte_enables(const struct tlpb_tlp *tlp, uint32_t dw_index)
{
    if (dw_index == 0)
        return tlp->first_be & 0xF;
    if (dw_index + 1 == tlp->length_dw)
        return tlp->last_be & 0xF;
    return 0xF;
}

static bool is_config_request(enum tlpb_tlp_kind kind)
{
    return kind == TLPB_TLP_CFGRD0 || kind == TLPB_TLP_CFGWR0;
}

/* Fields every completion copies from its request: the completion is routed
 * back by requester ID and tag, and keeps the request's TC and attributes. */
static void completion_header(struct tlpb_tlp *cpl, const struct tlpb_tlp *req,
                              uint16_t completer_id)
{
    memset(cpl, 0, sizeof(*cpl));
    cpl->requester_id = req->requester_id;
    cpl->tag = req->tag;
    cpl->traffic_class = req->traffic_class;
    cpl->attributes = req->attributes;
    cpl->completer_id = completer_id;
    cpl->status = TLPB_CPL_SC;
    cpl->bar_hint = TLPB_NO_BAR;
}

void tlpb_completion_for(struct tlpb_tlp *cpl, const struct tlpb_tlp *req,
                         uint16_t completer_id, uint64_t addr, uint32_t chunk_bytes,
                         uint32_t remaining)
{
    completion_header(cpl, req, completer_id);

    if (is_config_request(req->kind)) {
        /* Non-memory completions: Byte Count 4 and Lower Address 0. */
        cpl->byte_count = 4;
        cpl->lower_address = 0;
        if (req->kind == TLPB_TLP_CFGRD0) {
            cpl->kind = TLPB_TLP_CPLD;
            cpl->length_dw = 1;
            cpl->payload_bytes = 4;
        } else {
            cpl->kind = TLPB_TLP_CPL;
        }
        return;
    }

    cpl->kind = TLPB_TLP_CPLD;
    if (chunk_bytes == 0) {
        /* Zero-length read: one DW, Byte Count 1, Lower Address of the DW. */
        cpl->byte_count = 1;
        cpl->lower_address = (uint8_t)(addr & 0x7cu);
        cpl->length_dw = 1;
        cpl->payload_bytes = 4;
        return;
    }
    /* Data starts at addr & 3 within the first DW, as the request's first
     * byte enable placed it. */
    uint64_t span_dw = ((addr & 3u) + (uint64_t)chunk_bytes + 3u) / 4u;
    cpl->byte_count = remaining;
    cpl->lower_address = (uint8_t)(addr & 0x7fu);
    cpl->length_dw = (uint32_t)span_dw;
    cpl->payload_bytes = span_dw * 4u > UINT32_MAX ? UINT32_MAX : (uint32_t)(span_dw * 4u);
}

void tlpb_completion_error_for(struct tlpb_tlp *cpl, const struct tlpb_tlp *req,
                               uint16_t completer_id, enum tlpb_cpl_status status)
{
    completion_header(cpl, req, completer_id);
    cpl->kind = TLPB_TLP_CPL;
    cpl->status = status;
    if (is_config_request(req->kind)) {
        cpl->byte_count = 4;
        cpl->lower_address = 0;
        return;
    }
    /* A memory read completion's Byte Count is what is still owed, here the
     * whole request; Lower Address is where its data would have started. */
    uint32_t bytes = tlpb_tlp_request_bytes(req);
    cpl->byte_count = bytes ? bytes : 1u;
    cpl->lower_address = (uint8_t)(tlpb_tlp_first_byte_address(req) & 0x7fu);
}
