/* The pcapng writer (bridge/pcapng.c): a file of a header and packets of
 * several lengths walks as pcapng blocks: SHB, IDB of our link type with
 * nanosecond resolution, one EPB per packet; every block's length is a
 * multiple of 4 and repeated at its end, the packet data is padded with
 * zeros, and the timestamps and captured and original lengths are those
 * written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pcapng.h"
#include "tlpb/byteorder.h"

static const uint32_t packet_lengths[] = {0, 1, 2, 3, 4, 5, 13, 64};
/* The original length of each packet: the captured one, or more for a
 * packet whose capture was cut short. */
static const uint32_t orig_lengths[] = {0, 1, 2, 3, 4, 4097, 13, 1114648};

static uint8_t *write_file(size_t *size)
{
    char *bytes = NULL;
    FILE *f = open_memstream(&bytes, size);
    assert_non_null(f);
    assert_int_equal(pcapng_write_header(f, TLPB_PCAPNG_LINKTYPE), 0);
    uint8_t data[64];
    for (unsigned i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(0xa0u + i);
    for (unsigned i = 0; i < sizeof(packet_lengths) / sizeof(packet_lengths[0]); i++) {
        uint64_t t = UINT64_C(1700000000123456789) + i * UINT64_C(0x100000001);
        assert_int_equal(pcapng_write_packet(f, t, data, packet_lengths[i], orig_lengths[i]), 0);
    }
    assert_int_equal(fclose(f), 0);
    return (uint8_t *)bytes;
}

/* Check the block at off and return its total length. */
static uint32_t check_block(const uint8_t *file, size_t size, size_t off, uint32_t type)
{
    assert_true(off + 12 <= size);
    assert_int_equal(tlpb_get_le32(file + off), type);
    uint32_t len = tlpb_get_le32(file + off + 4);
    assert_int_equal(len % 4, 0);
    assert_true(len >= 12 && off + len <= size);
    assert_int_equal(tlpb_get_le32(file + off + len - 4), len);
    return len;
}

static void test_block_structure(void **state)
{
    (void)state;
    size_t size = 0;
    uint8_t *file = write_file(&size);
    assert_int_equal(size % 4, 0);

    size_t off = 0;
    uint32_t len = check_block(file, size, off, PCAPNG_BT_SHB);
    assert_int_equal(len, 28);
    assert_int_equal(tlpb_get_le32(file + 8), PCAPNG_BYTE_ORDER_MAGIC);
    assert_int_equal(tlpb_get_le16(file + 12), 1); /* major */
    assert_int_equal(tlpb_get_le16(file + 14), 0); /* minor */
    assert_true(tlpb_get_le64(file + 16) == UINT64_MAX); /* section length unknown */
    off += len;

    len = check_block(file, size, off, PCAPNG_BT_IDB);
    assert_int_equal(tlpb_get_le16(file + off + 8), TLPB_PCAPNG_LINKTYPE);
    assert_int_equal(TLPB_PCAPNG_LINKTYPE, 147);
    /* options: if_tsresol (9), length 1, value 9, padded; then opt_endofopt */
    const uint8_t *opt = file + off + 16;
    assert_int_equal(tlpb_get_le16(opt), 9);
    assert_int_equal(tlpb_get_le16(opt + 2), 1);
    assert_int_equal(opt[4], 9);
    assert_int_equal(opt[5] | opt[6] | opt[7], 0);
    assert_int_equal(tlpb_get_le16(opt + 8), 0);
    assert_int_equal(tlpb_get_le16(opt + 10), 0);
    assert_int_equal(len, 16 + 12 + 4);
    off += len;

    for (unsigned i = 0; i < sizeof(packet_lengths) / sizeof(packet_lengths[0]); i++) {
        uint32_t want = packet_lengths[i];
        len = check_block(file, size, off, PCAPNG_BT_EPB);
        assert_int_equal(len, 32 + ((want + 3u) & ~3u));
        const uint8_t *b = file + off;
        assert_int_equal(tlpb_get_le32(b + 8), 0); /* interface 0 */
        uint64_t t = (uint64_t)tlpb_get_le32(b + 12) << 32 | tlpb_get_le32(b + 16);
        assert_true(t == UINT64_C(1700000000123456789) + i * UINT64_C(0x100000001));
        assert_int_equal(tlpb_get_le32(b + 20), want); /* captured */
        assert_int_equal(tlpb_get_le32(b + 24), orig_lengths[i]); /* original */
        for (uint32_t k = 0; k < want; k++)
            assert_int_equal(b[28 + k], 0xa0u + k);
        for (uint32_t k = want; k < ((want + 3u) & ~3u); k++)
            assert_int_equal(b[28 + k], 0); /* padding */
        off += len;
    }
    assert_int_equal(off, size);
    free(file);
}

/* A packet cannot have been shorter than what was captured of it. */
static void test_orig_len_below_captured(void **state)
{
    (void)state;
    char *bytes = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&bytes, &size);
    assert_non_null(f);
    uint8_t data[8] = {0};
    assert_int_equal(pcapng_write_packet(f, 1, data, sizeof(data), sizeof(data) - 1), -1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(size, 0);
    free(bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_structure),
        cmocka_unit_test(test_orig_len_below_captured),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
