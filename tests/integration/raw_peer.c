/* A raw protocol peer for integration tests (raw_peer.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/cfgspace.h"


void raw_open(struct raw *r)
{
    char err[256];
    memset(r, 0, sizeof(*r));
    r->fd = tlpb_connect(it.socket_path, err, sizeof(err));
    REQUIRE(r->fd >= 0, "connect: %s", err);
    tlpb_reader_init(&r->rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
}

void raw_close(struct raw *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    tlpb_reader_free(&r->rd);
}

void raw_send(struct raw *r, const void *bytes, size_t len)
{
    const uint8_t *p = bytes;
    while (len) {
        ssize_t n = send(r->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return; /* the bridge may already have dropped us: that is checked by the caller */
        p += n;
        len -= (size_t)n;
    }
}

void raw_send_prefix(struct raw *r, uint32_t len)
{
    uint8_t p[4];
    tlpb_put_le32(p, len);
    raw_send(r, p, 4);
}

void raw_send_env(struct raw *r, const Tlpb__Envelope *env)
{
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, TLPB_HARD_MAX_FRAME_BYTES, TLPB_HARD_MAX_FRAME_BYTES);
    REQUIRE(tlpb_obuf_append(&ob, env, true) == 0, "cannot frame a message");
    raw_send(r, tlpb_obuf_head(&ob), tlpb_obuf_pending(&ob));
    tlpb_obuf_free(&ob);
}

void raw_send_env_fds(struct raw *r, const Tlpb__Envelope *env, const int *fds, unsigned n)
{
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, TLPB_HARD_MAX_FRAME_BYTES, TLPB_HARD_MAX_FRAME_BYTES);
    REQUIRE(tlpb_obuf_append(&ob, env, true) == 0, "cannot frame a message");
    REQUIRE(n <= RAW_MAX_FDS, "%u descriptors: at most %u", n, RAW_MAX_FDS);
    /* The descriptors ride on the frame's first byte, as a host sends them. */
    int rc = tlpb_send_with_fds(r->fd, tlpb_obuf_head(&ob), tlpb_obuf_pending(&ob), fds, n);
    CHECK(rc == 0, "sendmsg with %u descriptors: %s", n, strerror(-rc));
    tlpb_obuf_free(&ob);
}

void raw_send_tlp(struct raw *r, const struct tlpb_tlp *tlp)
{
    Tlpb__Tlp pb;
    tlpb_tlp_to_pb(&pb, tlp);
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_TLP;
    env.tlp = &pb;
    raw_send_env(r, &env);
}

/* A frame received on r, decoded; Errors counted. */
static Tlpb__Envelope *raw_decode(struct raw *r, const uint8_t *frame, size_t len)
{
    const char *reason = "";
    Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);
    CHECK(env != NULL, "the bridge sent a bad message: %s", reason);
    if (env && env->body_case == TLPB__ENVELOPE__BODY_ERROR) {
        r->errors_seen++;
        snprintf(r->last_error, sizeof(r->last_error), "%s", env->error->reason);
    }
    return env;
}

/* Next message; NULL at EOF (*eof set) or on timeout (a failure). Error
 * messages are counted and returned like any other. */
Tlpb__Envelope *raw_next(struct raw *r, bool *eof)
{
    const uint8_t *frame;
    size_t len;
    const char *reason = "";
    *eof = false;
    int rc = tlpb_reader_read_frame(&r->rd, r->fd, IT_DEADLINE_MS, &frame, &len, &reason);
    if (rc == 0 || rc == -ECONNRESET) {
        *eof = true;
        return NULL;
    }
    if (rc < 0) {
        it_fail_at(__FILE__, __LINE__, false, "raw peer: no message from the bridge: %s", reason);
        return NULL;
    }
    return raw_decode(r, frame, len);
}

/* Read until the bridge drops the connection; true if it did (bounded). */
bool raw_expect_dropped(struct raw *r)
{
    for (;;) {
        bool eof;
        Tlpb__Envelope *env = raw_next(r, &eof);
        if (eof)
            return true;
        if (!env)
            return false;
        tlpb_envelope_free(env);
    }
}

/* Wait for a TLP (skipping Errors and events, which are counted). */
Tlpb__Envelope *raw_next_tlp(struct raw *r)
{
    for (;;) {
        bool eof;
        Tlpb__Envelope *env = raw_next(r, &eof);
        if (!env) {
            CHECK(!eof, "the bridge dropped a connection that could go on");
            return NULL;
        }
        if (env->body_case == TLPB__ENVELOPE__BODY_TLP)
            return env;
        tlpb_envelope_free(env);
    }
}

bool raw_recv_tlp(struct raw *r, struct tlpb_tlp *out, uint8_t *data, size_t data_size)
{
    Tlpb__Envelope *env = raw_next_tlp(r);
    if (!env)
        return false;
    const char *reason = NULL;
    bool ok = tlpb_tlp_from_pb(out, env->tlp, &reason) == 0;
    CHECK(ok, "the bridge sent a TLP that does not convert: %s", reason);
    if (ok && out->payload_bytes) {
        size_t n = out->payload_bytes < data_size ? out->payload_bytes : data_size;
        memcpy(data, out->payload, n);
        out->payload = data;
    }
    tlpb_envelope_free(env);
    return ok;
}

Tlpb__Envelope *raw_send_hello(struct raw *r, Tlpb__Hello *hello)
{
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO;
    env.hello = hello;
    raw_send_env(r, &env);
    bool eof;
    Tlpb__Envelope *reply = raw_next(r, &eof);
    CHECK(reply && reply->body_case == TLPB__ENVELOPE__BODY_HELLO_REPLY,
          "no HelloReply to a Hello (eof %d)", eof);
    return reply;
}

Tlpb__Envelope *raw_hello(struct raw *r, Tlpb__Role role, const char *device,
                                 uint32_t major, const struct tlpb_devdesc *desc)
{
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, role, device, "raw-test-peer");
    hello.version_major = major;
    hello.version_minor = 0;
    struct tlpb_devdesc_pb desc_pb;
    if (desc) {
        tlpb_devdesc_to_pb(&desc_pb, desc);
        hello.description = &desc_pb.msg;
    }
    return raw_send_hello(r, &hello);
}

void raw_simulator(struct raw *r, const char *device)
{
    raw_open(r);
    Tlpb__Envelope *reply = raw_hello(r, TLPB__ROLE__ROLE_SIMULATOR, device, TLPB_PROTOCOL_MAJOR,
                                      dmacopy_description());
    REQUIRE(reply && reply->hello_reply->accepted, "simulator for %s refused", device);
    tlpb_envelope_free(reply);
}

void raw_simulator_caps(struct raw *r, const char *device, uint64_t capabilities)
{
    raw_open(r);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_SIMULATOR, device, "raw-test-peer");
    hello.capabilities = capabilities;
    struct tlpb_devdesc_pb desc_pb;
    tlpb_devdesc_to_pb(&desc_pb, dmacopy_description());
    hello.description = &desc_pb.msg;
    Tlpb__Envelope *reply = raw_send_hello(r, &hello);
    REQUIRE(reply && reply->hello_reply->accepted, "simulator for %s refused", device);
    REQUIRE(!(capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC) ||
                (reply->hello_reply->capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC),
            "CAP_TIME_SYNC offered but not granted");
    tlpb_envelope_free(reply);
}

void raw_host(struct raw *r, const char *device)
{
    raw_open(r);
    Tlpb__Envelope *reply = raw_hello(r, TLPB__ROLE__ROLE_HOST, device, TLPB_PROTOCOL_MAJOR, NULL);
    REQUIRE(reply && reply->body_case == TLPB__ENVELOPE__BODY_HELLO_REPLY &&
                reply->hello_reply->accepted,
            "host handshake for %s refused", device);
    tlpb_envelope_free(reply);
}

void raw_host_fence(struct raw *h, char *errors, size_t size, unsigned *tlps)
{
    Tlpb__Interrupt irq = TLPB__INTERRUPT__INIT;
    irq.kind = TLPB__INTERRUPT_KIND__IRQ_MSIX;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_INTERRUPT;
    env.interrupt = &irq;
    raw_send_env(h, &env);
    if (errors)
        errors[0] = '\0';
    if (tlps)
        *tlps = 0;
    for (;;) {
        bool eof;
        Tlpb__Envelope *m = raw_next(h, &eof);
        REQUIRE(m != NULL, "host: no Error for its Interrupt (eof %d)", eof);
        bool fence = m->body_case == TLPB__ENVELOPE__BODY_ERROR &&
                     strstr(m->error->reason, "Interrupt from a host");
        if (!fence && m->body_case == TLPB__ENVELOPE__BODY_ERROR && errors && !errors[0])
            snprintf(errors, size, "%s", m->error->reason);
        if (m->body_case == TLPB__ENVELOPE__BODY_TLP && tlps)
            (*tlps)++;
        tlpb_envelope_free(m);
        if (fence)
            return;
    }
}

/* Expect a UR completion (no data) for tag on r. */
void expect_ur(struct raw *r, uint8_t tag, const char *what)
{
    Tlpb__Envelope *env = raw_next_tlp(r);
    if (!env)
        return;
    const Tlpb__Tlp *t = env->tlp;
    CHECK(t->kind == TLPB__TLP_KIND__TLP_CPL && t->status == TLPB__COMPLETION_STATUS__CPL_UR &&
              t->tag == tag,
          "%s: got kind %d status %d tag %u, expected a UR Cpl for tag %u", what, (int)t->kind,
          (int)t->status, t->tag, tag);
    tlpb_envelope_free(env);
}

void raw_send_time_sync(struct raw *r, Tlpb__TimeSyncKind kind, uint64_t sync_id,
                        uint64_t sim_time_ps, uint64_t grant_until_ps, bool idle)
{
    Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
    ts.kind = kind;
    ts.sync_id = sync_id;
    ts.sim_time_ps = sim_time_ps;
    ts.grant_until_ps = grant_until_ps;
    ts.idle = idle;
    Tlpb__Envelope env;
    tlpb_time_sync_envelope(&env, &ts);
    raw_send_env(r, &env);
}

int raw_listen(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    REQUIRE(strlen(path) < sizeof(sa.sun_path), "socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 4) == 0,
            "cannot listen on %s: %s", path, strerror(errno));
    return fd;
}

Tlpb__Envelope *raw_read_envelope(int fd, struct tlpb_frame_reader *rd)
{
    const uint8_t *frame;
    size_t len;
    const char *reason = "";
    if (tlpb_reader_read_frame(rd, fd, IT_DEADLINE_MS, &frame, &len, &reason) <= 0)
        return NULL;
    return tlpb_envelope_decode(frame, len, &reason);
}

void raw_hello_reply_init(Tlpb__HelloReply *hr, struct tlpb_devdesc_pb *desc_pb,
                          const struct tlpb_devdesc *desc)
{
    tlpb_devdesc_to_pb(desc_pb, desc);
    *hr = (Tlpb__HelloReply)TLPB__HELLO_REPLY__INIT;
    hr->accepted = true;
    hr->version_major = TLPB_PROTOCOL_MAJOR;
    hr->max_frame_bytes = TLPB_DEFAULT_MAX_FRAME_BYTES;
    hr->description = &desc_pb->msg;
}

const struct tlpb_devdesc *dmacopy_description(void)
{
    static struct tlpb_devdesc d;
    memset(&d, 0, sizeof(d));
    d.vendor_id = 0x1234;
    d.device_id = 0x7A11;
    d.revision = 1;
    d.class_code = 0x088000;
    d.bars[0].size_bytes = 4096;
    d.bars[2].size_bytes = 4096;
    d.msix_vectors = 2;
    d.msix_table_bar = 2;
    d.msix_table_offset = 0;
    d.msix_pba_bar = 2;
    d.msix_pba_offset = 0x800;
    d.intx_pin = 1;
    d.max_payload_supported_bytes = 512;
    return &d;
}


Tlpb__Envelope *raw_host_caps(struct raw *r, const char *device, uint64_t capabilities)
{
    raw_open(r);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_HOST, device, "raw-test-peer");
    hello.capabilities = capabilities;
    Tlpb__Envelope *reply = raw_send_hello(r, &hello);
    REQUIRE(reply && reply->hello_reply->accepted, "host handshake for %s refused", device);
    return reply;
}


/* The next message on a or on b, whichever comes first (*from says which);
 * NULL (a failure recorded) when either connection ends or nothing comes
 * within the deadline. */
static Tlpb__Envelope *raw_next_of_two(struct raw *a, struct raw *b, struct raw **from)
{
    struct raw *peers[2] = {a, b};
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    for (;;) {
        for (unsigned i = 0; i < 2; i++) {
            const uint8_t *frame;
            size_t len;
            const char *reason = "";
            /* Timeout 0: a frame already received, or readable now. */
            int rc = tlpb_reader_read_frame(&peers[i]->rd, peers[i]->fd, 0, &frame, &len, &reason);
            if (rc == -ETIMEDOUT)
                continue;
            if (rc <= 0) {
                CHECK(false, "raw peer: connection %u of two ended or failed: %s", i, reason);
                return NULL;
            }
            *from = peers[i];
            return raw_decode(peers[i], frame, len);
        }
        uint64_t now = it_now_ms();
        if (now >= deadline) {
            CHECK(false, "raw peer: no message on either connection");
            return NULL;
        }
        struct pollfd p[2] = {{.fd = a->fd, .events = POLLIN}, {.fd = b->fd, .events = POLLIN}};
        poll(p, 2, (int)(deadline - now));
    }
}

/* A simulator's answer to a config request: SC, a read returning zero. */
void raw_cfg_write(struct raw *h, uint16_t bdf, uint16_t reg, uint32_t value, uint8_t be,
                   uint8_t tag)
{
    uint8_t payload[4];
    tlpb_put_le32(payload, value);
    struct tlpb_tlp wr = {.kind = TLPB_TLP_CFGWR0, .tag = tag, .length_dw = 1, .first_be = be,
                          .completer_id = bdf, .cfg_register = reg, .bar_hint = TLPB_NO_BAR,
                          .payload_bytes = 4, .payload = payload};
    raw_send_tlp(h, &wr);
    struct tlpb_tlp cpl;
    uint8_t data[8];
    CHECK(raw_recv_tlp(h, &cpl, data, sizeof(data)) && cpl.kind == TLPB_TLP_CPL &&
              cpl.status == TLPB_CPL_SC && cpl.tag == tag,
          "CfgWr0 of 0x%x to %02x:%02x.%x not completed SC", reg, bdf >> 8, (bdf >> 3) & 0x1f,
          bdf & 7);
}

void raw_complete_config(struct raw *sim, uint16_t bdf, const struct tlpb_tlp *req)
{
    struct tlpb_tlp cpl;
    static const uint8_t zero[4];
    tlpb_completion_for(&cpl, req, bdf, 0, 4, 4);
    if (cpl.kind == TLPB_TLP_CPLD)
        cpl.payload = zero;
    raw_send_tlp(sim, &cpl);
}

bool raw_sim_recv_tlp(struct raw *sim, uint16_t bdf, struct tlpb_tlp *out, uint8_t *data,
                      size_t data_size)
{
    for (;;) {
        if (!raw_recv_tlp(sim, out, data, data_size))
            return false;
        if (out->kind != TLPB_TLP_CFGWR0 && out->kind != TLPB_TLP_CFGRD0)
            return true;
        raw_complete_config(sim, bdf, out);
    }
}

void raw_host_enumerate(struct raw *h, uint16_t bdf, struct raw *sim)
{
    static const struct {
        uint16_t reg;
        uint32_t value;
        uint8_t be;
    } writes[] = {
        {0x10, DMACOPY_BAR0_ADDR, 0xF},
        {0x18, DMACOPY_BAR2_ADDR, 0xF},
        {TLPB_CFG_MSIX_CAP, 1u << 31, 0xC}, /* MSI-X Enable, Function Mask clear */
        {0x04, 0x0006, 0x3},                /* Memory Space, Bus Master Enable: last */
    };
    for (unsigned i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        uint8_t payload[4];
        tlpb_put_le32(payload, writes[i].value);
        struct tlpb_tlp wr = {.kind = TLPB_TLP_CFGWR0, .tag = (uint8_t)(0x80u + i), .length_dw = 1,
                              .first_be = writes[i].be, .completer_id = bdf,
                              .cfg_register = writes[i].reg, .bar_hint = TLPB_NO_BAR,
                              .payload_bytes = 4, .payload = payload};
        raw_send_tlp(h, &wr);
        for (bool completed = false; !completed;) {
            struct raw *from = h;
            Tlpb__Envelope *env = sim ? raw_next_of_two(h, sim, &from) : raw_next_tlp(h);
            REQUIRE(env != NULL, "enumeration: no completion for the CfgWr0 of 0x%x",
                    writes[i].reg);
            const Tlpb__Tlp *t = env->body_case == TLPB__ENVELOPE__BODY_TLP ? env->tlp : NULL;
            if (t && from == h) {
                completed = true;
                CHECK(t->kind == TLPB__TLP_KIND__TLP_CPL &&
                          t->status == TLPB__COMPLETION_STATUS__CPL_SC && t->tag == wr.tag,
                      "enumeration: the CfgWr0 of 0x%x got kind %d status %d tag 0x%x, expected"
                      " a Cpl SC for tag 0x%x", writes[i].reg, (int)t->kind, (int)t->status,
                      t->tag, wr.tag);
            } else if (t && (t->kind == TLPB__TLP_KIND__TLP_CFGWR0 ||
                             t->kind == TLPB__TLP_KIND__TLP_CFGRD0)) {
                struct tlpb_tlp req;
                const char *reason = NULL;
                if (tlpb_tlp_from_pb(&req, t, &reason) == 0)
                    raw_complete_config(sim, bdf, &req); /* ours, or the bridge's replay */
                else
                    CHECK(false, "a config request to the simulator does not convert: %s", reason);
            } else if (t) {
                CHECK(false, "enumeration: the simulator got a TLP of kind %d", (int)t->kind);
            }
            tlpb_envelope_free(env);
        }
    }
}
