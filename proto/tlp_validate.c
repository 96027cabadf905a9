/* The PCIe rules a structured TLP must satisfy before anything acts on it.
 * Every rejection names its rule with its own static string, so a log line
 * says exactly what a peer got wrong, and, where the PCIe checker has the
 * same rule, says which (enum tlpb_tlp_rule), so its owner counts it there. */
#include <errno.h>

#include "tlpb/tlp.h"

#define BYTE_COUNT_MAX 4096u

/* Why a TLP was refused: the text for the log, the checker's rule if any. */
struct refusal {
    const char *reason;
    enum tlpb_tlp_rule rule;
};

static int reject(struct refusal *r, const char *why)
{
    r->reason = why;
    return -EINVAL;
}

/* A rule the PCIe checker has too (docs/checker.md). */
static int reject_rule(struct refusal *r, enum tlpb_tlp_rule rule, const char *why)
{
    r->rule = rule;
    return reject(r, why);
}

/* A field that does not fit its PCIe width: a malformed TLP, not a rule
 * broken by a well-formed one. */
static int malformed(struct refusal *r, const char *why)
{
    r->reason = why;
    return -ERANGE;
}

/* First DW enables running up to byte 3, last DW enables starting at byte 0:
 * no gap between the enabled bytes and the DWs in between. */
static bool be_contiguous(uint8_t first_be, uint8_t last_be)
{
    bool first_ok = first_be == 0xf || first_be == 0xe || first_be == 0xc || first_be == 0x8;
    bool last_ok = last_be == 0xf || last_be == 0x7 || last_be == 0x3 || last_be == 0x1;
    return first_ok && last_ok;
}

static int validate_byte_enables(const struct tlpb_tlp *tlp, struct refusal *refusal)
{
    if (tlp->length_dw == 1) {
        /* Any first_be is fine, including 0 (zero-length) and gaps. */
        if (tlp->last_be != 0)
            return reject(refusal, "last_be must be 0 for a 1-DW request");
        return 0;
    }
    if (tlp->first_be == 0)
        return reject(refusal, "first_be is 0 in a multi-DW request");
    if (tlp->last_be == 0)
        return reject(refusal, "last_be is 0 in a multi-DW request");
    if (be_contiguous(tlp->first_be, tlp->last_be))
        return 0;
    /* Gaps are allowed in 1-DW requests and in QW-aligned 2-DW ones only. */
    if (tlp->length_dw > 2)
        return reject(refusal, "non-contiguous byte enables in a request longer than 2 DW");
    if (tlp->address & 7u)
        return reject(refusal, "non-contiguous byte enables in a 2-DW request not QW aligned");
    return 0;
}

static int validate_memory_request(const struct tlpb_tlp *tlp, uint64_t max_payload_bytes,
                                   bool unsplit, struct refusal *refusal)
{
    uint64_t bytes = (uint64_t)tlp->length_dw * 4u;

    if (tlp->length_dw == 0)
        return reject(refusal, "memory request length_dw is 0");
    if (tlp->kind == TLPB_TLP_MRD) {
        if (unsplit && bytes > TLPB_UNSPLIT_MAX_BYTES)
            return malformed(refusal, "MRd longer than the unsplit maximum");
    } else {
        if (bytes > max_payload_bytes)
            return reject(refusal, "MWr payload exceeds max payload size");
        if (tlp->payload_bytes != bytes)
            return reject(refusal, "MWr payload length does not match length_dw");
    }
    if (tlp->address & 3u)
        return reject(refusal, "memory address not DW aligned");
    if (tlp->address > UINT64_MAX - (bytes - 1u))
        return reject(refusal, "memory request wraps past the top of the address space");
    if (!unsplit && (tlp->address & (TLPB_PAGE_BYTES - 1u)) + bytes > TLPB_PAGE_BYTES)
        return reject_rule(refusal, TLPB_TLP_RULE_CROSSES_4K,
                           "memory request crosses a 4 KiB boundary");
    return validate_byte_enables(tlp, refusal);
}

static int validate_config_request(const struct tlpb_tlp *tlp, struct refusal *refusal)
{
    if (tlp->length_dw != 1)
        return reject(refusal, "config request length must be 1 DW");
    if (tlp->last_be != 0)
        return reject(refusal, "last_be must be 0 for a 1-DW request");
    if (tlp->cfg_register & 3u)
        return reject(refusal, "config register not DW aligned");
    /* Configuration requests travel on TC0 with default ordering and
     * snooping (PCIe: TC 000b, Attr[1:0] 00b). */
    if (tlp->traffic_class != 0)
        return reject(refusal, "config request traffic class must be 0");
    if (tlp->attributes & (TLPB_ATTR_NO_SNOOP | TLPB_ATTR_RELAXED_ORDERING))
        return reject(refusal, "config request with relaxed ordering or no snoop");
    if (tlp->kind == TLPB_TLP_CFGWR0 && tlp->payload_bytes != 4u)
        return reject(refusal, "CfgWr0 payload length does not match length_dw");
    return 0;
}

static int validate_completion(const struct tlpb_tlp *tlp, uint64_t max_payload_bytes,
                               bool unsplit, struct refusal *refusal)
{
    switch (tlp->status) {
    case TLPB_CPL_SC:
    case TLPB_CPL_UR:
    case TLPB_CPL_CRS:
    case TLPB_CPL_CA:
        break;
    default:
        return malformed(refusal, "unknown completion status");
    }
    if (tlp->kind == TLPB_TLP_CPLD && tlp->status != TLPB_CPL_SC)
        return reject_rule(refusal, TLPB_TLP_RULE_CPLD_STATUS,
                           "completion with data has non-SC status");
    if (tlp->byte_count == 0)
        return reject(refusal, "completion byte count is 0");
    if (unsplit && tlp->byte_count > TLPB_UNSPLIT_MAX_BYTES)
        return malformed(refusal, "completion byte count above the unsplit maximum");
    if (tlp->kind == TLPB_TLP_CPL)
        return 0; /* Length is reserved on a Cpl */

    uint64_t bytes = (uint64_t)tlp->length_dw * 4u;
    if (tlp->length_dw == 0)
        return reject(refusal, "CplD length_dw is 0");
    if (bytes > max_payload_bytes)
        return reject(refusal, "CplD payload exceeds max payload size");
    if (tlp->payload_bytes != bytes)
        return reject(refusal, "CplD payload length does not match length_dw");
    /* Data starts at lower_address & 3 and is at most byte_count long. */
    uint64_t needed_bytes = ((tlp->lower_address & 3u) + (uint64_t)tlp->byte_count + 3u) & ~3ull;
    if (bytes > needed_bytes)
        return reject_rule(refusal, TLPB_TLP_RULE_CPLD_BEYOND_BYTE_COUNT,
                           "CplD carries more data than its byte count");
    return 0;
}

static int validate(const struct tlpb_tlp *tlp, const struct tlpb_tlp_limits *limits,
                    struct refusal *refusal)
{
    bool unsplit = limits && limits->unsplit;
    uint64_t max_payload_bytes = limits && limits->max_payload_bytes
                                     ? limits->max_payload_bytes : TLPB_PAGE_BYTES;
    if (max_payload_bytes > TLPB_MAX_PAYLOAD_DW * 4u)
        max_payload_bytes = TLPB_MAX_PAYLOAD_DW * 4u;
    if (unsplit)
        max_payload_bytes = TLPB_UNSPLIT_MAX_BYTES;

    switch (tlp->kind) {
    case TLPB_TLP_MRD:
    case TLPB_TLP_MWR:
    case TLPB_TLP_CFGRD0:
    case TLPB_TLP_CFGWR0:
    case TLPB_TLP_CPL:
    case TLPB_TLP_CPLD:
        break;
    case TLPB_TLP_INVALID:
    default:
        return malformed(refusal, "unknown TLP kind");
    }
    if (tlp->traffic_class > 7)
        return malformed(refusal, "traffic class out of range");
    if (tlp->attributes & ~(TLPB_ATTR_NO_SNOOP | TLPB_ATTR_RELAXED_ORDERING |
                            TLPB_ATTR_ID_ORDERING))
        return malformed(refusal, "attributes out of range");
    if (tlp->first_be > 0xf || tlp->last_be > 0xf)
        return malformed(refusal, "byte enables wider than 4 bits");
    if (tlp->bar_hint != TLPB_NO_BAR && (tlp->bar_hint < 0 || tlp->bar_hint > 5))
        return malformed(refusal, "BAR hint out of range");
    if (tlp->lower_address > 0x7fu)
        return malformed(refusal, "lower address out of range");
    if (tlp->cfg_register > 0xffcu)
        return malformed(refusal, "config register out of range");
    /* Without unsplit DMA, Length is the 10-bit PCIe field (1..1024 DW) and
     * Byte Count the 12-bit one (1..4096): more cannot be encoded. A Cpl's
     * Length is reserved. */
    if (!unsplit && tlp->kind != TLPB_TLP_CPL && tlp->length_dw > TLPB_MAX_PAYLOAD_DW)
        return malformed(refusal, "length_dw above 1024 without unsplit DMA");
    if (!unsplit && tlpb_tlp_is_completion(tlp->kind) && tlp->byte_count > BYTE_COUNT_MAX)
        return malformed(refusal, "completion byte count above 4096");
    if (!tlpb_tlp_has_data(tlp->kind) && tlp->payload_bytes != 0)
        return reject(refusal, "payload on a TLP kind without data");
    if (tlp->payload_bytes != 0 && tlp->payload == NULL)
        return reject(refusal, "payload_bytes set but payload missing");

    switch (tlp->kind) {
    case TLPB_TLP_MRD:
    case TLPB_TLP_MWR:
        return validate_memory_request(tlp, max_payload_bytes, unsplit, refusal);
    case TLPB_TLP_CFGRD0:
    case TLPB_TLP_CFGWR0:
        return validate_config_request(tlp, refusal);
    default:
        return validate_completion(tlp, max_payload_bytes, unsplit, refusal);
    }
}

int tlpb_tlp_validate_rule(const struct tlpb_tlp *tlp, const struct tlpb_tlp_limits *limits,
                           const char **reason, enum tlpb_tlp_rule *rule)
{
    struct refusal why = {.reason = NULL, .rule = TLPB_TLP_RULE_OTHER};
    int rc = validate(tlp, limits, &why);
    if (reason && rc != 0)
        *reason = why.reason;
    if (rule)
        *rule = why.rule;
    return rc;
}

int tlpb_tlp_validate(const struct tlpb_tlp *tlp, const struct tlpb_tlp_limits *limits,
                      const char **reason)
{
    return tlpb_tlp_validate_rule(tlp, limits, reason, NULL);
}
