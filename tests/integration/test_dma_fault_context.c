/* A DMA the host refuses is reported with what the device was doing: the
 * dmacopy model, loaded in a real tlpbridged, says per descriptor what its
 * DMA is for (hlsim_dma_set_context), and the bridge's fault line and status
 * name the descriptor whose source or destination was not guest memory
 * (docs/protocol.md "DMA faults"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmacopy_suite.h"
#include "harness.h"

/* Outside the fixture's guest RAM: the host refuses DMA there. */
#define BAD_SRC 0x100000000ull
#define BAD_DST 0x200000000ull
#define COPY_BYTES 256u

/* Serve the device until the descriptor's status is written, then check it
 * failed with the expected error code (2: DMA read, 3: DMA write). */
static void expect_failed(struct dmacopy_fixture *fx, unsigned index, uint32_t code)
{
    REQUIRE(fx_wait_desc(fx, index), "descriptor %u never got a status", index);
    uint32_t status = fx_desc_status(fx, index);
    CHECK(((status >> 8) & 0xFF) == code, "descriptor %u status 0x%08x, expected error %u", index,
          status, code);
}

/* The bridge's status keeps the last fault with its context. */
static void expect_status(const char *direction, uint64_t address, const char *context)
{
    bool ok = false;
    char *status = it_control("status", NULL, &ok);
    REQUIRE(ok && status, "control status failed");
    const char *dev = it_json_device(status, "dmacopy0");
    REQUIRE(dev != NULL, "status has no dmacopy0: %s", status);
    const char *fault = strstr(dev, "\"last_dma_fault\": {");
    CHECK(fault != NULL, "status has no last_dma_fault object: %s", dev);
    if (fault) {
        fault += strlen("\"last_dma_fault\": ");
        char text[256];
        unsigned long long value = 0;
        CHECK(it_json_str(fault, "direction", text, sizeof(text)) && strcmp(text, direction) == 0,
              "last_dma_fault direction '%s', expected %s", text, direction);
        CHECK(it_json_uint(fault, "address", &value) && value == address,
              "last_dma_fault address 0x%llx, expected 0x%llx", value, (unsigned long long)address);
        CHECK(it_json_str(fault, "context", text, sizeof(text)) && strcmp(text, context) == 0,
              "last_dma_fault context '%s', expected '%s'", text, context);
    }
    free(status);
}

static void case_bad_source(struct dmacopy_fixture *fx)
{
    fx_reset_engine(fx, 64);
    /* Two good copies first, so the bad one is descriptor 2. */
    fx_copy(fx, SRC_OFF, DST_OFF, 512, "copy before the fault");
    fx_copy(fx, SRC_OFF, DST_OFF, 512, "second copy before the fault");
    unsigned index = fx_post(fx, BAD_SRC, GUEST_RAM_BASE + DST_OFF, COPY_BYTES, DESC_FLAG_IRQ);
    CHECK(index == 2, "the bad descriptor is %u, expected 2", index);
    fx_doorbell(fx);
    expect_failed(fx, index, 2);

    char expected[512];
    snprintf(expected, sizeof(expected),
             "IOMMU while copying descriptor %u (src 0x%llx dst 0x%llx len %u)", index,
             (unsigned long long)BAD_SRC, (unsigned long long)(GUEST_RAM_BASE + DST_OFF),
             COPY_BYTES);
    CHECK(it_log_contains(it.bridge, "device dmacopy0: DMA fault: read of 256 bytes at 0x100000000"),
          "the bridge did not log the refused read at the bad source");
    CHECK(it_log_contains(it.bridge, expected), "the fault line does not end with \"%s\"", expected);
    expect_status("read", BAD_SRC, strstr(expected, "copying"));
}

static void case_bad_destination(struct dmacopy_fixture *fx)
{
    fx_reset_engine(fx, 64);
    fx_copy(fx, SRC_OFF, DST_OFF, 512, "copy before the fault");
    unsigned index = fx_post(fx, GUEST_RAM_BASE + SRC_OFF, BAD_DST, COPY_BYTES, DESC_FLAG_IRQ);
    CHECK(index == 1, "the bad descriptor is %u, expected 1", index);
    fx_doorbell(fx);
    expect_failed(fx, index, 3);

    char expected[512];
    snprintf(expected, sizeof(expected),
             "IOMMU while copying descriptor %u (src 0x%llx dst 0x%llx len %u)", index,
             (unsigned long long)(GUEST_RAM_BASE + SRC_OFF), (unsigned long long)BAD_DST,
             COPY_BYTES);
    CHECK(it_log_contains(it.bridge, "device dmacopy0: DMA fault: write of"),
          "the bridge did not log the refused write");
    CHECK(it_log_contains(it.bridge, expected), "the fault line does not end with \"%s\"", expected);
    char context[160];
    snprintf(context, sizeof(context), "%s", strstr(expected, "copying"));
    /* The last fault is the zero-length read that follows the data writes
     * (to learn whether they landed), at the last DW written: it names the
     * descriptor too. */
    snprintf(expected, sizeof(expected),
             "DMA fault: read of 0 bytes at 0x%llx refused by the host (UR): not guest memory, or"
             " not mapped for the device by the guest's IOMMU while %s",
             (unsigned long long)(BAD_DST + COPY_BYTES - 4), context);
    CHECK(it_log_contains(it.bridge, expected), "no fault line \"%s\"", expected);
    expect_status("read", BAD_DST + COPY_BYTES - 4, context);
}

/* Both faults are in the trace as violation records of rule dma_fault, with
 * the descriptor. */
static void case_trace(struct dmacopy_fixture *fx)
{
    (void)fx;
    const char *args[] = {"--device", "dmacopy0", it_path("faults.trace"), NULL};
    char *out = NULL, *err = NULL;
    CHECK(it_trace_tool(args, &out, &err) == 0, "tlpbtrace: %s", err ? err : "");
    CHECK(out && strstr(out, "violation of dma_fault") && strstr(out, "while copying descriptor 2"),
          "the trace lacks the read fault of descriptor 2: %s", out ? out : "");
    CHECK(out && strstr(out, "DMA fault: write of") && strstr(out, "descriptor 1"),
          "the trace lacks the write fault of descriptor 1: %s", out ? out : "");
    free(out);
    free(err);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_dma_fault_context");
    REQUIRE(it_paths.model != NULL, "--model not given");
    char device_arg[1200];
    snprintf(device_arg, sizeof(device_arg), "dmacopy0:hlsim=%s", it_paths.model);
    const char *args[] = {"--device", device_arg, "--trace", it_path("faults.trace"), NULL};
    it_start_bridge(args);

    /* No fault yet: status says so. */
    bool ok = false;
    char *status = it_control("status", NULL, &ok);
    REQUIRE(ok && status, "control status failed");
    const char *dev = it_json_device(status, "dmacopy0");
    CHECK(dev && strstr(dev, "\"last_dma_fault\": null"), "last_dma_fault before any fault: %s",
          dev ? dev : status);
    free(status);

    struct dmacopy_fixture fx;
    fx_open(&fx, "dmacopy0", false);
    IT_RUN("enumeration", fx_enumerate(&fx));
    IT_RUN("init", fx_init_device(&fx));
    IT_RUN("source not guest memory: the fault names the descriptor", case_bad_source(&fx));
    IT_RUN("destination not guest memory: the fault names the descriptor",
           case_bad_destination(&fx));
    IT_RUN("the faults are marked in the trace", case_trace(&fx));
    fx_close(&fx);
    return it_finish();
}
