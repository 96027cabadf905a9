/* rtl_adapter: the arithmetic of the cap on simulated cycles per wall
 * second (throttle.h says what it keeps). */
#include <string.h>

#include "throttle.h"

#define NS_PER_S 1000000000ull

void rtl_throttle_init(struct rtl_throttle *t, uint64_t max_cycles_per_s, uint64_t now_ns)
{
    memset(t, 0, sizeof(*t));
    t->max_cycles_per_s = max_cycles_per_s;
    /* Look at the clock about every 1/100 s of simulated work, and at least
     * every 64 cycles: one pacing sleep stays short (the socket is served
     * between sleeps) and the overshoot within a check is at most 64 cycles. */
    uint64_t every = max_cycles_per_s / 100u;
    if (every > RTL_THROTTLE_MAX_CHECK_CYCLES)
        every = RTL_THROTTLE_MAX_CHECK_CYCLES;
    t->check_every = every ? (uint32_t)every : 1u;
    t->until_check = t->check_every;
    t->mark_ns = now_ns;
}

bool rtl_throttle_count_cycle(struct rtl_throttle *t)
{
    if (!t->max_cycles_per_s)
        return false;
    if (t->cycles_since_mark != UINT64_MAX)
        t->cycles_since_mark++;
    if (--t->until_check > 0)
        return false;
    t->until_check = t->check_every;
    return true;
}

/* Wall time `cycles` take at the cap, rounded up (so a sleep to it keeps
 * the cap exactly), saturated. 128 bits: cycles * 10^9 needs up to 94. */
static uint64_t cycles_at_cap_ns(const struct rtl_throttle *t, uint64_t cycles)
{
    unsigned __int128 cap = t->max_cycles_per_s;
    unsigned __int128 ns = ((unsigned __int128)cycles * NS_PER_S + cap - 1) / cap;
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

uint64_t rtl_throttle_sleep_ns(struct rtl_throttle *t, uint64_t now_ns)
{
    if (!t->max_cycles_per_s)
        return 0;
    uint64_t elapsed_ns = now_ns > t->mark_ns ? now_ns - t->mark_ns : 0;
    uint64_t due_ns = cycles_at_cap_ns(t, t->cycles_since_mark);
    if (due_ns > elapsed_ns) {
        uint64_t sleep_ns = due_ns - elapsed_ns;
        return sleep_ns < RTL_THROTTLE_MAX_SLEEP_NS ? sleep_ns : RTL_THROTTLE_MAX_SLEEP_NS;
    }
    /* Behind the cap (the design simulates slower than it, or a sleep ran
     * long): keep up to one check's worth of credit, drop the rest so no
     * burst above the cap follows. */
    if (elapsed_ns - due_ns > cycles_at_cap_ns(t, t->check_every))
        rtl_throttle_mark(t, now_ns);
    return 0;
}

void rtl_throttle_mark(struct rtl_throttle *t, uint64_t now_ns)
{
    t->mark_ns = now_ns;
    t->cycles_since_mark = 0;
    t->until_check = t->check_every;
}
