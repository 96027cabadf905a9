/* rtl_adapter: the connection to the bridge. Attach (Hello as a simulator
 * with the device description and a long completion timeout), frames from
 * the bridge into the RX queue, output batched into one buffer that is
 * written on the cycle loop's cadence, logging. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define HANDSHAKE_TIMEOUT_MS 10000
#define DEFAULT_COMPLETION_TIMEOUT_MS 60000u
#define DEFAULT_RESET_CYCLES 16u
#define DEFAULT_IDLE_WAIT_MS 200u
#define CLOSE_FLUSH_MS 2000

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void tlpb_rtl_log(const struct tlpb_rtl *a, int level, const char *fmt, ...)
{
    va_list ap;

    if (a && level > a->opts.log_level)
        return;
    fprintf(stderr, "tlpb-rtl[%s] %s: ", a ? a->device_name : "?",
            level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void rtl_lost(struct tlpb_rtl *a, const char *why)
{
    if (a->connection_lost)
        return;
    tlpb_rtl_log(a, TLPB_RTL_LOG_ERROR, "lost the bridge connection: %s", why);
    a->connection_lost = true;
    if (a->fd >= 0) {
        close(a->fd);
        a->fd = -1;
    }
}

/* ---- output ------------------------------------------------------------------ */

void rtl_send_tlp(struct tlpb_rtl *a, const struct tlpb_tlp *tlp)
{
    if (a->fd < 0)
        return;
    /* The cycle loop holds tx_tready low while the buffer is over its
     * limit, so nothing is refused here. */
    int rc = tlpb_obuf_append_tlp(&a->ob, tlp, true);
    if (rc < 0) {
        tlpb_rtl_log(a, TLPB_RTL_LOG_ERROR, "cannot queue %s: %s", tlpb_tlp_kind_name(tlp->kind),
                     strerror(-rc));
        return;
    }
    if (tlp->kind != TLPB_TLP_MWR)
        a->urgent_output = true; /* someone waits for it */
}

void rtl_send_interrupt(struct tlpb_rtl *a, Tlpb__InterruptKind kind, uint32_t vector)
{
    if (a->fd < 0)
        return;
    int rc = tlpb_obuf_append_interrupt(&a->ob, kind, vector);
    if (rc < 0)
        tlpb_rtl_log(a, TLPB_RTL_LOG_ERROR, "cannot queue interrupt %d/%u: %s", (int)kind, vector,
                     strerror(-rc));
    a->urgent_output = true;
}

void rtl_flush_output(struct tlpb_rtl *a)
{
    a->last_flush = a->stats.cycles;
    while (a->fd >= 0 && tlpb_obuf_pending(&a->ob) > 0) {
        ssize_t n = send(a->fd, tlpb_obuf_head(&a->ob), tlpb_obuf_pending(&a->ob), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                rtl_lost(a, strerror(errno));
            return; /* the socket is full: later */
        }
        tlpb_obuf_consume(&a->ob, (size_t)n);
    }
    if (tlpb_obuf_pending(&a->ob) == 0)
        a->urgent_output = false;
}

/* ---- input ------------------------------------------------------------------- */

static void handle_tlp(struct tlpb_rtl *a, const Tlpb__Tlp *pb)
{
    struct tlpb_tlp tlp;
    const char *reason = "?";

    if (tlpb_tlp_from_pb(&tlp, pb, &reason) != 0) {
        tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "undecodable TLP from the bridge dropped: %s", reason);
        return;
    }
    if (tlpb_tlp_validate(&tlp, NULL, &reason) != 0) {
        char text[160];
        tlpb_tlp_format(&tlp, text, sizeof(text));
        if (tlpb_tlp_is_non_posted(tlp.kind)) {
            struct tlpb_tlp cpl;
            tlpb_completion_error_for(&cpl, &tlp, a->cfg.bus_device_function, TLPB_CPL_UR);
            rtl_send_tlp(a, &cpl);
            tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "malformed request (%s), completed with UR: %s",
                         reason, text);
        } else {
            tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "malformed TLP (%s) dropped: %s", reason, text);
        }
        return;
    }
    switch (tlp.kind) {
    case TLPB_TLP_CFGRD0:
    case TLPB_TLP_CFGWR0:
        rtl_rx_push_config(a, &tlp); /* in order with the memory requests */
        break;
    case TLPB_TLP_MRD:
    case TLPB_TLP_MWR:
        rtl_memory_request(a, &tlp);
        break;
    case TLPB_TLP_CPL:
    case TLPB_TLP_CPLD:
        rtl_host_completion(a, &tlp);
        break;
    default:
        tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "TLP of kind %d from the bridge ignored", (int)tlp.kind);
        break;
    }
}

static void handle_frame(struct tlpb_rtl *a, const uint8_t *frame, size_t len)
{
    const char *reason = "?";
    Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);

    if (!env) {
        tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "bad frame from the bridge ignored: %s", reason);
        tlpb_obuf_append_error(&a->ob, reason);
        return;
    }
    switch (env->body_case) {
    case TLPB__ENVELOPE__BODY_TLP:
        handle_tlp(a, env->tlp);
        break;
    case TLPB__ENVELOPE__BODY_RESET:
        if (env->reset->kind == TLPB__RESET_KIND__RESET_FUNCTION_LEVEL ||
            env->reset->kind == TLPB__RESET_KIND__RESET_HOT)
            rtl_rx_push_reset(a, (int)env->reset->kind);
        else
            tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "reset of unknown kind %d ignored",
                         (int)env->reset->kind);
        break;
    case TLPB__ENVELOPE__BODY_EVENT:
        tlpb_rtl_log(a, TLPB_RTL_LOG_INFO, "bridge event %d: backend %s %s", (int)env->event->kind,
                     env->event->backend, env->event->detail);
        break;
    case TLPB__ENVELOPE__BODY_ERROR:
        tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "bridge reports: %s", env->error->reason);
        break;
    case TLPB__ENVELOPE__BODY_TIME_SYNC:
        break; /* reserved */
    default:
        tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "unexpected message %d from the bridge ignored",
                     (int)env->body_case);
        break;
    }
    tlpb_envelope_free(env);
}

static bool process_frames(struct tlpb_rtl *a)
{
    for (;;) {
        const uint8_t *frame;
        size_t len;
        const char *reason = "?";
        int rc = tlpb_reader_next(&a->rd, &frame, &len, &reason);
        if (rc == 0)
            return true;
        if (rc < 0) {
            rtl_lost(a, reason); /* the stream cannot be resynchronised */
            return false;
        }
        handle_frame(a, frame, len);
        if (a->fd < 0)
            return false;
    }
}

void rtl_read_input(struct tlpb_rtl *a)
{
    size_t total = 0;

    a->last_read = a->stats.cycles;
    /* Above the limit the bridge waits (its queues are bounded too). */
    while (a->fd >= 0 && total < RTL_READ_BUDGET_BYTES && a->rx_bytes < RTL_INPUT_LIMIT_BYTES) {
        size_t space;
        uint8_t *dst = tlpb_reader_space(&a->rd, 64 * 1024, &space);
        if (!dst) {
            rtl_lost(a, "out of memory for input");
            return;
        }
        ssize_t n = recv(a->fd, dst, space, MSG_DONTWAIT);
        if (n == 0) {
            rtl_lost(a, "the bridge closed the connection");
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                rtl_lost(a, strerror(errno));
            return;
        }
        tlpb_reader_commit(&a->rd, (size_t)n);
        total += (size_t)n;
        if (!process_frames(a))
            return;
        if ((size_t)n < space)
            return; /* drained for now */
    }
}

void rtl_wait_socket(struct tlpb_rtl *a, int timeout_ms)
{
    if (a->fd < 0)
        return;
    struct pollfd p = {.fd = a->fd, .events = POLLIN};
    if (tlpb_obuf_pending(&a->ob) > 0)
        p.events |= POLLOUT;
    uint64_t t0 = tlpb_now_ns();
    int rc = poll(&p, 1, timeout_ms);
    a->stats.idle_waits++;
    a->stats.idle_wait_ns += tlpb_now_ns() - t0;
    if (rc <= 0)
        return; /* timeout, or a signal (the loop looks at the stop flag) */
    if (p.revents & POLLOUT)
        rtl_flush_output(a);
    if (p.revents & (POLLIN | POLLHUP | POLLERR))
        rtl_read_input(a);
}

/* ---- attach ------------------------------------------------------------------ */

static int attach(struct tlpb_rtl *a, int fd, char *err, size_t err_size)
{
    tlpb_reader_init(&a->rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    struct tlpb_devdesc_pb desc_pb;
    tlpb_devdesc_to_pb(&desc_pb, &a->opts.description);
    Tlpb__Hello hello = TLPB__HELLO__INIT;
    hello.version_major = TLPB_PROTOCOL_MAJOR;
    hello.version_minor = TLPB_PROTOCOL_MINOR;
    hello.role = TLPB__ROLE__ROLE_SIMULATOR;
    hello.device_name = a->device_name;
    hello.max_frame_bytes = TLPB_DEFAULT_MAX_FRAME_BYTES;
    hello.capabilities = 0; /* PCIe-exact: never unsplit DMA */
    hello.peer_name = a->peer_name;
    hello.description = &desc_pb.msg;
    hello.completion_timeout_ms = a->opts.completion_timeout_ms;

    Tlpb__Envelope *reply = tlpb_handshake(fd, &a->rd, &hello, HANDSHAKE_TIMEOUT_MS, err, err_size);
    if (!reply)
        return -ECONNREFUSED;
    const Tlpb__HelloReply *hr = reply->hello_reply;
    if (hr->version_major != TLPB_PROTOCOL_MAJOR) {
        snprintf(err, err_size, "bridge speaks protocol %u.%u, this adapter %u.%u",
                 hr->version_major, hr->version_minor, TLPB_PROTOCOL_MAJOR, TLPB_PROTOCOL_MINOR);
        tlpb_envelope_free(reply);
        return -EPROTO;
    }
    uint32_t max_frame = a->rd.max_frame_bytes;
    tlpb_envelope_free(reply);
    tlpb_obuf_init(&a->ob, RTL_OUTPUT_LIMIT_BYTES, max_frame);
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        snprintf(err, err_size, "fcntl: %s", strerror(errno));
        return -errno;
    }
    a->fd = fd;
    tlpb_rtl_log(a, TLPB_RTL_LOG_INFO,
                 "attached as simulator for %s (completion timeout %u ms, max frame %u)",
                 a->device_name, a->opts.completion_timeout_ms, max_frame);
    /* The bridge may have sent more right behind its reply. */
    process_frames(a);
    return 0;
}

int tlpb_rtl_open_fd(struct tlpb_rtl **out, int fd, const struct tlpb_rtl_options *opts,
                     char *err, size_t err_size)
{
    const char *reason = NULL;

    *out = NULL;
    if (!opts->device_name || strlen(opts->device_name) >= sizeof(((struct tlpb_rtl *)0)->device_name)) {
        snprintf(err, err_size, "a device name of 1 to 63 characters is required");
        close(fd);
        return -EINVAL;
    }
    if (tlpb_devdesc_validate(&opts->description, &reason) != 0) {
        snprintf(err, err_size, "bad device description: %s", reason ? reason : "?");
        close(fd);
        return -EINVAL;
    }
    struct tlpb_rtl *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, err_size, "out of memory");
        close(fd);
        return -ENOMEM;
    }
    a->opts = *opts;
    a->fd = -1;
    snprintf(a->device_name, sizeof(a->device_name), "%s", opts->device_name);
    snprintf(a->peer_name, sizeof(a->peer_name), "%s", opts->peer_name ? opts->peer_name : "rtl");
    if (!a->opts.completion_timeout_ms)
        a->opts.completion_timeout_ms = DEFAULT_COMPLETION_TIMEOUT_MS;
    if (!a->opts.reset_cycles)
        a->opts.reset_cycles = DEFAULT_RESET_CYCLES;
    if (!a->opts.idle_wait_ms)
        a->opts.idle_wait_ms = DEFAULT_IDLE_WAIT_MS;
    a->stall_rng = opts->stall_seed ? opts->stall_seed : 0x2545F491u;
    rtl_config_init(a);
    if (!a->msix_table && opts->description.msix_vectors) {
        snprintf(err, err_size, "out of memory");
        close(fd);
        free(a);
        return -ENOMEM;
    }
    int rc = attach(a, fd, err, err_size);
    if (rc != 0) {
        if (a->fd < 0)
            close(fd);
        tlpb_rtl_close(a);
        return rc;
    }
    a->reset_left = a->opts.reset_cycles;
    *out = a;
    return 0;
}

int tlpb_rtl_open(struct tlpb_rtl **out, const struct tlpb_rtl_options *opts, char *err,
                  size_t err_size)
{
    *out = NULL;
    if (!opts->socket) {
        snprintf(err, err_size, "no bridge address");
        return -EINVAL;
    }
    int fd = tlpb_connect(opts->socket, err, err_size);
    if (fd < 0)
        return fd;
    return tlpb_rtl_open_fd(out, fd, opts, err, err_size);
}

void tlpb_rtl_close(struct tlpb_rtl *a)
{
    if (!a)
        return;
    /* Leave with what is queued written, as far as the bridge takes it. */
    uint64_t deadline = tlpb_now_ns() + (uint64_t)CLOSE_FLUSH_MS * 1000000u;
    while (a->fd >= 0 && tlpb_obuf_pending(&a->ob) > 0 && tlpb_now_ns() < deadline) {
        struct pollfd p = {.fd = a->fd, .events = POLLOUT};
        if (poll(&p, 1, 100) > 0)
            rtl_flush_output(a);
    }
    if (a->fd >= 0)
        close(a->fd);
    rtl_rx_free_all(a);
    rtl_config_fini(a);
    tlpb_reader_free(&a->rd);
    tlpb_obuf_free(&a->ob);
    free(a);
}

bool tlpb_rtl_finished(const struct tlpb_rtl *a, int *exit_code)
{
    if (a->connection_lost) {
        if (exit_code)
            *exit_code = 1;
        return true;
    }
    if (a->stop_requested) {
        if (exit_code)
            *exit_code = 0;
        return true;
    }
    return false;
}

void tlpb_rtl_request_stop(struct tlpb_rtl *a)
{
    a->stop_requested = 1;
}

bool tlpb_rtl_take_trigger(struct tlpb_rtl *a)
{
    bool t = a->trigger_pending;
    a->trigger_pending = false;
    return t;
}

void tlpb_rtl_get_stats(const struct tlpb_rtl *a, struct tlpb_rtl_stats *stats)
{
    *stats = a->stats;
}
