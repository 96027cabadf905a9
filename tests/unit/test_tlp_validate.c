/* TLP validation: every rejection reason at least once, each with the
 * checker rule it is (only crossing 4 KiB, a CplD not SC and CplD data past
 * its byte count are one), and the valid edge cases (limits, zero-length
 * forms, byte-enable exceptions, fast-mode sizes) accepted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlpb/cfgspace.h"
#include "tlpb/pcie_check.h"
#include "tlpb/tlp.h"
#include "tlpb/wire.h"

#define UNSPLIT_DW (TLPB_UNSPLIT_MAX_BYTES / 4u)

static uint8_t data[TLPB_UNSPLIT_MAX_BYTES + 4];

static const struct tlpb_tlp_limits mps_4096 = { .max_payload_bytes = 0, .unsplit = false };
static const struct tlpb_tlp_limits mps_128 = { .max_payload_bytes = 128, .unsplit = false };
static const struct tlpb_tlp_limits mps_256 = { .max_payload_bytes = 256, .unsplit = false };
static const struct tlpb_tlp_limits fast = { .max_payload_bytes = 256, .unsplit = true };

static struct tlpb_tlp mrd(uint64_t address, uint32_t length_dw)
{
    struct tlpb_tlp tlp;
    memset(&tlp, 0, sizeof(tlp));
    tlp.kind = TLPB_TLP_MRD;
    tlp.requester_id = 0x0100;
    tlp.tag = 1;
    tlp.address = address;
    tlp.length_dw = length_dw;
    tlp.first_be = 0xf;
    tlp.last_be = length_dw > 1 ? 0xf : 0x0;
    tlp.bar_hint = TLPB_NO_BAR;
    return tlp;
}

static struct tlpb_tlp mwr(uint64_t address, uint32_t length_dw)
{
    struct tlpb_tlp tlp = mrd(address, length_dw);
    tlp.kind = TLPB_TLP_MWR;
    tlp.payload = data;
    tlp.payload_bytes = length_dw * 4;
    return tlp;
}

static struct tlpb_tlp cfg(enum tlpb_tlp_kind kind, uint16_t reg)
{
    struct tlpb_tlp tlp;
    memset(&tlp, 0, sizeof(tlp));
    tlp.kind = kind;
    tlp.requester_id = 0x0000;
    tlp.completer_id = 0x0100;
    tlp.length_dw = 1;
    tlp.first_be = 0xf;
    tlp.cfg_register = reg;
    tlp.bar_hint = TLPB_NO_BAR;
    if (kind == TLPB_TLP_CFGWR0) {
        tlp.payload = data;
        tlp.payload_bytes = 4;
    }
    return tlp;
}

static struct tlpb_tlp cpld(uint32_t length_dw, uint32_t byte_count, uint8_t lower_address)
{
    struct tlpb_tlp tlp;
    memset(&tlp, 0, sizeof(tlp));
    tlp.kind = TLPB_TLP_CPLD;
    tlp.completer_id = 0x0100;
    tlp.requester_id = 0x0000;
    tlp.status = TLPB_CPL_SC;
    tlp.length_dw = length_dw;
    tlp.byte_count = byte_count;
    tlp.lower_address = lower_address;
    tlp.payload = data;
    tlp.payload_bytes = length_dw * 4;
    tlp.bar_hint = TLPB_NO_BAR;
    return tlp;
}

static struct tlpb_tlp cpl(enum tlpb_cpl_status status, uint32_t byte_count)
{
    struct tlpb_tlp tlp = cpld(0, byte_count, 0);
    tlp.kind = TLPB_TLP_CPL;
    tlp.status = status;
    tlp.payload = NULL;
    tlp.payload_bytes = 0;
    return tlp;
}

static void expect_valid(const struct tlpb_tlp *tlp, const struct tlpb_tlp_limits *limits)
{
    const char *reason = NULL;
    enum tlpb_tlp_rule rule = TLPB_TLP_RULE_CPLD_STATUS;
    int err = tlpb_tlp_validate_rule(tlp, limits, &reason, &rule);
    if (err != 0)
        fail_msg("rejected: %s", reason ? reason : "(no reason)");
    assert_int_equal(rule, TLPB_TLP_RULE_OTHER);
}

/* Refused for the rule why, which is the checker's rule (OTHER: none). */
static void expect_invalid_rule(const struct tlpb_tlp *tlp, const struct tlpb_tlp_limits *limits,
                                const char *why, enum tlpb_tlp_rule checker_rule)
{
    const char *reason = NULL;
    enum tlpb_tlp_rule rule = TLPB_TLP_RULE_OTHER;
    assert_int_equal(tlpb_tlp_validate_rule(tlp, limits, &reason, &rule), -EINVAL);
    assert_non_null(reason);
    assert_string_equal(reason, why);
    assert_int_equal(rule, checker_rule);
    /* The plain form refuses it alike. */
    reason = NULL;
    assert_int_equal(tlpb_tlp_validate(tlp, limits, &reason), -EINVAL);
    assert_string_equal(reason, why);
}

static void expect_invalid(const struct tlpb_tlp *tlp, const struct tlpb_tlp_limits *limits,
                           const char *why)
{
    expect_invalid_rule(tlp, limits, why, TLPB_TLP_RULE_OTHER);
}

/* A field that does not fit its PCIe width: malformed (-ERANGE), which the
 * bridge treats as a protocol error rather than a broken rule. */
static void expect_malformed(const struct tlpb_tlp *tlp, const struct tlpb_tlp_limits *limits,
                             const char *why)
{
    const char *reason = NULL;
    enum tlpb_tlp_rule rule = TLPB_TLP_RULE_CROSSES_4K;
    assert_int_equal(tlpb_tlp_validate_rule(tlp, limits, &reason, &rule), -ERANGE);
    assert_non_null(reason);
    assert_string_equal(reason, why);
    assert_int_equal(rule, TLPB_TLP_RULE_OTHER);
}

/* ---- valid TLPs ------------------------------------------------------ */

static void test_valid_memory_requests(void **state)
{
    (void)state;
    struct tlpb_tlp t = mrd(0x1000, 1);
    expect_valid(&t, &mps_128);
    expect_valid(&t, NULL);
    /* A read may ask for 4096 bytes whatever the max payload size. */
    t = mrd(0x1000, 1024);
    expect_valid(&t, &mps_128);
    /* Ending exactly at a 4 KiB boundary. */
    t = mrd(0x1ffc, 1);
    expect_valid(&t, &mps_128);
    t = mrd(0x1f80, 32);
    expect_valid(&t, &mps_128);
    /* A write of exactly max payload. */
    t = mwr(0x1000, 32);
    expect_valid(&t, &mps_128);
    t = mwr(0x1000, 1024);
    expect_valid(&t, &mps_4096);
    /* 64-bit addresses, up to the last DW of the address space. */
    t = mwr(0xfffffffffffff000ull, 1024);
    expect_valid(&t, &mps_4096);
    t = mrd(0xfffffffffffffffcull, 1);
    expect_valid(&t, &mps_4096);
    /* Attributes, TC, EP, BAR hints. */
    t = mwr(0x2000, 2);
    t.traffic_class = 7;
    t.attributes = TLPB_ATTR_NO_SNOOP | TLPB_ATTR_RELAXED_ORDERING | TLPB_ATTR_ID_ORDERING;
    t.poisoned = true;
    t.bar_hint = 5;
    expect_valid(&t, &mps_128);
    t.bar_hint = 0;
    expect_valid(&t, &mps_128);
}

static void test_valid_byte_enables(void **state)
{
    (void)state;
    /* Zero-length read and write: 1 DW, nothing enabled. */
    struct tlpb_tlp t = mrd(0x1000, 1);
    t.first_be = 0;
    expect_valid(&t, &mps_128);
    t = mwr(0x1000, 1);
    t.first_be = 0;
    expect_valid(&t, &mps_128);
    /* Gaps in a 1-DW request. */
    t = mrd(0x1004, 1);
    t.first_be = 0x9;
    expect_valid(&t, &mps_128);
    /* Gaps in a QW-aligned 2-DW request. */
    t = mwr(0x1008, 2);
    t.first_be = 0x5;
    t.last_be = 0xa;
    expect_valid(&t, &mps_128);
    /* Contiguous partial enables in a long request. */
    t = mrd(0x1004, 8);
    t.first_be = 0x8;
    t.last_be = 0x1;
    expect_valid(&t, &mps_128);
    /* 2-DW not QW aligned but contiguous. */
    t = mrd(0x1004, 2);
    t.first_be = 0xc;
    t.last_be = 0x3;
    expect_valid(&t, &mps_128);
}

static void test_valid_config(void **state)
{
    (void)state;
    struct tlpb_tlp t = cfg(TLPB_TLP_CFGRD0, 0x000);
    expect_valid(&t, &mps_128);
    t = cfg(TLPB_TLP_CFGRD0, 0xffc);
    t.first_be = 0x5; /* gaps are fine in 1 DW */
    expect_valid(&t, &mps_128);
    t = cfg(TLPB_TLP_CFGWR0, 0x104);
    t.attributes = TLPB_ATTR_ID_ORDERING;
    expect_valid(&t, &mps_128);
}

static void test_valid_completions(void **state)
{
    (void)state;
    struct tlpb_tlp t = cpld(1, 4, 0);
    expect_valid(&t, &mps_128);
    /* Max payload exactly; Byte Count larger (more completions follow). */
    t = cpld(32, 4096, 0);
    expect_valid(&t, &mps_128);
    t = cpld(1024, 4096, 0);
    expect_valid(&t, &mps_4096);
    /* Unaligned start: 2 bytes at offset 3 need 2 DW. */
    t = cpld(2, 2, 0x7f);
    expect_valid(&t, &mps_128);
    /* Zero-length read's completion. */
    t = cpld(1, 1, 0x40);
    expect_valid(&t, &mps_128);
    t = cpl(TLPB_CPL_UR, 128);
    expect_valid(&t, &mps_128);
    t = cpl(TLPB_CPL_CRS, 4);
    expect_valid(&t, &mps_128);
    t = cpl(TLPB_CPL_CA, 4096);
    expect_valid(&t, &mps_128);
    /* A Cpl's Length is reserved: whatever length_dw holds is ignored. */
    t = cpl(TLPB_CPL_SC, 4);
    t.length_dw = 7;
    expect_valid(&t, &mps_128);
}

static void test_valid_unsplit(void **state)
{
    (void)state;
    /* Fast mode: 1 MiB (+8) in one TLP, crossing 4 KiB boundaries. */
    struct tlpb_tlp t = mwr(0x1000, UNSPLIT_DW);
    expect_valid(&t, &fast);
    t = mwr(0x1ff8, 1024 * 256);
    expect_valid(&t, &fast);
    t = mrd(0x10, UNSPLIT_DW);
    expect_valid(&t, &fast);
    t = cpld(UNSPLIT_DW, TLPB_UNSPLIT_MAX_BYTES, 0);
    expect_valid(&t, &fast);
    /* The same TLPs are refused without fast mode. */
    t = mwr(0x1ff8, 1024 * 256);
    expect_malformed(&t, &mps_256, "length_dw above 1024 without unsplit DMA");
    t = mwr(0x1000, 128);
    expect_invalid(&t, &mps_256, "MWr payload exceeds max payload size");
    t = mrd(0x1ff8, 4);
    expect_invalid_rule(&t, &mps_256, "memory request crosses a 4 KiB boundary",
                        TLPB_TLP_RULE_CROSSES_4K);
}

/* ---- every rejection --------------------------------------------------- */

static void test_reject_common_fields(void **state)
{
    (void)state;
    struct tlpb_tlp t = mrd(0x1000, 1);
    t.kind = TLPB_TLP_INVALID;
    expect_malformed(&t, &mps_128, "unknown TLP kind");
    t.kind = (enum tlpb_tlp_kind)7;
    expect_malformed(&t, &mps_128, "unknown TLP kind");

    t = mrd(0x1000, 1);
    t.traffic_class = 8;
    expect_malformed(&t, &mps_128, "traffic class out of range");

    t = mrd(0x1000, 1);
    t.attributes = 0x8;
    expect_malformed(&t, &mps_128, "attributes out of range");

    t = mrd(0x1000, 1);
    t.first_be = 0x1f;
    expect_malformed(&t, &mps_128, "byte enables wider than 4 bits");
    t = mrd(0x1000, 2);
    t.last_be = 0x10;
    expect_malformed(&t, &mps_128, "byte enables wider than 4 bits");

    t = mrd(0x1000, 1);
    t.bar_hint = 6;
    expect_malformed(&t, &mps_128, "BAR hint out of range");
    t.bar_hint = -2;
    expect_malformed(&t, &mps_128, "BAR hint out of range");

    t = mrd(0x1000, 1);
    t.payload = data;
    t.payload_bytes = 4;
    expect_invalid(&t, &mps_128, "payload on a TLP kind without data");
    t = cpl(TLPB_CPL_UR, 4);
    t.payload = data;
    t.payload_bytes = 4;
    expect_invalid(&t, &mps_128, "payload on a TLP kind without data");
    t = cfg(TLPB_TLP_CFGRD0, 0);
    t.payload = data;
    t.payload_bytes = 4;
    expect_invalid(&t, &mps_128, "payload on a TLP kind without data");

    t = mwr(0x1000, 1);
    t.payload = NULL;
    expect_invalid(&t, &mps_128, "payload_bytes set but payload missing");
}

static void test_reject_memory_lengths(void **state)
{
    (void)state;
    struct tlpb_tlp t = mrd(0x1000, 0);
    expect_invalid(&t, &mps_128, "memory request length_dw is 0");
    t = mwr(0x1000, 0);
    expect_invalid(&t, &mps_128, "memory request length_dw is 0");

    /* Length is a 10-bit field: 1025 DW cannot be encoded without unsplit. */
    t = mrd(0x0, 1025);
    expect_malformed(&t, &mps_4096, "length_dw above 1024 without unsplit DMA");
    t = mrd(0x0, UNSPLIT_DW + 1);
    expect_malformed(&t, &fast, "MRd longer than the unsplit maximum");

    t = mwr(0x1000, 33);
    expect_invalid(&t, &mps_128, "MWr payload exceeds max payload size");
    t = mwr(0x0, 1025);
    expect_malformed(&t, &mps_4096, "length_dw above 1024 without unsplit DMA");
    /* A limit above 4096 is no licence for more. */
    struct tlpb_tlp_limits huge = { .max_payload_bytes = 8192, .unsplit = false };
    expect_malformed(&t, &huge, "length_dw above 1024 without unsplit DMA");
    t = mwr(0x0, UNSPLIT_DW + 1);
    expect_invalid(&t, &fast, "MWr payload exceeds max payload size");

    t = mwr(0x1000, 2);
    t.payload_bytes = 4;
    expect_invalid(&t, &mps_128, "MWr payload length does not match length_dw");
    t.payload_bytes = 12;
    expect_invalid(&t, &mps_128, "MWr payload length does not match length_dw");
}

static void test_reject_memory_addresses(void **state)
{
    (void)state;
    struct tlpb_tlp t = mrd(0x1002, 1);
    expect_invalid(&t, &mps_128, "memory address not DW aligned");
    t = mwr(0x1001, 1);
    expect_invalid(&t, &fast, "memory address not DW aligned");

    t = mrd(0xfffffffffffffffcull, 2);
    expect_invalid(&t, &mps_128, "memory request wraps past the top of the address space");
    t = mwr(0xffffffffffff0000ull, 65536);
    expect_invalid(&t, &fast, "memory request wraps past the top of the address space");

    /* One DW past the boundary, and the classic one-byte-over case. */
    t = mrd(0x1ffc, 2);
    expect_invalid_rule(&t, &mps_128, "memory request crosses a 4 KiB boundary",
                        TLPB_TLP_RULE_CROSSES_4K);
    t = mwr(0xf80, 33);
    t.payload_bytes = 33 * 4;
    expect_invalid_rule(&t, &mps_4096, "memory request crosses a 4 KiB boundary",
                        TLPB_TLP_RULE_CROSSES_4K);
    t = mrd(0x1004, 1024);
    expect_invalid_rule(&t, &mps_128, "memory request crosses a 4 KiB boundary",
                        TLPB_TLP_RULE_CROSSES_4K);
}

static void test_reject_byte_enables(void **state)
{
    (void)state;
    struct tlpb_tlp t = mrd(0x1000, 1);
    t.last_be = 0xf;
    expect_invalid(&t, &mps_128, "last_be must be 0 for a 1-DW request");

    t = mrd(0x1000, 2);
    t.first_be = 0;
    expect_invalid(&t, &mps_128, "first_be is 0 in a multi-DW request");
    t = mwr(0x1000, 4);
    t.last_be = 0;
    expect_invalid(&t, &mps_128, "last_be is 0 in a multi-DW request");

    t = mrd(0x1000, 3);
    t.first_be = 0x5;
    expect_invalid(&t, &mps_128, "non-contiguous byte enables in a request longer than 2 DW");
    t = mrd(0x1000, 3);
    t.first_be = 0x7; /* contiguous in itself, but leaves a gap before DW 2 */
    expect_invalid(&t, &mps_128, "non-contiguous byte enables in a request longer than 2 DW");
    t = mwr(0x1000, 8);
    t.last_be = 0xe;
    expect_invalid(&t, &mps_128, "non-contiguous byte enables in a request longer than 2 DW");

    t = mrd(0x1004, 2);
    t.first_be = 0x5;
    t.last_be = 0xf;
    expect_invalid(&t, &mps_128, "non-contiguous byte enables in a 2-DW request not QW aligned");
    t = mwr(0x100c, 2);
    t.first_be = 0xf;
    t.last_be = 0x2;
    expect_invalid(&t, &mps_128, "non-contiguous byte enables in a 2-DW request not QW aligned");
}

static void test_reject_config(void **state)
{
    (void)state;
    struct tlpb_tlp t = cfg(TLPB_TLP_CFGRD0, 0x10);
    t.length_dw = 2;
    t.last_be = 0xf;
    expect_invalid(&t, &mps_128, "config request length must be 1 DW");
    t = cfg(TLPB_TLP_CFGWR0, 0x10);
    t.length_dw = 0;
    t.payload_bytes = 0;
    t.payload = NULL;
    expect_invalid(&t, &mps_128, "config request length must be 1 DW");

    t = cfg(TLPB_TLP_CFGRD0, 0x10);
    t.last_be = 0x1;
    expect_invalid(&t, &mps_128, "last_be must be 0 for a 1-DW request");

    t = cfg(TLPB_TLP_CFGRD0, 0x1000);
    expect_malformed(&t, &mps_128, "config register out of range");
    t = cfg(TLPB_TLP_CFGWR0, 0xffe);
    expect_malformed(&t, &mps_128, "config register out of range");
    t = cfg(TLPB_TLP_CFGRD0, 0x102);
    expect_invalid(&t, &mps_128, "config register not DW aligned");

    t = cfg(TLPB_TLP_CFGRD0, 0x10);
    t.traffic_class = 1;
    expect_invalid(&t, &mps_128, "config request traffic class must be 0");
    t = cfg(TLPB_TLP_CFGWR0, 0x10);
    t.attributes = TLPB_ATTR_RELAXED_ORDERING;
    expect_invalid(&t, &mps_128, "config request with relaxed ordering or no snoop");
    t.attributes = TLPB_ATTR_NO_SNOOP;
    expect_invalid(&t, &mps_128, "config request with relaxed ordering or no snoop");

    t = cfg(TLPB_TLP_CFGWR0, 0x10);
    t.payload_bytes = 8;
    expect_invalid(&t, &mps_128, "CfgWr0 payload length does not match length_dw");
    t.payload_bytes = 0;
    expect_invalid(&t, &mps_128, "CfgWr0 payload length does not match length_dw");
}

static void test_reject_completions(void **state)
{
    (void)state;
    struct tlpb_tlp t = cpl(TLPB_CPL_SC, 4);
    t.status = (enum tlpb_cpl_status)3;
    expect_malformed(&t, &mps_128, "unknown completion status");
    t.status = (enum tlpb_cpl_status)5;
    expect_malformed(&t, &mps_128, "unknown completion status");

    t = cpld(1, 4, 0);
    t.status = TLPB_CPL_UR;
    expect_invalid_rule(&t, &mps_128, "completion with data has non-SC status",
                        TLPB_TLP_RULE_CPLD_STATUS);
    t.status = TLPB_CPL_CA;
    expect_invalid_rule(&t, &mps_128, "completion with data has non-SC status",
                        TLPB_TLP_RULE_CPLD_STATUS);

    t = cpl(TLPB_CPL_UR, 0);
    expect_invalid(&t, &mps_128, "completion byte count is 0");
    t = cpld(1, 0, 0);
    expect_invalid(&t, &mps_128, "completion byte count is 0");

    t = cpl(TLPB_CPL_UR, 4097);
    expect_malformed(&t, &mps_128, "completion byte count above 4096");
    t = cpld(1, TLPB_UNSPLIT_MAX_BYTES + 1, 0);
    expect_malformed(&t, &fast, "completion byte count above the unsplit maximum");

    t = cpld(1, 4, 0x80);
    expect_malformed(&t, &mps_128, "lower address out of range");

    t = cpld(0, 4, 0);
    expect_invalid(&t, &mps_128, "CplD length_dw is 0");

    t = cpld(33, 4096, 0);
    expect_invalid(&t, &mps_128, "CplD payload exceeds max payload size");
    t = cpld(UNSPLIT_DW + 1, TLPB_UNSPLIT_MAX_BYTES, 0);
    expect_invalid(&t, &fast, "CplD payload exceeds max payload size");

    t = cpld(2, 8, 0);
    t.payload_bytes = 4;
    expect_invalid(&t, &mps_128, "CplD payload length does not match length_dw");

    /* 4 bytes from offset 0 fit in 1 DW; from offset 1 they need 2. */
    t = cpld(2, 4, 0x40);
    expect_invalid_rule(&t, &mps_128, "CplD carries more data than its byte count",
                        TLPB_TLP_RULE_CPLD_BEYOND_BYTE_COUNT);
    t = cpld(2, 4, 0x41);
    expect_valid(&t, &mps_128);
    t = cpld(3, 4, 0x41);
    expect_invalid_rule(&t, &mps_128, "CplD carries more data than its byte count",
                        TLPB_TLP_RULE_CPLD_BEYOND_BYTE_COUNT);
}

static void test_reason_pointer_optional(void **state)
{
    (void)state;
    struct tlpb_tlp t = mrd(0x1002, 1);
    assert_int_equal(tlpb_tlp_validate(&t, &mps_128, NULL), -EINVAL);
    t = mrd(0x1000, 1);
    assert_int_equal(tlpb_tlp_validate(&t, &mps_128, NULL), 0);
}

/* ---- a refusal counted as the checker's rule --------------------------- */

/* A checker of a device with memory space and bus master on, whose host
 * read of 8 bytes at 0x1040 (tag 3) is outstanding. */
static void refusal_checker(struct tlpb_cfgspace *cfg, struct tlpb_check *chk)
{
    struct tlpb_devdesc desc;
    memset(&desc, 0, sizeof(desc));
    desc.bars[0] = (struct tlpb_bar_desc){.size_bytes = 4096};
    desc.max_payload_supported_bytes = 256;
    tlpb_cfgspace_init(cfg, &desc);
    tlpb_cfgspace_write(cfg, 0x04, 0x6, 0x3);
    tlpb_check_init(chk, &(struct tlpb_check_config){.cfgspace = cfg});
    struct tlpb_tlp rd = mrd(0x1040, 2);
    rd.requester_id = 0x0000;
    rd.tag = 3;
    assert_int_equal(tlpb_check_host_tlp(chk, &rd, 0, NULL), 0);
}

/* What tlpb_check_refused_tlp reports for refused equals what the checker's
 * own check of the same TLP reports for rule, and nothing is tracked. */
static void expect_refused_as_checked(const struct tlpb_tlp *tlp, bool from_host,
                                      enum tlpb_tlp_rule refused, enum tlpb_check_rule rule)
{
    struct tlpb_cfgspace cfg;
    struct tlpb_check checked, counted;
    refusal_checker(&cfg, &checked);
    refusal_checker(&cfg, &counted);
    struct tlpb_check_result own, res;
    unsigned n = from_host ? tlpb_check_host_tlp(&checked, tlp, 0, &own)
                           : tlpb_check_device_tlp(&checked, tlp, 0, &own);
    assert_int_equal(n, 1);
    assert_int_equal(own.violations[0].rule, rule);

    struct tlpb_check before = counted;
    assert_int_equal(tlpb_check_refused_tlp(&counted,
                                            from_host ? TLPB_CHECK_HOST_TO_DEVICE
                                                      : TLPB_CHECK_DEVICE_TO_HOST,
                                            tlp, refused, &res), 1);
    assert_int_equal(res.count, 1);
    const struct tlpb_check_violation *v = &res.violations[0];
    assert_int_equal(v->rule, rule);
    assert_int_equal(v->direction, own.violations[0].direction);
    assert_int_equal(v->expected, own.violations[0].expected);
    assert_int_equal(v->actual, own.violations[0].actual);
    assert_int_equal(v->tlp.kind, tlp->kind);
    assert_null(v->tlp.payload);
    assert_int_equal(counted.counts[rule], 1);
    assert_int_equal(counted.total, 1);
    /* Counted, not tracked: the outstanding read is as it was. */
    assert_memory_equal(counted.host_requests, before.host_requests,
                        sizeof(before.host_requests));
    assert_memory_equal(counted.device_requests, before.device_requests,
                        sizeof(before.device_requests));
}

static void test_refused_counted_as_checker_rule(void **state)
{
    (void)state;
    /* A device's write and a host's read across 4 KiB. */
    struct tlpb_tlp t = mwr(0x2ff8, 4);
    expect_invalid_rule(&t, &mps_128, "memory request crosses a 4 KiB boundary",
                        TLPB_TLP_RULE_CROSSES_4K);
    expect_refused_as_checked(&t, false, TLPB_TLP_RULE_CROSSES_4K, TLPB_CHECK_CROSSES_4K);
    t = mrd(0x1ffc, 2);
    expect_refused_as_checked(&t, true, TLPB_TLP_RULE_CROSSES_4K, TLPB_CHECK_CROSSES_4K);

    /* The outstanding read completed with data and a UR status. */
    t = cpld(2, 8, 0x40);
    t.tag = 3;
    t.status = TLPB_CPL_UR;
    expect_invalid_rule(&t, &mps_128, "completion with data has non-SC status",
                        TLPB_TLP_RULE_CPLD_STATUS);
    expect_refused_as_checked(&t, false, TLPB_TLP_RULE_CPLD_STATUS,
                              TLPB_CHECK_CPL_STATUS_WITH_DATA);

    /* The read's 8 bytes from 0x1040 need 2 DWs, not 3. */
    t = cpld(3, 8, 0x40);
    t.tag = 3;
    expect_invalid_rule(&t, &mps_128, "CplD carries more data than its byte count",
                        TLPB_TLP_RULE_CPLD_BEYOND_BYTE_COUNT);
    expect_refused_as_checked(&t, false, TLPB_TLP_RULE_CPLD_BEYOND_BYTE_COUNT,
                              TLPB_CHECK_CPL_LENGTH);

    /* Any other refusal is no checker rule: nothing counted. */
    struct tlpb_cfgspace cfg;
    struct tlpb_check chk;
    struct tlpb_check_result res;
    refusal_checker(&cfg, &chk);
    t = mrd(0x1002, 1);
    assert_int_equal(tlpb_check_refused_tlp(&chk, TLPB_CHECK_HOST_TO_DEVICE, &t,
                                            TLPB_TLP_RULE_OTHER, &res), 0);
    assert_int_equal(res.count, 0);
    assert_int_equal(chk.total, 0);
}

/* ---- completions the bridge and the SDK build ------------------------- */

/* Every completion tlpb_completion_error_for builds, for any request a peer
 * may send (also one that breaks a rule), passes the validator with the
 * limits of the link it goes back on: byte count = the bytes owed (1..4096,
 * more only unsplit), lower address of the first byte. */
static void test_built_completions_valid(void **state)
{
    (void)state;
    static const uint8_t first_bes[] = {0x0, 0x1, 0x6, 0x8, 0xc, 0xe, 0xf};
    static const uint8_t last_bes[] = {0x0, 0x1, 0x3, 0x7, 0xf, 0x8};
    static const uint32_t lengths[] = {1, 2, 3, 31, 32, 128, 1023, 1024};
    static const uint64_t addresses[] = {0x0, 0x4, 0x7c, 0xffc, 0x1000, 0xfe000044, 0x100000000ull};
    static const enum tlpb_cpl_status statuses[] = {TLPB_CPL_UR, TLPB_CPL_CA, TLPB_CPL_CRS};
    for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++)
        for (size_t a = 0; a < sizeof(addresses) / sizeof(addresses[0]); a++)
            for (size_t f = 0; f < sizeof(first_bes); f++)
                for (size_t b = 0; b < sizeof(last_bes); b++)
                    for (size_t s = 0; s < sizeof(statuses) / sizeof(statuses[0]); s++) {
                        struct tlpb_tlp req = mrd(addresses[a], lengths[l]);
                        req.first_be = first_bes[f];
                        req.last_be = last_bes[b];
                        struct tlpb_tlp cpl;
                        tlpb_completion_error_for(&cpl, &req, 0x0100, statuses[s]);
                        const char *reason = NULL;
                        if (tlpb_tlp_validate(&cpl, &mps_128, &reason) != 0)
                            fail_msg("%s for MRd %u DW at 0x%llx be %x/%x: %s (byte count %u)",
                                     tlpb_cpl_status_name(statuses[s]), lengths[l],
                                     (unsigned long long)addresses[a], first_bes[f], last_bes[b],
                                     reason, cpl.byte_count);
                        assert_int_equal(cpl.completer_id, 0x0100);
                        assert_int_equal(cpl.tag, req.tag);
                    }
    /* unsplit: a 1 MiB read's UR owes the whole MiB */
    struct tlpb_tlp big = mrd(0x10, UNSPLIT_DW);
    struct tlpb_tlp cpl;
    tlpb_completion_error_for(&cpl, &big, 0x0100, TLPB_CPL_UR);
    expect_valid(&cpl, &fast);
    assert_int_equal(cpl.byte_count, TLPB_UNSPLIT_MAX_BYTES);
    /* config requests: byte count 4, lower address 0 */
    struct tlpb_tlp c = cfg(TLPB_TLP_CFGWR0, 0x44);
    tlpb_completion_error_for(&cpl, &c, 0x0100, TLPB_CPL_UR);
    expect_valid(&cpl, &mps_128);
    assert_int_equal(cpl.byte_count, 4);
    assert_int_equal(cpl.lower_address, 0);
}

/* ---- fields that do not fit their PCIe width, from the wire ----------- */

static void expect_pb_malformed(const Tlpb__Tlp *pb, const char *why)
{
    struct tlpb_tlp t;
    const char *reason = NULL;
    assert_int_equal(tlpb_tlp_from_pb(&t, pb, &reason), -ERANGE);
    assert_non_null(reason);
    assert_string_equal(reason, why);
}

/* Each field is named on its own, so a peer learns which one it got wrong. */
static void test_pb_fields_named(void **state)
{
    (void)state;
    struct tlpb_tlp good = mrd(0x1000, 1);
    Tlpb__Tlp pb;
    struct tlpb_tlp back;
    tlpb_tlp_to_pb(&pb, &good);
    assert_int_equal(tlpb_tlp_from_pb(&back, &pb, NULL), 0);

    tlpb_tlp_to_pb(&pb, &good);
    pb.kind = (Tlpb__TlpKind)99;
    expect_pb_malformed(&pb, "unknown TLP kind");
    tlpb_tlp_to_pb(&pb, &good);
    pb.requester_id = 0x10000;
    expect_pb_malformed(&pb, "requester_id wider than 16 bits");
    tlpb_tlp_to_pb(&pb, &good);
    pb.completer_id = 0x10000;
    expect_pb_malformed(&pb, "completer_id wider than 16 bits");
    tlpb_tlp_to_pb(&pb, &good);
    pb.tag = 256;
    expect_pb_malformed(&pb, "tag wider than 8 bits");
    tlpb_tlp_to_pb(&pb, &good);
    pb.first_be = 0x10;
    expect_pb_malformed(&pb, "first_be wider than 4 bits");
    tlpb_tlp_to_pb(&pb, &good);
    pb.last_be = 0x10;
    expect_pb_malformed(&pb, "last_be wider than 4 bits");
    tlpb_tlp_to_pb(&pb, &good);
    pb.traffic_class = 8;
    expect_pb_malformed(&pb, "traffic_class above 7");
    tlpb_tlp_to_pb(&pb, &good);
    pb.attributes = 8;
    expect_pb_malformed(&pb, "attributes wider than 3 bits");
    tlpb_tlp_to_pb(&pb, &good);
    pb.cfg_register = 0x1000;
    expect_pb_malformed(&pb, "cfg_register above 0xFFC");
    tlpb_tlp_to_pb(&pb, &good);
    pb.lower_address = 0x80;
    expect_pb_malformed(&pb, "lower_address wider than 7 bits");
    tlpb_tlp_to_pb(&pb, &good);
    pb.status = (Tlpb__CompletionStatus)3;
    expect_pb_malformed(&pb, "unknown completion status");
    tlpb_tlp_to_pb(&pb, &good);
    pb.bar_hint = 7;
    expect_pb_malformed(&pb, "bar_hint above 6 (BAR index + 1)");
    tlpb_tlp_to_pb(&pb, &good);
    pb.length_dw = TLPB_UNSPLIT_MAX_BYTES / 4 + 1;
    expect_pb_malformed(&pb, "length above the largest TLP this protocol carries");
}

/* A device description field out of range is named. */
static void test_pb_description_field_named(void **state)
{
    (void)state;
    struct tlpb_devdesc d;
    memset(&d, 0, sizeof(d));
    d.vendor_id = 0x1234;
    d.device_id = 0x0001;
    d.class_code = 0x088000;
    d.bars[0].size_bytes = 4096;
    d.max_payload_supported_bytes = 512;
    struct tlpb_devdesc_pb pb;
    tlpb_devdesc_to_pb(&pb, &d);
    struct tlpb_devdesc back;
    const char *reason = NULL;
    if (tlpb_devdesc_from_pb(&back, &pb.msg, &reason) != 0)
        fail_msg("a valid description refused: %s", reason);
    pb.msg.msix_vectors = 5000;
    assert_int_equal(tlpb_devdesc_from_pb(&back, &pb.msg, &reason), -ERANGE);
    assert_string_equal(reason, "device description field out of range: msix_vectors above 2048");
    pb.msg.msix_vectors = 0;
    pb.msg.class_code = 0x1000000;
    assert_int_equal(tlpb_devdesc_from_pb(&back, &pb.msg, &reason), -ERANGE);
    assert_string_equal(reason, "device description field out of range: class_code above 0xFFFFFF");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_memory_requests),
        cmocka_unit_test(test_valid_byte_enables),
        cmocka_unit_test(test_valid_config),
        cmocka_unit_test(test_valid_completions),
        cmocka_unit_test(test_valid_unsplit),
        cmocka_unit_test(test_reject_common_fields),
        cmocka_unit_test(test_reject_memory_lengths),
        cmocka_unit_test(test_reject_memory_addresses),
        cmocka_unit_test(test_reject_byte_enables),
        cmocka_unit_test(test_reject_config),
        cmocka_unit_test(test_reject_completions),
        cmocka_unit_test(test_reason_pointer_optional),
        cmocka_unit_test(test_refused_counted_as_checker_rule),
        cmocka_unit_test(test_built_completions_valid),
        cmocka_unit_test(test_pb_fields_named),
        cmocka_unit_test(test_pb_description_field_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
