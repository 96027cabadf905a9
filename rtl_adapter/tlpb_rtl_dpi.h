/* The DPI-C function the SystemVerilog wrapper (sv/tlpb_rtl_pcie.sv) calls
 * on every rising clock edge. The C++ main includes this after Verilator's
 * generated V<top>__Dpi.h, so a mismatch between the two fails the build. */
#ifndef TLPB_RTL_DPI_H
#define TLPB_RTL_DPI_H

#include "svdpi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cfg_bits: [15:0] completer ID, [16] bus master enable, [17] memory
 * enable, [20:18] max payload code, [23:21] max read request code, [24]
 * MSI-X enable, [25] MSI-X function mask, [26] INTx disable, [27] extended
 * tags. */
void tlpb_rtl_dpi_cycle(int lanes, svBit rx_tready, const svBitVecVal *tx_tdata,
                        long long tx_tkeep, svBit tx_tlast, svBit tx_tvalid, svBit irq_msix_req,
                        int irq_msix_vector, svBit irq_intx, svBit design_idle,
                        svBit trace_trigger, svBitVecVal *rx_tdata, long long *rx_tkeep,
                        svBit *rx_tlast, svBit *rx_tvalid, int *rx_bar_hit, svBit *tx_tready,
                        svBit *irq_msix_ack, svBit *user_reset, svBit *user_link_up,
                        int *cfg_bits);

#ifdef __cplusplus
}
#endif

#endif
