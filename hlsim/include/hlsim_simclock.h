/* The simulated clock of an hlsim device (docs/protocol.md "Simulated
 * time", docs/hlsim.md "Simulated time"), shared by the two environments
 * that run models on libuv (tlpbridged's in-process backend and hlsim-run).
 *
 * It implements the environment's now_ns, timers and defer. Free-running
 * (the default) they are today's: wall time, libuv timers, the deferred
 * queue. Coupled, time moves only by grants: an event queue keyed (time,
 * class, insertion order) holds timers, zero-time work and host messages at
 * their stamps, and the clock runs it up to the allowance (the largest
 * grant, extended while a host non-posted request waits for its completion:
 * the implicit grant), never past a time while one of the device's DMA
 * reads is outstanding, then answers the grant with REACHED. Long runs go
 * in slices from the loop so the loop's other work goes on. */
#ifndef HLSIM_SIMCLOCK_H
#define HLSIM_SIMCLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "hlsim_env.h"
#include "hlsim_uv.h"

typedef struct hlsim_simclock hlsim_simclock;

struct hlsim_simclock_ops {
    /* Answer grant sync_id: the clock is at t_ps; idle and next_event_ps as
     * in TimeSync REACHED (next_event_ps 0: none). */
    void (*reached)(void *env, uint64_t sync_id, uint64_t t_ps, bool idle, uint64_t next_event_ps);
    /* Optional: called at each slice of a long run (a keep-alive). */
    void (*progress)(void *env, uint64_t t_ps);
    /* Optional: wall clock in ns (tests inject one); default tlpb_now_ns. */
    uint64_t (*wall_ns)(void *env);
};

/* Events at the same time run in this order, then in insertion order. */
enum hlsim_simclock_class {
    HLSIM_CLOCK_DEFERRED = 0, /* zero-time work the device queued */
    HLSIM_CLOCK_TIMER = 1,    /* a model or SDK timer */
    HLSIM_CLOCK_HOST = 2,     /* a host message at its stamp */
};

/* loop: the environment's; deferred: its deferred-call queue (free-running
 * zero-time work, and the next slice of a long coupled run). */
hlsim_simclock *hlsim_simclock_create(uv_loop_t *loop, struct hlsim_uv_defer_queue *deferred,
                                      const struct hlsim_simclock_ops *ops, void *env);
/* Drops every queued event without running it. */
void hlsim_simclock_destroy(hlsim_simclock *clock);
/* The device whose state says whether it is idle and holds the clock. */
void hlsim_simclock_set_device(hlsim_simclock *clock, hlsim_device *dev);

/* Pace busy simulated time to at most ns_per_s simulated ns per wall second
 * (0: no cap). Idle jumps are free and pacing restarts after each wait. */
void hlsim_simclock_set_max_rate(hlsim_simclock *clock, uint64_t ns_per_s);

/* ---- modes (TimeSync COUPLED / FREE / GRANT) ------------------------------ */
void hlsim_simclock_couple(hlsim_simclock *clock, uint64_t host_time_ps);
void hlsim_simclock_free_run(hlsim_simclock *clock);
bool hlsim_simclock_coupled(const hlsim_simclock *clock);
void hlsim_simclock_grant(hlsim_simclock *clock, uint64_t sync_id, uint64_t until_ps);
/* The device goes away: a grant still pending is answered, idle, so the
 * host goes on. */
void hlsim_simclock_abandon(hlsim_simclock *clock);

/* The clock on the wire (ps): the stamp for what the device sends. */
uint64_t hlsim_simclock_time_ps(const hlsim_simclock *clock);

/* ---- host messages ---------------------------------------------------------- */
/* A validated TLP from the host for the device: delivered at once when
 * free-running, else at its stamp (a completion to a DMA read at once: the
 * clock is held until it arrives). */
void hlsim_simclock_host_tlp(hlsim_simclock *clock, const struct tlpb_tlp *tlp);
void hlsim_simclock_host_reset(hlsim_simclock *clock, uint64_t stamp_ps,
                               enum hlsim_reset_kind kind);
/* The device sent tlp (call from the environment's send_tlp): a host
 * request's final completion ends its implicit grant. */
void hlsim_simclock_sent(hlsim_simclock *clock, const struct tlpb_tlp *tlp);

/* ---- the environment operations (env = the clock) ---------------------------- */
uint64_t hlsim_simclock_env_now_ns(void *clock);
void *hlsim_simclock_env_timer_create(void *clock, void (*fire)(void *arg), void *arg);
void hlsim_simclock_env_timer_start(void *timer, uint64_t delay_ns);
void hlsim_simclock_env_timer_stop(void *timer);
void hlsim_simclock_env_timer_destroy(void *timer);
void hlsim_simclock_env_defer(void *clock, void (*fn)(void *arg), void *arg);

/* ---- state, for REACHED and tests --------------------------------------------- */
/* Nothing to do until the next host message: no event but timers, no DMA
 * read outstanding, nothing queued in the device. */
bool hlsim_simclock_idle(const hlsim_simclock *clock);
/* The earliest timer (ps), or 0 when none. */
uint64_t hlsim_simclock_next_timer_ps(const hlsim_simclock *clock);

#endif
