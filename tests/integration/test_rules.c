/* The protocol's error rules (docs/protocol.md, "Errors", "Address
 * decode"), the same for every backend, checked against a running
 * tlpbridged with raw peers:
 * - a TLP field that does not fit its PCIe width ends the connection with
 *   an Error naming the field (tag 256, TC 8, byte enables 0x10, bar_hint 7,
 *   requester 0x10000, kind 99), and no completion;
 * - the UR the bridge builds for a rejected request is well formed (byte
 *   count = the bytes owed, the device's completer ID, the lower address of
 *   the first byte) and passes our own validator;
 * - unsplit DMA is granted only on a fast device: on a strict one an 8 KiB
 *   MRd or a 16 KiB MWr from a host is malformed;
 * - a memory request is decoded by its address and Memory Space Enable,
 *   never by bar_hint, with the same answer (UR) from fallback, hlsim and an
 *   external simulator;
 * - Reset and Interrupt values the protocol does not define end the
 *   connection; messages in the wrong direction (a TimeSync from a peer
 *   without CAP_TIME_SYNC among them) get an Error and are counted; a bad device description names its field;
 * - a simulator's announced completion timeout is clamped. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

#define BDF 0x0100u
#define NO_BAR_ADDR 0xFD000000u /* decoded by no BAR of the dmacopy device */

static void check_logged(const char *needle, const char *what)
{
    CHECK(it_log_contains(it.bridge, needle), "%s: the bridge log lacks \"%s\"", what, needle);
}

/* One MRd of a DW; returns the completion status (SC with *value set). */
static enum tlpb_cpl_status read_dw(struct raw *r, uint64_t addr, int8_t bar_hint, uint8_t tag,
                                    uint32_t *value)
{
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .requester_id = 0, .tag = tag, .length_dw = 1,
                          .first_be = 0xF, .address = addr, .bar_hint = bar_hint};
    raw_send_tlp(r, &rd);
    struct tlpb_tlp cpl;
    uint8_t data[16];
    if (!raw_recv_tlp(r, &cpl, data, sizeof(data)))
        return (enum tlpb_cpl_status)-1;
    CHECK(cpl.tag == tag, "completion tag %u, expected %u", cpl.tag, tag);
    const char *reason = NULL;
    CHECK(tlpb_tlp_validate(&cpl, NULL, &reason) == 0, "the bridge's completion is invalid: %s",
          reason);
    if (cpl.status == TLPB_CPL_SC && cpl.kind == TLPB_TLP_CPLD && cpl.payload_bytes >= 4)
        *value = tlpb_get_le32(cpl.payload);
    return cpl.status;
}

/* ---- item: malformed fields end the connection ------------------------------ */

enum field { F_TAG, F_TC, F_BE, F_BAR_HINT, F_REQUESTER, F_KIND };

static void malformed_field(enum field f, const char *expect_reason)
{
    struct raw r;
    raw_host(&r, "dmacopy0");
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .tag = 1, .length_dw = 1, .first_be = 0xF,
                          .address = DMACOPY_BAR0_ADDR + REG_ID, .bar_hint = 0};
    Tlpb__Tlp pb;
    tlpb_tlp_to_pb(&pb, &rd);
    switch (f) {
    case F_TAG: pb.tag = 256; break;
    case F_TC: pb.traffic_class = 8; break;
    case F_BE: pb.first_be = 0x10; break;
    case F_BAR_HINT: pb.bar_hint = 7; break;
    case F_REQUESTER: pb.requester_id = 0x10000; break;
    case F_KIND: pb.kind = (Tlpb__TlpKind)99; break;
    }
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_TLP;
    env.tlp = &pb;
    raw_send_env(&r, &env);
    /* Dropped after exactly one Error, and nothing else: a malformed TLP
     * gets no completion. */
    unsigned tlps = 0;
    for (;;) {
        bool eof;
        Tlpb__Envelope *m = raw_next(&r, &eof);
        if (!m)
            break;
        if (m->body_case == TLPB__ENVELOPE__BODY_TLP)
            tlps++;
        tlpb_envelope_free(m);
    }
    CHECK(tlps == 0, "%s: %u TLPs in answer to a malformed TLP", expect_reason, tlps);
    CHECK(r.errors_seen == 1, "%s: %u Error messages, expected 1", expect_reason, r.errors_seen);
    CHECK(strstr(r.last_error, expect_reason) != NULL, "Error '%s' does not name '%s'",
          r.last_error, expect_reason);
    raw_close(&r);
    char needle[160];
    snprintf(needle, sizeof(needle), "host[dmacopy0]: protocol error: malformed TLP");
    check_logged(needle, expect_reason);
    check_logged(expect_reason, expect_reason);
}

static void case_malformed_fields(void)
{
    malformed_field(F_TAG, "malformed TLP (MRd, tag 256): tag wider than 8 bits");
    malformed_field(F_TC, "malformed TLP (MRd, tag 1): traffic_class above 7");
    malformed_field(F_BE, "malformed TLP (MRd, tag 1): first_be wider than 4 bits");
    malformed_field(F_BAR_HINT, "malformed TLP (MRd, tag 1): bar_hint above 6");
    malformed_field(F_REQUESTER, "malformed TLP (MRd, tag 1): requester_id wider than 16 bits");
    malformed_field(F_KIND, "malformed TLP (kind 99, tag 1): unknown TLP kind");
}

/* ---- item: the URs the bridge builds ------------------------------------------- */

/* A request that breaks a rule; its UR must be a valid completion of it. */
static void ur_for(struct raw *r, const struct tlpb_tlp *req, uint32_t byte_count,
                   uint8_t lower_address, const char *what)
{
    raw_send_tlp(r, req);
    struct tlpb_tlp cpl;
    uint8_t data[16];
    if (!raw_recv_tlp(r, &cpl, data, sizeof(data))) {
        CHECK(false, "%s: no completion", what);
        return;
    }
    CHECK(cpl.kind == TLPB_TLP_CPL && cpl.status == TLPB_CPL_UR && cpl.tag == req->tag,
          "%s: kind %d status %d tag %u", what, (int)cpl.kind, (int)cpl.status, cpl.tag);
    CHECK_EQ_U64(cpl.completer_id, BDF, "completer ID of the UR");
    CHECK_EQ_U64(cpl.requester_id, req->requester_id, "requester ID of the UR");
    CHECK_EQ_U64(cpl.byte_count, byte_count, "byte count of the UR");
    CHECK_EQ_U64(cpl.lower_address, lower_address, "lower address of the UR");
    const char *reason = NULL;
    CHECK(tlpb_tlp_validate(&cpl, NULL, &reason) == 0, "%s: our validator rejects the UR: %s",
          what, reason);
}

static void case_well_formed_ur(void)
{
    struct raw r;
    raw_host(&r, "dmacopy0");
    raw_host_enumerate(&r, BDF, NULL);
    /* a full 1-DW read with a last_be: UR owes 4 bytes from the DW */
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .requester_id = 0x0010, .tag = 5, .length_dw = 1,
                          .first_be = 0xF, .last_be = 0xF,
                          .address = DMACOPY_BAR0_ADDR + REG_SCRATCH, .bar_hint = 0};
    ur_for(&r, &rd, 4, (DMACOPY_BAR0_ADDR + REG_SCRATCH) & 0x7F, "1-DW MRd with last_be");
    /* 2 bytes from byte 1 of a DW, broken by a last_be on 1 DW */
    rd.tag = 6;
    rd.first_be = 0x6;
    rd.address = DMACOPY_BAR0_ADDR + 0x44;
    ur_for(&r, &rd, 2, 0x45, "partial 1-DW MRd with last_be");
    /* 4096 bytes across a 4 KiB boundary: the whole request is owed */
    rd.tag = 7;
    rd.length_dw = 1024;
    rd.first_be = 0xF;
    rd.address = DMACOPY_BAR0_ADDR + 0x80;
    ur_for(&r, &rd, 4096, 0x00, "4 KiB MRd across a 4 KiB boundary");
    /* a config request of 2 DW: byte count 4, lower address 0 */
    struct tlpb_tlp cfg = {.kind = TLPB_TLP_CFGRD0, .requester_id = 0x0010, .tag = 8,
                           .length_dw = 2, .first_be = 0xF, .last_be = 0xF, .completer_id = BDF,
                           .cfg_register = 0x40, .bar_hint = TLPB_NO_BAR};
    ur_for(&r, &cfg, 4, 0, "2-DW CfgRd0");
    CHECK(r.errors_seen == 4, "%u Errors for 4 rejected requests", r.errors_seen);
    raw_close(&r);
    CHECK(!it_log_contains(it.bridge, "internal error"), "the bridge built a completion it rejects");
}

/* When the host goes away with a DMA read half answered, the UR the
 * device gets owes the rest: byte count = the bytes not yet returned, lower
 * address = the next byte. */
static void case_ur_after_host_left(void)
{
    struct raw h, s;
    raw_host(&h, "ext1");
    raw_simulator(&s, "ext1");
    /* 256 bytes from byte 2 of a DW: 65 DW, first_be 0xC, last_be 0x3 */
    struct tlpb_tlp dma = {.kind = TLPB_TLP_MRD, .requester_id = BDF, .tag = 17,
                           .bar_hint = TLPB_NO_BAR};
    REQUIRE(tlpb_tlp_set_mem_range(&dma, GUEST_RAM_BASE + 0x102, 256) == 0, "range");
    raw_send_tlp(&s, &dma);
    struct tlpb_tlp got;
    uint8_t data[16];
    bool ok;
    do {
        ok = raw_recv_tlp(&h, &got, data, sizeof(data));
    } while (ok && got.kind != TLPB_TLP_MRD);
    REQUIRE(ok && got.tag == 17, "the host did not get the DMA read");
    /* The first 62 bytes (to the 64-byte boundary), then the host leaves. */
    static uint8_t part[64];
    struct tlpb_tlp cpl;
    tlpb_completion_for(&cpl, &got, 0x0000, GUEST_RAM_BASE + 0x102, 62, 256);
    cpl.payload = part;
    raw_send_tlp(&h, &cpl);
    raw_close(&h);
    /* The simulator gets the CplD, then the UR for the remaining 194 bytes. */
    bool ur = false;
    while (!ur) {
        bool eof;
        Tlpb__Envelope *m = raw_next(&s, &eof);
        if (!m) {
            CHECK(false, "no UR after the host left");
            break;
        }
        if (m->body_case == TLPB__ENVELOPE__BODY_TLP && m->tlp->tag == 17 &&
            m->tlp->status == TLPB__COMPLETION_STATUS__CPL_UR) {
            ur = true;
            CHECK_EQ_U64(m->tlp->byte_count, 194, "byte count of the UR after a partial completion");
            CHECK_EQ_U64(m->tlp->lower_address, (0x102 + 62) & 0x7F, "lower address of that UR");
            struct tlpb_tlp u;
            const char *reason = NULL;
            CHECK(tlpb_tlp_from_pb(&u, m->tlp, &reason) == 0 &&
                      tlpb_tlp_validate(&u, NULL, &reason) == 0,
                  "our validator rejects that UR: %s", reason);
        }
        tlpb_envelope_free(m);
    }
    raw_close(&s);
}

/* ---- item: unsplit DMA only on fast devices -------------------------------------- */

static void expect_malformed_request(const char *device, const struct tlpb_tlp *req,
                                     const char *reason, const char *what)
{
    struct raw r;
    Tlpb__Envelope *reply = raw_host_caps(&r, device, TLPB__CAPABILITY__CAP_UNSPLIT_DMA);
    tlpb_envelope_free(reply);
    raw_send_tlp(&r, req);
    CHECK(raw_expect_dropped(&r), "%s: connection not closed", what);
    CHECK(r.errors_seen == 1 && strstr(r.last_error, reason), "%s: Error '%s' (%u)", what,
          r.last_error, r.errors_seen);
    raw_close(&r);
}

static void case_unsplit_grant(void)
{
    struct raw r;
    Tlpb__Envelope *reply = raw_host_caps(&r, "dmacopy0", TLPB__CAPABILITY__CAP_UNSPLIT_DMA);
    CHECK((reply->hello_reply->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA) == 0,
          "unsplit DMA granted to a host of a strict device");
    tlpb_envelope_free(reply);
    raw_close(&r);
    check_logged("host[dmacopy0]: device dmacopy0 is configured for strict DMA: unsplit DMA not granted",
                 "strict device");

    reply = raw_host_caps(&r, "fast0", TLPB__CAPABILITY__CAP_UNSPLIT_DMA);
    CHECK((reply->hello_reply->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA) != 0,
          "unsplit DMA not granted to a host of a fast device");
    tlpb_envelope_free(reply);
    raw_close(&r);

    /* On the strict device, lengths beyond the 10-bit Length field are
     * malformed, whatever the host offered. */
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .tag = 1, .length_dw = 2048, .first_be = 0xF,
                          .last_be = 0xF, .address = DMACOPY_BAR0_ADDR, .bar_hint = 0};
    expect_malformed_request("dmacopy0", &rd, "malformed TLP (MRd, tag 1): length_dw above 1024",
                             "8 KiB MRd");
    static uint8_t payload[16384];
    struct tlpb_tlp wr = {.kind = TLPB_TLP_MWR, .length_dw = 4096, .first_be = 0xF, .last_be = 0xF,
                          .address = DMACOPY_BAR0_ADDR, .bar_hint = 0,
                          .payload_bytes = sizeof(payload), .payload = payload};
    expect_malformed_request("dmacopy0", &wr, "malformed TLP (MWr, tag 0): length_dw above 1024",
                             "16 KiB MWr");
}

/* ---- item: one address rule for every backend ------------------------------------- */

static void address_rule(struct raw *r, const char *device, bool model_answers)
{
    raw_host_enumerate(r, BDF, NULL);
    uint32_t v = 0;
    /* In a BAR, with a hint naming another BAR: the address decides. */
    CHECK(read_dw(r, DMACOPY_BAR0_ADDR + REG_ID, 2, 10, &v) == TLPB_CPL_SC,
          "%s: read of BAR0 with hint 2 not SC", device);
    CHECK_EQ_U64(v, model_answers ? 0x7A110001u : 0xFFFFFFFFu, "ID read with a wrong hint");
    /* Outside every BAR: UR, whatever the hint. */
    CHECK(read_dw(r, NO_BAR_ADDR, 0, 11, &v) == TLPB_CPL_UR,
          "%s: read outside every BAR with hint 0 not UR", device);
    CHECK(read_dw(r, NO_BAR_ADDR + REG_ID, TLPB_NO_BAR, 12, &v) == TLPB_CPL_UR,
          "%s: read outside every BAR without a hint not UR", device);
    /* Memory Space Enable off: UR, also in a BAR with the right hint. */
    raw_cfg_write(r, BDF, 0x04, 0x0004, 0x3, 13);
    CHECK(read_dw(r, DMACOPY_BAR0_ADDR + REG_ID, 0, 14, &v) == TLPB_CPL_UR,
          "%s: read with memory space disabled not UR", device);
    raw_cfg_write(r, BDF, 0x04, 0x0006, 0x3, 15);
    CHECK(read_dw(r, DMACOPY_BAR0_ADDR + REG_ID, 0, 16, &v) == TLPB_CPL_SC,
          "%s: read with memory space enabled again not SC", device);
}

static void case_address_rule(void)
{
    struct raw r;
    raw_host(&r, "fb0");
    address_rule(&r, "fallback", false);
    raw_close(&r);

    raw_host(&r, "dmacopy0");
    address_rule(&r, "hlsim", true);
    raw_close(&r);

    /* An external simulator (hlsim-run) for ext0. */
    raw_host(&r, "ext0");
    it_start_sim("ext0", false);
    bool attached = false;
    while (!attached) {
        bool eof;
        Tlpb__Envelope *m = raw_next(&r, &eof);
        if (!m) {
            CHECK(false, "no Event for the simulator attaching");
            break;
        }
        attached = m->body_case == TLPB__ENVELOPE__BODY_EVENT &&
                   m->event->kind == TLPB__EVENT_KIND__EVENT_SIMULATOR_ATTACHED;
        tlpb_envelope_free(m);
    }
    if (attached)
        address_rule(&r, "external", true);
    raw_close(&r);
}

/* ---- item: Reset, Interrupt and wrong-direction messages -------------------------- */

static void write_scratch(struct raw *r, uint32_t value)
{
    uint8_t payload[4];
    tlpb_put_le32(payload, value);
    struct tlpb_tlp wr = {.kind = TLPB_TLP_MWR, .length_dw = 1, .first_be = 0xF,
                          .address = DMACOPY_BAR0_ADDR + REG_SCRATCH, .bar_hint = 0,
                          .payload_bytes = 4, .payload = payload};
    raw_send_tlp(r, &wr);
}

static void bad_reset(int kind)
{
    struct raw r;
    raw_host(&r, "dmacopy0");
    raw_host_enumerate(&r, BDF, NULL);
    write_scratch(&r, 0x600DCAFEu + (uint32_t)kind);
    uint32_t v = 0;
    CHECK(read_dw(&r, DMACOPY_BAR0_ADDR + REG_SCRATCH, 0, 20, &v) == TLPB_CPL_SC, "SCRATCH read");
    Tlpb__Reset reset = TLPB__RESET__INIT;
    reset.kind = (Tlpb__ResetKind)kind;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_RESET;
    env.reset = &reset;
    raw_send_env(&r, &env);
    CHECK(raw_expect_dropped(&r), "Reset kind %d: connection not closed", kind);
    char want[96];
    snprintf(want, sizeof(want), "Reset kind %d is not RESET_FUNCTION_LEVEL or RESET_HOT", kind);
    CHECK(r.errors_seen == 1 && strstr(r.last_error, want), "Reset kind %d: Error '%s'", kind,
          r.last_error);
    raw_close(&r);
    /* Not performed: SCRATCH kept its value. */
    raw_host(&r, "dmacopy0");
    CHECK(read_dw(&r, DMACOPY_BAR0_ADDR + REG_SCRATCH, 0, 21, &v) == TLPB_CPL_SC, "SCRATCH read");
    CHECK_EQ_U64(v, 0x600DCAFEu + (uint32_t)kind, "SCRATCH after an invalid Reset");
    raw_close(&r);
}

static unsigned long long rejected_messages(void)
{
    bool ok;
    char *status = it_control("status", NULL, &ok);
    unsigned long long n = 0;
    CHECK(ok && status && it_json_uint(status, "rejected_messages", &n),
          "status lacks rejected_messages: %s", status ? status : "(none)");
    free(status);
    return n;
}

/* Send env on r; the Error must come back before the answer to a valid
 * read that follows it, and the connection must go on. */
static void wrong_from_host(struct raw *r, const Tlpb__Envelope *env, const char *expect,
                            uint8_t tag)
{
    unsigned before = r->errors_seen;
    raw_send_env(r, env);
    uint32_t v = 0;
    CHECK(read_dw(r, DMACOPY_BAR0_ADDR + REG_ID, 0, tag, &v) == TLPB_CPL_SC,
          "%s: the connection did not go on", expect);
    CHECK(r->errors_seen == before + 1 && strstr(r->last_error, expect),
          "%s: %u Errors, last '%s'", expect, r->errors_seen - before, r->last_error);
    check_logged(expect, expect);
}

static void case_messages(void)
{
    bad_reset(0);
    bad_reset(99);

    unsigned long long before = rejected_messages();
    struct raw r;
    raw_host(&r, "dmacopy0");
    raw_host_enumerate(&r, BDF, NULL);
    Tlpb__Envelope env;
    Tlpb__Interrupt irq;
    tlpb_interrupt_envelope(&env, &irq, TLPB__INTERRUPT_KIND__IRQ_MSIX, 0);
    wrong_from_host(&r, &env, "Interrupt from a host is not accepted", 30);
    Tlpb__Event ev = TLPB__EVENT__INIT;
    ev.kind = TLPB__EVENT_KIND__EVENT_BACKEND_CHANGED;
    ev.backend = (char *)"hlsim";
    ev.detail = (char *)"";
    env = (Tlpb__Envelope)TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    wrong_from_host(&r, &env, "Event from a host is not accepted", 31);
    Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
    tlpb_time_sync_envelope(&env, &ts);
    wrong_from_host(&r, &env, "TimeSync from a host is not accepted", 32);
    Tlpb__ControlRequest cr = TLPB__CONTROL_REQUEST__INIT;
    cr.command = (char *)"status";
    env = (Tlpb__Envelope)TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_CONTROL_REQUEST;
    env.control_request = &cr;
    wrong_from_host(&r, &env, "ControlRequest from a host is not accepted", 33);
    raw_close(&r);

    /* A TLP from a control client: Error before the reply to its next
     * request. */
    struct raw c;
    raw_open(&c);
    Tlpb__Envelope *reply = raw_hello(&c, TLPB__ROLE__ROLE_CONTROL, "", TLPB_PROTOCOL_MAJOR, NULL);
    CHECK(reply && reply->hello_reply->accepted, "control handshake refused");
    tlpb_envelope_free(reply);
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .tag = 1, .length_dw = 1, .first_be = 0xF,
                          .address = DMACOPY_BAR0_ADDR, .bar_hint = TLPB_NO_BAR};
    raw_send_tlp(&c, &rd);
    env = (Tlpb__Envelope)TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_CONTROL_REQUEST;
    env.control_request = &cr;
    raw_send_env(&c, &env);
    for (;;) {
        bool eof;
        Tlpb__Envelope *m = raw_next(&c, &eof);
        if (!m) {
            CHECK(false, "control: no ControlReply");
            break;
        }
        bool done = m->body_case == TLPB__ENVELOPE__BODY_CONTROL_REPLY;
        tlpb_envelope_free(m);
        if (done)
            break;
    }
    CHECK(c.errors_seen == 1 && strstr(c.last_error, "Tlp from a control is not accepted"),
          "TLP from a control client: Error '%s' (%u)", c.last_error, c.errors_seen);
    raw_close(&c);

    /* A simulator (on ext1, no host): a Reset from it gets an Error before
     * the UR for its next DMA read. */
    struct raw s;
    raw_simulator(&s, "ext1");
    /* A TimeSync from a simulator that did not negotiate CAP_TIME_SYNC. */
    Tlpb__TimeSync reached = TLPB__TIME_SYNC__INIT;
    reached.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED;
    reached.sync_id = 1;
    tlpb_time_sync_envelope(&env, &reached);
    raw_send_env(&s, &env);
    Tlpb__Reset reset = TLPB__RESET__INIT;
    reset.kind = TLPB__RESET_KIND__RESET_HOT;
    env = (Tlpb__Envelope)TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_RESET;
    env.reset = &reset;
    raw_send_env(&s, &env);
    struct tlpb_tlp dma = {.kind = TLPB_TLP_MRD, .requester_id = BDF, .tag = 9, .length_dw = 1,
                           .first_be = 0xF, .address = GUEST_RAM_BASE, .bar_hint = TLPB_NO_BAR};
    raw_send_tlp(&s, &dma);
    bool ur = false;
    while (!ur) {
        bool eof;
        Tlpb__Envelope *m = raw_next(&s, &eof);
        if (!m) {
            CHECK(false, "simulator: no UR for its DMA read");
            break;
        }
        if (m->body_case == TLPB__ENVELOPE__BODY_TLP && m->tlp->tag == 9 &&
            tlpb_tlp_is_completion((enum tlpb_tlp_kind)m->tlp->kind))
            ur = m->tlp->status == TLPB__COMPLETION_STATUS__CPL_UR;
        tlpb_envelope_free(m);
    }
    CHECK(s.errors_seen == 2 && strstr(s.last_error, "Reset from a simulator is not accepted"),
          "TimeSync and Reset from a simulator: last Error '%s' (%u)", s.last_error, s.errors_seen);
    check_logged("TimeSync from a simulator is not accepted", "TimeSync without the cap");
    /* An Interrupt kind the protocol does not define ends the connection. */
    irq.kind = (Tlpb__InterruptKind)9;
    env = (Tlpb__Envelope)TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_INTERRUPT;
    env.interrupt = &irq;
    raw_send_env(&s, &env);
    CHECK(raw_expect_dropped(&s), "Interrupt kind 9: simulator not dropped");
    CHECK(strstr(s.last_error, "Interrupt kind 9 is not defined"), "Interrupt kind 9: Error '%s'",
          s.last_error);
    raw_close(&s);

    /* Seven messages in the wrong direction, counted. */
    CHECK_EQ_U64(rejected_messages() - before, 7, "rejected_messages");

    /* A description with a field out of range names the field. */
    struct tlpb_devdesc bad = *dmacopy_description();
    struct tlpb_devdesc_pb bad_pb;
    tlpb_devdesc_to_pb(&bad_pb, &bad);
    bad_pb.msg.msix_vectors = 5000;
    raw_open(&s);
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_SIMULATOR, "ext1", NULL);
    hello.description = &bad_pb.msg;
    env = (Tlpb__Envelope)TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    raw_send_env(&s, &env);
    bool eof;
    reply = raw_next(&s, &eof);
    CHECK(reply && reply->body_case == TLPB__ENVELOPE__BODY_HELLO_REPLY &&
              !reply->hello_reply->accepted &&
              strstr(reply->hello_reply->error,
                     "device description field out of range: msix_vectors above 2048"),
          "bad description: reply '%s'", reply ? reply->hello_reply->error : "(none)");
    tlpb_envelope_free(reply);
    raw_close(&s);
}

/* ---- item: announced timeouts are clamped -------------------------------------------- */

static void case_timeout_clamp(void)
{
    struct raw s;
    raw_open(&s);
    struct tlpb_devdesc_pb desc_pb;
    tlpb_devdesc_to_pb(&desc_pb, dmacopy_description());
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_SIMULATOR, "ext1", "silent-sim");
    hello.description = &desc_pb.msg;
    hello.completion_timeout_ms = 0xFFFFFFFFu;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    raw_send_env(&s, &env);
    bool eof;
    Tlpb__Envelope *reply = raw_next(&s, &eof);
    CHECK(reply && reply->body_case == TLPB__ENVELOPE__BODY_HELLO_REPLY &&
              reply->hello_reply->accepted,
          "silent simulator refused");
    tlpb_envelope_free(reply);
    /* The timeout in effect for ext1 is the clamped one (the status
     * round trip also orders the log check after the bridge logged it). */
    bool ok;
    char *status = it_control("status", NULL, &ok);
    const char *dev = status ? it_json_device(status, "ext1") : NULL;
    unsigned long long timeout = 0;
    CHECK(ok && dev && it_json_uint(dev, "timeout_ms", &timeout), "status lacks ext1's timeout_ms");
    CHECK_EQ_U64(timeout, 60000, "ext1's completion timeout with a silent simulator");
    free(status);
    check_logged("device ext1: simulator silent-sim announced a completion timeout of 4294967295 ms;"
                 " clamped to 60000 ms",
                 "clamped timeout");
    raw_close(&s);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_rules");
    /* The PCIe checker counts violations here: it sends TLPs that break PCIe rules on purpose, from raw peers that never enumerate the device. */
    it_expect_violations();
    REQUIRE(it_paths.model != NULL, "--model is required");
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "devices = (\n"
             "  { name = \"dmacopy0\"; backend = \"hlsim\"; model = \"%s\"; },\n"
             "  { name = \"fast0\"; backend = \"hlsim\"; model = \"%s\"; dma = \"fast\"; },\n"
             "  { name = \"fb0\"; backend = \"fallback\"; model = \"%s\"; },\n"
             "  { name = \"ext0\"; backend = \"external\"; model = \"%s\"; },\n"
             "  { name = \"ext1\"; backend = \"external\"; model = \"%s\"; }\n"
             ");\n",
             it_paths.model, it_paths.model, it_paths.model, it_paths.model, it_paths.model);
    const char *args[] = {"--config", it_write_file("rules.cfg", cfg), NULL};
    it_start_bridge(args);

    IT_RUN("malformed TLP fields end the connection", case_malformed_fields());
    IT_RUN("the URs the bridge builds are well formed", case_well_formed_ur());
    IT_RUN("the UR for a DMA read the host left half answered", case_ur_after_host_left());
    IT_RUN("unsplit DMA only on fast devices", case_unsplit_grant());
    IT_RUN("one address rule for fallback, hlsim and external", case_address_rule());
    IT_RUN("Reset, Interrupt and wrong-direction messages", case_messages());
    IT_RUN("announced completion timeouts are clamped", case_timeout_clamp());
    return it_finish();
}
