/* hlsim-run: a behavioural model in its own simulator process, attached to
 * tlpbridged over its socket as role SIMULATOR for one device.
 *
 *   hlsim-run --socket PATH|tcp:HOST:PORT --device NAME --model libdmacopy.so
 *             [--model-args S] [--fast-dma] [--no-guest-memory] [--log-level N]
 *             [--reconnect] [--max-sim-ns-per-s N]
 *
 * The connection is libtlpbsim's (docs/simulator-api.md); its socket is
 * watched with a libuv poll handle: a readable event reads what is there
 * and the library hands each TLP and reset to the SDK; the output the SDK
 * produces collects in the library's buffer, written once per loop
 * iteration (uv_prepare, just before the loop would block).
 *
 * The model's time is the simulated clock (hlsim_simclock.h): free-running
 * until the bridge sends TIME_SYNC_COUPLED, then advanced only by the
 * host's grants, answered with REACHED (docs/protocol.md "Simulated
 * time").
 *
 * Fast DMA on a unix socket asks for the guest's memory as well
 * (CAP_GUEST_MEMORY): a model DMA that lies in the map the bridge shares is
 * a copy from or to guest memory here, not messages (docs/hlsim.md). */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "hlsim.h"
#include "hlsim_env.h"
#include "hlsim_simclock.h"
#include "hlsim_uv.h"
#include "tlpb/dma.h"
#include "tlpb/guestmem.h"
#include "tlpb_sim.h"

#define READ_BUDGET_BYTES (4u * 1024u * 1024u) /* per readable event, for fairness */
#define RECONNECT_FIRST_MS 500u
#define RECONNECT_MAX_MS 10000u

struct runner {
    /* options */
    const char *address;
    const char *device_name;
    const char *model_path;
    const char *model_args;
    bool fast_dma;
    bool no_guest_memory;      /* fast DMA as messages even on a unix socket */
    bool reconnect;
    int log_level;
    uint64_t max_sim_ns_per_s; /* throttle of busy simulated time; 0: none */

    void *model_handle;
    const struct hlsim_model_ops *ops;

    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    uv_prepare_t flush_prepare;
    struct hlsim_uv_defer_queue deferred;
    uv_timer_t reconnect_timer;
    unsigned reconnect_delay_ms;

    /* the bridge connection */
    tlpb_sim *sim;
    uv_poll_t poll;
    bool poll_open;
    int poll_events;

    hlsim_device *dev;
    hlsim_simclock *clock;
    struct tlpb_dma_scratch dma_scratch; /* DMA reads served from guest memory */
    uint64_t direct_dma_requests, direct_dma_bytes;

    bool stopping;
    int exit_code;
    const char *exit_reason;
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void runner_log(struct runner *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void runner_log(struct runner *r, int level, const char *fmt, ...)
{
    va_list ap;

    if (level > r->log_level)
        return;
    fprintf(stderr, "hlsim-run[%s] %s: ", r->device_name ? r->device_name : "?",
            level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void disconnected(struct runner *r);

/* ---- the SDK's environment -------------------------------------------------- */

/* Output is stamped with the clock when sent (rule 3); the library
 * stamps with what it was told. */
static void stamp_output(struct runner *r)
{
    if (r->clock && hlsim_simclock_coupled(r->clock))
        tlpb_sim_set_time_ps(r->sim, hlsim_simclock_time_ps(r->clock));
}

/* A completion built from guest memory, to the model from the event loop
 * as one from the bridge would come (send_tlp must not call back). */
struct direct_completion {
    struct runner *runner;
    struct tlpb_tlp tlp;
    uint8_t payload[];
};

static void direct_completion_run(void *arg)
{
    struct direct_completion *dc = arg;
    if (dc->runner->clock)
        hlsim_simclock_host_tlp(dc->runner->clock, &dc->tlp);
}

static void direct_completion_queue(void *opaque, struct tlpb_tlp *cpl)
{
    struct runner *r = opaque;
    struct direct_completion *dc;
    if (hlsim_uv_defer_alloc(&r->deferred, direct_completion_run, sizeof(*dc) + cpl->payload_bytes,
                             (void **)&dc) != 0) {
        runner_log(r, HLSIM_LOG_ERROR, "out of memory queueing a DMA completion");
        return;
    }
    dc->runner = r;
    dc->tlp = *cpl;
    if (cpl->payload_bytes) {
        memcpy(dc->payload, cpl->payload, cpl->payload_bytes);
        dc->tlp.payload = dc->payload;
    }
}

static int read_guest_memory(void *opaque, uint64_t addr, void *dst, uint32_t bytes)
{
    struct runner *r = opaque;
    const uint8_t *src = tlpb_sim_guest_memory(r->sim, addr, bytes);
    if (!src)
        return TLPB_CPL_UR;
    memcpy(dst, src, bytes);
    return 0;
}

/* Fast DMA whose whole range lies in the guest memory the bridge shared:
 * a write is copied into it now (so it is in memory before anything the
 * model sends after it, an MSI-X included), a read answered from it with
 * the completions the root complex would build, as the bridge does for an
 * in-process model. Returns false (nothing done) for anything else: it
 * goes as messages. Strict DMA never comes here (no map is granted). */
static bool dma_direct(struct runner *r, const struct tlpb_tlp *tlp)
{
    if ((tlp->kind != TLPB_TLP_MRD && tlp->kind != TLPB_TLP_MWR) || !tlpb_sim_unsplit_dma(r->sim))
        return false;
    uint32_t bytes = tlpb_tlp_request_bytes(tlp);
    uint8_t *mem = tlpb_sim_guest_memory(r->sim, tlpb_tlp_first_byte_address(tlp), bytes);
    if (!mem)
        return false;
    r->direct_dma_requests++;
    r->direct_dma_bytes += bytes;
    if (tlp->kind == TLPB_TLP_MWR) {
        tlpb_guestmem_apply_write(mem, tlp);
        return true;
    }
    tlpb_dma_serve_read(&r->dma_scratch, tlp, 0,
                        tlpb_cfg_max_payload_bytes(hlsim_config(r->dev)), true,
                        read_guest_memory, r, direct_completion_queue, r);
    return true;
}

static int env_send_tlp(void *env, const struct tlpb_tlp *tlp)
{
    struct runner *r = env;

    if (!r->sim || !tlpb_sim_connected(r->sim))
        return tlpb_tlp_is_completion(tlp->kind) ? 0 : -ENOTCONN;
    if (dma_direct(r, tlp))
        return 0;
    stamp_output(r);
    struct tlpb_tlp out = *tlp;
    out.sim_time_ps = 0; /* the library's clock, not a stamp copied from a request */
    int rc = tlpb_sim_send_tlp(r->sim, &out);
    if (rc == 0 && r->clock)
        hlsim_simclock_sent(r->clock, tlp);
    return rc;
}

/* What the model's next DMA is for: to the bridge, ahead of its requests. */
static void env_dma_context(void *env, bool write, uint64_t address, uint32_t length_bytes,
                            const char *text)
{
    struct runner *r = env;

    if (r->sim && tlpb_sim_connected(r->sim))
        tlpb_sim_send_dma_context(r->sim, write, address, length_bytes, text);
}

static void env_send_interrupt(void *env, Tlpb__InterruptKind kind, unsigned vector)
{
    struct runner *r = env;

    if (!r->sim)
        return;
    stamp_output(r);
    tlpb_sim_send_interrupt(r->sim, kind, vector);
}

static uint64_t env_now_ns(void *env)
{
    struct runner *r = env;
    return hlsim_simclock_env_now_ns(r->clock);
}

static void *env_timer_create(void *env, void (*fire)(void *arg), void *arg)
{
    struct runner *r = env;
    return hlsim_simclock_env_timer_create(r->clock, fire, arg);
}

static void env_defer(void *env, void (*fn)(void *arg), void *arg)
{
    struct runner *r = env;
    hlsim_simclock_env_defer(r->clock, fn, arg);
}

static void env_log(void *env, int level, const char *message)
{
    struct runner *r = env;
    runner_log(r, level, "%s: %s", r->ops->name ? r->ops->name : "model", message);
}

static const struct hlsim_env_ops runner_env_ops = {
    .send_tlp = env_send_tlp,
    .send_interrupt = env_send_interrupt,
    .dma_context = env_dma_context,
    .now_ns = env_now_ns,
    .timer_create = env_timer_create,
    .timer_start = hlsim_simclock_env_timer_start,
    .timer_stop = hlsim_simclock_env_timer_stop,
    .timer_destroy = hlsim_simclock_env_timer_destroy,
    .defer = env_defer,
    .log = env_log,
};

/* ---- the simulated clock's side ------------------------------------------------ */

static void clock_reached(void *env, uint64_t sync_id, uint64_t t_ps, bool idle,
                          uint64_t next_event_ps)
{
    struct runner *r = env;

    if (!r->sim)
        return;
    tlpb_sim_set_time_ps(r->sim, t_ps);
    tlpb_sim_send_reached(r->sim, sync_id, t_ps, idle, next_event_ps, 0);
}

static void clock_progress(void *env, uint64_t t_ps)
{
    struct runner *r = env;

    if (r->sim)
        tlpb_sim_send_progress(r->sim, t_ps, 0);
}

static const struct hlsim_simclock_ops runner_clock_ops = {
    .reached = clock_reached,
    .progress = clock_progress,
};

/* ---- the simulator library's callbacks ---------------------------------------- */

static void sim_tlp_cb(void *arg, const struct tlpb_tlp *tlp)
{
    struct runner *r = arg;
    hlsim_simclock_host_tlp(r->clock, tlp);
}

static void sim_reset_cb(void *arg, Tlpb__ResetKind kind)
{
    struct runner *r = arg;
    hlsim_simclock_host_reset(r->clock, tlpb_sim_input_time_ps(r->sim),
                              kind == TLPB__RESET_KIND__RESET_FUNCTION_LEVEL
                                  ? HLSIM_RESET_FUNCTION_LEVEL
                                  : HLSIM_RESET_HOT);
}

static void sim_time_sync_cb(void *arg, const struct tlpb_sim_time_sync *ts)
{
    struct runner *r = arg;

    switch (ts->kind) {
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED:
        runner_log(r, HLSIM_LOG_INFO, "coupled to the host's clock at %llu ps",
                   (unsigned long long)ts->sim_time_ps);
        hlsim_simclock_couple(r->clock, ts->sim_time_ps);
        hlsim_device_set_time_coupled(r->dev, true);
        break;
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_FREE:
        runner_log(r, HLSIM_LOG_INFO, "free-running again");
        hlsim_simclock_free_run(r->clock);
        hlsim_device_set_time_coupled(r->dev, false);
        break;
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT:
        hlsim_simclock_grant(r->clock, ts->sync_id, ts->grant_until_ps);
        break;
    default:
        break;
    }
}

static void sim_output_ready_cb(void *arg)
{
    struct runner *r = arg;
    if (r->dev)
        hlsim_device_output_ready(r->dev);
}

static uint16_t sim_bdf_cb(void *arg)
{
    struct runner *r = arg;
    return r->dev ? hlsim_config(r->dev)->bus_device_function : 0;
}

static const struct tlpb_sim_callbacks runner_sim_callbacks = {
    .tlp = sim_tlp_cb,
    .reset = sim_reset_cb,
    .output_ready = sim_output_ready_cb,
    .bus_device_function = sim_bdf_cb,
    .time_sync = sim_time_sync_cb,
};

/* ---- socket events ------------------------------------------------------------ */

static void poll_cb(uv_poll_t *handle, int status, int events);

static void update_poll(struct runner *r)
{
    if (!r->poll_open)
        return;
    int events = UV_READABLE | (tlpb_sim_output_pending(r->sim) > 0 ? UV_WRITABLE : 0);
    if (events != r->poll_events) {
        r->poll_events = events;
        uv_poll_start(&r->poll, events, poll_cb);
    }
}

/* Write what is queued: normally one send per loop iteration. */
static void flush_output(struct runner *r)
{
    if (!r->sim)
        return;
    if (tlpb_sim_flush(r->sim) < 0) {
        disconnected(r);
        return;
    }
    update_poll(r);
}

static void flush_prepare_cb(uv_prepare_t *prepare)
{
    flush_output(prepare->data);
}

static void poll_cb(uv_poll_t *handle, int status, int events)
{
    struct runner *r = handle->data;

    if (status < 0) {
        runner_log(r, HLSIM_LOG_ERROR, "lost the bridge connection: %s", uv_strerror(status));
        disconnected(r);
        return;
    }
    if ((events & UV_READABLE) && tlpb_sim_read_input(r->sim, READ_BUDGET_BYTES) < 0) {
        disconnected(r);
        return;
    }
    if (events & UV_WRITABLE)
        flush_output(r);
}

/* ---- connection lifecycle ----------------------------------------------------- */

static void close_runner_handles(struct runner *r);

static void destroy_device(struct runner *r)
{
    if (!r->dev)
        return;
    hlsim_uv_defer_drop_all(&r->deferred); /* deferred calls of the old instance must not run */
    if (r->direct_dma_requests)
        runner_log(r, HLSIM_LOG_INFO,
                   "%llu DMA requests (%llu bytes) went directly to guest memory",
                   (unsigned long long)r->direct_dma_requests,
                   (unsigned long long)r->direct_dma_bytes);
    r->direct_dma_requests = r->direct_dma_bytes = 0;
    hlsim_simclock_set_device(r->clock, NULL);
    hlsim_device_destroy(r->dev);
    r->dev = NULL;
    hlsim_simclock_destroy(r->clock);
    r->clock = NULL;
}

static void close_connection(struct runner *r)
{
    if (r->poll_open) {
        /* The handle closes in this iteration; a reconnect comes later. */
        uv_poll_stop(&r->poll);
        uv_close((uv_handle_t *)&r->poll, NULL);
        r->poll_open = false;
        r->poll_events = 0;
    }
    tlpb_sim_close(r->sim);
    r->sim = NULL;
}

static void reconnect_cb(uv_timer_t *timer);

/* The library has logged why. */
static void disconnected(struct runner *r)
{
    if (!r->sim)
        return;
    if (r->dev)
        hlsim_device_link_down(r->dev);
    destroy_device(r);
    close_connection(r);
    if (r->reconnect && !r->stopping) {
        r->reconnect_delay_ms = RECONNECT_FIRST_MS;
        runner_log(r, HLSIM_LOG_INFO, "reconnecting in %u ms", r->reconnect_delay_ms);
        uv_timer_start(&r->reconnect_timer, reconnect_cb, r->reconnect_delay_ms, 0);
        return;
    }
    r->exit_code = 1;
    r->exit_reason = "the bridge connection is gone";
    close_runner_handles(r);
}

static int attach(struct runner *r, char *err, size_t err_size)
{
    char peer_name[128];
    snprintf(peer_name, sizeof(peer_name), "hlsim-run %s", r->ops->name ? r->ops->name : "model");
    const struct tlpb_sim_options opts = {
        .device_name = r->device_name,
        .peer_name = peer_name,
        .description = &r->ops->description,
        .unsplit_dma = r->fast_dma,
        .log_name = "hlsim-run",
        .log_level = r->log_level,
        .time_sync = true,
        .guest_memory = !r->no_guest_memory,
    };
    int rc = tlpb_sim_connect(&r->sim, r->address, &opts, &runner_sim_callbacks, r, err,
                              err_size);
    if (rc < 0)
        return rc;

    bool unsplit = tlpb_sim_unsplit_dma(r->sim);
    struct hlsim_device_options dev_opts = {
        .unsplit_dma = unsplit,
        .bus_device_function = 0x0100, /* until config writes tell the real one */
        .dma_timeout_ns = 0,
    };
    r->clock = hlsim_simclock_create(&r->loop, &r->deferred, &runner_clock_ops, r);
    if (!r->clock) {
        snprintf(err, err_size, "out of memory");
        close_connection(r);
        return -ENOMEM;
    }
    hlsim_simclock_set_max_rate(r->clock, r->max_sim_ns_per_s);
    r->dev = hlsim_device_create(r->ops, r->model_args, &dev_opts, &runner_env_ops, r, err,
                                 err_size);
    if (!r->dev) {
        hlsim_uv_defer_drop_all(&r->deferred);
        hlsim_simclock_destroy(r->clock);
        r->clock = NULL;
        close_connection(r);
        return -EINVAL;
    }
    hlsim_simclock_set_device(r->clock, r->dev);

    uv_poll_init(&r->loop, &r->poll, tlpb_sim_fd(r->sim));
    r->poll.data = r;
    r->poll_open = true;
    r->poll_events = 0;
    update_poll(r);
    runner_log(r, HLSIM_LOG_INFO, "attached to %s as simulator for %s (%s DMA, max frame %u)",
               r->address, r->device_name, unsplit ? "fast, unsplit" : "strict",
               tlpb_sim_max_frame_bytes(r->sim));
    /* The bridge may have sent more right behind its reply. */
    if (tlpb_sim_read_input(r->sim, 0) < 0)
        disconnected(r);
    return 0;
}

static void reconnect_cb(uv_timer_t *timer)
{
    struct runner *r = timer->data;
    char err[256] = "";

    if (r->stopping)
        return;
    if (attach(r, err, sizeof(err)) == 0)
        return;
    r->reconnect_delay_ms *= 2;
    if (r->reconnect_delay_ms > RECONNECT_MAX_MS)
        r->reconnect_delay_ms = RECONNECT_MAX_MS;
    runner_log(r, HLSIM_LOG_WARN, "reconnect failed (%s); retrying in %u ms", err,
               r->reconnect_delay_ms);
    uv_timer_start(&r->reconnect_timer, reconnect_cb, r->reconnect_delay_ms, 0);
}

static void close_runner_handles(struct runner *r)
{
    if (r->stopping)
        return;
    r->stopping = true;
    destroy_device(r);
    close_connection(r);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->flush_prepare, NULL);
    hlsim_uv_defer_close(&r->deferred);
    uv_close((uv_handle_t *)&r->reconnect_timer, NULL);
}

static void signal_cb(uv_signal_t *handle, int signum)
{
    struct runner *r = handle->data;

    runner_log(r, HLSIM_LOG_INFO, "%s: detaching", strsignal(signum));
    /* Leave with what is queued written, as far as the socket takes it. */
    flush_output(r);
    close_runner_handles(r);
}

/* ---- startup ------------------------------------------------------------------------ */

static int load_model(struct runner *r)
{
    const char *reason = NULL;

    r->model_handle = dlopen(r->model_path, RTLD_NOW | RTLD_LOCAL);
    if (!r->model_handle) {
        fprintf(stderr, "hlsim-run: cannot load model %s: %s\n", r->model_path, dlerror());
        return -1;
    }
    r->ops = dlsym(r->model_handle, HLSIM_MODEL_SYMBOL);
    if (!r->ops) {
        fprintf(stderr, "hlsim-run: %s exports no '%s' symbol\n", r->model_path,
                HLSIM_MODEL_SYMBOL);
        return -1;
    }
    if (r->ops->abi_version != HLSIM_ABI_VERSION) {
        fprintf(stderr, "hlsim-run: %s was built for hlsim ABI %u, this runner has ABI %u\n",
                r->model_path, r->ops->abi_version, HLSIM_ABI_VERSION);
        return -1;
    }
    if (tlpb_devdesc_validate(&r->ops->description, &reason) != 0) {
        fprintf(stderr, "hlsim-run: %s has a bad device description: %s\n", r->model_path,
                reason ? reason : "?");
        return -1;
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hlsim-run --socket PATH|unix:PATH|tcp:HOST:PORT --device NAME --model MODEL.so\n"
            "                 [--model-args STRING] [--fast-dma] [--no-guest-memory]\n"
            "                 [--log-level 0-3] [--reconnect] [--max-sim-ns-per-s N]\n"
            "\n"
            "Runs an hlsim device model in this process, attached to tlpbridged as the\n"
            "simulator of device NAME.\n"
            "  --socket ADDR      bridge address (unix socket path or tcp:HOST:PORT)\n"
            "  --device NAME      device name in the bridge configuration\n"
            "  --model PATH       model shared object (exports '" HLSIM_MODEL_SYMBOL "')\n"
            "  --model-args S     argument string passed to the model's create()\n"
            "  --fast-dma         ask for unsplit DMA (fast mode; not PCIe-exact); on a unix\n"
            "                     socket DMA in guest memory the bridge shares goes directly\n"
            "  --no-guest-memory  fast DMA as messages even when guest memory could be shared\n"
            "  --log-level N      0 error, 1 warn, 2 info (default), 3 debug\n"
            "  --reconnect        when the bridge goes away, retry instead of exiting\n"
            "  --max-sim-ns-per-s N  coupled time: simulate at most N busy ns per wall second\n"
            "                     (behave like a slow simulator; idle time is not paced)\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'},
        {"device", required_argument, NULL, 'd'},
        {"model", required_argument, NULL, 'm'},
        {"model-args", required_argument, NULL, 'a'},
        {"fast-dma", no_argument, NULL, 'f'},
        {"no-guest-memory", no_argument, NULL, 'G'},
        {"log-level", required_argument, NULL, 'l'},
        {"reconnect", no_argument, NULL, 'r'},
        {"max-sim-ns-per-s", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct runner *r = calloc(1, sizeof(*r));
    int opt;

    if (!r)
        return 1;
    r->log_level = HLSIM_LOG_INFO;
    r->model_args = "";
    while ((opt = getopt_long(argc, argv, "s:d:m:a:fl:rh", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            r->address = optarg;
            break;
        case 'd':
            r->device_name = optarg;
            break;
        case 'm':
            r->model_path = optarg;
            break;
        case 'a':
            r->model_args = optarg;
            break;
        case 'f':
            r->fast_dma = true;
            break;
        case 'G':
            r->no_guest_memory = true;
            break;
        case 'l': {
            char *end;
            long level = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || level < 0 || level > 3) {
                fprintf(stderr, "hlsim-run: --log-level takes 0 to 3, not '%s'\n", optarg);
                free(r);
                return 2;
            }
            r->log_level = (int)level;
            break;
        }
        case 'r':
            r->reconnect = true;
            break;
        case 'M': {
            char *end;
            errno = 0;
            unsigned long long rate = strtoull(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end != '\0' || errno != 0 || rate == 0) {
                fprintf(stderr,
                        "hlsim-run: --max-sim-ns-per-s takes a positive integer, not '%s'\n",
                        optarg);
                free(r);
                return 2;
            }
            r->max_sim_ns_per_s = rate;
            break;
        }
        case 'h':
            usage(stdout);
            free(r);
            return 0;
        default:
            usage(stderr);
            free(r);
            return 2;
        }
    }
    if (optind != argc || !r->address || !r->device_name || !r->model_path) {
        if (optind != argc)
            fprintf(stderr, "hlsim-run: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "hlsim-run: --socket, --device and --model are required\n");
        usage(stderr);
        free(r);
        return 2;
    }

    if (load_model(r) != 0) {
        if (r->model_handle)
            dlclose(r->model_handle);
        free(r);
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&r->loop);
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sigterm);
    r->sigint.data = r->sigterm.data = r;
    uv_signal_start(&r->sigint, signal_cb, SIGINT);
    uv_signal_start(&r->sigterm, signal_cb, SIGTERM);
    uv_prepare_init(&r->loop, &r->flush_prepare);
    r->flush_prepare.data = r;
    uv_prepare_start(&r->flush_prepare, flush_prepare_cb);
    hlsim_uv_defer_init(&r->deferred, &r->loop, NULL, NULL);
    uv_timer_init(&r->loop, &r->reconnect_timer);
    r->reconnect_timer.data = r;

    char err[256] = "";
    if (attach(r, err, sizeof(err)) != 0) {
        fprintf(stderr, "hlsim-run: cannot attach to %s as device %s: %s\n", r->address,
                r->device_name, err);
        if (r->reconnect) {
            r->reconnect_delay_ms = RECONNECT_FIRST_MS;
            uv_timer_start(&r->reconnect_timer, reconnect_cb, r->reconnect_delay_ms, 0);
        } else {
            r->exit_code = 1;
            close_runner_handles(r);
        }
    }

    uv_run(&r->loop, UV_RUN_DEFAULT);
    if (r->exit_code != 0 && r->exit_reason)
        fprintf(stderr, "hlsim-run: exiting: %s\n", r->exit_reason);
    uv_loop_close(&r->loop);
    dlclose(r->model_handle);
    tlpb_dma_scratch_free(&r->dma_scratch);
    int code = r->exit_code;
    free(r);
    return code;
}
