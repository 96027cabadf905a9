/* Completions for a device's DMA read (tlpb_dma_serve_read): split at the
 * max payload size and the 64-byte RCB, unsplit over 4 KiB, zero-length
 * reads, UR and CA. Expected sequences are worked out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlpb/dma.h"

#define MEM_BASE 0x10000ull
#define MEM_SIZE 0x4000u

static uint8_t mem[MEM_SIZE];

struct seen {
    unsigned count;
    struct tlpb_tlp cpl[128];
    uint8_t data[128][8200]; /* copies: the payload is valid only in the call */
};
static struct seen seen;

static int read_mem(void *opaque, uint64_t addr, void *dst, uint32_t bytes)
{
    int *fail = opaque;
    if (fail && *fail)
        return *fail;
    if (addr < MEM_BASE || addr + bytes > MEM_BASE + MEM_SIZE)
        return 1;
    memcpy(dst, mem + (addr - MEM_BASE), bytes);
    return 0;
}

static void emit(void *opaque, struct tlpb_tlp *cpl)
{
    (void)opaque;
    assert_true(seen.count < 128);
    seen.cpl[seen.count] = *cpl;
    if (cpl->payload_bytes) {
        assert_true(cpl->payload_bytes <= sizeof(seen.data[0]));
        memcpy(seen.data[seen.count], cpl->payload, cpl->payload_bytes);
    }
    seen.count++;
}

static enum tlpb_cpl_status serve(uint64_t addr, uint32_t bytes, uint32_t mps, bool unsplit,
                                  int *fail)
{
    static struct tlpb_dma_scratch scratch;
    struct tlpb_tlp req = {.kind = TLPB_TLP_MRD, .tag = 7, .requester_id = 0x0100,
                           .bar_hint = TLPB_NO_BAR};
    if (bytes == 0) {
        req.address = addr;
        req.length_dw = 1;
        req.first_be = 0;
        req.last_be = 0;
    } else {
        assert_int_equal(tlpb_tlp_set_mem_range(&req, addr, bytes), 0);
    }
    memset(&seen, 0, sizeof(seen));
    enum tlpb_cpl_status st =
        tlpb_dma_serve_read(&scratch, &req, 0, mps, unsplit, read_mem, fail, emit, NULL);
    return st;
}

static void setup_mem(void)
{
    for (unsigned i = 0; i < MEM_SIZE; i++)
        mem[i] = (uint8_t)(i * 7u + 3u);
}

/* Completions i: byte count, payload DWs, lower address, and the data. */
static void expect_cpl(unsigned i, uint64_t at, uint32_t byte_count, uint32_t length_dw)
{
    const struct tlpb_tlp *c = &seen.cpl[i];
    assert_int_equal(c->kind, TLPB_TLP_CPLD);
    assert_int_equal(c->status, TLPB_CPL_SC);
    assert_int_equal(c->tag, 7);
    assert_int_equal(c->requester_id, 0x0100);
    assert_int_equal(c->byte_count, byte_count);
    assert_int_equal(c->length_dw, length_dw);
    assert_int_equal(c->payload_bytes, length_dw * 4u);
    assert_int_equal(c->lower_address, at & 0x7f);
    /* The data from at's DW on; bytes before at in that DW are padding. */
    uint64_t dw = at & ~3ull;
    uint32_t valid_end = (uint32_t)(at - dw) + (byte_count < length_dw * 4u - (at - dw)
                                                    ? byte_count
                                                    : length_dw * 4u - (uint32_t)(at - dw));
    for (uint32_t k = (uint32_t)(at - dw); k < valid_end; k++)
        assert_int_equal(seen.data[i][k], mem[dw - MEM_BASE + k]);
}

static void test_aligned_split_at_mps(void **state)
{
    (void)state;
    setup_mem();
    assert_int_equal(serve(MEM_BASE + 0x100, 512, 128, false, NULL), TLPB_CPL_SC);
    assert_int_equal(seen.count, 4);
    expect_cpl(0, MEM_BASE + 0x100, 512, 32);
    expect_cpl(1, MEM_BASE + 0x180, 384, 32);
    expect_cpl(2, MEM_BASE + 0x200, 256, 32);
    expect_cpl(3, MEM_BASE + 0x280, 128, 32);
}

static void test_unaligned_first_completion_ends_on_rcb(void **state)
{
    (void)state;
    setup_mem();
    /* 300 bytes from 0x112, MPS 256: the first completion ends on the last
     * RCB boundary within MPS of its DW start (0x110 + 256 -> 0x200). */
    assert_int_equal(serve(MEM_BASE + 0x112, 300, 256, false, NULL), TLPB_CPL_SC);
    assert_int_equal(seen.count, 2);
    /* 0x112 .. 0x200: 0xee = 238 bytes in DWs 0x110 .. 0x200 (60 DW). */
    expect_cpl(0, MEM_BASE + 0x112, 300, 60);
    /* The rest, 62 bytes from 0x200: 16 DW (the last padded). */
    expect_cpl(1, MEM_BASE + 0x200, 62, 16);
    /* Padding after the last byte is zero. */
    assert_int_equal(seen.data[1][62], 0);
    assert_int_equal(seen.data[1][63], 0);
}

static void test_first_completion_ends_on_a_64_byte_rcb(void **state)
{
    (void)state;
    setup_mem();
    /* 300 bytes from 0x50, MPS 128: the first completion ends on the last
     * 64-byte boundary within 128 bytes (0xc0, not 0x80 as a 128-byte RCB
     * would), then MPS-sized ones, then the rest. */
    assert_int_equal(serve(MEM_BASE + 0x50, 300, 128, false, NULL), TLPB_CPL_SC);
    assert_int_equal(seen.count, 3);
    expect_cpl(0, MEM_BASE + 0x50, 300, 28);
    expect_cpl(1, MEM_BASE + 0xc0, 188, 32);
    expect_cpl(2, MEM_BASE + 0x140, 60, 15);
}

static void test_unsplit_over_4k_is_one_completion(void **state)
{
    (void)state;
    setup_mem();
    assert_int_equal(serve(MEM_BASE, 8192, 128, true, NULL), TLPB_CPL_SC);
    assert_int_equal(seen.count, 1);
    assert_int_equal(seen.cpl[0].byte_count, 8192);
    assert_int_equal(seen.cpl[0].length_dw, 2048);
    assert_int_equal(seen.cpl[0].payload_bytes, 8192);
}

static void test_unsplit_up_to_4k_splits_as_pcie(void **state)
{
    (void)state;
    setup_mem();
    assert_int_equal(serve(MEM_BASE, 4096, 1024, true, NULL), TLPB_CPL_SC);
    assert_int_equal(seen.count, 4);
    expect_cpl(3, MEM_BASE + 3072, 1024, 256);
}

static void test_zero_length_read(void **state)
{
    (void)state;
    setup_mem();
    assert_int_equal(serve(MEM_BASE + 0x40, 0, 128, false, NULL), TLPB_CPL_SC);
    assert_int_equal(seen.count, 1);
    assert_int_equal(seen.cpl[0].kind, TLPB_TLP_CPLD);
    assert_int_equal(seen.cpl[0].byte_count, 1);
    assert_int_equal(seen.cpl[0].length_dw, 1);
}

static void test_not_memory_is_ur_and_ca_is_ca(void **state)
{
    (void)state;
    assert_int_equal(serve(MEM_BASE + MEM_SIZE - 4, 64, 128, false, NULL), TLPB_CPL_UR);
    assert_int_equal(seen.count, 1);
    assert_int_equal(seen.cpl[0].kind, TLPB_TLP_CPL);
    assert_int_equal(seen.cpl[0].status, TLPB_CPL_UR);
    assert_int_equal(seen.cpl[0].byte_count, 64);
    int ca = TLPB_CPL_CA;
    assert_int_equal(serve(MEM_BASE, 64, 128, false, &ca), TLPB_CPL_CA);
    assert_int_equal(seen.count, 1);
    assert_int_equal(seen.cpl[0].status, TLPB_CPL_CA);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aligned_split_at_mps),
        cmocka_unit_test(test_unaligned_first_completion_ends_on_rcb),
        cmocka_unit_test(test_first_completion_ends_on_a_64_byte_rcb),
        cmocka_unit_test(test_unsplit_over_4k_is_one_completion),
        cmocka_unit_test(test_unsplit_up_to_4k_splits_as_pcie),
        cmocka_unit_test(test_zero_length_read),
        cmocka_unit_test(test_not_memory_is_ur_and_ca_is_ca),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
