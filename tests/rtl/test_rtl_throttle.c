/* Unit tests of the cap on simulated cycles per wall second
 * (--max-cycles-per-s): the pacing arithmetic on an injected clock (no real
 * sleeping: a "sleep" advances the test's clock), and the option through the
 * simulator's command-line parser. Expected values come from the rule the
 * cap promises (cycles since the mark <= cap * seconds since the mark), not
 * from the code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "throttle.h"
#include "tlpb_rtl.h"

#define NS_PER_S 1000000000ull

/* tlpb_rtl_sim_start names the device in its usage text. */
const struct tlpb_rtl_device tlpb_rtl_device = {.name = "throttle-test"};

/* A design simulated on an injected clock: each cycle costs cycle_cost_ns of
 * wall time, and a pacing sleep advances the clock by exactly what was asked. */
struct paced_run {
    struct rtl_throttle t;
    uint64_t now_ns;
    uint64_t start_ns;
    uint64_t cycles;          /* since start_ns */
    uint64_t sleeps;
    uint64_t slept_ns;
};

static void run_start(struct paced_run *r, uint64_t cap, uint64_t now_ns)
{
    memset(r, 0, sizeof(*r));
    r->now_ns = now_ns;
    r->start_ns = now_ns;
    rtl_throttle_init(&r->t, cap, now_ns);
}

/* Run n cycles, checking the cap's promise after every one: cycles since the
 * start never exceed cap * elapsed by more than the cycles between two
 * looks at the clock (the run starts at a mark and never idles). */
static void run_cycles_checked(struct paced_run *r, uint64_t n, uint64_t cycle_cost_ns)
{
    uint64_t cap = r->t.max_cycles_per_s;
    for (uint64_t i = 0; i < n; i++) {
        r->now_ns += cycle_cost_ns;
        r->cycles++;
        if (rtl_throttle_count_cycle(&r->t)) {
            uint64_t sleep_ns = rtl_throttle_sleep_ns(&r->t, r->now_ns);
            assert_true(sleep_ns <= RTL_THROTTLE_MAX_SLEEP_NS);
            if (sleep_ns) {
                r->sleeps++;
                r->slept_ns += sleep_ns;
                r->now_ns += sleep_ns;
            }
            /* Right after a look at the clock the rule holds exactly. */
            unsigned __int128 at_check = (unsigned __int128)cap * (r->now_ns - r->start_ns);
            assert_true((unsigned __int128)r->cycles * NS_PER_S <= at_check);
        }
        unsigned __int128 allowed = (unsigned __int128)cap * (r->now_ns - r->start_ns) +
                                    (unsigned __int128)r->t.check_every * NS_PER_S;
        assert_true((unsigned __int128)r->cycles * NS_PER_S <= allowed);
    }
}

/* ---- the rate stays at the cap ------------------------------------------------------------- */

static void test_sleep_keeps_rate_at_cap(void **state)
{
    static const uint64_t caps[] = {1, 7, 99, 100, 1000, 6400, 10000, 250000, 1000000,
                                    RTL_THROTTLE_MAX_CYCLES_PER_S};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        uint64_t cap = caps[i];
        /* A design ten times faster than the cap (taking no time at all
         * when the cap is above 100 MHz). */
        uint64_t cost_ns = NS_PER_S / cap / 10;
        uint64_t n = cap < 1000 ? 3 * cap + 5 : 200000;
        struct paced_run r;
        run_start(&r, cap, 5 * NS_PER_S);
        n = (n + r.t.check_every - 1) / r.t.check_every * r.t.check_every; /* ends on a look */
        run_cycles_checked(&r, n, cost_ns);
        assert_true(r.sleeps > 0);
        /* Not slower than the cap either: the run takes no longer than its
         * cycles at the cap, plus one check's worth. */
        uint64_t elapsed = r.now_ns - r.start_ns;
        unsigned __int128 at_cap = ((unsigned __int128)n * NS_PER_S + cap - 1) / cap;
        assert_true(elapsed >= at_cap);
        assert_true(elapsed <= at_cap + (unsigned __int128)r.t.check_every * NS_PER_S / cap + 1);
    }
}

static void test_known_sleeps(void **state)
{
    /* 1000 cycles/s: the clock is looked at every 10 cycles (1/100 s of
     * work); 10 cycles at once are 10 ms ahead. */
    struct rtl_throttle t;
    rtl_throttle_init(&t, 1000, 0);
    assert_int_equal(t.check_every, 10);
    for (int i = 0; i < 9; i++)
        assert_false(rtl_throttle_count_cycle(&t));
    assert_true(rtl_throttle_count_cycle(&t));
    assert_int_equal(rtl_throttle_sleep_ns(&t, 0), 10000000);
    /* 4 ms of it already passed */
    assert_int_equal(rtl_throttle_sleep_ns(&t, 4000000), 6000000);
    /* exactly on the cap: no sleep */
    assert_int_equal(rtl_throttle_sleep_ns(&t, 10000000), 0);

    /* 10 000 cycles/s: every 64 cycles (the most between looks), 6.4 ms. */
    rtl_throttle_init(&t, 10000, 1000);
    assert_int_equal(t.check_every, 64);
    for (int i = 0; i < 63; i++)
        assert_false(rtl_throttle_count_cycle(&t));
    assert_true(rtl_throttle_count_cycle(&t));
    assert_int_equal(rtl_throttle_sleep_ns(&t, 1000), 6400000);

    /* Below 100 cycles/s: every cycle; one cycle at 3/s is a third of a
     * second, rounded up. */
    rtl_throttle_init(&t, 3, 0);
    assert_int_equal(t.check_every, 1);
    assert_true(rtl_throttle_count_cycle(&t));
    assert_int_equal(rtl_throttle_sleep_ns(&t, 0), 333333334);
}

static void test_slower_design_never_sleeps(void **state)
{
    /* A design at 1000 cycles/s under a cap of 10 000: nothing to pace. */
    struct paced_run r;
    run_start(&r, 10000, 0);
    run_cycles_checked(&r, 50000, NS_PER_S / 1000);
    assert_int_equal(r.sleeps, 0);
}

/* ---- no credit banked ---------------------------------------------------------------------- */

static void test_mark_resets_after_idle(void **state)
{
    struct paced_run r;
    run_start(&r, 1000, 0);
    run_cycles_checked(&r, 95, 1000); /* halfway to the next look at the clock */
    /* Asleep idle on the socket for 5 s: 5000 cycles' worth of wall time. */
    r.now_ns += 5 * NS_PER_S;
    rtl_throttle_mark(&r.t, r.now_ns);
    assert_int_equal(r.t.cycles_since_mark, 0);
    /* The count starts over: 10 cycles at once to the next look, and they
     * owe their full 10 ms: the idle time bought nothing. */
    for (int i = 0; i < 9; i++)
        assert_false(rtl_throttle_count_cycle(&r.t));
    assert_true(rtl_throttle_count_cycle(&r.t));
    assert_int_equal(rtl_throttle_sleep_ns(&r.t, r.now_ns), 10000000);

    /* And from the new mark on, the rule holds again. */
    r.start_ns = r.now_ns;
    r.cycles = 0;
    rtl_throttle_mark(&r.t, r.now_ns);
    run_cycles_checked(&r, 5000, 1000);
}

static void test_no_burst_after_slow_stretch(void **state)
{
    /* 10 s at a tenth of the cap, then as fast as it goes: at most one
     * check's worth of cycles more than the cap allows from the moment the
     * design speeds up. */
    struct paced_run r;
    run_start(&r, 1000, 0);
    run_cycles_checked(&r, 1000, NS_PER_S / 100);
    uint64_t fast_from_ns = r.now_ns, fast_from_cycles = r.cycles;
    for (int i = 0; i < 5000; i++) {
        r.now_ns += 1;
        r.cycles++;
        if (rtl_throttle_count_cycle(&r.t))
            r.now_ns += rtl_throttle_sleep_ns(&r.t, r.now_ns);
        uint64_t cycles = r.cycles - fast_from_cycles;
        unsigned __int128 allowed = (unsigned __int128)1000 * (r.now_ns - fast_from_ns) +
                                    (unsigned __int128)2 * r.t.check_every * NS_PER_S;
        assert_true((unsigned __int128)cycles * NS_PER_S <= allowed);
    }
}

/* ---- off, huge and overflowing ------------------------------------------------------------- */

static void test_cap_zero_never_sleeps(void **state)
{
    struct rtl_throttle t;
    rtl_throttle_init(&t, 0, 0);
    for (int i = 0; i < 1000000; i++)
        assert_false(rtl_throttle_count_cycle(&t));
    assert_int_equal(rtl_throttle_sleep_ns(&t, 0), 0);
    t.cycles_since_mark = UINT64_MAX;
    assert_int_equal(rtl_throttle_sleep_ns(&t, 0), 0);
}

static void test_huge_cap_and_overflow(void **state)
{
    struct rtl_throttle t;
    /* The largest cap there is: 64 cycles at once are 64e9 / 2^64 ns ahead,
     * rounded up to 1 ns. */
    rtl_throttle_init(&t, UINT64_MAX, 0);
    assert_int_equal(t.check_every, 64);
    for (int i = 0; i < 63; i++)
        assert_false(rtl_throttle_count_cycle(&t));
    assert_true(rtl_throttle_count_cycle(&t));
    assert_int_equal(rtl_throttle_sleep_ns(&t, 0), 1);
    assert_int_equal(rtl_throttle_sleep_ns(&t, UINT64_MAX), 0);

    /* A count that would overflow cycles * 10^9 in 64 bits, at 1 cycle/s:
     * saturated, and one sleep is never longer than a second. */
    rtl_throttle_init(&t, 1, 0);
    t.cycles_since_mark = UINT64_MAX - 1;
    assert_true(rtl_throttle_count_cycle(&t));
    assert_int_equal(t.cycles_since_mark, UINT64_MAX);
    assert_true(rtl_throttle_count_cycle(&t)); /* the count saturates, never wraps */
    assert_int_equal(t.cycles_since_mark, UINT64_MAX);
    assert_int_equal(rtl_throttle_sleep_ns(&t, 0), RTL_THROTTLE_MAX_SLEEP_NS);
    assert_int_equal(rtl_throttle_sleep_ns(&t, UINT64_MAX - 5), 5); /* 2^64 - 1 s due */

    /* A clock before the mark (never from a monotonic clock) is no time. */
    rtl_throttle_init(&t, 1000, 5 * NS_PER_S);
    for (int i = 0; i < 10; i++)
        rtl_throttle_count_cycle(&t);
    assert_int_equal(rtl_throttle_sleep_ns(&t, 0), 10000000);

    /* A mark at the end of time. */
    rtl_throttle_init(&t, 1000, UINT64_MAX);
    for (int i = 0; i < 10; i++)
        rtl_throttle_count_cycle(&t);
    assert_int_equal(rtl_throttle_sleep_ns(&t, UINT64_MAX), 10000000);
}

/* ---- the command line ---------------------------------------------------------------------- */

/* tlpb_rtl_sim_start on argv (with --help last, so an accepted value ends
 * the parse with 0 before any attach); what it prints lands in out. */
static int parse_option(const char *option, const char *value, struct tlpb_rtl_sim_options *opts,
                        char *out, size_t out_size)
{
    char *argv[] = {"sim", (char *)option, (char *)value, "--help", NULL};
    FILE *capture = tmpfile();
    assert_non_null(capture);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
    dup2(fileno(capture), STDOUT_FILENO);
    dup2(fileno(capture), STDERR_FILENO);
    optind = 0; /* glibc: start a new parse */
    int rc = tlpb_rtl_sim_start(4, argv, opts);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
    rewind(capture);
    size_t n = fread(out, 1, out_size - 1, capture);
    out[n] = '\0';
    fclose(capture);
    return rc;
}

static int parse(const char *value, struct tlpb_rtl_sim_options *opts, char *out, size_t out_size)
{
    return parse_option("--max-cycles-per-s", value, opts, out, out_size);
}

static void test_option_accepts_counts(void **state)
{
    static const struct {
        const char *text;
        uint64_t value;
    } good[] = {{"0", 0}, {"1", 1}, {"5000", 5000}, {"1000000000", 1000000000}};
    char out[4096];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct tlpb_rtl_sim_options opts;
        assert_int_equal(parse(good[i].text, &opts, out, sizeof(out)), 0);
        assert_int_equal(opts.max_cycles_per_s, good[i].value);
        assert_non_null(strstr(out, "--max-cycles-per-s N")); /* the usage names it */
    }
}

static void test_option_refuses_bad_values(void **state)
{
    static const char *const bad[] = {
        "-5", " -5", "-0", "+5", "", " ", "abc", "12abc", "1e9", "2.5",
        "1000000001",                 /* above 1 GHz: no simulator gets there */
        "18446744073709551615",       /* UINT64_MAX */
        "99999999999999999999999999", /* beyond 64 bits */
    };
    char out[4096];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tlpb_rtl_sim_options opts;
        int rc = parse(bad[i], &opts, out, sizeof(out));
        if (rc != 2)
            fail_msg("'%s' accepted (rc %d)", bad[i], rc);
        /* The error names the option and the value it refused. */
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "'%s'", bad[i]);
        assert_non_null(strstr(out, "--max-cycles-per-s takes"));
        assert_non_null(strstr(out, quoted));
    }
}

/* The clock period (coupled time, waveforms): whole ps, given as a period
 * or as a frequency; the DMA read latency of coupled time. */
static void test_clock_period_options(void **state)
{
    char out[4096];
    struct tlpb_rtl_sim_options opts;
    assert_int_equal(parse_option("--log-level", "2", &opts, out, sizeof(out)), 0);
    assert_int_equal(opts.clock_period_ps, 4000); /* 250 MHz by default */
    assert_int_equal(opts.dma_read_latency_ns, 250);
    assert_int_equal(parse_option("--clock-period-ps", "5000", &opts, out, sizeof(out)), 0);
    assert_int_equal(opts.clock_period_ps, 5000);
    assert_int_equal(parse_option("--cycles-per-ns", "0.3", &opts, out, sizeof(out)), 0);
    assert_int_equal(opts.clock_period_ps, 3333); /* 3333.3 ps, rounded */
    assert_int_equal(parse_option("--cycles-per-ns", "0.25", &opts, out, sizeof(out)), 0);
    assert_int_equal(opts.clock_period_ps, 4000);
    assert_int_equal(parse_option("--dma-read-latency-ns", "1000", &opts, out, sizeof(out)), 0);
    assert_int_equal(opts.dma_read_latency_ns, 1000);
    static const char *const bad_periods[] = {"0", "1", "-4000", "4e3", "", "1000000001"};
    for (size_t i = 0; i < sizeof(bad_periods) / sizeof(bad_periods[0]); i++) {
        if (parse_option("--clock-period-ps", bad_periods[i], &opts, out, sizeof(out)) != 2)
            fail_msg("--clock-period-ps '%s' accepted", bad_periods[i]);
        assert_non_null(strstr(out, "--clock-period-ps takes"));
    }
    static const char *const bad_latencies[] = {"0", "-1", "x", "1000000001"};
    for (size_t i = 0; i < sizeof(bad_latencies) / sizeof(bad_latencies[0]); i++) {
        if (parse_option("--dma-read-latency-ns", bad_latencies[i], &opts, out, sizeof(out)) != 2)
            fail_msg("--dma-read-latency-ns '%s' accepted", bad_latencies[i]);
        assert_non_null(strstr(out, "--dma-read-latency-ns takes"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sleep_keeps_rate_at_cap),
        cmocka_unit_test(test_known_sleeps),
        cmocka_unit_test(test_slower_design_never_sleeps),
        cmocka_unit_test(test_mark_resets_after_idle),
        cmocka_unit_test(test_no_burst_after_slow_stretch),
        cmocka_unit_test(test_cap_zero_never_sleeps),
        cmocka_unit_test(test_huge_cap_and_overflow),
        cmocka_unit_test(test_option_accepts_counts),
        cmocka_unit_test(test_option_refuses_bad_values),
        cmocka_unit_test(test_clock_period_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
