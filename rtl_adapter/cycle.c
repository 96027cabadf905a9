/* rtl_adapter: one clock edge. The handshakes the design completed in the
 * cycle that ends now, then the socket on a cadence (never a system call
 * per cycle), then what the adapter drives in the next cycle. When the
 * design says it is idle and nothing has moved for a few cycles, the
 * adapter sleeps on the socket instead of burning a core. With a cap on
 * cycles per second (max_cycles_per_s), busy cycles are paced by short
 * sleeps here, between which the socket is served on its usual cadence;
 * output waits until the cycles that made it are paid for.
 *
 * Handshake rules (docs/rtl-interface.md): a beat moves on an edge where
 * tvalid and tready are both high; an MSI-X request is taken on an edge
 * where irq_msix_req is high and irq_msix_ack low, and irq_msix_ack is high
 * in the cycle after each taken request. */
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

static void service_socket(struct tlpb_rtl *a)
{
    uint64_t now = a->stats.cycles;
    uint64_t read_every = a->rx_head ? RTL_READ_BUSY_CYCLES : RTL_READ_EMPTY_CYCLES;
    if (now - a->last_read >= read_every)
        rtl_read_input(a);
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

static bool may_sleep(const struct tlpb_rtl *a, const struct tlpb_rtl_from_design *in)
{
    return in->idle && !in->irq_msix_req && !in->tx_tvalid &&
           a->stats.cycles - a->last_activity >= RTL_QUIET_CYCLES && !a->rx_head && !a->held &&
           a->reset_left == 0 && a->tx_count == 0 && !a->stop_requested &&
           tlpb_sim_connected(a->sim);
}

void tlpb_rtl_cycle(struct tlpb_rtl *a, const struct tlpb_rtl_from_design *in,
                    struct tlpb_rtl_to_design *out)
{
    a->stats.cycles++;
    if (in->lanes >= 1 && in->lanes <= TLPB_RTL_MAX_LANES)
        a->out_lanes = in->lanes;
    else if (!a->out_lanes)
        a->out_lanes = 1;

    if (a->reset_left > 0) {
        /* The design is in reset: what it drives does not count. */
        a->reset_left--;
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
    if (may_sleep(a, in)) {
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
    rtl_rx_present(a);
    a->out.reset = a->reset_left > 0;
    a->out.link_up = tlpb_sim_connected(a->sim);
    a->out.tx_tready = a->reset_left == 0 && !a->held &&
                       tlpb_sim_output_pending(a->sim) < RTL_OUTPUT_LIMIT_BYTES / 2 && !tx_stalled(a);
    if (a->out.reset)
        a->out.irq_msix_ack = false;
    a->out.cfg = a->cfg_out;
    *out = a->out;
}
