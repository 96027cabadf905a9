/* The deferred-call queue behind hlsim_env_ops.defer, on a real libuv
 * loop: order, one pass at a time (work queued by a call waits for the next
 * iteration), storage handed to the call and freed, calls dropped without
 * running, the after-pass hook. Leaks show up under ASan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hlsim_uv.h"

struct log {
    char calls[32];
    unsigned n;
    unsigned passes;
    struct hlsim_uv_defer_queue *q;
};

static struct log seen;

static void record(void *arg)
{
    if (seen.n < sizeof(seen.calls) - 1)
        seen.calls[seen.n++] = *(const char *)arg;
}

static void record_and_queue_more(void *arg)
{
    record(arg);
    assert_int_equal(hlsim_uv_defer(seen.q, record, "z"), 0);
}

static void count_pass(void *arg)
{
    seen.passes++;
}

static void record_storage(void *arg)
{
    const char *text = arg;
    record((void *)&text[1]); /* the second byte the caller filled in */
}

static void run_one_iteration(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_NOWAIT);
}

static void calls_run_in_order_one_pass_at_a_time(void **state)
{
    uv_loop_t loop;
    struct hlsim_uv_defer_queue q;
    memset(&seen, 0, sizeof(seen));
    seen.q = &q;
    assert_int_equal(uv_loop_init(&loop), 0);
    hlsim_uv_defer_init(&q, &loop, count_pass, NULL);

    assert_int_equal(hlsim_uv_defer(&q, record, "a"), 0);
    assert_int_equal(hlsim_uv_defer(&q, record_and_queue_more, "b"), 0);
    void *storage = NULL;
    assert_int_equal(hlsim_uv_defer_alloc(&q, record_storage, 2, &storage), 0);
    assert_non_null(storage);
    memcpy(storage, "xc", 2);
    assert_true(hlsim_uv_defer_pending(&q));
    assert_int_equal(seen.n, 0); /* nothing runs from inside the caller */

    run_one_iteration(&loop);
    seen.calls[seen.n] = '\0';
    assert_string_equal(seen.calls, "abc"); /* "z" was queued during the pass */
    assert_int_equal(seen.passes, 1);
    assert_true(hlsim_uv_defer_pending(&q));

    run_one_iteration(&loop);
    seen.calls[seen.n] = '\0';
    assert_string_equal(seen.calls, "abcz");
    assert_int_equal(seen.passes, 2);
    assert_false(hlsim_uv_defer_pending(&q));

    hlsim_uv_defer_close(&q);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void dropped_calls_never_run(void **state)
{
    uv_loop_t loop;
    struct hlsim_uv_defer_queue q;
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(uv_loop_init(&loop), 0);
    hlsim_uv_defer_init(&q, &loop, NULL, NULL);

    assert_int_equal(hlsim_uv_defer(&q, record, "a"), 0);
    void *storage = NULL;
    assert_int_equal(hlsim_uv_defer_alloc(&q, record_storage, 4096, &storage), 0);
    hlsim_uv_defer_drop_all(&q);
    assert_false(hlsim_uv_defer_pending(&q));
    run_one_iteration(&loop);
    assert_int_equal(seen.n, 0);

    /* The queue goes on working after a drop. */
    assert_int_equal(hlsim_uv_defer(&q, record, "d"), 0);
    run_one_iteration(&loop);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.calls[0], 'd');

    /* Closing drops too; the loop then has nothing left. */
    assert_int_equal(hlsim_uv_defer(&q, record, "e"), 0);
    hlsim_uv_defer_close(&q);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(seen.n, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(calls_run_in_order_one_pass_at_a_time),
        cmocka_unit_test(dropped_calls_never_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
