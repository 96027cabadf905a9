// Simulation top of dmacopy: the design and the tlpbridge PCIe core model
// (rtl_adapter/sv/tlpb_rtl_pcie.sv), wired one to one. The clock comes from
// the simulator's main; reset from the adapter.
module dmacopy_sim_top #(
    parameter int DATA_W = 128
) (
    input logic clk
);

  logic user_reset, user_link_up;
  logic [DATA_W-1:0] rx_tdata, tx_tdata;
  logic [DATA_W/8-1:0] rx_tkeep, tx_tkeep;
  logic rx_tlast, rx_tvalid, rx_tready, tx_tlast, tx_tvalid, tx_tready;
  logic [5:0] rx_bar_hit;
  logic [15:0] cfg_completer_id;
  logic cfg_bus_master_enable, cfg_memory_enable, cfg_msix_enable, cfg_msix_function_mask;
  logic cfg_intx_disable, cfg_extended_tag_enable;
  logic [2:0] cfg_max_payload, cfg_max_read_request;
  logic irq_msix_req, irq_msix_ack, irq_intx;
  logic [10:0] irq_msix_vector;
  logic idle, error;

  tlpb_rtl_pcie #(.DATA_W(DATA_W)) u_pcie (
      .clk,
      .user_reset, .user_link_up,
      .rx_tdata, .rx_tkeep, .rx_tlast, .rx_tvalid, .rx_bar_hit, .rx_tready,
      .tx_tdata, .tx_tkeep, .tx_tlast, .tx_tvalid, .tx_tready,
      .cfg_completer_id, .cfg_bus_master_enable, .cfg_memory_enable, .cfg_max_payload,
      .cfg_max_read_request, .cfg_msix_enable, .cfg_msix_function_mask, .cfg_intx_disable,
      .cfg_extended_tag_enable,
      .irq_msix_req, .irq_msix_vector, .irq_msix_ack, .irq_intx,
      .design_idle(idle), .trace_trigger(error)
  );

  dmacopy #(.DATA_W(DATA_W)) u_dmacopy (
      .clk, .rst(user_reset),
      .rx_tdata, .rx_tkeep, .rx_tlast, .rx_tvalid, .rx_bar_hit, .rx_tready,
      .tx_tdata, .tx_tkeep, .tx_tlast, .tx_tvalid, .tx_tready,
      .cfg_completer_id, .cfg_bus_master_enable, .cfg_max_payload, .cfg_max_read_request,
      .cfg_msix_enable,
      .irq_msix_req, .irq_msix_vector, .irq_msix_ack, .irq_intx,
      .idle, .error
  );

  // The core's other outputs are for designs that need them: dmacopy
  // leaves MSI-X function masking to the host, which owns the table, and
  // INTx disable to the core.
  wire unused_cfg = ^{user_link_up, cfg_memory_enable, cfg_msix_function_mask, cfg_intx_disable,
                      cfg_extended_tag_enable};

endmodule
