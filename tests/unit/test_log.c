/* The shared log helpers: escaping peer text and the per-site rate limit.
 * Times are passed in, so the interval logic is tested without waiting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tlpb/log.h"

#define MS 1000000ull

static void test_escape_control_and_backslash(void **state)
{
    (void)state;
    char out[128];
    assert_string_equal(tlpb_log_escape(out, sizeof(out), "plain text 1.2", 100), "plain text 1.2");
    assert_string_equal(tlpb_log_escape(out, sizeof(out), "a\nb\x1b[31m\\", 100),
                        "a\\x0ab\\x1b[31m\\\\");
    assert_string_equal(tlpb_log_escape(out, sizeof(out), "\xff\x7f\t", 100), "\\xff\\x7f\\x09");
    assert_string_equal(tlpb_log_escape(out, sizeof(out), "", 100), "");
    assert_string_equal(tlpb_log_escape(out, sizeof(out), NULL, 100), "");
}

static void test_escape_bounded(void **state)
{
    (void)state;
    char out[128];
    assert_string_equal(tlpb_log_escape(out, sizeof(out), "abcdefgh", 4), "abcd...");
    /* The output buffer bounds it too, never splitting an escape. */
    char small[10];
    assert_string_equal(tlpb_log_escape(small, sizeof(small), "ab\n\n\n\n", 100), "ab\\x0a...");
    assert_true(strlen(small) < sizeof(small));
    char tiny[1];
    tlpb_log_escape(tiny, sizeof(tiny), "abc", 100);
    assert_int_equal(tiny[0], '\0');
}

static void test_needs_escape(void **state)
{
    (void)state;
    assert_false(tlpb_log_needs_escape("ordinary line \\ with backslash"));
    assert_true(tlpb_log_needs_escape("two\nlines"));
    assert_true(tlpb_log_needs_escape("\x1b[0m"));
}

static void test_level_names(void **state)
{
    (void)state;
    assert_string_equal(tlpb_log_level_name(TLPB_LOG_WARN), "warn");
    assert_string_equal(tlpb_log_level_name(99), "?");
    assert_int_equal(tlpb_log_level_from_name("debug"), TLPB_LOG_DEBUG);
    assert_int_equal(tlpb_log_level_from_name("loud"), -1);
}

struct emitted {
    unsigned count;
    int level;
    char line[400];
};

static void collect(int level, const char *line, void *opaque)
{
    struct emitted *e = opaque;
    e->count++;
    e->level = level;
    snprintf(e->line, sizeof(e->line), "%s", line);
}

static void test_rate_limit_burst_then_summary(void **state)
{
    (void)state;
    static struct tlpb_log_site site = {.file = "x.c", .line = 1};
    uint64_t t0 = 1000 * MS;
    unsigned admitted = 0;
    for (unsigned i = 0; i < 300; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "outstanding read %u", i);
        admitted += tlpb_log_site_admit(&site, t0 + i, TLPB_LOG_WARN, msg);
    }
    assert_int_equal(admitted, TLPB_LOG_BURST);
    assert_true(tlpb_log_summaries_owed());
    /* Not yet due within the interval. */
    struct emitted e = {0};
    assert_int_equal(tlpb_log_flush_summaries(t0 + 1000 * MS, false, collect, &e), 1);
    assert_int_equal(e.count, 0);
    /* Due after it: one line with the last message and the count. */
    assert_int_equal(tlpb_log_flush_summaries(t0 + TLPB_LOG_INTERVAL_MS * MS, false, collect, &e), 0);
    assert_int_equal(e.count, 1);
    assert_int_equal(e.level, TLPB_LOG_WARN);
    assert_non_null(strstr(e.line, "outstanding read 299"));
    assert_non_null(strstr(e.line, "and 290 more like it"));
    assert_false(tlpb_log_summaries_owed());
    /* The summary opened a new interval: one line fewer fits in it. */
    uint64_t t1 = t0 + TLPB_LOG_INTERVAL_MS * MS + 1;
    admitted = 0;
    for (unsigned i = 0; i < TLPB_LOG_BURST; i++)
        admitted += tlpb_log_site_admit(&site, t1, TLPB_LOG_WARN, "again");
    assert_int_equal(admitted, TLPB_LOG_BURST - 1);
    e.count = 0;
    tlpb_log_flush_summaries(t1, true, collect, &e);
    assert_int_equal(e.count, 1);
    assert_non_null(strstr(e.line, "and 1 more like it"));
}

static void test_rate_limit_quiet_site_unlimited(void **state)
{
    (void)state;
    static struct tlpb_log_site site = {.file = "y.c", .line = 2};
    /* A message every interval never gets suppressed. */
    for (unsigned i = 0; i < 100; i++)
        assert_true(tlpb_log_site_admit(&site, (uint64_t)i * TLPB_LOG_INTERVAL_MS * MS + 1,
                                        TLPB_LOG_ERROR, "rare"));
    assert_false(tlpb_log_summaries_owed());
    /* Informational lines get the larger burst. */
    static struct tlpb_log_site info = {.file = "z.c", .line = 3};
    unsigned admitted = 0;
    for (unsigned i = 0; i < 200; i++)
        admitted += tlpb_log_site_admit(&info, 5, TLPB_LOG_INFO, "connected");
    assert_int_equal(admitted, TLPB_LOG_BURST_INFO);
    struct emitted e = {0};
    tlpb_log_flush_summaries(6, true, collect, &e);
    assert_int_equal(e.count, 1);
    assert_non_null(strstr(e.line, "and 150 more like it"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_control_and_backslash),
        cmocka_unit_test(test_escape_bounded),
        cmocka_unit_test(test_needs_escape),
        cmocka_unit_test(test_level_names),
        cmocka_unit_test(test_rate_limit_burst_then_summary),
        cmocka_unit_test(test_rate_limit_quiet_site_unlimited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
