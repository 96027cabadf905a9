/* hlsim-run: a behavioural model in its own simulator process, attached to
 * tlpbridged over its socket as role SIMULATOR for one device.
 *
 *   hlsim-run --socket PATH|tcp:HOST:PORT --device NAME --model libdmacopy.so
 *             [--model-args S] [--fast-dma] [--log-level N] [--reconnect]
 *
 * The socket is watched with a libuv poll handle: a readable event reads
 * what is there, hands each frame to the SDK, and the output the SDK
 * produces collects in one buffer that is written once per loop iteration
 * (uv_prepare, just before the loop would block). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "hlsim.h"
#include "hlsim_env.h"
#include "hlsim_uv.h"
#include "tlpb/wire.h"

#define HANDSHAKE_TIMEOUT_MS 5000
#define OUTPUT_LIMIT_BYTES (8u * 1024u * 1024u)
#define READ_BUDGET_BYTES (4u * 1024u * 1024u) /* per readable event, for fairness */
#define RECONNECT_FIRST_MS 500u
#define RECONNECT_MAX_MS 10000u

struct deferred_call {
    struct deferred_call *next;
    void (*fn)(void *arg);
    void *arg;
};

struct runner {
    /* options */
    const char *address;
    const char *device_name;
    const char *model_path;
    const char *model_args;
    bool fast_dma;
    bool reconnect;
    int log_level;

    void *model_handle;
    const struct hlsim_model_ops *ops;

    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    uv_prepare_t flush_prepare;
    uv_idle_t defer_idle;
    uv_timer_t reconnect_timer;
    unsigned reconnect_delay_ms;

    /* the bridge connection */
    int fd;
    uv_poll_t poll;
    bool poll_open;
    int poll_events;
    struct tlpb_frame_reader rd;
    struct tlpb_obuf ob;
    bool unsplit;
    bool output_blocked; /* the SDK was told -EAGAIN */

    hlsim_device *dev;
    struct deferred_call *deferred_head, *deferred_tail;

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

static void disconnected(struct runner *r, const char *why);

/* ---- the SDK's environment -------------------------------------------------- */

static int env_send_tlp(void *env, const struct tlpb_tlp *tlp)
{
    struct runner *r = env;
    bool completion = tlpb_tlp_is_completion(tlp->kind);

    if (r->fd < 0)
        return completion ? 0 : -ENOTCONN;
    int rc = tlpb_obuf_append_tlp(&r->ob, tlp, completion);
    if (rc == -ENOBUFS) {
        r->output_blocked = true;
        return -EAGAIN;
    }
    if (rc < 0)
        runner_log(r, HLSIM_LOG_ERROR, "cannot queue %s: %s", tlpb_tlp_kind_name(tlp->kind),
                   strerror(-rc));
    return rc;
}

static void env_send_interrupt(void *env, int kind, unsigned vector)
{
    struct runner *r = env;

    if (r->fd < 0)
        return;
    int rc = tlpb_obuf_append_interrupt(&r->ob, (Tlpb__InterruptKind)kind, vector);
    if (rc < 0)
        runner_log(r, HLSIM_LOG_ERROR, "cannot queue interrupt %d/%u: %s", kind, vector,
                   strerror(-rc));
}

static uint64_t env_now_ns(void *env)
{
    return tlpb_now_ns();
}

static void *env_timer_create(void *env, void (*fire)(void *arg), void *arg)
{
    struct runner *r = env;
    return hlsim_uv_timer_create(&r->loop, fire, arg);
}

static void run_deferred(uv_idle_t *idle)
{
    struct runner *r = idle->data;
    /* Only what is queued now: work that defers more work runs on the next
     * iteration, after I/O had its turn. */
    struct deferred_call *batch = r->deferred_head;
    r->deferred_head = r->deferred_tail = NULL;
    while (batch) {
        struct deferred_call *call = batch;
        batch = call->next;
        call->fn(call->arg);
        free(call);
    }
    if (!r->deferred_head)
        uv_idle_stop(&r->defer_idle);
}

static void env_defer(void *env, void (*fn)(void *arg), void *arg)
{
    struct runner *r = env;
    struct deferred_call *call = calloc(1, sizeof(*call));

    if (!call) {
        runner_log(r, HLSIM_LOG_ERROR, "out of memory deferring model work");
        return;
    }
    call->fn = fn;
    call->arg = arg;
    if (r->deferred_tail)
        r->deferred_tail->next = call;
    else
        r->deferred_head = call;
    r->deferred_tail = call;
    uv_idle_start(&r->defer_idle, run_deferred);
}

static void drop_deferred(struct runner *r)
{
    while (r->deferred_head) {
        struct deferred_call *call = r->deferred_head;
        r->deferred_head = call->next;
        free(call);
    }
    r->deferred_tail = NULL;
    uv_idle_stop(&r->defer_idle);
}

static void env_log(void *env, int level, const char *message)
{
    struct runner *r = env;
    runner_log(r, level, "%s: %s", r->ops->name ? r->ops->name : "model", message);
}

static const struct hlsim_env_ops runner_env_ops = {
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

/* ---- output -------------------------------------------------------------------- */

static void poll_cb(uv_poll_t *handle, int status, int events);

static void update_poll(struct runner *r)
{
    if (!r->poll_open)
        return;
    int events = UV_READABLE | (tlpb_obuf_pending(&r->ob) > 0 ? UV_WRITABLE : 0);
    if (events != r->poll_events) {
        r->poll_events = events;
        uv_poll_start(&r->poll, events, poll_cb);
    }
}

/* Write what is queued: normally one send per loop iteration. */
static void flush_output(struct runner *r)
{
    for (unsigned round = 0; round < 4 && r->fd >= 0; round++) {
        size_t pending = tlpb_obuf_pending(&r->ob);
        if (pending == 0)
            break;
        ssize_t n = send(r->fd, tlpb_obuf_head(&r->ob), pending, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            disconnected(r, strerror(errno));
            return;
        }
        tlpb_obuf_consume(&r->ob, (size_t)n);
        /* Room again: let the model's queued DMA continue (it may queue
         * more, which the next round or iteration writes). */
        if (r->output_blocked && tlpb_obuf_pending(&r->ob) < OUTPUT_LIMIT_BYTES / 2 && r->dev) {
            r->output_blocked = false;
            hlsim_device_output_ready(r->dev);
        }
        if ((size_t)n < pending)
            break; /* the socket is full */
    }
    update_poll(r);
}

static void flush_prepare_cb(uv_prepare_t *prepare)
{
    flush_output(prepare->data);
}

/* ---- input ---------------------------------------------------------------------- */

static void handle_tlp(struct runner *r, const Tlpb__Tlp *pb)
{
    struct tlpb_tlp tlp;
    const char *reason = "?";

    if (tlpb_tlp_from_pb(&tlp, pb, &reason) != 0) {
        runner_log(r, HLSIM_LOG_WARN, "undecodable TLP from the bridge dropped: %s", reason);
        return;
    }
    struct tlpb_tlp_limits limits = {.max_payload_bytes = 0, .unsplit = r->unsplit};
    if (tlpb_tlp_validate(&tlp, &limits, &reason) != 0) {
        char text[160];
        tlpb_tlp_format(&tlp, text, sizeof(text));
        if (tlpb_tlp_is_non_posted(tlp.kind)) {
            /* The requester waits: answer the malformed request with UR. */
            struct tlpb_tlp cpl;
            const struct tlpb_cfgspace *cfg = hlsim_config(r->dev);
            tlpb_completion_error_for(&cpl, &tlp, cfg->bus_device_function, TLPB_CPL_UR);
            env_send_tlp(r, &cpl);
            runner_log(r, HLSIM_LOG_WARN, "malformed request (%s), completed with UR: %s",
                       reason, text);
        } else {
            runner_log(r, HLSIM_LOG_WARN, "malformed TLP (%s) dropped: %s", reason, text);
        }
        return;
    }
    hlsim_device_receive_tlp(r->dev, &tlp);
}

static void handle_frame(struct runner *r, const uint8_t *frame, size_t len)
{
    const char *reason = "?";
    Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);

    if (!env) {
        runner_log(r, HLSIM_LOG_WARN, "bad frame from the bridge ignored: %s", reason);
        tlpb_obuf_append_error(&r->ob, reason);
        return;
    }
    switch (env->body_case) {
    case TLPB__ENVELOPE__BODY_TLP:
        handle_tlp(r, env->tlp);
        break;
    case TLPB__ENVELOPE__BODY_RESET:
        if (env->reset->kind == TLPB__RESET_KIND__RESET_FUNCTION_LEVEL)
            hlsim_device_reset(r->dev, HLSIM_RESET_FUNCTION_LEVEL);
        else if (env->reset->kind == TLPB__RESET_KIND__RESET_HOT)
            hlsim_device_reset(r->dev, HLSIM_RESET_HOT);
        else
            runner_log(r, HLSIM_LOG_WARN, "reset of unknown kind %d ignored",
                       (int)env->reset->kind);
        break;
    case TLPB__ENVELOPE__BODY_EVENT:
        runner_log(r, HLSIM_LOG_INFO, "bridge event %d: backend %s %s", (int)env->event->kind,
                   env->event->backend, env->event->detail);
        break;
    case TLPB__ENVELOPE__BODY_ERROR:
        runner_log(r, HLSIM_LOG_WARN, "bridge reports: %s", env->error->reason);
        break;
    case TLPB__ENVELOPE__BODY_TIME_SYNC:
        break; /* reserved */
    default:
        runner_log(r, HLSIM_LOG_WARN, "unexpected message %d from the bridge ignored",
                   (int)env->body_case);
        break;
    }
    tlpb_envelope_free(env);
}

/* Hand every complete frame in the reader to the SDK. Returns false when the
 * connection had to be dropped. */
static bool process_frames(struct runner *r)
{
    for (;;) {
        const uint8_t *frame;
        size_t len;
        const char *reason = "?";
        int rc = tlpb_reader_next(&r->rd, &frame, &len, &reason);
        if (rc == 0)
            return true;
        if (rc < 0) {
            disconnected(r, reason); /* the stream cannot be resynchronised */
            return false;
        }
        handle_frame(r, frame, len);
        if (r->fd < 0)
            return false;
    }
}

static void read_input(struct runner *r)
{
    size_t total = 0;

    while (r->fd >= 0 && total < READ_BUDGET_BYTES) {
        size_t space;
        uint8_t *dst = tlpb_reader_space(&r->rd, 64 * 1024, &space);
        if (!dst) {
            disconnected(r, "out of memory for input");
            return;
        }
        ssize_t n = recv(r->fd, dst, space, 0);
        if (n == 0) {
            disconnected(r, "the bridge closed the connection");
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                disconnected(r, strerror(errno));
            return;
        }
        tlpb_reader_commit(&r->rd, (size_t)n);
        total += (size_t)n;
        if (!process_frames(r))
            return;
        if ((size_t)n < space)
            return; /* drained for now */
    }
}

static void poll_cb(uv_poll_t *handle, int status, int events)
{
    struct runner *r = handle->data;

    if (status < 0) {
        disconnected(r, uv_strerror(status));
        return;
    }
    if (events & UV_READABLE)
        read_input(r);
    if (r->fd >= 0 && (events & UV_WRITABLE))
        flush_output(r);
}

/* ---- connection lifecycle ----------------------------------------------------- */

static void close_runner_handles(struct runner *r);

static void destroy_device(struct runner *r)
{
    if (!r->dev)
        return;
    drop_deferred(r); /* deferred calls of the old instance must not run */
    hlsim_device_destroy(r->dev);
    r->dev = NULL;
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
    if (r->fd >= 0) {
        close(r->fd);
        r->fd = -1;
    }
    tlpb_reader_free(&r->rd);
    tlpb_obuf_free(&r->ob);
    r->output_blocked = false;
}

static void reconnect_cb(uv_timer_t *timer);

static void disconnected(struct runner *r, const char *why)
{
    if (r->fd < 0)
        return;
    runner_log(r, HLSIM_LOG_ERROR, "lost the bridge connection: %s", why);
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
    int fd = tlpb_connect(r->address, err, err_size);
    if (fd < 0)
        return fd;

    tlpb_reader_init(&r->rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    struct tlpb_devdesc_pb desc_pb;
    tlpb_devdesc_to_pb(&desc_pb, &r->ops->description);
    char peer_name[128];
    snprintf(peer_name, sizeof(peer_name), "hlsim-run %s", r->ops->name ? r->ops->name : "model");
    Tlpb__Hello hello = TLPB__HELLO__INIT;
    hello.version_major = TLPB_PROTOCOL_MAJOR;
    hello.version_minor = TLPB_PROTOCOL_MINOR;
    hello.role = TLPB__ROLE__ROLE_SIMULATOR;
    hello.device_name = (char *)r->device_name;
    hello.max_frame_bytes = TLPB_DEFAULT_MAX_FRAME_BYTES;
    hello.capabilities = r->fast_dma ? TLPB__CAPABILITY__CAP_UNSPLIT_DMA : 0;
    hello.peer_name = peer_name;
    hello.description = &desc_pb.msg;

    Tlpb__Envelope *reply = tlpb_handshake(fd, &r->rd, &hello, HANDSHAKE_TIMEOUT_MS, err,
                                           err_size);
    if (!reply) {
        tlpb_reader_free(&r->rd);
        close(fd);
        return -ECONNREFUSED;
    }
    const Tlpb__HelloReply *hr = reply->hello_reply;
    if (hr->version_major != TLPB_PROTOCOL_MAJOR) {
        snprintf(err, err_size, "bridge speaks protocol %u.%u, this runner %u.%u",
                 hr->version_major, hr->version_minor, TLPB_PROTOCOL_MAJOR, TLPB_PROTOCOL_MINOR);
        tlpb_envelope_free(reply);
        tlpb_reader_free(&r->rd);
        close(fd);
        return -EPROTO;
    }
    r->unsplit = r->fast_dma && (hr->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA);
    if (r->fast_dma && !r->unsplit)
        runner_log(r, HLSIM_LOG_WARN, "the bridge refused unsplit DMA: using strict mode");
    uint32_t max_frame = r->rd.max_frame_bytes;
    tlpb_envelope_free(reply);

    size_t limit = OUTPUT_LIMIT_BYTES;
    if (limit < 2u * (size_t)max_frame)
        limit = 2u * (size_t)max_frame;
    tlpb_obuf_init(&r->ob, limit, max_frame);
    r->fd = fd;
    r->output_blocked = false;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        snprintf(err, err_size, "fcntl: %s", strerror(errno));
        close_connection(r);
        return -errno;
    }

    struct hlsim_device_options opts = {
        .unsplit_dma = r->unsplit,
        .bus_device_function = 0x0100, /* until config writes tell the real one */
        .dma_timeout_ns = 0,
    };
    r->dev = hlsim_device_create(r->ops, r->model_args, &opts, &runner_env_ops, r, err,
                                 err_size);
    if (!r->dev) {
        close_connection(r);
        return -EINVAL;
    }

    uv_poll_init(&r->loop, &r->poll, fd);
    r->poll.data = r;
    r->poll_open = true;
    r->poll_events = 0;
    update_poll(r);
    runner_log(r, HLSIM_LOG_INFO, "attached to %s as simulator for %s (%s DMA, max frame %u)",
               r->address, r->device_name, r->unsplit ? "fast, unsplit" : "strict", max_frame);
    /* The bridge may have sent more right behind its reply. */
    process_frames(r);
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
    uv_close((uv_handle_t *)&r->defer_idle, NULL);
    uv_close((uv_handle_t *)&r->reconnect_timer, NULL);
}

static void signal_cb(uv_signal_t *handle, int signum)
{
    struct runner *r = handle->data;

    runner_log(r, HLSIM_LOG_INFO, "%s: detaching", strsignal(signum));
    /* Leave with what is queued written, as far as the socket takes it. */
    if (r->fd >= 0)
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
            "                 [--model-args STRING] [--fast-dma] [--log-level 0-3] [--reconnect]\n"
            "\n"
            "Runs an hlsim device model in this process, attached to tlpbridged as the\n"
            "simulator of device NAME.\n"
            "  --socket ADDR      bridge address (unix socket path or tcp:HOST:PORT)\n"
            "  --device NAME      device name in the bridge configuration\n"
            "  --model PATH       model shared object (exports '" HLSIM_MODEL_SYMBOL "')\n"
            "  --model-args S     argument string passed to the model's create()\n"
            "  --fast-dma         ask for unsplit DMA (fast mode; not PCIe-exact)\n"
            "  --log-level N      0 error, 1 warn, 2 info (default), 3 debug\n"
            "  --reconnect        when the bridge goes away, retry instead of exiting\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'},
        {"device", required_argument, NULL, 'd'},
        {"model", required_argument, NULL, 'm'},
        {"model-args", required_argument, NULL, 'a'},
        {"fast-dma", no_argument, NULL, 'f'},
        {"log-level", required_argument, NULL, 'l'},
        {"reconnect", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct runner *r = calloc(1, sizeof(*r));
    int opt;

    if (!r)
        return 1;
    r->fd = -1;
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
    uv_idle_init(&r->loop, &r->defer_idle);
    r->defer_idle.data = r;
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
    int code = r->exit_code;
    free(r);
    return code;
}
