/* rtl_adapter: one clock edge. The handshakes the design completed in the
 * cycle that ends now, then the socket on a cadence (never a system call
 * per cycle), then what the adapter drives in the next cycle. When the
 * design says it is idle and nothing has moved for a few cycles, the
 * adapter sleeps on the socket instead of burning a core. With a cap on
 * cycles per second (max_cycles_per_s), busy cycles are paced by short
 * sleeps here, between which the socket is served on its usual cadence;
 * output waits until the cycles that made it are paid for.
 *
 * Coupled time (docs/protocol.md "Simulated time", between COUPLED and
 * FREE from the bridge): the device's clock is time_cycle (every edge and
 * every idle jump) times the clock period. The design is clocked only while
 * the clock is below the allowance (the last grant, or further while a host
 * non-posted request waits for its completion); there the adapter answers
 * the grant with REACHED and waits on the socket. A host message takes
 * effect at the cycle of its stamp; an idle design jumps there, or to the
 * grant, without being clocked. While a DMA read of the design waits for
 * its completions the clock holds at the cycle they are due, so what the
 * design sees never depends on wall time.
 *
 * Handshake rules (docs/rtl-interface.md): a beat moves on an edge where
 * tvalid and tready are both high; an MSI-X request is taken on an edge
 * where irq_msix_req is high and irq_msix_ack low, and irq_msix_ack is high
 * in the cycle after each taken request. */
#include <poll.h>
#include <string.h>
#include <time.h>

#include "internal.h"

void tlpb_rtl_initial_outputs(const struct tlpb_rtl *a, struct tlpb_rtl_to_design *out)
{
    memset(out, 0, sizeof(*out));
    out->reset = true;
    out->cfg = a->cfg_out;
}

/* Tests: drop tx_tready for random stretches. */
static bool tx_stalled(struct tlpb_rtl *a)
{
    if (a->opts.tx_stall_percent == 0)
        return false;
    if (a->stall_left > 0) {
        a->stall_left--;
        return true;
    }
    uint32_t x = a->stall_rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    a->stall_rng = x;
    if (x % 100u < a->opts.tx_stall_percent) {
        a->stall_left = (x >> 8) % 16u; /* this cycle and up to 15 more */
        return true;
    }
    return false;
}

/* ---- pacing to max_cycles_per_s (throttle.h) ---- */

static void pacing_nanosleep(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    /* Interrupted by a stop request: the loop ends at the next edge. */
    clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}

static void pacing_start(struct tlpb_rtl *a)
{
    if (!a->pacing_now_ns)
        a->pacing_now_ns = tlpb_now_ns;
    if (!a->pacing_sleep)
        a->pacing_sleep = pacing_nanosleep;
    rtl_throttle_init(&a->throttle, a->opts.max_cycles_per_s, a->pacing_now_ns());
    a->pacing_started = true;
}

/* Sleep what the cycles counted since the mark owe at the cap. */
static void pace_to_cap(struct tlpb_rtl *a)
{
    uint64_t now = a->pacing_now_ns();
    uint64_t ns = rtl_throttle_sleep_ns(&a->throttle, now);
    if (!ns)
        return;
    a->pacing_sleep(ns);
    a->stats.pacing_sleeps++;
    a->stats.pacing_sleep_ns += a->pacing_now_ns() - now;
}

/* Write what is queued once the cycles that made it are paid for. */
static void flush_paid(struct tlpb_rtl *a)
{
    if (a->pacing_started && a->throttle.cycles_since_mark)
        pace_to_cap(a);
    rtl_flush_output(a);
}

static void service_socket(struct tlpb_rtl *a)
{
    uint64_t now = a->stats.cycles;
    uint64_t read_every = a->rx_head ? RTL_READ_BUSY_CYCLES : RTL_READ_EMPTY_CYCLES;
    /* Nothing from the host before the power-on reset is over: a COUPLED
     * then finds the design in the same state however early it came. */
    if (now - a->last_read >= read_every && !a->power_on_reset) {
        rtl_read_input(a);
        /* keep-alive during a long grant (rate-limited); not at its end,
         * where REACHED follows */
        if (a->coupled &&
            (a->time_cycle < a->allowance_cycle || a->host_np_outstanding > 0))
            tlpb_sim_send_progress(a->sim, a->time_cycle * a->period_ps,
                                   a->stats.cycles - a->coupled_cycles_base);
    }
    size_t pending = tlpb_sim_output_pending(a->sim);
    if (pending > 0 && (tlpb_sim_output_urgent(a->sim) || now - a->last_flush >= RTL_FLUSH_CYCLES ||
                        pending >= RTL_FLUSH_BYTES)) {
        /* Under a cap nothing leaves before its cycles are paid for: a
         * completion reaches the host when a design that slow would send it. */
        if (a->pacing_started && a->throttle.cycles_since_mark)
            pace_to_cap(a);
        rtl_flush_output(a);
    }
}

/* Nothing to do until new input: the design says so, and nothing is on its
 * way to it or from it (coupled: an entry not due yet does not count). */
static bool design_quiet(const struct tlpb_rtl *a, const struct tlpb_rtl_from_design *in)
{
    return in->idle && !in->irq_msix_req && !in->tx_tvalid &&
           a->stats.cycles - a->last_activity >= RTL_QUIET_CYCLES &&
           (!a->rx_head || rtl_rx_head_future_due(a)) && !a->held && a->reset_left == 0 &&
           a->tx_count == 0 && !a->stop_requested && tlpb_sim_connected(a->sim);
}

static bool may_sleep(const struct tlpb_rtl *a, const struct tlpb_rtl_from_design *in)
{
    return !a->rx_head && design_quiet(a, in);
}

/* ---- coupled time ---- */

static uint64_t cycles_of_ps(const struct tlpb_rtl *a, uint64_t t_ps)
{
    return t_ps / a->period_ps + (t_ps % a->period_ps != 0);
}

uint64_t rtl_due_cycle(const struct tlpb_rtl *a, uint64_t t_ps)
{
    if (!a->coupled || t_ps == 0)
        return a->time_cycle;
    uint64_t c = cycles_of_ps(a, t_ps);
    return c > a->time_cycle ? c : a->time_cycle;
}

static void set_clock(struct tlpb_rtl *a)
{
    tlpb_sim_set_time_ps(a->sim, a->time_cycle * a->period_ps);
}

/* Idle time: counted in the clock, not clocked. */
static void jump_to(struct tlpb_rtl *a, uint64_t cycle)
{
    if (cycle <= a->time_cycle)
        return;
    a->stats.skipped_cycles += cycle - a->time_cycle;
    a->time_cycle = cycle;
    set_clock(a);
}

/* Free-running the clock ran ahead of the host's by however long the
 * simulator ran before: at COUPLED it goes back to the host's time (nothing
 * stamped was sent), so the same guest sees the same device times. What is
 * queued is due at once, DMA reads keep their latency; waveform time keeps
 * going forward (by the time dropped, logged). */
static void join_back(struct tlpb_rtl *a, uint64_t join)
{
    uint64_t back = a->time_cycle - join;
    tlpb_rtl_log(a, TLPB_RTL_LOG_INFO,
                 "the clock joins the host's: %llu free-running cycles do not count (waveform"
                 " time stays %llu ps ahead of device time)",
                 (unsigned long long)back,
                 (unsigned long long)((a->wave_offset_cycles + back) * a->period_ps));
    a->wave_offset_cycles += back;
    for (struct rx_entry *e = a->rx_head; e; e = e->next)
        e->due_cycle = e->due_cycle > join ? join : e->due_cycle;
    for (struct rx_entry *e = a->cpl_head; e; e = e->next)
        e->due_cycle = e->due_cycle > join ? join : e->due_cycle;
    for (unsigned t = 0; t < TLPB_TAGS_MAX; t++)
        a->dma_due[t] = a->dma_due[t] > back ? a->dma_due[t] - back : 0;
    a->time_cycle = join;
    a->edge_cycle = join;
}

void rtl_time_sync(struct tlpb_rtl *a, const struct tlpb_sim_time_sync *ts)
{
    switch (ts->kind) {
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED: {
        uint64_t join = cycles_of_ps(a, ts->sim_time_ps);
        if (!a->coupled && join < a->time_cycle)
            join_back(a, join);
        if (!a->coupled) {
            /* Counted from here, and the design must be seen quiet afresh:
             * what it did free-running differs from run to run. */
            a->coupled_cycles_base = a->stats.cycles;
            a->last_activity = a->stats.cycles;
        }
        a->coupled = true;
        jump_to(a, join); /* the clock joins the host's */
        set_clock(a);
        a->allowance_cycle = a->time_cycle; /* nothing granted yet */
        a->grant_pending = false;
        /* Requests of an earlier host (the bridge has completed them) do
         * not extend the new one's grants. */
        a->host_np_outstanding = 0;
        memset(a->host_mrd_tag, 0, sizeof(a->host_mrd_tag));
        tlpb_rtl_log(a, TLPB_RTL_LOG_INFO, "coupled time from cycle %llu (%llu ps per cycle)",
                     (unsigned long long)a->time_cycle, (unsigned long long)a->period_ps);
        break;
    }
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_FREE:
        a->coupled = false;
        a->grant_pending = false;
        tlpb_rtl_log(a, TLPB_RTL_LOG_INFO, "free-running from cycle %llu",
                     (unsigned long long)a->time_cycle);
        break;
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT: {
        uint64_t until = cycles_of_ps(a, ts->grant_until_ps);
        if (until > a->allowance_cycle)
            a->allowance_cycle = until;
        if (a->grant_pending)
            tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "GRANT %llu before GRANT %llu was answered",
                         (unsigned long long)ts->sync_id, (unsigned long long)a->grant_sync_id);
        a->grant_pending = true;
        a->grant_sync_id = ts->sync_id;
        break;
    }
    default:
        break;
    }
}

/* The earliest cycle a DMA read still waiting for completions is due at. */
static uint64_t dma_hold_cycle(const struct tlpb_rtl *a)
{
    uint64_t hold = UINT64_MAX;
    for (unsigned t = 0; t < a->tags.tag_count; t++)
        if (a->dma_waiting[t] && a->dma_due[t] < hold)
            hold = a->dma_due[t];
    return hold;
}

static bool clock_may_advance(const struct tlpb_rtl *a)
{
    if (a->dma_waiting_count && a->time_cycle >= dma_hold_cycle(a))
        return false;
    return a->time_cycle < a->allowance_cycle || a->host_np_outstanding > 0;
}

/* Rule 5: at the allowance, with no DMA read waiting, answer the grant
 * (after everything stamped up to now). */
static void answer_grant(struct tlpb_rtl *a, bool idle)
{
    if (!a->grant_pending || a->dma_waiting_count || a->time_cycle < a->allowance_cycle)
        return;
    a->grant_pending = false;
    a->stats.reached++;
    if (idle)
        a->stats.reached_idle++;
    tlpb_sim_send_reached(a->sim, a->grant_sync_id, a->time_cycle * a->period_ps, idle, 0,
                          a->stats.cycles - a->coupled_cycles_base);
    flush_paid(a);
}

/* An idle design's clock jumps, never clocked: to the next host message
 * not due yet (rule 2: beyond the grant too, unless a grant waits that
 * ends first); to the cycle a DMA completion is due at (within what may be
 * simulated); else to the grant's end, answered idle when nothing is
 * queued. */
static void idle_advance(struct tlpb_rtl *a)
{
    uint64_t msg_due = rtl_rx_head_future_due(a);
    uint64_t dma_due = rtl_cpl_head_future_due(a);
    if (a->dma_waiting_count) {
        uint64_t hold = dma_hold_cycle(a);
        if (!dma_due || hold < dma_due)
            dma_due = hold;
    }
    bool implicit = a->host_np_outstanding > 0;
    uint64_t next = UINT64_MAX;
    if (msg_due && (!a->grant_pending || msg_due <= a->allowance_cycle || implicit))
        next = msg_due;
    if (dma_due) {
        uint64_t limit = implicit ? dma_due : a->allowance_cycle;
        uint64_t to = dma_due < limit ? dma_due : limit;
        if (to < next)
            next = to;
    }
    if (next != UINT64_MAX && next > a->time_cycle) {
        jump_to(a, next);
        return;
    }
    if (!a->grant_pending || implicit || a->dma_waiting_count)
        return;
    jump_to(a, a->allowance_cycle);
    answer_grant(a, msg_due == 0 && !a->cpl_head);
}

/* True when the next edge must wait (and the grant is answered if due). */
static bool coupled_must_wait(struct tlpb_rtl *a, const struct tlpb_rtl_from_design *in)
{
    if (!a->coupled || a->stop_requested || !tlpb_sim_connected(a->sim))
        return false;
    if (design_quiet(a, in))
        idle_advance(a);
    answer_grant(a, false);
    return !clock_may_advance(a);
}

/* Wait for the host (a grant, or a message) in slices, serving the socket
 * and nothing else; input is presented as it becomes due. */
static void coupled_gate(struct tlpb_rtl *a, const struct tlpb_rtl_from_design *in)
{
    bool paced = a->opts.max_cycles_per_s != 0;
    while (tlpb_sim_output_pending(a->sim) >= RTL_OUTPUT_LIMIT_BYTES / 2 && !a->stop_requested &&
           tlpb_sim_connected(a->sim)) {
        flush_paid(a);
        tlpb_sim_drain(a->sim, RTL_COUPLED_WAIT_MS); /* the bridge reads: the clock waits */
        if (paced)
            rtl_throttle_mark(&a->throttle, a->pacing_now_ns());
    }
    for (;;) {
        rtl_rx_present(a);
        uint64_t before = a->time_cycle;
        if (!coupled_must_wait(a, in)) {
            if (a->time_cycle != before)
                rtl_rx_present(a); /* what a jump made due */
            return;
        }
        flush_paid(a);
        if (a->coupled_wait_hook)
            a->coupled_wait_hook(a, a->coupled_wait_arg);
        if (a->rx_bytes >= 2u * RTL_INPUT_LIMIT_BYTES) {
            /* A host that queues this much beyond its grants: nothing more
             * is taken (bounded memory); wait without spinning. */
            if (!a->input_full_logged)
                tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "%zu bytes of input wait for their time and"
                             " no grant comes: input paused", a->rx_bytes);
            a->input_full_logged = true;
            poll(NULL, 0, RTL_COUPLED_WAIT_MS);
        } else {
            a->waiting_for_host = true;
            rtl_wait_socket(a, RTL_COUPLED_WAIT_MS);
            a->waiting_for_host = false;
        }
        if (paced)
            rtl_throttle_mark(&a->throttle, a->pacing_now_ns()); /* waiting banks no credit */
    }
}

void tlpb_rtl_cycle(struct tlpb_rtl *a, const struct tlpb_rtl_from_design *in,
                    struct tlpb_rtl_to_design *out)
{
    a->stats.cycles++;
    a->time_cycle++;
    a->edge_cycle = a->time_cycle;
    set_clock(a); /* what this edge sends carries its time (coupled) */
    if (in->lanes >= 1 && in->lanes <= TLPB_RTL_MAX_LANES)
        a->out_lanes = in->lanes;
    else if (!a->out_lanes)
        a->out_lanes = 1;

    if (a->reset_left > 0) {
        /* The design is in reset: what it drives does not count. */
        a->reset_left--;
        if (a->reset_left == 0)
            a->power_on_reset = false;
        a->last_activity = a->stats.cycles;
    } else {
        if (a->out.rx_tvalid && in->rx_tready) {
            rtl_rx_beat_taken(a);
            a->last_activity = a->stats.cycles;
        }
        if (in->tx_tvalid && a->out.tx_tready) {
            rtl_tx_beat(a, in);
            a->last_activity = a->stats.cycles;
        }
        bool ack = false;
        if (in->irq_msix_req && !a->out.irq_msix_ack) {
            rtl_msix_request(a, in->irq_msix_vector);
            ack = true;
            a->last_activity = a->stats.cycles;
        }
        a->out.irq_msix_ack = ack;
        if (in->irq_intx != a->intx_design) {
            a->intx_design = in->irq_intx;
            tlpb_cfg_set_interrupt_status(&a->cfg, in->irq_intx);
            rtl_intx_update(a);
            a->last_activity = a->stats.cycles;
        }
        if (in->trigger && !a->trigger_prev)
            a->trigger_pending = true;
        a->trigger_prev = in->trigger;
    }
    if (a->held)
        rtl_tx_retry_held(a);

    bool paced = a->opts.max_cycles_per_s != 0;
    if (paced && !a->pacing_started)
        pacing_start(a);
    if (!a->coupled && may_sleep(a, in)) {
        /* This cycle does not count. The busy cycles before it do, even
         * fewer than a check's worth, and the count restarts after the
         * idle sleep. */
        if (paced && a->throttle.cycles_since_mark)
            pace_to_cap(a);
        rtl_flush_output(a);
        rtl_wait_socket(a, (int)a->opts.idle_wait_ms);
        if (paced)
            rtl_throttle_mark(&a->throttle, a->pacing_now_ns());
    } else {
        service_socket(a);
        /* between short sleeps the socket is served on its cadence above */
        if (paced && rtl_throttle_count_cycle(&a->throttle))
            pace_to_cap(a);
    }

    /* outputs for the next cycle */
    if (a->coupled)
        coupled_gate(a, in);
    else
        rtl_rx_present(a);
    a->out.reset = a->reset_left > 0;
    a->out.link_up = tlpb_sim_connected(a->sim);
    /* Coupled, a full output holds the clock (coupled_gate) rather than
     * the stream: backpressure from the socket would depend on wall time. */
    a->out.tx_tready = a->reset_left == 0 && !a->held &&
                       (a->coupled || tlpb_sim_output_pending(a->sim) < RTL_OUTPUT_LIMIT_BYTES / 2) &&
                       !tx_stalled(a);
    if (a->out.reset)
        a->out.irq_msix_ack = false;
    a->out.cfg = a->cfg_out;
    *out = a->out;
}
