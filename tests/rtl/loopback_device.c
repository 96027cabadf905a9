/* The loopback test device: one 4 KiB BAR, no interrupts. */
#include "tlpb_rtl.h"

const struct tlpb_rtl_device tlpb_rtl_device = {
    .name = "loopback",
    .description = {
        .vendor_id = 0x1234,
        .device_id = 0x0001,
        .class_code = 0xff0000,
        .bars = {[0] = {.size_bytes = 4096}},
        .max_payload_supported_bytes = 256,
    },
};
