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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "dmacopy_suite.h"
#include "harness.h"

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
    IT_RUN("SIGKILL in the middle of a 1 MiB copy's DMA", sim = crash_mid_dma(sim));
    IT_RUN("SIGKILL with a read and a 1 MiB copy outstanding", crash_with_work_outstanding(sim));
    IT_RUN("the bridge keeps serving", bridge_keeps_serving());
    IT_RUN("a restarted simulator attaches", simulator_back());
    printf("==== the suite, restarted simulator, same bridge and host\n");
    dmacopy_suite_run(&fx);

    fx_close(&fx);
    return it_finish();
}
