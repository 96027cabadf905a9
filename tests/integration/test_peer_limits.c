/* What a peer can make the bridge hold or do, checked against a running
 * tlpbridged with raw peers (docs/bridge.md "Limits", docs/protocol.md):
 * - a simulator that floods messages the bridge answers (wrong-direction
 *   messages, rejected requests, with CAP_TIME_SYNC a REACHED that answers
 *   no grant) and never reads stalls itself: the
 *   bridge stops reading from it once its outbound queue is full, that
 *   queue stays bounded, and the bridge goes on serving another device;
 * - a simulator that was switched away (still attached, the device now on
 *   the fallback) no longer reaches the guest: its Interrupt is dropped and
 *   counted, its DMA read is completed with UR;
 * - `--trace FILE` at start only creates a new file: an existing file (or a
 *   symlink) is refused with a clear message and left as it was. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

#define BDF 0x0100u
#define DMACOPY_ID 0x7A111234u /* device ID << 16 | vendor ID */
/* The bridge's outbound queue limit as docs/bridge.md states it (8 MiB),
 * kept here rather than taken from bridge.h: the test checks the promise. */
#define QUEUE_LIMIT_BYTES (8u * 1024u * 1024u)
/* Rounds of the flood: far more than the bridge may queue answers for
 * (each round is answered with six Errors and a UR, some 550 bytes). */
#define FLOOD_ROUNDS 300000u
#define ROUNDS_PER_SEND 1000u

static const char *status_connection(const char *status, const char *label)
{
    /* A connection's entry is named by its label, as a device's by its name. */
    return it_json_device(status, label);
}

/* The flood peer's connection: whether the bridge stopped reading from it,
 * and its queued bytes. false when the status lacks it. */
static bool flood_state(struct it_control_conn *cc, bool *paused, unsigned long long *queued)
{
    bool ok = false;
    char *status = NULL;
    if (it_control_send(cc, "status", NULL))
        status = it_control_reply(cc, "status", &ok);
    const char *conn = ok ? status_connection(status, "simulator[ext1]") : NULL;
    bool found = conn && it_json_bool(conn, "reading_paused", paused) &&
                 it_json_uint(conn, "queued_bytes", queued);
    free(status);
    return found;
}

static void append_env(struct tlpb_obuf *ob, const Tlpb__Envelope *env)
{
    REQUIRE(tlpb_obuf_append(ob, env, true) == 0, "cannot frame a message");
}

/* One round of the flood: a Reset, an Event, a TimeSync and a
 * ControlRequest (none of them a simulator's to send: an Error each) and
 * an MRd of one DW with Last DW BE set (an Error and a UR; a refusal that is
 * no PCIe checker rule, so the flood counts no violation). */
static void append_flood_round(struct tlpb_obuf *ob)
{
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    Tlpb__Reset reset = TLPB__RESET__INIT;
    reset.kind = TLPB__RESET_KIND__RESET_HOT;
    env.body_case = TLPB__ENVELOPE__BODY_RESET;
    env.reset = &reset;
    append_env(ob, &env);
    Tlpb__Event ev = TLPB__EVENT__INIT;
    ev.kind = TLPB__EVENT_KIND__EVENT_BACKEND_CHANGED;
    ev.backend = (char *)"hlsim";
    ev.detail = (char *)"";
    env = (Tlpb__Envelope)TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    append_env(ob, &env);
    Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
    tlpb_time_sync_envelope(&env, &ts);
    append_env(ob, &env);
    /* With CAP_TIME_SYNC: a REACHED that answers no grant. */
    Tlpb__TimeSync reached = TLPB__TIME_SYNC__INIT;
    reached.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED;
    reached.sync_id = 77;
    tlpb_time_sync_envelope(&env, &reached);
    append_env(ob, &env);
    Tlpb__ControlRequest cr = TLPB__CONTROL_REQUEST__INIT;
    cr.command = (char *)"status";
    env = (Tlpb__Envelope)TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_CONTROL_REQUEST;
    env.control_request = &cr;
    append_env(ob, &env);
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .requester_id = BDF, .tag = 5, .length_dw = 1,
                          .first_be = 0xF, .last_be = 0xF, .address = GUEST_RAM_BASE + 0xFFC,
                          .bar_hint = TLPB_NO_BAR};
    Tlpb__Tlp pb;
    tlpb_tlp_to_pb(&pb, &rd);
    env = (Tlpb__Envelope)TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_TLP;
    env.tlp = &pb;
    append_env(ob, &env);
}

/* A config read of the ID register through a host on dmacopy0. */
static void check_device_served(const char *what)
{
    struct raw h;
    raw_host(&h, "dmacopy0");
    struct tlpb_tlp rd = {.kind = TLPB_TLP_CFGRD0, .tag = 3, .length_dw = 1, .first_be = 0xF,
                          .completer_id = BDF, .cfg_register = 0, .bar_hint = TLPB_NO_BAR};
    raw_send_tlp(&h, &rd);
    Tlpb__Envelope *env = raw_next_tlp(&h);
    CHECK(env && env->tlp->kind == TLPB__TLP_KIND__TLP_CPLD && env->tlp->tag == 3 &&
              env->tlp->payload.len == 4 && tlpb_get_le32(env->tlp->payload.data) == DMACOPY_ID,
          "%s: dmacopy0's ID register not read", what);
    if (env)
        tlpb_envelope_free(env);
    raw_close(&h);
}

static void case_flood_without_reading(void)
{
    struct raw s;
    raw_simulator_caps(&s, "ext1", TLPB__CAPABILITY__CAP_TIME_SYNC);
    struct it_control_conn cc;
    REQUIRE(it_control_open(&cc), "no control connection");

    struct tlpb_obuf chunk;
    tlpb_obuf_init(&chunk, SIZE_MAX, TLPB_DEFAULT_MAX_FRAME_BYTES);
    for (unsigned i = 0; i < ROUNDS_PER_SEND; i++)
        append_flood_round(&chunk);
    const uint8_t *bytes = tlpb_obuf_head(&chunk);
    size_t chunk_len = tlpb_obuf_pending(&chunk);
    REQUIRE(fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) | O_NONBLOCK) == 0, "O_NONBLOCK: %s",
            strerror(errno));

    /* Send without ever reading. When the socket is full, either the bridge
     * is still busy with what it has, or it stopped reading from us: the
     * status says which. The poll only wakes this loop to ask again. */
    unsigned chunks = FLOOD_ROUNDS / ROUNDS_PER_SEND, sent_chunks = 0;
    size_t off = 0;
    bool paused = false;
    unsigned long long queued = 0;
    uint64_t deadline = it_now_ms() + (uint64_t)IT_DEADLINE_MS;
    while (sent_chunks < chunks) {
        ssize_t n = send(s.fd, bytes + off, chunk_len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            if (off == chunk_len) {
                off = 0;
                sent_chunks++;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        REQUIRE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "flood send: %s",
                strerror(errno));
        REQUIRE(flood_state(&cc, &paused, &queued), "status lacks the flooding simulator");
        if (paused)
            break;
        REQUIRE(it_now_ms() < deadline, "the flood neither went through nor was paused");
        struct pollfd p = {.fd = s.fd, .events = POLLOUT};
        poll(&p, 1, 50);
    }
    tlpb_obuf_free(&chunk);
    printf("  sent %u of %u rounds\n", sent_chunks * ROUNDS_PER_SEND, FLOOD_ROUNDS);

    REQUIRE(flood_state(&cc, &paused, &queued), "status lacks the flooding simulator");
    printf("  simulator[ext1]: reading_paused %d, %llu bytes queued\n", paused, queued);
    CHECK(paused, "the bridge still reads from a simulator that does not read its answers");
    /* Full means at most one batch of answers past the limit. */
    CHECK(queued <= QUEUE_LIMIT_BYTES + 4096u,
          "%llu bytes queued for a simulator that never reads (limit %u)", queued,
          QUEUE_LIMIT_BYTES);
    it_control_close(&cc);
    check_device_served("while a simulator floods");
    raw_close(&s);
    check_device_served("after the flood");
}

/* ---- a simulator that was switched away ----------------------------------- */

static void send_interrupt(struct raw *s, uint32_t vector)
{
    Tlpb__Interrupt irq = TLPB__INTERRUPT__INIT;
    irq.kind = TLPB__INTERRUPT_KIND__IRQ_MSIX;
    irq.vector = vector;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_INTERRUPT;
    env.interrupt = &irq;
    raw_send_env(s, &env);
}

/* Read the host's messages up to the completion for tag; count the
 * Interrupts before it. */
static unsigned interrupts_before_completion(struct raw *h, uint8_t tag)
{
    unsigned irqs = 0;
    for (;;) {
        bool eof;
        Tlpb__Envelope *m = raw_next(h, &eof);
        if (!m) {
            CHECK(false, "host: no completion for tag %u", tag);
            return irqs;
        }
        bool done = m->body_case == TLPB__ENVELOPE__BODY_TLP && m->tlp->tag == tag &&
                    tlpb_tlp_is_completion((enum tlpb_tlp_kind)m->tlp->kind);
        if (m->body_case == TLPB__ENVELOPE__BODY_INTERRUPT)
            irqs++;
        tlpb_envelope_free(m);
        if (done)
            return irqs;
    }
}

static void host_cfg_read(struct raw *h, uint8_t tag)
{
    struct tlpb_tlp rd = {.kind = TLPB_TLP_CFGRD0, .tag = tag, .length_dw = 1, .first_be = 0xF,
                          .completer_id = BDF, .cfg_register = 0, .bar_hint = TLPB_NO_BAR};
    raw_send_tlp(h, &rd);
}

static unsigned long long ext0_counter(const char *name)
{
    bool ok;
    char *status = it_control("status", NULL, &ok);
    const char *dev = ok ? it_json_device(status, "ext0") : NULL;
    unsigned long long v = 0;
    CHECK(dev && it_json_uint(dev, name, &v), "status lacks ext0's %s", name);
    free(status);
    return v;
}

/* Send the simulator a Reset (not a simulator's to send) and read up to
 * its Error: everything sent before it has been routed. Returns whether a
 * UR completion for ur_tag came before the Error. */
static bool sim_fence(struct raw *s, int ur_tag)
{
    Tlpb__Reset reset = TLPB__RESET__INIT;
    reset.kind = TLPB__RESET_KIND__RESET_HOT;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_RESET;
    env.reset = &reset;
    raw_send_env(s, &env);
    bool ur = false;
    for (;;) {
        bool eof;
        Tlpb__Envelope *m = raw_next(s, &eof);
        if (!m) {
            CHECK(false, "simulator: no Error for its Reset");
            return ur;
        }
        bool fence = m->body_case == TLPB__ENVELOPE__BODY_ERROR &&
                     strstr(m->error->reason, "Reset from a simulator");
        if (m->body_case == TLPB__ENVELOPE__BODY_TLP && (int)m->tlp->tag == ur_tag &&
            tlpb_tlp_is_completion((enum tlpb_tlp_kind)m->tlp->kind))
            ur = m->tlp->kind == TLPB__TLP_KIND__TLP_CPL &&
                 m->tlp->status == TLPB__COMPLETION_STATUS__CPL_UR;
        tlpb_envelope_free(m);
        if (fence)
            return ur;
    }
}

static void case_switched_away_simulator(void)
{
    struct raw h, s;
    raw_host(&h, "ext0");
    raw_host_enumerate(&h, BDF, NULL);
    raw_simulator(&s, "ext0");

    /* While it serves the device, its Interrupt reaches the host: once the
     * fence is through, the Interrupt is queued to the host before the
     * completion of a read the host sends then. */
    send_interrupt(&s, 0);
    sim_fence(&s, -1);
    host_cfg_read(&h, 1);
    CHECK_EQ_U64(interrupts_before_completion(&h, 1), 1, "interrupts while the simulator serves");
    unsigned long long drops_before = ext0_counter("inactive_backend_drops");
    unsigned long long irqs_before = ext0_counter("interrupts");

    bool ok;
    const char *args[] = {"ext0", "fallback", NULL};
    char *text = it_control("switch", args, &ok);
    CHECK(ok, "switch ext0 fallback: %s", text ? text : "(no reply)");
    free(text);

    /* Switched away, still attached: an Interrupt and a DMA read. */
    send_interrupt(&s, 1);
    struct tlpb_tlp dma = {.kind = TLPB_TLP_MRD, .requester_id = BDF, .tag = 7, .length_dw = 1,
                           .first_be = 0xF, .address = GUEST_RAM_BASE, .bar_hint = TLPB_NO_BAR};
    raw_send_tlp(&s, &dma);
    CHECK(sim_fence(&s, 7), "the switched-away simulator's DMA read got no UR completion");
    host_cfg_read(&h, 2);
    CHECK_EQ_U64(interrupts_before_completion(&h, 2), 0,
                 "interrupts from the switched-away simulator reaching the host");
    CHECK_EQ_U64(ext0_counter("inactive_backend_drops") - drops_before, 2,
                 "ext0 inactive_backend_drops (the Interrupt and the MRd)");
    CHECK_EQ_U64(ext0_counter("interrupts") - irqs_before, 0, "ext0 interrupts forwarded");
    CHECK(it_log_contains(it.bridge, "device ext0: Interrupt (IRQ_MSIX vector 1) from the"
                                     " simulator, which no longer serves the device"),
          "the dropped Interrupt was not logged");
    CHECK(it_log_contains(it.bridge, "device ext0: MRd tag 7 from the simulator, which no longer"
                                     " serves the device (its backend is fallback): completed"
                                     " with UR"),
          "the UR for the DMA read was not logged");
    raw_close(&s);
    raw_close(&h);
}

/* ---- --trace at start ----------------------------------------------------- */

/* tlpbridged started with --trace path must refuse to start. */
static void expect_trace_refused(const char *path, const char *what)
{
    char spec[1200];
    snprintf(spec, sizeof(spec), "dmacopy0:hlsim=%s", it_paths.model);
    const char *argv[] = {it_paths.bridge, "--listen", it_path("trace-refused.sock"), "--device",
                          spec, "--trace", path, NULL};
    const char *log = it_path("trace-refused.log");
    unlink(log);
    bool ready = false;
    pid_t pid = it_spawn_ready(argv, log, log, IT_DEADLINE_MS, &ready);
    REQUIRE(pid > 0, "spawn: %s", strerror(errno));
    if (ready)
        kill(pid, SIGTERM);
    bool killed = false;
    int status = it_reap(pid, &killed);
    CHECK(!ready, "%s: the bridge started", what);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0, "%s: exit status 0x%x", what, status);
    struct it_child view = {.used = true};
    snprintf(view.log_path, sizeof(view.log_path), "%s", log);
    CHECK(it_log_contains(&view, "exists: traces are only written to new files"),
          "%s: no clear message", what);
}

static void case_start_trace_only_new(void)
{
    const char *existing = it_write_file("existing.trace", "precious contents\n");
    expect_trace_refused(existing, "--trace an existing file");
    CHECK(it_file_holds(existing, "precious contents\n"), "the existing file was changed");
    /* A dangling symlink: the file it names is not created. */
    const char *link = it_path("link.trace");
    const char *target = it_path("target-of-link");
    REQUIRE(symlink(target, link) == 0, "symlink: %s", strerror(errno));
    expect_trace_refused(link, "--trace a symlink");
    struct stat st;
    CHECK(lstat(target, &st) != 0, "the symlink's target was created");
    unlink(link);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_peer_limits");
    REQUIRE(it_paths.model != NULL, "--model is required");
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "devices = (\n"
             "  { name = \"dmacopy0\"; backend = \"hlsim\"; model = \"%s\"; },\n"
             "  { name = \"ext0\"; backend = \"external\"; model = \"%s\"; },\n"
             "  { name = \"ext1\"; backend = \"external\"; model = \"%s\"; }\n"
             ");\n",
             it_paths.model, it_paths.model, it_paths.model);
    const char *args[] = {"--config", it_write_file("limits.cfg", cfg), NULL};
    it_start_bridge(args);

    IT_RUN("--trace at start only creates new files", case_start_trace_only_new());
    IT_RUN("a switched-away simulator no longer reaches the guest", case_switched_away_simulator());
    IT_RUN("a simulator that never reads stalls itself, not the bridge", case_flood_without_reading());
    return it_finish();
}
