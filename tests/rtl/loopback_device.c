/* The loopback test device: a 32-bit and a 64-bit 2 MiB BAR (the echo
 * test's 32- and 64-bit addresses decode to them), no interrupts. */
#include "tlpb_rtl.h"

const struct tlpb_rtl_device tlpb_rtl_device = {
    .name = "loopback",
    .description = {
        .vendor_id = 0x1234,
        .device_id = 0x0001,
        .class_code = 0xff0000,
        .bars = {[0] = {.size_bytes = 2u * 1024u * 1024u},
                 [2] = {.size_bytes = 2u * 1024u * 1024u, .is_64bit = true}},
        .max_payload_supported_bytes = 256,
    },
};
