/* Names and the one-line rendering of structured TLPs, for logs and the
 * trace printer. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "tlpb/tlp.h"

/* Bytes of payload shown before "...": enough to recognise a register value
 * or the start of a DMA buffer without flooding a log line. */
#define TLPB_FORMAT_PAYLOAD_BYTES 8u

const char *tlpb_tlp_kind_name(enum tlpb_tlp_kind kind)
{
    switch (kind) {
    case TLPB_TLP_MRD: return "MRd";
    case TLPB_TLP_MWR: return "MWr";
    case TLPB_TLP_CFGRD0: return "CfgRd0";
    case TLPB_TLP_CFGWR0: return "CfgWr0";
    case TLPB_TLP_CPL: return "Cpl";
    case TLPB_TLP_CPLD: return "CplD";
    case TLPB_TLP_INVALID: break;
    }
    return "invalid";
}

const char *tlpb_cpl_status_name(enum tlpb_cpl_status status)
{
    switch (status) {
    case TLPB_CPL_SC: return "SC";
    case TLPB_CPL_UR: return "UR";
    case TLPB_CPL_CRS: return "CRS";
    case TLPB_CPL_CA: return "CA";
    }
    return "reserved";
}

/* Appends like snprintf into a fixed buffer, counting what would have been
 * written so the caller can return snprintf's result. */
struct line {
    char *buf;
    size_t size;
    size_t len; /* characters produced so far, even past size */
};

__attribute__((format(printf, 2, 3)))
static void line_add(struct line *line, const char *fmt, ...)
{
    va_list ap;
    char *at = NULL;
    size_t room = 0;

    if (line->len < line->size) {
        at = line->buf + line->len;
        room = line->size - line->len;
    }
    va_start(ap, fmt);
    int n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        line->len += (size_t)n;
}

static void line_add_id(struct line *line, const char *label, uint16_t id)
{
    line_add(line, " %s %02x:%02x.%x", label, id >> 8, (id >> 3) & 0x1f, id & 0x7);
}

int tlpb_tlp_format(const struct tlpb_tlp *tlp, char *buf, size_t buf_size)
{
    struct line line = { .buf = buf, .size = buf ? buf_size : 0, .len = 0 };

    if (line.size > 0)
        buf[0] = '\0';
    line_add(&line, "%s", tlpb_tlp_kind_name(tlp->kind));

    switch (tlp->kind) {
    case TLPB_TLP_MRD:
    case TLPB_TLP_MWR:
        line_add_id(&line, "req", tlp->requester_id);
        line_add(&line, " tag 0x%02x addr 0x%" PRIx64 " len %" PRIu32 " be %x/%x",
                 tlp->tag, tlp->address, tlp->length_dw, tlp->first_be, tlp->last_be);
        break;
    case TLPB_TLP_CFGRD0:
    case TLPB_TLP_CFGWR0:
        line_add_id(&line, "req", tlp->requester_id);
        line_add(&line, " tag 0x%02x", tlp->tag);
        line_add_id(&line, "dev", tlp->completer_id);
        line_add(&line, " reg 0x%03x len %" PRIu32 " be %x/%x", tlp->cfg_register,
                 tlp->length_dw, tlp->first_be, tlp->last_be);
        break;
    case TLPB_TLP_CPL:
    case TLPB_TLP_CPLD:
        line_add_id(&line, "cpl", tlp->completer_id);
        line_add_id(&line, "req", tlp->requester_id);
        line_add(&line, " tag 0x%02x %s bc %" PRIu32 " la 0x%02x", tlp->tag,
                 tlpb_cpl_status_name(tlp->status), tlp->byte_count, tlp->lower_address);
        if (tlp->kind == TLPB_TLP_CPLD)
            line_add(&line, " len %" PRIu32, tlp->length_dw);
        if (tlp->bcm)
            line_add(&line, " bcm");
        break;
    case TLPB_TLP_INVALID:
    default:
        line_add(&line, "(%d)", (int)tlp->kind);
        break;
    }

    if (tlp->bar_hint != TLPB_NO_BAR)
        line_add(&line, " bar %d", tlp->bar_hint);
    if (tlp->traffic_class)
        line_add(&line, " tc %u", tlp->traffic_class);
    if (tlp->attributes) {
        line_add(&line, " attr");
        if (tlp->attributes & TLPB_ATTR_NO_SNOOP)
            line_add(&line, " ns");
        if (tlp->attributes & TLPB_ATTR_RELAXED_ORDERING)
            line_add(&line, " ro");
        if (tlp->attributes & TLPB_ATTR_ID_ORDERING)
            line_add(&line, " ido");
        if (tlp->attributes & ~(TLPB_ATTR_NO_SNOOP | TLPB_ATTR_RELAXED_ORDERING |
                                TLPB_ATTR_ID_ORDERING))
            line_add(&line, " 0x%x", tlp->attributes);
    }
    if (tlp->poisoned)
        line_add(&line, " EP");

    if (tlp->payload && tlp->payload_bytes > 0) {
        uint32_t shown = tlp->payload_bytes < TLPB_FORMAT_PAYLOAD_BYTES
                             ? tlp->payload_bytes : TLPB_FORMAT_PAYLOAD_BYTES;
        line_add(&line, " data");
        for (uint32_t i = 0; i < shown; i++)
            line_add(&line, " %02x", tlp->payload[i]);
        if (shown < tlp->payload_bytes)
            line_add(&line, " ...");
    }

    return line.len > INT32_MAX ? INT32_MAX : (int)line.len;
}
