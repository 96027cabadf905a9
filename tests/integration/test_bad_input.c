/* Bad input to a running tlpbridged, spoken by hand on raw sockets:
 * truncated frames, an oversize length prefix, bytes that are not a
 * message, a wrong protocol version, an unknown device name, TLPs that break
 * PCIe rules (from a host and from a simulator), completions for unknown
 * tags. Each gets a logged reason; requests get a UR completion; the
 * connection is dropped where the stream cannot continue and kept where it
 * can; a well-behaved host on another device keeps working throughout, and
 * the bridge exits cleanly with no sanitizer report. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

/* ---- The well-behaved host on another device ------------------------------ */

static struct dmacopy_fixture good;
static uint32_t good_round;

static void good_host_still_works(const char *after)
{
    uint32_t value = 0xC0DE0000u + ++good_round;
    fx_wr32(&good, REG_SCRATCH, value);
    uint32_t got = fx_rd32(&good, REG_SCRATCH);
    CHECK(got == value, "after %s: the other device's SCRATCH reads 0x%08x, wrote 0x%08x", after,
          got, value);
    it_check_children();
}

static void check_logged(const char *needle, const char *what)
{
    CHECK(it_log_contains(it.bridge, needle), "%s: the bridge log lacks \"%s\"", what, needle);
}

/* ---- Cases ---------------------------------------------------------------------- */

static void case_truncated_frame(void)
{
    /* A prefix announcing 100 bytes, 10 bytes, then the end of the stream. */
    struct raw r;
    raw_open(&r);
    raw_send_prefix(&r, 100);
    uint8_t ten[10] = {0x0A, 0x02, 0x08, 0x01};
    raw_send(&r, ten, sizeof(ten));
    shutdown(r.fd, SHUT_WR);
    CHECK(raw_expect_dropped(&r), "truncated frame: connection not closed");
    raw_close(&r);
    good_host_still_works("a truncated frame");
    check_logged("truncated frame: the connection ended 14 bytes into an incomplete frame",
                 "truncated frame");

    /* A complete frame whose Envelope is cut short (length prefix matches
     * the bytes, the protobuf inside does not parse). */
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_HOST, "dmacopy0", "a peer name long enough to be cut");
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    size_t full = tlpb__envelope__get_packed_size(&env);
    uint8_t *packed = malloc(full);
    tlpb__envelope__pack(&env, packed);
    raw_open(&r);
    raw_send_prefix(&r, (uint32_t)(full - 7));
    raw_send(&r, packed, full - 7);
    free(packed);
    CHECK(raw_expect_dropped(&r), "cut Envelope: connection not closed");
    CHECK(r.errors_seen == 1, "cut Envelope: %u Error messages, expected 1", r.errors_seen);
    raw_close(&r);
    good_host_still_works("a cut Envelope");
    check_logged("protocol error: frame is not a valid protobuf Envelope", "cut Envelope");

    /* Truncated in the middle of an established host connection. */
    raw_host(&r, "dmacopy0");
    raw_send_prefix(&r, 64);
    raw_send(&r, ten, 3);
    shutdown(r.fd, SHUT_WR);
    CHECK(raw_expect_dropped(&r), "truncated frame from a host: connection not closed");
    raw_close(&r);
    good_host_still_works("a truncated frame from a host");
    check_logged("host[dmacopy0]: protocol error: truncated frame", "truncated frame from a host");
}

static void case_oversize_prefix(void)
{
    struct raw r;
    raw_open(&r);
    raw_send_prefix(&r, 0xFFFFFFF0u);
    CHECK(raw_expect_dropped(&r), "oversize prefix: connection not closed");
    CHECK(r.errors_seen == 1, "oversize prefix: %u Error messages, expected 1", r.errors_seen);
    CHECK(strstr(r.last_error, "exceeds") != NULL, "oversize prefix: Error says '%s'", r.last_error);
    raw_close(&r);
    good_host_still_works("an oversize prefix before the handshake");

    /* After the handshake the limit is the negotiated one. */
    raw_host(&r, "dmacopy0");
    raw_send_prefix(&r, TLPB_HARD_MAX_FRAME_BYTES + 1);
    uint8_t some[64] = {0};
    raw_send(&r, some, sizeof(some));
    CHECK(raw_expect_dropped(&r), "oversize prefix from a host: connection not closed");
    CHECK(r.errors_seen == 1, "oversize prefix from a host: %u Error messages", r.errors_seen);
    raw_close(&r);
    good_host_still_works("an oversize prefix from a host");
    check_logged("host[dmacopy0]: protocol error: frame length prefix exceeds the negotiated maximum",
                 "oversize prefix");
}

static void case_not_a_message(void)
{
    struct raw r;
    raw_open(&r);
    uint8_t junk[24];
    memset(junk, 0xFF, sizeof(junk));
    raw_send_prefix(&r, sizeof(junk));
    raw_send(&r, junk, sizeof(junk));
    CHECK(raw_expect_dropped(&r), "junk frame: connection not closed");
    CHECK(r.errors_seen == 1, "junk frame: %u Error messages, expected 1", r.errors_seen);
    raw_close(&r);
    good_host_still_works("a junk frame");

    /* An empty Envelope (valid protobuf, no message in it). */
    raw_open(&r);
    raw_send_prefix(&r, 0);
    CHECK(raw_expect_dropped(&r), "empty Envelope: connection not closed");
    raw_close(&r);
    good_host_still_works("an empty Envelope");
    check_logged("protocol error: Envelope carries no message", "empty Envelope");

    /* Not a Hello first. */
    raw_open(&r);
    struct tlpb_tlp tlp = {.kind = TLPB_TLP_CFGRD0, .length_dw = 1, .first_be = 0xF,
                           .completer_id = 0x100, .bar_hint = TLPB_NO_BAR};
    raw_send_tlp(&r, &tlp);
    CHECK(raw_expect_dropped(&r), "TLP before Hello: connection not closed");
    CHECK(r.errors_seen == 1, "TLP before Hello: %u Error messages", r.errors_seen);
    raw_close(&r);
    check_logged("protocol error: first message must be Hello", "TLP before Hello");

    /* Junk after an established handshake. */
    raw_host(&r, "dmacopy0");
    raw_send_prefix(&r, sizeof(junk));
    raw_send(&r, junk, sizeof(junk));
    CHECK(raw_expect_dropped(&r), "junk from a host: connection not closed");
    raw_close(&r);
    good_host_still_works("junk from a host");
    check_logged("host[dmacopy0]: protocol error: frame is not a valid protobuf Envelope",
                 "junk from a host");
}

static void case_wrong_version(void)
{
    struct raw r;
    raw_open(&r);
    Tlpb__Envelope *reply = raw_hello(&r, TLPB__ROLE__ROLE_HOST, "dmacopy0", TLPB_PROTOCOL_MAJOR + 1, NULL);
    if (reply) {
        CHECK(!reply->hello_reply->accepted, "wrong major version accepted");
        CHECK(strstr(reply->hello_reply->error, "incompatible protocol version") != NULL,
              "wrong version: reply error '%s'", reply->hello_reply->error);
        tlpb_envelope_free(reply);
    }
    CHECK(raw_expect_dropped(&r), "wrong version: connection not closed");
    raw_close(&r);
    good_host_still_works("a wrong protocol version");
    char needle[128];
    snprintf(needle, sizeof(needle), "handshake refused: incompatible protocol version %u.0",
             TLPB_PROTOCOL_MAJOR + 1);
    check_logged(needle, "wrong version");

    /* The host library reports the refusal and stays disconnected. */
    raw_open(&r);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_HOST, "dmacopy0", NULL);
    hello.max_frame_bytes = 16; /* below the minimum */
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    raw_send_env(&r, &env);
    bool eof;
    reply = raw_next(&r, &eof);
    CHECK(reply && reply->body_case == TLPB__ENVELOPE__BODY_HELLO_REPLY &&
              !reply->hello_reply->accepted,
          "a max_frame_bytes of 16 was not refused");
    tlpb_envelope_free(reply);
    CHECK(raw_expect_dropped(&r), "tiny max frame: connection not closed");
    raw_close(&r);
    check_logged("max_frame_bytes 16 below the minimum", "tiny max frame");
}

static void case_unknown_device(void)
{
    struct raw r;
    raw_open(&r);
    Tlpb__Envelope *reply = raw_hello(&r, TLPB__ROLE__ROLE_HOST, "nosuchdevice", TLPB_PROTOCOL_MAJOR, NULL);
    if (reply) {
        CHECK(!reply->hello_reply->accepted, "unknown device accepted");
        CHECK(strstr(reply->hello_reply->error, "unknown device name 'nosuchdevice'") != NULL,
              "unknown device: reply error '%s'", reply->hello_reply->error);
        tlpb_envelope_free(reply);
    }
    CHECK(raw_expect_dropped(&r), "unknown device: connection not closed");
    raw_close(&r);
    check_logged("handshake refused: unknown device name 'nosuchdevice'", "unknown device");

    /* A name that is not a name at all. */
    raw_open(&r);
    reply = raw_hello(&r, TLPB__ROLE__ROLE_HOST, "../../etc/passwd", TLPB_PROTOCOL_MAJOR, NULL);
    CHECK(reply && !reply->hello_reply->accepted, "a path as device name accepted");
    tlpb_envelope_free(reply);
    CHECK(raw_expect_dropped(&r), "bad device name: connection not closed");
    raw_close(&r);

    /* The host library with an unknown device: not connected, fallback values. */
    struct dmacopy_fixture fx;
    fx_open_ex(&fx, "nosuchdevice", false, false);
    CHECK(!tlpb_host_connected(fx.host), "host library connected to an unknown device");
    uint32_t v = 0;
    int rc = tlpb_host_config_read(fx.host, 0, &v);
    CHECK(rc < 0 && v == 0xFFFFFFFFu, "host library read from an unknown device: rc %d 0x%x", rc, v);
    fx_close(&fx);
    good_host_still_works("an unknown device name");
}

static void case_bad_tlps_from_host(void)
{
    struct raw r;
    raw_host(&r, "dmacopy0");
    uint16_t bdf = 0x0100;
    unsigned errors = 0;

    /* Program BAR0 and memory space through this raw host first. */
    uint8_t bar0[4];
    tlpb_put_le32(bar0, DMACOPY_BAR0_ADDR);
    struct tlpb_tlp wr = {.kind = TLPB_TLP_CFGWR0, .tag = 1, .length_dw = 1, .first_be = 0xF,
                          .completer_id = bdf, .cfg_register = 0x10, .bar_hint = TLPB_NO_BAR,
                          .payload_bytes = 4, .payload = bar0};
    raw_send_tlp(&r, &wr);
    Tlpb__Envelope *env = raw_next_tlp(&r);
    CHECK(env && env->tlp->kind == TLPB__TLP_KIND__TLP_CPL && env->tlp->status == 0 &&
              env->tlp->tag == 1,
          "CfgWr0 of BAR0 not completed SC");
    tlpb_envelope_free(env);
    uint8_t cmd[4] = {0x06, 0, 0, 0};
    wr.tag = 2;
    wr.cfg_register = 0x04;
    wr.first_be = 0x3;
    wr.payload = cmd;
    raw_send_tlp(&r, &wr);
    tlpb_envelope_free(raw_next_tlp(&r));

    /* Length/byte-enable mismatch: 1 DW with a last_be. */
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .tag = 5, .length_dw = 1, .first_be = 0xF,
                          .last_be = 0xF, .address = DMACOPY_BAR0_ADDR, .bar_hint = 0};
    raw_send_tlp(&r, &rd);
    expect_ur(&r, 5, "MRd with last_be on 1 DW");
    CHECK(r.errors_seen == ++errors, "MRd with last_be on 1 DW: no Error message");
    check_logged("rejected MRd tag 5: last_be must be 0 for a 1-DW request", "length/BE mismatch");

    /* Multi-DW with last_be 0. */
    rd.tag = 6;
    rd.length_dw = 2;
    rd.last_be = 0;
    raw_send_tlp(&r, &rd);
    expect_ur(&r, 6, "2-DW MRd with last_be 0");
    CHECK(r.errors_seen == ++errors, "2-DW MRd with last_be 0: no Error message");
    check_logged("rejected MRd tag 6: last_be is 0 in a multi-DW request", "length/BE mismatch 2");

    /* Crossing a 4 KiB boundary. */
    rd.tag = 7;
    rd.length_dw = 2;
    rd.last_be = 0xF;
    rd.address = DMACOPY_BAR0_ADDR + 0xFFC;
    raw_send_tlp(&r, &rd);
    expect_ur(&r, 7, "MRd across 4 KiB");
    CHECK(r.errors_seen == ++errors, "MRd across 4 KiB: no Error message");
    check_logged("rejected MRd tag 7: memory request crosses a 4 KiB boundary", "4 KiB crossing");

    /* A posted write that breaks the rules: Error, no completion. */
    uint8_t four[4] = {1, 2, 3, 4};
    struct tlpb_tlp mwr = {.kind = TLPB_TLP_MWR, .tag = 0, .length_dw = 2, .first_be = 0xF,
                           .last_be = 0xF, .address = DMACOPY_BAR0_ADDR + REG_SCRATCH,
                           .bar_hint = 0, .payload_bytes = 4, .payload = four};
    raw_send_tlp(&r, &mwr);
    /* Config request longer than 1 DW: UR. */
    struct tlpb_tlp cfg = {.kind = TLPB_TLP_CFGRD0, .tag = 8, .length_dw = 2, .first_be = 0xF,
                           .last_be = 0xF, .completer_id = bdf, .cfg_register = 0,
                           .bar_hint = TLPB_NO_BAR};
    raw_send_tlp(&r, &cfg);
    expect_ur(&r, 8, "CfgRd0 of 2 DW");
    errors += 2;
    CHECK(r.errors_seen == errors, "MWr with a short payload and a 2-DW CfgRd0: %u Errors, expected %u",
          r.errors_seen, errors);
    check_logged("rejected MWr tag 0: MWr payload length does not match length_dw", "short MWr");
    check_logged("rejected CfgRd0 tag 8: config request length must be 1 DW", "2-DW CfgRd0");

    /* A completion for a DMA read the device never made. */
    uint8_t data[4] = {0};
    struct tlpb_tlp cpl = {.kind = TLPB_TLP_CPLD, .tag = 77, .length_dw = 1, .byte_count = 4,
                           .completer_id = 0, .requester_id = bdf, .bar_hint = TLPB_NO_BAR,
                           .payload_bytes = 4, .payload = data};
    raw_send_tlp(&r, &cpl);

    /* ...gets an Error, as a simulator's does. The connection is still
     * good: the write above did not reach SCRATCH, a valid read works.
     * (Fields that do not fit their PCIe width end the connection: see
     * test_rules.) */
    struct tlpb_tlp ok = {.kind = TLPB_TLP_MRD, .tag = 9, .length_dw = 1, .first_be = 0xF,
                          .address = DMACOPY_BAR0_ADDR + REG_ID, .bar_hint = 0};
    raw_send_tlp(&r, &ok);
    env = raw_next_tlp(&r);
    if (env) {
        const Tlpb__Tlp *t = env->tlp;
        CHECK(t->kind == TLPB__TLP_KIND__TLP_CPLD && t->status == 0 && t->tag == 9 &&
                  t->payload.len == 4,
              "valid MRd after bad ones: kind %d status %d tag %u", (int)t->kind, (int)t->status,
              t->tag);
        if (t->payload.len == 4) {
            uint32_t v = tlpb_get_le32(t->payload.data);
            CHECK_EQ_U64(v, 0x7A110001u, "ID read on the connection that sent bad TLPs");
        }
        tlpb_envelope_free(env);
    }
    CHECK(r.errors_seen == ++errors, "host completion for an unknown tag: %u Errors, expected %u",
          r.errors_seen, errors);
    check_logged("host CplD for tag 77 matches no DMA read", "completion for an unknown tag");
    raw_close(&r);
    good_host_still_works("bad TLPs from a host");
}

static void case_bad_tlps_from_simulator(void)
{
    /* A simulator describing another device is refused. */
    struct raw s;
    raw_open(&s);
    struct tlpb_devdesc other = *dmacopy_description();
    other.device_id = 0x9999;
    Tlpb__Envelope *reply = raw_hello(&s, TLPB__ROLE__ROLE_SIMULATOR, "ext0", TLPB_PROTOCOL_MAJOR, &other);
    CHECK(reply && !reply->hello_reply->accepted, "a simulator for the wrong device was accepted");
    if (reply)
        CHECK(strstr(reply->hello_reply->error, "does not match device ext0") != NULL,
              "wrong simulator: reply error '%s'", reply->hello_reply->error);
    tlpb_envelope_free(reply);
    CHECK(raw_expect_dropped(&s), "simulator for the wrong device: not dropped");
    raw_close(&s);
    check_logged("does not match device ext0", "wrong simulator description");

    /* A simulator with no description. */
    raw_open(&s);
    reply = raw_hello(&s, TLPB__ROLE__ROLE_SIMULATOR, "ext0", TLPB_PROTOCOL_MAJOR, NULL);
    CHECK(reply && !reply->hello_reply->accepted, "a simulator without a description was accepted");
    tlpb_envelope_free(reply);
    CHECK(raw_expect_dropped(&s), "simulator without description: not dropped");
    raw_close(&s);
    check_logged("simulator Hello carries no device description", "simulator without description");

    /* A proper simulator that then misbehaves. A host is connected so
     * the device's DMA has somewhere to go. */
    struct raw h;
    raw_host(&h, "ext0");
    raw_open(&s);
    reply = raw_hello(&s, TLPB__ROLE__ROLE_SIMULATOR, "ext0", TLPB_PROTOCOL_MAJOR, dmacopy_description());
    REQUIRE(reply && reply->hello_reply->accepted, "raw simulator refused: %s",
            reply ? reply->hello_reply->error : "no reply");
    tlpb_envelope_free(reply);

    /* A second simulator for the same device. */
    struct raw s2;
    raw_open(&s2);
    reply = raw_hello(&s2, TLPB__ROLE__ROLE_SIMULATOR, "ext0", TLPB_PROTOCOL_MAJOR, dmacopy_description());
    CHECK(reply && !reply->hello_reply->accepted, "a second simulator for ext0 was accepted");
    tlpb_envelope_free(reply);
    CHECK(raw_expect_dropped(&s2), "second simulator: not dropped");
    raw_close(&s2);
    check_logged("handshake refused: device already has a simulator attached", "second simulator");

    /* The bridge replays the host's config state to a new simulator: answer
     * whatever config writes it sends, as a device would. Then a
     * completion for a tag nobody used. */
    struct tlpb_tlp bad_cpl = {.kind = TLPB_TLP_CPL, .tag = 200, .status = TLPB_CPL_SC,
                               .byte_count = 4, .completer_id = 0x100, .bar_hint = TLPB_NO_BAR};
    raw_send_tlp(&s, &bad_cpl);
    /* DMA read crossing 4 KiB: UR back to the simulator. */
    struct tlpb_tlp dma = {.kind = TLPB_TLP_MRD, .tag = 3, .requester_id = 0x100, .length_dw = 4,
                           .first_be = 0xF, .last_be = 0xF, .address = GUEST_RAM_BASE + 0xFF8,
                           .bar_hint = TLPB_NO_BAR};
    raw_send_tlp(&s, &dma);
    /* A device may not send config requests. */
    struct tlpb_tlp cfg = {.kind = TLPB_TLP_CFGRD0, .tag = 4, .length_dw = 1, .first_be = 0xF,
                           .completer_id = 0, .bar_hint = TLPB_NO_BAR};
    raw_send_tlp(&s, &cfg);
    /* Collect the answers: UR for tag 3 and 4, Errors for the rest. */
    bool ur3 = false, ur4 = false;
    while (!(ur3 && ur4)) {
        bool eof;
        Tlpb__Envelope *env = raw_next(&s, &eof);
        if (!env) {
            CHECK(false, "simulator connection: %s", eof ? "dropped" : "no answer");
            break;
        }
        if (env->body_case == TLPB__ENVELOPE__BODY_TLP) {
            const Tlpb__Tlp *t = env->tlp;
            if (t->kind == TLPB__TLP_KIND__TLP_CFGWR0) {
                struct tlpb_tlp req, done;
                const char *why;
                if (tlpb_tlp_from_pb(&req, t, &why) == 0) {
                    tlpb_completion_error_for(&done, &req, 0x100, TLPB_CPL_SC);
                    done.kind = TLPB_TLP_CPL;
                    done.byte_count = 4;
                    raw_send_tlp(&s, &done);
                }
            } else if (tlpb_tlp_is_completion((enum tlpb_tlp_kind)t->kind)) {
                CHECK(t->status == TLPB__COMPLETION_STATUS__CPL_UR,
                      "simulator got status %d for tag %u, expected UR", (int)t->status, t->tag);
                if (t->tag == 3)
                    ur3 = true;
                else if (t->tag == 4)
                    ur4 = true;
            }
        }
        tlpb_envelope_free(env);
    }
    CHECK(s.errors_seen >= 2, "simulator misbehaviour: %u Error messages, expected >= 2", s.errors_seen);
    check_logged("device ext0: completion for tag 200 matches no outstanding request",
                 "completion for an unknown tag from a simulator");
    check_logged("simulator[ext0]: rejected MRd tag 3: memory request crosses a 4 KiB boundary",
                 "DMA across 4 KiB");
    check_logged("a device may not send config requests", "config request from a device");

    /* The host connection never saw any of it. */
    struct pollfd p = {.fd = h.fd, .events = POLLIN};
    while (poll(&p, 1, 0) == 1) {
        bool eof;
        Tlpb__Envelope *env = raw_next(&h, &eof);
        if (!env)
            break;
        CHECK(env->body_case != TLPB__ENVELOPE__BODY_TLP, "the host got a TLP from a bad simulator");
        tlpb_envelope_free(env);
    }
    raw_close(&s);
    raw_close(&h);
    good_host_still_works("bad TLPs from a simulator");
}

static void case_refused_peers(void)
{
    /* A second host for a device that has one. */
    struct raw r;
    raw_open(&r);
    Tlpb__Envelope *reply = raw_hello(&r, TLPB__ROLE__ROLE_HOST, "dmacopy1", TLPB_PROTOCOL_MAJOR, NULL);
    CHECK(reply && !reply->hello_reply->accepted, "a second host for dmacopy1 was accepted");
    tlpb_envelope_free(reply);
    CHECK(raw_expect_dropped(&r), "second host: not dropped");
    raw_close(&r);
    check_logged("handshake refused: device already has a host connected", "second host");
    good_host_still_works("a second host for the same device");

    /* A role the protocol does not know. */
    raw_open(&r);
    reply = raw_hello(&r, (Tlpb__Role)9, "dmacopy0", TLPB_PROTOCOL_MAJOR, NULL);
    CHECK(reply && !reply->hello_reply->accepted, "role 9 was accepted");
    tlpb_envelope_free(reply);
    CHECK(raw_expect_dropped(&r), "unknown role: not dropped");
    raw_close(&r);
    check_logged("handshake refused: unknown role", "unknown role");

    /* A second Hello on an established connection. */
    raw_host(&r, "dmacopy0");
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_HOST, "dmacopy0", NULL);
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    raw_send_env(&r, &env);
    CHECK(raw_expect_dropped(&r), "second Hello: not dropped");
    CHECK(r.errors_seen == 1, "second Hello: %u Error messages", r.errors_seen);
    raw_close(&r);
    check_logged("protocol error: second Hello on an established connection", "second Hello");

    /* Another bridge on the same socket must not steal it. */
    char dev[1200];
    snprintf(dev, sizeof(dev), "x:hlsim=%s", it_paths.model);
    const char *second[] = {it_paths.bridge, "--listen", it.socket_path, "--device", dev, NULL};
    char *out = NULL, *err = NULL;
    int rc = it_run_capture(second, &out, &err);
    CHECK(rc == 1 && strstr(err, "another bridge is listening there"),
          "a second bridge on the same socket: exit %d, '%s'", rc, err);
    CHECK(!strstr(err, "Sanitizer"), "sanitizer report from the refused bridge:\n%s", err);
    free(out);
    free(err);
    good_host_still_works("a second bridge tried the same socket");

    /* A bridge whose model does not load says why and exits cleanly. */
    const char *broken[] = {it_paths.bridge, "--listen", it_path("other.sock"), "--device",
                            "y:hlsim=/nonexistent/model.so", NULL};
    rc = it_run_capture(broken, &out, &err);
    CHECK(rc == 1 && strstr(err, "cannot load model"), "a bridge with a missing model: exit %d, '%s'",
          rc, err);
    CHECK(!strstr(err, "Sanitizer"), "sanitizer report from the failed bridge:\n%s", err);
    free(out);
    free(err);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_bad_input");
    /* The PCIe checker counts violations here: completions for no request,
     * from a raw host and a raw simulator, on purpose. */
    it_expect_violations();
    REQUIRE(it_paths.model != NULL, "--model is required");
    char dev0[1200], dev1[1200], ext[1200];
    snprintf(dev0, sizeof(dev0), "dmacopy0:hlsim=%s", it_paths.model);
    snprintf(dev1, sizeof(dev1), "dmacopy1:hlsim=%s", it_paths.model);
    snprintf(ext, sizeof(ext), "ext0:external=%s", it_paths.model);
    const char *args[] = {"--device", dev0, "--device", dev1, "--device", ext, NULL};
    it_start_bridge(args);

    fx_open(&good, "dmacopy1", false);
    fx_enumerate(&good);
    fx_init_device(&good);
    good_host_still_works("start");

    IT_RUN("truncated frames", case_truncated_frame());
    IT_RUN("oversize length prefix", case_oversize_prefix());
    IT_RUN("bytes that are not a message", case_not_a_message());
    IT_RUN("wrong protocol version", case_wrong_version());
    IT_RUN("unknown device name", case_unknown_device());
    IT_RUN("refused peers and a second bridge", case_refused_peers());
    IT_RUN("TLPs that break PCIe rules, from a host", case_bad_tlps_from_host());
    IT_RUN("TLPs that break PCIe rules, from a simulator", case_bad_tlps_from_simulator());

    /* Every completion the bridge built passed its own validator. */
    CHECK(!it_log_contains(it.bridge, "internal error"), "the bridge built a completion it rejects");
    fx_close(&good);
    return it_finish();
}
