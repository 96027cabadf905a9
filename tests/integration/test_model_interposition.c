/* A model may name its functions as it likes: tlpbridged loads a model
 * (interpose_model.c) whose own register path goes through functions named
 * like the daemon's internals (device_init, conn_flush, trace_open,
 * dma_pump) and which defines more of them to abort; the bridge serves it,
 * and MMIO reads and writes give the model's answers. When the daemon
 * exported its internals, the model's calls bound to the daemon's
 * functions: the bridge crashed or the registers read back wrong.
 * The interposing model's path comes in TLPB_IT_INTERPOSE_MODEL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmacopy_suite.h"
#include "harness.h"

#define INTERPOSER_ID 0x1a7e9051u
#define INTERPOSER_WRITES 0x100u

static void mmio_through_interposing_model(struct dmacopy_fixture *fx)
{
    fx_enumerate(fx);
    fx_config_write(fx, 0x10, DMACOPY_BAR0_ADDR, 0xF);
    fx_config_write(fx, 0x04, 0x0006, 0x3);
    CHECK_EQ_U64(fx_rd32(fx, 0x000), INTERPOSER_ID, "the model's ID register");
    static const uint32_t values[] = {0x01234567u, 0x89abcdefu, 0xfeedf00du, 0};
    for (unsigned i = 0; i < 4; i++)
        fx_wr32(fx, 0x004 + 4 * i, values[i]);
    for (unsigned i = 0; i < 4; i++) {
        char what[64];
        snprintf(what, sizeof(what), "scratch register 0x%03x", 0x004 + 4 * i);
        CHECK_EQ_U64(fx_rd32(fx, 0x004 + 4 * i), values[i], what);
    }
    CHECK_EQ_U64(fx_rd32(fx, INTERPOSER_WRITES), 4, "register writes the model counted");

    bool ok = false;
    char *status = it_control("status", NULL, &ok);
    CHECK(ok && status && strstr(status, "interpose"), "status: %s", status ? status : "(none)");
    free(status);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_model_interposition");
    const char *model = getenv("TLPB_IT_INTERPOSE_MODEL");
    REQUIRE(model && *model, "TLPB_IT_INTERPOSE_MODEL (the interposing model) is not set");

    char device_arg[1200];
    snprintf(device_arg, sizeof(device_arg), "dmacopy0:hlsim=%s", model);
    const char *args[] = {"--device", device_arg, NULL};
    it_start_bridge(args);

    struct dmacopy_fixture fx;
    fx_open(&fx, "dmacopy0", false);
    IT_RUN("a model with the daemon's internal names serves MMIO",
           mmio_through_interposing_model(&fx));
    fx_close(&fx);
    return it_finish();
}
