/* The simulated clock of an hlsim device (see hlsim_simclock.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "hlsim_simclock.h"

/* Events run per slice before the loop gets a turn (I/O, other devices). */
#define SLICE_EVENTS 4096u
#define PS_PER_NS 1000ull

struct clock_timer;

struct clock_event {
    TAILQ_ENTRY(clock_event) link;
    uint64_t time_ps;
    enum hlsim_simclock_class cls;
    uint64_t seq;
    bool queued;
    bool owned; /* freed once run or dropped (everything but a timer's) */
    void (*run)(hlsim_simclock *clock, struct clock_event *ev);
    void (*fn)(void *arg);       /* deferred call */
    void *arg;
    struct clock_timer *timer;   /* a timer's event */
    hlsim_simclock *clock;       /* for an event run after the clock went free */
    enum hlsim_reset_kind reset_kind;
    struct tlpb_tlp tlp;         /* a host TLP, its payload below */
    uint8_t payload[];
};
TAILQ_HEAD(clock_event_list, clock_event);

struct clock_timer {
    TAILQ_ENTRY(clock_timer) link;
    hlsim_simclock *clock;
    void (*fire)(void *arg);
    void *arg;
    void *wall_timer;        /* free-running: a libuv timer */
    bool wall_armed;
    uint64_t due_model_ns;   /* free-running: when it fires (model time) */
    struct clock_event ev;   /* coupled: its place in the queue */
};
TAILQ_HEAD(clock_timer_list, clock_timer);

struct hlsim_simclock {
    uv_loop_t *loop;
    struct hlsim_uv_defer_queue *deferred;
    const struct hlsim_simclock_ops *ops;
    void *env;
    hlsim_device *dev;

    bool coupled;
    uint64_t now_ps;          /* the clock on the wire */
    uint64_t model_offset_ps; /* model time = wire time + offset (never goes back) */
    uint64_t free_base_ns;    /* free-running: model time at free_wall_ns */
    uint64_t free_wall_ns;

    uint64_t allowance_ps;    /* largest grant */
    unsigned np_outstanding;  /* host non-posted requests not completed yet */
    bool grant_pending;
    uint64_t grant_sync_id;

    struct clock_event_list events;
    uint64_t next_seq;
    unsigned busy_events;     /* queued events that are not host messages */
    struct clock_timer_list timers;

    bool running;
    bool slice_queued;

    /* throttle */
    uint64_t max_ns_per_s;
    bool pace_valid;
    uint64_t pace_wall_ns, pace_sim_ps;
    void *wake_timer;
    bool wake_armed;
};

static void run_clock(hlsim_simclock *c);

static uint64_t wall_now(const hlsim_simclock *c)
{
    return c->ops && c->ops->wall_ns ? c->ops->wall_ns(c->env) : tlpb_now_ns();
}

static uint64_t model_now_ns(const hlsim_simclock *c)
{
    if (c->coupled)
        return (c->now_ps + c->model_offset_ps) / PS_PER_NS;
    return c->free_base_ns + (wall_now(c) - c->free_wall_ns);
}

/* ---- the event queue ---------------------------------------------------------- */

static bool event_before(const struct clock_event *a, const struct clock_event *b)
{
    if (a->time_ps != b->time_ps)
        return a->time_ps < b->time_ps;
    if (a->cls != b->cls)
        return a->cls < b->cls;
    return a->seq < b->seq;
}

static void slice_cb(void *arg);

static void schedule_slice(hlsim_simclock *c)
{
    if (c->slice_queued || c->running)
        return;
    if (hlsim_uv_defer(c->deferred, slice_cb, c) == 0)
        c->slice_queued = true;
}

static void event_insert(hlsim_simclock *c, struct clock_event *ev)
{
    struct clock_event *at;

    ev->seq = c->next_seq++;
    ev->queued = true;
    if (ev->cls != HLSIM_CLOCK_HOST)
        c->busy_events++;
    /* Most events go at or near the end: search from there. */
    TAILQ_FOREACH_REVERSE(at, &c->events, clock_event_list, link) {
        if (!event_before(ev, at)) {
            TAILQ_INSERT_AFTER(&c->events, at, ev, link);
            schedule_slice(c);
            return;
        }
    }
    TAILQ_INSERT_HEAD(&c->events, ev, link);
    schedule_slice(c);
}

static void event_remove(hlsim_simclock *c, struct clock_event *ev)
{
    if (!ev->queued)
        return;
    TAILQ_REMOVE(&c->events, ev, link);
    ev->queued = false;
    if (ev->cls != HLSIM_CLOCK_HOST)
        c->busy_events--;
}

static struct clock_event *event_new(size_t payload_bytes)
{
    struct clock_event *ev = calloc(1, sizeof(*ev) + payload_bytes);
    if (ev)
        ev->owned = true;
    return ev;
}

static void event_run(hlsim_simclock *c, struct clock_event *ev)
{
    bool owned = ev->owned; /* a timer's callback may destroy its timer */
    ev->run(c, ev);
    if (owned)
        free(ev);
}

/* ---- event kinds --------------------------------------------------------------- */

static void run_deferred(hlsim_simclock *c, struct clock_event *ev)
{
    (void)c;
    ev->fn(ev->arg);
}

static void run_host_tlp(hlsim_simclock *c, struct clock_event *ev)
{
    if (c->dev)
        hlsim_device_receive_tlp(c->dev, &ev->tlp);
}

static void run_host_reset(hlsim_simclock *c, struct clock_event *ev)
{
    if (c->dev)
        hlsim_device_reset(c->dev, ev->reset_kind);
}

static void run_timer(hlsim_simclock *c, struct clock_event *ev)
{
    (void)c;
    ev->timer->fire(ev->timer->arg);
}

/* An event left over when the clock goes free-running: run it soon. */
static void run_detached(void *arg)
{
    struct clock_event *ev = arg;
    ev->run(ev->clock, ev);
    free(ev);
}

/* ---- lifecycle ------------------------------------------------------------------ */

hlsim_simclock *hlsim_simclock_create(uv_loop_t *loop, struct hlsim_uv_defer_queue *deferred,
                                      const struct hlsim_simclock_ops *ops, void *env)
{
    hlsim_simclock *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->deferred = deferred;
    c->ops = ops;
    c->env = env;
    TAILQ_INIT(&c->events);
    TAILQ_INIT(&c->timers);
    c->free_wall_ns = wall_now(c);
    return c;
}

void hlsim_simclock_destroy(hlsim_simclock *c)
{
    struct clock_event *ev;
    struct clock_timer *t;

    if (!c)
        return;
    while ((ev = TAILQ_FIRST(&c->events)) != NULL) {
        event_remove(c, ev);
        if (ev->owned)
            free(ev);
    }
    /* Timers the device did not destroy (it destroys its own first). */
    while ((t = TAILQ_FIRST(&c->timers)) != NULL)
        hlsim_simclock_env_timer_destroy(t);
    if (c->wake_timer)
        hlsim_uv_timer_destroy(c->wake_timer);
    /* A queued slice is dropped with the environment's deferred queue. */
    free(c);
}

void hlsim_simclock_set_device(hlsim_simclock *c, hlsim_device *dev)
{
    c->dev = dev;
}

static void wake_cb(void *arg)
{
    hlsim_simclock *c = arg;
    c->wake_armed = false;
    if (c->ops && c->ops->progress && c->coupled)
        c->ops->progress(c->env, c->now_ps); /* a paced run is a long one */
    run_clock(c);
}

void hlsim_simclock_set_max_rate(hlsim_simclock *c, uint64_t ns_per_s)
{
    c->max_ns_per_s = ns_per_s;
    c->pace_valid = false;
    if (ns_per_s && !c->wake_timer && c->loop)
        c->wake_timer = hlsim_uv_timer_create(c->loop, wake_cb, c);
}

/* ---- state ----------------------------------------------------------------------- */

static bool dma_hold(const hlsim_simclock *c)
{
    return c->dev && hlsim_device_dma_reads_outstanding(c->dev);
}

bool hlsim_simclock_idle(const hlsim_simclock *c)
{
    const struct clock_event *ev;

    if (c->dev && hlsim_device_busy(c->dev))
        return false;
    TAILQ_FOREACH(ev, &c->events, link)
        if (ev->cls != HLSIM_CLOCK_TIMER)
            return false;
    return true;
}

uint64_t hlsim_simclock_next_timer_ps(const hlsim_simclock *c)
{
    const struct clock_event *ev;

    TAILQ_FOREACH(ev, &c->events, link)
        if (ev->cls == HLSIM_CLOCK_TIMER)
            return ev->time_ps;
    return 0;
}

uint64_t hlsim_simclock_time_ps(const hlsim_simclock *c)
{
    return c->now_ps;
}

bool hlsim_simclock_coupled(const hlsim_simclock *c)
{
    return c->coupled;
}

/* ---- the run ---------------------------------------------------------------------- */

/* May the clock move from now to target_ps yet? Busy time (the device has
 * work or timers) is paced to max_ns_per_s; a jump over nothing is free
 * and starts the pacing afresh, so idle never banks credit. When not yet,
 * a wall timer resumes the run. */
static bool pace_allows(hlsim_simclock *c, uint64_t target_ps)
{
    if (c->max_ns_per_s == 0 || target_ps <= c->now_ps)
        return true;
    uint64_t wall = wall_now(c);
    bool busy = c->busy_events > 0 || (c->dev && hlsim_device_busy(c->dev));
    if (!busy || !c->pace_valid) {
        c->pace_valid = busy;
        c->pace_wall_ns = wall;
        c->pace_sim_ps = busy ? c->now_ps : target_ps;
        if (!busy)
            return true;
    }
    /* simulated ps allowed so far: wall ns * (ns/s) / 1e9 * 1000 */
    unsigned __int128 allowed = (unsigned __int128)(wall - c->pace_wall_ns) * c->max_ns_per_s /
                                1000000u;
    uint64_t wanted = target_ps - c->pace_sim_ps;
    if ((unsigned __int128)wanted <= allowed)
        return true;
    unsigned __int128 wait = (unsigned __int128)wanted * 1000000u / c->max_ns_per_s -
                             (wall - c->pace_wall_ns);
    if (c->wake_timer && !c->wake_armed) {
        c->wake_armed = true;
        hlsim_uv_timer_start(c->wake_timer, wait > UINT64_MAX ? UINT64_MAX : (uint64_t)wait);
    }
    return false;
}

static void finish_run(hlsim_simclock *c)
{
    if (!c->grant_pending)
        return;
    bool idle = hlsim_simclock_idle(c);
    c->grant_pending = false;
    c->pace_valid = false; /* the wait for the next grant banks nothing */
    if (c->ops && c->ops->reached)
        c->ops->reached(c->env, c->grant_sync_id, c->now_ps, idle,
                        idle ? hlsim_simclock_next_timer_ps(c) : 0);
}

static void run_clock(hlsim_simclock *c)
{
    unsigned budget = SLICE_EVENTS;

    if (!c->coupled || c->running || c->wake_armed)
        return;
    c->running = true;
    for (;;) {
        struct clock_event *ev = TAILQ_FIRST(&c->events);
        uint64_t limit = c->np_outstanding > 0 ? UINT64_MAX : c->allowance_ps;
        if (dma_hold(c))
            limit = c->now_ps; /* rule 4: not past now until the completion */
        if (!ev || ev->time_ps > limit)
            break;
        if (!pace_allows(c, ev->time_ps)) {
            c->running = false;
            return; /* the wake timer resumes */
        }
        if (budget-- == 0) {
            c->running = false;
            schedule_slice(c);
            return;
        }
        if (ev->time_ps > c->now_ps)
            c->now_ps = ev->time_ps;
        event_remove(c, ev);
        event_run(c, ev);
    }
    if (dma_hold(c) || c->np_outstanding > 0) {
        /* The completion to the DMA read (or output room for a host's
         * completion) resumes the run. */
        c->running = false;
        return;
    }
    if (c->now_ps < c->allowance_ps) {
        if (!pace_allows(c, c->allowance_ps)) {
            c->running = false;
            return;
        }
        c->now_ps = c->allowance_ps;
    }
    c->running = false;
    finish_run(c);
}

static void slice_cb(void *arg)
{
    hlsim_simclock *c = arg;

    c->slice_queued = false;
    if (!c->coupled) {
        return;
    }
    if (c->ops && c->ops->progress && (c->grant_pending || c->np_outstanding > 0))
        c->ops->progress(c->env, c->now_ps);
    run_clock(c);
}

/* ---- modes ------------------------------------------------------------------------- */

void hlsim_simclock_couple(hlsim_simclock *c, uint64_t host_time_ps)
{
    struct clock_timer *t;

    if (c->coupled) {
        if (c->now_ps < host_time_ps)
            c->now_ps = host_time_ps;
        return;
    }
    uint64_t model_ns = model_now_ns(c);
    if (c->now_ps < host_time_ps)
        c->now_ps = host_time_ps;
    c->model_offset_ps = model_ns * PS_PER_NS > c->now_ps ? model_ns * PS_PER_NS - c->now_ps : 0;
    c->coupled = true;
    c->allowance_ps = c->now_ps;
    c->np_outstanding = 0;
    c->grant_pending = false;
    c->pace_valid = false;
    /* Running wall timers become events at the same distance. */
    TAILQ_FOREACH(t, &c->timers, link) {
        if (!t->wall_armed)
            continue;
        hlsim_uv_timer_stop(t->wall_timer);
        t->wall_armed = false;
        uint64_t left = t->due_model_ns > model_ns ? t->due_model_ns - model_ns : 0;
        t->ev.time_ps = c->now_ps + left * PS_PER_NS;
        event_insert(c, &t->ev);
    }
}

void hlsim_simclock_free_run(hlsim_simclock *c)
{
    struct clock_event *ev;

    if (!c->coupled)
        return;
    uint64_t model_ns = model_now_ns(c);
    c->coupled = false;
    c->grant_pending = false;
    c->np_outstanding = 0;
    c->free_base_ns = model_ns;
    c->free_wall_ns = wall_now(c);
    if (c->wake_armed) {
        hlsim_uv_timer_stop(c->wake_timer);
        c->wake_armed = false;
    }
    /* Timers go back on the wall clock at the same distance; the rest runs
     * soon, in order. */
    while ((ev = TAILQ_FIRST(&c->events)) != NULL) {
        event_remove(c, ev);
        if (ev->timer) {
            struct clock_timer *t = ev->timer;
            uint64_t left_ns = (ev->time_ps - c->now_ps + PS_PER_NS - 1) / PS_PER_NS;
            t->due_model_ns = model_ns + left_ns;
            t->wall_armed = true;
            hlsim_uv_timer_start(t->wall_timer, left_ns);
            continue;
        }
        if (ev->run == run_deferred) {
            /* keep the model's call as it is */
            if (hlsim_uv_defer(c->deferred, ev->fn, ev->arg) != 0)
                ev->fn(ev->arg);
            free(ev);
            continue;
        }
        ev->clock = c;
        if (hlsim_uv_defer(c->deferred, run_detached, ev) != 0)
            run_detached(ev);
    }
}

void hlsim_simclock_abandon(hlsim_simclock *c)
{
    if (!c->grant_pending)
        return;
    c->grant_pending = false;
    if (c->ops && c->ops->reached)
        c->ops->reached(c->env, c->grant_sync_id,
                        c->allowance_ps > c->now_ps ? c->allowance_ps : c->now_ps, true, 0);
}

void hlsim_simclock_grant(hlsim_simclock *c, uint64_t sync_id, uint64_t until_ps)
{
    if (!c->coupled) {
        if (c->ops && c->ops->reached)
            c->ops->reached(c->env, sync_id, until_ps > c->now_ps ? until_ps : c->now_ps, true, 0);
        return;
    }
    if (until_ps > c->allowance_ps)
        c->allowance_ps = until_ps;
    c->grant_pending = true;
    c->grant_sync_id = sync_id;
    run_clock(c);
}

/* ---- host messages --------------------------------------------------------------------- */

static bool host_non_posted(enum tlpb_tlp_kind kind)
{
    return kind == TLPB_TLP_MRD || kind == TLPB_TLP_CFGRD0 || kind == TLPB_TLP_CFGWR0;
}

void hlsim_simclock_host_tlp(hlsim_simclock *c, const struct tlpb_tlp *tlp)
{
    if (!c->coupled) {
        if (c->dev)
            hlsim_device_receive_tlp(c->dev, tlp);
        return;
    }
    struct clock_event *ev = event_new(tlp->payload_bytes);
    if (!ev) {
        /* Better early than never: the request still gets its answer. */
        if (c->dev)
            hlsim_device_receive_tlp(c->dev, tlp);
        return;
    }
    ev->run = run_host_tlp;
    ev->cls = HLSIM_CLOCK_HOST;
    ev->tlp = *tlp;
    if (tlp->payload_bytes) {
        memcpy(ev->payload, tlp->payload, tlp->payload_bytes);
        ev->tlp.payload = ev->payload;
    } else {
        ev->tlp.payload = NULL;
    }
    /* A completion to a DMA read takes effect at once: the clock has been
     * held for it (rule 4). A request at its stamp (rule 2). */
    ev->time_ps = c->now_ps;
    if (!tlpb_tlp_is_completion(tlp->kind) && tlp->sim_time_ps > c->now_ps)
        ev->time_ps = tlp->sim_time_ps;
    if (host_non_posted(tlp->kind))
        c->np_outstanding++; /* the implicit grant, until its completion */
    event_insert(c, ev);
}

void hlsim_simclock_host_reset(hlsim_simclock *c, uint64_t stamp_ps, enum hlsim_reset_kind kind)
{
    if (!c->coupled) {
        if (c->dev)
            hlsim_device_reset(c->dev, kind);
        return;
    }
    struct clock_event *ev = event_new(0);
    if (!ev) {
        if (c->dev)
            hlsim_device_reset(c->dev, kind);
        return;
    }
    ev->run = run_host_reset;
    ev->cls = HLSIM_CLOCK_HOST;
    ev->reset_kind = kind;
    ev->time_ps = stamp_ps > c->now_ps ? stamp_ps : c->now_ps;
    event_insert(c, ev);
}

/* The final completion of a request: it carries the last byte owed. */
static bool final_completion(const struct tlpb_tlp *tlp)
{
    if (tlp->kind == TLPB_TLP_CPL)
        return true;
    if (tlp->kind != TLPB_TLP_CPLD)
        return false;
    return tlp->byte_count <= tlp->length_dw * 4u - (tlp->lower_address & 3u);
}

void hlsim_simclock_sent(hlsim_simclock *c, const struct tlpb_tlp *tlp)
{
    if (!c->coupled || c->np_outstanding == 0 || !final_completion(tlp))
        return;
    c->np_outstanding--;
    if (c->np_outstanding == 0 && !c->running)
        schedule_slice(c); /* sent from outside a run: finish it */
}

/* ---- environment operations ---------------------------------------------------------- */

uint64_t hlsim_simclock_env_now_ns(void *clock)
{
    return model_now_ns(clock);
}

static void wall_timer_fire(void *arg)
{
    struct clock_timer *t = arg;
    t->wall_armed = false;
    t->fire(t->arg);
}

void *hlsim_simclock_env_timer_create(void *clock, void (*fire)(void *arg), void *arg)
{
    hlsim_simclock *c = clock;
    struct clock_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->wall_timer = hlsim_uv_timer_create(c->loop, wall_timer_fire, t);
    if (!t->wall_timer) {
        free(t);
        return NULL;
    }
    t->clock = c;
    t->fire = fire;
    t->arg = arg;
    t->ev.cls = HLSIM_CLOCK_TIMER;
    t->ev.run = run_timer;
    t->ev.timer = t;
    TAILQ_INSERT_TAIL(&c->timers, t, link);
    return t;
}

void hlsim_simclock_env_timer_start(void *timer, uint64_t delay_ns)
{
    struct clock_timer *t = timer;
    hlsim_simclock *c = t->clock;

    hlsim_simclock_env_timer_stop(t);
    if (c->coupled) {
        uint64_t delay_ps = delay_ns > (UINT64_MAX - c->now_ps) / PS_PER_NS
                                ? UINT64_MAX - c->now_ps
                                : delay_ns * PS_PER_NS;
        t->ev.time_ps = c->now_ps + delay_ps;
        event_insert(c, &t->ev);
        return;
    }
    t->due_model_ns = model_now_ns(c) + delay_ns;
    t->wall_armed = true;
    hlsim_uv_timer_start(t->wall_timer, delay_ns);
}

void hlsim_simclock_env_timer_stop(void *timer)
{
    struct clock_timer *t = timer;

    event_remove(t->clock, &t->ev);
    if (t->wall_armed) {
        hlsim_uv_timer_stop(t->wall_timer);
        t->wall_armed = false;
    }
}

void hlsim_simclock_env_timer_destroy(void *timer)
{
    struct clock_timer *t = timer;

    hlsim_simclock_env_timer_stop(t);
    TAILQ_REMOVE(&t->clock->timers, t, link);
    hlsim_uv_timer_destroy(t->wall_timer);
    free(t);
}

void hlsim_simclock_env_defer(void *clock, void (*fn)(void *arg), void *arg)
{
    hlsim_simclock *c = clock;

    if (c->coupled) {
        struct clock_event *ev = event_new(0);
        if (ev) {
            ev->run = run_deferred;
            ev->cls = HLSIM_CLOCK_DEFERRED;
            ev->fn = fn;
            ev->arg = arg;
            ev->time_ps = c->now_ps;
            event_insert(c, ev);
            return;
        }
    }
    if (hlsim_uv_defer(c->deferred, fn, arg) != 0)
        fprintf(stderr, "hlsim: out of memory deferring model work\n");
}
