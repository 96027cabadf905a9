/* An in-process model crashes: the bridge dies (the model ran inside it),
 * but not silently. A model that faults in its MMIO read callback is loaded,
 * a host reads its BAR, and the bridge's last words name the model file,
 * the device and the callback, and it dies of the fault's signal. The
 * isolation is the external mode (test_sim_crash). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "dmacopy_suite.h"
#include "harness.h"

#define CRASH_BAR0_ADDR 0xE0000000u

static const char *crash_model_path;

static void mmio_read_crash(void)
{
    char device[1200];
    snprintf(device, sizeof(device), "crash0:hlsim=%s", crash_model_path);
    const char *args[] = {"--device", device, NULL};
    struct it_child *bridge = it_start_bridge(args);

    struct dmacopy_fixture fx;
    fx_open(&fx, "crash0", false);
    /* Config space is the SDK's: this much works before the model is asked. */
    fx_config_write(&fx, 0x10, CRASH_BAR0_ADDR, 0xF);
    fx_config_write(&fx, 0x04, 0x0002, 0x3); /* memory space */

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

int main(int argc, char **argv)
{
    it_init(argc, argv, "model_crash");
    crash_model_path = getenv("TLPB_IT_CRASH_MODEL");
    REQUIRE(crash_model_path != NULL, "TLPB_IT_CRASH_MODEL (the crash model's path) is not set");
    IT_RUN("model crash: named in the bridge's log", mmio_read_crash());
    return it_finish();
}
