/* Consistency checks on a device description, so a bad configuration or a
 * bad simulator is refused at attach with a reason instead of producing a
 * config space no PCI enumerator could make sense of. */
#include <errno.h>

#include "tlpb/devdesc.h"

#define MEM_BAR_MIN_BYTES 16u      /* bits 3:0 of a memory BAR are flags */
#define IO_BAR_MIN_BYTES 4u        /* bits 1:0 of an I/O BAR are flags */
#define IO_BAR_MAX_BYTES 256u      /* PCI: no more than 256 bytes of I/O per BAR */
#define MEM32_BAR_MAX_BYTES (UINT64_C(1) << 31)
#define MSIX_VECTORS_MAX 2048u     /* Table Size is 11 bits, N-1 encoded */
#define MSIX_ENTRY_BYTES 16u
#define MSIX_OFFSET_ALIGN 8u       /* the low 3 bits of the offset hold the BIR */

static int reject(const char **reason, const char *why)
{
    if (reason)
        *reason = why;
    return -EINVAL;
}

static bool is_power_of_two(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

static bool bar_flags_set(const struct tlpb_bar_desc *bar)
{
    return bar->is_64bit || bar->prefetchable || bar->is_io;
}

static int validate_bars(const struct tlpb_devdesc *desc, const char **reason)
{
    for (unsigned i = 0; i < TLPB_BAR_COUNT; i++) {
        const struct tlpb_bar_desc *bar = &desc->bars[i];

        if (bar->size_bytes == 0) {
            if (bar_flags_set(bar))
                return reject(reason, "BAR flags set on an unimplemented BAR");
            continue;
        }
        if (!is_power_of_two(bar->size_bytes))
            return reject(reason, "BAR size is not a power of two");
        if (bar->is_io) {
            if (bar->is_64bit)
                return reject(reason, "I/O BAR cannot be 64-bit");
            if (bar->prefetchable)
                return reject(reason, "I/O BAR cannot be prefetchable");
            if (bar->size_bytes < IO_BAR_MIN_BYTES)
                return reject(reason, "I/O BAR smaller than 4 bytes");
            if (bar->size_bytes > IO_BAR_MAX_BYTES)
                return reject(reason, "I/O BAR larger than 256 bytes");
            continue;
        }
        if (bar->size_bytes < MEM_BAR_MIN_BYTES)
            return reject(reason, "memory BAR smaller than 16 bytes");
        /* PCIe endpoints must make every prefetchable BAR 64-bit. */
        if (bar->prefetchable && !bar->is_64bit)
            return reject(reason, "prefetchable memory BAR must be 64-bit");
        if (!bar->is_64bit) {
            if (bar->size_bytes > MEM32_BAR_MAX_BYTES)
                return reject(reason, "32-bit memory BAR larger than 2 GiB");
            continue;
        }
        if (i == TLPB_BAR_COUNT - 1)
            return reject(reason, "64-bit BAR in slot 5");
        /* The next slot holds the upper half of this BAR's address. */
        const struct tlpb_bar_desc *upper = &desc->bars[i + 1];
        if (upper->size_bytes != 0 || bar_flags_set(upper))
            return reject(reason, "64-bit BAR followed by another BAR");
        i++;
    }
    return 0;
}

/* One MSI-X structure (table or PBA): inside an implemented memory BAR. The
 * upper half of a 64-bit BAR has size 0 here, so it counts as unimplemented. */
static int validate_msix_region(const struct tlpb_devdesc *desc, uint8_t bar, uint32_t offset,
                                uint64_t bytes, bool is_table, const char **reason)
{
    if (bar >= TLPB_BAR_COUNT || desc->bars[bar].size_bytes == 0)
        return reject(reason, is_table ? "MSI-X table BAR not implemented"
                                       : "MSI-X PBA BAR not implemented");
    if (desc->bars[bar].is_io)
        return reject(reason, is_table ? "MSI-X table in an I/O BAR"
                                       : "MSI-X PBA in an I/O BAR");
    if (offset % MSIX_OFFSET_ALIGN)
        return reject(reason, is_table ? "MSI-X table offset not 8-byte aligned"
                                       : "MSI-X PBA offset not 8-byte aligned");
    if ((uint64_t)offset + bytes > desc->bars[bar].size_bytes)
        return reject(reason, is_table ? "MSI-X table extends past the end of its BAR"
                                       : "MSI-X PBA extends past the end of its BAR");
    return 0;
}

static int validate_msix(const struct tlpb_devdesc *desc, const char **reason)
{
    if (desc->msix_vectors == 0)
        return 0;
    if (desc->msix_vectors > MSIX_VECTORS_MAX)
        return reject(reason, "MSI-X vector count above 2048");

    uint64_t table_bytes = (uint64_t)desc->msix_vectors * MSIX_ENTRY_BYTES;
    /* One pending bit per vector, in whole QWs. */
    uint64_t pba_bytes = ((uint64_t)desc->msix_vectors + 63u) / 64u * 8u;
    int err = validate_msix_region(desc, desc->msix_table_bar, desc->msix_table_offset,
                                   table_bytes, true, reason);
    if (err)
        return err;
    err = validate_msix_region(desc, desc->msix_pba_bar, desc->msix_pba_offset, pba_bytes,
                               false, reason);
    if (err)
        return err;
    if (desc->msix_table_bar == desc->msix_pba_bar) {
        uint64_t table_start = desc->msix_table_offset;
        uint64_t pba_start = desc->msix_pba_offset;
        if (table_start < pba_start + pba_bytes && pba_start < table_start + table_bytes)
            return reject(reason, "MSI-X table and PBA overlap");
    }
    return 0;
}

int tlpb_devdesc_validate(const struct tlpb_devdesc *desc, const char **reason)
{
    /* 0xFFFF is what a read of an absent function returns. */
    if (desc->vendor_id == 0xffff)
        return reject(reason, "vendor ID 0xFFFF means no device");
    if (desc->class_code > 0xffffffu)
        return reject(reason, "class code wider than 24 bits");

    int err = validate_bars(desc, reason);
    if (err)
        return err;
    err = validate_msix(desc, reason);
    if (err)
        return err;

    switch (desc->msi_vectors) {
    case 0: case 1: case 2: case 4: case 8: case 16: case 32:
        break;
    default:
        return reject(reason, "MSI vector count not 0, 1, 2, 4, 8, 16 or 32");
    }
    if (desc->intx_pin > 4)
        return reject(reason, "INTx pin out of range");
    uint16_t mps = desc->max_payload_supported_bytes;
    if (mps < 128 || mps > 4096 || !is_power_of_two(mps))
        return reject(reason, "max payload supported not a power of two from 128 to 4096");
    return 0;
}
