/* Envelope decoding and the conversions between the structured forms used
 * in C and their protobuf messages. Everything coming from a peer is range
 * checked here, before any other code sees it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tlpb/wire.h"

Tlpb__Envelope *tlpb_envelope_decode(const uint8_t *frame, size_t len, const char **reason)
{
    Tlpb__Envelope *env = tlpb__envelope__unpack(NULL, len, frame);
    if (!env) {
        *reason = "frame is not a valid protobuf Envelope";
        return NULL;
    }
    if (env->body_case == TLPB__ENVELOPE__BODY__NOT_SET) {
        *reason = "Envelope carries no message";
        tlpb__envelope__free_unpacked(env, NULL);
        return NULL;
    }
    return env;
}

void tlpb_envelope_free(Tlpb__Envelope *env)
{
    if (env)
        tlpb__envelope__free_unpacked(env, NULL);
}

int tlpb_tlp_from_pb(struct tlpb_tlp *tlp, const Tlpb__Tlp *pb, const char **reason)
{
    memset(tlp, 0, sizeof(*tlp));
    switch (pb->kind) {
    case TLPB__TLP_KIND__TLP_MRD:
    case TLPB__TLP_KIND__TLP_MWR:
    case TLPB__TLP_KIND__TLP_CFGRD0:
    case TLPB__TLP_KIND__TLP_CFGWR0:
    case TLPB__TLP_KIND__TLP_CPL:
    case TLPB__TLP_KIND__TLP_CPLD:
        break;
    default:
        *reason = "unknown TLP kind";
        return -ERANGE;
    }
    /* Each field that does not fit its PCIe width is named, so the peer
     * learns exactly what it got wrong. */
    if (pb->requester_id > 0xFFFF) {
        *reason = "requester_id wider than 16 bits";
        return -ERANGE;
    }
    if (pb->completer_id > 0xFFFF) {
        *reason = "completer_id wider than 16 bits";
        return -ERANGE;
    }
    if (pb->tag > 0xFF) {
        *reason = "tag wider than 8 bits";
        return -ERANGE;
    }
    if (pb->first_be > 0xF) {
        *reason = "first_be wider than 4 bits";
        return -ERANGE;
    }
    if (pb->last_be > 0xF) {
        *reason = "last_be wider than 4 bits";
        return -ERANGE;
    }
    if (pb->traffic_class > 7) {
        *reason = "traffic_class above 7";
        return -ERANGE;
    }
    if (pb->attributes > 7) {
        *reason = "attributes wider than 3 bits";
        return -ERANGE;
    }
    if (pb->cfg_register > 0xFFC) {
        *reason = "cfg_register above 0xFFC";
        return -ERANGE;
    }
    if (pb->lower_address > 0x7F) {
        *reason = "lower_address wider than 7 bits";
        return -ERANGE;
    }
    switch (pb->status) {
    case TLPB__COMPLETION_STATUS__CPL_SC:
    case TLPB__COMPLETION_STATUS__CPL_UR:
    case TLPB__COMPLETION_STATUS__CPL_CRS:
    case TLPB__COMPLETION_STATUS__CPL_CA:
        break;
    default:
        *reason = "unknown completion status";
        return -ERANGE;
    }
    if (pb->bar_hint > TLPB_BAR_COUNT) {
        *reason = "bar_hint above 6 (BAR index + 1)";
        return -ERANGE;
    }
    if (pb->payload.len > TLPB_UNSPLIT_MAX_BYTES || pb->length_dw > TLPB_UNSPLIT_MAX_BYTES / 4 ||
        pb->byte_count > TLPB_UNSPLIT_MAX_BYTES) {
        *reason = "length above the largest TLP this protocol carries";
        return -ERANGE;
    }
    tlp->kind = (enum tlpb_tlp_kind)pb->kind;
    tlp->requester_id = (uint16_t)pb->requester_id;
    tlp->tag = (uint8_t)pb->tag;
    tlp->traffic_class = (uint8_t)pb->traffic_class;
    tlp->attributes = (uint8_t)pb->attributes;
    tlp->poisoned = pb->poisoned;
    tlp->length_dw = pb->length_dw;
    tlp->first_be = (uint8_t)pb->first_be;
    tlp->last_be = (uint8_t)pb->last_be;
    tlp->address = pb->address;
    tlp->completer_id = (uint16_t)pb->completer_id;
    tlp->cfg_register = (uint16_t)pb->cfg_register;
    tlp->status = (enum tlpb_cpl_status)pb->status;
    tlp->byte_count = pb->byte_count;
    tlp->lower_address = (uint8_t)pb->lower_address;
    tlp->bcm = pb->bcm;
    tlp->bar_hint = pb->bar_hint ? (int8_t)(pb->bar_hint - 1) : TLPB_NO_BAR;
    tlp->payload_bytes = (uint32_t)pb->payload.len;
    tlp->payload = pb->payload.data;
    tlp->sim_time_ps = pb->sim_time_ps;
    return 0;
}

void tlpb_tlp_to_pb(Tlpb__Tlp *pb, const struct tlpb_tlp *tlp)
{
    tlpb__tlp__init(pb);
    pb->kind = (Tlpb__TlpKind)tlp->kind;
    pb->requester_id = tlp->requester_id;
    pb->tag = tlp->tag;
    pb->address = tlp->address;
    pb->length_dw = tlp->length_dw;
    pb->first_be = tlp->first_be;
    pb->last_be = tlp->last_be;
    pb->traffic_class = tlp->traffic_class;
    pb->attributes = tlp->attributes;
    pb->poisoned = tlp->poisoned;
    pb->completer_id = tlp->completer_id;
    pb->cfg_register = tlp->cfg_register;
    pb->status = (Tlpb__CompletionStatus)tlp->status;
    pb->byte_count = tlp->byte_count;
    pb->lower_address = tlp->lower_address;
    pb->bcm = tlp->bcm;
    pb->bar_hint = tlp->bar_hint >= 0 ? (uint32_t)tlp->bar_hint + 1 : 0;
    pb->payload.len = tlp->payload_bytes;
    pb->payload.data = (uint8_t *)tlp->payload;
    pb->sim_time_ps = tlp->sim_time_ps;
}

void tlpb_devdesc_to_pb(struct tlpb_devdesc_pb *out, const struct tlpb_devdesc *desc)
{
    memset(out, 0, sizeof(*out));
    Tlpb__DeviceDescription *pb = &out->msg;
    tlpb__device_description__init(pb);
    pb->vendor_id = desc->vendor_id;
    pb->device_id = desc->device_id;
    pb->subsystem_vendor_id = desc->subsystem_vendor_id;
    pb->subsystem_id = desc->subsystem_id;
    pb->revision = desc->revision;
    pb->class_code = desc->class_code;
    for (unsigned i = 0; i < TLPB_BAR_COUNT; i++) {
        tlpb__bar__init(&out->bars[i]);
        out->bars[i].size_bytes = desc->bars[i].size_bytes;
        out->bars[i].is_64bit = desc->bars[i].is_64bit;
        out->bars[i].prefetchable = desc->bars[i].prefetchable;
        out->bars[i].is_io = desc->bars[i].is_io;
        out->bar_ptrs[i] = &out->bars[i];
    }
    pb->n_bars = TLPB_BAR_COUNT;
    pb->bars = out->bar_ptrs;
    pb->msix_vectors = desc->msix_vectors;
    pb->msix_table_bar = desc->msix_table_bar;
    pb->msix_table_offset = desc->msix_table_offset;
    pb->msix_pba_bar = desc->msix_pba_bar;
    pb->msix_pba_offset = desc->msix_pba_offset;
    pb->msi_vectors = desc->msi_vectors;
    pb->msi_64bit = desc->msi_64bit;
    pb->intx_pin = desc->intx_pin;
    pb->max_payload_supported_bytes = desc->max_payload_supported_bytes;
}

int tlpb_devdesc_from_pb(struct tlpb_devdesc *desc, const Tlpb__DeviceDescription *pb,
                         const char **reason)
{
    memset(desc, 0, sizeof(*desc));
    /* The first field out of range is named in the reason. */
#define DESC_FIELD_MAX(field, max)                                                               \
    if (pb->field > (max)) {                                                                     \
        *reason = "device description field out of range: " #field " above " #max;             \
        return -ERANGE;                                                                          \
    }
    DESC_FIELD_MAX(vendor_id, 0xFFFF)
    DESC_FIELD_MAX(device_id, 0xFFFF)
    DESC_FIELD_MAX(subsystem_vendor_id, 0xFFFF)
    DESC_FIELD_MAX(subsystem_id, 0xFFFF)
    DESC_FIELD_MAX(revision, 0xFF)
    DESC_FIELD_MAX(class_code, 0xFFFFFF)
    DESC_FIELD_MAX(n_bars, 6)
    DESC_FIELD_MAX(msix_vectors, 2048)
    DESC_FIELD_MAX(msix_table_bar, 5)
    DESC_FIELD_MAX(msix_pba_bar, 5)
    DESC_FIELD_MAX(msi_vectors, 32)
    DESC_FIELD_MAX(intx_pin, 4)
    DESC_FIELD_MAX(max_payload_supported_bytes, 4096)
#undef DESC_FIELD_MAX
    desc->vendor_id = (uint16_t)pb->vendor_id;
    desc->device_id = (uint16_t)pb->device_id;
    desc->subsystem_vendor_id = (uint16_t)pb->subsystem_vendor_id;
    desc->subsystem_id = (uint16_t)pb->subsystem_id;
    desc->revision = (uint8_t)pb->revision;
    desc->class_code = pb->class_code;
    for (size_t i = 0; i < pb->n_bars; i++) {
        desc->bars[i].size_bytes = pb->bars[i]->size_bytes;
        desc->bars[i].is_64bit = pb->bars[i]->is_64bit;
        desc->bars[i].prefetchable = pb->bars[i]->prefetchable;
        desc->bars[i].is_io = pb->bars[i]->is_io;
    }
    desc->msix_vectors = (uint16_t)pb->msix_vectors;
    desc->msix_table_bar = (uint8_t)pb->msix_table_bar;
    desc->msix_table_offset = pb->msix_table_offset;
    desc->msix_pba_bar = (uint8_t)pb->msix_pba_bar;
    desc->msix_pba_offset = pb->msix_pba_offset;
    desc->msi_vectors = (uint8_t)pb->msi_vectors;
    desc->msi_64bit = pb->msi_64bit;
    desc->intx_pin = (uint8_t)pb->intx_pin;
    desc->max_payload_supported_bytes = (uint16_t)pb->max_payload_supported_bytes;
    return tlpb_devdesc_validate(desc, reason);
}

const char *tlpb_role_name(Tlpb__Role role)
{
    switch (role) {
    case TLPB__ROLE__ROLE_HOST:
        return "host";
    case TLPB__ROLE__ROLE_SIMULATOR:
        return "simulator";
    case TLPB__ROLE__ROLE_CONTROL:
        return "control";
    default:
        return "unspecified";
    }
}

const char *tlpb_message_name(Tlpb__Envelope__BodyCase body)
{
    switch (body) {
    case TLPB__ENVELOPE__BODY_HELLO:
        return "Hello";
    case TLPB__ENVELOPE__BODY_HELLO_REPLY:
        return "HelloReply";
    case TLPB__ENVELOPE__BODY_TLP:
        return "Tlp";
    case TLPB__ENVELOPE__BODY_INTERRUPT:
        return "Interrupt";
    case TLPB__ENVELOPE__BODY_RESET:
        return "Reset";
    case TLPB__ENVELOPE__BODY_EVENT:
        return "Event";
    case TLPB__ENVELOPE__BODY_ERROR:
        return "Error";
    case TLPB__ENVELOPE__BODY_CONTROL_REQUEST:
        return "ControlRequest";
    case TLPB__ENVELOPE__BODY_CONTROL_REPLY:
        return "ControlReply";
    case TLPB__ENVELOPE__BODY_TIME_SYNC:
        return "TimeSync";
    case TLPB__ENVELOPE__BODY_GUEST_MEMORY:
        return "GuestMemory";
    case TLPB__ENVELOPE__BODY_RING_SETUP:
        return "RingSetup";
    case TLPB__ENVELOPE__BODY_DMA_CONTEXT:
        return "DmaContext";
    default:
        return "unknown message";
    }
}

const char *tlpb_reset_kind_name(Tlpb__ResetKind kind)
{
    switch (kind) {
    case TLPB__RESET_KIND__RESET_FUNCTION_LEVEL:
        return "FLR";
    case TLPB__RESET_KIND__RESET_HOT:
        return "hot reset";
    default:
        return "unknown reset kind";
    }
}

const char *tlpb_interrupt_kind_name(Tlpb__InterruptKind kind)
{
    switch (kind) {
    case TLPB__INTERRUPT_KIND__IRQ_MSIX:
        return "MSI-X";
    case TLPB__INTERRUPT_KIND__IRQ_MSI:
        return "MSI";
    case TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT:
        return "INTx assert";
    case TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT:
        return "INTx deassert";
    default:
        return "unknown interrupt kind";
    }
}

const char *tlpb_event_kind_name(Tlpb__EventKind kind)
{
    switch (kind) {
    case TLPB__EVENT_KIND__EVENT_SIMULATOR_ATTACHED:
        return "simulator attached";
    case TLPB__EVENT_KIND__EVENT_SIMULATOR_DETACHED:
        return "simulator detached";
    case TLPB__EVENT_KIND__EVENT_BACKEND_CHANGED:
        return "backend changed";
    default:
        return "unknown event kind";
    }
}

const char *tlpb_malformed_tlp_reason(char *dst, size_t dst_size, const Tlpb__Tlp *pb,
                                      const char *field)
{
    if (pb->kind >= TLPB__TLP_KIND__TLP_MRD && pb->kind <= TLPB__TLP_KIND__TLP_CPLD)
        snprintf(dst, dst_size, "malformed TLP (%s, tag %u): %s",
                 tlpb_tlp_kind_name((enum tlpb_tlp_kind)pb->kind), pb->tag, field);
    else /* an unknown kind has no name: its number is what the peer sent */
        snprintf(dst, dst_size, "malformed TLP (kind %u, tag %u): %s", (unsigned)pb->kind,
                 pb->tag, field);
    return dst;
}
