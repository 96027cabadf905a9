/* Writes the seed corpus of every fuzz target: a few well-formed inputs per
 * target, made with the wire library itself, so the fuzzers start from
 * messages that pass the decoders and reach the code behind them.
 *   fuzz_seed_gen DIR    (DIR/<target>/<seed> files; DIR is fuzz/corpus)
 * The output is deterministic: regenerating must give the checked-in files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dmacopy_description.h"
#include "tlpb/ring.h"
#include "tlpb/wire.h"

static const char *out_dir;

/* A growable byte string. */
struct bytes {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct bytes *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_u8(struct bytes *b, unsigned v)
{
    uint8_t x = (uint8_t)v;
    put(b, &x, 1);
}

static void put_le(struct bytes *b, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        put_u8(b, (unsigned)(v >> (8 * i)) & 0xff);
}

static void save(const char *target, const char *name, const struct bytes *b)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", out_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->p, 1, b->n, f) != b->n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void reset(struct bytes *b)
{
    b->n = 0;
}

/* ---- Messages -------------------------------------------------------------- */

static void frame(struct bytes *b, const Tlpb__Envelope *env)
{
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, 1u << 24, TLPB_HARD_MAX_FRAME_BYTES);
    if (tlpb_obuf_append(&ob, env, true) != 0)
        abort();
    put(b, tlpb_obuf_head(&ob), tlpb_obuf_pending(&ob));
    tlpb_obuf_free(&ob);
}

static void hello(struct bytes *b, Tlpb__Role role, const char *device, uint64_t caps,
                  bool with_description)
{
    struct tlpb_devdesc desc = DMACOPY_DESCRIPTION;
    struct tlpb_devdesc_pb desc_pb;
    tlpb_devdesc_to_pb(&desc_pb, &desc);
    Tlpb__Hello h;
    tlpb_hello_init(&h, role, device, "seed");
    h.capabilities = caps;
    if (with_description)
        h.description = &desc_pb.msg;
    h.completion_timeout_ms = 20;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    frame(b, &env);
}

static void tlp_frame(struct bytes *b, const struct tlpb_tlp *tlp)
{
    Tlpb__Tlp pb = TLPB__TLP__INIT;
    tlpb_tlp_to_pb(&pb, tlp);
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_TLP;
    env.tlp = &pb;
    frame(b, &env);
}

static void control(struct bytes *b, const char *command, const char *arg0, const char *arg1)
{
    char *args[2] = {(char *)arg0, (char *)arg1};
    Tlpb__ControlRequest req = TLPB__CONTROL_REQUEST__INIT;
    req.command = (char *)command;
    req.n_args = arg1 ? 2 : arg0 ? 1 : 0;
    req.args = args;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_CONTROL_REQUEST;
    env.control_request = &req;
    frame(b, &env);
}

static void interrupt(struct bytes *b, Tlpb__InterruptKind kind, uint32_t vector)
{
    Tlpb__Interrupt irq;
    Tlpb__Envelope env;
    tlpb_interrupt_envelope(&env, &irq, kind, vector);
    frame(b, &env);
}

static void reset_msg(struct bytes *b, Tlpb__ResetKind kind)
{
    Tlpb__Reset r = TLPB__RESET__INIT;
    r.kind = kind;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_RESET;
    env.reset = &r;
    frame(b, &env);
}

static void time_sync_msg(struct bytes *b, Tlpb__TimeSyncKind kind, uint64_t id, uint64_t t,
                          uint64_t until, bool idle)
{
    Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
    ts.kind = kind;
    ts.sync_id = id;
    ts.sim_time_ps = t;
    ts.grant_until_ps = until;
    ts.idle = idle;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_TIME_SYNC;
    env.time_sync = &ts;
    frame(b, &env);
}

static void error_msg(struct bytes *b, const char *reason)
{
    Tlpb__Error e = TLPB__ERROR__INIT;
    e.reason = (char *)reason;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_ERROR;
    env.error = &e;
    frame(b, &env);
}

/* ---- TLPs ------------------------------------------------------------------- */

static const uint8_t pattern[64] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                                    0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01};

#define BAR0 UINT64_C(0xfebf0000)

static struct tlpb_tlp cfg_rd(uint16_t reg, uint8_t tag)
{
    return (struct tlpb_tlp){.kind = TLPB_TLP_CFGRD0, .requester_id = 0, .tag = tag,
                             .length_dw = 1, .first_be = 0xf, .completer_id = 0x0100,
                             .cfg_register = reg, .bar_hint = TLPB_NO_BAR};
}

static struct tlpb_tlp cfg_wr(uint16_t reg, uint8_t tag, const uint8_t *value4)
{
    struct tlpb_tlp t = cfg_rd(reg, tag);
    t.kind = TLPB_TLP_CFGWR0;
    t.payload = value4;
    t.payload_bytes = 4;
    return t;
}

static struct tlpb_tlp mem_rd(uint64_t addr, uint32_t len, uint8_t tag, int8_t bar)
{
    struct tlpb_tlp t = {.kind = TLPB_TLP_MRD, .requester_id = 0, .tag = tag, .bar_hint = bar};
    tlpb_tlp_set_mem_range(&t, addr, len);
    return t;
}

static struct tlpb_tlp mem_wr(uint64_t addr, uint32_t len, int8_t bar, const uint8_t *data)
{
    struct tlpb_tlp t = mem_rd(addr, len, 0, bar);
    t.kind = TLPB_TLP_MWR;
    t.payload = data;
    t.payload_bytes = t.length_dw * 4;
    return t;
}

static struct tlpb_tlp cpl_d(uint8_t tag, uint32_t byte_count, uint8_t lower, uint32_t dw,
                             const uint8_t *data)
{
    return (struct tlpb_tlp){.kind = TLPB_TLP_CPLD, .requester_id = 0x0100, .tag = tag,
                             .completer_id = 0, .length_dw = dw, .byte_count = byte_count,
                             .lower_address = lower, .payload = data, .payload_bytes = dw * 4,
                             .bar_hint = TLPB_NO_BAR};
}

/* ---- Targets -------------------------------------------------------------- */

static void seeds_frame(void)
{
    struct bytes b = {0};
    static const uint8_t le32_bar0[4] = {0x00, 0x00, 0xbf, 0xfe};
    static const uint8_t le32_cmd[4] = {0x06, 0x00, 0x00, 0x00};

    put_u8(&b, 0xbf);
    hello(&b, TLPB__ROLE__ROLE_HOST, "dev0", 0, false);
    save("fuzz_frame", "hello_host", &b);

    reset(&b);
    put_u8(&b, 0xbf);
    hello(&b, TLPB__ROLE__ROLE_SIMULATOR, "dev0", TLPB__CAPABILITY__CAP_UNSPLIT_DMA, true);
    save("fuzz_frame", "hello_simulator", &b);

    reset(&b);
    put_u8(&b, 0x90);
    hello(&b, TLPB__ROLE__ROLE_CONTROL, "", 0, false);
    control(&b, "status", NULL, NULL);
    control(&b, "switch", "dev0", "fallback");
    save("fuzz_frame", "control", &b);

    reset(&b);
    put_u8(&b, 0xff);
    struct tlpb_tlp t = cfg_rd(0x00, 1);
    tlp_frame(&b, &t);
    t = cfg_wr(0x10, 2, le32_bar0);
    tlp_frame(&b, &t);
    t = cfg_wr(0x04, 3, le32_cmd);
    tlp_frame(&b, &t);
    t = mem_rd(BAR0 + 8, 4, 4, 0);
    tlp_frame(&b, &t);
    t = mem_wr(BAR0 + 0x10, 16, 0, pattern);
    tlp_frame(&b, &t);
    t = cpl_d(5, 8, 0x08, 2, pattern);
    tlp_frame(&b, &t);
    t = (struct tlpb_tlp){.kind = TLPB_TLP_CPL, .tag = 6, .status = TLPB_CPL_UR,
                          .byte_count = 4, .bar_hint = TLPB_NO_BAR};
    tlp_frame(&b, &t);
    save("fuzz_frame", "tlps", &b);

    reset(&b);
    put_u8(&b, 0x07); /* 8-byte pieces */
    interrupt(&b, TLPB__INTERRUPT_KIND__IRQ_MSIX, 1);
    reset_msg(&b, TLPB__RESET_KIND__RESET_FUNCTION_LEVEL);
    error_msg(&b, "seed error");
    save("fuzz_frame", "misc_small_pieces", &b);

    reset(&b);
    put_u8(&b, 0x80);
    put_le(&b, UINT32_MAX, 4); /* a length prefix beyond any max frame */
    save("fuzz_frame", "oversize_prefix", &b);
    free(b.p);
}

static void seed_wire(struct bytes *b, const char *name, const struct tlpb_tlp *t)
{
    uint8_t hdr[TLPB_WIRE_HEADER_MAX];
    int n = tlpb_tlp_encode_header(t, hdr);
    if (n < 0)
        abort();
    reset(b);
    put_u8(b, 0);
    put(b, hdr, (size_t)n);
    if (t->payload_bytes)
        put(b, t->payload, t->payload_bytes);
    save("fuzz_tlp", name, b);
}

static void seed_pb(struct bytes *b, const char *name, const struct tlpb_tlp *t)
{
    Tlpb__Tlp pb = TLPB__TLP__INIT;
    tlpb_tlp_to_pb(&pb, t);
    size_t n = tlpb__tlp__get_packed_size(&pb);
    uint8_t *buf = malloc(n + 1);
    if (!buf)
        abort();
    tlpb__tlp__pack(&pb, buf);
    reset(b);
    put_u8(b, 1);
    put(b, buf, n);
    free(buf);
    save("fuzz_tlp", name, b);
}

static void seeds_tlp(void)
{
    struct bytes b = {0};
    static const uint8_t value[4] = {0xff, 0xff, 0xff, 0xff};
    struct tlpb_tlp mrd3 = mem_rd(BAR0 + 0x20, 8, 7, TLPB_NO_BAR);
    struct tlpb_tlp mrd4 = mem_rd(UINT64_C(0x123456789a0) + 2, 6, 8, TLPB_NO_BAR);
    struct tlpb_tlp mwr3 = mem_wr(BAR0 + 0x41, 12, TLPB_NO_BAR, pattern);
    struct tlpb_tlp mwr4 = mem_wr(UINT64_C(0x100000000), 64, TLPB_NO_BAR, pattern);
    struct tlpb_tlp cfgrd = cfg_rd(0x44, 9);
    struct tlpb_tlp cfgwr = cfg_wr(0x10, 10, value);
    cfgwr.first_be = 0x3;
    struct tlpb_tlp cpld = cpl_d(11, 12, 0x44, 3, pattern);
    struct tlpb_tlp cpl = {.kind = TLPB_TLP_CPL, .tag = 12, .status = TLPB_CPL_CA,
                           .byte_count = 4, .completer_id = 0x0100, .bar_hint = TLPB_NO_BAR};
    seed_wire(&b, "wire_mrd_3dw", &mrd3);
    seed_wire(&b, "wire_mrd_4dw", &mrd4);
    seed_wire(&b, "wire_mwr_3dw", &mwr3);
    seed_wire(&b, "wire_mwr_4dw", &mwr4);
    seed_wire(&b, "wire_cfgrd0", &cfgrd);
    seed_wire(&b, "wire_cfgwr0", &cfgwr);
    seed_wire(&b, "wire_cpld", &cpld);
    seed_wire(&b, "wire_cpl", &cpl);
    mrd3.bar_hint = 0;
    seed_pb(&b, "pb_mrd_bar0", &mrd3);
    seed_pb(&b, "pb_mwr_4dw", &mwr4);
    seed_pb(&b, "pb_cfgwr0", &cfgwr);
    seed_pb(&b, "pb_cpld", &cpld);
    seed_pb(&b, "pb_cpl", &cpl);

    reset(&b);
    put_u8(&b, 2);
    put_le(&b, 0xffc, 8);     /* address: crosses 4 KiB */
    put_le(&b, 9000, 4);      /* length */
    put_u8(&b, 0x41);         /* 256-byte max, RCB 128 */
    save("fuzz_tlp", "ranges_cross_page", &b);
    reset(&b);
    put_u8(&b, 2);
    put_le(&b, UINT64_MAX - 7, 8);
    put_le(&b, 8, 4);
    put_u8(&b, 0x85);
    save("fuzz_tlp", "ranges_top_of_memory", &b);
    free(b.p);
}

/* fuzz_tags operations (see fuzz_tags.c). */
enum { OP_ALLOC = 0, OP_COMPLETE = 1, OP_EXPIRE = 2, OP_RELEASE = 3, OP_DEADLINE = 4 };

static void op_alloc(struct bytes *b, uint64_t addr, uint16_t len, uint8_t deadline, uint8_t flags)
{
    put_u8(b, OP_ALLOC);
    put_le(b, addr, 8);
    put_le(b, len, 2);
    put_u8(b, deadline);
    put_u8(b, flags);
}

static void op_complete(struct bytes *b, uint8_t which, uint8_t how, uint8_t chunk)
{
    put_u8(b, OP_COMPLETE);
    put_u8(b, which);
    put_u8(b, how);
    put_u8(b, chunk);
    if (how & 0x80)
        put_le(b, 0x00000005, 4);
}

static void seeds_tags(void)
{
    struct bytes b = {0};
    /* One 256-byte read completed in four RCB pieces. */
    put_u8(&b, 32);
    op_alloc(&b, 0x1000, 256, 10, 0);
    op_complete(&b, 0, 0, 0);
    op_complete(&b, 0, 0, 1);
    put_u8(&b, OP_DEADLINE);
    op_complete(&b, 0, 2, 0);
    save("fuzz_tags", "split_read", &b);

    /* Unaligned start and end, two reads interleaved. */
    reset(&b);
    put_u8(&b, 8);
    op_alloc(&b, 0x2003, 301, 20, 0);
    op_alloc(&b, 0x3ffe, 7, 30, 0);
    op_complete(&b, 1, 0, 0);
    op_complete(&b, 0, 0, 2);
    op_complete(&b, 0, 2, 0);
    op_complete(&b, 0, 2, 0);
    save("fuzz_tags", "unaligned_interleaved", &b);

    /* Zero-length reads: a CplD and a Cpl. */
    reset(&b);
    put_u8(&b, 4);
    op_alloc(&b, 0x5004, 0, 1, 1);
    op_alloc(&b, 0x6000, 0, 1, 1);
    op_complete(&b, 0, 0, 0);
    op_complete(&b, 0, 1, 0);
    save("fuzz_tags", "zero_length", &b);

    /* Every tag in use, then timeouts, release and bad completions. */
    reset(&b);
    put_u8(&b, 3);
    for (unsigned i = 0; i < 4; i++)
        op_alloc(&b, 0x7000 + 0x100 * i, 128, (uint8_t)(5 * i), i == 2 ? 4 : 0);
    put_u8(&b, OP_DEADLINE);
    put_u8(&b, OP_EXPIRE);
    put_u8(&b, 5);
    put_u8(&b, OP_RELEASE);
    put_u8(&b, 0);
    op_complete(&b, 0, 0x80 | (1 << 2), 0);
    op_complete(&b, 0x85, 0, 0);
    save("fuzz_tags", "full_expire_release", &b);

    /* A 4 KiB + read at the top of memory, and a poisoned completion. */
    reset(&b);
    put_u8(&b, 0);
    op_alloc(&b, 0x40, 6000, 200, 2);
    op_complete(&b, 0, 0, 63);
    op_complete(&b, 0, 0x80 | (4 << 2), 0);
    save("fuzz_tags", "large_and_poisoned", &b);
    free(b.p);
}

static void put_description(struct bytes *b, const struct tlpb_devdesc *desc)
{
    struct tlpb_devdesc_pb pb;
    tlpb_devdesc_to_pb(&pb, desc);
    size_t n = tlpb__device_description__get_packed_size(&pb.msg);
    uint8_t *buf = malloc(n + 1);
    if (!buf)
        abort();
    tlpb__device_description__pack(&pb.msg, buf);
    put_le(b, n, 2);
    put(b, buf, n);
    free(buf);
}

static void cfg_op(struct bytes *b, uint8_t op, uint16_t reg, uint32_t value, uint8_t arg)
{
    put_u8(b, op);
    put_le(b, reg, 2);
    put_le(b, value, 4);
    put_u8(b, arg);
}

static void cfg_enumerate(struct bytes *b)
{
    cfg_op(b, 1, 0x10, 0xffffffff, 0xf); /* size BAR0 */
    cfg_op(b, 0, 0x10, 0, 0);
    cfg_op(b, 1, 0x10, 0xfebf0000, 0xf);
    cfg_op(b, 1, 0x18, 0xfebe0000, 0xf);
    cfg_op(b, 1, 0x04, 0x0006, 0x3);     /* memory space, bus master */
    cfg_op(b, 1, 0x48, 0x5020, 0x3);     /* device control: MPS 256, MRRS 4096 */
    cfg_op(b, 1, 0xa0, 0x80000000, 0xc); /* MSI-X enable */
    cfg_op(b, 3, 0x003, 0x10, 0);        /* decode BAR0 + 0x10, 4 bytes */
    cfg_op(b, 4, 0x004, 0x20, 0x10);     /* request with BAR hint 0 */
    cfg_op(b, 1, 0x04, 0x0000f900, 0xc); /* RW1C status */
    cfg_op(b, 1, 0x48, 0x8000, 0xc);     /* initiate FLR */
}

static void seeds_cfgspace(void)
{
    struct bytes b = {0};
    struct tlpb_devdesc desc = DMACOPY_DESCRIPTION;
    put_description(&b, &desc);
    cfg_enumerate(&b);
    save("fuzz_cfgspace", "dmacopy_enumerate", &b);

    /* 64-bit prefetchable BAR, an I/O BAR, MSI with 64-bit addresses. */
    struct tlpb_devdesc rich = {
        .vendor_id = 0x8086, .device_id = 0x1234, .class_code = 0x020000,
        .bars = {[0] = {.size_bytes = 1u << 20, .is_64bit = true, .prefetchable = true},
                 [2] = {.size_bytes = 256, .is_io = true},
                 [3] = {.size_bytes = 16384}},
        .msix_vectors = 16, .msix_table_bar = 3, .msix_table_offset = 0x2000,
        .msix_pba_bar = 3, .msix_pba_offset = 0x3000,
        .msi_vectors = 4, .msi_64bit = true, .intx_pin = 2,
        .max_payload_supported_bytes = 512,
    };
    reset(&b);
    put_description(&b, &rich);
    cfg_op(&b, 1, 0x10, 0xffffffff, 0xf);
    cfg_op(&b, 1, 0x14, 0xffffffff, 0xf);
    cfg_op(&b, 1, 0x10, 0x00000000, 0xf);
    cfg_op(&b, 1, 0x14, 0x00000001, 0xf);
    cfg_op(&b, 1, 0x18, 0x0000c001, 0xf);
    cfg_op(&b, 1, 0x1c, 0xfe000000, 0xf);
    cfg_op(&b, 1, 0x04, 0x0007, 0x3);
    cfg_op(&b, 1, 0x80, 0x00410000, 0x4); /* MSI enable, 2 vectors */
    cfg_op(&b, 3, 0x00f, 0x100, 0);
    cfg_op(&b, 4, 0x008, 0x10, 0x01);
    cfg_op(&b, 2, 0, 0, 0);
    save("fuzz_cfgspace", "rich_description", &b);
    free(b.p);
}

/* fuzz_bridge_conn records: header (bit 0 peer, bit 1 then EOF, bit 2 then
 * run the bridge's timers), length. */
static void record(struct bytes *b, unsigned header, const struct bytes *msg)
{
    put_u8(b, header);
    put_le(b, msg->n, 2);
    put(b, msg->p, msg->n);
}

static void seeds_bridge(void)
{
    struct bytes b = {0}, m = {0};
    static const uint8_t le32_bar0[4] = {0x00, 0x00, 0xbf, 0xfe};
    static const uint8_t le32_cmd[4] = {0x06, 0x00, 0x00, 0x00};
    static const uint8_t le32_ones[4] = {0xff, 0xff, 0xff, 0xff};

    /* A host enumerates dev0 on the fallback and touches BAR0. */
    hello(&m, TLPB__ROLE__ROLE_HOST, "dev0", 0, false);
    record(&b, 0, &m);
    reset(&m);
    struct tlpb_tlp t = cfg_rd(0x00, 1);
    tlp_frame(&m, &t);
    t = cfg_wr(0x10, 2, le32_ones);
    tlp_frame(&m, &t);
    t = cfg_rd(0x10, 3);
    tlp_frame(&m, &t);
    t = cfg_wr(0x10, 4, le32_bar0);
    tlp_frame(&m, &t);
    t = cfg_wr(0x04, 5, le32_cmd);
    tlp_frame(&m, &t);
    t = mem_rd(BAR0, 4, 6, 0);
    tlp_frame(&m, &t);
    t = mem_wr(BAR0 + 4, 8, 0, pattern);
    tlp_frame(&m, &t);
    reset_msg(&m, TLPB__RESET_KIND__RESET_HOT);
    record(&b, 0, &m);
    save("fuzz_bridge_conn", "host_fallback", &b);

    /* A simulator attaches to dev0, a host reads BAR0, the simulator
     * answers (the bridge's first tag is 0), DMA-reads host memory and
     * raises MSI-X vector 1. */
    reset(&b);
    reset(&m);
    hello(&m, TLPB__ROLE__ROLE_SIMULATOR, "dev0", 0, true);
    record(&b, 1, &m);
    reset(&m);
    hello(&m, TLPB__ROLE__ROLE_HOST, "dev0", 0, false);
    t = cfg_wr(0x10, 1, le32_bar0);
    tlp_frame(&m, &t);
    t = cfg_wr(0x04, 2, le32_cmd);
    tlp_frame(&m, &t);
    t = mem_rd(BAR0 + 8, 4, 3, 0);
    tlp_frame(&m, &t);
    record(&b, 0, &m);
    reset(&m);
    t = cpl_d(0, 4, 0x08, 1, pattern);
    t.requester_id = 0;
    t.completer_id = 0x0100;
    tlp_frame(&m, &t);
    t = mem_rd(0x10000, 64, 1, TLPB_NO_BAR);
    t.requester_id = 0x0100;
    tlp_frame(&m, &t);
    interrupt(&m, TLPB__INTERRUPT_KIND__IRQ_MSIX, 1);
    record(&b, 1, &m);
    reset(&m);
    t = cpl_d(1, 64, 0x00, 16, pattern);
    tlp_frame(&m, &t);
    record(&b, 2, &m);
    save("fuzz_bridge_conn", "host_and_simulator", &b);

    /* A simulator attaches to dev0 and stays silent: the host's read
     * times out (record header bit 2 lets the bridge's timers run). */
    reset(&b);
    reset(&m);
    hello(&m, TLPB__ROLE__ROLE_SIMULATOR, "dev0", 0, true);
    record(&b, 1, &m);
    reset(&m);
    hello(&m, TLPB__ROLE__ROLE_HOST, "dev0", 0, false);
    t = cfg_rd(0x00, 1);
    tlp_frame(&m, &t);
    t = mem_rd(BAR0, 4, 2, 0);
    tlp_frame(&m, &t);
    record(&b, 4, &m);
    reset(&m);
    t = cpl_d(0, 4, 0x00, 1, pattern);
    t.requester_id = 0;
    t.completer_id = 0x0100;
    tlp_frame(&m, &t); /* late: after the timeout */
    record(&b, 1, &m);
    save("fuzz_bridge_conn", "silent_simulator_timeout", &b);

    /* Coupled time on dev0: both sides offer CAP_TIME_SYNC; stamped
     * requests, a GRANT relayed, PROGRESS, the REACHED, a stamped
     * completion and interrupt; then a REACHED for no grant and a GRANT
     * from the simulator (refused). */
    reset(&b);
    reset(&m);
    hello(&m, TLPB__ROLE__ROLE_SIMULATOR, "dev0", TLPB__CAPABILITY__CAP_TIME_SYNC, true);
    record(&b, 1, &m);
    reset(&m);
    hello(&m, TLPB__ROLE__ROLE_HOST, "dev0", TLPB__CAPABILITY__CAP_TIME_SYNC, false);
    t = cfg_wr(0x10, 1, le32_bar0);
    t.sim_time_ps = 1000;
    tlp_frame(&m, &t);
    t = cfg_wr(0x04, 2, le32_cmd);
    t.sim_time_ps = 2000;
    tlp_frame(&m, &t);
    t = mem_rd(BAR0 + 8, 4, 3, 0);
    t.sim_time_ps = 3000;
    tlp_frame(&m, &t);
    time_sync_msg(&m, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 1, 4000, 4000, false);
    record(&b, 0, &m);
    reset(&m);
    time_sync_msg(&m, TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS, 0, 3500, 0, false);
    t = cpl_d(0, 4, 0x08, 1, pattern);
    t.requester_id = 0;
    t.completer_id = 0x0100;
    t.sim_time_ps = 3600;
    tlp_frame(&m, &t);
    interrupt(&m, TLPB__INTERRUPT_KIND__IRQ_MSIX, 1);
    time_sync_msg(&m, TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED, 1, 4000, 0, true);
    time_sync_msg(&m, TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED, 9, 5000, 0, true);
    time_sync_msg(&m, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 2, 5000, 6000, false);
    record(&b, 5, &m);
    reset(&m);
    time_sync_msg(&m, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 0, 6000, 6000, false);
    time_sync_msg(&m, TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT, 3, 7000, 7000, false);
    record(&b, 0, &m);
    save("fuzz_bridge_conn", "coupled_time", &b);

    /* A control peer asks for status and stats, switches and reloads. */
    reset(&b);
    reset(&m);
    hello(&m, TLPB__ROLE__ROLE_CONTROL, "", 0, false);
    control(&m, "status", NULL, NULL);
    control(&m, "stats", "dev1", NULL);
    control(&m, "switch", "dev0", "fallback");
    control(&m, "reload", "dev0", "/nonexistent/model.so");
    control(&m, "trace", "off", NULL);
    record(&b, 1, &m);
    save("fuzz_bridge_conn", "control", &b);

    /* Fast DMA on dev1 (fallback, UR reads): a large write and reads. */
    reset(&b);
    reset(&m);
    hello(&m, TLPB__ROLE__ROLE_HOST, "dev1", TLPB__CAPABILITY__CAP_UNSPLIT_DMA, false);
    t = cfg_wr(0x10, 1, le32_bar0);
    tlp_frame(&m, &t);
    t = mem_rd(BAR0 + 0x100, 64, 2, 0);
    tlp_frame(&m, &t);
    t = mem_rd(BAR0 + 0x100, 0, 3, TLPB_NO_BAR);
    tlp_frame(&m, &t);
    error_msg(&m, "host says hello");
    record(&b, 0, &m);
    save("fuzz_bridge_conn", "fast_dma_ur", &b);

    /* Protocol violations: a TLP before Hello; a second Hello. */
    reset(&b);
    reset(&m);
    t = cfg_rd(0, 1);
    tlp_frame(&m, &t);
    record(&b, 0, &m);
    reset(&m);
    hello(&m, TLPB__ROLE__ROLE_SIMULATOR, "dev2", 0, true);
    hello(&m, TLPB__ROLE__ROLE_SIMULATOR, "dev2", 0, true);
    record(&b, 1, &m);
    save("fuzz_bridge_conn", "violations", &b);
    free(m.p);
    free(b.p);
}

/* ---- fuzz_ring: records as a producer leaves them (docs/protocol.md,
 * "Ring layout and records") ---------------------------------------------- */

static void ring_record(struct bytes *b, unsigned type, const struct bytes *body)
{
    size_t len = (TLPB_RING_RECORD_HEADER_BYTES + body->n + 7) & ~(size_t)7;
    put_le(b, len, 4);
    put_le(b, type, 2);
    put_le(b, len - TLPB_RING_RECORD_HEADER_BYTES - body->n, 2);
    put(b, body->p, body->n);
    for (size_t i = TLPB_RING_RECORD_HEADER_BYTES + body->n; i < len; i++)
        put_u8(b, 0);
}

static void ring_tlp(struct bytes *b, const struct tlpb_tlp *t)
{
    struct bytes body = {0};
    put_u8(&body, t->kind);
    put_u8(&body, t->tag);
    put_le(&body, t->requester_id, 2);
    put_u8(&body, t->traffic_class);
    put_u8(&body, t->attributes);
    put_u8(&body, t->poisoned);
    put_u8(&body, t->first_be);
    put_u8(&body, t->last_be);
    put_u8(&body, t->lower_address);
    put_u8(&body, t->bcm);
    put_u8(&body, t->bar_hint >= 0 ? (unsigned)t->bar_hint + 1 : 0);
    put_le(&body, t->completer_id, 2);
    put_le(&body, t->cfg_register, 2);
    put_le(&body, t->length_dw, 4);
    put_le(&body, t->byte_count, 4);
    put_le(&body, t->status, 4);
    put_le(&body, t->payload_bytes, 4);
    put_le(&body, t->address, 8);
    put_le(&body, t->sim_time_ps, 8);
    if (t->payload_bytes)
        put(&body, t->payload, t->payload_bytes);
    ring_record(b, TLPB_RING_MSG_TLP, &body);
    free(body.p);
}

static void ring_interrupt(struct bytes *b, Tlpb__InterruptKind kind, uint32_t vector)
{
    struct bytes body = {0};
    put_le(&body, kind, 4);
    put_le(&body, vector, 4);
    put_le(&body, 0, 8);
    ring_record(b, TLPB_RING_MSG_INTERRUPT, &body);
    free(body.p);
}

static void ring_envelope(struct bytes *b, void (*make)(struct bytes *, const char *),
                          const char *arg)
{
    /* The frame minus its 4-byte length prefix is the Envelope. */
    struct bytes f = {0}, body = {0};
    make(&f, arg);
    put(&body, f.p + 4, f.n - 4);
    ring_record(b, TLPB_RING_MSG_ENVELOPE, &body);
    free(f.p);
    free(body.p);
}

static void ring_pad(struct bytes *b, size_t len)
{
    put_le(b, len, 4);
    put_le(b, TLPB_RING_RECORD_PAD, 2);
    put_le(b, 0, 2);
    for (size_t i = TLPB_RING_RECORD_HEADER_BYTES; i < len; i++)
        put_u8(b, 0);
}

static void ring_seed(const char *name, unsigned flags, const struct bytes *records)
{
    struct bytes b = {0};
    put_u8(&b, flags);
    put_le(&b, records->n, 8);
    put_le(&b, 1, 4); /* the consumer was asleep */
    put_le(&b, 0, 4);
    put(&b, records->p, records->n);
    save("fuzz_ring", name, &b);
    free(b.p);
}

static void seeds_ring(void)
{
    struct bytes r = {0};
    static const uint8_t payload[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    struct tlpb_tlp t = mem_rd(0x1000, 64, 5, 0);
    ring_tlp(&r, &t);
    t = mem_rd(0x2000, 16, 6, TLPB_NO_BAR);
    t.kind = TLPB_TLP_MWR;
    t.payload = payload;
    t.payload_bytes = sizeof(payload);
    ring_tlp(&r, &t);
    ring_interrupt(&r, TLPB__INTERRUPT_KIND__IRQ_MSIX, 3);
    ring_envelope(&r, error_msg, "a reason");
    ring_seed("mixed", 2, &r);

    /* From 4 KiB before the end: records, a PAD to the end, more records. */
    reset(&r);
    for (int i = 0; i < 40; i++)
        ring_interrupt(&r, TLPB__INTERRUPT_KIND__IRQ_MSI, (uint32_t)i);
    ring_tlp(&r, &t);
    ring_pad(&r, 4096 - r.n);
    ring_tlp(&r, &t);
    ring_interrupt(&r, TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT, 0);
    ring_seed("wrap", 3, &r);
    free(r.p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seed_gen DIR\n");
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        perror(out_dir);
        return 1;
    }
    seeds_frame();
    seeds_tlp();
    seeds_tags();
    seeds_cfgspace();
    seeds_bridge();
    seeds_ring();
    return 0;
}
