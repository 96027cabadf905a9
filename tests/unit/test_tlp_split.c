/* Request and completion splitting: max payload / max read request size,
 * 4 KiB boundaries, and the read completion boundary. Expected chunk
 * sequences are worked out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlpb/tlp.h"

/* Split [addr, addr + total) into requests and compare with expected. */
static void expect_request_chunks(uint64_t addr, uint32_t total, uint32_t max_bytes,
                                  const uint32_t *expected, size_t count)
{
    uint32_t remaining = total;
    size_t i = 0;
    while (remaining > 0) {
        uint32_t n = tlpb_split_request_bytes(addr, remaining, max_bytes);
        assert_true(i < count);
        assert_int_equal(n, expected[i]);
        addr += n;
        remaining -= n;
        i++;
    }
    assert_int_equal(i, count);
}

static void test_request_one_byte_before_page(void **state)
{
    (void)state;
    assert_int_equal(tlpb_split_request_bytes(0xfff, 100, 512), 1);
    assert_int_equal(tlpb_split_request_bytes(0x1ffc, 4096, 4096), 4);
    /* Two bytes straddling the boundary: one on each side. */
    assert_int_equal(tlpb_split_request_bytes(0xfff, 2, 512), 1);
    assert_int_equal(tlpb_split_request_bytes(0xffe, 3, 4096), 2);
    static const uint32_t from_fff[] = { 1, 128, 128, 43 };
    expect_request_chunks(0xfff, 300, 128, from_fff, 4);
}

static void test_request_aligned(void **state)
{
    (void)state;
    assert_int_equal(tlpb_split_request_bytes(0x1000, 8192, 4096), 4096);
    assert_int_equal(tlpb_split_request_bytes(0x1000, 8192, 512), 512);
    assert_int_equal(tlpb_split_request_bytes(0x1000, 512, 512), 512);
    assert_int_equal(tlpb_split_request_bytes(0x1000, 100, 512), 100);
    static const uint32_t two_pages[] = { 4096, 4096 };
    expect_request_chunks(0x1000, 8192, 4096, two_pages, 2);
}

static void test_request_unaligned_odd_length(void **state)
{
    (void)state;
    /* 1001 bytes from 0x1001 with 128: Length counts DWs, so the first
     * request ends at 0x1080 (127 bytes, 32 DWs); then six full chunks and
     * the remaining 106. */
    static const uint32_t chunks[] = { 127, 128, 128, 128, 128, 128, 128, 106 };
    expect_request_chunks(0x1001, 1001, 128, chunks, 8);
    /* 5000 bytes from 0x1f01 with 4096: to the page (255), a page, the rest. */
    static const uint32_t across[] = { 255, 4096, 649 };
    expect_request_chunks(0x1f01, 5000, 4096, across, 3);
    /* Max read request 512 from 0xe03: 509 to the page end, then 512s. */
    static const uint32_t mrrs[] = { 509, 512, 512, 67 };
    expect_request_chunks(0xe03, 1600, 512, mrrs, 4);
}

static void test_request_length_one_and_zero(void **state)
{
    (void)state;
    assert_int_equal(tlpb_split_request_bytes(0x1234, 1, 128), 1);
    assert_int_equal(tlpb_split_request_bytes(0xfff, 1, 128), 1);
    assert_int_equal(tlpb_split_request_bytes(0x1234, 0, 128), 0);
}

static void test_request_one_mib_by_128(void **state)
{
    (void)state;
    uint64_t addr = 0x40000000;
    uint32_t remaining = 1024 * 1024;
    uint64_t sum = 0;
    unsigned count = 0;
    while (remaining > 0) {
        uint32_t n = tlpb_split_request_bytes(addr, remaining, 128);
        assert_int_equal(n, 128);
        /* Never crossing a 4 KiB boundary. */
        assert_true((addr & 0xfff) + n <= 4096);
        addr += n;
        remaining -= n;
        sum += n;
        count++;
    }
    assert_int_equal(count, 8192);
    assert_int_equal(sum, 1024 * 1024);
}

static void test_request_one_mib_unaligned_by_4096(void **state)
{
    (void)state;
    /* 1 MiB from 0x40 touches 257 pages: 4032, 255 x 4096, 64. */
    uint64_t addr = 0x40;
    uint32_t remaining = 1024 * 1024;
    unsigned count = 0;
    uint32_t first = 0, last = 0;
    while (remaining > 0) {
        uint32_t n = tlpb_split_request_bytes(addr, remaining, 4096);
        if (count == 0)
            first = n;
        else if (remaining > n)
            assert_int_equal(n, 4096);
        last = n;
        addr += n;
        remaining -= n;
        count++;
    }
    assert_int_equal(count, 257);
    assert_int_equal(first, 4032);
    assert_int_equal(last, 64);
}

static void test_request_max_bytes_out_of_range(void **state)
{
    (void)state;
    /* 0 means 4096, like the limits; more than 4096 is still bound by the
     * page rule. */
    assert_int_equal(tlpb_split_request_bytes(0, 10000, 0), 4096);
    assert_int_equal(tlpb_split_request_bytes(0, 10000, 8192), 4096);
    assert_int_equal(tlpb_split_request_bytes(0x800, 10000, 8192), 2048);
    /* The top page of the address space. */
    assert_int_equal(tlpb_split_request_bytes(0xfffffffffffff000ull, 4096, 4096), 4096);
    assert_int_equal(tlpb_split_request_bytes(0xffffffffffffffffull, 1, 4096), 1);
}

/* Split a completion sequence and compare with expected, checking the RCB
 * rule on every non-final completion. */
static void expect_completion_chunks(uint64_t addr, uint32_t total, uint32_t mps, uint32_t rcb,
                                     const uint32_t *expected, size_t count)
{
    uint32_t remaining = total;
    size_t i = 0;
    while (remaining > 0) {
        uint32_t n = tlpb_split_completion_bytes(addr, remaining, mps, rcb);
        assert_true(i < count);
        assert_int_equal(n, expected[i]);
        assert_true(n <= mps);
        if (n < remaining)
            assert_int_equal((addr + n) % rcb, 0);
        addr += n;
        remaining -= n;
        i++;
    }
    assert_int_equal(i, count);
}

static void test_completion_fits(void **state)
{
    (void)state;
    /* The last (or only) completion may end anywhere. */
    assert_int_equal(tlpb_split_completion_bytes(0x1003, 200, 256, 64), 200);
    assert_int_equal(tlpb_split_completion_bytes(0x1000, 256, 256, 128), 256);
    /* Exactly max payload from an unaligned start spans one DW more than max
     * payload: it is not the last; it ends on the RCB boundary (0x1100, 0x1080). */
    assert_int_equal(tlpb_split_completion_bytes(0x1003, 256, 256, 64), 253);
    assert_int_equal(tlpb_split_completion_bytes(0x1041, 128, 128, 128), 63);
    /* One DW less fits whole. */
    assert_int_equal(tlpb_split_completion_bytes(0x1003, 253, 256, 64), 253);
    assert_int_equal(tlpb_split_completion_bytes(0x1000, 1, 128, 64), 1);
    assert_int_equal(tlpb_split_completion_bytes(0x1000, 0, 128, 64), 0);
}

static void test_completion_aligned(void **state)
{
    (void)state;
    assert_int_equal(tlpb_split_completion_bytes(0x1000, 4096, 256, 64), 256);
    assert_int_equal(tlpb_split_completion_bytes(0x1000, 4096, 256, 128), 256);
    static const uint32_t chunks[] = { 128, 128, 128, 128 };
    expect_completion_chunks(0x2000, 512, 128, 128, chunks, 4);
}

static void test_completion_unaligned_rcb_64_and_128(void **state)
{
    (void)state;
    /* 0x1050 + 256 = 0x1150: back to 0x1140 (RCB 64) or 0x1100 (RCB 128). */
    assert_int_equal(tlpb_split_completion_bytes(0x1050, 1000, 256, 64), 0xf0);
    assert_int_equal(tlpb_split_completion_bytes(0x1050, 1000, 256, 128), 0xb0);
    /* MPS 128, RCB 128, start 0x1001: to 0x1080. */
    assert_int_equal(tlpb_split_completion_bytes(0x1001, 1000, 128, 128), 127);

    /* 1000 bytes from 0x1004, MPS 256, RCB 64: 0x1004-0x1100, then whole
     * 256s, then the rest. */
    static const uint32_t rcb64[] = { 252, 256, 256, 236 };
    expect_completion_chunks(0x1004, 1000, 256, 64, rcb64, 4);
    /* 2000 bytes from 0x1040, MPS 512, RCB 128: to 0x1200, then 512s. */
    static const uint32_t rcb128[] = { 448, 512, 512, 512, 16 };
    expect_completion_chunks(0x1040, 2000, 512, 128, rcb128, 5);
    /* An RCB-aligned but MPS-unaligned start with RCB 64: 0x1040 + 128. */
    static const uint32_t mps128[] = { 128, 128, 44 };
    expect_completion_chunks(0x1040, 300, 128, 64, mps128, 3);
    /* A whole 4 KiB read, MPS 128, starting 2 bytes in. */
    static const uint32_t page[] = {
        126, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128,
        128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128,
    };
    expect_completion_chunks(0x3002, 4094, 128, 64, page, 32);
}

static void test_completion_invalid_parameters(void **state)
{
    (void)state;
    /* A max payload smaller than the RCB cannot satisfy both rules. */
    assert_int_equal(tlpb_split_completion_bytes(0x1000, 4096, 64, 128), 0);
    /* RCBs other than 64 and 128 do not exist. */
    assert_int_equal(tlpb_split_completion_bytes(0x1000, 4096, 256, 32), 0);
    assert_int_equal(tlpb_split_completion_bytes(0x1000, 4096, 256, 0), 0);
    assert_int_equal(tlpb_split_completion_bytes(0x1000, 4096, 256, 256), 0);
    /* MPS equal to the RCB is fine. */
    assert_int_equal(tlpb_split_completion_bytes(0x1010, 4096, 64, 64), 48);
    /* Max payload 0 means 4096. */
    assert_int_equal(tlpb_split_completion_bytes(0x0, 8192, 0, 64), 4096);
    assert_int_equal(tlpb_split_completion_bytes(0x10, 8192, 0, 128), 4096 - 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_one_byte_before_page),
        cmocka_unit_test(test_request_aligned),
        cmocka_unit_test(test_request_unaligned_odd_length),
        cmocka_unit_test(test_request_length_one_and_zero),
        cmocka_unit_test(test_request_one_mib_by_128),
        cmocka_unit_test(test_request_one_mib_unaligned_by_4096),
        cmocka_unit_test(test_request_max_bytes_out_of_range),
        cmocka_unit_test(test_completion_fits),
        cmocka_unit_test(test_completion_aligned),
        cmocka_unit_test(test_completion_unaligned_rcb_64_and_128),
        cmocka_unit_test(test_completion_invalid_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
