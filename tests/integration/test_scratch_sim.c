/* The example simulator on libtlpbsim (examples/scratch-sim), attached to
 * a real bridge as the external backend of a device whose description is
 * in the bridge's configuration, driven by a host: config space, BAR
 * sizing, register writes and reads through the bridge, INTx both ways, and
 * a clean exit on SIGTERM. What docs/simulator-api.md promises a
 * third-party simulator, end to end. */
#include <stdio.h>
#include <stdlib.h>

#include "dmacopy_suite.h"
#include "harness.h"

static const char *scratch_sim_path;

static bool wait_intx(struct dmacopy_fixture *fx, bool level)
{
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (fx->intx_level != level) {
        if (it_now_ms() >= deadline)
            return false;
        tlpb_host_wait(fx->host, 10);
        it_check_children();
    }
    return true;
}

static void scratch_device(void)
{
    const char *cfg = it_write_file("scratch.cfg",
                                    "devices = ({\n"
                                    "  name = \"scratch0\";\n"
                                    "  backend = \"external\";\n"
                                    "  description = {\n"
                                    "    vendor_id = 0x1234; device_id = 0x5c7a;\n"
                                    "    class_code = 0xff0000;\n"
                                    "    bars = ( { index = 0; size = 4096; } );\n"
                                    "    intx_pin = 1;\n"
                                    "    max_payload_supported = 128;\n"
                                    "  };\n"
                                    "});\n");
    const char *bridge_args[] = {"--config", cfg, NULL};
    it_start_bridge(bridge_args);
    const char *sim_args[] = {scratch_sim_path, "--socket", it.socket_path, "--device",
                              "scratch0", NULL};
    it_start_child("scratch-sim", sim_args);

    struct dmacopy_fixture fx;
    fx_open(&fx, "scratch0", false);
    REQUIRE(fx_wait_attached(&fx, true), "scratch-sim never attached");

    CHECK_EQ_U64(fx_config_read(&fx, 0x00), 0x5c7a1234u, "vendor and device ID");
    CHECK_EQ_U64(fx_config_read(&fx, 0x08) >> 8, 0xff0000u, "class code");
    fx_config_write(&fx, 0x10, 0xFFFFFFFFu, 0xF);
    CHECK_EQ_U64(fx_config_read(&fx, 0x10), 0xFFFFF000u, "BAR0 size mask (4 KiB, 32-bit)");
    fx_config_write(&fx, 0x10, DMACOPY_BAR0_ADDR, 0xF);
    fx_config_write(&fx, 0x04, 0x0002, 0x3); /* memory space */

    fx_wr32(&fx, 0x10, 0xC0FFEE01u);
    fx_wr32(&fx, 0x14, 0x12345678u);
    CHECK_EQ_U64(fx_rd32(&fx, 0x10), 0xC0FFEE01u, "scratch register 0x10");
    uint64_t both = 0;
    CHECK(tlpb_host_mem_read(fx.host, 0, DMACOPY_BAR0_ADDR + 0x10, &both, 8) == 0, "8-byte read");
    CHECK_EQ_U64(both, 0x12345678C0FFEE01ull, "registers 0x10 and 0x14 in one read");
    uint16_t half = 0;
    CHECK(tlpb_host_mem_read(fx.host, 0, DMACOPY_BAR0_ADDR + 0x12, &half, 2) == 0, "2-byte read");
    CHECK_EQ_U64(half, 0xC0FFu, "upper half of register 0x10");

    fx_wr32(&fx, 0x3FC, 1);
    CHECK(wait_intx(&fx, true), "INTx was not asserted");
    fx_wr32(&fx, 0x3FC, 0);
    CHECK(wait_intx(&fx, false), "INTx was not deasserted");
    fx_close(&fx);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "scratch_sim");
    scratch_sim_path = getenv("TLPB_IT_SCRATCH_SIM");
    REQUIRE(scratch_sim_path != NULL, "TLPB_IT_SCRATCH_SIM (the example's path) is not set");
    IT_RUN("scratch-sim: a simulator on libtlpbsim behind the bridge", scratch_device());
    return it_finish();
}
