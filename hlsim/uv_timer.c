/* Model timers on libuv (see hlsim_uv.h). */
#include <stdlib.h>

#include "hlsim_uv.h"
#include "tlpb/wire.h"

struct model_timer {
    uv_timer_t handle;
    void (*fire)(void *arg);
    void *arg;
    uint64_t due_ns; /* tlpb_now_ns() when it may fire */
};

/* libuv counts whole milliseconds from the loop's cached time: round up and
 * refresh that time when starting, and should it still fire early, wait
 * for the rest. */
static void arm(struct model_timer *t, uint64_t delay_ns);

static void model_timer_cb(uv_timer_t *handle)
{
    struct model_timer *t = handle->data;
    uint64_t now = tlpb_now_ns();
    if (now < t->due_ns) {
        arm(t, t->due_ns - now);
        return;
    }
    t->fire(t->arg);
}

static void arm(struct model_timer *t, uint64_t delay_ns)
{
    uv_update_time(t->handle.loop);
    uint64_t ms = delay_ns / 1000000u + (delay_ns % 1000000u != 0);
    uv_timer_start(&t->handle, model_timer_cb, ms, 0);
}

void *hlsim_uv_timer_create(uv_loop_t *loop, void (*fire)(void *arg), void *arg)
{
    struct model_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    uv_timer_init(loop, &t->handle);
    t->handle.data = t;
    t->fire = fire;
    t->arg = arg;
    return t;
}

void hlsim_uv_timer_start(void *timer, uint64_t delay_ns)
{
    struct model_timer *t = timer;
    uint64_t now = tlpb_now_ns();
    t->due_ns = delay_ns > UINT64_MAX - now ? UINT64_MAX : now + delay_ns;
    arm(t, delay_ns);
}

void hlsim_uv_timer_stop(void *timer)
{
    struct model_timer *t = timer;
    uv_timer_stop(&t->handle);
}

static void free_on_close(uv_handle_t *handle)
{
    free(handle->data);
}

void hlsim_uv_timer_destroy(void *timer)
{
    struct model_timer *t = timer;
    uv_close((uv_handle_t *)&t->handle, free_on_close);
}
