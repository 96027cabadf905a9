/* The device description: what a PCIe function looks like from config space.
 * The simulator sends it at attach; the bridge holds one from its config so
 * the host can realize the device and the fallback can answer enumeration. */
#ifndef TLPB_DEVDESC_H
#define TLPB_DEVDESC_H

#include <stdbool.h>
#include <stdint.h>

#define TLPB_BAR_COUNT 6

struct tlpb_bar_desc {
    uint64_t size_bytes;   /* 0 = not implemented; else power of two >= 16 (IO: >= 4) */
    bool is_64bit;         /* occupies this slot and the next */
    bool prefetchable;
    bool is_io;
};

struct tlpb_devdesc {
    uint16_t vendor_id;
    uint16_t device_id;
    uint16_t subsystem_vendor_id;
    uint16_t subsystem_id;
    uint8_t revision;
    uint32_t class_code;   /* 24 bits */
    struct tlpb_bar_desc bars[TLPB_BAR_COUNT];
    uint16_t msix_vectors; /* 0 = no MSI-X capability */
    uint8_t msix_table_bar;
    uint32_t msix_table_offset;
    uint8_t msix_pba_bar;
    uint32_t msix_pba_offset;
    uint8_t msi_vectors;   /* 0 = no MSI capability; else 1, 2, 4, 8, 16, 32 */
    bool msi_64bit;
    uint8_t intx_pin;      /* 0 none, 1 = INTA .. 4 = INTD */
    uint16_t max_payload_supported_bytes; /* 128..4096 */
};

/* Check a description for consistency (BAR sizes powers of two, 64-bit BARs
 * not in slot 5 and not followed by another BAR, MSI-X table and PBA inside
 * an implemented memory BAR and not overlapping, vector counts in range).
 * Also: no flags on an unimplemented BAR; I/O BARs 4..256 bytes, neither
 * 64-bit nor prefetchable; 32-bit memory BARs at most 2 GiB; prefetchable
 * memory BARs 64-bit (a PCIe endpoint rule); MSI-X offsets 8-byte aligned;
 * vendor ID not 0xFFFF; class code 24 bits; INTx pin 0..4; max payload
 * supported a power of two 128..4096. Returns 0 or -EINVAL with *reason set
 * (reason may be NULL). */
int tlpb_devdesc_validate(const struct tlpb_devdesc *desc, const char **reason);

#endif
