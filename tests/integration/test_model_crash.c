/* An in-process model crashes: the bridge dies (the model ran inside it),
 * but not silently. A model that faults in its MMIO read callback is loaded,
 * a host reads its BAR, and the bridge's last words name the model file,
 * the device and the callback, and it dies of the fault's signal. The
 * isolation is the external mode (test_sim_crash).
 *
 * A reload with the model's deferred work pending: the SDK has queued the
 * callback of a DMA read whose completion just arrived when a reload
 * unloads the model in the same loop iteration. The queued work belongs
 * to the destroyed instance and must be dropped, never run (running it
 * touched freed memory: ASan reported it and the bridge died). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "dmacopy_suite.h"
#include "harness.h"

#define CRASH_BAR0_ADDR 0xE0000000u

static const char *crash_model_path;

/* A bridge with the crash model as device crash0 in-process, a host for it,
 * BAR0 programmed and the command register set (config space is the
 * SDK's: this much works before the model is asked anything). */
static struct it_child *start_crash_device(struct dmacopy_fixture *fx, uint16_t command)
{
    char device[1200];
    snprintf(device, sizeof(device), "crash0:hlsim=%s", crash_model_path);
    const char *args[] = {"--device", device, NULL};
    struct it_child *bridge = it_start_bridge(args);
    fx_open(fx, "crash0", false);
    fx_config_write(fx, 0x10, CRASH_BAR0_ADDR, 0xF);
    fx_config_write(fx, 0x04, command, 0x3);
    return bridge;
}

static void mmio_read_crash(void)
{
    struct dmacopy_fixture fx;
    struct it_child *bridge = start_crash_device(&fx, 0x0002); /* memory space */

    bridge->expect_exit = true; /* it is about to die */
    uint32_t value = 0;
    int rc = tlpb_host_mem_read(fx.host, 0, CRASH_BAR0_ADDR, &value, 4);
    printf("the read returned %d (value %#x)\n", rc, value);

    int status = it_wait_exit(bridge);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
          "the bridge should die of SIGSEGV, status %#x", status);
    char expected[1400];
    snprintf(expected, sizeof(expected), "model %s (device crash0) crashed in mmio_read: SIGSEGV",
             crash_model_path);
    CHECK(it_log_contains(bridge, expected), "the bridge's log lacks \"%s\"", expected);
    fx_close(&fx);
}

/* The host has just answered the model's DMA read: freeze the bridge
 * before it reads the completion. */
static struct it_child *frozen_bridge;

static void freeze_bridge(struct dmacopy_fixture *fx)
{
    it_signal(frozen_bridge, SIGSTOP);
    fx->dma_read_hook = NULL;
}

static void reload_with_deferred_work(void)
{
    struct dmacopy_fixture fx;
    struct it_child *bridge = start_crash_device(&fx, 0x0006); /* memory space, bus master */
    struct it_control_conn control;
    REQUIRE(it_control_open(&control), "no control connection");

    /* The write starts the model's DMA read; the host serves it (its
     * completion goes into the bridge's socket) and the bridge is stopped
     * before it can read it. */
    frozen_bridge = bridge;
    fx.dma_read_hook = freeze_bridge;
    uint32_t source = (uint32_t)GUEST_RAM_BASE;
    CHECK(tlpb_host_mem_write(fx.host, 0, CRASH_BAR0_ADDR, &source, 4) == 0, "register write");
    CHECK(tlpb_host_flush(fx.host) == 0, "flush");
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (fx.dma_read_requests == 0 && it_now_ms() < deadline)
        tlpb_host_wait(fx.host, 10);
    REQUIRE(fx.dma_read_requests == 1, "the model's DMA read never reached the host");

    /* The reload lands behind the completion: the bridge handles both in
     * one loop iteration, the completion first. */
    const char *reload_args[] = {"crash0", NULL};
    REQUIRE(it_control_send(&control, "reload", reload_args), "reload not sent");
    it_signal(bridge, SIGCONT);
    bool ok = false;
    char *text = it_control_reply(&control, "reload", &ok);
    CHECK(ok, "reload: %s", text ? text : "(no reply)");
    free(text);
    it_control_close(&control);

    it_check_children(); /* the bridge lives */
    CHECK_EQ_U64(fx_config_read(&fx, 0x00), 0x0bad1234u, "vendor and device ID after the reload");
    fx_close(&fx);
    it_signal(bridge, SIGTERM);
    int status = it_wait_exit(bridge);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "bridge exit status %#x", status);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "model_crash");
    crash_model_path = getenv("TLPB_IT_CRASH_MODEL");
    REQUIRE(crash_model_path != NULL, "TLPB_IT_CRASH_MODEL (the crash model's path) is not set");
    IT_RUN("model reload with deferred work pending", reload_with_deferred_work());
    IT_RUN("model crash: named in the bridge's log", mmio_read_crash());
    return it_finish();
}
