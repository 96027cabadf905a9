/* The MSI-X table and PBA emulation shared by the host library, the hlsim
 * SDK and the RTL adapter (PCIe 7.7.2), the byte-order helpers, and the
 * per-DW byte-enable rule. Expected values come from the specification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlpb/byteorder.h"
#include "tlpb/msix.h"
#include "tlpb/tlp.h"

#define TABLE_BAR 2
#define PBA_OFF 0x800u

/* 40 vectors: the PBA takes one QW, and vector 33 sits in its second DW. */
static struct tlpb_msix make(unsigned vectors)
{
    struct tlpb_devdesc d;
    memset(&d, 0, sizeof(d));
    d.msix_vectors = (uint16_t)vectors;
    d.msix_table_bar = TABLE_BAR;
    d.msix_table_offset = 0;
    d.msix_pba_bar = TABLE_BAR;
    d.msix_pba_offset = PBA_OFF;
    struct tlpb_msix m;
    assert_int_equal(tlpb_msix_init(&m, &d), 0);
    return m;
}

static uint32_t entry_dw(const struct tlpb_msix *m, unsigned vector, unsigned dw)
{
    return tlpb_msix_read_dw(m, TABLE_BAR, vector * 16u + dw * 4u);
}

static void unmask(struct tlpb_msix *m, unsigned vector)
{
    tlpb_msix_write_dw(m, TABLE_BAR, vector * 16u + 12, 0, 0xF);
}

static void test_reset_state(void **state)
{
    (void)state;
    struct tlpb_msix m = make(40);
    for (unsigned v = 0; v < 40; v++) {
        assert_int_equal(entry_dw(&m, v, 0), 0);
        assert_int_equal(entry_dw(&m, v, 2), 0);
        assert_int_equal(entry_dw(&m, v, 3), 1); /* vectors come out of reset masked */
        assert_true(tlpb_msix_vector_masked(&m, v));
        assert_false(tlpb_msix_pending(&m, v));
    }
    unmask(&m, 5);
    tlpb_msix_write_dw(&m, TABLE_BAR, 5 * 16u + 8, 0x1234, 0xF);
    tlpb_msix_set_pending(&m, 7);
    tlpb_msix_reset(&m);
    assert_int_equal(entry_dw(&m, 5, 3), 1);
    assert_int_equal(entry_dw(&m, 5, 2), 0);
    assert_false(tlpb_msix_pending(&m, 7));
    tlpb_msix_fini(&m);
}

static void test_no_msix(void **state)
{
    (void)state;
    struct tlpb_msix m = make(0);
    assert_int_equal(m.vectors, 0);
    assert_false(tlpb_msix_hit(&m, TABLE_BAR, 0));
    assert_int_equal(tlpb_msix_take_deliverable(&m), -1);
    tlpb_msix_reset(&m);
    tlpb_msix_fini(&m);
}

static void test_hit(void **state)
{
    (void)state;
    struct tlpb_msix m = make(40);
    assert_true(tlpb_msix_hit(&m, TABLE_BAR, 0));
    assert_true(tlpb_msix_hit(&m, TABLE_BAR, 40 * 16u - 1));
    assert_false(tlpb_msix_hit(&m, TABLE_BAR, 40 * 16u));
    assert_false(tlpb_msix_hit(&m, 0, 0));
    assert_true(tlpb_msix_hit(&m, TABLE_BAR, PBA_OFF));
    assert_true(tlpb_msix_hit(&m, TABLE_BAR, PBA_OFF + 7));
    assert_false(tlpb_msix_hit(&m, TABLE_BAR, PBA_OFF + 8)); /* 40 vectors: one QW */
    assert_false(tlpb_msix_hit(&m, TABLE_BAR, PBA_OFF - 1));
    tlpb_msix_fini(&m);
}

static void test_writable_bits(void **state)
{
    (void)state;
    struct tlpb_msix m = make(4);
    tlpb_msix_write_dw(&m, TABLE_BAR, 16 + 0, 0xFEE01003u, 0xF);
    tlpb_msix_write_dw(&m, TABLE_BAR, 16 + 4, 0x12345678u, 0xF);
    tlpb_msix_write_dw(&m, TABLE_BAR, 16 + 8, 0xCAFEBABEu, 0xF);
    tlpb_msix_write_dw(&m, TABLE_BAR, 16 + 12, 0xFFFFFFFEu, 0xF);
    assert_int_equal(entry_dw(&m, 1, 0), 0xFEE01000u); /* address is DW aligned */
    assert_int_equal(entry_dw(&m, 1, 1), 0x12345678u);
    assert_int_equal(entry_dw(&m, 1, 2), 0xCAFEBABEu);
    assert_int_equal(entry_dw(&m, 1, 3), 0);           /* only the mask bit is writable */
    assert_false(tlpb_msix_vector_masked(&m, 1));
    assert_true(tlpb_msix_vector_masked(&m, 0));       /* neighbours untouched */
    assert_int_equal(entry_dw(&m, 2, 0), 0);
    /* byte enables: only the enabled lanes change */
    tlpb_msix_write_dw(&m, TABLE_BAR, 16 + 8, 0x11223344u, 0x3);
    assert_int_equal(entry_dw(&m, 1, 2), 0xCAFE3344u);
    tlpb_msix_write_dw(&m, TABLE_BAR, 16 + 8, 0x55667788u, 0x0);
    assert_int_equal(entry_dw(&m, 1, 2), 0xCAFE3344u);
    tlpb_msix_fini(&m);
}

static void test_byte_access(void **state)
{
    (void)state;
    struct tlpb_msix m = make(4);
    /* 8 bytes at offset 8 of vector 0: Message Data and Vector Control */
    uint8_t in[8] = {0x44, 0x33, 0x22, 0x11, 0x00, 0x00, 0x00, 0x00};
    tlpb_msix_write(&m, TABLE_BAR, 8, in, 8);
    assert_int_equal(entry_dw(&m, 0, 2), 0x11223344u);
    assert_false(tlpb_msix_vector_masked(&m, 0));
    /* unaligned: 4 bytes across the boundary of DW 2 and DW 3 */
    uint8_t out[4];
    tlpb_msix_read(&m, TABLE_BAR, 10, out, 4);
    assert_int_equal(out[0], 0x22);
    assert_int_equal(out[1], 0x11);
    assert_int_equal(out[2], 0x00);
    assert_int_equal(out[3], 0x00);
    uint8_t two[2] = {0xAB, 0xCD};
    tlpb_msix_write(&m, TABLE_BAR, 9, two, 2);
    assert_int_equal(entry_dw(&m, 0, 2), 0x11CDAB44u);
    uint8_t mask_byte = 1;
    tlpb_msix_write(&m, TABLE_BAR, 12, &mask_byte, 1);
    assert_true(tlpb_msix_vector_masked(&m, 0));
    tlpb_msix_fini(&m);
}

static void test_pba(void **state)
{
    (void)state;
    struct tlpb_msix m = make(40);
    tlpb_msix_set_pending(&m, 0);
    tlpb_msix_set_pending(&m, 33);
    tlpb_msix_set_pending(&m, 40); /* out of range: ignored */
    assert_true(tlpb_msix_pending(&m, 0));
    assert_true(tlpb_msix_pending(&m, 33));
    assert_false(tlpb_msix_pending(&m, 1));
    assert_false(tlpb_msix_pending(&m, 40));
    assert_int_equal(tlpb_msix_read_dw(&m, TABLE_BAR, PBA_OFF), 0x1u);
    assert_int_equal(tlpb_msix_read_dw(&m, TABLE_BAR, PBA_OFF + 4), 0x2u);
    uint8_t b;
    tlpb_msix_read(&m, TABLE_BAR, PBA_OFF + 4, &b, 1);
    assert_int_equal(b, 0x2);
    /* the PBA is read-only */
    tlpb_msix_write_dw(&m, TABLE_BAR, PBA_OFF, 0, 0xF);
    tlpb_msix_write_dw(&m, TABLE_BAR, PBA_OFF + 4, 0xFFFFFFFFu, 0xF);
    assert_int_equal(tlpb_msix_read_dw(&m, TABLE_BAR, PBA_OFF), 0x1u);
    assert_int_equal(tlpb_msix_read_dw(&m, TABLE_BAR, PBA_OFF + 4), 0x2u);
    tlpb_msix_fini(&m);
}

/* Pending vectors go out lowest first once unmasked, and only once. */
static void test_take_deliverable(void **state)
{
    (void)state;
    struct tlpb_msix m = make(40);
    static const unsigned fired[] = {3, 33};
    for (unsigned i = 0; i < 2; i++)
        tlpb_msix_set_pending(&m, fired[i]);
    assert_int_equal(tlpb_msix_take_deliverable(&m), -1); /* all masked */
    unmask(&m, 33);
    assert_int_equal(tlpb_msix_take_deliverable(&m), 33);
    assert_false(tlpb_msix_pending(&m, 33));
    assert_int_equal(tlpb_msix_take_deliverable(&m), -1);
    unmask(&m, 3);
    assert_int_equal(tlpb_msix_take_deliverable(&m), 3);
    assert_int_equal(tlpb_msix_read_dw(&m, TABLE_BAR, PBA_OFF), 0);
    assert_int_equal(tlpb_msix_read_dw(&m, TABLE_BAR, PBA_OFF + 4), 0);
    tlpb_msix_fini(&m);
}

static void test_byteorder(void **state)
{
    (void)state;
    const uint8_t b[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF};
    assert_int_equal(tlpb_get_le16(b), 0x2301);
    assert_int_equal(tlpb_get_le32(b), 0x67452301u);
    assert_true(tlpb_get_le64(b) == UINT64_C(0xEFCDAB8967452301));
    assert_int_equal(tlpb_get_be16(b), 0x0123);
    assert_int_equal(tlpb_get_be32(b), 0x01234567u);
    uint8_t out[8];
    memset(out, 0, sizeof(out));
    tlpb_put_le64(out, UINT64_C(0xEFCDAB8967452301));
    assert_memory_equal(out, b, 8);
    memset(out, 0, sizeof(out));
    tlpb_put_le32(out, 0x67452301u);
    tlpb_put_le16(out + 4, 0xAB89);
    assert_memory_equal(out, b, 6);
    tlpb_put_be32(out, 0x01234567u);
    tlpb_put_be16(out + 4, 0x89AB);
    assert_memory_equal(out, b, 6);
    assert_int_equal(tlpb_byte_enable_mask(0x0), 0);
    assert_int_equal(tlpb_byte_enable_mask(0x5), 0x00FF00FFu);
    assert_int_equal(tlpb_byte_enable_mask(0xF), 0xFFFFFFFFu);
}

static void test_dw_byte_enables(void **state)
{
    (void)state;
    struct tlpb_tlp one = {.kind = TLPB_TLP_MRD, .length_dw = 1, .first_be = 0x6};
    assert_int_equal(tlpb_tlp_dw_byte_enables(&one, 0), 0x6);
    struct tlpb_tlp three = {.kind = TLPB_TLP_MRD, .length_dw = 3, .first_be = 0xC,
                             .last_be = 0x1};
    assert_int_equal(tlpb_tlp_dw_byte_enables(&three, 0), 0xC);
    assert_int_equal(tlpb_tlp_dw_byte_enables(&three, 1), 0xF);
    assert_int_equal(tlpb_tlp_dw_byte_enables(&three, 2), 0x1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset_state),   cmocka_unit_test(test_no_msix),
        cmocka_unit_test(test_hit),           cmocka_unit_test(test_writable_bits),
        cmocka_unit_test(test_byte_access),   cmocka_unit_test(test_pba),
        cmocka_unit_test(test_take_deliverable), cmocka_unit_test(test_byteorder),
        cmocka_unit_test(test_dw_byte_enables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
