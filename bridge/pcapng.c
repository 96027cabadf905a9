/* A minimal pcapng writer: little-endian blocks, each padded to 32 bits
 * and ending with its total length again, as the specification asks. */
#include "pcapng.h"

#include <string.h>

#include "tlpb/byteorder.h"

#define OPT_ENDOFOPT 0u
#define OPT_IF_TSRESOL 9u
#define TSRESOL_NS 9u /* 10^-9 s */

static uint32_t pad4(uint32_t n)
{
    return (n + 3u) & ~3u;
}

static int put(FILE *out, const void *bytes, size_t n)
{
    return n == 0 || fwrite(bytes, 1, n, out) == n ? 0 : -1;
}

static int put32(FILE *out, uint32_t v)
{
    uint8_t b[4];
    tlpb_put_le32(b, v);
    return put(out, b, 4);
}

int pcapng_write_header(FILE *out, uint16_t linktype)
{
    /* SHB: type, length, byte-order magic, version 1.0, section length
     * unknown (-1), no options, length. */
    uint8_t shb[28];
    tlpb_put_le32(shb, PCAPNG_BT_SHB);
    tlpb_put_le32(shb + 4, sizeof(shb));
    tlpb_put_le32(shb + 8, PCAPNG_BYTE_ORDER_MAGIC);
    tlpb_put_le16(shb + 12, 1);
    tlpb_put_le16(shb + 14, 0);
    tlpb_put_le64(shb + 16, UINT64_MAX);
    tlpb_put_le32(shb + 24, sizeof(shb));
    /* IDB: link type, reserved, snaplen 0 (no limit), if_tsresol = 9
     * (one option of 1 byte padded to 4), opt_endofopt, length. */
    uint8_t idb[32];
    tlpb_put_le32(idb, PCAPNG_BT_IDB);
    tlpb_put_le32(idb + 4, sizeof(idb));
    tlpb_put_le16(idb + 8, linktype);
    tlpb_put_le16(idb + 10, 0);
    tlpb_put_le32(idb + 12, 0);
    tlpb_put_le16(idb + 16, OPT_IF_TSRESOL);
    tlpb_put_le16(idb + 18, 1);
    memset(idb + 20, 0, 4);
    idb[20] = TSRESOL_NS;
    tlpb_put_le16(idb + 24, OPT_ENDOFOPT);
    tlpb_put_le16(idb + 26, 0);
    tlpb_put_le32(idb + 28, sizeof(idb));
    return put(out, shb, sizeof(shb)) || put(out, idb, sizeof(idb)) ? -1 : 0;
}

int pcapng_write_packet(FILE *out, uint64_t time_ns, const uint8_t *data, uint32_t len,
                        uint32_t orig_len)
{
    static const uint8_t zeros[4];
    if (orig_len < len)
        return -1;
    uint32_t padded = pad4(len);
    uint32_t total = 32u + padded;
    uint8_t head[28];
    tlpb_put_le32(head, PCAPNG_BT_EPB);
    tlpb_put_le32(head + 4, total);
    tlpb_put_le32(head + 8, 0); /* interface 0 */
    tlpb_put_le32(head + 12, (uint32_t)(time_ns >> 32));
    tlpb_put_le32(head + 16, (uint32_t)time_ns);
    tlpb_put_le32(head + 20, len); /* captured */
    tlpb_put_le32(head + 24, orig_len); /* original */
    if (put(out, head, sizeof(head)) || put(out, data, len) || put(out, zeros, padded - len) ||
        put32(out, total))
        return -1;
    return 0;
}
