/* The deferred-call queue on libuv (see hlsim_uv.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hlsim_uv.h"

struct hlsim_uv_call {
    STAILQ_ENTRY(hlsim_uv_call) link;
    hlsim_uv_call_cb fn;
    void *arg;
    max_align_t storage[]; /* hlsim_uv_defer_alloc */
};

static void run_pass(uv_idle_t *idle)
{
    struct hlsim_uv_defer_queue *q = idle->data;
    struct hlsim_uv_call_list batch = STAILQ_HEAD_INITIALIZER(batch);
    struct hlsim_uv_call *call;

    STAILQ_CONCAT(&batch, &q->calls); /* what is queued now, and no more */
    while ((call = STAILQ_FIRST(&batch)) != NULL) {
        STAILQ_REMOVE_HEAD(&batch, link);
        call->fn(call->arg);
        free(call);
    }
    if (STAILQ_EMPTY(&q->calls))
        uv_idle_stop(&q->idle);
    if (q->after_pass)
        q->after_pass(q->after_pass_arg);
}

void hlsim_uv_defer_init(struct hlsim_uv_defer_queue *q, uv_loop_t *loop,
                         hlsim_uv_call_cb after_pass, void *after_pass_arg)
{
    q->loop = loop;
    STAILQ_INIT(&q->calls);
    q->after_pass = after_pass;
    q->after_pass_arg = after_pass_arg;
    uv_idle_init(loop, &q->idle);
    q->idle.data = q;
}

static struct hlsim_uv_call *queue_call(struct hlsim_uv_defer_queue *q, hlsim_uv_call_cb fn,
                                        size_t storage_bytes)
{
    if (storage_bytes > SIZE_MAX - sizeof(struct hlsim_uv_call))
        return NULL;
    /* Not calloc: the storage is the caller's to fill (a deferred 64 KiB
     * completion would be cleared only to be overwritten). */
    struct hlsim_uv_call *call = malloc(sizeof(*call) + storage_bytes);
    if (!call)
        return NULL;
    memset(call, 0, sizeof(*call));
    call->fn = fn;
    STAILQ_INSERT_TAIL(&q->calls, call, link);
    uv_idle_start(&q->idle, run_pass);
    return call;
}

int hlsim_uv_defer(struct hlsim_uv_defer_queue *q, hlsim_uv_call_cb fn, void *arg)
{
    struct hlsim_uv_call *call = queue_call(q, fn, 0);
    if (!call)
        return -ENOMEM;
    call->arg = arg;
    return 0;
}

int hlsim_uv_defer_alloc(struct hlsim_uv_defer_queue *q, hlsim_uv_call_cb fn, size_t bytes,
                         void **storage)
{
    struct hlsim_uv_call *call = queue_call(q, fn, bytes);
    *storage = call ? call->storage : NULL;
    if (!call)
        return -ENOMEM;
    call->arg = call->storage;
    return 0;
}

bool hlsim_uv_defer_pending(const struct hlsim_uv_defer_queue *q)
{
    return q->loop && !STAILQ_EMPTY(&q->calls);
}

void hlsim_uv_defer_drop_all(struct hlsim_uv_defer_queue *q)
{
    struct hlsim_uv_call *call;

    if (!q->loop)
        return;
    while ((call = STAILQ_FIRST(&q->calls)) != NULL) {
        STAILQ_REMOVE_HEAD(&q->calls, link);
        free(call);
    }
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
