/* Unit tests for the stateful PCIe checker (proto/pcie_check.c): a long
 * well-formed stream raises nothing; each negative test builds a
 * well-formed stream, breaks exactly one rule and sees exactly that rule
 * fire once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <errno.h>

#include <cmocka.h>

#include "tlpb/byteorder.h"
#include "tlpb/cfgspace.h"
#include "tlpb/pcie_check.h"

#define ROOT_ID 0x0000u
#define DEVICE_ID 0x0100u /* bus 1, device 0, function 0 */
#define OTHER_ID 0x0200u
#define BAR0_ADDR 0xfebf0000u
#define BAR2_ADDR 0xfebf1000u
#define TIMEOUT_NS 1000000u

#define REG_COMMAND 0x04u
#define CMD_MEMORY 0x0002u
#define CMD_BUS_MASTER 0x0004u
#define CMD_INTX_DISABLE 0x0400u
#define REG_BAR0 0x10u
#define REG_BAR2 0x18u
#define REG_DEVCTL (TLPB_CFG_PCIE_CAP + 0x08u)
#define DEVCTL_MPS_256 (1u << 5)
#define DEVCTL_MRRS_512 (2u << 12)
#define DEVCTL_RELAXED_ORDERING (1u << 4)
#define DEVCTL_NO_SNOOP (1u << 11)
#define MSIX_ENABLE (0x8000u << 16)
#define MSIX_FUNCTION_MASK (0x4000u << 16)
#define MSI_ENABLE (0x0001u << 16)
#define MSI_MME_2 (0x0010u << 16)

#define MPS 256u
#define MRRS 512u

struct fixture {
    struct tlpb_cfgspace cfg;
    struct tlpb_check chk;
    uint64_t now_ns;
    uint8_t host_tag;
    uint8_t device_tag;
};

/* Data for every payload: its content does not matter to the checker. */
static uint8_t payload_bytes[TLPB_UNSPLIT_MAX_BYTES];

static struct tlpb_devdesc test_desc(void)
{
    struct tlpb_devdesc d;

    memset(&d, 0, sizeof(d));
    d.vendor_id = 0x1234;
    d.device_id = 0x7a11;
    d.class_code = 0x088000;
    d.bars[0] = (struct tlpb_bar_desc){.size_bytes = 4096};
    d.bars[2] = (struct tlpb_bar_desc){.size_bytes = 4096};
    d.msix_vectors = 4;
    d.msix_table_bar = 2;
    d.msix_table_offset = 0;
    d.msix_pba_bar = 2;
    d.msix_pba_offset = 0x800;
    d.msi_vectors = 4;
    d.msi_64bit = true;
    d.intx_pin = 1;
    d.max_payload_supported_bytes = 256;
    return d;
}

/* Everything but the checker's own findings is a test bug: the helpers
 * below assert the stream they build raises nothing. */
static void host_sends(struct fixture *f, const struct tlpb_tlp *tlp)
{
    f->now_ns += 10;
    assert_int_equal(tlpb_tlp_validate(tlp, &(struct tlpb_tlp_limits){
                                                .max_payload_bytes = 4096,
                                                .unsplit = f->chk.config.unsplit},
                                       NULL), 0);
    tlpb_check_host_tlp(&f->chk, tlp, f->now_ns, NULL);
}

static void device_sends(struct fixture *f, const struct tlpb_tlp *tlp)
{
    f->now_ns += 10;
    assert_int_equal(tlpb_tlp_validate(tlp, &(struct tlpb_tlp_limits){
                                                .max_payload_bytes = 4096,
                                                .unsplit = f->chk.config.unsplit},
                                       NULL), 0);
    tlpb_check_device_tlp(&f->chk, tlp, f->now_ns, NULL);
}

static struct tlpb_tlp config_request(struct fixture *f, enum tlpb_tlp_kind kind, uint16_t reg,
                                      uint8_t be)
{
    return (struct tlpb_tlp){
        .kind = kind,
        .requester_id = ROOT_ID,
        .tag = f->host_tag++,
        .length_dw = 1,
        .first_be = be,
        .completer_id = DEVICE_ID,
        .cfg_register = reg,
        .bar_hint = TLPB_NO_BAR,
    };
}

/* The device's config space answers, as the fallback and the SDK do. */
static void device_answers_config(struct fixture *f, const struct tlpb_tlp *req)
{
    struct tlpb_tlp cpl;
    uint8_t data[4];
    const char *refused;

    assert_true(tlpb_cfgspace_complete_request(&f->cfg, req, &cpl, data, &refused) >= 0);
    assert_null(refused);
    device_sends(f, &cpl);
}

static void cfg_write(struct fixture *f, uint16_t reg, uint32_t value, uint8_t be)
{
    uint8_t data[4];
    struct tlpb_tlp req = config_request(f, TLPB_TLP_CFGWR0, reg, be);

    tlpb_put_le32(data, value);
    req.payload = data;
    req.payload_bytes = 4;
    host_sends(f, &req);
    device_answers_config(f, &req);
}

static void cfg_read(struct fixture *f, uint16_t reg)
{
    struct tlpb_tlp req = config_request(f, TLPB_TLP_CFGRD0, reg, 0xf);

    host_sends(f, &req);
    device_answers_config(f, &req);
}

static struct tlpb_tlp memory_request(enum tlpb_tlp_kind kind, uint16_t requester_id,
                                      uint8_t tag, uint64_t addr, uint32_t len)
{
    struct tlpb_tlp tlp = {
        .kind = kind,
        .requester_id = requester_id,
        .tag = tag,
        .bar_hint = TLPB_NO_BAR,
    };
    assert_int_equal(tlpb_tlp_set_mem_range(&tlp, addr, len), 0);
    if (kind == TLPB_TLP_MWR) {
        tlp.payload = payload_bytes;
        tlp.payload_bytes = tlp.length_dw * 4u;
    }
    return tlp;
}

static void mmio_write(struct fixture *f, uint64_t addr, uint32_t len)
{
    struct tlpb_tlp req = memory_request(TLPB_TLP_MWR, ROOT_ID, 0, addr, len);
    host_sends(f, &req);
}

/* A host read of the device's BAR, completed by the device in one CplD. */
static void mmio_read(struct fixture *f, uint64_t addr, uint32_t len)
{
    struct tlpb_tlp req = memory_request(TLPB_TLP_MRD, ROOT_ID, f->host_tag++, addr, len);
    struct tlpb_tlp cpl;

    host_sends(f, &req);
    tlpb_completion_for(&cpl, &req, DEVICE_ID, addr, len, len);
    cpl.payload = payload_bytes;
    device_sends(f, &cpl);
}

static struct tlpb_tlp device_read_request(struct fixture *f, uint64_t addr, uint32_t len)
{
    return memory_request(TLPB_TLP_MRD, DEVICE_ID, f->device_tag++, addr, len);
}

/* The host completes a device read split at the read completion boundary
 * and the device's Max_Payload_Size, as a root complex does. */
static void host_completes(struct fixture *f, const struct tlpb_tlp *req, uint64_t addr,
                           uint32_t len, uint32_t max_payload_bytes)
{
    struct tlpb_tlp cpl;

    if (len == 0) {
        tlpb_completion_for(&cpl, req, ROOT_ID, addr, 0, 0);
        cpl.payload = payload_bytes;
        host_sends(f, &cpl);
        return;
    }
    for (uint32_t done = 0; done < len;) {
        uint32_t chunk = tlpb_split_completion_bytes(addr + done, len - done,
                                                     max_payload_bytes, 64);
        assert_true(chunk > 0);
        tlpb_completion_for(&cpl, req, ROOT_ID, addr + done, chunk, len - done);
        cpl.payload = payload_bytes;
        host_sends(f, &cpl);
        done += chunk;
    }
}

/* DMA read of host memory split at MRRS and 4 KiB; the host returns at
 * most cpl_max_bytes per completion (MPS, or a smaller RCB multiple as a
 * root complex may choose). */
static void dma_read_completed_in(struct fixture *f, uint64_t addr, uint32_t len,
                                  uint32_t cpl_max_bytes)
{
    uint32_t done = 0;

    do {
        uint32_t chunk = len == 0 ? 0 : tlpb_split_request_bytes(addr + done, len - done, MRRS);
        struct tlpb_tlp req = device_read_request(f, addr + done, chunk);
        device_sends(f, &req);
        host_completes(f, &req, addr + done, chunk, cpl_max_bytes);
        done += chunk;
    } while (done < len);
}

static void dma_read(struct fixture *f, uint64_t addr, uint32_t len)
{
    dma_read_completed_in(f, addr, len, MPS);
}

static void dma_write(struct fixture *f, uint64_t addr, uint32_t len)
{
    for (uint32_t done = 0; done < len;) {
        uint32_t chunk = tlpb_split_request_bytes(addr + done, len - done, MPS);
        struct tlpb_tlp req = memory_request(TLPB_TLP_MWR, DEVICE_ID, 0, addr + done, chunk);
        device_sends(f, &req);
        done += chunk;
    }
}

/* Enumeration as a driver's probe leaves the device: BARs, memory and bus
 * master enabled, MPS 256, MRRS 512, MSI-X enabled. */
static void enumerate(struct fixture *f)
{
    cfg_read(f, 0x00);
    cfg_read(f, 0x08);
    cfg_write(f, REG_BAR0, 0xffffffffu, 0xf);
    cfg_read(f, REG_BAR0);
    cfg_write(f, REG_BAR0, BAR0_ADDR, 0xf);
    cfg_write(f, REG_BAR2, 0xffffffffu, 0xf);
    cfg_read(f, REG_BAR2);
    cfg_write(f, REG_BAR2, BAR2_ADDR, 0xf);
    cfg_write(f, REG_COMMAND, CMD_MEMORY | CMD_BUS_MASTER, 0x3);
    cfg_read(f, REG_DEVCTL);
    cfg_write(f, REG_DEVCTL, DEVCTL_MPS_256 | DEVCTL_MRRS_512, 0x3);
    cfg_write(f, TLPB_CFG_MSIX_CAP, MSIX_ENABLE, 0x8);
    assert_int_equal(tlpb_cfg_max_payload_bytes(&f->cfg), MPS);
    assert_int_equal(tlpb_cfg_max_read_request_bytes(&f->cfg), MRRS);
}

static void fixture_init(struct fixture *f, bool unsplit)
{
    struct tlpb_devdesc desc = test_desc();

    memset(f, 0, sizeof(*f));
    tlpb_cfgspace_init(&f->cfg, &desc);
    struct tlpb_check_config config = {
        .cfgspace = &f->cfg,
        .unsplit = unsplit,
        .completion_timeout_ns = TIMEOUT_NS,
    };
    tlpb_check_init(&f->chk, &config);
}

static int setup(void **state)
{
    static struct fixture f;

    fixture_init(&f, false);
    enumerate(&f);
    assert_int_equal(f.chk.total, 0);
    *state = &f;
    return 0;
}

/* Exactly rule fired, once, and it is the violation result lists. */
static void assert_only(const struct fixture *f, enum tlpb_check_rule rule,
                        const struct tlpb_check_result *result)
{
    for (unsigned i = 0; i < TLPB_CHECK_RULE_COUNT; i++)
        assert_int_equal(f->chk.counts[i], i == (unsigned)rule ? 1 : 0);
    assert_int_equal(f->chk.total, 1);
    assert_int_equal(result->count, 1);
    assert_int_equal(result->violations[0].rule, rule);
}

/* ---- the clean stream ---------------------------------------------------- */

static void test_clean_stream(void **state)
{
    struct fixture *f = *state;

    mmio_read(f, BAR0_ADDR, 4);
    mmio_write(f, BAR0_ADDR + 0x10, 4);
    mmio_write(f, BAR0_ADDR + 0x18, 8);
    mmio_read(f, BAR0_ADDR + 0x18, 8);
    mmio_read(f, BAR0_ADDR + 0x21, 2); /* byte-enabled part of a DW */
    mmio_write(f, BAR2_ADDR, 16);       /* an MSI-X table entry */
    dma_read(f, 0x100000, 4096);
    dma_read(f, 0x100004, 1000);        /* unaligned: the first CplD ends at the RCB */
    dma_read(f, 0x101f00, 700);         /* split at 4 KiB */
    dma_read(f, 0x102003, 5);           /* byte enables on both ends */
    dma_read(f, 0x103000, 0);           /* zero-length read */
    dma_read_completed_in(f, 0x104010, 300, 64); /* completions of one RCB each */
    dma_write(f, 0x200000, 4096);
    dma_write(f, 0x200ffc, 300);
    dma_write(f, 0x201002, 1);
    for (uint32_t v = 0; v < 4; v++)
        assert_int_equal(tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_MSIX, v, NULL), 0);
    assert_int_equal(tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_INTX_ASSERT, 0, NULL), 0);
    assert_int_equal(tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_INTX_DEASSERT, 0, NULL), 0);
    cfg_write(f, TLPB_CFG_MSIX_CAP, 0, 0x8);
    cfg_write(f, TLPB_CFG_MSI_CAP, MSI_ENABLE | MSI_MME_2, 0x4);
    assert_int_equal(tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_MSI, 1, NULL), 0);

    /* Everything was completed: nothing left to time out. */
    assert_int_equal(tlpb_check_next_deadline(&f->chk), UINT64_MAX);
    assert_int_equal(tlpb_check_expire(&f->chk, f->now_ns + 10 * TIMEOUT_NS, NULL), 0);
    assert_int_equal(f->chk.total, 0);
}

/* Fast mode: unsplit DMA in one TLP, across 4 KiB and above MPS/MRRS. */
static void test_unsplit_fast_mode_is_clean(void **state)
{
    (void)state;
    static struct fixture f;
    fixture_init(&f, true);
    enumerate(&f);

    struct tlpb_tlp wr = memory_request(TLPB_TLP_MWR, DEVICE_ID, 0, 0x100800, 65536);
    device_sends(&f, &wr);
    struct tlpb_tlp rd = device_read_request(&f, 0x200800, 65536);
    device_sends(&f, &rd);
    host_completes(&f, &rd, 0x200800, 65536, 65536);
    assert_int_equal(f.chk.total, 0);
}

/* ---- one negative test per rule ------------------------------------------- */

static void test_mwr_exceeds_mps(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp wr = memory_request(TLPB_TLP_MWR, DEVICE_ID, 0, 0x100000, 2 * MPS);

    assert_int_equal(tlpb_check_device_tlp(&f->chk, &wr, 0, &result), 1);
    assert_only(f, TLPB_CHECK_MWR_EXCEEDS_MPS, &result);
    assert_int_equal(result.violations[0].expected, MPS);
    assert_int_equal(result.violations[0].actual, 2 * MPS);
}

static void test_mrd_exceeds_mrrs(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp rd = device_read_request(f, 0x100000, 2 * MRRS);

    tlpb_check_device_tlp(&f->chk, &rd, 0, &result);
    assert_only(f, TLPB_CHECK_MRD_EXCEEDS_MRRS, &result);
}

static void test_crosses_4k(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp wr = memory_request(TLPB_TLP_MWR, DEVICE_ID, 0, 0x100fc0, 128);

    tlpb_check_device_tlp(&f->chk, &wr, 0, &result);
    assert_only(f, TLPB_CHECK_CROSSES_4K, &result);
}

static void test_bus_master_disabled(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;

    cfg_write(f, REG_COMMAND, CMD_MEMORY, 0x3);
    struct tlpb_tlp wr = memory_request(TLPB_TLP_MWR, DEVICE_ID, 0, 0x100000, 64);
    tlpb_check_device_tlp(&f->chk, &wr, 0, &result);
    assert_only(f, TLPB_CHECK_BUS_MASTER_DISABLED, &result);
}

static void test_msix_with_bus_master_disabled(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;

    cfg_write(f, REG_COMMAND, CMD_MEMORY, 0x3);
    assert_int_equal(tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_MSIX, 0, &result), 1);
    assert_only(f, TLPB_CHECK_BUS_MASTER_DISABLED, &result);
    assert_int_equal(result.violations[0].interrupt, TLPB_CHECK_MSIX);
}

static void test_memory_space_disabled(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;

    cfg_write(f, REG_COMMAND, CMD_BUS_MASTER, 0x3);
    struct tlpb_tlp wr = memory_request(TLPB_TLP_MWR, ROOT_ID, 0, BAR0_ADDR, 4);
    tlpb_check_host_tlp(&f->chk, &wr, 0, &result);
    assert_only(f, TLPB_CHECK_MEMORY_SPACE_DISABLED, &result);
}

static void test_requester_id(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp wr = memory_request(TLPB_TLP_MWR, OTHER_ID, 0, 0x100000, 64);

    tlpb_check_device_tlp(&f->chk, &wr, 0, &result);
    assert_only(f, TLPB_CHECK_REQUESTER_ID, &result);
    assert_int_equal(result.violations[0].expected, DEVICE_ID);
}

static void test_completer_id(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req = memory_request(TLPB_TLP_MRD, ROOT_ID, 9, BAR0_ADDR, 4);
    struct tlpb_tlp cpl;

    host_sends(f, &req);
    tlpb_completion_for(&cpl, &req, OTHER_ID, BAR0_ADDR, 4, 4);
    cpl.payload = payload_bytes;
    tlpb_check_device_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_COMPLETER_ID, &result);
}

static void test_unexpected_completion(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    /* A completion for a device read that was never sent. */
    struct tlpb_tlp req = device_read_request(f, 0x100000, 64);
    struct tlpb_tlp cpl;

    tlpb_completion_for(&cpl, &req, ROOT_ID, 0x100000, 64, 64);
    cpl.payload = payload_bytes;
    tlpb_check_host_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_UNEXPECTED_COMPLETION, &result);
}

static void test_completion_for_another_requester(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req = memory_request(TLPB_TLP_MRD, ROOT_ID, 9, BAR0_ADDR, 4);
    struct tlpb_tlp cpl;

    host_sends(f, &req);
    tlpb_completion_for(&cpl, &req, DEVICE_ID, BAR0_ADDR, 4, 4);
    cpl.payload = payload_bytes;
    cpl.requester_id = OTHER_ID;
    tlpb_check_device_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_UNEXPECTED_COMPLETION, &result);
}

static void test_cpl_status_with_data(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req = device_read_request(f, 0x100000, 64);
    struct tlpb_tlp cpl;

    device_sends(f, &req);
    tlpb_completion_for(&cpl, &req, ROOT_ID, 0x100000, 64, 64);
    cpl.payload = payload_bytes;
    cpl.status = TLPB_CPL_CA;
    tlpb_check_host_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_CPL_STATUS_WITH_DATA, &result);
}

/* The first of two completions of a 256-byte read, with req filled in. */
static void first_of_two(struct fixture *f, struct tlpb_tlp *req, struct tlpb_tlp *cpl)
{
    *req = device_read_request(f, 0x100000, 256);
    device_sends(f, req);
    tlpb_completion_for(cpl, req, ROOT_ID, 0x100000, 128, 256);
    cpl->payload = payload_bytes;
}

static void test_cpl_byte_count(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req, cpl;

    first_of_two(f, &req, &cpl);
    cpl.byte_count = 128;
    tlpb_check_host_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_CPL_BYTE_COUNT, &result);
    assert_int_equal(result.violations[0].expected, 256);
}

static void test_cpl_lower_address(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req, cpl;

    first_of_two(f, &req, &cpl);
    cpl.lower_address = 0x40;
    tlpb_check_host_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_CPL_LOWER_ADDRESS, &result);
}

static void test_cpl_length(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req = device_read_request(f, 0x100000, 64);
    struct tlpb_tlp cpl;

    device_sends(f, &req);
    tlpb_completion_for(&cpl, &req, ROOT_ID, 0x100000, 64, 64);
    cpl.payload = payload_bytes;
    cpl.length_dw = 17; /* one DW more than the 64 bytes owed */
    cpl.payload_bytes = 68;
    tlpb_check_host_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_CPL_LENGTH, &result);
}

static void test_config_write_completed_with_data(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    uint8_t data[4] = {0};
    struct tlpb_tlp req = config_request(f, TLPB_TLP_CFGWR0, REG_COMMAND, 0x1);
    struct tlpb_tlp cpl;

    req.payload = data;
    req.payload_bytes = 4;
    host_sends(f, &req);
    tlpb_completion_for(&cpl, &req, DEVICE_ID, 0, 4, 4);
    cpl.kind = TLPB_TLP_CPLD;
    cpl.length_dw = 1;
    cpl.payload_bytes = 4;
    cpl.payload = data;
    tlpb_check_device_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_CPL_LENGTH, &result);
}

static void test_cpl_exceeds_mps(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req = device_read_request(f, 0x100000, MRRS);
    struct tlpb_tlp cpl;

    device_sends(f, &req);
    /* MRRS (512) in one CplD: more than the device's MPS (256). */
    tlpb_completion_for(&cpl, &req, ROOT_ID, 0x100000, MRRS, MRRS);
    cpl.payload = payload_bytes;
    tlpb_check_host_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_CPL_EXCEEDS_MPS, &result);
}

static void test_cpl_rcb(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req = device_read_request(f, 0x100000, 256);
    struct tlpb_tlp cpl;

    device_sends(f, &req);
    tlpb_completion_for(&cpl, &req, ROOT_ID, 0x100000, 96, 256); /* ends at 0x60 */
    cpl.payload = payload_bytes;
    tlpb_check_host_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_CPL_RCB, &result);
    /* The rest completes the read without anything more. */
    tlpb_completion_for(&cpl, &req, ROOT_ID, 0x100060, 160, 160);
    cpl.payload = payload_bytes;
    assert_int_equal(tlpb_check_host_tlp(&f->chk, &cpl, 0, &result), 0);
    assert_int_equal(f->chk.total, 1);
}

static void test_cpl_after_last_byte(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req = device_read_request(f, 0x100000, 64);
    struct tlpb_tlp cpl;

    device_sends(f, &req);
    tlpb_completion_for(&cpl, &req, ROOT_ID, 0x100000, 64, 64);
    cpl.payload = payload_bytes;
    host_sends(f, &cpl);
    assert_int_equal(f->chk.total, 0);
    tlpb_check_host_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_CPL_AFTER_LAST_BYTE, &result);
}

static void test_completion_timeout(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req = memory_request(TLPB_TLP_MRD, ROOT_ID, 9, BAR0_ADDR, 4);
    struct tlpb_tlp cpl;

    host_sends(f, &req);
    uint64_t sent_ns = f->now_ns;
    assert_int_equal(tlpb_check_next_deadline(&f->chk), sent_ns + TIMEOUT_NS);
    assert_int_equal(tlpb_check_expire(&f->chk, sent_ns + TIMEOUT_NS - 1, &result), 0);
    assert_int_equal(tlpb_check_expire(&f->chk, sent_ns + TIMEOUT_NS, &result), 1);
    assert_only(f, TLPB_CHECK_COMPLETION_TIMEOUT, &result);
    assert_int_equal(result.violations[0].tlp.kind, TLPB_TLP_MRD);
    assert_int_equal(result.violations[0].tlp.tag, 9);
    /* Timed out is forgotten: no second report, and a late completion is
     * unexpected. */
    assert_int_equal(tlpb_check_expire(&f->chk, UINT64_MAX, &result), 0);
    tlpb_completion_for(&cpl, &req, DEVICE_ID, BAR0_ADDR, 4, 4);
    cpl.payload = payload_bytes;
    tlpb_check_device_tlp(&f->chk, &cpl, 0, &result);
    assert_int_equal(result.violations[0].rule, TLPB_CHECK_UNEXPECTED_COMPLETION);
}

static void test_msix_vector_range(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;

    tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_MSIX, 4, &result);
    assert_only(f, TLPB_CHECK_MSIX_VECTOR_RANGE, &result);
    assert_int_equal(result.violations[0].vector, 4);
}

static void test_msix_function_masked(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;

    /* Not a violation: the host holds it pending (protocol.md, "MSI-X
     * ownership"), as QEMU's MSI-X emulation does. */
    cfg_write(f, TLPB_CFG_MSIX_CAP, MSIX_ENABLE | MSIX_FUNCTION_MASK, 0x8);
    assert_int_equal(tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_MSIX, 0, &result), 0);
    assert_int_equal(f->chk.total, 0);
}

static void test_msix_disabled(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;

    cfg_write(f, TLPB_CFG_MSIX_CAP, 0, 0x8);
    tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_MSIX, 0, &result);
    assert_only(f, TLPB_CHECK_MSIX_DISABLED, &result);
}

static void test_msi_disabled(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;

    tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_MSI, 0, &result);
    assert_only(f, TLPB_CHECK_MSI_DISABLED, &result);
}

static void test_msi_vector_range(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;

    cfg_write(f, TLPB_CFG_MSIX_CAP, 0, 0x8);
    cfg_write(f, TLPB_CFG_MSI_CAP, MSI_ENABLE | MSI_MME_2, 0x4);
    tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_MSI, 2, &result);
    assert_only(f, TLPB_CHECK_MSI_VECTOR_RANGE, &result);
    assert_int_equal(result.violations[0].expected, 2);
}

static void test_intx_disabled(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;

    cfg_write(f, REG_COMMAND, CMD_MEMORY | CMD_BUS_MASTER | CMD_INTX_DISABLE, 0x3);
    tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_INTX_ASSERT, 0, &result);
    assert_only(f, TLPB_CHECK_INTX_DISABLED, &result);
}

/* ---- reset, table, policy, formatting --------------------------------------- */

static void test_flr_forgets_outstanding_requests(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req = device_read_request(f, 0x100000, 64);
    struct tlpb_tlp cpl;

    device_sends(f, &req);
    tlpb_check_reset(&f->chk, TLPB_CHECK_RESET_FLR);
    assert_int_equal(tlpb_check_next_deadline(&f->chk), UINT64_MAX);
    tlpb_completion_for(&cpl, &req, ROOT_ID, 0x100000, 64, 64);
    cpl.payload = payload_bytes;
    tlpb_check_host_tlp(&f->chk, &cpl, 0, &result);
    assert_only(f, TLPB_CHECK_UNEXPECTED_COMPLETION, &result);
}

/* A hot reset clears the function's captured number: until the next config
 * write its config read completions may carry any completer ID; that write
 * may renumber it. */
static void test_hot_reset_forgets_the_captured_number(void **state)
{
    struct fixture *f = *state;
    uint8_t data[4] = {CMD_MEMORY | CMD_BUS_MASTER, 0, 0, 0};
    struct tlpb_tlp cpl;

    tlpb_check_reset(&f->chk, TLPB_CHECK_RESET_HOT);
    struct tlpb_tlp rd = config_request(f, TLPB_TLP_CFGRD0, 0x00, 0xf);
    host_sends(f, &rd);
    tlpb_completion_for(&cpl, &rd, 0x0000, 0, 4, 4);
    cpl.payload = data;
    device_sends(f, &cpl);
    assert_int_equal(f->chk.total, 0);

    struct tlpb_tlp wr_cfg = config_request(f, TLPB_TLP_CFGWR0, REG_COMMAND, 0x3);
    wr_cfg.completer_id = OTHER_ID;
    wr_cfg.payload = data;
    wr_cfg.payload_bytes = 4;
    host_sends(f, &wr_cfg);
    device_answers_config(f, &wr_cfg);
    struct tlpb_tlp wr = memory_request(TLPB_TLP_MWR, OTHER_ID, 0, 0x100000, 64);
    device_sends(f, &wr);
    assert_int_equal(f->chk.total, 0);
    /* The old number is now someone else's. */
    wr.requester_id = DEVICE_ID;
    device_sends(f, &wr);
    assert_int_equal(f->chk.counts[TLPB_CHECK_REQUESTER_ID], 1);
    assert_int_equal(f->chk.total, 1);
}

/* ---- tags and ordering attributes ------------------------------------------ */

static void test_tag_reuse(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp first = memory_request(TLPB_TLP_MRD, DEVICE_ID, 30, 0x100000, 64);
    struct tlpb_tlp second = memory_request(TLPB_TLP_MRD, DEVICE_ID, 30, 0x100040, 64);

    device_sends(f, &first);
    assert_int_equal(tlpb_check_device_tlp(&f->chk, &second, 0, &result), 1);
    assert_only(f, TLPB_CHECK_TAG_REUSE, &result);
    assert_int_equal(result.violations[0].direction, TLPB_CHECK_DEVICE_TO_HOST);
    assert_int_equal(result.violations[0].tlp.tag, 30);
    /* The newer request holds the tag: its completion is checked, cleanly. */
    host_completes(f, &second, 0x100040, 64, MPS);
    assert_int_equal(f->chk.total, 1);
}

static void test_host_tag_reuse(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp first = memory_request(TLPB_TLP_MRD, ROOT_ID, 31, BAR0_ADDR, 4);
    struct tlpb_tlp second = memory_request(TLPB_TLP_MRD, ROOT_ID, 31, BAR0_ADDR + 4, 4);

    host_sends(f, &first);
    assert_int_equal(tlpb_check_host_tlp(&f->chk, &second, 0, &result), 1);
    assert_only(f, TLPB_CHECK_TAG_REUSE, &result);
    assert_int_equal(result.violations[0].direction, TLPB_CHECK_HOST_TO_DEVICE);
}

/* A tag is free again once its last completion came, or for another
 * requester; a posted write carries no tag to reuse. */
static void test_tag_reuse_allowed(void **state)
{
    struct fixture *f = *state;

    for (unsigned round = 0; round < 3; round++) {
        struct tlpb_tlp rd = memory_request(TLPB_TLP_MRD, DEVICE_ID, 32, 0x100000, 128);
        device_sends(f, &rd);
        host_completes(f, &rd, 0x100000, 128, 64);
        struct tlpb_tlp mmio = memory_request(TLPB_TLP_MRD, ROOT_ID, 32, BAR0_ADDR, 4);
        struct tlpb_tlp cpl;
        host_sends(f, &mmio);
        tlpb_completion_for(&cpl, &mmio, DEVICE_ID, BAR0_ADDR, 4, 4);
        cpl.payload = payload_bytes;
        device_sends(f, &cpl);
    }
    struct tlpb_tlp outstanding = memory_request(TLPB_TLP_MRD, DEVICE_ID, 33, 0x100000, 4);
    device_sends(f, &outstanding);
    for (unsigned i = 0; i < 2; i++) {
        struct tlpb_tlp wr = memory_request(TLPB_TLP_MWR, DEVICE_ID, 33, 0x200000, 4);
        device_sends(f, &wr);
    }
    assert_int_equal(f->chk.total, 0);
}

/* The fixture's driver left Enable Relaxed Ordering and Enable No Snoop
 * clear (its Device Control write carries only MPS and MRRS). */
static struct tlpb_tlp device_write_with(uint8_t attributes)
{
    struct tlpb_tlp wr = memory_request(TLPB_TLP_MWR, DEVICE_ID, 0, 0x100000, 64);
    wr.attributes = attributes;
    return wr;
}

static void test_relaxed_ordering_disabled(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp wr = device_write_with(TLPB_ATTR_RELAXED_ORDERING);

    assert_false(tlpb_cfg_relaxed_ordering_enabled(&f->cfg));
    assert_int_equal(tlpb_check_device_tlp(&f->chk, &wr, 0, &result), 1);
    assert_only(f, TLPB_CHECK_RELAXED_ORDERING_DISABLED, &result);
}

static void test_no_snoop_disabled(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp rd = device_read_request(f, 0x100000, 64);

    rd.attributes = TLPB_ATTR_NO_SNOOP;
    assert_false(tlpb_cfg_no_snoop_enabled(&f->cfg));
    assert_int_equal(tlpb_check_device_tlp(&f->chk, &rd, 0, &result), 1);
    assert_only(f, TLPB_CHECK_NO_SNOOP_DISABLED, &result);
}

static void test_id_ordering_disabled(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp wr = device_write_with(TLPB_ATTR_ID_ORDERING);

    /* This config space does not implement IDO: both enables read 0. */
    assert_false(tlpb_cfg_ido_request_enabled(&f->cfg));
    assert_int_equal(tlpb_check_device_tlp(&f->chk, &wr, 0, &result), 1);
    assert_only(f, TLPB_CHECK_ID_ORDERING_DISABLED, &result);
}

/* A completion the device gave Relaxed Ordering its request did not have. */
static void test_completion_with_own_relaxed_ordering(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req = memory_request(TLPB_TLP_MRD, ROOT_ID, 34, BAR0_ADDR, 4);
    struct tlpb_tlp cpl;

    host_sends(f, &req);
    tlpb_completion_for(&cpl, &req, DEVICE_ID, BAR0_ADDR, 4, 4);
    cpl.payload = payload_bytes;
    cpl.attributes = TLPB_ATTR_RELAXED_ORDERING;
    assert_int_equal(tlpb_check_device_tlp(&f->chk, &cpl, 0, &result), 1);
    assert_only(f, TLPB_CHECK_RELAXED_ORDERING_DISABLED, &result);
}

static void test_completion_with_own_id_ordering(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp req = memory_request(TLPB_TLP_MRD, ROOT_ID, 35, BAR0_ADDR, 4);
    struct tlpb_tlp cpl;

    host_sends(f, &req);
    tlpb_completion_for(&cpl, &req, DEVICE_ID, BAR0_ADDR, 4, 4);
    cpl.payload = payload_bytes;
    cpl.attributes = TLPB_ATTR_ID_ORDERING;
    assert_int_equal(tlpb_check_device_tlp(&f->chk, &cpl, 0, &result), 1);
    assert_only(f, TLPB_CHECK_ID_ORDERING_DISABLED, &result);
}

/* A completion copies its request's attributes (PCIe 2.2.9), whatever the
 * completer's own enables say: not the device's doing. */
static void test_completion_echoing_the_request_is_clean(void **state)
{
    struct fixture *f = *state;
    static const uint8_t attributes[] = {
        TLPB_ATTR_RELAXED_ORDERING, TLPB_ATTR_NO_SNOOP, TLPB_ATTR_ID_ORDERING,
        TLPB_ATTR_RELAXED_ORDERING | TLPB_ATTR_NO_SNOOP | TLPB_ATTR_ID_ORDERING};

    for (unsigned i = 0; i < sizeof(attributes); i++) {
        struct tlpb_tlp req = memory_request(TLPB_TLP_MRD, ROOT_ID, f->host_tag++, BAR0_ADDR, 128);
        req.attributes = attributes[i];
        host_sends(f, &req);
        /* In two completions, the second after the first finished half. */
        for (uint32_t done = 0; done < 128; done += 64) {
            struct tlpb_tlp cpl;
            tlpb_completion_for(&cpl, &req, DEVICE_ID, BAR0_ADDR + done, 64, 128 - done);
            cpl.payload = payload_bytes;
            device_sends(f, &cpl);
        }
    }
    assert_int_equal(f->chk.total, 0);
}

/* The driver enables Relaxed Ordering and No Snoop; the device uses them on
 * its DMA and its completions, the host echoes them on its completions. */
static void test_ordering_attributes_enabled_and_used_are_clean(void **state)
{
    struct fixture *f = *state;
    const uint8_t ro_ns = TLPB_ATTR_RELAXED_ORDERING | TLPB_ATTR_NO_SNOOP;

    cfg_write(f, REG_DEVCTL,
              DEVCTL_MPS_256 | DEVCTL_MRRS_512 | DEVCTL_RELAXED_ORDERING | DEVCTL_NO_SNOOP, 0x3);
    assert_true(tlpb_cfg_relaxed_ordering_enabled(&f->cfg));
    assert_true(tlpb_cfg_no_snoop_enabled(&f->cfg));
    for (uint32_t done = 0; done < 4096; done += MRRS) {
        struct tlpb_tlp rd = device_read_request(f, 0x300000 + done, MRRS);
        rd.attributes = ro_ns;
        device_sends(f, &rd);
        host_completes(f, &rd, 0x300000 + done, MRRS, MPS);
    }
    for (uint32_t done = 0; done < 1024; done += MPS) {
        struct tlpb_tlp wr = memory_request(TLPB_TLP_MWR, DEVICE_ID, 0, 0x400000 + done, MPS);
        wr.attributes = done % (2 * MPS) ? TLPB_ATTR_RELAXED_ORDERING : TLPB_ATTR_NO_SNOOP;
        device_sends(f, &wr);
    }
    struct tlpb_tlp req = memory_request(TLPB_TLP_MRD, ROOT_ID, f->host_tag++, BAR0_ADDR, 8);
    struct tlpb_tlp cpl;
    host_sends(f, &req);
    tlpb_completion_for(&cpl, &req, DEVICE_ID, BAR0_ADDR, 8, 8);
    cpl.payload = payload_bytes;
    cpl.attributes = ro_ns; /* enabled: the device may set them */
    device_sends(f, &cpl);
    mmio_read(f, BAR0_ADDR + 8, 4);
    assert_int_equal(tlpb_check_next_deadline(&f->chk), UINT64_MAX);
    assert_int_equal(f->chk.total, 0);
}

static void test_more_violations_than_listed_are_counted(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;

    for (unsigned tag = 0; tag < TLPB_CHECK_VIOLATIONS_MAX + 2; tag++) {
        struct tlpb_tlp req = memory_request(TLPB_TLP_MRD, ROOT_ID, (uint8_t)tag, BAR0_ADDR, 4);
        host_sends(f, &req);
    }
    assert_int_equal(tlpb_check_expire(&f->chk, UINT64_MAX, &result),
                     TLPB_CHECK_VIOLATIONS_MAX + 2);
    assert_int_equal(result.count, TLPB_CHECK_VIOLATIONS_MAX);
    assert_int_equal(f->chk.counts[TLPB_CHECK_COMPLETION_TIMEOUT], TLPB_CHECK_VIOLATIONS_MAX + 2);
}

static void test_rule_table(void **state)
{
    (void)state;
    for (unsigned i = 0; i < TLPB_CHECK_RULE_COUNT; i++) {
        const struct tlpb_check_rule_info *info = tlpb_check_rule((enum tlpb_check_rule)i);
        assert_non_null(info);
        assert_int_equal(info->id, i);
        assert_non_null(info->name);
        assert_non_null(info->spec_section);
        assert_non_null(info->description);
        for (const char *c = info->name; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_');
        assert_int_equal(tlpb_check_rule_by_name(info->name), (int)i);
    }
    assert_null(tlpb_check_rule(TLPB_CHECK_RULE_COUNT));
    assert_int_equal(tlpb_check_rule_by_name("no_such_rule"), -1);
}

static void test_policy_names(void **state)
{
    (void)state;
    enum tlpb_check_policy policy = TLPB_CHECK_POLICY_WARN;

    assert_int_equal(tlpb_check_policy_parse("stop", &policy), 0);
    assert_int_equal(policy, TLPB_CHECK_POLICY_STOP);
    assert_int_equal(tlpb_check_policy_parse("reject", &policy), 0);
    assert_int_equal(policy, TLPB_CHECK_POLICY_REJECT);
    assert_int_equal(tlpb_check_policy_parse("warn", &policy), 0);
    assert_int_equal(policy, TLPB_CHECK_POLICY_WARN);
    assert_int_equal(tlpb_check_policy_parse("ignore", &policy), -EINVAL);
    assert_int_equal(tlpb_check_policy_parse(NULL, &policy), -EINVAL);
    assert_string_equal(tlpb_check_policy_name(TLPB_CHECK_POLICY_REJECT), "reject");
}

static void test_format(void **state)
{
    struct fixture *f = *state;
    struct tlpb_check_result result;
    struct tlpb_tlp wr = memory_request(TLPB_TLP_MWR, DEVICE_ID, 0, 0x100000, 2 * MPS);
    char line[512];

    tlpb_check_device_tlp(&f->chk, &wr, 0, &result);
    int n = tlpb_check_format(&result.violations[0], line, sizeof(line));
    assert_true(n > 0 && (size_t)n < sizeof(line));
    assert_non_null(strstr(line, "mwr_exceeds_mps (PCIe 2.2.2)"));
    assert_non_null(strstr(line, "expected 256, got 512"));
    assert_non_null(strstr(line, "MWr"));

    tlpb_check_device_interrupt(&f->chk, TLPB_CHECK_MSIX, 7, &result);
    tlpb_check_format(&result.violations[0], line, sizeof(line));
    assert_non_null(strstr(line, "msix_vector_range"));
    assert_non_null(strstr(line, "MSI-X vector 7"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_clean_stream, setup),
        cmocka_unit_test(test_unsplit_fast_mode_is_clean),
        cmocka_unit_test_setup(test_mwr_exceeds_mps, setup),
        cmocka_unit_test_setup(test_mrd_exceeds_mrrs, setup),
        cmocka_unit_test_setup(test_crosses_4k, setup),
        cmocka_unit_test_setup(test_bus_master_disabled, setup),
        cmocka_unit_test_setup(test_msix_with_bus_master_disabled, setup),
        cmocka_unit_test_setup(test_memory_space_disabled, setup),
        cmocka_unit_test_setup(test_requester_id, setup),
        cmocka_unit_test_setup(test_completer_id, setup),
        cmocka_unit_test_setup(test_unexpected_completion, setup),
        cmocka_unit_test_setup(test_completion_for_another_requester, setup),
        cmocka_unit_test_setup(test_cpl_status_with_data, setup),
        cmocka_unit_test_setup(test_cpl_byte_count, setup),
        cmocka_unit_test_setup(test_cpl_lower_address, setup),
        cmocka_unit_test_setup(test_cpl_length, setup),
        cmocka_unit_test_setup(test_config_write_completed_with_data, setup),
        cmocka_unit_test_setup(test_cpl_exceeds_mps, setup),
        cmocka_unit_test_setup(test_cpl_rcb, setup),
        cmocka_unit_test_setup(test_cpl_after_last_byte, setup),
        cmocka_unit_test_setup(test_completion_timeout, setup),
        cmocka_unit_test_setup(test_msix_vector_range, setup),
        cmocka_unit_test_setup(test_msix_function_masked, setup),
        cmocka_unit_test_setup(test_msix_disabled, setup),
        cmocka_unit_test_setup(test_msi_disabled, setup),
        cmocka_unit_test_setup(test_msi_vector_range, setup),
        cmocka_unit_test_setup(test_intx_disabled, setup),
        cmocka_unit_test_setup(test_flr_forgets_outstanding_requests, setup),
        cmocka_unit_test_setup(test_hot_reset_forgets_the_captured_number, setup),
        cmocka_unit_test_setup(test_tag_reuse, setup),
        cmocka_unit_test_setup(test_host_tag_reuse, setup),
        cmocka_unit_test_setup(test_tag_reuse_allowed, setup),
        cmocka_unit_test_setup(test_relaxed_ordering_disabled, setup),
        cmocka_unit_test_setup(test_no_snoop_disabled, setup),
        cmocka_unit_test_setup(test_id_ordering_disabled, setup),
        cmocka_unit_test_setup(test_completion_with_own_relaxed_ordering, setup),
        cmocka_unit_test_setup(test_completion_with_own_id_ordering, setup),
        cmocka_unit_test_setup(test_completion_echoing_the_request_is_clean, setup),
        cmocka_unit_test_setup(test_ordering_attributes_enabled_and_used_are_clean, setup),
        cmocka_unit_test_setup(test_more_violations_than_listed_are_counted, setup),
        cmocka_unit_test(test_rule_table),
        cmocka_unit_test(test_policy_names),
        cmocka_unit_test_setup(test_format, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
