/* See fake_bridge.h. */
#include "fake_bridge.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void fb_init(struct fake_bridge *fb, int fd)
{
    fb->fd = fd;
    tlpb_reader_init(&fb->rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    tlpb_obuf_init(&fb->ob, 64u * 1024u * 1024u, TLPB_DEFAULT_MAX_FRAME_BYTES);
}

void fb_fini(struct fake_bridge *fb)
{
    if (fb->fd >= 0)
        close(fb->fd);
    fb->fd = -1;
    tlpb_reader_free(&fb->rd);
    tlpb_obuf_free(&fb->ob);
}

static int send_env(struct fake_bridge *fb, const Tlpb__Envelope *env)
{
    int rc = tlpb_obuf_append(&fb->ob, env, true);
    return rc ? rc : tlpb_obuf_write_all(&fb->ob, fb->fd);
}

int fb_send_hello_reply(struct fake_bridge *fb)
{
    return fb_send_hello_reply_caps(fb, 0);
}

int fb_send_hello_reply_caps(struct fake_bridge *fb, uint32_t capabilities)
{
    Tlpb__HelloReply reply = TLPB__HELLO_REPLY__INIT;
    reply.accepted = true;
    reply.capabilities = capabilities;
    reply.version_major = TLPB_PROTOCOL_MAJOR;
    reply.version_minor = TLPB_PROTOCOL_MINOR;
    reply.max_frame_bytes = TLPB_DEFAULT_MAX_FRAME_BYTES;
    reply.backend = (char *)"external";
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO_REPLY;
    env.hello_reply = &reply;
    return send_env(fb, &env);
}

int fb_send_tlp(struct fake_bridge *fb, const struct tlpb_tlp *tlp)
{
    int rc = tlpb_obuf_append_tlp(&fb->ob, tlp, true);
    return rc ? rc : tlpb_obuf_write_all(&fb->ob, fb->fd);
}

int fb_send_reset(struct fake_bridge *fb, Tlpb__ResetKind kind)
{
    return fb_send_reset_at(fb, kind, 0);
}

int fb_send_time_sync(struct fake_bridge *fb, Tlpb__TimeSyncKind kind, uint64_t sim_time_ps,
                      uint64_t sync_id, uint64_t grant_until_ps)
{
    Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
    ts.kind = kind;
    ts.sim_time_ps = sim_time_ps;
    ts.sync_id = sync_id;
    ts.grant_until_ps = grant_until_ps;
    Tlpb__Envelope env;
    tlpb_time_sync_envelope(&env, &ts);
    return send_env(fb, &env);
}

int fb_send_reset_at(struct fake_bridge *fb, Tlpb__ResetKind kind, uint64_t sim_time_ps)
{
    Tlpb__Reset reset = TLPB__RESET__INIT;
    reset.kind = kind;
    reset.sim_time_ps = sim_time_ps;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_RESET;
    env.reset = &reset;
    return send_env(fb, &env);
}

Tlpb__Envelope *fb_recv(struct fake_bridge *fb, int timeout_ms)
{
    const uint8_t *frame;
    size_t len;
    const char *reason = "?";
    for (;;) {
        int rc = tlpb_reader_next(&fb->rd, &frame, &len, &reason);
        if (rc > 0)
            return tlpb_envelope_decode(frame, len, &reason);
        if (rc < 0)
            return NULL;
        /* After the first wait, only what has already arrived (a frame
         * split over reads is finished without waiting again). */
        struct pollfd p = {.fd = fb->fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            return NULL;
        size_t space;
        uint8_t *dst = tlpb_reader_space(&fb->rd, 4096, &space);
        if (!dst)
            return NULL;
        ssize_t n = read(fb->fd, dst, space);
        if (n <= 0)
            return NULL;
        tlpb_reader_commit(&fb->rd, (size_t)n);
    }
}
