/* rtl_adapter: the two TLP streams.
 *
 * Stream format (docs/rtl-interface.md): a TLP is its header DWs then its
 * payload DWs, packed `lanes` DWs per beat, DW i of the TLP in lane i % lanes
 * of beat i / lanes. Header DWs are the 32-bit values of the PCIe
 * specification's figures (DW0[31:29] = Fmt); payload DWs carry the byte at
 * the lowest address in bits [7:0]. tkeep marks whole DWs.
 *
 * RX: host requests and the completions for the design's reads queue here,
 * in arrival order, with the config requests and resets the adapter handles
 * itself when they reach the head (so they never pass an earlier write).
 * TX: beats are collected until tlast, decoded, validated and sent; the
 * design's read requests get link tags of the adapter's own, so a completion
 * for a read abandoned by a reset can never reach a new one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tlpb/byteorder.h"

/* ---- format --------------------------------------------------------------------- */

int tlpb_rtl_encode_dws(const struct tlpb_tlp *tlp, uint32_t *dws, size_t max_dws)
{
    uint8_t hdr[TLPB_WIRE_HEADER_MAX];
    int hdr_bytes = tlpb_tlp_encode_header(tlp, hdr);
    if (hdr_bytes < 0)
        return -EINVAL;
    size_t hdr_dws = (size_t)hdr_bytes / 4;
    size_t pay_dws = tlp->payload_bytes / 4;
    if (hdr_dws + pay_dws > max_dws || (tlp->payload_bytes && !tlp->payload))
        return -EINVAL;
    for (size_t i = 0; i < hdr_dws; i++)
        dws[i] = tlpb_get_be32(hdr + 4 * i);
    for (size_t i = 0; i < pay_dws; i++)
        dws[hdr_dws + i] = tlpb_get_le32(tlp->payload + 4 * i);
    return (int)(hdr_dws + pay_dws);
}

int tlpb_rtl_decode_dws(const uint32_t *dws, uint32_t n, uint8_t *buf, struct tlpb_tlp *tlp,
                        const char **reason)
{
    if (n == 0) {
        *reason = "empty TLP";
        return -EINVAL;
    }
    uint32_t hdr_dws = (dws[0] >> 29) & 1u ? 4 : 3; /* Fmt bit 0: 4DW header */
    for (uint32_t i = 0; i < n; i++) {
        if (i < hdr_dws)
            tlpb_put_be32(buf + 4 * i, dws[i]);
        else
            tlpb_put_le32(buf + 4 * i, dws[i]);
    }
    int rc = tlpb_tlp_decode_wire(buf, (size_t)n * 4, tlp, reason);
    return rc < 0 ? rc : 0;
}

/* ---- RX queue ------------------------------------------------------------------- */

static size_t entry_bytes(const struct rx_entry *e)
{
    return sizeof(*e) + (size_t)e->n_dws * 4;
}

/* After every entry due no later than e (so arrival order among equals),
 * never before a TLP half delivered. */
static void rx_insert(struct tlpb_rtl *a, struct rx_entry *e)
{
    struct rx_entry **at = &a->rx_head;
    if (a->rx_tail && a->rx_tail->due_cycle <= e->due_cycle) {
        at = &a->rx_tail->next; /* the usual case: in order */
    } else {
        if (*at && a->rx_beat > 0)
            at = &(*at)->next;
        while (*at && (*at)->due_cycle <= e->due_cycle)
            at = &(*at)->next;
    }
    e->next = *at;
    *at = e;
    if (!e->next)
        a->rx_tail = e;
    a->rx_bytes += entry_bytes(e);
}

static struct rx_entry *rx_new(struct tlpb_rtl *a, enum rx_entry_kind kind, uint32_t n_dws,
                               uint64_t due_cycle, const char *what)
{
    struct rx_entry *e = calloc(1, sizeof(*e) + (size_t)n_dws * 4);
    if (!e) {
        tlpb_rtl_log(a, TLPB_RTL_LOG_ERROR, "out of memory: %s lost", what);
        return NULL;
    }
    e->kind = kind;
    e->n_dws = n_dws;
    e->due_cycle = due_cycle > a->time_cycle ? due_cycle : a->time_cycle;
    return e;
}

/* An entry that keeps a TLP (its payload copied into dws[]). */
static struct rx_entry *rx_new_tlp_copy(struct tlpb_rtl *a, enum rx_entry_kind kind,
                                        const struct tlpb_tlp *tlp, uint64_t due_cycle,
                                        const char *what)
{
    uint32_t bytes = tlp->payload ? tlp->payload_bytes : 0;
    struct rx_entry *e = rx_new(a, kind, (bytes + 3u) / 4u, due_cycle, what);
    if (!e)
        return NULL;
    e->tlp = *tlp;
    e->tlp.payload_bytes = bytes;
    e->tlp.payload = bytes ? (const uint8_t *)e->dws : NULL;
    if (bytes)
        memcpy(e->dws, tlp->payload, bytes);
    return e;
}

static void push_tlp(struct tlpb_rtl *a, const struct tlpb_tlp *tlp, uint8_t bar_hit,
                     uint64_t due_cycle)
{
    uint32_t dws[RTL_MAX_TLP_DWS];
    int n = tlpb_rtl_encode_dws(tlp, dws, RTL_MAX_TLP_DWS);
    if (n < 0) {
        char text[160];
        tlpb_tlp_format(tlp, text, sizeof(text));
        tlpb_rtl_log(a, TLPB_RTL_LOG_ERROR, "TLP not encodable for the design, dropped: %s", text);
        return;
    }
    struct rx_entry *e = rx_new(a, RX_TLP, (uint32_t)n, due_cycle, "TLP for the design");
    if (!e)
        return;
    e->bar_hit = bar_hit;
    memcpy(e->dws, dws, (size_t)n * 4);
    rx_insert(a, e);
}

void rtl_rx_push_tlp(struct tlpb_rtl *a, const struct tlpb_tlp *tlp, uint8_t bar_hit)
{
    push_tlp(a, tlp, bar_hit, a->time_cycle);
}

void rtl_rx_push_host_tlp(struct tlpb_rtl *a, const struct tlpb_tlp *tlp, uint8_t bar_hit,
                          uint64_t due_cycle)
{
    push_tlp(a, tlp, bar_hit, due_cycle);
}

void rtl_rx_push_config(struct tlpb_rtl *a, const struct tlpb_tlp *tlp, uint64_t due_cycle)
{
    struct tlpb_tlp req = *tlp;
    if (!req.payload || req.payload_bytes < 4)
        req.payload_bytes = 0;
    else
        req.payload_bytes = 4;
    struct rx_entry *e = rx_new_tlp_copy(a, RX_CONFIG, &req, due_cycle, "config request");
    if (e)
        rx_insert(a, e);
}

void rtl_rx_push_answer(struct tlpb_rtl *a, const struct tlpb_tlp *cpl, uint64_t due_cycle)
{
    struct rx_entry *e = rx_new_tlp_copy(a, RX_ANSWER, cpl, due_cycle, "completion");
    if (e)
        rx_insert(a, e);
}

void rtl_rx_push_host_completion(struct tlpb_rtl *a, const struct tlpb_tlp *cpl)
{
    /* Due when its read's latency has passed, whenever it arrived (the
     * host answers DMA reads at once): device time, not wall time. */
    uint64_t due = a->tags.slots[cpl->tag].in_use ? a->dma_due[cpl->tag] : a->time_cycle;
    if (a->dma_waiting[cpl->tag] && rtl_completion_is_last(cpl)) {
        a->dma_waiting[cpl->tag] = false;
        a->dma_waiting_count--;
    }
    struct rx_entry *e = rx_new_tlp_copy(a, RX_HOST_CPL, cpl, due, "DMA completion");
    if (!e)
        return;
    /* Their own queue: a completion frees its tag whatever waits on RX. */
    if (a->cpl_tail)
        a->cpl_tail->next = e;
    else
        a->cpl_head = e;
    a->cpl_tail = e;
}

/* DMA completions whose time has come: checked against their reads and
 * queued for the design. */
static void host_completions_due(struct tlpb_rtl *a)
{
    while (a->cpl_head && (!a->coupled || a->cpl_head->due_cycle <= a->time_cycle)) {
        struct rx_entry *e = a->cpl_head;
        a->cpl_head = e->next;
        if (!a->cpl_head)
            a->cpl_tail = NULL;
        rtl_host_completion(a, &e->tlp);
        free(e);
    }
}

void rtl_rx_push_reset(struct tlpb_rtl *a, Tlpb__ResetKind reset_kind, uint64_t due_cycle)
{
    struct rx_entry *e = rx_new(a, RX_RESET, 0, due_cycle, "reset");
    if (!e)
        return;
    e->reset_kind = reset_kind;
    rx_insert(a, e);
}

static void rx_pop(struct tlpb_rtl *a)
{
    struct rx_entry *e = a->rx_head;
    a->rx_head = e->next;
    if (!a->rx_head)
        a->rx_tail = NULL;
    size_t bytes = entry_bytes(e);
    a->rx_bytes -= bytes < a->rx_bytes ? bytes : a->rx_bytes;
    a->rx_beat = 0;
    free(e);
}

void rtl_rx_free_all(struct tlpb_rtl *a)
{
    while (a->rx_head)
        rx_pop(a);
    while (a->cpl_head) {
        struct rx_entry *e = a->cpl_head;
        a->cpl_head = e->next;
        free(e);
    }
    a->cpl_tail = NULL;
}

static bool rx_due(const struct tlpb_rtl *a, const struct rx_entry *e)
{
    return !a->coupled || e->due_cycle <= a->time_cycle;
}

uint64_t rtl_rx_head_future_due(const struct tlpb_rtl *a)
{
    const struct rx_entry *e = a->rx_head;
    return e && !rx_due(a, e) ? e->due_cycle : 0;
}

uint64_t rtl_cpl_head_future_due(const struct tlpb_rtl *a)
{
    const struct rx_entry *e = a->cpl_head;
    return e && !rx_due(a, e) ? e->due_cycle : 0;
}

void rtl_rx_present(struct tlpb_rtl *a)
{
    struct tlpb_rtl_to_design *out = &a->out;

    host_completions_due(a);
    /* Entries the adapter handles itself, once nothing is half delivered. */
    while (a->rx_head && a->rx_head->kind != RX_TLP && a->reset_left == 0 &&
           rx_due(a, a->rx_head)) {
        struct rx_entry *e = a->rx_head;
        a->rx_head = e->next; /* what it queues for the design goes first */
        if (!a->rx_head)
            a->rx_tail = NULL;
        size_t bytes = entry_bytes(e);
        a->rx_bytes -= bytes < a->rx_bytes ? bytes : a->rx_bytes;
        switch (e->kind) {
        case RX_CONFIG:
        case RX_ANSWER:
            if (a->host_np_outstanding)
                a->host_np_outstanding--; /* completed now */
            if (e->kind == RX_CONFIG)
                rtl_config_request(a, &e->tlp);
            else
                rtl_send_tlp(a, &e->tlp);
            break;
        default:
            rtl_reset(a, e->reset_kind);
            break;
        }
        free(e);
    }
    struct rx_entry *e = a->rx_head;
    if (!e || e->kind != RX_TLP || a->reset_left > 0 || !rx_due(a, e)) {
        out->rx_tvalid = false;
        out->rx_tlast = false;
        out->rx_tkeep = 0;
        out->rx_bar_hit = 0;
        return;
    }
    unsigned lanes = a->out_lanes;
    uint32_t first = a->rx_beat * lanes;
    uint64_t keep = 0;
    for (unsigned i = 0; i < lanes; i++) {
        if (first + i < e->n_dws) {
            out->rx_tdata[i] = e->dws[first + i];
            keep |= (uint64_t)0xF << (4 * i);
        } else {
            out->rx_tdata[i] = 0;
        }
    }
    out->rx_tvalid = true;
    out->rx_tkeep = keep;
    out->rx_tlast = first + lanes >= e->n_dws;
    out->rx_bar_hit = e->bar_hit;
}

void rtl_rx_beat_taken(struct tlpb_rtl *a)
{
    struct rx_entry *e = a->rx_head;
    if (!e || e->kind != RX_TLP)
        return;
    a->rx_beat++;
    if ((uint64_t)a->rx_beat * a->out_lanes >= e->n_dws) {
        a->stats.tlps_to_design++;
        rx_pop(a);
    }
}

/* ---- DMA tags ------------------------------------------------------------------- */

static void update_tag_count(struct tlpb_rtl *a)
{
    unsigned wanted = tlpb_cfg_extended_tags_enabled(&a->cfg) ? TLPB_TAGS_MAX : 32u;
    /* The table can only be resized when no tag is outstanding. */
    if (a->tags.tag_count != wanted && a->tags.in_use == 0)
        tlpb_tags_init(&a->tags, wanted);
}

void rtl_tags_abandon(struct tlpb_rtl *a)
{
    for (unsigned t = 0; t < TLPB_TAGS_MAX; t++)
        if (a->tags.slots[t].in_use)
            a->tag_stale[t] = true;
}

/* Send a read request of the design under a link tag. False when no tag is
 * free (the request waits). */
static bool send_read(struct tlpb_rtl *a, struct tlpb_tlp *req)
{
    update_tag_count(a);
    int tag = tlpb_tags_alloc(&a->tags, tlpb_tlp_first_byte_address(req),
                              tlpb_tlp_request_bytes(req), NULL, UINT64_MAX, NULL);
    if (tag == -EAGAIN)
        return false;
    if (tag < 0) {
        tlpb_rtl_log(a, TLPB_RTL_LOG_ERROR, "no tag for a read of the design (%d): dropped", tag);
        return true;
    }
    a->design_tag[tag] = req->tag;
    a->tag_stale[tag] = false;
    req->tag = (uint8_t)tag;
    /* Coupled time: the completion takes effect dma_latency_cycles after
     * the request, and the clock waits there for it (rtl_clock_may_advance). */
    a->dma_due[tag] = a->time_cycle + a->dma_latency_cycles;
    if (!a->dma_waiting[tag]) {
        a->dma_waiting[tag] = true;
        a->dma_waiting_count++;
    }
    rtl_send_tlp(a, req);
    return true;
}

bool rtl_completion_is_last(const struct tlpb_tlp *cpl)
{
    if (cpl->kind != TLPB_TLP_CPLD || cpl->status != TLPB_CPL_SC)
        return true;
    /* The data starts at lower_address & 3 in the first DW. */
    uint64_t carried = (uint64_t)cpl->length_dw * 4u - (cpl->lower_address & 3u);
    return carried >= cpl->byte_count;
}

void rtl_host_request_completed(struct tlpb_rtl *a, const struct tlpb_tlp *cpl)
{
    if (!a->host_mrd_tag[cpl->tag] || !rtl_completion_is_last(cpl))
        return;
    a->host_mrd_tag[cpl->tag] = false;
    if (a->host_np_outstanding)
        a->host_np_outstanding--;
}

void rtl_tx_retry_held(struct tlpb_rtl *a)
{
    if (a->held && send_read(a, &a->held_read))
        a->held = false;
}

void rtl_host_completion(struct tlpb_rtl *a, const struct tlpb_tlp *cpl)
{
    struct tlpb_tag_slot *slot = &a->tags.slots[cpl->tag];
    struct tlpb_tag_done done;
    const char *reason = "?";

    if (!slot->in_use || cpl->tag >= a->tags.tag_count) {
        tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "completion for tag %u, which has no read outstanding,"
                     " dropped", cpl->tag);
        a->stats.dropped_completions++;
        return;
    }
    bool stale = a->tag_stale[cpl->tag];
    uint8_t design_tag = a->design_tag[cpl->tag];
    uint32_t owed = slot->length_bytes - slot->received_bytes;
    uint64_t next_addr = slot->address + slot->received_bytes;
    int r = tlpb_tags_complete(&a->tags, cpl, &done, &reason);
    if (r != 0 && a->dma_waiting[cpl->tag]) {
        /* ended by a completion that did not look like the last one */
        a->dma_waiting[cpl->tag] = false;
        a->dma_waiting_count--;
    }
    if (r < 0) {
        /* The design waits for this read: end it with Completer Abort
         * rather than leave it hanging. */
        tlpb_rtl_log(a, stale ? TLPB_RTL_LOG_DEBUG : TLPB_RTL_LOG_WARN,
                     "completion for tag %u does not fit its read (%s): the read ends with CA",
                     cpl->tag, reason);
        a->stats.dropped_completions++;
        tlpb_tags_release(&a->tags, cpl->tag);
        if (stale)
            return;
        struct tlpb_tlp req = {.kind = TLPB_TLP_MRD, .requester_id = cpl->requester_id,
                               .tag = design_tag, .bar_hint = TLPB_NO_BAR};
        tlpb_tlp_set_mem_range(&req, next_addr, owed);
        struct tlpb_tlp ca;
        tlpb_completion_error_for(&ca, &req, cpl->completer_id, TLPB_CPL_CA);
        rtl_rx_push_tlp(a, &ca, 0);
        return;
    }
    if (stale) {
        a->stats.dropped_completions++;
        return; /* abandoned by a reset; the tag is free again when r == 1 */
    }
    struct tlpb_tlp for_design = *cpl;
    for_design.tag = design_tag;
    rtl_rx_push_tlp(a, &for_design, 0);
}

/* ---- TX ------------------------------------------------------------------------- */

/* Count, trigger the waveform window, and tell the bridge (it logs it). */
static void design_fault(struct tlpb_rtl *a, const char *what)
{
    a->stats.bad_tlps_from_design++;
    a->trigger_pending = true;
    char msg[320];
    snprintf(msg, sizeof(msg), "RTL design fault: %.280s", what);
    tlpb_sim_send_error(a->sim, msg);
}

static void tx_reject(struct tlpb_rtl *a, const struct tlpb_tlp *tlp, const char *reason)
{
    char text[160];
    tlpb_tlp_format(tlp, text, sizeof(text));
    char what[256];
    snprintf(what, sizeof(what), "%s: %s", reason, text);
    design_fault(a, what);
    if (tlp->kind == TLPB_TLP_MRD) {
        /* The design waits for an answer: Unsupported Request. */
        struct tlpb_tlp cpl;
        tlpb_completion_error_for(&cpl, tlp, a->cfg.bus_device_function, TLPB_CPL_UR);
        rtl_rx_push_tlp(a, &cpl, 0);
        tlpb_rtl_log(a, TLPB_RTL_LOG_ERROR, "the design sent a bad read request (%s), completed"
                     " with UR: %s", reason, text);
    } else {
        tlpb_rtl_log(a, TLPB_RTL_LOG_ERROR, "the design sent a bad TLP (%s), dropped: %s", reason,
                     text);
    }
}

static void tx_finish(struct tlpb_rtl *a)
{
    uint32_t n = a->tx_count;
    bool malformed = a->tx_malformed;
    const char *why = a->tx_malformed_reason;
    a->tx_count = 0;
    a->tx_malformed = false;
    if (malformed) {
        design_fault(a, why);
        tlpb_rtl_log(a, TLPB_RTL_LOG_ERROR, "the design sent a malformed TLP (%s), dropped", why);
        return;
    }
    struct tlpb_tlp tlp;
    const char *reason = "?";
    if (tlpb_rtl_decode_dws(a->tx_dws, n, a->tx_bytes, &tlp, &reason) != 0) {
        design_fault(a, reason);
        tlpb_rtl_log(a, TLPB_RTL_LOG_ERROR, "the design sent an undecodable TLP (%s; %u DWs, DW0 "
                     "0x%08x), dropped", reason, n, a->tx_dws[0]);
        return;
    }
    a->stats.tlps_from_design++;
    struct tlpb_tlp_limits limits = {.max_payload_bytes = tlpb_cfg_max_payload_bytes(&a->cfg)};
    if (tlpb_tlp_validate(&tlp, &limits, &reason) != 0) {
        tx_reject(a, &tlp, reason);
        return;
    }
    switch (tlp.kind) {
    case TLPB_TLP_MRD:
    case TLPB_TLP_MWR:
        if (!tlpb_cfg_bus_master_enabled(&a->cfg)) {
            tx_reject(a, &tlp, "DMA with bus mastering disabled");
            return;
        }
        if (tlp.kind == TLPB_TLP_MWR) {
            rtl_send_tlp(a, &tlp);
        } else if (!send_read(a, &tlp)) {
            a->held = true; /* tx_tready stays low until a tag is free */
            a->held_read = tlp;
        }
        break;
    case TLPB_TLP_CPL:
    case TLPB_TLP_CPLD:
        rtl_send_tlp(a, &tlp);
        rtl_host_request_completed(a, &tlp);
        break;
    default:
        tx_reject(a, &tlp, "a function sends no configuration requests");
        break;
    }
}

void rtl_tx_beat(struct tlpb_rtl *a, const struct tlpb_rtl_from_design *in)
{
    unsigned lanes = a->out_lanes;
    bool gap = false;
    for (unsigned i = 0; i < lanes; i++) {
        unsigned keep = (unsigned)(in->tx_tkeep >> (4 * i)) & 0xFu;
        if (keep == 0) {
            gap = true;
            continue;
        }
        if (keep != 0xFu || gap) {
            a->tx_malformed = true;
            a->tx_malformed_reason = keep != 0xFu ? "tkeep not whole DWs"
                                                  : "tkeep with a gap inside a beat";
            continue;
        }
        if (a->tx_count >= RTL_MAX_TLP_DWS) {
            a->tx_malformed = true;
            a->tx_malformed_reason = "longer than 1028 DWs";
            continue;
        }
        a->tx_dws[a->tx_count++] = in->tx_tdata[i];
    }
    if (!in->tx_tlast && gap && !a->tx_malformed) {
        a->tx_malformed = true;
        a->tx_malformed_reason = "a beat with empty lanes before tlast";
    }
    if (in->tx_tlast)
        tx_finish(a);
}
