/* Config space built from a peer's device description, as the bridge does
 * for a simulator's Hello: protobuf -> description (range checks and
 * validation) -> config space, then a sequence of config reads and writes,
 * resets and BAR decodes. Checked: the description survives a protobuf
 * round trip; the identity registers never change; derived values stay in
 * their documented ranges; a decoded request lands inside an implemented,
 * enabled memory BAR.
 *
 * Input: length(2) then that many bytes of a protobuf DeviceDescription,
 * then operations of 8 bytes each: opcode, register(2), value(4), byte
 * enables or BAR hint(1). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tlpb/cfgspace.h"
#include "tlpb/wire.h"

static size_t packed_description(const struct tlpb_devdesc *desc, uint8_t **out)
{
    struct tlpb_devdesc_pb pb;
    tlpb_devdesc_to_pb(&pb, desc);
    size_t n = tlpb__device_description__get_packed_size(&pb.msg);
    *out = malloc(n ? n : 1);
    FUZZ_CHECK(*out != NULL);
    tlpb__device_description__pack(&pb.msg, *out);
    return n;
}

static void check_round_trip(const struct tlpb_devdesc *desc)
{
    uint8_t *bytes;
    size_t n = packed_description(desc, &bytes);
    Tlpb__DeviceDescription *pb = tlpb__device_description__unpack(NULL, n, bytes);
    FUZZ_CHECK(pb != NULL);
    struct tlpb_devdesc again;
    const char *reason = NULL;
    FUZZ_CHECK(tlpb_devdesc_from_pb(&again, pb, &reason) == 0);
    uint8_t *bytes2;
    size_t n2 = packed_description(&again, &bytes2);
    FUZZ_CHECK(n2 == n && memcmp(bytes, bytes2, n) == 0);
    free(bytes2);
    tlpb__device_description__free_unpacked(pb, NULL);
    free(bytes);
}

static bool is_pow2_in(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

static void check_invariants(const struct tlpb_cfgspace *cfg)
{
    const struct tlpb_devdesc *d = &cfg->desc;
    FUZZ_CHECK(tlpb_cfgspace_read(cfg, 0x00) == ((uint32_t)d->device_id << 16 | d->vendor_id));
    FUZZ_CHECK((tlpb_cfgspace_read(cfg, 0x08) >> 8) == d->class_code);
    FUZZ_CHECK(is_pow2_in(tlpb_cfg_max_payload_bytes(cfg), 128, 4096));
    FUZZ_CHECK(tlpb_cfg_max_payload_bytes(cfg) <= d->max_payload_supported_bytes ||
               d->max_payload_supported_bytes < 128);
    FUZZ_CHECK(is_pow2_in(tlpb_cfg_max_read_request_bytes(cfg), 128, 4096));
    tlpb_cfg_memory_enabled(cfg);
    tlpb_cfg_bus_master_enabled(cfg);
    tlpb_cfg_intx_disabled(cfg);
    tlpb_cfg_msix_enabled(cfg);
    tlpb_cfg_msix_function_masked(cfg);
    tlpb_cfg_msi_enabled(cfg);
    tlpb_cfg_extended_tags_enabled(cfg);
    for (unsigned bar = 0; bar < TLPB_BAR_COUNT; bar++) {
        uint64_t base = tlpb_cfg_bar_address(cfg, bar);
        if (d->bars[bar].size_bytes == 0)
            FUZZ_CHECK(base == 0 || (bar > 0 && d->bars[bar - 1].is_64bit));
        else
            FUZZ_CHECK((base & (d->bars[bar].size_bytes - 1)) == 0);
    }
}

static void check_decoded(const struct tlpb_cfgspace *cfg, int bar, uint64_t offset,
                          uint64_t span)
{
    if (bar < 0)
        return;
    const struct tlpb_bar_desc *b = &cfg->desc.bars[bar];
    FUZZ_CHECK(bar < TLPB_BAR_COUNT && b->size_bytes != 0 && !b->is_io);
    FUZZ_CHECK(offset < b->size_bytes && span <= b->size_bytes - offset);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t desc_len = (size_t)(data[0] | data[1] << 8);
    data += 2;
    size -= 2;
    if (desc_len > size)
        return 0;
    Tlpb__DeviceDescription *pb = tlpb__device_description__unpack(NULL, desc_len, data);
    if (!pb)
        return 0;
    struct tlpb_devdesc desc;
    const char *reason = NULL;
    int rc = tlpb_devdesc_from_pb(&desc, pb, &reason);
    tlpb__device_description__free_unpacked(pb, NULL);
    if (rc != 0) {
        FUZZ_CHECK(reason != NULL);
        return 0;
    }
    FUZZ_CHECK(tlpb_devdesc_validate(&desc, &reason) == 0);
    check_round_trip(&desc);
    data += desc_len;
    size -= desc_len;

    static struct tlpb_cfgspace cfg;
    tlpb_cfgspace_init(&cfg, &desc);
    check_invariants(&cfg);
    for (; size >= 8; data += 8, size -= 8) {
        unsigned op = data[0] % 5;
        uint16_t reg = (uint16_t)((data[1] | data[2] << 8) & 0xffc);
        uint32_t value = (uint32_t)data[3] | (uint32_t)data[4] << 8 | (uint32_t)data[5] << 16 |
                         (uint32_t)data[6] << 24;
        uint8_t arg = data[7];
        switch (op) {
        case 0:
            tlpb_cfgspace_read(&cfg, reg);
            break;
        case 1: {
            unsigned changes = tlpb_cfgspace_write(&cfg, reg, value, arg & 0xf);
            /* What the SDK and the bridge do with an FLR request. */
            if (changes & TLPB_CFG_FLR_REQUESTED)
                tlpb_cfgspace_reset(&cfg);
            break;
        }
        case 2:
            tlpb_cfgspace_reset(&cfg);
            break;
        case 3: {
            /* An address near a programmed BAR: BAR base + offset. */
            uint64_t base = tlpb_cfg_bar_address(&cfg, arg % TLPB_BAR_COUNT);
            uint64_t addr = base + (value & 0xffffff) - ((arg & 0x80) ? 0x800000 : 0);
            uint32_t len = (uint32_t)reg + 1;
            uint64_t offset = 0;
            int bar = tlpb_cfg_decode_address(&cfg, addr, len, &offset);
            check_decoded(&cfg, bar, offset, len);
            if (bar >= 0)
                FUZZ_CHECK(tlpb_cfg_memory_enabled(&cfg));
            break;
        }
        default: {
            struct tlpb_tlp tlp = {.kind = (value & 1) ? TLPB_TLP_MWR : TLPB_TLP_MRD,
                                   .length_dw = (uint32_t)(reg >> 2) + 1,
                                   .address = tlpb_cfg_bar_address(&cfg, (arg >> 4) % 6) +
                                              (value & ~3u & 0xfffff),
                                   .bar_hint = (int8_t)((arg & 0xf) < 7 ? (arg & 0xf) - 1 : 7)};
            uint64_t offset = 0;
            int bar = tlpb_cfg_decode_request(&cfg, &tlp, &offset);
            check_decoded(&cfg, bar, offset, (uint64_t)tlp.length_dw * 4);
            break;
        }
        }
        check_invariants(&cfg);
    }
    return 0;
}
