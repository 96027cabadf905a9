/* The in-process hlsim backend: a model shared object loaded with dlopen,
 * and the environment the SDK runs in (the bridge's libuv loop). This is the
 * fast path: a host request reaches the model with no extra socket hop.
 * The model's time is a simulated clock (hlsim_simclock.h): free-running,
 * or coupled to the host's and advanced by its grants. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"
#include "hlsim_simclock.h"
#include "hlsim_uv.h"

/* What the SDK's environment operations get: the device, and the clock
 * the model runs on. */
struct model_env {
    struct device *device;
    hlsim_simclock *clock;
};

static struct model_env *model_env_of(struct device *d)
{
    return d->hlsim ? hlsim_device_env(d->hlsim) : NULL;
}

/* ---- a crash inside a model ---------------------------------------------------- */

/* Which model operation runs now (set around every call the SDK makes into
 * the model), for the fatal-signal handler. */
static struct device *volatile model_device;
static const char *volatile model_callback;

static void env_model_callback(void *env, const char *callback)
{
    struct model_env *e = env;
    model_device = callback ? e->device : NULL;
    model_callback = callback;
}

static void write_stderr(const char *text)
{
    size_t left = strlen(text);
    while (left > 0) {
        ssize_t n = write(STDERR_FILENO, text, left);
        if (n <= 0)
            return;
        text += n;
        left -= (size_t)n;
    }
}

static const char *fatal_signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGABRT:
        return "SIGABRT";
    }
    return "fatal signal";
}

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define FATAL_SIGNAL_COUNT (sizeof(fatal_signals) / sizeof(fatal_signals[0]))
static struct sigaction previous_action[FATAL_SIGNAL_COUNT];

/* Async-signal-safe: write(2) only. Inside a model: say which, then die of
 * the same signal with the default action (SA_RESETHAND restored it on
 * entry; the signal stays blocked until the handler returns, and a faulting
 * instruction runs again anyway). Outside: the handler that was there
 * before (a sanitizer's, or the default) takes the signal as if we had
 * never been installed. */
static void fatal_signal_handler(int sig, siginfo_t *info, void *context)
{
    struct device *d = model_device;
    const char *callback = model_callback;

    if (!d || !callback) {
        for (size_t i = 0; i < FATAL_SIGNAL_COUNT; i++)
            if (fatal_signals[i] == sig)
                sigaction(sig, &previous_action[i], NULL);
        /* A fault happens again when the instruction is retried; a signal
         * that was sent (abort(), kill) must be sent again. */
        if (info->si_code <= 0)
            raise(sig);
        return;
    }
    write_stderr("tlpbridged error: model ");
    write_stderr(d->model_file ? d->model_file : "?");
    write_stderr(" (device ");
    write_stderr(d->cfg->name);
    write_stderr(") crashed in ");
    write_stderr(callback);
    write_stderr(": ");
    write_stderr(fatal_signal_name(sig));
    write_stderr("\n");
    raise(sig);
}

/* Once, when the first in-process model is loaded. An alternate stack, so
 * a model that overflows its stack is still named. */
static void install_fatal_signal_handler(void)
{
    static bool installed;
    static char alt_stack[64 * 1024];

    if (installed)
        return;
    installed = true;
    stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof(alt_stack)};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = fatal_signal_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
    for (size_t i = 0; i < FATAL_SIGNAL_COUNT; i++)
        sigaction(fatal_signals[i], &sa, &previous_action[i]);
}

/* ---- the SDK's environment -------------------------------------------------------- */

static int env_send_tlp(void *env, const struct tlpb_tlp *tlp)
{
    struct model_env *e = env;
    struct device *d = e->device;
    /* Coupled, output is never refused: a held TLP would leave after the
     * REACHED that says it was sent, at a time that depends on the host's
     * reading. The host drains while it waits, and a grant bounds the work. */
    if (!tlpb_tlp_is_completion(tlp->kind) && d->host && !conn_has_room(d->host) &&
        !hlsim_simclock_coupled(e->clock)) {
        d->hlsim_output_blocked = true;
        return -EAGAIN;
    }
    /* Stamped with the model's clock when coupled (rule 3), never with a
     * stamp copied from the request it answers. */
    struct tlpb_tlp out = *tlp;
    out.sim_time_ps = hlsim_simclock_coupled(e->clock) ? hlsim_simclock_time_ps(e->clock) : 0;
    device_upstream_from_model(d, &out);
    hlsim_simclock_sent(e->clock, tlp);
    return 0;
}

static void env_send_interrupt(void *env, Tlpb__InterruptKind kind, unsigned vector)
{
    struct model_env *e = env;
    struct device *d = e->device;
    if (d->backend == BACKEND_HLSIM)
        device_upstream_interrupt_at(d, kind, vector,
                                     hlsim_simclock_coupled(e->clock)
                                         ? hlsim_simclock_time_ps(e->clock) : 0);
}

static uint64_t env_now_ns(void *env)
{
    struct model_env *e = env;
    return hlsim_simclock_env_now_ns(e->clock);
}

static void *env_timer_create(void *env, void (*fire)(void *arg), void *arg)
{
    struct model_env *e = env;
    return hlsim_simclock_env_timer_create(e->clock, fire, arg);
}

/* After each pass of deferred work: write what it queued. */
static void flush_connections(void *arg)
{
    struct bridge *b = arg;
    for (struct conn *c = b->conns; c; c = c->next)
        conn_flush(c);
}

static void env_defer(void *env, void (*fn)(void *arg), void *arg)
{
    struct model_env *e = env;
    hlsim_simclock_env_defer(e->clock, fn, arg);
}

/* A TLP for the model, held until the event loop runs the deferred work. */
struct later_tlp {
    struct device *device;
    struct tlpb_tlp tlp;
    uint8_t payload[];
};

static void downstream_later_run(void *arg)
{
    struct later_tlp *later = arg;
    struct device *d = later->device;
    if (d->backend == BACKEND_HLSIM && d->hlsim)
        hlsim_simclock_host_tlp(model_env_of(d)->clock, &later->tlp); /* at its stamp */
}

void hlsim_backend_downstream_later(struct device *d, const struct tlpb_tlp *tlp)
{
    struct later_tlp *later;
    if (hlsim_uv_defer_alloc(&d->deferred, downstream_later_run, sizeof(*later) + tlp->payload_bytes,
                             (void **)&later) != 0) {
        bridge_log(TLPB_LOG_ERROR, "device %s: out of memory queueing a TLP for the model",
                   d->cfg->name);
        return;
    }
    later->device = d;
    later->tlp = *tlp;
    if (tlp->payload_bytes) {
        memcpy(later->payload, tlp->payload, tlp->payload_bytes);
        later->tlp.payload = later->payload;
    }
}

void hlsim_backend_downstream(struct device *d, const struct tlpb_tlp *tlp)
{
    struct model_env *e = model_env_of(d);
    if (e && hlsim_simclock_coupled(e->clock))
        hlsim_backend_downstream_later(d, tlp); /* behind what is queued, then at its stamp */
    else
        hlsim_device_receive_tlp(d->hlsim, tlp);
}

/* A host reset, behind the TLPs queued for the model before it. */
struct later_reset {
    struct device *device;
    enum hlsim_reset_kind kind;
    uint64_t stamp_ps;
};

static void reset_later_run(void *arg)
{
    struct later_reset *r = arg;
    struct model_env *e = model_env_of(r->device);
    if (r->device->backend == BACKEND_HLSIM && e)
        hlsim_simclock_host_reset(e->clock, r->stamp_ps, r->kind);
}

void hlsim_backend_reset(struct device *d, enum hlsim_reset_kind kind, uint64_t stamp_ps)
{
    struct model_env *e = model_env_of(d);
    struct later_reset *r;
    if (!e || !hlsim_simclock_coupled(e->clock) ||
        hlsim_uv_defer_alloc(&d->deferred, reset_later_run, sizeof(*r), (void **)&r) != 0) {
        hlsim_device_reset(d->hlsim, kind);
        return;
    }
    r->device = d;
    r->kind = kind;
    r->stamp_ps = stamp_ps;
}

void hlsim_backend_time_mode(struct device *d, bool coupled, uint64_t host_time_ps)
{
    struct model_env *e = model_env_of(d);
    if (!e)
        return;
    if (coupled) {
        hlsim_simclock_couple(e->clock, host_time_ps);
    } else {
        hlsim_simclock_free_run(e->clock);
    }
    hlsim_device_set_time_coupled(d->hlsim, coupled);
}

/* A grant, behind the TLPs queued for the model before it. */
struct later_grant {
    struct device *device;
    uint64_t sync_id;
    uint64_t until_ps;
};

static void grant_later_run(void *arg)
{
    struct later_grant *g = arg;
    struct model_env *e = model_env_of(g->device);
    if (g->device->backend == BACKEND_HLSIM && e)
        hlsim_simclock_grant(e->clock, g->sync_id, g->until_ps);
    else
        device_time_reached(g->device, g->sync_id, g->until_ps, true, 0, 0);
}

void hlsim_backend_time_grant(struct device *d, uint64_t sync_id, uint64_t until_ps)
{
    struct later_grant *g;
    if (!d->deferred.loop ||
        hlsim_uv_defer_alloc(&d->deferred, grant_later_run, sizeof(*g), (void **)&g) != 0) {
        /* Without a model (or memory) there is nothing to simulate. */
        device_time_reached(d, sync_id, until_ps, true, 0, 0);
        return;
    }
    g->device = d;
    g->sync_id = sync_id;
    g->until_ps = until_ps;
}

static void clock_reached(void *env, uint64_t sync_id, uint64_t t_ps, bool idle,
                          uint64_t next_event_ps)
{
    struct model_env *e = env;
    device_time_reached(e->device, sync_id, t_ps, idle, next_event_ps, 0);
}

static const struct hlsim_simclock_ops bridge_clock_ops = {
    .reached = clock_reached,
};

static void env_log(void *env, int level, const char *message)
{
    struct model_env *e = env;
    bridge_log((enum tlpb_log_level)level, "model %s: %s", e->device->cfg->name, message);
}

static const struct hlsim_env_ops bridge_env_ops = {
    .send_tlp = env_send_tlp,
    .send_interrupt = env_send_interrupt,
    .now_ns = env_now_ns,
    .timer_create = env_timer_create,
    .timer_start = hlsim_simclock_env_timer_start,
    .timer_stop = hlsim_simclock_env_timer_stop,
    .timer_destroy = hlsim_simclock_env_timer_destroy,
    .defer = env_defer,
    .log = env_log,
    .model_callback = env_model_callback,
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
    if (!d->deferred.loop)
        hlsim_uv_defer_init(&d->deferred, d->bridge->loop, flush_connections, d->bridge);
    install_fatal_signal_handler();
    char *file = strdup(path);
    free(d->model_file);
    d->model_file = file;
    struct hlsim_device_options opts = {
        .unsplit_dma = d->cfg->fast_dma,
        .bus_device_function = d->shadow.bus_device_function ? d->shadow.bus_device_function : 0x0100,
        .dma_timeout_ns = 0,
    };
    struct model_env *e = calloc(1, sizeof(*e));
    if (e) {
        e->device = d;
        e->clock = hlsim_simclock_create(d->bridge->loop, &d->deferred, &bridge_clock_ops, e);
    }
    if (!e || !e->clock) {
        snprintf(err, err_size, "device %s: out of memory", d->cfg->name);
        free(e);
        dlclose(handle);
        free(d->model_file);
        d->model_file = NULL;
        return -1;
    }
    hlsim_device *dev = hlsim_device_create(ops, d->cfg->model_args, &opts, &bridge_env_ops, e,
                                            err, err_size);
    if (!dev) {
        hlsim_uv_defer_drop_all(&d->deferred);
        hlsim_simclock_destroy(e->clock);
        free(e);
        dlclose(handle);
        free(d->model_file);
        d->model_file = NULL;
        return -1;
    }
    hlsim_simclock_set_device(e->clock, dev);
    d->model_handle = handle;
    d->model_ops = ops;
    d->hlsim = dev;
    bridge_log(TLPB_LOG_INFO, "device %s: loaded model %s from %s (%s DMA)", d->cfg->name,
               ops->name ? ops->name : "?", path, d->cfg->fast_dma ? "fast, unsplit" : "strict");
    return 0;
}

void hlsim_backend_unload(struct device *d)
{
    if (d->hlsim) {
        struct model_env *e = model_env_of(d);
        hlsim_simclock_abandon(e->clock);
        hlsim_simclock_set_device(e->clock, NULL);
        hlsim_device_destroy(d->hlsim);
        d->hlsim = NULL;
        hlsim_simclock_destroy(e->clock);
        free(e);
    }
    /* Deferred work belongs to the instance gone: drop it, never run it.
     * The SDK's calls point at the destroyed instance, and a TLP held for
     * the model (a completion to one of its DMA reads) must not reach a
     * model loaded after it. Dropping frees what each call holds. */
    hlsim_uv_defer_drop_all(&d->deferred);
    if (d->model_handle) {
        dlclose(d->model_handle);
        d->model_handle = NULL;
    }
    d->model_ops = NULL;
    free(d->model_file);
    d->model_file = NULL;
}

const char *hlsim_backend_dma_context(struct device *d, bool write, uint64_t address)
{
    if (!d->hlsim || d->backend != BACKEND_HLSIM)
        return NULL;
    return hlsim_device_dma_context(d->hlsim, write, address);
}
