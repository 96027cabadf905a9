/* dmacopy's identity and layout (README.md, "Identity"), one definition for
 * every implementation that announces it: the C model and the RTL
 * simulator. The bridge refuses a simulator whose description differs from
 * the device's, so they must not drift apart. An initializer for a
 * struct tlpb_devdesc. */
#ifndef DMACOPY_DESCRIPTION_H
#define DMACOPY_DESCRIPTION_H

#include "dmacopy_regs.h"

#define DMACOPY_DESCRIPTION                                                                      \
    {                                                                                            \
        .vendor_id = DMACOPY_PCI_VENDOR_ID,                                                      \
        .device_id = DMACOPY_PCI_DEVICE_ID,                                                      \
        .revision = 1,                                                                           \
        .class_code = 0x088000,                                                                  \
        .bars = {                                                                                \
            [0] = {.size_bytes = DMACOPY_BAR0_BYTES},                                            \
            [2] = {.size_bytes = 4096},                                                          \
        },                                                                                       \
        .msix_vectors = 2,                                                                       \
        .msix_table_bar = 2,                                                                     \
        .msix_table_offset = 0,                                                                  \
        .msix_pba_bar = 2,                                                                       \
        .msix_pba_offset = 0x800,                                                                \
        .intx_pin = 1,                                                                           \
        .max_payload_supported_bytes = 256,                                                      \
    }

#endif
