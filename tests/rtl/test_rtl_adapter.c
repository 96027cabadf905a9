/* Unit tests of the RTL adapter, without a simulator: the test plays the
 * design (a C model of the other side of the streams, stepping the adapter
 * once per clock edge) and the bridge (the other end of a socketpair).
 * Expected values come from the PCIe specification's header layouts and the
 * documented stream format, not from the adapter's code; in coupled time
 * from docs/protocol.md, "Simulated time" (the bridge's side is played by
 * message order, from inside the edge that waits for it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_bridge.h"
#include "internal.h"
#include "tlpb/byteorder.h"
#include "tlpb_rtl.h"

#define MAX_TLPS 512
#define CYCLE_BOUND 2000000u /* a hang is a failure, never a timing threshold */

struct design_tlp {
    uint32_t dws[RTL_MAX_TLP_DWS];
    uint32_t n;
    uint8_t bar_hit;
};

struct rig {
    struct tlpb_rtl *a;
    struct fake_bridge fb;
    unsigned lanes;
    uint32_t rng;
    unsigned rx_ready_percent;
    struct tlpb_rtl_from_design in;
    struct tlpb_rtl_to_design out;
    /* RX as the design sees it */
    struct design_tlp rx_cur;
    struct design_tlp rx[MAX_TLPS];
    unsigned rx_count;
    /* TX: TLPs the design sends, beat by beat */
    struct design_tlp tx[MAX_TLPS];
    unsigned tx_count, tx_next, tx_beat;
    bool idle;
    /* interrupt port */
    bool msix_hold;     /* keep irq_msix_req high */
    bool msix_once;     /* request until the first ack, then drop */
    uint16_t msix_vector;
    unsigned msix_acks;
    bool intx;
    /* coupled-time tests */
    bool responder;     /* the design answers MRd with CplD, and a CplD with a
                         * 1-DW MWr to DONE_ADDR */
    uint64_t tx_edge[MAX_TLPS]; /* the adapter's cycle at each TLP's last beat */
    struct seen_msg *seen;      /* the bridge's log of frames from the adapter */
    unsigned seen_count;
    void (*on_frame)(struct rig *r, const Tlpb__Envelope *env);
    void (*on_wait)(struct rig *r); /* the adapter waits for the host */
    unsigned waits;
    int step;
};

/* A frame from the adapter as the bridge saw it (wall time excluded). */
struct seen_msg {
    int body;           /* Tlpb__Envelope__BodyCase */
    int kind;           /* TLP kind, TimeSync kind or interrupt kind */
    uint64_t stamp;     /* sim_time_ps */
    uint64_t sync_id;
    bool idle;
    uint64_t clocked_cycles;
    uint64_t address;
    uint8_t tag;
};
#define MAX_SEEN_MSGS 256

static uint32_t rnd(struct rig *r)
{
    uint32_t x = r->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    r->rng = x;
    return x;
}

static const struct tlpb_devdesc test_desc = {
    .vendor_id = 0x1234,
    .device_id = 0x7a11,
    .revision = 1,
    .class_code = 0x088000,
    .bars = {[0] = {.size_bytes = 4096}, [2] = {.size_bytes = 4096},
             [4] = {.size_bytes = 4096, .is_64bit = true}},
    .msix_vectors = 2,
    .msix_table_bar = 2,
    .msix_table_offset = 0,
    .msix_pba_bar = 2,
    .msix_pba_offset = 0x800,
    .intx_pin = 1,
    .max_payload_supported_bytes = 256,
};

static void rig_open_caps(struct rig *r, unsigned lanes, unsigned tx_stall_percent,
                          unsigned rx_ready_percent, uint32_t capabilities)
{
    memset(r, 0, sizeof(*r));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fb_init(&r->fb, sv[1]);
    /* The reply is already waiting when the adapter says Hello. */
    assert_int_equal(fb_send_hello_reply_caps(&r->fb, capabilities), 0);
    struct tlpb_rtl_options o = {.device_name = "dev0", .description = test_desc,
                                 .log_level = TLPB_RTL_LOG_ERROR,
                                 .tx_stall_percent = tx_stall_percent, .stall_seed = 77,
                                 .idle_wait_ms = 1};
    char err[256] = "";
    int rc = tlpb_rtl_open_fd(&r->a, sv[0], &o, err, sizeof(err));
    if (rc != 0)
        fail_msg("tlpb_rtl_open_fd: %s", err);
    /* The Hello the bridge got. */
    Tlpb__Envelope *env = fb_recv(&r->fb, 5000);
    assert_non_null(env);
    assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_HELLO);
    assert_int_equal(env->hello->role, TLPB__ROLE__ROLE_SIMULATOR);
    assert_string_equal(env->hello->device_name, "dev0");
    assert_int_equal(env->hello->completion_timeout_ms, 60000);
    assert_non_null(env->hello->description);
    assert_int_equal(env->hello->description->vendor_id, 0x1234);
    /* never unsplit DMA; coupled time offered always */
    assert_int_equal(env->hello->capabilities, TLPB__CAPABILITY__CAP_TIME_SYNC);
    assert_int_equal(env->hello->clock_period_ps, 4000);
    tlpb_envelope_free(env);
    r->lanes = lanes;
    r->rng = 0x1234567u + lanes;
    r->rx_ready_percent = rx_ready_percent;
    tlpb_rtl_initial_outputs(r->a, &r->out);
    assert_true(r->out.reset);
}

static void rig_open(struct rig *r, unsigned lanes, unsigned tx_stall_percent,
                     unsigned rx_ready_percent)
{
    rig_open_caps(r, lanes, tx_stall_percent, rx_ready_percent, 0);
}

static void rig_close(struct rig *r)
{
    free(r->seen);
    tlpb_rtl_close(r->a);
    fb_fini(&r->fb);
}

static void design_send(struct rig *r, const struct tlpb_tlp *tlp);
static void design_respond(struct rig *r, const struct design_tlp *t);

/* One clock edge. */
static void rig_cycle(struct rig *r)
{
    struct tlpb_rtl_from_design in;
    memset(&in, 0, sizeof(in));
    in.lanes = r->lanes;
    in.rx_tready = rnd(r) % 100u < r->rx_ready_percent;
    if (r->tx_next < r->tx_count && !r->out.reset) {
        const struct design_tlp *t = &r->tx[r->tx_next];
        uint32_t first = r->tx_beat * r->lanes;
        for (unsigned i = 0; i < r->lanes; i++) {
            if (first + i < t->n) {
                in.tx_tdata[i] = t->dws[first + i];
                in.tx_tkeep |= (uint64_t)0xF << (4 * i);
            }
        }
        in.tx_tvalid = true;
        in.tx_tlast = first + r->lanes >= t->n;
    }
    in.irq_msix_req = r->msix_hold || r->msix_once;
    in.irq_msix_vector = r->msix_vector;
    in.irq_intx = r->intx;
    /* a responder is idle with nothing received half and nothing to send */
    in.idle = r->idle && (!r->responder || (r->tx_next == r->tx_count && r->rx_cur.n == 0));

    struct tlpb_rtl_to_design before = r->out;
    tlpb_rtl_cycle(r->a, &in, &r->out);

    if (before.reset)
        return;
    if (before.rx_tvalid && in.rx_tready) {
        struct design_tlp *c = &r->rx_cur;
        if (c->n == 0)
            c->bar_hit = before.rx_bar_hit;
        assert_int_equal(before.rx_bar_hit, c->bar_hit); /* held for the whole TLP */
        bool gap = false;
        for (unsigned i = 0; i < r->lanes; i++) {
            unsigned keep = (unsigned)(before.rx_tkeep >> (4 * i)) & 0xF;
            assert_true(keep == 0 || keep == 0xF); /* whole DWs */
            if (!keep) {
                gap = true;
                continue;
            }
            assert_false(gap); /* packed from lane 0 */
            assert_true(c->n < RTL_MAX_TLP_DWS);
            c->dws[c->n++] = before.rx_tdata[i];
        }
        if (!before.rx_tlast)
            assert_false(gap); /* only the last beat is partial */
        if (before.rx_tlast) {
            assert_true(r->rx_count < MAX_TLPS);
            r->rx[r->rx_count++] = *c;
            memset(c, 0, sizeof(*c));
            if (r->responder)
                design_respond(r, &r->rx[r->rx_count - 1]);
        }
    } else if (before.rx_tvalid && !r->out.reset) {
        /* AXI4-Stream: a beat offered and not taken stays as it is. */
        assert_true(r->out.rx_tvalid);
        assert_memory_equal(before.rx_tdata, r->out.rx_tdata, sizeof(before.rx_tdata));
        assert_true(before.rx_tkeep == r->out.rx_tkeep);
        assert_int_equal(before.rx_tlast, r->out.rx_tlast);
        assert_int_equal(before.rx_bar_hit, r->out.rx_bar_hit);
    }
    if (in.tx_tvalid && before.tx_tready) {
        if (in.tx_tlast) {
            r->tx_edge[r->tx_next] = r->a->edge_cycle;
            r->tx_next++;
            r->tx_beat = 0;
        } else {
            r->tx_beat++;
        }
    }
    if (in.irq_msix_req && before.irq_msix_ack)
        assert_false(r->out.irq_msix_ack); /* a one-cycle pulse per taken request */
    if (r->out.irq_msix_ack) {
        r->msix_acks++;
        r->msix_once = false;
    }
}

static void run_cycles(struct rig *r, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        rig_cycle(r);
}

/* Cycle until the design has received `count` TLPs. */
static void run_until_rx(struct rig *r, unsigned count)
{
    for (unsigned i = 0; i < CYCLE_BOUND && r->rx_count < count; i++)
        rig_cycle(r);
    assert_int_equal(r->rx_count, count);
}

/* Cycle until the bridge has a frame of the given kind (others are
 * skipped: events, errors). */
static Tlpb__Envelope *run_until_frame(struct rig *r, Tlpb__Envelope__BodyCase kind)
{
    for (unsigned i = 0; i < CYCLE_BOUND; i++) {
        Tlpb__Envelope *env = fb_recv(&r->fb, 0);
        if (env && env->body_case == kind)
            return env;
        if (env)
            tlpb_envelope_free(env);
        rig_cycle(r);
    }
    fail_msg("no frame of kind %d from the adapter", (int)kind);
    return NULL;
}

static struct tlpb_tlp run_until_tlp(struct rig *r, Tlpb__Envelope **keep)
{
    Tlpb__Envelope *env = run_until_frame(r, TLPB__ENVELOPE__BODY_TLP);
    struct tlpb_tlp tlp;
    const char *reason = "?";
    if (tlpb_tlp_from_pb(&tlp, env->tlp, &reason) != 0)
        fail_msg("bad TLP from the adapter: %s", reason);
    *keep = env; /* the payload points into it */
    return tlp;
}

/* ---- TLP builders ----------------------------------------------------------------- */

static uint8_t payload_pool[MAX_TLPS][4096];

static struct tlpb_tlp mwr(uint64_t addr, uint32_t len_dw, uint8_t *payload, uint32_t seed)
{
    struct tlpb_tlp t = {.kind = TLPB_TLP_MWR, .bar_hint = 0, .address = addr,
                         .length_dw = len_dw, .first_be = 0xF, .last_be = len_dw > 1 ? 0xF : 0,
                         .payload_bytes = len_dw * 4, .payload = payload};
    for (uint32_t i = 0; i < len_dw * 4; i++)
        payload[i] = (uint8_t)(seed * 31u + i * 7u);
    return t;
}

static void config_write(struct rig *r, uint16_t reg, uint32_t value, uint8_t be, uint8_t tag)
{
    uint8_t data[4];
    tlpb_put_le32(data, value);
    struct tlpb_tlp wr = {.kind = TLPB_TLP_CFGWR0, .tag = tag, .length_dw = 1, .first_be = be,
                          .completer_id = 0x0300, .cfg_register = reg, .bar_hint = TLPB_NO_BAR,
                          .payload_bytes = 4, .payload = data};
    assert_int_equal(fb_send_tlp(&r->fb, &wr), 0);
    Tlpb__Envelope *env;
    struct tlpb_tlp cpl = run_until_tlp(r, &env);
    assert_int_equal(cpl.kind, TLPB_TLP_CPL);
    assert_int_equal(cpl.status, TLPB_CPL_SC);
    assert_int_equal(cpl.tag, tag);
    tlpb_envelope_free(env);
}

/* Memory requests are decoded by address against the programmed BARs (and
 * Memory Space Enable, set by each test): BAR0 at 0xFE000000 (32-bit
 * addresses), the 64-bit BAR4 at 0x4_0000_0000 (64-bit addresses). */
#define BAR0_ADDR 0xFE000000u
#define BAR4_ADDR 0x400000000ull
static void program_bars(struct rig *r, uint8_t tag)
{
    config_write(r, 0x10, BAR0_ADDR, 0xF, tag);
    config_write(r, 0x20, (uint32_t)BAR4_ADDR, 0xF, (uint8_t)(tag + 1));
    config_write(r, 0x24, (uint32_t)(BAR4_ADDR >> 32), 0xF, (uint8_t)(tag + 2));
}

static uint32_t config_read(struct rig *r, uint16_t reg)
{
    struct tlpb_tlp rd = {.kind = TLPB_TLP_CFGRD0, .tag = 9, .length_dw = 1, .first_be = 0xF,
                          .completer_id = 0x0300, .cfg_register = reg, .bar_hint = TLPB_NO_BAR};
    assert_int_equal(fb_send_tlp(&r->fb, &rd), 0);
    Tlpb__Envelope *env;
    struct tlpb_tlp cpl = run_until_tlp(r, &env);
    assert_int_equal(cpl.kind, TLPB_TLP_CPLD);
    assert_int_equal(cpl.tag, 9);
    uint32_t v = tlpb_get_le32(cpl.payload);
    tlpb_envelope_free(env);
    return v;
}

/* ---- the stream format ------------------------------------------------------------- */

static void test_format_known_values(void **state)
{
    uint32_t dws[8];
    uint8_t payload[4] = {0x78, 0x56, 0x34, 0x12}; /* byte at the lowest address first */
    /* MWr, 32-bit address: Fmt 010, Type 00000, Length 1. */
    struct tlpb_tlp w = {.kind = TLPB_TLP_MWR, .requester_id = 0x0100, .tag = 0,
                         .address = 0xFE000004u, .length_dw = 1, .first_be = 0xF,
                         .payload_bytes = 4, .payload = payload, .bar_hint = TLPB_NO_BAR};
    assert_int_equal(tlpb_rtl_encode_dws(&w, dws, 8), 4);
    assert_int_equal(dws[0], 0x40000001u);
    assert_int_equal(dws[1], 0x0100000Fu); /* requester, tag, last BE 0, first BE F */
    assert_int_equal(dws[2], 0xFE000004u);
    assert_int_equal(dws[3], 0x12345678u); /* little-endian payload DW */

    /* MRd above 4 GiB: Fmt 001 (4DW), tag 0x2A, 2 DWs. */
    struct tlpb_tlp r = {.kind = TLPB_TLP_MRD, .requester_id = 0x0208, .tag = 0x2A,
                         .address = 0x123456780ull, .length_dw = 2, .first_be = 0xE,
                         .last_be = 0x3, .bar_hint = TLPB_NO_BAR};
    assert_int_equal(tlpb_rtl_encode_dws(&r, dws, 8), 4);
    assert_int_equal(dws[0], 0x20000002u);
    assert_int_equal(dws[1], 0x02082A3Eu);
    assert_int_equal(dws[2], 0x00000001u);
    assert_int_equal(dws[3], 0x23456780u);

    /* CplD: Fmt 010, Type 01010; completer, status SC, byte count 4;
     * requester, tag, lower address 0x04. */
    struct tlpb_tlp c = {.kind = TLPB_TLP_CPLD, .requester_id = 0x0000, .tag = 0x11,
                         .completer_id = 0x0100, .status = TLPB_CPL_SC, .byte_count = 4,
                         .lower_address = 0x04, .length_dw = 1, .payload_bytes = 4,
                         .payload = payload, .bar_hint = TLPB_NO_BAR};
    assert_int_equal(tlpb_rtl_encode_dws(&c, dws, 8), 4);
    assert_int_equal(dws[0], 0x4A000001u);
    assert_int_equal(dws[1], 0x01000004u);
    assert_int_equal(dws[2], 0x00001104u);
    assert_int_equal(dws[3], 0x12345678u);

    /* And back. */
    uint8_t buf[64];
    struct tlpb_tlp back;
    const char *reason = NULL;
    assert_int_equal(tlpb_rtl_decode_dws(dws, 4, buf, &back, &reason), 0);
    assert_int_equal(back.kind, TLPB_TLP_CPLD);
    assert_int_equal(back.tag, 0x11);
    assert_int_equal(back.completer_id, 0x0100);
    assert_memory_equal(back.payload, payload, 4);
    /* A TLP one DW short of its Length is refused. */
    assert_int_not_equal(tlpb_rtl_decode_dws(dws, 3, buf, &back, &reason), 0);
}

/* ---- RX framing and backpressure --------------------------------------------------- */

static void rx_framing(unsigned lanes)
{
    struct rig r;
    rig_open(&r, lanes, 0, 40); /* the design takes a beat 40% of the time */
    run_cycles(&r, 32);         /* out of reset */
    program_bars(&r, 1);
    config_write(&r, 0x04, 0x0002, 0x3, 4); /* memory space */
    struct tlpb_tlp sent[200];
    unsigned n = 200;
    for (unsigned i = 0; i < n; i++) {
        uint32_t len = 1 + rnd(&r) % 64u;
        uint64_t addr = (i % 3 == 0) ? BAR4_ADDR + 0x100u : BAR0_ADDR + 4u * (rnd(&r) % 512u);
        if ((addr & 0xFFFu) + len * 4 > 4096)
            len = (uint32_t)((4096 - (addr & 0xFFFu)) / 4);
        if (i % 5 == 4) {
            sent[i] = (struct tlpb_tlp){.kind = TLPB_TLP_MRD, .tag = (uint8_t)i, .address = addr,
                                        .length_dw = len, .first_be = 0xF,
                                        .last_be = len > 1 ? 0xF : 0, .bar_hint = 0};
        } else {
            sent[i] = mwr(addr, len, payload_pool[i], i);
        }
        assert_int_equal(fb_send_tlp(&r.fb, &sent[i]), 0);
    }
    run_until_rx(&r, n);
    for (unsigned i = 0; i < n; i++) {
        uint32_t want[RTL_MAX_TLP_DWS];
        int wn = tlpb_rtl_encode_dws(&sent[i], want, RTL_MAX_TLP_DWS);
        assert_int_equal(r.rx[i].n, wn);
        assert_memory_equal(r.rx[i].dws, want, (size_t)wn * 4);
        /* the BAR the address decodes to */
        assert_int_equal(r.rx[i].bar_hit, sent[i].address >= BAR4_ADDR ? 0x10 : 0x01);
    }
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r.a, &st);
    assert_int_equal(st.tlps_to_design, n);
    rig_close(&r);
}

static void test_rx_framing_64(void **state)
{
    rx_framing(2);
}

static void test_rx_framing_128(void **state)
{
    rx_framing(4);
}

/* ---- TX framing, backpressure, read tags -------------------------------------------- */

static void design_send(struct rig *r, const struct tlpb_tlp *tlp)
{
    assert_true(r->tx_count < MAX_TLPS);
    struct design_tlp *t = &r->tx[r->tx_count++];
    int n = tlpb_rtl_encode_dws(tlp, t->dws, RTL_MAX_TLP_DWS);
    assert_true(n > 0);
    t->n = (uint32_t)n;
}

static void tx_framing(unsigned lanes)
{
    struct rig r;
    rig_open(&r, lanes, 40, 100); /* the adapter drops tx_tready 40% of the time */
    run_cycles(&r, 32);
    config_write(&r, 0x04, 0x0006, 0x3, 1); /* memory + bus master */
    config_write(&r, TLPB_CFG_PCIE_CAP + 8, 1u << 5, 0x3, 2); /* max payload 256 */
    assert_true(r.out.cfg.bus_master_enable);

    unsigned n = 120;
    struct tlpb_tlp sent[120];
    for (unsigned i = 0; i < n; i++) {
        uint32_t len = 1 + rnd(&r) % 64u;
        uint64_t addr = (i % 2) ? 0x80000000u + 0x1000u * i : 0x200000000ull + 0x1000u * i;
        if (i % 4 == 3) {
            sent[i] = (struct tlpb_tlp){.kind = TLPB_TLP_MRD, .requester_id = 0x0300,
                                        .tag = (uint8_t)(i & 0x1F), .address = addr,
                                        .length_dw = len, .first_be = 0xF,
                                        .last_be = len > 1 ? 0xF : 0, .bar_hint = TLPB_NO_BAR};
        } else if (i % 4 == 2) {
            /* a completion for a host read: 1..32 DW, within max payload */
            len = 1 + len % 32u;
            sent[i] = (struct tlpb_tlp){.kind = TLPB_TLP_CPLD, .requester_id = 0, .tag = (uint8_t)i,
                                        .completer_id = 0x0300, .status = TLPB_CPL_SC,
                                        .byte_count = len * 4, .lower_address = 0,
                                        .length_dw = len, .payload_bytes = len * 4,
                                        .payload = payload_pool[i], .bar_hint = TLPB_NO_BAR};
            for (uint32_t b = 0; b < len * 4; b++)
                payload_pool[i][b] = (uint8_t)(b ^ i);
        } else {
            sent[i] = mwr(addr, len, payload_pool[i], i);
            sent[i].requester_id = 0x0300;
            sent[i].bar_hint = TLPB_NO_BAR;
        }
        design_send(&r, &sent[i]);
    }
    uint8_t link_tag_of[120];
    for (unsigned i = 0; i < n; i++) {
        Tlpb__Envelope *env;
        struct tlpb_tlp got = run_until_tlp(&r, &env);
        assert_int_equal(got.kind, sent[i].kind);
        assert_true(got.address == sent[i].address);
        assert_int_equal(got.length_dw, sent[i].length_dw);
        assert_int_equal(got.requester_id, sent[i].requester_id);
        if (got.kind == TLPB_TLP_MRD) {
            link_tag_of[i] = got.tag; /* the adapter's own tag */
        } else {
            assert_int_equal(got.tag, sent[i].tag);
            assert_int_equal(got.payload_bytes, sent[i].payload_bytes);
            assert_memory_equal(got.payload, sent[i].payload, sent[i].payload_bytes);
        }
        if (got.kind == TLPB_TLP_CPLD)
            assert_int_equal(got.byte_count, sent[i].byte_count);
        tlpb_envelope_free(env);
    }
    /* Complete every read under the link tag: the design gets its own tag. */
    unsigned reads = 0;
    for (unsigned i = 0; i < n; i++) {
        if (sent[i].kind != TLPB_TLP_MRD)
            continue;
        struct tlpb_tlp req = sent[i];
        req.tag = link_tag_of[i];
        struct tlpb_tlp cpl;
        uint32_t bytes = req.length_dw * 4;
        tlpb_completion_for(&cpl, &req, 0, req.address, bytes > 256 ? 256 : bytes, bytes);
        cpl.payload = payload_pool[i];
        assert_int_equal(fb_send_tlp(&r.fb, &cpl), 0);
        if (bytes > 256) {
            struct tlpb_tlp rest;
            tlpb_completion_for(&rest, &req, 0, req.address + 256, bytes - 256, bytes - 256);
            rest.payload = payload_pool[i] + 256;
            assert_int_equal(fb_send_tlp(&r.fb, &rest), 0);
            reads++;
        }
        reads++;
    }
    run_until_rx(&r, reads);
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        if (sent[i].kind != TLPB_TLP_MRD)
            continue;
        unsigned parts = sent[i].length_dw * 4 > 256 ? 2 : 1;
        for (unsigned p = 0; p < parts; p++, k++) {
            struct tlpb_tlp got;
            const char *reason = "?";
            uint8_t buf[RTL_MAX_TLP_DWS * 4];
            assert_int_equal(tlpb_rtl_decode_dws(r.rx[k].dws, r.rx[k].n, buf, &got, &reason), 0);
            assert_int_equal(got.kind, TLPB_TLP_CPLD);
            assert_int_equal(got.tag, sent[i].tag); /* mapped back */
            assert_int_equal(r.rx[k].bar_hit, 0);  /* completions hit no BAR */
        }
    }
    rig_close(&r);
}

static void test_tx_framing_64(void **state)
{
    tx_framing(2);
}

static void test_tx_framing_128(void **state)
{
    tx_framing(4);
}

/* ---- config space ------------------------------------------------------------------ */

static void test_config_space(void **state)
{
    struct rig r;
    rig_open(&r, 4, 0, 100);
    run_cycles(&r, 32);
    assert_int_equal(config_read(&r, 0x00), 0x7a111234u);
    assert_int_equal(config_read(&r, 0x08) >> 8, 0x088000u);
    assert_false(r.out.cfg.bus_master_enable);
    program_bars(&r, 10);
    config_write(&r, 0x04, 0x0006, 0x3, 3);
    assert_true(r.out.cfg.bus_master_enable);
    assert_true(r.out.cfg.memory_enable);
    assert_int_equal(r.out.cfg.completer_id, 0x0300); /* captured from the write */
    /* Max payload 256 (code 1), max read request 1024 (code 3). */
    config_write(&r, TLPB_CFG_PCIE_CAP + 8, (1u << 5) | (3u << 12), 0x3, 4);
    assert_int_equal(r.out.cfg.max_payload, 1);
    assert_int_equal(r.out.cfg.max_read_request, 3);
    /* More than supported is held to what is supported (256). */
    config_write(&r, TLPB_CFG_PCIE_CAP + 8, (3u << 5) | (3u << 12), 0x3, 5);
    assert_int_equal(r.out.cfg.max_payload, 1);
    assert_false(r.out.cfg.msix_enable);
    config_write(&r, TLPB_CFG_MSIX_CAP, 0x80000000u, 0xC, 6);
    assert_true(r.out.cfg.msix_enable);
    config_write(&r, 0x04, 0x0406, 0x3, 7);
    assert_true(r.out.cfg.intx_disable);

    /* A config write does not pass a memory write queued before it: with
     * the design not taking anything, bus mastering stays on. */
    r.rx_ready_percent = 0;
    struct tlpb_tlp w = mwr(0xFE000010u, 1, payload_pool[0], 1);
    assert_int_equal(fb_send_tlp(&r.fb, &w), 0);
    uint8_t off[4] = {0x02, 0, 0, 0};
    struct tlpb_tlp cw = {.kind = TLPB_TLP_CFGWR0, .tag = 8, .length_dw = 1, .first_be = 0x3,
                          .completer_id = 0x0300, .cfg_register = 0x04, .bar_hint = TLPB_NO_BAR,
                          .payload_bytes = 4, .payload = off};
    assert_int_equal(fb_send_tlp(&r.fb, &cw), 0);
    run_cycles(&r, 5000);
    assert_true(r.out.cfg.bus_master_enable);
    assert_int_equal(r.rx_count, 0);
    r.rx_ready_percent = 100;
    run_until_rx(&r, 1);
    run_cycles(&r, 2);
    assert_false(r.out.cfg.bus_master_enable);
    Tlpb__Envelope *env;
    struct tlpb_tlp cpl = run_until_tlp(&r, &env);
    assert_int_equal(cpl.kind, TLPB_TLP_CPL);
    assert_int_equal(cpl.tag, 8);
    tlpb_envelope_free(env);
    rig_close(&r);
}

/* ---- interrupts ------------------------------------------------------------------------ */

static unsigned count_interrupts(struct rig *r, Tlpb__InterruptKind kind, uint32_t vector)
{
    unsigned n = 0;
    Tlpb__Envelope *env;
    while ((env = fb_recv(&r->fb, 0)) != NULL) {
        if (env->body_case == TLPB__ENVELOPE__BODY_INTERRUPT && env->interrupt->kind == kind &&
            env->interrupt->vector == vector)
            n++;
        tlpb_envelope_free(env);
    }
    return n;
}

static void test_interrupt_port(void **state)
{
    struct rig r;
    rig_open(&r, 4, 0, 100);
    run_cycles(&r, 32);
    /* MSI-X off: a held request is acknowledged every other cycle, and no
     * message goes out. */
    r.msix_hold = true;
    r.msix_vector = 1;
    run_cycles(&r, 20);
    r.msix_hold = false;
    run_cycles(&r, 70); /* past the output cadence */
    assert_int_equal(r.msix_acks, 10);
    assert_int_equal(count_interrupts(&r, TLPB__INTERRUPT_KIND__IRQ_MSIX, 1), 0);

    config_write(&r, TLPB_CFG_MSIX_CAP, 0x80000000u, 0xC, 1);
    r.msix_acks = 0;
    r.msix_once = true; /* request until acknowledged */
    run_cycles(&r, 100);
    assert_int_equal(r.msix_acks, 1);
    Tlpb__Envelope *env = run_until_frame(&r, TLPB__ENVELOPE__BODY_INTERRUPT);
    assert_int_equal(env->interrupt->kind, TLPB__INTERRUPT_KIND__IRQ_MSIX);
    assert_int_equal(env->interrupt->vector, 1);
    tlpb_envelope_free(env);
    run_cycles(&r, 100);
    assert_int_equal(count_interrupts(&r, TLPB__INTERRUPT_KIND__IRQ_MSIX, 1), 0); /* exactly one */

    /* INTx: with MSI-X on the line stays low on the wire. */
    r.intx = true;
    run_cycles(&r, 100);
    assert_int_equal(count_interrupts(&r, TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT, 0), 0);
    assert_true(config_read(&r, 0x04) & (1u << 19)); /* interrupt status follows the design */
    config_write(&r, TLPB_CFG_MSIX_CAP, 0, 0xC, 2);
    env = run_until_frame(&r, TLPB__ENVELOPE__BODY_INTERRUPT);
    assert_int_equal(env->interrupt->kind, TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT);
    assert_int_equal(env->interrupt->vector, 0); /* INTA */
    tlpb_envelope_free(env);
    config_write(&r, 0x04, 0x0400, 0x3, 3); /* INTx disable */
    env = run_until_frame(&r, TLPB__ENVELOPE__BODY_INTERRUPT);
    assert_int_equal(env->interrupt->kind, TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT);
    tlpb_envelope_free(env);
    config_write(&r, 0x04, 0x0000, 0x3, 4);
    env = run_until_frame(&r, TLPB__ENVELOPE__BODY_INTERRUPT);
    assert_int_equal(env->interrupt->kind, TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT);
    tlpb_envelope_free(env);
    r.intx = false;
    env = run_until_frame(&r, TLPB__ENVELOPE__BODY_INTERRUPT);
    assert_int_equal(env->interrupt->kind, TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT);
    tlpb_envelope_free(env);
    assert_false(config_read(&r, 0x04) & (1u << 19));
    rig_close(&r);
}

/* ---- bad TLPs from the design ---------------------------------------------------------- */

static void test_bad_tlp_from_design(void **state)
{
    struct rig r;
    rig_open(&r, 4, 0, 100);
    run_cycles(&r, 32);
    config_write(&r, 0x04, 0x0006, 0x3, 1);
    assert_false(tlpb_rtl_take_trigger(r.a));
    /* A write crossing 4 KiB is dropped; a read crossing it gets UR. */
    struct tlpb_tlp w = mwr(0x80000FF0u, 8, payload_pool[0], 3);
    design_send(&r, &w);
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .requester_id = 0x0300, .tag = 7,
                          .address = 0x80000FF0u, .length_dw = 8, .first_be = 0xF,
                          .last_be = 0xF, .bar_hint = TLPB_NO_BAR};
    design_send(&r, &rd);
    run_until_rx(&r, 1);
    struct tlpb_tlp got;
    const char *reason = "?";
    uint8_t buf[64];
    assert_int_equal(tlpb_rtl_decode_dws(r.rx[0].dws, r.rx[0].n, buf, &got, &reason), 0);
    assert_int_equal(got.kind, TLPB_TLP_CPL);
    assert_int_equal(got.status, TLPB_CPL_UR);
    assert_int_equal(got.tag, 7);
    run_cycles(&r, 200);
    /* The bridge hears about both, as errors, and gets no TLP. */
    unsigned errors = 0;
    Tlpb__Envelope *env;
    while ((env = fb_recv(&r.fb, 0)) != NULL) {
        assert_int_equal(env->body_case, TLPB__ENVELOPE__BODY_ERROR);
        assert_non_null(strstr(env->error->reason, "4 KiB"));
        errors++;
        tlpb_envelope_free(env);
    }
    assert_int_equal(errors, 2);
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r.a, &st);
    assert_int_equal(st.bad_tlps_from_design, 2);
    assert_true(tlpb_rtl_take_trigger(r.a));
    assert_false(tlpb_rtl_take_trigger(r.a));
    rig_close(&r);
}

/* ---- resets abandon reads ---------------------------------------------------------------- */

static void test_reset_abandons_reads(void **state)
{
    struct rig r;
    rig_open(&r, 4, 0, 100);
    run_cycles(&r, 32);
    config_write(&r, 0x04, 0x0006, 0x3, 1);
    struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .requester_id = 0x0300, .tag = 5,
                          .address = 0x80000000u, .length_dw = 4, .first_be = 0xF,
                          .last_be = 0xF, .bar_hint = TLPB_NO_BAR};
    design_send(&r, &rd);
    Tlpb__Envelope *env;
    struct tlpb_tlp req = run_until_tlp(&r, &env);
    assert_int_equal(req.kind, TLPB_TLP_MRD);
    tlpb_envelope_free(env);

    assert_int_equal(fb_send_reset(&r.fb, TLPB__RESET_KIND__RESET_FUNCTION_LEVEL), 0);
    unsigned i = 0;
    while (!r.out.reset && i++ < CYCLE_BOUND)
        rig_cycle(&r);
    unsigned reset_cycles = 0;
    while (r.out.reset && reset_cycles < 1000) {
        rig_cycle(&r);
        reset_cycles++;
    }
    assert_int_equal(reset_cycles, 16);
    assert_false(r.out.cfg.bus_master_enable); /* config space is back to power-on */

    struct tlpb_tlp cpl;
    tlpb_completion_for(&cpl, &req, 0, req.address, 16, 16);
    cpl.payload = payload_pool[0];
    assert_int_equal(fb_send_tlp(&r.fb, &cpl), 0);
    run_cycles(&r, 2000);
    assert_int_equal(r.rx_count, 0); /* the stale completion never reaches the design */
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r.a, &st);
    assert_int_equal(st.dropped_completions, 1);
    assert_int_equal(st.resets, 1);
    rig_close(&r);
}

/* ---- sleeping when idle --------------------------------------------------------------------- */

static void test_idle_sleeps_on_socket(void **state)
{
    struct rig r;
    rig_open(&r, 4, 0, 100);
    run_cycles(&r, 32); /* out of reset */
    program_bars(&r, 1);
    config_write(&r, 0x04, 0x0002, 0x3, 4); /* memory space */
    run_cycles(&r, 100);
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r.a, &st);
    assert_int_equal(st.idle_waits, 0); /* the design never said it was idle */
    r.idle = true;
    run_cycles(&r, 20);
    tlpb_rtl_get_stats(r.a, &st);
    assert_true(st.idle_waits >= 10); /* slept on the socket, cycle after cycle */
    /* Input wakes it, and the TLP gets through. */
    struct tlpb_tlp w = mwr(0xFE000000u, 1, payload_pool[0], 9);
    assert_int_equal(fb_send_tlp(&r.fb, &w), 0);
    run_until_rx(&r, 1);
    rig_close(&r);
}

/* ---- pacing to a cycle cap ------------------------------------------------------------------ */

/* The wiring of --max-cycles-per-s into the clock edge, on an injected
 * clock (the arithmetic has its own tests, test_rtl_throttle.c). The design
 * takes no time; a pacing sleep advances the clock by what it asks; each
 * sleep on the socket stands for one idle second. */
static struct tlpb_rtl *paced_adapter;
static uint64_t paced_now_ns, paced_slept_ns, paced_idle_waits_seen;

static uint64_t paced_clock(void)
{
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(paced_adapter, &st);
    paced_now_ns += (st.idle_waits - paced_idle_waits_seen) * 1000000000ull;
    paced_idle_waits_seen = st.idle_waits;
    return paced_now_ns;
}

static void paced_sleep(uint64_t ns)
{
    paced_now_ns += ns;
    paced_slept_ns += ns;
}

/* Cycle until the adapter has slept idle on the socket once more. */
static void run_until_idle_sleep(struct rig *r)
{
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r->a, &st);
    uint64_t before = st.idle_waits;
    for (unsigned i = 0; i < 1000 && st.idle_waits == before; i++) {
        rig_cycle(r);
        tlpb_rtl_get_stats(r->a, &st);
    }
    assert_int_equal(st.idle_waits, before + 1);
}

/* After an idle sleep every busy cycle is paid for, at 1 ms each at
 * 1000 cycles/s, and no idle cycle is: slept == (cycles - idle cycles) ms. */
static void assert_paid_for_busy_cycles(const struct rig *r)
{
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r->a, &st);
    assert_int_equal(paced_slept_ns, (st.cycles - st.idle_waits) * 1000000ull);
    assert_int_equal(st.pacing_sleep_ns, paced_slept_ns);
}

static void paced_rig_open(struct rig *r, uint64_t max_cycles_per_s)
{
    rig_open(r, 4, 0, 100);
    r->a->opts.max_cycles_per_s = max_cycles_per_s;
    r->a->pacing_now_ns = paced_clock;
    r->a->pacing_sleep = paced_sleep;
    paced_adapter = r->a;
    paced_now_ns = 5000000000ull;
    paced_slept_ns = 0;
    paced_idle_waits_seen = 0;
}

static void test_pacing_counts_busy_cycles_only(void **state)
{
    struct rig r;
    rig_open(&r, 4, 0, 100);
    run_cycles(&r, 32);
    assert_false(r.a->pacing_started); /* no cap: nothing set up */
    rig_close(&r);

    paced_rig_open(&r, 1000); /* the clock is looked at every 10 cycles */

    run_cycles(&r, 25); /* busy (in reset, then not idle) */
    assert_int_equal(paced_slept_ns, 20000000); /* two looks at the clock, 10 ms each */
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r.a, &st);
    assert_int_equal(st.pacing_sleeps, 2);

    /* Idle: the 5 busy cycles since the last look are paid for before the
     * adapter sleeps on the socket; the idle cycles cost nothing. */
    r.idle = true;
    for (int i = 0; i < 3; i++) {
        run_until_idle_sleep(&r);
        assert_paid_for_busy_cycles(&r);
    }
    /* A burst shorter than a check after idle seconds: paid in full, the
     * idle seconds bought no credit. */
    r.idle = false;
    uint64_t slept_before = paced_slept_ns;
    run_cycles(&r, 7);
    r.idle = true;
    run_until_idle_sleep(&r);
    assert_paid_for_busy_cycles(&r);
    assert_true(paced_slept_ns - slept_before >= 7000000);
    rig_close(&r);
}

/* A completion leaves no earlier than the cycles before it allow, even in
 * the middle of a check (10 000 cycles/s: the clock is looked at every 64
 * cycles, 100 us each). */
static void test_pacing_holds_output_until_paid(void **state)
{
    struct rig r;
    paced_rig_open(&r, 10000);
    run_cycles(&r, 20); /* out of reset, busy */
    for (int i = 0; i < 4; i++) {
        config_read(&r, 0x00);
        /* The completion left in the last cycle run, before that cycle
         * was counted. */
        struct tlpb_rtl_stats st;
        tlpb_rtl_get_stats(r.a, &st);
        uint64_t before_flush = st.cycles - 1;
        assert_true(paced_slept_ns >= before_flush * 100000ull);
        assert_true(paced_slept_ns <= st.cycles * 100000ull);
        run_cycles(&r, 5 + 3u * (unsigned)i); /* land elsewhere in a check */
    }
    rig_close(&r);
}

/* ---- coupled time ---------------------------------------------------------------------------- */

/* The test plays the bridge by message order: it reacts to the frames the
 * adapter sends (on_frame) and to the adapter waiting for the host
 * (on_wait, called from inside the clock edge that waits), never to wall
 * time. A clock period of 4 ns, DMA reads of 250 ns: 63 cycles. */
#define PERIOD_PS 4000ull
#define DMA_LATENCY_CYCLES 63u
#define COUPLED_AT_PS 4000000ull /* cycle 1000 */
#define COUPLED_AT_CYCLE 1000u
#define DONE_ADDR 0xFE000800u    /* the responder's "done" write */
#define HOST_BUF_ADDR 0x90000000u

static uint8_t respond_data[4096];

/* The responder design: a read of its BAR gets its data, a completion of
 * its own read a 1-DW "done" write. */
static void design_respond(struct rig *r, const struct design_tlp *t)
{
    uint8_t buf[RTL_MAX_TLP_DWS * 4];
    struct tlpb_tlp tlp;
    const char *reason = "?";
    assert_int_equal(tlpb_rtl_decode_dws(t->dws, t->n, buf, &tlp, &reason), 0);
    if (tlp.kind == TLPB_TLP_MRD) {
        uint32_t bytes = tlpb_tlp_request_bytes(&tlp);
        struct tlpb_tlp cpl;
        tlpb_completion_for(&cpl, &tlp, 0x0100, tlpb_tlp_first_byte_address(&tlp), bytes, bytes);
        cpl.payload = respond_data;
        design_send(r, &cpl);
    } else if (tlp.kind == TLPB_TLP_CPLD) {
        struct tlpb_tlp done = mwr(DONE_ADDR, 1, payload_pool[r->tx_count % MAX_TLPS], tlp.tag);
        design_send(r, &done);
    }
}

static void seen_add(struct rig *r, const Tlpb__Envelope *env)
{
    if (!r->seen)
        r->seen = calloc(MAX_SEEN_MSGS, sizeof(*r->seen));
    assert_non_null(r->seen);
    assert_true(r->seen_count < MAX_SEEN_MSGS);
    struct seen_msg *m = &r->seen[r->seen_count++];
    memset(m, 0, sizeof(*m));
    m->body = env->body_case;
    if (env->body_case == TLPB__ENVELOPE__BODY_TLP) {
        struct tlpb_tlp t;
        const char *reason = "?";
        assert_int_equal(tlpb_tlp_from_pb(&t, env->tlp, &reason), 0);
        m->kind = t.kind;
        m->stamp = t.sim_time_ps;
        m->address = t.address;
        m->tag = t.tag;
    } else if (env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC) {
        m->kind = env->time_sync->kind;
        m->stamp = env->time_sync->sim_time_ps;
        m->sync_id = env->time_sync->sync_id;
        m->idle = env->time_sync->idle;
        m->clocked_cycles = env->time_sync->clocked_cycles;
    } else if (env->body_case == TLPB__ENVELOPE__BODY_INTERRUPT) {
        m->kind = env->interrupt->kind;
        m->stamp = env->interrupt->sim_time_ps;
    }
}

/* Read what the adapter sent. PROGRESS (wall-time paced, not for the host)
 * and errors are not logged. */
static void rig_drain(struct rig *r)
{
    Tlpb__Envelope *env;
    while ((env = fb_recv(&r->fb, 0)) != NULL) {
        bool progress = env->body_case == TLPB__ENVELOPE__BODY_TIME_SYNC &&
                        env->time_sync->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS;
        if (!progress && env->body_case != TLPB__ENVELOPE__BODY_ERROR)
            seen_add(r, env);
        if (r->on_frame)
            r->on_frame(r, env);
        tlpb_envelope_free(env);
    }
}

static void rig_wait_hook(struct tlpb_rtl *a, void *arg)
{
    struct rig *r = arg;
    (void)a;
    r->waits++;
    if (r->waits > 100000)
        fail_msg("the adapter keeps waiting (step %d)", r->step);
    rig_drain(r);
    if (r->on_wait)
        r->on_wait(r);
}

static void coupled_rig_open(struct rig *r, bool responder)
{
    rig_open_caps(r, 4, 0, 100, TLPB__CAPABILITY__CAP_TIME_SYNC);
    r->a->coupled_wait_hook = rig_wait_hook;
    r->a->coupled_wait_arg = r;
    r->responder = responder;
    run_cycles(r, 32);
    program_bars(r, 1);
    config_write(r, 0x04, 0x0006, 0x3, 4); /* memory space, bus master */
    run_cycles(r, 16);
    assert_true(r->a->time_cycle < COUPLED_AT_CYCLE);
}

static void send_sync(struct rig *r, Tlpb__TimeSyncKind kind, uint64_t t_ps, uint64_t id,
                      uint64_t until_ps)
{
    assert_int_equal(fb_send_time_sync(&r->fb, kind, t_ps, id, until_ps), 0);
}

/* Until the script stops the adapter (bounded in cycles). */
static void run_until_stopped(struct rig *r)
{
    for (unsigned i = 0; i < CYCLE_BOUND && !tlpb_rtl_finished(r->a, NULL); i++) {
        rig_cycle(r);
        rig_drain(r);
    }
    assert_true(tlpb_rtl_finished(r->a, NULL));
    rtl_flush_output(r->a);
    rig_drain(r);
}

static const struct seen_msg *find_seen(const struct rig *r, int body, int kind, unsigned nth)
{
    for (unsigned i = 0; i < r->seen_count; i++)
        if (r->seen[i].body == body && r->seen[i].kind == kind && nth-- == 0)
            return &r->seen[i];
    return NULL;
}

static unsigned count_seen(const struct rig *r, int body, int kind)
{
    unsigned n = 0;
    for (unsigned i = 0; i < r->seen_count; i++)
        n += r->seen[i].body == body && r->seen[i].kind == kind;
    return n;
}

#define SEEN_TLP(r, kind, nth) find_seen(r, TLPB__ENVELOPE__BODY_TLP, kind, nth)
#define SEEN_SYNC(r, kind, nth) find_seen(r, TLPB__ENVELOPE__BODY_TIME_SYNC, kind, nth)
#define REACHED TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED

static bool seen_reached(const struct rig *r, unsigned nth)
{
    return SEEN_SYNC(r, REACHED, nth) != NULL;
}

static void stop_at_first_reached(struct rig *r)
{
    if (seen_reached(r, 0))
        tlpb_rtl_request_stop(r->a);
}

/* COUPLED then GRANT(until): clocked up to the cycle of until (rounded up),
 * not one more, REACHED there; output stamped with its cycle. */
static void test_coupled_grant_reached(void **state)
{
    struct rig r;
    coupled_rig_open(&r, false);
    r.idle = false;
    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, COUPLED_AT_PS, 0, 0);
    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, COUPLED_AT_PS, 1,
              COUPLED_AT_PS + 100 * PERIOD_PS + 1000); /* cycle 1100.25: 1101 */
    r.on_wait = stop_at_first_reached;
    bool sent = false;
    for (unsigned i = 0; i < CYCLE_BOUND && !tlpb_rtl_finished(r.a, NULL); i++) {
        if (!sent && r.a->coupled && r.a->time_cycle >= COUPLED_AT_CYCLE + 50) {
            struct tlpb_tlp w = mwr(DONE_ADDR, 1, payload_pool[0], 1);
            design_send(&r, &w);
            sent = true;
        }
        rig_cycle(&r);
        rig_drain(&r);
    }
    assert_true(tlpb_rtl_finished(r.a, NULL));
    rig_drain(&r);

    const struct seen_msg *reached = SEEN_SYNC(&r, REACHED, 0);
    assert_non_null(reached);
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r.a, &st);
    assert_int_equal(reached->sync_id, 1);
    assert_false(reached->idle);
    assert_int_equal(reached->stamp, 1101 * PERIOD_PS);
    assert_int_equal(st.time_cycle, 1101); /* no cycle clocked beyond the grant */
    assert_int_equal(reached->clocked_cycles, st.cycles - r.a->coupled_cycles_base);
    assert_int_equal(st.cycles + st.skipped_cycles, st.time_cycle);
    assert_true(st.skipped_cycles > 0); /* the jump to the host's time at COUPLED */
    /* the design's write, stamped with the cycle it left the design in */
    const struct seen_msg *w = SEEN_TLP(&r, TLPB_TLP_MWR, 0);
    assert_non_null(w);
    assert_true(r.tx_edge[0] > COUPLED_AT_CYCLE + 50 && r.tx_edge[0] <= 1101);
    assert_int_equal(w->stamp, r.tx_edge[0] * PERIOD_PS);
    assert_true(&r.seen[r.seen_count - 1] == reached); /* nothing after REACHED */
    rig_close(&r);
}

/* A host read stamped t reaches the design at cycle ceil(t / period) and is
 * completed without a GRANT (the implicit grant); the clock stops at its
 * completion. Two stamps: the completions are the same number of cycles
 * after them. */
static void read_script(struct rig *r)
{
    static const uint64_t stamps[2] = {COUPLED_AT_PS + 10 * PERIOD_PS + 1,
                                       COUPLED_AT_PS + 50 * PERIOD_PS + 3999};
    if (r->step < 2 && count_seen(r, TLPB__ENVELOPE__BODY_TLP, TLPB_TLP_CPLD) ==
                           (unsigned)r->step) {
        struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .requester_id = 0x0010,
                              .tag = (uint8_t)(r->step + 1), .bar_hint = TLPB_NO_BAR,
                              .sim_time_ps = stamps[r->step]};
        assert_int_equal(tlpb_tlp_set_mem_range(&rd, BAR0_ADDR + 0x40, 4), 0);
        assert_int_equal(fb_send_tlp(&r->fb, &rd), 0);
        r->step++;
    } else if (r->step == 2 && count_seen(r, TLPB__ENVELOPE__BODY_TLP, TLPB_TLP_CPLD) == 2) {
        tlpb_rtl_request_stop(r->a);
    }
}

static void test_coupled_input_at_its_stamp(void **state)
{
    struct rig r;
    coupled_rig_open(&r, true);
    r.idle = true;
    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, COUPLED_AT_PS, 0, 0);
    r.on_wait = read_script;
    run_until_stopped(&r);

    const struct seen_msg *c1 = SEEN_TLP(&r, TLPB_TLP_CPLD, 0);
    const struct seen_msg *c2 = SEEN_TLP(&r, TLPB_TLP_CPLD, 1);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_int_equal(c1->tag, 1);
    assert_int_equal(c2->tag, 2);
    assert_int_equal(c1->stamp % PERIOD_PS, 0);
    assert_int_equal(c2->stamp % PERIOD_PS, 0);
    uint64_t n1 = c1->stamp / PERIOD_PS - (COUPLED_AT_CYCLE + 11); /* ceil(t1 / period) */
    uint64_t n2 = c2->stamp / PERIOD_PS - (COUPLED_AT_CYCLE + 51); /* ceil(t2 / period) */
    assert_true(n1 > 0 && n1 < 50);
    assert_int_equal(n1, n2);
    /* no grant was ever sent: none answered; the clock stopped at the
     * second completion */
    assert_int_equal(count_seen(&r, TLPB__ENVELOPE__BODY_TIME_SYNC, REACHED), 0);
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r.a, &st);
    assert_int_equal(st.time_cycle, c2->stamp / PERIOD_PS);
    rig_close(&r);
}

/* An idle design over a grant of a second of device time: REACHED{idle}
 * at the grant's end without a single cycle clocked for it. (After COUPLED
 * the design is first seen quiet for 8 clocked cycles: a short first
 * grant.) */
static void idle_script(struct rig *r)
{
    if (r->step == 0 && seen_reached(r, 0)) {
        send_sync(r, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, SEEN_SYNC(r, REACHED, 0)->stamp, 6,
                  COUPLED_AT_PS + 1000000000000ull);
        r->step = 1;
    } else if (r->step == 1 && seen_reached(r, 1)) {
        tlpb_rtl_request_stop(r->a);
    }
}

static void test_coupled_idle_grant_costs_no_cycles(void **state)
{
    struct rig r;
    coupled_rig_open(&r, false);
    r.idle = true;
    run_cycles(&r, 20); /* quiet: asleep on the socket */
    const uint64_t one_second_ps = 1000000000000ull;
    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, COUPLED_AT_PS, 0, 0);
    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, COUPLED_AT_PS, 5,
              COUPLED_AT_PS + 100 * PERIOD_PS);
    r.on_wait = idle_script;
    run_until_stopped(&r);

    const struct seen_msg *first = SEEN_SYNC(&r, REACHED, 0);
    const struct seen_msg *second = SEEN_SYNC(&r, REACHED, 1);
    assert_non_null(first);
    assert_non_null(second);
    assert_int_equal(first->sync_id, 5);
    assert_true(first->idle);
    assert_int_equal(first->stamp, COUPLED_AT_PS + 100 * PERIOD_PS);
    assert_true(first->clocked_cycles <= RTL_QUIET_CYCLES + 1);
    assert_int_equal(second->sync_id, 6);
    assert_true(second->idle);
    assert_int_equal(second->stamp, COUPLED_AT_PS + one_second_ps);
    assert_int_equal(second->clocked_cycles, first->clocked_cycles); /* none for the second */
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r.a, &st);
    assert_int_equal(st.cycles - r.a->coupled_cycles_base, second->clocked_cycles);
    assert_int_equal(st.time_cycle, (COUPLED_AT_PS + one_second_ps) / PERIOD_PS);
    assert_int_equal(st.cycles + st.skipped_cycles, st.time_cycle);
    assert_int_equal(st.reached_idle, 2);
    rig_close(&r);
}

/* A DMA read of the design: its completion takes effect 63 cycles after
 * the request whenever the bridge answers it. */
struct dma_run {
    bool answer_late;     /* answer only once the adapter waits for it */
    bool answered;
    uint64_t read_stamp;
    unsigned waits_held;  /* waits while the read was outstanding */
    uint64_t held_at_cycle;
};
static struct dma_run dma_run;

static void dma_answer(struct rig *r, uint64_t stamp)
{
    const struct seen_msg *rd = SEEN_TLP(r, TLPB_TLP_MRD, 0);
    struct tlpb_tlp req = {.kind = TLPB_TLP_MRD, .requester_id = 0x0100, .tag = rd->tag,
                           .bar_hint = TLPB_NO_BAR};
    assert_int_equal(tlpb_tlp_set_mem_range(&req, HOST_BUF_ADDR, 16), 0);
    struct tlpb_tlp cpl;
    tlpb_completion_for(&cpl, &req, 0x0000, HOST_BUF_ADDR, 16, 16);
    cpl.payload = payload_pool[1];
    cpl.sim_time_ps = stamp; /* the host's time: not what decides */
    assert_int_equal(fb_send_tlp(&r->fb, &cpl), 0);
    dma_run.answered = true;
}

static void dma_on_frame(struct rig *r, const Tlpb__Envelope *env)
{
    if (env->body_case == TLPB__ENVELOPE__BODY_TLP && env->tlp->kind == TLPB__TLP_KIND__TLP_MRD &&
        !dma_run.answer_late && !dma_run.answered)
        dma_answer(r, 1); /* at once, stamped early */
}

static void dma_on_wait(struct rig *r)
{
    if (r->a->dma_waiting_count) {
        dma_run.waits_held++;
        dma_run.held_at_cycle = r->a->time_cycle;
    }
    if (dma_run.answer_late && !dma_run.answered && SEEN_TLP(r, TLPB_TLP_MRD, 0))
        dma_answer(r, COUPLED_AT_PS + 1000000000ull); /* late, stamped far ahead */
    if (r->step == 0 && seen_reached(r, 0)) {
        /* a second grant, with a host write due in it */
        struct tlpb_tlp w = mwr(BAR0_ADDR + 0x10, 1, payload_pool[2], 3);
        w.sim_time_ps = COUPLED_AT_PS + 700 * PERIOD_PS + 5;
        assert_int_equal(fb_send_tlp(&r->fb, &w), 0);
        send_sync(r, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, COUPLED_AT_PS + 600 * PERIOD_PS, 2,
                  COUPLED_AT_PS + 900 * PERIOD_PS);
        r->step = 1;
    } else if (r->step == 1 && seen_reached(r, 1)) {
        tlpb_rtl_request_stop(r->a);
    }
}

static void dma_scenario(struct rig *r, bool answer_late)
{
    memset(&dma_run, 0, sizeof(dma_run));
    dma_run.answer_late = answer_late;
    coupled_rig_open(r, true);
    r->idle = true;
    r->on_frame = dma_on_frame;
    r->on_wait = dma_on_wait;
    send_sync(r, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, COUPLED_AT_PS, 0, 0);
    send_sync(r, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, COUPLED_AT_PS, 1,
              COUPLED_AT_PS + 500 * PERIOD_PS);
    bool sent = false;
    for (unsigned i = 0; i < CYCLE_BOUND && !tlpb_rtl_finished(r->a, NULL); i++) {
        if (!sent && r->a->coupled && r->a->time_cycle >= COUPLED_AT_CYCLE + 20) {
            struct tlpb_tlp rd = {.kind = TLPB_TLP_MRD, .requester_id = 0x0100, .tag = 9,
                                  .bar_hint = TLPB_NO_BAR};
            assert_int_equal(tlpb_tlp_set_mem_range(&rd, HOST_BUF_ADDR, 16), 0);
            design_send(r, &rd);
            sent = true;
        }
        rig_cycle(r);
        rig_drain(r);
    }
    assert_true(tlpb_rtl_finished(r->a, NULL));
    rtl_flush_output(r->a);
    rig_drain(r);
}

static void assert_same_sequence(const struct rig *a, const struct rig *b)
{
    assert_int_equal(a->seen_count, b->seen_count);
    for (unsigned i = 0; i < a->seen_count; i++) {
        const struct seen_msg *x = &a->seen[i], *y = &b->seen[i];
        if (x->body != y->body || x->kind != y->kind || x->stamp != y->stamp ||
            x->sync_id != y->sync_id || x->idle != y->idle ||
            x->clocked_cycles != y->clocked_cycles || x->address != y->address)
            fail_msg("message %u differs: body %d kind %d at %llu ps vs body %d kind %d at %llu ps",
                     i, x->body, x->kind, (unsigned long long)x->stamp, y->body, y->kind,
                     (unsigned long long)y->stamp);
    }
}

static void test_coupled_dma_read_held_deterministic(void **state)
{
    static struct rig early, late; /* large: not on the stack */
    dma_scenario(&early, false);
    unsigned early_held = dma_run.waits_held;
    dma_scenario(&late, true);
    /* the late answer came while the clock held at the completion's cycle */
    assert_true(dma_run.waits_held >= 1);
    const struct seen_msg *rd = SEEN_TLP(&late, TLPB_TLP_MRD, 0);
    assert_non_null(rd);
    uint64_t issue_cycle = rd->stamp / PERIOD_PS;
    assert_int_equal(dma_run.held_at_cycle, issue_cycle + DMA_LATENCY_CYCLES);
    (void)early_held;

    /* the "done" write after the completion: same stamp either way, after
     * the latency */
    const struct seen_msg *done_early = SEEN_TLP(&early, TLPB_TLP_MWR, 0);
    const struct seen_msg *done_late = SEEN_TLP(&late, TLPB_TLP_MWR, 0);
    assert_non_null(done_early);
    assert_non_null(done_late);
    assert_int_equal(done_early->address, DONE_ADDR);
    assert_true(done_late->stamp > (issue_cycle + DMA_LATENCY_CYCLES) * PERIOD_PS);
    /* everything the bridge saw, in order and with its stamps */
    assert_same_sequence(&early, &late);
    assert_int_equal(count_seen(&late, TLPB__ENVELOPE__BODY_TIME_SYNC, REACHED), 2);
    /* the design got the completion, then the host write */
    assert_int_equal(early.rx_count, 2);
    assert_int_equal(late.rx_count, 2);
    rig_close(&early);
    rig_close(&late);
}

/* FREE: the clock runs on without grants, output is unstamped again. */
static void free_script(struct rig *r)
{
    if (r->step == 0) {
        send_sync(r, TLPB__TIME_SYNC_KIND__TIME_SYNC_FREE, 0, 0, 0);
        r->step = 1;
    }
}

static void test_coupled_free_runs_again(void **state)
{
    struct rig r;
    coupled_rig_open(&r, false);
    r.idle = false;
    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, COUPLED_AT_PS, 0, 0);
    r.on_wait = free_script;
    for (unsigned i = 0; i < CYCLE_BOUND && r.step == 0; i++) {
        rig_cycle(&r);
        rig_drain(&r);
    }
    assert_int_equal(r.step, 1); /* waited for a grant once coupled, then FREE */
    assert_false(r.a->coupled);
    struct tlpb_tlp w = mwr(DONE_ADDR, 1, payload_pool[0], 1);
    design_send(&r, &w);
    run_cycles(&r, 300);
    rtl_flush_output(r.a);
    rig_drain(&r);
    const struct seen_msg *m = SEEN_TLP(&r, TLPB_TLP_MWR, 0);
    assert_non_null(m);
    assert_int_equal(m->stamp, 0);
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r.a, &st);
    assert_true(st.time_cycle > COUPLED_AT_CYCLE + 250); /* no allowance any more */
    rig_close(&r);
}

/* Pacing in coupled time: idle jumps cost no pacing and bank no credit
 * (1000 cycles/s: 1 ms a clocked cycle; each wait on the socket stands for
 * a wall second). */
static uint64_t paced_phase2_start_ns;
static void paced_coupled_script(struct rig *r)
{
    if (r->step == 0 && seen_reached(r, 0)) {
        /* Busy for the next grant: a host write wakes the design, which
         * then stays busy (its idle output changes at its next edge). */
        r->idle = false;
        paced_phase2_start_ns = paced_slept_ns;
        struct tlpb_tlp w = mwr(BAR0_ADDR, 1, payload_pool[0], 5);
        w.sim_time_ps = SEEN_SYNC(r, REACHED, 0)->stamp;
        assert_int_equal(fb_send_tlp(&r->fb, &w), 0);
        send_sync(r, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 0, 2,
                  SEEN_SYNC(r, REACHED, 0)->stamp + 40 * PERIOD_PS);
        r->step = 1;
    } else if (r->step == 1 && seen_reached(r, 1)) {
        tlpb_rtl_request_stop(r->a);
    }
}

static void test_coupled_pacing_counts_clocked_cycles_only(void **state)
{
    static struct rig r;
    coupled_rig_open(&r, false);
    r.idle = true;
    run_cycles(&r, 20); /* quiet */
    struct tlpb_rtl_stats st;
    tlpb_rtl_get_stats(r.a, &st);
    r.a->opts.max_cycles_per_s = 1000;
    r.a->pacing_now_ns = paced_clock;
    r.a->pacing_sleep = paced_sleep;
    paced_adapter = r.a;
    paced_now_ns = 5000000000ull;
    paced_slept_ns = 0;
    paced_idle_waits_seen = st.idle_waits;
    uint64_t cycles_before = st.cycles;

    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, COUPLED_AT_PS, 0, 0);
    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, COUPLED_AT_PS, 1,
              COUPLED_AT_PS + 1000000000000ull); /* an idle second */
    r.on_wait = paced_coupled_script;
    run_until_stopped(&r);

    const struct seen_msg *idle = SEEN_SYNC(&r, REACHED, 0);
    const struct seen_msg *busy = SEEN_SYNC(&r, REACHED, 1);
    assert_non_null(idle);
    assert_non_null(busy);
    assert_true(idle->idle);
    assert_false(busy->idle);
    assert_int_equal(busy->stamp - idle->stamp, 40 * PERIOD_PS);
    tlpb_rtl_get_stats(r.a, &st);
    assert_true(st.skipped_cycles >= 250000000ull - COUPLED_AT_CYCLE);
    /* The 2.5e8 skipped cycles cost nothing: paid are the clocked ones */
    assert_true(paced_slept_ns <= (st.cycles - cycles_before) * 1000000ull);
    /* and the second of waiting bought no credit: the 40 busy cycles of
     * the second grant are paid in full */
    assert_int_equal(paced_slept_ns - paced_phase2_start_ns, 40 * 1000000ull);
    rig_close(&r);
}

/* The clock joins the host's at COUPLED even when the free-running clock is
 * ahead: the same guest sees the same device times however long the
 * simulator ran before. */
static void test_coupled_clock_joins_the_host(void **state)
{
    struct rig r;
    coupled_rig_open(&r, false);
    r.idle = false;
    run_cycles(&r, 200); /* free-running well past cycle 40 */
    assert_true(r.a->time_cycle > 100);
    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, 40 * PERIOD_PS, 0, 0);
    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 40 * PERIOD_PS, 3, 60 * PERIOD_PS);
    r.on_wait = stop_at_first_reached;
    bool sent = false;
    for (unsigned i = 0; i < CYCLE_BOUND && !tlpb_rtl_finished(r.a, NULL); i++) {
        if (!sent && r.a->coupled) {
            struct tlpb_tlp w = mwr(DONE_ADDR, 1, payload_pool[0], 1);
            design_send(&r, &w);
            sent = true;
        }
        rig_cycle(&r);
        rig_drain(&r);
    }
    const struct seen_msg *reached = SEEN_SYNC(&r, REACHED, 0);
    assert_non_null(reached);
    assert_int_equal(reached->stamp, 60 * PERIOD_PS);
    const struct seen_msg *w = SEEN_TLP(&r, TLPB_TLP_MWR, 0);
    assert_non_null(w);
    assert_true(w->stamp > 40 * PERIOD_PS && w->stamp <= 60 * PERIOD_PS);
    assert_int_equal(r.a->time_cycle, 60);
    rig_close(&r);
}

/* PROGRESS while clocking a long grant, on the socket's cadence (the wall
 * clock of its rate limit injected: a second per look), with the device's
 * time and the cycles clocked; none once the grant is reached. */
static uint64_t progress_wall_ns;
static uint64_t progress_wall(void)
{
    progress_wall_ns += 1000000000ull;
    return progress_wall_ns;
}

static unsigned progress_count;
static uint64_t progress_last_cycles, progress_last_stamp;

static void progress_on_frame(struct rig *r, const Tlpb__Envelope *env)
{
    if (env->body_case != TLPB__ENVELOPE__BODY_TIME_SYNC ||
        env->time_sync->kind != TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS)
        return;
    const Tlpb__TimeSync *ts = env->time_sync;
    assert_false(seen_reached(r, 0)); /* none after the grant is reached */
    assert_true(progress_count == 0 || ts->clocked_cycles > progress_last_cycles);
    assert_true(progress_count == 0 || ts->sim_time_ps > progress_last_stamp);
    assert_true(ts->sim_time_ps < (COUPLED_AT_CYCLE + 2000) * PERIOD_PS);
    assert_int_equal(ts->sim_time_ps % PERIOD_PS, 0);
    progress_last_cycles = ts->clocked_cycles;
    progress_last_stamp = ts->sim_time_ps;
    progress_count++;
}

static void test_coupled_progress_during_a_long_grant(void **state)
{
    struct rig r;
    coupled_rig_open(&r, false);
    r.idle = false;
    tlpb_sim_set_wall_clock(r.a->sim, progress_wall);
    progress_count = 0;
    progress_last_cycles = progress_last_stamp = 0;
    r.on_frame = progress_on_frame;
    r.on_wait = stop_at_first_reached;
    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_COUPLED, COUPLED_AT_PS, 0, 0);
    send_sync(&r, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, COUPLED_AT_PS, 1,
              COUPLED_AT_PS + 2000 * PERIOD_PS);
    run_until_stopped(&r);
    assert_true(seen_reached(&r, 0));
    /* one per look at the socket: every 16 cycles of the 2000 */
    assert_true(progress_count >= 2000 / RTL_READ_EMPTY_CYCLES - 2);
    tlpb_sim_set_wall_clock(r.a->sim, NULL);
    rig_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_known_values),
        cmocka_unit_test(test_rx_framing_64),
        cmocka_unit_test(test_rx_framing_128),
        cmocka_unit_test(test_tx_framing_64),
        cmocka_unit_test(test_tx_framing_128),
        cmocka_unit_test(test_config_space),
        cmocka_unit_test(test_interrupt_port),
        cmocka_unit_test(test_bad_tlp_from_design),
        cmocka_unit_test(test_reset_abandons_reads),
        cmocka_unit_test(test_idle_sleeps_on_socket),
        cmocka_unit_test(test_pacing_counts_busy_cycles_only),
        cmocka_unit_test(test_pacing_holds_output_until_paid),
        cmocka_unit_test(test_coupled_grant_reached),
        cmocka_unit_test(test_coupled_clock_joins_the_host),
        cmocka_unit_test(test_coupled_input_at_its_stamp),
        cmocka_unit_test(test_coupled_idle_grant_costs_no_cycles),
        cmocka_unit_test(test_coupled_dma_read_held_deterministic),
        cmocka_unit_test(test_coupled_free_runs_again),
        cmocka_unit_test(test_coupled_progress_during_a_long_grant),
        cmocka_unit_test(test_coupled_pacing_counts_clocked_cycles_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
