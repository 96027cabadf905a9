/* Fallback behaviour with no simulator:
 * - no bridge at all: the host library answers locally (all-ones, writes
 *   dropped and counted) and connects once the bridge is up;
 * - the bridge with the shipped dmacopy-fallback.cfg: enumeration from the
 *   configured description, BAR reads all-ones (SC), writes absorbed;
 *   a model-described device with fallback_read zeros;
 * - the bridge goes away and comes back with fallback_read "ur": the host
 *   answers locally meanwhile, reconnects, and reads complete with UR. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmacopy_suite.h"
#include "harness.h"

static uint32_t read_bar0(struct dmacopy_fixture *fx, uint32_t reg, int *rc)
{
    uint32_t v = 0x12345678u;
    *rc = tlpb_host_mem_read(fx->host, 0, DMACOPY_BAR0_ADDR + reg, &v, 4);
    return v;
}

static void no_bridge(struct dmacopy_fixture *fx)
{
    CHECK(!tlpb_host_connected(fx->host), "connected although no bridge runs");
    CHECK(tlpb_host_description(fx->host) == NULL, "a description without ever connecting");
    uint32_t v = 0;
    int rc = tlpb_host_config_read(fx->host, 0, &v);
    CHECK(rc == -ENOTCONN, "config read without a bridge returned %d", rc);
    CHECK_EQ_U64(v, 0xFFFFFFFFu, "config read without a bridge");
    v = read_bar0(fx, REG_ID, &rc);
    CHECK(rc == -ENOTCONN, "memory read without a bridge returned %d", rc);
    CHECK_EQ_U64(v, 0xFFFFFFFFu, "memory read without a bridge");
    uint8_t one = 0x5A;
    rc = tlpb_host_mem_write(fx->host, 0, DMACOPY_BAR0_ADDR + REG_SCRATCH, &one, 1);
    CHECK(rc == -ENOTCONN, "write without a bridge returned %d", rc);
    struct tlpb_host_stats st;
    tlpb_host_get_stats(fx->host, &st);
    CHECK(st.fallback_reads == 2, "fallback_reads %llu, expected 2", (unsigned long long)st.fallback_reads);
    CHECK(st.dropped_writes == 1, "dropped_writes %llu, expected 1", (unsigned long long)st.dropped_writes);
}

static void fallback_ones(struct dmacopy_fixture *fx)
{
    CHECK(!tlpb_host_simulator_attached(fx->host), "a simulator is attached");
    const struct tlpb_devdesc *d = tlpb_host_description(fx->host);
    REQUIRE(d != NULL, "no description from the bridge");
    CHECK_EQ_U64(d->vendor_id, 0x1234, "description vendor");
    CHECK_EQ_U64(d->msix_vectors, 2, "description MSI-X vectors");
    fx_enumerate(fx);

    /* Config writes land in the fallback's config space. */
    fx_config_write(fx, 0x10, DMACOPY_BAR0_ADDR, 0xF);
    fx_config_write(fx, 0x04, 0x0006, 0x3);
    CHECK_EQ_U64(fx_config_read(fx, 0x10), DMACOPY_BAR0_ADDR, "BAR0 read-back from the fallback");
    CHECK_EQ_U64(fx_config_read(fx, 0x04) & 0xFFFF, 0x0006, "command read-back from the fallback");

    int rc;
    uint32_t v = read_bar0(fx, REG_ID, &rc);
    CHECK(rc == 0, "fallback memory read returned %d (expected SC from the bridge)", rc);
    CHECK_EQ_U64(v, 0xFFFFFFFFu, "ID register from the fallback");
    fx_wr32(fx, REG_SCRATCH, 0x0BADF00Du);
    v = read_bar0(fx, REG_SCRATCH, &rc);
    CHECK(rc == 0, "fallback read returned %d", rc);
    CHECK_EQ_U64(v, 0xFFFFFFFFu, "SCRATCH after a write absorbed by the fallback");
    uint8_t b2[2];
    rc = tlpb_host_mem_read(fx->host, 0, DMACOPY_BAR0_ADDR + REG_SCRATCH + 2, b2, 2);
    CHECK(rc == 0 && b2[0] == 0xFF && b2[1] == 0xFF, "2-byte fallback read: rc %d %02x%02x", rc,
          b2[1], b2[0]);

    struct tlpb_host_stats st;
    tlpb_host_get_stats(fx->host, &st);
    CHECK(st.dma_reads == 0 && st.dma_writes == 0 && st.interrupts == 0,
          "DMA or interrupts from a device with no simulator");

    bool ok;
    char *status = it_control("status", NULL, &ok);
    CHECK(ok, "status failed");
    const char *dev = it_json_device(status, "dmacopy0");
    REQUIRE(dev != NULL, "status lacks dmacopy0: %s", status ? status : "(none)");
    char text[64];
    CHECK(it_json_str(dev, "backend", text, sizeof(text)) && strcmp(text, "fallback") == 0,
          "backend '%s'", text);
    CHECK(it_json_str(dev, "configured_backend", text, sizeof(text)) && strcmp(text, "external") == 0,
          "configured backend '%s'", text);
    unsigned long long n = 0;
    CHECK(it_json_uint(dev, "fallback_completions", &n) && n >= 3, "fallback_completions %llu", n);
    CHECK(it_json_uint(dev, "fallback_absorbed_writes", &n) && n == 1,
          "fallback_absorbed_writes %llu, expected 1", n);
    CHECK(it_json_uint(dev, "outstanding", &n) && n == 0, "outstanding %llu", n);
    free(status);
}

static void fallback_zeros(void)
{
    struct dmacopy_fixture fx;
    fx_open(&fx, "zeros0", false);
    fx_enumerate(&fx);
    fx_config_write(&fx, 0x10, DMACOPY_BAR0_ADDR, 0xF);
    fx_config_write(&fx, 0x04, 0x0006, 0x3);
    int rc;
    uint32_t v = read_bar0(&fx, REG_ID, &rc);
    CHECK(rc == 0, "zeros fallback read returned %d", rc);
    CHECK_EQ_U64(v, 0, "fallback_read zeros");
    fx_close(&fx);
}

static void bridge_gone(struct dmacopy_fixture *fx)
{
    it_signal(it.bridge, SIGTERM);
    int status = it_wait_exit(it.bridge);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "bridge exit status 0x%x on SIGTERM", status);
    int rc;
    uint32_t v = read_bar0(fx, REG_ID, &rc);
    CHECK(rc == -ENOTCONN, "read with the bridge gone returned %d", rc);
    CHECK_EQ_U64(v, 0xFFFFFFFFu, "read with the bridge gone");
    CHECK(!tlpb_host_connected(fx->host), "still connected after the bridge exited");
    v = read_bar0(fx, REG_SCRATCH, &rc);
    CHECK(rc == -ENOTCONN && v == 0xFFFFFFFFu, "second read: rc %d value 0x%x", rc, v);
}

static void fallback_ur(struct dmacopy_fixture *fx)
{
    REQUIRE(fx_wait_connected(fx), "no reconnect");
    struct tlpb_host_stats st;
    tlpb_host_get_stats(fx->host, &st);
    CHECK(st.reconnects == 1, "reconnects %llu, expected 1 (first connect is not one)",
          (unsigned long long)st.reconnects);
    fx_enumerate(fx);
    fx_config_write(fx, 0x10, DMACOPY_BAR0_ADDR, 0xF);
    fx_config_write(fx, 0x04, 0x0006, 0x3);
    int rc;
    uint32_t v = read_bar0(fx, REG_ID, &rc);
    CHECK(rc == 1, "fallback_read ur: read returned %d, expected UR (1)", rc);
    CHECK_EQ_U64(v, 0xFFFFFFFFu, "UR read data");
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_fallback");
    REQUIRE(it_paths.configs && it_paths.model, "--configs and --model are required");

    struct dmacopy_fixture fx;
    fx_open_ex(&fx, "dmacopy0", false, false);
    IT_RUN("no bridge: the host answers locally", no_bridge(&fx));

    char cfg[1200];
    snprintf(cfg, sizeof(cfg), "%s/dmacopy-fallback.cfg", it_paths.configs);
    char zeros[1200];
    snprintf(zeros, sizeof(zeros), "zeros0:fallback=%s", it_paths.model);
    const char *args[] = {"--config", cfg, "--device", zeros, "--fallback-read", "zeros", NULL};
    it_start_bridge(args);
    REQUIRE(fx_wait_connected(&fx), "the host did not connect to the new bridge");

    IT_RUN("fallback: enumeration and all-ones reads", fallback_ones(&fx));
    IT_RUN("fallback: fallback_read zeros", fallback_zeros());
    IT_RUN("bridge gone: the host answers locally", bridge_gone(&fx));

    it_write_file("ur.cfg",
                  "devices = ({\n"
                  "  name = \"dmacopy0\";\n"
                  "  backend = \"external\";\n"
                  "  fallback_read = \"ur\";\n"
                  "  description = {\n"
                  "    vendor_id = 0x1234; device_id = 0x7a11; revision = 1; class_code = 0x088000;\n"
                  "    bars = ({ index = 0; size = 4096; }, { index = 2; size = 4096; });\n"
                  "    msix = { vectors = 2; table_bar = 2; table_offset = 0; pba_bar = 2; pba_offset = 0x800; };\n"
                  "    intx_pin = 1;\n"
                  "  };\n"
                  "});\n");
    const char *args2[] = {"--config", it_path("ur.cfg"), NULL};
    it_start_bridge(args2);
    IT_RUN("bridge back with fallback_read ur", fallback_ur(&fx));

    fx_close(&fx);
    return it_finish();
}
