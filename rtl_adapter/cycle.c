/* rtl_adapter: one clock edge. The handshakes the design completed in the
 * cycle that ends now, then the socket on a cadence (never a system call
 * per cycle), then what the adapter drives in the next cycle. When the
 * design says it is idle and nothing has moved for a few cycles, the
 * adapter sleeps on the socket instead of burning a core. With a cap on
 * cycles per second (max_cycles_per_s), busy cycles are paced by short
 * sleeps here, between which the socket is served on its usual cadence.
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

static void service_socket(struct tlpb_rtl *a)
{
    uint64_t now = a->stats.cycles;
    uint64_t read_every = a->rx_head ? RTL_READ_BUSY_CYCLES : RTL_READ_EMPTY_CYCLES;
    if (now - a->last_read >= read_every)
        rtl_read_input(a);
    size_t pending = tlpb_sim_output_pending(a->sim);
    if (pending > 0 && (tlpb_sim_output_urgent(a->sim) || now - a->last_flush >= RTL_FLUSH_CYCLES ||
                        pending >= RTL_FLUSH_BYTES))
        rtl_flush_output(a);
}

static bool may_sleep(const struct tlpb_rtl *a, const struct tlpb_rtl_from_design *in)
{
    return in->idle && !in->irq_msix_req && !in->tx_tvalid &&
           a->stats.cycles - a->last_activity >= RTL_QUIET_CYCLES && !a->rx_head && !a->held &&
           a->reset_left == 0 && a->tx_count == 0 && !a->stop_requested &&
           tlpb_sim_connected(a->sim);
}

/* Keep clocked cycles within max_cycles_per_s (throttle.h). A cycle that
 * slept idle on the socket does not count, and restarts the count. */
static void pace(struct tlpb_rtl *a, bool slept_idle)
{
    struct rtl_throttle *t = &a->throttle;
    if (!a->pacing_started) {
        rtl_throttle_init(t, a->opts.max_cycles_per_s, tlpb_now_ns());
        a->pacing_started = true;
        return;
    }
    if (slept_idle) {
        rtl_throttle_mark(t, tlpb_now_ns());
        return;
    }
    if (!rtl_throttle_count_cycle(t))
        return;
    uint64_t now = tlpb_now_ns();
    uint64_t sleep_ns = rtl_throttle_sleep_ns(t, now);
    if (!sleep_ns)
        return;
    struct timespec ts = {.tv_sec = (time_t)(sleep_ns / 1000000000u),
                          .tv_nsec = (long)(sleep_ns % 1000000000u)};
    /* Interrupted by a stop request: the loop ends at the next edge. */
    clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
    a->stats.pacing_sleeps++;
    a->stats.pacing_sleep_ns += tlpb_now_ns() - now;
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

    bool slept_idle = may_sleep(a, in);
    if (slept_idle) {
        rtl_flush_output(a);
        rtl_wait_socket(a, (int)a->opts.idle_wait_ms);
    } else {
        service_socket(a);
    }
    if (a->opts.max_cycles_per_s)
        pace(a, slept_idle);

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
