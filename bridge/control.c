/* The control interface: tlpbctl (or any ROLE_CONTROL peer) asks for status
 * and counters, switches a device's backend, reloads a model, and turns the
 * trace on and off. Replies to status are JSON. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

struct text {
    char *buf;
    size_t len, cap;
};

static void appendf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *grown = realloc(t->buf, cap);
        if (!grown)
            return;
        t->buf = grown;
        t->cap = cap;
    }
}

/* Names are restricted to [A-Za-z0-9_.-] at load time; peer names are free
 * text, so they are escaped. */
static void append_json_string(struct text *t, const char *s)
{
    appendf(t, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            appendf(t, "\\%c", ch);
        else if (ch < 0x20)
            appendf(t, "\\u%04x", ch);
        else
            appendf(t, "%c", ch);
    }
    appendf(t, "\"");
}

/* What a device's coupled time looks like now (docs/bridge.md, "Coupled
 * time"); numbers, so a benchmark can read them. */
struct time_view {
    bool coupled;                  /* host coupled and the backend has a clock */
    const char *waiting;           /* "guest": it waits for the device; "device" */
    double host_time_ns, device_time_ns, quantum_ns;
    double syncs_per_wall_s, syncs_per_sim_ms, p50_us, p99_us, cycles_per_wall_s;
    uint64_t clock_period_ps;
};

static void time_view(const struct device *d, struct time_view *v)
{
    const struct device_time *t = &d->time;
    char mode[96];
    device_time_mode(d, mode, sizeof(mode));
    v->coupled = t->coupled && strcmp(mode, "coupled") == 0;
    v->waiting = t->grant_pending || d->pending_active ? "guest" : "device";
    v->host_time_ns = (double)t->host_time_ps / 1e3;
    v->device_time_ns = (double)t->device_time_ps / 1e3;
    v->quantum_ns = d->host ? (double)d->host->quantum_ps / 1e3 : 0;
    double wall_s = t->coupled ? (double)(tlpb_now_ns() - t->coupled_since_ns) / 1e9 : 0;
    double sim_ms = t->coupled && t->host_time_ps > t->coupled_since_ps
                        ? (double)(t->host_time_ps - t->coupled_since_ps) / 1e9
                        : 0;
    v->syncs_per_wall_s = wall_s > 0 ? (double)t->syncs / wall_s : 0;
    v->syncs_per_sim_ms = sim_ms > 0 ? (double)t->syncs / sim_ms : 0;
    v->p50_us = device_time_sync_percentile_us(d, 0.50);
    v->p99_us = device_time_sync_percentile_us(d, 0.99);
    v->clock_period_ps =
        d->backend == BACKEND_EXTERNAL && d->sim ? d->sim->clock_period_ps : 0;
    v->cycles_per_wall_s = wall_s > 0 && t->clocked_cycles > t->cycles_at_coupling
                               ? (double)(t->clocked_cycles - t->cycles_at_coupling) / wall_s
                               : 0;
}

static void time_json(const struct device *d, struct text *t)
{
    struct time_view v;
    time_view(d, &v);
    const struct device_time *dt = &d->time;
    appendf(t,
            ", \"time\": {\"mode\": \"%s\", \"host_time_ns\": %.3f, \"device_time_ns\": %.3f,"
            " \"quantum_ns\": %.3f, \"device_idle\": %s, \"waiting\": \"%s\", \"syncs\": %llu,"
            " \"syncs_per_wall_s\": %.3f, \"syncs_per_sim_ms\": %.3f, \"sync_wall_us_p50\": %.3f,"
            " \"sync_wall_us_p99\": %.3f, \"clock_period_ps\": %llu, \"clocked_cycles\": %llu,"
            " \"cycles_per_wall_s\": %.3f}",
            v.coupled ? "coupled" : "free-running", v.host_time_ns, v.device_time_ns, v.quantum_ns,
            dt->idle ? "true" : "false", v.waiting, (unsigned long long)dt->syncs,
            v.syncs_per_wall_s, v.syncs_per_sim_ms, v.p50_us, v.p99_us,
            (unsigned long long)v.clock_period_ps, (unsigned long long)dt->clocked_cycles,
            v.cycles_per_wall_s);
}

/* One readable line per device (tlpbctl time). */
static void time_text(struct bridge *b, struct text *t)
{
    for (unsigned i = 0; i < b->device_count; i++) {
        const struct device *d = &b->devices[i];
        struct time_view v;
        time_view(d, &v);
        char mode[96];
        if (!d->time.coupled)
            snprintf(mode, sizeof(mode), "free-running (no coupled host)");
        else
            device_time_mode(d, mode, sizeof(mode));
        appendf(t, "%s%s: %s, host %.3f us, device %.3f us%s, quantum %.3f us, waiting: %s,"
                   " %llu syncs (%.1f/s wall, %.1f/ms simulated), sync p50 %.1f us p99 %.1f us",
                i ? "\n" : "", d->cfg->name, mode, v.host_time_ns / 1e3, v.device_time_ns / 1e3,
                d->time.idle ? " (idle)" : "", v.quantum_ns / 1e3, v.waiting,
                (unsigned long long)d->time.syncs, v.syncs_per_wall_s, v.syncs_per_sim_ms,
                v.p50_us, v.p99_us);
        if (v.clock_period_ps)
            appendf(t, ", clock %llu ps, %.0f cycles/s", (unsigned long long)v.clock_period_ps,
                    v.cycles_per_wall_s);
    }
}

/* The host's shared-memory ring: "off" while it has none. */
static void ring_json(const struct device *d, struct text *t)
{
    struct tlpb_ring_stats rs = {0};
    const struct conn *h = d->host;
    bool ring = h && h->ring;
    if (ring)
        tlpb_ring_get_stats(h->ring, &rs);
    appendf(t, ", \"ring\": \"%s\", \"ring_records_in\": %llu, \"ring_records_out\": %llu,"
               " \"ring_wakeups_sent\": %llu, \"ring_sleeps\": %llu",
            ring ? tlpb_ring_policy_name(d->bridge->cfg->ring_policy) : "off",
            (unsigned long long)rs.records_in, (unsigned long long)rs.records_out,
            (unsigned long long)rs.wakeups_sent, (unsigned long long)rs.sleeps);
}

/* The PCIe checker: its policy, all violations, and each rule broken. */
static void checker_json(const struct device *d, struct text *t)
{
    appendf(t, ", \"checker\": {\"policy\": \"%s\", \"violations\": %llu, \"rules\": {",
            tlpb_check_policy_name(d->cfg->check_policy), (unsigned long long)d->check.total);
    unsigned n = 0;
    for (unsigned r = 0; r < TLPB_CHECK_RULE_COUNT; r++)
        if (d->check.counts[r])
            appendf(t, "%s\"%s\": %llu", n++ ? ", " : "", tlpb_check_rules[r].name,
                    (unsigned long long)d->check.counts[r]);
    appendf(t, "}}");
}

static void status_json(struct bridge *b, struct text *t)
{
    double uptime = (double)(tlpb_now_ns() - b->started_ns) / 1e9;
    appendf(t, "{\"uptime_s\": %.3f, \"rejected_messages\": %llu, \"trace\": ", uptime,
            (unsigned long long)b->rejected_messages);
    append_json_string(t, b->trace ? b->trace_path : "");
    appendf(t, ", \"devices\": [");
    for (unsigned i = 0; i < b->device_count; i++) {
        struct device *d = &b->devices[i];
        const struct device_stats *s = &d->stats;
        appendf(t, "%s{\"name\": \"%s\", \"backend\": \"%s\", \"configured_backend\": \"%s\","
                   " \"vendor_id\": %u, \"device_id\": %u, \"dma\": \"%s\","
                   " \"host_connected\": %s, \"simulator\": ",
                i ? ", " : "", d->cfg->name, backend_name(d->backend),
                backend_name(d->cfg->backend), d->desc.vendor_id, d->desc.device_id,
                d->cfg->fast_dma ? "fast" : "strict", d->host ? "true" : "false");
        if (d->sim)
            append_json_string(t, d->sim->peer_name);
        else
            appendf(t, "null");
        appendf(t, ", \"model\": ");
        append_json_string(t, d->hlsim ? d->cfg->model_path : "");
        time_json(d, t);
        ring_json(d, t);
        checker_json(d, t);
        appendf(t, ", \"guest_memory_regions\": %u, \"guest_memory_bytes\": %llu,"
                   " \"simulator_guest_memory\": %s",
                d->guest_memory.map.count, (unsigned long long)d->guest_memory.map.bytes,
                d->guest_memory.sim_shared ? "true" : "false");
        appendf(t, ", \"last_dma_fault\": ");
        if (d->last_dma_fault.seen) {
            appendf(t, "{\"address\": %llu, \"bytes\": %u, \"direction\": \"%s\", \"context\": ",
                    (unsigned long long)d->last_dma_fault.address, d->last_dma_fault.bytes,
                    d->last_dma_fault.write ? "write" : "read");
            append_json_string(t, d->last_dma_fault.context);
            appendf(t, "}");
        } else {
            appendf(t, "null");
        }
        appendf(t,
                ", \"timeout_ms\": %u, \"outstanding\": %u, \"counters\": {\"host_requests\": %llu,"
                " \"host_posted_writes\": %llu, \"device_requests\": %llu,"
                " \"device_posted_writes\": %llu, \"dma_bytes\": %llu, \"dma_faults\": %llu,"
                " \"completions_to_host\": %llu, \"completions_to_device\": %llu,"
                " \"interrupts\": %llu, \"fallback_completions\": %llu,"
                " \"fallback_absorbed_writes\": %llu, \"timeouts\": %llu,"
                " \"late_completions\": %llu, \"rejected_tlps\": %llu,"
                " \"dropped_device_writes\": %llu, \"inactive_backend_drops\": %llu,"
                " \"dma_shm_requests\": %llu, \"dma_shm_bytes\": %llu}}",
                device_timeout_ms(d), d->pending_active, (unsigned long long)s->host_requests,
                (unsigned long long)s->host_posted_writes, (unsigned long long)s->device_requests,
                (unsigned long long)s->device_posted_writes, (unsigned long long)s->dma_bytes,
                (unsigned long long)s->dma_faults,
                (unsigned long long)s->completions_to_host,
                (unsigned long long)s->completions_to_device, (unsigned long long)s->interrupts,
                (unsigned long long)s->fallback_completions,
                (unsigned long long)s->fallback_absorbed_writes, (unsigned long long)s->timeouts,
                (unsigned long long)s->late_completions, (unsigned long long)s->rejected_tlps,
                (unsigned long long)s->dropped_device_writes,
                (unsigned long long)s->inactive_backend_drops,
                (unsigned long long)s->dma_shm_requests, (unsigned long long)s->dma_shm_bytes);
    }
    /* Each connection's outbound queue and whether the bridge reads from
     * it (backpressure, docs/bridge.md "Limits"). */
    appendf(t, "], \"connections\": [");
    unsigned n = 0;
    for (const struct conn *c = b->conns; c; c = c->next) {
        if (c->closing)
            continue;
        appendf(t, "%s{\"name\": ", n++ ? ", " : "");
        append_json_string(t, c->label);
        appendf(t, ", \"role\": \"%s\", \"queued_bytes\": %zu, \"reading_paused\": %s,"
                   " \"frames_in\": %llu, \"frames_out\": %llu}",
                tlpb_role_name(c->role),
                tlpb_obuf_pending(&c->ob) + tlpb_obuf_pending(&c->inflight),
                c->read_paused ? "true" : "false", (unsigned long long)c->frames_in,
                (unsigned long long)c->frames_out);
    }
    appendf(t, "]}");
}

static void reply(struct conn *c, bool ok, const char *text)
{
    Tlpb__ControlReply r = TLPB__CONTROL_REPLY__INIT;
    r.ok = ok;
    r.text = (char *)(text ? text : "");
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_CONTROL_REPLY;
    env.control_reply = &r;
    conn_send_envelope(c, &env);
}

static struct device *arg_device(struct conn *c, const Tlpb__ControlRequest *req, size_t i)
{
    if (req->n_args <= i) {
        reply(c, false, "missing device name");
        return NULL;
    }
    struct device *d = bridge_find_device(c->bridge, req->args[i]);
    if (!d) {
        char msg[160];
        snprintf(msg, sizeof(msg), "unknown device '%.100s'", req->args[i]);
        reply(c, false, msg);
    }
    return d;
}

void control_handle(struct conn *c, const Tlpb__ControlRequest *req)
{
    struct bridge *b = c->bridge;
    char err[512] = "";
    const char *cmd = req->command;
    char cmd_text[TLPB_LOG_PEER_TEXT_MAX + 8];
    bridge_log(TLPB_LOG_INFO, "%s: control command '%s'", c->label, BRIDGE_PEER_TEXT(cmd_text, cmd));
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "stats") == 0) {
        struct text t = {0};
        status_json(b, &t);
        reply(c, true, t.buf);
        free(t.buf);
    } else if (strcmp(cmd, "time") == 0) {
        struct text t = {0};
        time_text(b, &t);
        reply(c, true, t.buf ? t.buf : "");
        free(t.buf);
    } else if (strcmp(cmd, "switch") == 0) {
        struct device *d = arg_device(c, req, 0);
        if (!d)
            return;
        enum backend_kind kind;
        if (req->n_args < 2 || backend_from_name(req->args[1], &kind) != 0) {
            reply(c, false, "usage: switch DEVICE fallback|hlsim|external");
            return;
        }
        if (device_switch_backend(d, kind, err, sizeof(err)) != 0)
            reply(c, false, err);
        else
            reply(c, true, backend_name(d->backend));
    } else if (strcmp(cmd, "reload") == 0) {
        struct device *d = arg_device(c, req, 0);
        if (!d)
            return;
        if (device_reload_model(d, req->n_args > 1 ? req->args[1] : NULL, err, sizeof(err)) != 0)
            reply(c, false, err);
        else
            reply(c, true, d->cfg->model_path);
    } else if (strcmp(cmd, "trace") == 0) {
        if (req->n_args >= 1 && strcmp(req->args[0], "off") == 0) {
            trace_close(b);
            reply(c, true, "trace off");
        } else if (req->n_args >= 2 && strcmp(req->args[0], "on") == 0) {
            if (trace_open(b, req->args[1], err, sizeof(err)) != 0)
                reply(c, false, err);
            else
                reply(c, true, b->trace_path);
        } else {
            reply(c, false, "usage: trace on FILE | trace off");
        }
    } else {
        reply(c, false, "unknown command (status, stats, time, switch, reload, trace)");
    }
}
