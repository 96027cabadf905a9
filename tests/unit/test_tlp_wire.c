/* PCIe header encoding and decoding. The expected bytes are written out by
 * hand from the header figures of the PCIe base specification, not
 * computed with the code under test. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlpb/tlp.h"

static struct tlpb_tlp blank_tlp(enum tlpb_tlp_kind kind)
{
    struct tlpb_tlp tlp;
    memset(&tlp, 0, sizeof(tlp));
    tlp.kind = kind;
    tlp.bar_hint = TLPB_NO_BAR;
    return tlp;
}

static void expect_header(const struct tlpb_tlp *tlp, const uint8_t *expected, int expected_len)
{
    uint8_t hdr[TLPB_WIRE_HEADER_MAX];
    memset(hdr, 0xa5, sizeof(hdr));
    assert_int_equal(tlpb_tlp_encode_header(tlp, hdr), expected_len);
    assert_memory_equal(hdr, expected, (size_t)expected_len);
}

/* Decode buf and expect success consuming all of it. */
static struct tlpb_tlp decode_ok(const uint8_t *buf, size_t len)
{
    struct tlpb_tlp tlp;
    const char *reason = NULL;
    memset(&tlp, 0x5a, sizeof(tlp));
    int n = tlpb_tlp_decode_wire(buf, len, &tlp, &reason);
    if (n < 0)
        fail_msg("decode failed: %s", reason ? reason : "(no reason)");
    assert_int_equal(n, (int)len);
    assert_int_equal(tlp.bar_hint, TLPB_NO_BAR);
    return tlp;
}

static void decode_fails(const uint8_t *buf, size_t len, int err, const char *why)
{
    struct tlpb_tlp tlp;
    const char *reason = NULL;
    assert_int_equal(tlpb_tlp_decode_wire(buf, len, &tlp, &reason), err);
    assert_non_null(reason);
    assert_string_equal(reason, why);
}

/* ---- hand-checked vectors ---------------------------------------------- */

static void test_mrd_3dw_vector(void **state)
{
    (void)state;
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_MRD);
    tlp.requester_id = 0x0100;
    tlp.tag = 0x05;
    tlp.length_dw = 1;
    tlp.first_be = 0xf;
    tlp.address = 0x1000;
    tlp.bar_hint = 2; /* not on the link */
    static const uint8_t expected[] = {
        0x00, 0x00, 0x00, 0x01, /* Fmt 000 Type 00000, TC 0, Length 1 */
        0x01, 0x00, 0x05, 0x0f, /* requester 01:00.0, tag 5, BE 0/F */
        0x00, 0x00, 0x10, 0x00, /* address 0x1000 */
    };
    expect_header(&tlp, expected, 12);

    struct tlpb_tlp got = decode_ok(expected, sizeof(expected));
    assert_int_equal(got.kind, TLPB_TLP_MRD);
    assert_int_equal(got.requester_id, 0x0100);
    assert_int_equal(got.tag, 0x05);
    assert_int_equal(got.length_dw, 1);
    assert_int_equal(got.first_be, 0xf);
    assert_int_equal(got.last_be, 0);
    assert_int_equal(got.address, 0x1000);
    assert_int_equal(got.payload_bytes, 0);
    assert_null(got.payload);
}

static void test_mrd_3dw_high_address_below_4g(void **state)
{
    (void)state;
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_MRD);
    tlp.requester_id = 0xabcd;
    tlp.tag = 0xff;
    tlp.length_dw = 0x80;
    tlp.first_be = 0xe;
    tlp.last_be = 0x7;
    tlp.address = 0xfedcba98;
    static const uint8_t expected[] = {
        0x00, 0x00, 0x00, 0x80,
        0xab, 0xcd, 0xff, 0x7e,
        0xfe, 0xdc, 0xba, 0x98,
    };
    expect_header(&tlp, expected, 12);
    struct tlpb_tlp got = decode_ok(expected, sizeof(expected));
    assert_int_equal(got.address, 0xfedcba98);
    assert_int_equal(got.first_be, 0xe);
    assert_int_equal(got.last_be, 0x7);
    assert_int_equal(got.length_dw, 0x80);
}

static void test_mwr_4dw_vector(void **state)
{
    (void)state;
    static const uint8_t data[8] = { 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22 };
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_MWR);
    tlp.requester_id = 0x0210; /* 02:02.0 */
    tlp.tag = 0x00;
    tlp.length_dw = 2;
    tlp.first_be = 0xc;
    tlp.last_be = 0x3;
    tlp.address = 0x123456788ull;
    tlp.payload = data;
    tlp.payload_bytes = 8;
    static const uint8_t expected[] = {
        0x60, 0x00, 0x00, 0x02, /* Fmt 011 Type 00000, Length 2 */
        0x02, 0x10, 0x00, 0x3c, /* requester, tag, last BE 3 first BE C */
        0x00, 0x00, 0x00, 0x01, /* address[63:32] */
        0x23, 0x45, 0x67, 0x88, /* address[31:2], 00 */
        0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22,
    };
    expect_header(&tlp, expected, 16);

    struct tlpb_tlp got = decode_ok(expected, sizeof(expected));
    assert_int_equal(got.kind, TLPB_TLP_MWR);
    assert_int_equal(got.address, 0x123456788ull);
    assert_int_equal(got.requester_id, 0x0210);
    assert_int_equal(got.first_be, 0xc);
    assert_int_equal(got.last_be, 0x3);
    assert_int_equal(got.payload_bytes, 8);
    assert_ptr_equal(got.payload, expected + 16);
}

static void test_mwr_exactly_4g_uses_4dw(void **state)
{
    (void)state;
    static const uint8_t data[4] = { 1, 2, 3, 4 };
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_MWR);
    tlp.length_dw = 1;
    tlp.first_be = 0xf;
    tlp.address = 0x100000000ull;
    tlp.payload = data;
    tlp.payload_bytes = 4;
    static const uint8_t expected[] = {
        0x60, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x0f,
        0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00,
    };
    expect_header(&tlp, expected, 16);

    /* One below 4 GiB: 3DW. */
    tlp.address = 0xfffffffcull;
    static const uint8_t expected_3dw[] = {
        0x40, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x0f,
        0xff, 0xff, 0xff, 0xfc,
    };
    expect_header(&tlp, expected_3dw, 12);
}

static void test_cfgrd0_extended_register_vector(void **state)
{
    (void)state;
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_CFGRD0);
    tlp.requester_id = 0x0000;
    tlp.tag = 0x1f;
    tlp.length_dw = 1;
    tlp.first_be = 0xf;
    tlp.completer_id = 0x0308; /* 03:01.0 */
    tlp.cfg_register = 0xa48;  /* extended register 0xA, register 0x12 */
    static const uint8_t expected[] = {
        0x04, 0x00, 0x00, 0x01, /* Fmt 000 Type 00100 */
        0x00, 0x00, 0x1f, 0x0f,
        0x03, 0x08, 0x0a, 0x48, /* bus 3, dev 1 fn 0, ext reg A, reg 0x12 << 2 */
    };
    expect_header(&tlp, expected, 12);

    struct tlpb_tlp got = decode_ok(expected, sizeof(expected));
    assert_int_equal(got.kind, TLPB_TLP_CFGRD0);
    assert_int_equal(got.completer_id, 0x0308);
    assert_int_equal(got.cfg_register, 0xa48);
    assert_int_equal(got.tag, 0x1f);
    assert_int_equal(got.address, 0);
}

static void test_cfgwr0_vector(void **state)
{
    (void)state;
    static const uint8_t data[4] = { 0x06, 0x04, 0x00, 0x00 };
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_CFGWR0);
    tlp.requester_id = 0x0000;
    tlp.tag = 0x02;
    tlp.length_dw = 1;
    tlp.first_be = 0x3;
    tlp.completer_id = 0x0100;
    tlp.cfg_register = 0x004; /* command register */
    tlp.payload = data;
    tlp.payload_bytes = 4;
    static const uint8_t expected[] = {
        0x44, 0x00, 0x00, 0x01, /* Fmt 010 Type 00100 */
        0x00, 0x00, 0x02, 0x03,
        0x01, 0x00, 0x00, 0x04,
        0x06, 0x04, 0x00, 0x00,
    };
    expect_header(&tlp, expected, 12);

    struct tlpb_tlp got = decode_ok(expected, sizeof(expected));
    assert_int_equal(got.kind, TLPB_TLP_CFGWR0);
    assert_int_equal(got.cfg_register, 0x004);
    assert_int_equal(got.first_be, 0x3);
    assert_int_equal(got.payload_bytes, 4);
    assert_memory_equal(got.payload, data, 4);
}

static void test_cpld_vector(void **state)
{
    (void)state;
    static const uint8_t data[8] = { 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66 };
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_CPLD);
    tlp.completer_id = 0x0100;
    tlp.requester_id = 0x0008; /* 00:01.0 */
    tlp.tag = 0x42;
    tlp.status = TLPB_CPL_SC;
    tlp.byte_count = 0x2a6; /* 678 bytes still owed */
    tlp.lower_address = 0x42;
    tlp.length_dw = 2;
    tlp.payload = data;
    tlp.payload_bytes = 8;
    static const uint8_t expected[] = {
        0x4a, 0x00, 0x00, 0x02, /* Fmt 010 Type 01010, Length 2 */
        0x01, 0x00, 0x02, 0xa6, /* completer, status 000 BCM 0 byte count 0x2a6 */
        0x00, 0x08, 0x42, 0x42, /* requester, tag, lower address */
        0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
    };
    expect_header(&tlp, expected, 12);

    struct tlpb_tlp got = decode_ok(expected, sizeof(expected));
    assert_int_equal(got.kind, TLPB_TLP_CPLD);
    assert_int_equal(got.completer_id, 0x0100);
    assert_int_equal(got.requester_id, 0x0008);
    assert_int_equal(got.tag, 0x42);
    assert_int_equal(got.status, TLPB_CPL_SC);
    assert_int_equal(got.byte_count, 0x2a6);
    assert_int_equal(got.lower_address, 0x42);
    assert_int_equal(got.length_dw, 2);
    assert_false(got.bcm);
    assert_ptr_equal(got.payload, expected + 12);
}

static void test_cpl_status_vectors(void **state)
{
    (void)state;
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_CPL);
    tlp.completer_id = 0x0100;
    tlp.requester_id = 0x0008;
    tlp.tag = 0x7f;
    tlp.status = TLPB_CPL_UR;
    tlp.byte_count = 0x104;
    tlp.lower_address = 0x10;
    tlp.length_dw = 0;
    static const uint8_t ur[] = {
        0x0a, 0x00, 0x00, 0x00, /* Fmt 000 Type 01010, Length reserved */
        0x01, 0x00, 0x21, 0x04, /* status 001, byte count 0x104 */
        0x00, 0x08, 0x7f, 0x10,
    };
    expect_header(&tlp, ur, 12);
    struct tlpb_tlp got = decode_ok(ur, sizeof(ur));
    assert_int_equal(got.kind, TLPB_TLP_CPL);
    assert_int_equal(got.status, TLPB_CPL_UR);
    assert_int_equal(got.byte_count, 0x104);
    assert_int_equal(got.length_dw, 0);

    tlp.status = TLPB_CPL_CRS;
    tlp.byte_count = 4;
    tlp.lower_address = 0;
    static const uint8_t crs[] = {
        0x0a, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x40, 0x04, /* status 010 */
        0x00, 0x08, 0x7f, 0x00,
    };
    expect_header(&tlp, crs, 12);
    assert_int_equal(decode_ok(crs, sizeof(crs)).status, TLPB_CPL_CRS);

    tlp.status = TLPB_CPL_CA;
    static const uint8_t ca[] = {
        0x0a, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x80, 0x04, /* status 100 */
        0x00, 0x08, 0x7f, 0x00,
    };
    expect_header(&tlp, ca, 12);
    assert_int_equal(decode_ok(ca, sizeof(ca)).status, TLPB_CPL_CA);
}

static void test_cpl_length_field_ignored(void **state)
{
    (void)state;
    /* Length is reserved on a Cpl: a receiver ignores whatever is there. */
    static const uint8_t cpl[] = {
        0x0a, 0x00, 0x00, 0x05,
        0x01, 0x00, 0x20, 0x10,
        0x00, 0x08, 0x01, 0x00,
    };
    struct tlpb_tlp got = decode_ok(cpl, sizeof(cpl));
    assert_int_equal(got.length_dw, 0);
    assert_int_equal(got.payload_bytes, 0);
    /* And the encoder writes 0 whatever length_dw says. */
    got.length_dw = 7;
    static const uint8_t expected[] = {
        0x0a, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x20, 0x10,
        0x00, 0x08, 0x01, 0x00,
    };
    expect_header(&got, expected, 12);
}

static void test_length_1024_and_byte_count_4096(void **state)
{
    (void)state;
    static uint8_t data[4096];
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_CPLD);
    tlp.completer_id = 0x0000;
    tlp.requester_id = 0x0100;
    tlp.tag = 0x03;
    tlp.byte_count = 4096;
    tlp.lower_address = 0;
    tlp.length_dw = 1024;
    tlp.bcm = true;
    tlp.payload = data;
    tlp.payload_bytes = sizeof(data);
    static const uint8_t expected[] = {
        0x4a, 0x00, 0x00, 0x00, /* Length 0 = 1024 DW */
        0x00, 0x00, 0x10, 0x00, /* BCM, byte count 0 = 4096 */
        0x01, 0x00, 0x03, 0x00,
    };
    expect_header(&tlp, expected, 12);

    static uint8_t wire[12 + 4096];
    memcpy(wire, expected, 12);
    for (size_t i = 0; i < 4096; i++)
        wire[12 + i] = (uint8_t)i;
    struct tlpb_tlp got = decode_ok(wire, sizeof(wire));
    assert_int_equal(got.length_dw, 1024);
    assert_int_equal(got.byte_count, 4096);
    assert_int_equal(got.payload_bytes, 4096);
    assert_true(got.bcm);

    /* MWr of 1024 DW above 4 GiB. */
    struct tlpb_tlp mwr = blank_tlp(TLPB_TLP_MWR);
    mwr.length_dw = 1024;
    mwr.first_be = 0xf;
    mwr.last_be = 0xf;
    mwr.address = 0x200000000ull;
    static const uint8_t expected_mwr[] = {
        0x60, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0xff,
        0x00, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00,
    };
    expect_header(&mwr, expected_mwr, 16);
}

static void test_tc_attributes_ep_placement(void **state)
{
    (void)state;
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_MRD);
    tlp.length_dw = 0x201; /* Length[9:8] = 10 */
    tlp.first_be = 0xf;
    tlp.last_be = 0xf;
    tlp.address = 0x0;
    tlp.traffic_class = 5;
    tlp.attributes = TLPB_ATTR_NO_SNOOP | TLPB_ATTR_RELAXED_ORDERING | TLPB_ATTR_ID_ORDERING;
    tlp.poisoned = true;
    static const uint8_t all[] = {
        0x00, 0x54, 0x72, 0x01, /* TC 101 in [6:4], Attr[2] bit 2; EP, Attr[1:0] 11 */
        0x00, 0x00, 0x00, 0xff,
        0x00, 0x00, 0x00, 0x00,
    };
    expect_header(&tlp, all, 12);
    struct tlpb_tlp got = decode_ok(all, sizeof(all));
    assert_int_equal(got.traffic_class, 5);
    assert_int_equal(got.attributes, 7);
    assert_true(got.poisoned);
    assert_int_equal(got.length_dw, 0x201);

    /* Each attribute alone, to pin the bit of each. */
    tlp.traffic_class = 0;
    tlp.poisoned = false;
    tlp.length_dw = 1;
    tlp.last_be = 0;
    uint8_t hdr[TLPB_WIRE_HEADER_MAX];

    tlp.attributes = TLPB_ATTR_RELAXED_ORDERING;
    assert_int_equal(tlpb_tlp_encode_header(&tlp, hdr), 12);
    assert_int_equal(hdr[1], 0x00);
    assert_int_equal(hdr[2], 0x20);

    tlp.attributes = TLPB_ATTR_NO_SNOOP;
    assert_int_equal(tlpb_tlp_encode_header(&tlp, hdr), 12);
    assert_int_equal(hdr[1], 0x00);
    assert_int_equal(hdr[2], 0x10);

    tlp.attributes = TLPB_ATTR_ID_ORDERING;
    assert_int_equal(tlpb_tlp_encode_header(&tlp, hdr), 12);
    assert_int_equal(hdr[1], 0x04);
    assert_int_equal(hdr[2], 0x00);

    tlp.attributes = 0;
    tlp.traffic_class = 7;
    assert_int_equal(tlpb_tlp_encode_header(&tlp, hdr), 12);
    assert_int_equal(hdr[1], 0x70);

    tlp.traffic_class = 0;
    tlp.poisoned = true;
    assert_int_equal(tlpb_tlp_encode_header(&tlp, hdr), 12);
    assert_int_equal(hdr[1], 0x00);
    assert_int_equal(hdr[2], 0x40);
}

static void test_decode_ignores_reserved_bits(void **state)
{
    (void)state;
    /* 4DW address bits [1:0] are reserved; the config header's reserved
     * bits in bytes 10 and 11 too; a completion's byte 11 bit 7. */
    static const uint8_t mrd[] = {
        0x20, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x0f,
        0x00, 0x00, 0x00, 0x10,
        0x00, 0x00, 0x00, 0x07,
    };
    assert_int_equal(decode_ok(mrd, sizeof(mrd)).address, 0x1000000004ull);

    static const uint8_t cfg[] = {
        0x04, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x0f,
        0x01, 0x00, 0xf1, 0x07,
    };
    assert_int_equal(decode_ok(cfg, sizeof(cfg)).cfg_register, 0x104);

    static const uint8_t cpl[] = {
        0x0a, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x04,
        0x00, 0x00, 0x00, 0x80,
    };
    assert_int_equal(decode_ok(cpl, sizeof(cpl)).lower_address, 0);
}

/* ---- round trips --------------------------------------------------------- */

static void round_trip(const struct tlpb_tlp *in)
{
    uint8_t wire[TLPB_WIRE_HEADER_MAX + 4096];
    int hdr_len = tlpb_tlp_encode_header(in, wire);
    assert_true(hdr_len == 12 || hdr_len == 16);
    if (in->payload_bytes)
        memcpy(wire + hdr_len, in->payload, in->payload_bytes);

    struct tlpb_tlp out = decode_ok(wire, (size_t)hdr_len + in->payload_bytes);
    assert_int_equal(out.kind, in->kind);
    assert_int_equal(out.requester_id, in->requester_id);
    assert_int_equal(out.tag, in->tag);
    assert_int_equal(out.traffic_class, in->traffic_class);
    assert_int_equal(out.attributes, in->attributes);
    assert_int_equal(out.poisoned, in->poisoned);
    assert_int_equal(out.length_dw, in->length_dw);
    assert_int_equal(out.first_be, in->first_be);
    assert_int_equal(out.last_be, in->last_be);
    assert_int_equal(out.address, in->address);
    assert_int_equal(out.completer_id, in->completer_id);
    assert_int_equal(out.cfg_register, in->cfg_register);
    assert_int_equal(out.status, in->status);
    assert_int_equal(out.byte_count, in->byte_count);
    assert_int_equal(out.lower_address, in->lower_address);
    assert_int_equal(out.bcm, in->bcm);
    assert_int_equal(out.payload_bytes, in->payload_bytes);
    if (in->payload_bytes)
        assert_memory_equal(out.payload, in->payload, in->payload_bytes);
}

static void test_round_trip_every_kind(void **state)
{
    (void)state;
    static uint8_t data[4096];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 13 + 1);

    static const uint64_t addresses[] = {
        0x0, 0x1000, 0xfffffffcull, 0x100000000ull, 0xfffffffffffffffcull, 0x123456789abcull,
    };
    for (size_t i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++) {
        struct tlpb_tlp mrd = blank_tlp(TLPB_TLP_MRD);
        mrd.requester_id = 0x1234;
        mrd.tag = (uint8_t)(0x80 + i);
        mrd.traffic_class = (uint8_t)(i & 7);
        mrd.attributes = (uint8_t)((i + 1) & 7);
        mrd.length_dw = 16;
        mrd.first_be = 0xe;
        mrd.last_be = 0x1;
        mrd.address = addresses[i];
        round_trip(&mrd);

        struct tlpb_tlp mwr = mrd;
        mwr.kind = TLPB_TLP_MWR;
        mwr.poisoned = true;
        mwr.payload = data;
        mwr.payload_bytes = 64;
        round_trip(&mwr);
    }

    struct tlpb_tlp cfgrd = blank_tlp(TLPB_TLP_CFGRD0);
    cfgrd.requester_id = 0x0000;
    cfgrd.tag = 0x10;
    cfgrd.length_dw = 1;
    cfgrd.first_be = 0x5;
    cfgrd.completer_id = 0xfff8;
    cfgrd.cfg_register = 0xffc;
    round_trip(&cfgrd);

    struct tlpb_tlp cfgwr = cfgrd;
    cfgwr.kind = TLPB_TLP_CFGWR0;
    cfgwr.cfg_register = 0x010;
    cfgwr.payload = data;
    cfgwr.payload_bytes = 4;
    round_trip(&cfgwr);

    static const enum tlpb_cpl_status statuses[] = {
        TLPB_CPL_SC, TLPB_CPL_UR, TLPB_CPL_CRS, TLPB_CPL_CA,
    };
    for (size_t i = 0; i < 4; i++) {
        struct tlpb_tlp cpl = blank_tlp(TLPB_TLP_CPL);
        cpl.completer_id = 0x0100;
        cpl.requester_id = 0xbeef;
        cpl.tag = 0xfe;
        cpl.status = statuses[i];
        cpl.byte_count = (uint32_t)(1 + i * 1365);
        cpl.lower_address = (uint8_t)(0x7f - i);
        cpl.traffic_class = 3;
        cpl.attributes = TLPB_ATTR_RELAXED_ORDERING;
        round_trip(&cpl);
    }

    struct tlpb_tlp cpld = blank_tlp(TLPB_TLP_CPLD);
    cpld.completer_id = 0x0100;
    cpld.requester_id = 0x0001;
    cpld.tag = 0x00;
    cpld.byte_count = 4095;
    cpld.lower_address = 0x01;
    cpld.length_dw = 1024;
    cpld.payload = data;
    cpld.payload_bytes = 4096;
    cpld.poisoned = true;
    round_trip(&cpld);
}

/* ---- encoder refusals ---------------------------------------------------- */

static void test_encode_refuses_unrepresentable(void **state)
{
    (void)state;
    uint8_t hdr[TLPB_WIRE_HEADER_MAX];
    struct tlpb_tlp base = blank_tlp(TLPB_TLP_MWR);
    base.length_dw = 1;
    base.first_be = 0xf;
    base.address = 0x1000;
    assert_int_equal(tlpb_tlp_encode_header(&base, hdr), 12);

    struct tlpb_tlp t = base;
    t.length_dw = 1025;
    assert_int_equal(tlpb_tlp_encode_header(&t, hdr), -EINVAL);
    t = base;
    t.length_dw = 0;
    assert_int_equal(tlpb_tlp_encode_header(&t, hdr), -EINVAL);
    t = base;
    t.address = 0x1002;
    assert_int_equal(tlpb_tlp_encode_header(&t, hdr), -EINVAL);
    t = base;
    t.traffic_class = 8;
    assert_int_equal(tlpb_tlp_encode_header(&t, hdr), -EINVAL);
    t = base;
    t.attributes = 8;
    assert_int_equal(tlpb_tlp_encode_header(&t, hdr), -EINVAL);
    t = base;
    t.first_be = 0x10;
    assert_int_equal(tlpb_tlp_encode_header(&t, hdr), -EINVAL);
    t = base;
    t.kind = TLPB_TLP_INVALID;
    assert_int_equal(tlpb_tlp_encode_header(&t, hdr), -EINVAL);
    t = base;
    t.kind = (enum tlpb_tlp_kind)99;
    assert_int_equal(tlpb_tlp_encode_header(&t, hdr), -EINVAL);

    struct tlpb_tlp cfg = blank_tlp(TLPB_TLP_CFGRD0);
    cfg.length_dw = 1;
    cfg.cfg_register = 0x1000;
    assert_int_equal(tlpb_tlp_encode_header(&cfg, hdr), -EINVAL);
    cfg.cfg_register = 0x102;
    assert_int_equal(tlpb_tlp_encode_header(&cfg, hdr), -EINVAL);

    struct tlpb_tlp cpl = blank_tlp(TLPB_TLP_CPLD);
    cpl.length_dw = 1;
    cpl.byte_count = 4096;
    assert_int_equal(tlpb_tlp_encode_header(&cpl, hdr), 12);
    cpl.byte_count = 4097;
    assert_int_equal(tlpb_tlp_encode_header(&cpl, hdr), -EINVAL);
    cpl.byte_count = 0;
    assert_int_equal(tlpb_tlp_encode_header(&cpl, hdr), -EINVAL);
    cpl.byte_count = 4;
    cpl.lower_address = 0x80;
    assert_int_equal(tlpb_tlp_encode_header(&cpl, hdr), -EINVAL);
    cpl.lower_address = 0;
    cpl.status = (enum tlpb_cpl_status)3;
    assert_int_equal(tlpb_tlp_encode_header(&cpl, hdr), -EINVAL);
    cpl.status = TLPB_CPL_SC;
    cpl.length_dw = 1025;
    assert_int_equal(tlpb_tlp_encode_header(&cpl, hdr), -EINVAL);
}

/* ---- decoder rejections -------------------------------------------------- */

static void test_decode_rejections(void **state)
{
    (void)state;
    static const uint8_t mrd[] = {
        0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x05, 0x0f, 0x00, 0x00, 0x10, 0x00,
    };
    uint8_t buf[32];

    decode_fails(mrd, 0, -EMSGSIZE, "truncated TLP header");
    decode_fails(mrd, 3, -EMSGSIZE, "truncated TLP header");
    decode_fails(mrd, 11, -EMSGSIZE, "truncated TLP header");

    /* 4DW header cut after 12 bytes. */
    static const uint8_t mrd64[] = {
        0x20, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0f,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    };
    decode_fails(mrd64, 12, -EMSGSIZE, "truncated TLP header");
    decode_ok(mrd64, 16);

    /* 4DW header for an address below 4 GiB. */
    static const uint8_t mrd64_low[] = {
        0x20, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0f,
        0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xfc,
    };
    decode_fails(mrd64_low, 16, -EINVAL, "4DW memory request below 4 GiB");

    /* Unknown and unsupported Fmt/Type: IORd, CfgRd1, Msg, MRdLk, a 4DW
     * completion, a 4DW config request. */
    static const uint8_t unknown_fmt_type[] = { 0x02, 0x05, 0x30, 0x01, 0x2a, 0x24, 0x0c };
    for (size_t i = 0; i < sizeof(unknown_fmt_type); i++) {
        memcpy(buf, mrd, 12);
        buf[0] = unknown_fmt_type[i];
        memset(buf + 12, 0, 4);
        decode_fails(buf, 16, -EINVAL, "unknown or unsupported Fmt/Type");
    }
    memcpy(buf, mrd, 12);
    buf[0] = 0x80; /* Fmt 100: a TLP prefix */
    decode_fails(buf, 12, -EINVAL, "TLP prefixes not supported");

    memcpy(buf, mrd, 12);
    buf[2] = 0x80;
    decode_fails(buf, 12, -EINVAL, "TLP digest not supported");
    /* Even with room for the digest DW. */
    decode_fails(buf, 16, -EINVAL, "TLP digest not supported");

    memcpy(buf, mrd, 12);
    buf[1] = 0x08;
    decode_fails(buf, 12, -EINVAL, "10-bit tags not supported");
    buf[1] = 0x80;
    decode_fails(buf, 12, -EINVAL, "10-bit tags not supported");
    buf[1] = 0x01;
    decode_fails(buf, 12, -EINVAL, "TLP processing hints not supported");
    buf[1] = 0x02;
    decode_fails(buf, 12, -EINVAL, "lightweight notification not supported");
    buf[1] = 0x00;
    buf[2] = 0x04;
    decode_fails(buf, 12, -EINVAL, "address translation not supported");

    /* MWr of 2 DW with only 1 DW of payload, and with 3. */
    static const uint8_t mwr[] = {
        0x40, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x10, 0x00,
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    };
    decode_fails(mwr, 16, -EMSGSIZE, "truncated TLP payload");
    decode_fails(mwr, 12, -EMSGSIZE, "truncated TLP payload");
    decode_fails(mwr, 24, -EINVAL, "payload longer than the Length field");
    decode_ok(mwr, 20);

    /* A read with data after the header. */
    memcpy(buf, mrd, 12);
    decode_fails(buf, 16, -EINVAL, "payload on a TLP without data");

    /* A completion with reserved status 011. */
    static const uint8_t cpl_bad_status[] = {
        0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x60, 0x04, 0x00, 0x08, 0x01, 0x00,
    };
    decode_fails(cpl_bad_status, 12, -EINVAL, "reserved completion status");

    /* A CplD whose payload is cut short. */
    static const uint8_t cpld[] = {
        0x4a, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x04, 0x00, 0x08, 0x01, 0x00, 1, 2, 3, 4,
    };
    decode_fails(cpld, 15, -EMSGSIZE, "truncated TLP payload");
    decode_ok(cpld, 16);
}

static void test_decode_failure_leaves_output_alone(void **state)
{
    (void)state;
    static const uint8_t mrd64_low[] = {
        0x20, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0f,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00,
    };
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_CPL);
    tlp.tag = 0x99;
    const char *reason = NULL;
    assert_int_equal(tlpb_tlp_decode_wire(mrd64_low, sizeof(mrd64_low), &tlp, &reason), -EINVAL);
    assert_int_equal(tlp.kind, TLPB_TLP_CPL);
    assert_int_equal(tlp.tag, 0x99);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mrd_3dw_vector),
        cmocka_unit_test(test_mrd_3dw_high_address_below_4g),
        cmocka_unit_test(test_mwr_4dw_vector),
        cmocka_unit_test(test_mwr_exactly_4g_uses_4dw),
        cmocka_unit_test(test_cfgrd0_extended_register_vector),
        cmocka_unit_test(test_cfgwr0_vector),
        cmocka_unit_test(test_cpld_vector),
        cmocka_unit_test(test_cpl_status_vectors),
        cmocka_unit_test(test_cpl_length_field_ignored),
        cmocka_unit_test(test_length_1024_and_byte_count_4096),
        cmocka_unit_test(test_tc_attributes_ep_placement),
        cmocka_unit_test(test_decode_ignores_reserved_bits),
        cmocka_unit_test(test_round_trip_every_kind),
        cmocka_unit_test(test_encode_refuses_unrepresentable),
        cmocka_unit_test(test_decode_rejections),
        cmocka_unit_test(test_decode_failure_leaves_output_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
