/* The tag table: allocation, completion reassembly and its checks,
 * timeouts and release. Completions are built by hand here, from the PCIe
 * rules, not with the library's completion builder. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlpb/tlp.h"

static struct tlpb_tag_table tags;

/* The completer's memory: a byte value derived from its address. */
static uint8_t mem_byte(uint64_t address)
{
    return (uint8_t)(address * 7u + 3u);
}

static uint8_t payload_store[4096];

/* A CplD whose payload is length_dw DWs of memory starting at dw_address. */
static struct tlpb_tlp cpld(uint8_t tag, uint32_t byte_count, uint8_t lower_address,
                            uint32_t length_dw, uint64_t dw_address)
{
    struct tlpb_tlp cpl;
    memset(&cpl, 0, sizeof(cpl));
    cpl.kind = TLPB_TLP_CPLD;
    cpl.tag = tag;
    cpl.status = TLPB_CPL_SC;
    cpl.byte_count = byte_count;
    cpl.lower_address = lower_address;
    cpl.length_dw = length_dw;
    cpl.bar_hint = TLPB_NO_BAR;
    for (uint32_t i = 0; i < length_dw * 4; i++)
        payload_store[i] = mem_byte(dw_address + i);
    cpl.payload = payload_store;
    cpl.payload_bytes = length_dw * 4;
    return cpl;
}

static struct tlpb_tlp cpl_status(uint8_t tag, enum tlpb_cpl_status status,
                                  uint32_t byte_count, uint8_t lower_address)
{
    struct tlpb_tlp cpl;
    memset(&cpl, 0, sizeof(cpl));
    cpl.kind = TLPB_TLP_CPL;
    cpl.tag = tag;
    cpl.status = status;
    cpl.byte_count = byte_count;
    cpl.lower_address = lower_address;
    cpl.bar_hint = TLPB_NO_BAR;
    return cpl;
}

static int complete(const struct tlpb_tlp *cpl, struct tlpb_tag_done *done, const char **reason)
{
    *reason = NULL;
    memset(done, 0xcc, sizeof(*done));
    return tlpb_tags_complete(&tags, cpl, done, reason);
}

static void expect_rejected(const struct tlpb_tlp *cpl, const char *why)
{
    struct tlpb_tag_done done;
    const char *reason;
    assert_int_equal(complete(cpl, &done, &reason), -EINVAL);
    assert_non_null(reason);
    assert_string_equal(reason, why);
}

static int setup(void **state)
{
    (void)state;
    tlpb_tags_init(&tags, 32);
    return 0;
}

static void test_init_clamps_tag_count(void **state)
{
    (void)state;
    tlpb_tags_init(&tags, 0);
    assert_int_equal(tags.tag_count, 1);
    tlpb_tags_init(&tags, 1000);
    assert_int_equal(tags.tag_count, 256);
    tlpb_tags_init(&tags, 32);
    assert_int_equal(tags.tag_count, 32);
    assert_int_equal(tags.in_use, 0);
}

static void test_exhaustion_32(void **state)
{
    (void)state;
    for (int i = 0; i < 32; i++)
        assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), i);
    assert_int_equal(tags.in_use, 32);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), -EAGAIN);
}

static void test_exhaustion_256(void **state)
{
    (void)state;
    tlpb_tags_init(&tags, 256);
    bool seen[256] = { false };
    for (int i = 0; i < 256; i++) {
        int tag = tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL);
        assert_in_range(tag, 0, 255);
        assert_false(seen[tag]);
        seen[tag] = true;
    }
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), -EAGAIN);
}

static void test_round_robin_and_reuse(void **state)
{
    (void)state;
    tlpb_tags_init(&tags, 4);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), 0);

    /* Tag 0 completes; the next request still gets a fresh tag. */
    struct tlpb_tag_done done;
    const char *reason;
    struct tlpb_tlp c = cpld(0, 4, 0x00, 1, 0x1000);
    assert_int_equal(complete(&c, &done, &reason), 1);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), 1);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), 2);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), 3);
    /* Wraps round to the freed tag 0. */
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), 0);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), -EAGAIN);

    /* Full table, one completes: its tag is the one handed out. */
    c = cpld(2, 4, 0x00, 1, 0x1000);
    assert_int_equal(complete(&c, &done, &reason), 1);
    assert_int_equal(tags.in_use, 3);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), 2);
}

static void test_single_completion_unaligned(void **state)
{
    (void)state;
    /* 5 bytes from 0x1003: two DWs, data from offset 3. */
    uint8_t buf[5 + 4];
    memset(buf, 0xee, sizeof(buf));
    int ctx = 0;
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1003, 5, buf, 1000, &ctx), 0);
    struct tlpb_tlp c = cpld(0, 5, 0x03, 2, 0x1000);
    struct tlpb_tag_done done;
    const char *reason;
    assert_int_equal(complete(&c, &done, &reason), 1);
    assert_int_equal(done.tag, 0);
    assert_int_equal(done.status, TLPB_CPL_SC);
    assert_ptr_equal(done.context, &ctx);
    assert_int_equal(done.length_bytes, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(buf[i], mem_byte(0x1003u + (unsigned)i));
    for (int i = 5; i < 9; i++)
        assert_int_equal(buf[i], 0xee);
    assert_int_equal(tags.in_use, 0);
}

static void test_multi_completion_reassembly(void **state)
{
    (void)state;
    /* 300 bytes from 0x1002 returned with MPS 128 and RCB 64:
     *   1: 0x1002..0x107f, 126 bytes, 32 DW from 0x1000, Byte Count 300, LA 0x02
     *   2: 0x1080..0x10ff, 128 bytes, 32 DW, Byte Count 174, LA 0x00
     *   3: 0x1100..0x112d, 46 bytes, 12 DW, Byte Count 46, LA 0x00 */
    uint8_t buf[300 + 8];
    memset(buf, 0xee, sizeof(buf));
    (void)tlpb_tags_alloc(&tags, 0x5000, 4, NULL, 1000, NULL); /* tag 0 busy */
    int tag = tlpb_tags_alloc(&tags, 0x1002, 300, buf, 1000, NULL);
    assert_int_equal(tag, 1);

    struct tlpb_tag_done done;
    const char *reason;
    struct tlpb_tlp c = cpld(1, 300, 0x02, 32, 0x1000);
    assert_int_equal(complete(&c, &done, &reason), 0);
    assert_int_equal(tags.slots[1].received_bytes, 126);
    c = cpld(1, 174, 0x00, 32, 0x1080);
    assert_int_equal(complete(&c, &done, &reason), 0);
    assert_int_equal(tags.slots[1].received_bytes, 254);
    c = cpld(1, 46, 0x00, 12, 0x1100);
    assert_int_equal(complete(&c, &done, &reason), 1);
    assert_int_equal(done.tag, 1);
    assert_int_equal(done.status, TLPB_CPL_SC);
    assert_int_equal(done.length_bytes, 300);

    for (unsigned i = 0; i < 300; i++)
        assert_int_equal(buf[i], mem_byte(0x1002u + i));
    for (unsigned i = 300; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0xee);
    assert_false(tags.slots[1].in_use);
    assert_true(tags.slots[0].in_use);
}

static void test_completion_past_address_bit_6(void **state)
{
    (void)state;
    /* Lower address is only bits [6:0]: 0x10c0 -> 0x40, then 0x1100 -> 0x00. */
    uint8_t buf[128];
    assert_int_equal(tlpb_tags_alloc(&tags, 0x10c0, 128, buf, 1000, NULL), 0);
    struct tlpb_tag_done done;
    const char *reason;
    struct tlpb_tlp c = cpld(0, 128, 0x40, 16, 0x10c0);
    assert_int_equal(complete(&c, &done, &reason), 0);
    c = cpld(0, 64, 0x40, 16, 0x1100);
    expect_rejected(&c, "lower address does not match the bytes owed");
    c = cpld(0, 64, 0x00, 16, 0x1100);
    assert_int_equal(complete(&c, &done, &reason), 1);
    for (unsigned i = 0; i < 128; i++)
        assert_int_equal(buf[i], mem_byte(0x10c0u + i));
}

static void test_out_of_order_rejected(void **state)
{
    (void)state;
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 256, NULL, 1000, NULL), 0);
    /* The second half first: Byte Count 128 while 256 are owed. */
    struct tlpb_tlp c = cpld(0, 128, 0x00, 32, 0x1080);
    expect_rejected(&c, "byte count inconsistent with the bytes owed");
    assert_true(tags.slots[0].in_use);
    assert_int_equal(tags.slots[0].received_bytes, 0);
}

static void test_lower_address_mismatch(void **state)
{
    (void)state;
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1004, 8, NULL, 1000, NULL), 0);
    struct tlpb_tlp c = cpld(0, 8, 0x00, 2, 0x1000);
    expect_rejected(&c, "lower address does not match the bytes owed");
    c = cpld(0, 8, 0x05, 2, 0x1004);
    expect_rejected(&c, "lower address does not match the bytes owed");
    assert_true(tags.slots[0].in_use);
}

static void test_unknown_tag(void **state)
{
    (void)state;
    tlpb_tags_init(&tags, 2);
    struct tlpb_tlp c = cpld(0, 4, 0x00, 1, 0x1000);
    expect_rejected(&c, "completion for an unknown tag");
    c.tag = 5; /* beyond tag_count */
    expect_rejected(&c, "completion for an unknown tag");
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), 0);
    c.tag = 1;
    expect_rejected(&c, "completion for an unknown tag");
    /* A duplicate completion after the request finished. */
    c.tag = 0;
    struct tlpb_tag_done done;
    const char *reason;
    assert_int_equal(complete(&c, &done, &reason), 1);
    expect_rejected(&c, "completion for an unknown tag");
}

static void test_error_status_finishes(void **state)
{
    (void)state;
    uint8_t buf[64];
    memset(buf, 0xee, sizeof(buf));
    int ctx = 0;
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 64, buf, 1000, &ctx), 0);
    struct tlpb_tlp c = cpl_status(0, TLPB_CPL_UR, 64, 0x00);
    struct tlpb_tag_done done;
    const char *reason;
    assert_int_equal(complete(&c, &done, &reason), 1);
    assert_int_equal(done.tag, 0);
    assert_int_equal(done.status, TLPB_CPL_UR);
    assert_ptr_equal(done.context, &ctx);
    assert_int_equal(done.length_bytes, 64);
    assert_int_equal(tags.in_use, 0);
    assert_int_equal(buf[0], 0xee);

    /* CA after part of the data arrived. */
    int tag = tlpb_tags_alloc(&tags, 0x2000, 256, buf, 1000, NULL);
    assert_int_equal(tag, 1);
    struct tlpb_tlp part = cpld(1, 256, 0x00, 16, 0x2000);
    assert_int_equal(complete(&part, &done, &reason), 0);
    c = cpl_status(1, TLPB_CPL_CA, 192, 0x40);
    assert_int_equal(complete(&c, &done, &reason), 1);
    assert_int_equal(done.status, TLPB_CPL_CA);
    assert_int_equal(tags.in_use, 0);
}

static void test_data_on_non_sc_completion(void **state)
{
    (void)state;
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), 0);
    struct tlpb_tlp c = cpld(0, 4, 0x00, 1, 0x1000);
    c.status = TLPB_CPL_CA;
    expect_rejected(&c, "data on a non-SC completion");
    assert_true(tags.slots[0].in_use);
}

static void test_too_much_data(void **state)
{
    (void)state;
    /* 8 bytes from 0x1000 need 2 DW; 3 DW carry a whole DW too many. */
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 8, NULL, 1000, NULL), 0);
    struct tlpb_tlp c = cpld(0, 8, 0x00, 3, 0x1000);
    expect_rejected(&c, "completion carries more data than requested");
    /* Byte Count claiming more than was asked. */
    c = cpld(0, 12, 0x00, 3, 0x1000);
    expect_rejected(&c, "byte count inconsistent with the bytes owed");
    /* 2 bytes from 0x1001 fit in 1 DW. */
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1001, 2, NULL, 1000, NULL), 1);
    c = cpld(1, 2, 0x01, 2, 0x1000);
    expect_rejected(&c, "completion carries more data than requested");
    c = cpld(1, 2, 0x01, 1, 0x1000);
    struct tlpb_tag_done done;
    const char *reason;
    assert_int_equal(complete(&c, &done, &reason), 1);
}

static void test_non_final_must_end_on_rcb(void **state)
{
    (void)state;
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 256, NULL, 1000, NULL), 0);
    /* 100 bytes then stop: 0x1064 is not on any RCB. */
    struct tlpb_tlp c = cpld(0, 256, 0x00, 25, 0x1000);
    expect_rejected(&c, "completion does not end on a read completion boundary");
    /* 64 bytes is fine (RCB 64). */
    c = cpld(0, 256, 0x00, 16, 0x1000);
    struct tlpb_tag_done done;
    const char *reason;
    assert_int_equal(complete(&c, &done, &reason), 0);
}

static void test_successful_cpl_without_data(void **state)
{
    (void)state;
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 1000, NULL), 0);
    struct tlpb_tlp c = cpl_status(0, TLPB_CPL_SC, 4, 0x00);
    expect_rejected(&c, "successful completion without data for a read");
}

static void test_short_payload_and_not_a_completion(void **state)
{
    (void)state;
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 8, NULL, 1000, NULL), 0);
    struct tlpb_tlp c = cpld(0, 8, 0x00, 2, 0x1000);
    c.payload_bytes = 4;
    expect_rejected(&c, "CplD payload shorter than its length");
    c = cpld(0, 8, 0x00, 2, 0x1000);
    c.payload = NULL;
    expect_rejected(&c, "CplD payload shorter than its length");
    c = cpld(0, 8, 0x00, 0, 0x1000);
    expect_rejected(&c, "CplD without data");
    c = cpld(0, 8, 0x00, 2, 0x1000);
    c.kind = TLPB_TLP_MWR;
    expect_rejected(&c, "not a completion");
    assert_true(tags.slots[0].in_use);
}

static void test_zero_length_read(void **state)
{
    (void)state;
    struct tlpb_tag_done done;
    const char *reason;

    /* PCIe's form: a CplD of 1 DW with Byte Count 1. */
    assert_int_equal(tlpb_tags_alloc(&tags, 0x2040, 0, NULL, 1000, NULL), 0);
    struct tlpb_tlp c = cpld(0, 1, 0x40, 1, 0x2040);
    assert_int_equal(complete(&c, &done, &reason), 1);
    assert_int_equal(done.status, TLPB_CPL_SC);
    assert_int_equal(done.length_bytes, 0);

    /* A Cpl without data, successful or not. */
    assert_int_equal(tlpb_tags_alloc(&tags, 0x2040, 0, NULL, 1000, NULL), 1);
    c = cpl_status(1, TLPB_CPL_SC, 1, 0x40);
    assert_int_equal(complete(&c, &done, &reason), 1);
    assert_int_equal(done.status, TLPB_CPL_SC);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x2040, 0, NULL, 1000, NULL), 2);
    c = cpl_status(2, TLPB_CPL_UR, 1, 0x40);
    assert_int_equal(complete(&c, &done, &reason), 1);
    assert_int_equal(done.status, TLPB_CPL_UR);

    /* Wrong shapes. */
    assert_int_equal(tlpb_tags_alloc(&tags, 0x2040, 0, NULL, 1000, NULL), 3);
    c = cpld(3, 4, 0x40, 1, 0x2040);
    expect_rejected(&c, "byte count inconsistent with a zero-length read");
    c = cpld(3, 1, 0x40, 2, 0x2040);
    expect_rejected(&c, "completion carries more data than requested");
    c = cpld(3, 1, 0x00, 1, 0x2040);
    expect_rejected(&c, "lower address does not match the bytes owed");
    assert_true(tags.slots[3].in_use);
}

static void test_poisoned_completion_fails_request(void **state)
{
    (void)state;
    uint8_t buf[8];
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 8, buf, 1000, NULL), 0);
    struct tlpb_tlp c = cpld(0, 8, 0x00, 2, 0x1000);
    c.poisoned = true;
    struct tlpb_tag_done done;
    const char *reason;
    assert_int_equal(complete(&c, &done, &reason), 1);
    assert_int_equal(done.status, TLPB_CPL_CA);
    assert_int_equal(buf[0], 0xee);
    assert_int_equal(tags.in_use, 0);
}

static void test_null_buffer_discards(void **state)
{
    (void)state;
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 128, NULL, 1000, NULL), 0);
    struct tlpb_tlp c = cpld(0, 128, 0x00, 16, 0x1000);
    struct tlpb_tag_done done;
    const char *reason;
    assert_int_equal(complete(&c, &done, &reason), 0);
    c = cpld(0, 64, 0x40, 16, 0x1040);
    assert_int_equal(complete(&c, &done, &reason), 1);
    assert_int_equal(done.length_bytes, 128);
}

static void test_alloc_refuses_bad_ranges(void **state)
{
    (void)state;
    assert_int_equal(tlpb_tags_alloc(&tags, 0, TLPB_UNSPLIT_MAX_BYTES + 1, NULL, 1, NULL),
                     -EINVAL);
    assert_int_equal(tlpb_tags_alloc(&tags, UINT64_MAX - 2, 4, NULL, 1, NULL), -EINVAL);
    assert_int_equal(tlpb_tags_alloc(&tags, UINT64_MAX - 3, 4, NULL, 1, NULL), 0);
    assert_int_equal(tags.in_use, 1);
}

struct expired_log {
    unsigned count;
    struct tlpb_tag_done dones[8];
    bool realloc_inside;
};

static void record_expired(const struct tlpb_tag_done *done, void *arg)
{
    struct expired_log *log = arg;
    log->dones[log->count++] = *done;
    /* The tag is already free: a new request may take a tag right here. */
    if (log->realloc_inside)
        assert_true(tlpb_tags_alloc(&tags, 0x9000, 4, NULL, 10000, NULL) >= 0);
}

static void test_expire_and_next_deadline(void **state)
{
    (void)state;
    int ctx[3];
    assert_int_equal(tlpb_tags_next_deadline(&tags), UINT64_MAX);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 300, &ctx[0]), 0);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x2000, 8, NULL, 100, &ctx[1]), 1);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x3000, 12, NULL, 200, &ctx[2]), 2);
    assert_int_equal(tlpb_tags_next_deadline(&tags), 100);

    struct expired_log log = { 0 };
    assert_int_equal(tlpb_tags_expire(&tags, 99, record_expired, &log), 0);
    assert_int_equal(log.count, 0);

    /* Deadline equal to now expires. */
    assert_int_equal(tlpb_tags_expire(&tags, 100, record_expired, &log), 1);
    assert_int_equal(log.count, 1);
    assert_int_equal(log.dones[0].tag, 1);
    assert_int_equal(log.dones[0].status, TLPB_CPL_CA);
    assert_ptr_equal(log.dones[0].context, &ctx[1]);
    assert_int_equal(log.dones[0].length_bytes, 8);
    assert_false(tags.slots[1].in_use);
    assert_int_equal(tlpb_tags_next_deadline(&tags), 200);

    /* A late completion for the expired tag is unknown now. */
    struct tlpb_tlp c = cpld(1, 8, 0x00, 2, 0x2000);
    expect_rejected(&c, "completion for an unknown tag");

    log.realloc_inside = true;
    assert_int_equal(tlpb_tags_expire(&tags, 1000, record_expired, &log), 2);
    assert_int_equal(log.count, 3);
    assert_int_equal(log.dones[1].tag, 0);
    assert_ptr_equal(log.dones[1].context, &ctx[0]);
    assert_int_equal(log.dones[2].tag, 2);
    assert_ptr_equal(log.dones[2].context, &ctx[2]);
    /* Only the two requests allocated in the callback remain. */
    assert_int_equal(tags.in_use, 2);
    assert_int_equal(tlpb_tags_next_deadline(&tags), 10000);
}

static void test_release(void **state)
{
    (void)state;
    tlpb_tags_init(&tags, 1);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 50, NULL), 0);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 50, NULL), -EAGAIN);
    tlpb_tags_release(&tags, 0);
    assert_int_equal(tags.in_use, 0);
    assert_int_equal(tlpb_tags_next_deadline(&tags), UINT64_MAX);
    struct tlpb_tlp c = cpld(0, 4, 0x00, 1, 0x1000);
    expect_rejected(&c, "completion for an unknown tag");
    /* Releasing a free or out-of-range tag does nothing. */
    tlpb_tags_release(&tags, 0);
    tlpb_tags_release(&tags, 200);
    assert_int_equal(tags.in_use, 0);
    assert_int_equal(tlpb_tags_alloc(&tags, 0x1000, 4, NULL, 50, NULL), 0);
    assert_int_equal(tlpb_tags_expire(&tags, 49, NULL, NULL), 0);
    assert_int_equal(tlpb_tags_expire(&tags, 50, NULL, NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_init_clamps_tag_count, setup),
        cmocka_unit_test_setup(test_exhaustion_32, setup),
        cmocka_unit_test_setup(test_exhaustion_256, setup),
        cmocka_unit_test_setup(test_round_robin_and_reuse, setup),
        cmocka_unit_test_setup(test_single_completion_unaligned, setup),
        cmocka_unit_test_setup(test_multi_completion_reassembly, setup),
        cmocka_unit_test_setup(test_completion_past_address_bit_6, setup),
        cmocka_unit_test_setup(test_out_of_order_rejected, setup),
        cmocka_unit_test_setup(test_lower_address_mismatch, setup),
        cmocka_unit_test_setup(test_unknown_tag, setup),
        cmocka_unit_test_setup(test_error_status_finishes, setup),
        cmocka_unit_test_setup(test_data_on_non_sc_completion, setup),
        cmocka_unit_test_setup(test_too_much_data, setup),
        cmocka_unit_test_setup(test_non_final_must_end_on_rcb, setup),
        cmocka_unit_test_setup(test_successful_cpl_without_data, setup),
        cmocka_unit_test_setup(test_short_payload_and_not_a_completion, setup),
        cmocka_unit_test_setup(test_zero_length_read, setup),
        cmocka_unit_test_setup(test_poisoned_completion_fails_request, setup),
        cmocka_unit_test_setup(test_null_buffer_discards, setup),
        cmocka_unit_test_setup(test_alloc_refuses_bad_ranges, setup),
        cmocka_unit_test_setup(test_expire_and_next_deadline, setup),
        cmocka_unit_test_setup(test_release, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
