/* Model timers on libuv (see hlsim_uv.h). */
#include <stdlib.h>

#include "hlsim_uv.h"

struct model_timer {
    uv_timer_t handle;
    void (*fire)(void *arg);
    void *arg;
};

static void model_timer_cb(uv_timer_t *handle)
{
    struct model_timer *t = handle->data;
    t->fire(t->arg);
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
    /* libuv counts milliseconds: round up, never fire early */
    uv_timer_start(&t->handle, model_timer_cb, (delay_ns + 999999u) / 1000000u, 0);
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
