/* Device description consistency checks: each rejection at least once, and
 * the shapes real devices use accepted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlpb/devdesc.h"

/* Like the example device: registers in BAR0, MSI-X table and PBA in BAR2,
 * INTx pin A. */
static struct tlpb_devdesc example(void)
{
    struct tlpb_devdesc d;
    memset(&d, 0, sizeof(d));
    d.vendor_id = 0x1b36;
    d.device_id = 0x0100;
    d.subsystem_vendor_id = 0x1af4;
    d.subsystem_id = 0x1100;
    d.revision = 1;
    d.class_code = 0xff0000;
    d.bars[0].size_bytes = 4096;
    d.bars[2].size_bytes = 4096;
    d.msix_vectors = 4;
    d.msix_table_bar = 2;
    d.msix_table_offset = 0;
    d.msix_pba_bar = 2;
    d.msix_pba_offset = 0x800;
    d.intx_pin = 1;
    d.max_payload_supported_bytes = 256;
    return d;
}

static void expect_valid(const struct tlpb_devdesc *d)
{
    const char *reason = NULL;
    if (tlpb_devdesc_validate(d, &reason) != 0)
        fail_msg("rejected: %s", reason ? reason : "(no reason)");
}

static void expect_invalid(const struct tlpb_devdesc *d, const char *why)
{
    const char *reason = NULL;
    assert_int_equal(tlpb_devdesc_validate(d, &reason), -EINVAL);
    assert_non_null(reason);
    assert_string_equal(reason, why);
}

static void test_valid_descriptions(void **state)
{
    (void)state;
    struct tlpb_devdesc d = example();
    expect_valid(&d);

    /* 64-bit prefetchable BAR in 0/1, I/O BAR, MSI, the table filling its BAR. */
    d = example();
    d.bars[0] = (struct tlpb_bar_desc){ .size_bytes = 1ull << 32, .is_64bit = true,
                                        .prefetchable = true };
    d.bars[2] = (struct tlpb_bar_desc){ .size_bytes = 4096 };
    d.bars[3] = (struct tlpb_bar_desc){ .size_bytes = 256, .is_io = true };
    d.bars[4] = (struct tlpb_bar_desc){ .size_bytes = 16, .is_64bit = true };
    d.msix_vectors = 2048;
    d.msix_table_bar = 0;
    d.msix_table_offset = 0;
    d.msix_pba_bar = 2;
    d.msix_pba_offset = 4096 - 256;
    d.msi_vectors = 32;
    d.msi_64bit = true;
    d.intx_pin = 4;
    d.max_payload_supported_bytes = 4096;
    expect_valid(&d);

    /* No interrupts, smallest sizes, table right after the PBA. */
    d = example();
    d.bars[2].size_bytes = 32;
    d.bars[5] = (struct tlpb_bar_desc){ .size_bytes = 4, .is_io = true };
    d.msix_vectors = 1;
    d.msix_table_offset = 8;
    d.msix_pba_offset = 0;
    d.intx_pin = 0;
    d.max_payload_supported_bytes = 128;
    expect_valid(&d);
    d.msix_vectors = 0; /* no MSI-X: its other fields do not matter */
    d.msix_table_bar = 9;
    expect_valid(&d);

    /* A 2 GiB 32-bit BAR is the largest there is. */
    d = example();
    d.bars[0].size_bytes = 1ull << 31;
    expect_valid(&d);
}

static void test_reject_ids(void **state)
{
    (void)state;
    struct tlpb_devdesc d = example();
    d.vendor_id = 0xffff;
    expect_invalid(&d, "vendor ID 0xFFFF means no device");
    d = example();
    d.class_code = 0x1000000;
    expect_invalid(&d, "class code wider than 24 bits");
}

static void test_reject_bars(void **state)
{
    (void)state;
    struct tlpb_devdesc d = example();
    d.bars[1].is_64bit = true;
    expect_invalid(&d, "BAR flags set on an unimplemented BAR");

    d = example();
    d.bars[0].size_bytes = 3000;
    expect_invalid(&d, "BAR size is not a power of two");

    d = example();
    d.bars[1] = (struct tlpb_bar_desc){ .size_bytes = 256, .is_io = true, .is_64bit = true };
    expect_invalid(&d, "I/O BAR cannot be 64-bit");
    d.bars[1] = (struct tlpb_bar_desc){ .size_bytes = 256, .is_io = true, .prefetchable = true };
    expect_invalid(&d, "I/O BAR cannot be prefetchable");
    d.bars[1] = (struct tlpb_bar_desc){ .size_bytes = 2, .is_io = true };
    expect_invalid(&d, "I/O BAR smaller than 4 bytes");
    d.bars[1] = (struct tlpb_bar_desc){ .size_bytes = 512, .is_io = true };
    expect_invalid(&d, "I/O BAR larger than 256 bytes");

    d = example();
    d.bars[0].size_bytes = 8;
    expect_invalid(&d, "memory BAR smaller than 16 bytes");

    d = example();
    d.bars[0].prefetchable = true;
    expect_invalid(&d, "prefetchable memory BAR must be 64-bit");

    d = example();
    d.bars[0].size_bytes = 1ull << 32;
    expect_invalid(&d, "32-bit memory BAR larger than 2 GiB");

    /* The largest power of two in 64 bits. */
    d = example();
    d.bars[0] = (struct tlpb_bar_desc){ .size_bytes = 1ull << 63, .is_64bit = true };
    expect_valid(&d);

    d = example();
    d.bars[5] = (struct tlpb_bar_desc){ .size_bytes = 4096, .is_64bit = true };
    expect_invalid(&d, "64-bit BAR in slot 5");

    d = example();
    d.bars[0].is_64bit = true;
    d.bars[1].size_bytes = 4096;
    expect_invalid(&d, "64-bit BAR followed by another BAR");
    d.bars[1] = (struct tlpb_bar_desc){ .is_io = true };
    expect_invalid(&d, "64-bit BAR followed by another BAR");
}

static void test_reject_msix(void **state)
{
    (void)state;
    struct tlpb_devdesc d = example();
    d.msix_vectors = 2049;
    expect_invalid(&d, "MSI-X vector count above 2048");

    d = example();
    d.msix_table_bar = 1;
    expect_invalid(&d, "MSI-X table BAR not implemented");
    d.msix_table_bar = 6;
    expect_invalid(&d, "MSI-X table BAR not implemented");
    /* The upper half of a 64-bit BAR is not a BAR of its own. */
    d = example();
    d.bars[2].is_64bit = true;
    d.msix_table_bar = 3;
    expect_invalid(&d, "MSI-X table BAR not implemented");

    d = example();
    d.msix_pba_bar = 4;
    expect_invalid(&d, "MSI-X PBA BAR not implemented");

    d = example();
    d.bars[2] = (struct tlpb_bar_desc){ .size_bytes = 128, .is_io = true };
    d.msix_pba_bar = 0;
    expect_invalid(&d, "MSI-X table in an I/O BAR");
    d = example();
    d.bars[4] = (struct tlpb_bar_desc){ .size_bytes = 128, .is_io = true };
    d.msix_pba_bar = 4;
    d.msix_pba_offset = 0;
    expect_invalid(&d, "MSI-X PBA in an I/O BAR");

    d = example();
    d.msix_table_offset = 4;
    expect_invalid(&d, "MSI-X table offset not 8-byte aligned");
    d = example();
    d.msix_pba_offset = 0x804;
    expect_invalid(&d, "MSI-X PBA offset not 8-byte aligned");

    /* 4 vectors = 64 bytes of table: 4032 + 64 = 4096 fits, 4040 does not. */
    d = example();
    d.msix_table_offset = 4032;
    d.msix_pba_offset = 0;
    expect_valid(&d);
    d.msix_table_offset = 4040;
    expect_invalid(&d, "MSI-X table extends past the end of its BAR");
    d = example();
    d.msix_table_offset = 0xffffffe0u; /* no wrap-around in the check */
    expect_invalid(&d, "MSI-X table extends past the end of its BAR");
    /* 65 vectors need a 16-byte PBA. */
    d = example();
    d.msix_vectors = 65;
    d.msix_table_offset = 0;
    d.msix_pba_offset = 4096 - 8;
    expect_invalid(&d, "MSI-X PBA extends past the end of its BAR");
    d.msix_pba_offset = 4096 - 16;
    expect_valid(&d);

    /* Overlap: 4 vectors' table covers 0..63; a PBA at 56 collides. */
    d = example();
    d.msix_pba_offset = 56;
    expect_invalid(&d, "MSI-X table and PBA overlap");
    d.msix_pba_offset = 64;
    expect_valid(&d);
    d.msix_table_offset = 8; /* table 8..71 against PBA 64..71 */
    expect_invalid(&d, "MSI-X table and PBA overlap");
    /* Same offsets in different BARs do not overlap. */
    d = example();
    d.bars[4].size_bytes = 4096;
    d.msix_pba_bar = 4;
    d.msix_pba_offset = 0;
    expect_valid(&d);
}

static void test_reject_msi_intx_mps(void **state)
{
    (void)state;
    static const uint8_t bad_msi[] = { 3, 5, 6, 7, 12, 33, 64 };
    for (size_t i = 0; i < sizeof(bad_msi); i++) {
        struct tlpb_devdesc d = example();
        d.msi_vectors = bad_msi[i];
        expect_invalid(&d, "MSI vector count not 0, 1, 2, 4, 8, 16 or 32");
    }

    struct tlpb_devdesc d = example();
    d.intx_pin = 5;
    expect_invalid(&d, "INTx pin out of range");

    static const uint16_t bad_mps[] = { 0, 64, 192, 5000, 8192 };
    for (size_t i = 0; i < sizeof(bad_mps) / sizeof(bad_mps[0]); i++) {
        d = example();
        d.max_payload_supported_bytes = bad_mps[i];
        expect_invalid(&d, "max payload supported not a power of two from 128 to 4096");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_descriptions),
        cmocka_unit_test(test_reject_ids),
        cmocka_unit_test(test_reject_bars),
        cmocka_unit_test(test_reject_msix),
        cmocka_unit_test(test_reject_msi_intx_mps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
