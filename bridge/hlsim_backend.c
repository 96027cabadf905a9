/* The in-process hlsim backend: a model shared object loaded with dlopen,
 * and the environment the SDK runs in (the bridge's libuv loop). This is the
 * fast path: a host request reaches the model with no extra socket hop. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "hlsim_uv.h"

struct deferred_call {
    struct deferred_call *next;
    void (*fn)(void *arg);
    void *arg;
    struct device *device;
    struct tlpb_tlp tlp;      /* for hlsim_backend_deliver_later */
    uint8_t payload[];
};

static int env_send_tlp(void *env, const struct tlpb_tlp *tlp)
{
    struct device *d = env;
    if (!tlpb_tlp_is_completion(tlp->kind) && d->host && !conn_has_room(d->host)) {
        d->hlsim_output_blocked = true;
        return -EAGAIN;
    }
    device_tlp_from_model(d, tlp);
    return 0;
}

static void env_send_interrupt(void *env, int kind, unsigned vector)
{
    struct device *d = env;
    if (d->backend == BACKEND_HLSIM)
        device_interrupt_from_device(d, (Tlpb__InterruptKind)kind, vector);
}

static uint64_t env_now_ns(void *env)
{
    return tlpb_now_ns();
}

static void *env_timer_create(void *env, void (*fire)(void *arg), void *arg)
{
    struct device *d = env;
    return hlsim_uv_timer_create(d->bridge->loop, fire, arg);
}

static void run_deferred(uv_idle_t *idle)
{
    struct device *d = idle->data;
    /* Only what was queued before this pass: work that queues more work
     * runs on the next loop iteration, after I/O has had its turn. */
    struct deferred_call *batch = d->deferred_head;
    d->deferred_head = d->deferred_tail = NULL;
    while (batch) {
        struct deferred_call *call = batch;
        batch = call->next;
        call->fn(call->arg);
        free(call);
    }
    if (!d->deferred_head)
        uv_idle_stop(&d->deferred_idle);
    for (struct conn *c = d->bridge->conns; c; c = c->next)
        conn_flush(c);
}

static void enqueue(struct device *d, struct deferred_call *call)
{
    if (!d->deferred_idle_init) {
        uv_idle_init(d->bridge->loop, &d->deferred_idle);
        d->deferred_idle.data = d;
        d->deferred_idle_init = true;
    }
    call->next = NULL;
    if (d->deferred_tail)
        d->deferred_tail->next = call;
    else
        d->deferred_head = call;
    d->deferred_tail = call;
    uv_idle_start(&d->deferred_idle, run_deferred);
}

static void env_defer(void *env, void (*fn)(void *arg), void *arg)
{
    struct device *d = env;
    struct deferred_call *call = calloc(1, sizeof(*call));
    if (!call) {
        bridge_log(LOG_ERROR, "device %s: out of memory deferring model work", d->cfg->name);
        return;
    }
    call->fn = fn;
    call->arg = arg;
    enqueue(d, call);
}

static void deliver_now(void *arg)
{
    struct deferred_call *call = arg;
    struct device *d = call->device;
    if (d->backend == BACKEND_HLSIM && d->hlsim)
        hlsim_device_receive_tlp(d->hlsim, &call->tlp);
}

void hlsim_backend_deliver_later(struct device *d, const struct tlpb_tlp *tlp)
{
    struct deferred_call *call = calloc(1, sizeof(*call) + tlp->payload_bytes);
    if (!call)
        return;
    call->device = d;
    call->tlp = *tlp;
    if (tlp->payload_bytes) {
        memcpy(call->payload, tlp->payload, tlp->payload_bytes);
        call->tlp.payload = call->payload;
    }
    /* run_deferred frees the call after fn returns; fn gets the call. */
    call->fn = deliver_now;
    call->arg = call;
    enqueue(d, call);
}

static void env_log(void *env, int level, const char *message)
{
    struct device *d = env;
    bridge_log((enum log_level)level, "model %s: %s", d->cfg->name, message);
}

static const struct hlsim_env_ops bridge_env_ops = {
    .send_tlp = env_send_tlp,
    .send_interrupt = env_send_interrupt,
    .now_ns = env_now_ns,
    .timer_create = env_timer_create,
    .timer_start = hlsim_uv_timer_start,
    .timer_stop = hlsim_uv_timer_stop,
    .timer_destroy = hlsim_uv_timer_destroy,
    .defer = env_defer,
    .log = env_log,
};

int hlsim_backend_load(struct device *d, const char *path, char *err, size_t err_size)
{
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(err, err_size, "device %s: cannot load model: %s", d->cfg->name, dlerror());
        return -1;
    }
    const struct hlsim_model_ops *ops = dlsym(handle, HLSIM_MODEL_SYMBOL);
    if (!ops) {
        snprintf(err, err_size, "device %s: %s exports no '%s' symbol", d->cfg->name, path,
                 HLSIM_MODEL_SYMBOL);
        dlclose(handle);
        return -1;
    }
    struct hlsim_device_options opts = {
        .unsplit_dma = d->cfg->fast_dma,
        .bus_device_function = d->shadow.bus_device_function ? d->shadow.bus_device_function : 0x0100,
        .dma_timeout_ns = 0,
    };
    hlsim_device *dev = hlsim_device_create(ops, d->cfg->model_args, &opts, &bridge_env_ops, d,
                                            err, err_size);
    if (!dev) {
        dlclose(handle);
        return -1;
    }
    d->model_handle = handle;
    d->model_ops = ops;
    d->hlsim = dev;
    bridge_log(LOG_INFO, "device %s: loaded model %s from %s (%s DMA)", d->cfg->name,
               ops->name ? ops->name : "?", path, d->cfg->fast_dma ? "fast, unsplit" : "strict");
    return 0;
}

void hlsim_backend_unload(struct device *d)
{
    if (d->hlsim) {
        hlsim_device_destroy(d->hlsim);
        d->hlsim = NULL;
    }
    /* Deferred work belongs to the instance gone: run it now rather than
     * drop it. With the instance destroyed each call only releases what it
     * holds (the SDK's calls free their token and see no device; TLP
     * deliveries see no model). Dropping them would leak the SDK's tokens. */
    struct deferred_call *call = d->deferred_head;
    d->deferred_head = d->deferred_tail = NULL;
    while (call) {
        struct deferred_call *next = call->next;
        call->fn(call->arg);
        free(call);
        call = next;
    }
    if (d->deferred_idle_init)
        uv_idle_stop(&d->deferred_idle);
    if (d->model_handle) {
        dlclose(d->model_handle);
        d->model_handle = NULL;
    }
    d->model_ops = NULL;
}
