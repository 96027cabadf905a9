/* The deferred-call queue on libuv (see hlsim_uv.h). */
#include <errno.h>
#include <stdlib.h>

#include "hlsim_uv.h"

struct hlsim_uv_call {
    struct hlsim_uv_call *next;
    hlsim_uv_call_cb fn;
    void *arg;
    max_align_t storage[]; /* hlsim_uv_defer_alloc */
};

static void run_pass(uv_idle_t *idle)
{
    struct hlsim_uv_defer_queue *q = idle->data;
    struct hlsim_uv_call *batch = q->head;

    q->head = q->tail = NULL;
    while (batch) {
        struct hlsim_uv_call *call = batch;
        batch = call->next;
        call->fn(call->arg);
        free(call);
    }
    if (!q->head)
        uv_idle_stop(&q->idle);
    if (q->after_pass)
        q->after_pass(q->after_pass_arg);
}

void hlsim_uv_defer_init(struct hlsim_uv_defer_queue *q, uv_loop_t *loop,
                         hlsim_uv_call_cb after_pass, void *after_pass_arg)
{
    q->loop = loop;
    q->head = q->tail = NULL;
    q->after_pass = after_pass;
    q->after_pass_arg = after_pass_arg;
    uv_idle_init(loop, &q->idle);
    q->idle.data = q;
}

static void enqueue(struct hlsim_uv_defer_queue *q, struct hlsim_uv_call *call)
{
    call->next = NULL;
    if (q->tail)
        q->tail->next = call;
    else
        q->head = call;
    q->tail = call;
    uv_idle_start(&q->idle, run_pass);
}

int hlsim_uv_defer(struct hlsim_uv_defer_queue *q, hlsim_uv_call_cb fn, void *arg)
{
    struct hlsim_uv_call *call = calloc(1, sizeof(*call));
    if (!call)
        return -ENOMEM;
    call->fn = fn;
    call->arg = arg;
    enqueue(q, call);
    return 0;
}

int hlsim_uv_defer_alloc(struct hlsim_uv_defer_queue *q, hlsim_uv_call_cb fn, size_t bytes,
                         void **storage)
{
    *storage = NULL;
    if (bytes > SIZE_MAX - sizeof(struct hlsim_uv_call))
        return -ENOMEM;
    struct hlsim_uv_call *call = calloc(1, sizeof(*call) + bytes);
    if (!call)
        return -ENOMEM;
    call->fn = fn;
    call->arg = call->storage;
    *storage = call->storage;
    enqueue(q, call);
    return 0;
}

bool hlsim_uv_defer_pending(const struct hlsim_uv_defer_queue *q)
{
    return q->head != NULL;
}

void hlsim_uv_defer_drop_all(struct hlsim_uv_defer_queue *q)
{
    if (!q->loop)
        return;
    while (q->head) {
        struct hlsim_uv_call *call = q->head;
        q->head = call->next;
        free(call);
    }
    q->tail = NULL;
    uv_idle_stop(&q->idle);
}

void hlsim_uv_defer_close(struct hlsim_uv_defer_queue *q)
{
    if (!q->loop)
        return;
    hlsim_uv_defer_drop_all(q);
    if (!uv_is_closing((uv_handle_t *)&q->idle))
        uv_close((uv_handle_t *)&q->idle, NULL);
}
