/* The dmacopy device as the RTL simulator announces it to the bridge: the
 * same description as the C model (../hlsim/dmacopy.c). */
#include "tlpb_rtl.h"

const struct tlpb_rtl_device tlpb_rtl_device = {
    .name = "dmacopy",
    .description = {
        .vendor_id = 0x1234,
        .device_id = 0x7a11,
        .revision = 1,
        .class_code = 0x088000,
        .bars = {
            [0] = {.size_bytes = 4096},
            [2] = {.size_bytes = 4096},
        },
        .msix_vectors = 2,
        .msix_table_bar = 2,
        .msix_table_offset = 0,
        .msix_pba_bar = 2,
        .msix_pba_offset = 0x800,
        .intx_pin = 1,
        .max_payload_supported_bytes = 256,
    },
};
