/* One device at the bridge: which backend serves it, every non-posted
 * request in flight in both directions, and the fallback responder that
 * completes whatever the backend cannot.
 *
 * Host requests are forwarded under a bridge-chosen tag. A request that times
 * out is completed by the fallback and its tag is quarantined until the late
 * completion shows up (or the simulator goes away), so a late answer can
 * never be taken for the answer to a newer request. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "tlpb/byteorder.h"

#define DEFAULT_TIMEOUT_MS 5000u

const char *backend_name(enum backend_kind kind)
{
    switch (kind) {
    case BACKEND_HLSIM:
        return "hlsim";
    case BACKEND_EXTERNAL:
        return "external";
    default:
        return "fallback";
    }
}

int backend_from_name(const char *name, enum backend_kind *kind)
{
    if (strcmp(name, "fallback") == 0)
        *kind = BACKEND_FALLBACK;
    else if (strcmp(name, "hlsim") == 0)
        *kind = BACKEND_HLSIM;
    else if (strcmp(name, "external") == 0 || strcmp(name, "rtl") == 0)
        *kind = BACKEND_EXTERNAL;
    else
        return -EINVAL;
    return 0;
}

struct device *bridge_find_device(struct bridge *b, const char *name)
{
    for (unsigned i = 0; i < b->device_count; i++)
        if (strcmp(b->devices[i].cfg->name, name) == 0)
            return &b->devices[i];
    return NULL;
}

uint32_t device_timeout_ms(const struct device *d)
{
    if (d->cfg->timeout_ms)
        return d->cfg->timeout_ms;
    if (d->backend == BACKEND_EXTERNAL && d->sim && d->sim->completion_timeout_ms)
        return d->sim->completion_timeout_ms;
    return DEFAULT_TIMEOUT_MS;
}

static bool completion_is_final(const struct tlpb_tlp *cpl)
{
    if (cpl->kind == TLPB_TLP_CPL || cpl->status != TLPB_CPL_SC)
        return true;
    uint32_t data = cpl->length_dw * 4u - (cpl->lower_address & 3u);
    return cpl->byte_count <= data;
}

static void upstream_to_host(struct device *d, const struct tlpb_tlp *tlp, Tlpb__TraceDirection dir)
{
    trace_tlp(d->bridge, dir, d, tlp);
    conn_send_tlp(d->host, tlp, true);
}

/* Every completion the bridge builds itself must pass its own validator,
 * with the limits of the peer it goes to (to an in-process model: the
 * device's DMA mode). A failure is a bug in the bridge: logged as one. */
static void check_built_completion(const struct device *d, const struct tlpb_tlp *cpl,
                                   const struct conn *to)
{
    struct tlpb_tlp_limits lim = {.max_payload_bytes = 4096, .unsplit = d->cfg->fast_dma};
    if (to)
        lim = conn_limits(to);
    const char *reason = NULL;
    if (tlpb_tlp_validate(cpl, &lim, &reason) != 0)
        bridge_log(TLPB_LOG_ERROR,
                   "device %s: internal error: the bridge built a %s (%s, tag %u, byte count %u)"
                   " that its own validator rejects: %s",
                   d->cfg->name, tlpb_tlp_kind_name(cpl->kind), tlpb_cpl_status_name(cpl->status),
                   cpl->tag, cpl->byte_count, reason);
}

/* ---- PCIe checker (docs/checker.md) ---------------------------------------- */

/* What the caller does with a TLP or interrupt after the checker saw it. */
enum check_action {
    CHECK_PASS = 0,  /* no violation, or policy warn: deliver */
    CHECK_REJECT,    /* policy reject: drop it; a request gets UR */
    CHECK_STOPPED,   /* policy stop: the device is now on the fallback */
};

/* One rate-limited log site per rule: a flood of one rule is summarised
 * with a count, and never hides another rule's first lines. */
static struct tlpb_log_site check_log_sites[TLPB_CHECK_RULE_COUNT];

static void check_configure(struct device *d)
{
    /* Unsplit as granted: to a simulator only when it negotiated it. */
    bool unsplit = d->cfg->fast_dma;
    if (d->backend == BACKEND_EXTERNAL && d->sim)
        unsplit = conn_limits(d->sim).unsplit;
    d->check.config.unsplit = unsplit;
    /* Past the bridge's own timeout, when the fallback has answered a host
     * request: a request still open then was never completed. */
    d->check.config.completion_timeout_ns = (uint64_t)device_timeout_ms(d) * 2000000u;
    d->check.config.policy = d->cfg->check_policy;
}

static void arm_timeout(struct device *d);

/* Policy stop: the device goes to the fallback. */
static void check_stop_device(void *arg)
{
    struct device *d = arg;
    char err[256];
    if (d->backend != BACKEND_FALLBACK &&
        device_switch_backend(d, BACKEND_FALLBACK, err, sizeof(err)) != 0)
        bridge_log(TLPB_LOG_ERROR, "device %s: %s", d->cfg->name, err);
}

/* Policy stop for rule (what: who caught it, for the log line): the device
 * goes to the fallback, logged once; what the device sends until then
 * reaches nothing. */
static void check_policy_stop(struct device *d, const char *what, const char *rule)
{
    if (d->backend == BACKEND_FALLBACK || d->check_stopped)
        return;
    bridge_log(TLPB_LOG_ERROR, "device %s: %s: rule %s broken, policy stop: the device is"
               " switched to the fallback", d->cfg->name, what, rule);
    d->check_stopped = true;
    /* An in-process model is in the middle of a call into the bridge:
     * it is reset once that returns, from the event loop. */
    if (d->backend != BACKEND_HLSIM || hlsim_uv_defer(&d->deferred, check_stop_device, d) != 0)
        check_stop_device(d);
}

/* Count (done by the checker), log, trace and apply the policy to what the
 * checker reported. act: false for what the bridge built itself (its own
 * bugs are reported, not acted on). */
static enum check_action check_report(struct device *d, const struct tlpb_check_result *res,
                                      unsigned count, bool act)
{
    if (!count)
        return CHECK_PASS;
    const char *first_rule = NULL;
    for (unsigned i = 0; i < res->count; i++) {
        const struct tlpb_check_violation *v = &res->violations[i];
        const struct tlpb_check_rule_info *info = tlpb_check_rule(v->rule);
        char text[512];
        tlpb_check_format(v, text, sizeof(text));
        struct tlpb_log_site *site = &check_log_sites[v->rule];
        if (!site->file) {
            site->file = __FILE__;
            site->line = (int)v->rule;
        }
        bridge_log_at(site, TLPB_LOG_WARN, "device %s: PCIe checker: %s %s", d->cfg->name,
                      v->direction == TLPB_CHECK_HOST_TO_DEVICE ? "host->device" : "device->host",
                      text);
        trace_violation(d->bridge, d, v, text);
        if (!first_rule && info)
            first_rule = info->name;
    }
    if (!act || d->cfg->check_policy == TLPB_CHECK_POLICY_WARN)
        return CHECK_PASS;
    if (d->cfg->check_policy == TLPB_CHECK_POLICY_REJECT) {
        d->stats.rejected_tlps++;
        return CHECK_REJECT;
    }
    check_policy_stop(d, "PCIe checker", first_rule ? first_rule : "?");
    return CHECK_STOPPED;
}

static enum check_action check_tlp(struct device *d, enum tlpb_check_direction dir,
                                   const struct tlpb_tlp *tlp, bool act)
{
    check_configure(d);
    struct tlpb_check_result res;
    uint64_t now = tlpb_now_ns();
    unsigned n = dir == TLPB_CHECK_HOST_TO_DEVICE ? tlpb_check_host_tlp(&d->check, tlp, now, &res)
                                                   : tlpb_check_device_tlp(&d->check, tlp, now, &res);
    /* A request now tracked by the checker: its completion timeout rides on
     * the device's timeout timer (a later deadline than one armed), which
     * runs while a simulator process serves the device. An in-process
     * model's requests are checked for timeouts whenever it runs. */
    if (d->backend == BACKEND_EXTERNAL && tlpb_tlp_is_non_posted(tlp->kind) &&
        !d->timer_deadline_ns)
        arm_timeout(d);
    return check_report(d, &res, n, act);
}

static enum check_action check_interrupt(struct device *d, Tlpb__InterruptKind kind,
                                         uint32_t vector, bool act)
{
    enum tlpb_check_interrupt k;
    switch (kind) {
    case TLPB__INTERRUPT_KIND__IRQ_MSIX: k = TLPB_CHECK_MSIX; break;
    case TLPB__INTERRUPT_KIND__IRQ_MSI: k = TLPB_CHECK_MSI; break;
    case TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT: k = TLPB_CHECK_INTX_ASSERT; break;
    case TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT: k = TLPB_CHECK_INTX_DEASSERT; break;
    default: return CHECK_PASS;
    }
    check_configure(d);
    struct tlpb_check_result res;
    unsigned n = tlpb_check_device_interrupt(&d->check, k, vector, &res);
    return check_report(d, &res, n, act);
}

/* Completion timeouts the checker has due (from the device's timeout timer). */
static void check_expire(struct device *d, uint64_t now)
{
    struct tlpb_check_result res;
    unsigned n = tlpb_check_expire(&d->check, now, &res);
    check_report(d, &res, n, false);
}

/* What the bridge refused before the checker saw it (tlpb_tlp_validate,
 * device_interrupt_check) for one of the checker's rules is that rule's
 * violation: counted, logged and traced as the checker's own, from the
 * host or the simulator serving the device (a switched-away one drives
 * nothing). The refusal stands under every policy (a reject is already
 * done, not counted twice); stop stops the device. */
static bool refusal_checked(const struct device *d, const struct conn *from)
{
    return from == d->host || (d->backend == BACKEND_EXTERNAL && d->sim == from);
}

void device_check_refused_tlp(struct device *d, const struct conn *from,
                              const struct tlpb_tlp *tlp, enum tlpb_tlp_rule refused)
{
    if (!refusal_checked(d, from))
        return;
    /* A completion for a host request is reported as the host sees it, as
     * the checker's own (upstream_completion_to_host). */
    struct tlpb_tlp seen = *tlp;
    const struct pending_request *p = &d->pending[tlp->tag];
    if (from == d->sim && tlpb_tlp_is_completion(tlp->kind) && p->state == PENDING_ACTIVE) {
        seen.tag = p->host_tag;
        seen.requester_id = p->request.requester_id;
    }
    struct tlpb_check_result res;
    unsigned n = tlpb_check_refused_tlp(&d->check,
                                        from == d->host ? TLPB_CHECK_HOST_TO_DEVICE
                                                        : TLPB_CHECK_DEVICE_TO_HOST,
                                        &seen, refused, &res);
    check_report(d, &res, n, d->cfg->check_policy == TLPB_CHECK_POLICY_STOP);
}

void device_check_refused_interrupt(struct device *d, const struct conn *from,
                                    Tlpb__InterruptKind kind, uint32_t vector)
{
    if (refusal_checked(d, from))
        check_interrupt(d, kind, vector, d->cfg->check_policy == TLPB_CHECK_POLICY_STOP);
}

/* ---- Fallback responder --------------------------------------------------- */

static bool fallback_completion_unstamped(struct device *d, const struct tlpb_tlp *req,
                                         struct tlpb_tlp *cpl, uint8_t *data, size_t data_size);

/* The completion the fallback gives for request req (tag as the host sent
 * it), stamped with the request's time (a responder without a clock
 * answers at once). Returns false for requests that get none (posted). */
static bool fallback_completion(struct device *d, const struct tlpb_tlp *req, struct tlpb_tlp *cpl,
                                uint8_t *data, size_t data_size)
{
    if (!fallback_completion_unstamped(d, req, cpl, data, data_size))
        return false;
    cpl->sim_time_ps = req->sim_time_ps;
    return true;
}

static bool fallback_completion_unstamped(struct device *d, const struct tlpb_tlp *req,
                                         struct tlpb_tlp *cpl, uint8_t *data, size_t data_size)
{
    uint16_t completer = d->shadow.bus_device_function;
    switch (req->kind) {
    case TLPB_TLP_MRD: {
        uint32_t bytes = tlpb_tlp_request_bytes(req);
        uint64_t offset;
        if (tlpb_cfg_decode_request(&d->shadow, req, &offset) < 0) {
            /* The one address rule (docs/protocol.md): no BAR decodes it. */
            bridge_log(TLPB_LOG_DEBUG, "device %s: MRd at 0x%llx: no BAR decodes it; UR", d->cfg->name,
                       (unsigned long long)req->address);
            tlpb_completion_error_for(cpl, req, completer, TLPB_CPL_UR);
            return true;
        }
        if (d->cfg->fallback_read == FALLBACK_READ_UR) {
            tlpb_completion_error_for(cpl, req, completer, TLPB_CPL_UR);
            return true;
        }
        uint64_t first = tlpb_tlp_first_byte_address(req);
        tlpb_completion_for(cpl, req, completer, first, bytes, bytes);
        size_t len = (size_t)cpl->length_dw * 4u;
        if (len > data_size) { /* a host never asks this much through the shim */
            tlpb_completion_error_for(cpl, req, completer, TLPB_CPL_CA);
            return true;
        }
        memset(data, d->cfg->fallback_read == FALLBACK_READ_ZEROS ? 0x00 : 0xFF, len);
        cpl->payload = data;
        cpl->payload_bytes = (uint32_t)len;
        return true;
    }
    case TLPB_TLP_CFGRD0: {
        uint32_t v = tlpb_cfgspace_read(&d->shadow, req->cfg_register);
        struct tlpb_tlp one = *req;
        tlpb_completion_for(cpl, &one, completer, req->cfg_register, 4, 4);
        cpl->lower_address = 0;
        tlpb_put_le32(data, v);
        cpl->payload = data;
        cpl->payload_bytes = 4;
        return true;
    }
    case TLPB_TLP_CFGWR0:
        tlpb_completion_error_for(cpl, req, completer, TLPB_CPL_SC);
        cpl->kind = TLPB_TLP_CPL;
        cpl->byte_count = 4;
        return true;
    default:
        return false;
    }
}

/* Complete a host request that no backend will answer. */
static void fallback_complete_host_request(struct device *d, const struct tlpb_tlp *req_as_host_sent)
{
    uint8_t data[4096 + 8];
    struct tlpb_tlp cpl;
    if (!fallback_completion(d, req_as_host_sent, &cpl, data, sizeof(data)))
        return;
    d->stats.fallback_completions++;
    check_tlp(d, TLPB_CHECK_DEVICE_TO_HOST, &cpl, false);
    if (d->host) {
        check_built_completion(d, &cpl, d->host);
        upstream_to_host(d, &cpl, TLPB__TRACE_DIRECTION__TRACE_FALLBACK);
    }
}

/* ---- Timeouts -------------------------------------------------------------- */

/* A host request its backend will not complete: the fallback answers it. */
static void time_out_request(struct device *d, struct pending_request *p, const char *how)
{
    struct tlpb_tlp req = p->request;
    req.tag = p->host_tag;
    bridge_log(TLPB_LOG_WARN,
               "device %s: %s tag %u (addr 0x%llx) got no completion from %s %s;"
               " completed by the fallback",
               d->cfg->name, tlpb_tlp_kind_name(req.kind), req.tag,
               (unsigned long long)req.address, backend_name(d->backend), how);
    d->stats.timeouts++;
    p->state = PENDING_QUARANTINE;
    d->pending_active--;
    fallback_complete_host_request(d, &req);
}

static void timeout_cb(uv_timer_t *t)
{
    struct device *d = t->data;
    uint64_t now = tlpb_now_ns();
    d->timer_deadline_ns = 0;
    /* Coupled: a slow simulator is not a dead one. Its requests time out
     * only after timeout_ms without a frame from it (PROGRESS keeps it
     * alive), so the guest never reads the fallback's data from a live
     * precise backend. */
    bool live = d->time.coupled && d->backend == BACKEND_EXTERNAL && d->sim;
    uint64_t live_deadline =
        live ? d->time.last_sim_frame_ns + (uint64_t)device_timeout_ms(d) * 1000000u : 0;
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++) {
        struct pending_request *p = &d->pending[tag];
        if (p->state != PENDING_ACTIVE || p->deadline_ns > now)
            continue;
        if (live && live_deadline > now) {
            p->deadline_ns = live_deadline;
            continue;
        }
        char how[64];
        snprintf(how, sizeof(how), "within %u ms", device_timeout_ms(d));
        time_out_request(d, p, how);
    }
    check_expire(d, now);
    arm_timeout(d);
    if (d->host)
        conn_flush(d->host);
}

static void arm_timeout(struct device *d)
{
    uint64_t earliest = tlpb_check_next_deadline(&d->check);
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++)
        if (d->pending[tag].state == PENDING_ACTIVE && d->pending[tag].deadline_ns < earliest)
            earliest = d->pending[tag].deadline_ns;
    if (earliest == UINT64_MAX) {
        uv_timer_stop(&d->timeout_timer);
        d->timer_deadline_ns = 0;
        return;
    }
    if (d->timer_deadline_ns && d->timer_deadline_ns <= earliest)
        return;
    uint64_t now = tlpb_now_ns();
    uint64_t ms = earliest > now ? (earliest - now + 999999u) / 1000000u : 0;
    d->timer_deadline_ns = earliest;
    uv_timer_start(&d->timeout_timer, timeout_cb, ms, 0);
}

/* ---- Delivery to the active backend --------------------------------------- */

static void upstream_route(struct device *d, enum backend_kind from, const struct tlpb_tlp *tlp);

static void downstream_to_backend(struct device *d, const struct tlpb_tlp *tlp)
{
    switch (d->backend) {
    case BACKEND_HLSIM:
        hlsim_backend_downstream(d, tlp);
        break;
    case BACKEND_EXTERNAL:
        conn_send_tlp(d->sim, tlp, true);
        break;
    case BACKEND_FALLBACK: {
        if (tlpb_tlp_is_completion(tlp->kind))
            break; /* a DMA completion nobody waits for any more */
        if (tlp->kind == TLPB_TLP_MWR) {
            d->stats.fallback_absorbed_writes++;
            break;
        }
        uint8_t data[4096 + 8];
        struct tlpb_tlp cpl;
        if (fallback_completion(d, tlp, &cpl, data, sizeof(data))) {
            d->stats.fallback_completions++;
            upstream_route(d, BACKEND_FALLBACK, &cpl);
        }
        break;
    }
    }
}

static int alloc_bridge_tag(struct device *d)
{
    for (unsigned i = 0; i < TLPB_TAGS_MAX; i++) {
        unsigned tag = (d->next_tag + i) % TLPB_TAGS_MAX;
        if (d->pending[tag].state == PENDING_FREE) {
            d->next_tag = (tag + 1) % TLPB_TAGS_MAX;
            return (int)tag;
        }
    }
    return -EAGAIN;
}

static int track_request(struct device *d, const struct tlpb_tlp *req, enum pending_state state)
{
    int tag = alloc_bridge_tag(d);
    if (tag < 0)
        return tag;
    struct pending_request *p = &d->pending[tag];
    p->state = (uint8_t)state;
    p->host_tag = req->tag;
    p->request = *req;
    p->request.payload = NULL;
    p->request.payload_bytes = 0;
    p->request.tag = (uint8_t)tag;
    p->owed_bytes = req->kind == TLPB_TLP_MRD ? tlpb_tlp_request_bytes(req) : 0;
    p->deadline_ns = tlpb_now_ns() + (uint64_t)device_timeout_ms(d) * 1000000u;
    if (state == PENDING_ACTIVE)
        d->pending_active++;
    return tag;
}

static unsigned abandon_dma_reads(struct device *d);
static void time_update_coupling(struct device *d);
static void time_answer_pending_grant(struct device *d, const char *why);


/* A completion for the device's DMA read under tlp->tag (device_read_active),
 * from the host or built by the bridge from shared guest memory: what is
 * still owed, counted, traced as from the host, delivered. built: made while
 * the device is sending its request, so an in-process model gets it from the
 * event loop (at its stamp when coupled). */
static void completion_to_device(struct device *d, const struct tlpb_tlp *tlp, bool built)
{
    if (check_tlp(d, TLPB_CHECK_HOST_TO_DEVICE, tlp, !built) != CHECK_PASS)
        return; /* a violating completion is dropped */
    uint64_t next = d->device_read_next[tlp->tag];
    uint32_t owed = d->device_read_owed[tlp->tag];
    if (completion_is_final(tlp)) {
        d->device_read_active[tlp->tag] = false;
    } else {
        /* What is still owed, should the host go away before the rest. */
        uint32_t data = tlp->length_dw * 4u - (tlp->lower_address & 3u);
        d->device_read_owed[tlp->tag] = tlp->byte_count - data;
        d->device_read_next[tlp->tag] += data;
    }
    /* After the read is done with: policy stop switches the backend, which
     * abandons the reads still active. The completion then reaches nothing. */
    if (tlp->status != TLPB_CPL_SC) {
        device_dma_fault(d, false, next, owed, tlpb_cpl_status_name(tlp->status));
        if (d->check_stopped)
            return;
    }
    d->stats.completions_to_device++;
    if (tlp->kind == TLPB_TLP_CPLD)
        d->stats.dma_bytes += tlp->payload_bytes;
    trace_tlp(d->bridge, TLPB__TRACE_DIRECTION__TRACE_HOST_TO_DEVICE, d, tlp);
    if (built && d->backend == BACKEND_HLSIM)
        hlsim_backend_downstream_later(d, tlp);
    else
        downstream_to_backend(d, tlp);
}

void device_downstream_from_host(struct device *d, const struct tlpb_tlp *tlp)
{
    if (tlp->sim_time_ps > d->time.host_time_ps)
        d->time.host_time_ps = tlp->sim_time_ps;
    if (tlpb_tlp_is_completion(tlp->kind)) {
        /* Completion for one of the device's DMA reads. The host completes
         * requests in order, so what it still owed a backend that was
         * switched away or reset comes before anything for a newer read
         * under the same tag. */
        if (d->device_read_abandoned[tlp->tag]) {
            if (completion_is_final(tlp))
                d->device_read_abandoned[tlp->tag] = false;
            d->stats.late_completions++;
            bridge_log(TLPB_LOG_DEBUG, "device %s: host %s for abandoned DMA read tag %u discarded",
                       d->cfg->name, tlpb_tlp_kind_name(tlp->kind), tlp->tag);
            return;
        }
        if (!d->device_read_active[tlp->tag]) {
            /* Under the device's own tag: the checker tells a completion
             * after the last byte from one for no request at all. */
            check_tlp(d, TLPB_CHECK_HOST_TO_DEVICE, tlp, false);
            d->stats.rejected_tlps++;
            bridge_log(TLPB_LOG_WARN, "device %s: host %s for tag %u matches no DMA read",
                       d->cfg->name, tlpb_tlp_kind_name(tlp->kind), tlp->tag);
            trace_rejected(d->bridge, d, tlp, "from the host: completion matches no DMA read");
            if (d->host)
                tlpb_obuf_append_error(&d->host->ob, "completion for a tag with no outstanding request");
            return;
        }
        completion_to_device(d, tlp, false);
        return;
    }
    /* Checked against the configuration before this TLP changes it. */
    enum check_action action = check_tlp(d, TLPB_CHECK_HOST_TO_DEVICE, tlp, true);
    if (action == CHECK_REJECT) {
        trace_rejected(d->bridge, d, tlp, "from the host: PCIe checker violation (policy reject)");
        if (tlpb_tlp_is_non_posted(tlp->kind) && d->host)
            device_reject_request(d, d->host, tlp);
        return;
    }
    trace_tlp(d->bridge, TLPB__TRACE_DIRECTION__TRACE_HOST_TO_DEVICE, d, tlp);
    if (tlp->kind == TLPB_TLP_CFGWR0 && tlp->payload_bytes >= 4) {
        /* The shadow follows every config write, so the fallback answers
         * enumeration consistently and a new backend can be brought up to
         * the state the host programmed. */
        unsigned changes = tlpb_cfgspace_write(&d->shadow, tlp->cfg_register, tlpb_get_le32(tlp->payload),
                                               tlp->first_be);
        if (changes & TLPB_CFG_FLR_REQUESTED) {
            tlpb_cfgspace_reset(&d->shadow);
            abandon_dma_reads(d); /* the function's DMA ends with its reset */
            /* The FLR write itself stays outstanding: it is completed. */
            struct tlpb_check_request flr = d->check.host_requests[tlp->tag];
            tlpb_check_reset(&d->check, TLPB_CHECK_RESET_FLR);
            d->check.host_requests[tlp->tag] = flr;
        }
        d->shadow.bus_device_function = tlp->completer_id;
    }
    if (tlp->kind == TLPB_TLP_MWR) {
        d->stats.host_posted_writes++;
        downstream_to_backend(d, tlp);
        return;
    }
    d->stats.host_requests++;
    if (d->backend == BACKEND_FALLBACK) {
        fallback_complete_host_request(d, tlp);
        return;
    }
    int tag = track_request(d, tlp, PENDING_ACTIVE);
    if (tag < 0) {
        bridge_log(TLPB_LOG_WARN, "device %s: no free tag (256 requests outstanding or quarantined);"
                             " completed by the fallback", d->cfg->name);
        fallback_complete_host_request(d, tlp);
        return;
    }
    struct tlpb_tlp fwd = *tlp;
    fwd.tag = (uint8_t)tag;
    if (d->backend == BACKEND_EXTERNAL)
        arm_timeout(d);
    downstream_to_backend(d, &fwd);
}

/* A completion for a host request, from the backend (or the fallback). */
static void upstream_completion_to_host(struct device *d, const struct tlpb_tlp *tlp,
                                    Tlpb__TraceDirection dir)
{
    struct pending_request *p = &d->pending[tlp->tag];
    bool final = completion_is_final(tlp);
    switch (p->state) {
    case PENDING_FREE:
        /* For no request the bridge forwarded: unexpected, whatever the
         * host has outstanding under the same tag number. */
        if (!d->check.host_requests[tlp->tag].in_use)
            check_tlp(d, TLPB_CHECK_DEVICE_TO_HOST, tlp, false);
        d->stats.rejected_tlps++;
        bridge_log(TLPB_LOG_WARN, "device %s: completion for tag %u matches no outstanding request",
                   d->cfg->name, tlp->tag);
        trace_rejected(d->bridge, d, tlp, "from the backend: completion matches no outstanding request");
        if (d->sim && d->backend == BACKEND_EXTERNAL)
            tlpb_obuf_append_error(&d->sim->ob, "completion for a tag with no outstanding request");
        return;
    case PENDING_QUARANTINE:
        d->stats.late_completions++;
        bridge_log(TLPB_LOG_INFO, "device %s: late completion for tag %u discarded", d->cfg->name,
                   tlp->tag);
        if (final)
            p->state = PENDING_FREE;
        return;
    case PENDING_INTERNAL:
        if (tlp->status != TLPB_CPL_SC)
            bridge_log(TLPB_LOG_WARN, "device %s: config replay write 0x%x completed with %s",
                       d->cfg->name, p->request.cfg_register, tlpb_cpl_status_name(tlp->status));
        if (final)
            p->state = PENDING_FREE;
        return;
    case PENDING_ACTIVE:
        break;
    }
    struct tlpb_tlp out = *tlp;
    out.tag = p->host_tag;
    out.requester_id = p->request.requester_id;
    /* Checked as the host sees it: under the host's tag. */
    enum check_action action = check_tlp(d, TLPB_CHECK_DEVICE_TO_HOST, &out,
                                         dir != TLPB__TRACE_DIRECTION__TRACE_FALLBACK);
    if (action == CHECK_STOPPED)
        return; /* the switch to the fallback completed the request */
    if (action == CHECK_REJECT) {
        /* Dropped; the host request is answered with UR at once, so the
         * guest never waits for a completion that will not come. */
        trace_rejected(d->bridge, d, tlp, "from the device: PCIe checker violation (policy reject)");
        struct tlpb_tlp req = p->request;
        req.tag = p->host_tag;
        p->state = PENDING_FREE;
        d->pending_active--;
        if (d->host)
            device_reject_request(d, d->host, &req);
        return;
    }
    if (final) {
        p->state = PENDING_FREE;
        d->pending_active--;
    }
    d->stats.completions_to_host++;
    if (d->host)
        upstream_to_host(d, &out, dir);
}

/* Answer a request the device itself sent. An in-process model is in the
 * middle of sending it, so its answer is delivered from the event loop. */
static void downstream_reply_to_backend(struct device *d, const struct tlpb_tlp *cpl)
{
    /* Made by the bridge for the root complex: traced like the host's own
     * completions, so every TLP the device receives is in the trace. */
    trace_tlp(d->bridge, TLPB__TRACE_DIRECTION__TRACE_HOST_TO_DEVICE, d, cpl);
    /* The request is answered (a config request from a device is the
     * validator's, not the checker's: the checker does not track it). */
    if (d->check.device_requests[cpl->tag].in_use)
        check_tlp(d, TLPB_CHECK_HOST_TO_DEVICE, cpl, false);
    if (d->backend == BACKEND_HLSIM)
        hlsim_backend_downstream_later(d, cpl);
    else
        downstream_to_backend(d, cpl);
}

/* A TLP from a backend that no longer serves the device reaches nothing.
 * An attached simulator that was switched away is told: a non-posted
 * request is completed with UR (by the root complex, as for any DMA read
 * nobody answers), so its tag does not wait for a timeout; everything is
 * counted and logged. An in-process model is reset as it leaves, and what
 * it sends while resetting is dropped quietly (its DMA is cancelled by the
 * reset, and the bridge delivers to a model only while it is active). */
static void upstream_from_inactive(struct device *d, enum backend_kind from,
                                   const struct tlpb_tlp *tlp)
{
    if (from != BACKEND_EXTERNAL || !d->sim) {
        bridge_log(TLPB_LOG_DEBUG, "device %s: %s from inactive backend %s dropped", d->cfg->name,
                   tlpb_tlp_kind_name(tlp->kind), backend_name(from));
        return;
    }
    d->stats.inactive_backend_drops++;
    bool non_posted = tlpb_tlp_is_non_posted(tlp->kind);
    bridge_log(TLPB_LOG_WARN,
               "device %s: %s tag %u from the simulator, which no longer serves the device (its"
               " backend is %s): %s",
               d->cfg->name, tlpb_tlp_kind_name(tlp->kind), tlp->tag, backend_name(d->backend),
               non_posted ? "completed with UR" : "dropped");
    trace_rejected(d->bridge, d, tlp, "from a simulator that no longer serves the device");
    if (non_posted)
        device_reject_request(d, d->sim, tlp);
}

/* ---- DMA served from shared guest memory ---------------------------------- */

static int read_guest_memory(void *opaque, uint64_t addr, void *dst, uint32_t bytes)
{
    const struct device *d = opaque;
    const uint8_t *src = guestmem_lookup(d, addr, bytes);
    if (!src)
        return TLPB_CPL_UR;
    memcpy(dst, src, bytes);
    return 0;
}

struct guest_read {
    struct device *d;
    uint64_t stamp_ps;
};

static void guest_read_completion(void *opaque, struct tlpb_tlp *cpl)
{
    struct guest_read *r = opaque;
    cpl->sim_time_ps = r->stamp_ps; /* answered at once, as a host does in coupled time */
    completion_to_device(r->d, cpl, true);
}

/* A device DMA request (already validated) whose whole range lies in the
 * host's shared guest memory: a write is applied to it, a read answered
 * from it with the completions the host would build; nothing goes to the
 * host. Returns false (nothing done) for anything else.
 *
 * Order: a write is in memory before anything the device sends after it is
 * forwarded (an MSI-X reaches the host after its data). A request served
 * here may pass an earlier device write to the host that is still queued;
 * with a map in place such writes lie outside guest RAM (another device's
 * MMIO, not memory the served request touches), so no read returns stale
 * data because of it. Only a write sent just before a new map arrived could
 * be overtaken: maps change with QEMU's memory map, not during DMA to it. */
static bool dma_from_guest_memory(struct device *d, const struct tlpb_tlp *tlp)
{
    if (!d->guest_memory.map.count || (tlp->kind != TLPB_TLP_MRD && tlp->kind != TLPB_TLP_MWR))
        return false;
    uint64_t addr = tlpb_tlp_first_byte_address(tlp);
    uint32_t bytes = tlpb_tlp_request_bytes(tlp);
    uint8_t *mem = guestmem_lookup(d, addr, bytes);
    if (!mem)
        return false;
    trace_tlp(d->bridge, TLPB__TRACE_DIRECTION__TRACE_DEVICE_TO_HOST, d, tlp);
    d->stats.dma_shm_requests++;
    d->stats.dma_shm_bytes += bytes;
    if (tlp->kind == TLPB_TLP_MWR) {
        d->stats.device_posted_writes++;
        d->stats.dma_bytes += tlp->payload_bytes;
        tlpb_guestmem_apply_write(mem, tlp);
        return true;
    }
    d->stats.device_requests++;
    d->device_read_active[tlp->tag] = true;
    d->device_read_owed[tlp->tag] = bytes;
    d->device_read_next[tlp->tag] = addr;
    d->device_read_stamp[tlp->tag] = tlp->sim_time_ps;
    struct tlpb_tlp_limits lim = {.max_payload_bytes = 4096, .unsplit = d->cfg->fast_dma};
    if (d->backend == BACKEND_EXTERNAL && d->sim)
        lim = conn_limits(d->sim);
    struct guest_read r = {.d = d, .stamp_ps = tlp->sim_time_ps};
    tlpb_dma_serve_read(&d->dma_scratch, tlp, 0, tlpb_cfg_max_payload_bytes(&d->shadow),
                        lim.unsplit, read_guest_memory, d, guest_read_completion, &r);
    return true;
}

static void upstream_route(struct device *d, enum backend_kind from, const struct tlpb_tlp *tlp)
{
    if (from != d->backend) {
        upstream_from_inactive(d, from, tlp);
        return;
    }
    Tlpb__TraceDirection dir = from == BACKEND_FALLBACK ? TLPB__TRACE_DIRECTION__TRACE_FALLBACK
                                                        : TLPB__TRACE_DIRECTION__TRACE_DEVICE_TO_HOST;
    if (from != BACKEND_FALLBACK && tlp->sim_time_ps > d->time.device_time_ps)
        d->time.device_time_ps = tlp->sim_time_ps;
    if (tlpb_tlp_is_completion(tlp->kind)) {
        upstream_completion_to_host(d, tlp, dir);
        return;
    }
    enum check_action action = check_tlp(d, TLPB_CHECK_DEVICE_TO_HOST, tlp, true);
    if (action == CHECK_STOPPED)
        return; /* from a backend that no longer serves the device */
    if (action == CHECK_REJECT) {
        trace_rejected(d->bridge, d, tlp, "from the device: PCIe checker violation (policy reject)");
        if (tlpb_tlp_is_non_posted(tlp->kind)) {
            struct tlpb_tlp cpl;
            tlpb_completion_error_for(&cpl, tlp, 0, TLPB_CPL_UR);
            cpl.sim_time_ps = tlp->sim_time_ps;
            downstream_reply_to_backend(d, &cpl);
        }
        return;
    }
    if (tlp->kind == TLPB_TLP_CFGRD0 || tlp->kind == TLPB_TLP_CFGWR0) {
        d->stats.rejected_tlps++;
        bridge_log(TLPB_LOG_WARN, "device %s: a device may not send config requests (%s); UR",
                   d->cfg->name, tlpb_tlp_kind_name(tlp->kind));
        trace_rejected(d->bridge, d, tlp, "from the device: a device may not send config requests");
        struct tlpb_tlp cpl;
        tlpb_completion_error_for(&cpl, tlp, 0, TLPB_CPL_UR);
        cpl.sim_time_ps = tlp->sim_time_ps;
        check_built_completion(d, &cpl, d->backend == BACKEND_EXTERNAL ? d->sim : NULL);
        downstream_reply_to_backend(d, &cpl);
        return;
    }
    if (!d->host) {
        if (!d->logged_no_host) {
            bridge_log(TLPB_LOG_WARN, "device %s: DMA with no host connected (reads get UR, writes"
                                 " are dropped; logged once)", d->cfg->name);
            d->logged_no_host = true;
        }
        if (tlp->kind == TLPB_TLP_MRD) {
            struct tlpb_tlp cpl;
            tlpb_completion_error_for(&cpl, tlp, 0, TLPB_CPL_UR);
            cpl.sim_time_ps = tlp->sim_time_ps;
            check_built_completion(d, &cpl, d->backend == BACKEND_EXTERNAL ? d->sim : NULL);
            downstream_reply_to_backend(d, &cpl);
        } else {
            d->stats.dropped_device_writes++;
        }
        return;
    }
    if (dma_from_guest_memory(d, tlp))
        return;
    if (tlp->kind == TLPB_TLP_MRD) {
        d->stats.device_requests++;
        d->device_read_active[tlp->tag] = true;
        d->device_read_owed[tlp->tag] = tlpb_tlp_request_bytes(tlp);
        d->device_read_next[tlp->tag] = tlpb_tlp_first_byte_address(tlp);
        d->device_read_stamp[tlp->tag] = tlp->sim_time_ps;
    } else {
        d->stats.device_posted_writes++;
        d->stats.dma_bytes += tlp->payload_bytes;
    }
    upstream_to_host(d, tlp, TLPB__TRACE_DIRECTION__TRACE_DEVICE_TO_HOST);
}

/* A coupled simulator's stamp can be no later than what it was allowed to
 * simulate: the last grant or host stamp, plus the completion timeout an
 * implicit grant may run for. A later one (a broken simulator) would stall
 * the guest for as long: it is refused with an Error and taken as that bound. */
static uint64_t time_checked_stamp(struct device *d, const char *what, uint64_t stamp)
{
    const struct device_time *t = &d->time;
    if (!t->coupled || !d->sim || !conn_time_sync(d->sim) || !stamp)
        return stamp;
    uint64_t allowed = (t->grant_until_ps > t->host_time_ps ? t->grant_until_ps : t->host_time_ps) +
                       DEVICE_COUPLED_CTO_PS;
    if (stamp <= allowed)
        return stamp;
    char msg[200];
    snprintf(msg, sizeof(msg),
             "%s stamped %llu ps, beyond what the simulator was allowed to reach (%llu ps):"
             " taken as %llu ps", what, (unsigned long long)stamp, (unsigned long long)allowed,
             (unsigned long long)allowed);
    bridge_log(TLPB_LOG_WARN, "device %s: %s", d->cfg->name, msg);
    d->bridge->rejected_messages++;
    tlpb_obuf_append_error(&d->sim->ob, msg);
    return allowed;
}

void device_dma_fault(struct device *d, bool write, uint64_t address, uint32_t bytes,
                      const char *how)
{
    /* What the backend that sent the DMA said it was for: the model while
     * it serves, else the attached simulator (also for its writes the host
     * reports after policy stop switched it away). */
    const char *context = d->backend == BACKEND_HLSIM
                              ? hlsim_backend_dma_context(d, write, address)
                              : tlpb_dma_context_find(&d->sim_dma_contexts, write, address);
    d->stats.dma_faults++;
    d->last_dma_fault.seen = true;
    d->last_dma_fault.write = write;
    d->last_dma_fault.address = address;
    d->last_dma_fault.bytes = bytes;
    snprintf(d->last_dma_fault.context, sizeof(d->last_dma_fault.context), "%s",
             context ? context : "");
    char text[512];
    snprintf(text, sizeof(text),
             "DMA fault: %s of %u bytes at 0x%llx refused by the host (%s): not guest memory, or"
             " not mapped for the device by the guest's IOMMU%s%s",
             write ? "write" : "read", bytes, (unsigned long long)address, how,
             context ? " while " : "", context ? context : "");
    bridge_log(TLPB_LOG_WARN, "device %s: %s", d->cfg->name, text);
    trace_dma_fault(d->bridge, d, address, bytes, text);
    /* The host already failed the DMA (a read gets its UR, a write is
     * dropped): that is all warn and reject do. Stop acts as for a rule. */
    if (d->cfg->check_policy == TLPB_CHECK_POLICY_STOP)
        check_policy_stop(d, "DMA fault", TRACE_RULE_DMA_FAULT);
}

void device_dma_context_from_sim(struct device *d, const Tlpb__DmaContext *ctx)
{
    char text[TLPB_DMA_CONTEXT_MAX];
    BRIDGE_PEER_TEXT(text, ctx->text);
    tlpb_dma_context_note(&d->sim_dma_contexts, ctx->write, ctx->address, ctx->length_bytes,
                          text);
}

void device_upstream_from_sim(struct device *d, const struct tlpb_tlp *tlp)
{
    struct tlpb_tlp checked = *tlp;
    checked.sim_time_ps = time_checked_stamp(d, tlpb_tlp_kind_name(tlp->kind), tlp->sim_time_ps);
    upstream_route(d, BACKEND_EXTERNAL, &checked);
}

void device_upstream_from_model(struct device *d, const struct tlpb_tlp *tlp)
{
    upstream_route(d, BACKEND_HLSIM, tlp);
}

void device_upstream_interrupt(struct device *d, Tlpb__InterruptKind kind, uint32_t vector)
{
    device_upstream_interrupt_at(d, kind, vector, 0);
}

void device_upstream_interrupt_at(struct device *d, Tlpb__InterruptKind kind, uint32_t vector,
                                  uint64_t sim_time_ps)
{
    if (check_interrupt(d, kind, vector, true) != CHECK_PASS)
        return; /* dropped (reject), or the device is stopped */
    d->stats.interrupts++;
    if (sim_time_ps > d->time.device_time_ps)
        d->time.device_time_ps = sim_time_ps;
    trace_interrupt(d->bridge, d, kind, vector, sim_time_ps);
    if (d->host)
        conn_send_interrupt(d->host, kind, vector, sim_time_ps);
}

void device_upstream_interrupt_from_sim(struct device *d, const struct conn *sim,
                                        Tlpb__InterruptKind kind, uint32_t vector,
                                        uint64_t sim_time_ps)
{
    if (d->backend != BACKEND_EXTERNAL || d->sim != sim) {
        /* Switched away: the simulator no longer drives the guest. The
         * kind was checked (device_interrupt_check), so it has a name. */
        const ProtobufCEnumValue *name =
            protobuf_c_enum_descriptor_get_value(&tlpb__interrupt_kind__descriptor, (int)kind);
        d->stats.inactive_backend_drops++;
        bridge_log(TLPB_LOG_WARN,
                   "device %s: Interrupt (%s vector %u) from the simulator, which no longer serves"
                   " the device (its backend is %s): dropped",
                   d->cfg->name, name ? name->name : "?", vector, backend_name(d->backend));
        return;
    }
    device_upstream_interrupt_at(d, kind, vector, time_checked_stamp(d, "Interrupt", sim_time_ps));
}

int device_interrupt_check(const struct device *d, Tlpb__InterruptKind kind, uint32_t vector,
                           char *err, size_t err_size)
{
    switch (kind) {
    case TLPB__INTERRUPT_KIND__IRQ_MSIX:
        if (vector < d->desc.msix_vectors)
            return 0;
        snprintf(err, err_size, "Interrupt IRQ_MSIX vector %u: device %s has %u MSI-X vectors",
                 vector, d->cfg->name, d->desc.msix_vectors);
        return -1;
    case TLPB__INTERRUPT_KIND__IRQ_MSI:
        if (vector < d->desc.msi_vectors)
            return 0;
        snprintf(err, err_size, "Interrupt IRQ_MSI vector %u: device %s has %u MSI vectors",
                 vector, d->cfg->name, d->desc.msi_vectors);
        return -1;
    case TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT:
    case TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT:
        if (d->desc.intx_pin != 0 && vector == d->desc.intx_pin - 1u)
            return 0;
        snprintf(err, err_size, "Interrupt INTx pin index %u: device %s uses %s", vector,
                 d->cfg->name, d->desc.intx_pin ? "another pin" : "no INTx pin");
        return -1;
    default:
        snprintf(err, err_size, "Interrupt kind %d is not defined", (int)kind);
        return -1;
    }
}

uint64_t device_grant_capabilities(const struct device *d, const char *label, uint64_t offered)
{
    /* Coupled time is granted to whoever offers it: a backend without it
     * runs free-running, which the host is told (device_time_mode). */
    uint64_t granted =
        offered & (TLPB__CAPABILITY__CAP_UNSPLIT_DMA | TLPB__CAPABILITY__CAP_TIME_SYNC);
    /* Fast (unsplit) DMA trades PCIe fidelity for speed: only where the
     * device's configuration says so, so a strict device stays strict for
     * its host and its simulator alike. */
    if (!d->cfg->fast_dma && (granted & TLPB__CAPABILITY__CAP_UNSPLIT_DMA)) {
        bridge_log(TLPB_LOG_INFO, "%s: device %s is configured for strict DMA: unsplit DMA not granted",
                   label, d->cfg->name);
        granted &= ~(uint64_t)TLPB__CAPABILITY__CAP_UNSPLIT_DMA;
    }
    return granted;
}

void device_reject_request(struct device *d, struct conn *from, const struct tlpb_tlp *req)
{
    /* To a host the device completes (its own ID); to a device's DMA the
     * root complex does (00:00.0). */
    uint16_t completer = from == d->host ? d->shadow.bus_device_function : 0;
    struct tlpb_tlp cpl;
    tlpb_completion_error_for(&cpl, req, completer, TLPB_CPL_UR);
    cpl.sim_time_ps = req->sim_time_ps;
    check_built_completion(d, &cpl, from);
    /* The UR answers the request: the checker forgets it now, or a later
     * request under the same tag would count as tag_reuse. */
    if (from == d->host && d->check.host_requests[cpl.tag].in_use)
        check_tlp(d, TLPB_CHECK_DEVICE_TO_HOST, &cpl, false);
    else if (from != d->host && d->check.device_requests[cpl.tag].in_use)
        check_tlp(d, TLPB_CHECK_HOST_TO_DEVICE, &cpl, false);
    trace_tlp(d->bridge,
              from == d->host ? TLPB__TRACE_DIRECTION__TRACE_FALLBACK
                              : TLPB__TRACE_DIRECTION__TRACE_HOST_TO_DEVICE,
              d, &cpl);
    conn_send_tlp(from, &cpl, true);
}

bool device_accepts_from_host(const struct device *d)
{
    if (d->backend == BACKEND_EXTERNAL && d->sim)
        return conn_has_room(d->sim);
    return true;
}

bool device_accepts_from_device(const struct device *d)
{
    return !d->host || conn_has_room(d->host);
}

void device_output_ready(struct device *d)
{
    if (d->backend == BACKEND_HLSIM && d->hlsim && d->hlsim_output_blocked &&
        (!d->host || conn_has_room(d->host))) {
        d->hlsim_output_blocked = false;
        hlsim_device_output_ready(d->hlsim);
    }
}

/* ---- Coupled simulated time ------------------------------------------------ */

const char *device_time_mode(const struct device *d, char *buf, size_t size)
{
    if (d->backend == BACKEND_FALLBACK)
        snprintf(buf, size, "free-running (the fallback responder has no clock)");
    else if (d->backend == BACKEND_EXTERNAL && !conn_time_sync(d->sim))
        snprintf(buf, size, "free-running (simulator has no CAP_TIME_SYNC)");
    else
        snprintf(buf, size, "coupled");
    return buf;
}

/* Bring the active backend's time mode in line with the host: COUPLED to
 * an external simulator with the cap once a coupled host is attached (FREE
 * when it leaves or the simulator stops serving), the same to the
 * in-process model; and tell a coupled host when its mode changes. */
static void time_update_coupling(struct device *d)
{
    struct device_time *t = &d->time;
    bool want_sim = t->coupled && d->backend == BACKEND_EXTERNAL && conn_time_sync(d->sim);
    /* A coupled simulator's DMA goes as messages, stamped (rule 3): the map
     * is withdrawn ahead of COUPLED. */
    guestmem_update_sim(d, false);
    if (d->sim && conn_time_sync(d->sim) && want_sim != d->sim->time_coupled_sent) {
        Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
        ts.kind = want_sim ? TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED
                           : TLPB__TIME_SYNC_KIND__TIME_SYNC_FREE;
        ts.sim_time_ps = want_sim ? t->host_time_ps : 0;
        conn_send_time_sync(d->sim, &ts);
        d->sim->time_coupled_sent = want_sim;
    }
    bool want_hlsim = t->coupled && d->backend == BACKEND_HLSIM && d->hlsim;
    if (want_hlsim != t->hlsim_coupled) {
        if (d->hlsim)
            hlsim_backend_time_mode(d, want_hlsim, t->host_time_ps);
        t->hlsim_coupled = want_hlsim;
    }
    if (!t->coupled) {
        t->mode[0] = '\0';
        return;
    }
    char mode[sizeof(t->mode)];
    device_time_mode(d, mode, sizeof(mode));
    if (strcmp(mode, t->mode) == 0)
        return;
    /* The first mode went out in the HelloReply. */
    bool changed = t->mode[0] != '\0';
    snprintf(t->mode, sizeof(t->mode), "%s", mode);
    if (d->backend == BACKEND_EXTERNAL && d->sim && !conn_time_sync(d->sim))
        bridge_log(TLPB_LOG_WARN,
                   "device %s: simulator \"%s\" has no CAP_TIME_SYNC: attached free-running (guest"
                   " time will not wait for it)",
                   d->cfg->name, d->sim->peer_name);
    else
        bridge_log(TLPB_LOG_INFO, "device %s: time %s (backend %s)", d->cfg->name, mode,
                   backend_name(d->backend));
    if (changed && d->host) {
        char detail[sizeof(mode) + 8];
        snprintf(detail, sizeof(detail), "time: %s", mode);
        conn_send_event(d->host, TLPB__EVENT_KIND__EVENT_BACKEND_CHANGED, backend_name(d->backend),
                        detail);
    }
}

/* Sync wall time into the histogram: 4 buckets per octave of ns. */
static unsigned sync_hist_bucket(uint64_t ns)
{
    if (ns < 4)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    unsigned b = msb * 4u + (unsigned)((ns >> (msb - 2u)) & 3u);
    return b < DEVICE_SYNC_HIST_BUCKETS ? b : DEVICE_SYNC_HIST_BUCKETS - 1u;
}

/* The middle of a bucket, in ns. */
static double sync_hist_value(unsigned b)
{
    if (b < 4)
        return b;
    unsigned msb = b / 4u, quarter = b % 4u;
    double low = (double)(1ull << msb) * (1.0 + quarter / 4.0);
    return low + (double)(1ull << msb) / 8.0;
}

double device_time_sync_percentile_us(const struct device *d, double fraction)
{
    const struct device_time *t = &d->time;
    if (t->syncs == 0)
        return 0;
    uint64_t want = (uint64_t)(fraction * (double)t->syncs);
    if (want == 0)
        want = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < DEVICE_SYNC_HIST_BUCKETS; b++) {
        seen += t->sync_wall_hist[b];
        if (seen >= want)
            return sync_hist_value(b) / 1000.0;
    }
    return sync_hist_value(DEVICE_SYNC_HIST_BUCKETS - 1) / 1000.0;
}

/* The pending grant is answered (by the backend or the bridge): REACHED
 * to the host, after everything the device sent before it. */
static void time_reached(struct device *d, uint64_t sync_id, uint64_t sim_time_ps, bool idle,
                         uint64_t next_event_ps, uint64_t clocked_cycles)
{
    struct device_time *t = &d->time;
    uint64_t wall = tlpb_now_ns() - t->grant_started_ns;
    t->grant_pending = false;
    t->syncs++;
    t->sync_wall_ns_total += wall;
    uint32_t *bucket = &t->sync_wall_hist[sync_hist_bucket(wall)];
    if (*bucket < UINT32_MAX)
        (*bucket)++;
    if (sim_time_ps > t->device_time_ps)
        t->device_time_ps = sim_time_ps;
    t->idle = idle;
    t->next_event_ps = idle ? next_event_ps : 0;
    if (clocked_cycles)
        t->clocked_cycles = clocked_cycles;
    if (!conn_time_sync(d->host))
        return;
    Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
    ts.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED;
    ts.sync_id = sync_id;
    ts.sim_time_ps = sim_time_ps;
    ts.idle = idle;
    ts.next_event_ps = t->next_event_ps;
    ts.clocked_cycles = clocked_cycles;
    trace_time_sync(d->bridge, TLPB__TRACE_DIRECTION__TRACE_DEVICE_TO_HOST, d, &ts);
    conn_send_time_sync(d->host, &ts);
}

/* A backend that stops serving (detached, crashed, switched, reloaded)
 * leaves no guest waiting: its grant is answered idle at the grant's end. */
static void time_answer_pending_grant(struct device *d, const char *why)
{
    struct device_time *t = &d->time;
    if (!t->grant_pending)
        return;
    bridge_log(TLPB_LOG_INFO, "device %s: grant %llu pending when %s; answered by the bridge",
               d->cfg->name, (unsigned long long)t->grant_id, why);
    t->abandoned_grant_id = t->grant_id;
    time_reached(d, t->grant_id, t->grant_until_ps, true, 0, 0);
}

void device_time_grant(struct device *d, const Tlpb__Envelope *env)
{
    const Tlpb__TimeSync *grant = env->time_sync;
    struct device_time *t = &d->time;
    if (grant->sim_time_ps > t->host_time_ps)
        t->host_time_ps = grant->sim_time_ps;
    if (t->grant_pending) {
        /* The host waits for each REACHED before its next GRANT. */
        char msg[160];
        snprintf(msg, sizeof(msg), "TimeSync GRANT %llu while grant %llu is pending: not forwarded",
                 (unsigned long long)grant->sync_id, (unsigned long long)t->grant_id);
        conn_refuse_message(d->host, env, msg);
        return;
    }
    trace_time_sync(d->bridge, TLPB__TRACE_DIRECTION__TRACE_HOST_TO_DEVICE, d, grant);
    t->grant_pending = true;
    t->grant_id = grant->sync_id;
    t->grant_until_ps = grant->grant_until_ps;
    t->grant_started_ns = tlpb_now_ns();
    if (d->backend == BACKEND_HLSIM && d->hlsim) {
        hlsim_backend_time_grant(d, grant->sync_id, grant->grant_until_ps);
        return;
    }
    if (d->backend == BACKEND_EXTERNAL && conn_time_sync(d->sim)) {
        /* Same queue as the host's TLPs: the grant follows them. */
        Tlpb__TimeSync fwd = TLPB__TIME_SYNC__INIT;
        fwd.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT;
        fwd.sim_time_ps = grant->sim_time_ps;
        fwd.sync_id = grant->sync_id;
        fwd.grant_until_ps = grant->grant_until_ps;
        conn_send_time_sync(d->sim, &fwd);
        return;
    }
    /* No clock (fallback) or a free-running simulator: nothing to wait for. */
    time_reached(d, grant->sync_id, grant->grant_until_ps, true, 0, 0);
}

void device_time_reached(struct device *d, uint64_t sync_id, uint64_t sim_time_ps, bool idle,
                         uint64_t next_event_ps, uint64_t clocked_cycles)
{
    struct device_time *t = &d->time;
    if (!t->grant_pending || sync_id != t->grant_id) {
        if (sync_id != t->abandoned_grant_id)
            bridge_log(TLPB_LOG_WARN, "device %s: the model answered grant %llu, which is not"
                       " pending; dropped", d->cfg->name, (unsigned long long)sync_id);
        return;
    }
    time_reached(d, sync_id, sim_time_ps, idle, next_event_ps, clocked_cycles);
    if (d->host)
        conn_flush(d->host);
}

/* A coupled simulator that keeps simulating (PROGRESS) but never completes
 * a host request would keep the guest waiting forever, its implicit grant
 * never ending: PCIe's completion timeout, counted in device time. The
 * request is completed by the fallback, and a grant the simulator ran past
 * by as much is answered by the bridge, so the guest goes on. */
static void time_check_completion_timeouts(struct device *d)
{
    struct device_time *t = &d->time;
    bool any = false;
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++) {
        struct pending_request *p = &d->pending[tag];
        if (p->state != PENDING_ACTIVE || !p->request.sim_time_ps ||
            t->device_time_ps < p->request.sim_time_ps + DEVICE_COUPLED_CTO_PS)
            continue;
        time_out_request(d, p, "within 50 ms of device time");
        any = true;
    }
    if (any)
        arm_timeout(d);
    if (t->grant_pending && t->device_time_ps >= t->grant_until_ps + DEVICE_COUPLED_CTO_PS)
        time_answer_pending_grant(d, "the simulator ran 50 ms of device time past it");
    if (d->host)
        conn_flush(d->host); /* the fallback's completions, the bridge's REACHED */
}

int device_time_from_sim(struct device *d, const struct conn *sim, const Tlpb__TimeSync *ts,
                         char *err, size_t err_size)
{
    struct device_time *t = &d->time;
    /* A simulator that no longer serves the device drives nothing. */
    if (d->sim != sim || d->backend != BACKEND_EXTERNAL)
        return 0;
    if (ts->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS) {
        if (ts->sim_time_ps > t->device_time_ps)
            t->device_time_ps = ts->sim_time_ps;
        if (ts->clocked_cycles)
            t->clocked_cycles = ts->clocked_cycles;
        time_check_completion_timeouts(d);
        /* A host waiting on a slow simulator hears that it lives: its own
         * wait is bounded by silence. At most one a second. */
        uint64_t now = tlpb_now_ns();
        if (d->host && (t->grant_pending || d->pending_active) &&
            now - t->progress_to_host_ns >= 1000000000u) {
            Tlpb__TimeSync fwd = TLPB__TIME_SYNC__INIT;
            fwd.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS;
            fwd.sim_time_ps = ts->sim_time_ps;
            fwd.clocked_cycles = ts->clocked_cycles;
            conn_send_time_sync(d->host, &fwd);
            conn_flush(d->host);
            t->progress_to_host_ns = now;
        }
        return 0;
    }
    if (!t->grant_pending || ts->sync_id != t->grant_id) {
        if (ts->sync_id != 0 && ts->sync_id == t->abandoned_grant_id)
            return 0; /* answered by the bridge already */
        if (t->grant_pending)
            snprintf(err, err_size, "TimeSync REACHED for sync_id %llu, but the pending grant is %llu:"
                     " dropped", (unsigned long long)ts->sync_id, (unsigned long long)t->grant_id);
        else
            snprintf(err, err_size, "TimeSync REACHED for sync_id %llu, but no grant is pending:"
                     " dropped", (unsigned long long)ts->sync_id);
        return -1;
    }
    time_reached(d, ts->sync_id, ts->sim_time_ps, ts->idle, ts->next_event_ps, ts->clocked_cycles);
    return 0;
}

void device_sim_alive(struct device *d, const struct conn *sim)
{
    if (d->sim == sim)
        d->time.last_sim_frame_ns = tlpb_now_ns();
}

/* ---- Lifecycle ------------------------------------------------------------- */

/* Bring a newly active backend to the config state the host programmed:
 * BARs, interrupt line, device control, MSI/MSI-X control, command last. */
static void replay_config(struct device *d)
{
    static const struct {
        uint16_t reg;
        uint8_t be;
    } regs[] = {
        {0x10, 0xF}, {0x14, 0xF}, {0x18, 0xF}, {0x1C, 0xF}, {0x20, 0xF}, {0x24, 0xF},
        {0x3C, 0x1},                       /* interrupt line */
        {TLPB_CFG_PCIE_CAP + 8, 0x3},      /* device control, not the RW1C status */
        {TLPB_CFG_MSI_CAP, 0xC},           /* MSI control */
        {TLPB_CFG_MSI_CAP + 4, 0xF}, {TLPB_CFG_MSI_CAP + 8, 0xF}, {TLPB_CFG_MSI_CAP + 12, 0xF},
        {TLPB_CFG_MSIX_CAP, 0xC},          /* MSI-X control */
        {0x04, 0x3},                       /* command, not the RW1C status */
    };
    for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
        if ((regs[i].reg == TLPB_CFG_MSI_CAP || regs[i].reg > TLPB_CFG_MSI_CAP) &&
            regs[i].reg < TLPB_CFG_MSIX_CAP && d->desc.msi_vectors == 0)
            continue;
        if (regs[i].reg == TLPB_CFG_MSIX_CAP && d->desc.msix_vectors == 0)
            continue;
        uint32_t v = tlpb_cfgspace_read(&d->shadow, regs[i].reg);
        uint8_t payload[4];
        tlpb_put_le32(payload, v);
        struct tlpb_tlp wr = {
            .kind = TLPB_TLP_CFGWR0,
            .requester_id = 0,
            .length_dw = 1,
            .first_be = regs[i].be,
            .completer_id = d->shadow.bus_device_function,
            .cfg_register = regs[i].reg,
            .bar_hint = TLPB_NO_BAR,
            .payload_bytes = 4,
            .payload = payload,
            /* Unstamped (takes effect at once): the bridge's own request,
             * at a moment of wall time, not of the guest's. */
        };
        int tag = track_request(d, &wr, PENDING_INTERNAL);
        if (tag < 0)
            return;
        wr.tag = (uint8_t)tag;
        downstream_to_backend(d, &wr);
    }
}

/* The DMA reads the device has outstanding at the host are abandoned (the
 * device was reset or is leaving): the host's completions for them will be
 * discarded. Returns how many. */
static unsigned abandon_dma_reads(struct device *d)
{
    unsigned n = 0;
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++) {
        if (d->device_read_active[tag] && d->host) {
            d->device_read_abandoned[tag] = true;
            n++;
        }
        d->device_read_active[tag] = false;
    }
    /* The checker forgets them too: their completions never reach the device. */
    memset(d->check.device_requests, 0, sizeof(d->check.device_requests));
    return n;
}

/* Complete every request the leaving backend still owes, and abandon its
 * DMA reads. Returns how many DMA reads were abandoned. */
static unsigned drain_backend(struct device *d, const char *why)
{
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++) {
        struct pending_request *p = &d->pending[tag];
        if (p->state == PENDING_ACTIVE) {
            struct tlpb_tlp req = p->request;
            req.tag = p->host_tag;
            bridge_log(TLPB_LOG_WARN, "device %s: %s tag %u outstanding when %s; completed by the fallback",
                       d->cfg->name, tlpb_tlp_kind_name(req.kind), req.tag, why);
            d->pending_active--;
            p->state = PENDING_FREE;
            fallback_complete_host_request(d, &req);
        }
        p->state = PENDING_FREE;
    }
    d->pending_active = 0;
    arm_timeout(d);
    return abandon_dma_reads(d);
}

/* A backend that stops serving the device is reset, so that whatever it was
 * doing (a DMA transfer, a pending interrupt) ends there and, if it serves
 * the device again, it starts from reset like any newly active backend.
 * It is already inactive: what it sends while resetting is dropped. */
static bool reset_left_backend(struct device *d, enum backend_kind left)
{
    if (left == BACKEND_HLSIM && d->hlsim) {
        hlsim_device_reset(d->hlsim, HLSIM_RESET_HOT);
        return true;
    }
    if (left == BACKEND_EXTERNAL && d->sim) {
        Tlpb__Reset r = TLPB__RESET__INIT;
        r.kind = TLPB__RESET_KIND__RESET_HOT;
        Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
        env.body_case = TLPB__ENVELOPE__BODY_RESET;
        env.reset = &r;
        conn_send_envelope(d->sim, &env);
        return true;
    }
    return false;
}

static void announce_backend(struct device *d, Tlpb__EventKind kind, const char *detail)
{
    bridge_log(TLPB_LOG_INFO, "device %s: backend %s (%s)", d->cfg->name, backend_name(d->backend), detail);
    if (d->host) {
        conn_send_event(d->host, kind, backend_name(d->backend), detail);
        conn_flush(d->host);
    }
}

/* Make kind the device's backend. The leaving one's host requests are
 * completed by the fallback (each logged), its DMA reads abandoned, and it
 * is reset; the new one gets the host's config state replayed. Returns how
 * many DMA reads were abandoned. */
static unsigned activate(struct device *d, enum backend_kind kind, const char *why)
{
    enum backend_kind left = d->backend;
    unsigned abandoned = 0;
    if (left != BACKEND_FALLBACK)
        abandoned = drain_backend(d, why);
    /* After the leaving backend's completions: the guest must not wait on
     * a grant nobody will answer. */
    time_answer_pending_grant(d, why);
    d->backend = kind;
    d->hlsim_output_blocked = false;
    if (kind != BACKEND_FALLBACK)
        d->check_stopped = false; /* a backend again: policy stop may act again */
    if (left != BACKEND_FALLBACK && left != kind) {
        /* Said every time: whatever the old backend was in the middle of
         * (a DMA transfer, even between two reads) ends here. */
        bool reset = reset_left_backend(d, left);
        bridge_log(abandoned ? TLPB_LOG_WARN : TLPB_LOG_INFO,
                   "device %s: the %s backend stops serving (%s)%s; %u DMA read%s outstanding at"
                   " the host abandoned (their completions are discarded)",
                   d->cfg->name, backend_name(left), why, reset ? ", reset" : "", abandoned,
                   abandoned == 1 ? "" : "s");
    }
    /* The new backend learns the host's time before anything stamped. */
    time_update_coupling(d);
    if (kind != BACKEND_FALLBACK)
        replay_config(d);
    /* A simulator switched away loses the map, one that serves gets it. */
    guestmem_update_sim(d, false);
    return abandoned;
}

void device_host_attached(struct device *d, struct conn *c)
{
    d->host = c;
    d->logged_no_host = false;
    struct device_time *t = &d->time;
    t->coupled = conn_time_sync(c);
    /* A new host's clock starts again (a new QEMU's at 0): its time is known
     * from its first stamp on; COUPLED rebases the simulator's clock there. */
    t->host_time_ps = 0;
    t->device_time_ps = 0;
    if (t->coupled) {
        /* Rates in status count from here. */
        t->syncs = 0;
        t->sync_wall_ns_total = 0;
        memset(t->sync_wall_hist, 0, sizeof(t->sync_wall_hist));
        t->coupled_since_ns = tlpb_now_ns();
        t->coupled_since_ps = t->host_time_ps;
        t->cycles_at_coupling = t->clocked_cycles;
        t->mode[0] = '\0';
    }
    bridge_log(TLPB_LOG_INFO, "device %s: host %s connected (backend %s)", d->cfg->name,
               c->peer_name[0] ? c->peer_name : "?", backend_name(d->backend));
    bool device_unsplit = (d->cfg->fast_dma && d->hlsim) ||
                          (d->sim && (d->sim->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA));
    if (device_unsplit && !(c->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA))
        bridge_log(TLPB_LOG_WARN,
                   "device %s: its model uses fast (unsplit) DMA but this host did not offer"
                   " unsplit DMA; DMA larger than PCIe allows will fail (use dma = \"strict\")",
                   d->cfg->name);
    time_update_coupling(d);
    if (d->sim)
        conn_flush(d->sim);
}

void device_host_detached(struct device *d)
{
    d->host = NULL;
    bridge_log(TLPB_LOG_INFO, "device %s: host disconnected", d->cfg->name);
    guestmem_drop(d, "host disconnected");
    for (unsigned tag = 0; tag < TLPB_TAGS_MAX; tag++) {
        struct pending_request *p = &d->pending[tag];
        d->device_read_abandoned[tag] = false;
        if (p->state == PENDING_ACTIVE) {
            p->state = PENDING_QUARANTINE; /* nobody to answer any more */
            d->pending_active--;
        }
        if (d->device_read_active[tag]) {
            /* The host will never complete this DMA read: say so, for
             * the bytes still owed, from the next one (PCIe byte count and
             * lower address rules). */
            struct tlpb_tlp req = {.kind = TLPB_TLP_MRD, .tag = (uint8_t)tag,
                                   .requester_id = d->shadow.bus_device_function,
                                   .bar_hint = TLPB_NO_BAR};
            if (tlpb_tlp_set_mem_range(&req, d->device_read_next[tag], d->device_read_owed[tag]) != 0)
                tlpb_tlp_set_mem_range(&req, d->device_read_next[tag] & ~3ull, 4);
            struct tlpb_tlp cpl;
            tlpb_completion_error_for(&cpl, &req, 0, TLPB_CPL_UR);
            cpl.sim_time_ps = d->device_read_stamp[tag];
            check_built_completion(d, &cpl, d->backend == BACKEND_EXTERNAL ? d->sim : NULL);
            d->device_read_active[tag] = false;
            downstream_to_backend(d, &cpl);
        }
    }
    arm_timeout(d);
    /* Nobody waits for a grant any more; the device runs free again. */
    if (d->time.grant_pending) {
        d->time.grant_pending = false;
        d->time.abandoned_grant_id = d->time.grant_id;
    }
    d->time.coupled = false;
    time_update_coupling(d);
    if (d->sim)
        conn_flush(d->sim);
}

static bool same_device(const struct tlpb_devdesc *a, const struct tlpb_devdesc *b)
{
    if (a->vendor_id != b->vendor_id || a->device_id != b->device_id ||
        a->class_code != b->class_code || a->msix_vectors != b->msix_vectors)
        return false;
    for (unsigned i = 0; i < TLPB_BAR_COUNT; i++)
        if (a->bars[i].size_bytes != b->bars[i].size_bytes || a->bars[i].is_64bit != b->bars[i].is_64bit)
            return false;
    return true;
}

int device_sim_check(const struct device *d, const struct tlpb_devdesc *desc, char *err,
                     size_t err_size)
{
    if (!same_device(desc, &d->desc)) {
        snprintf(err, err_size,
                 "simulator implements %04x:%04x, which does not match device %s (%04x:%04x,"
                 " same BARs and MSI-X required)",
                 desc->vendor_id, desc->device_id, d->cfg->name, d->desc.vendor_id,
                 d->desc.device_id);
        return -1;
    }
    return 0;
}

int device_sim_attach(struct device *d, struct conn *c, const struct tlpb_devdesc *desc,
                      char *err, size_t err_size)
{
    if (device_sim_check(d, desc, err, err_size) != 0)
        return -1;
    if (c->completion_timeout_ms > BRIDGE_MAX_ANNOUNCED_TIMEOUT_MS) {
        bridge_log(TLPB_LOG_WARN,
                   "device %s: simulator %s announced a completion timeout of %u ms; clamped to"
                   " %u ms", d->cfg->name, c->peer_name, c->completion_timeout_ms,
                   BRIDGE_MAX_ANNOUNCED_TIMEOUT_MS);
        c->completion_timeout_ms = BRIDGE_MAX_ANNOUNCED_TIMEOUT_MS;
    }
    d->sim = c;
    tlpb_dma_context_forget(&d->sim_dma_contexts); /* a new simulator's DMA is its own */
    d->time.last_sim_frame_ns = tlpb_now_ns();
    activate(d, BACKEND_EXTERNAL, "simulator attached");
    char detail[160];
    snprintf(detail, sizeof(detail), "simulator %s attached", c->peer_name);
    announce_backend(d, TLPB__EVENT_KIND__EVENT_SIMULATOR_ATTACHED, detail);
    conn_flush(c);
    return 0;
}

void device_sim_detached(struct device *d, const char *why)
{
    d->sim = NULL;
    guestmem_sim_detached(d);
    tlpb_dma_context_forget(&d->sim_dma_contexts);
    if (d->backend != BACKEND_EXTERNAL)
        return;
    char detail[200];
    snprintf(detail, sizeof(detail), "simulator detached: %s", why);
    enum backend_kind next = (d->cfg->backend == BACKEND_HLSIM && d->hlsim) ? BACKEND_HLSIM
                                                                            : BACKEND_FALLBACK;
    activate(d, next, detail);
    announce_backend(d, TLPB__EVENT_KIND__EVENT_SIMULATOR_DETACHED, detail);
}

void device_reset_from_host(struct device *d, Tlpb__ResetKind kind, uint64_t sim_time_ps)
{
    if (sim_time_ps > d->time.host_time_ps)
        d->time.host_time_ps = sim_time_ps;
    bridge_log(TLPB_LOG_INFO, "device %s: %s reset from host", d->cfg->name,
               kind == TLPB__RESET_KIND__RESET_FUNCTION_LEVEL ? "function-level" : "hot");
    uint16_t bdf = d->shadow.bus_device_function;
    tlpb_check_reset(&d->check, kind == TLPB__RESET_KIND__RESET_FUNCTION_LEVEL
                                    ? TLPB_CHECK_RESET_FLR : TLPB_CHECK_RESET_HOT);
    tlpb_cfgspace_reset(&d->shadow);
    d->shadow.bus_device_function = bdf;
    /* A reset device no longer waits for its DMA reads. */
    abandon_dma_reads(d);
    switch (d->backend) {
    case BACKEND_HLSIM:
        hlsim_backend_reset(d, kind == TLPB__RESET_KIND__RESET_FUNCTION_LEVEL
                                   ? HLSIM_RESET_FUNCTION_LEVEL : HLSIM_RESET_HOT, sim_time_ps);
        break;
    case BACKEND_EXTERNAL: {
        Tlpb__Reset r = TLPB__RESET__INIT;
        r.kind = kind;
        r.sim_time_ps = sim_time_ps;
        Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
        env.body_case = TLPB__ENVELOPE__BODY_RESET;
        env.reset = &r;
        conn_send_envelope(d->sim, &env);
        break;
    }
    case BACKEND_FALLBACK:
        break;
    }
}

int device_switch_backend(struct device *d, enum backend_kind kind, char *err, size_t err_size)
{
    if (kind == d->backend)
        return 0;
    if (kind == BACKEND_EXTERNAL && !d->sim) {
        snprintf(err, err_size, "no simulator attached to %s", d->cfg->name);
        return -1;
    }
    if (kind == BACKEND_HLSIM && !d->hlsim) {
        if (!d->cfg->model_path[0]) {
            snprintf(err, err_size, "device %s has no model configured", d->cfg->name);
            return -1;
        }
        if (hlsim_backend_load(d, d->cfg->model_path, err, err_size) != 0)
            return -1;
    }
    char detail[160];
    const char *from = backend_name(d->backend);
    unsigned abandoned = activate(d, kind, "the backend was switched");
    /* What the host must know: the new backend starts from reset, and a
     * transfer the old one was in the middle of did not finish. */
    if (abandoned)
        snprintf(detail, sizeof(detail),
                 "switched from %s; the device starts from reset; %u DMA read%s in progress"
                 " abandoned", from, abandoned, abandoned == 1 ? "" : "s");
    else
        snprintf(detail, sizeof(detail), "switched from %s; the device starts from reset", from);
    announce_backend(d, TLPB__EVENT_KIND__EVENT_BACKEND_CHANGED, detail);
    return 0;
}

int device_reload_model(struct device *d, const char *path, char *err, size_t err_size)
{
    /* A model runs code in the bridge as soon as it is opened: one named by
     * a peer loads only from where the operator allows, checked before
     * anything is opened. */
    char resolved[sizeof(d->cfg->model_path)];
    if (path && *path) {
        if (bridge_model_allowed(d->bridge->cfg, path, resolved, sizeof(resolved), err,
                                 err_size) != 0) {
            bridge_log(TLPB_LOG_WARN, "device %s: reload refused: %s", d->cfg->name, err);
            return -1;
        }
        path = resolved;
    }
    const char *model = path && *path ? path : d->cfg->model_path;
    if (!*model) {
        snprintf(err, err_size, "device %s has no model configured", d->cfg->name);
        return -1;
    }
    bool was_active = d->backend == BACKEND_HLSIM;
    if (was_active)
        activate(d, BACKEND_FALLBACK, "the model is being reloaded");
    hlsim_backend_unload(d);
    d->time.hlsim_coupled = false; /* a model loaded next starts free-running */
    if (hlsim_backend_load(d, model, err, err_size) != 0) {
        bridge_log(TLPB_LOG_ERROR, "%s", err);
        /* Bring back the model that was running, when it was another file
         * (a rebuilt file at the same path has just failed to load). */
        char again[512];
        if (model != d->cfg->model_path && d->cfg->model_path[0] &&
            hlsim_backend_load(d, d->cfg->model_path, again, sizeof(again)) == 0) {
            bridge_log(TLPB_LOG_WARN, "device %s: reload failed; kept %s", d->cfg->name,
                       d->cfg->model_path);
            if (was_active)
                activate(d, BACKEND_HLSIM, "model reload failed, previous model kept");
            announce_backend(d, TLPB__EVENT_KIND__EVENT_BACKEND_CHANGED,
                             "model reload failed, previous model kept");
        } else {
            bridge_log(TLPB_LOG_WARN, "device %s: reload failed; the fallback serves it", d->cfg->name);
            announce_backend(d, TLPB__EVENT_KIND__EVENT_BACKEND_CHANGED, "model reload failed");
        }
        return -1;
    }
    if (model != d->cfg->model_path)
        snprintf(d->cfg->model_path, sizeof(d->cfg->model_path), "%s", model);
    if (was_active) {
        activate(d, BACKEND_HLSIM, "model reloaded");
        announce_backend(d, TLPB__EVENT_KIND__EVENT_BACKEND_CHANGED, "model reloaded");
    }
    return 0;
}

int device_init(struct device *d, struct bridge *b, struct device_config *cfg, char *err,
                size_t err_size)
{
    memset(d, 0, sizeof(*d));
    d->bridge = b;
    d->cfg = cfg;
    uv_timer_init(b->loop, &d->timeout_timer);
    d->timeout_timer.data = d;
    if (cfg->has_description)
        d->desc = cfg->description;
    if (cfg->model_path[0]) {
        if (hlsim_backend_load(d, cfg->model_path, err, err_size) != 0)
            return -1;
        if (!cfg->has_description)
            d->desc = *hlsim_device_description(d->hlsim);
    } else if (!cfg->has_description) {
        snprintf(err, err_size, "device %s: no description and no model to take it from",
                 cfg->name);
        return -1;
    }
    const char *reason = NULL;
    if (tlpb_devdesc_validate(&d->desc, &reason) != 0) {
        snprintf(err, err_size, "device %s: bad description: %s", cfg->name, reason);
        return -1;
    }
    tlpb_cfgspace_init(&d->shadow, &d->desc);
    d->shadow.bus_device_function = 0x0100;
    d->backend = BACKEND_FALLBACK;
    struct tlpb_check_config check_cfg = {.cfgspace = &d->shadow, .policy = cfg->check_policy};
    tlpb_check_init(&d->check, &check_cfg);
    if (cfg->backend == BACKEND_HLSIM)
        activate(d, BACKEND_HLSIM, "configured");
    bridge_log(TLPB_LOG_INFO, "device %s: %04x:%04x, backend %s%s", cfg->name, d->desc.vendor_id,
               d->desc.device_id, backend_name(d->backend),
               cfg->backend == BACKEND_EXTERNAL ? " until a simulator attaches" : "");
    return 0;
}

void device_fini(struct device *d)
{
    if (!d->bridge)
        return;
    hlsim_backend_unload(d);
    hlsim_uv_defer_close(&d->deferred);
    guestmem_drop(d, "bridge stopping");
    tlpb_dma_scratch_free(&d->dma_scratch);
    if (!uv_is_closing((uv_handle_t *)&d->timeout_timer))
        uv_close((uv_handle_t *)&d->timeout_timer, NULL);
}
