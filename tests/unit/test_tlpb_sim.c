/* libtlpbsim, the simulator side of the protocol, against a fake bridge on
 * the other end of a socketpair: what the Hello carries, TLPs and resets to
 * the callbacks, UR and an Error for a request that breaks a rule, an Error
 * and the end of the connection for a malformed TLP or an unknown Reset
 * kind, an Error for a bad frame,
 * output refused over its limit and resumed, and the connection's end;
 * coupled time: CAP_TIME_SYNC and the clock period in the Hello, COUPLED
 * moving the clock, output stamped only while coupled, REACHED and
 * PROGRESS as sent (PROGRESS rate-limited on an injected clock), GRANT
 * without coupling or with sync_id 0 a protocol error, TimeSync without
 * the capability answered with an Error.
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

#include "../sim_test_description.h"
#include "fake_bridge.h"
#include "tlpb_sim.h"

#define MAX_SEEN 16

struct rig {
    tlpb_sim *sim;
    struct fake_bridge fb;
    Tlpb__Envelope *hello;        /* what the library sent first */
    struct tlpb_tlp tlps[MAX_SEEN];
    unsigned tlp_count;
    Tlpb__ResetKind resets[MAX_SEEN];
    unsigned reset_count;
    unsigned output_ready_count;
    struct tlpb_sim_time_sync syncs[MAX_SEEN];
    unsigned sync_count;
    uint64_t reset_stamp;         /* tlpb_sim_input_time_ps in the reset callback */
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
    r->reset_stamp = tlpb_sim_input_time_ps(r->sim);
}

static void on_time_sync(void *arg, const struct tlpb_sim_time_sync *ts)
{
    struct rig *r = arg;
    if (r->sync_count < MAX_SEEN)
        r->syncs[r->sync_count] = *ts;
    r->sync_count++;
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
    .time_sync = on_time_sync,
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

/* A simulator with a 4 ns clock that offers coupled time, to a bridge that
 * grants it. */
static int time_rig_setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    int sv[2];
    assert_non_null(r);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fb_init(&r->fb, sv[1]);
    assert_int_equal(fb_send_hello_reply_caps(&r->fb, TLPB__CAPABILITY__CAP_TIME_SYNC), 0);
    const struct tlpb_sim_options opts = {
        .device_name = "sim0",
        .description = &test_description,
        .time_sync = true,
        .clock_period_ps = 4000,
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

/* ---- coupled time ---------------------------------------------------------------- */

static uint64_t fake_wall_ns;
static uint64_t fake_wall(void)
{
    return fake_wall_ns;
}

static void time_sync_offered_with_the_period(void **state)
{
    struct rig *r = *state;
    const Tlpb__Hello *h = r->hello->hello;
    assert_true(h->capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC);
    assert_int_equal(h->clock_period_ps, 4000);
    assert_true(tlpb_sim_time_negotiated(r->sim));
    assert_false(tlpb_sim_time_coupled(r->sim)); /* until the bridge says COUPLED */
}

static uint64_t stamp_of_next_tlp(struct rig *r)
{
    Tlpb__Envelope *env = expect_frame(r);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_TLP);
    uint64_t t = env->tlp->sim_time_ps;
    tlpb_envelope_free(env);
    return t;
}

static void coupled_moves_the_clock_and_stamps_output(void **state)
{
    struct rig *r = *state;
    struct tlpb_tlp mwr = {.kind = TLPB_TLP_MWR, .requester_id = 0x0308,
                           .bar_hint = TLPB_NO_BAR, .payload = (const uint8_t *)"abcd",
                           .payload_bytes = 4};
    assert_int_equal(tlpb_tlp_set_mem_range(&mwr, 0x10000000u, 4), 0);

    tlpb_sim_set_time_ps(r->sim, 90000); /* free-running, ahead of the host */
    assert_int_equal(tlpb_sim_send_tlp(r->sim, &mwr), 0);
    assert_int_equal(stamp_of_next_tlp(r), 0); /* free-running: unstamped */

    assert_int_equal(fb_send_time_sync(&r->fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, 50000,
                                       0, 0), 0);
    deliver(r);
    assert_int_equal(r->sync_count, 1);
    assert_int_equal(r->syncs[0].kind, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED);
    assert_int_equal(r->syncs[0].sim_time_ps, 50000);
    assert_true(tlpb_sim_time_coupled(r->sim));
    /* joined the host's clock: the free-running time does not count */
    assert_int_equal(tlpb_sim_time_ps(r->sim), 50000);

    assert_int_equal(tlpb_sim_send_tlp(r->sim, &mwr), 0);
    assert_int_equal(stamp_of_next_tlp(r), 50000);
    tlpb_sim_set_time_ps(r->sim, 58000);
    tlpb_sim_set_time_ps(r->sim, 20000); /* never back */
    assert_int_equal(tlpb_sim_time_ps(r->sim), 58000);
    assert_int_equal(tlpb_sim_send_interrupt(r->sim, TLPB__INTERRUPT_KIND__IRQ_MSIX, 1), 0);
    Tlpb__Envelope *env = expect_frame(r);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_INTERRUPT);
    assert_int_equal(env->interrupt->sim_time_ps, 58000);
    tlpb_envelope_free(env);
    struct tlpb_tlp own = mwr;
    own.sim_time_ps = 60000; /* a stamp of the simulator's own is kept */
    assert_int_equal(tlpb_sim_send_tlp(r->sim, &own), 0);
    assert_int_equal(stamp_of_next_tlp(r), 60000);

    /* A later COUPLED behind the clock does not move it back. */
    assert_int_equal(fb_send_time_sync(&r->fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, 100,
                                       0, 0), 0);
    deliver(r);
    assert_int_equal(tlpb_sim_time_ps(r->sim), 58000);

    /* A stamped reset: its stamp during the callback. */
    assert_int_equal(fb_send_reset_at(&r->fb, TLPB__RESET_KIND__RESET_HOT, 61000), 0);
    deliver(r);
    assert_int_equal(r->reset_count, 1);
    assert_int_equal(r->reset_stamp, 61000);

    assert_int_equal(fb_send_time_sync(&r->fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_FREE, 0, 0, 0), 0);
    deliver(r);
    assert_int_equal(r->syncs[r->sync_count - 1].kind, TLPB__TIME_SYNC_KIND__TIME_SYNC_FREE);
    assert_false(tlpb_sim_time_coupled(r->sim));
    assert_int_equal(tlpb_sim_send_tlp(r->sim, &mwr), 0);
    assert_int_equal(stamp_of_next_tlp(r), 0); /* free again: unstamped */
}

static void grant_answered_with_reached(void **state)
{
    struct rig *r = *state;
    assert_int_equal(fb_send_time_sync(&r->fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, 1000, 0,
                                       0), 0);
    assert_int_equal(fb_send_time_sync(&r->fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 2000, 7,
                                       9000), 0);
    deliver(r);
    assert_int_equal(r->sync_count, 2);
    assert_int_equal(r->syncs[1].kind, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT);
    assert_int_equal(r->syncs[1].sync_id, 7);
    assert_int_equal(r->syncs[1].sim_time_ps, 2000);
    assert_int_equal(r->syncs[1].grant_until_ps, 9000);
    assert_int_equal(tlpb_sim_input_time_ps(r->sim), 2000);

    assert_int_equal(tlpb_sim_send_reached(r->sim, 7, 12000, true, 40000, 55), 0);
    Tlpb__Envelope *env = expect_frame(r);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_TIME_SYNC);
    const Tlpb__TimeSync *ts = env->time_sync;
    assert_int_equal(ts->kind, TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED);
    assert_int_equal(ts->sync_id, 7);
    assert_int_equal(ts->sim_time_ps, 12000);
    assert_true(ts->idle);
    assert_int_equal(ts->next_event_ps, 40000);
    assert_int_equal(ts->clocked_cycles, 55);
    tlpb_envelope_free(env);
    /* next_event_ps belongs to an idle answer only */
    assert_int_equal(tlpb_sim_send_reached(r->sim, 8, 13000, false, 40000, 56), 0);
    env = expect_frame(r);
    assert_false(env->time_sync->idle);
    assert_int_equal(env->time_sync->next_event_ps, 0);
    tlpb_envelope_free(env);
}

static void progress_is_rate_limited(void **state)
{
    struct rig *r = *state;
    fake_wall_ns = 1000000000ull;
    tlpb_sim_set_wall_clock(r->sim, fake_wall);
    /* not coupled: never */
    assert_int_equal(tlpb_sim_send_progress(r->sim, 1, 1), 0);
    fake_wall_ns += 10 * TLPB_SIM_PROGRESS_INTERVAL_NS;
    assert_int_equal(tlpb_sim_send_progress(r->sim, 1, 1), 0);
    assert_null(fb_recv(&r->fb, 0));

    assert_int_equal(fb_send_time_sync(&r->fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, 1000, 0,
                                       0), 0);
    deliver(r);
    /* Not within an interval of COUPLED ... */
    fake_wall_ns += TLPB_SIM_PROGRESS_INTERVAL_NS - 1;
    assert_int_equal(tlpb_sim_send_progress(r->sim, 5000, 3), 0);
    assert_null(fb_recv(&r->fb, 0));
    /* ... then once per interval, flushed at once */
    fake_wall_ns += 1;
    assert_int_equal(tlpb_sim_send_progress(r->sim, 6000, 4), 0);
    Tlpb__Envelope *env = fb_recv(&r->fb, 2000);
    assert_non_null(env);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_TIME_SYNC);
    assert_int_equal(env->time_sync->kind, TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS);
    assert_int_equal(env->time_sync->sim_time_ps, 6000);
    assert_int_equal(env->time_sync->clocked_cycles, 4);
    tlpb_envelope_free(env);
    assert_int_equal(tlpb_sim_send_progress(r->sim, 7000, 5), 0);
    assert_null(fb_recv(&r->fb, 0));
    /* A REACHED counts as a sign of life too. */
    fake_wall_ns += TLPB_SIM_PROGRESS_INTERVAL_NS - 1;
    assert_int_equal(tlpb_sim_send_reached(r->sim, 3, 8000, false, 0, 6), 0);
    env = expect_frame(r);
    assert_int_equal(env->time_sync->kind, TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED);
    tlpb_envelope_free(env);
    fake_wall_ns += 1;
    assert_int_equal(tlpb_sim_send_progress(r->sim, 8000, 6), 0);
    assert_null(fb_recv(&r->fb, 0));
}

static void grant_while_free_running_is_a_protocol_error(void **state)
{
    struct rig *r = *state;
    assert_int_equal(fb_send_time_sync(&r->fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 1000, 1,
                                       2000), 0);
    assert_true(tlpb_sim_read_input(r->sim, 1u << 20) < 0);
    assert_int_equal(r->sync_count, 0);
    expect_protocol_error(r, "while not coupled");
}

static void grant_with_sync_id_0_is_a_protocol_error(void **state)
{
    struct rig *r = *state;
    assert_int_equal(fb_send_time_sync(&r->fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, 1000, 0,
                                       0), 0);
    assert_int_equal(fb_send_time_sync(&r->fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 1000, 0,
                                       2000), 0);
    assert_true(tlpb_sim_read_input(r->sim, 1u << 20) < 0);
    assert_int_equal(r->sync_count, 1); /* the COUPLED only */
    expect_protocol_error(r, "sync_id 0");
}

static void device_kinds_from_the_bridge_answered_with_error(void **state)
{
    struct rig *r = *state;
    assert_int_equal(fb_send_time_sync(&r->fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED, 1000, 1,
                                       0), 0);
    deliver(r);
    assert_int_equal(r->sync_count, 0);
    Tlpb__Envelope *env = expect_frame(r);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_ERROR);
    assert_non_null(strstr(env->error->reason, "TimeSync kind 4"));
    tlpb_envelope_free(env);
    assert_true(tlpb_sim_connected(r->sim));
}

static void time_sync_without_the_capability_answered_with_error(void **state)
{
    struct rig *r = *state; /* the plain rig: no CAP_TIME_SYNC offered */
    assert_false(tlpb_sim_time_negotiated(r->sim));
    assert_int_equal(fb_send_time_sync(&r->fb, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, 1000, 0,
                                       0), 0);
    deliver(r);
    assert_int_equal(r->sync_count, 0);
    assert_false(tlpb_sim_time_coupled(r->sim));
    Tlpb__Envelope *env = expect_frame(r);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_ERROR);
    assert_non_null(strstr(env->error->reason, "CAP_TIME_SYNC not negotiated"));
    tlpb_envelope_free(env);
    assert_true(tlpb_sim_connected(r->sim));
    /* and the simulator cannot send one either */
    assert_int_equal(tlpb_sim_send_reached(r->sim, 1, 1000, true, 0, 0), -EINVAL);
}

/* Each test on a fresh connection to a fake bridge. */
#define RIG_TEST(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)
#define TIME_TEST(f) cmocka_unit_test_setup_teardown(f, time_rig_setup, rig_teardown)

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
        TIME_TEST(time_sync_offered_with_the_period),
        TIME_TEST(coupled_moves_the_clock_and_stamps_output),
        TIME_TEST(grant_answered_with_reached),
        TIME_TEST(progress_is_rate_limited),
        TIME_TEST(grant_while_free_running_is_a_protocol_error),
        TIME_TEST(grant_with_sync_id_0_is_a_protocol_error),
        TIME_TEST(device_kinds_from_the_bridge_answered_with_error),
        RIG_TEST(time_sync_without_the_capability_answered_with_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
