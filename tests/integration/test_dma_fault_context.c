/* A DMA the host refuses is reported with what the device was doing: the
 * dmacopy model says per descriptor what its DMA is for
 * (hlsim_dma_set_context), loaded in a real tlpbridged or run by hlsim-run
 * (which passes it on in DmaContext messages), and the bridge's fault line
 * and status name the descriptor whose source or destination was not guest
 * memory (docs/protocol.md "DMA faults"). The fault is handled by the
 * device's check policy (docs/checker.md "Policies"): warn and reject leave
 * the device served (the host already failed the DMA), stop switches it to
 * the fallback. A DMA fault is not a PCIe checker violation: the suite's
 * zero-violation check holds here too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"

/* Outside the fixture's guest RAM: the host refuses DMA there. */
#define BAD_SRC 0x100000000ull
#define BAD_DST 0x200000000ull
#define COPY_BYTES 256u
#define RAW_BDF 0x0100u

/* Serve the device until the descriptor's status is written, then check it
 * failed with the expected error code (2: DMA read, 3: DMA write). */
static void expect_failed(struct dmacopy_fixture *fx, unsigned index, uint32_t code)
{
    REQUIRE(fx_wait_desc(fx, index), "descriptor %u never got a status", index);
    uint32_t status = fx_desc_status(fx, index);
    CHECK(((status >> 8) & 0xFF) == code, "descriptor %u status 0x%08x, expected error %u", index,
          status, code);
}

/* The device's object in the bridge's status (malloc'd *json to free). */
static const char *device_status(const char *device, char **json)
{
    bool ok = false;
    *json = it_control("status", NULL, &ok);
    REQUIRE(ok && *json, "control status failed");
    const char *dev = it_json_device(*json, device);
    REQUIRE(dev != NULL, "status has no %s: %s", device, *json);
    return dev;
}

static unsigned long long device_number(const char *device, const char *key)
{
    char *json;
    const char *dev = device_status(device, &json);
    unsigned long long value = 0;
    CHECK(it_json_uint(dev, key, &value), "status of %s has no %s", device, key);
    free(json);
    return value;
}

static void expect_backend(const char *device, const char *backend)
{
    char *json;
    const char *dev = device_status(device, &json);
    char text[64] = "";
    CHECK(it_json_str(dev, "backend", text, sizeof(text)) && strcmp(text, backend) == 0,
          "%s's backend is '%s', expected %s", device, text, backend);
    free(json);
}

/* The bridge's status keeps the last fault with its context; the checker
 * counts no violation for it, under the device's policy. */
static void expect_status_in(const char *device, const char *direction, uint64_t address,
                             uint64_t span, const char *context, const char *policy)
{
    char *status;
    const char *dev = device_status(device, &status);
    const char *fault = strstr(dev, "\"last_dma_fault\": {");
    CHECK(fault != NULL, "status has no last_dma_fault object: %s", dev);
    if (fault) {
        fault += strlen("\"last_dma_fault\": ");
        char text[256];
        unsigned long long value = 0;
        CHECK(it_json_str(fault, "direction", text, sizeof(text)) && strcmp(text, direction) == 0,
              "last_dma_fault direction '%s', expected %s", text, direction);
        CHECK(it_json_uint(fault, "address", &value) && value >= address &&
                  value - address < span,
              "last_dma_fault address 0x%llx, expected 0x%llx (+%llu)", value,
              (unsigned long long)address, (unsigned long long)span - 1);
        CHECK(it_json_str(fault, "context", text, sizeof(text)) && strcmp(text, context) == 0,
              "last_dma_fault context '%s', expected '%s'", text, context);
    }
    const char *checker = strstr(dev, "\"checker\": {");
    char text[32] = "";
    unsigned long long violations = 1;
    CHECK(checker && it_json_str(checker, "policy", text, sizeof(text)) &&
              strcmp(text, policy) == 0,
          "%s's checker policy is '%s', expected %s", device, text, policy);
    CHECK(checker && it_json_uint(checker, "violations", &violations) && violations == 0 &&
              strstr(checker, "\"rules\": {}"),
          "%s: a DMA fault counted as a checker violation: %s", device, checker ? checker : dev);
    free(status);
}

static void expect_status(const char *device, const char *direction, uint64_t address,
                          const char *context, const char *policy)
{
    expect_status_in(device, direction, address, 1, context, policy);
}

/* The context dmacopy gives while copying descriptor index. */
static void copy_context(char *out, size_t size, unsigned index, uint64_t src, uint64_t dst)
{
    snprintf(out, size, "copying descriptor %u (src 0x%llx dst 0x%llx len %u)", index,
             (unsigned long long)src, (unsigned long long)dst, COPY_BYTES);
}

/* Enumerated and initialised, the simulator (if any) attached. */
static void open_device(struct dmacopy_fixture *fx, const char *device, bool external)
{
    fx_open(fx, device, false);
    if (external)
        REQUIRE(fx_wait_attached(fx, true), "hlsim-run never attached for %s", device);
    fx_enumerate(fx);
    fx_init_device(fx);
}

static void case_bad_source(struct dmacopy_fixture *fx)
{
    const char *device = fx->device;
    fx_reset_engine(fx, 64);
    /* Two good copies first, so the bad one is descriptor 2. */
    fx_copy(fx, SRC_OFF, DST_OFF, 512, "copy before the fault");
    fx_copy(fx, SRC_OFF, DST_OFF, 512, "second copy before the fault");
    unsigned long long faults = device_number(device, "dma_faults");
    unsigned index = fx_post(fx, BAD_SRC, GUEST_RAM_BASE + DST_OFF, COPY_BYTES, DESC_FLAG_IRQ);
    CHECK(index == 2, "the bad descriptor is %u, expected 2", index);
    fx_doorbell(fx);
    /* Policy warn: the host's UR reaches the device, which fails the descriptor. */
    expect_failed(fx, index, 2);

    char context[160], expected[512], line[256];
    copy_context(context, sizeof(context), index, BAD_SRC, GUEST_RAM_BASE + DST_OFF);
    snprintf(expected, sizeof(expected), "IOMMU while %s", context);
    snprintf(line, sizeof(line), "device %s: DMA fault: read of 256 bytes at 0x100000000", device);
    CHECK(it_log_contains(it.bridge, line), "the bridge did not log the refused read at the bad"
          " source");
    CHECK(it_log_contains(it.bridge, expected), "the fault line does not end with \"%s\"", expected);
    expect_status(device, "read", BAD_SRC, context, "warn");
    CHECK(device_number(device, "dma_faults") == faults + 1, "%s: dma_faults did not count the"
          " one refused read", device);
}

static void case_bad_destination(struct dmacopy_fixture *fx)
{
    const char *device = fx->device;
    fx_reset_engine(fx, 64);
    fx_copy(fx, SRC_OFF, DST_OFF, 512, "copy before the fault");
    unsigned index = fx_post(fx, GUEST_RAM_BASE + SRC_OFF, BAD_DST, COPY_BYTES, DESC_FLAG_IRQ);
    CHECK(index == 1, "the bad descriptor is %u, expected 1", index);
    fx_doorbell(fx);
    expect_failed(fx, index, 3);

    char context[160], expected[512], line[256];
    copy_context(context, sizeof(context), index, GUEST_RAM_BASE + SRC_OFF, BAD_DST);
    snprintf(expected, sizeof(expected), "IOMMU while %s", context);
    snprintf(line, sizeof(line), "device %s: DMA fault: write of", device);
    CHECK(it_log_contains(it.bridge, line), "the bridge did not log the refused write");
    CHECK(it_log_contains(it.bridge, expected), "the fault line does not end with \"%s\"", expected);
    /* The last fault is the zero-length read that follows the data writes
     * (to learn whether they landed), at the last DW written: it names the
     * descriptor too. */
    snprintf(expected, sizeof(expected),
             "device %s: DMA fault: read of 0 bytes at 0x%llx refused by the host (UR): not guest"
             " memory, or not mapped for the device by the guest's IOMMU while %s",
             device, (unsigned long long)(BAD_DST + COPY_BYTES - 4), context);
    CHECK(it_log_contains(it.bridge, expected), "no fault line \"%s\"", expected);
    expect_status(device, "read", BAD_DST + COPY_BYTES - 4, context, "warn");
    /* Warn: the device goes on serving (its engine halted on the error). */
    fx_reset_engine(fx, 64);
    fx_copy(fx, SRC_OFF, DST_OFF, 512, "copy after the fault");
}

/* Both faults are in the trace as violation records of rule dma_fault, with
 * the descriptor. */
static void case_trace(const char *device)
{
    const char *args[] = {"--device", device, it_path("faults.trace"), NULL};
    char *out = NULL, *err = NULL;
    CHECK(it_trace_tool(args, &out, &err) == 0, "tlpbtrace: %s", err ? err : "");
    CHECK(out && strstr(out, "violation of dma_fault") && strstr(out, "while copying descriptor 2"),
          "the trace lacks the read fault of descriptor 2: %s", out ? out : "");
    CHECK(out && strstr(out, "DMA fault: write of") && strstr(out, "descriptor 1"),
          "the trace lacks the write fault of descriptor 1: %s", out ? out : "");
    free(out);
    free(err);
}

/* Policy reject: the host already failed the DMA, so the device gets the
 * host's UR as it would under warn; nothing more is rejected. */
static void case_policy_reject(struct dmacopy_fixture *fx)
{
    const char *device = fx->device;
    fx_reset_engine(fx, 64);
    unsigned index = fx_post(fx, BAD_SRC, GUEST_RAM_BASE + DST_OFF, COPY_BYTES, DESC_FLAG_IRQ);
    fx_doorbell(fx);
    expect_failed(fx, index, 2);
    char context[160];
    copy_context(context, sizeof(context), index, BAD_SRC, GUEST_RAM_BASE + DST_OFF);
    expect_status(device, "read", BAD_SRC, context, "reject");
    CHECK(device_number(device, "dma_faults") == 1, "%s: dma_faults is not 1", device);
    CHECK(device_number(device, "rejected_tlps") == 0, "%s: the bridge rejected a TLP", device);
    expect_backend(device, "hlsim");
    fx_reset_engine(fx, 64); /* halted on the error */
    fx_copy(fx, SRC_OFF, DST_OFF, 512, "copy after the fault");
}

/* Policy stop: the fault switches the device to the fallback, as a checker
 * violation does; the guest keeps running and reads the fallback's all
 * ones. */
static void case_policy_stop(struct dmacopy_fixture *fx, bool write)
{
    const char *device = fx->device;
    fx_reset_engine(fx, 64);
    fx_copy(fx, SRC_OFF, DST_OFF, 512, "copy before the fault");
    CHECK(fx_rd32(fx, REG_ID) != 0xFFFFFFFFu, "%s's ID register reads all ones", device);
    uint64_t src = write ? GUEST_RAM_BASE + SRC_OFF : BAD_SRC;
    uint64_t dst = write ? BAD_DST : GUEST_RAM_BASE + DST_OFF;
    unsigned index = fx_post(fx, src, dst, COPY_BYTES, DESC_FLAG_IRQ);
    fx_doorbell(fx);
    REQUIRE(fx_wait_attached(fx, false), "%s was not switched to the fallback after its DMA"
            " fault", device);
    /* Stopped before it could report the descriptor: the DMA reached
     * nothing more. */
    CHECK(fx_desc_status(fx, index) == 0, "%s wrote the status of descriptor %u after the stop",
          device, index);
    char line[256];
    snprintf(line, sizeof(line), "device %s: DMA fault: rule dma_fault broken, policy stop: the"
             " device is switched to the fallback", device);
    CHECK(it_log_contains(it.bridge, line), "no line \"%s\"", line);
    /* The fault names the descriptor (in the trace: fault lines of all
     * devices share one log rate limit). */
    char context[160];
    copy_context(context, sizeof(context), index, src, dst);
    const char *args[] = {"--device", device, it_path("faults.trace"), NULL};
    char *out = NULL, *err = NULL;
    snprintf(line, sizeof(line), "DMA fault: %s of ", write ? "write" : "read");
    CHECK(it_trace_tool(args, &out, &err) == 0 && out && strstr(out, "violation of dma_fault") &&
              strstr(out, line) && strstr(out, context),
          "%s: the trace has no %sfault naming descriptor %u: %s", device, line, index,
          out ? out : "");
    free(out);
    free(err);
    expect_backend(device, "fallback");
    /* Policy stop, no checker violation, the last fault with its context
     * (for a write: any of the DMA's requests the host refused, also those
     * it reports after the switch). */
    if (write)
        expect_status_in(device, "write", BAD_DST, COPY_BYTES, context, "stop");
    else
        expect_status(device, "read", BAD_SRC, context, "stop");
    CHECK(device_number(device, "dma_faults") >= 1, "%s: dma_faults did not count", device);
    CHECK(fx_rd32(fx, REG_ID) == 0xFFFFFFFFu && fx_rd32(fx, REG_STATUS) == 0xFFFFFFFFu,
          "%s on the fallback: registers do not read all ones", device);
    /* Logged once, however many of the DMA's requests faulted. */
    char *log = it_read_log(it.bridge);
    snprintf(line, sizeof(line), "device %s: DMA fault: rule dma_fault broken", device);
    const char *first = log ? strstr(log, line) : NULL;
    CHECK(first && !strstr(first + 1, line), "%s: the stop is not logged exactly once", device);
    free(log);
}

static void send_dma_context(struct raw *r, bool write, uint64_t address, uint32_t length_bytes,
                             const char *text)
{
    Tlpb__DmaContext ctx;
    Tlpb__Envelope env;
    tlpb_dma_context_envelope(&env, &ctx, write, address, length_bytes, text);
    raw_send_env(r, &env);
}

/* A DmaContext is the simulator's to send: from a host it is refused with an
 * Error and the connection goes on. Its text is peer text: the bridge keeps
 * the first 120 bytes, escaped, so it cannot forge or colour a log line. */
static void case_raw_context(void)
{
    const char *dev = "dmacopy5";
    struct raw h, s;
    raw_host(&h, dev);
    /* Bus mastering and memory space on (completed by the fallback, then
     * replayed to the simulator). */
    raw_host_enumerate(&h, RAW_BDF, NULL);

    send_dma_context(&h, false, BAD_SRC, COPY_BYTES, "from the host");
    bool refused = false;
    for (int i = 0; i < 8 && !refused; i++) {
        bool eof = false;
        Tlpb__Envelope *env = raw_next(&h, &eof);
        if (!env)
            break;
        refused = env->body_case == TLPB__ENVELOPE__BODY_ERROR &&
                  strstr(env->error->reason, "DmaContext from a host is not accepted");
        tlpb_envelope_free(env);
    }
    CHECK(refused, "a DmaContext from the host was not refused with an Error");

    raw_simulator(&s, dev);
    char text[256];
    int n = snprintf(text, sizeof(text), "\x1b[31mred\nforged ");
    memset(text + n, 'x', sizeof(text) - 1 - (size_t)n);
    text[sizeof(text) - 1] = '\0';
    send_dma_context(&s, false, BAD_SRC, COPY_BYTES, text);
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .requester_id = RAW_BDF, .tag = 5,
                          .bar_hint = TLPB_NO_BAR};
    REQUIRE(tlpb_tlp_set_mem_range(&rd, BAD_SRC, COPY_BYTES) == 0, "MRd not encodable");
    raw_send_tlp(&s, &rd);
    /* The host refuses the read, as for an address that is not guest memory. */
    struct tlpb_tlp req, got;
    uint8_t data[16];
    REQUIRE(raw_recv_tlp(&h, &req, data, sizeof(data)) && req.kind == TLPB_TLP_MRD,
            "%s: the host got no MRd", dev);
    struct tlpb_tlp cpl;
    tlpb_completion_error_for(&cpl, &req, 0, TLPB_CPL_UR);
    raw_send_tlp(&h, &cpl);
    /* The simulator gets the UR (config requests replayed to it completed
     * on the way). */
    bool ur = raw_sim_recv_tlp(&s, RAW_BDF, &got, data, sizeof(data)) &&
              got.kind == TLPB_TLP_CPL && got.tag == 5 && got.status == TLPB_CPL_UR;
    CHECK(ur, "%s: the simulator did not get the UR of its read", dev);

    /* 120 bytes of the text: ESC and the newline escaped, then cut. */
    char expected[256];
    n = snprintf(expected, sizeof(expected), "\\x1b[31mred\\x0aforged ");
    memset(expected + n, 'x', 104);
    snprintf(expected + n + 104, sizeof(expected) - (size_t)n - 104, "...");
    expect_status(dev, "read", BAD_SRC, expected, "warn");
    CHECK(!it_log_contains(it.bridge, "\x1b[31m") && !it_log_contains(it.bridge, "\nforged"),
          "the simulator's text reached the bridge log unescaped");
    raw_close(&s);
    raw_close(&h);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_dma_fault_context");
    REQUIRE(it_paths.model != NULL, "--model not given");
    /* In-process and in hlsim-run, under each policy. */
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "devices = (\n"
             "  { name = \"dmacopy0\"; backend = \"hlsim\"; model = \"%s\"; },\n"
             "  { name = \"dmacopy1\"; backend = \"external\"; model = \"%s\"; },\n"
             "  { name = \"dmacopy2\"; backend = \"hlsim\"; model = \"%s\"; check = \"stop\"; },\n"
             "  { name = \"dmacopy3\"; backend = \"external\"; model = \"%s\"; check = \"stop\"; },\n"
             "  { name = \"dmacopy4\"; backend = \"hlsim\"; model = \"%s\"; check = \"reject\"; },\n"
             "  { name = \"dmacopy5\"; backend = \"external\"; model = \"%s\"; }\n"
             ");\n",
             it_paths.model, it_paths.model, it_paths.model, it_paths.model, it_paths.model,
             it_paths.model);
    const char *args[] = {"--config", it_write_file("faults.cfg", cfg), "--trace",
                          it_path("faults.trace"), NULL};
    it_start_bridge(args);
    it_start_sim("dmacopy1", false);
    it_start_sim("dmacopy3", false);

    /* No fault yet: status says so. */
    bool ok = false;
    char *status = it_control("status", NULL, &ok);
    REQUIRE(ok && status, "control status failed");
    const char *dev = it_json_device(status, "dmacopy0");
    CHECK(dev && strstr(dev, "\"last_dma_fault\": null"), "last_dma_fault before any fault: %s",
          dev ? dev : status);
    free(status);

    struct dmacopy_fixture fx;
    open_device(&fx, "dmacopy0", false);
    IT_RUN("in-process: source not guest memory: the fault names the descriptor",
           case_bad_source(&fx));
    IT_RUN("in-process: destination not guest memory: the fault names the descriptor",
           case_bad_destination(&fx));
    IT_RUN("in-process: the faults are marked in the trace", case_trace("dmacopy0"));
    fx_close(&fx);

    open_device(&fx, "dmacopy1", true);
    IT_RUN("hlsim-run: source not guest memory: the fault names the descriptor",
           case_bad_source(&fx));
    IT_RUN("hlsim-run: destination not guest memory: the fault names the descriptor",
           case_bad_destination(&fx));
    IT_RUN("hlsim-run: the faults are marked in the trace", case_trace("dmacopy1"));
    expect_backend("dmacopy1", "external");
    fx_close(&fx);

    open_device(&fx, "dmacopy4", false);
    IT_RUN("policy reject: the device gets the host's UR and goes on", case_policy_reject(&fx));
    fx_close(&fx);

    open_device(&fx, "dmacopy2", false);
    IT_RUN("policy stop, in-process, read fault: the device is on the fallback",
           case_policy_stop(&fx, false));
    fx_close(&fx);

    open_device(&fx, "dmacopy3", true);
    IT_RUN("policy stop, hlsim-run, write fault: the device is on the fallback",
           case_policy_stop(&fx, true));
    fx_close(&fx);

    IT_RUN("a simulator's text is bounded and escaped; a host's DmaContext is refused",
           case_raw_context());
    return it_finish();
}
