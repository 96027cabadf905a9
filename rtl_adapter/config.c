/* rtl_adapter: what the hard IP keeps to itself. Config space (from the
 * device description, answered here), the cfg_* values the design sees,
 * BAR decode of host requests, the MSI-X table and PBA (the host owns the
 * real ones; should accesses reach the device they are answered here, as
 * the hlsim SDK does), resets, and the interrupt port. */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "tlpb/byteorder.h"
#include "tlpb/msix.h"

/* ---- configuration seen by the design ----------------------------------------- */

static uint8_t size_code(uint32_t bytes)
{
    uint8_t code = 0;
    while (code < 5 && (128u << code) < bytes)
        code++;
    return code;
}

void rtl_refresh_cfg(struct tlpb_rtl *a)
{
    struct tlpb_rtl_cfg *c = &a->cfg_out;
    c->completer_id = a->cfg.bus_device_function;
    c->bus_master_enable = tlpb_cfg_bus_master_enabled(&a->cfg);
    c->memory_enable = tlpb_cfg_memory_enabled(&a->cfg);
    c->max_payload = size_code(tlpb_cfg_max_payload_bytes(&a->cfg));
    c->max_read_request = size_code(tlpb_cfg_max_read_request_bytes(&a->cfg));
    c->msix_enable = tlpb_cfg_msix_enabled(&a->cfg);
    c->msix_function_mask = tlpb_cfg_msix_function_masked(&a->cfg);
    c->intx_disable = tlpb_cfg_intx_disabled(&a->cfg);
    c->extended_tag_enable = tlpb_cfg_extended_tags_enabled(&a->cfg);
}

void rtl_config_init(struct tlpb_rtl *a)
{
    tlpb_cfgspace_init(&a->cfg, &a->opts.description);
    a->cfg.bus_device_function = 0x0100; /* until config writes tell the real one */
    tlpb_tags_init(&a->tags, 32);
    if (a->opts.description.msix_vectors)
        a->msix_table = calloc(1, sizeof(*a->msix_table));
    if (a->msix_table && tlpb_msix_init(a->msix_table, &a->opts.description) != 0) {
        free(a->msix_table);
        a->msix_table = NULL;
    }
    rtl_refresh_cfg(a);
}

void rtl_config_fini(struct tlpb_rtl *a)
{
    if (a->msix_table)
        tlpb_msix_fini(a->msix_table);
    free(a->msix_table);
    a->msix_table = NULL;
}

/* ---- interrupts ------------------------------------------------------------------ */

void rtl_intx_update(struct tlpb_rtl *a)
{
    const struct tlpb_devdesc *d = &a->opts.description;
    /* A function with MSI or MSI-X enabled must not use INTx. */
    bool wire = a->intx_design && !tlpb_cfg_intx_disabled(&a->cfg) &&
                !tlpb_cfg_msix_enabled(&a->cfg) && !tlpb_cfg_msi_enabled(&a->cfg);
    if (wire == a->intx_wire || d->intx_pin == 0)
        return;
    a->intx_wire = wire;
    a->stats.intx_changes++;
    rtl_send_interrupt(a, wire ? TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT
                               : TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT,
                       d->intx_pin - 1u);
}

void rtl_msix_request(struct tlpb_rtl *a, unsigned vector)
{
    if (vector >= a->opts.description.msix_vectors) {
        tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "MSI-X request for vector %u of %u: ignored", vector,
                     a->opts.description.msix_vectors);
        return;
    }
    if (!tlpb_cfg_msix_enabled(&a->cfg)) {
        tlpb_rtl_log(a, TLPB_RTL_LOG_DEBUG, "MSI-X request for vector %u while MSI-X is off: "
                     "ignored", vector);
        return;
    }
    /* The host owns the table and PBA: it applies vector and function
     * masking and keeps the pending bits. */
    a->stats.msix_messages++;
    rtl_send_interrupt(a, TLPB__INTERRUPT_KIND__IRQ_MSIX, vector);
}

/* ---- resets ------------------------------------------------------------------------ */

void rtl_reset(struct tlpb_rtl *a, Tlpb__ResetKind reset_kind)
{
    tlpb_rtl_log(a, TLPB_RTL_LOG_INFO, "%s reset",
                 reset_kind == TLPB__RESET_KIND__RESET_FUNCTION_LEVEL ? "function-level" : "hot");
    a->stats.resets++;
    /* The design's outstanding reads are abandoned; their completions are
     * dropped when they come. A TLP half received from the design is lost
     * with the reset, as on a link. */
    rtl_tags_abandon(a);
    /* Host reads the design was serving are lost with its state. */
    for (unsigned t = 0; t < TLPB_TAGS_MAX; t++) {
        if (a->host_mrd_tag[t]) {
            a->host_mrd_tag[t] = false;
            if (a->host_np_outstanding)
                a->host_np_outstanding--;
        }
    }
    a->held = false;
    a->tx_count = 0;
    a->tx_malformed = false;
    uint16_t bdf = a->cfg.bus_device_function;
    tlpb_cfgspace_reset(&a->cfg);
    a->cfg.bus_device_function = bdf;
    if (a->msix_table)
        tlpb_msix_reset(a->msix_table);
    a->intx_design = false;
    tlpb_cfg_set_interrupt_status(&a->cfg, false);
    rtl_intx_update(a);
    rtl_refresh_cfg(a);
    a->reset_left = a->opts.reset_cycles;
}

/* ---- config requests ------------------------------------------------------------- */

void rtl_config_request(struct tlpb_rtl *a, const struct tlpb_tlp *tlp)
{
    struct tlpb_tlp cpl;
    uint8_t data[4];
    const char *refused;

    a->stats.config_requests++;
    int rc = tlpb_cfgspace_complete_request(&a->cfg, tlp, &cpl, data, &refused);
    if (rc < 0)
        return; /* only config requests come here */
    if (refused)
        tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "%s at %#x: completed with UR", refused,
                     tlp->cfg_register);
    rtl_send_tlp(a, &cpl);
    unsigned changes = (unsigned)rc;
    if (changes & TLPB_CFG_FLR_REQUESTED) {
        /* The write completes first, then the function resets. */
        rtl_reset(a, TLPB__RESET_KIND__RESET_FUNCTION_LEVEL);
        return;
    }
    if (changes & (TLPB_CFG_CHANGED_COMMAND | TLPB_CFG_CHANGED_MSIX | TLPB_CFG_CHANGED_MSI))
        rtl_intx_update(a);
    rtl_refresh_cfg(a);
}

/* ---- memory requests ----------------------------------------------------------------- */

/* MSI-X table and PBA requests (both kinds), answered here. */
static void msix_access(struct tlpb_rtl *a, const struct tlpb_tlp *tlp, unsigned bar,
                        uint64_t offset, uint64_t due_cycle)
{
    uint8_t data[TLPB_MAX_PAYLOAD_DW * 4];

    for (uint32_t i = 0; i < tlp->length_dw; i++) {
        uint64_t off = offset + 4ull * i;
        if (tlp->kind == TLPB_TLP_MRD)
            tlpb_put_le32(data + 4 * i, tlpb_msix_read_dw(a->msix_table, bar, off));
        else
            tlpb_msix_write_dw(a->msix_table, bar, off, tlpb_get_le32(tlp->payload + 4 * i),
                               tlpb_tlp_dw_byte_enables(tlp, i));
    }
    if (tlp->kind != TLPB_TLP_MRD)
        return;
    uint32_t bytes = tlpb_tlp_request_bytes(tlp);
    struct tlpb_tlp cpl;
    uint64_t addr = tlpb_tlp_first_byte_address(tlp);
    tlpb_completion_for(&cpl, tlp, a->cfg.bus_device_function, addr, bytes, bytes);
    cpl.payload = data;
    a->host_np_outstanding++;
    rtl_rx_push_answer(a, &cpl, due_cycle);
}

void rtl_memory_request(struct tlpb_rtl *a, const struct tlpb_tlp *tlp, uint64_t due_cycle)
{
    uint64_t offset;
    int bar = tlpb_cfg_decode_request(&a->cfg, tlp, &offset);

    if (bar < 0) {
        if (tlp->kind == TLPB_TLP_MRD) {
            struct tlpb_tlp cpl;
            tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "MRd of %u DW at %#llx: no BAR decodes it, UR",
                         tlp->length_dw, (unsigned long long)tlp->address);
            tlpb_completion_error_for(&cpl, tlp, a->cfg.bus_device_function, TLPB_CPL_UR);
            a->host_np_outstanding++;
            rtl_rx_push_answer(a, &cpl, due_cycle); /* in order, at its time */
        } else {
            tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "MWr of %u DW at %#llx: no BAR decodes it, dropped",
                         tlp->length_dw, (unsigned long long)tlp->address);
        }
        return;
    }
    if (tlp->kind == TLPB_TLP_MWR && tlp->poisoned) {
        /* PCIe: poisoned write data must not be used */
        tlpb_rtl_log(a, TLPB_RTL_LOG_WARN, "poisoned MWr at %#llx dropped",
                     (unsigned long long)tlp->address);
        return;
    }
    /* A request touching the MSI-X table or PBA is the adapter's whole. */
    uint64_t last = offset + (uint64_t)tlp->length_dw * 4 - 4;
    if (a->msix_table && (tlpb_msix_hit(a->msix_table, (unsigned)bar, offset) ||
                          tlpb_msix_hit(a->msix_table, (unsigned)bar, last))) {
        if (tlp->length_dw <= TLPB_MAX_PAYLOAD_DW)
            msix_access(a, tlp, (unsigned)bar, offset, due_cycle);
        return;
    }
    if (tlp->kind == TLPB_TLP_MRD && !a->host_mrd_tag[tlp->tag]) {
        a->host_mrd_tag[tlp->tag] = true; /* until the design's last completion */
        a->host_np_outstanding++;
    }
    rtl_rx_push_host_tlp(a, tlp, (uint8_t)(1u << bar), due_cycle);
}
