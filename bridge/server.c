/* Listening sockets, connections, the handshake and frame dispatch. Each
 * read callback parses every complete frame it has, routes each one, and
 * flushes the resulting output once: one write per peer per batch. */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bridge.h"
#include "tlpb/byteorder.h"

static void conn_process(struct conn *c);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void ring_activity(struct bridge *b);

struct conn_fd_frame {
    struct conn_fd_frame *next;
    size_t ahead;                  /* bytes queued before it not yet written */
    size_t len, sent;              /* the frame, and how much of it is written */
    bool fds_sent;
    unsigned fd_count;
    int fds[TLPB_GUESTMEM_MAX_FDS];
    uint8_t frame[];
};

/* At most this many wait (a simulator that reads nothing while the host's
 * map keeps changing): more ends the connection, descriptors never pile up. */
#define CONN_MAX_FD_FRAMES 4u

static void fd_frame_free(struct conn_fd_frame *f)
{
    for (unsigned i = 0; i < f->fd_count; i++)
        close(f->fds[i]);
    free(f);
}

static void conn_free_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    /* Freed once the stream and the handshake timer are both closed. */
    if (--c->open_handles > 0)
        return;
    tlpb_reader_free(&c->rd);
    tlpb_obuf_free(&c->ob);
    tlpb_obuf_free(&c->inflight);
    /* After the wake-fd poll is closed: the ring owns that descriptor. */
    if (c->ring)
        tlpb_ring_destroy(c->ring);
    free(c);
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    if (reason)
        bridge_log(TLPB_LOG_INFO, "%s: closing: %s", c->label, reason);
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
    if (c->handshake_timer_init) {
        c->handshake_timer_init = false;
        uv_close((uv_handle_t *)&c->handshake_timer, conn_free_cb);
    }
    if (c->ring_poll_init) {
        c->ring_poll_init = false;
        uv_close((uv_handle_t *)&c->ring_poll, conn_free_cb);
    }
    if (c->fd_frame_poll_fd >= 0) {
        uv_close((uv_handle_t *)&c->fd_frame_poll, conn_free_cb);
        close(c->fd_frame_poll_fd); /* the poll is stopped by uv_close */
        c->fd_frame_poll_fd = -1;
    }
    while (c->fd_frames) {
        struct conn_fd_frame *f = c->fd_frames;
        c->fd_frames = f->next;
        fd_frame_free(f);
    }
    uv_close(&c->h.handle, conn_free_cb);
    conn_resume_paused(b);
}

static void fd_carrier_closed_cb(uv_handle_t *h)
{
    free(h);
}

unsigned conn_pending_fds(struct conn *c)
{
    if (c->is_tcp)
        return 0;
    int n = uv_pipe_pending_count(&c->h.pipe);
    return n > 0 ? (unsigned)n : 0;
}

/* libuv hands a received descriptor out only as a stream handle: accept it
 * into a scratch pipe, keep a duplicate, close the scratch handle. */
static int conn_take_one_fd(struct conn *c)
{
    uv_pipe_t *carrier = malloc(sizeof(*carrier));
    if (!carrier)
        return -ENOMEM;
    uv_pipe_init(c->bridge->loop, carrier, 0);
    int fd = -1;
    int rc = uv_accept(&c->h.stream, (uv_stream_t *)carrier);
    if (rc == 0) {
        uv_os_fd_t raw;
        rc = uv_fileno((uv_handle_t *)carrier, &raw);
        if (rc == 0) {
            fd = fcntl(raw, F_DUPFD_CLOEXEC, 3);
            if (fd < 0)
                rc = -errno;
        }
    }
    uv_close((uv_handle_t *)carrier, fd_carrier_closed_cb);
    return fd >= 0 ? fd : (rc < 0 ? rc : -EBADF);
}

int conn_take_fds(struct conn *c, int *fds, unsigned n)
{
    if (conn_pending_fds(c) < n)
        return -ENOENT;
    for (unsigned i = 0; i < n; i++) {
        fds[i] = conn_take_one_fd(c);
        if (fds[i] < 0) {
            int rc = fds[i];
            for (unsigned j = 0; j < i; j++)
                close(fds[j]);
            return rc;
        }
    }
    return 0;
}

/* Send an Error message and drop the connection (logged by the caller). */
static void conn_drop_with_error(struct conn *c, const char *reason)
{
    if (c->ring) {
        /* Best effort, on the ring the host reads; the socket's close
         * tells it the rest. */
        Tlpb__Error err = TLPB__ERROR__INIT;
        err.reason = (char *)reason;
        Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
        env.body_case = TLPB__ENVELOPE__BODY_ERROR;
        env.error = &err;
        if (tlpb_ring_put_envelope(c->ring, &env) == 0)
            tlpb_ring_notify(c->ring);
        conn_close(c, NULL);
        return;
    }
    tlpb_obuf_append_error(&c->ob, reason);
    /* Best effort: the error goes out with whatever is queued. */
    if (!c->write_in_flight && tlpb_obuf_pending(&c->ob)) {
        uv_buf_t buf = uv_buf_init((char *)tlpb_obuf_head(&c->ob), (unsigned)tlpb_obuf_pending(&c->ob));
        uv_try_write(&c->h.stream, &buf, 1);
    }
    conn_close(c, NULL);
}

/* Protocol violations: logged, an Error to the peer, the connection dropped. */
static void conn_fail(struct conn *c, const char *reason)
{
    bridge_log(TLPB_LOG_ERROR, "%s: protocol error: %s", c->label, reason);
    conn_drop_with_error(c, reason);
}

/* The ring found corrupt (its reason says where): logged on its own, so a
 * host writing garbage does not hide other peers' protocol errors in the
 * rate-limited log. The Error goes nowhere once the ring is broken. */
static void conn_ring_fail(struct conn *c)
{
    const char *reason = c->ring_broken ? c->ring_broken : tlpb_ring_error(c->ring);
    bridge_log(TLPB_LOG_ERROR, "%s: protocol error in the shared-memory ring: %s", c->label,
               reason);
    conn_drop_with_error(c, reason);
}

/* ---- frames with descriptors (conn_send_with_fds) ------------------------- */

/* n bytes queued before the first frame with descriptors were written. */
static void fd_frames_wrote(struct conn *c, size_t n)
{
    if (c->fd_frames)
        c->fd_frames->ahead -= n < c->fd_frames->ahead ? n : c->fd_frames->ahead;
}

/* Move the first bytes of from into the empty to (which appends to from
 * cannot move while a write owns it). 0 or -ENOMEM. */
static int obuf_move_head(struct tlpb_obuf *to, struct tlpb_obuf *from, size_t bytes)
{
    to->start = to->end = 0;
    if (to->capacity < bytes) {
        uint8_t *data = realloc(to->data, bytes);
        if (!data)
            return -ENOMEM;
        to->data = data;
        to->capacity = bytes;
    }
    memcpy(to->data, tlpb_obuf_head(from), bytes);
    to->end = bytes;
    tlpb_obuf_consume(from, bytes);
    return 0;
}

/* Write the first frame with descriptors (everything before it is written):
 * 1 when all of it went, 0 when the socket is full, or -errno. */
static int fd_frame_send(struct conn *c)
{
    struct conn_fd_frame *f = c->fd_frames;
    uv_os_fd_t sock;
    int rc = uv_fileno(&c->h.handle, &sock);
    if (rc < 0)
        return -EBADF;
    while (f->sent < f->len) {
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * TLPB_GUESTMEM_MAX_FDS)];
        } control;
        memset(&control, 0, sizeof(control));
        struct iovec iov = {.iov_base = f->frame + f->sent, .iov_len = f->len - f->sent};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        if (!f->fds_sent && f->fd_count) {
            msg.msg_control = control.buf;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * f->fd_count);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * f->fd_count);
            memcpy(CMSG_DATA(cm), f->fds, sizeof(int) * f->fd_count);
        }
        ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return -errno;
        f->fds_sent = true;
        f->sent += (size_t)n;
    }
    c->fd_frames = f->next;
    c->frames_out++;
    fd_frame_free(f);
    return 1;
}
static void fd_frame_writable_cb(uv_poll_t *p, int status, int events)
{
    struct conn *c = p->data;
    (void)events;
    uv_poll_stop(p);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    conn_flush(c);
}

/* The socket is full with a frame with descriptors next: libuv's stream
 * writes cannot carry it, so wait for room on a duplicate of the socket
 * (a second poll handle on the same descriptor is not allowed). */
static void fd_frame_wait_writable(struct conn *c)
{
    if (c->fd_frame_poll_fd < 0) {
        uv_os_fd_t sock;
        int fd = uv_fileno(&c->h.handle, &sock) == 0 ? fcntl(sock, F_DUPFD_CLOEXEC, 3) : -1;
        if (fd < 0 || uv_poll_init(c->bridge->loop, &c->fd_frame_poll, fd) != 0) {
            if (fd >= 0)
                close(fd);
            conn_close(c, "cannot watch the socket for a frame with descriptors");
            return;
        }
        c->fd_frame_poll_fd = fd;
        c->fd_frame_poll.data = c;
        c->open_handles++;
    }
    uv_poll_start(&c->fd_frame_poll, UV_WRITABLE, fd_frame_writable_cb);
}

int conn_send_with_fds(struct conn *c, const Tlpb__Envelope *env, const int *fds, unsigned n)
{
    if (!c || c->closing)
        return -ENOTCONN;
    if (c->is_tcp || c->ring || n > TLPB_GUESTMEM_MAX_FDS)
        return -EINVAL;
    unsigned queued = 0;
    size_t ahead = tlpb_obuf_pending(&c->ob) + tlpb_obuf_pending(&c->inflight);
    struct conn_fd_frame **tail = &c->fd_frames;
    for (; *tail; tail = &(*tail)->next) {
        queued++;
        ahead -= (*tail)->ahead;
    }
    if (queued >= CONN_MAX_FD_FRAMES) {
        conn_close(c, "the peer reads nothing while frames with descriptors pile up");
        return -ENOBUFS;
    }
    /* Encoded with the connection's framing (and its frame size limit). */
    struct tlpb_obuf tmp;
    tlpb_obuf_init(&tmp, SIZE_MAX, c->ob.max_frame_bytes);
    int rc = tlpb_obuf_append(&tmp, env, true);
    struct conn_fd_frame *f = rc == 0 ? calloc(1, sizeof(*f) + tlpb_obuf_pending(&tmp)) : NULL;
    if (!f) {
        tlpb_obuf_free(&tmp);
        return rc < 0 ? rc : -ENOMEM;
    }
    f->len = tlpb_obuf_pending(&tmp);
    memcpy(f->frame, tlpb_obuf_head(&tmp), f->len);
    tlpb_obuf_free(&tmp);
    for (; f->fd_count < n; f->fd_count++) {
        f->fds[f->fd_count] = fcntl(fds[f->fd_count], F_DUPFD_CLOEXEC, 3);
        if (f->fds[f->fd_count] < 0) {
            rc = -errno;
            fd_frame_free(f);
            return rc;
        }
    }
    f->ahead = ahead;
    *tail = f;
    return 0;
}

static void write_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->write_in_flight = false;
    size_t written = tlpb_obuf_pending(&c->inflight);
    c->inflight.start = c->inflight.end = 0;
    if (status < 0) {
        if (!c->closing)
            conn_close(c, uv_strerror(status));
        return;
    }
    if (c->closing)
        return;
    fd_frames_wrote(c, written);
    conn_flush(c);
    if (tlpb_obuf_pending(&c->ob) < BRIDGE_QUEUE_LOW_BYTES)
        conn_resume_paused(c->bridge);
}

/* One queued message into the ring, TLPs and interrupts as their binary
 * records like those put directly. */
static int ring_put_frame(struct tlpb_ring *ring, const Tlpb__Envelope *env)
{
    if (env->body_case == TLPB__ENVELOPE__BODY_TLP) {
        struct tlpb_tlp tlp;
        const char *reason;
        if (tlpb_tlp_from_pb(&tlp, env->tlp, &reason) == 0)
            return tlpb_ring_put_tlp(ring, &tlp);
    } else if (env->body_case == TLPB__ENVELOPE__BODY_INTERRUPT) {
        return tlpb_ring_put_interrupt(ring, env->interrupt->kind, env->interrupt->vector,
                                       env->interrupt->sim_time_ps);
    }
    return tlpb_ring_put_envelope(ring, env);
}

/* A host with a ring: move the frames queued in ob (the ring was full, or
 * they were queued before RingSetup) into the ring, in order, then wake the
 * host if it sleeps. */
static void conn_ring_flush(struct conn *c)
{
    if (c->ring_broken) {
        conn_ring_fail(c);
        return;
    }
    bool moved = false;
    while (tlpb_obuf_pending(&c->ob) >= TLPB_FRAME_PREFIX_BYTES) {
        const uint8_t *frame = tlpb_obuf_head(&c->ob);
        uint32_t body = tlpb_get_le32(frame);
        const char *reason = NULL;
        Tlpb__Envelope *env = tlpb_envelope_decode(frame + TLPB_FRAME_PREFIX_BYTES, body, &reason);
        int rc = env ? ring_put_frame(c->ring, env) : -EBADMSG;
        tlpb_envelope_free(env);
        if (rc == -EAGAIN)
            break; /* the host wakes us when it frees room */
        if (rc == -EPROTO) {
            conn_ring_fail(c);
            return;
        }
        if (rc < 0)
            bridge_log(TLPB_LOG_ERROR, "%s: message of %u bytes does not fit the ring, dropped",
                       c->label, body);
        tlpb_obuf_consume(&c->ob, TLPB_FRAME_PREFIX_BYTES + (size_t)body);
        moved = true;
        if (rc == 0)
            c->frames_out++;
    }
    if (moved)
        ring_activity(c->bridge);
    tlpb_ring_notify(c->ring);
}

void conn_flush(struct conn *c)
{
    if (c->closing)
        return;
    if (c->ring) {
        conn_ring_flush(c);
        return;
    }
    if (c->write_in_flight)
        return;
    /* A frame with descriptors goes once everything before it is written. */
    while (c->fd_frames && c->fd_frames->ahead == 0) {
        int rc = fd_frame_send(c);
        if (rc < 0) {
            conn_close(c, strerror(-rc));
            return;
        }
        if (rc == 0) {
            fd_frame_wait_writable(c);
            return;
        }
    }
    size_t len = tlpb_obuf_pending(&c->ob);
    if (len == 0)
        return;
    if (c->fd_frames && c->fd_frames->ahead < len)
        len = c->fd_frames->ahead;
    /* Try the fast path first: most batches fit the socket buffer. */
    uv_buf_t buf = uv_buf_init((char *)tlpb_obuf_head(&c->ob), (unsigned)len);
    int n = uv_try_write(&c->h.stream, &buf, 1);
    if (n > 0) {
        c->frames_out++;
        tlpb_obuf_consume(&c->ob, (size_t)n);
        fd_frames_wrote(c, (size_t)n);
        len -= (size_t)n;
    } else if (n < 0 && n != UV_EAGAIN) {
        conn_close(c, uv_strerror(n));
        return;
    }
    if (len == 0) {
        if (c->fd_frames && c->fd_frames->ahead == 0)
            conn_flush(c); /* the frame with descriptors is next */
        return;
    }
    if (c->fd_frames) {
        /* Only the bytes ahead of the descriptors go: copied out. */
        if (obuf_move_head(&c->inflight, &c->ob, len) != 0) {
            conn_close(c, "out of memory");
            return;
        }
    } else {
        /* The rest goes asynchronously from a buffer that appends cannot move. */
        struct tlpb_obuf tmp = c->inflight;
        c->inflight = c->ob;
        c->ob = tmp;
        c->ob.start = c->ob.end = 0;
        c->ob.limit_bytes = c->inflight.limit_bytes;
        c->ob.max_frame_bytes = c->inflight.max_frame_bytes;
    }
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

/* The outcome of a put straight into c's ring: true when it went in. A
 * message goes straight in only while nothing waits in ob (order); a full
 * ring (-EAGAIN) leaves it to ob; a corrupt one fails c at the next flush
 * (not here: the caller may be in the middle of c's device). */
static bool ring_put_result(struct conn *c, int rc)
{
    if (rc == 0) {
        ring_activity(c->bridge);
        return true;
    }
    if (rc == -EPROTO)
        c->ring_broken = tlpb_ring_error(c->ring);
    return false;
}

static bool conn_ring_open(const struct conn *c)
{
    return c->ring && !c->ring_broken && tlpb_obuf_pending(&c->ob) == 0;
}

int conn_send_tlp(struct conn *c, const struct tlpb_tlp *tlp, bool force)
{
    if (!c || c->closing)
        return -ENOTCONN;
    if (conn_ring_open(c) && ring_put_result(c, tlpb_ring_put_tlp(c->ring, tlp)))
        return 0;
    int rc = tlpb_obuf_append_tlp(&c->ob, tlp, force);
    if (rc == -EMSGSIZE)
        bridge_log(TLPB_LOG_ERROR, "%s: TLP larger than the peer's max frame, dropped", c->label);
    return rc;
}

int conn_send_envelope(struct conn *c, const Tlpb__Envelope *env)
{
    if (!c || c->closing)
        return -ENOTCONN;
    if (conn_ring_open(c) && ring_put_result(c, tlpb_ring_put_envelope(c->ring, env)))
        return 0;
    return tlpb_obuf_append(&c->ob, env, true);
}

void conn_send_interrupt(struct conn *c, Tlpb__InterruptKind kind, uint32_t vector,
                         uint64_t sim_time_ps)
{
    if (!c || c->closing)
        return;
    if (conn_ring_open(c) &&
        ring_put_result(c, tlpb_ring_put_interrupt(c->ring, kind, vector, sim_time_ps)))
        return;
    tlpb_obuf_append_interrupt_at(&c->ob, kind, vector, sim_time_ps);
}

/* Queued like everything else on c (forced), so a TimeSync keeps its place
 * after the TLPs sent before it. */
void conn_send_time_sync(struct conn *c, const Tlpb__TimeSync *ts)
{
    if (!c || c->closing)
        return;
    if (c->ring) {
        Tlpb__Envelope env;
        tlpb_time_sync_envelope(&env, ts);
        conn_send_envelope(c, &env);
        return;
    }
    tlpb_obuf_append_time_sync(&c->ob, ts);
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
    char time_mode[96] = "";
    /* Only a host that offered coupled time is told its mode. */
    if (d && accepted && c->role == TLPB__ROLE__ROLE_HOST && conn_time_sync(c))
        device_time_mode(d, time_mode, sizeof(time_mode));
    reply.time_mode = time_mode;
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
    bridge_log(TLPB_LOG_WARN, "%s: handshake refused: %s", c->label, why);
    send_hello_reply(c, false, why, NULL);
    conn_flush(c);
    conn_close(c, NULL);
}

/* The token compared in time independent of where they differ. */
static bool token_matches(const char *given, const char *want)
{
    size_t given_len = strlen(given), want_len = strlen(want);
    unsigned char diff = given_len != want_len;
    for (size_t i = 0; i < want_len; i++)
        diff |= (unsigned char)(want[i] ^ (i < given_len ? given[i] : 0));
    return diff == 0;
}

static void handle_hello(struct conn *c, const Tlpb__Hello *hello)
{
    char why[256];
    if (c->handshake_timer_init)
        uv_timer_stop(&c->handshake_timer);
    if (hello->version_major != TLPB_PROTOCOL_MAJOR) {
        snprintf(why, sizeof(why), "incompatible protocol version %u.%u (bridge speaks %u.%u)",
                 hello->version_major, hello->version_minor, TLPB_PROTOCOL_MAJOR,
                 TLPB_PROTOCOL_MINOR);
        refuse(c, why);
        return;
    }
    /* The unix socket (mode 0600) is authorised by the file system; over
     * TCP a configured token is required from every peer, loopback too. */
    const char *token = c->bridge->cfg->token;
    if (c->is_tcp && token[0] && !token_matches(hello->token ? hello->token : "", token)) {
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
    /* Free text from the peer: escaped once here, for logs and status. */
    tlpb_log_escape(c->peer_name, sizeof(c->peer_name), hello->peer_name, 48);

    if (hello->role == TLPB__ROLE__ROLE_CONTROL) {
        /* Control loads code and writes files: never for an unauthenticated
         * TCP peer, loopback or not. */
        if (c->is_tcp && !token[0]) {
            refuse(c, "control over TCP needs the bridge's token (none is configured: use the"
                      " unix socket, or configure a token)");
            return;
        }
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
    c->capabilities = device_grant_capabilities(
        d, c->label, hello->capabilities & (TLPB__CAPABILITY__CAP_UNSPLIT_DMA |
                                            TLPB__CAPABILITY__CAP_TIME_SYNC));
    /* Descriptors travel only on a unix socket: from the host to the
     * bridge, and on to a simulator whose fast (unsplit) DMA is granted. */
    if (hello->role == TLPB__ROLE__ROLE_HOST && !c->is_tcp)
        c->capabilities |= hello->capabilities & TLPB__CAPABILITY__CAP_GUEST_MEMORY;
    if (hello->role == TLPB__ROLE__ROLE_SIMULATOR && !c->is_tcp &&
        (c->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA))
        c->capabilities |= hello->capabilities & TLPB__CAPABILITY__CAP_GUEST_MEMORY;
    if (hello->role == TLPB__ROLE__ROLE_HOST) {
        /* The ring shares memory and descriptors: a unix socket only. */
        if ((hello->capabilities & TLPB__CAPABILITY__CAP_SHM_RING) && !c->is_tcp &&
            c->bridge->cfg->ring_policy != TLPB_RING_OFF)
            c->capabilities |= TLPB__CAPABILITY__CAP_SHM_RING;
        if (d->host) {
            refuse(c, "device already has a host connected");
            return;
        }
        c->role = hello->role;
        c->device = d;
        if (conn_time_sync(c))
            c->quantum_ps = hello->quantum_ps;
        send_hello_reply(c, true, NULL, d);
        device_host_attached(d, c);
        return;
    }
    if (d->sim) {
        refuse(c, "device already has a simulator attached");
        return;
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
    c->clock_period_ps = hello->clock_period_ps;
    send_hello_reply(c, true, NULL, d);
    if (device_sim_attach(d, c, &desc, why, sizeof(why)) != 0) {
        c->role = TLPB__ROLE__ROLE_UNSPECIFIED;
        c->device = NULL;
        tlpb_obuf_append_error(&c->ob, why);
        conn_flush(c);
        conn_close(c, why);
    }
}

struct tlpb_tlp_limits conn_limits(const struct conn *c)
{
    struct tlpb_tlp_limits lim = {.max_payload_bytes = 4096,
                                  .unsplit = (c->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA) != 0};
    return lim;
}

/* A TLP with a field that does not fit its PCIe width is malformed: a
 * protocol error, as PCIe treats a Malformed TLP (discarded, no completion).
 * The reason names the field, the kind and the tag as the peer sent them. */
static void malformed_tlp(struct conn *c, const Tlpb__Tlp *pb, const char *reason)
{
    char msg[256];
    tlpb_malformed_tlp_reason(msg, sizeof(msg), pb, reason);
    trace_rejected_pb(c->bridge, c->device, pb, msg);
    if (c->device)
        c->device->stats.rejected_tlps++;
    conn_fail(c, msg);
}

/* A message this peer's role may not send: answered with an Error naming
 * the message and the role, counted, not acted on; the connection goes on. */
static void wrong_direction(struct conn *c, const Tlpb__Envelope *env)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "%s from a %s is not accepted (see the protocol's message table)",
             tlpb_message_name(env->body_case), tlpb_role_name(c->role));
    conn_refuse_message(c, env, msg);
}

void conn_refuse_message(struct conn *c, const Tlpb__Envelope *env, const char *why)
{
    c->bridge->rejected_messages++;
    bridge_log(TLPB_LOG_WARN, "%s: %s", c->label, why);
    trace_rejected_message(c->bridge, c->device, env, why);
    tlpb_obuf_append_error(&c->ob, why);
}

/* One TLP from a host or a simulator, from a socket frame (pb: what the
 * peer sent, for the reason) or a binary ring record (pb NULL): the same
 * checks either way. */
static void dispatch_tlp(struct conn *c, const struct tlpb_tlp *tlp_in, const Tlpb__Tlp *pb)
{
    struct tlpb_tlp tlp = *tlp_in;
    const char *reason = NULL;
    enum tlpb_tlp_rule rule = TLPB_TLP_RULE_OTHER;
    struct tlpb_tlp_limits lim = conn_limits(c);
    int rc = tlpb_tlp_validate_rule(&tlp, &lim, &reason, &rule);
    /* Refused for a rule the checker has too: that rule's violation. */
    if (rule != TLPB_TLP_RULE_OTHER)
        device_check_refused_tlp(c->device, c, &tlp, rule);
    if (rc == -ERANGE && pb) {
        malformed_tlp(c, pb, reason);
        return;
    }
    if (rc == -ERANGE) {
        char msg[256];
        snprintf(msg, sizeof(msg), "malformed TLP (%s, tag %u): %s", tlpb_tlp_kind_name(tlp.kind),
                 tlp.tag, reason);
        trace_rejected(c->bridge, c->device, &tlp, msg);
        if (c->device)
            c->device->stats.rejected_tlps++;
        conn_fail(c, msg);
        return;
    }
    if (rc != 0) {
        char msg[256];
        c->device->stats.rejected_tlps++;
        snprintf(msg, sizeof(msg), "rejected %s tag %u: %s", tlpb_tlp_kind_name(tlp.kind),
                 tlp.tag, reason);
        bridge_log(TLPB_LOG_WARN, "%s: %s", c->label, msg);
        trace_rejected(c->bridge, c->device, &tlp, msg);
        tlpb_obuf_append_error(&c->ob, msg);
        /* A rejected request still gets its completion: UR. */
        if (tlpb_tlp_is_non_posted(tlp.kind))
            device_reject_request(c->device, c, &tlp);
        return;
    }
    if (c->role == TLPB__ROLE__ROLE_HOST)
        device_downstream_from_host(c->device, &tlp);
    else
        device_upstream_from_sim(c->device, &tlp);
}

static void dispatch_tlp_pb(struct conn *c, const Tlpb__Tlp *pb)
{
    struct tlpb_tlp tlp;
    const char *reason = NULL;
    if (tlpb_tlp_from_pb(&tlp, pb, &reason) != 0) {
        malformed_tlp(c, pb, reason);
        return;
    }
    dispatch_tlp(c, &tlp, pb);
}

static void ring_wake_cb(uv_poll_t *p, int status, int events);

/* RingSetup: from the next message on, this host's messages go through the
 * shared-memory ring. Anything wrong with it drops the host, with the
 * reason on the socket. */
static void handle_ring_setup(struct conn *c, const Tlpb__RingSetup *rs)
{
    char why[320];
    if (!(c->capabilities & TLPB__CAPABILITY__CAP_SHM_RING)) {
        conn_fail(c, "RingSetup without CAP_SHM_RING granted (a host on the unix socket that"
                     " offered it, bridge not started with --ring off)");
        return;
    }
    if (c->ring) {
        conn_fail(c, "second RingSetup: the connection already has a ring");
        return;
    }
    int fds[TLPB_RING_FD_COUNT];
    int rc = conn_take_fds(c, fds, TLPB_RING_FD_COUNT);
    if (rc == -ENOENT) {
        snprintf(why, sizeof(why),
                 "RingSetup came with %u file descriptors, it needs %d (ring memory, wake-bridge"
                 " eventfd, wake-host eventfd)", conn_pending_fds(c), TLPB_RING_FD_COUNT);
        conn_fail(c, why);
        return;
    }
    if (rc < 0) {
        snprintf(why, sizeof(why), "RingSetup: cannot take its file descriptors: %s",
                 strerror(-rc));
        conn_fail(c, why);
        return;
    }
    char err[256];
    struct tlpb_ring *ring = NULL;
    rc = tlpb_ring_attach(&ring, fds, rs->ring_bytes, err, sizeof(err));
    if (rc != 0) {
        snprintf(why, sizeof(why), "RingSetup refused: %s", err);
        conn_fail(c, why);
        return;
    }
    rc = uv_poll_init(c->bridge->loop, &c->ring_poll, tlpb_ring_wake_fd(ring));
    if (rc != 0) {
        tlpb_ring_destroy(ring);
        snprintf(why, sizeof(why), "RingSetup: cannot watch the wake-bridge eventfd: %s",
                 uv_strerror(rc));
        conn_fail(c, why);
        return;
    }
    c->ring = ring;
    c->ring_poll.data = c;
    c->ring_poll_init = true;
    c->open_handles++;
    uv_poll_start(&c->ring_poll, UV_READABLE, ring_wake_cb);
    bridge_log(TLPB_LOG_INFO, "%s: shared-memory ring attached: %llu bytes each way, host %s,"
               " bridge %s", c->label, (unsigned long long)rs->ring_bytes,
               rs->host_policy && rs->host_policy[0] ? rs->host_policy : "(unnamed policy)",
               tlpb_ring_policy_name(c->bridge->cfg->ring_policy));
    ring_activity(c->bridge);
}

/* TimeSync: only on a connection that negotiated CAP_TIME_SYNC, and only
 * its own kinds (host: GRANT; simulator: REACHED, PROGRESS). */
static void dispatch_time_sync(struct conn *c, const Tlpb__Envelope *env, bool host,
                               bool simulator)
{
    const Tlpb__TimeSync *ts = env->time_sync;
    char msg[200];
    if (!conn_time_sync(c) || (!host && !simulator)) {
        wrong_direction(c, env);
        return;
    }
    bool own = host ? ts->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT
                    : (ts->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED ||
                       ts->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS);
    if (!own) {
        const ProtobufCEnumValue *name =
            protobuf_c_enum_descriptor_get_value(&tlpb__time_sync_kind__descriptor, (int)ts->kind);
        snprintf(msg, sizeof(msg),
                 "TimeSync %s from a %s is not accepted (see the protocol's Simulated time)",
                 name ? name->name : "of an undefined kind", tlpb_role_name(c->role));
        conn_refuse_message(c, env, msg);
        return;
    }
    if (host && ts->sync_id == 0) {
        conn_refuse_message(c, env, "TimeSync GRANT with sync_id 0 (a grant needs a nonzero id)");
        return;
    }
    if (host) {
        device_time_grant(c->device, env);
        return;
    }
    if (device_time_from_sim(c->device, c, ts, msg, sizeof(msg)) != 0)
        conn_refuse_message(c, env, msg);
}

/* Act on one message from c. A protocol error closes c (c->closing), which
 * ends its batch in conn_process. */
static void dispatch(struct conn *c, Tlpb__Envelope *env)
{
    if (c->role == TLPB__ROLE__ROLE_UNSPECIFIED) {
        if (env->body_case != TLPB__ENVELOPE__BODY_HELLO) {
            conn_fail(c, "first message must be Hello");
            return;
        }
        handle_hello(c, env->hello);
        return;
    }
    bool host = c->role == TLPB__ROLE__ROLE_HOST && c->device;
    bool simulator = c->role == TLPB__ROLE__ROLE_SIMULATOR && c->device;
    char why[160];
    switch (env->body_case) {
    case TLPB__ENVELOPE__BODY_TLP:
        if (host || simulator)
            dispatch_tlp_pb(c, env->tlp);
        else
            wrong_direction(c, env);
        break;
    case TLPB__ENVELOPE__BODY_INTERRUPT:
        if (!simulator) {
            wrong_direction(c, env);
        } else if (device_interrupt_check(c->device, env->interrupt->kind, env->interrupt->vector,
                                          why, sizeof(why)) != 0) {
            /* A vector the device does not have may break a checker rule
             * (msix_vector_range): counted as such, then the protocol error. */
            device_check_refused_interrupt(c->device, c, env->interrupt->kind,
                                           env->interrupt->vector);
            conn_fail(c, why);
            return;
        } else {
            device_upstream_interrupt_from_sim(c->device, c, env->interrupt->kind,
                                               env->interrupt->vector,
                                               env->interrupt->sim_time_ps);
        }
        break;
    case TLPB__ENVELOPE__BODY_RESET:
        if (!host) {
            wrong_direction(c, env);
        } else if (env->reset->kind != TLPB__RESET_KIND__RESET_FUNCTION_LEVEL &&
                   env->reset->kind != TLPB__RESET_KIND__RESET_HOT) {
            /* An enum value the protocol does not define: a field out of range. */
            snprintf(why, sizeof(why), "Reset kind %d is not RESET_FUNCTION_LEVEL or RESET_HOT",
                     (int)env->reset->kind);
            conn_fail(c, why);
            return;
        } else {
            device_reset_from_host(c->device, env->reset->kind, env->reset->sim_time_ps);
        }
        break;
    case TLPB__ENVELOPE__BODY_TIME_SYNC:
        dispatch_time_sync(c, env, host, simulator);
        break;
    case TLPB__ENVELOPE__BODY_CONTROL_REQUEST:
        if (c->role == TLPB__ROLE__ROLE_CONTROL)
            control_handle(c, env->control_request);
        else
            wrong_direction(c, env);
        break;
    case TLPB__ENVELOPE__BODY_ERROR:
        if (c->role == TLPB__ROLE__ROLE_HOST && c->device && env->error->dma_fault_bytes) {
            device_dma_fault(c->device, true, env->error->dma_fault_address,
                             env->error->dma_fault_bytes, "reported by the host");
            break;
        }
        if (simulator && strncmp(env->error->reason, "GuestMemory", 11) == 0)
            guestmem_sim_refused(c->device, env->error->reason);
        bridge_log(TLPB_LOG_WARN, "%s: peer reports: %s", c->label, env->error->reason);
        break;
    case TLPB__ENVELOPE__BODY_DMA_CONTEXT:
        if (simulator)
            device_dma_context_from_sim(c->device, env->dma_context);
        else
            wrong_direction(c, env);
        break;
    case TLPB__ENVELOPE__BODY_GUEST_MEMORY:
        if (host && (c->capabilities & TLPB__CAPABILITY__CAP_GUEST_MEMORY))
            guestmem_from_host(c, env);
        else
            wrong_direction(c, env);
        break;
    case TLPB__ENVELOPE__BODY_HELLO:
        conn_fail(c, "second Hello on an established connection");
        return;
    case TLPB__ENVELOPE__BODY_RING_SETUP:
        if (host)
            handle_ring_setup(c, env->ring_setup);
        else
            wrong_direction(c, env);
        break;
    default:
        /* HelloReply, Event, ControlReply: the bridge's to send. */
        wrong_direction(c, env);
        break;
    }
}

/* Backpressure: whether the bridge may read more from c now. Every peer's
 * messages can be answered on its own connection (completions, UR, Error),
 * so no peer is read while its own outbound queue is full: one that sends
 * without reading stalls itself, not the bridge's memory. A host or a
 * simulator also waits while the other side of its device cannot take
 * more. Reading resumes as the queues drain (conn_resume_paused). */
static bool conn_may_read(const struct conn *c)
{
    if (!conn_has_room(c))
        return false;
    const struct device *d = c->device;
    if (!d)
        return true;
    if (c->role == TLPB__ROLE__ROLE_HOST)
        return device_accepts_from_host(d);
    if (c->role == TLPB__ROLE__ROLE_SIMULATOR)
        return device_accepts_from_device(d);
    return true;
}

/* One record from c's ring, acted on as the same message from the socket.
 * What must come with descriptors or before the ring (Hello, RingSetup,
 * GuestMemory) is refused inside it. */
static void dispatch_ring_record(struct conn *c, struct tlpb_ring_msg *m)
{
    char why[160];
    switch (m->type) {
    case TLPB_RING_MSG_TLP:
        dispatch_tlp(c, &m->tlp, NULL);
        break;
    case TLPB_RING_MSG_INTERRUPT: {
        Tlpb__Envelope env;
        Tlpb__Interrupt irq;
        tlpb_interrupt_envelope(&env, &irq, m->irq_kind, m->irq_vector);
        irq.sim_time_ps = m->irq_sim_time_ps;
        dispatch(c, &env);
        break;
    }
    case TLPB_RING_MSG_ENVELOPE:
        switch (m->env->body_case) {
        case TLPB__ENVELOPE__BODY_HELLO:
        case TLPB__ENVELOPE__BODY_RING_SETUP:
        case TLPB__ENVELOPE__BODY_GUEST_MEMORY:
            snprintf(why, sizeof(why),
                     "%s inside the shared-memory ring (it belongs on the socket%s)",
                     tlpb_message_name(m->env->body_case),
                     m->env->body_case == TLPB__ENVELOPE__BODY_GUEST_MEMORY
                         ? ", with its file descriptors" : ", before the ring");
            conn_fail(c, why);
            break;
        default:
            dispatch(c, m->env);
            break;
        }
        tlpb_envelope_free(m->env);
        m->env = NULL;
        break;
    }
}

/* Take c's ring records while c may read (the same backpressure as the
 * socket); a record the ring cannot vouch for drops the host. */
static void conn_ring_process(struct conn *c)
{
    bool took = false;
    while (!c->closing) {
        if (!conn_may_read(c)) {
            c->read_paused = true;
            break;
        }
        struct tlpb_ring_msg m;
        int rc = tlpb_ring_get(c->ring, &m);
        if (rc == 0)
            break;
        if (rc < 0) {
            conn_ring_fail(c);
            return;
        }
        took = true;
        dispatch_ring_record(c, &m);
    }
    if (took && !c->closing) {
        ring_activity(c->bridge);
        tlpb_ring_notify(c->ring); /* the host may wait for the room we freed */
    }
}

static void conn_process(struct conn *c)
{
    const uint8_t *frame;
    size_t len;
    const char *reason = NULL;
    while (!c->closing) {
        if (c->role != TLPB__ROLE__ROLE_UNSPECIFIED && !conn_may_read(c)) {
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
        if (c->role == TLPB__ROLE__ROLE_SIMULATOR && c->device)
            device_sim_alive(c->device, c);
        Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);
        if (!env) {
            conn_fail(c, reason);
            break;
        }
        dispatch(c, env);
        tlpb_envelope_free(env);
    }
    if (c->ring && !c->read_paused)
        conn_ring_process(c);
    if (c->closing)
        return;
    /* Descriptors no message claimed: a peer may send a frame's descriptors
     * just before the frame's last bytes, but never more than a frame can
     * claim. */
    if (conn_pending_fds(c) > BRIDGE_MAX_PENDING_FDS) {
        char why[128];
        snprintf(why, sizeof(why), "%u file descriptors sent that no message claims (at most %d)",
                 conn_pending_fds(c), BRIDGE_MAX_PENDING_FDS);
        conn_fail(c, why);
        return;
    }
    if (!c->read_paused && !c->reading) {
        uv_read_start(&c->h.stream, alloc_cb, read_cb);
        c->reading = true;
    } else if (c->read_paused && c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = false;
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
            bridge_log(TLPB_LOG_ERROR, "%s: protocol error: %s", c->label, why);
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

/* ---- Waiting on the rings (tlpbridged --ring) ------------------------------
 * After any ring activity the loop polls every attached ring from an idle
 * handle (uv_run does not block while one is active) until spin_us passed
 * with nothing new; then each ring's asleep flag is armed and the hosts wake
 * the bridge through the wake-bridge eventfd (ring_poll). busy-poll never
 * stops while a ring is attached; with no ring nothing polls. */
static void ring_idle_cb(uv_idle_t *h)
{
    struct bridge *b = h->data;
    bool any = false;
    for (struct conn *c = b->conns; c; c = c->next) {
        if (!c->ring || c->closing)
            continue;
        any = true;
        if (!c->read_paused && tlpb_ring_pending(c->ring))
            conn_process(c);
        else if (tlpb_obuf_pending(&c->ob))
            conn_flush(c); /* room may have appeared */
    }
    if (!any) {
        uv_idle_stop(&b->ring_idle);
        b->ring_idle_active = false;
        return;
    }
    if (b->cfg->ring_policy == TLPB_RING_BUSY_POLL ||
        uv_hrtime() - b->ring_activity_ns < (uint64_t)b->cfg->ring_spin_us * 1000u)
        return;
    /* Quiet for spin_us: sleep, unless a record slipped in meanwhile. A
     * paused host is left awake: resuming it is the bridge's own doing. */
    bool all_asleep = true;
    for (struct conn *c = b->conns; c; c = c->next) {
        if (!c->ring || c->closing || c->read_paused || c->ring_asleep)
            continue;
        if (tlpb_ring_prepare_sleep(c->ring)) {
            c->ring_asleep = true;
        } else {
            tlpb_ring_woken(c->ring);
            all_asleep = false;
        }
    }
    if (all_asleep) {
        uv_idle_stop(&b->ring_idle);
        b->ring_idle_active = false;
    } else {
        ring_activity(b);
    }
}

static void ring_activity(struct bridge *b)
{
    b->ring_activity_ns = uv_hrtime();
    if (b->ring_idle_active || b->stopping)
        return;
    if (!b->ring_idle_init) {
        uv_idle_init(b->loop, &b->ring_idle);
        b->ring_idle.data = b;
        b->ring_idle_init = true;
    }
    uv_idle_start(&b->ring_idle, ring_idle_cb);
    b->ring_idle_active = true;
    /* Polling again: every ring is watched, none needs its eventfd. */
    for (struct conn *c = b->conns; c; c = c->next) {
        if (c->ring && c->ring_asleep) {
            c->ring_asleep = false;
            tlpb_ring_woken(c->ring);
        }
    }
}

/* The host wrote the wake-bridge eventfd: records or room for ours. */
static void ring_wake_cb(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    struct conn *c = p->data;
    if (c->closing || !c->ring)
        return;
    c->ring_asleep = false;
    tlpb_ring_woken(c->ring);
    ring_activity(c->bridge);
    if (!c->read_paused) {
        conn_process(c);
        return;
    }
    conn_flush(c);
    if (conn_has_room(c))
        conn_resume_paused(c->bridge);
}

static void handshake_timeout_cb(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->closing || c->role != TLPB__ROLE__ROLE_UNSPECIFIED)
        return;
    char why[96];
    snprintf(why, sizeof(why), "no Hello within %u ms", c->bridge->cfg->handshake_timeout_ms);
    bridge_log(TLPB_LOG_WARN, "%s: closing: handshake timeout: %s", c->label, why);
    conn_close(c, NULL);
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
    uv_timer_init(b->loop, &c->handshake_timer);
    c->handshake_timer.data = c;
    c->handshake_timer_init = true;
    c->open_handles++;
    uv_timer_start(&c->handshake_timer, handshake_timeout_cb, b->cfg->handshake_timeout_ms, 0);
    uv_read_start(&c->h.stream, alloc_cb, read_cb);
    c->reading = true;
}

/* The bridge accepts itself (not uv_listen): at the fd limit libuv would
 * close the new connection with its reserve-fd trick and say nothing. Here
 * the same trick sheds the connection, the first refusal is logged and the
 * rest counted, and the attached peers are served as before. */
#define ACCEPT_BATCH 64
#define ACCEPT_RETRY_MS 100

/* accept() failed for want of a descriptor. shed: the pending connection
 * was closed (counted); else it could not even be shed (no spare
 * descriptor) and waits in the listen backlog until descriptors are free. */
static void accept_failed(struct bridge *b, struct listener *l, int err, bool shed)
{
    if (shed)
        b->accept_failures++;
    else
        b->accept_stalls++;
    if (b->accept_exhausted)
        return;
    b->accept_exhausted = true;
    if (shed)
        bridge_log(TLPB_LOG_ERROR,
                   "accept on %s: %s: out of file descriptors, new connections are closed at"
                   " once (attached peers are still served; raise the limit, ulimit -n); further"
                   " refusals are counted",
                   l->name, strerror(err));
    else
        bridge_log(TLPB_LOG_ERROR,
                   "accept on %s: %s: out of file descriptors, new connections wait unserved (no"
                   " spare descriptor left to close them with; attached peers are still served;"
                   " raise the limit, ulimit -n); retrying every %d ms",
                   l->name, strerror(err), ACCEPT_RETRY_MS);
}

static void accept_recovered(struct bridge *b)
{
    /* The spare descriptor is taken back as soon as there is one again. */
    if (b->reserve_fd < 0)
        b->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!b->accept_exhausted)
        return;
    bridge_log(TLPB_LOG_WARN, "accepting connections again: %llu connection(s) were refused while"
               " out of file descriptors; %llu accept attempt(s) found no spare descriptor",
               (unsigned long long)b->accept_failures, (unsigned long long)b->accept_stalls);
    b->accept_exhausted = false;
    b->accept_failures = 0;
    b->accept_stalls = 0;
}

/* Out of fds: give up the reserve fd, accept the pending connection and
 * close it, take the reserve back. Returns 1 when a connection was shed, 0
 * when none was pending (Linux reports EMFILE before it looks), -1 when
 * there was no reserve to give up. */
static int shed_connection(struct bridge *b, struct listener *l)
{
    if (b->reserve_fd < 0)
        b->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (b->reserve_fd < 0)
        return -1;
    close(b->reserve_fd);
    b->reserve_fd = -1;
    int fd;
    do
        fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
    if (fd >= 0)
        close(fd);
    b->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? 1 : 0;
}

static void listener_poll_cb(uv_poll_t *p, int status, int events);

static void accept_retry_cb(uv_timer_t *t)
{
    struct listener *l = t->data;
    uv_poll_start(&l->poll, UV_READABLE, listener_poll_cb);
}

/* Serve a connected socket (closed on failure). 0 or a libuv error. */
static int conn_from_fd(struct bridge *b, bool is_tcp, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return UV_ENOMEM;
    }
    c->fd_frame_poll_fd = -1;
    int rc;
    if (is_tcp) {
        uv_tcp_init(b->loop, &c->h.tcp);
        rc = uv_tcp_open(&c->h.tcp, fd);
    } else {
        /* ipc: libuv receives descriptors sent with SCM_RIGHTS
         * (GuestMemory, RingSetup) and queues them; conn_take_fds. */
        uv_pipe_init(b->loop, &c->h.pipe, 1);
        rc = uv_pipe_open(&c->h.pipe, fd);
    }
    c->open_handles = 1;
    if (rc != 0) {
        close(fd);
        c->h.handle.data = c;
        c->closing = true;
        uv_close(&c->h.handle, conn_free_cb);
        return rc;
    }
    if (!is_tcp) {
        snprintf(c->label, sizeof(c->label), "unix-peer");
        c->is_loopback = true;
        start_conn(b, c);
        return 0;
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
    return 0;
}

static void listener_poll_cb(uv_poll_t *p, int status, int events)
{
    struct listener *l = p->data;
    struct bridge *b = l->bridge;
    (void)events;
    if (status < 0) {
        bridge_log(TLPB_LOG_WARN, "listening on %s: %s", l->name, uv_strerror(status));
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH && !b->stopping; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_recovered(b);
            conn_from_fd(b, l->is_tcp, fd);
            continue;
        }
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return;
        if (e == EINTR || e == ECONNABORTED)
            continue;
        if (e == EMFILE || e == ENFILE) {
            int shed = shed_connection(b, l);
            if (shed > 0) {
                accept_failed(b, l, e, true);
                continue;
            }
            if (shed == 0)
                return;
            accept_failed(b, l, e, false);
        } else {
            bridge_log(TLPB_LOG_WARN, "accept on %s: %s", l->name, strerror(e));
        }
        /* Nothing to shed with, or an unexpected error: a level-triggered
         * poll would spin; look again a little later. */
        uv_poll_stop(&l->poll);
        uv_timer_start(&l->retry, accept_retry_cb, ACCEPT_RETRY_MS, 0);
        return;
    }
}

static int listener_start(struct bridge *b, struct listener *l, int fd, bool is_tcp,
                          const char *name, char *err, size_t err_size)
{
    l->bridge = b;
    l->fd = fd;
    l->is_tcp = is_tcp;
    snprintf(l->name, sizeof(l->name), "%s", name);
    if (listen(fd, 64) != 0) {
        snprintf(err, err_size, "listen on %s: %s", name, strerror(errno));
        close(fd);
        l->fd = -1;
        return -1;
    }
    uv_poll_init(b->loop, &l->poll, fd);
    uv_timer_init(b->loop, &l->retry);
    l->poll.data = l->retry.data = l;
    l->init = true;
    uv_poll_start(&l->poll, UV_READABLE, listener_poll_cb);
    return 0;
}

static void listener_closed_cb(uv_handle_t *h)
{
    struct listener *l = h->data;
    if (h == (uv_handle_t *)&l->poll && l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}

static void listener_stop(struct listener *l)
{
    if (!l->init)
        return;
    l->init = false;
    uv_close((uv_handle_t *)&l->retry, NULL);
    uv_close((uv_handle_t *)&l->poll, listener_closed_cb);
}

/* A peer that is already connected (one end of a socketpair, an inherited
 * fd): served exactly as an accepted unix-socket peer. */
int bridge_adopt_fd(struct bridge *b, int fd)
{
    return conn_from_fd(b, false, fd);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct bridge *b = sig->data;
    bridge_log(TLPB_LOG_INFO, "signal %d: shutting down", signum);
    bridge_stop(b);
}

static int listen_unix(struct bridge *b, const char *path, char *err, size_t err_size)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, err_size, "listen on %s: path too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
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
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_size, "listen on %s: socket: %s", path, strerror(errno));
        return -1;
    }
    /* Mode 0600 from the start: the socket is the control authorisation. */
    mode_t old_umask = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int bind_errno = errno;
    umask(old_umask);
    if (rc != 0) {
        snprintf(err, err_size, "listen on %s: %s", path, strerror(bind_errno));
        close(fd);
        return -1;
    }
    b->unix_bound = true;
    if (chmod(path, 0600) != 0) {
        snprintf(err, err_size, "listen on %s: chmod: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    char name[160];
    snprintf(name, sizeof(name), "unix:%s", path);
    if (listener_start(b, &b->unix_listener, fd, false, name, err, err_size) != 0)
        return -1;
    bridge_log(TLPB_LOG_INFO, "listening on unix:%s", path);
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
    socklen_t ss_len = sizeof(struct sockaddr_in);
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) != 0) {
        ss_len = sizeof(struct sockaddr_in6);
        if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) != 0) {
            snprintf(err, err_size, "bad TCP host in %s (give a numeric address)", hostport);
            return -1;
        }
    }
    bool loopback = strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
    if (!loopback && !b->cfg->token[0]) {
        snprintf(err, err_size,
                 "refusing to listen on non-loopback %s without a token (--token-file or"
                 " token_file = ...)",
                 hostport);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_size, "listen on tcp:%s: socket: %s", hostport, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, ss_len) != 0) {
        snprintf(err, err_size, "listen on tcp:%s: %s", hostport, strerror(errno));
        close(fd);
        return -1;
    }
    /* The port actually bound (port 0 asks the kernel for a free one). */
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    char bound_host[64] = "?";
    int bound_port = (int)port;
    if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) == 0) {
        if (bound.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&bound, bound_host, sizeof(bound_host));
            bound_port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        } else if (bound.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&bound, bound_host, sizeof(bound_host));
            bound_port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        }
    }
    char name[160];
    snprintf(name, sizeof(name), "tcp:%s:%d", bound_host, bound_port);
    if (listener_start(b, &b->tcp_listener, fd, true, name, err, err_size) != 0)
        return -1;
    bridge_log(TLPB_LOG_INFO, "listening on tcp:%s:%d", bound_host, bound_port);
    return 0;
}

/* The bridge whose loop times the summaries of rate-limited log messages. */
static struct bridge *log_bridge;

static void log_timer_cb(uv_timer_t *t)
{
    (void)t;
    bridge_log_flush(false);
    bridge_log_summary_due();
}

void bridge_log_summary_due(void)
{
    struct bridge *b = log_bridge;
    if (!b || !b->log_timer_init || uv_is_active((uv_handle_t *)&b->log_timer))
        return;
    if (!tlpb_log_summaries_owed())
        return;
    uv_timer_start(&b->log_timer, log_timer_cb, TLPB_LOG_INTERVAL_MS, 0);
}

int bridge_start(struct bridge *b, uv_loop_t *loop, struct bridge_config *cfg, char *err,
                 size_t err_size)
{
    b->loop = loop;
    b->cfg = cfg;
    b->started_ns = tlpb_now_ns();
    if (!cfg->handshake_timeout_ms)
        cfg->handshake_timeout_ms = BRIDGE_HANDSHAKE_TIMEOUT_MS_DEFAULT;
    b->unix_listener.fd = b->tcp_listener.fd = -1;
    /* Spare fd for shedding connections at the fd limit (see shed_connection). */
    b->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    uv_timer_init(loop, &b->log_timer);
    uv_unref((uv_handle_t *)&b->log_timer); /* never what keeps the bridge running */
    b->log_timer_init = true;
    log_bridge = b;
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
    if (b->accept_exhausted)
        bridge_log(TLPB_LOG_WARN, "%llu connection(s) were refused while out of file descriptors;"
                   " %llu accept attempt(s) found no spare descriptor",
                   (unsigned long long)b->accept_failures, (unsigned long long)b->accept_stalls);
    if (b->log_timer_init) {
        uv_close((uv_handle_t *)&b->log_timer, NULL);
        b->log_timer_init = false;
    }
    if (b->ring_idle_init) {
        uv_close((uv_handle_t *)&b->ring_idle, NULL);
        b->ring_idle_init = false;
        b->ring_idle_active = false;
    }
    log_bridge = NULL;
    bridge_log_flush(true);
    for (unsigned i = 0; i < b->device_count; i++)
        device_fini(&b->devices[i]);
    listener_stop(&b->unix_listener);
    if (b->unix_bound)
        unlink(b->cfg->listen_path);
    listener_stop(&b->tcp_listener);
    if (b->reserve_fd >= 0) {
        close(b->reserve_fd);
        b->reserve_fd = -1;
    }
    if (b->signals_init) {
        uv_close((uv_handle_t *)&b->sigint, NULL);
        uv_close((uv_handle_t *)&b->sigterm, NULL);
    }
    trace_close(b);
}
