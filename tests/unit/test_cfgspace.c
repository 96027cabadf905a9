/* Unit tests for the type 0 configuration space (proto/cfgspace.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <errno.h>

#include <cmocka.h>

#include "tlpb/byteorder.h"
#include "tlpb/cfgspace.h"

/* The dmacopy-like layout plus a 64-bit prefetchable BAR and MSI. */
static struct tlpb_devdesc test_desc(void)
{
    struct tlpb_devdesc d;

    memset(&d, 0, sizeof(d));
    d.vendor_id = 0x1234;
    d.device_id = 0x7a11;
    d.subsystem_vendor_id = 0x1af4;
    d.subsystem_id = 0x1100;
    d.revision = 1;
    d.class_code = 0x088000;
    d.bars[0] = (struct tlpb_bar_desc){.size_bytes = 4096};
    d.bars[2] = (struct tlpb_bar_desc){.size_bytes = 4096};
    d.bars[4] = (struct tlpb_bar_desc){.size_bytes = 1ull << 20, .is_64bit = true,
                                       .prefetchable = true};
    d.msix_vectors = 2;
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

static struct tlpb_cfgspace cfg;

static int setup(void **state)
{
    struct tlpb_devdesc d = test_desc();
    tlpb_cfgspace_init(&cfg, &d);
    return 0;
}

static uint16_t rd16(uint16_t off)
{
    return (uint16_t)(tlpb_cfgspace_read(&cfg, off & ~3u) >> (8 * (off & 2)));
}

static uint8_t rd8(uint16_t off)
{
    return (uint8_t)(tlpb_cfgspace_read(&cfg, off & ~3u) >> (8 * (off & 3)));
}

static void test_ids(void **state)
{
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x00), 0x7a111234);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x08), 0x08800001);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x2C), 0x11001af4);
    assert_int_equal(rd8(0x0E), 0x00);               /* header type 0 */
    assert_int_equal(rd8(0x34), TLPB_CFG_PCIE_CAP);  /* capabilities pointer */
    assert_true(rd16(0x06) & 0x10);                  /* capabilities list */
    assert_int_equal(rd8(0x3D), 1);                  /* INTA */
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x30), 0); /* no expansion ROM */
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x100), 0); /* extended space */
}

static void test_bar_sizing_32bit(void **state)
{
    unsigned changes = tlpb_cfgspace_write(&cfg, 0x10, 0xFFFFFFFF, 0xF);
    assert_true(changes & TLPB_CFG_CHANGED_BAR);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x10), 0xFFFFF000); /* 4 KiB, 32-bit mem */
    tlpb_cfgspace_write(&cfg, 0x10, 0xFEB01234, 0xF);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x10), 0xFEB01000);
    assert_int_equal(tlpb_cfg_bar_address(&cfg, 0), 0xFEB01000);
    /* unimplemented BARs read 0 and ignore writes */
    tlpb_cfgspace_write(&cfg, 0x14, 0xFFFFFFFF, 0xF);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x14), 0);
    assert_int_equal(tlpb_cfg_bar_address(&cfg, 1), 0);
}

static void test_bar_sizing_64bit(void **state)
{
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x20), 0xC); /* 64-bit, prefetchable */
    tlpb_cfgspace_write(&cfg, 0x20, 0xFFFFFFFF, 0xF);
    tlpb_cfgspace_write(&cfg, 0x24, 0xFFFFFFFF, 0xF);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x20), 0xFFF0000C); /* 1 MiB */
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x24), 0xFFFFFFFF);
    tlpb_cfgspace_write(&cfg, 0x20, 0x00100000, 0xF);
    tlpb_cfgspace_write(&cfg, 0x24, 0x00000080, 0xF);
    assert_int_equal(tlpb_cfg_bar_address(&cfg, 4), 0x8000100000ull);
    assert_int_equal(tlpb_cfg_bar_address(&cfg, 5), 0); /* upper half is not a BAR */
}

static void test_read_only_fields(void **state)
{
    uint32_t before[0x40 / 4];
    for (unsigned r = 0; r < 0x40; r += 4)
        before[r / 4] = tlpb_cfgspace_read(&cfg, (uint16_t)r);

    tlpb_cfgspace_write(&cfg, 0x00, 0xFFFFFFFF, 0xF); /* IDs */
    tlpb_cfgspace_write(&cfg, 0x08, 0xFFFFFFFF, 0xF); /* revision, class */
    tlpb_cfgspace_write(&cfg, 0x2C, 0xFFFFFFFF, 0xF); /* subsystem */
    tlpb_cfgspace_write(&cfg, 0x34, 0xFFFFFFFF, 0xF); /* capabilities pointer */
    tlpb_cfgspace_write(&cfg, 0x0C, 0xFFFFFFFF, 0xF); /* cache line RW, rest RO */
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x00), before[0]);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x08), before[2]);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x2C), before[0x2C / 4]);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x34), before[0x34 / 4]);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x0C), 0x000000FF);

    /* command: only the defined bits stick; status: RO bits stay */
    tlpb_cfgspace_write(&cfg, 0x04, 0xFFFFFFFF, 0xF);
    assert_int_equal(rd16(0x04), 0x0547);
    assert_int_equal(rd16(0x06) & 0x0018, 0x0010);
    /* interrupt pin RO, line RW */
    tlpb_cfgspace_write(&cfg, 0x3C, 0xFFFFFF0B, 0xF);
    assert_int_equal(rd8(0x3C), 0x0B);
    assert_int_equal(rd8(0x3D), 1);
    /* PCIe capability header and device capabilities are RO */
    uint32_t cap = tlpb_cfgspace_read(&cfg, 0x40);
    uint32_t devcap = tlpb_cfgspace_read(&cfg, 0x44);
    tlpb_cfgspace_write(&cfg, 0x40, 0, 0xF);
    tlpb_cfgspace_write(&cfg, 0x44, 0, 0xF);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x40), cap);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x44), devcap);
    /* MSI-X table size, table and PBA location are RO */
    uint32_t msix[3];
    for (unsigned i = 0; i < 3; i++)
        msix[i] = tlpb_cfgspace_read(&cfg, (uint16_t)(TLPB_CFG_MSIX_CAP + 4 * i));
    for (unsigned i = 0; i < 3; i++)
        tlpb_cfgspace_write(&cfg, (uint16_t)(TLPB_CFG_MSIX_CAP + 4 * i), 0x3FFF0000, 0xF);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(tlpb_cfgspace_read(&cfg, (uint16_t)(TLPB_CFG_MSIX_CAP + 4 * i)), msix[i]);
}

static void test_status_rw1c_and_interrupt(void **state)
{
    /* error bits can only be cleared; pretend one was set by hardware */
    cfg.bytes[0x07] |= 0x20; /* received master abort (bit 13) */
    tlpb_cfgspace_write(&cfg, 0x04, 0x00000000, 0xC);
    assert_true(rd16(0x06) & 0x2000);
    tlpb_cfgspace_write(&cfg, 0x04, 0x20000000, 0xC);
    assert_false(rd16(0x06) & 0x2000);
    /* writing 1 to a RW1C bit that is clear does not set it */
    tlpb_cfgspace_write(&cfg, 0x04, 0xFFFF0000, 0xC);
    assert_int_equal(rd16(0x06), 0x0010);

    tlpb_cfg_set_interrupt_status(&cfg, true);
    assert_true(rd16(0x06) & 0x0008);
    tlpb_cfgspace_write(&cfg, 0x04, 0x00080000, 0xC); /* RO */
    assert_true(rd16(0x06) & 0x0008);
    tlpb_cfg_set_interrupt_status(&cfg, false);
    assert_false(rd16(0x06) & 0x0008);
}

static void test_byte_enables(void **state)
{
    /* command in byte 0/1, status in byte 2/3: a write of only byte 0 */
    unsigned changes = tlpb_cfgspace_write(&cfg, 0x04, 0xFFFFFF06, 0x1);
    assert_int_equal(changes, TLPB_CFG_CHANGED_COMMAND);
    assert_int_equal(rd16(0x04), 0x0006);
    assert_true(tlpb_cfg_memory_enabled(&cfg));
    assert_true(tlpb_cfg_bus_master_enabled(&cfg));
    assert_false(tlpb_cfg_intx_disabled(&cfg));
    /* byte 1 only: INTx disable; byte 0 keeps its value */
    tlpb_cfgspace_write(&cfg, 0x04, 0x00000400, 0x2);
    assert_int_equal(rd16(0x04), 0x0406);
    assert_true(tlpb_cfg_intx_disabled(&cfg));
    /* no byte enabled: nothing changes */
    assert_int_equal(tlpb_cfgspace_write(&cfg, 0x04, 0, 0x0), 0);
    assert_int_equal(rd16(0x04), 0x0406);
    /* BAR written one byte at a time */
    tlpb_cfgspace_write(&cfg, 0x10, 0x000000FF, 0x1);
    tlpb_cfgspace_write(&cfg, 0x10, 0x0000AB00, 0x2);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x10), 0x0000A000);
    tlpb_cfgspace_write(&cfg, 0x10, 0xFE000000, 0x8);
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x10), 0xFE00A000);
    /* writing an unchanged value reports no change */
    assert_int_equal(tlpb_cfgspace_write(&cfg, 0x10, 0xFE00A000, 0xF), 0);
}

static void test_capability_chain(void **state)
{
    uint8_t expect_ids[] = {0x10, 0x05, 0x11};
    uint8_t expect_ptrs[] = {TLPB_CFG_PCIE_CAP, TLPB_CFG_MSI_CAP, TLPB_CFG_MSIX_CAP};
    unsigned n = 0;
    uint8_t ptr = rd8(0x34);

    while (ptr != 0) {
        assert_true(n < 3);
        assert_int_equal(ptr, expect_ptrs[n]);
        assert_int_equal(rd8(ptr), expect_ids[n]);
        ptr = rd8((uint16_t)(ptr + 1));
        n++;
    }
    assert_int_equal(n, 3);

    /* PCIe: version 2, endpoint */
    assert_int_equal(rd16(0x42), 0x0002);
    uint32_t devcap = tlpb_cfgspace_read(&cfg, 0x44);
    assert_int_equal(devcap & 7, 1); /* 256 bytes */
    assert_true(devcap & (1u << 5)); /* extended tags */
    assert_true(devcap & (1u << 28)); /* FLR */
    /* link: x1 gen1 capable and trained */
    assert_int_equal(tlpb_cfgspace_read(&cfg, 0x4C) & 0x3FF, 0x011);
    assert_int_equal(rd16(0x52) & 0x3FF, 0x011);
    /* MSI: 4 vectors, 64-bit */
    uint16_t msi_ctl = rd16(TLPB_CFG_MSI_CAP + 2);
    assert_int_equal((msi_ctl >> 1) & 7, 2);
    assert_true(msi_ctl & 0x80);
    /* MSI-X: 2 vectors, table BAR2 @0, PBA BAR2 @0x800 */
    assert_int_equal(rd16(TLPB_CFG_MSIX_CAP + 2) & 0x7FF, 1);
    assert_int_equal(tlpb_cfgspace_read(&cfg, TLPB_CFG_MSIX_CAP + 4), 0x00000002);
    assert_int_equal(tlpb_cfgspace_read(&cfg, TLPB_CFG_MSIX_CAP + 8), 0x00000802);
}

static void test_capability_chain_without_msi(void **state)
{
    struct tlpb_devdesc d = test_desc();
    d.msi_vectors = 0;
    tlpb_cfgspace_init(&cfg, &d);
    assert_int_equal(rd8(0x41), TLPB_CFG_MSIX_CAP);
    assert_int_equal(rd8(TLPB_CFG_MSIX_CAP + 1), 0);
    assert_int_equal(tlpb_cfgspace_read(&cfg, TLPB_CFG_MSI_CAP), 0);

    d.msix_vectors = 0;
    tlpb_cfgspace_init(&cfg, &d);
    assert_int_equal(rd8(0x41), 0);
    assert_int_equal(tlpb_cfgspace_read(&cfg, TLPB_CFG_MSIX_CAP), 0);
    assert_false(tlpb_cfg_msix_enabled(&cfg));
}

static void test_mps_mrrs(void **state)
{
    /* PCIe power-on defaults */
    assert_int_equal(tlpb_cfg_max_payload_bytes(&cfg), 128);
    assert_int_equal(tlpb_cfg_max_read_request_bytes(&cfg), 512);
    assert_false(tlpb_cfg_extended_tags_enabled(&cfg));

    uint16_t devctl = rd16(0x48);
    devctl = (uint16_t)((devctl & ~0x70E0u) | (1u << 5) | (0u << 12) | 0x100);
    unsigned changes = tlpb_cfgspace_write(&cfg, 0x48, devctl, 0x3);
    assert_true(changes & TLPB_CFG_CHANGED_DEVCTL);
    assert_int_equal(tlpb_cfg_max_payload_bytes(&cfg), 256);
    assert_int_equal(tlpb_cfg_max_read_request_bytes(&cfg), 128);
    assert_true(tlpb_cfg_extended_tags_enabled(&cfg));

    devctl = (uint16_t)((devctl & ~0x70E0u) | (5u << 5) | (5u << 12));
    tlpb_cfgspace_write(&cfg, 0x48, devctl, 0x3);
    assert_int_equal(tlpb_cfg_max_payload_bytes(&cfg), 256); /* clamped to supported */
    assert_int_equal(tlpb_cfg_max_read_request_bytes(&cfg), 4096);
}

static void test_flr_requested(void **state)
{
    uint16_t devctl = rd16(0x48);
    unsigned changes = tlpb_cfgspace_write(&cfg, 0x48, (uint32_t)devctl | 0x8000u, 0x3);
    assert_true(changes & TLPB_CFG_FLR_REQUESTED);
    assert_int_equal(rd16(0x48) & 0x8000, 0); /* reads 0 */
    /* the bit in a disabled byte lane is no request */
    changes = tlpb_cfgspace_write(&cfg, 0x48, 0x8000, 0x1);
    assert_false(changes & TLPB_CFG_FLR_REQUESTED);
    changes = tlpb_cfgspace_write(&cfg, 0x48, devctl, 0x3);
    assert_false(changes & TLPB_CFG_FLR_REQUESTED);
}

/* Config requests answered as a type 0 function answers them: the one
 * implementation hlsim, the RTL adapter and libtlpbsim share. */
static void test_complete_request(void **state)
{
    struct tlpb_tlp cpl;
    uint8_t data[4];
    const char *refused = "unset";

    struct tlpb_tlp rd = {.kind = TLPB_TLP_CFGRD0, .requester_id = 0x0010, .tag = 5,
                          .length_dw = 1, .first_be = 0xF, .cfg_register = 0x00,
                          .completer_id = 0x0310, .bar_hint = TLPB_NO_BAR};
    assert_int_equal(tlpb_cfgspace_complete_request(&cfg, &rd, &cpl, data, &refused), 0);
    assert_null(refused);
    assert_int_equal(cpl.kind, TLPB_TLP_CPLD);
    assert_int_equal(cpl.status, TLPB_CPL_SC);
    assert_int_equal(cpl.tag, 5);
    assert_int_equal(cpl.requester_id, 0x0010);
    assert_int_equal(cpl.byte_count, 4);
    assert_int_equal(cpl.payload_bytes, 4);
    assert_ptr_equal(cpl.payload, data);
    assert_memory_equal(data, ((const uint8_t[]){0x34, 0x12, 0x11, 0x7a}), 4);
    assert_int_equal(cpl.completer_id, 0); /* no config write yet */

    /* A write: the function captures its BDF, the changes come back. */
    const uint8_t command[4] = {0x06, 0, 0, 0}; /* memory space, bus master */
    struct tlpb_tlp wr = {.kind = TLPB_TLP_CFGWR0, .requester_id = 0x0010, .tag = 5,
                          .length_dw = 1, .first_be = 0x3, .cfg_register = 0x04,
                          .completer_id = 0x0310, .bar_hint = TLPB_NO_BAR,
                          .payload = command, .payload_bytes = 4};
    int rc = tlpb_cfgspace_complete_request(&cfg, &wr, &cpl, data, &refused);
    assert_true(rc > 0);
    assert_true((unsigned)rc & TLPB_CFG_CHANGED_COMMAND);
    assert_null(refused);
    assert_true(tlpb_cfg_memory_enabled(&cfg) && tlpb_cfg_bus_master_enabled(&cfg));
    assert_int_equal(cfg.bus_device_function, 0x0310);
    assert_int_equal(cpl.kind, TLPB_TLP_CPL);
    assert_int_equal(cpl.status, TLPB_CPL_SC);
    assert_int_equal(cpl.completer_id, 0x0310);

    /* FLR is reported, for the owner to perform after the completion. */
    uint8_t devctl[4];
    tlpb_put_le32(devctl, tlpb_cfgspace_read(&cfg, 0x48) | 0x8000u);
    wr.cfg_register = 0x48;
    wr.payload = devctl;
    rc = tlpb_cfgspace_complete_request(&cfg, &wr, &cpl, data, &refused);
    assert_true(rc > 0 && ((unsigned)rc & TLPB_CFG_FLR_REQUESTED));

    /* Refused with UR, config space untouched: poisoned, short, bad register. */
    const uint8_t zero[4] = {0};
    wr.cfg_register = 0x04;
    wr.payload = zero;
    wr.poisoned = true;
    assert_int_equal(tlpb_cfgspace_complete_request(&cfg, &wr, &cpl, data, &refused), 0);
    assert_non_null(refused);
    assert_int_equal(cpl.status, TLPB_CPL_UR);
    assert_int_equal(cpl.tag, 5);
    assert_true(tlpb_cfg_memory_enabled(&cfg));
    wr.poisoned = false;
    wr.payload_bytes = 2;
    refused = NULL;
    assert_int_equal(tlpb_cfgspace_complete_request(&cfg, &wr, &cpl, data, &refused), 0);
    assert_non_null(refused);
    assert_int_equal(cpl.status, TLPB_CPL_UR);
    assert_true(tlpb_cfg_memory_enabled(&cfg));
    rd.cfg_register = 0x1002;
    refused = NULL;
    assert_int_equal(tlpb_cfgspace_complete_request(&cfg, &rd, &cpl, data, &refused), 0);
    assert_non_null(refused);
    assert_int_equal(cpl.kind, TLPB_TLP_CPL);
    assert_int_equal(cpl.status, TLPB_CPL_UR);

    /* Not a config request: nothing built. */
    struct tlpb_tlp mrd = {.kind = TLPB_TLP_MRD, .bar_hint = TLPB_NO_BAR};
    assert_int_equal(tlpb_cfgspace_complete_request(&cfg, &mrd, &cpl, data, &refused),
                     -EINVAL);
}

static void test_msix_msi_control(void **state)
{
    unsigned changes = tlpb_cfgspace_write(&cfg, TLPB_CFG_MSIX_CAP, 0xC0000000, 0xC);
    assert_int_equal(changes, TLPB_CFG_CHANGED_MSIX);
    assert_true(tlpb_cfg_msix_enabled(&cfg));
    assert_true(tlpb_cfg_msix_function_masked(&cfg));
    tlpb_cfgspace_write(&cfg, TLPB_CFG_MSIX_CAP, 0x80000000, 0xC);
    assert_false(tlpb_cfg_msix_function_masked(&cfg));

    changes = tlpb_cfgspace_write(&cfg, TLPB_CFG_MSI_CAP, 0x00010000, 0xC);
    assert_int_equal(changes, TLPB_CFG_CHANGED_MSI);
    assert_true(tlpb_cfg_msi_enabled(&cfg));
    tlpb_cfgspace_write(&cfg, TLPB_CFG_MSI_CAP + 4, 0xFEE00003, 0xF);
    assert_int_equal(tlpb_cfgspace_read(&cfg, TLPB_CFG_MSI_CAP + 4), 0xFEE00000);
}

static void test_decode_address(void **state)
{
    uint64_t off = 0;

    tlpb_cfgspace_write(&cfg, 0x10, 0xFEB00000, 0xF);
    tlpb_cfgspace_write(&cfg, 0x18, 0xFEB01000, 0xF);
    tlpb_cfgspace_write(&cfg, 0x20, 0x00100000, 0xF);
    tlpb_cfgspace_write(&cfg, 0x24, 0x00000080, 0xF);
    /* memory space disabled: nothing decodes */
    assert_int_equal(tlpb_cfg_decode_address(&cfg, 0xFEB00010, 4, &off), -1);

    tlpb_cfgspace_write(&cfg, 0x04, 0x2, 0x1);
    assert_int_equal(tlpb_cfg_decode_address(&cfg, 0xFEB00010, 4, &off), 0);
    assert_int_equal(off, 0x10);
    assert_int_equal(tlpb_cfg_decode_address(&cfg, 0xFEB01800, 8, &off), 2);
    assert_int_equal(off, 0x800);
    assert_int_equal(tlpb_cfg_decode_address(&cfg, 0x8000100040ull, 64, &off), 4);
    assert_int_equal(off, 0x40);
    /* straddling the end of a BAR, or outside every BAR */
    assert_int_equal(tlpb_cfg_decode_address(&cfg, 0xFEB01FFC, 8, &off), -1);
    assert_int_equal(tlpb_cfg_decode_address(&cfg, 0xFEB02000, 4, &off), -1);
    assert_int_equal(tlpb_cfg_decode_address(&cfg, 0xFFFFFFFFFFFFFFFCull, 8, &off), -1);

    /* memory space off again */
    tlpb_cfgspace_write(&cfg, 0x04, 0x0, 0x1);
    assert_int_equal(tlpb_cfg_decode_address(&cfg, 0xFEB00010, 4, &off), -1);
}

static struct tlpb_tlp mem_read(uint64_t addr, uint32_t length_dw, int8_t bar_hint)
{
    struct tlpb_tlp t;
    memset(&t, 0, sizeof(t));
    t.kind = TLPB_TLP_MRD;
    t.address = addr;
    t.length_dw = length_dw;
    t.first_be = 0xF;
    t.last_be = length_dw > 1 ? 0xF : 0;
    t.bar_hint = bar_hint;
    return t;
}

static void test_decode_request(void **state)
{
    uint64_t off = 0;
    struct tlpb_tlp t;

    /* The address decides, never the hint: with nothing programmed and
     * memory space off, no hint makes a request decode. */
    t = mem_read(0xC0000808, 1, 2);
    assert_int_equal(tlpb_cfg_decode_request(&cfg, &t, &off), -1);
    t = mem_read(0xFEB01800, 2, TLPB_NO_BAR);
    assert_int_equal(tlpb_cfg_decode_request(&cfg, &t, &off), -1);
    tlpb_cfgspace_write(&cfg, 0x18, 0xFEB01000, 0xF);
    /* programmed but Memory Space Enable clear: still nothing, hint or not */
    assert_int_equal(tlpb_cfg_decode_request(&cfg, &t, &off), -1);
    t.bar_hint = 2;
    assert_int_equal(tlpb_cfg_decode_request(&cfg, &t, &off), -1);
    tlpb_cfgspace_write(&cfg, 0x04, 0x2, 0x1);
    t.bar_hint = TLPB_NO_BAR;
    assert_int_equal(tlpb_cfg_decode_request(&cfg, &t, &off), 2);
    assert_int_equal(off, 0x800);
    /* a hint naming another BAR does not move the decode */
    t.bar_hint = 0;
    assert_int_equal(tlpb_cfg_decode_request(&cfg, &t, &off), 2);
    assert_int_equal(off, 0x800);
    /* an address outside every BAR is not decoded whatever the hint says */
    t = mem_read(0xC0000808, 1, 2);
    assert_int_equal(tlpb_cfg_decode_request(&cfg, &t, &off), -1);
    /* a request running past the BAR's end is not decoded */
    t = mem_read(0xFEB01FFC, 2, 2);
    assert_int_equal(tlpb_cfg_decode_request(&cfg, &t, &off), -1);
}

static void test_reset(void **state)
{
    cfg.bus_device_function = 0x0300;
    tlpb_cfgspace_write(&cfg, 0x04, 0x0406, 0x3);
    tlpb_cfgspace_write(&cfg, 0x10, 0xFEB00000, 0xF);
    tlpb_cfgspace_write(&cfg, 0x3C, 0x0B, 0x1);
    tlpb_cfgspace_write(&cfg, 0x48, (1u << 5) | 0x100, 0x3);
    tlpb_cfgspace_write(&cfg, TLPB_CFG_MSIX_CAP, 0x80000000, 0xC);
    tlpb_cfg_set_interrupt_status(&cfg, true);

    tlpb_cfgspace_reset(&cfg);
    struct tlpb_cfgspace fresh;
    struct tlpb_devdesc d = test_desc();
    tlpb_cfgspace_init(&fresh, &d);
    assert_memory_equal(cfg.bytes, fresh.bytes, TLPB_CFG_SIZE);
    assert_int_equal(tlpb_cfg_max_payload_bytes(&cfg), 128);
    assert_int_equal(tlpb_cfg_max_read_request_bytes(&cfg), 512);
    assert_false(tlpb_cfg_msix_enabled(&cfg));
    assert_false(tlpb_cfg_memory_enabled(&cfg));
    assert_int_equal(cfg.desc.device_id, 0x7a11);
    assert_int_equal(cfg.bus_device_function, 0x0300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_ids, setup),
        cmocka_unit_test_setup(test_bar_sizing_32bit, setup),
        cmocka_unit_test_setup(test_bar_sizing_64bit, setup),
        cmocka_unit_test_setup(test_read_only_fields, setup),
        cmocka_unit_test_setup(test_status_rw1c_and_interrupt, setup),
        cmocka_unit_test_setup(test_byte_enables, setup),
        cmocka_unit_test_setup(test_capability_chain, setup),
        cmocka_unit_test_setup(test_capability_chain_without_msi, setup),
        cmocka_unit_test_setup(test_mps_mrrs, setup),
        cmocka_unit_test_setup(test_flr_requested, setup),
        cmocka_unit_test_setup(test_complete_request, setup),
        cmocka_unit_test_setup(test_msix_msi_control, setup),
        cmocka_unit_test_setup(test_decode_address, setup),
        cmocka_unit_test_setup(test_decode_request, setup),
        cmocka_unit_test_setup(test_reset, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
