/* Coupled simulated time at the bridge (docs/protocol.md, "Simulated
 * time"; docs/bridge.md, "Coupled time"), against a running tlpbridged with
 * raw peers:
 * - a GRANT on the fallback is answered REACHED{idle, until} with its id,
 *   and a completion the bridge builds carries the request's stamp;
 * - a GRANT to the in-process model is answered with its id;
 * - to a simulator with CAP_TIME_SYNC: COUPLED first with the host's time,
 *   stamped TLPs relayed with their stamps, the GRANT after them, the
 *   simulator's TLPs, interrupt and REACHED relayed back in order;
 * - TimeSync of a kind that is not the sender's, from a peer without the
 *   cap, or a REACHED for no pending grant: Error, counted;
 * - a simulator detaching with a grant pending: the host gets REACHED idle;
 * - switched away: the pending grant answered, FREE; switched back:
 *   COUPLED again, and the late answer to the answered grant dropped;
 * - a simulator without the cap: log line, time_mode, grants answered by
 *   the bridge, nothing of TimeSync to the simulator;
 * - status shows the time fields;
 * - PROGRESS keeps a request of a slow simulator alive past timeout_ms; a
 *   silent simulator's request is completed by the fallback;
 * - tlpbtrace --sim of two identical runs is identical, the plain listing
 *   (wall time) is not. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

#define BDF 0x0100u
#define BAR0 0xFE000000u
#define TIMEOUT_MS 1000u

/* Hello with capabilities: a host (quantum) or a simulator (clock). */
static void time_peer(struct raw *r, Tlpb__Role role, const char *device, uint64_t caps,
                      char *time_mode, size_t time_mode_size)
{
    raw_open(r);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, role, device, role == TLPB__ROLE__ROLE_HOST ? "time-host" : "time-sim");
    hello.capabilities = caps;
    struct tlpb_devdesc_pb desc_pb;
    if (role == TLPB__ROLE__ROLE_SIMULATOR) {
        tlpb_devdesc_to_pb(&desc_pb, dmacopy_description());
        hello.description = &desc_pb.msg;
        hello.clock_period_ps = 4000;
    } else {
        hello.quantum_ps = 1000000;
    }
    Tlpb__Envelope *reply = raw_send_hello(r, &hello);
    REQUIRE(reply && reply->hello_reply->accepted, "%s handshake for %s refused",
            tlpb_role_name(role), device);
    CHECK(((reply->hello_reply->capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC) != 0) ==
              ((caps & TLPB__CAPABILITY__CAP_TIME_SYNC) != 0),
          "CAP_TIME_SYNC offered %d, granted %d", (caps & TLPB__CAPABILITY__CAP_TIME_SYNC) != 0,
          (reply->hello_reply->capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC) != 0);
    if (time_mode)
        snprintf(time_mode, time_mode_size, "%s",
                 reply->hello_reply->time_mode ? reply->hello_reply->time_mode : "");
    tlpb_envelope_free(reply);
}

/* The next message that is not an Event (events are not part of the
 * order checked here); NULL on none. */
static Tlpb__Envelope *next_message(struct raw *r)
{
    for (;;) {
        bool eof;
        Tlpb__Envelope *env = raw_next(r, &eof);
        if (!env) {
            CHECK(!eof, "the bridge dropped a connection that could go on");
            return NULL;
        }
        /* Events, and the PROGRESS a waiting host is passed (counted in
         * case_progress_keeps_alive), are not what the cases look for. */
        if (env->body_case != TLPB__ENVELOPE__BODY_EVENT &&
            !(env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
              env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS))
            return env;
        tlpb_envelope_free(env);
    }
}

/* The simulator's next message that is not the bridge's config replay
 * (CfgWr0 under an internal tag, unstamped). */
static Tlpb__Envelope *sim_next(struct raw *s)
{
    for (;;) {
        Tlpb__Envelope *env = next_message(s);
        if (!env || env->body_case != TLPB__ENVELOPE__BODY_TLP ||
            env->tlp->kind != TLPB__TLP_KIND__TLP_CFGWR0 || env->tlp->sim_time_ps != 0)
            return env;
        tlpb_envelope_free(env);
    }
}

/* The next TLP the simulator gets (the host's request), past the TimeSync
 * (COUPLED) before it; fatal if none comes. */
static Tlpb__Envelope *sim_next_tlp(struct raw *s)
{
    for (;;) {
        Tlpb__Envelope *env = sim_next(s);
        REQUIRE(env, "the MRd did not reach the simulator");
        if (env->body_case == TLPB__ENVELOPE__BODY_TLP)
            return env;
        tlpb_envelope_free(env);
    }
}

static void expect_reached(struct raw *host, uint64_t id, uint64_t at, bool idle, const char *what)
{
    Tlpb__Envelope *env = next_message(host);
    REQUIRE(env, "%s: no message", what);
    CHECK(env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
              env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED,
          "%s: got %s, expected TimeSync REACHED", what, tlpb_message_name(env->body_case));
    if (env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC) {
        CHECK_EQ_U64(env->time_sync->sync_id, id, "REACHED sync_id");
        CHECK_EQ_U64(env->time_sync->sim_time_ps, at, "REACHED sim_time_ps");
        CHECK(env->time_sync->idle == idle, "%s: REACHED idle %d, expected %d", what,
              env->time_sync->idle, idle);
    }
    tlpb_envelope_free(env);
}

static Tlpb__Envelope *expect_tlp(struct raw *r, Tlpb__TlpKind kind, uint64_t stamp,
                                  const char *what)
{
    Tlpb__Envelope *env = next_message(r);
    REQUIRE(env, "%s: no message", what);
    CHECK(env->body_case == TLPB__ENVELOPE__BODY_TLP && env->tlp->kind == kind,
          "%s: got %s (kind %d), expected TLP kind %d", what, tlpb_message_name(env->body_case),
          env->body_case == TLPB__ENVELOPE__BODY_TLP ? (int)env->tlp->kind : -1, (int)kind);
    if (env->body_case == TLPB__ENVELOPE__BODY_TLP)
        CHECK(env->tlp->sim_time_ps == stamp, "%s: stamp %llu, expected %llu", what,
              (unsigned long long)env->tlp->sim_time_ps, (unsigned long long)stamp);
    return env;
}

static void send_mrd(struct raw *r, uint8_t tag, uint64_t addr, uint64_t stamp)
{
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .tag = tag, .length_dw = 1, .first_be = 0xF,
                          .address = addr, .bar_hint = TLPB_NO_BAR, .sim_time_ps = stamp};
    raw_send_tlp(r, &rd);
}

/* A host's MWr (requester 0, the root port) or a device's DMA write
 * (requester BDF). */
static void send_mwr(struct raw *r, uint16_t requester, uint64_t addr, uint32_t value,
                     uint64_t stamp)
{
    uint8_t payload[4];
    tlpb_put_le32(payload, value);
    struct tlpb_tlp wr = {.kind = TLPB_TLP_MWR, .requester_id = requester, .length_dw = 1,
                          .first_be = 0xF, .address = addr, .bar_hint = TLPB_NO_BAR,
                          .payload_bytes = 4, .payload = payload, .sim_time_ps = stamp};
    raw_send_tlp(r, &wr);
}

/* CplD of one DW for request req (as the simulator got it). */
static void send_cpld(struct raw *s, const Tlpb__Tlp *req, uint32_t value, uint64_t stamp)
{
    struct tlpb_tlp rq;
    const char *reason;
    REQUIRE(tlpb_tlp_from_pb(&rq, req, &reason) == 0, "request does not convert: %s", reason);
    struct tlpb_tlp cpl;
    tlpb_completion_for(&cpl, &rq, BDF, tlpb_tlp_first_byte_address(&rq), 4, 4);
    uint8_t data[4];
    tlpb_put_le32(data, value);
    cpl.payload = data;
    cpl.sim_time_ps = stamp;
    raw_send_tlp(s, &cpl);
}

static void check_logged(const char *needle, const char *what)
{
    CHECK(it_log_contains(it.bridge, needle), "%s: the bridge log lacks \"%s\"", what, needle);
}

/* ---- cases -------------------------------------------------------------- */

static void case_fallback_grant(void)
{
    struct raw h;
    char mode[128];
    time_peer(&h, TLPB__ROLE__ROLE_HOST, "fb0", TLPB__CAPABILITY__CAP_TIME_SYNC, mode, sizeof(mode));
    CHECK(strncmp(mode, "free-running (", 14) == 0, "fb0 time_mode '%s'", mode);
    raw_host_enumerate(&h, BDF, NULL);
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 7, 1000, 5000, false);
    expect_reached(&h, 7, 5000, true, "GRANT on the fallback");
    /* A completion the bridge builds carries the request's stamp. */
    struct tlpb_tlp rd = {.kind = TLPB_TLP_CFGRD0, .tag = 3, .length_dw = 1, .first_be = 0xF,
                          .completer_id = BDF, .cfg_register = 0, .bar_hint = TLPB_NO_BAR,
                          .sim_time_ps = 123456};
    raw_send_tlp(&h, &rd);
    Tlpb__Envelope *env = expect_tlp(&h, TLPB__TLP_KIND__TLP_CPLD, 123456, "fallback CfgRd0");
    tlpb_envelope_free(env);
    /* ... also a UR for a read no BAR decodes. */
    send_mrd(&h, 4, 0xFD000000u, 234567);
    env = expect_tlp(&h, TLPB__TLP_KIND__TLP_CPL, 234567, "fallback UR");
    tlpb_envelope_free(env);
    raw_close(&h);
}

/* The in-process model answers a grant through the bridge's interface;
 * whatever its clock did, the answer has the grant's id and reaches at
 * least the grant's end. */
static void case_hlsim_grant(void)
{
    struct raw h;
    char mode[128];
    time_peer(&h, TLPB__ROLE__ROLE_HOST, "hl0", TLPB__CAPABILITY__CAP_TIME_SYNC, mode, sizeof(mode));
    CHECK(strcmp(mode, "coupled") == 0, "hl0 time_mode '%s'", mode);
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 5, 1000000, 2000000, false);
    Tlpb__Envelope *env = next_message(&h);
    REQUIRE(env, "no answer to a grant on hlsim");
    CHECK(env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
              env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED &&
              env->time_sync->sync_id == 5 && env->time_sync->sim_time_ps >= 2000000,
          "hlsim answered a grant with %s", tlpb_message_name(env->body_case));
    tlpb_envelope_free(env);
    bool ok;
    char *status = it_control("status", NULL, &ok);
    const char *dev = it_json_device(status, "hl0");
    char text[64] = "";
    CHECK(dev && it_json_str(dev, "mode", text, sizeof(text)) && strcmp(text, "coupled") == 0,
          "hl0 time mode '%s'", text);
    free(status);
    raw_close(&h);
}

static void case_relay(void)
{
    struct raw h, s;
    char mode[128];
    time_peer(&h, TLPB__ROLE__ROLE_HOST, "ext0", TLPB__CAPABILITY__CAP_TIME_SYNC, mode, sizeof(mode));
    CHECK(strncmp(mode, "free-running (", 14) == 0, "ext0 time_mode before a simulator '%s'", mode);
    raw_host_enumerate(&h, BDF, NULL);
    /* The host's time becomes known to the bridge. */
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 1, 2000, 3000, false);
    expect_reached(&h, 1, 3000, true, "GRANT with no simulator");

    time_peer(&s, TLPB__ROLE__ROLE_SIMULATOR, "ext0", TLPB__CAPABILITY__CAP_TIME_SYNC, NULL, 0);
    Tlpb__Envelope *env = sim_next(&s);
    REQUIRE(env, "no message to the simulator");
    CHECK(env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
              env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED &&
              env->time_sync->sim_time_ps == 2000,
          "first message to the simulator: %s, expected COUPLED at 2000 ps",
          tlpb_message_name(env->body_case));
    tlpb_envelope_free(env);

    send_mwr(&h, 0, BAR0 + 0x10, 0xA5A5A5A5u, 5000);
    send_mrd(&h, 5, BAR0 + 0x14, 6000);
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 2, 7000, 8000, false);
    env = sim_next(&s);
    REQUIRE(env, "no MWr");
    CHECK(env->body_case == TLPB__ENVELOPE__BODY_TLP && env->tlp->kind == TLPB__TLP_KIND__TLP_MWR &&
              env->tlp->sim_time_ps == 5000,
          "simulator got %s, expected the MWr stamped 5000", tlpb_message_name(env->body_case));
    tlpb_envelope_free(env);
    Tlpb__Envelope *mrd = expect_tlp(&s, TLPB__TLP_KIND__TLP_MRD, 6000, "relayed MRd");
    env = next_message(&s);
    REQUIRE(env, "no GRANT");
    CHECK(env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
              env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT &&
              env->time_sync->sync_id == 2 && env->time_sync->grant_until_ps == 8000 &&
              env->time_sync->sim_time_ps == 7000,
          "simulator got %s, expected GRANT 2 until 8000 after the TLPs",
          tlpb_message_name(env->body_case));
    tlpb_envelope_free(env);

    /* The device's answer, in order: DMA write, completion, interrupt, REACHED. */
    send_mwr(&s, BDF, 0x10000, 0x5A5A5A5Au, 6500);
    send_cpld(&s, mrd->tlp, 0xCAFEF00Du, 7000);
    tlpb_envelope_free(mrd);
    Tlpb__Interrupt irq;
    Tlpb__Envelope ienv;
    tlpb_interrupt_envelope(&ienv, &irq, TLPB__INTERRUPT_KIND__IRQ_MSIX, 0);
    irq.sim_time_ps = 7500;
    raw_send_env(&s, &ienv);
    raw_send_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS, 0, 7600, 0, false);
    Tlpb__TimeSync reached = TLPB__TIME_SYNC__INIT;
    reached.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED;
    reached.sync_id = 2;
    reached.sim_time_ps = 8000;
    reached.clocked_cycles = 2;
    Tlpb__Envelope renv;
    tlpb_time_sync_envelope(&renv, &reached);
    raw_send_env(&s, &renv);

    env = expect_tlp(&h, TLPB__TLP_KIND__TLP_MWR, 6500, "DMA write to the host");
    tlpb_envelope_free(env);
    env = expect_tlp(&h, TLPB__TLP_KIND__TLP_CPLD, 7000, "completion to the host");
    if (env->body_case == TLPB__ENVELOPE__BODY_TLP) {
        CHECK(env->tlp->tag == 5, "completion tag %u, expected the host's 5", env->tlp->tag);
        CHECK(env->tlp->payload.len == 4 && tlpb_get_le32(env->tlp->payload.data) == 0xCAFEF00Du,
              "completion data");
    }
    tlpb_envelope_free(env);
    env = next_message(&h);
    REQUIRE(env, "no interrupt");
    CHECK(env->body_case == TLPB__ENVELOPE__BODY_INTERRUPT && env->interrupt->sim_time_ps == 7500,
          "host got %s, expected the Interrupt stamped 7500", tlpb_message_name(env->body_case));
    tlpb_envelope_free(env);
    expect_reached(&h, 2, 8000, false, "REACHED relayed after the device's output");

    /* Status while coupled. */
    bool ok;
    char *status = it_control("status", NULL, &ok);
    const char *dev = it_json_device(status, "ext0");
    char text[64];
    unsigned long long n = 0;
    CHECK(dev && it_json_str(dev, "mode", text, sizeof(text)) && strcmp(text, "coupled") == 0,
          "ext0 time mode '%s'", text);
    CHECK(dev && it_json_str(dev, "waiting", text, sizeof(text)) && strcmp(text, "device") == 0,
          "ext0 waiting '%s'", text);
    CHECK(dev && it_json_uint(dev, "syncs", &n) && n == 2, "ext0 syncs %llu", n);
    CHECK(dev && it_json_uint(dev, "host_time_ns", &n) && n == 7, "ext0 host_time_ns %llu", n);
    CHECK(dev && it_json_uint(dev, "device_time_ns", &n) && n == 8, "ext0 device_time_ns %llu", n);
    CHECK(dev && it_json_uint(dev, "quantum_ns", &n) && n == 1000, "ext0 quantum_ns %llu", n);
    CHECK(dev && it_json_uint(dev, "clock_period_ps", &n) && n == 4000, "ext0 clock_period_ps %llu", n);
    CHECK(dev && it_json_uint(dev, "clocked_cycles", &n) && n == 2, "ext0 clocked_cycles %llu", n);
    CHECK(dev && strstr(dev, "\"sync_wall_us_p99\"") && strstr(dev, "\"syncs_per_sim_ms\"") &&
              strstr(dev, "\"cycles_per_wall_s\"") && strstr(dev, "\"syncs_per_wall_s\""),
          "ext0 time fields incomplete");
    free(status);
    bool ctl_ok;
    char *line = it_control("time", NULL, &ctl_ok);
    CHECK(ctl_ok && line && strstr(line, "ext0: coupled, host 0.007 us, device 0.008 us"),
          "time line: %s", line ? line : "(none)");
    free(line);

    /* Wrong kinds, and a REACHED for no pending grant: Error, counted. */
    unsigned long long before = it_status_uint(NULL, "rejected_messages");
    unsigned errors = s.errors_seen;
    raw_send_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 9, 0, 1, false);
    raw_send_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED, 99, 9000, 0, true);
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED, 1, 9000, 0, true);
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 0, 9000, 9000, false);
    /* The Errors come before the answer to the grant that follows. */
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 3, 9000, 10000, false);
    /* Two Errors (in this order) and the grant from the host's batch,
     * which the bridge may read before or after the simulator's. */
    bool wrong_kind = false, no_grant = false, grant3 = false;
    for (int i = 0; i < 3; i++) {
        env = next_message(&s);
        REQUIRE(env, "simulator: message %d missing", i);
        if (env->body_case == TLPB__ENVELOPE__BODY_ERROR) {
            if (strstr(env->error->reason, "TIME_SYNC_GRANT from a simulator is not accepted"))
                wrong_kind = true;
            else if (wrong_kind && strstr(env->error->reason, "REACHED for sync_id 99"))
                no_grant = true;
        } else if (env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
                   env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT &&
                   env->time_sync->sync_id == 3) {
            grant3 = true;
        }
        tlpb_envelope_free(env);
    }
    CHECK(wrong_kind && no_grant, "simulator Errors: wrong kind %d, REACHED of no grant %d (last"
          " '%s')", wrong_kind, no_grant, s.last_error);
    CHECK(s.errors_seen == errors + 2, "simulator got %u Errors", s.errors_seen - errors);
    CHECK(grant3, "simulator did not get GRANT 3");
    env = next_message(&h);
    CHECK(env && env->body_case == TLPB__ENVELOPE__BODY_ERROR &&
              strstr(env->error->reason, "TIME_SYNC_REACHED from a host is not accepted"),
          "Error for a REACHED from the host: '%s'", h.last_error);
    tlpb_envelope_free(env);
    env = next_message(&h);
    CHECK(env && env->body_case == TLPB__ENVELOPE__BODY_ERROR &&
              strstr(env->error->reason, "sync_id 0"),
          "Error for a GRANT with id 0: '%s'", h.last_error);
    tlpb_envelope_free(env);
    CHECK_EQ_U64(it_status_uint(NULL, "rejected_messages") - before, 4, "rejected_messages");
    check_logged("TIME_SYNC_GRANT from a simulator is not accepted", "wrong kind");

    /* The simulator leaves with grant 3 pending: the host is answered. */
    raw_close(&s);
    expect_reached(&h, 3, 10000, true, "grant pending when the simulator left");
    raw_close(&h);
}

static void case_no_cap(void)
{
    struct raw h, s;
    char mode[128];
    time_peer(&h, TLPB__ROLE__ROLE_HOST, "ext2", TLPB__CAPABILITY__CAP_TIME_SYNC, mode, sizeof(mode));
    raw_host_enumerate(&h, BDF, NULL);
    time_peer(&s, TLPB__ROLE__ROLE_SIMULATOR, "ext2", 0, NULL, 0);
    /* The coupled host hears that time runs free now. */
    bool seen = false;
    for (;;) {
        bool eof;
        Tlpb__Envelope *env = raw_next(&h, &eof);
        if (!env)
            break;
        bool ev = env->body_case == TLPB__ENVELOPE__BODY_EVENT;
        if (ev && env->event->kind == TLPB__EVENT_KIND__EVENT_BACKEND_CHANGED &&
            strcmp(env->event->detail, "time: free-running (simulator has no CAP_TIME_SYNC)") == 0)
            seen = true;
        tlpb_envelope_free(env);
        if (seen || !ev)
            break;
    }
    CHECK(seen, "no Event saying time runs free");
    check_logged("device ext2: simulator \"time-sim\" has no CAP_TIME_SYNC: attached free-running"
                 " (guest time will not wait for it)",
                 "no-cap simulator");
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 11, 100, 200, false);
    expect_reached(&h, 11, 200, true, "GRANT with a free-running simulator");
    /* Nothing of TimeSync reached the simulator: the next thing is the MWr. */
    send_mwr(&h, 0, BAR0, 1, 300);
    Tlpb__Envelope *env = sim_next(&s);
    CHECK(env && env->body_case == TLPB__ENVELOPE__BODY_TLP &&
              env->tlp->kind == TLPB__TLP_KIND__TLP_MWR,
          "free-running simulator got %s before the MWr",
          env ? tlpb_message_name(env->body_case) : "nothing");
    tlpb_envelope_free(env);
    raw_close(&h);
    /* A host attaching now is told in its HelloReply. */
    time_peer(&h, TLPB__ROLE__ROLE_HOST, "ext2", TLPB__CAPABILITY__CAP_TIME_SYNC, mode, sizeof(mode));
    CHECK(strcmp(mode, "free-running (simulator has no CAP_TIME_SYNC)") == 0, "time_mode '%s'", mode);
    raw_close(&h);
    /* ... and a host without the cap is told nothing. */
    time_peer(&h, TLPB__ROLE__ROLE_HOST, "ext2", 0, mode, sizeof(mode));
    CHECK(mode[0] == '\0', "time_mode to a host without the cap: '%s'", mode);
    raw_close(&h);
    raw_close(&s);
}

/* The simulator's next message is a TimeSync of kind at sim_time_ps t. */
static void expect_sim_time_sync(struct raw *s, Tlpb__TimeSyncKind kind, uint64_t t, const char *what)
{
    Tlpb__Envelope *env = sim_next(s);
    REQUIRE(env, "%s: no message", what);
    CHECK(env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC && env->time_sync->kind == kind &&
              env->time_sync->sim_time_ps == t,
          "%s: got %s (kind %d, %llu ps), expected TimeSync kind %d at %llu ps", what,
          tlpb_message_name(env->body_case),
          env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC ? (int)env->time_sync->kind : -1,
          env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC
              ? (unsigned long long)env->time_sync->sim_time_ps : 0ull,
          (int)kind, (unsigned long long)t);
    tlpb_envelope_free(env);
}

static void control_ok(const char *command, const char *a0, const char *a1)
{
    const char *args[] = {a0, a1, NULL};
    bool ok;
    char *text = it_control(command, args, &ok);
    CHECK(ok, "%s %s %s: %s", command, a0, a1, text ? text : "(no reply)");
    free(text);
}

/* Switching away answers the pending grant and frees the simulator;
 * switching back couples it again; its late answer is dropped quietly. */
static void case_switch(void)
{
    struct raw h, s;
    time_peer(&s, TLPB__ROLE__ROLE_SIMULATOR, "ext0", TLPB__CAPABILITY__CAP_TIME_SYNC, NULL, 0);
    time_peer(&h, TLPB__ROLE__ROLE_HOST, "ext0", TLPB__CAPABILITY__CAP_TIME_SYNC, NULL, 0);
    /* A new host: its time is not known yet (its clock starts again), so
     * COUPLED rebases the simulator at 0, not at the last host's 9000 ps. */
    expect_sim_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, 0, "COUPLED at attach");
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 21, 20000, 21000, false);
    expect_sim_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 20000, "GRANT 21");
    control_ok("switch", "ext0", "fallback");
    expect_reached(&h, 21, 21000, true, "grant pending at a switch");
    Tlpb__Envelope *env = sim_next(&s);
    CHECK(env && env->body_case == TLPB__ENVELOPE__BODY_RESET, "the switched-away simulator got %s,"
          " expected its Reset", env ? tlpb_message_name(env->body_case) : "nothing");
    tlpb_envelope_free(env);
    expect_sim_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_FREE, 0, "FREE when switched away");
    control_ok("switch", "ext0", "external");
    expect_sim_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, 20000, "COUPLED again");
    unsigned long long before = it_status_uint(NULL, "rejected_messages");
    raw_send_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED, 21, 21000, 0, true);
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 22, 22000, 23000, false);
    expect_sim_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 22000, "GRANT 22");
    /* A second grant while one is pending is the host's mistake: Error,
     * not forwarded. */
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 23, 22000, 24000, false);
    Tlpb__Envelope *err = next_message(&h);
    CHECK(err && err->body_case == TLPB__ENVELOPE__BODY_ERROR &&
              strstr(err->error->reason, "GRANT 23 while grant 22 is pending"),
          "no Error for a second grant: '%s'", h.last_error);
    tlpb_envelope_free(err);
    raw_send_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED, 22, 23000, 0, true);
    expect_reached(&h, 22, 23000, true, "REACHED 22 after switching back");
    /* Only the second grant counted, not the late answer to grant 21. */
    CHECK_EQ_U64(it_status_uint(NULL, "rejected_messages") - before, 1,
                 "rejected_messages for the late answer to an answered grant");
    raw_close(&h);
    /* The coupled host left: FREE. */
    expect_sim_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_FREE, 0, "FREE when the host left");
    raw_close(&s);
}

/* Whether nothing but PROGRESS arrives on r for ms; *progress counts them. */
static bool quiet_but_progress(struct raw *r, int ms, unsigned *progress)
{
    uint64_t end = it_now_ms() + (uint64_t)ms;
    for (;;) {
        uint64_t now = it_now_ms();
        if (now >= end)
            return true;
        const uint8_t *frame;
        size_t len;
        const char *reason = "";
        int rc = tlpb_reader_read_frame(&r->rd, r->fd, (int)(end - now), &frame, &len, &reason);
        if (rc == -ETIMEDOUT)
            return true;
        Tlpb__Envelope *env = rc > 0 ? tlpb_envelope_decode(frame, len, &reason) : NULL;
        bool progress_msg = env && env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
                            env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS;
        if (!progress_msg)
            printf("  unexpected %s\n", env ? tlpb_message_name(env->body_case) : "frame");
        tlpb_envelope_free(env);
        if (!progress_msg)
            return false;
        (*progress)++;
    }
}

static void case_progress_keeps_alive(void)
{
    struct raw h, s;
    time_peer(&s, TLPB__ROLE__ROLE_SIMULATOR, "ext1", TLPB__CAPABILITY__CAP_TIME_SYNC, NULL, 0);
    time_peer(&h, TLPB__ROLE__ROLE_HOST, "ext1", TLPB__CAPABILITY__CAP_TIME_SYNC, NULL, 0);
    raw_host_enumerate(&h, BDF, &s);
    /* The slow simulator's read is outstanding for three timeouts of wall
     * time, past the PCIe checker's completion timeout (PCIe 2.8, two
     * timeouts): completion_timeout, and its late completion is then
     * unexpected_completion (PCIe 2.3.2). On purpose: PROGRESS keeps it
     * alive in the bridge. */
    it_expect_violation("ext1", "completion_timeout", 1);
    it_expect_violation("ext1", "unexpected_completion", 1);
    unsigned long long timeouts = it_status_uint("ext1", "timeouts");
    send_mrd(&h, 1, BAR0, 1000);
    Tlpb__Envelope *mrd = sim_next_tlp(&s);
    /* A slow simulator, alive: PROGRESS every tenth of the timeout, for
     * three timeouts; the host gets nothing meanwhile but the PROGRESS the
     * bridge passes on (its wait is bounded by silence): at most one a
     * second, at least one in three seconds. */
    uint64_t start = it_now_ms();
    bool quiet = true;
    unsigned progress = 0;
    while (quiet && it_now_ms() - start < 3u * TIMEOUT_MS) {
        raw_send_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS, 0, 1500, 0, false);
        quiet = quiet_but_progress(&h, (int)TIMEOUT_MS / 10, &progress);
    }
    uint64_t took_ms = it_now_ms() - start;
    CHECK(quiet, "the host got something but PROGRESS while a live simulator worked on its read");
    CHECK(progress >= 1 && progress <= took_ms / 1000u + 1,
          "%u PROGRESS passed on to the host in %llu ms (one a second at most, at least one)",
          progress, (unsigned long long)took_ms);
    send_cpld(&s, mrd->tlp, 0x600DDA7Au, 2000);
    tlpb_envelope_free(mrd);
    Tlpb__Envelope *env = expect_tlp(&h, TLPB__TLP_KIND__TLP_CPLD, 2000, "slow completion");
    CHECK(env->body_case == TLPB__ENVELOPE__BODY_TLP && env->tlp->payload.len == 4 &&
              tlpb_get_le32(env->tlp->payload.data) == 0x600DDA7Au,
          "the host got the fallback's data, not the simulator's");
    tlpb_envelope_free(env);
    CHECK_EQ_U64(it_status_uint("ext1", "timeouts") - timeouts, 0, "timeouts with PROGRESS");

    /* A silent simulator: its request is completed by the fallback. */
    send_mrd(&h, 2, BAR0, 3000);
    env = sim_next(&s);
    CHECK(env && env->body_case == TLPB__ENVELOPE__BODY_TLP, "the second MRd did not arrive");
    tlpb_envelope_free(env);
    /* The fallback's answer: all ones (fallback_read's default). */
    env = expect_tlp(&h, TLPB__TLP_KIND__TLP_CPLD, 3000, "fallback completion of a silent simulator");
    CHECK(env->body_case == TLPB__ENVELOPE__BODY_TLP && env->tlp->tag == 2 &&
              env->tlp->payload.len == 4 && tlpb_get_le32(env->tlp->payload.data) == 0xFFFFFFFFu,
          "silent simulator: not the fallback's all-ones CplD for tag 2");
    tlpb_envelope_free(env);
    CHECK_EQ_U64(it_status_uint("ext1", "timeouts") - timeouts, 1,
                 "timeouts of a silent simulator");
    raw_close(&h);
    raw_close(&s);
}

/* A simulator that keeps simulating (PROGRESS) but never completes a read:
 * after 50 ms of device time the fallback answers it, and a grant it ran
 * that far past is answered by the bridge; before that, nothing. */
static void case_device_time_timeout(void)
{
    struct raw h, s;
    const uint64_t cto = 50000000000ull; /* 50 ms in ps */
    time_peer(&s, TLPB__ROLE__ROLE_SIMULATOR, "ext4", TLPB__CAPABILITY__CAP_TIME_SYNC, NULL, 0);
    time_peer(&h, TLPB__ROLE__ROLE_HOST, "ext4", TLPB__CAPABILITY__CAP_TIME_SYNC, NULL, 0);
    raw_host_enumerate(&h, BDF, &s);
    unsigned long long timeouts = it_status_uint("ext4", "timeouts");
    send_mrd(&h, 1, BAR0, 1000);
    Tlpb__Envelope *env = sim_next_tlp(&s);
    tlpb_envelope_free(env);
    raw_send_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS, 0, 1000 + cto - 1, 0, false);
    unsigned progress = 0;
    CHECK(quiet_but_progress(&h, 300, &progress),
          "the host got something 1 ps before the completion timeout");
    raw_send_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS, 0, 1000 + cto, 0, false);
    env = expect_tlp(&h, TLPB__TLP_KIND__TLP_CPLD, 1000, "fallback completion after 50 ms of device time");
    CHECK(env->body_case == TLPB__ENVELOPE__BODY_TLP && env->tlp->tag == 1 &&
              env->tlp->payload.len == 4 && tlpb_get_le32(env->tlp->payload.data) == 0xFFFFFFFFu,
          "not the fallback's all-ones CplD for tag 1");
    tlpb_envelope_free(env);
    CHECK_EQ_U64(it_status_uint("ext4", "timeouts") - timeouts, 1, "device-time timeouts");
    /* The simulator, still in its implicit grant, runs past the next grant. */
    uint64_t now = 1000 + cto + 10;
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 7, now, now, false);
    expect_sim_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, now, "GRANT 7");
    raw_send_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS, 0, now + cto - 1, 0, false);
    CHECK(quiet_but_progress(&h, 300, &progress),
          "the grant was answered before the simulator ran 50 ms past it");
    raw_send_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS, 0, now + cto, 0, false);
    Tlpb__Envelope *r = next_message(&h);
    CHECK(r && r->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
              r->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED &&
              r->time_sync->sync_id == 7 && r->time_sync->sim_time_ps == now,
          "grant the simulator ran 50 ms past: not answered with REACHED 7 at %llu ps",
          (unsigned long long)now);
    tlpb_envelope_free(r);
    raw_close(&h);
    raw_close(&s);
}

/* A stamp beyond what the simulator was allowed to reach (a broken
 * simulator) would stall the guest as long: the bridge refuses it with an
 * Error and passes the completion on stamped at the bound. */
static void case_stamp_beyond_allowance(void)
{
    struct raw h, s;
    const uint64_t cto = 50000000000ull; /* 50 ms in ps */
    time_peer(&s, TLPB__ROLE__ROLE_SIMULATOR, "ext5", TLPB__CAPABILITY__CAP_TIME_SYNC, NULL, 0);
    time_peer(&h, TLPB__ROLE__ROLE_HOST, "ext5", TLPB__CAPABILITY__CAP_TIME_SYNC, NULL, 0);
    raw_host_enumerate(&h, BDF, &s);
    send_mrd(&h, 1, BAR0, 1000);
    Tlpb__Envelope *mrd = sim_next_tlp(&s);
    send_cpld(&s, mrd->tlp, 0x12345678u, 1000000000000000ull); /* 1000 s */
    tlpb_envelope_free(mrd);
    Tlpb__Envelope *env = expect_tlp(&h, TLPB__TLP_KIND__TLP_CPLD, 1000 + cto,
                                     "completion stamped beyond the allowance");
    tlpb_envelope_free(env);
    env = sim_next(&s);
    CHECK(env && env->body_case == TLPB__ENVELOPE__BODY_ERROR &&
              strstr(env->error->reason, "beyond what the simulator was allowed"),
          "no Error to the simulator for its stamp: %s",
          env ? tlpb_message_name(env->body_case) : "nothing");
    tlpb_envelope_free(env);
    raw_close(&h);
    raw_close(&s);
}

/* One scripted coupled exchange on ext3, traced to path. */
static void traced_run(const char *path)
{
    bool ok;
    const char *on[] = {"on", path, NULL};
    free(it_control("trace", on, &ok));
    REQUIRE(ok, "trace on %s", path);
    struct raw h, s;
    time_peer(&s, TLPB__ROLE__ROLE_SIMULATOR, "ext3", TLPB__CAPABILITY__CAP_TIME_SYNC, NULL, 0);
    time_peer(&h, TLPB__ROLE__ROLE_HOST, "ext3", TLPB__CAPABILITY__CAP_TIME_SYNC, NULL, 0);
    raw_host_enumerate(&h, BDF, &s);
    send_mrd(&h, 1, BAR0 + 8, 1000);
    Tlpb__Envelope *mrd = sim_next_tlp(&s);
    send_cpld(&s, mrd->tlp, 0x11223344u, 1500);
    tlpb_envelope_free(mrd);
    Tlpb__Envelope *env = expect_tlp(&h, TLPB__TLP_KIND__TLP_CPLD, 1500, "traced completion");
    tlpb_envelope_free(env);
    send_mwr(&h, 0, BAR0 + 0x20, 0x1000, 2000);
    raw_send_time_sync(&h, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 1, 2500, 3000, false);
    /* The device writes and interrupts while the host has moved on: the
     * trace's order of the two streams is wall time, the stamps are not. */
    send_mwr(&s, BDF, 0x20000, 0x77, 2600);
    Tlpb__Interrupt irq;
    Tlpb__Envelope ienv;
    tlpb_interrupt_envelope(&ienv, &irq, TLPB__INTERRUPT_KIND__IRQ_MSIX, 1);
    irq.sim_time_ps = 2700;
    raw_send_env(&s, &ienv);
    env = expect_tlp(&s, TLPB__TLP_KIND__TLP_MWR, 2000, "traced MWr");
    tlpb_envelope_free(env);
    env = next_message(&s);
    CHECK(env && env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC, "traced GRANT");
    tlpb_envelope_free(env);
    raw_send_time_sync(&s, TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED, 1, 3000, 0, true);
    env = expect_tlp(&h, TLPB__TLP_KIND__TLP_MWR, 2600, "traced DMA write");
    tlpb_envelope_free(env);
    env = next_message(&h);
    CHECK(env && env->body_case == TLPB__ENVELOPE__BODY_INTERRUPT, "traced interrupt");
    tlpb_envelope_free(env);
    expect_reached(&h, 1, 3000, true, "traced REACHED");
    raw_close(&h);
    raw_close(&s);
    const char *off[] = {"off", NULL};
    free(it_control("trace", off, &ok));
}

static void case_trace_sim(void)
{
    const char *a = it_path("run1.trace"), *b = it_path("run2.trace");
    traced_run(a);
    traced_run(b);
    char *sim_a = NULL, *sim_b = NULL, *wall_a = NULL, *wall_b = NULL, *err = NULL;
    const char *args_a[] = {"--sim", "--device", "ext3", a, NULL};
    const char *args_b[] = {"--sim", "--device", "ext3", b, NULL};
    CHECK(it_trace_tool(args_a, &sim_a, &err) == 0, "tlpbtrace --sim run 1: %s", err ? err : "");
    free(err);
    err = NULL;
    CHECK(it_trace_tool(args_b, &sim_b, &err) == 0, "tlpbtrace --sim run 2: %s", err ? err : "");
    free(err);
    err = NULL;
    const char *plain_a[] = {"--device", "ext3", a, NULL};
    const char *plain_b[] = {"--device", "ext3", b, NULL};
    CHECK(it_trace_tool(plain_a, &wall_a, &err) == 0, "tlpbtrace run 1");
    free(err);
    err = NULL;
    CHECK(it_trace_tool(plain_b, &wall_b, &err) == 0, "tlpbtrace run 2");
    free(err);
    if (sim_a && sim_b && wall_a && wall_b) {
        printf("  --sim listing:\n%s", sim_a);
        CHECK(strcmp(sim_a, sim_b) == 0, "--sim listings differ:\n%s---\n%s", sim_a, sim_b);
        CHECK(strcmp(wall_a, wall_b) != 0, "plain listings (with wall time) are identical");
        /* MRd, CplD, MWr, GRANT, MWr, IRQ, REACHED: all stamped (the
         * enumeration is not: it is no part of the guest's time). */
        unsigned lines = 0;
        for (const char *p = sim_a; *p; p++)
            lines += *p == '\n';
        CHECK(lines == 7, "--sim listing has %u lines, expected 7", lines);
        CHECK(strstr(sim_a, "TimeSync GRANT id 1 until 3.000ns") &&
                  strstr(sim_a, "TimeSync REACHED id 1 at 3.000ns idle"),
              "--sim listing lacks the sync");
        CHECK(strstr(wall_a, "@2.600ns") != NULL, "plain listing lacks the stamps");
    }
    free(sim_a);
    free(sim_b);
    free(wall_a);
    free(wall_b);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_time_bridge");
    REQUIRE(it_paths.model != NULL && it_paths.tracetool != NULL, "--model and --tlpbtrace are required");
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "devices = (\n"
             "  { name = \"fb0\"; backend = \"fallback\"; model = \"%s\"; },\n"
             "  { name = \"hl0\"; backend = \"hlsim\"; model = \"%s\"; },\n"
             "  { name = \"ext0\"; backend = \"external\"; model = \"%s\"; },\n"
             "  { name = \"ext1\"; backend = \"external\"; model = \"%s\"; timeout_ms = %u; },\n"
             "  { name = \"ext2\"; backend = \"external\"; model = \"%s\"; },\n"
             "  { name = \"ext3\"; backend = \"external\"; model = \"%s\"; },\n"
             "  { name = \"ext4\"; backend = \"external\"; model = \"%s\"; timeout_ms = 60000; },\n"
             "  { name = \"ext5\"; backend = \"external\"; model = \"%s\"; }\n"
             ");\n",
             it_paths.model, it_paths.model, it_paths.model, it_paths.model, TIMEOUT_MS, it_paths.model,
             it_paths.model, it_paths.model, it_paths.model);
    const char *args[] = {"--config", it_write_file("time.cfg", cfg), NULL};
    it_start_bridge(args);

    IT_RUN("GRANT on the fallback; bridge-built completions keep the stamp", case_fallback_grant());
    IT_RUN("GRANT to the in-process model", case_hlsim_grant());
    IT_RUN("relay to a simulator with CAP_TIME_SYNC", case_relay());
    IT_RUN("switching away and back", case_switch());
    IT_RUN("a simulator without CAP_TIME_SYNC runs free", case_no_cap());
    IT_RUN("PROGRESS keeps a slow simulator's request alive", case_progress_keeps_alive());
    IT_RUN("tlpbtrace --sim of two identical runs", case_trace_sim());
    IT_RUN("completion timeout in device time", case_device_time_timeout());
    IT_RUN("a stamp beyond the allowance", case_stamp_beyond_allowance());
    return it_finish();
}
