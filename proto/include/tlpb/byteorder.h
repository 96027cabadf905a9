/* Byte order of bytes in memory: little-endian for PCIe payloads, config
 * space, MMIO values and our frame length prefix; big-endian for TLP headers
 * as the PCIe specification draws them. The one set of load/store helpers
 * for every part of the project built against the wire library. */
#ifndef TLPB_BYTEORDER_H
#define TLPB_BYTEORDER_H

#include <stdint.h>

static inline uint16_t tlpb_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static inline uint32_t tlpb_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t tlpb_get_le64(const uint8_t *p)
{
    return (uint64_t)tlpb_get_le32(p) | (uint64_t)tlpb_get_le32(p + 4) << 32;
}

static inline void tlpb_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void tlpb_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void tlpb_put_le64(uint8_t *p, uint64_t v)
{
    tlpb_put_le32(p, (uint32_t)v);
    tlpb_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t tlpb_get_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t tlpb_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void tlpb_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void tlpb_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The bits of a DW that a PCIe byte-enable nibble selects (bit i -> byte i). */
static inline uint32_t tlpb_byte_enable_mask(uint8_t be)
{
    uint32_t mask = 0;
    for (unsigned i = 0; i < 4; i++)
        if (be & (1u << i))
            mask |= 0xFFu << (8 * i);
    return mask;
}

#endif
