/* Building TLPs: byte ranges to length and byte enables, byte counts from
 * byte enables (PCIe's Byte Count table), completions for requests, and
 * the one-line rendering. Expected values are worked out by hand. */
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

static void expect_range(uint64_t addr, uint32_t len, uint64_t address, uint32_t length_dw,
                         uint8_t first_be, uint8_t last_be)
{
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_MRD);
    assert_int_equal(tlpb_tlp_set_mem_range(&tlp, addr, len), 0);
    assert_int_equal(tlp.address, address);
    assert_int_equal(tlp.length_dw, length_dw);
    assert_int_equal(tlp.first_be, first_be);
    assert_int_equal(tlp.last_be, last_be);
}

static void test_set_mem_range(void **state)
{
    (void)state;
    expect_range(0x1000, 4, 0x1000, 1, 0xf, 0x0);
    expect_range(0x1001, 2, 0x1000, 1, 0x6, 0x0);
    expect_range(0x1003, 1, 0x1000, 1, 0x8, 0x0);
    expect_range(0x1003, 2, 0x1000, 2, 0x8, 0x1);
    expect_range(0x1002, 9, 0x1000, 3, 0xc, 0x7);
    expect_range(0x1000, 8, 0x1000, 2, 0xf, 0xf);
    expect_range(0x1001, 7, 0x1000, 2, 0xe, 0xf);
    expect_range(0x1000, 7, 0x1000, 2, 0xf, 0x7);
    expect_range(0x1000, 4096, 0x1000, 1024, 0xf, 0xf);
    expect_range(0x123456789ull, 10, 0x123456788ull, 3, 0xe, 0x7);
    /* Zero length: one DW, nothing enabled, address rounded down. */
    expect_range(0x2000, 0, 0x2000, 1, 0x0, 0x0);
    expect_range(0x2003, 0, 0x2000, 1, 0x0, 0x0);
    /* Fast-mode sizes. */
    expect_range(0, 1024 * 1024, 0, 262144, 0xf, 0xf);
    expect_range(1, 1024 * 1024, 0, 262145, 0xe, 0x1);
    expect_range(0, TLPB_UNSPLIT_MAX_BYTES, 0, 262146, 0xf, 0xf);
    /* The very top of the address space. */
    expect_range(0xfffffffffffffffcull, 4, 0xfffffffffffffffcull, 1, 0xf, 0x0);
}

static void test_set_mem_range_refusals(void **state)
{
    (void)state;
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_MWR);
    tlp.tag = 0x33;
    tlp.address = 0x5550;
    tlp.length_dw = 9;
    tlp.first_be = 0x1;
    tlp.last_be = 0x8;

    assert_int_equal(tlpb_tlp_set_mem_range(&tlp, 0xfffffffffffffffdull, 4), -EINVAL);
    assert_int_equal(tlpb_tlp_set_mem_range(&tlp, 0, TLPB_UNSPLIT_MAX_BYTES + 1), -EINVAL);
    /* Same byte count, but an unaligned start needs one more DW. */
    assert_int_equal(tlpb_tlp_set_mem_range(&tlp, 3, TLPB_UNSPLIT_MAX_BYTES), -EINVAL);
    assert_int_equal(tlpb_tlp_set_mem_range(&tlp, 0, UINT32_MAX), -EINVAL);
    /* Nothing changed on failure. */
    assert_int_equal(tlp.address, 0x5550);
    assert_int_equal(tlp.length_dw, 9);
    assert_int_equal(tlp.first_be, 0x1);
    assert_int_equal(tlp.last_be, 0x8);

    /* Other fields are left alone on success. */
    assert_int_equal(tlpb_tlp_set_mem_range(&tlp, 0x10, 4), 0);
    assert_int_equal(tlp.kind, TLPB_TLP_MWR);
    assert_int_equal(tlp.tag, 0x33);
}

static uint32_t bytes_for(uint32_t length_dw, uint8_t first_be, uint8_t last_be)
{
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_MRD);
    tlp.length_dw = length_dw;
    tlp.first_be = first_be;
    tlp.last_be = last_be;
    return tlpb_tlp_request_bytes(&tlp);
}

static void test_request_bytes_single_dw(void **state)
{
    (void)state;
    /* PCIe Byte Count table, Length 1: 1xx1 -> 4, 01x1 -> 3, 1x10 -> 3,
     * 0011/0110/1100 -> 2, one bit -> 1; 0000 is a zero-length request. */
    assert_int_equal(bytes_for(1, 0x9, 0), 4);
    assert_int_equal(bytes_for(1, 0xb, 0), 4);
    assert_int_equal(bytes_for(1, 0xd, 0), 4);
    assert_int_equal(bytes_for(1, 0xf, 0), 4);
    assert_int_equal(bytes_for(1, 0x5, 0), 3);
    assert_int_equal(bytes_for(1, 0x7, 0), 3);
    assert_int_equal(bytes_for(1, 0xa, 0), 3);
    assert_int_equal(bytes_for(1, 0xe, 0), 3);
    assert_int_equal(bytes_for(1, 0x3, 0), 2);
    assert_int_equal(bytes_for(1, 0x6, 0), 2);
    assert_int_equal(bytes_for(1, 0xc, 0), 2);
    assert_int_equal(bytes_for(1, 0x1, 0), 1);
    assert_int_equal(bytes_for(1, 0x2, 0), 1);
    assert_int_equal(bytes_for(1, 0x4, 0), 1);
    assert_int_equal(bytes_for(1, 0x8, 0), 1);
    assert_int_equal(bytes_for(1, 0x0, 0), 0);
    assert_int_equal(bytes_for(0, 0xf, 0), 0);
}

static void test_request_bytes_multi_dw(void **state)
{
    (void)state;
    /* Length*4 minus the disabled bytes at the start of the first DW
     * (xxx1 0, xx10 1, x100 2, 1000 3) and at the end of the last DW
     * (1xxx 0, 01xx 1, 001x 2, 0001 3). */
    assert_int_equal(bytes_for(3, 0xf, 0xf), 12);
    assert_int_equal(bytes_for(3, 0xe, 0xf), 11);
    assert_int_equal(bytes_for(3, 0xc, 0xf), 10);
    assert_int_equal(bytes_for(3, 0x8, 0xf), 9);
    assert_int_equal(bytes_for(3, 0xf, 0x7), 11);
    assert_int_equal(bytes_for(3, 0xf, 0x3), 10);
    assert_int_equal(bytes_for(3, 0xf, 0x1), 9);
    assert_int_equal(bytes_for(3, 0x8, 0x1), 6);
    /* 2 DW QW-aligned with gaps still spans first to last enabled byte. */
    assert_int_equal(bytes_for(2, 0x5, 0x5), 7);
    assert_int_equal(bytes_for(2, 0x5, 0xa), 8);
    assert_int_equal(bytes_for(2, 0x8, 0x1), 2);
    assert_int_equal(bytes_for(1024, 0xf, 0xf), 4096);
    assert_int_equal(bytes_for(262146, 0xf, 0xf), TLPB_UNSPLIT_MAX_BYTES);
    /* Absurd lengths saturate rather than wrap. */
    assert_int_equal(bytes_for(UINT32_MAX, 0xf, 0xf), UINT32_MAX);
}

static void test_first_byte_address(void **state)
{
    (void)state;
    struct tlpb_tlp tlp = blank_tlp(TLPB_TLP_MRD);
    tlp.address = 0x1000;
    tlp.length_dw = 2;
    tlp.first_be = 0x8;
    tlp.last_be = 0xf;
    assert_int_equal(tlpb_tlp_first_byte_address(&tlp), 0x1003);
    tlp.first_be = 0x6;
    assert_int_equal(tlpb_tlp_first_byte_address(&tlp), 0x1001);
    tlp.first_be = 0xf;
    assert_int_equal(tlpb_tlp_first_byte_address(&tlp), 0x1000);
    tlp.length_dw = 1;
    tlp.first_be = 0x0;
    tlp.last_be = 0x0;
    assert_int_equal(tlpb_tlp_first_byte_address(&tlp), 0x1000);

    struct tlpb_tlp cfg = blank_tlp(TLPB_TLP_CFGRD0);
    cfg.length_dw = 1;
    cfg.cfg_register = 0x10;
    cfg.first_be = 0x4;
    assert_int_equal(tlpb_tlp_first_byte_address(&cfg), 0x12);
}

static struct tlpb_tlp read_request(uint64_t address, uint32_t length_dw, uint8_t first_be,
                                    uint8_t last_be)
{
    struct tlpb_tlp req = blank_tlp(TLPB_TLP_MRD);
    req.requester_id = 0x0100;
    req.tag = 0x09;
    req.traffic_class = 2;
    req.attributes = TLPB_ATTR_RELAXED_ORDERING | TLPB_ATTR_NO_SNOOP;
    req.address = address;
    req.length_dw = length_dw;
    req.first_be = first_be;
    req.last_be = last_be;
    req.bar_hint = 1;
    return req;
}

static void expect_routing(const struct tlpb_tlp *cpl, uint16_t completer_id)
{
    assert_int_equal(cpl->requester_id, 0x0100);
    assert_int_equal(cpl->tag, 0x09);
    assert_int_equal(cpl->traffic_class, 2);
    assert_int_equal(cpl->attributes, TLPB_ATTR_RELAXED_ORDERING | TLPB_ATTR_NO_SNOOP);
    assert_int_equal(cpl->completer_id, completer_id);
    assert_int_equal(cpl->bar_hint, TLPB_NO_BAR);
    assert_false(cpl->poisoned);
    assert_false(cpl->bcm);
    assert_null(cpl->payload);
}

static void test_completion_for_memory_read(void **state)
{
    (void)state;
    /* 10 bytes from 0x1002: one completion, three DWs, data at offset 2. */
    struct tlpb_tlp req = read_request(0x1000, 3, 0xc, 0x3);
    struct tlpb_tlp cpl;
    memset(&cpl, 0xee, sizeof(cpl));
    tlpb_completion_for(&cpl, &req, 0x0300, 0x1002, 10, 10);
    expect_routing(&cpl, 0x0300);
    assert_int_equal(cpl.kind, TLPB_TLP_CPLD);
    assert_int_equal(cpl.status, TLPB_CPL_SC);
    assert_int_equal(cpl.length_dw, 3);
    assert_int_equal(cpl.byte_count, 10);
    assert_int_equal(cpl.lower_address, 0x02);
    assert_int_equal(cpl.payload_bytes, 12);

    /* A middle completion of a longer read. */
    req = read_request(0x1000, 64, 0xf, 0xf);
    tlpb_completion_for(&cpl, &req, 0x0300, 0x1040, 64, 192);
    assert_int_equal(cpl.length_dw, 16);
    assert_int_equal(cpl.byte_count, 192);
    assert_int_equal(cpl.lower_address, 0x40);

    /* Lower address is address bits [6:0]. */
    req = read_request(0x10c4, 1, 0x2, 0);
    tlpb_completion_for(&cpl, &req, 0x0300, 0x10c5, 1, 1);
    assert_int_equal(cpl.lower_address, 0x45);
    assert_int_equal(cpl.length_dw, 1);
    assert_int_equal(cpl.byte_count, 1);

    /* Unaligned on both ends: 0x1003..0x1008 covers three DWs. */
    tlpb_completion_for(&cpl, &req, 0x0300, 0x1003, 6, 6);
    assert_int_equal(cpl.length_dw, 3);
}

static void test_completion_for_zero_length_read(void **state)
{
    (void)state;
    struct tlpb_tlp req = read_request(0x20c0, 1, 0x0, 0x0);
    struct tlpb_tlp cpl;
    tlpb_completion_for(&cpl, &req, 0x0300, 0x20c0, 0, 0);
    assert_int_equal(cpl.kind, TLPB_TLP_CPLD);
    assert_int_equal(cpl.length_dw, 1);
    assert_int_equal(cpl.byte_count, 1);
    assert_int_equal(cpl.lower_address, 0x40);
    assert_int_equal(cpl.payload_bytes, 4);
}

static void test_completion_for_config(void **state)
{
    (void)state;
    struct tlpb_tlp rd = blank_tlp(TLPB_TLP_CFGRD0);
    rd.requester_id = 0x0100;
    rd.tag = 0x09;
    rd.length_dw = 1;
    rd.first_be = 0xc;
    rd.cfg_register = 0x3c;
    struct tlpb_tlp cpl;
    tlpb_completion_for(&cpl, &rd, 0x0500, 0x3e, 2, 2);
    assert_int_equal(cpl.kind, TLPB_TLP_CPLD);
    assert_int_equal(cpl.length_dw, 1);
    assert_int_equal(cpl.byte_count, 4);
    assert_int_equal(cpl.lower_address, 0);
    assert_int_equal(cpl.completer_id, 0x0500);
    assert_int_equal(cpl.tag, 0x09);

    struct tlpb_tlp wr = rd;
    wr.kind = TLPB_TLP_CFGWR0;
    tlpb_completion_for(&cpl, &wr, 0x0500, 0, 0, 0);
    assert_int_equal(cpl.kind, TLPB_TLP_CPL);
    assert_int_equal(cpl.status, TLPB_CPL_SC);
    assert_int_equal(cpl.byte_count, 4);
    assert_int_equal(cpl.lower_address, 0);
    assert_int_equal(cpl.length_dw, 0);
    assert_int_equal(cpl.payload_bytes, 0);
}

static void test_completion_error_for(void **state)
{
    (void)state;
    /* 4 DW from 0x1000 with first BE 1110 and last BE 0011: 13 bytes from
     * 0x1001. */
    struct tlpb_tlp req = read_request(0x1000, 4, 0xe, 0x3);
    struct tlpb_tlp cpl;
    tlpb_completion_error_for(&cpl, &req, 0x0300, TLPB_CPL_UR);
    expect_routing(&cpl, 0x0300);
    assert_int_equal(cpl.kind, TLPB_TLP_CPL);
    assert_int_equal(cpl.status, TLPB_CPL_UR);
    assert_int_equal(cpl.byte_count, 13);
    assert_int_equal(cpl.lower_address, 0x01);
    assert_int_equal(cpl.length_dw, 0);
    assert_int_equal(cpl.payload_bytes, 0);

    req = read_request(0x2040, 1, 0x0, 0x0);
    tlpb_completion_error_for(&cpl, &req, 0x0300, TLPB_CPL_CA);
    assert_int_equal(cpl.status, TLPB_CPL_CA);
    assert_int_equal(cpl.byte_count, 1);
    assert_int_equal(cpl.lower_address, 0x40);

    struct tlpb_tlp cfg = blank_tlp(TLPB_TLP_CFGRD0);
    cfg.length_dw = 1;
    cfg.first_be = 0xf;
    cfg.cfg_register = 0x44;
    tlpb_completion_error_for(&cpl, &cfg, 0x0300, TLPB_CPL_CRS);
    assert_int_equal(cpl.kind, TLPB_TLP_CPL);
    assert_int_equal(cpl.status, TLPB_CPL_CRS);
    assert_int_equal(cpl.byte_count, 4);
    assert_int_equal(cpl.lower_address, 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(tlpb_tlp_kind_name(TLPB_TLP_MRD), "MRd");
    assert_string_equal(tlpb_tlp_kind_name(TLPB_TLP_MWR), "MWr");
    assert_string_equal(tlpb_tlp_kind_name(TLPB_TLP_CFGRD0), "CfgRd0");
    assert_string_equal(tlpb_tlp_kind_name(TLPB_TLP_CFGWR0), "CfgWr0");
    assert_string_equal(tlpb_tlp_kind_name(TLPB_TLP_CPL), "Cpl");
    assert_string_equal(tlpb_tlp_kind_name(TLPB_TLP_CPLD), "CplD");
    assert_string_equal(tlpb_tlp_kind_name(TLPB_TLP_INVALID), "invalid");
    assert_string_equal(tlpb_tlp_kind_name((enum tlpb_tlp_kind)42), "invalid");
    assert_string_equal(tlpb_cpl_status_name(TLPB_CPL_SC), "SC");
    assert_string_equal(tlpb_cpl_status_name(TLPB_CPL_UR), "UR");
    assert_string_equal(tlpb_cpl_status_name(TLPB_CPL_CRS), "CRS");
    assert_string_equal(tlpb_cpl_status_name(TLPB_CPL_CA), "CA");
    assert_string_equal(tlpb_cpl_status_name((enum tlpb_cpl_status)3), "reserved");
}

static void test_format_lines(void **state)
{
    (void)state;
    char line[256];

    struct tlpb_tlp mrd = blank_tlp(TLPB_TLP_MRD);
    mrd.requester_id = 0x0100;
    mrd.tag = 0x05;
    mrd.length_dw = 1;
    mrd.first_be = 0xf;
    mrd.address = 0x1000;
    mrd.bar_hint = 0;
    int n = tlpb_tlp_format(&mrd, line, sizeof(line));
    assert_string_equal(line, "MRd req 01:00.0 tag 0x05 addr 0x1000 len 1 be f/0 bar 0");
    assert_int_equal(n, (int)strlen(line));

    static const uint8_t data[12] = { 0x78, 0x56, 0x34, 0x12, 1, 2, 3, 4, 5, 6, 7, 8 };
    struct tlpb_tlp mwr = blank_tlp(TLPB_TLP_MWR);
    mwr.requester_id = 0x12fb; /* 12:1f.3 */
    mwr.tag = 0xa0;
    mwr.length_dw = 3;
    mwr.first_be = 0xf;
    mwr.last_be = 0x3;
    mwr.address = 0x123456780ull;
    mwr.traffic_class = 3;
    mwr.attributes = TLPB_ATTR_NO_SNOOP | TLPB_ATTR_ID_ORDERING;
    mwr.poisoned = true;
    mwr.payload = data;
    mwr.payload_bytes = 12;
    tlpb_tlp_format(&mwr, line, sizeof(line));
    assert_string_equal(line, "MWr req 12:1f.3 tag 0xa0 addr 0x123456780 len 3 be f/3 tc 3 "
                              "attr ns ido EP data 78 56 34 12 01 02 03 04 ...");

    struct tlpb_tlp cpld = blank_tlp(TLPB_TLP_CPLD);
    cpld.completer_id = 0x0300;
    cpld.requester_id = 0x0000;
    cpld.tag = 0x05;
    cpld.byte_count = 4;
    cpld.lower_address = 0x00;
    cpld.length_dw = 1;
    cpld.payload = data;
    cpld.payload_bytes = 4;
    tlpb_tlp_format(&cpld, line, sizeof(line));
    assert_string_equal(line,
                        "CplD cpl 03:00.0 req 00:00.0 tag 0x05 SC bc 4 la 0x00 len 1 "
                        "data 78 56 34 12");

    struct tlpb_tlp cpl = blank_tlp(TLPB_TLP_CPL);
    cpl.completer_id = 0x0300;
    cpl.requester_id = 0x0008;
    cpl.tag = 0x06;
    cpl.status = TLPB_CPL_UR;
    cpl.byte_count = 128;
    cpl.lower_address = 0x40;
    cpl.attributes = TLPB_ATTR_RELAXED_ORDERING;
    tlpb_tlp_format(&cpl, line, sizeof(line));
    assert_string_equal(line, "Cpl cpl 03:00.0 req 00:01.0 tag 0x06 UR bc 128 la 0x40 attr ro");

    struct tlpb_tlp cfg = blank_tlp(TLPB_TLP_CFGRD0);
    cfg.requester_id = 0x0000;
    cfg.tag = 0x01;
    cfg.completer_id = 0x0308;
    cfg.cfg_register = 0x104;
    cfg.length_dw = 1;
    cfg.first_be = 0xf;
    tlpb_tlp_format(&cfg, line, sizeof(line));
    assert_string_equal(line,
                        "CfgRd0 req 00:00.0 tag 0x01 dev 03:01.0 reg 0x104 len 1 be f/0");
}

static void test_format_truncates_like_snprintf(void **state)
{
    (void)state;
    struct tlpb_tlp mrd = blank_tlp(TLPB_TLP_MRD);
    mrd.requester_id = 0x0100;
    mrd.tag = 0x05;
    mrd.length_dw = 1;
    mrd.first_be = 0xf;
    mrd.address = 0x1000;
    static const char full[] = "MRd req 01:00.0 tag 0x05 addr 0x1000 len 1 be f/0";

    char small[10];
    memset(small, 'x', sizeof(small));
    assert_int_equal(tlpb_tlp_format(&mrd, small, sizeof(small)), (int)strlen(full));
    assert_string_equal(small, "MRd req 0");

    assert_int_equal(tlpb_tlp_format(&mrd, NULL, 0), (int)strlen(full));

    char one[1] = { 'x' };
    assert_int_equal(tlpb_tlp_format(&mrd, one, 1), (int)strlen(full));
    assert_int_equal(one[0], '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_mem_range),
        cmocka_unit_test(test_set_mem_range_refusals),
        cmocka_unit_test(test_request_bytes_single_dw),
        cmocka_unit_test(test_request_bytes_multi_dw),
        cmocka_unit_test(test_first_byte_address),
        cmocka_unit_test(test_completion_for_memory_read),
        cmocka_unit_test(test_completion_for_zero_length_read),
        cmocka_unit_test(test_completion_for_config),
        cmocka_unit_test(test_completion_error_for),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_format_lines),
        cmocka_unit_test(test_format_truncates_like_snprintf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
