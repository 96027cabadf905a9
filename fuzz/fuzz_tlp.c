/* TLP conversion and validation: PCIe wire headers (3DW/4DW) both ways,
 * protobuf <-> structured form both ways, the validator, the completion
 * builders, range setting and splitting. Besides memory safety it checks
 * round trips: what decodes encodes and decodes to the same TLP.
 *
 * Input: byte 0 picks the mode (0 wire bytes, 1 a protobuf Tlp, 2 ranges);
 * the rest is that mode's input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tlpb/wire.h"

static bool tlp_equal(const struct tlpb_tlp *a, const struct tlpb_tlp *b)
{
    return a->kind == b->kind && a->requester_id == b->requester_id && a->tag == b->tag &&
           a->traffic_class == b->traffic_class && a->attributes == b->attributes &&
           a->poisoned == b->poisoned && a->length_dw == b->length_dw &&
           a->first_be == b->first_be && a->last_be == b->last_be && a->address == b->address &&
           a->completer_id == b->completer_id && a->cfg_register == b->cfg_register &&
           a->status == b->status && a->byte_count == b->byte_count &&
           a->lower_address == b->lower_address && a->bcm == b->bcm &&
           a->bar_hint == b->bar_hint && a->payload_bytes == b->payload_bytes &&
           (a->payload_bytes == 0 || memcmp(a->payload, b->payload, a->payload_bytes) == 0);
}

/* The fields the PCIe header of tlp's kind carries (others, such as an
 * address on a config request, are not on the wire and do not matter). */
static bool tlp_equal_on_wire(const struct tlpb_tlp *a, const struct tlpb_tlp *b)
{
    bool same = a->kind == b->kind && a->requester_id == b->requester_id && a->tag == b->tag &&
                a->traffic_class == b->traffic_class && a->attributes == b->attributes &&
                a->poisoned == b->poisoned && a->payload_bytes == b->payload_bytes &&
                (a->payload_bytes == 0 || memcmp(a->payload, b->payload, a->payload_bytes) == 0);
    switch (a->kind) {
    case TLPB_TLP_MRD:
    case TLPB_TLP_MWR:
        return same && a->length_dw == b->length_dw && a->first_be == b->first_be &&
               a->last_be == b->last_be && a->address == b->address;
    case TLPB_TLP_CFGRD0:
    case TLPB_TLP_CFGWR0:
        return same && a->length_dw == b->length_dw && a->first_be == b->first_be &&
               a->last_be == b->last_be && a->completer_id == b->completer_id &&
               a->cfg_register == b->cfg_register;
    case TLPB_TLP_CPLD:
        same = same && a->length_dw == b->length_dw;
        /* fall through */
    default:
        return same && a->completer_id == b->completer_id && a->status == b->status &&
               a->byte_count == b->byte_count && a->lower_address == b->lower_address &&
               a->bcm == b->bcm;
    }
}

static void check_same(const struct tlpb_tlp *want, const struct tlpb_tlp *got, bool on_wire)
{
    if (on_wire ? tlp_equal_on_wire(want, got) : tlp_equal(want, got))
        return;
    char a[256], b[256];
    tlpb_tlp_format(want, a, sizeof(a));
    tlpb_tlp_format(got, b, sizeof(b));
    fprintf(stderr, "round trip changed the TLP:\n  %s\n  %s\n", a, b);
    FUZZ_CHECK(0);
}

/* Structured -> protobuf -> bytes -> protobuf -> structured: the same TLP. */
static void check_pb_round_trip(const struct tlpb_tlp *tlp)
{
    Tlpb__Tlp pb = TLPB__TLP__INIT;
    tlpb_tlp_to_pb(&pb, tlp);
    size_t n = tlpb__tlp__get_packed_size(&pb);
    uint8_t *buf = malloc(n ? n : 1);
    FUZZ_CHECK(buf != NULL);
    tlpb__tlp__pack(&pb, buf);
    Tlpb__Tlp *back = tlpb__tlp__unpack(NULL, n, buf);
    FUZZ_CHECK(back != NULL);
    struct tlpb_tlp again;
    const char *reason = NULL;
    FUZZ_CHECK(tlpb_tlp_from_pb(&again, back, &reason) == 0);
    check_same(tlp, &again, false);
    tlpb__tlp__free_unpacked(back, NULL);
    free(buf);
}

/* Header + payload on the wire and back: the same TLP, in what the header
 * carries. Returns false when the TLP has no wire form. */
static bool check_wire_round_trip(const struct tlpb_tlp *tlp)
{
    uint8_t hdr[TLPB_WIRE_HEADER_MAX];
    int hlen = tlpb_tlp_encode_header(tlp, hdr);
    if (hlen < 0)
        return false;
    FUZZ_CHECK(hlen == 12 || hlen == 16);
    size_t len = (size_t)hlen + tlp->payload_bytes;
    uint8_t *buf = malloc(len);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, hdr, (size_t)hlen);
    if (tlp->payload_bytes)
        memcpy(buf + hlen, tlp->payload, tlp->payload_bytes);
    struct tlpb_tlp back;
    const char *reason = NULL;
    FUZZ_CHECK(tlpb_tlp_decode_wire(buf, len, &back, &reason) == (int)len);
    check_same(tlp, &back, true);
    free(buf);
    return true;
}

/* What the receivers do with a TLP that converted: validate it, and for a
 * valid request build the completions a completer would send, which must
 * themselves be valid. */
static void validate_and_complete(const struct tlpb_tlp *tlp, bool unsplit)
{
    struct tlpb_tlp_limits lim = {.max_payload_bytes = 4096, .unsplit = unsplit};
    const char *reason = NULL;
    char line[512];
    tlpb_tlp_format(tlp, line, sizeof(line));
    if (tlpb_tlp_validate(tlp, &lim, &reason) != 0) {
        FUZZ_CHECK(reason != NULL);
        return;
    }
    tlpb_tlp_request_bytes(tlp);
    tlpb_tlp_first_byte_address(tlp);
    if (!tlpb_tlp_is_non_posted(tlp->kind))
        return;
    struct tlpb_tlp cpl;
    tlpb_completion_error_for(&cpl, tlp, 0x0100, TLPB_CPL_UR);
    FUZZ_CHECK(tlpb_tlp_validate(&cpl, &lim, &reason) == 0);
    tlpb_completion_error_for(&cpl, tlp, 0x0100, TLPB_CPL_CA);
    FUZZ_CHECK(tlpb_tlp_validate(&cpl, &lim, &reason) == 0);
    if (tlp->kind == TLPB_TLP_MRD || tlp->kind == TLPB_TLP_CFGRD0) {
        static const uint8_t zeros[4096 + 8];
        uint32_t total = tlpb_tlp_request_bytes(tlp);
        uint64_t addr = tlpb_tlp_first_byte_address(tlp);
        uint32_t chunk = total;
        if (!unsplit && tlp->kind == TLPB_TLP_MRD && total > 0)
            chunk = tlpb_split_completion_bytes(addr, total, 4096, 64);
        if (chunk <= 4096) {
            tlpb_completion_for(&cpl, tlp, 0x0100, addr, chunk, total);
            cpl.payload = zeros;
            FUZZ_CHECK(cpl.payload_bytes <= sizeof(zeros));
            FUZZ_CHECK(tlpb_tlp_validate(&cpl, &lim, &reason) == 0);
        }
    }
}

static void fuzz_wire(const uint8_t *data, size_t size)
{
    struct tlpb_tlp tlp;
    const char *reason = NULL;
    int rc = tlpb_tlp_decode_wire(data, size, &tlp, &reason);
    if (rc < 0) {
        FUZZ_CHECK(reason != NULL);
        return;
    }
    FUZZ_CHECK((size_t)rc == size);
    /* Everything that decodes has a wire form. */
    FUZZ_CHECK(check_wire_round_trip(&tlp));
    check_pb_round_trip(&tlp);
    validate_and_complete(&tlp, false);
    validate_and_complete(&tlp, true);
}

static void fuzz_pb(const uint8_t *data, size_t size)
{
    Tlpb__Tlp *pb = tlpb__tlp__unpack(NULL, size, data);
    if (!pb)
        return;
    struct tlpb_tlp tlp;
    const char *reason = NULL;
    if (tlpb_tlp_from_pb(&tlp, pb, &reason) != 0) {
        FUZZ_CHECK(reason != NULL);
    } else {
        check_pb_round_trip(&tlp);
        struct tlpb_tlp_limits strict = {.max_payload_bytes = 4096};
        /* A valid TLP's payload matches its length, so its wire form is
         * exact. */
        if (tlpb_tlp_validate(&tlp, &strict, &reason) == 0)
            FUZZ_CHECK(check_wire_round_trip(&tlp));
        validate_and_complete(&tlp, false);
        validate_and_complete(&tlp, true);
    }
    tlpb__tlp__free_unpacked(pb, NULL);
}

static uint64_t take(const uint8_t **data, size_t *size, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && *size; i++, (*data)++, (*size)--)
        v |= (uint64_t)**data << (8 * i);
    return v;
}

static void fuzz_ranges(const uint8_t *data, size_t size)
{
    uint64_t addr = take(&data, &size, 8);
    uint32_t len = (uint32_t)take(&data, &size, 4) % (2u * 1024u * 1024u);
    unsigned sel = (unsigned)take(&data, &size, 1);
    uint32_t max = sel % 6 == 5 ? 0 : 128u << (sel % 6); /* 0, 128..4096 */
    uint32_t rcb = (sel & 0x40) ? 128 : 64;

    /* A range as one request (fast mode) and as PCIe requests. */
    struct tlpb_tlp req = {.kind = (sel & 0x80) ? TLPB_TLP_MWR : TLPB_TLP_MRD,
                           .bar_hint = TLPB_NO_BAR};
    if (tlpb_tlp_set_mem_range(&req, addr, len) == 0) {
        FUZZ_CHECK(tlpb_tlp_request_bytes(&req) == len);
        if (len)
            FUZZ_CHECK(tlpb_tlp_first_byte_address(&req) == addr);
        if (req.kind == TLPB_TLP_MWR)
            req.payload_bytes = req.length_dw * 4; /* lengths only: no payload read */
        struct tlpb_tlp_limits fast = {.max_payload_bytes = 4096, .unsplit = true};
        const char *reason = NULL;
        static const uint8_t zeros[TLPB_UNSPLIT_MAX_BYTES + 8];
        req.payload = req.payload_bytes ? zeros : NULL;
        /* Whether the range is acceptable is the validator's call. */
        if (req.payload_bytes <= sizeof(zeros))
            tlpb_tlp_validate(&req, &fast, &reason);
    }
    if (addr + len < addr)
        return;

    uint32_t limit = max ? max : 4096;
    uint64_t a = addr;
    for (uint32_t remaining = len; remaining;) {
        uint32_t n = tlpb_split_request_bytes(a, remaining, max);
        FUZZ_CHECK(n > 0 && n <= remaining && n <= limit);
        FUZZ_CHECK(a / TLPB_PAGE_BYTES == (a + n - 1) / TLPB_PAGE_BYTES);
        a += n;
        remaining -= n;
    }
    FUZZ_CHECK(tlpb_split_request_bytes(addr, 0, max) == 0);

    /* Completions for one read request (at most 4 KiB). */
    uint32_t rlen = len % 4097;
    a = addr;
    for (uint32_t remaining = rlen; remaining;) {
        uint32_t n = tlpb_split_completion_bytes(a, remaining, max, rcb);
        if (limit < rcb) {
            FUZZ_CHECK(n == 0);
            break;
        }
        FUZZ_CHECK(n > 0 && n <= remaining && n <= limit);
        if (n < remaining)
            FUZZ_CHECK((a + n) % rcb == 0);
        a += n;
        remaining -= n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0)
        fuzz_wire(data, size);
    else if (mode == 1)
        fuzz_pb(data, size);
    else
        fuzz_ranges(data, size);
    return 0;
}
