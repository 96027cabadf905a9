/* Listening sockets, connections, the handshake and frame dispatch. Each
 * read callback parses every complete frame it has, routes each one, and
 * flushes the resulting output once: one write per peer per batch. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge.h"

static void conn_process(struct conn *c);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_free_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    tlpb_reader_free(&c->rd);
    tlpb_obuf_free(&c->ob);
    tlpb_obuf_free(&c->inflight);
    free(c);
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    if (reason)
        bridge_log(LOG_INFO, "%s: closing: %s", c->label, reason);
    struct bridge *b = c->bridge;
    for (struct conn **pp = &b->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    if (c->device) {
        struct device *d = c->device;
        c->device = NULL;
        if (d->host == c)
            device_host_detached(d);
        else if (d->sim == c)
            device_sim_detached(d, reason ? reason : "connection closed");
    }
    uv_read_stop(&c->h.stream);
    uv_close(&c->h.handle, conn_free_cb);
    conn_resume_paused(b);
}

/* Send an Error message and drop the connection: protocol violations. */
static void conn_fail(struct conn *c, const char *reason)
{
    bridge_log(LOG_ERROR, "%s: protocol error: %s", c->label, reason);
    tlpb_obuf_append_error(&c->ob, reason);
    /* Best effort: the error goes out with whatever is queued. */
    if (!c->write_in_flight && tlpb_obuf_pending(&c->ob)) {
        uv_buf_t buf = uv_buf_init((char *)tlpb_obuf_head(&c->ob), (unsigned)tlpb_obuf_pending(&c->ob));
        uv_try_write(&c->h.stream, &buf, 1);
    }
    conn_close(c, NULL);
}

static void write_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->write_in_flight = false;
    c->inflight.start = c->inflight.end = 0;
    if (status < 0) {
        if (!c->closing)
            conn_close(c, uv_strerror(status));
        return;
    }
    if (c->closing)
        return;
    conn_flush(c);
    if (tlpb_obuf_pending(&c->ob) < BRIDGE_QUEUE_LOW_BYTES)
        conn_resume_paused(c->bridge);
}

void conn_flush(struct conn *c)
{
    if (c->closing || c->write_in_flight || tlpb_obuf_pending(&c->ob) == 0)
        return;
    /* Try the fast path first: most batches fit the socket buffer. */
    uv_buf_t buf = uv_buf_init((char *)tlpb_obuf_head(&c->ob), (unsigned)tlpb_obuf_pending(&c->ob));
    int n = uv_try_write(&c->h.stream, &buf, 1);
    if (n > 0) {
        c->frames_out++;
        tlpb_obuf_consume(&c->ob, (size_t)n);
    } else if (n < 0 && n != UV_EAGAIN) {
        conn_close(c, uv_strerror(n));
        return;
    }
    if (tlpb_obuf_pending(&c->ob) == 0)
        return;
    /* The rest goes asynchronously from a buffer that appends cannot move. */
    struct tlpb_obuf tmp = c->inflight;
    c->inflight = c->ob;
    c->ob = tmp;
    c->ob.start = c->ob.end = 0;
    c->ob.limit_bytes = c->inflight.limit_bytes;
    c->ob.max_frame_bytes = c->inflight.max_frame_bytes;
    buf = uv_buf_init((char *)tlpb_obuf_head(&c->inflight), (unsigned)tlpb_obuf_pending(&c->inflight));
    c->write_req.data = c;
    c->write_in_flight = true;
    int rc = uv_write(&c->write_req, &c->h.stream, &buf, 1, write_cb);
    if (rc < 0) {
        c->write_in_flight = false;
        conn_close(c, uv_strerror(rc));
    }
}

bool conn_has_room(const struct conn *c)
{
    size_t queued = tlpb_obuf_pending(&c->ob) + tlpb_obuf_pending(&c->inflight);
    return queued < BRIDGE_QUEUE_HIGH_BYTES;
}

void conn_resume_paused(struct bridge *b)
{
    for (struct conn *c = b->conns; c; c = c->next) {
        if (c->read_paused && !c->closing) {
            c->read_paused = false;
            conn_process(c);
        }
    }
    for (unsigned i = 0; i < b->device_count; i++)
        device_output_ready(&b->devices[i]);
}

int conn_send_tlp(struct conn *c, const struct tlpb_tlp *tlp, bool force)
{
    if (!c || c->closing)
        return -ENOTCONN;
    int rc = tlpb_obuf_append_tlp(&c->ob, tlp, force);
    if (rc == -EMSGSIZE)
        bridge_log(LOG_ERROR, "%s: TLP larger than the peer's max frame, dropped", c->label);
    return rc;
}

int conn_send_envelope(struct conn *c, const Tlpb__Envelope *env)
{
    if (!c || c->closing)
        return -ENOTCONN;
    return tlpb_obuf_append(&c->ob, env, true);
}

void conn_send_interrupt(struct conn *c, Tlpb__InterruptKind kind, uint32_t vector)
{
    if (c && !c->closing)
        tlpb_obuf_append_interrupt(&c->ob, kind, vector);
}

void conn_send_event(struct conn *c, Tlpb__EventKind kind, const char *backend,
                     const char *detail)
{
    Tlpb__Event ev = TLPB__EVENT__INIT;
    ev.kind = kind;
    ev.backend = (char *)backend;
    ev.detail = (char *)detail;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    conn_send_envelope(c, &env);
}

static void send_hello_reply(struct conn *c, bool accepted, const char *error,
                             const struct device *d)
{
    Tlpb__HelloReply reply = TLPB__HELLO_REPLY__INIT;
    reply.accepted = accepted;
    reply.error = (char *)(error ? error : "");
    reply.version_major = TLPB_PROTOCOL_MAJOR;
    reply.version_minor = TLPB_PROTOCOL_MINOR;
    reply.max_frame_bytes = c->rd.max_frame_bytes;
    reply.capabilities = c->capabilities;
    struct tlpb_devdesc_pb desc_pb;
    if (d) {
        tlpb_devdesc_to_pb(&desc_pb, &d->desc);
        reply.description = &desc_pb.msg;
        reply.simulator_attached = d->backend != BACKEND_FALLBACK;
        reply.backend = (char *)backend_name(d->backend);
    } else {
        reply.backend = (char *)"";
    }
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO_REPLY;
    env.hello_reply = &reply;
    conn_send_envelope(c, &env);
}

static bool valid_device_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= BRIDGE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

/* Refuse a Hello: tell the peer why, then drop it. */
static void refuse(struct conn *c, const char *why)
{
    bridge_log(LOG_WARN, "%s: handshake refused: %s", c->label, why);
    send_hello_reply(c, false, why, NULL);
    conn_flush(c);
    conn_close(c, NULL);
}

static void handle_hello(struct conn *c, const Tlpb__Hello *hello)
{
    char why[256];
    if (hello->version_major != TLPB_PROTOCOL_MAJOR) {
        snprintf(why, sizeof(why), "incompatible protocol version %u.%u (bridge speaks %u.%u)",
                 hello->version_major, hello->version_minor, TLPB_PROTOCOL_MAJOR,
                 TLPB_PROTOCOL_MINOR);
        refuse(c, why);
        return;
    }
    if (c->is_tcp && !c->is_loopback && c->bridge->cfg->token[0] &&
        strcmp(hello->token, c->bridge->cfg->token) != 0) {
        refuse(c, "bad or missing token");
        return;
    }
    if (hello->max_frame_bytes < TLPB_MIN_MAX_FRAME_BYTES) {
        snprintf(why, sizeof(why), "max_frame_bytes %u below the minimum %u",
                 hello->max_frame_bytes, TLPB_MIN_MAX_FRAME_BYTES);
        refuse(c, why);
        return;
    }
    uint32_t max_frame = hello->max_frame_bytes;
    if (max_frame > TLPB_DEFAULT_MAX_FRAME_BYTES)
        max_frame = TLPB_DEFAULT_MAX_FRAME_BYTES;
    c->rd.max_frame_bytes = max_frame;
    c->ob.max_frame_bytes = max_frame;
    c->inflight.max_frame_bytes = max_frame;
    c->capabilities = hello->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA;
    snprintf(c->peer_name, sizeof(c->peer_name), "%s", hello->peer_name);

    if (hello->role == TLPB__ROLE__ROLE_CONTROL) {
        c->role = hello->role;
        snprintf(c->label, sizeof(c->label), "control[%s]", c->peer_name);
        send_hello_reply(c, true, NULL, NULL);
        return;
    }
    if (hello->role != TLPB__ROLE__ROLE_HOST && hello->role != TLPB__ROLE__ROLE_SIMULATOR) {
        refuse(c, "unknown role");
        return;
    }
    if (!valid_device_name(hello->device_name)) {
        refuse(c, "device name missing or not [A-Za-z0-9_.-]{1,63}");
        return;
    }
    struct device *d = bridge_find_device(c->bridge, hello->device_name);
    if (!d) {
        snprintf(why, sizeof(why), "unknown device name '%s'", hello->device_name);
        refuse(c, why);
        return;
    }
    snprintf(c->label, sizeof(c->label), "%s[%s]", tlpb_role_name(hello->role), d->cfg->name);
    if (hello->role == TLPB__ROLE__ROLE_HOST) {
        if (d->host) {
            refuse(c, "device already has a host connected");
            return;
        }
        c->role = hello->role;
        c->device = d;
        send_hello_reply(c, true, NULL, d);
        device_host_attached(d, c);
        return;
    }
    if (d->sim) {
        refuse(c, "device already has a simulator attached");
        return;
    }
    /* Fast (unsplit) DMA trades PCIe fidelity for speed: only where the
     * device's configuration says so, so a strict device stays strict. */
    if (!d->cfg->fast_dma && (c->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA)) {
        bridge_log(LOG_INFO, "%s: device %s is configured for strict DMA: unsplit DMA not granted",
                   c->label, d->cfg->name);
        c->capabilities &= ~(uint64_t)TLPB__CAPABILITY__CAP_UNSPLIT_DMA;
    }
    struct tlpb_devdesc desc;
    const char *reason = NULL;
    if (!hello->description) {
        refuse(c, "simulator Hello carries no device description");
        return;
    }
    if (tlpb_devdesc_from_pb(&desc, hello->description, &reason) != 0) {
        snprintf(why, sizeof(why), "bad device description: %s", reason);
        refuse(c, why);
        return;
    }
    /* Refuse a simulator for another device before accepting it. */
    if (device_sim_check(d, &desc, why, sizeof(why)) != 0) {
        refuse(c, why);
        return;
    }
    c->role = hello->role;
    c->device = d;
    c->completion_timeout_ms = hello->completion_timeout_ms;
    send_hello_reply(c, true, NULL, d);
    if (device_sim_attach(d, c, &desc, why, sizeof(why)) != 0) {
        c->role = TLPB__ROLE__ROLE_UNSPECIFIED;
        c->device = NULL;
        tlpb_obuf_append_error(&c->ob, why);
        conn_flush(c);
        conn_close(c, why);
    }
}

static struct tlpb_tlp_limits conn_limits(const struct conn *c)
{
    struct tlpb_tlp_limits lim = {.max_payload_bytes = 4096,
                                  .unsplit = (c->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA) != 0};
    return lim;
}

/* Returns false when processing must pause (destination full). */
static bool dispatch(struct conn *c, Tlpb__Envelope *env)
{
    if (c->role == TLPB__ROLE__ROLE_UNSPECIFIED) {
        if (env->body_case != TLPB__ENVELOPE__BODY_HELLO) {
            conn_fail(c, "first message must be Hello");
            return false;
        }
        handle_hello(c, env->hello);
        return true;
    }
    switch (env->body_case) {
    case TLPB__ENVELOPE__BODY_TLP: {
        if (!c->device)
            break;
        struct tlpb_tlp tlp;
        const char *reason = NULL;
        if (tlpb_tlp_from_pb(&tlp, env->tlp, &reason) != 0) {
            /* A field wider than PCIe allows. The framing is intact, so the
             * connection goes on; a request whose tag fits still gets UR. */
            const Tlpb__Tlp *pb = env->tlp;
            char msg[256];
            c->device->stats.rejected_tlps++;
            snprintf(msg, sizeof(msg), "rejected TLP (kind %d, tag %u): %s", (int)pb->kind,
                     pb->tag, reason);
            bridge_log(LOG_WARN, "%s: %s", c->label, msg);
            tlpb_obuf_append_error(&c->ob, msg);
            if (tlpb_tlp_is_non_posted((enum tlpb_tlp_kind)pb->kind) && pb->tag <= 0xFF) {
                struct tlpb_tlp req = {.kind = (enum tlpb_tlp_kind)pb->kind,
                                       .requester_id = (uint16_t)pb->requester_id,
                                       .tag = (uint8_t)pb->tag, .length_dw = 1,
                                       .bar_hint = TLPB_NO_BAR};
                struct tlpb_tlp cpl;
                tlpb_completion_error_for(&cpl, &req, (uint16_t)pb->completer_id, TLPB_CPL_UR);
                conn_send_tlp(c, &cpl, true);
            }
            break;
        }
        struct tlpb_tlp_limits lim = conn_limits(c);
        if (tlpb_tlp_validate(&tlp, &lim, &reason) != 0) {
            char msg[256];
            c->device->stats.rejected_tlps++;
            snprintf(msg, sizeof(msg), "rejected %s tag %u: %s", tlpb_tlp_kind_name(tlp.kind),
                     tlp.tag, reason);
            bridge_log(LOG_WARN, "%s: %s", c->label, msg);
            tlpb_obuf_append_error(&c->ob, msg);
            /* A rejected request still gets its completion: UR. */
            if (tlpb_tlp_is_non_posted(tlp.kind)) {
                struct tlpb_tlp cpl;
                tlpb_completion_error_for(&cpl, &tlp, tlp.completer_id, TLPB_CPL_UR);
                conn_send_tlp(c, &cpl, true);
            }
            break;
        }
        if (c->role == TLPB__ROLE__ROLE_HOST)
            device_tlp_from_host(c->device, &tlp);
        else
            device_tlp_from_device(c->device, &tlp);
        break;
    }
    case TLPB__ENVELOPE__BODY_INTERRUPT:
        if (c->role == TLPB__ROLE__ROLE_SIMULATOR && c->device)
            device_interrupt_from_device(c->device, env->interrupt->kind, env->interrupt->vector);
        else
            bridge_log(LOG_WARN, "%s: Interrupt from a non-simulator ignored", c->label);
        break;
    case TLPB__ENVELOPE__BODY_RESET:
        if (c->role == TLPB__ROLE__ROLE_HOST && c->device)
            device_reset_from_host(c->device, env->reset->kind);
        break;
    case TLPB__ENVELOPE__BODY_CONTROL_REQUEST:
        if (c->role == TLPB__ROLE__ROLE_CONTROL)
            control_handle(c, env->control_request);
        break;
    case TLPB__ENVELOPE__BODY_ERROR:
        bridge_log(LOG_WARN, "%s: peer reports: %s", c->label, env->error->reason);
        break;
    case TLPB__ENVELOPE__BODY_HELLO:
        conn_fail(c, "second Hello on an established connection");
        return false;
    case TLPB__ENVELOPE__BODY_TIME_SYNC:
        break; /* reserved */
    default:
        bridge_log(LOG_WARN, "%s: unexpected message %d ignored", c->label, (int)env->body_case);
        break;
    }
    return true;
}

/* Where frames from c go, for backpressure. */
static bool destination_has_room(const struct conn *c)
{
    const struct device *d = c->device;
    if (!d || c->role == TLPB__ROLE__ROLE_CONTROL)
        return conn_has_room(c);
    if (c->role == TLPB__ROLE__ROLE_HOST)
        return conn_has_room(c) && device_accepts_from_host(d);
    return device_accepts_from_device(d);
}

static void conn_process(struct conn *c)
{
    const uint8_t *frame;
    size_t len;
    const char *reason = NULL;
    while (!c->closing) {
        if (c->role != TLPB__ROLE__ROLE_UNSPECIFIED && !destination_has_room(c)) {
            c->read_paused = true;
            if (c->reading) {
                uv_read_stop(&c->h.stream);
                c->reading = false;
            }
            break;
        }
        int rc = tlpb_reader_next(&c->rd, &frame, &len, &reason);
        if (rc == 0)
            break;
        if (rc < 0) {
            conn_fail(c, reason);
            break;
        }
        c->frames_in++;
        Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);
        if (!env) {
            conn_fail(c, reason);
            break;
        }
        dispatch(c, env);
        tlpb_envelope_free(env);
    }
    if (c->closing)
        return;
    if (!c->read_paused && !c->reading) {
        uv_read_start(&c->h.stream, alloc_cb, read_cb);
        c->reading = true;
    }
    /* Flush everything this batch produced, for every peer. */
    for (struct conn *o = c->bridge->conns; o; o = o->next)
        conn_flush(o);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    size_t space = 0;
    uint8_t *p = tlpb_reader_space(&c->rd, 64 * 1024, &space);
    if (!p) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)p, (unsigned)(space > UINT32_MAX ? UINT32_MAX : space));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread == UV_ENOBUFS) {
        conn_close(c, "out of memory for inbound frame");
        return;
    }
    if (nread < 0) {
        size_t partial = c->rd.end - c->rd.start;
        if (nread == UV_EOF && partial > 0) {
            /* The stream ended inside a frame: a truncated frame. */
            char why[160];
            snprintf(why, sizeof(why),
                     "truncated frame: the connection ended %zu bytes into an incomplete frame",
                     partial);
            bridge_log(LOG_ERROR, "%s: protocol error: %s", c->label, why);
            conn_close(c, why);
            return;
        }
        conn_close(c, nread == UV_EOF ? "peer closed the connection" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    tlpb_reader_commit(&c->rd, (size_t)nread);
    conn_process(c);
}

static void start_conn(struct bridge *b, struct conn *c)
{
    /* As on the client side: several large DMA frames in flight each way. */
    uv_send_buffer_size(&c->h.handle, &(int){4 * 1024 * 1024});
    uv_recv_buffer_size(&c->h.handle, &(int){4 * 1024 * 1024});
    c->bridge = b;
    c->h.handle.data = c;
    c->role = TLPB__ROLE__ROLE_UNSPECIFIED;
    /* Until the handshake agrees on more, a peer gets the small maximum. */
    tlpb_reader_init(&c->rd, TLPB_MIN_MAX_FRAME_BYTES);
    tlpb_obuf_init(&c->ob, BRIDGE_QUEUE_HIGH_BYTES, TLPB_DEFAULT_MAX_FRAME_BYTES);
    tlpb_obuf_init(&c->inflight, BRIDGE_QUEUE_HIGH_BYTES, TLPB_DEFAULT_MAX_FRAME_BYTES);
    c->next = b->conns;
    b->conns = c;
    uv_read_start(&c->h.stream, alloc_cb, read_cb);
    c->reading = true;
}

static void on_unix_connection(uv_stream_t *server, int status)
{
    struct bridge *b = server->data;
    if (status < 0) {
        bridge_log(LOG_WARN, "accept: %s", uv_strerror(status));
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    uv_pipe_init(b->loop, &c->h.pipe, 0);
    if (uv_accept(server, &c->h.stream) != 0) {
        c->h.handle.data = c;
        c->closing = true;
        uv_close(&c->h.handle, conn_free_cb);
        return;
    }
    snprintf(c->label, sizeof(c->label), "unix-peer");
    c->is_loopback = true;
    start_conn(b, c);
}

static void on_tcp_connection(uv_stream_t *server, int status)
{
    struct bridge *b = server->data;
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    uv_tcp_init(b->loop, &c->h.tcp);
    if (uv_accept(server, &c->h.stream) != 0) {
        c->h.handle.data = c;
        c->closing = true;
        uv_close(&c->h.handle, conn_free_cb);
        return;
    }
    uv_tcp_nodelay(&c->h.tcp, 1);
    c->is_tcp = true;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char addr[64] = "?";
    if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            uv_ip4_name(in, addr, sizeof(addr));
            c->is_loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(in6, addr, sizeof(addr));
            c->is_loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
        }
    }
    snprintf(c->label, sizeof(c->label), "tcp-peer[%s]", addr);
    start_conn(b, c);
}

/* A peer that is already connected (one end of a socketpair, an inherited
 * fd): served exactly as an accepted unix-socket peer. */
int bridge_adopt_fd(struct bridge *b, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return UV_ENOMEM;
    uv_pipe_init(b->loop, &c->h.pipe, 0);
    int rc = uv_pipe_open(&c->h.pipe, fd);
    if (rc != 0) {
        c->h.handle.data = c;
        c->closing = true;
        uv_close(&c->h.handle, conn_free_cb);
        return rc;
    }
    snprintf(c->label, sizeof(c->label), "adopted-peer");
    c->is_loopback = true;
    start_conn(b, c);
    return 0;
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct bridge *b = sig->data;
    bridge_log(LOG_INFO, "signal %d: shutting down", signum);
    bridge_stop(b);
}

static int listen_unix(struct bridge *b, const char *path, char *err, size_t err_size)
{
    uv_pipe_init(b->loop, &b->unix_listener, 0);
    b->unix_listener.data = b;
    b->unix_init = true;
    /* A stale socket from a previous run would make bind fail; only remove a
     * socket, never another kind of file. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        /* ...but never the socket of a bridge that is still running. */
        char probe_err[256];
        int fd = tlpb_connect(path, probe_err, sizeof(probe_err));
        if (fd >= 0) {
            close(fd);
            snprintf(err, err_size, "listen on %s: another bridge is listening there", path);
            return -1;
        }
        unlink(path);
    }
    int rc = uv_pipe_bind(&b->unix_listener, path);
    if (rc == 0) {
        b->unix_bound = true;
        rc = chmod(path, 0600) == 0 ? 0 : uv_translate_sys_error(errno);
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&b->unix_listener, 64, on_unix_connection);
    if (rc) {
        snprintf(err, err_size, "listen on %s: %s", path, uv_strerror(rc));
        return -1;
    }
    bridge_log(LOG_INFO, "listening on unix:%s", path);
    return 0;
}

static int listen_tcp(struct bridge *b, const char *hostport, char *err, size_t err_size)
{
    char host[128];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof(host)) {
        snprintf(err, err_size, "TCP listen address must be HOST:PORT, got %s", hostport);
        return -1;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!*(colon + 1) || *end || port < 0 || port > 65535) {
        snprintf(err, err_size, "bad TCP port in %s", hostport);
        return -1;
    }
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, err_size, "bad TCP host in %s (give a numeric address)", hostport);
        return -1;
    }
    bool loopback = strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
    if (!loopback && !b->cfg->token[0]) {
        snprintf(err, err_size,
                 "refusing to listen on non-loopback %s without a token (--token or token = ...)",
                 hostport);
        return -1;
    }
    uv_tcp_init(b->loop, &b->tcp_listener);
    b->tcp_listener.data = b;
    b->tcp_init = true;
    int rc = uv_tcp_bind(&b->tcp_listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&b->tcp_listener, 64, on_tcp_connection);
    if (rc) {
        snprintf(err, err_size, "listen on tcp:%s: %s", hostport, uv_strerror(rc));
        return -1;
    }
    b->tcp_listening = true;
    /* The port actually bound (port 0 asks the kernel for a free one). */
    struct sockaddr_storage bound;
    int bound_len = sizeof(bound);
    char bound_host[64] = "?";
    int bound_port = (int)port;
    if (uv_tcp_getsockname(&b->tcp_listener, (struct sockaddr *)&bound, &bound_len) == 0) {
        if (bound.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&bound, bound_host, sizeof(bound_host));
            bound_port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        } else if (bound.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&bound, bound_host, sizeof(bound_host));
            bound_port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        }
    }
    bridge_log(LOG_INFO, "listening on tcp:%s:%d", bound_host, bound_port);
    return 0;
}

int bridge_start(struct bridge *b, uv_loop_t *loop, struct bridge_config *cfg, char *err,
                 size_t err_size)
{
    b->loop = loop;
    b->cfg = cfg;
    b->started_ns = tlpb_now_ns();
    for (unsigned i = 0; i < cfg->device_count; i++) {
        if (device_init(&b->devices[i], b, &cfg->devices[i], err, err_size) != 0) {
            device_fini(&b->devices[i]); /* what it set up before failing */
            return -1;
        }
        b->device_count++;
    }
    if (cfg->trace_path[0] && trace_open(b, cfg->trace_path, err, err_size) != 0)
        return -1;
    if (listen_unix(b, cfg->listen_path, err, err_size) != 0)
        return -1;
    if (cfg->tcp_address[0] && listen_tcp(b, cfg->tcp_address, err, err_size) != 0)
        return -1;
    uv_signal_init(loop, &b->sigint);
    uv_signal_init(loop, &b->sigterm);
    b->signals_init = true;
    b->sigint.data = b->sigterm.data = b;
    uv_signal_start(&b->sigint, on_signal, SIGINT);
    uv_signal_start(&b->sigterm, on_signal, SIGTERM);
    return 0;
}

/* Close everything bridge_start set up, also after a partial start; a
 * second call (another signal while stopping) does nothing. */
void bridge_stop(struct bridge *b)
{
    if (b->stopping)
        return;
    b->stopping = true;
    while (b->conns)
        conn_close(b->conns, "bridge shutting down");
    for (unsigned i = 0; i < b->device_count; i++)
        device_fini(&b->devices[i]);
    if (b->unix_init)
        uv_close((uv_handle_t *)&b->unix_listener, NULL);
    if (b->unix_bound)
        unlink(b->cfg->listen_path);
    if (b->tcp_init)
        uv_close((uv_handle_t *)&b->tcp_listener, NULL);
    if (b->signals_init) {
        uv_close((uv_handle_t *)&b->sigint, NULL);
        uv_close((uv_handle_t *)&b->sigterm, NULL);
    }
    trace_close(b);
}
