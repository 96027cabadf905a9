/* rtl_adapter: the cap on simulated cycles per wall second
 * (--max-cycles-per-s). A small design simulates far faster than a real
 * one (hundreds of thousands of cycles per second against a few thousand);
 * the cap makes it keep the pace of a large design, so drivers and tests see
 * realistic latencies.
 *
 * Counted from a mark, the clocked cycles stay within the cap:
 *   cycles_since_mark <= max_cycles_per_s * wall_seconds_since_mark.
 * The clock is looked at every check_every cycles, never per cycle. Cycles
 * spent asleep idle on the socket do not count: the mark moves to the end
 * of every idle sleep, so no credit is banked across idle. Nor across a
 * stretch where the design simulated slower than the cap: credit beyond
 * one check's worth of cycles is dropped, so no burst above the cap follows.
 *
 * Pure arithmetic on a clock the caller passes in (now_ns, monotonic), so
 * the unit tests inject time; cycle.c reads the clock and sleeps. */
#ifndef TLPB_RTL_THROTTLE_H
#define TLPB_RTL_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#define RTL_THROTTLE_MAX_CYCLES_PER_S 1000000000ull /* largest cap accepted: 1 GHz */
#define RTL_THROTTLE_MAX_CHECK_CYCLES 64u
#define RTL_THROTTLE_MAX_SLEEP_NS 1000000000ull     /* one pacing sleep at most */

struct rtl_throttle {
    uint64_t max_cycles_per_s;   /* 0: no cap */
    uint32_t check_every;        /* cycles between looks at the clock */
    uint32_t until_check;
    uint64_t mark_ns;
    uint64_t cycles_since_mark;
};

/* Start pacing at max_cycles_per_s (0: never pace), marked at now_ns. */
void rtl_throttle_init(struct rtl_throttle *t, uint64_t max_cycles_per_s, uint64_t now_ns);
/* Count one clocked (not idle) cycle. True when the clock is due to be
 * looked at: call rtl_throttle_sleep_ns then. */
bool rtl_throttle_count_cycle(struct rtl_throttle *t);
/* How long to sleep from now_ns so the cycles counted so far stay within
 * the cap (0: none); at most RTL_THROTTLE_MAX_SLEEP_NS. */
uint64_t rtl_throttle_sleep_ns(struct rtl_throttle *t, uint64_t now_ns);
/* Count afresh from now_ns (after an idle sleep on the socket). */
void rtl_throttle_mark(struct rtl_throttle *t, uint64_t now_ns);

#endif
