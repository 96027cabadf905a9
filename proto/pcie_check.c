/* The stateful PCIe checker: the rules a TLP can only break given the
 * programmed configuration or the requests still outstanding. The per-TLP
 * rules are tlpb_tlp_validate's; the owner runs that first. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tlpb/pcie_check.h"

/* Every read completion boundary is a multiple of 64 bytes: a completion
 * that is not the last must end on it (the root complex and our devices
 * use 64). */
#define CHECK_RCB_BYTES 64u
/* Config requests and their completions carry one DW. */
#define CONFIG_BYTE_COUNT 4u

const struct tlpb_check_rule_info tlpb_check_rules[TLPB_CHECK_RULE_COUNT] = {
    [TLPB_CHECK_MWR_EXCEEDS_MPS] = {TLPB_CHECK_MWR_EXCEEDS_MPS, "mwr_exceeds_mps", "2.2.2",
        "device memory write payload larger than the programmed Max_Payload_Size"},
    [TLPB_CHECK_MRD_EXCEEDS_MRRS] = {TLPB_CHECK_MRD_EXCEEDS_MRRS, "mrd_exceeds_mrrs", "2.2.7",
        "device memory read larger than the programmed Max_Read_Request_Size"},
    [TLPB_CHECK_CROSSES_4K] = {TLPB_CHECK_CROSSES_4K, "crosses_4k", "2.2.7",
        "memory request crossing a 4 KiB boundary"},
    [TLPB_CHECK_BUS_MASTER_DISABLED] = {TLPB_CHECK_BUS_MASTER_DISABLED, "bus_master_disabled",
        "7.5.1.1.3", "device memory request, MSI or MSI-X with Bus Master Enable clear"},
    [TLPB_CHECK_MEMORY_SPACE_DISABLED] = {TLPB_CHECK_MEMORY_SPACE_DISABLED,
        "memory_space_disabled", "7.5.1.1.3",
        "host memory request to the device with Memory Space Enable clear"},
    [TLPB_CHECK_REQUESTER_ID] = {TLPB_CHECK_REQUESTER_ID, "requester_id", "2.2.6.2",
        "device request with a requester ID other than the device's"},
    [TLPB_CHECK_COMPLETER_ID] = {TLPB_CHECK_COMPLETER_ID, "completer_id", "2.2.9",
        "device completion with a completer ID other than the device's"},
    [TLPB_CHECK_UNEXPECTED_COMPLETION] = {TLPB_CHECK_UNEXPECTED_COMPLETION,
        "unexpected_completion", "2.3.2",
        "completion whose requester ID and tag match no outstanding request"},
    [TLPB_CHECK_CPL_STATUS_WITH_DATA] = {TLPB_CHECK_CPL_STATUS_WITH_DATA, "cpl_status_with_data",
        "2.2.9", "completion with data and a status other than Successful Completion"},
    [TLPB_CHECK_CPL_BYTE_COUNT] = {TLPB_CHECK_CPL_BYTE_COUNT, "cpl_byte_count", "2.2.9",
        "completion byte count not the bytes the request still owes"},
    [TLPB_CHECK_CPL_LOWER_ADDRESS] = {TLPB_CHECK_CPL_LOWER_ADDRESS, "cpl_lower_address",
        "2.2.9", "completion lower address not that of the next byte owed"},
    [TLPB_CHECK_CPL_LENGTH] = {TLPB_CHECK_CPL_LENGTH, "cpl_length", "2.3.1.1",
        "completion length inconsistent with its byte count or its request"},
    [TLPB_CHECK_CPL_EXCEEDS_MPS] = {TLPB_CHECK_CPL_EXCEEDS_MPS, "cpl_exceeds_mps", "2.2.2",
        "completion with data larger than the programmed Max_Payload_Size"},
    [TLPB_CHECK_CPL_RCB] = {TLPB_CHECK_CPL_RCB, "cpl_rcb", "2.3.1.1",
        "read completion split not on the read completion boundary (64 bytes)"},
    [TLPB_CHECK_CPL_AFTER_LAST_BYTE] = {TLPB_CHECK_CPL_AFTER_LAST_BYTE, "cpl_after_last_byte",
        "2.3.2", "completion for a request whose last byte was already returned"},
    [TLPB_CHECK_COMPLETION_TIMEOUT] = {TLPB_CHECK_COMPLETION_TIMEOUT, "completion_timeout",
        "2.8", "non-posted request not completed within the completion timeout"},
    [TLPB_CHECK_MSIX_VECTOR_RANGE] = {TLPB_CHECK_MSIX_VECTOR_RANGE, "msix_vector_range",
        "6.1.4", "MSI-X vector at or beyond the table size"},
    [TLPB_CHECK_MSIX_DISABLED] = {TLPB_CHECK_MSIX_DISABLED, "msix_disabled", "6.1.4",
        "MSI-X sent while MSI-X is disabled"},
    [TLPB_CHECK_MSI_DISABLED] = {TLPB_CHECK_MSI_DISABLED, "msi_disabled", "6.1.4",
        "MSI sent while MSI is disabled (or the function has no MSI capability)"},
    [TLPB_CHECK_MSI_VECTOR_RANGE] = {TLPB_CHECK_MSI_VECTOR_RANGE, "msi_vector_range", "6.1.4",
        "MSI vector at or beyond the vectors software enabled"},
    [TLPB_CHECK_INTX_DISABLED] = {TLPB_CHECK_INTX_DISABLED, "intx_disabled", "7.5.1.1.3",
        "INTx asserted while Interrupt Disable is set or with no interrupt pin"},
    [TLPB_CHECK_TAG_REUSE] = {TLPB_CHECK_TAG_REUSE, "tag_reuse", "2.2.6.2",
        "non-posted request with a tag still outstanding for its requester"},
    [TLPB_CHECK_RELAXED_ORDERING_DISABLED] = {TLPB_CHECK_RELAXED_ORDERING_DISABLED,
        "relaxed_ordering_disabled", "2.2.6.4",
        "device TLP with Relaxed Ordering set while Enable Relaxed Ordering is clear"},
    [TLPB_CHECK_NO_SNOOP_DISABLED] = {TLPB_CHECK_NO_SNOOP_DISABLED, "no_snoop_disabled",
        "2.2.6.5", "device TLP with No Snoop set while Enable No Snoop is clear"},
    [TLPB_CHECK_ID_ORDERING_DISABLED] = {TLPB_CHECK_ID_ORDERING_DISABLED,
        "id_ordering_disabled", "2.2.6.4",
        "device TLP with ID-Based Ordering set while IDO Request/Completion Enable is clear"},
};

const struct tlpb_check_rule_info *tlpb_check_rule(enum tlpb_check_rule rule)
{
    if ((unsigned)rule >= TLPB_CHECK_RULE_COUNT)
        return NULL;
    return &tlpb_check_rules[rule];
}

int tlpb_check_rule_by_name(const char *name)
{
    for (unsigned i = 0; i < TLPB_CHECK_RULE_COUNT; i++)
        if (strcmp(tlpb_check_rules[i].name, name) == 0)
            return (int)i;
    return -1;
}

static const char *const policy_names[] = {
    [TLPB_CHECK_POLICY_WARN] = "warn",
    [TLPB_CHECK_POLICY_REJECT] = "reject",
    [TLPB_CHECK_POLICY_STOP] = "stop",
};

const char *tlpb_check_policy_name(enum tlpb_check_policy policy)
{
    if ((unsigned)policy >= sizeof(policy_names) / sizeof(policy_names[0]))
        return "unknown";
    return policy_names[policy];
}

int tlpb_check_policy_parse(const char *name, enum tlpb_check_policy *policy)
{
    for (unsigned i = 0; name && i < sizeof(policy_names) / sizeof(policy_names[0]); i++) {
        if (strcmp(policy_names[i], name) == 0) {
            *policy = (enum tlpb_check_policy)i;
            return 0;
        }
    }
    return -EINVAL;
}

void tlpb_check_init(struct tlpb_check *chk, const struct tlpb_check_config *config)
{
    memset(chk, 0, sizeof(*chk));
    chk->config = *config;
    chk->device_id_known = config->device_id_known;
    chk->device_id_captured = config->device_id_known;
    chk->device_id = config->device_id;
}

/* ---- reporting ---------------------------------------------------------- */

struct report {
    struct tlpb_check *chk;
    struct tlpb_check_result *result;
    enum tlpb_check_direction direction;
    unsigned count;
};

static struct report report_start(struct tlpb_check *chk, struct tlpb_check_result *result,
                                  enum tlpb_check_direction direction)
{
    if (result)
        result->count = 0;
    return (struct report){.chk = chk, .result = result, .direction = direction};
}

static struct tlpb_check_violation *violation(struct report *r, enum tlpb_check_rule rule,
                                              uint64_t expected, uint64_t actual)
{
    r->chk->counts[rule]++;
    r->chk->total++;
    r->count++;
    if (!r->result || r->result->count >= TLPB_CHECK_VIOLATIONS_MAX)
        return NULL;
    struct tlpb_check_violation *v = &r->result->violations[r->result->count++];
    memset(v, 0, sizeof(*v));
    v->rule = rule;
    v->direction = r->direction;
    v->expected = expected;
    v->actual = actual;
    return v;
}

/* The header only: the payload belongs to the caller's buffer. */
static struct tlpb_tlp header_of(const struct tlpb_tlp *tlp)
{
    struct tlpb_tlp copy = *tlp;
    copy.payload = NULL;
    return copy;
}

static void tlp_violation(struct report *r, enum tlpb_check_rule rule, const struct tlpb_tlp *tlp,
                          uint64_t expected, uint64_t actual)
{
    struct tlpb_check_violation *v = violation(r, rule, expected, actual);
    if (v)
        v->tlp = header_of(tlp);
}

/* ---- programmed configuration ------------------------------------------ */

static const struct tlpb_cfgspace *cfg_of(const struct tlpb_check *chk)
{
    return chk->config.cfgspace;
}

/* Vectors software enabled: Multiple Message Enable, bits 6:4 of the MSI
 * Message Control register. */
static uint32_t msi_enabled_vectors(const struct tlpb_cfgspace *cfg)
{
    uint32_t control = tlpb_cfgspace_read(cfg, TLPB_CFG_MSI_CAP) >> 16;
    return 1u << ((control >> 4) & 0x7u);
}

/* IDs are checked once the function knows its number: given by the owner,
 * or captured from a config write (before that its completions for config
 * reads may carry any completer ID). */
static bool ids_checkable(const struct tlpb_check *chk)
{
    return chk->device_id_known && chk->device_id_captured;
}

static uint64_t deadline_after(const struct tlpb_check *chk, uint64_t now_ns)
{
    uint64_t timeout = chk->config.completion_timeout_ns;
    if (timeout == 0 || now_ns > UINT64_MAX - timeout)
        return UINT64_MAX;
    return now_ns + timeout;
}

static void track_request(struct tlpb_check *chk, struct tlpb_check_request *table,
                          const struct tlpb_tlp *tlp, uint64_t now_ns)
{
    struct tlpb_check_request *slot = &table[tlp->tag];
    *slot = (struct tlpb_check_request){
        .in_use = true,
        .kind = tlp->kind,
        .requester_id = tlp->requester_id,
        .address = tlpb_tlp_first_byte_address(tlp),
        .length_bytes = tlp->kind == TLPB_TLP_MRD ? tlpb_tlp_request_bytes(tlp) : 0,
        .deadline_ns = deadline_after(chk, now_ns),
        .header = header_of(tlp),
    };
}

/* A requester's tag is unique among its requests still outstanding
 * (PCIe 2.2.6.2). The newer request takes the tag's slot: completions
 * under it are then checked against that one. */
static void track_unique_request(struct report *r, struct tlpb_check_request *table,
                                 const struct tlpb_tlp *tlp, uint64_t now_ns)
{
    const struct tlpb_check_request *slot = &table[tlp->tag];
    if (slot->in_use && slot->requester_id == tlp->requester_id)
        tlp_violation(r, TLPB_CHECK_TAG_REUSE, tlp, 0, 1);
    track_request(r->chk, table, tlp, now_ns);
}

/* The ordering and snoop attributes the device set itself, against what
 * software allowed: Device Control (Enable Relaxed Ordering, Enable No
 * Snoop) and Device Control 2 (IDO Request Enable for requests, IDO
 * Completion Enable for completions). A completion copies its request's
 * attributes (PCIe 2.2.9): request_attributes are not the device's. */
static void check_attributes(struct report *r, const struct tlpb_tlp *tlp,
                             uint8_t request_attributes)
{
    const struct tlpb_cfgspace *cfg = cfg_of(r->chk);
    unsigned own = tlp->attributes & ~request_attributes;
    bool ido_enabled = tlpb_tlp_is_completion(tlp->kind) ? tlpb_cfg_ido_completion_enabled(cfg)
                                                         : tlpb_cfg_ido_request_enabled(cfg);

    if ((own & TLPB_ATTR_RELAXED_ORDERING) && !tlpb_cfg_relaxed_ordering_enabled(cfg))
        tlp_violation(r, TLPB_CHECK_RELAXED_ORDERING_DISABLED, tlp, 0, 1);
    if ((own & TLPB_ATTR_NO_SNOOP) && !tlpb_cfg_no_snoop_enabled(cfg))
        tlp_violation(r, TLPB_CHECK_NO_SNOOP_DISABLED, tlp, 0, 1);
    if ((own & TLPB_ATTR_ID_ORDERING) && !ido_enabled)
        tlp_violation(r, TLPB_CHECK_ID_ORDERING_DISABLED, tlp, 0, 1);
}

static bool crosses_4k(const struct tlpb_tlp *tlp)
{
    uint64_t bytes = (uint64_t)tlp->length_dw * 4u;
    return (tlp->address & (TLPB_PAGE_BYTES - 1u)) + bytes > TLPB_PAGE_BYTES;
}

/* ---- completions against their request ---------------------------------- */

static void finish_request(struct tlpb_check_request *slot)
{
    slot->in_use = false;
    slot->finished = true;
}

static void check_config_completion(struct report *r, struct tlpb_check_request *slot,
                                    const struct tlpb_tlp *cpl)
{
    if (cpl->byte_count != CONFIG_BYTE_COUNT)
        tlp_violation(r, TLPB_CHECK_CPL_BYTE_COUNT, cpl, CONFIG_BYTE_COUNT, cpl->byte_count);
    if (cpl->lower_address != 0)
        tlp_violation(r, TLPB_CHECK_CPL_LOWER_ADDRESS, cpl, 0, cpl->lower_address);
    /* A CfgRd0 returns one DW; a CfgWr0's completion has no data. */
    uint32_t expected_dw = slot->kind == TLPB_TLP_CFGRD0 ? 1u : 0u;
    uint32_t actual_dw = cpl->kind == TLPB_TLP_CPLD ? cpl->length_dw : 0u;
    if (actual_dw != expected_dw)
        tlp_violation(r, TLPB_CHECK_CPL_LENGTH, cpl, expected_dw, actual_dw);
    finish_request(slot);
}

/* PCIe's completion for a zero-length read: a CplD of one DW with Byte
 * Count 1, or a Cpl. */
static void check_zero_length_completion(struct report *r, struct tlpb_check_request *slot,
                                         const struct tlpb_tlp *cpl)
{
    if (cpl->kind == TLPB_TLP_CPLD) {
        if (cpl->byte_count != 1)
            tlp_violation(r, TLPB_CHECK_CPL_BYTE_COUNT, cpl, 1, cpl->byte_count);
        if (cpl->length_dw != 1)
            tlp_violation(r, TLPB_CHECK_CPL_LENGTH, cpl, 1, cpl->length_dw);
    }
    if ((cpl->lower_address & 0x7cu) != (slot->address & 0x7cu))
        tlp_violation(r, TLPB_CHECK_CPL_LOWER_ADDRESS, cpl, slot->address & 0x7fu,
                      cpl->lower_address);
    finish_request(slot);
}

static void check_read_completion(struct report *r, struct tlpb_check_request *slot,
                                  const struct tlpb_tlp *cpl)
{
    const struct tlpb_check *chk = r->chk;
    bool unsplit = chk->config.unsplit;
    uint32_t owed = slot->length_bytes - slot->received_bytes;
    uint64_t next_address = slot->address + slot->received_bytes;

    if (cpl->byte_count != owed)
        tlp_violation(r, TLPB_CHECK_CPL_BYTE_COUNT, cpl, owed, cpl->byte_count);
    if (cpl->lower_address != (next_address & 0x7fu))
        tlp_violation(r, TLPB_CHECK_CPL_LOWER_ADDRESS, cpl, next_address & 0x7fu,
                      cpl->lower_address);
    if (cpl->kind == TLPB_TLP_CPL) {
        /* Success without data ends the read with nothing returned. */
        tlp_violation(r, TLPB_CHECK_CPL_LENGTH, cpl, owed, 0);
        finish_request(slot);
        return;
    }

    uint64_t span_bytes = (uint64_t)cpl->length_dw * 4u;
    uint32_t mps = tlpb_cfg_max_payload_bytes(cfg_of(chk));
    if (!unsplit && span_bytes > mps)
        tlp_violation(r, TLPB_CHECK_CPL_EXCEEDS_MPS, cpl, mps, span_bytes);

    /* Where the data should start, so a wrong lower address is reported
     * once, not again as a length or boundary error. */
    uint64_t offset = next_address & 3u;
    uint64_t carried = span_bytes > offset ? span_bytes - offset : 0;
    if (carried >= owed) {
        /* The last completion ends in its last DW. */
        if (carried - owed >= 4u)
            tlp_violation(r, TLPB_CHECK_CPL_LENGTH, cpl, (offset + owed + 3u) / 4u,
                          cpl->length_dw);
        finish_request(slot);
        return;
    }
    if (!unsplit && (next_address + carried) % CHECK_RCB_BYTES != 0)
        tlp_violation(r, TLPB_CHECK_CPL_RCB, cpl, CHECK_RCB_BYTES,
                      (next_address + carried) % CHECK_RCB_BYTES);
    slot->received_bytes += (uint32_t)carried;
}

static void check_completion(struct report *r, struct tlpb_check_request *table,
                             const struct tlpb_tlp *cpl)
{
    struct tlpb_check_request *slot = &table[cpl->tag];

    if (!slot->in_use || slot->requester_id != cpl->requester_id) {
        bool late = !slot->in_use && slot->finished && slot->requester_id == cpl->requester_id;
        tlp_violation(r, late ? TLPB_CHECK_CPL_AFTER_LAST_BYTE
                              : TLPB_CHECK_UNEXPECTED_COMPLETION, cpl, 0, 0);
        return;
    }
    if (cpl->status != TLPB_CPL_SC) {
        /* A failed completion ends its request whatever else it says. */
        if (cpl->kind == TLPB_TLP_CPLD)
            tlp_violation(r, TLPB_CHECK_CPL_STATUS_WITH_DATA, cpl, TLPB_CPL_SC, cpl->status);
        finish_request(slot);
        return;
    }
    if (slot->kind != TLPB_TLP_MRD)
        check_config_completion(r, slot, cpl);
    else if (slot->length_bytes == 0)
        check_zero_length_completion(r, slot, cpl);
    else
        check_read_completion(r, slot, cpl);
}

/* ---- the two directions -------------------------------------------------- */

unsigned tlpb_check_host_tlp(struct tlpb_check *chk, const struct tlpb_tlp *tlp,
                             uint64_t now_ns, struct tlpb_check_result *result)
{
    struct report r = report_start(chk, result, TLPB_CHECK_HOST_TO_DEVICE);
    const struct tlpb_cfgspace *cfg = cfg_of(chk);

    switch (tlp->kind) {
    case TLPB_TLP_CFGRD0:
    case TLPB_TLP_CFGWR0:
        /* The target ID is the function's number; a type 0 write tells
         * the function (PCIe 2.2.6.2). */
        if (!chk->config.device_id_known) {
            chk->device_id = tlp->completer_id;
            chk->device_id_known = true;
        }
        if (tlp->kind == TLPB_TLP_CFGWR0)
            chk->device_id_captured = true;
        track_unique_request(&r, chk->host_requests, tlp, now_ns);
        break;
    case TLPB_TLP_MRD:
    case TLPB_TLP_MWR:
        if (!tlpb_cfg_memory_enabled(cfg))
            tlp_violation(&r, TLPB_CHECK_MEMORY_SPACE_DISABLED, tlp, 1, 0);
        if (!chk->config.unsplit && crosses_4k(tlp))
            tlp_violation(&r, TLPB_CHECK_CROSSES_4K, tlp, TLPB_PAGE_BYTES,
                          (tlp->address & (TLPB_PAGE_BYTES - 1u)) + tlp->length_dw * 4ull);
        if (tlp->kind == TLPB_TLP_MRD)
            track_unique_request(&r, chk->host_requests, tlp, now_ns);
        break;
    case TLPB_TLP_CPL:
    case TLPB_TLP_CPLD:
        check_completion(&r, chk->device_requests, tlp);
        break;
    default:
        break;
    }
    return r.count;
}

unsigned tlpb_check_device_tlp(struct tlpb_check *chk, const struct tlpb_tlp *tlp,
                               uint64_t now_ns, struct tlpb_check_result *result)
{
    struct report r = report_start(chk, result, TLPB_CHECK_DEVICE_TO_HOST);
    const struct tlpb_cfgspace *cfg = cfg_of(chk);
    bool unsplit = chk->config.unsplit;

    switch (tlp->kind) {
    case TLPB_TLP_MRD:
    case TLPB_TLP_MWR: {
        if (ids_checkable(chk) && tlp->requester_id != chk->device_id)
            tlp_violation(&r, TLPB_CHECK_REQUESTER_ID, tlp, chk->device_id, tlp->requester_id);
        if (!tlpb_cfg_bus_master_enabled(cfg))
            tlp_violation(&r, TLPB_CHECK_BUS_MASTER_DISABLED, tlp, 1, 0);
        uint64_t bytes = (uint64_t)tlp->length_dw * 4u;
        if (!unsplit && tlp->kind == TLPB_TLP_MWR && bytes > tlpb_cfg_max_payload_bytes(cfg))
            tlp_violation(&r, TLPB_CHECK_MWR_EXCEEDS_MPS, tlp, tlpb_cfg_max_payload_bytes(cfg),
                          bytes);
        if (!unsplit && tlp->kind == TLPB_TLP_MRD &&
            bytes > tlpb_cfg_max_read_request_bytes(cfg))
            tlp_violation(&r, TLPB_CHECK_MRD_EXCEEDS_MRRS, tlp,
                          tlpb_cfg_max_read_request_bytes(cfg), bytes);
        if (!unsplit && crosses_4k(tlp))
            tlp_violation(&r, TLPB_CHECK_CROSSES_4K, tlp, TLPB_PAGE_BYTES,
                          (tlp->address & (TLPB_PAGE_BYTES - 1u)) + bytes);
        check_attributes(&r, tlp, 0);
        if (tlp->kind == TLPB_TLP_MRD)
            track_unique_request(&r, chk->device_requests, tlp, now_ns);
        break;
    }
    case TLPB_TLP_CPL:
    case TLPB_TLP_CPLD: {
        const struct tlpb_check_request *slot = &chk->host_requests[tlp->tag];
        /* Before its first config write a function may not know its
         * number: its config read completions are exempt. */
        bool exempt = !chk->device_id_captured && slot->in_use && slot->kind == TLPB_TLP_CFGRD0;
        if (chk->device_id_known && !exempt && tlp->completer_id != chk->device_id)
            tlp_violation(&r, TLPB_CHECK_COMPLETER_ID, tlp, chk->device_id, tlp->completer_id);
        /* Attributes against the request answered (also once finished: a
         * late completion echoes it too); for no request at all, what it
         * echoes is unknown, and it is reported as unexpected. */
        if ((slot->in_use || slot->finished) && slot->requester_id == tlp->requester_id)
            check_attributes(&r, tlp, slot->header.attributes);
        check_completion(&r, chk->host_requests, tlp);
        break;
    }
    default:
        break;
    }
    return r.count;
}

unsigned tlpb_check_device_interrupt(struct tlpb_check *chk, enum tlpb_check_interrupt kind,
                                     uint32_t vector, struct tlpb_check_result *result)
{
    struct report r = report_start(chk, result, TLPB_CHECK_DEVICE_TO_HOST);
    const struct tlpb_cfgspace *cfg = cfg_of(chk);
    struct tlpb_check_violation *v[3] = {NULL, NULL, NULL};
    unsigned n = 0;

    switch (kind) {
    case TLPB_CHECK_INTX_ASSERT:
        /* INTx messages are not memory requests: Bus Master Enable does
         * not gate them, Interrupt Disable does. */
        if (tlpb_cfg_intx_disabled(cfg) || cfg->desc.intx_pin == 0)
            v[n++] = violation(&r, TLPB_CHECK_INTX_DISABLED, 0, 1);
        break;
    case TLPB_CHECK_INTX_DEASSERT:
        break;
    case TLPB_CHECK_MSI:
        /* An MSI is a memory write: it needs Bus Master Enable. */
        if (!tlpb_cfg_bus_master_enabled(cfg))
            v[n++] = violation(&r, TLPB_CHECK_BUS_MASTER_DISABLED, 1, 0);
        if (!tlpb_cfg_msi_enabled(cfg))
            v[n++] = violation(&r, TLPB_CHECK_MSI_DISABLED, 1, 0);
        else if (vector >= msi_enabled_vectors(cfg))
            v[n++] = violation(&r, TLPB_CHECK_MSI_VECTOR_RANGE, msi_enabled_vectors(cfg),
                               vector);
        break;
    case TLPB_CHECK_MSIX:
        if (!tlpb_cfg_bus_master_enabled(cfg))
            v[n++] = violation(&r, TLPB_CHECK_BUS_MASTER_DISABLED, 1, 0);
        if (vector >= cfg->desc.msix_vectors)
            v[n++] = violation(&r, TLPB_CHECK_MSIX_VECTOR_RANGE, cfg->desc.msix_vectors, vector);
        /* Masking, per vector or of the whole function, is the host's: it
         * holds a masked vector pending (protocol.md, "MSI-X ownership"). */
        if (!tlpb_cfg_msix_enabled(cfg))
            v[n++] = violation(&r, TLPB_CHECK_MSIX_DISABLED, 0, 1);
        break;
    }
    for (unsigned i = 0; i < n; i++) {
        if (!v[i])
            continue;
        v[i]->interrupt = kind;
        v[i]->vector = vector;
    }
    return r.count;
}

unsigned tlpb_check_refused_tlp(struct tlpb_check *chk, enum tlpb_check_direction dir,
                                const struct tlpb_tlp *tlp, enum tlpb_tlp_rule refused,
                                struct tlpb_check_result *result)
{
    struct report r = report_start(chk, result, dir);
    uint64_t span_bytes = (uint64_t)tlp->length_dw * 4u;

    switch (refused) {
    case TLPB_TLP_RULE_CROSSES_4K:
        tlp_violation(&r, TLPB_CHECK_CROSSES_4K, tlp, TLPB_PAGE_BYTES,
                      (tlp->address & (TLPB_PAGE_BYTES - 1u)) + span_bytes);
        break;
    case TLPB_TLP_RULE_CPLD_STATUS:
        tlp_violation(&r, TLPB_CHECK_CPL_STATUS_WITH_DATA, tlp, TLPB_CPL_SC, tlp->status);
        break;
    case TLPB_TLP_RULE_CPLD_BEYOND_BYTE_COUNT:
        /* The DWs its byte count needs, from where its data starts. */
        tlp_violation(&r, TLPB_CHECK_CPL_LENGTH, tlp,
                      ((tlp->lower_address & 3u) + (uint64_t)tlp->byte_count + 3u) / 4u,
                      tlp->length_dw);
        break;
    case TLPB_TLP_RULE_OTHER:
        break;
    }
    return r.count;
}

/* ---- timeouts and reset --------------------------------------------------- */

static void expire_table(struct report *r, struct tlpb_check_request *table, uint64_t now_ns)
{
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++) {
        struct tlpb_check_request *slot = &table[tag];
        if (!slot->in_use || slot->deadline_ns > now_ns)
            continue;
        tlp_violation(r, TLPB_CHECK_COMPLETION_TIMEOUT, &slot->header,
                      r->chk->config.completion_timeout_ns, now_ns);
        /* A completion arriving after the timeout is unexpected. */
        memset(slot, 0, sizeof(*slot));
    }
}

unsigned tlpb_check_expire(struct tlpb_check *chk, uint64_t now_ns,
                           struct tlpb_check_result *result)
{
    /* Each timeout is reported in the direction of its request. */
    struct report r = report_start(chk, result, TLPB_CHECK_HOST_TO_DEVICE);
    expire_table(&r, chk->host_requests, now_ns);
    r.direction = TLPB_CHECK_DEVICE_TO_HOST;
    expire_table(&r, chk->device_requests, now_ns);
    return r.count;
}

uint64_t tlpb_check_next_deadline(const struct tlpb_check *chk)
{
    uint64_t earliest = UINT64_MAX;
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++) {
        if (chk->host_requests[tag].in_use && chk->host_requests[tag].deadline_ns < earliest)
            earliest = chk->host_requests[tag].deadline_ns;
        if (chk->device_requests[tag].in_use && chk->device_requests[tag].deadline_ns < earliest)
            earliest = chk->device_requests[tag].deadline_ns;
    }
    return earliest;
}

void tlpb_check_reset(struct tlpb_check *chk, enum tlpb_check_reset_kind kind)
{
    memset(chk->host_requests, 0, sizeof(chk->host_requests));
    memset(chk->device_requests, 0, sizeof(chk->device_requests));
    if (kind == TLPB_CHECK_RESET_HOT) {
        /* A hot reset clears the captured bus and device numbers. */
        chk->device_id_captured = chk->config.device_id_known;
        chk->device_id_known = chk->config.device_id_known;
        chk->device_id = chk->config.device_id;
    }
}

/* ---- formatting ------------------------------------------------------------ */

static const char *interrupt_name(enum tlpb_check_interrupt kind)
{
    switch (kind) {
    case TLPB_CHECK_INTX_ASSERT:
        return "INTx assert";
    case TLPB_CHECK_INTX_DEASSERT:
        return "INTx deassert";
    case TLPB_CHECK_MSI:
        return "MSI";
    case TLPB_CHECK_MSIX:
        return "MSI-X";
    }
    return "interrupt";
}

int tlpb_check_format(const struct tlpb_check_violation *v, char *buf, size_t buf_size)
{
    const struct tlpb_check_rule_info *info = tlpb_check_rule(v->rule);
    char detail[256];

    if (v->tlp.kind != TLPB_TLP_INVALID)
        tlpb_tlp_format(&v->tlp, detail, sizeof(detail));
    else
        snprintf(detail, sizeof(detail), "%s vector %" PRIu32, interrupt_name(v->interrupt),
                 v->vector);
    return snprintf(buf, buf_size, "%s (PCIe %s) %s: %s [expected %" PRIu64 ", got %" PRIu64
                    "]: %s", info ? info->name : "unknown_rule",
                    info ? info->spec_section : "?",
                    v->direction == TLPB_CHECK_HOST_TO_DEVICE ? "host->device" : "device->host",
                    info ? info->description : "", v->expected, v->actual, detail);
}
