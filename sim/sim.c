/* libtlpbsim (see tlpb_sim.h): a simulator's connection to the bridge. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tlpb/guestmem.h"
#include "tlpb_sim.h"

#define DEFAULT_HANDSHAKE_TIMEOUT_MS 5000
#define DEFAULT_OUTPUT_LIMIT_BYTES (8u * 1024u * 1024u)
#define RECV_CHUNK_BYTES (64u * 1024u)
#define FLUSH_ROUNDS 4 /* output_ready may queue more: bounded per call */
/* Descriptors received and not yet claimed by a GuestMemory: more is a
 * protocol error (they are closed). */
#define MAX_PENDING_FDS (TLPB_GUESTMEM_MAX_FDS + 3u)

struct tlpb_sim {
    int fd;
    bool lost;
    char lost_reason[160];
    struct tlpb_frame_reader rd;
    struct tlpb_obuf ob;
    size_t output_limit_bytes;
    bool unsplit;
    bool output_blocked; /* a request was refused with -EAGAIN */
    bool urgent;
    struct tlpb_sim_callbacks cb;
    void *arg;
    char log_name[48];
    char device_name[64];
    enum tlpb_log_level log_level;
    /* coupled time (docs/protocol.md "Simulated time") */
    bool time_negotiated;   /* CAP_TIME_SYNC granted */
    bool time_coupled;      /* between COUPLED and FREE */
    uint64_t time_ps;       /* stamps output while coupled */
    uint64_t input_time_ps; /* stamp of the message being delivered */
    uint64_t last_progress_ns;
    uint64_t (*now_ns)(void); /* wall clock of the PROGRESS rate limit */
    /* shared guest memory (docs/protocol.md "Shared guest memory") */
    bool guest_memory_negotiated; /* CAP_GUEST_MEMORY granted */
    struct tlpb_guestmem guest_memory;
    int pending_fds[MAX_PENDING_FDS]; /* received (SCM_RIGHTS), in order */
    unsigned pending_fd_count;
};

static void sim_log(tlpb_sim *sim, enum tlpb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sim_log(tlpb_sim *sim, enum tlpb_log_level level, const char *fmt, ...)
{
    char message[512];
    va_list ap;

    if (!sim->cb.log && level > sim->log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (sim->cb.log)
        sim->cb.log(sim->arg, level, message);
    else
        fprintf(stderr, "%s[%s] %s: %s\n", sim->log_name, sim->device_name,
                tlpb_log_level_name(level), message);
}

/* The stream cannot go on: stop using it. The fd stays open (an event loop
 * may still watch it) but is shut down, so the bridge sees the end now. */
static int sim_lost(tlpb_sim *sim, const char *why)
{
    if (sim->lost)
        return -ECONNRESET;
    sim->lost = true;
    snprintf(sim->lost_reason, sizeof(sim->lost_reason), "%s", why);
    sim_log(sim, TLPB_LOG_ERROR, "lost the bridge connection: %s", why);
    shutdown(sim->fd, SHUT_RDWR);
    return -ECONNRESET;
}

/* ---- attach ---------------------------------------------------------------- */

static int attach(tlpb_sim *sim, const struct tlpb_sim_options *opts, char *err, size_t err_size)
{
    struct tlpb_devdesc_pb desc_pb;
    tlpb_devdesc_to_pb(&desc_pb, opts->description);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_SIMULATOR, opts->device_name,
                    opts->peer_name ? opts->peer_name : "simulator");
    hello.capabilities = opts->unsplit_dma ? TLPB__CAPABILITY__CAP_UNSPLIT_DMA : 0;
    if (opts->time_sync)
        hello.capabilities |= TLPB__CAPABILITY__CAP_TIME_SYNC;
    if (opts->guest_memory && opts->unsplit_dma)
        hello.capabilities |= TLPB__CAPABILITY__CAP_GUEST_MEMORY;
    hello.description = &desc_pb.msg;
    hello.completion_timeout_ms = opts->completion_timeout_ms;
    hello.clock_period_ps = opts->clock_period_ps;

    int timeout_ms = opts->handshake_timeout_ms > 0 ? opts->handshake_timeout_ms
                                                    : DEFAULT_HANDSHAKE_TIMEOUT_MS;
    Tlpb__Envelope *reply = tlpb_handshake(sim->fd, &sim->rd, &hello, timeout_ms, err, err_size);
    if (!reply)
        return -ECONNREFUSED;
    const Tlpb__HelloReply *hr = reply->hello_reply;
    if (hr->version_major != TLPB_PROTOCOL_MAJOR) {
        snprintf(err, err_size, "bridge speaks protocol %u.%u, this simulator %u.%u",
                 hr->version_major, hr->version_minor, TLPB_PROTOCOL_MAJOR, TLPB_PROTOCOL_MINOR);
        tlpb_envelope_free(reply);
        return -EPROTO;
    }
    sim->unsplit = opts->unsplit_dma && (hr->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA);
    sim->time_negotiated = opts->time_sync && (hr->capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC);
    sim->guest_memory_negotiated = opts->guest_memory && sim->unsplit &&
                                   (hr->capabilities & TLPB__CAPABILITY__CAP_GUEST_MEMORY);
    tlpb_envelope_free(reply);
    if (opts->time_sync && !sim->time_negotiated)
        sim_log(sim, TLPB_LOG_INFO, "the bridge has no coupled time: running free");
    if (opts->unsplit_dma && !sim->unsplit)
        sim_log(sim, TLPB_LOG_WARN, "the bridge refused unsplit DMA: using strict mode");

    uint32_t max_frame = sim->rd.max_frame_bytes;
    size_t limit = opts->output_limit_bytes ? opts->output_limit_bytes : DEFAULT_OUTPUT_LIMIT_BYTES;
    if (limit < 2u * (size_t)max_frame)
        limit = 2u * (size_t)max_frame;
    sim->output_limit_bytes = limit;
    tlpb_obuf_init(&sim->ob, limit, max_frame);
    int flags = fcntl(sim->fd, F_GETFL);
    if (flags < 0 || fcntl(sim->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int e = errno;
        snprintf(err, err_size, "fcntl: %s", strerror(e));
        return -e;
    }
    return 0;
}

int tlpb_sim_attach_fd(tlpb_sim **out, int fd, const struct tlpb_sim_options *opts,
                       const struct tlpb_sim_callbacks *cbs, void *arg, char *err,
                       size_t err_size)
{
    const char *reason = NULL;

    *out = NULL;
    if (!opts || !cbs || !cbs->tlp || !cbs->reset || !opts->description || !opts->device_name ||
        !opts->device_name[0] || (opts->time_sync && !cbs->time_sync)) {
        snprintf(err, err_size, "a device name, a description and the tlp and reset callbacks"
                                " (and time_sync with coupled time) are required");
        close(fd);
        return -EINVAL;
    }
    if (tlpb_devdesc_validate(opts->description, &reason) != 0) {
        snprintf(err, err_size, "bad device description: %s", reason ? reason : "?");
        close(fd);
        return -EINVAL;
    }
    tlpb_sim *sim = calloc(1, sizeof(*sim));
    if (!sim) {
        snprintf(err, err_size, "out of memory");
        close(fd);
        return -ENOMEM;
    }
    sim->fd = fd;
    sim->cb = *cbs;
    sim->arg = arg;
    sim->now_ns = tlpb_now_ns;
    snprintf(sim->log_name, sizeof(sim->log_name), "%s", opts->log_name ? opts->log_name : "tlpb-sim");
    snprintf(sim->device_name, sizeof(sim->device_name), "%s", opts->device_name);
    sim->log_level = opts->log_level;
    tlpb_reader_init(&sim->rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    int rc = attach(sim, opts, err, err_size);
    if (rc != 0) {
        tlpb_sim_close(sim);
        return rc;
    }
    *out = sim;
    return 0;
}

int tlpb_sim_connect(tlpb_sim **out, const char *address, const struct tlpb_sim_options *opts,
                     const struct tlpb_sim_callbacks *cbs, void *arg, char *err,
                     size_t err_size)
{
    *out = NULL;
    int fd = tlpb_connect(address, err, err_size);
    if (fd < 0)
        return fd;
    return tlpb_sim_attach_fd(out, fd, opts, cbs, arg, err, err_size);
}

void tlpb_sim_close(tlpb_sim *sim)
{
    if (!sim)
        return;
    if (sim->fd >= 0)
        close(sim->fd);
    tlpb_guestmem_unmap(&sim->guest_memory);
    for (unsigned i = 0; i < sim->pending_fd_count; i++)
        close(sim->pending_fds[i]);
    tlpb_reader_free(&sim->rd);
    tlpb_obuf_free(&sim->ob);
    free(sim);
}

int tlpb_sim_fd(const tlpb_sim *sim)
{
    return sim->fd;
}

bool tlpb_sim_unsplit_dma(const tlpb_sim *sim)
{
    return sim->unsplit;
}

bool tlpb_sim_guest_memory_negotiated(const tlpb_sim *sim)
{
    return sim->guest_memory_negotiated;
}

uint8_t *tlpb_sim_guest_memory(const tlpb_sim *sim, uint64_t addr, uint64_t bytes)
{
    return tlpb_guestmem_lookup(&sim->guest_memory, addr, bytes);
}

uint32_t tlpb_sim_max_frame_bytes(const tlpb_sim *sim)
{
    return sim->rd.max_frame_bytes;
}

bool tlpb_sim_connected(const tlpb_sim *sim)
{
    return !sim->lost;
}

const char *tlpb_sim_lost_reason(const tlpb_sim *sim)
{
    return sim->lost_reason;
}

/* ---- to the bridge ----------------------------------------------------------- */

int tlpb_sim_send_tlp(tlpb_sim *sim, const struct tlpb_tlp *tlp)
{
    bool completion = tlpb_tlp_is_completion(tlp->kind);
    struct tlpb_tlp stamped;

    if (sim->lost)
        return -ENOTCONN;
    if (sim->time_coupled && tlp->sim_time_ps == 0) {
        stamped = *tlp;
        stamped.sim_time_ps = sim->time_ps;
        tlp = &stamped;
    }
    int rc = tlpb_obuf_append_tlp(&sim->ob, tlp, completion);
    if (rc == -ENOBUFS) {
        sim->output_blocked = true;
        return -EAGAIN;
    }
    if (rc < 0) {
        sim_log(sim, TLPB_LOG_ERROR, "cannot queue %s: %s", tlpb_tlp_kind_name(tlp->kind),
                strerror(-rc));
        return rc;
    }
    if (tlp->kind != TLPB_TLP_MWR)
        sim->urgent = true; /* someone waits for it */
    return 0;
}

int tlpb_sim_send_interrupt(tlpb_sim *sim, Tlpb__InterruptKind kind, uint32_t vector)
{
    if (sim->lost)
        return -ENOTCONN;
    int rc = tlpb_obuf_append_interrupt_at(&sim->ob, kind, vector,
                                           sim->time_coupled ? sim->time_ps : 0);
    if (rc < 0) {
        sim_log(sim, TLPB_LOG_ERROR, "cannot queue %s interrupt %u: %s", tlpb_interrupt_kind_name(kind),
                vector, strerror(-rc));
        return rc;
    }
    sim->urgent = true;
    return 0;
}

int tlpb_sim_send_error(tlpb_sim *sim, const char *reason)
{
    if (sim->lost)
        return -ENOTCONN;
    int rc = tlpb_obuf_append_error(&sim->ob, reason);
    if (rc == 0)
        sim->urgent = true;
    return rc;
}

int tlpb_sim_send_dma_context(tlpb_sim *sim, bool write, uint64_t address, uint32_t length_bytes,
                              const char *text)
{
    if (sim->lost)
        return -ENOTCONN;
    Tlpb__DmaContext ctx;
    Tlpb__Envelope env;
    tlpb_dma_context_envelope(&env, &ctx, write, address, length_bytes, text);
    /* Forced, like the requests it goes ahead of once they are taken. */
    return tlpb_obuf_append(&sim->ob, &env, true);
}

int tlpb_sim_complete_config(tlpb_sim *sim, struct tlpb_cfgspace *cfg,
                             const struct tlpb_tlp *req, unsigned *changes)
{
    struct tlpb_tlp cpl;
    uint8_t data[4];
    const char *refused;

    *changes = 0;
    int rc = tlpb_cfgspace_complete_request(cfg, req, &cpl, data, &refused);
    if (rc < 0)
        return rc;
    if (refused)
        sim_log(sim, TLPB_LOG_WARN, "%s at %#x: completed with UR", refused, req->cfg_register);
    *changes = (unsigned)rc;
    return tlpb_sim_send_tlp(sim, &cpl);
}

int tlpb_sim_flush(tlpb_sim *sim)
{
    for (int round = 0; round < FLUSH_ROUNDS && !sim->lost; round++) {
        size_t pending = tlpb_obuf_pending(&sim->ob);
        if (pending == 0)
            break;
        ssize_t n = send(sim->fd, tlpb_obuf_head(&sim->ob), pending, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return sim_lost(sim, strerror(errno));
        }
        tlpb_obuf_consume(&sim->ob, (size_t)n);
        /* Room again: let refused DMA continue (it may queue more, which
         * the next round or call writes). */
        if (sim->output_blocked && tlpb_obuf_pending(&sim->ob) < sim->output_limit_bytes / 2) {
            sim->output_blocked = false;
            if (sim->cb.output_ready)
                sim->cb.output_ready(sim->arg);
        }
        if ((size_t)n < pending)
            break; /* the socket is full */
    }
    if (tlpb_obuf_pending(&sim->ob) == 0)
        sim->urgent = false;
    return sim->lost ? -ECONNRESET : 0;
}

int tlpb_sim_drain(tlpb_sim *sim, int timeout_ms)
{
    uint64_t deadline = tlpb_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;

    for (;;) {
        int rc = tlpb_sim_flush(sim);
        if (rc < 0)
            return rc;
        if (tlpb_obuf_pending(&sim->ob) == 0)
            return 0;
        uint64_t now = tlpb_now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = sim->fd, .events = POLLOUT};
        poll(&p, 1, (int)((deadline - now + 999999u) / 1000000u));
    }
}

size_t tlpb_sim_output_pending(const tlpb_sim *sim)
{
    return tlpb_obuf_pending(&sim->ob);
}

size_t tlpb_sim_output_limit(const tlpb_sim *sim)
{
    return sim->output_limit_bytes;
}

bool tlpb_sim_output_urgent(const tlpb_sim *sim)
{
    return sim->urgent;
}

/* ---- from the bridge --------------------------------------------------------- */

/* A protocol error by the bridge (docs/protocol.md, "Errors"): say why in
 * an Error, then end the connection. */
static void protocol_error(tlpb_sim *sim, const char *reason)
{
    sim_log(sim, TLPB_LOG_ERROR, "protocol error by the bridge: %s", reason);
    if (tlpb_sim_send_error(sim, reason) == 0)
        tlpb_sim_flush(sim); /* best effort: the socket is shut down next */
    sim_lost(sim, reason);
}

static void receive_tlp(tlpb_sim *sim, const Tlpb__Tlp *pb)
{
    struct tlpb_tlp tlp;
    const char *reason = "?";
    char error[200];

    struct tlpb_tlp_limits limits = {.max_payload_bytes = 0, .unsplit = sim->unsplit};
    /* A TLP that does not convert has a field out of range. */
    int rc = tlpb_tlp_from_pb(&tlp, pb, &reason) != 0 ? -ERANGE
                                                      : tlpb_tlp_validate(&tlp, &limits, &reason);
    if (rc == -ERANGE) {
        /* A field wider than PCIe allows: a malformed TLP, which PCIe
         * discards (no completion). */
        protocol_error(sim, tlpb_malformed_tlp_reason(error, sizeof(error), pb, reason));
        return;
    }
    if (rc != 0) {
        char text[160];
        tlpb_tlp_format(&tlp, text, sizeof(text));
        snprintf(error, sizeof(error), "%s rejected: %s", tlpb_tlp_kind_name(tlp.kind), reason);
        if (tlpb_tlp_is_non_posted(tlp.kind)) {
            /* A well-formed request that breaks a rule: its requester waits
             * for the UR. */
            struct tlpb_tlp cpl;
            uint16_t bdf = sim->cb.bus_device_function
                               ? sim->cb.bus_device_function(sim->arg)
                               : 0;
            tlpb_completion_error_for(&cpl, &tlp, bdf, TLPB_CPL_UR);
            tlpb_sim_send_tlp(sim, &cpl);
            sim_log(sim, TLPB_LOG_WARN, "request breaks a rule (%s), completed with UR: %s",
                    reason, text);
        } else {
            sim_log(sim, TLPB_LOG_WARN, "TLP breaks a rule (%s), dropped: %s", reason, text);
        }
        tlpb_sim_send_error(sim, error);
        return;
    }
    sim->input_time_ps = tlp.sim_time_ps;
    sim->cb.tlp(sim->arg, &tlp);
}

static void receive_time_sync(tlpb_sim *sim, const Tlpb__TimeSync *pb)
{
    char text[160];
    struct tlpb_sim_time_sync ts = {
        .kind = pb->kind,
        .sim_time_ps = pb->sim_time_ps,
        .sync_id = pb->sync_id,
        .grant_until_ps = pb->grant_until_ps,
    };

    if (!sim->time_negotiated) {
        snprintf(text, sizeof(text), "TimeSync from the bridge ignored: CAP_TIME_SYNC not negotiated");
        sim_log(sim, TLPB_LOG_WARN, "%s", text);
        tlpb_sim_send_error(sim, text);
        return;
    }
    switch (pb->kind) {
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED:
        /* The clock joins the host's: free-running time before does not
         * count (nothing stamped was sent), so the same guest gives the
         * same stamps however long the simulator ran before. Coupled
         * already (a repeated COUPLED), it only moves up. */
        if (!sim->time_coupled || pb->sim_time_ps > sim->time_ps)
            sim->time_ps = pb->sim_time_ps;
        sim->time_coupled = true;
        sim->last_progress_ns = sim->now_ns(); /* a PROGRESS only after a while */
        sim->input_time_ps = pb->sim_time_ps;
        sim_log(sim, TLPB_LOG_INFO, "coupled time from %.3f us of host time",
                (double)pb->sim_time_ps / 1e6);
        break;
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_FREE:
        sim->time_coupled = false;
        sim_log(sim, TLPB_LOG_INFO, "free-running: the coupled host left");
        break;
    case TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT:
        if (!sim->time_coupled || pb->sync_id == 0) {
            snprintf(text, sizeof(text), "TimeSync GRANT %s", pb->sync_id == 0 ? "with sync_id 0"
                                                                               : "while not coupled");
            protocol_error(sim, text);
            return;
        }
        sim->input_time_ps = pb->sim_time_ps;
        sim->last_progress_ns = sim->now_ns();
        break;
    default:
        snprintf(text, sizeof(text), "TimeSync kind %d from the bridge ignored", (int)pb->kind);
        sim_log(sim, TLPB_LOG_WARN, "%s", text);
        tlpb_sim_send_error(sim, text);
        return;
    }
    sim->cb.time_sync(sim->arg, &ts);
}

/* The bridge's map of guest memory (CAP_GUEST_MEMORY): it replaces the one
 * in use; the descriptors that came with it are claimed (and closed: the
 * mappings keep the memory). A bad map is refused with an Error and no map
 * stays: DMA goes as messages. */
static void receive_guest_memory(tlpb_sim *sim, const Tlpb__GuestMemory *msg)
{
    char why[200];
    unsigned take = msg->fd_count < sim->pending_fd_count ? msg->fd_count : sim->pending_fd_count;
    int fds[MAX_PENDING_FDS];
    memcpy(fds, sim->pending_fds, take * sizeof(int));
    sim->pending_fd_count -= take;
    memmove(sim->pending_fds, sim->pending_fds + take, sim->pending_fd_count * sizeof(int));
    struct tlpb_guestmem next;
    int rc = -1;
    if (!sim->guest_memory_negotiated)
        snprintf(why, sizeof(why), "GuestMemory refused: CAP_GUEST_MEMORY not negotiated");
    else
        rc = tlpb_guestmem_map(&next, msg, fds, take, why, sizeof(why));
    for (unsigned i = 0; i < take; i++)
        close(fds[i]);
    tlpb_guestmem_unmap(&sim->guest_memory);
    if (rc != 0) {
        /* "GuestMemory..." leads the Error: the bridge knows it refused. */
        sim_log(sim, TLPB_LOG_WARN, "%s; DMA goes as messages", why);
        tlpb_sim_send_error(sim, why);
        return;
    }
    sim->guest_memory = next;
    if (next.count)
        sim_log(sim, TLPB_LOG_INFO, "guest memory shared: %u regions, %llu MiB: fast DMA inside"
                " it goes directly", next.count, (unsigned long long)(next.bytes >> 20));
    else
        sim_log(sim, TLPB_LOG_INFO, "guest memory withdrawn: DMA goes as messages");
}

static void receive_frame(tlpb_sim *sim, const uint8_t *frame, size_t len)
{
    const char *reason = "?";
    Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);
    char text[160], text2[160];

    if (!env) {
        sim_log(sim, TLPB_LOG_WARN, "bad frame from the bridge ignored: %s", reason);
        tlpb_sim_send_error(sim, reason);
        return;
    }
    switch (env->body_case) {
    case TLPB__ENVELOPE__BODY_TLP:
        receive_tlp(sim, env->tlp);
        break;
    case TLPB__ENVELOPE__BODY_RESET:
        if (env->reset->kind == TLPB__RESET_KIND__RESET_FUNCTION_LEVEL ||
            env->reset->kind == TLPB__RESET_KIND__RESET_HOT) {
            sim_log(sim, TLPB_LOG_DEBUG, "%s from the bridge",
                    tlpb_reset_kind_name(env->reset->kind));
            sim->input_time_ps = env->reset->sim_time_ps;
            sim->cb.reset(sim->arg, env->reset->kind);
        } else {
            /* A field out of range: not performed, a protocol error. */
            snprintf(text, sizeof(text), "Reset kind %d out of range", (int)env->reset->kind);
            protocol_error(sim, text);
        }
        break;
    case TLPB__ENVELOPE__BODY_EVENT:
        sim_log(sim, TLPB_LOG_INFO, "bridge event %s: backend %s %s",
                tlpb_event_kind_name(env->event->kind),
                tlpb_log_escape(text, sizeof(text), env->event->backend, 64),
                tlpb_log_escape(text2, sizeof(text2), env->event->detail, 120));
        break;
    case TLPB__ENVELOPE__BODY_ERROR:
        sim_log(sim, TLPB_LOG_WARN, "bridge reports: %s",
                tlpb_log_escape(text, sizeof(text), env->error->reason, 120));
        break;
    case TLPB__ENVELOPE__BODY_TIME_SYNC:
        receive_time_sync(sim, env->time_sync);
        break;
    case TLPB__ENVELOPE__BODY_GUEST_MEMORY:
        receive_guest_memory(sim, env->guest_memory);
        break;
    default:
        /* A message in the wrong direction: an Error, the connection goes on. */
        snprintf(text, sizeof(text), "%s from the bridge ignored",
                 tlpb_message_name(env->body_case));
        sim_log(sim, TLPB_LOG_WARN, "%s", text);
        tlpb_sim_send_error(sim, text);
        break;
    }
    tlpb_envelope_free(env);
}

/* Every complete frame in the reader to the callbacks. */
static int receive_buffered_frames(tlpb_sim *sim)
{
    while (!sim->lost) {
        const uint8_t *frame;
        size_t len;
        const char *reason = "?";
        int rc = tlpb_reader_next(&sim->rd, &frame, &len, &reason);
        if (rc == 0)
            return 0;
        if (rc < 0)
            return sim_lost(sim, reason); /* the stream cannot be resynchronised */
        receive_frame(sim, frame, len);
    }
    return -ECONNRESET;
}

/* recv that keeps descriptors sent with SCM_RIGHTS (they arrive with the
 * first byte of their frame, so before it is parsed), up to MAX_PENDING_FDS
 * unclaimed; more, or any without CAP_GUEST_MEMORY, are closed and said in
 * an Error. */
static ssize_t receive_with_fds(tlpb_sim *sim, uint8_t *dst, size_t space)
{
    unsigned room = sim->guest_memory_negotiated ? MAX_PENDING_FDS - sim->pending_fd_count : 0;
    unsigned got;
    bool dropped;
    ssize_t n = tlpb_recv_with_fds(sim->fd, dst, space, MSG_DONTWAIT,
                                   sim->pending_fds + sim->pending_fd_count, room, &got, &dropped);
    if (n < 0)
        return n;
    sim->pending_fd_count += got;
    if (dropped) {
        char why[160];
        snprintf(why, sizeof(why), "GuestMemory descriptors refused: %s",
                 sim->guest_memory_negotiated ? "more than a GuestMemory may carry"
                                              : "CAP_GUEST_MEMORY not negotiated");
        sim_log(sim, TLPB_LOG_WARN, "%s", why);
        tlpb_sim_send_error(sim, why);
    }
    return n;
}

int tlpb_sim_read_input(tlpb_sim *sim, size_t max_bytes)
{
    size_t total = 0;

    if (sim->lost)
        return -ECONNRESET;
    int rc = receive_buffered_frames(sim);
    while (rc == 0 && total < max_bytes) {
        size_t space;
        uint8_t *dst = tlpb_reader_space(&sim->rd, RECV_CHUNK_BYTES, &space);
        if (!dst)
            return sim_lost(sim, "out of memory for input");
        ssize_t n = receive_with_fds(sim, dst, space);
        if (n == 0)
            return sim_lost(sim, "the bridge closed the connection");
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return sim_lost(sim, strerror(errno));
            return 0;
        }
        tlpb_reader_commit(&sim->rd, (size_t)n);
        total += (size_t)n;
        rc = receive_buffered_frames(sim);
        if ((size_t)n < space)
            break; /* drained for now */
    }
    return rc;
}

int tlpb_sim_wait(tlpb_sim *sim, int timeout_ms)
{
    if (sim->lost)
        return -ECONNRESET;
    struct pollfd p = {.fd = sim->fd, .events = POLLIN};
    if (tlpb_obuf_pending(&sim->ob) > 0)
        p.events |= POLLOUT;
    int rc = poll(&p, 1, timeout_ms);
    if (rc <= 0)
        return 0; /* timeout, or a signal (the caller looks at its stop flag) */
    if (p.revents & POLLOUT) {
        rc = tlpb_sim_flush(sim);
        if (rc < 0)
            return rc;
    }
    return (p.revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : 0;
}

/* ---- coupled time -------------------------------------------------------------- */

bool tlpb_sim_time_negotiated(const tlpb_sim *sim)
{
    return sim->time_negotiated;
}

bool tlpb_sim_time_coupled(const tlpb_sim *sim)
{
    return sim->time_coupled;
}

uint64_t tlpb_sim_input_time_ps(const tlpb_sim *sim)
{
    return sim->input_time_ps;
}

void tlpb_sim_set_time_ps(tlpb_sim *sim, uint64_t t_ps)
{
    if (t_ps > sim->time_ps || !sim->time_coupled) /* stamps never decrease */
        sim->time_ps = t_ps;
}

uint64_t tlpb_sim_time_ps(const tlpb_sim *sim)
{
    return sim->time_ps;
}

static int send_time_sync(tlpb_sim *sim, const Tlpb__TimeSync *ts)
{
    if (sim->lost)
        return -ENOTCONN;
    if (!sim->time_negotiated)
        return -EINVAL;
    int rc = tlpb_obuf_append_time_sync(&sim->ob, ts);
    if (rc < 0)
        return rc;
    sim->urgent = true;
    sim->last_progress_ns = sim->now_ns();
    return 0;
}

int tlpb_sim_send_reached(tlpb_sim *sim, uint64_t sync_id, uint64_t t_ps, bool idle,
                          uint64_t next_event_ps, uint64_t clocked_cycles)
{
    Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
    ts.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED;
    ts.sync_id = sync_id;
    ts.sim_time_ps = t_ps;
    ts.idle = idle;
    ts.next_event_ps = idle ? next_event_ps : 0;
    ts.clocked_cycles = clocked_cycles;
    return send_time_sync(sim, &ts);
}

int tlpb_sim_send_progress(tlpb_sim *sim, uint64_t t_ps, uint64_t clocked_cycles)
{
    if (!sim->time_coupled || sim->lost)
        return 0;
    if (sim->now_ns() - sim->last_progress_ns < TLPB_SIM_PROGRESS_INTERVAL_NS)
        return 0;
    Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
    ts.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS;
    ts.sim_time_ps = t_ps;
    ts.clocked_cycles = clocked_cycles;
    int rc = send_time_sync(sim, &ts);
    return rc < 0 ? rc : tlpb_sim_flush(sim);
}

void tlpb_sim_set_wall_clock(tlpb_sim *sim, uint64_t (*now_ns)(void))
{
    sim->now_ns = now_ns ? now_ns : tlpb_now_ns;
}
