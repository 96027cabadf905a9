/* Structured TLP <-> PCIe header format as on the link (non-flit mode):
 * 3DW or 4DW header, DWs big-endian, byte 0 first, payload after it.
 * Field positions follow the base specification's header figures. */
#include <errno.h>
#include <string.h>

#include "tlpb/byteorder.h"
#include "tlpb/tlp.h"

/* Fmt[2:0] */
#define FMT_3DW 0x0u
#define FMT_4DW 0x1u
#define FMT_3DW_DATA 0x2u
#define FMT_4DW_DATA 0x3u
#define FMT_PREFIX 0x4u
#define FMT_HAS_DATA 0x2u
#define FMT_IS_4DW 0x1u

/* Type[4:0] */
#define TYPE_MEM 0x00u
#define TYPE_CFG0 0x04u
#define TYPE_CPL 0x0au

/* Byte 1 */
#define B1_T9 0x80u
#define B1_TC_SHIFT 4
#define B1_T8 0x08u
#define B1_ATTR2 0x04u
#define B1_LN 0x02u
#define B1_TH 0x01u

/* Byte 2 */
#define B2_TD 0x80u
#define B2_EP 0x40u
#define B2_ATTR_SHIFT 4 /* Attr[1:0] in bits 5:4 */
#define B2_AT_MASK 0x0cu
#define B2_LEN_HI_MASK 0x03u

/* Byte 6 of a completion */
#define CPL_STATUS_SHIFT 5
#define CPL_BCM 0x10u

#define FOUR_GIB (UINT64_C(1) << 32)

static bool status_is_known(enum tlpb_cpl_status status)
{
    return status == TLPB_CPL_SC || status == TLPB_CPL_UR || status == TLPB_CPL_CRS ||
           status == TLPB_CPL_CA;
}

/* The first DW: Fmt/Type, TC, attributes, EP and Length. */
static void encode_dw0(const struct tlpb_tlp *tlp, unsigned fmt, unsigned type,
                       uint32_t length_dw, uint8_t *hdr)
{
    /* Length 1024 is encoded as 0; headers without data carry 0 (reserved). */
    uint32_t length_field = length_dw & 0x3ffu;

    hdr[0] = (uint8_t)(fmt << 5 | type);
    hdr[1] = (uint8_t)(tlp->traffic_class << B1_TC_SHIFT |
                       ((tlp->attributes & TLPB_ATTR_ID_ORDERING) ? B1_ATTR2 : 0u));
    hdr[2] = (uint8_t)((tlp->poisoned ? B2_EP : 0u) |
                       (tlp->attributes & 0x3u) << B2_ATTR_SHIFT |
                       (length_field >> 8));
    hdr[3] = (uint8_t)length_field;
}

int tlpb_tlp_encode_header(const struct tlpb_tlp *tlp, uint8_t hdr[TLPB_WIRE_HEADER_MAX])
{
    bool has_data = tlpb_tlp_has_data(tlp->kind);

    /* Only what the header fields can hold; the PCIe rules are the
     * validator's business. */
    if (tlp->traffic_class > 7 || tlp->attributes > 7 || tlp->first_be > 0xf ||
        tlp->last_be > 0xf)
        return -EINVAL;
    if (tlp->kind != TLPB_TLP_CPL && (tlp->length_dw == 0 || tlp->length_dw > TLPB_MAX_PAYLOAD_DW))
        return -EINVAL;

    memset(hdr, 0, TLPB_WIRE_HEADER_MAX);
    switch (tlp->kind) {
    case TLPB_TLP_MRD:
    case TLPB_TLP_MWR: {
        if (tlp->address & 3u)
            return -EINVAL;
        bool four_dw = tlp->address >= FOUR_GIB;
        unsigned fmt = (has_data ? FMT_HAS_DATA : 0u) | (four_dw ? FMT_IS_4DW : 0u);
        encode_dw0(tlp, fmt, TYPE_MEM, tlp->length_dw, hdr);
        tlpb_put_be16(hdr + 4, tlp->requester_id);
        hdr[6] = tlp->tag;
        hdr[7] = (uint8_t)(tlp->last_be << 4 | tlp->first_be);
        if (four_dw) {
            tlpb_put_be32(hdr + 8, (uint32_t)(tlp->address >> 32));
            tlpb_put_be32(hdr + 12, (uint32_t)tlp->address);
            return 16;
        }
        tlpb_put_be32(hdr + 8, (uint32_t)tlp->address);
        return 12;
    }
    case TLPB_TLP_CFGRD0:
    case TLPB_TLP_CFGWR0:
        if (tlp->cfg_register > 0xffcu || (tlp->cfg_register & 3u))
            return -EINVAL;
        encode_dw0(tlp, has_data ? FMT_3DW_DATA : FMT_3DW, TYPE_CFG0, tlp->length_dw, hdr);
        tlpb_put_be16(hdr + 4, tlp->requester_id);
        hdr[6] = tlp->tag;
        hdr[7] = (uint8_t)(tlp->last_be << 4 | tlp->first_be);
        tlpb_put_be16(hdr + 8, tlp->completer_id);
        /* Extended Register Number in byte 10 [3:0], Register Number in
         * byte 11 [7:2]: together the DW-aligned offset, big-endian. */
        tlpb_put_be16(hdr + 10, tlp->cfg_register);
        return 12;
    case TLPB_TLP_CPL:
    case TLPB_TLP_CPLD:
        if (!status_is_known(tlp->status) || tlp->byte_count == 0 || tlp->byte_count > 4096 ||
            tlp->lower_address > 0x7f)
            return -EINVAL;
        encode_dw0(tlp, has_data ? FMT_3DW_DATA : FMT_3DW, TYPE_CPL,
                   has_data ? tlp->length_dw : 0u, hdr);
        tlpb_put_be16(hdr + 4, tlp->completer_id);
        /* Byte Count 4096 is encoded as 0. */
        hdr[6] = (uint8_t)((unsigned)tlp->status << CPL_STATUS_SHIFT |
                           (tlp->bcm ? CPL_BCM : 0u) | ((tlp->byte_count >> 8) & 0xfu));
        hdr[7] = (uint8_t)tlp->byte_count;
        tlpb_put_be16(hdr + 8, tlp->requester_id);
        hdr[10] = tlp->tag;
        hdr[11] = tlp->lower_address;
        return 12;
    case TLPB_TLP_INVALID:
    default:
        return -EINVAL;
    }
}

static int decode_fail(const char **reason, const char *why, int err)
{
    if (reason)
        *reason = why;
    return err;
}

int tlpb_tlp_decode_wire(const uint8_t *buf, size_t len, struct tlpb_tlp *tlp,
                         const char **reason)
{
    if (len < 4)
        return decode_fail(reason, "truncated TLP header", -EMSGSIZE);

    unsigned fmt = buf[0] >> 5;
    unsigned type = buf[0] & 0x1fu;
    enum tlpb_tlp_kind kind;

    if (fmt == FMT_PREFIX)
        return decode_fail(reason, "TLP prefixes not supported", -EINVAL);
    if (type == TYPE_MEM && fmt <= FMT_4DW_DATA)
        kind = (fmt & FMT_HAS_DATA) ? TLPB_TLP_MWR : TLPB_TLP_MRD;
    else if (type == TYPE_CFG0 && fmt == FMT_3DW)
        kind = TLPB_TLP_CFGRD0;
    else if (type == TYPE_CFG0 && fmt == FMT_3DW_DATA)
        kind = TLPB_TLP_CFGWR0;
    else if (type == TYPE_CPL && fmt == FMT_3DW)
        kind = TLPB_TLP_CPL;
    else if (type == TYPE_CPL && fmt == FMT_3DW_DATA)
        kind = TLPB_TLP_CPLD;
    else
        return decode_fail(reason, "unknown or unsupported Fmt/Type", -EINVAL);

    size_t header_bytes = (fmt & FMT_IS_4DW) ? 16u : 12u;
    if (len < header_bytes)
        return decode_fail(reason, "truncated TLP header", -EMSGSIZE);

    bool is_memory = kind == TLPB_TLP_MRD || kind == TLPB_TLP_MWR;
    /* Fields that would change the TLP's meaning and that the structured
     * form cannot carry. Reserved fields are ignored, as PCIe requires. */
    if (buf[2] & B2_TD)
        return decode_fail(reason, "TLP digest not supported", -EINVAL);
    if ((buf[1] & (B1_T9 | B1_T8)) && kind != TLPB_TLP_MWR)
        return decode_fail(reason, "10-bit tags not supported", -EINVAL);
    if ((buf[1] & B1_LN) && (is_memory || tlpb_tlp_is_completion(kind)))
        return decode_fail(reason, "lightweight notification not supported", -EINVAL);
    if ((buf[1] & B1_TH) && is_memory)
        return decode_fail(reason, "TLP processing hints not supported", -EINVAL);
    if ((buf[2] & B2_AT_MASK) && is_memory)
        return decode_fail(reason, "address translation not supported", -EINVAL);

    uint32_t length_field = ((uint32_t)(buf[2] & B2_LEN_HI_MASK) << 8) | buf[3];
    uint32_t length_dw = length_field ? length_field : TLPB_MAX_PAYLOAD_DW;
    bool has_data = tlpb_tlp_has_data(kind);
    size_t payload_bytes = has_data ? (size_t)length_dw * 4u : 0u;

    if (len - header_bytes < payload_bytes)
        return decode_fail(reason, "truncated TLP payload", -EMSGSIZE);
    if (len - header_bytes > payload_bytes)
        return decode_fail(reason, has_data ? "payload longer than the Length field"
                                            : "payload on a TLP without data",
                           -EINVAL);

    struct tlpb_tlp out;
    memset(&out, 0, sizeof(out));
    out.kind = kind;
    out.traffic_class = (buf[1] >> B1_TC_SHIFT) & 0x7u;
    out.attributes = (uint8_t)(((buf[2] >> B2_ATTR_SHIFT) & 0x3u) |
                               ((buf[1] & B1_ATTR2) ? TLPB_ATTR_ID_ORDERING : 0u));
    out.poisoned = (buf[2] & B2_EP) != 0;
    out.bar_hint = TLPB_NO_BAR;
    /* A Cpl's Length is reserved (and undefined on a failed completion). */
    out.length_dw = kind == TLPB_TLP_CPL ? 0u : length_dw;

    if (tlpb_tlp_is_completion(kind)) {
        unsigned byte_count = ((unsigned)(buf[6] & 0xfu) << 8) | buf[7];
        out.completer_id = tlpb_get_be16(buf + 4);
        out.status = (enum tlpb_cpl_status)(buf[6] >> CPL_STATUS_SHIFT);
        if (!status_is_known(out.status))
            return decode_fail(reason, "reserved completion status", -EINVAL);
        out.bcm = (buf[6] & CPL_BCM) != 0;
        out.byte_count = byte_count ? byte_count : 4096u;
        out.requester_id = tlpb_get_be16(buf + 8);
        out.tag = buf[10];
        out.lower_address = buf[11] & 0x7fu;
    } else {
        out.requester_id = tlpb_get_be16(buf + 4);
        out.tag = buf[6];
        out.last_be = buf[7] >> 4;
        out.first_be = buf[7] & 0xfu;
        if (is_memory) {
            if (header_bytes == 16) {
                out.address =
                    (uint64_t)tlpb_get_be32(buf + 8) << 32 | (tlpb_get_be32(buf + 12) & ~3u);
                /* Requesters must use the 3DW form below 4 GiB. */
                if (out.address < FOUR_GIB)
                    return decode_fail(reason, "4DW memory request below 4 GiB", -EINVAL);
            } else {
                out.address = tlpb_get_be32(buf + 8) & ~3u;
            }
        } else {
            out.completer_id = tlpb_get_be16(buf + 8);
            out.cfg_register = (uint16_t)(((buf[10] & 0xfu) << 8) | (buf[11] & 0xfcu));
        }
    }

    out.payload_bytes = (uint32_t)payload_bytes;
    out.payload = payload_bytes ? buf + header_bytes : NULL;
    *tlp = out;
    return (int)(header_bytes + payload_bytes);
}
