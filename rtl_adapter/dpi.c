/* rtl_adapter: the DPI-C entry point. Compiled as C (by gcc), so the symbol
 * is the plain name the simulator links against. One adapter per simulator
 * process: the one tlpb_rtl_dpi_bind() installed. */
#include <string.h>

#include "internal.h"
#include "tlpb_rtl_dpi.h"

static struct tlpb_rtl *bound;

void tlpb_rtl_dpi_bind(struct tlpb_rtl *a)
{
    bound = a;
}

static int cfg_bits_of(const struct tlpb_rtl_cfg *c)
{
    uint32_t bits = c->completer_id;
    bits |= (uint32_t)c->bus_master_enable << 16;
    bits |= (uint32_t)c->memory_enable << 17;
    bits |= (uint32_t)(c->max_payload & 7u) << 18;
    bits |= (uint32_t)(c->max_read_request & 7u) << 21;
    bits |= (uint32_t)c->msix_enable << 24;
    bits |= (uint32_t)c->msix_function_mask << 25;
    bits |= (uint32_t)c->intx_disable << 26;
    bits |= (uint32_t)c->extended_tag_enable << 27;
    return (int)bits;
}

void tlpb_rtl_dpi_cycle(int lanes, svBit rx_tready, const svBitVecVal *tx_tdata,
                        long long tx_tkeep, svBit tx_tlast, svBit tx_tvalid, svBit irq_msix_req,
                        int irq_msix_vector, svBit irq_intx, svBit design_idle,
                        svBit trace_trigger, svBitVecVal *rx_tdata, long long *rx_tkeep,
                        svBit *rx_tlast, svBit *rx_tvalid, int *rx_bar_hit, svBit *tx_tready,
                        svBit *irq_msix_ack, svBit *user_reset, svBit *user_link_up,
                        int *cfg_bits)
{
    struct tlpb_rtl_from_design in;
    struct tlpb_rtl_to_design out;

    if (!bound) {
        /* No adapter (e.g. a lint-only elaboration run): hold reset. */
        memset(rx_tdata, 0, 64);
        *rx_tkeep = 0;
        *rx_tlast = *rx_tvalid = *tx_tready = *irq_msix_ack = *user_link_up = 0;
        *rx_bar_hit = 0;
        *user_reset = 1;
        *cfg_bits = 0;
        return;
    }
    unsigned n = lanes > 0 && lanes <= TLPB_RTL_MAX_LANES ? (unsigned)lanes : TLPB_RTL_MAX_LANES;
    in.lanes = n;
    in.rx_tready = rx_tready;
    memcpy(in.tx_tdata, tx_tdata, (size_t)n * 4);
    in.tx_tkeep = (uint64_t)tx_tkeep;
    in.tx_tlast = tx_tlast;
    in.tx_tvalid = tx_tvalid;
    in.irq_msix_req = irq_msix_req;
    in.irq_msix_vector = (uint16_t)irq_msix_vector;
    in.irq_intx = irq_intx;
    in.idle = design_idle;
    in.trigger = trace_trigger;
    tlpb_rtl_cycle(bound, &in, &out);
    memcpy(rx_tdata, out.rx_tdata, (size_t)n * 4);
    if (n < TLPB_RTL_MAX_LANES)
        memset(rx_tdata + n, 0, (size_t)(TLPB_RTL_MAX_LANES - n) * 4);
    *rx_tkeep = (long long)out.rx_tkeep;
    *rx_tlast = out.rx_tlast;
    *rx_tvalid = out.rx_tvalid;
    *rx_bar_hit = out.rx_bar_hit;
    *tx_tready = out.tx_tready;
    *irq_msix_ack = out.irq_msix_ack;
    *user_reset = out.reset;
    *user_link_up = out.link_up;
    *cfg_bits = cfg_bits_of(&out.cfg);
}
