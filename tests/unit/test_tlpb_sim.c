/* libtlpbsim, the simulator side of the protocol, against a fake bridge on
 * the other end of a socketpair: what the Hello carries, TLPs and resets to
 * the callbacks, UR and an Error for a request that breaks a rule, an Error
 * and the end of the connection for a malformed TLP or an unknown Reset
 * kind, an Error for a bad frame,
 * output refused over its limit and resumed, and the connection's end.
 * Expected values come from docs/protocol.md and docs/simulator-api.md. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_bridge.h"
#include "tlpb_sim.h"

#define MAX_SEEN 16

static const struct tlpb_devdesc test_description = {
    .vendor_id = 0x1234,
    .device_id = 0x5eed,
    .class_code = 0xff0000,
    .bars = {[0] = {.size_bytes = 4096}},
    .intx_pin = 1,
    .max_payload_supported_bytes = 128,
};

struct rig {
    tlpb_sim *sim;
    struct fake_bridge fb;
    Tlpb__Envelope *hello;        /* what the library sent first */
    struct tlpb_tlp tlps[MAX_SEEN];
    unsigned tlp_count;
    Tlpb__ResetKind resets[MAX_SEEN];
    unsigned reset_count;
    unsigned output_ready_count;
};

static void on_tlp(void *arg, const struct tlpb_tlp *tlp)
{
    struct rig *r = arg;
    if (r->tlp_count < MAX_SEEN) {
        r->tlps[r->tlp_count] = *tlp;
        r->tlps[r->tlp_count].payload = NULL; /* valid only during the call */
    }
    r->tlp_count++;
}

static void on_reset(void *arg, Tlpb__ResetKind kind)
{
    struct rig *r = arg;
    if (r->reset_count < MAX_SEEN)
        r->resets[r->reset_count] = kind;
    r->reset_count++;
}

static void on_output_ready(void *arg)
{
    struct rig *r = arg;
    r->output_ready_count++;
}

static uint16_t on_bdf(void *arg)
{
    return 0x0308; /* bus 3, device 1, function 0 */
}

static const struct tlpb_sim_callbacks rig_callbacks = {
    .tlp = on_tlp,
    .reset = on_reset,
    .output_ready = on_output_ready,
    .bus_device_function = on_bdf,
};

static int rig_setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    int sv[2];
    assert_non_null(r);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fb_init(&r->fb, sv[1]);
    /* The reply is queued first: the handshake blocks until it reads it. */
    assert_int_equal(fb_send_hello_reply(&r->fb), 0);
    const struct tlpb_sim_options opts = {
        .device_name = "sim0",
        .peer_name = "unit test",
        .description = &test_description,
        .completion_timeout_ms = 1234,
        .log_level = 3,
    };
    char err[256] = "";
    int rc = tlpb_sim_attach_fd(&r->sim, sv[0], &opts, &rig_callbacks, r, err, sizeof(err));
    if (rc != 0)
        fail_msg("attach: %s", err);
    r->hello = fb_recv(&r->fb, 2000);
    assert_non_null(r->hello);
    *state = r;
    return 0;
}

static int rig_teardown(void **state)
{
    struct rig *r = *state;
    tlpb_sim_close(r->sim);
    tlpb_envelope_free(r->hello);
    fb_fini(&r->fb);
    free(r);
    return 0;
}

/* Hand everything the fake bridge sent to the library. */
static void deliver(struct rig *r)
{
    assert_int_equal(tlpb_sim_read_input(r->sim, 1u << 20), 0);
}

static Tlpb__Envelope *expect_frame(struct rig *r)
{
    assert_int_equal(tlpb_sim_flush(r->sim), 0);
    Tlpb__Envelope *env = fb_recv(&r->fb, 2000);
    assert_non_null(env);
    return env;
}

static void hello_announces_the_simulator(void **state)
{
    struct rig *r = *state;
    const Tlpb__Envelope *env = r->hello;
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_HELLO);
    const Tlpb__Hello *h = env->hello;
    assert_int_equal(h->role, TLPB__ROLE__ROLE_SIMULATOR);
    assert_string_equal(h->device_name, "sim0");
    assert_string_equal(h->peer_name, "unit test");
    assert_int_equal(h->version_major, TLPB_PROTOCOL_MAJOR);
    assert_int_equal(h->completion_timeout_ms, 1234);
    assert_int_equal(h->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA, 0);
    assert_non_null(h->description);
    assert_int_equal(h->description->vendor_id, 0x1234);
    assert_int_equal(h->description->device_id, 0x5eed);
    assert_true(tlpb_sim_connected(r->sim));
    assert_false(tlpb_sim_unsplit_dma(r->sim));
}

static void request_reaches_the_callback(void **state)
{
    struct rig *r = *state;
    struct tlpb_tlp mrd = {.kind = TLPB_TLP_MRD, .requester_id = 0x0010, .tag = 7,
                           .bar_hint = TLPB_NO_BAR};
    assert_int_equal(tlpb_tlp_set_mem_range(&mrd, 0xE0000010u, 8), 0);
    assert_int_equal(fb_send_tlp(&r->fb, &mrd), 0);
    deliver(r);
    assert_int_equal(r->tlp_count, 1);
    assert_int_equal(r->tlps[0].kind, TLPB_TLP_MRD);
    assert_int_equal(r->tlps[0].tag, 7);
    assert_int_equal(r->tlps[0].length_dw, 2);
    assert_int_equal(r->tlps[0].address, 0xE0000010u);
}

static void rule_breaking_request_gets_ur(void **state)
{
    struct rig *r = *state;
    /* Two DWs from 0xFFC: crosses a 4 KiB boundary, which PCIe forbids. */
    struct tlpb_tlp mrd = {.kind = TLPB_TLP_MRD, .requester_id = 0x0010, .tag = 9,
                           .length_dw = 2, .first_be = 0xF, .last_be = 0xF,
                           .address = 0xE0000FFCu, .bar_hint = TLPB_NO_BAR};
    assert_int_equal(fb_send_tlp(&r->fb, &mrd), 0);
    deliver(r);
    assert_int_equal(r->tlp_count, 0);
    Tlpb__Envelope *env = expect_frame(r);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_TLP);
    struct tlpb_tlp cpl;
    const char *reason = NULL;
    assert_int_equal(tlpb_tlp_from_pb(&cpl, env->tlp, &reason), 0);
    assert_int_equal(cpl.kind, TLPB_TLP_CPL);
    assert_int_equal(cpl.status, TLPB_CPL_UR);
    assert_int_equal(cpl.tag, 9);
    assert_int_equal(cpl.requester_id, 0x0010);
    assert_int_equal(cpl.completer_id, 0x0308);
    tlpb_envelope_free(env);
    /* The sender hears which rule; the connection goes on. */
    env = expect_frame(r);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_ERROR);
    assert_non_null(strstr(env->error->reason, "4 KiB"));
    tlpb_envelope_free(env);
    assert_true(tlpb_sim_connected(r->sim));
}

/* What the bridge sees after a protocol error: one Error naming the
 * problem, no completion, then the end of the stream. */
static void expect_protocol_error(struct rig *r, const char *named)
{
    assert_false(tlpb_sim_connected(r->sim));
    Tlpb__Envelope *env = fb_recv(&r->fb, 2000);
    assert_non_null(env);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_ERROR);
    if (!strstr(env->error->reason, named))
        fail_msg("Error \"%s\" does not name \"%s\"", env->error->reason, named);
    tlpb_envelope_free(env);
    assert_null(fb_recv(&r->fb, 2000)); /* end of stream, nothing else */
}

/* A malformed request reaches no callback and gets no completion. */
static void send_malformed(struct rig *r, const struct tlpb_tlp *tlp, const char *named)
{
    assert_int_equal(fb_send_tlp(&r->fb, tlp), 0);
    assert_true(tlpb_sim_read_input(r->sim, 1u << 20) < 0);
    assert_int_equal(r->tlp_count, 0);
    expect_protocol_error(r, named);
}

static void malformed_request_ends_the_connection(void **state)
{
    /* 1025 DWs without unsplit DMA: a length field PCIe cannot carry. */
    const struct tlpb_tlp mrd = {.kind = TLPB_TLP_MRD, .requester_id = 0x0010, .tag = 11,
                                 .length_dw = 1025, .first_be = 0xF, .last_be = 0xF,
                                 .address = 0xE0000000u, .bar_hint = TLPB_NO_BAR};
    send_malformed(*state, &mrd, "malformed TLP (MRd, tag 11)");
}

static void out_of_range_field_ends_the_connection(void **state)
{
    /* Traffic class 8 does not fit its 3 bits. */
    const struct tlpb_tlp mrd = {.kind = TLPB_TLP_MRD, .requester_id = 0x0010, .tag = 12,
                                 .length_dw = 1, .first_be = 0xF, .traffic_class = 8,
                                 .address = 0xE0000000u, .bar_hint = TLPB_NO_BAR};
    send_malformed(*state, &mrd, "malformed TLP (MRd, tag 12): traffic_class above 7");
}

static void resets_of_known_kinds_only(void **state)
{
    struct rig *r = *state;
    assert_int_equal(fb_send_reset(&r->fb, TLPB__RESET_KIND__RESET_FUNCTION_LEVEL), 0);
    assert_int_equal(fb_send_reset(&r->fb, TLPB__RESET_KIND__RESET_HOT), 0);
    deliver(r);
    assert_int_equal(r->reset_count, 2);
    assert_int_equal(r->resets[0], TLPB__RESET_KIND__RESET_FUNCTION_LEVEL);
    assert_int_equal(r->resets[1], TLPB__RESET_KIND__RESET_HOT);
    /* An unknown kind is not performed: a protocol error. */
    assert_int_equal(fb_send_reset(&r->fb, (Tlpb__ResetKind)99), 0);
    assert_true(tlpb_sim_read_input(r->sim, 1u << 20) < 0);
    assert_int_equal(r->reset_count, 2);
    expect_protocol_error(r, "Reset kind 99");
}

static void bad_frame_answered_with_error(void **state)
{
    struct rig *r = *state;
    /* A well-framed body that is no Envelope (field 15, wire type 7). */
    const uint8_t frame[] = {3, 0, 0, 0, 0x7F, 0xFF, 0xFF};
    assert_int_equal(write(r->fb.fd, frame, sizeof(frame)), (ssize_t)sizeof(frame));
    deliver(r);
    Tlpb__Envelope *env = expect_frame(r);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_ERROR);
    tlpb_envelope_free(env);
    assert_true(tlpb_sim_connected(r->sim));
}

static void output_over_the_limit_waits_for_room(void **state)
{
    struct rig *r = *state;
    static uint8_t data[4096];
    struct tlpb_tlp mwr = {.kind = TLPB_TLP_MWR, .requester_id = 0x0308,
                           .bar_hint = TLPB_NO_BAR, .payload = data,
                           .payload_bytes = sizeof(data)};
    assert_int_equal(tlpb_tlp_set_mem_range(&mwr, 0x10000000u, sizeof(data)), 0);

    /* Nothing is written meanwhile: requests are refused at the limit. */
    unsigned queued = 0;
    int rc;
    while ((rc = tlpb_sim_send_tlp(r->sim, &mwr)) == 0 && queued < 100000)
        queued++;
    assert_int_equal(rc, -EAGAIN);
    assert_true(tlpb_sim_output_pending(r->sim) >= tlpb_sim_output_limit(r->sim) - 8192);
    /* A completion is never refused: a requester waits for it. */
    struct tlpb_tlp req = {.kind = TLPB_TLP_MRD, .requester_id = 0x10, .tag = 1,
                           .bar_hint = TLPB_NO_BAR};
    assert_int_equal(tlpb_tlp_set_mem_range(&req, 0xE0000000u, 4), 0);
    struct tlpb_tlp cpl;
    tlpb_completion_error_for(&cpl, &req, 0x0308, TLPB_CPL_UR);
    assert_int_equal(tlpb_sim_send_tlp(r->sim, &cpl), 0);

    /* The bridge reads; once the output is below half its limit the
     * library says so, once. */
    unsigned frames = 0;
    while (r->output_ready_count == 0 && frames <= queued + 1) {
        assert_int_equal(tlpb_sim_flush(r->sim), 0);
        Tlpb__Envelope *env = fb_recv(&r->fb, 2000);
        assert_non_null(env);
        tlpb_envelope_free(env);
        frames++;
    }
    assert_int_equal(r->output_ready_count, 1);
    assert_true(tlpb_sim_output_pending(r->sim) < tlpb_sim_output_limit(r->sim) / 2);
    assert_int_equal(tlpb_sim_send_tlp(r->sim, &mwr), 0);
}

static struct tlpb_tlp expect_completion(struct rig *r, Tlpb__Envelope **env)
{
    struct tlpb_tlp cpl;
    const char *reason = NULL;
    *env = expect_frame(r);
    assert_int_equal((*env)->body_case, TLPB__ENVELOPE__BODY_TLP);
    assert_int_equal(tlpb_tlp_from_pb(&cpl, (*env)->tlp, &reason), 0);
    return cpl;
}

static void config_requests_from_config_space(void **state)
{
    struct rig *r = *state;
    struct tlpb_cfgspace cfg;
    tlpb_cfgspace_init(&cfg, &test_description);
    unsigned changes = 99;
    Tlpb__Envelope *env;

    struct tlpb_tlp rd = {.kind = TLPB_TLP_CFGRD0, .requester_id = 0x0010, .tag = 3,
                          .length_dw = 1, .first_be = 0xF, .cfg_register = 0x00,
                          .completer_id = 0x0308, .bar_hint = TLPB_NO_BAR};
    assert_int_equal(tlpb_sim_complete_config(r->sim, &cfg, &rd, &changes), 0);
    assert_int_equal(changes, 0);
    struct tlpb_tlp cpl = expect_completion(r, &env);
    assert_int_equal(cpl.kind, TLPB_TLP_CPLD);
    assert_int_equal(cpl.tag, 3);
    assert_int_equal(cpl.payload_bytes, 4);
    assert_memory_equal(cpl.payload, ((const uint8_t[]){0x34, 0x12, 0xed, 0x5e}), 4);
    tlpb_envelope_free(env);

    /* Memory space on: the write completes, the function learns its BDF. */
    const uint8_t command[4] = {0x02, 0, 0, 0};
    struct tlpb_tlp wr = rd;
    wr.kind = TLPB_TLP_CFGWR0;
    wr.cfg_register = 0x04;
    wr.first_be = 0x3;
    wr.payload = command;
    wr.payload_bytes = 4;
    assert_int_equal(tlpb_sim_complete_config(r->sim, &cfg, &wr, &changes), 0);
    assert_true(changes & TLPB_CFG_CHANGED_COMMAND);
    assert_true(tlpb_cfg_memory_enabled(&cfg));
    assert_int_equal(cfg.bus_device_function, 0x0308);
    cpl = expect_completion(r, &env);
    assert_int_equal(cpl.kind, TLPB_TLP_CPL);
    assert_int_equal(cpl.status, TLPB_CPL_SC);
    assert_int_equal(cpl.completer_id, 0x0308);
    tlpb_envelope_free(env);

    /* What the one implementation refuses (tests/unit/test_cfgspace.c)
     * and other kinds: only the wrapper's part is checked here. */
    struct tlpb_tlp mrd = {.kind = TLPB_TLP_MRD, .bar_hint = TLPB_NO_BAR};
    assert_int_equal(tlpb_sim_complete_config(r->sim, &cfg, &mrd, &changes), -EINVAL);
}

static void bridge_gone_ends_the_connection(void **state)
{
    struct rig *r = *state;
    close(r->fb.fd);
    r->fb.fd = -1;
    assert_true(tlpb_sim_read_input(r->sim, 1u << 20) < 0);
    assert_false(tlpb_sim_connected(r->sim));
    assert_string_equal(tlpb_sim_lost_reason(r->sim), "the bridge closed the connection");
    struct tlpb_tlp msi_like = {.kind = TLPB_TLP_MWR, .bar_hint = TLPB_NO_BAR};
    assert_int_equal(tlpb_sim_send_tlp(r->sim, &msi_like), -ENOTCONN);
    assert_int_equal(tlpb_sim_send_interrupt(r->sim, TLPB__INTERRUPT_KIND__IRQ_MSIX, 0),
                     -ENOTCONN);
    assert_true(tlpb_sim_wait(r->sim, 0) < 0);
}

static void attach_refuses_a_bad_description(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct tlpb_devdesc bad = test_description;
    bad.bars[0].size_bytes = 1000; /* not a power of two */
    const struct tlpb_sim_options opts = {.device_name = "sim0", .description = &bad};
    tlpb_sim *sim = NULL;
    char err[256] = "";
    assert_int_equal(tlpb_sim_attach_fd(&sim, sv[0], &opts, &rig_callbacks, NULL, err,
                                        sizeof(err)),
                     -EINVAL);
    assert_null(sim);
    assert_non_null(strstr(err, "bad device description"));
    /* Nothing was sent, and the fd was closed: the peer sees the end. */
    uint8_t byte;
    assert_int_equal(read(sv[1], &byte, 1), 0);
    close(sv[1]);
}

/* Each test on a fresh connection to a fake bridge. */
#define RIG_TEST(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        RIG_TEST(hello_announces_the_simulator),
        RIG_TEST(request_reaches_the_callback),
        RIG_TEST(rule_breaking_request_gets_ur),
        RIG_TEST(malformed_request_ends_the_connection),
        RIG_TEST(out_of_range_field_ends_the_connection),
        RIG_TEST(resets_of_known_kinds_only),
        RIG_TEST(bad_frame_answered_with_error),
        RIG_TEST(output_over_the_limit_waits_for_room),
        RIG_TEST(config_requests_from_config_space),
        RIG_TEST(bridge_gone_ends_the_connection),
        cmocka_unit_test(attach_refuses_a_bad_description),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
