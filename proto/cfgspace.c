/* PCIe type 0 configuration space built from a device description.
 *
 * Config space is a byte array plus two masks: write_mask (bits software may
 * change) and w1c_mask (bits cleared by writing 1). Every register's write
 * semantics follow from those masks, except the few that are not plain
 * storage (BAR sizing falls out of the mask; initiate-FLR is detected and
 * never stored). */
#include "tlpb/byteorder.h"
#include "tlpb/cfgspace.h"

#include <errno.h>
#include <string.h>

/* Type 0 header offsets. */
#define CFG_VENDOR_ID 0x00
#define CFG_DEVICE_ID 0x02
#define CFG_COMMAND 0x04
#define CFG_STATUS 0x06
#define CFG_REVISION 0x08
#define CFG_CLASS 0x09
#define CFG_CACHE_LINE 0x0C
#define CFG_HEADER_TYPE 0x0E
#define CFG_BAR0 0x10
#define CFG_SUBSYS_VENDOR_ID 0x2C
#define CFG_SUBSYS_ID 0x2E
#define CFG_CAP_PTR 0x34
#define CFG_INT_LINE 0x3C
#define CFG_INT_PIN 0x3D

#define CMD_IO 0x0001u
#define CMD_MEMORY 0x0002u
#define CMD_BUS_MASTER 0x0004u
#define CMD_PARITY 0x0040u
#define CMD_SERR 0x0100u
#define CMD_INTX_DISABLE 0x0400u

#define STS_INTERRUPT 0x0008u
#define STS_CAP_LIST 0x0010u
/* master data parity error, signaled/received target abort, received master
 * abort, signaled system error, detected parity error */
#define STS_RW1C_ERRORS 0xF900u

/* PCI Express capability (offsets from its start). */
#define PCIE_CAP_ID 0x10
#define PCIE_FLAGS 0x02
#define PCIE_DEVCAP 0x04
#define PCIE_DEVCTL 0x08
#define PCIE_DEVSTA 0x0A
#define PCIE_LINKCAP 0x0C
#define PCIE_LINKCTL 0x10
#define PCIE_LINKSTA 0x12
#define PCIE_DEVCAP2 0x24
#define PCIE_DEVCTL2 0x28
#define PCIE_LINKCAP2 0x2C
#define PCIE_LINKCTL2 0x30

#define DEVCAP_EXT_TAG (1u << 5)
#define DEVCAP_ROLE_BASED_ERR (1u << 15)
#define DEVCAP_FLR (1u << 28)

#define DEVCTL_ERR_REPORTING 0x000Fu /* correctable, non-fatal, fatal, UR */
#define DEVCTL_RELAXED_ORDERING 0x0010u
#define DEVCTL_MPS_SHIFT 5
#define DEVCTL_MPS_MASK (7u << DEVCTL_MPS_SHIFT)
#define DEVCTL_EXT_TAG 0x0100u
#define DEVCTL_NO_SNOOP 0x0800u
#define DEVCTL_MRRS_SHIFT 12
#define DEVCTL_MRRS_MASK (7u << DEVCTL_MRRS_SHIFT)
#define DEVCTL_INITIATE_FLR 0x8000u
#define DEVSTA_RW1C 0x000Fu /* error detected bits */
#define DEVCTL2_IDO_REQUEST 0x0100u
#define DEVCTL2_IDO_COMPLETION 0x0200u

#define LINKCTL_WRITABLE 0x00CBu /* ASPM control, RCB, common clock, ext synch */

/* MSI capability. */
#define MSI_CAP_ID 0x05
#define MSI_FLAGS 0x02
#define MSI_FLAGS_ENABLE 0x0001u
#define MSI_FLAGS_QMASK_SHIFT 1
#define MSI_FLAGS_QSIZE_SHIFT 4
#define MSI_FLAGS_QSIZE_MASK 0x0070u
#define MSI_FLAGS_64BIT 0x0080u
#define MSI_ADDR_LO 0x04

/* MSI-X capability. */
#define MSIX_CAP_ID 0x11
#define MSIX_FLAGS 0x02
#define MSIX_FLAGS_MASKALL 0x4000u
#define MSIX_FLAGS_ENABLE 0x8000u
#define MSIX_TABLE 0x04
#define MSIX_PBA 0x08

/* ---- byte array access (multi-byte values: tlpb/byteorder.h) ------------ */

static void put8(uint8_t *a, unsigned off, uint8_t v)
{
    a[off] = v;
}

/* PCIe size encoding shared by Max_Payload_Size and Max_Read_Request_Size. */
static unsigned size_code(uint32_t bytes)
{
    unsigned code = 0;
    while (code < 5 && (128u << code) < bytes)
        code++;
    if ((128u << code) > bytes && code > 0)
        code--; /* round a non-power-of-two down */
    return code;
}

/* ---- building ------------------------------------------------------------ */

static void build_bars(struct tlpb_cfgspace *cfg)
{
    const struct tlpb_devdesc *d = &cfg->desc;

    for (unsigned i = 0; i < TLPB_BAR_COUNT; i++) {
        const struct tlpb_bar_desc *bar = &d->bars[i];
        unsigned off = CFG_BAR0 + 4 * i;

        if (bar->size_bytes == 0)
            continue; /* unimplemented: reads 0, ignores writes */
        if (bar->is_io) {
            uint32_t size = bar->size_bytes < 4 ? 4 : (uint32_t)bar->size_bytes;
            tlpb_put_le32(&cfg->bytes[off], 0x1u);
            tlpb_put_le32(&cfg->write_mask[off], ~(size - 1) & ~0x3u);
            continue;
        }
        uint64_t size = bar->size_bytes < 16 ? 16 : bar->size_bytes;
        uint64_t addr_mask = ~(size - 1);
        uint32_t flags = (bar->is_64bit ? 0x4u : 0x0u) | (bar->prefetchable ? 0x8u : 0x0u);
        tlpb_put_le32(&cfg->bytes[off], flags);
        tlpb_put_le32(&cfg->write_mask[off], (uint32_t)addr_mask & ~0xFu);
        if (bar->is_64bit && i + 1 < TLPB_BAR_COUNT) {
            tlpb_put_le32(&cfg->write_mask[off + 4], (uint32_t)(addr_mask >> 32));
            i++; /* the upper half is not a BAR of its own */
        }
    }
}

static void build_pcie_cap(struct tlpb_cfgspace *cfg, uint8_t next)
{
    const unsigned c = TLPB_CFG_PCIE_CAP;
    uint8_t *b = cfg->bytes;
    uint8_t *wm = cfg->write_mask;
    uint32_t mps_supported = size_code(cfg->desc.max_payload_supported_bytes
                                           ? cfg->desc.max_payload_supported_bytes
                                           : 128);

    put8(b, c, PCIE_CAP_ID);
    put8(b, c + 1, next);
    tlpb_put_le16(&b[c + PCIE_FLAGS], 0x0002); /* version 2, PCI Express endpoint */
    /* L0s/L1 acceptable latency left at 0 (64 ns / 1 us): we never enter them */
    tlpb_put_le32(&b[c + PCIE_DEVCAP],
                  mps_supported | DEVCAP_EXT_TAG | DEVCAP_ROLE_BASED_ERR | DEVCAP_FLR);
    /* Power-on: MPS 128, MRRS 512, relaxed ordering and no snoop enabled */
    tlpb_put_le16(&b[c + PCIE_DEVCTL], (uint16_t)(DEVCTL_RELAXED_ORDERING | DEVCTL_NO_SNOOP |
                                                  (2u << DEVCTL_MRRS_SHIFT)));
    tlpb_put_le16(&wm[c + PCIE_DEVCTL],
                  (uint16_t)(DEVCTL_ERR_REPORTING | DEVCTL_RELAXED_ORDERING | DEVCTL_MPS_MASK |
                             DEVCTL_EXT_TAG | DEVCTL_NO_SNOOP | DEVCTL_MRRS_MASK));
    tlpb_put_le16(&cfg->w1c_mask[c + PCIE_DEVSTA], DEVSTA_RW1C);
    /* x1, 2.5 GT/s, no ASPM, port number 0 */
    tlpb_put_le32(&b[c + PCIE_LINKCAP], (1u << 4) | 0x1u);
    tlpb_put_le16(&wm[c + PCIE_LINKCTL], LINKCTL_WRITABLE);
    /* current speed 2.5 GT/s, negotiated width x1, slot clock configuration */
    tlpb_put_le16(&b[c + PCIE_LINKSTA], (uint16_t)(0x1u | (1u << 4) | (1u << 12)));
    /* Device Capabilities 2: completion timeout ranges not supported */
    tlpb_put_le32(&b[c + PCIE_DEVCAP2], 0);
    tlpb_put_le32(&b[c + PCIE_LINKCAP2], 1u << 1); /* supported link speeds: 2.5 GT/s */
    tlpb_put_le16(&b[c + PCIE_LINKCTL2], 0x1);     /* target link speed 2.5 GT/s */
}

static void build_msi_cap(struct tlpb_cfgspace *cfg, uint8_t next)
{
    const unsigned c = TLPB_CFG_MSI_CAP;
    uint8_t *b = cfg->bytes;
    uint8_t *wm = cfg->write_mask;
    unsigned log2 = 0;

    while (log2 < 5 && (1u << log2) < cfg->desc.msi_vectors)
        log2++;
    uint16_t flags = (uint16_t)(log2 << MSI_FLAGS_QMASK_SHIFT);
    if (cfg->desc.msi_64bit)
        flags |= MSI_FLAGS_64BIT;
    put8(b, c, MSI_CAP_ID);
    put8(b, c + 1, next);
    tlpb_put_le16(&b[c + MSI_FLAGS], flags);
    tlpb_put_le16(&wm[c + MSI_FLAGS], MSI_FLAGS_ENABLE | MSI_FLAGS_QSIZE_MASK);
    tlpb_put_le32(&wm[c + MSI_ADDR_LO], ~0x3u); /* DW-aligned address */
    if (cfg->desc.msi_64bit) {
        tlpb_put_le32(&wm[c + 0x08], 0xFFFFFFFFu); /* upper address */
        tlpb_put_le16(&wm[c + 0x0C], 0xFFFF);      /* data */
    } else {
        tlpb_put_le16(&wm[c + 0x08], 0xFFFF);
    }
}

static void build_msix_cap(struct tlpb_cfgspace *cfg, uint8_t next)
{
    const unsigned c = TLPB_CFG_MSIX_CAP;
    const struct tlpb_devdesc *d = &cfg->desc;
    unsigned table_size = d->msix_vectors > 2048 ? 2048 : d->msix_vectors;

    put8(cfg->bytes, c, MSIX_CAP_ID);
    put8(cfg->bytes, c + 1, next);
    tlpb_put_le16(&cfg->bytes[c + MSIX_FLAGS], (uint16_t)(table_size - 1));
    tlpb_put_le16(&cfg->write_mask[c + MSIX_FLAGS], MSIX_FLAGS_MASKALL | MSIX_FLAGS_ENABLE);
    tlpb_put_le32(&cfg->bytes[c + MSIX_TABLE],
                  (d->msix_table_offset & ~0x7u) | (d->msix_table_bar & 0x7u));
    tlpb_put_le32(&cfg->bytes[c + MSIX_PBA],
                  (d->msix_pba_offset & ~0x7u) | (d->msix_pba_bar & 0x7u));
}

static void build(struct tlpb_cfgspace *cfg)
{
    const struct tlpb_devdesc *d = &cfg->desc;
    uint8_t *b = cfg->bytes;
    uint8_t *wm = cfg->write_mask;

    memset(cfg->bytes, 0, sizeof(cfg->bytes));
    memset(cfg->write_mask, 0, sizeof(cfg->write_mask));
    memset(cfg->w1c_mask, 0, sizeof(cfg->w1c_mask));

    tlpb_put_le16(&b[CFG_VENDOR_ID], d->vendor_id);
    tlpb_put_le16(&b[CFG_DEVICE_ID], d->device_id);
    tlpb_put_le16(&wm[CFG_COMMAND], CMD_IO | CMD_MEMORY | CMD_BUS_MASTER | CMD_PARITY |
                                        CMD_SERR | CMD_INTX_DISABLE);
    tlpb_put_le16(&b[CFG_STATUS], STS_CAP_LIST);
    tlpb_put_le16(&cfg->w1c_mask[CFG_STATUS], STS_RW1C_ERRORS);
    put8(b, CFG_REVISION, d->revision);
    put8(b, CFG_CLASS, (uint8_t)d->class_code);
    put8(b, CFG_CLASS + 1, (uint8_t)(d->class_code >> 8));
    put8(b, CFG_CLASS + 2, (uint8_t)(d->class_code >> 16));
    put8(wm, CFG_CACHE_LINE, 0xFF); /* no effect on PCIe, but read-write */
    put8(b, CFG_HEADER_TYPE, 0x00);
    build_bars(cfg);
    tlpb_put_le16(&b[CFG_SUBSYS_VENDOR_ID], d->subsystem_vendor_id);
    tlpb_put_le16(&b[CFG_SUBSYS_ID], d->subsystem_id);
    put8(b, CFG_CAP_PTR, TLPB_CFG_PCIE_CAP);
    put8(wm, CFG_INT_LINE, 0xFF);
    put8(b, CFG_INT_PIN, d->intx_pin <= 4 ? d->intx_pin : 0);

    /* Capability chain: PCIe -> MSI -> MSI-X, skipping what is not described. */
    uint8_t msix_ptr = d->msix_vectors > 0 ? TLPB_CFG_MSIX_CAP : 0;
    uint8_t msi_ptr = d->msi_vectors > 0 ? TLPB_CFG_MSI_CAP : 0;
    build_pcie_cap(cfg, msi_ptr ? msi_ptr : msix_ptr);
    if (msi_ptr)
        build_msi_cap(cfg, msix_ptr);
    if (msix_ptr)
        build_msix_cap(cfg, 0);
}

void tlpb_cfgspace_init(struct tlpb_cfgspace *cfg, const struct tlpb_devdesc *desc)
{
    cfg->desc = *desc;
    cfg->bus_device_function = 0;
    build(cfg);
}

void tlpb_cfgspace_reset(struct tlpb_cfgspace *cfg)
{
    /* The captured BDF survives: the function stays where it is on the bus,
     * and its completions after the reset still need a completer ID. */
    build(cfg);
}

/* ---- access -------------------------------------------------------------- */

uint32_t tlpb_cfgspace_read(const struct tlpb_cfgspace *cfg, uint16_t reg)
{
    reg &= (TLPB_CFG_SIZE - 1) & ~0x3u;
    return tlpb_get_le32(&cfg->bytes[reg]);
}

/* Did any byte of [start, start + len) inside the DW at reg change? */
static bool region_changed(const uint8_t before[4], const uint8_t *after, uint16_t reg,
                           unsigned start, unsigned len)
{
    for (unsigned i = 0; i < 4; i++) {
        unsigned off = reg + i;
        if (off >= start && off < start + len && before[i] != after[i])
            return true;
    }
    return false;
}

unsigned tlpb_cfgspace_write(struct tlpb_cfgspace *cfg, uint16_t reg, uint32_t value, uint8_t be)
{
    const struct tlpb_devdesc *d = &cfg->desc;
    unsigned changes = 0;
    uint8_t before[4];

    reg &= (TLPB_CFG_SIZE - 1) & ~0x3u;
    be &= 0xF;
    memcpy(before, &cfg->bytes[reg], 4);

    for (unsigned i = 0; i < 4; i++) {
        if (!(be & (1u << i)))
            continue;
        unsigned off = reg + i;
        uint8_t v = (uint8_t)(value >> (8 * i));
        uint8_t wm = cfg->write_mask[off];
        uint8_t w1c = cfg->w1c_mask[off];
        uint8_t cur = cfg->bytes[off];
        cur = (uint8_t)((cur & ~wm) | (v & wm));
        cur = (uint8_t)(cur & ~(v & w1c));
        cfg->bytes[off] = cur;
    }

    const uint8_t *after = &cfg->bytes[reg];
    const unsigned pcie = TLPB_CFG_PCIE_CAP;

    /* Initiate FLR is never stored (reads 0); a 1 written to it is the request. */
    if (reg == pcie + PCIE_DEVCTL && (be & 0x2) && (value & DEVCTL_INITIATE_FLR))
        changes |= TLPB_CFG_FLR_REQUESTED;
    if (region_changed(before, after, reg, CFG_COMMAND, 2))
        changes |= TLPB_CFG_CHANGED_COMMAND;
    if (region_changed(before, after, reg, CFG_BAR0, 4 * TLPB_BAR_COUNT))
        changes |= TLPB_CFG_CHANGED_BAR;
    if (region_changed(before, after, reg, pcie + PCIE_DEVCTL, 2))
        changes |= TLPB_CFG_CHANGED_DEVCTL;
    if (d->msix_vectors > 0 && region_changed(before, after, reg, TLPB_CFG_MSIX_CAP + MSIX_FLAGS, 2))
        changes |= TLPB_CFG_CHANGED_MSIX;
    if (d->msi_vectors > 0 && region_changed(before, after, reg, TLPB_CFG_MSI_CAP + MSI_FLAGS, 14))
        changes |= TLPB_CFG_CHANGED_MSI;
    return changes;
}

/* ---- decoded state -------------------------------------------------------- */

static uint16_t command(const struct tlpb_cfgspace *cfg)
{
    return tlpb_get_le16(&cfg->bytes[CFG_COMMAND]);
}

bool tlpb_cfg_memory_enabled(const struct tlpb_cfgspace *cfg)
{
    return command(cfg) & CMD_MEMORY;
}

bool tlpb_cfg_bus_master_enabled(const struct tlpb_cfgspace *cfg)
{
    return command(cfg) & CMD_BUS_MASTER;
}

bool tlpb_cfg_intx_disabled(const struct tlpb_cfgspace *cfg)
{
    return command(cfg) & CMD_INTX_DISABLE;
}

bool tlpb_cfg_msix_enabled(const struct tlpb_cfgspace *cfg)
{
    return cfg->desc.msix_vectors > 0 &&
           (tlpb_get_le16(&cfg->bytes[TLPB_CFG_MSIX_CAP + MSIX_FLAGS]) & MSIX_FLAGS_ENABLE);
}

bool tlpb_cfg_msix_function_masked(const struct tlpb_cfgspace *cfg)
{
    return cfg->desc.msix_vectors > 0 &&
           (tlpb_get_le16(&cfg->bytes[TLPB_CFG_MSIX_CAP + MSIX_FLAGS]) & MSIX_FLAGS_MASKALL);
}

bool tlpb_cfg_msi_enabled(const struct tlpb_cfgspace *cfg)
{
    return cfg->desc.msi_vectors > 0 &&
           (tlpb_get_le16(&cfg->bytes[TLPB_CFG_MSI_CAP + MSI_FLAGS]) & MSI_FLAGS_ENABLE);
}

static uint16_t devctl(const struct tlpb_cfgspace *cfg)
{
    return tlpb_get_le16(&cfg->bytes[TLPB_CFG_PCIE_CAP + PCIE_DEVCTL]);
}

uint32_t tlpb_cfg_max_payload_bytes(const struct tlpb_cfgspace *cfg)
{
    unsigned code = (devctl(cfg) & DEVCTL_MPS_MASK) >> DEVCTL_MPS_SHIFT;
    unsigned supported = tlpb_get_le32(&cfg->bytes[TLPB_CFG_PCIE_CAP + PCIE_DEVCAP]) & 0x7u;

    /* Software must not program more than supported (or a reserved code);
     * if it does, the function keeps to what it supports. */
    if (code > supported)
        code = supported;
    return 128u << code;
}

uint32_t tlpb_cfg_max_read_request_bytes(const struct tlpb_cfgspace *cfg)
{
    unsigned code = (devctl(cfg) & DEVCTL_MRRS_MASK) >> DEVCTL_MRRS_SHIFT;

    if (code > 5) /* reserved encodings */
        code = 5;
    return 128u << code;
}

bool tlpb_cfg_extended_tags_enabled(const struct tlpb_cfgspace *cfg)
{
    return devctl(cfg) & DEVCTL_EXT_TAG;
}

bool tlpb_cfg_relaxed_ordering_enabled(const struct tlpb_cfgspace *cfg)
{
    return devctl(cfg) & DEVCTL_RELAXED_ORDERING;
}

bool tlpb_cfg_no_snoop_enabled(const struct tlpb_cfgspace *cfg)
{
    return devctl(cfg) & DEVCTL_NO_SNOOP;
}

static uint16_t devctl2(const struct tlpb_cfgspace *cfg)
{
    return tlpb_get_le16(&cfg->bytes[TLPB_CFG_PCIE_CAP + PCIE_DEVCTL2]);
}

bool tlpb_cfg_ido_request_enabled(const struct tlpb_cfgspace *cfg)
{
    return devctl2(cfg) & DEVCTL2_IDO_REQUEST;
}

bool tlpb_cfg_ido_completion_enabled(const struct tlpb_cfgspace *cfg)
{
    return devctl2(cfg) & DEVCTL2_IDO_COMPLETION;
}

/* Index of the memory/IO BAR that starts at slot bar, or false for an
 * unimplemented slot or the upper half of a 64-bit BAR. */
static bool bar_is_base(const struct tlpb_cfgspace *cfg, unsigned bar)
{
    if (bar >= TLPB_BAR_COUNT || cfg->desc.bars[bar].size_bytes == 0)
        return false;
    if (bar > 0 && cfg->desc.bars[bar - 1].is_64bit && !cfg->desc.bars[bar - 1].is_io &&
        cfg->desc.bars[bar - 1].size_bytes != 0)
        return false;
    return true;
}

uint64_t tlpb_cfg_bar_address(const struct tlpb_cfgspace *cfg, unsigned bar)
{
    if (!bar_is_base(cfg, bar))
        return 0;
    const struct tlpb_bar_desc *desc = &cfg->desc.bars[bar];
    uint32_t lo = tlpb_get_le32(&cfg->bytes[CFG_BAR0 + 4 * bar]);

    if (desc->is_io)
        return lo & ~0x3u;
    uint64_t addr = lo & ~0xFu;
    if (desc->is_64bit && bar + 1 < TLPB_BAR_COUNT)
        addr |= (uint64_t)tlpb_get_le32(&cfg->bytes[CFG_BAR0 + 4 * (bar + 1)]) << 32;
    return addr;
}

int tlpb_cfg_decode_address(const struct tlpb_cfgspace *cfg, uint64_t addr, uint32_t len,
                            uint64_t *offset)
{
    if (!tlpb_cfg_memory_enabled(cfg))
        return -1;
    if (len == 0)
        len = 1;
    for (unsigned bar = 0; bar < TLPB_BAR_COUNT; bar++) {
        const struct tlpb_bar_desc *desc = &cfg->desc.bars[bar];
        if (!bar_is_base(cfg, bar) || desc->is_io)
            continue;
        uint64_t base = tlpb_cfg_bar_address(cfg, bar);
        if (base == 0)
            continue; /* not programmed */
        if (addr < base)
            continue;
        uint64_t off = addr - base;
        /* off + len <= size, without overflow */
        if (off >= desc->size_bytes || len > desc->size_bytes - off)
            continue;
        if (offset)
            *offset = off;
        return (int)bar;
    }
    return -1;
}

void tlpb_cfg_set_interrupt_status(struct tlpb_cfgspace *cfg, bool asserted)
{
    uint16_t status = tlpb_get_le16(&cfg->bytes[CFG_STATUS]);

    status = asserted ? (uint16_t)(status | STS_INTERRUPT) : (uint16_t)(status & ~STS_INTERRUPT);
    tlpb_put_le16(&cfg->bytes[CFG_STATUS], status);
}

/* A device decodes a memory request by its address, against the BARs the
 * host programmed, and only with Memory Space Enable set, as PCIe requires.
 * The host's BAR hint is informational (traces, logs): it never overrides
 * the decode, so every backend answers an address the same way. */
int tlpb_cfg_decode_request(const struct tlpb_cfgspace *cfg, const struct tlpb_tlp *tlp,
                            uint64_t *offset)
{
    uint64_t span = (uint64_t)tlp->length_dw * 4;

    if (span > UINT32_MAX)
        return -1;
    return tlpb_cfg_decode_address(cfg, tlp->address, (uint32_t)span, offset);
}

int tlpb_cfgspace_complete_request(struct tlpb_cfgspace *cfg, const struct tlpb_tlp *req,
                                   struct tlpb_tlp *cpl, uint8_t data[4], const char **refused)
{
    const char *why = NULL;

    *refused = NULL;
    if (req->kind != TLPB_TLP_CFGRD0 && req->kind != TLPB_TLP_CFGWR0)
        return -EINVAL;
    /* A validated TLP never has these; a caller's own request may. */
    if (req->cfg_register >= TLPB_CFG_SIZE || (req->cfg_register & 3u) != 0)
        why = "config register beyond 4 KiB or not DW aligned";
    else if (req->kind == TLPB_TLP_CFGWR0 && req->poisoned)
        why = "poisoned config write discarded";
    else if (req->kind == TLPB_TLP_CFGWR0 && (!req->payload || req->payload_bytes < 4))
        why = "config write without its data DW";
    if (why) {
        *refused = why;
        tlpb_completion_error_for(cpl, req, cfg->bus_device_function, TLPB_CPL_UR);
        return 0;
    }
    if (req->kind == TLPB_TLP_CFGRD0) {
        tlpb_put_le32(data, tlpb_cfgspace_read(cfg, req->cfg_register));
        tlpb_completion_for(cpl, req, cfg->bus_device_function, 0, 4, 4);
        cpl->payload = data;
        return 0;
    }
    /* The function captures its bus and device number from config writes. */
    cfg->bus_device_function = req->completer_id;
    unsigned changes = tlpb_cfgspace_write(cfg, req->cfg_register, tlpb_get_le32(req->payload),
                                           req->first_be);
    tlpb_completion_for(cpl, req, cfg->bus_device_function, 0, 4, 4); /* Cpl, SC */
    return (int)changes;
}
