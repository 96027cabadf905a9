/* The control interface through tlpbctl (status, switch, reload, trace)
 * and the trace tool tlpbtrace (printing, --kind/--device/--address
 * filters, --count, damaged files), against a running bridge with two
 * in-process dmacopy models: dmacopy0 (strict DMA) and fast0 (fast DMA). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmacopy_suite.h"
#include "harness.h"

static struct dmacopy_fixture fx;

/* Run tlpbctl with args; returns its exit code, stdout in *out. */
static int ctl(char **out, char **err, const char *a0, const char *a1, const char *a2,
               const char *a3)
{
    const char *argv[] = {it_paths.ctl, "--socket", it.socket_path, a0, a1, a2, a3, NULL};
    int rc = it_run_capture(argv, out, err);
    printf("  tlpbctl %s%s%s%s%s%s -> %d\n", a0, a1 ? " " : "", a1 ? a1 : "", a2 ? " " : "",
           a2 ? a2 : "", a3 ? " ..." : "", rc);
    return rc;
}

static bool json_str_is(const char *obj, const char *key, const char *want)
{
    char text[1200];
    bool ok = it_json_str(obj, key, text, sizeof(text)) && strcmp(text, want) == 0;
    CHECK(ok, "status field %s is '%s', expected '%s'", key, text, want);
    return ok;
}

static void case_status(void)
{
    char *out = NULL, *err = NULL;
    int rc = ctl(&out, &err, "status", NULL, NULL, NULL);
    CHECK(rc == 0, "tlpbctl status exit %d: %s", rc, err);
    unsigned long long n;
    CHECK(strstr(out, "\"uptime_s\"") != NULL, "status lacks uptime_s: %s", out);
    const char *d0 = it_json_device(out, "dmacopy0");
    const char *f0 = it_json_device(out, "fast0");
    REQUIRE(d0 && f0, "status lacks a device: %s", out);
    json_str_is(d0, "backend", "hlsim");
    json_str_is(d0, "configured_backend", "hlsim");
    json_str_is(d0, "dma", "strict");
    json_str_is(f0, "dma", "fast");
    json_str_is(d0, "model", it_paths.model);
    CHECK(strstr(d0, "\"host_connected\": true") != NULL || strstr(d0, "\"host_connected\":true") != NULL,
          "dmacopy0 host_connected is not true");
    CHECK(it_json_uint(d0, "vendor_id", &n) && n == 0x1234, "vendor_id %llu", n);
    CHECK(it_json_uint(d0, "device_id", &n) && n == 0x7A11, "device_id %llu", n);
    CHECK(it_json_uint(d0, "host_requests", &n) && n > 10, "host_requests %llu after enumeration", n);
    CHECK(it_json_uint(d0, "outstanding", &n) && n == 0, "outstanding %llu", n);
    CHECK(it_json_uint(f0, "host_requests", &n) && n == 0, "fast0 host_requests %llu (no host)", n);
    free(out);
    free(err);

    /* Mistakes get an error and exit status 1. */
    rc = ctl(&out, &err, "switch", "nosuch", "fallback", NULL);
    CHECK(rc == 1 && strstr(err, "unknown device 'nosuch'"), "switch of an unknown device: %d '%s'", rc, err);
    free(out);
    free(err);
    rc = ctl(&out, &err, "switch", "dmacopy0", "external", NULL);
    CHECK(rc == 1 && strstr(err, "no simulator attached"), "switch to external: %d '%s'", rc, err);
    free(out);
    free(err);
    rc = ctl(&out, &err, "switch", "dmacopy0", "warp", NULL);
    CHECK(rc == 1 && strstr(err, "usage: switch"), "switch to a bogus backend: %d '%s'", rc, err);
    free(out);
    free(err);
    rc = ctl(&out, &err, "frobnicate", NULL, NULL, NULL);
    CHECK(rc == 1 && strstr(err, "unknown command"), "unknown command: %d '%s'", rc, err);
    free(out);
    free(err);
    const char *noargs[] = {it_paths.ctl, NULL};
    rc = it_run_capture(noargs, &out, &err);
    CHECK(rc == 2, "tlpbctl without a socket or command: exit %d", rc);
    free(out);
    free(err);
}

static void case_switch(void)
{
    fx_wr32(&fx, REG_SCRATCH, 0x13572468u);
    CHECK_EQ_U64(fx_rd32(&fx, REG_SCRATCH), 0x13572468u, "SCRATCH before the switch");
    char *out = NULL, *err = NULL;
    int rc = ctl(&out, &err, "switch", "dmacopy0", "fallback", NULL);
    CHECK(rc == 0 && strncmp(out, "fallback", 8) == 0, "switch to fallback: %d '%s' '%s'", rc, out, err);
    free(out);
    free(err);
    fx_wait_attached(&fx, false);
    uint32_t v = 0;
    rc = tlpb_host_mem_read(fx.host, 0, DMACOPY_BAR0_ADDR + REG_ID, &v, 4);
    CHECK(rc == 0 && v == 0xFFFFFFFFu, "ID on the fallback: rc %d 0x%08x", rc, v);
    CHECK_EQ_U64(fx_config_read(&fx, 0) >> 16, 0x7A11, "device ID from the fallback");
    fx_wr32(&fx, REG_SCRATCH, 0xDEADDEADu); /* absorbed */
    /* the read behind it makes sure the bridge has the write before the switch */
    CHECK_EQ_U64(fx_rd32(&fx, REG_SCRATCH), 0xFFFFFFFFu, "SCRATCH on the fallback");

    bool ok;
    char *status = it_control("status", NULL, &ok);
    const char *d0 = it_json_device(status, "dmacopy0");
    CHECK(d0 != NULL, "no status");
    json_str_is(d0, "backend", "fallback");
    json_str_is(d0, "configured_backend", "hlsim");
    free(status);

    rc = ctl(&out, &err, "switch", "dmacopy0", "hlsim", NULL);
    CHECK(rc == 0 && strncmp(out, "hlsim", 5) == 0, "switch back to hlsim: %d '%s' '%s'", rc, out, err);
    free(out);
    free(err);
    fx_wait_attached(&fx, true);
    CHECK_EQ_U64(fx_rd32(&fx, REG_ID), 0x7A110001u, "ID back on hlsim");
    /* A backend that comes back starts from reset (docs/bridge.md): SCRATCH
     * reads its reset value, and the absorbed write did not land. */
    CHECK_EQ_U64(fx_rd32(&fx, REG_SCRATCH), 0, "SCRATCH after switching back");
    fx_reset_engine(&fx, 64);
    fx_copy(&fx, SRC_OFF + 1, DST_OFF + 3, 10000, "copy after switching back");
}

static void case_reload(void)
{
    fx_wr32(&fx, REG_SCRATCH, 0xFEEDBEEFu);
    CHECK_EQ_U64(fx_rd32(&fx, REG_SCRATCH), 0xFEEDBEEFu, "SCRATCH before reload");
    char *out = NULL, *err = NULL;
    int rc = ctl(&out, &err, "reload", "dmacopy0", NULL, NULL);
    CHECK(rc == 0 && strstr(out, it_paths.model) == out, "reload: %d '%s' '%s'", rc, out, err);
    free(out);
    free(err);
    CHECK(it_log_contains(it.bridge, "model reloaded"), "the bridge did not log the reload");
    /* A new instance: SCRATCH is back at its reset value. */
    CHECK_EQ_U64(fx_rd32(&fx, REG_SCRATCH), 0, "SCRATCH after reload");
    CHECK_EQ_U64(fx_rd32(&fx, REG_ID), 0x7A110001u, "ID after reload");
    fx_reset_engine(&fx, 64);
    fx_copy(&fx, SRC_OFF, DST_OFF, 70000, "copy after reload");

    /* A model that does not load: an error, and the running model stays. */
    rc = ctl(&out, &err, "reload", "dmacopy0", it_path("no-such-model.so"), NULL);
    CHECK(rc == 1 && strstr(err, "cannot load model"), "reload of a missing file: %d '%s'", rc, err);
    free(out);
    free(err);
    CHECK_EQ_U64(fx_rd32(&fx, REG_ID), 0x7A110001u, "ID after a failed reload");
    fx_reset_engine(&fx, 64);
    fx_copy(&fx, SRC_OFF + 2, DST_OFF + 1, 5000, "copy after a failed reload");
    bool ok;
    char *status = it_control("status", NULL, &ok);
    const char *d0 = it_json_device(status, "dmacopy0");
    CHECK(d0 != NULL, "no status");
    json_str_is(d0, "backend", "hlsim");
    json_str_is(d0, "model", it_paths.model);
    free(status);
}

static long max_len_in(const char *text)
{
    long max = 0;
    for (const char *p = strstr(text, " len "); p; p = strstr(p + 1, " len ")) {
        long v = strtol(p + 5, NULL, 10);
        if (v > max)
            max = v;
    }
    return max;
}

static void case_trace(void)
{
    char trace[320];
    snprintf(trace, sizeof(trace), "%s", it_path("bridge.trace"));
    char *out = NULL, *err = NULL;
    int rc = ctl(&out, &err, "trace", "on", trace, NULL);
    CHECK(rc == 0 && strstr(out, trace) == out, "trace on: %d '%s' '%s'", rc, out, err);
    free(out);
    free(err);

    /* Known traffic: 2 config reads, 1 SCRATCH write, 3 SCRATCH reads, one
     * copy with one MSI-X; then fast0 moves 64 KiB in fast mode. */
    fx_config_read(&fx, 0x00);
    fx_config_read(&fx, 0x08);
    fx_wr32(&fx, REG_SCRATCH, 0xA5A55A5Au);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_U64(fx_rd32(&fx, REG_SCRATCH), 0xA5A55A5Au, "SCRATCH while tracing");
    fx_copy(&fx, SRC_OFF, DST_OFF, 1000, "copy while tracing");
    struct dmacopy_fixture fast;
    fx_open(&fast, "fast0", true);
    fx_enumerate(&fast);
    fx_init_device(&fast);
    fx_copy(&fast, SRC_OFF, DST_OFF, 65536, "fast copy while tracing");
    fx_close(&fast);

    rc = ctl(&out, &err, "trace", "off", NULL, NULL);
    CHECK(rc == 0, "trace off: %d '%s'", rc, err);
    free(out);
    free(err);

    const char *plain[] = {trace, NULL};
    rc = it_trace_tool(plain, &out, &err);
    CHECK(rc == 0, "tlpbtrace exit %d: %s", rc, err);
    CHECK(strstr(out, "CfgRd0") && strstr(out, "MWr") && strstr(out, "CplD") &&
              strstr(out, "IRQ MSI-X vector 0") && strstr(out, "h->d") && strstr(out, "d->h"),
          "tlpbtrace output lacks expected records:\n%.2000s", out);
    free(out);
    free(err);

    const char *all[] = {trace, NULL};
    long total = it_trace_count(all);
    const char *cfgrd[] = {"--device", "dmacopy0", "--kind", "CfgRd0", trace, NULL};
    CHECK(it_trace_count(cfgrd) == 2, "dmacopy0 CfgRd0 records: %ld, expected 2",
          it_trace_count(cfgrd));
    const char *scratch_wr[] = {"--device", "dmacopy0", "--kind", "MWr", "--address", "0xfe000004", trace, NULL};
    CHECK(it_trace_count(scratch_wr) == 1, "SCRATCH writes: %ld, expected 1",
          it_trace_count(scratch_wr));
    const char *scratch_rd[] = {"-d", "dmacopy0", "-k", "mrd", "-a", "0xfe000004-0xfe000007", trace, NULL};
    CHECK(it_trace_count(scratch_rd) == 3, "SCRATCH reads: %ld, expected 3",
          it_trace_count(scratch_rd));
    const char *irq[] = {"--device", "dmacopy0", "--kind", "IRQ", trace, NULL};
    CHECK(it_trace_count(irq) == 1, "dmacopy0 interrupts: %ld, expected 1", it_trace_count(irq));
    const char *nosuch[] = {"--device", "nosuch", trace, NULL};
    CHECK(it_trace_count(nosuch) == 0, "records of an unknown device: %ld", it_trace_count(nosuch));
    /* 1000 bytes at max payload 128: at least 8 DMA writes into guest RAM. */
    const char *dma_wr[] = {"--device", "dmacopy0", "--kind", "MWr", "--address", "0x80000000-0x807fffff", trace, NULL};
    long dma_writes = it_trace_count(dma_wr);
    CHECK(dma_writes >= 8, "DMA writes of the traced copy: %ld", dma_writes);
    const char *d0[] = {"--device", "dmacopy0", trace, NULL};
    const char *f0[] = {"--device", "fast0", trace, NULL};
    long n0 = it_trace_count(d0), nf = it_trace_count(f0);
    CHECK(n0 > 0 && nf > 0 && n0 + nf == total, "per-device counts %ld + %ld != total %ld", n0, nf, total);

    /* Fast mode is visible in the trace: DMA TLPs beyond PCIe's 1024 DW. */
    const char *fast_mrd[] = {"--device", "fast0", "--kind", "MRd", "--address", "0x80000000-0x807fffff", trace, NULL};
    rc = it_trace_tool(fast_mrd, &out, &err);
    CHECK(rc == 0 && max_len_in(out) > 1024, "fast0 DMA reads in the trace: longest %ld DW", max_len_in(out));
    free(out);
    free(err);
    const char *strict_mrd[] = {"--device", "dmacopy0", "--kind", "MRd", "--address", "0x80000000-0x807fffff", trace, NULL};
    rc = it_trace_tool(strict_mrd, &out, &err);
    CHECK(rc == 0 && max_len_in(out) > 0 && max_len_in(out) <= 128,
          "dmacopy0 DMA reads in the trace: longest %ld DW, expected <= 128 (512 bytes)", max_len_in(out));
    free(out);
    free(err);

    /* Damaged files. */
    const char *missing[] = {it_path("missing.trace"), NULL};
    rc = it_trace_tool(missing, &out, &err);
    CHECK(rc == 1 && strlen(err) > 0, "missing trace file: exit %d", rc);
    free(out);
    free(err);
    const char *notrace[] = {it_write_file("not.trace", "this is not a trace file\n"), NULL};
    rc = it_trace_tool(notrace, &out, &err);
    CHECK(rc == 1 && strstr(err, "not a tlpbridge trace"), "wrong magic: exit %d '%s'", rc, err);
    free(out);
    free(err);
    /* A copy of the trace cut in its last record: the records before it
     * are printed, and the damage is reported with exit status 1. */
    FILE *in = fopen(trace, "rb");
    REQUIRE(in != NULL, "cannot open the trace");
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *bytes = malloc((size_t)size);
    REQUIRE(fread(bytes, 1, (size_t)size, in) == (size_t)size, "cannot read the trace");
    fclose(in);
    char cut[320];
    snprintf(cut, sizeof(cut), "%s", it_path("cut.trace"));
    FILE *o = fopen(cut, "wb");
    fwrite(bytes, 1, (size_t)size - 3, o);
    fclose(o);
    free(bytes);
    const char *cut_args[] = {"--count", cut, NULL};
    rc = it_trace_tool(cut_args, &out, &err);
    CHECK(rc == 1 && strstr(err, "truncated record"), "cut trace: exit %d '%s'", rc, err);
    CHECK(atol(out) == total - 1, "cut trace: %s records, expected %ld", out, total - 1);
    free(out);
    free(err);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_control_trace");
    REQUIRE(it_paths.model && it_paths.ctl && it_paths.tracetool,
            "--model, --tlpbctl and --tlpbtrace are required");
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "devices = (\n"
             "  { name = \"dmacopy0\"; backend = \"hlsim\"; model = \"%s\"; dma = \"strict\"; },\n"
             "  { name = \"fast0\"; backend = \"hlsim\"; model = \"%s\"; dma = \"fast\"; }\n"
             ");\n",
             it_paths.model, it_paths.model);
    const char *args[] = {"--config", it_write_file("control.cfg", cfg), NULL};
    it_start_bridge(args);

    fx_open(&fx, "dmacopy0", false);
    fx_enumerate(&fx);
    fx_init_device(&fx);

    IT_RUN("tlpbctl status", case_status());
    IT_RUN("tlpbctl switch hlsim -> fallback -> hlsim", case_switch());
    IT_RUN("tlpbctl reload", case_reload());
    IT_RUN("trace on/off and tlpbtrace", case_trace());

    fx_close(&fx);
    return it_finish();
}
