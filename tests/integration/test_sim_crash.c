/* A simulator dies with work outstanding. dmacopy0 and slow0 are served by
 * hlsim-run (external); dev1 by the in-process model. The simulator is stopped, a
 * 1 MiB copy is started and a register read is made outstanding (the bridge
 * shows it in its status), then the simulator is killed with SIGKILL:
 * - the read completes with the fallback's value (SC, all-ones);
 * - the bridge keeps serving (status, a host on dev1, fallback answers for
 *   dmacopy0);
 * - a restarted hlsim-run attaches, the host sees it, and the whole dmacopy
 *   suite passes again: same bridge, same host handle. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

static struct dmacopy_fixture fx;

struct outstanding_read {
    int rc;
    uint32_t value;
};

/* The blocked read runs on its own thread while the main thread looks at
 * the bridge; the host handle is used by this thread alone meanwhile. */
static void *read_status(void *arg)
{
    struct outstanding_read *r = arg;
    r->value = 0x5A5A5A5Au;
    r->rc = tlpb_host_mem_read(fx.host, 0, DMACOPY_BAR0_ADDR + REG_STATUS, &r->value, 4);
    return NULL;
}

static unsigned long long outstanding_at_bridge(char *backend, size_t backend_size)
{
    bool ok = false;
    unsigned long long n = 0;
    char *status = it_control("status", NULL, &ok);
    const char *dev = it_json_device(status, "dmacopy0");
    CHECK(ok && dev, "status: %s", status ? status : "(none)");
    CHECK(it_json_uint(dev, "outstanding", &n), "status lacks outstanding");
    if (backend)
        it_json_str(dev, "backend", backend, backend_size);
    free(status);
    return n;
}

/* SIGKILL from inside the host's DMA service, 200 read requests into a
 * 1 MiB copy: the simulator dies with DMA reads in flight. */
static struct it_child *doomed;
static uint64_t kill_at_read;

static void kill_mid_dma(struct dmacopy_fixture *f)
{
    if (f->dma_read_requests == kill_at_read) {
        it_signal(doomed, SIGKILL);
        f->dma_read_hook = NULL;
    }
}

static bool copy_done_or_sim_gone(struct dmacopy_fixture *f, unsigned index)
{
    return fx_desc_status(f, index) != 0 || !tlpb_host_simulator_attached(f->host);
}

static struct it_child *crash_mid_dma(struct it_child *sim)
{
    fx_reset_engine(&fx, 64);
    doomed = sim;
    kill_at_read = fx.dma_read_requests + 200;
    fx.dma_read_hook = kill_mid_dma;
    unsigned index = fx_post(&fx, GUEST_RAM_BASE + SRC_OFF, GUEST_RAM_BASE + DST_OFF,
                             1024u * 1024u, DESC_FLAG_IRQ);
    fx_doorbell(&fx);
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (!copy_done_or_sim_gone(&fx, index) && it_now_ms() < deadline)
        tlpb_host_wait(fx.host, 100);
    fx.dma_read_hook = NULL;
    int status = it_wait_exit(sim);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "simulator status 0x%x", status);
    CHECK(!tlpb_host_simulator_attached(fx.host), "the host still sees a simulator");
    CHECK_EQ_U64(fx_desc_status(&fx, index), 0, "descriptor of the copy the simulator died in");
    CHECK(it_log_contains(it.bridge, "device dmacopy0: backend fallback (simulator detached"),
          "the bridge did not log the detach");
    /* The bridge still answers, from the fallback; a new simulator attaches. */
    uint32_t v = 0;
    int rc = tlpb_host_mem_read(fx.host, 0, DMACOPY_BAR0_ADDR + REG_ID, &v, 4);
    CHECK(rc == 0 && v == 0xFFFFFFFFu, "read after the crash: rc %d 0x%x", rc, v);
    struct it_child *next = it_start_sim("dmacopy0", false);
    REQUIRE(fx_wait_attached(&fx, true), "the restarted simulator was never seen by the host");
    fx_enumerate(&fx);
    fx_init_device(&fx);
    fx_copy(&fx, SRC_OFF, DST_OFF, 1024u * 1024u, "1 MiB copy on the restarted simulator");
    return next;
}

static void crash_with_work_outstanding(struct it_child *sim)
{
    it_signal(sim, SIGSTOP);
    /* A 1 MiB copy the simulator will never finish. */
    fx_post(&fx, GUEST_RAM_BASE + 0x100000, GUEST_RAM_BASE + 0x400000, 1024u * 1024u, DESC_FLAG_IRQ);
    fx_doorbell(&fx);
    struct tlpb_host_stats before;
    tlpb_host_get_stats(fx.host, &before);

    struct outstanding_read r;
    pthread_t thread;
    REQUIRE(pthread_create(&thread, NULL, read_status, &r) == 0, "pthread_create");
    /* The bridge has forwarded the read to the stopped simulator. */
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    unsigned long long outstanding = 0;
    unsigned polls = 0;
    char backend[32];
    while ((outstanding = outstanding_at_bridge(backend, sizeof(backend))) == 0 &&
           it_now_ms() < deadline)
        polls++;
    CHECK(outstanding == 1, "the bridge shows %llu outstanding requests, expected 1", outstanding);
    CHECK(strcmp(backend, "external") == 0, "backend '%s' while the simulator is stopped", backend);
    printf("  read outstanding at the bridge after %u status polls\n", polls);

    it_signal(sim, SIGKILL);
    int status = it_wait_exit(sim);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "simulator status 0x%x", status);
    pthread_join(thread, NULL);
    CHECK(r.rc == 0, "the outstanding read returned %d, expected a completion (0)", r.rc);
    CHECK_EQ_U64(r.value, 0xFFFFFFFFu, "outstanding read completed by the fallback");
    struct tlpb_host_stats after;
    tlpb_host_get_stats(fx.host, &after);
    CHECK(after.fallback_reads == before.fallback_reads,
          "the host answered the read itself instead of the bridge");
    CHECK(it_log_contains(it.bridge, "outstanding when simulator detached"),
          "the bridge did not log the request it completed for the dead simulator");
    CHECK(it_log_contains(it.bridge, "completed by the fallback"), "no fallback completion logged");
    bool ok;
    char *st = it_control("status", NULL, &ok);
    const char *dev = it_json_device(st, "dmacopy0");
    unsigned long long timeouts = 99;
    CHECK(dev && it_json_uint(dev, "timeouts", &timeouts) && timeouts == 0,
          "dmacopy0 timeouts %llu: the read was completed by a timeout, not by the detach", timeouts);
    free(st);
}

static void bridge_keeps_serving(void)
{
    fx_wait_attached(&fx, false);
    CHECK(!fx.link_sim_attached, "link_changed did not report the detach");
    char backend[32];
    CHECK(outstanding_at_bridge(backend, sizeof(backend)) == 0, "requests still outstanding");
    CHECK(strcmp(backend, "fallback") == 0, "backend '%s' after the crash", backend);

    /* The fallback answers for dmacopy0. */
    uint32_t v = 0;
    int rc = tlpb_host_mem_read(fx.host, 0, DMACOPY_BAR0_ADDR + REG_ID, &v, 4);
    CHECK(rc == 0 && v == 0xFFFFFFFFu, "dmacopy0 read after the crash: rc %d value 0x%x", rc, v);
    CHECK_EQ_U64(fx_config_read(&fx, 0) & 0xFFFF, 0x1234, "dmacopy0 vendor ID from the fallback");
    CHECK_EQ_U64(fx_config_read(&fx, 0x10), DMACOPY_BAR0_ADDR, "BAR0 kept by the fallback");

    /* Another device, another host connection. */
    struct dmacopy_fixture other;
    fx_open(&other, "dev1", false);
    fx_enumerate(&other);
    fx_init_device(&other);
    fx_wr32(&other, REG_SCRATCH, 0x600DF00Du);
    CHECK_EQ_U64(fx_rd32(&other, REG_SCRATCH), 0x600DF00Du, "dev1 SCRATCH after the crash");
    fx_close(&other);
}

static void simulator_back(void)
{
    unsigned events = fx.link_events;
    it_start_sim("dmacopy0", false);
    REQUIRE(fx_wait_attached(&fx, true), "the restarted simulator was never seen by the host");
    CHECK(fx.link_events > events && fx.link_sim_attached,
          "link_changed did not report the new simulator");
    struct tlpb_host_stats st;
    tlpb_host_get_stats(fx.host, &st);
    CHECK(st.reconnects == 0, "the host reconnected %llu times; the bridge never went away",
          (unsigned long long)st.reconnects);
}

/* A simulator that stops answering: the bridge's completion timeout for
 * the device (250 ms for slow0) completes the read from the fallback; the
 * late answer, once the simulator runs again, is recognised and dropped,
 * never taken for the answer to a newer request. */
static void simulator_times_out(void)
{
    struct it_child *sim = it_start_sim("slow0", false);
    struct dmacopy_fixture slow;
    fx_open(&slow, "slow0", false);
    REQUIRE(fx_wait_attached(&slow, true), "hlsim-run for slow0 never attached");
    fx_enumerate(&slow);
    fx_init_device(&slow);
    fx_wr32(&slow, REG_SCRATCH, 0x0BADCAFEu);
    CHECK_EQ_U64(fx_rd32(&slow, REG_SCRATCH), 0x0BADCAFEu, "slow0 SCRATCH");

    it_signal(sim, SIGSTOP);
    uint32_t v = 0;
    int rc = tlpb_host_mem_read(slow.host, 0, DMACOPY_BAR0_ADDR + REG_SCRATCH, &v, 4);
    CHECK(rc == 0 && v == 0xFFFFFFFFu, "read from a stopped simulator: rc %d value 0x%08x", rc, v);
    CHECK(it_log_contains(it.bridge, "got no completion from external within 250 ms"),
          "the bridge did not log the timeout");
    it_signal(sim, SIGCONT);
    /* The simulator answers the old read first, then this one. */
    CHECK_EQ_U64(fx_rd32(&slow, REG_ID), 0x7A110001u, "ID read after the simulator resumed");
    bool ok;
    char *status = it_control("status", NULL, &ok);
    const char *dev = it_json_device(status, "slow0");
    unsigned long long n = 99;
    CHECK(dev && it_json_uint(dev, "timeouts", &n) && n == 1, "slow0 timeouts %llu, expected 1", n);
    CHECK(dev && it_json_uint(dev, "late_completions", &n) && n == 1,
          "slow0 late_completions %llu, expected 1", n);
    CHECK(dev && it_json_uint(dev, "outstanding", &n) && n == 0, "slow0 outstanding %llu", n);
    free(status);
    fx_copy(&slow, SRC_OFF, DST_OFF, 3000, "slow0 copy after the timeout");
    fx_close(&slow);
}

static bool backend_is(const char *device, const char *want)
{
    bool ok = false;
    char backend[32] = "";
    char *status = it_control("status", NULL, &ok);
    it_json_str(it_json_device(status, device), "backend", backend, sizeof(backend));
    free(status);
    return strcmp(backend, want) == 0;
}

static unsigned long long posted_writes_at_bridge(const char *device)
{
    bool ok = false;
    unsigned long long n = 0;
    char *status = it_control("status", NULL, &ok);
    CHECK(it_json_uint(it_json_device(status, device), "host_posted_writes", &n),
          "status lacks host_posted_writes");
    free(status);
    return n;
}

/* A host that writes as fast as it can to a device whose simulator is
 * stopped: the bridge stops reading from the host (its queue to the
 * simulator is bounded), so the host's socket fills up; when the
 * simulator runs again every write is delivered, in order. */
static void backpressure_no_write_lost(void)
{
    struct it_child *sim = it_start_sim("bp0", false);
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (!backend_is("bp0", "external") && it_now_ms() < deadline)
        it_check_children();
    REQUIRE(backend_is("bp0", "external"), "hlsim-run for bp0 never attached");

    char err[256];
    int fd = tlpb_connect(it.socket_path, err, sizeof(err));
    REQUIRE(fd >= 0, "connect: %s", err);
    struct tlpb_frame_reader rd;
    tlpb_reader_init(&rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_HOST, "bp0", NULL);
    Tlpb__Envelope *reply = tlpb_handshake(fd, &rd, &hello, IT_DEADLINE_MS, err, sizeof(err));
    REQUIRE(reply != NULL, "handshake: %s", err);
    tlpb_envelope_free(reply);

    /* Memory space on, BAR0 where the writes go (config writes complete). */
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, TLPB_HARD_MAX_FRAME_BYTES, TLPB_DEFAULT_MAX_FRAME_BYTES);
    uint8_t bar0[4];
    tlpb_put_le32(bar0, DMACOPY_BAR0_ADDR);
    uint8_t cmd[4] = {0x02, 0, 0, 0};
    struct tlpb_tlp cfg = {.kind = TLPB_TLP_CFGWR0, .tag = 1, .length_dw = 1, .first_be = 0xF,
                           .completer_id = 0x100, .cfg_register = 0x10, .bar_hint = TLPB_NO_BAR,
                           .payload_bytes = 4, .payload = bar0};
    tlpb_obuf_append_tlp(&ob, &cfg, true);
    cfg.tag = 2;
    cfg.cfg_register = 0x04;
    cfg.first_be = 0x3;
    cfg.payload = cmd;
    tlpb_obuf_append_tlp(&ob, &cfg, true);
    REQUIRE(tlpb_obuf_write_all(&ob, fd) == 0, "sending config writes");
    for (int done = 0; done < 2;) {
        const uint8_t *frame;
        size_t len;
        const char *reason = "";
        REQUIRE(tlpb_reader_read_frame(&rd, fd, IT_DEADLINE_MS, &frame, &len, &reason) == 1,
                "config write completions: %s", reason);
        Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);
        if (env && env->body_case == TLPB__ENVELOPE__BODY_TLP)
            done++;
        tlpb_envelope_free(env);
    }

    it_signal(sim, SIGSTOP);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uint64_t sent = 0, bytes = 0;
    const uint64_t give_up_bytes = 256u * 1024u * 1024u;
    uint32_t value = 0;
    bool blocked = false;
    while (!blocked && bytes < give_up_bytes) {
        /* a batch of writes of increasing values to SCRATCH */
        for (int i = 0; i < 256; i++) {
            uint32_t v = ++value;
            uint8_t data[4];
            tlpb_put_le32(data, v);
            struct tlpb_tlp wr = {.kind = TLPB_TLP_MWR, .length_dw = 1, .first_be = 0xF,
                                  .address = DMACOPY_BAR0_ADDR + REG_SCRATCH, .bar_hint = 0,
                                  .payload_bytes = 4, .payload = data};
            tlpb_obuf_append_tlp(&ob, &wr, true);
        }
        sent += 256;
        while (tlpb_obuf_pending(&ob)) {
            ssize_t n = write(fd, tlpb_obuf_head(&ob), tlpb_obuf_pending(&ob));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN) {
                blocked = true;
                break;
            }
            REQUIRE(n > 0, "write to the bridge: %s", strerror(errno));
            bytes += (uint64_t)n;
            tlpb_obuf_consume(&ob, (size_t)n);
        }
    }
    printf("  the host's socket filled after %.1f MiB (%llu posted writes)\n",
           (double)bytes / (1024.0 * 1024.0), (unsigned long long)sent);
    CHECK(blocked, "%.0f MiB written without the bridge pushing back",
          (double)bytes / (1024.0 * 1024.0));
    unsigned long long taken = posted_writes_at_bridge("bp0");
    CHECK(taken < sent, "the bridge took all %llu writes while the simulator was stopped", taken);

    /* Let it go: the rest of the writes, then a read behind them. */
    it_signal(sim, SIGCONT);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct tlpb_tlp rd_req = {.kind = TLPB_TLP_MRD, .tag = 3, .length_dw = 1, .first_be = 0xF,
                              .address = DMACOPY_BAR0_ADDR + REG_SCRATCH, .bar_hint = 0};
    tlpb_obuf_append_tlp(&ob, &rd_req, true);
    REQUIRE(tlpb_obuf_write_all(&ob, fd) == 0, "sending the rest");
    tlpb_obuf_free(&ob);
    uint32_t got = 0;
    bool answered = false;
    while (!answered) {
        const uint8_t *frame;
        size_t len;
        const char *reason = "";
        int rc = tlpb_reader_read_frame(&rd, fd, IT_DEADLINE_MS, &frame, &len, &reason);
        if (rc != 1) {
            CHECK(false, "no completion for the read behind the writes: %s", reason);
            break;
        }
        Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);
        if (env && env->body_case == TLPB__ENVELOPE__BODY_TLP && env->tlp->tag == 3) {
            answered = true;
            CHECK(env->tlp->kind == TLPB__TLP_KIND__TLP_CPLD && env->tlp->payload.len == 4,
                  "read behind the writes: kind %d", (int)env->tlp->kind);
            if (env->tlp->payload.len == 4)
                got = tlpb_get_le32(env->tlp->payload.data);
        }
        tlpb_envelope_free(env);
    }
    CHECK_EQ_U64(got, value, "SCRATCH after the flood (the last write)");
    CHECK_EQ_U64(posted_writes_at_bridge("bp0"), sent, "posted writes the bridge forwarded");
    tlpb_reader_free(&rd);
    close(fd);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_sim_crash");
    REQUIRE(it_paths.model && it_paths.sim, "--model and --hlsim-run are required");
    /* A long completion timeout: only the simulator's death may complete
     * the outstanding read. */
    it_write_file("crash.cfg",
                  "devices = ({\n"
                  "  name = \"dmacopy0\";\n"
                  "  backend = \"external\";\n"
                  "  timeout_ms = 600000;\n"
                  "  description = {\n"
                  "    vendor_id = 0x1234; device_id = 0x7a11; revision = 1; class_code = 0x088000;\n"
                  "    bars = ({ index = 0; size = 4096; }, { index = 2; size = 4096; });\n"
                  "    msix = { vectors = 2; table_bar = 2; table_offset = 0; pba_bar = 2; pba_offset = 0x800; };\n"
                  "    intx_pin = 1;\n"
                  "    max_payload_supported = 512;\n"
                  "  };\n"
                  "}, {\n"
                  "  name = \"bp0\";\n"
                  "  backend = \"external\";\n"
                  "  timeout_ms = 600000;\n"
                  "  description = {\n"
                  "    vendor_id = 0x1234; device_id = 0x7a11; revision = 1; class_code = 0x088000;\n"
                  "    bars = ({ index = 0; size = 4096; }, { index = 2; size = 4096; });\n"
                  "    msix = { vectors = 2; table_bar = 2; table_offset = 0; pba_bar = 2; pba_offset = 0x800; };\n"
                  "    intx_pin = 1;\n"
                  "  };\n"
                  "}, {\n"
                  "  name = \"slow0\";\n"
                  "  backend = \"external\";\n"
                  "  timeout_ms = 250;\n"
                  "  description = {\n"
                  "    vendor_id = 0x1234; device_id = 0x7a11; revision = 1; class_code = 0x088000;\n"
                  "    bars = ({ index = 0; size = 4096; }, { index = 2; size = 4096; });\n"
                  "    msix = { vectors = 2; table_bar = 2; table_offset = 0; pba_bar = 2; pba_offset = 0x800; };\n"
                  "    intx_pin = 1;\n"
                  "  };\n"
                  "});\n");
    char dev1[1200];
    snprintf(dev1, sizeof(dev1), "dev1:hlsim=%s", it_paths.model);
    const char *args[] = {"--config", it_path("crash.cfg"), "--device", dev1, NULL};
    it_start_bridge(args);
    struct it_child *sim = it_start_sim("dmacopy0", false);

    fx_open(&fx, "dmacopy0", false);
    REQUIRE(fx_wait_attached(&fx, true), "hlsim-run never attached");
    printf("==== the suite, first simulator\n");
    dmacopy_suite_run(&fx);
    IT_RUN("a simulator that stops answering: timeout", simulator_times_out());
    IT_RUN("a stopped simulator: backpressure, no posted write lost", backpressure_no_write_lost());
    IT_RUN("SIGKILL in the middle of a 1 MiB copy's DMA", sim = crash_mid_dma(sim));
    IT_RUN("SIGKILL with a read and a 1 MiB copy outstanding", crash_with_work_outstanding(sim));
    IT_RUN("the bridge keeps serving", bridge_keeps_serving());
    IT_RUN("a restarted simulator attaches", simulator_back());
    printf("==== the suite, restarted simulator, same bridge and host\n");
    dmacopy_suite_run(&fx);

    fx_close(&fx);
    return it_finish();
}
