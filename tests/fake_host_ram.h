/* The guest memory a fake host serves to the dmacopy device in the coupled-
 * time tests (the model in process, tests/unit/test_dmacopy_timing.c, and
 * hlsim-run over the wire, tests/integration/test_hlsim_run_coupled.c): one
 * layout, and one way of answering the device's DMA reads, so both see the
 * same traffic. */
#ifndef TLPB_TESTS_FAKE_HOST_RAM_H
#define TLPB_TESTS_FAKE_HOST_RAM_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tlpb/tlp.h"

#define BAR0_ADDR 0xFEB00000u
#define BAR2_ADDR 0xFEB01000u
#define DEV_BDF 0x0300u
#define RAM_BASE 0x10000000ull
#define RAM_BYTES (1u << 20)
#define RING RAM_BASE
#define SRC (RAM_BASE + 0x10000)
#define DST (RAM_BASE + 0x40000)
#define COPY_BYTES 65536u

#define FAKE_HOST_RCB_BYTES 64u /* the fake root complex's read completion boundary */

/* Answer the DMA read req from ram (RAM_BYTES at RAM_BASE) at once: one
 * completion per RCB, each stamped sim_time_ps (0: unstamped) and passed to
 * send(ctx, cpl). Returns false, sending nothing, when the read is not
 * inside RAM. */
static inline bool fake_host_serve_read(const struct tlpb_tlp *req, const uint8_t *ram,
                                        uint64_t sim_time_ps,
                                        void (*send)(void *ctx, const struct tlpb_tlp *cpl),
                                        void *ctx)
{
    uint64_t addr = tlpb_tlp_first_byte_address(req);
    uint32_t bytes = tlpb_tlp_request_bytes(req);
    uint32_t remaining = bytes ? bytes : 1;

    if (addr < RAM_BASE || addr - RAM_BASE + remaining > RAM_BYTES)
        return false;
    while (remaining > 0) {
        uint32_t chunk = FAKE_HOST_RCB_BYTES - (uint32_t)(addr & (FAKE_HOST_RCB_BYTES - 1));
        if (chunk > remaining)
            chunk = remaining;
        uint32_t dws = (uint32_t)(((addr & 3) + chunk + 3) / 4);
        uint8_t payload[2 * FAKE_HOST_RCB_BYTES] = {0};
        if (bytes)
            memcpy(payload + (addr & 3), ram + (addr - RAM_BASE), chunk);
        struct tlpb_tlp cpl = {
            .kind = TLPB_TLP_CPLD, .requester_id = req->requester_id, .tag = req->tag,
            .status = TLPB_CPL_SC, .byte_count = remaining,
            .lower_address = (uint8_t)(addr & 0x7F), .length_dw = dws,
            .payload_bytes = dws * 4, .payload = payload, .bar_hint = TLPB_NO_BAR,
            .completer_id = 0, .sim_time_ps = sim_time_ps,
        };
        send(ctx, &cpl);
        addr += chunk;
        remaining -= chunk;
    }
    return true;
}

#endif
