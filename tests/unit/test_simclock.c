/* Unit tests of hlsim's simulated clock (hlsim/simclock.c) on a real libuv
 * loop, without a device: the order of events (time, class, insertion),
 * grants answered with REACHED, idle and next_event, the implicit grant of
 * a host non-posted request, switching modes, and the throttle on an
 * injected wall clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hlsim_simclock.h"

#define NS 1000ull /* ps */

struct reached {
    uint64_t sync_id, t_ps, next_event_ps;
    bool idle;
};

struct fixture {
    uv_loop_t loop;
    struct hlsim_uv_defer_queue deferred;
    hlsim_simclock *clock;
    uint64_t wall_ns;
    struct reached reached[16];
    unsigned reached_count;
    char order[64]; /* one letter per event run */
    uint64_t order_ps[64];
    unsigned order_len;
};

static struct fixture fx;

static void on_reached(void *env, uint64_t sync_id, uint64_t t_ps, bool idle,
                       uint64_t next_event_ps)
{
    struct fixture *f = env;
    assert_true(f->reached_count < 16);
    f->reached[f->reached_count++] =
        (struct reached){.sync_id = sync_id, .t_ps = t_ps, .idle = idle, .next_event_ps = next_event_ps};
}

static uint64_t injected_wall(void *env)
{
    struct fixture *f = env;
    return f->wall_ns;
}

static const struct hlsim_simclock_ops ops = {
    .reached = on_reached,
    .wall_ns = injected_wall,
};

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    uv_loop_init(&fx.loop);
    hlsim_uv_defer_init(&fx.deferred, &fx.loop, NULL, NULL);
    fx.wall_ns = 1000000000ull;
    fx.clock = hlsim_simclock_create(&fx.loop, &fx.deferred, &ops, &fx);
    assert_non_null(fx.clock);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hlsim_simclock_destroy(fx.clock);
    hlsim_uv_defer_close(&fx.deferred);
    uv_run(&fx.loop, UV_RUN_DEFAULT); /* let the handles close */
    assert_int_equal(uv_loop_close(&fx.loop), 0);
    return 0;
}

/* Run what the loop has without waiting for timers. */
static void run_loop(void)
{
    for (int i = 0; i < 8; i++)
        uv_run(&fx.loop, UV_RUN_NOWAIT);
}

/* Let the pacing timer fire (a libuv timer may wake a little early and
 * wait out the rest: a few turns), until the clock has run `letters`
 * events or a bounded number of turns passed. */
static void run_timers(unsigned letters)
{
    for (int i = 0; i < 20 && fx.order_len < letters; i++) {
        uv_run(&fx.loop, UV_RUN_ONCE);
        for (int j = 0; j < 8; j++)
            uv_run(&fx.loop, UV_RUN_NOWAIT);
    }
}

struct mark {
    char letter;
};

static void record(void *arg)
{
    struct mark *m = arg;
    assert_true(fx.order_len < sizeof(fx.order) - 1);
    fx.order_ps[fx.order_len] = hlsim_simclock_time_ps(fx.clock);
    fx.order[fx.order_len++] = m->letter;
}

static void *timer_at(struct mark *m, uint64_t delay_ns)
{
    void *t = hlsim_simclock_env_timer_create(fx.clock, record, m);
    assert_non_null(t);
    hlsim_simclock_env_timer_start(t, delay_ns);
    return t;
}

static void test_order_and_ties(void **state)
{
    (void)state;
    struct mark a = {'a'}, b = {'b'}, c = {'c'}, d = {'d'}, z = {'z'};

    hlsim_simclock_couple(fx.clock, 5 * NS);
    assert_int_equal(hlsim_simclock_time_ps(fx.clock), 5 * NS);
    void *tc = timer_at(&c, 100);  /* 105 ns */
    void *ta = timer_at(&a, 0);    /* 5 ns, a timer */
    void *td = timer_at(&d, 100);  /* 105 ns, after c: inserted later */
    hlsim_simclock_env_defer(fx.clock, record, &z); /* 5 ns, zero-time work before timers */
    void *tb = timer_at(&b, 50);   /* 55 ns */

    hlsim_simclock_grant(fx.clock, 7, 80 * NS);
    run_loop();
    assert_string_equal(fx.order, "zab");
    assert_int_equal(fx.reached_count, 1);
    assert_int_equal(fx.reached[0].sync_id, 7);
    assert_int_equal(fx.reached[0].t_ps, 80 * NS);
    assert_true(fx.reached[0].idle); /* only timers remain */
    assert_int_equal(fx.reached[0].next_event_ps, 105 * NS);

    hlsim_simclock_grant(fx.clock, 8, 200 * NS);
    run_loop();
    assert_string_equal(fx.order, "zabcd");
    assert_int_equal(fx.order_ps[3], 105 * NS);
    assert_int_equal(fx.order_ps[4], 105 * NS);
    assert_int_equal(fx.reached_count, 2);
    assert_int_equal(fx.reached[1].t_ps, 200 * NS);
    assert_true(fx.reached[1].idle);
    assert_int_equal(fx.reached[1].next_event_ps, 0);
    hlsim_simclock_env_timer_destroy(ta);
    hlsim_simclock_env_timer_destroy(tb);
    hlsim_simclock_env_timer_destroy(tc);
    hlsim_simclock_env_timer_destroy(td);
}

/* Work queued at the clock's time is not idle: REACHED says so. */
static void test_not_idle_with_work(void **state)
{
    (void)state;
    struct mark a = {'a'};

    hlsim_simclock_couple(fx.clock, 0);
    /* a host message stamped beyond the grant stays queued */
    struct tlpb_tlp mwr = {.kind = TLPB_TLP_MWR, .length_dw = 1, .first_be = 0xF,
                           .sim_time_ps = 500 * NS};
    uint8_t payload[4] = {0};
    mwr.payload = payload;
    mwr.payload_bytes = 4;
    hlsim_simclock_host_tlp(fx.clock, &mwr);
    void *t = timer_at(&a, 50);
    hlsim_simclock_grant(fx.clock, 1, 100 * NS);
    run_loop();
    assert_string_equal(fx.order, "a");
    assert_int_equal(fx.reached_count, 1);
    assert_int_equal(fx.reached[0].t_ps, 100 * NS);
    assert_false(fx.reached[0].idle);
    assert_false(hlsim_simclock_idle(fx.clock));
    hlsim_simclock_grant(fx.clock, 2, 600 * NS);
    run_loop();
    assert_int_equal(fx.reached_count, 2);
    assert_true(fx.reached[1].idle);
    assert_int_equal(fx.reached[1].t_ps, 600 * NS);
    hlsim_simclock_env_timer_destroy(t);
}

static void send_completion(void *arg)
{
    (void)arg;
    struct tlpb_tlp cpl = {.kind = TLPB_TLP_CPLD, .length_dw = 1, .byte_count = 4};
    record(&(struct mark){'C'});
    hlsim_simclock_sent(fx.clock, &cpl);
}

/* A host read runs the clock past the grant until its completion is sent,
 * and no further (rule 1). */
static void test_implicit_grant(void **state)
{
    (void)state;
    struct mark late = {'L'};

    hlsim_simclock_couple(fx.clock, 0);
    hlsim_simclock_grant(fx.clock, 1, 100 * NS);
    run_loop();
    assert_int_equal(fx.reached_count, 1);

    void *answer = hlsim_simclock_env_timer_create(fx.clock, send_completion, NULL);
    hlsim_simclock_env_timer_start(answer, 300); /* the "access latency": done at 400 ns */
    void *after = timer_at(&late, 600);
    struct tlpb_tlp mrd = {.kind = TLPB_TLP_MRD, .length_dw = 1, .first_be = 0xF,
                           .sim_time_ps = 150 * NS};
    hlsim_simclock_host_tlp(fx.clock, &mrd);
    run_loop();
    assert_string_equal(fx.order, "C");
    assert_int_equal(fx.order_ps[0], 400 * NS);
    assert_int_equal(hlsim_simclock_time_ps(fx.clock), 400 * NS);
    assert_int_equal(fx.reached_count, 1); /* nothing to answer */

    hlsim_simclock_grant(fx.clock, 2, 500 * NS);
    run_loop();
    assert_int_equal(fx.reached_count, 2);
    assert_int_equal(fx.reached[1].t_ps, 500 * NS);
    assert_true(fx.reached[1].idle);
    assert_int_equal(fx.reached[1].next_event_ps, 700 * NS);
    hlsim_simclock_env_timer_destroy(answer);
    hlsim_simclock_env_timer_destroy(after);
}

/* Coupled model time never goes back, and timers keep their distance
 * across mode changes. */
static void test_modes(void **state)
{
    (void)state;
    struct mark a = {'a'};

    fx.wall_ns += 2000; /* free-running: model time follows the wall */
    assert_int_equal(hlsim_simclock_env_now_ns(fx.clock), 2000);
    void *t = timer_at(&a, 1000); /* due at model time 3000 */
    hlsim_simclock_couple(fx.clock, 500 * NS);
    assert_true(hlsim_simclock_coupled(fx.clock));
    assert_int_equal(hlsim_simclock_time_ps(fx.clock), 500 * NS);
    assert_int_equal(hlsim_simclock_env_now_ns(fx.clock), 2000);
    hlsim_simclock_grant(fx.clock, 1, 1400 * NS);
    run_loop();
    assert_string_equal(fx.order, ""); /* 1000 ns from coupling: 1500 */
    hlsim_simclock_grant(fx.clock, 2, 1500 * NS);
    run_loop();
    assert_string_equal(fx.order, "a");
    assert_int_equal(hlsim_simclock_env_now_ns(fx.clock), 3000);

    hlsim_simclock_free_run(fx.clock);
    assert_false(hlsim_simclock_coupled(fx.clock));
    assert_int_equal(hlsim_simclock_env_now_ns(fx.clock), 3000);
    fx.wall_ns += 10;
    assert_int_equal(hlsim_simclock_env_now_ns(fx.clock), 3010);
    /* free-running, a grant is answered at once */
    hlsim_simclock_grant(fx.clock, 3, 9000 * NS);
    assert_int_equal(fx.reached_count, 3);
    assert_true(fx.reached[2].idle);
    hlsim_simclock_env_timer_destroy(t);
}

/* The throttle: busy time at most N ns per wall second, idle jumps free,
 * no credit banked while waiting for the host. */
static void test_throttle(void **state)
{
    (void)state;
    struct mark a = {'a'}, b = {'b'};

    hlsim_simclock_set_max_rate(fx.clock, 1000); /* 1 ns per wall ms */
    hlsim_simclock_couple(fx.clock, 0);
    void *ta = timer_at(&a, 5); /* busy: 5 ns of simulated work = 5 ms of wall */
    hlsim_simclock_grant(fx.clock, 1, 1000 * NS);
    run_loop();
    assert_string_equal(fx.order, "");
    assert_int_equal(fx.reached_count, 0);

    fx.wall_ns += 4000000; /* 4 ms: not yet */
    for (int i = 0; i < 3; i++)
        uv_run(&fx.loop, UV_RUN_ONCE); /* the pacing timer fires, and waits again */
    run_loop();
    assert_string_equal(fx.order, "");

    fx.wall_ns += 1000000; /* 5 ms */
    run_timers(1);
    assert_string_equal(fx.order, "a");
    /* then nothing is scheduled: the jump to the grant is free */
    assert_int_equal(fx.reached_count, 1);
    assert_int_equal(fx.reached[0].t_ps, 1000 * NS);

    /* A long wait for the host banks nothing. */
    fx.wall_ns += 10000000000ull;
    void *tb = timer_at(&b, 5);
    hlsim_simclock_grant(fx.clock, 2, 2000 * NS);
    run_loop();
    assert_string_equal(fx.order, "a");
    fx.wall_ns += 5000000;
    run_timers(2);
    assert_string_equal(fx.order, "ab");
    assert_int_equal(fx.order_ps[1], 1005 * NS);
    assert_int_equal(fx.reached_count, 2);

    /* A grant that ends while a timer is pending is busy time too, and the
     * wait for the next grant after it banks nothing either. */
    struct mark c = {'c'};
    void *tc = timer_at(&c, 10); /* 2010 ns */
    hlsim_simclock_grant(fx.clock, 3, 2002 * NS);
    run_loop();
    assert_int_equal(fx.reached_count, 2);
    fx.wall_ns += 2000000;
    for (int i = 0; i < 20 && fx.reached_count < 3; i++) {
        uv_run(&fx.loop, UV_RUN_ONCE);
        run_loop();
    }
    assert_int_equal(fx.reached_count, 3);
    assert_int_equal(fx.reached[2].t_ps, 2002 * NS);
    assert_int_equal(fx.reached[2].next_event_ps, 2010 * NS);
    fx.wall_ns += 10000000000ull;
    hlsim_simclock_grant(fx.clock, 4, 2020 * NS);
    run_loop();
    assert_string_equal(fx.order, "ab");
    fx.wall_ns += 8000000;
    run_timers(3);
    assert_string_equal(fx.order, "abc");
    assert_int_equal(fx.reached_count, 4);
    hlsim_simclock_env_timer_destroy(ta);
    hlsim_simclock_env_timer_destroy(tb);
    hlsim_simclock_env_timer_destroy(tc);
}

static void *self_destroying;

static void destroy_self(void *arg)
{
    (void)arg;
    record(&(struct mark){'x'});
    hlsim_simclock_env_timer_destroy(self_destroying);
    self_destroying = NULL;
}

/* A timer's callback may destroy its own timer (models do on teardown). */
static void test_timer_destroyed_in_callback(void **state)
{
    (void)state;
    hlsim_simclock_couple(fx.clock, 0);
    self_destroying = hlsim_simclock_env_timer_create(fx.clock, destroy_self, NULL);
    hlsim_simclock_env_timer_start(self_destroying, 10);
    hlsim_simclock_grant(fx.clock, 1, 20 * NS);
    run_loop();
    assert_string_equal(fx.order, "x");
    assert_null(self_destroying);
    assert_int_equal(fx.reached_count, 1);
    assert_int_equal(fx.reached[0].t_ps, 20 * NS);
}

static void *ticker;
static unsigned ticks;

static void tick(void *arg)
{
    (void)arg;
    ticks++;
    hlsim_simclock_env_timer_start(ticker, 1);
}

/* A grant with a lot of work runs in slices: the loop gets its turn in
 * between (the bridge serves its other devices), and the grant is still
 * answered once all of it has run. */
static void test_long_run_in_slices(void **state)
{
    (void)state;
    hlsim_simclock_couple(fx.clock, 0);
    ticker = hlsim_simclock_env_timer_create(fx.clock, tick, NULL);
    hlsim_simclock_env_timer_start(ticker, 1);
    hlsim_simclock_grant(fx.clock, 1, 20000 * NS);
    assert_true(ticks > 0);
    assert_true(ticks < 20000); /* returned to the loop before the end */
    assert_int_equal(fx.reached_count, 0);
    for (int i = 0; i < 100 && fx.reached_count == 0; i++)
        uv_run(&fx.loop, UV_RUN_NOWAIT);
    assert_int_equal(ticks, 20000);
    assert_int_equal(fx.reached_count, 1);
    assert_int_equal(fx.reached[0].next_event_ps, 20001 * NS);
    hlsim_simclock_env_timer_destroy(ticker);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_and_ties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_idle_with_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_implicit_grant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_destroyed_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_run_in_slices, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
